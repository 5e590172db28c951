//! skopeo-style image references: `TRANSPORT:DETAILS`.
//!
//! | string                               | meaning                                          |
//! |--------------------------------------|--------------------------------------------------|
//! | `oci:PATH[:REF]`                     | OCI image layout directory; REF a tag or `@DIGEST`|
//! | `oci-archive:PATH[:REF]`             | OCI image layout inside a tar file               |
//! | `docker-archive:PATH[:REPO:TAG\|:@N]`| `docker save` tar; a repo tag or the N-th image  |
//! | `docker://NAME[:TAG\|@DIGEST]`       | a registry (handled by the registry crate)       |
//!
//! As in skopeo (containers/image `SplitPathAndImage`, docker-archive's
//! `ParseReference`), the path ends at the **first** `:`, so `oci:/a/b:latest` is the
//! tag `latest` of `/a/b` and a path that itself contains `:` cannot be named.
//!
//! ```
//! use hoist_image::ImageRef;
//! let r = ImageRef::parse("oci:/var/images/app:v1")?;
//! assert_eq!(
//!     r,
//!     ImageRef::OciLayout { path: "/var/images/app".into(), reference: Some("v1".into()) }
//! );
//! assert!(ImageRef::parse("ftp:/x").is_err());
//! # Ok::<(), hoist_image::Error>(())
//! ```

use std::fmt;
use std::path::PathBuf;

use crate::{
    Digest, DockerArchiveSource, Error, OciArchiveSource, OciLayoutSource, Result, Source,
};

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// `oci:PATH[:REF]`: an OCI image layout directory.
    OciLayout {
        /// The layout directory.
        path: PathBuf,
        /// A tag (`org.opencontainers.image.ref.name`) or `@sha256:…`.
        reference: Option<String>,
    },
    /// `oci-archive:PATH[:REF]`: an OCI image layout in a tar file.
    OciArchive {
        /// The tar file.
        path: PathBuf,
        /// A tag or `@sha256:…`.
        reference: Option<String>,
    },
    /// `docker-archive:PATH[:REF]`: a `docker save` tar file.
    DockerArchive {
        /// The tar file.
        path: PathBuf,
        /// `repo:tag` (matched against `RepoTags`) or `@N` (the N-th image, from 0).
        reference: Option<String>,
    },
    /// `docker://…`: a registry reference, without the `docker://` prefix.
    Docker(String),
}

/// The transports [`ImageRef::parse`] knows, for error messages.
pub const TRANSPORTS: &[&str] = &["oci", "oci-archive", "docker-archive", "docker"];

impl ImageRef {
    /// Parse `TRANSPORT:DETAILS` as skopeo does.
    pub fn parse(s: &str) -> Result<ImageRef> {
        let (transport, rest) = s.split_once(':').ok_or_else(|| {
            Error::Format(format!(
                "invalid image reference {s:?}: expected TRANSPORT:DETAILS (transports: {})",
                TRANSPORTS.join(", ")
            ))
        })?;
        match transport {
            "oci" | "oci-archive" => {
                let (path, reference) = split_path(s, rest)?;
                if let Some(r) = &reference {
                    validate_oci_reference(s, r)?;
                }
                Ok(if transport == "oci" {
                    ImageRef::OciLayout { path, reference }
                } else {
                    ImageRef::OciArchive { path, reference }
                })
            }
            "docker-archive" => {
                let (path, reference) = split_path(s, rest)?;
                if let Some(r) = &reference {
                    validate_docker_archive_reference(s, r)?;
                }
                Ok(ImageRef::DockerArchive { path, reference })
            }
            "docker" => {
                let name = rest.strip_prefix("//").ok_or_else(|| {
                    Error::Format(format!(
                        "invalid image reference {s:?}: expected docker://NAME"
                    ))
                })?;
                if name.is_empty() {
                    return Err(Error::Format(format!(
                        "invalid image reference {s:?}: empty image name"
                    )));
                }
                Ok(ImageRef::Docker(name.to_string()))
            }
            "containers-storage" | "docker-daemon" | "dir" | "ostree" | "sif" | "tarball" => {
                Err(Error::Format(format!(
                    "image reference {s:?}: transport {transport:?} is not supported by hoist \
                     (supported: {})",
                    TRANSPORTS.join(", ")
                )))
            }
            other => Err(Error::Format(format!(
                "image reference {s:?}: unknown transport {other:?} (supported: {})",
                TRANSPORTS.join(", ")
            ))),
        }
    }

    /// The transport name (`oci`, `oci-archive`, `docker-archive`, `docker`).
    pub fn transport(&self) -> &'static str {
        match self {
            ImageRef::OciLayout { .. } => "oci",
            ImageRef::OciArchive { .. } => "oci-archive",
            ImageRef::DockerArchive { .. } => "docker-archive",
            ImageRef::Docker(_) => "docker",
        }
    }

    /// Whether the image is on the local file system (not a registry).
    pub fn is_local(&self) -> bool {
        !matches!(self, ImageRef::Docker(_))
    }

    /// Open a local image as a [`Source`]. A `docker://` reference is an error here:
    /// registries are the registry crate's.
    pub fn open_local(&self) -> Result<Box<dyn Source>> {
        Ok(match self {
            ImageRef::OciLayout { path, reference } => {
                Box::new(OciLayoutSource::open(path, reference.as_deref())?)
            }
            ImageRef::OciArchive { path, reference } => {
                Box::new(OciArchiveSource::open(path, reference.as_deref())?)
            }
            ImageRef::DockerArchive { path, reference } => {
                Box::new(DockerArchiveSource::open(path, reference.as_deref())?)
            }
            ImageRef::Docker(name) => {
                return Err(Error::Format(format!(
                    "docker://{name} is a registry image, not a local one"
                )))
            }
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::OciLayout { path, reference }
            | ImageRef::OciArchive { path, reference }
            | ImageRef::DockerArchive { path, reference } => {
                write!(f, "{}:{}", self.transport(), path.display())?;
                if let Some(r) = reference {
                    write!(f, ":{r}")?;
                }
                Ok(())
            }
            ImageRef::Docker(name) => write!(f, "docker://{name}"),
        }
    }
}

impl std::str::FromStr for ImageRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ImageRef::parse(s)
    }
}

fn split_path(whole: &str, rest: &str) -> Result<(PathBuf, Option<String>)> {
    let (path, reference) = match rest.split_once(':') {
        Some((p, r)) => (p, Some(r)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(Error::Format(format!(
            "invalid image reference {whole:?}: empty path"
        )));
    }
    let reference = match reference {
        None => None,
        Some("") => {
            return Err(Error::Format(format!(
                "invalid image reference {whole:?}: empty reference after ':' \
                 (a path cannot contain ':')"
            )))
        }
        Some(r) => Some(r.to_string()),
    };
    Ok((PathBuf::from(path), reference))
}

/// A tag as an OCI layout's `org.opencontainers.image.ref.name` may hold (the spec's
/// grammar, which allows full names like `example.com/app:v1`), or `@DIGEST`.
fn validate_oci_reference(whole: &str, r: &str) -> Result<()> {
    if let Some(d) = r.strip_prefix('@') {
        Digest::parse(d)?;
        return Ok(());
    }
    let ok = r
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-:/+@".contains(&b));
    if !ok {
        return Err(Error::Format(format!(
            "invalid image reference {whole:?}: {r:?} is not a valid reference name"
        )));
    }
    Ok(())
}

fn validate_docker_archive_reference(whole: &str, r: &str) -> Result<()> {
    if let Some(n) = r.strip_prefix('@') {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.parse::<usize>().is_err() {
            return Err(Error::Format(format!(
                "invalid image reference {whole:?}: expected @N (an image index), got @{n}"
            )));
        }
        return Ok(());
    }
    if r.contains('@') {
        return Err(Error::Format(format!(
            "invalid image reference {whole:?}: docker-archive references cannot use a digest"
        )));
    }
    let ok = r
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-:/".contains(&b));
    if !ok {
        return Err(Error::Format(format!(
            "invalid image reference {whole:?}: {r:?} is not a valid repository:tag"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[test]
    fn parses_like_skopeo() {
        assert_eq!(
            p("oci:/a/b:latest"),
            ImageRef::OciLayout {
                path: "/a/b".into(),
                reference: Some("latest".into())
            }
        );
        assert_eq!(
            p("oci:./out"),
            ImageRef::OciLayout {
                path: "./out".into(),
                reference: None
            }
        );
        // The path ends at the first colon; the rest (colons included) is the reference.
        assert_eq!(
            p("oci:/a:example.com/app:v1"),
            ImageRef::OciLayout {
                path: "/a".into(),
                reference: Some("example.com/app:v1".into())
            }
        );
        let d = Digest::sha256(b"x");
        assert_eq!(
            p(&format!("oci-archive:img.tar:@{d}")),
            ImageRef::OciArchive {
                path: "img.tar".into(),
                reference: Some(format!("@{d}"))
            }
        );
        assert_eq!(
            p("docker-archive:/t/x.tar:busybox:latest"),
            ImageRef::DockerArchive {
                path: "/t/x.tar".into(),
                reference: Some("busybox:latest".into())
            }
        );
        assert_eq!(
            p("docker-archive:x.tar:@1"),
            ImageRef::DockerArchive {
                path: "x.tar".into(),
                reference: Some("@1".into())
            }
        );
        assert_eq!(
            p("docker://localhost:5000/a/b:c"),
            ImageRef::Docker("localhost:5000/a/b:c".into())
        );
        for s in [
            "oci:/a:latest",
            "oci-archive:x.tar",
            "docker-archive:x.tar:a/b:c",
            "docker://busybox",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
    }

    #[test]
    fn clear_errors() {
        let e = ImageRef::parse("foo:/x").unwrap_err().to_string();
        assert!(e.contains("unknown transport \"foo\""), "{e}");
        assert!(e.contains("oci-archive"), "{e}");
        let e = ImageRef::parse("/just/a/path").unwrap_err().to_string();
        assert!(e.contains("TRANSPORT:DETAILS"), "{e}");
        let e = ImageRef::parse("containers-storage:x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported"), "{e}");
        assert!(ImageRef::parse("oci:").is_err());
        assert!(ImageRef::parse("oci:/a:").is_err());
        assert!(ImageRef::parse("oci:/a:@sha256:zz").is_err());
        assert!(ImageRef::parse("oci:/a:bad tag").is_err());
        assert!(ImageRef::parse("docker-archive:x.tar:@x").is_err());
        assert!(ImageRef::parse("docker-archive:x.tar:a@sha256:00").is_err());
        assert!(ImageRef::parse("docker:busybox").is_err());
    }
}
