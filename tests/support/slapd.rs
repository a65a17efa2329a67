//! A throwaway OpenLDAP `slapd` for the ldap-password rotator's tests: a
//! cn=config built with `slapadd -n0` (back_mdb; core, cosine, inetorgperson),
//! data loaded with `slapadd -n1`, the test's own rcgen CA and certificate, run
//! as `nobody` (when root) on loopback high ports: ldaps:// and ldap:// (for
//! StartTLS). Killed on drop.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tls::TestPki;

pub const SUFFIX: &str = "dc=example,dc=org";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PW: &str = "admin-secret-1";
/// Users, each with the password `old-<uid>-pw`.
pub const USERS: &[&str] = &["alice", "bob", "carol", "dave", "erin", "frank", "noauth"];

pub fn user_dn(uid: &str) -> String {
    format!("uid={uid},ou=people,{SUFFIX}")
}

pub fn old_password(uid: &str) -> String {
    format!("old-{uid}-pw")
}

/// Whether slapd and slapadd are installed (Debian puts them in /usr/sbin).
pub fn available() -> bool {
    Path::new("/usr/sbin/slapd").exists() && Path::new("/usr/sbin/slapadd").exists()
}

pub struct Slapd {
    child: Child,
    pub dir: tempfile::TempDir,
    pub ldaps_port: u16,
    pub ldap_port: u16,
    pub pki: TestPki,
    pub ca_file: PathBuf,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
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

impl Slapd {
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// Stop (SIGSTOP) or resume (SIGCONT) the server: a peer that accepts
    /// connections (the kernel does) but never answers.
    pub fn freeze(&self, frozen: bool) {
        use rustix::process::{kill_process, Pid, Signal};
        let pid = Pid::from_raw(self.child.id() as i32).unwrap();
        let signal = if frozen { Signal::STOP } else { Signal::CONT };
        kill_process(pid, signal).unwrap();
    }

    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    /// Builds the config and data, starts slapd and waits until both ports answer.
    pub fn start() -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let pki = TestPki::new();
        let ca_file = root.join("ca.pem");
        std::fs::write(&ca_file, pki.ca_pem.as_bytes()).unwrap();
        std::fs::write(root.join("server.pem"), pki.server_cert_pem.as_bytes()).unwrap();
        std::fs::write(root.join("server.key"), pki.server_key_pem.as_bytes()).unwrap();
        let config_dir = root.join("slapd.d");
        let data_dir = root.join("data");
        std::fs::create_dir(&config_dir).unwrap();
        std::fs::create_dir(&data_dir).unwrap();
        let r = root.display();
        let config = format!(
            "dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {r}/slapd.pid
olcTLSCACertificateFile: {r}/ca.pem
olcTLSCertificateFile: {r}/server.pem
olcTLSCertificateKeyFile: {r}/server.key

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file:///etc/ldap/schema/cosine.ldif

include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcRootDN: {ADMIN_DN}
olcRootPW: {ADMIN_PW}
olcDbDirectory: {r}/data
olcDbMaxSize: 16777216
olcAccess: {{0}}to dn.exact=\"{noauth}\" attrs=userPassword by * none
olcAccess: {{1}}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {{2}}to * by * read
",
            noauth = user_dn("noauth"),
        );
        std::fs::write(root.join("config.ldif"), config).unwrap();
        let mut data = format!(
            "dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people
"
        );
        for uid in USERS {
            data.push_str(&format!(
                "
dn: {dn}
objectClass: inetOrgPerson
uid: {uid}
cn: {uid}
sn: {uid}
userPassword: {pw}
",
                dn = user_dn(uid),
                pw = old_password(uid)
            ));
        }
        std::fs::write(root.join("data.ldif"), data).unwrap();
        run(
            Command::new("/usr/sbin/slapadd")
                .args(["-n0", "-F"])
                .arg(&config_dir)
                .arg("-l")
                .arg(root.join("config.ldif")),
            "slapadd -n0",
        );
        run(
            Command::new("/usr/sbin/slapadd")
                .args(["-n1", "-F"])
                .arg(&config_dir)
                .arg("-l")
                .arg(root.join("data.ldif")),
            "slapadd -n1",
        );
        let root_user = is_root();
        if root_user {
            // slapd runs as nobody: it must traverse the directory and own its files.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
            run(
                Command::new("chown")
                    .args(["-R", "nobody:nogroup"])
                    .arg(root),
                "chown nobody",
            );
        }
        // Ports are picked free just before the start; retry if another
        // process took one meanwhile.
        for _attempt in 0..5 {
            let ldaps_port = free_port();
            let ldap_port = free_port();
            let log = std::fs::File::create(root.join("slapd.log")).unwrap();
            let mut cmd = Command::new("/usr/sbin/slapd");
            cmd.args(["-d", "0", "-F"])
                .arg(&config_dir)
                .arg("-h")
                .arg(format!(
                    "ldaps://127.0.0.1:{ldaps_port}/ ldap://127.0.0.1:{ldap_port}/"
                ));
            if root_user {
                cmd.args(["-u", "nobody", "-g", "nogroup"]);
            }
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start slapd");
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", ldaps_port)).is_ok()
                    && TcpStream::connect(("127.0.0.1", ldap_port)).is_ok()
                {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if up {
                return Slapd {
                    child,
                    dir,
                    ldaps_port,
                    ldap_port,
                    pki,
                    ca_file,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "slapd did not start: {}",
            std::fs::read_to_string(root.join("slapd.log")).unwrap_or_default()
        );
    }
}
