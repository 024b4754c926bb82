//! The list family (LPUSH, LRANGE, ...).

use super::CommandSpec;

pub(super) const COMMANDS: &[CommandSpec] = &[];
