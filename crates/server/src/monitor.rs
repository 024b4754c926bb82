//! The MONITOR feed: every command a client runs, as one line, to every client in
//! MONITOR mode, from whichever worker thread ran it.
//!
//! A monitor receives its lines the way a subscriber receives published messages: through
//! its `pubsub::Subscriber` queue, which its connection drains into its socket and which
//! closes it past its output limit (a monitor is a `normal` class client, as in Redis).
//! While nobody monitors, a command pays one atomic load ([`Monitors::active`]). Knows
//! nothing of the server.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::pubsub::{Limits, Subscriber};

/// Where a monitored command came from, as the line's bracket shows it.
pub enum Origin<'a> {
    /// A client's own command: its `ip:port`.
    Client(&'a str),
    /// A command from a client on the Unix socket: `unix:<socket path>`.
    Unix(&'a str),
    /// A command a script ran (`lua`).
    Script,
}

/// The clients in MONITOR mode.
#[derive(Default)]
pub struct Monitors {
    count: AtomicUsize,
    list: RwLock<Vec<Arc<Subscriber>>>,
}

impl Monitors {
    /// Whether anyone monitors: one load on every command.
    #[inline]
    pub fn active(&self) -> bool {
        self.count.load(Relaxed) != 0
    }

    /// Number of monitors (INFO's `connected_slaves` leaves them out; CLIENT LIST flags them).
    pub fn len(&self) -> usize {
        self.count.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a monitor; false if this client monitors already.
    pub fn add(&self, s: Arc<Subscriber>) -> bool {
        let mut l = self.list.write();
        if l.iter().any(|m| m.client_id == s.client_id) {
            return false;
        }
        l.push(s);
        self.count.store(l.len(), Relaxed);
        true
    }

    /// Removes client `id`'s monitor (RESET, disconnect); false if it was not one.
    pub fn remove(&self, id: u64) -> bool {
        let mut l = self.list.write();
        let before = l.len();
        l.retain(|m| m.client_id != id);
        self.count.store(l.len(), Relaxed);
        l.len() != before
    }

    /// Sends one command's line to every monitor; one over its output limit is closed.
    pub fn feed(
        &self,
        db: usize,
        origin: Origin,
        argv: &[&[u8]],
        redact: &[usize],
        limits: &Limits,
    ) {
        let line: crate::pubsub::Frame =
            line(crate::clock::now_us(), db, origin, argv, redact).into();
        for m in self.list.read().iter() {
            m.push_frame(line.clone(), limits);
        }
    }
}

/// One MONITOR line, as Redis writes it: `+<secs>.<usecs> [<db> <origin>] "arg" ...\r\n`,
/// each argument quoted as `sdscatrepr` quotes it.
pub fn line(now_us: u64, db: usize, origin: Origin, argv: &[&[u8]], redact: &[usize]) -> Vec<u8> {
    let mut s = format!("+{}.{:06} [{db} ", now_us / 1_000_000, now_us % 1_000_000);
    match origin {
        Origin::Client(addr) => s.push_str(addr),
        Origin::Unix(path) => {
            s.push_str("unix:");
            s.push_str(path);
        }
        Origin::Script => s.push_str("lua"),
    }
    s.push(']');
    for (j, a) in argv.iter().enumerate() {
        s.push(' ');
        let a = if redact.contains(&j) {
            crate::slowlog::REDACTED
        } else {
            a
        };
        s.push_str(&kiln_formats::aof::manifest::sdscatrepr(a));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_quotes_its_arguments_as_redis_does() {
        let l = line(
            1_796_654_710_099_821,
            1,
            Origin::Client("127.0.0.1:6000"),
            &[b"SET", b"a", b"b\x01\"\n"],
            &[],
        );
        assert_eq!(
            l,
            b"+1796654710.099821 [1 127.0.0.1:6000] \"SET\" \"a\" \"b\\x01\\\"\\n\"\r\n"
        );
        let l = line(5_000_001, 0, Origin::Script, &[b"auth", b"pw"], &[1]);
        assert_eq!(l, b"+5.000001 [0 lua] \"auth\" \"(redacted)\"\r\n");
    }
}
