//! The only place that reads the system clock, so time can be reasoned about (and cached)
//! in one spot.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::storage::entry::LRU_MASK;

/// Unix time in milliseconds.
#[inline]
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix time in microseconds.
#[inline]
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A monotonic instant (durations, command timing).
#[inline]
pub fn instant() -> Instant {
    Instant::now()
}

/// Redis's LRU clock: seconds, 24 bits, wrapping.
#[inline]
pub fn lru_clock(now_ms: u64) -> u32 {
    ((now_ms / 1000) as u32) & LRU_MASK
}

/// Seconds elapsed between an object's LRU clock and `now` (OBJECT IDLETIME).
pub fn idle_seconds(lru: u32, now_ms: u64) -> u64 {
    let now = lru_clock(now_ms);
    let idle = if now >= lru {
        now - lru
    } else {
        (LRU_MASK - lru) + now
    };
    u64::from(idle)
}
