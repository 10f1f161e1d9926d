//! Black-box smoke tests of the connection loop over TCP.
mod common;
use common::*;

#[test]
fn ping_set_get_over_tcp() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(c.cmd("SET k v"), R::ok());
    assert_eq!(c.cmd("GET k"), R::bulk("v"));
}

#[test]
fn pipelined_and_inline_requests_are_answered_in_order() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.send_raw(b"PING\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\nGET a\r\n");
    assert_eq!(c.read(), R::Simple("PONG".into()));
    assert_eq!(c.read(), R::ok());
    assert_eq!(c.read(), R::bulk("1"));
}

#[test]
fn protocol_error_closes_only_that_connection() {
    let s = TestServer::start(&[]);
    let mut good = s.conn();
    let mut bad = s.conn();
    bad.send_raw(b"*1\r\n+oops\r\n");
    assert_eq!(
        bad.read(),
        R::Err("ERR Protocol error: expected '$', got '+'".into())
    );
    assert!(bad.is_closed());
    assert_eq!(good.cmd("PING"), R::Simple("PONG".into()));
}

#[test]
fn unknown_command_error_names_command_and_args() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(
        c.cmd("FOO bar baz"),
        R::Err("ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' ".into())
    );
}

#[test]
fn oversized_bulk_header_is_refused_and_others_keep_being_served() {
    let s = TestServer::start(&["--proto-max-bulk-len", "1mb"]);
    let mut other = s.conn();
    assert_eq!(other.cmd("SET keep me"), R::ok());
    let mut bad = s.conn();
    // A bulk larger than proto-max-bulk-len is a protocol error, before any payload.
    bad.send_raw(b"*2\r\n$3\r\nGET\r\n$2000000\r\n");
    assert_eq!(
        bad.read(),
        R::Err("ERR Protocol error: invalid bulk length".into())
    );
    assert!(bad.is_closed());
    assert_eq!(other.cmd("GET keep"), R::bulk("me"));
}

#[test]
fn million_argument_header_waits_without_allocating_and_too_many_is_refused() {
    let s = TestServer::start(&[]);
    // A million-argument header alone is fine: the server simply waits for the
    // arguments.
    let mut other = s.conn();
    let used = |c: &mut Conn| -> i64 {
        let R::Bulk(info) = c.cmd("INFO memory") else {
            panic!("INFO memory")
        };
        let text = String::from_utf8_lossy(&info).to_string();
        text.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("used_memory")
    };
    let before = used(&mut other);
    let mut big = s.conn();
    big.send_raw(b"*1048576\r\n$4\r\nPING\r\n");
    assert_eq!(other.cmd("PING"), R::Simple("PONG".into()));
    // The declared count does not make the server reserve memory for it: a million
    // argument slots would be 32 MB.
    let after = used(&mut other);
    assert!(after - before < 8 * 1024 * 1024, "{before} -> {after}");
    // One more than the limit (Redis 7.0: INT_MAX, checked against redis-server
    // 7.0.15) is a protocol error that closes only that connection.
    let mut bad = s.conn();
    bad.send_raw(b"*2147483648\r\n");
    assert_eq!(
        bad.read(),
        R::Err("ERR Protocol error: invalid multibulk length".into())
    );
    assert!(bad.is_closed());
    assert_eq!(other.cmd("PING"), R::Simple("PONG".into()));
}
