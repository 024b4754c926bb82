//! The sorted set type: unique members, each with a score, ordered by (score, member).
//!
//! Two encodings, converted exactly when Redis 7.0 converts them (never back):
//!
//! * **listpack** ([`Pack`]): small sets live in one packed byte buffer, entries in order,
//!   each `score (8 bytes) | member length (LEB128) | member`. Every operation is a linear
//!   scan, as in Redis's listpack; a set only stays here while it has at most
//!   `zset-max-listpack-entries` members of at most `zset-max-listpack-value` bytes.
//!   Like Redis's listpack (which stores scores as text and reads `-0` back as `0`), it
//!   keeps a negative zero as `0`.
//! * **skiplist** ([`Tree`]): an arena of items (score + member, members up to 22 bytes
//!   stored inline), a hash index from member to item (`HashTable<u32>`: 4 bytes a slot),
//!   and an order-statistics B+tree over `(score, item id)` whose inner nodes count the
//!   elements under each child. Rank, select-by-rank and score/lex bounds are
//!   O(log n); ranges are walked leaf by leaf without touching the rest of the set. Leaves
//!   hold scores next to ids, so most comparisons never leave the leaf; only score ties
//!   look at members. About 60 bytes per short member, against Redis's ~110.
//!
//! Range queries return spans of ranks (`[lo, hi)`), which the commands then walk in
//! either direction; this makes LIMIT offsets O(log n) instead of a walk.

use std::cmp::Ordering;
use std::hash::BuildHasher;
use std::sync::OnceLock;

use hashbrown::HashTable;
use smallvec::SmallVec;

/// When a set must leave the listpack encoding (`zset-max-listpack-entries` / `-value`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub entries: usize,
    pub value: usize,
}

impl Limits {
    /// Whether a set of `len` members, the longest `max_member` bytes, fits a listpack.
    pub fn fits(&self, len: usize, max_member: usize) -> bool {
        len <= self.entries && max_member <= self.value
    }
}

/// A score interval: `min`/`max` with `(` exclusive flags, as ZRANGEBYSCORE parses them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreRange {
    pub min: f64,
    pub max: f64,
    pub minex: bool,
    pub maxex: bool,
}

impl ScoreRange {
    #[inline]
    pub fn gte_min(&self, s: f64) -> bool {
        if self.minex {
            s > self.min
        } else {
            s >= self.min
        }
    }

    #[inline]
    pub fn lte_max(&self, s: f64) -> bool {
        if self.maxex {
            s < self.max
        } else {
            s <= self.max
        }
    }

    /// A range no score can fall in (min above max, or an open empty interval).
    pub fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.minex || self.maxex))
    }
}

/// One end of a lexicographic range: `-`, `+`, `[member` or `(member`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LexBound<'a> {
    NegInf,
    PosInf,
    Incl(&'a [u8]),
    Excl(&'a [u8]),
}

impl LexBound<'_> {
    /// Order of bounds as Redis's `sdscmplex`: `-` below every string, `+` above.
    fn cmp_bound(&self, other: &LexBound<'_>) -> Ordering {
        let key = |b: &LexBound<'_>| -> (u8, Vec<u8>) {
            match b {
                LexBound::NegInf => (0, Vec::new()),
                LexBound::Incl(s) | LexBound::Excl(s) => (1, s.to_vec()),
                LexBound::PosInf => (2, Vec::new()),
            }
        };
        key(self).cmp(&key(other))
    }

    /// Redis marks `-`, `+` and `(x` as exclusive.
    fn exclusive(&self) -> bool {
        !matches!(self, LexBound::Incl(_))
    }
}

/// A lexicographic interval (ZRANGEBYLEX).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LexRange<'a> {
    pub min: LexBound<'a>,
    pub max: LexBound<'a>,
}

impl LexRange<'_> {
    #[inline]
    pub fn gte_min(&self, m: &[u8]) -> bool {
        match self.min {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Incl(b) => m >= b,
            LexBound::Excl(b) => m > b,
        }
    }

    #[inline]
    pub fn lte_max(&self, m: &[u8]) -> bool {
        match self.max {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Incl(b) => m <= b,
            LexBound::Excl(b) => m < b,
        }
    }

    /// A range no member can fall in.
    pub fn is_empty(&self) -> bool {
        match self.min.cmp_bound(&self.max) {
            Ordering::Greater => true,
            Ordering::Equal => self.min.exclusive() || self.max.exclusive(),
            Ordering::Less => false,
        }
    }
}

/// A sorted set.
#[derive(Clone)]
pub struct ZSet(Repr);

#[derive(Clone)]
enum Repr {
    Pack(Pack),
    Tree(Box<Tree>),
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet(Repr::Pack(Pack::default()))
    }
}

impl std::fmt::Debug for ZSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(m, s)| (String::from_utf8_lossy(m), s)))
            .finish()
    }
}

impl PartialEq for ZSet {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl ZSet {
    /// An empty set in the encoding Redis 7.0's ZADD creates for a first member of
    /// `first_len` bytes.
    pub fn new(first_len: usize, lim: Limits) -> Self {
        if lim.entries == 0 || first_len > lim.value {
            ZSet(Repr::Tree(Box::default()))
        } else {
            ZSet::default()
        }
    }

    /// A set from members already sorted by (score, member) and distinct, in the encoding
    /// Redis gives a computed result (ZUNIONSTORE & co): listpack if it fits `lim`.
    pub fn from_sorted<M: AsRef<[u8]>>(sorted: Vec<(M, f64)>, lim: Limits) -> Self {
        let longest = sorted
            .iter()
            .map(|(m, _)| m.as_ref().len())
            .max()
            .unwrap_or(0);
        if lim.fits(sorted.len(), longest) {
            ZSet(Repr::Pack(Pack::from_sorted(
                sorted.iter().map(|(m, s)| (m.as_ref(), *s)),
            )))
        } else {
            ZSet(Repr::Tree(Box::new(Tree::from_sorted(
                sorted.iter().map(|(m, s)| (m.as_ref(), *s)),
                sorted.len(),
            ))))
        }
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Pack(p) => p.len(),
            Repr::Tree(t) => t.order.len,
        }
    }

    /// (buckets, members) of the skiplist encoding's member table, None for a listpack
    /// (DEBUG HTSTATS-KEY).
    pub fn table_stats(&self) -> Option<(usize, usize)> {
        match &self.0 {
            Repr::Pack(_) => None,
            Repr::Tree(t) => Some((crate::util::table_buckets(&t.index), t.order.len)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every (member, score) in ascending order.
    pub fn iter(&self) -> Range<'_> {
        self.range(0, self.len(), false)
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        match &self.0 {
            Repr::Pack(_) => "listpack",
            Repr::Tree(_) => "skiplist",
        }
    }

    /// Heap bytes owned.
    pub fn heap_size(&self) -> usize {
        match &self.0 {
            Repr::Pack(p) => p.buf.len(),
            Repr::Tree(t) => std::mem::size_of::<Tree>() + t.heap_size(),
        }
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.0 {
            Repr::Pack(p) => p.find(member).map(|(_, s)| s),
            Repr::Tree(t) => t.find(member).map(|id| t.items.get(id).score),
        }
    }

    /// Adds a member that is not in the set, converting to the skiplist encoding first when
    /// the listpack would outgrow `lim` (as Redis checks before inserting).
    pub fn insert(&mut self, member: &[u8], score: f64, lim: Limits) {
        if let Repr::Pack(p) = &self.0 {
            if !lim.fits(p.len() + 1, member.len()) {
                self.convert();
            }
        }
        match &mut self.0 {
            Repr::Pack(p) => p.insert(member, score),
            Repr::Tree(t) => t.insert_new(member, score),
        }
    }

    /// Changes the score of a member that is in the set.
    pub fn update(&mut self, member: &[u8], score: f64) {
        match &mut self.0 {
            Repr::Pack(p) => {
                if let Some((off, _)) = p.find(member) {
                    p.remove_at(off);
                    p.insert(member, score);
                }
            }
            Repr::Tree(t) => {
                if let Some(id) = t.find(member) {
                    t.set_score(id, score);
                }
            }
        }
    }

    /// Removes a member; its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.0 {
            Repr::Pack(p) => {
                let (off, s) = p.find(member)?;
                p.remove_at(off);
                Some(s)
            }
            Repr::Tree(t) => {
                let s = t.remove(member);
                if s.is_some() {
                    t.maybe_compact();
                }
                s
            }
        }
    }

    /// The 0-based ascending rank of `member`, and its score.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        match &self.0 {
            Repr::Pack(p) => {
                let mut off = HDR;
                let mut rank = 0;
                while off < p.end() {
                    let (s, m, next) = p.entry(off);
                    if m == member {
                        return Some((rank, s));
                    }
                    rank += 1;
                    off = next;
                }
                None
            }
            Repr::Tree(t) => {
                let id = t.find(member)?;
                let score = t.items.get(id).score;
                let items = &t.items;
                Some((
                    t.order
                        .count_before(|s, i| key_cmp(items, (s, i), (score, id)).is_lt()),
                    score,
                ))
            }
        }
    }

    /// Members at ranks `lo..hi` (clamped to the set), ascending, or descending from
    /// `hi - 1` down to `lo` when `rev`.
    pub fn range(&self, lo: usize, hi: usize, rev: bool) -> Range<'_> {
        let hi = hi.min(self.len());
        let lo = lo.min(hi);
        let n = hi - lo;
        match &self.0 {
            Repr::Pack(p) => {
                if rev {
                    let mut offs: SmallVec<[u32; 32]> = SmallVec::with_capacity(n);
                    let mut off = p.offset_of(lo);
                    for _ in 0..n {
                        offs.push(off as u32);
                        off = p.entry(off).2;
                    }
                    Range(RangeInner::PackRev { pack: p, offs })
                } else {
                    Range(RangeInner::Pack {
                        pack: p,
                        off: p.offset_of(lo),
                        left: n,
                    })
                }
            }
            Repr::Tree(t) => {
                let start = if rev { hi.saturating_sub(1) } else { lo };
                Range(RangeInner::Tree {
                    items: &t.items,
                    keys: t.order.keys_from(start, n, rev),
                })
            }
        }
    }

    /// The ranks `[lo, hi)` of the members whose scores are in `r`.
    pub fn score_span(&self, r: &ScoreRange) -> (usize, usize) {
        if r.is_empty() {
            return (0, 0);
        }
        let (lo, hi) = match &self.0 {
            Repr::Pack(p) => {
                let (mut lo, mut hi) = (0, 0);
                let mut off = HDR;
                while off < p.end() {
                    let (s, _, next) = p.entry(off);
                    if !r.gte_min(s) {
                        lo += 1;
                    }
                    if !r.lte_max(s) {
                        break;
                    }
                    hi += 1;
                    off = next;
                }
                (lo, hi)
            }
            Repr::Tree(t) => (
                t.order.count_before(|s, _| !r.gte_min(s)),
                t.order.count_before(|s, _| r.lte_max(s)),
            ),
        };
        (lo, hi.max(lo))
    }

    /// The ranks `[lo, hi)` of the members in the lex range `r`. Lex ranges assume all
    /// scores are equal; when they are not, a listpack is searched as Redis does (a linear
    /// scan from the end the command walks from, `rev` meaning from the tail), so the
    /// result stays the same as Redis's for small sets.
    pub fn lex_span(&self, r: &LexRange<'_>, rev: bool) -> (usize, usize) {
        if r.is_empty() || self.is_empty() {
            return (0, 0);
        }
        match &self.0 {
            Repr::Pack(p) => {
                let mut all: SmallVec<[&[u8]; 32]> = SmallVec::with_capacity(p.len());
                let mut off = HDR;
                while off < p.end() {
                    let (_, m, next) = p.entry(off);
                    all.push(m);
                    off = next;
                }
                // Redis first checks the last member against min and the first against max.
                if !r.gte_min(all[all.len() - 1]) || !r.lte_max(all[0]) {
                    return (0, 0);
                }
                if rev {
                    let Some(hi) = all.iter().rposition(|m| r.lte_max(m)) else {
                        return (0, 0);
                    };
                    if !r.gte_min(all[hi]) {
                        return (0, 0);
                    }
                    let lo = all[..hi]
                        .iter()
                        .rposition(|m| !r.gte_min(m))
                        .map_or(0, |i| i + 1);
                    (lo, hi + 1)
                } else {
                    let Some(lo) = all.iter().position(|m| r.gte_min(m)) else {
                        return (0, 0);
                    };
                    if !r.lte_max(all[lo]) {
                        return (0, 0);
                    }
                    let hi = all[lo..]
                        .iter()
                        .position(|m| !r.lte_max(m))
                        .map_or(all.len(), |i| lo + i);
                    (lo, hi)
                }
            }
            Repr::Tree(t) => {
                let items = &t.items;
                let lo = t.order.count_before(|_, id| !r.gte_min(items.member(id)));
                let hi = t.order.count_before(|_, id| r.lte_max(items.member(id)));
                (lo, hi.max(lo))
            }
        }
    }

    /// Removes the members at ranks `lo..hi`; how many were removed.
    pub fn remove_span(&mut self, lo: usize, hi: usize) -> usize {
        let hi = hi.min(self.len());
        if lo >= hi {
            return 0;
        }
        match &mut self.0 {
            Repr::Pack(p) => {
                let start = p.offset_of(lo);
                let mut end = start;
                for _ in lo..hi {
                    end = p.entry(end).2;
                }
                p.remove_bytes(start, end, hi - lo);
            }
            Repr::Tree(t) => t.remove_span(lo, hi),
        }
        hi - lo
    }

    /// Removes and returns the lowest (or highest, `max`) member and its score.
    pub fn pop(&mut self, max: bool) -> Option<(Vec<u8>, f64)> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let rank = if max { n - 1 } else { 0 };
        let (m, s) = self.range(rank, rank + 1, false).next()?;
        let m = m.to_vec();
        self.remove_span(rank, rank + 1);
        Some((m, s))
    }

    /// One ZSCAN step from `cursor`: calls `f` for about `count` members and returns the
    /// cursor to continue from (0 when done). A listpack is returned whole, as Redis does;
    /// a skiplist is walked by item slot, which never moves while the member exists, so
    /// every member present for the whole scan is returned.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], f64)) -> u64 {
        match &self.0 {
            Repr::Pack(_) => {
                for (m, s) in self.iter() {
                    f(m, s);
                }
                0
            }
            Repr::Tree(t) => {
                let slots = t.items.slots as u64;
                let mut slot = cursor;
                let mut found = 0;
                // Like Redis's dictScan loop: stop after `count` members or 10x as many
                // empty slots.
                let mut budget = count.saturating_mul(10).max(1);
                while slot < slots && found < count && budget > 0 {
                    let it = t.items.get(slot as u32);
                    if let Some(m) = it.member.live() {
                        f(m, it.score);
                        found += 1;
                    }
                    slot += 1;
                    budget -= 1;
                }
                if slot >= slots {
                    0
                } else {
                    slot
                }
            }
        }
    }

    /// Switches to the skiplist encoding (also what Redis 7.0's SORT does to a listpack
    /// sorted set it reads).
    pub fn convert(&mut self) {
        if let Repr::Pack(p) = &self.0 {
            let t = Tree::from_sorted(p.iter(), p.len());
            self.0 = Repr::Tree(Box::new(t));
        }
    }
}

/// Members with their scores over a span of ranks (see [`ZSet::range`]).
pub struct Range<'a>(RangeInner<'a>);

enum RangeInner<'a> {
    Pack {
        pack: &'a Pack,
        off: usize,
        left: usize,
    },
    PackRev {
        pack: &'a Pack,
        offs: SmallVec<[u32; 32]>,
    },
    Tree {
        items: &'a Arena,
        keys: KeyIter<'a>,
    },
}

impl<'a> Iterator for Range<'a> {
    type Item = (&'a [u8], f64);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            RangeInner::Pack { pack, off, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let (s, m, next) = pack.entry(*off);
                *off = next;
                Some((m, s))
            }
            RangeInner::PackRev { pack, offs } => {
                let off = offs.pop()?;
                let (s, m, _) = pack.entry(off as usize);
                Some((m, s))
            }
            RangeInner::Tree { items, keys } => {
                let (s, id) = keys.next()?;
                Some((items.member(id), s))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            RangeInner::Pack { left, .. } => *left,
            RangeInner::PackRev { offs, .. } => offs.len(),
            RangeInner::Tree { keys, .. } => keys.left,
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Range<'_> {}

// --- listpack -------------------------------------------------------------------------------

/// Bytes before the first entry: the number of entries (u32 LE).
const HDR: usize = 4;

/// The compact encoding: one exactly-sized allocation holding the entry count, then the
/// entries in order, each `score | member length (LEB128) | member`. A score that is a
/// small integer takes 1, 3 or 5 bytes (most real scores are), one exact as an f32 5, any
/// other 9 (see [`put_score`]).
#[derive(Clone, Default)]
struct Pack {
    buf: Box<[u8]>,
}

/// Score tags: a first byte up to `SMALL_MAX` is an integer `byte - SMALL_BIAS`.
const SMALL_BIAS: i32 = 100;
const SMALL_MAX: u8 = 0xFB;
const TAG_F32: u8 = 0xFC;
const TAG_I16: u8 = 0xFD;
const TAG_I32: u8 = 0xFE;
const TAG_F64: u8 = 0xFF;

fn put_score(out: &mut SmallVec<[u8; 64]>, score: f64) {
    // Redis's listpack keeps scores as text and reads "-0" back as the integer 0.
    let s = if score == 0.0 { 0.0 } else { score };
    if s.fract() == 0.0 && s.abs() <= f64::from(i32::MAX) {
        let i = s as i32;
        if (-SMALL_BIAS..=i32::from(SMALL_MAX) - SMALL_BIAS).contains(&i) {
            out.push((i + SMALL_BIAS) as u8);
        } else if let Ok(v) = i16::try_from(i) {
            out.push(TAG_I16);
            out.extend_from_slice(&v.to_le_bytes());
        } else {
            out.push(TAG_I32);
            out.extend_from_slice(&i.to_le_bytes());
        }
    } else if f64::from(s as f32) == s {
        // Halves, quarters and the like are exact in 4 bytes.
        out.push(TAG_F32);
        out.extend_from_slice(&(s as f32).to_le_bytes());
    } else {
        out.push(TAG_F64);
        out.extend_from_slice(&s.to_le_bytes());
    }
}

/// Decodes the score at `b[0..]`: (score, bytes used).
#[inline]
fn get_score(b: &[u8]) -> (f64, usize) {
    match b[0] {
        TAG_I16 => (f64::from(i16::from_le_bytes([b[1], b[2]])), 3),
        TAG_I32 => (f64::from(i32::from_le_bytes([b[1], b[2], b[3], b[4]])), 5),
        TAG_F32 => (f64::from(f32::from_le_bytes([b[1], b[2], b[3], b[4]])), 5),
        TAG_F64 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&b[1..9]);
            (f64::from_le_bytes(raw), 9)
        }
        small => (f64::from(i32::from(small) - SMALL_BIAS), 1),
    }
}

impl Pack {
    fn len(&self) -> usize {
        match self.buf.get(..HDR) {
            Some(h) => u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize,
            None => 0,
        }
    }

    /// Offset just past the last entry.
    #[inline]
    fn end(&self) -> usize {
        self.buf.len()
    }

    /// Rewrites the buffer through a Vec (no copy), with the count adjusted by `delta`.
    fn edit(&mut self, delta: isize, f: impl FnOnce(&mut Vec<u8>)) {
        let n = self.len();
        let mut v = std::mem::take(&mut self.buf).into_vec();
        if v.len() < HDR {
            v.resize(HDR, 0);
        }
        f(&mut v);
        let n = (n as isize + delta) as u32;
        v[..HDR].copy_from_slice(&n.to_le_bytes());
        // Exact size, like a listpack's realloc: small sets stay small.
        self.buf = v.into_boxed_slice();
    }

    /// The entry at byte offset `off`: (score, member, offset of the next entry).
    #[inline]
    fn entry(&self, off: usize) -> (f64, &[u8], usize) {
        let b = &self.buf;
        let (score, n) = get_score(&b[off..]);
        let (mlen, m) = read_varint(&b[off + n..]);
        let start = off + n + m;
        (score, &b[start..start + mlen], start + mlen)
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], f64)> {
        let mut off = HDR;
        std::iter::from_fn(move || {
            if off >= self.end() {
                return None;
            }
            let (s, m, next) = self.entry(off);
            off = next;
            Some((m, s))
        })
    }

    fn find(&self, member: &[u8]) -> Option<(usize, f64)> {
        let mut off = HDR;
        while off < self.end() {
            let (s, m, next) = self.entry(off);
            if m == member {
                return Some((off, s));
            }
            off = next;
        }
        None
    }

    /// Byte offset of the entry at `rank` (the end for `rank == len`).
    fn offset_of(&self, rank: usize) -> usize {
        let mut off = HDR;
        for _ in 0..rank {
            if off >= self.end() {
                break;
            }
            off = self.entry(off).2;
        }
        off.min(self.end().max(HDR))
    }

    fn encode(member: &[u8], score: f64) -> SmallVec<[u8; 64]> {
        let mut e = SmallVec::new();
        put_score(&mut e, score);
        write_varint(&mut e, member.len());
        e.extend_from_slice(member);
        e
    }

    /// Inserts a new member at its place.
    fn insert(&mut self, member: &[u8], score: f64) {
        let mut off = HDR;
        while off < self.end() {
            let (s, m, next) = self.entry(off);
            if s > score || (s == score && m > member) {
                break;
            }
            off = next;
        }
        let e = Self::encode(member, score);
        self.edit(1, |v| {
            v.reserve_exact(e.len());
            let old = v.len();
            v.extend_from_slice(&e);
            let added = v.len() - old;
            v[off.max(HDR)..].rotate_right(added);
        });
    }

    /// A pack of distinct members already in order.
    fn from_sorted<'m>(sorted: impl Iterator<Item = (&'m [u8], f64)>) -> Pack {
        let mut v = vec![0u8; HDR];
        let mut n = 0u32;
        for (m, s) in sorted {
            v.extend_from_slice(&Self::encode(m, s));
            n += 1;
        }
        v[..HDR].copy_from_slice(&n.to_le_bytes());
        Pack {
            buf: v.into_boxed_slice(),
        }
    }

    fn remove_at(&mut self, off: usize) {
        let next = self.entry(off).2;
        self.remove_bytes(off, next, 1);
    }

    /// Removes the `count` entries in bytes `start..end`.
    fn remove_bytes(&mut self, start: usize, end: usize, count: usize) {
        self.edit(-(count as isize), |v| {
            v.drain(start..end);
        });
    }
}

fn write_varint(out: &mut SmallVec<[u8; 64]>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn read_varint(b: &[u8]) -> (usize, usize) {
    let mut v = 0usize;
    let mut shift = 0;
    for (i, &c) in b.iter().enumerate() {
        v |= ((c & 0x7f) as usize) << shift;
        if c < 0x80 {
            return (v, i + 1);
        }
        shift += 7;
    }
    (v, b.len())
}

// --- skiplist: items --------------------------------------------------------------------------

/// Members up to this many bytes are stored inside their item.
const INLINE_MEMBER: usize = 22;

/// A member's bytes, inline when short; `Free` links an unused arena slot.
#[derive(Clone)]
enum Member {
    Inline { len: u8, buf: [u8; INLINE_MEMBER] },
    Heap(Box<[u8]>),
    Free(u32),
}

impl Member {
    fn new(m: &[u8]) -> Self {
        if m.len() <= INLINE_MEMBER {
            let mut buf = [0u8; INLINE_MEMBER];
            buf[..m.len()].copy_from_slice(m);
            Member::Inline {
                len: m.len() as u8,
                buf,
            }
        } else {
            Member::Heap(m.into())
        }
    }

    #[inline]
    fn bytes(&self) -> &[u8] {
        match self {
            Member::Inline { len, buf } => &buf[..*len as usize],
            Member::Heap(b) => b,
            Member::Free(_) => &[],
        }
    }

    fn live(&self) -> Option<&[u8]> {
        match self {
            Member::Free(_) => None,
            m => Some(m.bytes()),
        }
    }

    fn heap(&self) -> usize {
        match self {
            Member::Heap(b) => b.len(),
            _ => 0,
        }
    }
}

#[derive(Clone)]
struct Item {
    score: f64,
    member: Member,
}

const _: () = assert!(std::mem::size_of::<Item>() == 32);
// A 16-byte allocation behind `Value::ZSet`.
const _: () = assert!(std::mem::size_of::<ZSet>() == 16);

const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;
const NONE: u32 = u32::MAX;

/// Items in fixed-size chunks (growing never moves or copies the existing ones), addressed
/// by a u32 id; freed slots are chained through `Member::Free` and reused first.
#[derive(Clone)]
struct Arena {
    chunks: Vec<Vec<Item>>,
    free: u32,
    slots: usize,
    heap: usize,
}

impl Default for Arena {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            free: NONE,
            slots: 0,
            heap: 0,
        }
    }
}

impl Arena {
    #[inline]
    fn get(&self, id: u32) -> &Item {
        &self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
    }

    #[inline]
    fn get_mut(&mut self, id: u32) -> &mut Item {
        &mut self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
    }

    #[inline]
    fn member(&self, id: u32) -> &[u8] {
        self.get(id).member.bytes()
    }

    fn alloc(&mut self, item: Item) -> u32 {
        self.heap += item.member.heap();
        if self.free != NONE {
            let id = self.free;
            let slot = self.get_mut(id);
            let next = match slot.member {
                Member::Free(next) => next,
                _ => NONE,
            };
            *slot = item;
            self.free = next;
            return id;
        }
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let id = self.slots as u32;
        if let Some(c) = self.chunks.last_mut() {
            c.push(item);
        }
        self.slots += 1;
        id
    }

    fn release(&mut self, id: u32) -> Item {
        let free = self.free;
        let old = std::mem::replace(
            self.get_mut(id),
            Item {
                score: 0.0,
                member: Member::Free(free),
            },
        );
        self.heap -= old.member.heap();
        self.free = id;
        old
    }
}

/// Compares two elements by (score, member); `id`s name arena items.
#[inline]
fn key_cmp(items: &Arena, a: (f64, u32), b: (f64, u32)) -> Ordering {
    match a.0.partial_cmp(&b.0) {
        Some(Ordering::Equal) | None => {
            if a.1 == b.1 {
                Ordering::Equal
            } else {
                items.member(a.1).cmp(items.member(b.1))
            }
        }
        Some(o) => o,
    }
}

fn hasher() -> &'static foldhash::fast::FixedState {
    static H: OnceLock<foldhash::fast::FixedState> = OnceLock::new();
    // Seeded randomly once per process, so members cannot be chosen to collide.
    H.get_or_init(|| foldhash::fast::FixedState::with_seed(rand::random()))
}

#[inline]
fn hash_of(m: &[u8]) -> u64 {
    hasher().hash_one(m)
}

/// The skiplist encoding: items, a member index, and the order tree.
#[derive(Clone, Default)]
struct Tree {
    items: Arena,
    index: HashTable<u32>,
    order: Order,
}

impl Tree {
    /// Builds from distinct members in ascending order.
    fn from_sorted<'m>(sorted: impl Iterator<Item = (&'m [u8], f64)>, len: usize) -> Self {
        let mut t = Tree {
            index: HashTable::with_capacity(len),
            ..Tree::default()
        };
        let mut keys = Vec::with_capacity(len);
        for (m, s) in sorted {
            let id = t.items.alloc(Item {
                score: s,
                member: Member::new(m),
            });
            let items = &t.items;
            t.index
                .insert_unique(hash_of(m), id, |&x| hash_of(items.member(x)));
            keys.push((s, id));
        }
        t.order = Order::build(&keys);
        t
    }

    fn heap_size(&self) -> usize {
        self.items
            .chunks
            .iter()
            .map(|c| c.capacity() * 32)
            .sum::<usize>()
            + self.items.chunks.capacity() * 24
            + self.items.heap
            + self.index.capacity() * 5
            + self.order.heap_size()
    }

    #[inline]
    fn find(&self, member: &[u8]) -> Option<u32> {
        self.index
            .find(hash_of(member), |&id| self.items.member(id) == member)
            .copied()
    }

    fn insert_new(&mut self, member: &[u8], score: f64) {
        let id = self.items.alloc(Item {
            score,
            member: Member::new(member),
        });
        let items = &self.items;
        self.index
            .insert_unique(hash_of(member), id, |&x| hash_of(items.member(x)));
        self.order.insert(&self.items, (score, id));
    }

    fn set_score(&mut self, id: u32, score: f64) {
        let old = self.items.get(id).score;
        if !self.order.update_in_place(&self.items, (old, id), score) {
            self.order.remove(&self.items, (old, id));
            self.items.get_mut(id).score = score;
            self.order.insert(&self.items, (score, id));
        } else {
            self.items.get_mut(id).score = score;
        }
    }

    fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let items = &self.items;
        let entry = self
            .index
            .find_entry(hash_of(member), |&id| items.member(id) == member)
            .ok()?;
        let (id, _) = entry.remove();
        let score = self.items.get(id).score;
        self.order.remove(&self.items, (score, id));
        self.items.release(id);
        Some(score)
    }

    /// Drops item `id` from the index and the arena (not from the order).
    fn forget(&mut self, id: u32) {
        let items = &self.items;
        let h = hash_of(items.member(id));
        if let Ok(e) = self.index.find_entry(h, |&x| x == id) {
            e.remove();
        }
        self.items.release(id);
    }

    fn remove_span(&mut self, lo: usize, hi: usize) {
        let n = hi - lo;
        let len = self.order.len;
        if n * 4 <= len {
            // A few: one at a time, O(n log N).
            let keys: Vec<(f64, u32)> = self.order.keys_from(lo, n, false).collect();
            for key in keys {
                self.order.remove(&self.items, key);
                self.forget(key.1);
            }
        } else {
            // Most of the set: rebuild the order from the survivors, O(N).
            let all: Vec<(f64, u32)> = self.order.keys_from(0, len, false).collect();
            let mut keep = Vec::with_capacity(len - n);
            for (rank, key) in all.into_iter().enumerate() {
                if (lo..hi).contains(&rank) {
                    self.forget(key.1);
                } else {
                    keep.push(key);
                }
            }
            self.order = Order::build(&keep);
        }
        self.maybe_compact();
    }

    /// After removals: once most arena slots are free, rebuilds the set densely (in order,
    /// which also makes range walks sequential in memory); otherwise shrinks the index when
    /// it has become mostly empty.
    fn maybe_compact(&mut self) {
        let len = self.order.len;
        if self.items.slots >= 4 * CHUNK && len * 4 < self.items.slots {
            let keys: Vec<(f64, u32)> = self.order.keys_from(0, len, false).collect();
            let mut items = Arena::default();
            let mut index = HashTable::with_capacity(len);
            let mut dense = Vec::with_capacity(len);
            for (s, id) in keys {
                let item = self.items.release(id);
                let h = hash_of(item.member.bytes());
                let nid = items.alloc(item);
                let arena = &items;
                index.insert_unique(h, nid, |&x| hash_of(arena.member(x)));
                dense.push((s, nid));
            }
            *self = Tree {
                items,
                index,
                order: Order::build(&dense),
            };
        } else if self.index.capacity() > 64 && len * 4 < self.index.capacity() {
            let items = &self.items;
            self.index.shrink_to(len * 2, |&x| hash_of(items.member(x)));
        }
    }
}

// --- skiplist: the order-statistics B+tree ---------------------------------------------------

/// Entries per leaf: 8 + 84 * 12 = 1016 bytes, one 1 KiB allocation.
const LEAF_CAP: usize = 84;
const LEAF_MIN: usize = LEAF_CAP / 4;
const INNER_CAP: usize = 64;
const INNER_MIN: usize = INNER_CAP / 4;

#[derive(Clone)]
struct Leaf {
    len: usize,
    scores: [f64; LEAF_CAP],
    ids: [u32; LEAF_CAP],
}

impl Leaf {
    fn empty() -> Box<Leaf> {
        Box::new(Leaf {
            len: 0,
            scores: [0.0; LEAF_CAP],
            ids: [0; LEAF_CAP],
        })
    }

    /// Index of the first entry not below `key`.
    #[inline]
    fn lower_bound(&self, items: &Arena, key: (f64, u32)) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if key_cmp(items, (self.scores[mid], self.ids[mid]), key).is_lt() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn insert_at(&mut self, pos: usize, key: (f64, u32)) {
        self.scores.copy_within(pos..self.len, pos + 1);
        self.ids.copy_within(pos..self.len, pos + 1);
        self.scores[pos] = key.0;
        self.ids[pos] = key.1;
        self.len += 1;
    }

    fn remove_at(&mut self, pos: usize) {
        self.scores.copy_within(pos + 1..self.len, pos);
        self.ids.copy_within(pos + 1..self.len, pos);
        self.len -= 1;
    }

    /// Moves entries `at..` to the front of the empty leaf `to`.
    fn split_into(&mut self, at: usize, to: &mut Leaf) {
        let n = self.len - at;
        to.scores[..n].copy_from_slice(&self.scores[at..self.len]);
        to.ids[..n].copy_from_slice(&self.ids[at..self.len]);
        to.len = n;
        self.len = at;
    }
}

/// A subtree with its smallest key and its number of elements.
#[derive(Clone)]
struct Child {
    score: f64,
    id: u32,
    count: u32,
    node: Node,
}

impl Child {
    fn of(node: Node) -> Child {
        let (score, id) = node.first_key();
        Child {
            score,
            id,
            count: node.count() as u32,
            node,
        }
    }

    /// Re-reads the smallest key after the subtree changed.
    #[inline]
    fn refresh(&mut self) {
        if self.node.entries() > 0 {
            (self.score, self.id) = self.node.first_key();
        }
    }
}

#[derive(Clone)]
enum Node {
    Leaf(Box<Leaf>),
    Inner(Vec<Child>),
}

impl Node {
    fn first_key(&self) -> (f64, u32) {
        match self {
            Node::Leaf(l) => (l.scores[0], l.ids[0]),
            Node::Inner(c) => (c[0].score, c[0].id),
        }
    }

    /// Elements in the subtree.
    fn count(&self) -> usize {
        match self {
            Node::Leaf(l) => l.len,
            Node::Inner(c) => c.iter().map(|c| c.count as usize).sum(),
        }
    }

    /// Entries of this node itself (leaf elements or children).
    fn entries(&self) -> usize {
        match self {
            Node::Leaf(l) => l.len,
            Node::Inner(c) => c.len(),
        }
    }

    fn heap_size(&self) -> usize {
        match self {
            Node::Leaf(_) => std::mem::size_of::<Leaf>(),
            Node::Inner(c) => {
                c.capacity() * std::mem::size_of::<Child>()
                    + c.iter().map(|c| c.node.heap_size()).sum::<usize>()
            }
        }
    }
}

/// Keys `(score, id)` in (score, member) order, each inner node counting its subtrees.
#[derive(Clone)]
struct Order {
    root: Node,
    len: usize,
}

impl Default for Order {
    fn default() -> Self {
        Order {
            root: Node::Leaf(Leaf::empty()),
            len: 0,
        }
    }
}

/// Splits `n` things into `parts` groups whose sizes differ by at most one.
fn even_sizes(n: usize, parts: usize) -> impl Iterator<Item = usize> {
    (0..parts).map(move |i| n / parts + usize::from(i < n % parts))
}

impl Order {
    /// A tree over keys already in order, leaves and inner nodes filled evenly.
    fn build(keys: &[(f64, u32)]) -> Order {
        if keys.is_empty() {
            return Order::default();
        }
        let mut level: Vec<Child> = Vec::with_capacity(keys.len().div_ceil(LEAF_CAP));
        let mut at = 0;
        for size in even_sizes(keys.len(), keys.len().div_ceil(LEAF_CAP)) {
            let mut leaf = Leaf::empty();
            for (i, &(s, id)) in keys[at..at + size].iter().enumerate() {
                leaf.scores[i] = s;
                leaf.ids[i] = id;
            }
            leaf.len = size;
            at += size;
            level.push(Child::of(Node::Leaf(leaf)));
        }
        while level.len() > 1 {
            let parts = level.len().div_ceil(INNER_CAP);
            let mut it = level.into_iter();
            level = even_sizes(it.len(), parts)
                .map(|size| {
                    let mut group = Vec::with_capacity(INNER_CAP);
                    group.extend(it.by_ref().take(size));
                    Child::of(Node::Inner(group))
                })
                .collect();
        }
        let root = level
            .pop()
            .map_or_else(|| Node::Leaf(Leaf::empty()), |c| c.node);
        Order {
            root,
            len: keys.len(),
        }
    }

    fn heap_size(&self) -> usize {
        self.root.heap_size()
    }

    fn insert(&mut self, items: &Arena, key: (f64, u32)) {
        if let Some(right) = insert_rec(&mut self.root, items, key) {
            let left = std::mem::replace(&mut self.root, Node::Inner(Vec::new()));
            let mut children = Vec::with_capacity(INNER_CAP);
            children.push(Child::of(left));
            children.push(right);
            self.root = Node::Inner(children);
        }
        self.len += 1;
    }

    fn remove(&mut self, items: &Arena, key: (f64, u32)) -> bool {
        if !remove_rec(&mut self.root, items, key) {
            return false;
        }
        self.len -= 1;
        // A root with a single child gives way to it.
        while let Node::Inner(c) = &mut self.root {
            if c.len() != 1 {
                break;
            }
            let only = c.pop().map(|c| c.node);
            if let Some(n) = only {
                self.root = n;
            }
        }
        if let Node::Inner(c) = &self.root {
            if c.is_empty() {
                self.root = Node::Leaf(Leaf::empty());
            }
        }
        true
    }

    /// Changes the score of `key` to `score` without moving it, when it stays between its
    /// neighbours in the same leaf (a ZINCRBY that does not change the rank). False if the
    /// key has to move.
    fn update_in_place(&mut self, items: &Arena, key: (f64, u32), score: f64) -> bool {
        let mut node = &mut self.root;
        loop {
            match node {
                Node::Leaf(l) => {
                    let pos = l.lower_bound(items, key);
                    if pos == 0 || pos + 1 >= l.len || l.ids[pos] != key.1 {
                        return false;
                    }
                    let new = (score, key.1);
                    if key_cmp(items, (l.scores[pos - 1], l.ids[pos - 1]), new).is_lt()
                        && key_cmp(items, new, (l.scores[pos + 1], l.ids[pos + 1])).is_lt()
                    {
                        l.scores[pos] = score;
                        return true;
                    }
                    return false;
                }
                Node::Inner(c) => {
                    let p = c.partition_point(|c| !key_cmp(items, (c.score, c.id), key).is_gt());
                    if p == 0 {
                        return false;
                    }
                    node = &mut c[p - 1].node;
                }
            }
        }
    }

    /// How many keys satisfy `before`, which must hold for a prefix of the order (keys
    /// below some bound) and fail for the rest.
    fn count_before(&self, before: impl Fn(f64, u32) -> bool) -> usize {
        let mut node = &self.root;
        let mut acc = 0usize;
        loop {
            match node {
                Node::Leaf(l) => {
                    let (mut lo, mut hi) = (0, l.len);
                    while lo < hi {
                        let mid = (lo + hi) / 2;
                        if before(l.scores[mid], l.ids[mid]) {
                            lo = mid + 1;
                        } else {
                            hi = mid;
                        }
                    }
                    return acc + lo;
                }
                Node::Inner(c) => {
                    let p = c.partition_point(|c| before(c.score, c.id));
                    if p == 0 {
                        return acc;
                    }
                    acc += c[..p - 1].iter().map(|c| c.count as usize).sum::<usize>();
                    node = &c[p - 1].node;
                }
            }
        }
    }

    /// Keys from rank `start`, `n` of them, ascending (or descending when `rev`).
    fn keys_from(&self, start: usize, n: usize, rev: bool) -> KeyIter<'_> {
        let mut path = SmallVec::new();
        let mut node = &self.root;
        let mut rank = if n == 0 { 0 } else { start };
        loop {
            match node {
                Node::Leaf(l) => {
                    return KeyIter {
                        path,
                        leaf: l,
                        pos: rank,
                        left: n,
                        rev,
                    };
                }
                Node::Inner(c) => {
                    let mut i = 0;
                    while i + 1 < c.len() && rank >= c[i].count as usize {
                        rank -= c[i].count as usize;
                        i += 1;
                    }
                    path.push((&c[..], i));
                    node = &c[i].node;
                }
            }
        }
    }
}

fn insert_rec(node: &mut Node, items: &Arena, key: (f64, u32)) -> Option<Child> {
    match node {
        Node::Leaf(leaf) => {
            let pos = leaf.lower_bound(items, key);
            if leaf.len < LEAF_CAP {
                leaf.insert_at(pos, key);
                return None;
            }
            // Full. Rising (or falling) inserts split at the edge, leaving full leaves
            // behind instead of half-empty ones.
            let at = match pos {
                0 => 0,
                LEAF_CAP => LEAF_CAP,
                _ => LEAF_CAP / 2,
            };
            let mut right = Leaf::empty();
            leaf.split_into(at, &mut right);
            if pos < at || at == 0 {
                leaf.insert_at(pos, key);
            } else {
                right.insert_at(pos - at, key);
            }
            Some(Child::of(Node::Leaf(right)))
        }
        Node::Inner(children) => {
            let p = children.partition_point(|c| key_cmp(items, (c.score, c.id), key).is_lt());
            let i = p.saturating_sub(1);
            let split = insert_rec(&mut children[i].node, items, key);
            children[i].count += 1;
            children[i].refresh();
            if let Some(right) = split {
                children[i].count -= right.count;
                children.insert(i + 1, right);
                if children.len() > INNER_CAP {
                    let at = if i + 2 == children.len() {
                        INNER_CAP
                    } else {
                        children.len() / 2
                    };
                    let mut tail = Vec::with_capacity(INNER_CAP);
                    tail.extend(children.drain(at..));
                    return Some(Child::of(Node::Inner(tail)));
                }
            }
            None
        }
    }
}

fn remove_rec(node: &mut Node, items: &Arena, key: (f64, u32)) -> bool {
    match node {
        Node::Leaf(leaf) => {
            let pos = leaf.lower_bound(items, key);
            if pos < leaf.len && leaf.ids[pos] == key.1 {
                leaf.remove_at(pos);
                true
            } else {
                false
            }
        }
        Node::Inner(children) => {
            let p = children.partition_point(|c| !key_cmp(items, (c.score, c.id), key).is_gt());
            if p == 0 {
                return false;
            }
            let i = p - 1;
            if !remove_rec(&mut children[i].node, items, key) {
                return false;
            }
            children[i].count -= 1;
            if children[i].node.entries() == 0 {
                children.remove(i);
                return true;
            }
            children[i].refresh();
            let min = match children[i].node {
                Node::Leaf(_) => LEAF_MIN,
                Node::Inner(_) => INNER_MIN,
            };
            if children[i].node.entries() < min {
                rebalance(children, i);
            }
            true
        }
    }
}

/// Merges the underfull child `i` with a neighbour, or evens the two out when they do not
/// fit in one node.
fn rebalance(children: &mut Vec<Child>, i: usize) {
    if children.len() < 2 {
        return;
    }
    let r = if i + 1 < children.len() { i + 1 } else { i };
    let (a, b) = children.split_at_mut(r);
    let (left, right) = (&mut a[r - 1], &mut b[0]);
    let merged = match (&mut left.node, &mut right.node) {
        (Node::Leaf(x), Node::Leaf(y)) => {
            let total = x.len + y.len;
            if total <= LEAF_CAP {
                x.scores[x.len..total].copy_from_slice(&y.scores[..y.len]);
                x.ids[x.len..total].copy_from_slice(&y.ids[..y.len]);
                x.len = total;
                y.len = 0;
                true
            } else {
                let want = total / 2;
                if x.len < want {
                    let k = want - x.len;
                    x.scores[x.len..want].copy_from_slice(&y.scores[..k]);
                    x.ids[x.len..want].copy_from_slice(&y.ids[..k]);
                    x.len = want;
                    y.remove_front(k);
                } else {
                    y.insert_front(&x.scores[want..x.len], &x.ids[want..x.len]);
                    x.len = want;
                }
                false
            }
        }
        (Node::Inner(x), Node::Inner(y)) => {
            let total = x.len() + y.len();
            if total <= INNER_CAP {
                x.append(y);
                true
            } else {
                let want = total / 2;
                if x.len() < want {
                    let k = want - x.len();
                    x.extend(y.drain(..k));
                } else {
                    let moved: Vec<Child> = x.drain(want..).collect();
                    y.splice(0..0, moved);
                }
                false
            }
        }
        _ => return,
    };
    left.count = left.node.count() as u32;
    left.refresh();
    if merged {
        children.remove(r);
    } else {
        right.count = right.node.count() as u32;
        right.refresh();
    }
}

impl Leaf {
    fn remove_front(&mut self, k: usize) {
        self.scores.copy_within(k..self.len, 0);
        self.ids.copy_within(k..self.len, 0);
        self.len -= k;
    }

    fn insert_front(&mut self, scores: &[f64], ids: &[u32]) {
        let k = scores.len();
        self.scores.copy_within(0..self.len, k);
        self.ids.copy_within(0..self.len, k);
        self.scores[..k].copy_from_slice(scores);
        self.ids[..k].copy_from_slice(ids);
        self.len += k;
    }
}

/// Walks keys leaf by leaf from a starting rank (see [`Order::keys_from`]).
struct KeyIter<'a> {
    /// Inner nodes from the root down, with the child taken in each.
    path: SmallVec<[(&'a [Child], usize); 8]>,
    leaf: &'a Leaf,
    pos: usize,
    left: usize,
    rev: bool,
}

impl KeyIter<'_> {
    /// Moves to the first (or, backwards, last) entry of the next leaf.
    fn step_leaf(&mut self) {
        let fwd = !self.rev;
        while let Some(&(c, i)) = self.path.last() {
            let next = if fwd {
                (i + 1 < c.len()).then_some(i + 1)
            } else {
                i.checked_sub(1)
            };
            let Some(n) = next else {
                self.path.pop();
                continue;
            };
            let last = self.path.len() - 1;
            self.path[last].1 = n;
            let mut node = &c[n].node;
            loop {
                match node {
                    Node::Leaf(l) => {
                        self.leaf = l;
                        self.pos = if fwd { 0 } else { l.len.saturating_sub(1) };
                        return;
                    }
                    Node::Inner(cc) => {
                        let k = if fwd { 0 } else { cc.len() - 1 };
                        self.path.push((&cc[..], k));
                        node = &cc[k].node;
                    }
                }
            }
        }
        self.left = 0;
    }
}

impl Iterator for KeyIter<'_> {
    type Item = (f64, u32);

    #[inline]
    fn next(&mut self) -> Option<(f64, u32)> {
        if self.left == 0 || self.pos >= self.leaf.len {
            return None;
        }
        let key = (self.leaf.scores[self.pos], self.leaf.ids[self.pos]);
        self.left -= 1;
        if self.left > 0 {
            if self.rev {
                if self.pos == 0 {
                    self.step_leaf();
                } else {
                    self.pos -= 1;
                }
            } else {
                self.pos += 1;
                if self.pos == self.leaf.len {
                    self.step_leaf();
                }
            }
        }
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const SMALL: Limits = Limits {
        entries: 128,
        value: 64,
    };
    const NONE_COMPACT: Limits = Limits {
        entries: 0,
        value: 0,
    };

    /// A reference model: a sorted Vec.
    fn model_sorted(m: &std::collections::HashMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
        let mut v: Vec<_> = m.iter().map(|(k, s)| (k.clone(), *s)).collect();
        v.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then_with(|| a.0.cmp(&b.0)));
        v
    }

    fn check(z: &ZSet, model: &std::collections::HashMap<Vec<u8>, f64>) {
        let want = model_sorted(model);
        assert_eq!(z.len(), want.len());
        let got: Vec<(Vec<u8>, f64)> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        assert_eq!(got, want);
        let rev: Vec<(Vec<u8>, f64)> = z
            .range(0, z.len(), true)
            .map(|(m, s)| (m.to_vec(), s))
            .collect();
        let mut w2 = want.clone();
        w2.reverse();
        assert_eq!(rev, w2);
        for (i, (m, s)) in want.iter().enumerate().step_by(7) {
            assert_eq!(z.rank(m), Some((i, *s)));
            assert_eq!(z.score(m), Some(*s));
            let (gm, gs) = z.range(i, i + 1, false).next().unwrap();
            assert_eq!((gm, gs), (&m[..], *s));
        }
        if let Repr::Tree(t) = &z.0 {
            check_tree(&t.order.root, &t.items, true);
            assert_eq!(t.order.root.count(), t.order.len);
        }
    }

    fn check_tree(n: &Node, items: &Arena, root: bool) -> usize {
        match n {
            Node::Leaf(l) => {
                for i in 1..l.len {
                    assert!(key_cmp(
                        items,
                        (l.scores[i - 1], l.ids[i - 1]),
                        (l.scores[i], l.ids[i])
                    )
                    .is_lt());
                }
                if !root {
                    assert!(l.len > 0);
                }
                1
            }
            Node::Inner(c) => {
                let mut depth = None;
                for ch in c {
                    assert_eq!(ch.count as usize, ch.node.count());
                    assert_eq!((ch.score, ch.id), ch.node.first_key());
                    let d = check_tree(&ch.node, items, false);
                    assert!(depth.is_none_or(|x| x == d));
                    depth = Some(d);
                }
                depth.unwrap_or(0) + 1
            }
        }
    }

    fn random_ops(lim: Limits, n: usize, seed: u64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut z = ZSet::new(1, lim);
        let mut model = std::collections::HashMap::new();
        for step in 0..n {
            let m = format!("m{}", rng.gen_range(0..n / 2 + 10)).into_bytes();
            // Mostly few distinct scores (ties order by member), some of every encoding.
            let s = match rng.gen_range(0..8) {
                0 => f64::from(rng.gen_range(-40_000..40_000)),
                1 => f64::from(rng.gen::<i32>()),
                2 => rng.gen_range(-1e3..1e3),
                _ => f64::from(rng.gen_range(0..50)),
            };
            match rng.gen_range(0..10) {
                0..=5 => {
                    if model.contains_key(&m) {
                        z.update(&m, s);
                    } else {
                        z.insert(&m, s, lim);
                    }
                    model.insert(m, s);
                }
                6..=7 => {
                    assert_eq!(z.remove(&m), model.remove(&m));
                }
                8 => {
                    if !model.is_empty() {
                        let lo = rng.gen_range(0..model.len());
                        let hi = (lo + rng.gen_range(0..40)).min(model.len());
                        let want = model_sorted(&model);
                        for (m, _) in &want[lo..hi] {
                            model.remove(m);
                        }
                        assert_eq!(z.remove_span(lo, hi), hi - lo);
                    }
                }
                _ => {
                    let r = ScoreRange {
                        min: f64::from(rng.gen_range(0..50)),
                        max: f64::from(rng.gen_range(0..50)),
                        minex: rng.gen(),
                        maxex: rng.gen(),
                    };
                    let (lo, hi) = z.score_span(&r);
                    let want: Vec<_> = model_sorted(&model)
                        .into_iter()
                        .filter(|(_, s)| r.gte_min(*s) && r.lte_max(*s))
                        .collect();
                    assert_eq!(hi - lo, want.len(), "{r:?}");
                    let got: Vec<_> = z
                        .range(lo, hi, false)
                        .map(|(m, s)| (m.to_vec(), s))
                        .collect();
                    assert_eq!(got, want);
                }
            }
            if step % 97 == 0 {
                check(&z, &model);
            }
        }
        check(&z, &model);
    }

    #[test]
    fn listpack_scores_round_trip_in_every_width() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -100.0,
            152.0,
            153.0,
            -101.0,
            32767.0,
            -32768.0,
            32768.0,
            2147483647.0,
            -2147483648.0,
            2147483648.0,
            0.5,
            -1.5,
            1e300,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            5e-324,
            0.1,
            1e-40,
            3.4e38,
            1e39,
        ] {
            let mut b = SmallVec::new();
            put_score(&mut b, v);
            let (got, n) = get_score(&b);
            assert_eq!(n, b.len());
            assert_eq!(got.to_bits(), if v == 0.0 { 0 } else { v.to_bits() }, "{v}");
            assert!(n <= 5 || !(v == v.trunc() && v.abs() < 2e9), "{v}");
        }
        let mut b = SmallVec::new();
        put_score(&mut b, 7.0);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn listpack_operations_match_a_sorted_model() {
        random_ops(SMALL, 2000, 1);
        // A listpack allowed to grow large (zset-max-listpack-entries raised).
        let huge = Limits {
            entries: 1 << 20,
            value: 64,
        };
        random_ops(huge, 3000, 4);
    }

    #[test]
    fn tree_operations_match_a_sorted_model() {
        random_ops(NONE_COMPACT, 30_000, 2);
        random_ops(NONE_COMPACT, 5_000, 3);
    }

    #[test]
    fn sequential_inserts_fill_leaves() {
        let mut z = ZSet::new(1, NONE_COMPACT);
        for i in 0..100_000u32 {
            z.insert(format!("member:{i}").as_bytes(), f64::from(i), NONE_COMPACT);
        }
        let Repr::Tree(t) = &z.0 else { panic!() };
        // Nearly full leaves: well under 16 bytes of leaf per element.
        assert!(
            t.order.heap_size() < 100_000 * 14,
            "{}",
            t.order.heap_size()
        );
        assert_eq!(z.rank(b"member:77777"), Some((77777, 77777.0)));
        // Remove most of it: the arena compacts, ranks stay right.
        assert_eq!(z.remove_span(10, 99_990), 99_980);
        let all: Vec<_> = z.iter().map(|(_, s)| s as u32).collect();
        assert_eq!(all, (0..10).chain(99_990..100_000).collect::<Vec<_>>());
        let Repr::Tree(t) = &z.0 else { panic!() };
        assert!(t.items.slots < 100);
    }

    #[test]
    fn conversion_happens_when_a_limit_is_passed() {
        let lim = Limits {
            entries: 3,
            value: 5,
        };
        let mut z = ZSet::new(1, lim);
        for (i, m) in ["a", "b", "c"].iter().enumerate() {
            z.insert(m.as_bytes(), i as f64, lim);
        }
        assert_eq!(z.encoding(), "listpack");
        z.insert(b"d", 4.0, lim);
        assert_eq!(z.encoding(), "skiplist");
        let mut z = ZSet::new(1, lim);
        z.insert(b"abcdef", 1.0, lim);
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(ZSet::new(6, lim).encoding(), "skiplist");
    }

    #[test]
    fn negative_zero_is_kept_only_by_the_skiplist() {
        let mut z = ZSet::new(1, SMALL);
        z.insert(b"a", -0.0, SMALL);
        assert!(z.score(b"a").unwrap().is_sign_positive());
        let mut z = ZSet::new(1, NONE_COMPACT);
        z.insert(b"a", -0.0, NONE_COMPACT);
        assert!(z.score(b"a").unwrap().is_sign_negative());
    }

    #[test]
    fn lex_spans_on_equal_scores() {
        for lim in [SMALL, NONE_COMPACT] {
            let mut z = ZSet::new(1, lim);
            for m in ["a", "b", "c", "d", "e"] {
                z.insert(m.as_bytes(), 0.0, lim);
            }
            let r = LexRange {
                min: LexBound::Excl(b"a"),
                max: LexBound::Incl(b"d"),
            };
            assert_eq!(z.lex_span(&r, false), (1, 4));
            assert_eq!(z.lex_span(&r, true), (1, 4));
            let r = LexRange {
                min: LexBound::NegInf,
                max: LexBound::PosInf,
            };
            assert_eq!(z.lex_span(&r, false), (0, 5));
            let r = LexRange {
                min: LexBound::PosInf,
                max: LexBound::NegInf,
            };
            assert!(r.is_empty());
        }
    }

    #[test]
    fn scan_visits_every_member_of_a_skiplist() {
        let mut z = ZSet::new(1, NONE_COMPACT);
        for i in 0..5000u32 {
            z.insert(i.to_string().as_bytes(), f64::from(i), NONE_COMPACT);
        }
        for i in (0..5000u32).step_by(3) {
            z.remove(i.to_string().as_bytes());
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        loop {
            cursor = z.scan(cursor, 10, |m, _| {
                seen.insert(m.to_vec());
            });
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), z.len());
    }
}
