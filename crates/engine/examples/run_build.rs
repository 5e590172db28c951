//! Build a Dockerfile (RUN steps included) from a Rust program:
//! `cargo run -p hoist-engine --example run_build -- CONTEXT OUT_DIR` writes the image as an
//! OCI layout to OUT_DIR and prints its digest.

use hoist_engine::{build, options::BuildOptions, output::OutputSpec, progress};

fn main() {
    // First, before anything else: RUN re-executes this program as its sandbox helper.
    hoist_engine::sandbox_init();
    let mut args = std::env::args().skip(1);
    let (Some(context), Some(out)) = (args.next(), args.next()) else {
        eprintln!("usage: run_build CONTEXT OUT_DIR");
        std::process::exit(2);
    };
    let mut opts = BuildOptions::new(context);
    let spec = OutputSpec::parse(&format!("type=oci,dest={out}")).expect("output spec");
    opts.outputs.push(spec);
    let display = progress::display(progress::Mode::Plain);
    match build(&opts, display.as_ref()) {
        Ok(r) => println!("{}", r.manifest_digest),
        Err(e) => {
            eprintln!("error: {}", hoist_image::chain_text(&e));
            std::process::exit(1);
        }
    }
}
