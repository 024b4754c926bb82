//! The stream family (XADD, XRANGE, XREAD, consumer groups, ...).

use super::CommandSpec;

pub(super) const COMMANDS: &[CommandSpec] = &[];
