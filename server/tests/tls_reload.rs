//! Certificate reload without restarts: by CONFIG SET, and by the files changing
//! the way Kubernetes updates a mounted Secret (a `..data` symlink swap). New
//! connections get the new certificate; existing ones keep working; a bad new
//! certificate keeps the old one.

mod common;
mod tls_support;

use common::{wait_until, TestServer, R};
use std::time::Duration;
use tls_support::{served, strs, tls_port, Pki, TlsConn};

fn new_ca_and_server(pki: &Pki) {
    pki.ca("ca2");
    pki.leaf("server2", "ca2", 365);
}

fn config_set(srv: &TestServer, args: &[&str]) -> R {
    let mut all: Vec<&[u8]> = vec![b"CONFIG", b"SET"];
    all.extend(args.iter().map(|a| a.as_bytes()));
    srv.conn().cmd_args(&all)
}

#[test]
fn config_set_swaps_the_certificate_for_new_connections_only() {
    let pki = Pki::new();
    new_ca_and_server(&pki);
    let port = tls_port();
    let mut args = pki.server_args(port);
    args.extend(["--tls-auth-clients", "no"].map(String::from));
    let srv = TestServer::start(&strs(&args));
    let mut old = TlsConn::connect(port, pki.client_config("ca", None)).unwrap();
    assert_eq!(old.cmd(&["SET", "k", "before"]), "+OK");

    let (crt2, key2) = (pki.path("server2.crt"), pki.path("server2.key"));
    let r = config_set(&srv, &["tls-cert-file", &crt2, "tls-key-file", &key2]);
    assert_eq!(r, R::ok());
    assert!(served(port, pki.client_config("ca2", None)));
    assert!(!served(port, pki.client_config("ca", None)));
    // The connection made before the swap is untouched.
    assert_eq!(old.cmd(&["GET", "k"]), "before");
    assert_eq!(old.cmd(&["SET", "k", "after"]), "+OK");

    // A key that does not match: refused with the reason, the old pair stays.
    let r = config_set(&srv, &["tls-key-file", &pki.path("server.key")]);
    assert_eq!(
        r.err_text(),
        "ERR CONFIG SET failed (possibly related to argument 'tls-key-file') - Unable to update TLS configuration. Check server logs."
    );
    assert!(wait_until(Duration::from_secs(5), || srv
        .stdout()
        .contains("does not match the certificate")));
    let mut c = srv.conn();
    assert_eq!(
        c.cmd("CONFIG GET tls-key-file"),
        R::Arr(vec![common::b("tls-key-file"), common::b(&key2)])
    );
    assert!(served(port, pki.client_config("ca2", None)));

    // Client authentication switched on at runtime, against a new CA setting.
    let r = config_set(
        &srv,
        &[
            "tls-auth-clients",
            "yes",
            "tls-ca-cert-file",
            &pki.path("ca.crt"),
        ],
    );
    assert_eq!(r, R::ok());
    assert!(!served(port, pki.client_config("ca2", None)));
    // (the client certificate is signed by `ca`, the server's by `ca2`)
    assert!(served(port, pki.client_config("ca2", Some("client"))));
    assert_eq!(old.cmd(&["GET", "k"]), "after");
}

/// A Secret volume's layout: `<dir>/<file>` -> `..data/<file>`, `..data` ->
/// the current version's directory.
struct SecretDir {
    root: std::path::PathBuf,
    version: u32,
}

impl SecretDir {
    fn new(root: std::path::PathBuf, crt: &str, key: &str) -> SecretDir {
        std::fs::create_dir_all(&root).unwrap();
        let mut s = SecretDir { root, version: 0 };
        s.publish(crt, key);
        for f in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{f}"), s.root.join(f)).unwrap();
        }
        s
    }

    /// Writes a new version and swaps `..data` to it atomically (rename).
    fn publish(&mut self, crt: &str, key: &str) {
        self.version += 1;
        let v = format!("..v{}", self.version);
        let dir = self.root.join(&v);
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(crt, dir.join("tls.crt")).unwrap();
        std::fs::copy(key, dir.join("tls.key")).unwrap();
        let tmp = self.root.join("..data_tmp");
        std::os::unix::fs::symlink(&v, &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
    }

    fn path(&self, f: &str) -> String {
        self.root.join(f).display().to_string()
    }
}

#[test]
fn a_swapped_secret_is_served_to_new_connections_within_seconds() {
    let pki = Pki::new();
    new_ca_and_server(&pki);
    let mut secret = SecretDir::new(
        pki.dir.path().join("secret"),
        &pki.path("server.crt"),
        &pki.path("server.key"),
    );
    let port = tls_port();
    let args = [
        "--tls-port".to_string(),
        port.to_string(),
        "--tls-cert-file".into(),
        secret.path("tls.crt"),
        "--tls-key-file".into(),
        secret.path("tls.key"),
        "--tls-auth-clients".into(),
        "no".into(),
    ];
    let srv = TestServer::start(&strs(&args));
    let mut old = TlsConn::connect(port, pki.client_config("ca", None)).unwrap();
    assert_eq!(old.cmd(&["SET", "k", "v1"]), "+OK");

    secret.publish(&pki.path("server2.crt"), &pki.path("server2.key"));
    assert!(
        wait_until(Duration::from_secs(10), || served(
            port,
            pki.client_config("ca2", None)
        )),
        "new certificate not served: {}",
        srv.stdout()
    );
    assert!(!served(port, pki.client_config("ca", None)));
    assert_eq!(old.cmd(&["GET", "k"]), "v1");
    assert!(srv.stdout().contains("TLS configuration reloaded"));

    // Half an update (a certificate without its key): refused, logged, and the
    // certificate in use stays.
    secret.publish(&pki.path("server.crt"), &pki.path("server2.key"));
    assert!(wait_until(Duration::from_secs(10), || srv
        .stdout()
        .contains("keeping the one in use")));
    assert!(served(port, pki.client_config("ca2", None)));
    assert_eq!(old.cmd(&["PING"]), "+PONG");
    // Completing the update is picked up.
    secret.publish(&pki.path("server.crt"), &pki.path("server.key"));
    assert!(wait_until(Duration::from_secs(10), || served(
        port,
        pki.client_config("ca", None)
    )));
}
