//! Hardware-key custodians through age plugins (`age-plugin-yubikey`, `-tpm`,
//! `-se`, `-fido2-hmac`, …): which plugin names may run, how a plugin talks to
//! the person at this machine, and a deadline for plugins that hang.
//!
//! A plugin is a program found on `PATH` as `age-plugin-NAME`; the `age` crate
//! runs it and speaks its protocol. We add three things around it:
//! - only names made of `[a-z0-9-]` ever reach a `PATH` lookup (the `age` crate
//!   also allows `+`, `.`, `_` and capitals);
//! - the plugin's messages, PIN requests and confirmations go to a
//!   [`PluginUi`] that the binary implements with its own prompts, naming the
//!   custodian; a PIN given up front (`--passphrase-file NAME=PATH`) answers the
//!   first PIN request instead;
//! - a plugin that stays silent for longer than the timeout (a hung token, a
//!   removed one the plugin waits for) is killed, and the attempt fails by name.
//!   Time the person spends at a PIN or confirmation prompt does not count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use age::secrecy::SecretString;

use super::Passphrase;

/// How long a plugin may go without answering before it is killed.
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `name` may name a plugin: `[a-z0-9-]`, 1 to 64 characters, not
/// starting with `-`. Only such names reach a `PATH` lookup.
pub fn valid_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// How to install a plugin, for the error that says it is missing.
pub fn install_hint(name: &str) -> String {
    let binary = format!("age-plugin-{name}");
    match name {
        "yubikey" => format!(
            "install it with `cargo install {binary}` (it needs pcscd and libpcsclite) and make sure it is on PATH"
        ),
        "tpm" | "se" | "fido2-hmac" => format!(
            "install {binary} from its publisher's release page or package and make sure it is on PATH"
        ),
        _ => format!("install {binary} from a source you trust and make sure it is on PATH"),
    }
}

/// The person at this machine, as a plugin reaches them. `who` names the
/// custodian and plugin ("custodian alice (age-plugin-yubikey)").
pub trait PluginUi: Send + Sync {
    /// Show a plugin's message ("touch your YubiKey").
    fn message(&self, who: &str, text: &str);
    /// Ask for a PIN or passphrase, hidden; `None` when it cannot be asked.
    fn secret(&self, who: &str, description: &str) -> Option<SecretString>;
    /// Ask yes or no; `None` when it cannot be asked.
    fn confirm(&self, who: &str, message: &str, yes: &str, no: Option<&str>) -> Option<bool>;
}

/// A [`PluginUi`] that asks nothing and shows nothing: for library callers
/// with no person at hand. A plugin that needs a PIN fails by name.
pub struct NoPluginUi;

impl PluginUi for NoPluginUi {
    fn message(&self, _: &str, _: &str) {}
    fn secret(&self, _: &str, _: &str) -> Option<SecretString> {
        None
    }
    fn confirm(&self, _: &str, _: &str, _: &str, _: Option<&str>) -> Option<bool> {
        None
    }
}

/// How plugins run in this process: who they talk to, and how long they may
/// stay silent.
#[derive(Clone)]
pub struct PluginOptions {
    /// Where plugin messages and prompts go.
    pub ui: Arc<dyn PluginUi>,
    /// Silence after which a plugin is killed (time at a prompt not counted).
    pub timeout: Duration,
}

impl Default for PluginOptions {
    fn default() -> Self {
        Self {
            ui: Arc::new(NoPluginUi),
            timeout: DEFAULT_PLUGIN_TIMEOUT,
        }
    }
}

/// When a plugin last showed life, and whether the person is at a prompt.
struct Liveness {
    since: Instant,
    at_prompt: bool,
}

/// The `age` callbacks for one plugin run: the UI with the custodian named, a
/// PIN given up front (used once), and the liveness clock of the deadline.
#[derive(Clone)]
pub(crate) struct Bridge {
    ui: Arc<dyn PluginUi>,
    who: Arc<str>,
    pin: Arc<Mutex<Option<SecretString>>>,
    liveness: Arc<Mutex<Liveness>>,
    /// Set when the deadline gave up on the plugin: a plugin that survives
    /// its kill must not reach the person (or the next custodian's prompt).
    abandoned: Arc<AtomicBool>,
}

impl Bridge {
    pub(crate) fn new(options: &PluginOptions, who: String, pin: Option<&Passphrase>) -> Self {
        Self {
            ui: options.ui.clone(),
            who: one_line(&who).into(),
            abandoned: Arc::new(AtomicBool::new(false)),
            pin: Arc::new(Mutex::new(
                pin.map(|p| SecretString::from(p.expose_for_plugin().to_string())),
            )),
            liveness: Arc::new(Mutex::new(Liveness {
                since: Instant::now(),
                at_prompt: false,
            })),
        }
    }

    /// Run `ask` with the deadline clock stopped: a person typing a PIN is not
    /// a hung plugin.
    fn at_prompt<T>(&self, ask: impl FnOnce() -> T) -> T {
        self.set_prompt(true);
        let answer = ask();
        self.set_prompt(false);
        answer
    }

    fn set_prompt(&self, at_prompt: bool) {
        if let Ok(mut l) = self.liveness.lock() {
            l.at_prompt = at_prompt;
            l.since = Instant::now();
        }
    }

    /// Silence so far: zero while the person is at a prompt.
    fn silence(&self) -> Duration {
        match self.liveness.lock() {
            Ok(l) if l.at_prompt => Duration::ZERO,
            Ok(l) => l.since.elapsed(),
            Err(_) => Duration::ZERO,
        }
    }
}

impl Bridge {
    fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }

    fn at_a_prompt_now(&self) -> bool {
        self.liveness.lock().map(|l| l.at_prompt).unwrap_or(false)
    }
}

impl age::Callbacks for Bridge {
    fn display_message(&self, message: &str) {
        // Nothing over a hidden prompt (the age crate's own "waiting for the
        // plugin" note comes from another thread), nothing after a timeout.
        if self.abandoned() || self.at_a_prompt_now() {
            return;
        }
        self.ui.message(&self.who, &one_line(message));
    }

    fn confirm(&self, message: &str, yes_string: &str, no_string: Option<&str>) -> Option<bool> {
        if self.abandoned() {
            return None;
        }
        self.at_prompt(|| {
            self.ui.confirm(
                &self.who,
                &one_line(message),
                &one_line(yes_string),
                no_string.map(one_line).as_deref(),
            )
        })
    }

    fn request_public_string(&self, _description: &str) -> Option<String> {
        // No plugin we support asks for public strings; refuse rather than
        // let a plugin steer what we type.
        None
    }

    fn request_passphrase(&self, description: &str) -> Option<SecretString> {
        if self.abandoned() {
            return None;
        }
        if let Some(pin) = self.pin.lock().ok().and_then(|mut p| p.take()) {
            return Some(pin);
        }
        self.at_prompt(|| self.ui.secret(&self.who, &one_line(description)))
    }
}

/// A plugin's text as one printable line, at most 300 characters: it comes
/// from another program and must not move the cursor or fake our output.
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(300));
    for c in text.trim().chars() {
        if out.chars().count() >= 300 {
            out.push('…');
            break;
        }
        match c {
            '\n' | '\r' | '\t' => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c if c.is_control() || is_invisible_format(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// Zero-width and bidirectional formatting characters (the `age` crate wraps
/// plugin text in isolation marks): invisible, and able to reorder a line.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

/// Run `job`, which talks to plugin `binary`, killing the plugin if it is
/// silent for longer than `timeout`. `Err` names the plugin and the timeout.
pub(crate) fn with_deadline<T: Send + 'static>(
    binary: &str,
    timeout: Duration,
    bridge: &Bridge,
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (done, result) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = done.send(job());
    });
    loop {
        match result.recv_timeout(Duration::from_millis(50)) {
            Ok(value) => {
                let _ = worker.join();
                return Ok(value);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!("{binary} stopped unexpectedly"));
            }
            Err(mpsc::RecvTimeoutError::Timeout) if bridge.silence() > timeout => {
                bridge.abandoned.store(true, Ordering::SeqCst);
                crate::hygiene::kill_child_plugins();
                // Killing the plugin ends the conversation; wait briefly so its
                // thread reaps it, but never hang on it.
                let _ = result.recv_timeout(Duration::from_secs(5));
                return Err(format!(
                    "{binary} did not answer within {} s and was stopped (a hung or removed token?); check the token and try again, or give more time with --plugin-timeout SECONDS",
                    timeout.as_secs()
                ));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

impl Passphrase {
    /// The text, only to answer a plugin's PIN request (crypto-internal).
    pub(super) fn expose_for_plugin(&self) -> &str {
        self.expose_for_strength_check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lowercase_letters_digits_and_hyphens_name_a_plugin() {
        for good in ["yubikey", "tpm", "se", "fido2-hmac", "bgtest"] {
            assert!(valid_plugin_name(good), "{good}");
        }
        for bad in [
            "",
            "YubiKey",
            "a.b",
            "a_b",
            "a+b",
            "../x",
            "-x",
            "a/b",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(!valid_plugin_name(bad), "{bad}");
        }
    }

    #[test]
    fn plugin_text_is_one_printable_line() {
        assert_eq!(one_line("touch\nyour\x1b[2Jkey\r\n"), "touch your[2Jkey");
        assert_eq!(
            one_line("'\u{2068}age-plugin-x\u{2069}' \u{202E}failed"),
            "'age-plugin-x' failed"
        );
        assert!(one_line(&"a".repeat(1000)).chars().count() <= 301);
    }
}
