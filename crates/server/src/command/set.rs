//! The set family (SADD, SMEMBERS, ...).

use super::CommandSpec;

pub(super) const COMMANDS: &[CommandSpec] = &[];
