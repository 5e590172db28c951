//! Assemble an image without a Dockerfile: a base (an OCI layout, or `scratch`), one
//! file added, an entrypoint, written as an OCI layout.
//!
//! ```text
//! cargo run -p hoist-image --example assemble -- BASE_LAYOUT|scratch FILE /IN/IMAGE/PATH OUT_DIR
//! ```

use std::sync::Arc;

use hoist_image::layer::{ModeOverride, WriteOptions};
use hoist_image::mutate::{reproducible_time, Image, Layer};
use hoist_image::{sink::write_oci_layout, BlobStore, OciLayoutSource, Platform};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, file, dest, out] = &args[..] else {
        return Err("usage: assemble BASE_LAYOUT|scratch FILE DEST OUT_DIR".into());
    };
    let platform = Platform::host();
    let work = tempfile::tempdir()?;
    let store = BlobStore::new(work.path())?;

    // The ten lines: base, one layer, an entrypoint, an OCI layout.
    let base = match base.as_str() {
        "scratch" => Image::empty(&platform),
        dir => Image::from_source(Arc::new(OciLayoutSource::open(dir, None)?), &platform)?,
    };
    let opts = WriteOptions {
        mode_override: Some(ModeOverride::octal(0o755)),
        ..Default::default()
    };
    let layer = Layer::from_dir(&store, file.as_ref(), dest, &opts)?;
    let image = base
        .with_time(reproducible_time())
        .append_layer(layer, format!("COPY {file} {dest}"))
        .with_entrypoint(vec![dest.clone()])
        .write(&store)?;
    write_oci_layout(&image, out.as_ref(), Some("latest"))?;

    println!("{}", image.digest());
    Ok(())
}
