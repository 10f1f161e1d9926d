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
