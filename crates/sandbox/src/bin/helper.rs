//! A minimal binary that only acts as the sandbox helper, for tests and for programs
//! that prefer a separate helper executable over re-executing themselves.

fn main() {
    hoist_sandbox::init();
    eprintln!("hoist-sandbox-helper: only meant to be started by hoist's sandbox");
    std::process::exit(2);
}
