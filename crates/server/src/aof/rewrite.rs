//! Rewriting the AOF (BGREWRITEAOF, automatic rewrites, and the first rewrite that turns
//! the AOF on at run time) without pausing clients.
//!
//! Redis forks; Kiln takes a [`Snapshot`] point instead. At the point, while every shard
//! lock is held for an instant, the writer is told where the new incremental file starts
//! (the feed offset of the point); every write after the point goes to the new file, every
//! write before it is in the snapshot. The new manifest (old base, old incremental files,
//! the new incremental file) is written before anything reaches the new file, so the
//! manifest on disk describes a complete AOF at every moment. The new base is then written
//! from the snapshot on a background thread, fsynced and renamed into place; a final
//! manifest (new base, new incremental file) replaces the old one, and the files it no
//! longer names are deleted.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{manifest, persist_manifest, Mode, State};
use crate::server::Server;
use crate::snapshot::{Busy, Snapshot};

/// What a rewrite does besides writing a base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The AOF is on: writes move to a new incremental file at the snapshot point.
    Rotate,
    /// The AOF is being turned on: writes since the point accumulate in a temporary
    /// incremental file, which joins the manifest with the base.
    TurnOn,
    /// The AOF is off: only a base is written (BGREWRITEAOF with `appendonly no`).
    BaseOnly,
}

/// The rewrite in progress.
pub struct Job {
    pub id: u64,
    pub started: Instant,
    pub kind: Kind,
    /// Where the base is written before it is renamed into place.
    temp_base: PathBuf,
    /// The temporary incremental file of a [`Kind::TurnOn`] rewrite.
    temp_incr: Option<PathBuf>,
    /// Write the base in RDB format (`aof-use-rdb-preamble`).
    rdb: bool,
    /// Feed offset where the new incremental file starts.
    start_offset: u64,
}

/// How a rewrite request was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    Now,
    /// A snapshot (BGSAVE) is being written; the rewrite starts when it is done.
    Scheduled,
}

/// Why a rewrite could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    InProgress,
    Failed(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::InProgress => f.write_str("a rewrite is already in progress"),
            StartError::Failed(why) => f.write_str(why),
        }
    }
}

/// BGREWRITEAOF. `in_exec`: called inside EXEC, whose shard locks a snapshot point would
/// wait for: the rewrite is scheduled to start once the transaction is over, as Redis
/// schedules it.
pub fn request(server: &Server, in_exec: bool) -> Result<Started, StartError> {
    let arc = server.arc();
    if in_exec {
        if server.aof.status.lock().rewrite_started.is_some() {
            return Err(StartError::InProgress);
        }
        server.aof.set_scheduled(true);
        let spawned = std::thread::Builder::new()
            .name("kiln-aof-schedule".into())
            .spawn(move || {
                let mut st = arc.aof.state.lock();
                if st.rewrite.is_none() {
                    schedule(&arc, &mut st, Duration::ZERO);
                } else {
                    arc.aof.set_scheduled(false);
                }
            });
        return match spawned {
            Ok(_) => Ok(Started::Scheduled),
            Err(e) => {
                server.aof.set_scheduled(false);
                Err(StartError::Failed(e.to_string()))
            }
        };
    }
    let mut st = server.aof.state.lock();
    if st.rewrite.is_some() {
        return Err(StartError::InProgress);
    }
    start_locked(&arc, &mut st)
}

/// Starts a rewrite now, or schedules it while another snapshot is being written.
pub(super) fn start_locked(server: &Arc<Server>, st: &mut State) -> Result<Started, StartError> {
    if st.rewrite.is_some() {
        return Err(StartError::InProgress);
    }
    let kind = match st.mode {
        Mode::On => Kind::Rotate,
        Mode::WaitRewrite => Kind::TurnOn,
        Mode::Off => Kind::BaseOnly,
    };
    let dir = super::aof_dir(server);
    let name = super::appendfilename(server);
    let failed = |what: &str, e: std::io::Error| {
        tracing::warn!("Can't rewrite the append only file: {what}: {e}");
        StartError::Failed(format!("{what}: {e}"))
    };
    std::fs::create_dir_all(&dir).map_err(|e| failed("creating the AOF directory", e))?;
    let mut start_offset = 0;
    let snap = match kind {
        Kind::Rotate => {
            let Some(ctl) = st.writer.as_ref().map(|w| w.ctl.clone()) else {
                return Err(StartError::Failed("the AOF writer is not running".into()));
            };
            let mut m = st.manifest.clone();
            let incr = m.new_incr(&name);
            let path = dir.join(&incr);
            let file = File::create(&path).map_err(|e| failed("creating the incr file", e))?;
            let begun = Snapshot::begin(server, |s| {
                let at = s.feed.aof_end();
                // The new file starts with its own SELECT.
                s.feed.forget_db();
                ctl.set_barrier(at);
                at
            });
            let (snap, at) = match begun {
                Ok(x) => x,
                Err(Busy) => {
                    let _ = std::fs::remove_file(&path);
                    schedule(server, st, Duration::ZERO);
                    return Ok(Started::Scheduled);
                }
            };
            if let Err(e) = persist_manifest(&dir, &name, &m) {
                ctl.clear_barrier();
                let _ = std::fs::remove_file(&path);
                abandon(snap);
                return Err(failed("writing the manifest", e));
            }
            st.manifest = m;
            start_offset = at;
            ctl.rotate(super::writer::Rotation {
                at,
                file,
                name: incr.clone(),
            });
            tracing::info!("Creating AOF incr file {incr} on background rewrite");
            snap
        }
        Kind::TurnOn => {
            let temp = manifest::temp_incr_name(&name);
            let path = dir.join(&temp);
            let file = File::create(&path).map_err(|e| failed("creating the incr file", e))?;
            let aof = &server.aof;
            let begun = Snapshot::begin(server, |s| {
                // Writes from the point on are the first incremental file.
                aof.new_epoch();
                s.feed.set_aof(true);
                aof.enabled.store(true, Relaxed);
            });
            let snap = match begun {
                Ok((snap, ())) => snap,
                Err(Busy) => {
                    let _ = std::fs::remove_file(&path);
                    schedule(server, st, Duration::ZERO);
                    return Ok(Started::Scheduled);
                }
            };
            aof.set_size_at(0, 0);
            st.writer = Some(super::writer::Writer::start(
                server.clone(),
                file,
                temp.clone(),
                0,
                0,
            ));
            tracing::info!("Creating AOF incr file {temp} on background rewrite");
            snap
        }
        Kind::BaseOnly => match Snapshot::begin(server, |_| ()) {
            Ok((snap, ())) => snap,
            Err(Busy) => {
                schedule(server, st, Duration::ZERO);
                return Ok(Started::Scheduled);
            }
        },
    };
    let id = st.next_job;
    st.next_job += 1;
    let temp_base = Path::new(server.config.read().get("dir")).join(format!(
        "temp-rewriteaof-bg-{}-{id}.aof",
        std::process::id()
    ));
    let job = Job {
        id,
        started: crate::clock::instant(),
        kind,
        temp_base: temp_base.clone(),
        temp_incr: (kind == Kind::TurnOn).then(|| dir.join(manifest::temp_incr_name(&name))),
        rdb: super::rdb_preamble(server),
        start_offset,
    };
    let rdb = job.rdb;
    st.rewrite = Some(job);
    {
        let mut status = server.aof.status.lock();
        status.rewrites += 1;
        status.scheduled = false;
        status.rewrite_started = Some(crate::clock::instant());
    }
    server.aof.rewriting.store(true, Relaxed);
    tracing::info!("Background append only file rewriting started");
    let srv = server.clone();
    let spawned = std::thread::Builder::new()
        .name("kiln-aof-rewrite".into())
        .spawn(move || {
            let result = write_snapshot(snap, &temp_base, rdb);
            finish(&srv, id, &temp_base, result);
        });
    if let Err(e) = spawned {
        // The snapshot moved into the closure that never ran: it is gone, and so is the
        // rewrite.
        st.rewrite = None;
        server.aof.status.lock().rewrite_started = None;
        server.aof.rewriting.store(false, Relaxed);
        return Err(failed("starting the rewrite thread", e));
    }
    Ok(Started::Now)
}

/// Writes a snapshot nobody wants (its manifest could not be written) so that the
/// snapshot machinery is released.
fn abandon(snap: Snapshot) {
    let _ = std::thread::Builder::new()
        .name("kiln-aof-abandon".into())
        .spawn(move || {
            let _ = snap.write_rdb(std::io::sink(), &[]);
        });
}

/// Writes the base `path` from the dataset right now, on this thread (start-up with an
/// empty dataset).
pub(super) fn write_base_now(server: &Arc<Server>, path: &Path) -> std::io::Result<()> {
    let (snap, ()) = Snapshot::begin(server, |_| ())
        .map_err(|_| std::io::Error::other("another snapshot is being written"))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!("temp-rewriteaof-{}.aof", std::process::id()));
    let result = write_snapshot(snap, &tmp, super::rdb_preamble(server))
        .and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes the snapshot to `path` as a base (RDB, or AOF commands when `rdb` is false) and
/// fsyncs it. Returns its size.
fn write_snapshot(snap: Snapshot, path: &Path, rdb: bool) -> std::io::Result<u64> {
    let f = File::create(path)?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let size = if rdb {
        snap.write_rdb(&mut w, &[("aof-base", "1".to_string())])?
    } else {
        super::commands::write_snapshot_as_commands(snap, path, &mut w)?
    };
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    Ok(size)
}

/// The end of a rewrite: installs the new base and manifest, or cleans up.
fn finish(server: &Arc<Server>, id: u64, temp_base: &Path, result: std::io::Result<u64>) {
    let aof = &server.aof;
    let mut st = aof.state.lock();
    if st.rewrite.as_ref().is_none_or(|j| j.id != id) {
        // Cancelled (the AOF was turned off, or the server is exiting).
        let _ = std::fs::remove_file(temp_base);
        return;
    }
    let job = st.rewrite.take().expect("checked above");
    aof.rewriting.store(false, Relaxed);
    let result = result.and_then(|size| install(server, &mut st, &job, size));
    {
        let mut status = aof.status.lock();
        status.rewrite_started = None;
        status.last_rewrite_secs = job.started.elapsed().as_secs() as i64;
        status.last_rewrite_ok = result.is_ok();
        if result.is_ok() {
            status.consecutive_failures = 0;
            status.last_failure = None;
        } else {
            status.consecutive_failures += 1;
            status.last_failure = Some(crate::clock::instant());
        }
    }
    match result {
        Ok(()) => tracing::info!("Background AOF rewrite finished successfully"),
        Err(e) => {
            tracing::warn!("Background AOF rewrite terminated with error: {e}");
            let _ = std::fs::remove_file(&job.temp_base);
            if job.kind == Kind::TurnOn {
                // Not on yet: stop collecting writes, and try again (as Redis does) once
                // a little time has passed.
                super::stop_writing(server, &mut st);
                if let Some(p) = &job.temp_incr {
                    let _ = std::fs::remove_file(p);
                }
                if st.mode == Mode::WaitRewrite {
                    aof.enabled.store(false, Relaxed);
                    schedule(server, &mut st, Duration::from_secs(5));
                }
            }
        }
    }
}

/// Puts the new base (and, turning the AOF on, the first incremental file) in place and
/// writes the manifest that names them; then deletes what it no longer names.
fn install(server: &Server, st: &mut State, job: &Job, size: u64) -> std::io::Result<()> {
    let aof = &server.aof;
    let dir = super::aof_dir(server);
    let name = super::appendfilename(server);
    let mut m = st.manifest.clone();
    let base = m.new_base(&name, job.rdb);
    std::fs::rename(&job.temp_base, dir.join(&base))?;
    tracing::info!(
        "Successfully renamed the temporary AOF base file {} into {base}",
        job.temp_base
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    match job.kind {
        Kind::Rotate => m.retire_incr(1),
        Kind::BaseOnly => m.retire_incr(0),
        Kind::TurnOn => {
            m.retire_incr(0);
            let incr = m.new_incr(&name);
            let temp = job.temp_incr.as_ref().expect("a TurnOn rewrite has one");
            std::fs::rename(temp, dir.join(&incr))?;
            tracing::info!(
                "Successfully renamed the temporary AOF incr file {} into {incr}",
                manifest::temp_incr_name(&name)
            );
        }
    }
    persist_manifest(&dir, &name, &m)?;
    st.manifest = m;
    if job.kind == Kind::TurnOn {
        aof.set_mode(st, Mode::On);
    }
    super::delete_history(&dir, &name, &mut st.manifest);
    match job.kind {
        Kind::BaseOnly => aof.set_size_at(size, aof.written.load(Relaxed)),
        Kind::Rotate | Kind::TurnOn => aof.set_size_at(size, job.start_offset),
    }
    aof.rewrite_base_size.store(aof.current_size(), Relaxed);
    Ok(())
}

/// Abandons the rewrite in progress and any scheduled one (the AOF is being turned off or
/// the server is exiting). Its thread finds itself cancelled when it ends.
pub(super) fn cancel(server: &Server, st: &mut State) {
    server.aof.set_scheduled(false);
    if let Some(job) = st.rewrite.take() {
        server.aof.status.lock().rewrite_started = None;
        server.aof.rewriting.store(false, Relaxed);
        let _ = std::fs::remove_file(&job.temp_base);
        if let Some(p) = &job.temp_incr {
            let _ = std::fs::remove_file(p);
        }
        tracing::info!("Killing running AOF rewrite");
    }
}

/// Marks a rewrite scheduled and makes sure a thread starts it once no snapshot is being
/// written (after `delay`).
fn schedule(server: &Arc<Server>, st: &mut State, delay: Duration) {
    server.aof.set_scheduled(true);
    if st.scheduler {
        return;
    }
    st.scheduler = true;
    let srv = server.clone();
    let spawned = std::thread::Builder::new()
        .name("kiln-aof-schedule".into())
        .spawn(move || {
            std::thread::sleep(delay);
            loop {
                srv.snapshot.wait_idle();
                let mut st = srv.aof.state.lock();
                if !srv.aof.scheduled() || st.rewrite.is_some() {
                    srv.aof.set_scheduled(false);
                    st.scheduler = false;
                    return;
                }
                match start_locked(&srv, &mut st) {
                    Ok(Started::Scheduled) => {
                        // Another snapshot got there first: wait for it too.
                        drop(st);
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Ok(Started::Now) => {
                        st.scheduler = false;
                        return;
                    }
                    Err(e) => {
                        tracing::warn!("The scheduled AOF rewrite could not start: {e}");
                        srv.aof.set_scheduled(false);
                        st.scheduler = false;
                        return;
                    }
                }
            }
        });
    if spawned.is_err() {
        st.scheduler = false;
    }
}

/// Automatic rewrite (`auto-aof-rewrite-percentage`, `auto-aof-rewrite-min-size`): called
/// by the writer thread a few times a second; starts a rewrite on a thread of its own when
/// the AOF grew enough since the last one.
pub(super) fn auto_check(server: &Arc<Server>) {
    let aof = &server.aof;
    if !aof.enabled.load(Relaxed)
        || aof.rewriting.load(Relaxed)
        || aof.auto_pending.load(Relaxed)
        || server.snapshot.in_progress.load(Relaxed)
    {
        return;
    }
    let (perc, min) = {
        let c = server.config.read();
        (
            c.get_u64("auto-aof-rewrite-percentage"),
            c.get_u64("auto-aof-rewrite-min-size"),
        )
    };
    let current = aof.current_size();
    if perc == 0 || current <= min {
        return;
    }
    let base = aof.rewrite_base_size.load(Relaxed).max(1);
    let growth = (current * 100 / base).saturating_sub(100);
    if growth < perc {
        return;
    }
    {
        // After failures, wait longer and longer (up to an hour) before trying again.
        let Some(st) = aof.state.try_lock() else {
            return;
        };
        if st.mode != Mode::On || st.rewrite.is_some() {
            return;
        }
        let status = aof.status.lock();
        if status.scheduled {
            return;
        }
        if let Some(t) = status.last_failure {
            let n = status.consecutive_failures.min(7) as u32;
            let wait = Duration::from_secs(60 * (1u64 << n.saturating_sub(1)).min(60));
            if t.elapsed() < wait {
                return;
            }
        }
    }
    if aof.auto_pending.swap(true, Relaxed) {
        return;
    }
    tracing::info!("Starting automatic rewriting of AOF on {growth}% growth");
    let srv = server.clone();
    let spawned = std::thread::Builder::new()
        .name("kiln-aof-auto".into())
        .spawn(move || {
            {
                let mut st = srv.aof.state.lock();
                if st.mode == Mode::On && st.rewrite.is_none() {
                    if let Err(e) = start_locked(&srv, &mut st) {
                        tracing::warn!("The automatic AOF rewrite could not start: {e}");
                        let mut status = srv.aof.status.lock();
                        status.last_failure = Some(crate::clock::instant());
                        status.consecutive_failures += 1;
                    }
                }
            }
            srv.aof.auto_pending.store(false, Relaxed);
        });
    if spawned.is_err() {
        aof.auto_pending.store(false, Relaxed);
    }
}
