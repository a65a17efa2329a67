//! Our one wrapper around Shamir over GF(256) (`vsss-rs`, constant time).
//! It adds what the crate lacks: a fixed share length, a never-zero index,
//! a 2 ≤ K ≤ N ≤ 255 rule, duplicate rejection and per-share commitments.

use std::fmt;

use vsss_rs::Gf256;
use zeroize::{Zeroize, Zeroizing};

use super::keys::VaultSeed;

/// Bytes in one share: the index byte plus 32 bytes of the split seed.
pub const SHARE_LEN: usize = 33;
const COMMITMENT_LABEL: &[u8] = b"breakglass/v1/share-commitment";

/// One custodian's share of the vault seed. Secret: no Clone, redacted Debug.
pub struct Share(Zeroizing<Vec<u8>>);

impl Share {
    /// Parse a share, checking its length and that its index is not zero.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == SHARE_LEN && bytes[0] != 0).then(|| Self(Zeroizing::new(bytes.to_vec())))
    }

    /// The share index (x coordinate), 1..=255.
    pub fn index(&self) -> u8 {
        self.0[0]
    }

    /// The raw share bytes; only for sealing into an envelope.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Share(index {}, [redacted])", self.index())
    }
}

/// Why a split or combine was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    /// K below 2.
    #[error("a threshold of {0} is not a quorum: use at least 2 (1-of-N would let any single custodian open the vault alone)")]
    ThresholdTooLow(usize),
    /// K larger than N.
    #[error("threshold {threshold} is larger than the {custodians} custodians; lower --threshold or add custodians")]
    ThresholdAboveCount {
        /// K asked for.
        threshold: usize,
        /// N custodians.
        custodians: usize,
    },
    /// More than 255 custodians.
    #[error("{0} custodians is more than the 255 that GF(256) shares allow")]
    TooManyCustodians(usize),
    /// Fewer than K shares to combine.
    #[error("{have} shares given but {need} are needed")]
    NotEnoughShares {
        /// Shares given.
        have: usize,
        /// Shares needed (K).
        need: usize,
    },
    /// Two shares with the same index.
    #[error("two shares have the same index {0}")]
    DuplicateIndex(u8),
    /// The shares did not combine into a secret.
    #[error("shares could not be combined")]
    CombineFailed,
}

/// Split the seed K-of-N. Share `i` (0-based) has index `i + 1`.
pub fn split(seed: &VaultSeed, threshold: usize, count: usize) -> Result<Vec<Share>, ShamirError> {
    check_threshold(threshold, count)?;
    let mut raw = Gf256::split_array(threshold, count, seed.expose_bytes(), rand::rngs::OsRng)
        .map_err(|_| ShamirError::CombineFailed)?;
    let shares = raw
        .iter()
        .map(|bytes| Share::from_bytes(bytes).ok_or(ShamirError::CombineFailed))
        .collect();
    raw.iter_mut().for_each(|s| s.zeroize());
    shares
}

/// Checks 2 ≤ K ≤ N ≤ 255.
pub fn check_threshold(threshold: usize, count: usize) -> Result<(), ShamirError> {
    if count > 255 {
        return Err(ShamirError::TooManyCustodians(count));
    }
    if threshold < 2 {
        return Err(ShamirError::ThresholdTooLow(threshold));
    }
    if threshold > count {
        return Err(ShamirError::ThresholdAboveCount {
            threshold,
            custodians: count,
        });
    }
    Ok(())
}

/// Combine at least `threshold` distinct shares back into the seed.
/// Callers check each share's commitment first; this only guards the arithmetic.
pub fn combine(shares: &[&Share], threshold: usize) -> Result<VaultSeed, ShamirError> {
    if shares.len() < threshold {
        return Err(ShamirError::NotEnoughShares {
            have: shares.len(),
            need: threshold,
        });
    }
    let mut seen = [false; 256];
    for share in shares {
        let index = share.index();
        if std::mem::replace(&mut seen[index as usize], true) {
            return Err(ShamirError::DuplicateIndex(index));
        }
    }
    let mut raw: Vec<Vec<u8>> = shares.iter().map(|s| s.0.to_vec()).collect();
    let combined = Gf256::combine_array(&raw).map_err(|_| ShamirError::CombineFailed);
    raw.iter_mut().for_each(|s| s.zeroize());
    let mut combined = Zeroizing::new(combined?);
    let bytes: [u8; 32] = combined
        .as_slice()
        .try_into()
        .map_err(|_| ShamirError::CombineFailed)?;
    combined.zeroize();
    Ok(VaultSeed::from_bytes(bytes))
}

/// c_i = SHA-256(label ‖ vault_id ‖ epoch ‖ index ‖ share), hex-encoded.
pub fn commitment(vault_id: &[u8; 16], epoch: u64, share: &Share) -> String {
    hex::encode(super::sha256(&[
        COMMITMENT_LABEL,
        vault_id,
        &epoch.to_be_bytes(),
        &[share.index()],
        share.expose_bytes(),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
        (0u32..(1 << n))
            .filter(|m| m.count_ones() as usize == k)
            .map(|m| (0..n).filter(|i| m & (1 << i) != 0).collect())
            .collect()
    }

    #[test]
    fn refuses_non_quorum_thresholds() {
        let seed = VaultSeed::generate();
        assert_eq!(
            split(&seed, 1, 3).unwrap_err(),
            ShamirError::ThresholdTooLow(1)
        );
        assert!(matches!(
            split(&seed, 4, 3),
            Err(ShamirError::ThresholdAboveCount { .. })
        ));
        assert!(matches!(
            split(&seed, 2, 256),
            Err(ShamirError::TooManyCustodians(256))
        ));
    }

    #[test]
    fn duplicate_share_is_rejected_not_silently_combined() {
        let seed = VaultSeed::generate();
        let shares = split(&seed, 2, 3).unwrap();
        let err = combine(&[&shares[0], &shares[0]], 2).unwrap_err();
        assert_eq!(err, ShamirError::DuplicateIndex(1));
    }

    #[test]
    fn debug_never_shows_share_bytes() {
        let share = Share::from_bytes(&[0xAB; SHARE_LEN]).unwrap();
        let shown = format!("{share:?}");
        assert_eq!(shown, "Share(index 171, [redacted])");
        assert!(!shown.to_lowercase().contains("ab, "));
    }

    #[test]
    fn zero_index_and_wrong_length_are_not_shares() {
        assert!(Share::from_bytes(&[0u8; SHARE_LEN]).is_none());
        assert!(Share::from_bytes(&[1u8; SHARE_LEN - 1]).is_none());
        assert!(Share::from_bytes(&[1u8; SHARE_LEN]).is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Every K-subset rebuilds the seed; every (K-1)-subset is refused.
        #[test]
        fn every_k_subset_combines(seed_bytes in any::<[u8; 32]>(), n in 2usize..=6, k_off in 0usize..5) {
            let k = 2 + k_off % (n - 1);
            let seed = VaultSeed::from_bytes(seed_bytes);
            let shares = split(&seed, k, n).unwrap();
            prop_assert!(shares.iter().all(|s| s.expose_bytes().len() == SHARE_LEN && s.index() != 0));
            for subset in subsets(n, k) {
                let picked: Vec<&Share> = subset.iter().map(|&i| &shares[i]).collect();
                let back = combine(&picked, k).unwrap();
                prop_assert_eq!(back.expose_bytes(), &seed_bytes);
            }
            for subset in subsets(n, k - 1) {
                let picked: Vec<&Share> = subset.iter().map(|&i| &shares[i]).collect();
                let is_short = matches!(combine(&picked, k), Err(ShamirError::NotEnoughShares { .. }));
                prop_assert!(is_short);
            }
        }

        /// Commitments bind vault, epoch and every share byte.
        #[test]
        fn commitment_changes_with_any_input(byte in 1usize..SHARE_LEN, flip in 1u8..=255) {
            let seed = VaultSeed::generate();
            let shares = split(&seed, 2, 2).unwrap();
            let base = commitment(&[1; 16], 1, &shares[0]);
            prop_assert_ne!(&base, &commitment(&[2; 16], 1, &shares[0]));
            prop_assert_ne!(&base, &commitment(&[1; 16], 2, &shares[0]));
            let mut bytes = shares[0].expose_bytes().to_vec();
            bytes[byte] ^= flip;
            let changed = Share::from_bytes(&bytes).unwrap();
            prop_assert_ne!(base, commitment(&[1; 16], 1, &changed));
        }
    }
}
