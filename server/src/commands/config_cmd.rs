//! Command family: CONFIG (GET, SET, RESETSTAT, REWRITE, HELP).

use super::{flags::*, is_kw, CmdError, CmdResult, Command, Ctx};
use crate::config::{table, Config, Origin};
use crate::resp::Reply;
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[Command::new(
    "config",
    -2,
    NO_SCRIPT | ADMIN | LOADING | STALE,
    config,
)];

fn config(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let sub = &argv[1];
    let arity_err = |name: &str| {
        CmdError::msg(format!(
            "ERR wrong number of arguments for 'config|{name}' command"
        ))
    };
    if is_kw(sub, "get") {
        if argv.len() < 3 {
            return Err(arity_err("get"));
        }
        get(ctx, out, &argv[2..]);
        Ok(())
    } else if is_kw(sub, "set") {
        if argv.len() < 4 {
            return Err(arity_err("set"));
        }
        if argv.len() % 2 == 1 {
            return Err(CmdError::msg("ERR syntax error"));
        }
        set(ctx, out, &argv[2..])
    } else if is_kw(sub, "resetstat") {
        if argv.len() != 2 {
            return Err(arity_err("resetstat"));
        }
        // Like Redis 7.0 (`configResetStatCommand`): INFO counters only; the
        // slowlog keeps its entries (SLOWLOG RESET clears it). Per-command calls
        // and latency histograms restart too; this command is then counted as
        // their first call.
        ctx.server.stats.reset();
        ctx.store.latency.calls.clear();
        ctx.store.latency.tracking.commands.clear();
        // The fork, save, rewrite and sync counters are reset too, as Redis 7.0's
        // `resetServerStats` resets them.
        ctx.server.children.reset_stats();
        ctx.server.persist.lock().rdb_saves = 0;
        if let Some(aof) = ctx.server.aof.lock().as_mut() {
            aof.rewrites = 0;
            aof.rewrite_failures = 0;
        }
        let r = &mut ctx.store.repl;
        (r.sync_full, r.sync_partial_ok, r.sync_partial_err) = (0, 0, 0);
        out.ok();
        Ok(())
    } else if is_kw(sub, "rewrite") {
        if argv.len() != 2 {
            return Err(arity_err("rewrite"));
        }
        let mut config = ctx.config().clone();
        // The role the node has now, as Redis writes it: REPLICAOF at runtime (or a
        // failover) changed it without touching the configuration.
        let role = match ctx.store.repl.master.as_ref() {
            Some(m) => vec![m.host.clone(), m.port.to_string()],
            None => vec!["no".to_string(), "one".to_string()],
        };
        if let Err(e) = config.set("replicaof", &role, Origin::Runtime) {
            crate::warning!("CONFIG REWRITE: the replicaof line is left as it was: {e}");
        }
        // Users are written as `user` lines unless an ACL file holds them.
        config.acl_users = match config.get("aclfile") {
            Some(f) if !f.is_empty() => Vec::new(),
            _ => super::acl::user_lines(ctx.server),
        };
        let Some(path) = config.config_file.clone() else {
            return Err(CmdError::msg(
                "ERR The server is running without a config file",
            ));
        };
        match crate::config::rewrite::rewrite(&config, &path) {
            Ok(()) => {
                crate::notice!("CONFIG REWRITE executed with success.");
                out.ok();
                Ok(())
            }
            Err(e) => {
                crate::warning!("CONFIG REWRITE failed: {e}");
                Err(CmdError::msg(format!("ERR Rewriting config file: {e}")))
            }
        }
    } else if is_kw(sub, "help") && argv.len() == 2 {
        let lines = [
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
            "HELP",
            "    Print this help.",
        ];
        out.array(lines.len());
        for l in lines {
            out.simple(l);
        }
        Ok(())
    } else {
        Err(super::connection::unknown_subcommand(sub, "CONFIG"))
    }
}

fn get(ctx: &mut Ctx, out: &mut Reply, patterns: &[Bytes]) {
    let config = ctx.config();
    let mut pairs: Vec<(&'static str, String)> = Vec::new();
    for p in patterns {
        for (n, v) in config.matching(p) {
            if !pairs.iter().any(|(m, _)| *m == n) {
                pairs.push((n, v));
            }
        }
    }
    drop(config);
    out.map(pairs.len());
    for (n, v) in pairs {
        out.bulk(n.as_bytes());
        out.bulk(v.as_bytes());
    }
}

/// CONFIG SET name value [name value ...]: all pairs are validated on a copy and
/// committed together, or none is.
fn set(ctx: &mut Ctx, out: &mut Reply, pairs: &[Bytes]) -> CmdResult {
    let failed = |name: &[u8], reason: &str| {
        CmdError::msg(format!(
            "ERR CONFIG SET failed (possibly related to argument '{}') - {reason}",
            String::from_utf8_lossy(name)
        ))
    };
    let old = ctx.config().clone();
    let mut new = old.clone();
    let mut seen: Vec<&'static str> = Vec::new();
    for pair in pairs.chunks(2) {
        let (name, value) = (&pair[0], &pair[1]);
        let lname = String::from_utf8_lossy(name).to_ascii_lowercase();
        let Some(d) = table::find(&lname) else {
            return Err(CmdError::msg(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                String::from_utf8_lossy(name)
            )));
        };
        if d.has(table::I) {
            return Err(failed(name, "can't set immutable config"));
        }
        if d.has(table::P) && old.enable_protected_configs != "yes" {
            return Err(failed(name, "can't set protected config"));
        }
        if seen.contains(&d.name) {
            return Err(failed(name, "duplicate parameter"));
        }
        seen.push(d.name);
        let v = String::from_utf8_lossy(value).into_owned();
        new.set(d.name, &[v], Origin::Runtime)
            .map_err(|e| failed(name, &e))?;
        if d.has(table::L) && new.values.get(d.name) != old.values.get(d.name) {
            return Err(failed(
                name,
                "Tandem cannot change its listening sockets at runtime; restart with the new value",
            ));
        }
        if d.has(table::U) && new.values.get(d.name).map(String::as_str) != Some(d.default) {
            return Err(failed(name, table::unsafe_reason(d.name)));
        }
    }
    // Side effects that can fail are checked before anything is committed.
    if new.maxclients > old.maxclients {
        if let crate::fdlimit::Adjusted::Reduced(n)
        | crate::fdlimit::Adjusted::TooLow { current: n, .. } =
            crate::fdlimit::adjust(new.maxclients as u64)
        {
            crate::warning!(
                "Failed applying new configuration. Possibly related to new maxclients setting. Restoring previous settings."
            );
            return Err(failed(
                b"maxclients",
                &format!(
                    "The operating system is not able to handle the specified number of clients, try with {n}"
                ),
            ));
        }
    }
    if new.logfile != old.logfile && !new.logfile.is_empty() {
        if let Err(e) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&new.logfile)
        {
            return Err(failed(
                b"logfile",
                &format!("Can't open the log file: {}", crate::config::strerror(&e)),
            ));
        }
    }
    if new.get("oom-score-adj") != old.get("oom-score-adj")
        || new.get("oom-score-adj-values") != old.get("oom-score-adj-values")
    {
        let class = crate::config::oom::Class::of(&new, ctx.store.is_replica);
        if let Err(e) = ctx.server.oom_score.apply(&new, class) {
            crate::warning!("{e}");
            // Put back what the old values asked for (the write may have half-happened).
            let _ = ctx.server.oom_score.apply(&old, class);
            let name: &[u8] = if new.get("oom-score-adj-values") != old.get("oom-score-adj-values")
            {
                b"oom-score-adj-values"
            } else {
                b"oom-score-adj"
            };
            return Err(failed(
                name,
                "Failed to set current oom_score_adj. Check server logs.",
            ));
        }
    }
    // A changed TLS configuration is built (files read and checked) before the
    // commit; connections made after it get the new one. The reply is Redis's;
    // the reason goes to the log.
    let tls = crate::tls::prepare_for_set(&old, &new).map_err(|e| {
        crate::warning!("Failed to update TLS configuration: {e}");
        let name = seen
            .iter()
            .find(|n| n.starts_with("tls-"))
            .unwrap_or(&"tls");
        failed(
            name.as_bytes(),
            "Unable to update TLS configuration. Check server logs.",
        )
    })?;
    if new.dir != old.dir {
        if let Err(e) = std::env::set_current_dir(&new.dir) {
            return Err(failed(b"dir", &crate::config::strerror(&e)));
        }
    }
    if new.appendonly && !old.appendonly {
        if let Err(e) = crate::aof::start_at_runtime(ctx.server, ctx.store, &new) {
            crate::warning!("Can't turn the AOF on: {e}");
            return Err(failed(
                b"appendonly",
                "Unable to turn on AOF. Check server logs.",
            ));
        }
    } else if old.appendonly && !new.appendonly {
        crate::aof::stop_at_runtime(ctx.server);
    }
    if old.aof_timestamp_enabled != new.aof_timestamp_enabled {
        crate::aof::set_timestamps(ctx.server, new.aof_timestamp_enabled);
    }
    if old.get("aof-disable-auto-gc") == Some("yes")
        && new.get("aof-disable-auto-gc") != Some("yes")
    {
        crate::aof::collect_history(ctx.server);
    }
    commit(ctx, &old, new);
    if let Some(p) = tls {
        ctx.server.tls.install(p);
    }
    out.ok();
    Ok(())
}

fn commit(ctx: &mut Ctx, old: &Config, new: Config) {
    for d in table::all() {
        if !d.acted() && new.values.get(d.name) != old.values.get(d.name) {
            crate::warning!(
                "CONFIG SET {}: Tandem accepts but does not act on this directive",
                d.name
            );
        }
    }
    if new.loglevel != old.loglevel || new.logfile != old.logfile {
        crate::log::configure(
            &new.logfile,
            crate::log::Level::parse(&new.loglevel).unwrap_or(crate::log::Level::Notice),
        );
    }
    if new.get("crash-log-enabled") != old.get("crash-log-enabled") {
        crate::crash::set_enabled(new.get("crash-log-enabled") != Some("no"));
    }
    let maxmemory_lowered =
        new.maxmemory != 0 && (old.maxmemory == 0 || new.maxmemory < old.maxmemory);
    let max = new.maxmemory;
    ctx.store
        .set_hot(crate::server::HotConfig::from_config(&new));
    if new.requirepass != old.requirepass {
        super::acl::apply_requirepass(ctx.server, new.requirepass.as_deref());
    }
    if new.get("proc-title-template") != old.get("proc-title-template") {
        ctx.server.proc_title.refresh(&new);
    }
    if new.repl_backlog_size != old.repl_backlog_size {
        // At once, as Redis resizes it: a PSYNC right after a shrink must not be
        // served from history the new size no longer keeps.
        if let Some(b) = ctx.store.repl.backlog.as_mut() {
            b.resize(new.repl_backlog_size as usize);
        }
    }
    *ctx.server.config.write() = new;
    if maxmemory_lowered {
        let used = crate::evict::memory_for_eviction(ctx.store);
        if used > max {
            crate::warning!(
                "WARNING: the new maxmemory value set via CONFIG SET ({max}) is smaller than the current memory usage ({used}). This will result in key eviction and/or the inability to accept new write commands depending on the maxmemory-policy."
            );
        }
        // Evict right away, as Redis does; OOM here is not an error of CONFIG SET.
        let _ = crate::evict::ensure_memory(ctx.server, ctx.store);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::ClientState;
    use crate::server::Server;

    fn run(resp3: bool, args: &[&str]) -> Vec<u8> {
        let server = Server::new(Config::default());
        let mut store = crate::server::Store::new(1);
        let mut client = ClientState::new(1);
        client.resp3 = resp3;
        let mut ctx = Ctx::new(&mut store, &server, &mut client);
        let mut out = Reply::new(resp3);
        let argv: Vec<Bytes> = args.iter().map(|a| Bytes::from(a.to_string())).collect();
        match config(&mut ctx, &mut out, &argv) {
            Ok(()) => out.buf,
            Err(e) => format!("-{e}").into_bytes(),
        }
    }

    #[test]
    fn config_get_is_a_map_in_resp3_and_a_flat_array_in_resp2() {
        assert_eq!(
            run(true, &["config", "get", "maxmemory"]),
            b"%1\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
        );
        assert_eq!(
            run(false, &["config", "get", "maxmemory"]),
            b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
        );
    }

    #[test]
    fn resetstat_zeroes_info_counters() {
        let server = Server::new(Config::default());
        crate::server::Stats::incr(&server.stats.evicted_keys, 5);
        crate::server::Stats::incr(&server.stats.keyspace_hits, 2);
        let mut store = crate::server::Store::new(1);
        let mut client = ClientState::new(1);
        let mut ctx = Ctx::new(&mut store, &server, &mut client);
        let mut out = Reply::new(false);
        let argv = vec![Bytes::from("config"), Bytes::from("resetstat")];
        assert!(config(&mut ctx, &mut out, &argv).is_ok());
        assert_eq!(out.buf, b"+OK\r\n");
        assert_eq!(crate::server::Stats::get(&server.stats.evicted_keys), 0);
        assert_eq!(crate::server::Stats::get(&server.stats.keyspace_hits), 0);
    }

    #[test]
    fn config_set_commits_all_pairs_or_none() {
        let server = Server::new(Config::default());
        let mut store = crate::server::Store::new(1);
        let mut client = ClientState::new(1);
        let mut ctx = Ctx::new(&mut store, &server, &mut client);
        let mut out = Reply::new(false);
        let argv = |v: &[&str]| {
            v.iter()
                .map(|a| Bytes::from(a.to_string()))
                .collect::<Vec<_>>()
        };
        let r = config(
            &mut ctx,
            &mut out,
            &argv(&["config", "set", "hz", "50", "maxmemory-samples", "0"]),
        );
        assert!(r.is_err());
        assert_eq!(server.config.read().hz, 10);
        let r = config(
            &mut ctx,
            &mut out,
            &argv(&["config", "set", "hz", "50", "maxmemory-samples", "7"]),
        );
        assert!(r.is_ok());
        assert_eq!(server.config.read().hz, 50);
        assert_eq!(server.config.read().maxmemory_samples, 7);
    }
}
