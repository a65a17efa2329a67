//! A passphrase custodian's enrolment code: made on the custodian's own machine
//! by `custodian enroll`, given by the admin to `init --custodian NAME=BGENR1:…`
//! or `rekey --add-custodian`. It carries only public facts: the custodian name,
//! the age recipient derived from the passphrase, the Argon2id salt and cost,
//! and whether the cheap test-only KDF made it. Like the vault file itself, it
//! lets anyone test passphrase guesses offline at one Argon2id each (SECURITY.md).

use serde::{Deserialize, Serialize};

use super::code::{self, CodeError, CodeKind};
use crate::crypto::{CustodianRecipient, KdfParams, RecipientKind};
use crate::manifest::KdfSpec;

/// The enrolment code format this build writes and reads.
pub const ENROLMENT_FORMAT: u32 = 1;
/// Salt length, as for a passphrase custodian made at the admin's terminal.
pub const SALT_LEN: usize = 16;

/// The enrolment as carried in the code (canonical compact JSON). Public data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrolment {
    /// Format version ([`ENROLMENT_FORMAT`]).
    pub v: u32,
    /// The custodian name the code was made for.
    pub name: String,
    /// The `age1…` recipient derived from the passphrase.
    pub recipient: String,
    /// The Argon2id salt and cost the recipient was derived with.
    pub kdf: KdfSpec,
    /// Made with `--insecure-test-only-kdf`: only a test-only vault accepts it.
    pub insecure_test_only_kdf: bool,
}

/// Why an enrolment code was refused; each message names the custodian and what to do.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnrolError {
    /// The code's framing (prefix, checksum, length) is wrong.
    #[error("enrolment code {0}")]
    Code(#[from] CodeError),
    /// The payload is not a valid enrolment.
    #[error("enrolment code is not a readable enrolment ({0}); ask the custodian to run `breakglass custodian enroll` again and send the new code")]
    Unreadable(String),
    /// The code was made for another custodian name than the one it is given for.
    #[error("enrolment code is for custodian {in_code}, not {given}; give it as {in_code}=BGENR1:… or ask {given} for their own code")]
    OtherName {
        /// The name inside the code.
        in_code: String,
        /// The name it was given for.
        given: String,
    },
    /// Made with the test-only KDF, which a real vault refuses.
    #[error("enrolment code was made with --insecure-test-only-kdf, which a real vault refuses; ask {0} to enrol again without it")]
    TestOnly(String),
    /// The salt or Argon2id cost is unusable (malformed, below the floor or above the cap).
    #[error("enrolment code is unusable: {0}; ask the custodian to enrol again with `breakglass custodian enroll --passphrase` (no test-only option)")]
    Params(String),
}

impl Enrolment {
    /// The public enrolment of a custodian whose recipient was just derived.
    pub fn new(
        name: &str,
        recipient: &CustodianRecipient,
        salt: &[u8; SALT_LEN],
        params: KdfParams,
        insecure_test_only_kdf: bool,
    ) -> Self {
        Self {
            v: ENROLMENT_FORMAT,
            name: name.to_string(),
            recipient: recipient.text().to_string(),
            kdf: KdfSpec {
                salt: hex::encode(salt),
                params,
            },
            insecure_test_only_kdf,
        }
    }

    /// The one-line code.
    pub fn code(&self) -> String {
        let payload = serde_json::to_vec(self).expect("an enrolment serializes");
        code::encode(CodeKind::Enrolment, &payload)
    }

    /// Parse a pasted code. Checks everything that does not depend on the vault:
    /// the checksum, the format, the name, the recipient, the salt, and that the
    /// Argon2id cost is valid and under the cap (a hostile code cannot make the
    /// admin's or a custodian's machine derive with 100 GiB).
    pub fn parse(text: &str) -> Result<Self, EnrolError> {
        let payload = code::decode(CodeKind::Enrolment, text)?;
        let enrolment: Enrolment =
            serde_json::from_slice(&payload).map_err(|e| EnrolError::Unreadable(e.to_string()))?;
        if enrolment.v != ENROLMENT_FORMAT {
            return Err(EnrolError::Unreadable(format!(
                "format {} is not supported",
                enrolment.v
            )));
        }
        if crate::vault::validate_custodian_name(&enrolment.name).is_err() {
            return Err(EnrolError::Unreadable(
                "its custodian name is not a valid name".into(),
            ));
        }
        CustodianRecipient::from_stored(RecipientKind::Passphrase, &enrolment.recipient)
            .map_err(|e| EnrolError::Unreadable(format!("its recipient is malformed: {e}")))?;
        let salt_ok = enrolment.kdf.salt.len() == 2 * SALT_LEN
            && enrolment
                .kdf
                .salt
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !salt_ok {
            return Err(EnrolError::Unreadable(format!(
                "its salt is malformed (want {} lower-case hex digits)",
                2 * SALT_LEN
            )));
        }
        // Cap and validity only; the floor depends on the vault (see `admit`).
        enrolment
            .kdf
            .params
            .check(true)
            .map_err(EnrolError::Params)?;
        Ok(enrolment)
    }

    /// Admit the enrolment as custodian `name` of a vault: the name must match,
    /// and a real vault (not `insecure_test_only_kdf`) refuses a test-only code
    /// and any cost below the floor. Gives what the manifest records, exactly as
    /// for a passphrase typed at the admin's terminal.
    pub fn admit(
        &self,
        name: &str,
        vault_is_test_only: bool,
    ) -> Result<(CustodianRecipient, KdfSpec), EnrolError> {
        if self.name != name {
            return Err(EnrolError::OtherName {
                in_code: self.name.clone(),
                given: name.to_string(),
            });
        }
        if self.insecure_test_only_kdf && !vault_is_test_only {
            return Err(EnrolError::TestOnly(self.name.clone()));
        }
        self.kdf
            .params
            .check(vault_is_test_only)
            .map_err(EnrolError::Params)?;
        let recipient = CustodianRecipient::from_stored(RecipientKind::Passphrase, &self.recipient)
            .map_err(|e| EnrolError::Unreadable(format!("its recipient is malformed: {e}")))?;
        Ok((recipient, self.kdf.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Passphrase, KDF_TEST_ONLY_INSECURE};

    fn sample(params: KdfParams, test_only: bool) -> Enrolment {
        let identity = KDF_TEST_ONLY_INSECURE
            .derive_identity(&Passphrase::new("p".into()), &[7; SALT_LEN])
            .unwrap();
        let recipient = CustodianRecipient::from_stored(
            RecipientKind::Passphrase,
            &identity.recipient().unwrap(),
        )
        .unwrap();
        Enrolment::new("dave", &recipient, &[7; SALT_LEN], params, test_only)
    }

    fn recode(mut edit: impl FnMut(&mut serde_json::Value)) -> String {
        let mut value = serde_json::to_value(sample(KdfParams::DEFAULT, false)).unwrap();
        edit(&mut value);
        code::encode(CodeKind::Enrolment, &serde_json::to_vec(&value).unwrap())
    }

    #[test]
    fn round_trips_and_is_admitted_only_under_its_own_name() {
        let e = sample(KdfParams::DEFAULT, false);
        let code = e.code();
        assert!(code.starts_with("BGENR1:"));
        assert_eq!(Enrolment::parse(&code).unwrap(), e);
        let (recipient, kdf) = e.admit("dave", false).unwrap();
        assert_eq!(recipient.kind(), RecipientKind::Passphrase);
        assert_eq!(recipient.text(), e.recipient);
        assert_eq!(kdf, e.kdf);
        assert_eq!(
            e.admit("carol", false).unwrap_err().to_string(),
            "enrolment code is for custodian dave, not carol; give it as dave=BGENR1:… or ask carol for their own code"
        );
    }

    #[test]
    fn test_only_codes_and_low_costs_enter_only_test_only_vaults() {
        let cheap = sample(KDF_TEST_ONLY_INSECURE, true);
        assert!(matches!(
            cheap.admit("dave", false),
            Err(EnrolError::TestOnly(_))
        ));
        assert!(cheap.admit("dave", true).is_ok());
        // A code claiming production intent but carrying a low cost: the floor.
        let low = sample(KDF_TEST_ONLY_INSECURE, false);
        let err = low.admit("dave", false).unwrap_err().to_string();
        assert!(err.contains("below the floor"), "{err}");
        // A code flagged test-only with production cost: still refused.
        let flagged = sample(KdfParams::DEFAULT, true);
        assert!(matches!(
            flagged.admit("dave", false),
            Err(EnrolError::TestOnly(_))
        ));
    }

    #[test]
    fn hostile_or_malformed_codes_are_refused_by_name() {
        let above_cap = recode(|v| v["kdf"]["params"]["m_kib"] = (100u64 * 1024 * 1024).into());
        let err = Enrolment::parse(&above_cap).unwrap_err().to_string();
        assert!(err.contains("exceed the cap"), "{err}");
        let bad_salt = recode(|v| v["kdf"]["salt"] = "zz".into());
        assert!(Enrolment::parse(&bad_salt)
            .unwrap_err()
            .to_string()
            .contains("salt is malformed"));
        let bad_recipient = recode(|v| v["recipient"] = "age1notakey".into());
        assert!(Enrolment::parse(&bad_recipient)
            .unwrap_err()
            .to_string()
            .contains("recipient is malformed"));
        let ssh_recipient = recode(|v| {
            v["recipient"] =
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHHoJz4ncmp0pQ5Y6ZgqXMdAFKW0M3KQ5wJ0Vvn7k6yz"
                    .into()
        });
        assert!(Enrolment::parse(&ssh_recipient).is_err());
        let bad_name = recode(|v| v["name"] = "dave\nerror: forged".into());
        let err = Enrolment::parse(&bad_name).unwrap_err().to_string();
        assert!(
            !err.contains('\n') && err.contains("not a valid name"),
            "{err}"
        );
        let extra = recode(|v| v["extra"] = 1.into());
        assert!(matches!(
            Enrolment::parse(&extra),
            Err(EnrolError::Unreadable(_))
        ));
        let newer = recode(|v| v["v"] = 2.into());
        assert!(Enrolment::parse(&newer)
            .unwrap_err()
            .to_string()
            .contains("format 2"));
        let request = code::encode(CodeKind::Request, b"{}");
        assert_eq!(
            Enrolment::parse(&request).unwrap_err().to_string(),
            "enrolment code is a request code, not an enrolment code; paste the right one"
        );
        let code = sample(KdfParams::DEFAULT, false).code();
        let cut = &code[..code.len() - 10];
        assert!(Enrolment::parse(cut)
            .unwrap_err()
            .to_string()
            .contains("cut short"));
    }
}
