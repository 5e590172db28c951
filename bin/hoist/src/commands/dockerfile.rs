//! `hoist dockerfile check|parse`: the Dockerfile front end on its own.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

/// `hoist dockerfile` subcommands.
#[derive(Debug, Subcommand)]
pub enum DockerfileCommand {
    /// Check a Dockerfile; print every error and exit non-zero if there is one.
    Check(FileArgs),
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

/// Flags of `hoist dockerfile parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// The Dockerfile.
    #[command(flatten)]
    pub file: FileArgs,
    /// Print the model as JSON (the only format for now).
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
        DockerfileCommand::Check(a) => {
            let (name, text) = read(&a.file)?;
            match hoist_dockerfile::parse(&text, &name) {
                Ok(_) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("{e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        DockerfileCommand::Parse(a) => {
            let (name, text) = read(&a.file.file)?;
            match hoist_dockerfile::parse(&text, &name) {
                Ok(df) => {
                    let _ = a.json;
                    let out = serde_json::to_string_pretty(&df)?;
                    crate::commands::out(&out)?;
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
