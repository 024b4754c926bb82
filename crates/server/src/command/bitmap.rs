//! Bitmap commands: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD and BITFIELD_RO.
//!
//! A bitmap is a string: bit 0 is the most significant bit of byte 0. Every command works on
//! any string value (inline, int-encoded or on the heap), and a write grows the string with
//! zero bytes as far as the highest bit it touches, never beyond `proto-max-bulk-len` (the
//! offset parser refuses such offsets first, with Redis's text).
//!
//! Replies, errors and their order follow Redis 7.0.15, including its quirks: BITCOUNT looks
//! its key up before it parses its range (a missing key answers 0 whatever the arguments),
//! BITPOS parses its bit first, and SETBIT / BITFIELD count a change (event, dirty,
//! propagation, WATCH) only when a bit changed or the string grew. Counting and BITOP work a
//! 64-bit word at a time.

use std::sync::atomic::Ordering::Relaxed;

use super::args::int;
use super::flags::*;
use super::string::edit_in_place;
use super::{lookup, lookup_read};
use super::{CommandSpec, Ctx, Keys};
use crate::error::{
    CmdResult, CommandError, BITFIELD_RO_GET, BITFIELD_TYPE, BITOP_NOT_ONE_KEY, BIT_ARGUMENT,
    BIT_OFFSET, BIT_VALUE, E, OVERFLOW_TYPE, SYNTAX,
};
use crate::notify::{GENERIC, STRING};
use crate::storage::entry::META_RAW;
use crate::storage::{Entry, Value};
use crate::util::parse_i64;

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("setbit", 4, WRITE | DENYOOM, Keys::Range(1, 1, 1), setbit)
        .group("bitmap")
        .since("2.2.0")
        .summary("Sets or clears the bit at an offset of a string value, creating the key if needed; returns the old bit.")
        .complexity("O(1)")
        .syntax("key offset value"),
    CommandSpec::new("getbit", 3, READONLY | FAST, Keys::Range(1, 1, 1), getbit)
        .group("bitmap")
        .since("2.2.0")
        .summary("Returns the bit at an offset of a string value (0 beyond its end).")
        .complexity("O(1)")
        .syntax("key offset"),
    CommandSpec::new("bitcount", -2, READONLY, Keys::Range(1, 1, 1), bitcount)
        .group("bitmap")
        .since("2.6.0")
        .summary("Counts the bits set in a string value, or in a byte or bit range of it.")
        .complexity("O(N)")
        .syntax("key [start end [BYTE | BIT]]"),
    CommandSpec::new("bitpos", -3, READONLY, Keys::Range(1, 1, 1), bitpos)
        .group("bitmap")
        .since("2.8.7")
        .summary("Finds the first set or clear bit of a string value, optionally within a byte or bit range.")
        .complexity("O(N)")
        .syntax("key bit [start [end [BYTE | BIT]]]"),
    CommandSpec::new("bitop", -4, WRITE | DENYOOM, Keys::Range(2, -1, 1), bitop)
        .group("bitmap")
        .since("2.6.0")
        .summary("Stores the bitwise AND, OR, XOR or NOT of string values in a key.")
        .complexity("O(N)")
        .syntax("operation destkey key [key ...]"),
    CommandSpec::new("bitfield", -2, WRITE | DENYOOM, Keys::Range(1, 1, 1), bitfield)
        .group("bitmap")
        .since("3.2.0")
        .summary("Reads, writes and increments integers of any width (up to 64 bits) at any bit offset of a string value.")
        .complexity("O(1) for each subcommand specified")
        .syntax("key [GET encoding offset] [SET encoding offset value] [INCRBY encoding offset increment] [OVERFLOW WRAP | SAT | FAIL]"),
    CommandSpec::new("bitfield_ro", -2, READONLY | FAST, Keys::Range(1, 1, 1), bitfield_ro)
        .group("bitmap")
        .since("6.0.0")
        .summary("The read-only form of BITFIELD: GET subcommands only.")
        .complexity("O(1) for each subcommand specified")
        .syntax("key [GET encoding offset ...]"),
];

// --- Arguments -------------------------------------------------------------------------

/// Parses a bit offset as Redis does: a non-negative integer whose byte stays below
/// `proto-max-bulk-len`. With `width` (BITFIELD), `#n` means the n-th field of that width
/// (the product wraps like Redis's C multiplication, then fails the range check).
fn bit_offset(cx: &Ctx, arg: &[u8], width: Option<u32>) -> Result<u64, CommandError> {
    let (hash, digits) = match (arg.first(), width) {
        (Some(b'#'), Some(w)) => (Some(w), &arg[1..]),
        _ => (None, arg),
    };
    let mut v = parse_i64(digits).ok_or(E(BIT_OFFSET))?;
    if let Some(w) = hash {
        v = v.wrapping_mul(i64::from(w));
    }
    let max = cx.server.hot.proto_max_bulk_len.load(Relaxed);
    if v < 0 || (v as u64 >> 3) >= max {
        return Err(E(BIT_OFFSET));
    }
    Ok(v as u64)
}

/// A BITFIELD type: `i1`..`i64` or `u1`..`u63` (C-string parsing: a NUL ends it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FieldType {
    signed: bool,
    bits: u32,
}

fn field_type(arg: &[u8]) -> Result<FieldType, CommandError> {
    let arg = arg.split(|&c| c == 0).next().unwrap_or_default();
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(E(BITFIELD_TYPE)),
    };
    match parse_i64(&arg[1..]) {
        Some(b) if b >= 1 && b <= if signed { 64 } else { 63 } => Ok(FieldType {
            signed,
            bits: b as u32,
        }),
        _ => Err(E(BITFIELD_TYPE)),
    }
}

/// Byte or bit units for a BITCOUNT / BITPOS range (`None`: not a unit word).
fn range_unit(arg: &[u8]) -> Option<bool> {
    if arg.eq_ignore_ascii_case(b"BIT") {
        Some(true)
    } else if arg.eq_ignore_ascii_case(b"BYTE") {
        Some(false)
    } else {
        None
    }
}

/// Clamps `start..=end` (negative counting from the end) to a length of `total` units, as
/// Redis does; `None` for an empty range.
fn clamp_range(start: i64, end: i64, total: i64) -> Option<(u64, u64)> {
    let start = if start < 0 { total + start } else { start }.max(0);
    let end = if end < 0 { total + end } else { end }
        .max(0)
        .min(total - 1);
    (start <= end).then_some((start as u64, end as u64))
}

// --- Bit arithmetic --------------------------------------------------------------------

/// Number of set bits in `s`, a 64-bit word at a time: each word's per-byte counts are
/// summed in byte lanes (31 words fit before a lane could overflow), then folded once.
pub(crate) fn popcount(s: &[u8]) -> u64 {
    const M1: u64 = 0x5555_5555_5555_5555;
    const M2: u64 = 0x3333_3333_3333_3333;
    const M4: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    const M8: u64 = 0x00ff_00ff_00ff_00ff;
    let mut total = 0u64;
    let mut blocks = s.chunks_exact(8 * 31);
    for block in blocks.by_ref() {
        let mut acc = 0u64;
        for w in block.chunks_exact(8) {
            let mut x = u64::from_le_bytes(w.try_into().expect("8 bytes"));
            x -= (x >> 1) & M1;
            x = (x & M2) + ((x >> 2) & M2);
            acc += (x + (x >> 4)) & M4;
        }
        // Byte lanes (at most 248 each) to 16-bit lanes, then their sum in the top lane.
        let pairs = (acc & M8) + ((acc >> 8) & M8);
        total += pairs.wrapping_mul(0x0001_0001_0001_0001) >> 48;
    }
    let rest = blocks.remainder();
    let mut words = rest.chunks_exact(8);
    for w in words.by_ref() {
        total += u64::from(u64::from_le_bytes(w.try_into().expect("8 bytes")).count_ones());
    }
    total
        + words
            .remainder()
            .iter()
            .map(|b| u64::from(b.count_ones()))
            .sum::<u64>()
}

/// Set bits of `s` between bit `from` and bit `to` inclusive (both inside `s`).
fn count_bits(s: &[u8], from: u64, to: u64) -> u64 {
    let (fb, tb) = ((from >> 3) as usize, (to >> 3) as usize);
    let mut n = popcount(&s[fb..=tb]);
    // Take off the bits of the edge bytes that lie outside the range.
    let head = s[fb] & !(0xffu8 >> (from & 7));
    let tail = s[tb] & (0x7fu8 >> (to & 7));
    n -= u64::from(head.count_ones()) + u64::from(tail.count_ones());
    n
}

/// The first bit equal to `bit` between bit `from` and bit `to` inclusive (inside `s`).
fn find_bit(s: &[u8], bit: bool, from: u64, to: u64) -> Option<u64> {
    let (fb, tb) = ((from >> 3) as usize, (to >> 3) as usize);
    // Looking for a 1 in `x`, or for a 0 in `!x`: bits outside the range are masked off.
    let want = |b: u8| if bit { b } else { !b };
    let mask_byte = |i: usize| {
        let mut m = 0xffu8;
        if i == fb {
            m &= 0xff >> (from & 7);
        }
        if i == tb {
            m &= 0xff << (7 - (to & 7));
        }
        want(s[i]) & m
    };
    let first = |i: usize, b: u8| (i as u64) * 8 + u64::from(b.leading_zeros());
    let b = mask_byte(fb);
    if b != 0 {
        return Some(first(fb, b));
    }
    if fb == tb {
        return None;
    }
    // Whole bytes in between, a word at a time.
    let (mut i, end) = (fb + 1, tb);
    let skip = if bit { 0u64 } else { u64::MAX };
    while i + 8 <= end {
        let w = u64::from_be_bytes(s[i..i + 8].try_into().expect("8 bytes"));
        if w != skip {
            let x = if bit { w } else { !w };
            return Some(i as u64 * 8 + u64::from(x.leading_zeros()));
        }
        i += 8;
    }
    while i < end {
        let b = want(s[i]);
        if b != 0 {
            return Some(first(i, b));
        }
        i += 1;
    }
    let b = mask_byte(tb);
    (b != 0).then(|| first(tb, b))
}

/// The `bits`-wide unsigned field at bit `offset` of `s` (bits past the end read as 0).
fn get_field(s: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for i in 0..u64::from(bits) {
        let pos = offset + i;
        let byte = s.get((pos >> 3) as usize).copied().unwrap_or(0);
        v = (v << 1) | u64::from((byte >> (7 - (pos & 7))) & 1);
    }
    v
}

/// Writes the low `bits` bits of `v` at bit `offset` of `s` (long enough).
fn set_field(s: &mut [u8], offset: u64, bits: u32, v: u64) {
    for i in 0..u64::from(bits) {
        let pos = offset + i;
        let bit = (v >> (u64::from(bits) - 1 - i)) & 1;
        let byte = &mut s[(pos >> 3) as usize];
        let shift = 7 - (pos & 7);
        *byte = (*byte & !(1 << shift)) | ((bit as u8) << shift);
    }
}

/// A field's value read as its type: sign-extended when signed.
fn read_typed(s: &[u8], offset: u64, t: FieldType) -> i64 {
    let v = get_field(s, offset, t.bits);
    if t.signed && t.bits < 64 && v >> (t.bits - 1) & 1 == 1 {
        (v | (u64::MAX << t.bits)) as i64
    } else {
        v as i64
    }
}

/// How BITFIELD handles a SET or INCRBY result outside its type's range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// Redis's overflow check for a signed field: `value + incr` outside the `bits`-wide range
/// gives `Some(wrapped or saturated value)`. The comparisons wrap exactly as Redis's do, so
/// that even its edge cases (a SET of a value far below the range saturating to the
/// maximum) come out the same.
fn signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> Option<i64> {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1 << (bits - 1)) != 0 {
                (c | mask) as i64
            } else {
                (c & !mask) as i64
            }
        } else {
            c as i64
        }
    };
    let up =
        value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr);
    let down =
        value < min || (bits != 64 && incr < minincr) || (value < 0 && incr < 0 && incr < minincr);
    match (up, down, ow) {
        (false, false, _) => None,
        (_, _, Overflow::Wrap) => Some(wrap()),
        (true, _, _) => Some(max),
        (false, true, _) => Some(min),
    }
}

/// [`signed_overflow`] for an unsigned field (`bits` at most 63).
fn unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> Option<u64> {
    let max = (1u64 << bits) - 1;
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = (value as i64).wrapping_neg();
    let up = value > max || (incr > 0 && incr > maxincr);
    let down = !up && incr < 0 && incr < minincr;
    match (up || down, ow) {
        (false, _) => None,
        (true, Overflow::Wrap) => Some(value.wrapping_add(incr as u64) & max),
        (true, _) => Some(if up { max } else { 0 }),
    }
}

// --- Shared lookups ----------------------------------------------------------------------

/// Runs `edit` on the string at `key` grown with zero bytes to at least `len`, creating the
/// key if missing (Redis's `lookupStringForBitCommand`). The value becomes `raw`, as Redis
/// unshares it, even if `edit` changes nothing. Returns whether the key was created or grew.
fn edit_bits(
    cx: &mut Ctx,
    key: &[u8],
    len: usize,
    edit: impl FnOnce(&mut [u8]),
) -> Result<bool, CommandError> {
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h) = cx.shard(key)?;
    match lookup(sh, h, key, now, lru) {
        Some(e) => {
            let cur = e.as_str().ok_or_else(CommandError::wrong_type)?.len();
            edit_in_place(e, cur.max(len), edit)?;
            Ok(len > cur)
        }
        None => {
            let mut s = vec![0u8; len];
            edit(&mut s);
            let mut e = Entry::new(key, Value::Str(s), lru);
            e.set_meta(e.meta() | META_RAW);
            sh.insert(h, e);
            Ok(true)
        }
    }
}

/// Reads the string at `key` for a read command (counting the hit or miss) and runs `f` on
/// it (`None` when missing) with the reply writer.
fn with_str<R>(
    cx: &mut Ctx,
    key: &[u8],
    f: impl FnOnce(Option<&[u8]>, &mut crate::reply::Out) -> R,
) -> Result<R, CommandError> {
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    match lookup_read(server, sh, h, key, now, lru) {
        Some(e) => Ok(f(
            Some(e.as_str().ok_or_else(CommandError::wrong_type)?),
            out,
        )),
        None => Ok(f(None, out)),
    }
}

// --- SETBIT / GETBIT -------------------------------------------------------------------

/// `SETBIT key offset value`: the bit's old value. O(1), plus the growth of the string.
fn setbit(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let offset = bit_offset(cx, args[2], None)?;
    let on = match parse_i64(args[3]) {
        Some(v @ (0 | 1)) => v as u8,
        _ => return Err(E(BIT_VALUE)),
    };
    let (byte, shift) = ((offset >> 3) as usize, 7 - (offset & 7) as u32);
    let mut old = 0u8;
    let grew = edit_bits(cx, key, byte + 1, |s| {
        old = (s[byte] >> shift) & 1;
        s[byte] = (s[byte] & !(1 << shift)) | (on << shift);
    })?;
    cx.out.int(i64::from(old));
    if grew || old != on {
        cx.dirty(1);
        cx.notify(STRING, "setbit", key);
    }
    Ok(())
}

/// `GETBIT key offset`: the bit, 0 past the end or for a missing key. O(1).
fn getbit(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let offset = bit_offset(cx, args[2], None)?;
    with_str(cx, args[1], |s, out| {
        let byte = s.and_then(|s| s.get((offset >> 3) as usize)).copied();
        out.int(i64::from(byte.unwrap_or(0) >> (7 - (offset & 7)) & 1));
    })
}

// --- BITCOUNT / BITPOS -----------------------------------------------------------------

/// `BITCOUNT key [start end [BYTE | BIT]]`: the number of set bits in the range. As in
/// Redis 7.0 the key is looked up before the range is parsed. O(N).
fn bitcount(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    with_str(cx, args[1], |s, out| {
        let Some(s) = s else {
            out.int(0);
            return Ok(());
        };
        let (from, to) = match args.len() {
            2 => (0, s.len() as i64 * 8 - 1),
            4 | 5 => {
                let start = int(args[2])?;
                let end = int(args[3])?;
                if start < 0 && end < 0 && start > end {
                    out.int(0);
                    return Ok(());
                }
                let bit = match args.get(4) {
                    Some(a) => range_unit(a).ok_or(E(SYNTAX))?,
                    None => false,
                };
                let total = s.len() as i64 * if bit { 8 } else { 1 };
                match clamp_range(start, end, total) {
                    Some((a, b)) if bit => (a as i64, b as i64),
                    Some((a, b)) => (a as i64 * 8, b as i64 * 8 + 7),
                    None => (0, -1),
                }
            }
            _ => return Err(E(SYNTAX)),
        };
        let n = if from > to {
            0
        } else {
            count_bits(s, from as u64, to as u64)
        };
        out.int(n as i64);
        Ok(())
    })?
}

/// `BITPOS key bit [start [end [BYTE | BIT]]]`: the first bit equal to `bit` in the range,
/// or -1. Without an explicit end, a string of ones has its first clear bit just past its
/// end (strings are padded with zeros); a missing key is all zeros. O(N).
fn bitpos(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let bit = match parse_i64(args[2]) {
        Some(b @ (0 | 1)) => b == 1,
        Some(_) => return Err(E(BIT_ARGUMENT)),
        None => return Err(E(crate::error::NOT_INTEGER)),
    };
    with_str(cx, args[1], |s, out| {
        let Some(s) = s else {
            out.int(if bit { -1 } else { 0 });
            return Ok(());
        };
        let len = s.len() as i64;
        let (range, end_given) = match args.len() {
            3 => (
                clamp_range(0, len - 1, len).map(|(a, b)| (a, b * 8 + 7)),
                false,
            ),
            4..=6 => {
                let start = int(args[3])?;
                let unit_bit = match args.get(5) {
                    Some(a) => range_unit(a).ok_or(E(SYNTAX))?,
                    None => false,
                };
                let end = match args.get(4) {
                    Some(a) => Some(int(a)?),
                    None => None,
                };
                let total = if unit_bit { len * 8 } else { len };
                let r = clamp_range(start, end.unwrap_or(total - 1), total);
                let r = if unit_bit {
                    r
                } else {
                    r.map(|(a, b)| (a * 8, b * 8 + 7))
                };
                (r, end.is_some())
            }
            _ => return Err(E(SYNTAX)),
        };
        let pos = match range {
            None => -1,
            Some((from, to)) => match find_bit(s, bit, from, to) {
                Some(p) => p as i64,
                // No clear bit in a range that runs to the end: the padding's first bit.
                None if !bit && !end_given => to as i64 + 1,
                None => -1,
            },
        };
        out.int(pos);
        Ok(())
    })?
}

// --- BITOP -----------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    And,
    Or,
    Xor,
    Not,
}

/// Combines `src` into the first `src.len()` bytes of `dst` a 64-bit word at a time.
fn combine(dst: &mut [u8], src: &[u8], op: Op) {
    let f = |a: u64, b: u64| match op {
        Op::And => a & b,
        Op::Or => a | b,
        Op::Xor => a ^ b,
        Op::Not => !b,
    };
    let dst = &mut dst[..src.len()];
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (dw, sw) in d.by_ref().zip(s.by_ref()) {
        let a = u64::from_ne_bytes((*dw).try_into().expect("8 bytes"));
        let b = u64::from_ne_bytes(sw.try_into().expect("8 bytes"));
        dw.copy_from_slice(&f(a, b).to_ne_bytes());
    }
    for (db, sb) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *db = f(u64::from(*db), u64::from(*sb)) as u8;
    }
}

/// `BITOP AND | OR | XOR | NOT destkey key [key ...]`: stores the result (as long as the
/// longest source, shorter sources padded with zeros) and replies with its length. An
/// empty result deletes the destination. O(N) in the total length.
fn bitop(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let name = args[1];
    let op = if name.eq_ignore_ascii_case(b"AND") {
        Op::And
    } else if name.eq_ignore_ascii_case(b"OR") {
        Op::Or
    } else if name.eq_ignore_ascii_case(b"XOR") {
        Op::Xor
    } else if name.eq_ignore_ascii_case(b"NOT") {
        Op::Not
    } else {
        return Err(E(SYNTAX));
    };
    if op == Op::Not && args.len() != 4 {
        return Err(E(BITOP_NOT_ONE_KEY));
    }
    let dest = args[2];
    // Fold the sources into `res`, one at a time (no copy of each source): AND keeps the
    // length of the shortest source in `common`, past which the result is zero.
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let mut res: Vec<u8> = Vec::new();
    let mut common = usize::MAX;
    for (j, key) in args[3..].iter().enumerate() {
        let (sh, h) = cx.shard(key)?;
        let src = match lookup_read(server, sh, h, key, now, lru) {
            Some(e) => e.as_str().ok_or_else(CommandError::wrong_type)?,
            None => b"",
        };
        if src.len() > res.len() {
            res.resize(src.len(), 0);
        }
        if j == 0 {
            res[..src.len()].copy_from_slice(src);
            if op == Op::Not {
                combine(&mut res, src, Op::Not);
            }
        } else if op == Op::And {
            let n = common.min(src.len());
            combine(&mut res, &src[..n], Op::And);
        } else {
            combine(&mut res, src, op);
        }
        common = common.min(src.len());
    }
    if op == Op::And {
        let n = common.min(res.len());
        res[n..].fill(0);
    }
    let len = res.len();
    let (sh, h) = cx.shard(dest)?;
    if len > 0 {
        // Redis stores the result as built, without trying a shorter encoding: `raw`.
        let mut e = Entry::new(dest, Value::Str(res), lru);
        e.set_meta(e.meta() | META_RAW);
        sh.insert(h, e);
        cx.dirty(1);
        cx.notify(STRING, "set", dest);
    } else if sh.remove(h, dest).is_some() {
        cx.dirty(1);
        cx.notify(GENERIC, "del", dest);
    }
    cx.out.int(len as i64);
    Ok(())
}

// --- BITFIELD --------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldOp {
    Get,
    Set(i64),
    Incr(i64),
}

/// One parsed BITFIELD subcommand, with the OVERFLOW mode in force for it.
#[derive(Clone, Copy, Debug)]
struct Field {
    op: FieldOp,
    ty: FieldType,
    offset: u64,
    overflow: Overflow,
}

/// Parses BITFIELD's subcommands from `args[2..]`, with Redis's errors in its order.
fn parse_fields(cx: &Ctx, args: &[&[u8]]) -> Result<Vec<Field>, CommandError> {
    let mut fields = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let rem = args.len() - j - 1;
        let word = args[j];
        let is = |w: &[u8]| word.eq_ignore_ascii_case(w);
        let get = is(b"GET") && rem >= 2;
        let set = is(b"SET") && rem >= 3;
        let incr = is(b"INCRBY") && rem >= 3;
        if is(b"OVERFLOW") && rem >= 1 {
            let mode = args[j + 1];
            overflow = if mode.eq_ignore_ascii_case(b"WRAP") {
                Overflow::Wrap
            } else if mode.eq_ignore_ascii_case(b"SAT") {
                Overflow::Sat
            } else if mode.eq_ignore_ascii_case(b"FAIL") {
                Overflow::Fail
            } else {
                return Err(E(OVERFLOW_TYPE));
            };
            j += 2;
            continue;
        }
        if !(get || set || incr) {
            return Err(E(SYNTAX));
        }
        let ty = field_type(args[j + 1])?;
        let offset = bit_offset(cx, args[j + 2], Some(ty.bits))?;
        let op = if get {
            FieldOp::Get
        } else {
            let v = int(args[j + 3])?;
            if set {
                FieldOp::Set(v)
            } else {
                FieldOp::Incr(v)
            }
        };
        fields.push(Field {
            op,
            ty,
            offset,
            overflow,
        });
        j += if get { 3 } else { 4 };
    }
    Ok(fields)
}

/// Runs one SET or INCRBY on `s`: the reply (`None`: FAIL overflow, nothing written) and
/// whether the field's bits changed.
fn write_field(s: &mut [u8], f: &Field) -> (Option<i64>, bool) {
    let FieldType { signed, bits } = f.ty;
    let old_raw = get_field(s, f.offset, bits);
    let old = read_typed(s, f.offset, f.ty);
    let (reply, new) = if signed {
        let (new, ovf) = match f.op {
            FieldOp::Incr(by) => {
                let ovf = signed_overflow(old, by, bits, f.overflow);
                (ovf.unwrap_or(old.wrapping_add(by)), ovf.is_some())
            }
            FieldOp::Set(v) => {
                let ovf = signed_overflow(v, 0, bits, f.overflow);
                (ovf.unwrap_or(v), ovf.is_some())
            }
            FieldOp::Get => (old, false),
        };
        if ovf && f.overflow == Overflow::Fail {
            return (None, false);
        }
        let reply = if matches!(f.op, FieldOp::Incr(_)) {
            new
        } else {
            old
        };
        (reply, new as u64)
    } else {
        let oldu = old_raw;
        let (new, ovf) = match f.op {
            FieldOp::Incr(by) => {
                let ovf = unsigned_overflow(oldu, by, bits, f.overflow);
                (ovf.unwrap_or(oldu.wrapping_add(by as u64)), ovf.is_some())
            }
            FieldOp::Set(v) => {
                let ovf = unsigned_overflow(v as u64, 0, bits, f.overflow);
                (ovf.unwrap_or(v as u64), ovf.is_some())
            }
            FieldOp::Get => (oldu, false),
        };
        if ovf && f.overflow == Overflow::Fail {
            return (None, false);
        }
        let reply = if matches!(f.op, FieldOp::Incr(_)) {
            new as i64
        } else {
            oldu as i64
        };
        (reply, new)
    };
    set_field(s, f.offset, bits, new);
    let changed = get_field(s, f.offset, bits) != old_raw;
    (Some(reply), changed)
}

/// `BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset increment]
/// [OVERFLOW WRAP | SAT | FAIL] ...`: one reply per GET / SET / INCRBY, in order. A
/// command with writes creates or grows the key first; it counts as a change (event,
/// propagation) only for the writes that changed bits or when the string grew, as in Redis
/// 7.0.15. O(1) per subcommand.
fn bitfield(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    bitfield_generic(cx, args, false)
}

/// `BITFIELD_RO key [GET type offset ...]`: BITFIELD limited to GET.
fn bitfield_ro(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    bitfield_generic(cx, args, true)
}

fn bitfield_generic(cx: &mut Ctx, args: &[&[u8]], read_only: bool) -> CmdResult {
    let key = args[1];
    let fields = parse_fields(cx, args)?;
    let writes = fields.iter().filter(|f| f.op != FieldOp::Get);
    let Some(highest) = writes.map(|f| f.offset + u64::from(f.ty.bits) - 1).max() else {
        // GETs only: a read, which a missing key answers with zeros.
        return with_str(cx, key, |s, out| {
            out.array(fields.len());
            for f in &fields {
                out.int(read_typed(s.unwrap_or_default(), f.offset, f.ty));
            }
        });
    };
    if read_only {
        return Err(E(BITFIELD_RO_GET));
    }
    let mut replies: Vec<Option<i64>> = Vec::with_capacity(fields.len());
    // Writes done (not refused by FAIL), and those of them that changed bits.
    let (mut done, mut changed) = (0u64, 0u64);
    let grew = edit_bits(cx, key, (highest >> 3) as usize + 1, |s| {
        for f in &fields {
            if f.op == FieldOp::Get {
                replies.push(Some(read_typed(s, f.offset, f.ty)));
                continue;
            }
            let (reply, diff) = write_field(s, f);
            done += u64::from(reply.is_some());
            changed += u64::from(diff);
            replies.push(reply);
        }
    })?;
    let out = &mut cx.out;
    out.array(replies.len());
    for r in &replies {
        match r {
            Some(v) => out.int(*v),
            None => out.null(),
        }
    }
    // Every write counts once the string grew; otherwise only those that changed bits.
    let changes = if grew { done } else { changed };
    if changes > 0 {
        cx.dirty(changes);
        cx.notify(STRING, "setbit", key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic byte string with every kind of byte.
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match x % 5 {
                    0 => 0,
                    1 => 0xff,
                    _ => x as u8,
                }
            })
            .collect()
    }

    fn bit(s: &[u8], i: u64) -> bool {
        s[(i >> 3) as usize] >> (7 - (i & 7)) & 1 == 1
    }

    #[test]
    fn popcount_matches_a_bit_by_bit_count() {
        for n in [0, 1, 7, 8, 9, 247, 248, 249, 500, 2000, 4099] {
            let s = bytes(n, n as u64 + 3);
            let want: u64 = s.iter().map(|b| u64::from(b.count_ones())).sum();
            assert_eq!(popcount(&s), want, "n = {n}");
        }
        assert_eq!(popcount(&[0xff; 10_000]), 80_000);
    }

    #[test]
    fn ranges_count_and_find_like_a_bit_by_bit_scan() {
        let s = bytes(70, 11);
        let total = s.len() as u64 * 8;
        for from in (0..total).step_by(5) {
            for to in (from..total).step_by(7) {
                let n = (from..=to).filter(|&i| bit(&s, i)).count() as u64;
                assert_eq!(count_bits(&s, from, to), n, "{from}..={to}");
                for b in [false, true] {
                    let want = (from..=to).find(|&i| bit(&s, i) == b);
                    assert_eq!(find_bit(&s, b, from, to), want, "{b} in {from}..={to}");
                }
            }
        }
        let ones = [0xffu8; 40];
        assert_eq!(find_bit(&ones, false, 0, 319), None);
        assert_eq!(find_bit(&ones, true, 3, 319), Some(3));
    }

    #[test]
    fn fields_read_and_write_across_bytes() {
        let mut s = vec![0u8; 10];
        set_field(&mut s, 5, 13, 0x1abc);
        assert_eq!(get_field(&s, 5, 13), 0x1abc);
        let t = FieldType {
            signed: true,
            bits: 13,
        };
        assert_eq!(read_typed(&s, 5, t), 0x1abc - (1 << 13));
        set_field(&mut s, 3, 64, u64::MAX);
        assert_eq!(get_field(&s, 3, 64), u64::MAX);
        assert_eq!(get_field(&s, 70, 20), get_field(&s, 70, 10) << 10);
    }

    #[test]
    fn overflow_wraps_and_saturates_like_redis() {
        use Overflow::*;
        assert_eq!(unsigned_overflow(250, 10, 8, Wrap), Some(4));
        assert_eq!(unsigned_overflow(250, 10, 8, Sat), Some(255));
        assert_eq!(unsigned_overflow(5, -10, 8, Sat), Some(0));
        assert_eq!(unsigned_overflow(5, -10, 8, Wrap), Some(251));
        assert_eq!(unsigned_overflow(5, 10, 8, Wrap), None);
        assert_eq!(signed_overflow(120, 10, 8, Wrap), Some(-126));
        assert_eq!(signed_overflow(120, 10, 8, Sat), Some(127));
        assert_eq!(signed_overflow(-120, -10, 8, Sat), Some(-128));
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Wrap), Some(i64::MIN));
        assert_eq!(signed_overflow(i64::MIN, -1, 64, Sat), Some(i64::MIN));
        assert_eq!(signed_overflow(-5, -5, 64, Sat), None);
        // Redis's wrapping comparison: a value far below an i8 saturates to the maximum.
        assert_eq!(signed_overflow(i64::MIN, 0, 8, Sat), Some(127));
    }

    #[test]
    fn field_types_parse_like_redis() {
        assert!(field_type(b"i64").is_ok());
        assert!(field_type(b"u63").is_ok());
        assert!(field_type(b"u64").is_err());
        assert!(field_type(b"i0").is_err());
        assert!(field_type(b"I8").is_err());
        assert_eq!(field_type(b"u8\0junk").unwrap().bits, 8);
        assert_eq!(clamp_range(-3, -1, 10), Some((7, 9)));
        assert_eq!(clamp_range(5, 2, 10), None);
        assert_eq!(clamp_range(0, -1, 0), None);
    }
}
