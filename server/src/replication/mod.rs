//! Master–replica replication as Redis 7.0 does it.
//!
//! * [`backlog`]: the retained stream tail (byte-level offset semantics).
//! * [`psync`]: the pure PSYNC accept/reject decision.
//! * [`primary`]: the master side (SYNC/PSYNC, snapshot transfer, replica outputs,
//!   ACKs, PINGs, WAIT, timeouts), split by step: `sync` (the SYNC/PSYNC
//!   decisions), `full_sync`, `snapshot`.
//! * [`replica`]: the replica side, one module per [`LinkState`] state: connect,
//!   `handshake`, `transfer` (+ `sync_file`), `stream` (applying and proxying the
//!   stream, ACKs); reconnects and the cached master in the driver.
//! * [`sync_stream`]: the streaming pieces of a full sync shared by both sides.
//!
//! All replication state that must be ordered with the keyspace lives in
//! [`ReplState`] inside the locked `Store` (`store.repl`).

pub use crate::server::backlog;
pub mod codec;
pub mod failover;
pub mod fence;
pub mod primary;
pub mod psync;
pub mod replica;
pub mod stall;
pub use crate::server::sync_stream;

pub use crate::server::repl::*;
use crate::server::{Server, Store};
use backlog::Backlog;
use bytes::Bytes;
use std::sync::Arc;

/// Replication info to store in an RDB (Redis `rdbPopulateSaveInfo`): on a master
/// with a backlog, or a replica with a master link or cached master.
pub fn save_info(store: &Store) -> Option<(String, i64, i64)> {
    let r = &store.repl;
    match &r.master {
        None if r.backlog.is_some() => {
            Some((r.replid.clone(), r.master_repl_offset, r.slaveseldb.max(0)))
        }
        None => None,
        Some(m) => match (m.offsets, &r.cached_master) {
            (Some(o), _) => Some((r.replid.clone(), o.applied, o.db as i64)),
            (None, Some(c)) => Some((c.replid.clone(), c.reploff, c.db as i64)),
            (None, None) => None,
        },
    }
}

/// [`save_info`] in the codec's form, for every RDB save (SAVE, BGSAVE, shutdown).
pub fn rdb_repl_info(store: &Store) -> Option<crate::rdb::ReplInfo> {
    save_info(store).map(|(replid, offset, stream_db)| crate::rdb::ReplInfo {
        replid,
        offset,
        stream_db,
    })
}

/// Applies replication info read from an RDB at startup (Redis `loadDataFromDisk`):
/// a replica continues that history from a synthesised cached master; a master
/// keeps it as its secondary id so its replicas can partially resync.
/// `as_replica`: the server is configured with `replicaof`. A master puts the
/// DELs (UNLINKs with `lazyfree-lazy-expire`) of the keys the RDB held already
/// expired into its new backlog, after the restored offset, so that replicas
/// continuing from that offset drop them too (Redis 7.0).
pub fn restore_from_rdb(
    store: &mut Store,
    as_replica: bool,
    (backlog_size, lazy_expire): (u64, bool),
    (replid, offset, db): (&str, i64, i64),
    expired: &[(usize, Bytes)],
) {
    if replid.len() != 40 {
        return;
    }
    let r = &mut store.repl;
    if as_replica {
        r.replid = replid.to_string();
        r.master_repl_offset = offset;
        r.cached_master = Some(CachedMaster {
            replid: replid.to_string(),
            reploff: offset,
            db: db.max(0) as usize,
        });
    } else {
        r.replid = crate::server::random_hex40();
        r.replid2 = replid.to_string();
        r.second_replid_offset = offset + 1;
        r.master_repl_offset = offset;
        r.backlog = Some(Backlog::new(backlog_size as usize, offset));
        let del = Bytes::from_static(if lazy_expire { b"UNLINK" } else { b"DEL" });
        let ops: Vec<(usize, Vec<Bytes>)> = expired
            .iter()
            .map(|(db, key)| (*db, vec![del.clone(), key.clone()]))
            .collect();
        let mut buf = Vec::new();
        crate::propagate::encode_ops(&mut r.slaveseldb, &ops, &mut buf);
        r.append_stream(Bytes::from(buf));
    }
}

/// INFO stats counters owned by replication.
pub fn stats_fields(store: &Store) -> Vec<(String, String)> {
    let r = &store.repl;
    vec![
        ("sync_full".into(), r.sync_full.to_string()),
        ("sync_partial_ok".into(), r.sync_partial_ok.to_string()),
        ("sync_partial_err".into(), r.sync_partial_err.to_string()),
    ]
}

/// Every `INFO replication` field of Redis 7.0, in order.
pub fn info_fields(server: &Server, store: &Store) -> Vec<(String, String)> {
    let cfg = server.config.read();
    let r = &store.repl;
    let mut f = Fields::default();
    match &r.master {
        None => f.add("role", "master"),
        Some(m) => {
            f.add("role", "slave");
            master_link_fields(&mut f, m, r.cached_master.as_ref());
            f.add("slave_priority", cfg.replica_priority);
            f.add("slave_read_only", cfg.replica_read_only as u8);
            f.add("replica_announced", cfg.replica_announced as u8);
        }
    }
    f.add("connected_slaves", r.replicas.len());
    if cfg.min_replicas_to_write > 0 && cfg.min_replicas_max_lag > 0 {
        f.add("min_slaves_good_slaves", r.good_replicas);
    }
    for (i, s) in r.replicas.iter().enumerate() {
        let lag = if s.state == ReplicaState::Online {
            s.ack_time.elapsed().as_secs()
        } else {
            0
        };
        f.add(
            &format!("slave{i}"),
            format!(
                "ip={},port={},state={},offset={},lag={}",
                s.ip,
                s.port,
                s.state.info_name(),
                s.ack_off,
                lag
            ),
        );
    }
    f.add("master_failover_state", r.failover.state.info_name());
    f.add("master_replid", &r.replid);
    f.add("master_replid2", &r.replid2);
    f.add("master_repl_offset", r.master_repl_offset);
    f.add("second_repl_offset", r.second_replid_offset);
    let (first_byte, histlen) = r
        .backlog
        .as_ref()
        .map_or((0, 0), |b| (b.first_byte(), b.histlen()));
    f.add("repl_backlog_active", r.backlog.is_some() as u8);
    f.add("repl_backlog_size", cfg.repl_backlog_size);
    f.add("repl_backlog_first_byte_offset", first_byte);
    f.add("repl_backlog_histlen", histlen);
    // Tandem extension, last in the section.
    f.add("tandem_fenced", r.fenced as u8);
    f.0
}

/// INFO fields being collected, in order.
#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn add(&mut self, k: &str, v: impl std::fmt::Display) {
        self.0.push((k.to_string(), v.to_string()));
    }
}

/// The replica's view of its master link, from `master_host` to
/// `master_link_down_since_seconds`.
fn master_link_fields(f: &mut Fields, m: &MasterLink, cached: Option<&CachedMaster>) {
    f.add("master_host", &m.host);
    f.add("master_port", m.port);
    let up = m.state == LinkState::Connected;
    f.add("master_link_status", if up { "up" } else { "down" });
    match m.offsets {
        Some(_) => f.add("master_last_io_seconds_ago", m.last_io.elapsed().as_secs()),
        None => f.add("master_last_io_seconds_ago", -1),
    }
    let syncing = m.state == LinkState::Transfer;
    f.add("master_sync_in_progress", syncing as u8);
    let (read, applied) = match (m.offsets, cached) {
        (Some(o), _) => (o.read, o.applied),
        (None, Some(c)) => (c.reploff, c.reploff),
        (None, None) => (1, 1),
    };
    f.add("slave_read_repl_offset", read);
    f.add("slave_repl_offset", applied);
    if syncing {
        let p = m
            .transfer
            .unwrap_or(TransferProgress { total: -1, read: 0 });
        f.add("master_sync_total_bytes", p.total);
        f.add("master_sync_read_bytes", p.read);
        let left = if p.total > 0 { p.total - p.read } else { 0 };
        f.add("master_sync_left_bytes", left);
        let perc = if p.total > 0 {
            p.read as f64 * 100.0 / p.total as f64
        } else {
            0.0
        };
        f.add("master_sync_perc", format!("{perc:.2}"));
        let ago = m.transfer_last_io.elapsed().as_secs();
        f.add("master_sync_last_io_seconds_ago", ago);
    }
    if !up {
        match m.down_since {
            Some(t) => f.add("master_link_down_since_seconds", t.elapsed().as_secs()),
            None => f.add("master_link_down_since_seconds", -1),
        }
    }
}

/// Renders `info_fields` as an INFO section (used by our own tests and until the
/// INFO command wires it in).
pub fn info_section(server: &Server, store: &Store) -> String {
    let mut s = String::from("# Replication\r\n");
    for (k, v) in info_fields(server, store) {
        s.push_str(&k);
        s.push(':');
        s.push_str(&v);
        s.push_str("\r\n");
    }
    s
}

/// Starts replication background work: the once-per-second cron and, with
/// `replicaof` configured, the link to the master. Call after "Ready to accept
/// connections".
pub fn start(server: &Arc<Server>) {
    let (target, backlog, fenced_start) = {
        let c = server.config.read();
        (
            c.replicaof.clone(),
            (c.repl_backlog_size, c.lazyfree_lazy_expire),
            c.tandem_fenced_start,
        )
    };
    crate::replication::fence::at_startup(&mut server.store.lock(), fenced_start, target.is_some());
    let expired = crate::persist::take_loaded_expired(server);
    if let Some(info) = crate::persist::loaded_repl_info(server) {
        let mut store = server.store.lock();
        restore_from_rdb(
            &mut store,
            target.is_some(),
            backlog,
            (&info.replid, info.offset, info.stream_db),
            &expired,
        );
    }
    if let Some((host, port)) = target {
        let mut store = server.store.lock();
        replica::set_master(server, &mut store, &host, port, false);
    }
    tokio::spawn(primary::cron(server.clone()));
    tokio::spawn(stall::watch(server.clone()));
}

/// Replication checks of `processCommand`: MASTERDOWN on a stale replica and
/// NOREPLICAS under min-replicas-to-write. Inline for the usual case, a master
/// without min-replicas settings (every command and every `redis.call` asks).
#[inline]
pub fn precheck(
    server: &Server,
    store: &Store,
    client: &crate::commands::ClientState,
    cmd: &crate::commands::Command,
) -> Option<String> {
    let cfg = &store.hot;
    if client.is_master
        || (store.repl.master.is_none()
            && (cfg.min_replicas_to_write == 0 || cfg.min_replicas_max_lag == 0))
    {
        return None;
    }
    replica_or_min_replicas_refusal(server, store, client, cmd)
}

/// [`precheck`] on a replica or under min-replicas settings.
#[inline(never)]
fn replica_or_min_replicas_refusal(
    _server: &Server,
    store: &Store,
    client: &crate::commands::ClientState,
    cmd: &crate::commands::Command,
) -> Option<String> {
    use crate::commands::flags;
    let r = &store.repl;
    let cfg = &store.hot;
    if r.master.is_some()
        && !cfg.replica_serve_stale_data
        && !r.link_connected()
        && !crate::commands::allowed_when_stale(cmd, client)
    {
        return Some(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
                .into(),
        );
    }
    if r.master.is_none() && cfg.min_replicas_to_write > 0 && cfg.min_replicas_max_lag > 0 {
        let writes = crate::commands::effective_flags(cmd, client) & flags::WRITE != 0;
        // Counted now rather than read from the cron's last count (Redis reads the count):
        // a master resumed after a pause (SIGSTOP) must refuse the writes queued while it
        // was stopped, not take them before its cron notices its replicas went quiet.
        let good = r.good_replicas_now(cfg.min_replicas_max_lag);
        if writes && (good as u64) < cfg.min_replicas_to_write {
            return Some("NOREPLICAS Not enough good replicas to write.".into());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn keys(f: &[(String, String)]) -> Vec<&str> {
        f.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn info_fields_of_a_master_follow_redis_order() {
        let server = Server::new(crate::config::Config::default());
        let store = server.store.lock();
        let f = info_fields(&server, &store);
        assert_eq!(
            keys(&f),
            vec![
                "role",
                "connected_slaves",
                "master_failover_state",
                "master_replid",
                "master_replid2",
                "master_repl_offset",
                "second_repl_offset",
                "repl_backlog_active",
                "repl_backlog_size",
                "repl_backlog_first_byte_offset",
                "repl_backlog_histlen",
                "tandem_fenced",
            ]
        );
        assert_eq!(f[11].1, "0");
        assert_eq!(f[0].1, "master");
        assert_eq!(f[4].1, NULL_REPLID);
        assert_eq!(f[6].1, "-1");
        assert_eq!(f[8].1, "1048576");
    }

    #[test]
    fn info_fields_of_a_replica_whose_link_never_came_up() {
        let server = Server::new(crate::config::Config::default());
        let mut store = server.store.lock();
        store.repl.master = Some(MasterLink {
            host: "127.0.0.1".into(),
            port: 7001,
            state: LinkState::Connect,
            generation: 1,
            offsets: None,
            last_io: Instant::now(),
            down_since: None,
            transfer: None,
            transfer_last_io: Instant::now(),
        });
        let f = info_fields(&server, &store);
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            keys(&f)[..12],
            [
                "role",
                "master_host",
                "master_port",
                "master_link_status",
                "master_last_io_seconds_ago",
                "master_sync_in_progress",
                "slave_read_repl_offset",
                "slave_repl_offset",
                "master_link_down_since_seconds",
                "slave_priority",
                "slave_read_only",
                "replica_announced",
            ]
        );
        assert_eq!(get("role"), Some("slave"));
        assert_eq!(get("master_link_status"), Some("down"));
        assert_eq!(get("master_last_io_seconds_ago"), Some("-1"));
        assert_eq!(get("slave_repl_offset"), Some("1"));
        assert_eq!(get("master_link_down_since_seconds"), Some("-1"));
    }

    #[test]
    fn promotion_shifts_the_history_to_replid2() {
        let server = Server::new(crate::config::Config::default());
        let mut store = server.store.lock();
        let old = store.repl.replid.clone();
        store.repl.master_repl_offset = 4222;
        store.repl.master = Some(MasterLink {
            host: "h".into(),
            port: 1,
            state: LinkState::Connected,
            generation: 1,
            offsets: Some(LinkOffsets::at(4222, 0)),
            last_io: Instant::now(),
            down_since: None,
            transfer: None,
            transfer_last_io: Instant::now(),
        });
        store.is_replica = true;
        replica::unset_master(&mut store, "test");
        assert!(store.repl.master.is_none());
        assert!(!store.is_replica);
        assert_eq!(store.repl.replid2, old);
        assert_eq!(store.repl.second_replid_offset, 4223);
        assert_ne!(store.repl.replid, old);
        assert_eq!(store.repl.slaveseldb, -1);
    }

    #[test]
    fn save_info_follows_role() {
        let server = Server::new(crate::config::Config::default());
        let mut store = server.store.lock();
        assert_eq!(save_info(&store), None);
        store.repl.ensure_backlog(1 << 20);
        store.repl.master_repl_offset = 10;
        store.repl.slaveseldb = 3;
        let id = store.repl.replid.clone();
        assert_eq!(save_info(&store), Some((id.clone(), 10, 3)));
        restore_from_rdb(&mut store, false, (1 << 20, false), (&id, 10, 3), &[]);
        assert_eq!(store.repl.replid2, id);
        assert_eq!(store.repl.second_replid_offset, 11);
    }
}
