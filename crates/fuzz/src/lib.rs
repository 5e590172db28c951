//! The bodies of hoist's fuzz targets, as ordinary library code.
//!
//! Each target is a function `fn(&[u8])` that feeds one hostile input to one of hoist's
//! parsers or readers and panics only when an invariant breaks: an error for bad input
//! is the expected outcome; a panic, an abort, a hang or a file written outside its root
//! is a bug. The cargo-fuzz crate in `fuzz/` wraps each one in `fuzz_target!`, and
//! `cargo test -p hoist-fuzz` replays the committed corpus (`fuzz/seeds/`, generated
//! by [`seeds::all`], and `fuzz/regressions/`, inputs that once crashed) through the
//! same functions on every normal test run.
//!
//! | target | what it reads | what must hold |
//! | --- | --- | --- |
//! | [`dockerfile`] | Dockerfile text, `.dockerignore` | no panic; render/parse round trip |
//! | [`layer`] | a layer tar (plain, gzip or zstd) | nothing outside the root changes; `openat2` and user-space resolution give the same tree |
//! | [`documents`] | manifest, index, config, `manifest.json` JSON | no panic; canonical JSON is a fixed point |
//! | [`docker_archive`] | a `docker save` tar | no panic; unpacking stays in its root and is atomic; a copy keeps the root document |
//! | [`oci`] | an OCI archive, and the same tar as an OCI layout directory | as for docker-archive |
//!
//! ```
//! for (name, body) in hoist_fuzz::TARGETS {
//!     body(b"");
//!     assert!(!name.is_empty());
//! }
//! ```

pub mod archive;
pub mod dockerfile;
pub mod documents;
pub mod jail;
pub mod layer;
pub mod rawtar;
pub mod seeds;
pub mod tarfix;

pub use archive::{docker_archive, oci};
pub use documents::documents;
pub use layer::layer;

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// Every target: its name (the cargo-fuzz binary and the corpus folder) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("dockerfile", dockerfile::run),
    ("layer", layer::layer),
    ("documents", documents::documents),
    ("docker_archive", archive::docker_archive),
    ("oci", archive::oci),
];

/// The body of the target called `name`.
pub fn target(name: &str) -> Option<Body> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}
