//! A throwaway Samba AD DC for the ad-password rotator's tests, shared by all
//! of them (Samba's LDAP ports 389/636 are fixed): provisioned in a temporary
//! directory (`--dns-backend=NONE`, loopback only), only the LDAP service,
//! the test's own rcgen certificate, `old password allowed period = 0`, and a
//! minimum password age of 0. Needs root.
//!
//! It runs `samba -i`, which exits when its stdin closes: the pipe is held for
//! the life of the test process, so the server ends with it.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ldap3::{LdapConn, LdapConnSettings, Mod};

use super::tls::TestPki;

pub const LDAPS_URL: &str = "ldaps://127.0.0.1:636";
pub const LDAP_URL: &str = "ldap://127.0.0.1:389";
pub const BASE_DN: &str = "DC=bg,DC=test";
pub const ADMIN_PW: &str = "Admin-pw-1!";
/// Users made at start, each with the password `Old-<name>-pw1`; `ad-disabled` is disabled.
pub const USERS: &[&str] = &[
    "ad-alice",
    "ad-bob",
    "ad-carol",
    "ad-dave",
    "ad-erin",
    "ad-frank",
    "ad-grace",
    "ad-disabled",
];

pub struct Samba {
    pub dir: PathBuf,
    pub ca_file: PathBuf,
    child: Mutex<Child>,
    // Held open for the test process's life: samba -i exits on its EOF.
    _stdin: Mutex<ChildStdin>,
}

impl Samba {
    pub fn admin_dn(&self) -> String {
        format!("CN=Administrator,CN=Users,{BASE_DN}")
    }

    pub fn user_dn(&self, name: &str) -> String {
        format!("CN={name},CN=Users,{BASE_DN}")
    }

    pub fn old_password(&self, name: &str) -> String {
        format!("Old-{name}-pw1")
    }
}

fn find(program: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.exists())
}

/// Why the Samba tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("the Samba AD DC tests need root (samba-tool domain provision)".into());
    }
    if find("samba").is_none() || find("samba-tool").is_none() {
        return Some(
            "Samba AD DC not installed (apt-get install samba samba-ad-dc samba-ad-provision python3-samba)"
                .into(),
        );
    }
    None
}

static SHARED: OnceLock<Samba> = OnceLock::new();

/// The one Samba DC of this test process, provisioned and started on first use.
pub fn shared() -> &'static Samba {
    SHARED.get_or_init(start)
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start() -> Samba {
    for port in [389, 636] {
        if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
            panic!("127.0.0.1:{port} is taken ({e}); the Samba AD DC needs it (stop the other LDAP server)");
        }
    }
    // A fixed directory under the target's tmp (a static is never dropped, so
    // a TempDir would leak one provision per run): cleared at each start.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("samba-ad-dc");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    let root = dir.as_path();
    let pki = TestPki::new();
    let tls_dir = root.join("tls");
    std::fs::create_dir(&tls_dir).unwrap();
    let ca_file = tls_dir.join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    std::fs::write(tls_dir.join("cert.pem"), &pki.server_cert_pem).unwrap();
    {
        // Samba refuses a key file others may read.
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut key = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tls_dir.join("key.pem"))
            .unwrap();
        key.write_all(pki.server_key_pem.as_bytes()).unwrap();
    }
    let started = Instant::now();
    run(
        Command::new(find("samba-tool").unwrap())
            .args(["domain", "provision"])
            .arg(format!("--targetdir={}", root.display()))
            .args([
                "--realm=BG.TEST",
                "--domain=BG",
                "--server-role=dc",
                "--dns-backend=NONE",
                "--option=interfaces=lo",
                "--option=bind interfaces only=yes",
            ])
            .arg(format!("--adminpass={ADMIN_PW}")),
        "samba-tool domain provision",
    );
    let conf = root.join("etc").join("smb.conf");
    let r = root.display();
    let original = std::fs::read_to_string(&conf).unwrap();
    let mut edited = String::new();
    for line in original.lines() {
        if line.trim_start().starts_with("server services")
            || line.trim_start().starts_with("log file")
        {
            continue;
        }
        edited.push_str(line);
        edited.push('\n');
        if line.trim() == "[global]" {
            edited.push_str(&format!(
                "\tserver services = ldap
\ttls enabled = yes
\ttls keyfile = {r}/tls/key.pem
\ttls certfile = {r}/tls/cert.pem
\ttls cafile = {r}/tls/ca.pem
\told password allowed period = 0
\tpid directory = {r}/run
\tlog file = {r}/log.%m
"
            ));
        }
    }
    std::fs::write(&conf, edited).unwrap();
    std::fs::create_dir_all(root.join("run")).unwrap();
    let log = std::fs::File::create(root.join("samba.out")).unwrap();
    let mut child = Command::new(find("samba").unwrap())
        .args(["-i", "-M", "single", "-s"])
        .arg(&conf)
        .stdin(Stdio::piped())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start samba");
    let stdin = child.stdin.take().unwrap();
    let samba = Samba {
        ca_file,
        child: Mutex::new(child),
        _stdin: Mutex::new(stdin),
        dir,
    };
    let mut conn = admin_connection(&samba);
    // Rotations back to back: no minimum password age.
    conn.modify(
        BASE_DN,
        vec![Mod::Replace(
            b"minPwdAge".to_vec(),
            HashSet::from([b"0".to_vec()]),
        )],
    )
    .unwrap()
    .success()
    .unwrap();
    for name in USERS {
        let uac: &[u8] = if *name == "ad-disabled" {
            b"514"
        } else {
            b"512"
        };
        let password = breakglass::rotators::ldap::ad_unicode_pwd(&samba.old_password(name));
        let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
            (
                b"objectClass".to_vec(),
                HashSet::from([
                    b"top".to_vec(),
                    b"person".to_vec(),
                    b"organizationalPerson".to_vec(),
                    b"user".to_vec(),
                ]),
            ),
            (
                b"sAMAccountName".to_vec(),
                HashSet::from([name.as_bytes().to_vec()]),
            ),
            (b"unicodePwd".to_vec(), HashSet::from([password.to_vec()])),
            (
                b"userAccountControl".to_vec(),
                HashSet::from([uac.to_vec()]),
            ),
        ];
        conn.add(&samba.user_dn(name), attrs)
            .unwrap()
            .success()
            .unwrap_or_else(|e| panic!("adding {name}: {e}"));
    }
    let _ = conn.unbind();
    eprintln!(
        "Samba AD DC provisioned and started in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    samba
}

/// An LDAPS connection bound as Administrator, waiting for Samba to be ready.
fn admin_connection(samba: &Samba) -> LdapConn {
    let pem = std::fs::read(&samba.ca_file).unwrap();
    let tls = breakglass::crypto::tls::client_config(Some(&pem)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(Some(status)) = samba.child.lock().unwrap().try_wait() {
            panic!(
                "samba exited ({status}): {}",
                std::fs::read_to_string(samba.dir.join("samba.out")).unwrap_or_default()
            );
        }
        if TcpStream::connect(("127.0.0.1", 636)).is_ok() {
            let settings = LdapConnSettings::new().set_config(Arc::clone(&tls));
            match LdapConn::with_settings(settings, LDAPS_URL) {
                Ok(mut conn) => match conn.simple_bind(&samba.admin_dn(), ADMIN_PW) {
                    Ok(result) if result.rc == 0 => return conn,
                    Ok(result) => last = result.to_string(),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("Samba did not answer an LDAPS bind within 60 s: {last}");
}
