//! Alerts on every use, through the real binary and real sinks: a command, local
//! HTTP and HTTPS servers, a UDP socket and a real rsyslogd; failing sinks never block.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use support::Kit;

/// A 2-of-2 vault whose alerts go to the given init options.
fn kit_with_alerts(alert_args: &[String]) -> Kit {
    let kit = Kit::new(&["alice", "bob"]);
    let mut init = kit.bg();
    init.args(["init", "--threshold", "2"]);
    for n in ["alice", "bob"] {
        init.arg("--custodian")
            .arg(format!("{n}={}", kit.public(n)));
    }
    init.args(alert_args).assert().success();
    kit
}

fn events(file: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn exec_sink_gets_one_well_formed_event_per_action_and_never_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.jsonl");
    let kit = kit_with_alerts(&["--alert-exec".into(), format!("cat >> '{}'", log.display())]);
    let canary = "CANARY-alert-5f1e";
    kit.put("vpn", "password", canary);
    assert!(events(&log).is_empty(), "a deposit raises no alert");
    let out = kit.unseal(&["alice", "bob"], &["vpn"]).output().unwrap();
    assert!(out.status.success());
    let got = events(&log);
    let kinds: Vec<&str> = got.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["unseal", "reveal", "new_epoch"]);
    let fingerprint = kit.json(&["status"])["fingerprint"].clone();
    for e in &got {
        assert_eq!(e["fingerprint"], fingerprint);
        for key in [
            "vault_id", "epoch", "seq", "hash", "anchor", "actor", "reason", "time", "subject",
        ] {
            assert!(e.get(key).is_some(), "{key} missing in {e}");
        }
    }
    assert_eq!(got[1]["subject"], "vpn");
    assert_eq!(got[1]["reason"], "test outage");
    assert!(!std::fs::read_to_string(&log).unwrap().contains(canary));
    // Drill and rotation alert too.
    kit.bg()
        .args(["drill", "--identity"])
        .arg(kit.key("alice"))
        .assert()
        .success();
    kit.bg()
        .args(["rotate", "vpn", "--generate"])
        .assert()
        .success();
    let kinds: Vec<String> = events(&log)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(&kinds[3..], ["drill", "rotate"]);
    // A full drill alerts for each custodian and for the combining step.
    kit.bg()
        .args(["drill", "--full", "--identity"])
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("bob"))
        .assert()
        .success();
    let kinds: Vec<String> = events(&log)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(&kinds[5..], ["drill", "drill", "drill_full"]);
    assert_eq!(
        kit.json(&["alerts", "list"])["alerts"],
        serde_json::json!([])
    );
}

/// Read one HTTP request and answer 200; returns (request line, body).
fn answer_one_post(stream: &mut (impl Read + Write)) -> std::io::Result<(String, String)> {
    let mut reader = BufReader::new(&mut *stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    stream.flush()?;
    Ok((request_line, String::from_utf8(body).unwrap()))
}

/// Accept up to `n` connections (giving up after 30 s so a test cannot hang).
fn accept_each(
    listener: std::net::TcpListener,
    n: usize,
    mut serve: impl FnMut(std::net::TcpStream) -> Option<(String, String)> + Send + 'static,
) -> std::thread::JoinHandle<Vec<Option<(String, String)>>> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut got = Vec::new();
        while got.len() < n && std::time::Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                        .unwrap();
                    got.push(serve(stream));
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        got
    })
}

#[test]
fn webhook_receives_the_post() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = accept_each(listener, 1, |mut s| answer_one_post(&mut s).ok());
    let kit = kit_with_alerts(&[
        "--alert-webhook".into(),
        format!("http://127.0.0.1:{port}/hooks/breakglass"),
    ]);
    kit.bg()
        .args(["drill", "--identity"])
        .arg(kit.key("bob"))
        .assert()
        .success();
    let (request_line, body) = server.join().unwrap().remove(0).expect("a POST");
    assert!(
        request_line.starts_with("POST /hooks/breakglass HTTP/1.1"),
        "{request_line}"
    );
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["event"], "drill");
    assert_eq!(event["subject"], "bob");
}

/// A throwaway CA (PEM, for SSL_CERT_FILE) and a TLS server config for 127.0.0.1 signed by it.
fn test_ca_and_server() -> (String, std::sync::Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "breakglass test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
        )
        .unwrap();
    (ca.pem(), std::sync::Arc::new(config))
}

fn serve_tls(
    config: std::sync::Arc<rustls::ServerConfig>,
) -> impl FnMut(std::net::TcpStream) -> Option<(String, String)> + Send + 'static {
    move |tcp| {
        let conn = rustls::ServerConnection::new(config.clone()).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        answer_one_post(&mut tls).ok()
    }
}

/// `breakglass` with the test CA as the whole system trust store, and no proxy.
fn trusting(mut cmd: assert_cmd::Command, ca_file: &Path) -> assert_cmd::Command {
    cmd.env("SSL_CERT_FILE", ca_file).env_remove("SSL_CERT_DIR");
    for proxy in ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        cmd.env_remove(proxy);
    }
    cmd
}

#[test]
fn https_webhook_posts_to_a_server_the_system_trusts() {
    let (ca_pem, config) = test_ca_and_server();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = accept_each(listener, 1, serve_tls(config));
    let kit = kit_with_alerts(&[
        "--alert-webhook".into(),
        format!("https://127.0.0.1:{port}/hooks/breakglass"),
    ]);
    let ca_file = kit.path("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    trusting(kit.bg(), &ca_file)
        .args(["drill", "--identity"])
        .arg(kit.key("alice"))
        .assert()
        .success();
    let (request_line, body) = server.join().unwrap().remove(0).expect("a POST over TLS");
    assert!(request_line.starts_with("POST /hooks/breakglass HTTP/1.1"));
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["event"], "drill");
    assert_eq!(
        kit.json(&["alerts", "list"])["alerts"],
        serde_json::json!([])
    );
}

#[test]
fn https_webhook_with_an_untrusted_certificate_stays_queued_until_trusted() {
    let (ca_pem, config) = test_ca_and_server();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = accept_each(listener, 2, serve_tls(config));
    let kit = kit_with_alerts(&[
        "--alert-webhook".into(),
        format!("https://127.0.0.1:{port}/hook"),
    ]);
    // A trust store that does not hold the server's CA: the handshake must fail.
    let (other_ca, _) = test_ca_and_server();
    let other_file = kit.path("other-ca.pem");
    std::fs::write(&other_file, other_ca).unwrap();
    trusting(kit.bg(), &other_file)
        .args(["drill", "--identity"])
        .arg(kit.key("alice"))
        .assert()
        .success();
    let queued = kit.json(&["alerts", "list"]);
    assert_eq!(queued["alerts"].as_array().unwrap().len(), 1, "{queued}");
    let error = queued["alerts"][0]["last_error"].as_str().unwrap();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    // Once the CA is trusted, a flush delivers it, once.
    let ca_file = kit.path("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    trusting(kit.bg(), &ca_file)
        .args(["alerts", "flush"])
        .assert()
        .success();
    let served = server.join().unwrap();
    assert_eq!(served.len(), 2);
    assert!(
        served[0].is_none(),
        "nothing was sent over the untrusted connection"
    );
    let (_, body) = served[1].clone().expect("the flushed POST");
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["event"], "drill");
    assert_eq!(
        kit.json(&["alerts", "list"])["alerts"],
        serde_json::json!([])
    );
}

#[test]
fn syslog_receives_an_rfc5424_line() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let kit = kit_with_alerts(&["--alert-syslog".into(), addr.to_string()]);
    kit.bg()
        .args(["drill", "--identity"])
        .arg(kit.key("alice"))
        .assert()
        .success();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).unwrap();
    let line = String::from_utf8_lossy(&buf[..n]);
    assert!(line.starts_with("<84>1 20"), "{line}");
    assert!(
        line.contains(" breakglass ") && line.contains("\"event\":\"drill\""),
        "{line}"
    );
}

#[test]
fn failing_sinks_never_block_and_deliver_later_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.jsonl");
    let flag = dir.path().join("sink-is-up");
    let kit = kit_with_alerts(&[
        "--alert-exec".into(),
        format!("test -f '{}' && cat >> '{}'", flag.display(), log.display()),
        // Nobody listens here: connection refused.
        "--alert-webhook".into(),
        "http://127.0.0.1:9/".into(),
    ]);
    kit.put("vpn", "password", "still-revealed");
    let out = kit.unseal(&["alice", "bob"], &["vpn"]).output().unwrap();
    assert!(out.status.success(), "the reveal happens anyway");
    assert!(String::from_utf8_lossy(&out.stdout).contains("still-revealed"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: 6 alerts queued, the oldest for"),
        "{stderr}"
    );
    let queued = kit.json(&["alerts", "list"])["alerts"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(queued, 6, "3 events x 2 sinks");
    let status = kit.json(&["status"]);
    assert_eq!(status["alerts_undelivered"], 6);
    // Fresh failures are shown but only turn --check red after 15 minutes.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute(
        "UPDATE alert_queue SET created = '2020-01-01T00:00:00.000Z'",
        [],
    )
    .unwrap();
    drop(conn);
    assert!(kit.json(&["status"])["attention"]
        .to_string()
        .contains("6 alerts undelivered"));
    kit.bg().args(["status", "--check"]).assert().code(1);

    // The exec sink comes back: flush delivers its events once; the webhook stays queued.
    std::fs::write(&flag, "").unwrap();
    kit.bg().args(["alerts", "flush"]).assert().code(1);
    assert_eq!(events(&log).len(), 3);
    kit.bg().args(["alerts", "flush"]).assert().code(1);
    assert_eq!(events(&log).len(), 3, "delivered alerts are not sent again");
    assert_eq!(
        kit.json(&["alerts", "list"])["alerts"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn a_hanging_sink_times_out_and_stays_queued() {
    let kit = kit_with_alerts(&["--alert-exec".into(), "sleep 30".into()]);
    let started = std::time::Instant::now();
    kit.bg()
        .args(["drill", "--identity"])
        .arg(kit.key("alice"))
        .assert()
        .success();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let alerts = kit.json(&["alerts", "list"]);
    assert!(alerts["alerts"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("timed out"));
}

#[test]
fn bad_webhook_urls_and_syslog_addresses_are_refused_at_init() {
    let kit = Kit::new(&["alice", "bob"]);
    let cases = [
        ("--alert-syslog", "nowhere", "--alert-syslog nowhere"),
        (
            "--alert-webhook",
            "ftp://relay/x",
            "expected an http:// or https:// URL",
        ),
        (
            "--alert-webhook",
            "https:///path",
            "--alert-webhook https:///path",
        ),
        (
            "--alert-webhook",
            "relay.internal",
            "--alert-webhook relay.internal",
        ),
    ];
    for (flag, value, expected) in cases {
        let out = kit
            .bg()
            .args(["init", "--threshold", "2", "--custodian"])
            .arg(format!("alice={}", kit.public("alice")))
            .arg("--custodian")
            .arg(format!("bob={}", kit.public("bob")))
            .args([flag, value])
            .output()
            .unwrap();
        let err = support::one_line_error(&out);
        assert!(err.contains(expected), "{value}: {err}");
        assert!(!kit.vault.exists());
    }
}

#[test]
fn a_failed_audit_verify_alerts_and_rekey_can_change_the_sinks() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.jsonl");
    let second = dir.path().join("second.jsonl");
    let kit = kit_with_alerts(&[
        "--alert-exec".into(),
        format!("cat >> '{}'", first.display()),
    ]);
    kit.put("vpn", "password", "pw");
    // Only a quorum changes the sinks (they live in the signed manifest).
    let mut rekey = kit.bg();
    rekey
        .args(["rekey", "--alert-exec"])
        .arg(format!("cat >> '{}'", second.display()));
    rekey
        .arg("--identity")
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("bob"));
    rekey.assert().success();
    let before_second = events(&second).len();
    assert!(
        before_second >= 1,
        "the new epoch is announced to the new sink"
    );
    let first_count = events(&first).len();
    kit.bg()
        .args(["drill", "--identity"])
        .arg(kit.key("alice"))
        .assert()
        .success();
    assert_eq!(
        events(&first).len(),
        first_count,
        "the old sink no longer hears"
    );
    assert_eq!(events(&second).last().unwrap()["event"], "drill");
    // A tampered log raises an alert on verify.
    rusqlite::Connection::open(&kit.vault)
        .unwrap()
        .execute("UPDATE audit SET actor = 'x' WHERE seq = 2", [])
        .unwrap();
    kit.bg().args(["audit", "verify"]).assert().code(1);
    let last = events(&second).last().unwrap().clone();
    assert_eq!(last["event"], "audit_verify_failed");
    assert_eq!(last["seq"], 2);
}

/// A real rsyslogd, unprivileged, on a loopback UDP port, writing what it parsed to a file.
struct Rsyslog {
    child: std::process::Child,
    port: u16,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Rsyslog {
    fn start() -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = dir.path().join("parsed.log");
        let conf = dir.path().join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{port}")
template(name="parsed" type="string" string="%syslogfacility-text%.%syslogseverity-text% app=%app-name% msgid=%msgid% msg=%msg%\n")
*.* action(type="omfile" file="{out}" template="parsed")
"#,
                dir = dir.path().display(),
                out = out.display()
            ),
        )
        .unwrap();
        let binary = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("rsyslogd");
        let child = std::process::Command::new(binary)
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .args(["-n", "-C"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("rsyslogd (Debian package rsyslog; .ci/run installs it)");
        let syslog = Rsyslog {
            child,
            port,
            out,
            _dir: dir,
        };
        // Ready once a probe sent to it comes out parsed.
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        syslog.wait_for("app=probe", || {
            let _ = probe.send_to(
                b"<13>1 2026-01-01T00:00:00Z host probe - - - ready",
                ("127.0.0.1", port),
            );
        });
        syslog
    }

    fn wait_for(&self, needle: &str, mut poke: impl FnMut()) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            poke();
            let text = std::fs::read_to_string(&self.out).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "rsyslogd never logged {needle}: {text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_rsyslog_parses_the_alert_as_rfc5424() {
    let rsyslog = Rsyslog::start();
    let kit = kit_with_alerts(&[
        "--alert-syslog".into(),
        format!("udp:127.0.0.1:{}", rsyslog.port),
    ]);
    kit.bg()
        .args(["drill", "--identity"])
        .arg(kit.key("bob"))
        .assert()
        .success();
    let line = rsyslog.wait_for("app=breakglass", || {});
    // rsyslog's own RFC 5424 parser split out facility, severity, app-name and msgid.
    assert!(
        line.starts_with("authpriv.warning app=breakglass msgid=alert msg="),
        "{line}"
    );
    let json = &line[line.find('{').unwrap()..];
    let event: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(event["event"], "drill");
    assert_eq!(event["subject"], "bob");
}

/// The lines of `file` (0 if it does not exist).
fn lines(file: &Path) -> usize {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .count()
}

/// The `event_id` of each event in `file`, in order.
fn event_ids(file: &Path) -> Vec<String> {
    events(file)
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect()
}

fn assert_no_repeats(ids: &[String]) {
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an event arrived twice: {ids:?}");
}

fn drill(kit: &Kit) -> std::process::Output {
    let out = kit
        .bg()
        .args(["drill", "--identity"])
        .arg(kit.key("alice"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A webhook that accepts every connection and never answers, nor reads.
/// Counts the connections; gives up after two minutes so a test cannot hang.
fn hung_webhook() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let mut held = Vec::new();
        while std::time::Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => {
                    count.fetch_add(1, Ordering::SeqCst);
                    held.push(stream);
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    });
    (port, accepted)
}

/// A webhook that accepts and never answers used to cost 3 s per queued
/// alert after every command (6, 12, 18 … s). Now all delivery shares one
/// budget of 3 s whatever the queue, the hung sink backs off after failing,
/// the working sink beside it still gets every event, and no event arrives
/// twice across the commands.
#[test]
fn a_hung_webhook_costs_one_small_budget_whatever_the_queue_and_nothing_arrives_twice() {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    // Budget 3 s; the rest is a generous margin for a slow, shared CI
    // machine. The old behaviour needed 3 s per queued alert (>= 36 s here).
    let bound = Duration::from_secs(12);
    let (port, accepted) = hung_webhook();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.jsonl");
    let kit = kit_with_alerts(&[
        "--alert-exec".into(),
        format!("cat >> '{}'", log.display()),
        "--alert-webhook".into(),
        format!("http://127.0.0.1:{port}/hook"),
    ]);
    let timed = |cmd: &mut assert_cmd::Command| {
        let started = Instant::now();
        let out = cmd.output().unwrap();
        let took = started.elapsed();
        assert!(
            out.status.code().is_some(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (took, out)
    };
    let drills = 12;
    for _ in 0..drills {
        let (took, out) = timed(kit.bg().args(["drill", "--identity"]).arg(kit.key("alice")));
        assert!(out.status.success());
        assert!(took < bound, "a drill took {took:?}");
    }
    assert_eq!(lines(&log), drills, "the working sink got every drill");
    // The hung sink was tried once, then backed off.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    let queued = kit.json(&["alerts", "list"]);
    assert_eq!(
        queued["alerts"].as_array().unwrap().len(),
        drills,
        "{queued}"
    );
    assert_eq!(queued["backoff"][0]["failures"], 1, "{queued}");

    // With the backoff gone, every queued alert is due at once: still one
    // budget for the whole queue, not one per alert.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute("DELETE FROM alert_backoff", []).unwrap();
    drop(conn);
    let (took, out) = timed(
        kit.bg()
            .args(["put", "vpn", "--kind", "password"])
            .write_stdin("pw"),
    );
    assert!(out.status.success());
    assert!(took < bound, "a put with {drills} due alerts took {took:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    // `alerts flush` tries the sink now, backing off or not: once, not once per alert.
    let (took, out) = timed(kit.bg().args(["alerts", "flush"]));
    assert_eq!(out.status.code(), Some(1), "alerts stay queued");
    assert!(took < bound, "alerts flush took {took:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    // And a quorum session after all that.
    kit.put("db", "password", "db-pw");
    let (took, out) = timed(&mut kit.unseal(&["alice", "bob"], &["db"]));
    assert!(out.status.success());
    assert!(took < bound, "an unseal took {took:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("db-pw"));

    // Every alert the log raised reached the working sink exactly once, and
    // its event id is the vault id, the seq and the start of the row hash.
    let ids = event_ids(&log);
    assert_no_repeats(&ids);
    let vault_id = kit.json(&["status"])["vault_id"]
        .as_str()
        .unwrap()
        .to_string();
    let raised: Vec<String> = kit.json(&["audit", "log"])["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            [
                "drill",
                "unseal",
                "reveal",
                "new_epoch",
                "approval_accepted",
            ]
            .contains(&e["action"].as_str().unwrap())
        })
        .map(|e| {
            format!(
                "{vault_id}:{}:{}",
                e["seq"],
                &e["hash"].as_str().unwrap()[..16]
            )
        })
        .collect();
    let mut got = ids.clone();
    got.sort();
    let mut want = raised;
    want.sort();
    assert_eq!(got, want);
}

/// A copy of the vault used on another machine (another state directory)
/// never sends, nor runs the exec sink for, the alerts the first machine
/// queued; it sends its own. `alerts flush --adopt` takes them over for a
/// vault that moved for good, with the same event ids (a receiver drops the
/// repeat).
#[test]
fn a_copy_on_another_machine_never_sends_what_the_first_one_queued() {
    let shared = tempfile::tempdir().unwrap();
    let runs = shared.path().join("runs");
    let log = shared.path().join("events.jsonl");
    let up = shared.path().join("sink-is-up");
    let kit = kit_with_alerts(&[
        "--alert-exec".into(),
        format!(
            "echo ran >> '{}'; test -f '{}' && cat >> '{}'",
            runs.display(),
            up.display(),
            log.display()
        ),
    ]);
    // Machine A: two drills while the sink is down.
    drill(&kit);
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute("DELETE FROM alert_backoff", []).unwrap();
    drop(conn);
    drill(&kit);
    assert_eq!(lines(&runs), 2);
    let a_origin = std::fs::read_to_string(kit.path("state/alert-origin"))
        .unwrap()
        .trim()
        .to_string();

    // Two copies, each on a machine of its own.
    let b_dir = tempfile::tempdir().unwrap();
    let c_dir = tempfile::tempdir().unwrap();
    let b = b_dir.path().join("vault.db");
    let c = c_dir.path().join("vault.db");
    std::fs::copy(&kit.vault, &b).unwrap();
    std::fs::copy(&kit.vault, &c).unwrap();
    std::fs::write(&up, "").unwrap();

    // B writes, flushes, lists: A's alerts are never sent, the sink never runs.
    support::bg(&b)
        .args(["put", "x", "--kind", "note"])
        .write_stdin("n")
        .assert()
        .success();
    assert_eq!(lines(&runs), 2, "the copy ran the exec sink");
    assert_eq!(
        lines(&log),
        0,
        "the copy re-sent the first machine's alerts"
    );
    let flushed = support::bg(&b).args(["alerts", "flush"]).output().unwrap();
    assert_eq!(flushed.status.code(), Some(0), "nothing of B's is queued");
    assert!(String::from_utf8_lossy(&flushed.stdout).contains("queued by another machine"));
    assert_eq!(lines(&runs), 2, "the copy's flush ran the exec sink");
    assert_eq!(lines(&log), 0, "the copy's flush re-sent the alerts");
    let listed = support::bg(&b)
        .args(["alerts", "list", "--json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let rows = listed["alerts"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{listed}");
    for row in rows {
        assert_eq!(row["queued_here"], false);
        assert_eq!(row["origin"], a_origin.as_str());
    }
    assert_eq!(listed["queued_elsewhere"], 2);
    let human = support::bg(&b).args(["alerts", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&human.stdout).contains("queued by another machine"));
    let status = support::bg(&b).args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["alerts_undelivered"], 0, "{status}");
    assert_eq!(status["alerts_queued_elsewhere"], 2, "{status}");

    // B's own use is B's to send.
    let drilled = support::bg(&b)
        .args(["drill", "--identity"])
        .arg(kit.key("bob"))
        .output()
        .unwrap();
    assert!(drilled.status.success());
    assert_eq!(lines(&runs), 3);
    let got = events(&log);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["subject"], "bob");

    // A sends its own two, once.
    kit.bg().args(["alerts", "flush"]).assert().success();
    let a_ids: Vec<String> = event_ids(&log)[1..].to_vec();
    assert_eq!(a_ids.len(), 2);
    assert_no_repeats(&event_ids(&log));
    kit.bg().args(["alerts", "flush"]).assert().success();
    assert_eq!(lines(&log), 3);

    // C is the vault moved for good: --adopt sends A's alerts from there,
    // as repeats a receiver recognises by their event ids.
    let adopted = support::bg(&c)
        .args(["alerts", "flush", "--adopt", "--json"])
        .output()
        .unwrap();
    assert!(adopted.status.success());
    let adopted: serde_json::Value = serde_json::from_slice(&adopted.stdout).unwrap();
    assert_eq!(adopted["adopted"], 2, "{adopted}");
    assert_eq!(adopted["delivered"], 2, "{adopted}");
    assert_eq!(event_ids(&log)[3..], a_ids[..]);
    // An edited origin chooses no sink: at worst a repeat or a silence.
    support::bg(&c).args(["alerts", "flush"]).assert().success();
    assert_eq!(lines(&log), 5);
}

/// A sink that keeps failing is tried once, then left alone for a minute,
/// then two, and so on (up to an hour), instead of on every command;
/// `alerts flush` tries it at once (once per run, not once per alert). A
/// retry time edited far into the future counts as passed.
#[test]
fn a_failing_sink_backs_off_instead_of_being_tried_on_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let tries = dir.path().join("tries");
    let up = dir.path().join("up");
    let log = dir.path().join("events.jsonl");
    let kit = kit_with_alerts(&[
        "--alert-exec".into(),
        format!(
            "echo try >> '{}'; test -f '{}' && cat >> '{}'",
            tries.display(),
            up.display(),
            log.display()
        ),
    ]);
    let backoff = || kit.json(&["alerts", "list"])["backoff"][0].clone();
    let seconds_ahead = |b: &serde_json::Value| {
        let t = chrono::DateTime::parse_from_rfc3339(b["retry_after"].as_str().unwrap()).unwrap();
        (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds()
    };
    for _ in 0..4 {
        drill(&kit);
    }
    assert_eq!(lines(&tries), 1, "tried on the first command only");
    let b = backoff();
    assert_eq!(b["failures"], 1);
    assert!((40..=60).contains(&seconds_ahead(&b)), "{b}");
    assert!(
        b["last_error"].as_str().unwrap().contains("exited 1"),
        "{b}"
    );

    kit.bg().args(["alerts", "flush"]).assert().code(1);
    assert_eq!(lines(&tries), 2, "flush tries now, once for the sink");
    let b = backoff();
    assert_eq!(b["failures"], 2);
    assert!((100..=120).contains(&seconds_ahead(&b)), "{b}");

    // Once the wait is over, the next command tries again, and waits longer.
    let set_retry = |t: &str| {
        rusqlite::Connection::open(&kit.vault)
            .unwrap()
            .execute("UPDATE alert_backoff SET retry_after = ?1", [t])
            .unwrap();
    };
    set_retry("2020-01-01T00:00:00.000Z");
    drill(&kit);
    assert_eq!(lines(&tries), 3);
    let b = backoff();
    assert_eq!(b["failures"], 3);
    assert!((220..=240).contains(&seconds_ahead(&b)), "{b}");
    drill(&kit);
    assert_eq!(lines(&tries), 3);
    // A time edited years ahead silences nothing for more than the cap.
    set_retry("2999-01-01T00:00:00.000Z");
    drill(&kit);
    assert_eq!(lines(&tries), 4);
    assert!(seconds_ahead(&backoff()) <= 3600);

    // The sink comes back: flush sends everything, once, and the backoff ends.
    std::fs::write(&up, "").unwrap();
    kit.bg().args(["alerts", "flush"]).assert().success();
    assert_eq!(lines(&log), 7);
    assert_no_repeats(&event_ids(&log));
    assert_eq!(backoff(), serde_json::Value::Null);
    drill(&kit);
    assert_eq!(lines(&log), 8);
}

/// The warning after a command was one line listing every undelivered
/// alert, several KB long. It is one short line: how many, how old the
/// oldest, and the command to see them.
#[test]
fn the_warning_is_one_short_line_however_many_alerts_are_queued() {
    let kit = kit_with_alerts(&["--alert-exec".into(), "exit 3".into()]);
    let mut last = None;
    for _ in 0..8 {
        last = Some(drill(&kit));
    }
    let stderr = String::from_utf8(last.unwrap().stderr).unwrap();
    // Where memory cannot be locked (no CAP_IPC_LOCK, a finite RLIMIT_MEMLOCK)
    // the binary's own one-line memory warning comes first; this is about the alerts line.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("memory is not locked"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let line = lines[0];
    assert!(
        line.starts_with("warning: 8 alerts queued, the oldest for "),
        "{line}"
    );
    assert!(line.ends_with("; see `breakglass alerts list`"), "{line}");
    assert!(line.len() < 100, "{} bytes: {line}", line.len());
}

/// "Older than 15 minutes" turned `status --check` red only in the 16th
/// minute (whole minutes, rounded down, compared with `>`).
#[test]
fn an_alert_undelivered_for_15_minutes_and_a_bit_needs_attention() {
    let kit = kit_with_alerts(&["--alert-exec".into(), "exit 1".into()]);
    drill(&kit);
    let queued_ago = |seconds: i64| {
        let t = (chrono::Utc::now() - chrono::Duration::seconds(seconds))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        rusqlite::Connection::open(&kit.vault)
            .unwrap()
            .execute("UPDATE alert_queue SET created = ?1", [t])
            .unwrap();
        kit.json(&["status"])["attention"].to_string()
    };
    assert!(!queued_ago(14 * 60 + 30).contains("alerts undelivered"));
    let attention = queued_ago(15 * 60 + 30);
    assert!(
        attention.contains("1 alerts undelivered, the oldest for 15 minutes"),
        "{attention}"
    );
}

/// Two commands finishing at once both deliver after their work: an alert
/// one of them is sending is left alone by the other, so it arrives once.
#[test]
fn two_commands_at_once_send_each_alert_once() {
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    let log = dir.path().join("events.jsonl");
    let kit = kit_with_alerts(&[
        "--alert-exec".into(),
        format!(
            "test -f '{}' && sleep 0.2 && cat >> '{}'",
            up.display(),
            log.display()
        ),
    ]);
    for _ in 0..5 {
        drill(&kit);
    }
    rusqlite::Connection::open(&kit.vault)
        .unwrap()
        .execute("DELETE FROM alert_backoff", [])
        .unwrap();
    std::fs::write(&up, "").unwrap();
    let children: Vec<std::process::Child> = (0..2)
        .map(|i| {
            let mut cmd = support::spawnable(&kit.vault);
            cmd.args(["put", &format!("note-{i}"), "--kind", "note"]);
            let mut child = cmd.spawn().unwrap();
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(b"n").unwrap();
            child
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    kit.bg().args(["alerts", "flush"]).assert().success();
    let ids = event_ids(&log);
    assert_no_repeats(&ids);
    assert_eq!(ids.len(), 5);
}

/// Alerts queued before origins were recorded (schema 5, upgraded) belong
/// to no machine: nothing sends them unasked, `status` says so, and
/// `alerts flush --adopt` on the machine that queued them sends them.
#[test]
fn alerts_queued_before_origins_wait_for_adopt() {
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    let log = dir.path().join("events.jsonl");
    let kit = kit_with_alerts(&[
        "--alert-exec".into(),
        format!("test -f '{}' && cat >> '{}'", up.display(), log.display()),
    ]);
    drill(&kit);
    drill(&kit);
    // As the schema 6 migration leaves rows queued before it.
    rusqlite::Connection::open(&kit.vault)
        .unwrap()
        .execute_batch("UPDATE alert_queue SET origin = ''; DELETE FROM alert_backoff;")
        .unwrap();
    std::fs::write(&up, "").unwrap();
    kit.put("x", "note", "n");
    assert_eq!(lines(&log), 0);
    let status = kit.json(&["status"]);
    assert_eq!(status["alerts_queued_elsewhere"], 2, "{status}");
    assert!(
        status["attention"]
            .to_string()
            .contains("2 alert(s) were queued before breakglass recorded which machine sends them"),
        "{status}"
    );
    let out = kit
        .bg()
        .args(["alerts", "flush", "--adopt", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["adopted"], 2, "{report}");
    assert_eq!(lines(&log), 2);
    assert_no_repeats(&event_ids(&log));
    assert_eq!(kit.json(&["status"])["alerts_queued_elsewhere"], 0);
}
