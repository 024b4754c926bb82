//! `SWAPDB`.

use crate::command::flags::*;
use crate::command::{CommandSpec, Ctx, Keys};
use crate::error::{CmdResult, CommandError, DB_INDEX, E, INVALID_FIRST_DB, INVALID_SECOND_DB};
use crate::storage::SHARDS;
use crate::util::parse_i64;

/// The `SWAPDB` entry of the family's table.
pub(super) const SWAPDB: CommandSpec = CommandSpec::new(
    "swapdb",
    3,
    WRITE | FAST,
    Keys::AllDbs,
    swapdb,
)
.group("server")
.since("4.0.0")
.summary("Swaps two Redis databases")
.complexity(
    "O(N) where N is the count of clients watching or blocking on keys from both databases.",
)
.syntax("index1 index2");

/// A SWAPDB index: an integer in C `int` range (else `invalid`), then a valid database.
fn db_index(cx: &Ctx, arg: &[u8], invalid: &'static str) -> Result<usize, CommandError> {
    let v = parse_i64(arg)
        .filter(|v| i32::try_from(*v).is_ok())
        .ok_or(E(invalid))?;
    usize::try_from(v)
        .ok()
        .filter(|&v| v < cx.server.keyspace.dbs.len())
        .ok_or(E(DB_INDEX))
}

/// `SWAPDB index1 index2`: exchanges the contents of two databases; clients see the other
/// dataset at once. O(shards).
fn swapdb(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if cx.server.cluster.is_some() {
        return Err(crate::error::CommandError::err(
            "SWAPDB is not allowed in cluster mode",
        ));
    }
    let a = db_index(cx, args[1], INVALID_FIRST_DB);
    let b = db_index(cx, args[2], INVALID_SECOND_DB);
    // Both are parsed before either range check, as Redis does.
    let (a, b) = match (a, b) {
        (Err(e), _) if e != E(DB_INDEX) => return Err(e),
        (_, Err(e)) if e != E(DB_INDEX) => return Err(e),
        (a, b) => (a?, b?),
    };
    if a != b {
        for idx in 0..SHARDS {
            let mut moving = cx.shard_at(a, idx)?.take();
            cx.shard_at(b, idx)?.swap_contents(&mut moving);
            cx.shard_at(a, idx)?.swap_contents(&mut moving);
        }
    }
    cx.dirty(1);
    cx.out.ok();
    Ok(())
}
