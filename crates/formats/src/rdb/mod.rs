//! The RDB format: Redis's snapshot file, also the body of DUMP payloads and of the
//! snapshot a primary sends its replicas.
//!
//! A file is `REDIS` and a 4-digit version, then a sequence of opcodes and key records, then
//! the EOF opcode and a CRC-64 of everything before it (zero when the writer had
//! `rdbchecksum no`). Opcodes: AUX fields (`redis-ver`, `ctime`, ...), SELECTDB and RESIZEDB
//! before each database's keys, and before a key its optional expiry (EXPIRETIME_MS, or the
//! old EXPIRETIME in seconds) and access data (IDLE, FREQ). A key record is a type byte, the
//! key as a string, and the value in the encoding the type byte names. Lengths use a
//! variable-size encoding; strings may be stored as small integers or LZF-compressed.
//!
//! * Writing ([`encode`]): version 10, which Redis 7.0 and later load, with the encodings
//!   Redis 7.0 writes for the same in-memory encodings (listpacks for small hashes and
//!   sorted sets, quicklist nodes for lists, intsets, stream listpacks with consumer
//!   groups). Packed blobs are built exactly as Redis builds them, so a DUMP of a small
//!   value is byte-identical to Redis's whenever LZF does not kick in (see [`lzf`]).
//! * Reading ([`decode`]): every version from 1 to 12 (Redis 7.4), every type and encoding
//!   those versions write, including the ones Redis stopped writing (zipmap, ziplist,
//!   quicklist with ziplist nodes) and the 7.2 ones (set listpacks, stream listpacks 3).
//!   Redis 7.4's hashes with field expiration and module values are refused with a clear
//!   error. Every length is checked against the data actually present and every packed
//!   blob is validated in full before use, so a corrupt, truncated or hostile input is an
//!   [`RdbError`] naming the offset and the problem: never a panic, never garbage in the
//!   keyspace, never an allocation sized by an unchecked length.
//!
//! This is the codec only: bytes to values and back. Feeding a stream into a running
//! server's keyspace (threads, locks, the server's thresholds) is the server's `rdb` module.
//! [`dump_payload`] and [`restore_payload`] are the DUMP and RESTORE payloads;
//! [`encode_functions_payload`] and [`decode_functions_payload`] those of FUNCTION DUMP and
//! FUNCTION RESTORE. Function libraries travel as their code (`#!lua name=...` and the
//! rest): one FUNCTION2 record per library, after the AUX fields and before the first
//! database, as Redis 7.0 writes them.

pub mod crc;
pub mod decode;
pub mod encode;
pub mod intset;
pub mod listpack;
pub mod lzf;
pub mod ziplist;

use std::fmt;

use kiln_store::{hash, zset, Value};

pub use decode::{Reader, Record};
pub use encode::{
    dump_payload, encode_functions_payload, encode_functions_payload_with, write_function,
    write_header, write_object, write_record, write_record_with, write_resize_db, write_select_db,
    AccessData, AuxValue, FileWriter, WriteOptions,
};

/// The version Kiln writes: what Redis 7.0 writes, so a Redis 7.0 can load Kiln's files.
pub const RDB_VERSION: u16 = 10;
/// The newest version Kiln reads (Redis 7.4).
pub const MAX_LOAD_VERSION: u16 = 12;

/// Opcodes (the byte before a record that is not a key).
pub mod opcode {
    /// Redis 7.4 cluster slot sizes: three lengths, informational.
    pub const SLOT_INFO: u8 = 244;
    /// A function library (Redis 7.0 GA and later): one string, its code.
    pub const FUNCTION2: u8 = 245;
    /// Functions in the format of Redis 7.0's release candidates.
    pub const FUNCTION_PRE_GA: u8 = 246;
    /// Module auxiliary data.
    pub const MODULE_AUX: u8 = 247;
    /// LRU idle time of the next key, in seconds.
    pub const IDLE: u8 = 248;
    /// LFU frequency of the next key, one byte.
    pub const FREQ: u8 = 249;
    /// An auxiliary field: two strings.
    pub const AUX: u8 = 250;
    /// Hash table size hints for the database: two lengths.
    pub const RESIZEDB: u8 = 251;
    /// Expiry of the next key, unix milliseconds, u64 LE.
    pub const EXPIRETIME_MS: u8 = 252;
    /// Expiry of the next key, unix seconds, u32 LE (RDB before version 3).
    pub const EXPIRETIME: u8 = 253;
    /// The database the following keys belong to: one length.
    pub const SELECTDB: u8 = 254;
    /// End of the file; a CRC-64 follows (version 5 and later).
    pub const EOF: u8 = 255;
}

/// Value type bytes.
pub mod types {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE_PRE_GA: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
    /// Redis 7.4 hashes with field expiration (22 and 23 are their pre-release forms).
    pub const HASH_METADATA_PRE_GA: u8 = 22;
    pub const HASH_LISTPACK_EX_PRE_GA: u8 = 23;
    pub const HASH_METADATA: u8 = 24;
    pub const HASH_LISTPACK_EX: u8 = 25;
}

/// Why an RDB stream or payload could not be read: where, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdbError {
    /// Byte offset from the start of the stream (of the item that was being read).
    pub offset: u64,
    /// What was wrong.
    pub msg: String,
    /// An I/O error of the underlying reader rather than bad data.
    pub io: bool,
}

impl RdbError {
    /// Bad data at `offset`.
    pub fn corrupt(offset: u64, msg: impl Into<String>) -> Self {
        Self {
            offset,
            msg: msg.into(),
            io: false,
        }
    }

    /// The reader failed at `offset`.
    pub fn io(offset: u64, e: &std::io::Error) -> Self {
        Self {
            offset,
            msg: e.to_string(),
            io: true,
        }
    }
}

impl fmt::Display for RdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.io {
            write!(f, "RDB read error at offset {}: {}", self.offset, self.msg)
        } else {
            write!(f, "RDB corrupt at offset {}: {}", self.offset, self.msg)
        }
    }
}

impl std::error::Error for RdbError {}

/// The encoding thresholds values are built with (the server's `*-max-listpack-*`
/// settings), so loaded collections get the encodings Redis would give them.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `hash-max-listpack-entries` / `-value`.
    pub hash: hash::Limits,
    /// `zset-max-listpack-entries` / `-value`.
    pub zset: zset::Limits,
    /// `set-max-intset-entries`.
    pub max_intset: usize,
    /// `list-max-listpack-size`: how the writer splits lists into quicklist nodes.
    pub list_fill: i64,
}

impl Default for Limits {
    /// Redis's defaults.
    fn default() -> Self {
        Self {
            hash: hash::Limits {
                entries: 512,
                value: 64,
            },
            zset: zset::Limits {
                entries: 128,
                value: 64,
            },
            max_intset: 512,
            list_fill: -2,
        }
    }
}

/// Why a RESTORE payload was refused: the two errors Redis distinguishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// Too short, a newer RDB version than Kiln reads, or a checksum mismatch.
    VersionOrChecksum,
    /// The value could not be decoded (with the reason, for the log).
    BadData(RdbError),
}

/// Decodes a DUMP payload (`type, value, RDB version (u16 LE), CRC-64 (u64 LE)`) into a
/// value, building it with `limits`. The version must be at most [`MAX_LOAD_VERSION`] and
/// the CRC must match (a zero CRC is not accepted: Redis always writes one in payloads).
/// The value is validated as deeply as a file is; an empty collection is bad data.
pub fn restore_payload(payload: &[u8], limits: Limits) -> Result<Value, PayloadError> {
    restore_payload_checked(payload, limits, true)
}

/// [`restore_payload`], with the CRC checked only when `verify_crc` (Redis's DEBUG
/// SET-SKIP-CHECKSUM-VALIDATION turns it off; the version is always checked).
pub fn restore_payload_checked(
    payload: &[u8],
    limits: Limits,
    verify_crc: bool,
) -> Result<Value, PayloadError> {
    let version = payload_version(payload, verify_crc)?;
    // The value is read from the whole payload, footer included, as Redis reads it: a
    // value may run into the footer bytes, and bytes after the value are ignored.
    decode::payload_value(payload, version, limits).map_err(PayloadError::BadData)
}

/// The RDB version in the footer of a DUMP or FUNCTION DUMP payload (`RDB version (u16
/// LE), CRC-64 of everything before the CRC (u64 LE)`), once the footer is checked: at
/// least 10 bytes, a version Kiln reads, a matching CRC (zero is not accepted).
fn payload_version(payload: &[u8], verify_crc: bool) -> Result<u16, PayloadError> {
    let n = payload.len();
    if n < 10 {
        return Err(PayloadError::VersionOrChecksum);
    }
    let version = u16::from_le_bytes([payload[n - 10], payload[n - 9]]);
    if version > MAX_LOAD_VERSION {
        return Err(PayloadError::VersionOrChecksum);
    }
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&payload[n - 8..]);
    if verify_crc && crc::crc64(&payload[..n - 8]) != u64::from_le_bytes(crc) {
        return Err(PayloadError::VersionOrChecksum);
    }
    Ok(version)
}

/// Decodes a FUNCTION DUMP payload (one FUNCTION2 record per library, then the DUMP footer:
/// RDB version (u16 LE) and CRC-64 (u64 LE)) into the libraries' code, in payload order.
/// Checks the footer as [`restore_payload`] does: `Err(PayloadError::VersionOrChecksum)`
/// is Redis's `ERR DUMP payload version or checksum are wrong`. A record that is not a
/// library, or one that cannot be read, is `Err(PayloadError::BadData(e))` where `e.msg`
/// is the text of Redis's error reply (`given type is not a function`, `Failed loading
/// library payload`, ...; reply `ERR <msg>`). Libraries in the format of Redis 7.0's
/// release candidates (opcode 246) are read as Redis 7.0 reads them (see
/// [`Record::Function`]). No payload-level check of the code itself: compiling it, and
/// refusing names that exist, is the scripting engine's.
pub fn decode_functions_payload(payload: &[u8]) -> Result<Vec<Vec<u8>>, PayloadError> {
    let version = payload_version(payload, true)?;
    decode::payload_functions(payload, version).map_err(PayloadError::BadData)
}

#[cfg(test)]
mod function_tests {
    use super::*;

    /// `FUNCTION DUMP` of redis-server 7.0.15 holding one library (`mylib`, 81 bytes of
    /// code: too little gain for LZF, so stored plain).
    const ONE: &[u8] = include_bytes!("../../testdata/redis-7.0-function-dump-one.bin");
    /// The same server with a second library (`otherlib`, first in its dictionary order),
    /// which Redis stores LZF-compressed.
    const TWO: &[u8] = include_bytes!("../../testdata/redis-7.0-function-dump-two.bin");
    /// The same libraries dumped under `rdbcompression no` (after a reload: `mylib` first).
    const TWO_PLAIN: &[u8] =
        include_bytes!("../../testdata/redis-7.0-function-dump-two-nocompress.bin");

    const MYLIB: &[u8] =
        b"#!lua name=mylib\nredis.register_function('f1', function(keys, args) return 1 end)";
    const OTHERLIB: &[u8] = b"#!lua name=otherlib\nredis.register_function{function_name='f2', callback=function(keys, args) return redis.call('GET', keys[1]) end, flags={'no-writes'}}";

    /// Body bytes with a valid footer of `version`.
    fn with_footer(body: &[u8], version: u16) -> Vec<u8> {
        let mut p = body.to_vec();
        p.extend_from_slice(&version.to_le_bytes());
        let c = crc::crc64(&p);
        p.extend_from_slice(&c.to_le_bytes());
        p
    }

    fn bad(payload: &[u8]) -> String {
        match decode_functions_payload(payload) {
            Err(PayloadError::BadData(e)) => e.msg,
            other => panic!("expected bad data, got {other:?}"),
        }
    }

    #[test]
    fn redis_payloads_decode_to_the_libraries_code() {
        assert_eq!(decode_functions_payload(ONE).unwrap(), vec![MYLIB.to_vec()]);
        let two = vec![OTHERLIB.to_vec(), MYLIB.to_vec()];
        assert_eq!(decode_functions_payload(TWO).unwrap(), two);
        let plain = vec![MYLIB.to_vec(), OTHERLIB.to_vec()];
        assert_eq!(decode_functions_payload(TWO_PLAIN).unwrap(), plain);
    }

    #[test]
    fn encoded_payloads_are_byte_identical_to_redis() {
        assert_eq!(encode_functions_payload(&[MYLIB.to_vec()]), ONE);
        let plain = vec![MYLIB.to_vec(), OTHERLIB.to_vec()];
        assert_eq!(encode_functions_payload_with(&plain, false), TWO_PLAIN);
        let two = vec![OTHERLIB.to_vec(), MYLIB.to_vec()];
        // With LZF, Kiln's compressor may choose other matches than Redis's: the payload
        // differs at most in the compressed bytes, and reads back the same.
        let ours = encode_functions_payload(&two);
        assert_eq!(ours[0], opcode::FUNCTION2);
        assert_eq!(
            ours[1], 0xC3,
            "the long library is LZF-compressed, as Redis does"
        );
        assert_eq!(decode_functions_payload(&ours).unwrap(), two);
        assert_eq!(
            decode_functions_payload(&encode_functions_payload(&[])).unwrap(),
            Vec::<Vec<u8>>::new()
        );
    }

    #[test]
    fn footers_are_checked_like_restore() {
        let vc = Err(PayloadError::VersionOrChecksum);
        assert_eq!(decode_functions_payload(&[]), vc);
        assert_eq!(decode_functions_payload(&ONE[..9]), vc);
        let mut flipped = ONE.to_vec();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(decode_functions_payload(&flipped), vc);
        let body = &ONE[..ONE.len() - 10];
        assert_eq!(
            decode_functions_payload(&with_footer(body, MAX_LOAD_VERSION + 1)),
            vc
        );
        // Older versions are accepted, as Redis accepts them.
        assert_eq!(
            decode_functions_payload(&with_footer(body, 9)).unwrap(),
            vec![MYLIB.to_vec()]
        );
        // An empty payload (no libraries) is valid.
        assert_eq!(
            decode_functions_payload(&with_footer(b"", 10)).unwrap(),
            Vec::<Vec<u8>>::new()
        );
    }

    #[test]
    fn bad_records_get_redis_error_text() {
        // Each checked against redis-server 7.0.15's FUNCTION RESTORE reply.
        assert_eq!(
            bad(&with_footer(b"\x00\x03foo\x03bar", 10)),
            "given type is not a function"
        );
        assert_eq!(
            bad(&with_footer(b"\xfa\x01a\x01b", 10)),
            "given type is not a function"
        );
        assert_eq!(
            bad(&with_footer(b"\xff", 10)),
            "given type is not a function"
        );
        // A record cut short, running into the footer: its string cannot be read.
        let body = &ONE[..ONE.len() - 10];
        let mut extra = body.to_vec();
        extra.push(opcode::FUNCTION2);
        assert_eq!(
            bad(&with_footer(&extra, 10)),
            "Failed loading library payload"
        );
        // A truncated record reads into the footer and yields what it reads, as in
        // Redis (whose engine then fails to compile it).
        let cut = decode_functions_payload(&with_footer(&body[..body.len() - 5], 10)).unwrap();
        assert_eq!(cut.len(), 1);
        assert!(cut[0].starts_with(&MYLIB[..MYLIB.len() - 5]));
    }

    /// A library in the release-candidate format: name, engine, description indicator and
    /// description, code without its first line (redis-server 7.0.15 loads these from
    /// files and FUNCTION RESTORE alike, and dumps them back as `#!LUA name=...`).
    fn pre_ga(name: &[u8], desc: Option<&[u8]>, blob: &[u8]) -> Vec<u8> {
        let mut r = vec![opcode::FUNCTION_PRE_GA];
        encode::write_string(&mut r, name, false);
        encode::write_string(&mut r, b"LUA", false);
        match desc {
            Some(d) => {
                encode::write_len(&mut r, 1);
                encode::write_string(&mut r, d, false);
            }
            None => encode::write_len(&mut r, 0),
        }
        encode::write_string(&mut r, blob, true);
        r
    }

    #[test]
    fn pre_release_libraries_read_as_redis_7_0_rebuilds_them() {
        let blob = b"redis.register_function('rc', function(keys, args) return 7 end)";
        let want =
            b"#!LUA name=rclib\nredis.register_function('rc', function(keys, args) return 7 end)"
                .to_vec();
        for desc in [None, Some(&b"a description"[..])] {
            let p = with_footer(&pre_ga(b"rclib", desc, blob), 10);
            assert_eq!(decode_functions_payload(&p).unwrap(), vec![want.clone()]);
            // And in a file, between the AUX fields and the keys.
            let mut f = b"REDIS0010".to_vec();
            f.extend_from_slice(&pre_ga(b"rclib", desc, blob));
            f.extend_from_slice(b"\xfe\x00\x00\x03foo\x03bar\xff");
            let c = crc::crc64(&f);
            f.extend_from_slice(&c.to_le_bytes());
            let mut rd = Reader::new(&f[..]).unwrap();
            assert_eq!(rd.next_record().unwrap(), Record::Function(want.clone()));
            assert_eq!(rd.next_record().unwrap(), Record::SelectDb(0));
            assert!(matches!(rd.next_record().unwrap(), Record::Key { .. }));
            assert_eq!(rd.next_record().unwrap(), Record::End);
        }
        // Redis's message for each part that cannot be read (the data ends there).
        let cases: [(&[u8], &str); 5] = [
            (b"", "Failed loading library name"),
            (b"\x05rclib", "Failed loading engine name"),
            (
                b"\x05rclib\x03LUA",
                "Failed loading library description indicator",
            ),
            (
                b"\x05rclib\x03LUA\x01",
                "Failed loading library description",
            ),
            (b"\x05rclib\x03LUA\x00", "Failed loading library blob"),
        ];
        for (rest, msg) in cases {
            let mut f = b"REDIS0010\xf6".to_vec();
            f.extend_from_slice(rest);
            let e = Reader::new(&f[..]).unwrap().next_record().unwrap_err();
            assert!(e.msg.starts_with(msg), "{e} for {rest:?}");
        }
        // In a payload, the name reads into the footer: its first byte (the version's low
        // byte, 10) claims 10 bytes where 9 are left.
        assert_eq!(
            bad(&with_footer(b"\xf6", 10)),
            "Failed loading library name"
        );
    }

    #[test]
    fn file_records_round_trip_and_sit_before_the_databases() {
        let mut f = Vec::new();
        write_header(&mut f, &[("redis-ver", AuxValue::Str(b"7.0.15"))]);
        for (code, compress) in [(MYLIB, false), (OTHERLIB, true), (&b"12"[..], true)] {
            write_function(&mut f, code, compress);
        }
        write_select_db(&mut f, 0);
        f.push(opcode::EOF);
        let c = crc::crc64(&f);
        f.extend_from_slice(&c.to_le_bytes());
        let mut rd = Reader::new(&f[..]).unwrap();
        assert!(matches!(rd.next_record().unwrap(), Record::Aux(..)));
        for code in [MYLIB, OTHERLIB, b"12"] {
            assert_eq!(rd.next_record().unwrap(), Record::Function(code.to_vec()));
        }
        assert_eq!(rd.next_record().unwrap(), Record::SelectDb(0));
        assert_eq!(rd.next_record().unwrap(), Record::End);

        // Truncated inside a library: an error naming the part and the offset, no panic.
        let at = f.iter().position(|&b| b == opcode::FUNCTION2).unwrap();
        for cut in at + 1..at + 40 {
            let mut rd = Reader::new(&f[..cut]).unwrap();
            rd.next_record().unwrap();
            let e = rd.next_record().unwrap_err();
            assert!(e.msg.starts_with("Failed loading library payload"), "{e}");
        }
        // A claimed length far beyond the data allocates nothing of that size.
        let mut huge = b"REDIS0010".to_vec();
        huge.push(opcode::FUNCTION2);
        huge.push(0x81);
        huge.extend_from_slice(&(u64::MAX / 2).to_be_bytes());
        assert!(Reader::new(&huge[..]).unwrap().next_record().is_err());
    }
}
