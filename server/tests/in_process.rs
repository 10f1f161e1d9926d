//! Two servers in one process: a master and its replica wired over loopback inside one
//! `#[tokio::test]`. This holds only while every piece of runtime state lives in a
//! `Server` value (the layers issue): shared statics would make the two servers see
//! each other's persistence status, AOF, loading flag or shutdown request.
mod common;
use common::*;
use std::time::Duration;

fn config(port: u16, dir: &std::path::Path, extra: &[&str]) -> tandem_server::config::Config {
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir.to_str().expect("utf8 dir"),
        "--save",
        "",
        "--tandem-admin-port",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    tandem_server::config::load_from_args(&args).expect("config")
}

fn info_has(port: u16, section: &str, line: &str) -> bool {
    if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut c = Conn::connect(port);
    match c.cmd(&format!("INFO {section}")) {
        R::Bulk(text) => String::from_utf8_lossy(&text).contains(line),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_and_a_replica_run_in_one_process() {
    let (mdir, rdir) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (mport, rport) = (free_port(), free_port());
    let master = tokio::spawn(tandem_server::run(config(mport, mdir.path(), &[]), None));
    assert!(wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", mport)).is_ok()
    }));
    let mut m = Conn::connect(mport);
    assert_eq!(m.cmd("SET before-sync 1"), R::ok());
    // The replica has appendonly on and the master not: each has its own AOF state.
    let replicaof = mport.to_string();
    let rconf = config(
        rport,
        rdir.path(),
        &[
            "--replicaof",
            "127.0.0.1",
            &replicaof,
            "--appendonly",
            "yes",
        ],
    );
    let replica = tokio::spawn(tandem_server::run(rconf, None));
    assert!(
        wait_until(Duration::from_secs(20), || info_has(
            rport,
            "replication",
            "master_link_status:up"
        )),
        "replica link up"
    );
    assert_eq!(m.cmd("SET after-sync 2"), R::ok());
    let mut r = Conn::connect(rport);
    assert!(wait_until(Duration::from_secs(10), || r
        .cmd("GET after-sync")
        == b("2")));
    assert_eq!(r.cmd("GET before-sync"), b("1"));
    assert!(info_has(mport, "replication", "connected_slaves:1"));
    assert!(info_has(mport, "persistence", "aof_enabled:0"));
    assert!(info_has(rport, "persistence", "aof_enabled:1"));
    assert_eq!(
        r.cmd("SET x 1"),
        R::Err("READONLY You can't write against a read only replica.".into())
    );
    // SHUTDOWN of one server ends that server's `run`, not the other's.
    m.send(&[b"SHUTDOWN", b"NOSAVE"]);
    let done = tokio::time::timeout(Duration::from_secs(10), master).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect((
            "127.0.0.1",
            mport
        ))
        .is_err()),
        "the master's listener closed with its server"
    );
    assert_eq!(r.cmd("PING"), R::Simple("PONG".into()));
    // The replica reconnects at once when the link drops; a PSYNC the master took just
    // before its accept loop stopped must not leave a link to a server that is gone
    // (in a process of its own the exit would close it; here nothing else would).
    assert!(
        wait_until(Duration::from_secs(10), || info_has(
            rport,
            "replication",
            "master_link_status:down"
        )),
        "the replica sees its master gone"
    );
    r.send(&[b"SHUTDOWN", b"NOSAVE"]);
    let done = tokio::time::timeout(Duration::from_secs(10), replica).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
}
