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
