//! The set family: membership (SADD, SREM, SISMEMBER, SMISMEMBER, SCARD, SMEMBERS, SMOVE),
//! random members (SPOP, SRANDMEMBER), the algebra (SINTER, SINTERCARD, SUNION, SDIFF and
//! their STORE forms) and SSCAN.
//!
//! Replies follow Redis 7.0 byte for byte where Redis's output is deterministic: an intset
//! lists its members in ascending order, a computed set (SUNION, SDIFF, the STORE forms) is
//! built member by member from an empty intset exactly as Redis builds it, so it has the
//! same encoding and, when that is an intset, the same order. SINTER walks its smallest
//! input like Redis (a stable sort by size). Hashtable order is unspecified in both.
//!
//! Multi-key commands first look every key up mutably, one at a time (lazy expiry, LRU,
//! hit/miss counters, the WRONGTYPE check in argument order), then borrow all the sets at
//! once from the shards the dispatcher locked for the command ([`held_set`]), so no set is
//! copied to be read.

use std::sync::atomic::Ordering::Relaxed;

use rand::Rng;

use super::args::{int, parse_cursor};
use super::flags::*;
use super::{lookup, lookup_read};
use super::{CommandSpec, Ctx, Keys};
use crate::error::{
    CmdResult, CommandError, E, LIMIT_NEGATIVE, LONG_RANGE, NOT_POSITIVE, NUMKEYS_NOT_POSITIVE,
    NUMKEYS_TOO_MANY, REPLY_TOO_BIG, SYNTAX,
};
use crate::notify::{GENERIC, SET as SET_EVENTS};
use crate::reply::Out;
use crate::server::Server;
use crate::storage::entry::ValueRef;
use crate::storage::keyspace::shard_of;
use crate::storage::set::{Elem, Set};
use crate::storage::{shard_id, Entry, LockSet, Value};
use crate::util::{glob_match, parse_i64};

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "sadd",
        -3,
        WRITE | DENYOOM | FAST,
        Keys::Range(1, 1, 1),
        sadd,
    )
    .group("set")
    .summary("Adds members to a set, creating the key if needed.")
    .complexity("O(1) per member added.")
    .syntax("key member [member ...]"),
    CommandSpec::new("srem", -3, WRITE | FAST, Keys::Range(1, 1, 1), srem)
        .group("set")
        .summary("Removes members from a set; an emptied set is deleted.")
        .complexity("O(N) where N is the number of members to remove.")
        .syntax("key member [member ...]"),
    CommandSpec::new("smembers", 2, READONLY, Keys::Range(1, 1, 1), smembers)
        .group("set")
        .summary("Returns every member of a set.")
        .complexity("O(N) where N is the set's cardinality.")
        .syntax("key"),
    CommandSpec::new(
        "sismember",
        3,
        READONLY | FAST,
        Keys::Range(1, 1, 1),
        sismember,
    )
    .group("set")
    .summary("Tells whether a value is a member of a set.")
    .complexity("O(1)")
    .syntax("key member"),
    CommandSpec::new(
        "smismember",
        -3,
        READONLY | FAST,
        Keys::Range(1, 1, 1),
        smismember,
    )
    .group("set")
    .since("6.2.0")
    .summary("Tells, for each of several values, whether it is a member of a set.")
    .complexity("O(N) where N is the number of values checked.")
    .syntax("key member [member ...]"),
    CommandSpec::new("scard", 2, READONLY | FAST, Keys::Range(1, 1, 1), scard)
        .group("set")
        .summary("Returns the number of members of a set.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new("spop", -2, WRITE | FAST, Keys::Range(1, 1, 1), spop)
        .group("set")
        .summary("Removes and returns random members of a set; an emptied set is deleted.")
        .complexity("O(1) without a count, O(N) with a count of N.")
        .syntax("key [count]"),
    CommandSpec::new(
        "srandmember",
        -2,
        READONLY,
        Keys::Range(1, 1, 1),
        srandmember,
    )
    .group("set")
    .summary("Returns random members of a set without removing them.")
    .complexity("O(1) without a count, O(N) with a count of N (absolute value).")
    .syntax("key [count]"),
    CommandSpec::new("smove", 4, WRITE | FAST, Keys::Range(1, 2, 1), smove)
        .group("set")
        .summary("Moves a member from one set to another.")
        .complexity("O(1)")
        .syntax("source destination member"),
    CommandSpec::new("sinter", -2, READONLY, Keys::Range(1, -1, 1), sinter)
        .group("set")
        .summary("Returns the intersection of sets.")
        .complexity("O(N*M) worst case: N is the smallest set's cardinality, M the number of sets.")
        .syntax("key [key ...]"),
    CommandSpec::new(
        "sintercard",
        -3,
        READONLY,
        Keys::Custom(sintercard_keys),
        sintercard,
    )
    .group("set")
    .since("7.0.0")
    .summary("Returns the cardinality of the intersection of sets, optionally capped.")
    .complexity("O(N*M) worst case: N is the smallest set's cardinality, M the number of sets.")
    .syntax("numkeys key [key ...] [LIMIT limit]"),
    CommandSpec::new(
        "sinterstore",
        -3,
        WRITE | DENYOOM,
        Keys::Range(1, -1, 1),
        sinterstore,
    )
    .group("set")
    .summary("Stores the intersection of sets in a key, replacing what it held.")
    .complexity("O(N*M) worst case: N is the smallest set's cardinality, M the number of sets.")
    .syntax("destination key [key ...]"),
    CommandSpec::new("sunion", -2, READONLY, Keys::Range(1, -1, 1), sunion)
        .group("set")
        .summary("Returns the union of sets.")
        .complexity("O(N) where N is the total number of members of the sets.")
        .syntax("key [key ...]"),
    CommandSpec::new(
        "sunionstore",
        -3,
        WRITE | DENYOOM,
        Keys::Range(1, -1, 1),
        sunionstore,
    )
    .group("set")
    .summary("Stores the union of sets in a key, replacing what it held.")
    .complexity("O(N) where N is the total number of members of the sets.")
    .syntax("destination key [key ...]"),
    CommandSpec::new("sdiff", -2, READONLY, Keys::Range(1, -1, 1), sdiff)
        .group("set")
        .summary("Returns the members of the first set that are in none of the others.")
        .complexity("O(N) where N is the total number of members of the sets.")
        .syntax("key [key ...]"),
    CommandSpec::new(
        "sdiffstore",
        -3,
        WRITE | DENYOOM,
        Keys::Range(1, -1, 1),
        sdiffstore,
    )
    .group("set")
    .summary("Stores the difference of sets in a key, replacing what it held.")
    .complexity("O(N) where N is the total number of members of the sets.")
    .syntax("destination key [key ...]"),
    CommandSpec::new("sscan", -3, READONLY, Keys::Range(1, 1, 1), sscan)
        .group("set")
        .since("2.8.0")
        .summary("Iterates over the members of a set.")
        .complexity("O(1) per call, O(N) for a complete iteration.")
        .syntax("key cursor [MATCH pattern] [COUNT count]"),
];

// --- helpers -----------------------------------------------------------------------------

/// `set-max-intset-entries`, read at every write as Redis does.
fn max_intset(server: &Server) -> usize {
    usize::try_from(server.hot.encoding.set_max_intset_entries.load(Relaxed)).unwrap_or(usize::MAX)
}

fn is_set(e: &Entry) -> bool {
    matches!(e.value(), ValueRef::Other(Value::Set(_)))
}

/// The set in `e`, or WRONGTYPE.
fn as_set(e: &Entry) -> Result<&Set, CommandError> {
    match e.value() {
        ValueRef::Other(Value::Set(s)) => Ok(s),
        _ => Err(CommandError::wrong_type()),
    }
}

/// The set in `e` for modification, or WRONGTYPE (checked before anything changes).
fn as_set_mut(e: &mut Entry) -> Result<&mut Set, CommandError> {
    if !is_set(e) {
        return Err(CommandError::wrong_type());
    }
    match e.value_mut() {
        Value::Set(s) => Ok(s),
        _ => Err(CommandError::wrong_type()),
    }
}

/// Writes one member as a bulk string (an intset member is formatted on the stack).
#[inline]
fn bulk_elem(out: &mut Out, e: Elem) {
    e.with_bytes(|b| out.bulk(b));
}

/// Writes an aggregate whose length is known only once its elements are written: `body`
/// writes them straight into the output and returns how many; the header (`set` for a RESP3
/// set, an array otherwise) is then inserted in front of them.
fn deferred_len(out: &mut Out, set: bool, body: impl FnOnce(&mut Out) -> usize) {
    let mark = out.buf.len();
    let n = body(out);
    let mut header = Vec::with_capacity(16);
    let mut h = Out::new(&mut header, out.resp3);
    if set {
        h.set(n);
    } else {
        h.array(n);
    }
    out.buf.splice(mark..mark, header);
}

/// Writes a set reply: its members by position (ascending for an intset).
fn reply_members(out: &mut Out, set: &Set) {
    out.set(set.len());
    for e in set.elems() {
        bulk_elem(out, e);
    }
}

/// `k` distinct positions out of `0..n` (k <= n), uniformly at random (Floyd's algorithm),
/// in the order they were drawn. Memory is O(k) (or n bits-as-bytes when k is a large
/// part of n).
fn pick_distinct(n: usize, k: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut order = Vec::with_capacity(k);
    if n <= k.saturating_mul(16) {
        let mut taken = vec![false; n];
        for j in n - k..n {
            let t = rng.gen_range(0..=j);
            let v = if taken[t] { j } else { t };
            taken[v] = true;
            order.push(v);
        }
    } else {
        let mut taken = hashbrown::HashSet::with_capacity(k);
        for j in n - k..n {
            let t = rng.gen_range(0..=j);
            let v = if taken.contains(&t) { j } else { t };
            taken.insert(v);
            order.push(v);
        }
    }
    order
}

// --- single-key commands ---------------------------------------------------------------

/// `SADD key member [member ...]`: how many members were new. O(1) per member. A new key
/// starts as an intset when its first member is an integer, as in Redis.
fn sadd(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, max) = (cx.now, cx.lru(), max_intset(cx.server));
    let (sh, h, out) = cx.shard_out(key)?;
    let added = match lookup(sh, h, key, now, lru) {
        Some(e) => {
            let set = as_set_mut(e)?;
            args[2..].iter().filter(|m| set.add(m, max)).count()
        }
        None => {
            let mut set = Set::for_member(args[2]);
            let n = args[2..].iter().filter(|m| set.add(m, max)).count();
            sh.insert(h, Entry::new(key, Value::Set(Box::new(set)), lru));
            n
        }
    };
    out.int(added as i64);
    if added > 0 {
        cx.dirty(added as u64);
        cx.notify(SET_EVENTS, "sadd", key);
    }
    Ok(())
}

/// `SREM key member [member ...]`: how many members were removed; the key is deleted when
/// the set empties. O(N) for N members.
fn srem(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(e) = lookup(sh, h, key, now, lru) else {
        out.int(0);
        return Ok(());
    };
    let set = as_set_mut(e)?;
    let mut removed = 0;
    for m in &args[2..] {
        if set.remove(m) {
            removed += 1;
            if set.is_empty() {
                break;
            }
        }
    }
    let deleted = set.is_empty();
    if deleted {
        sh.remove(h, key);
    }
    out.int(removed);
    if removed > 0 {
        cx.dirty(removed as u64);
        cx.notify(SET_EVENTS, "srem", key);
        if deleted {
            cx.notify(GENERIC, "del", key);
        }
    }
    Ok(())
}

/// `SMEMBERS key`: every member (a RESP3 set). O(N).
fn smembers(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    match lookup_read(server, sh, h, key, now, lru) {
        Some(e) => reply_members(out, as_set(e)?),
        None => out.set(0),
    }
    Ok(())
}

/// `SISMEMBER key member`: 1 or 0. O(1).
fn sismember(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let found = match lookup_read(server, sh, h, key, now, lru) {
        Some(e) => as_set(e)?.contains(args[2]),
        None => false,
    };
    out.int(i64::from(found));
    Ok(())
}

/// `SMISMEMBER key member [member ...]`: 1 or 0 for each value (all 0 for a missing key).
/// O(N) for N values.
fn smismember(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let set = match lookup_read(server, sh, h, key, now, lru) {
        Some(e) => Some(as_set(e)?),
        None => None,
    };
    out.array(args.len() - 2);
    for m in &args[2..] {
        out.int(i64::from(set.is_some_and(|s| s.contains(m))));
    }
    Ok(())
}

/// `SCARD key`: the number of members (0 for a missing key). O(1).
fn scard(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let n = match lookup_read(server, sh, h, key, now, lru) {
        Some(e) => as_set(e)?.len(),
        None => 0,
    };
    out.int(n as i64);
    Ok(())
}

/// `SPOP key [count]`: removes and returns a random member (nil for a missing key), or
/// `count` distinct random members as a set. O(1), or O(count) (O(N) for an intset).
fn spop(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(E(SYNTAX));
    }
    if args.len() == 3 {
        return spop_count(cx, args);
    }
    let key = args[1];
    let (now, lru, prop) = (cx.now, cx.lru(), cx.propagating());
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(e) = lookup(sh, h, key, now, lru) else {
        out.null();
        return Ok(());
    };
    let set = as_set_mut(e)?;
    if set.is_empty() {
        // Never stored (empty sets are deleted); answered as a missing key, not a panic.
        out.null();
        return Ok(());
    }
    let p = rand::thread_rng().gen_range(0..set.len());
    bulk_elem(out, set.get(p));
    // Replicas must remove the same member: SPOP is propagated as SREM.
    let popped = prop.then(|| set.get(p).to_vec());
    set.remove_at(p);
    let deleted = set.is_empty();
    if deleted {
        sh.remove(h, key);
    }
    cx.dirty(1);
    if let Some(m) = popped {
        cx.propagate(&[b"SREM", key, &m]);
    }
    cx.notify(SET_EVENTS, "spop", key);
    if deleted {
        cx.notify(GENERIC, "del", key);
    }
    Ok(())
}

/// When SPOP takes this many times more members than it leaves, Redis builds the
/// remaining members into a new set instead of removing the popped ones one by one; the
/// new set may have a different encoding and the popped members come out in set order.
const SPOP_MOVE_STRATEGY_MUL: usize = 5;

/// `SPOP key count`.
fn spop_count(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let count = match parse_i64(args[2]) {
        Some(c) if c >= 0 => c as u64,
        _ => return Err(E(NOT_POSITIVE)),
    };
    let (now, lru, max) = (cx.now, cx.lru(), max_intset(cx.server));
    let prop = cx.propagating();
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(e) = lookup(sh, h, key, now, lru) else {
        out.set(0);
        return Ok(());
    };
    let set = as_set_mut(e)?;
    if count == 0 {
        out.set(0);
        return Ok(());
    }
    let size = set.len();
    if count >= size as u64 {
        // The whole set, listed as Redis lists its union of one set.
        out.set(size);
        match set.rebuilt_order(max) {
            Some(vals) => vals.into_iter().for_each(|v| bulk_elem(out, Elem::Int(v))),
            None => set.elems().for_each(|e| bulk_elem(out, e)),
        }
        sh.remove(h, key);
        cx.dirty(size as u64 + 1);
        cx.propagate(&[b"DEL", key]);
        cx.notify(SET_EVENTS, "spop", key);
        cx.notify(GENERIC, "del", key);
        return Ok(());
    }
    let count = count as usize;
    let remaining = size - count;
    let rebuild = remaining * SPOP_MOVE_STRATEGY_MUL <= count;
    let mut rng = rand::thread_rng();
    // Replicas must remove the same members: one SREM each (in MULTI ... EXEC), as Redis
    // 7.0 propagates SPOP with a count.
    let mut popped: Vec<Vec<u8>> = Vec::new();
    let mut keep = |e: Elem| {
        if prop {
            popped.push(e.to_vec());
        }
    };
    out.set(count);
    if set.is_intset() {
        // One pass over the array instead of `count` removals from the middle of it.
        let picks = pick_distinct(size, count, &mut rng);
        let mut doomed = vec![false; size];
        for &p in &picks {
            doomed[p] = true;
        }
        if rebuild {
            // Redis replies with what is left of the old set after moving the kept members
            // out: the popped members in ascending order.
            for (p, _) in doomed.iter().enumerate().filter(|x| *x.1) {
                bulk_elem(out, set.get(p));
                keep(set.get(p));
            }
        } else {
            for &p in &picks {
                bulk_elem(out, set.get(p));
                keep(set.get(p));
            }
        }
        set.remove_marked(&doomed);
    } else {
        for _ in 0..count {
            let p = rng.gen_range(0..set.len());
            bulk_elem(out, set.get(p));
            keep(set.get(p));
            set.remove_at(p);
        }
        if rebuild {
            set.rebuild_if_intset(max);
        }
    }
    cx.dirty(count as u64 + 1);
    if prop {
        for m in &popped {
            cx.propagate(&[b"SREM", key, m]);
        }
    }
    cx.notify(SET_EVENTS, "spop", key);
    Ok(())
}

/// `SRANDMEMBER key [count]`: a random member (nil for a missing key); with a count,
/// `count` distinct members (at most the whole set), or for a negative count `-count`
/// members drawn independently (repeats possible). O(1), or O(|count|).
fn srandmember(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(E(SYNTAX));
    }
    let key = args[1];
    let count = match args.get(2) {
        Some(a) => match int(a)? {
            i64::MIN => return Err(E(LONG_RANGE)),
            c => Some(c),
        },
        None => None,
    };
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let limit = server.hot.proto_max_bulk_len.load(Relaxed);
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(e) = lookup_read(server, sh, h, key, now, lru) else {
        match count {
            Some(_) => out.array(0),
            None => out.null(),
        }
        return Ok(());
    };
    let set = as_set(e)?;
    let mut rng = rand::thread_rng();
    let size = set.len();
    if size == 0 {
        // Never stored (empty sets are deleted); answered as a missing key, not a panic.
        match count {
            Some(_) => out.array(0),
            None => out.null(),
        }
        return Ok(());
    }
    let Some(count) = count else {
        bulk_elem(out, set.get(rng.gen_range(0..size)));
        return Ok(());
    };
    if count == 0 {
        out.array(0);
        return Ok(());
    }
    if count < 0 || count == 1 {
        // Independent draws. Redis would build any reply a client asks for; Kiln stops at
        // proto-max-bulk-len bytes so that a huge count cannot exhaust memory.
        let n = count.unsigned_abs();
        // Each element takes at least 6 bytes (`$0\r\n\r\n`): refuse at once what cannot fit.
        if n.saturating_mul(6) > limit {
            return Err(E(REPLY_TOO_BIG));
        }
        let start = out.buf.len();
        out.array(usize::try_from(n).unwrap_or(usize::MAX));
        for i in 0..n {
            bulk_elem(out, set.get(rng.gen_range(0..size)));
            if i % 1024 == 1023 && (out.buf.len() - start) as u64 > limit {
                return Err(E(REPLY_TOO_BIG));
            }
        }
        return Ok(());
    }
    let count = count as u64;
    if count >= size as u64 {
        out.array(size);
        set.elems().for_each(|e| bulk_elem(out, e));
        return Ok(());
    }
    let picks = pick_distinct(size, count as usize, &mut rng);
    out.array(picks.len());
    for p in picks {
        bulk_elem(out, set.get(p));
    }
    Ok(())
}

/// `SMOVE source destination member`: 1 if the member moved (or already was in both when
/// source and destination are the same key), 0 if the source does not hold it. The source
/// is deleted when it empties; the destination is created when missing. O(1).
fn smove(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (src, dst, member) = (args[1], args[2], args[3]);
    let (now, lru, max) = (cx.now, cx.lru(), max_intset(cx.server));
    // Both keys are checked before anything changes: a missing source wins over a
    // destination of the wrong type, as in Redis.
    let src_found = {
        let (sh, h) = cx.shard(src)?;
        match lookup(sh, h, src, now, lru) {
            Some(e) if !is_set(e) => return Err(CommandError::wrong_type()),
            found => found.is_some(),
        }
    };
    {
        let (sh, h) = cx.shard(dst)?;
        if lookup(sh, h, dst, now, lru).is_some_and(|e| src_found && !is_set(e)) {
            return Err(CommandError::wrong_type());
        }
    }
    if !src_found {
        cx.out.int(0);
        return Ok(());
    }
    let (sh, h) = cx.shard(src)?;
    let Some(e) = sh.get(h, src, now) else {
        cx.out.int(0);
        return Ok(());
    };
    let set = as_set_mut(e)?;
    if src == dst {
        let found = set.contains(member);
        cx.out.int(i64::from(found));
        return Ok(());
    }
    if !set.remove(member) {
        cx.out.int(0);
        return Ok(());
    }
    let src_deleted = set.is_empty();
    if src_deleted {
        sh.remove(h, src);
    }
    // Redis raises the source's events before it creates the destination (its `new` event
    // comes after them).
    cx.notify(SET_EVENTS, "srem", src);
    if src_deleted {
        cx.notify(GENERIC, "del", src);
    }
    let (sh, h) = cx.shard(dst)?;
    let added = match sh.get(h, dst, now) {
        Some(e) => as_set_mut(e)?.add(member, max),
        None => {
            let mut set = Set::for_member(member);
            set.add(member, max);
            sh.insert(h, Entry::new(dst, Value::Set(Box::new(set)), lru));
            true
        }
    };
    cx.out.int(1);
    cx.dirty(1 + u64::from(added));
    if added {
        cx.notify(SET_EVENTS, "sadd", dst);
    } else {
        // The destination already held the member: unchanged, so not signalled.
        cx.keep_watches(2);
    }
    Ok(())
}

/// `SSCAN key cursor [MATCH pattern] [COUNT count]`: a page of members and the cursor to
/// continue from (0 when done). An intset is returned whole in one call, as in Redis. A
/// hashtable set is walked by position from the top down: removals only move the last
/// member into a lower position, so every member present for the whole scan is returned
/// at least once. O(COUNT) per call.
fn sscan(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let cursor = parse_cursor(args[2])?;
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(e) = lookup_read(server, sh, h, key, now, lru) else {
        out.array(2);
        out.bulk(b"0");
        out.array(0);
        return Ok(());
    };
    let set = as_set(e)?;
    let opts = super::args::scan_options(args, 3, false)?;
    let (count, pattern) = (opts.count, opts.pattern);
    let len = set.len();
    let (from, to) = if set.is_intset() {
        (0, len)
    } else {
        let top = match usize::try_from(cursor) {
            Ok(c) if c > 0 && c <= len => c,
            _ => len,
        };
        (top.saturating_sub(count), top)
    };
    out.array(2);
    out.bulk(itoa::Buffer::new().format(from).as_bytes());
    deferred_len(out, false, |out| {
        let mut n = 0;
        for p in from..to {
            let e = set.get(p);
            if pattern.is_none_or(|pat| e.with_bytes(|b| glob_match(pat, b, false))) {
                bulk_elem(out, e);
                n += 1;
            }
        }
        n
    });
    Ok(())
}

// --- multi-key commands ------------------------------------------------------------------

/// Phase one of a multi-key read: each key looked up in argument order as Redis's
/// `lookupKeyRead` does (lazy expiry, LRU, hit/miss), failing with WRONGTYPE at the first
/// key that is not a set. Returns which keys hold a set.
fn check_sources(cx: &mut Ctx, keys: &[&[u8]]) -> Result<Vec<bool>, CommandError> {
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        let (sh, h) = cx.shard(key)?;
        let exists = match lookup_read(server, sh, h, key, now, lru) {
            Some(e) if !is_set(e) => return Err(CommandError::wrong_type()),
            e => e.is_some(),
        };
        found.push(exists);
    }
    Ok(found)
}

/// Phase two: a shared borrow of the set at `key`, from the shard the dispatcher locked
/// for this command. Several may be held at once, alongside the reply writer.
fn held_set<'c>(locks: &'c LockSet<'_>, server: &Server, db: usize, key: &[u8]) -> Option<&'c Set> {
    let h = server.keyspace.hash(key);
    match locks.peek(shard_id(db, shard_of(h)))?.peek(h, key)?.value() {
        ValueRef::Other(Value::Set(s)) => Some(s),
        _ => None,
    }
}

/// The sets named by `keys` (None for a missing key), after [`check_sources`].
fn sources<'c>(
    locks: &'c LockSet<'_>,
    server: &Server,
    db: usize,
    keys: &[&[u8]],
    found: &[bool],
) -> Vec<Option<&'c Set>> {
    keys.iter()
        .zip(found)
        .map(|(k, &f)| {
            if f {
                held_set(locks, server, db, k)
            } else {
                None
            }
        })
        .collect()
}

/// Stores a computed set at `dst` (replacing any value and TTL) and raises `event`, or
/// deletes `dst` when the set is empty, and replies with its cardinality.
fn store(cx: &mut Ctx, dst: &[u8], set: Set, event: &str) -> CmdResult {
    let lru = cx.lru();
    let n = set.len();
    let (sh, h, out) = cx.shard_out(dst)?;
    let changed = if n > 0 {
        sh.insert(h, Entry::new(dst, Value::Set(Box::new(set)), lru));
        true
    } else {
        sh.remove(h, dst).is_some()
    };
    out.int(n as i64);
    if changed {
        cx.dirty(1);
        cx.notify(
            if n > 0 { SET_EVENTS } else { GENERIC },
            if n > 0 { event } else { "del" },
            dst,
        );
    }
    Ok(())
}

/// What an intersection produces.
#[derive(Clone, Copy)]
enum InterOut {
    /// The members (SINTER).
    Reply,
    /// Their number, stopping at a limit (0: none) (SINTERCARD).
    Card(u64),
    /// A stored set (SINTERSTORE).
    Store,
}

/// SINTER, SINTERCARD and SINTERSTORE: walks the smallest set and keeps the members every
/// other set holds. Any missing key makes the result empty.
fn inter_generic(cx: &mut Ctx, keys: &[&[u8]], mode: InterOut, dst: &[u8]) -> CmdResult {
    let found = check_sources(cx, keys)?;
    let (server, db, max) = (cx.server, cx.db(), max_intset(cx.server));
    if found.iter().any(|f| !f) {
        return match mode {
            InterOut::Reply => {
                cx.out.set(0);
                Ok(())
            }
            InterOut::Card(_) => {
                cx.out.int(0);
                Ok(())
            }
            InterOut::Store => store(cx, dst, Set::new(), "sinterstore"),
        };
    }
    let (locks, out) = (&cx.locks, &mut cx.out);
    let mut sets: Vec<&Set> = sources(locks, server, db, keys, &found)
        .into_iter()
        .flatten()
        .collect();
    // Smallest first; stable, so equal sizes keep argument order (as Redis's qsort does
    // for this input size).
    sets.sort_by_key(|s| s.len());
    let Some((&first, rest)) = sets.split_first() else {
        return Ok(());
    };
    let in_all = |e: Elem| {
        rest.iter()
            .all(|s| std::ptr::eq(*s, first) || s.contains_elem(e))
    };
    let result = match mode {
        InterOut::Reply => {
            deferred_len(out, true, |out| {
                let mut n = 0;
                for e in first.elems().filter(|&e| in_all(e)) {
                    bulk_elem(out, e);
                    n += 1;
                }
                n
            });
            return Ok(());
        }
        InterOut::Card(limit) => {
            let mut n: u64 = 0;
            for _ in first.elems().filter(|&e| in_all(e)) {
                n += 1;
                if n == limit {
                    break;
                }
            }
            out.int(n as i64);
            return Ok(());
        }
        InterOut::Store => {
            let mut result = Set::new();
            for e in first.elems().filter(|&e| in_all(e)) {
                result.add_elem(e, max);
            }
            result
        }
    };
    store(cx, dst, result, "sinterstore")
}

/// SUNION / SDIFF and their STORE forms: the result is built member by member from an
/// empty intset, as Redis builds it, so its encoding (and intset order) match.
fn union_diff_generic(cx: &mut Ctx, keys: &[&[u8]], diff: bool, dst: Option<&[u8]>) -> CmdResult {
    let found = check_sources(cx, keys)?;
    let (server, db, max) = (cx.server, cx.db(), max_intset(cx.server));
    let result = {
        let sets = sources(&cx.locks, server, db, keys, &found);
        if diff {
            difference(&sets, max)
        } else {
            // The union is at least as big as its largest input: when that is past the
            // intset limit, the result will be a hashtable of at least that size, so it
            // starts as one (Redis would convert it on the way, to the same end).
            let largest = sets.iter().flatten().map(|s| s.len()).max().unwrap_or(0);
            let mut result = if largest > max {
                Set::with_table_capacity(largest)
            } else {
                Set::new()
            };
            for s in sets.iter().flatten() {
                for e in s.elems() {
                    result.add_elem(e, max);
                }
            }
            result
        }
    };
    match dst {
        Some(dst) => store(
            cx,
            dst,
            result,
            if diff { "sdiffstore" } else { "sunionstore" },
        ),
        None => {
            reply_members(&mut cx.out, &result);
            Ok(())
        }
    }
}

/// The members of `sets[0]` in none of the others, with Redis's choice of method (which
/// decides the result's encoding, and so its order): test each member of the first set
/// against the others when that is cheaper, else copy the first set and remove the others'
/// members from the copy.
fn difference(sets: &[Option<&Set>], max: usize) -> Set {
    let mut result = Set::new();
    let Some(Some(first)) = sets.first() else {
        return result;
    };
    let others = &sets[1..];
    if others.iter().flatten().any(|s| std::ptr::eq(*s, *first)) {
        return result;
    }
    let present = sets.iter().flatten().count() as u64;
    let one_work = (first.len() as u64).saturating_mul(present) / 2;
    let two_work: u64 = sets.iter().flatten().map(|s| s.len() as u64).sum();
    if one_work <= two_work {
        for e in first.elems() {
            if !others.iter().flatten().any(|s| s.contains_elem(e)) {
                result.add_elem(e, max);
            }
        }
    } else {
        if first.len() > max {
            // A copy of the first set past the intset limit is a hashtable of its size.
            result = Set::with_table_capacity(first.len());
        }
        for e in first.elems() {
            result.add_elem(e, max);
        }
        for s in others.iter().flatten() {
            for e in s.elems() {
                result.remove_elem(e);
            }
            if result.is_empty() {
                break;
            }
        }
    }
    result
}

/// `SINTER key [key ...]`: the members common to every set (a RESP3 set).
fn sinter(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    inter_generic(cx, &args[1..], InterOut::Reply, b"")
}

/// Key finder for SINTERCARD: the `numkeys` keys after the count, when the count is valid.
fn sintercard_keys(args: &[&[u8]], cur_db: usize, push: &mut dyn FnMut(usize, &[u8])) {
    if let Some(n) = args.get(1).and_then(|a| parse_i64(a)) {
        if n >= 1 && (n as u64) <= args.len().saturating_sub(2) as u64 {
            for k in &args[2..2 + n as usize] {
                push(cur_db, k);
            }
        }
    }
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`: the size of the intersection, counting
/// no further than `limit` (0: no limit).
fn sintercard(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let numkeys = match parse_i64(args[1]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Err(E(NUMKEYS_NOT_POSITIVE)),
    };
    if numkeys > (args.len() - 2) as u64 {
        return Err(E(NUMKEYS_TOO_MANY));
    }
    let end = 2 + numkeys as usize;
    let mut limit = 0u64;
    let mut i = end;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"limit") && i + 1 < args.len() {
            limit = match parse_i64(args[i + 1]) {
                Some(l) if l >= 0 => l as u64,
                _ => return Err(E(LIMIT_NEGATIVE)),
            };
            i += 2;
        } else {
            return Err(E(SYNTAX));
        }
    }
    inter_generic(cx, &args[2..end], InterOut::Card(limit), b"")
}

/// `SINTERSTORE destination key [key ...]`: stores the intersection; its cardinality.
fn sinterstore(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    inter_generic(cx, &args[2..], InterOut::Store, args[1])
}

/// `SUNION key [key ...]`: every member of any of the sets (a RESP3 set).
fn sunion(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    union_diff_generic(cx, &args[1..], false, None)
}

/// `SUNIONSTORE destination key [key ...]`: stores the union; its cardinality.
fn sunionstore(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    union_diff_generic(cx, &args[2..], false, Some(args[1]))
}

/// `SDIFF key [key ...]`: the members of the first set in none of the others.
fn sdiff(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    union_diff_generic(cx, &args[1..], true, None)
}

/// `SDIFFSTORE destination key [key ...]`: stores the difference; its cardinality.
fn sdiffstore(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    union_diff_generic(cx, &args[2..], true, Some(args[1]))
}
