//! One module per subcommand: flags → validated options → a library call.

pub mod build;
pub mod dockerfile;
pub mod inspect;
pub mod registry_args;
pub mod transfer;
