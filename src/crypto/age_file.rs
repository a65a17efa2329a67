//! age envelopes: custodian recipients and identities, encryption and the
//! three-way decrypt result (not mine / failed / plaintext).

use std::io::{Read, Write};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age::secrecy::SecretString;
use zeroize::Zeroizing;

use super::plugin::{self, Bridge, PluginOptions};
use super::Passphrase;

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
    /// A plugin recipient (`age1yubikey1…`, `age1<name>1…`): a hardware key
    /// that only `age-plugin-<name>` on `PATH` can seal to and open.
    Plugin,
    /// A tagged P-256 recipient (`age1tag1…`, what `age-plugin-tpm` and others
    /// emit): sealed natively, opened by the token's plugin identity.
    Tag,
}

impl RecipientKind {
    /// The kind's name as stored in the manifest and shown to users.
    pub fn as_str(&self) -> &'static str {
        match self {
            RecipientKind::Age => "age",
            RecipientKind::SshEd25519 => "ssh-ed25519",
            RecipientKind::SshRsa => "ssh-rsa",
            RecipientKind::Passphrase => "passphrase",
            RecipientKind::Plugin => "age-plugin",
            RecipientKind::Tag => "age-tag",
        }
    }

    /// Parses a kind's stored name; `None` if unknown.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Age,
            Self::SshEd25519,
            Self::SshRsa,
            Self::Passphrase,
            Self::Plugin,
            Self::Tag,
        ]
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
    /// Parse an `age1…` (X25519, tag or plugin), `ssh-ed25519 …` or
    /// `ssh-rsa …` public key.
    pub fn parse_public_key(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with("age1") {
            return Self::parse_age(text);
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

    /// `age1…` (X25519), `age1tag1…` or `age1<plugin>1…`, told apart by the
    /// Bech32 prefix: everything before the last `1`.
    fn parse_age(text: &str) -> Result<Self, String> {
        let prefix = text
            .rfind('1')
            .map_or("", |i| &text[..i])
            .to_ascii_lowercase();
        let (kind, normalized) = match prefix.as_str() {
            "age" => (
                RecipientKind::Age,
                text.parse::<age::x25519::Recipient>()
                    .map_err(|e| format!("not a valid age recipient ({e})"))?
                    .to_string(),
            ),
            "age1tag" => (
                RecipientKind::Tag,
                text.parse::<age::tag::Recipient>()
                    .map_err(|e| format!("not a valid age1tag1… recipient ({e})"))?
                    .to_string(),
            ),
            _ => {
                let name = &prefix["age1".len()..];
                if !plugin::valid_plugin_name(name) {
                    return Err(format!(
                        "plugin name {name:?} in this recipient is not allowed: only a-z, 0-9 and - may name a plugin"
                    ));
                }
                let recipient = text
                    .parse::<age::plugin::Recipient>()
                    .map_err(|e| format!("not a valid age plugin recipient ({e})"))?;
                (RecipientKind::Plugin, recipient.to_string())
            }
        };
        Ok(Self {
            kind,
            text: normalized,
        })
    }

    /// The vault's own recipient: a plain X25519 `age1…` key, never a plugin
    /// or tag recipient (sealing a value must never run a program).
    pub fn parse_vault_recipient(text: &str) -> Result<Self, String> {
        let parsed = Self::parse_public_key(text)?;
        (parsed.kind == RecipientKind::Age)
            .then_some(parsed)
            .ok_or_else(|| "the vault recipient must be a plain age1… X25519 key".to_string())
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

    /// The plugin that seals to and opens this key, for plugin recipients
    /// (`yubikey` for `age1yubikey1…`).
    pub fn plugin_name(&self) -> Option<&str> {
        (self.kind == RecipientKind::Plugin).then(|| plugin_name_of(&self.text))
    }

    /// Whether this machine can seal to this key: a plugin recipient needs
    /// its plugin on `PATH`, and a trial seal through it must work (a plugin
    /// that wants interaction to seal fails here, before any share is asked
    /// for). `Err` names the program and how to install it.
    pub fn check_sealable(&self) -> Result<(), String> {
        match self.plugin_name() {
            Some(name) => {
                plugin_on_path(name)?;
                encrypt_to(self, b"breakglass sealing probe", Format::Binary).map(|_| ())
            }
            None => Ok(()),
        }
    }

    fn to_age(&self) -> Result<Box<dyn age::Recipient + Send>, String> {
        Ok(match self.kind {
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
            RecipientKind::Tag => Box::new(
                self.text
                    .parse::<age::tag::Recipient>()
                    .expect("validated at construction"),
            ),
            RecipientKind::Plugin => {
                let recipient = self
                    .text
                    .parse::<age::plugin::Recipient>()
                    .expect("validated at construction");
                let name = plugin_name_of(&self.text);
                let bridge = Bridge::new(
                    &PluginOptions::default(),
                    format!("age-plugin-{name}"),
                    None,
                );
                Box::new(
                    age::plugin::RecipientPluginV1::new(name, &[recipient], &[], bridge)
                        .map_err(|_| missing_plugin(name))?,
                )
            }
        })
    }
}

/// The plugin name inside a validated plugin recipient text.
fn plugin_name_of(recipient: &str) -> &str {
    let end = recipient.rfind('1').unwrap_or(recipient.len());
    recipient.get("age1".len()..end).unwrap_or("")
}

fn missing_plugin(name: &str) -> String {
    format!(
        "age-plugin-{name} is not installed on this machine (not on PATH); {}",
        plugin::install_hint(name)
    )
}

/// `Ok` when `age-plugin-NAME` is on `PATH` (found the way the `age` crate
/// will look for it; nothing is run).
fn plugin_on_path(name: &str) -> Result<(), String> {
    if !plugin::valid_plugin_name(name) {
        return Err(format!("plugin name {name:?} is not allowed"));
    }
    let probe = age::plugin::Identity::default_for_plugin(name).map_err(|e| e.to_string())?;
    age::plugin::IdentityPluginV1::new(name, &[probe], age::NoCallbacks)
        .map(|_| ())
        .map_err(|_| missing_plugin(name))
}

enum IdentityInner {
    X25519(age::x25519::Identity),
    Ssh(age::ssh::Identity),
    /// An `AGE-PLUGIN-…` line: a handle on a key held by a token, opened by
    /// running `age-plugin-<name>`, with the prompts it may need.
    Plugin(age::plugin::Identity, PluginOptions),
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

    /// Parse an identity file: age `AGE-SECRET-KEY-1…` and `AGE-PLUGIN-…`
    /// lines, or one OpenSSH private key, which may be protected by a
    /// passphrase. Plugin keys get the default (silent) plugin options.
    pub fn read_file(contents: &[u8]) -> Result<IdentityFile, String> {
        Self::read_file_with(contents, &PluginOptions::default())
    }

    /// [`Self::read_file`], with plugin keys talking through `plugins`.
    pub fn read_file_with(
        contents: &[u8],
        plugins: &PluginOptions,
    ) -> Result<IdentityFile, String> {
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
            if line
                .get(..11)
                .is_some_and(|head| head.eq_ignore_ascii_case("AGE-PLUGIN-"))
            {
                identities.push(Self::parse_plugin_line(line, plugins)?);
                continue;
            }
            let identity = line.parse::<age::x25519::Identity>().map_err(|_| {
                "has a line that is not an AGE-SECRET-KEY-1… or AGE-PLUGIN-… identity".to_string()
            })?;
            identities.push(Self::from_x25519(identity));
        }
        if identities.is_empty() {
            return Err("holds no identity".into());
        }
        Ok(IdentityFile::Keys(identities))
    }

    fn parse_plugin_line(line: &str, plugins: &PluginOptions) -> Result<Self, String> {
        let identity = line.parse::<age::plugin::Identity>().map_err(|_| {
            "has an AGE-PLUGIN-… line that is not a valid plugin identity".to_string()
        })?;
        if !plugin::valid_plugin_name(identity.plugin()) {
            return Err(format!(
                "names plugin {:?}, which is not allowed: only a-z, 0-9 and - may name a plugin",
                identity.plugin()
            ));
        }
        Ok(Self(IdentityInner::Plugin(identity, plugins.clone())))
    }

    /// The public recipient text of this identity, comparable with
    /// `CustodianRecipient::text`; `None` for a plugin key, whose public half
    /// only its token knows.
    pub fn recipient(&self) -> Option<String> {
        match &self.0 {
            IdentityInner::X25519(id) => Some(id.to_public().to_string()),
            IdentityInner::Ssh(id) => age::ssh::Recipient::try_from(id.clone())
                .ok()
                .map(|r| r.to_string()),
            IdentityInner::Plugin(..) => None,
        }
    }

    /// What a custodian pin is keyed by for a plugin key: a hash of its
    /// identity line (a stable handle on the token's key). `None` for other
    /// keys, which are pinned by their public recipient.
    pub fn pin_subject(&self) -> Option<String> {
        match &self.0 {
            IdentityInner::Plugin(id, _) => Some(format!(
                "age-plugin-identity:{}",
                hex::encode(super::sha256(&[
                    b"breakglass/v1/plugin-identity\0",
                    id.to_string().as_bytes()
                ]))
            )),
            _ => None,
        }
    }

    /// The plugin this key runs (`yubikey`), for plugin keys.
    pub fn plugin_name(&self) -> Option<&str> {
        match &self.0 {
            IdentityInner::Plugin(id, _) => Some(id.plugin()),
            _ => None,
        }
    }

    /// Whether this key may open envelopes sealed to a custodian with this
    /// stored kind and recipient: exactly its own recipient for ordinary
    /// keys; for a plugin key, any recipient of its plugin and any tag
    /// recipient (only trying tells which one is its own).
    pub fn may_open(&self, kind: &str, recipient: &str) -> bool {
        match &self.0 {
            IdentityInner::Plugin(id, _) => match RecipientKind::parse(kind) {
                Some(RecipientKind::Tag) => true,
                Some(RecipientKind::Plugin) => plugin_name_of(recipient) == id.plugin(),
                _ => false,
            },
            _ => self.recipient().as_deref() == Some(recipient),
        }
    }
}

/// Encrypt `plaintext` to one recipient as an ASCII-armored age file.
pub fn encrypt_armored(recipient: &CustodianRecipient, plaintext: &[u8]) -> Result<String, String> {
    let out = encrypt_to(recipient, plaintext, Format::AsciiArmor)?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// Encrypt `plaintext` to one recipient as a binary age file (for codes, which base64 it).
pub fn encrypt_binary(recipient: &CustodianRecipient, plaintext: &[u8]) -> Result<Vec<u8>, String> {
    encrypt_to(recipient, plaintext, Format::Binary)
}

/// Seal to a custodian; a plugin recipient runs its plugin under the deadline.
fn encrypt_to(
    recipient: &CustodianRecipient,
    plaintext: &[u8],
    format: Format,
) -> Result<Vec<u8>, String> {
    let sealer = recipient.to_age()?;
    let Some(name) = recipient.plugin_name() else {
        return encrypt(sealer.as_ref(), plaintext, format);
    };
    let binary = format!("age-plugin-{name}");
    let options = PluginOptions::default();
    let bridge = Bridge::new(&options, binary.clone(), None);
    let plaintext = Zeroizing::new(plaintext.to_vec());
    plugin::with_deadline(&binary, options.timeout, &bridge, move || {
        encrypt(sealer.as_ref(), &plaintext, format)
    })?
    .map_err(|e| {
        format!(
            "{binary} could not seal to this key ({})",
            plugin::one_line(&e)
        )
    })
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

/// The ways an attempt to open an age file can end.
pub enum DecryptOutcome {
    /// The file is not addressed to this identity.
    NotMine,
    /// It is addressed to this identity but did not open: corrupted or tampered.
    Failed(String),
    /// A plugin key could not be used on this file: the plugin or token
    /// refused it (a wrong PIN, a removed token, a failure). The file is not blamed.
    KeyFailed(String),
    /// A plugin key cannot be used at all right now: its plugin is missing,
    /// did not answer in time, or `AGEDEBUG=plugin` is set. Trying it on
    /// other files is pointless.
    KeyUnavailable(String),
    /// It opened: the plaintext, zeroized on drop.
    Plaintext(Zeroizing<Vec<u8>>),
}

/// Try to open an age file (armored or binary) with one identity.
pub fn decrypt(ciphertext: &[u8], identity: &CustodianIdentity) -> DecryptOutcome {
    decrypt_as(ciphertext, identity, "", None)
}

/// [`decrypt`] for custodian `custodian`: a plugin key's prompts name them,
/// and `pin` (given up front) answers the plugin's first PIN request.
pub fn decrypt_as(
    ciphertext: &[u8],
    identity: &CustodianIdentity,
    custodian: &str,
    pin: Option<&Passphrase>,
) -> DecryptOutcome {
    match &identity.0 {
        IdentityInner::X25519(id) => decrypt_with(ciphertext, id),
        IdentityInner::Ssh(id) => decrypt_with(ciphertext, id),
        IdentityInner::Plugin(id, options) => {
            decrypt_with_plugin(ciphertext, id, options, custodian, pin)
        }
    }
}

fn decrypt_with_plugin(
    ciphertext: &[u8],
    identity: &age::plugin::Identity,
    options: &PluginOptions,
    custodian: &str,
    pin: Option<&Passphrase>,
) -> DecryptOutcome {
    let name = identity.plugin();
    let binary = format!("age-plugin-{name}");
    if std::env::var("AGEDEBUG").is_ok_and(|v| v == "plugin") {
        // The age crate would print the conversation, PIN and file key included.
        return DecryptOutcome::KeyUnavailable(
            "AGEDEBUG=plugin is set, which would print the PIN and the file key; unset it".into(),
        );
    }
    if let Err(missing) = plugin_on_path(name) {
        return DecryptOutcome::KeyUnavailable(missing);
    }
    let who = if custodian.is_empty() {
        binary.clone()
    } else {
        format!("custodian {} ({binary})", plugin::one_line(custodian))
    };
    let bridge = Bridge::new(options, who, pin);
    let opener = match age::plugin::IdentityPluginV1::new(
        name,
        std::slice::from_ref(identity),
        bridge.clone(),
    ) {
        Ok(opener) => opener,
        Err(_) => return DecryptOutcome::KeyUnavailable(missing_plugin(name)),
    };
    let ciphertext = ciphertext.to_vec();
    let who = binary.clone();
    plugin::with_deadline(&binary, options.timeout, &bridge, move || {
        open_file(&ciphertext, &opener, Some(&who))
    })
    .unwrap_or_else(DecryptOutcome::KeyUnavailable)
}

/// A plugin's failure in its own words: what it said, not the `age` crate's
/// wrapping (whose hint to set `AGEDEBUG` we must not give). `None` when
/// every error is about the stanza itself: the file is damaged.
fn plugin_failure(binary: &str, error: &age::DecryptError) -> Option<String> {
    match error {
        age::DecryptError::Plugin(errors) => {
            // The age crate does not export its plugin error type; its text
            // says which kind: "(stanza …) message" for a malformed stanza.
            let said: Vec<String> = errors
                .iter()
                .map(|e| plugin::one_line(&e.to_string()))
                .collect();
            if !said.is_empty() && said.iter().all(|e| e.starts_with("(stanza")) {
                return None;
            }
            Some(format!("{binary}: {}", said.join("; ")))
        }
        _ => Some(format!(
            "{binary} stopped unexpectedly (it crashed or was killed)"
        )),
    }
}

/// Open a secret value with the vault's own key (only inside a quorum session).
pub fn decrypt_with_vault_key(ciphertext: &[u8], keys: &super::VaultKeys) -> DecryptOutcome {
    decrypt_with(ciphertext, keys.age_identity())
}

pub(crate) fn decrypt_with(ciphertext: &[u8], identity: &dyn age::Identity) -> DecryptOutcome {
    open_file(ciphertext, identity, None)
}

/// Open an age file; with `plugin` named, a failure of the plugin itself (an
/// error it reported, or its death) is the key's failure, not the file's.
fn open_file(
    ciphertext: &[u8],
    identity: &dyn age::Identity,
    plugin: Option<&str>,
) -> DecryptOutcome {
    let decryptor = match age::Decryptor::new_buffered(ArmoredReader::new(ciphertext)) {
        Ok(d) => d,
        Err(e) => return DecryptOutcome::Failed(format!("not a readable age file ({e})")),
    };
    let mut reader = match decryptor.decrypt(std::iter::once(identity)) {
        Ok(r) => r,
        Err(age::DecryptError::NoMatchingKeys) => return DecryptOutcome::NotMine,
        Err(e @ (age::DecryptError::Plugin(_) | age::DecryptError::Io(_))) if plugin.is_some() => {
            return match plugin_failure(plugin.unwrap_or_default(), &e) {
                Some(why) => DecryptOutcome::KeyFailed(why),
                None => DecryptOutcome::Failed(format!(
                    "the plugin says its stanza is malformed ({})",
                    plugin::one_line(&e.to_string())
                )),
            };
        }
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
