//! Point-in-time snapshots of the whole dataset without fork and without a second copy.
//!
//! Redis snapshots by forking: the child sees a frozen copy of memory, and every page the
//! parent writes meanwhile is copied (up to twice the dataset). Kiln instead saves keys
//! lazily, in place:
//!
//! 1. The snapshot point ([`Snapshot::begin`]) briefly holds every shard lock. Each shard
//!    flips its "saved" parity, which makes every key "not saved yet", and records the
//!    snapshot as its sink. Whatever the caller must do atomically with the point (read the
//!    replication offset, switch the AOF to a new file) runs then.
//! 2. The writer ([`Snapshot::write_rdb`]) walks the shards one at a time, under the shard's
//!    lock, serializing every key not saved yet and marking it saved.
//! 3. Meanwhile, a command about to change, delete or overwrite a key that is not saved yet
//!    first serializes the key's current value into the snapshot's side buffer for its
//!    database (`Shard::preserve`), then proceeds. Keys created after the point are born
//!    saved, so they are not part of the snapshot.
//!
//! The extra memory is the serialized (compact, RDB-encoded) form of the keys written
//! before the writer reached them, not a copy of the dataset. One snapshot runs at a time.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::rdb;
use crate::storage::keyspace::{Preserve, SHARDS};
use crate::storage::{shard_id, Entry, Keyspace, LockSet};

/// What a snapshot needs of the server it snapshots: its keyspace, its snapshot
/// bookkeeping, and the settings the writer follows. The server implements it; nothing
/// here knows the server, so persistence, AOF rewrites and full syncs share this module
/// without a loop through `server`.
pub trait Source: Send + Sync + 'static {
    fn keyspace(&self) -> &Keyspace;
    fn status(&self) -> &Status;
    /// How records are written (`rdbcompression`, `list-max-listpack-size`).
    fn write_options(&self) -> rdb::WriteOptions;
    /// `rdbchecksum`.
    fn checksum(&self) -> bool;
    /// Bytes in use (the `used-mem` aux field).
    fn used_memory(&self) -> u64;
    /// The code of every function library, written after the AUX fields and before the
    /// databases, as Redis does. Called at the snapshot point, while every shard lock is
    /// held (so it must not take one). None by default.
    fn library_codes(&self) -> Vec<Vec<u8>> {
        Vec::new()
    }
}

/// Keys the writer saves per hold of a shard's lock.
const STEP: usize = 256;

/// Flush the output buffer to the writer at this size.
const FLUSH_AT: usize = 256 * 1024;

/// Snapshot bookkeeping of one server.
#[derive(Default)]
pub struct Status {
    busy: Mutex<bool>,
    idle: Condvar,
    /// Bytes held in side buffers right now, and the peak over the current snapshot.
    side_bytes: AtomicU64,
    side_peak: AtomicU64,
    /// Keys saved so far / keys in the snapshot (INFO current_save_keys_*).
    pub keys_done: AtomicU64,
    pub keys_total: AtomicU64,
    /// Whether a snapshot is being written (INFO rdb_bgsave_in_progress and friends).
    pub in_progress: AtomicBool,
}

impl Status {
    /// Waits until no snapshot is being written.
    pub fn wait_idle(&self) {
        let mut busy = self.busy.lock();
        while *busy {
            self.idle.wait(&mut busy);
        }
    }

    /// Peak bytes of side buffers during the last (or current) snapshot.
    pub fn side_peak(&self) -> u64 {
        self.side_peak.load(Relaxed)
    }
}

/// The other snapshot is still being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Receives keys that commands change before the writer saved them.
struct Sink {
    server: Arc<dyn Source>,
    side: Vec<Mutex<Vec<u8>>>,
    opts: rdb::WriteOptions,
}

impl Preserve for Sink {
    fn preserve(&self, db: usize, entry: &Entry, expire: Option<u64>) {
        let mut side = self.side[db].lock();
        let before = side.len();
        rdb::write_record_with(&mut side, entry, expire, &self.opts);
        let grew = (side.len() - before) as u64;
        // Counted before the side buffer's lock goes: the writer subtracts what it takes
        // under that lock, so counting after it could subtract bytes not added yet and
        // wrap the counter below zero (an overflow panic at the next add).
        let st = self.server.status();
        let now = st.side_bytes.fetch_add(grew, Relaxed) + grew;
        drop(side);
        st.side_peak.fetch_max(now, Relaxed);
        st.keys_done.fetch_add(1, Relaxed);
    }
}

/// A snapshot taken and not yet written (see the module docs).
pub struct Snapshot {
    sink: Arc<Sink>,
    /// Keys and keys with a TTL per database at the snapshot point (RESIZEDB).
    sizes: Vec<(u64, u64)>,
    /// Unix seconds of the snapshot point (the `ctime` aux field).
    ctime: u64,
    /// The function libraries' code at the snapshot point.
    libraries: Vec<Vec<u8>>,
    /// Written (or abandoned) and detached: nothing left for `Drop`.
    finished: bool,
}

impl Drop for Snapshot {
    /// A snapshot dropped unwritten (an error on the way) still detaches from the shards.
    fn drop(&mut self) {
        if !self.finished {
            let server = self.sink.server.clone();
            self.finish_in(&mut LockSet::new(server.keyspace()));
        }
    }
}

impl Snapshot {
    /// Takes the snapshot point and runs `at_point` while nothing can change. Fails with
    /// [`Busy`] while another snapshot is being written. For threads that hold no shard
    /// lock; a command passes its own lock set to [`Snapshot::begin_in`].
    pub fn begin<S: Source, T>(
        server: &Arc<S>,
        at_point: impl FnOnce(&S) -> T,
    ) -> Result<(Snapshot, T), Busy> {
        Self::begin_in(server, &mut LockSet::new(server.keyspace()), at_point)
    }

    /// [`Snapshot::begin`] through `locks`, which holds either nothing (the point takes and
    /// releases every shard) or every shard (a command inside EXEC, whose locks stay).
    pub fn begin_in<S: Source, T>(
        server: &Arc<S>,
        locks: &mut LockSet,
        at_point: impl FnOnce(&S) -> T,
    ) -> Result<(Snapshot, T), Busy> {
        let was_empty = locks.is_empty();
        debug_assert!(
            was_empty || locks.holds_all(),
            "a snapshot point needs every shard or none held"
        );
        if !was_empty && !locks.holds_all() {
            return Err(Busy);
        }
        {
            let mut busy = server.status().busy.lock();
            if *busy {
                return Err(Busy);
            }
            *busy = true;
        }
        let st = server.status();
        st.side_bytes.store(0, Relaxed);
        st.side_peak.store(0, Relaxed);
        st.keys_done.store(0, Relaxed);
        st.in_progress.store(true, Relaxed);
        let opts = server.write_options();
        let ndb = server.keyspace().dbs.len();
        let sink = Arc::new(Sink {
            server: server.clone() as Arc<dyn Source>,
            side: (0..ndb).map(|_| Mutex::new(Vec::new())).collect(),
            opts,
        });
        let dyn_sink: Arc<dyn Preserve> = sink.clone();
        // Every shard, in the global lock order commands use.
        locks.acquire_all();
        let mut sizes = vec![(0u64, 0u64); ndb];
        for (id, g) in locks.iter_mut() {
            let s = &mut sizes[id as usize / SHARDS];
            s.0 += g.len() as u64;
            s.1 += g.expires_len() as u64;
            g.snapshot_begin(dyn_sink.clone());
        }
        st.keys_total
            .store(sizes.iter().map(|s| s.0).sum(), Relaxed);
        // The libraries of the same point as the keys: nothing changes them meanwhile
        // that a command could not also see here.
        let libraries = server.library_codes();
        let value = at_point(server);
        if was_empty {
            drop(locks.release());
        }
        Ok((
            Snapshot {
                sink,
                sizes,
                ctime: crate::clock::now_ms() / 1000,
                libraries,
                finished: false,
            },
            value,
        ))
    }

    /// Writes the snapshot as a complete RDB file to `w`: header with the standard aux
    /// fields plus `aux`, each database's keys, EOF and checksum. Returns the bytes written.
    /// Blocking (it takes each shard's lock in turn): run it off the worker threads.
    pub fn write_rdb(self, w: impl Write, aux: &[(&str, String)]) -> std::io::Result<u64> {
        let server = self.sink.server.clone();
        let mut locks = LockSet::new(server.keyspace());
        self.write_rdb_in(&mut locks, w, aux)
    }

    /// [`Snapshot::write_rdb`] through `locks` (a command's: it holds nothing, or every
    /// shard inside EXEC).
    pub fn write_rdb_in(
        mut self,
        locks: &mut LockSet,
        w: impl Write,
        aux: &[(&str, String)],
    ) -> std::io::Result<u64> {
        let result = self.write_inner(locks, w, aux);
        self.finish_in(locks);
        result
    }

    fn write_inner(
        &self,
        locks: &mut LockSet,
        w: impl Write,
        aux: &[(&str, String)],
    ) -> std::io::Result<u64> {
        let server = &self.sink.server;
        let checksum = server.checksum();
        let opts = self.sink.opts;
        let mut fw = rdb::FileWriter::new(w, checksum);
        let mut buf = Vec::with_capacity(FLUSH_AT + 4096);
        let mut fields: Vec<(&str, rdb::AuxValue)> = vec![
            (
                "redis-ver",
                rdb::AuxValue::Str(crate::REDIS_VERSION.as_bytes()),
            ),
            ("redis-bits", rdb::AuxValue::Int(64)),
            ("ctime", rdb::AuxValue::Int(self.ctime as i64)),
            ("used-mem", rdb::AuxValue::Int(server.used_memory() as i64)),
        ];
        for (k, v) in aux {
            fields.push((k, rdb::AuxValue::Str(v.as_bytes())));
        }
        if !aux.iter().any(|(k, _)| *k == "aof-base") {
            fields.push(("aof-base", rdb::AuxValue::Int(0)));
        }
        rdb::write_header(&mut buf, &fields);
        for code in &self.libraries {
            rdb::write_function(&mut buf, code, opts.compress);
        }
        let st = server.status();
        for (db, &(keys, expires)) in self.sizes.iter().enumerate() {
            if keys == 0 {
                continue;
            }
            rdb::write_select_db(&mut buf, db);
            rdb::write_resize_db(&mut buf, keys, expires);
            for idx in 0..SHARDS {
                let id = shard_id(db, idx);
                let mut n = 0u64;
                let mut save = |e: &Entry, expire: Option<u64>| {
                    rdb::write_record_with(&mut buf, e, expire, &opts);
                    n += 1;
                };
                // Steps of a few hundred keys, so clients of this shard wait for a step,
                // not for the whole shard; the final drain catches keys a removal moved
                // behind the cursor, and detaches the snapshot.
                let mut pos = 0;
                while let Some(Some(next)) =
                    locks.with(id, |sh| sh.snapshot_drain_step(pos, STEP, &mut save))
                {
                    pos = next;
                }
                locks.with(id, |sh| sh.snapshot_drain(&mut save));
                st.keys_done.fetch_add(n, Relaxed);
                self.take_side(db, &mut buf);
                if buf.len() >= FLUSH_AT {
                    fw.write(&buf)?;
                    buf.clear();
                }
            }
            // Every shard of the database is done: nothing more can arrive for it.
            self.take_side(db, &mut buf);
        }
        fw.write(&buf)?;
        let total = fw.bytes_written() + 9;
        let mut w = fw.finish()?;
        w.flush()?;
        Ok(total)
    }

    fn take_side(&self, db: usize, buf: &mut Vec<u8>) {
        let mut side = self.sink.side[db].lock();
        if !side.is_empty() {
            buf.extend_from_slice(&side);
            self.sink
                .server
                .status()
                .side_bytes
                .fetch_sub(side.len() as u64, Relaxed);
            *side = Vec::new();
        }
    }

    /// Detaches the snapshot from every shard it has not reached (a failed write) and
    /// marks the server idle.
    fn finish_in(&mut self, locks: &mut LockSet) {
        self.finished = true;
        let server = &self.sink.server;
        locks.each(|g| {
            if g.snapshot_pending() {
                g.snapshot_drain(|_, _| {});
            }
        });
        let st = server.status();
        st.in_progress.store(false, Relaxed);
        st.side_bytes.store(0, Relaxed);
        *st.busy.lock() = false;
        st.idle.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::server::Server;
    use crate::storage::keyspace::shard_of;
    use crate::storage::Shard;

    fn with<R>(server: &Server, key: &[u8], f: impl FnOnce(&mut Shard, u64) -> R) -> R {
        let h = server.keyspace.hash(key);
        let mut locks = LockSet::new(&server.keyspace);
        locks
            .with(shard_id(0, shard_of(h)), |sh| f(sh, h))
            .expect("an empty lock set waits")
    }

    fn set(server: &Server, key: &[u8], val: &[u8]) {
        with(server, key, |sh, h| {
            sh.insert(h, Entry::string(key, val, 0))
        });
    }

    fn del(server: &Server, key: &[u8]) {
        with(server, key, |sh, h| sh.remove(h, key));
    }

    fn get(server: &Server, key: &[u8]) -> Option<Vec<u8>> {
        with(server, key, |sh, h| {
            sh.peek(h, key).and_then(|e| e.as_str().map(<[u8]>::to_vec))
        })
    }

    #[test]
    fn a_snapshot_holds_the_values_of_its_point_whatever_changes_after() {
        let server = Server::new_shared(Config::default(), 1);
        for i in 0..2000 {
            set(&server, format!("k{i}").as_bytes(), b"old");
        }
        let (snap, marker) = Snapshot::begin(&server, |_| 42).unwrap();
        assert_eq!(marker, 42);
        assert!(Snapshot::begin(&server, |_| ()).is_err());
        for i in 0..2000 {
            let k = format!("k{i}");
            match i % 3 {
                0 => set(&server, k.as_bytes(), b"new"),
                1 => del(&server, k.as_bytes()),
                _ => {}
            }
        }
        set(&server, b"born-after", b"x");
        let mut file = Vec::new();
        snap.write_rdb(&mut file, &[]).unwrap();
        // Everything is saved again and another snapshot may start.
        drop(Snapshot::begin(&server, |_| ()).unwrap());

        let loaded = Server::new_shared(Config::default(), 1);
        crate::rdb::load(
            loaded.rdb_target(),
            &file[..],
            crate::rdb::LoadOptions::default(),
        )
        .unwrap();
        for i in 0..2000 {
            assert_eq!(
                get(&loaded, format!("k{i}").as_bytes()).as_deref(),
                Some(&b"old"[..])
            );
        }
        assert_eq!(get(&loaded, b"born-after"), None);
    }
}
