//! Alert sinks and the outbox. Events are queued in the same transaction as
//! their audit row and delivered after the command's work, with short timeouts.
//! Delivery never blocks an emergency: failures stay queued and are retried.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::audit::Entry;

/// Each delivery attempt gives up after this long.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);

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

    pub fn label(&self) -> String {
        match self {
            AlertSink::Exec(c) => format!("exec {c}"),
            AlertSink::Webhook(u) => format!("webhook {u}"),
            AlertSink::Syslog(a) => format!("syslog {a}"),
        }
    }

    /// Deliver one event; `Err` says why it stays queued.
    pub fn deliver(&self, payload: &str) -> Result<(), String> {
        match self {
            AlertSink::Exec(cmd) => deliver_exec(cmd, payload),
            AlertSink::Webhook(url) => deliver_webhook(url, payload),
            AlertSink::Syslog(addr) => deliver_syslog(addr, payload),
        }
    }
}

/// The JSON event for an audit row. Never holds a secret value: rows never do.
pub fn event(entry: &Entry, vault_id: &str, fingerprint: &str, epoch: u64) -> String {
    serde_json::json!({
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

fn deliver_exec(cmd: &str, payload: &str) -> Result<(), String> {
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
            Ok(None) if started.elapsed() > DELIVERY_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {}s", DELIVERY_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn connect(hostport: &str) -> Result<TcpStream, String> {
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {hostport} ({e})"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {hostport}"))?;
    let stream = TcpStream::connect_timeout(&addr, DELIVERY_TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(DELIVERY_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(DELIVERY_TIMEOUT))
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

fn deliver_webhook(url: &str, payload: &str) -> Result<(), String> {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(DELIVERY_TIMEOUT))
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

fn deliver_syslog(addr: &str, payload: &str) -> Result<(), String> {
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
            let mut stream = connect(hostport)?;
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

/// Send an event that has no audit row (a failed `audit verify` on a read-only
/// copy) straight to the sinks, best effort. Returns the failures.
pub fn send_now(sinks: &[AlertSink], payload: &str) -> Vec<String> {
    sinks
        .iter()
        .filter_map(|s| {
            s.deliver(payload)
                .err()
                .map(|e| format!("{}: {e}", s.label()))
        })
        .collect()
}
