//! The keyspace: databases split into shards, each shard a hash table behind its own lock.
//!
//! A key's 64-bit hash picks its shard (top [`SHARD_BITS`] bits) and orders it inside the
//! shard. Commands lock only the shards their keys live in (see `command::locks`), so
//! commands on different shards run in parallel on different threads, and a multi-key command
//! locks all of its shards, in ascending order, for its whole duration: it is atomic.
//!
//! The same hash doubles as the SCAN cursor: a cursor is a position in hash space, and a SCAN
//! call returns the keys with the next hashes. Because a key's hash never changes, the
//! guarantee Redis gives (every key present for the whole scan is returned at least once) holds
//! however the tables grow or shrink in between.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use parking_lot::Mutex;
use std::hash::BuildHasher as _;

use super::entry::{Entry, META_EXPIRE, META_SNAP};
use super::table::{table_hash, Table};

/// log2 of the number of shards per database.
pub const SHARD_BITS: u32 = 8;
/// Shards per database.
pub const SHARDS: usize = 1 << SHARD_BITS;

/// A key as it was at some point: its entry and deadline (see [`Shard::save_key`]).
pub struct SavedKey {
    entry: Entry,
    at: Option<u64>,
}

/// The hasher every shard uses, seeded randomly once per process (HashDoS resistance) and
/// then fixed, so hashes (and SCAN cursors) are stable for the life of the process.
///
/// In cluster mode (`slots`) the top [`crate::slot::SLOT_BITS`] bits of a hash are the key's
/// hash slot and the rest come from the seeded hash: a slot's keys then share a shard
/// (64 slots per shard), the shard's table can list them (`Shard::keys_in_slot`), and SCAN
/// goes slot by slot.
#[derive(Clone, Copy)]
pub struct KeyHasher {
    state: foldhash::fast::FixedState,
    slots: bool,
}

impl KeyHasher {
    pub fn with_seed(seed: u64) -> Self {
        Self::new(seed, false)
    }

    pub fn new(seed: u64, slots: bool) -> Self {
        Self {
            state: foldhash::fast::FixedState::with_seed(seed),
            slots,
        }
    }

    /// Whether hashes carry the key's slot (cluster mode).
    #[inline]
    pub fn slots(&self) -> bool {
        self.slots
    }

    #[inline]
    pub fn hash_one(&self, key: &[u8]) -> u64 {
        let h = self.state.hash_one(key);
        if self.slots {
            let bits = crate::slot::SLOT_BITS;
            (u64::from(crate::slot::key_slot(key)) << (64 - bits)) | (h >> bits)
        } else {
            h
        }
    }
}

/// Shard index of a key hash.
#[inline]
pub fn shard_of(h: u64) -> usize {
    (h >> (64 - SHARD_BITS)) as usize
}

/// Where a shard sends a key it is about to change while a snapshot still needs the key's
/// old value (see `snapshot`): `expire` is the key's deadline in unix ms.
pub trait Preserve: Send + Sync {
    fn preserve(&self, db: usize, entry: &Entry, expire: Option<u64>);
}

/// All databases.
pub struct Keyspace {
    pub dbs: Box<[Db]>,
    hasher: KeyHasher,
    /// Shared by every shard: see [`Keyspace::set_delete_expired`].
    delete_expired: Arc<AtomicBool>,
    /// Every lock set passes it before its first shard; a script takes it whole (see
    /// [`crate::locks::Gate`]).
    pub gate: crate::locks::Gate,
}

impl Keyspace {
    pub fn new(databases: usize) -> Self {
        Self::with_slots(databases, false)
    }

    /// A keyspace whose key hashes carry hash slots (cluster mode: see [`KeyHasher`]).
    pub fn with_slots(databases: usize, slots: bool) -> Self {
        let hasher = KeyHasher::new(rand::random(), slots);
        let delete_expired = Arc::new(AtomicBool::new(true));
        Self {
            dbs: (0..databases)
                .map(|i| Db::new(hasher, i, &delete_expired))
                .collect(),
            hasher,
            delete_expired,
            gate: crate::locks::Gate::new(),
        }
    }

    /// Whether shards delete keys whose deadline passed (a primary), or only hide them (a
    /// replica, which waits for its primary's DEL). One flag for the whole keyspace, so
    /// switching roles locks no shard.
    pub fn set_delete_expired(&self, on: bool) {
        self.delete_expired.store(on, Ordering::Relaxed);
    }

    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }
}

/// One database: [`SHARDS`] independently locked shards.
pub struct Db {
    /// Reachable only through a [`super::LockSet`], which knows what its holder holds.
    shards: Box<[CachePadded<Mutex<Shard>>]>,
}

impl Db {
    pub(super) fn shard_mutex(&self, idx: usize) -> &Mutex<Shard> {
        &self.shards[idx]
    }

    fn new(hasher: KeyHasher, index: usize, delete_expired: &Arc<AtomicBool>) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    CachePadded::new(Mutex::new(Shard::new(
                        hasher,
                        index,
                        delete_expired.clone(),
                    )))
                })
                .collect(),
        }
    }
}

struct Expire {
    key: Box<[u8]>,
    at: u64,
}

/// The server-wide order in which keys with waiters were signalled ready. Only a key that
/// has waiters draws a number, so commands on keys nobody waits for never touch it.
static READY_ORDER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn next_ready() -> u64 {
    READY_ORDER.fetch_add(1, Ordering::Relaxed)
}

/// Bytes of one bucket of a shard's expires table (an [`Expire`] and its control byte); a
/// key with a TTL also owns a copy of its name on the heap.
pub const EXPIRE_BUCKET: usize = std::mem::size_of::<Expire>() + 1;

/// One shard: its keys, and the deadlines of those that have a TTL.
pub struct Shard {
    table: Table,
    expires: HashTable<Expire>,
    hasher: KeyHasher,
    /// Keys this shard deleted because they had expired, since the dispatcher last drained
    /// it: the dispatcher turns them into `expired` events, DELs for replicas, and stats.
    pub expired: Vec<Box<[u8]>>,
    /// How many of `expired` were already appended to the write feed as DELs.
    pub expired_fed: usize,
    /// How many of `expired` already had their `expired` event raised (the dispatcher raises
    /// them before a command's next event or `keymiss`, as Redis does, not at release).
    pub expired_told: usize,
    /// When false (a replica), logically expired keys are hidden but not deleted: only the
    /// primary's DEL removes them. Shared by the keyspace's shards.
    delete_expired: Arc<AtomicBool>,
    /// Blocked clients (by waiter id) per key of this shard, first come first served.
    blocked: HashMap<Box<[u8]>, VecDeque<u64>>,
    /// Keys with waiters that received data during the current command, each with its
    /// place in the server-wide order of signals ([`READY_ORDER`]); the dispatcher serves
    /// their waiters, in that order, before the command's locks are released.
    ready: Vec<(u64, Box<[u8]>)>,
    /// WATCHed keys of this shard: each watcher's "transaction is dirty" flag.
    watched: HashMap<Box<[u8]>, Vec<Arc<AtomicBool>>>,
    /// The database this shard belongs to (keyspace events name it).
    pub db: usize,
    /// Record keys this shard creates in `created` (set by the dispatcher while it holds the
    /// shard and `new` keyspace events are enabled).
    pub track_new: bool,
    /// Keys created while `track_new` was set: the dispatcher turns them into `new` events,
    /// which Redis raises when the key is added, before the command's own event.
    pub created: Vec<Box<[u8]>>,
    /// The snapshot being written, while some keys of this shard are not saved in it yet.
    snap: Option<Arc<dyn Preserve>>,
    /// The `META_SNAP` value of entries saved in (or not part of) the current snapshot.
    /// Equal for every shard; flipped at each snapshot point, which makes every key
    /// "not saved yet".
    snap_saved: u8,
    /// Whether `get` hands out entries to a command that may modify them (set by the
    /// dispatcher for write commands): such an entry is saved to a pending snapshot first.
    pub cow: bool,
}

impl Shard {
    fn new(hasher: KeyHasher, db: usize, delete_expired: Arc<AtomicBool>) -> Self {
        Self {
            table: Table::default(),
            expires: HashTable::new(),
            hasher,
            expired: Vec::new(),
            expired_fed: 0,
            expired_told: 0,
            delete_expired,
            blocked: HashMap::new(),
            ready: Vec::new(),
            watched: HashMap::new(),
            db,
            track_new: false,
            created: Vec::new(),
            snap: None,
            snap_saved: 0,
            cow: false,
        }
    }

    // --- snapshots (see the server's `snapshot` module) -----------------------------------------------

    /// The snapshot point: every key of the shard becomes "not saved yet" in the snapshot
    /// that `sink` receives changed keys for.
    pub fn snapshot_begin(&mut self, sink: Arc<dyn Preserve>) {
        self.snap_saved ^= META_SNAP;
        self.snap = Some(sink);
    }

    /// Whether a snapshot still needs keys of this shard.
    pub fn snapshot_pending(&self) -> bool {
        self.snap.is_some()
    }

    /// Hands every key not yet saved to `f` (with its deadline), marks it saved, and
    /// detaches the snapshot: the snapshot writer's pass over the shard.
    pub fn snapshot_drain(&mut self, mut f: impl FnMut(&Entry, Option<u64>)) {
        if self.snap.take().is_none() {
            return;
        }
        let saved = self.snap_saved;
        let (expires, hasher) = (&self.expires, self.hasher);
        for e in self.table.iter_mut() {
            if e.meta() & META_SNAP != saved {
                let expire = if e.has_expire() {
                    let th = table_hash(hasher.hash_one(e.key()));
                    expires.find(th, |x| &*x.key == e.key()).map(|x| x.at)
                } else {
                    None
                };
                f(e, expire);
                e.set_meta((e.meta() & !META_SNAP) | saved);
            }
        }
    }

    /// Saves the unsaved keys at storage positions `from..from + max` through `f`, marking
    /// them saved; returns where to continue, or None past the end. Lets the writer give
    /// the lock back between steps. A removal meanwhile may move an unsaved entry behind
    /// the cursor, so the writer ends with [`Shard::snapshot_drain`], which catches those.
    pub fn snapshot_drain_step(
        &mut self,
        from: usize,
        max: usize,
        mut f: impl FnMut(&Entry, Option<u64>),
    ) -> Option<usize> {
        if self.snap.is_none() || from >= self.table.len() {
            return None;
        }
        let saved = self.snap_saved;
        let end = (from + max).min(self.table.len());
        // Saving is bound by memory latency (an entry's object, key and value are three
        // heap blocks): touch the whole step first so those misses overlap.
        let mut warm = 0u8;
        for i in from..end {
            warm ^= self.table.at(i).warm();
        }
        std::hint::black_box(warm);
        for i in from..end {
            let e = self.table.at(i);
            if e.meta() & META_SNAP == saved {
                continue;
            }
            let expire = if e.has_expire() {
                self.expire_of(self.hash(e.key()), e.key())
            } else {
                None
            };
            f(e, expire);
            let e = self.table.at_mut(i);
            e.set_meta((e.meta() & !META_SNAP) | saved);
        }
        Some(end)
    }

    /// Before `key` changes: if a snapshot still needs its current value, save it now.
    #[inline]
    fn preserve(&mut self, h: u64, key: &[u8]) {
        if self.snap.is_some() {
            self.preserve_slow(h, key);
        }
    }

    #[cold]
    fn preserve_slow(&mut self, h: u64, key: &[u8]) {
        let th = table_hash(h);
        let saved = self.snap_saved;
        let Some(e) = self.table.find(th, key) else {
            return;
        };
        if e.meta() & META_SNAP == saved {
            return;
        }
        let expire = if e.has_expire() {
            self.expire_of(h, key)
        } else {
            None
        };
        if let Some(sink) = &self.snap {
            sink.preserve(self.db, e, expire);
        }
        if let Some(e) = self.table.find_mut(th, key) {
            e.set_meta((e.meta() & !META_SNAP) | saved);
        }
    }

    /// Saves every key a pending snapshot still needs (before the whole shard changes:
    /// FLUSHDB, SWAPDB).
    fn preserve_all(&mut self) {
        if let Some(sink) = self.snap.clone() {
            let db = self.db;
            self.snapshot_drain(|e, expire| sink.preserve(db, e, expire));
        }
    }

    /// Number of keys, including logically expired ones not yet reclaimed.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// (buckets, keys) of the key index and (buckets, deadlines) of the expires table
    /// (DEBUG HTSTATS).
    pub fn table_stats(&self) -> [(usize, usize); 2] {
        [
            (self.table.buckets(), self.table.len()),
            (
                crate::util::table_buckets(&self.expires),
                self.expires.len(),
            ),
        ]
    }

    /// Number of keys in hash slot `slot`, including logically expired ones, as Redis counts
    /// them (cluster mode, where the slot's keys all live in this shard; 0 otherwise).
    pub fn count_in_slot(&self, slot: u16) -> usize {
        self.table.slot_count(slot)
    }

    /// Up to `max` keys of hash slot `slot` (cluster mode; none otherwise), without
    /// walking any other slot's keys.
    pub fn keys_in_slot(&self, slot: u16, max: usize) -> Vec<Box<[u8]>> {
        self.table
            .slot_entries(slot)
            .take(max)
            .map(|e| e.key().into())
            .collect()
    }

    /// Makes room for `additional` more keys (an RDB load announces its database sizes).
    pub fn reserve(&mut self, additional: usize) {
        let hasher = self.hasher;
        self.table.reserve(additional, hasher);
    }

    /// Number of keys with a TTL.
    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    /// Hash of a key (the same the keyspace computes).
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The deadline of `key` in unix ms, if it has one.
    pub fn expire_of(&self, h: u64, key: &[u8]) -> Option<u64> {
        self.expires
            .find(table_hash(h), |x| &*x.key == key)
            .map(|x| x.at)
    }

    /// Whether `e` (an entry of this shard) is past its deadline.
    pub fn is_expired(&self, e: &Entry, now: u64) -> bool {
        e.has_expire()
            && self
                .expire_of(self.hash(e.key()), e.key())
                .is_some_and(|at| at <= now)
    }

    /// Looks a key up for a command, deleting it if it has expired (lazy expiry).
    #[inline]
    pub fn get(&mut self, h: u64, key: &[u8], now: u64) -> Option<&mut Entry> {
        let th = table_hash(h);
        let expired = {
            let e = self.table.find(th, key)?;
            e.has_expire() && self.expire_of(h, key).is_some_and(|at| at <= now)
        };
        if expired {
            if self.delete_expired.load(Ordering::Relaxed) {
                self.delete_expired_key(h, key.into());
            }
            return None;
        }
        if self.cow {
            self.preserve(h, key);
        }
        self.table.find_mut(th, key)
    }

    /// Deletes `key`, found past its deadline, and records it in `self.expired` (whose
    /// owner feeds its DEL and raises its event). The one way an expired key leaves.
    ///
    /// Watchers are not touched: a transaction judges expiry itself at EXEC, by the
    /// deadline it saw at WATCH. As in Redis 7.0, a key that was already expired when
    /// watched and is then deleted is no change, and one that was live when watched aborts
    /// the transaction once its deadline passed, deleted yet or not.
    fn delete_expired_key(&mut self, h: u64, key: Box<[u8]>) {
        self.remove(h, &key);
        self.expired.push(key);
    }

    /// Looks a key up without expiring it (DEBUG, persistence).
    pub fn peek(&self, h: u64, key: &[u8]) -> Option<&Entry> {
        self.table.find(table_hash(h), key)
    }

    /// Whether a live key exists.
    pub fn contains(&mut self, h: u64, key: &[u8], now: u64) -> bool {
        self.get(h, key, now).is_some()
    }

    /// Stores `entry`, replacing any value and TTL the key had (Redis `setKey`).
    pub fn insert(&mut self, h: u64, mut entry: Entry) -> Option<Entry> {
        self.preserve(h, entry.key());
        entry.set_meta((entry.meta() & !(META_EXPIRE | META_SNAP)) | self.snap_saved);
        let th = table_hash(h);
        if !self.blocked.is_empty() {
            self.signal_ready(entry.key());
        }
        if let Some(slot) = self.table.find_mut(th, entry.key()) {
            // Overwrite in place: one probe, no shrink/grow churn.
            let old = std::mem::replace(slot, entry);
            if old.has_expire() {
                if let Ok(x) = self.expires.find_entry(th, |x| &*x.key == old.key()) {
                    x.remove();
                }
            }
            return Some(old);
        }
        if self.track_new {
            self.created.push(entry.key().into());
        }
        self.table.insert_new(h, entry, self.hasher);
        None
    }

    /// Stores `entry`, keeping the TTL the key had (SET KEEPTTL, SETRANGE-style updates).
    pub fn insert_keep_ttl(&mut self, h: u64, mut entry: Entry) -> Option<Entry> {
        self.preserve(h, entry.key());
        entry.set_meta((entry.meta() & !META_SNAP) | self.snap_saved);
        let th = table_hash(h);
        if let Some(slot) = self.table.find_mut(th, entry.key()) {
            entry.set_meta((entry.meta() & !META_EXPIRE) | (slot.meta() & META_EXPIRE));
            return Some(std::mem::replace(slot, entry));
        }
        entry.set_meta(entry.meta() & !META_EXPIRE);
        if !self.blocked.is_empty() {
            self.signal_ready(entry.key());
        }
        if self.track_new {
            self.created.push(entry.key().into());
        }
        self.table.insert_new(h, entry, self.hasher);
        None
    }

    /// Removes a key and its TTL.
    pub fn remove(&mut self, h: u64, key: &[u8]) -> Option<Entry> {
        self.preserve(h, key);
        let th = table_hash(h);
        let e = self.table.remove(h, key, self.hasher)?;
        // A waiter may be owed an answer now that the key is gone (XREADGROUP's UNBLOCKED).
        self.signal_ready(key);
        if e.has_expire() {
            if let Ok(x) = self.expires.find_entry(th, |x| &*x.key == key) {
                x.remove();
            }
        }
        self.maybe_shrink();
        Some(e)
    }

    fn maybe_shrink(&mut self) {
        // Give memory back when a table is mostly empty, as Redis's dict resize does.
        let hasher = self.hasher;
        self.table.maybe_shrink(hasher);
        if self.expires.is_empty() && self.expires.capacity() > 0 {
            self.expires = HashTable::new();
        }
        let cap = self.expires.capacity();
        if cap > 64 && self.expires.len() * 8 < cap {
            self.expires.shrink_to(self.expires.len() * 2, move |x| {
                table_hash(hasher.hash_one(&x.key))
            });
        }
    }

    /// Sets the deadline of an existing key. Returns false if the key does not exist.
    pub fn set_expire(&mut self, h: u64, key: &[u8], at: u64) -> bool {
        self.preserve(h, key);
        let th = table_hash(h);
        let Some(e) = self.table.find_mut(th, key) else {
            return false;
        };
        if e.has_expire() {
            if let Some(x) = self.expires.find_mut(th, |x| &*x.key == key) {
                x.at = at;
                return true;
            }
        }
        e.set_meta(e.meta() | META_EXPIRE);
        let hasher = self.hasher;
        self.expires.insert_unique(
            th,
            Expire {
                key: key.into(),
                at,
            },
            move |x| table_hash(hasher.hash_one(&x.key)),
        );
        true
    }

    /// A copy of `key` as it is now, to put back with [`Shard::restore_key`]: its entry
    /// and deadline, or `None` if it does not exist (a key past its deadline is expired
    /// first, as a lookup would). `None` in the outer option when the value is bigger than
    /// `max_heap` bytes, which the caller would rather not copy.
    pub fn save_key(
        &mut self,
        h: u64,
        key: &[u8],
        now: u64,
        max_heap: usize,
    ) -> Option<Option<SavedKey>> {
        let Some(e) = self.get(h, key, now) else {
            return Some(None);
        };
        if e.heap_size() > max_heap {
            return None;
        }
        let entry = e.duplicate();
        let at = if entry.has_expire() {
            self.expire_of(h, key)
        } else {
            None
        };
        Some(Some(SavedKey { entry, at }))
    }

    /// Puts `key` back as [`Shard::save_key`] found it: its saved entry and deadline, or
    /// no key at all.
    pub fn restore_key(&mut self, h: u64, key: &[u8], saved: Option<SavedKey>) {
        match saved {
            None => {
                self.remove(h, key);
            }
            Some(SavedKey { entry, at }) => {
                self.insert(h, entry);
                if let Some(at) = at {
                    self.set_expire(h, key, at);
                }
            }
        }
    }

    /// Removes a key's TTL. Returns whether it had one.
    pub fn persist(&mut self, h: u64, key: &[u8]) -> bool {
        self.preserve(h, key);
        let th = table_hash(h);
        let Some(e) = self.table.find_mut(th, key) else {
            return false;
        };
        if !e.has_expire() {
            return false;
        }
        e.set_meta(e.meta() & !META_EXPIRE);
        if let Ok(x) = self.expires.find_entry(th, |x| &*x.key == key) {
            x.remove();
        }
        true
    }

    /// Every entry, including logically expired ones (filter with [`Shard::is_expired`]).
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.table.iter()
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.preserve_all();
        self.touch_all_watched();
        self.table = Table::default();
        self.expires = HashTable::new();
        self.signal_all_waited();
    }

    /// Moves this shard's contents out, leaving it empty (FLUSHALL ASYNC, SWAPDB).
    pub fn swap_contents(&mut self, other: &mut Shard) {
        self.preserve_all();
        other.preserve_all();
        self.touch_all_watched();
        other.touch_all_watched();
        std::mem::swap(&mut self.table, &mut other.table);
        std::mem::swap(&mut self.expires, &mut other.expires);
        // Waiters stay with their database: each learns what its key holds now.
        self.signal_all_waited();
        other.signal_all_waited();
    }

    /// Moves this shard's keys into a new detached shard, leaving this one empty: the
    /// caller can drop them elsewhere (FLUSHALL ASYNC) or swap them into another shard
    /// (SWAPDB).
    pub fn take(&mut self) -> Shard {
        let mut out = Shard::new(self.hasher, self.db, self.delete_expired.clone());
        out.snap_saved = self.snap_saved;
        self.swap_contents(&mut out);
        out
    }

    /// One SCAN step over this shard: calls `f` for each live key with hash >= `from`, in hash
    /// order, stopping after `count` keys (plus any that tie with the last hash, so a cursor
    /// never splits a tie). Keys found logically expired on the way count towards `count`
    /// and are deleted, as Redis's SCAN does. Returns the hash to resume from, or `None` when
    /// the rest of the shard was covered.
    pub fn scan_page(
        &mut self,
        from: u64,
        count: usize,
        now: u64,
        mut f: impl FnMut(&Entry),
    ) -> Option<u64> {
        let count = count.max(1);
        let mut page: Vec<(u64, &Entry)> = self
            .table
            .iter()
            .filter_map(|e| {
                let h = self.hash(e.key());
                (h >= from).then_some((h, e))
            })
            .collect();
        let mut resume = None;
        if page.len() > count {
            page.select_nth_unstable_by_key(count - 1, |x| x.0);
            let last = page[count - 1].0;
            // Everything after `count - 1` hashes >= last: keep the ties, drop the rest.
            let mut keep = count;
            for i in count..page.len() {
                if page[i].0 == last {
                    page.swap(keep, i);
                    keep += 1;
                }
            }
            if keep < page.len() {
                // Some hash is above `last`, so `last + 1` cannot overflow.
                resume = Some(last + 1);
            }
            page.truncate(keep);
        }
        page.sort_unstable_by_key(|x| x.0);
        let mut dead: Vec<Box<[u8]>> = Vec::new();
        for &(h, e) in &page {
            if e.has_expire() && self.expire_of(h, e.key()).is_some_and(|at| at <= now) {
                if self.delete_expired.load(Ordering::Relaxed) {
                    dead.push(e.key().into());
                }
            } else {
                f(e);
            }
        }
        drop(page);
        for k in dead {
            self.delete_expired_key(self.hash(&k), k);
        }
        resume
    }

    /// Active expiry step: examines up to `max` keys with a TTL from position `pos` of the
    /// expires table (its iteration order) and deletes those past their deadline, appending
    /// them to `self.expired`. Returns (next position, examined, deleted). The caller keeps
    /// the position per shard, so successive calls sweep the whole table rather than
    /// re-examining its first keys; a position past the end restarts at 0.
    pub fn expire_sweep(&mut self, now: u64, pos: usize, max: usize) -> (usize, usize, usize) {
        if self.expires.is_empty() || !self.delete_expired.load(Ordering::Relaxed) {
            return (0, 0, 0);
        }
        let start = if pos >= self.expires.len() { 0 } else { pos };
        let mut dead: Vec<Box<[u8]>> = Vec::new();
        let mut examined = 0;
        for x in self.expires.iter().skip(start).take(max) {
            examined += 1;
            if x.at <= now {
                dead.push(x.key.clone());
            }
        }
        let deleted = dead.len();
        for k in dead {
            self.delete_expired_key(self.hash(&k), k);
        }
        // Removing entries does not move the others, so the unexamined ones now start
        // `deleted` places earlier (a shrink rehashes; the sweep then just restarts unevenly).
        let mut next = start + examined - deleted;
        if next >= self.expires.len() {
            next = 0;
        }
        (next, examined, deleted)
    }

    /// Samples up to `n` keys at random for eviction: any key, or with `volatile` only keys
    /// with a TTL. `f` gets each sampled entry and, for a volatile sample, its deadline.
    /// Entries sit densely in the table, so a pick costs one random index; when keys with a
    /// TTL are a small part of the shard, a run of its expires table from a random point
    /// stands in for picks that would mostly miss.
    pub fn sample(&self, n: usize, volatile: bool, mut f: impl FnMut(&Entry, Option<u64>)) {
        let len = self.table.len();
        if len == 0 || n == 0 || (volatile && self.expires.is_empty()) {
            return;
        }
        let random = crate::access::random_u64;
        if !volatile {
            for _ in 0..n {
                f(self.table.at((random() % len as u64) as usize), None);
            }
            return;
        }
        if self.expires.len() * 4 >= len {
            let mut found = 0;
            for _ in 0..n * 8 {
                let e = self.table.at((random() % len as u64) as usize);
                if e.has_expire() {
                    f(e, self.expire_of(self.hash(e.key()), e.key()));
                    found += 1;
                    if found == n {
                        return;
                    }
                }
            }
            return;
        }
        let start = (random() % self.expires.len().min(1024) as u64) as usize;
        for x in self.expires.iter().skip(start).take(n) {
            if let Some(e) = self.table.find(table_hash(self.hash(&x.key)), &x.key) {
                f(e, Some(x.at));
            }
        }
    }

    /// A uniformly random live key of this shard, if any (RANDOMKEY).
    pub fn random_key(&mut self, now: u64) -> Option<Vec<u8>> {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        // A few uniform picks (O(1) each: entries are stored densely). An expired key
        // picked is deleted as a lookup would delete it (Redis's RANDOMKEY does the same,
        // so its DEL reaches the AOF and replicas); then fall back to any live key.
        for _ in 0..8 {
            let n = self.table.len();
            if n == 0 {
                return None;
            }
            let e = self.table.at(rng.gen_range(0..n));
            if !self.is_expired(e, now) {
                return Some(e.key().to_vec());
            }
            let key = e.key().to_vec();
            // Does nothing on a replica, which waits for its primary's DEL.
            self.get(self.hash(&key), &key, now);
        }
        self.table
            .iter()
            .find(|e| !self.is_expired(e, now))
            .map(|e| e.key().to_vec())
    }

    /// Registers waiter `id` as blocked on `key` (at the back of the queue).
    pub fn add_waiter(&mut self, key: &[u8], id: u64) {
        self.blocked.entry(key.into()).or_default().push_back(id);
    }

    /// Removes waiter `id` from `key`'s queue (served, timed out, or disconnected).
    pub fn remove_waiter(&mut self, key: &[u8], id: u64) {
        if let Some(q) = self.blocked.get_mut(key) {
            q.retain(|&w| w != id);
            if q.is_empty() {
                self.blocked.remove(key);
            }
        }
    }

    /// The first waiter on `key`, if any.
    pub fn first_waiter(&self, key: &[u8]) -> Option<u64> {
        self.blocked.get(key).and_then(|q| q.front().copied())
    }

    /// Number of waiters on `key`.
    pub fn waiters(&self, key: &[u8]) -> usize {
        self.blocked.get(key).map_or(0, VecDeque::len)
    }

    /// Marks `key` as having received data, if anyone waits on it. Commands that add
    /// elements to an existing key call this; creating a key calls it automatically.
    #[inline]
    pub fn signal_ready(&mut self, key: &[u8]) {
        if !self.blocked.is_empty()
            && self.blocked.contains_key(key)
            && !self.ready.iter().any(|(_, k)| &**k == key)
        {
            self.ready.push((next_ready(), key.into()));
        }
    }

    /// Marks every key with waiters ready: the whole shard changed (FLUSHDB, SWAPDB).
    fn signal_all_waited(&mut self) {
        for key in self.blocked.keys() {
            if !self.ready.iter().any(|(_, k)| k == key) {
                self.ready.push((next_ready(), key.clone()));
            }
        }
    }

    /// The waiters on `key`, first come first.
    pub fn waiter_ids(&self, key: &[u8]) -> Vec<u64> {
        self.blocked
            .get(key)
            .map_or_else(Vec::new, |q| q.iter().copied().collect())
    }

    /// Whether any key of this shard is ready for its waiters.
    #[inline]
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Takes the keys signalled ready since the last call, each with its place in the
    /// order of signals (a command that readies keys in several shards serves them in the
    /// order it readied them, as Redis does).
    pub fn take_ready(&mut self) -> Vec<(u64, Box<[u8]>)> {
        std::mem::take(&mut self.ready)
    }

    /// Registers a WATCH of `key`: `flag` is set when the key is modified.
    pub fn watch(&mut self, key: &[u8], flag: &Arc<AtomicBool>) {
        let v = self.watched.entry(key.into()).or_default();
        if !v.iter().any(|f| Arc::ptr_eq(f, flag)) {
            v.push(flag.clone());
        }
    }

    /// Removes a WATCH registration.
    pub fn unwatch(&mut self, key: &[u8], flag: &Arc<AtomicBool>) {
        if let Some(v) = self.watched.get_mut(key) {
            v.retain(|f| !Arc::ptr_eq(f, flag));
            if v.is_empty() {
                self.watched.remove(key);
            }
        }
    }

    /// Marks every transaction watching `key` as dirty (the key was modified). O(watchers
    /// of the key); nothing at all when no key of the shard is watched.
    #[inline]
    pub fn touch_watched(&mut self, key: &[u8]) {
        if self.watched.is_empty() {
            return;
        }
        if let Some(v) = self.watched.get(key) {
            for f in v {
                f.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Marks every watcher of this shard dirty (FLUSHDB, FLUSHALL, SWAPDB).
    pub fn touch_all_watched(&mut self) {
        for v in self.watched.values() {
            for f in v {
                f.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Heap bytes of this shard's two tables themselves, `(keys, expires)`: the key table's
    /// index and entry slots, the expires table's buckets; not what entries own. O(1).
    pub fn table_memory(&self) -> (usize, usize) {
        (self.table.memory(), self.expires.capacity() * EXPIRE_BUCKET)
    }

    /// Approximate heap bytes used by this shard's tables and entries.
    pub fn memory(&self) -> usize {
        let (t, x) = self.table_memory();
        let heap: usize = self.table.iter().map(|e| e.heap_size()).sum();
        t + x + heap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard() -> Shard {
        Shard::new(KeyHasher::with_seed(1), 0, Arc::new(AtomicBool::new(true)))
    }

    #[test]
    fn insert_get_remove() {
        let mut s = shard();
        let h = s.hash(b"a");
        assert!(s.insert(h, Entry::string(b"a", b"1", 0)).is_none());
        assert_eq!(s.get(h, b"a", 0).unwrap().as_str().unwrap(), b"1");
        assert!(s.insert(h, Entry::string(b"a", b"2", 0)).is_some());
        assert_eq!(s.len(), 1);
        assert!(s.remove(h, b"a").is_some());
        assert!(s.get(h, b"a", 0).is_none());
    }

    #[test]
    fn a_saved_key_is_put_back_as_it_was() {
        let mut s = shard();
        let (ha, hb, hc) = (s.hash(b"a"), s.hash(b"b"), s.hash(b"c"));
        s.insert(ha, Entry::string(b"a", b"1", 7));
        s.set_expire(ha, b"a", 500);
        s.insert(
            hb,
            Entry::new(b"b", crate::value::Value::Str(vec![b'x'; 100]), 0),
        );
        let a = s.save_key(ha, b"a", 0, 1 << 20).unwrap();
        let b = s.save_key(hb, b"b", 0, 1 << 20).unwrap();
        let c = s.save_key(hc, b"c", 0, 1 << 20).unwrap();
        assert!(c.is_none());
        // Too big to copy under a small limit.
        assert!(s.save_key(hb, b"b", 0, 10).is_none());
        // Changed every way: overwritten without a TTL, removed, created.
        s.insert(ha, Entry::string(b"a", b"2", 0));
        s.remove(hb, b"b");
        s.insert(hc, Entry::string(b"c", b"3", 0));
        s.restore_key(ha, b"a", a);
        s.restore_key(hb, b"b", b);
        s.restore_key(hc, b"c", c);
        assert_eq!(s.get(ha, b"a", 0).unwrap().as_str().unwrap(), b"1");
        assert_eq!(s.get(ha, b"a", 0).unwrap().lru(), 7);
        assert_eq!(s.expire_of(ha, b"a"), Some(500));
        assert_eq!(
            s.get(hb, b"b", 0).unwrap().as_str().unwrap(),
            &[b'x'; 100][..]
        );
        assert!(s.get(hc, b"c", 0).is_none());
        assert_eq!(s.len(), 2);
        assert_eq!(s.expires_len(), 1);
    }

    #[test]
    fn lazy_expiry_hides_and_records() {
        let mut s = shard();
        let h = s.hash(b"a");
        s.insert(h, Entry::string(b"a", b"1", 0));
        assert!(s.set_expire(h, b"a", 100));
        assert!(s.get(h, b"a", 99).is_some());
        assert!(s.get(h, b"a", 100).is_none());
        assert_eq!(s.expired, vec![Box::from(&b"a"[..])]);
        assert_eq!(s.len(), 0);
        assert_eq!(s.expires_len(), 0);
    }

    #[test]
    fn insert_clears_ttl_but_keep_ttl_keeps_it() {
        let mut s = shard();
        let h = s.hash(b"a");
        s.insert(h, Entry::string(b"a", b"1", 0));
        s.set_expire(h, b"a", 100);
        s.insert_keep_ttl(h, Entry::string(b"a", b"2", 0));
        assert_eq!(s.expire_of(h, b"a"), Some(100));
        assert!(s.peek(h, b"a").unwrap().has_expire());
        s.insert(h, Entry::string(b"a", b"3", 0));
        assert_eq!(s.expire_of(h, b"a"), None);
        assert!(!s.peek(h, b"a").unwrap().has_expire());
    }

    #[test]
    fn scan_visits_every_key_once_across_growth() {
        let mut s = shard();
        for i in 0..1000u32 {
            let k = i.to_string();
            let h = s.hash(k.as_bytes());
            s.insert(h, Entry::string(k.as_bytes(), b"v", 0));
        }
        let mut seen = std::collections::HashSet::new();
        let mut from = 0u64;
        let mut round = 0;
        loop {
            let resume = s.scan_page(from, 10, 0, |e| {
                seen.insert(e.key().to_vec());
            });
            // Grow the table between calls: the cursor is unaffected.
            for j in 0..20u32 {
                let k = format!("new{round}-{j}");
                let h = s.hash(k.as_bytes());
                s.insert(h, Entry::string(k.as_bytes(), b"v", 0));
            }
            round += 1;
            match resume {
                Some(next) => from = next,
                None => break,
            }
        }
        for i in 0..1000u32 {
            assert!(seen.contains(i.to_string().as_bytes()));
        }
    }

    #[test]
    fn slot_lists_follow_inserts_and_removals() {
        use crate::slot::key_slot;
        // One shard of a cluster-mode keyspace holds 64 slots; put keys of several of them
        // into one shard (as the keyspace would route them) and check the lists as keys come
        // and go, removals moving other entries around.
        let mut s = Shard::new(KeyHasher::new(3, true), 0, Arc::new(AtomicBool::new(true)));
        let keys: Vec<Vec<u8>> = (0..5000u32)
            .map(|i| format!("k{i}").into_bytes())
            .filter(|k| key_slot(k) < 64)
            .collect();
        assert!(keys.len() > 10);
        for k in &keys {
            let h = s.hash(k);
            assert_eq!(crate::slot::slot_of_hash(h), key_slot(k));
            assert_eq!(shard_of(h), 0);
            s.insert(h, Entry::string(k, b"v", 0));
        }
        let expect = |s: &Shard, live: &[Vec<u8>]| {
            for slot in 0..64u16 {
                let mut want: Vec<&[u8]> = live
                    .iter()
                    .filter(|k| key_slot(k) == slot)
                    .map(|k| &k[..])
                    .collect();
                assert_eq!(s.count_in_slot(slot), want.len());
                let mut got = s.keys_in_slot(slot, usize::MAX);
                got.sort();
                want.sort();
                assert_eq!(got.iter().map(|k| &k[..]).collect::<Vec<_>>(), want);
            }
        };
        expect(&s, &keys);
        let (gone, kept): (Vec<_>, Vec<_>) = keys
            .iter()
            .cloned()
            .enumerate()
            .partition(|(i, _)| i % 3 == 1);
        for (_, k) in &gone {
            let h = s.hash(k);
            assert!(s.remove(h, k).is_some());
        }
        let kept: Vec<Vec<u8>> = kept.into_iter().map(|(_, k)| k).collect();
        expect(&s, &kept);
        assert_eq!(s.keys_in_slot(key_slot(&kept[0]), 1).len(), 1);
        for k in &kept {
            let h = s.hash(k);
            s.remove(h, k);
        }
        expect(&s, &[]);
    }
}
