//! Black-box tests of MULTI / EXEC / DISCARD / WATCH / UNWATCH over TCP.
mod common;
mod reference;

use common::*;

fn queued() -> R {
    R::Simple("QUEUED".into())
}

#[test]
fn exec_runs_the_queue_and_reports_errors_per_command() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("MULTI"), R::ok());
    assert_eq!(c.cmd("SET s v"), queued());
    assert_eq!(c.cmd("ZADD s 1 a"), queued());
    assert_eq!(c.cmd("ZADD z 1 a"), queued());
    assert_eq!(c.cmd("ZINCRBY z 2 a"), queued());
    assert_eq!(c.cmd("GET s"), queued());
    assert_eq!(
        c.cmd("EXEC"),
        R::Arr(vec![
            R::ok(),
            err("WRONGTYPE Operation against a key holding the wrong kind of value"),
            R::Int(1),
            R::bulk("3"),
            R::bulk("v"),
        ])
    );
    assert_eq!(c.cmd("MULTI"), R::ok());
    assert_eq!(c.cmd("EXEC"), R::Arr(vec![]));
}

#[test]
fn state_errors_have_redis_texts_and_do_not_abort() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("EXEC"), err("ERR EXEC without MULTI"));
    assert_eq!(c.cmd("DISCARD"), err("ERR DISCARD without MULTI"));
    assert_eq!(c.cmd("MULTI"), R::ok());
    assert_eq!(c.cmd("MULTI"), err("ERR MULTI calls can not be nested"));
    assert_eq!(
        c.cmd("WATCH x"),
        err("ERR WATCH inside MULTI is not allowed")
    );
    assert_eq!(c.cmd("SET a 1"), queued());
    assert_eq!(c.cmd("UNWATCH"), queued());
    assert_eq!(c.cmd("EXEC"), R::Arr(vec![R::ok(), R::ok()]));
    assert_eq!(c.cmd("GET a"), R::bulk("1"));
}

#[test]
fn queueing_errors_abort_with_execabort() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("MULTI"), R::ok());
    assert_eq!(c.cmd("SET a 2"), queued());
    assert_eq!(
        c.cmd("NOSUCHCOMMAND x"),
        err("ERR unknown command 'NOSUCHCOMMAND', with args beginning with: 'x' ")
    );
    assert_eq!(
        c.cmd("EXEC"),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(c.cmd("GET a"), R::Nil, "nothing of the aborted queue ran");

    assert_eq!(c.cmd("MULTI"), R::ok());
    assert_eq!(
        c.cmd("ZADD z"),
        err("ERR wrong number of arguments for 'zadd' command")
    );
    assert_eq!(
        c.cmd("EXEC"),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    // The abort also ended MULTI.
    assert_eq!(c.cmd("EXEC"), err("ERR EXEC without MULTI"));
}

#[test]
fn discard_drops_the_queue() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("MULTI");
    c.cmd("SET a 1");
    assert_eq!(c.cmd("DISCARD"), R::ok());
    assert_eq!(c.cmd("GET a"), R::Nil);
    assert_eq!(c.cmd("SET a 1"), R::ok(), "no longer queueing");
}

#[test]
fn watch_aborts_when_another_connection_writes_the_key() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let mut other = s.conn();
    c.cmd("SET k 1");
    assert_eq!(c.cmd("WATCH k"), R::ok());
    assert_eq!(other.cmd("SET k 2"), R::ok());
    c.cmd("MULTI");
    c.cmd("SET k 3");
    assert_eq!(c.cmd("EXEC"), R::NilArr);
    assert_eq!(c.cmd("GET k"), R::bulk("2"));

    // The failed EXEC released the watch: the next transaction runs.
    c.cmd("MULTI");
    c.cmd("SET k 3");
    assert_eq!(c.cmd("EXEC"), R::Arr(vec![R::ok()]));

    // A watched key that did not exist and gets created also aborts.
    assert_eq!(c.cmd("WATCH fresh"), R::ok());
    other.cmd("ZADD fresh 1 a");
    c.cmd("MULTI");
    c.cmd("GET k");
    assert_eq!(c.cmd("EXEC"), R::NilArr);

    // Writes to other keys do not.
    c.cmd("WATCH k");
    other.cmd("SET unrelated 1");
    c.cmd("MULTI");
    c.cmd("GET k");
    assert_eq!(c.cmd("EXEC"), R::Arr(vec![R::bulk("3")]));
}

#[test]
fn unwatch_and_discard_release_watches_and_own_writes_do_not_abort() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let mut other = s.conn();
    c.cmd("WATCH k");
    assert_eq!(c.cmd("UNWATCH"), R::ok());
    other.cmd("SET k 1");
    c.cmd("MULTI");
    c.cmd("GET k");
    assert_eq!(c.cmd("EXEC"), R::Arr(vec![R::bulk("1")]));

    c.cmd("WATCH k");
    c.cmd("MULTI");
    assert_eq!(c.cmd("DISCARD"), R::ok());
    other.cmd("SET k 2");
    c.cmd("MULTI");
    c.cmd("GET k");
    assert_eq!(c.cmd("EXEC"), R::Arr(vec![R::bulk("2")]));

    // The transaction's own write to a watched key is not a conflict, and leaves
    // no stale dirty flag behind for the next transaction.
    c.cmd("WATCH k");
    c.cmd("MULTI");
    c.cmd("SET k 3");
    assert_eq!(c.cmd("EXEC"), R::Arr(vec![R::ok()]));
    c.cmd("MULTI");
    c.cmd("GET k");
    assert_eq!(c.cmd("EXEC"), R::Arr(vec![R::bulk("3")]));

    // A client's own write between WATCH and EXEC does abort (as in Redis).
    c.cmd("WATCH k");
    c.cmd("SET k 4");
    c.cmd("MULTI");
    c.cmd("GET k");
    assert_eq!(c.cmd("EXEC"), R::NilArr);
}

#[test]
fn pubsub_and_blocking_commands_inside_exec() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("MULTI");
    assert_eq!(c.cmd("BZPOPMAX nokey 0"), queued());
    assert_eq!(c.cmd("SUBSCRIBE ch"), queued());
    assert_eq!(
        c.cmd("EXEC"),
        R::Arr(vec![
            R::NilArr,
            R::Arr(vec![R::bulk("subscribe"), R::bulk("ch"), R::Int(1)])
        ])
    );
    let mut p = s.conn();
    assert_eq!(p.cmd("PUBLISH ch hi"), R::Int(1));
    assert_eq!(
        c.read(),
        R::Arr(vec![R::bulk("message"), R::bulk("ch"), R::bulk("hi")])
    );
}

#[test]
fn replies_match_real_redis() {
    let Some(real) = reference::RealRedis::start() else {
        return;
    };
    let s = TestServer::start(&[]);
    let script = [
        "EXEC",
        "DISCARD",
        "UNWATCH",
        "WATCH",
        "UNWATCH x",
        "MULTI",
        "MULTI",
        "WATCH k",
        "SET k v",
        "ZADD k 1 a",
        "ZADD z 1 a",
        "ZPOPMIN z",
        "EXEC",
        "MULTI",
        "SET a",
        "SET a b",
        "EXEC",
        "MULTI",
        "NOSUCH",
        "EXEC",
        "WATCH k z",
        "SET k v2",
        "MULTI",
        "GET k",
        "EXEC",
        "MULTI",
        "GET k",
        "DISCARD",
        "GET k",
    ];
    reference::compare(&mut s.conn(), &mut real.conn(), &script);
}

#[test]
fn redis_crate_atomic_pipeline() {
    let s = TestServer::start(&[]);
    let client = s.client();
    let mut con = client.get_connection().expect("connect");
    let (added, score, members): (i64, f64, Vec<String>) = redis::pipe()
        .atomic()
        .cmd("ZADD")
        .arg("t")
        .arg(1)
        .arg("x")
        .arg(2)
        .arg("y")
        .cmd("ZINCRBY")
        .arg("t")
        .arg(5)
        .arg("x")
        .cmd("ZRANGE")
        .arg("t")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .expect("transaction");
    assert_eq!(added, 2);
    assert_eq!(score, 6.0);
    assert_eq!(members, vec!["y".to_string(), "x".to_string()]);
}

/// Found by mixed_vs_redis.rs: a container command with a subcommand Redis does not know
/// is refused when queued (Redis finds no command), so the EXEC that follows aborts.
#[test]
fn an_unknown_subcommand_is_refused_at_queue_time_like_redis() {
    let mut p = Pair::start();
    p.same_words("MULTI");
    assert_eq!(
        p.same_words("OBJECT h"),
        err("ERR unknown subcommand 'h'. Try OBJECT HELP.")
    );
    p.same_words("SET k v");
    assert_eq!(
        p.same_words("EXEC"),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(p.same_words("EXISTS k"), R::Int(0));
    for container in [
        "CLIENT", "CONFIG", "XINFO", "XGROUP", "SCRIPT", "MEMORY", "PUBSUB",
    ] {
        p.same_words(&format!("{container} nosuch"));
    }
}

/// The port of the server a connection talks to.
fn port_of(c: &Conn) -> u16 {
    c.stream.get_ref().peer_addr().expect("peer").port()
}

/// EXEC is checked against the server as it is when EXEC arrives, as the commands
/// it would run: a node that turned into a stale replica (replica-serve-stale-data
/// no), ran out of memory, or became a read-only replica after the commands were
/// queued aborts the transaction with the refusal in the EXECABORT text.
#[test]
fn exec_is_refused_when_the_server_changed_after_queueing_like_redis() {
    let mut p = Pair::start();
    let nobody = free_port();
    let (mut other_a, mut other_b) = (Conn::connect(port_of(&p.a)), Conn::connect(port_of(&p.b)));
    // The second connection of each server, which changes it under the first.
    let mut both = |line: &str| {
        let x = other_a.cmd(line);
        assert_eq!(x, other_b.cmd(line), "{line}");
    };
    p.same_words("SET xx 1");
    p.same_words("CONFIG SET replica-serve-stale-data no");
    for queued in ["GET xx", "PING"] {
        p.same_words("MULTI");
        p.same_words(queued);
        both(&format!("REPLICAOF 127.0.0.1 {nobody}"));
        let r = p.same_words("EXEC");
        assert!(
            matches!(&r, R::Err(e) if e.starts_with("EXECABORT") && e.contains("MASTERDOWN")),
            "{r:?}"
        );
        both("REPLICAOF NO ONE");
    }
    // Queued while a master, run while a stale replica: only STALE commands may.
    p.same_words("MULTI");
    p.same_words("INFO keyspace");
    both(&format!("REPLICAOF 127.0.0.1 {nobody}"));
    p.same_words("EXEC");
    both("REPLICAOF NO ONE");
    p.same_words("CONFIG SET replica-serve-stale-data yes");

    // A write queued on a master, EXEC on a read-only replica.
    p.same_words("MULTI");
    p.same_words("SET x 1");
    both(&format!("REPLICAOF 127.0.0.1 {nobody}"));
    let r = p.same_words("EXEC");
    assert!(matches!(&r, R::Err(e) if e.contains("READONLY")), "{r:?}");
    both("REPLICAOF NO ONE");

    // Out of memory after queueing: a queued command that may use memory aborts.
    p.same_words("MULTI");
    p.same_words("SET x 1");
    p.same_words("GET x");
    both("CONFIG SET maxmemory 1");
    let r = p.same_words("EXEC");
    assert!(
        matches!(&r, R::Err(e) if e.starts_with("EXECABORT") && e.contains("OOM")),
        "{r:?}"
    );
    p.same_words("MULTI");
    p.same_words("GET xx");
    p.same_words("EXEC");
    both("CONFIG SET maxmemory 0");
}

/// SWAPDB that brings a key already past its TTL (active expiry off) where a WATCHed
/// key was missing changes nothing logically: EXEC runs, as in Redis 7.0.
#[test]
fn swapdb_bringing_an_expired_key_in_place_of_a_missing_watched_key_lets_exec_run() {
    let mut p = Pair::start_with(&["--enable-debug-command", "yes"]);
    for both_stale in [false, true] {
        p.same_words("FLUSHALL");
        p.same_words("DEBUG SET-ACTIVE-EXPIRE 0");
        if both_stale {
            p.same_words("SELECT 1");
            p.same_words("SET x foo PX 1");
        }
        p.same_words("SELECT 0");
        p.same_words("SET x bar PX 1");
        std::thread::sleep(std::time::Duration::from_millis(5));
        p.same_words("SELECT 1");
        p.same_words("WATCH x");
        p.same_words("SWAPDB 0 1");
        p.same_words("MULTI");
        p.same_words("PING");
        assert_eq!(
            p.same_words("EXEC"),
            R::Arr(vec![R::Simple("PONG".into())]),
            "both stale: {both_stale}"
        );
        p.same_words("DEBUG SET-ACTIVE-EXPIRE 1");
    }
    // A live key swapped in still aborts.
    p.same_words("SELECT 0");
    p.same_words("SET x bar");
    p.same_words("SELECT 1");
    p.same_words("WATCH x");
    p.same_words("SWAPDB 0 1");
    p.same_words("MULTI");
    p.same_words("PING");
    assert_eq!(p.same_words("EXEC"), R::NilArr);
}
