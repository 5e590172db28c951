//! `--output` specifications in BuildKit's syntax.
//!
//! `type=oci,dest=out` (OCI layout directory), `type=oci,dest=out.tar` (OCI archive;
//! `tar=true|false` overrides the guess from the name), `type=docker,dest=img.tar`
//! (docker-archive), `type=local,dest=dir` (the final stage's files), `type=tar,dest=fs.tar`
//! (the same as one tar), `type=image,name=REF[,push=true]` and `type=registry,name=REF`
//! (push). A bare `PATH` means `type=local,dest=PATH`, and `-` means `type=tar` to stdout.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Layer compression for the built image.
pub use hoist_image::media_type::Compression;

/// One requested output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// An OCI image layout directory.
    OciLayout {
        /// Directory.
        dest: PathBuf,
    },
    /// An OCI archive (a layout in a tar file).
    OciArchive {
        /// File (`-` for stdout).
        dest: PathBuf,
    },
    /// A docker-archive (`docker load`, `podman load`, Concourse's registry-image).
    DockerArchive {
        /// File (`-` for stdout).
        dest: PathBuf,
        /// Names to record (`repo:tag`); the build's tags when empty.
        names: Vec<String>,
    },
    /// The final stage's filesystem as a directory.
    Local {
        /// Directory.
        dest: PathBuf,
    },
    /// The final stage's filesystem as one tar.
    Tar {
        /// File (`-` for stdout).
        dest: PathBuf,
    },
    /// Push to a registry.
    Image {
        /// References to push to.
        names: Vec<String>,
        /// Whether to push (`type=image` without push only names the image).
        push: bool,
    },
}

impl Output {
    /// The file or directory written, if any (`-` is standard output).
    pub fn dest(&self) -> Option<&std::path::Path> {
        match self {
            Output::OciLayout { dest }
            | Output::OciArchive { dest }
            | Output::DockerArchive { dest, .. }
            | Output::Local { dest }
            | Output::Tar { dest } => Some(dest),
            Output::Image { .. } => None,
        }
    }

    /// Make a relative destination relative to `dir` (`-` stays).
    pub fn make_absolute_in(&mut self, dir: &std::path::Path) {
        if let Some(d) = self.dest() {
            if d.as_os_str() != "-" && d.is_relative() {
                let joined = dir.join(d);
                self.set_dest(joined);
            }
        }
    }

    fn set_dest(&mut self, new: PathBuf) {
        match self {
            Output::OciLayout { dest }
            | Output::OciArchive { dest }
            | Output::DockerArchive { dest, .. }
            | Output::Local { dest }
            | Output::Tar { dest } => *dest = new,
            Output::Image { .. } => {}
        }
    }

    /// Make the destination absolute against the current directory (`-` stays).
    pub fn make_absolute(&mut self) {
        match self {
            Output::OciLayout { dest }
            | Output::OciArchive { dest }
            | Output::DockerArchive { dest, .. }
            | Output::Local { dest }
            | Output::Tar { dest } => {
                if dest.as_os_str() != "-" {
                    *dest = crate::options::absolute(dest);
                }
            }
            Output::Image { .. } => {}
        }
    }
}

/// What a file-system output (`type=local`, task `rootfs/`) does with device nodes
/// and setuid/setgid files of the image (`unsafe-files=`): as root, writing them "for
/// real" would hand whoever reads the output a device node (`/dev/sda` by another
/// name) or a root-owned setuid program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnsafeFiles {
    /// Do not create device nodes, clear setuid/setgid bits; a warning lists them.
    /// The default.
    #[default]
    Skip,
    /// Write them as the image says (device nodes need root).
    Keep,
}

impl UnsafeFiles {
    /// Parse `skip` or `keep`.
    pub fn parse(v: &str) -> Result<UnsafeFiles> {
        match v.trim().to_ascii_lowercase().as_str() {
            "skip" => Ok(UnsafeFiles::Skip),
            "keep" => Ok(UnsafeFiles::Keep),
            _ => Err(Error::Invalid(format!(
                "unsafe-files={v:?}: expected skip (the default) or keep"
            ))),
        }
    }

    /// The layer applier's options for a file-system output.
    pub fn apply_options(self) -> hoist_image::layer::ApplyOptions {
        let mut o = hoist_image::layer::ApplyOptions::default();
        if self == UnsafeFiles::Skip {
            o.allow_devices = false;
            o.setid = false;
        }
        o
    }

    /// A warning listing what `stats` says was skipped, if anything was.
    pub fn warning(what: &str, stats: &hoist_image::UnpackStats) -> Option<String> {
        if stats.unsafe_count == 0 {
            return None;
        }
        let shown = stats
            .unsafe_entries
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>();
        let more = stats.unsafe_count.saturating_sub(shown.len() as u64);
        Some(format!(
            "{what}: {} unsafe entr{} not written as in the image (unsafe-files=skip; \
             unsafe-files=keep writes them): {}{}",
            stats.unsafe_count,
            if stats.unsafe_count == 1 { "y" } else { "ies" },
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ))
    }
}

/// All settings of one `--output` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    /// What to write.
    pub output: Output,
    /// `compression=` if given.
    pub compression: Option<Compression>,
    /// `compression-level=` if given.
    pub compression_level: Option<i32>,
    /// `force-compression=true`: base image layers are re-encoded too (otherwise they
    /// keep their own compression, as in BuildKit).
    pub force_compression: bool,
    /// `oci-mediatypes=` if given.
    pub oci_mediatypes: Option<bool>,
    /// `annotation.KEY=VALUE` / `annotation-manifest.KEY=VALUE` pairs (on each manifest).
    pub annotations: BTreeMap<String, String>,
    /// `annotation-index.KEY=VALUE` pairs: on the image index of a multi-platform build.
    pub index_annotations: BTreeMap<String, String>,
    /// `annotation-manifest-descriptor.KEY=VALUE` pairs: on each manifest's entry in the
    /// image index of a multi-platform build.
    pub descriptor_annotations: BTreeMap<String, String>,
    /// `unsafe-files=skip|keep` (`type=local` only; default skip).
    pub unsafe_files: UnsafeFiles,
}

fn split_csv(s: &str) -> Vec<String> {
    // BuildKit parses the flag as CSV: quotes protect commas.
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
    out.push(cur);
    out
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::Invalid(format!(
            "--output: {key}={v:?} is not a boolean (true or false)"
        ))),
    }
}

impl OutputSpec {
    /// Parse one `--output` value.
    pub fn parse(s: &str) -> Result<OutputSpec> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::Invalid("--output: empty value".into()));
        }
        if s == "-" {
            return Ok(OutputSpec::simple(Output::Tar { dest: "-".into() }));
        }
        if !s.contains('=') {
            return Ok(OutputSpec::simple(Output::Local { dest: s.into() }));
        }
        let mut kv: BTreeMap<String, String> = BTreeMap::new();
        let mut annotations = BTreeMap::new();
        let mut index_annotations = BTreeMap::new();
        let mut descriptor_annotations = BTreeMap::new();
        for field in split_csv(s) {
            let (k, v) = field.split_once('=').ok_or_else(|| {
                Error::Invalid(format!("--output {s:?}: {field:?} is not KEY=VALUE"))
            })?;
            let k = k.trim().to_ascii_lowercase();
            if let Some(a) = k
                .strip_prefix("annotation.")
                .or_else(|| k.strip_prefix("annotation-manifest."))
            {
                annotations.insert(a.to_string(), v.to_string());
                continue;
            }
            if let Some(a) = k.strip_prefix("annotation-index.") {
                index_annotations.insert(a.to_string(), v.to_string());
                continue;
            }
            if let Some(a) = k.strip_prefix("annotation-manifest-descriptor.") {
                descriptor_annotations.insert(a.to_string(), v.to_string());
                continue;
            }
            if kv.insert(k.clone(), v.to_string()).is_some() {
                return Err(Error::Invalid(format!("--output {s:?}: {k} given twice")));
            }
        }
        let ty = kv
            .remove("type")
            .ok_or_else(|| Error::Invalid(format!("--output {s:?}: missing type=")))?;
        let dest = kv.remove("dest").map(PathBuf::from);
        let need_dest = |ty: &str| {
            dest.clone()
                .ok_or_else(|| Error::Invalid(format!("--output type={ty} needs dest=PATH")))
        };
        let names: Vec<String> = kv
            .remove("name")
            .map(|n| {
                n.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let tar = kv
            .remove("tar")
            .map(|v| parse_bool("tar", &v))
            .transpose()?;
        let push = kv
            .remove("push")
            .map(|v| parse_bool("push", &v))
            .transpose()?;
        let output = match ty.as_str() {
            "oci" => {
                let dest = need_dest("oci")?;
                let is_tar = tar.unwrap_or_else(|| {
                    dest.as_os_str() == "-"
                        || dest
                            .extension()
                            .is_some_and(|e| e == "tar" || e == "gz")
                        || dest.is_file()
                });
                if is_tar {
                    Output::OciArchive { dest }
                } else {
                    Output::OciLayout { dest }
                }
            }
            "docker" => {
                if tar == Some(false) {
                    return Err(Error::Invalid(
                        "--output type=docker,tar=false is not supported: use type=oci for a directory".into(),
                    ));
                }
                Output::DockerArchive {
                    dest: need_dest("docker")?,
                    names,
                }
            }
            "local" => Output::Local {
                dest: need_dest("local")?,
            },
            "tar" => Output::Tar {
                dest: dest.unwrap_or_else(|| "-".into()),
            },
            "image" | "registry" => {
                let push = if ty == "registry" {
                    true
                } else {
                    push.unwrap_or(false)
                };
                Output::Image { names, push }
            }
            other => {
                return Err(Error::Invalid(format!(
                    "--output: unknown type {other:?} (expected oci, docker, local, tar, image or registry)"
                )))
            }
        };
        let compression = kv
            .remove("compression")
            .map(|c| match c.as_str() {
                "gzip" => Ok(Compression::Gzip),
                "zstd" => Ok(Compression::Zstd),
                "uncompressed" | "none" => Ok(Compression::None),
                other => Err(Error::Invalid(format!(
                    "--output: unknown compression {other:?} (expected gzip, zstd or uncompressed)"
                ))),
            })
            .transpose()?;
        let compression_level = kv
            .remove("compression-level")
            .map(|l| {
                l.parse::<i32>().map_err(|_| {
                    Error::Invalid(format!("--output: compression-level={l:?} is not a number"))
                })
            })
            .transpose()?;
        let oci_mediatypes = kv
            .remove("oci-mediatypes")
            .map(|v| parse_bool("oci-mediatypes", &v))
            .transpose()?;
        let unsafe_files = match kv.remove("unsafe-files") {
            None => UnsafeFiles::default(),
            Some(_) if !matches!(output, Output::Local { .. }) => {
                return Err(Error::Invalid(format!(
                    "--output {s:?}: unsafe-files applies to type=local (archives keep every file as the image has it)"
                )))
            }
            Some(v) => UnsafeFiles::parse(&v)
                .map_err(|e| Error::Invalid(format!("--output {s:?}: {e}")))?,
        };
        let force_compression = kv
            .remove("force-compression")
            .map(|v| parse_bool("force-compression", &v))
            .transpose()?
            .unwrap_or(false);
        // BuildKit attributes hoist accepts only where its behaviour is the one asked for:
        // new layers' file times are always rewritten to SOURCE_DATE_EPOCH (or 0); hoist
        // writes no buildinfo and has no image store to unpack into. Asking for the other
        // behaviour is an error, never silently ignored.
        for (k, supported, why) in [
            (
                "rewrite-timestamp",
                true,
                "hoist always writes new layers' file times as SOURCE_DATE_EPOCH (or 0)",
            ),
            (
                "buildinfo",
                false,
                "hoist writes no buildinfo (see provenance)",
            ),
            ("unpack", false, "hoist has no image store to unpack into"),
            (
                "store",
                false,
                "hoist has no image store (use -o type=oci|docker or push)",
            ),
        ] {
            if let Some(v) = kv.remove(k) {
                if parse_bool(k, &v)? != supported {
                    return Err(Error::Invalid(format!(
                        "--output {s:?}: {k}={v} is not supported: {why}"
                    )));
                }
            }
        }
        if let Some(k) = kv.keys().next() {
            return Err(Error::Invalid(format!(
                "--output {s:?}: unknown attribute {k:?}"
            )));
        }
        Ok(OutputSpec {
            output,
            compression,
            compression_level,
            force_compression,
            oci_mediatypes,
            annotations,
            index_annotations,
            descriptor_annotations,
            unsafe_files,
        })
    }

    fn simple(output: Output) -> OutputSpec {
        OutputSpec {
            output,
            compression: None,
            compression_level: None,
            force_compression: false,
            oci_mediatypes: None,
            annotations: BTreeMap::new(),
            index_annotations: BTreeMap::new(),
            descriptor_annotations: BTreeMap::new(),
            unsafe_files: UnsafeFiles::default(),
        }
    }

    /// Whether this output needs an image (rather than only the final filesystem).
    pub fn needs_image(&self) -> bool {
        !matches!(self.output, Output::Local { .. } | Output::Tar { .. })
    }
}

/// Bring layer `index` of base image `reference` into `store`: verified, then
/// compressed if it is an uncompressed tar ([`compress_base_layer`]). A
/// non-distributable ("foreign") layer that the source does not hold fails here with
/// its URLs: hoist never downloads foreign layers, and RUN and COPY need the bytes.
pub fn import_base_layer(
    store: &hoist_image::BlobStore,
    src: &dyn hoist_image::Source,
    reference: &str,
    index: usize,
    desc: &hoist_image::Descriptor,
    compression: Compression,
) -> Result<hoist_image::Descriptor> {
    if store.has_descriptor(desc) {
        crate::gc::touch_blob(store, &desc.digest);
    } else {
        if hoist_image::media_type::is_foreign_layer(&desc.media_type) && !src.has_blob(desc)? {
            let urls = desc.urls.clone().unwrap_or_default();
            return Err(Error::Invalid(format!(
                "{reference}: layer {index} ({}) is a non-distributable layer ({}) that {} does not hold; hoist does not download foreign layers{}",
                desc.digest,
                desc.media_type,
                src.name(),
                if urls.is_empty() {
                    String::new()
                } else {
                    format!(" (it is published at {})", urls.join(", "))
                }
            )));
        }
        let r = hoist_image::open_verified(src, desc)?;
        store.put_verified(r, desc)?;
    }
    compress_base_layer(store, desc, compression)
}

/// An uncompressed base layer (a `docker save`, skopeo or podman archive) compressed
/// with the build's layer `compression`, stored in `store`; any other layer as is.
///
/// Why (issue 14): writing the base's plain tar unchanged would be legal (its media
/// type would say `…tar`), but an image mixing plain and gzip layers breaks readers
/// that decide from the first layer (go-containerregistry's tarball, so Concourse's
/// registry-image) and pushes the base uncompressed. BuildKit likewise exports
/// layers in the requested compression. The diff ID is unchanged; the gzip writer is
/// deterministic, so the same base gives the same blob every time.
pub fn compress_base_layer(
    store: &hoist_image::BlobStore,
    layer: &hoist_image::Descriptor,
    compression: Compression,
) -> Result<hoist_image::Descriptor> {
    use hoist_image::media_type;
    use std::io::Write;
    if compression == Compression::None
        || media_type::layer_compression(&layer.media_type) != Some(Compression::None)
        || media_type::is_foreign_layer(&layer.media_type)
    {
        return Ok(layer.clone());
    }
    let what = format!("compressing base layer {}", layer.digest);
    let stream = |e: std::io::Error| Error::Image(hoist_image::Error::stream(what.clone(), e));
    let mut src = store.open(&layer.digest)?;
    let mut w = store.writer()?;
    match compression {
        Compression::Gzip => {
            let mut gz = hoist_image::layer::GzipWriter::new(&mut w, 6, 1).map_err(stream)?;
            std::io::copy(&mut src, &mut gz).map_err(stream)?;
            gz.finish().map_err(stream)?.flush().map_err(stream)?;
        }
        Compression::Zstd => {
            let mut z = zstd::stream::write::Encoder::new(&mut w, 3).map_err(stream)?;
            std::io::copy(&mut src, &mut z).map_err(stream)?;
            z.finish().map_err(stream)?.flush().map_err(stream)?;
        }
        Compression::None => unreachable!("returned above"),
    }
    let (digest, size) = w.commit()?;
    let mut out = hoist_image::Descriptor::new(media_type::oci_layer(compression), digest, size);
    out.annotations = layer.annotations.clone();
    tracing::debug!(from = %layer.digest, to = %out.digest, "compressed an uncompressed base layer");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildkit_attributes_are_honoured_or_refused() {
        assert!(OutputSpec::parse("type=oci,dest=x,rewrite-timestamp=true").is_ok());
        assert!(OutputSpec::parse("type=oci,dest=x,store=false,unpack=false").is_ok());
        for bad in [
            "type=oci,dest=x,rewrite-timestamp=false",
            "type=image,name=a,push=true,store=true",
            "type=image,name=a,unpack=true",
            "type=oci,dest=x,buildinfo=true",
        ] {
            let e = OutputSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains("is not supported"), "{bad}: {e}");
        }
    }

    #[test]
    fn base_layers_plain_tar_is_compressed_and_foreign_needs_its_bytes() {
        use hoist_image::{media_type, BlobStore, Descriptor, Digest, RawDocument};
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path().join("blobs")).unwrap();
        let src = hoist_registry::CacheSource::new(
            "test",
            store.clone(),
            RawDocument::new(media_type::OCI_MANIFEST, b"{}".to_vec()),
        );
        let tar = vec![0u8; 2048];
        let d = store.put_bytes(&tar).unwrap();
        let plain = Descriptor::new(media_type::DOCKER_LAYER_TAR, d, tar.len() as u64);
        let gz = import_base_layer(&store, &src, "base", 0, &plain, Compression::Gzip).unwrap();
        assert_eq!(gz.media_type, media_type::OCI_LAYER_GZIP);
        let mut head = [0u8; 2];
        std::io::Read::read_exact(&mut store.open(&gz.digest).unwrap(), &mut head).unwrap();
        assert_eq!(head, [0x1f, 0x8b]);
        let again = import_base_layer(&store, &src, "base", 0, &plain, Compression::Gzip).unwrap();
        assert_eq!(again.digest, gz.digest, "deterministic");

        let mut foreign = Descriptor::new(
            media_type::DOCKER_LAYER_FOREIGN_GZIP,
            Digest::sha256(b"elsewhere"),
            9,
        );
        foreign.urls = Some(vec!["https://example.test/layer".into()]);
        let e = import_base_layer(&store, &src, "base", 1, &foreign, Compression::Gzip)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("layer 1") && e.contains("non-distributable"),
            "{e}"
        );
        assert!(e.contains("https://example.test/layer"), "{e}");
    }

    #[test]
    fn unsafe_files_attribute() {
        assert_eq!(
            OutputSpec::parse("type=local,dest=d").unwrap().unsafe_files,
            UnsafeFiles::Skip
        );
        assert_eq!(
            OutputSpec::parse("type=local,dest=d,unsafe-files=keep")
                .unwrap()
                .unsafe_files,
            UnsafeFiles::Keep
        );
        assert!(OutputSpec::parse("type=local,dest=d,unsafe-files=maybe").is_err());
        assert!(OutputSpec::parse("type=oci,dest=d,unsafe-files=keep").is_err());
    }

    #[test]
    fn parses_buildkit_syntax() {
        assert_eq!(
            OutputSpec::parse("type=oci,dest=out").unwrap().output,
            Output::OciLayout { dest: "out".into() }
        );
        assert_eq!(
            OutputSpec::parse("type=oci,dest=out.tar").unwrap().output,
            Output::OciArchive {
                dest: "out.tar".into()
            }
        );
        assert_eq!(
            OutputSpec::parse("type=oci,dest=out,tar=true")
                .unwrap()
                .output,
            Output::OciArchive { dest: "out".into() }
        );
        assert_eq!(
            OutputSpec::parse("dir").unwrap().output,
            Output::Local { dest: "dir".into() }
        );
        assert_eq!(
            OutputSpec::parse("-").unwrap().output,
            Output::Tar { dest: "-".into() }
        );
        let o = OutputSpec::parse(
            "type=image,\"name=a:1,b:2\",push=true,compression=zstd,annotation.x=y",
        )
        .unwrap();
        assert_eq!(
            o.output,
            Output::Image {
                names: vec!["a:1".into(), "b:2".into()],
                push: true
            }
        );
        assert_eq!(o.compression, Some(Compression::Zstd));
        assert_eq!(o.annotations["x"], "y");
        let o = OutputSpec::parse(
            "type=oci,dest=d,annotation-index.org.opencontainers.image.title=t,\
             annotation-manifest-descriptor.k=v",
        )
        .unwrap();
        assert_eq!(o.index_annotations["org.opencontainers.image.title"], "t");
        assert_eq!(o.descriptor_annotations["k"], "v");
        assert!(o.annotations.is_empty());
        for bad in [
            "type=nope,dest=x",
            "type=oci",
            "type=oci,dest=x,bogus=1",
            "type=oci,dest=x,tar=maybe",
            "dest=x",
            "type=oci,dest=x,compression=lz4",
        ] {
            assert!(OutputSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
