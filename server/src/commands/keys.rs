//! Command family: keys.

use super::Command;

pub const COMMANDS: &[Command] = &[];
