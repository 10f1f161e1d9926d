//! Tandem extension: the stall watch. Ticks the server's [`StallClock`] every
//! [`StallClock::TICK`] (never waiting for the store lock) and logs a stall when the process
//! was stopped or starved for longer than [`StallClock::STALL`] (see the clock for why
//! replication cares).

use std::sync::Arc;
use std::time::Instant;

use crate::server::repl::StallClock;
use crate::server::Server;

/// Runs until shutdown.
pub async fn watch(server: Arc<Server>) {
    let mut tick = tokio::time::interval(StallClock::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = server.shutdown.subscribe();
    // The time between the server's creation and this start (loading) is no stall.
    let _ = server.stall.tick(Instant::now());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::server::stopping(&mut shutdown) => return,
        }
        let stalled = server.stall.tick(Instant::now());
        if let Some(gap) = stalled {
            crate::warning!(
                "The process was stalled for {} ms: replica ACKs read in the next {} ms are not counted as recent",
                gap.as_millis(),
                StallClock::GRACE.as_millis()
            );
        }
    }
}
