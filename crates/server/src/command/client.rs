//! CLIENT subcommands and RESET.

use super::CommandSpec;

pub(super) const COMMANDS: &[CommandSpec] = &[];
