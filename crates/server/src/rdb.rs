//! Loading RDB data into the server's keyspace: at start-up, on a replica's full sync,
//! for DEBUG RELOAD and from an AOF's RDB part. The format itself (reading, writing,
//! DUMP payloads) is `kiln_formats::rdb`, re-exported here.
//!
//! [`load`] feeds a whole stream into a server's keyspace, converting collections to the
//! encodings the server's thresholds call for (as Redis does on load); [`load_file`] is the
//! start-up path.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::storage::keyspace::shard_of;
use crate::storage::Keyspace;
use crate::storage::{shard_id, Entry, LockSet, SHARDS};

pub use kiln_formats::rdb::*;

/// RDB bookkeeping the server keeps (INFO persistence, LASTSAVE): saves, which `persist`
/// drives, and loads.
pub struct RdbState {
    /// The sum of the per-thread `dirty` counters at the last successful save.
    pub dirty_at_save: AtomicU64,
    /// Unix ms of the last successful save (or of start-up).
    pub last_save_ms: AtomicU64,
    /// Unix ms of the last save attempt (for the retry delay).
    pub last_try_ms: AtomicU64,
    pub last_ok: AtomicBool,
    /// Seconds the last background save took (-1: none yet).
    pub last_bgsave_secs: AtomicI64,
    /// Unix ms the running background save started (0: none).
    pub bgsave_started_ms: AtomicU64,
    pub saves: AtomicU64,
    /// BGSAVE SCHEDULE asked for a save while another snapshot was running.
    pub scheduled: AtomicBool,
    /// Peak bytes of the last snapshot's side buffers (INFO rdb_last_cow_size).
    pub last_cow: AtomicU64,
    /// Keys loaded / skipped as expired by the last load.
    pub last_load_loaded: AtomicU64,
    pub last_load_expired: AtomicU64,
    /// SHUTDOWN NOSAVE: skip the save on exit.
    pub nosave_on_exit: AtomicBool,
    /// SHUTDOWN SAVE: save on exit even without save points.
    pub force_save_on_exit: AtomicBool,
}

impl RdbState {
    pub fn new(now_ms: u64) -> Self {
        Self {
            dirty_at_save: AtomicU64::new(0),
            last_save_ms: AtomicU64::new(now_ms),
            last_try_ms: AtomicU64::new(0),
            last_ok: AtomicBool::new(true),
            last_bgsave_secs: AtomicI64::new(-1),
            bgsave_started_ms: AtomicU64::new(0),
            saves: AtomicU64::new(0),
            scheduled: AtomicBool::new(false),
            last_cow: AtomicU64::new(0),
            last_load_loaded: AtomicU64::new(0),
            last_load_expired: AtomicU64::new(0),
            nosave_on_exit: AtomicBool::new(false),
            force_save_on_exit: AtomicBool::new(false),
        }
    }
}

/// Where a load puts what it reads: a keyspace, the encoding thresholds to build values
/// with, and the counters INFO persistence reports for the last load
/// (`rdb_last_load_keys_loaded` / `_expired`). The server hands one out
/// (`Server::rdb_target`); nothing here knows the server.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub keyspace: &'a Keyspace,
    pub limits: Limits,
    pub last_loaded: &'a AtomicU64,
    pub last_expired: &'a AtomicU64,
    /// Keys keep LFU counters (an LFU policy): a key's FREQ counts, not its IDLE.
    pub lfu: bool,
    /// Where the function libraries go (the server, whose implementation hands them to
    /// the function engine).
    pub functions: &'a dyn Functions,
}

/// What a load does with the function libraries it reads (FUNCTION2 records, and the
/// release-candidate format Redis 7.0 also reads, already turned into code).
pub trait Functions: Sync {
    /// Creates the library whose code (`#!lua name=<library>` and the rest) a record
    /// holds. Called on the parsing thread, in file order, before the keys that follow;
    /// during DEBUG RELOAD inside EXEC that thread holds every shard lock. An `Err` fails
    /// the load (`Failed loading library, <error>`, at the record's offset). The default
    /// refuses every library.
    fn function(&self, code: Vec<u8>) -> Result<(), String> {
        let _ = code;
        Err("functions are not supported".to_string())
    }
}

/// A target without functions: every library is refused (the default of [`Functions`]).
pub struct NoFunctions;

impl Functions for NoFunctions {}

/// How [`load`] treats what it reads.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Loading on a replica: keys already past their deadline are kept (the primary's DEL
    /// will remove them); a primary skips them, as Redis does.
    pub replica: bool,
    /// A key that already exists is replaced instead of failing the load (a replica
    /// loading over data it has not flushed).
    pub replace_existing: bool,
    /// Verify the CRC-64 at the end (`rdbchecksum`); a file written without one (zero) is
    /// never checked.
    pub verify_checksum: bool,
    /// The size of the data in bytes, when known (a file, a replication payload of known
    /// length): it bounds how much the loader presizes tables from the file's hints.
    pub size_hint: Option<u64>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            replica: false,
            replace_existing: false,
            verify_checksum: true,
            size_hint: None,
        }
    }
}

/// What a load read.
#[derive(Clone, Debug, Default)]
pub struct LoadStats {
    /// The file's RDB version.
    pub version: u16,
    /// Keys added to the keyspace.
    pub keys: u64,
    /// Keys skipped because their deadline had passed.
    pub expired_skipped: u64,
    /// Empty collections skipped (files written by some older versions hold them).
    pub empty_skipped: u64,
    /// Function libraries handed to the target's [`Functions`].
    pub functions: u64,
    /// The AUX fields, in file order.
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    /// Bytes read, checksum included.
    pub bytes: u64,
}

/// Keys handed to an inserter thread at a time.
const BATCH: usize = 512;
/// Most inserter threads a load uses.
const MAX_INSERTERS: usize = 8;

/// A parsed key on its way into the keyspace.
struct Pending {
    db: usize,
    hash: u64,
    /// Offset of its record (for a duplicate-key error).
    at: u64,
    entry: Entry,
    expire_ms: Option<u64>,
}

/// Loads a whole RDB stream into the server's keyspace. Keys go to the database of the
/// last SELECTDB (0 before any); see [`LoadOptions`] for expired and existing keys. The
/// keyspace is not cleared first. On error, the keys loaded so far stay (the caller
/// decides: at start-up the process exits).
///
/// The calling thread parses; inserter threads, each owning a fixed subset of the
/// shards (so a shard's keys arrive in file order), put the keys in place meanwhile.
pub fn load(to: Target<'_>, r: impl Read, opts: LoadOptions) -> Result<LoadStats, RdbError> {
    let mut rd = Reader::new(r)?;
    load_from(to, &mut rd, opts)
}

/// [`load`] into shards a command already holds, all of them (DEBUG RELOAD inside EXEC):
/// the calling thread inserts too, since inserter threads would wait on those locks.
pub fn load_held(
    to: Target<'_>,
    locks: &mut LockSet,
    r: impl Read,
    opts: LoadOptions,
) -> Result<LoadStats, RdbError> {
    if !locks.holds_all() {
        debug_assert!(locks.is_empty(), "load_held needs every shard or none");
        return load(to, r, opts);
    }
    let mut rd = Reader::new(r)?;
    rd.set_limits(to.limits);
    rd.set_verify_checksum(opts.verify_checksum);
    let mut stats = LoadStats {
        version: rd.version(),
        ..LoadStats::default()
    };
    let never = std::sync::atomic::AtomicBool::new(false);
    parse_into(
        to,
        &mut rd,
        &opts,
        &mut stats,
        Inserters::Inline(locks),
        &never,
    )?;
    finish_load(to, &rd, stats)
}

/// Where parsed keys go: to inserter threads (each owning a subset of the shards), or
/// straight into shards the caller holds.
enum Inserters<'x, 'l> {
    Threads(&'x [std::sync::mpsc::SyncSender<Vec<Pending>>]),
    Inline(&'x mut LockSet<'l>),
}

impl Inserters<'_, '_> {
    fn count(&self) -> usize {
        match self {
            Inserters::Threads(s) => s.len(),
            Inserters::Inline(_) => 1,
        }
    }

    fn send(
        &mut self,
        w: usize,
        batch: Vec<Pending>,
        at: u64,
        replace: bool,
    ) -> Result<(), RdbError> {
        match self {
            // An inserter only stops receiving after the scope ends, so a send cannot
            // fail; if it ever did, the keys would be missing, so report it.
            Inserters::Threads(s) => s[w]
                .send(batch)
                .map_err(|_| RdbError::corrupt(at, "the key inserter stopped")),
            Inserters::Inline(locks) => insert_batch(locks, batch, replace),
        }
    }

    /// Sizes each shard of `db` for `share` more keys.
    fn reserve(&mut self, to: Target<'_>, db: usize, share: usize) {
        let each = |locks: &mut LockSet| {
            for idx in 0..SHARDS {
                locks.with(shard_id(db, idx), |sh| sh.reserve(share));
            }
        };
        match self {
            Inserters::Inline(locks) => each(locks),
            Inserters::Threads(_) => each(&mut LockSet::new(to.keyspace)),
        }
    }
}

/// [`load`] from a reader the caller keeps: after a successful load,
/// [`Reader::into_parts`] hands back the bytes that followed the snapshot (a replica's
/// stream goes on after the RDB). The reader's limits and checksum setting are replaced by
/// the server's and `opts`'.
pub fn load_from<R: Read>(
    to: Target<'_>,
    rd: &mut Reader<R>,
    opts: LoadOptions,
) -> Result<LoadStats, RdbError> {
    rd.set_limits(to.limits);
    rd.set_verify_checksum(opts.verify_checksum);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .clamp(1, MAX_INSERTERS);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let insert_error: parking_lot::Mutex<Option<RdbError>> = parking_lot::Mutex::new(None);
    let mut stats = LoadStats {
        version: rd.version(),
        ..LoadStats::default()
    };
    let parsed = std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Pending>>(16);
            senders.push(tx);
            let (failed, insert_error) = (&failed, &insert_error);
            scope.spawn(move || {
                for batch in rx {
                    if failed.load(Relaxed) {
                        continue;
                    }
                    let mut locks = LockSet::new(to.keyspace);
                    if let Err(e) = insert_batch(&mut locks, batch, opts.replace_existing) {
                        failed.store(true, Relaxed);
                        let mut slot = insert_error.lock();
                        if slot.as_ref().is_none_or(|old| e.offset < old.offset) {
                            *slot = Some(e);
                        }
                    }
                }
            });
        }
        let result = parse_into(
            to,
            rd,
            &opts,
            &mut stats,
            Inserters::Threads(&senders),
            &failed,
        );
        // Closing the channels lets the inserters finish; the scope waits for them.
        drop(senders);
        result
    });
    // The error earliest in the data wins: a duplicate key found by an inserter can
    // precede the point where the parser stopped.
    let insert_error = insert_error.into_inner();
    match (parsed, insert_error) {
        (Err(p), Some(i)) => return Err(if i.offset < p.offset { i } else { p }),
        (Err(p), None) => return Err(p),
        (Ok(()), Some(i)) => return Err(i),
        (Ok(()), None) => {}
    }
    finish_load(to, rd, stats)
}

/// The statistics of a load that succeeded, recorded for INFO persistence.
fn finish_load<R: Read>(
    to: Target<'_>,
    rd: &Reader<R>,
    mut stats: LoadStats,
) -> Result<LoadStats, RdbError> {
    stats.empty_skipped = rd.empty_skipped();
    stats.bytes = rd.offset();
    // INFO persistence rdb_last_load_keys_loaded / _expired describe the last load.
    to.last_loaded.store(stats.keys, Relaxed);
    to.last_expired.store(stats.expired_skipped, Relaxed);
    Ok(stats)
}

/// The parsing side of [`load`]: reads every record, handles the opcodes, and sends keys
/// in batches to the inserter that owns their shard. Stops early when an inserter failed.
fn parse_into<R: Read>(
    to: Target<'_>,
    rd: &mut Reader<R>,
    opts: &LoadOptions,
    stats: &mut LoadStats,
    mut inserters: Inserters,
    failed: &std::sync::atomic::AtomicBool,
) -> Result<(), RdbError> {
    let now = crate::clock::now_ms();
    let stamp = crate::storage::access::stamp(now, to.lfu);
    let dbs = &to.keyspace.dbs;
    let workers = inserters.count();
    let mut batches: Vec<Vec<Pending>> = (0..workers).map(|_| Vec::new()).collect();
    let replace = opts.replace_existing;
    let mut db = 0usize;
    loop {
        if failed.load(Relaxed) {
            return Ok(());
        }
        let at = rd.offset();
        match rd.next_record()? {
            Record::Aux(k, v) => stats.aux.push((k, v)),
            Record::SelectDb(n) => {
                if n >= dbs.len() {
                    return Err(RdbError::corrupt(
                        at,
                        format!(
                            "the data selects database {n}, but the server has {} databases",
                            dbs.len()
                        ),
                    ));
                }
                db = n;
            }
            Record::ResizeDb { keys, .. } => {
                // Size each shard's index for its share of the database up front, instead
                // of growing it (rehashing every key) step by step. The hint is input, so
                // it is capped by what the data can hold (a key record takes at least 3
                // bytes); a real load grows the tables anyway.
                let cap = opts.size_hint.map_or(1 << 20, |n| n / 3);
                let share = (keys.min(cap) as usize / SHARDS) * 9 / 8;
                if share > 0 {
                    inserters.reserve(to, db, share);
                }
            }
            Record::Function(code) => {
                to.functions
                    .function(code)
                    .map_err(|e| RdbError::corrupt(at, format!("Failed loading library, {e}")))?;
                stats.functions += 1;
            }
            Record::Key {
                key,
                value,
                expire_ms,
                idle,
                freq,
            } => {
                if !opts.replica && expire_ms.is_some_and(|t| t < now) {
                    stats.expired_skipped += 1;
                    continue;
                }
                let key_lru = crate::storage::access::restored(stamp, idle, freq);
                let hash = to.keyspace.hash(&key);
                let w = shard_of(hash) % workers;
                batches[w].push(Pending {
                    db,
                    hash,
                    at,
                    entry: Entry::new(&key, value, key_lru),
                    expire_ms,
                });
                if batches[w].len() >= BATCH {
                    let full = std::mem::replace(&mut batches[w], Vec::with_capacity(BATCH));
                    inserters.send(w, full, at, replace)?;
                }
                stats.keys += 1;
            }
            Record::End => break,
        }
    }
    let end = rd.offset();
    for (w, batch) in batches.into_iter().enumerate() {
        if !batch.is_empty() {
            inserters.send(w, batch, end, replace)?;
        }
    }
    Ok(())
}

/// The inserting side of [`load`]: puts a batch of keys in place, refusing a key that is
/// already there unless `replace`.
fn insert_batch(locks: &mut LockSet, batch: Vec<Pending>, replace: bool) -> Result<(), RdbError> {
    for p in batch {
        let id = shard_id(p.db, shard_of(p.hash));
        let at = p.at;
        let inserted = locks.with(id, |sh| {
            let key_for_ttl = p.expire_ms.map(|t| (t, Box::<[u8]>::from(p.entry.key())));
            // One probe: the insert reports a key that was already there.
            if let Some(old) = sh.insert(p.hash, p.entry) {
                if !replace {
                    return Err(RdbError::corrupt(
                        p.at,
                        format!(
                            "duplicate key '{}' in database {}",
                            String::from_utf8_lossy(old.key()),
                            p.db
                        ),
                    ));
                }
            }
            if let Some((t, key)) = key_for_ttl {
                sh.set_expire(p.hash, &key, t);
            }
            Ok(())
        });
        inserted.unwrap_or_else(|| Err(RdbError::corrupt(at, "a shard could not be locked")))?;
    }
    Ok(())
}
