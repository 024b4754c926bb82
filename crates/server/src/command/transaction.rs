//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! While a client is in MULTI the dispatcher queues its commands (after the checks Redis
//! does at queue time; a failed check makes EXEC abort). EXEC takes, in the global order,
//! the locks of every shard any queued command (and any watched key) lives in, checks the
//! watched keys, and runs the queue inside those locks: no other client can observe a state
//! between two commands of the transaction, on any thread. Waiters blocked on keys the
//! transaction filled are served at the end, still inside the locks.
//!
//! WATCH registers a per-client "dirty" flag on each watched key in its shard; any write to
//! the key (or its expiry, FLUSHDB, FLUSHALL, SWAPDB) sets the flag. Cost: O(watched keys).

use std::sync::atomic::Ordering::Relaxed;

use smallvec::SmallVec;

use super::flags::*;
use super::{CommandSpec, Ctx, Keys, Mode};
use crate::error::{CmdResult, CommandError, E};
use crate::storage::keyspace::shard_of;
use crate::storage::shard_id;

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "multi",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        Keys::None,
        multi,
    )
    .group("transactions")
    .since("1.2.0")
    .summary("Starts a transaction.")
    .complexity("O(1)"),
    CommandSpec::new(
        "exec",
        1,
        NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG,
        Keys::None,
        exec,
    )
    .group("transactions")
    .since("1.2.0")
    .summary("Executes all commands in a transaction.")
    .complexity("Depends on commands in the transaction"),
    CommandSpec::new(
        "discard",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        Keys::None,
        discard,
    )
    .group("transactions")
    .since("2.0.0")
    .summary("Discards a transaction.")
    .complexity("O(N), when N is the number of queued commands"),
    CommandSpec::new(
        "watch",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        Keys::Range(1, -1, 1),
        watch,
    )
    .group("transactions")
    .since("2.2.0")
    .summary("Monitors changes to keys to determine the execution of a transaction.")
    .complexity("O(1) for every key.")
    .syntax("key [key ...]"),
    CommandSpec::new(
        "unwatch",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        Keys::None,
        unwatch,
    )
    .group("transactions")
    .since("2.2.0")
    .summary("Forgets about watched keys of a transaction.")
    .complexity("O(1)"),
];

/// A transaction being queued.
#[derive(Default)]
pub struct Multi {
    pub queue: Vec<Vec<Vec<u8>>>,
    /// A command was refused while queuing: EXEC aborts.
    pub error: bool,
}

/// Commands that run immediately inside MULTI instead of being queued.
pub(super) fn runs_inside_multi(name: &str) -> bool {
    matches!(
        name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

/// `MULTI`
fn multi(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    if cx.client.multi.is_some() {
        return Err(CommandError::err("MULTI calls can not be nested"));
    }
    cx.client.multi = Some(Multi::default());
    cx.client.handle.multi.store(0, Relaxed);
    super::client::set_flag(&mut cx.client.handle.info.lock().flags, 'x', true);
    cx.out.ok();
    Ok(())
}

/// `DISCARD`
fn discard(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    if cx.client.multi.is_none() {
        return Err(CommandError::err("DISCARD without MULTI"));
    }
    end_multi(cx);
    unwatch_all(cx);
    cx.out.ok();
    Ok(())
}

/// Drops the transaction and its WATCHes without a reply (an EXEC redirected elsewhere
/// in cluster mode: the client is told where to go, not EXECABORT).
pub(super) fn discard_quietly(cx: &mut Ctx) {
    end_multi(cx);
    unwatch_all(cx);
}

/// EXEC rejected before it ran (wrong arity, not authenticated): the transaction is
/// discarded and the reply says why.
pub(super) fn abort(cx: &mut Ctx, why: &str) {
    end_multi(cx);
    unwatch_all(cx);
    let why = why.strip_prefix("ERR ").unwrap_or(why);
    cx.out.error(&format!(
        "EXECABORT Transaction discarded because of: {why}"
    ));
}

fn end_multi(cx: &mut Ctx) -> Option<Multi> {
    let m = cx.client.multi.take();
    {
        let mut info = cx.client.handle.info.lock();
        super::client::set_flag(&mut info.flags, 'x', false);
        super::client::set_flag(&mut info.flags, 'd', false);
    }
    cx.client.handle.multi.store(0, Relaxed);
    m
}

/// A WATCHed key, with what EXEC needs to judge its expiry.
#[derive(Clone, Debug)]
pub struct Watched {
    pub db: usize,
    pub key: Vec<u8>,
    /// The deadline the key had when watched.
    pub deadline: Option<u64>,
    /// It was already past that deadline (logically expired) when watched: its expiry is
    /// then no change (Redis 7.0), only a write to it is.
    pub expired: bool,
}

impl Watched {
    /// Whether this key's expiry since WATCH aborts a transaction at `now`: it was live
    /// when watched, and its deadline then, or the one it has now, has passed.
    fn expired_since(&self, current: Option<u64>, now: u64) -> bool {
        !self.expired
            && (self.deadline.is_some_and(|d| d <= now) || current.is_some_and(|d| d <= now))
    }
}

/// `WATCH key [key ...]`
fn watch(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if cx.client.multi.is_some() {
        return Err(CommandError::err("WATCH inside MULTI is not allowed"));
    }
    let db = cx.db();
    let flag = cx.client.watch_flag.clone();
    for key in &args[1..] {
        if cx
            .client
            .watched
            .iter()
            .any(|w| w.db == db && w.key == *key)
        {
            continue;
        }
        let now = cx.now;
        let (sh, h) = cx.shard(key)?;
        let deadline = sh.peek(h, key).and_then(|_| sh.expire_of(h, key));
        sh.watch(key, &flag);
        cx.client.watched.push(Watched {
            db,
            key: key.to_vec(),
            deadline,
            expired: deadline.is_some_and(|d| d <= now),
        });
        cx.server.watching.fetch_add(1, Relaxed);
    }
    cx.out.ok();
    Ok(())
}

/// `UNWATCH`
fn unwatch(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    unwatch_all(cx);
    cx.out.ok();
    Ok(())
}

/// Drops every WATCH of the client (EXEC, DISCARD, UNWATCH, RESET, disconnect).
pub fn unwatch_all(cx: &mut Ctx) {
    let watched = std::mem::take(&mut cx.client.watched);
    if watched.is_empty() {
        cx.client.watch_flag.store(false, Relaxed);
        return;
    }
    let flag = cx.client.watch_flag.clone();
    let ks = &cx.server.keyspace;
    for w in &watched {
        // Inside EXEC every watched key's shard is held; otherwise nothing is, and taking
        // one lock at a time cannot deadlock.
        let id = shard_id(w.db, shard_of(ks.hash(&w.key)));
        cx.locks.with(id, |sh| sh.unwatch(&w.key, &flag));
    }
    cx.server.watching.fetch_sub(watched.len(), Relaxed);
    flag.store(false, Relaxed);
}

/// Lock ids of everything a transaction touches: what each queued command plans (following
/// SELECTs in the queue; a walk is taken whole, since EXEC releases nothing before its end)
/// and its watched keys.
fn lock_plan(cx: &Ctx, queue: &[Vec<Vec<u8>>]) -> SmallVec<[u32; 8]> {
    let ks = &cx.server.keyspace;
    let mut db = cx.client.db;
    let mut ids = SmallVec::new();
    for w in &cx.client.watched {
        ids.push(shard_id(w.db, shard_of(ks.hash(&w.key))));
    }
    for argv in queue {
        let args: SmallVec<[&[u8]; 8]> = argv.iter().map(|a| &a[..]).collect();
        let Ok(cmd) = cx.server.commands.resolve(&args) else {
            continue;
        };
        let walk = super::plan(cx.server, cmd.spec, &args, db, &mut ids);
        ids.extend(walk);
        if cmd.spec.name == "select" {
            match crate::util::parse_i64(args.get(1).copied().unwrap_or_default()) {
                Some(n) if n >= 0 && (n as usize) < ks.dbs.len() => db = n as usize,
                _ => {}
            }
        }
    }
    ids
}

/// Whether a queued command is a script ([`Keys::Script`]).
fn queues_script(cx: &Ctx, queue: &[Vec<Vec<u8>>]) -> bool {
    queue.iter().any(|argv| {
        cx.server
            .commands
            .get(&argv[0])
            .is_some_and(|c| matches!(c.spec.keys, Keys::Script))
    })
}

/// `EXEC`
fn exec(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let Some(m) = end_multi(cx) else {
        return Err(CommandError::err("EXEC without MULTI"));
    };
    if m.error {
        unwatch_all(cx);
        return Err(E(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    let mut ids = lock_plan(cx, &m.queue);
    cx.writing = true;
    // A queued script may touch any key: the transaction takes the gate whole, as the
    // script would (see `scripting`).
    if queues_script(cx, &m.queue) {
        cx.locks.exclusive();
        cx.reach = 0..shard_id(cx.server.keyspace.dbs.len(), 0);
    }
    cx.take(&mut ids);

    // A watched key that was modified, or that has expired since WATCH, aborts.
    let now = cx.now;
    let mut dirty = cx.client.watch_flag.load(Relaxed);
    if !dirty {
        for w in cx.client.watched.clone() {
            if let Ok((sh, h)) = cx.shard_in(w.db, &w.key) {
                if w.expired_since(sh.expire_of(h, &w.key), now) {
                    dirty = true;
                    break;
                }
            }
        }
    }
    unwatch_all(cx);
    if dirty {
        cx.out.null_array();
        return Ok(());
    }

    cx.out.array(m.queue.len());
    debug_assert_eq!(cx.mode, Mode::Direct, "EXEC runs for its own client");
    cx.mode = Mode::Exec;
    // The transaction's effects reach the feed together, as MULTI ... EXEC when there is
    // more than one, before EXEC releases its locks.
    cx.batch = Some(Default::default());
    for argv in &m.queue {
        let args: SmallVec<[&[u8]; 8]> = argv.iter().map(|a| &a[..]).collect();
        super::execute(cx, &args);
    }
    cx.mode = Mode::Direct;
    if let Some(batch) = cx.batch.take() {
        cx.server.feed.append_batch(&batch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_commands_run_inside_multi() {
        for c in ["exec", "discard", "multi", "watch", "quit", "reset"] {
            assert!(runs_inside_multi(c));
        }
        assert!(!runs_inside_multi("set"));
    }
}
