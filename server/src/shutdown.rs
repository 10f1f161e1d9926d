//! Orderly shutdown (SHUTDOWN, SIGTERM, SIGINT).

use crate::server::Server;
use std::sync::Arc;

/// What the last shutdown request asked for: None = default (save if save points
/// are configured), Some(true) = SAVE, Some(false) = NOSAVE.
static SAVE_MODE: parking_lot::Mutex<Option<bool>> = parking_lot::Mutex::new(None);

/// Asks the server to stop; the main task performs the final steps.
pub fn request(server: &Arc<Server>, save: Option<bool>) {
    *SAVE_MODE.lock() = save;
    let _ = server.shutdown.send(true);
}

pub fn requested_save_mode() -> Option<bool> {
    *SAVE_MODE.lock()
}
