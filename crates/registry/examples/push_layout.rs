//! Push an OCI layout to a registry with hoist's client (used by `benches/push.sh`
//! until the CLI's `hoist push` is wired to it).
//!
//! Usage: `push_layout LAYOUT_DIR TAG DEST_REF [CONCURRENCY]`

use std::time::Instant;

use hoist_registry::{Client, ClientConfig, PushOptions, Reference};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: push_layout LAYOUT_DIR TAG DEST_REF [CONCURRENCY]");
        std::process::exit(2);
    }
    let mut config = ClientConfig::default();
    if let Some(c) = args.get(3) {
        config.concurrency = c.parse()?;
    }
    let client = Client::new(config)?;
    let src = hoist_testutil::LayoutSource::open(std::path::Path::new(&args[0]), Some(&args[1]));
    let dest = Reference::parse(&args[2])?;
    let t = Instant::now();
    let rep = client.push(&src, &[dest], &PushOptions::default())?;
    eprintln!(
        "pushed {} in {:.3}s: {} uploaded ({} bytes), {} mounted, {} skipped",
        rep.digest.map(|d| d.to_string()).unwrap_or_default(),
        t.elapsed().as_secs_f64(),
        rep.uploaded,
        rep.uploaded_bytes,
        rep.mounted,
        rep.skipped
    );
    Ok(())
}
