//! The main job on a throwaway demo vault: init 3-of-5 → deposit → unseal with
//! three custodians → reveal → audit verify, printing each step.
//!
//! Run: `cargo run --release --example outage_demo`

use breakglass::crypto::{CustodianIdentity, CustodianRecipient, Passphrase};
use breakglass::vault::{
    CustodianSpec, Deposit, InitOptions, Quiet, RecipientSpec, SecretKind, SecretValue,
    UnsealPrompt, UnsealRequest,
};
use breakglass::{Access, Vault};

/// The demo never prompts: every share comes from a key given up front.
struct NoPrompt;
impl breakglass::vault::KdfProgress for NoPrompt {}
impl UnsealPrompt for NoPrompt {
    fn passphrase(&mut self, _custodian: &str, _still_needed: usize) -> Option<Passphrase> {
        None
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("demo-vault.db");
    // Keep this demo's per-machine state (vault pins) in the throwaway directory too.
    std::env::set_var("BREAKGLASS_STATE_DIR", dir.path().join("state"));
    let names = ["alice", "bob", "carol", "dave", "erin"];

    // Each custodian has their own age key; in real life it never leaves their laptop.
    let mut identities = Vec::new();
    let mut custodians = Vec::new();
    for name in names {
        let (identity, _secret_text) = CustodianIdentity::generate_age();
        let recipient = CustodianRecipient::parse_public_key(&identity.recipient().unwrap())?;
        custodians.push(CustodianSpec {
            name: name.into(),
            recipient: RecipientSpec::PublicKey(recipient),
        });
        identities.push((name, identity));
    }

    println!("1. init: 3-of-5 vault for {}", names.join(", "));
    let options = InitOptions {
        threshold: 3,
        custodians,
        passphrases: vec![],
        insecure_test_only_kdf: false,
        alerts: vec![],
    };
    let mut vault = Vault::create(&path, options, "demo-admin@laptop", &mut Quiet)?;
    println!("   fingerprint {}", vault.fingerprint());

    println!("2. deposit: an admin stores the VPN break-glass account (no quorum needed)");
    let version = vault.put(
        Deposit {
            name: "vpn-breakglass".into(),
            kind: SecretKind::Password,
            username: Some("bg-admin".into()),
            url: Some("https://vpn.example.com/admin".into()),
            note: Some("AnyConnect local account; bypasses Duo".into()),
            value: SecretValue::new(b"correct-horse-battery-staple".to_vec()),
            apply: None,
            policy: Default::default(),
            rotator: None,
        },
        "demo-admin@laptop",
    )?;
    println!("   vpn-breakglass version {version} sealed to the vault key");

    println!("3. outage: Duo is down; alice, carol and erin bring their keys");
    let mut vault = Vault::open(&path, Access::ReadWrite)?;
    let chosen: Vec<_> = identities
        .into_iter()
        .filter(|(name, _)| ["alice", "carol", "erin"].contains(name))
        .map(|(name, identity)| (format!("{name}'s key"), vec![identity]))
        .collect();
    // The quorum endorses what the admin deposited (the CLI lists it and asks).
    let endorse = vault.unendorsed()?;
    let report = vault.unseal(
        UnsealRequest {
            reason: "Duo outage: VPN fails closed".into(),
            actor: "oncall@laptop".into(),
            identities: chosen,
            passphrases: vec![],
            reveal: vec!["vpn-breakglass".into()],
            remote: None,
            no_rekey: false,
            one_code: false,
            endorse,
        },
        &mut NoPrompt,
    )?;
    println!(
        "   unsealed epoch {} with {}",
        report.epoch,
        report.custodians.join(", ")
    );

    println!("4. reveal (logged before it is shown):");
    for secret in &report.revealed {
        println!(
            "   {} (user {}): {}",
            secret.name,
            secret.username.as_deref().unwrap_or("-"),
            String::from_utf8_lossy(secret.value.expose_secret())
        );
    }

    println!("5. audit verify: an auditor checks the log without any key");
    let auditor_view = Vault::open(&path, Access::ReadOnly)?;
    for entry in auditor_view.audit_log()?.entries {
        println!(
            "   #{} {:<7} {:<18} by {} {}",
            entry.seq, entry.action, entry.subject, entry.actor, entry.reason
        );
    }
    let verdict = auditor_view.verify_audit()?;
    println!(
        "   {} entries, chain {}, signed by the vault key through entry {}",
        verdict.entries,
        if verdict.ok { "intact" } else { "BROKEN" },
        verdict.signed_through.unwrap_or(0)
    );
    if !verdict.ok {
        return Err("audit chain broken".into());
    }
    // The quorum session signed its final head: keep this line outside the vault.
    println!("   anchor: {}", auditor_view.audit_anchor()?);
    Ok(())
}
