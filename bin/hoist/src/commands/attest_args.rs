//! `hoist build`'s attestation flags, as buildx spells them.

use anyhow::Result;
use clap::Args;
use hoist_attest::options::AttestOptions;

/// `--provenance`, `--sbom`, `--attest`.
#[derive(Debug, Args, Clone, Default)]
pub struct AttestArgs {
    /// Attach SLSA provenance: mode=min|max (or true/false).
    #[arg(long, value_name = "mode=min|max", num_args = 0..=1, default_missing_value = "true")]
    pub provenance: Option<String>,
    /// Attach an SPDX SBOM of the final image's packages: true/false.
    #[arg(long, value_name = "true|false", num_args = 0..=1, default_missing_value = "true")]
    pub sbom: Option<String>,
    /// Attach an attestation: type=provenance[,mode=max] or type=sbom (repeatable).
    #[arg(long, value_name = "type=…")]
    pub attest: Vec<String>,
}

impl AttestArgs {
    /// The attestations these flags ask for.
    pub fn to_options(&self) -> Result<AttestOptions> {
        let mut o = AttestOptions::default();
        self.apply(&mut o)?;
        Ok(o)
    }

    /// Apply these flags over `o` (`hoist bake`: over the build file's `attest`).
    pub fn apply(&self, o: &mut AttestOptions) -> Result<()> {
        for a in &self.attest {
            o.attest_flag(a)?;
        }
        if let Some(p) = &self.provenance {
            o.provenance_flag(p)?;
        }
        if let Some(s) = &self.sbom {
            o.sbom_flag(s)?;
        }
        Ok(())
    }
}
