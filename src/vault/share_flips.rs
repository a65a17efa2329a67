//! Every single-bit flip of a custodian's share record, and of the age file
//! sealing it, is caught and named (issue 12, §3; figures in SECURITY.md,
//! "Shamir and KDF figures").
//!
//! "Caught and named" means: the unseal path ([`Gathering::take_share`], the
//! code every unseal runs on a vault envelope) uses no share, and records
//! exactly one rejection, `share_rejected` for `custodian alice`, whose reason
//! says what failed (that rejection is what the user sees as
//! "custodian alice: …; not used" and what the audit log records).
//!
//! Two kinds of flip:
//! - in the share record (the plaintext inside the envelope): the flipped
//!   record is sealed again to the custodian's public key, as anyone can do
//!   (age does not authenticate the sender). Only the record's own checks can
//!   catch it: the share commitment in the signed manifest, or before it the
//!   record's format and its vault / epoch / custodian / index / threshold;
//! - in the envelope (the armored age file as the vault stores it): caught by
//!   age: the armor, the header (its HMAC, or a stanza no longer addressed to
//!   the custodian) or the payload's authentication tag.
//!
//! The binary form of the same envelope (what request codes carry) is flipped
//! too, through the same functions the approve path calls
//! (`crypto::decrypt`, `ShareRecord::decode`, `check_share`).

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::*;
use crate::crypto::{CustodianRecipient, VaultSeed};

const VAULT_ID: [u8; 16] = [0x5a; 16];
const EPOCH: u64 = 3;
const THRESHOLD: usize = 2;
const NAME: &str = "alice";

struct Fixture {
    custodians: Vec<CustodianEntry>,
    identity: CustodianIdentity,
    recipient: CustodianRecipient,
    record: Zeroizing<Vec<u8>>,
}

fn fixture() -> Fixture {
    let seed = VaultSeed::generate();
    let share = crypto::split(&seed, THRESHOLD, 3).unwrap().remove(1);
    let (identity, _) = CustodianIdentity::generate_age();
    let recipient = CustodianRecipient::parse_public_key(&identity.recipient().unwrap()).unwrap();
    let entry = CustodianEntry {
        name: NAME.into(),
        kind: "age".into(),
        recipient: recipient.text().into(),
        kdf: None,
        index: share.index(),
        commitment: crypto::commitment(&VAULT_ID, EPOCH, &share),
        proof_key: None,
    };
    let record = ShareRecord {
        vault_id: VAULT_ID,
        epoch: EPOCH,
        threshold: THRESHOLD as u8,
        index: share.index(),
        custodian: NAME.into(),
        share,
    }
    .encode();
    Fixture {
        custodians: vec![entry],
        identity,
        recipient,
        record,
    }
}

/// Run the unseal path on one stored envelope: `Ok(None)` if the share was
/// used, `Ok(Some(reason))` if it was refused naming custodian alice, `Err`
/// for anything else (refused without the name, or more than one outcome).
fn take(fx: &Fixture, envelope: String) -> Result<Option<String>, String> {
    let mut gathering = Gathering {
        vault_id: VAULT_ID,
        epoch: EPOCH,
        threshold: THRESHOLD,
        custodians: &fx.custodians,
        envelopes: vec![EnvelopeRow {
            epoch: EPOCH,
            custodian: NAME.into(),
            share_index: fx.custodians[0].index,
            envelope,
        }],
        good: Vec::new(),
        tried: Vec::new(),
        rejected: Vec::new(),
        approvals: Vec::new(),
    };
    gathering.take_share(&fx.custodians[0], &fx.identity);
    match (gathering.good.as_slice(), gathering.rejected.as_slice()) {
        ([(name, _)], []) if name == NAME => Ok(None),
        ([], [r])
            if r.action == "share_rejected"
                && r.subject == NAME
                && r.who == format!("custodian {NAME}") =>
        {
            Ok(Some(r.why.clone()))
        }
        _ => Err(format!(
            "{} used, rejections: {:?}",
            gathering.good.len(),
            gathering
                .rejected
                .iter()
                .map(|r| format!("{} {}: {}", r.action, r.who, r.why))
                .collect::<Vec<_>>()
        )),
    }
}

/// Which check caught a flip, from the reason it gave.
fn catcher(why: &str) -> &'static str {
    if why.contains("fails its commitment") {
        "share commitment"
    } else if why.contains("another vault")
        || why.contains("from epoch")
        || why.contains("custodian, index or threshold")
    {
        "record context (vault, epoch, custodian, index, threshold)"
    } else if why.contains("does not hold a breakglass share") {
        "record format (magic, lengths, zero index)"
    } else if why.contains("not sealed to this custodian's key") {
        "age header: stanza no longer addressed to the custodian"
    } else if why.contains("payload does not authenticate") {
        "age payload tag"
    } else if why.contains("not a readable age file") {
        "age armor / header format"
    } else if why.contains("envelope is corrupted") {
        "age header MAC or stanza"
    } else {
        "other (see reason)"
    }
}

fn flips(bytes: &[u8]) -> impl Iterator<Item = (usize, u8, Vec<u8>)> + '_ {
    (0..bytes.len()).flat_map(move |i| {
        (0..8).map(move |bit| {
            let mut flipped = bytes.to_vec();
            flipped[i] ^= 1 << bit;
            (i, bit, flipped)
        })
    })
}

fn report(what: &str, tried: usize, by: &BTreeMap<&str, usize>) {
    let caught: usize = by.values().sum();
    eprintln!("{what}: flips tried {tried} / caught {caught}");
    for (check, n) in by {
        eprintln!("  {n:>5} by {check}");
    }
}

/// Every bit of the share record, resealed to the custodian: refused by name.
#[test]
fn every_bit_flip_of_a_share_record_is_named() {
    let fx = fixture();
    let good = crypto::encrypt_armored(&fx.recipient, &fx.record).unwrap();
    assert_eq!(take(&fx, good), Ok(None), "the unflipped share opens");
    let share_start = fx.record.len() - crate::crypto::SHARE_LEN;
    let mut by = BTreeMap::new();
    let mut tried = 0;
    for (i, bit, flipped) in flips(&fx.record) {
        tried += 1;
        let envelope = crypto::encrypt_armored(&fx.recipient, &flipped).unwrap();
        let why = match take(&fx, envelope) {
            Ok(Some(why)) => why,
            other => panic!("record byte {i} bit {bit}: not refused by name: {other:?}"),
        };
        let check = catcher(&why);
        // The 33 share bytes are the commitment's to catch (a zero index is
        // not a share at all, so the record does not parse).
        if i > share_start || (i == share_start && flipped[i] != 0) {
            assert_eq!(
                check, "share commitment",
                "record byte {i} bit {bit}: {why}"
            );
        }
        *by.entry(check).or_insert(0) += 1;
    }
    assert_eq!(tried, fx.record.len() * 8);
    report("share record", tried, &by);
    assert_eq!(by.values().sum::<usize>(), tried);
    assert_eq!(by.get("other (see reason)"), None);
}

/// Every bit of the armored envelope as the vault stores it: refused by name.
#[test]
fn every_bit_flip_of_an_armored_envelope_is_named() {
    let fx = fixture();
    let good = crypto::encrypt_armored(&fx.recipient, &fx.record).unwrap();
    assert_eq!(
        take(&fx, good.clone()),
        Ok(None),
        "the unflipped envelope opens"
    );
    let mut by = BTreeMap::new();
    let mut tried = 0;
    for (i, bit, flipped) in flips(good.as_bytes()) {
        tried += 1;
        let why = match String::from_utf8(flipped) {
            Ok(text) => match take(&fx, text) {
                Ok(Some(why)) => catcher(&why),
                other => panic!("envelope byte {i} bit {bit}: not refused by name: {other:?}"),
            },
            // Not UTF-8: the envelopes column is TEXT read as a String, so this
            // file cannot reach the unseal path; age must still refuse it.
            Err(e) => match crypto::decrypt(e.as_bytes(), &fx.identity) {
                DecryptOutcome::Plaintext(_) => {
                    panic!("envelope byte {i} bit {bit}: a non-UTF-8 flip opened")
                }
                _ => "age, on a flip that is not UTF-8 (cannot be stored as TEXT)",
            },
        };
        *by.entry(why).or_insert(0) += 1;
    }
    assert_eq!(tried, good.len() * 8);
    report("armored envelope", tried, &by);
    assert_eq!(by.values().sum::<usize>(), tried);
    assert_eq!(by.get("other (see reason)"), None);
}

/// Every bit of the binary envelope (as request codes carry it): refused by
/// the approve path's own steps.
#[test]
fn every_bit_flip_of_a_binary_envelope_is_refused() {
    let fx = fixture();
    let good = crypto::encrypt_binary(&fx.recipient, &fx.record).unwrap();
    let open = |bytes: &[u8]| -> Result<(), String> {
        match crypto::decrypt(bytes, &fx.identity) {
            DecryptOutcome::NotMine => Err("envelope is not sealed to this custodian's key".into()),
            DecryptOutcome::Failed(why)
            | DecryptOutcome::KeyFailed(why)
            | DecryptOutcome::KeyUnavailable(why) => Err(format!("envelope is corrupted ({why})")),
            DecryptOutcome::Plaintext(p) => {
                let record = ShareRecord::decode(&p)
                    .ok_or_else(|| "envelope does not hold a breakglass share".to_string())?;
                check_share(VAULT_ID, EPOCH, THRESHOLD, &fx.custodians[0], record).map(|_| ())
            }
        }
    };
    assert_eq!(open(&good), Ok(()), "the unflipped envelope opens");
    let mut by = BTreeMap::new();
    let mut tried = 0;
    for (i, bit, flipped) in flips(&good) {
        tried += 1;
        match open(&flipped) {
            Err(why) => *by.entry(catcher(&why)).or_insert(0) += 1,
            Ok(()) => panic!("binary envelope byte {i} bit {bit}: opened"),
        }
    }
    assert_eq!(tried, good.len() * 8);
    report("binary envelope", tried, &by);
    assert_eq!(by.values().sum::<usize>(), tried);
    assert_eq!(by.get("other (see reason)"), None);
}
