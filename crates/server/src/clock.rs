//! The only place that reads the system clock, so time can be reasoned about (and cached)
//! in one spot.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

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
    crate::storage::access::lru_clock(now_ms)
}

/// Seconds elapsed between an object's LRU clock and `now` (OBJECT IDLETIME).
pub fn idle_seconds(lru: u32, now_ms: u64) -> u64 {
    crate::storage::access::idle_seconds(lru, now_ms)
}
