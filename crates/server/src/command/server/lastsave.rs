//! `LASTSAVE`.

use std::sync::atomic::Ordering::Relaxed;

use crate::command::flags::*;
use crate::command::{CommandSpec, Ctx, Keys};
use crate::error::CmdResult;

/// The `LASTSAVE` entry of the family's table.
pub(super) const LASTSAVE: CommandSpec =
    CommandSpec::new("lastsave", 1, LOADING | STALE | FAST, Keys::None, lastsave)
        .group("server")
        .summary("Get the UNIX time stamp of the last successful save to disk")
        .complexity("O(1)");

/// `LASTSAVE`: unix time of the last successful save (start-up counts as one). O(1).
fn lastsave(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let ms = cx.server.rdb_state.last_save_ms.load(Relaxed);
    cx.out.int((ms / 1000) as i64);
    Ok(())
}
