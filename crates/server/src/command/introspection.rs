//! COMMAND and its subcommands, generated from the command table.

use super::CommandSpec;

pub(super) const COMMANDS: &[CommandSpec] = &[];
