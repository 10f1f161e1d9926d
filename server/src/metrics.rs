//! The admin port's Prometheus exposition (observability, read-only over `Server`
//! and `Store`; served by [`crate::admin`]).
//!
//! Two sets of families, from the same counters INFO prints:
//! - redis_exporter's names, labels and types (`redis_*`, as oliver006/redis_exporter
//!   derives them from INFO), so dashboards and alerts written for it work unchanged;
//! - Tandem's own (`tandem_*`): fence, role, and the names Tandem exported first.
//!
//! [`collect`] reads the server into a plain [`Snapshot`]; [`render`] is a pure
//! function of it. The store is read with `lock_unless_busy`: while a script holds
//! the store past `busy-reply-threshold` the server cannot answer, so the scrape
//! reports `redis_up 0` with the lock-free figures only, instead of waiting.
//!
//! No key names, values or configuration secrets appear; replica and master
//! addresses appear as labels, as redis_exporter shows them.

use crate::latency::Calls;
use crate::server::{Server, Stats};
use std::fmt::Write as _;

/// Figures that do not need the store lock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub uptime_secs: u64,
    pub connected_clients: usize,
    pub used_memory: u64,
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    pub tcp_port: u16,
    pub aof_enabled: bool,
    pub run_id: String,
    pub os: String,
    pub process_id: u32,
    pub commands_processed: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub expired_keys: u64,
    pub evicted_keys: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    /// `None` when the store could not be read (a busy script holds it).
    pub store: Option<StoreFacts>,
}

/// Figures read under the store lock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreFacts {
    pub blocked_clients: usize,
    /// (db index, keys, keys with a TTL): db 0 and every non-empty db.
    pub dbs: Vec<(usize, usize, usize)>,
    /// Per command (full name, `config|get`): calls and time.
    pub commands: Vec<(&'static str, Calls)>,
    pub fenced: bool,
    /// Set on a replica: its master link.
    pub master: Option<MasterFacts>,
    pub replicas: Vec<ReplicaFacts>,
    pub master_repl_offset: i64,
    pub master_replid: String,
    pub sync_full: u64,
    pub sync_partial_ok: u64,
    pub sync_partial_err: u64,
    pub rdb_last_save: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterFacts {
    pub host: String,
    pub port: u16,
    pub link_up: bool,
}

/// One attached replica, as INFO's `slaveN:` line shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaFacts {
    pub ip: String,
    pub port: u16,
    pub state: &'static str,
    pub offset: i64,
    pub lag_secs: u64,
}

/// Reads the server's figures (the store only when it can answer).
pub fn collect(server: &Server) -> Snapshot {
    let connected_clients = server.clients.lock().len();
    let (maxmemory, maxmemory_policy, tcp_port, aof_enabled) = {
        let c = server.config.read();
        (
            c.maxmemory,
            c.maxmemory_policy.clone(),
            c.port,
            c.appendonly,
        )
    };
    let s = &server.stats;
    let store = server
        .store
        .lock_unless_busy()
        .map(|store| store_facts(server, &store));
    // As INFO: the replicas' connections are not clients here.
    let replicas = store.as_ref().map_or(0, |f| f.replicas.len());
    let connected_clients = connected_clients.saturating_sub(replicas);
    Snapshot {
        uptime_secs: server.started.elapsed().as_secs(),
        connected_clients,
        used_memory: crate::commands::info::used_memory(),
        maxmemory,
        maxmemory_policy,
        tcp_port,
        aof_enabled,
        run_id: server.run_id.clone(),
        os: crate::commands::info::os_string(),
        process_id: std::process::id(),
        commands_processed: Stats::get(&s.total_commands_processed),
        keyspace_hits: Stats::get(&s.keyspace_hits),
        keyspace_misses: Stats::get(&s.keyspace_misses),
        expired_keys: Stats::get(&s.expired_keys),
        evicted_keys: Stats::get(&s.evicted_keys),
        net_input_bytes: Stats::get(&s.net_input_bytes),
        net_output_bytes: Stats::get(&s.net_output_bytes),
        store,
    }
}

fn store_facts(server: &Server, store: &crate::server::Store) -> StoreFacts {
    let r = &store.repl;
    let replicas = r
        .replicas
        .iter()
        .map(|s| {
            let online = s.state == crate::server::repl::ReplicaState::Online;
            ReplicaFacts {
                ip: s.ip.clone(),
                port: s.port,
                state: s.state.info_name(),
                offset: s.ack_off,
                // As INFO: seconds since the last ACK, for online replicas only.
                lag_secs: if online {
                    s.ack_time.elapsed().as_secs()
                } else {
                    0
                },
            }
        })
        .collect();
    StoreFacts {
        blocked_clients: server.blocked_clients(store),
        dbs: store
            .dbs
            .iter()
            .enumerate()
            .filter(|(i, db)| *i == 0 || !db.is_empty())
            .map(|(i, db)| (i, db.len(), db.expires_count()))
            .collect(),
        commands: store
            .latency
            .calls
            .iter()
            .map(|(name, c)| (*name, *c))
            .collect(),
        fenced: r.fenced,
        master: r.master.as_ref().map(|m| MasterFacts {
            host: m.host.clone(),
            port: m.port,
            link_up: r.link_connected(),
        }),
        replicas,
        master_repl_offset: r.master_repl_offset,
        master_replid: r.replid.clone(),
        sync_full: r.sync_full,
        sync_partial_ok: r.sync_partial_ok,
        sync_partial_err: r.sync_partial_err,
        rdb_last_save: store.lastsave,
    }
}

/// A label value in the text format: `\`, `"` and newlines escaped.
pub fn escape_label(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// `{a="x",b="y"}` (empty for no labels).
fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// The exposition being written: one HELP/TYPE pair per family, then its samples.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for (l, v) in samples {
            let _ = writeln!(self.0, "{name}{l} {v}");
        }
    }

    fn gauge(&mut self, name: &str, help: &str, v: impl ToString) {
        self.family(name, "gauge", help, &[(String::new(), v.to_string())]);
    }

    fn counter(&mut self, name: &str, help: &str, v: impl ToString) {
        self.family(name, "counter", help, &[(String::new(), v.to_string())]);
    }

    /// A family whose value needs the store: no sample when it could not be read.
    fn stored(&mut self, name: &str, kind: &str, help: &str, v: Option<String>) {
        let samples: Vec<(String, String)> = v.map(|v| (String::new(), v)).into_iter().collect();
        self.family(name, kind, help, &samples);
    }
}

/// The whole exposition: redis_exporter's families, then Tandem's.
pub fn render(s: &Snapshot) -> String {
    let mut o = Out(String::new());
    redis_families(&mut o, s);
    tandem_families(&mut o, s);
    o.0
}

fn redis_families(o: &mut Out, s: &Snapshot) {
    let st = s.store.as_ref();
    let up = st.is_some() as u8;
    o.gauge("redis_up", "1 when the server can answer commands.", up);
    o.gauge(
        "redis_uptime_in_seconds",
        "Seconds since the server started.",
        s.uptime_secs,
    );
    instance_info(o, s);
    o.gauge(
        "redis_connected_clients",
        "Client connections.",
        s.connected_clients,
    );
    o.stored(
        "redis_blocked_clients",
        "gauge",
        "Clients blocked on keys.",
        st.map(|f| f.blocked_clients.to_string()),
    );
    o.gauge(
        "redis_memory_used_bytes",
        "Memory allocated by the server.",
        s.used_memory,
    );
    o.gauge(
        "redis_memory_max_bytes",
        "maxmemory (0 = no limit).",
        s.maxmemory,
    );
    o.counter(
        "redis_commands_processed_total",
        "Commands processed since start.",
        s.commands_processed,
    );
    command_families(o, st);
    o.counter(
        "redis_keyspace_hits_total",
        "Key lookups that found the key.",
        s.keyspace_hits,
    );
    o.counter(
        "redis_keyspace_misses_total",
        "Key lookups that did not find the key.",
        s.keyspace_misses,
    );
    o.counter(
        "redis_expired_keys_total",
        "Keys deleted because their TTL passed.",
        s.expired_keys,
    );
    o.counter(
        "redis_evicted_keys_total",
        "Keys evicted by maxmemory.",
        s.evicted_keys,
    );
    db_families(o, st);
    o.counter(
        "redis_net_input_bytes_total",
        "Bytes read from clients.",
        s.net_input_bytes,
    );
    o.counter(
        "redis_net_output_bytes_total",
        "Bytes written to clients.",
        s.net_output_bytes,
    );
    replication_families(o, st);
    o.stored(
        "redis_rdb_last_save_timestamp_seconds",
        "gauge",
        "Unix time of the last successful save.",
        st.map(|f| f.rdb_last_save.to_string()),
    );
    o.gauge(
        "redis_aof_enabled",
        "1 when appendonly is on.",
        s.aof_enabled as u8,
    );
}

/// `redis_instance_info{role,redis_version,...} 1`, redis_exporter's label set.
fn instance_info(o: &mut Out, s: &Snapshot) {
    let st = s.store.as_ref();
    let role = match st {
        Some(f) if f.master.is_some() => "slave",
        Some(_) => "master",
        None => "",
    };
    let (port, pid) = (s.tcp_port.to_string(), s.process_id.to_string());
    let replid = st.map_or("", |f| f.master_replid.as_str());
    let l = labels(&[
        ("role", role),
        ("redis_version", crate::REDIS_VERSION),
        ("redis_build_id", "0"),
        ("redis_mode", "standalone"),
        ("os", &s.os),
        ("maxmemory_policy", &s.maxmemory_policy),
        ("tcp_port", &port),
        ("run_id", &s.run_id),
        ("process_id", &pid),
        ("master_replid", replid),
    ]);
    o.family(
        "redis_instance_info",
        "gauge",
        "Information about the instance (value 1).",
        &[(l, "1".into())],
    );
}

fn command_families(o: &mut Out, st: Option<&StoreFacts>) {
    let cmds = st.map_or(&[][..], |f| f.commands.as_slice());
    let calls: Vec<(String, String)> = cmds
        .iter()
        .map(|(name, c)| (labels(&[("cmd", name)]), c.calls.to_string()))
        .collect();
    o.family(
        "redis_commands_total",
        "counter",
        "Calls per command.",
        &calls,
    );
    let secs: Vec<(String, String)> = cmds
        .iter()
        .map(|(name, c)| {
            let v = c.usec as f64 / 1e6;
            (labels(&[("cmd", name)]), v.to_string())
        })
        .collect();
    o.family(
        "redis_commands_duration_seconds_total",
        "counter",
        "Seconds spent per command.",
        &secs,
    );
    // The same counters as INFO commandstats' rejected_calls / failed_calls.
    let per_cmd = |pick: fn(&crate::latency::Calls) -> u64| -> Vec<(String, String)> {
        cmds.iter()
            .map(|(name, c)| (labels(&[("cmd", name)]), pick(c).to_string()))
            .collect()
    };
    o.family(
        "redis_commands_rejected_calls_total",
        "counter",
        "Calls per command refused before running.",
        &per_cmd(|c| c.rejected),
    );
    o.family(
        "redis_commands_failed_calls_total",
        "counter",
        "Calls per command that answered an error.",
        &per_cmd(|c| c.failed),
    );
}

fn db_families(o: &mut Out, st: Option<&StoreFacts>) {
    let dbs = st.map_or(&[][..], |f| f.dbs.as_slice());
    let per_db = |pick: fn(&(usize, usize, usize)) -> usize| -> Vec<(String, String)> {
        dbs.iter()
            .map(|d| {
                (
                    labels(&[("db", &format!("db{}", d.0))]),
                    pick(d).to_string(),
                )
            })
            .collect()
    };
    o.family(
        "redis_db_keys",
        "gauge",
        "Keys per database (db0 and every non-empty one).",
        &per_db(|d| d.1),
    );
    o.family(
        "redis_db_keys_expiring",
        "gauge",
        "Keys with a TTL per database.",
        &per_db(|d| d.2),
    );
}

fn replication_families(o: &mut Out, st: Option<&StoreFacts>) {
    o.stored(
        "redis_connected_slaves",
        "gauge",
        "Replicas attached.",
        st.map(|f| f.replicas.len().to_string()),
    );
    o.stored(
        "redis_master_repl_offset",
        "gauge",
        "Replication offset of this server's stream.",
        st.map(|f| f.master_repl_offset.to_string()),
    );
    let replicas = st.map_or(&[][..], |f| f.replicas.as_slice());
    let per_replica = |v: fn(&ReplicaFacts) -> String| -> Vec<(String, String)> {
        replicas
            .iter()
            .map(|r| {
                let port = r.port.to_string();
                let l = labels(&[
                    ("slave_ip", &r.ip),
                    ("slave_port", &port),
                    ("slave_state", r.state),
                ]);
                (l, v(r))
            })
            .collect()
    };
    o.family(
        "redis_connected_slave_offset_bytes",
        "gauge",
        "Replication offset a replica acknowledged.",
        &per_replica(|r| r.offset.to_string()),
    );
    o.family(
        "redis_connected_slave_lag_seconds",
        "gauge",
        "Seconds since a replica's last acknowledgement.",
        &per_replica(|r| r.lag_secs.to_string()),
    );
    // Only a replica has a master link (as redis_exporter: no sample on a master).
    let link: Vec<(String, String)> = st
        .and_then(|f| f.master.as_ref())
        .map(|m| {
            let port = m.port.to_string();
            let l = labels(&[("master_host", &m.host), ("master_port", &port)]);
            (l, (m.link_up as u8).to_string())
        })
        .into_iter()
        .collect();
    o.family(
        "redis_master_link_up",
        "gauge",
        "1 when this replica's link to its master is up.",
        &link,
    );
    for (name, help, pick) in [
        (
            "redis_replica_resyncs_full",
            "Full resyncs served to replicas.",
            (|f: &StoreFacts| f.sync_full) as fn(&StoreFacts) -> u64,
        ),
        (
            "redis_replica_partial_resync_accepted",
            "Partial resyncs accepted.",
            |f| f.sync_partial_ok,
        ),
        (
            "redis_replica_partial_resync_denied",
            "Partial resyncs denied.",
            |f| f.sync_partial_err,
        ),
    ] {
        o.stored(name, "gauge", help, st.map(|f| pick(f).to_string()));
    }
}

/// Tandem's own families (the names it exported before the redis_* set).
fn tandem_families(o: &mut Out, s: &Snapshot) {
    let st = s.store.as_ref();
    o.gauge(
        "tandem_up",
        "1 when the server can answer commands.",
        st.is_some() as u8,
    );
    o.stored(
        "tandem_fenced",
        "gauge",
        "1 while started fenced and no role has been assigned.",
        st.map(|f| (f.fenced as u8).to_string()),
    );
    let role: Vec<(String, String)> = st
        .map(|f| {
            let master = f.master.is_none();
            vec![
                (labels(&[("role", "master")]), (master as u8).to_string()),
                (labels(&[("role", "replica")]), (!master as u8).to_string()),
            ]
        })
        .unwrap_or_default();
    o.family(
        "tandem_role",
        "gauge",
        "Current replication role (1 for the active one).",
        &role,
    );
    o.gauge(
        "tandem_connected_clients",
        "Client connections, replication links included.",
        s.connected_clients,
    );
    o.stored(
        "tandem_connected_replicas",
        "gauge",
        "Replicas attached to this server.",
        st.map(|f| f.replicas.len().to_string()),
    );
    o.stored(
        "tandem_master_repl_offset",
        "gauge",
        "Replication offset of this server's stream.",
        st.map(|f| f.master_repl_offset.to_string()),
    );
    o.stored(
        "tandem_master_link_up",
        "gauge",
        "1 when this replica's link to its master is up (0 on a master).",
        st.map(|f| (f.master.as_ref().is_some_and(|m| m.link_up) as u8).to_string()),
    );
    o.gauge(
        "tandem_used_memory_bytes",
        "Memory allocated by the server.",
        s.used_memory,
    );
    let keys: Vec<(String, String)> = st
        .map_or(&[][..], |f| f.dbs.as_slice())
        .iter()
        .map(|d| (labels(&[("db", &d.0.to_string())]), d.1.to_string()))
        .collect();
    o.family(
        "tandem_keys",
        "gauge",
        "Keys per database (db 0 and every non-empty one).",
        &keys,
    );
    o.counter(
        "tandem_commands_processed_total",
        "Commands processed since start.",
        s.commands_processed,
    );
    o.gauge(
        "tandem_uptime_seconds",
        "Seconds since the server started.",
        s.uptime_secs,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy_snapshot() -> Snapshot {
        Snapshot {
            uptime_secs: 7,
            commands_processed: 3,
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_store_that_cannot_answer_reports_down_with_lock_free_figures() {
        let text = render(&busy_snapshot());
        assert!(text.contains("\nredis_up 0\n"), "{text}");
        assert!(text.contains("\ntandem_up 0\n"), "{text}");
        assert!(text.contains("\nredis_uptime_in_seconds 7\n"), "{text}");
        assert!(text.contains("\nredis_commands_processed_total 3\n"));
        // Store families keep their TYPE line but carry no sample.
        assert!(text.contains("# TYPE redis_connected_slaves gauge\n"));
        assert!(!text.contains("\nredis_connected_slaves "), "{text}");
    }

    #[test]
    fn labels_are_escaped_and_replicas_and_masters_are_labelled() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut s = busy_snapshot();
        s.store = Some(StoreFacts {
            dbs: vec![(0, 2, 1), (3, 5, 0)],
            commands: vec![(
                "config|get",
                Calls {
                    calls: 4,
                    usec: 1500,
                    rejected: 2,
                    failed: 1,
                },
            )],
            replicas: vec![ReplicaFacts {
                ip: "10.0.0.\"9".into(),
                port: 7001,
                state: "online",
                offset: 42,
                lag_secs: 1,
            }],
            master: Some(MasterFacts {
                host: "m".into(),
                port: 6379,
                link_up: true,
            }),
            ..StoreFacts::default()
        });
        let text = render(&s);
        for line in [
            "redis_up 1",
            "redis_db_keys{db=\"db0\"} 2",
            "redis_db_keys_expiring{db=\"db0\"} 1",
            "redis_db_keys{db=\"db3\"} 5",
            "redis_commands_total{cmd=\"config|get\"} 4",
            "redis_commands_duration_seconds_total{cmd=\"config|get\"} 0.0015",
            "redis_commands_rejected_calls_total{cmd=\"config|get\"} 2",
            "redis_commands_failed_calls_total{cmd=\"config|get\"} 1",
            "redis_connected_slave_offset_bytes{slave_ip=\"10.0.0.\\\"9\",slave_port=\"7001\",slave_state=\"online\"} 42",
            "redis_master_link_up{master_host=\"m\",master_port=\"6379\"} 1",
            "tandem_role{role=\"replica\"} 1",
            "tandem_keys{db=\"3\"} 5",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line}\n{text}");
        }
        assert!(text.contains("redis_instance_info{role=\"slave\",redis_version=\"7.0.15\""));
    }
}
