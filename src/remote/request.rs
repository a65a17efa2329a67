//! An unseal request: what the requester sends to custodians, as a request code.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::code::{self, CodeError, CodeKind};
use super::words;
use crate::crypto;
use crate::manifest::KdfSpec;

pub const REQUEST_FORMAT: u32 = 1;

/// The request as carried in the code. Everything here is public: custodians see
/// it, and the read-back words cover every byte of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub v: u32,
    pub vault_id: String,
    pub fingerprint: String,
    pub epoch: u64,
    pub threshold: u8,
    pub request_id: String,
    pub requester: String,
    pub reason: String,
    pub created: String,
    pub expires: String,
    /// The ephemeral age recipient approvals are encrypted to.
    pub recipient: String,
    /// Passphrase custodians' KDF salt and cost, so they can approve with no vault copy.
    pub kdf: BTreeMap<String, KdfSpec>,
}

/// A request decoded from a code, with its exact bytes (what the read-back words
/// and approvals are bound to). Only canonical bytes are ever accepted: the bytes
/// must be exactly what re-serialising the parsed request gives.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    pub request: Request,
    pub code: String,
    payload: Vec<u8>,
    hash: [u8; 32],
    words: OnceLock<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request code {0}")]
    Code(#[from] CodeError),
    #[error("request code is not a readable request ({0}); ask the requester to send it again")]
    Unreadable(String),
    #[error("request code for request {0} is not in canonical form (its bytes were re-encoded or edited after it was made); do not approve it — ask the requester to send the original code again")]
    NotCanonical(String),
    #[error("request {0}: could not compute the read-back words ({1})")]
    Words(String, String),
}

impl ParsedRequest {
    pub fn new(request: Request) -> Result<Self, RequestError> {
        let payload = canonical_bytes(&request)?;
        Ok(Self::from_parts(request, payload))
    }

    fn from_parts(request: Request, payload: Vec<u8>) -> Self {
        Self {
            code: code::encode(CodeKind::Request, &payload),
            hash: crypto::sha256(&[&payload]),
            request,
            payload,
            words: OnceLock::new(),
        }
    }

    /// Parse a pasted request code. Refuses anything but the canonical encoding of
    /// a well-formed request: reordered or duplicate keys, extra whitespace,
    /// escaped characters and trailing bytes all change the bytes the words and
    /// approvals are bound to, so they are refused rather than normalised.
    pub fn parse(text: &str) -> Result<Self, RequestError> {
        let payload = code::decode(CodeKind::Request, text)?;
        Self::from_payload(payload)
    }

    /// A request from its exact bytes (as kept in the requester's pending record).
    pub fn from_payload(payload: Vec<u8>) -> Result<Self, RequestError> {
        let request: Request = serde_json::from_slice(&payload)
            .map_err(|e| RequestError::Unreadable(e.to_string()))?;
        if request.v != REQUEST_FORMAT {
            return Err(RequestError::Unreadable(format!(
                "format {} is not supported",
                request.v
            )));
        }
        if canonical_bytes(&request)? != payload {
            return Err(RequestError::NotCanonical(request.request_id));
        }
        let parsed = Self::from_parts(request, payload);
        if parsed.request_id_bytes().is_none() {
            return Err(RequestError::Unreadable(
                "its request id is not 32 hex digits".into(),
            ));
        }
        Ok(parsed)
    }

    /// The exact request bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// SHA-256 of the exact request bytes: what an approval is bound to.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// The read-back words over every byte of the request (Argon2id: slow by
    /// design, so computed once per parsed request).
    pub fn words(&self) -> Result<Vec<String>, RequestError> {
        if let Some(words) = self.words.get() {
            return Ok(words.clone());
        }
        let words = words::read_back_words(&self.payload)
            .map_err(|e| RequestError::Words(self.request.request_id.clone(), e))?;
        Ok(self.words.get_or_init(|| words).clone())
    }

    pub fn expires_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::parse_from_rfc3339(&self.request.expires)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }

    /// Expired, or with an unreadable expiry (treated as expired).
    pub fn is_expired(&self) -> bool {
        self.expires_at().is_none_or(|t| t <= chrono::Utc::now())
    }

    pub fn request_id_bytes(&self) -> Option<[u8; 16]> {
        if self.request.request_id.len() != 32
            || !self
                .request
                .request_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        hex::decode(&self.request.request_id).ok()?.try_into().ok()
    }
}

/// The one canonical encoding of a request: compact JSON, fields in declaration
/// order, `kdf` keys sorted (a `BTreeMap`), serde_json's own string escaping.
fn canonical_bytes(request: &Request) -> Result<Vec<u8>, RequestError> {
    serde_json::to_vec(request).map_err(|e| RequestError::Unreadable(e.to_string()))
}

/// Parse a duration like `90s`, `30m`, `2h` or `1d`, between 1 minute and
/// [`words::MAX_TTL_HOURS`] hours (the read-back words are sized for that window).
pub fn parse_ttl(text: &str) -> Result<chrono::Duration, String> {
    let text = text.trim();
    let range = format!("choose between 1m and {}h", words::MAX_TTL_HOURS);
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    if number.is_empty() {
        return Err(format!(
            "--ttl {text}: expected a number with s, m, h or d, e.g. 2h"
        ));
    }
    let unit_seconds: i64 = match unit {
        "s" => 1,
        "m" | "" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "--ttl {text}: unknown unit {unit:?}; use s, m, h or d"
            ))
        }
    };
    // Checked all the way: a huge number is refused by name, never overflows.
    let seconds = number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_seconds))
        .ok_or_else(|| format!("--ttl {text}: is far too long; {range}"))?;
    if seconds < 60 {
        return Err(format!("--ttl {text}: is too short; {range}"));
    }
    if seconds > words::MAX_TTL_HOURS * 3600 {
        return Err(format!("--ttl {text}: is too long; {range}"));
    }
    chrono::Duration::try_seconds(seconds).ok_or_else(|| format!("--ttl {text}: {range}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(reason: String, kdf_names: Vec<String>) -> Request {
        Request {
            v: REQUEST_FORMAT,
            vault_id: "00112233445566778899aabbccddeeff".into(),
            fingerprint: "bg-1234-5678".into(),
            epoch: 3,
            threshold: 2,
            request_id: "ffeeddccbbaa99887766554433221100".into(),
            requester: "oncall@example".into(),
            reason,
            created: "2026-01-01T00:00:00Z".into(),
            expires: "2026-01-01T02:00:00Z".into(),
            recipient: "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into(),
            kdf: kdf_names
                .into_iter()
                .map(|n| {
                    (
                        n,
                        KdfSpec {
                            salt: "00".repeat(16),
                            params: crate::crypto::KdfParams::FLOOR,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn ttl_is_bounded_and_never_overflows() {
        assert_eq!(parse_ttl("2h").unwrap(), chrono::Duration::hours(2));
        assert_eq!(parse_ttl("24h").unwrap(), chrono::Duration::hours(24));
        assert_eq!(parse_ttl("1d").unwrap(), chrono::Duration::days(1));
        assert_eq!(parse_ttl("90").unwrap(), chrono::Duration::minutes(90));
        for bad in ["25h", "2d", "7d", "59s", "0m"] {
            assert!(
                parse_ttl(bad).unwrap_err().contains("between 1m and 24h"),
                "{bad}"
            );
        }
        for huge in [
            "99999999999999d",
            "9223372036854775807s",
            "9223372036854775807d",
            "99999999999999999999999999m",
        ] {
            let err = parse_ttl(huge).unwrap_err();
            assert!(err.contains(huge) && err.contains("too long"), "{err}");
        }
        assert!(parse_ttl("soon").unwrap_err().contains("expected a number"));
        assert!(parse_ttl("2w").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn reordered_or_spaced_json_is_refused() {
        let parsed = ParsedRequest::new(sample("outage".into(), vec!["carol".into()])).unwrap();
        let value: serde_json::Value = serde_json::from_slice(parsed.payload()).unwrap();
        for variant in [
            serde_json::to_vec_pretty(&parsed.request).unwrap(),
            serde_json::to_vec(&value).unwrap(), // keys sorted: reordered
            [parsed.payload(), b" "].concat(),
            [b" ", parsed.payload()].concat(),
            String::from_utf8(parsed.payload().to_vec())
                .unwrap()
                .replace("outage", "\\u006futage")
                .into_bytes(),
            String::from_utf8(parsed.payload().to_vec())
                .unwrap()
                .replacen("{", "{\"reason\":\"x\",", 1)
                .into_bytes(),
        ] {
            let err = ParsedRequest::parse(&code::encode(CodeKind::Request, &variant));
            assert!(err.is_err(), "{}", String::from_utf8_lossy(&variant));
        }
    }

    proptest! {
        /// encode → parse → encode is the identity, any one byte (whitespace or
        /// not) appended or prepended is refused, and no two spellings of one
        /// request are both accepted.
        #[test]
        fn canonical_round_trip_and_any_inserted_byte_is_refused(
            reason in "\\PC{0,40}",
            names in proptest::collection::vec("[a-z]{1,8}", 0..3),
            extra in prop_oneof![Just(b' '), Just(b'\n'), Just(b'\t'), Just(b'\r'), any::<u8>()],
            at in any::<usize>(),
        ) {
            let made = ParsedRequest::new(sample(reason, names)).unwrap();
            let parsed = ParsedRequest::parse(&made.code).unwrap();
            prop_assert_eq!(&parsed.request, &made.request);
            prop_assert_eq!(parsed.payload(), made.payload());
            prop_assert_eq!(&parsed.code, &made.code);
            prop_assert_eq!(parsed.hash(), made.hash());
            prop_assert_eq!(&ParsedRequest::new(parsed.request.clone()).unwrap().code, &made.code);

            let mut appended = made.payload().to_vec();
            appended.push(extra);
            prop_assert!(ParsedRequest::parse(&code::encode(CodeKind::Request, &appended)).is_err());
            let mut prepended = made.payload().to_vec();
            prepended.insert(0, extra);
            prop_assert!(ParsedRequest::parse(&code::encode(CodeKind::Request, &prepended)).is_err());
            // A byte inserted anywhere else either breaks the request or makes a
            // different request: never another spelling of the same one.
            let mut inserted = made.payload().to_vec();
            inserted.insert(at % (inserted.len() + 1), extra);
            if let Ok(other) = ParsedRequest::parse(&code::encode(CodeKind::Request, &inserted)) {
                prop_assert_ne!(&other.request, &made.request);
                prop_assert_eq!(other.payload(), &inserted[..]);
            }
        }
    }
}
