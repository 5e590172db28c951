//! Resolving base images: local transports (`oci:`, `oci-archive:`, `docker-archive:`)
//! and registry references.

use hoist_image::{
    DockerArchiveSource, ImageRef, OciArchiveSource, OciLayoutSource, Platform, Source,
};

use crate::engine::BaseResolver;
use crate::error::{Error, Result};
use crate::export::Pusher;
use crate::options::BuildOptions;

/// The resolver `hoist build` uses.
pub struct DefaultResolver {
    _private: (),
}

impl DefaultResolver {
    /// A resolver for a build with these options.
    pub fn new(_opts: &BuildOptions) -> Result<DefaultResolver> {
        Ok(DefaultResolver { _private: () })
    }
}

/// Open a local image reference (`oci:`, `oci-archive:`, `docker-archive:`), if it is one.
pub fn open_local(reference: &str) -> Result<Option<Box<dyn Source>>> {
    let is_local = ["oci:", "oci-archive:", "docker-archive:"]
        .iter()
        .any(|p| reference.starts_with(p));
    if !is_local {
        return Ok(None);
    }
    let r = ImageRef::parse(reference)?;
    Ok(Some(match r {
        ImageRef::OciLayout { path, reference } => {
            Box::new(OciLayoutSource::open(path, reference.as_deref())?)
        }
        ImageRef::OciArchive { path, reference } => {
            Box::new(OciArchiveSource::open(path, reference.as_deref())?)
        }
        ImageRef::DockerArchive { path, reference } => {
            Box::new(DockerArchiveSource::open(path, reference.as_deref())?)
        }
        ImageRef::Docker(_) => return Ok(None),
    }))
}

impl BaseResolver for DefaultResolver {
    fn open(&self, reference: &str, _platform: &Platform) -> Result<Box<dyn Source>> {
        if let Some(s) = open_local(reference)? {
            return Ok(s);
        }
        Err(Error::Unsupported(format!(
            "pulling {reference:?} from a registry is not available in this build of hoist yet; use oci:, oci-archive: or docker-archive: (or --build-context NAME=oci:DIR)"
        )))
    }
}

impl Pusher for DefaultResolver {
    fn push(&self, _src: &dyn Source, names: &[String]) -> Result<()> {
        Err(Error::Unsupported(format!(
            "pushing to {} is not available in this build of hoist yet",
            names.join(", ")
        )))
    }
}
