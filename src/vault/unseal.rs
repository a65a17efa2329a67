//! Unsealing: gather shares from custodians' identities and passphrases, check
//! each against its commitment, combine K, then reveal — logging first.

use super::records::{self, SecretValue, ShareRecord};
use super::{KdfProgress, SecretKind, Vault, VaultError};
use crate::audit::{self, NewEntry};
use crate::crypto::{
    self, CustodianIdentity, DecryptOutcome, KdfParams, Passphrase, Share, SshKeyPassphrasePrompt,
    VaultKeys,
};
use crate::manifest::CustodianEntry;
use crate::store::EnvelopeRow;

/// Prompting is the caller's job; the vault asks through this.
pub trait UnsealPrompt: KdfProgress {
    /// Passphrase of `custodian`, while `still_needed` shares are missing.
    /// `None` means none is available (no terminal): the vault never waits.
    fn passphrase(&mut self, custodian: &str, still_needed: usize) -> Option<Passphrase>;
    /// A passphrase just given for `custodian` was wrong.
    fn wrong_passphrase(&mut self, _custodian: &str) {}
}

/// What the requester brings to an unseal.
pub struct UnsealRequest {
    pub reason: String,
    pub actor: String,
    /// Identity files by label (usually the path), each holding one or more keys.
    pub identities: Vec<(String, Vec<CustodianIdentity>)>,
    /// Passphrases given up front (`--passphrase-file NAME=PATH`).
    pub passphrases: Vec<(String, Passphrase)>,
    pub reveal: Vec<String>,
    pub ssh_key_prompt: SshKeyPassphrasePrompt,
}

pub struct Revealed {
    pub name: String,
    pub kind: SecretKind,
    pub username: Option<String>,
    pub version: u32,
    pub value: SecretValue,
}

impl std::fmt::Debug for Revealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Revealed({} v{}, [redacted])", self.name, self.version)
    }
}

#[derive(Debug)]
pub struct UnsealReport {
    pub revealed: Vec<Revealed>,
    pub custodians: Vec<String>,
    pub epoch: u64,
    /// Shares that were named and skipped, one line each.
    pub warnings: Vec<String>,
}

const MAX_PASSPHRASE_TRIES: usize = 3;

/// Shares gathered so far, and the ones rejected by name.
struct Gathering<'a> {
    vault_id: [u8; 16],
    epoch: u64,
    threshold: usize,
    custodians: &'a [CustodianEntry],
    envelopes: Vec<EnvelopeRow>,
    good: Vec<(String, Share)>,
    tried: Vec<String>,
    rejected: Vec<(String, String)>,
}

impl Gathering<'_> {
    fn missing(&self) -> usize {
        self.threshold.saturating_sub(self.good.len())
    }

    fn claim(&mut self, custodian: &str) -> Result<(), VaultError> {
        if self.tried.iter().any(|c| c == custodian) {
            return Err(VaultError::DuplicateShare(custodian.into()));
        }
        self.tried.push(custodian.into());
        Ok(())
    }

    /// Open this custodian's envelope and check the share inside. A bad share is
    /// recorded by name and skipped; the caller decides whether enough remain.
    fn take_share(
        &mut self,
        custodian: &CustodianEntry,
        identity: &CustodianIdentity,
        ssh: SshKeyPassphrasePrompt,
    ) {
        let Some(envelope) = self
            .envelopes
            .iter()
            .find(|e| e.custodian == custodian.name)
        else {
            self.reject(custodian, "the vault holds no envelope for this custodian");
            return;
        };
        match crypto::decrypt(envelope.envelope.as_bytes(), identity, ssh) {
            DecryptOutcome::NotMine => self.reject(
                custodian,
                "envelope is not sealed to this custodian's key (replaced?)",
            ),
            DecryptOutcome::Failed(why) => {
                self.reject(custodian, &format!("envelope is corrupted ({why})"))
            }
            DecryptOutcome::Plaintext(plaintext) => {
                match self.check_record(custodian, &plaintext) {
                    Ok(share) => self.good.push((custodian.name.clone(), share)),
                    Err(why) => self.reject(custodian, &why),
                }
            }
        }
    }

    fn check_record(&self, custodian: &CustodianEntry, plaintext: &[u8]) -> Result<Share, String> {
        let record = ShareRecord::decode(plaintext)
            .ok_or_else(|| "envelope does not hold a breakglass share".to_string())?;
        if record.vault_id != self.vault_id {
            return Err(format!(
                "share belongs to another vault ({})",
                hex::encode(record.vault_id)
            ));
        }
        if record.epoch != self.epoch {
            return Err(format!(
                "share is from epoch {}; the vault is at epoch {}",
                record.epoch, self.epoch
            ));
        }
        if record.custodian != custodian.name
            || record.index != custodian.index
            || usize::from(record.threshold) != self.threshold
        {
            return Err("share's custodian, index or threshold do not match the manifest".into());
        }
        let commitment = crypto::commitment(&self.vault_id, self.epoch, &record.share);
        if !crypto::ct_eq(commitment.as_bytes(), custodian.commitment.as_bytes()) {
            return Err("share fails its commitment (corrupted or forged)".into());
        }
        Ok(record.share)
    }

    fn reject(&mut self, custodian: &CustodianEntry, why: &str) {
        self.rejected
            .push((custodian.name.clone(), why.to_string()));
    }

    fn warnings(&self) -> Vec<String> {
        self.rejected
            .iter()
            .map(|(name, why)| format!("custodian {name}: {why}; share skipped"))
            .collect()
    }
}

impl Vault {
    /// Gather K shares, rebuild the vault key, and reveal the named secrets.
    /// The audit rows (unseal, each reveal, each rejected share) are committed
    /// before any value is returned; if they cannot be, nothing is revealed.
    pub fn unseal(
        &mut self,
        request: UnsealRequest,
        prompt: &mut dyn UnsealPrompt,
    ) -> Result<UnsealReport, VaultError> {
        let mut reveal: Vec<String> = Vec::new();
        for name in &request.reveal {
            if !reveal.contains(name) {
                reveal.push(name.clone());
            }
        }
        for name in &reveal {
            if self.store.read().active_version(name)?.is_none() {
                return Err(VaultError::UnknownSecret(name.clone()));
            }
        }
        let manifest = self.current.manifest.clone();
        let mut gathering = Gathering {
            vault_id: self.vault_id(),
            epoch: manifest.epoch,
            threshold: usize::from(manifest.threshold),
            custodians: &manifest.custodians,
            envelopes: self.store.read().envelopes(manifest.epoch)?,
            good: Vec::new(),
            tried: Vec::new(),
            rejected: Vec::new(),
        };
        let outcome = gather_and_open(self, &mut gathering, &request, &reveal, prompt);
        let warnings = gathering.warnings();
        let mut entries: Vec<NewEntry> = gathering
            .rejected
            .iter()
            .map(|(name, why)| {
                NewEntry::new(&request.actor, "share_rejected", name)
                    .reason(&request.reason)
                    .details(serde_json::json!({ "problem": why }))
            })
            .collect();
        let used: Vec<String> = gathering.good.iter().map(|(n, _)| n.clone()).collect();
        match outcome {
            Err(error) => {
                entries.push(
                    NewEntry::new(&request.actor, "unseal_failed", &manifest.fingerprint())
                        .reason(&request.reason)
                        .details(serde_json::json!({
                            "epoch": manifest.epoch,
                            "error": error.to_string(),
                            "custodians": used,
                        })),
                );
                // Best effort: the failure is the error the user needs to see.
                let _ = self.append_audit(entries);
                Err(error)
            }
            Ok(revealed) => {
                entries.push(
                    NewEntry::new(&request.actor, "unseal", &manifest.fingerprint())
                        .reason(&request.reason)
                        .details(serde_json::json!({
                            "epoch": manifest.epoch,
                            "custodians": used,
                            "requester": request.actor,
                            "reveal": revealed.iter().map(|r| &r.name).collect::<Vec<_>>(),
                        })),
                );
                for r in &revealed {
                    entries.push(
                        NewEntry::new(&request.actor, "reveal", &r.name)
                            .reason(&request.reason)
                            .details(
                                serde_json::json!({ "version": r.version, "custodians": used }),
                            ),
                    );
                }
                self.append_audit(entries)
                    .map_err(|e| VaultError::AuditWriteFailed(e.to_string()))?;
                Ok(UnsealReport {
                    revealed,
                    custodians: used,
                    epoch: manifest.epoch,
                    warnings,
                })
            }
        }
    }

    fn append_audit(&mut self, entries: Vec<NewEntry>) -> Result<(), VaultError> {
        let tx = self.store.begin()?;
        audit::append(&tx, entries)?;
        tx.commit()?;
        Ok(())
    }

    fn decrypt_secret(&self, keys: &VaultKeys, name: &str) -> Result<Revealed, VaultError> {
        let read = self.store.read();
        let tampered = |detail: &str| VaultError::Secret {
            name: name.into(),
            detail: format!(
                "{detail}; the vault file was tampered with — restore it from a trusted copy"
            ),
        };
        let meta = read
            .secret(name)?
            .ok_or_else(|| VaultError::UnknownSecret(name.into()))?;
        let version = read
            .active_version(name)?
            .ok_or_else(|| VaultError::UnknownSecret(name.into()))?;
        let plaintext = match crypto::decrypt_with_vault_key(version.ciphertext.as_bytes(), keys) {
            DecryptOutcome::Plaintext(p) => p,
            DecryptOutcome::NotMine => {
                return Err(tampered("value is not sealed to this vault's key"))
            }
            DecryptOutcome::Failed(why) => {
                return Err(tampered(&format!("value does not decrypt ({why})")))
            }
        };
        let (vault_id, bound_name, bound_version, value) =
            records::decode_secret(&plaintext).ok_or_else(|| tampered("value is malformed"))?;
        if vault_id != self.vault_id() || bound_name != name || bound_version != version.version {
            return Err(tampered(&format!(
                "value belongs to {bound_name} v{bound_version}, not v{} (moved between rows)",
                version.version
            )));
        }
        Ok(Revealed {
            name: name.into(),
            kind: SecretKind::parse(&meta.kind)?,
            username: meta.username,
            version: version.version,
            value,
        })
    }
}

fn gather_and_open(
    vault: &Vault,
    g: &mut Gathering<'_>,
    request: &UnsealRequest,
    reveal: &[String],
    prompt: &mut dyn UnsealPrompt,
) -> Result<Vec<Revealed>, VaultError> {
    let manifest = vault.manifest();
    // 1. Identity files: match each key to a custodian by its public recipient.
    for (label, identities) in &request.identities {
        let mut matched = false;
        for identity in identities {
            let Some(recipient) = identity.recipient() else {
                continue;
            };
            let Some(custodian) = g.custodians.iter().find(|c| c.recipient == recipient) else {
                continue;
            };
            matched = true;
            g.claim(&custodian.name)?;
            g.take_share(custodian, identity, request.ssh_key_prompt);
        }
        if !matched {
            return Err(VaultError::Identity {
                label: label.clone(),
                detail: "matches no custodian of this vault; check you have the right key file"
                    .into(),
            });
        }
    }
    // 2. Passphrases given up front.
    for (name, passphrase) in &request.passphrases {
        let custodian = passphrase_custodian(manifest.custodian(name), name)?;
        g.claim(name)?;
        let identity = derive(
            custodian,
            passphrase,
            manifest.insecure_test_only_kdf,
            prompt,
        )?
        .ok_or_else(|| VaultError::WrongPassphrase(name.clone()))?;
        g.take_share(custodian, &identity, request.ssh_key_prompt);
    }
    // 3. Prompt passphrase custodians, only while shares are still missing.
    let waiting: Vec<&CustodianEntry> = g
        .custodians
        .iter()
        .filter(|c| c.kdf.is_some() && !g.tried.contains(&c.name))
        .collect();
    'custodians: for custodian in waiting {
        for _ in 0..MAX_PASSPHRASE_TRIES {
            if g.missing() == 0 {
                break 'custodians;
            }
            let Some(passphrase) = prompt.passphrase(&custodian.name, g.missing()) else {
                break 'custodians;
            };
            match derive(
                custodian,
                &passphrase,
                manifest.insecure_test_only_kdf,
                prompt,
            )? {
                Some(identity) => {
                    g.claim(&custodian.name)?;
                    g.take_share(custodian, &identity, request.ssh_key_prompt);
                    continue 'custodians;
                }
                None => prompt.wrong_passphrase(&custodian.name),
            }
        }
        return Err(VaultError::WrongPassphrase(custodian.name.clone()));
    }
    if g.missing() > 0 {
        let rejected = if g.rejected.is_empty() {
            String::new()
        } else {
            let named: Vec<String> = g
                .rejected
                .iter()
                .map(|(n, why)| format!("{n}: {why}"))
                .collect();
            format!(" (rejected {})", named.join("; "))
        };
        return Err(VaultError::NotEnoughShares {
            have: g.good.len(),
            need: g.threshold,
            missing: g.missing(),
            rejected,
        });
    }
    // 4. Combine, and check the rebuilt key against the signed manifest.
    let shares: Vec<&Share> = g.good.iter().map(|(_, s)| s).collect();
    let seed =
        crypto::combine(&shares, g.threshold).map_err(|e| VaultError::invalid(e.to_string()))?;
    let keys = seed.derive_keys();
    if keys.verify_key().to_hex() != manifest.verify_key
        || keys.recipient() != manifest.vault_recipient
    {
        return Err(VaultError::KeyMismatch);
    }
    // 5. Decrypt in memory; nothing leaves until the audit rows are committed.
    reveal
        .iter()
        .map(|name| vault.decrypt_secret(&keys, name))
        .collect()
}

fn passphrase_custodian<'m>(
    custodian: Option<&'m CustodianEntry>,
    name: &str,
) -> Result<&'m CustodianEntry, VaultError> {
    match custodian {
        None => Err(VaultError::Custodian {
            name: name.into(),
            detail: "no such custodian; run `breakglass custodian list`".into(),
        }),
        Some(c) if c.kdf.is_none() => Err(VaultError::Custodian {
            name: name.into(),
            detail: format!(
                "holds a key ({}), not a passphrase; pass --identity FILE",
                c.kind
            ),
        }),
        Some(c) => Ok(c),
    }
}

/// Derive a passphrase custodian's identity; `None` if the passphrase is wrong.
fn derive(
    custodian: &CustodianEntry,
    passphrase: &Passphrase,
    allow_test_only_kdf: bool,
    progress: &mut dyn UnsealPrompt,
) -> Result<Option<CustodianIdentity>, VaultError> {
    let kdf = custodian
        .kdf
        .as_ref()
        .expect("passphrase custodians have KDF params");
    let bad = |detail: String| VaultError::Custodian {
        name: custodian.name.clone(),
        detail,
    };
    let params: KdfParams = kdf.params;
    params.check(allow_test_only_kdf).map_err(bad)?;
    let salt = hex::decode(&kdf.salt).map_err(|_| bad("KDF salt is malformed".into()))?;
    progress.kdf_started(&custodian.name);
    let identity = params.derive_identity(passphrase, &salt);
    progress.kdf_finished();
    let identity = identity.map_err(bad)?;
    Ok((identity.recipient().as_deref() == Some(custodian.recipient.as_str())).then_some(identity))
}
