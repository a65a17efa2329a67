//! Wiring: parse args, resolve inputs, call the library, render, map errors to exit codes.

mod args;
mod input;
mod render;

use std::io::Write;
use std::path::{Path, PathBuf};

use breakglass::vault::{
    current_actor, CustodianSpec, Deposit, InitOptions, RecipientSpec, SecretKind, UnsealRequest,
};
use breakglass::{Access, Vault, VaultError};
use clap::{CommandFactory, Parser};

use args::{AuditCommand, Cli, Command, CustodianCommand, KindArg, RunbookCommand};

const EXIT_OK: i32 = 0;
const EXIT_FAILURE: i32 = 1;

pub fn run() -> i32 {
    let cli = Cli::parse();
    let vault_path = cli
        .vault
        .clone()
        .unwrap_or_else(|| PathBuf::from("breakglass.db"));
    match dispatch(cli.command, &vault_path) {
        Ok(code) => code,
        Err(e) => {
            render::error(&e.to_string());
            EXIT_FAILURE
        }
    }
}

fn dispatch(command: Command, path: &Path) -> Result<i32, VaultError> {
    let actor = current_actor();
    match command {
        Command::Init(a) => {
            let mut custodians = Vec::new();
            for spec in &a.custodians {
                let (name, recipient) = spec.split_once('=').ok_or_else(|| {
                    VaultError::Invalid(format!("--custodian {spec}: expected NAME=RECIPIENT"))
                })?;
                let recipient =
                    RecipientSpec::parse(recipient).map_err(|detail| VaultError::Custodian {
                        name: name.into(),
                        detail,
                    })?;
                custodians.push(CustodianSpec {
                    name: name.into(),
                    recipient,
                });
            }
            let mut passphrases = input::passphrase_files(&a.passphrase_files)?;
            for c in &custodians {
                let wanted = matches!(c.recipient, RecipientSpec::Passphrase)
                    && !passphrases.iter().any(|(n, _)| n == &c.name);
                if wanted {
                    if let Some(p) = input::new_passphrase(&c.name)? {
                        passphrases.push((c.name.clone(), p));
                    }
                }
            }
            let options = InitOptions {
                threshold: a.threshold,
                custodians,
                passphrases,
                insecure_test_only_kdf: a.insecure_test_only_kdf,
            };
            let vault = Vault::create(path, options, &actor, &mut input::Terminal::default())?;
            render::init(&vault, a.json);
            Ok(EXIT_OK)
        }
        Command::Custodian(CustodianCommand::List(f)) => {
            let vault = Vault::open(path, Access::ReadOnly)?;
            render::custodians(&vault.custodians(), f.json);
            Ok(EXIT_OK)
        }
        Command::Custodian(CustodianCommand::Export { name, out }) => {
            let vault = Vault::open(path, Access::ReadOnly)?;
            let envelope = vault.export_envelope(&name)?;
            write_new_file(&out, envelope.as_bytes())?;
            eprintln!(
                "Wrote the envelope of custodian {name} to {} (open it with `age -d -i KEY`).",
                out.display()
            );
            Ok(EXIT_OK)
        }
        Command::Put(a) => {
            let mut vault = Vault::open(path, Access::ReadWrite)?;
            let value = input::secret_value(a.file.as_deref(), &a.name)?;
            let kind = match a.kind {
                KindArg::Password => SecretKind::Password,
                KindArg::BypassCodes => SecretKind::BypassCodes,
                KindArg::Note => SecretKind::Note,
            };
            let name = a.name.clone();
            let version = vault.put(
                Deposit {
                    name: a.name,
                    kind,
                    username: a.username,
                    url: a.url,
                    note: a.note,
                    value,
                },
                &actor,
            )?;
            println!("Deposited {name} version {version}.");
            Ok(EXIT_OK)
        }
        Command::List(f) => {
            let vault = Vault::open(path, Access::ReadOnly)?;
            render::list(&vault.list()?, f.json);
            Ok(EXIT_OK)
        }
        Command::Status(f) => {
            let vault = Vault::open(path, Access::ReadOnly)?;
            render::status(&vault.status()?, f.json);
            Ok(EXIT_OK)
        }
        Command::Runbook(a) => match a.command {
            Some(RunbookCommand::Set { file }) => {
                let mut vault = Vault::open(path, Access::ReadWrite)?;
                let text = input::text(file.as_deref(), "runbook")?;
                vault.set_runbook(&text, &actor)?;
                println!("Runbook updated ({} bytes).", text.len());
                Ok(EXIT_OK)
            }
            None => {
                let vault = Vault::open(path, Access::ReadOnly)?;
                render::runbook(&vault.runbook()?, a.json);
                Ok(EXIT_OK)
            }
        },
        Command::Unseal(a) => {
            let mut vault = Vault::open(path, Access::ReadWrite)?;
            if a.reason.trim().is_empty() {
                return Err(VaultError::Invalid(
                    "--reason is empty; say why the vault is being opened".into(),
                ));
            }
            let request = UnsealRequest {
                reason: a.reason,
                actor,
                identities: input::identity_files(&a.identities)?,
                passphrases: input::passphrase_files(&a.passphrase_files)?,
                reveal: a.reveal,
                ssh_key_prompt: input::ssh_key_passphrase,
            };
            let report = vault.unseal(request, &mut input::Terminal::default())?;
            render::unseal(&report, a.json);
            Ok(EXIT_OK)
        }
        Command::Audit(AuditCommand::Log(f)) => {
            let vault = Vault::open(path, Access::ReadOnly)?;
            render::audit_log(&vault.audit_log()?, f.json);
            Ok(EXIT_OK)
        }
        Command::Audit(AuditCommand::Verify(f)) => {
            let vault = Vault::open(path, Access::ReadOnly)?;
            let report = vault.verify_audit()?;
            render::audit_verify(&report, f.json);
            Ok(if report.ok { EXIT_OK } else { EXIT_FAILURE })
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "breakglass",
                &mut std::io::stdout(),
            );
            Ok(EXIT_OK)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|e| VaultError::Invalid(format!("stdout: {e}")))?;
            Ok(EXIT_OK)
        }
    }
}

/// Create `path` mode 0600, refusing to overwrite anything.
fn write_new_file(path: &Path, contents: &[u8]) -> Result<(), VaultError> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| {
        VaultError::Invalid(format!(
            "--out {}: cannot write it ({e}); choose a new file",
            path.display()
        ))
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    file.write_all(contents)
        .and_then(|_| file.sync_all())
        .map_err(fail)
}
