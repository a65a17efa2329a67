//! Cost of the slow and the hot crypto steps: Argon2id for passphrase custodians
//! (floor, RFC 9106 second recommendation, our default) and Shamir split/combine.
//! Run: `cargo bench --bench kdf`; results are recorded in BENCHMARKS.md.

use std::time::Duration;

use breakglass::crypto::{combine, split, KdfParams, Passphrase, Share, VaultSeed};
use criterion::{criterion_group, criterion_main, Criterion};

fn argon2id(c: &mut Criterion) {
    let mut group = c.benchmark_group("argon2id");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(12));
    let rfc9106_second = KdfParams {
        m_kib: 64 * 1024,
        t: 3,
        p: 4,
    };
    for (label, params) in [
        ("floor_19MiB_t2_p1", KdfParams::FLOOR),
        ("rfc9106_64MiB_t3_p4", rfc9106_second),
        ("default_256MiB_t3_p4", KdfParams::DEFAULT),
    ] {
        let passphrase = Passphrase::new("correct horse battery staple".into());
        group.bench_function(label, |b| {
            b.iter(|| params.derive_identity(&passphrase, &[7u8; 16]).unwrap())
        });
    }
    group.finish();
}

fn shamir(c: &mut Criterion) {
    let seed = VaultSeed::generate();
    c.bench_function("shamir_split_3_of_5", |b| {
        b.iter(|| split(&seed, 3, 5).unwrap())
    });
    let shares = split(&seed, 3, 5).unwrap();
    let picked: Vec<&Share> = shares.iter().take(3).collect();
    c.bench_function("shamir_combine_3_and_derive_keys", |b| {
        b.iter(|| combine(&picked, 3).unwrap().derive_keys())
    });
}

criterion_group!(benches, argon2id, shamir);
criterion_main!(benches);
