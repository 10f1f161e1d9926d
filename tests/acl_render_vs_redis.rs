//! The ACL users the operator renders (`spec.auth.users`, `spec.auth.internalUser`), loaded
//! by Redis 7.0.15 (the oracle): the `user` lines and `masteruser` are accepted at start,
//! each user authenticates with the password from its Secret (stored only as a hash) and is
//! held to its rules, and the internal user can run what the probes and promotions send but
//! touch no key.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tandem_operator::build::acl_users;
use tandem_operator::crd::RedisReplication;

const REDIS: &str = "/usr/bin/redis-server";

/// A redis-server on loopback, stopped by PID and its directory removed on drop.
struct Redis {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(conf_tail: &str) -> Redis {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let dir = std::env::temp_dir().join(format!("tandem-acl-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = format!(
        "bind 127.0.0.1\nport {port}\nsave \"\"\nappendonly no\ndir {}\nrequirepass setpw\n{conf_tail}",
        dir.display()
    );
    std::fs::write(dir.join("redis.conf"), conf).unwrap();
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let child = Command::new(REDIS)
        .arg(dir.join("redis.conf"))
        .stdout(Stdio::from(log))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Owned from here: a panic below still stops the process and removes the directory.
    let mut r = Redis { child, dir, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = r.child.try_wait() {
            let log = std::fs::read_to_string(r.dir.join("log")).unwrap_or_default();
            panic!("redis-server exited ({status}) on the rendered config:\n{log}");
        }
        assert!(Instant::now() < deadline, "redis-server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    r
}

/// One command over RESP; the reply's first line (enough for status, error and integer).
fn call(conn: &mut BufReader<TcpStream>, args: &[&str]) -> String {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    conn.get_mut().write_all(req.as_bytes()).unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    // Skip the payload of a bulk or multi-bulk reply: the tests only look at the first line.
    if line.starts_with('$') || line.starts_with('*') {
        conn.get_mut()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut rest = String::new();
        while conn.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {}
        conn.get_mut().set_read_timeout(None).unwrap();
    }
    line.trim_end().to_string()
}

fn conn(r: &Redis) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(("127.0.0.1", r.port)).unwrap())
}

#[test]
fn redis_7_0_accepts_the_rendered_users_and_enforces_them() {
    if !Path::new(REDIS).is_file() {
        eprintln!("skipping: {REDIS} not installed");
        return;
    }
    let rr: RedisReplication = serde_json::from_value(json!({
        "apiVersion": "tandem.dev/v1alpha1", "kind": "RedisReplication",
        "metadata": {"name": "cache", "namespace": "prod", "uid": "u"},
        "spec": {"auth": {"internalUser": true, "users": [
            {"name": "app", "passwordSecret": {"name": "app-pw"}, "rules": "~app:* +@all -@dangerous"},
            {"name": "reader", "passwordSecret": {"name": "ro-pw"}, "rules": "~* +@read"}
        ]}}
    }))
    .unwrap();
    let passwords = BTreeMap::from([
        ("app".to_string(), b"app pass \"with\" quotes".to_vec()),
        ("reader".to_string(), b"ro".to_vec()),
    ]);
    let mut tail = acl_users::users_file(&rr, b"setpw", &passwords).unwrap();
    for (k, v) in acl_users::config_lines(&rr) {
        tail.push_str(&format!("{k} {v}\n"));
    }
    let r = start(&tail);

    let mut c = conn(&r);
    assert_eq!(
        call(&mut c, &["AUTH", "app", "wrong"]).split(' ').next(),
        Some("-WRONGPASS")
    );
    assert_eq!(
        call(&mut c, &["AUTH", "app", "app pass \"with\" quotes"]),
        "+OK"
    );
    assert_eq!(call(&mut c, &["SET", "app:1", "v"]), "+OK");
    assert!(call(&mut c, &["SET", "other", "v"]).starts_with("-NOPERM"));
    assert!(call(&mut c, &["FLUSHALL"]).starts_with("-NOPERM"));

    let mut c = conn(&r);
    assert_eq!(call(&mut c, &["AUTH", "reader", "ro"]), "+OK");
    assert_eq!(call(&mut c, &["GET", "app:1"]), "$1");
    assert!(call(&mut c, &["SET", "app:1", "w"]).starts_with("-NOPERM"));

    // The internal user: what the operator sends works, keys are out of reach.
    let mut c = conn(&r);
    assert_eq!(call(&mut c, &["AUTH", "tandem-operator", "setpw"]), "+OK");
    assert_eq!(call(&mut c, &["PING"]), "+PONG");
    assert!(call(&mut c, &["INFO", "replication"]).starts_with('$'));
    assert!(call(&mut c, &["ROLE"]).starts_with('*'));
    assert_eq!(call(&mut c, &["CLIENT", "PAUSE", "10", "WRITE"]), "+OK");
    assert_eq!(call(&mut c, &["CLIENT", "UNPAUSE"]), "+OK");
    assert_eq!(call(&mut c, &["REPLICAOF", "NO", "ONE"]), "+OK");
    assert!(call(&mut c, &["GET", "app:1"]).starts_with("-NOPERM"));
    assert!(call(&mut c, &["CONFIG", "SET", "maxmemory", "1"]).starts_with("-NOPERM"));
    assert!(call(&mut c, &["FLUSHALL"]).starts_with("-NOPERM"));

    // The default user keeps the set's password (existing clients keep working).
    let mut c = conn(&r);
    assert_eq!(call(&mut c, &["AUTH", "setpw"]), "+OK");
    assert_eq!(call(&mut c, &["GET", "app:1"]), "$1");
}
