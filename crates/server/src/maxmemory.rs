//! `maxmemory`: the memory gauge commands read and the eviction settings (the eviction
//! itself is `command::evict`).
//!
//! jemalloc's precise figure (`stats.allocated`) needs its statistics refreshed, which is
//! too slow to do before every command. So the gauge is that figure as of the cron's last
//! tick ([`Memory::refresh`]) plus what worker threads allocated net since: each thread
//! reads its own allocation counters (jemalloc keeps them per thread, a load each) after a
//! command and adds the change to one shared counter once it amounts to [`PUBLISH_BYTES`],
//! so the shared counter is written rarely and read cheaply. Threads that never publish
//! (the snapshot writer, the AOF) are caught up at the next tick.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use crate::storage::access;

/// Net bytes a thread allocates before it adds them to the shared counter.
const PUBLISH_BYTES: i64 = 64 * 1024;

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

    pub(crate) fn volatile(self) -> bool {
        matches!(
            self,
            Self::VolatileLru | Self::VolatileLfu | Self::VolatileRandom | Self::VolatileTtl
        )
    }

    pub(crate) fn random(self) -> bool {
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
    /// Since when (unix ms) eviction has not got memory under the limit; 0 while it has.
    exceeded_since: AtomicU64,
    /// Milliseconds spent over the limit in earlier stretches.
    exceeded_total: AtomicU64,
}

thread_local! {
    /// This thread's jemalloc counters (allocated, deallocated), looked up once.
    static COUNTERS: Cell<Option<(tikv_jemalloc_ctl::thread::ThreadLocal<u64>,
                                  tikv_jemalloc_ctl::thread::ThreadLocal<u64>)>> =
        const { Cell::new(None) };
    /// This thread's net allocation when it last published.
    static PUBLISHED: Cell<i64> = const { Cell::new(0) };
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
            exceeded_since: AtomicU64::new(0),
            exceeded_total: AtomicU64::new(0),
        }
    }
}

impl Memory {
    /// Copies the settings from the configuration.
    pub fn configure(&self, c: &crate::config::Config) {
        let max = c.get_u64("maxmemory");
        let old = self.maxmemory.swap(max, Relaxed);
        if max != old && max != 0 && self.used() > max {
            tracing::warn!(
                "WARNING: the new maxmemory value set via CONFIG SET ({max}) is smaller than \
                 the current memory usage ({}). This will result in key eviction and/or the \
                 inability to accept new write commands depending on the maxmemory-policy.",
                self.used()
            );
        }
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

    /// `maxmemory-samples`.
    pub fn samples(&self) -> usize {
        self.samples.load(Relaxed) as usize
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

    /// Records how an eviction attempt ended, for INFO's `*_eviction_exceeded_time`: a
    /// stretch over the limit starts at the first attempt that does not end under it and
    /// ends at the first that does.
    pub(crate) fn record(&self, outcome: Outcome, now: u64) {
        if outcome == Outcome::Ok {
            let since = self.exceeded_since.swap(0, Relaxed);
            if since != 0 {
                self.exceeded_total
                    .fetch_add(now.saturating_sub(since), Relaxed);
            }
        } else {
            let _ = self
                .exceeded_since
                .compare_exchange(0, now.max(1), Relaxed, Relaxed);
        }
    }

    /// Milliseconds memory has been over the limit in all (INFO's
    /// `total_eviction_exceeded_time`) and in the current stretch.
    pub fn exceeded_ms(&self, now: u64) -> (u64, u64) {
        let since = self.exceeded_since.load(Relaxed);
        let current = if since == 0 {
            0
        } else {
            now.saturating_sub(since)
        };
        (self.exceeded_total.load(Relaxed) + current, current)
    }

    /// The cron's look at the limit: a stretch over it ends once memory is back under,
    /// whatever brought it there (a DEL, a FLUSHALL, a raised limit).
    pub fn settle(&self, now: u64) {
        if self.exceeded_since.load(Relaxed) != 0 && !self.over() {
            self.record(Outcome::Ok, now);
        }
    }

    /// How long one eviction run may take (Redis's `evictionTimeLimitUs`).
    pub(crate) fn time_limit(&self) -> Option<Duration> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
