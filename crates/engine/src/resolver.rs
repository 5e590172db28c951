//! Resolving base images: local transports (`oci:`, `oci-archive:`, `docker-archive:`)
//! and registry references (pulled through hoist's shared blob cache), and pushing.

use std::sync::OnceLock;

use hoist_image::{
    BlobStore, DockerArchiveSource, ImageRef, OciArchiveSource, OciLayoutSource, Platform, Source,
};
use hoist_registry::{Client, ClientConfig, PullPolicy, PushOptions, Reference};

use crate::engine::BaseResolver;
use crate::error::{Error, Result};
use crate::export::Pusher;
use crate::options::BuildOptions;
use crate::progress::{Event, Progress, Quiet};

/// The resolver and pusher `hoist build` uses.
pub struct DefaultResolver<'p> {
    config: ClientConfig,
    client: OnceLock<std::result::Result<Client, String>>,
    store: BlobStore,
    policy: PullPolicy,
    progress: &'p dyn Progress,
}

impl<'p> DefaultResolver<'p> {
    /// A resolver for a build with these options (blobs go to the build's cache store).
    pub fn new(opts: &BuildOptions, progress: &'p dyn Progress) -> Result<DefaultResolver<'p>> {
        let mut config = opts.registry.clone();
        // Base pulls and `--push` show their blob transfers on the build's display.
        config.progress = progress.transfers();
        Ok(DefaultResolver {
            config,
            client: OnceLock::new(),
            store: BlobStore::new(opts.cache_dir.join("blobs"))?,
            policy: opts.pull,
            progress,
        })
    }

    /// A resolver with these registry settings whose pulls and pushes report to
    /// `progress` (messages; transfers go where `config.progress` says).
    pub fn new_with(
        config: ClientConfig,
        store: BlobStore,
        policy: PullPolicy,
        progress: &'p dyn Progress,
    ) -> DefaultResolver<'p> {
        DefaultResolver {
            config,
            client: OnceLock::new(),
            store,
            policy,
            progress,
        }
    }

    /// A resolver with default settings and no progress display.
    pub fn standalone(
        config: ClientConfig,
        store: BlobStore,
        policy: PullPolicy,
    ) -> DefaultResolver<'static> {
        static QUIET: Quiet = Quiet;
        DefaultResolver {
            config,
            client: OnceLock::new(),
            store,
            policy,
            progress: &QUIET,
        }
    }

    /// The registry client (created on first use).
    pub fn client(&self) -> Result<&Client> {
        self.client
            .get_or_init(|| {
                Client::new(self.config.clone()).map_err(|e| hoist_image::chain_text(&e))
            })
            .as_ref()
            .map_err(|e| Error::Invalid(format!("registry client: {e}")))
    }

    /// The blob cache pulls go to.
    pub fn store(&self) -> &BlobStore {
        &self.store
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

/// Parse a registry reference, with or without `docker://`.
pub fn registry_reference(reference: &str) -> Result<Reference> {
    let r = reference.strip_prefix("docker://").unwrap_or(reference);
    Reference::parse(r).map_err(|e| Error::Invalid(e.to_string()))
}

fn reg_err(e: hoist_registry::Error) -> Error {
    Error::Image(e.into())
}

impl BaseResolver for DefaultResolver<'_> {
    fn open(&self, reference: &str, platform: &Platform) -> Result<Box<dyn Source>> {
        if let Some(s) = open_local(reference)? {
            return Ok(s);
        }
        let r = registry_reference(reference)?;
        self.progress
            .event(Event::Info(&format!("resolving {r} for {platform}")));
        let pulled = self
            .client()?
            .pull(&r, platform, &self.store, self.policy)
            .map_err(reg_err)?;
        if let Some(host) = &pulled.served_by {
            let from = if pulled.from_mirror {
                format!("mirror {host}")
            } else {
                host.clone()
            };
            self.progress.event(Event::Info(&format!(
                "pulled {r} from {from}: {} blobs, {} bytes",
                pulled.blobs_downloaded, pulled.bytes_downloaded
            )));
        }
        Ok(Box::new(pulled.source))
    }
}

impl Pusher for DefaultResolver<'_> {
    fn push(&self, src: &dyn Source, names: &[String]) -> Result<()> {
        self.push_mounting(src, names, &[])
    }

    fn push_mounting(
        &self,
        src: &dyn Source,
        names: &[String],
        mount_from: &[String],
    ) -> Result<()> {
        let refs = names
            .iter()
            .map(|n| registry_reference(n))
            .collect::<Result<Vec<_>>>()?;
        let opts = PushOptions {
            cache: Some(self.store.clone()),
            mount_from: mount_from
                .iter()
                .filter_map(|m| registry_reference(m).ok())
                .collect(),
            ..Default::default()
        };
        let report = self.client()?.push(src, &refs, &opts).map_err(reg_err)?;
        self.progress.event(Event::Info(&format!(
            "pushed {}: {} uploaded ({} bytes), {} mounted, {} already there",
            names.join(", "),
            report.uploaded,
            report.uploaded_bytes,
            report.mounted,
            report.skipped
        )));
        Ok(())
    }
}
