//! Resolving base images: local transports (`oci:`, `oci-archive:`, `docker-archive:`)
//! and registry references (pulled through hoist's shared blob cache), and pushing.

use std::sync::OnceLock;

use hoist_image::{
    BlobStore, DockerArchiveSource, ImageRef, OciArchiveSource, OciLayoutSource, Platform, Source,
};
use hoist_registry::{Client, ClientConfig, PullPolicy, PushOptions, Reference};

use crate::early_push::{early_destinations, EarlyPush};
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
    /// `--push` destinations that get each layer while the build runs.
    early_dests: Vec<String>,
    /// The early uploads, started with the first layer.
    early: OnceLock<Option<EarlyPush>>,
}

impl<'p> DefaultResolver<'p> {
    /// A resolver for a build with these options (blobs go to the build's cache store).
    pub fn new(opts: &BuildOptions, progress: &'p dyn Progress) -> Result<DefaultResolver<'p>> {
        let mut config = opts.registry.clone();
        // Base pulls and `--push` show their blob transfers on the build's display.
        config.progress = progress.transfers();
        // HOIST_EARLY_PUSH=0 pushes only after the build (for comparisons).
        let early_dests = if std::env::var_os("HOIST_EARLY_PUSH").is_some_and(|v| v == "0") {
            Vec::new()
        } else {
            early_destinations(&opts.outputs, &opts.tags)
        };
        Ok(DefaultResolver {
            config,
            client: OnceLock::new(),
            store: BlobStore::new(opts.cache_dir.join("blobs"))?,
            policy: opts.pull,
            progress,
            early_dests,
            early: OnceLock::new(),
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
            early_dests: Vec::new(),
            early: OnceLock::new(),
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
            early_dests: Vec::new(),
            early: OnceLock::new(),
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

    /// The early uploads, started on first use (`None` when there is nothing to push
    /// early or the destinations cannot be used; the final push reports why).
    fn early(&self) -> Option<&EarlyPush> {
        self.early
            .get_or_init(|| {
                if self.early_dests.is_empty() {
                    return None;
                }
                let mut refs: Vec<Reference> = Vec::new();
                for n in &self.early_dests {
                    let r = registry_reference(n).ok()?;
                    if !refs
                        .iter()
                        .any(|x| x.registry() == r.registry() && x.repository() == r.repository())
                    {
                        refs.push(r);
                    }
                }
                let client = self.client().ok()?.clone();
                // Two uploads at once: enough to keep a loopback or LAN registry busy
                // while the build uses the cores.
                Some(EarlyPush::start(client, refs, 2))
            })
            .as_ref()
    }

    /// Wait for the early uploads and say what they did.
    fn drain_early(&self) {
        let Some(early) = self.early.get().and_then(Option::as_ref) else {
            return;
        };
        let r = early.drain();
        self.progress.event(Event::Info(&format!(
            "uploaded during the build: {} layers ({} bytes), {} already there",
            r.uploaded, r.uploaded_bytes, r.present
        )));
        for f in r.failures.iter().take(3) {
            self.progress.event(Event::Info(&format!(
                "early upload failed, retrying in the push: {f}"
            )));
        }
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
    fn layer_ready(&self, store: &BlobStore, desc: &hoist_image::Descriptor) {
        if let Some(early) = self.early() {
            early.offer(store, desc);
        }
    }

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
        self.drain_early();
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
