//! Cost of reading a vault whose log has grown: `list`, `status` and `unseal`
//! re-verify the hash chain and every checkpoint signature to know which
//! deposits a quorum endorsed. Logs of 100 and 1000 quorum sessions.
//! Run: `cargo bench --bench audit`; results are recorded in BENCHMARKS.md.

use std::hint::black_box;

use age::secrecy::ExposeSecret;
use std::path::Path;
use std::time::Duration;

use breakglass::crypto::{CustodianIdentity, CustodianRecipient, Passphrase};
use breakglass::vault::{
    CustodianSpec, Deposit, InitOptions, Quiet, RecipientSpec, SecretKind, SecretValue,
    UnsealPrompt, UnsealRequest,
};
use breakglass::{Access, Vault};
use criterion::{criterion_group, criterion_main, Criterion};

struct NoPrompt;
impl breakglass::vault::KdfProgress for NoPrompt {}
impl UnsealPrompt for NoPrompt {
    fn passphrase(&mut self, _custodian: &str, _still_needed: usize) -> Option<Passphrase> {
        None
    }
}

/// A 2-of-2 vault where each of `sessions` rounds deposits a secret and then
/// opens a quorum session (an unseal revealing nothing), which signs a checkpoint.
fn grown_vault(path: &Path, sessions: usize) {
    let keys: Vec<(CustodianIdentity, age::secrecy::SecretString)> =
        (0..2).map(|_| CustodianIdentity::generate_age()).collect();
    let custodians = keys
        .iter()
        .enumerate()
        .map(|(i, (identity, _))| CustodianSpec {
            name: format!("custodian{i}"),
            recipient: RecipientSpec::PublicKey(
                CustodianRecipient::parse_public_key(&identity.recipient().unwrap()).unwrap(),
            ),
        })
        .collect();
    let options = InitOptions {
        threshold: 2,
        custodians,
        passphrases: vec![],
        insecure_test_only_kdf: false,
        alerts: vec![],
    };
    let mut vault = Vault::create(path, options, "bench", &mut Quiet).unwrap();
    for round in 0..sessions {
        vault
            .put(
                Deposit {
                    name: format!("secret{}", round % 20),
                    kind: SecretKind::Password,
                    username: None,
                    url: None,
                    note: None,
                    value: SecretValue::new(b"bench value".to_vec()),
                    apply: None,
                    policy: Default::default(),
                    rotator: None,
                },
                "bench",
            )
            .unwrap();
        vault
            .unseal(
                UnsealRequest {
                    reason: "bench".into(),
                    actor: "bench".into(),
                    // Identities are not Clone (they hold secrets): parse them afresh.
                    identities: keys
                        .iter()
                        .map(|(_, text)| {
                            let parsed =
                                CustodianIdentity::parse_file(text.expose_secret().as_bytes())
                                    .unwrap();
                            ("key".to_string(), parsed)
                        })
                        .collect(),
                    passphrases: vec![],
                    reveal: vec![],
                    remote: None,
                    endorse: Default::default(),
                    no_rekey: false,
                    one_code: false,
                },
                &mut NoPrompt,
            )
            .unwrap();
    }
}

fn grown_log(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("BREAKGLASS_STATE_DIR", dir.path().join("state"));
    let mut group = c.benchmark_group("grown_log");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    for sessions in [100, 1000] {
        let path = dir.path().join(format!("vault-{sessions}.db"));
        grown_vault(&path, sessions);
        let vault = Vault::open(&path, Access::ReadOnly).unwrap();
        group.bench_function(format!("verify_audit_{sessions}_sessions"), |b| {
            b.iter(|| black_box(vault.verify_audit().unwrap()))
        });
        group.bench_function(format!("list_{sessions}_sessions"), |b| {
            b.iter(|| black_box(vault.list().unwrap()))
        });
        group.bench_function(format!("open_and_status_{sessions}_sessions"), |b| {
            b.iter(|| {
                let vault = Vault::open(&path, Access::ReadOnly).unwrap();
                black_box(vault.status().unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, grown_log);
criterion_main!(benches);
