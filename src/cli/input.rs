//! Everything that reads from the user: files, stdin, hidden prompts. Secrets
//! never come from argv or the environment.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use breakglass::crypto::{CustodianIdentity, Passphrase};
use breakglass::vault::{KdfProgress, SecretValue, UnsealPrompt};
use breakglass::VaultError;
use indicatif::{ProgressBar, ProgressStyle};
use zeroize::Zeroizing;

pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, VaultError> {
    std::fs::read(path).map_err(|e| {
        VaultError::Invalid(format!("{what} {}: cannot read it ({e})", path.display()))
    })
}

/// A secret value from --file, else stdin (not a terminal), else a hidden prompt.
/// One trailing newline is dropped.
pub fn secret_value(file: Option<&Path>, name: &str) -> Result<SecretValue, VaultError> {
    let mut bytes = if let Some(path) = file {
        read_file(path, "value file")?
    } else if !std::io::stdin().is_terminal() {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| VaultError::Invalid(format!("stdin: cannot read the value ({e})")))?;
        buf
    } else {
        let first = hidden_text(&format!("Value for {name} (hidden): "))?;
        let again = hidden_text(&format!("Same value again for {name}: "))?;
        if *first != *again {
            return Err(VaultError::Invalid(format!(
                "secret {name}: the two values differ; nothing was deposited"
            )));
        }
        return Ok(SecretValue::new(first.as_bytes().to_vec()));
    };
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    Ok(SecretValue::new(bytes))
}

/// Plain text (runbook) from --file, else stdin.
pub fn text(file: Option<&Path>, what: &str) -> Result<String, VaultError> {
    let bytes = bytes(file, what)?;
    String::from_utf8(bytes).map_err(|_| VaultError::Invalid(format!("{what} is not UTF-8 text")))
}

/// What a command-line argument that should name a file looks like when it is
/// a pasted breakglass code instead (`BGAPR1:…`, `BGREQ1:…`, any `BG…:` code).
fn pasted_code(arg: &Path) -> Option<&'static str> {
    let text = arg.to_str()?.trim();
    let (prefix, _) = text.split_once(':')?;
    let letters = prefix.strip_prefix("BG")?;
    if letters.is_empty()
        || !letters
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        || arg.exists()
    {
        return None;
    }
    Some(if letters.starts_with("APR") {
        "an approval code"
    } else if letters.starts_with("REQ") {
        "a request code"
    } else if letters.starts_with("DRC") {
        "a drill challenge code"
    } else if letters.starts_with("DRP") {
        "a drill proof code"
    } else if letters.starts_with("ENR") {
        "an enrolment code"
    } else {
        "a breakglass code"
    })
}

/// The text of the file `arg` given to `flag`, or stdin for `-` (`stdin_used`
/// says whether another argument of this command already took stdin). A code
/// pasted where the file belongs is named as such, not opened as a file name.
pub fn code_file(
    arg: &Path,
    flag: &str,
    what: &str,
    stdin_used: &mut bool,
) -> Result<(String, String), VaultError> {
    if arg == Path::new("-") {
        if *stdin_used {
            return Err(VaultError::Invalid(format!(
                "{flag} -: stdin is already read for another code; give at most one code as -, the others as files"
            )));
        }
        *stdin_used = true;
        return Ok(("(stdin)".into(), text(None, what)?));
    }
    if let Some(kind) = pasted_code(arg) {
        return Err(VaultError::Invalid(format!(
            "{flag}: this looks like {kind}, not a file: save it to a file and pass that (or pass {flag} - and paste it on stdin)"
        )));
    }
    Ok((arg.display().to_string(), text(Some(arg), what)?))
}

/// Raw bytes from a file, else stdin.
pub fn bytes(file: Option<&Path>, what: &str) -> Result<Vec<u8>, VaultError> {
    Ok(match file {
        Some(path) => read_file(path, what)?,
        None => {
            if std::io::stdin().is_terminal() {
                errln!("Enter the {what}; end with Ctrl-D:");
            }
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| VaultError::Invalid(format!("stdin: cannot read the {what} ({e})")))?;
            buf
        }
    })
}

fn hidden_text(prompt: &str) -> Result<Zeroizing<String>, VaultError> {
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|e| VaultError::Invalid(format!("terminal: cannot read input ({e})")))
}

fn hidden(prompt: &str) -> Result<Passphrase, VaultError> {
    hidden_text(prompt).map(|text| Passphrase::new(text.to_string()))
}

/// Parse repeated `NAME=PATH` options into passphrases.
pub fn passphrase_files(specs: &[String]) -> Result<Vec<(String, Passphrase)>, VaultError> {
    specs
        .iter()
        .map(|spec| {
            let (name, path) = spec.split_once('=').ok_or_else(|| {
                VaultError::Invalid(format!("--passphrase-file {spec}: expected NAME=PATH"))
            })?;
            Ok((name.to_string(), passphrase_file(Path::new(path), name)?))
        })
        .collect()
}

/// Custodian `name`'s passphrase from the file at `path`.
pub fn passphrase_file(path: &Path, name: &str) -> Result<Passphrase, VaultError> {
    let bytes = read_file(path, &format!("passphrase file for custodian {name}:"))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        VaultError::Invalid(format!(
            "passphrase file {} (custodian {name}): not UTF-8 text",
            path.display()
        ))
    })?;
    Ok(Passphrase::new(text))
}

/// Ask (twice) for a new passphrase custodian's passphrase at init.
pub fn new_passphrase(custodian: &str) -> Result<Option<Passphrase>, VaultError> {
    if !interactive() {
        return Ok(None);
    }
    let first = hidden(&format!("New passphrase for custodian {custodian}: "))?;
    let again = hidden(&format!("Repeat passphrase for custodian {custodian}: "))?;
    if !first.matches(&again) {
        return Err(VaultError::Custodian {
            name: custodian.into(),
            detail: "the two passphrases differ; run init again".into(),
        });
    }
    Ok(Some(first))
}

/// Load every `--identity` file, labelled by its path.
pub fn identity_files(
    paths: &[PathBuf],
) -> Result<Vec<(String, Vec<CustodianIdentity>)>, VaultError> {
    paths
        .iter()
        .map(|path| {
            let label = path.display().to_string();
            let bytes = read_file(path, "identity file")?;
            let identities =
                CustodianIdentity::parse_file(&bytes).map_err(|detail| VaultError::Identity {
                    label: label.clone(),
                    detail,
                })?;
            Ok((label, identities))
        })
        .collect()
}

/// Prompt for an encrypted SSH key's passphrase, only on a terminal.
pub fn ssh_key_passphrase(description: &str) -> Option<age::secrecy::SecretString> {
    if !interactive() {
        return None;
    }
    rpassword::prompt_password(format!("{description}: "))
        .ok()
        .map(age::secrecy::SecretString::from)
}

/// Terminal side of KDF feedback and passphrase prompts.
#[derive(Default)]
pub struct Terminal {
    spinner: Option<ProgressBar>,
}

impl KdfProgress for Terminal {
    fn kdf_started(&mut self, custodian: &str) {
        if std::io::stderr().is_terminal() {
            let spinner = ProgressBar::new_spinner();
            spinner.set_style(ProgressStyle::default_spinner());
            spinner.set_message(format!(
                "deriving key for custodian {custodian} (Argon2id)…"
            ));
            spinner.enable_steady_tick(std::time::Duration::from_millis(100));
            self.spinner = Some(spinner);
        }
    }

    fn kdf_finished(&mut self) {
        if let Some(spinner) = self.spinner.take() {
            spinner.finish_and_clear();
        }
    }
}

impl UnsealPrompt for Terminal {
    fn passphrase(&mut self, custodian: &str, still_needed: usize) -> Option<Passphrase> {
        if !interactive() {
            return None;
        }
        errln!("{still_needed} more share(s) needed.");
        hidden(&format!(
            "Passphrase for custodian {custodian} (empty to skip): "
        ))
        .ok()
        .filter(|p| !p.is_empty())
    }

    fn wrong_passphrase(&mut self, custodian: &str) {
        errln!("Wrong passphrase for custodian {custodian}; try again.");
    }
}

/// A visible line typed on the terminal (not secret), or `None` with no terminal.
pub fn line(prompt: &str) -> Result<Option<String>, VaultError> {
    use std::io::{BufRead, BufReader};
    if !std::io::stderr().is_terminal() {
        return Ok(None);
    }
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return Ok(None);
    };
    let mut writer = &tty;
    let _ = writer.write_all(prompt.as_bytes());
    let _ = writer.flush();
    let mut answer = String::new();
    BufReader::new(&tty)
        .read_line(&mut answer)
        .map_err(|e| VaultError::Invalid(format!("terminal: cannot read input ({e})")))?;
    Ok(Some(answer.trim().to_string()))
}

/// Ask once for an existing custodian's passphrase, only on a terminal.
pub fn existing_passphrase(custodian: &str) -> Result<Option<Passphrase>, VaultError> {
    if !interactive() {
        return Ok(None);
    }
    hidden(&format!("Passphrase for custodian {custodian}: ")).map(Some)
}
