//! Command family: hashes.

use super::Command;

pub const COMMANDS: &[Command] = &[];
