//! Reading RDB: a streaming [`Reader`] over any `Read` (a file, a replication socket, a
//! DUMP payload) that yields one [`Record`] at a time and verifies the CRC-64 at the end.
//!
//! The reader keeps its own buffer, so the many small reads of lengths and opcodes cost a
//! bounds check each, and the checksum is computed over whole buffers. Every length read
//! from the input is treated as a claim: strings grow with the bytes actually read (a
//! claimed gigabyte on a short input fails at its end, having allocated no more than the
//! input held), counts only size preallocations up to a cap, and packed blobs are parsed
//! by validating readers ([`super::listpack`], [`super::ziplist`], [`super::intset`]).

use std::collections::BTreeMap;
use std::io::Read;

use super::listpack::{self, Item};
use super::{crc, intset, lzf, opcode, types, ziplist, Limits, RdbError, MAX_LOAD_VERSION};
use kiln_store::stream::{Consumer, Group, Nack, StreamId};
use kiln_store::{hash, zset, Hash, List, Set, Stream, Value, ZSet};

/// Buffer size of a [`Reader`].
const BUF_SIZE: usize = 256 * 1024;
/// Largest preallocation made from a count read from the input.
const PREALLOC_CAP: usize = 4096;

/// One item of an RDB stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// An AUX field (name, value).
    Aux(Vec<u8>, Vec<u8>),
    /// The following keys belong to this database.
    SelectDb(usize),
    /// Size hints for the current database.
    ResizeDb { keys: u64, expires: u64 },
    /// A key with its value, and the opcodes that preceded it.
    Key {
        key: Vec<u8>,
        value: Value,
        /// Unix ms deadline.
        expire_ms: Option<u64>,
        /// LRU idle seconds.
        idle: Option<u64>,
        /// LFU counter.
        freq: Option<u8>,
    },
    /// A function library's code, `#!<engine> name=<library>` and the rest: a FUNCTION2
    /// record, or a record in the format of Redis 7.0's release candidates
    /// (FUNCTION_PRE_GA), which Redis 7.0 loads and which is read as the code it rebuilds.
    Function(Vec<u8>),
    /// The EOF opcode, after the checksum was verified.
    End,
}

/// A streaming RDB reader (see the module docs).
pub struct Reader<R: Read> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Bytes of `buf` before this index are already in `crc`.
    crc_from: usize,
    crc: u64,
    /// Stream offset of `buf[0]`.
    base: u64,
    version: u16,
    verify: bool,
    done: bool,
    limits: Limits,
    empty_skipped: u64,
}

/// A decoded collection, or the marker that it was empty (Redis skips such keys in files
/// and refuses them in RESTORE).
type Loaded = Option<Value>;

impl<R: Read> Reader<R> {
    /// Starts reading a file or stream: checks the `REDIS` magic and the version.
    pub fn new(inner: R) -> Result<Self, RdbError> {
        let mut r = Self::headless(inner, 0, BUF_SIZE);
        let mut hdr = [0u8; 9];
        r.exact(&mut hdr)?;
        if &hdr[..5] != b"REDIS" {
            return Err(RdbError::corrupt(0, "not an RDB file (no REDIS signature)"));
        }
        let digits = &hdr[5..];
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(RdbError::corrupt(5, "the RDB version is not a number"));
        }
        let v: u16 = digits.iter().fold(0, |a, d| a * 10 + u16::from(d - b'0'));
        if !(1..=MAX_LOAD_VERSION).contains(&v) {
            return Err(RdbError::corrupt(
                5,
                format!("can't handle RDB format version {v} (Kiln reads 1 to {MAX_LOAD_VERSION})"),
            ));
        }
        r.version = v;
        Ok(r)
    }

    /// A reader positioned after the header, for data of a known version (a payload),
    /// buffering `buf_size` bytes at a time.
    fn headless(inner: R, version: u16, buf_size: usize) -> Self {
        Self {
            inner,
            buf: vec![0u8; buf_size.max(1)].into_boxed_slice(),
            start: 0,
            end: 0,
            crc_from: 0,
            crc: 0,
            base: 0,
            version,
            verify: true,
            done: false,
            limits: Limits::default(),
            empty_skipped: 0,
        }
    }

    /// Builds values with these thresholds (default: Redis's defaults).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether to verify the checksum at the end (default yes).
    pub fn verify_checksum(mut self, yes: bool) -> Self {
        self.verify = yes;
        self
    }

    /// [`Reader::with_limits`] on a borrowed reader.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// [`Reader::verify_checksum`] on a borrowed reader.
    pub fn set_verify_checksum(&mut self, yes: bool) {
        self.verify = yes;
    }

    /// The stream's RDB version.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Empty collections skipped so far.
    pub fn empty_skipped(&self) -> u64 {
        self.empty_skipped
    }

    /// The underlying reader and the bytes read from it past the end of the RDB data
    /// (a replication stream continues after the snapshot).
    pub fn into_parts(self) -> (R, Vec<u8>) {
        let rest = self.buf[self.start..self.end].to_vec();
        (self.inner, rest)
    }

    fn corrupt(&self, at: u64, msg: impl Into<String>) -> RdbError {
        RdbError::corrupt(at, msg)
    }

    /// Makes at least one more unread byte available; an error at the end of the input.
    fn fill(&mut self) -> Result<(), RdbError> {
        self.crc = crc::update(self.crc, &self.buf[self.crc_from..self.start]);
        self.buf.copy_within(self.start..self.end, 0);
        self.base += self.start as u64;
        self.end -= self.start;
        self.start = 0;
        self.crc_from = 0;
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    return Err(self.corrupt(self.offset(), "unexpected end of data (truncated)"))
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(RdbError::io(self.offset(), &e)),
            }
        }
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, RdbError> {
        if self.start == self.end {
            self.fill()?;
        }
        let b = self.buf[self.start];
        self.start += 1;
        Ok(b)
    }

    fn exact(&mut self, out: &mut [u8]) -> Result<(), RdbError> {
        let mut done = 0;
        while done < out.len() {
            if self.start == self.end {
                self.fill()?;
            }
            let n = (out.len() - done).min(self.end - self.start);
            out[done..done + n].copy_from_slice(&self.buf[self.start..self.start + n]);
            self.start += n;
            done += n;
        }
        Ok(())
    }

    /// `n` bytes; the vector grows with the data actually read.
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, RdbError> {
        let n = usize::try_from(n).map_err(|_| self.corrupt(self.offset(), "length too large"))?;
        let mut v = Vec::with_capacity(n.min(BUF_SIZE));
        while v.len() < n {
            if self.start == self.end {
                self.fill()?;
            }
            let k = (n - v.len()).min(self.end - self.start);
            v.extend_from_slice(&self.buf[self.start..self.start + k]);
            self.start += k;
        }
        Ok(v)
    }

    fn u64_le(&mut self) -> Result<u64, RdbError> {
        let mut b = [0u8; 8];
        self.exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A length, or for `11xxxxxx` the special encoding number (`Err(kind)` in `Ok`).
    fn len_or_enc(&mut self) -> Result<Result<u64, u8>, RdbError> {
        let at = self.offset();
        let b = self.byte()?;
        Ok(match b >> 6 {
            0 => Ok(u64::from(b & 0x3F)),
            1 => Ok(u64::from(b & 0x3F) << 8 | u64::from(self.byte()?)),
            2 => match b {
                0x80 => {
                    let mut w = [0u8; 4];
                    self.exact(&mut w)?;
                    Ok(u64::from(u32::from_be_bytes(w)))
                }
                0x81 => {
                    let mut w = [0u8; 8];
                    self.exact(&mut w)?;
                    Ok(u64::from_be_bytes(w))
                }
                _ => return Err(self.corrupt(at, format!("unknown length encoding {b:#04x}"))),
            },
            _ => Err(b & 0x3F),
        })
    }

    /// A plain length.
    fn len(&mut self) -> Result<u64, RdbError> {
        let at = self.offset();
        match self.len_or_enc()? {
            Ok(n) => Ok(n),
            Err(_) => Err(self.corrupt(at, "an encoded value where a length was expected")),
        }
    }

    /// A count of items, as usize.
    fn count(&mut self) -> Result<usize, RdbError> {
        let at = self.offset();
        let n = self.len()?;
        usize::try_from(n).map_err(|_| self.corrupt(at, format!("count {n} too large")))
    }

    /// A string in any of its encodings.
    fn string(&mut self) -> Result<Vec<u8>, RdbError> {
        let at = self.offset();
        match self.len_or_enc()? {
            Ok(n) => self.bytes(n),
            Err(0) => Ok(int_bytes(i64::from(self.byte()? as i8))),
            Err(1) => {
                let mut w = [0u8; 2];
                self.exact(&mut w)?;
                Ok(int_bytes(i64::from(i16::from_le_bytes(w))))
            }
            Err(2) => {
                let mut w = [0u8; 4];
                self.exact(&mut w)?;
                Ok(int_bytes(i64::from(i32::from_le_bytes(w))))
            }
            Err(3) => {
                let clen = self.len()?;
                let ulen = self.len()?;
                let data = self.bytes(clen)?;
                let ulen =
                    usize::try_from(ulen).map_err(|_| self.corrupt(at, "LZF length too large"))?;
                lzf::decompress(&data, ulen)
                    .map_err(|e| self.corrupt(at, format!("bad LZF string: {e}")))
            }
            Err(e) => Err(self.corrupt(at, format!("unknown string encoding {e}"))),
        }
    }

    /// A double in the old text form: a length byte (253 NaN, 254 +inf, 255 -inf) and
    /// that many ASCII characters.
    fn text_double(&mut self) -> Result<f64, RdbError> {
        let at = self.offset();
        let n = self.byte()?;
        let v = match n {
            253 => f64::NAN,
            254 => f64::INFINITY,
            255 => f64::NEG_INFINITY,
            n => {
                let mut b = vec![0u8; n as usize];
                self.exact(&mut b)?;
                parse_double(&b).ok_or_else(|| self.corrupt(at, "bad double value"))?
            }
        };
        Ok(v)
    }

    /// The next record. After [`Record::End`] every call returns `End` again.
    pub fn next_record(&mut self) -> Result<Record, RdbError> {
        if self.done {
            return Ok(Record::End);
        }
        let mut expire_ms = None;
        let mut idle = None;
        let mut freq = None;
        loop {
            let at = self.offset();
            let t = self.byte()?;
            match t {
                opcode::EXPIRETIME_MS => {
                    // Signed, as Redis reads it: a negative deadline has long passed.
                    let ms = self.u64_le()? as i64;
                    expire_ms = Some(u64::try_from(ms).unwrap_or(0));
                }
                opcode::EXPIRETIME => {
                    // Signed seconds, as Redis reads them: a negative time has long passed.
                    let mut w = [0u8; 4];
                    self.exact(&mut w)?;
                    let secs = i32::from_le_bytes(w);
                    expire_ms = Some(u64::try_from(secs).unwrap_or(0) * 1000);
                }
                opcode::IDLE => idle = Some(self.len()?),
                opcode::FREQ => freq = Some(self.byte()?),
                opcode::SELECTDB => {
                    let n = self.len()?;
                    let db = usize::try_from(n)
                        .map_err(|_| self.corrupt(at, format!("database {n} out of range")))?;
                    return Ok(Record::SelectDb(db));
                }
                opcode::RESIZEDB => {
                    let keys = self.len()?;
                    let expires = self.len()?;
                    return Ok(Record::ResizeDb { keys, expires });
                }
                opcode::AUX => {
                    let k = self.string()?;
                    let v = self.string()?;
                    return Ok(Record::Aux(k, v));
                }
                opcode::SLOT_INFO => {
                    // Cluster slot sizes (Redis 7.4): informational only.
                    for _ in 0..3 {
                        self.len()?;
                    }
                }
                opcode::FUNCTION2 | opcode::FUNCTION_PRE_GA => {
                    return self
                        .function(t)
                        .map(Record::Function)
                        .map_err(|(what, e)| RdbError {
                            msg: format!("{what}: {}", e.msg),
                            ..e
                        });
                }
                opcode::MODULE_AUX => {
                    return Err(self.corrupt(
                        at,
                        "module auxiliary data is not supported (the data needs a Redis module)",
                    ))
                }
                opcode::EOF => {
                    self.finish(at)?;
                    return Ok(Record::End);
                }
                t => {
                    if !is_value_type(t) {
                        return Err(self.corrupt(at, format!("unknown value type {t}")));
                    }
                    let key = self.string()?;
                    match self.object(t, at)? {
                        Some(value) => {
                            return Ok(Record::Key {
                                key,
                                value,
                                expire_ms,
                                idle,
                                freq,
                            })
                        }
                        None => {
                            // Logged for the first few only, as Redis does.
                            self.empty_skipped += 1;
                            if self.empty_skipped <= 10 {
                                tracing::info!(
                                    "RDB: skipping empty key '{}'",
                                    String::from_utf8_lossy(&key)
                                );
                            }
                            expire_ms = None;
                            idle = None;
                            freq = None;
                        }
                    }
                }
            }
        }
    }

    /// The code of the library record introduced by opcode `t` (FUNCTION2 or
    /// FUNCTION_PRE_GA, already read). FUNCTION2 is the code as one string. The pre-release
    /// form (Redis 7.0's release candidates), which Redis 7.0 still loads, is the library
    /// name, the engine name, a length that is non-zero when a description string follows,
    /// and the code without its first line: it becomes the code Redis 7.0 rebuilds from
    /// it, `#!<engine> name=<library>\n` and the rest (the description is dropped, as
    /// Redis 7.0 drops it). On error, Redis's phrase for the part that failed comes with
    /// the error.
    fn function(&mut self, t: u8) -> Result<Vec<u8>, (&'static str, RdbError)> {
        if t == opcode::FUNCTION2 {
            return self
                .string()
                .map_err(|e| ("Failed loading library payload", e));
        }
        let name = self
            .string()
            .map_err(|e| ("Failed loading library name", e))?;
        let engine = self
            .string()
            .map_err(|e| ("Failed loading engine name", e))?;
        let has_desc = self
            .len()
            .map_err(|e| ("Failed loading library description indicator", e))?;
        if has_desc != 0 {
            self.string()
                .map_err(|e| ("Failed loading library description", e))?;
        }
        let blob = self
            .string()
            .map_err(|e| ("Failed loading library blob", e))?;
        let mut code = Vec::with_capacity(engine.len() + name.len() + blob.len() + 9);
        code.extend_from_slice(b"#!");
        code.extend_from_slice(&engine);
        code.extend_from_slice(b" name=");
        code.extend_from_slice(&name);
        code.push(b'\n');
        code.extend_from_slice(&blob);
        Ok(code)
    }

    /// After the EOF opcode: reads and checks the checksum (version 5 and later).
    fn finish(&mut self, at: u64) -> Result<(), RdbError> {
        self.done = true;
        if self.version < 5 {
            return Ok(());
        }
        // The checksum covers everything up to and including the EOF opcode.
        let computed = crc::update(self.crc, &self.buf[self.crc_from..self.start]);
        self.crc_from = self.start;
        let stored = self.u64_le()?;
        // What follows is not part of the file: keep it out of any later CRC.
        self.crc_from = self.start;
        if stored == 0 {
            tracing::warn!("RDB file was saved with checksum disabled: no check performed.");
        } else if self.verify && stored != computed {
            return Err(self.corrupt(
                at + 1,
                format!("wrong checksum: file says {stored:016x}, data gives {computed:016x}"),
            ));
        }
        Ok(())
    }

    // --- values -------------------------------------------------------------------------------

    /// Reads a value of type `t` (whose type byte was at `at`).
    fn object(&mut self, t: u8, at: u64) -> Result<Loaded, RdbError> {
        let lim = self.limits;
        match t {
            types::STRING => Ok(Some(Value::Str(self.string()?))),
            types::LIST => {
                let n = self.count()?;
                let mut l = List::new();
                for _ in 0..n {
                    l.push_back(&self.string()?);
                }
                Ok((!l.is_empty()).then(|| Value::List(Box::new(l))))
            }
            types::SET => {
                let n = self.count()?;
                let mut s = if n > lim.max_intset {
                    Set::with_table_capacity(n.min(PREALLOC_CAP))
                } else {
                    Set::new()
                };
                for _ in 0..n {
                    let m_at = self.offset();
                    let m = self.string()?;
                    if !s.add(&m, lim.max_intset) {
                        return Err(self.corrupt(m_at, "duplicate set member"));
                    }
                }
                Ok((!s.is_empty()).then(|| Value::Set(Box::new(s))))
            }
            types::ZSET | types::ZSET_2 => {
                let n = self.count()?;
                let mut pairs = Vec::with_capacity(n.min(PREALLOC_CAP));
                for _ in 0..n {
                    let m = self.string()?;
                    let s_at = self.offset();
                    let s = if t == types::ZSET_2 {
                        f64::from_bits(self.u64_le()?)
                    } else {
                        self.text_double()?
                    };
                    if s.is_nan() {
                        return Err(self.corrupt(s_at, "sorted set score is NaN"));
                    }
                    pairs.push((m, s));
                }
                build_zset(pairs, lim.zset).map_err(|e| self.corrupt(at, e))
            }
            types::HASH => {
                let n = self.count()?;
                let mut h = Hash::new();
                for _ in 0..n {
                    let f_at = self.offset();
                    let f = self.string()?;
                    let v = self.string()?;
                    if !h.set(&f, &v, lim.hash) {
                        return Err(self.corrupt(f_at, "duplicate hash field"));
                    }
                }
                Ok((!h.is_empty()).then(|| Value::Hash(Box::new(h))))
            }
            types::HASH_ZIPMAP
            | types::LIST_ZIPLIST
            | types::SET_INTSET
            | types::ZSET_ZIPLIST
            | types::HASH_ZIPLIST
            | types::HASH_LISTPACK
            | types::ZSET_LISTPACK
            | types::SET_LISTPACK => {
                let blob_at = self.offset();
                let blob = self.string()?;
                blob_value(t, &blob, lim).map_err(|e| self.corrupt(blob_at, e))
            }
            types::LIST_QUICKLIST | types::LIST_QUICKLIST_2 => self.quicklist(t),
            types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 | types::STREAM_LISTPACKS_3 => {
                self.stream(t).map(|s| Some(Value::Stream(Box::new(s))))
            }
            types::MODULE_PRE_GA | types::MODULE_2 => Err(self.corrupt(
                at,
                "module values are not supported (the data needs a Redis module)",
            )),
            types::HASH_METADATA_PRE_GA
            | types::HASH_LISTPACK_EX_PRE_GA
            | types::HASH_METADATA
            | types::HASH_LISTPACK_EX => Err(self.corrupt(
                at,
                format!("hashes with field expiration (Redis 7.4 type {t}) are not supported"),
            )),
            t => Err(self.corrupt(at, format!("unknown value type {t}"))),
        }
    }

    /// A quicklist: nodes of ziplists (`LIST_QUICKLIST`) or, in version 2, each node a
    /// container kind (plain element or listpack) and its blob.
    fn quicklist(&mut self, t: u8) -> Result<Loaded, RdbError> {
        let nodes = self.count()?;
        let mut l = List::new();
        for _ in 0..nodes {
            let c_at = self.offset();
            let container = if t == types::LIST_QUICKLIST_2 {
                self.len()?
            } else {
                2
            };
            let blob_at = self.offset();
            let blob = self.string()?;
            match container {
                1 => l.push_back(&blob),
                2 => {
                    let items = if t == types::LIST_QUICKLIST_2 {
                        listpack::parse(&blob)
                    } else {
                        ziplist::parse(&blob)
                    }
                    .map_err(|e| self.corrupt(blob_at, e))?;
                    for it in items {
                        it.with_bytes(|b| l.push_back(b));
                    }
                }
                c => return Err(self.corrupt(c_at, format!("unknown quicklist container {c}"))),
            }
        }
        Ok((!l.is_empty()).then(|| Value::List(Box::new(l))))
    }

    fn stream_id(&mut self) -> Result<StreamId, RdbError> {
        Ok(StreamId::new(self.len()?, self.len()?))
    }

    fn raw_id(&mut self) -> Result<StreamId, RdbError> {
        let mut b = [0u8; 16];
        self.exact(&mut b)?;
        Ok(id_from_raw(&b))
    }

    /// A stream in any of the three stream types.
    fn stream(&mut self, t: u8) -> Result<Stream, RdbError> {
        let start = self.offset();
        let nodes = self.count()?;
        let mut s = Stream::new();
        let mut last_seen: Option<StreamId> = None;
        for _ in 0..nodes {
            let key_at = self.offset();
            let key = self.string()?;
            let master = <&[u8; 16]>::try_from(&key[..])
                .map(id_from_raw)
                .map_err(|_| self.corrupt(key_at, "stream node key is not a 16-byte ID"))?;
            let lp_at = self.offset();
            let lp = self.string()?;
            let entries = parse_stream_node(&lp, master).map_err(|e| self.corrupt(lp_at, e))?;
            for (id, deleted, strings) in entries {
                if last_seen.is_some_and(|p| p >= id) {
                    return Err(self.corrupt(lp_at, "stream entry IDs are not ascending"));
                }
                last_seen = Some(id);
                if !deleted {
                    let refs: Vec<&[u8]> = strings.iter().map(|x| &x[..]).collect();
                    s.append(id, &refs);
                }
            }
        }
        let len_at = self.offset();
        let length = self.len()?;
        if length != s.len() as u64 {
            return Err(self.corrupt(
                len_at,
                format!("stream says {length} entries but holds {}", s.len()),
            ));
        }
        let last_id = self.stream_id()?;
        if !s.is_empty() && s.last_valid_id() > last_id {
            return Err(self.corrupt(len_at, "stream last ID is below its last entry"));
        }
        s.last_id = last_id;
        if t >= types::STREAM_LISTPACKS_2 {
            let _first = self.stream_id()?;
            s.max_deleted = self.stream_id()?;
            s.entries_added = self.len()?;
        } else {
            s.entries_added = s.len() as u64;
            s.max_deleted = StreamId::MIN;
        }
        let ngroups = self.count()?;
        for _ in 0..ngroups {
            let g_at = self.offset();
            let name = self.string()?;
            let last_id = self.stream_id()?;
            let entries_read = if t >= types::STREAM_LISTPACKS_2 {
                self.len()? as i64
            } else {
                s.estimate_distance(last_id)
            };
            let npel = self.count()?;
            // Nacks first without their consumer: the consumers below claim them.
            let mut pel: BTreeMap<StreamId, PendingNack> = BTreeMap::new();
            for _ in 0..npel {
                let p_at = self.offset();
                let id = self.raw_id()?;
                let time = self.u64_le()?;
                let count = self.len()?;
                if pel.insert(id, (time, count, None)).is_some() {
                    return Err(self.corrupt(p_at, "duplicate entry in a consumer group's PEL"));
                }
            }
            let nconsumers = self.count()?;
            let mut consumers = BTreeMap::new();
            for _ in 0..nconsumers {
                let c_at = self.offset();
                let cname: Box<[u8]> = self.string()?.into();
                let seen_time = self.u64_le()?;
                if t >= types::STREAM_LISTPACKS_3 {
                    // The active time (Redis 7.2); Kiln reports Redis 7.0's fields only.
                    self.u64_le()?;
                }
                let n = self.count()?;
                let mut cpel = std::collections::BTreeSet::new();
                for _ in 0..n {
                    let p_at = self.offset();
                    let id = self.raw_id()?;
                    match pel.get_mut(&id) {
                        Some((_, _, owner @ None)) => *owner = Some(cname.clone()),
                        Some(_) => {
                            return Err(self.corrupt(p_at, "a PEL entry claimed by two consumers"))
                        }
                        None => {
                            return Err(
                                self.corrupt(p_at, "consumer PEL entry missing from the group PEL")
                            )
                        }
                    }
                    cpel.insert(id);
                }
                if consumers
                    .insert(
                        cname,
                        Consumer {
                            seen_time,
                            pel: cpel,
                        },
                    )
                    .is_some()
                {
                    return Err(self.corrupt(c_at, "duplicate consumer in a group"));
                }
            }
            let mut gpel = BTreeMap::new();
            for (id, (delivery_time, delivery_count, owner)) in pel {
                let Some(consumer) = owner else {
                    return Err(self.corrupt(g_at, "a group PEL entry has no consumer"));
                };
                gpel.insert(
                    id,
                    Nack {
                        consumer,
                        delivery_time,
                        delivery_count,
                    },
                );
            }
            let g = Group {
                last_id,
                entries_read,
                pel: gpel,
                consumers,
            };
            if s.groups.insert(name.into(), g).is_some() {
                return Err(self.corrupt(g_at, "duplicate consumer group name"));
            }
        }
        if !s.is_empty() && nodes == 0 {
            return Err(self.corrupt(start, "stream has entries but no nodes"));
        }
        Ok(s)
    }
}

/// A group PEL entry while its consumer is not known yet: delivery time, delivery count,
/// the consumer that claims it.
type PendingNack = (u64, u64, Option<Box<[u8]>>);

/// Whether `t` is a value type byte of some RDB version (supported or not).
fn is_value_type(t: u8) -> bool {
    matches!(t, 0..=7 | 9..=25)
}

/// The decimal bytes of an integer.
fn int_bytes(v: i64) -> Vec<u8> {
    itoa::Buffer::new().format(v).as_bytes().to_vec()
}

/// A 16-byte big-endian stream ID.
fn id_from_raw(b: &[u8; 16]) -> StreamId {
    let mut ms = [0u8; 8];
    let mut seq = [0u8; 8];
    ms.copy_from_slice(&b[..8]);
    seq.copy_from_slice(&b[8..]);
    StreamId::new(u64::from_be_bytes(ms), u64::from_be_bytes(seq))
}

/// Parses a score written as text (`strtod` rules for what Redis writes: decimals,
/// exponents, `inf`, `-inf`, `nan`).
fn parse_double(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    match s.to_ascii_lowercase().as_str() {
        "nan" | "-nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// A sorted set from (member, score) pairs in any order: refuses duplicate members and
/// picks the encoding with `lim`.
fn build_zset(mut pairs: Vec<(Vec<u8>, f64)>, lim: zset::Limits) -> Result<Loaded, String> {
    if pairs.is_empty() {
        return Ok(None);
    }
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err("duplicate sorted set member".into());
    }
    // Redis compares -0 and 0 as equal scores (ordered by member), which total_cmp would
    // not; NaN was refused before.
    pairs.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
    Ok(Some(Value::ZSet(Box::new(ZSet::from_sorted(pairs, lim)))))
}

/// The value of a packed-blob type: validates the blob and converts as Redis converts on
/// load (only the element count decides: long elements stay packed, as in Redis).
fn blob_value(t: u8, blob: &[u8], lim: Limits) -> Result<Loaded, String> {
    match t {
        types::SET_INTSET => {
            let (width, members) = intset::parse(blob)?;
            if members.is_empty() {
                return Ok(None);
            }
            Ok(Some(Value::Set(Box::new(Set::from_intset(
                width,
                &members,
                lim.max_intset,
            )))))
        }
        types::SET_LISTPACK => {
            let items = listpack::parse(blob)?;
            if items.is_empty() {
                return Ok(None);
            }
            let mut s = if items.len() > lim.max_intset {
                Set::with_table_capacity(items.len())
            } else {
                Set::new()
            };
            for it in items {
                if !it.with_bytes(|b| s.add(b, lim.max_intset)) {
                    return Err("duplicate set member".into());
                }
            }
            Ok(Some(Value::Set(Box::new(s))))
        }
        types::LIST_ZIPLIST => {
            let items = ziplist::parse(blob)?;
            let mut l = List::new();
            for it in items {
                it.with_bytes(|b| l.push_back(b));
            }
            Ok((!l.is_empty()).then(|| Value::List(Box::new(l))))
        }
        types::HASH_ZIPMAP => {
            let parts = ziplist::parse_zipmap(blob)?;
            let items: Vec<Item<'_>> = parts.into_iter().map(Item::Str).collect();
            build_packed_hash(&items, lim.hash, true)
        }
        types::HASH_ZIPLIST => build_packed_hash(&ziplist::parse(blob)?, lim.hash, false),
        types::HASH_LISTPACK => build_packed_hash(&listpack::parse(blob)?, lim.hash, false),
        types::ZSET_ZIPLIST | types::ZSET_LISTPACK => {
            let items = if t == types::ZSET_ZIPLIST {
                ziplist::parse(blob)?
            } else {
                listpack::parse(blob)?
            };
            if !items.len().is_multiple_of(2) {
                return Err("sorted set blob has an odd number of elements".into());
            }
            let mut pairs = Vec::with_capacity(items.len() / 2);
            for p in items.chunks_exact(2) {
                let score = match p[1] {
                    Item::Int(v) => v as f64,
                    Item::Str(s) => parse_double(s).ok_or("bad sorted set score")?,
                };
                if score.is_nan() {
                    return Err("sorted set score is NaN".into());
                }
                pairs.push((p[0].to_vec(), score));
            }
            // Only the count decides the encoding of a packed set on load.
            let lim = zset::Limits {
                entries: lim.zset.entries,
                value: usize::MAX,
            };
            build_zset(pairs, lim)
        }
        _ => Err(format!("unknown value type {t}")),
    }
}

/// A hash from alternating fields and values of a packed blob: stays packed up to
/// `hash-max-listpack-entries` fields, whatever their lengths, as Redis loads ziplists and
/// listpacks; a zipmap (`check_lengths`) also converts for a field or value longer than
/// `hash-max-listpack-value`, as Redis converts it.
fn build_packed_hash(
    items: &[Item<'_>],
    lim: hash::Limits,
    check_lengths: bool,
) -> Result<Loaded, String> {
    if !items.len().is_multiple_of(2) {
        return Err("hash blob has an odd number of elements".into());
    }
    if items.is_empty() {
        return Ok(None);
    }
    let pairs = items.len() / 2;
    let too_long = check_lengths && items.iter().any(|i| i.len() > lim.value);
    let keep_packed = pairs <= lim.entries && !too_long;
    let fill = hash::Limits {
        entries: if keep_packed { usize::MAX } else { lim.entries },
        value: if keep_packed { usize::MAX } else { lim.value },
    };
    let mut h = Hash::new();
    if !keep_packed {
        h.convert_to_table();
    }
    for p in items.chunks_exact(2) {
        let (f, v) = (p[0].to_vec(), p[1].to_vec());
        if !h.set(&f, &v, fill) {
            return Err("duplicate hash field".into());
        }
    }
    Ok(Some(Value::Hash(Box::new(h))))
}

/// One entry of a stream node: its ID, whether it is marked deleted, its fields and
/// values alternating.
type NodeEntry = (StreamId, bool, Vec<Vec<u8>>);

/// Parses a stream listpack node whose master ID is `master` (its key), checking the
/// master entry, every entry's shape and element count, and the live/deleted counts.
fn parse_stream_node(lp: &[u8], master: StreamId) -> Result<Vec<NodeEntry>, String> {
    let items = listpack::parse(lp)?;
    if items.is_empty() {
        return Err("empty listpack in a stream".into());
    }
    let mut it = items.into_iter();
    let mut int = |what: &str| -> Result<i64, String> {
        it.next()
            .ok_or_else(|| format!("stream node ends before its {what}"))?
            .as_int()
            .ok_or_else(|| format!("stream node {what} is not an integer"))
    };
    let count = int("entry count")?;
    let deleted = int("deleted count")?;
    let nfields = int("master field count")?;
    let nfields = usize::try_from(nfields).map_err(|_| "negative master field count")?;
    let mut rest: Vec<Item<'_>> = it.collect();
    if rest.len() < nfields + 1 {
        return Err("stream node master entry is truncated".into());
    }
    let tail = rest.split_off(nfields);
    let mfields: Vec<Vec<u8>> = rest.iter().map(|x| x.to_vec()).collect();
    let mut pos = 0;
    let next = |pos: &mut usize| -> Result<Item<'_>, String> {
        let x = *tail.get(*pos).ok_or("stream entry is truncated")?;
        *pos += 1;
        Ok(x)
    };
    let next_int = |pos: &mut usize| -> Result<i64, String> {
        next(pos)?
            .as_int()
            .ok_or_else(|| "stream entry field is not an integer".to_string())
    };
    if next_int(&mut pos)? != 0 {
        return Err("stream node master entry lacks its terminator".into());
    }
    let mut out = Vec::new();
    let (mut live, mut dead) = (0i64, 0i64);
    while pos < tail.len() {
        let flags = next_int(&mut pos)?;
        let ms = next_int(&mut pos)?;
        let seq = next_int(&mut pos)?;
        let id = StreamId::new(
            master.ms.wrapping_add(ms as u64),
            master.seq.wrapping_add(seq as u64),
        );
        let same = flags & 2 != 0;
        let mut strings = Vec::new();
        let expect_count = if same {
            for f in &mfields {
                strings.push(f.clone());
                strings.push(next(&mut pos)?.to_vec());
            }
            mfields.len() as i64 + 3
        } else {
            let n = next_int(&mut pos)?;
            let n = usize::try_from(n).map_err(|_| "negative stream entry field count")?;
            if n > tail.len() {
                return Err("stream entry field count too large".into());
            }
            for _ in 0..n * 2 {
                strings.push(next(&mut pos)?.to_vec());
            }
            n as i64 * 2 + 1 + 3
        };
        if next_int(&mut pos)? != expect_count {
            return Err("stream entry has a wrong element count".into());
        }
        if flags & !3 != 0 {
            return Err(format!("stream entry has unknown flags {flags}"));
        }
        let is_deleted = flags & 1 != 0;
        if is_deleted {
            dead += 1;
        } else {
            live += 1;
        }
        out.push((id, is_deleted, strings));
    }
    if live != count || dead != deleted {
        return Err(format!(
            "stream node counts {count} live and {deleted} deleted entries, holds {live} and {dead}"
        ));
    }
    if live == 0 {
        return Err("stream node has no live entries".into());
    }
    Ok(out)
}

/// Decodes the value of a DUMP payload of RDB `version` (the type byte first).
pub(super) fn payload_value(body: &[u8], version: u16, limits: Limits) -> Result<Value, RdbError> {
    let mut r = Reader::headless(body, version, body.len().min(BUF_SIZE)).with_limits(limits);
    let t = r.byte()?;
    match r.object(t, 0)? {
        Some(v) => Ok(v),
        None => Err(RdbError::corrupt(1, "empty collection")),
    }
}

/// The libraries of a FUNCTION DUMP payload whose footer (version, CRC) was checked: the
/// records up to the footer, as Redis reads them (a record may run into the footer's
/// bytes). Each must be a library record; the error message is Redis's reply text.
pub(super) fn payload_functions(payload: &[u8], version: u16) -> Result<Vec<Vec<u8>>, RdbError> {
    let body_end = payload.len().saturating_sub(10) as u64;
    let mut r = Reader::headless(payload, version, payload.len().min(BUF_SIZE));
    let mut out = Vec::new();
    while r.offset() < body_end {
        let at = r.offset();
        let t = r
            .byte()
            .map_err(|_| RdbError::corrupt(at, "can not read data type"))?;
        if t != opcode::FUNCTION2 && t != opcode::FUNCTION_PRE_GA {
            return Err(RdbError::corrupt(at, "given type is not a function"));
        }
        let code = r
            .function(t)
            .map_err(|(what, e)| RdbError::corrupt(e.offset, what))?;
        out.push(code);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::encode::{self, write_len, write_string};

    fn reader(data: &[u8]) -> Reader<&[u8]> {
        Reader::new(data).unwrap()
    }

    fn file(body: &[u8]) -> Vec<u8> {
        let mut f = b"REDIS0010".to_vec();
        f.extend_from_slice(body);
        f.push(opcode::EOF);
        let c = crc::crc64(&f);
        f.extend_from_slice(&c.to_le_bytes());
        f
    }

    #[test]
    fn strings_in_every_encoding_read_back() {
        let mut body = Vec::new();
        for s in ["", "x", "12", "-300", "70000", "2147483648", "hello world"] {
            body.push(types::STRING);
            write_string(&mut body, b"k", false);
            write_string(&mut body, s.as_bytes(), false);
        }
        let long = "abc".repeat(100);
        body.push(types::STRING);
        write_string(&mut body, b"k", false);
        write_string(&mut body, long.as_bytes(), true);
        let f = file(&body);
        let mut r = reader(&f);
        let mut got = Vec::new();
        loop {
            match r.next_record().unwrap() {
                Record::Key {
                    value: Value::Str(s),
                    ..
                } => got.push(String::from_utf8(s).unwrap()),
                Record::End => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            got,
            [
                "",
                "x",
                "12",
                "-300",
                "70000",
                "2147483648",
                "hello world",
                &long
            ]
        );
    }

    #[test]
    fn a_wrong_checksum_is_refused_and_zero_is_not_checked() {
        let mut f = file(&[]);
        let n = f.len();
        f[n - 1] ^= 1;
        let e = reader(&f).next_record().unwrap_err();
        assert!(e.msg.contains("checksum"), "{e}");
        f[n - 8..].fill(0);
        assert_eq!(reader(&f).next_record().unwrap(), Record::End);
    }

    #[test]
    fn truncation_names_the_offset() {
        let mut body = vec![types::STRING];
        write_string(&mut body, b"key", false);
        write_string(&mut body, b"value", false);
        let f = file(&body);
        for cut in 0..f.len() {
            let r = Reader::new(&f[..cut]).and_then(|mut r| loop {
                if r.next_record()? == Record::End {
                    break Ok(());
                }
            });
            let e = r.unwrap_err();
            assert!(e.to_string().starts_with("RDB corrupt at offset"), "{e}");
        }
    }

    #[test]
    fn huge_claimed_lengths_do_not_allocate() {
        let mut body = vec![types::STRING];
        write_string(&mut body, b"k", false);
        write_len(&mut body, u64::from(u32::MAX));
        body.extend_from_slice(b"abc");
        let f = file(&body);
        assert!(reader(&f).next_record().is_err());
        let mut body = vec![types::LIST];
        write_string(&mut body, b"k", false);
        write_len(&mut body, 1 << 40);
        let f = file(&body);
        assert!(reader(&f).next_record().is_err());
    }

    #[test]
    fn written_values_read_back_equal() {
        let lim = zset::Limits {
            entries: 128,
            value: 64,
        };
        let mut z = ZSet::new(1, lim);
        for (i, m) in ["a", "b", "c"].iter().enumerate() {
            z.insert(m.as_bytes(), i as f64 * 1.5 - 1.0, lim);
        }
        let mut l = List::new();
        for i in 0..2000 {
            l.push_back(format!("element-{i}").as_bytes());
        }
        let mut s = Stream::new();
        for i in 1..=250u64 {
            s.append(
                StreamId::new(i, 0),
                &[b"f", b"v", b"n", format!("{i}").as_bytes()],
            );
        }
        s.append(StreamId::new(300, 0), &[b"other", b"x"]);
        for v in [
            Value::ZSet(Box::new(z)),
            Value::List(Box::new(l)),
            Value::Stream(Box::new(s)),
        ] {
            let p = encode::dump_payload(
                kiln_store::entry::ValueRef::Other(&v),
                &encode::WriteOptions::default(),
            );
            let back = crate::rdb::restore_payload(&p, Limits::default()).unwrap();
            assert_eq!(back, v);
        }
    }

    #[test]
    fn stream_nodes_check_their_counts() {
        let mut w = listpack::Writer::new();
        for v in [1, 0, 1] {
            w.push_int(v);
        }
        w.push_str(b"f");
        w.push_int(0);
        // flags, ms, seq, value, lp-count
        for v in [2, 0, 0] {
            w.push_int(v);
        }
        w.push_str(b"v");
        w.push_int(4);
        let lp = w.finish();
        let e = parse_stream_node(&lp, StreamId::new(5, 0)).unwrap();
        assert_eq!(
            e,
            vec![(
                StreamId::new(5, 0),
                false,
                vec![b"f".to_vec(), b"v".to_vec()]
            )]
        );
    }
}
