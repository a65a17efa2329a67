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
    assert!(String::from_utf8_lossy(&out.stderr).contains("not delivered and kept queued"));
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
