//! Built-in rotators: rotate what an outage exposed at its source, with no
//! hook to write. A secret names one with `put NAME --rotator KIND
//! --rotator-config FILE`; its config (hosts, DNs, ids, counts: nothing secret)
//! is stored as a rotation setting, endorsed like a hook. The rotator's own
//! credentials (a Duo Admin API secret key, an LDAP bind password) are never
//! stored: they are given at rotation time.
//!
//! - `duo-bypass-codes` ([`duo`]): new Duo bypass codes for one user, through
//!   the Duo Admin API; the codes Duo returns become the new version.
//! - `ldap-password` ([`ldap`]): the LDAP Password Modify extended operation
//!   (RFC 3062) over LDAPS or StartTLS, proven by a bind as the account.
//! - `ad-password` ([`ldap`]): an Active Directory `unicodePwd` replace over
//!   LDAPS, proven by a bind as the account.

pub mod duo;
pub mod ldap;

use zeroize::Zeroizing;

/// The built-in rotators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotatorKind {
    /// Duo bypass codes for one user.
    DuoBypassCodes,
    /// An LDAP directory account's password (OpenLDAP, 389-ds, FreeIPA).
    LdapPassword,
    /// An Active Directory account's password.
    AdPassword,
}

impl RotatorKind {
    /// Every kind, in the order `--help` lists them.
    pub const ALL: [RotatorKind; 3] = [
        RotatorKind::DuoBypassCodes,
        RotatorKind::LdapPassword,
        RotatorKind::AdPassword,
    ];

    /// The kind's name, as stored and typed.
    pub fn as_str(&self) -> &'static str {
        match self {
            RotatorKind::DuoBypassCodes => "duo-bypass-codes",
            RotatorKind::LdapPassword => "ldap-password",
            RotatorKind::AdPassword => "ad-password",
        }
    }

    /// A kind by name; the error lists the known ones.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| {
                format!("unknown rotator {text:?}; expected duo-bypass-codes, ldap-password or ad-password")
            })
    }

    /// The secret kind this rotator makes values of.
    pub fn secret_kind(&self) -> &'static str {
        match self {
            RotatorKind::DuoBypassCodes => "bypass-codes",
            RotatorKind::LdapPassword | RotatorKind::AdPassword => "password",
        }
    }

    /// What the rotator's credentials are, for prompts and errors.
    pub fn credentials_name(&self) -> &'static str {
        match self {
            RotatorKind::DuoBypassCodes => "the Duo Admin API secret key",
            RotatorKind::LdapPassword | RotatorKind::AdPassword => "the bind password",
        }
    }

    /// Whether the new value is made here (a generated password) rather than
    /// by the peer (Duo's codes).
    pub fn value_made_here(&self) -> bool {
        !matches!(self, RotatorKind::DuoBypassCodes)
    }
}

/// A rotator with its parsed, non-secret config.
pub enum Rotator {
    /// `duo-bypass-codes`.
    Duo(duo::DuoConfig),
    /// `ldap-password`.
    Ldap(ldap::LdapConfig),
    /// `ad-password`.
    Ad(ldap::LdapConfig),
}

impl Rotator {
    /// Parse a config (JSON) for `kind`; strict, each problem named.
    pub fn parse(kind: RotatorKind, json: &str) -> Result<Self, String> {
        Ok(match kind {
            RotatorKind::DuoBypassCodes => Rotator::Duo(duo::DuoConfig::parse(json)?),
            RotatorKind::LdapPassword => Rotator::Ldap(ldap::LdapConfig::parse(json)?),
            RotatorKind::AdPassword => Rotator::Ad(ldap::LdapConfig::parse(json)?),
        })
    }

    /// The kind.
    pub fn kind(&self) -> RotatorKind {
        match self {
            Rotator::Duo(_) => RotatorKind::DuoBypassCodes,
            Rotator::Ldap(_) => RotatorKind::LdapPassword,
            Rotator::Ad(_) => RotatorKind::AdPassword,
        }
    }

    /// Read the config's `ca_file` into it as `ca_pem`: what the vault stores,
    /// so the endorsement covers the CA's certificates, not just a path whose
    /// file anyone with the machine could swap, and the vault works on another
    /// machine. Called by `put` and `rotate --rotator`.
    pub fn embed_ca_file(&mut self) -> Result<(), String> {
        let path = match self {
            Rotator::Duo(c) => c.ca_file.as_ref().map(std::path::PathBuf::from),
            Rotator::Ldap(c) | Rotator::Ad(c) => c.ca_file.clone(),
        };
        let Some(path) = path else { return Ok(()) };
        let bytes = read_small(&path, MAX_CA_PEM)
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        let pem = String::from_utf8(bytes)
            .map_err(|_| format!("ca_file {}: not PEM text", path.display()))?;
        check_ca_pem(pem.as_bytes()).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        match self {
            Rotator::Duo(c) => {
                c.ca_file = None;
                c.ca_pem = Some(pem);
            }
            Rotator::Ldap(c) | Rotator::Ad(c) => {
                c.ca_file = None;
                c.ca_pem = Some(pem);
            }
        }
        Ok(())
    }

    /// Whether the config names a CA file by path (a config file not yet
    /// stored); a stored config must embed its CA instead.
    pub fn names_ca_file(&self) -> bool {
        match self {
            Rotator::Duo(c) => c.ca_file.is_some(),
            Rotator::Ldap(c) | Rotator::Ad(c) => c.ca_file.is_some(),
        }
    }

    /// The config as stored and endorsed: canonical JSON.
    pub fn canonical_config(&self) -> String {
        match self {
            Rotator::Duo(c) => c.to_canonical_json(),
            Rotator::Ldap(c) | Rotator::Ad(c) => c.to_canonical_json(),
        }
    }

    /// Run the rotator with its credentials. LDAP and AD set `new_value`
    /// (made here) and prove it with a bind; Duo makes new codes and returns
    /// them. `Ok` holds the value the target now accepts.
    pub fn apply(
        &self,
        credentials: &RotatorCredentials,
        new_value: Option<&[u8]>,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, RotatorFailure> {
        match self {
            Rotator::Duo(config) => {
                let key = duo::DuoSecretKey::new(credentials.0.to_string());
                let fail = |e: duo::DuoError| {
                    // With preserve_existing=false, a POST Duo carried out
                    // kills the old codes even if its answer was lost.
                    if e.may_have_replaced_codes() {
                        RotatorFailure::Unproven(e.to_string())
                    } else {
                        RotatorFailure::NotApplied(e.to_string())
                    }
                };
                let tls = duo::TlsTrust::from_config(config).map_err(fail)?;
                let codes =
                    duo::new_bypass_codes(config, &key, &tls, chrono::Utc::now()).map_err(fail)?;
                Ok(Some(Zeroizing::new(
                    codes.to_secret_value().expose_secret().to_vec(),
                )))
            }
            Rotator::Ldap(config) | Rotator::Ad(config) => {
                let bind = ldap::BindPassword::new(credentials.0.to_string());
                let value = new_value
                    .ok_or_else(|| RotatorFailure::NotApplied("no new password to set".into()))?;
                let result = match self {
                    Rotator::Ad(_) => ldap::set_ad_password(config, &bind, value),
                    _ => ldap::set_ldap_password(config, &bind, value),
                };
                result.map(|()| None).map_err(|e| {
                    if e.password_may_have_changed() {
                        RotatorFailure::Unproven(e.to_string())
                    } else {
                        RotatorFailure::NotApplied(e.to_string())
                    }
                })
            }
        }
    }
}

impl std::fmt::Debug for Rotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds nothing secret (credentials are never part of it).
        write!(
            f,
            "Rotator({} {})",
            self.kind().as_str(),
            self.canonical_config()
        )
    }
}

/// A change to a secret's rotator from the user's own command line
/// (`put`/`rotate --rotator KIND --rotator-config FILE`, or `--rotator none`).
#[derive(Debug)]
pub enum RotatorChange {
    /// Set this rotator (replacing any apply hook).
    Set(Rotator),
    /// Remove the rotator: new values are given again (or a hook applies them).
    Remove,
}

impl RotatorChange {
    /// The rotator set, if any.
    pub fn rotator(&self) -> Option<&Rotator> {
        match self {
            RotatorChange::Set(r) => Some(r),
            RotatorChange::Remove => None,
        }
    }

    /// As stored: `Some(setting)` to set, `None` to remove.
    pub fn setting(&self) -> Option<crate::store::RotatorSetting> {
        self.rotator().map(|r| crate::store::RotatorSetting {
            kind: r.kind().as_str().into(),
            config: r.canonical_config(),
        })
    }

    /// Whether it may go on a secret of `kind`; the error says why not.
    pub fn check_secret_kind(&self, kind: &str) -> Result<(), String> {
        match self.rotator() {
            Some(r) if r.kind().secret_kind() != kind => Err(format!(
                "rotator {} rotates {} secrets, not {kind}",
                r.kind().as_str(),
                r.kind().secret_kind(),
            )),
            _ => Ok(()),
        }
    }
}

/// Largest CA bundle a config may embed.
const MAX_CA_PEM: usize = 64 * 1024;

/// Checks a CA bundle: PEM text holding at least one usable certificate.
pub(crate) fn check_ca_pem(pem: &[u8]) -> Result<(), String> {
    if pem.len() > MAX_CA_PEM {
        return Err(format!(
            "is {} bytes, more than the {MAX_CA_PEM} accepted",
            pem.len()
        ));
    }
    crate::crypto::tls::client_config(Some(pem)).map(|_| ())
}

fn read_small(path: &std::path::Path, limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot be read ({})", e.kind()))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read ({})", e.kind()))?;
    if bytes.len() > limit {
        return Err(format!("is more than the {limit} bytes accepted"));
    }
    Ok(bytes)
}

/// A stored rotator config as shown to a person: an embedded CA bundle is
/// given as its SHA-256 (compare with `sha256sum FILE`) and certificate
/// count instead of pages of PEM. Text that is not a JSON object is shown
/// as it is (the caller escapes it).
pub fn shown_config(config: &str) -> String {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str::<serde_json::Value>(config)
    else {
        return config.to_string();
    };
    if let Some(serde_json::Value::String(pem)) = map.get("ca_pem") {
        let certificates = pem.matches("-----BEGIN CERTIFICATE-----").count();
        let digest = hex::encode(crate::crypto::sha256(&[pem.as_bytes()]));
        map.insert(
            "ca_pem".into(),
            format!("sha256:{digest} ({certificates} certificate(s))").into(),
        );
    }
    serde_json::Value::Object(map).to_string()
}

/// Why a rotator did not finish.
#[derive(Debug)]
pub enum RotatorFailure {
    /// The peer refused or could not be reached: it still holds the old value.
    NotApplied(String),
    /// The peer accepted the new value but the proof failed: it may hold it.
    Unproven(String),
}

/// A rotator's own credentials, given at rotation time (never stored): the
/// Duo Admin API secret key, or the LDAP/AD bind password. One line of text.
pub struct RotatorCredentials(Zeroizing<String>);

impl RotatorCredentials {
    /// Take the credentials as read from a file or a hidden prompt (one
    /// trailing newline dropped); empty is refused.
    pub fn new(mut text: String) -> Result<Self, String> {
        while text.ends_with('\n') || text.ends_with('\r') {
            text.pop();
        }
        let text = Zeroizing::new(text);
        if text.trim().is_empty() {
            return Err("the credentials are empty".into());
        }
        Ok(Self(text))
    }
}

impl std::fmt::Debug for RotatorCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RotatorCredentials([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn a_ca_file_is_embedded_as_pem_and_shown_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let pem = ca_pem();
        std::fs::write(&path, &pem).unwrap();
        let configs = [
            (
                RotatorKind::LdapPassword,
                serde_json::json!({"url": "ldaps://dc1", "bind_dn": "cn=a", "user_dn": "cn=b", "ca_file": path}),
            ),
            (
                RotatorKind::DuoBypassCodes,
                serde_json::json!({"api_host": "api-1.duosecurity.com", "user_id": "DU3RP9I2WOC59VZX672N", "integration_key": "DIWJ8X6AEYOR5OMC6TQ1", "ca_file": path}),
            ),
        ];
        for (kind, json) in configs {
            let mut rotator = Rotator::parse(kind, &json.to_string()).unwrap();
            assert!(rotator.names_ca_file());
            rotator.embed_ca_file().unwrap();
            assert!(!rotator.names_ca_file());
            let stored = rotator.canonical_config();
            assert!(!stored.contains("ca_file"), "{stored}");
            // The stored form reads back to the same config, PEM and all.
            let again = Rotator::parse(kind, &stored).unwrap();
            assert_eq!(again.canonical_config(), stored);
            let value: serde_json::Value = serde_json::from_str(&stored).unwrap();
            assert_eq!(value["ca_pem"].as_str(), Some(pem.as_str()));
            let shown = shown_config(&stored);
            let digest = hex::encode(crate::crypto::sha256(&[pem.as_bytes()]));
            assert!(
                shown.contains(&format!("sha256:{digest} (1 certificate(s))"))
                    && !shown.contains("BEGIN"),
                "{shown}"
            );
            // Both forms at once, or a PEM that holds no certificate, are refused.
            let mut both = value.clone();
            both["ca_file"] = path.display().to_string().into();
            assert!(Rotator::parse(kind, &both.to_string())
                .err()
                .is_some_and(|e| e.contains("ca_file") && e.contains("ca_pem")));
            let mut junk = value.clone();
            junk["ca_pem"] = "not a certificate".into();
            assert!(Rotator::parse(kind, &junk.to_string())
                .err()
                .is_some_and(|e| e.contains("ca_pem")));
        }
    }

    #[test]
    fn a_missing_or_foreign_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let json = serde_json::json!({"url": "ldaps://dc1", "bind_dn": "cn=a", "user_dn": "cn=b", "ca_file": missing});
        let mut rotator = Rotator::parse(RotatorKind::AdPassword, &json.to_string()).unwrap();
        let err = rotator.embed_ca_file().unwrap_err();
        assert!(
            err.contains("nope.pem") && err.contains("cannot be read"),
            "{err}"
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let json = serde_json::json!({"url": "ldaps://dc1", "bind_dn": "cn=a", "user_dn": "cn=b", "ca_file": junk});
        let mut rotator = Rotator::parse(RotatorKind::AdPassword, &json.to_string()).unwrap();
        let err = rotator.embed_ca_file().unwrap_err();
        assert!(err.contains("junk.pem") && err.contains("PEM"), "{err}");
    }

    #[test]
    fn text_that_is_not_a_config_is_shown_as_it_is() {
        assert_eq!(shown_config("not json"), "not json");
        assert_eq!(shown_config(r#"{"a":1}"#), r#"{"a":1}"#);
    }
}
