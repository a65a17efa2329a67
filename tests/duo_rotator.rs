//! The `duo-bypass-codes` rotator's protocol against a local HTTPS server that
//! acts like the Duo Admin API: TLS from a throwaway rcgen CA (rustls, as in
//! tests/alerts.rs), and on every request it recomputes the v5 signature from
//! what it received (its own canonicalisation below, with the `hmac`/`sha2`
//! crates directly, not the library's signing code) and answers as Duo does:
//! `{"stat":"OK","response":[codes]}` or `{"stat":"FAIL","code":…,"message":…}`.
//!
//! Library level: `new_bypass_codes` is called directly (the binary-level
//! tests come with the `rotate --credentials` CLI).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use breakglass::rotators::duo::{
    new_bypass_codes, BypassCodes, DuoConfig, DuoError, DuoSecretKey, TlsTrust,
};
use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha512};

const IKEY: &str = "DIWJ8X6AEYOR5OMC6TQ1";
const SKEY: &str = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";
const USER: &str = "DU3RP9I2WOC59VZX672N";

/// A throwaway CA named `ca_name` (PEM) and a TLS server config for 127.0.0.1 signed by it.
fn test_ca_and_server(ca_name: &str) -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
        )
        .unwrap();
    (ca.pem(), Arc::new(config))
}

/// How the fake Duo behaves.
#[derive(Clone, Default)]
struct Behaviour {
    /// Answer every request with 429 (Duo's rate limit).
    rate_limited: bool,
    /// Read the request, then answer nothing for this long.
    hang: Option<Duration>,
    /// Read the request, wait this long, then answer as usual.
    delay: Option<Duration>,
    /// Changes the body after it arrived and before the signature is checked:
    /// what a man in the middle would do to a parameter.
    tamper: Option<fn(&mut String)>,
}

/// What the fake Duo saw of one connection.
#[derive(Debug, Clone)]
struct Seen {
    /// The raw request bytes (headers and body) as received; None when no
    /// request arrived (e.g. the TLS handshake failed).
    raw: Option<String>,
    request_line: String,
    headers: Vec<(String, String)>,
    body: String,
    /// The HTTP status answered.
    status: u16,
    /// The codes issued (only on a 200).
    issued: Vec<String>,
}

struct FakeDuo {
    port: u16,
    ca_pem: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeDuo {
    fn start(behaviour: Behaviour) -> Self {
        let (ca_pem, tls) = test_ca_and_server("fake Duo test CA");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let host = format!("127.0.0.1:{port}");
        let thread = {
            let seen = seen.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut serial = 0u64;
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((tcp, _)) => {
                            serial += 1;
                            let record = serve(tcp, &tls, &host, &behaviour, port, serial);
                            seen.lock().unwrap().push(record);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Self {
            port,
            ca_pem,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn config(&self, extra: &str, dir: &std::path::Path) -> DuoConfig {
        let ca_file = dir.join("duo-ca.pem");
        std::fs::write(&ca_file, &self.ca_pem).unwrap();
        DuoConfig::parse(&format!(
            r#"{{"api_host":"127.0.0.1:{}","integration_key":"{IKEY}","user_id":"{USER}","ca_file":{}{extra}}}"#,
            self.port,
            serde_json::Value::String(ca_file.to_str().unwrap().into())
        ))
        .unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (briefly) until `n` connections were handled.
    fn wait_for(&self, n: usize) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.seen.lock().unwrap().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.seen()
    }
}

impl Drop for FakeDuo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn sha512_hex(data: &[u8]) -> String {
    hex::encode(Sha512::digest(data))
}

fn fail(status: u16, code: u64, message: &str) -> (u16, String, Vec<String>) {
    (
        status,
        format!(r#"{{"code": {code}, "message": "{message}", "stat": "FAIL"}}"#),
        Vec::new(),
    )
}

/// One connection: TLS handshake, one request, one answer.
fn serve(
    tcp: TcpStream,
    tls: &Arc<rustls::ServerConfig>,
    host: &str,
    behaviour: &Behaviour,
    port: u16,
    serial: u64,
) -> Seen {
    let mut record = Seen {
        raw: None,
        request_line: String::new(),
        headers: Vec::new(),
        body: String::new(),
        status: 0,
        issued: Vec::new(),
    };
    tcp.set_nonblocking(false).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = rustls::ServerConnection::new(tls.clone()).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let mut raw = Vec::new();
    {
        let mut reader = BufReader::new(&mut stream);
        if reader.read_line(&mut record.request_line).is_err() {
            return record; // handshake refused by the client, or nothing sent
        }
        raw.extend_from_slice(record.request_line.as_bytes());
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            raw.extend_from_slice(line.as_bytes());
            if line == "\r\n" {
                break;
            }
            let (name, value) = line.trim_end().split_once(':').unwrap();
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_string());
            if name == "content-length" {
                length = value.parse().unwrap();
            }
            record.headers.push((name, value));
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        raw.extend_from_slice(&body);
        record.body = String::from_utf8(body).unwrap();
    }
    record.raw = Some(String::from_utf8_lossy(&raw).into_owned());
    if let Some(pause) = behaviour.hang {
        std::thread::sleep(pause);
        return record;
    }
    if let Some(pause) = behaviour.delay {
        std::thread::sleep(pause);
    }
    let (status, answer, issued) = answer(&record, host, behaviour, port, serial);
    record.status = status;
    record.issued = issued;
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = stream.flush();
    stream.conn.send_close_notify();
    let _ = stream.flush();
    record
}

/// Duo's checks, in Duo's order: credentials, date, signature, then the call.
fn answer(
    seen: &Seen,
    host: &str,
    behaviour: &Behaviour,
    port: u16,
    serial: u64,
) -> (u16, String, Vec<String>) {
    if behaviour.rate_limited {
        return fail(429, 42901, "Too Many Requests");
    }
    let header = |name: &str| {
        seen.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut parts = seen.request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap(), parts.next().unwrap());
    let Some(auth) = header("authorization") else {
        return fail(401, 40101, "Missing request credentials");
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.strip_prefix("Basic ").unwrap_or(""))
        .unwrap_or_default();
    let decoded = String::from_utf8(decoded).unwrap_or_default();
    let Some((ikey, sig)) = decoded.split_once(':') else {
        return fail(401, 40101, "Missing request credentials");
    };
    if ikey != IKEY {
        return fail(401, 40102, "Invalid integration key in request credentials");
    }
    let Some(date) = header("date") else {
        return fail(401, 40104, "Missing request timestamp");
    };
    // Duo refuses a Date more than 5 minutes off. (Its exact code and text
    // for this case are not in the reference clients: approximated here.)
    let Ok(when) = chrono::DateTime::parse_from_rfc2822(&date) else {
        return fail(401, 40105, "Invalid request timestamp");
    };
    if (Utc::now() - when.with_timezone(&Utc)).num_seconds().abs() > 300 {
        return fail(401, 40105, "Invalid request timestamp");
    }
    let mut body = seen.body.clone();
    if let Some(tamper) = behaviour.tamper {
        tamper(&mut body);
    }
    // v5: a JSON body signs empty params; no X-Duo-* headers hash "".
    let canonical = [
        date.as_str(),
        &method.to_ascii_uppercase(),
        &host.to_ascii_lowercase(),
        path,
        "",
        &sha512_hex(body.as_bytes()),
        &sha512_hex(b""),
    ]
    .join("\n");
    let mut mac = Hmac::<Sha512>::new_from_slice(SKEY.as_bytes()).unwrap();
    mac.update(canonical.as_bytes());
    if hex::encode(mac.finalize().into_bytes()) != sig {
        return fail(401, 40103, "Invalid signature in request credentials");
    }
    if header("content-type").as_deref() != Some("application/json") {
        return fail(400, 40002, "Invalid request parameters");
    }
    let Some(user) = path
        .strip_prefix("/admin/v1/users/")
        .and_then(|p| p.strip_suffix("/bypass_codes"))
    else {
        return fail(404, 40401, "Resource not found");
    };
    if method != "POST" || user != USER {
        return fail(404, 40401, "Resource not found");
    }
    let params: serde_json::Value = serde_json::from_str(&body).unwrap();
    let count: usize = params["count"].as_str().unwrap_or("10").parse().unwrap();
    if !(1..=10).contains(&count) || params["preserve_existing"] != serde_json::json!(false) {
        return fail(400, 40002, "Invalid request parameters");
    }
    // Nine-digit codes, different for every request and every server.
    let codes: Vec<String> = (0..count as u64)
        .map(|i| {
            format!(
                "{:09}",
                (u64::from(port) * 7919 + serial * 104_729 + i * 15_485_863) % 1_000_000_000
            )
        })
        .collect();
    let answer = serde_json::json!({"stat": "OK", "response": codes}).to_string();
    (200, answer, codes)
}

/// No secret key and no code in an error message (nor its Debug form).
fn assert_clean(error: &DuoError, codes: &[String]) {
    let text = error.to_string();
    let debug = format!("{error:?}");
    assert!(!text.contains('\n'), "one line: {text}");
    for shown in [&text, &debug] {
        assert!(!shown.contains(SKEY), "secret key in {shown}");
        assert!(
            !shown.contains(&SKEY[..12]),
            "part of the secret key in {shown}"
        );
        for code in codes {
            assert!(!shown.contains(code.as_str()), "a code in {shown}");
        }
    }
}

fn rotate(duo: &FakeDuo, extra: &str, skey: &str) -> (Result<BypassCodes, DuoError>, DuoConfig) {
    let dir = tempfile::tempdir().unwrap();
    let config = duo.config(extra, dir.path());
    let tls = TlsTrust::from_config(&config).unwrap();
    let result = new_bypass_codes(&config, &DuoSecretKey::new(skey.into()), &tls, Utc::now());
    (result, config)
}

#[test]
fn a_good_rotation_returns_the_codes_duo_issued() {
    let duo = FakeDuo::start(Behaviour::default());
    let (result, config) = rotate(
        &duo,
        r#","count":3,"reuse_count":2,"valid_secs":3600"#,
        &format!("{SKEY}\n"),
    );
    let codes = result.unwrap();
    assert_eq!(codes.len(), 3);
    let seen = duo.wait_for(1);
    assert_eq!(seen[0].status, 200);
    assert_eq!(codes.expose_codes(), &seen[0].issued[..]);
    assert_eq!(
        codes.to_secret_value().expose_secret(),
        format!("{}\n", seen[0].issued.join("\n")).as_bytes()
    );
    // The request as duo_client_python sends it for this endpoint under v5.
    assert_eq!(
        seen[0].request_line.trim_end(),
        format!("POST /admin/v1/users/{USER}/bypass_codes HTTP/1.1")
    );
    assert_eq!(
        seen[0].body,
        r#"{"count":"3","preserve_existing":false,"reuse_count":"2","valid_secs":"3600"}"#
    );
    let header = |name: &str| {
        seen[0]
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("content-type"), Some("application/json"));
    assert_eq!(header("host"), Some(config.api_host.as_str()));
    assert!(header("date").unwrap().ends_with(" -0000"));
    // The secret key itself never travels.
    assert!(!seen[0].raw.as_ref().unwrap().contains(SKEY));

    // Another rotation: ten codes by default, all new.
    let (again, _) = rotate(&duo, "", SKEY);
    let again = again.unwrap();
    assert_eq!(again.len(), 10);
    assert!(again
        .expose_codes()
        .iter()
        .all(|c| !codes.expose_codes().contains(c)));
}

#[test]
fn a_wrong_secret_key_is_named_as_duo_names_it() {
    let duo = FakeDuo::start(Behaviour::default());
    let wrong = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Eq";
    let (result, _) = rotate(&duo, "", wrong);
    let e = result.unwrap_err();
    assert!(
        matches!(
            e,
            DuoError::Refused {
                status: 401,
                code: Some(40103),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with(
            "Duo refused the request: 40103 Invalid signature in request credentials (HTTP 401): check integration_key, the secret key"
        ),
        "{e}"
    );
    assert!(!e.may_have_replaced_codes());
    assert!(!e.to_string().contains(wrong) && !format!("{e:?}").contains(wrong));
    assert_clean(&e, &[]);
    assert!(duo.wait_for(1)[0].issued.is_empty());
}

#[test]
fn a_wrong_integration_key_is_named() {
    let duo = FakeDuo::start(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let mut config = duo.config("", dir.path());
    config.integration_key = "DIXXXXXXXXXXXXXXXXXX".into();
    let tls = TlsTrust::from_config(&config).unwrap();
    let e =
        new_bypass_codes(&config, &DuoSecretKey::new(SKEY.into()), &tls, Utc::now()).unwrap_err();
    assert!(
        matches!(
            e,
            DuoError::Refused {
                code: Some(40102),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("40102 Invalid integration key"),
        "{e}"
    );
    assert_clean(&e, &[]);
}

#[test]
fn a_date_more_than_five_minutes_off_is_refused_and_the_clock_named() {
    let duo = FakeDuo::start(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let config = duo.config("", dir.path());
    let tls = TlsTrust::from_config(&config).unwrap();
    let key = DuoSecretKey::new(SKEY.into());
    for skew in [-10i64, 10] {
        let now = Utc::now() + chrono::Duration::minutes(skew);
        let e = new_bypass_codes(&config, &key, &tls, now).unwrap_err();
        assert!(
            matches!(
                e,
                DuoError::Refused {
                    status: 401,
                    code: Some(40105),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("this machine's clock"), "{e}");
        assert_clean(&e, &[]);
    }
    // Within the window it works: the refusal above was the date alone.
    let now = Utc::now() - chrono::Duration::minutes(2);
    assert_eq!(
        new_bypass_codes(&config, &key, &tls, now).unwrap().len(),
        10
    );
}

#[test]
fn a_parameter_changed_after_signing_fails_the_signature() {
    // The server changes the received body (count 3 -> 9) before it checks
    // the signature, as a man in the middle would: the client signed count 3,
    // the server verifies count 9. Honest note: the tampering is done by the
    // test server itself, not by a separate proxy.
    let duo = FakeDuo::start(Behaviour {
        tamper: Some(|body: &mut String| {
            *body = body.replace(r#""count":"3""#, r#""count":"9""#);
        }),
        ..Behaviour::default()
    });
    let (result, _) = rotate(&duo, r#","count":3"#, SKEY);
    let e = result.unwrap_err();
    assert!(
        matches!(
            e,
            DuoError::Refused {
                code: Some(40103),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("40103 Invalid signature in request credentials"),
        "{e}"
    );
    assert_clean(&e, &[]);
    let seen = duo.wait_for(1);
    assert!(
        seen[0].body.contains(r#""count":"3""#),
        "the client sent what it signed"
    );
    assert!(seen[0].issued.is_empty());
    // The same server, a body the tamper does not touch: accepted (the
    // refusal above came from the changed parameter alone).
    let (result, _) = rotate(&duo, r#","count":4"#, SKEY);
    assert_eq!(result.unwrap().len(), 4);
}

#[test]
fn an_unknown_user_is_duos_40401() {
    let duo = FakeDuo::start(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let mut config = duo.config("", dir.path());
    config.user_id = "DUNOSUCHUSER00000000".into();
    let tls = TlsTrust::from_config(&config).unwrap();
    let e =
        new_bypass_codes(&config, &DuoSecretKey::new(SKEY.into()), &tls, Utc::now()).unwrap_err();
    assert!(
        matches!(
            e,
            DuoError::Refused {
                status: 404,
                code: Some(40401),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Duo refused the request: 40401 Resource not found (HTTP 404): check user_id and api_host in the rotator config; nothing was changed at Duo"
    );
    assert_clean(&e, &[]);
}

#[test]
fn rate_limiting_says_to_wait_and_retry() {
    let duo = FakeDuo::start(Behaviour {
        rate_limited: true,
        ..Behaviour::default()
    });
    let (result, _) = rotate(&duo, "", SKEY);
    let e = result.unwrap_err();
    assert!(
        matches!(
            e,
            DuoError::RateLimited {
                code: Some(42901),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Duo rate-limited the request (42901 Too Many Requests, HTTP 429): wait a minute, then rotate again; nothing was changed at Duo"
    );
    assert!(!e.may_have_replaced_codes());
    assert_clean(&e, &[]);
    // One request, no retry loop.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(duo.seen().len(), 1);
}

#[test]
fn a_server_that_is_down_is_named() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }; // dropped: nothing listens there now
    let (ca_pem, _) = test_ca_and_server("fake Duo test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let config = DuoConfig::parse(&format!(
        r#"{{"api_host":"127.0.0.1:{port}","integration_key":"{IKEY}","user_id":"{USER}","ca_file":"{}"}}"#,
        ca_file.display()
    ))
    .unwrap();
    let tls = TlsTrust::from_config(&config).unwrap();
    let started = Instant::now();
    let e =
        new_bypass_codes(&config, &DuoSecretKey::new(SKEY.into()), &tls, Utc::now()).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(e, DuoError::Unreachable { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("cannot reach Duo at 127.0.0.1:{port} (connection refused: nothing listens there): check api_host and the network, then rotate again; nothing was sent to Duo")
    );
    assert!(!e.may_have_replaced_codes());
    assert_clean(&e, &[]);
}

#[test]
fn a_certificate_from_another_ca_does_not_verify_and_nothing_is_sent() {
    let duo = FakeDuo::start(Behaviour::default());
    let (other_ca, _) = test_ca_and_server("some other CA");
    let dir = tempfile::tempdir().unwrap();
    let mut config = duo.config("", dir.path());
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, other_ca).unwrap();
    config.ca_file = Some(other.to_str().unwrap().into());
    let tls = TlsTrust::from_config(&config).unwrap();
    let e =
        new_bypass_codes(&config, &DuoSecretKey::new(SKEY.into()), &tls, Utc::now()).unwrap_err();
    assert!(matches!(e, DuoError::Tls { .. }), "{e:?}");
    let text = e.to_string();
    assert_eq!(
        text,
        format!("TLS with {} failed (its certificate did not verify: UnknownIssuer): check api_host, or ca_file in the rotator config; nothing was sent to Duo", config.api_host)
    );
    assert!(!e.may_have_replaced_codes());
    assert_clean(&e, &[]);

    // The right CA, but a name the certificate does not carry (it names 127.0.0.1).
    let mut by_name = duo.config("", dir.path());
    by_name.api_host = format!("localhost:{}", duo.port);
    let tls = TlsTrust::from_config(&by_name).unwrap();
    let e =
        new_bypass_codes(&by_name, &DuoSecretKey::new(SKEY.into()), &tls, Utc::now()).unwrap_err();
    assert!(matches!(e, DuoError::Tls { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("its certificate did not verify: NotValidForName"),
        "{e}"
    );
    assert_clean(&e, &[]);

    let seen = duo.wait_for(2);
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter().all(|s| s.raw.is_none()),
        "no request after a failed handshake"
    );
}

#[test]
fn a_server_that_never_answers_times_out_and_says_the_codes_may_be_replaced() {
    let duo = FakeDuo::start(Behaviour {
        hang: Some(Duration::from_millis(2500)),
        ..Behaviour::default()
    });
    let started = Instant::now();
    let (result, config) = rotate(&duo, r#","timeout_secs":1"#, SKEY);
    let e = result.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            e,
            DuoError::Timeout {
                after_send: true,
                secs: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.may_have_replaced_codes());
    assert_eq!(
        e.to_string(),
        format!("Duo at {} did not answer within 1s; Duo may already have replaced the user's bypass codes: check the user in the Duo Admin Panel, then rotate again", config.api_host)
    );
    assert_clean(&e, &[]);
}

// ---- Through the binary: put --rotator, rotate --credentials, reveal ----

mod support;

/// A 2-of-2 vault holding `duo` (bypass codes, two old codes) whose rotator is
/// `duo-bypass-codes` pointed at `fake`; the secret key is in `skey.txt`.
fn vault_with_duo_rotator(fake: &FakeDuo) -> support::Kit {
    let kit = support::Kit::init(&["alice", "bob"], 2);
    let config = fake.config(r#","count":4"#, kit.dir.path());
    std::fs::write(kit.path("duo.json"), config.to_canonical_json()).unwrap();
    support::write_private(&kit.path("old-codes"), "111111\n222222\n");
    support::write_private(&kit.path("skey.txt"), &format!("{SKEY}\n"));
    kit.bg()
        .args([
            "put",
            "duo",
            "--kind",
            "bypass-codes",
            "--rotator",
            "duo-bypass-codes",
        ])
        .arg("--rotator-config")
        .arg(kit.path("duo.json"))
        .arg("--file")
        .arg(kit.path("old-codes"))
        .assert()
        .success();
    kit
}

fn endorse(kit: &support::Kit) {
    kit.bg()
        .args(["drill", "--full", "--endorse", "--identity"])
        .arg(kit.key("alice"))
        .arg("--identity")
        .arg(kit.key("bob"))
        .assert()
        .success();
}

fn rotate_duo(kit: &support::Kit, extra: &[&str]) -> std::process::Output {
    kit.bg()
        .args(["rotate", "duo", "--json", "--credentials"])
        .arg(kit.path("skey.txt"))
        .args(extra)
        .output()
        .unwrap()
}

/// The codes `unseal --reveal duo` shows (whole), one per line.
fn revealed_codes(kit: &support::Kit) -> Vec<String> {
    let out = kit
        .unseal(&["alice", "bob"], &["duo"])
        .args(["--json", "--no-rekey", "--endorse"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["revealed"][0]["value"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn the_binary_rotates_duo_codes_with_an_endorsed_rotator_and_the_codes_reveal() {
    let fake = FakeDuo::start(Behaviour::default());
    let kit = vault_with_duo_rotator(&fake);
    // Not endorsed yet, no terminal: refused by name, and Duo is never called.
    let out = rotate_duo(&kit, &[]);
    assert!(!out.status.success());
    let error = support::one_line_error(&out);
    assert!(
        error.contains("rotator") && error.contains("--trust-hook"),
        "{error}"
    );
    assert!(
        fake.seen().is_empty(),
        "an unendorsed rotator reached the peer"
    );
    // A full drill endorses the rotator with its config.
    endorse(&kit);
    let out = rotate_duo(&kit, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["state"].as_str(), v["rotator"].as_str()),
        (Some("active"), Some("duo-bypass-codes"))
    );
    let issued = fake.wait_for(1)[0].issued.clone();
    assert_eq!(issued.len(), 4);
    assert_eq!(revealed_codes(&kit), issued);
    // The secret key never lands anywhere: output, log or file.
    let log = kit.bg().args(["audit", "log", "--json"]).output().unwrap();
    for haystack in [
        out.stdout.clone(),
        out.stderr.clone(),
        log.stdout,
        kit.vault_bytes(),
    ] {
        assert!(!String::from_utf8_lossy(&haystack).contains(SKEY));
    }
}

#[test]
fn a_wrong_secret_key_keeps_the_old_codes_active_and_names_duos_error() {
    let fake = FakeDuo::start(Behaviour::default());
    let kit = vault_with_duo_rotator(&fake);
    endorse(&kit);
    std::fs::remove_file(kit.path("skey.txt")).unwrap();
    support::write_private(
        &kit.path("skey.txt"),
        "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Eq",
    );
    let out = rotate_duo(&kit, &[]);
    assert!(!out.status.success());
    let error = support::one_line_error(&out);
    assert!(
        error.contains("40103") && error.contains("old version stays active"),
        "{error}"
    );
    assert!(!error.contains("Zh5eGmUq"), "{error}");
    assert_eq!(revealed_codes(&kit), ["111111", "222222"]);
}

#[test]
fn a_config_edited_in_the_file_after_endorsement_never_reaches_a_peer() {
    let fake = FakeDuo::start(Behaviour::default());
    let kit = vault_with_duo_rotator(&fake);
    endorse(&kit);
    // sqlite3-style edit: point the rotator at another host (and user).
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    let changed = conn
        .execute(
            "UPDATE rotators SET config = replace(config, ?1, 'DUATTACKERSUSER00000')",
            [USER],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let out = rotate_duo(&kit, &[]);
    assert!(!out.status.success());
    let error = support::one_line_error(&out);
    assert!(
        error.contains("DUATTACKERSUSER00000") && error.contains("no quorum endorsed it"),
        "{error}"
    );
    assert!(
        fake.seen().is_empty(),
        "an edited rotator config reached the peer"
    );
    assert_eq!(revealed_codes(&kit), ["111111", "222222"]);
}

#[test]
fn killed_while_duo_answers_the_rotation_stays_pending_and_is_settled_by_name() {
    let fake = FakeDuo::start(Behaviour {
        hang: Some(Duration::from_secs(30)),
        ..Default::default()
    });
    let kit = vault_with_duo_rotator(&fake);
    endorse(&kit);
    let mut child = support::spawnable(&kit.vault);
    child
        .args(["rotate", "duo", "--credentials"])
        .arg(kit.path("skey.txt"));
    let mut child = child.spawn().unwrap();
    fake.wait_for(1);
    // A second rotation meanwhile is refused: one rotation at a time.
    let second = rotate_duo(&kit, &[]);
    assert!(!second.status.success());
    assert!(
        support::one_line_error(&second).contains("pending"),
        "{}",
        support::one_line_error(&second)
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // The vault opens, the old codes stay active, and the pending rotation is named.
    let status = kit.json(&["status"]);
    assert!(status["attention"].to_string().contains("duo"), "{status}");
    assert_eq!(revealed_codes(&kit), ["111111", "222222"]);
    kit.bg()
        .args(["rotate", "duo", "--abandon"])
        .assert()
        .success();
}

#[test]
fn rotate_exposed_runs_the_duo_rotator_with_named_credentials() {
    let fake = FakeDuo::start(Behaviour::default());
    let kit = vault_with_duo_rotator(&fake);
    endorse(&kit);
    // Reveal the codes whole: the secret is exposed.
    assert_eq!(revealed_codes(&kit), ["111111", "222222"]);
    // A bare FILE is refused with --exposed (which secret is it for?).
    let out = kit
        .bg()
        .args(["rotate", "--exposed", "--credentials"])
        .arg(kit.path("skey.txt"))
        .output()
        .unwrap();
    assert!(support::one_line_error(&out).contains("NAME=FILE"));
    let out = kit
        .bg()
        .args(["rotate", "--exposed", "--json", "--credentials"])
        .arg(format!("duo={}", kit.path("skey.txt").display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rotated"][0]["rotator"], "duo-bypass-codes", "{v}");
    let issued = fake.wait_for(1)[0].issued.clone();
    assert_eq!(revealed_codes(&kit), issued);
}

#[test]
fn the_secret_key_is_asked_hidden_on_the_terminal_when_no_file_is_given() {
    if !support::tmux::available() {
        return;
    }
    let fake = FakeDuo::start(Behaviour::default());
    let kit = vault_with_duo_rotator(&fake);
    endorse(&kit);
    let binary = assert_cmd::cargo::cargo_bin("breakglass");
    let q = support::tmux::quote;
    let line = format!(
        "unset BREAKGLASS_VAULT; {} --vault {} rotate duo 2>/dev/null",
        q(&binary.display().to_string()),
        q(&kit.vault.display().to_string())
    );
    let state = kit.path("state").display().to_string();
    let screen = support::tmux::Screen::spawn(
        kit.dir.path(),
        &[("BREAKGLASS_STATE_DIR", state.as_str()), ("NO_COLOR", "1")],
        &line,
    );
    screen.wait_for_screen_text(
        "The Duo Admin API secret key for rotating duo (duo-bypass-codes, not stored):",
        support::tmux::WAIT,
    );
    screen.type_line(SKEY);
    let (code, text) = screen.wait_exit(support::tmux::WAIT);
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains(SKEY), "the secret key was echoed: {text}");
    assert_eq!(fake.wait_for(1)[0].status, 200);
}

#[test]
fn editing_the_endorsed_rotator_table_too_does_not_make_an_edit_endorsed() {
    let fake = FakeDuo::start(Behaviour::default());
    let kit = vault_with_duo_rotator(&fake);
    endorse(&kit);
    // The attacker edits both the stored config and the endorsed copy alike.
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    for table in ["rotators", "endorsed_rotators"] {
        let changed = conn
            .execute(
                &format!("UPDATE {table} SET config = replace(config, ?1, 'DUATTACKERSUSER00000')"),
                [USER],
            )
            .unwrap();
        assert_eq!(changed, 1, "{table}");
    }
    drop(conn);
    // The endorsed table no longer hashes to the signed digest: nothing in it counts.
    let out = rotate_duo(&kit, &[]);
    assert!(!out.status.success());
    let error = support::one_line_error(&out);
    assert!(error.contains("no quorum endorsed it"), "{error}");
    assert!(
        fake.seen().is_empty(),
        "an edited endorsement reached the peer"
    );
}

/// The state and epoch of version `version` of `duo`, read with SQL.
fn version_row(kit: &support::Kit, version: u32) -> Option<(String, u64)> {
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.query_row(
        "SELECT state, epoch FROM secret_versions WHERE secret = 'duo' AND version = ?1",
        [version],
        |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
    )
    .ok()
}

#[test]
fn a_rekey_between_the_two_phases_keeps_duos_codes_readable_at_the_new_epoch() {
    let fake = FakeDuo::start(Behaviour {
        delay: Some(Duration::from_secs(4)),
        ..Default::default()
    });
    let kit = vault_with_duo_rotator(&fake);
    endorse(&kit);
    let mut child = support::spawnable(&kit.vault);
    child
        .args(["rotate", "duo", "--json", "--credentials"])
        .arg(kit.path("skey.txt"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = child.spawn().unwrap();
    // Phase 1 wrote the pending marker at epoch 1; Duo is still thinking.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while version_row(&kit, 2).is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(version_row(&kit, 2), Some(("pending".to_string(), 1)));
    // The marker is never shown as a value, even to a quorum.
    let out = kit
        .unseal(&["alice", "bob"], &[])
        .args(["--reveal-version", "duo=2", "--no-rekey"])
        .output()
        .unwrap();
    let error = support::one_line_error(&out);
    assert!(error.contains("version 2 holds no value"), "{error}");
    // A quorum moves the vault to epoch 2 meanwhile.
    let mut rekey = kit.bg();
    rekey.arg("rekey");
    for who in ["alice", "bob"] {
        rekey.arg("--identity").arg(kit.key(who));
    }
    rekey.assert().success();
    assert_eq!(version_row(&kit, 2), Some(("pending".to_string(), 2)));
    // Duo answers: its codes are sealed to the key in force now, and active.
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(version_row(&kit, 2), Some(("active".to_string(), 2)));
    let issued = fake.wait_for(1)[0].issued.clone();
    assert_eq!(issued.len(), 4);
    assert_eq!(revealed_codes(&kit), issued);
}

#[test]
fn trust_hook_trusts_only_the_config_it_showed_not_one_swapped_in_after() {
    use std::io::{BufRead, Write};
    let fake = FakeDuo::start(Behaviour::default());
    let kit = vault_with_duo_rotator(&fake);
    // The credentials come through a FIFO: the command blocks reading it
    // after it showed (and trusted) the config, which the test edits then.
    let fifo = kit.path("skey.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut child = support::spawnable(&kit.vault);
    child
        .args(["rotate", "duo", "--trust-hook", "--credentials"])
        .arg(&fifo)
        .stderr(std::process::Stdio::piped());
    let mut child = child.spawn().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut shown = String::new();
    stderr.read_line(&mut shown).unwrap();
    assert!(
        shown.starts_with("warning: trusting (--trust-hook) the unendorsed rotator of duo")
            && shown.contains(USER),
        "{shown}"
    );
    let conn = rusqlite::Connection::open(&kit.vault).unwrap();
    conn.execute(
        "UPDATE rotators SET config = replace(config, ?1, 'DUATTACKERSUSER00000')",
        [USER],
    )
    .unwrap();
    drop(conn);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .unwrap()
        .write_all(format!("{SKEY}\n").as_bytes())
        .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(!child.wait().unwrap().success());
    assert!(
        rest.contains("it changed after you confirmed it") && rest.contains("DUATTACKERSUSER00000"),
        "{rest}"
    );
    assert!(fake.seen().is_empty(), "a swapped config reached the peer");
}
