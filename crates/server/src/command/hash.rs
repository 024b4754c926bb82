//! The hash family: HSET, HSETNX, HMSET, HGET, HMGET, HDEL, HLEN, HSTRLEN, HEXISTS, HKEYS,
//! HVALS, HGETALL, HINCRBY, HINCRBYFLOAT, HRANDFIELD and HSCAN.
//!
//! Replies follow Redis 7.0 exactly, including which error wins when several apply:
//! HRANDFIELD validates its count before looking the key up, HSCAN its cursor before the key
//! and its options only once the key is found, and the increments parse their argument
//! before touching the key. Every write converts the hash from listpack to hashtable at the
//! moment Redis would (see `storage::hash`), so OBJECT ENCODING agrees too.
//!
//! Values are borrowed from the shard while the reply is written (`Ctx::shard_out`): the
//! read commands copy each field and value once, straight into the output buffer.

use std::sync::atomic::Ordering::Relaxed;

use rand::Rng;

use super::args::{int, parse_cursor};
use super::flags::*;
use super::{CommandSpec, Ctx, Keys};
use crate::error::{
    CmdResult, CommandError, E, HASH_NOT_FLOAT, HASH_NOT_INTEGER, INCR_NAN_OR_INF, LONG_RANGE,
    NAN_OR_INF, NOT_FLOAT, OUT_OF_RANGE, OVERFLOW, SYNTAX,
};
use crate::longdouble::LongDouble;
use crate::notify::{GENERIC, HASH};
use crate::reply::Out;
use crate::server::Server;
use crate::storage::entry::ValueRef;
use crate::storage::hash::{Limits, MAX_LEN};
use crate::storage::{Entry, Hash, Shard, Value};
use crate::util::{glob_match, parse_i64};

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "hset",
        -4,
        WRITE | DENYOOM | FAST,
        Keys::Range(1, 1, 1),
        hset,
    )
    .group("hash")
    .since("2.0.0")
    .summary("Sets one or more fields of a hash, creating the key if needed.")
    .complexity("O(1) for each field/value pair, so O(N) for N pairs.")
    .syntax("key field value [field value ...]"),
    CommandSpec::new(
        "hsetnx",
        4,
        WRITE | DENYOOM | FAST,
        Keys::Range(1, 1, 1),
        hsetnx,
    )
    .group("hash")
    .since("2.0.0")
    .summary("Sets a field of a hash only when the field is not there yet.")
    .complexity("O(1)")
    .syntax("key field value"),
    CommandSpec::new(
        "hmset",
        -4,
        WRITE | DENYOOM | FAST,
        Keys::Range(1, 1, 1),
        hset,
    )
    .group("hash")
    .since("2.0.0")
    .summary("Sets one or more fields of a hash (the older form of HSET, replying OK).")
    .complexity("O(N) where N is the number of fields being set.")
    .syntax("key field value [field value ...]"),
    CommandSpec::new("hget", 3, READONLY | FAST, Keys::Range(1, 1, 1), hget)
        .group("hash")
        .since("2.0.0")
        .summary("Returns the value of one field of a hash.")
        .complexity("O(1)")
        .syntax("key field"),
    CommandSpec::new("hmget", -3, READONLY | FAST, Keys::Range(1, 1, 1), hmget)
        .group("hash")
        .since("2.0.0")
        .summary("Returns the values of several fields of a hash.")
        .complexity("O(N) where N is the number of fields requested.")
        .syntax("key field [field ...]"),
    CommandSpec::new("hdel", -3, WRITE | FAST, Keys::Range(1, 1, 1), hdel)
        .group("hash")
        .since("2.0.0")
        .summary("Removes fields from a hash; the key goes away with its last field.")
        .complexity("O(N) where N is the number of fields to remove.")
        .syntax("key field [field ...]"),
    CommandSpec::new("hlen", 2, READONLY | FAST, Keys::Range(1, 1, 1), hlen)
        .group("hash")
        .since("2.0.0")
        .summary("Returns the number of fields of a hash.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new("hstrlen", 3, READONLY | FAST, Keys::Range(1, 1, 1), hstrlen)
        .group("hash")
        .since("3.2.0")
        .summary("Returns the length in bytes of the value of a hash field.")
        .complexity("O(1)")
        .syntax("key field"),
    CommandSpec::new("hexists", 3, READONLY | FAST, Keys::Range(1, 1, 1), hexists)
        .group("hash")
        .since("2.0.0")
        .summary("Tells whether a field exists in a hash.")
        .complexity("O(1)")
        .syntax("key field"),
    CommandSpec::new("hkeys", 2, READONLY, Keys::Range(1, 1, 1), hkeys)
        .group("hash")
        .since("2.0.0")
        .summary("Returns every field name of a hash.")
        .complexity("O(N) where N is the size of the hash.")
        .syntax("key"),
    CommandSpec::new("hvals", 2, READONLY, Keys::Range(1, 1, 1), hvals)
        .group("hash")
        .since("2.0.0")
        .summary("Returns every value of a hash.")
        .complexity("O(N) where N is the size of the hash.")
        .syntax("key"),
    CommandSpec::new("hgetall", 2, READONLY, Keys::Range(1, 1, 1), hgetall)
        .group("hash")
        .since("2.0.0")
        .summary("Returns every field and value of a hash.")
        .complexity("O(N) where N is the size of the hash.")
        .syntax("key"),
    CommandSpec::new(
        "hincrby",
        4,
        WRITE | DENYOOM | FAST,
        Keys::Range(1, 1, 1),
        hincrby,
    )
    .group("hash")
    .since("2.0.0")
    .summary("Adds an integer to the integer value of a hash field.")
    .complexity("O(1)")
    .syntax("key field increment"),
    CommandSpec::new(
        "hincrbyfloat",
        4,
        WRITE | DENYOOM | FAST,
        Keys::Range(1, 1, 1),
        hincrbyfloat,
    )
    .group("hash")
    .since("2.6.0")
    .summary("Adds a floating point number to the numeric value of a hash field.")
    .complexity("O(1)")
    .syntax("key field increment"),
    CommandSpec::new("hrandfield", -2, READONLY, Keys::Range(1, 1, 1), hrandfield)
        .group("hash")
        .since("6.2.0")
        .summary("Returns one or more random fields of a hash, optionally with their values.")
        .complexity("O(N) where N is the number of fields returned.")
        .syntax("key [count [WITHVALUES]]"),
    CommandSpec::new("hscan", -3, READONLY, Keys::Range(1, 1, 1), hscan)
        .group("hash")
        .since("2.8.0")
        .summary("Iterates over the fields and values of a hash, a page per call.")
        .complexity("O(1) per call, O(N) for a complete iteration.")
        .syntax("key cursor [MATCH pattern] [COUNT count]"),
];

/// Negative HRANDFIELD counts repeat fields, so the reply size is the client's choice;
/// beyond this many picks Kiln refuses rather than build an unbounded reply (Redis tries
/// and runs out of memory).
const RANDOM_REPLY_MAX: u64 = 1 << 24;

/// The listpack limits in force now (refreshed by CONFIG SET).
fn limits(cx: &Ctx) -> Limits {
    let e = &cx.server.hot.encoding;
    let clamp = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    Limits {
        entries: clamp(e.hash_max_listpack_entries.load(Relaxed)),
        value: clamp(e.hash_max_listpack_value.load(Relaxed)),
    }
}

/// The hash in an entry, or WRONGTYPE.
fn as_hash(e: &Entry) -> Result<&Hash, CommandError> {
    match e.value() {
        ValueRef::Other(Value::Hash(h)) => Ok(h),
        _ => Err(CommandError::wrong_type()),
    }
}

/// The hash in an entry for writing, or WRONGTYPE (checked first: `value_mut` would move an
/// inline string to the heap).
fn as_hash_mut(e: &mut Entry) -> Result<&mut Hash, CommandError> {
    as_hash(e)?;
    match e.value_mut() {
        Value::Hash(h) => Ok(h),
        _ => Err(CommandError::wrong_type()),
    }
}

/// Looks a hash up for a command that reads it (Redis's `lookupKeyRead`): lazy expiry, LRU
/// touch, a keyspace hit or miss (counted even when the type then turns out wrong), and
/// WRONGTYPE for another type.
fn read<'s>(
    server: &Server,
    sh: &'s mut Shard,
    h: u64,
    key: &[u8],
    now: u64,
    lru: u32,
) -> Result<Option<&'s Hash>, CommandError> {
    match super::lookup_read(server, sh, h, key, now, lru) {
        Some(e) => as_hash(e).map(Some),
        None => Ok(None),
    }
}

/// Refuses a write that could take the hash past [`MAX_LEN`] fields.
fn check_room(h: &Hash, adding: usize) -> CmdResult {
    if h.len().saturating_add(adding) > MAX_LEN {
        return Err(CommandError::err("hash is full"));
    }
    Ok(())
}

/// Runs `write` on the hash at `key`, creating an empty one first when the key is missing
/// (Redis's `hashTypeLookupWriteOrCreate`); the key is stored only if the write succeeded
/// and left it non-empty, so a failed write never leaves an empty hash behind.
fn write_or_create<R>(
    cx: &mut Ctx,
    key: &[u8],
    write: impl FnOnce(&mut Hash) -> Result<R, CommandError>,
) -> Result<R, CommandError> {
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h) = cx.shard(key)?;
    if let Some(e) = sh.get(h, key, now) {
        e.touch(lru);
        return write(as_hash_mut(e)?);
    }
    let mut hash = Hash::new();
    let r = write(&mut hash)?;
    if !hash.is_empty() {
        sh.insert(h, Entry::new(key, Value::Hash(Box::new(hash)), lru));
    }
    Ok(r)
}

// --- Writes ----------------------------------------------------------------------------

/// `HSET key field value [field value ...]` / `HMSET ...`: sets every pair, in order (a
/// repeated field keeps its last value). HSET replies the number of new fields, HMSET OK.
/// O(1) per pair (O(N) per pair while the hash is a listpack of N fields).
fn hset(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() % 2 == 1 {
        return Err(CommandError::arity(
            &String::from_utf8_lossy(args[0]).to_ascii_lowercase(),
        ));
    }
    let lim = limits(cx);
    let pairs = &args[2..];
    let created = write_or_create(cx, args[1], |hash| {
        check_room(hash, pairs.len() / 2)?;
        hash.fit(pairs.iter().map(|a| a.len()), lim);
        Ok(pairs
            .chunks_exact(2)
            .filter(|p| hash.set(p[0], p[1], lim))
            .count())
    })?;
    if args[0].eq_ignore_ascii_case(b"hmset") {
        cx.out.ok();
    } else {
        cx.out.int(created as i64);
    }
    cx.dirty((pairs.len() / 2) as u64);
    cx.notify(HASH, "hset", args[1]);
    Ok(())
}

/// `HSETNX key field value`: sets the field only if it does not exist; replies 1 if it was
/// set, 0 if not. O(1).
fn hsetnx(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let lim = limits(cx);
    let (field, value) = (args[2], args[3]);
    let set = write_or_create(cx, args[1], |hash| {
        if hash.contains(field) {
            return Ok(false);
        }
        check_room(hash, 1)?;
        hash.fit([field.len(), value.len()], lim);
        hash.set(field, value, lim);
        Ok(true)
    })?;
    cx.out.int(i64::from(set));
    if set {
        cx.dirty(1);
        cx.notify(HASH, "hset", args[1]);
    }
    Ok(())
}

/// `HDEL key field [field ...]`: removes the fields, deleting the key with its last one;
/// replies how many were removed. O(N) in the number of fields.
fn hdel(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h) = cx.shard(key)?;
    let mut removed = 0;
    let mut deleted = false;
    if let Some(e) = sh.get(h, key, now) {
        e.touch(lru);
        let hash = as_hash_mut(e)?;
        for f in &args[2..] {
            if hash.remove(f) {
                removed += 1;
                if hash.is_empty() {
                    break;
                }
            }
        }
        if hash.is_empty() {
            sh.remove(h, key);
            deleted = true;
        }
    }
    cx.out.int(removed);
    cx.dirty(removed as u64);
    if removed > 0 {
        cx.notify(HASH, "hdel", key);
        if deleted {
            cx.notify(GENERIC, "del", key);
        }
    }
    Ok(())
}

/// `HINCRBY key field increment`: adds to the field's integer value (a missing field counts
/// as 0) and replies the result. O(1).
fn hincrby(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let incr = int(args[3])?;
    let lim = limits(cx);
    let field = args[2];
    let value = write_or_create(cx, args[1], |hash| {
        let old = match hash.get(field) {
            Some(v) => parse_i64(v).ok_or(E(HASH_NOT_INTEGER))?,
            None => {
                check_room(hash, 1)?;
                0
            }
        };
        let new = old.checked_add(incr).ok_or(E(OVERFLOW))?;
        hash.set(field, itoa::Buffer::new().format(new).as_bytes(), lim);
        Ok(new)
    })?;
    cx.out.int(value);
    cx.dirty(1);
    cx.notify(HASH, "hincrby", args[1]);
    Ok(())
}

/// `HINCRBYFLOAT key field increment`: adds to the field's numeric value in Redis's 80-bit
/// long double arithmetic and replies the result as text. O(1).
fn hincrbyfloat(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let incr = LongDouble::parse(args[3]).ok_or(E(NOT_FLOAT))?;
    if !incr.is_finite() {
        return Err(E(INCR_NAN_OR_INF));
    }
    let lim = limits(cx);
    let field = args[2];
    let text = write_or_create(cx, args[1], |hash| {
        let old = match hash.get(field) {
            Some(v) => LongDouble::parse(v).ok_or(E(HASH_NOT_FLOAT))?,
            None => {
                check_room(hash, 1)?;
                LongDouble::ZERO
            }
        };
        let sum = old + incr;
        if !sum.is_finite() {
            return Err(E(NAN_OR_INF));
        }
        let text = sum.to_human();
        hash.set(field, &text, lim);
        Ok(text)
    })?;
    cx.out.bulk(&text);
    cx.dirty(1);
    // Replicas get the result, not the increment (float formatting must not differ).
    cx.propagate(&[b"HSET", args[1], field, &text]);
    cx.notify(HASH, "hincrbyfloat", args[1]);
    Ok(())
}

// --- Reads -----------------------------------------------------------------------------

/// `HGET key field`: the value, or nil. O(1).
fn hget(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    match read(server, sh, h, key, now, lru)?.and_then(|hash| hash.get(args[2])) {
        Some(v) => out.bulk(v),
        None => out.null(),
    }
    Ok(())
}

/// `HMGET key field [field ...]`: each field's value or nil, in order. O(N) in the number
/// of fields.
fn hmget(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let hash = read(server, sh, h, key, now, lru)?;
    out.array(args.len() - 2);
    for f in &args[2..] {
        match hash.and_then(|hash| hash.get(f)) {
            Some(v) => out.bulk(v),
            None => out.null(),
        }
    }
    Ok(())
}

/// `HLEN key`: the number of fields (0 for a missing key). O(1).
fn hlen(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let n = read(server, sh, h, key, now, lru)?.map_or(0, Hash::len);
    out.int(n as i64);
    Ok(())
}

/// `HSTRLEN key field`: the length of the field's value (0 when missing). O(1).
fn hstrlen(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let n = read(server, sh, h, key, now, lru)?
        .and_then(|hash| hash.get(args[2]))
        .map_or(0, <[u8]>::len);
    out.int(n as i64);
    Ok(())
}

/// `HEXISTS key field`: 1 if the field exists, else 0. O(1).
fn hexists(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let found = read(server, sh, h, key, now, lru)?.is_some_and(|hash| hash.contains(args[2]));
    out.int(i64::from(found));
    Ok(())
}

/// What HKEYS, HVALS and HGETALL reply.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dump {
    Fields,
    Values,
    Both,
}

/// The body of HKEYS, HVALS and HGETALL: every field and/or value, in the hash's order (a
/// map for HGETALL in RESP3; an empty one for a missing key).
fn dump(cx: &mut Ctx, args: &[&[u8]], what: Dump) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let hash = read(server, sh, h, key, now, lru)?;
    let n = hash.map_or(0, Hash::len);
    if what == Dump::Both {
        out.map(n);
    } else {
        out.array(n);
    }
    for (f, v) in hash.into_iter().flat_map(Hash::iter) {
        if what != Dump::Values {
            out.bulk(f);
        }
        if what != Dump::Fields {
            out.bulk(v);
        }
    }
    Ok(())
}

/// `HKEYS key`: every field. O(N).
fn hkeys(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    dump(cx, args, Dump::Fields)
}

/// `HVALS key`: every value. O(N).
fn hvals(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    dump(cx, args, Dump::Values)
}

/// `HGETALL key`: every field and value. O(N).
fn hgetall(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    dump(cx, args, Dump::Both)
}

// --- HRANDFIELD ------------------------------------------------------------------------

/// `HRANDFIELD key [count [WITHVALUES]]`: without a count, one random field (nil for a
/// missing key). A positive count returns that many distinct fields (the whole hash when it
/// has no more); a negative one returns |count| independent picks, repeats allowed.
/// WITHVALUES adds each value (RESP3: a [field, value] pair per pick). O(N) in the reply.
fn hrandfield(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let with_count = if args.len() >= 3 {
        let l = int(args[2])?;
        if l == i64::MIN {
            return Err(E(LONG_RANGE));
        }
        let with_values = match args.len() {
            3 => false,
            4 if args[3].eq_ignore_ascii_case(b"withvalues") => true,
            _ => return Err(E(SYNTAX)),
        };
        // Redis doubles the count for the flat RESP2 reply and refuses what would overflow.
        if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
            return Err(E(OUT_OF_RANGE));
        }
        Some((l, with_values))
    } else {
        None
    };
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let hash = read(server, sh, h, key, now, lru)?;
    let Some((l, with_values)) = with_count else {
        match hash {
            Some(hash) if !hash.is_empty() => {
                let i = rand::thread_rng().gen_range(0..hash.len());
                out.bulk(hash.pair_at(i).map(|p| p.0).unwrap_or_default());
            }
            _ => out.null(),
        }
        return Ok(());
    };
    match hash {
        Some(hash) if l != 0 && !hash.is_empty() => {
            if l < 0 && l.unsigned_abs() > RANDOM_REPLY_MAX {
                return Err(E(OUT_OF_RANGE));
            }
            random_fields(out, hash, l, with_values);
        }
        _ => out.array(0),
    }
    Ok(())
}

/// Writes HRANDFIELD's reply for a non-zero count on an existing hash.
fn random_fields(out: &mut Out, hash: &Hash, l: i64, with_values: bool) {
    let size = hash.len();
    let count = l.unsigned_abs() as usize;
    // Distinct picks: at most the whole hash. Repeated picks: exactly |count|.
    let n = if l > 0 { count.min(size) } else { count };
    if with_values && !out.resp3 {
        out.array(n * 2);
    } else {
        out.array(n);
    }
    let emit = |out: &mut Out, (f, v): (&[u8], &[u8])| {
        if with_values && out.resp3 {
            out.array(2);
        }
        out.bulk(f);
        if with_values {
            out.bulk(v);
        }
    };
    if l > 0 && count >= size {
        // The whole hash, in its own order (a listpack's insertion order, as Redis).
        for p in hash.iter() {
            emit(out, p);
        }
        return;
    }
    let picker = hash.picker();
    let mut rng = rand::thread_rng();
    if l < 0 || count == 1 {
        for _ in 0..count {
            emit(out, picker.get(rng.gen_range(0..size)));
        }
        return;
    }
    let mut picks = rand::seq::index::sample(&mut rng, size, count).into_vec();
    if hash.is_pack() {
        // Redis returns distinct listpack picks in listpack order.
        picks.sort_unstable();
    }
    for i in picks {
        emit(out, picker.get(i));
    }
}

// --- HSCAN -----------------------------------------------------------------------------

/// `HSCAN key cursor [MATCH pattern] [COUNT count]`: about COUNT pairs (default 10) from the
/// cursor on, and the cursor to continue from (0 when done). A listpack hash is returned
/// whole in one call. MATCH filters fields after they are selected, so a page may be empty.
/// O(1) per call, O(N) for a complete iteration.
fn hscan(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let cursor = parse_cursor(args[2])?;
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(hash) = read(server, sh, h, key, now, lru)? else {
        out.raw(b"*2\r\n$1\r\n0\r\n*0\r\n");
        return Ok(());
    };
    // Options are checked only for an existing hash, as in Redis.
    let opts = super::args::scan_options(args, 3, false)?;
    let (count, pattern) = (opts.count, opts.pattern);
    let mut page: Vec<(&[u8], &[u8])> = Vec::new();
    let next = hash.scan(cursor, count, |f, v| {
        if pattern.is_none_or(|p| glob_match(p, f, false)) {
            page.push((f, v));
        }
    });
    out.array(2);
    out.bulk(itoa::Buffer::new().format(next).as_bytes());
    out.array(page.len() * 2);
    for (f, v) in page {
        out.bulk(f);
        out.bulk(v);
    }
    Ok(())
}
