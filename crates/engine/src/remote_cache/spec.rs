//! `--cache-to` / `--cache-from` specs, in BuildKit's syntax.
//!
//! ```text
//! --cache-to   type=registry,ref=REG/REPO:TAG[,mode=min|max][,compression=gzip|zstd|uncompressed]
//!              [,compression-level=N][,ignore-error=true]
//! --cache-to   type=local,dest=DIR[,mode=…][,compression=…][,ignore-error=true]
//! --cache-to   type=inline                     (the pushed image carries its own cache, mode=min)
//! --cache-from type=registry,ref=REF[,strict=true]  · type=local,src=DIR · REF (= type=registry,ref=REF)
//! ```
//!
//! Every error names the flag and the spec it was given.

use std::path::PathBuf;

use hoist_image::media_type::Compression;

use crate::error::{Error, Result};

/// Which steps an export carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The final image's steps (its stage chain) only: the default.
    #[default]
    Min,
    /// Every step of every stage the build ran.
    Max,
}

/// Where a cache is exported to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportTarget {
    /// An OCI artifact pushed to `REG/REPO:TAG`.
    Registry(String),
    /// An OCI image layout directory holding the artifact (replaced atomically).
    Local(PathBuf),
    /// In the image config of the pushed image itself (mode=min).
    Inline,
}

/// One `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheExport {
    /// Where to.
    pub target: ExportTarget,
    /// Which steps.
    pub mode: Mode,
    /// The compression of the exported layer blobs (`None`: the blobs the build has).
    pub compression: Option<Compression>,
    /// Its level.
    pub compression_level: Option<i32>,
    /// A failed export is a warning instead of a failed build.
    pub ignore_error: bool,
    /// The spec as given (for messages).
    pub spec: String,
}

/// Where a cache is imported from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportSource {
    /// A cache artifact (or an image with an inline cache) in a registry.
    Registry(String),
    /// An OCI image layout directory written by `type=local,dest=`.
    Local(PathBuf),
}

/// One `--cache-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheImport {
    /// From where.
    pub source: ImportSource,
    /// A cache that cannot be read fails the build (default: a warning, then a cold build).
    pub strict: bool,
    /// The spec as given (for messages).
    pub spec: String,
}

fn attrs(flag: &str, spec: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push((k.to_ascii_lowercase(), v.to_string())),
            _ => {
                return Err(Error::Invalid(format!(
                    "{flag} {spec:?}: {part:?} is not KEY=VALUE"
                )))
            }
        }
    }
    Ok(out)
}

fn bool_attr(flag: &str, spec: &str, k: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::Invalid(format!(
            "{flag} {spec:?}: {k}={v:?} is not true or false"
        ))),
    }
}

fn unknown(flag: &str, spec: &str, k: &str, kind: &str) -> Error {
    Error::Invalid(format!(
        "{flag} {spec:?}: unknown attribute {k:?} for type={kind}"
    ))
}

/// The `type=` attribute of a cache spec; `expected` lists the types the flag takes.
fn type_attr(flag: &str, spec: &str, kv: &[(String, String)], expected: &str) -> Result<String> {
    kv.iter()
        .find(|(k, _)| k == "type")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| Error::Invalid(format!("{flag} {spec:?}: missing type= ({expected})")))
}

fn unknown_type(flag: &str, spec: &str, t: &str) -> Error {
    Error::Invalid(format!(
        "{flag} {spec:?}: unknown cache type {t:?} (expected registry, local or inline)"
    ))
}

impl CacheExport {
    /// Parse one `--cache-to` value.
    pub fn parse(spec: &str) -> Result<CacheExport> {
        const FLAG: &str = "--cache-to";
        let kv = attrs(FLAG, spec)?;
        let kind = type_attr(FLAG, spec, &kv, "registry, local or inline")?;
        let mut e = CacheExport {
            target: ExportTarget::Inline,
            mode: Mode::Min,
            compression: None,
            compression_level: None,
            ignore_error: false,
            spec: spec.to_string(),
        };
        let (mut reference, mut dest, mut mode_given) = (None, None, false);
        for (k, v) in &kv {
            match k.as_str() {
                "type" => {}
                "ref" if kind == "registry" => reference = Some(v.clone()),
                "dest" if kind == "local" => dest = Some(PathBuf::from(v)),
                "mode" => {
                    mode_given = true;
                    e.mode = match v.as_str() {
                        "min" => Mode::Min,
                        "max" => Mode::Max,
                        _ => {
                            return Err(Error::Invalid(format!(
                                "{FLAG} {spec:?}: unknown mode {v:?} (expected min or max)"
                            )))
                        }
                    }
                }
                "compression" => {
                    e.compression = Some(match v.as_str() {
                        "gzip" => Compression::Gzip,
                        "zstd" => Compression::Zstd,
                        "uncompressed" => Compression::None,
                        _ => {
                            return Err(Error::Invalid(format!(
                                "{FLAG} {spec:?}: unknown compression {v:?} (expected gzip, \
                                 zstd or uncompressed)"
                            )))
                        }
                    })
                }
                "compression-level" => {
                    e.compression_level = Some(v.parse().map_err(|_| {
                        Error::Invalid(format!(
                            "{FLAG} {spec:?}: compression-level={v:?} is not a number"
                        ))
                    })?)
                }
                "ignore-error" => e.ignore_error = bool_attr(FLAG, spec, k, v)?,
                // What hoist always writes: an image manifest with OCI media types.
                "image-manifest" | "oci-mediatypes" => {
                    if !bool_attr(FLAG, spec, k, v)? {
                        return Err(Error::Invalid(format!(
                            "{FLAG} {spec:?}: {k}=false is not supported: hoist's cache is \
                             always an OCI image manifest"
                        )));
                    }
                }
                _ if ["registry", "local", "inline"].contains(&kind.as_str()) => {
                    return Err(unknown(FLAG, spec, k, &kind))
                }
                _ => return Err(unknown_type(FLAG, spec, &kind)),
            }
        }
        e.target = match kind.as_str() {
            "registry" => {
                ExportTarget::Registry(reference.filter(|r| !r.is_empty()).ok_or_else(|| {
                    Error::Invalid(format!(
                        "{FLAG} {spec:?}: type=registry needs ref=REGISTRY/REPOSITORY:TAG"
                    ))
                })?)
            }
            "local" => ExportTarget::Local(dest.filter(|d| !d.as_os_str().is_empty()).ok_or_else(
                || Error::Invalid(format!("{FLAG} {spec:?}: type=local needs dest=DIR")),
            )?),
            "inline" => {
                if mode_given && e.mode == Mode::Max {
                    return Err(Error::Invalid(format!(
                        "{FLAG} {spec:?}: type=inline supports mode=min only (the image \
                         carries its own layers); use type=registry,mode=max"
                    )));
                }
                if e.compression.is_some() {
                    return Err(Error::Invalid(format!(
                        "{FLAG} {spec:?}: type=inline has the image's own layers; set \
                         compression on the --output instead"
                    )));
                }
                ExportTarget::Inline
            }
            other => return Err(unknown_type(FLAG, spec, other)),
        };
        Ok(e)
    }
}

impl CacheImport {
    /// Parse one `--cache-from` value (a bare reference means `type=registry,ref=REF`).
    pub fn parse(spec: &str) -> Result<CacheImport> {
        const FLAG: &str = "--cache-from";
        if !spec.contains('=') {
            if spec.trim().is_empty() {
                return Err(Error::Invalid(format!("{FLAG}: empty value")));
            }
            return Ok(CacheImport {
                source: ImportSource::Registry(spec.trim().to_string()),
                strict: false,
                spec: spec.to_string(),
            });
        }
        let kv = attrs(FLAG, spec)?;
        let kind = type_attr(FLAG, spec, &kv, "registry or local")?;
        let (mut reference, mut src, mut strict) = (None, None, false);
        for (k, v) in &kv {
            match k.as_str() {
                "type" => {}
                "ref" if kind == "registry" => reference = Some(v.clone()),
                "src" if kind == "local" => src = Some(PathBuf::from(v)),
                "strict" => strict = bool_attr(FLAG, spec, k, v)?,
                _ if ["registry", "local"].contains(&kind.as_str()) => {
                    return Err(unknown(FLAG, spec, k, &kind))
                }
                _ => break,
            }
        }
        let source = match kind.as_str() {
            "registry" => {
                ImportSource::Registry(reference.filter(|r| !r.is_empty()).ok_or_else(|| {
                    Error::Invalid(format!("{FLAG} {spec:?}: type=registry needs ref=REF"))
                })?)
            }
            "local" => {
                ImportSource::Local(src.filter(|d| !d.as_os_str().is_empty()).ok_or_else(|| {
                    Error::Invalid(format!("{FLAG} {spec:?}: type=local needs src=DIR"))
                })?)
            }
            "inline" => {
                return Err(Error::Invalid(format!(
                    "{FLAG} {spec:?}: an inline cache is read from the image: use \
                     type=registry,ref=IMAGE"
                )))
            }
            other => {
                return Err(Error::Invalid(format!(
                    "{FLAG} {spec:?}: unknown cache type {other:?} (expected registry or local)"
                )))
            }
        };
        Ok(CacheImport {
            source,
            strict,
            spec: spec.to_string(),
        })
    }
}

/// Make the directories of local caches absolute (see [`crate::BuildOptions::absolute`]).
pub fn make_absolute(from: &mut [CacheImport], to: &mut [CacheExport]) {
    for f in from {
        if let ImportSource::Local(d) = &mut f.source {
            *d = crate::options::absolute(d);
        }
    }
    for t in to {
        if let ExportTarget::Local(d) = &mut t.target {
            *d = crate::options::absolute(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_specs() {
        let e = CacheExport::parse("type=registry,ref=r:5000/c:main,mode=max,ignore-error=true")
            .unwrap();
        assert_eq!(e.target, ExportTarget::Registry("r:5000/c:main".into()));
        assert_eq!(e.mode, Mode::Max);
        assert!(e.ignore_error);
        let l = CacheExport::parse("type=local,dest=/tmp/c,compression=zstd").unwrap();
        assert_eq!(l.target, ExportTarget::Local("/tmp/c".into()));
        assert_eq!(l.mode, Mode::Min);
        assert_eq!(l.compression, Some(Compression::Zstd));
        assert_eq!(
            CacheExport::parse("type=inline").unwrap().target,
            ExportTarget::Inline
        );
    }

    #[test]
    fn bad_export_specs_name_the_flag() {
        for (spec, want) in [
            ("type=registry", "needs ref="),
            ("type=registry,ref=", "needs ref="),
            ("type=s3,bucket=x", "unknown cache type \"s3\""),
            ("type=registry,ref=r/c,mode=all", "unknown mode \"all\""),
            ("type=local", "needs dest="),
            (
                "type=registry,ref=r/c,compression=lz4",
                "unknown compression",
            ),
            (
                "type=registry,ref=r/c,colour=blue",
                "unknown attribute \"colour\"",
            ),
            ("mode=max", "missing type="),
            ("type=inline,mode=max", "mode=min only"),
            (
                "type=registry,ref=r/c,ignore-error=perhaps",
                "not true or false",
            ),
        ] {
            let e = CacheExport::parse(spec).unwrap_err().to_string();
            assert!(e.starts_with("--cache-to"), "{spec}: {e}");
            assert!(e.contains(want), "{spec}: {e}");
        }
    }

    #[test]
    fn import_specs() {
        let i = CacheImport::parse("type=registry,ref=r/c:main").unwrap();
        assert_eq!(i.source, ImportSource::Registry("r/c:main".into()));
        assert!(!i.strict);
        let b = CacheImport::parse("r/c:main").unwrap();
        assert_eq!(b.source, i.source);
        let l = CacheImport::parse("type=local,src=/c,strict=true").unwrap();
        assert_eq!(l.source, ImportSource::Local("/c".into()));
        assert!(l.strict);
        for (spec, want) in [
            ("type=registry", "needs ref="),
            ("type=gha", "unknown cache type"),
            ("type=local,dest=/x", "unknown attribute \"dest\""),
            ("type=inline", "type=registry,ref=IMAGE"),
        ] {
            let e = CacheImport::parse(spec).unwrap_err().to_string();
            assert!(e.starts_with("--cache-from"), "{spec}: {e}");
            assert!(e.contains(want), "{spec}: {e}");
        }
    }
}
