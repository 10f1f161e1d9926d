//! `propagation-error-behavior` (with `use-exit-on-panic`): what a replica does when
//! a command from its master fails, and what an AOF load does when a logged command
//! fails. `ignore` logs the error and goes on; `panic` stops the process in both
//! cases; `panic-on-replicas` only on a read-only replica (a writable replica may
//! have diverged on purpose). As Redis does, the stop is an abort (a crash a
//! supervisor sees) unless `use-exit-on-panic` asks for `exit(1)`.

use super::Config;

/// Where the failed command came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The replication stream of this server's master.
    Master,
    /// The AOF being loaded.
    Aof,
}

/// Whether an error reply to a command from `source` stops the server.
pub fn must_stop(config: &Config, source: Source) -> bool {
    let behaviour = config.get("propagation-error-behavior").unwrap_or("ignore");
    match source {
        Source::Master => {
            config.replica_read_only && matches!(behaviour, "panic" | "panic-on-replicas")
        }
        Source::Aof => behaviour == "panic",
    }
}

/// Logs why and stops the process (never returns).
pub fn stop(config: &Config, source: Source, command: &str) -> ! {
    let (from, to) = match source {
        Source::Master => ("replica", "master"),
        Source::Aof => ("server", "AOF-loading-client"),
    };
    crate::warning!(
        "Guru Meditation: This {from} panicked sending an error to its {to} after processing the command '{}'",
        command.to_ascii_lowercase()
    );
    if config.get("use-exit-on-panic") == Some("yes") {
        std::process::exit(1);
    }
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    fn with(behaviour: &str, read_only: bool) -> Config {
        let mut c = Config::default();
        c.set(
            "propagation-error-behavior",
            &[behaviour.to_string()],
            Origin::Runtime,
        )
        .unwrap();
        let ro = if read_only { "yes" } else { "no" };
        c.set("replica-read-only", &[ro.to_string()], Origin::Runtime)
            .unwrap();
        c
    }

    #[test]
    fn stops_as_redis_7_decides() {
        assert!(!must_stop(&with("ignore", true), Source::Master));
        assert!(!must_stop(&with("ignore", true), Source::Aof));
        assert!(must_stop(&with("panic", true), Source::Master));
        assert!(must_stop(&with("panic", true), Source::Aof));
        assert!(must_stop(&with("panic-on-replicas", true), Source::Master));
        assert!(!must_stop(&with("panic-on-replicas", true), Source::Aof));
        assert!(!must_stop(&with("panic", false), Source::Master));
        assert!(must_stop(&with("panic", false), Source::Aof));
    }
}
