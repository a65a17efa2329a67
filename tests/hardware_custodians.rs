//! Hardware-key custodians through age plugins, with no hardware: the insecure
//! test plugin `age-plugin-bgtest` (tests/plugin/age_plugin_bgtest.rs, an
//! example target that `cargo test` builds) stands in for a YubiKey. Its
//! behaviour is set through the environment it inherits from breakglass:
//! `BGTEST_PIN` (ask for this PIN), `BGTEST_MODE` (fail, removed, hang,
//! confirm, crash) and `BGTEST_LOG` (a line per unwrap attempt).

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use support::Kit;

/// The test plugin's binary: built by `cargo test` beside the test binaries
/// (target/debug/examples); when this test runs alone (`cargo test --test
/// hardware_custodians`), built once into a target directory of its own.
fn plugin_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let breakglass = assert_cmd::cargo::cargo_bin("breakglass");
        let profile_dir = breakglass.parent().unwrap();
        let beside = profile_dir.join("examples").join("age-plugin-bgtest");
        if beside.exists() {
            return beside;
        }
        let own_target = profile_dir.parent().unwrap().join("bgtest-plugin");
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--example", "age-plugin-bgtest", "--target-dir"])
            .arg(&own_target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building age-plugin-bgtest failed");
        own_target.join("debug/examples/age-plugin-bgtest")
    })
}

/// A directory holding only `age-plugin-bgtest`, to put first on a child's PATH.
fn plugin_dir(kit: &Kit) -> PathBuf {
    let dir = kit.path("plugins");
    if !dir.exists() {
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink(plugin_binary(), dir.join("age-plugin-bgtest")).unwrap();
    }
    dir
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A bgtest key: `NAME.key` holds the AGE-PLUGIN-BGTEST-1… line (what
/// `age-plugin-yubikey --identity` prints), `NAME.pub` the age1bgtest1… recipient.
fn bgtest_key(kit: &Kit, name: &str) {
    let out = std::process::Command::new(plugin_binary())
        .arg("--generate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# recipient: "))
        .expect("--generate prints the recipient")
        .trim()
        .to_string();
    assert!(recipient.starts_with("age1bgtest1"), "{recipient}");
    support::write_private(&kit.key(name), &text);
    std::fs::write(kit.path(&format!("{name}.pub")), recipient).unwrap();
}

/// The binary for the kit's vault, with the test plugin on PATH.
fn bg(kit: &Kit) -> Command {
    let mut cmd = kit.bg();
    cmd.env("PATH", path_with(&plugin_dir(kit)))
        .env("BGTEST_KIT", kit.dir.path())
        .env_remove("BGTEST_PIN")
        .env_remove("BGTEST_MODE")
        .env_remove("PINENTRY_PROGRAM");
    cmd
}

/// A 2-of-3 vault: alice (age key), bob (bgtest hardware key), carol (age key),
/// holding `vpn`.
fn vault() -> Kit {
    let kit = Kit::new(&["alice", "carol"]);
    bgtest_key(&kit, "bob");
    let mut cmd = bg(&kit);
    cmd.args(["init", "--threshold", "2"]);
    for name in ["alice", "bob", "carol"] {
        cmd.arg("--custodian")
            .arg(format!("{name}={}", kit.public(name)));
    }
    cmd.assert().success();
    bg(&kit)
        .args(["put", "vpn", "--kind", "password"])
        .write_stdin("hardware-vpn-password")
        .assert()
        .success();
    kit
}

fn unseal(kit: &Kit, keys: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = bg(kit);
    cmd.args([
        "unseal",
        "--reason",
        "Duo outage",
        "--reveal",
        "vpn",
        "--json",
    ]);
    for k in keys {
        cmd.arg("--identity").arg(kit.key(k));
    }
    cmd.args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn ok_json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The rejected-share rows the audit log holds: (custodian, problem).
fn rejections(kit: &Kit) -> Vec<(String, String)> {
    kit.json(&["audit", "log"])["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "share_rejected")
        .map(|e| {
            (
                e["subject"].as_str().unwrap().to_string(),
                e["details"]["problem"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn init_with_a_bgtest_custodian_lists_its_plugin() {
    let kit = vault();
    let out = bg(&kit).args(["custodian", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("bob") && l.contains("age-plugin (age-plugin-bgtest)")),
        "{text}"
    );
    let listed = kit.json(&["custodian", "list"]);
    let bob = listed["custodians"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "bob")
        .unwrap()
        .clone();
    assert_eq!(bob["kind"], "age-plugin");
    assert_eq!(bob["plugin"], "age-plugin-bgtest");
    assert_eq!(bob["recipient"], kit.public("bob").trim());
}

#[test]
fn stock_age_opens_the_exported_envelope_with_the_plugin_on_path() {
    let kit = vault();
    let envelope = kit.path("bob.envelope");
    bg(&kit)
        .args(["custodian", "export", "bob", "--out"])
        .arg(&envelope)
        .assert()
        .success();
    let out = std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(kit.key("bob"))
        .arg(&envelope)
        .env("PATH", path_with(&plugin_dir(&kit)))
        .output()
        .expect("the stock age CLI is installed (.ci/run installs it)");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.starts_with(b"BGSHARE1"));
    assert!(out.stdout.windows(3).any(|w| w == b"bob"));
}

#[test]
fn local_unseal_with_the_hardware_key_and_again_after_the_new_epoch() {
    let kit = vault();
    let log = kit.path("plugin.log");
    let first = ok_json(&unseal(
        &kit,
        &["alice", "bob"],
        &[],
        &[("BGTEST_LOG", log.to_str().unwrap())],
    ));
    assert_eq!(first["revealed"][0]["value"], "hardware-vpn-password");
    assert!(first["custodians"].to_string().contains("bob"), "{first}");
    assert_eq!(first["new_epoch"], 2);
    // The new epoch was sealed to bob's hardware key through the plugin: it opens again.
    let second = ok_json(&unseal(&kit, &["bob", "carol"], &[], &[]));
    assert_eq!(second["revealed"][0]["value"], "hardware-vpn-password");
    assert!(std::fs::read_to_string(&log).unwrap().contains("unwrap"));
}

#[test]
fn a_plugin_message_reaches_the_person_naming_the_custodian() {
    let kit = vault();
    let out = unseal(&kit, &["alice", "bob"], &[], &[]);
    ok_json(&out);
    // No terminal in this test: the plugin's message goes to stderr, named.
    assert!(
        stderr(&out).contains("custodian bob (age-plugin-bgtest): touch your bgtest key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_pin_file_answers_the_plugin_and_a_wrong_pin_rejects_only_that_share() {
    let kit = vault();
    let pin = "731946";
    support::write_private(&kit.path("bob.pin"), &format!("{pin}\n"));
    support::write_private(&kit.path("bad.pin"), "000000\n");
    let env = [("BGTEST_PIN", pin)];
    // The right PIN from a file.
    let good = unseal(
        &kit,
        &["alice", "bob"],
        &[
            "--passphrase-file",
            &format!("bob={}", kit.path("bob.pin").display()),
        ],
        &env,
    );
    assert_eq!(
        ok_json(&good)["revealed"][0]["value"],
        "hardware-vpn-password"
    );
    // A wrong PIN: bob's share is rejected by name, and alice and carol still make the quorum.
    let bad = format!("bob={}", kit.path("bad.pin").display());
    let quorum = unseal(
        &kit,
        &["alice", "bob", "carol"],
        &["--passphrase-file", &bad],
        &env,
    );
    let report = ok_json(&quorum);
    assert_eq!(report["revealed"][0]["value"], "hardware-vpn-password");
    assert!(
        !report["custodians"].to_string().contains("bob"),
        "{report}"
    );
    let rejected = rejections(&kit);
    assert!(
        rejected
            .iter()
            .any(|(who, why)| who == "bob" && why.contains("wrong PIN")),
        "{rejected:?}"
    );
    // Without the others, the wrong PIN is the error, naming bob; nothing is revealed.
    let short = unseal(&kit, &["alice", "bob"], &["--passphrase-file", &bad], &env);
    assert!(!short.status.success());
    let error = support::one_line_error(&short);
    assert!(
        error.contains("bob") && error.contains("wrong PIN"),
        "{error}"
    );
    assert!(short.stdout.is_empty());
    // No terminal and no PIN file: the plugin's PIN request is refused, by name.
    let asked = unseal(&kit, &["alice", "bob"], &[], &env);
    assert!(!asked.status.success());
    assert!(
        support::one_line_error(&asked).contains("bob"),
        "{}",
        stderr(&asked)
    );
    // The PIN is a secret: never in output, the log or the vault file.
    for out in [&good, &quorum, &short, &asked] {
        assert!(!String::from_utf8_lossy(&out.stdout).contains(pin));
        assert!(!stderr(out).contains(pin));
    }
    assert!(!kit
        .vault_bytes()
        .windows(pin.len())
        .any(|w| w == pin.as_bytes()));
}

#[test]
fn agedebug_never_prints_the_plugin_conversation() {
    let kit = vault();
    let pin = "482913";
    support::write_private(&kit.path("bob.pin"), pin);
    let out = unseal(
        &kit,
        &["alice", "bob"],
        &[
            "--passphrase-file",
            &format!("bob={}", kit.path("bob.pin").display()),
        ],
        &[("BGTEST_PIN", pin), ("AGEDEBUG", "plugin")],
    );
    ok_json(&out);
    let err = stderr(&out);
    assert!(!err.contains(pin), "{err}");
    assert!(
        !err.contains("file-key") && !err.contains("add-identity"),
        "{err}"
    );
}

#[test]
fn a_missing_plugin_is_named_with_how_to_install_it() {
    let kit = vault();
    let before = kit.vault_bytes();
    // PATH without the plugin: the new epoch could not be sealed to bob, so
    // the unseal stops before any share is gathered.
    let mut cmd = kit.bg();
    cmd.args(["unseal", "--reason", "r", "--reveal", "vpn", "--identity"])
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("carol"))
        .env("PATH", "/usr/bin:/bin");
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let error = support::one_line_error(&out);
    assert!(
        error.contains("bob") && error.contains("age-plugin-bgtest") && error.contains("install"),
        "{error}"
    );
    assert_eq!(
        kit.vault_bytes(),
        before,
        "a refused unseal changes nothing"
    );
    // Opening with the hardware key itself names the missing program too.
    let mut cmd = kit.bg();
    cmd.args(["drill", "--identity"])
        .arg(kit.key("bob"))
        .env("PATH", "/usr/bin:/bin");
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        text.contains("age-plugin-bgtest is not installed"),
        "{text}"
    );
}

#[test]
fn a_hung_plugin_times_out_by_name_and_the_others_make_the_quorum() {
    let kit = vault();
    let started = Instant::now();
    let out = unseal(
        &kit,
        &["alice", "bob", "carol"],
        &["--plugin-timeout", "2"],
        &[("BGTEST_MODE", "hang")],
    );
    let report = ok_json(&out);
    assert_eq!(report["revealed"][0]["value"], "hardware-vpn-password");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the deadline held"
    );
    let rejected = rejections(&kit);
    assert!(
        rejected
            .iter()
            .any(|(who, why)| who == "bob" && why.contains("did not answer within 2 s")),
        "{rejected:?}"
    );
    // The hung plugin was stopped, not left behind.
    assert!(plugin_processes_under(kit.dir.path()).is_empty());
}

#[test]
fn a_failing_or_removed_token_rejects_the_share_by_name() {
    for (mode, said) in [
        ("fail", "the token failed"),
        ("removed", "no bgtest token is plugged in"),
        ("crash", "age-plugin-bgtest stopped unexpectedly"),
    ] {
        let kit = vault();
        let out = unseal(
            &kit,
            &["alice", "bob", "carol"],
            &[],
            &[("BGTEST_MODE", mode)],
        );
        ok_json(&out);
        let rejected = rejections(&kit);
        assert!(
            rejected
                .iter()
                .any(|(who, why)| who == "bob" && why.contains(said)),
            "{mode}: {rejected:?}"
        );
    }
}

#[test]
fn remote_approve_and_drill_with_the_hardware_key() {
    let kit = vault();
    let (home, words) = bob_at_home_with_a_request(&kit, "Duo outage INC-7");
    // Bob approves at home with only his hardware key and the code.
    let approve = support::bg_without_vault(&home)
        .args([
            "approve",
            "--request",
            "req.txt",
            "--identity",
            "me.key",
            "--out",
            "ok.txt",
        ])
        .args(["--words", &words])
        .env("PATH", path_with(&plugin_dir(&kit)))
        .output()
        .unwrap();
    assert!(approve.status.success(), "{}", stderr(&approve));
    let report = ok_json(
        &bg(&kit)
            .args(["unseal", "--reveal", "vpn", "--json", "--request"])
            .arg(kit.path("req.txt"))
            .arg("--approval")
            .arg(home.join("ok.txt"))
            .arg("--identity")
            .arg(kit.key("carol"))
            .output()
            .unwrap(),
    );
    assert_eq!(report["revealed"][0]["value"], "hardware-vpn-password");

    // A local drill with the hardware key passes and is logged.
    let drill = bg(&kit)
        .args(["drill", "--json", "--identity"])
        .arg(kit.key("bob"))
        .output()
        .unwrap();
    let drilled = ok_json(&drill);
    assert_eq!(drilled["results"][0]["custodian"], "bob");
    assert_eq!(drilled["results"][0]["passed"], true);

    // A remote drill: challenge at the vault, answered by bob at home, checked.
    bg(&kit)
        .args(["drill", "--remote", "--out"])
        .arg(kit.path("challenge.txt"))
        .assert()
        .success();
    std::fs::copy(kit.path("challenge.txt"), home.join("challenge.txt")).unwrap();
    let answer = support::bg_without_vault(&home)
        .args([
            "drill",
            "--challenge",
            "challenge.txt",
            "--identity",
            "me.key",
            "--out",
            "proof.txt",
        ])
        .env("PATH", path_with(&plugin_dir(&kit)))
        .output()
        .unwrap();
    assert!(answer.status.success(), "{}", stderr(&answer));
    let checked = ok_json(
        &bg(&kit)
            .args(["drill", "--json", "--proof"])
            .arg(home.join("proof.txt"))
            .output()
            .unwrap(),
    );
    assert!(checked.to_string().contains("bob"), "{checked}");
}

#[test]
fn approve_with_a_wrong_pin_names_the_custodian_and_writes_nothing() {
    let kit = vault();
    let (home, words) = bob_at_home_with_a_request(&kit, "r");
    support::write_private(&home.join("pin"), "111111");
    let approve = support::bg_without_vault(&home)
        .args(["approve", "--request", "req.txt", "--identity", "me.key"])
        .args([
            "--passphrase-file",
            "bob=pin",
            "--out",
            "ok.txt",
            "--words",
            &words,
        ])
        .env("PATH", path_with(&plugin_dir(&kit)))
        .env("BGTEST_PIN", "222222")
        .output()
        .unwrap();
    assert!(!approve.status.success());
    let error = support::one_line_error(&approve);
    assert!(
        error.contains("bob") && error.contains("wrong PIN"),
        "{error}"
    );
    assert!(!home.join("ok.txt").exists());
}

/// A recipient for the P-256 tag type (age's own test vector): age seals to it
/// natively; only its token's plugin could open it.
const TAG_RECIPIENT: &str = "age1tag1qt8lw0ual6avlwmwatk888yqnmdamm7xfd0wak53ut6elz5c4swx2yqdj4e";

#[test]
fn an_age1tag1_recipient_is_sealed_to_with_no_plugin_installed() {
    let kit = Kit::new(&["alice", "carol"]);
    let mut cmd = kit.bg();
    cmd.args(["init", "--threshold", "2"])
        .arg("--custodian")
        .arg(format!("alice={}", kit.public("alice")))
        .arg("--custodian")
        .arg(format!("tpm={TAG_RECIPIENT}"))
        .arg("--custodian")
        .arg(format!("carol={}", kit.public("carol")))
        .env("PATH", "/usr/bin:/bin");
    cmd.assert().success();
    let listed = kit.json(&["custodian", "list"]);
    assert!(listed.to_string().contains("age-tag"), "{listed}");
    let envelope = kit.path("tpm.envelope");
    kit.bg()
        .args(["custodian", "export", "tpm", "--out"])
        .arg(&envelope)
        .assert()
        .success();
    let armored = std::fs::read_to_string(&envelope).unwrap();
    let body: String = armored
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    use base64::Engine;
    let binary = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let header = String::from_utf8_lossy(&binary);
    assert!(header.contains("-> p256tag "), "{header}");
    // And unseals still work with the others, resealing to the tag key natively.
    kit.put("vpn", "password", "v");
    let out = kit
        .unseal(&["alice", "carol"], &["vpn"])
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn plugin_names_outside_a_z_0_9_and_hyphen_never_reach_a_path_lookup() {
    use bech32::ToBase32;
    let kit = Kit::new(&["alice"]);
    for hrp in ["age1bg_test", "age1bg.test", "age1bg+test"] {
        let recipient =
            bech32::encode(hrp, [7u8; 33].to_base32(), bech32::Variant::Bech32).unwrap();
        let out = kit
            .bg()
            .args(["init", "--threshold", "1"])
            .arg("--custodian")
            .arg(format!("alice={}", kit.public("alice")))
            .arg("--custodian")
            .arg(format!("x={recipient}"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{hrp}");
        let error = support::one_line_error(&out);
        assert!(
            error.contains("only a-z, 0-9 and - may name a plugin"),
            "{error}"
        );
    }
    // The same for an identity file's AGE-PLUGIN-… line.
    let kit = vault();
    let identity = bech32::encode(
        "age-plugin-bg_test-",
        [1u8; 8].to_base32(),
        bech32::Variant::Bech32,
    )
    .unwrap()
    .to_uppercase();
    support::write_private(&kit.path("bad.key"), &identity);
    let out = unseal(
        &kit,
        &["alice"],
        &["--identity", kit.path("bad.key").to_str().unwrap()],
        &[],
    );
    assert!(!out.status.success());
    let error = support::one_line_error(&out);
    assert!(
        error.contains("bad.key") && error.contains("not allowed"),
        "{error}"
    );
}

#[test]
fn an_edited_recipient_never_runs_a_plugin_of_the_editors_choosing() {
    let kit = vault();
    // An attacker's "plugin" that leaves a mark if it is ever run.
    let evil_dir = kit.path("evil");
    std::fs::create_dir(&evil_dir).unwrap();
    let mark = kit.path("evil-ran");
    let script = evil_dir.join("age-plugin-evil");
    std::fs::write(&script, format!("#!/bin/sh\ntouch {}\n", mark.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Point bob's manifest entry at an age1evil1… recipient with sqlite3-like edits.
    use bech32::ToBase32;
    let evil = bech32::encode("age1evil", [9u8; 32].to_base32(), bech32::Variant::Bech32).unwrap();
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let changed = conn
        .execute(
            "UPDATE manifests SET body = replace(body, ?1, ?2)",
            rusqlite::params![kit.public("bob").trim(), evil],
        )
        .unwrap();
    assert!(changed > 0, "the manifest holds bob's recipient");
    drop(conn);
    let out = bg(&kit)
        .args(["unseal", "--reason", "r", "--reveal", "vpn", "--identity"])
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("carol"))
        .env("PATH", path_with(&evil_dir))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!mark.exists(), "an unsigned edit ran a program");
}

#[test]
fn killed_while_the_plugin_waits_the_vault_is_unchanged_and_opens() {
    let kit = vault();
    let before = kit.vault_bytes();
    let log = kit.path("plugin.log");
    let mut child = support::spawnable(&kit.vault);
    child
        .args(["unseal", "--reason", "r", "--reveal", "vpn", "--identity"])
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("bob"))
        .env("PATH", path_with(&plugin_dir(&kit)))
        .env("BGTEST_MODE", "hang")
        .env("BGTEST_KIT", kit.dir.path())
        .env("BGTEST_LOG", &log);
    let mut child = child.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(log.exists(), "the plugin was reached");
    child.kill().unwrap();
    child.wait().unwrap();
    for pid in plugin_processes_under(kit.dir.path()) {
        let _ = std::process::Command::new("kill")
            .arg("-9")
            .arg(pid.to_string())
            .status();
    }
    assert_eq!(kit.vault_bytes(), before);
    let report = ok_json(&unseal(&kit, &["alice", "carol"], &[], &[]));
    assert_eq!(report["revealed"][0]["value"], "hardware-vpn-password");
}

/// Running `age-plugin-bgtest` processes started for the kit in `dir`: the
/// plugin inherits `BGTEST_KIT=dir` from [`bg`] (the path it runs from is the
/// resolved binary, the same for every kit).
fn plugin_processes_under(dir: &Path) -> Vec<u32> {
    let wanted = format!("BGTEST_KIT={}", dir.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let environ = String::from_utf8_lossy(&environ);
        if String::from_utf8_lossy(&cmdline).contains("age-plugin-bgtest")
            && environ.split('\0').any(|v| v == wanted)
        {
            found.push(pid);
        }
    }
    found
}

/// `unseal` of `vpn` with alice's and bob's keys on a real terminal (tmux),
/// stderr to /dev/null: prompts must reach the terminal anyway.
fn unseal_on_terminal(kit: &Kit, env: &[(&str, &str)]) -> support::tmux::Screen {
    use support::tmux::quote;
    let binary = assert_cmd::cargo::cargo_bin("breakglass");
    let line = format!(
        "unset BREAKGLASS_VAULT; {} --vault {} unseal --reason outage --reveal vpn --endorse --identity {} --identity {} 2>/dev/null",
        quote(&binary.display().to_string()),
        quote(&kit.vault.display().to_string()),
        quote(&kit.key("alice").display().to_string()),
        quote(&kit.key("bob").display().to_string()),
    );
    let state = kit.path("state").display().to_string();
    let path = path_with(&plugin_dir(kit));
    let mut all = vec![
        ("BREAKGLASS_STATE_DIR", state.as_str()),
        ("NO_COLOR", "1"),
        ("PATH", path.as_str()),
    ];
    all.extend_from_slice(env);
    support::tmux::Screen::spawn(kit.dir.path(), &all, &line)
}

#[test]
fn the_plugin_asks_for_its_pin_on_the_terminal_naming_the_custodian() {
    if !support::tmux::available() {
        return;
    }
    let kit = vault();
    let screen = unseal_on_terminal(&kit, &[("BGTEST_PIN", "2468")]);
    screen.wait_for_screen_text(
        "custodian bob (age-plugin-bgtest): touch your bgtest key",
        support::tmux::WAIT,
    );
    screen.wait_for_screen_text(
        "custodian bob (age-plugin-bgtest): Enter PIN for bgtest key:",
        support::tmux::WAIT,
    );
    screen.type_line("2468");
    let (code, text) = screen.wait_exit(support::tmux::WAIT);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("hardware-vpn-password"), "{text}");
    assert!(!text.contains("2468"), "the PIN was echoed: {text}");
}

#[test]
fn a_plugin_confirmation_is_asked_on_the_terminal() {
    if !support::tmux::available() {
        return;
    }
    let kit = vault();
    let screen = unseal_on_terminal(&kit, &[("BGTEST_MODE", "confirm")]);
    screen.wait_for_screen_text(
        "Touch your bgtest key to continue [y = Touched, n = Cancel]:",
        support::tmux::WAIT,
    );
    screen.type_line("y");
    let (code, text) = screen.wait_exit(support::tmux::WAIT);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("hardware-vpn-password"), "{text}");
}

#[test]
fn pinentry_asks_for_the_pin_when_pinentry_program_is_set() {
    if !support::tmux::available() {
        return;
    }
    let pinentry = Path::new("/usr/bin/pinentry-curses");
    if !pinentry.exists() {
        let ci = std::env::var("CI").unwrap_or_default();
        assert!(
            ci.is_empty() || ci == "false",
            "CI: .ci/run installs pinentry-curses"
        );
        eprintln!("skipped: pinentry-curses is not installed (apt-get install pinentry-curses)");
        return;
    }
    let kit = vault();
    let screen = unseal_on_terminal(
        &kit,
        &[
            ("BGTEST_PIN", "8642"),
            ("PINENTRY_PROGRAM", "/usr/bin/pinentry-curses"),
            ("TERM", "xterm"),
        ],
    );
    // pinentry's own dialog, with our description of who is asking.
    screen.wait_for_screen_text("custodian bob (age-plugin-bgtest)", support::tmux::WAIT);
    screen.wait_for_screen_text("PIN:", support::tmux::WAIT);
    screen.type_line("8642");
    let (code, text) = screen.wait_exit(support::tmux::WAIT);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("hardware-vpn-password"), "{text}");
    assert!(!text.contains("8642"), "{text}");
}

#[test]
fn rekey_adds_a_hardware_key_custodian_who_then_drills() {
    let kit = vault();
    bgtest_key(&kit, "dave");
    let out = bg(&kit)
        .args(["rekey", "--reason", "new custodian", "--json", "--identity"])
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("carol"))
        .arg("--add-custodian")
        .arg(format!("dave={}", kit.public("dave")))
        .output()
        .unwrap();
    let report = ok_json(&out);
    assert_eq!(
        report["custodians"],
        serde_json::json!(["alice", "bob", "carol", "dave"])
    );
    let listed = kit.json(&["custodian", "list"]);
    assert!(
        listed["custodians"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "dave" && c["plugin"] == "age-plugin-bgtest"),
        "{listed}"
    );
    // Two bgtest custodians: dave's key skips bob's envelope (not its own) and opens his.
    let drill = ok_json(
        &bg(&kit)
            .args(["drill", "--json", "--identity"])
            .arg(kit.key("dave"))
            .output()
            .unwrap(),
    );
    assert_eq!(drill["results"][0]["custodian"], "dave");
    assert_eq!(drill["results"][0]["passed"], true);
    // And the plugin missing at rekey time stops the rekey before any share is asked.
    let before = kit.vault_bytes();
    let mut cmd = kit.bg();
    cmd.args(["rekey", "--reason", "r", "--identity"])
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("carol"))
        .args(["--remove-custodian", "bob"])
        .env("PATH", "/usr/bin:/bin");
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    assert!(support::one_line_error(&out).contains("age-plugin-bgtest is not installed"));
    assert_eq!(kit.vault_bytes(), before);
}

/// A 2-of-4 vault with two hardware-key custodians of the same plugin: alice
/// and carol (age keys), bob and dave (bgtest keys).
fn two_token_vault() -> Kit {
    let kit = Kit::new(&["alice", "carol"]);
    bgtest_key(&kit, "bob");
    bgtest_key(&kit, "dave");
    let mut cmd = bg(&kit);
    cmd.args(["init", "--threshold", "2"]);
    for name in ["alice", "bob", "carol", "dave"] {
        cmd.arg("--custodian")
            .arg(format!("{name}={}", kit.public(name)));
    }
    cmd.assert().success();
    bg(&kit)
        .args(["put", "vpn", "--kind", "password"])
        .write_stdin("hardware-vpn-password")
        .assert()
        .success();
    kit
}

#[test]
fn a_failing_token_is_blamed_on_its_own_custodian_not_on_the_first_envelope_tried() {
    let kit = two_token_vault();
    // dave's token fails; his key is tried on bob's envelope first (not its
    // own: skipped without a PIN), then on his own, where it fails.
    let out = unseal(
        &kit,
        &["alice", "dave", "carol"],
        &[],
        &[("BGTEST_MODE", "fail")],
    );
    ok_json(&out);
    let rejected = rejections(&kit);
    assert!(
        rejected
            .iter()
            .any(|(who, why)| who == "dave" && why.contains("the token failed")),
        "{rejected:?}"
    );
    assert!(
        !rejected.iter().any(|(who, _)| who == "bob"),
        "{rejected:?}"
    );
    // A plugin missing altogether is the key file's problem, not bob's (the
    // first candidate): a drill names the file.
    let mut cmd = kit.bg();
    cmd.args(["drill", "--json", "--identity"])
        .arg(kit.key("dave"))
        .env("PATH", "/usr/bin:/bin");
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!text.contains("\"custodian\":\"bob\""), "{text}");
    assert!(
        text.contains("dave.key") && text.contains("age-plugin-bgtest is not installed"),
        "{text}"
    );
}

#[test]
fn a_forged_request_cannot_dodge_the_pin_of_a_hardware_key_by_renaming_its_recipient() {
    // Vault A: alice's hardware key approves a genuine request once, so her
    // machine pins her key to vault A.
    let kit = Kit::new(&["carol"]);
    bgtest_key(&kit, "alice");
    let mut init = bg(&kit);
    init.args(["init", "--threshold", "2"]);
    for name in ["alice", "carol"] {
        init.arg("--custodian")
            .arg(format!("{name}={}", kit.public(name)));
    }
    init.assert().success();
    let home = kit.path("home-alice");
    std::fs::create_dir(&home).unwrap();
    std::fs::copy(kit.key("alice"), home.join("me.key")).unwrap();
    let approve = |code: &Path, words: &str, extra: &[&str]| {
        std::fs::copy(code, home.join("req.txt")).unwrap();
        let _ = std::fs::remove_file(home.join("ok.txt"));
        support::bg_without_vault(&home)
            .args([
                "approve",
                "--request",
                "req.txt",
                "--identity",
                "me.key",
                "--out",
                "ok.txt",
            ])
            .args(["--words", words])
            .args(extra)
            .env("PATH", path_with(&plugin_dir(&kit)))
            .output()
            .unwrap()
    };
    let out = bg(&kit)
        .args(["request", "--reason", "genuine", "--json", "--out"])
        .arg(kit.path("a.txt"))
        .output()
        .unwrap();
    let words = support::read_back_words(&ok_json(&out));
    let first = approve(&kit.path("a.txt"), &words, &[]);
    assert!(first.status.success(), "{}", stderr(&first));

    // Vault B, the attacker's: "alice" is listed with the attacker's own
    // bgtest key; the attacker opens B's envelope for "alice" and re-seals the
    // share to alice's real key with the stock age CLI, then asks her to
    // approve B's request with that envelope.
    let evil = Kit::new(&["mallory"]);
    bgtest_key(&evil, "fake-alice");
    let mut init = bg(&evil);
    init.args(["init", "--threshold", "2"])
        .arg("--custodian")
        .arg(format!("alice={}", evil.public("fake-alice")))
        .arg("--custodian")
        .arg(format!("mallory={}", evil.public("mallory")));
    init.assert().success();
    bg(&evil)
        .args(["custodian", "export", "alice", "--out"])
        .arg(evil.path("alice.envelope"))
        .assert()
        .success();
    let plugins = path_with(&plugin_dir(&kit));
    let share = std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(evil.key("fake-alice"))
        .arg(evil.path("alice.envelope"))
        .env("PATH", &plugins)
        .output()
        .unwrap();
    assert!(share.status.success(), "{}", stderr(&share));
    std::fs::write(evil.path("share.bin"), &share.stdout).unwrap();
    let resealed = std::process::Command::new("age")
        .args(["-a", "-r", kit.public("alice").trim(), "-o"])
        .arg(home.join("envelope.age"))
        .arg(evil.path("share.bin"))
        .env("PATH", &plugins)
        .output()
        .unwrap();
    assert!(resealed.status.success(), "{}", stderr(&resealed));
    let out = bg(&evil)
        .args(["request", "--reason", "forged", "--json", "--out"])
        .arg(evil.path("b.txt"))
        .output()
        .unwrap();
    let words = support::read_back_words(&ok_json(&out));
    let forged = approve(&evil.path("b.txt"), &words, &["--envelope", "envelope.age"]);
    assert!(
        !forged.status.success(),
        "a forged vault's request was approved"
    );
    assert!(!home.join("ok.txt").exists());
    let error = support::one_line_error(&forged);
    assert!(
        error.contains("fingerprint") || error.contains("pinned"),
        "{error}"
    );
}

#[test]
fn an_identity_line_with_a_multibyte_character_is_refused_not_a_panic() {
    let kit = vault();
    support::write_private(&kit.path("odd.key"), "AGE-PLUGIN\u{e9}-1qqqq\n");
    let out = unseal(
        &kit,
        &["alice"],
        &["--identity", kit.path("odd.key").to_str().unwrap()],
        &[],
    );
    assert!(!out.status.success());
    let error = support::one_line_error(&out);
    assert!(error.contains("odd.key"), "{error}");
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn approve_and_answer_a_challenge_without_the_plugin_name_it_and_write_nothing() {
    let kit = vault();
    let (home, words) = bob_at_home_with_a_request(&kit, "r");
    bg(&kit)
        .args(["drill", "--remote", "--out"])
        .arg(kit.path("challenge.txt"))
        .assert()
        .success();
    std::fs::copy(kit.path("challenge.txt"), home.join("challenge.txt")).unwrap();
    let approve = support::bg_without_vault(&home)
        .args([
            "approve",
            "--request",
            "req.txt",
            "--identity",
            "me.key",
            "--out",
            "ok.txt",
        ])
        .args(["--words", &words])
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let answer = support::bg_without_vault(&home)
        .args([
            "drill",
            "--challenge",
            "challenge.txt",
            "--identity",
            "me.key",
            "--out",
            "proof.txt",
        ])
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    for out in [&approve, &answer] {
        assert!(!out.status.success());
        let error = support::one_line_error(out);
        assert!(
            error.contains("age-plugin-bgtest is not installed") && error.contains("install"),
            "{error}"
        );
    }
    assert!(!home.join("ok.txt").exists() && !home.join("proof.txt").exists());
}

/// Bob's own directory, holding only his hardware key file (`me.key`) and a
/// request made at the vault (`req.txt`); the request's read-back words.
fn bob_at_home_with_a_request(kit: &Kit, reason: &str) -> (PathBuf, String) {
    let home = kit.path("home-bob");
    std::fs::create_dir(&home).unwrap();
    std::fs::copy(kit.key("bob"), home.join("me.key")).unwrap();
    let out = bg(kit)
        .args(["request", "--reason", reason, "--json", "--out"])
        .arg(kit.path("req.txt"))
        .output()
        .unwrap();
    let words = support::read_back_words(&ok_json(&out));
    std::fs::copy(kit.path("req.txt"), home.join("req.txt")).unwrap();
    (home, words)
}
