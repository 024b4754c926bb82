//! The hash type, in Redis 7.0's two encodings.
//!
//! * **listpack** ([`Pack`]): while a hash has at most `hash-max-listpack-entries` fields and
//!   every field and value is at most `hash-max-listpack-value` bytes, its pairs sit one
//!   after the other in a single buffer (length-prefixed field, then length-prefixed value),
//!   in insertion order, as in Redis's listpack. HGETALL, HKEYS, HVALS and HSCAN therefore
//!   list a small hash in exactly Redis's order. Lookups are a linear walk, which at these
//!   sizes touches a few cache lines.
//! * **hashtable** ([`Table`]): beyond those limits. Pairs live densely in [`Dense`], chunks
//!   of 32-byte [`Pair`]s that keep a field and value of up to 29 bytes together inline (no
//!   allocation for typical small fields), or the shorter of the two inline and the other
//!   on the heap; a `hashbrown` table of `u32` positions indexes them (5 bytes a bucket). A
//!   small pair costs 32 bytes plus 5-10 bytes of index, where Redis spends a 24-byte
//!   dictEntry, an 8-byte bucket pointer and two sds strings (about 70 bytes).
//!
//! Removing a pair from the table moves the last pair into the hole, so positions stay
//! dense: a random pair is one uniform index (HRANDFIELD), and HSCAN walks positions
//! downwards. A pair only ever moves from the end to a lower position, so a cursor that
//! counts down never misses a pair that stayed in the hash for the whole scan (a moved pair
//! may be returned twice, which SCAN allows).
//!
//! Conversion happens at write time exactly when Redis converts, and never back.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::LazyLock;

use hashbrown::HashTable;

/// The most fields a hash can hold (table positions are `u32`).
pub const MAX_LEN: usize = u32::MAX as usize;

/// Redis refuses to grow a listpack past 1 GiB (`LISTPACK_MAX_SAFETY_SIZE`) and converts the
/// hash instead.
const PACK_MAX_BYTES: usize = 1 << 30;

/// The listpack limits in force for a write (`hash-max-listpack-entries`,
/// `hash-max-listpack-value`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub entries: usize,
    pub value: usize,
}

/// A map of fields to values (see the module docs for the representation).
#[derive(Clone)]
pub struct Hash {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Pack(Pack),
    Table(Table),
}

impl Default for Hash {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Hash {
    /// Same pairs, whatever the encodings.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

impl Hash {
    /// An empty hash in the listpack encoding (what Redis creates a hash key with).
    pub fn new() -> Self {
        Self {
            repr: Repr::Pack(Pack::default()),
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.len as usize,
            Repr::Table(t) => t.pairs.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (buckets, fields) of the hash table, None for a listpack (DEBUG HTSTATS-KEY).
    pub fn table_stats(&self) -> Option<(usize, usize)> {
        match &self.repr {
            Repr::Pack(_) => None,
            Repr::Table(t) => Some((crate::util::table_buckets(&t.index), t.pairs.len)),
        }
    }

    /// Every (field, value): insertion order for a listpack, storage order for a table.
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Pack(p) => Iter::Pack(p.iter()),
            Repr::Table(t) => Iter::Table(t.pairs.iter()),
        }
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Pack(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    /// Whether the hash is in the compact (listpack) encoding.
    pub fn is_pack(&self) -> bool {
        matches!(self.repr, Repr::Pack(_))
    }

    /// Heap bytes owned.
    pub fn heap_size(&self) -> usize {
        let (fixed, pairs) = self.heap_parts();
        fixed + pairs.sum::<usize>()
    }

    /// The heap bytes in two parts, for estimates that sample (MEMORY USAGE): the
    /// structure's own (a listpack's buffer; a table's index and pair slots), and each
    /// pair's own allocation beyond its slot (0 when inline), in storage order, one
    /// allocation each. [`Hash::heap_size`] is their sum.
    pub fn heap_parts(&self) -> (usize, impl Iterator<Item = usize> + '_) {
        let (fixed, pairs) = match &self.repr {
            Repr::Pack(p) => (p.buf.capacity(), None),
            Repr::Table(t) => (t.structure_size(), Some(&t.pairs)),
        };
        (
            fixed,
            pairs
                .into_iter()
                .flat_map(|d| d.iter().map(Pair::heap_size)),
        )
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Pack(p) => p.find(field).map(|s| &p.buf[s.value..s.end]),
            Repr::Table(t) => t.find(field).map(|i| t.pairs.get(i).value()),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Converts a listpack to a table before a write of fields and values with the given
    /// lengths if any is too long for a listpack, or if they could push the listpack past
    /// its size limit (Redis's `hashTypeTryConversion`, run before HSET / HSETNX write).
    pub fn fit(&mut self, lens: impl IntoIterator<Item = usize>, lim: Limits) {
        let Repr::Pack(p) = &self.repr else {
            return;
        };
        let mut sum = 0usize;
        for len in lens {
            if len > lim.value {
                self.convert();
                return;
            }
            sum = sum.saturating_add(len);
        }
        if p.buf.len().saturating_add(sum) > PACK_MAX_BYTES {
            self.convert();
        }
    }

    /// Sets `field` to `value`; returns whether the field is new (Redis's `hashTypeSet`: a
    /// field or value too long for a listpack converts it first, one field too many
    /// converts it afterwards). The caller makes sure the hash is not at [`MAX_LEN`].
    pub fn set(&mut self, field: &[u8], value: &[u8], lim: Limits) -> bool {
        if self.is_pack() && (field.len() > lim.value || value.len() > lim.value) {
            self.convert();
        }
        match &mut self.repr {
            Repr::Pack(p) => {
                let new = p.set(field, value);
                if p.len as usize > lim.entries {
                    self.convert();
                }
                new
            }
            Repr::Table(t) => t.set(field, value),
        }
    }

    /// Removes `field`; returns whether it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Pack(p) => p.remove(field),
            Repr::Table(t) => t.remove(field),
        }
    }

    /// Switches to the table encoding now (loading a listpack with more fields than
    /// `hash-max-listpack-entries` allows).
    pub fn convert_to_table(&mut self) {
        self.convert();
    }

    /// Switches a listpack to the table encoding (never the other way, like Redis).
    fn convert(&mut self) {
        if let Repr::Pack(p) = &self.repr {
            let mut t = Table::with_capacity(p.len as usize);
            for (f, v) in p.iter() {
                t.set(f, v);
            }
            self.repr = Repr::Table(t);
        }
    }

    /// One HSCAN step from `cursor`: calls `f` for about `count` pairs and returns the cursor
    /// to continue from (0 when the scan is complete). A listpack is returned whole with
    /// cursor 0, whatever the cursor and count, as Redis does. A table is walked from the
    /// top position down (see the module docs): a cursor `c` means the positions below `c`
    /// remain.
    pub fn scan<'a>(
        &'a self,
        cursor: u64,
        count: usize,
        mut f: impl FnMut(&'a [u8], &'a [u8]),
    ) -> u64 {
        match &self.repr {
            Repr::Pack(p) => {
                for (k, v) in p.iter() {
                    f(k, v);
                }
                0
            }
            Repr::Table(t) => {
                let len = t.pairs.len;
                let top = if cursor == 0 {
                    len
                } else {
                    usize::try_from(cursor).unwrap_or(usize::MAX).min(len)
                };
                let stop = top.saturating_sub(count.max(1));
                for i in (stop..top).rev() {
                    let (k, v) = t.pairs.get(i).parts();
                    f(k, v);
                }
                stop as u64
            }
        }
    }

    /// Positional access to the pairs, for random picks (HRANDFIELD). O(1) per pick; for a
    /// listpack, building it walks the pairs once.
    pub fn picker(&self) -> Picker<'_> {
        match &self.repr {
            Repr::Pack(p) => Picker::Pack(p.iter().collect()),
            Repr::Table(t) => Picker::Table(&t.pairs),
        }
    }

    /// The pair at position `i` (`0..len`): a listpack walks to it, a table indexes it.
    pub fn pair_at(&self, i: usize) -> Option<(&[u8], &[u8])> {
        match &self.repr {
            Repr::Pack(p) => p.iter().nth(i),
            Repr::Table(t) => (i < t.pairs.len).then(|| t.pairs.get(i).parts()),
        }
    }
}

/// Iterator over a hash's pairs.
pub enum Iter<'a> {
    Pack(PackIter<'a>),
    Table(std::iter::Flatten<std::slice::Iter<'a, Vec<Pair>>>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Pack(p) => p.next(),
            Iter::Table(t) => t.next().map(Pair::parts),
        }
    }
}

/// Positional access to a hash's pairs (see [`Hash::picker`]).
pub enum Picker<'a> {
    Pack(Vec<(&'a [u8], &'a [u8])>),
    Table(&'a Dense),
}

impl<'a> Picker<'a> {
    pub fn len(&self) -> usize {
        match self {
            Picker::Pack(v) => v.len(),
            Picker::Table(d) => d.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pair at position `i` (`0..len`).
    #[inline]
    pub fn get(&self, i: usize) -> (&'a [u8], &'a [u8]) {
        match self {
            Picker::Pack(v) => v[i],
            Picker::Table(d) => d.get(i).parts(),
        }
    }
}

// --- Lengths --------------------------------------------------------------------------------

/// Appends `n` as a LEB128 varint (one byte below 128, as almost every listpack length is).
#[inline]
fn put_len(buf: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Bytes [`put_len`] writes for `n`.
#[inline]
fn len_size(n: usize) -> usize {
    let bits = usize::BITS - (n | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

/// Reads a varint written by [`put_len`] at `pos`: (value, position after it).
#[inline]
fn get_len(buf: &[u8], mut pos: usize) -> (usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let b = buf[pos];
        pos += 1;
        n |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            return (n, pos);
        }
        shift += 7;
    }
}

// --- The listpack form ----------------------------------------------------------------------

/// Pairs packed in one buffer, in insertion order: `len field len value` repeated.
#[derive(Clone, Default)]
struct Pack {
    buf: Vec<u8>,
    len: u32,
}

/// Where a pair sits in a [`Pack`]'s buffer.
struct PackSlot {
    /// First byte of the pair (its field length).
    start: usize,
    /// The value's length prefix.
    value_len_at: usize,
    /// First byte of the value.
    value: usize,
    /// One past the value.
    end: usize,
}

impl Pack {
    fn iter(&self) -> PackIter<'_> {
        PackIter {
            buf: &self.buf,
            pos: 0,
        }
    }

    fn find(&self, field: &[u8]) -> Option<PackSlot> {
        let b = &self.buf[..];
        let mut pos = 0;
        while pos < b.len() {
            let start = pos;
            let (flen, f) = get_len(b, pos);
            let value_len_at = f + flen;
            let (vlen, value) = get_len(b, value_len_at);
            let end = value + vlen;
            if &b[f..value_len_at] == field {
                return Some(PackSlot {
                    start,
                    value_len_at,
                    value,
                    end,
                });
            }
            pos = end;
        }
        None
    }

    /// Sets a field: a new one is appended (the buffer grows exactly, as a listpack does),
    /// an existing one has its value replaced where it is. Returns whether it is new.
    fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        match self.find(field) {
            Some(s) if s.end - s.value == value.len() => {
                self.buf[s.value..s.end].copy_from_slice(value);
                false
            }
            Some(s) => {
                let mut prefix = Vec::with_capacity(4);
                put_len(&mut prefix, value.len());
                // Grow exactly, like a listpack (splice alone may double the buffer).
                let old = s.end - s.value_len_at;
                let new = prefix.len() + value.len();
                self.buf.reserve_exact(new.saturating_sub(old));
                self.buf.splice(
                    s.value_len_at..s.end,
                    prefix.iter().chain(value.iter()).copied(),
                );
                false
            }
            None => {
                let need =
                    len_size(field.len()) + field.len() + len_size(value.len()) + value.len();
                self.buf.reserve_exact(need);
                put_len(&mut self.buf, field.len());
                self.buf.extend_from_slice(field);
                put_len(&mut self.buf, value.len());
                self.buf.extend_from_slice(value);
                self.len += 1;
                true
            }
        }
    }

    fn remove(&mut self, field: &[u8]) -> bool {
        match self.find(field) {
            Some(s) => {
                self.buf.drain(s.start..s.end);
                self.len -= 1;
                // Give memory back as a listpack does when it shrinks.
                if self.buf.capacity() > 64 && self.buf.len() * 2 < self.buf.capacity() {
                    self.buf.shrink_to_fit();
                }
                true
            }
            None => false,
        }
    }
}

/// Iterator over a [`Pack`]'s pairs.
pub struct PackIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for PackIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let (flen, f) = get_len(self.buf, self.pos);
        let (vlen, v) = get_len(self.buf, f + flen);
        self.pos = v + vlen;
        Some((&self.buf[f..f + flen], &self.buf[v..v + vlen]))
    }
}

// --- The hashtable form ---------------------------------------------------------------------

/// Bytes of field + value kept inside a [`Pair`].
const INLINE: usize = 29;
/// Bytes of a short field (or value) kept inside a [`Pair`] whose other half is on the heap.
const HALF: usize = 14;

/// One field and its value in a 32-byte slot: both inline when they fit together in
/// [`INLINE`] bytes; otherwise the short one (up to [`HALF`] bytes) inline and the other in
/// an allocation of exactly its size; otherwise both in one allocation. Keeping the short
/// half inline saves an allocation size class on typical "short field, longer value" pairs.
#[derive(Clone)]
pub enum Pair {
    /// Field then value, in `buf`.
    Inline {
        flen: u8,
        vlen: u8,
        buf: [u8; INLINE],
    },
    /// A short field inline, the value on the heap.
    ShortField {
        flen: u8,
        field: [u8; HALF],
        value: Box<[u8]>,
    },
    /// A short value inline, the field on the heap.
    ShortValue {
        vlen: u8,
        value: [u8; HALF],
        field: Box<[u8]>,
    },
    /// `varint(field length) field value` in one allocation.
    Boxed(Box<[u8]>),
}

const _: () = assert!(std::mem::size_of::<Pair>() == 32);

/// `s` in a [`HALF`]-byte array (`s` fits).
#[inline]
fn half(s: &[u8]) -> [u8; HALF] {
    let mut a = [0u8; HALF];
    a[..s.len()].copy_from_slice(s);
    a
}

impl Pair {
    fn new(field: &[u8], value: &[u8]) -> Self {
        let n = field.len() + value.len();
        if n <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..field.len()].copy_from_slice(field);
            buf[field.len()..n].copy_from_slice(value);
            Pair::Inline {
                flen: field.len() as u8,
                vlen: value.len() as u8,
                buf,
            }
        } else if field.len() <= HALF {
            Pair::ShortField {
                flen: field.len() as u8,
                field: half(field),
                value: value.into(),
            }
        } else if value.len() <= HALF {
            Pair::ShortValue {
                vlen: value.len() as u8,
                value: half(value),
                field: field.into(),
            }
        } else {
            let mut b = Vec::with_capacity(len_size(field.len()) + n);
            put_len(&mut b, field.len());
            b.extend_from_slice(field);
            b.extend_from_slice(value);
            Pair::Boxed(b.into_boxed_slice())
        }
    }

    #[inline]
    fn parts(&self) -> (&[u8], &[u8]) {
        match self {
            Pair::Inline { flen, vlen, buf } => {
                let (f, v) = (*flen as usize, *vlen as usize);
                (&buf[..f], &buf[f..f + v])
            }
            Pair::ShortField { flen, field, value } => (&field[..*flen as usize], value),
            Pair::ShortValue { vlen, value, field } => (field, &value[..*vlen as usize]),
            Pair::Boxed(b) => {
                let (flen, p) = get_len(b, 0);
                (&b[p..p + flen], &b[p + flen..])
            }
        }
    }

    #[inline]
    fn field(&self) -> &[u8] {
        self.parts().0
    }

    #[inline]
    fn value(&self) -> &[u8] {
        self.parts().1
    }

    /// Replaces the value, in place when its length does not change (HINCRBY's usual case).
    fn set_value(&mut self, value: &[u8]) {
        if self.value().len() == value.len() {
            match self {
                Pair::Inline { flen, buf, .. } => {
                    let f = *flen as usize;
                    buf[f..f + value.len()].copy_from_slice(value);
                }
                Pair::ShortField { value: v, .. } => v.copy_from_slice(value),
                Pair::ShortValue { value: v, .. } => v[..value.len()].copy_from_slice(value),
                Pair::Boxed(b) => {
                    let at = b.len() - value.len();
                    b[at..].copy_from_slice(value);
                }
            }
        } else {
            let new = Pair::new(self.field(), value);
            *self = new;
        }
    }

    /// Heap bytes of this pair beyond its slot.
    fn heap_size(&self) -> usize {
        match self {
            Pair::Inline { .. } => 0,
            Pair::ShortField { value: b, .. }
            | Pair::ShortValue { field: b, .. }
            | Pair::Boxed(b) => b.len(),
        }
    }
}

/// Pairs per chunk of [`Dense`] (16 KiB).
const CHUNK: usize = 512;

/// Dense pair storage in chunks of [`CHUNK`], so a large hash never has a half-empty doubled
/// array; the first chunk grows by doubling so that small tables stay small.
#[derive(Clone, Default)]
pub struct Dense {
    chunks: Vec<Vec<Pair>>,
    len: usize,
}

impl Dense {
    #[inline]
    fn get(&self, i: usize) -> &Pair {
        &self.chunks[i / CHUNK][i % CHUNK]
    }

    #[inline]
    fn get_mut(&mut self, i: usize) -> &mut Pair {
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }

    fn push(&mut self, p: Pair) {
        let c = self.len / CHUNK;
        if c == self.chunks.len() {
            self.chunks
                .push(Vec::with_capacity(if c == 0 { 4 } else { CHUNK }));
        }
        self.chunks[c].push(p);
        self.len += 1;
    }

    fn pop(&mut self) -> Option<Pair> {
        // An empty trailing chunk stays as a spare until the one before it shrinks, so
        // alternating insert/delete at a chunk boundary does not allocate each time.
        if self.chunks.last().is_some_and(Vec::is_empty) && self.chunks.len() > 1 {
            self.chunks.pop();
        }
        let p = self.chunks.last_mut()?.pop()?;
        self.len -= 1;
        Some(p)
    }

    fn iter(&self) -> std::iter::Flatten<std::slice::Iter<'_, Vec<Pair>>> {
        self.chunks.iter().flatten()
    }

    fn capacity(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum()
    }
}

/// The hasher of every hash table, seeded randomly once per process (HashDoS resistance).
static HASHER: LazyLock<foldhash::fast::FixedState> =
    LazyLock::new(|| foldhash::fast::FixedState::with_seed(rand::random()));

#[inline]
fn hash(field: &[u8]) -> u64 {
    HASHER.hash_one(field)
}

/// The hashtable encoding: an index of positions over [`Dense`] pairs.
#[derive(Clone, Default)]
struct Table {
    index: HashTable<u32>,
    pairs: Dense,
}

impl Table {
    fn with_capacity(n: usize) -> Self {
        Self {
            index: HashTable::with_capacity(n),
            pairs: Dense::default(),
        }
    }

    /// Heap bytes of the index and the pair slots, without the pairs' own allocations.
    fn structure_size(&self) -> usize {
        // hashbrown keeps 1/8 of its buckets free: buckets = capacity * 8 / 7.
        let buckets = self.index.capacity() * 8 / 7;
        buckets * (std::mem::size_of::<u32>() + 1)
            + self.pairs.capacity() * std::mem::size_of::<Pair>()
            + self.pairs.chunks.capacity() * std::mem::size_of::<Vec<Pair>>()
    }

    #[inline]
    fn find(&self, field: &[u8]) -> Option<usize> {
        let pairs = &self.pairs;
        self.index
            .find(hash(field), |&i| pairs.get(i as usize).field() == field)
            .map(|&i| i as usize)
    }

    fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        let pairs = &self.pairs;
        let entry = self.index.entry(
            hash(field),
            |&i| pairs.get(i as usize).field() == field,
            |&i| hash(pairs.get(i as usize).field()),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(o) => {
                let i = *o.get() as usize;
                self.pairs.get_mut(i).set_value(value);
                false
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(self.pairs.len as u32);
                self.pairs.push(Pair::new(field, value));
                true
            }
        }
    }

    fn remove(&mut self, field: &[u8]) -> bool {
        let pairs = &self.pairs;
        let Ok(found) = self
            .index
            .find_entry(hash(field), |&i| pairs.get(i as usize).field() == field)
        else {
            return false;
        };
        let (i, _) = found.remove();
        let last = (self.pairs.len - 1) as u32;
        if i != last {
            // The last pair moves into the hole: repoint its index slot.
            let h = hash(self.pairs.get(last as usize).field());
            if let Some(slot) = self.index.find_mut(h, |&j| j == last) {
                *slot = i;
            }
            let moved = self.pairs.pop().expect("len > 0");
            *self.pairs.get_mut(i as usize) = moved;
        } else {
            self.pairs.pop();
        }
        self.maybe_shrink();
        true
    }

    /// Gives index memory back when the table is mostly empty, as Redis's dict resize does.
    fn maybe_shrink(&mut self) {
        let cap = self.index.capacity();
        if cap > 64 && self.pairs.len * 8 < cap {
            let pairs = &self.pairs;
            self.index
                .shrink_to(pairs.len * 2, |&i| hash(pairs.get(i as usize).field()));
        }
        if self.pairs.len == 0 {
            self.pairs = Dense::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: Limits = Limits {
        entries: 128,
        value: 64,
    };

    fn pairs(h: &Hash) -> Vec<(Vec<u8>, Vec<u8>)> {
        h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn varints_round_trip_and_report_their_size() {
        for n in [
            0usize,
            1,
            127,
            128,
            300,
            16383,
            16384,
            1 << 30,
            usize::MAX >> 1,
        ] {
            let mut b = Vec::new();
            put_len(&mut b, n);
            assert_eq!(b.len(), len_size(n), "{n}");
            assert_eq!(get_len(&b, 0), (n, b.len()));
        }
    }

    #[test]
    fn a_listpack_keeps_insertion_order_and_updates_in_place() {
        let mut h = Hash::new();
        assert!(h.set(b"b", b"1", LIM));
        assert!(h.set(b"a", b"2", LIM));
        assert!(h.set(b"c", b"3", LIM));
        assert!(!h.set(b"a", b"a much longer value than before", LIM));
        assert!(!h.set(b"b", b"9", LIM));
        assert_eq!(h.encoding(), "listpack");
        assert_eq!(
            pairs(&h),
            vec![
                (b"b".to_vec(), b"9".to_vec()),
                (b"a".to_vec(), b"a much longer value than before".to_vec()),
                (b"c".to_vec(), b"3".to_vec()),
            ]
        );
        assert!(h.remove(b"a"));
        assert!(!h.remove(b"a"));
        assert_eq!(h.len(), 2);
        assert_eq!(h.get(b"c"), Some(&b"3"[..]));
        assert_eq!(h.get(b"a"), None);
        assert_eq!(h.pair_at(1), Some((&b"c"[..], &b"3"[..])));
    }

    #[test]
    fn long_values_and_too_many_fields_convert_to_a_table() {
        let mut h = Hash::new();
        h.set(b"f", &[b'x'; 65], LIM);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = Hash::new();
        for i in 0..128 {
            h.set(format!("f{i}").as_bytes(), b"v", LIM);
        }
        assert_eq!(h.encoding(), "listpack");
        h.set(b"one more", b"v", LIM);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 129);
        assert_eq!(h.get(b"f77"), Some(&b"v"[..]));
        // Never back, even when small again.
        for i in 0..128 {
            h.remove(format!("f{i}").as_bytes());
        }
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(pairs(&h), vec![(b"one more".to_vec(), b"v".to_vec())]);
    }

    #[test]
    fn fit_converts_before_a_write_of_long_arguments() {
        let mut h = Hash::new();
        h.fit([1, 64], LIM);
        assert_eq!(h.encoding(), "listpack");
        h.fit([1, 65], LIM);
        assert_eq!(h.encoding(), "hashtable");
    }

    #[test]
    fn table_pairs_survive_removals_in_any_order() {
        let lim = Limits {
            entries: 0,
            value: 64,
        };
        let mut h = Hash::new();
        let n = 3 * CHUNK + 17;
        for i in 0..n {
            // Mix inline and boxed pairs.
            let v = if i % 3 == 0 {
                vec![b'v'; 40]
            } else {
                vec![b'w'; 3]
            };
            h.set(format!("field:{i}").as_bytes(), &v, lim);
        }
        for i in (0..n).step_by(2) {
            assert!(h.remove(format!("field:{i}").as_bytes()));
        }
        for i in 0..n {
            let got = h.get(format!("field:{i}").as_bytes());
            assert_eq!(got.is_some(), i % 2 == 1, "{i}");
        }
        assert_eq!(h.iter().count(), h.len());
        for i in 0..n {
            h.set(format!("field:{i}").as_bytes(), b"new", lim);
        }
        assert!(h.iter().all(|(_, v)| v == b"new"));
        for i in 0..n {
            h.remove(format!("field:{i}").as_bytes());
        }
        assert!(h.is_empty());
    }

    #[test]
    fn values_change_length_across_the_inline_limit() {
        let lim = Limits {
            entries: 0,
            value: 1000,
        };
        let mut h = Hash::new();
        h.set(b"f", b"1", lim);
        h.set(b"f", &[b'x'; 100], lim);
        assert_eq!(h.get(b"f"), Some(&[b'x'; 100][..]));
        h.set(b"f", &[b'y'; 100], lim);
        assert_eq!(h.get(b"f"), Some(&[b'y'; 100][..]));
        h.set(b"f", b"22", lim);
        assert_eq!(h.get(b"f"), Some(&b"22"[..]));
        h.set(b"f", b"33", lim);
        assert_eq!(h.get(b"f"), Some(&b"33"[..]));
    }

    #[test]
    fn every_pair_layout_round_trips_and_updates() {
        let sizes = [0usize, 1, 14, 15, 29, 30, 100];
        for &fl in &sizes {
            for &vl in &sizes {
                let field: Vec<u8> = (0..fl).map(|i| i as u8).collect();
                let value = vec![b'v'; vl];
                let mut p = Pair::new(&field, &value);
                assert_eq!(p.parts(), (&field[..], &value[..]), "{fl} {vl}");
                for &nl in &sizes {
                    let new = vec![b'n'; nl];
                    p.set_value(&new);
                    assert_eq!(p.parts(), (&field[..], &new[..]), "{fl} {vl} -> {nl}");
                }
            }
        }
    }

    #[test]
    fn a_table_scan_returns_every_stable_field_while_the_hash_changes() {
        let lim = Limits {
            entries: 0,
            value: 64,
        };
        let mut h = Hash::new();
        for i in 0..2000 {
            h.set(format!("keep{i}").as_bytes(), b"v", lim);
            h.set(format!("drop{i}").as_bytes(), b"v", lim);
        }
        let mut seen = std::collections::HashSet::new();
        let (mut cursor, mut round) = (0u64, 0);
        loop {
            cursor = h.scan(cursor, 7, |f, _| {
                seen.insert(f.to_vec());
            });
            // Shrink and grow between calls.
            for j in 0..10 {
                h.remove(format!("drop{}", round * 10 + j).as_bytes());
                h.set(format!("new{round}-{j}").as_bytes(), b"v", lim);
            }
            round += 1;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..2000 {
            assert!(seen.contains(format!("keep{i}").as_bytes()), "keep{i}");
        }
    }

    #[test]
    fn equality_ignores_the_encoding() {
        let mut a = Hash::new();
        let mut b = Hash::new();
        a.set(b"x", b"1", LIM);
        a.set(b"y", b"2", LIM);
        b.set(b"y", b"2", LIM);
        b.set(b"x", &[b'z'; 100], LIM);
        assert_ne!(a, b);
        b.set(b"x", b"1", LIM);
        assert_eq!(b.encoding(), "hashtable");
        assert_eq!(a, b);
    }
}
