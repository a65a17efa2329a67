//! Read-back words: six words of 11 bits each (66 bits; the BIP-39 English list,
//! 2048 words) from a memory-hard hash of the exact request bytes, checked by voice.
//!
//! # Why six words, Argon2id, and a 24-hour TTL
//!
//! Someone who swaps a request code in transit must find another request (with
//! their own ephemeral key) whose words match the genuine one, and must do it
//! while the genuine request is open: its TTL, at most [`MAX_TTL_HOURS`] hours.
//! Every request holds a fresh 128-bit request id and a fresh ephemeral key, so
//! nothing can be ground in advance: this is a second-preimage search on 66 bits.
//!
//! - Attacker: 10^12 SHA-256 evaluations per second (a large ASIC farm).
//! - Cost of one guess: one Argon2id evaluation with [`crate::crypto::READ_BACK_PARAMS`]
//!   (m = 64 MiB, t = 3, p = 1): 3 × 65,536 = 196,608 ≈ 2^17.6 compressions of a
//!   1 KiB block. Each of those is 16 BLAKE2b-round permutations (more work than one
//!   SHA-256 compression), and the 64 MiB must be held and streamed 3 times. Counting
//!   each block as just one SHA-256 evaluation and ignoring memory is generous to
//!   the attacker: at most 10^12 / 196,608 ≈ 5.1 × 10^6 guesses per second.
//! - Window: 24 h = 86,400 s, so at most 4.4 × 10^11 ≈ 2^38.7 guesses.
//! - Success: each guess matches with probability 2^-66, so at most
//!   2^38.7 / 2^66 = 2^-27.3 ≈ 6 × 10^-9, below 2^-20 with a margin of 2^7.3
//!   (about 160×): an attacker 100× better at Argon2id than this estimate still
//!   stays below 2^-20. (The former 7-day limit would leave 2^-24.5, a margin of
//!   only about 23×; hence 24 hours.)
//!
//! For comparison, the former 4 words (44 bits) from SHA-256 fell to the same
//! attacker in about 18 seconds on average, and 6 words from SHA-256 alone over
//! 24 h would succeed with probability about 2^-9.7.
//!
//! The hash runs on both sides (requester and custodian) through the one call
//! [`read_back_words`]; it takes about 0.2 s here.

use crate::crypto;

const LIST: &str = include_str!("bip39-english.txt");
/// How many read-back words a request shows: 6 × 11 bits = 66 bits to match.
pub const WORD_COUNT: usize = 6;
/// The longest a request may stay open; the arithmetic above depends on it.
pub const MAX_TTL_HOURS: i64 = 24;

fn list() -> Vec<&'static str> {
    LIST.lines()
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect()
}

/// The read-back words of the exact request bytes (slow by design: Argon2id).
pub fn read_back_words(request_bytes: &[u8]) -> Result<Vec<String>, String> {
    let words = list();
    debug_assert_eq!(words.len(), 2048);
    let digest = crypto::read_back_hash(request_bytes)?;
    let bits = u128::from_be_bytes(digest[..16].try_into().expect("16 bytes"));
    Ok((0..WORD_COUNT)
        .map(|i| words[((bits >> (128 - 11 * (i + 1))) & 0x7ff) as usize].to_string())
        .collect())
}

/// Compare words as typed (any case, any spacing or commas) with the expected ones.
pub fn words_match(expected: &[String], typed: &str) -> bool {
    let typed: Vec<String> = typed
        .split(|c: char| c.is_whitespace() || c == ',' || c == '-')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    typed.len() == expected.len() && typed.iter().zip(expected).all(|(a, b)| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn list_is_2048_distinct_words() {
        let mut words = list();
        assert_eq!(words.len(), 2048);
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), 2048);
    }

    #[test]
    fn typed_words_are_forgiving_about_case_and_spacing_only() {
        let w = read_back_words(b"request").unwrap();
        assert_eq!(w.len(), 6);
        let typed = format!(
            "  {} ,{}\n{}-{} {}  {}",
            w[0].to_uppercase(),
            w[1],
            w[2],
            w[3],
            w[4],
            w[5]
        );
        assert!(words_match(&w, &typed));
        assert!(!words_match(&w, &w[..5].join(" ")));
        let mut wrong = w.clone();
        wrong[5] = if w[5] == "abandon" {
            "ability"
        } else {
            "abandon"
        }
        .into();
        assert!(!words_match(&w, &wrong.join(" ")));
    }

    #[test]
    fn words_use_66_bits_of_the_memory_hard_hash() {
        let payload = b"breakglass request";
        let digest = crypto::read_back_hash(payload).unwrap();
        let words = read_back_words(payload).unwrap();
        let list = list();
        let mut bits = String::new();
        for w in &words {
            let i = list.iter().position(|x| x == w).unwrap();
            bits.push_str(&format!("{i:011b}"));
        }
        let expected: String = digest.iter().map(|b| format!("{b:08b}")).collect();
        assert_eq!(bits, expected[..66]);
    }

    proptest! {
        // Each case runs Argon2id (64 MiB) twice: keep the case count small.
        #![proptest_config(ProptestConfig::with_cases(8))]
        /// Changing any byte of the request changes the words (up to the 2^-66 chance of a collision).
        #[test]
        fn any_changed_byte_changes_the_words(payload in proptest::collection::vec(any::<u8>(), 1..300), at in any::<usize>(), flip in 1u8..=255) {
            let mut changed = payload.clone();
            let i = at % changed.len();
            changed[i] ^= flip;
            prop_assert_ne!(read_back_words(&payload).unwrap(), read_back_words(&changed).unwrap());
        }
    }
}
