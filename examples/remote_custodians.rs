//! Custodians who hold only their key: a request code carries what each needs
//! (signed manifest, key links, their envelope), each approves at home, the
//! requester unseals; then a remote drill proves a share without revealing it.
//!
//! Run: `cargo run --release --example remote_custodians`

use breakglass::crypto::{CustodianIdentity, CustodianRecipient, Passphrase};
use breakglass::remote::ParsedRequest;
use breakglass::vault::{
    check_request, ApproveInput, ApproverKey, CustodianSpec, Deposit, InitOptions, Quiet,
    RecipientSpec, RemoteApprovals, SecretKind, SecretValue, UnsealPrompt, UnsealRequest,
};
use breakglass::{Access, Vault};

struct NoPrompt;
impl breakglass::vault::KdfProgress for NoPrompt {}
impl UnsealPrompt for NoPrompt {
    fn passphrase(&mut self, _custodian: &str, _still_needed: usize) -> Option<Passphrase> {
        None
    }
}

/// A custodian at home: only their key and the pasted code. Everything is
/// checked before the words are compared.
fn custodian_approves(
    name: &str,
    key: CustodianIdentity,
    code: &str,
    heard_words: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let request = ParsedRequest::parse(code)?;
    let checked = check_request(
        ApproveInput {
            request: &request,
            key: ApproverKey::Identities(vec![(format!("{name}.key"), vec![key])]),
            envelope: None,
            pin: None,
        },
        None,
        &mut Quiet,
    )?;
    let approval = checked.approve(heard_words)?;
    checked.remember()?;
    println!("   {name}: checked the request, words match, approval sent back");
    Ok(approval.code)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("vault.db");
    std::env::set_var("BREAKGLASS_STATE_DIR", dir.path().join("state"));
    let names = ["alice", "bob", "carol"];
    let mut keys = Vec::new();
    let mut custodians = Vec::new();
    for name in names {
        let (identity, _) = CustodianIdentity::generate_age();
        custodians.push(CustodianSpec {
            name: name.into(),
            recipient: RecipientSpec::PublicKey(CustodianRecipient::parse_public_key(
                &identity.recipient().unwrap(),
            )?),
        });
        keys.push(identity);
    }
    let options = InitOptions {
        threshold: 2,
        custodians,
        passphrases: vec![],
        insecure_test_only_kdf: false,
        alerts: vec![],
    };
    let mut vault = Vault::create(&path, options, "admin@laptop", &mut Quiet)?;
    vault.put(
        Deposit {
            name: "vpn-breakglass".into(),
            kind: SecretKind::Password,
            username: Some("bg-admin".into()),
            url: None,
            note: None,
            value: SecretValue::new(b"remote-demo-password".to_vec()),
            apply: None,
            policy: Default::default(),
            rotator: None,
        },
        "admin@laptop",
    )?;

    println!("1. the requester makes a request (one code, six words)");
    let issued =
        vault.create_request("Duo outage", chrono::Duration::hours(2), "oncall@jump", &[])?;
    println!(
        "   {} characters; words: {}",
        issued.code_length,
        issued.words.join(" ")
    );

    println!("2. two custodians approve from home with only their key");
    let words = issued.words.join(" ");
    let mut keys = keys.into_iter();
    let alice = custodian_approves("alice", keys.next().unwrap(), &issued.code, &words)?;
    let bob = custodian_approves("bob", keys.next().unwrap(), &issued.code, &words)?;

    println!("3. the requester unseals with the approvals");
    let mut vault = Vault::open(&path, Access::ReadWrite)?;
    let handed_back = ParsedRequest::parse(&issued.code)?;
    let remote = RemoteApprovals::open(
        &handed_back,
        "request code",
        vec![("alice".into(), alice), ("bob".into(), bob)],
    )?;
    let report = vault.unseal(
        UnsealRequest {
            reason: String::new(),
            actor: "oncall@jump".into(),
            identities: vec![],
            passphrases: vec![],
            reveal: vec!["vpn-breakglass".into()],
            remote: Some(remote),
            no_rekey: false,
            one_code: false,
            endorse: vault.unendorsed()?,
        },
        &mut NoPrompt,
    )?;
    for secret in &report.revealed {
        println!(
            "   {}: {}",
            secret.name,
            String::from_utf8_lossy(secret.value.expose_secret())
        );
    }
    println!(
        "   unsealed epoch {}; now at epoch {}: the next request carries the new envelopes",
        report.epoch,
        report.new_epoch.unwrap_or(report.epoch)
    );

    println!("4. a remote drill: carol proves her share without revealing it");
    let mut vault = Vault::open(&path, Access::ReadWrite)?;
    let challenge = vault.create_drill_challenge(chrono::Duration::hours(24), "admin@laptop")?;
    let parsed = ParsedRequest::parse_challenge(&challenge.code)?;
    let checked = check_request(
        ApproveInput {
            request: &parsed,
            key: ApproverKey::Identities(vec![("carol.key".into(), vec![keys.next().unwrap()])]),
            envelope: None,
            pin: None,
        },
        None,
        &mut Quiet,
    )?;
    let proof = checked.prove()?;
    let checks = vault.check_drill_proofs(&[("carol".into(), proof.code())], "admin@laptop")?;
    println!(
        "   carol: {}",
        if checks[0].passed { "pass" } else { "FAIL" }
    );
    Ok(())
}
