//! Write the generated seed corpus to `fuzz/seeds/TARGET/` (see `hoist_fuzz::seeds`).
//!
//! ```text
//! cargo run -p hoist-fuzz --example write-seeds
//! ```

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
    let n = hoist_fuzz::seeds::write_all(&dir)?;
    println!("wrote {n} seeds under {}", dir.display());
    Ok(())
}
