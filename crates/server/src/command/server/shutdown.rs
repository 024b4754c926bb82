//! `SHUTDOWN`.

use std::sync::atomic::Ordering::Relaxed;

use crate::command::flags::*;
use crate::command::{CommandSpec, Ctx, Keys};
use crate::error::{CmdResult, CommandError, E, NO_SHUTDOWN_IN_PROGRESS, SYNTAX};

/// The `SHUTDOWN` entry of the family's table.
pub(super) const SHUTDOWN: CommandSpec = CommandSpec::new(
    "shutdown",
    -1,
    ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
    Keys::WalkAll,
    shutdown,
)
.group("server")
.summary("Synchronously save the dataset to disk and then shut down the server")
.complexity("O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)")
.syntax("[NOSAVE | SAVE] [NOW] [FORCE] [ABORT]");

/// `SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]`: stops the server; the client gets no
/// reply, its connection just closes. O(1) (nothing to save yet).
fn shutdown(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (mut save, mut nosave, mut abort, mut other) = (false, false, false, false);
    for a in &args[1..] {
        let a = a.to_ascii_lowercase();
        match &a[..] {
            b"save" => save = true,
            b"nosave" => nosave = true,
            b"now" | b"force" => other = true,
            b"abort" => abort = true,
            _ => return Err(E(SYNTAX)),
        }
    }
    if (save && nosave) || (abort && (save || nosave || other)) {
        return Err(E(SYNTAX));
    }
    if abort {
        // A shutdown starts and completes within this command: none is ever pending.
        return Err(E(NO_SHUTDOWN_IN_PROGRESS));
    }
    if !nosave && cx.server.keyspace.gate.is_busy() {
        // A script past its limit holds the keyspace: only SHUTDOWN NOSAVE goes (as Redis).
        return Err(E(cx.server.scripts.busy_text()));
    }
    let force = args[1..].iter().any(|a| a.eq_ignore_ascii_case(b"force"));
    tracing::warn!("User requested shutdown...");
    let server = cx.server.arc();
    let st = &server.rdb_state;
    if nosave {
        st.nosave_on_exit.store(true, Relaxed);
    } else {
        st.force_save_on_exit.store(save, Relaxed);
        // Save now, so a failed save keeps the server up (unless FORCE) as in Redis.
        if !crate::persist::save_on_exit(&server) && !force {
            st.force_save_on_exit.store(false, Relaxed);
            return Err(CommandError::err("Errors trying to SHUTDOWN. Check logs."));
        }
        st.nosave_on_exit.store(true, Relaxed);
    }
    cx.server.request_shutdown();
    cx.client.close_after_reply = true;
    Ok(())
}
