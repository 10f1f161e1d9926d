//! BGREWRITEAOF inside MULTI/EXEC, against Redis 7.0.15: a transaction does not fork,
//! so the rewrite is answered "scheduled" and starts right after EXEC.
mod common;
use common::*;
use std::time::Duration;

fn info_field(c: &mut Conn, name: &str) -> String {
    let R::Bulk(text) = c.cmd("INFO persistence") else {
        panic!("INFO");
    };
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn bgrewriteaof_in_exec_is_scheduled_and_runs_after_exec() {
    let ours = TestServer::start(&["--appendonly", "yes"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &["--appendonly", "yes"]);
    let mut a = ours.conn();
    let mut r = theirs.conn();
    let settled = |c: &mut Conn| {
        wait_until(Duration::from_secs(10), || {
            info_field(c, "aof_rewrite_in_progress") == "0"
                && info_field(c, "aof_rewrite_scheduled") == "0"
        })
    };
    assert!(settled(&mut a) && settled(&mut r));
    let before = (
        info_field(&mut a, "aof_rewrites")
            .parse::<u64>()
            .expect("n"),
        info_field(&mut r, "aof_rewrites")
            .parse::<u64>()
            .expect("n"),
    );
    for line in ["MULTI", "SET k v", "BGREWRITEAOF", "BGREWRITEAOF", "EXEC"] {
        let (x, y) = (a.cmd(line), r.cmd(line));
        assert_eq!(x, y, "{line}");
    }
    // Both ran exactly one rewrite after EXEC.
    for (c, n) in [(&mut a, before.0), (&mut r, before.1)] {
        let done = wait_until(Duration::from_secs(10), || {
            info_field(c, "aof_rewrites").parse::<u64>().ok() == Some(n + 1)
                && info_field(c, "aof_rewrite_in_progress") == "0"
                && info_field(c, "aof_rewrite_scheduled") == "0"
        });
        assert!(done, "no rewrite after EXEC");
        assert_eq!(info_field(c, "aof_last_bgrewrite_status"), "ok");
    }
    // Outside a transaction it starts at once, as before.
    assert_eq!(
        a.cmd("BGREWRITEAOF"),
        R::Simple("Background append only file rewriting started".into())
    );
    // Each rewrite made a new base file: the one at start, then two.
    assert!(settled(&mut a));
    let names: Vec<String> = std::fs::read_dir(ours.dir.path().join("appendonlydir"))
        .expect("appendonlydir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    assert!(
        names.iter().any(|n| n == "appendonly.aof.3.base.rdb"),
        "{names:?}"
    );
}
