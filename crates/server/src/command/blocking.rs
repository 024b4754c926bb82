//! Blocking commands (BLPOP, BLMOVE, BZPOPMIN, ... and later XREAD BLOCK): waiting without a
//! thread, and handing data to waiters atomically.
//!
//! A blocking handler that finds no data calls [`Ctx::block`]: the client becomes a
//! [`Waiter`], queued on each of its keys in the key's shard (first come, first served), and
//! its connection task parks on the waiter's `Notify` — a blocked client costs a parked task
//! and a few bytes, never a thread.
//!
//! When a command adds data to a key with waiters, the key's shard records it as *ready*.
//! Before that command's shard locks are released, the dispatcher ([`serve_ready`]) re-runs
//! each waiter's own command, with the waiter's database and protocol, inside the same
//! locks: nobody else can run between the push and the hand-off, so the element goes to the
//! first waiter, as in Redis. The reply is stored in the waiter and its task is woken to
//! write it. If the waiter's command needs a shard that cannot be taken without risking a
//! deadlock, the waiter is woken to retry on its own instead.
//!
//! What a waiter gets is decided first by the type its key holds now, as in Redis: a key of
//! its type re-runs its command (whose errors, such as BLMOVE's WRONGTYPE destination, are
//! its answer); another type, or no key, leaves it waiting, except XREADGROUP, which is
//! answered UNBLOCKED (or NOGROUP when its group is gone). Deleting a key with waiters,
//! FLUSHDB/FLUSHALL, SWAPDB and XGROUP DESTROY therefore mark the keys ready too, and the
//! active expiry cycle answers the XREADGROUP waiters of the keys it deletes.
//!
//! The waiter's task cleans up after itself (its registrations on other keys, the registry
//! entry) whether it was served, timed out, unblocked (CLIENT UNBLOCK) or disconnected.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{Ctx, Mode};
use crate::client::Client;
use crate::error::{
    CmdResult, CommandError, E, GROUP_GONE, STREAM_GONE, TIMEOUT_NEGATIVE, TIMEOUT_NOT_FLOAT,
};
use crate::server::{ClientHandle, Server};
use crate::storage::keyspace::shard_of;
use crate::storage::{shard_id, LockSet, SHARDS};

/// Where a blocked client stands.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitState {
    Waiting,
    /// Served by another command: the reply to send.
    Served(Vec<u8>),
    /// Could not be served in place: re-run the command normally.
    Retry,
    /// The timeout passed.
    TimedOut,
    /// CLIENT UNBLOCK: the reply to send.
    Unblocked(Vec<u8>),
    /// The server became a replica: the reply to send, then the connection closes
    /// (Redis's `disconnectAllBlockedClients`).
    Closing(Vec<u8>),
}

/// Every blocked client by waiter id, and the ids to hand out.
pub struct Registry {
    pub by_id: Mutex<std::collections::HashMap<u64, Arc<Waiter>>>,
    pub next_id: std::sync::atomic::AtomicU64,
}

impl Registry {
    pub fn new() -> Self {
        Self {
            by_id: Mutex::new(std::collections::HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// A blocked client.
pub struct Waiter {
    pub id: u64,
    pub db: usize,
    pub resp3: bool,
    /// The keys it waits on.
    pub keys: Vec<Vec<u8>>,
    /// Its command, re-run when a key becomes ready.
    pub argv: Vec<Vec<u8>>,
    pub handle: Arc<ClientHandle>,
    pub state: Mutex<WaitState>,
    pub notify: tokio::sync::Notify,
}

impl Waiter {
    /// Moves from Waiting to `next` and wakes the task; false if no longer waiting.
    pub fn finish(&self, next: WaitState) -> bool {
        let mut st = self.state.lock();
        if *st != WaitState::Waiting {
            return false;
        }
        *st = next;
        drop(st);
        self.notify.notify_one();
        true
    }
}

/// A client's block, kept on its connection until it is resolved.
pub struct Blocked {
    pub waiter: Arc<Waiter>,
    pub deadline: Option<Instant>,
}

/// Parses a blocking timeout in seconds (fractions allowed); 0 means forever (`None`).
/// Like Redis 7.0: milliseconds are `ceil(seconds * 1000)`, so a tiny negative value rounds
/// to 0 (forever), and a value too large for a 64-bit millisecond count wraps negative there,
/// which is reported as "timeout is negative".
///
/// The seconds are read as a `long double` (`strtold`: hexadecimal floats too, and values
/// beyond an `f64`'s range, which then overflow the millisecond count); a positive value too
/// small for an `f64` still waits a millisecond.
pub fn parse_timeout(arg: &[u8]) -> Result<Option<Duration>, CommandError> {
    let ld = crate::longdouble::LongDouble::parse(arg).ok_or(E(TIMEOUT_NOT_FLOAT))?;
    let secs = ld.to_f64();
    let tiny = secs == 0.0 && ld != crate::longdouble::LongDouble::ZERO && arg[0] != b'-';
    let ms = if tiny { 1.0 } else { (secs * 1000.0).ceil() };
    // 2^63 ms: where Redis's conversion to a 64-bit count overflows.
    if !(0.0..9.223_372_036_854_776e18).contains(&ms) {
        return Err(E(TIMEOUT_NEGATIVE));
    }
    Ok((ms > 0.0).then(|| Duration::from_millis(ms as u64)))
}

impl Ctx<'_> {
    /// Blocks the client on `keys` (see the module docs). The handler returns this result
    /// and writes nothing else.
    pub fn block(&mut self, keys: &[&[u8]], timeout: Option<Duration>) -> CmdResult {
        self.block_with_argv(keys, timeout, None)
    }

    /// Like [`Ctx::block`], re-running `argv` instead of the command as sent (XREAD with `$`
    /// stores the IDs the streams had when it blocked).
    pub fn block_with_argv(
        &mut self,
        keys: &[&[u8]],
        timeout: Option<Duration>,
        argv: impl Into<Option<Vec<Vec<u8>>>>,
    ) -> CmdResult {
        match &mut self.mode {
            Mode::Exec => {
                // Inside MULTI/EXEC nothing blocks: the command answers as its non-blocking
                // form would with no data (a null for the moves, a null array for the pops).
                let name = self.argv.first().map(|a| a.to_ascii_lowercase());
                match name.as_deref() {
                    Some(b"blmove" | b"brpoplpush") => self.out.null(),
                    _ => self.out.null_array(),
                }
                return Ok(());
            }
            Mode::Serving { reblocked } => {
                // Re-run on behalf of a waiter and still nothing to serve: it keeps waiting.
                *reblocked = true;
                return Ok(());
            }
            Mode::Direct => {}
        }
        let server = self.server;
        let id = server.blocked.next_id.fetch_add(1, Relaxed);
        let db = self.client.db;
        let waiter = Arc::new(Waiter {
            id,
            db,
            resp3: self.client.resp3,
            keys: keys.iter().map(|k| k.to_vec()).collect(),
            argv: argv
                .into()
                .unwrap_or_else(|| self.argv.iter().map(|a| a.to_vec()).collect()),
            handle: self.client.handle.clone(),
            state: Mutex::new(WaitState::Waiting),
            notify: tokio::sync::Notify::new(),
        });
        for key in keys {
            let (sh, _) = self.shard(key)?;
            sh.add_waiter(key, id);
        }
        server.blocked.by_id.lock().insert(id, waiter.clone());
        // CLIENT LIST shows a blocked client with `flags=b` until its block is over.
        super::client::set_flag(&mut self.client.handle.info.lock().flags, 'b', true);
        self.client.blocked = Some(Blocked {
            waiter,
            deadline: timeout.map(|t| crate::clock::instant() + t),
        });
        Ok(())
    }
}

/// Serves waiters of every key that became ready in the shards this command holds. Called by
/// the dispatcher before it releases the command's locks.
pub(super) fn serve_ready(cx: &mut Ctx) {
    // Serving can make more keys ready (BLMOVE pushes into its destination): loop.
    for _ in 0..1000 {
        let mut ready: Vec<(u64, usize, Box<[u8]>)> = Vec::new();
        for (id, g) in cx.locks.iter_mut() {
            if g.has_ready() {
                let db = id as usize / SHARDS;
                ready.extend(g.take_ready().into_iter().map(|(at, k)| (at, db, k)));
            }
        }
        if ready.is_empty() {
            return;
        }
        // In the order the keys became ready, whichever shards hold them.
        ready.sort_unstable_by_key(|r| r.0);
        for (_, db, key) in ready {
            serve_key(cx, db, &key);
        }
    }
}

fn serve_key(cx: &mut Ctx, db: usize, key: &[u8]) {
    let server = cx.server;
    let now = cx.now;
    let Ok((sh, _)) = cx.shard_in(db, key) else {
        return;
    };
    // Each waiter queued now, once, first come first served (Redis walks the queue the same
    // way): one that cannot be served keeps its place and the next one is tried.
    for wid in sh.waiter_ids(key) {
        let waiter = server.blocked.by_id.lock().get(&wid).cloned();
        let Some(w) = waiter.filter(|w| *w.state.lock() == WaitState::Waiting) else {
            // Stale registration (served elsewhere, timed out, gone): drop it.
            if let Ok((sh, _)) = cx.shard_in(db, key) {
                sh.remove_waiter(key, wid);
            }
            continue;
        };
        let Ok((sh, h)) = cx.shard_in(db, key) else {
            return;
        };
        match verdict(&w, sh, h, key, now) {
            Verdict::Wait => continue,
            Verdict::Answer(text) => {
                sh.remove_waiter(key, wid);
                w.finish(WaitState::Served(error_reply(text, w.resp3)));
                continue;
            }
            Verdict::Run => {}
        }
        if !cx.lock_for_waiter(&w) {
            // Its command needs a shard we cannot take in order: let it retry on its own.
            if let Ok((sh, _)) = cx.shard_in(db, key) {
                sh.remove_waiter(key, wid);
            }
            w.finish(WaitState::Retry);
            continue;
        }
        // None: nothing for this one (its stream ID is ahead, the list was emptied by an
        // earlier waiter): it keeps waiting.
        if let Some(reply) = run_as_waiter(cx, &w, key) {
            if let Ok((sh, _)) = cx.shard_in(db, key) {
                sh.remove_waiter(key, wid);
            }
            w.finish(WaitState::Served(reply));
        }
    }
}

/// What a waiter on a ready key gets, decided as Redis 7.0 does by the type the key holds
/// now rather than by re-running the command: a key of the waiter's type re-runs it (and
/// then every error it meets, such as BLMOVE's WRONGTYPE destination, is its answer); a key
/// of another type, or none, leaves it waiting, except for XREADGROUP, whose stream (or
/// group) is gone.
enum Verdict {
    Run,
    Wait,
    Answer(&'static str),
}

fn verdict(w: &Waiter, sh: &mut crate::storage::Shard, h: u64, key: &[u8], now: u64) -> Verdict {
    let name = w.argv[0].to_ascii_lowercase();
    let wants = match &name[..] {
        b"bzpopmin" | b"bzpopmax" | b"bzmpop" => "zset",
        b"xread" | b"xreadgroup" => "stream",
        _ => "list",
    };
    let group_reader = name == b"xreadgroup";
    let Some(entry) = sh.get(h, key, now) else {
        return if group_reader {
            Verdict::Answer(STREAM_GONE)
        } else {
            Verdict::Wait
        };
    };
    if entry.type_name() != wants {
        return if group_reader {
            Verdict::Answer(STREAM_GONE)
        } else {
            Verdict::Wait
        };
    }
    if group_reader {
        // XREADGROUP GROUP <group> <consumer> ...: the group must still exist.
        let group = w.argv.get(2).map_or(&[][..], |g| &g[..]);
        if let crate::storage::entry::ValueRef::Other(crate::storage::Value::Stream(s)) =
            entry.value()
        {
            if !s.groups.contains_key(group) {
                return Verdict::Answer(GROUP_GONE);
            }
        }
    }
    Verdict::Run
}

/// `text` as an error reply.
fn error_reply(text: &str, resp3: bool) -> Vec<u8> {
    let mut out = Vec::new();
    crate::reply::Out::new(&mut out, resp3).error(text);
    out
}

/// Answers the waiters of keys that became ready in `sh` outside any command (active expiry
/// or eviction deleted them): XREADGROUP waiters whose stream or group is gone get their
/// error. A readiness is never dropped unexamined: a waiter whose key holds data of its type
/// (made ready by a command that did not serve it) is sent to run its command again.
pub fn answer_deleted(server: &Server, sh: &mut crate::storage::Shard, now: u64) {
    for (_, key) in sh.take_ready() {
        let h = server.keyspace.hash(&key);
        for wid in sh.waiter_ids(&key) {
            let waiter = server.blocked.by_id.lock().get(&wid).cloned();
            let Some(w) = waiter else { continue };
            let done = match verdict(&w, sh, h, &key, now) {
                Verdict::Answer(text) => w.finish(WaitState::Served(error_reply(text, w.resp3))),
                // Its key holds data of its type: no command here to serve it from, so it
                // runs its own command again rather than lose this readiness.
                Verdict::Run => w.finish(WaitState::Retry),
                Verdict::Wait => false,
            };
            if done {
                sh.remove_waiter(&key, wid);
            }
        }
    }
}

/// Re-runs the waiter's command as the waiter. Returns its reply (an error included), or
/// None if it would block again.
fn run_as_waiter(cx: &mut Ctx, w: &Waiter, ready: &[u8]) -> Option<Vec<u8>> {
    let server = cx.server;
    let narrowed = narrow_to(&w.argv, ready);
    let argv: Vec<&[u8]> = narrowed.iter().map(|a| &a[..]).collect();
    let cmd = server.commands.resolve(&argv).ok()?;
    let mut as_waiter = Client::new(w.handle.clone(), false);
    as_waiter.db = w.db;
    as_waiter.resp3 = w.resp3;
    let mut out = Vec::new();
    std::mem::swap(cx.client, &mut as_waiter);
    std::mem::swap(cx.out.buf, &mut out);
    let resp3 = std::mem::replace(&mut cx.out.resp3, w.resp3);
    let mode = std::mem::replace(&mut cx.mode, Mode::Serving { reblocked: false });
    let saved_argv = std::mem::take(&mut cx.argv);
    cx.argv = narrowed.clone();

    let dirty_before = cx.cmd_dirty.replace(0);
    let result = (cmd.spec.handler)(cx, &argv);
    let again = cx.mode == Mode::Serving { reblocked: true };
    if again {
        cx.effects = None;
    } else {
        // Served: its effects follow the pusher's in the feed, under the same locks, and
        // WATCHes of the keys it wrote (BLMOVE's destination) are invalidated.
        let dirty = cx.cmd_dirty.get() > 0;
        cx.propagate_effects(&argv, dirty);
        cx.after_write(cmd, &argv);
    }
    cx.cmd_dirty.set(dirty_before);

    cx.argv = saved_argv;
    cx.mode = mode;
    cx.out.resp3 = resp3;
    std::mem::swap(cx.out.buf, &mut out);
    std::mem::swap(cx.client, &mut as_waiter);
    match result {
        _ if again => None,
        Err(e) => Some(error_reply(e.text(), w.resp3)),
        Ok(()) => Some(out),
    }
}

/// A waiter's command cut down to the key that became ready, as Redis serves a waiter from
/// that key alone: the other keys it waits on are not looked at (one of them may have become
/// another type meanwhile), and an XREAD answers with that stream only. Commands with one
/// source key are unchanged.
fn narrow_to(argv: &[Vec<u8>], ready: &[u8]) -> Vec<Vec<u8>> {
    let name = argv[0].to_ascii_lowercase();
    match &name[..] {
        // NAME key [key ...] timeout
        b"blpop" | b"brpop" | b"bzpopmin" | b"bzpopmax" if argv.len() > 3 => {
            vec![
                argv[0].clone(),
                ready.to_vec(),
                argv[argv.len() - 1].clone(),
            ]
        }
        // NAME timeout numkeys key [key ...] rest
        b"blmpop" | b"bzmpop" => {
            let n = argv
                .get(2)
                .and_then(|n| crate::util::parse_u64(n))
                .map_or(0, |n| n as usize);
            if n <= 1 || argv.len() < 3 + n {
                return argv.to_vec();
            }
            let mut out = vec![
                argv[0].clone(),
                argv[1].clone(),
                b"1".to_vec(),
                ready.to_vec(),
            ];
            out.extend(argv[3 + n..].iter().cloned());
            out
        }
        // ... STREAMS key [key ...] id [id ...]
        b"xread" | b"xreadgroup" => {
            // XREADGROUP's group and consumer names come first and may read "STREAMS".
            let from = if name == b"xreadgroup" { 4 } else { 1 };
            let Some(at) = (from..argv.len()).find(|&i| argv[i].eq_ignore_ascii_case(b"streams"))
            else {
                return argv.to_vec();
            };
            let rest = &argv[at + 1..];
            let n = rest.len() / 2;
            let Some(j) = rest[..n].iter().position(|k| k == ready) else {
                return argv.to_vec();
            };
            if n <= 1 {
                return argv.to_vec();
            }
            let mut out = argv[..=at].to_vec();
            out.push(ready.to_vec());
            out.push(rest[n + j].clone());
            out
        }
        _ => argv.to_vec(),
    }
}

/// Removes every registration of a waiter (its task calls this once the block is over).
pub fn unregister(server: &Server, w: &Waiter) {
    for key in &w.keys {
        let id = shard_id(w.db, shard_of(server.keyspace.hash(key)));
        LockSet::new(&server.keyspace).with(id, |sh| sh.remove_waiter(key, w.id));
    }
    server.blocked.by_id.lock().remove(&w.id);
    super::client::set_flag(&mut w.handle.info.lock().flags, 'b', false);
}

/// The reply a blocked command gets on timeout (all of Redis 7.0's key-blocking commands
/// reply a null array).
pub fn timeout_reply(resp3: bool) -> &'static [u8] {
    if resp3 {
        b"_\r\n"
    } else {
        b"*-1\r\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_like_redis() {
        assert_eq!(parse_timeout(b"0").unwrap(), None);
        // strtold: hexadecimal, a long double's range, its smallest values.
        assert_eq!(
            parse_timeout(b"0x10").unwrap(),
            Some(Duration::from_secs(16))
        );
        assert!(parse_timeout(b"1e400").is_err());
        assert_eq!(
            parse_timeout(b"1e-400").unwrap(),
            Some(Duration::from_millis(1))
        );
        assert_eq!(
            parse_timeout(b"0.1").unwrap(),
            Some(Duration::from_millis(100))
        );
        assert_eq!(parse_timeout(b"2").unwrap(), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout(b"-1").unwrap_err(), E(TIMEOUT_NEGATIVE));
        assert_eq!(parse_timeout(b"abc").unwrap_err(), E(TIMEOUT_NOT_FLOAT));
        assert_eq!(parse_timeout(b"inf").unwrap_err(), E(TIMEOUT_NEGATIVE));
        assert_eq!(parse_timeout(b"1e16").unwrap_err(), E(TIMEOUT_NEGATIVE));
        assert_eq!(parse_timeout(b"-0.0009").unwrap(), None);
        assert_eq!(parse_timeout(b"nan").unwrap_err(), E(TIMEOUT_NOT_FLOAT));
    }
}
