//! The format's test vectors (tests/vectors/vault-2of3.json), regenerated
//! from the code on every test run: any difference is format drift and fails.
//! Every random input comes from a ChaCha20 RNG with a fixed seed, a path
//! that exists only in test builds (`rand_chacha` is a dev-dependency).
//! `BREAKGLASS_WRITE_VECTORS=1 cargo test --lib format_vectors` rewrites the
//! file on purpose (then review the diff and FORMAT.md).

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};

use crate::audit::{
    self, CheckpointBody, EndorsedDigests, EndorsedSetting, EndorsedVersion, Entry,
};
use crate::crypto::{self, KdfParams, VaultSeed, KDF_TEST_ONLY_INSECURE};
use crate::vault::records::{self, SecretValue, ShareRecord};

const VECTORS: &str = "tests/vectors/vault-2of3.json";
const RNG_SEED: [u8; 32] = [0x42; 32];

fn draw<const N: usize>(rng: &mut ChaCha20Rng) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill_bytes(&mut out);
    out
}

/// The OpenSSH wire form of an ed25519 public key (RFC 8709), one line.
fn ssh_ed25519_line(public: &[u8; 32], comment: &str) -> String {
    use base64::Engine;
    let mut blob = Vec::new();
    for part in [&b"ssh-ed25519"[..], &public[..]] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(blob);
    format!("ssh-ed25519 {encoded} {comment}")
}

fn age_identity(bytes: &[u8; 32]) -> (String, String) {
    use age::secrecy::ExposeSecret;
    let identity = crypto::x25519_identity_from_bytes(bytes);
    (
        identity.to_string().expose_secret().to_string(),
        identity.to_public().to_string(),
    )
}

/// Every vector, from the fixed RNG seed, through the functions the vault uses.
fn generate() -> Value {
    let mut rng = ChaCha20Rng::from_seed(RNG_SEED);
    let vault_id: [u8; 16] = draw(&mut rng);
    let seed_bytes: [u8; 32] = draw(&mut rng);
    let alice_key: [u8; 32] = draw(&mut rng);
    let bob_ssh_public: [u8; 32] = draw(&mut rng);
    let carol_salt: [u8; 16] = draw(&mut rng);
    let seed = VaultSeed::from_bytes(seed_bytes);
    let keys = seed.derive_keys();
    let (vault_identity, vault_recipient) = {
        use age::secrecy::ExposeSecret;
        let identity = keys.age_identity();
        (
            identity.to_string().expose_secret().to_string(),
            identity.to_public().to_string(),
        )
    };
    let verify_key = keys.verify_key().to_hex();
    let vault_id_hex = hex::encode(vault_id);
    let (epoch, threshold) = (1u64, 2u8);
    let shares = crypto::split_seeded(&seed, 2, 3, &mut rng).unwrap();

    // Custodians: an age key, an SSH ed25519 key, a passphrase (cheap,
    // test-only Argon2id parameters).
    let (alice_identity, alice_recipient) = age_identity(&alice_key);
    let passphrase = "correct horse battery staple";
    let params: KdfParams = KDF_TEST_ONLY_INSECURE;
    let mut carol_key = [0u8; 32];
    crypto::argon2id(
        &params,
        &[],
        &[],
        passphrase.as_bytes(),
        &carol_salt,
        &mut carol_key,
    )
    .unwrap();
    let (carol_identity, carol_recipient) = age_identity(&carol_key);
    let custodians = [
        (
            "alice",
            "age",
            alice_recipient,
            json!({ "identity": alice_identity }),
        ),
        (
            "bob",
            "ssh-ed25519",
            ssh_ed25519_line(&bob_ssh_public, "bob@example"),
            json!({ "note": "the public key is 32 fixed bytes of the RNG; age's ssh-ed25519 stanza opens the envelope" }),
        ),
        (
            "carol",
            "passphrase",
            carol_recipient,
            json!({
                "passphrase": passphrase,
                "kdf": { "salt": hex::encode(carol_salt), "params": { "m_kib": params.m_kib, "t": params.t, "p": params.p } },
                "argon2id_output": hex::encode(carol_key),
                "identity": carol_identity,
            }),
        ),
    ];
    let custodians: Vec<Value> = custodians
        .into_iter()
        .zip(&shares)
        .map(|((name, kind, recipient, extra), share)| {
            let record = ShareRecord {
                vault_id,
                epoch,
                threshold,
                index: share.index(),
                custodian: name.into(),
                share: crypto::Share::from_bytes(share.expose_bytes()).unwrap(),
            };
            let mut entry = json!({
                "name": name,
                "kind": kind,
                "recipient": recipient,
                "index": share.index(),
                "share": hex::encode(share.expose_bytes()),
                "commitment": crypto::commitment(&vault_id, epoch, share),
                "envelope_plaintext": hex::encode(record.encode().as_slice()),
            });
            entry
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            entry
        })
        .collect();
    let combined = crypto::combine(&[&shares[0], &shares[2]], 2).unwrap();
    assert_eq!(combined.expose_bytes(), &seed_bytes);

    let value = SecretValue::new(b"correct horse battery staple".to_vec());
    let secret_plaintext = records::encode_secret(&vault_id, "vpn", 1, &value);

    // Three audit rows and a checkpoint over them.
    let mut prev = audit::GENESIS_HASH.to_string();
    let mut rows = Vec::new();
    for (seq, action, subject, details) in [
        (
            1u64,
            "init",
            "BG-TEST",
            json!({ "threshold": 2, "custodians": ["alice", "bob", "carol"] }),
        ),
        (2, "put", "vpn", json!({ "version": 1, "kind": "password" })),
        (
            3,
            "unseal",
            "BG-TEST",
            json!({ "epoch": 1, "custodians": ["alice", "carol"] }),
        ),
    ] {
        let mut entry = Entry {
            seq,
            time: format!("2026-01-0{seq}T12:00:00.000Z"),
            actor: "root@vectors".into(),
            action: action.into(),
            subject: subject.into(),
            // Non-ASCII, control and separator characters: both
            // implementations must escape them alike in the row hash.
            reason: if action == "unseal" {
                "Duo outage — Ünïcødé \"quoted\" \\ tab\t nl\n \u{1} \u{7f} \u{2028} \u{202e}"
                    .into()
            } else {
                String::new()
            },
            details: serde_json::to_string(&details).unwrap(),
            prev_hash: prev.clone(),
            hash: String::new(),
        };
        entry.hash = audit::row_hash(&entry);
        prev = entry.hash.clone();
        rows.push(serde_json::to_value(&entry).unwrap());
    }
    // Listed out of order (byte order is Vpn < vpn < Ärger) so the digest's
    // sort is exercised.
    let versions = [
        EndorsedVersion {
            secret: "vpn".into(),
            version: 1,
            ciphertext_sha256: hex::encode(crypto::sha256(&[b"the armored age file"])),
            depositor: "root@vectors".into(),
        },
        EndorsedVersion {
            secret: "Ärger".into(),
            version: 3,
            ciphertext_sha256: hex::encode(crypto::sha256(&[b"another age file"])),
            depositor: "Zoë@vectors".into(),
        },
        EndorsedVersion {
            secret: "Vpn".into(),
            version: 2,
            ciphertext_sha256: hex::encode(crypto::sha256(&[b"a third age file"])),
            depositor: "root@vectors".into(),
        },
    ];
    let settings = [
        EndorsedSetting {
            secret: "Ärger".into(),
            apply_cmd: Some("/usr/local/bin/rotate-ärger --quiet".into()),
            gen_length: None,
            gen_charset: None,
            max_age_days: None,
            expires: Some("2027-01-31".into()),
            rotator: None,
            rotator_config: None,
        },
        EndorsedSetting {
            secret: "vpn".into(),
            apply_cmd: None,
            gen_length: Some(32),
            gen_charset: Some("alnum".into()),
            max_age_days: Some(90),
            expires: None,
            rotator: Some("ldap-password".into()),
            rotator_config: Some(
                r#"{"url":"ldaps://dc1","starttls":false,"bind_dn":"cn=a","user_dn":"cn=b"}"#
                    .into(),
            ),
        },
    ];
    let body = CheckpointBody {
        vault_id: vault_id_hex.clone(),
        epoch,
        seq: 3,
        head: prev.clone(),
        versions: None,
        settings: Vec::new(),
        endorsed: Some(EndorsedDigests {
            versions: audit::versions_digest(&versions),
            settings: audit::settings_digest(&settings),
        }),
    };
    let message = audit::checkpoint_message(&body);
    // A request core (compact JSON in field order); the words are its hash.
    let request = serde_json::to_string(&crate::remote::request::Request {
        v: crate::remote::request::REQUEST_FORMAT,
        purpose: "unseal".into(),
        vault_id: vault_id_hex.clone(),
        fingerprint: crate::manifest::fingerprint(&vault_id_hex, &verify_key),
        epoch,
        threshold,
        request_id: hex::encode(draw::<16>(&mut rng)),
        requester: "root@vectors".into(),
        reason: "Duo outage".into(),
        created: "2026-01-03T12:00:00Z".into(),
        expires: "2026-01-04T12:00:00Z".into(),
        recipient: age_identity(&draw::<32>(&mut rng)).1,
        manifest_sha256: hex::encode(crypto::sha256(&[b"the manifest section"])),
        envelopes: Default::default(),
    })
    .unwrap();

    json!({
        "about": "breakglass format test vectors (FORMAT.md, schema user_version 7). Regenerated and compared by `cargo test --lib format_vectors`; checked independently by recovery/check_vectors.py.",
        "rng": "ChaCha20Rng (rand_chacha 0.3) from 32 bytes of 0x42; drawn in order: vault_id (16), seed (32), alice's age key (32), bob's ed25519 public key (32), carol's salt (16), the Shamir coefficients (vsss-rs split_array), then the request id (16) and the request's ephemeral age key (32)",
        "vault_id": vault_id_hex,
        "epoch": epoch,
        "threshold": threshold,
        "seed": hex::encode(seed_bytes),
        "keys": {
            "hkdf": "HKDF-SHA256(salt = \"breakglass/v1/vault-seed\", ikm = seed)",
            "age_info": "breakglass/v1/age-x25519-identity",
            "ed25519_info": "breakglass/v1/ed25519-signing-key",
            "age_identity": vault_identity,
            "age_recipient": vault_recipient,
            "ed25519_verify_key": verify_key,
            "fingerprint": crate::manifest::fingerprint(&vault_id_hex, &verify_key),
        },
        "custodians": custodians,
        "combined": { "from": ["alice", "carol"], "seed": hex::encode(combined.expose_bytes()) },
        "secret": {
            "name": "vpn",
            "version": 1,
            "value": "correct horse battery staple",
            "plaintext": hex::encode(secret_plaintext.as_slice()),
        },
        "audit": rows,
        "checkpoint": {
            "endorsed_versions": versions.iter().map(|v| serde_json::to_value(v).unwrap()).collect::<Vec<_>>(),
            "endorsed_settings": settings.iter().map(|s| serde_json::to_value(s).unwrap()).collect::<Vec<_>>(),
            "body": serde_json::to_value(&body).unwrap(),
            "message": hex::encode(&message),
            "signature": hex::encode(keys.sign(&message)),
        },
        "read_back_words": {
            "request_core": request,
            "argon2id": { "salt": "breakglass/v1/read-back-words", "m_kib": crypto::READ_BACK_PARAMS.m_kib, "t": crypto::READ_BACK_PARAMS.t, "p": crypto::READ_BACK_PARAMS.p },
            "hash": hex::encode(crypto::read_back_hash(request.as_bytes()).unwrap()),
            "words": crate::remote::words::read_back_words(request.as_bytes()).unwrap(),
        },
    })
}

/// The first path at which two JSON values differ.
fn first_difference(path: &str, want: &Value, got: &Value) -> Option<String> {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys()) {
                let (x, y) = (
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                );
                if let Some(d) = first_difference(&format!("{path}.{key}"), x, y) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(&format!("{path}[{i}]"), x, y)),
        _ if want == got => None,
        _ => Some(format!(
            "{path}: committed {want}, the code now gives {got}"
        )),
    }
}

#[test]
fn the_committed_vectors_are_what_the_code_computes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(VECTORS);
    let got = generate();
    if std::env::var("BREAKGLASS_WRITE_VECTORS").as_deref() == Ok("1") {
        let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        return;
    }
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    if let Some(difference) = first_difference("", &committed, &got) {
        panic!("format drift in {VECTORS} at {difference} — if the change is deliberate, bump the format, update FORMAT.md and rewrite the vectors with BREAKGLASS_WRITE_VECTORS=1");
    }
}

#[test]
fn the_vectors_are_deterministic() {
    assert_eq!(generate(), generate());
}
