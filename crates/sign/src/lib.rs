//! Image signatures others can verify, and the supply-chain gates of `hoist promote`.
//!
//! - [`key`]: ECDSA P-256 key pairs in PEM (`hoist key generate NAME` → `NAME.key`,
//!   mode 0600, optionally passphrase-encrypted PKCS#8; `NAME.pub`).
//! - [`payload`]: the sigstore/cosign "simple signing" payload.
//! - [`cosign`]: [`cosign::sign`] and [`cosign::verify`] in cosign's registry layout
//!   (`sha256-<digest>.sig`), which skopeo and podman verify with a `sigstoreSigned`
//!   policy and `use-sigstore-attachments: true`.
//! - [`gate`]: [`gate::RequireSignature`] and [`gate::RequireAttestation`], gates for
//!   [`hoist_promote::promotion::promote`].
//!
//! ```
//! use hoist_sign::payload::Payload;
//! let d = hoist_image::Digest::sha256(b"manifest");
//! let p = Payload::new("localhost:5000/app", &d);
//! assert_eq!(Payload::parse(&p.to_bytes()).unwrap().digest().unwrap(), d);
//! ```

#![deny(missing_docs)]

pub mod cosign;
pub mod error;
pub mod gate;
pub mod key;
pub mod payload;
pub mod registry;

pub use error::{Error, Result};
