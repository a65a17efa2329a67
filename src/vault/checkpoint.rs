//! Signed audit checkpoints, written inside quorum sessions (the only time the
//! vault key exists), and verification against the manifest chain's keys.

use super::{Vault, VaultError};
use crate::audit::{self, CheckpointBody, EndorsedVersion};
use crate::crypto::{self, VaultKeys, VerifyKey};
use crate::store::Tx;

impl Vault {
    /// Append a checkpoint signing the log head and the active versions, in `tx`.
    pub(crate) fn append_checkpoint(
        tx: &Tx<'_>,
        keys: &VaultKeys,
        vault_id: &str,
        epoch: u64,
        fingerprint: &str,
        actor: &str,
    ) -> Result<(), VaultError> {
        let Some((seq, head)) = tx.read().audit_head()? else {
            return Ok(());
        };
        let versions = tx
            .read()
            .versions_in(&["active"])?
            .into_iter()
            .map(|v| EndorsedVersion {
                ciphertext_sha256: hex::encode(crypto::sha256(&[v.ciphertext.as_bytes()])),
                secret: v.secret,
                version: v.version,
                depositor: v.depositor,
            })
            .collect();
        let body = CheckpointBody {
            vault_id: vault_id.into(),
            epoch,
            seq,
            head,
            versions,
        };
        let signature = keys.sign(&audit::checkpoint_message(&body));
        audit::append(
            tx,
            vec![audit::checkpoint_entry(actor, fingerprint, body, signature)],
        )?;
        Ok(())
    }

    /// Check the hash chain and every checkpoint against the manifest chain's keys.
    pub fn verify_audit(&self) -> Result<audit::VerifyReport, VaultError> {
        let keys: Vec<(u64, VerifyKey)> = self
            .store
            .read()
            .manifests()?
            .iter()
            .filter_map(|row| {
                let body: serde_json::Value = serde_json::from_str(&row.body).ok()?;
                Some((
                    row.epoch,
                    VerifyKey::from_hex(body.get("verify_key")?.as_str()?)?,
                ))
            })
            .collect();
        let key_of = |epoch: u64| keys.iter().find(|(e, _)| *e == epoch).map(|(_, k)| *k);
        Ok(audit::verify_signed(
            &self.store.read().audit_entries()?,
            &self.manifest().vault_id,
            &key_of,
        ))
    }

    /// A one-line anchor for the current log head.
    pub fn audit_anchor(&self) -> Result<String, VaultError> {
        let entries = self.store.read().audit_entries()?;
        Ok(audit::anchor(&self.fingerprint(), entries.last()))
    }

    /// Check that the log still contains an anchored head.
    pub fn check_anchor(&self, anchor: &str) -> Result<(), String> {
        let entries = self
            .store
            .read()
            .audit_entries()
            .map_err(|e| e.to_string())?;
        audit::check_anchor(&entries, &self.fingerprint(), anchor)
    }
}
