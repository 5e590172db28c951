//! The `hoist` command: parse flags, set up logging, dispatch, map errors to exit codes.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Must come first: a re-executed sandbox helper never returns from here.
    hoist_sandbox::init();
    hoist_cli::main()
}
