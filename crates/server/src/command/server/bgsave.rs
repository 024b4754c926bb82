//! `BGSAVE`.

use std::sync::atomic::Ordering::Relaxed;

use crate::command::flags::*;
use crate::command::{CommandSpec, Ctx, Keys};
use crate::error::{CmdResult, CommandError, E, SYNTAX};

/// The `BGSAVE` entry of the family's table.
pub(super) const BGSAVE: CommandSpec =
    CommandSpec::new("bgsave", -1, ADMIN | NOSCRIPT, Keys::WalkAll, bgsave)
        .group("server")
        .summary("Asynchronously save the dataset to disk")
        .complexity("O(1)")
        .syntax("[SCHEDULE]");

/// `BGSAVE [SCHEDULE]`: takes a point-in-time snapshot now and writes it in the
/// background. O(1) to start.
fn bgsave(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let schedule = match args.get(1) {
        None => false,
        Some(a) if a.eq_ignore_ascii_case(b"schedule") && args.len() == 2 => true,
        Some(_) => return Err(E(SYNTAX)),
    };
    let server = cx.server.arc();
    // Inside EXEC the transaction holds shard locks the snapshot point needs: schedule it
    // (as Redis does inside EXEC), the cron starts it right after.
    if server.snapshot.in_progress.load(Relaxed) || cx.in_exec() {
        if schedule || cx.in_exec() {
            server.rdb_state.scheduled.store(true, Relaxed);
            cx.out.simple("Background saving scheduled");
            return Ok(());
        }
        return Err(CommandError::err("Background save already in progress"));
    }
    match crate::persist::bgsave(&server) {
        Ok(()) => {
            cx.out.simple("Background saving started");
            Ok(())
        }
        Err(_) if schedule => {
            server.rdb_state.scheduled.store(true, Relaxed);
            cx.out.simple("Background saving scheduled");
            Ok(())
        }
        Err(_) => Err(CommandError::err("Background save already in progress")),
    }
}
