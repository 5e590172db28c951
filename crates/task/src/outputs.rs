//! What a task writes into an output directory (`image/`, or one per additional target or
//! build-file image), in oci-build-task's shapes:
//!
//! ```text
//! image.tar          docker-archive (registry-image's `put`, docker load, podman load)
//! digest             the config digest ("image ID"), as oci-build-task writes it
//! manifest-digest    the manifest digest image.tar is pushed under (by registry-image's
//!                    put, `hoist push`, skopeo): pin deployments with this one
//! image/             OCI layout, with OUTPUT_OCI (+ single-image-digest)
//! rootfs/            the unpacked file system, with UNPACK_ROOTFS
//! metadata.json      {"env", "user", "cmd", "entrypoint", "workdir"}, with UNPACK_ROOTFS
//! ```
//!
//! Several platforms (`IMAGE_PLATFORM=linux/amd64,linux/arm64`) make an image index:
//! `image/` holds it (no `single-image-digest`), `digest` and `manifest-digest` both hold
//! the index digest, there is no `image.tar` (a docker-archive holds one platform), and
//! `rootfs/` is the worker's platform.

use std::path::{Path, PathBuf};

use hoist_engine::progress::{Event, Progress};
use hoist_engine::{Built, BuiltImage};
use hoist_image::{media_type, Digest, ImageConfig, Manifest, Platform, RawDocument, StoreSource};
use serde::Serialize;

use crate::Error;

/// Which outputs to write.
#[derive(Debug, Clone, Default)]
pub struct OutputOptions {
    /// Write the OCI layout `image/` (`OUTPUT_OCI`).
    pub oci_layout: bool,
    /// Write `rootfs/` and `metadata.json` (`UNPACK_ROOTFS`).
    pub unpack_rootfs: bool,
    /// Names recorded in `image.tar`.
    pub tags: Vec<String>,
    /// What `rootfs/` does with device nodes and setuid/setgid files (`UNSAFE_FILES`).
    pub unsafe_files: hoist_engine::output::UnsafeFiles,
}

/// What was written for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The directory.
    pub dir: PathBuf,
    /// What `digest` holds: the config digest, or the index digest for several platforms.
    pub digest: Digest,
    /// What `manifest-digest` holds: the digest of `image.tar`'s manifest, or the index
    /// digest for several platforms.
    pub manifest_digest: Digest,
    /// The digest of the OCI layout's root (manifest or index), when written.
    pub oci_manifest_digest: Option<Digest>,
    /// The platforms built (one unless an index).
    pub platforms: Vec<Platform>,
}

/// Concourse's `metadata.json` for a task image (`rootfs/` format).
#[derive(Debug, Serialize)]
struct Metadata<'a> {
    env: &'a [String],
    user: &'a str,
    cmd: &'a [String],
    entrypoint: &'a [String],
    workdir: &'a str,
}

/// The Docker schema 2 manifest of `image`, byte for byte as go-containerregistry's
/// `tarball.Image` derives it from a docker-archive: Concourse's registry-image resource
/// pushes that manifest when it `put`s `image.tar`, so this digest is the one the
/// registry will report. Config and layer blobs are shared with the OCI manifest.
pub fn docker_manifest(image: &BuiltImage) -> Result<RawDocument, Error> {
    let m: Manifest = serde_json::from_slice(&image.manifest.bytes)
        .map_err(|e| Error::Output(format!("built manifest: {e}")))?;
    let doc = RawDocument::new(media_type::DOCKER_MANIFEST, ggcr_docker_manifest(&m)?);
    image.store.put_bytes(&doc.bytes)?;
    Ok(doc)
}

/// go-containerregistry's `json.Marshal` of its `v1.Manifest` for `m`'s config and
/// (gzip) layers with Docker media types: struct field order, no spaces.
fn ggcr_docker_manifest(m: &Manifest) -> Result<Vec<u8>, Error> {
    let mut s = String::new();
    s.push_str("{\"schemaVersion\":2,\"mediaType\":\"");
    s.push_str(media_type::DOCKER_MANIFEST);
    s.push_str("\",\"config\":{\"mediaType\":\"");
    s.push_str(media_type::DOCKER_CONFIG);
    s.push_str(&format!(
        "\",\"size\":{},\"digest\":\"{}\"}},\"layers\":[",
        m.config.size, m.config.digest
    ));
    for (i, l) in m.layers.iter().enumerate() {
        if media_type::layer_compression(&l.media_type) != Some(media_type::Compression::Gzip) {
            return Err(Error::Output(format!(
                "layer {} is {}: a docker-archive for registry-image needs gzip layers",
                l.digest, l.media_type
            )));
        }
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"mediaType\":\"{}\",\"size\":{},\"digest\":\"{}\"}}",
            media_type::DOCKER_LAYER_GZIP,
            l.size,
            l.digest
        ));
    }
    s.push_str("]}");
    Ok(s.into_bytes())
}

/// The files and directories [`write`] may create in the output directory.
const OUTPUT_NAMES: [&str; 6] = [
    "image.tar",
    "image",
    "rootfs",
    "metadata.json",
    "digest",
    "manifest-digest",
];

/// Write every output for `built` into `dir` (which exists). All or nothing: when
/// one output fails, the outputs this call already wrote are removed again, so a
/// failed task never leaves an `image.tar` (or a layout) for the next step to take.
pub fn write(
    built: &Built,
    dir: &Path,
    opts: &OutputOptions,
    progress: &dyn Progress,
) -> Result<Written, Error> {
    let before: Vec<bool> = OUTPUT_NAMES
        .iter()
        .map(|n| dir.join(n).symlink_metadata().is_ok())
        .collect();
    let r = write_all(built, dir, opts, progress);
    if r.is_err() {
        for (name, existed) in OUTPUT_NAMES.iter().zip(before) {
            let p = dir.join(name);
            if existed || p.symlink_metadata().is_err() {
                continue;
            }
            let res = if p.is_dir() {
                hoist_image::fsutil::remove_dir_all_writable(&p).map_err(|e| e.to_string())
            } else {
                std::fs::remove_file(&p).map_err(|e| e.to_string())
            };
            if let Err(e) = res {
                tracing::warn!(path = %p.display(), "could not remove a partial output: {e}");
            }
        }
    }
    r
}

fn write_all(
    built: &Built,
    dir: &Path,
    opts: &OutputOptions,
    progress: &dyn Progress,
) -> Result<Written, Error> {
    let show = dir.display();
    let tag = opts
        .tags
        .first()
        .and_then(|t| hoist_engine::export::tag_of(t))
        .unwrap_or_else(|| "latest".into());
    if built.index.is_some() {
        return write_index(built, dir, opts, &tag, progress);
    }
    let image = built.first();
    let docker = docker_manifest(image)?;
    let docker_src =
        StoreSource::new(image.store.clone(), docker.clone()).with_name("build result");
    progress.event(Event::Info(&format!("writing {show}/image.tar")));
    hoist_image::sink::write_docker_archive(
        &docker_src,
        &dir.join("image.tar"),
        &opts.tags,
        &image.platform,
    )?;
    let mut oci_manifest_digest = None;
    if opts.oci_layout {
        progress.event(Event::Info(&format!("writing OCI layout {show}/image")));
        let layout = dir.join("image");
        let desc = hoist_image::sink::write_oci_layout(&image.source(), &layout, Some(&tag))?;
        // registry-image's `put` with `format: oci-layout` pushes this image itself rather
        // than an index around it when the marker names it.
        hoist_image::atomic_write(
            &layout.join("single-image-digest"),
            desc.digest.to_string().as_bytes(),
        )?;
        oci_manifest_digest = Some(desc.digest);
    }
    if opts.unpack_rootfs {
        unpack(image, dir, opts, progress)?;
    }
    let config_digest = image.config.digest();
    hoist_image::atomic_write(&dir.join("digest"), config_digest.to_string().as_bytes())?;
    hoist_image::atomic_write(
        &dir.join("manifest-digest"),
        docker.digest().to_string().as_bytes(),
    )?;
    Ok(Written {
        dir: dir.to_path_buf(),
        digest: config_digest,
        manifest_digest: docker.digest(),
        oci_manifest_digest,
        platforms: vec![image.platform.clone()],
    })
}

/// The outputs of a multi-platform build: the index in `image/`, its digest in `digest`
/// and `manifest-digest`, the worker's platform in `rootfs/`.
fn write_index(
    built: &Built,
    dir: &Path,
    opts: &OutputOptions,
    tag: &str,
    progress: &dyn Progress,
) -> Result<Written, Error> {
    let show = dir.display();
    let platforms = built.platforms();
    let list = platforms
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if !opts.oci_layout {
        return Err(Error::Output(format!(
            "{list}: an image index is written only as an OCI layout (OUTPUT_OCI=true)"
        )));
    }
    progress.event(Event::Info(&format!(
        "writing OCI layout {show}/image (index of {list})"
    )));
    let desc = hoist_image::sink::write_oci_layout(&built.source(), &dir.join("image"), Some(tag))?;
    if opts.unpack_rootfs {
        let host = Platform::host();
        let image = built
            .images
            .iter()
            .find(|i| host.matches(&i.platform))
            .ok_or_else(|| {
                Error::Output(format!(
                    "UNPACK_ROOTFS: none of {list} is the worker's platform ({host})"
                ))
            })?;
        unpack(image, dir, opts, progress)?;
    }
    let digest = built.digest();
    hoist_image::atomic_write(&dir.join("digest"), digest.to_string().as_bytes())?;
    hoist_image::atomic_write(&dir.join("manifest-digest"), digest.to_string().as_bytes())?;
    Ok(Written {
        dir: dir.to_path_buf(),
        digest: digest.clone(),
        manifest_digest: digest,
        oci_manifest_digest: Some(desc.digest),
        platforms,
    })
}

/// `rootfs/` and `metadata.json` for one image.
fn unpack(
    image: &BuiltImage,
    dir: &Path,
    opts: &OutputOptions,
    progress: &dyn Progress,
) -> Result<(), Error> {
    progress.event(Event::Info(&format!(
        "unpacking {}/rootfs ({})",
        dir.display(),
        image.platform
    )));
    let stats = hoist_image::unpack_rootfs(
        &image.source(),
        &image.platform,
        &dir.join("rootfs"),
        &opts.unsafe_files.apply_options(),
    )?;
    let what = format!("{}/rootfs", dir.display());
    if let Some(w) = hoist_engine::output::UnsafeFiles::warning(&what, &stats) {
        progress.event(Event::Warning(&w.replace("unsafe-files=", "UNSAFE_FILES=")));
    }
    let cfg: ImageConfig = serde_json::from_slice(&image.config.bytes)
        .map_err(|e| Error::Output(format!("built config: {e}")))?;
    let c = cfg.config.unwrap_or_default();
    let meta = Metadata {
        env: c.env.as_deref().unwrap_or(&[]),
        user: c.user.as_deref().unwrap_or(""),
        cmd: c.cmd.as_deref().unwrap_or(&[]),
        entrypoint: c.entrypoint.as_deref().unwrap_or(&[]),
        workdir: c.working_dir.as_deref().unwrap_or(""),
    };
    let bytes = serde_json::to_vec(&meta).map_err(|e| Error::Output(e.to_string()))?;
    hoist_image::atomic_write(&dir.join("metadata.json"), &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_image::Descriptor;

    #[test]
    fn docker_manifest_is_byte_identical_to_go_containerregistry() {
        let d = |n: char| {
            format!("sha256:{}", n.to_string().repeat(64))
                .parse()
                .unwrap()
        };
        let m = Manifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(media_type::OCI_CONFIG, d('c'), 1234),
            layers: vec![
                Descriptor::new(media_type::OCI_LAYER_GZIP, d('a'), 10),
                Descriptor::new(media_type::OCI_LAYER_GZIP, d('b'), 20),
            ],
            subject: None,
            annotations: None,
        };
        // What `json.Marshal(v1.Manifest{…})` prints (field order of the Go structs).
        let want = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\
             \"config\":{{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"size\":1234,\"digest\":\"sha256:{c}\"}},\
             \"layers\":[{{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":10,\"digest\":\"sha256:{a}\"}},\
             {{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":20,\"digest\":\"sha256:{b}\"}}]}}",
            a = "a".repeat(64),
            b = "b".repeat(64),
            c = "c".repeat(64)
        );
        assert_eq!(
            String::from_utf8(ggcr_docker_manifest(&m).unwrap()).unwrap(),
            want
        );
        let mut z = m.clone();
        z.layers[1].media_type = media_type::OCI_LAYER_ZSTD.into();
        assert!(ggcr_docker_manifest(&z).is_err());
    }
}
