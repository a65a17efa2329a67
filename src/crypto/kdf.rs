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
    /// when the vault was explicitly made with the test-only option. A refusal
    /// names each parameter at fault, e.g. "… exceed the cap (…): t=65 > 64".
    pub fn check(&self, allow_test_only_insecure: bool) -> Result<(), String> {
        if self.is_above_cap() {
            return Err(format!(
                "Argon2id parameters m={} KiB t={} p={} exceed the cap (m ≤ {} KiB, t ≤ {}, p ≤ {}): {}",
                self.m_kib,
                self.t,
                self.p,
                Self::CAP.m_kib,
                Self::CAP.t,
                Self::CAP.p,
                self.at_fault(|mine, cap| mine > cap, &Self::CAP, ">")
            ));
        }
        if self.is_below_floor() && !allow_test_only_insecure {
            return Err(format!(
                "Argon2id parameters m={} KiB t={} p={} are below the floor (m ≥ {} KiB, t ≥ {}, p ≥ {}): {}",
                self.m_kib,
                self.t,
                self.p,
                Self::FLOOR.m_kib,
                Self::FLOOR.t,
                Self::FLOOR.p,
                self.at_fault(|mine, floor| mine < floor, &Self::FLOOR, "<")
            ));
        }
        Argon2Params(self).build().map(|_| ()).map_err(|e| {
            format!(
                "Argon2id parameters m={} KiB t={} p={} are not valid ({e})",
                self.m_kib, self.t, self.p
            )
        })
    }

    /// "m=… KiB < … KiB, t=… < …": the parameters for which `bad(mine, limit)`.
    fn at_fault(&self, bad: fn(u32, u32) -> bool, limit: &KdfParams, sign: &str) -> String {
        [
            ("m", self.m_kib, limit.m_kib, " KiB"),
            ("t", self.t, limit.t, ""),
            ("p", self.p, limit.p, ""),
        ]
        .into_iter()
        .filter(|&(_, mine, limit, _)| bad(mine, limit))
        .map(|(name, mine, limit, unit)| format!("{name}={mine}{unit} {sign} {limit}{unit}"))
        .collect::<Vec<_>>()
        .join(", ")
    }

    /// Derive a custodian's age identity from a passphrase. Slow by design.
    pub fn derive_identity(
        &self,
        passphrase: &Passphrase,
        salt: &[u8],
    ) -> Result<CustodianIdentity, String> {
        let mut out = Zeroizing::new([0u8; 32]);
        argon2id(self, &[], &[], passphrase.0.as_bytes(), salt, &mut out)?;
        Ok(CustodianIdentity::from_x25519(x25519_identity_from_bytes(
            &out,
        )))
    }
}

/// The one Argon2id call behind passphrase custodians: Argon2id v1.3 (0x13),
/// `params`, a 32-byte tag. Custodians use no `secret` and no
/// `associated_data` (both empty, which Argon2 hashes exactly as absent); the
/// two inputs exist so RFC 9106's test vector, which sets both, runs through
/// this same function.
pub(crate) fn argon2id(
    params: &KdfParams,
    secret: &[u8],
    associated_data: &[u8],
    password: &[u8],
    salt: &[u8],
    out: &mut [u8; 32],
) -> Result<(), String> {
    let mut builder = argon2::ParamsBuilder::new();
    builder
        .m_cost(params.m_kib)
        .t_cost(params.t)
        .p_cost(params.p)
        .output_len(out.len());
    if !associated_data.is_empty() {
        builder.data(argon2::AssociatedData::new(associated_data).map_err(|e| e.to_string())?);
    }
    let built = builder.build().map_err(|e| e.to_string())?;
    let argon = if secret.is_empty() {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, built)
    } else {
        Argon2::new_with_secret(secret, Algorithm::Argon2id, Version::V0x13, built)
            .map_err(|e| e.to_string())?
    };
    argon
        .hash_password_into(password, salt, out)
        .map_err(|e| e.to_string())
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

    /// Each parameter alone below the floor or above the cap is refused, and
    /// the refusal names that parameter and its limit (and only it).
    #[test]
    fn each_parameter_out_of_bounds_is_refused_by_name() {
        let f = KdfParams::FLOOR;
        let c = KdfParams::CAP;
        let cases = [
            (
                KdfParams {
                    m_kib: f.m_kib - 1,
                    ..f
                },
                false,
                "below the floor",
                "m=19455 KiB < 19456 KiB",
            ),
            (
                KdfParams { t: f.t - 1, ..f },
                false,
                "below the floor",
                "t=1 < 2",
            ),
            (KdfParams { p: 0, ..f }, false, "below the floor", "p=0 < 1"),
            (
                KdfParams {
                    m_kib: c.m_kib + 1,
                    ..f
                },
                true,
                "exceed the cap",
                "m=4194305 KiB > 4194304 KiB",
            ),
            (
                KdfParams { t: c.t + 1, ..f },
                true,
                "exceed the cap",
                "t=65 > 64",
            ),
            (
                KdfParams {
                    p: c.p + 1,
                    m_kib: c.m_kib,
                    ..f
                },
                true,
                "exceed the cap",
                "p=65 > 64",
            ),
            (
                KdfParams {
                    m_kib: u32::MAX,
                    t: u32::MAX,
                    p: u32::MAX,
                },
                true,
                "exceed the cap",
                "m=4294967295 KiB > 4194304 KiB, t=4294967295 > 64, p=4294967295 > 64",
            ),
        ];
        for (params, test_only, what, named) in cases {
            let err = params.check(test_only).unwrap_err();
            assert!(
                err.contains(what) && err.ends_with(named),
                "{params:?}: {err}"
            );
        }
        // At the bounds themselves: accepted.
        assert_eq!(f.check(false), Ok(()));
        assert_eq!(
            KdfParams {
                m_kib: c.m_kib,
                t: c.t,
                p: c.p
            }
            .check(false),
            Ok(())
        );
        // Zero cost even in a test-only vault: floor waived, Argon2 itself refuses, by name.
        let zero = KdfParams {
            m_kib: 64,
            t: 0,
            p: 1,
        }
        .check(true)
        .unwrap_err();
        assert!(zero.contains("t=0") && zero.contains("not valid"), "{zero}");
    }

    /// RFC 9106 §5.3, the Argon2id test vector (v=0x13, m=32 KiB, t=3, p=4,
    /// password 32×0x01, salt 16×0x02, secret 8×0x03, associated data
    /// 12×0x04), through the same function custodians derive with.
    #[test]
    fn argon2id_passes_the_rfc_9106_test_vector() {
        let params = KdfParams {
            m_kib: 32,
            t: 3,
            p: 4,
        };
        let mut tag = [0u8; 32];
        argon2id(
            &params,
            &[0x03; 8],
            &[0x04; 12],
            &[0x01; 32],
            &[0x02; 16],
            &mut tag,
        )
        .unwrap();
        assert_eq!(
            hex::encode(tag),
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );
        // One bit of any input changes the tag (the vector is not passed by accident).
        let mut other = [0u8; 32];
        argon2id(
            &params,
            &[0x03; 8],
            &[0x05; 12],
            &[0x01; 32],
            &[0x02; 16],
            &mut other,
        )
        .unwrap();
        assert_ne!(tag, other);
    }

    /// With empty secret and associated data, `argon2id` is exactly the plain
    /// Argon2id custodians always used (`Argon2::new`, no secret, no data), so
    /// existing passphrase custodians still derive the same key.
    #[test]
    fn custodian_derivation_is_plain_argon2id() {
        let params = KDF_TEST_ONLY_INSECURE;
        let mut ours = [0u8; 32];
        argon2id(&params, &[], &[], b"correct horse", &[9; 16], &mut ours).unwrap();
        let plain = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(params.m_kib, params.t, params.p, Some(32)).unwrap(),
        );
        let mut theirs = [0u8; 32];
        plain
            .hash_password_into(b"correct horse", &[9; 16], &mut theirs)
            .unwrap();
        assert_eq!(ours, theirs);
        let identity = params
            .derive_identity(&Passphrase::new("correct horse".into()), &[9; 16])
            .unwrap();
        assert_eq!(
            identity.recipient(),
            Some(
                CustodianIdentity::from_x25519(x25519_identity_from_bytes(&theirs))
                    .recipient()
                    .unwrap()
            )
        );
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
