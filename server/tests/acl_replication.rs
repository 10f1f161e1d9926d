//! Replication as a least-privilege ACL user (`masteruser` + `masterauth`), with the
//! master's default user turned off: Tandem replica of Tandem, Redis 7.0.15 replica
//! of Tandem, and Tandem replica of Redis 7.0.15.
mod common;
use common::*;
use std::time::Duration;

/// What a replica needs on its master, and nothing more.
const REPL_USER: &[&str] = &["repl", "on", ">rpw", "+psync", "+replconf", "+ping"];
const ADMIN_USER: &[&str] = &["admin", "on", ">apw", "~*", "&*", "+@all"];

fn user_args(rules: &[&str]) -> Vec<String> {
    let mut v = vec!["--user".to_string()];
    v.extend(rules.iter().map(|s| s.to_string()));
    v
}

fn info_replication(c: &mut Conn) -> String {
    match c.cmd("INFO replication") {
        R::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("INFO: {other:?}"),
    }
}

/// The master's view: one replica client, connected as `repl`.
fn replica_client_user(master: &mut Conn) -> Option<String> {
    let R::Bulk(list) = master.cmd("CLIENT LIST") else {
        return None;
    };
    let list = String::from_utf8_lossy(&list).into_owned();
    list.lines()
        .find(|l| l.contains(" flags=S "))
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("user=")))
        .map(String::from)
}

/// Writes on the master as `admin` and waits for the value on the replica.
fn assert_replicates(master: &mut Conn, replica: &mut Conn) {
    assert_eq!(master.cmd("SET acl:key v1"), R::ok());
    assert!(
        wait_until(Duration::from_secs(15), || replica.cmd("GET acl:key")
            == R::bulk("v1")),
        "not replicated: {}",
        info_replication(replica)
    );
    assert!(info_replication(replica).contains("master_link_status:up\r\n"));
}

fn tandem_master() -> TestServer {
    let mut args = user_args(REPL_USER);
    args.extend(user_args(ADMIN_USER));
    args.extend(["--user", "default", "off"].map(String::from));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::start(&refs)
}

/// Replica options: `port`'s replica, authenticating as `repl` with `pass`.
fn replica_args<'a>(port: &'a str, pass: &'a str) -> [&'a str; 7] {
    [
        "--replicaof",
        "127.0.0.1",
        port,
        "--masteruser",
        "repl",
        "--masterauth",
        pass,
    ]
}

fn admin_conn(port: u16) -> Conn {
    let mut c = Conn::connect(port);
    assert_eq!(c.cmd("AUTH admin apw"), R::ok());
    c
}

#[test]
fn tandem_replica_of_tandem_authenticates_as_least_privilege_user() {
    let m = tandem_master();
    let port = m.port.to_string();
    let r = TestServer::start(&replica_args(&port, "rpw"));
    let mut mc = admin_conn(m.port);
    let mut rc = r.conn();
    assert_replicates(&mut mc, &mut rc);
    assert_eq!(replica_client_user(&mut mc).as_deref(), Some("repl"));
    // The replication user cannot read or write data itself.
    let mut as_repl = Conn::connect(m.port);
    assert_eq!(as_repl.cmd("AUTH repl rpw"), R::ok());
    assert_eq!(
        as_repl.cmd("GET acl:key"),
        err("NOPERM this user has no permissions to run the 'get' command")
    );
}

#[test]
fn redis_replica_of_tandem_authenticates_as_least_privilege_user() {
    let m = tandem_master();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = m.port.to_string();
    let redis = RealRedis::start(dir.path(), "dump.rdb", &replica_args(&port, "rpw"));
    let mut mc = admin_conn(m.port);
    let mut rc = redis.conn();
    assert_replicates(&mut mc, &mut rc);
    assert_eq!(replica_client_user(&mut mc).as_deref(), Some("repl"));
}

#[test]
fn tandem_replica_of_redis_authenticates_as_least_privilege_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut extra = user_args(REPL_USER);
    extra.extend(user_args(ADMIN_USER));
    let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
    // The default user stays on until the replica is attached: the harness
    // checks readiness with an unauthenticated PING.
    let redis = RealRedis::start(dir.path(), "dump.rdb", &refs);
    let mut mc = redis.conn();
    assert_eq!(mc.cmd("ACL SETUSER default off"), R::ok());
    let mut mc = admin_conn(redis.port);
    let port = redis.port.to_string();
    let r = TestServer::start(&replica_args(&port, "rpw"));
    let mut rc = r.conn();
    assert_replicates(&mut mc, &mut rc);
    assert_eq!(replica_client_user(&mut mc).as_deref(), Some("repl"));
}

#[test]
fn wrong_masterauth_keeps_the_link_down() {
    let m = tandem_master();
    let port = m.port.to_string();
    let r = TestServer::start(&replica_args(&port, "bad"));
    assert!(wait_until(Duration::from_secs(10), || r
        .stdout()
        .contains("Unable to AUTH to MASTER")));
    let mut rc = r.conn();
    assert!(info_replication(&mut rc).contains("master_link_status:down\r\n"));
    let mut mc = admin_conn(m.port);
    // The master logged the refused AUTH under the replication user's name.
    let R::Arr(log) = mc.cmd("ACL LOG 1") else {
        panic!("ACL LOG")
    };
    let Some(R::Arr(entry)) = log.first() else {
        panic!("no ACL LOG entry")
    };
    let field = |name: &str| {
        entry
            .iter()
            .position(|f| *f == R::bulk(name))
            .and_then(|i| entry.get(i + 1))
            .cloned()
    };
    assert_eq!(field("reason"), Some(R::bulk("auth")));
    assert_eq!(field("username"), Some(R::bulk("repl")));
}
