//! `hoist dockerfile check|parse`: the Dockerfile front end on its own.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

/// `hoist dockerfile` subcommands.
#[derive(Debug, Subcommand)]
pub enum DockerfileCommand {
    /// Check a Dockerfile as `docker build --check` does: parse errors, then BuildKit's
    /// build checks (warnings; exit non-zero on any, or on an error).
    Check(CheckArgs),
    /// Parse a Dockerfile and print the typed model.
    Parse(ParseArgs),
}

/// The Dockerfile to read.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// The Dockerfile (`-` for standard input).
    #[arg(short = 'f', long = "file", default_value = "Dockerfile")]
    pub file: PathBuf,
}

/// Flags of `hoist dockerfile check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The Dockerfile.
    #[command(flatten)]
    pub file: FileArgs,
    /// The context directory, for `.dockerignore` (CopyIgnoredFile); default: the
    /// Dockerfile's directory.
    #[arg(long)]
    pub context: Option<PathBuf>,
    /// A build arg, KEY=VALUE (repeatable; `BUILDKIT_DOCKERFILE_CHECK` sets the checks).
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Print the findings as JSON: {"warnings": [{rule, message, file, line}], "error"}.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `hoist dockerfile parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// The Dockerfile.
    #[command(flatten)]
    pub file: FileArgs,
    /// Print the model as JSON (without it: the Dockerfile printed back from the model).
    #[arg(long)]
    pub json: bool,
}

fn read(file: &PathBuf) -> Result<(String, String)> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the Dockerfile from standard input")?;
        return Ok(("-".into(), s));
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    Ok((file.display().to_string(), text))
}

/// Run `hoist dockerfile …`.
pub fn run(cmd: DockerfileCommand) -> Result<ExitCode> {
    match cmd {
        DockerfileCommand::Check(a) => check(a),
        DockerfileCommand::Parse(a) => {
            let (name, text) = read(&a.file.file)?;
            match hoist_dockerfile::parse(&text, &name) {
                Ok(df) => {
                    let out = if a.json {
                        serde_json::to_string_pretty(&df)?
                    } else {
                        df.to_string()
                    };
                    crate::commands::out(out.trim_end())?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

fn check(a: CheckArgs) -> Result<ExitCode> {
    let (name, text) = read(&a.file.file)?;
    let df = match hoist_dockerfile::parse(&text, &name) {
        Ok(df) => df,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut build_args = std::collections::BTreeMap::new();
    for b in &a.build_args {
        let (k, v) = b
            .split_once('=')
            .with_context(|| format!("--build-arg {b:?}: expected KEY=VALUE"))?;
        build_args.insert(k.to_string(), v.to_string());
    }
    let context = match &a.context {
        Some(c) => Some(c.clone()),
        None if a.file.file.as_os_str() == "-" => None,
        None => Some(
            a.file
                .file
                .parent()
                .map(|p| p.to_path_buf())
                .unwrap_or_default(),
        ),
    };
    let ignore = match context {
        Some(c) => {
            let c = if c.as_os_str().is_empty() {
                ".".into()
            } else {
                c
            };
            match std::fs::read_to_string(c.join(".dockerignore")) {
                Ok(t) => Some(
                    hoist_dockerfile::ignore::Matcher::from_ignore_file(&t).map_err(|e| {
                        anyhow::anyhow!("{}: {e}", c.join(".dockerignore").display())
                    })?,
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(e).with_context(|| format!("{}", c.join(".dockerignore").display()))
                }
            }
        }
        None => None,
    };
    let facts = hoist_dockerfile::checks::Facts {
        build_args,
        base_images: Default::default(),
        ignore: ignore.as_ref(),
    };
    let report = hoist_dockerfile::checks::check(&df, &name, &facts).map_err(anyhow::Error::msg)?;
    if a.json {
        crate::commands::out(&serde_json::to_string_pretty(&report)?)?;
    } else {
        for w in &report.warnings {
            crate::commands::out(&w.to_string())?;
        }
        if let Some(f) = report.failure() {
            eprintln!("error: {f}");
        } else if !report.warnings.is_empty() {
            eprintln!("{} warning(s)", report.warnings.len());
        }
    }
    Ok(if report.warnings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
