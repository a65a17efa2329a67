//! An auditor's check with the library: open a vault read-only (no key, no quorum),
//! print the log, verify its hash chain and checkpoints, and check an anchor.
//!
//! Run: `cargo run --example audit_check -- path/to/breakglass.db ["BGANCHOR1 …"]`

use breakglass::{Access, Vault};

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: audit_check VAULT.db [ANCHOR]");
        std::process::exit(2);
    };
    let result = (|| -> Result<bool, breakglass::VaultError> {
        let vault = Vault::open(std::path::Path::new(&path), Access::ReadOnly)?;
        println!(
            "vault {} at epoch {}",
            vault.fingerprint(),
            vault.manifest().epoch
        );
        for e in vault.audit_log()?.entries {
            println!(
                "{:>5} {} {:<14} {:<20} {}",
                e.seq, e.time, e.action, e.subject, e.actor
            );
        }
        let report = vault.verify_audit()?;
        match &report.problem {
            None => println!(
                "chain intact: {} entries, signed through {} ({} unsigned after it)",
                report.entries,
                report.signed_through.unwrap_or(0),
                report.unsigned_entries
            ),
            Some(problem) => println!("BROKEN: {problem}"),
        }
        // An anchor kept from an earlier check: the log must still contain it.
        if let Some(anchor) = std::env::args().nth(2) {
            let anchor = breakglass::audit::Anchor::parse(&anchor).map_err(|why| {
                breakglass::VaultError::Invalid(format!(
                    "the anchor is not a BGANCHOR1 line ({why})"
                ))
            })?;
            match vault.check_anchor(&anchor)? {
                Ok(()) => println!("anchor still in the log"),
                Err(problem) => {
                    println!("ANCHOR: {problem}");
                    return Ok(false);
                }
            }
        }
        println!("anchor now: {}", vault.audit_anchor()?);
        Ok(report.ok)
    })();
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
