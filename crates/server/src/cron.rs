//! Background jobs that run `hz` times a second: active expiry, the samples behind INFO's
//! instantaneous metrics (and the memory gauge's refresh), and eviction left unfinished.
//!
//! Active expiry reclaims keys whose deadline passed but that nobody reads (lazy expiry in
//! `Shard::get` only catches the ones that are accessed). Like Redis's slow cycle it gets at
//! most 25% of each `1/hz` period. Each tick visits the shards round robin, sweeping a few
//! keys with a TTL per shard from where the previous visit stopped, and keeps sweeping a
//! shard while a sizeable share of what it examines turns out to be expired: a shard full of
//! dead keys is emptied quickly, one with none costs a handful of comparisons per tick.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::server::Server;
use crate::storage::{LockSet, SHARDS};

/// Keys with a TTL examined per sweep step on one shard (one lock hold).
const KEYS_PER_STEP: usize = 64;

/// Keep sweeping a shard while more than this percentage of the examined keys had expired
/// (Redis's `ACTIVE_EXPIRE_CYCLE_ACCEPTABLE_STALE`).
const ACCEPTABLE_STALE_PERCENT: usize = 10;

/// Share of each cron period that active expiry may use (Redis: 25%).
const EXPIRE_TIME_PERCENT: u32 = 25;

pub fn run(server: Arc<Server>) {
    let mut expiry = ActiveExpire::new(&server);
    loop {
        let hz = u64::from(server.hot.hz.load(Relaxed).max(1));
        let period = Duration::from_millis(1000 / hz);
        std::thread::sleep(period);
        if server.process.shutting_down.load(Relaxed) {
            return;
        }
        // DEBUG SET-ACTIVE-EXPIRE 0 turns the cycle off (lazy expiry still applies).
        if server.cron_paused.load(Relaxed) {
            continue;
        }
        let now = crate::clock::now_ms();
        if server.pause.lapsed(now) {
            // The pause's deadline passed: expiry and eviction resume.
            server.pause.unpause();
            server.refresh_expiry_mode();
        }
        let paused = server.pause.writes_paused(now);
        if server.active_expire.load(Relaxed) && !paused {
            let _t = server.latency.timer("expire-cycle");
            expiry.cycle(&server, period * EXPIRE_TIME_PERCENT / 100);
        }
        sample_metrics(&server);
        // Eviction that ran out of time before a command goes on here (the gauge was just
        // refreshed by the sample).
        if server.memory.over() && !paused {
            crate::command::evict::perform(&server, &mut LockSet::new(&server.keyspace));
        }
        server.memory.settle(crate::clock::now_ms());
        // MIGRATE's connections unused for 10 s close.
        server.migrate.close_idle(now);
        crate::persist::cron(&server);
    }
}

/// The state of active expiry between ticks: which shard comes next, and where the sweep
/// of each shard's expires table stopped.
pub struct ActiveExpire {
    /// Next (db, shard) pair to visit, as `db * SHARDS + shard`.
    next_shard: usize,
    /// Sweep position in each shard's expires table.
    pos: Vec<usize>,
}

/// What one cycle did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CycleStats {
    pub examined: usize,
    pub deleted: usize,
    /// Whether it stopped because the time budget ran out.
    pub timed_out: bool,
}

impl ActiveExpire {
    pub fn new(server: &Server) -> Self {
        Self {
            next_shard: 0,
            pos: vec![0; server.keyspace.dbs.len() * SHARDS],
        }
    }

    /// Runs one cycle: visits every shard at most once, starting where the previous cycle
    /// stopped, until `budget` is spent.
    pub fn cycle(&mut self, server: &Server, budget: Duration) -> CycleStats {
        let start = crate::clock::instant();
        let total = self.pos.len();
        let mut stats = CycleStats::default();
        let mut locks = LockSet::new(&server.keyspace);
        for _ in 0..total {
            let id = self.next_shard;
            self.next_shard = (id + 1) % total;
            let db = id / SHARDS;
            loop {
                // The lock is taken per step, so clients waiting on this shard get in between.
                let pos = self.pos[id];
                let step = locks.with(id as u32, |shard| {
                    if shard.expires_len() == 0 {
                        return None;
                    }
                    let now = crate::clock::now_ms();
                    let (next, examined, deleted) = shard.expire_sweep(now, pos, KEYS_PER_STEP);
                    let keys = std::mem::take(&mut shard.expired);
                    shard.expired_fed = 0;
                    // Replicas and the AOF learn of the deletions while the shard is still
                    // held, so no later write to these keys can be fed before them.
                    server.propagate_deletions(db, &keys);
                    if shard.has_ready() {
                        // An expired stream owes its XREADGROUP waiters their answer.
                        crate::command::blocking::answer_deleted(server, shard, now);
                    }
                    Some((next, examined, deleted, keys))
                });
                let Some(Some((next, examined, deleted, keys))) = step else {
                    break;
                };
                self.pos[id] = next;
                server.keys_expired(db, keys);
                stats.examined += examined;
                stats.deleted += deleted;
                if start.elapsed() >= budget {
                    stats.timed_out = true;
                    return stats;
                }
                // A short step means the sweep wrapped around the table: the next visit
                // goes on from its start.
                if examined < KEYS_PER_STEP || deleted * 100 <= examined * ACCEPTABLE_STALE_PERCENT
                {
                    break;
                }
            }
        }
        stats
    }
}

fn sample_metrics(server: &Server) {
    // Reading used memory records the peak (INFO used_memory_peak), as Redis's cron does.
    server.used_memory();
    let now = crate::clock::now_ms();
    let ops = server.metrics.stats.sum(|s| &s.commands);
    let inp = server.metrics.stats.sum(|s| &s.net_input);
    let out = server.metrics.stats.sum(|s| &s.net_output);
    let mut m = server.metrics.inst.lock();
    let dt = now.saturating_sub(m.last_sample_ms);
    if m.last_sample_ms != 0 && dt > 0 {
        m.ops_per_sec = ops.saturating_sub(m.last_ops) * 1000 / dt;
        m.in_kbps = inp.saturating_sub(m.last_in) as f64 * 1000.0 / dt as f64 / 1024.0;
        m.out_kbps = out.saturating_sub(m.last_out) as f64 * 1000.0 / dt as f64 / 1024.0;
    }
    m.last_sample_ms = now;
    m.last_ops = ops;
    m.last_in = inp;
    m.last_out = out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::storage::Entry;

    fn server_with_keys(n: usize, deadline: impl Fn(usize) -> u64) -> Server {
        let server = Server::new(Config::default(), 1);
        for i in 0..n {
            let key = format!("key:{i}");
            let h = server.keyspace.hash(key.as_bytes());
            let id = crate::storage::shard_id(0, crate::storage::keyspace::shard_of(h));
            LockSet::new(&server.keyspace).with(id, |sh| {
                sh.insert(h, Entry::string(key.as_bytes(), b"v", 0));
                sh.set_expire(h, key.as_bytes(), deadline(i));
            });
        }
        server
    }

    fn keys(server: &Server) -> usize {
        let mut locks = LockSet::new(&server.keyspace);
        (0..SHARDS as u32)
            .map(|id| locks.with(id, |s| s.len()).unwrap_or(0))
            .sum()
    }

    #[test]
    fn a_cycle_reclaims_every_expired_key_when_time_allows() {
        let server = server_with_keys(20_000, |i| if i % 2 == 0 { 1 } else { u64::MAX / 2 });
        let mut ax = ActiveExpire::new(&server);
        let mut deleted = 0;
        // Half the keys are dead: each shard keeps being swept until the stale share drops.
        for _ in 0..1000 {
            deleted += ax.cycle(&server, Duration::from_secs(3600)).deleted;
            if deleted == 10_000 {
                break;
            }
        }
        assert_eq!(deleted, 10_000);
        assert_eq!(keys(&server), 10_000);
    }

    #[test]
    fn a_shard_is_swept_past_its_first_keys() {
        // About 400 keys with a TTL per shard, one in ten dead: each step finds too few dead
        // keys to keep going, so only a sweep that resumes where it stopped (rather than
        // re-reading the start of the table) ever reaches them all.
        let server = server_with_keys(100_000, |i| if i % 10 == 0 { 1 } else { u64::MAX / 2 });
        let mut ax = ActiveExpire::new(&server);
        for _ in 0..1000 {
            ax.cycle(&server, Duration::from_secs(3600));
            if keys(&server) == 90_000 {
                break;
            }
        }
        assert_eq!(keys(&server), 90_000);
    }

    #[test]
    fn a_cycle_stops_when_its_budget_is_spent() {
        let server = server_with_keys(10_000, |_| 1);
        let mut ax = ActiveExpire::new(&server);
        let s = ax.cycle(&server, Duration::ZERO);
        assert!(s.timed_out);
        assert!(s.examined <= KEYS_PER_STEP);
    }

    #[test]
    fn live_keys_are_left_alone() {
        let server = server_with_keys(5_000, |_| u64::MAX / 2);
        let mut ax = ActiveExpire::new(&server);
        for _ in 0..100 {
            assert_eq!(ax.cycle(&server, Duration::from_secs(3600)).deleted, 0);
        }
        assert_eq!(keys(&server), 5_000);
    }
}
