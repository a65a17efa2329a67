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
    split_with(seed, threshold, count, rand::rngs::OsRng)
}

/// `split` with the polynomial coefficients drawn from a seeded RNG: the
/// test vectors' deterministic path, compiled into test builds only.
#[cfg(test)]
pub(crate) fn split_seeded(
    seed: &VaultSeed,
    threshold: usize,
    count: usize,
    rng: &mut rand_chacha::ChaCha20Rng,
) -> Result<Vec<Share>, ShamirError> {
    split_with(seed, threshold, count, rng)
}

fn split_with(
    seed: &VaultSeed,
    threshold: usize,
    count: usize,
    rng: impl rand::RngCore + rand::CryptoRng,
) -> Result<Vec<Share>, ShamirError> {
    check_threshold(threshold, count)?;
    let mut raw = Gf256::split_array(threshold, count, seed.expose_bytes(), rng)
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
    use std::sync::atomic::{AtomicUsize, Ordering};

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

    /// The shares in `picked` (positions into `shares`) rebuild `seed`.
    fn opens(shares: &[Share], picked: &[usize], k: usize, seed: &[u8; 32]) -> bool {
        let picked: Vec<&Share> = picked.iter().map(|&i| &shares[i]).collect();
        matches!(combine(&picked, k), Ok(back) if back.expose_bytes() == seed)
    }

    /// `picked` holds K-1 shares. "Does not open" is checked two ways: the
    /// wrapper refuses them (`NotEnoughShares`), and the raw interpolation of
    /// those K-1 points (the guard bypassed by claiming a threshold of K-1)
    /// gives something other than the seed. For a degree K-1 polynomial, K-1
    /// points match the seed by chance with probability 2^-256 per subset.
    fn stays_shut(shares: &[Share], picked: &[usize], k: usize, seed: &[u8; 32]) -> bool {
        let picked: Vec<&Share> = picked.iter().map(|&i| &shares[i]).collect();
        let refused = matches!(
            combine(&picked, k),
            Err(ShamirError::NotEnoughShares { have, need }) if have == k - 1 && need == k
        );
        let interpolated = combine(&picked, k - 1);
        refused && !matches!(interpolated, Ok(back) if back.expose_bytes() == seed)
    }

    /// Case counts for the two Shamir properties. The defaults keep `cargo
    /// test` (unoptimised, in CI) short: 1,000 small-N cases and 8 large-N
    /// ones, since a 255-share combine costs about 0.1 s unoptimised. The
    /// figure of at least 10,000 cases comes from the long run, which sets
    /// `PROPTEST_CASES` for both (see SECURITY.md, "Shamir and KDF figures").
    fn cases(default: u32) -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// Running totals of one property: cases, K-subsets opened, (K-1)-subsets
    /// kept shut. The last case prints them (`--nocapture` shows the figure).
    struct Tally {
        cases: AtomicUsize,
        opened: AtomicUsize,
        shut: AtomicUsize,
    }

    impl Tally {
        const fn new() -> Self {
            Self {
                cases: AtomicUsize::new(0),
                opened: AtomicUsize::new(0),
                shut: AtomicUsize::new(0),
            }
        }

        fn add(&self, what: &str, of: u32, opened: usize, shut: usize) {
            let opened = self.opened.fetch_add(opened, Ordering::Relaxed) + opened;
            let shut = self.shut.fetch_add(shut, Ordering::Relaxed) + shut;
            let cases = self.cases.fetch_add(1, Ordering::Relaxed) + 1;
            if cases == of as usize {
                eprintln!("Shamir {what}: {cases} cases, {opened} K-subsets opened, {shut} (K-1)-subsets stayed shut");
            }
        }
    }

    static SMALL_N: Tally = Tally::new();
    static LARGE_N: Tally = Tally::new();

    const SMALL_N_CASES: u32 = 1_000;
    const LARGE_N_CASES: u32 = 8;

    /// N up to this bound: every K-subset and every (K-1)-subset is tried.
    const EXHAUSTIVE_MAX_N: usize = 9;
    /// Above it: this many random K-subsets and as many (K-1)-subsets per case,
    /// plus the lowest-indexed and highest-indexed K and K-1 shares.
    const SAMPLED_SUBSETS: usize = 4;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(SMALL_N_CASES)))]

        /// 2 ≤ K ≤ N ≤ 9: every K-subset rebuilds the seed, every
        /// (K-1)-subset stays shut (all C(N,K) + C(N,K-1) subsets, exhaustively).
        #[test]
        fn every_k_subset_opens_and_no_smaller_one_does_small_n(
            seed_bytes in any::<[u8; 32]>(),
            (n, k) in (2usize..=EXHAUSTIVE_MAX_N).prop_flat_map(|n| (Just(n), 2usize..=n)),
        ) {
            let seed = VaultSeed::from_bytes(seed_bytes);
            let shares = split(&seed, k, n).unwrap();
            prop_assert_eq!(shares.len(), n);
            prop_assert!(shares.iter().enumerate().all(|(i, s)| s.expose_bytes().len() == SHARE_LEN && usize::from(s.index()) == i + 1));
            let (with_k, with_k_minus_1) = (subsets(n, k), subsets(n, k - 1));
            for subset in &with_k {
                prop_assert!(opens(&shares, subset, k, &seed_bytes), "K={} N={} {:?} did not open", k, n, subset);
            }
            for subset in &with_k_minus_1 {
                prop_assert!(stays_shut(&shares, subset, k, &seed_bytes), "K={} N={} {:?} opened", k, n, subset);
            }
            SMALL_N.add("2 ≤ K ≤ N ≤ 9, all subsets", cases(SMALL_N_CASES), with_k.len(), with_k_minus_1.len());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(LARGE_N_CASES)))]

        /// 10 ≤ N ≤ 255 (N = 255 and the edges K = 2, K = N drawn often):
        /// C(N,K) is far too many to try, so "every" is sampled: random
        /// K-subsets and (K-1)-subsets in random order, plus the first and last
        /// K and K-1 shares by index (so index 255 is always used when N = 255).
        #[test]
        fn every_k_subset_opens_and_no_smaller_one_does_large_n(
            seed_bytes in any::<[u8; 32]>(),
            (n, k) in prop_oneof![Just(255usize), (EXHAUSTIVE_MAX_N + 1)..=255usize]
                .prop_flat_map(|n| (Just(n), prop_oneof![Just(2usize), Just(n), 2usize..=n])),
            pick_seed in any::<u64>(),
        ) {
            use rand::{seq::index::sample, SeedableRng};
            let seed = VaultSeed::from_bytes(seed_bytes);
            let shares = split(&seed, k, n).unwrap();
            prop_assert_eq!(shares.len(), n);
            prop_assert!(shares.iter().enumerate().all(|(i, s)| s.expose_bytes().len() == SHARE_LEN && usize::from(s.index()) == i + 1));
            let mut rng = rand::rngs::StdRng::seed_from_u64(pick_seed);
            let mut with_k = vec![(0..k).collect::<Vec<_>>(), (n - k..n).rev().collect()];
            let mut with_k_minus_1 = vec![(0..k - 1).collect::<Vec<_>>(), (n + 1 - k..n).collect()];
            for _ in 0..SAMPLED_SUBSETS {
                with_k.push(sample(&mut rng, n, k).into_vec());
                with_k_minus_1.push(sample(&mut rng, n, k - 1).into_vec());
            }
            for subset in &with_k {
                prop_assert!(opens(&shares, subset, k, &seed_bytes), "K={} N={} {:?} did not open", k, n, subset);
            }
            for subset in &with_k_minus_1 {
                prop_assert!(stays_shut(&shares, subset, k, &seed_bytes), "K={} N={} {:?} opened", k, n, subset);
            }
            LARGE_N.add("10 ≤ N ≤ 255, sampled subsets", cases(LARGE_N_CASES), with_k.len(), with_k_minus_1.len());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

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
