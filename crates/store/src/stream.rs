//! The stream type: entries ordered by ID, packed into blocks, plus consumer groups.
//!
//! Redis keeps a stream as a radix tree of listpacks; Kiln keeps a `BTreeMap` from the ID a
//! block started with to a [`Block`]: up to [`NODE_MAX_ENTRIES`] entries packed into one byte
//! buffer, IDs delta-encoded against the previous entry and every length a LEB128 varint. A
//! small entry costs a handful of bytes, and finding any ID is a B-tree seek plus a scan of
//! one block. Blocks fill up by *appended* entries, deleted ones included, like Redis's
//! nodes, so the whole-block granularity of approximate trimming (`MAXLEN ~`) matches Redis's.
//!
//! Owned by the stream family; `Value::Stream` holds it. `len`, `is_empty`, `encoding`,
//! `heap_size` and `digest_into` are the contract the rest of the server uses.

use std::collections::BTreeMap;

/// A stream entry ID: milliseconds and a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub const fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// The next ID up, None at the maximum.
    pub fn next(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The previous ID, None at 0-0.
    pub fn prev(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    /// `ms-seq`, as replies print it.
    pub fn fmt(&self) -> String {
        format!("{}-{}", self.ms, self.seq)
    }

    /// Writes `ms-seq` into a stack buffer (replies without allocating).
    pub fn write_to<'b>(&self, buf: &'b mut [u8; 41]) -> &'b [u8] {
        let mut n = 0;
        n += write_u64(&mut buf[n..], self.ms);
        buf[n] = b'-';
        n += 1;
        n += write_u64(&mut buf[n..], self.seq);
        &buf[..n]
    }
}

fn write_u64(buf: &mut [u8], mut v: u64) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let n = tmp.len() - i;
    buf[..n].copy_from_slice(&tmp[i..]);
    n
}

/// Entries a block takes before a new one starts (Redis's `stream-node-max-entries` default).
pub const NODE_MAX_ENTRIES: usize = 100;
/// Bytes a block grows to before a new one starts (Redis's `stream-node-max-bytes` default).
pub const NODE_MAX_BYTES: usize = 4096;

/// When an appended entry starts a new block: `stream-node-max-entries` and
/// `stream-node-max-bytes`, applied as Redis applies them to its nodes (entries counted
/// with deleted ones, 0 = no limit; a byte limit of 0 or over 1 GiB means 1 GiB). Kiln's
/// blocks are smaller than Redis's listpacks for the same entries, so the byte limit
/// closes a block later than Redis would when it, not the entry count, decides.
#[derive(Clone, Copy, Debug)]
pub struct NodeLimits {
    pub entries: usize,
    pub bytes: usize,
}

impl Default for NodeLimits {
    fn default() -> Self {
        Self {
            entries: NODE_MAX_ENTRIES,
            bytes: NODE_MAX_BYTES,
        }
    }
}

/// Redis's `STREAM_LISTPACK_MAX_SIZE`.
const LISTPACK_MAX_SIZE: usize = 1 << 30;

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*pos];
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// A packed run of entries. Each entry: `ms delta` (from the previous entry, or from 0),
/// `seq` (a delta when the ms did not change), the number of fields+values, then each string
/// as length and bytes.
#[derive(Debug, Clone, PartialEq, Default)]
struct Block {
    data: Vec<u8>,
    /// Live entries.
    len: u32,
    /// Entries ever appended (deleted ones included): what fills a block, as in Redis.
    appended: u32,
    /// ID of the last entry appended (the base of the next delta).
    last: StreamId,
}

/// One decoded entry, borrowing its fields from the block.
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'a> {
    pub id: StreamId,
    /// Number of strings (fields and values).
    n: usize,
    data: &'a [u8],
    /// For an entry with the same fields as its block's first (master) entry: the master's
    /// strings, from which the fields are taken (`data` then holds only the values).
    master: Option<&'a [u8]>,
}

impl<'a> EntryRef<'a> {
    /// Number of field/value pairs.
    pub fn pairs(&self) -> usize {
        self.n / 2
    }

    /// Fields and values, alternating.
    pub fn strings(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (data, master) = (self.data, self.master);
        let (mut pos, mut mpos) = (0, 0);
        (0..self.n).map(move |i| {
            let take = |buf: &'a [u8], at: &mut usize| {
                let l = get_varint(buf, at) as usize;
                let s = &buf[*at..*at + l];
                *at += l;
                s
            };
            match master {
                // Fields from the master entry (skipping its values), values from here.
                Some(m) if i % 2 == 0 => {
                    let f = take(m, &mut mpos);
                    take(m, &mut mpos);
                    f
                }
                _ => take(data, &mut pos),
            }
        })
    }
}

impl Block {
    fn append(&mut self, id: StreamId, strings: &[&[u8]]) {
        let (dms, seq) = if self.appended == 0 {
            (id.ms, id.seq)
        } else if id.ms == self.last.ms {
            (0, id.seq - self.last.seq)
        } else {
            (id.ms - self.last.ms, id.seq)
        };
        // Entries with the fields of the block's first entry store only their values (the
        // common case of a stream of uniform events), like Redis's master entry.
        let same = self.appended > 0
            && self.entries().next().is_some_and(|(m, ..)| {
                m.n == strings.len()
                    && m.strings()
                        .step_by(2)
                        .eq(strings.iter().step_by(2).copied())
            });
        put_varint(&mut self.data, dms);
        put_varint(&mut self.data, seq);
        put_varint(&mut self.data, ((strings.len() as u64) << 1) | same as u64);
        for s in strings
            .iter()
            .skip(same as usize)
            .step_by(1 + same as usize)
        {
            put_varint(&mut self.data, s.len() as u64);
            self.data.extend_from_slice(s);
        }
        self.last = id;
        self.len += 1;
        self.appended += 1;
    }

    /// Every entry in order, with its byte range in `data`.
    fn entries(&self) -> BlockIter<'_> {
        BlockIter {
            data: &self.data,
            pos: 0,
            prev: StreamId::MIN,
            first: true,
            master: &[],
        }
    }

    /// Whether an entry whose strings total `incoming` bytes starts a new block after this
    /// one (Redis's test in `streamAppendItem`).
    fn is_full(&self, limits: NodeLimits, incoming: usize) -> bool {
        let max_bytes = match limits.bytes {
            0 => LISTPACK_MAX_SIZE,
            b => b.min(LISTPACK_MAX_SIZE),
        };
        self.data.len() + incoming >= max_bytes
            || (limits.entries != 0 && self.appended as usize >= limits.entries)
    }

    /// Rebuilds the block keeping only the entries `keep` accepts (updating `len`); returns
    /// how many went.
    fn retain(&mut self, mut keep: impl FnMut(StreamId) -> bool) -> usize {
        let mut nb = Block::default();
        let mut removed = 0;
        let mut strings: Vec<&[u8]> = Vec::new();
        for (e, _) in self.entries() {
            if keep(e.id) {
                strings.clear();
                strings.extend(e.strings());
                nb.append(e.id, &strings);
            } else {
                removed += 1;
            }
        }
        if removed > 0 {
            nb.appended = self.appended;
            nb.data.shrink_to_fit();
            *self = nb;
        }
        removed
    }
}

struct BlockIter<'a> {
    data: &'a [u8],
    pos: usize,
    prev: StreamId,
    first: bool,
    /// The strings of the block's first entry.
    master: &'a [u8],
}

impl<'a> Iterator for BlockIter<'a> {
    type Item = (EntryRef<'a>, usize);

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        let start = self.pos;
        let d = self.data;
        let dms = get_varint(d, &mut self.pos);
        let s = get_varint(d, &mut self.pos);
        let id = if self.first {
            StreamId::new(dms, s)
        } else if dms == 0 {
            StreamId::new(self.prev.ms, self.prev.seq + s)
        } else {
            StreamId::new(self.prev.ms + dms, s)
        };
        let first = std::mem::replace(&mut self.first, false);
        self.prev = id;
        let h = get_varint(d, &mut self.pos) as usize;
        let (n, same) = (h >> 1, h & 1 == 1);
        let body = self.pos;
        for _ in 0..if same { n / 2 } else { n } {
            let l = get_varint(d, &mut self.pos) as usize;
            self.pos += l;
        }
        let data = &d[body..self.pos];
        if first {
            self.master = data;
        }
        Some((
            EntryRef {
                id,
                n,
                data,
                master: same.then_some(self.master),
            },
            start,
        ))
    }
}

/// A pending (delivered, not acknowledged) entry of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Nack {
    pub consumer: Box<[u8]>,
    /// Unix ms of the last delivery.
    pub delivery_time: u64,
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Consumer {
    /// Unix ms of its last activity.
    pub seen_time: u64,
    /// Its pending entries (details in the group's PEL).
    pub pel: std::collections::BTreeSet<StreamId>,
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub last_id: StreamId,
    /// Entries read by the group (Redis's `entries_read`); -1 when unknown.
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Nack>,
    pub consumers: BTreeMap<Box<[u8]>, Consumer>,
}

/// A stream: entries ordered by ID, plus consumer groups.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    blocks: BTreeMap<StreamId, Block>,
    len: usize,
    /// The greatest ID ever added (or set by XSETID).
    pub last_id: StreamId,
    /// Entries ever added (XADD count, or set by XSETID).
    pub entries_added: u64,
    /// The greatest ID ever deleted.
    pub max_deleted: StreamId,
    /// Groups by name (sorted, as Redis's radix tree lists them).
    pub groups: BTreeMap<Box<[u8]>, Group>,
}

impl Stream {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        "stream"
    }

    /// Appends an entry; `id` must be above `last_id` (the caller checks).
    pub fn append(&mut self, id: StreamId, strings: &[&[u8]]) {
        self.append_with(id, strings, NodeLimits::default());
    }

    /// [`Stream::append`] with the node limits in force (XADD passes the configured ones).
    pub fn append_with(&mut self, id: StreamId, strings: &[&[u8]], limits: NodeLimits) {
        let incoming: usize = strings.iter().map(|s| s.len()).sum();
        let b = match self.blocks.last_entry() {
            Some(last) if !last.get().is_full(limits, incoming) => last.into_mut(),
            full => {
                // The finished block will not grow again: give back its spare capacity.
                if let Some(mut last) = full {
                    last.get_mut().data.shrink_to_fit();
                }
                // Above every block's first ID, so a new last block.
                self.blocks.entry(id).or_default()
            }
        };
        b.append(id, strings);
        self.len += 1;
        self.last_id = id;
        self.entries_added += 1;
    }

    /// The first live entry.
    pub fn first(&self) -> Option<EntryRef<'_>> {
        self.range(StreamId::MIN, StreamId::MAX).next()
    }

    /// The last live entry.
    pub fn last(&self) -> Option<EntryRef<'_>> {
        self.range_rev(StreamId::MIN, StreamId::MAX).next()
    }

    /// Entries with `start <= id <= end`, ascending. O(log n) to find the start.
    pub fn range(&self, start: StreamId, end: StreamId) -> impl Iterator<Item = EntryRef<'_>> {
        // The block that may hold `start` is the last one that began at or before it.
        let from = self
            .blocks
            .range(..=start)
            .next_back()
            .map_or(start, |(k, _)| *k);
        let ok = start <= end;
        self.blocks
            .range(from..)
            .take_while(move |(k, _)| ok && **k <= end)
            .flat_map(|(_, b)| b.entries().map(|(e, _)| e))
            .skip_while(move |e| e.id < start)
            .take_while(move |e| e.id <= end)
    }

    /// Entries with `start <= id <= end`, descending.
    pub fn range_rev(&self, start: StreamId, end: StreamId) -> impl Iterator<Item = EntryRef<'_>> {
        let ok = start <= end;
        let lo = self
            .blocks
            .range(..=start)
            .next_back()
            .map_or(start, |(k, _)| *k);
        let blocks = if ok {
            Some(self.blocks.range(lo..=end))
        } else {
            None
        };
        blocks
            .into_iter()
            .flatten()
            .rev()
            .flat_map(|(_, b)| {
                let v: Vec<EntryRef<'_>> = b.entries().map(|(e, _)| e).collect();
                v.into_iter().rev()
            })
            .skip_while(move |e| e.id > end)
            .take_while(move |e| e.id >= start)
    }

    /// The first live entry's ID, 0-0 when empty (Redis's recorded first ID).
    pub fn first_id(&self) -> StreamId {
        self.first().map_or(StreamId::MIN, |e| e.id)
    }

    /// The last live entry's ID, 0-0 when empty.
    pub fn last_valid_id(&self) -> StreamId {
        self.last().map_or(StreamId::MIN, |e| e.id)
    }

    /// Whether a deleted entry may lie between `start` and `end` (Redis's
    /// `streamRangeHasTombstones`).
    pub fn has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        if self.len == 0 || self.max_deleted == StreamId::MIN {
            return false;
        }
        if self.first_id() > self.max_deleted {
            return false;
        }
        start <= self.max_deleted && self.max_deleted <= end
    }

    /// How many entries were added up to `id`, when that can be known (Redis's
    /// `streamEstimateDistanceFromFirstEverEntry`); -1 when not.
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        if self.len == 0 && id <= self.last_id {
            return self.entries_added as i64;
        }
        if id == self.last_id {
            return self.entries_added as i64;
        }
        if id > self.last_id {
            return -1;
        }
        let first = self.first_id();
        if self.max_deleted == StreamId::MIN || self.max_deleted < first {
            if id < first {
                return (self.entries_added - self.len as u64) as i64;
            }
            if id == first {
                return (self.entries_added - self.len as u64 + 1) as i64;
            }
        }
        -1
    }

    /// A group's lag (entries not yet delivered to it), None when unknown.
    pub fn lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != -1 && !self.has_tombstones(g.last_id, StreamId::MAX) {
            return Some(self.entries_added as i64 - g.entries_read);
        }
        let read = self.estimate_distance(g.last_id);
        (read != -1).then(|| self.entries_added as i64 - read)
    }

    /// The live entries block by block, in ID order (persistence writes one listpack node
    /// per block). Blocks are never empty.
    pub fn block_entries(&self) -> impl Iterator<Item = impl Iterator<Item = EntryRef<'_>>> {
        self.blocks.values().map(|b| b.entries().map(|(e, _)| e))
    }

    /// Number of blocks (reported as XINFO's `radix-tree-keys`).
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Whether an entry with this ID exists.
    pub fn contains(&self, id: StreamId) -> bool {
        self.range(id, id).next().is_some()
    }

    /// Deletes one entry; false if absent.
    pub fn remove(&mut self, id: StreamId) -> bool {
        let Some((&k, b)) = self.blocks.range_mut(..=id).next_back() else {
            return false;
        };
        if b.retain(|e| e != id) == 0 {
            return false;
        }
        if b.len == 0 {
            self.blocks.remove(&k);
        }
        self.len -= 1;
        if id > self.max_deleted {
            self.max_deleted = id;
        }
        true
    }

    /// Trims the oldest entries: while `over(len, first id)` says so. Unlike XDEL, trimming
    /// leaves `max_deleted` alone, as Redis does. With `approx`, only
    /// whole blocks go (at most `limit` entries; 0 = no limit), as Redis's `~`. Returns how
    /// many entries were removed.
    pub fn trim(
        &mut self,
        mut over: impl FnMut(usize, StreamId) -> bool,
        approx: bool,
        limit: usize,
    ) -> usize {
        let mut removed = 0;
        while let Some(mut ent) = self.blocks.first_entry() {
            let blen = ent.get().len as usize;
            let last = ent.get().last;
            // A whole block can go if the trim still wants entries after dropping it: for
            // MAXLEN, len - blen >= max; for MINID, its last entry is below the min.
            if over_after(&mut over, self.len, blen, last) {
                if limit != 0 && removed + blen > limit {
                    break;
                }
                ent.remove();
                self.len -= blen;
                removed += blen;
                continue;
            }
            if approx {
                break;
            }
            // Exact: drop entries one by one from this block.
            let mut len = self.len;
            let b = ent.get_mut();
            let n = b.retain(|id| {
                if over(len, id) {
                    len -= 1;
                    false
                } else {
                    true
                }
            });
            self.len -= n;
            removed += n;
            if b.len == 0 {
                ent.remove();
                continue;
            }
            break;
        }
        removed
    }

    /// Mixes the stream's contents into a DEBUG DIGEST exactly as Redis does (after
    /// `digest.rs` has mixed in the type): each entry's `ms.seq`, then its strings in order.
    pub fn digest_into(&self, d: &mut [u8; 20]) {
        for e in self.range(StreamId::MIN, StreamId::MAX) {
            crate::digest::mix_in(d, format!("{}.{}", e.id.ms, e.id.seq).as_bytes());
            for s in e.strings() {
                crate::digest::mix_in(d, s);
            }
        }
    }

    /// Heap bytes owned.
    pub fn heap_size(&self) -> usize {
        // A B-tree node holds up to 11 keys and values; count the blocks' buffers and about
        // the map's share per block.
        let blocks: usize = self
            .blocks
            .values()
            .map(|b| b.data.capacity() + std::mem::size_of::<(StreamId, Block)>() + 8)
            .sum();
        let groups: usize = self
            .groups
            .iter()
            .map(|(n, g)| {
                n.len()
                    + std::mem::size_of::<Group>()
                    + g.pel.len() * (std::mem::size_of::<(StreamId, Nack)>() + 16)
                    + g.consumers
                        .iter()
                        .map(|(c, cs)| c.len() + 64 + cs.pel.len() * 24)
                        .sum::<usize>()
            })
            .sum();
        blocks + groups
    }
}

/// Whether the trim would still want more gone after removing a whole block of `blen`
/// entries whose last ID is `last`.
fn over_after(
    over: &mut impl FnMut(usize, StreamId) -> bool,
    len: usize,
    blen: usize,
    last: StreamId,
) -> bool {
    // MAXLEN's predicate ignores the ID, MINID's ignores the length: asking about the state
    // just before the block's last entry goes answers both.
    over(len - blen + 1, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(it: impl Iterator<Item = StreamId>) -> Vec<(u64, u64)> {
        it.map(|i| (i.ms, i.seq)).collect()
    }

    #[test]
    fn entries_round_trip_across_blocks() {
        let mut s = Stream::new();
        for i in 1..=250u64 {
            s.append(StreamId::new(i / 3, i), &[b"f", format!("v{i}").as_bytes()]);
        }
        assert_eq!(s.len(), 250);
        assert_eq!(s.blocks.len(), 3);
        let all: Vec<_> = s.range(StreamId::MIN, StreamId::MAX).collect();
        assert_eq!(all.len(), 250);
        assert_eq!(all[149].id, StreamId::new(50, 150));
        let v: Vec<_> = all[149].strings().collect();
        assert_eq!(v, vec![&b"f"[..], b"v150"]);
        let mid = ids(s
            .range(StreamId::new(33, 0), StreamId::new(34, 102))
            .map(|e| e.id));
        assert_eq!(mid, vec![(33, 99), (33, 100), (33, 101), (34, 102)]);
        let rev = ids(s
            .range_rev(StreamId::new(33, 0), StreamId::new(34, 101))
            .map(|e| e.id));
        assert_eq!(rev, vec![(33, 101), (33, 100), (33, 99)]);
    }

    #[test]
    fn removal_and_trimming_keep_counts() {
        let mut s = Stream::new();
        for i in 1..=250u64 {
            s.append(StreamId::new(i, 0), &[b"f", b"v"]);
        }
        assert!(s.remove(StreamId::new(5, 0)));
        assert!(!s.remove(StreamId::new(5, 0)));
        assert_eq!(s.len(), 249);
        // Approximate: only the first whole block (99 live entries) can go.
        let n = s.trim(|len, _| len > 120, true, 0);
        assert_eq!(n, 99);
        assert_eq!(s.len(), 150);
        let n = s.trim(|len, _| len > 120, false, 0);
        assert_eq!(n, 30);
        assert_eq!(s.first().unwrap().id, StreamId::new(131, 0));
        let n = s.trim(|_, id| id < StreamId::new(200, 0), false, 0);
        assert_eq!(n, 69);
        // Trimming is not deletion: only XDEL moves the max deleted ID (as in Redis).
        assert_eq!(s.max_deleted, StreamId::new(5, 0));
    }
}
