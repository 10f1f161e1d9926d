//! Replication over TLS with Redis 7.0.15 both ways: a Redis replica of a Tandem
//! TLS master, a Tandem replica of a Redis TLS master (client certificates
//! required on both masters), and Tandem to Tandem.

mod common;
mod tls_support;

use common::{wait_until, RealRedis, TestServer};
use std::time::Duration;
use tls_support::{strs, tls_port, Pki};

/// The replica side of the TLS link: the client pair and the CA.
fn replica_tls_args(pki: &Pki) -> Vec<String> {
    vec![
        "--tls-replication".into(),
        "yes".into(),
        "--tls-cert-file".into(),
        pki.path("client.crt"),
        "--tls-key-file".into(),
        pki.path("client.key"),
        "--tls-ca-cert-file".into(),
        pki.path("ca.crt"),
    ]
}

fn text(r: common::R) -> String {
    match r {
        common::R::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => format!("{other:?}"),
    }
}

fn get(c: &mut common::Conn, key: &str) -> common::R {
    c.cmd(&format!("GET {key}"))
}

#[test]
fn redis_replica_of_a_tandem_tls_master() {
    let pki = Pki::new();
    let port = tls_port();
    let master = TestServer::start(&strs(&pki.server_args(port)));
    let mut m = master.conn();
    assert_eq!(m.cmd("SET before sync"), common::R::ok());
    let dir = tempfile::tempdir().unwrap();
    let mut extra = replica_tls_args(&pki);
    extra.extend(["--replicaof".into(), "127.0.0.1".into(), port.to_string()]);
    let replica = RealRedis::start(dir.path(), "dump.rdb", &strs(&extra));
    let mut r = replica.conn();
    assert!(
        wait_until(Duration::from_secs(20), || get(&mut r, "before")
            == common::b("sync")),
        "Redis replica did not sync over TLS; master log: {}",
        master.stdout()
    );
    assert_eq!(m.cmd("SET after streamed"), common::R::ok());
    assert!(wait_until(Duration::from_secs(10), || get(&mut r, "after")
        == common::b("streamed")));
    let info = text(m.cmd("INFO replication"));
    assert!(info.contains("connected_slaves:1"), "{info}");
}

#[test]
fn tandem_replica_of_a_redis_tls_master() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let port = tls_port();
    let extra = [
        "--tls-port".to_string(),
        port.to_string(),
        "--tls-cert-file".into(),
        pki.path("server.crt"),
        "--tls-key-file".into(),
        pki.path("server.key"),
        "--tls-ca-cert-file".into(),
        pki.path("ca.crt"),
    ];
    let master = RealRedis::start(dir.path(), "dump.rdb", &strs(&extra));
    let mut m = master.conn();
    assert_eq!(m.cmd("RPUSH l a b c"), common::R::Int(3));
    let mut args = replica_tls_args(&pki);
    args.extend(["--replicaof".into(), "127.0.0.1".into(), port.to_string()]);
    let replica = TestServer::start(&strs(&args));
    let mut r = replica.conn();
    assert!(
        wait_until(Duration::from_secs(20), || r.cmd("LLEN l")
            == common::R::Int(3)),
        "Tandem replica did not sync over TLS: {}",
        replica.stdout()
    );
    assert_eq!(m.cmd("SET after streamed"), common::R::ok());
    assert!(wait_until(Duration::from_secs(10), || get(&mut r, "after")
        == common::b("streamed")));
    let info = text(r.cmd("INFO replication"));
    assert!(info.contains("master_link_status:up"), "{info}");
}

#[test]
fn tandem_replica_of_a_tandem_tls_master_and_a_refused_one() {
    let pki = Pki::new();
    let port = tls_port();
    let master = TestServer::start(&strs(&pki.server_args(port)));
    let mut m = master.conn();
    assert_eq!(m.cmd("SET k v"), common::R::ok());
    let mut args = replica_tls_args(&pki);
    args.extend(["--replicaof".into(), "127.0.0.1".into(), port.to_string()]);
    let replica = TestServer::start(&strs(&args));
    let mut r = replica.conn();
    assert!(wait_until(Duration::from_secs(20), || get(&mut r, "k")
        == common::b("v")));
    assert_eq!(m.cmd("INCR n"), common::R::Int(1));
    assert!(wait_until(Duration::from_secs(10), || get(&mut r, "n")
        == common::b("1")));

    // A replica whose certificate the master's CA did not sign never syncs;
    // both processes carry on.
    let mut bad = replica_tls_args(&pki);
    bad[3] = pki.path("other-client.crt");
    bad[5] = pki.path("other-client.key");
    bad.extend(["--replicaof".into(), "127.0.0.1".into(), port.to_string()]);
    let refused = TestServer::start(&strs(&bad));
    let mut rc = refused.conn();
    assert!(!wait_until(Duration::from_secs(3), || get(&mut rc, "k")
        == common::b("v")));
    assert_eq!(m.cmd("PING"), common::R::Simple("PONG".into()));
    assert_eq!(rc.cmd("PING"), common::R::Simple("PONG".into()));
}

/// A disk-target payload over a TLS link goes through the TLS stream (the plain
/// TCP path writes the socket directly, which TLS cannot take): the replica gets
/// every key.
#[test]
fn tandem_replica_syncs_a_disk_target_payload_over_tls() {
    let pki = Pki::new();
    let port = tls_port();
    let mut margs = pki.server_args(port);
    margs.extend(
        [
            "--repl-diskless-sync",
            "no",
            "--enable-debug-command",
            "yes",
        ]
        .map(String::from),
    );
    let master = TestServer::start(&strs(&margs));
    let mut m = master.conn();
    assert_eq!(m.cmd("DEBUG POPULATE 50000 key 100"), common::R::ok());
    let mut args = replica_tls_args(&pki);
    args.extend(["--replicaof".into(), "127.0.0.1".into(), port.to_string()]);
    let replica = TestServer::start(&strs(&args));
    let mut r = replica.conn();
    assert!(wait_until(Duration::from_secs(30), || r.cmd("DBSIZE")
        == common::R::Int(50_000)));
    assert!(
        master
            .stdout()
            .contains("Starting BGSAVE for SYNC with target: disk"),
        "{}",
        master.stdout()
    );
    assert_eq!(m.cmd("INCR n"), common::R::Int(1));
    assert!(wait_until(Duration::from_secs(10), || get(&mut r, "n")
        == common::b("1")));
}
