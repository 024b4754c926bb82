//! Listpacks: the packed sequence Redis 7 keeps small hashes, sorted sets, list nodes and
//! stream nodes in, and writes into RDB files as one blob.
//!
//! Layout: a 6-byte header (total bytes, u32 LE; element count, u16 LE, 65535 meaning "count
//! them"), the elements, and a final `0xFF`. Each element is an encoding byte (with any
//! length or value bits), its payload, and then a "backlen": the size of encoding + payload
//! in 1 to 5 bytes, written so that it can be read backwards (each byte holds 7 bits, and
//! the high bit marks that another byte precedes it). Encodings:
//!
//! | first byte | element |
//! |---|---|
//! | `0xxxxxxx` | integer 0..=127 |
//! | `10llllll` | string of up to 63 bytes |
//! | `110xxxxx` + 1 byte | 13-bit signed integer |
//! | `1110llll` + 1 byte | string of up to 4095 bytes (length big end first) |
//! | `0xF0` + u32 LE | longer string |
//! | `0xF1` / `0xF2` / `0xF3` / `0xF4` | 16 / 24 / 32 / 64-bit signed integer, LE |
//!
//! A string that is an integer in canonical decimal form (Redis's `string2ll` rules) is
//! always stored as an integer, in the smallest encoding that holds it. The writer here
//! follows those rules, so a listpack it builds is byte-identical to Redis's for the same
//! elements. The reader checks every length, encoding and backlen against the blob before
//! returning anything, so a corrupt or hostile blob is an error, never a panic.

use kiln_store::util::parse_i64;

/// Header bytes: total size and element count.
const HEADER: usize = 6;
/// The terminator byte.
const EOF: u8 = 0xFF;
/// Header count meaning "too many to store here".
const UNKNOWN_COUNT: u16 = u16::MAX;

/// One element read from a listpack (or a ziplist, which holds the same two kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl<'a> Item<'a> {
    /// The element as bytes: integers in decimal.
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Item::Str(s) => s.to_vec(),
            Item::Int(v) => itoa::Buffer::new().format(v).as_bytes().to_vec(),
        }
    }

    /// Runs `f` on the element's bytes without allocating.
    pub fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Item::Str(s) => f(s),
            Item::Int(v) => f(itoa::Buffer::new().format(v).as_bytes()),
        }
    }

    /// The element as an integer: an integer element, or a string in canonical form.
    pub fn as_int(self) -> Option<i64> {
        match self {
            Item::Int(v) => Some(v),
            Item::Str(s) => parse_i64(s),
        }
    }

    /// Length of the element's bytes.
    pub fn len(self) -> usize {
        match self {
            Item::Str(s) => s.len(),
            Item::Int(v) => itoa::Buffer::new().format(v).len(),
        }
    }

    /// Whether the element is the empty string.
    pub fn is_empty(self) -> bool {
        matches!(self, Item::Str(s) if s.is_empty())
    }
}

/// Builds a listpack element by element.
pub struct Writer {
    buf: Vec<u8>,
    count: usize,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    /// An empty listpack.
    pub fn new() -> Self {
        Self {
            buf: vec![0; HEADER],
            count: 0,
        }
    }

    /// An empty listpack built in `buf` (cleared first): lets a writer reuse one buffer
    /// for many listpacks instead of allocating each.
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.resize(HEADER, 0);
        Self { buf, count: 0 }
    }

    /// Elements written so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no element was written yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the finished listpack will have (Redis's `lpBytes`).
    pub fn bytes(&self) -> usize {
        self.buf.len() + 1
    }

    /// Appends a string, as an integer when it is one in canonical form (what Redis's
    /// `lpAppend` does).
    pub fn push_str(&mut self, s: &[u8]) {
        if let Some(v) = parse_i64(s) {
            return self.push_int(v);
        }
        let start = self.buf.len();
        let n = s.len();
        if n < 64 {
            self.buf.push(0x80 | n as u8);
        } else if n < 4096 {
            self.buf.push(0xE0 | (n >> 8) as u8);
            self.buf.push(n as u8);
        } else {
            self.buf.push(0xF0);
            self.buf.extend_from_slice(&(n as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(s);
        self.finish_element(start);
    }

    /// Appends an element read from another listpack.
    pub fn push_item(&mut self, it: Item<'_>) {
        match it {
            Item::Int(v) => self.push_int(v),
            Item::Str(s) => self.push_str(s),
        }
    }

    /// Appends an integer in the smallest encoding that holds it.
    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        if (0..=127).contains(&v) {
            self.buf.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u16) & 0x1FFF;
            self.buf.push(0xC0 | (u >> 8) as u8);
            self.buf.push(u as u8);
        } else if let Ok(x) = i16::try_from(v) {
            self.buf.push(0xF1);
            self.buf.extend_from_slice(&x.to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            self.buf.push(0xF2);
            self.buf.extend_from_slice(&v.to_le_bytes()[..3]);
        } else if let Ok(x) = i32::try_from(v) {
            self.buf.push(0xF3);
            self.buf.extend_from_slice(&x.to_le_bytes());
        } else {
            self.buf.push(0xF4);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        self.finish_element(start);
    }

    /// Writes the backlen of the element that starts at `start`.
    fn finish_element(&mut self, start: usize) {
        let l = self.buf.len() - start;
        let mut tmp = [0u8; 5];
        let n = encode_backlen(l, &mut tmp);
        self.buf.extend_from_slice(&tmp[..n]);
        self.count += 1;
    }

    /// The finished listpack.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(EOF);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let count = if self.count < UNKNOWN_COUNT as usize {
            self.count as u16
        } else {
            UNKNOWN_COUNT
        };
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

/// Writes the backlen of an element of `l` bytes (encoding + payload) into `out`, most
/// significant group first; returns its size.
/// Bytes of the back-length of an entry whose encoding and data take `l` bytes, as Redis
/// sizes it (7 bits a byte, with its boundaries one below the powers of 128).
pub fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

fn encode_backlen(l: usize, out: &mut [u8; 5]) -> usize {
    let n = backlen_size(l);
    for (i, slot) in out.iter_mut().take(n).enumerate() {
        // Group i (from the most significant): 7 bits, with the continuation mark on
        // every byte but the first.
        let shift = 7 * (n - 1 - i);
        let bits = ((l >> shift) & 0x7F) as u8;
        *slot = if i == 0 { bits } else { bits | 0x80 };
    }
    n
}

/// Reads a listpack whole: checks its structure and returns its elements. Every offset is
/// checked against the blob, so any input is either a listpack or an error.
pub fn parse(blob: &[u8]) -> Result<Vec<Item<'_>>, String> {
    if blob.len() < HEADER + 1 {
        return Err(format!("listpack of {} bytes is too short", blob.len()));
    }
    let total = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    if total != blob.len() {
        return Err(format!(
            "listpack header says {total} bytes but the blob has {}",
            blob.len()
        ));
    }
    if blob[blob.len() - 1] != EOF {
        return Err("listpack does not end with its terminator".into());
    }
    let declared = u16::from_le_bytes([blob[4], blob[5]]);
    let end = blob.len() - 1;
    let mut items = Vec::with_capacity((declared as usize).min(4096));
    let mut p = HEADER;
    while p < end {
        let (item, size) = element(blob, p, end)?;
        // The backlen's size follows from the element's, so compare it with the canonical
        // bytes (reading it forwards would be ambiguous).
        let back_start = p + size;
        let mut expect = [0u8; 5];
        let n = encode_backlen(size, &mut expect);
        if blob.get(back_start..back_start + n) != Some(&expect[..n]) || back_start + n > end {
            return Err(format!("listpack element at {p} has a bad backlen"));
        }
        let back_size = n;
        items.push(item);
        p = back_start + back_size;
    }
    if declared != UNKNOWN_COUNT && declared as usize != items.len() {
        return Err(format!(
            "listpack header counts {declared} elements but holds {}",
            items.len()
        ));
    }
    Ok(items)
}

/// Decodes the element at `p` (which is before `end`, the terminator): the element and
/// the size of its encoding and payload.
fn element(b: &[u8], p: usize, end: usize) -> Result<(Item<'_>, usize), String> {
    let c = b[p];
    let need = |n: usize| -> Result<&[u8], String> {
        b.get(p + 1..p + 1 + n)
            .filter(|_| p + 1 + n <= end)
            .ok_or_else(|| format!("listpack element at {p} runs past the end"))
    };
    let int_le = |bytes: &[u8]| -> i64 {
        let fill = if bytes[bytes.len() - 1] & 0x80 != 0 {
            0xFF
        } else {
            0
        };
        let mut w = [fill; 8];
        w[..bytes.len()].copy_from_slice(bytes);
        i64::from_le_bytes(w)
    };
    Ok(match c {
        0x00..=0x7F => (Item::Int(i64::from(c)), 1),
        0x80..=0xBF => {
            let n = (c & 0x3F) as usize;
            (Item::Str(need(n)?), 1 + n)
        }
        0xC0..=0xDF => {
            let lo = need(1)?[0];
            let u = (u16::from(c & 0x1F) << 8) | u16::from(lo);
            // Sign-extend 13 bits.
            let v = if u & 0x1000 != 0 {
                i64::from(u) - 0x2000
            } else {
                i64::from(u)
            };
            (Item::Int(v), 2)
        }
        0xE0..=0xEF => {
            let lo = need(1)?[0];
            let n = ((c & 0x0F) as usize) << 8 | lo as usize;
            let s = b
                .get(p + 2..p + 2 + n)
                .filter(|_| p + 2 + n <= end)
                .ok_or_else(|| format!("listpack string at {p} runs past the end"))?;
            (Item::Str(s), 2 + n)
        }
        0xF0 => {
            let l = need(4)?;
            let n = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
            let s = p
                .checked_add(5 + n)
                .filter(|&e| e <= end)
                .map(|e| &b[p + 5..e])
                .ok_or_else(|| format!("listpack string at {p} runs past the end"))?;
            (Item::Str(s), 5 + n)
        }
        0xF1 => (Item::Int(int_le(need(2)?)), 3),
        0xF2 => (Item::Int(int_le(need(3)?)), 4),
        0xF3 => (Item::Int(int_le(need(4)?)), 5),
        0xF4 => (Item::Int(int_le(need(8)?)), 9),
        _ => {
            return Err(format!(
                "listpack element at {p} has invalid encoding {c:#04x}"
            ))
        }
    })
}

/// Reads a backlen whose last byte is `b[b.len() - 1]`, backwards as Redis does: (value,
/// bytes). Only the tests need it: the parser compares backlens with their canonical form.
#[cfg(test)]
fn decode_backlen_rev(b: &[u8]) -> Option<(usize, usize)> {
    let mut v = 0usize;
    let mut n = 0;
    loop {
        let x = *b.get(b.len().checked_sub(n + 1)?)?;
        v |= ((x & 0x7F) as usize) << (7 * n);
        n += 1;
        if x & 0x80 == 0 || n == 5 {
            return Some((v, n));
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn back_lengths_grow_one_below_each_power_of_128() {
        for (l, n) in [
            (127, 1),
            (128, 2),
            (16382, 2),
            (16383, 3),
            (2097150, 3),
            (2097151, 4),
            (268435454, 4),
            (268435455, 5),
        ] {
            assert_eq!(backlen_size(l), n, "{l}");
            let mut out = [0u8; 5];
            assert_eq!(encode_backlen(l, &mut out), n, "{l}");
        }
    }
    use super::*;

    #[test]
    fn a_hash_listpack_is_byte_identical_to_redis() {
        // DUMP of HSET h f1 value1 f2 value2 in redis-server 7.0 (rdbcompression no), minus
        // the type byte, the length byte and the footer.
        let want = b"\x1f\x00\x00\x00\x04\x00\x82f1\x03\x86value1\x07\x82f2\x03\x86value2\x07\xff";
        let mut w = Writer::new();
        for s in ["f1", "value1", "f2", "value2"] {
            w.push_str(s.as_bytes());
        }
        assert_eq!(w.finish(), want);
        let items = parse(want).unwrap();
        assert_eq!(items[1], Item::Str(b"value1"));
    }

    #[test]
    fn integers_take_the_smallest_encoding_and_round_trip() {
        let vals: Vec<i64> = vec![
            0,
            127,
            128,
            -1,
            -4096,
            4095,
            4096,
            -4097,
            32767,
            -32768,
            32768,
            (1 << 23) - 1,
            -(1 << 23),
            1 << 23,
            i32::MAX as i64,
            i32::MIN as i64,
            i32::MAX as i64 + 1,
            i64::MAX,
            i64::MIN,
        ];
        let mut w = Writer::new();
        for &v in &vals {
            w.push_int(v);
        }
        w.push_str(b"007");
        w.push_str(&[b'x'; 70]);
        w.push_str(&[b'y'; 5000]);
        let lp = w.finish();
        let items = parse(&lp).unwrap();
        for (i, &v) in vals.iter().enumerate() {
            assert_eq!(items[i], Item::Int(v), "value {v}");
        }
        assert_eq!(items[vals.len()], Item::Str(b"007"));
        assert_eq!(items[vals.len() + 2].len(), 5000);
    }

    #[test]
    fn backlens_round_trip_at_every_size_class() {
        for l in [1usize, 127, 128, 16382, 16383, 2097150, 2097151, 268435455] {
            let mut b = [0u8; 5];
            let n = encode_backlen(l, &mut b);
            assert_eq!(decode_backlen_rev(&b[..n]), Some((l, n)), "{l}");
        }
    }

    #[test]
    fn damaged_listpacks_are_errors() {
        let mut w = Writer::new();
        for s in ["a", "12", "hello", "-5000"] {
            w.push_str(s.as_bytes());
        }
        let lp = w.finish();
        for cut in 0..lp.len() {
            assert!(parse(&lp[..cut]).is_err(), "cut {cut}");
        }
        for i in 0..lp.len() {
            for x in [0x00, 0x7F, 0x80, 0xC1, 0xE5, 0xF0, 0xF4, 0xFE, 0xFF] {
                let mut bad = lp.clone();
                bad[i] ^= x;
                let _ = parse(&bad);
            }
        }
    }
}
