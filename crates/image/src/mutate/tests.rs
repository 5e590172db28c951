//! Round trips of the mutate API through real stores and layouts.

use std::io::Read;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::layer::{Entry, WriteOptions};
use crate::media_type::Compression;
use crate::{sink::write_oci_layout, BlobStore, OciLayoutSource, Platform, Source};

fn platform() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

fn tar_paths(mut r: impl Read) -> Vec<(String, Vec<u8>)> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).unwrap();
    let mut a = tar::Archive::new(&bytes[..]);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let p = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string();
            let mut c = Vec::new();
            e.read_to_end(&mut c).unwrap();
            (p, c)
        })
        .collect()
}

#[test]
fn empty_append_config_write_and_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::new(tmp.path().join("blobs")).unwrap();
    let layer = Layer::from_entries(
        &store,
        [Entry::dir("app"), Entry::file_bytes("app/hello", "hi\n")],
        &WriteOptions::default(),
    )
    .unwrap();
    let img = Image::empty(&platform())
        .with_time(0)
        .append_layer(layer.clone(), "COPY hello /app/hello")
        .with_entrypoint(vec!["/app/hello".into()])
        .with_env("A", "1")
        .with_env("A", "2")
        .with_label("l", "v")
        .with_exposed_port("8080")
        .with_workdir("/app")
        .with_user("1000:1000")
        .with_annotation("org.example", "x");
    let w = img.write(&store).unwrap();
    let c = w.config.parse::<crate::ImageConfig>().unwrap();
    assert_eq!(c.rootfs.diff_ids, vec![layer.diff_id().clone()]);
    assert_eq!(c.created.as_deref(), Some("1970-01-01T00:00:00Z"));
    assert_eq!(c.history.len(), 1);
    let cc = c.config.unwrap();
    assert_eq!(
        cc.env.unwrap(),
        vec![DEFAULT_PATH_ENV.to_string(), "A=2".into()]
    );
    assert!(cc.exposed_ports.unwrap().contains_key("8080/tcp"));
    let m: crate::Manifest = w.manifest.parse().unwrap();
    assert_eq!(m.annotations.unwrap()["org.example"], "x");

    // Into a layout, then back as an image: the same value writes the same digest.
    let out = tmp.path().join("out");
    write_oci_layout(&w, &out, Some("latest")).unwrap();
    let src: Arc<dyn Source> = Arc::new(OciLayoutSource::open(&out, Some("latest")).unwrap());
    let back = Image::from_source(src, &platform()).unwrap();
    assert_eq!(back.layers().len(), 1);
    assert_eq!(back.write(&store).unwrap().digest(), w.digest());
    let files = tar_paths(back.layers()[0].open_uncompressed().unwrap());
    assert_eq!(files[1], ("app/hello".into(), b"hi\n".to_vec()));

    // Docker media types: no annotations, Docker layer type; zstd refused there.
    let d = back
        .clone()
        .with_media_types(MediaTypes::Docker)
        .write(&store)
        .unwrap();
    let m: crate::Manifest = d.manifest.parse().unwrap();
    assert_eq!(
        m.media_type.as_deref(),
        Some(crate::media_type::DOCKER_MANIFEST)
    );
    assert_eq!(m.layers[0].media_type, crate::media_type::DOCKER_LAYER_GZIP);
    assert!(m.annotations.is_none());
    let z = back
        .with_compression(&store, Compression::Zstd, None, 0)
        .unwrap()
        .with_media_types(MediaTypes::Docker)
        .write(&store);
    assert!(
        z.unwrap_err().to_string().contains("zstd"),
        "zstd in Docker"
    );
}

#[test]
fn history_must_match_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::new(tmp.path()).unwrap();
    let l = Layer::from_entries(
        &store,
        [Entry::file_bytes("f", "x")],
        &WriteOptions::default(),
    )
    .unwrap();
    let img = Image::empty(&platform()).append_layer(l, "x");
    assert!(img.clone().with_history(vec![]).is_ok());
    let err = img
        .with_history(vec![crate::History::default(), crate::History::default()])
        .unwrap_err();
    assert!(err.to_string().contains("2 entries"), "{err}");
}

#[test]
fn from_tar_accepts_plain_and_gzip_with_the_same_diff_id() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::new(tmp.path()).unwrap();
    let plain_opts = WriteOptions {
        compression: Compression::None,
        ..Default::default()
    };
    let plain = Layer::from_entries(&store, [Entry::file_bytes("a", "1")], &plain_opts).unwrap();
    let gz = Layer::from_entries(
        &store,
        [Entry::file_bytes("a", "1")],
        &WriteOptions::default(),
    )
    .unwrap();
    let from_plain = Layer::from_tar(
        &store,
        plain.open_compressed().unwrap(),
        &WriteOptions::default(),
    )
    .unwrap();
    let from_gz = Layer::from_tar(
        &store,
        gz.open_compressed().unwrap(),
        &WriteOptions::default(),
    )
    .unwrap();
    assert_eq!(from_plain.diff_id(), plain.diff_id());
    assert_eq!(from_gz.diff_id(), plain.diff_id());
    // Compressed form is a function of (diff_id, algorithm, level).
    assert_eq!(from_plain.digest(), gz.digest());
    assert_eq!(from_gz.digest(), gz.digest());
}

#[test]
fn index_over_platforms() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::new(tmp.path()).unwrap();
    let a = Image::empty(&platform()).write(&store).unwrap();
    let b = Image::empty(&Platform::parse("linux/arm64").unwrap())
        .write(&store)
        .unwrap();
    let idx = WrittenIndex::new(
        vec![a.clone(), b],
        MediaTypes::Oci,
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    let out = tmp.path().join("out");
    write_oci_layout(&idx, &out, Some("latest")).unwrap();
    let src: Arc<dyn Source> = Arc::new(OciLayoutSource::open(&out, Some("latest")).unwrap());
    let back = Image::from_source(src, &platform()).unwrap();
    assert_eq!(back.write(&store).unwrap().digest(), a.digest());
    let dup = WrittenIndex::new(
        vec![a.clone(), a],
        MediaTypes::Oci,
        &Default::default(),
        &Default::default(),
    );
    assert!(dup.is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Entries → layer → uncompressed tar gives the same files back, and
    /// recompressing gzip → zstd → gzip lands on the original blob.
    #[test]
    fn layer_round_trip(files in proptest::collection::btree_map("[a-z]{1,8}", proptest::collection::vec(any::<u8>(), 0..2000), 1..6),
                        level in 1i32..9) {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::new(tmp.path()).unwrap();
        let entries: Vec<Entry> = files.iter().map(|(k, v)| Entry::file_bytes(k.clone(), v.clone())).collect();
        let opts = WriteOptions { level: Some(level), ..Default::default() };
        let l = Layer::from_entries(&store, entries, &opts).unwrap();
        let back = tar_paths(l.open_uncompressed().unwrap());
        let want: Vec<(String, Vec<u8>)> = files.into_iter().collect();
        prop_assert_eq!(back, want);
        let z = l.compressed(&store, Compression::Zstd, None).unwrap();
        prop_assert_eq!(z.diff_id(), l.diff_id());
        let g = z.compressed(&store, Compression::Gzip, Some(level)).unwrap();
        prop_assert_eq!(g.digest(), l.digest());
        // The second time comes from the store's record.
        let z2 = l.compressed(&store, Compression::Zstd, None).unwrap();
        prop_assert_eq!(z2.digest(), z.digest());
    }

    /// Config transforms survive write → layout → from_source → write unchanged.
    #[test]
    fn image_round_trip(env in proptest::collection::btree_map("[A-Z]{1,5}", "[a-z0-9]{0,6}", 0..4),
                        labels in proptest::collection::btree_map("[a-z.]{1,8}", ".{0,8}", 0..4),
                        secs in 0i64..4_000_000_000) {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::new(tmp.path().join("b")).unwrap();
        let mut img = Image::empty(&platform()).with_time(secs).with_labels(&labels);
        for (k, v) in &env { img = img.with_env(k, v); }
        let w = img.write(&store).unwrap();
        let out = tmp.path().join("out");
        write_oci_layout(&w, &out, None).unwrap();
        let src: Arc<dyn Source> = Arc::new(OciLayoutSource::open(&out, None).unwrap());
        let back = Image::from_source(src, &platform()).unwrap();
        prop_assert_eq!(back.write(&store).unwrap().digest(), w.digest());
        prop_assert_eq!(back.config().created.clone(), Some(rfc3339(secs)));
    }
}
