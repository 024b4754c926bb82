//! `DEBUG OBJECT`: Redis's low-level description of a value, with the sizes Redis's RDB
//! and listpack encodings would give it.

use std::fmt::Write as _;

use crate::command::Ctx;
use crate::error::{CmdResult, E, NO_SUCH_KEY};
use crate::storage::entry::{Entry, ValueRef, META_UNSHARED};
use crate::storage::value::Value;
use crate::util::parse_i64;

/// Bytes Redis's RDB encoding uses for a length.
fn rdb_len_size(n: usize) -> usize {
    match n {
        0..=63 => 1,
        64..=16383 => 2,
        _ if n as u64 <= u64::from(u32::MAX) => 5,
        _ => 9,
    }
}

/// Bytes of the RDB integer encoding of `v`, if it has one (8, 16 or 32 bits).
fn rdb_int_size(v: i64) -> Option<usize> {
    if i8::try_from(v).is_ok() {
        Some(2)
    } else if i16::try_from(v).is_ok() {
        Some(3)
    } else if i32::try_from(v).is_ok() {
        Some(5)
    } else {
        None
    }
}

/// The RDB-serialized size of a string value (DEBUG OBJECT's `serializedlength`): integer
/// encodings as Redis picks them, else length prefix plus bytes. Redis LZF-compresses
/// strings over 20 bytes when `rdbcompression` is on; that is not modelled, so such
/// strings report their uncompressed size.
fn serialized_len(s: &[u8], int_encoded: bool) -> usize {
    if int_encoded || s.len() <= 11 {
        if let Some(n) = parse_i64(s).and_then(rdb_int_size) {
            return n;
        }
    }
    rdb_len_size(s.len()) + s.len()
}

/// Bytes of one listpack entry holding `s` (encoding header + data + back-length), as
/// Redis lays it out: integer-looking strings take the smallest integer encoding.
fn listpack_entry_len(s: &[u8]) -> usize {
    let body = match parse_i64(s) {
        Some(0..=127) => 1,
        Some(-4096..=4095) => 2,
        Some(v) if i16::try_from(v).is_ok() => 3,
        Some(-8_388_608..=8_388_607) => 4,
        Some(v) if i32::try_from(v).is_ok() => 5,
        Some(_) => 9,
        None if s.len() < 64 => 1 + s.len(),
        None if s.len() < 4096 => 2 + s.len(),
        None => 5 + s.len(),
    };
    body + crate::rdb::listpack::backlen_size(body)
}

/// Bytes of an empty listpack: 4-byte total size, 2-byte count, end marker.
const LISTPACK_EMPTY: usize = 7;

/// How Redis 7.0 writes a sorted-set score into a listpack: integral values of moderate
/// size (under 2^52) as integers, the rest like `%.17g`.
fn listpack_score(score: f64) -> String {
    if score.is_finite()
        && score != 0.0
        && score.fract() == 0.0
        && score.abs() < 4_503_599_627_370_496.0
    {
        (score as i64).to_string()
    } else {
        crate::util::fmt_g17(score)
    }
}

/// A list's quicklist layout as Redis would build it by appending the elements in order:
/// (node count, total listpack bytes), nodes bounded by `list-max-listpack-size` (`fill`:
/// negative = a byte limit of 4 KiB << (-fill - 1), positive = an element count, still
/// capped at 8 KiB). Each node's listpack is serialized on its own.
fn quicklist_nodes(l: &crate::storage::List, fill: i64) -> Vec<usize> {
    const SAFETY_LIMIT: usize = 8192;
    let fill = fill.clamp(-5, (1 << 15) - 1);
    let mut nodes = Vec::new();
    let (mut sz, mut count) = (LISTPACK_EMPTY, 0i64);
    for e in l.iter() {
        // Redis sizes the candidate from the raw length plus worst-case headers.
        let overhead = if e.len() < 254 { 1 } else { 5 }
            + match e.len() {
                0..=63 => 1,
                64..=16_383 => 2,
                _ => 5,
            };
        let new_sz = sz + e.len() + overhead;
        let fits = if fill < 0 {
            new_sz <= 4096 << (-fill - 1)
        } else {
            new_sz <= SAFETY_LIMIT && count < fill
        };
        if count > 0 && !fits {
            nodes.push(sz);
            (sz, count) = (LISTPACK_EMPTY, 0);
        }
        sz += listpack_entry_len(&e);
        count += 1;
    }
    if count > 0 {
        nodes.push(sz);
    }
    nodes
}

/// RDB bytes of a blob (a listpack or intset) saved as a raw string.
fn blob_len(n: usize) -> usize {
    rdb_len_size(n) + n
}

/// The RDB-serialized size of a collection (DEBUG OBJECT's `serializedlength`): compact
/// encodings are saved as one blob, the others element by element. Like strings, blobs
/// are counted uncompressed (exact when `rdbcompression` is off), and lists are assumed to
/// have the node layout that appending their elements in order gives.
fn collection_serialized_len(v: &Value, list_fill: i64) -> usize {
    match v {
        Value::Str(s) => serialized_len(s, false),
        Value::List(l) => {
            let nodes = quicklist_nodes(l, list_fill);
            // Node count, then per node its container kind and its listpack.
            rdb_len_size(nodes.len()) + nodes.iter().map(|&n| 1 + blob_len(n)).sum::<usize>()
        }
        Value::Hash(h) if h.encoding() == "listpack" => blob_len(
            LISTPACK_EMPTY
                + h.iter()
                    .map(|(f, v)| listpack_entry_len(f) + listpack_entry_len(v))
                    .sum::<usize>(),
        ),
        Value::Hash(h) => {
            rdb_len_size(h.len())
                + h.iter()
                    .map(|(f, v)| serialized_len(f, false) + serialized_len(v, false))
                    .sum::<usize>()
        }
        Value::Set(s) if s.encoding() == "intset" => {
            // 8-byte header, then every member at the width the widest one needs.
            let width = s
                .iter()
                .filter_map(|m| parse_i64(&m))
                .map(|v| {
                    if i16::try_from(v).is_ok() {
                        2
                    } else if i32::try_from(v).is_ok() {
                        4
                    } else {
                        8
                    }
                })
                .max()
                .unwrap_or(2);
            blob_len(8 + width * s.len())
        }
        Value::Set(s) => {
            rdb_len_size(s.len()) + s.iter().map(|m| serialized_len(&m, false)).sum::<usize>()
        }
        Value::ZSet(z) if z.encoding() == "listpack" => blob_len(
            LISTPACK_EMPTY
                + z.iter()
                    .map(|(m, score)| {
                        listpack_entry_len(m) + listpack_entry_len(listpack_score(score).as_bytes())
                    })
                    .sum::<usize>(),
        ),
        // Skiplist members are saved with their scores as 8-byte binary doubles.
        Value::ZSet(z) => {
            rdb_len_size(z.len())
                + z.iter()
                    .map(|(m, _)| serialized_len(m, false) + 8)
                    .sum::<usize>()
        }
        // Approximated by the in-memory size until streams model their RDB layout.
        Value::Stream(s) => s.heap_size(),
    }
}

/// `DEBUG OBJECT key`: Redis's low-level description of a value, even a logically expired
/// one. O(1).
pub(super) fn debug_object(cx: &mut Ctx, key: &[u8]) -> CmdResult {
    let shared_ints = cx.server.memory.shares_integers();
    let (list_fill, list_compress) = {
        let c = cx.server.config.read();
        (
            c.get_i64("list-max-listpack-size"),
            c.get_u64("list-compress-depth"),
        )
    };
    let now = cx.now;
    let (sh, h, out) = cx.shard_out(key)?;
    let e = sh.peek(h, key).ok_or(E(NO_SUCH_KEY))?;
    let encoding = e.encoding();
    let value: &[u8] = e.as_str().unwrap_or_default();
    // Redis shares the objects of the integers 0..9999, whose refcount reads as INT_MAX.
    let shared = shared_ints
        && encoding == "int"
        && e.meta() & META_UNSHARED == 0
        && parse_i64(value).is_some_and(|v| (0..10_000).contains(&v));
    let serialized = match e.value() {
        ValueRef::Str(s) => serialized_len(s, encoding == "int"),
        ValueRef::Other(Value::Str(s)) => serialized_len(s, encoding == "int"),
        ValueRef::Other(v) => collection_serialized_len(v, list_fill),
    };
    let mut text = format!(
        "Value at:{:p} refcount:{} encoding:{encoding} serializedlength:{serialized} lru:{} lru_seconds_idle:{}",
        e as *const Entry,
        if shared { i32::MAX } else { 1 },
        e.lru(),
        crate::clock::idle_seconds(e.lru(), now),
    );
    // Lists add their quicklist's shape (modelled as in `quicklist_nodes`).
    if let ValueRef::Other(Value::List(l)) = e.value() {
        let nodes = quicklist_nodes(l, list_fill);
        let _ = write!(
            text,
            " ql_nodes:{} ql_avg_node:{:.2} ql_listpack_max:{} ql_compressed:{} ql_uncompressed_size:{}",
            nodes.len(),
            l.len() as f64 / nodes.len().max(1) as f64,
            list_fill.clamp(-5, (1 << 15) - 1),
            u8::from(list_compress != 0),
            nodes.iter().sum::<usize>(),
        );
    }
    out.simple(&text);
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn listpack_entries_take_redis_back_lengths_at_the_boundaries() {
        // A long string's entry is 5 header bytes and its data; at 16,383 bytes of both
        // the back-length takes 3 bytes, as Redis's lpEncodeBacklen gives it.
        assert_eq!(listpack_entry_len(&vec![b'a'; 16_377]), 16_382 + 2);
        assert_eq!(listpack_entry_len(&vec![b'a'; 16_378]), 16_383 + 3);
        assert_eq!(listpack_entry_len(&vec![b'a'; 2_097_146]), 2_097_151 + 4);
    }
    use super::*;

    #[test]
    fn serialized_lengths_match_redis() {
        // (value, int encoded, what Redis 7.0 reports)
        for (v, int, n) in [
            (&b"1"[..], true, 2),
            (b"200", true, 3),
            (b"-200", true, 3),
            (b"100000", true, 5),
            (b"3000000000", true, 11),
            (b"-9223372036854775808", true, 21),
            (b"12345678901", true, 12),
            (b"hello", false, 6),
            (b"0123", false, 5),
            (b"", false, 1),
            (b" 1", false, 3),
            (b"aaaaaaaaaaaaaaaaaaaa", false, 21),
        ] {
            assert_eq!(
                serialized_len(v, int),
                n,
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        assert_eq!(rdb_len_size(16383), 2);
        assert_eq!(rdb_len_size(16384), 5);
    }
}
