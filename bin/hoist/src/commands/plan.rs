//! `hoist plan DIR`: the Dockerfile an automatic build of DIR uses, with the reason
//! for each choice as comments (`hoist plan DIR > Dockerfile` takes the build over).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

/// Flags of `hoist plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The app directory.
    pub dir: PathBuf,
    /// Base image per kind: KIND=REF (static, node, python, go, go-runtime, rust,
    /// rust-runtime, binary; repeatable). Overrides hoist.toml.
    #[arg(long = "base-image")]
    pub base_images: Vec<String>,
}

/// The plan for the app in `dir` (its hoist.toml, then `base_images`).
pub fn plan_for(dir: &Path, base_images: &[String]) -> Result<hoist_auto::Plan> {
    if !dir.is_dir() {
        let why = if dir.exists() {
            "is not a directory".to_string()
        } else {
            "does not exist".to_string()
        };
        anyhow::bail!("the app directory (build context) {} {why}", dir.display());
    }
    let facts = hoist_auto::Facts::read(dir)?;
    let settings = hoist_auto::Settings::for_app(&facts, base_images)?;
    Ok(hoist_auto::plan(&facts, &settings)?)
}

/// Run `hoist plan`.
pub fn run(a: PlanArgs) -> Result<ExitCode> {
    let p = plan_for(&a.dir, &a.base_images)?;
    super::out(p.dockerfile.trim_end())?;
    Ok(ExitCode::SUCCESS)
}
