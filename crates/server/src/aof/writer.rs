//! The AOF writer thread: moves the write feed's AOF output into the current incremental
//! file and fsyncs it as `appendfsync` says.
//!
//! * `always`: every batch taken from the feed is written and fsynced before the offsets
//!   it covers are reported durable ([`super::Aof::synced`]); connections that executed
//!   writes wait for that before sending their replies (`net`). While one fsync runs, new
//!   writes pile up in the feed and the next round covers them all with one fsync (group
//!   commit), so the cost per client shrinks as load grows.
//! * `everysec`: data is written as soon as it arrives (a crash of the process alone loses
//!   nothing written; what the feed holds at that instant is at most a few milliseconds of
//!   writes) and fsynced once a second.
//! * `no`: written as it arrives, never fsynced (the kernel decides).
//!
//! A rewrite switches files at its snapshot point without stopping anyone: the point sets a
//! *barrier* (the feed offset of the point) beyond which the writer holds bytes back, then
//! hands over the new file as a *rotation* at that offset. Bytes before the point finish in
//! the old file, bytes after it start the new one.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::Policy;
use crate::server::Server;

/// Stop taking from the feed while this much is waiting to be written (the writer can
/// only fall behind while a barrier holds bytes back).
const MAX_PENDING: usize = 64 << 20;

/// Under `everysec` and `no`, how long the writer lets writes gather after a round that
/// found some: what a process crash can lose beyond the feed's buffer, and what bounds the
/// writer to about a thousand write calls a second.
const BATCH_PAUSE: Duration = Duration::from_millis(1);

/// A new file for bytes from feed offset `at` on.
pub struct Rotation {
    pub at: u64,
    pub file: File,
    pub name: String,
}

/// Shared between the writer thread and whoever steers it.
#[derive(Default)]
pub struct Ctl {
    state: Mutex<CtlState>,
    wake: Condvar,
}

#[derive(Default)]
struct CtlState {
    stop: bool,
    barrier: Option<u64>,
    rotation: Option<Rotation>,
}

impl Ctl {
    /// Holds back bytes at and after feed offset `at` (a snapshot point) until a rotation
    /// or [`Ctl::clear_barrier`]. Cheap: callable while every shard lock is held.
    pub fn set_barrier(&self, at: u64) {
        self.state.lock().barrier = Some(at);
    }

    /// Releases a barrier without switching files (the rewrite could not start).
    pub fn clear_barrier(&self) {
        self.state.lock().barrier = None;
        self.wake.notify_all();
    }

    /// Switches to `r.file` at offset `r.at` (and releases the barrier).
    pub fn rotate(&self, r: Rotation) {
        let mut g = self.state.lock();
        g.barrier = None;
        g.rotation = Some(r);
        drop(g);
        self.wake.notify_all();
    }
}

/// A running writer thread.
pub struct Writer {
    pub ctl: Arc<Ctl>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts writing the feed's AOF output from offset `from` into `file` (opened for
    /// appending; `len` bytes long already).
    pub fn start(server: Arc<Server>, file: File, name: String, len: u64, from: u64) -> Self {
        let ctl = Arc::new(Ctl::default());
        let c = ctl.clone();
        let thread = std::thread::Builder::new()
            .name("kiln-aof".into())
            .spawn(move || {
                let mut w = Loop {
                    server,
                    ctl: c,
                    file,
                    name,
                    file_len: len,
                    written: from,
                    pending: Vec::new(),
                    last_fsync: crate::clock::instant(),
                    last_error_log: None,
                };
                w.run();
            })
            .expect("spawning the AOF writer thread");
        Self {
            ctl,
            thread: Some(thread),
        }
    }

    /// Writes and fsyncs everything the feed holds, then ends the thread.
    pub fn stop(mut self, server: &Server) {
        self.ctl.state.lock().stop = true;
        self.ctl.wake.notify_all();
        server.feed.aof_wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer thread's own state.
struct Loop {
    server: Arc<Server>,
    ctl: Arc<Ctl>,
    file: File,
    name: String,
    /// Length of the current file as far as this thread wrote it.
    file_len: u64,
    /// Feed offset of the first byte of `pending`.
    written: u64,
    /// Bytes taken from the feed and not yet written.
    pending: Vec<u8>,
    last_fsync: Instant,
    last_error_log: Option<Instant>,
}

impl Loop {
    fn run(&mut self) {
        let server = self.server.clone();
        let aof = &server.aof;
        let mut last_check = crate::clock::instant();
        loop {
            // The stop flag is read before taking: once it is seen, everything appended
            // before it was set is in this take.
            let stop = self.ctl.state.lock().stop;
            if self.pending.len() < MAX_PENDING {
                server.feed.take_aof(&mut self.pending);
            }
            let taken_end = self.written + self.pending.len() as u64;
            let limit = {
                let g = self.ctl.state.lock();
                match (&g.rotation, g.barrier) {
                    (Some(r), _) => Some(r.at),
                    // Stopping: a barrier whose file never came was abandoned, and what
                    // follows it stays in the current file.
                    (None, Some(b)) if !stop => Some(b),
                    _ => None,
                }
            };
            let upto = limit.map_or(taken_end, |l| l.clamp(self.written, taken_end));
            let wrote = upto > self.written;
            if wrote && !self.write_out((upto - self.written) as usize) {
                // A write error (already logged): try again in a moment.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            if limit == Some(self.written) {
                let rotation = self.ctl.state.lock().rotation.take();
                if let Some(r) = rotation {
                    self.switch_to(r);
                    continue;
                }
            }
            self.fsync_per_policy();
            let held_back = !self.pending.is_empty();
            if stop && !held_back {
                // Everything taken is in the file: make it durable and end.
                self.fsync(true);
                return;
            }
            if last_check.elapsed() >= Duration::from_millis(100) {
                last_check = crate::clock::instant();
                super::rewrite::auto_check(&server);
            }
            if held_back {
                // Waiting for the file that follows a snapshot point.
                let mut g = self.ctl.state.lock();
                if g.rotation.is_none() && g.barrier.is_some() && !g.stop {
                    self.ctl.wake.wait_for(&mut g, Duration::from_millis(100));
                }
            } else if wrote && aof.policy() != Policy::Always && !stop {
                // Under load, let writes gather for a moment rather than being woken for
                // each one: one write call per round instead of one per command, and the
                // appending commands find nobody to wake. (Under `always` the clients wait
                // for the fsync, which already gathers everything appended meanwhile.)
                std::thread::sleep(BATCH_PAUSE);
            } else {
                let policy = aof.policy();
                let wait = if policy == Policy::EverySec && self.synced_behind() {
                    Duration::from_secs(1)
                        .saturating_sub(self.last_fsync.elapsed())
                        .min(Duration::from_millis(100))
                } else {
                    Duration::from_millis(100)
                };
                server.feed.wait_aof(wait);
            }
        }
    }

    /// Whether bytes written are not fsynced yet.
    fn synced_behind(&self) -> bool {
        self.server.aof.synced.load(Relaxed) < self.written
    }

    /// Writes the first `n` pending bytes. False (logged) on error, with nothing consumed.
    fn write_out(&mut self, n: usize) -> bool {
        let aof = &self.server.aof;
        let latency = &self.server.latency;
        let sleep = aof.flush_sleep_us.load(Relaxed);
        if sleep > 0 {
            std::thread::sleep(Duration::from_micros(sleep));
        }
        let t = (latency.threshold() != 0).then(crate::clock::instant);
        let result = self.file.write_all(&self.pending[..n]);
        if let Some(t) = t {
            // Redis's events: every write, and the same sample by what ran beside it (the
            // fsync is this thread's own, never pending while it writes).
            let ms = t.elapsed().as_millis() as u64;
            let beside = if aof.rewriting.load(Relaxed) {
                "aof-write-active-child"
            } else {
                "aof-write-alone"
            };
            latency.sample_if_needed(beside, ms);
            latency.sample_if_needed("aof-write", ms);
        }
        match result {
            Ok(()) => {
                self.pending.drain(..n);
                self.written += n as u64;
                self.file_len += n as u64;
                aof.written.store(self.written, Release);
                if !aof.last_write_ok.swap(true, Relaxed) {
                    tracing::warn!("AOF write error looks solved, Kiln can write again.");
                }
                true
            }
            Err(e) => {
                if aof.policy() == Policy::Always {
                    // A reply promised durability: nothing can be acknowledged any more.
                    tracing::error!(
                        "Can't recover from AOF write error when the AOF fsync policy is 'always': {e}. Exiting..."
                    );
                    std::process::exit(1);
                }
                aof.last_write_ok.store(false, Relaxed);
                // A partial command must not stay in the file: cut back to the last
                // complete write, and write the whole batch again later.
                if let Err(e2) = self.file.set_len(self.file_len) {
                    tracing::warn!(
                        "Could not remove the partial write from the AOF file {}: {e2}",
                        self.name
                    );
                }
                if self
                    .last_error_log
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(30))
                {
                    self.last_error_log = Some(crate::clock::instant());
                    tracing::warn!("Error writing to the AOF file {}: {e}", self.name);
                }
                false
            }
        }
    }

    /// Finishes the old file (fsynced, so every offset before the switch is durable) and
    /// continues in the new one.
    fn switch_to(&mut self, r: Rotation) {
        self.fsync(true);
        let old = std::mem::replace(&mut self.file, r.file);
        drop(old);
        self.name = r.name;
        self.file_len = 0;
    }

    fn fsync_per_policy(&mut self) {
        match self.server.aof.policy() {
            Policy::Always => self.fsync(false),
            Policy::EverySec if self.last_fsync.elapsed() >= Duration::from_secs(1) => {
                self.fsync(false)
            }
            _ => {}
        }
    }

    /// fsyncs what was written (unless `no-appendfsync-on-rewrite` says not to during a
    /// rewrite; `force` overrides) and reports it durable.
    fn fsync(&mut self, force: bool) {
        let aof = &self.server.aof;
        if !self.synced_behind() {
            self.last_fsync = crate::clock::instant();
            return;
        }
        let skip = !force
            && aof.rewriting.load(Relaxed)
            && self
                .server
                .config
                .read()
                .get_bool("no-appendfsync-on-rewrite");
        if !skip {
            let _t = (aof.policy() == Policy::Always)
                .then(|| self.server.latency.timer("aof-fsync-always"))
                .flatten();
            if let Err(e) = self.file.sync_data() {
                if aof.policy() == Policy::Always {
                    tracing::error!(
                        "Can't persist AOF for fsync error when the AOF fsync policy is 'always': {e}. Exiting..."
                    );
                    std::process::exit(1);
                }
                tracing::warn!("Error fsyncing the AOF file {}: {e}", self.name);
                aof.last_write_ok.store(false, Relaxed);
                return;
            }
        }
        self.last_fsync = crate::clock::instant();
        aof.synced.store(self.written, Release);
        aof.synced_wake.notify_waiters();
    }
}
