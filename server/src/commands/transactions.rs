//! Command family: transactions.

use super::Command;

pub const COMMANDS: &[Command] = &[];
