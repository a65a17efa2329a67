//! Wiring: parse args, resolve inputs, call the library, render, map errors to exit codes.

/// `println!` that never panics: a closed stdout ends the output quietly (see output.rs).
macro_rules! outln {
    () => { $crate::cli::output::stdout(format_args!("\n")) };
    ($($arg:tt)*) => {
        if $crate::cli::output::is_open() {
            $crate::cli::output::stdout(format_args!("{}\n", format_args!($($arg)*)))
        }
    };
}

/// `print!` that never panics.
macro_rules! out {
    ($($arg:tt)*) => {
        if $crate::cli::output::is_open() {
            $crate::cli::output::stdout(format_args!($($arg)*))
        }
    };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod args;
mod custodian;
mod input;
mod output;
mod render;

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use breakglass::audit::{Anchor, AnchorMismatch};
use breakglass::notify::AlertSink;
use breakglass::remote::{parse_ttl, ParsedRequest};
use breakglass::vault::Policy;
use breakglass::vault::Reveal;
use breakglass::vault::{
    current_actor, enrol, Charset, CustodianSpec, Deposit, DrillRequest, ExposedRequest,
    InitOptions, NewValue, RecipientSpec, RekeyChanges, RemoteApprovals, RotateRequest, SecretKind,
    Unendorsed, UnsealRequest,
};
use breakglass::{Access, Vault, VaultError};
use clap::{CommandFactory, Parser};

use args::{
    AlertsCommand, AuditCommand, CharsetArg, Cli, Command, CustodianCommand, ExportFormat, KindArg,
    RunbookCommand,
};

/// `--fingerprint` / `BREAKGLASS_FINGERPRINT`: every vault opened must be this one.
static EXPECTED_FINGERPRINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

const EXIT_OK: i32 = 0;
const EXIT_FAILURE: i32 = 1;

pub fn run(hygiene: &breakglass::hygiene::Hygiene) -> i32 {
    let cli = Cli::parse();
    if handles_secrets(&cli.command) {
        if let Some(warning) = hygiene.warning() {
            errln!("{warning}");
        }
    }
    let vault_path = cli
        .vault
        .clone()
        .unwrap_or_else(|| PathBuf::from("breakglass.db"));
    let _ = EXPECTED_FINGERPRINT.set(cli.fingerprint.clone());
    let _ = input::PLUGIN_TIMEOUT_SECS.set(cli.plugin_timeout);
    let writes = writes_to_vault(&cli.command);
    let requeue = reads_the_whole_log(&cli.command);
    let code = match dispatch(cli.command, cli.vault.is_some(), &vault_path) {
        Ok(code) => code,
        Err(e) => {
            render::error(&e.to_string());
            EXIT_FAILURE
        }
    };
    if writes {
        deliver_queued_alerts(&vault_path, requeue);
    }
    if output::broken_pipe() {
        // The reader went away (`breakglass list | head -1`): end quietly, as a
        // process killed by SIGPIPE would.
        return output::EXIT_BROKEN_PIPE;
    }
    if output::failed() {
        if code == EXIT_OK {
            render::error("stdout: the output could not be written in full (a write failed); check where it goes and run the command again");
        }
        return EXIT_FAILURE;
    }
    code
}

/// Commands that hold key material, shares, passphrases or secret values in
/// memory: before them, a failed memory lock (or core-dump setting) is warned
/// about, once. Read-only commands see only public data and stay quiet.
fn handles_secrets(command: &Command) -> bool {
    !matches!(
        command,
        Command::List(_)
            | Command::Status(_)
            | Command::Runbook(_)
            | Command::Repin { .. }
            | Command::VerifyCopy { .. }
            | Command::Audit(_)
            | Command::Alerts(_)
            | Command::Completions { .. }
            | Command::Man { .. }
    ) && !matches!(
        command,
        Command::Custodian(CustodianCommand::List(_) | CustodianCommand::Export { .. })
    )
}

/// Commands that may queue alerts; after them, queued alerts are delivered.
fn writes_to_vault(command: &Command) -> bool {
    !matches!(
        command,
        Command::List(_)
            | Command::Status(_)
            | Command::Custodian(_)
            | Command::Approve(_)
            | Command::VerifyCopy { .. }
            | Command::Repin { .. }
            | Command::Audit(_)
            | Command::Alerts(_)
            | Command::Completions { .. }
            | Command::Man { .. }
    ) && !matches!(command, Command::Runbook(a) if a.command.is_none())
        // Answering a drill challenge runs on a custodian's machine, vault-less.
        && !matches!(command, Command::Drill(a) if a.challenge.is_some())
}

/// Quorum sessions read and verify the whole log anyway: after them, alerts
/// deleted from the queue are also looked for and queued again. After any
/// other write (put, rotate…) only what is queued is delivered, so the cost
/// does not grow with the vault (`status` names deleted alerts; `alerts flush`
/// queues them again).
fn reads_the_whole_log(command: &Command) -> bool {
    matches!(
        command,
        Command::Unseal(_) | Command::Drill(_) | Command::Rekey(_)
    )
}

/// After the command's work is done: try this machine's queued alerts once,
/// every sink in parallel within one small budget (a dead or hung sink costs
/// at most that, once; then it backs off). Failures stay queued and are
/// summed up in one short warning line; they never change the exit code.
fn deliver_queued_alerts(path: &Path, requeue: bool) {
    let Ok(mut vault) = Vault::open(path, Access::ReadWrite) else {
        return;
    };
    if let Ok(report) = vault.deliver_alerts(requeue) {
        if let Some(line) = render::alert_warning(&report) {
            errln!("{line}");
        }
    }
}

fn dispatch(command: Command, vault_flag: bool, path: &Path) -> Result<i32, VaultError> {
    let actor = current_actor();
    match command {
        Command::Init(a) => {
            let custodians = custodian_specs(&a.custodians, "--custodian")?;
            let mut passphrases = input::passphrase_files(&a.passphrase_files)?;
            ask_new_passphrases(&custodians, &mut passphrases)?;
            let alerts = alert_sinks(&a.alerts)?;
            let options = InitOptions {
                alerts,
                threshold: a.threshold,
                custodians,
                passphrases,
                insecure_test_only_kdf: a.insecure_test_only_kdf,
            };
            let mut vault = Vault::create(path, options, &actor, &mut input::Terminal::default())?;
            show_warnings(&mut vault);
            render::init(&vault, a.json);
            Ok(EXIT_OK)
        }
        Command::Custodian(CustodianCommand::Enroll(a)) => enroll(a),
        Command::Custodian(CustodianCommand::List(f)) => {
            let vault = open(path, Access::ReadOnly)?;
            render::custodians(&vault.custodians(), f.json);
            Ok(EXIT_OK)
        }
        Command::Custodian(CustodianCommand::Export {
            name,
            out,
            all,
            out_dir,
        }) => {
            let vault = open(path, Access::ReadOnly)?;
            let targets: Vec<(String, PathBuf)> = match (all, name, out, out_dir) {
                (true, _, _, Some(dir)) => {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(&dir)
                        .map_err(|e| {
                            VaultError::Invalid(format!("--out-dir {}: {e}", dir.display()))
                        })?;
                    vault
                        .custodians()
                        .custodians
                        .into_iter()
                        .map(|c| {
                            let file = dir.join(format!("{}.age", c.name));
                            (c.name, file)
                        })
                        .collect()
                }
                (false, Some(name), Some(out), _) => vec![(name, out)],
                _ => {
                    return Err(VaultError::Invalid(
                        "give NAME --out FILE, or --all --out-dir DIR".into(),
                    ))
                }
            };
            for (_, file) in &targets {
                refuse_existing(file)?;
            }
            for (name, file) in &targets {
                let envelope = vault.export_envelope(name)?;
                write_new_file(file, envelope.as_bytes())?;
                errln!(
                    "Wrote the epoch {} envelope of custodian {name} to {} (open it with `age -d -i KEY`).",
                    vault.manifest().epoch,
                    file.display()
                );
            }
            Ok(EXIT_OK)
        }
        Command::Put(a) => {
            let mut vault = open(path, Access::ReadWrite)?;
            let policy = Policy::parse(a.max_age.as_deref(), a.expires.as_deref())?;
            vault.refuse_while_rotating(&a.name, "nothing was deposited")?;
            let value = input::secret_value(a.file.as_deref(), &a.name)?;
            let kind = match a.kind {
                KindArg::Password => SecretKind::Password,
                KindArg::BypassCodes => SecretKind::BypassCodes,
                KindArg::Note => SecretKind::Note,
            };
            let name = a.name.clone();
            let rotator = input::rotator_change(a.rotator.as_deref(), a.rotator_config.as_deref())?;
            let version = vault.put(
                Deposit {
                    name: a.name,
                    kind,
                    username: a.username,
                    url: a.url,
                    note: a.note,
                    value,
                    apply: a.apply,
                    policy,
                    rotator,
                },
                &actor,
            )?;
            outln!(
                "Deposited {name} version {version}, sealed to vault {} epoch {}.",
                vault.fingerprint(),
                vault.manifest().epoch
            );
            Ok(EXIT_OK)
        }
        Command::Rotate(a) => {
            let mut vault = open(path, Access::ReadWrite)?;
            if a.exposed {
                // --trust-hook trusts exactly what it shows, never a row
                // swapped in after: it confirms without asking.
                let (confirmed_hooks, confirmed_rotators) =
                    confirm_exposed_settings(&vault, a.trust_hook)?;
                let mut credentials = Vec::new();
                for name in vault.exposed_names()? {
                    if let Some(kind) = vault.rotator_of(&name)? {
                        let file = input::credentials_file_for(&a.credentials, &name, true)?;
                        credentials.push((
                            name.clone(),
                            input::rotator_credentials(file.as_deref(), &name, kind)?,
                        ));
                    }
                }
                let report = vault.rotate_exposed(ExposedRequest {
                    actor,
                    trust_hook: false,
                    confirmed_hooks,
                    confirmed_rotators,
                    credentials,
                })?;
                render::rotate_exposed(&report, a.json);
                let done = report.failed.is_empty() && report.needs_human.is_empty();
                return Ok(if done { EXIT_OK } else { EXIT_FAILURE });
            }
            let name = a.name.expect("clap requires NAME without --exposed");
            if a.abandon {
                let outcome = vault.abandon_rotation(&name, &actor)?;
                render::abandoned(&outcome, a.json);
                return Ok(EXIT_OK);
            }
            let policy = Policy::parse(a.max_age.as_deref(), a.expires.as_deref())?;
            vault.refuse_while_rotating(&name, "nothing was rotated")?;
            let change = input::rotator_change(a.rotator.as_deref(), a.rotator_config.as_deref())?;
            let stored_rotator = vault.rotator_of(&name)?;
            // With --apply the library refuses a secret that has a rotator. A
            // rotator set on this command line runs as given (no question).
            let rotator = match &change {
                Some(c) => c.rotator().map(|r| r.kind()),
                None => stored_rotator.filter(|_| a.apply.is_none()),
            };
            let from_command_line = change.is_some();
            // A stored, unendorsed rotator is shown and confirmed (with
            // --trust-hook, without asking): exactly what was shown may run.
            let confirmed_rotator = match (&rotator, from_command_line) {
                (Some(_), false) => {
                    let stored = vault.untrusted_rotator(&name)?;
                    match &stored {
                        Some(setting) if !confirm_rotator(setting, &name, a.trust_hook)? => None,
                        _ => stored,
                    }
                }
                _ => None,
            };
            let credentials = match rotator {
                Some(kind) => {
                    let file = input::credentials_file_for(&a.credentials, &name, false)?;
                    Some(input::rotator_credentials(file.as_deref(), &name, kind)?)
                }
                None if !a.credentials.is_empty()
                    && (stored_rotator.is_none() || change.is_some()) =>
                {
                    return Err(VaultError::Secret {
                        name,
                        detail: "has no rotator; --credentials is for a secret put with --rotator"
                            .into(),
                    })
                }
                None => None,
            };
            let value = if rotator.is_some() && !a.generate && a.file.is_none() {
                NewValue::ByRotator
            } else if a.generate {
                NewValue::Generate {
                    length: a.length,
                    charset: match a.charset {
                        CharsetArg::Alnum => Charset::Alnum,
                        CharsetArg::AlnumSymbols => Charset::AlnumSymbols,
                        CharsetArg::Hex => Charset::Hex,
                        CharsetArg::Digits => Charset::Digits,
                    },
                }
            } else {
                NewValue::Given(input::secret_value(a.file.as_deref(), &name)?)
            };
            let confirmed_hook = match &a.apply {
                None if rotator.is_none() => {
                    let stored = vault.untrusted_hook(&name)?;
                    if confirm_hook(&stored, &name, a.trust_hook)? {
                        stored
                    } else {
                        None
                    }
                }
                _ => None,
            };
            let outcome = vault.rotate(RotateRequest {
                name,
                value,
                apply: a.apply,
                policy,
                actor,
                // --trust-hook became the confirmation of what was shown.
                trust_hook: false,
                confirmed_hook,
                credentials,
                confirmed_rotator,
                rotator: change,
            })?;
            render::rotated(&outcome, a.json);
            Ok(EXIT_OK)
        }
        Command::List(f) => {
            let vault = open(path, Access::ReadOnly)?;
            render::list(&vault.list()?, f.json);
            Ok(EXIT_OK)
        }
        Command::Status(a) => {
            let vault = open(path, Access::ReadOnly)?;
            let report = vault.status()?;
            render::status(&report, a.json);
            Ok(if a.check && !report.attention.is_empty() {
                EXIT_FAILURE
            } else {
                EXIT_OK
            })
        }
        Command::Request(a) => {
            let ttl = parse_ttl(&a.ttl).map_err(VaultError::Invalid)?;
            refuse_existing(&a.out)?;
            let mut vault = open(path, Access::ReadWrite)?;
            let for_paths: Vec<PathBuf> = a
                .for_custodians
                .iter()
                .map(|name| PathBuf::from(format!("{}.{name}", a.out.display())))
                .collect();
            for p in &for_paths {
                refuse_existing(p)?;
            }
            // Made before the request, so an --out that cannot be written
            // leaves nothing: no request row, no key in the state directory.
            let out = create_new_file(&a.out)?;
            let issued = vault
                .create_request(&a.reason, ttl, &actor, &a.for_custodians)
                .inspect_err(|_| {
                    let _ = std::fs::remove_file(&a.out);
                })?;
            fill_new_file(out, &a.out, format!("{}\n", issued.code).as_bytes()).map_err(|e| {
                // Nobody has the code: its key goes, and nothing can approve it.
                let _ = breakglass::remote::pending::discard(&issued.request_id);
                VaultError::Invalid(format!(
                    "{e}; request {} was withdrawn (its key deleted)",
                    issued.request_id
                ))
            })?;
            // The short codes are extras: the request stands with the full one.
            for (name, p) in a.for_custodians.iter().zip(&for_paths) {
                write_new_file(p, format!("{}\n", issued.codes_for[name]).as_bytes())?;
            }
            render::request(&issued, &a.out, a.json);
            Ok(EXIT_OK)
        }
        Command::Approve(a) => custodian::approve(a, vault_flag, path),
        Command::Drill(a) if a.challenge.is_some() => custodian::answer_challenge(
            a.challenge_answer().expect("checked by the guard"),
            vault_flag,
            path,
        ),
        Command::Drill(a) if a.remote => {
            let ttl = parse_ttl(&a.ttl).map_err(VaultError::Invalid)?;
            let out = a.out.as_ref().expect("clap requires --out with --remote");
            refuse_existing(out)?;
            let mut vault = open(path, Access::ReadWrite)?;
            let issued = vault.create_drill_challenge(ttl, &actor)?;
            write_new_file(out, format!("{}\n", issued.code).as_bytes())?;
            render::drill_challenge(&issued, out, a.json);
            Ok(EXIT_OK)
        }
        Command::Drill(a) if !a.proofs.is_empty() => {
            let mut vault = open(path, Access::ReadWrite)?;
            let mut stdin_used = false;
            let proofs = a
                .proofs
                .iter()
                .map(|p| input::code_file(p, "--proof", "drill proof code", &mut stdin_used))
                .collect::<Result<Vec<_>, VaultError>>()?;
            let checks = vault.check_drill_proofs(&proofs, &actor)?;
            show_warnings(&mut vault);
            render::drill_proofs(&checks, a.json);
            Ok(if checks.iter().all(|c| c.passed) {
                EXIT_OK
            } else {
                EXIT_FAILURE
            })
        }
        Command::Drill(a) => {
            let mut vault = open(path, Access::ReadWrite)?;
            let envelope = match &a.envelope {
                Some(p) => Some((p.display().to_string(), input::text(Some(p), "envelope")?)),
                None => None,
            };
            let report = vault.drill(
                DrillRequest {
                    actor,
                    identities: input::identity_files(&a.identities)?,
                    passphrases: input::passphrase_files(&a.passphrase_files)?,
                    ask: a.custodians,
                    envelope,
                    full: a.full,
                    endorse: if a.full {
                        endorsement(&vault, a.endorse)?
                    } else {
                        Default::default()
                    },
                },
                &mut input::Terminal::default(),
            )?;
            show_warnings(&mut vault);
            render::drill(&report, a.json);
            Ok(if report.ok { EXIT_OK } else { EXIT_FAILURE })
        }
        Command::Runbook(a) => match a.command {
            Some(RunbookCommand::Set { file }) => {
                let mut vault = open(path, Access::ReadWrite)?;
                let text = input::text(file.as_deref(), "runbook")?;
                vault.set_runbook(&text, &actor)?;
                outln!(
                    "Runbook of vault {} updated ({} bytes).",
                    vault.fingerprint(),
                    text.len()
                );
                Ok(EXIT_OK)
            }
            None => {
                let vault = open(path, Access::ReadOnly)?;
                render::runbook(&vault.runbook()?, a.json);
                Ok(EXIT_OK)
            }
        },
        Command::Unseal(a) => {
            let mut vault = open(path, Access::ReadWrite)?;
            let remote = match &a.request {
                Some(file) => Some(remote_approvals(&mut vault, file, &a.approvals, &actor)?),
                None => None,
            };
            let reason = match (&remote, a.reason) {
                // The reason recorded on this machine when the request was made.
                (Some(r), _) => r.request().request.reason.clone(),
                (None, Some(reason)) => reason,
                (None, None) => String::new(),
            };
            if reason.trim().is_empty() {
                return Err(VaultError::Invalid(
                    "--reason is empty; say why the vault is being opened".into(),
                ));
            }
            let request = UnsealRequest {
                reason,
                remote,
                actor,
                identities: input::identity_files(&a.identities)?,
                passphrases: input::passphrase_files(&a.passphrase_files)?,
                reveal: a
                    .reveal
                    .into_iter()
                    .map(Reveal::whole)
                    .chain(a.reveal_one.into_iter().map(Reveal::one_code))
                    .chain(input::reveal_versions(&a.reveal_version)?)
                    .collect(),
                no_rekey: a.no_rekey,
                one_code: a.one,
                endorse: endorsement(&vault, a.endorse)?,
            };
            let report = vault.unseal(request, &mut input::Terminal::default())?;
            show_warnings(&mut vault);
            let anchor = vault.audit_anchor().ok();
            render::unseal(&report, anchor.as_deref(), a.json);
            Ok(EXIT_OK)
        }
        Command::Rekey(a) => {
            let mut vault = open(path, Access::ReadWrite)?;
            let add = custodian_specs(&a.add, "--add-custodian")?;
            let sinks = alert_sinks(&a.alerts)?;
            let alerts = if a.clear_alerts {
                Some(Vec::new())
            } else if sinks.is_empty() {
                None
            } else {
                Some(sinks)
            };
            let (mut new_passphrases, quorum_passphrases): (Vec<_>, Vec<_>) =
                input::passphrase_files(&a.passphrase_files)?
                    .into_iter()
                    .partition(|(n, _)| add.iter().any(|c| &c.name == n));
            ask_new_passphrases(&add, &mut new_passphrases)?;
            let quorum = UnsealRequest {
                reason: a.reason,
                actor,
                identities: input::identity_files(&a.identities)?,
                passphrases: quorum_passphrases,
                reveal: Vec::new(),
                no_rekey: false,
                one_code: false,
                remote: None,
                endorse: endorsement(&vault, a.endorse)?,
            };
            let report = vault.rekey(
                quorum,
                RekeyChanges {
                    threshold: a.threshold,
                    add,
                    remove: a.remove,
                    new_passphrases,
                    alerts,
                },
                &mut input::Terminal::default(),
            )?;
            show_warnings(&mut vault);
            render::rekeyed(&report, a.json);
            Ok(EXIT_OK)
        }
        Command::Repin { old, new } => {
            // The vault file at the path (if there is one here) and every
            // custodian key pinned to OLD move to NEW; both are named by the user.
            let mut moved = Vec::new();
            if path.exists()
                && breakglass::remote::pins::pinned_path(path).as_deref() == Some(old.as_str())
            {
                Vault::repin(path, &old, &new)?;
                moved.push(format!("vault file {}", path.display()));
            }
            let keys = breakglass::remote::pins::repin_custodian(&old, &new)
                .map_err(|e| VaultError::Invalid(e.to_string()))?;
            if keys > 0 {
                moved.push(format!("{keys} custodian key(s)"));
            }
            if moved.is_empty() {
                return Err(VaultError::Invalid(format!(
                    "no pin on this machine names {old}; nothing was re-pinned (check the fingerprints and --vault)"
                )));
            }
            outln!(
                "Re-pinned {} from {old} to {new}. Check {new} with the other custodians before you rely on it.",
                moved.join(" and ")
            );
            Ok(EXIT_OK)
        }
        Command::VerifyCopy { other, json } => {
            let vault = open(path, Access::ReadOnly)?;
            let copy = open(&other, Access::ReadOnly)?;
            let report = vault.compare_copy(&copy)?;
            render::copy_comparison(&report, &other, json);
            Ok(if report.same_vault && !report.diverged {
                EXIT_OK
            } else {
                EXIT_FAILURE
            })
        }
        Command::Alerts(AlertsCommand::List { all, json }) => {
            let vault = open(path, Access::ReadOnly)?;
            render::alerts(&vault.alerts(all)?, json);
            Ok(EXIT_OK)
        }
        Command::Alerts(AlertsCommand::Flush(f)) => {
            let mut vault = open(path, Access::ReadWrite)?;
            let report = vault.flush_alerts(f.adopt)?;
            render::flushed(&report, f.json);
            Ok(if report.pending == 0 && report.origin_problem.is_none() {
                EXIT_OK
            } else {
                EXIT_FAILURE
            })
        }
        Command::Audit(AuditCommand::Log(f)) => {
            let vault = open(path, Access::ReadOnly)?;
            render::audit_log(&vault.audit_log()?, f.json);
            Ok(EXIT_OK)
        }
        Command::Audit(AuditCommand::Verify {
            file: Some(file),
            anchor,
            json,
        }) => {
            let anchor = anchor.as_deref().map(read_anchor).transpose()?;
            let text = input::text(Some(&file), "export file")?;
            let anchor_text = anchor.as_ref().map(|(text, _)| text.as_str());
            let (fingerprint, report) = breakglass::vault::verify_export(&text, anchor_text)?;
            if !json && report.ok {
                outln!("Export of vault {fingerprint}:");
            }
            render::audit_verify(&report, json);
            Ok(if report.ok { EXIT_OK } else { EXIT_FAILURE })
        }
        Command::Audit(AuditCommand::Export { format, since, out }) => {
            let vault = open(path, Access::ReadOnly)?;
            let text = vault.export_audit(format == ExportFormat::Csv, since)?;
            match out {
                Some(file) => {
                    refuse_existing(&file)?;
                    write_new_file(&file, text.as_bytes())?;
                    errln!("Exported the audit log to {}.", file.display());
                }
                None => out!("{text}"),
            }
            Ok(EXIT_OK)
        }
        Command::Audit(AuditCommand::Verify { anchor, json, .. }) => {
            // A malformed anchor is a usage error, found before the vault is read.
            let anchor = anchor.as_deref().map(read_anchor).transpose()?;
            let vault = open(path, Access::ReadOnly)?;
            let mut report = vault.verify_audit()?;
            if let (true, Some((_, anchor))) = (report.ok, &anchor) {
                match vault.check_anchor(anchor)? {
                    Ok(()) => {}
                    // Not tampering: an anchor of another vault, or a copy older than
                    // the anchor. Say so; no tamper alert.
                    Err(
                        e @ (AnchorMismatch::OtherVault { .. } | AnchorMismatch::OlderCopy { .. }),
                    ) => {
                        return Err(VaultError::Invalid(e.to_string()));
                    }
                    Err(AnchorMismatch::Altered(problem)) => {
                        report.ok = false;
                        report.problem = Some(problem);
                    }
                }
            }
            if !report.ok {
                alert_verify_failed(&vault, &report);
            }
            render::audit_verify(&report, json);
            Ok(if report.ok { EXIT_OK } else { EXIT_FAILURE })
        }
        Command::Audit(AuditCommand::Merge { other, json }) => {
            let mut vault = open(path, Access::ReadWrite)?;
            let copy = open(&other, Access::ReadOnly)?;
            let report = vault.merge_from(&copy, &actor)?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("serializes")
                );
            } else {
                outln!(
                    "Merged {} entries from {} (shared {}; {} were merged before).",
                    report.merged,
                    other.display(),
                    report.common,
                    report.already_merged
                );
            }
            Ok(EXIT_OK)
        }
        Command::Audit(AuditCommand::Head(f)) => {
            let vault = open(path, Access::ReadOnly)?;
            let anchor = vault.audit_anchor()?;
            if f.json {
                outln!("{}", serde_json::json!({ "anchor": anchor }));
            } else {
                outln!("{anchor}");
            }
            Ok(EXIT_OK)
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "breakglass", &mut script);
            output::stdout_bytes(&script);
            Ok(EXIT_OK)
        }
        Command::Man { out_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir).map_err(|e| {
                VaultError::Invalid(format!(
                    "--out-dir {}: cannot create it ({e})",
                    dir.display()
                ))
            })?;
            clap_mangen::generate_to(Cli::command(), &dir).map_err(|e| {
                VaultError::Invalid(format!(
                    "--out-dir {}: cannot write man pages ({e})",
                    dir.display()
                ))
            })?;
            let count = std::fs::read_dir(&dir)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.path().extension().is_some_and(|x| x == "1"))
                        .count()
                })
                .unwrap_or(0);
            outln!("Wrote {count} man pages to {}.", dir.display());
            Ok(EXIT_OK)
        }
        Command::Man { out_dir: None } => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|e| VaultError::Invalid(format!("man page: {e}")))?;
            output::stdout_bytes(&page);
            Ok(EXIT_OK)
        }
    }
}

/// An anchor line from a file, or from stdin for `-`: its text and its parsed form.
/// Anything that does not parse is a one-line usage error naming the source.
fn read_anchor(source: &str) -> Result<(String, Anchor), VaultError> {
    let (label, bytes) = if source == "-" {
        ("(stdin)".to_string(), input::bytes(None, "anchor")?)
    } else {
        (
            source.to_string(),
            input::bytes(Some(Path::new(source)), "anchor file")?,
        )
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let anchor = Anchor::parse(&text).map_err(|why| {
        VaultError::Invalid(format!(
            "anchor {label} is not a BGANCHOR1 line ({why}); use the output of `breakglass audit head`"
        ))
    })?;
    Ok((text, anchor))
}

/// Fail early, before any state changes, if an --out file already exists.
fn refuse_existing(path: &Path) -> Result<(), VaultError> {
    if path.exists() {
        return Err(VaultError::Invalid(format!(
            "--out {}: already exists; choose a new file",
            path.display()
        )));
    }
    Ok(())
}

/// Create `path` mode 0600, refusing to overwrite anything.
fn write_new_file(path: &Path, contents: &[u8]) -> Result<(), VaultError> {
    fill_new_file(create_new_file(path)?, path, contents)
}

fn out_failed(path: &Path, e: std::io::Error) -> VaultError {
    VaultError::Invalid(format!(
        "--out {}: cannot write it ({e}); choose a new file",
        path.display()
    ))
}

/// Create `path` empty, mode 0600, refusing to overwrite anything.
fn create_new_file(path: &Path) -> Result<std::fs::File, VaultError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| out_failed(path, e))
}

/// Write and sync `contents` into the new file `file` at `path`; on failure the
/// file is removed, as a partial one (a full disk) would look like a whole one.
fn fill_new_file(mut file: std::fs::File, path: &Path, contents: &[u8]) -> Result<(), VaultError> {
    file.write_all(contents)
        .and_then(|_| file.sync_all())
        .map_err(|e| {
            let _ = std::fs::remove_file(path);
            out_failed(path, e)
        })
}

/// The requester's side of `unseal --request`: the request file only names the
/// request; the request itself and its ephemeral key come from the record kept on
/// this machine when it was made. Then the approval codes that came back.
fn remote_approvals(
    vault: &mut Vault,
    file: &Path,
    approvals: &[PathBuf],
    actor: &str,
) -> Result<RemoteApprovals, VaultError> {
    let stdin = Path::new("-");
    let dashes = std::iter::once(file)
        .chain(approvals.iter().map(PathBuf::as_path))
        .filter(|p| *p == stdin)
        .count();
    if dashes > 1 {
        return Err(VaultError::Invalid(format!(
            "--request/--approval: - (stdin) is given {dashes} times, and stdin carries one code; give the others as files"
        )));
    }
    let mut stdin_used = false;
    let (label, text) = input::code_file(file, "--request", "request code", &mut stdin_used)?;
    let request =
        ParsedRequest::parse(&text).map_err(|e| VaultError::Invalid(format!("{label}: {e}")))?;
    let codes = approvals
        .iter()
        .map(|p| input::code_file(p, "--approval", "approval code", &mut stdin_used))
        .collect::<Result<Vec<_>, VaultError>>()?;
    let unused: Vec<String> = codes.iter().map(|(label, _)| label.clone()).collect();
    vault
        .open_request(&request, &label, codes, actor)
        .map_err(|e| {
            VaultError::Invalid(if unused.is_empty() {
                e.to_string()
            } else {
                format!("{e} (approvals not used: {})", unused.join(", "))
            })
        })
}

/// `custodian enroll`, on the custodian's own machine: the passphrase is asked
/// (or read) here, the key derived here, and only the public code leaves.
fn enroll(a: args::EnrollArgs) -> Result<i32, VaultError> {
    // `--passphrase` is required by clap: the only kind of enrolment so far.
    breakglass::vault::validate_custodian_name(&a.name)?;
    if let Some(out) = &a.out {
        refuse_existing(out)?;
    }
    let passphrase = match &a.passphrase_file {
        Some(path) => input::passphrase_file(path, &a.name)?,
        None => input::new_passphrase(&a.name)?.ok_or_else(|| VaultError::Custodian {
            name: a.name.clone(),
            detail: "no terminal to ask for the passphrase; pass --passphrase-file PATH".into(),
        })?,
    };
    let enrolment = enrol(
        &a.name,
        &passphrase,
        a.insecure_test_only_kdf,
        &mut input::Terminal::default(),
    )?;
    drop(passphrase);
    let code = enrolment.code();
    if let Some(out) = &a.out {
        write_new_file(out, format!("{code}\n").as_bytes())?;
    }
    render::enrolment(&enrolment, &code, a.out.as_deref(), a.json);
    Ok(EXIT_OK)
}

/// Parse repeated `NAME=RECIPIENT` options.
fn custodian_specs(specs: &[String], flag: &str) -> Result<Vec<CustodianSpec>, VaultError> {
    specs
        .iter()
        .map(|spec| {
            let (name, recipient) = spec.split_once('=').ok_or_else(|| {
                VaultError::Invalid(format!("{flag} {spec}: expected NAME=RECIPIENT"))
            })?;
            let recipient =
                RecipientSpec::parse(recipient).map_err(|detail| VaultError::Custodian {
                    name: name.into(),
                    detail,
                })?;
            Ok(CustodianSpec {
                name: name.into(),
                recipient,
            })
        })
        .collect()
}

/// Ask on the terminal for passphrases of new passphrase custodians not given by file.
fn ask_new_passphrases(
    custodians: &[CustodianSpec],
    passphrases: &mut Vec<(String, breakglass::crypto::Passphrase)>,
) -> Result<(), VaultError> {
    for c in custodians {
        let wanted = matches!(c.recipient, RecipientSpec::Passphrase)
            && !passphrases.iter().any(|(n, _)| n == &c.name);
        if wanted {
            if let Some(p) = input::new_passphrase(&c.name)? {
                passphrases.push((c.name.clone(), p));
            }
        }
    }
    Ok(())
}

/// Before a quorum session: show what was written since the last checkpoint
/// and decide what it endorses: all of it with `--endorse`, else what the user
/// confirms on the terminal, else nothing.
fn endorsement(vault: &Vault, flag: bool) -> Result<Unendorsed, VaultError> {
    let pending = vault.unendorsed()?;
    if pending.is_empty() {
        return Ok(pending);
    }
    let listed = render::unendorsed(&pending);
    errln!("{listed}");
    if flag {
        errln!("--endorse: this session's checkpoint endorses them.");
        return Ok(pending);
    }
    match input::line(
        &listed,
        "Endorse all of the above in this session's checkpoint? [y/N] ",
    )? {
        Some(answer) if answer.trim().eq_ignore_ascii_case("y") => Ok(pending),
        _ => {
            errln!("They stay unendorsed (endorse them in a later quorum session with --endorse).");
            Ok(Unendorsed::default())
        }
    }
}

/// A stored hook no checkpoint endorsed: show it, and run it only if the user
/// confirms on the terminal (or passed --trust-hook).
fn confirm_hook(hook: &Option<String>, name: &str, trust: bool) -> Result<bool, VaultError> {
    let Some(cmd) = hook else { return Ok(false) };
    if trust {
        errln!(
            "warning: trusting (--trust-hook) the unendorsed apply hook of {}: {}",
            render::visible(name),
            render::visible(cmd)
        );
        return Ok(true);
    }
    // The command comes from the file: shown with any control characters escaped,
    // so what is confirmed is what is seen.
    let warning = format!(
        "warning: the apply hook of {} was set or changed after the last signed checkpoint; no quorum endorsed it:\n    {}",
        render::visible(name),
        render::visible(cmd)
    );
    errln!("{warning}");
    Ok(matches!(
        input::line(&warning, "Run this hook with the new value on its stdin? [y/N] ")?,
        Some(answer) if answer.trim().eq_ignore_ascii_case("y")
    ))
}

/// A stored rotator no checkpoint endorsed: show its kind and config (from
/// the file, so escaped) and ask whether to run it.
fn confirm_rotator(
    setting: &(String, String),
    name: &str,
    trust: bool,
) -> Result<bool, VaultError> {
    if trust {
        errln!(
            "warning: trusting (--trust-hook) the unendorsed rotator of {}: {} {}",
            render::visible(name),
            render::visible(&setting.0),
            render::visible(&breakglass::rotators::shown_config(&setting.1))
        );
        return Ok(true);
    }
    let warning = format!(
        "warning: the rotator of {} was set or changed after the last signed checkpoint; no quorum endorsed it:\n    {} {}",
        render::visible(name),
        render::visible(&setting.0),
        render::visible(&breakglass::rotators::shown_config(&setting.1))
    );
    errln!("{warning}");
    Ok(matches!(
        input::line(&warning, "Run this rotator with your credentials? [y/N] ")?,
        Some(answer) if answer.trim().eq_ignore_ascii_case("y")
    ))
}

/// Confirmed (secret, hook) and (secret, (rotator kind, config)) pairs.
type ConfirmedSettings = (Vec<(String, String)>, Vec<(String, (String, String))>);

/// `rotate --exposed`: confirm every unendorsed hook and rotator it would
/// run, at once (with `trust`, show them and confirm without asking).
/// Returns exactly those confirmed; one "no" trusts none.
fn confirm_exposed_settings(vault: &Vault, trust: bool) -> Result<ConfirmedSettings, VaultError> {
    let mut hooks = Vec::new();
    let mut rotators = Vec::new();
    for name in vault.exposed_names()? {
        if let Some(setting) = vault.untrusted_rotator(&name)? {
            if !confirm_rotator(&setting, &name, trust)? {
                return Ok(Default::default());
            }
            rotators.push((name, setting));
        } else if let Some(cmd) = vault.untrusted_hook(&name)? {
            if !confirm_hook(&Some(cmd.clone()), &name, trust)? {
                return Ok(Default::default());
            }
            hooks.push((name, cmd));
        }
    }
    Ok((hooks, rotators))
}

/// Open and verify the vault, showing any loud warning (a stale copy) first.
fn open(path: &Path, access: Access) -> Result<Vault, VaultError> {
    let mut vault = Vault::open(path, access)?;
    if let Some(Some(expected)) = EXPECTED_FINGERPRINT.get() {
        vault.require_fingerprint(expected)?;
    }
    show_warnings(&mut vault);
    Ok(vault)
}

fn show_warnings(vault: &mut Vault) {
    for w in vault.take_warnings() {
        errln!("warning: {w}");
    }
}

/// Parse the repeated `--alert-*` options.
fn alert_sinks(args: &args::AlertArgs) -> Result<Vec<AlertSink>, VaultError> {
    let mut sinks: Vec<AlertSink> = args
        .alert_exec
        .iter()
        .map(|c| AlertSink::Exec(c.clone()))
        .collect();
    for url in &args.alert_webhook {
        sinks.push(AlertSink::webhook(url).map_err(VaultError::Invalid)?);
    }
    for addr in &args.alert_syslog {
        sinks.push(AlertSink::syslog(addr).map_err(VaultError::Invalid)?);
    }
    Ok(sinks)
}

/// A failed `audit verify` raises an alert directly (the copy may be read-only).
fn alert_verify_failed(vault: &Vault, report: &breakglass::audit::VerifyReport) {
    let m = vault.manifest();
    let sinks: Vec<AlertSink> = m
        .alerts
        .iter()
        .filter_map(|v| serde_json::from_value(v.clone()).ok())
        .collect();
    if sinks.is_empty() {
        return;
    }
    let payload = serde_json::json!({
        // Not in the log, so no seq of its own: the first bad one names it.
        "event_id": format!("{}:audit_verify_failed:{}", m.vault_id, report.first_bad_seq.map_or("-".to_string(), |s| s.to_string())),
        "event": "audit_verify_failed",
        "subject": m.fingerprint(),
        "vault_id": m.vault_id,
        "fingerprint": m.fingerprint(),
        "epoch": m.epoch,
        "seq": report.first_bad_seq,
        "actor": current_actor(),
        "reason": report.problem,
        "time": breakglass::audit::now(),
    })
    .to_string();
    let failures = breakglass::notify::send_now(&sinks, &payload);
    if let Some(first) = failures.first() {
        errln!(
            "warning: the audit_verify_failed alert did not reach {} sink(s) ({})",
            failures.len(),
            render::shorten(first, 120)
        );
    }
}
