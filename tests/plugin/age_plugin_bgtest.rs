//! `age-plugin-bgtest`: an INSECURE, TEST-ONLY age plugin that stands in for a
//! hardware token (a YubiKey) in integration tests. Never use it for real keys.
//!
//! The wrapping is deliberately worthless: the stanza body is the file key XOR a pad
//! derived from the *recipient*, so anyone who knows the recipient can unwrap it.
//! That keeps the plugin tiny and deterministic; what it is for is the conversation
//! with the age client (messages, PIN requests, confirmations, errors, hangs, crashes).
//!
//! Formats (the plugin name is `bgtest`):
//! - identity: `AGE-PLUGIN-BGTEST-1…`, Bech32 of 32 random bytes;
//! - recipient: `age1bgtest1…`, Bech32 of SHA-256("age-plugin-bgtest recipient" || identity);
//! - stanza: `-> bgtest <base64 of the recipient's first 8 bytes>`, body
//!   file_key XOR SHA-256("age-plugin-bgtest wrap" || recipient)[..16].
//!
//! Before unwrapping, the plugin always sends the message "touch your bgtest key",
//! then behaves as the environment it inherits says:
//! - `BGTEST_MODE=removed|fail|hang|crash|confirm`: no token / token error / sleep an
//!   hour / exit with status 3 / ask the client to confirm;
//! - `BGTEST_PIN=…`: ask the client for the PIN (after the mode checks, before `confirm`);
//! - `BGTEST_LOG=PATH`: append "unwrap <tag>" per unwrap attempt, so tests can count runs.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::{env, fs, process, thread, time::Duration};

use age_core::format::{FileKey, Stanza, FILE_KEY_BYTES};
use age_core::secrecy::ExposeSecret;
use age_plugin::{
    identity::{self, IdentityPluginV1},
    print_new_identity,
    recipient::{self, RecipientPluginV1},
    run_state_machine, Callbacks, PluginHandler,
};
use base64::{prelude::BASE64_STANDARD_NO_PAD, Engine};
use bech32::{FromBase32, ToBase32, Variant};
use rand::{rngs::OsRng, RngCore};
use sha2::{Digest, Sha256};

const PLUGIN_NAME: &str = "bgtest";
const STANZA_TAG: &str = "bgtest";
const WARNING: &str = "age-plugin-bgtest: INSECURE TEST-ONLY PLUGIN: never use it for real keys";

type Key = [u8; 32];

fn recipient_of(identity: &Key) -> Key {
    Sha256::new()
        .chain_update(b"age-plugin-bgtest recipient")
        .chain_update(identity)
        .finalize()
        .into()
}

/// The stanza argument: lets the identity side skip stanzas that are not its own
/// without touching the "token".
fn recipient_tag(recipient: &Key) -> String {
    BASE64_STANDARD_NO_PAD.encode(&recipient[..8])
}

/// XOR pad from the recipient alone: this is what makes the plugin insecure.
fn pad(recipient: &Key) -> [u8; FILE_KEY_BYTES] {
    let digest = Sha256::new()
        .chain_update(b"age-plugin-bgtest wrap")
        .chain_update(recipient)
        .finalize();
    let mut pad = [0; FILE_KEY_BYTES];
    pad.copy_from_slice(&digest[..FILE_KEY_BYTES]);
    pad
}

fn to_key(bytes: &[u8]) -> Option<Key> {
    bytes.try_into().ok()
}

struct Handler;

impl PluginHandler for Handler {
    type RecipientV1 = RecipientPlugin;
    type IdentityV1 = IdentityPlugin;

    fn recipient_v1(self) -> io::Result<RecipientPlugin> {
        Ok(RecipientPlugin::default())
    }

    fn identity_v1(self) -> io::Result<IdentityPlugin> {
        Ok(IdentityPlugin::default())
    }
}

#[derive(Default)]
struct RecipientPlugin {
    recipients: Vec<Key>,
}

impl RecipientPluginV1 for RecipientPlugin {
    fn add_recipient(
        &mut self,
        index: usize,
        _: &str,
        bytes: &[u8],
    ) -> Result<(), recipient::Error> {
        let recipient = to_key(bytes).ok_or_else(|| recipient::Error::Recipient {
            index,
            message: "a bgtest recipient is 32 bytes".into(),
        })?;
        self.recipients.push(recipient);
        Ok(())
    }

    fn add_identity(
        &mut self,
        index: usize,
        _: &str,
        bytes: &[u8],
    ) -> Result<(), recipient::Error> {
        let identity = to_key(bytes).ok_or_else(|| recipient::Error::Identity {
            index,
            message: "a bgtest identity is 32 bytes".into(),
        })?;
        self.recipients.push(recipient_of(&identity));
        Ok(())
    }

    fn labels(&mut self) -> HashSet<String> {
        HashSet::new()
    }

    fn wrap_file_keys(
        &mut self,
        file_keys: Vec<FileKey>,
        _: impl Callbacks<recipient::Error>,
    ) -> io::Result<Result<Vec<Vec<Stanza>>, Vec<recipient::Error>>> {
        // age-plugin insists on at least one stanza per recipient and identity, in order.
        let wrap = |file_key: &FileKey, recipient: &Key| Stanza {
            tag: STANZA_TAG.into(),
            args: vec![recipient_tag(recipient)],
            body: xor(file_key.expose_secret(), &pad(recipient)).to_vec(),
        };
        Ok(Ok(file_keys
            .iter()
            .map(|fk| self.recipients.iter().map(|r| wrap(fk, r)).collect())
            .collect()))
    }
}

fn xor(a: &[u8; FILE_KEY_BYTES], b: &[u8; FILE_KEY_BYTES]) -> [u8; FILE_KEY_BYTES] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

#[derive(Default)]
struct IdentityPlugin {
    /// (index given by the client, recipient of that identity)
    identities: Vec<(usize, Key)>,
}

impl IdentityPluginV1 for IdentityPlugin {
    fn add_identity(&mut self, index: usize, _: &str, bytes: &[u8]) -> Result<(), identity::Error> {
        let identity = to_key(bytes).ok_or_else(|| identity::Error::Identity {
            index,
            message: "a bgtest identity is 32 bytes".into(),
        })?;
        self.identities.push((index, recipient_of(&identity)));
        Ok(())
    }

    fn unwrap_file_keys(
        &mut self,
        files: Vec<Vec<Stanza>>,
        mut callbacks: impl Callbacks<identity::Error>,
    ) -> io::Result<HashMap<usize, Result<FileKey, Vec<identity::Error>>>> {
        let mut results = HashMap::new();
        for (file_index, stanzas) in files.iter().enumerate() {
            for (stanza_index, stanza) in stanzas.iter().enumerate() {
                // Foreign stanzas, and bgtest stanzas for other keys, are not ours:
                // leaving the file out of `results` is how a plugin says "no match".
                if stanza.tag != STANZA_TAG {
                    continue;
                }
                let [tag] = &stanza.args[..] else {
                    let message = "a bgtest stanza has exactly one argument".into();
                    results.insert(
                        file_index,
                        Err(vec![stanza_error(file_index, stanza_index, message)]),
                    );
                    break;
                };
                let Some(&(index, recipient)) = self
                    .identities
                    .iter()
                    .find(|(_, r)| recipient_tag(r) == *tag)
                else {
                    continue;
                };
                let Ok(body) = <&[u8; FILE_KEY_BYTES]>::try_from(&stanza.body[..]) else {
                    let message = "a bgtest stanza body is 16 bytes".into();
                    results.insert(
                        file_index,
                        Err(vec![stanza_error(file_index, stanza_index, message)]),
                    );
                    break;
                };
                let result = match token(tag, &mut callbacks)? {
                    Ok(()) => Ok(FileKey::init_with_mut(|fk| {
                        *fk = xor(body, &pad(&recipient))
                    })),
                    Err(message) => Err(vec![identity::Error::Identity { index, message }]),
                };
                results.insert(file_index, result);
                break;
            }
        }
        Ok(results)
    }
}

fn stanza_error(file_index: usize, stanza_index: usize, message: String) -> identity::Error {
    identity::Error::Stanza {
        file_index,
        stanza_index,
        message,
    }
}

/// The pretend hardware token. `Ok(Err(message))` is a token-level failure that goes
/// back to the client as an identity error; `Err(_)` is a broken pipe to the client.
fn token(
    tag: &str,
    callbacks: &mut impl Callbacks<identity::Error>,
) -> io::Result<Result<(), String>> {
    if let Some(path) = env::var_os("BGTEST_LOG") {
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(log, "unwrap {tag}")?;
    }
    // A client that cannot show messages answers "unsupported"/"fail"; a real token
    // would carry on regardless, so the answer is ignored.
    let _ = callbacks
        .message("touch your bgtest key (age-plugin-bgtest is an INSECURE TEST-ONLY plugin)")?;

    let mode = env::var("BGTEST_MODE").unwrap_or_default();
    match mode.as_str() {
        "" | "confirm" => {}
        "removed" => return Ok(Err("no bgtest token is plugged in".into())),
        "fail" => return Ok(Err("the token failed (BGTEST_MODE=fail)".into())),
        "hang" => thread::sleep(Duration::from_secs(3600)),
        // Dies mid-conversation, after the message above, like an unplugged token.
        "crash" => process::exit(3),
        other => return Ok(Err(format!("unknown BGTEST_MODE={other}"))),
    }

    if let Ok(pin) = env::var("BGTEST_PIN") {
        match callbacks.request_secret("Enter PIN for bgtest key")? {
            Ok(given) if given.expose_secret() == pin => {}
            Ok(_) => return Ok(Err("wrong PIN".into())),
            Err(_) => return Ok(Err("PIN entry cancelled".into())),
        }
    }

    if mode == "confirm" {
        let answer = callbacks.confirm(
            "Touch your bgtest key to continue",
            "Touched",
            Some("Cancel"),
        )?;
        if !matches!(answer, Ok(true)) {
            return Ok(Err("not confirmed".into()));
        }
    }
    Ok(Ok(()))
}

fn generate() {
    let mut identity = [0; 32];
    OsRng.fill_bytes(&mut identity);
    print_new_identity(PLUGIN_NAME, &identity, &recipient_of(&identity));
}

/// Prints the recipient of the first bgtest identity in an identity file.
fn print_recipient_of(path: &str) -> Result<(), String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.to_ascii_uppercase().starts_with("AGE-PLUGIN-BGTEST-1"))
        .ok_or_else(|| format!("{path}: no AGE-PLUGIN-BGTEST-1… identity"))?;
    let (_, data, _) = bech32::decode(line).map_err(|e| format!("{path}: {e}"))?;
    let identity = Vec::<u8>::from_base32(&data)
        .ok()
        .and_then(|b| to_key(&b))
        .ok_or_else(|| format!("{path}: not a bgtest identity"))?;
    let encoded = bech32::encode(
        "age1bgtest",
        recipient_of(&identity).to_base32(),
        Variant::Bech32,
    )
    .map_err(|e| e.to_string())?;
    println!("{encoded}");
    Ok(())
}

fn main() -> io::Result<()> {
    // Loud on every start; age clients only show it with AGEDEBUG=plugin.
    eprintln!("{WARNING}");

    let args: Vec<String> = env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        [arg] if arg.starts_with("--age-plugin=") => {
            run_state_machine(&arg["--age-plugin=".len()..], Handler)
        }
        ["--age-plugin", state_machine] => run_state_machine(state_machine, Handler),
        ["--generate"] => {
            generate();
            Ok(())
        }
        ["--recipient-of", path] => {
            if let Err(e) = print_recipient_of(path) {
                eprintln!("age-plugin-bgtest: {e}");
                process::exit(1);
            }
            Ok(())
        }
        _ => {
            eprintln!("usage: age-plugin-bgtest --generate | --recipient-of FILE");
            process::exit(2);
        }
    }
}
