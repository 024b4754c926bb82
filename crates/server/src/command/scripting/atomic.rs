//! How a script runs atomically: speculatively beside other commands, or alone.
//!
//! A script may touch keys it did not declare, so it cannot plan its shards before it starts
//! as other commands do. Two ways to run it atomically all the same:
//!
//! * **Speculatively** ([`begin_speculative`]): the script takes the shards of its declared
//!   keys, as a command takes its planned ones, and runs beside every other command and
//!   script. Before each command it calls, [`prepare`] takes the shards that command needs
//!   (declared or not) and saves a copy of each key it is about to write. A shard above
//!   every one the script holds is waited for; one below is only try-locked (the lock
//!   order of `storage::locks`), and if it is busy the script stops: [`roll_back`] puts
//!   every saved key back, drops the effects it gathered and its locks, and the script runs
//!   again alone. So does a script that calls what cannot be undone or cannot keep its
//!   shards held to its end (PUBLISH, MIGRATE, a whole-keyspace command, a write to a
//!   value too big to copy, too many keys) or runs past `busy-reply-threshold` (alone, it
//!   is then reported busy at once, and SCRIPT KILL can stop it). A script that ends
//!   holds every shard it read or wrote until then (two-phase locking), so no other client
//!   saw a state between two of its commands; [`commit`] then raises what was held back
//!   (WATCH invalidations).
//! * **Alone** ([`begin_exclusive`]): the script takes the keyspace's gate whole, waiting
//!   for every command holding shards to finish, and may then lock any shard in any order.
//!   This is how a script inside MULTI runs (EXEC takes the gate for it), and how one runs
//!   while keyspace notifications are on (their messages go out as the commands run, and
//!   could not be taken back).
//!
//! A script that had to run alone runs alone for its next [`ALONE_RUNS`] calls ([`Streak`])
//! before it speculates again, so a script that always conflicts pays for the failed try
//! once in a while, not every time.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use smallvec::SmallVec;

use super::super::{flags::*, plan, Cmd, Ctx, Keys};
use crate::storage::keyspace::shard_of;
use crate::storage::keyspace::SavedKey;
use crate::storage::locks::{shard_id, Busy};

/// Keys a speculative run may save before it would rather run alone.
const MAX_SAVED: usize = 64;
/// The biggest value (heap bytes) a speculative run copies before writing it.
const MAX_SAVED_HEAP: usize = 64 * 1024;
/// Calls a script runs alone after a speculative run of it had to stop.
const ALONE_RUNS: u32 = 256;

/// What a speculative run holds back until it ends.
#[derive(Default)]
pub struct Speculation {
    /// Keys as they were before the run first wrote them: database, key, saved state.
    saved: Vec<(usize, Box<[u8]>, Option<SavedKey>)>,
    /// Keys whose WATCHes the run invalidates, once it commits.
    pub(in crate::command) touched: Vec<(usize, Box<[u8]>)>,
}

/// A speculative run cannot go on: it rolls back and runs alone.
#[derive(Debug)]
pub(super) struct Abort;

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the script runs again alone")
    }
}

impl std::error::Error for Abort {}

/// How a script or function has fared speculating (see the module docs).
#[derive(Default)]
pub struct Streak(AtomicU32);

impl Streak {
    /// Whether this call may speculate (counting down the calls it must run alone).
    pub(super) fn speculate(&self) -> bool {
        match self.0.load(Relaxed) {
            0 => true,
            n => {
                self.0.store(n - 1, Relaxed);
                false
            }
        }
    }

    pub(super) fn aborted(&self) {
        self.0.store(ALONE_RUNS, Relaxed);
    }
}

/// Whether a script called now may run speculatively at all: run by the dispatcher for its
/// client (not inside EXEC, which holds the gate already), with keyspace notifications off,
/// and not replaying a file.
pub(super) fn may_speculate(cx: &Ctx) -> bool {
    !cx.in_exec() && !cx.replaying && cx.locks.is_empty() && cx.server.hot.notify.load(Relaxed) == 0
}

/// Starts a speculative run: takes the shards of the declared `keys` (in the selected
/// database). `Err` when a script past its time limit holds the gate (`-BUSY`).
pub(super) fn begin_speculative(cx: &mut Ctx, keys: &[&[u8]]) -> Result<(), Busy> {
    let db = cx.client.db;
    let ks = &cx.server.keyspace;
    let mut ids: SmallVec<[u32; 8]> = keys
        .iter()
        .map(|k| shard_id(db, shard_of(ks.hash(k))))
        .collect();
    cx.locks.enter(true)?;
    cx.writing = true;
    cx.take(&mut ids);
    cx.reach = 0..0;
    cx.speculation = Some(Box::default());
    Ok(())
}

/// Starts a run alone: takes the gate whole (see the module docs).
pub(super) fn begin_exclusive(cx: &mut Ctx) {
    cx.locks.exclusive();
    cx.writing = true;
    cx.reach = 0..shard_id(cx.server.keyspace.dbs.len(), 0);
}

/// Before a speculative run calls `cmd`: takes the shards it needs and saves the keys it
/// writes. `Err` if the run must stop instead (see the module docs).
pub(super) fn prepare(cx: &mut Ctx, cmd: &Cmd, args: &[&[u8]]) -> Result<(), Abort> {
    let spec = cmd.spec;
    if spec.flags & MAY_REPLICATE != 0 || spec.name == "migrate" {
        // PUBLISH and its kind: a message cannot be taken back; nor can the keys MIGRATE
        // sent to another server.
        return Err(Abort);
    }
    match spec.keys {
        Keys::Range(..) | Keys::Custom(_) => {}
        // Nothing to lock (PUBSUB NUMSUB, TIME, ...).
        Keys::None if spec.flags & WRITE == 0 => return Ok(()),
        _ => return Err(Abort),
    }
    let db = cx.client.db;
    let mut ids = SmallVec::new();
    plan(cx.server, spec, args, db, &mut ids);
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        if !cx.try_lock_id(id) {
            return Err(Abort);
        }
    }
    if spec.flags & WRITE == 0 {
        return Ok(());
    }
    // The keys it may write: by its key specs where it has several.
    let mut keys: SmallVec<[(usize, &[u8]); 4]> = SmallVec::new();
    match spec.keys {
        Keys::Range(..) => keys.extend(spec.key_positions(args.len()).map(|i| (db, args[i]))),
        Keys::Custom(f) => f(args, db, &mut |d, k| {
            // Keys borrowed from `args` (every finder returns argument slices).
            if let Some(i) = args.iter().position(|a| a.as_ptr() == k.as_ptr()) {
                keys.push((d, args[i]));
            }
        }),
        _ => {}
    }
    if keys.len() > 1 {
        if let Some(written) = cmd.written_positions(args) {
            keys.retain(|(_, k)| {
                args.iter()
                    .position(|a| a.as_ptr() == k.as_ptr())
                    .is_some_and(|i| written.contains(&i))
            });
        }
    }
    let now = cx.now;
    for (d, key) in keys {
        let spec = cx.speculation.as_ref().expect("a speculative run");
        if spec
            .saved
            .iter()
            .any(|(sd, sk, _)| *sd == d && **sk == *key)
        {
            continue;
        }
        if spec.saved.len() >= MAX_SAVED || d >= cx.server.keyspace.dbs.len() {
            return Err(Abort);
        }
        let (sh, h) = cx.shard_in(d, key).map_err(|_| Abort)?;
        let saved = sh.save_key(h, key, now, MAX_SAVED_HEAP).ok_or(Abort)?;
        let spec = cx.speculation.as_mut().expect("a speculative run");
        spec.saved.push((d, key.into(), saved));
    }
    Ok(())
}

/// Ends a speculative run that completed: WATCHes of the keys it wrote are invalidated now.
/// Its effects reach the feed as any script's do.
pub(super) fn commit(cx: &mut Ctx) {
    let Some(spec) = cx.speculation.take() else {
        return;
    };
    let writer = cx.client.id;
    for (d, key) in spec.touched {
        if let Ok((sh, _)) = cx.shard_in(d, &key) {
            sh.touch_watched(&key);
            if cx.server.tracking.active() {
                cx.server.tracking.invalidate(&key, Some(writer));
            }
        }
    }
}

/// Undoes a speculative run that stopped: puts back every key it wrote, drops the effects
/// it gathered (keys it found expired still reach the feed as DELs: they are gone either
/// way), and lets go of its shards and the gate.
pub(super) fn roll_back(cx: &mut Ctx) {
    let Some(spec) = cx.speculation.take() else {
        return;
    };
    for (d, key, saved) in spec.saved.into_iter().rev() {
        if let Ok((sh, h)) = cx.shard_in(d, &key) {
            sh.restore_key(h, &key, saved);
        }
    }
    let batch = cx.batch.take();
    for (_, g) in cx.locks.iter_mut() {
        g.expired_fed = 0;
    }
    cx.feed_expired();
    cx.batch = batch.map(|mut b| {
        b.clear();
        b
    });
    cx.effects = None;
    let released = cx.locks.release();
    cx.after_release(released);
    cx.reach = 0..0;
}
