//! The set type, in Redis 7.0's two encodings.
//!
//! * **intset**: while every member is a canonical integer (Redis's `string2ll` form) and
//!   there are at most `set-max-intset-entries` of them, the set is a sorted array of
//!   integers, 2, 4 or 8 bytes wide depending on the largest magnitude (like Redis's
//!   intset, the width only ever grows). Members are formatted only when a reply needs
//!   them.
//! * **hashtable**: anything else, stored one of two ways (OBJECT ENCODING says
//!   `hashtable` for both, as Redis 7.0 does):
//!   - `Small`: up to 16 members of up to 64 bytes packed in one allocation, found by a
//!     linear scan (a set of three short tags costs a few dozen bytes, not a table);
//!   - `Table`: members live densely in `Dense`, a chunked array of 24-byte
//!     `Member`s that keeps up to 22 bytes inline (no allocation for typical members);
//!     a `hashbrown` table of `u32` positions indexes them (5 bytes per bucket). A member
//!     costs about 30-36 bytes, where Redis spends a 24-byte dictEntry, an 8-byte bucket
//!     and an sds allocation (55-72 bytes per member measured at a million members).
//!
//! Members of a hashtable-encoded set have positions `0..len`. Removing a `Table` member
//! moves the last member into its hole (one index update); removing a `Small` member
//! shifts the later ones down. Either way positions stay dense, so a random member is one
//! uniform index (SPOP, SRANDMEMBER), and SSCAN can walk positions downwards: a member only
//! ever moves to a lower position, so a cursor that counts down never skips one that stayed
//! in the set.
//!
//! Conversions happen at write time exactly when Redis converts (a non-integer member, or
//! one member too many) and never back, except where Redis itself rebuilds a set (SPOP of
//! most of a set, see [`Set::rebuild_if_intset`]).

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::sync::LazyLock;

use hashbrown::HashTable;

use crate::util::parse_i64;

/// A member read from a set. Intset members stay integers until something needs their
/// text, so replies format them straight into the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Elem<'_> {
    /// Runs `f` on the member's bytes (an integer is formatted on the stack).
    #[inline]
    pub fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Elem::Str(s) => f(s),
            Elem::Int(v) => f(itoa::Buffer::new().format(v).as_bytes()),
        }
    }

    /// The member's bytes, owned.
    pub fn to_vec(self) -> Vec<u8> {
        self.with_bytes(<[u8]>::to_vec)
    }

    /// The member as an integer, if it is one in canonical form (what an intset can hold).
    #[inline]
    pub fn as_int(self) -> Option<i64> {
        match self {
            Elem::Int(v) => Some(v),
            Elem::Str(s) => parse_i64(s),
        }
    }
}

/// A set of byte strings (see the module docs for the representation).
#[derive(Debug, Clone)]
pub struct Set {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    /// The intset encoding.
    Ints(Ints),
    /// A small hashtable-encoded set, packed (see [`Small`]).
    Small(Small),
    /// A hashtable-encoded set past [`Small`]'s limits.
    Table(Box<Table>),
}

// A set adds nothing but itself to the box a key's value lives in.
const _: () = assert!(std::mem::size_of::<Set>() <= 32);

impl Default for Set {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Set {
    /// Same members, whatever the encodings.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.elems().all(|e| other.contains_elem(e))
    }
}

impl Set {
    /// An empty set in the intset encoding (what Redis starts a computed set with).
    pub fn new() -> Self {
        Self {
            repr: Repr::Ints(Ints::W16(Vec::new())),
        }
    }

    /// An empty set in the encoding Redis picks for a key created by adding `first`
    /// (`setTypeCreate`): intset for an integer, hashtable otherwise.
    pub fn for_member(first: &[u8]) -> Self {
        if parse_i64(first).is_some() {
            Self::new()
        } else {
            Self::with_table_capacity(0)
        }
    }

    /// An empty hashtable set with room for `n` members, for a computed set that is sure to
    /// end up a hashtable: it then skips the intermediate table sizes.
    pub fn with_table_capacity(n: usize) -> Self {
        Self {
            repr: if n <= SMALL_MEMBERS {
                Repr::Small(Small::default())
            } else {
                Repr::Table(Box::new(Table::with_capacity(n)))
            },
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Ints(i) => i.len(),
            Repr::Small(s) => s.len(),
            Repr::Table(t) => t.members.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (buckets, members) of the hash table, None for an intset (DEBUG HTSTATS-KEY). A
    /// small set, packed without a table, counts one bucket per member.
    pub fn table_stats(&self) -> Option<(usize, usize)> {
        match &self.repr {
            Repr::Ints(_) => None,
            Repr::Small(s) => Some((s.len(), s.len())),
            Repr::Table(t) => Some((crate::util::table_buckets(&t.index), t.members.len)),
        }
    }

    /// Every member, in unspecified order (integers of an intset are formatted).
    pub fn iter(&self) -> impl Iterator<Item = Cow<'_, [u8]>> {
        self.elems().map(|e| match e {
            Elem::Str(s) => Cow::Borrowed(s),
            Elem::Int(v) => Cow::Owned(itoa::Buffer::new().format(v).as_bytes().to_vec()),
        })
    }

    /// OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Ints(_) => "intset",
            Repr::Small(_) | Repr::Table(_) => "hashtable",
        }
    }

    /// Whether the set is in the intset encoding.
    pub fn is_intset(&self) -> bool {
        matches!(self.repr, Repr::Ints(_))
    }

    /// Heap bytes owned.
    pub fn heap_size(&self) -> usize {
        let (fixed, members) = self.heap_parts();
        fixed + members.sum::<usize>()
    }

    /// The heap bytes in two parts, for estimates that sample (MEMORY USAGE): the
    /// structure's own (an intset's or a small set's buffer; a table's index and member
    /// slots), and each member's own allocation beyond its slot (0 when inline), in storage
    /// order, one allocation each. [`Set::heap_size`] is their sum.
    pub fn heap_parts(&self) -> (usize, impl Iterator<Item = usize> + '_) {
        let (fixed, table) = match &self.repr {
            Repr::Ints(i) => (i.heap_size(), None),
            Repr::Small(s) => (s.buf.capacity(), None),
            Repr::Table(t) => (std::mem::size_of::<Table>() + t.structure_size(), Some(t)),
        };
        (
            fixed,
            table.into_iter().flat_map(|t| t.members.member_heap()),
        )
    }

    /// The member at position `i` (< len): ascending order for an intset, storage order for
    /// a hashtable. O(1), or O(len) for a small packed set.
    #[inline]
    pub fn get(&self, i: usize) -> Elem<'_> {
        match &self.repr {
            Repr::Ints(ints) => Elem::Int(ints.get(i)),
            Repr::Small(s) => Elem::Str(s.iter().nth(i).map_or(&[][..], |(_, m)| m)),
            Repr::Table(t) => Elem::Str(t.members.get(i).bytes()),
        }
    }

    /// Every member, by position (see [`Set::get`]): an intset in ascending order.
    pub fn elems(&self) -> Elems<'_> {
        Elems(match &self.repr {
            Repr::Ints(i) => ElemsInner::Ints(i, 0),
            Repr::Small(s) => ElemsInner::Small(s.iter()),
            Repr::Table(t) => ElemsInner::Table(t.members.iter()),
        })
    }

    /// Whether `m` is a member.
    #[inline]
    pub fn contains(&self, m: &[u8]) -> bool {
        match &self.repr {
            Repr::Ints(i) => parse_i64(m).is_some_and(|v| i.find(v).is_ok()),
            Repr::Small(s) => s.find(m).is_some(),
            Repr::Table(t) => t.find(m).is_some(),
        }
    }

    /// [`Set::contains`] for a member read from another set.
    #[inline]
    pub fn contains_elem(&self, e: Elem) -> bool {
        match (&self.repr, e) {
            (Repr::Ints(i), Elem::Int(v)) => i.find(v).is_ok(),
            (Repr::Ints(_), Elem::Str(s)) => self.contains(s),
            (_, e) => e.with_bytes(|b| self.contains(b)),
        }
    }

    /// Adds `m`; false if it was already a member. An intset turns into a hashtable when
    /// `m` is not an integer or the set grows past `max_intset` members (Redis's
    /// `set-max-intset-entries`).
    pub fn add(&mut self, m: &[u8], max_intset: usize) -> bool {
        match &mut self.repr {
            Repr::Ints(ints) => match parse_i64(m) {
                Some(v) => self.add_int(v, max_intset),
                None => {
                    let n = ints.len();
                    self.convert_from_ints(n + 1);
                    self.add_str(m)
                }
            },
            _ => self.add_str(m),
        }
    }

    /// [`Set::add`] for a member read from another set.
    pub fn add_elem(&mut self, e: Elem, max_intset: usize) -> bool {
        match (&self.repr, e) {
            (Repr::Ints(_), Elem::Int(v)) => self.add_int(v, max_intset),
            (_, Elem::Str(s)) => self.add(s, max_intset),
            (_, Elem::Int(v)) => self.add_str(itoa::Buffer::new().format(v).as_bytes()),
        }
    }

    /// Adds an integer to an intset, converting past `max_intset` members.
    fn add_int(&mut self, v: i64, max_intset: usize) -> bool {
        let Repr::Ints(ints) = &mut self.repr else {
            return false;
        };
        let added = ints.insert(v);
        let n = ints.len();
        if added && n > max_intset {
            self.convert_from_ints(n);
        }
        added
    }

    /// Adds a member to a hashtable-encoded set, moving a small packed set to a table when
    /// it outgrows its limits.
    fn add_str(&mut self, m: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Small(s) => {
                if s.find(m).is_some() {
                    return false;
                }
                if s.len() < SMALL_MEMBERS && m.len() <= SMALL_BYTES {
                    s.push(m);
                    return true;
                }
                let mut t = Table::with_capacity(s.len() + 1);
                for (_, x) in s.iter() {
                    t.insert(x);
                }
                t.insert(m);
                self.repr = Repr::Table(Box::new(t));
                true
            }
            Repr::Table(t) => t.insert(m),
            Repr::Ints(_) => false,
        }
    }

    /// Converts an intset to the hashtable encoding, sized for `capacity` members (Redis
    /// presizes the dict on conversion).
    fn convert_from_ints(&mut self, capacity: usize) {
        if let Repr::Ints(ints) = &self.repr {
            let mut set = Set::with_table_capacity(capacity);
            let mut buf = itoa::Buffer::new();
            for p in 0..ints.len() {
                set.add_str(buf.format(ints.get(p)).as_bytes());
            }
            *self = set;
        }
    }

    /// Removes `m`; false if it was not a member. The encoding never changes.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(i) => parse_i64(m).is_some_and(|v| i.remove(v)),
            Repr::Small(s) => match s.find(m) {
                Some(off) => {
                    s.remove_entry(off);
                    true
                }
                None => false,
            },
            Repr::Table(t) => t.remove(m),
        }
    }

    /// [`Set::remove`] for a member read from another set.
    pub fn remove_elem(&mut self, e: Elem) -> bool {
        match (&mut self.repr, e) {
            (Repr::Ints(ints), Elem::Int(v)) => ints.remove(v),
            (_, e) => e.with_bytes(|b| self.remove(b)),
        }
    }

    /// Removes the member at position `i` (< len). O(1) for a large hashtable (the last
    /// member takes its position), O(n) otherwise.
    pub fn remove_at(&mut self, i: usize) {
        match &mut self.repr {
            Repr::Ints(ints) => ints.remove_at(i),
            Repr::Small(s) => {
                if let Some((off, _)) = s.iter().nth(i) {
                    s.remove_entry(off);
                }
            }
            Repr::Table(t) => t.remove_at(i),
        }
    }

    /// Removes the members at the given positions of an intset in one pass (`doomed[p]` is
    /// true for each position to drop). A no-op for a hashtable.
    pub fn remove_marked(&mut self, doomed: &[bool]) {
        if let Repr::Ints(ints) = &mut self.repr {
            ints.retain_unmarked(doomed);
        }
    }

    /// A set loaded from an intset blob (RDB, RESTORE): `members` strictly ascending, the
    /// array kept `width` bytes wide (2, 4 or 8) as the blob had it, so writing the set back
    /// gives the same bytes. Past `max_intset` members it becomes a hashtable, as Redis
    /// converts on load.
    pub fn from_intset(width: u8, members: &[i64], max_intset: usize) -> Self {
        let mut ints = match width {
            2 => Ints::W16(Vec::with_capacity(members.len())),
            4 => Ints::W32(Vec::with_capacity(members.len())),
            _ => Ints::W64(Vec::with_capacity(members.len())),
        };
        ints.extend_sorted(members);
        let mut set = Self {
            repr: Repr::Ints(ints),
        };
        if members.len() > max_intset {
            set.convert_from_ints(members.len());
        }
        set
    }

    /// The width in bytes (2, 4 or 8) of an intset's integers; None for a hashtable.
    pub fn intset_width(&self) -> Option<u8> {
        match &self.repr {
            Repr::Ints(Ints::W16(_)) => Some(2),
            Repr::Ints(Ints::W32(_)) => Some(4),
            Repr::Ints(Ints::W64(_)) => Some(8),
            _ => None,
        }
    }

    /// Turns a hashtable back into an intset if Redis would have built the remaining members
    /// as one: all integers, at most `max_intset` of them. SPOP calls it when it keeps only
    /// a few members, because Redis stores those in a fresh set.
    pub fn rebuild_if_intset(&mut self, max_intset: usize) {
        if let Some(vals) = self.rebuilt_order(max_intset) {
            let mut ints = Ints::W16(Vec::new());
            ints.extend_sorted(&vals);
            self.repr = Repr::Ints(ints);
        }
    }

    /// The members of a hashtable-encoded set in the order Redis lists a copy of it built
    /// member by member, when that copy would be an intset (all integers, at most
    /// `max_intset`): ascending. None otherwise (an intset already lists that way, other
    /// copies list in storage order). SPOP of a whole set and SUNION of one set reply so.
    pub fn rebuilt_order(&self, max_intset: usize) -> Option<Vec<i64>> {
        if self.is_intset() || self.len() > max_intset {
            return None;
        }
        let mut vals = Vec::with_capacity(self.len());
        for e in self.elems() {
            vals.push(e.as_int()?);
        }
        vals.sort_unstable();
        Some(vals)
    }
}

/// The members of a set by position, see [`Set::elems`].
pub struct Elems<'a>(ElemsInner<'a>);

enum ElemsInner<'a> {
    Ints(&'a Ints, usize),
    Small(SmallIter<'a>),
    Table(std::iter::Flatten<std::slice::Iter<'a, Vec<Member>>>),
}

impl<'a> Iterator for Elems<'a> {
    type Item = Elem<'a>;

    #[inline]
    fn next(&mut self) -> Option<Elem<'a>> {
        match &mut self.0 {
            ElemsInner::Ints(ints, p) => {
                let v = (*p < ints.len()).then(|| ints.get(*p))?;
                *p += 1;
                Some(Elem::Int(v))
            }
            ElemsInner::Small(it) => it.next().map(|(_, m)| Elem::Str(m)),
            ElemsInner::Table(it) => it.next().map(|m| Elem::Str(m.bytes())),
        }
    }
}

// --- small packed sets -------------------------------------------------------------------

/// Most members a [`Small`] set holds before it becomes a [`Table`].
const SMALL_MEMBERS: usize = 16;
/// Longest member a [`Small`] set holds.
const SMALL_BYTES: usize = 64;

/// A small hashtable-encoded set packed in one allocation: a count byte, then each member
/// as a length byte and its bytes, in insertion order. Lookups scan at most
/// [`SMALL_MEMBERS`] short members, which is as fast as hashing, and a three-member set of
/// short tags costs a few dozen bytes instead of a table. OBJECT ENCODING still reports
/// `hashtable`, as Redis 7.0 does for every set that is not an intset.
#[derive(Debug, Clone, Default)]
struct Small {
    /// Empty, or the count byte followed by the members.
    buf: Vec<u8>,
}

impl Small {
    fn len(&self) -> usize {
        self.buf.first().map_or(0, |&n| n as usize)
    }

    /// (offset of the length byte, member) for each member.
    fn iter(&self) -> SmallIter<'_> {
        SmallIter {
            buf: &self.buf,
            pos: 1,
        }
    }

    /// Offset of `m`'s entry.
    fn find(&self, m: &[u8]) -> Option<usize> {
        self.iter().find(|(_, x)| *x == m).map(|(off, _)| off)
    }

    /// Appends a member (the caller checked the limits and that it is absent).
    fn push(&mut self, m: &[u8]) {
        if self.buf.is_empty() {
            self.buf.push(0);
        }
        // Exact growth: small sets are many, and an append is a memcpy of a few bytes.
        self.buf.reserve_exact(1 + m.len());
        self.buf.push(m.len() as u8);
        self.buf.extend_from_slice(m);
        self.buf[0] += 1;
    }

    /// Removes the entry at `off`.
    fn remove_entry(&mut self, off: usize) {
        let len = self.buf[off] as usize;
        self.buf.drain(off..off + 1 + len);
        self.buf[0] -= 1;
        if self.buf[0] == 0 {
            self.buf = Vec::new();
        } else if self.buf.capacity() > self.buf.len() + 32 {
            self.buf.shrink_to_fit();
        }
    }
}

/// Iterator over a [`Small`] set's entries.
struct SmallIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for SmallIter<'a> {
    type Item = (usize, &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let off = self.pos;
        let len = *self.buf.get(off)? as usize;
        let m = self.buf.get(off + 1..off + 1 + len)?;
        self.pos = off + 1 + len;
        Some((off, m))
    }
}

// --- intset ----------------------------------------------------------------------------

/// A sorted array of distinct integers in the narrowest width that holds them all.
#[derive(Debug, Clone)]
enum Ints {
    W16(Vec<i16>),
    W32(Vec<i32>),
    W64(Vec<i64>),
}

/// Runs `$body` with `$v` bound to the inner vector, whatever its width.
macro_rules! with_ints {
    ($ints:expr, $v:ident => $body:expr) => {
        match $ints {
            Ints::W16($v) => $body,
            Ints::W32($v) => $body,
            Ints::W64($v) => $body,
        }
    };
}

/// Grows a vector by an eighth (at least 4): memory stays within ~12% of the contents,
/// like Redis's exact-size intset, while inserts remain amortized.
fn reserve_one<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 8).max(4));
    }
}

impl Ints {
    fn len(&self) -> usize {
        with_ints!(self, v => v.len())
    }

    #[inline]
    fn get(&self, i: usize) -> i64 {
        match self {
            Ints::W16(v) => i64::from(v[i]),
            Ints::W32(v) => i64::from(v[i]),
            Ints::W64(v) => v[i],
        }
    }

    fn heap_size(&self) -> usize {
        match self {
            Ints::W16(v) => v.capacity() * 2,
            Ints::W32(v) => v.capacity() * 4,
            Ints::W64(v) => v.capacity() * 8,
        }
    }

    /// Binary search: `Ok(position)` if present, `Err(insertion point)` otherwise (an
    /// out-of-width value is absent, and would go at either end).
    fn find(&self, x: i64) -> Result<usize, usize> {
        match self {
            Ints::W16(v) => match i16::try_from(x) {
                Ok(x) => v.binary_search(&x),
                Err(_) => Err(if x < 0 { 0 } else { v.len() }),
            },
            Ints::W32(v) => match i32::try_from(x) {
                Ok(x) => v.binary_search(&x),
                Err(_) => Err(if x < 0 { 0 } else { v.len() }),
            },
            Ints::W64(v) => v.binary_search(&x),
        }
    }

    /// Widens the array so that it can hold `x`.
    fn widen_for(&mut self, x: i64) {
        let need = if i16::try_from(x).is_ok() {
            2
        } else if i32::try_from(x).is_ok() {
            4
        } else {
            8
        };
        let have = match self {
            Ints::W16(_) => 2,
            Ints::W32(_) => 4,
            Ints::W64(_) => 8,
        };
        if need <= have {
            return;
        }
        *self = if need == 4 {
            let Ints::W16(v) = &*self else { return };
            let mut w = Vec::with_capacity(v.len() + 1);
            w.extend(v.iter().map(|&a| i32::from(a)));
            Ints::W32(w)
        } else {
            let mut w = Vec::with_capacity(self.len() + 1);
            w.extend((0..self.len()).map(|p| self.get(p)));
            Ints::W64(w)
        };
    }

    fn insert(&mut self, x: i64) -> bool {
        let pos = match self.find(x) {
            Ok(_) => return false,
            Err(p) => p,
        };
        self.widen_for(x);
        // Widening keeps the order, so the insertion point found above still holds.
        match self {
            Ints::W16(v) => {
                reserve_one(v);
                v.insert(pos, x as i16);
            }
            Ints::W32(v) => {
                reserve_one(v);
                v.insert(pos, x as i32);
            }
            Ints::W64(v) => {
                reserve_one(v);
                v.insert(pos, x);
            }
        }
        true
    }

    fn remove(&mut self, x: i64) -> bool {
        match self.find(x) {
            Ok(p) => {
                self.remove_at(p);
                true
            }
            Err(_) => false,
        }
    }

    fn remove_at(&mut self, p: usize) {
        with_ints!(self, v => {
            v.remove(p);
            if v.capacity() > 16 && v.len() * 2 < v.capacity() {
                v.shrink_to(v.len() + v.len() / 8);
            }
        })
    }

    fn retain_unmarked(&mut self, doomed: &[bool]) {
        with_ints!(self, v => {
            let mut p = 0;
            v.retain(|_| {
                let keep = !doomed.get(p).copied().unwrap_or(false);
                p += 1;
                keep
            });
            if v.capacity() > 16 && v.len() * 2 < v.capacity() {
                v.shrink_to(v.len() + v.len() / 8);
            }
        })
    }

    /// Appends sorted distinct values to an empty array, widening as needed.
    fn extend_sorted(&mut self, vals: &[i64]) {
        if let (Some(&lo), Some(&hi)) = (vals.first(), vals.last()) {
            self.widen_for(lo);
            self.widen_for(hi);
        }
        match self {
            Ints::W16(v) => v.extend(vals.iter().map(|&x| x as i16)),
            Ints::W32(v) => v.extend(vals.iter().map(|&x| x as i32)),
            Ints::W64(v) => v.extend_from_slice(vals),
        }
    }
}

// --- hashtable ---------------------------------------------------------------------------

/// Member bytes stored inline up to this length.
const INLINE: usize = 22;

/// One hashtable member: inline when short, boxed otherwise.
#[derive(Debug, Clone)]
enum Member {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

const _: () = assert!(std::mem::size_of::<Member>() == 24);

impl Member {
    fn new(m: &[u8]) -> Self {
        if m.len() <= INLINE {
            let mut buf = [0u8; INLINE];
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
        }
    }
}

/// log2 of the members per chunk of [`Dense`].
const CHUNK_BITS: u32 = 12;
/// Members per chunk (96 KiB).
const CHUNK: usize = 1 << CHUNK_BITS;

/// Members stored densely in fixed-size chunks: no reallocation of the whole array as it
/// grows (a plain vector doubling would leave up to half of it unused), and only the first
/// chunk grows gradually, so small sets stay small.
#[derive(Debug, Clone, Default)]
struct Dense {
    chunks: Vec<Vec<Member>>,
    len: usize,
}

impl Dense {
    #[inline]
    fn get(&self, i: usize) -> &Member {
        &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }

    fn push(&mut self, m: Member) {
        let c = self.len >> CHUNK_BITS;
        if c == self.chunks.len() {
            let cap = if c == 0 { 4 } else { CHUNK };
            self.chunks.push(Vec::with_capacity(cap));
        }
        let chunk = &mut self.chunks[c];
        if chunk.len() == chunk.capacity() {
            // Double up to a full chunk, never beyond.
            let want = (chunk.capacity() * 2).clamp(4, CHUNK);
            chunk.reserve_exact(want - chunk.len());
        }
        chunk.push(m);
        self.len += 1;
    }

    /// Removes the member at `i`, moving the last one into its place.
    fn swap_remove(&mut self, i: usize) -> Option<Member> {
        let last = self.chunks.last_mut()?.pop()?;
        self.len -= 1;
        let removed = if i == self.len {
            last
        } else {
            std::mem::replace(&mut self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)], last)
        };
        if self.chunks.last().is_some_and(Vec::is_empty) {
            self.chunks.pop();
        }
        if let Some(c) = self.chunks.last_mut() {
            // Give back most of a chunk the set no longer needs.
            if c.capacity() > 16 && c.len() * 4 < c.capacity() {
                c.shrink_to(c.len() * 2);
            }
        }
        Some(removed)
    }

    fn iter(&self) -> std::iter::Flatten<std::slice::Iter<'_, Vec<Member>>> {
        self.chunks.iter().flatten()
    }

    /// Heap bytes of the chunks, without the members' own allocations.
    fn structure_size(&self) -> usize {
        let slots: usize = self.chunks.iter().map(Vec::capacity).sum();
        self.chunks.capacity() * std::mem::size_of::<Vec<Member>>()
            + slots * std::mem::size_of::<Member>()
    }

    /// Each member's own allocation (0 when inline), in storage order.
    fn member_heap(&self) -> impl Iterator<Item = usize> + '_ {
        self.iter().map(|m| match m {
            Member::Heap(b) => b.len(),
            Member::Inline { .. } => 0,
        })
    }
}

/// The hasher of every hashtable set, seeded randomly once per process (HashDoS
/// resistance).
static HASHER: LazyLock<foldhash::fast::FixedState> =
    LazyLock::new(|| foldhash::fast::FixedState::with_seed(rand::random()));

#[inline]
fn hash(m: &[u8]) -> u64 {
    HASHER.hash_one(m)
}

/// The hashtable encoding: dense members plus an index of their positions.
#[derive(Debug, Clone)]
struct Table {
    members: Dense,
    index: HashTable<u32>,
}

impl Table {
    fn with_capacity(n: usize) -> Self {
        Self {
            members: Dense::default(),
            index: HashTable::with_capacity(n),
        }
    }

    /// Heap bytes of the index and the member slots, without the members' own allocations.
    fn structure_size(&self) -> usize {
        // hashbrown: one u32 and one control byte per bucket; buckets ~ capacity * 8 / 7.
        let buckets = if self.index.capacity() == 0 {
            0
        } else {
            (self.index.capacity() * 8 / 7).next_power_of_two()
        };
        self.members.structure_size() + buckets * (std::mem::size_of::<u32>() + 1)
    }

    /// The position of `m`, if it is a member.
    #[inline]
    fn find(&self, m: &[u8]) -> Option<usize> {
        let members = &self.members;
        self.index
            .find(hash(m), |&p| members.get(p as usize).bytes() == m)
            .map(|&p| p as usize)
    }

    fn insert(&mut self, m: &[u8]) -> bool {
        let pos = self.members.len;
        // Positions are u32: a set holds at most u32::MAX members (over 100 GB of them).
        let Ok(pos32) = u32::try_from(pos) else {
            return false;
        };
        let members = &self.members;
        match self.index.entry(
            hash(m),
            |&p| members.get(p as usize).bytes() == m,
            |&p| hash(members.get(p as usize).bytes()),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(pos32);
                self.members.push(Member::new(m));
                true
            }
        }
    }

    fn remove(&mut self, m: &[u8]) -> bool {
        let members = &self.members;
        match self
            .index
            .find_entry(hash(m), |&p| members.get(p as usize).bytes() == m)
        {
            Ok(e) => {
                let (p, _) = e.remove();
                self.unlink(p as usize);
                true
            }
            Err(_) => false,
        }
    }

    fn remove_at(&mut self, pos: usize) {
        if pos >= self.members.len {
            return;
        }
        let h = hash(self.members.get(pos).bytes());
        if let Ok(e) = self.index.find_entry(h, |&p| p as usize == pos) {
            e.remove();
        }
        self.unlink(pos);
    }

    /// Drops the member at `pos`, already removed from the index: the last member moves
    /// into its place and its index entry follows.
    fn unlink(&mut self, pos: usize) {
        let last = self.members.len - 1;
        if pos != last {
            let h = hash(self.members.get(last).bytes());
            if let Some(p) = self.index.find_mut(h, |&p| p as usize == last) {
                *p = pos as u32;
            }
        }
        self.members.swap_remove(pos);
        self.maybe_shrink();
    }

    /// Gives memory back when the set has shrunk to a small part of its table, as Redis
    /// resizes a dict that is less than 10% full.
    fn maybe_shrink(&mut self) {
        let (len, cap) = (self.members.len, self.index.capacity());
        if cap > 64 && len * 10 < cap {
            let members = &self.members;
            self.index
                .shrink_to(len, |&p| hash(members.get(p as usize).bytes()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(s: &Set) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = s.iter().map(|c| c.into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn integers_stay_an_intset_in_ascending_order() {
        let mut s = Set::new();
        for m in [&b"5"[..], b"-3", b"100000", b"7", b"5"] {
            s.add(m, 512);
        }
        assert_eq!(s.encoding(), "intset");
        assert_eq!(s.len(), 4);
        let got: Vec<Elem> = s.elems().collect();
        assert_eq!(
            got,
            [Elem::Int(-3), Elem::Int(5), Elem::Int(7), Elem::Int(100000)]
        );
        assert!(s.contains(b"100000"));
        assert!(!s.contains(b"0100000"));
        assert!(s.remove(b"-3"));
        assert!(!s.remove(b"-3"));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn the_intset_widens_for_large_values() {
        let mut s = Set::new();
        s.add(b"1", 512);
        s.add(b"70000", 512);
        s.add(b"-9223372036854775808", 512);
        s.add(b"9223372036854775807", 512);
        assert!(s.contains(b"1"));
        assert!(s.contains(b"70000"));
        assert!(s.contains(b"-9223372036854775808"));
        assert_eq!(s.get(0), Elem::Int(i64::MIN));
        assert_eq!(s.get(3), Elem::Int(i64::MAX));
    }

    #[test]
    fn a_non_integer_or_too_many_members_convert_to_a_hashtable() {
        let mut s = Set::new();
        s.add(b"1", 512);
        s.add(b"a", 512);
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(members(&s), [b"1".to_vec(), b"a".to_vec()]);
        let mut s = Set::new();
        for i in 0..4 {
            s.add(i.to_string().as_bytes(), 3);
        }
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(s.len(), 4);
        assert!(s.contains(b"3"));
        assert_eq!(Set::for_member(b"x").encoding(), "hashtable");
        assert_eq!(Set::for_member(b"12").encoding(), "intset");
    }

    #[test]
    fn hashtable_members_survive_removals_in_any_order() {
        let mut s = Set::for_member(b"x");
        let n = 3 * CHUNK + 17;
        for i in 0..n {
            assert!(s.add(format!("member-{i}-with-a-long-suffix-{i}").as_bytes(), 512));
        }
        assert_eq!(s.len(), n);
        for i in (0..n).filter(|i| i % 3 != 0) {
            assert!(s.remove(format!("member-{i}-with-a-long-suffix-{i}").as_bytes()));
        }
        for i in 0..n {
            let m = format!("member-{i}-with-a-long-suffix-{i}");
            assert_eq!(s.contains(m.as_bytes()), i % 3 == 0, "{m}");
        }
        while !s.is_empty() {
            let before = s.len();
            s.remove_at(before / 2);
            assert_eq!(s.len(), before - 1);
        }
        assert!(s.heap_size() < 4096);
    }

    #[test]
    fn small_hashtable_sets_grow_into_tables_with_every_member() {
        for long in [false, true] {
            let mut s = Set::for_member(b"x");
            let name = |i: usize| {
                if long && i == 5 {
                    "l".repeat(SMALL_BYTES + 1)
                } else {
                    format!("m{i}")
                }
            };
            for i in 0..40 {
                assert!(s.add(name(i).as_bytes(), 512));
                assert!(!s.add(name(i).as_bytes(), 512));
                assert_eq!(s.len(), i + 1);
                assert_eq!(s.encoding(), "hashtable");
                for j in 0..=i {
                    assert!(s.contains(name(j).as_bytes()), "{i} {j}");
                }
                // Positions list every member once.
                let mut seen: Vec<Vec<u8>> = (0..s.len()).map(|p| s.get(p).to_vec()).collect();
                seen.sort();
                seen.dedup();
                assert_eq!(seen.len(), i + 1);
            }
            for i in (0..40).rev() {
                assert!(s.remove(name(i).as_bytes()));
                assert!(!s.contains(name(i).as_bytes()));
                assert_eq!(s.len(), i);
            }
        }
    }

    #[test]
    fn an_intset_converts_to_a_small_or_a_large_table() {
        let mut s = Set::new();
        s.add(b"1", 512);
        s.add(b"2", 512);
        s.add(b"x", 512);
        assert!(matches!(s.repr, Repr::Small(_)));
        assert_eq!(members(&s), [b"1".to_vec(), b"2".to_vec(), b"x".to_vec()]);
        let mut s = Set::new();
        for i in 0..100 {
            s.add(i.to_string().as_bytes(), 50);
        }
        assert!(matches!(s.repr, Repr::Table(_)));
        assert_eq!(s.len(), 100);
        assert!(s.contains(b"99") && s.contains(b"0"));
        s.remove_at(0);
        assert_eq!(s.len(), 99);
    }

    proptest::proptest! {
        /// Any sequence of adds and removals leaves the set equal to a model, in every
        /// encoding and across every conversion.
        #[test]
        fn the_set_behaves_like_a_model(
            ops in proptest::collection::vec((0u8..4, 0u16..120, proptest::bool::ANY), 1..400),
            max_intset in 0usize..40,
        ) {
            let mut s = Set::new();
            let mut model = std::collections::BTreeSet::new();
            for (op, n, text) in ops {
                // Integers, short strings and strings too long for a small set.
                let m = match (text, n % 3) {
                    (false, _) => (i64::from(n) * 1000 - 40_000).to_string().into_bytes(),
                    (true, 0) => format!("{n}:{}", "x".repeat(70)).into_bytes(),
                    (true, _) => format!("m{n}").into_bytes(),
                };
                match op {
                    0 | 1 => proptest::prop_assert_eq!(s.add(&m, max_intset), model.insert(m.clone())),
                    2 => proptest::prop_assert_eq!(s.remove(&m), model.remove(&m)),
                    _ => {
                        if !s.is_empty() {
                            let p = usize::from(n) % s.len();
                            let gone = s.get(p).to_vec();
                            s.remove_at(p);
                            proptest::prop_assert!(model.remove(&gone));
                        }
                    }
                }
                proptest::prop_assert_eq!(s.len(), model.len());
            }
            let got: std::collections::BTreeSet<Vec<u8>> = s.iter().map(|c| c.into_owned()).collect();
            proptest::prop_assert_eq!(&got, &model);
            for m in &model {
                proptest::prop_assert!(s.contains(m));
            }
            if s.is_intset() {
                proptest::prop_assert!(s.len() <= max_intset);
            }
        }
    }

    #[test]
    fn equality_ignores_the_encoding() {
        let mut a = Set::new();
        let mut b = Set::for_member(b"x");
        for m in [&b"1"[..], b"2", b"3"] {
            a.add(m, 512);
            b.add(m, 512);
        }
        assert_eq!(a, b);
        b.add(b"4", 512);
        assert_ne!(a, b);
    }

    #[test]
    fn rebuild_turns_integer_tables_back_into_intsets() {
        let mut s = Set::for_member(b"x");
        s.add(b"x", 512);
        s.add(b"3", 512);
        s.add(b"1", 512);
        assert_eq!(s.rebuilt_order(512), None);
        s.remove(b"x");
        assert_eq!(s.rebuilt_order(512), Some(vec![1, 3]));
        s.rebuild_if_intset(512);
        assert_eq!(s.encoding(), "intset");
        assert_eq!(s.get(0), Elem::Int(1));
    }

    #[test]
    fn marked_positions_are_removed_from_an_intset() {
        let mut s = Set::new();
        for i in 0..10 {
            s.add(i.to_string().as_bytes(), 512);
        }
        let mut doomed = vec![false; 10];
        doomed[0] = true;
        doomed[9] = true;
        doomed[4] = true;
        s.remove_marked(&doomed);
        let got: Vec<Elem> = s.elems().collect();
        assert_eq!(got.len(), 7);
        assert_eq!(got[0], Elem::Int(1));
        assert_eq!(got[6], Elem::Int(8));
    }
}
