//! Key eviction under `maxmemory` (the gauge and settings are `crate::maxmemory`).
//!
//! Before a command runs, with `maxmemory` set and the gauge over it, the command's thread
//! evicts ([`perform`]) holding no shard: it samples `maxmemory-samples` keys from a random
//! shard of each database into a pool of the best candidates kept per thread (Redis's
//! eviction pool: the longest idle, least frequently used or nearest deadline), evicts the
//! best one, publishes what that freed, and goes on until the gauge is under the limit.
//! Every thread reads the same gauge, so threads evicting together stop together rather
//! than each freeing the whole excess. An evicted key takes the path an expired one does:
//! its DEL is fed to the AOF and replicas while its shard is held, its WATCHes are
//! invalidated, its `evicted` event raised.
//!
//! Past `maxmemory-eviction-tenacity`'s time limit a command goes on (not refused) and the
//! cron carries on evicting; with nothing left to evict (noeviction, or a volatile policy
//! without volatile keys), write commands get `-OOM`.

use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering::Relaxed;

use crate::maxmemory::{Memory, Outcome, Policy};
use crate::server::Server;
use crate::storage::access;
use crate::storage::keyspace::shard_of;
use crate::storage::{shard_id, LockSet, SHARDS};

/// How long a database found without candidates is not sampled again.
const EMPTY_FOR_MS: u64 = 100;
/// Candidates kept between evictions (Redis's `EVPOOL_SIZE`).
const POOL_SIZE: usize = 16;

thread_local! {
    static POOL: RefCell<Vec<Candidate>> = const { RefCell::new(Vec::new()) };
    /// Where random eviction looks next (Redis walks the databases round robin).
    static NEXT_DB: Cell<usize> = const { Cell::new(0) };
    /// Per database, until when (unix ms) it is taken as empty (or without volatile keys).
    static EMPTY: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
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
    let outcome = evict_to_limit(server, locks);
    server.memory.record(outcome, crate::clock::now_ms());
    outcome
}

fn evict_to_limit(server: &Server, locks: &mut LockSet<'_>) -> Outcome {
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
    let _cycle = server.latency.timer("eviction-cycle");
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
        let samples = server.memory.samples();
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
        // Most samples rank below a full pool: turned away before any key is compared.
        if pool.len() >= POOL_SIZE && pool[0].score >= score {
            return;
        }
        if let Some(i) = pool.iter().position(|x| x.db == db && &*x.key == key) {
            pool.remove(i);
        }
        if pool.len() >= POOL_SIZE {
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
    let _t = server.latency.timer("eviction-del");
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
}
