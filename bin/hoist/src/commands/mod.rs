//! One module per subcommand: flags → validated options → a library call.

pub mod build;
pub mod cache;
pub mod dockerfile;
pub mod inspect;
pub mod promote;
pub mod prune;
pub mod registry_args;
pub mod tags;
pub mod task;
pub mod transfer;
