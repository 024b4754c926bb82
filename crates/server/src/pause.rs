//! CLIENT PAUSE: the server-wide pause of client commands, all of them or only those that
//! may write. As in Redis 7.0, a CLIENT PAUSE while one is in force keeps the more
//! restrictive kind and the later deadline of the two; CLIENT UNPAUSE or the deadline ends
//! it. FAILOVER holds writes back too, for a purpose of its own ([`Pause::hold_for_failover`])
//! that CLIENT UNPAUSE does not end, as in Redis (the pause in force is the stricter of
//! the two). Connections check it before each command
//! (`command::client::paused_for`) and wait on [`Pause::changed`] with their request
//! left in the buffer; while writes are paused, keys that expire are hidden, not deleted,
//! and nothing is evicted (see `Server::refresh_expiry_mode`). Depends on nothing else of
//! the server.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};

/// What a pause holds back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Commands that may write or replicate (and EXEC of a transaction queuing any).
    Write = 1,
    /// Every client command.
    All = 2,
}

/// The pause in force, if any.
#[derive(Default)]
pub struct Pause {
    /// 0: none; otherwise a [`Kind`].
    kind: AtomicU8,
    /// Unix ms at which the pause ends.
    until_ms: AtomicU64,
    /// FAILOVER's pause of writes, with no deadline (its own purpose in Redis).
    failover: AtomicBool,
    /// Connections waiting out the pause now (INFO `blocked_clients` counts them).
    pub waiting: AtomicU64,
    /// Woken on every change: paused connections look again.
    pub changed: tokio::sync::Notify,
}

impl Pause {
    /// Pauses until `until_ms`; a pause in force at `now_ms` keeps the more restrictive
    /// kind and the later deadline. (CLIENT PAUSE runs on one connection at a time per
    /// pause in practice; two racing ones may each keep their own kind or deadline.)
    pub fn pause(&self, kind: Kind, now_ms: u64, until_ms: u64) {
        let (mut kind, mut until) = (kind as u8, until_ms);
        if let Some(cur) = self.active(|| now_ms) {
            kind = kind.max(cur as u8);
            until = until.max(self.until_ms.load(Relaxed));
        }
        self.until_ms.store(until, Relaxed);
        self.kind.store(kind, Relaxed);
        self.changed.notify_waiters();
    }

    /// Starts (`true`) or ends FAILOVER's pause of writes.
    pub fn hold_for_failover(&self, on: bool) {
        self.failover.store(on, Relaxed);
        self.changed.notify_waiters();
    }

    /// Ends the pause CLIENT PAUSE set (FAILOVER's stays).
    pub fn unpause(&self) {
        self.kind.store(0, Relaxed);
        self.changed.notify_waiters();
    }

    /// The pause in force at `now_ms`: one relaxed load when there is none.
    #[inline]
    pub fn active(&self, now_ms: impl FnOnce() -> u64) -> Option<Kind> {
        let k = self.kind.load(Relaxed);
        if k == 0 || now_ms() >= self.until_ms.load(Relaxed) {
            return self.failover.load(Relaxed).then_some(Kind::Write);
        }
        Some(if k == Kind::All as u8 {
            Kind::All
        } else {
            Kind::Write
        })
    }

    /// When the pause in force ends (unix ms; `u64::MAX` while FAILOVER holds writes).
    pub fn until_ms(&self) -> u64 {
        if self.failover.load(Relaxed) {
            return u64::MAX;
        }
        self.until_ms.load(Relaxed)
    }

    /// Whether writes are held back at `now_ms` (both kinds hold them).
    pub fn writes_paused(&self, now_ms: u64) -> bool {
        self.active(|| now_ms).is_some()
    }

    /// Whether a pause was set and its deadline passed (the cron then ends it, so that
    /// expiry and eviction resume).
    pub fn lapsed(&self, now_ms: u64) -> bool {
        self.kind.load(Relaxed) != 0 && now_ms >= self.until_ms.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_in_force_keeps_the_stricter_kind_and_later_deadline() {
        let p = Pause::default();
        assert_eq!(p.active(|| 0), None);
        p.pause(Kind::Write, 0, 100);
        assert_eq!(p.active(|| 50), Some(Kind::Write));
        p.pause(Kind::All, 50, 60);
        assert_eq!(p.active(|| 70), Some(Kind::All));
        assert_eq!(p.active(|| 100), None);
        assert!(p.lapsed(100) && !p.lapsed(99));
        // A lapsed pause is replaced whole.
        p.pause(Kind::Write, 100, 150);
        assert_eq!(p.active(|| 120), Some(Kind::Write));
        p.unpause();
        assert_eq!(p.active(|| 0), None);
        assert!(!p.lapsed(1000));
    }

    #[test]
    fn failovers_pause_outlives_client_unpause_and_deadlines() {
        let p = Pause::default();
        p.hold_for_failover(true);
        assert_eq!(p.active(|| 0), Some(Kind::Write));
        p.pause(Kind::All, 0, 100);
        assert_eq!(p.active(|| 50), Some(Kind::All));
        assert_eq!(p.active(|| 150), Some(Kind::Write));
        p.unpause();
        assert_eq!(p.active(|| 0), Some(Kind::Write));
        assert!(p.writes_paused(u64::MAX - 1));
        p.hold_for_failover(false);
        assert_eq!(p.active(|| 0), None);
    }
}
