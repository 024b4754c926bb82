//! The list family: pushes (LPUSH, RPUSH, LPUSHX, RPUSHX, LINSERT), pops (LPOP, RPOP,
//! LMPOP), moves (LMOVE, RPOPLPUSH), reads (LLEN, LINDEX, LRANGE, LPOS), edits (LSET, LREM,
//! LTRIM), and the blocking BLPOP, BRPOP, BLMOVE, BRPOPLPUSH and BLMPOP.
//!
//! Replies and errors follow Redis 7.0, including which check comes first: LRANGE, LTRIM and
//! LREM parse their numbers before looking the key up, LINDEX and LSET only after; LPOP with
//! a count replies a null array for a missing key but an empty array for COUNT 0; LMOVE
//! replies nil for a missing source even when the destination holds another type.
//!
//! A list that loses its last element is deleted, as Redis never keeps empty lists. Every
//! command that adds elements to a list signals the key ready, so blocked clients are served
//! (see `blocking`); a blocking handler is a plain handler that calls [`Ctx::block`] when all
//! its keys are empty, and is re-run as is for the waiter once one gets data.

use super::args::int;
use super::blocking::parse_timeout;
use super::flags::*;
use super::{CommandSpec, Ctx, Keys};
use crate::error::{
    CmdResult, CommandError, COUNT_NOT_POSITIVE, E, INDEX_OUT_OF_RANGE, LPOS_COUNT_NEGATIVE,
    LPOS_MAXLEN_NEGATIVE, LPOS_RANK_ZERO, NOT_POSITIVE, NO_SUCH_KEY, NUMKEYS_NOT_POSITIVE, SYNTAX,
};
use crate::notify::{GENERIC, LIST};
use crate::server::Server;
use crate::storage::entry::ValueRef;
use crate::storage::{Entry, List, Shard, Value};
use crate::util::parse_i64;

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("lpush", -3, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), lpush)
        .group("list")
        .summary("Prepends elements to a list, creating it if needed.")
        .complexity("O(1) per element pushed.")
        .syntax("key element [element ...]"),
    CommandSpec::new("rpush", -3, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), rpush)
        .group("list")
        .summary("Appends elements to a list, creating it if needed.")
        .complexity("O(1) per element pushed.")
        .syntax("key element [element ...]"),
    CommandSpec::new("lpushx", -3, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), lpushx)
        .group("list")
        .since("2.2.0")
        .summary("Prepends elements to a list only when the list exists.")
        .complexity("O(1) per element pushed.")
        .syntax("key element [element ...]"),
    CommandSpec::new("rpushx", -3, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), rpushx)
        .group("list")
        .since("2.2.0")
        .summary("Appends elements to a list only when the list exists.")
        .complexity("O(1) per element pushed.")
        .syntax("key element [element ...]"),
    CommandSpec::new("lpop", -2, WRITE | FAST, Keys::Range(1, 1, 1), lpop)
        .group("list")
        .summary("Removes and returns the first elements of a list.")
        .complexity("O(N) where N is the number of elements returned.")
        .syntax("key [count]"),
    CommandSpec::new("rpop", -2, WRITE | FAST, Keys::Range(1, 1, 1), rpop)
        .group("list")
        .summary("Removes and returns the last elements of a list.")
        .complexity("O(N) where N is the number of elements returned.")
        .syntax("key [count]"),
    CommandSpec::new("llen", 2, READONLY | FAST, Keys::Range(1, 1, 1), llen)
        .group("list")
        .summary("Returns the number of elements of a list.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new("lrange", 4, READONLY, Keys::Range(1, 1, 1), lrange)
        .group("list")
        .summary("Returns the elements of a list between two indexes.")
        .complexity("O(log C + S + N): C chunks, S elements scanned inside the first one, N elements returned.")
        .syntax("key start stop"),
    CommandSpec::new("lindex", 3, READONLY, Keys::Range(1, 1, 1), lindex)
        .group("list")
        .summary("Returns the element of a list at an index.")
        .complexity("O(log C + S): a binary search over C chunks and a scan of S elements inside one.")
        .syntax("key index"),
    CommandSpec::new("lset", 4, WRITE | DENYOOM, Keys::Range(1, 1, 1), lset)
        .group("list")
        .summary("Replaces the element of a list at an index.")
        .complexity("O(log C + S), as LINDEX.")
        .syntax("key index element"),
    CommandSpec::new("linsert", 5, WRITE | DENYOOM, Keys::Range(1, 1, 1), linsert)
        .group("list")
        .since("2.2.0")
        .summary("Inserts an element before or after the first occurrence of another.")
        .complexity("O(N) where N is the number of elements before the pivot.")
        .syntax("key BEFORE | AFTER pivot element"),
    CommandSpec::new("lrem", 4, WRITE, Keys::Range(1, 1, 1), lrem)
        .group("list")
        .summary("Removes the elements of a list equal to a value.")
        .complexity("O(N) where N is the length of the list.")
        .syntax("key count element"),
    CommandSpec::new("ltrim", 4, WRITE, Keys::Range(1, 1, 1), ltrim)
        .group("list")
        .summary("Keeps only the elements of a list between two indexes.")
        .complexity("O(N) where N is the number of elements removed.")
        .syntax("key start stop"),
    CommandSpec::new("lpos", -3, READONLY, Keys::Range(1, 1, 1), lpos)
        .group("list")
        .since("6.0.6")
        .summary("Returns the indexes of the elements of a list equal to a value.")
        .complexity("O(N) where N is the number of elements scanned.")
        .syntax("key element [RANK rank] [COUNT num-matches] [MAXLEN len]"),
    CommandSpec::new("lmove", 5, WRITE | DENYOOM, Keys::Range(1, 2, 1), lmove)
        .group("list")
        .since("6.2.0")
        .summary("Pops an element from one end of a list and pushes it onto an end of another.")
        .complexity("O(1)")
        .syntax("source destination LEFT | RIGHT LEFT | RIGHT"),
    CommandSpec::new("rpoplpush", 3, WRITE | DENYOOM, Keys::Range(1, 2, 1), rpoplpush)
        .group("list")
        .since("1.2.0")
        .summary("Pops the last element of a list and pushes it at the head of another (LMOVE source destination RIGHT LEFT).")
        .complexity("O(1)")
        .syntax("source destination"),
    CommandSpec::new("lmpop", -4, WRITE, Keys::Custom(lmpop_keys), lmpop)
        .group("list")
        .since("7.0.0")
        .summary("Pops elements from the first non-empty list of several.")
        .complexity("O(N + M): N keys looked at, M elements popped.")
        .syntax("numkeys key [key ...] LEFT | RIGHT [COUNT count]"),
    CommandSpec::new("blpop", -3, WRITE | NOSCRIPT | BLOCKING, Keys::Range(1, -2, 1), blpop)
        .group("list")
        .since("2.0.0")
        .summary("Pops the first element of the first non-empty list of several, waiting for one if they are all empty.")
        .complexity("O(N) where N is the number of keys.")
        .syntax("key [key ...] timeout"),
    CommandSpec::new("brpop", -3, WRITE | NOSCRIPT | BLOCKING, Keys::Range(1, -2, 1), brpop)
        .group("list")
        .since("2.0.0")
        .summary("Pops the last element of the first non-empty list of several, waiting for one if they are all empty.")
        .complexity("O(N) where N is the number of keys.")
        .syntax("key [key ...] timeout"),
    CommandSpec::new("blmove", 6, WRITE | DENYOOM | NOSCRIPT | BLOCKING, Keys::Range(1, 2, 1), blmove)
        .group("list")
        .since("6.2.0")
        .summary("LMOVE, waiting for an element if the source list is empty.")
        .complexity("O(1)")
        .syntax("source destination LEFT | RIGHT LEFT | RIGHT timeout"),
    CommandSpec::new("brpoplpush", 4, WRITE | DENYOOM | NOSCRIPT | BLOCKING, Keys::Range(1, 2, 1), brpoplpush)
        .group("list")
        .since("2.2.0")
        .summary("RPOPLPUSH, waiting for an element if the source list is empty.")
        .complexity("O(1)")
        .syntax("source destination timeout"),
    CommandSpec::new("blmpop", -5, WRITE | BLOCKING, Keys::Custom(blmpop_keys), blmpop)
        .group("list")
        .since("7.0.0")
        .summary("LMPOP, waiting for an element if all the lists are empty.")
        .complexity("O(N + M): N keys looked at, M elements popped.")
        .syntax("timeout numkeys key [key ...] LEFT | RIGHT [COUNT count]"),
];

// --- lookups and parsing ----------------------------------------------------------------

/// The list in `e`, or WRONGTYPE. Checks the type before `value_mut`, which would move an
/// inline string to the heap.
fn as_list(e: &mut Entry) -> Result<&mut List, CommandError> {
    if !matches!(e.value(), ValueRef::Other(Value::List(_))) {
        return Err(CommandError::wrong_type());
    }
    match e.value_mut() {
        Value::List(l) => Ok(l),
        _ => Err(CommandError::wrong_type()),
    }
}

/// Looks a key up as Redis's `lookupKeyWrite` does (lazy expiry, LRU access) and returns its
/// list: `None` if missing, WRONGTYPE if it holds another type.
fn lookup<'s>(
    sh: &'s mut Shard,
    h: u64,
    key: &[u8],
    now: u64,
    lru: u32,
) -> Result<Option<&'s mut List>, CommandError> {
    super::lookup(sh, h, key, now, lru).map_or(Ok(None), |e| as_list(e).map(Some))
}

/// [`lookup`] for a command that reads (Redis's `lookupKeyRead`): also counts a keyspace hit
/// or miss, a hit even when the key then turns out to hold another type.
fn lookup_read<'s>(
    server: &Server,
    sh: &'s mut Shard,
    h: u64,
    key: &[u8],
    now: u64,
    lru: u32,
) -> Result<Option<&'s mut List>, CommandError> {
    match super::lookup_read(server, sh, h, key, now, lru) {
        Some(e) => as_list(e).map(Some),
        None => Ok(None),
    }
}

/// An integer within `min..=max`, or the error `msg` (Redis's `getRangeLongFromObjectOrReply`
/// with a message: a non-integer gets the same message).
fn ranged(a: &[u8], min: i64, max: i64, msg: &'static str) -> Result<i64, CommandError> {
    parse_i64(a)
        .filter(|v| (min..=max).contains(v))
        .ok_or(E(msg))
}

/// LEFT (true) or RIGHT (false).
fn side(a: &[u8]) -> Result<bool, CommandError> {
    if a.eq_ignore_ascii_case(b"left") {
        Ok(true)
    } else if a.eq_ignore_ascii_case(b"right") {
        Ok(false)
    } else {
        Err(E(SYNTAX))
    }
}

/// A client index (negative counts from the tail) as a position in a list of `len`.
fn index(idx: i64, len: usize) -> Option<usize> {
    let i = if idx < 0 { len as i64 + idx } else { idx };
    (0..len as i64).contains(&i).then_some(i as usize)
}

/// LRANGE / LTRIM bounds (inclusive, negative from the tail) as a first index and a count,
/// clamped to the list the way Redis does.
fn span(start: i64, stop: i64, len: usize) -> (usize, usize) {
    let len = len as i64;
    let start = if start < 0 { len + start } else { start }.max(0);
    let stop = if stop < 0 { len + stop } else { stop };
    if start > stop || start >= len {
        return (0, 0);
    }
    let stop = stop.min(len - 1);
    (start as usize, (stop - start + 1) as usize)
}

/// Records `n` elements popped from `key` (dirty counter, `lpop`/`rpop` event) and, if that
/// emptied it, its deletion (`del` event), as Redis's `listElementsRemoved`.
fn popped_event(cx: &mut Ctx, key: &[u8], front: bool, n: usize, emptied: bool) {
    cx.dirty(n as u64);
    cx.notify(LIST, if front { "lpop" } else { "rpop" }, key);
    if emptied {
        cx.notify(GENERIC, "del", key);
    }
}

// --- pushes -----------------------------------------------------------------------------

/// `LPUSH key element [element ...]`: the new length. O(1) per element.
fn lpush(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    push(cx, args, true, false)
}

/// `RPUSH key element [element ...]`: the new length. O(1) per element.
fn rpush(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    push(cx, args, false, false)
}

/// `LPUSHX key element [element ...]`: the new length, 0 (and no key) if it did not exist.
/// O(1) per element.
fn lpushx(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    push(cx, args, true, true)
}

/// `RPUSHX key element [element ...]`: as LPUSHX, at the tail. O(1) per element.
fn rpushx(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    push(cx, args, false, true)
}

/// The body of the four pushes: at the head (`front`) or tail, creating the list unless
/// `only_existing` (the X variants).
fn push(cx: &mut Ctx, args: &[&[u8]], front: bool, only_existing: bool) -> CmdResult {
    let key = args[1];
    let elems = &args[2..];
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let len = match lookup(sh, h, key, now, lru)? {
        Some(l) => {
            for v in elems {
                if front {
                    l.push_front(v);
                } else {
                    l.push_back(v);
                }
            }
            let len = l.len();
            sh.signal_ready(key);
            len
        }
        None if only_existing => {
            out.int(0);
            return Ok(());
        }
        None => {
            let mut l = List::new();
            for v in elems {
                if front {
                    l.push_front(v);
                } else {
                    l.push_back(v);
                }
            }
            let len = l.len();
            sh.insert(h, Entry::new(key, Value::List(Box::new(l)), lru));
            len
        }
    };
    out.int(len as i64);
    cx.dirty(elems.len() as u64);
    cx.notify(LIST, if front { "lpush" } else { "rpush" }, key);
    Ok(())
}

/// `LINSERT key BEFORE | AFTER pivot element`: the new length, -1 if the pivot is not in the
/// list, 0 if the key does not exist. O(N) up to the pivot.
fn linsert(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let after = if args[2].eq_ignore_ascii_case(b"after") {
        true
    } else if args[2].eq_ignore_ascii_case(b"before") {
        false
    } else {
        return Err(E(SYNTAX));
    };
    let (key, pivot, elem) = (args[1], args[3], args[4]);
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(l) = lookup(sh, h, key, now, lru)? else {
        out.int(0);
        return Ok(());
    };
    let mut at = None;
    l.find(pivot, false, 0, |i| {
        at = Some(i);
        false
    });
    let Some(at) = at else {
        out.int(-1);
        return Ok(());
    };
    l.insert(at + usize::from(after), elem);
    out.int(l.len() as i64);
    sh.signal_ready(key);
    cx.dirty(1);
    cx.notify(LIST, "linsert", key);
    Ok(())
}

// --- pops -------------------------------------------------------------------------------

/// `LPOP key [count]`: the head element (nil if no key), or with a count an array of up to
/// that many (a null array if no key). O(N) in the elements popped.
fn lpop(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    pop(cx, args, true)
}

/// `RPOP key [count]`: as LPOP, from the tail. O(N) in the elements popped.
fn rpop(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    pop(cx, args, false)
}

/// The body of LPOP and RPOP. The count's range is checked before the key (Redis 7.0
/// accepts 0, which replies an empty array for an existing list).
fn pop(cx: &mut Ctx, args: &[&[u8]], front: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(CommandError::arity(if front { "lpop" } else { "rpop" }));
    }
    let count = match args.get(2) {
        Some(a) => Some(ranged(a, 0, i64::MAX, NOT_POSITIVE)? as usize),
        None => None,
    };
    let key = args[1];
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(l) = lookup(sh, h, key, now, lru)? else {
        if count.is_some() {
            out.null_array();
        } else {
            out.null();
        }
        return Ok(());
    };
    let popped = match count {
        None => {
            l.pop_with(front, |e| out.bulk(&e));
            1
        }
        Some(n) => {
            let n = n.min(l.len());
            out.array(n);
            for _ in 0..n {
                l.pop_with(front, |e| out.bulk(&e));
            }
            n
        }
    };
    let emptied = l.is_empty();
    if emptied {
        sh.remove(h, key);
    }
    if popped > 0 {
        popped_event(cx, key, front, popped, emptied);
    }
    Ok(())
}

/// Pops from the first non-empty list of `keys` (`count` elements at most) and replies
/// `[key, [elements]]`. Returns false, replying nothing, if every key is missing. A key of
/// another type before the first list is WRONGTYPE.
fn mpop_serve(
    cx: &mut Ctx,
    keys: &[&[u8]],
    front: bool,
    count: usize,
) -> Result<bool, CommandError> {
    let (now, lru) = (cx.now, cx.lru());
    for &key in keys {
        let (sh, h, out) = cx.shard_out(key)?;
        let Some(l) = lookup(sh, h, key, now, lru)? else {
            continue;
        };
        let n = count.min(l.len());
        out.array(2);
        out.bulk(key);
        out.array(n);
        for _ in 0..n {
            l.pop_with(front, |e| out.bulk(&e));
        }
        let emptied = l.is_empty();
        if emptied {
            sh.remove(h, key);
        }
        // Replicas get LPOP / RPOP with the number actually popped, as Redis 7.0 sends it.
        let n_s = itoa::Buffer::new().format(n).as_bytes().to_vec();
        let pop: &[u8] = if front { b"LPOP" } else { b"RPOP" };
        cx.propagate(&[pop, key, &n_s]);
        popped_event(cx, key, front, n, emptied);
        return Ok(true);
    }
    Ok(false)
}

/// The parsed arguments of LMPOP / BLMPOP after the timeout.
struct MpopArgs<'a, 'b> {
    keys: &'b [&'a [u8]],
    front: bool,
    count: usize,
}

/// Parses `numkeys key [key ...] LEFT | RIGHT [COUNT count]` starting at `args[at]`, in
/// Redis's order of checks.
fn parse_mpop<'a, 'b>(args: &'b [&'a [u8]], at: usize) -> Result<MpopArgs<'a, 'b>, CommandError> {
    let numkeys = ranged(args[at], 1, i64::MAX, NUMKEYS_NOT_POSITIVE)? as u64;
    // At least the direction must follow the keys.
    if numkeys > (args.len() - at - 2) as u64 {
        return Err(E(SYNTAX));
    }
    let n = numkeys as usize;
    let keys = &args[at + 1..at + 1 + n];
    let front = side(args[at + 1 + n])?;
    let mut count = None;
    let mut j = at + 2 + n;
    while j < args.len() {
        if count.is_none() && j + 1 < args.len() && args[j].eq_ignore_ascii_case(b"count") {
            count = Some(ranged(args[j + 1], 1, i64::MAX, COUNT_NOT_POSITIVE)? as usize);
            j += 2;
        } else {
            return Err(E(SYNTAX));
        }
    }
    Ok(MpopArgs {
        keys,
        front,
        count: count.unwrap_or(1),
    })
}

/// The keys of a numkeys-style command whose count is at `args[at]`.
fn numkeys_keys(args: &[&[u8]], at: usize, db: usize, push: &mut dyn FnMut(usize, &[u8])) {
    let Some(n) = args.get(at).and_then(|a| parse_i64(a)) else {
        return;
    };
    if n >= 1 && (n as u64) <= (args.len().saturating_sub(at + 1)) as u64 {
        for key in &args[at + 1..at + 1 + n as usize] {
            push(db, key);
        }
    }
}

/// LMPOP's keys: `numkeys` at argument 1.
fn lmpop_keys(args: &[&[u8]], db: usize, push: &mut dyn FnMut(usize, &[u8])) {
    numkeys_keys(args, 1, db, push);
}

/// BLMPOP's keys: `numkeys` at argument 2, after the timeout.
fn blmpop_keys(args: &[&[u8]], db: usize, push: &mut dyn FnMut(usize, &[u8])) {
    numkeys_keys(args, 2, db, push);
}

/// `LMPOP numkeys key [key ...] LEFT | RIGHT [COUNT count]`: `[key, [elements]]` from the
/// first non-empty list, or a null array. O(N + M) for N keys and M elements.
fn lmpop(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let a = parse_mpop(args, 1)?;
    if !mpop_serve(cx, a.keys, a.front, a.count)? {
        cx.out.null_array();
    }
    Ok(())
}

// --- moves ------------------------------------------------------------------------------

/// Moves one element from an end of `src` to an end of `dst` and replies it. Returns false,
/// replying nothing, if `src` does not exist. Both types are checked before anything moves.
fn move_elem(
    cx: &mut Ctx,
    src: &[u8],
    dst: &[u8],
    from_left: bool,
    to_left: bool,
) -> Result<bool, CommandError> {
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(src)?;
    let Some(l) = lookup(sh, h, src, now, lru)? else {
        return Ok(false);
    };
    if src == dst {
        // A rotation: the list never becomes empty.
        let Some(p) = l.pop_raw(from_left) else {
            return Ok(false);
        };
        l.push_popped(&p, to_left);
        out.bulk(&p.elem());
        sh.signal_ready(dst);
        cx.dirty(1);
        cx.notify(LIST, if to_left { "lpush" } else { "rpush" }, dst);
        cx.notify(LIST, if from_left { "lpop" } else { "rpop" }, src);
        return Ok(true);
    }
    // The destination must be a list (or missing) before the source loses anything.
    {
        let (dsh, dh) = cx.shard(dst)?;
        lookup(dsh, dh, dst, now, lru)?;
    }
    let (sh, h) = cx.shard(src)?;
    let Some(l) = lookup(sh, h, src, now, lru)? else {
        return Ok(false);
    };
    let Some(p) = l.pop_raw(from_left) else {
        return Ok(false);
    };
    let emptied = l.is_empty();
    if emptied {
        sh.remove(h, src);
    }
    let (dsh, dh, out) = cx.shard_out(dst)?;
    match lookup(dsh, dh, dst, now, lru)? {
        Some(d) => {
            d.push_popped(&p, to_left);
            dsh.signal_ready(dst);
        }
        None => {
            let mut d = List::new();
            d.push_popped(&p, to_left);
            dsh.insert(dh, Entry::new(dst, Value::List(Box::new(d)), lru));
        }
    }
    out.bulk(&p.elem());
    cx.dirty(1);
    // Redis reports the push before the pop (and the source's deletion last).
    cx.notify(LIST, if to_left { "lpush" } else { "rpush" }, dst);
    cx.notify(LIST, if from_left { "lpop" } else { "rpop" }, src);
    if emptied {
        cx.notify(GENERIC, "del", src);
    }
    Ok(true)
}

/// `LMOVE source destination LEFT | RIGHT LEFT | RIGHT`: the element moved, or nil if the
/// source does not exist. O(1).
fn lmove(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (from, to) = (side(args[3])?, side(args[4])?);
    if !move_elem(cx, args[1], args[2], from, to)? {
        cx.out.null();
    }
    Ok(())
}

/// `RPOPLPUSH source destination`: LMOVE source destination RIGHT LEFT. O(1).
fn rpoplpush(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if !move_elem(cx, args[1], args[2], false, true)? {
        cx.out.null();
    }
    Ok(())
}

// --- reads ------------------------------------------------------------------------------

/// `LLEN key`: the number of elements, 0 if no key. O(1).
fn llen(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let n = lookup_read(server, sh, h, key, now, lru)?.map_or(0, |l| l.len());
    out.int(n as i64);
    Ok(())
}

/// `LINDEX key index`: the element at the index (negative from the tail), or nil. O(log C +
/// S) for C chunks and S elements scanned in one.
fn lindex(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(l) = lookup_read(server, sh, h, key, now, lru)? else {
        out.null();
        return Ok(());
    };
    match index(int(args[2])?, l.len()).and_then(|i| l.get(i)) {
        Some(e) => out.bulk(&e),
        None => out.null(),
    }
    Ok(())
}

/// `LRANGE key start stop`: the elements between two inclusive indexes (negative from the
/// tail). O(log C + S + N) for N elements returned.
fn lrange(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (start, stop) = (int(args[2])?, int(args[3])?);
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(l) = lookup_read(server, sh, h, key, now, lru)? else {
        out.array(0);
        return Ok(());
    };
    let (from, n) = span(start, stop, l.len());
    out.array(n);
    for e in l.iter_from(from).take(n) {
        out.bulk(&e);
    }
    Ok(())
}

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`: the index of the first
/// match (RANK n: the nth, negative from the tail), or with COUNT an array of up to that
/// many (0: all), looking at MAXLEN elements at most (0: all). O(N) in elements scanned.
fn lpos(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut j = 3;
    while j < args.len() {
        let (opt, val) = (args[j], args.get(j + 1));
        let Some(val) = val else {
            return Err(E(SYNTAX));
        };
        if opt.eq_ignore_ascii_case(b"rank") {
            rank = int(val)?;
            if rank == 0 {
                return Err(E(LPOS_RANK_ZERO));
            }
        } else if opt.eq_ignore_ascii_case(b"count") {
            count = Some(ranged(val, 0, i64::MAX, LPOS_COUNT_NEGATIVE)? as usize);
        } else if opt.eq_ignore_ascii_case(b"maxlen") {
            maxlen = ranged(val, 0, i64::MAX, LPOS_MAXLEN_NEGATIVE)? as usize;
        } else {
            return Err(E(SYNTAX));
        }
        j += 2;
    }
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(l) = lookup_read(server, sh, h, key, now, lru)? else {
        if count.is_some() {
            out.array(0);
        } else {
            out.null();
        }
        return Ok(());
    };
    // Matches to pass over before reporting. Redis negates RANK in a C long, so i64::MIN
    // stays negative and reports from the first match at the tail, like -1.
    let skip = if rank == i64::MIN {
        0
    } else {
        rank.unsigned_abs() - 1
    };
    let want = match count {
        None => 1,
        Some(0) => usize::MAX,
        Some(c) => c,
    };
    let mut seen = 0u64;
    let mut found: Vec<usize> = Vec::new();
    l.find(args[2], rank < 0, maxlen, |i| {
        seen += 1;
        if seen > skip {
            found.push(i);
        }
        found.len() < want
    });
    match count {
        None => match found.first() {
            Some(&i) => out.int(i as i64),
            None => out.null(),
        },
        Some(_) => {
            out.array(found.len());
            for i in found {
                out.int(i as i64);
            }
        }
    }
    Ok(())
}

// --- edits ------------------------------------------------------------------------------

/// `LSET key index element`: OK, "no such key", or "index out of range". O(log C + S).
fn lset(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(l) = lookup(sh, h, key, now, lru)? else {
        return Err(E(NO_SUCH_KEY));
    };
    let i = index(int(args[2])?, l.len()).ok_or(E(INDEX_OUT_OF_RANGE))?;
    l.set(i, args[3]);
    out.ok();
    cx.dirty(1);
    cx.notify(LIST, "lset", key);
    Ok(())
}

/// `LREM key count element`: removes the first `count` elements equal to `element` (from
/// the tail if negative, all if 0) and replies how many. O(N).
fn lrem(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let count = int(args[2])?;
    let key = args[1];
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(l) = lookup(sh, h, key, now, lru)? else {
        out.int(0);
        return Ok(());
    };
    // |i64::MIN| does not fit a C long: Redis then removes every match, as this does.
    let limit = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
    let removed = l.remove_matching(args[3], limit, count < 0);
    let emptied = l.is_empty();
    if emptied {
        sh.remove(h, key);
    }
    out.int(removed as i64);
    if removed > 0 {
        cx.dirty(removed as u64);
        cx.notify(LIST, "lrem", key);
        if emptied {
            cx.notify(GENERIC, "del", key);
        }
    }
    Ok(())
}

/// `LTRIM key start stop`: keeps only the elements between two inclusive indexes, deleting
/// the key if none remain. O(N) in the elements removed.
fn ltrim(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (start, stop) = (int(args[2])?, int(args[3])?);
    let key = args[1];
    let (now, lru) = (cx.now, cx.lru());
    let (server, client_id) = (cx.server, cx.client.id);
    let (sh, h, out) = cx.shard_out(key)?;
    let (mut found, mut removed, mut emptied) = (false, 0, false);
    if let Some(l) = lookup(sh, h, key, now, lru)? {
        let (from, n) = span(start, stop, l.len());
        removed = l.trim(from, from + n);
        emptied = l.is_empty();
        if emptied {
            sh.remove(h, key);
        }
        if removed == 0 {
            // Redis counts even a no-op LTRIM as a modification (WATCH, tracking).
            sh.touch_watched(key);
            if server.tracking.active() {
                server.tracking.invalidate(key, Some(client_id));
            }
        }
        found = true;
    }
    out.ok();
    cx.dirty(removed as u64);
    // Redis reports LTRIM on an existing list even when it removes nothing.
    if found {
        cx.notify(LIST, "ltrim", key);
        if emptied {
            cx.notify(GENERIC, "del", key);
        }
    }
    Ok(())
}

// --- blocking ---------------------------------------------------------------------------

/// `BLPOP key [key ...] timeout`: `[key, element]` from the head of the first non-empty
/// list, waiting up to `timeout` seconds (0: forever) for one. O(N) in keys.
fn blpop(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    bpop(cx, args, true)
}

/// `BRPOP key [key ...] timeout`: as BLPOP, from the tail. O(N) in keys.
fn brpop(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    bpop(cx, args, false)
}

/// The body of BLPOP and BRPOP: the timeout is parsed first, then the keys are tried in
/// order; a key of another type met before a non-empty list is WRONGTYPE, not a wait.
fn bpop(cx: &mut Ctx, args: &[&[u8]], front: bool) -> CmdResult {
    let timeout = parse_timeout(args[args.len() - 1])?;
    let keys = &args[1..args.len() - 1];
    let (now, lru) = (cx.now, cx.lru());
    for &key in keys {
        let (sh, h, out) = cx.shard_out(key)?;
        let Some(l) = lookup(sh, h, key, now, lru)? else {
            continue;
        };
        out.array(2);
        out.bulk(key);
        l.pop_with(front, |e| out.bulk(&e));
        let emptied = l.is_empty();
        if emptied {
            sh.remove(h, key);
        }
        // Replicas get the non-blocking form.
        let pop: &[u8] = if front { b"LPOP" } else { b"RPOP" };
        cx.propagate(&[pop, key]);
        popped_event(cx, key, front, 1, emptied);
        return Ok(());
    }
    cx.block(keys, timeout)
}

/// `BLMOVE source destination LEFT | RIGHT LEFT | RIGHT timeout`: LMOVE, waiting up to
/// `timeout` seconds for the source to get an element. O(1).
fn blmove(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (from, to) = (side(args[3])?, side(args[4])?);
    let timeout = parse_timeout(args[5])?;
    if move_elem(cx, args[1], args[2], from, to)? {
        // Replicas get the non-blocking form.
        cx.propagate(&[b"LMOVE", args[1], args[2], args[3], args[4]]);
        return Ok(());
    }
    block_move(cx, args[1], timeout)
}

/// Blocks BLMOVE / BRPOPLPUSH on their source. Inside EXEC, where nothing blocks, Redis
/// replies a nil bulk for these two rather than the null array of the other blocking pops.
fn block_move(cx: &mut Ctx, src: &[u8], timeout: Option<std::time::Duration>) -> CmdResult {
    if cx.in_exec() {
        cx.out.null();
        return Ok(());
    }
    cx.block(&[src], timeout)
}

/// `BRPOPLPUSH source destination timeout`: BLMOVE source destination RIGHT LEFT. O(1).
fn brpoplpush(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let timeout = parse_timeout(args[3])?;
    if move_elem(cx, args[1], args[2], false, true)? {
        // Replicas get the non-blocking form.
        cx.propagate(&[b"RPOPLPUSH", args[1], args[2]]);
        return Ok(());
    }
    block_move(cx, args[1], timeout)
}

/// `BLMPOP timeout numkeys key [key ...] LEFT | RIGHT [COUNT count]`: LMPOP, waiting up to
/// `timeout` seconds for one of the lists to get an element. O(N + M).
fn blmpop(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    // Redis checks every other argument before the timeout.
    let a = parse_mpop(args, 2)?;
    let timeout = parse_timeout(args[1])?;
    if mpop_serve(cx, a.keys, a.front, a.count)? {
        return Ok(());
    }
    cx.block(a.keys, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_clamp_like_redis() {
        assert_eq!(span(0, -1, 3), (0, 3));
        assert_eq!(span(-100, 100, 3), (0, 3));
        assert_eq!(span(5, 2, 3), (0, 0));
        assert_eq!(span(-1, -2, 3), (0, 0));
        assert_eq!(span(i64::MAX, i64::MIN, 3), (0, 0));
        assert_eq!(span(i64::MIN, i64::MAX, 3), (0, 3));
        assert_eq!(span(2, 2, 3), (2, 1));
        assert_eq!(span(0, 0, 0), (0, 0));
    }

    #[test]
    fn indexes_count_from_either_end() {
        assert_eq!(index(0, 3), Some(0));
        assert_eq!(index(-1, 3), Some(2));
        assert_eq!(index(-3, 3), Some(0));
        assert_eq!(index(-4, 3), None);
        assert_eq!(index(3, 3), None);
        assert_eq!(index(i64::MIN, 3), None);
        assert_eq!(index(i64::MAX, 3), None);
    }

    #[test]
    fn mpop_arguments_are_checked_in_redis_order() {
        let args: Vec<&[u8]> = vec![b"lmpop", b"2", b"a", b"b", b"left", b"count", b"3"];
        let a = parse_mpop(&args, 1).unwrap();
        assert_eq!(a.keys, [&b"a"[..], b"b"]);
        assert!(a.front);
        assert_eq!(a.count, 3);
        let bad: Vec<&[u8]> = vec![b"lmpop", b"0", b"a", b"left"];
        assert_eq!(parse_mpop(&bad, 1).err(), Some(E(NUMKEYS_NOT_POSITIVE)));
        let bad: Vec<&[u8]> = vec![b"lmpop", b"2", b"a", b"left"];
        assert_eq!(parse_mpop(&bad, 1).err(), Some(E(SYNTAX)));
        let bad: Vec<&[u8]> = vec![b"lmpop", b"1", b"a", b"left", b"count", b"0"];
        assert_eq!(parse_mpop(&bad, 1).err(), Some(E(COUNT_NOT_POSITIVE)));
        let mut keys = Vec::new();
        numkeys_keys(&args, 1, 0, &mut |_, k| keys.push(k.to_vec()));
        assert_eq!(keys, [b"a".to_vec(), b"b".to_vec()]);
        let huge: Vec<&[u8]> = vec![b"lmpop", b"9223372036854775807", b"a", b"left"];
        keys.clear();
        numkeys_keys(&huge, 1, 0, &mut |_, k| keys.push(k.to_vec()));
        assert!(keys.is_empty());
    }
}
