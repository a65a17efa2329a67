//! breakglass: an offline K-of-N emergency-access vault with a verifiable audit log.
//!
//! Layout: `crypto` (all primitives), `manifest` (signed epoch chain), `vault`
//! (domain operations), `audit` (hash-chained log), `store` (the only SQL),
//! `hygiene` (non-dumpable, no core, locked memory: the only OS-level calls).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod crypto;
#[cfg(test)]
mod format_vectors;
#[doc(hidden)]
pub mod fuzzing;
pub mod hygiene;
pub mod manifest;
pub mod notify;
pub mod remote;
pub mod rotators;
pub mod store;
pub mod vault;

pub use store::Access;
pub use vault::{Vault, VaultError};
