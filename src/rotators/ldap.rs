//! The `ldap-password` and `ad-password` rotators' protocol: set a directory
//! account's password and prove it with a bind as the account.
//!
//! - `ldap-password` (OpenLDAP, 389-ds, FreeIPA): the LDAP Password Modify
//!   extended operation (RFC 3062) for `user_dn`, bound as `bind_dn`.
//! - `ad-password` (Active Directory, Samba AD): a modify of `unicodePwd` with
//!   the UTF-16LE encoding of the password in double quotes (a replace as an
//!   administrator; a delete of the old value and an add of the new one when the
//!   account changes its own password, as AD requires).
//!
//! Both run over `ldaps://` or StartTLS only, in-process (the `ldap3` crate's
//! blocking API): neither the bind password nor the new password ever reaches a
//! child process, the environment or a file. The library's own encoding buffers
//! are not zeroized (they are freed when the connection closes); ours are.
//!
//! A failure is one [`LdapError`] line naming the peer's error, with any
//! occurrence of either password scrubbed out, and it says which side of the
//! set it happened on: [`LdapError::NotSet`] (the old password still holds),
//! [`LdapError::Unknown`] (the request was sent, no answer came) or
//! [`LdapError::ProofFailed`] (the server accepted the new password, but a bind
//! with it failed).

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::exop::PasswordModify;
use ldap3::{LdapConn, LdapConnSettings, LdapResult, Mod};
use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

/// How long to wait for a TCP connection (and TLS) to a directory server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the answer to one LDAP operation.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest accepted config file, URL and DN (a config is stored in the vault
/// and shown for confirmation; an embedded CA bundle is most of it).
const MAX_CONFIG_LEN: usize = 96 * 1024;
const MAX_FIELD_LEN: usize = 1024;

/// Where and as whom the rotator works. Non-secret; stored in the vault as a
/// rotation setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapConfig {
    /// `ldaps://host[:port]`, or `ldap://host[:port]` with `starttls`.
    pub url: String,
    /// Upgrade a `ldap://` connection with StartTLS (required for `ldap://`).
    pub starttls: bool,
    /// The DN to bind as to set the password (an administrator, or `user_dn`
    /// itself for a self-change).
    pub bind_dn: String,
    /// The account whose password is rotated.
    pub user_dn: String,
    /// A PEM CA bundle to trust instead of the system store (an absolute
    /// path), as a config file names it; `put` embeds it as `ca_pem`.
    pub ca_file: Option<PathBuf>,
    /// The CA bundle's PEM text, as stored in the vault (and endorsed).
    pub ca_pem: Option<String>,
    /// Seconds to wait for a connection and for each answer, 1 to 300
    /// (unset: 10 s to connect, 30 s per answer).
    pub timeout_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    url: String,
    #[serde(default)]
    starttls: bool,
    bind_dn: String,
    user_dn: String,
    #[serde(default)]
    ca_file: Option<String>,
    #[serde(default)]
    ca_pem: Option<String>,
    #[serde(default)]
    timeout_secs: Option<u64>,
}

impl LdapConfig {
    /// Parses a config file's JSON, strictly: unknown keys are refused by name,
    /// `ldap://` without `starttls` is refused, and so is `ldaps://` with it.
    ///
    /// `{"url": "ldaps://dc1.example.com", "bind_dn": "…", "user_dn": "…",
    /// "starttls": false, "ca_file": "/etc/ssl/dir-ca.pem"}` (the last two
    /// optional; the vault stores the file's certificates as `ca_pem`).
    pub fn parse(json: &str) -> Result<Self, String> {
        if json.len() > MAX_CONFIG_LEN {
            return Err(format!(
                "LDAP rotator config is {} bytes, more than the {MAX_CONFIG_LEN} accepted",
                json.len()
            ));
        }
        let raw: RawConfig = serde_json::from_str(json)
            .map_err(|e| format!("LDAP rotator config is not valid: {e}"))?;
        let (scheme, _host) = check_url(&raw.url)?;
        match (scheme, raw.starttls) {
            ("ldap", false) => {
                return Err(format!(
                    "LDAP rotator config: url {} is plain LDAP, which would send the passwords in the clear; use ldaps:// or set \"starttls\": true",
                    raw.url
                ))
            }
            ("ldaps", true) => {
                return Err(format!(
                    "LDAP rotator config: url {} is already TLS (ldaps://); StartTLS applies to ldap:// only, so drop \"starttls\"",
                    raw.url
                ))
            }
            _ => {}
        }
        if let Some(secs) = raw.timeout_secs {
            if !(1..=300).contains(&secs) {
                return Err(format!(
                    "LDAP rotator config: timeout_secs must be 1 to 300, not {secs}"
                ));
            }
        }
        check_dn("bind_dn", &raw.bind_dn)?;
        check_dn("user_dn", &raw.user_dn)?;
        if raw.ca_file.is_some() && raw.ca_pem.is_some() {
            return Err("LDAP rotator config: give ca_file or ca_pem, not both".to_string());
        }
        if let Some(pem) = &raw.ca_pem {
            super::check_ca_pem(pem.as_bytes())
                .map_err(|e| format!("LDAP rotator config: ca_pem {e}"))?;
        }
        let ca_file = match raw.ca_file {
            None => None,
            Some(path) => {
                if path.is_empty()
                    || path.len() > MAX_FIELD_LEN
                    || path.chars().any(char::is_control)
                {
                    return Err(
                        "LDAP rotator config: ca_file must be a path without control characters"
                            .to_string(),
                    );
                }
                let path = PathBuf::from(path);
                if !path.is_absolute() {
                    return Err(format!(
                        "LDAP rotator config: ca_file {} is relative; give an absolute path (the rotation may run from another directory)",
                        path.display()
                    ));
                }
                Some(path)
            }
        };
        Ok(LdapConfig {
            url: raw.url,
            starttls: raw.starttls,
            bind_dn: raw.bind_dn,
            user_dn: raw.user_dn,
            ca_file,
            ca_pem: raw.ca_pem,
            timeout_secs: raw.timeout_secs,
        })
    }

    /// How long to wait for a connection (with TLS).
    pub fn connect_timeout(&self) -> Duration {
        self.timeout_secs
            .map_or(CONNECT_TIMEOUT, Duration::from_secs)
    }

    /// How long to wait for the answer to one operation.
    pub fn operation_timeout(&self) -> Duration {
        self.timeout_secs
            .map_or(OPERATION_TIMEOUT, Duration::from_secs)
    }

    /// The config as canonical JSON (fixed key order, no spaces; optional
    /// keys only when set), for storage and comparison. `parse` reads it
    /// back to an equal config.
    pub fn to_canonical_json(&self) -> String {
        let mut map = serde_json::Map::new();
        map.insert("url".into(), self.url.clone().into());
        map.insert("starttls".into(), self.starttls.into());
        map.insert("bind_dn".into(), self.bind_dn.clone().into());
        map.insert("user_dn".into(), self.user_dn.clone().into());
        if let Some(path) = &self.ca_file {
            map.insert("ca_file".into(), path.to_string_lossy().into_owned().into());
        }
        if let Some(pem) = &self.ca_pem {
            map.insert("ca_pem".into(), pem.clone().into());
        }
        if let Some(secs) = self.timeout_secs {
            map.insert("timeout_secs".into(), secs.into());
        }
        // serde_json's Map keeps insertion order only with `preserve_order`;
        // write the keys in a fixed order by hand instead.
        let mut out = String::from("{");
        for (i, key) in [
            "url",
            "starttls",
            "bind_dn",
            "user_dn",
            "ca_file",
            "ca_pem",
            "timeout_secs",
        ]
        .iter()
        .filter(|k| map.contains_key(**k))
        .enumerate()
        {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::Value::String((*key).to_string()).to_string());
            out.push(':');
            out.push_str(&map[*key].to_string());
        }
        out.push('}');
        out
    }
}

/// Checks `ldap[s]://host[:port][/]` and returns the scheme and host.
fn check_url(url: &str) -> Result<(&'static str, &str), String> {
    let bad = |why: &str| {
        Err(format!(
            "LDAP rotator config: url {url:?} {why}; expected ldaps://host[:port] or ldap://host[:port] with \"starttls\": true"
        ))
    };
    if url.len() > MAX_FIELD_LEN {
        return bad("is too long");
    }
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("ldaps://") {
        ("ldaps", rest)
    } else if let Some(rest) = url.strip_prefix("ldap://") {
        ("ldap", rest)
    } else {
        return bad("has an unsupported scheme");
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return bad("has an unclosed [IPv6] address");
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return bad("has an invalid IPv6 address");
        }
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return bad("has text after the [IPv6] address"),
            },
        };
        (&rest[..addr.len() + 2], port)
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return bad("names no host");
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
    {
        return bad("has a host with characters outside letters, digits, '.', '-' and '_' (no user, path or query)");
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 && port.chars().all(|c| c.is_ascii_digit()) => {}
            _ => return bad("has an invalid port"),
        }
    }
    Ok((scheme, host))
}

fn check_dn(key: &str, dn: &str) -> Result<(), String> {
    if dn.trim().is_empty() {
        return Err(format!("LDAP rotator config: {key} is empty"));
    }
    if dn.len() > MAX_FIELD_LEN || dn.chars().any(char::is_control) || !dn.contains('=') {
        return Err(format!(
            "LDAP rotator config: {key} {dn:?} is not a DN (attr=value,…; no control characters)"
        ));
    }
    Ok(())
}

/// The rotator's bind password: given at rotation time, never stored, zeroized
/// on drop, never printed.
pub struct BindPassword(Zeroizing<String>);

impl BindPassword {
    /// Wraps a bind password (the `String` is moved, not copied).
    pub fn new(password: String) -> Self {
        BindPassword(Zeroizing::new(password))
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

/// Why a rotation failed, as one line naming the peer's error; never a password.
#[derive(Debug, PartialEq, Eq)]
pub enum LdapError {
    /// Nothing changed: the account still has its old password (bad input,
    /// server down, TLS refused, bind refused, or the set itself refused).
    NotSet(String),
    /// The set request was sent but no answer came (the connection broke or
    /// timed out): the account may hold either password.
    Unknown(String),
    /// The server accepted the new password, but a bind as the account with
    /// it failed: the account may now hold the new password.
    ProofFailed(String),
}

impl LdapError {
    /// Whether the account may now hold the new password (the caller must
    /// keep the new value rather than discard it).
    pub fn password_may_have_changed(&self) -> bool {
        !matches!(self, LdapError::NotSet(_))
    }

    /// The one-line message.
    pub fn message(&self) -> &str {
        match self {
            LdapError::NotSet(m) | LdapError::Unknown(m) | LdapError::ProofFailed(m) => m,
        }
    }
}

impl fmt::Display for LdapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for LdapError {}

/// The `unicodePwd` value Active Directory expects: the UTF-16LE encoding of
/// the password enclosed in double quotes.
pub fn ad_unicode_pwd(password: &str) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity((password.len() + 2) * 2));
    let mut units = [0u16; 2];
    for c in std::iter::once('"')
        .chain(password.chars())
        .chain(std::iter::once('"'))
    {
        for unit in c.encode_utf16(&mut units).iter() {
            out.extend_from_slice(&unit.to_le_bytes());
        }
    }
    units.zeroize();
    out
}

/// RFC 3062 Password Modify for `user_dn` (bound as `bind_dn`), then prove: a
/// simple bind as `user_dn` with the new password succeeds.
///
/// When `bind_dn` is `user_dn` (a self-change) the bind password is sent as
/// the old password too, as servers require for a user changing their own.
pub fn set_ldap_password(
    config: &LdapConfig,
    bind_password: &BindPassword,
    new_password: &[u8],
) -> Result<(), LdapError> {
    let scrub = Scrubber::new(bind_password, new_password);
    let new = check_passwords(bind_password, new_password)?;
    let mut conn = connect_and_bind(config, bind_password, &scrub)?;
    let self_change = same_dn(&config.bind_dn, &config.user_dn);
    let request = PasswordModify {
        user_id: Some(&config.user_dn),
        old_pass: self_change.then(|| bind_password.expose()),
        new_pass: Some(new),
    };
    let answer = conn
        .with_timeout(config.operation_timeout())
        .extended(request);
    let _ = conn.unbind();
    match answer {
        Err(e) => {
            return Err(LdapError::Unknown(scrub.clean(format!(
                "password modify for {} was sent to {} but no answer came ({}); the account may hold either password: try a bind with each",
                config.user_dn,
                config.url,
                transport_error(&e, config)
            ))))
        }
        Ok(ldap3::result::ExopResult(_, result)) if result.rc != 0 => {
            return Err(LdapError::NotSet(scrub.clean(format!(
                "password modify for {} refused by {}: {}; the old password is unchanged",
                config.user_dn,
                config.url,
                describe(&result)
            ))))
        }
        Ok(_) => {}
    }
    prove(config, new, &scrub)
}

/// Active Directory: replace `unicodePwd` of `user_dn` with
/// UTF-16LE("\"" + password + "\"") over LDAPS or StartTLS (bound as
/// `bind_dn`), then prove with a bind as `user_dn`.
///
/// When `bind_dn` is `user_dn` (a self-change, which needs no reset right)
/// the modify deletes the old value and adds the new one, as AD requires.
pub fn set_ad_password(
    config: &LdapConfig,
    bind_password: &BindPassword,
    new_password: &[u8],
) -> Result<(), LdapError> {
    let scrub = Scrubber::new(bind_password, new_password);
    let new = check_passwords(bind_password, new_password)?;
    let mut conn = connect_and_bind(config, bind_password, &scrub)?;
    let new_value = SecretBytes(ad_unicode_pwd(new));
    // ldap3's `Mod` takes one type for the attribute name and its values.
    let attr = || SecretBytes(Zeroizing::new(b"unicodePwd".to_vec()));
    let mods = if same_dn(&config.bind_dn, &config.user_dn) {
        let old_value = SecretBytes(ad_unicode_pwd(bind_password.expose()));
        vec![
            Mod::Delete(attr(), HashSet::from([old_value])),
            Mod::Add(attr(), HashSet::from([new_value])),
        ]
    } else {
        vec![Mod::Replace(attr(), HashSet::from([new_value]))]
    };
    let answer = conn
        .with_timeout(config.operation_timeout())
        .modify(&config.user_dn, mods);
    let _ = conn.unbind();
    match answer {
        Err(e) => {
            return Err(LdapError::Unknown(scrub.clean(format!(
                "unicodePwd change for {} was sent to {} but no answer came ({}); the account may hold either password: try a bind with each",
                config.user_dn,
                config.url,
                transport_error(&e, config)
            ))))
        }
        Ok(result) if result.rc != 0 => {
            return Err(LdapError::NotSet(scrub.clean(format!(
                "unicodePwd change for {} refused by {}: {}; the old password is unchanged{}",
                config.user_dn,
                config.url,
                describe(&result),
                if result.rc == 19 {
                    " (the domain's password policy refused the new one: length, complexity, history or minimum age)"
                } else {
                    ""
                }
            ))))
        }
        Ok(_) => {}
    }
    prove(config, new, &scrub)
}

/// A secret attribute value for `Mod` (which needs `Hash + Eq`), zeroized on drop.
struct SecretBytes(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for SecretBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        *self.0 == *other.0
    }
}

impl Eq for SecretBytes {}

impl Hash for SecretBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// The new password as UTF-8 (LDAP simple binds and Password Modify carry
/// strings), refusing empty passwords: a simple bind with an empty password is
/// an unauthenticated bind that "succeeds", which would make the proof a lie.
fn check_passwords<'a>(
    bind_password: &BindPassword,
    new_password: &'a [u8],
) -> Result<&'a str, LdapError> {
    if bind_password.expose().is_empty() {
        return Err(LdapError::NotSet(
            "the bind password is empty (an empty simple bind is anonymous); nothing was changed"
                .to_string(),
        ));
    }
    if new_password.is_empty() {
        return Err(LdapError::NotSet(
            "the new password is empty; nothing was changed".to_string(),
        ));
    }
    std::str::from_utf8(new_password).map_err(|_| {
        LdapError::NotSet(
            "the new password is not valid UTF-8, which LDAP passwords must be; nothing was changed"
                .to_string(),
        )
    })
}

fn same_dn(a: &str, b: &str) -> bool {
    let norm = |dn: &str| {
        dn.split(',')
            .map(|rdn| rdn.trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    norm(a) == norm(b)
}

fn connect(config: &LdapConfig, scrub: &Scrubber) -> Result<LdapConn, String> {
    let ca_pem = match (&config.ca_pem, &config.ca_file) {
        (Some(pem), _) => Some(pem.as_bytes().to_vec()),
        (None, None) => None,
        (None, Some(path)) => Some(std::fs::read(path).map_err(|e| {
            format!(
                "cannot read the CA file {} ({}); fix ca_file in the rotator config",
                path.display(),
                e.kind()
            )
        })?),
    };
    let tls = crate::crypto::tls::client_config(ca_pem.as_deref()).map_err(|e| {
        match (&config.ca_pem, &config.ca_file) {
            (Some(_), _) => format!("the embedded CA (ca_pem): {e}"),
            (None, Some(path)) => format!("CA file {}: {e}", path.display()),
            (None, None) => e,
        }
    })?;
    let settings = LdapConnSettings::new()
        .set_conn_timeout(config.connect_timeout())
        .set_starttls(config.starttls)
        .set_config(Arc::clone(&tls));
    LdapConn::with_settings(settings, &config.url)
        .map_err(|e| scrub.clean(transport_error(&e, config)))
}

fn connect_and_bind(
    config: &LdapConfig,
    bind_password: &BindPassword,
    scrub: &Scrubber,
) -> Result<LdapConn, LdapError> {
    let not_set = |m: String| LdapError::NotSet(scrub.clean(m));
    let mut conn =
        connect(config, scrub).map_err(|e| not_set(format!("{e}; nothing was changed")))?;
    match conn
        .with_timeout(config.operation_timeout())
        .simple_bind(&config.bind_dn, bind_password.expose())
    {
        Err(e) => Err(not_set(format!(
            "bind as {} failed: {}; nothing was changed",
            config.bind_dn,
            transport_error(&e, config)
        ))),
        Ok(result) if result.rc != 0 => Err(not_set(format!(
            "bind as {} refused by {}: {}; check the bind DN and password; nothing was changed",
            config.bind_dn,
            config.url,
            describe(&result)
        ))),
        Ok(_) => Ok(conn),
    }
}

/// Proves the new password on a fresh connection: a simple bind as the account.
fn prove(config: &LdapConfig, new: &str, scrub: &Scrubber) -> Result<(), LdapError> {
    let failed = |why: String| {
        LdapError::ProofFailed(scrub.clean(format!(
            "proof bind as {} with the new password failed: {why}; the server accepted the new password, so the account may now hold it",
            config.user_dn
        )))
    };
    let mut conn = connect(config, scrub).map_err(failed)?;
    let answer = conn
        .with_timeout(config.operation_timeout())
        .simple_bind(&config.user_dn, new);
    let _ = conn.unbind();
    match answer {
        Err(e) => Err(failed(transport_error(&e, config))),
        Ok(result) if result.rc != 0 => Err(failed(describe(&result))),
        Ok(_) => Ok(()),
    }
}

/// Replaces any occurrence of either password in a message (a server's
/// diagnostic could echo one) with `[redacted]`.
struct Scrubber {
    secrets: Vec<Zeroizing<String>>,
}

impl Scrubber {
    fn new(bind_password: &BindPassword, new_password: &[u8]) -> Self {
        let mut secrets = Vec::new();
        for s in [
            bind_password.expose(),
            std::str::from_utf8(new_password).unwrap_or(""),
        ] {
            // Very short values would mangle ordinary words; they are refused
            // or unguessable anyway only when long, so scrub from 4 bytes.
            if s.len() >= 4 {
                secrets.push(Zeroizing::new(s.to_string()));
            }
        }
        Scrubber { secrets }
    }

    fn clean(&self, message: String) -> String {
        let mut message = message.replace(['\n', '\r'], " ");
        for secret in &self.secrets {
            if message.contains(secret.as_str()) {
                message = message.replace(secret.as_str(), "[redacted]");
            }
        }
        message
    }
}

/// The LDAP result code's name (RFC 4511) and the server's diagnostic.
fn describe(result: &LdapResult) -> String {
    let name = match result.rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        64 => "namingViolation",
        65 => "objectClassViolation",
        80 => "other",
        _ => "unknown result code",
    };
    let mut out = format!("LDAP result {} {name}", result.rc);
    let text = result
        .text
        .trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if !text.is_empty() {
        out.push_str(" (");
        out.push_str(&text.chars().filter(|c| !c.is_control()).collect::<String>());
        out.push(')');
    }
    out
}

/// A connection-level failure in words: down, TLS verification, timeout.
fn transport_error(error: &ldap3::LdapError, config: &LdapConfig) -> String {
    let url = config.url.as_str();
    use std::io::ErrorKind;
    match error {
        ldap3::LdapError::Io { source } => {
            if let Some(tls) = source
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return tls_error(tls, url);
            }
            match source.kind() {
                ErrorKind::ConnectionRefused => {
                    format!("server is down (connection refused) at {url}")
                }
                ErrorKind::TimedOut => format!("no answer from {url} (timed out)"),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset => format!(
                    "{url} closed the connection ({source}); is it an LDAP server with TLS on that port?"
                ),
                _ => format!("cannot talk to {url} ({source})"),
            }
        }
        ldap3::LdapError::Timeout { .. } => format!(
            "no answer from {url} within {} s",
            config
                .operation_timeout()
                .as_secs()
                .max(config.connect_timeout().as_secs())
        ),
        ldap3::LdapError::Rustls { source } => tls_error(source, url),
        ldap3::LdapError::DNSName { source } => {
            format!("the host in {url} is not a valid TLS server name ({source})")
        }
        ldap3::LdapError::LdapResult { result } => describe(result),
        other => format!("{other} at {url}"),
    }
}

fn tls_error(error: &rustls::Error, url: &str) -> String {
    match error {
        rustls::Error::InvalidCertificate(why) => {
            use rustls::CertificateError as C;
            let why = match why {
                C::UnknownIssuer => "not issued by a trusted CA".to_string(),
                C::BadSignature => "its signature does not match the trusted CA".to_string(),
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "not valid for the host name in url".to_string()
                }
                C::Expired | C::ExpiredContext { .. } => "expired".to_string(),
                C::NotValidYet | C::NotValidYetContext { .. } => "not valid yet".to_string(),
                C::Revoked => "revoked".to_string(),
                other => format!("{other:?}"),
            };
            format!(
                "TLS certificate did not verify at {url}: {why}; check the host name in url and the CA (ca_file, stored as ca_pem)"
            )
        }
        other => format!("TLS with {url} failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(units: &[u16]) -> Vec<u8> {
        units.iter().flat_map(|u| u.to_le_bytes()).collect()
    }

    #[test]
    fn unicode_pwd_quotes_and_encodes_ascii() {
        assert_eq!(
            &ad_unicode_pwd("abc")[..],
            &[b'"', 0, b'a', 0, b'b', 0, b'c', 0, b'"', 0][..]
        );
        assert_eq!(&ad_unicode_pwd("")[..], &[b'"', 0, b'"', 0][..]);
    }

    #[test]
    fn unicode_pwd_encodes_non_ascii_and_surrogate_pairs() {
        // p ä s s € 😀 (U+1F600 is the surrogate pair D83D DE00).
        let expected = utf16le(&[0x22, 0x70, 0xE4, 0x73, 0x73, 0x20AC, 0xD83D, 0xDE00, 0x22]);
        assert_eq!(&ad_unicode_pwd("päss€😀")[..], &expected[..]);
        // A quote inside the password is encoded as is, not escaped.
        assert_eq!(
            &ad_unicode_pwd("a\"b")[..],
            &utf16le(&[0x22, 0x61, 0x22, 0x62, 0x22])[..]
        );
    }

    fn config_json(extra: &str) -> String {
        format!(
            r#"{{"url":"ldaps://dc1.example.com:636","bind_dn":"cn=admin,dc=example,dc=com","user_dn":"uid=breakglass,ou=people,dc=example,dc=com"{extra}}}"#
        )
    }

    #[test]
    fn parses_and_round_trips_a_config() {
        let config = LdapConfig::parse(&config_json(r#","ca_file":"/etc/ssl/ca.pem""#)).unwrap();
        assert_eq!(config.url, "ldaps://dc1.example.com:636");
        assert!(!config.starttls);
        assert_eq!(
            config.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ssl/ca.pem"))
        );
        let canonical = config.to_canonical_json();
        assert_eq!(
            canonical,
            r#"{"url":"ldaps://dc1.example.com:636","starttls":false,"bind_dn":"cn=admin,dc=example,dc=com","user_dn":"uid=breakglass,ou=people,dc=example,dc=com","ca_file":"/etc/ssl/ca.pem"}"#
        );
        assert_eq!(LdapConfig::parse(&canonical).unwrap(), config);
        let starttls = LdapConfig::parse(
            r#"{"url":"ldap://[::1]:1389/","starttls":true,"bind_dn":"cn=a,dc=b","user_dn":"cn=a,dc=b"}"#,
        )
        .unwrap();
        assert!(starttls.starttls);
        assert_eq!(
            LdapConfig::parse(&starttls.to_canonical_json()).unwrap(),
            starttls
        );
        // Quotes and backslashes in a DN survive the canonical JSON.
        let odd = LdapConfig::parse(
            r#"{"url":"ldaps://h","bind_dn":"cn=a\\,\"b\",dc=c","user_dn":"cn=d,dc=c"}"#,
        )
        .unwrap();
        assert_eq!(LdapConfig::parse(&odd.to_canonical_json()).unwrap(), odd);
    }

    #[test]
    fn refuses_unknown_keys_by_name() {
        let err = LdapConfig::parse(&config_json(r#","bind_password":"x""#)).unwrap_err();
        assert!(err.contains("unknown field `bind_password`"), "{err}");
    }

    #[test]
    fn refuses_plain_ldap_and_contradictions() {
        let plain = LdapConfig::parse(
            r#"{"url":"ldap://dc1","bind_dn":"cn=a,dc=b","user_dn":"cn=a,dc=b"}"#,
        )
        .unwrap_err();
        assert!(plain.contains("plain LDAP"), "{plain}");
        let both = LdapConfig::parse(&config_json(r#","starttls":true"#)).unwrap_err();
        assert!(both.contains("StartTLS applies to ldap:// only"), "{both}");
    }

    #[test]
    fn refuses_bad_urls_dns_and_paths() {
        for url in [
            "https://dc1",
            "ldaps://",
            "ldaps://user@dc1",
            "ldaps://dc1:0",
            "ldaps://dc1:99999",
            "ldaps://dc1:+636",
            "ldaps://dc1/dc=example?x",
            "ldaps://[::1",
            "ldaps://[zz]:636",
            "ldapi:///",
        ] {
            let json = format!(r#"{{"url":"{url}","bind_dn":"cn=a,dc=b","user_dn":"cn=a,dc=b"}}"#);
            assert!(LdapConfig::parse(&json).is_err(), "{url} was accepted");
        }
        for dn in ["", "   ", "admin", "cn=a\\nb"] {
            let json = format!(r#"{{"url":"ldaps://h","bind_dn":"{dn}","user_dn":"cn=a,dc=b"}}"#);
            let err = LdapConfig::parse(&json).unwrap_err();
            assert!(err.contains("bind_dn"), "{dn:?}: {err}");
        }
        let relative = LdapConfig::parse(&config_json(r#","ca_file":"ca.pem""#)).unwrap_err();
        assert!(relative.contains("relative"), "{relative}");
        assert!(LdapConfig::parse("[]").is_err());
        assert!(LdapConfig::parse(&config_json(r#","url":"ldaps://other""#)).is_err());
        let missing =
            LdapConfig::parse(r#"{"url":"ldaps://h","bind_dn":"cn=a,dc=b"}"#).unwrap_err();
        assert!(missing.contains("user_dn"), "{missing}");
    }

    #[test]
    fn refuses_empty_and_non_utf8_passwords_before_connecting() {
        // Port 9 on a TEST-NET address: never reached, the input check comes first.
        let config = LdapConfig::parse(
            r#"{"url":"ldaps://192.0.2.1:9","bind_dn":"cn=a,dc=b","user_dn":"cn=c,dc=b"}"#,
        )
        .unwrap();
        let good = BindPassword::new("bind-secret".into());
        let err = set_ldap_password(&config, &good, b"").unwrap_err();
        assert!(
            matches!(err, LdapError::NotSet(_)) && err.message().contains("empty"),
            "{err}"
        );
        let err = set_ad_password(&config, &good, b"\xff\xfe").unwrap_err();
        assert!(err.message().contains("UTF-8"), "{err}");
        assert!(!err.password_may_have_changed());
        let empty = BindPassword::new(String::new());
        let err = set_ldap_password(&config, &empty, b"new-secret").unwrap_err();
        assert!(err.message().contains("bind password is empty"), "{err}");
    }

    #[test]
    fn scrubs_passwords_out_of_messages() {
        let bind = BindPassword::new("s3cret-bind".into());
        let scrub = Scrubber::new(&bind, b"n3w-pass\xff");
        assert_eq!(
            scrub.clean("server said s3cret-bind\nbad".to_string()),
            "server said [redacted] bad"
        );
        let scrub = Scrubber::new(&bind, "n3w-pässword".as_bytes());
        assert_eq!(scrub.clean("x n3w-pässword y".into()), "x [redacted] y");
    }

    #[test]
    fn compares_dns_loosely() {
        assert!(same_dn(
            "CN=Admin, DC=Example,DC=com",
            "cn=admin,dc=example, dc=com"
        ));
        assert!(!same_dn("cn=admin,dc=example", "cn=other,dc=example"));
    }

    #[test]
    fn only_not_set_means_unchanged() {
        assert!(!LdapError::NotSet("x".into()).password_may_have_changed());
        assert!(LdapError::Unknown("x".into()).password_may_have_changed());
        assert!(LdapError::ProofFailed("x".into()).password_may_have_changed());
    }
}
