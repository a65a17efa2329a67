//! Human and JSON output. JSON is the library report's `Serialize` form, except
//! for revealed values, which are streamed straight to stdout.

use std::io::Write;

use breakglass::audit::VerifyReport;
use breakglass::remote::ParsedRequest;
use breakglass::vault::{
    AbandonOutcome, AlertsReport, Approval, AuditLogReport, CopyComparison, CustodianListReport,
    DrillReport, ExposedRotation, FlushReport, ListReport, RekeyReport, RequestIssued,
    RotateOutcome, RunbookReport, StatusReport, UnsealReport,
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

pub fn custodians(report: &CustodianListReport, as_json: bool) {
    if as_json {
        return json(report);
    }
    for c in &report.custodians {
        outln!("{:>3}  {:<20} {}", c.index, c.name, c.kind);
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
        writeln!(
            out,
            "--- {} ({}{user}, v{})",
            r.name,
            r.kind.as_str(),
            r.version
        )?;
        out.write_all(r.value.expose_secret())?;
        writeln!(out)?;
    }
    if !report.revealed.is_empty() {
        writeln!(out, "---")?;
        writeln!(
            out,
            "Revealed secrets are now marked exposed: rotate them (`breakglass rotate NAME`)."
        )?;
    }
    if let Some(epoch) = report.new_epoch {
        writeln!(
            out,
            "The vault moved to epoch {epoch}: the shares just used are dead. Custodians re-export their envelopes (`breakglass custodian export --all --out-dir DIR`)."
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
            "{{\"name\":{},\"kind\":{},\"username\":{},\"version\":{},\"value\":",
            serde_json::to_string(&r.name)?,
            serde_json::to_string(r.kind.as_str())?,
            serde_json::to_string(&r.username)?,
            r.version
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
        "Request {} written to {}; it expires {}. Send the code to custodians over any channel, then read them the words by voice.",
        issued.request_id,
        out.display(),
        issued.expires
    );
}

/// Text from a vault file or a code, safe to show next to a question: control
/// characters (an escape sequence could redraw or hide what the user is asked
/// about) are shown escaped, e.g. `\u{1b}`.
pub fn visible(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// What a custodian is asked to approve, as lines for stderr (and the terminal).
/// Everything in it comes from the request code, so it is shown [`visible`].
pub fn request_details(request: &ParsedRequest) -> String {
    let r = &request.request;
    format!(
        "Vault:     {} (epoch {}, {} custodians needed)\n\
         Requester: {}\n\
         Reason:    {}\n\
         Expires:   {}\n\
         Check the vault fingerprint against the one you recorded, and the read-back words with the requester by voice.",
        visible(&r.fingerprint),
        r.epoch,
        r.threshold,
        visible(&r.requester),
        visible(&r.reason),
        visible(&r.expires)
    )
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
            "drill failed for {}; re-export the envelope or check the key{}",
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
        lines.push(format!(
            "  rotation settings of {}: apply hook `{hook}`, generator {generator}",
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
        "If its apply hook had already run, the target system may hold version {v}'s value: rotate {name} again now so both agree.",
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
    outln!("Every custodian re-exports their envelope: `breakglass custodian export --all --out-dir DIR`.");
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
            (None, None, Some(e)) => format!("queued, {} attempts, last error: {e}", a.attempts),
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
}

pub fn flushed(report: &FlushReport, as_json: bool) {
    if as_json {
        return json(report);
    }
    outln!(
        "Delivered {} alert(s); {} still queued.",
        report.delivered,
        report.pending
    );
    if report.requeued > 0 {
        errln!(
            "warning: {} alert(s) had been deleted from the queue and were queued again",
            report.requeued
        );
    }
    for f in report.failed.iter().chain(&report.ignored) {
        errln!("warning: {f}");
    }
}
