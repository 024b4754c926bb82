//! The stream family: XADD, XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XSETID and XREAD (with
//! BLOCK).
//!
//! Replies and errors follow Redis 7.0, including the order of checks: XADD rejects `0-0`
//! before looking the key up, options are parsed left to right with the first bad one
//! reported. An empty stream is kept (Redis never deletes a stream that loses its entries).
//! XADD signals the key ready, so a blocked XREAD is served inside the adder's locks (see
//! `blocking`); a blocked XREAD with `$` is stored with `$` replaced by the stream's last ID at
//! the time it blocked, so the re-run serves only entries added after the call.

use std::time::Duration;

use super::args::int;
use super::flags::*;
use super::server::help_reply;
use super::{CommandSpec, Ctx, Keys, Mode};
use crate::error::*;
use crate::notify::STREAM;
use crate::reply::Out;
use crate::server::Server;
use crate::storage::stream::{Consumer, EntryRef, Group, Nack, StreamId};
use crate::storage::{Entry, Shard, Stream, Value};
use crate::util::{parse_i64, upper};

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("xadd", -5, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), xadd)
        .group("stream")
        .since("5.0.0")
        .summary("Appends a new entry to a stream, optionally trimming it.")
        .complexity("O(1) to add, O(N) for the N entries trimmed.")
        .syntax("key [NOMKSTREAM] [MAXLEN | MINID [= | ~] threshold [LIMIT count]] * | id field value [field value ...]"),
    CommandSpec::new("xlen", 2, READONLY | FAST, Keys::Range(1, 1, 1), xlen)
        .group("stream")
        .since("5.0.0")
        .summary("Returns the number of entries of a stream.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new("xrange", -4, READONLY, Keys::Range(1, 1, 1), xrange)
        .group("stream")
        .since("5.0.0")
        .summary("Returns the entries of a stream between two IDs.")
        .complexity("O(log N + M) for M entries returned.")
        .syntax("key start end [COUNT count]"),
    CommandSpec::new("xrevrange", -4, READONLY, Keys::Range(1, 1, 1), xrevrange)
        .group("stream")
        .since("5.0.0")
        .summary("Returns the entries of a stream between two IDs, newest first.")
        .complexity("O(log N + M) for M entries returned.")
        .syntax("key end start [COUNT count]"),
    CommandSpec::new("xdel", -3, WRITE | FAST, Keys::Range(1, 1, 1), xdel)
        .group("stream")
        .since("5.0.0")
        .summary("Deletes entries of a stream by ID.")
        .complexity("O(log N + B) per ID, B the entries of its block.")
        .syntax("key id [id ...]"),
    CommandSpec::new("xtrim", -4, WRITE, Keys::Range(1, 1, 1), xtrim)
        .group("stream")
        .since("5.0.0")
        .summary("Deletes the oldest entries of a stream.")
        .complexity("O(N) for the N entries removed.")
        .syntax("key MAXLEN | MINID [= | ~] threshold [LIMIT count]"),
    CommandSpec::new("xsetid", -3, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), xsetid)
        .group("stream")
        .since("5.0.0")
        .summary("Sets the last ID (and counters) of a stream.")
        .complexity("O(1)")
        .syntax("key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]"),
    CommandSpec::new("xread", -4, READONLY | BLOCKING, Keys::Custom(xread_keys), xread)
        .group("stream")
        .since("5.0.0")
        .summary("Reads entries from streams after given IDs, optionally blocking.")
        .complexity("O(log N + M) per stream for M entries returned.")
        .syntax("[COUNT count] [BLOCK milliseconds] STREAMS key [key ...] id [id ...]"),
    CommandSpec::new("xreadgroup", -7, WRITE | BLOCKING, Keys::Custom(xread_keys), xreadgroup)
        .group("stream")
        .since("5.0.0")
        .summary("Reads entries for a consumer of a group, optionally blocking.")
        .complexity("O(log N + M) per stream for M entries returned.")
        .syntax("GROUP group consumer [COUNT count] [BLOCK milliseconds] [NOACK] STREAMS key [key ...] id [id ...]"),
    CommandSpec::new("xack", -4, WRITE | FAST, Keys::Range(1, 1, 1), xack)
        .group("stream")
        .since("5.0.0")
        .summary("Acknowledges entries of a group's pending list.")
        .complexity("O(log P) per ID, P the pending entries.")
        .syntax("key group id [id ...]"),
    CommandSpec::new("xpending", -3, READONLY, Keys::Range(1, 1, 1), xpending)
        .group("stream")
        .since("5.0.0")
        .summary("Returns the pending entries of a group.")
        .complexity("O(N) for N entries returned; O(C) consumers for the summary.")
        .syntax("key group [[IDLE min-idle-time] start end count [consumer]]"),
    CommandSpec::new("xclaim", -6, WRITE | FAST, Keys::Range(1, 1, 1), xclaim)
        .group("stream")
        .since("5.0.0")
        .summary("Changes the owner of pending entries of a group.")
        .complexity("O(log N) per ID.")
        .syntax("key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-time-milliseconds] [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID lastid]"),
    CommandSpec::new("xautoclaim", -6, WRITE | FAST, Keys::Range(1, 1, 1), xautoclaim)
        .group("stream")
        .since("6.2.0")
        .summary("Claims the pending entries of a group idle for long enough, from a cursor.")
        .complexity("O(1) per entry examined (at most 10 x COUNT).")
        .syntax("key group consumer min-idle-time start [COUNT count] [JUSTID]"),
    CommandSpec::new("xgroup", -2, 0, Keys::None, container)
        .group("stream")
        .since("5.0.0")
        .summary("A container for consumer group commands.")
        .complexity("Depends on subcommand.")
        .subcommands(XGROUP_SUBCOMMANDS),
    CommandSpec::new("xinfo", -2, 0, Keys::None, container)
        .group("stream")
        .since("5.0.0")
        .summary("A container for stream introspection commands.")
        .complexity("Depends on subcommand.")
        .subcommands(XINFO_SUBCOMMANDS),
];

const XGROUP_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "create",
        -5,
        WRITE | DENYOOM,
        Keys::Range(2, 2, 1),
        xgroup_create,
    )
    .group("stream")
    .since("5.0.0")
    .summary("Creates a consumer group.")
    .complexity("O(1)")
    .syntax("key group id | $ [MKSTREAM] [ENTRIESREAD entries-read]"),
    CommandSpec::new("setid", -5, WRITE, Keys::Range(2, 2, 1), xgroup_setid)
        .group("stream")
        .since("5.0.0")
        .summary("Sets the last delivered ID of a consumer group.")
        .complexity("O(1)")
        .syntax("key group id | $ [ENTRIESREAD entries-read]"),
    CommandSpec::new("destroy", 4, WRITE, Keys::Range(2, 2, 1), xgroup_destroy)
        .group("stream")
        .since("5.0.0")
        .summary("Destroys a consumer group.")
        .complexity("O(N) for its N pending entries.")
        .syntax("key group"),
    CommandSpec::new(
        "createconsumer",
        5,
        WRITE | DENYOOM,
        Keys::Range(2, 2, 1),
        xgroup_createconsumer,
    )
    .group("stream")
    .since("6.2.0")
    .summary("Creates a consumer in a consumer group.")
    .complexity("O(1)")
    .syntax("key group consumer"),
    CommandSpec::new(
        "delconsumer",
        5,
        WRITE,
        Keys::Range(2, 2, 1),
        xgroup_delconsumer,
    )
    .group("stream")
    .since("5.0.0")
    .summary("Deletes a consumer from a consumer group, with its pending entries.")
    .complexity("O(N) for its N pending entries.")
    .syntax("key group consumer"),
    CommandSpec::new(
        "help",
        2,
        super::flags::LOADING | STALE,
        Keys::None,
        xgroup_help,
    )
    .group("stream")
    .since("5.0.0")
    .summary("Lists the XGROUP subcommands.")
    .complexity("O(1)"),
];

const XINFO_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("stream", -3, READONLY, Keys::Range(2, 2, 1), xinfo_stream)
        .group("stream")
        .since("5.0.0")
        .summary("Returns information about a stream.")
        .complexity("O(1); FULL: O(N) for the N entries and pending entries returned.")
        .syntax("key [FULL [COUNT count]]"),
    CommandSpec::new("groups", 3, READONLY, Keys::Range(2, 2, 1), xinfo_groups)
        .group("stream")
        .since("5.0.0")
        .summary("Returns the consumer groups of a stream.")
        .complexity("O(G) groups.")
        .syntax("key"),
    CommandSpec::new(
        "consumers",
        4,
        READONLY,
        Keys::Range(2, 2, 1),
        xinfo_consumers,
    )
    .group("stream")
    .since("5.0.0")
    .summary("Returns the consumers of a consumer group.")
    .complexity("O(C) consumers.")
    .syntax("key group"),
    CommandSpec::new(
        "help",
        2,
        super::flags::LOADING | STALE,
        Keys::None,
        xinfo_help,
    )
    .group("stream")
    .since("5.0.0")
    .summary("Lists the XINFO subcommands.")
    .complexity("O(1)"),
];

/// `XGROUP HELP`: the subcommands, in Redis's help layout. O(1).
fn xgroup_help(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    help_reply(
        &mut cx.out,
        "XGROUP",
        &[
            "CREATE <key> <groupname> <id|$> [option]",
            "    Make a consumer group that delivers the entries after <id> ($: the last one).",
            "    Options: MKSTREAM (make an empty stream if <key> is missing), ENTRIESREAD <n>.",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Add a consumer to a group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove a consumer and its pending entries from a group.",
            "DESTROY <key> <groupname>",
            "    Remove a consumer group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD <n>]",
            "    Move a group's last delivered ID.",
        ],
    );
    Ok(())
}

/// `XINFO HELP`: the subcommands, in Redis's help layout. O(1).
fn xinfo_help(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    help_reply(
        &mut cx.out,
        "XINFO",
        &[
            "CONSUMERS <key> <groupname>",
            "    List the consumers of a group.",
            "GROUPS <key>",
            "    List the consumer groups of a stream.",
            "STREAM <key> [FULL [COUNT <count>]]",
            "    Describe a stream; FULL adds its entries, groups and pending entries.",
        ],
    );
    Ok(())
}

/// The XGROUP / XINFO containers: the dispatcher always resolves a subcommand first.
fn container(_cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    Err(CommandError::unknown_subcommand(
        args[0],
        args.get(1).copied().unwrap_or_default(),
    ))
}

/// Redis's `string2ull`: a strict decimal, or what C's `strtoull` accepts (leading blanks,
/// a sign, leading zeros); a negative strict decimal is refused.
fn parse_u64_loose(s: &[u8]) -> Option<u64> {
    if let Some(v) = parse_i64(s) {
        return u64::try_from(v).ok();
    }
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    if i == s.len() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in &s[i..] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Parses a stream ID (Redis's `streamGenericParseIDOrReply`): `-` and `+` unless `strict`,
/// `ms` (sequence `missing_seq`) or `ms-seq`; with `auto_seq`, `ms-*` gives `(id, false)`.
fn parse_id(
    a: &[u8],
    missing_seq: u64,
    strict: bool,
    auto_seq: bool,
) -> Result<(StreamId, bool), CommandError> {
    let bad = || E(STREAM_ID_INVALID);
    if a.len() > 127 {
        return Err(bad());
    }
    if a == b"-" || a == b"+" {
        if strict {
            return Err(bad());
        }
        return Ok((
            if a == b"-" {
                StreamId::MIN
            } else {
                StreamId::MAX
            },
            true,
        ));
    }
    match a.iter().position(|&c| c == b'-') {
        Some(p) => {
            let ms = parse_u64_loose(&a[..p]).ok_or_else(bad)?;
            let rest = &a[p + 1..];
            if auto_seq && rest == b"*" {
                return Ok((StreamId::new(ms, 0), false));
            }
            let seq = parse_u64_loose(rest).ok_or_else(bad)?;
            Ok((StreamId::new(ms, seq), true))
        }
        None => Ok((
            StreamId::new(parse_u64_loose(a).ok_or_else(bad)?, missing_seq),
            true,
        )),
    }
}

/// The stream at `key`, WRONGTYPE for another type.
fn lookup<'s>(
    sh: &'s mut Shard,
    h: u64,
    key: &[u8],
    now: u64,
    lru: u32,
) -> Result<Option<&'s mut Stream>, CommandError> {
    let Some(e) = super::lookup(sh, h, key, now, lru) else {
        return Ok(None);
    };
    match e.value_mut() {
        Value::Stream(s) => Ok(Some(s)),
        _ => Err(CommandError::wrong_type()),
    }
}

/// [`lookup`] for a read (Redis's `lookupKeyRead`): counts a keyspace hit or miss and
/// raises `keymiss` on a miss.
fn lookup_read<'s>(
    server: &Server,
    sh: &'s mut Shard,
    h: u64,
    key: &[u8],
    now: u64,
    lru: u32,
) -> Result<Option<&'s mut Stream>, CommandError> {
    match super::lookup_read(server, sh, h, key, now, lru) {
        Some(e) => match e.value_mut() {
            Value::Stream(s) => Ok(Some(s)),
            _ => Err(CommandError::wrong_type()),
        },
        None => Ok(None),
    }
}

/// [`lookup_read`] with `Some(server)`, a plain [`lookup`] with `None`.
fn lookup_read_unless<'s>(
    reader: Option<&Server>,
    sh: &'s mut Shard,
    h: u64,
    key: &[u8],
    now: u64,
    lru: u32,
) -> Result<Option<&'s mut Stream>, CommandError> {
    match reader {
        Some(server) => lookup_read(server, sh, h, key, now, lru),
        None => lookup(sh, h, key, now, lru),
    }
}

fn id_bulk(out: &mut Out, id: StreamId) {
    let mut buf = [0u8; 41];
    out.bulk(id.write_to(&mut buf));
}

/// One entry: `[id, [field, value, ...]]`.
fn reply_entry(out: &mut Out, e: &EntryRef) {
    out.array(2);
    id_bulk(out, e.id);
    out.array(e.pairs() * 2);
    for s in e.strings() {
        out.bulk(s);
    }
}

/// Replies entries from an iterator, at most `count` (0 = all), with a deferred length.
fn reply_entries<'e>(out: &mut Out, it: impl Iterator<Item = EntryRef<'e>>, count: usize) -> usize {
    // The count is unknown until the walk ends: write the entries to a side buffer.
    let mut body = Vec::new();
    let mut n = 0;
    {
        let mut o = Out::new(&mut body, out.resp3);
        for e in it {
            if count != 0 && n >= count {
                break;
            }
            reply_entry(&mut o, &e);
            n += 1;
        }
    }
    out.array(n);
    out.raw(&body);
    n
}

/// The trimming options of XADD and XTRIM.
#[derive(Default)]
struct Trim {
    maxlen: Option<usize>,
    minid: Option<StreamId>,
    approx: bool,
    limit: usize,
}

impl Trim {
    fn active(&self) -> bool {
        self.maxlen.is_some() || self.minid.is_some()
    }

    fn apply(&self, s: &mut Stream) -> usize {
        if let Some(max) = self.maxlen {
            s.trim(|len, _| len > max, self.approx, self.limit)
        } else if let Some(min) = self.minid {
            s.trim(|_, id| id < min, self.approx, self.limit)
        } else {
            0
        }
    }
}

/// Parses XADD's / XTRIM's options from `args[2..]`. Returns the trim, NOMKSTREAM, the index
/// where parsing stopped (XADD: the ID), and for XADD the ID with its `seq_given` flag (None
/// for `*`).
/// `trusted`: the command comes from this replica's primary, whose rewritten exact trims
/// may keep a LIMIT: it is accepted and ignored, as Redis does for its master.
#[allow(clippy::type_complexity)]
fn parse_add_or_trim(
    args: &[&[u8]],
    xadd: bool,
    trusted: bool,
    node_entries: usize,
) -> Result<(Trim, bool, usize, Option<(StreamId, bool)>), CommandError> {
    let mut t = Trim::default();
    let mut nomk = false;
    let mut limit_given = false;
    let mut id = None;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = upper(args[i]);
        if xadd && args[i] == b"*" {
            break;
        } else if (opt == "MAXLEN" || opt == "MINID") && more > 0 {
            if t.active() {
                return Err(E(XTRIM_BOTH));
            }
            t.approx = false;
            let next = args[i + 1];
            if more >= 2 && next == b"~" {
                t.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            if opt == "MAXLEN" {
                let n = int(args[i + 1])?;
                if n < 0 {
                    return Err(E(XTRIM_MAXLEN_NEGATIVE));
                }
                t.maxlen = Some(n as usize);
            } else {
                t.minid = Some(parse_id(args[i + 1], 0, true, false)?.0);
            }
            i += 1;
        } else if opt == "LIMIT" && more > 0 {
            let n = int(args[i + 1])?;
            if n < 0 {
                return Err(E(XTRIM_LIMIT_NEGATIVE));
            }
            t.limit = n as usize;
            limit_given = true;
            i += 1;
        } else if xadd && opt == "NOMKSTREAM" {
            nomk = true;
        } else if xadd {
            id = Some(parse_id(args[i], 0, true, true)?);
            break;
        } else {
            return Err(E(SYNTAX));
        }
        i += 1;
    }
    if t.limit != 0 && !t.active() {
        return Err(E(XTRIM_LIMIT_NO_STRATEGY));
    }
    if !xadd && !t.active() {
        return Err(E(XTRIM_NO_STRATEGY));
    }
    if trusted {
        t.limit = 0;
    } else if limit_given {
        if !t.approx {
            return Err(E(XTRIM_LIMIT_EXACT));
        }
    } else if t.approx {
        // Redis's default effort bound: 100 nodes' worth of entries (none when nodes have
        // no entry limit).
        t.limit = 100 * node_entries;
    }
    Ok((t, nomk, i, id))
}

/// `XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT n]] *|id field value ...`:
/// the new entry's ID. O(1) plus the entries trimmed.
fn xadd(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let node_limits = cx.server.stream_node_limits();
    let (trim, nomk, idx, id) =
        parse_add_or_trim(args, true, cx.trusted_stream(), node_limits.entries)?;
    let fields = &args[(idx + 1).min(args.len())..];
    if fields.len() < 2 || !fields.len().is_multiple_of(2) {
        return Err(CommandError::arity("xadd"));
    }
    if let Some((StreamId { ms: 0, seq: 0 }, true)) = id {
        return Err(E(XADD_ID_ZERO));
    }
    let (now, lru, cx_prop) = (cx.now, cx.lru(), cx.propagating());
    let (sh, h, out) = cx.shard_out(key)?;
    let mut created = None;
    let s = match lookup(sh, h, key, now, lru)? {
        Some(s) => s,
        None if nomk => {
            out.null();
            return Ok(());
        }
        None => created.insert(Stream::new()),
    };
    let last = s.last_id;
    if last == StreamId::MAX {
        return Err(E(XADD_EXHAUSTED));
    }
    let new_id = match id {
        Some((id, true)) => id,
        Some((id, false)) if id.ms == last.ms => {
            if last.seq == u64::MAX {
                return Err(E(XADD_ID_SMALL));
            }
            StreamId::new(id.ms, last.seq + 1)
        }
        Some((id, false)) => id,
        None if now > last.ms => StreamId::new(now, 0),
        None => last.next().ok_or(E(XADD_ID_SMALL))?,
    };
    if new_id <= last {
        return Err(E(XADD_ID_SMALL));
    }
    s.append_with(new_id, fields, node_limits);
    let trimmed = if trim.active() { trim.apply(s) } else { 0 };
    // Replicas get the generated ID and the exact trim that happened (Redis 7.0's rewrite).
    let rewritten = if cx_prop && (!matches!(id, Some((_, true))) || trim.approx) {
        Some(rewrite_add_or_trim(args, idx, &trim, s, Some(new_id)))
    } else {
        None
    };
    match created {
        Some(s) => {
            sh.insert(h, Entry::new(key, Value::Stream(Box::new(s)), lru));
        }
        None => sh.signal_ready(key),
    }
    id_bulk(out, new_id);
    cx.dirty(1);
    if let Some(argv) = rewritten {
        let argv: Vec<&[u8]> = argv.iter().map(|a| &a[..]).collect();
        cx.propagate(&argv);
    }
    cx.notify(STREAM, "xadd", key);
    if trimmed > 0 {
        cx.notify(STREAM, "xtrim", key);
    }
    Ok(())
}

/// XADD / XTRIM as replicas must run them (Redis 7.0's rewrite): an approximate trim
/// (`~`) becomes the exact one it amounted to (`=` and the length left, or the first ID
/// left), and XADD's `*` / `ms-*` the ID it generated (`new_id`, at `args[id_idx]`).
fn rewrite_add_or_trim(
    args: &[&[u8]],
    id_idx: usize,
    trim: &Trim,
    s: &Stream,
    new_id: Option<StreamId>,
) -> Vec<Vec<u8>> {
    let mut argv: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
    if let Some(id) = new_id {
        if let Some(a) = argv.get_mut(id_idx) {
            *a = id.fmt().into_bytes();
        }
    }
    if trim.approx {
        // The strategy is before the ID (XADD) or anywhere in the options (XTRIM).
        let opts = 2..id_idx.min(args.len());
        if let Some(i) = opts.clone().find(|&i| {
            (args[i].eq_ignore_ascii_case(b"MAXLEN") || args[i].eq_ignore_ascii_case(b"MINID"))
                && args.get(i + 1) == Some(&&b"~"[..])
        }) {
            argv[i + 1] = b"=".to_vec();
            if i + 2 < argv.len() {
                argv[i + 2] = if trim.maxlen.is_some() {
                    s.len().to_string().into_bytes()
                } else {
                    // An emptied stream reports the largest ID as its first, as Redis.
                    s.first().map_or(StreamId::MAX, |e| e.id).fmt().into_bytes()
                };
            }
        }
    }
    argv
}

/// `XLEN key`: the number of entries (0 for a missing key). O(1).
fn xlen(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let n = lookup_read(server, sh, h, key, now, lru)?.map_or(0, |s| s.len());
    out.int(n as i64);
    Ok(())
}

/// Parses a range bound: `(` makes it exclusive (moved one ID inwards).
fn range_bound(a: &[u8], start: bool) -> Result<StreamId, CommandError> {
    if let Some(rest) = a.strip_prefix(b"(") {
        let (id, _) = parse_id(rest, if start { 0 } else { u64::MAX }, true, false)?;
        return if start {
            id.next().ok_or(E(XRANGE_BAD_START))
        } else {
            id.prev().ok_or(E(XRANGE_BAD_END))
        };
    }
    Ok(parse_id(a, if start { 0 } else { u64::MAX }, false, false)?.0)
}

/// `XRANGE key start end [COUNT n]`: the entries from start to end. O(log N + M).
fn xrange(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    range_cmd(cx, args, false)
}

/// `XREVRANGE key end start [COUNT n]`: the entries from end down to start. O(log N + M).
fn xrevrange(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    range_cmd(cx, args, true)
}

fn range_cmd(cx: &mut Ctx, args: &[&[u8]], rev: bool) -> CmdResult {
    let key = args[1];
    let (sa, ea) = if rev {
        (args[3], args[2])
    } else {
        (args[2], args[3])
    };
    let start = range_bound(sa, true)?;
    let end = range_bound(ea, false)?;
    let mut count: i64 = -1;
    let mut i = 4;
    while i < args.len() {
        if upper(args[i]) == "COUNT" && i + 1 < args.len() {
            count = int(args[i + 1])?.max(0);
            i += 2;
        } else {
            return Err(E(SYNTAX));
        }
    }
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(s) = lookup_read(server, sh, h, key, now, lru)? else {
        out.array(0);
        return Ok(());
    };
    if count == 0 {
        // Redis answers an explicit COUNT 0 (or negative) on an existing key with a null.
        out.null_array();
        return Ok(());
    }
    let count = if count < 0 { 0 } else { count as usize };
    if rev {
        reply_entries(out, s.range_rev(start, end), count);
    } else {
        reply_entries(out, s.range(start, end), count);
    }
    Ok(())
}

/// `XDEL key id [id ...]`: how many entries were deleted. O(log N + B) per ID.
fn xdel(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    // A missing key answers 0 before the IDs are looked at (as in Redis); otherwise every
    // ID is validated before anything is deleted.
    let Some(s) = lookup(sh, h, key, now, lru)? else {
        out.int(0);
        return Ok(());
    };
    let mut ids = Vec::with_capacity((args.len() - 2).min(1024));
    for a in &args[2..] {
        ids.push(parse_id(a, 0, true, false)?.0);
    }
    let n = ids.into_iter().filter(|&id| s.remove(id)).count();
    out.int(n as i64);
    if n > 0 {
        cx.dirty(n as u64);
        cx.notify(STREAM, "xdel", key);
    }
    Ok(())
}

/// `XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT n]`: how many entries were removed. O(N)
/// for N removed.
fn xtrim(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let node_entries = cx.server.stream_node_limits().entries;
    let (trim, _, idx, _) = parse_add_or_trim(args, false, cx.trusted_stream(), node_entries)?;
    debug_assert!(idx >= args.len());
    let (now, lru, prop) = (cx.now, cx.lru(), cx.propagating());
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(s) = lookup(sh, h, key, now, lru)? else {
        out.int(0);
        return Ok(());
    };
    let n = trim.apply(s);
    out.int(n as i64);
    // An approximate trim reaches replicas as the exact one that happened.
    let rewritten = (prop && n > 0 && trim.approx)
        .then(|| rewrite_add_or_trim(args, args.len(), &trim, s, None));
    if n > 0 {
        cx.dirty(n as u64);
        if let Some(argv) = rewritten {
            let argv: Vec<&[u8]> = argv.iter().map(|a| &a[..]).collect();
            cx.propagate(&argv);
        }
        cx.notify(STREAM, "xtrim", key);
    }
    Ok(())
}

/// `XSETID key last-id [ENTRIESADDED n] [MAXDELETEDID id]`: OK. O(1).
fn xsetid(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (id, _) = parse_id(args[2], 0, true, false)?;
    let mut entries_added: Option<u64> = None;
    let mut max_del: Option<StreamId> = None;
    let mut i = 3;
    while i < args.len() {
        let opt = upper(args[i]);
        if opt == "ENTRIESADDED" && i + 1 < args.len() {
            let n = int(args[i + 1])?;
            if n < 0 {
                return Err(E(XSETID_ENTRIES_NEGATIVE));
            }
            entries_added = Some(n as u64);
            i += 2;
        } else if opt == "MAXDELETEDID" && i + 1 < args.len() {
            let m = parse_id(args[i + 1], 0, true, false)?.0;
            if id < m {
                return Err(E(XSETID_MAXDEL_BIG));
            }
            max_del = Some(m);
            i += 2;
        } else {
            return Err(E(SYNTAX));
        }
    }
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(s) = lookup(sh, h, key, now, lru)? else {
        return Err(E(NO_SUCH_KEY));
    };
    if s.last().is_some_and(|e| id < e.id) {
        return Err(E(XSETID_SMALL));
    }
    if let Some(n) = entries_added {
        if (n as usize) < s.len() {
            return Err(E(XSETID_ENTRIES_SMALL));
        }
    }
    s.last_id = id;
    if let Some(n) = entries_added {
        s.entries_added = n;
    }
    if let Some(m) = max_del {
        s.max_deleted = m;
    }
    out.ok();
    cx.dirty(1);
    cx.keep_watches(1);
    cx.notify(STREAM, "xsetid", key);
    Ok(())
}

/// Where XREAD's STREAMS keyword is: the index of its first key (scanning options as XREAD
/// does, so `COUNT streams` is not mistaken for it).
fn streams_pos(args: &[&[u8]]) -> Option<usize> {
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let o = upper(args[i]);
        if (o == "BLOCK" || o == "COUNT") && more > 0 {
            i += 2;
        } else if o == "STREAMS" && more > 0 {
            return Some(i + 1);
        } else if o == "GROUP" && more >= 2 {
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

/// XREAD's keys: the first half of what follows STREAMS.
fn xread_keys(args: &[&[u8]], db: usize, push: &mut dyn FnMut(usize, &[u8])) {
    if let Some(p) = streams_pos(args) {
        let n = (args.len() - p) / 2;
        for k in &args[p..p + n] {
            push(db, k);
        }
    }
}

/// `XREAD [COUNT n] [BLOCK ms] STREAMS key ... id ...`: per stream with entries after its ID,
/// `[key, entries]` (a map in RESP3); a null array if none (after BLOCK's timeout). O(log N +
/// M) per stream.
fn xread(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    read_cmd(cx, args, false)
}

/// `XREADGROUP GROUP g consumer [COUNT n] [BLOCK ms] [NOACK] STREAMS key ... id ...`: as
/// XREAD, delivering new entries (`>`) to the consumer and recording them as pending, or
/// re-reading its pending entries after an explicit ID. O(log N + M) per stream.
fn xreadgroup(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    read_cmd(cx, args, true)
}

fn no_group_read(key: &[u8], group: &[u8]) -> CommandError {
    CommandError::Owned(format!(
        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

/// The body of XREAD and XREADGROUP.
fn read_cmd(cx: &mut Ctx, args: &[&[u8]], xgroup: bool) -> CmdResult {
    let mut count: usize = 0;
    let mut block: Option<Option<Duration>> = None;
    let mut streams = 0;
    let mut group: Option<(&[u8], &[u8])> = None;
    let mut noack = false;
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let o = upper(args[i]);
        if o == "BLOCK" && more > 0 {
            let ms = parse_i64(args[i + 1]).ok_or(E(TIMEOUT_NOT_INTEGER))?;
            if ms < 0 {
                return Err(E(TIMEOUT_NEGATIVE));
            }
            block = Some((ms > 0).then(|| Duration::from_millis(ms as u64)));
            i += 2;
        } else if o == "COUNT" && more > 0 {
            count = int(args[i + 1])?.max(0) as usize;
            i += 2;
        } else if o == "STREAMS" && more > 0 {
            streams = i + 1;
            if !(args.len() - streams).is_multiple_of(2) {
                // Redis 7.0 names XREAD in this error for XREADGROUP too.
                return Err(E(XREAD_UNBALANCED));
            }
            break;
        } else if o == "GROUP" && more >= 2 {
            if !xgroup {
                return Err(E(XREAD_GROUP));
            }
            group = Some((args[i + 1], args[i + 2]));
            i += 3;
        } else if o == "NOACK" {
            if !xgroup {
                return Err(E(XREAD_NOACK));
            }
            noack = true;
            i += 1;
        } else {
            return Err(E(SYNTAX));
        }
    }
    if streams == 0 {
        return Err(E(SYNTAX));
    }
    if xgroup && group.is_none() {
        return Err(E(XREADGROUP_NO_GROUP));
    }
    let n = (args.len() - streams) / 2;
    let keys = &args[streams..streams + n];
    let id_args = &args[streams + n..];
    let (now, lru) = (cx.now, cx.lru());
    // Both passes read each key as Redis does (two `keymiss` events for a missing key),
    // except when a write serves this blocked command: Redis then reads nothing.
    let reader = (!matches!(cx.mode, Mode::Serving { .. })).then_some(cx.server);
    // Resolve every ID first (WRONGTYPE, missing groups and parse errors in key order, as
    // Redis). `>` is StreamId::MAX.
    let mut ids: Vec<StreamId> = Vec::with_capacity(n.min(1024));
    let mut dollar = false;
    for (k, a) in keys.iter().zip(id_args) {
        let (sh, h) = cx.shard(k)?;
        let s = lookup_read_unless(reader, sh, h, k, now, lru)?;
        if let Some((g, _)) = group {
            if !s.as_ref().is_some_and(|s| s.groups.contains_key(g)) {
                return Err(no_group_read(k, g));
            }
        }
        if *a == b"$" {
            if xgroup {
                return Err(E(XREADGROUP_DOLLAR));
            }
            dollar = true;
            ids.push(s.map_or(StreamId::MIN, |s| s.last_id));
        } else if *a == b">" {
            if !xgroup {
                return Err(E(XREAD_GT));
            }
            ids.push(StreamId::MAX);
        } else {
            ids.push(parse_id(a, 0, true, false)?.0);
        }
    }
    let mut body = Vec::new();
    let mut served = 0;
    let resp3 = cx.out.resp3;
    let mut created: Vec<&[u8]> = Vec::new();
    // What replicas get instead of XREADGROUP (Redis 7.0): an XCLAIM per delivered entry,
    // or with NOACK the consumer's creation and the group's new last ID.
    let prop = xgroup && cx.propagating();
    let mut effects: Vec<Vec<Vec<u8>>> = Vec::new();
    for (k, &after) in keys.iter().zip(&ids) {
        let (sh, h) = cx.shard(k)?;
        let Some(s) = lookup_read_unless(reader, sh, h, k, now, lru)? else {
            continue;
        };
        let mut o = Out::new(&mut body, resp3);
        if let Some((gname, cname)) = group {
            let newest = (!s.is_empty()).then(|| s.last_valid_id());
            let g = s
                .groups
                .get_mut(gname)
                .ok_or_else(|| no_group_read(k, gname))?;
            let (history, from) = if after != StreamId::MAX {
                (true, after)
            } else if newest.is_some_and(|n| n > g.last_id) {
                (false, g.last_id)
            } else {
                (false, StreamId::MAX)
            };
            if !history && from == StreamId::MAX {
                continue;
            }
            // Redis 7.0 makes (or refreshes) the consumer only when it serves it.
            let last_before = g.last_id;
            let c = match g.consumers.get_mut(cname) {
                Some(c) => c,
                None => {
                    created.push(k);
                    // With NOACK nothing else tells the replicas about the consumer
                    // (a read of the history included).
                    if prop && noack {
                        effects.push(vec![
                            b"XGROUP".to_vec(),
                            b"CREATECONSUMER".to_vec(),
                            k.to_vec(),
                            gname.to_vec(),
                            cname.to_vec(),
                        ]);
                    }
                    g.consumers.entry(cname.into()).or_default()
                }
            };
            c.seen_time = now;
            served += 1;
            if !resp3 {
                o.array(2);
            }
            o.bulk(k);
            let start = from.next().unwrap_or(StreamId::MAX);
            if history {
                reply_history(&mut o, s, gname, cname, start, count, now)
                    .ok_or_else(|| no_group_read(k, gname))?;
            } else {
                let (g, delivered) = deliver(&mut o, s, gname, cname, start, count, noack, now)
                    .ok_or_else(|| no_group_read(k, gname))?;
                if prop && !noack {
                    for (id, last) in delivered {
                        effects.push(xclaim_effect(k, gname, cname, id, now, 1, last));
                    }
                } else if prop && g.last_id != last_before {
                    effects.push(setid_effect(k, gname, g));
                }
            }
            continue;
        }
        if s.is_empty() || s.last_valid_id() <= after {
            continue;
        }
        let Some(start) = after.next() else {
            continue;
        };
        if !resp3 {
            o.array(2);
        }
        o.bulk(k);
        reply_entries(&mut o, s.range(start, StreamId::MAX), count);
        served += 1;
    }
    for k in created {
        cx.notify(STREAM, "xgroup-createconsumer", k);
    }
    if served > 0 {
        if resp3 {
            cx.out.map(served);
        } else {
            cx.out.array(served);
        }
        cx.out.raw(&body);
        if xgroup {
            cx.dirty(served as u64);
            // Never XREADGROUP itself: history reads propagate nothing.
            cx.propagate_owned(effects);
        }
        return Ok(());
    }
    match block {
        Some(timeout) => {
            if dollar {
                // Block with `$` replaced by the IDs seen now, so a re-run serves only what
                // was added after this call.
                let mut argv: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
                for (j, a) in id_args.iter().enumerate() {
                    if *a == b"$" {
                        argv[streams + n + j] = ids[j].fmt().into_bytes();
                    }
                }
                cx.block_with_argv(keys, timeout, argv)
            } else {
                cx.block(keys, timeout)
            }
        }
        None => {
            cx.out.null_array();
            Ok(())
        }
    }
}

/// Delivers entries from `start` on to a consumer (XREADGROUP `>`): replies them, advances
/// the group's last ID and read counter, and records each entry as pending unless `noack`.
/// Returns the group and each delivered ID with the group's last ID right after it (for
/// replication); None if there is no group `gname` (the reply is then incomplete: the
/// caller fails the command).
#[allow(clippy::too_many_arguments)]
fn deliver<'s>(
    o: &mut Out,
    s: &'s mut Stream,
    gname: &[u8],
    cname: &[u8],
    start: StreamId,
    count: usize,
    noack: bool,
    now: u64,
) -> Option<(&'s Group, Vec<(StreamId, StreamId)>)> {
    let take = if count == 0 { usize::MAX } else { count };
    // Each entry with what the group's read counter needs of the stream (whether deleted
    // entries follow it, its estimated position), read before the group is borrowed.
    let entries: Vec<(StreamId, bool, Option<i64>)> = s
        .range(start, StreamId::MAX)
        .take(take)
        .map(|e| {
            let est = (s.entries_added > 0).then(|| s.estimate_distance(e.id));
            (e.id, s.has_tombstones(e.id, StreamId::MAX), est)
        })
        .collect();
    o.array(entries.len());
    for e in s.range(start, StreamId::MAX).take(entries.len()) {
        reply_entry(o, &e);
    }
    let g = s.groups.get_mut(gname)?;
    let mut delivered = Vec::with_capacity(entries.len());
    for (id, tomb, est) in entries {
        if id > g.last_id {
            if g.entries_read != -1 && !tomb {
                g.entries_read += 1;
            } else if let Some(e) = est {
                g.entries_read = e;
            }
            g.last_id = id;
        }
        if !noack {
            let cname_box: Box<[u8]> = cname.into();
            if let Some(old) = g.pel.insert(
                id,
                Nack {
                    consumer: cname_box.clone(),
                    delivery_time: now,
                    delivery_count: 1,
                },
            ) {
                if let Some(c) = g.consumers.get_mut(&old.consumer) {
                    c.pel.remove(&id);
                }
            }
            if let Some(c) = g.consumers.get_mut(cname) {
                c.pel.insert(id);
            }
        }
        delivered.push((id, g.last_id));
    }
    Some((g, delivered))
}

/// `XCLAIM key group consumer 0 id TIME ms RETRYCOUNT n FORCE JUSTID LASTID last`: how Redis
/// 7.0 replicates a delivery or claim of one pending entry (and the removal of a deleted
/// one), so the replica's pending list matches.
fn xclaim_effect(
    key: &[u8],
    group: &[u8],
    consumer: &[u8],
    id: StreamId,
    delivery_time: u64,
    delivery_count: u64,
    last_id: StreamId,
) -> Vec<Vec<u8>> {
    vec![
        b"XCLAIM".to_vec(),
        key.to_vec(),
        group.to_vec(),
        consumer.to_vec(),
        b"0".to_vec(),
        id.fmt().into_bytes(),
        b"TIME".to_vec(),
        delivery_time.to_string().into_bytes(),
        b"RETRYCOUNT".to_vec(),
        delivery_count.to_string().into_bytes(),
        b"FORCE".to_vec(),
        b"JUSTID".to_vec(),
        b"LASTID".to_vec(),
        last_id.fmt().into_bytes(),
    ]
}

/// `XGROUP SETID key group last ENTRIESREAD n`: a group's position, replicated.
fn setid_effect(key: &[u8], group: &[u8], g: &Group) -> Vec<Vec<u8>> {
    vec![
        b"XGROUP".to_vec(),
        b"SETID".to_vec(),
        key.to_vec(),
        group.to_vec(),
        g.last_id.fmt().into_bytes(),
        b"ENTRIESREAD".to_vec(),
        g.entries_read.to_string().into_bytes(),
    ]
}

/// Re-reads a consumer's pending entries from `start` (XREADGROUP with an ID): each one
/// still in the stream counts as delivered again; deleted ones reply `[id, nil]`. None if
/// there is no group `gname` (the caller fails the command); a missing consumer has
/// nothing pending.
fn reply_history(
    o: &mut Out,
    s: &mut Stream,
    gname: &[u8],
    cname: &[u8],
    start: StreamId,
    count: usize,
    now: u64,
) -> Option<()> {
    let ids: Vec<StreamId> = s
        .groups
        .get(gname)?
        .consumers
        .get(cname)
        .map(|c| {
            c.pel
                .range(start..)
                .take(if count == 0 { usize::MAX } else { count })
                .copied()
                .collect()
        })
        .unwrap_or_default();
    let mut bumped = Vec::with_capacity(ids.len());
    o.array(ids.len());
    for &id in &ids {
        match s.range(id, id).next() {
            Some(e) => {
                reply_entry(o, &e);
                bumped.push(id);
            }
            None => {
                o.array(2);
                id_bulk(o, id);
                o.null_array();
            }
        }
    }
    let g = s.groups.get_mut(gname)?;
    for id in bumped {
        if let Some(n) = g.pel.get_mut(&id) {
            n.delivery_time = now;
            n.delivery_count += 1;
        }
    }
    Some(())
}
fn no_group(key: &[u8], group: &[u8]) -> CommandError {
    CommandError::Owned(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(key)
    ))
}

fn no_key_or_group(key: &[u8], group: &[u8]) -> CommandError {
    CommandError::Owned(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

/// Parses an ENTRIESREAD value (-1 = unknown).
fn entries_read_arg(a: &[u8]) -> Result<i64, CommandError> {
    let n = int(a)?;
    if n < -1 {
        return Err(E(ENTRIESREAD_INVALID));
    }
    Ok(n)
}

/// `XGROUP CREATE key group id|$ [MKSTREAM] [ENTRIESREAD n]`: OK. O(1).
fn xgroup_create(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, gname) = (args[2], args[3]);
    let mut mkstream = false;
    let mut entries_read = -1;
    let mut i = 5;
    while i < args.len() {
        let o = upper(args[i]);
        if o == "MKSTREAM" {
            mkstream = true;
            i += 1;
        } else if o == "ENTRIESREAD" && i + 1 < args.len() {
            entries_read = entries_read_arg(args[i + 1])?;
            i += 2;
        } else {
            return Err(CommandError::bad_subcommand(args[0], args[1]));
        }
    }
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    // MKSTREAM's new stream is stored once the group is made (not on a bad ID).
    let mut created = None;
    let s = match lookup(sh, h, key, now, lru)? {
        Some(s) => s,
        None if !mkstream => return Err(E(XGROUP_NO_KEY)),
        None => created.insert(Stream::new()),
    };
    let id = if args[4] == b"$" {
        s.last_id
    } else {
        parse_id(args[4], 0, true, false)?.0
    };
    if s.groups.contains_key(gname) {
        return Err(E(BUSYGROUP));
    }
    s.groups.insert(
        gname.into(),
        Group {
            last_id: id,
            entries_read,
            pel: Default::default(),
            consumers: Default::default(),
        },
    );
    let mkstream = created.is_some();
    if let Some(s) = created {
        sh.insert(h, Entry::new(key, Value::Stream(Box::new(s)), lru));
    }
    out.ok();
    cx.dirty(1);
    if !mkstream {
        cx.keep_watches(2);
    }
    cx.notify(STREAM, "xgroup-create", key);
    Ok(())
}

/// Looks up XGROUP's group, with its stream's last ID (for `$`). Errors as Redis's XGROUP:
/// the key must exist, then the group.
fn xgroup_lookup<'s>(
    sh: &'s mut Shard,
    h: u64,
    key: &[u8],
    gname: &[u8],
    now: u64,
    lru: u32,
) -> Result<(&'s mut Group, StreamId), CommandError> {
    let s = lookup(sh, h, key, now, lru)?.ok_or(E(XGROUP_NO_KEY))?;
    let g = s
        .groups
        .get_mut(gname)
        .ok_or_else(|| no_group(key, gname))?;
    Ok((g, s.last_id))
}

/// `XGROUP SETID key group id|$ [ENTRIESREAD n]`: OK. O(1).
fn xgroup_setid(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, gname) = (args[2], args[3]);
    let mut entries_read = -1;
    if args.len() == 7 && upper(args[5]) == "ENTRIESREAD" {
        entries_read = entries_read_arg(args[6])?;
    } else if args.len() > 5 {
        return Err(CommandError::bad_subcommand(args[0], args[1]));
    }
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let (g, last) = xgroup_lookup(sh, h, key, gname, now, lru)?;
    // Unlike XGROUP CREATE, `-` and `+` are IDs here (as in Redis).
    let id = if args[4] == b"$" {
        last
    } else {
        parse_id(args[4], 0, false, false)?.0
    };
    g.last_id = id;
    g.entries_read = entries_read;
    out.ok();
    cx.dirty(1);
    cx.keep_watches(2);
    cx.notify(STREAM, "xgroup-setid", key);
    Ok(())
}

/// `XGROUP DESTROY key group`: 1 if the group existed. O(N) pending entries.
fn xgroup_destroy(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, gname) = (args[2], args[3]);
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let s = lookup(sh, h, key, now, lru)?.ok_or(E(XGROUP_NO_KEY))?;
    let gone = s.groups.remove(gname).is_some();
    out.int(gone as i64);
    if gone {
        // Its blocked readers get NOGROUP.
        sh.signal_ready(key);
        cx.dirty(1);
        cx.keep_watches(2);
        cx.notify(STREAM, "xgroup-destroy", key);
    }
    Ok(())
}

/// `XGROUP CREATECONSUMER key group consumer`: 1 if created, 0 if it existed. O(1).
fn xgroup_createconsumer(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, gname, cname) = (args[2], args[3], args[4]);
    let (now, lru, wall) = (cx.now, cx.lru(), cx.wall_ms());
    let (sh, h, out) = cx.shard_out(key)?;
    let (g, _) = xgroup_lookup(sh, h, key, gname, now, lru)?;
    let created = !g.consumers.contains_key(cname);
    if created {
        g.consumers.insert(
            cname.into(),
            Consumer {
                seen_time: wall,
                pel: Default::default(),
            },
        );
    }
    out.int(created as i64);
    if created {
        cx.dirty(1);
        cx.keep_watches(2);
        cx.notify(STREAM, "xgroup-createconsumer", key);
    }
    Ok(())
}

/// `XGROUP DELCONSUMER key group consumer`: how many pending entries it had. O(N) of them.
fn xgroup_delconsumer(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, gname, cname) = (args[2], args[3], args[4]);
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let (g, _) = xgroup_lookup(sh, h, key, gname, now, lru)?;
    let Some(c) = g.consumers.remove(cname) else {
        out.int(0);
        return Ok(());
    };
    for id in &c.pel {
        g.pel.remove(id);
    }
    out.int(c.pel.len() as i64);
    cx.dirty(1);
    cx.keep_watches(2);
    cx.notify(STREAM, "xgroup-delconsumer", key);
    Ok(())
}

/// `XACK key group id [id ...]`: how many entries were acknowledged. O(log P) per ID.
fn xack(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, gname) = (args[1], args[2]);
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    // Redis looks the key and group up before it parses the IDs: a missing one replies 0
    // whatever the IDs are.
    let Some(g) = lookup_read(server, sh, h, key, now, lru)?.and_then(|s| s.groups.get_mut(gname))
    else {
        out.int(0);
        return Ok(());
    };
    let mut ids = Vec::with_capacity((args.len() - 3).min(1024));
    for a in &args[3..] {
        ids.push(parse_id(a, 0, true, false)?.0);
    }
    let mut n = 0;
    for id in ids {
        if let Some(nack) = g.pel.remove(&id) {
            if let Some(c) = g.consumers.get_mut(&nack.consumer) {
                c.pel.remove(&id);
            }
            n += 1;
        }
    }
    out.int(n);
    if n > 0 {
        cx.dirty(n as u64);
        cx.keep_watches(1);
    }
    Ok(())
}

/// `XPENDING key group [[IDLE ms] start end count [consumer]]`: the summary (count, smallest
/// and greatest IDs, per-consumer counts) or the pending entries. O(N) returned.
fn xpending(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, gname) = (args[1], args[2]);
    if args.len() != 3 && (args.len() < 6 || args.len() > 9) {
        return Err(E(SYNTAX));
    }
    let mut ext = None;
    if args.len() >= 6 {
        let mut si = 3;
        let mut min_idle = 0i64;
        if upper(args[3]) == "IDLE" {
            min_idle = int(args[4])?;
            if args.len() < 8 {
                return Err(E(SYNTAX));
            }
            si += 2;
        }
        let count = int(args[si + 2])?.max(0) as usize;
        let start = range_bound_strict(args[si], true)?;
        let end = range_bound_strict(args[si + 1], false)?;
        let consumer = args.get(si + 3).copied();
        ext = Some((min_idle, start, end, count, consumer));
    }
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(g) = lookup_read(server, sh, h, key, now, lru)?.and_then(|s| s.groups.get(gname))
    else {
        return Err(no_key_or_group(key, gname));
    };
    let Some((min_idle, start, end, count, consumer)) = ext else {
        out.array(4);
        out.int(g.pel.len() as i64);
        match (g.pel.first_key_value(), g.pel.last_key_value()) {
            (Some((a, _)), Some((b, _))) => {
                id_bulk(out, *a);
                id_bulk(out, *b);
                let busy: Vec<_> = g
                    .consumers
                    .iter()
                    .filter(|(_, c)| !c.pel.is_empty())
                    .collect();
                out.array(busy.len());
                for (name, c) in busy {
                    out.array(2);
                    out.bulk(name);
                    out.bulk(c.pel.len().to_string().as_bytes());
                }
            }
            _ => {
                out.null();
                out.null();
                out.null_array();
            }
        }
        return Ok(());
    };
    let mut body = Vec::new();
    let mut o = Out::new(&mut body, out.resp3);
    let mut n = 0;
    let mut emit = |id: StreamId, nack: &Nack, o: &mut Out| -> bool {
        if n >= count {
            return false;
        }
        let idle = now.saturating_sub(nack.delivery_time) as i64;
        if min_idle != 0 && idle < min_idle {
            return true;
        }
        o.array(4);
        id_bulk(o, id);
        o.bulk(&nack.consumer);
        o.int(idle);
        o.int(nack.delivery_count as i64);
        n += 1;
        true
    };
    if start <= end {
        match consumer {
            Some(c) => {
                if let Some(c) = g.consumers.get(c) {
                    for id in c.pel.range(start..=end) {
                        if let Some(nack) = g.pel.get(id) {
                            if !emit(*id, nack, &mut o) {
                                break;
                            }
                        }
                    }
                }
            }
            None => {
                for (id, nack) in g.pel.range(start..=end) {
                    if !emit(*id, nack, &mut o) {
                        break;
                    }
                }
            }
        }
    }
    out.array(n);
    out.raw(&body);
    Ok(())
}

/// A range bound that must be an ID, `-`/`+`, or `(`-exclusive (XPENDING, XAUTOCLAIM).
fn range_bound_strict(a: &[u8], start: bool) -> Result<StreamId, CommandError> {
    range_bound(a, start)
}

/// Moves a pending entry to `cname` (creating the consumer, seen at `now`), as XCLAIM and
/// XAUTOCLAIM do. Returns the entry, or None (and changes nothing) if `id` is not pending.
fn claim_to<'g>(g: &'g mut Group, id: StreamId, cname: &[u8], now: u64) -> Option<&'g mut Nack> {
    let nack = g.pel.get_mut(&id)?;
    if &*nack.consumer != cname {
        let old = std::mem::replace(&mut nack.consumer, cname.into());
        if let Some(c) = g.consumers.get_mut(&old) {
            c.pel.remove(&id);
        }
    }
    let c = match g.consumers.get_mut(cname) {
        Some(c) => c,
        None => g.consumers.entry(cname.into()).or_default(),
    };
    c.seen_time = now;
    c.pel.insert(id);
    Some(nack)
}

/// The group `gname` of `s`, or NOGROUP as XCLAIM and XAUTOCLAIM word it.
fn claim_group<'s>(
    s: &'s mut Stream,
    key: &[u8],
    gname: &[u8],
) -> Result<&'s mut Group, CommandError> {
    s.groups
        .get_mut(gname)
        .ok_or_else(|| no_key_or_group(key, gname))
}

/// `XCLAIM key group consumer min-idle id ... [IDLE ms] [TIME ms] [RETRYCOUNT n] [FORCE]
/// [JUSTID] [LASTID id]`: the claimed entries (or IDs). O(log N) per ID.
fn xclaim(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, gname, cname) = (args[1], args[2], args[3]);
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    // Times recorded in the group come from the wall clock even while replaying (when
    // `now` is 0 so that nothing expires).
    let wall = cx.wall_ms();
    {
        let (sh, h) = cx.shard(key)?;
        let found = lookup_read(server, sh, h, key, now, lru)?
            .is_some_and(|s| s.groups.contains_key(gname));
        if !found {
            return Err(no_key_or_group(key, gname));
        }
    }
    let min_idle = parse_i64(args[4]).ok_or(E(XCLAIM_MIN_IDLE))?.max(0);
    let mut j = 5;
    let mut ids = Vec::new();
    while j < args.len() {
        match parse_id(args[j], 0, true, false) {
            Ok((id, _)) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let (mut force, mut justid) = (false, false);
    let mut delivery: Option<i64> = None;
    let mut retry: Option<i64> = None;
    let mut last_id = StreamId::MIN;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let o = upper(args[j]);
        if o == "FORCE" {
            force = true;
        } else if o == "JUSTID" {
            justid = true;
        } else if o == "IDLE" && more > 0 {
            j += 1;
            let v = parse_i64(args[j]).ok_or(E(XCLAIM_IDLE))?;
            delivery = Some((wall as i64).wrapping_sub(v));
        } else if o == "TIME" && more > 0 {
            j += 1;
            delivery = Some(parse_i64(args[j]).ok_or(E(XCLAIM_TIME))?);
        } else if o == "RETRYCOUNT" && more > 0 {
            j += 1;
            retry = Some(parse_i64(args[j]).ok_or(E(XCLAIM_RETRYCOUNT))?);
        } else if o == "LASTID" && more > 0 {
            j += 1;
            last_id = parse_id(args[j], 0, true, false)?.0;
        } else {
            return Err(CommandError::Owned(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(args[j])
            )));
        }
        j += 1;
    }
    // From the primary (or the AOF) the time is the one the primary recorded, kept as is.
    let trusted = cx.trusted_stream();
    let delivery = match delivery {
        Some(d) if d >= 0 && (d <= wall as i64 || trusted) => d as u64,
        _ => wall,
    };
    let prop = cx.propagating();
    let (sh, h, out) = cx.shard_out(key)?;
    let s = lookup(sh, h, key, now, lru)?.ok_or_else(|| no_key_or_group(key, gname))?;
    let exists: Vec<bool> = ids.iter().map(|&id| s.contains(id)).collect();
    let g = claim_group(s, key, gname)?;
    let mut dirty = 0u64;
    // Replicas get one XCLAIM per change (see `xclaim_effect`), or the group's new last
    // ID alone when LASTID moved it and nothing was claimed.
    let mut effects: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut moved_last = false;
    if last_id > g.last_id {
        g.last_id = last_id;
        dirty += 1;
        moved_last = true;
    }
    let mut claimed = Vec::new();
    let mut created_consumer = false;
    for (&id, &present) in ids.iter().zip(&exists) {
        if !present {
            if let Some(nack) = g.pel.remove(&id) {
                if let Some(c) = g.consumers.get_mut(&nack.consumer) {
                    c.pel.remove(&id);
                }
                dirty += 1;
                if prop {
                    effects.push(xclaim_effect(
                        key,
                        gname,
                        &nack.consumer,
                        id,
                        nack.delivery_time,
                        nack.delivery_count,
                        g.last_id,
                    ));
                }
            }
            continue;
        }
        let mut fresh = false;
        if force && !g.pel.contains_key(&id) {
            g.pel.insert(
                id,
                Nack {
                    consumer: Box::default(),
                    delivery_time: wall,
                    delivery_count: 1,
                },
            );
            fresh = true;
        }
        let Some(nack) = g.pel.get(&id) else {
            continue;
        };
        if !fresh && min_idle > 0 && (wall as i64 - nack.delivery_time as i64) < min_idle {
            continue;
        }
        if !g.consumers.contains_key(cname) {
            created_consumer = true;
        }
        if fresh {
            // A FORCE-made entry had no owner yet.
            g.consumers.entry(cname.into()).or_default();
        }
        let Some(nack) = claim_to(g, id, cname, wall) else {
            continue;
        };
        nack.delivery_time = delivery;
        // A negative RETRYCOUNT counts as not given (Redis's -1 default).
        if let Some(r) = retry.filter(|&r| r >= 0) {
            nack.delivery_count = r as u64;
        } else if !justid {
            nack.delivery_count += 1;
        }
        if prop {
            let (t, n) = (nack.delivery_time, nack.delivery_count);
            effects.push(xclaim_effect(key, gname, cname, id, t, n, g.last_id));
        }
        claimed.push(id);
        dirty += 1;
    }
    if prop && moved_last && effects.is_empty() {
        effects.push(setid_effect(key, gname, g));
    }
    out.array(claimed.len());
    for id in claimed {
        if justid {
            id_bulk(out, id);
        } else {
            match s.range(id, id).next() {
                Some(e) => reply_entry(out, &e),
                None => out.null(),
            }
        }
    }
    if dirty > 0 {
        cx.dirty(dirty);
        cx.keep_watches(1);
        cx.propagate_owned(effects);
    }
    if created_consumer {
        cx.notify(STREAM, "xgroup-createconsumer", key);
    }
    Ok(())
}

/// `XAUTOCLAIM key group consumer min-idle start [COUNT n] [JUSTID]`: `[next cursor,
/// claimed entries, deleted IDs]`. Examines at most 10 x COUNT pending entries.
fn xautoclaim(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, gname, cname) = (args[1], args[2], args[3]);
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    // Redis 7.0's order: the key is looked up first (a miss raises `keymiss` whatever
    // follows), then every argument is checked, then the key's type (a syntax error wins
    // over WRONGTYPE).
    let looked = {
        let (sh, h) = cx.shard(key)?;
        lookup_read(server, sh, h, key, now, lru)
            .map(|s| s.is_some_and(|s| s.groups.contains_key(gname)))
    };
    let min_idle = parse_i64(args[4]).ok_or(E(XAUTOCLAIM_MIN_IDLE))?.max(0);
    let start = range_bound(args[5], true)?;
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let o = upper(args[j]);
        if o == "COUNT" && more > 0 {
            count = parse_i64(args[j + 1])
                .filter(|&c| (1..=i64::MAX / 16).contains(&c))
                .ok_or(E(XAUTOCLAIM_COUNT))?;
            j += 1;
        } else if o == "JUSTID" {
            justid = true;
        } else {
            return Err(E(SYNTAX));
        }
        j += 1;
    }
    if !looked? {
        return Err(no_key_or_group(key, gname));
    }
    let prop = cx.propagating();
    let mut effects: Vec<Vec<Vec<u8>>> = Vec::new();
    let (sh, h, out) = cx.shard_out(key)?;
    let s = lookup(sh, h, key, now, lru)?.ok_or_else(|| no_key_or_group(key, gname))?;
    let mut attempts = count.saturating_mul(10);
    let mut left = count;
    let mut deleted = Vec::new();
    let mut claimed = Vec::new();
    let mut cursor = start;
    let mut eof = false;
    let mut created_consumer = false;
    loop {
        if attempts == 0 || left == 0 {
            break;
        }
        attempts -= 1;
        let next = claim_group(s, key, gname)?
            .pel
            .range(cursor..)
            .next()
            .map(|(id, n)| (*id, n.delivery_time));
        let Some((id, dtime)) = next else {
            eof = true;
            break;
        };
        cursor = id;
        let present = s.contains(id);
        let g = claim_group(s, key, gname)?;
        if !present {
            if let Some(nack) = g.pel.remove(&id) {
                if let Some(c) = g.consumers.get_mut(&nack.consumer) {
                    c.pel.remove(&id);
                }
                if prop {
                    effects.push(xclaim_effect(
                        key,
                        gname,
                        &nack.consumer,
                        id,
                        nack.delivery_time,
                        nack.delivery_count,
                        g.last_id,
                    ));
                }
            }
            deleted.push(id);
            left -= 1;
            continue;
        }
        // Continue after this one next time round.
        let after = id.next();
        if min_idle > 0 && (now as i64 - dtime as i64) < min_idle {
            match after {
                Some(a) => cursor = a,
                None => {
                    eof = true;
                    break;
                }
            }
            continue;
        }
        if !g.consumers.contains_key(cname) {
            created_consumer = true;
        }
        let Some(nack) = claim_to(g, id, cname, now) else {
            continue;
        };
        nack.delivery_time = now;
        if !justid {
            nack.delivery_count += 1;
        }
        if prop {
            let n = nack.delivery_count;
            effects.push(xclaim_effect(key, gname, cname, id, now, n, g.last_id));
        }
        claimed.push(id);
        left -= 1;
        match after {
            Some(a) => cursor = a,
            None => {
                eof = true;
                break;
            }
        }
    }
    let next = if eof {
        StreamId::MIN
    } else {
        claim_group(s, key, gname)?
            .pel
            .range(cursor..)
            .next()
            .map_or(StreamId::MIN, |(id, _)| *id)
    };
    out.array(3);
    id_bulk(out, next);
    out.array(claimed.len());
    for &id in &claimed {
        if justid {
            id_bulk(out, id);
        } else {
            match s.range(id, id).next() {
                Some(e) => reply_entry(out, &e),
                None => out.null(),
            }
        }
    }
    out.array(deleted.len());
    for &id in &deleted {
        id_bulk(out, id);
    }
    let dirty = (claimed.len() + deleted.len()) as u64;
    if dirty > 0 {
        cx.dirty(dirty);
        cx.keep_watches(1);
        cx.propagate_owned(effects);
    }
    if created_consumer {
        cx.notify(STREAM, "xgroup-createconsumer", key);
    }
    Ok(())
}

/// Writes a group's lag (an integer, or nil when it cannot be known).
fn reply_lag(out: &mut Out, s: &Stream, g: &Group) {
    match s.lag(g) {
        Some(l) => out.int(l),
        None => out.null(),
    }
}

fn reply_entries_read(out: &mut Out, g: &Group) {
    if g.entries_read != -1 {
        out.int(g.entries_read);
    } else {
        out.null();
    }
}

/// `XINFO STREAM key [FULL [COUNT n]]`: the stream's metadata, first and last entries (or,
/// with FULL, its entries and every group's pending lists). O(1), FULL O(N).
fn xinfo_stream(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[2];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    // Like Redis, the key is looked up before the options are checked.
    let s = lookup_read(server, sh, h, key, now, lru)?.ok_or(E(NO_SUCH_KEY))?;
    let mut full = false;
    let mut count: usize = 10;
    if args.len() > 3 {
        if args.len() > 6 || upper(args[3]) != "FULL" {
            return Err(CommandError::bad_subcommand(args[0], args[1]));
        }
        full = true;
        if args.len() > 4 {
            if args.len() != 6 || upper(args[4]) != "COUNT" {
                return Err(CommandError::bad_subcommand(args[0], args[1]));
            }
            count = int(args[5])?.max(0) as usize;
        }
    }
    out.map(if full { 9 } else { 10 });
    out.bulk(b"length");
    out.int(s.len() as i64);
    out.bulk(b"radix-tree-keys");
    out.int(s.blocks() as i64);
    out.bulk(b"radix-tree-nodes");
    // Redis counts its radix tree's inner nodes; a tree of K keys has about 2K + 1.
    out.int(if s.blocks() == 0 {
        1
    } else {
        2 * s.blocks() as i64
    });
    out.bulk(b"last-generated-id");
    id_bulk(out, s.last_id);
    out.bulk(b"max-deleted-entry-id");
    id_bulk(out, s.max_deleted);
    out.bulk(b"entries-added");
    out.int(s.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    id_bulk(out, s.first_id());
    if !full {
        out.bulk(b"groups");
        out.int(s.groups.len() as i64);
        for (name, e) in [("first-entry", s.first()), ("last-entry", s.last())] {
            out.bulk(name.as_bytes());
            match e {
                Some(e) => {
                    out.array(2);
                    id_bulk(out, e.id);
                    out.array(e.pairs() * 2);
                    for x in e.strings() {
                        out.bulk(x);
                    }
                }
                None => out.null(),
            }
        }
        return Ok(());
    }
    out.bulk(b"entries");
    reply_entries(out, s.range(StreamId::MIN, StreamId::MAX), count);
    out.bulk(b"groups");
    out.array(s.groups.len());
    let take = if count == 0 { usize::MAX } else { count };
    for (name, g) in &s.groups {
        out.map(7);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"last-delivered-id");
        id_bulk(out, g.last_id);
        out.bulk(b"entries-read");
        reply_entries_read(out, g);
        out.bulk(b"lag");
        reply_lag(out, s, g);
        out.bulk(b"pel-count");
        out.int(g.pel.len() as i64);
        out.bulk(b"pending");
        let n = g.pel.len().min(take);
        out.array(n);
        for (id, nack) in g.pel.iter().take(n) {
            out.array(4);
            id_bulk(out, *id);
            out.bulk(&nack.consumer);
            out.int(nack.delivery_time as i64);
            out.int(nack.delivery_count as i64);
        }
        out.bulk(b"consumers");
        out.array(g.consumers.len());
        for (cname, c) in &g.consumers {
            out.map(4);
            out.bulk(b"name");
            out.bulk(cname);
            out.bulk(b"seen-time");
            out.int(c.seen_time as i64);
            out.bulk(b"pel-count");
            out.int(c.pel.len() as i64);
            out.bulk(b"pending");
            // Details from the group's PEL (which lists every consumer's entries).
            let pending: Vec<_> = c
                .pel
                .iter()
                .filter_map(|id| g.pel.get(id).map(|nack| (id, nack)))
                .take(take)
                .collect();
            out.array(pending.len());
            for (id, nack) in pending {
                out.array(3);
                id_bulk(out, *id);
                out.int(nack.delivery_time as i64);
                out.int(nack.delivery_count as i64);
            }
        }
    }
    Ok(())
}

/// `XINFO GROUPS key`: each group's name, consumers, pending count, last delivered ID,
/// entries read and lag. O(G).
fn xinfo_groups(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[2];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let s = lookup_read(server, sh, h, key, now, lru)?.ok_or(E(NO_SUCH_KEY))?;
    out.array(s.groups.len());
    for (name, g) in &s.groups {
        out.map(6);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"consumers");
        out.int(g.consumers.len() as i64);
        out.bulk(b"pending");
        out.int(g.pel.len() as i64);
        out.bulk(b"last-delivered-id");
        id_bulk(out, g.last_id);
        out.bulk(b"entries-read");
        reply_entries_read(out, g);
        out.bulk(b"lag");
        reply_lag(out, s, g);
    }
    Ok(())
}

/// `XINFO CONSUMERS key group`: each consumer's name, pending count and idle time. O(C).
fn xinfo_consumers(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, gname) = (args[2], args[3]);
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let s = lookup_read(server, sh, h, key, now, lru)?.ok_or(E(NO_SUCH_KEY))?;
    let g = s.groups.get(gname).ok_or_else(|| no_group(key, gname))?;
    out.array(g.consumers.len());
    for (name, c) in &g.consumers {
        out.map(3);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"pending");
        out.int(c.pel.len() as i64);
        out.bulk(b"idle");
        out.int(now.saturating_sub(c.seen_time) as i64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_like_redis() {
        assert_eq!(
            parse_id(b"5", 7, false, false).unwrap(),
            (StreamId::new(5, 7), true)
        );
        assert_eq!(
            parse_id(b"5-*", 0, true, true).unwrap(),
            (StreamId::new(5, 0), false)
        );
        assert!(parse_id(b"-", 0, true, false).is_err());
        assert_eq!(parse_id(b"+", 0, false, false).unwrap().0, StreamId::MAX);
        assert!(parse_id(b"5-x", 0, false, false).is_err());
        assert!(parse_id(b"-1", 0, false, false).is_err());
        assert_eq!(
            parse_id(b"+5", 0, true, false).unwrap().0,
            StreamId::new(5, 0)
        );
        assert!(parse_id(b"18446744073709551616", 0, true, false).is_err());
    }

    fn group() -> Group {
        Group {
            last_id: StreamId::MIN,
            entries_read: -1,
            pel: Default::default(),
            consumers: Default::default(),
        }
    }

    #[test]
    fn claims_move_pending_entries_and_skip_others() {
        let mut g = group();
        let id = StreamId::new(1, 0);
        assert!(claim_to(&mut g, id, b"bob", 5).is_none());
        assert!(g.consumers.is_empty(), "nothing pending, nothing made");
        g.pel.insert(
            id,
            Nack {
                consumer: b"alice"[..].into(),
                delivery_time: 1,
                delivery_count: 1,
            },
        );
        g.consumers
            .entry(b"alice"[..].into())
            .or_default()
            .pel
            .insert(id);
        let nack = claim_to(&mut g, id, b"bob", 5).expect("pending");
        assert_eq!(&*nack.consumer, b"bob");
        assert!(g.consumers[&b"alice"[..]].pel.is_empty());
        let bob = &g.consumers[&b"bob"[..]];
        assert_eq!((bob.seen_time, bob.pel.len()), (5, 1));
        // Claiming again for the owner keeps one entry and refreshes the consumer.
        assert!(claim_to(&mut g, id, b"bob", 9).is_some());
        let bob = &g.consumers[&b"bob"[..]];
        assert_eq!((bob.seen_time, bob.pel.len()), (9, 1));
    }

    #[test]
    fn claim_group_names_the_key_and_group_when_missing() {
        let mut s = Stream::new();
        let err = claim_group(&mut s, b"k", b"g").unwrap_err();
        assert_eq!(err, no_key_or_group(b"k", b"g"));
        s.groups.insert(b"g"[..].into(), group());
        assert!(claim_group(&mut s, b"k", b"g").is_ok());
    }
}
