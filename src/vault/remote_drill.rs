//! Drill proofs: a custodian shows their share is intact without revealing it,
//! by signing a statement with the key derived from the share, whose public
//! half the signed manifest lists. Remotely: the vault side sends a challenge
//! code (carrying the envelopes, like a request), the custodian answers with a
//! proof code, and the vault side checks and logs it. Locally, every passing
//! drill row carries such a proof too, so a drill on a copy brought back with
//! `audit merge` counts.

use serde::{Deserialize, Serialize};

use super::{Vault, VaultError};
use crate::audit::{self, NewEntry};
use crate::crypto::{self, ShareProofKey, VerifyKey};
use crate::manifest::Manifest;
use crate::remote::code::{self, CodeKind};
use crate::remote::request::PURPOSE_DRILL;
use crate::remote::ParsedRequest;

const PROOF_LABEL: &[u8] = b"breakglass/v1/drill-proof\0";
const PROOF_FORMAT: u32 = 1;

/// What a drill proof signs. `challenge` is the SHA-256 of a remote
/// challenge's core, or a random nonce for a local drill; `at` is when the
/// custodian signed, and what `status` counts as the drill's time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofStatement {
    pub v: u32,
    pub vault_id: String,
    pub epoch: u64,
    pub custodian: String,
    pub at: String,
    pub challenge: String,
    pub remote: bool,
}

/// A signed drill proof (public: it reveals nothing about the share).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillProof {
    /// What the custodian proves: vault, epoch, custodian, time and challenge.
    pub statement: ProofStatement,
    /// Ed25519 signature over the statement (hex), by a key derived from the custodian's share.
    pub signature: String,
}

/// What `drill --remote` gives the vault side to send out.
#[derive(Debug, Serialize)]
pub struct DrillChallengeIssued {
    /// The `BGDRC1:` challenge code to send to the custodians.
    pub code: String,
    /// The challenge's random id (hex).
    pub challenge_id: String,
    /// When the challenge stops being answerable (RFC 3339, UTC).
    pub expires: String,
    /// Characters in `code`.
    pub code_length: usize,
}

/// The vault side's verdict on one proof code.
#[derive(Debug, Serialize)]
pub struct ProofCheck {
    /// The proof's file or label.
    pub label: String,
    /// The custodian the proof is for, when it could be read.
    pub custodian: Option<String>,
    /// The proof verified against this vault's share commitment and challenge.
    pub passed: bool,
    /// Why it did not pass, in one line.
    pub problem: Option<String>,
}

fn message(statement: &ProofStatement) -> Vec<u8> {
    [
        PROOF_LABEL,
        &serde_json::to_vec(statement).expect("statement serializes"),
    ]
    .concat()
}

impl DrillProof {
    fn new(statement: ProofStatement, key: &ShareProofKey) -> Self {
        let signature = hex::encode(key.sign(&message(&statement)));
        Self {
            statement,
            signature,
        }
    }

    /// Answer the challenge `request` as `custodian`.
    pub(crate) fn sign(request: &ParsedRequest, custodian: &str, key: &ShareProofKey) -> Self {
        let r = &request.request;
        Self::new(
            ProofStatement {
                v: PROOF_FORMAT,
                vault_id: r.vault_id.clone(),
                epoch: r.epoch,
                custodian: custodian.into(),
                at: audit::now(),
                challenge: hex::encode(request.hash()),
                remote: true,
            },
            key,
        )
    }

    /// The proof a local drill logs with its passing row.
    pub(crate) fn local(vault_id: &str, epoch: u64, custodian: &str, key: &ShareProofKey) -> Self {
        Self::new(
            ProofStatement {
                v: PROOF_FORMAT,
                vault_id: vault_id.into(),
                epoch,
                custodian: custodian.into(),
                at: audit::now(),
                challenge: hex::encode(crypto::random_bytes::<16>()),
                remote: false,
            },
            key,
        )
    }

    /// The proof as a `BGDRP1:` code, to send back to the vault side.
    pub fn code(&self) -> String {
        code::encode(
            CodeKind::DrillProof,
            &serde_json::to_vec(self).expect("proof serializes"),
        )
    }

    /// Parses a `BGDRP1:` proof code (the framing only; checking is separate).
    pub fn parse(text: &str) -> Result<Self, String> {
        let payload = code::decode(CodeKind::DrillProof, text).map_err(|e| e.to_string())?;
        serde_json::from_slice(&payload).map_err(|e| {
            format!("is not a readable drill proof ({e}); ask the custodian to send it again")
        })
    }

    /// Check the signature against the custodian's proof key in `manifest`
    /// (the manifest of the proof's epoch).
    pub fn verify(&self, manifest: &Manifest) -> Result<(), String> {
        let s = &self.statement;
        if s.v != PROOF_FORMAT {
            return Err(format!("has proof format {}; upgrade breakglass", s.v));
        }
        if s.vault_id != manifest.vault_id {
            return Err("is for another vault".into());
        }
        if s.epoch != manifest.epoch {
            return Err(format!(
                "proves a share of epoch {}; the vault is at epoch {} — send a new challenge",
                s.epoch, manifest.epoch
            ));
        }
        let custodian = manifest
            .custodian(&s.custodian)
            .ok_or_else(|| format!("comes from {}, who is not a custodian", s.custodian))?;
        let key = custodian
            .proof_key
            .as_deref()
            .and_then(VerifyKey::from_hex)
            .ok_or("this epoch's manifest has no share proof keys (made by an older breakglass); run `breakglass rekey` once")?;
        if !crypto::verify_signature(&key, &message(s), &self.signature) {
            return Err(format!(
                "is not signed by {}'s share (forged, edited, or from another share)",
                s.custodian
            ));
        }
        Ok(())
    }

    /// The proof as JSON, for the details of its audit row.
    pub fn to_details(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("proof serializes")
    }

    /// Reads a proof back from an audit row's details; `None` if it holds none.
    pub fn from_details(details: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(details.get("proof")?.clone()).ok()
    }
}

impl Vault {
    /// Start a remote drill: a challenge code carrying this epoch's signed
    /// manifest and every envelope, logged (`drill_challenge`) so only proofs
    /// of a challenge made here count.
    pub fn create_drill_challenge(
        &mut self,
        ttl: chrono::Duration,
        actor: &str,
    ) -> Result<DrillChallengeIssued, VaultError> {
        let parsed = self.new_request_code(PURPOSE_DRILL, "drill", ttl, actor, String::new())?;
        self.log_request("drill_challenge", &parsed, "remote drill", actor, &[])?;
        let r = &parsed.request;
        Ok(DrillChallengeIssued {
            code_length: parsed.code.len(),
            code: parsed.code.clone(),
            challenge_id: r.request_id.clone(),
            expires: r.expires.clone(),
        })
    }

    /// Check custodians' proof codes against challenges logged here and this
    /// epoch's proof keys; log each as a `drill` row (one transaction). A
    /// passing one counts as that custodian's drill.
    pub fn check_drill_proofs(
        &mut self,
        proofs: &[(String, String)],
        actor: &str,
    ) -> Result<Vec<ProofCheck>, VaultError> {
        let m = self.manifest().clone();
        let current = self.current.clone();
        let tx = self.store.begin()?;
        Vault::require_epoch_in(&tx, &current)?;
        let mut checks = Vec::new();
        let mut entries = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for (label, text) in proofs {
            let proof = DrillProof::parse(text);
            let outcome = proof.as_ref().map_err(Clone::clone).and_then(|p| {
                p.verify(&m)?;
                let s = &p.statement;
                if !s.remote {
                    return Err("is a local drill's proof, not an answer to a challenge".into());
                }
                let challenge = tx
                    .read()
                    .audit_entries_with(&["drill_challenge"])
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .find(|e| {
                        serde_json::from_str::<serde_json::Value>(&e.details).is_ok_and(|d| {
                            d.get("request_sha256").and_then(|h| h.as_str())
                                == Some(s.challenge.as_str())
                        })
                    })
                    .ok_or("answers no drill challenge made on this vault; send a new challenge with `breakglass drill --remote`")?;
                let details: serde_json::Value =
                    serde_json::from_str(&challenge.details).unwrap_or_default();
                let expired = details
                    .get("expires")
                    .and_then(|x| x.as_str())
                    .and_then(|x| chrono::DateTime::parse_from_rfc3339(x).ok())
                    .is_none_or(|t| t <= chrono::Utc::now());
                if expired {
                    return Err(format!(
                        "answers challenge {}, which has expired; send a new challenge",
                        challenge.subject
                    ));
                }
                if seen.contains(&s.custodian) {
                    return Err(format!("is a second proof from {}", s.custodian));
                }
                seen.push(s.custodian.clone());
                Ok(challenge.subject)
            });
            let custodian = proof.as_ref().ok().map(|p| p.statement.custodian.clone());
            let problem = outcome.as_ref().err().map(|e| format!("{label}: {e}"));
            // Only a proof that verified names its custodian as the subject: an
            // unverified one claims a name it may not own, so it is logged under
            // its file, with the claim in the details.
            let subject = match (&outcome, &custodian) {
                (Ok(_), Some(name)) => name.clone(),
                _ => label.clone(),
            };
            let mut details = serde_json::json!({
                "outcome": if problem.is_none() { "pass" } else { "fail" },
                "problem": problem,
                "epoch": m.epoch,
                "envelope": "remote",
                "claimed_custodian": custodian,
            });
            if let (Ok(challenge), Ok(p)) = (&outcome, &proof) {
                details["challenge"] = challenge.clone().into();
                details["proof"] = p.to_details();
            }
            entries.push(NewEntry::new(actor, "drill", &subject).details(details));
            checks.push(ProofCheck {
                label: label.clone(),
                custodian,
                passed: problem.is_none(),
                problem,
            });
        }
        audit::append(&tx, entries)?;
        tx.commit()?;
        Ok(checks)
    }
}
