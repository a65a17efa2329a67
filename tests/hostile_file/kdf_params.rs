//! See tests/hostile_file.rs. Argon2id costs in a hostile file (issue 12, §3):
//! a passphrase custodian's KDF parameters live in the signed manifest, so a
//! file that raises them above the cap (to make the machine derive with
//! 100 GiB) or lowers them below the floor (to make guessing cheap) is refused
//! by its manifest signature, before any derivation, and the refusal names
//! the manifest. (Parameters that arrive outside a signed manifest, in
//! enrolment codes, are refused by custodian and parameter in
//! tests/enrolment.rs; `KdfParams::check` and `unseal::derive` by unit tests.)

use std::time::{Duration, Instant};

use crate::support::{one_line_error, Kit};

/// A 2-of-2 test-only vault: alice (age key) and pat (passphrase, cheap KDF).
fn passphrase_kit() -> Kit {
    let kit = Kit::new(&["alice"]);
    std::fs::write(kit.path("p"), "pat's passphrase\n").unwrap();
    kit.bg()
        .args(["init", "--threshold", "2", "--insecure-test-only-kdf"])
        .arg("--custodian")
        .arg(format!("alice={}", kit.public("alice")))
        .args(["--custodian", "pat=passphrase", "--passphrase-file"])
        .arg(format!("pat={}", kit.path("p").display()))
        .assert()
        .success();
    kit
}

/// Rewrite pat's KDF parameters (and, optionally, the test-only flag) in
/// every stored manifest, as someone with write access to the file would.
/// An edit of one custodian's `kdf.params` object.
type Edit = dyn Fn(&mut serde_json::Value);

fn edit_manifests(kit: &Kit, edit: &Edit) {
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT epoch, body FROM manifests")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (epoch, body) in rows {
        let mut manifest: serde_json::Value = serde_json::from_str(&body).unwrap();
        for custodian in manifest["custodians"].as_array_mut().unwrap() {
            if custodian["name"] == "pat" {
                edit(&mut custodian["kdf"]["params"]);
            }
        }
        let body = serde_json::to_string(&manifest).unwrap();
        conn.execute(
            "UPDATE manifests SET body = ?1 WHERE epoch = ?2",
            rusqlite::params![body, epoch],
        )
        .unwrap();
    }
}

#[test]
fn kdf_costs_edited_in_the_file_are_refused_by_the_manifest_signature() {
    let cases: [(&str, &Edit); 6] = [
        ("m above the cap (100 GiB)", &|p| {
            p["m_kib"] = (100u64 << 20).into()
        }),
        ("t above the cap", &|p| p["t"] = u32::MAX.into()),
        ("p above the cap", &|p| p["p"] = 65.into()),
        ("m below the floor", &|p| p["m_kib"] = 8.into()),
        ("t of zero", &|p| p["t"] = 0.into()),
        ("p of zero", &|p| p["p"] = 0.into()),
    ];
    let mut refused = 0;
    for (what, edit) in cases {
        let kit = passphrase_kit();
        edit_manifests(&kit, edit);
        let before = kit.vault_bytes();
        for command in ["unseal", "drill"] {
            let mut cmd = kit.bg();
            cmd.arg(command);
            if command == "unseal" {
                cmd.args(["--reason", "hostile kdf"])
                    .arg("--identity")
                    .arg(kit.key("alice"));
            }
            cmd.arg("--passphrase-file")
                .arg(format!("pat={}", kit.path("p").display()));
            let started = Instant::now();
            let out = cmd.output().unwrap();
            let took = started.elapsed();
            let err = one_line_error(&out);
            assert!(
                err.contains("manifest") && err.contains("signature"),
                "{what}, {command}: the refusal names the manifest's signature: {err}"
            );
            assert!(
                !err.contains("Argon2id"),
                "{what}, {command}: refused before any derivation: {err}"
            );
            assert!(
                took < Duration::from_secs(30),
                "{what}, {command}: refused at once, not after a derivation ({took:?})"
            );
            assert_eq!(
                kit.vault_bytes(),
                before,
                "{what}, {command}: nothing written"
            );
            refused += 1;
        }
    }
    assert_eq!(refused, 12);
}

/// A request code carries its own manifest, checked only against its own
/// signature (the custodian's pin is known only once their key is derived).
/// So an attacker can sign a manifest of their own with any costs: the
/// custodian's `approve` still refuses costs above the cap, or below the floor
/// unless that manifest claims the test-only KDF, naming the custodian and the
/// parameter, before any derivation.
#[test]
fn kdf_costs_in_a_self_signed_request_manifest_are_refused_by_name() {
    use breakglass::crypto::VaultSeed;
    use breakglass::manifest::{self, Manifest};
    use breakglass::remote::ParsedRequest;

    let kit = passphrase_kit();
    let out = kit
        .bg()
        .args(["request", "--reason", "hostile kdf", "--json", "--out"])
        .arg(kit.path("request.txt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = std::fs::read_to_string(kit.path("request.txt")).unwrap();
    let home = kit.path("home-pat");
    std::fs::create_dir(&home).unwrap();
    std::fs::copy(kit.path("p"), home.join("p")).unwrap();

    let cases: [(&str, bool, &Edit, &str); 3] = [
        (
            "above the cap",
            true,
            &|p| p["m_kib"] = (100u64 << 20).into(),
            "m=104857600 KiB > 4194304 KiB",
        ),
        (
            "t above the cap",
            true,
            &|p| p["t"] = 1000.into(),
            "t=1000 > 64",
        ),
        (
            "below the floor",
            false,
            &|p| p["m_kib"] = 64.into(),
            "m=64 KiB < 19456 KiB",
        ),
    ];
    for (what, test_only, edit, named) in cases {
        let parsed = ParsedRequest::parse(code.trim()).unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&parsed.manifest.body).unwrap();
        for custodian in value["custodians"].as_array_mut().unwrap() {
            if custodian["name"] == "pat" {
                edit(&mut custodian["kdf"]["params"]);
            }
        }
        let mut m: Manifest = serde_json::from_value(value).unwrap();
        m.insecure_test_only_kdf = test_only;
        // The attacker's own key signs it, as the genesis key of "their" vault.
        let keys = VaultSeed::generate().derive_keys();
        m.verify_key = keys.verify_key().to_hex();
        m.genesis_verify_key = m.verify_key.clone();
        m.epoch_link = None;
        let signed = manifest::sign(m, &keys, None);
        let mut request = parsed.request.clone();
        request.fingerprint = signed.manifest.fingerprint();
        let mut section = parsed.manifest.clone();
        section.body = signed.body.clone();
        section.signatures = signed.to_row().signatures;
        section.links.clear();
        let forged = ParsedRequest::new(request, section, parsed.envelopes.clone()).unwrap();
        std::fs::write(home.join("request.txt"), &forged.code).unwrap();
        let words = forged.words().unwrap().join(" ");
        let started = Instant::now();
        let out = crate::support::bg_without_vault(&home)
            .args([
                "approve",
                "--request",
                "request.txt",
                "--passphrase-file",
                "pat=p",
            ])
            .args(["--out", "a.txt", "--words", &words])
            .output()
            .unwrap();
        let err = one_line_error(&out);
        assert!(
            err.contains("custodian pat: Argon2id parameters") && err.contains(named),
            "{what}: want the custodian and {named:?} named: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: refused at once"
        );
        assert!(!home.join("a.txt").exists(), "{what}: no approval written");
    }
}
