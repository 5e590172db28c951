//! `hoist task`: Concourse task mode (oci-build-task's params from the environment).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hoist_engine::progress::{self, Mode};

/// Flags of `hoist task` (the build itself is configured by params, as env vars).
#[derive(Debug, clap::Args)]
#[command(after_long_help = PARAMS_HELP)]
pub struct TaskArgs {
    /// The task's working directory (inputs and outputs are relative to it).
    #[arg(long, default_value = ".")]
    pub workdir: PathBuf,

    /// Progress output: auto, plain, tty, json or quiet (auto is plain without a terminal).
    #[arg(long, env = "HOIST_PROGRESS", default_value = "auto")]
    pub progress: String,
}

const PARAMS_HELP: &str = "\
Params (environment variables), as oci-build-task:
  CONTEXT                 context directory (default .)
  DOCKERFILE              Dockerfile path (default $CONTEXT/Dockerfile)
  TARGET, TARGET_FILE     stage to build (name, or a file holding it)
  ADDITIONAL_TARGETS      comma-separated stages, each written to the output named after it
  BUILD_ARG_<name>        build arg; BUILD_ARGS_FILE: KEY=VALUE lines, YAML or JSON map
  LABEL_<name>            label; LABELS_FILE: same formats as BUILD_ARGS_FILE
  IMAGE_ARG_<name>        image on disk (docker-archive, OCI archive or layout) given to
                          the build arg <name>, for FROM ${name}
  IMAGE_PLATFORM          os/arch[/variant]
  OUTPUT_OCI              also write image/image/ (OCI layout)
  UNPACK_ROOTFS           also write image/rootfs/ and image/metadata.json
  REGISTRY_MIRRORS        Docker Hub mirrors (host[:port], comma-separated)
  BUILDKIT_SECRET_<id>    secret from a file; BUILDKIT_SECRETTEXT_<id>: secret value
                          (also HOIST_SECRET_FILE_<id>, HOIST_SECRET_TEXT_<id>)
  BUILDKIT_SSH            ID=PATH[,ID=PATH]: private key file or agent socket
  BUILDKIT_ADD_HOSTS      HOST=IP[,HOST=IP]
  DEBUG                   verbose logs
  LOCAL_CA_CERTIFICATE    PEM (or a path) trusted for every registry
  DOCKER_USERNAME, DOCKER_PASSWORD, DOCKER_REGISTRY   registry credentials
hoist's own:
  HOIST_BUILD_FILE        build several images from a TOML/YAML build file
  HOIST_CACHE_DIR         cache directory (default ./cache when it exists, else temporary)
  HOIST_CACHE_MAX_SIZE    bound of the cache, least recently used evicted (default 10GiB)
  HOIST_TAGS              names recorded in image.tar
  HOIST_PULL              missing (default), always or never
  HOIST_NO_CACHE          ignore cached steps
  HOIST_INSECURE_REGISTRIES  registries reachable over plain HTTP
  HOIST_REGISTRY_AUTH     docker config.json text with credentials
Outputs: image/image.tar, image/digest (config digest), image/manifest-digest (the
digest image.tar is pushed under), and as asked image/image/, image/rootfs/,
image/metadata.json. See docs/concourse.md.";

/// Run `hoist task`.
pub fn run(args: TaskArgs) -> Result<ExitCode> {
    let workdir = args
        .workdir
        .canonicalize()
        .with_context(|| format!("--workdir {}", args.workdir.display()))?;
    let env = hoist_task::process_env();
    let params = hoist_task::TaskParams::from_env(&env, &workdir)?;
    let mode: Mode = args.progress.parse().map_err(anyhow::Error::msg)?;
    let display = progress::display(mode);
    let report = hoist_task::run(&params, display.as_ref())?;
    for img in &report.images {
        match &img.written {
            Some(w) if w.platforms.len() > 1 => println!(
                "{}: {} (index of {} platforms) written to {}",
                img.name,
                w.manifest_digest,
                w.platforms.len(),
                w.dir.display()
            ),
            Some(w) => println!(
                "{}: {} (config {}) written to {}",
                img.name,
                w.manifest_digest,
                w.digest,
                w.dir.display()
            ),
            None => println!(
                "{}: {} (not written: no output directory)",
                img.name, img.manifest_digest
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `DEBUG` asks for verbose logs (read before logging starts).
pub fn debug_requested() -> bool {
    std::env::var("DEBUG")
        .ok()
        .and_then(|v| hoist_task::params::parse_bool(&v))
        .unwrap_or(false)
}
