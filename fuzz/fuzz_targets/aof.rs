//! The AOF loader and replayer on arbitrary bytes, through the startup path
//! (`aof::load_at_startup`): the bytes are the only file of a manifest, so they may be
//! an RDB preamble followed by commands, commands alone, or a torn tail. An error or a
//! load, never a panic.
//!
//! Commands with process-level effects are not replayed here (the input is skipped):
//! SHUTDOWN and DEBUG (exit, sleep, crash on purpose), SAVE/BGSAVE/BGREWRITEAOF (fork
//! or rewrite files), REPLICAOF/SLAVEOF/SYNC/PSYNC/REPLCONF/FAILOVER (network),
//! MONITOR and CONFIG. Redis replays them too; they are tested elsewhere.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use tandem_server::config::Config;
use tandem_server::server::Server;

const DENY: &[&[u8]] = &[
    b"shutdown",
    b"debug",
    b"save",
    b"bgrewriteaof",
    b"replicaof",
    b"slaveof",
    b"sync",
    b"replconf",
    b"failover",
    b"monitor",
    b"config",
];

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // tmpfs when there is one: the loader fsyncs after truncating a torn tail.
        let d = tandem_fuzz::scratch_dir("aof");
        let _ = std::fs::create_dir_all(d.join("appendonlydir"));
        d
    })
}

fn denied(data: &[u8]) -> bool {
    let lower = data.to_ascii_lowercase();
    DENY.iter()
        .any(|name| lower.windows(name.len()).any(|w| w == *name))
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, file)) = data.split_first() else {
        return;
    };
    if denied(file) {
        return;
    }
    let root = dir();
    let aof_dir = root.join("appendonlydir");
    let written = std::fs::write(
        aof_dir.join("appendonly.aof.manifest"),
        "file appendonly.aof.1.incr.aof seq 1 type i\n",
    )
    .and_then(|_| std::fs::write(aof_dir.join("appendonly.aof.1.incr.aof"), file));
    if written.is_err() {
        return;
    }
    let config = Config {
        dir: root.to_string_lossy().into_owned(),
        appendonly: true,
        aof_load_truncated: flags & 1 != 0,
        // `appendfsync no`: no fsync per replayed write.
        appendfsync: "no".into(),
        ..Config::default()
    };
    let server = Server::new(config);
    let _ = tandem_server::aof::load_at_startup(&server);
});
