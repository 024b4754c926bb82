//! Server commands: INFO, CONFIG, COMMAND, CLIENT, DEBUG, DBSIZE, FLUSHDB, FLUSHALL, ...

use super::flags::*;
use super::{CommandSpec, Ctx, Keys};
use crate::error::{CmdResult, CommandError, E, CLIENT_NAME};

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("dbsize", 1, READONLY | FAST, Keys::AllDb, dbsize)
        .group("server")
        .summary("Returns the number of keys in the database.")
        .complexity("O(1)"),
];

/// `DBSIZE`
fn dbsize(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let db = cx.db();
    let mut n = 0;
    for i in 0..crate::storage::SHARDS {
        n += cx.shard_at(db, i)?.len();
    }
    cx.out.int(n as i64);
    Ok(())
}

/// Client names may not contain spaces or special characters (CLIENT SETNAME, HELLO).
pub(super) fn validate_client_name(name: &[u8]) -> CmdResult {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(E(CLIENT_NAME));
    }
    let _ = CommandError::syntax;
    Ok(())
}
