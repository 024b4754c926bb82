//! String commands: GET and SET with their variants (SETNX, SETEX, PSETEX, GETSET, GETDEL,
//! GETEX), the multi-key MGET / MSET / MSETNX, in-place edits (APPEND, SETRANGE), reads of a
//! range (GETRANGE, SUBSTR, STRLEN), counters (INCR, DECR, INCRBY, DECRBY, INCRBYFLOAT) and
//! LCS.
//!
//! Replies follow Redis 7.0 exactly, including which error wins when several apply: SET and
//! GETEX check their option words first and the expiry value only afterwards; GETRANGE parses
//! its indexes before looking the key up; GETEX ignores a bad expiry on a missing key.
//!
//! Values are borrowed from the shard while the reply is written (`Ctx::shard_out`), so the
//! read commands copy each value once, straight into the output buffer. Multi-key commands
//! have key specs naming every key, so the dispatcher locks all their shards up front and
//! each command is atomic.

use std::sync::atomic::Ordering::Relaxed;

use super::args::int;
use super::flags::*;
use super::{lookup, lookup_read};
use super::{CommandSpec, Ctx, Keys};
use crate::error::{
    CmdResult, CommandError, DECR_OVERFLOW, E, LCS_IDX_AND_LEN, LCS_NOT_STRINGS, LCS_NO_MEMORY,
    LCS_TABLE_TOO_BIG, LCS_TOO_LONG, NAN_OR_INF, NOT_FLOAT, NOT_INTEGER, OFFSET_RANGE, OVERFLOW,
    STRING_TOO_LONG, SYNTAX,
};
use crate::longdouble::LongDouble;
use crate::notify::{GENERIC, STRING};
use crate::storage::entry::{INLINE_CAP, META_NOT_INT, META_RAW};
use crate::storage::{Entry, Value};
use crate::util::parse_i64;

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("get", 2, READONLY | FAST, Keys::Range(1, 1, 1), get)
        .group("string")
        .summary("Returns the string value of a key.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new("set", -3, WRITE | DENYOOM, Keys::Range(1, 1, 1), set)
        .group("string")
        .summary("Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.")
        .complexity("O(1)")
        .syntax("key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]"),
    CommandSpec::new("setnx", 3, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), setnx)
        .group("string")
        .summary("Sets the value of a key only when the key doesn't exist.")
        .complexity("O(1)")
        .syntax("key value"),
    CommandSpec::new("setex", 4, WRITE | DENYOOM, Keys::Range(1, 1, 1), setex)
        .group("string")
        .since("2.0.0")
        .summary("Sets the value of a key with a time to live in seconds.")
        .complexity("O(1)")
        .syntax("key seconds value"),
    CommandSpec::new("psetex", 4, WRITE | DENYOOM, Keys::Range(1, 1, 1), psetex)
        .group("string")
        .since("2.6.0")
        .summary("Sets the value of a key with a time to live in milliseconds.")
        .complexity("O(1)")
        .syntax("key milliseconds value"),
    CommandSpec::new("getset", 3, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), getset)
        .group("string")
        .summary("Sets a key to a new string value and returns the previous one.")
        .complexity("O(1)")
        .syntax("key value"),
    CommandSpec::new("getdel", 2, WRITE | FAST, Keys::Range(1, 1, 1), getdel)
        .group("string")
        .since("6.2.0")
        .summary("Returns the string value of a key and deletes the key.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new("getex", -2, WRITE | FAST, Keys::Range(1, 1, 1), getex)
        .group("string")
        .since("6.2.0")
        .summary("Returns the string value of a key and changes or removes its time to live.")
        .complexity("O(1)")
        .syntax("key [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | PERSIST]"),
    CommandSpec::new("mget", -2, READONLY | FAST, Keys::Range(1, -1, 1), mget)
        .group("string")
        .summary("Returns the string values of one or more keys.")
        .complexity("O(N) where N is the number of keys.")
        .syntax("key [key ...]"),
    CommandSpec::new("mset", -3, WRITE | DENYOOM, Keys::Range(1, -1, 2), mset)
        .group("string")
        .since("1.0.1")
        .summary("Sets the string values of one or more keys, atomically.")
        .complexity("O(N) where N is the number of keys.")
        .syntax("key value [key value ...]"),
    CommandSpec::new("msetnx", -3, WRITE | DENYOOM, Keys::Range(1, -1, 2), msetnx)
        .group("string")
        .since("1.0.1")
        .summary("Sets the string values of one or more keys, only if none of them exists.")
        .complexity("O(N) where N is the number of keys.")
        .syntax("key value [key value ...]"),
    CommandSpec::new("append", 3, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), append)
        .group("string")
        .since("2.0.0")
        .summary("Appends a string to the value of a key, creating the key if needed.")
        .complexity("O(1) amortized: the string grows geometrically.")
        .syntax("key value"),
    CommandSpec::new("strlen", 2, READONLY | FAST, Keys::Range(1, 1, 1), strlen)
        .group("string")
        .since("2.2.0")
        .summary("Returns the length of a string value.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new("getrange", 4, READONLY, Keys::Range(1, 1, 1), getrange)
        .group("string")
        .since("2.4.0")
        .summary("Returns a substring of the string stored at a key.")
        .complexity("O(N) where N is the length of the returned substring.")
        .syntax("key start end"),
    CommandSpec::new("substr", 4, READONLY, Keys::Range(1, 1, 1), getrange)
        .group("string")
        .summary("Returns a substring of the string stored at a key (an old name of GETRANGE).")
        .complexity("O(N) where N is the length of the returned substring.")
        .syntax("key start end"),
    CommandSpec::new("setrange", 4, WRITE | DENYOOM, Keys::Range(1, 1, 1), setrange)
        .group("string")
        .since("2.2.0")
        .summary("Overwrites part of a string value from an offset, zero-padding as needed.")
        .complexity("O(M) where M is the length of the written value, plus any padding.")
        .syntax("key offset value"),
    CommandSpec::new("incr", 2, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), incr)
        .group("string")
        .summary("Adds one to the integer value of a key.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new("decr", 2, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), decr)
        .group("string")
        .summary("Subtracts one from the integer value of a key.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new("incrby", 3, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), incrby)
        .group("string")
        .summary("Adds an integer to the integer value of a key.")
        .complexity("O(1)")
        .syntax("key increment"),
    CommandSpec::new("decrby", 3, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), decrby)
        .group("string")
        .summary("Subtracts an integer from the integer value of a key.")
        .complexity("O(1)")
        .syntax("key decrement"),
    CommandSpec::new("incrbyfloat", 3, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), incrbyfloat)
        .group("string")
        .since("2.6.0")
        .summary("Adds a floating point number to the numeric value of a key.")
        .complexity("O(1)")
        .syntax("key increment"),
    CommandSpec::new("lcs", -3, READONLY, Keys::Range(1, 2, 1), lcs)
        .group("string")
        .since("7.0.0")
        .summary("Finds the longest common subsequence of two string values.")
        .complexity("O(N*M) where N and M are the lengths of the two strings.")
        .syntax("key1 key2 [LEN] [IDX] [MINMATCHLEN min-match-len] [WITHMATCHLEN]"),
];

/// The largest string a command may build (`proto-max-bulk-len`).
fn max_string(cx: &Ctx) -> u64 {
    cx.server.hot.proto_max_bulk_len.load(Relaxed)
}

/// Refuses a string of `size + append` bytes beyond `proto-max-bulk-len` (overflow included).
fn check_string_length(max: u64, size: u64, append: u64) -> CmdResult {
    match size.checked_add(append) {
        Some(total) if total <= max => Ok(()),
        _ => Err(E(STRING_TOO_LONG)),
    }
}

/// Grows `s` to `len` bytes (zero-filled) with the headroom policy of Redis's strings:
/// double while small, then 1 MB at a time, so repeated APPENDs are amortized O(1) while a
/// large string never reserves twice its size.
fn grow_zeroed(s: &mut Vec<u8>, len: usize) {
    const STEP: usize = 1024 * 1024;
    if len > s.capacity() {
        let target = if len < STEP { len * 2 } else { len + STEP };
        s.reserve_exact(target - s.len());
    }
    if len > s.len() {
        s.resize(len, 0);
    }
}

/// Rewrites the string in `e` as `new_len` bytes (at least its current length): the old
/// bytes, zero padding, then `edit` writes its part. Marks the value `raw`, as Redis's
/// in-place edits do. A result that still fits inside the entry stays inline; a larger one
/// is edited in its heap buffer without copying the old bytes.
pub(super) fn edit_in_place(
    e: &mut Entry,
    new_len: usize,
    edit: impl FnOnce(&mut [u8]),
) -> CmdResult {
    if e.key().len() + new_len <= INLINE_CAP {
        let mut buf = [0u8; INLINE_CAP];
        let cur = e.as_str().ok_or_else(CommandError::wrong_type)?;
        buf[..cur.len()].copy_from_slice(cur);
        edit(&mut buf[..new_len]);
        e.set_str(&buf[..new_len]);
        e.set_meta(e.meta() | META_RAW);
    } else {
        let s = e.str_mut().ok_or_else(CommandError::wrong_type)?;
        grow_zeroed(s, new_len);
        edit(s);
    }
    Ok(())
}

// --- GET and the SET family ------------------------------------------------------------

/// `GET key`: the value, nil, or WRONGTYPE. O(1).
fn get(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    match lookup_read(server, sh, h, key, now, lru) {
        Some(e) => out.bulk(e.as_str().ok_or_else(CommandError::wrong_type)?),
        None => out.null(),
    }
    Ok(())
}

/// The TTL a SET-like command gives the key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ttl {
    /// No expiry option: the key loses any TTL it had (SET) or keeps it (GETEX).
    None,
    /// SET KEEPTTL: keep whatever TTL the key had.
    Keep,
    /// GETEX PERSIST: remove the TTL.
    Persist,
    /// An absolute deadline in unix ms.
    At(u64),
}

/// Options of SET and GETEX as bits (Redis's `OBJ_*` flags).
mod opt {
    pub const NX: u16 = 1;
    pub const XX: u16 = 1 << 1;
    pub const GET: u16 = 1 << 2;
    pub const KEEPTTL: u16 = 1 << 3;
    pub const PERSIST: u16 = 1 << 4;
    pub const EX: u16 = 1 << 5;
    pub const PX: u16 = 1 << 6;
    pub const EXAT: u16 = 1 << 7;
    pub const PXAT: u16 = 1 << 8;
    pub const EXPIRY: u16 = EX | PX | EXAT | PXAT;
}

/// Parsed SET / GETEX options; the expiry value is kept unparsed because Redis validates it
/// only after every option word was accepted (and GETEX only once the key is found).
struct SetOpts<'a> {
    flags: u16,
    expire: Option<&'a [u8]>,
}

impl SetOpts<'_> {
    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    /// The TTL the options ask for, validating the expiry value (`cmd` names the command in
    /// the "invalid expire time" error).
    fn ttl(&self, cmd: &str, now: u64) -> Result<Ttl, CommandError> {
        if let Some(arg) = self.expire {
            let (unit_ms, absolute) = match self.flags & opt::EXPIRY {
                opt::EX => (1000, false),
                opt::PX => (1, false),
                opt::EXAT => (1000, true),
                _ => (1, true),
            };
            return Ok(Ttl::At(deadline(cmd, unit_ms, absolute, arg, now)?));
        }
        Ok(if self.has(opt::KEEPTTL) {
            Ttl::Keep
        } else if self.has(opt::PERSIST) {
            Ttl::Persist
        } else {
            Ttl::None
        })
    }
}

/// Parses SET's (`for_set`) or GETEX's options from `args[from..]`. As in Redis, an option
/// is a syntax error when it conflicts with one already given or does not belong to the
/// command, while repeating one is allowed (the last expiry value wins).
fn parse_set_opts<'a>(
    args: &[&'a [u8]],
    from: usize,
    for_set: bool,
) -> Result<SetOpts<'a>, CommandError> {
    use opt::*;
    let mut o = SetOpts {
        flags: 0,
        expire: None,
    };
    let mut j = from;
    while j < args.len() {
        let word = args[j];
        let next = args.get(j + 1).copied();
        let is = |w: &str| word.eq_ignore_ascii_case(w.as_bytes());
        // Each expiry kind excludes the other three, KEEPTTL and PERSIST.
        let expiry_ok =
            |me: u16| next.is_some() && o.flags & (KEEPTTL | PERSIST | (EXPIRY & !me)) == 0;
        let (flag, ok) = if is("NX") {
            (NX, for_set && !o.has(XX))
        } else if is("XX") {
            (XX, for_set && !o.has(NX))
        } else if is("GET") {
            (GET, for_set)
        } else if is("KEEPTTL") {
            (KEEPTTL, for_set && o.flags & (PERSIST | EXPIRY) == 0)
        } else if is("PERSIST") {
            (PERSIST, !for_set && o.flags & (KEEPTTL | EXPIRY) == 0)
        } else if is("EX") {
            (EX, expiry_ok(EX))
        } else if is("PX") {
            (PX, expiry_ok(PX))
        } else if is("EXAT") {
            (EXAT, expiry_ok(EXAT))
        } else if is("PXAT") {
            (PXAT, expiry_ok(PXAT))
        } else {
            (0, false)
        };
        if !ok {
            return Err(E(SYNTAX));
        }
        o.flags |= flag;
        if flag & EXPIRY != 0 {
            o.expire = next;
            j += 1;
        }
        j += 1;
    }
    Ok(o)
}

/// Converts an EX/PX/EXAT/PXAT value to an absolute deadline in unix ms, with Redis's checks:
/// not positive, or overflowing once converted to ms or made absolute, is an invalid expire.
fn deadline(
    cmd: &str,
    unit_ms: i64,
    absolute: bool,
    arg: &[u8],
    now: u64,
) -> Result<u64, CommandError> {
    let v = int(arg)?;
    if v <= 0 {
        return Err(CommandError::invalid_expire(cmd));
    }
    let ms = v
        .checked_mul(unit_ms)
        .ok_or_else(|| CommandError::invalid_expire(cmd))?;
    let at = if absolute {
        ms
    } else {
        ms.checked_add(now as i64)
            .ok_or_else(|| CommandError::invalid_expire(cmd))?
    };
    Ok(at as u64)
}

/// How a SET-like command replies when it is not asked for the old value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SetReply {
    /// SET, SETEX, PSETEX: `+OK`, or nil when NX/XX skipped the write.
    Ok,
    /// SETNX: `:1` when stored, `:0` when skipped.
    Int,
}

/// The body of SET, SETNX, SETEX, PSETEX and GETSET (Redis's `setGenericCommand`): the
/// optional GET of the old value, the NX/XX condition, then the write with the requested
/// TTL. A deadline already in the past is stored as is, and the key then expires on its next
/// access, as in Redis 7.0.
fn set_generic(
    cx: &mut Ctx,
    key: &[u8],
    val: &[u8],
    flags: u16,
    ttl: Ttl,
    reply: SetReply,
) -> CmdResult {
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let get = flags & opt::GET != 0;
    let (sh, h, out) = cx.shard_out(key)?;
    // With GET the old value is read (and counted as a hit or miss); otherwise it is only
    // checked for NX / XX.
    let old = if get {
        lookup_read(server, sh, h, key, now, lru)
    } else {
        lookup(sh, h, key, now, lru)
    };
    let found = old.is_some();
    if get {
        match old {
            Some(e) => out.bulk(e.as_str().ok_or_else(CommandError::wrong_type)?),
            None => out.null(),
        }
    }
    let skip = (flags & opt::NX != 0 && found) || (flags & opt::XX != 0 && !found);
    if !skip {
        let entry = Entry::string(key, val, lru);
        match ttl {
            Ttl::Keep => {
                sh.insert_keep_ttl(h, entry);
            }
            Ttl::At(at) => {
                sh.insert(h, entry);
                sh.set_expire(h, key, at);
            }
            Ttl::None | Ttl::Persist => {
                sh.insert(h, entry);
            }
        }
    }
    if !get {
        match reply {
            SetReply::Ok if skip => out.null(),
            SetReply::Ok => out.ok(),
            SetReply::Int => out.int(i64::from(!skip)),
        }
    }
    if !skip {
        cx.dirty(1);
        if let Ttl::At(at) = ttl {
            // Replicas get the deadline as an absolute time, as Redis 7.0 sends it.
            let at = itoa::Buffer::new().format(at).as_bytes().to_vec();
            cx.propagate(&[b"SET", key, val, b"PXAT", &at]);
        }
        cx.notify(STRING, "set", key);
        if let Ttl::At(_) = ttl {
            cx.notify(GENERIC, "expire", key);
        }
    }
    Ok(())
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ms | KEEPTTL]`: OK, nil when
/// NX/XX skipped it, or with GET the old value. O(1).
fn set(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let o = parse_set_opts(args, 3, true)?;
    let ttl = o.ttl("set", cx.now)?;
    set_generic(cx, args[1], args[2], o.flags, ttl, SetReply::Ok)
}

/// `SETNX key value`: 1 if the key was set, 0 if it already existed. O(1).
fn setnx(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    set_generic(cx, args[1], args[2], opt::NX, Ttl::None, SetReply::Int)
}

/// `SETEX key seconds value`: OK. O(1).
fn setex(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let at = deadline("setex", 1000, false, args[2], cx.now)?;
    set_generic(cx, args[1], args[3], 0, Ttl::At(at), SetReply::Ok)
}

/// `PSETEX key milliseconds value`: OK. O(1).
fn psetex(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let at = deadline("psetex", 1, false, args[2], cx.now)?;
    set_generic(cx, args[1], args[3], 0, Ttl::At(at), SetReply::Ok)
}

/// `GETSET key value`: the old value (or nil); the key gets the new value and loses its
/// TTL. O(1).
fn getset(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    set_generic(cx, args[1], args[2], opt::GET, Ttl::None, SetReply::Ok)
}

/// `GETDEL key`: the value (or nil), and the key is deleted. O(1).
fn getdel(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let found = match lookup_read(server, sh, h, key, now, lru) {
        Some(e) => {
            out.bulk(e.as_str().ok_or_else(CommandError::wrong_type)?);
            sh.remove(h, key);
            true
        }
        None => {
            out.null();
            false
        }
    };
    if found {
        cx.dirty(1);
        cx.propagate(&[b"DEL", key]);
        cx.notify(GENERIC, "del", key);
    }
    Ok(())
}

/// `GETEX key [EX s | PX ms | EXAT ts | PXAT ms | PERSIST]`: the value (or nil), setting or
/// removing the key's TTL. An absolute deadline already past deletes the key. O(1).
fn getex(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let o = parse_set_opts(args, 2, false)?;
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(e) = lookup_read(server, sh, h, key, now, lru) else {
        // A missing key answers nil before the expiry value is even looked at.
        out.null();
        return Ok(());
    };
    let v = e.as_str().ok_or_else(CommandError::wrong_type)?;
    let ttl = o.ttl("getex", now)?;
    out.bulk(v);
    let event = match ttl {
        Ttl::At(at) if at <= now => sh.remove(h, key).map(|_| "del"),
        // Redis raises `expire` even when the deadline is unchanged.
        Ttl::At(at) => {
            sh.set_expire(h, key, at);
            Some("expire")
        }
        Ttl::Persist => sh.persist(h, key).then_some("persist"),
        Ttl::None | Ttl::Keep => None,
    };
    if let Some(event) = event {
        cx.dirty(1);
        // Replicas get the effect: an absolute deadline, the deletion, or PERSIST.
        if cx.propagating() {
            match (event, ttl) {
                ("del", _) => {
                    let lazy = cx.server.config.read().get_bool("lazyfree-lazy-expire");
                    let cmd: &[u8] = if lazy { b"UNLINK" } else { b"DEL" };
                    cx.propagate(&[cmd, key]);
                }
                (_, Ttl::At(at)) => {
                    let at = itoa::Buffer::new().format(at).as_bytes().to_vec();
                    cx.propagate(&[b"PEXPIREAT", key, &at]);
                }
                _ => cx.propagate(&[b"PERSIST", key]),
            }
        }
        cx.notify(GENERIC, event, key);
    }
    Ok(())
}

// --- Multi-key -------------------------------------------------------------------------

/// `MGET key [key ...]`: an array with each value, nil for missing keys and for keys that
/// hold another type. O(N).
fn mget(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    cx.out.array(args.len() - 1);
    for key in &args[1..] {
        let (sh, h, out) = cx.shard_out(key)?;
        match lookup_read(server, sh, h, key, now, lru).and_then(|e| e.as_str()) {
            Some(v) => out.bulk(v),
            None => out.null(),
        }
    }
    Ok(())
}

/// Stores every pair of `MSET`/`MSETNX` (all their shards are held), clearing TTLs.
fn store_pairs(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let lru = cx.lru();
    for pair in args[1..].chunks_exact(2) {
        let (sh, h) = cx.shard(pair[0])?;
        sh.insert(h, Entry::string(pair[0], pair[1], lru));
        cx.notify(STRING, "set", pair[0]);
    }
    cx.dirty((args.len() as u64 - 1) / 2);
    Ok(())
}

/// `MSET key value [key value ...]`: OK; all keys are set at once. O(N).
fn mset(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() % 2 != 1 {
        return Err(CommandError::arity("mset"));
    }
    store_pairs(cx, args)?;
    cx.out.ok();
    Ok(())
}

/// `MSETNX key value [key value ...]`: 1 if all keys were set, 0 (and nothing set) if any
/// of them exists. O(N).
fn msetnx(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() % 2 != 1 {
        return Err(CommandError::arity("msetnx"));
    }
    let (now, lru) = (cx.now, cx.lru());
    for key in args[1..].iter().step_by(2) {
        let (sh, h) = cx.shard(key)?;
        if lookup(sh, h, key, now, lru).is_some() {
            cx.out.int(0);
            return Ok(());
        }
    }
    store_pairs(cx, args)?;
    cx.out.int(1);
    Ok(())
}

// --- In-place edits and ranges ---------------------------------------------------------

/// `APPEND key value`: the new length. Creates the key if missing. O(1) amortized.
fn append(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, val) = (args[1], args[2]);
    let (now, lru, max) = (cx.now, cx.lru(), max_string(cx));
    let (sh, h, out) = cx.shard_out(key)?;
    let len = match lookup(sh, h, key, now, lru) {
        Some(e) => {
            let cur = e.as_str().ok_or_else(CommandError::wrong_type)?.len();
            check_string_length(max, cur as u64, val.len() as u64)?;
            edit_in_place(e, cur + val.len(), |s| s[cur..].copy_from_slice(val))?;
            cur + val.len()
        }
        None => {
            sh.insert(h, Entry::string(key, val, lru));
            val.len()
        }
    };
    out.int(len as i64);
    cx.dirty(1);
    cx.notify(STRING, "append", key);
    Ok(())
}

/// `STRLEN key`: the length of the value, 0 for a missing key. O(1).
fn strlen(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let len = match lookup_read(server, sh, h, key, now, lru) {
        Some(e) => e.as_str().ok_or_else(CommandError::wrong_type)?.len(),
        None => 0,
    };
    out.int(len as i64);
    Ok(())
}

/// The byte range GETRANGE returns for `start..=end` (negative counts from the end) over a
/// string of `len` bytes, or `None` for the empty string, with Redis 7.0's clamping.
fn substring_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let n = len as i64;
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let start = if start < 0 { n + start } else { start }.max(0);
    let end = if end < 0 { n + end } else { end }.max(0).min(n - 1);
    if len == 0 || start > end {
        return None;
    }
    Some((start as usize, end as usize))
}

/// `GETRANGE key start end` (and `SUBSTR`): the bytes from `start` to `end` inclusive,
/// negative indexes counting from the end; "" for a missing key. O(N) in the result.
fn getrange(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let start = int(args[2])?;
    let end = int(args[3])?;
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let v = match lookup_read(server, sh, h, key, now, lru) {
        Some(e) => e.as_str().ok_or_else(CommandError::wrong_type)?,
        None => b"",
    };
    match substring_range(start, end, v.len()) {
        Some((s, e)) => out.bulk(&v[s..=e]),
        None => out.bulk(b""),
    }
    Ok(())
}

/// `SETRANGE key offset value`: writes `value` at `offset`, zero-padding a shorter string
/// (or a missing key) first; the new length. Results beyond proto-max-bulk-len are refused.
/// O(M) in the bytes written.
fn setrange(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, val) = (args[1], args[3]);
    let offset = int(args[2])?;
    if offset < 0 {
        return Err(E(OFFSET_RANGE));
    }
    let (now, lru, max) = (cx.now, cx.lru(), max_string(cx));
    let (sh, h, out) = cx.shard_out(key)?;
    let len = match lookup(sh, h, key, now, lru) {
        None => {
            // Writing nothing to a missing key creates nothing.
            if val.is_empty() {
                out.int(0);
                return Ok(());
            }
            check_string_length(max, offset as u64, val.len() as u64)?;
            let off = offset as usize;
            let mut s = vec![0u8; off + val.len()];
            s[off..].copy_from_slice(val);
            let len = s.len();
            // Redis builds this value in place: a `raw` string.
            let mut e = Entry::new(key, Value::Str(s), lru);
            e.set_meta(e.meta() | META_RAW);
            sh.insert(h, e);
            len
        }
        Some(e) => {
            let cur = e.as_str().ok_or_else(CommandError::wrong_type)?.len();
            if val.is_empty() {
                out.int(cur as i64);
                return Ok(());
            }
            check_string_length(max, offset as u64, val.len() as u64)?;
            let (off, end) = (offset as usize, offset as usize + val.len());
            let len = cur.max(end);
            edit_in_place(e, len, |s| s[off..end].copy_from_slice(val))?;
            len
        }
    };
    out.int(len as i64);
    cx.dirty(1);
    cx.notify(STRING, "setrange", key);
    Ok(())
}

// --- Counters --------------------------------------------------------------------------

/// Adds `by` to the integer at `key` (missing counts as 0) and replies with the result. The
/// key keeps its TTL, as Redis overwrites the value in place.
fn incr_by(cx: &mut Ctx, key: &[u8], by: i64) -> CmdResult {
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let mut digits = itoa::Buffer::new();
    let n = match lookup(sh, h, key, now, lru) {
        Some(e) => {
            let cur = e.as_str().ok_or_else(CommandError::wrong_type)?;
            let n = parse_i64(cur)
                .ok_or(E(NOT_INTEGER))?
                .checked_add(by)
                .ok_or(E(OVERFLOW))?;
            e.set_str(digits.format(n).as_bytes());
            n
        }
        None => {
            sh.insert(h, Entry::string(key, digits.format(by).as_bytes(), lru));
            by
        }
    };
    out.int(n);
    cx.dirty(1);
    cx.notify(STRING, "incrby", key);
    Ok(())
}

/// `INCR key`: the value plus one. O(1).
fn incr(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    incr_by(cx, args[1], 1)
}

/// `DECR key`: the value minus one. O(1).
fn decr(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    incr_by(cx, args[1], -1)
}

/// `INCRBY key increment`: the value plus `increment`. O(1).
fn incrby(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let by = int(args[2])?;
    incr_by(cx, args[1], by)
}

/// `DECRBY key decrement`: the value minus `decrement`. O(1).
fn decrby(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let by = int(args[2])?;
    // i64::MIN has no negation; Redis refuses it before looking at the key.
    if by == i64::MIN {
        return Err(E(DECR_OVERFLOW));
    }
    incr_by(cx, args[1], -by)
}

/// `INCRBYFLOAT key increment`: the new value, computed in x87 extended precision and
/// printed like Redis (see [`crate::longdouble`]). The key keeps its TTL. O(1).
fn incrbyfloat(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let existing = lookup(sh, h, key, now, lru);
    let current = match &existing {
        Some(e) => {
            let s = e.as_str().ok_or_else(CommandError::wrong_type)?;
            LongDouble::parse(s).ok_or(E(NOT_FLOAT))?
        }
        None => LongDouble::ZERO,
    };
    let incr = LongDouble::parse(args[2]).ok_or(E(NOT_FLOAT))?;
    let sum = current + incr;
    if !sum.is_finite() {
        return Err(E(NAN_OR_INF));
    }
    let text = sum.to_human();
    // Redis stores the printed text without trying the integer encoding.
    match existing {
        Some(e) => {
            e.set_str(&text);
            e.set_meta(e.meta() | META_NOT_INT);
        }
        None => {
            let mut e = Entry::string(key, &text, lru);
            e.set_meta(e.meta() | META_NOT_INT);
            sh.insert(h, e);
        }
    }
    out.bulk(&text);
    cx.dirty(1);
    // Replicas get the result, not the increment (float formatting must not differ).
    cx.propagate(&[b"SET", key, &text, b"KEEPTTL"]);
    cx.notify(STRING, "incrbyfloat", key);
    Ok(())
}

// --- LCS -------------------------------------------------------------------------------

/// What LCS found at one of its keys.
enum LcsInput {
    Missing,
    Str(usize),
    WrongType,
}

/// Looks a key up for LCS (counting the hit or miss) and returns what it holds.
fn lcs_probe(cx: &mut Ctx, key: &[u8]) -> Result<LcsInput, CommandError> {
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h) = cx.shard(key)?;
    Ok(match lookup_read(server, sh, h, key, now, lru) {
        None => LcsInput::Missing,
        Some(e) => e
            .as_str()
            .map_or(LcsInput::WrongType, |s| LcsInput::Str(s.len())),
    })
}

/// A copy of the string at `key` (empty when missing); LCS needs both values at once.
fn lcs_value(cx: &mut Ctx, key: &[u8]) -> Result<Vec<u8>, CommandError> {
    let now = cx.now;
    let (sh, h) = cx.shard(key)?;
    Ok(sh
        .get(h, key, now)
        .and_then(|e| e.as_str().map(<[u8]>::to_vec))
        .unwrap_or_default())
}

/// One common run: `a[a.0..=a.1] == b[b.0..=b.1]`.
struct LcsMatch {
    a: (usize, usize),
    b: (usize, usize),
}

/// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]`: the longest common
/// subsequence of the two strings (missing keys are empty), its length (LEN), or its
/// matching runs with positions (IDX), last runs first. O(N*M) time and memory, refused
/// when the table would exceed proto-max-bulk-len bytes.
fn lcs(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let pa = lcs_probe(cx, args[1])?;
    let pb = lcs_probe(cx, args[2])?;
    let (alen, blen) = match (pa, pb) {
        (LcsInput::WrongType, _) | (_, LcsInput::WrongType) => return Err(E(LCS_NOT_STRINGS)),
        (a, b) => {
            let len = |x: LcsInput| if let LcsInput::Str(n) = x { n } else { 0 };
            (len(a), len(b))
        }
    };

    let (mut want_idx, mut want_len, mut with_len, mut min_len) = (false, false, false, 0usize);
    let mut j = 3;
    while j < args.len() {
        let word = args[j];
        let has_value = j + 1 < args.len();
        if word.eq_ignore_ascii_case(b"IDX") {
            want_idx = true;
        } else if word.eq_ignore_ascii_case(b"LEN") {
            want_len = true;
        } else if word.eq_ignore_ascii_case(b"WITHMATCHLEN") {
            with_len = true;
        } else if word.eq_ignore_ascii_case(b"MINMATCHLEN") && has_value {
            min_len = usize::try_from(int(args[j + 1])?.max(0)).unwrap_or(usize::MAX);
            j += 1;
        } else {
            return Err(E(SYNTAX));
        }
        j += 1;
    }
    if want_idx && want_len {
        return Err(E(LCS_IDX_AND_LEN));
    }
    if alen as u64 >= u64::from(u32::MAX - 1) || blen as u64 >= u64::from(u32::MAX - 1) {
        return Err(E(LCS_TOO_LONG));
    }
    // The dynamic programming table has (alen+1)*(blen+1) u32 cells; like Redis, refuse a
    // table larger than proto-max-bulk-len rather than let a client allocate without bound.
    let cells = (alen as u128 + 1) * (blen as u128 + 1);
    if cells * 4 > u128::from(max_string(cx)) {
        return Err(E(LCS_TABLE_TOO_BIG));
    }
    let cells = usize::try_from(cells).map_err(|_| E(LCS_NO_MEMORY))?;
    let a = lcs_value(cx, args[1])?;
    let b = lcs_value(cx, args[2])?;

    if want_len {
        // The length needs only the previous row.
        cx.out.int(lcs_length(&a, &b) as i64);
        return Ok(());
    }

    let w = b.len() + 1;
    let mut t: Vec<u32> = Vec::new();
    t.try_reserve_exact(cells).map_err(|_| E(LCS_NO_MEMORY))?;
    t.resize(cells, 0);
    for (i, &x) in a.iter().enumerate() {
        // Row i+1 from row i: cell j is the LCS length of a[..=i] and b[..j].
        let (done, rest) = t.split_at_mut((i + 1) * w);
        let (prev, cur) = (&done[i * w..], &mut rest[..w]);
        for (j, &y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
    }
    let total = t[a.len() * w + b.len()] as usize;

    // Walk back from the end: a diagonal step is a common byte; otherwise move towards the
    // larger neighbour (towards shorter `b` on ties, as Redis does, which decides which of
    // several equally long answers is returned). Runs of diagonal steps are the matches.
    let mut seq = vec![0u8; total];
    let mut k = total;
    let mut matches: Vec<LcsMatch> = Vec::new();
    let mut run: Option<LcsMatch> = None;
    let flush = |run: &mut Option<LcsMatch>, matches: &mut Vec<LcsMatch>| {
        if let Some(m) = run.take() {
            if m.a.1 - m.a.0 + 1 >= min_len {
                matches.push(m);
            }
        }
    };
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            k -= 1;
            seq[k] = a[i - 1];
            // Consecutive diagonal steps extend the run backwards.
            run = Some(match run {
                Some(m) => LcsMatch {
                    a: (i - 1, m.a.1),
                    b: (j - 1, m.b.1),
                },
                None => LcsMatch {
                    a: (i - 1, i - 1),
                    b: (j - 1, j - 1),
                },
            });
            i -= 1;
            j -= 1;
            if i == 0 || j == 0 {
                flush(&mut run, &mut matches);
            }
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            flush(&mut run, &mut matches);
        }
    }
    flush(&mut run, &mut matches);
    drop(t);

    if !want_idx {
        cx.out.bulk(&seq);
        return Ok(());
    }
    let out = &mut cx.out;
    out.map(2);
    out.bulk(b"matches");
    out.array(matches.len());
    for m in &matches {
        out.array(2 + usize::from(with_len));
        for (s, e) in [m.a, m.b] {
            out.array(2);
            out.int(s as i64);
            out.int(e as i64);
        }
        if with_len {
            out.int((m.a.1 - m.a.0 + 1) as i64);
        }
    }
    out.bulk(b"len");
    out.int(total as i64);
    Ok(())
}

/// Length of the longest common subsequence, keeping one row of the table.
fn lcs_length(a: &[u8], b: &[u8]) -> u32 {
    let mut prev = vec![0u32; b.len() + 1];
    let mut cur = vec![0u32; b.len() + 1];
    for &x in a {
        for (j, &y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substring_ranges_clamp_like_redis() {
        assert_eq!(substring_range(0, -1, 11), Some((0, 10)));
        assert_eq!(substring_range(-3, -1, 11), Some((8, 10)));
        assert_eq!(substring_range(5, 2, 11), None);
        assert_eq!(substring_range(-1, -5, 11), None);
        assert_eq!(substring_range(-100, -50, 11), Some((0, 0)));
        assert_eq!(substring_range(100, 200, 11), None);
        assert_eq!(substring_range(i64::MIN, i64::MAX, 11), Some((0, 10)));
        assert_eq!(substring_range(i64::MAX, i64::MIN, 11), None);
        assert_eq!(substring_range(0, -1, 0), None);
        assert_eq!(substring_range(0, 0, 0), None);
    }

    #[test]
    fn set_options_conflict_like_redis() {
        let p = |s: &str, set: bool| {
            let v: Vec<&[u8]> = s.split(' ').map(str::as_bytes).collect();
            parse_set_opts(&v, 0, set).map(|o| (o.flags, o.expire.map(<[u8]>::to_vec)))
        };
        assert!(p("NX XX", true).is_err());
        assert!(p("XX NX", true).is_err());
        assert!(p("EX 1 PX 1", true).is_err());
        assert!(p("KEEPTTL EX 1", true).is_err());
        assert!(p("EX 1 KEEPTTL", true).is_err());
        assert!(p("PERSIST", true).is_err());
        assert!(p("GET", false).is_err());
        assert!(p("EX", true).is_err());
        assert_eq!(p("EX 1 ex 2", true).unwrap().1.unwrap(), b"2");
        assert!(p("nx nx get get keepttl keepttl", true).is_ok());
        assert!(p("PERSIST PERSIST", false).is_ok());
        assert!(p("EXAT abc", false).is_ok());
    }

    #[test]
    fn lcs_length_with_one_row() {
        assert_eq!(lcs_length(b"ohmytext", b"mynewtext"), 6);
        assert_eq!(lcs_length(b"", b"abc"), 0);
        assert_eq!(lcs_length(b"abc", b"abc"), 3);
    }
}
