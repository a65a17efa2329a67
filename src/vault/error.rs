use crate::manifest::ManifestError;
use crate::store::StoreError;

/// Every user-facing failure: one line naming the bad item and what to do.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The store failed (I/O, SQLite, a damaged file).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest chain is damaged or forged.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A bad argument or state, with its one-line explanation.
    #[error("{0}")]
    Invalid(String),
    /// A custodian-specific problem.
    #[error("custodian {name}: {detail}")]
    Custodian {
        /// The custodian.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// No secret of this name.
    #[error("secret {0}: no such secret; run `breakglass list` to see the names")]
    UnknownSecret(String),
    /// A secret-specific problem.
    #[error("secret {name}: {detail}")]
    Secret {
        /// The secret.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// An identity file that cannot be used.
    #[error("identity file {label}: {detail}")]
    Identity {
        /// The identity file's label (usually its path).
        label: String,
        /// What is wrong.
        detail: String,
    },
    /// The passphrase does not derive this custodian's key.
    #[error("custodian {0}: wrong passphrase (it does not derive this custodian's key); check it and try again")]
    WrongPassphrase(String),
    /// The same custodian's share was given twice.
    #[error("custodian {0}: share given twice; give each custodian's key or passphrase once")]
    DuplicateShare(String),
    /// Fewer than K shares were gathered.
    #[error("{have} of {need} shares gathered; {missing} more missing{rejected} — add --identity FILE or --passphrase-file NAME=PATH for more custodians")]
    NotEnoughShares {
        /// Shares gathered.
        have: usize,
        /// Shares needed (K).
        need: usize,
        /// How many more are needed.
        missing: usize,
        /// Why other offered shares were refused, if any (already formatted).
        rejected: String,
    },
    /// The shares combined into a key that does not match the vault's recipient.
    #[error("the gathered shares do not rebuild this vault's key; the vault file may have been tampered with — restore it from a trusted copy")]
    KeyMismatch,
    /// The read-back words typed do not match the request.
    #[error("request {0}: the read-back words do not match; compare them with the requester by voice, word by word")]
    WordsMismatch(String),
    /// The audit row could not be written, so nothing was revealed.
    #[error("audit log could not be written ({0}); nothing was revealed")]
    AuditWriteFailed(String),
}

impl VaultError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        VaultError::Invalid(msg.into())
    }
}
