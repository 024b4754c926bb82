//! RDB persistence: SAVE, BGSAVE, save points, the save on shutdown, and the bookkeeping
//! INFO persistence reports. The snapshot itself is `snapshot`'s; the file format is
//! `rdb`'s. A save writes to a temporary file in `dir`, fsyncs it and renames it over
//! `dbfilename`, so a crash mid-save never damages the previous file.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub use crate::rdb::RdbState;
use crate::rdb::{LoadOptions, LoadStats, RdbError};
use crate::server::Server;
use crate::snapshot::{Busy, Snapshot};
use crate::storage::LockSet;

/// After a failed background save, automatic saves wait this long before trying again
/// (as Redis does, so a full disk is not hammered).
const RETRY_DELAY_MS: u64 = 5000;

/// Where the RDB file lives: `dir`/`dbfilename`.
pub fn rdb_path(server: &Server) -> PathBuf {
    let c = server.config.read();
    PathBuf::from(c.get("dir")).join(c.get("dbfilename"))
}

/// Takes a snapshot point for a save: the dirty counter at that point becomes the
/// "changes since last save" baseline once the save succeeds.
fn begin(server: &Arc<Server>, locks: &mut LockSet) -> Result<(Snapshot, u64), Busy> {
    Snapshot::begin_in(server, locks, |s| s.metrics.stats.sum(|t| &t.dirty))
}

/// SAVE: writes the snapshot in the calling thread (the client waits; others keep being
/// served, unlike Redis's SAVE which blocks the server).
pub fn save(server: &Arc<Server>) -> Result<(), SaveError> {
    save_in(server, &mut LockSet::new(&server.keyspace))
}

/// [`save`] through a command's lock set (holding nothing, or every shard inside EXEC).
pub fn save_in(server: &Arc<Server>, locks: &mut LockSet) -> Result<(), SaveError> {
    let (snap, dirty) = begin(server, locks).map_err(|_| SaveError::Busy)?;
    let result = write_file(server, locks, snap);
    finish(server, result.is_ok(), dirty, None);
    result.map_err(SaveError::Io)
}

/// BGSAVE: takes the snapshot point now and writes it on a background thread.
pub fn bgsave(server: &Arc<Server>) -> Result<(), Busy> {
    let (snap, dirty) = begin(server, &mut LockSet::new(&server.keyspace))?;
    let started = crate::clock::now_ms();
    let st = &server.rdb_state;
    st.bgsave_started_ms.store(started, Relaxed);
    st.last_try_ms.store(started, Relaxed);
    let s = server.clone();
    std::thread::Builder::new()
        .name("kiln-bgsave".into())
        .spawn(move || {
            tracing::info!("Background saving started");
            let result = write_file(&s, &mut LockSet::new(&s.keyspace), snap);
            match &result {
                Ok(()) => tracing::info!("Background saving terminated with success"),
                Err(e) => tracing::warn!("Background saving error: {e}"),
            }
            finish(&s, result.is_ok(), dirty, Some(started));
        })
        .map(|_| ())
        .map_err(|_| Busy)
}

/// Why SAVE failed.
#[derive(Debug)]
pub enum SaveError {
    Busy,
    Io(std::io::Error),
}

fn finish(server: &Server, ok: bool, dirty: u64, bg_started: Option<u64>) {
    let st = &server.rdb_state;
    let now = crate::clock::now_ms();
    st.last_ok.store(ok, Relaxed);
    st.last_try_ms.store(now, Relaxed);
    st.last_cow.store(server.snapshot.side_peak(), Relaxed);
    if ok {
        st.last_save_ms.store(now, Relaxed);
        st.saves.fetch_add(1, Relaxed);
        server.rdb_state.dirty_at_save.store(dirty, Relaxed);
    }
    if let Some(started) = bg_started {
        st.last_bgsave_secs
            .store((now.saturating_sub(started) / 1000) as i64, Relaxed);
        st.bgsave_started_ms.store(0, Relaxed);
    }
}

/// Writes the snapshot to a temporary file next to the target, fsyncs, renames.
fn write_file(server: &Server, locks: &mut LockSet, snap: Snapshot) -> std::io::Result<()> {
    let path = rdb_path(server);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let tmp = dir.join(format!(
        "temp-{}-{}.rdb",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let f = File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        snap.write_rdb_in(locks, &mut w, &[])?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        // The rename itself must survive a crash too.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Parsed `save` points: (seconds, changes) pairs.
pub fn save_points(server: &Server) -> Vec<(u64, u64)> {
    let c = server.config.read();
    let words: Vec<u64> = c
        .get("save")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    words.chunks_exact(2).map(|p| (p[0], p[1])).collect()
}

/// Called by the server cron: starts a background save when a save point is reached (or
/// one was scheduled), as Redis's serverCron does.
pub fn cron(server: &Arc<Server>) {
    if server.snapshot.in_progress.load(Relaxed) {
        return;
    }
    let st = &server.rdb_state;
    if st.scheduled.swap(false, Relaxed) {
        if bgsave(server).is_err() {
            st.scheduled.store(true, Relaxed);
        }
        return;
    }
    let changes = server.changes_since_save();
    if changes == 0 {
        return;
    }
    let now = crate::clock::now_ms();
    let since_save = now.saturating_sub(st.last_save_ms.load(Relaxed)) / 1000;
    let can_retry = st.last_ok.load(Relaxed)
        || now.saturating_sub(st.last_try_ms.load(Relaxed)) > RETRY_DELAY_MS;
    let due = save_points(server)
        .into_iter()
        .any(|(secs, n)| changes >= n && since_save >= secs);
    if due && can_retry {
        tracing::info!("{changes} changes in {since_save} seconds. Saving...");
        let _ = bgsave(server);
    }
}

/// The save at shutdown (SHUTDOWN, SIGTERM): when save points are configured or SHUTDOWN
/// SAVE asked for it, and SHUTDOWN NOSAVE did not forbid it. Waits for a background save
/// in progress first. Returns false when the save failed.
pub fn save_on_exit(server: &Arc<Server>) -> bool {
    let st = &server.rdb_state;
    if st.nosave_on_exit.load(Relaxed) {
        return true;
    }
    if save_points(server).is_empty() && !st.force_save_on_exit.load(Relaxed) {
        return true;
    }
    tracing::info!("Saving the final RDB snapshot before exiting.");
    server.snapshot.wait_idle();
    match save(server) {
        Ok(()) => {
            tracing::info!("DB saved on disk");
            true
        }
        Err(e) => {
            tracing::warn!("Error trying to save the DB, can't exit: {e:?}");
            false
        }
    }
}

/// Loads the RDB file at `path`: `Ok(None)` when there is no such file (an empty dataset,
/// not an error).
pub fn load_file(server: &Server, path: &Path) -> Result<Option<LoadStats>, RdbError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RdbError::io(0, &e)),
    };
    let opts = LoadOptions {
        verify_checksum: server.config.read().get("rdbchecksum") == "yes",
        size_hint: f.metadata().ok().map(|m| m.len()),
        ..LoadOptions::default()
    };
    crate::rdb::load(server.rdb_target(), f, opts).map(Some)
}

/// Start-up: loads `dir`/`dbfilename` into the (empty) keyspace before clients are served,
/// logging as redis-server does. A missing file is an empty dataset; a corrupt one is an
/// error the caller reports before exiting.
pub fn load_at_startup(server: &Server) -> Result<(), RdbError> {
    let path = {
        let c = server.config.read();
        Path::new(c.get("dir")).join(c.get("dbfilename"))
    };
    let started = crate::clock::instant();
    match load_file(server, &path)? {
        None => {}
        Some(stats) => {
            for (k, v) in &stats.aux {
                let v = String::from_utf8_lossy(v);
                match &k[..] {
                    b"redis-ver" => tracing::info!("Loading RDB produced by version {v}"),
                    b"ctime" => {
                        let age =
                            (crate::clock::now_ms() / 1000) as i64 - v.parse::<i64>().unwrap_or(0);
                        tracing::info!("RDB age {age} seconds");
                    }
                    b"used-mem" => {
                        let mb = v.parse::<f64>().unwrap_or(0.0) / (1024.0 * 1024.0);
                        tracing::info!("RDB memory usage when created {mb:.2} Mb");
                    }
                    _ => {}
                }
            }
            if stats.empty_skipped > 0 {
                tracing::info!(
                    "Done loading RDB, keys loaded: {}, keys expired: {}, empty keys skipped: {}.",
                    stats.keys,
                    stats.expired_skipped,
                    stats.empty_skipped
                );
            } else {
                tracing::info!(
                    "Done loading RDB, keys loaded: {}, keys expired: {}.",
                    stats.keys,
                    stats.expired_skipped
                );
            }
            tracing::info!(
                "DB loaded from disk: {:.3} seconds",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
