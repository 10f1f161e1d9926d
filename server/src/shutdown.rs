//! Orderly shutdown (SHUTDOWN, SIGTERM, SIGINT).

use crate::server::Server;
use std::sync::Arc;

/// Asks the server to stop; the main task performs the final steps. `save`: None =
/// default (save if save points are configured), Some(true) = SAVE, Some(false) = NOSAVE.
pub fn request(server: &Arc<Server>, save: Option<bool>) {
    *server.shutdown_save.lock() = save;
    let _ = server.shutdown.send(true);
}

/// What the last shutdown request asked for (see [`request`]).
pub fn requested_save_mode(server: &Server) -> Option<bool> {
    *server.shutdown_save.lock()
}
