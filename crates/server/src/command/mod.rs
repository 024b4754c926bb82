//! The command table and the dispatcher.
//!
//! Each family file (`string.rs`, `generic.rs`, ...) owns its handlers and a `COMMANDS`
//! slice describing them; [`FAMILIES`] lists the families once. Adding a command touches
//! only its family file; adding a family adds one line here.
//!
//! The dispatcher does everything a handler must not repeat: lookup, arity, authentication,
//! locking the shards of the command's keys (from its key spec) in a global order, timing and
//! stats, and turning an `Err` into the error reply. The table also generates `COMMAND`,
//! `COMMAND INFO`, `COMMAND DOCS`, `COMMAND COUNT` and `COMMAND GETKEYS`: `meta` joins
//! Redis's generated metadata (ACL categories, tips, key specs) into each [`Cmd`] when the
//! table is built.

pub mod acl;
mod aof;
pub mod args;
mod bitmap;
pub mod blocking;
pub mod client;
pub mod cluster;
mod connection;
mod dump;
pub mod evict;
mod generic;
mod geo;
mod hash;
pub mod hyperloglog;
mod introspection;
mod list;
mod meta;
pub mod migrate;
pub mod pubsub;
mod replication;
pub(crate) mod scripting;
pub(crate) mod server;
mod set;
mod sort;
mod sorted_set;
mod stream;
mod string;
pub mod tracking;
pub mod transaction;

pub use server::rewrite_config_text;

use hashbrown::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use smallvec::SmallVec;

use crate::client::Client;
use crate::error::{CmdResult, CommandError, E};
use crate::reply::Out;
use crate::server::Server;
use crate::storage::keyspace::shard_of;
use crate::storage::locks::Busy;
use crate::storage::{shard_id, LockSet, Shard, SHARDS};

/// A command handler. `args[0]` is the command name as the client sent it.
pub type Handler = fn(&mut Ctx, &[&[u8]]) -> CmdResult;

/// Command flags (Redis's `command_flags`).
pub mod flags {
    pub const WRITE: u32 = 1;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    pub const ASKING: u32 = 1 << 11;
    pub const FAST: u32 = 1 << 12;
    pub const NO_AUTH: u32 = 1 << 13;
    pub const MAY_REPLICATE: u32 = 1 << 14;
    pub const SENTINEL: u32 = 1 << 15;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 16;
    pub const NO_MULTI: u32 = 1 << 17;
    pub const ALLOW_BUSY: u32 = 1 << 18;
    pub const NO_ASYNC_LOADING: u32 = 1 << 19;

    /// Flag names as `COMMAND INFO` prints them.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (ASKING, "asking"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// Where a command's keys are, and so which shards it locks.
#[derive(Clone, Copy, Debug)]
pub enum Keys {
    /// No keys: the handler touches no shard (debug builds check).
    None,
    /// Keys at `first..=last` stepping `step` (`last` < 0 counts from the end), like Redis's
    /// legacy (first, last, step) triple.
    Range(i32, i32, i32),
    /// Every shard of the current database (KEYS, DBSIZE, FLUSHDB, RANDOMKEY).
    AllDb,
    /// Every shard of every database (FLUSHALL, SWAPDB).
    AllDbs,
    /// No keys named, but the handler visits the current database's shards one at a time
    /// (SCAN): nothing is locked up front, except inside EXEC, which takes them all.
    WalkDb,
    /// Like [`Keys::WalkDb`] over every database (INFO keyspace, DEBUG, REPLICAOF's expiry
    /// pass, SAVE/BGSAVE/BGREWRITEAOF, CONFIG SET, SHUTDOWN: whatever may take a snapshot
    /// point or visit the whole keyspace).
    WalkAll,
    /// Any key of any database (a script, whose keys are known only as it runs): the
    /// handler locks for itself, speculatively or taking the gate above every shard whole
    /// (`scripting::atomic`). Inside EXEC the transaction takes the gate whole for it.
    Script,
    /// Keys found by a function of the arguments, possibly in other databases (MOVE,
    /// COPY ... DB): it calls `push(db, key)` for each key; `cur_db` is the selected one.
    Custom(KeyFinder),
    /// Like [`Keys::Custom`], unless the predicate says the arguments read keys that only
    /// the data names (SORT's BY and GET patterns): then every shard of the current
    /// database, as [`Keys::AllDb`].
    CustomOrDb(KeyFinder, fn(&[&[u8]]) -> bool),
}

/// Finds a command's keys: calls `push(db, key)` for each; `cur_db` is the selected database.
pub type KeyFinder = fn(args: &[&[u8]], cur_db: usize, push: &mut dyn FnMut(usize, &[u8]));

/// One command (or subcommand) in the table.
pub struct CommandSpec {
    /// Lowercase name, as `COMMAND` reports it.
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    pub flags: u32,
    pub keys: Keys,
    pub handler: Handler,
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    pub complexity: &'static str,
    /// Argument synopsis (`key value [NX | XX]`), turned into `COMMAND DOCS` arguments.
    pub syntax: &'static str,
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: u32,
        keys: Keys,
        handler: Handler,
    ) -> Self {
        Self {
            name,
            arity,
            flags,
            keys,
            handler,
            group: "generic",
            since: "1.0.0",
            summary: "",
            complexity: "",
            syntax: "",
            subcommands: &[],
        }
    }
    pub const fn group(mut self, g: &'static str) -> Self {
        self.group = g;
        self
    }
    pub const fn since(mut self, v: &'static str) -> Self {
        self.since = v;
        self
    }
    pub const fn summary(mut self, s: &'static str) -> Self {
        self.summary = s;
        self
    }
    pub const fn complexity(mut self, s: &'static str) -> Self {
        self.complexity = s;
        self
    }
    pub const fn syntax(mut self, s: &'static str) -> Self {
        self.syntax = s;
        self
    }
    pub const fn subcommands(mut self, s: &'static [CommandSpec]) -> Self {
        self.subcommands = s;
        self
    }

    /// Whether `argc` satisfies the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        if a >= 0 {
            argc == a as usize
        } else {
            argc >= (-a) as usize
        }
    }

    /// Positions of the key arguments for this argv.
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let (first, last, step) = match self.keys {
            Keys::Range(f, l, s) if f > 0 => {
                let last = if l < 0 { argc as i32 + l } else { l };
                (f as usize, last.max(0) as usize, s.max(1) as usize)
            }
            _ => (1, 0, 1),
        };
        (first..=last.min(argc.saturating_sub(1)))
            .step_by(step)
            .filter(move |_| first <= last)
    }
}

/// The families, each a module with `pub(super) const COMMANDS: &[CommandSpec]`.
const FAMILIES: &[&[CommandSpec]] = &[
    string::COMMANDS,
    generic::COMMANDS,
    connection::COMMANDS,
    server::COMMANDS,
    client::COMMANDS,
    introspection::COMMANDS,
    list::COMMANDS,
    hash::COMMANDS,
    set::COMMANDS,
    sorted_set::COMMANDS,
    transaction::COMMANDS,
    pubsub::COMMANDS,
    cluster::COMMANDS,
    stream::COMMANDS,
    dump::COMMANDS,
    aof::COMMANDS,
    replication::COMMANDS,
    scripting::COMMANDS,
    bitmap::COMMANDS,
    hyperloglog::COMMANDS,
    geo::COMMANDS,
    sort::COMMANDS,
    acl::COMMANDS,
    migrate::COMMANDS,
];

/// A looked-up command: its spec, the metadata joined to it, and its stats id.
pub struct Cmd {
    pub spec: &'static CommandSpec,
    /// ACL categories, tips and key specs with access flags (see `command/meta.rs`).
    pub meta: meta::Meta,
    pub id: usize,
    /// For container commands: subcommands by lowercase name.
    pub subs: HashMap<Vec<u8>, Cmd>,
    /// `name` or `container|sub`.
    pub fullname: String,
}

/// All commands, by lowercase name.
pub struct CommandTable {
    pub by_name: HashMap<Vec<u8>, Cmd>,
    /// Every id's full name, for stats.
    pub names: Vec<String>,
}

impl CommandTable {
    pub fn build() -> Self {
        let mut by_name = HashMap::new();
        let mut names = Vec::new();
        for fam in FAMILIES {
            for spec in fam.iter() {
                let id = names.len();
                names.push(spec.name.to_string());
                let mut subs = HashMap::new();
                for sub in spec.subcommands {
                    let sid = names.len();
                    let fullname = format!("{}|{}", spec.name, sub.name);
                    names.push(fullname.clone());
                    subs.insert(
                        sub.name.as_bytes().to_vec(),
                        Cmd {
                            spec: sub,
                            meta: meta::Meta::join(sub, &fullname),
                            id: sid,
                            subs: HashMap::new(),
                            fullname,
                        },
                    );
                }
                by_name.insert(
                    spec.name.as_bytes().to_vec(),
                    Cmd {
                        spec,
                        meta: meta::Meta::join(spec, spec.name),
                        id,
                        subs,
                        fullname: spec.name.to_string(),
                    },
                );
            }
        }
        Self { by_name, names }
    }

    /// Number of ids (commands plus subcommands) the table assigns.
    pub fn count_ids() -> usize {
        FAMILIES
            .iter()
            .flat_map(|f| f.iter())
            .map(|c| 1 + c.subcommands.len())
            .sum()
    }

    /// Finds a command by name, case-insensitively, without allocating for short names.
    pub fn get(&self, name: &[u8]) -> Option<&Cmd> {
        let mut buf = [0u8; 32];
        if name.len() <= buf.len() {
            let lower = &mut buf[..name.len()];
            lower.copy_from_slice(name);
            lower.make_ascii_lowercase();
            self.by_name.get(&lower[..])
        } else {
            None
        }
    }

    /// Resolves argv to the command (or subcommand) that will run.
    pub fn resolve<'t>(&'t self, args: &[&[u8]]) -> Result<&'t Cmd, CommandError> {
        let cmd = self
            .get(args[0])
            .ok_or_else(|| CommandError::unknown_command(args))?;
        // A container named alone is the container itself: its arity rejects it (`CONFIG`)
        // unless it has a meaning of its own (`COMMAND`).
        if cmd.subs.is_empty() || args.len() < 2 {
            return Ok(cmd);
        }
        let sub = args[1].to_ascii_lowercase();
        cmd.subs
            .get(&sub)
            .ok_or_else(|| CommandError::unknown_subcommand(args[0], args[1]))
    }

    /// Every top-level command.
    pub fn iter(&self) -> impl Iterator<Item = &Cmd> {
        self.by_name.values()
    }
}

/// What the command a [`Ctx`] runs is nested in. One value rather than a flag for each,
/// so that states no code path produces (serving a waiter inside EXEC, re-blocked while
/// serving nobody) cannot be written down. Where commands come from (`Ctx::replaying`) and
/// whether the outermost one writes (`Ctx::writing`) hold in every mode: an AOF replays
/// its own EXECs, a replica's applied writes serve its XREAD waiters, and EXEC's or the
/// pusher's locks keep the copy-on-write setting they were taken with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Run by the dispatcher for the connection's own client (or a replayed stream): it
    /// takes and releases its planned locks, and may block.
    Direct,
    /// A command MULTI queued, run by EXEC: the locks are EXEC's, nothing blocks.
    Exec,
    /// A blocked client's command re-run on its behalf inside the locks of the command that
    /// gave its keys data (see `blocking`); `reblocked` once it found nothing again, so the
    /// client keeps waiting.
    Serving { reblocked: bool },
}

/// Everything a handler may touch.
pub struct Ctx<'a> {
    pub server: &'a Server,
    pub client: &'a mut Client,
    pub out: Out<'a>,
    /// Unix ms at the start of the command: one consistent "now" per command, as Redis.
    pub now: u64,
    /// Every shard lock taken on behalf of the command goes through this one set.
    locks: LockSet<'a>,
    /// Shard ids the running command may lock on demand, beyond what was planned and taken
    /// before it started (a walk: `Keys::WalkDb` / `Keys::WalkAll`). Debug builds check
    /// that handlers stay within plan and reach.
    reach: std::ops::Range<u32>,
    /// The running command's name (for the debug check's message).
    cmd_name: &'static str,
    /// What the running command is nested in: run by the dispatcher for its client, by
    /// EXEC, or on behalf of a blocked client.
    mode: Mode,
    /// The running command's arguments, kept only for BLOCKING commands (a waiter stores
    /// its command to be re-run).
    argv: Vec<Vec<u8>>,
    /// Changes the running command made (`Ctx::dirty`).
    cmd_dirty: std::cell::Cell<u64>,
    /// Argument positions (a bit each) of keys the running command leaves its WATCHes on
    /// although it writes them (`Ctx::keep_watches`).
    kept_watches: u64,
    /// The running command's reply is pub/sub pushes only (`Ctx::pushes_only`): CLIENT
    /// REPLY OFF / SKIP let it through.
    pushes_only: bool,
    /// Wall clock (unix ms) and monotonic clock read together when the context was made:
    /// each command's "now" is derived from the monotonic reading it takes anyway for its
    /// duration, so a command costs one clock read, not three (clock reads showed up at ~10%
    /// of the CPU of a pipelined INCR load).
    base: (u64, std::time::Instant),
    /// When the previous command ended (or the context was made): the next one's start.
    mark: std::time::Instant,
    /// What the running command asked to propagate instead of its own arguments
    /// (`Ctx::propagate`); `None`: its arguments, if it changed anything.
    effects: Option<Vec<Vec<Vec<u8>>>>,
    /// While EXEC runs: the effects of its commands, appended to the feed at the end as one
    /// MULTI ... EXEC.
    batch: Option<crate::feed::Batch>,
    /// The outputs the running command's effects go to inside a batch (a script's
    /// `redis.set_repl`); `feed::TO_ALL` otherwise.
    repl_to: u8,
    /// The running command may modify what it looks up (a WRITE command, or EXEC): shards
    /// then save keys a pending snapshot still needs before handing them out.
    writing: bool,
    /// Replaying a file (AOF loading): see [`Ctx::set_replaying`].
    replaying: bool,
    /// Work to run once the command (or its EXEC) has released its shard locks
    /// ([`Ctx::after_unlock`]).
    deferred: Vec<Box<dyn FnOnce() + Send>>,
    /// A script running speculatively: what it may have to undo, and what it holds back
    /// until it ends (see `scripting::atomic`).
    speculation: Option<Box<scripting::atomic::Speculation>>,
    /// Memory was over `maxmemory` with nothing to evict when the client's command started
    /// (Redis's `pre_command_oom_state`): a script's first write is refused.
    pub(crate) oom: bool,
    /// The running command was called by a script (`redis.call`): the slow log and
    /// MONITOR show it as the script's (Redis's Lua client), not the caller's.
    pub(crate) script_call: bool,
}

impl<'a> Ctx<'a> {
    pub fn new(server: &'a Server, client: &'a mut Client, out: &'a mut Vec<u8>) -> Self {
        let resp3 = client.resp3;
        let base_ms = crate::clock::now_ms();
        let base_instant = crate::clock::instant();
        client.handle.last_interaction_ms.store(base_ms, Relaxed);
        Self {
            server,
            client,
            out: Out::new(out, resp3),
            now: base_ms,
            base: (base_ms, base_instant),
            mark: base_instant,
            locks: LockSet::new(&server.keyspace),
            reach: 0..0,
            cmd_name: "",
            mode: Mode::Direct,
            argv: Vec::new(),
            cmd_dirty: std::cell::Cell::new(0),
            kept_watches: 0,
            pushes_only: false,
            effects: None,
            batch: None,
            repl_to: crate::feed::TO_ALL,
            writing: false,
            replaying: false,
            deferred: Vec::new(),
            speculation: None,
            oom: false,
            script_call: false,
        }
    }

    /// Marks the context as replaying an append-only file: no key counts as expired (each
    /// command's `now` is 0 for expiry decisions), as Redis treats no key as expired while
    /// loading, because a later command of the file may still extend or remove a deadline
    /// that has passed since. Access times (LRU) still use the real clock.
    pub fn set_replaying(&mut self) {
        self.replaying = true;
    }

    /// Whether the commands come from a trusted stream that already holds their effects
    /// (an AOF being replayed, or this replica's primary): such input may use forms only
    /// propagation produces (an exact stream trim with a LIMIT).
    pub fn trusted_stream(&self) -> bool {
        self.replaying || self.client.repl.master
    }

    /// The selected database index.
    #[inline]
    pub fn db(&self) -> usize {
        self.client.db
    }

    /// Whether the command runs inside EXEC, where nothing may block (BLMOVE then replies
    /// nil rather than the null array [`Ctx::block`] gives).
    #[inline]
    pub fn in_exec(&self) -> bool {
        self.mode == Mode::Exec
    }

    /// Whether the running command is a client's own, run by its connection, which can
    /// await network work the handler hands it (`Client::migrate`): not inside EXEC, a
    /// script, a replayed file or the primary's stream.
    pub fn can_await(&self) -> bool {
        self.mode == Mode::Direct
            && !self.script_call
            && !self.replaying
            && !self.client.repl.master
    }

    /// The wall clock (unix ms) at the start of the command, for times a command records
    /// (stream delivery and seen times). Equal to `now`, except while replaying an AOF or a
    /// primary's stream, where `now` is 0 so that nothing counts as expired.
    #[inline]
    pub fn wall_ms(&self) -> u64 {
        if self.replaying {
            self.base.0 + self.mark.saturating_duration_since(self.base.1).as_millis() as u64
        } else {
            self.now
        }
    }

    /// The access stamp for the current command (see `storage::access`): the LRU clock,
    /// or under an LFU policy the minute and a new key's counter. Lookups record accesses
    /// with it, new keys start from it.
    #[inline]
    pub fn lru(&self) -> u32 {
        let now = if self.replaying {
            self.base.0
        } else {
            self.now
        };
        crate::storage::access::stamp(now, self.server.memory.lfu())
    }

    /// The shard holding `key` in the current database (locked by the dispatcher from the
    /// command's key spec), and the key's hash.
    #[inline]
    pub fn shard(&mut self, key: &[u8]) -> Result<(&mut Shard, u64), CommandError> {
        let db = self.client.db;
        self.shard_in(db, key)
    }

    /// Like [`Ctx::shard`], also handing out the reply writer (a handler often reads the
    /// shard while it writes the reply, without copying the value out first).
    #[inline]
    pub fn shard_out(
        &mut self,
        key: &[u8],
    ) -> Result<(&mut Shard, u64, &mut Out<'a>), CommandError> {
        let db = self.client.db;
        let h = self.server.keyspace.hash(key);
        let id = shard_id(db, shard_of(h));
        self.lock_id(id)?;
        let sh = self.locks.get(id).expect("locked above");
        Ok((sh, h, &mut self.out))
    }

    /// Like [`Ctx::shard`] for another database.
    pub fn shard_in(&mut self, db: usize, key: &[u8]) -> Result<(&mut Shard, u64), CommandError> {
        let h = self.server.keyspace.hash(key);
        self.lock_id(shard_id(db, shard_of(h))).map(|s| (s, h))
    }

    /// Shard `idx` of database `db`, for commands that walk shards (`Keys::WalkDb`,
    /// `Keys::AllDb`, ...): the held lock, or a fresh one while walking upwards.
    pub fn shard_at(&mut self, db: usize, idx: usize) -> Result<&mut Shard, CommandError> {
        self.lock_id(shard_id(db, idx))
    }

    /// Runs `f` on shard `idx` of `db` for a command that walks shards (`Keys::WalkDb`,
    /// `Keys::WalkAll`): the held shard inside EXEC, otherwise one locked for the call only.
    pub fn visit<R>(
        &mut self,
        db: usize,
        idx: usize,
        f: impl FnOnce(&mut Shard) -> R,
    ) -> Result<R, CommandError> {
        let id = shard_id(db, idx);
        debug_assert!(
            self.locks.holds(id) || self.reach.contains(&id),
            "`{}` visits shard {id} outside its key spec (plan it in its `Keys`)",
            self.cmd_name
        );
        self.locks
            .with(id, f)
            .ok_or_else(|| CommandError::err("internal error: shard lock order"))
    }

    /// The command's lock set, for whole-keyspace work started from a command (a snapshot
    /// point, a reload): it holds every shard inside EXEC, nothing otherwise.
    pub fn lock_set(&mut self) -> &mut LockSet<'a> {
        &mut self.locks
    }

    /// Shard `id`, held already (planned) or taken now within the command's reach.
    fn lock_id(&mut self, id: u32) -> Result<&mut Shard, CommandError> {
        if !self.locks.holds(id) {
            debug_assert!(
                self.reach.contains(&id),
                "`{}` locks shard {id} outside its key spec (plan it in its `Keys`)",
                self.cmd_name
            );
            if !self.try_lock_id(id) {
                return Err(CommandError::err("internal error: shard lock order"));
            }
        }
        Ok(self.locks.get(id).expect("held"))
    }

    /// Makes sure shard `id` is held: already held, or locked now if that keeps the global
    /// order (above every held id), or taken with a try-lock otherwise. False if it is
    /// busy and could only be waited for at the risk of deadlock.
    fn try_lock_id(&mut self, id: u32) -> bool {
        if self.locks.holds(id) {
            return true;
        }
        let (track, writing) = (tracks_new(self.server), self.writing);
        match self.locks.lock(id) {
            Some(g) => {
                g.track_new |= track;
                g.cow = writing;
                true
            }
            None => false,
        }
    }

    /// Runs `f` once the running command, or the EXEC it is part of, has released its shard
    /// locks. For work that takes a lock other threads may hold while they wait for shards
    /// (switching replication roles waits for the link's apply lock): waiting for it while
    /// holding shards could deadlock, so the lock order is always "that lock, then shards".
    pub fn after_unlock(&mut self, f: impl FnOnce() + Send + 'static) {
        self.deferred.push(Box::new(f));
    }

    /// Takes the planned shards `ids` before a command (or EXEC) runs.
    fn take(&mut self, ids: &mut [u32]) {
        let taken = self.locks.acquire(ids);
        debug_assert!(taken, "a planned lock could not be taken in order");
        let (track, writing) = (tracks_new(self.server), self.writing);
        for (_, g) in self.locks.iter_mut() {
            g.track_new |= track;
            g.cow = writing;
        }
    }

    /// Takes every shard a waiter's command needs; false if one is busy (see `blocking`).
    fn lock_for_waiter(&mut self, w: &blocking::Waiter) -> bool {
        let argv: Vec<&[u8]> = w.argv.iter().map(|a| &a[..]).collect();
        let Ok(cmd) = self.server.commands.resolve(&argv) else {
            return false;
        };
        let mut ids = SmallVec::new();
        let reach = plan(self.server, cmd.spec, &argv, w.db, &mut ids);
        if !reach.is_empty() {
            return false;
        }
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().all(|id| self.try_lock_id(id))
    }

    /// Releases every shard lock (handlers that walk shards one at a time call this
    /// between shards). Inside EXEC, or serving a waiter, the locks belong to the
    /// transaction or the pusher and stay: only the events and feed entries go out.
    pub fn unlock_all(&mut self) {
        self.flush_new();
        self.feed_expired();
        if self.mode != Mode::Direct {
            return;
        }
        let released = self.locks.release();
        self.after_release(released);
    }

    fn after_release(&mut self, mut released: crate::storage::locks::Released<'a>) {
        let mut expired = Vec::new();
        for (id, g) in released.guards.iter_mut() {
            g.track_new = false;
            g.cow = false;
            g.expired_fed = 0;
            // Keys whose `expired` event went out already (see `tell_expired`) are done.
            let told = std::mem::take(&mut g.expired_told);
            if g.expired.len() > told {
                let mut keys = std::mem::take(&mut g.expired);
                keys.drain(..told);
                expired.push((*id as usize / SHARDS, keys));
            } else {
                g.expired.clear();
            }
        }
        drop(released);
        for (db, keys) in expired {
            self.server.keys_expired(db, keys);
        }
    }

    /// Counts a keyspace hit or miss (INFO keyspace_hits / keyspace_misses).
    #[inline]
    pub fn hit(&self, hit: bool) {
        self.server.metrics.stats.lookup(hit);
    }

    /// Raises a keyspace notification (`class` from `crate::notify`, Redis's event name)
    /// for `key` in the current database. One atomic load when notifications are off.
    #[inline]
    pub fn notify(&mut self, class: u32, event: &str, key: &[u8]) {
        let flags = self.server.hot.notify.load(Relaxed);
        if flags & (crate::notify::NEW | crate::notify::EXPIRED) != 0 {
            self.flush_new();
        }
        if flags & class != 0 {
            crate::notify::publish(
                &self.server.pubsub,
                flags,
                class,
                event,
                key,
                self.client.db,
            );
        }
    }

    /// Like [`Ctx::notify`] for a key in another database (MOVE, COPY ... DB).
    pub fn notify_in(&mut self, db: usize, class: u32, event: &str, key: &[u8]) {
        let flags = self.server.hot.notify.load(Relaxed);
        if flags & (crate::notify::NEW | crate::notify::EXPIRED) != 0 {
            self.flush_new();
        }
        if flags & class != 0 {
            crate::notify::publish(&self.server.pubsub, flags, class, event, key, db);
        }
    }

    /// Propagates the running command as `argv` instead of its own arguments (Redis's
    /// effects replication: relative TTLs become absolute, SPOP becomes SREM, ...). Call it
    /// once per effect; a command that calls it with nothing to say propagates nothing
    /// ([`Ctx::propagate_nothing`]). Cheap to skip: see [`Ctx::propagating`].
    pub fn propagate(&mut self, argv: &[&[u8]]) {
        if self.propagating() {
            self.effects
                .get_or_insert_with(Vec::new)
                .push(argv.iter().map(|a| a.to_vec()).collect());
        }
    }

    /// Propagates nothing for the running command, even though it changed the dataset.
    pub fn propagate_nothing(&mut self) {
        self.effects.get_or_insert_with(Vec::new);
    }

    /// Propagates the running command as exactly `effects` (built by the handler, moved
    /// in without copying); none means nothing, as [`Ctx::propagate_nothing`].
    pub fn propagate_owned(&mut self, effects: Vec<Vec<Vec<u8>>>) {
        let list = self.effects.get_or_insert_with(Vec::new);
        if self.server.feed.is_active() {
            list.extend(effects);
        }
    }

    /// Whether writes are being propagated at all (the AOF or replicas are on): handlers
    /// build rewritten effects only then.
    #[inline]
    pub fn propagating(&self) -> bool {
        self.server.feed.is_active()
    }

    /// Propagates the DELs of keys the held shards expired and that were not propagated
    /// yet, before their locks go (Redis propagates a lazily expired key as a DEL).
    fn feed_expired(&mut self) {
        let mut cmds = Vec::new();
        self.feed_expired_into(&mut cmds);
        if cmds.is_empty() || !self.server.feed.is_active() {
            return;
        }
        match self.batch.as_mut() {
            Some(batch) => batch.extend(cmds, crate::feed::TO_ALL),
            None => self.server.feed.append(&cmds, cmds.len() > 1),
        }
    }

    /// Appends what the command that just ran changed to the write feed, while its shard
    /// locks are still held (so the feed's order is the order changes took effect): DELs
    /// of keys it found expired, then its effects, or its arguments if it changed something.
    fn propagate_effects(&mut self, args: &[&[u8]], dirty: bool) {
        let effects = self.effects.take();
        // A replayed AOF is not fed again (DEBUG LOADAOF replays while the AOF is on).
        if !self.server.feed.is_active() || self.replaying {
            return;
        }
        let db = self.client.db;
        let mut cmds = Vec::new();
        self.feed_expired_into(&mut cmds);
        // Keys found expired go to every output; the command's own effects may not.
        let expired = cmds.len();
        match effects {
            Some(list) => cmds.extend(list.into_iter().map(|argv| (db, argv))),
            None if dirty => {
                if cmds.is_empty() && self.batch.is_none() {
                    // The hot path: one command, encoded straight from its arguments.
                    self.server.feed.append_one(db, args);
                    return;
                }
                cmds.push((db, args.iter().map(|a| a.to_vec()).collect()));
            }
            None => {}
        }
        match self.batch.as_mut() {
            Some(batch) => {
                let own = cmds.split_off(expired);
                batch.extend(cmds, crate::feed::TO_ALL);
                batch.extend(own, self.repl_to);
            }
            None => self.server.feed.append(&cmds, cmds.len() > 1),
        }
    }

    /// [`Ctx::feed_expired`] collecting into `out` whatever the batch state.
    fn feed_expired_into(&mut self, out: &mut Vec<(usize, Vec<Vec<u8>>)>) {
        for (_, g) in self.locks.iter_mut() {
            if g.expired_fed < g.expired.len() {
                let db = g.db;
                if self.server.tracking.active() {
                    for k in &g.expired[g.expired_fed..] {
                        self.server.tracking.invalidate(k, None);
                    }
                }
                out.extend(
                    g.expired[g.expired_fed..]
                        .iter()
                        .map(|k| (db, vec![b"DEL".to_vec(), k.to_vec()])),
                );
                g.expired_fed = g.expired.len();
            }
        }
    }

    /// Raises the `new` events of keys the held shards created since the last call. Redis
    /// raises `new` when a key is added, which precedes the event of the command adding it,
    /// so this runs before every other event and when the command's locks are released.
    /// The `expired` events of keys a lookup expired lazily go first: Redis raises them
    /// during the lookup, before the command adds anything.
    fn flush_new(&mut self) {
        let flags = self.server.hot.notify.load(Relaxed);
        for (_, g) in self.locks.iter_mut() {
            tell_expired(self.server, g);
            if g.created.is_empty() {
                continue;
            }
            let db = g.db;
            for key in std::mem::take(&mut g.created) {
                crate::notify::publish(
                    &self.server.pubsub,
                    flags,
                    crate::notify::NEW,
                    "new",
                    &key,
                    db,
                );
            }
        }
    }

    /// Records that the command changed the dataset (n changes): feeds the persistence
    /// `dirty` counter and invalidates WATCHes of the command's keys.
    #[inline]
    pub fn dirty(&self, n: u64) {
        self.cmd_dirty.set(self.cmd_dirty.get() + n);
    }

    /// The key at argument `pos`, which the command's key spec says it writes, keeps its
    /// WATCHes: Redis signals no change of it this time (SMOVE's destination that already
    /// holds the member; a stream's consumer groups and last ID, which Redis 7.0 changes
    /// without signalling).
    pub fn keep_watches(&mut self, pos: usize) {
        if pos < 64 {
            self.kept_watches |= 1 << pos;
        }
    }

    /// The command's reply is (un)subscription pushes, which Redis sends even under CLIENT
    /// REPLY OFF or SKIP. Not inside EXEC, whose reply is one array.
    pub fn pushes_only(&mut self) {
        self.pushes_only = !self.in_exec();
    }

    /// After a write command changed something: count it, and mark the transactions that
    /// watch its keys dirty (Redis's signalModifiedKey).
    fn after_write(&mut self, cmd: &Cmd, args: &[&[u8]]) {
        let spec = cmd.spec;
        let kept = std::mem::take(&mut self.kept_watches);
        let n = self.cmd_dirty.replace(0);
        if n == 0 {
            return;
        }
        self.server
            .metrics
            .stats
            .local()
            .dirty
            .fetch_add(n, Relaxed);
        let watching = self.server.watching.load(Relaxed) != 0;
        let tracking = self.server.tracking.active();
        if spec.flags & flags::WRITE == 0 || !(watching || tracking) {
            return;
        }
        let db = self.client.db;
        // Only the keys the command writes (not a STORE command's sources), per its key
        // specs; every key when the specs cannot tell.
        let written = cmd.written_positions(args);
        let is_written = |i: usize| {
            (i >= 64 || kept & (1 << i) == 0) && written.as_ref().is_none_or(|w| w.contains(&i))
        };
        let mut keys: SmallVec<[(usize, &[u8]); 4]> = SmallVec::new();
        match spec.keys {
            Keys::Range(..) => keys.extend(
                spec.key_positions(args.len())
                    .filter(|&i| is_written(i))
                    .map(|i| (db, args[i])),
            ),
            Keys::Custom(f) | Keys::CustomOrDb(f, _) => f(args, db, &mut |d, k| {
                // Keys borrowed from `args` (every finder returns argument slices).
                if let Some(i) = args.iter().position(|a| a.as_ptr() == k.as_ptr()) {
                    if is_written(i) {
                        keys.push((d, args[i]));
                    }
                }
            }),
            // Whole-database writes (FLUSHDB, SWAPDB) mark their shards' watchers themselves.
            Keys::AllDb
            | Keys::AllDbs
            | Keys::WalkDb
            | Keys::WalkAll
            | Keys::Script
            | Keys::None => {}
        }
        for (d, key) in keys {
            if let Some(spec) = self.speculation.as_mut() {
                // A speculative script's writes count once it commits.
                spec.touched.push((d, key.into()));
                continue;
            }
            if d < self.server.keyspace.dbs.len() {
                let writer = self.client.id;
                if let Ok((sh, _)) = self.shard_in(d, key) {
                    if watching {
                        sh.touch_watched(key);
                    }
                    if tracking {
                        self.server.tracking.invalidate(key, Some(writer));
                    }
                }
            }
        }
    }

    /// Takes the shards `spec` plans for `args` before its handler runs, and sets its reach.
    /// A script locks for itself (`scripting::atomic`). `Err` when a script past its time
    /// limit holds the gate and the command may not wait (`-BUSY`).
    fn lock_for(&mut self, spec: &CommandSpec, args: &[&[u8]]) -> Result<(), Busy> {
        if matches!(spec.keys, Keys::Script) {
            self.reach = 0..0;
            return Ok(());
        }
        let mut ids = SmallVec::new();
        self.reach = plan(self.server, spec, args, self.client.db, &mut ids);
        if spec.flags & flags::ALLOW_BUSY != 0 && self.server.keyspace.gate.is_busy() {
            // A script past its limit holds every shard: what may run meanwhile (SCRIPT
            // KILL, SHUTDOWN NOSAVE) runs without any, rather than wait for it.
            self.reach = 0..0;
            return Ok(());
        }
        if !ids.is_empty() || !self.reach.is_empty() {
            self.locks.enter(spec.flags & flags::ALLOW_BUSY == 0)?;
        }
        if !ids.is_empty() {
            self.take(&mut ids);
        }
        Ok(())
    }
}

/// Plans the shards a command will touch, from its key spec and arguments, before it runs:
/// pushes the ids to take up front onto `ids` and returns the range it may walk one shard
/// at a time (empty unless `Keys::WalkDb` / `Keys::WalkAll`). The one place a command's
/// locking is decided: the dispatcher, EXEC and blocked-client service all use it.
pub(crate) fn plan(
    server: &Server,
    spec: &CommandSpec,
    args: &[&[u8]],
    db: usize,
    ids: &mut SmallVec<[u32; 8]>,
) -> std::ops::Range<u32> {
    let ks = &server.keyspace;
    let ndb = ks.dbs.len();
    let db_range = |d: usize| shard_id(d, 0)..shard_id(d + 1, 0);
    match spec.keys {
        Keys::None => {}
        Keys::Range(..) => {
            // A plain loop: SmallVec's `extend` over this iterator cost ~125 instructions
            // a command (callgrind), a push costs a few.
            for i in spec.key_positions(args.len()) {
                ids.push(shard_id(db, shard_of(ks.hash(args[i]))));
            }
        }
        Keys::CustomOrDb(_, whole) if whole(args) => ids.extend(db_range(db)),
        Keys::Custom(f) | Keys::CustomOrDb(f, _) => f(args, db, &mut |d, key| {
            if d < ndb {
                ids.push(shard_id(d, shard_of(ks.hash(key))));
            }
        }),
        Keys::AllDb => ids.extend(db_range(db)),
        Keys::AllDbs => ids.extend(0..shard_id(ndb, 0)),
        Keys::WalkDb => return db_range(db),
        Keys::WalkAll | Keys::Script => return 0..shard_id(ndb, 0),
    }
    0..0
}

/// Runs a command as the server's own client (no connection, replies dropped): for work
/// the server starts itself, such as the cluster deleting the keys of a slot it lost.
/// Never call it while holding shard locks.
pub fn run_internal(server: &Server, args: &[&[u8]]) {
    let handle = std::sync::Arc::new(crate::registry::ClientHandle::new(
        u64::MAX - 1,
        String::new(),
        String::new(),
        -1,
        crate::clock::now_ms(),
    ));
    let mut client = Client::new(handle, false);
    client.internal = true;
    let mut out = Vec::new();
    let mut cx = Ctx::new(server, &mut client, &mut out);
    dispatch(&mut cx, args);
}

/// Runs one command: the whole life of a request after parsing.
pub fn dispatch(cx: &mut Ctx, args: &[&[u8]]) {
    // CLIENT REPLY OFF / SKIP: the command runs, its reply (error or not) is dropped. Checked
    // after the command, so CLIENT REPLY ON's own +OK gets through. (Un)subscription pushes
    // get through too.
    cx.client.reply_skip = std::mem::take(&mut cx.client.reply_skip_next);
    let mark = cx.out.buf.len();
    cx.pushes_only = false;
    let server = cx.server;
    let bcast = server.tracking.batch();
    execute(cx, args);
    drop(bcast);
    if cx.client.asking && cx.client.multi.is_none() && !args[0].eq_ignore_ascii_case(b"asking") {
        // ASKING lets one command (or one transaction) through.
        cx.client.asking = false;
    }
    tracking::after_command(cx, args);
    if (cx.client.reply_off || cx.client.reply_skip) && !cx.pushes_only {
        cx.out.buf.truncate(mark);
    }
}

pub(super) fn execute(cx: &mut Ctx, args: &[&[u8]]) {
    let server = cx.server;
    let start = cx.mark;
    cx.now = cx.base.0 + start.saturating_duration_since(cx.base.1).as_millis() as u64;
    if cx.replaying {
        cx.now = 0;
    }
    let cmd = match server.commands.resolve(args) {
        Ok(c) => c,
        Err(e) => {
            flag_multi(cx);
            reject(cx, None, &e);
            return;
        }
    };
    let spec = cmd.spec;
    if !spec.arity_ok(args.len()) {
        flag_multi(cx);
        reject(cx, Some(cmd.id), &CommandError::arity(&cmd.fullname));
        return;
    }
    if !cx.client.authenticated && spec.flags & flags::NO_AUTH == 0 {
        flag_multi(cx);
        reject(cx, Some(cmd.id), &E(crate::error::NOAUTH));
        return;
    }
    // ACL: the client's own commands, and again as EXEC runs them (the rules may have
    // changed since they were queued). A script checks its calls itself (`Place::Script`).
    if !cx.script_call && !cx.trusted_stream() {
        let place = match cx.mode {
            Mode::Direct => Some(acl::Place::Client),
            Mode::Exec => Some(acl::Place::Exec),
            Mode::Serving { .. } => None,
        };
        if let Some(place) = place {
            if let Err(e) = acl::check(cx, cmd, args, place) {
                flag_multi(cx);
                reject(cx, Some(cmd.id), &e);
                return;
            }
        }
    }
    // Cluster mode: a command with keys runs only on the node serving their slot (Redis's
    // `getNodeByQuery`), checked as the client sends it, queued in MULTI or not; EXEC
    // routes its whole queue, and a redirected EXEC discards the transaction.
    if server.cluster.is_some()
        && !cx.in_exec()
        && !cx.trusted_stream()
        && !cx.script_call
        && !cx.client.internal
        && cluster::routed(cmd)
    {
        if let Err(r) = cluster::route(cx, cmd, args) {
            let e = CommandError::Owned(r.text());
            if spec.name == "exec" {
                transaction::discard_quietly(cx);
                reject(cx, None, &e);
                server
                    .metrics
                    .stats
                    .cmd(cmd.id)
                    .rejected
                    .fetch_add(1, Relaxed);
            } else {
                flag_multi(cx);
                reject(cx, Some(cmd.id), &e);
            }
            return;
        }
    }
    // Replication's write gate: READONLY on a replica, NOREPLICAS, MASTERDOWN.
    if !cx.in_exec() {
        if let Some(e) = server.repl.gate(cx.client, spec.flags) {
            flag_multi(cx);
            reject(cx, Some(cmd.id), &E(e));
            return;
        }
    }
    if !cx.client.resp3 && cx.client.subscribed() && !cx.in_exec() {
        let top = cx.server.commands.get(args[0]).map_or("", |c| c.spec.name);
        if !pubsub::allowed_when_subscribed(top) {
            flag_multi(cx);
            reject(
                cx,
                Some(cmd.id),
                &CommandError::Owned(format!(
                    "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                    cmd.fullname
                )),
            );
            return;
        }
    }
    // A client in MONITOR mode is a replica to Redis: it may not touch the keyspace.
    if cx.client.monitor
        && spec.flags & (flags::READONLY | flags::WRITE | flags::MAY_REPLICATE) != 0
    {
        flag_multi(cx);
        reject(cx, Some(cmd.id), &E(crate::error::MONITOR_KEYSPACE));
        return;
    }
    // maxmemory: evict before the command, as Redis does before every command; with
    // nothing left to evict, refuse what would grow memory. Not while a script runs alone:
    // eviction's shard locks would wait for it where the command may have to be answered
    // `-BUSY` (the cron, or the next command, evicts once it is over).
    if !cx.in_exec() {
        cx.oom = false;
        if !cx.replaying
            && server.memory.over()
            && !server.keyspace.gate.is_held()
            && server.pause.active(crate::clock::now_ms).is_none()
        {
            cx.oom = evict::perform(server, &mut cx.locks) == crate::maxmemory::Outcome::Fail;
            if cx.oom && refused_when_oom(cx, spec) {
                flag_multi(cx);
                reject(cx, Some(cmd.id), &E(crate::error::OOM));
                return;
            }
        }
    }
    if cx.client.multi.is_some() && !cx.in_exec() {
        let top = cx.server.commands.get(args[0]).map_or("", |c| c.spec.name);
        if !transaction::runs_inside_multi(top) {
            if spec.flags & flags::NO_MULTI != 0 {
                flag_multi(cx);
                reject(
                    cx,
                    Some(cmd.id),
                    &CommandError::err("Command not allowed inside a transaction"),
                );
                return;
            }
            if let Some(m) = cx.client.multi.as_mut() {
                m.queue.push(args.iter().map(|a| a.to_vec()).collect());
                cx.client.handle.multi.store(m.queue.len() as u32, Relaxed);
            }
            cx.out.simple("QUEUED");
            return;
        }
    }
    if !cx.in_exec() {
        // CLIENT LIST's `cmd`: EXEC or the script, not what they run.
        cx.client.handle.last_cmd.store(cmd.id as u32, Relaxed);
    }

    let mark = cx.out.buf.len();
    cx.cmd_name = spec.name;
    if !cx.in_exec() && !take_locks(cx, cmd, args) {
        return;
    }
    if spec.flags & flags::BLOCKING != 0 {
        cx.argv = args.iter().map(|a| a.to_vec()).collect();
    }
    cx.cmd_dirty.set(0);
    cx.kept_watches = 0;
    if spec.flags & flags::SKIP_MONITOR != 0 && server.monitors.active() && !cx.replaying {
        // EVAL and FCALL show before the commands their script runs, as in Redis.
        server::monitor::feed(cx, cmd, args);
    }
    crate::crash::running(cmd.id, args);
    let result = (spec.handler)(cx, args);
    if cx.client.tracking.on && spec.flags & flags::READONLY != 0 {
        // Under the command's locks: a write to these keys lands before (and is read) or
        // after (and invalidates).
        tracking::remember_read(cx, cmd, args);
    }
    crate::crash::done();
    settle(cx, cmd, args);
    let end = crate::clock::instant();
    cx.mark = end;
    let usec = end.saturating_duration_since(start).as_micros() as u64;

    let stats = &server.metrics.stats;
    stats.local().commands.fetch_add(1, Relaxed);
    let cs = stats.cmd(cmd.id);
    cs.calls.fetch_add(1, Relaxed);
    cs.usec.fetch_add(usec, Relaxed);
    // Watching the server: MONITOR, the slow log and the latency monitor cost one load and
    // a compare together while off or idle (`Server::observers_changed`); the command's
    // latency histogram a few instructions.
    if usec >= server.hot.observe_floor.load(Relaxed) {
        observe(cx, cmd, args, usec);
    }
    if server.hot.latency_tracking.load(Relaxed) {
        cs.record_latency(usec);
    }
    if let Err(e) = result {
        cx.out.buf.truncate(mark);
        cx.out.error(e.text());
        cs.failed.fetch_add(1, Relaxed);
        stats.count_error(e.code());
    }
}

/// Takes the locks `cmd` plans for `args` (a client's own command, not one EXEC runs);
/// false, with `-BUSY` replied, when a script past its time limit holds the keyspace.
fn take_locks(cx: &mut Ctx, cmd: &Cmd, args: &[&[u8]]) -> bool {
    let spec = cmd.spec;
    let busy = |cx: &mut Ctx| {
        reject(cx, Some(cmd.id), &E(cx.server.scripts.busy_text()));
    };
    if spec.flags & flags::ALLOW_BUSY == 0 && cx.server.keyspace.gate.is_busy() {
        busy(cx);
        return false;
    }
    cx.writing = spec.flags & flags::WRITE != 0;
    if cx.lock_for(spec, args).is_err() {
        cx.reach = 0..0;
        busy(cx);
        return false;
    }
    true
}

/// What follows a handler while its locks are held: its effects into the feed, WATCHes,
/// blocked clients it made ready; then (outside EXEC) the locks go and deferred work runs.
fn settle(cx: &mut Ctx, cmd: &Cmd, args: &[&[u8]]) {
    let (server, spec) = (cx.server, cmd.spec);
    cx.propagate_effects(args, cx.cmd_dirty.get() > 0);
    if !cx.in_exec()
        && server.feed.is_active()
        && (cx.cmd_dirty.get() > 0 || spec.name == "exec" || matches!(spec.keys, Keys::Script))
    {
        // WAIT waits for the offset right after the client's last write.
        cx.client.repl.woff = server.feed.repl_offset();
    }
    cx.after_write(cmd, args);
    if !cx.in_exec() {
        if cx.locks.iter_mut().any(|(_, g)| g.has_ready()) {
            blocking::serve_ready(cx);
        }
        cx.unlock_all();
        cx.reach = 0..0;
        if !cx.deferred.is_empty() {
            for f in std::mem::take(&mut cx.deferred) {
                f();
            }
        }
    }
}

/// Ends a client's command whose handler handed network work to its connection (MIGRATE,
/// see `migrate`): with a fresh context, takes the locks `args` plan again and runs `f`
/// as the rest of the handler, then settles it as [`execute`] does (feed, WATCH, unlock).
/// The command was counted, checked and shown (MONITOR, slow log) when it started.
pub(crate) fn resume(cx: &mut Ctx, args: &[&[u8]], f: impl FnOnce(&mut Ctx) -> CmdResult) {
    let Ok(cmd) = cx.server.commands.resolve(args) else {
        return;
    };
    let mark = cx.out.buf.len();
    cx.cmd_name = cmd.spec.name;
    if take_locks(cx, cmd, args) {
        cx.cmd_dirty.set(0);
        cx.kept_watches = 0;
        let result = f(cx);
        settle(cx, cmd, args);
        if let Err(e) = result {
            cx.out.buf.truncate(mark);
            cx.out.error(e.text());
            let stats = &cx.server.metrics.stats;
            stats.cmd(cmd.id).failed.fetch_add(1, Relaxed);
            stats.count_error(e.code());
        }
    }
    if cx.client.reply_off || cx.client.reply_skip {
        cx.out.buf.truncate(mark);
    }
}

/// The observers of a command that ran `usec` µs, past the floor: the MONITOR feed, the
/// slow log, the latency monitor's `command` / `fast-command` event.
#[cold]
fn observe(cx: &mut Ctx, cmd: &Cmd, args: &[&[u8]], usec: u64) {
    let server = cx.server;
    if cx.replaying {
        // Loading an AOF: Redis neither logs nor shows those commands.
        return;
    }
    let spec = cmd.spec;
    if server.monitors.active() && spec.flags & (flags::SKIP_MONITOR | flags::ADMIN) == 0 {
        server::monitor::feed(cx, cmd, args);
    }
    if server.slowlog.wants(usec) && spec.flags & flags::SKIP_SLOWLOG == 0 {
        server::slowlog::log(cx, cmd, args, usec);
    }
    let event = if spec.flags & flags::FAST != 0 {
        "fast-command"
    } else {
        "command"
    };
    server.latency.sample_if_needed(event, usec / 1000);
}

/// Looks a key up as Redis's `lookupKey` does for every command: a key past its deadline is
/// deleted and reported missing, and a live one records the access on its LRU clock.
pub(super) fn lookup<'s>(
    sh: &'s mut Shard,
    h: u64,
    key: &[u8],
    now: u64,
    lru: u32,
) -> Option<&'s mut crate::storage::Entry> {
    let e = sh.get(h, key, now)?;
    e.touch(lru);
    Some(e)
}

/// [`lookup`] for a command that reads the value (Redis's `lookupKeyRead`): also counts a
/// keyspace hit or miss, a hit even when the command then fails on the key's type. The one
/// place read lookups go through (keyspace `keymiss` events belong here).
pub(super) fn lookup_read<'s>(
    server: &Server,
    sh: &'s mut Shard,
    h: u64,
    key: &[u8],
    now: u64,
    lru: u32,
) -> Option<&'s mut crate::storage::Entry> {
    if server.hot.notify.load(Relaxed) & crate::notify::KEY_MISS == 0 {
        let e = lookup(sh, h, key, now, lru);
        server.metrics.stats.lookup(e.is_some());
        return e;
    }
    // With `keymiss` events on, a miss must reach the shard again (to raise the `expired`
    // event of a key this lookup expired first), which a borrow returned on a hit forbids:
    // look a hit up twice instead.
    if lookup(sh, h, key, now, lru).is_none() {
        server.metrics.stats.lookup(false);
        tell_expired(server, sh);
        key_miss(server, sh.db, key);
        return None;
    }
    server.metrics.stats.lookup(true);
    sh.get(h, key, now)
}

/// Counts a read lookup made without [`lookup_read`] (EXISTS, TYPE and the TTL family leave
/// the LRU clock alone) and, on a miss, raises `keymiss` as [`lookup_read`] does.
pub(super) fn count_read(server: &Server, sh: &mut Shard, key: &[u8], found: bool) {
    server.metrics.stats.lookup(found);
    if !found && server.hot.notify.load(Relaxed) & crate::notify::KEY_MISS != 0 {
        tell_expired(server, sh);
        key_miss(server, sh.db, key);
    }
}

/// Raises the `expired` events of the keys `sh` expired lazily since the last call, at the
/// point Redis raises them (during the lookup), rather than when the command's locks go;
/// stats count them now too. Their DELs still reach the write feed in the usual way.
pub(super) fn tell_expired(server: &Server, sh: &mut Shard) {
    tell_expired_to(server, sh, sh.expired.len());
}

/// [`tell_expired`] for the first `end` keys of `sh.expired` only (SCAN raises each key's
/// `keymiss` right after its `expired`).
pub(super) fn tell_expired_to(server: &Server, sh: &mut Shard, end: usize) {
    let end = end.min(sh.expired.len());
    if end > sh.expired_told {
        server.keys_expired(sh.db, sh.expired[sh.expired_told..end].to_vec());
        sh.expired_told = end;
    }
}

/// Whether shards locked now should record the keys they create (`new` events enabled).
#[inline]
fn tracks_new(server: &Server) -> bool {
    let flags = server.hot.notify.load(Relaxed);
    crate::notify::wanted(flags, crate::notify::NEW)
}

/// Raises the `keymiss` event of a read lookup that found nothing (Redis's
/// `lookupKeyRead` does, for every command reading a key).
#[inline]
pub(super) fn key_miss(server: &Server, db: usize, key: &[u8]) {
    let flags = server.hot.notify.load(Relaxed);
    if flags & crate::notify::KEY_MISS != 0 {
        crate::notify::publish(
            &server.pubsub,
            flags,
            crate::notify::KEY_MISS,
            "keymiss",
            key,
            db,
        );
    }
}

/// A command refused while queuing a transaction makes its EXEC fail.
/// Whether a command is refused while memory is over `maxmemory` with nothing to evict
/// (Redis's `processCommand`): a `denyoom` command, EXEC of a transaction that queued one,
/// and anything being queued in MULTI (the queue grows) but EXEC, DISCARD, QUIT and RESET.
fn refused_when_oom(cx: &Ctx, spec: &CommandSpec) -> bool {
    if spec.flags & flags::DENYOOM != 0 {
        return true;
    }
    let Some(m) = cx.client.multi.as_ref() else {
        return false;
    };
    match spec.name {
        "exec" => m.queue.iter().any(|argv| {
            let refs: SmallVec<[&[u8]; 8]> = argv.iter().map(|a| &a[..]).collect();
            cx.server
                .commands
                .resolve(&refs)
                .is_ok_and(|c| c.spec.flags & flags::DENYOOM != 0)
        }),
        "discard" | "quit" | "reset" => false,
        _ => true,
    }
}

fn flag_multi(cx: &mut Ctx) {
    if !cx.in_exec() {
        if let Some(m) = cx.client.multi.as_mut() {
            m.error = true;
        }
    }
}

/// Replies with an error for a command that was refused before running.
fn reject(cx: &mut Ctx, id: Option<usize>, e: &CommandError) {
    let exec = id.and_then(|id| cx.server.commands.names.get(id));
    if exec.is_some_and(|name| name == "exec") {
        // A rejected EXEC discards the transaction, naming why (Redis's execCommandAbort).
        transaction::abort(cx, e.text());
    } else {
        cx.out.error(e.text());
    }
    let stats = &cx.server.metrics.stats;
    if let Some(id) = id {
        stats.cmd(id).rejected.fetch_add(1, Relaxed);
    }
    stats.count_error(e.code());
}

/// Commands that are always allowed (for the table test below).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for fam in FAMILIES {
            for c in fam.iter() {
                assert!(seen.insert(c.name), "duplicate command {}", c.name);
                assert_eq!(
                    c.name,
                    c.name.to_lowercase(),
                    "{} must be lowercase",
                    c.name
                );
                assert!(c.arity != 0, "{} arity", c.name);
                if let Keys::Range(f, l, _) = c.keys {
                    assert!(f > 0, "{} first key", c.name);
                    if c.arity > 0 && l > 0 {
                        assert!(l < c.arity, "{} last key beyond arity", c.name);
                    }
                }
                for s in c.subcommands {
                    assert!(s.arity != 0, "{}|{} arity", c.name, s.name);
                }
            }
        }
    }

    #[test]
    fn lookup_is_case_insensitive() {
        let t = CommandTable::build();
        assert!(t.get(b"GeT").is_some());
        assert!(t.get(b"nosuchcommand").is_none());
        assert!(t.resolve(&[b"config", b"get", b"x"]).is_ok());
    }
}
