//! `--output` specifications in BuildKit's syntax, and writing an image to one.
//!
//! ```text
//! type=oci,dest=out/             OCI image layout directory (tar=false)
//! type=oci,dest=img.tar          OCI archive (tar=true)
//! type=docker,dest=img.tar,name=app:v1,name=app:latest   docker-archive
//! type=local,dest=rootfs/        the image's file system, unpacked
//! type=tar,dest=rootfs.tar       the image's file system as one tar
//! DIR                            shorthand for type=local,dest=DIR
//! -                              shorthand for type=tar,dest=- (standard output)
//! ```
//!
//! The value is CSV as in buildx (`"name=a,b"` quotes a comma). For `type=oci` the
//! `tar` attribute chooses between a layout directory and an archive; without it a
//! destination that is `-`, ends in `.tar` or is an existing file gives an archive,
//! anything else a layout directory. (BuildKit defaults to an archive; hoist follows
//! the destination so that `dest=DIR` makes the directory most people expect.)
//! Attributes hoist does not interpret here are kept in [`OutputSpec::attrs`] for the
//! caller (e.g. `compression`, `oci-mediatypes`, `push`).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;

use crate::layer::ApplyOptions;
use crate::rootfs::{unpack_rootfs, write_rootfs_tar, write_rootfs_tar_to};
use crate::sink::{
    write_docker_archive, write_docker_archive_to, write_oci_archive, write_oci_archive_to,
    write_oci_layout,
};
use crate::{Descriptor, Error, Platform, Result, Source};

/// What kind of output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// `type=oci` as a directory.
    OciLayout,
    /// `type=oci` as a tar.
    OciArchive,
    /// `type=docker`.
    DockerArchive,
    /// `type=local`.
    Local,
    /// `type=tar`.
    Tar,
    /// `type=image` / `type=registry`: pushed by the registry crate, not written here.
    Image,
}

/// Where an output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A file or directory.
    Path(PathBuf),
    /// Standard output (`dest=-`), for the tar kinds.
    Stdout,
}

/// One parsed `--output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    /// The kind.
    pub kind: OutputKind,
    /// The destination (`None` only for [`OutputKind::Image`]).
    pub dest: Option<Dest>,
    /// `name=` values (image names, `repo:tag`), in order.
    pub names: Vec<String>,
    /// Every other attribute.
    pub attrs: BTreeMap<String, String>,
}

fn csv_fields(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(Error::Format(format!("--output {s:?}: unterminated quote")));
    }
    out.push(cur);
    Ok(out)
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::Format(format!(
            "--output: {key}={v:?} is not a boolean"
        ))),
    }
}

impl OutputSpec {
    /// Parse one `--output` value.
    pub fn parse(s: &str) -> Result<OutputSpec> {
        if s == "-" {
            return Ok(OutputSpec {
                kind: OutputKind::Tar,
                dest: Some(Dest::Stdout),
                names: Vec::new(),
                attrs: BTreeMap::new(),
            });
        }
        if !s.contains('=') {
            if s.is_empty() {
                return Err(Error::Format("--output: empty value".into()));
            }
            return Ok(OutputSpec {
                kind: OutputKind::Local,
                dest: Some(Dest::Path(PathBuf::from(s))),
                names: Vec::new(),
                attrs: BTreeMap::new(),
            });
        }
        let mut kind = None;
        let mut dest = None;
        let mut names = Vec::new();
        let mut tar = None;
        let mut attrs = BTreeMap::new();
        for field in csv_fields(s)? {
            let (k, v) = field.split_once('=').ok_or_else(|| {
                Error::Format(format!("--output {s:?}: {field:?} is not KEY=VALUE"))
            })?;
            match k.trim() {
                "type" => kind = Some(v.to_string()),
                "dest" => dest = Some(v.to_string()),
                "name" => names.extend(v.split(',').map(str::to_string)),
                "tar" => tar = Some(parse_bool("tar", v)?),
                other => {
                    attrs.insert(other.to_string(), v.to_string());
                }
            }
        }
        let kind = kind.ok_or_else(|| Error::Format(format!("--output {s:?}: missing type=")))?;
        let dest = dest.map(|d| {
            if d == "-" {
                Dest::Stdout
            } else {
                Dest::Path(PathBuf::from(d))
            }
        });
        let need_dest = |dest: Option<Dest>| {
            dest.ok_or_else(|| Error::Format(format!("--output {s:?}: type={kind} needs dest=")))
        };
        let kind = match kind.as_str() {
            "oci" => {
                let d = need_dest(dest.clone())?;
                let as_tar = match (&d, tar) {
                    (_, Some(t)) => t,
                    (Dest::Stdout, None) => true,
                    (Dest::Path(p), None) => {
                        p.extension().is_some_and(|e| e == "tar") || p.is_file()
                    }
                };
                if !as_tar && d == Dest::Stdout {
                    return Err(Error::Format(format!(
                        "--output {s:?}: an OCI layout directory cannot go to standard output"
                    )));
                }
                if as_tar {
                    OutputKind::OciArchive
                } else {
                    OutputKind::OciLayout
                }
            }
            "docker" => {
                need_dest(dest.clone())?;
                if tar == Some(false) {
                    return Err(Error::Format(format!(
                        "--output {s:?}: type=docker is always a tar"
                    )));
                }
                OutputKind::DockerArchive
            }
            "local" => {
                if need_dest(dest.clone())? == Dest::Stdout {
                    return Err(Error::Format(format!(
                        "--output {s:?}: type=local needs a directory; use type=tar for stdout"
                    )));
                }
                OutputKind::Local
            }
            "tar" => {
                need_dest(dest.clone())?;
                OutputKind::Tar
            }
            "image" | "registry" => {
                if kind == "registry" {
                    attrs.insert("push".into(), "true".into());
                }
                OutputKind::Image
            }
            other => {
                return Err(Error::Format(format!(
                    "--output {s:?}: unknown type {other:?} \
                     (expected oci, docker, local, tar, image or registry)"
                )))
            }
        };
        Ok(OutputSpec {
            kind,
            dest,
            names,
            attrs,
        })
    }

    /// The tag an OCI layout or archive names the image by: the tag of the first
    /// `name=` (`app:v1` → `v1`, `app` → `latest`), or none.
    pub fn oci_tag(&self) -> Option<String> {
        let n = self.names.first()?;
        if let Some((_, t)) = n.rsplit_once(':') {
            if !t.contains('/') {
                return Some(t.to_string());
            }
        }
        Some("latest".to_string())
    }
}

/// Write the image `src` to `spec`: everything but [`OutputKind::Image`], which is
/// the registry crate's. Missing parent directories of the destination are created. Directory and file outputs appear atomically; an output to
/// standard output is streamed. Returns the image's root (or manifest) descriptor,
/// `None` for the file-system kinds.
pub fn write_output(
    src: &dyn Source,
    spec: &OutputSpec,
    platform: &Platform,
    apply: &ApplyOptions,
) -> Result<Option<Descriptor>> {
    let tag = spec.oci_tag();
    let dest = spec.dest.as_ref();
    if let Some(Dest::Path(p)) = dest {
        // As docker and buildx do, create the destination's parent directories.
        if let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
    }
    let stdout = || io::BufWriter::with_capacity(256 << 10, io::stdout().lock());
    let flush = |mut w: io::BufWriter<io::StdoutLock<'_>>| {
        w.flush()
            .map_err(|e| Error::stream("writing to standard output", e))
    };
    match (spec.kind, dest) {
        (OutputKind::OciLayout, Some(Dest::Path(p))) => {
            write_oci_layout(src, p, tag.as_deref()).map(Some)
        }
        (OutputKind::OciArchive, Some(Dest::Path(p))) => {
            write_oci_archive(src, p, tag.as_deref()).map(Some)
        }
        (OutputKind::OciArchive, Some(Dest::Stdout)) => {
            let (w, d) = write_oci_archive_to(src, stdout(), tag.as_deref())?;
            flush(w)?;
            Ok(Some(d))
        }
        (OutputKind::DockerArchive, Some(Dest::Path(p))) => {
            write_docker_archive(src, p, &spec.names, platform).map(Some)
        }
        (OutputKind::DockerArchive, Some(Dest::Stdout)) => {
            let (w, d) = write_docker_archive_to(src, stdout(), &spec.names, platform)?;
            flush(w)?;
            Ok(Some(d))
        }
        (OutputKind::Local, Some(Dest::Path(p))) => {
            unpack_rootfs(src, platform, p, apply)?;
            Ok(None)
        }
        (OutputKind::Tar, Some(Dest::Path(p))) => {
            write_rootfs_tar(src, platform, p)?;
            Ok(None)
        }
        (OutputKind::Tar, Some(Dest::Stdout)) => {
            let w = write_rootfs_tar_to(src, platform, stdout(), &std::env::temp_dir())?;
            flush(w)?;
            Ok(None)
        }
        (kind, _) => Err(Error::Format(format!(
            "output {kind:?} to {dest:?} is not written by the image crate"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildkit_outputs() {
        let o = OutputSpec::parse("type=oci,dest=out").unwrap();
        assert_eq!(o.kind, OutputKind::OciLayout);
        assert_eq!(o.dest, Some(Dest::Path("out".into())));
        let o = OutputSpec::parse("type=oci,dest=img.tar").unwrap();
        assert_eq!(o.kind, OutputKind::OciArchive);
        let o = OutputSpec::parse("type=oci,dest=img,tar=true").unwrap();
        assert_eq!(o.kind, OutputKind::OciArchive);
        let o = OutputSpec::parse("type=oci,dest=-").unwrap();
        assert_eq!(
            (o.kind, o.dest),
            (OutputKind::OciArchive, Some(Dest::Stdout))
        );
        let o =
            OutputSpec::parse(r#"type=docker,dest=d.tar,"name=a:1,b",compression=zstd"#).unwrap();
        assert_eq!(o.kind, OutputKind::DockerArchive);
        assert_eq!(o.names, ["a:1", "b"]);
        assert_eq!(o.attrs["compression"], "zstd");
        assert_eq!(o.oci_tag().as_deref(), Some("1"));
        let o = OutputSpec::parse("out/dir").unwrap();
        assert_eq!(o.kind, OutputKind::Local);
        let o = OutputSpec::parse("-").unwrap();
        assert_eq!((o.kind, o.dest), (OutputKind::Tar, Some(Dest::Stdout)));
        let o = OutputSpec::parse("type=registry,name=localhost:5000/a").unwrap();
        assert_eq!(o.kind, OutputKind::Image);
        assert_eq!(o.attrs["push"], "true");
        assert_eq!(o.oci_tag().as_deref(), Some("latest"));
        for bad in [
            "type=oci",
            "type=nope,dest=x",
            "dest=x",
            "type=local,dest=-",
            "type=oci,dest=-,tar=false",
            "type=docker,dest=x,tar=false",
            "type=oci,dest=x,tar=maybe",
            r#"type=oci,"dest=x"#,
            "",
        ] {
            assert!(OutputSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
