//! Manual measurement: write a layer for a big tree and report throughput, so
//! peak memory can be measured with `/usr/bin/time -v`. Ignored by default:
//!
//! ```text
//! HOIST_LAYER_SRC=/tmp/tree HOIST_LAYER_OUT=/tmp/blobs [HOIST_LAYER_COMPRESSION=zstd|none] [HOIST_LAYER_LEVEL=n] \
//!   /usr/bin/time -v target/release/deps/layer_big-* write_big_tree --ignored --nocapture
//! HOIST_LAYER_BLOB=/tmp/blobs/sha256/<hex> HOIST_LAYER_DEST=/tmp/rootfs \
//!   /usr/bin/time -v target/release/deps/layer_big-* apply_big_layer --ignored --nocapture
//! ```

use std::path::PathBuf;
use std::time::Instant;

use hoist_image::layer::{walk, write_layer_blob, Compression, WalkOptions, WriteOptions};

#[test]
#[ignore = "manual benchmark: needs HOIST_LAYER_SRC"]
fn write_big_tree() {
    let src = PathBuf::from(std::env::var("HOIST_LAYER_SRC").expect("HOIST_LAYER_SRC"));
    let out = std::env::var("HOIST_LAYER_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("hoist-layer-big"));
    let compression = match std::env::var("HOIST_LAYER_COMPRESSION").as_deref() {
        Ok("zstd") => Compression::Zstd,
        Ok("none") => Compression::None,
        _ => Compression::Gzip,
    };
    let opts = WriteOptions {
        compression,
        level: std::env::var("HOIST_LAYER_LEVEL")
            .ok()
            .and_then(|l| l.parse().ok()),
        ..Default::default()
    };
    let start = Instant::now();
    let entries = walk(&src, "app", &WalkOptions::default(), &|_, _| true).unwrap();
    let desc = write_layer_blob(&out, entries, &opts).unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{compression:?}: {} bytes uncompressed -> {} bytes in {secs:.2}s ({:.0} MB/s) digest {} diff_id {}",
        desc.uncompressed_size,
        desc.size,
        desc.uncompressed_size as f64 / secs / 1e6,
        desc.digest,
        desc.diff_id
    );
}

#[test]
#[ignore = "manual benchmark: needs HOIST_LAYER_BLOB and HOIST_LAYER_DEST"]
fn apply_big_layer() {
    let blob = PathBuf::from(std::env::var("HOIST_LAYER_BLOB").expect("HOIST_LAYER_BLOB"));
    let dest = PathBuf::from(std::env::var("HOIST_LAYER_DEST").expect("HOIST_LAYER_DEST"));
    std::fs::create_dir_all(&dest).unwrap();
    let start = Instant::now();
    let stats = hoist_image::layer::apply_layer(
        std::fs::File::open(&blob).unwrap(),
        None,
        &dest,
        &hoist_image::layer::ApplyOptions::default(),
    )
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "applied {} entries, {} files, {} bytes in {secs:.2}s ({:.0} MB/s), diff_id {}",
        stats.entries,
        stats.files,
        stats.bytes,
        stats.uncompressed_size as f64 / secs / 1e6,
        stats.diff_id
    );
}
