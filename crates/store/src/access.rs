//! A key's access data, in the 24 bits every entry keeps for it (Redis's `lru` field).
//!
//! Under an LRU policy (or none) the field is the LRU clock of the last access: seconds,
//! 24 bits, wrapping. Under an LFU policy it is Redis's LFU pair: the minute of the counter's
//! last decrement in the top 16 bits, and an 8-bit logarithmic access counter below, which
//! grows with probability `1 / ((counter - 5) * lfu-log-factor + 1)` on each access and
//! loses one every `lfu-decay-time` minutes the key is not touched.
//!
//! Commands hand lookups and constructors an access *stamp* ([`stamp`]): an LRU clock, or,
//! with [`LFU`] set, the current minute and the counter a new key starts with. A new entry
//! stores the stamp's low 24 bits; an access ([`accessed`]) replaces the field (LRU) or
//! updates the counter (LFU). Switching policies at run time leaves old fields to be read
//! the other way for a while, as in Redis.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// The field's 24 bits.
pub const MASK: u32 = 0x00FF_FFFF;
/// Marks a stamp as LFU (never stored: entries keep 24 bits).
pub const LFU: u32 = 1 << 31;
/// The counter of a new key (Redis's `LFU_INIT_VAL`): new keys get a chance to build up
/// accesses before they are the first evicted.
pub const LFU_INIT: u8 = 5;

/// `lfu-log-factor` and `lfu-decay-time`, process-wide as the policy they belong to.
static LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
static DECAY_MINUTES: AtomicU32 = AtomicU32::new(1);

/// Sets `lfu-log-factor` and `lfu-decay-time` (minutes; 0: counters never decay).
pub fn set_lfu_params(log_factor: u32, decay_minutes: u32) {
    LOG_FACTOR.store(log_factor, Relaxed);
    DECAY_MINUTES.store(decay_minutes, Relaxed);
}

/// Redis's LRU clock: seconds, 24 bits, wrapping.
#[inline]
pub fn lru_clock(now_ms: u64) -> u32 {
    ((now_ms / 1000) as u32) & MASK
}

/// The LFU minute clock: minutes, 16 bits, wrapping.
#[inline]
pub fn lfu_minutes(now_ms: u64) -> u32 {
    ((now_ms / 60_000) as u32) & 0xFFFF
}

/// The stamp commands pass down at `now_ms` under an LFU policy or not.
#[inline]
pub fn stamp(now_ms: u64, lfu: bool) -> u32 {
    if lfu {
        LFU | (lfu_minutes(now_ms) << 8) | u32::from(LFU_INIT)
    } else {
        lru_clock(now_ms)
    }
}

/// The field after an access with `stamp`.
#[inline]
pub fn accessed(field: u32, stamp: u32) -> u32 {
    if stamp & LFU == 0 {
        return stamp & MASK;
    }
    let now = (stamp >> 8) & 0xFFFF;
    let counter = log_incr(decayed(field, now));
    (now << 8) | u32::from(counter)
}

/// An LFU field's counter after decay to minute `now` (what OBJECT FREQ reports and the
/// LFU policies rank by).
pub fn decayed(field: u32, now_minutes: u32) -> u8 {
    let last = (field >> 8) & 0xFFFF;
    let counter = (field & 0xFF) as u8;
    let decay = DECAY_MINUTES.load(Relaxed);
    if decay == 0 {
        return counter;
    }
    let elapsed = if now_minutes >= last {
        now_minutes - last
    } else {
        0xFFFF - last + now_minutes
    };
    let periods = elapsed / decay;
    counter.saturating_sub(u8::try_from(periods).unwrap_or(u8::MAX))
}

/// An LFU field with counter `freq` as of minute `now` (RESTORE FREQ, the RDB's FREQ).
pub fn with_freq(now_minutes: u32, freq: u8) -> u32 {
    (now_minutes << 8) | u32::from(freq)
}

/// Seconds between an LRU field and `now_ms` (OBJECT IDLETIME, the LRU policies' rank).
pub fn idle_seconds(field: u32, now_ms: u64) -> u64 {
    let now = lru_clock(now_ms);
    let idle = if now >= field {
        now - field
    } else {
        (MASK - field) + now
    };
    u64::from(idle)
}

/// The LRU field of a key last used `secs` seconds before `clock` (the RDB's IDLE, RESTORE
/// IDLETIME). An idle time longer than the clock's current value wraps once, as Redis's
/// `objectSetLRUOrLFU` unwraps it (a longer one keeps the low 24 bits, as Redis's field
/// does).
pub fn lru_before(clock: u32, secs: u64) -> u32 {
    let clock = i64::from(clock & MASK);
    let abs = clock.saturating_sub(i64::try_from(secs).unwrap_or(i64::MAX));
    let abs = if abs < 0 { abs + i64::from(MASK) } else { abs };
    // Redis stores it in a 24-bit field: the low bits of the two's complement.
    (abs & i64::from(MASK)) as u32
}

/// The field of a key loaded or restored at `stamp` with the access data it came with:
/// under LFU the frequency counts, under LRU the idle time; the other is ignored, and a
/// key without the one that counts starts as a new key would (Redis's
/// `objectSetLRUOrLFU`).
pub fn restored(stamp: u32, idle_secs: Option<u64>, freq: Option<u8>) -> u32 {
    if stamp & LFU != 0 {
        match freq {
            Some(f) => with_freq((stamp >> 8) & 0xFFFF, f),
            None => stamp & MASK,
        }
    } else {
        match idle_secs {
            Some(s) => lru_before(stamp & MASK, s),
            None => stamp & MASK,
        }
    }
}

/// Redis's logarithmic increment: certain below the initial value, then ever less likely.
fn log_incr(counter: u8) -> u8 {
    if counter == u8::MAX {
        return counter;
    }
    let base = f64::from(counter.saturating_sub(LFU_INIT));
    let p = 1.0 / (base * f64::from(LOG_FACTOR.load(Relaxed)) + 1.0);
    if unit_random() < p {
        counter + 1
    } else {
        counter
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(rand::random::<u64>() | 1);
}

/// A uniform draw in [0, 1) from a per-thread xorshift (an access must not take a lock).
fn unit_random() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A per-thread random number (eviction's sampling).
pub fn random_u64() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.set(x);
        x
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_lfu_key_starts_at_five_and_its_first_accesses_count() {
        let now = 123 * 60_000;
        let s = stamp(now, true);
        let field = s & MASK;
        assert_eq!(decayed(field, lfu_minutes(now)), LFU_INIT);
        let f = accessed(field, s);
        assert_eq!(decayed(f, lfu_minutes(now)), LFU_INIT + 1);
    }

    #[test]
    fn the_counter_grows_logarithmically_and_saturates() {
        let s = stamp(0, true);
        let mut f = s & MASK;
        for _ in 0..1000 {
            f = accessed(f, s);
        }
        let after_1k = decayed(f, 0);
        // Redis's table for lfu-log-factor 10: about 18 after 1,000 hits.
        assert!((10..=30).contains(&after_1k), "{after_1k}");
        assert_eq!(log_incr(255), 255);
    }

    #[test]
    fn counters_decay_one_per_period_and_wrap_with_the_minute_clock() {
        let f = with_freq(100, 20);
        assert_eq!(decayed(f, 100), 20);
        assert_eq!(decayed(f, 107), 13);
        assert_eq!(decayed(f, 500), 0);
        let f = with_freq(0xFFFE, 20);
        assert_eq!(decayed(f, 2), 17);
    }

    #[test]
    fn lru_fields_and_restores() {
        assert_eq!(idle_seconds(lru_clock(10_000), 15_000), 5);
        assert_eq!(lru_before(3, 5), MASK - 2);
        assert_eq!(lru_before(30, 5), 25);
        let lru = stamp(50_000, false);
        assert_eq!(restored(lru, Some(10), Some(7)), 40);
        assert_eq!(restored(lru, None, Some(7)), 50);
        let lfu = stamp(60_000 * 9, true);
        assert_eq!(restored(lfu, Some(10), Some(7)), with_freq(9, 7));
        assert_eq!(restored(lfu, Some(10), None), (9 << 8) | 5);
    }
}
