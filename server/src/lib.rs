//! Tandem's Redis-compatible replication server.
//!
//! Layers, following Redis/Valkey's module map: `resp` (protocol), `net` (connections),
//! `exec` + `commands` (command table and families), `db` + `types` (keyspace),
//! `config`, `log`. Persistence and replication attach through `propagate`.

pub mod commands;
pub mod config;
pub mod db;
pub mod evict;
pub mod exec;
pub mod log;
pub mod net;
pub mod propagate;
pub mod pubsub;
pub mod replication;
pub mod resp;
pub mod server;
pub mod shutdown;
pub mod slowlog;
pub mod types;
pub mod util;

use std::sync::Arc;

pub const REDIS_VERSION: &str = "7.0.15";

/// Runs the server until shutdown. Binding errors are returned before serving.
pub async fn run(config: config::Config) -> Result<(), String> {
    let server = server::Server::new(config.clone());
    let listeners = net::bind(&config.bind, config.port).await?;
    crate::log::set_role(b'M');
    notice!("Server initialized");
    notice!("Ready to accept connections");
    replication::start(&server);
    for l in listeners {
        tokio::spawn(net::accept_loop(server.clone(), l));
    }
    background(server).await;
    Ok(())
}

/// Waits for a shutdown request or a signal, then stops.
async fn background(server: Arc<server::Server>) {
    let mut rx = server.shutdown.subscribe();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let by_signal = tokio::select! {
        _ = rx.changed() => None,
        Some(_) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => Some("SIGTERM"),
        Some(_) = async { match int.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => Some("SIGINT"),
    };
    match by_signal {
        Some(sig) => warning!("Received {sig} scheduling shutdown..."),
        None => warning!("User requested shutdown..."),
    }
    let _ = server.shutdown.send(true);
    warning!("Redis is now ready to exit, bye bye...");
}
