//! The hash family (HSET, HGET, ...).

use super::CommandSpec;

pub(super) const COMMANDS: &[CommandSpec] = &[];
