//! Cost of a deposit as the vault grows: `put` (and `rotate` without a hook)
//! must cost the same at 10 and at 10,000 secrets. Measured through the
//! library, on its own and as the binary's command does it (open read-write,
//! put, then open again and deliver queued alerts).
//!
//! Each iteration deposits a new version of an existing secret (or rotates
//! one), so the vault keeps exactly 10 or 10,000 secrets while the log, the
//! versions and the alert history grow under the benchmark: a cost that
//! followed any of them would show too.
//! Run: `cargo bench --bench deposit`; results are recorded in BENCHMARKS.md.
//!
//! The vaults live on tmpfs (`/dev/shm`) when the machine has it, so that
//! the figures show what grows with the vault rather than the disk's fsync
//! latency (every commit is `synchronous=FULL`; on a disk that adds a
//! constant per command).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use breakglass::crypto::{CustodianIdentity, CustodianRecipient};
use breakglass::vault::{
    CustodianSpec, Deposit, InitOptions, NewValue, Quiet, RecipientSpec, RotateRequest, SecretKind,
    SecretValue, UnsealRequest,
};
use breakglass::{Access, Vault};
use criterion::{criterion_group, criterion_main, Criterion};

fn deposit(name: String) -> Deposit {
    Deposit {
        name,
        kind: SecretKind::Password,
        username: Some("admin".into()),
        url: None,
        note: None,
        value: SecretValue::new(b"correct horse battery staple".to_vec()),
        apply: None,
        policy: Default::default(),
        rotator: None,
    }
}

fn name(i: usize) -> String {
    format!("secret-{i:05}")
}

/// The stored apply hook of `secret-00000`, endorsed by a quorum session.
const HOOK: &str = "cat > /dev/null";

/// A 2-of-2 vault (age keys) holding `secrets` secrets, one version each;
/// `secret-00000` has a stored apply hook, endorsed by a quorum session.
fn vault_with(path: &Path, secrets: usize) {
    let identities: Vec<CustodianIdentity> = (0..2)
        .map(|_| CustodianIdentity::generate_age().0)
        .collect();
    let custodians = identities
        .iter()
        .enumerate()
        .map(|(i, identity)| CustodianSpec {
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
    for i in 0..secrets {
        let mut d = deposit(name(i));
        if i == 0 {
            d.apply = Some(HOOK.into());
        }
        vault.put(d, "bench").unwrap();
    }
    let endorse = vault.unendorsed().unwrap();
    vault
        .unseal(
            UnsealRequest {
                reason: "bench: endorse the deposits".into(),
                actor: "bench".into(),
                identities: identities
                    .into_iter()
                    .enumerate()
                    .map(|(i, id)| (format!("custodian{i}"), vec![id]))
                    .collect(),
                passphrases: vec![],
                reveal: vec![],
                remote: None,
                no_rekey: true,
                one_code: false,
                endorse,
            },
            &mut NoPrompt,
        )
        .unwrap();
}

struct NoPrompt;
impl breakglass::vault::KdfProgress for NoPrompt {}
impl breakglass::vault::UnsealPrompt for NoPrompt {
    fn passphrase(
        &mut self,
        _custodian: &str,
        _still_needed: usize,
    ) -> Option<breakglass::crypto::Passphrase> {
        None
    }
}

fn scratch_dir() -> tempfile::TempDir {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn deposits(c: &mut Criterion) {
    let dir = scratch_dir();
    std::env::set_var("BREAKGLASS_STATE_DIR", dir.path().join("state"));
    let mut group = c.benchmark_group("deposit");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for secrets in [10, 10_000] {
        let path = dir.path().join(format!("vault-{secrets}.db"));
        vault_with(&path, secrets);
        // Each iteration deposits a new version of an existing secret, so the
        // number of secrets stays exactly `secrets` however long it runs.
        let mut round = 0;
        let mut vault = Vault::open(&path, Access::ReadWrite).unwrap();
        group.bench_function(format!("put_{secrets}_secrets"), |b| {
            b.iter(|| {
                round += 1;
                black_box(vault.put(deposit(name(round % secrets)), "bench").unwrap())
            })
        });
        group.bench_function(format!("rotate_{secrets}_secrets"), |b| {
            b.iter(|| {
                round += 1;
                black_box(
                    vault
                        .rotate(RotateRequest {
                            name: name(round % secrets),
                            value: NewValue::Given(SecretValue::new(b"rotated value".to_vec())),
                            apply: None,
                            policy: Default::default(),
                            actor: "bench".into(),
                            trust_hook: false,
                            confirmed_hook: None,
                            credentials: None,
                            confirmed_rotator: None,
                            rotator: None,
                        })
                        .unwrap(),
                )
            })
        });
        // A rotation whose stored hook a quorum endorsed: the hook is judged
        // from the newest checkpoint alone, not by verifying the whole log.
        group.bench_function(format!("rotate_endorsed_hook_{secrets}_secrets"), |b| {
            b.iter(|| {
                black_box(
                    vault
                        .rotate(RotateRequest {
                            name: name(0),
                            value: NewValue::Given(SecretValue::new(b"rotated value".to_vec())),
                            apply: None,
                            policy: Default::default(),
                            actor: "bench".into(),
                            trust_hook: false,
                            confirmed_hook: None,
                            credentials: None,
                            confirmed_rotator: None,
                            rotator: None,
                        })
                        .unwrap(),
                )
            })
        });
        drop(vault);
        // What `breakglass put` does besides parsing and reading the value.
        group.bench_function(format!("put_command_{secrets}_secrets"), |b| {
            b.iter(|| {
                round += 1;
                let mut vault = Vault::open(&path, Access::ReadWrite).unwrap();
                vault.put(deposit(name(round % secrets)), "bench").unwrap();
                drop(vault);
                let mut vault = Vault::open(&path, Access::ReadWrite).unwrap();
                black_box(vault.deliver_alerts(false).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, deposits);
criterion_main!(benches);
