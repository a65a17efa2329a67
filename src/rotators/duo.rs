//! The `duo-bypass-codes` rotator's protocol: new bypass codes for one Duo user
//! from the Duo Admin API, `POST /admin/v1/users/{user_id}/bypass_codes`.
//!
//! Requests are signed as Duo's current reference client (duo_client_python
//! 5.x, `Client.sig_version = 5`) signs them: signature version 5, HMAC-SHA512
//! over
//!
//! ```text
//! date \n METHOD \n lowercased host \n path \n canonical params \n
//! sha512hex(body) \n sha512hex(canonical X-Duo-* headers)
//! ```
//!
//! sent as `Authorization: Basic base64(ikey:hexsig)` with the same `Date`. A
//! POST under v5 carries its parameters as a JSON body (sorted keys, no
//! spaces, `Content-Type: application/json`) and signs empty canonical params,
//! exactly as duo_client_python's `api_call` does for `add_user_bypass_codes`
//! (`json_api_call('POST', …)`). Version 2 (HMAC-SHA1 or -SHA512 over date,
//! method, host, path and form params) is here only to reproduce the published
//! test vectors; requests never use it.
//!
//! With `preserve_existing=false`, a successful request replaces the user's
//! codes at Duo at once: the caller must keep the returned codes (as a pending
//! version) before anything else. [`DuoError::may_have_replaced_codes`] says
//! when a failure leaves that unknown (the answer was lost or unreadable).
//!
//! Nothing here ever puts the secret key or a code in an error, a log line or a
//! `Debug` output.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::crypto::{hmac_sha1_hex, hmac_sha512_hex, sha512_hex};
use crate::vault::SecretValue;

/// The rotator kind, as `put --rotator` names it.
pub const KIND: &str = "duo-bypass-codes";
/// Duo creates at most 10 codes per request (and 10 by default).
pub const MAX_COUNT: u32 = 10;
/// Codes per rotation when the config does not say.
pub const DEFAULT_COUNT: u32 = 10;
/// Uses per code when the config does not say (Duo's default; 0 is unlimited).
pub const DEFAULT_REUSE_COUNT: u32 = 1;
/// Lifetime of the codes when the config does not say: 0, never expire (Duo's
/// default; the codes wait sealed in the vault until an outage).
pub const DEFAULT_VALID_SECS: u64 = 0;
/// Seconds the whole request may take when the config does not say.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Longest `timeout_secs` accepted.
pub const MAX_TIMEOUT_SECS: u64 = 300;
/// Largest answer read from Duo (ten codes take about 200 bytes).
const MAX_REPLY_BYTES: u64 = 64 * 1024;
/// Longest Duo error text repeated in an error message.
const MAX_PEER_TEXT: usize = 200;

const KEYS: &[&str] = &[
    "api_host",
    "ca_file",
    "ca_pem",
    "count",
    "integration_key",
    "reuse_count",
    "timeout_secs",
    "user_id",
    "valid_secs",
];

/// Non-secret settings of one `duo-bypass-codes` rotator, parsed from its
/// config file (a JSON object). Stored in the vault and endorsed like a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuoConfig {
    /// The Admin API host, e.g. `api-xxxxxxxx.duosecurity.com` (lowercased);
    /// `host:port` for a private deployment or a test server. Signed as is.
    pub api_host: String,
    /// The Duo user whose codes are replaced, e.g. `DU3RP9I2WOC59VZX672N`.
    pub user_id: String,
    /// Codes per rotation, 1 to 10 (default 10).
    pub count: u32,
    /// Uses per code; 0 is unlimited (default 1).
    pub reuse_count: u32,
    /// Seconds the codes stay valid; 0 is forever (default 0).
    pub valid_secs: u64,
    /// The Admin API application's integration key, e.g. `DIWJ8X6AEYOR5OMC6TQ1`.
    pub integration_key: String,
    /// An absolute path to a PEM file of CA certificates: when set, the server
    /// must chain to one of these and nothing else (the system store is not
    /// used). For private deployments and tests.
    pub ca_file: Option<String>,
    /// Those CA certificates' PEM text, as stored in the vault (and endorsed):
    /// `put` reads `ca_file` into it.
    pub ca_pem: Option<String>,
    /// Seconds the whole request may take, 1 to 300 (default 30).
    pub timeout_secs: u64,
}

impl DuoConfig {
    /// Parses and checks a rotator config. Strict: not an object, an unknown
    /// or repeated key, a wrong type or an out-of-range value is refused by
    /// name. `api_host`, `integration_key` and `user_id` are required.
    pub fn parse(json: &str) -> Result<Self, String> {
        let what = format!("{KIND} config");
        let entries: Entries = serde_json::from_str(json)
            .map_err(|e| format!("the {what} is not a JSON object ({e})"))?;
        let mut seen: Vec<&str> = Vec::new();
        let mut api_host = None;
        let mut user_id = None;
        let mut integration_key = None;
        let mut count = DEFAULT_COUNT;
        let mut reuse_count = DEFAULT_REUSE_COUNT;
        let mut valid_secs = DEFAULT_VALID_SECS;
        let mut ca_file = None;
        let mut ca_pem = None;
        let mut timeout_secs = DEFAULT_TIMEOUT_SECS;
        for (key, value) in &entries.0 {
            let Some(known) = KEYS.iter().find(|k| **k == key.as_str()) else {
                return Err(format!(
                    "unknown key {} in the {what} (known: {})",
                    serde_json::Value::String(key.clone()),
                    KEYS.join(", ")
                ));
            };
            if seen.contains(known) {
                return Err(format!("key \"{key}\" appears twice in the {what}"));
            }
            seen.push(known);
            match *known {
                "api_host" => api_host = Some(check_api_host(&string(key, value)?)?),
                "user_id" => {
                    user_id = Some(check_id(key, &string(key, value)?, "DU3RP9I2WOC59VZX672N")?)
                }
                "integration_key" => {
                    integration_key =
                        Some(check_id(key, &string(key, value)?, "DIWJ8X6AEYOR5OMC6TQ1")?)
                }
                "count" => {
                    let n = integer(key, value, 1, u64::from(MAX_COUNT))?;
                    count = u32::try_from(n).expect("at most MAX_COUNT");
                }
                "reuse_count" => {
                    let n = integer(key, value, 0, u64::from(u32::MAX))?;
                    reuse_count = u32::try_from(n).expect("at most u32::MAX");
                }
                "valid_secs" => valid_secs = integer(key, value, 0, i64::MAX as u64)?,
                "timeout_secs" => timeout_secs = integer(key, value, 1, MAX_TIMEOUT_SECS)?,
                "ca_file" => ca_file = Some(check_ca_file(&string(key, value)?)?),
                "ca_pem" => {
                    let pem = string(key, value)?;
                    super::check_ca_pem(pem.as_bytes())
                        .map_err(|e| format!("\"ca_pem\" in the {what}: {e}"))?;
                    ca_pem = Some(pem);
                }
                _ => unreachable!("every known key is handled"),
            }
        }
        if ca_file.is_some() && ca_pem.is_some() {
            return Err(format!("the {what} gives ca_file and ca_pem: give one"));
        }
        let missing = |key: &str, example: &str| {
            format!("the {what} needs \"{key}\" (e.g. \"{key}\": \"{example}\")")
        };
        Ok(Self {
            api_host: api_host
                .ok_or_else(|| missing("api_host", "api-xxxxxxxx.duosecurity.com"))?,
            user_id: user_id.ok_or_else(|| missing("user_id", "DU3RP9I2WOC59VZX672N"))?,
            integration_key: integration_key
                .ok_or_else(|| missing("integration_key", "DIWJ8X6AEYOR5OMC6TQ1"))?,
            count,
            reuse_count,
            valid_secs,
            ca_file,
            ca_pem,
            timeout_secs,
        })
    }

    /// The config as compact JSON with every key (defaults made explicit) in
    /// sorted order; `ca_file` only when set. Stable: the same config always
    /// gives the same bytes, and `parse` reads them back to an equal config.
    pub fn to_canonical_json(&self) -> String {
        let s = |v: &str| serde_json::Value::String(v.to_string()).to_string();
        let mut out = format!("{{\"api_host\":{}", s(&self.api_host));
        if let Some(ca_file) = &self.ca_file {
            out.push_str(&format!(",\"ca_file\":{}", s(ca_file)));
        }
        if let Some(ca_pem) = &self.ca_pem {
            out.push_str(&format!(",\"ca_pem\":{}", s(ca_pem)));
        }
        out.push_str(&format!(
            ",\"count\":{},\"integration_key\":{},\"reuse_count\":{},\"timeout_secs\":{},\"user_id\":{},\"valid_secs\":{}}}",
            self.count,
            s(&self.integration_key),
            self.reuse_count,
            self.timeout_secs,
            s(&self.user_id),
            self.valid_secs
        ));
        out
    }

    /// The request path, `/admin/v1/users/{user_id}/bypass_codes`.
    pub fn path(&self) -> String {
        // user_id is ASCII alphanumeric (checked), so it needs no escaping.
        format!("/admin/v1/users/{}/bypass_codes", self.user_id)
    }

    /// The JSON body, as duo_client_python's `canon_json` writes
    /// `add_user_bypass_codes`' params: sorted keys, no spaces, numbers as
    /// strings (it sends `str(int(n))`) and `preserve_existing` as a boolean.
    pub fn request_body(&self) -> String {
        format!(
            "{{\"count\":\"{}\",\"preserve_existing\":false,\"reuse_count\":\"{}\",\"valid_secs\":\"{}\"}}",
            self.count, self.reuse_count, self.valid_secs
        )
    }
}

/// A JSON object's entries in order, repeats kept (serde_json's map would
/// silently keep the last of a repeated key).
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

fn string(key: &str, value: &serde_json::Value) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("\"{key}\" in the {KIND} config must be a string, not {value}"))
}

fn integer(key: &str, value: &serde_json::Value, min: u64, max: u64) -> Result<u64, String> {
    match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "\"{key}\" in the {KIND} config must be a whole number from {min} to {max}, not {value}"
        )),
    }
}

fn check_id(key: &str, value: &str, example: &str) -> Result<String, String> {
    if value.is_empty() || value.len() > 64 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "\"{key}\" in the {KIND} config must be letters and digits as the Duo Admin Panel shows it (e.g. {example}), not {}",
            serde_json::Value::String(value.chars().take(80).collect())
        ));
    }
    Ok(value.to_string())
}

/// `host` or `host:port`: a DNS name or an IPv4 address, lowercased.
fn check_api_host(value: &str) -> Result<String, String> {
    let shown = serde_json::Value::String(value.chars().take(80).collect());
    let bad = |why: &str| {
        format!(
            "\"api_host\" in the {KIND} config must be the Admin API host name, like api-xxxxxxxx.duosecurity.com (or host:port), {why}: {shown}"
        )
    };
    if value.contains("://") || value.contains('/') {
        return Err(bad("without https:// or a path"));
    }
    let lower = value.to_ascii_lowercase();
    let (host, port) = match lower.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (lower.as_str(), None),
    };
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && matches!(port.parse::<u32>(), Ok(1..=65535));
        if !ok {
            return Err(bad("with a port from 1 to 65535 if any"));
        }
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(bad("a DNS name or IPv4 address"));
    }
    Ok(lower)
}

fn check_ca_file(value: &str) -> Result<String, String> {
    if value.is_empty() || !value.starts_with('/') || value.contains('\0') {
        return Err(format!(
            "\"ca_file\" in the {KIND} config must be an absolute path to a PEM file of CA certificates, not {}",
            serde_json::Value::String(value.chars().take(120).collect())
        ));
    }
    Ok(value.to_string())
}

/// The Duo Admin API secret key. Secret: zeroized on drop, no `Clone`, a
/// redacted `Debug`; used only as the HMAC key.
pub struct DuoSecretKey(Zeroizing<String>);

impl DuoSecretKey {
    /// Wraps the key as read from a credentials file or prompt; trailing
    /// spaces and line ends are dropped (in place: nothing is copied).
    pub fn new(text: String) -> Self {
        let mut text = Zeroizing::new(text);
        let kept = text.trim_end().len();
        text.truncate(kept);
        Self(text)
    }

    fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Empty, or not one printable word: Duo could never accept it. Names the
    /// problem without showing the key.
    fn check(&self) -> Result<(), DuoError> {
        if self.0.is_empty() {
            return Err(DuoError::Credentials(
                "the Duo secret key is empty: give the Admin API application's secret key".into(),
            ));
        }
        if !self.0.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DuoError::Credentials(
                "the Duo secret key has spaces, control or non-ASCII characters: give it exactly as the Duo Admin Panel shows it".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for DuoSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DuoSecretKey([redacted])")
    }
}

/// The new bypass codes Duo returned. Secret: zeroized on drop, no `Clone`, a
/// redacted `Debug`.
pub struct BypassCodes(Zeroizing<Vec<String>>);

impl BypassCodes {
    /// How many codes (safe to show).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true for codes from [`new_bypass_codes`] (an empty answer is an
    /// error).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The codes. Every call site is a place a secret is used.
    pub fn expose_codes(&self) -> &[String] {
        &self.0
    }

    /// The codes as the secret's new value: one per line, each line ending
    /// in `\n`.
    pub fn to_secret_value(&self) -> SecretValue {
        let mut text = Zeroizing::new(Vec::with_capacity(self.0.len() * 12));
        for code in self.0.iter() {
            text.extend_from_slice(code.as_bytes());
            text.push(b'\n');
        }
        SecretValue::new(std::mem::take(&mut *text))
    }
}

impl fmt::Debug for BypassCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BypassCodes([{} redacted])", self.0.len())
    }
}

/// How the Admin API server's certificate is verified.
#[derive(Clone)]
pub struct TlsTrust(Trust);

#[derive(Clone)]
enum Trust {
    System,
    Roots(Arc<Vec<ureq::tls::Certificate<'static>>>),
}

impl TlsTrust {
    /// The platform's trust store and verifier (production Duo).
    pub fn system() -> Self {
        Self(Trust::System)
    }

    /// Exactly the CA certificates in `pem` (at least one), nothing else.
    pub fn from_ca_pem(pem: &[u8]) -> Result<Self, String> {
        let mut roots = Vec::new();
        for item in ureq::tls::parse_pem(pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => roots.push(cert),
                Ok(_) => {}
                Err(e) => return Err(format!("not a PEM file of certificates ({e})")),
            }
        }
        if roots.is_empty() {
            return Err("holds no PEM certificate".into());
        }
        Ok(Self(Trust::Roots(Arc::new(roots))))
    }

    /// The config's `ca_pem` (or `ca_file`, read now) when set, else the
    /// system store.
    pub fn from_config(config: &DuoConfig) -> Result<Self, DuoError> {
        if let Some(pem) = &config.ca_pem {
            return Self::from_ca_pem(pem.as_bytes()).map_err(|e| {
                DuoError::Config(format!(
                    "the embedded CA (ca_pem) of the {KIND} config {e}: set the rotator again with the right ca_file"
                ))
            });
        }
        let Some(path) = &config.ca_file else {
            return Ok(Self::system());
        };
        let pem = std::fs::read(path).map_err(|e| {
            DuoError::Config(format!(
                "cannot read ca_file {path} of the {KIND} config ({e}): fix the path or the file"
            ))
        })?;
        Self::from_ca_pem(&pem).map_err(|e| {
            DuoError::Config(format!(
                "ca_file {path} of the {KIND} config {e}: give the CA certificate(s) in PEM"
            ))
        })
    }

    fn ureq_config(&self) -> ureq::tls::TlsConfig {
        let roots = match &self.0 {
            Trust::System => ureq::tls::RootCerts::PlatformVerifier,
            Trust::Roots(certs) => ureq::tls::RootCerts::Specific(certs.clone()),
        };
        ureq::tls::TlsConfig::builder().root_certs(roots).build()
    }
}

impl fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Trust::System => f.write_str("TlsTrust::System"),
            Trust::Roots(certs) => write!(f, "TlsTrust::Roots({} certificates)", certs.len()),
        }
    }
}

/// Why new codes could not be had. Every message is one line naming Duo's
/// error (or the network's) and what to do; none holds the secret key or a
/// code.
#[derive(Debug, thiserror::Error)]
pub enum DuoError {
    /// The rotator config or its `ca_file` is unusable.
    #[error("{0}")]
    Config(String),
    /// The secret key cannot be right (empty, spaces…); nothing was sent.
    #[error("{0}")]
    Credentials(String),
    /// Duo answered with an error (`stat: FAIL` or a non-200 status).
    #[error("Duo refused the request: {}", refusal(*.status, *.code, .message, .detail.as_deref()))]
    Refused {
        /// HTTP status.
        status: u16,
        /// Duo's error code, e.g. 40103, when the answer had one.
        code: Option<u64>,
        /// Duo's message (sanitized), or the HTTP reason.
        message: String,
        /// Duo's `message_detail`, if any (sanitized).
        detail: Option<String>,
    },
    /// HTTP 429: Duo's rate limit.
    #[error("Duo rate-limited the request ({}, HTTP 429): wait a minute, then rotate again; nothing was changed at Duo", code_message(*.code, .message))]
    RateLimited {
        /// Duo's error code (42901), when the answer had one.
        code: Option<u64>,
        /// Duo's message (sanitized).
        message: String,
    },
    /// No connection: refused, unreachable, or no such host.
    #[error("cannot reach Duo at {host} ({reason}): check api_host and the network, then rotate again; nothing was sent to Duo")]
    Unreachable {
        /// The configured api_host.
        host: String,
        /// What the network said.
        reason: String,
    },
    /// No (complete) answer in time.
    #[error("{}", timeout_message(.host, *.secs, *.after_send))]
    Timeout {
        /// The configured api_host.
        host: String,
        /// The configured timeout.
        secs: u64,
        /// The request may have reached Duo (so the codes may be replaced).
        after_send: bool,
    },
    /// The TLS handshake failed (e.g. the server's certificate did not
    /// verify); nothing was sent.
    #[error("TLS with {host} failed ({reason}): check api_host, or ca_file in the rotator config; nothing was sent to Duo")]
    Tls {
        /// The configured api_host.
        host: String,
        /// What the verifier said.
        reason: String,
    },
    /// Another failure of the HTTP exchange.
    #[error("the request to Duo at {host} failed ({reason}){}", if *.after_send { MAYBE_REPLACED } else { "; rotate again" })]
    Transport {
        /// The configured api_host.
        host: String,
        /// What failed.
        reason: String,
        /// The request may have reached Duo.
        after_send: bool,
    },
    /// Duo said OK (or HTTP 200) but the answer is not a list of codes.
    #[error("Duo's answer could not be read ({reason}){MAYBE_REPLACED}")]
    Malformed {
        /// What is wrong with it (never its content).
        reason: String,
    },
}

const MAYBE_REPLACED: &str = "; Duo may already have replaced the user's bypass codes: check the user in the Duo Admin Panel, then rotate again";

impl DuoError {
    /// True when the request may have reached Duo and replaced the user's
    /// codes although no new codes came back: the old codes may be dead.
    pub fn may_have_replaced_codes(&self) -> bool {
        match self {
            DuoError::Timeout { after_send, .. } | DuoError::Transport { after_send, .. } => {
                *after_send
            }
            DuoError::Malformed { .. } => true,
            _ => false,
        }
    }
}

fn code_message(code: Option<u64>, message: &str) -> String {
    match code {
        Some(code) => format!("{code} {message}"),
        None => message.to_string(),
    }
}

fn refusal(status: u16, code: Option<u64>, message: &str, detail: Option<&str>) -> String {
    let mut out = code_message(code, message);
    if let Some(detail) = detail {
        out.push_str(&format!(" ({detail})"));
    }
    out.push_str(&format!(" (HTTP {status})"));
    let hint = match (status, code) {
        (401, _) | (_, Some(40100..=40199)) => {
            ": check integration_key, the secret key and this machine's clock"
        }
        (403, _) | (_, Some(40300..=40399)) => {
            ": the Admin API application needs the \"Grant write resource\" permission"
        }
        (404, _) | (_, Some(40400..=40499)) => ": check user_id and api_host in the rotator config",
        (400, _) | (_, Some(40000..=40099)) => ": check the rotator config",
        (500..=599, _) => ": Duo had a problem; rotate again later",
        _ => "",
    };
    out.push_str(hint);
    out.push_str("; nothing was changed at Duo");
    out
}

fn timeout_message(host: &str, secs: u64, after_send: bool) -> String {
    if after_send {
        format!("Duo at {host} did not answer within {secs}s{MAYBE_REPLACED}")
    } else {
        format!("cannot reach Duo at {host} within {secs}s: check api_host and the network, then rotate again; nothing was sent to Duo")
    }
}

/// Printable, one line, at most [`MAX_PEER_TEXT`] characters: text from the
/// peer goes into our one-line errors. Control characters become spaces;
/// zero-width and bidi formatting characters (which could reorder or hide
/// what the error says) are dropped.
fn sanitize(text: &str) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| {
            !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
        })
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_PEER_TEXT)
        .collect();
    if text.chars().count() > MAX_PEER_TEXT {
        out.push('…');
    }
    out.trim().to_string()
}

// ---------------------------------------------------------------------------
// Signing.

/// The `Date` header and signed date: RFC 2822 in UTC, written as
/// duo_client_python's `email.utils.formatdate()` writes it
/// (`Tue, 21 Aug 2012 17:29:18 -0000`).
pub fn duo_date(now: DateTime<Utc>) -> String {
    now.format("%a, %d %b %Y %H:%M:%S -0000").to_string()
}

/// Percent-encodes as Python's `urllib.parse.quote(s, '~')`: everything but
/// `A-Z a-z 0-9 - _ . ~`, as upper-case `%XX` of the UTF-8 bytes.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Canonical params (OAuth 1.0 style, as duo_client_python's `canon_params`):
/// each key and value quoted, sorted by key then value, `k=v` joined by `&`.
/// A key may repeat (several values).
pub fn canon_params(params: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> =
        params.iter().map(|(k, v)| (quote(k), quote(v))).collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// SHA-512 hex of the canonical `X-Duo-*` headers (v5): names lowercased and
/// sorted, then `name, value, name, value…` joined by NUL. Each name must
/// start with `x-duo-`; NULs and repeats (case-insensitive) are refused. No
/// headers hash the empty string.
pub fn canon_x_duo_headers(headers: &[(&str, &str)]) -> Result<String, String> {
    let mut lowered: Vec<(String, &str)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), *v))
        .collect();
    lowered.sort_by(|a, b| a.0.cmp(&b.0));
    let mut parts: Vec<&str> = Vec::with_capacity(lowered.len() * 2);
    for (i, (name, value)) in lowered.iter().enumerate() {
        if name.contains('\0') || value.contains('\0') {
            return Err("a NUL character in an X-Duo header".into());
        }
        if !name.starts_with("x-duo-") {
            return Err(format!(
                "additional header {name} does not start with X-Duo-"
            ));
        }
        if i > 0 && lowered[i - 1].0 == *name {
            return Err(format!("header {name} is given twice"));
        }
        parts.push(name);
        parts.push(value);
    }
    Ok(sha512_hex(parts.join("\0").as_bytes()))
}

/// The v2 canonical string: date, METHOD, lowercased host, path, canonical
/// params, joined by newlines.
pub fn canonicalize_v2(
    date: &str,
    method: &str,
    host: &str,
    path: &str,
    params: &[(&str, &str)],
) -> String {
    [
        date.to_string(),
        method.to_ascii_uppercase(),
        host.to_ascii_lowercase(),
        path.to_string(),
        canon_params(params),
    ]
    .join("\n")
}

/// The v5 canonical string: the v2 lines, then the SHA-512 hex of `body` and
/// of the canonical `X-Duo-*` headers. For a JSON body, `params` is empty.
pub fn canonicalize_v5(
    date: &str,
    method: &str,
    host: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &str,
    x_duo_headers: &[(&str, &str)],
) -> Result<String, String> {
    Ok([
        canonicalize_v2(date, method, host, path, params),
        sha512_hex(body.as_bytes()),
        canon_x_duo_headers(x_duo_headers)?,
    ]
    .join("\n"))
}

/// The HMAC for a v2 signature. Duo documented v2 with HMAC-SHA1; its
/// reference clients sign v2 with HMAC-SHA512 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Hmac {
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-SHA512.
    Sha512,
}

/// `Basic base64(ikey:hexsig)`.
fn basic(ikey: &str, hexsig: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ikey}:{hexsig}"))
    )
}

/// The `Authorization` header of a v2 signature (test vectors only).
#[allow(clippy::too_many_arguments)]
pub fn sign_v2(
    ikey: &str,
    skey: &DuoSecretKey,
    date: &str,
    method: &str,
    host: &str,
    path: &str,
    params: &[(&str, &str)],
    hmac: V2Hmac,
) -> String {
    let canon = canonicalize_v2(date, method, host, path, params);
    let sig = match hmac {
        V2Hmac::Sha1 => hmac_sha1_hex(skey.expose(), canon.as_bytes()),
        V2Hmac::Sha512 => hmac_sha512_hex(skey.expose(), canon.as_bytes()),
    };
    basic(ikey, &sig)
}

/// The `Authorization` header of a v5 signature (HMAC-SHA512).
#[allow(clippy::too_many_arguments)]
pub fn sign_v5(
    ikey: &str,
    skey: &DuoSecretKey,
    date: &str,
    method: &str,
    host: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &str,
    x_duo_headers: &[(&str, &str)],
) -> Result<String, String> {
    let canon = canonicalize_v5(date, method, host, path, params, body, x_duo_headers)?;
    Ok(basic(
        ikey,
        &hmac_sha512_hex(skey.expose(), canon.as_bytes()),
    ))
}

/// One signed request, ready to send: what [`new_bypass_codes`] sends. Its
/// `Debug` leaves out the signature (replayable for minutes).
pub struct SignedRequest {
    /// `https://{api_host}{path}`.
    pub url: String,
    /// The `Date` header (also signed).
    pub date: String,
    /// The `Authorization` header: ikey and signature, not the secret key.
    pub authorization: String,
    /// The JSON body (`Content-Type: application/json`).
    pub body: String,
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRequest")
            .field("url", &self.url)
            .field("date", &self.date)
            .field("authorization", &"[redacted]")
            .field("body", &self.body)
            .finish()
    }
}

/// Builds and signs (v5) the bypass-codes request for `config` at `now`.
pub fn sign_bypass_codes_request(
    config: &DuoConfig,
    secret_key: &DuoSecretKey,
    now: DateTime<Utc>,
) -> Result<SignedRequest, DuoError> {
    secret_key.check()?;
    let date = duo_date(now);
    let path = config.path();
    let body = config.request_body();
    let authorization = sign_v5(
        &config.integration_key,
        secret_key,
        &date,
        "POST",
        &config.api_host,
        &path,
        &[],
        &body,
        &[],
    )
    .expect("no X-Duo headers to refuse");
    Ok(SignedRequest {
        url: format!("https://{}{path}", config.api_host),
        date,
        authorization,
        body,
    })
}

// ---------------------------------------------------------------------------
// The request.

/// Asks Duo for new bypass codes for `config.user_id`, replacing the user's
/// old ones (`preserve_existing=false`): `POST
/// /admin/v1/users/{user_id}/bypass_codes` with `count`, `reuse_count` and
/// `valid_secs`, signed (v5) with `now` as the date. No retry: a rate limit
/// is reported, not waited out.
pub fn new_bypass_codes(
    config: &DuoConfig,
    secret_key: &DuoSecretKey,
    tls: &TlsTrust,
    now: DateTime<Utc>,
) -> Result<BypassCodes, DuoError> {
    let request = sign_bypass_codes_request(config, secret_key, now)?;
    let host = config.api_host.clone();
    let secs = config.timeout_secs;
    let timeout = Duration::from_secs(secs);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
        // Duo never redirects the Admin API; a redirect is the wrong host.
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("breakglass/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls.ureq_config())
        .build()
        .into();
    let mut response = agent
        .post(&request.url)
        .header("Date", &request.date)
        .header("Authorization", &request.authorization)
        .content_type("application/json")
        .send(request.body.as_bytes())
        .map_err(|e| transport_error(e, &host, secs, false))?;
    let status = response.status();
    let text = Zeroizing::new(
        response
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_string()
            .map_err(|e| {
                if status.is_success() {
                    transport_error(e, &host, secs, true)
                } else {
                    // A refusal whose body was lost: the status still names it.
                    DuoError::Refused {
                        status: status.as_u16(),
                        code: None,
                        message: status.canonical_reason().unwrap_or("error").to_string(),
                        detail: None,
                    }
                }
            })?,
    );
    interpret(status.as_u16(), status.canonical_reason(), &text)
}

/// Turns Duo's answer into codes or a named error.
fn interpret(status: u16, reason: Option<&str>, text: &str) -> Result<BypassCodes, DuoError> {
    #[derive(Deserialize)]
    struct Probe {
        stat: String,
        #[serde(default)]
        #[allow(dead_code)]
        response: IgnoredAny,
    }
    #[derive(Deserialize)]
    struct Fail {
        code: Option<u64>,
        message: Option<String>,
        message_detail: Option<String>,
    }
    #[derive(Deserialize)]
    struct OkReply {
        response: Vec<String>,
    }
    let probe = serde_json::from_str::<Probe>(text).ok();
    if status == 200 {
        let Some(probe) = probe else {
            return Err(DuoError::Malformed {
                reason: "HTTP 200 without Duo's JSON reply".into(),
            });
        };
        if probe.stat != "OK" {
            let fail = serde_json::from_str::<Fail>(text).ok();
            return Err(DuoError::Malformed {
                reason: format!(
                    "HTTP 200 with stat {}{}",
                    serde_json::Value::String(sanitize(&probe.stat)),
                    fail.and_then(|f| f.message)
                        .map(|m| format!(", message {}", sanitize(&m)))
                        .unwrap_or_default()
                ),
            });
        }
        let codes = match serde_json::from_str::<OkReply>(text) {
            Ok(ok) => Zeroizing::new(ok.response),
            Err(_) => {
                return Err(DuoError::Malformed {
                    reason: "stat OK but \"response\" is not a list of codes".into(),
                })
            }
        };
        if codes.is_empty() {
            return Err(DuoError::Malformed {
                reason: "stat OK but no codes".into(),
            });
        }
        if !codes
            .iter()
            .all(|c| !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(DuoError::Malformed {
                reason: "a code in the answer is not one printable word".into(),
            });
        }
        return Ok(BypassCodes(codes));
    }
    let fail = serde_json::from_str::<Fail>(text).ok();
    let (code, message, detail) = match (probe, fail) {
        (Some(probe), Some(fail)) if probe.stat == "FAIL" => (
            fail.code,
            fail.message
                .map(|m| sanitize(&m))
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| reason.unwrap_or("error").to_string()),
            fail.message_detail
                .map(|d| sanitize(&d))
                .filter(|d| !d.is_empty()),
        ),
        _ => (None, reason.unwrap_or("error").to_string(), None),
    };
    if status == 429 {
        return Err(DuoError::RateLimited { code, message });
    }
    Err(DuoError::Refused {
        status,
        code,
        message,
        detail,
    })
}

/// Names a ureq failure. `after_send`: the request was already written (the
/// failure came while reading the answer).
fn transport_error(error: ureq::Error, host: &str, secs: u64, after_send: bool) -> DuoError {
    use ureq::Error as E;
    let host = host.to_string();
    match error {
        E::Timeout(which) => {
            use ureq::Timeout as T;
            let before = matches!(which, T::Resolve | T::Connect);
            DuoError::Timeout {
                host,
                secs,
                after_send: after_send || !before,
            }
        }
        E::HostNotFound => DuoError::Unreachable {
            host,
            reason: "no such host".into(),
        },
        E::Io(io) => {
            use std::io::ErrorKind as K;
            if let Some(reason) = tls_reason(&io) {
                return DuoError::Tls { host, reason };
            }
            match io.kind() {
                K::ConnectionRefused => DuoError::Unreachable {
                    host,
                    reason: "connection refused: nothing listens there".into(),
                },
                K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => {
                    DuoError::Unreachable {
                        host,
                        reason: sanitize(&io.to_string()),
                    }
                }
                K::TimedOut | K::WouldBlock => DuoError::Timeout {
                    host,
                    secs,
                    after_send,
                },
                _ => DuoError::Transport {
                    host,
                    reason: sanitize(&io.to_string()),
                    // A connection reset mid-exchange may come after the request.
                    after_send: true,
                },
            }
        }
        E::Rustls(e) => DuoError::Tls {
            host,
            reason: describe_tls(&e),
        },
        E::Tls(e) => DuoError::Tls {
            host,
            reason: sanitize(e),
        },
        E::TooManyRedirects | E::RedirectFailed => DuoError::Transport {
            host,
            reason: "the server answered with a redirect, which the Admin API never sends: check api_host".into(),
            after_send: false,
        },
        E::ConnectionFailed => DuoError::Unreachable {
            host,
            reason: "connection failed".into(),
        },
        other => DuoError::Transport {
            host,
            reason: sanitize(&other.to_string()),
            after_send: true,
        },
    }
}

/// The TLS layer's complaint, if `io` carries one (rustls errors travel
/// inside `io::Error`s).
fn tls_reason(io: &std::io::Error) -> Option<String> {
    Some(describe_tls(io.get_ref()?.downcast_ref::<rustls::Error>()?))
}

fn describe_tls(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(why) => {
            format!(
                "its certificate did not verify: {}",
                sanitize(&format!("{why:?}"))
            )
        }
        other => sanitize(&other.to_string()),
    }
}

#[cfg(test)]
mod tests;
