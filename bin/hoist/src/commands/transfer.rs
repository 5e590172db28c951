//! `hoist pull`, `hoist push` and `hoist copy`: move images between any transports.
//!
//! Every transport is a `Source` and every destination a sink, so these are short: open
//! the source, write the destination, check the digest did not change.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use hoist_engine::output::OutputSpec;
use hoist_engine::progress::{self, Mode};
use hoist_engine::resolver::{registry_reference, DefaultResolver};
use hoist_engine::BaseResolver;
use hoist_image::{BlobStore, ImageRef, Platform, Source};
use hoist_registry::{PullPolicy, PushOptions};

use super::registry_args::RegistryArgs;

/// The cache's blob store, and a shared hold on the cache for as long as the command
/// keeps it, so a concurrent `hoist cache prune` (or a task's prune) never removes blobs
/// this command is writing or reading. `None` when the file system cannot lock.
pub(crate) fn cache_store(
    cache_dir: &Option<PathBuf>,
) -> Result<(BlobStore, Option<hoist_cache::CacheLock>)> {
    let dir = cache_dir
        .clone()
        .unwrap_or_else(hoist_engine::options::default_cache_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cache directory {}", dir.display()))?;
    let lock = match hoist_cache::CacheLock::shared_telling(&dir, || {
        eprintln!("waiting for the prune of {} to finish", dir.display())
    }) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(
                "cannot lock the cache ({e}): a concurrent prune could disturb this command"
            );
            None
        }
    };
    Ok((BlobStore::new(dir.join("blobs"))?, lock))
}

/// The display for `--progress`, and a registry configuration reporting to it.
fn display_and_config(
    progress: &str,
    registry: &RegistryArgs,
) -> Result<(Box<dyn progress::Progress>, hoist_registry::ClientConfig)> {
    let mode: Mode = progress
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--progress: {e}"))?;
    let display = progress::display(mode);
    let mut config = registry.to_config();
    config.progress = display.transfers();
    Ok((display, config))
}

fn platform(p: &Option<String>) -> Result<Platform> {
    match p {
        Some(p) => Platform::parse(p)
            .with_context(|| format!("--platform {p:?}: expected os/arch[/variant]")),
        None => Ok(Platform::host()),
    }
}

/// Open any image reference: local transports, or `docker://REF` (also a bare REF).
pub fn open_any(reference: &str, resolver: &DefaultResolver<'_>) -> Result<Box<dyn Source>> {
    if let Some(s) = hoist_engine::resolver::open_local(reference)? {
        return Ok(s);
    }
    let r = registry_reference(reference)?;
    Ok(Box::new(resolver.client()?.source(&r)))
}

/// Flags of `hoist pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image: REF or docker://REF.
    pub image: String,
    /// Where to write it (same syntax as `hoist build --output`; repeatable). Without
    /// one, the image is only pulled into the cache.
    #[arg(short = 'o', long = "output")]
    pub outputs: Vec<String>,
    /// Platform to pull from an index (default: the host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Resolve the tag again even if it is cached (`always`), or use the cache (`missing`, `never`).
    #[arg(long, default_value = "always")]
    pub pull: String,
    /// hoist's cache directory.
    #[arg(long = "cache-dir", env = "HOIST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Progress display: auto (bars on a terminal), plain (periodic lines), json or quiet.
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Run `hoist pull`.
pub fn pull(a: PullArgs) -> Result<ExitCode> {
    let outputs = a
        .outputs
        .iter()
        .map(|o| OutputSpec::parse(o))
        .collect::<Result<Vec<_>, _>>()?;
    super::output_attrs::refuse_for_pull(&outputs)?;
    let (store, _cache_lock) = cache_store(&a.cache_dir)?;
    let policy: PullPolicy = a.pull.parse().map_err(|e| anyhow::anyhow!("--pull: {e}"))?;
    let (display, config) = display_and_config(&a.progress, &a.registry)?;
    let resolver = DefaultResolver::new_with(config, store.clone(), policy, display.as_ref());
    let p = platform(&a.platform)?;
    let src = resolver.open(&a.image, &p)?;
    let scratch = tempfile::tempdir()?;
    let tag = registry_reference(&a.image)?.to_string();
    let meta = hoist_engine::export::export(
        src.as_ref(),
        &p,
        &outputs,
        &[tag],
        scratch.path(),
        Some(&resolver),
        display.as_ref(),
    )?;
    println!("{}", meta.manifest_digest);
    Ok(ExitCode::SUCCESS)
}

/// Flags of `hoist push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image to push: oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE or docker://REF.
    pub source: String,
    /// Destinations: docker://REF or REF (repeatable; all get the same manifest).
    #[arg(required = true)]
    pub destinations: Vec<String>,
    /// hoist's cache directory (its pull records help cross-repository mounts).
    #[arg(long = "cache-dir", env = "HOIST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Progress display: auto (bars on a terminal), plain (periodic lines), json or quiet.
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Run `hoist push`.
pub fn push(a: PushArgs) -> Result<ExitCode> {
    let (store, _cache_lock) = cache_store(&a.cache_dir)?;
    let (_display, config) = display_and_config(&a.progress, &a.registry)?;
    let resolver = DefaultResolver::standalone(config, store.clone(), PullPolicy::Missing);
    let src = open_any(&a.source, &resolver)?;
    let mount_from = if hoist_engine::resolver::open_local(&a.source)?.is_none() {
        vec![registry_reference(&a.source)?]
    } else {
        Vec::new()
    };
    let refs = a
        .destinations
        .iter()
        .map(|d| registry_reference(d))
        .collect::<Result<Vec<_>, _>>()?;
    let client = resolver.client()?;
    let report = client.push(
        src.as_ref(),
        &refs,
        &PushOptions {
            cache: Some(store),
            mount_from: mount_from.clone(),
            ..Default::default()
        },
    )?;
    let pushed = match report.digest.clone() {
        Some(d) => d,
        None => src.root()?.digest(),
    };
    super::lifecycle::record(
        client,
        &refs,
        &pushed,
        &hoist_promote::records::PushInfo {
            via: "push".into(),
            from: Some(a.source.clone()),
            ..Default::default()
        },
    )?;
    // A registry source: its marks, records and signatures come along.
    if let Some(from) = mount_from.first() {
        carry(client, from, &refs, &pushed)?;
    }
    let digest = pushed.to_string();
    eprintln!(
        "pushed {}: {} blobs uploaded ({} bytes), {} mounted, {} already present",
        a.destinations.join(", "),
        report.uploaded,
        report.uploaded_bytes,
        report.mounted,
        report.skipped
    );
    println!("{digest}");
    Ok(ExitCode::SUCCESS)
}

/// Flags of `hoist copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Source: docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF].
    pub source: String,
    /// Destination, in the same syntax.
    pub destination: String,
    /// Copy only this platform's image from an index (default: all platforms).
    #[arg(long)]
    pub platform: Option<String>,
    /// hoist's cache directory.
    #[arg(long = "cache-dir", env = "HOIST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Progress display: auto (bars on a terminal), plain (periodic lines), json or quiet.
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Run `hoist copy`: the destination's root digest must equal the source's.
pub fn copy(a: CopyArgs) -> Result<ExitCode> {
    let (store, _cache_lock) = cache_store(&a.cache_dir)?;
    let (display, config) = display_and_config(&a.progress, &a.registry)?;
    let resolver = DefaultResolver::standalone(config, store.clone(), PullPolicy::Missing);
    let full = open_any(&a.source, &resolver)?;
    // One platform: narrow the source to that platform's manifest (bytes unchanged).
    let src: Box<dyn Source> = match &a.platform {
        None => full,
        Some(p) => {
            let p = platform(&Some(p.clone()))?;
            let img = hoist_image::resolve(full.as_ref(), &p)?;
            Box::new(Narrowed {
                inner: full,
                root: img.manifest_raw,
            })
        }
    };
    let expected = src.root()?.digest();
    // A registry source is a cross-repository mount candidate on the same registry.
    let mount_from: Vec<_> = if hoist_engine::resolver::open_local(&a.source)?.is_none() {
        vec![registry_reference(&a.source)?]
    } else {
        Vec::new()
    };
    let dst = ImageRef::parse(&a.destination)
        .or_else(|_| ImageRef::parse(&format!("docker://{}", a.destination)))?;
    // Copies to local transports report each blob as it is read (pushes report
    // their uploads themselves).
    let reporting = hoist_image::progress::ReportingSource::new(src.as_ref(), display.transfers());
    let written = match dst {
        ImageRef::Docker(r) => {
            let r = registry_reference(&r)?;
            let client = resolver.client()?;
            let report = client.push(
                src.as_ref(),
                std::slice::from_ref(&r),
                &PushOptions {
                    cache: Some(store),
                    mount_from: mount_from.clone(),
                    ..Default::default()
                },
            )?;
            let written = report.digest.unwrap_or_else(|| expected.clone());
            if written == expected {
                super::lifecycle::record(
                    client,
                    std::slice::from_ref(&r),
                    &written,
                    &hoist_promote::records::PushInfo {
                        via: "copy".into(),
                        from: Some(a.source.clone()),
                        ..Default::default()
                    },
                )?;
                if let Some(from) = mount_from.first() {
                    carry(client, from, std::slice::from_ref(&r), &written)?;
                }
            }
            written
        }
        ImageRef::OciLayout { path, reference } => {
            hoist_image::write_oci_layout(&reporting, &path, reference.as_deref())?.digest
        }
        ImageRef::OciArchive { path, reference } => {
            hoist_image::write_oci_archive(&reporting, &path, reference.as_deref())?.digest
        }
        ImageRef::DockerArchive { path, reference } => {
            let p = platform(&a.platform)?;
            let tags: Vec<String> = reference.into_iter().collect();
            let d = hoist_image::write_docker_archive(&reporting, &path, &tags, &p)?;
            if d.digest != expected {
                eprintln!(
                    "note: a docker-archive holds one platform image; wrote {} of index {expected}",
                    d.digest
                );
                println!("{}", d.digest);
                return Ok(ExitCode::SUCCESS);
            }
            d.digest
        }
    };
    if written != expected {
        bail!("digest changed while copying: source {expected}, destination {written}");
    }
    println!("{written}");
    Ok(ExitCode::SUCCESS)
}

/// Copy the referrers of `digest` (marks, records, signatures, attestations) from the
/// source repository to each destination repository.
fn carry(
    client: &hoist_registry::Client,
    from: &hoist_registry::Reference,
    dests: &[hoist_registry::Reference],
    digest: &hoist_image::Digest,
) -> Result<()> {
    let mut done = std::collections::BTreeSet::new();
    for d in dests {
        if d.name() == from.name() || !done.insert(d.name()) {
            continue;
        }
        let n = hoist_promote::artifact::carry_referrers(client, from, d, digest)
            .with_context(|| format!("copying the referrers of {digest} to {}", d.name()))?;
        tracing::info!("carried {n} referrers of {digest} to {}", d.name());
        let n = hoist_promote::attachments::carry_tag_attachments(client, from, d, digest)
            .with_context(|| format!("copying the .sig/.att tags of {digest} to {}", d.name()))?;
        tracing::info!(
            "carried {n} signature/attestation tags of {digest} to {}",
            d.name()
        );
    }
    Ok(())
}

/// A source whose root is one of its manifests (for `--platform`).
struct Narrowed {
    inner: Box<dyn Source>,
    root: hoist_image::RawDocument,
}

impl Source for Narrowed {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn root(&self) -> hoist_image::Result<hoist_image::RawDocument> {
        Ok(self.root.clone())
    }
    fn manifest(
        &self,
        desc: &hoist_image::Descriptor,
    ) -> hoist_image::Result<hoist_image::RawDocument> {
        self.inner.manifest(desc)
    }
    fn blob(
        &self,
        desc: &hoist_image::Descriptor,
    ) -> hoist_image::Result<Box<dyn std::io::Read + Send + '_>> {
        self.inner.blob(desc)
    }
    fn has_blob(&self, desc: &hoist_image::Descriptor) -> hoist_image::Result<bool> {
        self.inner.has_blob(desc)
    }
}

/// Flags of `hoist login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry host (`docker.io` when omitted).
    pub registry: Option<String>,
    /// User name.
    #[arg(short = 'u', long)]
    pub username: String,
    /// Password (prefer --password-stdin: command lines are visible to other users).
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// Registry settings (`--authfile` is the file written).
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

/// Run `hoist login`: check the credentials against the registry, then store them.
pub fn login(a: LoginArgs) -> Result<ExitCode> {
    let password = match (&a.password, a.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are exclusive"),
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("give the password with --password-stdin (or -p)"),
    };
    let registry = a.registry.clone().unwrap_or_else(|| "docker.io".into());
    let client = hoist_registry::Client::new(a.registry_args.to_config())?;
    let file = client.login(
        &registry,
        &a.username,
        &password,
        a.registry_args.authfile.as_deref(),
    )?;
    eprintln!("Login Succeeded (credentials stored in {})", file.display());
    Ok(ExitCode::SUCCESS)
}

/// Flags of `hoist logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry host (`docker.io` when omitted).
    pub registry: Option<String>,
    /// Credentials file (default: the docker config file).
    #[arg(long = "authfile", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
}

/// Run `hoist logout`.
pub fn logout(a: LogoutArgs) -> Result<ExitCode> {
    let registry = a.registry.clone().unwrap_or_else(|| "docker.io".into());
    if hoist_registry::logout(&registry, a.authfile.as_deref())? {
        eprintln!("Removed login credentials for {registry}");
    } else {
        eprintln!("Not logged in to {registry}");
    }
    Ok(ExitCode::SUCCESS)
}
