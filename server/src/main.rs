//! `tandem-server [/path/to/redis.conf] [-] [--directive value ...]`
//!
//! Startup order follows redis-server: parse the configuration (errors go to stderr,
//! exit 1), daemonize if asked (before any thread exists: the tokio runtime is built
//! after the fork), log the banner lines, then run.

use tandem_server::{config, daemon, log, proctitle, warning, REDIS_VERSION};

fn main() {
    // Read before the process title overwrites the memory they live in.
    let argv0 = std::env::args_os()
        .next()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tandem-server".into());
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-v" | "--version") => {
            println!(
                "Redis server v={REDIS_VERSION} sha=00000000:0 malloc=libc bits=64 build=tandem-{}",
                env!("CARGO_PKG_VERSION")
            );
            return;
        }
        Some("-h" | "--help") => {
            println!(
                "Usage: tandem-server [/path/to/redis.conf] [options] [-]\n       \
                 tandem-server - (read config from stdin)\n       \
                 tandem-server -v or --version\n       \
                 tandem-server -h or --help\n\n\
                 Examples:\n       \
                 tandem-server (run the server with default config)\n       \
                 tandem-server /etc/redis/6379.conf\n       \
                 tandem-server --port 7777\n       \
                 tandem-server --port 7777 --replicaof 127.0.0.1 8888\n       \
                 tandem-server /etc/myredis.conf --loglevel verbose -"
            );
            return;
        }
        _ => {}
    }
    let mut config = match config::load_from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            std::process::exit(1);
        }
    };
    let env_bind = match config.apply_env_bind(std::env::var("TANDEM_BIND").ok().as_deref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    if config.daemonize {
        if let Err(e) = daemon::daemonize() {
            eprintln!("Failed to daemonize: {e}");
            std::process::exit(1);
        }
        if config.pidfile.is_empty() {
            // Redis's default when daemonized without a pidfile directive.
            let _ = config.set(
                "pidfile",
                &[daemon::DEFAULT_PIDFILE.to_string()],
                config::Origin::Runtime,
            );
        }
    }
    // `set-proc-title yes`: from here on `ps` shows the template, not the command
    // line (which may hold a password). Still single-threaded, as the claim needs.
    let title = if config.get("set-proc-title") == Some("yes") {
        proctitle::Claimed::claim(&argv0).map(|mut t| {
            t.refresh(&config);
            t
        })
    } else {
        None
    };
    log::configure(
        &config.logfile,
        log::Level::parse(&config.loglevel).unwrap_or(log::Level::Notice),
    );
    log::set_role(b'C');
    tandem_server::crash::set_enabled(config.get("crash-log-enabled") != Some("no"));
    tandem_server::crash::give_thread_stack();
    warning!("oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo");
    warning!(
        "Redis version={REDIS_VERSION}, bits=64, commit=00000000, modified=0, pid={}, just started",
        std::process::id()
    );
    if config.no_args {
        warning!(
            "Warning: no config file specified, using the default config. In order to specify a config file use {} /path/to/redis.conf",
            argv0
        );
    } else {
        warning!("Configuration loaded");
    }
    if let Some(addrs) = &env_bind {
        tandem_server::notice!(
            "TANDEM_BIND is set: listening on {} (replaces the bind directive)",
            addrs.join(" ")
        );
    }
    let ignored = config.not_acted_on();
    if !ignored.is_empty() {
        log::log_full(
            log::Level::Warning,
            &format!(
                "WARNING Tandem accepts but does not act on these configuration directives: {}",
                ignored.join(", ")
            ),
        );
    }
    // `io-threads N`: the runtime's worker threads (and as many event-loop threads for
    // plain-TCP clients, `net::evloop`), which run the connections (socket I/O, parsing,
    // and execution under the store lock). 1 by default as in Redis: on a busy server
    // a second thread mostly adds wake-ups and lock hand-overs (docs/benchmarks.md,
    // optimisation log).
    let workers = config
        .get("io-threads")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(workers)
        // Replies of a round go out together before the worker sleeps (`rounds`).
        .on_thread_park(tandem_server::rounds::end_round)
        // Room on each runtime thread for the crash report (`crash`).
        .on_thread_start(tandem_server::crash::give_thread_stack)
        .on_thread_stop(tandem_server::crash::take_thread_stack)
        .enable_all();
    // Connections woken together (several sockets ready in one poll) run in the
    // order their data arrived, as Redis serves its ready sockets: tokio's LIFO slot
    // would run the last one first, so a request sent on one connection could run
    // after one sent later on another (a PUBLISH counting a subscriber whose
    // UNSUBSCRIBE came first; a DEL running before the XREADGROUP BLOCK sent before
    // it). Needs `--cfg tokio_unstable` (.cargo/config.toml).
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            warning!("Failed to start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(tandem_server::run(config, title)) {
        warning!("{e}");
        std::process::exit(1);
    }
}
