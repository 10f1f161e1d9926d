//! INFO: one function per section, each producing the section's `field:value` lines
//! (with Redis 7.0's field names) from the shared server state and the locked store.
//! Persistence and replication own their sections' facts; they can replace
//! [`persistence`] and [`replication`] without touching the rest.
//!
//! Layout of the reply (as Redis): `# Name\r\n` + `field:value\r\n` lines per
//! section, sections separated by an empty line (`\r\n`).

use crate::server::{Server, Stats, Store};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub type SectionFn = fn(&Arc<Server>, &Store) -> String;

/// Every section, in Redis's order: (name, title, in "default", generator).
pub const SECTIONS: &[(&str, &str, bool, SectionFn)] = &[
    ("server", "Server", true, server),
    ("clients", "Clients", true, clients),
    ("memory", "Memory", true, memory),
    ("persistence", "Persistence", true, persistence),
    ("stats", "Stats", true, stats),
    ("replication", "Replication", true, replication),
    ("cpu", "CPU", true, cpu),
    ("modules", "Modules", true, empty),
    ("commandstats", "Commandstats", false, commandstats),
    ("errorstats", "Errorstats", true, errorstats),
    ("latencystats", "Latencystats", false, latencystats),
    ("cluster", "Cluster", true, cluster),
    ("keyspace", "Keyspace", true, keyspace),
];

/// Builds the INFO text for the requested section names (case-insensitive);
/// no names = "default". "all" = every section, "everything" = all + modules.
/// Unknown names contribute nothing, as in Redis.
pub fn render(server: &Arc<Server>, store: &Store, names: &[&[u8]]) -> String {
    let lower: Vec<String> = names
        .iter()
        .map(|n| String::from_utf8_lossy(n).to_ascii_lowercase())
        .collect();
    let all = lower.iter().any(|n| n == "all" || n == "everything");
    let default = lower.is_empty() || lower.iter().any(|n| n == "default");
    let mut out = String::new();
    for (name, title, in_default, f) in SECTIONS {
        let wanted = all || (default && *in_default) || lower.iter().any(|n| n.as_str() == *name);
        if !wanted {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let _ = write!(out, "# {title}\r\n");
        out.push_str(&f(server, store));
    }
    out
}

/// One line per command that ran or was refused, under its full name
/// (`cmdstat_client|list`), with Redis 7.0's fields.
fn commandstats(_server: &Arc<Server>, store: &Store) -> String {
    let mut o = String::new();
    for (name, c) in &store.latency.calls {
        if c.calls == 0 && c.rejected == 0 && c.failed == 0 {
            continue;
        }
        let per_call = if c.calls == 0 {
            0.0
        } else {
            c.usec as f64 / c.calls as f64
        };
        let _ = write!(
            o,
            "cmdstat_{name}:calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
            c.calls, c.usec, c.rejected, c.failed
        );
    }
    o
}

/// Appends `name:value\r\n`.
fn field(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(out, "{name}:{value}\r\n");
}

/// `errorstat_<PREFIX>:count=N` per error prefix (`crate::server::error_stats`).
fn errorstats(server: &Arc<Server>, _: &Store) -> String {
    server.stats.errors.lock().info_lines()
}

fn empty(_: &Arc<Server>, _: &Store) -> String {
    String::new()
}

/// `latency_percentiles_usec_<cmd>:p50=1.003,p99=...` per tracked command, at the
/// percentiles of `latency-tracking-info-percentiles` (µs with 3 decimals).
fn latencystats(server: &Arc<Server>, store: &Store) -> String {
    let percentiles: Vec<f64> = server
        .config
        .read()
        .get("latency-tracking-info-percentiles")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let mut out = String::new();
    // With tracking off Redis prints the bare title (the histograms are kept).
    if percentiles.is_empty() || !store.hot.latency_tracking {
        return out;
    }
    for (name, h) in &store.latency.tracking.commands {
        let values: Vec<String> = percentiles
            .iter()
            .map(|p| format!("p{p}={:.3}", h.value_at_percentile(*p) as f64 / 1000.0))
            .collect();
        field(
            &mut out,
            &format!("latency_percentiles_usec_{name}"),
            values.join(","),
        );
    }
    out
}

pub fn os_string() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let ostype = read("/proc/sys/kernel/ostype");
    let release = read("/proc/sys/kernel/osrelease");
    let ostype = if ostype.is_empty() {
        "Linux".to_string()
    } else {
        ostype
    };
    format!("{ostype} {release} {}", std::env::consts::ARCH)
}

fn unix_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// Redis's LRU clock: seconds, 24 bits.
pub fn lru_clock() -> u64 {
    ((unix_micros() / 1_000_000) as u64) & ((1 << 24) - 1)
}

pub fn server(server: &Arc<Server>, _store: &Store) -> String {
    let c = server.config.read();
    let mut o = String::new();
    let uptime = server.started.elapsed().as_secs();
    field(&mut o, "redis_version", crate::REDIS_VERSION);
    field(&mut o, "redis_git_sha1", "00000000");
    field(&mut o, "redis_git_dirty", 0);
    field(&mut o, "redis_build_id", "0");
    field(&mut o, "redis_mode", "standalone");
    field(&mut o, "os", os_string());
    field(&mut o, "arch_bits", usize::BITS);
    field(&mut o, "monotonic_clock", "POSIX clock_gettime");
    field(&mut o, "multiplexing_api", "epoll");
    field(&mut o, "atomicvar_api", "c11-builtin");
    field(&mut o, "gcc_version", "0.0.0");
    field(&mut o, "process_id", std::process::id());
    field(&mut o, "process_supervised", "no");
    field(&mut o, "run_id", &server.run_id);
    field(&mut o, "tcp_port", c.port);
    field(&mut o, "server_time_usec", unix_micros());
    field(&mut o, "uptime_in_seconds", uptime);
    field(&mut o, "uptime_in_days", uptime / 86400);
    field(&mut o, "hz", c.hz);
    field(&mut o, "configured_hz", c.hz);
    field(&mut o, "lru_clock", lru_clock());
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    field(&mut o, "executable", exe);
    field(&mut o, "config_file", "");
    field(&mut o, "io_threads_active", 0);
    if let Some(ms) = server.shutdown_req.ms_left() {
        field(&mut o, "shutdown_in_milliseconds", ms);
    }
    o
}

pub fn clients(server: &Arc<Server>, store: &Store) -> String {
    // Connections that became replicas (SYNC/PSYNC) are not counted, as in Redis.
    let connected = server
        .clients
        .lock()
        .len()
        .saturating_sub(store.repl.replicas.len());
    let maxclients = server.config.read().maxclients;
    let mut o = String::new();
    field(&mut o, "connected_clients", connected);
    field(&mut o, "cluster_connections", 0);
    field(&mut o, "maxclients", maxclients);
    field(&mut o, "client_recent_max_input_buffer", 0);
    field(&mut o, "client_recent_max_output_buffer", 0);
    field(&mut o, "blocked_clients", server.blocked_clients(store));
    field(&mut o, "tracking_clients", store.tracking.counts().clients);
    field(&mut o, "clients_in_timeout_table", store.waiters.len());
    o
}

/// Resident set size of this process in bytes, from /proc/self/statm.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // Linux pages are 4 KiB on every platform Tandem targets (x86_64, aarch64 default).
    pages * 4096
}

/// Memory in use as INFO reports it: the allocator's count of live bytes, the same
/// figure `maxmemory` is checked against.
pub fn used_memory() -> u64 {
    crate::evict::used_memory()
}

/// Bytes in Redis's human format (`1.79M`, `0B`).
pub fn bytes_human(n: u64) -> String {
    let d = n as f64;
    const K: f64 = 1024.0;
    if d < K {
        format!("{n}B")
    } else if d < K * K {
        format!("{:.2}K", d / K)
    } else if d < K * K * K {
        format!("{:.2}M", d / (K * K))
    } else if d < K * K * K * K {
        format!("{:.2}G", d / (K * K * K))
    } else if d < K * K * K * K * K {
        format!("{:.2}T", d / (K * K * K * K))
    } else {
        format!("{:.2}P", d / (K * K * K * K * K))
    }
}

fn total_system_memory() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

pub fn memory(server: &Arc<Server>, store: &Store) -> String {
    let (maxmemory, policy) = {
        let c = server.config.read();
        (c.maxmemory, c.maxmemory_policy.clone())
    };
    let (used, peak) = server.stats.sample_memory();
    let rss = rss_bytes();
    let sys = total_system_memory();
    let mut o = String::new();
    field(&mut o, "used_memory", used);
    field(&mut o, "used_memory_human", bytes_human(used));
    field(&mut o, "used_memory_rss", rss);
    field(&mut o, "used_memory_rss_human", bytes_human(rss));
    field(&mut o, "used_memory_peak", peak);
    field(&mut o, "used_memory_peak_human", bytes_human(peak));
    field(
        &mut o,
        "used_memory_peak_perc",
        format!("{:.2}%", used as f64 * 100.0 / peak.max(1) as f64),
    );
    field(&mut o, "used_memory_overhead", 0);
    field(&mut o, "used_memory_startup", 0);
    field(&mut o, "used_memory_dataset", used);
    field(&mut o, "used_memory_dataset_perc", "100.00%");
    let lua = crate::scripting::memory(store);
    let fmem = super::function_lib::memory(store);
    // With the system allocator (no allocator statistics), Redis takes the resident
    // and active figures from the RSS less the Lua VMs, and the allocated one from
    // its own count; the ratios below follow from them as Redis computes them.
    let resident = rss.saturating_sub((lua.vm_eval + fmem.vm) as u64);
    field(&mut o, "allocator_allocated", used);
    field(&mut o, "allocator_active", resident);
    field(&mut o, "allocator_resident", resident);
    field(&mut o, "total_system_memory", sys);
    field(&mut o, "total_system_memory_human", bytes_human(sys));
    let (vm_functions, functions) = (fmem.vm, fmem.functions);
    field(&mut o, "used_memory_lua", lua.vm_eval);
    field(&mut o, "used_memory_vm_eval", lua.vm_eval);
    field(
        &mut o,
        "used_memory_lua_human",
        bytes_human(lua.vm_eval as u64),
    );
    field(&mut o, "used_memory_scripts_eval", lua.scripts_eval);
    field(&mut o, "number_of_cached_scripts", lua.cached_scripts);
    field(&mut o, "number_of_functions", fmem.number_of_functions);
    field(&mut o, "number_of_libraries", fmem.number_of_libraries);
    field(&mut o, "used_memory_vm_functions", vm_functions);
    let vm_total = (lua.vm_eval + vm_functions) as u64;
    field(&mut o, "used_memory_vm_total", vm_total);
    field(&mut o, "used_memory_vm_total_human", bytes_human(vm_total));
    field(&mut o, "used_memory_functions", functions);
    let scripts = (lua.scripts_eval + functions) as u64;
    field(&mut o, "used_memory_scripts", scripts);
    field(&mut o, "used_memory_scripts_human", bytes_human(scripts));
    field(&mut o, "maxmemory", maxmemory);
    field(&mut o, "maxmemory_human", bytes_human(maxmemory));
    field(&mut o, "maxmemory_policy", policy);
    let ratio = |a: u64, b: u64| format!("{:.2}", a as f64 / b.max(1) as f64);
    let diff = |a: u64, b: u64| a as i64 - b as i64;
    field(&mut o, "allocator_frag_ratio", ratio(resident, used));
    field(&mut o, "allocator_frag_bytes", diff(resident, used));
    field(&mut o, "allocator_rss_ratio", "1.00");
    field(&mut o, "allocator_rss_bytes", 0);
    field(&mut o, "rss_overhead_ratio", ratio(rss, resident));
    field(&mut o, "rss_overhead_bytes", diff(rss, resident));
    field(&mut o, "mem_fragmentation_ratio", ratio(rss, used));
    field(&mut o, "mem_fragmentation_bytes", diff(rss, used));
    field(
        &mut o,
        "mem_not_counted_for_evict",
        used.saturating_sub(crate::evict::memory_for_eviction(store)),
    );
    let (backlog, replicas) = replication_buffers(&store.repl);
    field(&mut o, "mem_replication_backlog", backlog);
    field(&mut o, "mem_total_replication_buffers", backlog + replicas);
    field(&mut o, "mem_clients_slaves", replicas);
    field(&mut o, "mem_clients_normal", 0);
    field(&mut o, "mem_cluster_links", 0);
    field(&mut o, "mem_aof_buffer", 0);
    field(&mut o, "mem_allocator", "libc");
    field(&mut o, "active_defrag_running", 0);
    field(&mut o, "lazyfree_pending_objects", 0);
    field(&mut o, "lazyfreed_objects", 0);
    o
}

/// The replication stream held in memory: the backlog's buffer, and what the
/// replicas were sent but not yet written to their sockets. The replicas share their
/// queued chunks (one copy per chunk), so the slowest replica's queue is what they
/// hold. (Redis 7.0 shares one buffer between backlog and replicas and reports the
/// part past `repl-backlog-size` as the replicas'; Tandem's are two buffers.)
fn replication_buffers(r: &crate::replication::ReplState) -> (u64, u64) {
    let backlog = r.backlog.as_ref().map_or(0, |b| b.memory() as u64);
    let replicas = r
        .replicas
        .iter()
        .map(|l| l.queued.load(std::sync::atomic::Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    (backlog, replicas)
}

/// INFO persistence, in Redis 7.0's order: RDB fields from `persist`, AOF fields
/// (write status, rewrite status, sizes and buffer when on) from `aof`.
pub fn persistence(server: &Arc<Server>, store: &Store) -> String {
    let mut o = String::new();
    for (k, v) in crate::persist::info_fields(server, store) {
        field(&mut o, &k, v);
    }
    o
}

pub fn stats(server: &Arc<Server>, store: &Store) -> String {
    let s = &server.stats;
    let g = Stats::get;
    let mut o = String::new();
    field(
        &mut o,
        "total_connections_received",
        g(&s.total_connections_received),
    );
    field(
        &mut o,
        "total_commands_processed",
        g(&s.total_commands_processed),
    );
    field(&mut o, "instantaneous_ops_per_sec", ops_per_sec(server));
    field(&mut o, "total_net_input_bytes", g(&s.net_input_bytes));
    field(&mut o, "total_net_output_bytes", g(&s.net_output_bytes));
    field(&mut o, "total_net_repl_input_bytes", 0);
    field(&mut o, "total_net_repl_output_bytes", 0);
    field(&mut o, "instantaneous_input_kbps", "0.00");
    field(&mut o, "instantaneous_output_kbps", "0.00");
    field(&mut o, "instantaneous_input_repl_kbps", "0.00");
    field(&mut o, "instantaneous_output_repl_kbps", "0.00");
    field(&mut o, "rejected_connections", g(&s.rejected_connections));
    for (k, v) in crate::replication::stats_fields(store) {
        field(&mut o, &k, v);
    }
    field(&mut o, "expired_keys", g(&s.expired_keys));
    field(&mut o, "expired_stale_perc", "0.00");
    field(&mut o, "expired_time_cap_reached_count", 0);
    field(&mut o, "expire_cycle_cpu_milliseconds", 0);
    field(&mut o, "evicted_keys", g(&s.evicted_keys));
    field(&mut o, "evicted_clients", 0);
    field(&mut o, "total_eviction_exceeded_time", 0);
    field(&mut o, "current_eviction_exceeded_time", 0);
    field(&mut o, "keyspace_hits", g(&s.keyspace_hits));
    field(&mut o, "keyspace_misses", g(&s.keyspace_misses));
    field(&mut o, "pubsub_channels", store.pubsub.channels.len());
    field(&mut o, "pubsub_patterns", store.pubsub.patterns.len());
    field(
        &mut o,
        "pubsubshard_channels",
        store.pubsub.shard_channels.len(),
    );
    field(
        &mut o,
        "latest_fork_usec",
        server.children.latest_fork_usec(),
    );
    field(&mut o, "total_forks", server.children.total_forks());
    field(&mut o, "migrate_cached_sockets", 0);
    field(&mut o, "slave_expires_tracked_keys", 0);
    field(&mut o, "active_defrag_hits", 0);
    field(&mut o, "active_defrag_misses", 0);
    field(&mut o, "active_defrag_key_hits", 0);
    field(&mut o, "active_defrag_key_misses", 0);
    field(&mut o, "total_active_defrag_time", 0);
    field(&mut o, "current_active_defrag_time", 0);
    let tracking = store.tracking.counts();
    field(&mut o, "tracking_total_keys", tracking.keys);
    field(&mut o, "tracking_total_items", tracking.items);
    field(&mut o, "tracking_total_prefixes", tracking.prefixes);
    field(
        &mut o,
        "unexpected_error_replies",
        g(&s.unexpected_error_replies),
    );
    field(&mut o, "total_error_replies", g(&s.total_error_replies));
    field(&mut o, "dump_payload_sanitizations", 0);
    field(&mut o, "total_reads_processed", 0);
    field(&mut o, "total_writes_processed", 0);
    field(&mut o, "io_threaded_reads_processed", 0);
    field(&mut o, "io_threaded_writes_processed", 0);
    field(&mut o, "reply_buffer_shrinks", 0);
    field(&mut o, "reply_buffer_expands", 0);
    o
}

/// Operations per second since the previous INFO call (at least 100 ms apart,
/// otherwise the previous figure is repeated). Redis samples in its cron; Tandem
/// samples lazily, which gives the same figure for a client polling INFO.
fn ops_per_sec(server: &Arc<Server>) -> u64 {
    let now_cmds = server
        .stats
        .total_commands_processed
        .load(Ordering::Relaxed);
    let mut last = server.ops_sample.lock();
    let dt = last.0.elapsed();
    if dt.as_millis() >= 100 {
        let ops = now_cmds.saturating_sub(last.1) as f64 / dt.as_secs_f64();
        *last = (std::time::Instant::now(), now_cmds, ops as u64);
    }
    last.2
}

/// The replication section, from the replication subsystem (`replication::info_fields`).
pub fn replication(server: &Arc<Server>, store: &Store) -> String {
    let mut o = String::new();
    for (k, v) in crate::replication::info_fields(server, store) {
        field(&mut o, &k, v);
    }
    o
}

/// (user, system) CPU seconds of this process, from /proc/self/stat (in USER_HZ
/// ticks, which Linux fixes at 100 per second for this interface).
pub fn cpu_times() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may contain spaces; fields after it follow ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is index 0, so utime (field 14) is index 11, stime index 12.
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (tick(11), tick(12))
}

pub fn cpu(_server: &Arc<Server>, _store: &Store) -> String {
    let (user, sys) = cpu_times();
    let mut o = String::new();
    field(&mut o, "used_cpu_sys", format!("{sys:.6}"));
    field(&mut o, "used_cpu_user", format!("{user:.6}"));
    field(&mut o, "used_cpu_sys_children", "0.000000");
    field(&mut o, "used_cpu_user_children", "0.000000");
    field(&mut o, "used_cpu_sys_main_thread", format!("{sys:.6}"));
    field(&mut o, "used_cpu_user_main_thread", format!("{user:.6}"));
    o
}

pub fn cluster(_server: &Arc<Server>, _store: &Store) -> String {
    "cluster_enabled:0\r\n".to_string()
}

pub fn keyspace(_server: &Arc<Server>, store: &Store) -> String {
    let mut o = String::new();
    for (i, db) in store.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        let _ = write!(
            o,
            "db{i}:keys={},expires={},avg_ttl=0\r\n",
            db.len(),
            db.expires_count()
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_like_redis() {
        assert_eq!(bytes_human(0), "0B");
        assert_eq!(bytes_human(1023), "1023B");
        assert_eq!(bytes_human(1880456), "1.79M");
        assert_eq!(bytes_human(25276510208), "23.54G");
    }

    #[test]
    fn sections_follow_default_all_and_names() {
        let server = Server::new(crate::config::Config::default());
        let store = Store::new(16);
        let default = render(&server, &store, &[]);
        assert!(default.starts_with("# Server\r\nredis_version:7.0.15\r\n"));
        assert!(default.contains("\r\n\r\n# Keyspace\r\n"));
        assert!(!default.contains("# Commandstats"));
        let all = render(&server, &store, &[b"all"]);
        assert!(all.contains("# Commandstats"));
        let two = render(&server, &store, &[b"CPU", b"memory"]);
        assert!(two.starts_with("# Memory\r\n"));
        assert!(two.contains("\r\n\r\n# CPU\r\nused_cpu_sys:"));
        assert_eq!(render(&server, &store, &[b"nosuch"]), "");
    }
}
