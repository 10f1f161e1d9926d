//! Command family: pubsub.

use super::Command;

pub const COMMANDS: &[Command] = &[];
