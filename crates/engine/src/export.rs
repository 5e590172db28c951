//! Writing a built image to every requested `--output`: each is staged beside its
//! destination, pushes follow, and only then do all appear ([`crate::staging`]).

use std::path::{Path, PathBuf};

use hoist_image::sink::ImageMetadata;
use hoist_image::Source;

use crate::engine::Built;
use crate::error::{Error, Result};
use crate::output::{Output, OutputSpec, UnsafeFiles};
use crate::progress::{Event, Progress};
use crate::staging::Staging;

/// Pushes images; provided by the registry layer.
pub trait Pusher {
    /// Push `src` to every reference in `names`.
    fn push(&self, src: &dyn Source, names: &[String]) -> Result<()>;

    /// [`Pusher::push`], trying cross-repository mounts from `mount_from` (references in
    /// the same registry that may hold the blobs: the build's `--cache-from` refs).
    fn push_mounting(
        &self,
        src: &dyn Source,
        names: &[String],
        mount_from: &[String],
    ) -> Result<()> {
        let _ = mount_from;
        self.push(src, names)
    }
}

/// The tag of an image name (`registry:5000/app:1.2@sha256:…` → `1.2`; `latest` when the
/// name has none): what an OCI layout's `org.opencontainers.image.ref.name` gets.
pub fn tag_of(name: &str) -> Option<String> {
    // The part after the last ':' that is not in the registry host (a port).
    let last = name.rsplit('/').next().unwrap_or(name);
    let no_digest = last.split('@').next().unwrap_or(last);
    no_digest
        .split_once(':')
        .map(|(_, t)| t.to_string())
        .or_else(|| Some("latest".into()))
}

/// The directory name BuildKit gives each platform's files in a multi-platform
/// `type=local` output: `linux_arm64`, `linux_arm_v7`.
pub fn platform_dir_name(p: &hoist_image::Platform) -> String {
    let mut s = format!("{}_{}", p.os, p.architecture);
    if let Some(v) = p.variant.as_deref().filter(|v| !v.is_empty()) {
        // arm64's default variant is left out, as containerd's normalised names do.
        if !(p.architecture == "arm64" && v == "v8") {
            s.push('_');
            s.push_str(v);
        }
    }
    s
}

/// Refuse, before anything is built, outputs that cannot hold `platforms` images: a
/// docker-archive and a file-system tar hold one platform (BuildKit refuses them too).
pub fn check_outputs(outputs: &[OutputSpec], platforms: usize) -> Result<()> {
    if platforms < 2 {
        return Ok(());
    }
    for o in outputs {
        match &o.output {
            Output::DockerArchive { dest, .. } => {
                return Err(Error::Invalid(format!(
                    "--output type=docker,dest={}: a docker-archive holds one platform's image, \
                     and {platforms} platforms make an image index; use type=oci (a layout or \
                     archive), push it, or build one --platform at a time",
                    dest.display()
                )))
            }
            Output::Tar { dest } => {
                return Err(Error::Invalid(format!(
                    "--output type=tar,dest={}: one tar holds one platform's files; use \
                     type=local (one directory per platform) or build one --platform at a time",
                    dest.display()
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Create the missing parent directories of every output's destination, as buildx does
/// (`-o type=oci,dest=out/img/layout` works without `mkdir -p out/img`). Called once the
/// image is built, so a failed build creates nothing.
pub fn create_parents(outputs: &[OutputSpec]) -> Result<()> {
    for o in outputs {
        let Some(dest) = o.output.dest().filter(|d| d.as_os_str() != "-") else {
            continue;
        };
        create_parent_dir(dest)?;
    }
    Ok(())
}

/// Create the missing parent directories of one file to be written (`--iidfile`,
/// `--metadata-file`, an output).
pub fn create_parent_dir(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // create_dir_all says only "File exists" when a file stands in the way: name it.
        if let Some(file) = parent
            .ancestors()
            .find(|a| a.exists())
            .filter(|a| !a.is_dir())
        {
            return Err(Error::Invalid(format!(
                "cannot write {}: {} exists and is not a directory",
                path.display(),
                file.display()
            )));
        }
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    Ok(())
}

/// Write a built image (or multi-platform index) to every output: all of them, or
/// none (see [`crate::staging`]).
pub fn export_built(
    built: &Built,
    outputs: &[OutputSpec],
    tags: &[String],
    scratch: &Path,
    pusher: Option<&dyn Pusher>,
    progress: &dyn Progress,
) -> Result<ImageMetadata> {
    let mut staging = Staging::new();
    let m = stage_built(built, outputs, tags, scratch, progress, &mut staging)?;
    push(&built.source(), outputs, tags, pusher, progress)?;
    staging.commit()?;
    Ok(m)
}

/// Stage every output of `outputs` but the pushes for a built image (or
/// multi-platform index) in `staging`; nothing is in place before its commit.
pub fn stage_built(
    built: &Built,
    outputs: &[OutputSpec],
    tags: &[String],
    scratch: &Path,
    progress: &dyn Progress,
    staging: &mut Staging,
) -> Result<ImageMetadata> {
    let src = built.source();
    // One image (with or without an index holding its attestations): its files go
    // where a single-platform build puts them.
    if built.images.len() == 1 {
        return stage(
            &src,
            &built.first().platform,
            outputs,
            tags,
            scratch,
            progress,
            staging,
        );
    }
    check_outputs(outputs, built.images.len())?;
    // File-system outputs get one directory per platform; the rest take the index.
    let (local, rest): (Vec<OutputSpec>, Vec<OutputSpec>) = outputs
        .iter()
        .cloned()
        .partition(|o| matches!(o.output, Output::Local { .. }));
    for o in &local {
        let Output::Local { dest } = &o.output else {
            continue;
        };
        progress.event(Event::Info(&format!(
            "exporting files to {} (one directory per platform)",
            dest.display()
        )));
        staging.create_parents(dest)?;
        let tmp = Staging::temp_for(dest, "");
        staging.add(tmp.clone(), dest.clone());
        std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        for image in &built.images {
            let stats = hoist_image::unpack_rootfs(
                &image.source(),
                &image.platform,
                &tmp.join(platform_dir_name(&image.platform)),
                &o.unsafe_files.apply_options(),
            )?;
            warn_unsafe(
                &format!("type=local,dest={}", dest.display()),
                &stats,
                progress,
            );
        }
    }
    stage(
        &src,
        &built.first().platform,
        &rest,
        tags,
        scratch,
        progress,
        staging,
    )
}

fn warn_unsafe(what: &str, stats: &hoist_image::UnpackStats, progress: &dyn Progress) {
    if let Some(w) = UnsafeFiles::warning(what, stats) {
        progress.event(Event::Warning(&w));
    }
}

/// Write any image to every output (`platform` picks the image of an index for the
/// single-image formats and filesystem outputs): all of them, or none (see
/// [`crate::staging`]).
pub fn export(
    src: &dyn Source,
    platform: &hoist_image::Platform,
    outputs: &[OutputSpec],
    tags: &[String],
    scratch: &Path,
    pusher: Option<&dyn Pusher>,
    progress: &dyn Progress,
) -> Result<ImageMetadata> {
    let mut staging = Staging::new();
    let m = stage(
        src,
        platform,
        outputs,
        tags,
        scratch,
        progress,
        &mut staging,
    )?;
    push(src, outputs, tags, pusher, progress)?;
    staging.commit()?;
    Ok(m)
}

/// The `org.opencontainers.image.ref.name` of a layout or archive output.
fn layout_tag(tags: &[String]) -> Option<String> {
    tags.first()
        .and_then(|t| tag_of(t))
        .or_else(|| Some("latest".into()))
}

/// Where an output's content is written before the commit: beside `dest`, or a file
/// in `scratch` for standard output (`-`).
fn staged_path(dest: &Path, scratch: &Path, staging: &mut Staging) -> Result<PathBuf> {
    if dest.as_os_str() == "-" {
        let tmp = Staging::temp_for(&scratch.join("stdout"), "");
        staging.add_stdout(tmp.clone());
        return Ok(tmp);
    }
    staging.create_parents(dest)?;
    let tmp = Staging::temp_for(dest, "");
    staging.add(tmp.clone(), dest.to_path_buf());
    Ok(tmp)
}

/// Stage every output but the pushes of any image in `staging`.
pub fn stage(
    src: &dyn Source,
    platform: &hoist_image::Platform,
    outputs: &[OutputSpec],
    tags: &[String],
    scratch: &Path,
    progress: &dyn Progress,
    staging: &mut Staging,
) -> Result<ImageMetadata> {
    for o in outputs {
        match &o.output {
            Output::OciLayout { dest } => {
                progress.event(Event::Info(&format!(
                    "exporting OCI layout to {}",
                    dest.display()
                )));
                let tag = layout_tag(tags);
                if dest.join(hoist_image::layout::OCI_LAYOUT_FILE).is_file() {
                    // Added to in place: new blobs are harmless, the old index comes
                    // back unless the staging is committed.
                    staging.keep_index(dest)?;
                    hoist_image::sink::write_oci_layout(src, dest, tag.as_deref())?;
                    continue;
                }
                refuse_non_layout(dest)?;
                let tmp = staged_path(dest, scratch, staging)?;
                hoist_image::sink::write_oci_layout(src, &tmp, tag.as_deref())?;
            }
            Output::OciArchive { dest } => {
                progress.event(Event::Info(&format!(
                    "exporting OCI archive to {}",
                    dest.display()
                )));
                let tag = layout_tag(tags);
                let tmp = staged_path(dest, scratch, staging)?;
                hoist_image::sink::write_oci_archive(src, &tmp, tag.as_deref())?;
            }
            Output::DockerArchive { dest, names } => {
                progress.event(Event::Info(&format!(
                    "exporting docker archive to {}",
                    dest.display()
                )));
                let names = if names.is_empty() { tags } else { names };
                let tmp = staged_path(dest, scratch, staging)?;
                hoist_image::sink::write_docker_archive(src, &tmp, names, platform)?;
            }
            Output::Local { dest } => {
                progress.event(Event::Info(&format!(
                    "exporting files to {}",
                    dest.display()
                )));
                let tmp = staged_path(dest, scratch, staging)?;
                let stats = hoist_image::unpack_rootfs(
                    src,
                    platform,
                    &tmp,
                    &o.unsafe_files.apply_options(),
                )?;
                warn_unsafe(
                    &format!("type=local,dest={}", dest.display()),
                    &stats,
                    progress,
                );
            }
            Output::Tar { dest } => {
                progress.event(Event::Info(&format!(
                    "exporting files as a tar to {}",
                    dest.display()
                )));
                let tmp = staged_path(dest, scratch, staging)?;
                hoist_image::write_rootfs_tar(src, platform, &tmp)?;
            }
            Output::Image { .. } => {}
        }
    }
    Ok(ImageMetadata::of(src, platform)?)
}

/// An existing destination that is neither missing, an empty directory nor an OCI
/// layout is never replaced by a layout (a mistyped `dest=` must not destroy it).
fn refuse_non_layout(dest: &Path) -> Result<()> {
    match std::fs::read_dir(dest).map(|mut rd| rd.next().is_none()) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::Invalid(format!(
            "{}: exists and is not an OCI image layout (no {} file); refusing to replace it",
            dest.display(),
            hoist_image::layout::OCI_LAYOUT_FILE
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(Error::Invalid(format!(
            "{}: exists and is not a directory (type=oci without tar=true writes a layout directory)",
            dest.display()
        ))),
        Err(e) => Err(Error::io(dest, e)),
    }
}

/// Do the `type=image,push=true` / `type=registry` outputs of `outputs`.
pub fn push(
    src: &dyn Source,
    outputs: &[OutputSpec],
    tags: &[String],
    pusher: Option<&dyn Pusher>,
    progress: &dyn Progress,
) -> Result<()> {
    for o in outputs {
        let Output::Image { names, push: true } = &o.output else {
            continue;
        };
        let names: Vec<String> = if names.is_empty() {
            tags.to_vec()
        } else {
            names.clone()
        };
        let pusher =
            pusher.ok_or_else(|| Error::Unsupported("pushing needs the registry client".into()))?;
        progress.event(Event::Info(&format!("pushing {}", names.join(", "))));
        pusher.push(src, &names)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(tag_of("app:1.0").as_deref(), Some("1.0"));
        assert_eq!(tag_of("localhost:5000/app").as_deref(), Some("latest"));
        assert_eq!(tag_of("localhost:5000/app:v2").as_deref(), Some("v2"));
        assert_eq!(tag_of("app").as_deref(), Some("latest"));
    }

    #[test]
    fn platform_dirs_as_buildkit_names_them() {
        let d = |s: &str| platform_dir_name(&hoist_image::Platform::parse(s).unwrap());
        assert_eq!(d("linux/amd64"), "linux_amd64");
        assert_eq!(d("linux/arm64"), "linux_arm64");
        assert_eq!(d("linux/arm/v7"), "linux_arm_v7");
        assert_eq!(d("linux/arm/v6"), "linux_arm_v6");
    }

    #[test]
    fn single_platform_outputs_refused_for_an_index() {
        let o = |s: &str| OutputSpec::parse(s).unwrap();
        let docker = [o("type=docker,dest=x.tar")];
        assert!(check_outputs(&docker, 1).is_ok());
        let e = check_outputs(&docker, 2).unwrap_err().to_string();
        assert!(e.contains("type=oci"), "{e}");
        assert!(check_outputs(&[o("type=tar,dest=x.tar")], 3).is_err());
        assert!(check_outputs(&[o("type=oci,dest=d"), o("type=local,dest=l")], 2).is_ok());
    }
}
