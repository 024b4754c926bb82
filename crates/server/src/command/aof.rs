//! Append-only file commands: BGREWRITEAOF. The work is `crate::aof`'s.

use super::flags::*;
use super::{CommandSpec, Ctx, Keys};
use crate::aof::rewrite::{self, StartError, Started};
use crate::error::{CmdResult, AOF_REWRITE_FAILED, AOF_REWRITE_IN_PROGRESS, E};

pub(super) const COMMANDS: &[CommandSpec] = &[CommandSpec::new(
    "bgrewriteaof",
    1,
    ADMIN | NOSCRIPT,
    Keys::WalkAll,
    bgrewriteaof,
)
.group("server")
.summary("Asynchronously rewrite the append-only file")
.complexity("O(1)")];

/// `BGREWRITEAOF`: starts rewriting the AOF in the background (clients keep being served),
/// or schedules it while a snapshot is being written. O(1) here; the rewrite is O(N).
fn bgrewriteaof(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    match rewrite::request(cx.server, cx.in_exec()) {
        Ok(Started::Now) => cx
            .out
            .simple("Background append only file rewriting started"),
        Ok(Started::Scheduled) => cx
            .out
            .simple("Background append only file rewriting scheduled"),
        Err(StartError::InProgress) => return Err(E(AOF_REWRITE_IN_PROGRESS)),
        Err(StartError::Failed(_)) => return Err(E(AOF_REWRITE_FAILED)),
    }
    Ok(())
}
