//! One module per subcommand: flags → validated options → a library call.

pub mod assemble;
pub mod attest_args;
pub mod bake;
pub mod build;
pub mod cache;
pub mod cache_flags;
pub mod dockerfile;
pub mod inspect;
pub mod key;
pub mod lifecycle;
pub mod mark;
pub mod output_attrs;
pub mod plan;
pub mod promote;
pub mod prune;
pub mod registry_args;
pub mod sign;
pub mod tags;
pub mod task;
pub mod transfer;
pub mod verify;

/// Print a line to standard output, returning an error (not panicking, as `println!`
/// does) when the reader has gone: `hoist … | head` then ends quietly.
pub fn out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    writeln!(o, "{text}")?;
    o.flush()?;
    Ok(())
}
