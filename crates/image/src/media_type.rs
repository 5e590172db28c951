//! Media types of the OCI image spec and Docker's image manifest v2 schema 2.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI empty descriptor (`{}`), used for artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Uncompressed OCI layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// gzip-compressed OCI layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// zstd-compressed OCI layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Non-distributable uncompressed OCI layer (deprecated, still read).
pub const OCI_LAYER_NONDIST_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// Non-distributable gzip OCI layer (deprecated, still read).
pub const OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// Non-distributable zstd OCI layer (deprecated, still read).
pub const OCI_LAYER_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

/// Docker image manifest v2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Uncompressed Docker layer (`docker save`, skopeo and podman docker-archives).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker foreign (non-distributable) uncompressed layer.
pub const DOCKER_LAYER_FOREIGN_TAR: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign (non-distributable) gzip layer.
pub const DOCKER_LAYER_FOREIGN_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker schema 1 signed manifest (only recognised, to reject clearly).
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// Whether `mt` is a manifest (not an index).
pub fn is_manifest(mt: &str) -> bool {
    mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
}

/// Whether `mt` is an index / manifest list.
pub fn is_index(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
}

/// The compression of a layer media type, or `None` if `mt` is not a known layer type.
///
/// Every layer type of the OCI image spec and of Docker's schema 2 is known:
/// uncompressed, gzip and zstd, distributable or not.
pub fn layer_compression(mt: &str) -> Option<Compression> {
    match mt {
        OCI_LAYER_TAR | OCI_LAYER_NONDIST_TAR | DOCKER_LAYER_TAR | DOCKER_LAYER_FOREIGN_TAR => {
            Some(Compression::None)
        }
        OCI_LAYER_GZIP | OCI_LAYER_NONDIST_GZIP | DOCKER_LAYER_GZIP | DOCKER_LAYER_FOREIGN_GZIP => {
            Some(Compression::Gzip)
        }
        OCI_LAYER_ZSTD | OCI_LAYER_NONDIST_ZSTD => Some(Compression::Zstd),
        _ => None,
    }
}

/// The OCI layer media type for a compression.
pub fn oci_layer(c: Compression) -> &'static str {
    match c {
        Compression::None => OCI_LAYER_TAR,
        Compression::Gzip => OCI_LAYER_GZIP,
        Compression::Zstd => OCI_LAYER_ZSTD,
    }
}

/// Whether `mt` is a non-distributable ("foreign") layer type: its blob may live only
/// at the descriptor's `urls`, is not pushed, and is not fetched from a registry.
pub fn is_foreign_layer(mt: &str) -> bool {
    matches!(
        mt,
        OCI_LAYER_NONDIST_TAR
            | OCI_LAYER_NONDIST_GZIP
            | OCI_LAYER_NONDIST_ZSTD
            | DOCKER_LAYER_FOREIGN_TAR
            | DOCKER_LAYER_FOREIGN_GZIP
    )
}

/// The media type a layer of type `mt` gets in an image written with OCI (`oci`) or
/// Docker schema 2 media types.
///
/// The blob is never recompressed here, so the new type describes the same bytes:
/// an uncompressed Docker layer becomes an uncompressed OCI layer (and back), and a
/// non-distributable layer stays non-distributable. Errors name what cannot be said:
/// an unknown type, or zstd (or a non-distributable zstd layer) in a Docker manifest.
pub fn output_layer_type(mt: &str, oci: bool) -> Result<&'static str, String> {
    let c = layer_compression(mt).ok_or_else(|| format!("unknown layer media type {mt:?}"))?;
    let foreign = is_foreign_layer(mt);
    Ok(match (oci, foreign, c) {
        (true, false, c) => oci_layer(c),
        (true, true, Compression::None) => OCI_LAYER_NONDIST_TAR,
        (true, true, Compression::Gzip) => OCI_LAYER_NONDIST_GZIP,
        (true, true, Compression::Zstd) => OCI_LAYER_NONDIST_ZSTD,
        (false, false, Compression::None) => DOCKER_LAYER_TAR,
        (false, false, Compression::Gzip) => DOCKER_LAYER_GZIP,
        (false, true, Compression::None) => DOCKER_LAYER_FOREIGN_TAR,
        (false, true, Compression::Gzip) => DOCKER_LAYER_FOREIGN_GZIP,
        (false, _, Compression::Zstd) => {
            return Err("zstd layers need OCI media types (oci-mediatypes=true)".into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_layer_type_is_known_and_maps_to_the_same_bytes() {
        let all = [
            (OCI_LAYER_TAR, Compression::None, false),
            (OCI_LAYER_GZIP, Compression::Gzip, false),
            (OCI_LAYER_ZSTD, Compression::Zstd, false),
            (OCI_LAYER_NONDIST_TAR, Compression::None, true),
            (OCI_LAYER_NONDIST_GZIP, Compression::Gzip, true),
            (OCI_LAYER_NONDIST_ZSTD, Compression::Zstd, true),
            (DOCKER_LAYER_TAR, Compression::None, false),
            (DOCKER_LAYER_GZIP, Compression::Gzip, false),
            (DOCKER_LAYER_FOREIGN_TAR, Compression::None, true),
            (DOCKER_LAYER_FOREIGN_GZIP, Compression::Gzip, true),
        ];
        for (mt, c, foreign) in all {
            assert_eq!(layer_compression(mt), Some(c), "{mt}");
            assert_eq!(is_foreign_layer(mt), foreign, "{mt}");
            for oci in [true, false] {
                match output_layer_type(mt, oci) {
                    Ok(out) => {
                        assert_eq!(layer_compression(out), Some(c), "{mt} -> {out}");
                        assert_eq!(is_foreign_layer(out), foreign, "{mt} -> {out}");
                        assert_eq!(out.starts_with("application/vnd.oci."), oci, "{out}");
                    }
                    Err(e) => {
                        assert!(!oci && c == Compression::Zstd, "{mt}: {e}");
                        assert!(e.contains("zstd"), "{e}");
                    }
                }
            }
        }
        assert_eq!(output_layer_type(DOCKER_LAYER_TAR, true), Ok(OCI_LAYER_TAR));
        let e = output_layer_type("application/x-foo", true).unwrap_err();
        assert!(e.contains("application/x-foo"), "{e}");
    }
}
