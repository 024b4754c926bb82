//! `DEBUG` and its subcommands, refused unless `enable-debug-command` allows the client, as
//! in Redis 7. DEBUG OBJECT's model of Redis's encodings is in [`object`].

mod inspect;
mod mallctl;
mod object;

use std::sync::atomic::Ordering::Relaxed;

use super::{enabled_for, help_reply};
use crate::command::flags::*;
use crate::command::{CommandSpec, Ctx, Keys};
use crate::digest;
use crate::error::{CmdResult, CommandError, DEBUG_NOT_ALLOWED, E, NOT_POSITIVE, STRING_TOO_LONG};
use crate::storage::entry::Entry;
use crate::storage::SHARDS;
use crate::util::parse_i64;

use object::debug_object;

/// The `DEBUG` entry of the family's table.
pub(super) const DEBUG: CommandSpec = CommandSpec::new(
    "debug",
    -2,
    ADMIN | NOSCRIPT | LOADING | STALE,
    Keys::WalkAll,
    debug,
)
.group("server")
.summary("A container for debugging commands")
.complexity("Depends on subcommand.");

/// `DEBUG <subcommand> [arg ...]`: OBJECT, DIGEST, DIGEST-VALUE, POPULATE, SLEEP, RELOAD,
/// LOADAOF, the structure reports (LISTPACK, QUICKLIST, SDSLEN, HTSTATS, HTSTATS-KEY,
/// CLIENT-EVICTION), MALLCTL, REPLICATE, LEAK, test switches, HELP. Refused unless
/// `enable-debug-command` allows this client.
fn debug(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if !enabled_for(cx, "enable-debug-command") {
        return Err(E(DEBUG_NOT_ALLOWED));
    }
    let sub = args[1].to_ascii_lowercase();
    match (&sub[..], args.len()) {
        (b"help", 2) => debug_help(cx),
        (b"object", 3) => debug_object(cx, args[2]),
        (b"listpack", 3) => inspect::debug_listpack(cx, args[2]),
        (b"quicklist", 3 | 4) => inspect::debug_quicklist(cx, args[2], args.get(3).copied()),
        (b"sdslen", 3) => inspect::debug_sdslen(cx, args[2]),
        (b"htstats", 3) => inspect::debug_htstats(cx, args[2]),
        (b"htstats-key", 3) => inspect::debug_htstats_key(cx, args[2]),
        (b"client-eviction", 2) => inspect::debug_client_eviction(cx),
        (b"mallctl", 3..) => mallctl::debug_mallctl(cx, &args[2..]),
        (b"mallctl-str", 3..) => mallctl::debug_mallctl_str(cx, &args[2..]),
        (b"aof-flush-sleep", 3) => {
            // Redis reads it with atoi: anything unparsable is 0, a negative value too.
            let us = u64::try_from(atoi(args[2])).unwrap_or(0);
            cx.server.aof.flush_sleep_us.store(us, Relaxed);
            cx.out.ok();
            Ok(())
        }
        (b"replicate", 3..) => {
            // To the replicas (and the backlog) only, unexecuted: Redis 7.0 feeds neither
            // the AOF nor a transaction's MULTI ... EXEC with it.
            cx.server.feed.append_repl_command(cx.client.db, &args[2..]);
            cx.out.ok();
            Ok(())
        }
        (b"leak", 3) => {
            // A deliberate leak (for leak checkers' tests): a copy nobody frees.
            std::mem::forget(args[2].to_vec());
            cx.out.ok();
            Ok(())
        }
        (b"loadaof", _) => debug_loadaof(cx),
        (b"digest", 2) => debug_digest(cx),
        (b"digest-value", _) => debug_digest_value(cx, &args[2..]),
        // What any bug would do (see `crate::crash`): the report, then abort.
        (b"panic", 2) => panic!(
            "DEBUG PANIC called at Unix time {}",
            crate::clock::now_ms() / 1000
        ),
        (b"populate", 3..=5) => debug_populate(cx, args),
        (b"sleep", 3) => {
            debug_sleep(args[2]);
            cx.out.ok();
            Ok(())
        }
        (b"reload", _) => debug_reload(cx, &args[2..]),
        (b"set-active-expire", 3) => {
            cx.server.active_expire.store(atoi(args[2]) != 0, Relaxed);
            cx.out.ok();
            Ok(())
        }
        (b"error", 3) => Err(CommandError::Owned(
            String::from_utf8_lossy(args[2]).into_owned(),
        )),
        (b"protocol", 3) => debug_protocol(cx, args[2]),
        (b"log", 3) => {
            tracing::warn!("DEBUG LOG: {}", String::from_utf8_lossy(args[2]));
            cx.out.ok();
            Ok(())
        }
        (b"change-repl-id", 2) => {
            cx.server.repl.change_replid();
            cx.out.ok();
            Ok(())
        }
        // Switches Redis keeps for its own tests, accepted with its validation; Kiln's list
        // encoding and reply buffers have no such knobs (see docs/COMPATIBILITY.md).
        (b"quicklist-packed-threshold", 3) => {
            let ok = crate::config::parse_memory(&String::from_utf8_lossy(args[2]))
                .is_some_and(|n| n < 1 << 32);
            if !ok {
                return Err(CommandError::err(
                    "argument must be a memory value bigger than 1 and smaller than 4gb",
                ));
            }
            cx.out.ok();
            Ok(())
        }
        (b"set-disable-deny-scripts", 3) => {
            cx.server
                .scripts
                .allow_deny_script
                .store(atoi(args[2]) != 0, Relaxed);
            cx.out.ok();
            Ok(())
        }
        (b"set-skip-checksum-validation", 3) => {
            cx.server.skip_checksum.store(atoi(args[2]) != 0, Relaxed);
            cx.out.ok();
            Ok(())
        }
        (b"pause-cron", 3) => {
            cx.server.cron_paused.store(atoi(args[2]) != 0, Relaxed);
            cx.out.ok();
            Ok(())
        }
        (b"replybuffer", 4)
            if args[2].eq_ignore_ascii_case(b"peak-reset-time")
                || args[2].eq_ignore_ascii_case(b"resizing") =>
        {
            cx.out.ok();
            Ok(())
        }
        _ => Err(CommandError::bad_subcommand(args[0], args[1])),
    }
}

/// `DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]`: saves the dataset, empties it and loads the
/// file back (a round trip through the RDB format, for tests). Not atomic with respect to
/// other clients' writes, which Redis's single thread makes it.
fn debug_reload(cx: &mut Ctx, opts: &[&[u8]]) -> CmdResult {
    let (mut merge, mut flush, mut save) = (false, true, true);
    for o in opts {
        match &o.to_ascii_lowercase()[..] {
            b"merge" => merge = true,
            b"noflush" => flush = false,
            b"nosave" => save = false,
            _ => {
                return Err(CommandError::err(
                    "DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
                ))
            }
        }
    }
    // Through the command's lock set: it holds nothing (each step locks what it needs), or
    // inside EXEC every shard (DEBUG walks the keyspace), and the steps use those.
    let server = cx.server.arc();
    if save {
        if let Err(e) = crate::persist::save_in(&server, cx.lock_set()) {
            tracing::warn!("DEBUG RELOAD save failed: {e:?}");
            return Err(CommandError::err("Error trying to save the DB"));
        }
    }
    if flush {
        cx.lock_set().each(|sh| sh.clear());
        // The file carries the libraries too (Redis empties them with the keys).
        cx.server.scripts.libraries.write().clear();
    }
    let path = crate::persist::rdb_path(&server);
    let opts = crate::rdb::LoadOptions {
        replace_existing: merge,
        ..crate::rdb::LoadOptions::default()
    };
    let loaded = std::fs::File::open(&path)
        .map_err(|e| crate::rdb::RdbError::io(0, &e))
        .and_then(|f| {
            crate::rdb::load_held(
                server.rdb_target(),
                cx.lock_set(),
                std::io::BufReader::new(f),
                opts,
            )
        });
    match loaded {
        Ok(_) => {
            tracing::info!("DB reloaded by DEBUG RELOAD");
            cx.out.ok();
            Ok(())
        }
        Err(e) => {
            tracing::warn!("DEBUG RELOAD load failed: {e}");
            Err(CommandError::err(
                "Error trying to load the RDB dump, check server logs.",
            ))
        }
    }
}

/// `DEBUG LOADAOF`: waits until the AOF writer has written everything, empties the
/// dataset (and the function libraries, which the AOF's base holds) and loads the AOF
/// back, as Redis does. Where Redis exits (no AOF, or a file that does not load), Kiln
/// answers an error: with the dataset untouched when there is no complete AOF to load.
/// Inside MULTI/EXEC, which holds every shard, it is refused.
fn debug_loadaof(cx: &mut Ctx) -> CmdResult {
    if cx.mode != crate::command::Mode::Direct {
        return Err(E(crate::error::DEBUG_LOADAOF_IN_MULTI));
    }
    let server = cx.server.arc();
    let reloaded = crate::aof::reload(&server, || {
        cx.lock_set().each(|sh| sh.clear());
        cx.server.scripts.libraries.write().clear();
    });
    match reloaded {
        Ok(()) => {
            cx.out.ok();
            Ok(())
        }
        Err(crate::aof::ReloadError::NotOn) => Err(E(crate::error::DEBUG_LOADAOF_NOT_ON)),
        Err(crate::aof::ReloadError::Busy) => Err(E(crate::error::DEBUG_LOADAOF_BUSY)),
        Err(crate::aof::ReloadError::Load(e)) => {
            tracing::warn!("DEBUG LOADAOF failed: {e}");
            Err(E(crate::error::DEBUG_LOADAOF_FAILED))
        }
    }
}

/// `DEBUG HELP`
fn debug_help(cx: &mut Ctx) -> CmdResult {
    help_reply(
        &mut cx.out,
        "DEBUG",
        &[
            "AOF-FLUSH-SLEEP <microsec>",
            "    Make the AOF writer sleep <microsec> before each write to the file (0: never).",
            "DIGEST",
            "    Output a hex signature representing the current DB content.",
            "DIGEST-VALUE <key> [<key> ...]",
            "    Output a hex signature of the values of all the specified keys.",
            "CHANGE-REPL-ID",
            "    Change the replication IDs of the instance.",
            "ERROR <string>",
            "    Return a Redis protocol error with <string> as message.",
            "LEAK <string>",
            "    Leak a copy of <string> on purpose (for memory leak checkers).",
            "LOG <message>",
            "    Write <message> to the server log.",
            "HTSTATS <dbid>",
            "    Statistics of the key and expires tables of database <dbid>.",
            "HTSTATS-KEY <key>",
            "    Statistics of the hash table holding the hash, set or sorted set at <key>.",
            "REPLICATE <command> [<arg> ...]",
            "    Send <command> to the replicas without running it here (they may diverge).",
            "MALLCTL <name> [<value>]",
            "    Read, or write and return the old value of, a 64-bit jemalloc setting.",
            "MALLCTL-STR <name> [<value>]",
            "    Read, or write and return the old value of, a jemalloc string setting.",
            "LOADAOF",
            "    Write out the AOF, empty the dataset and load the AOF back (AOF on only).",
            "OBJECT <key>",
            "    Show low level info about `key` and associated value.",
            "PANIC",
            "    Crash the server on purpose: a crash report, then the process aborts.",
            "PAUSE-CRON <0|1>",
            "    Stop periodic cron job processing.",
            "POPULATE <count> [<prefix>] [<size>]",
            "    Create <count> string keys named <prefix>:<num> (prefix 'key' by default)",
            "    holding value:<num>, zero-padded or cut to <size> bytes when given.",
            "    Existing keys are left alone.",
            "RELOAD [MERGE] [NOFLUSH] [NOSAVE]",
            "    Save the dataset to the RDB file, empty it and load the file back.",
            "PROTOCOL <type>",
            "    Reply with a test value of the specified type: string, integer, double, bignum,",
            "    null, array, set, map, attrib, push, verbatim, true, false.",
            "QUICKLIST-PACKED-THRESHOLD <size>, REPLYBUFFER <PEAK-RESET-TIME|RESIZING> <n>",
            "    Accepted for Redis's tests; Kiln's lists and reply buffers have no such knob.",
            "SET-DISABLE-DENY-SCRIPTS <0|1>",
            "    Allow (1) commands flagged noscript inside scripts.",
            "SET-SKIP-CHECKSUM-VALIDATION <0|1>",
            "    Skip the checksum of DUMP payloads in RESTORE.",
            "SDSLEN <key>",
            "    Lengths, spare room and allocation sizes of a string key's key and value.",
            "SET-ACTIVE-EXPIRE <0|1>",
            "    0 stops deleting expired keys in the background (they still expire when",
            "    accessed); 1 restores the default.",
            "SLEEP <seconds>",
            "    Block the connection's worker thread for <seconds>. Decimals allowed.",
            "LISTPACK <key>",
            "    Print the compact encoding of the small hash or sorted set at <key> on stdout.",
            "QUICKLIST <key> [<0|1|2>]",
            "    Print the chunks of the list at <key> on stdout: totals (0), each chunk (1),",
            "    each element (2).",
            "CLIENT-EVICTION",
            "    Memory held by the clients maxmemory-clients may evict, by size bucket.",
        ],
    );
    Ok(())
}

/// `DEBUG PROTOCOL <type>`: one reply of each RESP type, as Redis sends them (for client
/// libraries' tests), in the connection's protocol.
fn debug_protocol(cx: &mut Ctx, kind: &[u8]) -> CmdResult {
    let out = &mut cx.out;
    match kind.to_ascii_lowercase().as_slice() {
        b"string" => out.bulk(b"Hello World"),
        b"integer" => out.int(12345),
        b"double" => out.double_text(b"3.141"),
        b"bignum" => {
            if out.resp3 {
                out.raw(b"(1234567999999999999999999999999999999\r\n");
            } else {
                out.bulk(b"1234567999999999999999999999999999999");
            }
        }
        b"null" => out.null(),
        b"array" | b"set" | b"map" => {
            let n = 3;
            match kind.to_ascii_lowercase().as_slice() {
                b"array" => out.array(n),
                b"set" => out.set(n),
                _ => out.map(n),
            }
            for i in 0..n {
                out.int(i as i64);
                if kind.eq_ignore_ascii_case(b"map") {
                    out.boolean(i == 1);
                }
            }
        }
        b"attrib" => {
            if out.resp3 {
                out.raw(b"|1\r\n");
                out.bulk(b"key-popularity");
                out.array(2);
                out.bulk(b"key:123");
                out.int(90);
            }
            out.bulk(b"Some real reply following the attribute");
        }
        b"push" => {
            if !out.resp3 {
                return Err(CommandError::err("RESP2 is not supported by this command"));
            }
            out.push(2);
            out.bulk(b"server-cpu-usage");
            out.int(42);
            out.bulk(b"Some real reply following the push reply");
        }
        b"verbatim" => out.verbatim(b"This is a verbatim\nstring"),
        b"true" => out.boolean(true),
        b"false" => out.boolean(false),
        _ => {
            return Err(CommandError::err(
                "Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
            ))
        }
    }
    Ok(())
}

/// `DEBUG DIGEST`: Redis's digest of the whole dataset (see [`crate::digest`]). Locks
/// every shard, in order, for a consistent snapshot. O(N) keys.
fn debug_digest(cx: &mut Ctx) -> CmdResult {
    let mut d = digest::DatasetDigest::new();
    for db in 0..cx.server.keyspace.dbs.len() {
        let mut keys = 0;
        for idx in 0..SHARDS {
            keys += cx.shard_at(db, idx)?.len();
        }
        if keys == 0 {
            continue;
        }
        d.begin_db(db);
        for idx in 0..SHARDS {
            for e in cx.shard_at(db, idx)?.iter() {
                d.add(e);
            }
        }
    }
    cx.out.simple(&digest::hex(&d.finish()));
    Ok(())
}

/// `DEBUG DIGEST-VALUE [key ...]`: the digest of each key's value (zeros for a missing
/// key). O(N) in the size of the values.
fn debug_digest_value(cx: &mut Ctx, keys: &[&[u8]]) -> CmdResult {
    cx.out.array(keys.len());
    for key in keys {
        let (sh, h, out) = cx.shard_out(key)?;
        let d = sh.peek(h, key).map_or([0; 20], digest::value_digest);
        out.simple(&digest::hex(&d));
        // DEBUG walks: the next key's shard may come before this one in lock order.
        cx.unlock_all();
    }
    Ok(())
}

/// DEBUG POPULATE's count and size: a non-negative integer.
fn positive(arg: &[u8]) -> Result<usize, CommandError> {
    parse_i64(arg)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or(E(NOT_POSITIVE))
}

/// `DEBUG POPULATE count [prefix] [size]`: creates `prefix:N` → `value:N` for N in
/// 0..count, skipping keys that exist, exactly the keys and values Redis creates (benchmarks
/// and digests compare them). O(count).
fn debug_populate(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let count = positive(args[2])?;
    let size = match args.get(4) {
        Some(a) => positive(a)?,
        None => 0,
    };
    // Redis would allocate whatever it is asked; Kiln holds a value to the string limit.
    if size as u64 > cx.server.hot.proto_max_bulk_len.load(Relaxed) {
        return Err(E(STRING_TOO_LONG));
    }
    // Redis formats `%s:%lu` into a 128-byte buffer: the prefix stops at a NUL byte and the
    // key at 127 bytes.
    let prefix: &[u8] = args
        .get(3)
        .map_or(b"key", |p| p.split(|&c| c == 0).next().unwrap_or_default());
    let (now, lru) = (cx.now, cx.lru());
    let mut key = Vec::with_capacity(128);
    let mut val = Vec::new();
    let mut num = itoa::Buffer::new();
    for j in 0..count {
        let n = num.format(j);
        key.clear();
        key.extend_from_slice(prefix);
        key.push(b':');
        key.extend_from_slice(n.as_bytes());
        key.truncate(127);
        val.clear();
        val.extend_from_slice(b"value:");
        val.extend_from_slice(n.as_bytes());
        if size > 0 {
            val.resize(size, 0);
        }
        let (sh, h) = cx.shard(&key)?;
        if sh.get(h, &key, now).is_none() {
            sh.insert(h, Entry::string(&key, &val, lru));
        }
        // One key at a time: the next key's shard may come before this one in lock order.
        cx.unlock_all();
    }
    cx.out.ok();
    Ok(())
}

/// Reads a leading decimal number like C's `strtod` (leading spaces, sign, digits, point,
/// exponent; anything unparsable is 0).
fn strtod_prefix(s: &[u8]) -> f64 {
    let s = &s[s.iter().take_while(|c| c.is_ascii_whitespace()).count()..];
    let mut end = 0;
    let digits = |from: usize| s[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    if matches!(s.first(), Some(b'+' | b'-')) {
        end = 1;
    }
    let int = digits(end);
    end += int;
    let mut frac = 0;
    if s.get(end) == Some(&b'.') {
        frac = digits(end + 1);
        if int + frac > 0 {
            end += 1 + frac;
        }
    }
    if int + frac == 0 {
        return 0.0;
    }
    if matches!(s.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(s.get(end + 1), Some(b'+' | b'-')));
        let exp = digits(end + 1 + sign);
        if exp > 0 {
            end += 1 + sign + exp;
        }
    }
    std::str::from_utf8(&s[..end])
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0.0)
}

/// `DEBUG SLEEP seconds`: blocks the calling worker thread (Redis blocks its only thread;
/// here the connections served by other workers carry on).
fn debug_sleep(arg: &[u8]) {
    let secs = strtod_prefix(arg);
    if let Ok(d) = std::time::Duration::try_from_secs_f64(secs) {
        std::thread::sleep(d);
    }
}

/// C's `atoi`: leading spaces, optional sign, digits; anything else stops it.
fn atoi(s: &[u8]) -> i64 {
    let s = &s[s.iter().take_while(|c| c.is_ascii_whitespace()).count()..];
    let (neg, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = s
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .fold(0i64, |n, c| {
            n.saturating_mul(10).saturating_add(i64::from(c - b'0'))
        });
    if neg {
        -n
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtod_and_atoi_read_leading_numbers_like_c() {
        assert_eq!(strtod_prefix(b"0.25"), 0.25);
        assert_eq!(strtod_prefix(b" 1.5abc"), 1.5);
        assert_eq!(strtod_prefix(b"x"), 0.0);
        assert_eq!(strtod_prefix(b"-2"), -2.0);
        assert_eq!(strtod_prefix(b"1e2x"), 100.0);
        assert_eq!(strtod_prefix(b"1e"), 1.0);
        assert_eq!(strtod_prefix(b"."), 0.0);
        assert_eq!(strtod_prefix(b".5"), 0.5);
        assert_eq!(atoi(b" 12x"), 12);
        assert_eq!(atoi(b"-3"), -3);
        assert_eq!(atoi(b"x"), 0);
        assert_eq!(atoi(b"99999999999999999999999"), i64::MAX);
    }
}
