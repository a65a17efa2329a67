//! Cost of the slow and the hot crypto steps: Argon2id for passphrase custodians
//! (floor, RFC 9106 second recommendation, our default) and Shamir split/combine.
//! Run: `cargo bench --bench kdf`; results are recorded in BENCHMARKS.md.
//!
//! Every group uses 10 samples and a bounded measurement time so that the whole run
//! stays around a minute and a half on a 2-core machine.

use std::hint::black_box;
use std::time::Duration;

use breakglass::crypto::{combine, split, KdfParams, Passphrase, Share, VaultSeed};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};

/// RFC 9106 §4, second recommended option: 64 MiB, 3 passes, 4 lanes.
const RFC9106_SECOND: KdfParams = KdfParams {
    m_kib: 64 * 1024,
    t: 3,
    p: 4,
};

fn argon2id(c: &mut Criterion) {
    let mut group = c.benchmark_group("argon2id");
    // One derivation takes from tens of milliseconds to about a second; flat sampling
    // keeps the number of iterations (and the run time) predictable for the slow ones.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(12));
    let salt = [7u8; 16];
    for (label, params) in [
        ("floor_19MiB_t2_p1", KdfParams::FLOOR),
        ("rfc9106_64MiB_t3_p4", RFC9106_SECOND),
        ("default_256MiB_t3_p4", KdfParams::DEFAULT),
    ] {
        let passphrase = Passphrase::new("correct horse battery staple".into());
        group.bench_function(label, |b| {
            b.iter(|| {
                params
                    .derive_identity(black_box(&passphrase), black_box(&salt))
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn shamir(c: &mut Criterion) {
    let mut group = c.benchmark_group("shamir");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let seed = VaultSeed::generate();
    group.bench_function("split_32B_3_of_5", |b| {
        b.iter(|| split(black_box(&seed), 3, 5).unwrap())
    });
    let shares = split(&seed, 3, 5).unwrap();
    let picked: Vec<&Share> = shares.iter().take(3).collect();
    group.bench_function("combine_3_of_5", |b| {
        b.iter(|| combine(black_box(&picked), 3).unwrap())
    });
    group.bench_function("split_combine_3_of_5", |b| {
        b.iter(|| {
            let shares = split(black_box(&seed), 3, 5).unwrap();
            let picked: Vec<&Share> = shares.iter().take(3).collect();
            combine(&picked, 3).unwrap()
        })
    });
    group.bench_function("derive_keys", |b| b.iter(|| black_box(&seed).derive_keys()));
    group.bench_function("combine_3_and_derive_keys", |b| {
        b.iter(|| combine(black_box(&picked), 3).unwrap().derive_keys())
    });
    group.finish();
}

criterion_group!(benches, argon2id, shamir);
criterion_main!(benches);
