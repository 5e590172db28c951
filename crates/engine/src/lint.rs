//! What a build checks before it starts: BuildKit's build checks
//! ([`hoist_dockerfile::checks`]) printed as warnings (failing the build under
//! `# check=error=true`), and Dockerfile features hoist refuses rather than ignores.

use hoist_dockerfile::checks::{self, Facts};
use hoist_dockerfile::ignore::Matcher;
use hoist_dockerfile::{Dockerfile, InstructionKind, Security};

use crate::error::{Error, Result};
use crate::options::BuildOptions;
use crate::progress::{Event, Progress};

/// The build checks with the facts known before any base image is resolved (the build
/// args and the context's `.dockerignore`; base images' environments are not known yet,
/// so `UndefinedVar` covers stages built on `scratch` or other stages).
pub fn report(
    df: &Dockerfile,
    df_name: &str,
    opts: &BuildOptions,
    ignore: Option<&Matcher>,
) -> Result<checks::Report> {
    let facts = Facts {
        build_args: opts.build_args.clone(),
        base_images: Default::default(),
        ignore,
    };
    checks::check(df, df_name, &facts).map_err(|e| Error::Dockerfile(format!("{df_name}: {e}")))
}

/// Run the checks, print each finding as a warning, and fail when `# check=error=true`
/// asks for it; refuse `RUN --security=insecure`.
pub fn before_build(
    df: &Dockerfile,
    df_name: &str,
    opts: &BuildOptions,
    ignore: Option<&Matcher>,
    progress: &dyn Progress,
) -> Result<()> {
    refuse_insecure(df, df_name)?;
    let r = report(df, df_name, opts, ignore)?;
    for w in &r.warnings {
        progress.event(Event::Warning(&w.to_string()));
    }
    match r.failure() {
        Some(msg) => Err(Error::Dockerfile(format!("{df_name}: {msg}"))),
        None => Ok(()),
    }
}

/// `RUN --security=insecure` asks for host privileges (BuildKit grants them only with
/// `--allow security.insecure` on a privileged daemon). hoist runs every RUN in an
/// unprivileged user namespace and cannot honour it, so it says so instead of running the
/// step without them.
pub fn refuse_insecure(df: &Dockerfile, df_name: &str) -> Result<()> {
    for stage in &df.stages {
        for i in &stage.instructions {
            if let InstructionKind::Run {
                security: Some(Security::Insecure),
                ..
            } = &i.kind
            {
                return Err(Error::Unsupported(format!(
                    "{df_name}:{}: RUN --security=insecure is not supported: hoist runs every RUN \
                     in an unprivileged user namespace and cannot grant host privileges (devices, \
                     mounts outside the namespace, sysctls); remove the flag or build this stage \
                     with a privileged BuildKit (--allow security.insecure)",
                    i.span.start_line
                )));
            }
        }
    }
    Ok(())
}

/// `COPY --from=X` (or `RUN --mount=from=X`) where X is neither a stage nor a named
/// context, and pulling X as an image failed: say so first, since a misspelt stage name is
/// far more likely than a missing image (the registry's error follows).
pub fn no_such_stage(e: Error, from: &str, df: &Dockerfile) -> Error {
    let names: Vec<String> = df
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| s.name.clone().unwrap_or_else(|| i.to_string()))
        .collect();
    no_such_stage_named(e, from, &names)
}

/// [`no_such_stage`] with the stage names already listed (the planner's).
pub fn no_such_stage_named(e: Error, from: &str, names: &[String]) -> Error {
    if matches!(e, Error::Interrupted) {
        return e;
    }
    Error::Invalid(format!(
        "no stage or image named {from}; stages are: {} (pulling {from} as an image failed: {})",
        names.join(", "),
        hoist_image::chain_text(&e)
    ))
}
