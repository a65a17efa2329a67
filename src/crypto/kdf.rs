//! Argon2id for passphrase custodians: passphrase → 32 bytes → age X25519 identity.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::age_file::CustodianIdentity;
use super::keys::x25519_identity_from_bytes;

/// Argon2id cost parameters as stored (in the clear) in the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

/// Cheap parameters for the test suite only. A vault made with them is flagged by `status`.
pub const KDF_TEST_ONLY_INSECURE: KdfParams = KdfParams {
    m_kib: 64,
    t: 1,
    p: 1,
};

impl KdfParams {
    /// Default for new custodians: 256 MiB, 3 passes, 4 lanes (above RFC 9106's second
    /// recommendation of 64 MiB; about 0.7 s here — see BENCHMARKS.md).
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 256 * 1024,
        t: 3,
        p: 4,
    };
    /// OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane. Enforced.
    pub const FLOOR: KdfParams = KdfParams {
        m_kib: 19 * 1024,
        t: 2,
        p: 1,
    };
    /// A cap on what a file may ask for, so a hostile file cannot demand 100 GiB.
    pub const CAP: KdfParams = KdfParams {
        m_kib: 4 * 1024 * 1024,
        t: 64,
        p: 64,
    };

    /// True when any parameter is below [`KdfParams::FLOOR`]: such a file is refused.
    pub fn is_below_floor(&self) -> bool {
        self.m_kib < Self::FLOOR.m_kib || self.t < Self::FLOOR.t || self.p < Self::FLOOR.p
    }

    /// True when any parameter is above [`KdfParams::CAP`]: such a file is refused (it would exhaust memory or time).
    pub fn is_above_cap(&self) -> bool {
        self.m_kib > Self::CAP.m_kib || self.t > Self::CAP.t || self.p > Self::CAP.p
    }

    /// Check the params are usable: never above the cap, and below the floor only
    /// when the vault was explicitly made with the test-only option.
    pub fn check(&self, allow_test_only_insecure: bool) -> Result<(), String> {
        if self.is_above_cap() {
            return Err(format!(
                "Argon2id parameters m={} KiB t={} p={} exceed the cap (m ≤ {} KiB, t ≤ {}, p ≤ {})",
                self.m_kib, self.t, self.p, Self::CAP.m_kib, Self::CAP.t, Self::CAP.p
            ));
        }
        if self.is_below_floor() && !allow_test_only_insecure {
            return Err(format!(
                "Argon2id parameters m={} KiB t={} p={} are below the floor (m ≥ {} KiB, t ≥ {}, p ≥ {})",
                self.m_kib, self.t, self.p, Self::FLOOR.m_kib, Self::FLOOR.t, Self::FLOOR.p
            ));
        }
        Argon2Params(self)
            .build()
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Derive a custodian's age identity from a passphrase. Slow by design.
    pub fn derive_identity(
        &self,
        passphrase: &Passphrase,
        salt: &[u8],
    ) -> Result<CustodianIdentity, String> {
        let params = Argon2Params(self).build().map_err(|e| e.to_string())?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.0.as_bytes(), salt, out.as_mut())
            .map_err(|e| e.to_string())?;
        Ok(CustodianIdentity::from_x25519(x25519_identity_from_bytes(
            &out,
        )))
    }
}

/// Argon2id cost of the read-back words: 64 MiB, 3 passes, 1 lane (RFC 9106's
/// second recommended setting, one lane). Fixed: both sides must compute the same
/// words, so these are part of the request format, never read from a file.
pub const READ_BACK_PARAMS: KdfParams = KdfParams {
    m_kib: 64 * 1024,
    t: 3,
    p: 1,
};

/// Fixed, domain-separated salt of the read-back hash (Argon2 wants one; a per-request
/// salt would add nothing, since every request already holds 128 random bits).
const READ_BACK_SALT: &[u8] = b"breakglass/v1/read-back-words";

const READ_BACK_ARGON2: Params = match Params::new(
    READ_BACK_PARAMS.m_kib,
    READ_BACK_PARAMS.t,
    READ_BACK_PARAMS.p,
    Some(32),
) {
    Ok(params) => params,
    // Evaluated at compile time: invalid constants fail the build, never a run.
    Err(_) => panic!("READ_BACK_PARAMS are not valid Argon2 parameters"),
};

/// The memory-hard hash behind the read-back words:
/// Argon2id(password = the exact request bytes, salt = a fixed label, [`READ_BACK_PARAMS`]).
///
/// Each guess of someone grinding for a swapped request with the same words costs
/// one full evaluation: 3 passes over 65,536 blocks of 1 KiB, i.e. 196,608 block
/// compressions (each one at least the work of a SHA-256 compression, plus 64 MiB
/// of memory traffic). See `remote::words` and SECURITY.md for the arithmetic.
/// Public input, public output: nothing here is secret.
pub fn read_back_hash(request_bytes: &[u8]) -> Result<[u8; 32], String> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, READ_BACK_ARGON2);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(request_bytes, READ_BACK_SALT, &mut out)
        .map_err(|e| format!("read-back hash failed ({e})"))?;
    Ok(out)
}

struct Argon2Params<'a>(&'a KdfParams);

impl Argon2Params<'_> {
    fn build(&self) -> Result<Params, argon2::Error> {
        Params::new(self.0.m_kib, self.0.t, self.0.p, Some(32))
    }
}

/// A custodian's passphrase. Secret: no Clone, redacted Debug, zeroized on drop.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Take ownership of a passphrase; one trailing newline (from a file) is dropped.
    pub fn new(mut text: String) -> Self {
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        Self(Zeroizing::new(text))
    }

    /// True for an empty passphrase.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The text, only for the strength estimate (crypto-internal).
    pub(super) fn expose_for_strength_check(&self) -> &str {
        &self.0
    }

    /// Constant-time equality, for "type it again" confirmation.
    pub fn matches(&self, other: &Passphrase) -> bool {
        super::ct_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_and_cap_are_enforced() {
        assert!(KdfParams::DEFAULT.check(false).is_ok());
        assert!(!KdfParams::DEFAULT.is_below_floor());
        const { assert!(KdfParams::DEFAULT.m_kib >= 64 * 1024 && KdfParams::DEFAULT.t >= 3) };
        assert!(KDF_TEST_ONLY_INSECURE.check(false).is_err());
        assert!(KDF_TEST_ONLY_INSECURE.check(true).is_ok());
        let hostile = KdfParams {
            m_kib: 100 * 1024 * 1024,
            t: 3,
            p: 1,
        };
        assert!(hostile.check(true).unwrap_err().contains("exceed the cap"));
    }

    #[test]
    fn read_back_hash_is_fixed_memory_hard_and_timed() {
        assert!(!READ_BACK_PARAMS.is_below_floor());
        assert_eq!(READ_BACK_ARGON2.m_cost(), 64 * 1024);
        assert_eq!(READ_BACK_ARGON2.t_cost(), 3);
        assert_eq!(READ_BACK_ARGON2.p_cost(), 1);
        let started = std::time::Instant::now();
        let a = read_back_hash(b"request").unwrap();
        eprintln!("read_back_hash: {:?} per derivation", started.elapsed());
        assert_eq!(a, read_back_hash(b"request").unwrap());
        assert_ne!(a, read_back_hash(b"request ").unwrap());
    }

    #[test]
    fn derivation_depends_on_passphrase_and_salt() {
        let p = KDF_TEST_ONLY_INSECURE;
        let a = p
            .derive_identity(&Passphrase::new("correct horse".into()), &[1; 16])
            .unwrap();
        let b = p
            .derive_identity(&Passphrase::new("correct horse\n".into()), &[1; 16])
            .unwrap();
        let c = p
            .derive_identity(&Passphrase::new("correct horse".into()), &[2; 16])
            .unwrap();
        let d = p
            .derive_identity(&Passphrase::new("wrong horse".into()), &[1; 16])
            .unwrap();
        assert_eq!(a.recipient(), b.recipient());
        assert_ne!(a.recipient(), c.recipient());
        assert_ne!(a.recipient(), d.recipient());
        assert_eq!(
            format!("{:?}", Passphrase::new("x".into())),
            "Passphrase([redacted])"
        );
    }
}
