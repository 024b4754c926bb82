//! `maxmemory`: the memory gauge commands read, and key eviction.
//!
//! **The gauge.** jemalloc's precise figure (`stats.allocated`) needs its statistics
//! refreshed, which is too slow to do before every command. So the gauge is that figure as
//! of the cron's last tick ([`Memory::refresh`]) plus what worker threads allocated net
//! since: each thread reads its own allocation counters (jemalloc keeps them per thread, a
//! load each) after a command and adds the change to one shared counter once it amounts to
//! [`PUBLISH_BYTES`], so the shared counter is written rarely and read cheaply. Threads
//! that never publish (the snapshot writer, the AOF) are caught up at the next tick.
//!
//! **Eviction.** Before a command runs, with `maxmemory` set and the gauge over it, the
//! command's thread evicts ([`perform`]), holding no shard: it samples
//! `maxmemory-samples` keys from a random shard of each database into a pool of the best
//! candidates kept per thread (Redis's eviction pool: the longest idle, least frequently
//! used or nearest deadline), evicts the best one, publishes what that freed, and goes on
//! until the gauge is under the limit. Every thread reads the same gauge, so threads
//! evicting together stop together rather than each freeing the whole excess. An evicted
//! key takes the path an expired one does: its DEL is fed to the AOF and replicas while
//! its shard is held, its WATCHes are invalidated, its `evicted` event raised.
//!
//! Past `maxmemory-eviction-tenacity`'s time limit a command goes on (not refused) and
//! the cron carries on evicting; with nothing left to evict (noeviction, or a volatile
//! policy without volatile keys), write commands get `-OOM`.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use crate::server::Server;
use crate::storage::access;
use crate::storage::keyspace::shard_of;
use crate::storage::{shard_id, LockSet, SHARDS};

/// Net bytes a thread allocates before it adds them to the shared counter.
const PUBLISH_BYTES: i64 = 64 * 1024;
/// How long a database found without candidates is not sampled again.
const EMPTY_FOR_MS: u64 = 100;
/// Candidates kept between evictions (Redis's `EVPOOL_SIZE`).
const POOL_SIZE: usize = 16;

/// `maxmemory-policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Policy {
    NoEviction,
    AllKeysLru,
    AllKeysLfu,
    AllKeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

impl Policy {
    pub fn parse(name: &str) -> Self {
        match name {
            "allkeys-lru" => Self::AllKeysLru,
            "allkeys-lfu" => Self::AllKeysLfu,
            "allkeys-random" => Self::AllKeysRandom,
            "volatile-lru" => Self::VolatileLru,
            "volatile-lfu" => Self::VolatileLfu,
            "volatile-random" => Self::VolatileRandom,
            "volatile-ttl" => Self::VolatileTtl,
            _ => Self::NoEviction,
        }
    }

    fn from_u8(v: u8) -> Self {
        [
            Self::NoEviction,
            Self::AllKeysLru,
            Self::AllKeysLfu,
            Self::AllKeysRandom,
            Self::VolatileLru,
            Self::VolatileLfu,
            Self::VolatileRandom,
            Self::VolatileTtl,
        ]
        .get(v as usize)
        .copied()
        .unwrap_or(Self::NoEviction)
    }

    pub fn is_lfu(self) -> bool {
        matches!(self, Self::AllKeysLfu | Self::VolatileLfu)
    }

    fn volatile(self) -> bool {
        matches!(
            self,
            Self::VolatileLru | Self::VolatileLfu | Self::VolatileRandom | Self::VolatileTtl
        )
    }

    fn random(self) -> bool {
        matches!(self, Self::AllKeysRandom | Self::VolatileRandom)
    }
}

/// How an eviction attempt ended (Redis's `EVICT_OK` / `EVICT_RUNNING` / `EVICT_FAIL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Under the limit (or no limit).
    Ok,
    /// Still over, out of time: the cron goes on; the command is not refused.
    Running,
    /// Over, and nothing could be evicted: write commands are refused.
    Fail,
}

/// The memory gauge and the eviction settings, readable without a lock.
pub struct Memory {
    /// jemalloc's allocated bytes at the last refresh.
    base: AtomicU64,
    /// Net bytes worker threads published since.
    delta: AtomicI64,
    pub maxmemory: AtomicU64,
    policy: AtomicU8,
    samples: AtomicU32,
    tenacity: AtomicU32,
    /// `replica-ignore-maxmemory`.
    pub replica_ignore: AtomicBool,
}

thread_local! {
    /// This thread's jemalloc counters (allocated, deallocated), looked up once.
    static COUNTERS: Cell<Option<(tikv_jemalloc_ctl::thread::ThreadLocal<u64>,
                                  tikv_jemalloc_ctl::thread::ThreadLocal<u64>)>> =
        const { Cell::new(None) };
    /// This thread's net allocation when it last published.
    static PUBLISHED: Cell<i64> = const { Cell::new(0) };
    static POOL: RefCell<Vec<Candidate>> = const { RefCell::new(Vec::new()) };
    /// Where random eviction looks next (Redis walks the databases round robin).
    static NEXT_DB: Cell<usize> = const { Cell::new(0) };
    /// Per database, until when (unix ms) it is taken as empty (or without volatile keys).
    static EMPTY: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// This thread's net allocated bytes, ever.
fn thread_net() -> i64 {
    COUNTERS.with(|c| {
        let (a, d) = match c.get() {
            Some(p) => p,
            None => {
                let p = (|| {
                    Some((
                        tikv_jemalloc_ctl::thread::allocatedp::read().ok()?,
                        tikv_jemalloc_ctl::thread::deallocatedp::read().ok()?,
                    ))
                })();
                let Some(p) = p else { return 0 };
                c.set(Some(p));
                p
            }
        };
        a.get() as i64 - d.get() as i64
    })
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            base: AtomicU64::new(0),
            delta: AtomicI64::new(0),
            maxmemory: AtomicU64::new(0),
            policy: AtomicU8::new(Policy::NoEviction as u8),
            samples: AtomicU32::new(5),
            tenacity: AtomicU32::new(10),
            replica_ignore: AtomicBool::new(true),
        }
    }
}

impl Memory {
    /// Copies the settings from the configuration.
    pub fn configure(&self, c: &crate::config::Config) {
        self.maxmemory.store(c.get_u64("maxmemory"), Relaxed);
        let policy = Policy::parse(c.get("maxmemory-policy"));
        self.policy.store(policy as u8, Relaxed);
        self.samples
            .store(c.get_u64("maxmemory-samples").clamp(1, 64) as u32, Relaxed);
        self.tenacity
            .store(c.get_u64("maxmemory-eviction-tenacity") as u32, Relaxed);
        self.replica_ignore
            .store(c.get_bool("replica-ignore-maxmemory"), Relaxed);
        access::set_lfu_params(
            c.get_u64("lfu-log-factor") as u32,
            c.get_u64("lfu-decay-time") as u32,
        );
    }

    pub fn policy(&self) -> Policy {
        Policy::from_u8(self.policy.load(Relaxed))
    }

    /// Whether keys keep LFU counters rather than LRU clocks.
    #[inline]
    pub fn lfu(&self) -> bool {
        self.policy().is_lfu()
    }

    /// Whether Redis would hold small integer values as shared objects: not with an LRU or
    /// LFU policy under a memory limit, where each object needs its own access field
    /// (OBJECT REFCOUNT, DEBUG OBJECT report it).
    pub fn shares_integers(&self) -> bool {
        let p = self.policy();
        let ranked = matches!(
            p,
            Policy::AllKeysLru | Policy::VolatileLru | Policy::AllKeysLfu | Policy::VolatileLfu
        );
        self.maxmemory.load(Relaxed) == 0 || !ranked
    }

    /// The access data an RDB file carries per key under the current policy (Redis writes
    /// IDLE under an LRU policy, FREQ under an LFU one).
    pub fn rdb_access(&self, now_ms: u64) -> crate::rdb::AccessData {
        match self.policy() {
            Policy::AllKeysLru | Policy::VolatileLru => crate::rdb::AccessData::Idle { now_ms },
            Policy::AllKeysLfu | Policy::VolatileLfu => crate::rdb::AccessData::Freq {
                now_minutes: access::lfu_minutes(now_ms),
            },
            _ => crate::rdb::AccessData::None,
        }
    }

    /// The gauge: allocated bytes, as of the last refresh plus what threads published.
    pub fn used(&self) -> u64 {
        let v = self.base.load(Relaxed) as i64 + self.delta.load(Relaxed);
        v.max(0) as u64
    }

    /// Sets the gauge to jemalloc's precise figure (the cron, INFO).
    pub fn refresh(&self, precise: u64) {
        self.base.store(precise, Relaxed);
        self.delta.store(0, Relaxed);
    }

    /// Adds this thread's allocations since it last published, if they amount to enough
    /// (or at all, with `force`).
    pub fn publish(&self, force: bool) {
        let net = thread_net();
        let d = net - PUBLISHED.get();
        if force || d.abs() >= PUBLISH_BYTES {
            self.delta.fetch_add(d, Relaxed);
            PUBLISHED.set(net);
        }
    }

    /// Whether the gauge is over `maxmemory` (false without a limit): the one check on the
    /// command path.
    #[inline]
    pub fn over(&self) -> bool {
        let max = self.maxmemory.load(Relaxed);
        if max == 0 {
            return false;
        }
        self.publish(false);
        self.used() > max
    }

    /// How long one eviction run may take (Redis's `evictionTimeLimitUs`).
    fn time_limit(&self) -> Option<Duration> {
        let t = self.tenacity.load(Relaxed);
        match t {
            0..=10 => Some(Duration::from_micros(50 * u64::from(t))),
            11..=99 => Some(Duration::from_micros(
                (500.0 * 1.15f64.powi(t as i32 - 10)) as u64,
            )),
            _ => None,
        }
    }
}

/// A key the pool may evict: its database, its hash, and its rank (higher goes first).
struct Candidate {
    score: u64,
    db: usize,
    hash: u64,
    key: Box<[u8]>,
}

/// Brings memory under `maxmemory` if it is over, evicting as the policy says. `locks`
/// holds no shard (the command's own lock set, before it takes its keys). Called before
/// every command while the gauge is over, and by the cron.
pub fn perform(server: &Server, locks: &mut LockSet<'_>) -> Outcome {
    let mem = &server.memory;
    let max = mem.maxmemory.load(Relaxed);
    if max == 0 {
        return Outcome::Ok;
    }
    if mem.replica_ignore.load(Relaxed) && server.repl.is_replica() {
        return Outcome::Ok;
    }
    mem.publish(true);
    let counted = |mem: &Memory| {
        mem.used()
            .saturating_sub(server.mem_not_counted_for_evict())
    };
    if counted(mem) <= max {
        return Outcome::Ok;
    }
    let policy = mem.policy();
    if policy == Policy::NoEviction {
        return Outcome::Fail;
    }
    let limit = mem.time_limit();
    let start = crate::clock::instant();
    let mut evicted = 0u64;
    loop {
        let now = crate::clock::now_ms();
        if !evict_one(server, locks, policy, now) {
            return Outcome::Fail;
        }
        evicted += 1;
        mem.publish(true);
        if counted(mem) <= max {
            return Outcome::Ok;
        }
        if evicted.is_multiple_of(16) && limit.is_some_and(|l| start.elapsed() > l) {
            return Outcome::Running;
        }
    }
}

/// Evicts one key; false if none could be found.
fn evict_one(server: &Server, locks: &mut LockSet<'_>, policy: Policy, now: u64) -> bool {
    let ndb = server.keyspace.dbs.len();
    if policy.random() {
        // Random: a random key of the next database that has one.
        for _ in 0..ndb {
            let db = NEXT_DB.with(|n| {
                let d = n.get() % ndb;
                n.set(d + 1);
                d
            });
            let mut pick: Option<(u64, Box<[u8]>)> = None;
            visit_shards(locks, db, now, |sh| {
                sh.sample(1, policy.volatile(), |e, _| {
                    pick = Some((sh.hash(e.key()), e.key().into()));
                });
                pick.is_some()
            });
            if let Some((hash, key)) = pick {
                if delete(server, locks, db, hash, &key, policy, now) {
                    return true;
                }
            }
        }
        return false;
    }
    // The pool policies: refill from every database, then evict the best candidate that
    // still exists (a key may have gone since it was sampled).
    for _ in 0..4 {
        let samples = server.memory.samples.load(Relaxed) as usize;
        let mut sampled = false;
        for db in 0..ndb {
            visit_shards(locks, db, now, |sh| {
                let mut got = false;
                sh.sample(samples, policy.volatile(), |e, at| {
                    got = true;
                    let score = score(policy, e.lru(), at, now);
                    offer(score, db, e.key(), |k| sh.hash(k));
                });
                sampled |= got;
                got
            });
        }
        while let Some(c) = POOL.with(|p| p.borrow_mut().pop()) {
            if delete(server, locks, c.db, c.hash, &c.key, policy, now) {
                return true;
            }
        }
        if !sampled {
            return false;
        }
    }
    false
}

/// Runs `f` on random shards of `db` until it returns true (found something), trying a
/// few at random, then every shard in order (a database with few keys left). A database
/// found empty is skipped for [`EMPTY_FOR_MS`] (most of the 16 usually are).
fn visit_shards(
    locks: &mut LockSet<'_>,
    db: usize,
    now: u64,
    mut f: impl FnMut(&mut crate::storage::Shard) -> bool,
) {
    let skip = EMPTY.with(|e| e.borrow().get(db).is_some_and(|&until| until > now));
    if skip {
        return;
    }
    for _ in 0..8 {
        let idx = (access::random_u64() % SHARDS as u64) as usize;
        if locks.with(shard_id(db, idx), &mut f) == Some(true) {
            return;
        }
    }
    let first = (access::random_u64() % SHARDS as u64) as usize;
    for i in 0..SHARDS {
        let idx = (first + i) % SHARDS;
        if locks.with(shard_id(db, idx), &mut f) == Some(true) {
            return;
        }
    }
    EMPTY.with(|e| {
        let mut e = e.borrow_mut();
        if e.len() <= db {
            e.resize(db + 1, 0);
        }
        e[db] = now + EMPTY_FOR_MS;
    });
}

/// A sampled key's rank for the pool: higher is evicted first.
fn score(policy: Policy, field: u32, deadline: Option<u64>, now: u64) -> u64 {
    match policy {
        Policy::AllKeysLfu | Policy::VolatileLfu => {
            255 - u64::from(access::decayed(field, access::lfu_minutes(now)))
        }
        Policy::VolatileTtl => u64::MAX - deadline.unwrap_or(u64::MAX),
        _ => access::idle_seconds(field, now),
    }
}

/// Puts a key in this thread's pool (sorted by score, best last) if it ranks among the
/// best [`POOL_SIZE`]; a key already there is updated. Copies the key (and hashes it) only
/// when it gets in.
fn offer(score: u64, db: usize, key: &[u8], hash: impl FnOnce(&[u8]) -> u64) {
    POOL.with(|p| {
        let mut pool = p.borrow_mut();
        if let Some(i) = pool.iter().position(|x| x.db == db && &*x.key == key) {
            pool.remove(i);
        }
        if pool.len() >= POOL_SIZE {
            if pool[0].score >= score {
                return;
            }
            pool.remove(0);
        }
        let at = pool.partition_point(|x| x.score < score);
        let c = Candidate {
            score,
            db,
            hash: hash(key),
            key: key.into(),
        };
        pool.insert(at, c);
    });
}

/// Evicts `key` of `db` if it is still there (and, under a volatile policy, still has a
/// TTL): the write path of an expired key, with the `evicted` event.
fn delete(
    server: &Server,
    locks: &mut LockSet<'_>,
    db: usize,
    hash: u64,
    key: &[u8],
    policy: Policy,
    now: u64,
) -> bool {
    let id = shard_id(db, shard_of(hash));
    let done = locks.with(id, |sh| {
        match sh.peek(hash, key) {
            Some(e) if !policy.volatile() || e.has_expire() => {}
            _ => return false,
        }
        let entry = sh.remove(hash, key);
        sh.touch_watched(key);
        // The DEL reaches replicas and the AOF while the shard is held, before any later
        // write of the key.
        server.propagate_deletions(db, &[key.into()]);
        if sh.has_ready() {
            crate::command::blocking::answer_deleted(server, sh, now);
        }
        drop(entry);
        true
    });
    if done == Some(true) {
        server.key_evicted(db, key);
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_keeps_the_best_candidates_best_last() {
        POOL.with(|p| p.borrow_mut().clear());
        for s in 0..40u64 {
            offer((s * 7) % 40, 0, s.to_string().as_bytes(), |_| s);
        }
        let scores: Vec<u64> = POOL.with(|p| p.borrow().iter().map(|c| c.score).collect());
        assert_eq!(scores, (24..40).collect::<Vec<_>>());
        // The same key offered again replaces itself.
        offer(100, 0, b"0", |_| 0);
        let n = POOL.with(|p| p.borrow().iter().filter(|c| &*c.key == b"0").count());
        assert_eq!(n, 1);
        POOL.with(|p| p.borrow_mut().clear());
    }

    #[test]
    fn tenacity_sets_the_time_limit_as_redis() {
        let m = Memory::default();
        assert_eq!(m.time_limit(), Some(Duration::from_micros(500)));
        m.tenacity.store(100, Relaxed);
        assert_eq!(m.time_limit(), None);
        m.tenacity.store(0, Relaxed);
        assert_eq!(m.time_limit(), Some(Duration::ZERO));
    }

    #[test]
    fn policies_parse() {
        assert_eq!(Policy::parse("volatile-ttl"), Policy::VolatileTtl);
        assert!(Policy::parse("allkeys-lfu").is_lfu());
        assert_eq!(
            Policy::from_u8(Policy::VolatileLfu as u8),
            Policy::VolatileLfu
        );
    }
}
