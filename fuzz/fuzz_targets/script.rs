//! Script sources through the whole scripting engine: `EVAL_RO <input> 1 k v` as a
//! client sends it (compile, sandbox, redis.* API, command calls through the exec
//! door, Lua -> RESP conversion). Never a panic, always a reply. Read-only so every
//! runaway script can be killed: a watchdog thread kills scripts that pass the
//! 50 ms busy threshold, as SCRIPT KILL would.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tandem_server::commands::ClientState;
use tandem_server::config::{Config, Origin};
use tandem_server::resp::Reply;
use tandem_server::server::Server;

/// One server for the whole run (state a fuzz binary keeps between inputs).
fn server() -> &'static Arc<Server> {
    static SERVER: OnceLock<Arc<Server>> = OnceLock::new();
    SERVER.get_or_init(|| {
        let mut config = Config::default();
        config
            .set("busy-reply-threshold", &["50".to_string()], Origin::Runtime)
            .expect("busy-reply-threshold");
        let server = Server::new(config);
        {
            let mut store = server.store.lock();
            for (k, v) in [("k", "v"), ("n", "10")] {
                store.dbs[0].set(k, tandem_server::types::Value::Str(Bytes::from(v).into()), 0);
            }
        }
        let watchdog = server.clone();
        std::thread::spawn(move || loop {
            // A poll interval, not a wait for an event: the watchdog kills scripts that
            // run past their budget, as SCRIPT KILL would.
            std::thread::sleep(std::time::Duration::from_millis(10));
            if watchdog.script_busy.is_busy() {
                watchdog.script_busy.request_kill();
            }
        });
        server
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, src)) = data.split_first() else {
        return;
    };
    // libFuzzer calls this closure with no context to carry state in: the input count
    // that paces cache flushes has to live in the harness, never in the server.
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let server = server();
    let mut store = server.store.lock();
    // EVAL caches every script it sees, as Redis does: drop them now and then.
    if RUNS.fetch_add(1, Ordering::Relaxed) % 1000 == 999 {
        // Dropping the state flushes it: the next EVAL starts a fresh VM and cache.
        store.scripts.0 = None;
    }
    let mut client = ClientState::new(1);
    client.authenticated = true;
    client.resp3 = flags & 1 != 0;
    let mut out = Reply::new(client.resp3);
    let argv = vec![
        Bytes::from_static(b"EVAL_RO"),
        Bytes::copy_from_slice(src),
        Bytes::from_static(b"1"),
        Bytes::from_static(b"k"),
        Bytes::from_static(b"v"),
    ];
    let _ = tandem_server::exec::process(server, &mut store, &mut client, None, argv, &mut out);
    assert!(!out.buf.is_empty(), "EVAL_RO gave no reply");
});
