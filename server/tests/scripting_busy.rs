//! A script past `busy-reply-threshold`, side by side with Redis 7.0.15: what other
//! clients get for each command (the `allow-busy` ones are served), transactions
//! and WATCH across the busy time, and SIGTERM while busy.
mod common;
use common::*;
use std::time::Duration;

const BUSY: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const WAIT: Duration = Duration::from_secs(10);

/// A Tandem and a Redis server with the same arguments, each with a busy script
/// started by its own connection.
struct BusyPair {
    ours: TestServer,
    theirs: RealRedis,
    _dir: tempfile::TempDir,
    runners: Vec<Conn>,
}

impl BusyPair {
    fn start(args: &[&str]) -> BusyPair {
        let mut all = vec!["--busy-reply-threshold", "100"];
        all.extend_from_slice(args);
        let ours = TestServer::start(&all);
        let dir = tempfile::tempdir().expect("tempdir");
        let theirs = RealRedis::start(dir.path(), "dump.rdb", &all);
        BusyPair {
            ours,
            theirs,
            _dir: dir,
            runners: Vec::new(),
        }
    }

    /// One connection to each server: (Tandem's, Redis's).
    fn conns(&self) -> [Conn; 2] {
        [self.ours.conn(), self.theirs.conn()]
    }

    /// Starts `script` on both (after `setup` on the runner connections) and waits
    /// until both answer BUSY.
    fn run_busy(&mut self, setup: &[&str], script: &str) {
        self.runners = self.conns().into();
        for r in &mut self.runners {
            for line in setup {
                assert!(!matches!(r.cmd(line), R::Err(_)), "{line}");
            }
            r.send(&[b"EVAL", script.as_bytes(), b"0"]);
        }
        let mut probes = self.conns();
        for p in &mut probes {
            if !setup.is_empty() {
                // The probe authenticates like the runner (its first setup line).
                p.cmd(setup[0]);
            }
            assert!(wait_until(WAIT, || p.cmd("PING") == err(BUSY)), "no BUSY");
        }
    }
}

/// HELLO's `id` differs between the servers: it is blanked before comparing.
fn without_client_id(r: R) -> R {
    match r {
        R::Arr(mut v) => {
            for i in 1..v.len() {
                if v[i - 1] == R::bulk("id") {
                    v[i] = R::Int(0);
                }
            }
            R::Arr(v)
        }
        R::Map(mut v) => {
            for (k, val) in v.iter_mut() {
                if *k == R::bulk("id") {
                    *val = R::Int(0);
                }
            }
            R::Map(v)
        }
        other => other,
    }
}

/// Sends each line on both connections and requires the same replies.
fn same_lines(conns: &mut [Conn; 2], lines: &[&str]) {
    for line in lines {
        let [a, b] = conns;
        let (ra, rb) = (
            without_client_id(a.cmd(line)),
            without_client_id(b.cmd(line)),
        );
        assert_eq!(ra, rb, "reply to {line:?} differs from Redis 7.0.15");
    }
}

#[test]
fn commands_while_a_script_is_busy_get_what_redis_answers() {
    let mut p = BusyPair::start(&[]);
    let mut subscribed = p.conns();
    for s in &mut subscribed {
        s.send(&[b"SUBSCRIBE", b"ch"]);
        assert!(matches!(s.read(), R::Arr(_) | R::Push(_)));
    }
    let mut watcher = p.conns();
    p.run_busy(&[], "local i = 0 while true do i = i + 1 end");
    let mut c = p.conns();
    same_lines(
        &mut c,
        &[
            "PING",
            "GET a",
            "INFO",
            "CLIENT LIST",
            "EVAL return 0",
            "PUBLISH ch x",
            "SUBSCRIBE x",
            // The checks before the busy one.
            "FOO bar",
            "GET",
            "SCRIPT",
            "SCRIPT KILL x",
            "CONFIG GET",
            // Served while busy.
            "AUTH foo",
            "AUTH default anything",
            "AUTH a b c",
            "HELLO",
            "HELLO 3",
            "HELLO 2",
            "HELLO 4",
            "REPLCONF listening-port 7000",
            "REPLCONF nosuch 1",
            "REPLCONF listening-port",
            "FUNCTION KILL",
            "FUNCTION STATS",
            "SCRIPT LOAD return",
            "SHUTDOWN",
            "SHUTDOWN SAVE",
            "SHUTDOWN ABORT",
            "SHUTDOWN NOSAVE ABORT",
            "SHUTDOWN BOGUS",
            "WATCH a b",
            "UNWATCH",
            "DISCARD",
            "EXEC",
            // MULTI: commands refused as busy abort the transaction; those allowed
            // while busy are queued.
            "MULTI",
            "MULTI",
            "WATCH a",
            "AUTH default x",
            "HELLO 2",
            "SET a 1",
            "DISCARD",
            "MULTI",
            "UNWATCH",
            "EXEC",
            "MULTI",
            "SHUTDOWN NOSAVE",
            "DISCARD",
            "SELECT 1",
            "RESET",
            "PING",
        ],
    );
    // A RESP2 subscriber: the Pub/Sub context is checked before the busy state.
    same_lines(
        &mut subscribed,
        &["GET a", "PING", "UNSUBSCRIBE ch", "QUIT"],
    );
    // WATCH while busy, then a transaction once the script is gone: the script
    // wrote nothing, so it goes through as in Redis.
    same_lines(&mut watcher, &["WATCH w", "MULTI", "SET t 1"]);
    same_lines(&mut c, &["SCRIPT KILL"]);
    let [a, b] = &mut p.runners[..] else {
        panic!("two runners")
    };
    assert_eq!(a.read(), b.read());
    same_lines(
        &mut watcher,
        &["EXEC", "WATCH w", "MULTI", "SET w 1", "EXEC"],
    );
    same_lines(&mut c, &["GET t", "GET w", "SCRIPT KILL", "PING"]);
    // The transaction opened in the busy time was aborted by its refused command.
    let mut late = p.conns();
    same_lines(&mut late, &["MULTI"]);
    p.run_busy(&[], "while true do end");
    same_lines(&mut late, &["SET x 1", "INCR y"]);
    same_lines(&mut c, &["SCRIPT KILL"]);
    for r in &mut p.runners {
        assert!(matches!(r.read(), R::Err(e) if e.starts_with("ERR Script killed")));
    }
    same_lines(&mut late, &["EXEC", "GET x"]);
}

#[test]
fn without_auth_only_the_commands_allowed_before_auth_and_while_busy_are_served() {
    let mut p = BusyPair::start(&[]);
    for mut c in p.conns() {
        assert_eq!(c.cmd("CONFIG SET requirepass pw"), R::ok());
    }
    p.run_busy(&["AUTH pw"], "while true do end");
    let mut c = p.conns();
    same_lines(
        &mut c,
        &[
            "GET a",
            "PING",
            "MULTI",
            "AUTH wrong",
            "HELLO 3 AUTH default wrong",
            "HELLO 2 AUTH default pw",
            "GET a",
            "RESET",
            "GET a",
            "AUTH pw",
            "SCRIPT KILL",
        ],
    );
}

/// Sends SIGTERM to a process by its pid.
fn sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn sigterm_while_busy_waits_for_the_script_then_shuts_down_as_redis_does() {
    let mut p = BusyPair::start(&[]);
    p.run_busy(&[], "while true do end");
    sigterm(p.ours.child.id());
    sigterm(p.theirs.child.id());
    // Both keep the script running and stay busy (checked for a bounded time).
    let mut c = p.conns();
    let until = std::time::Instant::now() + Duration::from_millis(600);
    while std::time::Instant::now() < until {
        for conn in &mut c {
            assert_eq!(conn.cmd("PING"), err(BUSY));
        }
    }
    assert!(p.ours.child.try_wait().expect("wait").is_none());
    assert!(p.theirs.child.try_wait().expect("wait").is_none());
    // The script killed, the scheduled shutdown happens.
    for conn in &mut c {
        assert_eq!(conn.cmd("SCRIPT KILL"), R::ok());
    }
    let mut codes = Vec::new();
    for child in [&mut p.ours.child, &mut p.theirs.child] {
        let mut code = None;
        assert!(
            wait_until(WAIT, || {
                code = child.try_wait().expect("wait").map(|s| s.code());
                code.is_some()
            }),
            "the server did not exit"
        );
        codes.push(code);
    }
    assert_eq!(codes[0], codes[1]);
    assert_eq!(codes[0], Some(Some(0)));
}

#[test]
fn sigterm_while_a_script_that_wrote_is_busy_keeps_serving_until_shutdown_nosave() {
    let mut p = BusyPair::start(&[]);
    p.run_busy(&[], "redis.call('set', 'k', 'v') while true do end");
    sigterm(p.ours.child.id());
    sigterm(p.theirs.child.id());
    let mut c = p.conns();
    same_lines(&mut c, &["SCRIPT KILL", "PING", "SHUTDOWN"]);
    for conn in &mut c {
        conn.send(&[b"SHUTDOWN", b"NOSAVE"]);
    }
    for child in [&mut p.ours.child, &mut p.theirs.child] {
        assert!(
            wait_until(WAIT, || child.try_wait().expect("wait").is_some()),
            "the server did not exit"
        );
    }
}

#[test]
fn shutdown_nosave_while_busy_stops_listening_before_the_reply_connection_closes() {
    // Redis closes its listeners first: once SHUTDOWN NOSAVE's connection is closed,
    // a new connection is refused (not accepted and then reset).
    let mut p = BusyPair::start(&[]);
    p.run_busy(&[], "redis.call('set', 'k', 'v') while true do end");
    let ports = [p.ours.port, p.theirs.port];
    for (mut conn, port) in p.conns().into_iter().zip(ports) {
        conn.send(&[b"SHUTDOWN", b"NOSAVE"]);
        assert!(conn.is_closed(), "the SHUTDOWN connection stayed open");
        let refused = std::net::TcpStream::connect(("127.0.0.1", port))
            .err()
            .map(|e| e.kind());
        assert_eq!(
            refused,
            Some(std::io::ErrorKind::ConnectionRefused),
            "port {port}"
        );
    }
}

#[test]
fn a_name_set_while_busy_shows_in_client_list_at_once() {
    // The script waits for a client named by HELLO ... SETNAME, which is served
    // while it is busy; a blocked BLPOP is served only after the script.
    let mut p = BusyPair::start(&["--enable-debug-command", "yes"]);
    let mut popper = p.conns();
    for c in &mut popper {
        c.send(&[b"BLPOP", b"x", b"0"]);
    }
    for mut c in p.conns() {
        assert_eq!(c.cmd("DEBUG SET-DISABLE-DENY-SCRIPTS 1"), R::ok());
    }
    p.run_busy(
        &[],
        "redis.call('lpush', 'x', 'y') \
         while not string.find(redis.call('client', 'list'), 'abortscript') do end \
         redis.call('lpush', 'x', 'z') return 'done'",
    );
    let mut namer = p.conns();
    for c in &mut namer {
        assert!(matches!(c.cmd("HELLO 2 SETNAME abortscript"), R::Arr(_)));
    }
    for r in &mut p.runners {
        assert_eq!(r.read(), R::bulk("done"));
    }
    for c in &mut popper {
        assert_eq!(c.read(), R::Arr(vec![R::bulk("x"), R::bulk("z")]));
    }
}
