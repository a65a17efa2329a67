//! Passphrase custodians enrol from home: `custodian enroll` on their own machine
//! prints a public BGENR1 code; the admin gives it to `init` or `rekey`; the
//! custodian then opens their share with the passphrase that never left home.

mod support;

use std::path::{Path, PathBuf};

use breakglass::remote::code::{self, CodeKind};
use support::{bg_without_vault, one_line_error, Kit};

const STRONG: &str = "tundra plastic ferret obtain sixty glove";

/// A custodian's own machine: a home and state dir of their own, no vault.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn bg(&self) -> assert_cmd::Command {
        let mut cmd = bg_without_vault(self.dir.path());
        cmd.env("HOME", self.dir.path())
            .env_remove("XDG_STATE_HOME");
        cmd
    }

    /// Enrol as `name` with the passphrase `passphrase` (kept in `name.pass`).
    fn enrol(&self, name: &str, passphrase: &str, test_only: bool) -> std::process::Output {
        let file = self.path(&format!("{name}.pass"));
        if !file.exists() {
            std::fs::write(&file, format!("{passphrase}\n")).unwrap();
        }
        let mut cmd = self.bg();
        cmd.args(["custodian", "enroll", "--passphrase", "--name", name])
            .arg("--passphrase-file")
            .arg(&file);
        if test_only {
            cmd.arg("--insecure-test-only-kdf");
        }
        cmd.output().unwrap()
    }

    /// Enrol and return the code printed on stdout.
    fn code(&self, name: &str, passphrase: &str, test_only: bool) -> String {
        let out = self.enrol(name, passphrase, test_only);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "stdout is the code alone: {stdout}");
        assert!(lines[0].starts_with("BGENR1:"));
        lines[0].to_string()
    }

    fn pass_spec(&self, name: &str) -> String {
        format!("{name}={}", self.path(&format!("{name}.pass")).display())
    }
}

/// `init` of a 2-of-3 vault: alice and bob by age key, plus `extra` custodians.
fn init(kit: &Kit, test_only: bool, extra: &[String]) -> std::process::Output {
    let mut cmd = kit.bg();
    cmd.args(["init", "--threshold", "2"]);
    if test_only {
        cmd.arg("--insecure-test-only-kdf");
    }
    cmd.arg("--custodian")
        .arg(format!("alice={}", kit.public("alice")))
        .arg("--custodian")
        .arg(format!("bob=@{}", kit.path("bob.pub").display()));
    for spec in extra {
        cmd.arg("--custodian").arg(spec);
    }
    cmd.output().unwrap()
}

fn manifest_custodian(vault: &Path, name: &str) -> serde_json::Value {
    let manifest = support::latest_manifest(vault);
    manifest["custodians"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} is not in the manifest"))
}

fn enrolment_json(home: &Home, name: &str) -> serde_json::Value {
    let file = home.path(&format!("{name}.pass"));
    if !file.exists() {
        std::fs::write(&file, format!("{name}'s own passphrase")).unwrap();
    }
    let out = home
        .bg()
        .args(["custodian", "enroll", "--passphrase", "--name", name])
        .arg("--passphrase-file")
        .arg(home.path(&format!("{name}.pass")))
        .args(["--insecure-test-only-kdf", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_custodian_enrolled_from_home_unseals_and_drills_with_their_passphrase() {
    let home = Home::new();
    let code = home.code("dave", "dave's own passphrase", true);
    // Nothing but the passphrase file was touched on the custodian's machine.
    let left: Vec<_> = std::fs::read_dir(home.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec!["dave.pass"], "enroll writes nothing");

    // --json: stable keys, the same recipient and KDF as the code.
    let json = enrolment_json(&home, "dave");
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "code",
            "insecure_test_only_kdf",
            "kdf",
            "name",
            "out",
            "recipient"
        ]
    );
    assert_eq!(json["name"], "dave");
    assert_eq!(json["insecure_test_only_kdf"], true);
    assert!(json["out"].is_null());
    let from_json: serde_json::Value = serde_json::from_slice(
        &code::decode(CodeKind::Enrolment, json["code"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(from_json["recipient"], json["recipient"]);
    assert_eq!(from_json["kdf"], json["kdf"]);

    let kit = Kit::new(&["alice", "bob"]);
    let out = init(&kit, true, &[format!("dave={code}")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The manifest holds exactly what a passphrase typed at the admin's terminal gives.
    let payload: serde_json::Value =
        serde_json::from_slice(&code::decode(CodeKind::Enrolment, &code).unwrap()).unwrap();
    let dave = manifest_custodian(&kit.vault, "dave");
    assert_eq!(dave["kind"], "passphrase");
    assert_eq!(dave["recipient"], payload["recipient"]);
    assert_eq!(dave["kdf"], payload["kdf"]);
    assert_eq!(dave["kdf"]["params"]["m_kib"], 64);

    kit.put("vpn", "password", "from-home");
    let out = kit
        .bg()
        .args(["drill", "--json", "--passphrase-file"])
        .arg(home.pass_spec("dave"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kit
        .bg()
        .args(["unseal", "--reason", "r", "--reveal", "vpn", "--json"])
        .arg("--identity")
        .arg(kit.key("alice"))
        .arg("--passphrase-file")
        .arg(home.pass_spec("dave"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["revealed"][0]["value"], "from-home");

    // Another passphrase does not open dave's share.
    std::fs::write(home.path("wrong.pass"), "not dave's").unwrap();
    let out = kit
        .bg()
        .args(["drill", "--passphrase-file"])
        .arg(format!("dave={}", home.path("wrong.pass").display()))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("wrong passphrase"));
}

#[test]
fn a_real_vault_takes_a_real_enrolment_from_a_file_and_no_passphrase_leaks() {
    let canary = format!("CANARY{:x}", std::process::id());
    let passphrase = format!("{canary} {STRONG}");
    let home = Home::new();
    let mut seen: Vec<u8> = Vec::new();

    // A weak passphrase is refused at home, and the refusal does not echo it.
    let weak = home.path("weak.pass");
    std::fs::write(&weak, format!("{canary}\n")).unwrap();
    let out = home
        .bg()
        .args(["custodian", "enroll", "--passphrase", "--name", "dave"])
        .arg("--passphrase-file")
        .arg(&weak)
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("passphrase is too weak"));
    seen.extend(&out.stdout);
    seen.extend(&out.stderr);

    // Production Argon2id, code also written with --out for the admin's @FILE.
    std::fs::write(home.path("dave.pass"), format!("{passphrase}\n")).unwrap();
    let out = home
        .bg()
        .args(["custodian", "enroll", "--passphrase", "--name", "dave"])
        .arg("--passphrase-file")
        .arg(home.path("dave.pass"))
        .arg("--out")
        .arg(home.path("dave.code"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    seen.extend(&out.stdout);
    seen.extend(&out.stderr);
    let code = std::fs::read_to_string(home.path("dave.code")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), code);
    let payload = code::decode(CodeKind::Enrolment, &code).unwrap();
    seen.extend(&payload);
    let payload: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(payload["insecure_test_only_kdf"], false);
    assert_eq!(
        payload["kdf"]["params"],
        serde_json::json!({"m_kib": 262144, "t": 3, "p": 4})
    );
    // --out never overwrites.
    let out = home
        .bg()
        .args(["custodian", "enroll", "--passphrase", "--name", "dave"])
        .arg("--passphrase-file")
        .arg(home.path("dave.pass"))
        .arg("--out")
        .arg(home.path("dave.code"))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("already exists"));
    assert_eq!(
        std::fs::read_to_string(home.path("dave.code")).unwrap(),
        code
    );

    // The code travels by mail, wrapped and quoted; the admin saves it as a file.
    let wrapped: String = code
        .trim()
        .as_bytes()
        .chunks(60)
        .map(|c| format!("> {}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    let kit = Kit::new(&["alice", "bob"]);
    std::fs::write(kit.path("dave.enrol"), wrapped).unwrap();
    let out = init(
        &kit,
        false,
        &[format!("dave=@{}", kit.path("dave.enrol").display())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    seen.extend(&out.stdout);
    seen.extend(&out.stderr);
    let dave = manifest_custodian(&kit.vault, "dave");
    assert_eq!(dave["recipient"], payload["recipient"]);
    assert_eq!(dave["kdf"], payload["kdf"]);

    let out = kit
        .bg()
        .args(["drill", "--passphrase-file"])
        .arg(home.pass_spec("dave"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    seen.extend(&out.stdout);
    seen.extend(&out.stderr);
    for args in [
        &["custodian", "list", "--json"][..],
        &["status", "--json"],
        &["audit", "log", "--json"],
    ] {
        let out = kit.bg().args(args).output().unwrap();
        seen.extend(&out.stdout);
        seen.extend(&out.stderr);
    }
    assert!(String::from_utf8_lossy(&seen).contains("dave"));
    for (what, bytes) in [
        ("the code, stdout or stderr", seen),
        ("the vault file", kit.vault_bytes()),
    ] {
        assert!(
            !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "the passphrase leaked into {what}"
        );
    }
    for entry in std::fs::read_dir(kit.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.extension().is_none_or(|e| e != "pass") {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "the passphrase leaked into {}",
                path.display()
            );
        }
    }
}

#[test]
fn rekey_adds_a_custodian_by_enrolment_code() {
    let kit = Kit::new(&["alice", "bob"]);
    assert!(init(&kit, true, &[]).status.success());
    kit.put("vpn", "password", "with-pat");
    let home = Home::new();
    let code = home.code("pat", "pat's passphrase", true);
    let out = kit
        .bg()
        .args(["rekey", "--add-custodian"])
        .arg(format!("pat={code}"))
        .arg("--identity")
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("bob"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(manifest_custodian(&kit.vault, "pat")["kind"], "passphrase");
    let out = kit
        .bg()
        .args([
            "unseal",
            "--reason",
            "r",
            "--reveal",
            "vpn",
            "--json",
            "--no-rekey",
        ])
        .arg("--identity")
        .arg(kit.key("bob"))
        .arg("--passphrase-file")
        .arg(home.pass_spec("pat"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["revealed"][0]["value"], "with-pat");
}

/// A code whose payload was written by hand (what a hostile sender could send).
fn forged(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let home = Home::new();
    let mut value = enrolment_json(&home, "dave");
    let code_text = value["code"].as_str().unwrap().to_string();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&code::decode(CodeKind::Enrolment, &code_text).unwrap()).unwrap();
    edit(&mut payload);
    value["code"] =
        code::encode(CodeKind::Enrolment, &serde_json::to_vec(&payload).unwrap()).into();
    value["code"].as_str().unwrap().to_string()
}

#[test]
fn bad_enrolment_codes_are_refused_by_name_and_nothing_is_made() {
    let home = Home::new();
    let good = enrolment_json(&home, "dave")["code"]
        .as_str()
        .unwrap()
        .to_string();
    let mut damaged: Vec<char> = good.chars().collect();
    let at = damaged.len() / 2;
    damaged[at] = if damaged[at] == 'A' { 'B' } else { 'A' };
    let damaged: String = damaged.into_iter().collect();
    let cut = good[..good.len() - 12].to_string();
    let approval = code::encode(CodeKind::Approval, b"{}");
    let low_cost = forged(|p| p["insecure_test_only_kdf"] = false.into());
    let above_cap = forged(|p| p["kdf"]["params"]["m_kib"] = (100u64 << 20).into());
    let bad_salt = forged(|p| p["kdf"]["salt"] = "0011".into());
    let bad_recipient = forged(|p| p["recipient"] = "age1qqqq".into());

    let kit = Kit::new(&["alice", "bob"]);
    std::fs::write(kit.path("damaged.code"), format!("{damaged}\n")).unwrap();
    let cases: Vec<(bool, String, &str)> = vec![
        (true, format!("dave={damaged}"), "custodian dave: enrolment code is damaged (checksum mismatch"),
        (true, format!("dave=@{}", kit.path("damaged.code").display()), "enrolment code is damaged"),
        (true, format!("dave={cut}"), "custodian dave: enrolment code is cut short"),
        (true, format!("carol={good}"), "custodian carol: enrolment code is for custodian dave, not carol"),
        (false, format!("dave={good}"), "custodian dave: enrolment code was made with --insecure-test-only-kdf, which a real vault refuses"),
        (false, format!("dave={low_cost}"), "are below the floor"),
        (true, format!("dave={above_cap}"), "exceed the cap"),
        (true, format!("dave={bad_salt}"), "its salt is malformed"),
        (true, format!("dave={bad_recipient}"), "its recipient is malformed"),
        (true, format!("dave={approval}"), "custodian dave: enrolment code is an approval code, not an enrolment code"),
        (true, "dave=BGENR2:AAAA".to_string(), "from a newer breakglass"),
    ];
    for (test_only, spec, want) in &cases {
        let out = init(&kit, *test_only, std::slice::from_ref(spec));
        let err = one_line_error(&out);
        assert!(err.contains(want), "{spec}: want {want:?}, got {err}");
        assert!(!kit.vault.exists(), "{spec}: no vault is made");
    }

    // A --passphrase-file for an enrolled custodian is a mistake, said so.
    let out = {
        let mut cmd = kit.bg();
        cmd.args(["init", "--threshold", "2", "--insecure-test-only-kdf"])
            .arg("--custodian")
            .arg(format!("alice={}", kit.public("alice")))
            .arg("--custodian")
            .arg(format!("dave={good}"))
            .arg("--passphrase-file")
            .arg(home.pass_spec("dave"));
        cmd.output().unwrap()
    };
    assert!(one_line_error(&out).contains("custodian dave: has a key or an enrolment code"));
    assert!(!kit.vault.exists());

    // rekey: a refused code changes nothing.
    let real = Kit::init(&["alice", "bob"], 2);
    let before = real.vault_bytes();
    let pass_file = home.pass_spec("dave");
    for (spec, want) in [
        (format!("dave={good}"), "which a real vault refuses"),
        (format!("dave={low_cost}"), "below the floor"),
        (format!("erin={good}"), "is for custodian dave, not erin"),
        (format!("dave={damaged}"), "damaged"),
        (format!("dave={approval}"), "is an approval code"),
        (format!("dave={above_cap}"), "exceed the cap"),
    ] {
        let out = real
            .bg()
            .args(["rekey", "--add-custodian", &spec])
            .arg("--identity")
            .arg(real.key("alice"))
            .arg("--identity")
            .arg(real.key("bob"))
            .output()
            .unwrap();
        let err = one_line_error(&out);
        assert!(err.contains(want), "{spec}: want {want:?}, got {err}");
        assert_eq!(real.vault_bytes(), before, "{spec}: the vault is unchanged");
    }
    // In a test-only vault the code itself is fine, but a passphrase file for it is a mistake.
    let test_only = Kit::new(&["alice", "bob"]);
    assert!(init(&test_only, true, &[]).status.success());
    let before = test_only.vault_bytes();
    let out = test_only
        .bg()
        .args(["rekey", "--add-custodian", &format!("dave={good}")])
        .args(["--passphrase-file", &pass_file])
        .arg("--identity")
        .arg(test_only.key("alice"))
        .arg("--identity")
        .arg(test_only.key("bob"))
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("custodian dave: has a key or an enrolment code"));
    assert_eq!(test_only.vault_bytes(), before);
}

/// Each Argon2id parameter alone below the floor (for a real vault) or above
/// the cap (for any vault) in a hostile enrolment code, the one place KDF
/// costs enter a vault outside a signed manifest: refused, naming the
/// custodian and the parameter at fault, and no vault is made.
#[test]
fn each_kdf_parameter_out_of_bounds_in_a_code_is_refused_by_name() {
    let floor = serde_json::json!({"m_kib": 19456, "t": 2, "p": 1});
    let with = |key: &str, value: u64| {
        let mut params = floor.clone();
        params[key] = value.into();
        if key == "p" && value > 64 {
            params["m_kib"] = (4u64 << 20).into();
        }
        params
    };
    let cases = [
        (
            false,
            with("m_kib", 19455),
            "are below the floor",
            "m=19455 KiB < 19456 KiB",
        ),
        (false, with("t", 1), "are below the floor", "t=1 < 2"),
        // Zero lanes is not Argon2 at all: refused when the code is read,
        // before the floor is even asked about.
        (
            false,
            with("p", 0),
            "are not valid",
            "p=0 are not valid (not enough threads)",
        ),
        (
            true,
            with("m_kib", (4 << 20) + 1),
            "exceed the cap",
            "m=4194305 KiB > 4194304 KiB",
        ),
        (true, with("t", 65), "exceed the cap", "t=65 > 64"),
        (true, with("p", 65), "exceed the cap", "p=65 > 64"),
        (
            true,
            with("t", u64::from(u32::MAX)),
            "exceed the cap",
            "t=4294967295 > 64",
        ),
    ];
    let kit = Kit::new(&["alice", "bob"]);
    for (test_only, params, what, named) in cases {
        let code = forged(|p| {
            p["insecure_test_only_kdf"] = false.into();
            p["kdf"]["params"] = params.clone();
        });
        let out = init(&kit, test_only, &[format!("dave={code}")]);
        let err = one_line_error(&out);
        assert!(
            err.contains("custodian dave: enrolment code is unusable: Argon2id parameters")
                && err.contains(what)
                && err.contains(named),
            "{params}: want {what:?} naming {named:?}, got {err}"
        );
        assert!(!kit.vault.exists(), "{params}: no vault is made");
    }
}
