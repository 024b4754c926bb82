//! The write feed: every change to the dataset, as the commands that reproduce it, in the
//! order the changes took effect. It is the one place writes leave the keyspace towards
//! persistence and replication: the append-only file and the replication stream (backlog
//! and replicas) both read from it.
//!
//! Ordering: a command appends its effects while it still holds the shard locks of the keys
//! it changed (see `command::execute`), under the feed's own lock. Two commands touching a
//! common shard are therefore appended in the order they ran; commands on disjoint shards
//! commute, so either order reproduces the same dataset. A consumer replaying the feed from
//! any consistent snapshot point (see `snapshot`) reaches the primary's state.
//!
//! Each output keeps its own `SELECT` state, as Redis keeps one for the AOF and one for
//! replicas. Nothing is encoded while neither output is on: `is_active` is one atomic load.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use parking_lot::{Condvar, Mutex};

/// Bytes per chunk of a log: appends fill the last chunk, trimming drops whole chunks.
const CHUNK: usize = 16 * 1024;

/// The outputs a command is fed to (`redis.set_repl` can narrow them for a script's
/// commands; the values are its `REPL_*` flags).
pub const TO_AOF: u8 = 1;
pub const TO_REPLICAS: u8 = 2;
pub const TO_ALL: u8 = TO_AOF | TO_REPLICAS;

/// Commands gathered to reach the feed together, as one MULTI ... EXEC when there are
/// several (a transaction's, a script's): each goes to every output unless it was pushed
/// for fewer.
#[derive(Default)]
pub struct Batch {
    cmds: Vec<(usize, Vec<Vec<u8>>)>,
    /// Commands meant for fewer outputs than all: (index in `cmds`, outputs).
    only: Vec<(usize, u8)>,
}

impl Batch {
    /// Adds a command for the outputs `to` (none: it is not added at all, and does not
    /// count towards the MULTI ... EXEC either, as in Redis).
    pub fn push(&mut self, db: usize, argv: Vec<Vec<u8>>, to: u8) {
        if to == 0 {
            return;
        }
        if to != TO_ALL {
            self.only.push((self.cmds.len(), to));
        }
        self.cmds.push((db, argv));
    }

    pub fn extend(&mut self, cmds: impl IntoIterator<Item = (usize, Vec<Vec<u8>>)>, to: u8) {
        for (db, argv) in cmds {
            self.push(db, argv, to);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    pub fn clear(&mut self) {
        self.cmds.clear();
        self.only.clear();
    }

    /// The outputs command `i` goes to.
    fn to(&self, i: usize) -> u8 {
        self.only
            .iter()
            .find(|(j, _)| *j == i)
            .map_or(TO_ALL, |(_, to)| *to)
    }
}

/// The feed (one per server).
pub struct Feed {
    /// Whether any output is on (the dispatcher skips encoding otherwise).
    active: AtomicBool,
    inner: Mutex<Inner>,
    /// Woken on every append while the replication stream is on (replica senders, WAIT).
    pub repl_wake: tokio::sync::Notify,
    /// Signalled on every append while the AOF is on (the AOF writer thread).
    pub aof_wake: Condvar,
}

#[derive(Default)]
struct Inner {
    /// The replication stream: offsets are `master_repl_offset`. Holds at least the
    /// backlog's worth of history (more while a replica still needs it).
    repl: Option<Log>,
    /// A replica proxies its primary's stream verbatim to its own replicas; its commands'
    /// effects then go to the AOF only.
    repl_proxy: bool,
    /// Bytes for the AOF not yet taken by its writer.
    aof: Option<Log>,
}

/// One output: a byte log with its own SELECT state.
struct Log {
    /// Database the log last selected (None: the next command selects).
    db: Option<usize>,
    chunks: VecDeque<Vec<u8>>,
    /// Offset of the first byte held.
    start: u64,
    /// Offset just past the last byte appended.
    end: u64,
    /// Encoding buffer reused by every command (no allocation per propagated write).
    scratch: Vec<u8>,
}

impl Log {
    fn new(offset: u64) -> Self {
        Self {
            db: None,
            chunks: VecDeque::new(),
            start: offset,
            end: offset,
            scratch: Vec::new(),
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        self.end += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = match self.chunks.back() {
                Some(c) if c.len() < CHUNK => CHUNK - c.len(),
                _ => {
                    self.chunks.push_back(Vec::with_capacity(CHUNK));
                    CHUNK
                }
            };
            let n = room.min(bytes.len());
            self.chunks
                .back_mut()
                .unwrap()
                .extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
    }

    fn command(&mut self, db: usize, argv: &[&[u8]]) {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        if self.db != Some(db) {
            let mut n = itoa::Buffer::new();
            encode(&mut buf, &[b"SELECT", n.format(db).as_bytes()]);
            self.db = Some(db);
        }
        encode(&mut buf, argv);
        self.push(&buf);
        // Keep a modest buffer; a huge command's buffer goes back to the allocator.
        if buf.capacity() <= 64 * 1024 {
            self.scratch = buf;
        }
    }

    /// Drops whole chunks that lie entirely before `offset`.
    fn trim_before(&mut self, offset: u64) {
        while let Some(c) = self.chunks.front() {
            if self.start + c.len() as u64 > offset {
                break;
            }
            self.start += c.len() as u64;
            self.chunks.pop_front();
        }
    }

    fn read(&self, from: u64, max: usize, out: &mut Vec<u8>) -> Result<usize, Gone> {
        if from < self.start || from > self.end {
            return Err(Gone);
        }
        let mut skip = (from - self.start) as usize;
        let mut copied = 0;
        for c in &self.chunks {
            if skip >= c.len() {
                skip -= c.len();
                continue;
            }
            let n = (c.len() - skip).min(max - copied);
            out.extend_from_slice(&c[skip..skip + n]);
            copied += n;
            skip = 0;
            if copied == max {
                break;
            }
        }
        Ok(copied)
    }
}

/// The offset asked for is no longer (or not yet) in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// Appends `argv` as a RESP array of bulk strings.
pub fn encode(buf: &mut Vec<u8>, argv: &[&[u8]]) {
    let mut n = itoa::Buffer::new();
    buf.push(b'*');
    buf.extend_from_slice(n.format(argv.len()).as_bytes());
    buf.extend_from_slice(b"\r\n");
    for a in argv {
        buf.push(b'$');
        buf.extend_from_slice(n.format(a.len()).as_bytes());
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    }
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

impl Feed {
    pub fn new() -> Self {
        Self {
            active: AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
            repl_wake: tokio::sync::Notify::new(),
            aof_wake: Condvar::new(),
        }
    }

    /// Whether any output is on. Commands skip building their effects when not.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Relaxed)
    }

    fn refresh_active(&self, inner: &Inner) {
        let on = inner.aof.is_some() || (inner.repl.is_some() && !inner.repl_proxy);
        self.active.store(on, Relaxed);
    }

    /// Appends one command that ran in database `db` (the common case: a write command
    /// propagated as it was called). The caller must hold the shard locks of every key the
    /// command changed.
    pub fn append_one(&self, db: usize, argv: &[&[u8]]) {
        self.append_with(|log, _| log.command(db, argv));
    }

    /// Appends commands, each with the database it ran in; `wrap` puts them inside
    /// MULTI ... EXEC so they replay atomically (a transaction, or one command with several
    /// effects). The caller must hold the shard locks of every key they changed.
    pub fn append(&self, cmds: &[(usize, Vec<Vec<u8>>)], wrap: bool) {
        let Some(first_db) = cmds.first().map(|c| c.0) else {
            return;
        };
        self.append_with(|log, _| {
            if wrap {
                log.command(first_db, &[b"MULTI"]);
            }
            let mut db = first_db;
            for (d, argv) in cmds {
                db = *d;
                let argv: smallvec::SmallVec<[&[u8]; 8]> = argv.iter().map(|a| &a[..]).collect();
                log.command(db, &argv);
            }
            if wrap {
                log.command(db, &[b"EXEC"]);
            }
        });
    }

    /// Appends a batch: inside MULTI ... EXEC when it holds several commands (on every
    /// output, as Redis wraps them even where some of them go to one output only).
    pub fn append_batch(&self, batch: &Batch) {
        let Some(first_db) = batch.cmds.first().map(|c| c.0) else {
            return;
        };
        let wrap = batch.cmds.len() > 1;
        self.append_with(|log, output| {
            if wrap {
                log.command(first_db, &[b"MULTI"]);
            }
            let mut db = first_db;
            for (i, (d, argv)) in batch.cmds.iter().enumerate() {
                db = *d;
                if batch.to(i) & output != 0 {
                    let argv: smallvec::SmallVec<[&[u8]; 8]> =
                        argv.iter().map(|a| &a[..]).collect();
                    log.command(db, &argv);
                }
            }
            if wrap {
                log.command(db, &[b"EXEC"]);
            }
        });
    }

    /// Runs `write` on each output that is on, with the output's `TO_*` flag.
    fn append_with(&self, mut write: impl FnMut(&mut Log, u8)) {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let to_repl = inner.repl.is_some() && !inner.repl_proxy;
        if to_repl {
            write(inner.repl.as_mut().unwrap(), TO_REPLICAS);
        }
        let to_aof = match inner.aof.as_mut() {
            Some(l) => {
                write(l, TO_AOF);
                true
            }
            None => false,
        };
        drop(g);
        if to_repl {
            self.repl_wake.notify_waiters();
        }
        if to_aof {
            self.aof_wake.notify_all();
        }
    }

    // --- the replication stream -------------------------------------------------------

    /// Starts the replication stream at `offset` (Redis creates its backlog when the first
    /// replica attaches). No-op when it is already on.
    pub fn enable_repl(&self, offset: u64) {
        let mut g = self.inner.lock();
        if g.repl.is_none() {
            g.repl = Some(Log::new(offset));
        }
        self.refresh_active(&g);
    }

    /// Stops the replication stream and drops its history.
    pub fn disable_repl(&self) {
        let mut g = self.inner.lock();
        g.repl = None;
        self.refresh_active(&g);
    }

    /// Restarts the replication stream empty at `offset` (a replica after a full sync).
    pub fn reset_repl(&self, offset: u64) {
        let mut g = self.inner.lock();
        if g.repl.is_some() {
            g.repl = Some(Log::new(offset));
        }
    }

    /// On a replica: the stream carries the primary's bytes verbatim
    /// ([`Feed::append_repl_verbatim`]) and commands' own effects go to the AOF only.
    pub fn set_repl_proxy(&self, on: bool) {
        let mut g = self.inner.lock();
        g.repl_proxy = on;
        if let Some(l) = g.repl.as_mut() {
            l.db = None;
        }
        self.refresh_active(&g);
    }

    pub fn repl_enabled(&self) -> bool {
        self.inner.lock().repl.is_some()
    }

    /// `master_repl_offset`: bytes ever appended to the replication stream (0 when off).
    pub fn repl_offset(&self) -> u64 {
        self.inner.lock().repl.as_ref().map_or(0, |l| l.end)
    }

    /// `(first byte offset held, bytes held)`, when the stream is on.
    pub fn repl_history(&self) -> Option<(u64, u64)> {
        self.inner
            .lock()
            .repl
            .as_ref()
            .map(|l| (l.start, l.end - l.start))
    }

    /// Copies up to `max` stream bytes starting at offset `from` into `out`; returns how
    /// many. `Gone` when `from` is outside the history held.
    pub fn read_repl(&self, from: u64, max: usize, out: &mut Vec<u8>) -> Result<usize, Gone> {
        match self.inner.lock().repl.as_ref() {
            Some(l) => l.read(from, max, out),
            None => Err(Gone),
        }
    }

    /// Forgets history before `offset` (the replication module keeps the backlog size and
    /// what attached replicas still need).
    pub fn trim_repl(&self, offset: u64) {
        if let Some(l) = self.inner.lock().repl.as_mut() {
            l.trim_before(offset);
        }
    }

    /// Appends a command only replicas see (PING, REPLCONF GETACK *); it counts towards the
    /// offset like any other byte.
    pub fn append_repl_only(&self, argv: &[&[u8]]) {
        let mut g = self.inner.lock();
        if let Some(l) = g.repl.as_mut() {
            let mut buf = Vec::new();
            encode(&mut buf, argv);
            l.push(&buf);
            drop(g);
            self.repl_wake.notify_waiters();
        }
    }

    /// Appends a command for replicas only, in database `db`, with the replication
    /// stream's SELECT state (DEBUG REPLICATE, which Redis feeds to its replicas and
    /// backlog without running it). Nothing on a replica, which proxies its primary's
    /// stream, or while no replication stream exists.
    pub fn append_repl_command(&self, db: usize, argv: &[&[u8]]) {
        let mut g = self.inner.lock();
        if g.repl_proxy {
            return;
        }
        if let Some(l) = g.repl.as_mut() {
            l.command(db, argv);
            drop(g);
            self.repl_wake.notify_waiters();
        }
    }

    /// On a replica: appends bytes of the primary's stream as received.
    pub fn append_repl_verbatim(&self, bytes: &[u8]) {
        let mut g = self.inner.lock();
        if let Some(l) = g.repl.as_mut() {
            l.push(bytes);
            drop(g);
            self.repl_wake.notify_waiters();
        }
    }

    // --- the AOF ------------------------------------------------------------------------

    /// Turns the AOF output on or off. The next command after turning it on selects its
    /// database explicitly.
    pub fn set_aof(&self, on: bool) {
        let mut g = self.inner.lock();
        match (on, g.aof.is_some()) {
            (true, false) => g.aof = Some(Log::new(0)),
            (false, true) => g.aof = None,
            _ => {}
        }
        self.refresh_active(&g);
    }

    /// Moves the AOF bytes appended so far into `out`; returns the AOF offset just past
    /// them (bytes ever appended to the AOF output since it was turned on).
    pub fn take_aof(&self, out: &mut Vec<u8>) -> u64 {
        let mut g = self.inner.lock();
        let Some(l) = g.aof.as_mut() else {
            return 0;
        };
        for c in l.chunks.drain(..) {
            out.extend_from_slice(&c);
        }
        l.start = l.end;
        l.end
    }

    /// The AOF offset just past the last byte appended (what a client's write must wait
    /// for under `appendfsync always`).
    pub fn aof_end(&self) -> u64 {
        self.inner.lock().aof.as_ref().map_or(0, |l| l.end)
    }

    /// Waits (up to `timeout`) until the AOF output has bytes to take.
    pub fn wait_aof(&self, timeout: std::time::Duration) {
        let mut g = self.inner.lock();
        if g.aof.as_ref().is_some_and(|l| l.end == l.start) {
            self.aof_wake.wait_for(&mut g, timeout);
        }
    }

    /// Forces the next command on each output to SELECT its database (after an AOF
    /// rewrite starts a new file, or a replica is attached mid-stream).
    pub fn forget_db(&self) {
        let mut g = self.inner.lock();
        if let Some(l) = g.aof.as_mut() {
            l.db = None;
        }
        if let Some(l) = g.repl.as_mut() {
            l.db = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_encoded_with_a_select_when_the_database_changes() {
        let f = Feed::new();
        f.enable_repl(100);
        f.append_one(0, &[b"SET", b"k", b"v"]);
        f.append_one(0, &[b"DEL", b"k"]);
        f.append(&[(2, vec![b"INCR".to_vec(), b"n".to_vec()])], true);
        let mut out = Vec::new();
        let n = f.read_repl(100, usize::MAX, &mut out).unwrap();
        let want = "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n\
                    *2\r\n$3\r\nDEL\r\n$1\r\nk\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n\
                    *1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n*1\r\n$4\r\nEXEC\r\n";
        assert_eq!(String::from_utf8(out).unwrap(), want);
        assert_eq!(n, want.len());
        assert_eq!(f.repl_offset(), 100 + want.len() as u64);
    }

    #[test]
    fn reads_span_chunks_and_trimmed_history_is_gone() {
        let f = Feed::new();
        f.enable_repl(0);
        let big = vec![b'x'; 10_000];
        for _ in 0..10 {
            f.append_one(0, &[b"SET", b"k", &big]);
        }
        let end = f.repl_offset();
        let mut all = Vec::new();
        f.read_repl(0, usize::MAX, &mut all).unwrap();
        assert_eq!(all.len() as u64, end);
        let mut part = Vec::new();
        assert_eq!(f.read_repl(20_000, 5, &mut part).unwrap(), 5);
        assert_eq!(&part[..], &all[20_000..20_005]);
        f.trim_repl(50_000);
        let (first, len) = f.repl_history().unwrap();
        assert!(first <= 50_000 && first > 0);
        assert_eq!(first + len, end);
        assert_eq!(f.read_repl(0, 1, &mut part), Err(Gone));
        assert!(f.read_repl(first, 1, &mut part).is_ok());
        assert_eq!(f.read_repl(end + 1, 1, &mut part), Err(Gone));
    }

    #[test]
    fn the_aof_output_is_taken_whole_and_keeps_its_own_select_state() {
        let f = Feed::new();
        assert!(!f.is_active());
        f.set_aof(true);
        assert!(f.is_active());
        f.append_one(3, &[b"SET", b"a", b"1"]);
        let mut out = Vec::new();
        let end = f.take_aof(&mut out);
        assert_eq!(end, out.len() as u64);
        assert!(out.starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"));
        out.clear();
        f.append_one(3, &[b"SET", b"a", b"2"]);
        f.take_aof(&mut out);
        assert!(out.starts_with(b"*3\r\n$3\r\nSET"));
    }
}
