//! The real prompts on a real terminal (tmux): what a custodian sees and types.
//! Passphrases and read-back words are asked on the controlling terminal even
//! when stderr goes to /dev/null; wrong answers get another try.

mod support;

use std::path::Path;

use support::tmux::{self, quote, Screen, WAIT};
use support::Kit;

/// `breakglass ARGS` as a shell line for `vault`, with the state directory the
/// other tests use (beside the vault) and no ambient vault; `tail` is appended
/// as is (a redirection such as `2>/dev/null`).
fn breakglass(vault: &Path, args: &[&str], tail: &str) -> String {
    let binary = assert_cmd::cargo::cargo_bin("breakglass");
    let words: Vec<String> = args.iter().map(|a| quote(a)).collect();
    format!(
        "unset BREAKGLASS_VAULT; {} --vault {} {} {tail}",
        quote(&binary.display().to_string()),
        quote(&vault.display().to_string()),
        words.join(" ")
    )
}

fn env_for(vault: &Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "BREAKGLASS_STATE_DIR",
            vault.parent().unwrap().join("state").display().to_string(),
        ),
        ("NO_COLOR", "1".to_string()),
    ]
}

fn spawn(kit: &Kit, args: &[&str], tail: &str) -> Screen {
    let env = env_for(&kit.vault);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Screen::spawn(kit.dir.path(), &env, &breakglass(&kit.vault, args, tail))
}

const CAROL: &str = "carol passphrase at the prompt";

/// A 2-of-3 vault: alice (age key), bob (an SSH key protected by a passphrase,
/// when `bob_ssh_pass` is given; else an age key), carol (a passphrase).
fn vault(bob_ssh_pass: Option<&str>) -> Kit {
    let kit = Kit::new(&["alice", "bob"]);
    std::fs::write(kit.path("carol.pass"), CAROL).unwrap();
    let bob = match bob_ssh_pass {
        Some(pass) => {
            let key = kit.path("bob_ssh");
            let status = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", pass, "-f"])
                .arg(&key)
                .status()
                .expect("ssh-keygen is installed (.ci/run installs openssh-client)");
            assert!(status.success());
            format!("bob=@{}", key.with_extension("pub").display())
        }
        None => format!("bob={}", kit.public("bob")),
    };
    kit.bg()
        .args(["init", "--threshold", "2", "--insecure-test-only-kdf"])
        .arg("--custodian")
        .arg(format!("alice={}", kit.public("alice")))
        .args(["--custodian", &bob, "--custodian", "carol=passphrase"])
        .arg("--passphrase-file")
        .arg(format!("carol={}", kit.path("carol.pass").display()))
        .assert()
        .success();
    kit.put("vpn", "password", "terminal-vpn-password");
    kit
}

#[test]
fn unseal_asks_for_a_passphrase_on_the_terminal_with_stderr_redirected() {
    if !tmux::available() {
        return;
    }
    let kit = vault(None);
    let alice = kit.key("alice").display().to_string();
    let screen = spawn(
        &kit,
        &[
            "unseal",
            "--reason",
            "outage",
            "--reveal",
            "vpn",
            "--endorse",
            "--identity",
            &alice,
        ],
        "2>/dev/null",
    );
    screen.wait_for_screen_text("Passphrase for custodian carol", WAIT);
    screen.type_line("not carol's passphrase");
    screen.wait_for_screen_text("Wrong passphrase for custodian carol; try again.", WAIT);
    screen.wait_for_count("Passphrase for custodian carol", 2, WAIT);
    screen.type_line(CAROL);
    let (code, text) = screen.wait_exit(WAIT);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 more share(s) needed."), "{text}");
    assert!(text.contains("terminal-vpn-password"), "{text}");
    // Hidden: neither passphrase was echoed.
    assert!(
        !text.contains(CAROL) && !text.contains("not carol's"),
        "{text}"
    );
    let actions = kit.audit_actions();
    assert!(actions.iter().any(|a| a == "reveal"), "{actions:?}");
}

#[test]
fn encrypted_ssh_key_is_unlocked_on_the_terminal_and_named() {
    if !tmux::available() {
        return;
    }
    let kit = vault(Some("bob's ssh key passphrase"));
    let key = kit.path("bob_ssh").display().to_string();
    let alice = kit.key("alice").display().to_string();
    let args = [
        "unseal",
        "--reason",
        "outage",
        "--reveal",
        "vpn",
        "--endorse",
        "--identity",
        &alice,
        "--identity",
        &key,
    ];

    // Three wrong passphrases: a one-line error naming the key file, nothing opened.
    let screen = spawn(&kit, &args, "");
    for attempt in 1..=3 {
        screen.wait_for_count(&format!("Passphrase for SSH key {key}: "), attempt, WAIT);
        screen.type_line("wrong");
        if attempt < 3 {
            screen.wait_for_count(
                &format!("Wrong passphrase for SSH key {key}; try again."),
                attempt,
                WAIT,
            );
        }
    }
    let (code, text) = screen.wait_exit(WAIT);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("error: wrong passphrase for SSH key {key}")),
        "{text}"
    );
    assert!(
        !text.contains("corrupted") && !text.contains("terminal-vpn-password"),
        "{text}"
    );
    drop(screen);

    // A wrong one, then the right one, with stderr sent away.
    let screen = spawn(&kit, &args, "2>/dev/null");
    screen.wait_for_screen_text(&format!("Passphrase for SSH key {key}: "), WAIT);
    screen.type_line("wrong");
    screen.wait_for_screen_text("Wrong passphrase for SSH key", WAIT);
    screen.wait_for_count(&format!("Passphrase for SSH key {key}: "), 2, WAIT);
    screen.type_line("bob's ssh key passphrase");
    let (code, text) = screen.wait_exit(WAIT);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("Unsealed epoch 1 with alice, bob"), "{text}");
    assert!(text.contains("terminal-vpn-password"), "{text}");
    assert!(!text.contains("bob's ssh key passphrase"), "{text}");
}

#[test]
fn drill_asks_a_passphrase_custodian_like_unseal() {
    if !tmux::available() {
        return;
    }
    let kit = vault(None);
    let screen = spawn(&kit, &["drill", "--custodian", "carol"], "2>/dev/null");
    screen.wait_for_screen_text("Passphrase for custodian carol: ", WAIT);
    screen.type_line("not it");
    screen.wait_for_screen_text("Wrong passphrase for custodian carol; try again.", WAIT);
    screen.wait_for_count("Passphrase for custodian carol: ", 2, WAIT);
    // A slip mended with Backspace, and an arrow key that is not text.
    screen.type_text(&format!("{CAROL}xy"));
    screen.press("BSpace");
    screen.press("BSpace");
    screen.press("Left");
    screen.press("Enter");
    let (code, text) = screen.wait_exit(WAIT);
    assert_eq!(code, 0, "{text}");
    let log = kit.json(&["audit", "log"]);
    let drills: Vec<&serde_json::Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "drill")
        .collect();
    assert_eq!(drills.len(), 1, "{drills:?}");
    assert_eq!(drills[0]["subject"], "carol");
    assert_eq!(drills[0]["details"]["outcome"], "pass");
}

#[test]
fn ctrl_c_at_a_hidden_prompt_leaves_the_terminal_echoing() {
    if !tmux::available() {
        return;
    }
    let kit = vault(None);
    let alice = kit.key("alice").display().to_string();
    // After the command, the shell prints whether the terminal echoes again.
    let line = format!(
        "{}; code=$?; if stty -a | tr ' ' '\\n' | grep -qx echo; then echo 'echo is on'; else echo 'echo is OFF'; fi; (exit $code)",
        breakglass(
            &kit.vault,
            &["unseal", "--reason", "outage", "--reveal", "vpn", "--endorse", "--identity", &alice],
            ""
        )
    );
    let env = env_for(&kit.vault);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let screen = Screen::spawn(kit.dir.path(), &env, &line);
    screen.wait_for_screen_text("Passphrase for custodian carol", WAIT);
    screen.type_text("half a pass");
    screen.press("C-c");
    let (code, text) = screen.wait_exit(WAIT);
    assert_eq!(code, 130, "{text}");
    assert!(text.contains("echo is on"), "{text}");
    assert!(
        !text.contains("half a pass") && !text.contains("terminal-vpn-password"),
        "{text}"
    );
}

#[test]
fn put_reads_a_hidden_value_twice_on_the_terminal() {
    if !tmux::available() {
        return;
    }
    let kit = vault(None);
    let screen = spawn(&kit, &["put", "typed", "--kind", "password"], "2>/dev/null");
    screen.wait_for_screen_text("Value for typed (hidden): ", WAIT);
    screen.type_line("typed-at-the-terminal");
    screen.wait_for_screen_text("Same value again for typed: ", WAIT);
    screen.type_line("typed-at-the-terminal");
    let (code, text) = screen.wait_exit(WAIT);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("Deposited typed version 1"), "{text}");
    assert!(!text.contains("typed-at-the-terminal"), "{text}");
    let out = kit
        .unseal(&["alice"], &["typed"])
        .arg("--passphrase-file")
        .arg(format!("carol={}", kit.path("carol.pass").display()))
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["revealed"][0]["value"], "typed-at-the-terminal", "{v}");
}

/// A hook planted in the file with an escape sequence that would erase its own
/// line: on the terminal (stderr sent away) it is shown escaped, so what is
/// confirmed is what is seen; answering no runs nothing.
#[test]
fn a_planted_hook_is_shown_escaped_before_the_question() {
    if !tmux::available() {
        return;
    }
    let kit = Kit::init(&["alice", "bob"], 2);
    kit.put("vpn", "password", "pw-1");
    kit.unseal(&["alice", "bob"], &[])
        .arg("--endorse")
        .assert()
        .success();
    kit.put("vpn", "password", "attacker-value");
    let pwned = kit.path("pwned");
    let out = std::process::Command::new("sqlite3")
        .arg(&kit.vault)
        .arg(format!(
            "UPDATE rotation_settings SET apply_cmd = char(27) || '[2K' || 'cat > {}' WHERE secret = 'vpn';",
            pwned.display()
        ))
        .output()
        .expect("sqlite3 is installed (.ci/run installs it)");
    assert!(out.status.success());
    let screen = spawn(&kit, &["rotate", "vpn", "--generate"], "2>/dev/null");
    let text =
        screen.wait_for_screen_text("Run this hook with the new value on its stdin? [y/N]", WAIT);
    assert!(
        text.contains(&format!("\\u{{1b}}[2Kcat > {}", pwned.display())),
        "{text}"
    );
    assert!(text.contains("no quorum endorsed it"), "{text}");
    screen.type_line("n");
    let (_, text) = screen.wait_exit(WAIT);
    assert!(!pwned.exists(), "a hook ran that was not confirmed: {text}");
}

/// A custodian at home with only their key and the request code.
struct Approver {
    kit: Kit,
    home: std::path::PathBuf,
    words: String,
}

fn request_to_approve() -> Approver {
    request_with_reason("Duo outage INC-9")
}

fn request_with_reason(reason: &str) -> Approver {
    let kit = Kit::init(&["alice", "bob", "carol"], 2);
    kit.put("vpn", "password", "remote-terminal-password");
    let home = kit.path("home-bob");
    std::fs::create_dir(&home).unwrap();
    std::fs::copy(kit.key("bob"), home.join("me.key")).unwrap();
    let v = kit.json(&[
        "request",
        "--reason",
        reason,
        "--out",
        &kit.path("request.txt").display().to_string(),
    ]);
    std::fs::copy(kit.path("request.txt"), home.join("request.txt")).unwrap();
    let words: Vec<&str> = v["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    Approver {
        words: words.join(" "),
        kit,
        home,
    }
}

impl Approver {
    /// `approve` run by the custodian at home (no vault), on the terminal.
    fn spawn(&self, tail: &str) -> Screen {
        let binary = assert_cmd::cargo::cargo_bin("breakglass");
        let line = format!(
            "unset BREAKGLASS_VAULT; {} approve --request request.txt --identity me.key --out approval.txt {tail}",
            quote(&binary.display().to_string())
        );
        let state = self.home.join("state").display().to_string();
        Screen::spawn(
            &self.home,
            &[("BREAKGLASS_STATE_DIR", &state), ("NO_COLOR", "1")],
            &line,
        )
    }
}

#[test]
fn approve_reads_the_words_typed_on_the_terminal() {
    if !tmux::available() {
        return;
    }
    let a = request_to_approve();
    // stderr sent away: the request is still shown on the terminal before the question.
    let screen = a.spawn("2>/dev/null");
    let text = screen.wait_for_screen_text("Type the read-back words", WAIT);
    assert!(text.contains("Reason:    Duo outage INC-9"), "{text}");
    screen.type_line(&a.words);
    let (code, text) = screen.wait_exit(WAIT);
    assert_eq!(code, 0, "{text}");
    let approval = std::fs::read_to_string(a.home.join("approval.txt")).unwrap();
    assert!(text.contains(approval.trim()), "{text}");

    // The requester opens the vault with it and alice's key.
    let out = a
        .kit
        .bg()
        .args(["unseal", "--reveal", "vpn", "--json", "--request"])
        .arg(a.kit.path("request.txt"))
        .arg("--approval")
        .arg(a.home.join("approval.txt"))
        .arg("--identity")
        .arg(a.kit.key("alice"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("remote-terminal-password"));
}

#[test]
fn approve_gives_a_mistyped_word_another_try_and_says_to_compare_by_voice() {
    if !tmux::available() {
        return;
    }
    let a = request_to_approve();
    let screen = a.spawn("2>/dev/null");
    screen.wait_for_screen_text("Type the read-back words", WAIT);
    // One word misheard: asked again, with the hint to compare by voice.
    let mut misheard: Vec<&str> = a.words.split(' ').collect();
    misheard[2] = "zebra";
    screen.type_line(&misheard.join(" "));
    let text = screen.wait_for_screen_text("try 1 of 3", WAIT);
    assert!(
        text.contains("Compare them with the requester by voice"),
        "{text}"
    );
    assert!(!text.contains("altered"), "{text}");
    screen.type_line(&a.words);
    let (code, text) = screen.wait_exit(WAIT);
    assert_eq!(code, 0, "{text}");
    assert!(a.home.join("approval.txt").exists());

    // Three wrong tries: only now does it say the request may have been altered.
    std::fs::remove_file(a.home.join("approval.txt")).unwrap();
    let screen = a.spawn("");
    for attempt in 1..=3 {
        screen.wait_for_count("Type the read-back words", attempt, WAIT);
        screen.type_line("alpha bravo charlie delta echo foxtrot");
    }
    let (code, text) = screen.wait_exit(WAIT);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("still do not match after 3 tries") && text.contains("altered in transit"),
        "{text}"
    );
    assert!(!a.home.join("approval.txt").exists());
}

#[test]
fn approve_names_a_wrong_key_before_asking_for_words() {
    if !tmux::available() {
        return;
    }
    let a = request_to_approve();
    // carol's key in bob's directory would be fine; a stranger's key is not.
    let stranger = Kit::new(&["zed"]);
    std::fs::remove_file(a.home.join("me.key")).unwrap();
    std::fs::copy(stranger.key("zed"), a.home.join("me.key")).unwrap();
    let screen = a.spawn("");
    let (code, text) = screen.wait_exit(WAIT);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("me.key: matches no custodian"), "{text}");
    assert!(!text.contains("Type the read-back words"), "{text}");
}

// With no controlling terminal (support spawns the binary via setsid), a value
// that must be asked is a one-line error at once, saying what to give instead.

#[test]
fn no_terminal_encrypted_ssh_key_says_so() {
    let kit = vault(Some("bob's ssh key passphrase"));
    let key = kit.path("bob_ssh");
    let out = kit
        .bg()
        .args(["unseal", "--reason", "r", "--reveal", "vpn", "--identity"])
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(&key)
        .output()
        .unwrap();
    let err = support::one_line_error(&out);
    assert!(
        err.contains(&format!(
            "SSH key {} is encrypted (protected by a passphrase) and there is no terminal to ask for its passphrase",
            key.display()
        )),
        "{err}"
    );
    assert!(!err.contains("not sealed"), "{err}");
    assert!(out.stdout.is_empty());
    // The same for a drill, and nothing was logged.
    let before = kit.audit_actions();
    let out = kit
        .bg()
        .args(["drill", "--identity"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(support::one_line_error(&out)
        .contains("is encrypted (protected by a passphrase) and there is no terminal"));
    assert_eq!(kit.audit_actions(), before);
}

#[test]
fn no_terminal_passphrase_custodian_names_the_file_to_give() {
    let kit = vault(None);
    let before = kit.audit_actions();
    // drill --custodian: refused before anything runs.
    let out = kit
        .bg()
        .args(["drill", "--custodian", "carol"])
        .output()
        .unwrap();
    let err = support::one_line_error(&out);
    assert!(
        err.contains(
            "no terminal to ask for custodian carol's passphrase; give --passphrase-file carol=PATH"
        ),
        "{err}"
    );
    // A key custodian has no passphrase to ask for.
    let out = kit
        .bg()
        .args(["drill", "--custodian", "alice"])
        .output()
        .unwrap();
    assert!(support::one_line_error(&out)
        .contains("custodian alice: holds a key (age), not a passphrase"),);
    assert_eq!(kit.audit_actions(), before);

    // unseal one share short: the error says whose passphrase could not be asked.
    let out = kit
        .bg()
        .args(["unseal", "--reason", "r", "--reveal", "vpn", "--identity"])
        .arg(kit.key("alice"))
        .output()
        .unwrap();
    let err = support::one_line_error(&out);
    assert!(
        err.contains("1 of 2 shares gathered; 1 more missing")
            && err.contains(
                "no terminal to ask for custodian carol's passphrase; give --passphrase-file carol=PATH"
            ),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("terminal-vpn-password"));
    // Logged as a failed unseal, as any quorum that falls short is; nothing revealed.
    let mut expected = before;
    expected.push("unseal_failed".to_string());
    assert_eq!(kit.audit_actions(), expected);
}

#[test]
fn no_terminal_approve_with_custodian_says_what_to_give() {
    let a = request_to_approve();
    let out = support::bg_without_vault(&a.home)
        .args([
            "approve",
            "--request",
            "request.txt",
            "--custodian",
            "carol",
            "--out",
            "approval.txt",
            "--words",
            &a.words,
        ])
        .output()
        .unwrap();
    let err = support::one_line_error(&out);
    assert!(
        err.contains(
            "no terminal to ask for custodian carol's passphrase; give --passphrase-file carol=PATH"
        ),
        "{err}"
    );
    assert!(!a.home.join("approval.txt").exists());
}

/// A reason with an escape sequence (here: erase the line) cannot redraw what a
/// custodian reads before approving: it is shown escaped.
#[test]
fn a_request_reason_cannot_redraw_the_screen() {
    let a = request_with_reason("\u{1b}[2K\rroutine check");
    let out = support::bg_without_vault(&a.home)
        .args([
            "approve",
            "--request",
            "request.txt",
            "--identity",
            "me.key",
            "--out",
            "approval.txt",
            "--words",
            &a.words,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Reason:    \\u{1b}[2K\\rroutine check"),
        "{stderr}"
    );
    assert!(!out.stderr.contains(&0x1b), "{stderr}");
}
