//! `FLUSHDB` and `FLUSHALL`, which share their `[ASYNC | SYNC]` handling and the emptying
//! of databases.

use std::sync::atomic::Ordering::Relaxed;

use super::lazyfree::{LAZYFREED, LAZYFREE_PENDING, LAZYFREE_THRESHOLD};
use crate::command::flags::*;
use crate::command::{CommandSpec, Ctx, Keys};
use crate::error::{CmdResult, CommandError, E, SYNTAX};
use crate::storage::{Shard, SHARDS};

/// The `FLUSHDB` entry of the family's table.
pub(super) const FLUSHDB: CommandSpec =
    CommandSpec::new("flushdb", -1, WRITE, Keys::AllDb, flushdb)
        .group("server")
        .summary("Remove all keys from the current database")
        .complexity("O(N) where N is the number of keys in the selected database")
        .syntax("[ASYNC | SYNC]");

/// The `FLUSHALL` entry of the family's table.
pub(super) const FLUSHALL: CommandSpec =
    CommandSpec::new("flushall", -1, WRITE, Keys::AllDbs, flushall)
        .group("server")
        .summary("Remove all keys from all databases")
        .complexity("O(N) where N is the total number of keys in all databases")
        .syntax("[ASYNC | SYNC]");

/// The `[ASYNC | SYNC]` argument of FLUSHDB/FLUSHALL: whether to free in the background.
fn flush_async(cx: &Ctx, args: &[&[u8]]) -> Result<bool, CommandError> {
    match args {
        [_] => Ok(cx.server.config.read().get_bool("lazyfree-lazy-user-flush")),
        [_, a] if a.eq_ignore_ascii_case(b"async") => Ok(true),
        [_, a] if a.eq_ignore_ascii_case(b"sync") => Ok(false),
        _ => Err(E(SYNTAX)),
    }
}

/// Empties the listed databases (whose shards the key spec locked). Returns the number of
/// keys removed. With `lazy`, the keys are moved out and freed on another thread, so the
/// locks are held only for the moves.
fn flush_dbs(cx: &mut Ctx, dbs: std::ops::Range<usize>, lazy: bool) -> Result<usize, CommandError> {
    let mut removed = 0;
    let mut garbage: Vec<Shard> = Vec::new();
    for db in dbs {
        for idx in 0..SHARDS {
            let sh = cx.shard_at(db, idx)?;
            if sh.is_empty() {
                continue;
            }
            removed += sh.len();
            if lazy {
                garbage.push(sh.take());
            } else {
                sh.clear();
            }
        }
    }
    // Every tracking client is told that every key changed (Redis's null invalidation).
    cx.server.tracking.flushed();
    if lazy && removed > LAZYFREE_THRESHOLD {
        LAZYFREE_PENDING.fetch_add(removed as u64, Relaxed);
        let spawned = std::thread::Builder::new()
            .name("kiln-lazyfree".into())
            .spawn(move || {
                drop(garbage);
                LAZYFREE_PENDING.fetch_sub(removed as u64, Relaxed);
                LAZYFREED.fetch_add(removed as u64, Relaxed);
            });
        if spawned.is_err() {
            // No thread to spare: the closure (and the garbage) was dropped right here.
            LAZYFREE_PENDING.fetch_sub(removed as u64, Relaxed);
        }
    }
    Ok(removed)
}

/// `FLUSHDB [ASYNC | SYNC]`: removes every key of the selected database. O(N) keys (O(1)
/// with ASYNC).
fn flushdb(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let lazy = flush_async(cx, args)?;
    let db = cx.db();
    let removed = flush_dbs(cx, db..db + 1, lazy)?;
    cx.dirty(removed as u64);
    // Fed even when there was nothing to remove, as in Redis: a replica holding keys its
    // primary lacks is emptied too.
    cx.propagate(args);
    cx.out.ok();
    Ok(())
}

/// `FLUSHALL [ASYNC | SYNC]`: removes every key of every database. O(N) keys (O(1) with
/// ASYNC).
fn flushall(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let lazy = flush_async(cx, args)?;
    let n = cx.server.keyspace.dbs.len();
    let removed = flush_dbs(cx, 0..n, lazy)?;
    cx.dirty(removed as u64);
    // Fed even when every database was empty (see FLUSHDB).
    cx.propagate(args);
    cx.out.ok();
    Ok(())
}
