//! The hash table of one shard: a small index over densely stored entries.
//!
//! A plain open-addressing table of 32-byte entries doubles its bucket array at 7/8 load, so
//! right after growing it is half empty and a key costs twice its size (at 1M keys in 256
//! shards every table sits exactly there). Here the probed table holds only `u32` positions
//! (4 bytes + 1 control byte per bucket), and the entries live in a [`Slab`] of fixed-size
//! chunks that grows by one chunk at a time. The half-empty phase then costs ~5 bytes per key
//! instead of ~33, and iteration walks dense memory.
//!
//! Removal moves the last entry into the hole (its index slot is updated), so positions are
//! not stable across removals; nothing outside this module sees them.

use hashbrown::HashTable;

use super::entry::Entry;
use super::keyspace::KeyHasher;
use super::slot::slot_of_hash;

/// Entries per slab chunk (16 KiB of entries).
const CHUNK: usize = 512;

/// Maps a key hash to the hash the index uses. The shard index lives in the top bits of the
/// key hash, which are therefore identical for every key of a shard; the multiply mixes the
/// random low bits back into the top bits that hashbrown uses for its control bytes.
#[inline]
pub(super) fn table_hash(h: u64) -> u64 {
    h.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Dense entry storage in chunks of [`CHUNK`]; the first chunk grows by doubling so that
/// small shards stay small.
#[derive(Default)]
struct Slab {
    chunks: Vec<Vec<Entry>>,
    len: usize,
}

impl Slab {
    #[inline]
    fn get(&self, i: u32) -> &Entry {
        let i = i as usize;
        &self.chunks[i / CHUNK][i % CHUNK]
    }

    #[inline]
    fn get_mut(&mut self, i: u32) -> &mut Entry {
        let i = i as usize;
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }

    fn push(&mut self, e: Entry) -> u32 {
        let c = self.len / CHUNK;
        if c == self.chunks.len() {
            self.chunks
                .push(Vec::with_capacity(if c == 0 { 4 } else { CHUNK }));
        }
        self.chunks[c].push(e);
        self.len += 1;
        (self.len - 1) as u32
    }

    fn pop(&mut self) -> Option<Entry> {
        // An empty trailing chunk is kept as a spare until the one before it shrinks, so
        // alternating insert/delete at a chunk boundary does not allocate each time.
        if self.chunks.last().is_some_and(Vec::is_empty) && self.chunks.len() > 1 {
            self.chunks.pop();
        }
        let e = self.chunks.last_mut()?.pop()?;
        self.len -= 1;
        Some(e)
    }

    fn capacity(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum()
    }
}

/// No position: the end of a slot list.
const NIL: u32 = u32::MAX;

/// Slots per shard in cluster mode (16384 slots over 256 shards).
const SHARD_SLOTS: usize = 64;

/// Cluster mode's per-slot lists over storage positions, so that counting a slot's keys is
/// a read and listing them walks only them (CLUSTER COUNTKEYSINSLOT / GETKEYSINSLOT, a
/// slot's migration). Two `u32` links per key, kept only when the hasher carries slots.
struct SlotIndex {
    head: [u32; SHARD_SLOTS],
    count: [u32; SHARD_SLOTS],
    /// For each storage position: the previous and next positions in its slot's list.
    links: Vec<[u32; 2]>,
}

impl SlotIndex {
    fn new() -> Box<Self> {
        Box::new(Self {
            head: [NIL; SHARD_SLOTS],
            count: [0; SHARD_SLOTS],
            links: Vec::new(),
        })
    }

    /// Links position `i` (just pushed, the last one) at the head of `slot`'s list.
    fn push(&mut self, slot: usize, i: u32) {
        let next = self.head[slot];
        debug_assert_eq!(self.links.len(), i as usize);
        self.links.push([NIL, next]);
        if next != NIL {
            self.links[next as usize][0] = i;
        }
        self.head[slot] = i;
        self.count[slot] += 1;
    }

    /// Unlinks position `i` from `slot`'s list.
    fn unlink(&mut self, slot: usize, i: u32) {
        let [prev, next] = self.links[i as usize];
        if prev == NIL {
            self.head[slot] = next;
        } else {
            self.links[prev as usize][1] = next;
        }
        if next != NIL {
            self.links[next as usize][0] = prev;
        }
        self.count[slot] -= 1;
    }

    /// The entry at position `from` (in `slot`'s list) moves to position `to` (a hole).
    fn relocate(&mut self, slot: usize, from: u32, to: u32) {
        let [prev, next] = self.links[from as usize];
        self.links[to as usize] = [prev, next];
        if prev == NIL {
            self.head[slot] = to;
        } else {
            self.links[prev as usize][1] = to;
        }
        if next != NIL {
            self.links[next as usize][0] = to;
        }
    }
}

/// A shard's keys: an index of positions plus the entries.
#[derive(Default)]
pub(super) struct Table {
    index: HashTable<u32>,
    slab: Slab,
    slots: Option<Box<SlotIndex>>,
}

impl Table {
    #[inline]
    pub fn len(&self) -> usize {
        self.slab.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slab.len == 0
    }

    /// Buckets of the index (DEBUG HTSTATS).
    pub fn buckets(&self) -> usize {
        crate::util::table_buckets(&self.index)
    }

    #[inline]
    fn position(&self, th: u64, key: &[u8]) -> Option<u32> {
        let slab = &self.slab;
        self.index.find(th, |&i| slab.get(i).key() == key).copied()
    }

    #[inline]
    pub fn find(&self, th: u64, key: &[u8]) -> Option<&Entry> {
        self.position(th, key).map(|i| self.slab.get(i))
    }

    #[inline]
    pub fn find_mut(&mut self, th: u64, key: &[u8]) -> Option<&mut Entry> {
        self.position(th, key).map(|i| self.slab.get_mut(i))
    }

    /// Inserts an entry whose key (of hash `h`) is not in the table.
    pub fn insert_new(&mut self, h: u64, e: Entry, hasher: KeyHasher) {
        let th = table_hash(h);
        if self.slab.len >= u32::MAX as usize {
            // 4 billion keys in one shard: refuse to corrupt positions rather than wrap.
            panic!("shard full");
        }
        let i = self.slab.push(e);
        if hasher.slots() {
            let slot = slot_of_hash(h) as usize % SHARD_SLOTS;
            self.slots.get_or_insert_with(SlotIndex::new).push(slot, i);
        }
        let slab = &self.slab;
        self.index.insert_unique(th, i, move |&j| {
            table_hash(hasher.hash_one(slab.get(j).key()))
        });
    }

    /// Makes room in the index for `additional` more keys (loading a snapshot whose size
    /// is known), so that it does not grow and rehash step by step.
    pub fn reserve(&mut self, additional: usize, hasher: KeyHasher) {
        let slab = &self.slab;
        self.index.reserve(additional, move |&j| {
            table_hash(hasher.hash_one(slab.get(j).key()))
        });
    }

    /// Removes a key (of hash `h`), returning its entry.
    pub fn remove(&mut self, h: u64, key: &[u8], hasher: KeyHasher) -> Option<Entry> {
        let th = table_hash(h);
        let slab = &self.slab;
        let (i, _) = self
            .index
            .find_entry(th, |&i| slab.get(i).key() == key)
            .ok()?
            .remove();
        let last = (self.slab.len - 1) as u32;
        if let Some(ix) = self.slots.as_mut() {
            ix.unlink(slot_of_hash(h) as usize % SHARD_SLOTS, i);
        }
        if i != last {
            // The last entry moves into the hole: repoint its index slot (and its place in
            // its slot's list).
            let raw = hasher.hash_one(self.slab.get(last).key());
            if let Some(slot) = self.index.find_mut(table_hash(raw), |&j| j == last) {
                *slot = i;
            }
            if let Some(ix) = self.slots.as_mut() {
                ix.relocate(slot_of_hash(raw) as usize % SHARD_SLOTS, last, i);
            }
            if let Some(ix) = self.slots.as_mut() {
                ix.links.pop();
            }
            let moved = self.slab.pop().expect("len > 0");
            Some(std::mem::replace(self.slab.get_mut(i), moved))
        } else {
            if let Some(ix) = self.slots.as_mut() {
                ix.links.pop();
            }
            self.slab.pop()
        }
    }

    /// Every entry, in storage order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.slab.chunks.iter().flatten()
    }

    /// Every entry, mutably, in storage order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.slab.chunks.iter_mut().flatten()
    }

    /// The entry at a storage position (`0..len`), for uniform random picks.
    pub fn at(&self, i: usize) -> &Entry {
        self.slab.get(i as u32)
    }

    /// The entry at a storage position, mutably.
    pub fn at_mut(&mut self, i: usize) -> &mut Entry {
        self.slab.get_mut(i as u32)
    }

    /// How many keys of `slot` the table holds (cluster mode; 0 otherwise).
    pub fn slot_count(&self, slot: u16) -> usize {
        self.slots
            .as_ref()
            .map_or(0, |ix| ix.count[slot as usize % SHARD_SLOTS] as usize)
    }

    /// The entries of `slot`, most recently added first (cluster mode; none otherwise).
    pub fn slot_entries(&self, slot: u16) -> impl Iterator<Item = &Entry> {
        let (links, mut at): (&[[u32; 2]], u32) = match &self.slots {
            Some(ix) => (&ix.links, ix.head[slot as usize % SHARD_SLOTS]),
            None => (&[], NIL),
        };
        std::iter::from_fn(move || {
            if at == NIL {
                return None;
            }
            let e = self.slab.get(at);
            at = links[at as usize][1];
            Some(e)
        })
    }

    /// Gives memory back when the table is mostly empty.
    pub fn maybe_shrink(&mut self, hasher: KeyHasher) {
        if self.slab.len == 0 {
            if self.index.capacity() > 0 || self.slab.capacity() > 0 || self.slots.is_some() {
                *self = Table::default();
            }
            return;
        }
        let cap = self.index.capacity();
        if cap > 64 && self.slab.len * 8 < cap {
            let slab = &self.slab;
            self.index.shrink_to(slab.len * 2, move |&j| {
                table_hash(hasher.hash_one(slab.get(j).key()))
            });
        }
    }

    /// Bytes of table memory (index buckets and entry slots).
    pub fn memory(&self) -> usize {
        self.index.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.slab.capacity() * std::mem::size_of::<Entry>()
            + self.slab.chunks.capacity() * std::mem::size_of::<Vec<Entry>>()
            + self.slots.as_ref().map_or(0, |ix| {
                std::mem::size_of::<SlotIndex>() + ix.links.capacity() * 8
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove_keeps_positions_consistent() {
        let hasher = KeyHasher::with_seed(7);
        let th = |k: &[u8]| hasher.hash_one(k);
        let mut t = Table::default();
        let n = 3 * CHUNK + 17;
        for i in 0..n {
            let k = format!("k{i}");
            t.insert_new(
                th(k.as_bytes()),
                Entry::string(k.as_bytes(), b"v", 0),
                hasher,
            );
        }
        assert_eq!(t.len(), n);
        // Remove every third key (holes filled from the end), then check every key.
        for i in (0..n).step_by(3) {
            let k = format!("k{i}");
            let e = t.remove(th(k.as_bytes()), k.as_bytes(), hasher).unwrap();
            assert_eq!(e.key(), k.as_bytes());
        }
        for i in 0..n {
            let k = format!("k{i}");
            assert_eq!(
                t.find(table_hash(th(k.as_bytes())), k.as_bytes()).is_some(),
                i % 3 != 0,
                "{k}"
            );
        }
        assert_eq!(t.iter().count(), t.len());
        for i in 0..n {
            let k = format!("k{i}");
            t.remove(th(k.as_bytes()), k.as_bytes(), hasher);
        }
        assert!(t.is_empty());
        t.maybe_shrink(hasher);
        assert_eq!(t.memory(), 0);
    }

    #[test]
    fn a_boundary_insert_delete_cycle_keeps_a_spare_chunk() {
        let hasher = KeyHasher::with_seed(7);
        let th = |k: &[u8]| hasher.hash_one(k);
        let mut t = Table::default();
        for i in 0..CHUNK {
            let k = format!("k{i}");
            t.insert_new(
                th(k.as_bytes()),
                Entry::string(k.as_bytes(), b"v", 0),
                hasher,
            );
        }
        for _ in 0..3 {
            t.insert_new(th(b"x"), Entry::string(b"x", b"v", 0), hasher);
            assert_eq!(t.slab.chunks.len(), 2);
            t.remove(th(b"x"), b"x", hasher).unwrap();
            assert_eq!(t.slab.chunks.len(), 2);
        }
    }
}
