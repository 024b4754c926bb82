//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE, PFDEBUG and PFSELFTEST.
//!
//! A HyperLogLog is a string in Redis's own layout, so that the bytes Kiln stores after a
//! sequence of PFADDs are the bytes Redis stores (GET, DUMP and RDB exchange them both
//! ways):
//!
//! * a 16-byte header: `HYLL`, the encoding (0 dense, 1 sparse), three zero bytes, and the
//!   cached cardinality as 8 little-endian bytes whose top bit marks it stale;
//! * dense: 16384 registers of 6 bits, least significant bits first (12288 bytes);
//! * sparse: runs of registers as opcodes: ZERO `00xxxxxx` (1-64 zero registers), XZERO
//!   `01xxxxxx yyyyyyyy` (1-16384 zero registers), VAL `1vvvvvxx` (1-4 registers of value
//!   1-32). A sparse HyperLogLog turns dense when a register needs a value above 32 or when
//!   an edit would grow it past `hll-sparse-max-bytes`.
//!
//! Elements are hashed with MurmurHash64A (seed 0xadc83b19): the low 14 bits pick the
//! register, and the register keeps the longest run of zeros seen in the remaining bits,
//! plus one. The cardinality is Otmar Ertl's improved raw estimator ("New cardinality
//! estimation algorithms for HyperLogLog sketches", 2017), computed from the histogram of
//! register values in the same order of floating-point operations as Redis 7.0, so the
//! numbers are identical.
//!
//! Corrupted values never panic: every decoder bounds its reads and the commands answer
//! Redis's errors (`WRONGTYPE Key is not a valid HyperLogLog string value.` for a bad header,
//! `INVALIDOBJ Corrupted HLL object detected` for bad registers).

use super::flags::*;
use super::{lookup, lookup_read};
use super::{CommandSpec, Ctx, Keys};
use crate::error::{
    CmdResult, CommandError, E, HLL_CORRUPT, HLL_NOT_SPARSE, HLL_NO_KEY, HLL_WRONG_TYPE,
};
use crate::notify::STRING;
use crate::storage::entry::META_RAW;
use crate::storage::{Entry, Shard, Value};

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("pfadd", -2, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), pfadd)
        .group("hyperloglog")
        .since("2.8.9")
        .summary("Adds elements to a HyperLogLog, creating the key if needed; 1 if an estimate changed.")
        .complexity("O(1) to add every element.")
        .syntax("key [element [element ...]]"),
    CommandSpec::new("pfcount", -2, READONLY, Keys::Range(1, -1, 1), pfcount)
        .group("hyperloglog")
        .since("2.8.9")
        .summary("Estimates the number of distinct elements added to a HyperLogLog, or to the union of several.")
        .complexity("O(1) with a single key (cached), O(N) with N keys.")
        .syntax("key [key ...]"),
    CommandSpec::new("pfmerge", -2, WRITE | DENYOOM, Keys::Range(1, -1, 1), pfmerge)
        .group("hyperloglog")
        .since("2.8.9")
        .summary("Stores the union of HyperLogLogs (the destination included) in the destination.")
        .complexity("O(N) to merge N HyperLogLogs, with a constant time per register.")
        .syntax("destkey [sourcekey [sourcekey ...]]"),
    CommandSpec::new("pfdebug", 3, WRITE | DENYOOM | ADMIN, Keys::Range(2, 2, 1), pfdebug)
        .group("hyperloglog")
        .since("2.8.9")
        .summary("Internal commands for debugging HyperLogLog values.")
        .complexity("N/A")
        .syntax("subcommand key"),
    CommandSpec::new("pfselftest", 1, ADMIN, Keys::None, pfselftest)
        .group("hyperloglog")
        .since("2.8.9")
        .summary("An internal command for testing HyperLogLog values.")
        .complexity("N/A")
        .syntax(""),
];

// --- The representation ----------------------------------------------------------------

/// Bits of the hash that pick the register.
const P: u32 = 14;
/// Bits left for the run of zeros.
const Q: usize = 64 - P as usize;
const REGISTERS: usize = 1 << P;
const HDR: usize = 16;
const REGISTER_MAX: u32 = 63;
/// A dense HyperLogLog: the header and 16384 6-bit registers.
pub const DENSE_SIZE: usize = HDR + (REGISTERS * 6).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
/// Redis's seed for MurmurHash64A.
const SEED: u64 = 0xadc8_3b19;

/// A register decoder met something impossible (Redis's "Corrupted HLL object").
#[derive(Debug, PartialEq, Eq)]
pub struct Corrupt;

/// MurmurHash64A as Redis computes it (little-endian words).
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut words = data.chunks_exact(8);
    for w in words.by_ref() {
        let mut k = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element lands in and the value it offers: the length of the run of
/// zero bits above the register bits, plus one (at most 51).
fn pattern(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// Register `i` of dense registers (a read past the end reads zeros, as Redis reads the
/// string's terminator).
fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * 6 / 8;
    let fb = (i * 6) & 7;
    let b0 = u32::from(regs.get(byte).copied().unwrap_or(0));
    let b1 = u32::from(regs.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << (8 - fb))) & REGISTER_MAX) as u8
}

fn dense_set(regs: &mut [u8], i: usize, v: u8) {
    let byte = i * 6 / 8;
    let fb = (i * 6) & 7;
    let v = u32::from(v);
    if let Some(b) = regs.get_mut(byte) {
        *b &= !(REGISTER_MAX << fb) as u8;
        *b |= (v << fb) as u8;
    }
    if let Some(b) = regs.get_mut(byte + 1) {
        *b &= !(REGISTER_MAX >> (8 - fb)) as u8;
        *b |= (v >> (8 - fb)) as u8;
    }
}

/// Raises register `i` to `count`; whether it changed.
fn dense_update(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_set(regs, i, count);
        true
    } else {
        false
    }
}

/// An empty HyperLogLog: sparse, one XZERO covering every register (18 bytes).
pub fn empty() -> Vec<u8> {
    let mut s = Vec::with_capacity(HDR + 2);
    s.extend_from_slice(b"HYLL");
    s.extend_from_slice(&[SPARSE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let l = XZERO_MAX_LEN - 1;
    s.extend_from_slice(&[0x40 | (l >> 8) as u8, (l & 0xff) as u8]);
    s
}

/// The registers of a HyperLogLog that decodes, one byte each (for tests and fuzzing).
pub fn registers(s: &[u8]) -> Result<Vec<u8>, Corrupt> {
    let mut max = vec![0u8; REGISTERS];
    merge_into(&mut max, s)?;
    Ok(max)
}

/// Whether a string is a HyperLogLog as far as its header and size tell (Redis's
/// `isHLLObjectOrReply`).
pub fn is_hll(s: &[u8]) -> bool {
    s.len() >= HDR
        && &s[..4] == b"HYLL"
        && s[4] <= SPARSE
        && (s[4] != DENSE || s.len() == DENSE_SIZE)
}

fn invalidate(s: &mut [u8]) {
    s[15] |= 0x80;
}

/// One sparse opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opcode {
    Zero(usize),
    XZero(usize),
    /// Value, run length.
    Val(u8, usize),
}

impl Opcode {
    /// The opcode at `s[p]` (a missing second XZERO byte reads as zero).
    fn at(s: &[u8], p: usize) -> Self {
        let b = s[p];
        if b & 0xc0 == 0 {
            Opcode::Zero(usize::from(b & 0x3f) + 1)
        } else if b & 0x80 != 0 {
            Opcode::Val(((b >> 2) & 0x1f) + 1, usize::from(b & 3) + 1)
        } else {
            let lo = usize::from(s.get(p + 1).copied().unwrap_or(0));
            Opcode::XZero(((usize::from(b & 0x3f) << 8) | lo) + 1)
        }
    }

    fn span(self) -> usize {
        match self {
            Opcode::Zero(n) | Opcode::XZero(n) | Opcode::Val(_, n) => n,
        }
    }

    fn size(self) -> usize {
        if let Opcode::XZero(_) = self {
            2
        } else {
            1
        }
    }
}

fn val_op(v: u8, len: usize) -> u8 {
    0x80 | ((v - 1) << 2) | (len - 1) as u8
}

/// Appends ZERO or XZERO opcodes for a run of `len` zero registers (1..=16384).
fn push_zeros(seq: &mut Vec<u8>, len: usize) {
    if len > ZERO_MAX_LEN {
        let l = len - 1;
        seq.extend_from_slice(&[0x40 | (l >> 8) as u8, (l & 0xff) as u8]);
    } else {
        seq.push((len - 1) as u8);
    }
}

/// Walks the sparse opcodes of `s` (header included), calling `f(first register, opcode)`;
/// stops early when `f` returns false.
fn walk_sparse(s: &[u8], mut f: impl FnMut(usize, Opcode) -> bool) {
    let (mut p, mut idx) = (HDR, 0usize);
    while p < s.len() {
        let op = Opcode::at(s, p);
        if !f(idx, op) {
            return;
        }
        idx += op.span();
        p += op.size();
    }
}

/// Visits each non-zero register of a valid sparse HyperLogLog as `f(register, value)`
/// (Redis's decoding: a VAL run past the last register stops it); `Corrupt` unless the
/// opcodes cover exactly the 16384 registers.
fn sparse_registers(s: &[u8], mut f: impl FnMut(usize, u8)) -> Result<(), Corrupt> {
    let mut total = 0usize;
    walk_sparse(s, |idx, op| {
        total = idx + op.span();
        if let Opcode::Val(v, n) = op {
            if idx + n > REGISTERS {
                total = idx;
                return false;
            }
            (idx..idx + n).for_each(|i| f(i, v));
        }
        true
    });
    if total == REGISTERS {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

/// The dense form of a sparse HyperLogLog, header (and cached cardinality) kept.
pub fn to_dense(s: &[u8]) -> Result<Vec<u8>, Corrupt> {
    let mut d = vec![0u8; DENSE_SIZE];
    d[..HDR].copy_from_slice(&s[..HDR]);
    d[4] = DENSE;
    sparse_registers(s, |i, v| dense_set(&mut d[HDR..], i, v))?;
    Ok(d)
}

/// Makes `s` dense if it is sparse; whether it was converted.
fn make_dense(s: &mut Vec<u8>) -> Result<bool, Corrupt> {
    if s[4] == DENSE {
        return Ok(false);
    }
    *s = to_dense(s)?;
    Ok(true)
}

/// Raises register `index` of a sparse HyperLogLog to `count`, rewriting the opcode that
/// covers it in place exactly as Redis does (so the bytes match), or promoting the value to
/// dense when `count` does not fit a VAL opcode or the edit would grow it beyond `max_bytes`.
/// Whether the register changed.
fn sparse_set(s: &mut Vec<u8>, index: usize, count: u8, max_bytes: u64) -> Result<bool, Corrupt> {
    if count > VAL_MAX_VALUE {
        return promote(s, index, count);
    }
    // Step 1: the opcode covering the register.
    let end = s.len();
    let (mut p, mut first, mut prev, mut op) = (HDR, 0usize, None, None);
    while p < end {
        let o = Opcode::at(s, p);
        op = Some(o);
        if index < first + o.span() {
            break;
        }
        prev = Some(p);
        p += o.size();
        first += o.span();
    }
    let Some(op) = op.filter(|_| p < end) else {
        return Err(Corrupt);
    };
    let span = op.span();
    // Step 2: the trivial cases, then the general split.
    match op {
        Opcode::Val(v, _) if v >= count => return Ok(false),
        Opcode::Val(_, 1) | Opcode::Zero(1) => s[p] = val_op(count, 1),
        _ => {
            let last = first + span - 1;
            let mut seq = Vec::with_capacity(5);
            match op {
                Opcode::Val(v, _) => {
                    if index != first {
                        seq.push(val_op(v, index - first));
                    }
                    seq.push(val_op(count, 1));
                    if index != last {
                        seq.push(val_op(v, last - index));
                    }
                }
                _ => {
                    if index != first {
                        push_zeros(&mut seq, index - first);
                    }
                    seq.push(val_op(count, 1));
                    if index != last {
                        push_zeros(&mut seq, last - index);
                    }
                }
            }
            // Step 3: put the new sequence in place of the old opcode.
            let old = op.size();
            let new_len = (end + seq.len()).saturating_sub(old);
            if seq.len() > old && new_len as u64 > max_bytes {
                return promote(s, index, count);
            }
            let next = (p + old).min(end);
            s.splice(p..next, seq);
            s.truncate(new_len);
        }
    }
    // Step 4: merge adjacent VAL opcodes of equal value, scanning up to five opcodes from
    // the one before the edit.
    let mut p = prev.unwrap_or(HDR);
    let mut scan = 5;
    while p < s.len() && scan > 0 {
        scan -= 1;
        match Opcode::at(s, p) {
            Opcode::XZero(_) => p += 2,
            Opcode::Zero(_) => p += 1,
            Opcode::Val(v1, l1) => {
                if p + 1 < s.len() {
                    if let Opcode::Val(v2, l2) = Opcode::at(s, p + 1) {
                        if v1 == v2 && l1 + l2 <= VAL_MAX_LEN {
                            s[p + 1] = val_op(v1, l1 + l2);
                            s.remove(p);
                            continue;
                        }
                    }
                }
                p += 1;
            }
        }
    }
    invalidate(s);
    Ok(true)
}

/// Converts a sparse HyperLogLog to dense, then raises the register there.
fn promote(s: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    make_dense(s)?;
    Ok(dense_update(&mut s[HDR..], index, count))
}

/// Raises register `index` to `count` (PFMERGE's write): in place when dense, through
/// [`sparse_set`] (which may promote the value) when sparse.
pub fn set_register(
    s: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_bytes: u64,
) -> Result<bool, Corrupt> {
    if s[4] == DENSE {
        Ok(dense_update(&mut s[HDR..], index, count))
    } else {
        sparse_set(s, index, count, max_bytes)
    }
}

/// Adds one element; whether a register changed.
pub fn add(s: &mut Vec<u8>, ele: &[u8], max_bytes: u64) -> Result<bool, Corrupt> {
    let (index, count) = pattern(ele);
    match s[4] {
        DENSE => Ok(dense_update(&mut s[HDR..], index, count)),
        SPARSE => sparse_set(s, index, count, max_bytes),
        _ => Err(Corrupt),
    }
}

/// Raises `max[i]` to each register of a HyperLogLog (Redis's `hllMerge`).
pub fn merge_into(max: &mut [u8], s: &[u8]) -> Result<(), Corrupt> {
    if s[4] == DENSE {
        // Four registers in every three bytes.
        for (m, c) in max.chunks_exact_mut(4).zip(s[HDR..].chunks_exact(3)) {
            let regs = unpack4(c);
            for (m, r) in m.iter_mut().zip(regs) {
                *m = (*m).max(r);
            }
        }
        return Ok(());
    }
    sparse_registers(s, |i, v| max[i] = max[i].max(v))
}

/// How many registers hold each value, for the estimator.
type Histogram = [u32; 64];

/// The four 6-bit registers packed in three bytes, least significant bits first.
fn unpack4(c: &[u8]) -> [u8; 4] {
    let (b0, b1, b2) = (c[0], c[1], c[2]);
    [
        b0 & 63,
        (b0 >> 6) | ((b1 & 15) << 2),
        (b1 >> 4) | ((b2 & 3) << 4),
        b2 >> 2,
    ]
}

fn dense_histogram(regs: &[u8]) -> Histogram {
    let mut h = [0u32; 64];
    for c in regs.chunks_exact(3).take(REGISTERS / 4) {
        for r in unpack4(c) {
            h[usize::from(r)] += 1;
        }
    }
    h
}

/// The histogram of a sparse HyperLogLog; `Corrupt` unless its runs cover every register.
fn sparse_histogram(s: &[u8]) -> Result<Histogram, Corrupt> {
    let mut h = [0u32; 64];
    let mut total = 0usize;
    walk_sparse(s, |idx, op| {
        let v = if let Opcode::Val(v, _) = op { v } else { 0 };
        h[usize::from(v)] += op.span() as u32;
        total = idx + op.span();
        true
    });
    if total == REGISTERS {
        Ok(h)
    } else {
        Err(Corrupt)
    }
}

/// 0.5 / ln 2, the estimator's limit constant.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if prev == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if prev == z {
            return z / 3.0;
        }
    }
}

/// Ertl's improved raw estimate from the register histogram, rounded half away from zero.
fn estimate(h: &Histogram) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - f64::from(h[Q + 1])) / m);
    for j in (1..=Q).rev() {
        z += f64::from(h[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(h[0]) / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// The estimated cardinality of one HyperLogLog.
pub fn count(s: &[u8]) -> Result<u64, Corrupt> {
    let h = match s[4] {
        DENSE => dense_histogram(&s[HDR..]),
        _ => sparse_histogram(s)?,
    };
    Ok(estimate(&h))
}

/// The estimated cardinality of merged registers (one byte each).
fn count_registers(max: &[u8]) -> u64 {
    let mut h = [0u32; 64];
    for &v in max {
        h[usize::from(v & 63)] += 1;
    }
    estimate(&h)
}

// --- Commands --------------------------------------------------------------------------

fn max_sparse(server: &crate::server::Server) -> u64 {
    server.config.read().get_u64("hll-sparse-max-bytes")
}

/// The HyperLogLog at a looked-up entry, or the error Redis gives for another value.
fn hll_of(e: &Entry) -> Result<&[u8], CommandError> {
    let s = e.as_str().ok_or_else(CommandError::wrong_type)?;
    if is_hll(s) {
        Ok(s)
    } else {
        Err(E(HLL_WRONG_TYPE))
    }
}

/// Runs `f` on the HyperLogLog at `key` for modification (the value becomes `raw`, as Redis
/// unshares it), creating an empty one first when `create` and the key is missing; `None`
/// when it is missing and not created.
fn with_hll_mut<R>(
    sh: &mut Shard,
    h: u64,
    key: &[u8],
    (now, lru): (u64, u32),
    create: bool,
    f: impl FnOnce(&mut Vec<u8>, bool) -> R,
) -> Result<Option<R>, CommandError> {
    match lookup(sh, h, key, now, lru) {
        Some(e) => {
            hll_of(e)?;
            let s = e.str_mut().ok_or_else(CommandError::wrong_type)?;
            Ok(Some(f(s, false)))
        }
        None if create => {
            let mut s = empty();
            let r = f(&mut s, true);
            let mut e = Entry::new(key, Value::Str(s), lru);
            e.set_meta(e.meta() | META_RAW);
            sh.insert(h, e);
            Ok(Some(r))
        }
        None => Ok(None),
    }
}

/// `PFADD key [element ...]`: 1 if the key was created or a register changed, else 0.
/// O(1) per element (sparse values: O(size), bounded by `hll-sparse-max-bytes`).
fn pfadd(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h) = cx.shard(key)?;
    let updated = with_hll_mut(sh, h, key, (now, lru), true, |s, created| {
        // Only a sparse value needs the limit (a config lookup, kept off the dense path).
        let max = if s[4] == SPARSE {
            max_sparse(server)
        } else {
            u64::MAX
        };
        let mut updated = u64::from(created);
        for ele in &args[2..] {
            // A corrupted value keeps the registers changed so far, as in Redis.
            updated += u64::from(add(s, ele, max)?);
        }
        if updated > 0 {
            invalidate(s);
        }
        Ok::<u64, Corrupt>(updated)
    })?
    .unwrap_or(Ok(0))
    .map_err(|_| E(HLL_CORRUPT))?;
    cx.out.int(i64::from(updated > 0));
    if updated > 0 {
        cx.dirty(updated);
        cx.notify(STRING, "pfadd", key);
    }
    Ok(())
}

/// `PFCOUNT key [key ...]`: the estimated number of distinct elements. One key: its cached
/// estimate, recomputed and stored back when stale (a change Redis propagates, and which
/// touches WATCHes, although PFCOUNT is a read). Several keys: the estimate of their union,
/// nothing stored. Missing keys count as empty.
fn pfcount(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    if args.len() > 2 {
        let mut max = vec![0u8; REGISTERS];
        for key in &args[1..] {
            let (sh, h) = cx.shard(key)?;
            if let Some(e) = lookup_read(server, sh, h, key, now, lru) {
                merge_into(&mut max, hll_of(e)?).map_err(|_| E(HLL_CORRUPT))?;
            }
        }
        cx.out.int(count_registers(&max) as i64);
        return Ok(());
    }
    let key = args[1];
    let (sh, h) = cx.shard(key)?;
    // The cache may be written: let a pending snapshot keep the old value first.
    let cow = std::mem::replace(&mut sh.cow, true);
    let result = (|| {
        let Some(e) = lookup_read(server, sh, h, key, now, lru) else {
            return Ok((0, false));
        };
        hll_of(e)?;
        let s = e.str_mut().ok_or_else(CommandError::wrong_type)?;
        if s[15] & 0x80 == 0 {
            return Ok((
                u64::from_le_bytes(s[8..16].try_into().expect("8 bytes")),
                false,
            ));
        }
        let card = count(s).map_err(|_| E(HLL_CORRUPT))?;
        s[8..16].copy_from_slice(&card.to_le_bytes());
        Ok((card, true))
    })();
    if let Ok((_, true)) = result {
        sh.touch_watched(key);
        if server.tracking.active() {
            server.tracking.invalidate(key, None);
        }
    }
    sh.cow = cow;
    let (card, stored) = result?;
    if stored {
        cx.dirty(1);
    }
    cx.out.int(card as i64);
    Ok(())
}

/// `PFMERGE destkey [sourcekey ...]`: stores in `destkey` the union of every named
/// HyperLogLog, itself included (created empty if missing); dense if any input was. OK.
fn pfmerge(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let mut max = vec![0u8; REGISTERS];
    let mut use_dense = false;
    for key in &args[1..] {
        let (sh, h) = cx.shard(key)?;
        if let Some(e) = lookup_read(server, sh, h, key, now, lru) {
            let s = hll_of(e)?;
            use_dense |= s[4] == DENSE;
            merge_into(&mut max, s).map_err(|_| E(HLL_CORRUPT))?;
        }
    }
    let dest = args[1];
    let max_bytes = max_sparse(cx.server);
    let (sh, h) = cx.shard(dest)?;
    with_hll_mut(sh, h, dest, (now, lru), true, |s, _| {
        if use_dense {
            make_dense(s)?;
        }
        for (i, &v) in max.iter().enumerate() {
            if v == 0 {
                continue;
            }
            // Redis ignores a failure here (the inputs were all checked already).
            let _ = set_register(s, i, v, max_bytes);
        }
        invalidate(s);
        Ok::<(), Corrupt>(())
    })?
    .unwrap_or(Ok(()))
    .map_err(|_| E(HLL_CORRUPT))?;
    cx.dirty(1);
    // Redis raises `pfadd` for a merge too.
    cx.notify(STRING, "pfadd", dest);
    cx.out.ok();
    Ok(())
}

/// What a PFDEBUG subcommand answers.
enum Debug {
    Registers(Vec<u8>),
    Decoded(String),
    Encoding(&'static str),
    Converted(bool),
}

/// `PFDEBUG GETREG | DECODE | ENCODING | TODENSE key`: the registers (converting a sparse
/// value to dense, as Redis does), the sparse opcodes as text, the encoding, or a conversion
/// to dense (1 if converted).
fn pfdebug(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (sub, key) = (args[1], args[2]);
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h) = cx.shard(key)?;
    let r = with_hll_mut(sh, h, key, (now, lru), false, |s, _| {
        let corrupt = |_: Corrupt| E(HLL_CORRUPT);
        if sub.eq_ignore_ascii_case(b"GETREG") {
            let converted = make_dense(s).map_err(corrupt)?;
            let regs = (0..REGISTERS).map(|i| dense_get(&s[HDR..], i)).collect();
            Ok((Debug::Registers(regs), converted))
        } else if sub.eq_ignore_ascii_case(b"DECODE") {
            if s[4] != SPARSE {
                return Err(E(HLL_NOT_SPARSE));
            }
            let mut text = String::new();
            walk_sparse(s, |_, op| {
                use std::fmt::Write;
                let _ = match op {
                    Opcode::Zero(n) => write!(text, "z:{n} "),
                    Opcode::XZero(n) => write!(text, "Z:{n} "),
                    Opcode::Val(v, n) => write!(text, "v:{v},{n} "),
                };
                true
            });
            Ok((
                Debug::Decoded(text.trim_end_matches(' ').to_string()),
                false,
            ))
        } else if sub.eq_ignore_ascii_case(b"ENCODING") {
            let name = if s[4] == DENSE { "dense" } else { "sparse" };
            Ok((Debug::Encoding(name), false))
        } else if sub.eq_ignore_ascii_case(b"TODENSE") {
            let converted = make_dense(s).map_err(corrupt)?;
            Ok((Debug::Converted(converted), converted))
        } else {
            let name = sub.split(|&c| c == 0).next().unwrap_or_default();
            Err(CommandError::Owned(format!(
                "ERR Unknown PFDEBUG subcommand '{}'",
                String::from_utf8_lossy(name)
            )))
        }
    })?;
    let Some(r) = r else {
        return Err(E(HLL_NO_KEY));
    };
    let (reply, converted) = r?;
    let out = &mut cx.out;
    match reply {
        Debug::Registers(regs) => {
            out.array(regs.len());
            for v in regs {
                out.int(i64::from(v));
            }
        }
        Debug::Decoded(text) => out.bulk(text.as_bytes()),
        Debug::Encoding(name) => out.simple(name),
        Debug::Converted(c) => out.int(i64::from(c)),
    }
    // A conversion to dense is a change Redis propagates.
    if converted {
        cx.dirty(1);
    }
    Ok(())
}

/// `PFSELFTEST`: checks the register layout, the sparse and dense encodings against each
/// other, and the estimator's error; OK, or an error naming what failed.
fn pfselftest(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    match selftest() {
        Ok(()) => {
            cx.out.ok();
            Ok(())
        }
        Err(msg) => Err(CommandError::Owned(format!("TESTFAILED {msg}"))),
    }
}

fn selftest() -> Result<(), String> {
    // Every register keeps its own value whatever its neighbours hold.
    let mut regs = vec![0u8; DENSE_SIZE - HDR];
    let value = |i: usize, round: usize| ((i * 7 + round * 13) % 64) as u8;
    for round in 0..4 {
        for i in 0..REGISTERS {
            dense_set(&mut regs, i, value(i, round));
        }
        if let Some(i) = (0..REGISTERS).find(|&i| dense_get(&regs, i) != value(i, round)) {
            return Err(format!("Register error at {i}"));
        }
    }
    // Sparse and dense agree, and the estimate stays within a few standard errors.
    let mut sparse = empty();
    let mut dense = to_dense(&sparse).map_err(|_| "empty HLL is corrupt".to_string())?;
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let mut checked = 1u64;
    for n in 1..=100_000u64 {
        let ele = n.to_le_bytes();
        add(&mut sparse, &ele, 3000).map_err(|_| "sparse add failed".to_string())?;
        add(&mut dense, &ele, 0).map_err(|_| "dense add failed".to_string())?;
        if n == checked {
            checked *= 3;
            let (a, b) = (count(&sparse), count(&dense));
            if a != b {
                return Err(format!(
                    "sparse and dense estimates differ at {n}: {a:?} {b:?}"
                ));
            }
            let est = b.unwrap_or(0) as f64;
            let err = (est - n as f64).abs() / n as f64;
            if n > 100 && err > relerr * 5.0 {
                return Err(format!("estimate {est} of {n} is off by {err}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator for the tests below.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn filled(n: u64, max_bytes: u64) -> Vec<u8> {
        let mut s = empty();
        for i in 0..n {
            add(&mut s, format!("e{i}").as_bytes(), max_bytes).unwrap();
        }
        s
    }

    #[test]
    fn murmur_hashes_every_tail_length() {
        // Distinct for each length, and stable (the differential scripts check the values
        // against Redis through the registers they pick).
        let data = b"0123456789abcdef";
        let hashes: Vec<u64> = (0..=16).map(|n| murmur64a(&data[..n], SEED)).collect();
        let mut unique = hashes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), hashes.len());
        assert_eq!(murmur64a(b"", 0), 0);
    }

    #[test]
    fn the_empty_value_is_redis_s() {
        let s = empty();
        assert_eq!(s, b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0\x7f\xff");
        assert!(is_hll(&s));
        assert_eq!(count(&s), Ok(0));
        assert_eq!(to_dense(&s).unwrap().len(), DENSE_SIZE);
    }

    #[test]
    fn dense_registers_are_independent() {
        assert_eq!(selftest(), Ok(()));
    }

    #[test]
    fn sparse_and_dense_agree_and_estimates_are_close() {
        for n in [1u64, 10, 100, 1000, 5000] {
            let sparse = filled(n, u64::MAX);
            let dense = {
                let mut d = to_dense(&empty()).unwrap();
                for i in 0..n {
                    add(&mut d, format!("e{i}").as_bytes(), 0).unwrap();
                }
                d
            };
            assert_eq!(registers(&sparse).unwrap(), registers(&dense).unwrap());
            assert_eq!(count(&sparse), count(&dense));
            let est = count(&dense).unwrap() as f64;
            assert!(
                (est - n as f64).abs() <= (n as f64 * 0.05).max(2.0),
                "{n}: {est}"
            );
        }
        // The sparse limit promotes.
        let s = filled(2000, 3000);
        assert_eq!(s[4], DENSE);
        assert_eq!(s.len(), DENSE_SIZE);
        assert!(filled(100, 3000)[4] == SPARSE);
    }

    #[test]
    fn corrupted_values_are_errors_not_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let seeds = [
            empty(),
            filled(3, 3000),
            filled(300, 3000),
            filled(3000, 3000),
        ];
        for round in 0..3000 {
            let mut s = seeds[round % seeds.len()].clone();
            // Flip, cut or extend a few bytes past the magic.
            for _ in 0..(rng.next() % 4 + 1) {
                let len = s.len();
                match rng.next() % 4 {
                    0 if len > 4 => {
                        let i = 4 + (rng.next() as usize % (len - 4));
                        s[i] = rng.next() as u8;
                    }
                    1 if len > 16 => s.truncate(16 + rng.next() as usize % (len - 16)),
                    2 => s.push(rng.next() as u8),
                    _ => {}
                }
            }
            if !is_hll(&s) {
                continue;
            }
            let counted = count(&s);
            let max = registers(&s);
            let dense = if s[4] == SPARSE {
                to_dense(&s)
            } else {
                Ok(s.clone())
            };
            if let (Ok(c), Ok(d)) = (&counted, &dense) {
                assert_eq!(count(d).as_ref(), Ok(c));
            }
            let mut a = s.clone();
            let mut b = dense.ok();
            for i in 0..20u64 {
                let e = i.to_le_bytes();
                let ra = add(&mut a, &e, rng.next() % 4000);
                if let Some(b) = b.as_mut() {
                    let _ = add(b, &e, 0);
                }
                if ra.is_err() {
                    break;
                }
            }
            if let (Ok(ra), Some(b)) = (registers(&a), b.as_ref()) {
                assert_eq!(ra, registers(b).unwrap());
            }
            if let Ok(max) = max {
                let mut dst = empty();
                for (i, &v) in max.iter().enumerate() {
                    if v != 0 {
                        let _ = set_register(&mut dst, i, v, 3000);
                    }
                }
                assert_eq!(registers(&dst).unwrap(), max);
            }
        }
    }
}
