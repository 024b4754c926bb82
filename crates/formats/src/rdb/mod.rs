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
//! [`dump_payload`] and [`restore_payload`] are the DUMP and RESTORE payloads.

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
    dump_payload, write_header, write_object, write_record, write_record_with, write_resize_db,
    write_select_db, AuxValue, FileWriter, WriteOptions,
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

/// The LRU clock `secs` seconds before `lru` (24-bit, wrapping): the clock of a key last
/// used `secs` seconds ago (the IDLE opcode, RESTORE IDLETIME).
pub fn lru_before(lru: u32, secs: u64) -> u32 {
    let mask = u64::from(kiln_store::entry::LRU_MASK);
    ((u64::from(lru) + (mask + 1) - (secs & mask)) & mask) as u32
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
    if crc::crc64(&payload[..n - 8]) != u64::from_le_bytes(crc) {
        return Err(PayloadError::VersionOrChecksum);
    }
    // The value is read from the whole payload, footer included, as Redis reads it: a
    // value may run into the footer bytes, and bytes after the value are ignored.
    decode::payload_value(payload, version, limits).map_err(PayloadError::BadData)
}
