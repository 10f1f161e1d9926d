//! Command family: zsets.

use super::Command;

pub const COMMANDS: &[Command] = &[];
