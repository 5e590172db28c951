//! hoist's registry client: pull the images a build starts `FROM`, push what it
//! builds, inspect, log in — over the OCI distribution API, with `reqwest` and rustls.
//!
//! The public API is blocking; concurrent blob transfers run on a bounded pool of
//! scoped threads (see [`client`] for why).
//!
//! - [`Reference`]: `alpine` → `docker.io/library/alpine:latest`, ports, digests.
//! - [`ClientConfig`] → [`Client::new`]: credentials ([`AuthConfig`]: Docker's
//!   `config.json`, podman's `auth.json`, helpers), extra CAs and `certs.d`,
//!   insecure registries, mirrors of any registry ([`mirrors`]: containerd's
//!   `hosts.toml`), concurrency, retries, chunk size.
//! - [`Client::source`] → [`RegistrySource`], an [`hoist_image::Source`]: any sink
//!   (layout, archive, rootfs, another registry) reads a remote image through it.
//! - [`Client::pull`] → [`Pulled`]: one platform's image into a shared
//!   [`BlobStore`](hoist_image::BlobStore) cache, honouring a [`PullPolicy`].
//! - [`Client::push`] pushes any `&dyn Source` to several references → [`PushReport`].
//! - Primitives: [`Client::get_manifest`], [`Client::head_manifest`],
//!   [`Client::put_manifest`], [`Client::delete_manifest`], [`Client::list_tags`],
//!   [`Client::head_blob`], [`Client::get_blob`], [`Client::upload_blob`],
//!   [`Client::mount_blob`], [`Client::referrers`], [`Client::inspect`];
//!   [`Client::login`] and [`logout`].
//! - [`Error`] keeps the distribution spec's [`ErrorCode`]s and tells whether a retry
//!   can help; it never contains a secret.
//!
//! ```
//! use hoist_registry::Reference;
//! let r = Reference::parse("alpine").unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
//! assert_eq!(r.repository(), "library/alpine");
//! assert!(Reference::parse("Alpine").is_err());
//! ```
//!
//! Pulling and pushing (not run here: it needs a registry):
//!
//! ```no_run
//! use hoist_image::{BlobStore, Platform};
//! use hoist_registry::{Client, ClientConfig, PullPolicy, PushOptions, Reference};
//! let client = Client::new(ClientConfig::default())?;
//! let store = BlobStore::new("/var/tmp/hoist-cache/blobs")?;
//! let base = Reference::parse("localhost:5000/base:1")?;
//! let pulled = client.pull(&base, &Platform::host(), &store, PullPolicy::Missing)?;
//! let dest = Reference::parse("localhost:5000/app:1")?;
//! let report = client.push(&pulled.source, &[dest], &PushOptions::default())?;
//! println!("{:?}: {} uploaded, {} mounted", report.digest, report.uploaded, report.mounted);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod auth;
pub mod cancel;
pub mod client;
pub mod error;
pub mod login;
pub mod mirrors;
pub mod ops;
pub mod pull;
pub mod push;
pub mod reference;
pub mod source;

pub use auth::{AuthConfig, Credential};
pub use cancel::{interrupt, interrupted};
pub use client::{validate_ca, CaCert, Client, ClientConfig};
pub use error::{Error, ErrorCode, Result, Stall};
pub use login::logout;
pub use login::normalize_registry;
pub use mirrors::{Hosts, Mirror};
pub use ops::{BlobOutcome, OpenBlob};
pub use pull::{Inspection, PullPolicy, Pulled};
pub use push::{PushOptions, PushReport};
pub use reference::Reference;
pub use source::{CacheSource, RegistrySource};
