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
