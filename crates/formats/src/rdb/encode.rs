//! Writing RDB: lengths, strings, values in the encodings Redis 7.0 writes, file framing,
//! and DUMP payloads.
//!
//! Each in-memory encoding maps to the RDB type Redis 7.0 writes for its own counterpart:
//!
//! | Kiln value | RDB type |
//! |---|---|
//! | string | `STRING` (small integers int-encoded, longer strings LZF when it helps) |
//! | list | `LIST_QUICKLIST_2`, split into listpack nodes as Redis's RPUSH splits them |
//! | hash, listpack / hashtable | `HASH_LISTPACK` / `HASH` |
//! | set, intset / hashtable | `SET_INTSET` (same width) / `SET` |
//! | sorted set, listpack / skiplist | `ZSET_LISTPACK` / `ZSET_2` (highest score first) |
//! | stream | `STREAM_LISTPACKS_2`, one listpack node per block, groups, PELs, consumers |

use std::io::{self, Write};

use super::listpack::Writer as Lp;
use super::{crc, intset, lzf, opcode, types, Limits, RDB_VERSION};
use kiln_store::entry::{Entry, ValueRef};
use kiln_store::stream::{EntryRef, StreamId};
use kiln_store::util::parse_i64;
use kiln_store::{Hash, List, Set, Stream, Value, ZSet};

/// How values are written.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    /// `rdbcompression`: LZF-compress strings longer than 20 bytes when that saves at
    /// least 4 bytes.
    pub compress: bool,
    /// `list-max-listpack-size`, which decides how lists are split into nodes.
    pub list_fill: i64,
    /// The access data written before each key (as Redis does under an LRU or LFU policy).
    pub access: AccessData,
}

/// Which access opcode precedes each key record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccessData {
    /// None (policies that rank no keys).
    #[default]
    None,
    /// IDLE: seconds since the key's last access, as of `now_ms` (LRU policies).
    Idle { now_ms: u64 },
    /// FREQ: the key's LFU counter decayed to `now_minutes` (LFU policies).
    Freq { now_minutes: u32 },
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            compress: true,
            list_fill: Limits::default().list_fill,
            access: AccessData::None,
        }
    }
}

/// Appends a length in RDB's variable-size encoding: 6 bits in one byte, 14 bits in two,
/// or a marker byte then 32 or 64 bits big-endian.
pub fn write_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends a string: as an 8, 16 or 32-bit integer when it is one in canonical form of at
/// most 11 characters, LZF-compressed when `compress` and it is longer than 20 bytes and
/// compression saves at least 4, else length and bytes (Redis's `rdbSaveRawString`).
pub fn write_string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= 11 {
        if let Some(v) = parse_i64(s) {
            if let Ok(v) = i32::try_from(v) {
                write_int_string(out, v);
                return;
            }
        }
    }
    if compress && s.len() > 20 && write_lzf(out, s) {
        return;
    }
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Bytes [`write_len`] takes for `n`.
fn len_size(n: u64) -> usize {
    len_bytes(n).1
}

/// [`write_len`]'s encoding of `n` on the stack: the bytes and how many are used.
fn len_bytes(n: u64) -> ([u8; 9], usize) {
    let mut b = [0u8; 9];
    let used = if n < 1 << 6 {
        b[0] = n as u8;
        1
    } else if n < 1 << 14 {
        b[0] = 0x40 | (n >> 8) as u8;
        b[1] = n as u8;
        2
    } else if n <= u64::from(u32::MAX) {
        b[0] = 0x80;
        b[1..5].copy_from_slice(&(n as u32).to_be_bytes());
        5
    } else {
        b[0] = 0x81;
        b[1..9].copy_from_slice(&n.to_be_bytes());
        9
    };
    (b, used)
}

/// Appends `s` LZF-compressed (marker, compressed length, length, data) when that saves
/// at least 4 bytes; false, with `out` as it was, otherwise. The data is compressed in
/// place after a header sized for the longest allowed result, which is then narrowed if
/// the compressed length needs fewer bytes (never, for strings under 68 bytes).
fn write_lzf(out: &mut Vec<u8>, s: &[u8]) -> bool {
    let max = s.len() - 4;
    let start = out.len();
    let room = len_size(max as u64);
    out.push(0xC3);
    out.resize(start + 1 + room, 0);
    write_len(out, s.len() as u64);
    let data = out.len();
    if !lzf::compress_into(s, max, out) {
        out.truncate(start);
        return false;
    }
    let (head, used) = len_bytes((out.len() - data) as u64);
    let gap = room - used;
    out[start + 1..start + 1 + used].copy_from_slice(&head[..used]);
    if gap > 0 {
        let from = start + 1 + room;
        out.copy_within(from.., from - gap);
        out.truncate(out.len() - gap);
    }
    true
}

/// An integer string in the smallest of the three integer encodings.
fn write_int_string(out: &mut Vec<u8>, v: i32) {
    if let Ok(b) = i8::try_from(v) {
        out.push(0xC0);
        out.push(b as u8);
    } else if let Ok(w) = i16::try_from(v) {
        out.push(0xC1);
        out.extend_from_slice(&w.to_le_bytes());
    } else {
        out.push(0xC2);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// The RDB type byte Kiln writes for a value.
pub fn object_type(v: &ValueRef<'_>) -> u8 {
    match v {
        ValueRef::Str(_) => types::STRING,
        ValueRef::Other(v) => match v {
            Value::Str(_) => types::STRING,
            Value::List(_) => types::LIST_QUICKLIST_2,
            Value::Hash(h) if h.is_pack() => types::HASH_LISTPACK,
            Value::Hash(_) => types::HASH,
            Value::Set(s) if s.is_intset() => types::SET_INTSET,
            Value::Set(_) => types::SET,
            Value::ZSet(z) if z.encoding() == "listpack" => types::ZSET_LISTPACK,
            Value::ZSet(_) => types::ZSET_2,
            Value::Stream(_) => types::STREAM_LISTPACKS_2,
        },
    }
}

/// Appends the type byte and the value (what a DUMP payload holds before its footer).
pub fn write_object(out: &mut Vec<u8>, e: &Entry, compress: bool) {
    write_value(
        out,
        e.value(),
        &WriteOptions {
            compress,
            ..WriteOptions::default()
        },
    );
}

/// Appends the type byte and the value, with explicit options.
pub fn write_value(out: &mut Vec<u8>, v: ValueRef<'_>, opts: &WriteOptions) {
    out.push(object_type(&v));
    write_body(out, v, opts);
}

/// Appends the value without its type byte.
fn write_body(out: &mut Vec<u8>, v: ValueRef<'_>, opts: &WriteOptions) {
    let c = opts.compress;
    match v {
        ValueRef::Str(s) => write_string(out, s, c),
        ValueRef::Other(v) => match v {
            Value::Str(s) => write_string(out, s, c),
            Value::List(l) => write_list(out, l, opts),
            Value::Hash(h) => write_hash(out, h, c),
            Value::Set(s) => write_set(out, s, c),
            Value::ZSet(z) => write_zset(out, z, c),
            Value::Stream(s) => write_stream(out, s, c),
        },
    }
}

/// Appends one key record: the expiry opcode when the key has a deadline, the type byte,
/// the key, the value.
pub fn write_record(out: &mut Vec<u8>, e: &Entry, expire_ms: Option<u64>, compress: bool) {
    write_record_with(
        out,
        e,
        expire_ms,
        &WriteOptions {
            compress,
            ..WriteOptions::default()
        },
    );
}

/// [`write_record`] with explicit options.
pub fn write_record_with(
    out: &mut Vec<u8>,
    e: &Entry,
    expire_ms: Option<u64>,
    opts: &WriteOptions,
) {
    if let Some(t) = expire_ms {
        out.push(opcode::EXPIRETIME_MS);
        out.extend_from_slice(&t.to_le_bytes());
    }
    match opts.access {
        AccessData::None => {}
        AccessData::Idle { now_ms } => {
            out.push(opcode::IDLE);
            write_len(out, kiln_store::access::idle_seconds(e.lru(), now_ms));
        }
        AccessData::Freq { now_minutes } => {
            out.push(opcode::FREQ);
            out.push(kiln_store::access::decayed(e.lru(), now_minutes));
        }
    }
    let v = e.value();
    out.push(object_type(&v));
    write_string(out, e.key(), opts.compress);
    write_body(out, v, opts);
}

/// A value of an AUX field.
#[derive(Clone, Copy, Debug)]
pub enum AuxValue<'a> {
    /// Bytes, stored as a string.
    Str(&'a [u8]),
    /// A number, stored as its decimal string (int-encoded when small, as Redis does).
    Int(i64),
}

/// Appends the file header: `REDIS0010` and the AUX fields (Redis writes `redis-ver`,
/// `redis-bits`, `ctime`, `used-mem`, `aof-base`, and replication fields when relevant).
pub fn write_header(out: &mut Vec<u8>, aux: &[(&str, AuxValue)]) {
    out.extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
    for (k, v) in aux {
        out.push(opcode::AUX);
        write_string(out, k.as_bytes(), false);
        match v {
            AuxValue::Str(s) => write_string(out, s, false),
            AuxValue::Int(i) => write_string(out, itoa::Buffer::new().format(*i).as_bytes(), false),
        }
    }
}

/// Appends SELECTDB.
pub fn write_select_db(out: &mut Vec<u8>, db: usize) {
    out.push(opcode::SELECTDB);
    write_len(out, db as u64);
}

/// Appends RESIZEDB: the number of keys and of keys with a TTL in the database.
pub fn write_resize_db(out: &mut Vec<u8>, keys: u64, expires: u64) {
    out.push(opcode::RESIZEDB);
    write_len(out, keys);
    write_len(out, expires);
}

/// A DUMP payload: type byte, value, RDB version (u16 LE), CRC-64 of all that (u64 LE).
pub fn dump_payload(v: ValueRef<'_>, opts: &WriteOptions) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(&mut out, v, opts);
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let c = crc::crc64(&out);
    out.extend_from_slice(&c.to_le_bytes());
    out
}

/// Appends one function library record: the FUNCTION2 opcode and the library's code (the
/// whole source, `#!lua name=<library>` first) as a string, compressed under `compress`
/// (`rdbcompression`) as any string. Redis writes these after the AUX fields and before the
/// first SELECTDB, and they are the whole body of a FUNCTION DUMP payload.
pub fn write_function(out: &mut Vec<u8>, code: &[u8], compress: bool) {
    out.push(opcode::FUNCTION2);
    write_string(out, code, compress);
}

/// A FUNCTION DUMP payload of these libraries (their code, in the order given) as Redis
/// writes it with `rdbcompression yes` (its default): see [`encode_functions_payload_with`].
pub fn encode_functions_payload(codes: &[Vec<u8>]) -> Vec<u8> {
    encode_functions_payload_with(codes, true)
}

/// A FUNCTION DUMP payload: a FUNCTION2 record per library, then the DUMP footer (RDB
/// version (u16 LE), CRC-64 of all that (u64 LE)). `compress` is `rdbcompression`, which
/// Redis follows in FUNCTION DUMP as in files. Byte-identical to Redis's for the same
/// libraries in the same order, except where LZF kicks in (see [`super::lzf`]).
pub fn encode_functions_payload_with(codes: &[Vec<u8>], compress: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(codes.iter().map(|c| c.len() + 10).sum::<usize>() + 10);
    for code in codes {
        write_function(&mut out, code, compress);
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let c = crc::crc64(&out);
    out.extend_from_slice(&c.to_le_bytes());
    out
}

/// Writes a file through any `Write`, keeping the CRC-64 of everything written so that
/// [`FileWriter::finish`] can close the file with the EOF opcode and the checksum.
pub struct FileWriter<W: Write> {
    w: W,
    crc: u64,
    checksum: bool,
    written: u64,
}

impl<W: Write> FileWriter<W> {
    /// `checksum`: `rdbchecksum`; without it the file ends with a zero checksum, which
    /// readers do not verify.
    pub fn new(w: W, checksum: bool) -> Self {
        Self {
            w,
            crc: 0,
            checksum,
            written: 0,
        }
    }

    /// Writes bytes of the file (header, records, ...).
    pub fn write(&mut self, b: &[u8]) -> io::Result<()> {
        if self.checksum {
            self.crc = crc::update(self.crc, b);
        }
        self.w.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Writes the EOF opcode and the checksum, flushes, and hands the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.write(&[opcode::EOF])?;
        let c = if self.checksum { self.crc } else { 0 };
        self.w.write_all(&c.to_le_bytes())?;
        self.written += 8;
        self.w.flush()?;
        Ok(self.w)
    }
}

// --- lists ------------------------------------------------------------------------------------

/// Elements of at least this size get a node of their own (Redis's `packed_threshold`).
const PACKED_THRESHOLD: usize = 1 << 30;
/// Node byte limits for negative `list-max-listpack-size` values -1..-5.
const OPTIMIZATION_LEVEL: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// Most bytes a node holds when the fill is a count.
const SIZE_SAFETY_LIMIT: usize = 8192;
/// Quicklist node containers.
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;

/// Redis's allowance for a listpack entry's header and backlen when it estimates whether
/// an element still fits a node.
const SIZE_ESTIMATE_OVERHEAD: usize = 8;

/// Whether Redis 7.0's quicklist would push an element of `sz` bytes into a node of
/// `bytes` bytes and `count` elements rather than start a new node: a negative fill caps
/// the node's bytes (4 KiB to 64 KiB), a positive one its element count (and 8 KiB).
fn node_takes(bytes: usize, count: usize, fill: i64, sz: usize) -> bool {
    if sz >= PACKED_THRESHOLD {
        return false;
    }
    let new_sz = bytes + sz + SIZE_ESTIMATE_OVERHEAD;
    if fill < 0 {
        let level = usize::try_from(-(fill + 1)).unwrap_or(usize::MAX);
        return new_sz <= OPTIMIZATION_LEVEL[level.min(OPTIMIZATION_LEVEL.len() - 1)];
    }
    let max_count = usize::try_from(fill).unwrap_or(usize::MAX).max(1);
    new_sz <= SIZE_SAFETY_LIMIT && count < max_count
}

/// Scratch buffers of the current thread, reused across values (see [`with_scratch`]).
#[derive(Default)]
struct Scratch {
    blob: Vec<u8>,
    body: Vec<u8>,
}

/// Buffers larger than this are not kept for reuse: one huge collection should not pin
/// its size for the life of the thread.
const SCRATCH_KEEP: usize = 1 << 20;

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Runs `f` with two empty buffers (`blob` for a packed blob being built, `body` for
/// output assembled before its count is known) taken from the thread's scratch, and puts
/// them back after. A snapshot encodes millions of small collections; allocating and
/// growing their blobs each time showed in profiles. A nested call (none today) would
/// simply get fresh buffers.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>) -> R) -> R {
    let mut s = SCRATCH.with(|c| std::mem::take(&mut *c.borrow_mut()));
    s.blob.clear();
    s.body.clear();
    let r = f(&mut s.blob, &mut s.body);
    for b in [&mut s.blob, &mut s.body] {
        if b.capacity() > SCRATCH_KEEP {
            *b = Vec::new();
        }
    }
    SCRATCH.with(|c| *c.borrow_mut() = s);
    r
}

fn write_list(out: &mut Vec<u8>, l: &List, opts: &WriteOptions) {
    with_scratch(|blob, body| {
        // Nodes go to `body` as they are finished (the node count comes first in the
        // file); `blob` holds the listpack of the node being filled.
        let mut nodes = 0u64;
        let mut node = |body: &mut Vec<u8>, container: u64, b: &[u8]| {
            write_len(body, container);
            write_string(body, b, opts.compress);
            nodes += 1;
        };
        let mut cur: Option<Lp> = None;
        let mut spare = std::mem::take(blob);
        for e in l.iter() {
            let sz = e.len();
            if sz >= PACKED_THRESHOLD {
                if let Some(lp) = cur.take() {
                    spare = lp.finish();
                    node(body, CONTAINER_PACKED, &spare);
                }
                node(body, CONTAINER_PLAIN, &e);
                continue;
            }
            let full = cur
                .as_ref()
                .is_some_and(|lp| !node_takes(lp.bytes(), lp.len(), opts.list_fill, sz));
            if full {
                if let Some(lp) = cur.take() {
                    spare = lp.finish();
                    node(body, CONTAINER_PACKED, &spare);
                }
            }
            cur.get_or_insert_with(|| Lp::with_buffer(std::mem::take(&mut spare)))
                .push_str(&e);
        }
        if let Some(lp) = cur.take() {
            spare = lp.finish();
            node(body, CONTAINER_PACKED, &spare);
        }
        *blob = spare;
        write_len(out, nodes);
        out.extend_from_slice(body);
    });
}

// --- hashes, sets, sorted sets ----------------------------------------------------------------

fn write_hash(out: &mut Vec<u8>, h: &Hash, compress: bool) {
    if h.is_pack() {
        with_scratch(|blob, _| {
            let mut lp = Lp::with_buffer(std::mem::take(blob));
            for (f, v) in h.iter() {
                lp.push_str(f);
                lp.push_str(v);
            }
            *blob = lp.finish();
            write_string(out, blob, compress);
        });
    } else {
        write_len(out, h.len() as u64);
        for (f, v) in h.iter() {
            write_string(out, f, compress);
            write_string(out, v, compress);
        }
    }
}

fn write_set(out: &mut Vec<u8>, s: &Set, compress: bool) {
    if let Some(width) = s.intset_width() {
        with_scratch(|blob, _| {
            // Every member of an intset-encoded set is an integer.
            let vals = s.elems().filter_map(|e| e.as_int());
            intset::write(blob, width, vals);
            write_string(out, blob, compress);
        });
    } else {
        write_len(out, s.len() as u64);
        for e in s.elems() {
            e.with_bytes(|b| write_string(out, b, compress));
        }
    }
}

/// Appends a score to a sorted set's listpack as Redis 7.0 does: an integer when the
/// double is one within ±2^62, else its `%.17g` text.
fn push_score(lp: &mut Lp, score: f64) {
    const LIMIT: f64 = (i64::MAX / 2) as f64;
    if (-LIMIT..=LIMIT).contains(&score) && score.trunc() == score {
        lp.push_int(score as i64);
    } else {
        lp.push_str(kiln_store::util::fmt_g17(score).as_bytes());
    }
}

fn write_zset(out: &mut Vec<u8>, z: &ZSet, compress: bool) {
    if z.encoding() == "listpack" {
        with_scratch(|blob, _| {
            let mut lp = Lp::with_buffer(std::mem::take(blob));
            for (m, s) in z.iter() {
                lp.push_str(m);
                push_score(&mut lp, s);
            }
            *blob = lp.finish();
            write_string(out, blob, compress);
        });
    } else {
        // Highest score first, as Redis writes it (its loader then inserts at the head).
        write_len(out, z.len() as u64);
        for (m, s) in z.range(0, z.len(), true) {
            write_string(out, m, compress);
            out.extend_from_slice(&s.to_le_bytes());
        }
    }
}

// --- streams ----------------------------------------------------------------------------------

/// Stream entry flags.
const FLAG_SAMEFIELDS: i64 = 2;

fn write_id_raw(out: &mut Vec<u8>, id: StreamId) {
    out.extend_from_slice(&id.ms.to_be_bytes());
    out.extend_from_slice(&id.seq.to_be_bytes());
}

fn write_id_lens(out: &mut Vec<u8>, id: StreamId) {
    write_len(out, id.ms);
    write_len(out, id.seq);
}

/// One block as a Redis stream listpack node: a master entry (the first entry's fields),
/// then each entry as flags, ID deltas from the master, fields (unless the same as the
/// master's) and values, and its element count.
fn stream_node(entries: &[EntryRef<'_>]) -> Vec<u8> {
    let master = &entries[0];
    let mfields: Vec<&[u8]> = master.strings().step_by(2).collect();
    let mut lp = Lp::new();
    lp.push_int(entries.len() as i64);
    lp.push_int(0);
    lp.push_int(mfields.len() as i64);
    for f in &mfields {
        lp.push_str(f);
    }
    lp.push_int(0);
    for e in entries {
        let same = e.pairs() == mfields.len() && e.strings().step_by(2).eq(mfields.iter().copied());
        lp.push_int(if same { FLAG_SAMEFIELDS } else { 0 });
        lp.push_int(e.id.ms.wrapping_sub(master.id.ms) as i64);
        lp.push_int(e.id.seq.wrapping_sub(master.id.seq) as i64);
        let n = e.pairs() as i64;
        if same {
            for v in e.strings().skip(1).step_by(2) {
                lp.push_str(v);
            }
            lp.push_int(n + 3);
        } else {
            lp.push_int(n);
            for s in e.strings() {
                lp.push_str(s);
            }
            lp.push_int(n * 2 + 1 + 3);
        }
    }
    lp.finish()
}

fn write_stream(out: &mut Vec<u8>, s: &Stream, compress: bool) {
    let nodes: Vec<Vec<EntryRef<'_>>> = s.block_entries().map(|b| b.collect()).collect();
    write_len(out, nodes.len() as u64);
    for entries in &nodes {
        let mut key = Vec::with_capacity(16);
        write_id_raw(&mut key, entries[0].id);
        write_string(out, &key, compress);
        write_string(out, &stream_node(entries), compress);
    }
    write_len(out, s.len() as u64);
    write_id_lens(out, s.last_id);
    write_id_lens(out, s.first_id());
    write_id_lens(out, s.max_deleted);
    write_len(out, s.entries_added);
    write_len(out, s.groups.len() as u64);
    for (name, g) in &s.groups {
        write_string(out, name, compress);
        write_id_lens(out, g.last_id);
        write_len(out, g.entries_read as u64);
        write_len(out, g.pel.len() as u64);
        for (id, nack) in &g.pel {
            write_id_raw(out, *id);
            out.extend_from_slice(&nack.delivery_time.to_le_bytes());
            write_len(out, nack.delivery_count);
        }
        write_len(out, g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            write_string(out, cname, compress);
            out.extend_from_slice(&c.seen_time.to_le_bytes());
            write_len(out, c.pel.len() as u64);
            for id in &c.pel {
                write_id_raw(out, *id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_smallest_form() {
        let enc = |n: u64| {
            let mut v = Vec::new();
            write_len(&mut v, n);
            v
        };
        assert_eq!(enc(5), [5]);
        assert_eq!(enc(63), [63]);
        assert_eq!(enc(64), [0x40, 64]);
        assert_eq!(enc(16383), [0x7F, 0xFF]);
        assert_eq!(enc(16384), [0x80, 0, 0, 0x40, 0]);
        assert_eq!(enc(1 << 32), [0x81, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn integer_strings_are_int_encoded_like_redis() {
        let enc = |s: &str| {
            let mut v = Vec::new();
            write_string(&mut v, s.as_bytes(), true);
            v
        };
        assert_eq!(enc("12"), [0xC0, 12]);
        assert_eq!(enc("-128"), [0xC0, 0x80]);
        assert_eq!(enc("1000"), [0xC1, 0xE8, 0x03]);
        assert_eq!(enc("2147483647"), [0xC2, 0xFF, 0xFF, 0xFF, 0x7F]);
        assert_eq!(enc("2147483648"), b"\x0a2147483648");
        assert_eq!(enc("012"), b"\x03012");
        assert_eq!(enc("-2147483648"), [0xC2, 0, 0, 0, 0x80]);
    }

    /// Pseudo-random 8-byte chunks, each written twice: LZF saves about a quarter.
    fn half_repeated_noise(n: usize) -> Vec<u8> {
        let mut x: u64 = 7;
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let chunk = x.to_le_bytes();
            v.extend_from_slice(&chunk);
            v.extend_from_slice(&chunk);
        }
        v
    }

    #[test]
    fn compressed_strings_have_the_shortest_header_whatever_their_size() {
        // (data, bytes of the compressed length, bytes of the original length)
        let cases = [
            (vec![b'v'; 30], 1, 1),
            (b"ab".repeat(2000), 1, 2),
            (vec![0u8; 100_000], 2, 5),
            (half_repeated_noise(40_000), 5, 5),
        ];
        for (data, clen_size, ulen_size) in cases {
            let mut out = b"x".to_vec();
            write_string(&mut out, &data, true);
            let c = lzf::compress(&data, data.len() - 4).unwrap();
            let mut want = b"x\xC3".to_vec();
            write_len(&mut want, c.len() as u64);
            write_len(&mut want, data.len() as u64);
            want.extend_from_slice(&c);
            assert_eq!(out, want);
            assert_eq!(len_size(c.len() as u64), clen_size);
            assert_eq!(len_size(data.len() as u64), ulen_size);
        }
        // Not worth it: stored as it is.
        let noise: Vec<u8> = (0..=255u8).collect();
        let mut out = Vec::new();
        write_string(&mut out, &noise, true);
        assert_eq!(&out[..2], [0x41, 0x00]);
        assert_eq!(&out[2..], &noise[..]);
    }

    #[test]
    fn a_string_dump_is_byte_identical_to_redis() {
        // DUMP of SET k hello in redis-server 7.0.
        let p = dump_payload(ValueRef::Str(b"hello"), &WriteOptions::default());
        assert_eq!(p, b"\x00\x05hello\x0a\x00cr\xdfve4 \n");
    }

    #[test]
    fn list_nodes_split_at_redis_sizes() {
        // Redis 7.0 split 3000 RPUSHed "element-N" into nodes of 8178 and 8184 bytes.
        assert!(node_takes(8164, 600, -2, 12));
        assert!(!node_takes(8178, 600, -2, 12));
        assert!(node_takes(8170, 600, -2, 12));
        assert!(!node_takes(8184, 600, -2, 12));
        assert!(node_takes(60000, 5, -9, 10));
        assert!(node_takes(100, 3, 5, 10));
        assert!(!node_takes(100, 5, 5, 10));
        assert!(!node_takes(0, 0, -2, PACKED_THRESHOLD));
    }
}
