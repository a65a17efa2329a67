//! Human and JSON output. JSON is the library report's `Serialize` form, except
//! for revealed values, which are streamed straight to stdout.

use std::io::Write;

use breakglass::audit::VerifyReport;
use breakglass::remote::{Enrolment, ParsedRequest};
use breakglass::vault::{
    AbandonOutcome, AlertsReport, Approval, AuditLogReport, CopyComparison, CustodianListReport,
    DrillChallengeIssued, DrillProof, DrillReport, ExposedRotation, FlushReport, ListReport,
    ProofCheck, RekeyReport, RequestIssued, RevealMode, RotateOutcome, RunbookReport, StatusReport,
    UnsealReport,
};
use breakglass::Vault;
use serde::Serialize;

fn json<T: Serialize>(value: &T) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("reports serialize")
    );
}

/// One line on stderr, whatever the message holds.
pub fn error(message: &str) {
    let one_line: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    errln!("error: {one_line}");
}

pub fn init(vault: &Vault, as_json: bool) {
    let m = vault.manifest();
    if as_json {
        json(&serde_json::json!({
            "fingerprint": m.fingerprint(),
            "vault_id": m.vault_id,
            "epoch": m.epoch,
            "threshold": m.threshold,
            "custodians": m.custodians.iter().map(|c| &c.name).collect::<Vec<_>>(),
        }));
        return;
    }
    outln!(
        "Created a {}-of-{} vault.\nFingerprint: {}\nGive every custodian this fingerprint to check, then export their envelopes with `breakglass custodian export NAME --out FILE`.",
        m.threshold,
        m.custodians.len(),
        m.fingerprint()
    );
}

/// `custodian enroll`: the code alone on stdout (so `> FILE` keeps just the code),
/// what to do with it on stderr.
pub fn enrolment(enrolment: &Enrolment, code: &str, out: Option<&std::path::Path>, as_json: bool) {
    if as_json {
        return json(&serde_json::json!({
            "name": enrolment.name,
            "code": code,
            "recipient": enrolment.recipient,
            "kdf": enrolment.kdf,
            "insecure_test_only_kdf": enrolment.insecure_test_only_kdf,
            "out": out.map(|p| p.display().to_string()),
        }));
    }
    outln!("{code}");
    let name = &enrolment.name;
    errln!(
        "Enrolment code of passphrase custodian {name}: public, it holds no secret. Send it to the vault admin, who adds you with --custodian {name}=BGENR1:… (init) or --add-custodian {name}=BGENR1:… (rekey)."
    );
    if let Some(out) = out {
        errln!(
            "Also written to {} (the admin can pass {name}=@FILE).",
            out.display()
        );
    }
    errln!(
        "Your recipient is {}; check `breakglass custodian list --json` shows it for {name} once you have the vault, and drill with your passphrase.",
        enrolment.recipient
    );
    if enrolment.insecure_test_only_kdf {
        errln!("warning: made with --insecure-test-only-kdf: only a test-only vault accepts this code.");
    }
}

pub fn custodians(report: &CustodianListReport, as_json: bool) {
    if as_json {
        return json(report);
    }
    for c in &report.custodians {
        match (&c.plugin, c.kind.as_str()) {
            (Some(plugin), _) => outln!("{:>3}  {:<20} {} ({plugin})", c.index, c.name, c.kind),
            (None, "age-tag") => outln!(
                "{:>3}  {:<20} {} (opened with its token's plugin)",
                c.index,
                c.name,
                c.kind
            ),
            _ => outln!("{:>3}  {:<20} {}", c.index, c.name, c.kind),
        }
    }
}

pub fn list(report: &ListReport, as_json: bool) {
    if as_json {
        return json(report);
    }
    if let Some(problem) = &report.endorsement_problem {
        errln!("warning: {problem}");
    }
    if report.secrets.is_empty() {
        outln!("No secrets yet.");
    }
    for s in &report.secrets {
        outln!(
            "{:<24} {:<13} v{:<3} {:<8} {}{}",
            s.name,
            s.kind,
            s.version,
            s.state,
            s.username
                .as_deref()
                .map(|u| format!("user {u} "))
                .unwrap_or_default(),
            s.url.as_deref().unwrap_or_default()
        );
    }
}

pub fn status(report: &StatusReport, as_json: bool) {
    if as_json {
        return json(report);
    }
    outln!("Fingerprint: {}", report.fingerprint);
    outln!(
        "Epoch {}, {} of {} custodians needed",
        report.epoch,
        report.threshold,
        report.custodians.len()
    );
    for c in &report.custodians {
        let drill = match &c.last_drill {
            // The time is text from the file: parse it, never slice it by byte index.
            Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
                Ok(time) => format!("last drill {}", time.format("%Y-%m-%d")),
                Err(_) => "last drill time unreadable".into(),
            },
            None => "never drilled".into(),
        };
        let flag = if c.drill_overdue {
            "  (drill overdue)"
        } else {
            ""
        };
        outln!(
            "  {:>3}  {:<20} {:<12} {drill}{flag}",
            c.index,
            c.name,
            c.kind
        );
    }
    outln!(
        "Secrets: {}   Audit entries: {}",
        report.secrets,
        report.audit_entries
    );
    if report.alerts_undelivered > 0 {
        outln!(
            "Alerts: {} undelivered, oldest queued {}",
            report.alerts_undelivered,
            report.oldest_undelivered_alert.as_deref().unwrap_or("?")
        );
    }
    if report.alerts_queued_elsewhere > 0 {
        outln!(
            "Alerts: {} queued by another machine, not sent from here (`breakglass alerts list`)",
            report.alerts_queued_elsewhere
        );
    }
    for b in &report.bypass_codes {
        outln!(
            "Bypass codes {}: {} of {} unused",
            b.name,
            b.remaining,
            b.total
        );
    }
    for r in &report.open_requests {
        let state = if r.expired { "expired" } else { "open" };
        outln!(
            "Request {} ({state}, expires {}): {}",
            r.request_id,
            r.expires,
            r.reason
        );
    }
    if report.attention.is_empty() {
        outln!("Nothing needs attention.");
    } else {
        outln!("Needs attention:");
        for a in &report.attention {
            outln!("  - {a}");
        }
    }
}

pub fn runbook(report: &RunbookReport, as_json: bool) {
    if as_json {
        return json(report);
    }
    match &report.runbook {
        Some(text) => out!("{text}{}", if text.ends_with('\n') { "" } else { "\n" }),
        None => outln!("No runbook yet; set one with `breakglass runbook set --file PATH`."),
    }
}

pub fn audit_log(report: &AuditLogReport, as_json: bool) {
    if as_json {
        return json(report);
    }
    for e in &report.entries {
        let reason = if e.reason.is_empty() {
            String::new()
        } else {
            format!("  reason: {}", e.reason)
        };
        outln!(
            "{:>5}  {}  {:<14} {:<24} by {}{}",
            e.seq,
            e.time,
            e.action,
            e.subject,
            e.actor,
            reason
        );
    }
}

pub fn audit_verify(report: &VerifyReport, as_json: bool) {
    if as_json {
        json(report);
    } else if report.ok {
        outln!(
            "Audit log intact: {} entries, hash chain verified.",
            report.entries
        );
        match report.signed_through {
            Some(seq) => outln!(
                "Signed by the vault key through entry {seq}; {} entries follow unsigned.",
                report.unsigned_entries
            ),
            None => {
                outln!("No signed checkpoint yet (one is written at every unseal and rekey).")
            }
        }
    }
    if let Some(problem) = &report.problem {
        error(&format!(
            "{problem}; the log was altered — keep this copy as evidence and compare with other copies"
        ));
    }
}

pub fn unseal(report: &UnsealReport, anchor: Option<&str>, as_json: bool) {
    for w in &report.warnings {
        errln!("warning: {w}");
    }
    let mut out = std::io::stdout().lock();
    let result = if as_json {
        write_unseal_json(&mut out, report, anchor)
    } else {
        write_unseal_human(&mut out, report).and_then(|_| match anchor {
            Some(a) => writeln!(out, "Audit anchor (keep it outside the vault): {a}"),
            None => Ok(()),
        })
    };
    if let Err(e) = result.and_then(|_| out.flush()) {
        // Reported once, when the command ends (see cli::run).
        super::output::record(&e);
    }
}

fn write_unseal_human(out: &mut impl Write, report: &UnsealReport) -> std::io::Result<()> {
    writeln!(
        out,
        "Unsealed epoch {} with {}.",
        report.epoch,
        report.custodians.join(", ")
    )?;
    for r in &report.revealed {
        let user = r
            .username
            .as_deref()
            .map(|u| format!(", user {u}"))
            .unwrap_or_default();
        let one = match (r.mode, r.codes_left) {
            (RevealMode::OneCode, Some(left)) => {
                format!("; one code, now marked used, {left} unused left")
            }
            (RevealMode::OneCode, None) => "; one code, now marked used".to_string(),
            (RevealMode::Whole, _) => String::new(),
            (RevealMode::Version(_), _) if r.state == "active" => {
                ", the active version".to_string()
            }
            (RevealMode::Version(_), _) => format!(", {} — not the active version", r.state),
        };
        writeln!(
            out,
            "--- {} ({}{user}, v{}{one})",
            r.name,
            r.kind.as_str(),
            r.version
        )?;
        out.write_all(r.value.expose_secret())?;
        writeln!(out)?;
    }
    if !report.revealed.is_empty() {
        writeln!(out, "---")?;
    }
    if report.revealed.iter().any(|r| r.mode.shows_whole_value()) {
        writeln!(
            out,
            "Revealed secrets are now marked exposed: rotate them (`breakglass rotate NAME`)."
        )?;
    }
    if report
        .revealed
        .iter()
        .any(|r| r.mode == RevealMode::OneCode)
    {
        writeln!(
            out,
            "Each single code handed out is marked used; the other codes were not shown and stay unexposed."
        )?;
    }
    if let Some(epoch) = report.new_epoch {
        writeln!(
            out,
            "The vault moved to epoch {epoch}: the shares just used are dead. Custodians need nothing new: the next request carries their new envelopes (refresh any offline backups with `breakglass custodian export --all --out-dir DIR`)."
        )?;
    }
    Ok(())
}

fn write_unseal_json(
    out: &mut impl Write,
    report: &UnsealReport,
    anchor: Option<&str>,
) -> std::io::Result<()> {
    write!(out, "{{\"revealed\":[")?;
    for (i, r) in report.revealed.iter().enumerate() {
        if i > 0 {
            write!(out, ",")?;
        }
        write!(
            out,
            "{{\"name\":{},\"kind\":{},\"username\":{},\"version\":{},\"state\":{},\"mode\":{},\"code_index\":{},\"codes_left\":{},\"value\":",
            serde_json::to_string(&r.name)?,
            serde_json::to_string(r.kind.as_str())?,
            serde_json::to_string(&r.username)?,
            r.version,
            serde_json::to_string(&r.state)?,
            serde_json::to_string(r.mode.as_str())?,
            serde_json::to_string(&r.code_index)?,
            serde_json::to_string(&r.codes_left)?
        )?;
        // Values are UTF-8 (checked at deposit); streamed, never held in a JSON tree.
        let text = std::str::from_utf8(r.value.expose_secret()).unwrap_or_default();
        serde_json::to_writer(&mut *out, text)?;
        write!(out, "}}")?;
    }
    writeln!(
        out,
        "],\"custodians\":{},\"epoch\":{},\"new_epoch\":{},\"anchor\":{},\"warnings\":{}}}",
        serde_json::to_string(&report.custodians)?,
        report.epoch,
        serde_json::to_string(&report.new_epoch)?,
        serde_json::to_string(&anchor)?,
        serde_json::to_string(&report.warnings)?
    )
}

pub fn request(issued: &RequestIssued, out: &std::path::Path, as_json: bool) {
    if as_json {
        return json(issued);
    }
    outln!("{}", issued.code);
    outln!("Read-back words: {}", issued.words.join(" "));
    errln!(
        "Request {} written to {} ({} characters; it carries every custodian's envelope); it expires {}. Send the code to custodians over any channel, then read them the words by voice.",
        issued.request_id,
        out.display(),
        issued.code_length,
        issued.expires
    );
    for (name, code) in &issued.codes_for {
        errln!(
            "Code for {name} only ({} characters): {}.{name}",
            code.len(),
            out.display()
        );
    }
}

/// Text from a vault file or a code, safe to show next to a question: control
/// characters and bidi overrides (which could redraw, hide or reorder what the
/// user is asked about) are shown escaped, e.g. `\u{1b}`.
pub fn visible(text: &str) -> String {
    text.chars()
        .map(|c| {
            let unsafe_char = c.is_control()
                || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if unsafe_char {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// What a custodian is asked to approve once every check has passed, as lines
/// for stderr (and the terminal). It comes from the request code, so it is
/// shown [`visible`].
pub fn request_details(request: &ParsedRequest, custodian: &str, first_use: bool) -> String {
    let r = &request.request;
    let first = if first_use {
        "\nFIRST USE of your key on this machine: compare the vault fingerprint above with the one recorded at init NOW; from here on this machine holds you to it."
    } else {
        ""
    };
    format!(
        "Checked: the vault's signed manifest and key chain, your envelope and your share's commitment.\n\
         Vault:     {} (epoch {}, {} custodians needed)\n\
         You:       custodian {}\n\
         Requester: {}\n\
         Reason:    {}\n\
         Expires:   {}\n\
         Check the vault fingerprint against the one you recorded, and the read-back words with the requester by voice.{}",
        visible(&r.fingerprint),
        r.epoch,
        r.threshold,
        visible(custodian),
        visible(&r.requester),
        visible(&r.reason),
        visible(&r.expires),
        first
    )
}

/// A mistyped or misheard word: why the words are asked again.
pub fn words_mismatch(attempt: usize, tries: usize) -> String {
    format!(
        "The words do not match (try {attempt} of {tries}). Compare them with the requester by voice, word by word, then type them again."
    )
}

pub fn drill_challenge(issued: &DrillChallengeIssued, out: &std::path::Path, as_json: bool) {
    if as_json {
        return json(issued);
    }
    outln!("{}", issued.code);
    errln!(
        "Drill challenge {} written to {} ({} characters); it expires {}. Send it to custodians; each answers with `breakglass drill --challenge FILE --identity KEY --out proof.txt` and sends the proof back for `breakglass drill --proof FILE...`.",
        issued.challenge_id,
        out.display(),
        issued.code_length,
        issued.expires
    );
}

pub fn drill_proof(proof: &DrillProof, out: &std::path::Path, as_json: bool) {
    if as_json {
        return json(&serde_json::json!({
            "code": proof.code(),
            "custodian": proof.statement.custodian,
            "epoch": proof.statement.epoch,
        }));
    }
    outln!("{}", proof.code());
    errln!(
        "Drill proof of custodian {} (your share is intact) written to {}; send it back. It reveals nothing about your share.",
        proof.statement.custodian,
        out.display()
    );
}

pub fn drill_proofs(checks: &[ProofCheck], as_json: bool) {
    if as_json {
        return json(&serde_json::json!({
            "ok": checks.iter().all(|c| c.passed),
            "results": checks,
        }));
    }
    for c in checks {
        let who = visible(c.custodian.as_deref().unwrap_or(&c.label));
        match &c.problem {
            None => outln!("custodian {who}: pass (remote drill)"),
            Some(p) => outln!("proof claiming custodian {who}: FAIL: {}", visible(p)),
        }
    }
}

pub fn approval(
    approval: &Approval,
    request: &ParsedRequest,
    out: &std::path::Path,
    as_json: bool,
) {
    if as_json {
        return json(approval);
    }
    outln!("{}", approval.code);
    errln!(
        "Approval by custodian {} for request {} written to {}; send it back to the requester.",
        approval.custodian,
        request.request.request_id,
        out.display()
    );
}

pub fn drill(report: &DrillReport, as_json: bool) {
    if as_json {
        json(report);
    } else {
        for r in &report.results {
            match &r.problem {
                None => outln!("custodian {}: pass", r.custodian),
                Some(p) => outln!("custodian {}: FAIL: {p}", r.custodian),
            }
        }
        if let Some(full) = &report.full {
            match (&full.problem, full.signed_through) {
                (None, Some(seq)) => outln!(
                    "full drill: pass: the shares rebuild the vault key; checkpoint signed through seq {seq}"
                ),
                (None, None) => outln!("full drill: pass"),
                (Some(p), _) => outln!("full drill: FAIL: {p}"),
            }
        }
        if let Some(anchor) = &report.anchor {
            outln!("Audit anchor (keep it outside the vault): {anchor}");
        }
    }
    let failed: Vec<String> = report
        .results
        .iter()
        .filter_map(|r| r.problem.as_ref().map(|p| format!("{}: {p}", r.custodian)))
        .collect();
    let full_problem = report.full.as_ref().and_then(|f| f.problem.as_ref());
    match (failed.is_empty(), full_problem) {
        (true, None) => {}
        (false, _) => error(&format!(
            "drill failed for {}; check the key (and an --envelope backup's epoch){}",
            failed.join("; "),
            full_problem
                .map(|p| format!(" (full drill: {p})"))
                .unwrap_or_default()
        )),
        (true, Some(p)) => error(&format!("full drill failed: {p}")),
    }
}

/// What a quorum session would endorse, on stderr before it is asked.
/// What a quorum session would endorse, as lines for stderr (and the terminal).
pub fn unendorsed(pending: &breakglass::vault::Unendorsed) -> String {
    let mut lines = Vec::new();
    if let Some(problem) = &pending.problem {
        lines.push(format!("warning: {problem}"));
    }
    lines.push("Written since the last signed checkpoint (unendorsed):".to_string());
    for v in &pending.versions {
        lines.push(format!(
            "  secret {} version {}, deposited by {} at {}",
            v.secret, v.version, v.depositor, v.created
        ));
    }
    for s in &pending.settings {
        let hook = s.apply_cmd.as_deref().unwrap_or("(none)");
        let generator = match (s.gen_length, s.gen_charset.as_deref()) {
            (None, None) => "default".to_string(),
            (l, c) => format!(
                "{} {}",
                l.map_or("default length".into(), |l| format!("{l} chars")),
                c.unwrap_or("alnum")
            ),
        };
        let rotator = match (&s.rotator, &s.rotator_config) {
            (Some(kind), Some(config)) => format!(
                ", rotator {kind} {}",
                breakglass::rotators::shown_config(config)
            ),
            _ => String::new(),
        };
        lines.push(format!(
            "  rotation settings of {}: apply hook `{hook}`, generator {generator}{rotator}",
            s.secret
        ));
    }
    // Names, depositors and hooks come from the file: shown visible.
    lines
        .iter()
        .map(|l| visible(l))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn rotated(outcome: &RotateOutcome, as_json: bool) {
    if as_json {
        return json(outcome);
    }
    let hook = match outcome.hook_exit {
        Some(code) => format!(" (apply hook exited {code})"),
        None => String::new(),
    };
    outln!(
        "Rotated {} to version {}{hook}, sealed to vault {} epoch {}; it is {} now.",
        outcome.name,
        outcome.version,
        outcome.fingerprint,
        outcome.epoch,
        outcome.state
    );
}

pub fn abandoned(outcome: &AbandonOutcome, as_json: bool) {
    if as_json {
        return json(outcome);
    }
    let stays = match outcome.active_version {
        Some(v) => format!("version {v} stays active"),
        None => "no version is active".into(),
    };
    outln!(
        "Abandoned the rotation of {name} to version {v} (started by {by} at {at}): it is kept as failed and {stays}.",
        name = outcome.name,
        v = outcome.version,
        by = outcome.started_by,
        at = outcome.started_at,
    );
    outln!(
        "If its apply hook or rotator had already run, the target system may hold version {v}'s value (`breakglass unseal --reveal-version {name}={v}` shows it, if it holds one): rotate {name} again now so both agree.",
        name = outcome.name,
        v = outcome.version,
    );
}

pub fn rotate_exposed(report: &ExposedRotation, as_json: bool) {
    if as_json {
        return json(report);
    }
    for r in &report.rotated {
        rotated(r, false);
    }
    for f in &report.failed {
        outln!("FAILED: {f}");
    }
    for name in &report.needs_human {
        outln!("needs a human: {name} (no generator or hook; run `breakglass rotate {name} --file PATH`)");
    }
    if report.rotated.is_empty() && report.failed.is_empty() && report.needs_human.is_empty() {
        outln!("Nothing is exposed.");
    }
}

pub fn rekeyed(report: &RekeyReport, as_json: bool) {
    for w in &report.warnings {
        errln!("warning: {w}");
    }
    if as_json {
        return json(report);
    }
    outln!(
        "Re-keyed from epoch {} to epoch {} with {} ({}-of-{}): {}.",
        report.from_epoch,
        report.epoch,
        report.quorum.join(", "),
        report.threshold,
        report.custodians.len(),
        report.custodians.join(", ")
    );
    outln!("Custodians need nothing new: the next request or drill challenge carries their new envelopes (refresh offline backups with `breakglass custodian export --all --out-dir DIR`).");
}

pub fn copy_comparison(report: &CopyComparison, other: &std::path::Path, as_json: bool) {
    if as_json {
        json(report);
    } else if report.same_vault {
        outln!(
            "Same vault {}. This copy: epoch {}, {} log entries. {}: epoch {}, {} log entries.",
            report.this_fingerprint,
            report.this_epoch,
            report.this_entries,
            other.display(),
            report.other_epoch,
            report.other_entries
        );
        if !report.diverged {
            outln!(
                "The logs agree on their first {} entries; one extends the other.",
                report.common_entries
            );
        }
    }
    if !report.same_vault {
        error(&format!(
            "{} is a different vault ({}, this one is {}); compare copies of the same vault",
            other.display(),
            report.other_fingerprint,
            report.this_fingerprint
        ));
    } else if report.diverged {
        error(&format!(
            "the audit logs diverge after entry {}: both copies were used separately; keep both and reconcile them",
            report.common_entries
        ));
    }
}

/// At most `max` characters of `text`, on one line, with "…" if cut.
pub fn shorten(text: &str, max: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// "40 s", "12 min", "3 h", "2 days": how long ago `time` was.
fn age_of(time: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(time) else {
        return "an unknown time".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

/// The one short warning line after a command, or none when this machine has
/// nothing queued: how many alerts, how old the oldest, and where to look.
pub fn alert_warning(report: &FlushReport) -> Option<String> {
    if let Some(problem) = &report.origin_problem {
        return Some(format!(
            "warning: alerts cannot be sent from this machine ({}); see `breakglass alerts list`",
            shorten(problem, 100)
        ));
    }
    let bad = report.ignored.len();
    if report.pending == 0 && bad == 0 {
        return None;
    }
    let mut line = format!(
        "warning: {} alert{} queued, the oldest for {}",
        report.pending,
        if report.pending == 1 { "" } else { "s" },
        report
            .oldest_pending
            .as_deref()
            .map_or_else(|| "-".into(), age_of)
    );
    if bad > 0 {
        line.push_str(&format!(", {bad} naming no signed sink"));
    }
    line.push_str("; see `breakglass alerts list`");
    Some(line)
}

pub fn alerts(report: &AlertsReport, as_json: bool) {
    if as_json {
        return json(report);
    }
    if report.alerts.is_empty() && report.missing == 0 {
        outln!("No queued alerts.");
    }
    if report.missing > 0 {
        outln!(
            "{} alert(s) the log raised are missing from the queue (deleted from the file); the next write command queues them again",
            report.missing
        );
    }
    for a in &report.alerts {
        let state = match (&a.problem, &a.delivered, &a.last_error) {
            (Some(p), _, _) => format!("NOT DELIVERABLE: {p}"),
            (None, Some(t), _) => format!("delivered {t}"),
            (None, None, _) if !a.queued_here && a.origin.is_empty() => {
                "queued before origins were recorded: sent by no machine until adopted".into()
            }
            (None, None, _) if !a.queued_here => format!(
                "queued by another machine ({}): not sent from here",
                a.origin.get(..8).unwrap_or(&a.origin)
            ),
            (None, None, Some(e)) => format!(
                "queued, {} attempts, last error: {}",
                a.attempts,
                shorten(e, 120)
            ),
            (None, None, None) => "queued".into(),
        };
        let event = a.event.get("event").and_then(|e| e.as_str()).unwrap_or("?");
        outln!(
            "{:>4}  seq {:<5} {:<18} {}  {state}",
            a.id,
            a.seq,
            event,
            a.sink
        );
    }
    for b in &report.backoff {
        outln!(
            "Backing off: {} failed {} time(s) in a row; next automatic try after {} (`breakglass alerts flush` tries now); last error: {}",
            b.sink,
            b.failures,
            b.retry_after,
            shorten(b.last_error.as_deref().unwrap_or("-"), 120)
        );
    }
    if report.queued_elsewhere > 0 {
        outln!(
            "{} undelivered alert(s) were queued by another machine (or an older breakglass) and are not sent from here; if this vault moved here for good, `breakglass alerts flush --adopt` sends them",
            report.queued_elsewhere
        );
    }
}

pub fn flushed(report: &FlushReport, as_json: bool) {
    if as_json {
        return json(report);
    }
    if report.adopted > 0 {
        outln!(
            "Adopted {} alert(s) another machine queued.",
            report.adopted
        );
    }
    outln!(
        "Delivered {} alert(s); {} still queued.",
        report.delivered,
        report.pending
    );
    if report.queued_elsewhere > 0 {
        outln!(
            "{} alert(s) queued by another machine were left to it (`--adopt` sends them from here).",
            report.queued_elsewhere
        );
    }
    if report.requeued > 0 {
        errln!(
            "warning: {} alert(s) had been deleted from the queue and were queued again",
            report.requeued
        );
    }
    if let Some(problem) = &report.origin_problem {
        errln!("warning: alerts cannot be sent from this machine ({problem})");
    }
    for f in report.failed.iter().chain(&report.ignored) {
        errln!("warning: {}", shorten(f, 200));
    }
}
