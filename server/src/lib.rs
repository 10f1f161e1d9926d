//! Tandem's Redis-compatible replication server.
//!
//! Layers, following Redis/Valkey's module map: `resp` (protocol), `net` (connections),
//! `exec` + `commands` (command table and families), `db` + `types` (keyspace),
//! `config`, `log`. Persistence and replication attach through `propagate`.

pub mod acl;
pub mod admin;
pub mod alloc;
pub mod aof;
pub mod client;
pub mod commands;
pub mod config;
pub mod crash;
pub mod daemon;
pub mod db;
pub mod digest;
pub mod evict;
pub mod exec;
pub mod expire;
pub mod fdlimit;
pub mod flags;
pub mod latency;
pub mod log;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod outbuf;
pub mod pause;
pub mod persist;
pub mod prefetch;
pub mod proctitle;
pub mod propagate;
pub mod pubsub;
pub mod rdb;
pub mod redact;
pub mod replication;
pub mod resp;
pub mod rounds;
pub mod scripting;
pub mod server;
pub mod shutdown;
pub mod slowlog;
pub mod snapshot;
pub mod tls;
pub mod tracking;
pub mod types;
pub mod util;

use std::sync::Arc;

pub const REDIS_VERSION: &str = "7.0.15";

/// Runs the server until shutdown; binding errors are returned before serving.
/// Startup after the configuration is loaded (and the process daemonized): role
/// and banner, listeners, pidfile, then serving until shutdown.
/// `title` is the process title area `main` claimed (none in-process).
pub async fn run(
    mut config: config::Config,
    title: Option<proctitle::Claimed>,
) -> Result<(), String> {
    crate::log::set_role(if config.replicaof.is_some() {
        b'S'
    } else {
        b'M'
    });
    // Descriptors for every client first, as Redis's start-up does: a low `ulimit -n`
    // lowers `maxclients` (with Redis's warnings) instead of failing accepts later.
    match fdlimit::adjust(config.maxclients as u64) {
        fdlimit::Adjusted::Enough => {}
        fdlimit::Adjusted::Reduced(n) => {
            config.set("maxclients", &[n.to_string()], config::Origin::Runtime)?;
        }
        fdlimit::Adjusted::TooLow { current, wanted } => {
            return Err(format!(
                "Your current 'ulimit -n' of {current} is not enough for the server to start. Please increase your open file limit to at least {wanted}. Exiting."
            ));
        }
    }
    let server = server::Server::new(config.clone());
    // The scripting state from the start, so INFO shows the Lua VM as Redis does.
    commands::script_run::init(&server);
    // ACL users before the first connection: `requirepass`, `user` lines, `aclfile`.
    commands::acl::init(&server).map_err(|e| e.to_string())?;
    server.proc_title.install(title);
    banner(&config);
    let oom_class = config::oom::Class::of(&config, false);
    if let Err(e) = server.oom_score.apply(&config, oom_class) {
        warning!("{e}");
    }
    let tls = tls::Settings::from_config(&config);
    if tls.in_use() {
        server
            .tls
            .configure(&tls)
            .map_err(|e| format!("Failed to configure TLS: {e}"))?;
    }
    let listeners = bind_or_abort(&config.bind, config.port, "TCP").await?;
    let tls_listeners = bind_or_abort(&config.bind, tls.port, "TLS").await?;
    let unix_listener = net::bind_unix(&config)?;
    if listeners.is_empty() && tls_listeners.is_empty() && unix_listener.is_none() {
        return Err("Configured to not listen anywhere, exiting.".into());
    }
    // Tandem admin HTTP port: serves /healthz and /readyz ("loading") during the load.
    let admin_listeners = admin::bind(&config).await?;
    admin::spawn(&server, admin_listeners);
    warning!("Server initialized");
    daemon::write_pidfile(&config.pidfile);
    persist::load_at_startup(&server).map_err(|e| e.to_string())?;
    admin::set_loading(&server, false);
    notice!("Ready to accept connections");
    replication::start(&server);
    // The signal handlers before the first connection is served: a client that got a
    // reply and then sends SIGTERM must find them installed (the default action would
    // end the process without the shutdown's save).
    let signals = Signals::install();
    start_event_loops(&server, &config);
    for l in listeners {
        tokio::spawn(net::accept_loop(server.clone(), l, false));
    }
    for l in tls_listeners {
        tokio::spawn(net::accept_loop(server.clone(), l, true));
    }
    if let Some((l, path)) = unix_listener {
        notice!("The server is now ready to accept connections at {path}");
        tokio::spawn(net::accept_unix_loop(server.clone(), l, path));
    }
    // Idle unless TLS is in use (CONFIG SET tls-replication may turn it on).
    tokio::spawn(tls::watch::run(server.clone()));
    tokio::spawn(expire::active_expire_cycle(server.clone()));
    tokio::spawn(persist::cron(server.clone()));
    background(server, signals).await
}

/// The listeners of `port` on the `bind` addresses (none for port 0); a failure
/// is Redis's abort message.
async fn bind_or_abort(
    bind: &[String],
    port: u16,
    kind: &str,
) -> Result<Vec<tokio::net::TcpListener>, String> {
    net::bind(bind, port).await.map_err(|e| {
        warning!("{e}");
        format!("Failed listening on port {port} ({kind}), aborting.")
    })
}

/// The logo when logging to a terminal (or `always-show-logo yes`), else one line.
fn banner(config: &config::Config) {
    use std::io::IsTerminal;
    let to_tty = config.logfile.is_empty() && std::io::stdout().is_terminal();
    if !(config.always_show_logo || to_tty) {
        notice!("Running mode=standalone, port={}.", config.port);
        return;
    }
    let pid = std::process::id();
    let lines = [
        String::new(),
        "    _____                    _                ".to_string(),
        "   |_   _|_ _ _ __   __| | ___ _ __ ___      ".to_string(),
        format!("     | |/ _` | '_ \\ / _` |/ _ \\ '_ ` _ \\     Redis {REDIS_VERSION} compatible, 64 bit"),
        "     | | (_| | | | | (_| |  __/ | | | | |    Running in standalone mode".to_string(),
        format!("     |_|\\__,_|_| |_|\\__,_|\\___|_| |_| |_|    Port: {}", config.port),
        format!("                                             PID: {pid}"),
        String::new(),
    ];
    crate::log::raw(log::Level::Notice, &lines.join("\n"));
}

/// SIGTERM and SIGINT handlers (`None` if the runtime could not install one).
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }
}

/// Waits for a shutdown request or a signal and carries it out (see
/// [`shutdown`]); an aborted or failed shutdown goes back to waiting. As in
/// Redis, a signal during a shutdown is noted (and forgotten if it is aborted),
/// and SIGINT while a signal's shutdown runs exits at once, unclean (Err).
async fn background(server: Arc<server::Server>, signals: Signals) -> Result<(), String> {
    let Signals { mut term, mut int } = signals;
    async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
        match s.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    loop {
        let (flags, mut by_signal) = tokio::select! {
            f = server.shutdown_req.next_request() => (f, false),
            _ = recv(&mut term) => (signal_shutdown(&server, "SIGTERM", "shutdown-on-sigterm"), true),
            _ = recv(&mut int) => (signal_shutdown(&server, "SIGINT", "shutdown-on-sigint"), true),
        };
        let perform = shutdown::perform(&server, flags);
        tokio::pin!(perform);
        let exit = loop {
            tokio::select! {
                done = &mut perform => break done,
                _ = recv(&mut term) => {
                    warning!("Received SIGTERM scheduling shutdown...");
                    by_signal = true;
                }
                _ = recv(&mut int) => {
                    if by_signal {
                        server.children.kill_all();
                        server.announce_shutdown();
                        return Err("You insist... exiting now.".into());
                    }
                    warning!("Received SIGINT scheduling shutdown...");
                    by_signal = true;
                }
            }
        };
        if exit {
            break;
        }
    }
    // Stored even if no task listens right now: one that subscribes later (a
    // connection or replica link that came in just before the accept loop stopped)
    // still sees it (`server::stopping`).
    server.announce_shutdown();
    // Replies computed before the exit (a SCRIPT KILL answered just before the
    // script's end let the scheduled shutdown go on) are still written: each
    // connection task writes what it holds when it notices the shutdown, then leaves
    // the client table. Waited for, not guessed with a fixed sleep (a slow build
    // under load missed 20 ms); bounded, since a peer that does not read holds its
    // task up to the last write's own timeout.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    while !server.clients.lock().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    net::remove_unix_socket(&server);
    let pidfile = server.config.read().pidfile.clone();
    daemon::remove_pidfile(&pidfile);
    warning!("Redis is now ready to exit, bye bye...");
    Ok(())
}

/// A signal starts a shutdown with its configured flags.
fn signal_shutdown(server: &server::Server, sig: &str, directive: &str) -> shutdown::Flags {
    warning!("Received {sig} scheduling shutdown...");
    let words = server
        .config
        .read()
        .get(directive)
        .unwrap_or("default")
        .to_string();
    let flags = shutdown::Flags::from_config_words(&words);
    server.shutdown_req.begin(flags);
    flags
}

/// `tandem-event-loop yes` (the default): `io-threads` event-loop threads serve
/// the plain-TCP clients (`net::evloop`); otherwise each is a runtime task.
fn start_event_loops(server: &Arc<server::Server>, config: &config::Config) {
    if config.get("tandem-event-loop") != Some("yes") {
        return;
    }
    let n = config
        .get("io-threads")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    if let Err(e) = net::evloop::start(server, n) {
        warning!("Starting the event loops ({e}): clients are served by runtime tasks");
    }
}
