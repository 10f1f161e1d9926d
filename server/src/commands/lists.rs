//! Command family: lists.

use super::Command;

pub const COMMANDS: &[Command] = &[];
