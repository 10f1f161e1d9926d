//! Command family: server.

use super::Command;

pub const COMMANDS: &[Command] = &[];
