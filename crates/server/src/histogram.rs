//! Per-command latency histograms (INFO latencystats, LATENCY HISTOGRAM), bucketed as
//! Redis's HdrHistogram is (`hdr_init(1, 1000000000, 2)`: values in nanoseconds from 1 ns
//! to 1 s, two significant digits), so that percentiles and cumulative buckets come out
//! as Redis's do.
//!
//! The layout is HdrHistogram's log-linear one: 256 sub-buckets per power of two, the
//! upper half of each bucket above the first. A value's slot is a few shifts away, and
//! recording is one add to a counter owned by the recording thread (see
//! `server::Stats`): no lock and no shared cache line. Readers sum the threads' counters
//! into a [`Snapshot`]. Knows nothing of the server.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Highest value recorded (larger ones are clamped here, as Redis clamps them).
pub const HIGHEST: u64 = 1_000_000_000;
/// Sub-buckets per bucket (2 significant digits: 2 * 10^2 rounded up to a power of two).
const SUB_BUCKETS: u64 = 256;
const HALF_MAGNITUDE: u32 = 7;
const HALF: u64 = 1 << HALF_MAGNITUDE;
/// Buckets needed to reach [`HIGHEST`]: 256 << 22 > 10^9.
const BUCKETS: usize = 23;
/// Number of counters.
pub const LEN: usize = (BUCKETS + 1) * HALF as usize;

fn bucket_of(v: u64) -> u32 {
    (64 - (v | (SUB_BUCKETS - 1)).leading_zeros()) - (HALF_MAGNITUDE + 1)
}

/// The counter index of a value (in range).
fn index_of(v: u64) -> usize {
    let b = bucket_of(v);
    let sub = v >> b;
    (((b as u64 + 1) << HALF_MAGNITUDE) + sub - HALF) as usize
}

/// The lowest value counted at `idx`.
fn value_at(idx: usize) -> u64 {
    let mut b = (idx as i64 >> HALF_MAGNITUDE) - 1;
    let mut sub = (idx as u64 & (HALF - 1)) + HALF;
    if b < 0 {
        sub -= HALF;
        b = 0;
    }
    sub << b
}

fn lowest_equivalent(v: u64) -> u64 {
    let b = bucket_of(v);
    (v >> b) << b
}

fn highest_equivalent(v: u64) -> u64 {
    let b = bucket_of(v);
    lowest_equivalent(v) + (1u64 << b) - 1
}

/// One thread's counters for one command.
pub struct Counters(Box<[AtomicU64]>);

impl Default for Counters {
    fn default() -> Self {
        Self((0..LEN).map(|_| AtomicU64::new(0)).collect())
    }
}

impl Counters {
    /// Records a command that ran `usec` microseconds (Redis records `duration * 1000`
    /// nanoseconds, clamped to 1 ns .. 1 s). Only the owning thread records.
    #[inline]
    pub fn record_usec(&self, usec: u64) {
        let ns = (usec.min(HIGHEST / 1000) * 1000).max(1);
        let c = &self.0[index_of(ns)];
        // One writer: a load and a store, no locked add.
        c.store(c.load(Relaxed) + 1, Relaxed);
    }

    pub fn reset(&self) {
        for c in self.0.iter() {
            c.store(0, Relaxed);
        }
    }

    /// Adds these counters into `s`.
    pub fn add_to(&self, s: &mut Snapshot) {
        for (i, c) in self.0.iter().enumerate() {
            let n = c.load(Relaxed);
            s.counts[i] += n;
            s.total += n;
        }
    }
}

/// Counters summed over threads, for reading.
pub struct Snapshot {
    counts: Vec<u64>,
    pub total: u64,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self {
            counts: vec![0; LEN],
            total: 0,
        }
    }
}

impl Snapshot {
    /// HdrHistogram's `hdr_value_at_percentile`, in nanoseconds.
    pub fn value_at_percentile(&self, p: f64) -> u64 {
        let p = p.min(100.0);
        let want = (((p / 100.0) * self.total as f64) + 0.5) as u64;
        let want = want.max(1);
        let mut seen = 0;
        let mut value = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= want {
                value = value_at(i);
                break;
            }
        }
        if p == 0.0 {
            lowest_equivalent(value)
        } else {
            highest_equivalent(value)
        }
    }

    /// How many values were at most `usec` µs, to HdrHistogram's precision (a value
    /// counts here when the lowest value of its counter is; exact up to 256 µs, within
    /// 1/256 above): the cumulative buckets of the Prometheus exporter.
    pub fn count_at_most_usec(&self, usec: u64) -> u64 {
        let ns = usec.saturating_mul(1000);
        self.counts
            .iter()
            .enumerate()
            .take_while(|&(i, _)| value_at(i) <= ns)
            .map(|(_, &n)| n)
            .sum()
    }

    /// LATENCY HISTOGRAM's buckets: (µs, cumulative count) at powers of two from 1024 ns,
    /// where the count grew, as HdrHistogram's logarithmic iterator (base 2) reports them.
    pub fn cumulative(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let (mut idx, mut cum, mut value, mut highest) = (-1i64, 0u64, 0u64, 0u64);
        let mut level: u64 = 1024;
        let mut level_low = lowest_equivalent(level);
        let mut previous = 0;
        loop {
            // HdrHistogram's `has_next`, or a reporting level still below the next value.
            let more =
                cum < self.total || (idx < LEN as i64 && value_at((idx + 1) as usize) > level_low);
            if !more {
                break;
            }
            loop {
                if value >= level_low {
                    highest = highest_equivalent(level);
                    level *= 2;
                    level_low = lowest_equivalent(level);
                    break;
                }
                idx += 1;
                if idx >= LEN as i64 {
                    break;
                }
                cum += self.counts[idx as usize];
                value = value_at(idx as usize);
                highest = highest_equivalent(value);
            }
            if cum > previous {
                out.push((highest / 1000, cum));
            }
            previous = cum;
            if idx >= LEN as i64 {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(usecs: &[u64]) -> Snapshot {
        let c = Counters::default();
        for &u in usecs {
            c.record_usec(u);
        }
        let mut s = Snapshot::default();
        c.add_to(&mut s);
        s
    }

    #[test]
    fn percentiles_match_redis() {
        // Redis reports a 1 µs command as p50=1.003, a 0 µs one as 0.001, 757 µs as 757.759.
        assert_eq!(snap(&[1]).value_at_percentile(50.0), 1003);
        assert_eq!(snap(&[0]).value_at_percentile(99.0), 1);
        assert_eq!(snap(&[757]).value_at_percentile(50.0), 757_759);
        assert_eq!(snap(&[6, 15]).value_at_percentile(50.0), 6015);
        assert_eq!(snap(&[6, 15]).value_at_percentile(99.0), 15_039);
        assert_eq!(snap(&[5_000_000]).value_at_percentile(50.0), 1_002_438_655);
    }

    #[test]
    fn counts_at_most_a_bound() {
        // 0 µs is recorded as 1 ns: at most 1 µs, not at most 0.
        let s = snap(&[0, 1, 2, 3, 100, 300, 2_000_000]);
        assert_eq!(s.count_at_most_usec(0), 0);
        assert_eq!(s.count_at_most_usec(1), 2);
        assert_eq!(s.count_at_most_usec(2), 3);
        assert_eq!(s.count_at_most_usec(99), 4);
        assert_eq!(s.count_at_most_usec(100), 5);
        assert_eq!(s.count_at_most_usec(299), 5);
        assert_eq!(s.count_at_most_usec(1_000_000), 7);
        assert_eq!(s.count_at_most_usec(u64::MAX), s.total);
    }

    #[test]
    fn cumulative_buckets_match_redis() {
        // From redis-server: CONFIG|SET calls 8 -> {8: 2, 16: 4, 33: 7, 66: 8}.
        let s = snap(&[5, 7, 9, 12, 20, 25, 30, 40]);
        assert_eq!(s.cumulative(), vec![(8, 2), (16, 4), (33, 7), (66, 8)]);
        assert_eq!(snap(&[1]).cumulative(), vec![(1, 1)]);
        assert_eq!(snap(&[0, 0]).cumulative(), vec![(1, 2)]);
        assert!(Snapshot::default().cumulative().is_empty());
        let big = snap(&[2_000_000]);
        assert_eq!(big.cumulative(), vec![(1_073_741, 1)]);
    }
}
