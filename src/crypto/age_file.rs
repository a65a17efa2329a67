//! age envelopes: custodian recipients and identities, encryption and the
//! three-way decrypt result (not mine / failed / plaintext).

use std::io::{Read, Write};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age::secrecy::SecretString;
use zeroize::Zeroizing;

/// How a custodian receives their envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientKind {
    /// An age X25519 recipient (`age1…`).
    Age,
    /// An OpenSSH `ssh-ed25519` public key.
    SshEd25519,
    /// An OpenSSH `ssh-rsa` public key.
    SshRsa,
    /// An X25519 key derived from the custodian's passphrase with Argon2id.
    Passphrase,
}

impl RecipientKind {
    /// The kind's name as stored in the manifest and shown to users.
    pub fn as_str(&self) -> &'static str {
        match self {
            RecipientKind::Age => "age",
            RecipientKind::SshEd25519 => "ssh-ed25519",
            RecipientKind::SshRsa => "ssh-rsa",
            RecipientKind::Passphrase => "passphrase",
        }
    }

    /// Parses a kind's stored name; `None` if unknown.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Age, Self::SshEd25519, Self::SshRsa, Self::Passphrase]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// A public recipient an envelope can be encrypted to, in normalized text form
/// (`age1…`, or `ssh-… BASE64` without the comment). Passphrase custodians have
/// an `age1…` recipient derived from their passphrase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustodianRecipient {
    kind: RecipientKind,
    text: String,
}

impl CustodianRecipient {
    /// Parse an `age1…`, `ssh-ed25519 …` or `ssh-rsa …` public key.
    pub fn parse_public_key(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with("age1") {
            let recipient = text
                .parse::<age::x25519::Recipient>()
                .map_err(|e| format!("not a valid age recipient ({e})"))?;
            return Ok(Self {
                kind: RecipientKind::Age,
                text: recipient.to_string(),
            });
        }
        let kind = if text.starts_with("ssh-ed25519 ") {
            RecipientKind::SshEd25519
        } else if text.starts_with("ssh-rsa ") {
            RecipientKind::SshRsa
        } else if text.starts_with("ssh-") || text.starts_with("ecdsa-") || text.starts_with("sk-")
        {
            let key_type = text.split_whitespace().next().unwrap_or(text);
            return Err(format!(
                "SSH key type {key_type} is not supported; use ssh-ed25519, ssh-rsa or an age1… key"
            ));
        } else {
            return Err(
                "expected an age1… key, an ssh-ed25519/ssh-rsa public key, an enrolment code (BGENR1:…), @FILE or the word passphrase"
                    .into(),
            );
        };
        let recipient = text
            .parse::<age::ssh::Recipient>()
            .map_err(|e| format!("not a valid SSH public key ({e:?})"))?;
        Ok(Self {
            kind,
            text: recipient.to_string(),
        })
    }

    /// Rebuild from stored (kind, text); the text is re-parsed so a bad row is caught.
    pub fn from_stored(kind: RecipientKind, text: &str) -> Result<Self, String> {
        match kind {
            RecipientKind::Passphrase => {
                let parsed = Self::parse_public_key(text)?;
                (parsed.kind == RecipientKind::Age)
                    .then_some(Self {
                        kind,
                        text: parsed.text,
                    })
                    .ok_or_else(|| "passphrase recipient must be an age1… key".to_string())
            }
            _ => {
                let parsed = Self::parse_public_key(text)?;
                (parsed.kind == kind)
                    .then_some(parsed)
                    .ok_or_else(|| format!("recipient is not of kind {}", kind.as_str()))
            }
        }
    }

    /// The kind of this recipient.
    pub fn kind(&self) -> RecipientKind {
        self.kind
    }

    /// The recipient as text (`age1…` or the OpenSSH public key line).
    pub fn text(&self) -> &str {
        &self.text
    }

    fn to_age(&self) -> Box<dyn age::Recipient> {
        match self.kind {
            RecipientKind::Age | RecipientKind::Passphrase => Box::new(
                self.text
                    .parse::<age::x25519::Recipient>()
                    .expect("validated at construction"),
            ),
            RecipientKind::SshEd25519 | RecipientKind::SshRsa => Box::new(
                self.text
                    .parse::<age::ssh::Recipient>()
                    .expect("validated at construction"),
            ),
        }
    }
}

enum IdentityInner {
    X25519(age::x25519::Identity),
    Ssh(age::ssh::Identity),
}

/// A private key that may open custodian envelopes. Secret: no Clone, redacted Debug.
pub struct CustodianIdentity(IdentityInner);

impl std::fmt::Debug for CustodianIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustodianIdentity([redacted])")
    }
}

/// What an identity file holds: keys ready to use, or one OpenSSH private key
/// that its passphrase must unlock first.
pub enum IdentityFile {
    /// Keys that can be used as they are.
    Keys(Vec<CustodianIdentity>),
    /// An OpenSSH private key that its passphrase must unlock first.
    EncryptedSsh(EncryptedSshKey),
}

/// An OpenSSH private key protected by a passphrase (`ssh-keygen -N`). Only
/// [`EncryptedSshKey::unlock`] turns it into a usable identity, so a locked key
/// never reaches an envelope. No Clone; redacted Debug.
pub struct EncryptedSshKey(age::ssh::EncryptedKey);

impl std::fmt::Debug for EncryptedSshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptedSshKey([redacted])")
    }
}

impl EncryptedSshKey {
    /// The unlocked key, or `None` when `passphrase` is not this key's.
    pub fn unlock(&self, passphrase: SecretString) -> Option<CustodianIdentity> {
        self.0
            .decrypt(passphrase)
            .ok()
            .map(|key| CustodianIdentity(IdentityInner::Ssh(age::ssh::Identity::Unencrypted(key))))
    }
}

impl CustodianIdentity {
    pub(crate) fn from_x25519(identity: age::x25519::Identity) -> Self {
        Self(IdentityInner::X25519(identity))
    }

    /// A fresh random age identity and its text form (for tests, examples and key setup).
    pub fn generate_age() -> (Self, SecretString) {
        let identity = age::x25519::Identity::generate();
        let text = identity.to_string();
        (Self::from_x25519(identity), text)
    }

    /// Parse an identity file whose keys need no passphrase: age
    /// `AGE-SECRET-KEY-1…` lines, or one unencrypted OpenSSH private key.
    pub fn parse_file(contents: &[u8]) -> Result<Vec<Self>, String> {
        match Self::read_file(contents)? {
            IdentityFile::Keys(keys) => Ok(keys),
            IdentityFile::EncryptedSsh(_) => {
                Err("is an SSH key protected by a passphrase; unlock it first".into())
            }
        }
    }

    /// Parse an identity file: age `AGE-SECRET-KEY-1…` lines, or one OpenSSH
    /// private key, which may be protected by a passphrase.
    pub fn read_file(contents: &[u8]) -> Result<IdentityFile, String> {
        let text =
            std::str::from_utf8(contents).map_err(|_| "is not a text identity file".to_string())?;
        if text.contains("-----BEGIN") {
            let identity = age::ssh::Identity::from_buffer(text.as_bytes(), None)
                .map_err(|e| format!("is not a usable SSH private key ({e})"))?;
            return match identity {
                age::ssh::Identity::Unencrypted(_) => {
                    Ok(IdentityFile::Keys(vec![Self(IdentityInner::Ssh(identity))]))
                }
                age::ssh::Identity::Encrypted(key) => {
                    Ok(IdentityFile::EncryptedSsh(EncryptedSshKey(key)))
                }
                age::ssh::Identity::Unsupported(age::ssh::UnsupportedKey::EncryptedPem) => Err(
                    "is an SSH key encrypted in the old PEM format, which breakglass cannot open; convert it with `ssh-keygen -p -o -f FILE`".into(),
                ),
                age::ssh::Identity::Unsupported(_) => {
                    Err("holds an SSH key type breakglass cannot use".into())
                }
            };
        }
        let mut identities = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let identity = line
                .parse::<age::x25519::Identity>()
                .map_err(|_| "has a line that is not an AGE-SECRET-KEY-1… identity".to_string())?;
            identities.push(Self::from_x25519(identity));
        }
        if identities.is_empty() {
            return Err("holds no identity".into());
        }
        Ok(IdentityFile::Keys(identities))
    }

    /// The public recipient text of this identity, comparable with `CustodianRecipient::text`.
    pub fn recipient(&self) -> Option<String> {
        match &self.0 {
            IdentityInner::X25519(id) => Some(id.to_public().to_string()),
            IdentityInner::Ssh(id) => age::ssh::Recipient::try_from(id.clone())
                .ok()
                .map(|r| r.to_string()),
        }
    }
}

/// Encrypt `plaintext` to one recipient as an ASCII-armored age file.
pub fn encrypt_armored(recipient: &CustodianRecipient, plaintext: &[u8]) -> Result<String, String> {
    let out = encrypt(recipient.to_age().as_ref(), plaintext, Format::AsciiArmor)?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// Encrypt `plaintext` to one recipient as a binary age file (for codes, which base64 it).
pub fn encrypt_binary(recipient: &CustodianRecipient, plaintext: &[u8]) -> Result<Vec<u8>, String> {
    encrypt(recipient.to_age().as_ref(), plaintext, Format::Binary)
}

/// The binary age file inside an armored one (or a binary one unchanged):
/// request codes carry envelopes binary, a quarter shorter.
pub fn dearmor(file: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut out = Vec::with_capacity(file.len());
    ArmoredReader::new(file)
        .read_to_end(&mut out)
        .map_err(|e| format!("not a readable age file ({e})"))?;
    Ok(out)
}

fn encrypt(
    recipient: &dyn age::Recipient,
    plaintext: &[u8],
    format: Format,
) -> Result<Vec<u8>, String> {
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient)).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(plaintext.len() * 2 + 512);
    let armored = ArmoredWriter::wrap_output(&mut out, format).map_err(|e| e.to_string())?;
    let mut writer = encryptor.wrap_output(armored).map_err(|e| e.to_string())?;
    writer.write_all(plaintext).map_err(|e| e.to_string())?;
    writer
        .finish()
        .and_then(|armored| armored.finish())
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The three ways an attempt to open an age file can end.
pub enum DecryptOutcome {
    /// The file is not addressed to this identity.
    NotMine,
    /// It is addressed to this identity but did not open: corrupted or tampered.
    Failed(String),
    /// It opened: the plaintext, zeroized on drop.
    Plaintext(Zeroizing<Vec<u8>>),
}

/// Try to open an age file (armored or binary) with one identity.
pub fn decrypt(ciphertext: &[u8], identity: &CustodianIdentity) -> DecryptOutcome {
    match &identity.0 {
        IdentityInner::X25519(id) => decrypt_with(ciphertext, id),
        IdentityInner::Ssh(id) => decrypt_with(ciphertext, id),
    }
}

/// Open a secret value with the vault's own key (only inside a quorum session).
pub fn decrypt_with_vault_key(ciphertext: &[u8], keys: &super::VaultKeys) -> DecryptOutcome {
    decrypt_with(ciphertext, keys.age_identity())
}

pub(crate) fn decrypt_with(ciphertext: &[u8], identity: &dyn age::Identity) -> DecryptOutcome {
    let decryptor = match age::Decryptor::new_buffered(ArmoredReader::new(ciphertext)) {
        Ok(d) => d,
        Err(e) => return DecryptOutcome::Failed(format!("not a readable age file ({e})")),
    };
    let mut reader = match decryptor.decrypt(std::iter::once(identity)) {
        Ok(r) => r,
        Err(age::DecryptError::NoMatchingKeys) => return DecryptOutcome::NotMine,
        Err(e) => return DecryptOutcome::Failed(e.to_string()),
    };
    // Pre-sized so the plaintext is never reallocated (and copied) while reading.
    let mut plaintext = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    match reader.read_to_end(&mut plaintext) {
        Ok(_) => DecryptOutcome::Plaintext(plaintext),
        Err(e) => DecryptOutcome::Failed(format!("payload does not authenticate ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_way_outcome() {
        let (mine, _) = CustodianIdentity::generate_age();
        let (other, _) = CustodianIdentity::generate_age();
        let recipient = CustodianRecipient::parse_public_key(&mine.recipient().unwrap()).unwrap();
        let file = encrypt_armored(&recipient, b"share").unwrap();
        assert!(file.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(
            matches!(decrypt(file.as_bytes(), &mine), DecryptOutcome::Plaintext(p) if p.as_slice() == b"share")
        );
        assert!(matches!(
            decrypt(file.as_bytes(), &other),
            DecryptOutcome::NotMine
        ));
        let mut bad = file.into_bytes();
        let mid = bad.len() - 60;
        bad[mid] = if bad[mid] == b'A' { b'B' } else { b'A' };
        assert!(matches!(decrypt(&bad, &mine), DecryptOutcome::Failed(_)));
    }

    #[test]
    fn identity_debug_is_redacted() {
        let (identity, text) = CustodianIdentity::generate_age();
        use age::secrecy::ExposeSecret;
        let shown = format!("{identity:?}");
        assert_eq!(shown, "CustodianIdentity([redacted])");
        assert!(!shown.contains(text.expose_secret()));
    }

    #[test]
    fn recipient_kinds_parse_and_reject() {
        assert!(
            CustodianRecipient::parse_public_key("ecdsa-sha2-nistp256 AAAA")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(CustodianRecipient::parse_public_key("hello").is_err());
        assert!(CustodianRecipient::parse_public_key("age1qqqq").is_err());
    }

    /// A throwaway test key: `ssh-keygen -t ed25519 -N "fixture passphrase"`.
    const ENCRYPTED_SSH_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABCubuZ0c7\n+Z421CsgAtQbw5AAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIPGx1dN6GBF7z08p\ncUUjmp752ijK4b3nosnXvCBGt+AkAAAAkJnuinY/Flh3MHXHu9TmGhxjkTr8hakr51ipD/\nubLmifOzeV/7SrPugmgHuvJWOBkhjA6YlkXlp9pPgM06tJdbVgiQvH42DpDlbE9erFPCOd\nn/OGbui2Gh1EAdeKnQ0i2FHK+XykataX05gtOD+tcO4GwCcSrENzpEzfKf2xiVEhuUt1hd\nNzO/3Ht6s5okIAcw==\n-----END OPENSSH PRIVATE KEY-----\n";
    const ENCRYPTED_SSH_PUB: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPGx1dN6GBF7z08pcUUjmp752ijK4b3nosnXvCBGt+Ak";

    #[test]
    fn an_encrypted_ssh_key_opens_only_with_its_passphrase() {
        let IdentityFile::EncryptedSsh(locked) =
            CustodianIdentity::read_file(ENCRYPTED_SSH_KEY.as_bytes()).unwrap()
        else {
            panic!("an encrypted key must come back locked");
        };
        assert_eq!(format!("{locked:?}"), "EncryptedSshKey([redacted])");
        // parse_file, for callers that cannot ask, says what it is.
        assert!(CustodianIdentity::parse_file(ENCRYPTED_SSH_KEY.as_bytes())
            .unwrap_err()
            .contains("protected by a passphrase"));
        assert!(locked.unlock(SecretString::from("wrong")).is_none());
        assert!(locked.unlock(SecretString::from("")).is_none());
        let identity = locked
            .unlock(SecretString::from("fixture passphrase"))
            .expect("the right passphrase unlocks it");
        let recipient = CustodianRecipient::parse_public_key(ENCRYPTED_SSH_PUB).unwrap();
        assert_eq!(identity.recipient().as_deref(), Some(recipient.text()));
        let file = encrypt_armored(&recipient, b"share").unwrap();
        assert!(
            matches!(decrypt(file.as_bytes(), &identity), DecryptOutcome::Plaintext(p) if p.as_slice() == b"share")
        );
    }
}
