//! Propagation sink: receives the ops each command produced, in execution order
//! (already wrapped in MULTI/EXEC when needed), and hands them to the replication
//! stream and the AOF.
//!
//! Only a top-level master generates replication stream content, and only once a
//! backlog or a replica exists (Redis `shouldPropagate` / `replicationFeedSlaves`):
//! otherwise `master_repl_offset` does not move. A replica re-feeds the exact bytes
//! it applies from its master instead (`replication::replica`).

use crate::server::{PropagateTarget, Server, Store};
use bytes::Bytes;
use std::sync::Arc;

pub fn feed(server: &Arc<Server>, store: &mut Store, ops: &[(usize, Vec<Bytes>)]) {
    crate::aof::feed(server, store, ops);
    feed_replicas(store, ops);
}

fn feed_replicas(store: &mut Store, ops: &[(usize, Vec<Bytes>)]) {
    if !ops.is_empty() && store.repl.should_generate() {
        let mut buf = Vec::new();
        encode_ops(&mut store.repl.slaveseldb, ops, &mut buf);
        store.repl.append_stream(Bytes::from(buf));
    }
}

/// [`feed`] when some ops go to one destination only: `only` lists them by index in
/// `ops` (Redis `propagateNow` with a target of `PROPAGATE_AOF` or `PROPAGATE_REPL`).
/// An index past the end is ignored.
pub fn feed_split(
    server: &Arc<Server>,
    store: &mut Store,
    ops: &[(usize, Vec<Bytes>)],
    only: &[(usize, PropagateTarget)],
) {
    let skip =
        |i: usize, not_for: PropagateTarget| only.iter().any(|&(j, t)| j == i && t == not_for);
    let pick = |not_for: PropagateTarget| -> Vec<(usize, Vec<Bytes>)> {
        ops.iter()
            .enumerate()
            .filter(|&(i, _)| !skip(i, not_for))
            .map(|(_, op)| op.clone())
            .collect()
    };
    let aof = pick(PropagateTarget::Replicas);
    if !aof.is_empty() {
        crate::aof::feed(server, store, &aof);
    }
    feed_replicas(store, &pick(PropagateTarget::Aof));
}

/// Encodes ops for the replication stream, emitting `SELECT <db>` whenever an op's
/// db differs from the stream's current db (`seldb`, -1 = unknown), which it updates.
pub fn encode_ops(seldb: &mut i64, ops: &[(usize, Vec<Bytes>)], out: &mut Vec<u8>) {
    for (db, argv) in ops {
        if *db as i64 != *seldb {
            let mut b = itoa::Buffer::new();
            let n = b.format(*db);
            out.extend_from_slice(b"*2\r\n$6\r\nSELECT\r\n$");
            out.extend_from_slice(itoa::Buffer::new().format(n.len()).as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b"\r\n");
            *seldb = *db as i64;
        }
        encode_command(argv, out);
    }
}

/// Encodes one command as a RESP bulk array, the form both the replication stream
/// and the AOF use.
pub fn encode_command(argv: &[Bytes], out: &mut Vec<u8>) {
    let mut b = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(b.format(argv.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in argv {
        out.push(b'$');
        out.extend_from_slice(b.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(db: usize, args: &[&str]) -> (usize, Vec<Bytes>) {
        (
            db,
            args.iter().map(|a| Bytes::from(a.to_string())).collect(),
        )
    }

    #[test]
    fn select_is_emitted_only_when_the_db_changes() {
        let mut sel = -1;
        let mut out = Vec::new();
        encode_ops(
            &mut sel,
            &[
                op(0, &["set", "k1", "v1"]),
                op(0, &["set", "k2", "v2"]),
                op(2, &["set", "g", "7"]),
                op(0, &["DEL", "x"]),
            ],
            &mut out,
        );
        let want = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n\
*3\r\n$3\r\nset\r\n$2\r\nk1\r\n$2\r\nv1\r\n\
*3\r\n$3\r\nset\r\n$2\r\nk2\r\n$2\r\nv2\r\n\
*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n\
*3\r\n$3\r\nset\r\n$1\r\ng\r\n$1\r\n7\r\n\
*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n\
*2\r\n$3\r\nDEL\r\n$1\r\nx\r\n";
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
        assert_eq!(sel, 0);
        // The stream stays on db 0: no SELECT for the next command.
        let mut more = Vec::new();
        encode_ops(&mut sel, &[op(0, &["incr", "n"])], &mut more);
        assert!(!more.starts_with(b"*2\r\n$6\r\nSELECT"));
    }

    #[test]
    fn byte_sizes_match_redis_offsets() {
        // Verified sizes from a real 7.0 stream: SELECT 0 = 23, set k1 v1 = 29,
        // MULTI = 15, EXEC = 14, SELECT 12 = 24.
        let size = |ops: &[(usize, Vec<Bytes>)], sel: i64| {
            let mut s = sel;
            let mut out = Vec::new();
            encode_ops(&mut s, ops, &mut out);
            out.len()
        };
        assert_eq!(size(&[op(0, &["set", "k1", "v1"])], -1), 23 + 29);
        assert_eq!(size(&[op(0, &["MULTI"])], 0), 15);
        assert_eq!(size(&[op(0, &["EXEC"])], 0), 14);
        assert_eq!(size(&[op(12, &["EXEC"])], 0), 24 + 14);
    }

    #[test]
    fn feeding_counts_offset_only_with_a_backlog_or_replica() {
        let server = crate::server::Server::new(crate::config::Config::default());
        let mut store = server.store.lock();
        feed(&server, &mut store, &[op(0, &["set", "a", "1"])]);
        assert_eq!(store.repl.master_repl_offset, 0);
        store.repl.ensure_backlog(1 << 20);
        feed(&server, &mut store, &[op(0, &["set", "k1", "v1"])]);
        assert_eq!(store.repl.master_repl_offset, 52);
        let b = store.repl.backlog.as_ref().expect("backlog");
        assert_eq!((b.first_byte(), b.histlen()), (1, 52));
        // A replica never generates stream content of its own.
        store.repl.master = Some(crate::replication::MasterLink {
            host: "127.0.0.1".into(),
            port: 1,
            state: crate::replication::LinkState::Connect,
            generation: 0,
            offsets: None,
            last_io: std::time::Instant::now(),
            down_since: None,
            transfer: None,
            transfer_last_io: std::time::Instant::now(),
        });
        feed(&server, &mut store, &[op(0, &["set", "k2", "v2"])]);
        assert_eq!(store.repl.master_repl_offset, 52);
    }
}
