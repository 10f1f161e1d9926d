//! The event-loop threads (`server/src/net/evloop.rs`, `tandem-event-loop`): what a
//! connection served by a loop must keep of the task loop's behaviour. The rest of
//! the suite runs on the loops too (they are the default); these tests aim at the
//! loop's own seams: bells rung from the same loop and from another one, the hand-over
//! of a connection that must wait, a busy script on the loop thread, idle clients,
//! and the task path kept behind `tandem-event-loop no`.
mod common;
use common::*;
use std::time::{Duration, Instant};

/// Subscriber and publisher on one loop: the message is pushed without the
/// subscriber sending anything (the bell rung by the loop itself, no eventfd).
#[test]
fn a_message_published_on_the_same_loop_reaches_an_idle_subscriber() {
    let s = TestServer::start(&[]);
    let mut sub = s.conn();
    assert_eq!(
        sub.cmd("SUBSCRIBE ch"),
        R::Arr(vec![b("subscribe"), b("ch"), R::Int(1)])
    );
    let mut publ = s.conn();
    let started = Instant::now();
    assert_eq!(publ.cmd("PUBLISH ch hello"), R::Int(1));
    assert_eq!(sub.read(), arr(&["message", "ch", "hello"]));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// With `io-threads 2` connections alternate between two loops: messages, kills and
/// counts cross between them.
#[test]
fn two_loops_serve_clients_that_talk_to_each_other() {
    let s = TestServer::start(&["--io-threads", "2"]);
    let mut sub = s.conn();
    sub.cmd("SUBSCRIBE ch");
    let mut publ = s.conn();
    assert_eq!(publ.cmd("PUBLISH ch x"), R::Int(1));
    assert_eq!(sub.read(), arr(&["message", "ch", "x"]));

    // Twenty clients, pipelines of 500 INCRs each, on both loops at once.
    let port = s.port;
    let workers: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Conn::connect(port);
                let mut batch = Vec::new();
                for _ in 0..500 {
                    batch.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$3\r\nctr\r\n");
                }
                c.send_raw(&batch);
                let mut last = 0;
                for _ in 0..500 {
                    let R::Int(n) = c.read() else {
                        panic!("not an integer")
                    };
                    assert!(n > last, "{n} after {last}");
                    last = n;
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    assert_eq!(publ.cmd("GET ctr"), b("10000"));

    // A client of the other loop is killed from this one.
    let mut victim = s.conn();
    let R::Int(id) = victim.cmd("CLIENT ID") else {
        panic!("no id")
    };
    assert_eq!(publ.cmd(&format!("CLIENT KILL ID {id}")), R::Int(1));
    assert!(wait_until(Duration::from_secs(5), || {
        info_field(&mut publ, "clients", "connected_clients").as_deref() == Some("2")
    }));
    assert!(victim.is_closed());
    assert_eq!(publ.cmd("PING"), R::Simple("PONG".into()));
}

/// A blocking command in the middle of a pipeline: the connection is handed to a
/// task with the replies before it; the pipeline's rest runs after the wake-up, in
/// order, and the connection goes on serving.
#[test]
fn a_pipeline_with_a_blocking_command_keeps_its_order_after_the_hand_over() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.send_raw(
        b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n",
    );
    assert_eq!(c.read(), R::ok());
    let mut other = s.conn();
    assert!(wait_until(Duration::from_secs(5), || {
        info_field(&mut other, "clients", "blocked_clients").as_deref() == Some("1")
    }));
    assert_eq!(other.cmd("LPUSH q item"), R::Int(1));
    assert_eq!(c.read(), arr(&["q", "item"]));
    assert_eq!(c.read(), b("1"));
    assert_eq!(c.cmd("INCR a"), R::Int(2));
    // MONITOR is a hand-over too.
    let mut mon = s.conn();
    assert_eq!(mon.cmd("MONITOR"), R::ok());
    other.cmd("SET seen yes");
    let line = loop {
        let R::Simple(l) = mon.read() else {
            panic!("not a line")
        };
        if l.contains("seen") {
            break l;
        }
    };
    assert!(line.contains("\"SET\" \"seen\" \"yes\""), "{line}");
}

/// A script past busy-reply-threshold on the loop thread: clients connected before
/// it and a client that connects meanwhile are answered BUSY by the loop (from the
/// script's hook), and SCRIPT KILL from a new connection ends it.
#[test]
fn a_busy_script_on_the_loop_thread_lets_old_and_new_clients_in() {
    let s = TestServer::start(&["--busy-reply-threshold", "100"]);
    let mut before = s.conn();
    assert_eq!(before.cmd("PING"), R::Simple("PONG".into()));
    let mut leaver = s.conn();
    assert_eq!(leaver.cmd("PING"), R::Simple("PONG".into()));
    let mut runner = s.conn();
    runner.send(&[b"EVAL", b"while true do end", b"0"]);
    assert!(wait_until(Duration::from_secs(5), || {
        matches!(before.cmd("PING"), R::Err(e) if e.starts_with("BUSY"))
    }));
    let mut late = s.conn();
    assert!(late.cmd("GET k").err_text().starts_with("BUSY"));
    drop(leaver);
    let mut killer = s.conn();
    assert_eq!(killer.cmd("SCRIPT KILL"), R::ok());
    assert!(runner.read().err_text().contains("Script killed"));
    assert_eq!(before.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(late.cmd("SET k v"), R::ok());
    // A client that left while the script was busy is cleaned up after it.
    assert!(wait_until(Duration::from_secs(5), || {
        info_field(&mut killer, "clients", "connected_clients").as_deref() == Some("4")
    }));
}

/// `timeout`: an idle client of a loop is closed; a subscriber is not.
#[test]
fn idle_clients_of_a_loop_are_closed_after_timeout_but_subscribers_stay() {
    let s = TestServer::start(&[]);
    let mut admin = s.conn();
    assert_eq!(admin.cmd("CONFIG SET timeout 1"), R::ok());
    let mut idle = s.conn();
    assert_eq!(idle.cmd("PING"), R::Simple("PONG".into()));
    let mut sub = s.conn();
    sub.cmd("SUBSCRIBE ch");
    // Closed by the server: two clients left (this one, never idle for a second,
    // and the subscriber).
    assert!(wait_until(Duration::from_secs(5), || {
        info_field(&mut admin, "clients", "connected_clients").as_deref() == Some("2")
    }));
    assert!(idle.is_closed());
    assert_eq!(admin.cmd("CONFIG SET timeout 0"), R::ok());
    assert_eq!(admin.cmd("PUBLISH ch still"), R::Int(1));
    assert_eq!(sub.read(), arr(&["message", "ch", "still"]));
}

/// `tandem-event-loop no` keeps the task-per-connection path: the same requests get
/// the same replies.
#[test]
fn the_task_path_serves_the_same_with_the_event_loop_off() {
    let s = TestServer::start(&["--tandem-event-loop", "no"]);
    let mut c = s.conn();
    assert_eq!(
        c.cmd("CONFIG GET tandem-event-loop"),
        arr(&["tandem-event-loop", "no"])
    );
    c.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\n5\r\n*2\r\n$4\r\nINCR\r\n$1\r\nx\r\n");
    assert_eq!(c.read(), R::ok());
    assert_eq!(c.read(), R::Int(6));
    let on_server = TestServer::start(&[]);
    let mut on = on_server.conn();
    assert_eq!(
        on.cmd("CONFIG GET tandem-event-loop"),
        arr(&["tandem-event-loop", "yes"])
    );
    assert!(on
        .cmd("CONFIG SET tandem-event-loop no")
        .err_text()
        .contains("can't set immutable config"));
}
