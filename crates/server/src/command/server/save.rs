//! `SAVE`.

use crate::command::flags::*;
use crate::command::{CommandSpec, Ctx, Keys};
use crate::error::{CmdResult, CommandError, E};

/// The `SAVE` entry of the family's table.
pub(super) const SAVE: CommandSpec =
    CommandSpec::new("save", 1, ADMIN | NOSCRIPT | NO_MULTI, Keys::WalkAll, save)
        .group("server")
        .summary("Synchronously save the dataset to disk")
        .complexity("O(N) where N is the total number of keys in all databases");

/// `SAVE`: writes the dataset to `dir`/`dbfilename` and replies when it is on disk. Unlike
/// Redis, other clients keep being served meanwhile (the snapshot is point-in-time). O(N).
fn save(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    match crate::persist::save(&cx.server.arc()) {
        Ok(()) => {
            cx.out.ok();
            Ok(())
        }
        Err(crate::persist::SaveError::Busy) => {
            Err(CommandError::err("Background save already in progress"))
        }
        Err(crate::persist::SaveError::Io(e)) => {
            tracing::warn!("Failed opening the RDB file for saving: {e}");
            Err(E(crate::error::ERR_PLAIN))
        }
    }
}
