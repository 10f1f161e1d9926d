//! Black-box tests of the connection family: PING, ECHO, QUIT, AUTH, HELLO, SELECT,
//! RESET, CLIENT.
mod common;
use common::*;
use std::time::Duration;

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

#[test]
fn ping_echo_quit() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(c.cmd("PING hi"), R::bulk("hi"));
    assert_eq!(
        c.cmd("PING a b"),
        err("ERR wrong number of arguments for 'ping' command")
    );
    assert_eq!(
        c.cmd_args(&[b"ECHO", b"a\r\n\0b"]),
        R::Bulk(b"a\r\n\0b".to_vec())
    );
    assert_eq!(c.cmd("QUIT"), R::ok());
    assert!(c.is_closed());
}

#[test]
fn auth_flow_with_requirepass() {
    let s = TestServer::start(&["--requirepass", "s3cret"]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET k v"), err("NOAUTH Authentication required."));
    assert_eq!(c.cmd("GET k"), err("NOAUTH Authentication required."));
    assert_eq!(c.cmd("AUTH wrong"), err(WRONGPASS));
    assert_eq!(c.cmd("AUTH default wrong"), err(WRONGPASS));
    assert_eq!(c.cmd("AUTH someone s3cret"), err(WRONGPASS));
    assert_eq!(c.cmd("PING"), err("NOAUTH Authentication required."));
    assert_eq!(c.cmd("AUTH a b c"), err("ERR syntax error"));
    assert_eq!(c.cmd("AUTH s3cret"), R::ok());
    assert_eq!(c.cmd("SET k v"), R::ok());
    // A failed AUTH does not log an authenticated connection out.
    assert_eq!(c.cmd("AUTH nope"), err(WRONGPASS));
    assert_eq!(c.cmd("GET k"), R::bulk("v"));

    let mut d = s.conn();
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(d.cmd("AUTH default s3cret"), R::ok());
    assert_eq!(d.cmd("GET k"), R::bulk("v"));
    // RESET logs out again when a password is required.
    assert_eq!(d.cmd("RESET"), R::Simple("RESET".into()));
    assert_eq!(d.cmd("GET k"), err("NOAUTH Authentication required."));
}

#[test]
fn auth_without_requirepass() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(
        c.cmd("AUTH x"),
        err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
    );
    // The default user has no password: any password is accepted for it.
    assert_eq!(c.cmd("AUTH default whatever"), R::ok());
    assert_eq!(c.cmd("AUTH other whatever"), err(WRONGPASS));
}

#[test]
fn hello_switches_protocol_and_authenticates() {
    let s = TestServer::start(&["--requirepass", "pw"]);
    let mut c = s.conn();
    assert_eq!(
        c.cmd("HELLO 3"),
        err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
    );
    assert_eq!(c.cmd("HELLO 3 AUTH default bad"), err(WRONGPASS));
    assert_eq!(
        c.cmd("HELLO 4"),
        err("NOPROTO unsupported protocol version")
    );
    assert_eq!(
        c.cmd("HELLO x"),
        err("ERR Protocol version is not an integer or out of range")
    );
    assert_eq!(
        c.cmd("HELLO 3 foo"),
        err("ERR Syntax error in HELLO option 'foo'")
    );
    let r = c.cmd("HELLO 3 AUTH default pw SETNAME conn1");
    let R::Map(pairs) = r else {
        panic!("HELLO 3 must answer a RESP3 map, got {r:?}")
    };
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| *key == R::bulk(k))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k} in HELLO reply"))
    };
    assert_eq!(get("server"), R::bulk("redis"));
    assert_eq!(get("version"), R::bulk("7.0.15"));
    assert_eq!(get("proto"), R::Int(3));
    assert!(matches!(get("id"), R::Int(n) if n > 0));
    assert_eq!(get("mode"), R::bulk("standalone"));
    assert_eq!(get("role"), R::bulk("master"));
    assert_eq!(get("modules"), R::Arr(vec![]));
    // RESP3 nulls from here on.
    assert_eq!(c.cmd("GET missing"), R::Nil);
    c.send(&[b"GET", b"missing"]);
    let mut raw = String::new();
    std::io::BufRead::read_line(&mut c.stream, &mut raw).expect("read");
    assert_eq!(raw, "_\r\n");
    assert_eq!(c.cmd("CLIENT GETNAME"), R::bulk("conn1"));
    // Back to RESP2: the map becomes a flat array.
    let r = c.cmd("HELLO 2");
    assert!(
        matches!(&r, R::Arr(v) if v.len() == 14 && v[5] == R::Int(2)),
        "{r:?}"
    );
    c.send(&[b"GET", b"missing"]);
    let mut raw = String::new();
    std::io::BufRead::read_line(&mut c.stream, &mut raw).expect("read");
    assert_eq!(raw, "$-1\r\n");
}

#[test]
fn hello_without_arguments_reports_current_protocol() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let r = c.cmd("HELLO");
    assert!(
        matches!(&r, R::Arr(v) if v[4] == R::bulk("proto") && v[5] == R::Int(2)),
        "{r:?}"
    );
    assert_eq!(
        c.cmd("HELLO 3 SETNAME a\tb").err_text(),
        "ERR Syntax error in HELLO option 'b'"
    );
    assert_eq!(
        c.cmd_args(&[b"HELLO", b"3", b"SETNAME", b"a b"]),
        err("ERR Client names cannot contain spaces, newlines or special characters.")
    );
}

#[test]
fn select_checks_range_and_isolates_databases() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET k db0"), R::ok());
    assert_eq!(c.cmd("SELECT 15"), R::ok());
    assert_eq!(c.cmd("GET k"), R::Nil);
    assert_eq!(c.cmd("SET k db15"), R::ok());
    assert_eq!(c.cmd("SELECT 16"), err("ERR DB index is out of range"));
    assert_eq!(c.cmd("SELECT -1"), err("ERR DB index is out of range"));
    assert_eq!(
        c.cmd("SELECT x"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.cmd("GET k"), R::bulk("db15"));
    assert_eq!(c.cmd("SELECT 0"), R::ok());
    assert_eq!(c.cmd("GET k"), R::bulk("db0"));
}

#[test]
fn select_honours_databases_directive() {
    let s = TestServer::start(&["--databases", "2"]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SELECT 1"), R::ok());
    assert_eq!(c.cmd("SELECT 2"), err("ERR DB index is out of range"));
}

#[test]
fn reset_restores_a_fresh_connection_state() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SELECT 3"), R::ok());
    assert_eq!(c.cmd("CLIENT SETNAME before"), R::ok());
    assert!(matches!(c.cmd("HELLO 3"), R::Map(_)));
    assert_eq!(c.cmd("RESET"), R::Simple("RESET".into()));
    assert_eq!(c.cmd("CLIENT GETNAME"), R::Nil);
    let info = match c.cmd("CLIENT INFO") {
        R::Bulk(b) => String::from_utf8(b).expect("utf8"),
        other => panic!("CLIENT INFO after RESET must be a RESP2 bulk: {other:?}"),
    };
    assert!(info.contains(" db=0 "), "{info}");
    assert!(info.contains(" resp=2"), "{info}");
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.trim_end()
        .split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

fn bulk_text(r: R) -> String {
    match r {
        R::Bulk(b) => String::from_utf8(b).expect("utf8"),
        other => panic!("expected bulk, got {other:?}"),
    }
}

#[test]
fn client_id_name_info_and_list() {
    let s = TestServer::start(&[]);
    let mut a = s.conn();
    let mut b = s.conn();
    let R::Int(ida) = a.cmd("CLIENT ID") else {
        panic!()
    };
    let R::Int(idb) = b.cmd("CLIENT ID") else {
        panic!()
    };
    assert_ne!(idb, ida);
    assert_eq!(a.cmd("CLIENT GETNAME"), R::Nil);
    assert_eq!(
        a.cmd_args(&[b"CLIENT", b"SETNAME", b"bad name"]),
        err("ERR Client names cannot contain spaces, newlines or special characters.")
    );
    assert_eq!(a.cmd("CLIENT SETNAME alpha"), R::ok());
    assert_eq!(a.cmd("CLIENT GETNAME"), R::bulk("alpha"));
    assert_eq!(
        a.cmd("CLIENT SETNAME"),
        err("ERR wrong number of arguments for 'client|setname' command")
    );
    assert_eq!(
        a.cmd("CLIENT FOO"),
        err("ERR unknown subcommand 'FOO'. Try CLIENT HELP.")
    );
    assert_eq!(b.cmd("SELECT 2"), R::ok());

    let info = bulk_text(a.cmd("CLIENT INFO"));
    assert!(info.ends_with('\n'));
    assert_eq!(field(&info, "id"), ida.to_string());
    assert_eq!(field(&info, "name"), "alpha");
    assert_eq!(field(&info, "cmd"), "client|info");
    assert_eq!(field(&info, "flags"), "N");
    assert_eq!(field(&info, "user"), "default");
    assert_eq!(field(&info, "resp"), "2");
    assert!(field(&info, "addr").starts_with("127.0.0.1:"));
    assert_eq!(field(&info, "laddr"), format!("127.0.0.1:{}", s.port));

    // The harness's readiness probe connection may still be closing: wait for it.
    let mut list = String::new();
    assert!(
        wait_until(Duration::from_secs(5), || {
            list = bulk_text(a.cmd("CLIENT LIST"));
            list.lines().count() == 2
        }),
        "{list}"
    );
    let lines: Vec<&str> = list.lines().collect();
    let names: Vec<&str> = [
        "id",
        "addr",
        "laddr",
        "fd",
        "name",
        "age",
        "idle",
        "flags",
        "db",
        "sub",
        "psub",
        "ssub",
        "multi",
        "qbuf",
        "qbuf-free",
        "argv-mem",
        "multi-mem",
        "rbs",
        "rbp",
        "obl",
        "oll",
        "omem",
        "tot-mem",
        "events",
        "cmd",
        "user",
        "redir",
        "resp",
    ]
    .to_vec();
    for l in &lines {
        let got: Vec<&str> = l
            .split(' ')
            .map(|kv| kv.split_once('=').expect("k=v").0)
            .collect();
        assert_eq!(got, names, "field order of {l}");
    }
    let bline = lines
        .iter()
        .find(|l| field(l, "id") == idb.to_string())
        .expect("b listed");
    assert_eq!(field(bline, "db"), "2");
    assert_eq!(field(bline, "cmd"), "select");
    assert_eq!(b.cmd("CLIENT GETNAME"), R::Nil);
    let list = bulk_text(a.cmd("CLIENT LIST"));
    let bline = list
        .lines()
        .find(|l| field(l, "id") == idb.to_string())
        .expect("b listed");
    assert_eq!(field(bline, "cmd"), "client|getname");

    let only_b = bulk_text(a.cmd(&format!("CLIENT LIST ID {idb}")));
    assert_eq!(only_b.lines().count(), 1);
    assert_eq!(a.cmd("CLIENT LIST ID x"), err("ERR Invalid client ID"));
    assert_eq!(
        a.cmd("CLIENT LIST TYPE foo"),
        err("ERR Unknown client type 'foo'")
    );
    assert_eq!(
        bulk_text(a.cmd("CLIENT LIST TYPE normal")).lines().count(),
        2
    );
    assert_eq!(bulk_text(a.cmd("CLIENT LIST TYPE pubsub")), "");
    assert_eq!(a.cmd("CLIENT LIST foo"), err("ERR syntax error"));
}

#[test]
fn client_kill_closes_another_connection() {
    let s = TestServer::start(&[]);
    let mut killer = s.conn();
    let mut victim = s.conn();
    let mut victim2 = s.conn();
    let R::Int(vid) = victim.cmd("CLIENT ID") else {
        panic!()
    };
    let info = bulk_text(victim2.cmd("CLIENT INFO"));
    let v2addr = field(&info, "addr").to_string();

    assert_eq!(
        killer.cmd("CLIENT KILL 1.2.3.4:5"),
        err("ERR No such client")
    );
    assert_eq!(
        killer.cmd("CLIENT KILL ID x"),
        err("ERR client-id should be greater than 0")
    );
    assert_eq!(
        killer.cmd("CLIENT KILL TYPE foo"),
        err("ERR Unknown client type 'foo'")
    );
    assert_eq!(killer.cmd("CLIENT KILL SKIPME x"), err("ERR syntax error"));
    assert_eq!(killer.cmd("CLIENT KILL ID 1 ADDR"), err("ERR syntax error"));
    assert_eq!(
        killer.cmd("CLIENT KILL USER nobody"),
        err("ERR No such user 'nobody'")
    );
    assert_eq!(killer.cmd("CLIENT KILL ID 99999"), R::Int(0));

    assert_eq!(killer.cmd(&format!("CLIENT KILL ID {vid}")), R::Int(1));
    assert!(victim.is_closed());
    // Old form by address.
    assert_eq!(killer.cmd(&format!("CLIENT KILL {v2addr}")), R::ok());
    assert!(victim2.is_closed());
    assert_eq!(killer.cmd("PING"), R::Simple("PONG".into()));
    // SKIPME yes (the default) spares the caller; TYPE normal hits everyone else.
    let mut other = s.conn();
    assert_eq!(other.cmd("PING"), R::Simple("PONG".into()));
    assert!(wait_until(Duration::from_secs(5), || {
        bulk_text(killer.cmd("CLIENT LIST")).lines().count() == 2
    }));
    assert_eq!(killer.cmd("CLIENT KILL TYPE normal"), R::Int(1));
    assert!(other.is_closed());
    assert_eq!(killer.cmd("PING"), R::Simple("PONG".into()));
    // SKIPME no includes the caller, which is closed after the reply.
    assert_eq!(killer.cmd("CLIENT KILL TYPE normal SKIPME no"), R::Int(1));
    assert!(killer.is_closed());
    let mut fresh = s.conn();
    assert!(wait_until(Duration::from_secs(5), || {
        bulk_text(fresh.cmd("CLIENT LIST")).lines().count() == 1
    }));
}

#[test]
fn client_reply_off_skip_on() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.send(&[b"CLIENT", b"REPLY", b"OFF"]);
    c.send(&[b"SET", b"a", b"1"]);
    c.send(&[b"CLIENT", b"REPLY", b"ON"]);
    assert_eq!(c.read(), R::ok());
    c.send(&[b"CLIENT", b"REPLY", b"SKIP"]);
    c.send(&[b"GET", b"a"]);
    c.send(&[b"ECHO", b"after"]);
    assert_eq!(c.read(), R::bulk("after"));
    assert_eq!(c.cmd("GET a"), R::bulk("1"));
    assert_eq!(c.cmd("CLIENT REPLY maybe"), err("ERR syntax error"));
}

#[test]
fn client_misc_subcommands() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("CLIENT NO-EVICT on"), R::ok());
    assert_eq!(c.cmd("CLIENT NO-EVICT off"), R::ok());
    assert_eq!(c.cmd("CLIENT NO-EVICT maybe"), err("ERR syntax error"));
    assert_eq!(
        c.cmd("CLIENT PAUSE x"),
        err("ERR timeout is not an integer or out of range")
    );
    assert_eq!(
        c.cmd("CLIENT PAUSE 10 foo"),
        err("ERR CLIENT PAUSE mode must be WRITE or ALL")
    );
    assert_eq!(c.cmd("CLIENT PAUSE 0 WRITE"), R::ok());
    assert_eq!(c.cmd("CLIENT UNPAUSE"), R::ok());
    assert_eq!(c.cmd("SET after-pause 1"), R::ok());
    assert_eq!(c.cmd("CLIENT SETINFO LIB-NAME mylib"), R::ok());
    assert_eq!(c.cmd("CLIENT SETINFO LIB-VER 1.2"), R::ok());
    assert_eq!(
        c.cmd("CLIENT SETINFO foo x"),
        err("ERR Unrecognized option 'foo'")
    );
    assert_eq!(c.cmd("CLIENT UNBLOCK 12345"), R::Int(0));
    assert_eq!(c.cmd("CLIENT GETREDIR"), R::Int(-1));
    match c.cmd("CLIENT HELP") {
        R::Arr(lines) => {
            assert!(lines.len() > 10);
            assert!(lines
                .iter()
                .any(|l| matches!(l, R::Simple(s) if s.starts_with("KILL"))));
        }
        other => panic!("{other:?}"),
    }
}

/// True if a reply arrives within `wait`.
fn replied_within(c: &mut Conn, wait: Duration) -> bool {
    use std::io::BufRead;
    c.stream
        .get_ref()
        .set_read_timeout(Some(wait))
        .expect("timeout");
    let ready = matches!(c.stream.fill_buf(), Ok(b) if !b.is_empty());
    c.stream
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    ready
}

#[test]
fn client_pause_write_holds_writes_until_unpause() {
    let s = TestServer::start(&[]);
    let mut admin = s.conn();
    let mut c = s.conn();
    assert_eq!(c.cmd("SET k before"), R::ok());
    assert_eq!(admin.cmd("CLIENT PAUSE 100000 WRITE"), R::ok());
    // Reads go through; a write waits, and so does what is pipelined after it.
    assert_eq!(c.cmd("GET k"), R::bulk("before"));
    c.send(&[b"GET", b"k"]);
    c.send(&[b"SET", b"k", b"after"]);
    c.send(&[b"GET", b"k"]);
    assert_eq!(
        c.read(),
        R::bulk("before"),
        "the read before the write is answered"
    );
    assert!(!replied_within(&mut c, Duration::from_millis(300)));
    let mut other = s.conn();
    assert_eq!(other.cmd("GET k"), R::bulk("before"));
    assert_eq!(admin.cmd("CLIENT UNPAUSE"), R::ok());
    assert_eq!(c.read(), R::ok());
    assert_eq!(c.read(), R::bulk("after"));
}

#[test]
fn client_pause_all_ends_after_its_timeout() {
    let s = TestServer::start(&[]);
    let mut admin = s.conn();
    let mut c = s.conn();
    assert_eq!(admin.cmd("CLIENT PAUSE 400 ALL"), R::ok());
    let t = std::time::Instant::now();
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(c.cmd("SET k v"), R::ok());
}

#[test]
fn client_kill_wakes_a_client_blocked_forever() {
    // A connection waits in more than one place (its loop, a blocking command):
    // CLIENT KILL must reach the one it is in, not a waiter registered earlier.
    let s = TestServer::start(&[]);
    let mut killer = s.conn();
    let mut victim = s.conn();
    let R::Int(vid) = victim.cmd("CLIENT ID") else {
        panic!("CLIENT ID")
    };
    assert_eq!(victim.cmd("PING"), R::Simple("PONG".into()));
    victim.send(&[b"BLPOP", b"nosuchlist", b"0"]);
    let blocked = |c: &mut Conn| {
        let info = bulk_text(c.cmd("INFO clients"));
        info.contains("blocked_clients:1")
    };
    assert!(wait_until(Duration::from_secs(10), || blocked(&mut killer)));
    assert_eq!(killer.cmd(&format!("CLIENT KILL ID {vid}")), R::Int(1));
    // EOF, not a read timeout.
    victim
        .stream
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    assert!(
        matches!(std::io::Read::read(&mut victim.stream, &mut byte), Ok(0)),
        "the killed client's connection was not closed"
    );
    assert!(wait_until(Duration::from_secs(10), || !blocked(
        &mut killer
    )));
}
