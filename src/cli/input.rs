//! Everything that reads from the user: files, stdin, hidden prompts. Secrets
//! never come from argv or the environment.
//!
//! Prompts and the answers to them go through the controlling terminal
//! (`/dev/tty`), whatever stdin, stdout and stderr are: `2>/dev/null` or a
//! pipe never hides a prompt. With no controlling terminal nothing is asked,
//! and a value that is needed is a one-line error saying what to give instead.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use breakglass::crypto::{
    CustodianIdentity, EncryptedSshKey, IdentityFile, Passphrase, PluginOptions, PluginUi,
};
use breakglass::vault::{KdfProgress, SecretValue, UnsealPrompt};
use breakglass::VaultError;
use indicatif::{ProgressBar, ProgressStyle};
use zeroize::Zeroizing;

/// Tries at an encrypted SSH key's passphrase before giving up.
const SSH_KEY_TRIES: usize = 3;

/// The controlling terminal, opened for reading and writing.
struct Tty(std::fs::File);

impl Tty {
    fn open() -> Option<Tty> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()
            .map(Tty)
    }

    /// Show `text` on the terminal (a prompt, or a line about the prompts).
    fn say(&self, text: &str) {
        let mut writer = &self.0;
        let _ = writer.write_all(text.as_bytes());
        let _ = writer.flush();
    }
}

/// Whether there is a terminal to ask: a controlling terminal can be opened.
pub fn interactive() -> bool {
    Tty::open().is_some()
}

/// A line about the prompts (a retry, how many are still needed), on the terminal.
fn tell(text: &str) {
    if let Some(tty) = Tty::open() {
        tty.say(&format!("{text}\n"));
    }
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

/// A hidden answer typed on the controlling terminal: the prompt is written
/// there, echo is off while it is typed, and the terminal is restored after,
/// whatever happens. Ctrl-C ends the process (exit 130) as it always would,
/// but only once echo is back on: a custodian's terminal is never left blind.
fn hidden_text(prompt: &str) -> Result<Zeroizing<String>, VaultError> {
    use rustix::termios::{self, LocalModes, OptionalActions, SpecialCodeIndex};
    let fail =
        |e: std::io::Error| VaultError::Invalid(format!("terminal: cannot read input ({e})"));
    let tty = Tty::open().ok_or_else(|| {
        VaultError::Invalid("no terminal to ask on; give the value in a file instead".into())
    })?;
    tty.say(prompt);
    let original = termios::tcgetattr(&tty.0).map_err(|e| fail(e.into()))?;
    let mut quiet = original.clone();
    // No echo, byte by byte, and Ctrl-C read as a byte so it is handled here.
    quiet.local_modes &= !(LocalModes::ECHO | LocalModes::ICANON | LocalModes::ISIG);
    quiet.special_codes[SpecialCodeIndex::VMIN] = 1;
    quiet.special_codes[SpecialCodeIndex::VTIME] = 0;
    termios::tcsetattr(&tty.0, OptionalActions::Now, &quiet).map_err(|e| fail(e.into()))?;
    let typed = {
        let _restore = Restore {
            tty: &tty,
            original,
        };
        read_hidden_line(&tty)
    };
    tty.say("\n");
    match typed {
        Ok(Typed::Line(bytes)) => std::str::from_utf8(&bytes)
            .map(|text| Zeroizing::new(text.to_string()))
            .map_err(|_| VaultError::Invalid("terminal: the answer is not UTF-8 text".into())),
        Ok(Typed::Interrupted) => std::process::exit(EXIT_INTERRUPTED),
        Err(e) => Err(fail(e)),
    }
}

/// The exit code of a process ended by Ctrl-C (128 + SIGINT).
const EXIT_INTERRUPTED: i32 = 130;

/// Puts the terminal back as it was when dropped.
struct Restore<'a> {
    tty: &'a Tty,
    original: rustix::termios::Termios,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            &self.tty.0,
            rustix::termios::OptionalActions::Now,
            &self.original,
        );
    }
}

enum Typed {
    Line(Zeroizing<Vec<u8>>),
    Interrupted,
}

/// The longest hidden answer kept; the buffer never grows, so no copy of what
/// was typed is left behind in freed memory. Longer values belong in a file.
const HIDDEN_MAX: usize = 16 * 1024;

/// Read keys until Enter (or end of input): Backspace and Ctrl-U edit, Ctrl-C
/// interrupts, escape sequences (arrow keys) and other control keys are ignored.
fn read_hidden_line(tty: &Tty) -> std::io::Result<Typed> {
    let mut reader = &tty.0;
    let mut line = Zeroizing::new(Vec::with_capacity(HIDDEN_MAX));
    let mut next = || -> std::io::Result<Option<u8>> {
        let mut byte = [0u8; 1];
        loop {
            match reader.read(&mut byte) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(byte[0])),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    };
    while let Some(byte) = next()? {
        match byte {
            b'\r' | b'\n' => break,
            0x03 => return Ok(Typed::Interrupted),
            0x04 if line.is_empty() => break,
            0x7f | 0x08 => {
                // One character back: its UTF-8 continuation bytes, then its first byte.
                while line.last().is_some_and(|b| b & 0xC0 == 0x80) {
                    line.pop();
                }
                line.pop();
            }
            0x15 => line.clear(),
            0x1b => {
                // ESC [ … final byte, or ESC O x: a key that is not text.
                if let Some(b'[' | b'O') = next()? {
                    while let Some(b) = next()? {
                        if (0x40..=0x7e).contains(&b) {
                            break;
                        }
                    }
                }
            }
            b if b < 0x20 => {}
            b if line.len() < HIDDEN_MAX => line.push(b),
            _ => {}
        }
    }
    Ok(Typed::Line(line))
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

/// Load every `--identity` file, labelled by its path. An SSH key protected by
/// a passphrase is unlocked here, on the terminal, before anything else runs.
/// Hardware keys (`AGE-PLUGIN-…` lines) talk to the person through [`plugin_options`].
pub fn identity_files(
    paths: &[PathBuf],
) -> Result<Vec<(String, Vec<CustodianIdentity>)>, VaultError> {
    let plugins = plugin_options();
    paths
        .iter()
        .map(|path| {
            let label = path.display().to_string();
            let bytes = read_file(path, "identity file")?;
            let file = CustodianIdentity::read_file_with(&bytes, &plugins).map_err(|detail| {
                VaultError::Identity {
                    label: label.clone(),
                    detail,
                }
            })?;
            let identities = match file {
                IdentityFile::Keys(keys) => keys,
                IdentityFile::EncryptedSsh(key) => vec![unlock_ssh_key(&key, &label)?],
            };
            Ok((label, identities))
        })
        .collect()
}

/// Ask for an encrypted SSH key's passphrase on the terminal, up to
/// `SSH_KEY_TRIES` times.
fn unlock_ssh_key(key: &EncryptedSshKey, label: &str) -> Result<CustodianIdentity, VaultError> {
    if !interactive() {
        return Err(VaultError::Invalid(format!(
            "SSH key {label} is encrypted (protected by a passphrase) and there is no terminal to ask for its passphrase; run this on a terminal"
        )));
    }
    for attempt in 1..=SSH_KEY_TRIES {
        let passphrase = hidden_text(&format!("Passphrase for SSH key {label}: "))?;
        let passphrase = age::secrecy::SecretString::from(passphrase.as_str());
        if let Some(identity) = key.unlock(passphrase) {
            return Ok(identity);
        }
        if attempt < SSH_KEY_TRIES {
            tell(&format!("Wrong passphrase for SSH key {label}; try again."));
        }
    }
    Err(VaultError::Invalid(format!(
        "wrong passphrase for SSH key {label} ({SSH_KEY_TRIES} tries); check it with `ssh-keygen -y -f {label}`"
    )))
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
        } else {
            // stderr is sent away: a typed passphrase still gets an answer on the terminal.
            tell(&format!(
                "deriving key for custodian {custodian} (Argon2id)…"
            ));
        }
    }

    fn kdf_finished(&mut self) {
        if let Some(spinner) = self.spinner.take() {
            spinner.finish_and_clear();
        }
    }
}

impl UnsealPrompt for Terminal {
    fn can_ask(&self) -> bool {
        interactive()
    }

    fn passphrase(&mut self, custodian: &str, still_needed: usize) -> Option<Passphrase> {
        let prompt = if still_needed > 0 {
            tell(&format!("{still_needed} more share(s) needed."));
            format!("Passphrase for custodian {custodian} (empty to skip): ")
        } else {
            format!("Passphrase for custodian {custodian}: ")
        };
        hidden(&prompt).ok().filter(|p| !p.is_empty())
    }

    fn wrong_passphrase(&mut self, custodian: &str) {
        tell(&format!(
            "Wrong passphrase for custodian {custodian}; try again."
        ));
    }
}

/// A visible line typed on the terminal (not secret), or `None` with no terminal.
/// `about` is what the question is about, already written to stderr; when
/// stderr is not a terminal (`2>/dev/null`, a log file) it is shown on the
/// terminal too, so nobody answers about something they cannot see.
pub fn line(about: &str, prompt: &str) -> Result<Option<String>, VaultError> {
    use std::io::{BufRead, BufReader};
    let Some(tty) = Tty::open() else {
        return Ok(None);
    };
    if !about.is_empty() && !std::io::stderr().is_terminal() {
        tty.say(&format!("{about}\n"));
    }
    tty.say(prompt);
    let mut answer = String::new();
    BufReader::new(&tty.0)
        .read_line(&mut answer)
        .map_err(|e| VaultError::Invalid(format!("terminal: cannot read input ({e})")))?;
    Ok(Some(answer.trim().to_string()))
}

/// Ask once for an existing custodian's passphrase on the terminal; with no
/// terminal, say what to give instead.
pub fn existing_passphrase(custodian: &str) -> Result<Passphrase, VaultError> {
    if !interactive() {
        return Err(VaultError::Invalid(format!(
            "no terminal to ask for custodian {custodian}'s passphrase; give --passphrase-file {custodian}=PATH"
        )));
    }
    hidden(&format!("Passphrase for custodian {custodian}: "))
}

/// How hardware-key plugins reach the person: their messages ("touch your
/// YubiKey") and questions on the controlling terminal, with the same hidden
/// prompt as passphrases; a PIN through pinentry instead when
/// `PINENTRY_PROGRAM` is set, as the `age` CLI does. With no terminal,
/// messages go to stderr and nothing is asked (the plugin then fails by name;
/// `--passphrase-file NAME=PATH` answers a PIN in scripts).
struct PluginPrompts;

impl PluginUi for PluginPrompts {
    fn message(&self, who: &str, text: &str) {
        match Tty::open() {
            Some(tty) => tty.say(&format!("{who}: {text}\n")),
            None => errln!("{who}: {text}"),
        }
    }

    fn secret(&self, who: &str, description: &str) -> Option<age::secrecy::SecretString> {
        if let Some(program) = std::env::var_os("PINENTRY_PROGRAM").filter(|p| !p.is_empty()) {
            let description = format!("{who}: {description}");
            return pinentry::PassphraseInput::with_binary(program)?
                .with_title("breakglass")
                .with_description(&description)
                .with_prompt("PIN:")
                .interact()
                .ok();
        }
        Tty::open()?;
        let typed = hidden_text(&format!("{who}: {description}: ")).ok()?;
        Some(age::secrecy::SecretString::from(typed.as_str()))
    }

    fn confirm(&self, who: &str, message: &str, yes: &str, no: Option<&str>) -> Option<bool> {
        let choices = match no {
            Some(no) => format!("y = {yes}, n = {no}"),
            None => format!("y = {yes}"),
        };
        let answer = line(
            &format!("{who}: {message}"),
            &format!("{who}: {message} [{choices}]: "),
        )
        .ok()??;
        Some(matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes"))
    }
}

/// `--plugin-timeout`, set once from the command line.
pub static PLUGIN_TIMEOUT_SECS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Plugin options for this run: [`PluginPrompts`], and `--plugin-timeout`.
fn plugin_options() -> PluginOptions {
    PluginOptions {
        ui: std::sync::Arc::new(PluginPrompts),
        timeout: PLUGIN_TIMEOUT_SECS
            .get()
            .map_or(breakglass::crypto::DEFAULT_PLUGIN_TIMEOUT, |s| {
                std::time::Duration::from_secs(*s)
            }),
    }
}

/// `--rotator KIND --rotator-config FILE`: the kind, and its config parsed
/// and checked (strictly, each problem named) before anything is stored.
pub fn rotator(kind: &str, config: &Path) -> Result<breakglass::rotators::Rotator, VaultError> {
    use breakglass::rotators::{Rotator, RotatorKind};
    let kind =
        RotatorKind::parse(kind).map_err(|e| VaultError::Invalid(format!("--rotator: {e}")))?;
    let bytes = read_file(config, "rotator config")?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        VaultError::Invalid(format!(
            "rotator config {}: not UTF-8 text",
            config.display()
        ))
    })?;
    let mut rotator = Rotator::parse(kind, text)
        .map_err(|e| VaultError::Invalid(format!("rotator config {}: {e}", config.display())))?;
    rotator
        .embed_ca_file()
        .map_err(|e| VaultError::Invalid(format!("rotator config {}: {e}", config.display())))?;
    Ok(rotator)
}

/// `--rotator KIND|none` with `--rotator-config FILE`: a rotator to set, or
/// the stored one to remove.
pub fn rotator_change(
    kind: Option<&str>,
    config: Option<&Path>,
) -> Result<Option<breakglass::rotators::RotatorChange>, VaultError> {
    use breakglass::rotators::RotatorChange;
    match (kind, config) {
        (None, _) => Ok(None),
        (Some("none"), None) => Ok(Some(RotatorChange::Remove)),
        (Some("none"), Some(_)) => Err(VaultError::Invalid(
            "--rotator none removes the rotator; drop --rotator-config".into(),
        )),
        (Some(kind), Some(file)) => Ok(Some(RotatorChange::Set(rotator(kind, file)?))),
        (Some(kind), None) => Err(VaultError::Invalid(format!(
            "--rotator {}: give its config with --rotator-config FILE (see the README), or --rotator none to remove it",
            kind.escape_debug()
        ))),
    }
}

/// `--reveal-version NAME=N` (a name holds no `=`; N counts from 1).
pub fn reveal_versions(specs: &[String]) -> Result<Vec<breakglass::vault::Reveal>, VaultError> {
    specs
        .iter()
        .map(|spec| {
            let parsed = spec
                .rsplit_once('=')
                .and_then(|(name, n)| Some((name, n.parse::<u32>().ok().filter(|n| *n > 0)?)));
            match parsed {
                Some((name, n)) if !name.is_empty() => {
                    Ok(breakglass::vault::Reveal::version(name, n))
                }
                _ => Err(VaultError::Invalid(format!(
                    "--reveal-version {}: give NAME=N, e.g. --reveal-version bg-admin=3 (`breakglass list --json` shows versions)",
                    spec.escape_debug()
                ))),
            }
        })
        .collect()
}

/// Which `--credentials [NAME=]FILE` is for secret `name`: `NAME=FILE`
/// entries by name; a bare FILE only for a single rotation (`named_only` off).
pub fn credentials_file_for(
    specs: &[String],
    name: &str,
    named_only: bool,
) -> Result<Option<PathBuf>, VaultError> {
    for spec in specs {
        match spec.split_once('=') {
            Some((n, path)) if n == name => return Ok(Some(PathBuf::from(path))),
            Some(_) => {}
            None if named_only => {
                return Err(VaultError::Invalid(format!(
                    "--credentials {spec}: with --exposed, give NAME=FILE for each secret"
                )))
            }
            None => return Ok(Some(PathBuf::from(spec))),
        }
    }
    Ok(None)
}

/// A rotator's credentials: from `file`, else a hidden prompt on the
/// terminal; never argv or the environment, and never stored.
pub fn rotator_credentials(
    file: Option<&Path>,
    name: &str,
    kind: breakglass::rotators::RotatorKind,
) -> Result<breakglass::rotators::RotatorCredentials, VaultError> {
    use breakglass::rotators::RotatorCredentials;
    let what = kind.credentials_name();
    let text = match file {
        Some(path) => {
            let bytes = read_file(path, "credentials file")?;
            String::from_utf8(bytes).map_err(|_| {
                VaultError::Invalid(format!("credentials file {}: not UTF-8 text", path.display()))
            })?
        }
        None if interactive() => hidden_text(&format!(
            "{} for rotating {name} ({}, not stored): ",
            capitalized(what),
            kind.as_str()
        ))?
        .to_string(),
        None => {
            return Err(VaultError::Secret {
                name: name.into(),
                detail: format!(
                    "its rotator {} needs {what}, and there is no terminal to ask; give --credentials FILE",
                    kind.as_str()
                ),
            })
        }
    };
    RotatorCredentials::new(text).map_err(|e| VaultError::Secret {
        name: name.into(),
        detail: format!("{e}; give {what}"),
    })
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
