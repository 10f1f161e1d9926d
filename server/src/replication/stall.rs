//! Tandem extension: the stall watch. Ticks the store's [`StallClock`] every
//! [`StallClock::TICK`] and logs a stall when the process was stopped or starved for longer
//! than [`StallClock::STALL`] (see the clock for why replication cares).

use std::sync::Arc;
use std::time::Instant;

use crate::server::repl::StallClock;
use crate::server::Server;

/// Runs until shutdown.
pub async fn watch(server: Arc<Server>) {
    let mut tick = tokio::time::interval(StallClock::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = server.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        // A script past busy-reply-threshold holds the store: waiting for it here would
        // take a runtime thread away from the clients being told BUSY. Its end then reads
        // as a stall, which it was for replication (no ACK could be read meanwhile).
        if server.script_busy.is_busy() {
            continue;
        }
        let stalled = server.store.lock().repl.stall.tick(Instant::now());
        if let Some(gap) = stalled {
            crate::warning!(
                "The process was stalled for {} ms: replica ACKs read in the next {} ms are not counted as recent",
                gap.as_millis(),
                StallClock::GRACE.as_millis()
            );
        }
    }
}
