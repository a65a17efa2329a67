//! An auditor's check with the library: open a vault read-only (no key, no quorum),
//! print the log and verify its hash chain.
//!
//! Run: `cargo run --example audit_check -- path/to/breakglass.db`

use breakglass::{Access, Vault};

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: audit_check VAULT.db");
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
            None => println!("chain intact: {} entries", report.entries),
            Some(problem) => println!("BROKEN: {problem}"),
        }
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
