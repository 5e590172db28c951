//! Supply-chain attestations for hoist images: SLSA provenance and SPDX SBOMs, laid out
//! in the image index exactly as BuildKit lays them out.
//!
//! - [`options::AttestOptions`]: `--provenance`, `--sbom`, `--attest` as buildx spells them.
//! - [`provenance`]: the SLSA v1 predicate (sources, bases by digest, args without
//!   secrets, builder, times; mode=max adds the steps).
//! - [`sbom`]: packages found in an image's filesystem ([`sbom::scan`]) as SPDX 2.3
//!   ([`sbom::spdx::document`]).
//! - [`intoto`]: the in-toto statements both are wrapped in.
//! - [`layout`]: the attestation manifest of one image and its index entry
//!   ([`layout::write_attestation_manifest`]), and reading attestations back from any
//!   image source ([`layout::read_attestations`]).
//!
//! ```
//! use hoist_attest::options::{AttestOptions, ProvenanceMode};
//! let mut o = AttestOptions::default();
//! o.attest_flag("type=provenance,mode=max").unwrap();
//! o.sbom_flag("true").unwrap();
//! assert_eq!(o.provenance, Some(ProvenanceMode::Max));
//! assert!(o.sbom);
//! ```

#![deny(missing_docs)]

pub mod error;
pub mod intoto;
pub mod layout;
pub mod options;
pub mod provenance;
pub mod sbom;

pub use error::{Error, Result};
