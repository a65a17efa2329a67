//! Alert sinks and the outbox. Events are queued in the same transaction as
//! their audit row and delivered after the command's work, all sinks at once in
//! their own threads, within one small time budget however long the queue is.
//! Delivery never blocks an emergency: failures stay queued and are retried,
//! and a sink that keeps failing backs off.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::audit::Entry;

/// Each delivery attempt gives up after this long (or sooner, when the budget
/// of the whole delivery runs out first).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);

/// All delivery after a command (every sink, every queued alert) shares this
/// budget. Whatever is not delivered by then stays queued.
pub const AFTER_COMMAND_BUDGET: Duration = Duration::from_secs(3);

/// `alerts flush` is asked for: it tries every sink, backed off or not, and may
/// take longer, but a sink that fails once is not tried again in the same run.
pub const FLUSH_BUDGET: Duration = Duration::from_secs(30);

/// After the budget, threads get this long to report an attempt they gave up
/// on (each attempt's own timeout ends with the budget) before they are left
/// behind. A thread left behind holds no handle on the vault.
const GRACE: Duration = Duration::from_millis(300);

/// A sink that failed waits this long before the next automatic try, doubling
/// with each further failure up to [`BACKOFF_MAX`]. `alerts flush` ignores it.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(60);
/// The longest wait between automatic retries of a failing sink.
pub const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// How long a sink that failed `failures` times in a row is left alone.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_FIRST
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_MAX)
}

/// Audit actions that raise an alert.
pub const ALERT_ACTIONS: &[&str] = &[
    "request",
    "request_expired",
    "approval_accepted",
    "approval_rejected",
    "unseal",
    "unseal_failed",
    "reveal",
    "share_rejected",
    "drill",
    "drill_full",
    "rotate",
    "rotate_failed",
    "rotation_abandoned",
    "new_epoch",
    "rekey_failed",
    "rekey_skipped",
    "checkpoint_refused",
    "hook_trusted",
];

/// True when an audit action of this name queues an alert.
pub fn raises_alert(action: &str) -> bool {
    ALERT_ACTIONS.contains(&action)
}

/// Where alerts go. Stored in the signed manifest, so only a quorum changes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "target", rename_all = "lowercase")]
pub enum AlertSink {
    /// `sh -c CMD` gets the JSON event on stdin.
    Exec(String),
    /// HTTP(S) POST of the JSON event (`https://host[:port]/path`).
    Webhook(String),
    /// RFC 5424 over `udp:host:port` (or `host:port`), `tcp:host:port`, or `unix:/dev/log`.
    Syslog(String),
}

impl AlertSink {
    /// An `http://` or `https://` URL. HTTPS certificates are checked against
    /// the system's trust store (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured).
    pub fn webhook(url: &str) -> Result<Self, String> {
        let uri: ureq::http::Uri = url.parse().map_err(|e| {
            format!("--alert-webhook {url}: not a URL ({e}); expected https://host[:port]/path")
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(format!(
                "--alert-webhook {url}: expected an http:// or https:// URL"
            ));
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("--alert-webhook {url}: no host"));
        }
        Ok(AlertSink::Webhook(url.to_string()))
    }

    /// Parses an `--alert-syslog` address (`host:port`, `udp:`/`tcp:` prefixed, or `unix:PATH`).
    pub fn syslog(addr: &str) -> Result<Self, String> {
        let ok = match addr.split_once(':') {
            Some(("unix", path)) => !path.is_empty(),
            Some(("udp" | "tcp", hostport)) => hostport
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok()),
            _ => addr
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok()),
        };
        ok.then(|| AlertSink::Syslog(addr.to_string()))
            .ok_or_else(|| format!("--alert-syslog {addr}: expected host:port, udp:host:port, tcp:host:port or unix:/dev/log"))
    }

    /// A short, secret-free name for the sink, used in reports and errors.
    pub fn label(&self) -> String {
        match self {
            AlertSink::Exec(c) => format!("exec {c}"),
            AlertSink::Webhook(u) => format!("webhook {u}"),
            AlertSink::Syslog(a) => format!("syslog {a}"),
        }
    }

    /// Deliver one event, giving up after `timeout`; `Err` says why it stays queued.
    pub fn deliver(&self, payload: &str, timeout: Duration) -> Result<(), String> {
        match self {
            AlertSink::Exec(cmd) => deliver_exec(cmd, payload, timeout),
            AlertSink::Webhook(url) => deliver_webhook(url, payload, timeout),
            AlertSink::Syslog(addr) => deliver_syslog(addr, payload, timeout),
        }
    }
}

/// The stable id of the event an audit row raises: the vault id, the row's
/// seq and the start of its hash. A retried (or, after a cut-off delivery,
/// repeated) event keeps it, so a receiver drops a second copy; two copies of
/// the vault used separately write different rows at the same seq, and their
/// events keep distinct ids.
pub fn event_id(vault_id: &str, entry: &Entry) -> String {
    let short = entry.hash.get(..16).unwrap_or(&entry.hash);
    format!("{vault_id}:{}:{short}", entry.seq)
}

/// The JSON event for an audit row. Never holds a secret value: rows never do.
pub fn event(entry: &Entry, vault_id: &str, fingerprint: &str, epoch: u64) -> String {
    serde_json::json!({
        "event_id": event_id(vault_id, entry),
        "event": entry.action,
        "subject": entry.subject,
        "vault_id": vault_id,
        "fingerprint": fingerprint,
        "epoch": epoch,
        "seq": entry.seq,
        "hash": entry.hash,
        "anchor": crate::audit::anchor(fingerprint, Some(entry)),
        "actor": entry.actor,
        "reason": entry.reason,
        "time": entry.time,
    })
    .to_string()
}

fn deliver_exec(cmd: &str, payload: &str, timeout: Duration) -> Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start ({e})"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(payload.as_bytes());
        let _ = stdin.write_all(b"\n");
    }
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("exited {}", status.code().unwrap_or(-1))),
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {}", seconds(timeout)));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// "3s", "1.5s": a duration as an error message shows it.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

fn connect(hostport: &str, timeout: Duration) -> Result<TcpStream, String> {
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {hostport} ({e})"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {hostport}"))?;
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

fn deliver_webhook(url: &str, payload: &str, timeout: Duration) -> Result<(), String> {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        // A redirect is a misconfigured sink, not somewhere to send events.
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent("breakglass")
        .tls_config(tls)
        .build()
        .into();
    let response = agent
        .post(url)
        .content_type("application/json")
        .send(payload)
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP status {}", status.as_u16()))
    }
}

fn deliver_syslog(addr: &str, payload: &str, timeout: Duration) -> Result<(), String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "-".into());
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // PRI 84 = facility authpriv (10) * 8 + severity warning (4).
    let line = format!(
        "<84>1 {time} {host} breakglass {} alert - {payload}",
        std::process::id()
    );
    match addr.split_once(':') {
        Some(("unix", path)) => {
            let socket = std::os::unix::net::UnixDatagram::unbound().map_err(|e| e.to_string())?;
            socket
                .send_to(line.as_bytes(), path)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Some(("tcp", hostport)) => {
            let mut stream = connect(hostport, timeout)?;
            stream
                .write_all(format!("{line}\n").as_bytes())
                .map_err(|e| e.to_string())
        }
        Some(("udp", hostport)) => send_udp(hostport, &line),
        _ => send_udp(addr, &line),
    }
}

fn send_udp(hostport: &str, line: &str) -> Result<(), String> {
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    socket
        .send_to(line.as_bytes(), hostport)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// One queued alert to deliver: its queue row id and its event.
pub struct Job {
    /// Row id in the alert queue.
    pub id: i64,
    /// The alert event as JSON, as delivered.
    pub payload: String,
}

/// What became of one sink's alerts in one delivery run.
pub struct SinkRun {
    /// The sink these alerts were sent to.
    pub sink: AlertSink,
    /// Attempts that ended in time, in order: (queue row id, outcome).
    pub results: Vec<(i64, Result<(), String>)>,
    /// The attempt still running when the run stopped waiting (a hung sink):
    /// it is neither delivered nor known to have failed. Its thread is left
    /// behind; if it completes later it is not recorded, so the alert is sent
    /// again by a later run (the event id lets the receiver drop the copy).
    pub cut_off: Option<i64>,
}

impl SinkRun {
    /// True when at least one alert reached this sink.
    pub fn delivered_any(&self) -> bool {
        self.results.iter().any(|(_, r)| r.is_ok())
    }

    /// The sink failed this run: an attempt failed or got no answer in time.
    pub fn failure(&self) -> Option<String> {
        self.results
            .iter()
            .find_map(|(_, r)| r.as_ref().err().cloned())
            .or_else(|| {
                self.cut_off
                    .map(|_| "no answer within the delivery budget".into())
            })
    }
}

enum Progress {
    Started(i64),
    Finished(i64, Result<(), String>),
    Done,
}

/// Deliver each sink's alerts, every sink in a thread of its own, all within
/// `budget` in total whatever the number of alerts. A sink's alerts go in
/// order; after its first failure the rest wait for a later run (they would
/// fail the same way). Returns once every sink is done or the budget (and a
/// short grace for attempts to report their own timeout) is spent; threads
/// still running then are left behind: they hold only their sink and events,
/// and the process may exit under them.
pub fn deliver_all(batches: Vec<(AlertSink, Vec<Job>)>, budget: Duration) -> Vec<SinkRun> {
    let started = Instant::now();
    let deadline = started + budget;
    let (tx, rx) = mpsc::channel::<(usize, Progress)>();
    let mut runs: Vec<SinkRun> = Vec::with_capacity(batches.len());
    let mut current: Vec<Option<i64>> = vec![None; batches.len()];
    let mut running = 0;
    for (index, (sink, jobs)) in batches.into_iter().enumerate() {
        runs.push(SinkRun {
            sink: sink.clone(),
            results: Vec::new(),
            cut_off: None,
        });
        let tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("alert-sink".into())
            .spawn(move || {
                for job in jobs {
                    let left = deadline.saturating_duration_since(Instant::now());
                    // Too little time left to try: not a failure, it waits.
                    if left < Duration::from_millis(50) {
                        break;
                    }
                    let _ = tx.send((index, Progress::Started(job.id)));
                    let outcome = sink.deliver(&job.payload, left.min(DELIVERY_TIMEOUT));
                    let failed = outcome.is_err();
                    let _ = tx.send((index, Progress::Finished(job.id, outcome)));
                    if failed {
                        break;
                    }
                }
                let _ = tx.send((index, Progress::Done));
            });
        if spawned.is_ok() {
            running += 1;
        }
    }
    drop(tx);
    let stop = deadline + GRACE;
    while running > 0 {
        let left = stop.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, Progress::Started(id))) => current[i] = Some(id),
            Ok((i, Progress::Finished(id, outcome))) => {
                current[i] = None;
                runs[i].results.push((id, outcome));
            }
            Ok((_, Progress::Done)) => running -= 1,
            Err(_) => break,
        }
    }
    for (run, hung) in runs.iter_mut().zip(current) {
        run.cut_off = hung;
    }
    runs
}

/// Send an event that has no audit row (a failed `audit verify` on a read-only
/// copy) straight to the sinks, best effort, within the after-command budget.
/// Returns the failures.
pub fn send_now(sinks: &[AlertSink], payload: &str) -> Vec<String> {
    let batches = sinks
        .iter()
        .map(|s| {
            (
                s.clone(),
                vec![Job {
                    id: 0,
                    payload: payload.to_string(),
                }],
            )
        })
        .collect();
    deliver_all(batches, AFTER_COMMAND_BUDGET)
        .into_iter()
        .filter_map(|run| run.failure().map(|e| format!("{}: {e}", run.sink.label())))
        .collect()
}

/// The file in the state directory that holds this machine's alert origin.
fn origin_path() -> std::path::PathBuf {
    crate::remote::state_dir().join("alert-origin")
}

fn valid_origin(text: &str) -> Option<String> {
    let text = text.trim();
    (text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

/// This machine's alert origin if it has one already (read-only commands
/// never create it: with none, no queued alert is this machine's).
pub fn known_origin() -> Option<String> {
    std::fs::read_to_string(origin_path())
        .ok()
        .and_then(|t| valid_origin(&t))
}

/// This machine's alert origin: a random id kept in the state directory,
/// made on first use. Every queue row records the origin that queued it, and
/// automatic delivery sends only this origin's rows, so a copy of the vault
/// taken to another machine never re-sends the alerts the first one queued.
/// `Err` says why it cannot be kept (then alerts queued now wait for
/// `alerts flush --adopt`).
pub fn origin() -> Result<String, String> {
    static ORIGIN: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(make_origin).clone()
}

fn make_origin() -> Result<String, String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = origin_path();
    let shown = |e: std::io::Error| format!("{}: {e}", path.display());
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return valid_origin(&text).ok_or_else(|| {
                format!(
                    "{}: not an alert origin (32 hex digits); remove it to make a new one",
                    path.display()
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(shown(e)),
    }
    let dir = crate::remote::state_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(shown)?;
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let staging = dir.join(format!("alert-origin.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&staging);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staging)
        .and_then(|mut f| {
            f.write_all(format!("{}\n", hex::encode(bytes)).as_bytes())?;
            f.sync_all()
        });
    // A hard link never replaces: of two first runs at once, one origin wins
    // and both read it back.
    let linked = written.and_then(|()| match std::fs::hard_link(&staging, &path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    });
    let _ = std::fs::remove_file(&staging);
    linked.map_err(shown)?;
    let text = std::fs::read_to_string(&path).map_err(shown)?;
    valid_origin(&text).ok_or_else(|| format!("{}: not an alert origin", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_minute_to_one_hour() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(6), Duration::from_secs(1920));
        assert_eq!(backoff(7), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn a_hung_sink_costs_the_budget_once_and_the_others_still_deliver() {
        let dir = std::env::temp_dir().join(format!("bg-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("got");
        let jobs = |n: i64| {
            (1..=n)
                .map(|id| Job {
                    id,
                    payload: format!("{{\"n\":{id}}}"),
                })
                .collect::<Vec<_>>()
        };
        let started = Instant::now();
        let runs = deliver_all(
            vec![
                (AlertSink::Exec("sleep 20".into()), jobs(50)),
                (
                    AlertSink::Exec(format!("cat >> '{}'", log.display())),
                    jobs(5),
                ),
            ],
            Duration::from_secs(2),
        );
        let took = started.elapsed();
        assert!(took < Duration::from_secs(6), "{took:?}");
        assert!(runs[0].results.len() <= 1 && !runs[0].delivered_any());
        assert!(runs[0].failure().is_some());
        assert_eq!(runs[1].results.len(), 5);
        assert!(runs[1].failure().is_none());
        let got = std::fs::read_to_string(&log).unwrap();
        assert_eq!(got.lines().count(), 5);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
