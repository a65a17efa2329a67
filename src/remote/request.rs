//! An unseal request: what the requester sends to custodians, as a request code.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::code::{self, CodeError, CodeKind};
use super::words;
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

/// A request decoded from a code, with its exact bytes (what the words are computed over).
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    pub request: Request,
    pub code: String,
    payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request code {0}")]
    Code(#[from] CodeError),
    #[error("request code is not a readable request ({0}); ask the requester to send it again")]
    Unreadable(String),
}

impl ParsedRequest {
    pub fn new(request: Request) -> Self {
        let payload = serde_json::to_vec(&request).expect("request serializes");
        let code = code::encode(CodeKind::Request, &payload);
        Self {
            request,
            code,
            payload,
        }
    }

    pub fn parse(text: &str) -> Result<Self, RequestError> {
        let payload = code::decode(CodeKind::Request, text)?;
        let request: Request = serde_json::from_slice(&payload)
            .map_err(|e| RequestError::Unreadable(e.to_string()))?;
        if request.v != REQUEST_FORMAT {
            return Err(RequestError::Unreadable(format!(
                "format {} is not supported",
                request.v
            )));
        }
        let code = code::encode(CodeKind::Request, &payload);
        Ok(Self {
            request,
            code,
            payload,
        })
    }

    /// The read-back words over every byte of the request.
    pub fn words(&self) -> Vec<String> {
        words::read_back_words(&self.payload)
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
        hex::decode(&self.request.request_id).ok()?.try_into().ok()
    }
}

/// Parse a duration like `90s`, `30m`, `2h` or `1d`.
pub fn parse_ttl(text: &str) -> Result<chrono::Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: i64 = number
        .parse()
        .map_err(|_| format!("--ttl {text}: expected a number with s, m, h or d, e.g. 2h"))?;
    let ttl = match unit {
        "s" => chrono::Duration::seconds(n),
        "m" | "" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        _ => {
            return Err(format!(
                "--ttl {text}: unknown unit {unit:?}; use s, m, h or d"
            ))
        }
    };
    if ttl < chrono::Duration::minutes(1) || ttl > chrono::Duration::days(7) {
        return Err(format!("--ttl {text}: choose between 1m and 7d"));
    }
    Ok(ttl)
}
