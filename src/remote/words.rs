//! Read-back words: four words of 11 bits each (the BIP-39 English list, 2048
//! words) from the SHA-256 of a whole request code, checked by voice.

use crate::crypto;

const LIST: &str = include_str!("bip39-english.txt");
const LABEL: &[u8] = b"breakglass/v1/read-back-words\0";
pub const WORD_COUNT: usize = 4;

fn list() -> Vec<&'static str> {
    LIST.lines()
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect()
}

/// The read-back words of a request payload.
pub fn read_back_words(payload: &[u8]) -> Vec<String> {
    let words = list();
    debug_assert_eq!(words.len(), 2048);
    let digest = crypto::sha256(&[LABEL, payload]);
    let bits = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (0..WORD_COUNT)
        .map(|i| words[((bits >> (64 - 11 * (i + 1))) & 0x7ff) as usize].to_string())
        .collect()
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
        let w = read_back_words(b"request");
        let typed = format!("  {} ,{}\n{}-{} ", w[0].to_uppercase(), w[1], w[2], w[3]);
        assert!(words_match(&w, &typed));
        assert!(!words_match(&w, &w[..3].join(" ")));
        assert!(
            !words_match(&w, &format!("{} {} {} abandon", w[0], w[1], w[2])) || w[3] == "abandon"
        );
    }

    proptest! {
        /// Changing any byte of the request changes the words (up to the 2^-44 chance of a collision).
        #[test]
        fn any_changed_byte_changes_the_words(payload in proptest::collection::vec(any::<u8>(), 1..300), at in any::<usize>(), flip in 1u8..=255) {
            let mut changed = payload.clone();
            let i = at % changed.len();
            changed[i] ^= flip;
            prop_assert_ne!(read_back_words(&payload), read_back_words(&changed));
        }
    }
}
