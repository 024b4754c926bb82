//! The list type: a deque of packed chunks, Kiln's counterpart of Redis's quicklist.
//!
//! Elements are stored back to back inside chunks of at most [`CHUNK_BYTES`] bytes. Each
//! element is a header byte, then (for strings) its bytes: a string of up to 127 bytes costs
//! one byte more than its length. An element that is an integer in canonical decimal form
//! (exactly what `parse_i64` accepts, so it formats back to the same bytes) is stored in
//! binary: 0..=111 in the header byte alone, others in the fewest little-endian bytes that
//! hold them. Every value has exactly one encoding, so two elements are equal exactly when
//! their encoded bytes are, and searches (LPOS, LREM, LINSERT) compare raw bytes.
//!
//! Each chunk is a gap buffer: its used bytes sit anywhere inside its allocation, with free
//! room on either side, so pushing or popping at either end of the list writes or reads in
//! place without moving the other elements. Allocations follow jemalloc's size classes and a
//! full chunk is exactly one class, so little memory is lost to rounding.
//!
//! Every chunk knows the absolute index of its first element (`start`; only the differences
//! matter, so pushing at the head never renumbers the other chunks): finding index `i` is a
//! binary search over chunks and then a scan inside one chunk. Headers only decode forwards,
//! so popping at the tail uses a cache of the last chunk's element offsets (`tail`), built by
//! one scan and kept up to date by pushes and pops at the tail: RPOP is amortized O(1).

use std::collections::VecDeque;
use std::fmt;
use std::ops::Deref;

use smallvec::SmallVec;

use crate::util::parse_i64;

/// Bytes a chunk may hold before a push starts a new chunk (an element larger than this gets
/// a chunk of its own). A jemalloc size class, so a full chunk wastes no allocation space.
const CHUNK_BYTES: usize = 4096;

/// Capacity of a fresh chunk at an end of a list that already fills a chunk: such a list is
/// likely to keep growing, so it skips the smallest size classes.
const GROWN_CHUNK: usize = 1024;

/// A last chunk with at most this many elements is scanned on each pop at the tail instead
/// of caching its offsets.
const TAIL_SCAN_MAX: u32 = 32;

// Header bytes (see the module docs).
/// 0x00..=0x7F: a string of that many bytes follows.
const SHORT_MAX: usize = 0x7F;
/// A string whose length follows as a little-endian u16.
const STR16: u8 = 0x80;
/// A string whose length follows as a little-endian u64.
const STR64: u8 = 0x81;
/// 0x88..=0x8F: a signed integer in `header - INT_BASE` (1 to 8) little-endian bytes.
const INT_BASE: u8 = 0x87;
/// 0x90..=0xFF: the integer `header - SMALL_BASE`, no payload.
const SMALL_BASE: u8 = 0x90;
const SMALL_MAX: i64 = (u8::MAX - SMALL_BASE) as i64;

/// Smallest jemalloc size class holding `n` bytes (four classes per power of two, 16-byte
/// quantum), so a buffer can use all the space its allocation really has.
fn size_class(n: usize) -> usize {
    if n <= 8 {
        return 8;
    }
    if n <= 16 {
        return 16;
    }
    let log2 = usize::BITS - 1 - (n - 1).leading_zeros();
    let spacing = (1usize << log2.saturating_sub(2)).max(16);
    n.div_ceil(spacing) * spacing
}

/// Bytes needed to hold `v` as a sign-extended little-endian integer (1 to 8).
fn int_width(v: i64) -> usize {
    let magnitude = if v < 0 { !v } else { v };
    let bits = 64 - magnitude.leading_zeros() as usize + 1;
    bits.div_ceil(8)
}

/// An element to be written into a chunk.
#[derive(Clone, Copy)]
enum Enc<'a> {
    Str(&'a [u8]),
    Int(i64),
    /// Bytes already encoded (an element moved from another list).
    Raw(&'a [u8]),
}

impl<'a> Enc<'a> {
    /// The encoding of a client's value: binary when it is a canonical integer.
    #[inline]
    fn of(v: &'a [u8]) -> Self {
        if v.len() <= 20 && v.first().is_some_and(|c| c.is_ascii_digit() || *c == b'-') {
            if let Some(n) = parse_i64(v) {
                return Enc::Int(n);
            }
        }
        Enc::Str(v)
    }

    #[inline]
    fn size(&self) -> usize {
        match *self {
            Enc::Str(s) if s.len() <= SHORT_MAX => 1 + s.len(),
            Enc::Str(s) if s.len() <= u16::MAX as usize => 3 + s.len(),
            Enc::Str(s) => 9 + s.len(),
            Enc::Int(n) if (0..=SMALL_MAX).contains(&n) => 1,
            Enc::Int(n) => 1 + int_width(n),
            Enc::Raw(r) => r.len(),
        }
    }

    /// Writes the encoding into `dst`, which is exactly [`Enc::size`] bytes long.
    #[inline]
    fn write(&self, dst: &mut [u8]) {
        match *self {
            Enc::Str(s) if s.len() <= SHORT_MAX => {
                dst[0] = s.len() as u8;
                dst[1..].copy_from_slice(s);
            }
            Enc::Str(s) if s.len() <= u16::MAX as usize => {
                dst[0] = STR16;
                dst[1..3].copy_from_slice(&(s.len() as u16).to_le_bytes());
                dst[3..].copy_from_slice(s);
            }
            Enc::Str(s) => {
                dst[0] = STR64;
                dst[1..9].copy_from_slice(&(s.len() as u64).to_le_bytes());
                dst[9..].copy_from_slice(s);
            }
            Enc::Int(n) if (0..=SMALL_MAX).contains(&n) => dst[0] = SMALL_BASE + n as u8,
            Enc::Int(n) => {
                let w = dst.len() - 1;
                dst[0] = INT_BASE + w as u8;
                dst[1..].copy_from_slice(&n.to_le_bytes()[..w]);
            }
            Enc::Raw(r) => dst.copy_from_slice(r),
        }
    }
}

/// Encoded size of the element starting at `b[off]`.
#[inline]
fn elem_size(b: &[u8], off: usize) -> usize {
    let h = b[off];
    match h {
        0..=0x7F => 1 + h as usize,
        STR16 => 3 + u16::from_le_bytes([b[off + 1], b[off + 2]]) as usize,
        STR64 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&b[off + 1..off + 9]);
            9 + u64::from_le_bytes(n) as usize
        }
        0x88..=0x8F => 1 + (h - INT_BASE) as usize,
        _ => 1,
    }
}

/// Decodes the element at `b[off]`, with its encoded size.
#[inline]
fn decode(b: &[u8], off: usize) -> (Elem<'_>, usize) {
    let h = b[off];
    match h {
        0..=0x7F => {
            let end = off + 1 + h as usize;
            (Elem::bytes(&b[off + 1..end]), end - off)
        }
        STR16 | STR64 => {
            let size = elem_size(b, off);
            let hdr = if h == STR16 { 3 } else { 9 };
            (Elem::bytes(&b[off + hdr..off + size]), size)
        }
        0x88..=0x8F => {
            let w = (h - INT_BASE) as usize;
            let src = &b[off + 1..off + 1 + w];
            // Sign-extend from the top byte.
            let fill = if src[w - 1] & 0x80 != 0 { 0xFF } else { 0 };
            let mut n = [fill; 8];
            n[..w].copy_from_slice(src);
            (Elem::int(i64::from_le_bytes(n)), 1 + w)
        }
        _ => (Elem::int(i64::from(h - SMALL_BASE)), 1),
    }
}

/// One element of a list, borrowed from it; integers stored in binary are formatted on the
/// way out. Dereferences to the element's bytes.
#[derive(Clone, Copy)]
pub struct Elem<'a>(Repr<'a>);

#[derive(Clone, Copy)]
enum Repr<'a> {
    Bytes(&'a [u8]),
    Digits([u8; 20], u8),
}

impl<'a> Elem<'a> {
    #[inline]
    fn bytes(b: &'a [u8]) -> Self {
        Elem(Repr::Bytes(b))
    }

    #[inline]
    fn int(n: i64) -> Self {
        let mut f = itoa::Buffer::new();
        let s = f.format(n).as_bytes();
        let mut d = [0u8; 20];
        d[..s.len()].copy_from_slice(s);
        Elem(Repr::Digits(d, s.len() as u8))
    }
}

impl Deref for Elem<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Bytes(b) => b,
            Repr::Digits(d, n) => &d[..*n as usize],
        }
    }
}

/// An element taken out of a list in its encoded form, ready to go into another list
/// without being decoded and re-encoded (LMOVE).
pub struct Popped(SmallVec<[u8; 32]>);

impl Popped {
    /// The element's value.
    pub fn elem(&self) -> Elem<'_> {
        decode(&self.0, 0).0
    }
}

/// A run of encoded elements in a gap buffer.
#[derive(Clone)]
struct Chunk {
    buf: Box<[u8]>,
    /// First used byte.
    head: usize,
    /// One past the last used byte.
    end: usize,
    count: u32,
    /// Index of the first element, in a numbering shared by the chunks of one list where
    /// only differences count (see the module docs).
    start: i64,
}

impl Chunk {
    /// An empty chunk of `cap` bytes whose free room is all at the front or all at the back.
    fn new(cap: usize, room_at_front: bool, start: i64) -> Self {
        let at = if room_at_front { cap } else { 0 };
        Chunk {
            buf: vec![0u8; cap].into_boxed_slice(),
            head: at,
            end: at,
            count: 0,
            start,
        }
    }

    #[inline]
    fn used(&self) -> usize {
        self.end - self.head
    }

    /// Capacity for a buffer that must hold `want` bytes and was `cap`: grows by half at
    /// least (amortized O(1) appends), never beyond a full chunk unless one element needs it.
    fn grown(cap: usize, want: usize) -> usize {
        if want > CHUNK_BYTES {
            size_class(want)
        } else {
            size_class(want.max(cap + cap / 2)).min(CHUNK_BYTES)
        }
    }

    /// Moves the used bytes into a new buffer of `cap` bytes starting at `at`.
    fn realloc(&mut self, cap: usize, at: usize) {
        let mut nb = vec![0u8; cap].into_boxed_slice();
        let used = self.used();
        nb[at..at + used].copy_from_slice(&self.buf[self.head..self.end]);
        self.buf = nb;
        self.head = at;
        self.end = at + used;
    }

    /// Makes `n` free bytes before `head` (`front`) or after `end`. Returns whether the used
    /// bytes moved.
    fn reserve(&mut self, n: usize, front: bool) -> bool {
        let cap = self.buf.len();
        let room = if front { self.head } else { cap - self.end };
        if room >= n {
            return false;
        }
        let used = self.used();
        let free = cap - used;
        if free >= n {
            // Room on the other side: recentre, leaving some room on both sides so
            // alternating pushes at both ends do not move the bytes every time.
            let at = if front {
                n + (free - n) / 2
            } else {
                (free - n) / 2
            };
            self.buf.copy_within(self.head..self.end, at);
            self.head = at;
            self.end = at + used;
            return true;
        }
        let ncap = Self::grown(cap, used + n);
        self.realloc(ncap, if front { ncap - used } else { 0 });
        true
    }

    /// Gives memory back once a chunk is mostly empty.
    fn maybe_shrink(&mut self) -> bool {
        let used = self.used();
        let cap = self.buf.len();
        if cap > 64 && used * 4 < cap {
            let ncap = size_class(used * 2);
            self.realloc(ncap, (ncap - used) / 2);
            return true;
        }
        false
    }

    /// Byte offset of element `j` (`j == count` gives `end`).
    #[inline]
    fn offset_of(&self, j: usize) -> usize {
        let mut off = self.head;
        for _ in 0..j {
            off += elem_size(&self.buf, off);
        }
        off
    }

    /// Opens `n` bytes at `off` (an element boundary), shifting whichever side is cheaper, or
    /// reallocating. Returns where the new bytes go.
    fn open_gap(&mut self, off: usize, n: usize) -> usize {
        let (pre, suf) = (off - self.head, self.end - off);
        let can_left = self.head >= n;
        let can_right = self.buf.len() - self.end >= n;
        if can_left && (!can_right || pre <= suf) {
            self.buf.copy_within(self.head..off, self.head - n);
            self.head -= n;
            return off - n;
        }
        if can_right {
            self.buf.copy_within(off..self.end, off + n);
            self.end += n;
            return off;
        }
        let used = self.used();
        let ncap = Self::grown(self.buf.len(), used + n);
        let at = (ncap - used - n) / 2;
        let mut nb = vec![0u8; ncap].into_boxed_slice();
        nb[at..at + pre].copy_from_slice(&self.buf[self.head..off]);
        nb[at + pre + n..at + pre + n + suf].copy_from_slice(&self.buf[off..self.end]);
        self.buf = nb;
        self.head = at;
        self.end = at + used + n;
        at + pre
    }

    /// Removes bytes `off..off + n`, shifting the shorter side. Returns how far the bytes
    /// before `off` moved right (0 if the bytes after moved left instead).
    fn close_gap(&mut self, off: usize, n: usize) -> usize {
        let (pre, suf) = (off - self.head, self.end - off - n);
        if pre < suf {
            self.buf.copy_within(self.head..off, self.head + n);
            self.head += n;
            n
        } else {
            self.buf.copy_within(off + n..self.end, off);
            self.end -= n;
            0
        }
    }
}

/// The chunks of a list. Most lists fit one chunk, which is then stored inline: no deque
/// allocation, and the whole `List` stays within 64 bytes.
#[derive(Clone)]
enum Chunks {
    One(Chunk),
    /// Zero (the empty list) or at least two chunks.
    Many(VecDeque<Chunk>),
}

impl Default for Chunks {
    fn default() -> Self {
        Chunks::Many(VecDeque::new())
    }
}

impl Chunks {
    #[inline]
    fn len(&self) -> usize {
        match self {
            Chunks::One(_) => 1,
            Chunks::Many(v) => v.len(),
        }
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots allocated for chunk headers on the heap.
    fn capacity(&self) -> usize {
        match self {
            Chunks::One(_) => 0,
            Chunks::Many(v) => v.capacity(),
        }
    }

    #[inline]
    fn get(&self, k: usize) -> Option<&Chunk> {
        match self {
            Chunks::One(c) => (k == 0).then_some(c),
            Chunks::Many(v) => v.get(k),
        }
    }

    #[inline]
    fn get_mut(&mut self, k: usize) -> Option<&mut Chunk> {
        match self {
            Chunks::One(c) => (k == 0).then_some(c),
            Chunks::Many(v) => v.get_mut(k),
        }
    }

    #[inline]
    fn front(&self) -> Option<&Chunk> {
        self.get(0)
    }

    #[inline]
    fn back(&self) -> Option<&Chunk> {
        self.get(self.len().checked_sub(1)?)
    }

    #[inline]
    fn front_mut(&mut self) -> Option<&mut Chunk> {
        self.get_mut(0)
    }

    #[inline]
    fn back_mut(&mut self) -> Option<&mut Chunk> {
        let k = self.len().checked_sub(1)?;
        self.get_mut(k)
    }

    /// The deque form, converting a single inline chunk (for inserting a second one).
    fn many(&mut self) -> &mut VecDeque<Chunk> {
        if let Chunks::One(_) = self {
            let Chunks::One(c) = std::mem::take(self) else {
                unreachable!("matched above")
            };
            let mut v = VecDeque::with_capacity(4);
            v.push_back(c);
            *self = Chunks::Many(v);
        }
        match self {
            Chunks::Many(v) => v,
            Chunks::One(_) => unreachable!("converted above"),
        }
    }

    /// Back to the inline form once a single chunk is left (frees the deque).
    fn normalize(&mut self) {
        if let Chunks::Many(v) = self {
            if v.len() == 1 {
                if let Some(c) = v.pop_front() {
                    *self = Chunks::One(c);
                }
            } else if v.is_empty() && v.capacity() > 0 {
                *v = VecDeque::new();
            } else if v.capacity() > 16 && v.len() * 4 < v.capacity() {
                v.shrink_to(v.len() * 2);
            }
        }
    }

    fn insert(&mut self, k: usize, c: Chunk) {
        if let Chunks::Many(v) = self {
            if v.is_empty() {
                *self = Chunks::One(c);
                return;
            }
        }
        self.many().insert(k, c);
    }

    fn push_front(&mut self, c: Chunk) {
        self.insert(0, c);
    }

    fn push_back(&mut self, c: Chunk) {
        let k = self.len();
        self.insert(k, c);
    }

    fn remove(&mut self, k: usize) -> Option<Chunk> {
        let c = match self {
            Chunks::One(_) if k == 0 => match std::mem::take(self) {
                Chunks::One(c) => Some(c),
                Chunks::Many(_) => None,
            },
            Chunks::One(_) => None,
            Chunks::Many(v) => v.remove(k),
        };
        self.normalize();
        c
    }

    fn pop_front(&mut self) -> Option<Chunk> {
        self.remove(0)
    }

    fn pop_back(&mut self) -> Option<Chunk> {
        self.remove(self.len().checked_sub(1)?)
    }

    fn retain(&mut self, f: impl FnMut(&Chunk) -> bool) {
        self.many().retain(f);
        self.normalize();
    }

    /// Index of the first chunk for which `pred` is false (chunks are ordered by it).
    fn partition_point(&self, mut pred: impl FnMut(&Chunk) -> bool) -> usize {
        match self {
            Chunks::One(c) => usize::from(pred(c)),
            Chunks::Many(v) => v.partition_point(pred),
        }
    }

    fn iter(&self) -> std::iter::Chain<std::slice::Iter<'_, Chunk>, std::slice::Iter<'_, Chunk>> {
        let (a, b): (&[Chunk], &[Chunk]) = match self {
            Chunks::One(c) => (std::slice::from_ref(c), &[]),
            Chunks::Many(v) => v.as_slices(),
        };
        a.iter().chain(b.iter())
    }

    fn iter_mut(
        &mut self,
    ) -> std::iter::Chain<std::slice::IterMut<'_, Chunk>, std::slice::IterMut<'_, Chunk>> {
        let (a, b): (&mut [Chunk], &mut [Chunk]) = match self {
            Chunks::One(c) => (std::slice::from_mut(c), &mut []),
            Chunks::Many(v) => v.as_mut_slices(),
        };
        a.iter_mut().chain(b.iter_mut())
    }
}

impl std::ops::Index<usize> for Chunks {
    type Output = Chunk;
    #[inline]
    fn index(&self, k: usize) -> &Chunk {
        self.get(k).expect("chunk index in range")
    }
}

impl std::ops::IndexMut<usize> for Chunks {
    #[inline]
    fn index_mut(&mut self, k: usize) -> &mut Chunk {
        self.get_mut(k).expect("chunk index in range")
    }
}

/// Byte offsets of the last elements of a list's last chunk (see [`List`]'s `tail`); kept
/// behind a box, as a `List` must stay small and most lists never need it.
#[derive(Clone, Default)]
struct TailCache(Vec<u32>);

impl std::ops::Deref for TailCache {
    type Target = Vec<u32>;
    fn deref(&self) -> &Vec<u32> {
        &self.0
    }
}

impl std::ops::DerefMut for TailCache {
    fn deref_mut(&mut self) -> &mut Vec<u32> {
        &mut self.0
    }
}

// A one-chunk list is one 64-byte allocation plus its bytes (jemalloc has a 64-byte class).
const _: () = assert!(std::mem::size_of::<List>() <= 64);

/// A list of byte strings (see the module docs for the layout).
#[derive(Clone, Default)]
pub struct List {
    chunks: Chunks,
    len: usize,
    /// Offsets of the last elements of the last chunk, in order, ending with the last
    /// element (a suffix: possibly empty, never stale). Boxed: most lists never need it.
    tail: Option<Box<TailCache>>,
}

impl List {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Each chunk, head to tail: (elements, bytes used, bytes allocated) (DEBUG QUICKLIST).
    pub fn chunk_shapes(&self) -> Vec<(usize, usize, usize)> {
        (0..self.chunks.len())
            .filter_map(|k| self.chunks.get(k))
            .map(|c| (c.count as usize, c.used(), c.buf.len()))
            .collect()
    }

    /// Elements from head to tail.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Elements from index `i` to the tail.
    pub fn iter_from(&self, i: usize) -> Iter<'_> {
        if i >= self.len {
            return Iter {
                chunks: &self.chunks,
                k: self.chunks.len(),
                off: 0,
                left: 0,
            };
        }
        let (k, j) = self.locate(i);
        Iter {
            chunks: &self.chunks,
            k,
            off: self.offset_in(k, j),
            left: self.len - i,
        }
    }

    /// OBJECT ENCODING name (Redis 7.0 reports every list as a quicklist).
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Heap bytes owned.
    pub fn heap_size(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Chunk>()
            + self.chunks.iter().map(|c| c.buf.len()).sum::<usize>()
            + self.tail.as_ref().map_or(0, |t| {
                std::mem::size_of::<Vec<u32>>() + t.capacity() * std::mem::size_of::<u32>()
            })
    }

    /// The element at index `i` (0 is the head).
    pub fn get(&self, i: usize) -> Option<Elem<'_>> {
        if i >= self.len {
            return None;
        }
        let (k, j) = self.locate(i);
        Some(decode(&self.chunks[k].buf, self.offset_in(k, j)).0)
    }

    pub fn push_front(&mut self, v: &[u8]) {
        self.push(Enc::of(v), true);
    }

    pub fn push_back(&mut self, v: &[u8]) {
        self.push(Enc::of(v), false);
    }

    /// Pushes an element popped from a list (possibly this one).
    pub fn push_popped(&mut self, p: &Popped, front: bool) {
        self.push(Enc::Raw(&p.0), front);
    }

    /// Removes the head element, handing it to `f` first.
    pub fn pop_front_with<R>(&mut self, f: impl FnOnce(Elem<'_>) -> R) -> Option<R> {
        self.pop_encoded(true, |b| f(decode(b, 0).0))
    }

    /// Removes the tail element, handing it to `f` first.
    pub fn pop_back_with<R>(&mut self, f: impl FnOnce(Elem<'_>) -> R) -> Option<R> {
        self.pop_encoded(false, |b| f(decode(b, 0).0))
    }

    /// Removes the head (`front`) or tail element, handing it to `f` first.
    #[inline]
    pub fn pop_with<R>(&mut self, front: bool, f: impl FnOnce(Elem<'_>) -> R) -> Option<R> {
        self.pop_encoded(front, |b| f(decode(b, 0).0))
    }

    /// Removes the head (`front`) or tail element in its encoded form.
    pub fn pop_raw(&mut self, front: bool) -> Option<Popped> {
        self.pop_encoded(front, |b| Popped(SmallVec::from_slice(b)))
    }

    /// Removes the head (`front`) or tail element, handing its encoded bytes to `f` first.
    fn pop_encoded<R>(&mut self, front: bool, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let single = self.chunks.len() == 1;
        let (k, off) = if front {
            (0, self.chunks.front()?.head)
        } else {
            (self.chunks.len().checked_sub(1)?, self.last_offset()?)
        };
        let c = &mut self.chunks[k];
        let size = elem_size(&c.buf, off);
        let r = f(&c.buf[off..off + size]);
        if front {
            c.head += size;
            c.start += 1;
        } else {
            c.end = off;
        }
        c.count -= 1;
        self.len -= 1;
        if c.count == 0 {
            self.chunks.remove(k);
            if !front || single {
                self.clear_tail();
            }
        } else {
            let moved = c.maybe_shrink();
            let is_last = !front || single;
            // Popping the head invalidates the cache only if it covered the whole chunk.
            if is_last && (moved || (front && self.tail_first() == Some(off as u32))) {
                self.clear_tail();
            }
        }
        Some(r)
    }

    /// Replaces the element at index `i`. Returns false if there is none.
    pub fn set(&mut self, i: usize, v: &[u8]) -> bool {
        if i >= self.len {
            return false;
        }
        let e = Enc::of(v);
        let n = e.size();
        let (k, j) = self.locate(i);
        let off = self.offset_in(k, j);
        let c = &mut self.chunks[k];
        let old = elem_size(&c.buf, off);
        if n == old {
            // Same size: nothing moves, so the tail cache stays valid.
            e.write(&mut c.buf[off..off + n]);
            return true;
        }
        if c.count == 1 || c.used() - old + n <= CHUNK_BYTES {
            let at = if n > old {
                c.open_gap(off + old, n - old) - old
            } else {
                off + c.close_gap(off + n, old - n)
            };
            e.write(&mut c.buf[at..at + n]);
            if c.count == 1 {
                c.maybe_shrink();
            }
            self.clear_tail();
            return true;
        }
        // The chunk would overflow: take the element out and insert the new one.
        self.remove_at(k, off, old);
        self.insert_enc(i, e);
        true
    }

    /// Inserts `v` so that it becomes index `i` (`0..=len`).
    pub fn insert(&mut self, i: usize, v: &[u8]) {
        self.insert_enc(i.min(self.len), Enc::of(v));
    }

    /// Keeps only indexes `start..end` (which must lie within the list). Returns how many
    /// elements were removed.
    pub fn trim(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len);
        let start = start.min(end);
        let (mut front, mut back) = (start, self.len - end);
        let removed = front + back;
        while front > 0 {
            let Some(c) = self.chunks.front_mut() else {
                break;
            };
            if c.count as usize <= front {
                front -= c.count as usize;
                self.chunks.pop_front();
            } else {
                c.head = c.offset_of(front);
                c.count -= front as u32;
                c.start += front as i64;
                c.maybe_shrink();
                front = 0;
            }
        }
        while back > 0 {
            let Some(c) = self.chunks.back_mut() else {
                break;
            };
            if c.count as usize <= back {
                back -= c.count as usize;
                self.chunks.pop_back();
            } else {
                let keep = c.count as usize - back;
                c.end = c.offset_of(keep);
                c.count = keep as u32;
                c.maybe_shrink();
                back = 0;
            }
        }
        self.len -= removed;
        if removed > 0 {
            self.clear_tail();
        }
        removed
    }

    /// Removes elements equal to `v`: the first `limit` from the head (`from_tail` false) or
    /// the last `limit` (from the tail), every one if `limit` is 0. Returns how many.
    pub fn remove_matching(&mut self, v: &[u8], limit: usize, from_tail: bool) -> usize {
        let target = Target::new(v);
        let limit = if limit == 0 { usize::MAX } else { limit };
        // From the tail: keep the matches before the last `limit` ones.
        let mut skip = if from_tail && limit != usize::MAX {
            self.count_matching(&target).saturating_sub(limit)
        } else {
            0
        };
        let mut removed = 0;
        for c in self.chunks.iter_mut() {
            if removed == limit {
                break;
            }
            let (mut r, mut w) = (c.head, c.head);
            let mut gone = 0;
            while r < c.end {
                let size = elem_size(&c.buf, r);
                let hit = removed < limit && target.is(&c.buf[r..r + size]);
                let drop = hit && skip == 0;
                if hit && skip > 0 {
                    skip -= 1;
                }
                if drop {
                    removed += 1;
                    gone += 1;
                } else {
                    if r != w {
                        c.buf.copy_within(r..r + size, w);
                    }
                    w += size;
                }
                r += size;
            }
            c.end = w;
            c.count -= gone;
        }
        if removed > 0 {
            self.len -= removed;
            self.tidy();
        }
        removed
    }

    /// Calls `f` with the index of each element equal to `v`, scanning from the head, or
    /// from the tail when `from_tail`, and looking at no more than `maxlen` elements (0: no
    /// limit), until `f` returns false.
    pub fn find(&self, v: &[u8], from_tail: bool, maxlen: usize, mut f: impl FnMut(usize) -> bool) {
        let target = Target::new(v);
        let maxlen = if maxlen == 0 { usize::MAX } else { maxlen };
        let mut seen = 0usize;
        if !from_tail {
            let mut idx = 0;
            for c in self.chunks.iter() {
                let mut off = c.head;
                while off < c.end {
                    if seen == maxlen {
                        return;
                    }
                    seen += 1;
                    let size = elem_size(&c.buf, off);
                    if target.is(&c.buf[off..off + size]) && !f(idx) {
                        return;
                    }
                    off += size;
                    idx += 1;
                }
            }
        } else {
            let mut offs: Vec<usize> = Vec::new();
            let mut idx = self.len;
            for c in self.chunks.iter().rev() {
                offs.clear();
                let mut off = c.head;
                while off < c.end {
                    offs.push(off);
                    off += elem_size(&c.buf, off);
                }
                let mut next = c.end;
                for &off in offs.iter().rev() {
                    if seen == maxlen {
                        return;
                    }
                    seen += 1;
                    idx -= 1;
                    if target.is(&c.buf[off..next]) && !f(idx) {
                        return;
                    }
                    next = off;
                }
            }
        }
    }

    // --- internals ---------------------------------------------------------------------

    fn clear_tail(&mut self) {
        self.tail = None;
    }

    fn tail_first(&self) -> Option<u32> {
        self.tail.as_ref()?.first().copied()
    }

    #[cfg(test)]
    fn tail_len(&self) -> usize {
        self.tail.as_ref().map_or(0, |t| t.len())
    }

    fn push(&mut self, e: Enc<'_>, front: bool) {
        let n = e.size();
        let end_chunk = if front {
            self.chunks.front()
        } else {
            self.chunks.back()
        };
        let start = match end_chunk {
            Some(c) if c.used() + n <= CHUNK_BYTES => None,
            Some(c) => Some(if front {
                c.start
            } else {
                c.start + c.count as i64
            }),
            None => Some(0),
        };
        if let Some(start) = start {
            let cap = if n > CHUNK_BYTES || self.chunks.is_empty() {
                size_class(n)
            } else {
                size_class(n.max(GROWN_CHUNK))
            };
            let c = Chunk::new(cap, front, start);
            if front {
                self.chunks.push_front(c);
            } else {
                self.chunks.push_back(c);
                self.clear_tail();
            }
        }
        let single = self.chunks.len() == 1;
        let Some(c) = (if front {
            self.chunks.front_mut()
        } else {
            self.chunks.back_mut()
        }) else {
            return;
        };
        let moved = c.reserve(n, front);
        let off = if front {
            c.head -= n;
            c.start -= 1;
            c.head
        } else {
            c.end += n;
            c.end - n
        };
        e.write(&mut c.buf[off..off + n]);
        c.count += 1;
        self.len += 1;
        if moved && (single || !front) {
            self.clear_tail();
        } else if !front {
            if let Some(t) = self.tail.as_mut().filter(|t| !t.is_empty()) {
                t.push(off as u32);
            }
        }
    }

    /// Offset of the last element, from the tail cache (rebuilt by one scan when empty).
    fn last_offset(&mut self) -> Option<usize> {
        let c = self.chunks.back()?;
        if c.count == 1 {
            return Some(c.head);
        }
        if let Some(off) = self.tail.as_mut().and_then(|t| t.pop()) {
            return Some(off as usize);
        }
        if c.count <= TAIL_SCAN_MAX {
            return Some(c.offset_of(c.count as usize - 1));
        }
        let t = self.tail.get_or_insert_with(Box::default);
        t.clear();
        let mut off = c.head;
        while off < c.end {
            t.push(off as u32);
            off += elem_size(&c.buf, off);
        }
        t.pop().map(|o| o as usize)
    }

    /// Chunk and position inside it of index `i` (< len).
    fn locate(&self, i: usize) -> (usize, usize) {
        let first = &self.chunks[0];
        if i < first.count as usize {
            return (0, i);
        }
        let k = self.chunks.len() - 1;
        let before_last = self.len - self.chunks[k].count as usize;
        if i >= before_last {
            return (k, i - before_last);
        }
        let abs = first.start + i as i64;
        let k = self
            .chunks
            .partition_point(|c| c.start + c.count as i64 <= abs);
        (k, (abs - self.chunks[k].start) as usize)
    }

    /// Byte offset of element `j` of chunk `k`, using the tail cache when it covers it.
    fn offset_in(&self, k: usize, j: usize) -> usize {
        let c = &self.chunks[k];
        if k + 1 == self.chunks.len() {
            if let Some(t) = &self.tail {
                let first_cached = c.count as usize - t.len();
                if !t.is_empty() && j >= first_cached {
                    return t[j - first_cached] as usize;
                }
            }
        }
        c.offset_of(j)
    }

    /// Removes the element of `size` bytes at `off` in chunk `k`.
    fn remove_at(&mut self, k: usize, off: usize, size: usize) {
        let c = &mut self.chunks[k];
        c.close_gap(off, size);
        c.count -= 1;
        self.len -= 1;
        if c.count == 0 {
            self.chunks.remove(k);
        }
        self.renumber();
        self.clear_tail();
    }

    /// Inserts an encoded element so that it becomes index `i` (`0..=len`).
    fn insert_enc(&mut self, i: usize, e: Enc<'_>) {
        if i == 0 {
            return self.push(e, true);
        }
        if i == self.len {
            return self.push(e, false);
        }
        self.clear_tail();
        let n = e.size();
        let (mut k, j) = self.locate(i);
        // At a chunk boundary the end of the previous chunk is as good a place.
        if j == 0 && self.chunks[k].used() + n > CHUNK_BYTES {
            k -= 1;
            let c = &mut self.chunks[k];
            if c.used() + n <= CHUNK_BYTES {
                c.reserve(n, false);
                let off = c.end;
                c.end += n;
                e.write(&mut c.buf[off..off + n]);
                c.count += 1;
                self.len += 1;
                return self.renumber();
            }
            // Neither neighbour has room: a chunk of its own between them.
            let mut c = Chunk::new(size_class(n), false, 0);
            c.end = n;
            e.write(&mut c.buf[..n]);
            c.count = 1;
            self.chunks.insert(k + 1, c);
            self.len += 1;
            return self.renumber();
        }
        let c = &mut self.chunks[k];
        let off = c.offset_of(j);
        if c.used() + n <= CHUNK_BYTES {
            let at = c.open_gap(off, n);
            e.write(&mut c.buf[at..at + n]);
            c.count += 1;
            self.len += 1;
            return self.renumber();
        }
        // Split the chunk at the insertion point; the element joins whichever half has room.
        let tail_bytes = &c.buf[off..c.end];
        let mut right = Chunk::new(size_class(tail_bytes.len()), false, 0);
        right.buf[..tail_bytes.len()].copy_from_slice(tail_bytes);
        right.end = tail_bytes.len();
        right.count = c.count - j as u32;
        c.end = off;
        c.count = j as u32;
        if c.used() + n <= CHUNK_BYTES {
            c.reserve(n, false);
            let at = c.end;
            c.end += n;
            e.write(&mut c.buf[at..at + n]);
            c.count += 1;
        } else if right.used() + n <= CHUNK_BYTES {
            right.reserve(n, true);
            right.head -= n;
            let at = right.head;
            e.write(&mut right.buf[at..at + n]);
            right.count += 1;
        } else {
            let mut mid = Chunk::new(size_class(n), false, 0);
            mid.end = n;
            e.write(&mut mid.buf[..n]);
            mid.count = 1;
            self.chunks.insert(k + 1, mid);
            k += 1;
        }
        self.chunks.insert(k + 1, right);
        self.len += 1;
        self.renumber();
    }

    /// Recomputes every chunk's `start` from the first one's (after a change in the middle).
    fn renumber(&mut self) {
        let mut next = self.chunks.front().map_or(0, |c| c.start);
        for c in self.chunks.iter_mut() {
            c.start = next;
            next += c.count as i64;
        }
    }

    /// After removals in the middle: drops empty chunks, merges small neighbours, gives
    /// memory back, and renumbers.
    fn tidy(&mut self) {
        self.chunks.retain(|c| c.count > 0);
        let mut i = 0;
        while i + 1 < self.chunks.len() {
            let (a, b) = (self.chunks[i].used(), self.chunks[i + 1].used());
            if a + b <= CHUNK_BYTES && (a < CHUNK_BYTES / 4 || b < CHUNK_BYTES / 4) {
                let Some(next) = self.chunks.remove(i + 1) else {
                    break;
                };
                let c = &mut self.chunks[i];
                c.reserve(b, false);
                c.buf[c.end..c.end + b].copy_from_slice(&next.buf[next.head..next.end]);
                c.end += b;
                c.count += next.count;
            } else {
                i += 1;
            }
        }
        for c in self.chunks.iter_mut() {
            c.maybe_shrink();
        }
        self.chunks.normalize();
        self.renumber();
        self.clear_tail();
    }

    fn count_matching(&self, target: &Target) -> usize {
        let mut n = 0;
        for c in self.chunks.iter() {
            let mut off = c.head;
            while off < c.end {
                let size = elem_size(&c.buf, off);
                n += usize::from(target.is(&c.buf[off..off + size]));
                off += size;
            }
        }
        n
    }
}

/// A value to search for, encoded once so each element compares as raw bytes.
struct Target(SmallVec<[u8; 32]>);

impl Target {
    fn new(v: &[u8]) -> Self {
        let e = Enc::of(v);
        let mut b = SmallVec::from_elem(0u8, e.size());
        e.write(&mut b);
        Target(b)
    }

    #[inline]
    fn is(&self, encoded: &[u8]) -> bool {
        encoded == &self.0[..]
    }
}

/// Iterator over a list's elements (see [`List::iter_from`]).
pub struct Iter<'a> {
    chunks: &'a Chunks,
    k: usize,
    off: usize,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Elem<'a>;

    #[inline]
    fn next(&mut self) -> Option<Elem<'a>> {
        if self.left == 0 {
            return None;
        }
        loop {
            let c = self.chunks.get(self.k)?;
            if self.off < c.end {
                let (e, size) = decode(&c.buf, self.off);
                self.off += size;
                self.left -= 1;
                return Some(e);
            }
            self.k += 1;
            self.off = self.chunks.get(self.k)?.head;
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl PartialEq for List {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().zip(other.iter()).all(|(a, b)| *a == *b)
    }
}

impl fmt::Debug for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|e| String::from_utf8_lossy(&e).into_owned()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque as Model;

    fn check(l: &List, m: &Model<Vec<u8>>) {
        assert_eq!(l.len(), m.len());
        let got: Vec<Vec<u8>> = l.iter().map(|e| e.to_vec()).collect();
        let want: Vec<Vec<u8>> = m.iter().cloned().collect();
        assert_eq!(got, want);
        // Chunk invariants: counts add up, starts are consecutive, multi-element chunks fit.
        let mut total = 0;
        for (i, c) in l.chunks.iter().enumerate() {
            assert!(c.count > 0, "empty chunk");
            if c.count > 1 {
                assert!(c.used() <= CHUNK_BYTES);
            }
            if i > 0 {
                let p = &l.chunks[i - 1];
                assert_eq!(p.start + p.count as i64, c.start);
            }
            let mut off = c.head;
            let mut n = 0;
            while off < c.end {
                off += elem_size(&c.buf, off);
                n += 1;
            }
            assert_eq!(off, c.end);
            assert_eq!(n, c.count);
            total += c.count as usize;
        }
        assert_eq!(total, l.len());
        if let Some(c) = l.chunks.back() {
            let first = c.count as usize - l.tail_len();
            for (x, &off) in l.tail.iter().flat_map(|t| t.iter()).enumerate() {
                assert_eq!(c.offset_of(first + x), off as usize, "stale tail cache");
            }
        }
        for i in [0, m.len() / 3, m.len() / 2, m.len().saturating_sub(1)] {
            if i < m.len() {
                assert_eq!(&*l.get(i).unwrap(), &m[i][..]);
            }
        }
    }

    #[test]
    fn integers_round_trip_through_their_binary_form() {
        let mut l = List::new();
        let values: Vec<Vec<u8>> = [
            "0",
            "1",
            "111",
            "112",
            "127",
            "128",
            "-1",
            "-128",
            "-129",
            "32767",
            "-32768",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "007",
            "-0",
            "+1",
            " 1",
            "1.5",
            "",
            "-",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        for v in &values {
            l.push_back(v);
        }
        let got: Vec<Vec<u8>> = l.iter().map(|e| e.to_vec()).collect();
        assert_eq!(got, values);
        assert_eq!(Enc::of(b"5").size(), 1);
        assert_eq!(Enc::of(b"1000").size(), 3);
        assert_eq!(Enc::of(b"123456").size(), 4);
    }

    #[test]
    fn size_classes_match_jemalloc() {
        let got: Vec<usize> = [1, 9, 17, 33, 49, 65, 129, 200, 4095, 4096, 4097]
            .iter()
            .map(|&n| size_class(n))
            .collect();
        assert_eq!(got, [8, 16, 32, 48, 64, 80, 160, 224, 4096, 4096, 5120]);
    }

    #[test]
    fn pushes_and_pops_at_both_ends_agree_with_a_deque() {
        let mut l = List::new();
        let mut m: Model<Vec<u8>> = Model::new();
        let mut x: u64 = 7;
        for step in 0..40_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (x >> 33) as u32;
            let v: Vec<u8> = match r % 4 {
                0 => (r % 1000).to_string().into_bytes(),
                1 => format!("member:{}", r % 100_000).into_bytes(),
                2 => vec![b'x'; (r % 300) as usize],
                _ => (r as i64 - (1 << 31)).to_string().into_bytes(),
            };
            // Bias towards growth so the list spans many chunks.
            match (r >> 8) % 10 {
                0..=2 => {
                    l.push_front(&v);
                    m.push_front(v);
                }
                3..=5 => {
                    l.push_back(&v);
                    m.push_back(v);
                }
                6 | 7 => {
                    let got = l.pop_back_with(|e| e.to_vec());
                    assert_eq!(got, m.pop_back());
                }
                _ => {
                    let got = l.pop_front_with(|e| e.to_vec());
                    assert_eq!(got, m.pop_front());
                }
            }
            if step % 997 == 0 {
                check(&l, &m);
            }
        }
        check(&l, &m);
        while let Some(v) = l.pop_back_with(|e| e.to_vec()) {
            assert_eq!(Some(v), m.pop_back());
        }
        assert!(m.is_empty());
        assert!(l.chunks.is_empty());
    }

    #[test]
    fn middle_edits_agree_with_a_deque() {
        let mut l = List::new();
        let mut m: Model<Vec<u8>> = Model::new();
        for i in 0..3000 {
            let v = format!("v{}", i % 50).into_bytes();
            l.push_back(&v);
            m.push_back(v);
        }
        let mut x: u64 = 99;
        for step in 0..3000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (x >> 33) as usize;
            let i = if m.is_empty() { 0 } else { r % m.len() };
            let v = match r % 5 {
                0 => vec![b'y'; r % 5000],
                1 => (r % 200).to_string().into_bytes(),
                _ => format!("v{}", r % 50).into_bytes(),
            };
            match (r >> 12) % 6 {
                0 | 1 => {
                    l.insert(i, &v);
                    m.insert(i, v);
                }
                2 if !m.is_empty() => {
                    assert!(l.set(i, &v));
                    m[i] = v;
                }
                3 => {
                    let limit = r % 3;
                    let from_tail = r & 1 == 0;
                    let target = format!("v{}", r % 50).into_bytes();
                    let n = l.remove_matching(&target, limit, from_tail);
                    let mut removed = 0;
                    let limit = if limit == 0 { usize::MAX } else { limit };
                    if from_tail {
                        let mut i = m.len();
                        while i > 0 && removed < limit {
                            i -= 1;
                            if m[i] == target {
                                m.remove(i);
                                removed += 1;
                            }
                        }
                    } else {
                        let mut i = 0;
                        while i < m.len() && removed < limit {
                            if m[i] == target {
                                m.remove(i);
                                removed += 1;
                            } else {
                                i += 1;
                            }
                        }
                    }
                    assert_eq!(n, removed);
                }
                4 if m.len() > 10 => {
                    let (a, b) = (r % 3, m.len() - (r >> 3) % 3);
                    assert_eq!(l.trim(a, b), a + m.len() - b);
                    m.truncate(b);
                    m.drain(..a);
                }
                _ => {
                    let got = l.pop_back_with(|e| e.to_vec());
                    assert_eq!(got, m.pop_back());
                }
            }
            if step % 101 == 0 {
                check(&l, &m);
            }
        }
        check(&l, &m);
    }

    #[test]
    fn find_reports_indexes_in_scan_order() {
        let mut l = List::new();
        for v in ["a", "b", "a", "c", "a"] {
            l.push_back(v.as_bytes());
        }
        let mut fwd = Vec::new();
        l.find(b"a", false, 0, |i| {
            fwd.push(i);
            true
        });
        assert_eq!(fwd, [0, 2, 4]);
        let mut back = Vec::new();
        l.find(b"a", true, 3, |i| {
            back.push(i);
            true
        });
        assert_eq!(back, [4, 2]);
    }

    #[test]
    fn popped_elements_move_between_lists_unchanged() {
        let mut a = List::new();
        let mut b = List::new();
        for v in ["x", "12", "-7", "long string value"] {
            a.push_back(v.as_bytes());
        }
        while let Some(p) = a.pop_raw(false) {
            b.push_popped(&p, true);
        }
        let got: Vec<Vec<u8>> = b.iter().map(|e| e.to_vec()).collect();
        assert_eq!(got, [&b"x"[..], b"12", b"-7", b"long string value"]);
    }

    #[test]
    fn a_million_short_members_cost_about_their_length() {
        let mut l = List::new();
        let mut bytes = 0;
        for i in 0..1_000_000u32 {
            let v = format!("member:{i}");
            bytes += v.len();
            l.push_back(v.as_bytes());
        }
        // One header byte per element, plus a few percent for chunk bookkeeping.
        let per_elem = l.heap_size() as f64 / 1e6;
        let payload = bytes as f64 / 1e6 + 1.0;
        assert!(per_elem < payload * 1.03, "{per_elem} bytes per element");
    }
}
