//! `DBSIZE`.

use crate::command::flags::*;
use crate::command::{CommandSpec, Ctx, Keys};
use crate::error::CmdResult;
use crate::storage::SHARDS;

/// The `DBSIZE` entry of the family's table.
pub(super) const DBSIZE: CommandSpec =
    CommandSpec::new("dbsize", 1, READONLY | FAST, Keys::AllDb, dbsize)
        .group("server")
        .summary("Return the number of keys in the selected database")
        .complexity("O(1)");

/// `DBSIZE`: the number of keys in the selected database. O(shards).
fn dbsize(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let db = cx.db();
    let mut n = 0;
    for i in 0..SHARDS {
        n += cx.shard_at(db, i)?.len();
    }
    cx.out.int(n as i64);
    Ok(())
}
