//! CLIENT PAUSE compared with Redis 7.0.15: which commands wait (scripts and functions
//! by their declared flags, MAY_REPLICATE commands, EXEC by its queue), that a command
//! refused by a check is answered at once, that a waiting client counts as blocked,
//! and that lazy expiry leaves the dataset alone while paused.
mod common;
use common::*;
use std::time::Duration;

/// How long a command that does not wait surely takes to answer on a loaded machine;
/// one that waits gets no answer in that time.
const ANSWER_WITHIN: Duration = Duration::from_millis(400);

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
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    ready
}

fn port_of(c: &Conn) -> u16 {
    c.stream.get_ref().peer_addr().expect("peer").port()
}

fn blocked_clients(c: &mut Conn) -> String {
    info_field(c, "clients", "blocked_clients").unwrap_or_default()
}

/// Under `CLIENT PAUSE <mode>`, sends `setup` (answers read) then `args` on a fresh
/// connection; returns whether `args` waited, then its reply once the pause ended.
fn waits_under_pause(
    admin: &mut Conn,
    mode: &str,
    setup: &[&[&[u8]]],
    args: &[&[u8]],
) -> (bool, R) {
    let mut c = Conn::connect(port_of(admin));
    for s in setup {
        c.cmd_args(s);
    }
    assert_eq!(admin.cmd(&format!("CLIENT PAUSE 100000 {mode}")), R::ok());
    c.send(args);
    let waited = !replied_within(&mut c, ANSWER_WITHIN);
    assert_eq!(admin.cmd("CLIENT UNPAUSE"), R::ok());
    (waited, c.read())
}

#[test]
fn a_client_waiting_for_a_pause_counts_as_blocked_with_flag_b() {
    let mut p = Pair::start();
    for admin in [&mut p.a, &mut p.b] {
        let mut w = Conn::connect(port_of(admin));
        let R::Int(id) = w.cmd("CLIENT ID") else {
            panic!("CLIENT ID")
        };
        assert_eq!(blocked_clients(admin), "0");
        assert_eq!(admin.cmd("CLIENT PAUSE 100000 WRITE"), R::ok());
        w.send(&[b"SET", b"k", b"v"]);
        assert!(
            wait_until(Duration::from_secs(10), || blocked_clients(admin) == "1"),
            "port {}: the paused SET is not counted in blocked_clients",
            port_of(admin)
        );
        let R::Bulk(line) = admin.cmd(&format!("CLIENT LIST ID {id}")) else {
            panic!("CLIENT LIST")
        };
        let line = String::from_utf8_lossy(&line).into_owned();
        assert!(
            line.contains(" flags=b ") && line.contains(" cmd=set "),
            "port {}: {line}",
            port_of(admin)
        );
        assert_eq!(admin.cmd("CLIENT UNPAUSE"), R::ok());
        assert_eq!(w.read(), R::ok());
        assert!(wait_until(Duration::from_secs(10), || blocked_clients(
            admin
        ) == "0"));
    }
}

#[test]
fn refused_commands_are_answered_at_once_during_a_pause() {
    let mut p = Pair::start();
    p.same_words("CLIENT PAUSE 100000 WRITE");
    // Each is refused by a check that comes before the pause in Redis.
    p.same_words("SET k");
    p.same_words("NOSUCHCOMMAND k v");
    p.same_words("CONFIG SET");
    p.same_words("EVAL");
    p.same_words("CLIENT UNPAUSE");
    // An ALL pause holds CLIENT UNPAUSE too: only its timeout ends it.
    p.same_words("CLIENT PAUSE 3000 ALL");
    let started = std::time::Instant::now();
    p.same_words("SET k");
    p.same_words("GET");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    p.same_words("PING");
    assert!(
        started.elapsed() >= Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn scripts_functions_and_may_replicate_commands_wait_as_in_redis() {
    let mut p = Pair::start();
    let lib = "#!lua name=pauselib\n\
               redis.register_function{function_name='ro', callback=function() return 'ro' end, flags={'no-writes'}}\n\
               redis.register_function('rw', function() return 'rw' end)";
    p.same(&[b"FUNCTION", b"LOAD", lib.as_bytes()]);
    p.same_words("PFADD hll a b c");
    let no_writes: &[u8] = b"#!lua flags=no-writes\nreturn 'nw'";
    let shebang_writes: &[u8] = b"#!lua\nreturn 'sw'";
    let sha_nw = p.same(&[
        b"SCRIPT",
        b"LOAD",
        b"#!lua flags=no-writes\nreturn 'cached'",
    ]);
    let R::Bulk(sha_nw) = sha_nw else {
        panic!("SCRIPT LOAD")
    };
    let cases: Vec<(&str, Vec<&[u8]>)> = vec![
        ("pfcount", vec![b"PFCOUNT", b"hll"]),
        ("publish", vec![b"PUBLISH", b"ch", b"m"]),
        ("eval without shebang", vec![b"EVAL", b"return 1", b"0"]),
        ("eval no-writes", vec![b"EVAL", no_writes, b"0"]),
        (
            "eval shebang without flags",
            vec![b"EVAL", shebang_writes, b"0"],
        ),
        ("eval_ro", vec![b"EVAL_RO", b"return 2", b"0"]),
        ("evalsha no-writes", vec![b"EVALSHA", &sha_nw, b"0"]),
        (
            "evalsha unknown",
            vec![
                b"EVALSHA",
                b"ffffffffffffffffffffffffffffffffffffffff",
                b"0",
            ],
        ),
        ("fcall no-writes", vec![b"FCALL", b"ro", b"0"]),
        ("fcall writes", vec![b"FCALL", b"rw", b"0"]),
        ("fcall_ro", vec![b"FCALL_RO", b"ro", b"0"]),
        ("get", vec![b"GET", b"k"]),
    ];
    for (what, args) in &cases {
        let ours = waits_under_pause(&mut p.a, "WRITE", &[], args);
        let theirs = waits_under_pause(&mut p.b, "WRITE", &[], args);
        assert_eq!(
            ours, theirs,
            "{what}: (waited, reply) differs from Redis 7.0.15"
        );
    }
    // EXEC waits when a queued command would; MULTI queueing itself waits for a write.
    let multi: &[&[u8]] = &[b"MULTI"];
    let exec: &[&[u8]] = &[b"EXEC"];
    for queued in [
        &[b"EVAL".as_slice(), no_writes, b"0"][..],
        &[b"EVAL", shebang_writes, b"0"],
        &[b"EVAL", b"return 3", b"0"],
        &[b"PFCOUNT", b"hll"],
        &[b"GET", b"k"],
    ] {
        let ours = waits_under_pause(&mut p.a, "WRITE", &[multi, queued], exec);
        let theirs = waits_under_pause(&mut p.b, "WRITE", &[multi, queued], exec);
        assert_eq!(ours, theirs, "EXEC of {queued:?}");
        let ours = waits_under_pause(&mut p.a, "WRITE", &[multi], queued);
        let theirs = waits_under_pause(&mut p.b, "WRITE", &[multi], queued);
        assert_eq!(ours, theirs, "queueing {queued:?}");
    }
}

#[test]
fn read_only_scripts_may_not_call_pfcount() {
    let mut p = Pair::start();
    p.same_words("PFADD hll a");
    p.same(&[b"EVAL_RO", b"return redis.call('pfcount','hll')", b"0"]);
    p.same(&[
        b"EVAL",
        b"#!lua flags=no-writes\nreturn redis.call('pfcount','hll')",
        b"0",
    ]);
    p.same(&[b"EVAL", b"return redis.call('pfcount','hll')", b"0"]);
}

#[test]
fn lazy_expiry_leaves_keys_alone_until_the_pause_ends() {
    let mut p = Pair::start();
    for c in [&mut p.a, &mut p.b] {
        // The pause starts as the transaction ends: the keys are set before it.
        assert_eq!(c.cmd("MULTI"), R::ok());
        c.cmd("SET a 1 PX 10");
        c.cmd("SET b 2 PX 10");
        c.cmd("CLIENT PAUSE 100000 WRITE");
        assert_eq!(c.cmd("EXEC"), R::Arr(vec![R::ok(), R::ok(), R::ok()]));
        std::thread::sleep(Duration::from_millis(60));
    }
    p.same_words("GET a");
    p.same_words("EXISTS a b");
    let ours = info_field(&mut p.a, "stats", "expired_keys");
    let theirs = info_field(&mut p.b, "stats", "expired_keys");
    assert_eq!((ours.as_deref(), theirs.as_deref()), (Some("0"), Some("0")));
    p.same_words("CLIENT UNPAUSE");
    p.same_words("GET a");
    p.same_words("GET b");
    let ours = info_field(&mut p.a, "stats", "expired_keys");
    let theirs = info_field(&mut p.b, "stats", "expired_keys");
    assert_eq!((ours.as_deref(), theirs.as_deref()), (Some("2"), Some("2")));
}
