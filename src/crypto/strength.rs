//! Passphrase strength policy for passphrase custodians.
//!
//! A passphrase custodian's X25519 recipient is derived from the passphrase and
//! stored in the manifest, so anyone holding a copy of the vault file can test
//! guesses offline, paying one Argon2id derivation each. The strength estimate
//! (zxcvbn, a well-kept port of Dropbox's estimator) decides whether that cost
//! times the estimated number of guesses is enough; see SECURITY.md.

use std::fmt;

use super::kdf::Passphrase;

/// A passphrase must need at least 10^12 guesses by zxcvbn's estimate: two orders
/// of magnitude above its top score (4, more than 10^10 guesses). At the default
/// Argon2id cost (256 MiB, t = 3) a well-equipped attacker gets roughly 10^3 guesses
/// per second per GPU, so 10^12 guesses is decades of one GPU; 10^10 would be months.
pub const MIN_GUESSES_LOG10: f64 = 12.0;

/// Words an attacker would try first against any vault: added to every estimate.
pub const VAULT_CONTEXT_WORDS: &[&str] = &[
    "breakglass",
    "break glass",
    "break-glass",
    "vault",
    "emergency",
    "custodian",
    "passphrase",
    "password",
    "secret",
    "quorum",
    "unseal",
    "outage",
    "recovery",
    "admin",
    "mfa",
    "duo",
];

/// Why a passphrase was refused. Holds no part of the passphrase.
#[derive(Debug, Clone, PartialEq)]
pub struct WeakPassphrase {
    /// log10 of zxcvbn's guess estimate.
    pub guesses_log10: f64,
    /// zxcvbn's crack-time class for an offline attack on a slow hash (10^4 guesses/s).
    pub crack_time: String,
    /// zxcvbn's warning (a fixed sentence, never text from the passphrase), if any.
    pub warning: Option<String>,
}

impl fmt::Display for WeakPassphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let guesses = if self.guesses_log10.is_finite() {
            format!("about 10^{:.0} guesses", self.guesses_log10.max(0.0))
        } else {
            "no guesses (it is empty)".to_string()
        };
        write!(
            f,
            "passphrase is too weak: zxcvbn estimates {guesses} (its offline slow-hash crack time: {})",
            self.crack_time
        )?;
        if let Some(warning) = &self.warning {
            write!(f, "; {}", warning.trim_end_matches('.'))?;
        }
        write!(
            f,
            "; at least 10^{MIN_GUESSES_LOG10:.0} are needed — use 5+ random words, such as a diceware phrase, or a longer passphrase"
        )
    }
}

/// Check a new passphrase custodian's passphrase. `context` holds words an
/// attacker knows from the file or the setting (custodian names, the vault's
/// fingerprint, secret names); [`VAULT_CONTEXT_WORDS`] are always added.
pub fn check_passphrase_strength(
    passphrase: &Passphrase,
    context: &[&str],
) -> Result<(), WeakPassphrase> {
    let mut inputs: Vec<&str> = VAULT_CONTEXT_WORDS.to_vec();
    inputs.extend(context.iter().copied().filter(|w| !w.is_empty()));
    let entropy = zxcvbn::zxcvbn(passphrase.expose_for_strength_check(), &inputs);
    let guesses_log10 = entropy.guesses_log10();
    if entropy.score() >= zxcvbn::Score::Four && guesses_log10 >= MIN_GUESSES_LOG10 {
        return Ok(());
    }
    Err(WeakPassphrase {
        guesses_log10,
        crack_time: entropy
            .crack_times()
            .offline_slow_hashing_1e4_per_second()
            .to_string(),
        warning: entropy
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| w.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, context: &[&str]) -> Result<(), WeakPassphrase> {
        check_passphrase_strength(&Passphrase::new(text.into()), context)
    }

    #[test]
    fn weak_passphrases_are_refused() {
        for weak in [
            "",
            "a",
            "password",
            "correct horse",
            "Tr0ub4dour&3",
            "breakglass vault 2026",
            "qwertyuiop",
            "Zq7#canary",
        ] {
            let err = check(weak, &["dave"]).unwrap_err();
            assert!(err.guesses_log10 < MIN_GUESSES_LOG10, "{weak}: {err}");
            let text = err.to_string();
            assert!(text.contains("5+ random words"), "{text}");
            assert!(!text.contains('\n'));
            assert!(
                !text.contains("canary"),
                "the message never echoes the passphrase"
            );
        }
    }

    #[test]
    fn context_words_count_against_the_passphrase() {
        let name = "wolfgang-amadeus-mozart-1756";
        assert!(check(name, &[]).is_ok() || check(name, &[name]).is_err());
        assert!(check(name, &[name]).is_err());
    }

    #[test]
    fn random_words_and_long_random_strings_pass() {
        for strong in [
            "tundra plastic ferret obtain sixty glove",
            "gravel Onion yearly mosaic drift",
            "vK9#qL2!xR7@mT4$",
        ] {
            assert!(check(strong, &["dave"]).is_ok(), "{strong}");
        }
    }
}
