//! A real terminal for tests: the binary runs in a detached tmux session on a
//! private socket; the test types with `send-keys` and reads the screen with
//! `capture-pane`. The server is killed when the [`Screen`] is dropped, also
//! when the test fails.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a screen may take to show what a test waits for (a loaded machine
/// runs several test binaries at once).
pub const WAIT: Duration = Duration::from_secs(30);

/// Whether tmux can run. Without it the test is skipped (said on stderr) on a
/// developer's machine, but under CI (`CI` set, as `.ci/run` is run) a missing
/// tmux fails: `.ci/run` installs it.
pub fn available() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if found {
        return true;
    }
    let ci = std::env::var("CI").unwrap_or_default();
    if !ci.is_empty() && ci != "false" && ci != "0" {
        panic!("tmux is not installed but CI={ci}: .ci/run installs it (apt-get install tmux)");
    }
    // Straight to stderr, past the test harness's capture, so a skip is seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipped: tmux is not installed (apt-get install tmux); the terminal tests did not run"
    );
    false
}

/// Quote one word for `sh`.
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// One tmux session, 200x50, running one shell line, on a tmux server of its
/// own (a private socket, never a user's server).
pub struct Screen {
    socket: std::path::PathBuf,
}

const SESSION: &str = "bgtest";

impl Screen {
    /// Run `shell_line` (sh syntax, so `2>/dev/null` works) in `dir` with
    /// `env`, in a new session on a private tmux server. When the line ends,
    /// the screen shows `[exit N]` and the pane stays for reading.
    pub fn spawn(dir: &Path, env: &[(&str, &str)], shell_line: &str) -> Screen {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket =
            std::env::temp_dir().join(format!("breakglass-tmux-{}-{n}", std::process::id()));
        let mut script = format!("cd {}\n", quote(&dir.display().to_string()));
        for (name, value) in env {
            script.push_str(&format!("export {name}={}\n", quote(value)));
        }
        script.push_str(shell_line);
        script.push_str("\necho \"[exit $?]\"\nexec sleep 3600\n");
        let script_path = dir.join(format!("terminal-{n}.sh"));
        std::fs::write(&script_path, script).unwrap();
        let screen = Screen { socket };
        let status = screen
            .tmux()
            .args(["-f", "/dev/null", "new-session", "-d", "-s", SESSION])
            .args(["-x", "200", "-y", "50"])
            .arg(format!("sh {}", quote(&script_path.display().to_string())))
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux new-session failed");
        screen
    }

    fn tmux(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket);
        // The server keeps the environment it was started with; never a user's.
        cmd.env_remove("TMUX");
        cmd
    }

    /// Everything the pane shows, with its history, wrapped lines joined.
    pub fn text(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-J", "-S", "-", "-t", SESSION])
            .output()
            .expect("tmux capture-pane runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until `pattern` shows on the screen `times` times in all; the screen then.
    pub fn wait_for_count(&self, pattern: &str, times: usize, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = self.text();
            if text.matches(pattern).count() >= times {
                return text;
            }
            if start.elapsed() > timeout {
                panic!(
                    "after {timeout:?} the screen does not show {pattern:?} {times} time(s); it shows:\n{text}"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until `pattern` shows on the screen; the screen then.
    pub fn wait_for_screen_text(&self, pattern: &str, timeout: Duration) -> String {
        self.wait_for_count(pattern, 1, timeout)
    }

    /// Type `text` and Enter, as a person would once the prompt is there. The
    /// short pause lets a hidden prompt turn echo off after it shows itself.
    pub fn type_line(&self, text: &str) {
        self.type_text(text);
        self.press("Enter");
    }

    /// Type `text` without Enter (after the same short pause as [`Screen::type_line`]).
    pub fn type_text(&self, text: &str) {
        std::thread::sleep(Duration::from_millis(200));
        let status = self
            .tmux()
            .args(["send-keys", "-t", SESSION, "-l", text])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Press one key by its tmux name: `Enter`, `BSpace`, `C-c`, `C-u`, `Up`…
    pub fn press(&self, key: &str) {
        let status = self
            .tmux()
            .args(["send-keys", "-t", SESSION, key])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait for the command to end; its exit code and the final screen.
    pub fn wait_exit(&self, timeout: Duration) -> (i32, String) {
        let text = self.wait_for_screen_text("[exit ", timeout);
        let code = text
            .split("[exit ")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no exit code on the screen:\n{text}"));
        (code, text)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").output();
        let _ = std::fs::remove_file(&self.socket);
    }
}
