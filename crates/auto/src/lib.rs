//! Automatic builds: what kind of app a directory holds, and the Dockerfile that
//! builds it.
//!
//! [`Facts::read`] is the only I/O: the top-level listing of the directory, the
//! listing of `public/`, `dist/` and `bin/`, and a few small files (`package.json`,
//! `Cargo.toml`, `Procfile`, `hoist.toml`). [`plan`] is a pure function of those
//! [`Facts`] and the [`Settings`]: it returns a [`Plan`] whose Dockerfile carries,
//! as comments, the reason for each choice. `hoist plan DIR > Dockerfile` is a
//! supported way to take the build over.
//!
//! ```
//! use hoist_auto::{plan, Facts, Kind, Settings};
//! let mut facts = Facts::default();
//! facts.files.insert("index.html".into());
//! let p = plan(&facts, &Settings::default())?;
//! assert_eq!(p.kind, Kind::Static);
//! assert!(p.dockerfile.contains("USER 65534:65534"));
//! # Ok::<(), hoist_auto::Error>(())
//! ```

mod facts;
mod kinds;
mod settings;

pub use facts::Facts;
pub use kinds::{plan, Kind, Plan};
pub use settings::Settings;

/// Errors of detection and planning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the app directory failed (the cause is the source, not repeated here).
    #[error("reading {}", path.display())]
    Io {
        /// The path read.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No kind of app was recognised.
    #[error(
        "{dir}: no Dockerfile and no app hoist recognises; looked for: go.mod (Go), \
         Cargo.toml (Rust), package.json (Node), requirements.txt / pyproject.toml / \
         Procfile with main.py or app.py (Python), index.html / public/index.html / \
         dist/index.html (static site), a single executable at the top or in bin/ \
         (prebuilt binary). Write a Dockerfile, or set kind = \"...\" in hoist.toml"
    )]
    Unrecognised {
        /// The directory.
        dir: String,
    },
    /// A file or setting that cannot be used.
    #[error("{0}")]
    Invalid(String),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
