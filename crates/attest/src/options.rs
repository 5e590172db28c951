//! What attestations a build asks for, in buildx's spelling:
//! `--provenance=mode=min|max` (or `true`/`false`), `--sbom=true|false`, and
//! `--attest type=provenance[,mode=…][,disabled=true]` / `--attest type=sbom`.

use crate::error::{Error, Result};

/// How much provenance says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProvenanceMode {
    /// Sources, bases, args, builder, times.
    #[default]
    Min,
    /// All of `Min`, plus every stage's steps.
    Max,
}

/// The attestations to attach to a build's images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttestOptions {
    /// SLSA provenance, in this mode.
    pub provenance: Option<ProvenanceMode>,
    /// An SPDX SBOM of the final image's packages.
    pub sbom: bool,
}

impl AttestOptions {
    /// Whether any attestation is asked for.
    pub fn any(&self) -> bool {
        self.provenance.is_some() || self.sbom
    }

    /// Apply `--provenance VALUE`.
    pub fn provenance_flag(&mut self, value: &str) -> Result<()> {
        if let Some(b) = parse_bool(value) {
            self.provenance = b.then_some(ProvenanceMode::Min);
            return Ok(());
        }
        self.apply("provenance", &format!("type=provenance,{value}"))
    }

    /// Apply `--sbom VALUE`.
    pub fn sbom_flag(&mut self, value: &str) -> Result<()> {
        if let Some(b) = parse_bool(value) {
            self.sbom = b;
            return Ok(());
        }
        self.apply("sbom", &format!("type=sbom,{value}"))
    }

    /// Apply `--attest SPEC` (`type=provenance,mode=max`, `type=sbom`, `…,disabled=true`).
    pub fn attest_flag(&mut self, spec: &str) -> Result<()> {
        self.apply("attest", spec)
    }

    fn apply(&mut self, flag: &str, spec: &str) -> Result<()> {
        let bad = |why: String| Error::Invalid(format!("--{flag} {spec:?}: {why}"));
        let mut ty = None;
        let mut mode = None;
        let mut disabled = false;
        for field in spec.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| bad(format!("{field:?} is not KEY=VALUE")))?;
            match k {
                "type" => ty = Some(v.to_string()),
                "mode" => {
                    mode = Some(match v {
                        "min" => ProvenanceMode::Min,
                        "max" => ProvenanceMode::Max,
                        _ => return Err(bad(format!("mode={v}: expected min or max"))),
                    })
                }
                "disabled" => {
                    disabled = parse_bool(v)
                        .ok_or_else(|| bad(format!("disabled={v}: expected true or false")))?
                }
                "version" if v == "v1" => {}
                "version" => {
                    return Err(bad(format!(
                        "version={v}: hoist writes SLSA provenance v1 (version=v1)"
                    )))
                }
                "generator" => {
                    return Err(bad(
                        "hoist scans the image itself; SBOM generator images are not run".into(),
                    ))
                }
                other => return Err(bad(format!("unknown key {other:?}"))),
            }
        }
        match ty.as_deref() {
            Some("provenance") => {
                self.provenance = (!disabled).then(|| mode.unwrap_or_default());
            }
            Some("sbom") => {
                if mode.is_some() {
                    return Err(bad("mode= is for type=provenance".into()));
                }
                self.sbom = !disabled;
            }
            Some(other) => {
                return Err(bad(format!(
                    "unknown attestation type {other:?} (expected provenance or sbom)"
                )))
            }
            None => return Err(bad("missing type=provenance or type=sbom".into())),
        }
        Ok(())
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_spellings() {
        let mut o = AttestOptions::default();
        assert!(!o.any());
        o.provenance_flag("mode=max").unwrap();
        assert_eq!(o.provenance, Some(ProvenanceMode::Max));
        o.provenance_flag("false").unwrap();
        assert_eq!(o.provenance, None);
        o.provenance_flag("true").unwrap();
        assert_eq!(o.provenance, Some(ProvenanceMode::Min));
        o.sbom_flag("true").unwrap();
        assert!(o.sbom);
        let mut a = AttestOptions::default();
        a.attest_flag("type=provenance,mode=max").unwrap();
        a.attest_flag("type=sbom").unwrap();
        assert_eq!(
            a,
            AttestOptions {
                provenance: Some(ProvenanceMode::Max),
                sbom: true
            }
        );
        a.attest_flag("type=sbom,disabled=true").unwrap();
        assert!(!a.sbom);
        for bad in [
            "type=nope",
            "mode=max",
            "type=provenance,mode=huge",
            "type=sbom,generator=docker/scout",
            "type=provenance,version=v0.2",
            "type=provenance,bogus=1",
        ] {
            let e = AttestOptions::default().attest_flag(bad).unwrap_err();
            assert!(e.to_string().contains("--attest"), "{bad}: {e}");
        }
        assert!(AttestOptions::default().provenance_flag("mode=x").is_err());
    }
}
