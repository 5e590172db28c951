//! `hoist key generate NAME`: an ECDSA P-256 key pair for `hoist sign`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

/// The environment variable holding a key's passphrase (cosign reads `COSIGN_PASSWORD`).
pub const PASSPHRASE_ENV: &str = "HOIST_KEY_PASSWORD";

/// `hoist key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write NAME.key (private, mode 0600) and NAME.pub (PEM public key).
    Generate(GenerateArgs),
}

/// Flags of `hoist key generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Path prefix of the two files: NAME.key and NAME.pub.
    pub name: PathBuf,
    /// Encrypt the private key with a passphrase: $HOIST_KEY_PASSWORD, else asked on
    /// the terminal (twice).
    #[arg(long)]
    pub passphrase: bool,
}

/// Run `hoist key`.
pub fn run(c: KeyCommand) -> Result<ExitCode> {
    match c {
        KeyCommand::Generate(a) => generate(a),
    }
}

fn generate(a: GenerateArgs) -> Result<ExitCode> {
    let pw = if a.passphrase {
        Some(new_passphrase()?)
    } else {
        None
    };
    let (k, p) = hoist_sign::key::generate(&a.name, pw.as_deref())
        .with_context(|| format!("generating the key pair {}", a.name.display()))?;
    eprintln!(
        "wrote {} (private{}) and {} (public)",
        k.display(),
        if pw.is_some() { ", encrypted" } else { "" },
        p.display()
    );
    crate::commands::out(&p.display().to_string())?;
    Ok(ExitCode::SUCCESS)
}

fn new_passphrase() -> Result<Vec<u8>> {
    if let Some(v) = std::env::var_os(PASSPHRASE_ENV) {
        let v = v.into_encoded_bytes();
        if v.is_empty() {
            bail!("{PASSPHRASE_ENV} is empty");
        }
        return Ok(v);
    }
    let a = rpassword::prompt_password("Passphrase for the new key: ")
        .with_context(|| format!("--passphrase needs {PASSPHRASE_ENV} or a terminal"))?;
    let b = rpassword::prompt_password("Again: ").context("reading the passphrase")?;
    if a != b {
        bail!("the passphrases differ");
    }
    if a.is_empty() {
        bail!("empty passphrase: leave out --passphrase for an unencrypted key");
    }
    Ok(a.into_bytes())
}

/// The passphrase of an encrypted key being opened: $HOIST_KEY_PASSWORD, else asked on
/// the terminal.
pub fn existing_passphrase() -> hoist_sign::Result<Vec<u8>> {
    if let Some(v) = std::env::var_os(PASSPHRASE_ENV) {
        return Ok(v.into_encoded_bytes());
    }
    rpassword::prompt_password("Passphrase for the key: ")
        .map(String::into_bytes)
        .map_err(|e| hoist_sign::Error::Key {
            path: "the key".into(),
            message: format!("is encrypted: set {PASSPHRASE_ENV} or run on a terminal ({e})"),
        })
}
