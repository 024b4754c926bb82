//! The sorted set family (ZADD, ZRANGE, ...).

use super::CommandSpec;

pub(super) const COMMANDS: &[CommandSpec] = &[];
