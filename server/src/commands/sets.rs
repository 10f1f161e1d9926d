//! Command family: sets.

use super::Command;

pub const COMMANDS: &[Command] = &[];
