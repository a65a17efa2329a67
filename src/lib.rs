//! breakglass: an offline K-of-N emergency-access vault with a verifiable audit log.
#![forbid(unsafe_code)]

pub mod crypto;
