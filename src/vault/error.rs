use crate::manifest::ManifestError;
use crate::store::StoreError;

/// Every user-facing failure: one line naming the bad item and what to do.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{0}")]
    Invalid(String),
    #[error("custodian {name}: {detail}")]
    Custodian { name: String, detail: String },
    #[error("secret {0}: no such secret; run `breakglass list` to see the names")]
    UnknownSecret(String),
    #[error("secret {name}: {detail}")]
    Secret { name: String, detail: String },
    #[error("identity file {label}: {detail}")]
    Identity { label: String, detail: String },
    #[error("custodian {0}: wrong passphrase (it does not derive this custodian's key); check it and try again")]
    WrongPassphrase(String),
    #[error("custodian {0}: share given twice; give each custodian's key or passphrase once")]
    DuplicateShare(String),
    #[error("{have} of {need} shares gathered; {missing} more missing{rejected} — add --identity FILE or --passphrase-file NAME=PATH for more custodians")]
    NotEnoughShares {
        have: usize,
        need: usize,
        missing: usize,
        rejected: String,
    },
    #[error("the gathered shares do not rebuild this vault's key; the vault file may have been tampered with — restore it from a trusted copy")]
    KeyMismatch,
    #[error("request {0}: the read-back words do not match; compare them with the requester by voice, word by word")]
    WordsMismatch(String),
    #[error("audit log could not be written ({0}); nothing was revealed")]
    AuditWriteFailed(String),
}

impl VaultError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        VaultError::Invalid(msg.into())
    }
}
