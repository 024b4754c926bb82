//! The append-only file, in Redis 7's multi-part layout: a manifest naming a base file (a
//! snapshot, RDB format with `aof-use-rdb-preamble yes`) and incremental files of the
//! commands that followed it, all in `dir`/`appenddirname`. A Redis 7 directory loads in
//! Kiln and Kiln's loads in Redis 7.
//!
//! * [`manifest`]: reading and writing the manifest.
//! * [`load`]: replaying the files at start-up, with `aof-load-truncated`.
//! * [`writer`]: the thread that moves the write feed's AOF output into the current
//!   incremental file and fsyncs it per `appendfsync`; connections wait on
//!   [`Aof::wait_synced`] under `always` before replying.
//! * [`rewrite`]: BGREWRITEAOF, automatic rewrites, and turning the AOF on at run time,
//!   all without pausing clients: a [`Snapshot`](crate::snapshot::Snapshot) point switches
//!   the writer to a new incremental file while the new base is written from the snapshot.
//!
//! States, as Redis's: off; *waiting for its first rewrite* (turned on at run time: writes
//! already go to a temporary incremental file, which joins the manifest with the first
//! base); on.

pub mod commands;
pub mod load;
pub use kiln_formats::aof::manifest;
pub mod rewrite;
pub mod writer;

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Acquire, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::server::Server;
use manifest::Manifest;

/// `appendfsync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Always,
    EverySec,
    No,
}

impl Policy {
    fn parse(s: &str) -> Self {
        match s {
            "always" => Policy::Always,
            "no" => Policy::No,
            _ => Policy::EverySec,
        }
    }
}

/// Whether the AOF is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Off,
    /// Turned on at run time; on for good once the first rewrite wrote a base.
    WaitRewrite,
    On,
}

/// AOF state of one server.
pub struct Aof {
    /// Held while files and the writer change, including across a snapshot point: never
    /// taken by a command that may hold shard locks (see [`Status`]).
    state: Mutex<State>,
    /// What INFO reports, under a lock of its own that is only ever held for a moment
    /// (INFO can run inside EXEC, holding shard locks a snapshot point waits for).
    status: Mutex<Status>,
    policy: AtomicU8,
    /// Whether the AOF is on or waiting for its first rewrite (read without the lock).
    enabled: AtomicBool,
    /// Feed offsets (of the current epoch) the writer has written / made durable.
    written: AtomicU64,
    synced: AtomicU64,
    /// Bumped whenever the feed's AOF output is turned on or off: offsets restart, and
    /// whoever waited for an offset of the previous epoch stops waiting.
    epoch: AtomicU64,
    /// Woken when `synced` advances or the epoch changes.
    synced_wake: tokio::sync::Notify,
    /// The size of the base and incremental files (INFO aof_current_size) is
    /// `size_at.0 + (written - size_at.1)`: they held `size_at.0` bytes when the writer was
    /// at feed offset `size_at.1`. (A rewrite knows the size of its base and the offset of
    /// its new incremental file's first byte, not how far the writer got.)
    size_at: Mutex<(u64, u64)>,
    /// `aof_current_size` right after the last rewrite (or the base size after loading):
    /// automatic rewrites measure growth against it.
    rewrite_base_size: AtomicU64,
    last_write_ok: AtomicBool,
    /// A rewrite is being written (the writer may skip fsyncs, `no-appendfsync-on-rewrite`).
    rewriting: AtomicBool,
    /// Microseconds the writer sleeps before each write to the file (DEBUG
    /// AOF-FLUSH-SLEEP, a test hook; 0: none).
    pub flush_sleep_us: AtomicU64,
    /// An automatic rewrite was handed to a thread and has not started yet.
    auto_pending: AtomicBool,
}

/// What changes under the lock.
struct State {
    mode: Mode,
    manifest: Manifest,
    writer: Option<writer::Writer>,
    rewrite: Option<rewrite::Job>,
    /// A thread is waiting to start the scheduled rewrite.
    scheduler: bool,
    next_job: u64,
}

/// The AOF's INFO fields and rewrite bookkeeping.
struct Status {
    /// Mirrors `State::mode`.
    mode: Mode,
    /// A rewrite waits for the snapshot in progress to end (`aof_rewrite_scheduled`).
    scheduled: bool,
    /// When the rewrite in progress started.
    rewrite_started: Option<Instant>,
    last_rewrite_secs: i64,
    last_rewrite_ok: bool,
    rewrites: u64,
    consecutive_failures: u64,
    /// When the last rewrite failed (automatic rewrites back off after failures).
    last_failure: Option<Instant>,
}

impl Default for Aof {
    fn default() -> Self {
        Self::new()
    }
}

impl Aof {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                mode: Mode::Off,
                manifest: Manifest::default(),
                writer: None,
                rewrite: None,
                scheduler: false,
                next_job: 1,
            }),
            status: Mutex::new(Status {
                mode: Mode::Off,
                scheduled: false,
                rewrite_started: None,
                last_rewrite_secs: -1,
                last_rewrite_ok: true,
                rewrites: 0,
                consecutive_failures: 0,
                last_failure: None,
            }),
            policy: AtomicU8::new(Policy::EverySec as u8),
            enabled: AtomicBool::new(false),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            synced_wake: tokio::sync::Notify::new(),
            size_at: Mutex::new((0, 0)),
            rewrite_base_size: AtomicU64::new(0),
            last_write_ok: AtomicBool::new(true),
            rewriting: AtomicBool::new(false),
            flush_sleep_us: AtomicU64::new(0),
            auto_pending: AtomicBool::new(false),
        }
    }

    /// The `appendfsync` policy in force.
    #[inline]
    pub fn policy(&self) -> Policy {
        match self.policy.load(Relaxed) {
            0 => Policy::Always,
            2 => Policy::No,
            _ => Policy::EverySec,
        }
    }

    fn set_policy(&self, p: Policy) {
        let v = match p {
            Policy::Always => 0,
            Policy::EverySec => 1,
            Policy::No => 2,
        };
        self.policy.store(v, Relaxed);
    }

    /// Whether replies to writes must wait for the AOF fsync (`appendfsync always` with the
    /// AOF on). One atomic load each.
    #[inline]
    pub fn fsync_always(&self) -> bool {
        self.enabled.load(Relaxed) && self.policy.load(Relaxed) == 0
    }

    /// What a connection that executed writes must wait for under `appendfsync always`:
    /// `(epoch, feed offset)`, to pass to [`Aof::wait_synced`]. Read it after the writes.
    pub fn sync_point(&self, server: &Server) -> (u64, u64) {
        // The epoch first: if it changes before the offset is read, the wait ends at once
        // rather than waiting for an offset of another epoch.
        let epoch = self.epoch.load(Acquire);
        (epoch, server.feed.aof_end())
    }

    /// Waits until the AOF is written and fsynced up to `offset` of `epoch` (or the AOF
    /// was turned off or restarted meanwhile). Group commit: one fsync of the writer
    /// releases every connection waiting for an offset it covers.
    pub async fn wait_synced(&self, epoch: u64, offset: u64) {
        loop {
            let n = self.synced_wake.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.epoch.load(Acquire) != epoch
                || self.synced.load(Acquire) >= offset
                || !self.enabled.load(Relaxed)
            {
                return;
            }
            n.await;
        }
    }

    /// Changes the mode (and what INFO shows of it).
    fn set_mode(&self, st: &mut State, mode: Mode) {
        st.mode = mode;
        self.status.lock().mode = mode;
    }

    /// Whether a rewrite is scheduled.
    fn scheduled(&self) -> bool {
        self.status.lock().scheduled
    }

    fn set_scheduled(&self, on: bool) {
        self.status.lock().scheduled = on;
    }

    /// `aof_current_size`: bytes of the base and incremental files.
    pub fn current_size(&self) -> u64 {
        let (bytes, at) = *self.size_at.lock();
        bytes + self.written.load(Relaxed).saturating_sub(at)
    }

    /// The files hold `bytes` bytes with the writer at feed offset `at`.
    fn set_size_at(&self, bytes: u64, at: u64) {
        *self.size_at.lock() = (bytes, at);
    }

    /// Starts a new epoch of feed offsets (the feed's AOF output was turned on or off).
    fn new_epoch(&self) {
        self.written.store(0, Relaxed);
        self.synced.store(0, Relaxed);
        self.epoch.fetch_add(1, Relaxed);
        self.synced_wake.notify_waiters();
    }
}

/// `dir`/`appenddirname`.
pub fn aof_dir(server: &Server) -> PathBuf {
    let c = server.config.read();
    Path::new(c.get("dir")).join(c.get("appenddirname"))
}

/// `appendfilename`.
fn appendfilename(server: &Server) -> String {
    server.config.read().get("appendfilename").to_string()
}

/// Writes `m` as the manifest: to a temporary file, fsynced, renamed over the manifest,
/// and the directory fsynced, so the manifest on disk is always a complete one.
fn persist_manifest(dir: &Path, appendfilename: &str, m: &Manifest) -> std::io::Result<()> {
    let tmp = dir.join(manifest::temp_manifest_name(appendfilename));
    let path = dir.join(manifest::manifest_name(appendfilename));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        std::io::Write::write_all(&mut f, m.to_text().as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        sync_dir(dir)
    })();
    if let Err(e) = &result {
        tracing::warn!(
            "Can't write the AOF manifest file {}: {e}",
            manifest::manifest_name(appendfilename)
        );
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// fsyncs a directory, so the renames and new files in it survive a crash.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Deletes the history files of the manifest and writes it without them.
fn delete_history(dir: &Path, appendfilename: &str, m: &mut Manifest) {
    if m.history.is_empty() {
        return;
    }
    for f in m.history.drain(..) {
        tracing::info!("Removing the history file {} in the background", f.name);
        let _ = std::fs::remove_file(dir.join(&f.name));
    }
    let _ = persist_manifest(dir, appendfilename, m);
}

/// Opens a file for appending, creating it.
fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
}

/// Size of a file, 0 when it cannot be read.
fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Start-up, before clients are served: with `appendonly yes`, loads the AOF (and not the
/// RDB file: as in Redis, the AOF wins, even when it does not exist yet), makes sure a base
/// and an incremental file exist, and starts writing. Returns whether the AOF is on (the
/// caller loads the RDB file otherwise). An error is fatal: the server must not start.
pub fn startup(server: &Arc<Server>) -> Result<bool, String> {
    let aof = &server.aof;
    let (on, policy, truncate_ok) = {
        let c = server.config.read();
        (
            c.get_bool("appendonly"),
            Policy::parse(c.get("appendfsync")),
            c.get_bool("aof-load-truncated"),
        )
    };
    aof.set_policy(policy);
    check_names(server)?;
    if !on {
        return Ok(false);
    }
    let dir = aof_dir(server);
    let name = appendfilename(server);
    let mut st = aof.state.lock();
    let mut m = read_manifest(&dir, &name)?;
    upgrade_legacy(server, &dir, &name, &mut m)?;

    // Load the files, in order.
    let started = crate::clock::instant();
    let files: Vec<manifest::FileInfo> = m.data_files().cloned().collect();
    let mut total = 0u64;
    for f in &files {
        let p = dir.join(&f.name);
        match std::fs::metadata(&p) {
            Ok(md) => total += md.len(),
            Err(e) => {
                return Err(format!(
                    "The append log file {} doesn't exist or can't be read: {e}",
                    f.name
                ))
            }
        }
    }
    let mut base_size = 0;
    if total > 0 {
        for (i, f) in files.iter().enumerate() {
            let p = dir.join(&f.name);
            let last = i + 1 == files.len();
            let is_base = i == 0 && m.base.is_some();
            let t = crate::clock::instant();
            let outcome = load::load_file(server, &p, &f.name, f.name == name, last, truncate_ok)?;
            if is_base {
                base_size = file_size(&p);
            }
            if outcome != load::Outcome::Empty {
                tracing::info!(
                    "DB loaded from {} file {}: {:.3} seconds",
                    if is_base { "base" } else { "incr" },
                    f.name,
                    t.elapsed().as_secs_f64()
                );
            }
        }
        tracing::info!(
            "DB loaded from append only file: {:.3} seconds",
            started.elapsed().as_secs_f64()
        );
        // A torn tail may have been cut off.
        total = files.iter().map(|f| file_size(&dir.join(&f.name))).sum();
    }
    // What the replayed commands counted is not the server's activity (Redis does not
    // count them either); the changes themselves stay counted as unsaved.
    server.metrics.stats.reset();

    std::fs::create_dir_all(&dir).map_err(|e| {
        format!(
            "Can't open or create append-only dir {}: {e}",
            dir.display()
        )
    })?;
    if !m.has_data_files() {
        // An empty dataset still gets a base, so the directory is complete for Redis too.
        let base = m.new_base(&name, rdb_preamble(server));
        rewrite::write_base_now(server, &dir.join(&base))
            .map_err(|e| format!("Can't write the AOF base file {base}: {e}"))?;
        tracing::info!("Creating AOF base file {base} on server start");
        base_size = file_size(&dir.join(&base));
        total = base_size;
    }
    let creating = m.incr.is_empty();
    let incr = match m.incr.last() {
        Some(f) => f.name.clone(),
        None => m.new_incr(&name),
    };
    let incr_path = dir.join(&incr);
    let file = open_append(&incr_path)
        .map_err(|e| format!("Can't open the append-only file {incr}: {e}"))?;
    persist_manifest(&dir, &name, &m)
        .map_err(|e| format!("Can't persist the AOF manifest: {e}"))?;
    if creating {
        tracing::info!("Creating AOF incr file {incr} on server start");
    } else {
        tracing::info!("Opening AOF incr file {incr} on server start");
    }
    delete_history(&dir, &name, &mut m);
    let incr_len = file_size(&incr_path);
    aof.set_size_at(total.max(base_size), 0);
    aof.rewrite_base_size.store(base_size, Relaxed);
    st.manifest = m;
    start_writing(server, &mut st, file, incr, incr_len);
    aof.set_mode(&mut st, Mode::On);
    Ok(true)
}

/// Why DEBUG LOADAOF could not reload the AOF.
pub enum ReloadError {
    /// No complete AOF to load: it is off, or on since a moment and its first rewrite has
    /// not written a base yet. Nothing was changed.
    NotOn,
    /// The writer did not catch up with the feed in time (a rewrite holding bytes back).
    /// Nothing was changed.
    Busy,
    /// Loading failed (logged): the dataset holds what was loaded up to the error.
    Load(String),
}

/// DEBUG LOADAOF: waits until the writer has written everything the feed holds, runs
/// `empty` (the caller empties the dataset), then loads the AOF's files in order as start-up
/// does. The replayed commands are not fed again (see `Ctx::replaying`). Not atomic with
/// respect to other clients' writes meanwhile; the caller must hold no shard lock.
pub fn reload(server: &Server, empty: impl FnOnce()) -> Result<(), ReloadError> {
    let aof = &server.aof;
    let (dir, name, files, truncate_ok) = {
        let st = aof.state.lock();
        if st.mode != Mode::On {
            return Err(ReloadError::NotOn);
        }
        let files: Vec<manifest::FileInfo> = st.manifest.data_files().cloned().collect();
        (
            aof_dir(server),
            appendfilename(server),
            files,
            server.config.read().get_bool("aof-load-truncated"),
        )
    };
    let end = server.feed.aof_end();
    let deadline = crate::clock::instant() + std::time::Duration::from_secs(10);
    while aof.written.load(Acquire) < end {
        if crate::clock::instant() >= deadline {
            return Err(ReloadError::Busy);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    empty();
    for (i, f) in files.iter().enumerate() {
        let last = i + 1 == files.len();
        load::load_file(
            server,
            &dir.join(&f.name),
            &f.name,
            f.name == name,
            last,
            truncate_ok,
        )
        .map_err(ReloadError::Load)?;
    }
    tracing::warn!("Append Only File loaded by DEBUG LOADAOF");
    Ok(())
}

/// `appendfilename` and `appenddirname` name a file and a directory inside `dir`, as
/// Redis requires (the manifest could not name files elsewhere).
fn check_names(server: &Server) -> Result<(), String> {
    let c = server.config.read();
    for (param, what) in [("appendfilename", "filename"), ("appenddirname", "dirname")] {
        let v = c.get(param);
        if v.is_empty() {
            return Err(format!("{param} can't be empty"));
        }
        if v.contains('/') {
            return Err(format!("{param} can't be a path, just a {what}"));
        }
    }
    Ok(())
}

/// Turns the feed's AOF output on and starts a writer at its first offset.
fn start_writing(server: &Arc<Server>, st: &mut State, file: File, name: String, len: u64) {
    let aof = &server.aof;
    server.feed.set_aof(true);
    aof.new_epoch();
    st.writer = Some(writer::Writer::start(server.clone(), file, name, len, 0));
    aof.enabled.store(true, Relaxed);
}

/// Stops the writer after it wrote and fsynced what the feed holds, and turns the feed's
/// AOF output off.
fn stop_writing(server: &Server, st: &mut State) {
    let aof = &server.aof;
    if let Some(w) = st.writer.take() {
        w.stop(server);
    }
    server.feed.set_aof(false);
    aof.enabled.store(false, Relaxed);
    aof.new_epoch();
}

/// Whether bases are written in RDB format.
fn rdb_preamble(server: &Server) -> bool {
    server.config.read().get_bool("aof-use-rdb-preamble")
}

/// Reads the manifest of `dir` (an empty one when there is none yet).
fn read_manifest(dir: &Path, name: &str) -> Result<Manifest, String> {
    let path = dir.join(manifest::manifest_name(name));
    match std::fs::read(&path) {
        Ok(text) => Manifest::parse(&text).map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
        Err(e) => Err(format!(
            "Fatal error: can't open the AOF manifest file {} for reading: {e}",
            path.display()
        )),
    }
}

/// A single-file AOF of Redis 6 or older (`dir`/`appendfilename`) becomes the base of a
/// manifest in the AOF directory, as Redis 7 migrates it.
fn upgrade_legacy(server: &Server, dir: &Path, name: &str, m: &mut Manifest) -> Result<(), String> {
    let legacy = Path::new(server.config.read().get("dir")).join(name);
    if !legacy.is_file() {
        return Ok(());
    }
    let only_legacy_base = m.incr.is_empty()
        && m.base.as_ref().is_some_and(|b| b.name == name)
        && !dir.join(name).exists();
    if dir.is_dir() && m.has_data_files() && !only_legacy_base {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "Can't open or create append-only dir {}: {e}",
            dir.display()
        )
    })?;
    m.base = Some(manifest::FileInfo {
        name: name.to_string(),
        seq: 1,
        kind: manifest::FileType::Base,
    });
    m.base_seq = 1;
    persist_manifest(dir, name, m).map_err(|e| format!("Can't persist the AOF manifest: {e}"))?;
    std::fs::rename(&legacy, dir.join(name)).map_err(|e| {
        format!(
            "Error trying to move the old AOF file {name} into dir {}: {e}",
            dir.display()
        )
    })?;
    tracing::info!(
        "Successfully migrated an old-style AOF file ({name}) into the AOF directory ({}).",
        dir.display()
    );
    Ok(())
}

/// Applies `appendfsync` from the configuration at once; returns whether `appendonly` is
/// set.
pub fn apply_policy(server: &Server) -> bool {
    let (on, policy) = {
        let c = server.config.read();
        (
            c.get_bool("appendonly"),
            Policy::parse(c.get("appendfsync")),
        )
    };
    server.aof.set_policy(policy);
    on
}

/// After CONFIG SET: applies `appendfsync`, and turns the AOF on (with a first rewrite, as
/// Redis does) or off when `appendonly` changed. `Err` carries the CONFIG SET reason.
/// Takes a snapshot point when it turns the AOF on: the caller holds no shard lock (CONFIG
/// SET inside EXEC runs it once the transaction released its locks).
pub fn config_changed(server: &Server) -> Result<(), String> {
    let on = apply_policy(server);
    let aof = &server.aof;
    let mut st = aof.state.lock();
    match (on, st.mode) {
        (true, Mode::Off) => {
            let server = server.arc();
            // A rewrite of the AOF that was off is of no use any more (Redis kills it):
            // the first rewrite of the AOF starts now, or once that one is done writing.
            rewrite::cancel(&server, &mut st);
            aof.set_mode(&mut st, Mode::WaitRewrite);
            match rewrite::start_locked(&server, &mut st) {
                Ok(_) => Ok(()),
                Err(e) => {
                    tracing::warn!(
                        "Kiln needs to enable the AOF but can't trigger a background AOF rewrite operation: {e}"
                    );
                    aof.set_mode(&mut st, Mode::Off);
                    // As in Redis, the parameter keeps its old value.
                    let _ = server.config.write().set("appendonly", &["no".to_string()]);
                    Err("Unable to turn on AOF. Check server logs.".into())
                }
            }
        }
        (false, Mode::On | Mode::WaitRewrite) => {
            rewrite::cancel(server, &mut st);
            stop_writing(server, &mut st);
            aof.set_mode(&mut st, Mode::Off);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// After the dataset was replaced wholesale (a replica's full resynchronization): with the
/// AOF on, it starts over from a rewrite of the new dataset, as Redis restarts its AOF
/// then. Until that rewrite completes, the files on disk still describe the old dataset.
/// Must be called without shard locks held (the rewrite takes a snapshot point).
pub fn restart(server: &Server) -> Result<(), String> {
    let aof = &server.aof;
    let mut st = aof.state.lock();
    if st.mode == Mode::Off {
        return Ok(());
    }
    let arc = server.arc();
    rewrite::cancel(server, &mut st);
    stop_writing(server, &mut st);
    aof.set_mode(&mut st, Mode::WaitRewrite);
    rewrite::start_locked(&arc, &mut st)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// At exit (SHUTDOWN, SIGTERM): waits for a first rewrite that turns the AOF on (without
/// its base the AOF would be unusable), abandons any other rewrite, and writes and fsyncs
/// everything the feed holds.
pub fn shutdown(server: &Server) {
    let aof = &server.aof;
    loop {
        let st = aof.state.lock();
        let waiting = st.mode == Mode::WaitRewrite && st.rewrite.is_some();
        drop(st);
        if !waiting {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut st = aof.state.lock();
    rewrite::cancel(server, &mut st);
    if st.writer.is_some() {
        if let Some(w) = st.writer.take() {
            w.stop(server);
        }
        tracing::info!("Calling fsync() on the AOF file.");
    }
}

/// The AOF fields of INFO persistence, from `aof_enabled` to the end of the section
/// (Redis prints the `module_fork_*` fields between the AOF fields and the sizes that
/// follow while the AOF is on).
pub fn info(server: &Server, s: &mut String) {
    let aof = &server.aof;
    let st = aof.status.lock();
    let now = crate::clock::instant();
    let mut line = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(s, "{k}:{v}\r\n");
    };
    line("aof_enabled", &u8::from(st.mode != Mode::Off));
    line(
        "aof_rewrite_in_progress",
        &u8::from(st.rewrite_started.is_some()),
    );
    line("aof_rewrite_scheduled", &u8::from(st.scheduled));
    line("aof_last_rewrite_time_sec", &st.last_rewrite_secs);
    let current = st
        .rewrite_started
        .map_or(-1, |t| now.duration_since(t).as_secs() as i64);
    line("aof_current_rewrite_time_sec", &current);
    line(
        "aof_last_bgrewrite_status",
        &if st.last_rewrite_ok { "ok" } else { "err" },
    );
    line("aof_rewrites", &st.rewrites);
    line(
        "aof_rewrites_consecutive_failures",
        &st.consecutive_failures,
    );
    line(
        "aof_last_write_status",
        &if aof.last_write_ok.load(Relaxed) {
            "ok"
        } else {
            "err"
        },
    );
    // No fork, so no copy-on-write.
    line("aof_last_cow_size", &0);
    line("module_fork_in_progress", &0);
    line("module_fork_last_cow_size", &0);
    if server.config.read().get_bool("appendonly") {
        line("aof_current_size", &aof.current_size());
        line("aof_base_size", &aof.rewrite_base_size.load(Relaxed));
        line("aof_pending_rewrite", &u8::from(st.scheduled));
        let buffered = if aof.enabled.load(Relaxed) {
            server
                .feed
                .aof_end()
                .saturating_sub(aof.written.load(Relaxed))
        } else {
            0
        };
        line("aof_buffer_length", &buffered);
        line("aof_pending_bio_fsync", &0);
        line("aof_delayed_fsync", &0);
    }
}
