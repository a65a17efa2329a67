//! Man pages and completions come from the same clap definition as --help.

mod support;

#[test]
fn man_out_dir_writes_one_page_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let run = support::bg_without_vault(dir.path())
        .args(["man", "--out-dir"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for page in [
        "breakglass.1",
        "breakglass-init.1",
        "breakglass-unseal.1",
        "breakglass-rotate.1",
        "breakglass-custodian-list.1",
        "breakglass-audit-verify.1",
    ] {
        let text =
            std::fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page} is not roff"
        );
    }
    let rotate = std::fs::read_to_string(out.join("breakglass-rotate.1")).unwrap();
    assert!(
        rotate.contains("credentials"),
        "the rotate page documents --credentials"
    );
    // A file where the directory should be: named, not a panic.
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, "x").unwrap();
    let run = support::bg_without_vault(dir.path())
        .args(["man", "--out-dir"])
        .arg(&blocked)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(support::one_line_error(&run).contains("--out-dir"));
}

#[test]
fn completions_are_printed_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let run = support::bg_without_vault(dir.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(run.status.success(), "{shell}");
        assert!(
            String::from_utf8_lossy(&run.stdout).contains("unseal"),
            "{shell}"
        );
    }
}
