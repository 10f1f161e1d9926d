//! TLS clients: client certificates (`tls-auth-clients`), redis-cli --tls, TLS
//! only (`port 0`), a plaintext client or a silent one on the TLS port, and the
//! configurations refused at startup with the reason.

mod common;
mod tls_support;

use common::{wait_until, TestServer};
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tls_support::{served, strs, tls_port, Pki, Proc, TlsConn};

fn start(pki: &Pki, extra: &[&str]) -> (TestServer, u16) {
    let port = tls_port();
    let mut args = pki.server_args(port);
    args.extend(extra.iter().map(|s| s.to_string()));
    let s = TestServer::start(&strs(&args));
    (s, port)
}

#[test]
fn auth_clients_yes_requires_a_certificate_from_the_ca() {
    let pki = Pki::new();
    let (srv, port) = start(&pki, &[]);
    let mut c = TlsConn::connect(port, pki.client_config("ca", Some("client"))).unwrap();
    assert_eq!(c.cmd(&["SET", "k", "v"]), "+OK");
    assert_eq!(c.cmd(&["GET", "k"]), "v");
    assert!(!served(port, pki.client_config("ca", None)));
    assert!(!served(port, pki.client_config("ca", Some("other-client"))));
    // The refusals cost nothing else: TLS and plain clients are still served.
    assert!(served(port, pki.client_config("ca", Some("client"))));
    assert_eq!(srv.conn().cmd("GET k"), common::b("v"));
}

#[test]
fn auth_clients_no_serves_clients_without_a_certificate() {
    let pki = Pki::new();
    let (_srv, port) = start(&pki, &["--tls-auth-clients", "no"]);
    assert!(served(port, pki.client_config("ca", None)));
    // The server's certificate is what a client checks: one trusting another CA
    // refuses it.
    assert!(TlsConn::connect(port, pki.client_config("other-ca", None)).is_err());
}

#[test]
fn auth_clients_optional_takes_none_or_a_valid_one_only() {
    let pki = Pki::new();
    let (_srv, port) = start(&pki, &["--tls-auth-clients", "optional"]);
    assert!(served(port, pki.client_config("ca", None)));
    assert!(served(port, pki.client_config("ca", Some("client"))));
    assert!(!served(port, pki.client_config("ca", Some("other-client"))));
}

#[test]
fn redis_cli_over_tls_with_a_client_certificate() {
    let pki = Pki::new();
    let (_srv, port) = start(&pki, &[]);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["--tls", "--cacert", &pki.path("ca.crt")])
            .args([
                "--cert",
                &pki.path("client.crt"),
                "--key",
                &pki.path("client.key"),
            ])
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(cli(&["SET", "greeting", "hello"]), "OK");
    assert_eq!(cli(&["GET", "greeting"]), "hello");
    assert_eq!(cli(&["DBSIZE"]), "1");
}

#[test]
fn port_zero_serves_tls_only() {
    let pki = Pki::new();
    let port = tls_port();
    let mut args = pki.server_args(port);
    args.extend(["--port".to_string(), "0".to_string()]);
    let mut p = Proc::start(&args);
    let cfg = pki.client_config("ca", Some("client"));
    assert!(
        wait_until(Duration::from_secs(10), || served(port, cfg.clone())),
        "TLS-only server not serving: {}",
        p.log()
    );
    assert!(p.child.try_wait().unwrap().is_none());
    assert!(!p.log().contains("Failed listening"));
}

/// Reads until EOF (or the limit); false on a reset or a timeout.
fn closed_cleanly(s: &mut std::net::TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

#[test]
fn plaintext_on_the_tls_port_gets_a_clean_close_logged_once_per_peer() {
    let pki = Pki::new();
    let (srv, port) = start(&pki, &[]);
    for _ in 0..5 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        let t = Instant::now();
        assert!(
            closed_cleanly(&mut s, Duration::from_secs(5)),
            "no clean close"
        );
        assert!(t.elapsed() < Duration::from_secs(3));
    }
    assert_eq!(srv.conn().cmd("PING"), common::R::Simple("PONG".into()));
    assert!(served(port, pki.client_config("ca", Some("client"))));
    let log = srv.stdout();
    assert_eq!(
        log.matches("Error accepting a client connection").count(),
        1,
        "{log}"
    );
}

#[test]
fn a_silent_client_is_dropped_at_the_handshake_timeout() {
    let pki = Pki::new();
    let (srv, port) = start(&pki, &[]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let t = Instant::now();
    assert!(closed_cleanly(&mut s, Duration::from_secs(20)));
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(15),
        "{waited:?}"
    );
    assert!(wait_until(Duration::from_secs(5), || srv
        .stdout()
        .contains("TLS handshake timed out")));
}

/// Starts a server that must refuse its TLS configuration; its log.
fn refused_at_startup(args: Vec<String>) -> String {
    let mut p = Proc::start(&args);
    let code = p.exit_code(Duration::from_secs(10));
    let log = p.log();
    assert_eq!(code, Some(1), "server did not stop: {log}");
    assert!(log.contains("Failed to configure TLS"), "{log}");
    log
}

fn with(pki: &Pki, replace: &[(&str, String)]) -> Vec<String> {
    let mut args = pki.server_args(tls_port());
    for (k, v) in replace {
        match args.iter().position(|a| a == k) {
            Some(i) => args[i + 1] = v.clone(),
            None => args.extend([k.to_string(), v.clone()]),
        }
    }
    args.extend(["--port".to_string(), common::free_port().to_string()]);
    args
}

#[test]
fn bad_certificates_and_settings_stop_startup_with_the_reason() {
    let pki = Pki::new();
    pki.leaf("expired", "ca", -1);
    let log = refused_at_startup(with(
        &pki,
        &[
            ("--tls-cert-file", pki.path("expired.crt")),
            ("--tls-key-file", pki.path("expired.key")),
        ],
    ));
    assert!(log.contains("expired at"), "{log}");
    let log = refused_at_startup(with(&pki, &[("--tls-key-file", pki.path("client.key"))]));
    assert!(log.contains("does not match the certificate"), "{log}");
    let log = refused_at_startup(with(&pki, &[("--tls-key-file-pass", "secret".into())]));
    assert!(
        log.contains("encrypted private keys are not supported"),
        "{log}"
    );
    let log = refused_at_startup(with(&pki, &[("--tls-protocols", "TLSv1.1".into())]));
    assert!(log.contains("unsupported protocol 'TLSv1.1'"), "{log}");
    let log = refused_at_startup(with(&pki, &[("--tls-ciphers", "RC4-MD5".into())]));
    assert!(log.contains("unsupported cipher 'RC4-MD5'"), "{log}");
    let log = refused_at_startup(with(&pki, &[("--tls-ca-cert-file", String::new())]));
    assert!(log.contains("tls-ca-cert-file or tls-ca-cert-dir"), "{log}");
    let log = refused_at_startup(with(&pki, &[("--tls-cert-file", pki.path("missing.crt"))]));
    assert!(log.contains("failed to read tls-cert-file"), "{log}");
    // An encrypted key file is recognised as such.
    let enc = pki.path("enc.key");
    let out = std::process::Command::new("openssl")
        .args([
            "pkey",
            "-in",
            &pki.path("server.key"),
            "-aes256",
            "-passout",
            "pass:x",
        ])
        .args(["-out", &enc])
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = refused_at_startup(with(&pki, &[("--tls-key-file", enc)]));
    assert!(log.contains("holds an encrypted private key"), "{log}");
}

#[test]
fn ca_dir_and_tls12_ciphers_are_honoured() {
    let pki = Pki::new();
    let ca_dir = pki.path("cadir");
    std::fs::create_dir(&ca_dir).unwrap();
    std::fs::copy(pki.path("ca.crt"), format!("{ca_dir}/ca.pem")).unwrap();
    std::fs::write(format!("{ca_dir}/README"), "not a certificate").unwrap();
    let port = tls_port();
    let mut args = pki.server_args(port);
    let i = args.iter().position(|a| a == "--tls-ca-cert-file").unwrap();
    args[i] = "--tls-ca-cert-dir".into();
    args[i + 1] = ca_dir;
    args.extend(
        [
            "--tls-protocols",
            "TLSv1.2",
            "--tls-ciphers",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
        ]
        .map(String::from),
    );
    let _srv = TestServer::start(&strs(&args));
    let mut c = TlsConn::connect(port, pki.client_config("ca", Some("client"))).unwrap();
    assert_eq!(c.cmd(&["PING"]), "+PONG");
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-cert",
            &pki.path("client.crt"),
            "-key",
            &pki.path("client.key"),
        ])
        .args(["-CAfile", &pki.path("ca.crt"), "-brief"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TLSv1.2"), "{text}");
    assert!(text.contains("ECDHE-ECDSA-AES256-GCM-SHA384"), "{text}");
}

#[test]
fn large_replies_pipelines_and_blocked_clients_work_over_tls() {
    let pki = Pki::new();
    let (_srv, port) = start(&pki, &[]);
    let cfg = pki.client_config("ca", Some("client"));
    let mut c = TlsConn::connect(port, cfg.clone()).unwrap();
    // Larger than rustls's buffers: the reply's tail must not wait for a flush.
    let big = "x".repeat(3 << 20);
    assert_eq!(c.cmd(&["SET", "big", &big]), "+OK");
    assert_eq!(c.cmd(&["GET", "big"]).len(), big.len());
    for _ in 0..500 {
        c.send(&["INCR", "n"]).unwrap();
    }
    for i in 1..=500 {
        assert_eq!(c.read_reply().unwrap(), format!(":{i}"));
    }
    // A blocked client is woken by another TLS client.
    c.send(&["BLPOP", "q", "10"]).unwrap();
    let mut other = TlsConn::connect(port, cfg).unwrap();
    assert_eq!(other.cmd(&["RPUSH", "q", "item"]), ":1");
    assert_eq!(c.read_reply().unwrap(), "q,item");
    assert_eq!(c.cmd(&["PING"]), "+PONG");
}
