//! Keyspace commands that work on keys of any type: DEL, UNLINK, EXISTS, TYPE, KEYS, SCAN,
//! RANDOMKEY, RENAME, RENAMENX, COPY, MOVE, TOUCH, the expiry family (EXPIRE, PEXPIRE,
//! EXPIREAT, PEXPIREAT, TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST) and OBJECT.
//!
//! Every command's key spec names every key it touches, in every database, so the dispatcher
//! locks all of their shards up front and the command is atomic (RENAME across two shards,
//! MOVE and COPY across two databases). KEYS and RANDOMKEY lock the whole database for a
//! consistent snapshot; SCAN instead locks one shard at a time, which its cursor design
//! allows (see `storage::keyspace`).
//!
//! Lookups follow Redis's rules on side effects: read lookups count keyspace hits and misses,
//! write lookups do not; EXISTS, TYPE, TTL and OBJECT leave the LRU clock alone, the others
//! record an access.

use super::args::{int, parse_cursor, parse_db};
use super::flags::*;
use super::server::{free_lazily, LAZYFREE_THRESHOLD};
use super::{count_read, key_miss, lookup_read, tell_expired_to, CommandSpec, Ctx, Keys};
use crate::error::{
    CmdResult, CommandError, DB_INDEX, E, EXPIRE_GT_AND_LT, EXPIRE_NX_AND_OTHERS, LFU_NOT_SELECTED,
    LFU_SELECTED, NO_SUCH_KEY, SAME_OBJECT, SYNTAX,
};
use crate::notify::GENERIC;
use crate::reply::Out;
use crate::storage::entry::{ValueRef, META_RAW, META_UNSHARED};
use crate::storage::keyspace::SHARD_BITS;
use crate::storage::{Entry, Value, SHARDS};
use crate::util::glob_match;

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("del", -2, WRITE, Keys::Range(1, -1, 1), del)
        .summary("Deletes one or more keys.")
        .complexity("O(N) where N is the number of keys that will be removed.")
        .syntax("key [key ...]"),
    CommandSpec::new("unlink", -2, WRITE | FAST, Keys::Range(1, -1, 1), unlink)
        .since("4.0.0")
        .summary("Deletes one or more keys; big values are freed on a background thread.")
        .complexity("O(1) per key; freeing a big value's memory happens on another thread.")
        .syntax("key [key ...]"),
    CommandSpec::new("exists", -2, READONLY | FAST, Keys::Range(1, -1, 1), exists)
        .summary("Determines whether one or more keys exist.")
        .complexity("O(N) where N is the number of keys to check.")
        .syntax("key [key ...]"),
    CommandSpec::new("type", 2, READONLY | FAST, Keys::Range(1, 1, 1), type_cmd)
        .summary("Returns the type of the value stored at a key.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new("keys", 2, READONLY, Keys::AllDb, keys)
        .summary("Returns every key name that matches a glob pattern.")
        .complexity("O(N) with N the number of keys in the database.")
        .syntax("pattern"),
    CommandSpec::new("scan", -2, READONLY, Keys::WalkDb, scan)
        .since("2.8.0")
        .summary("Iterates over the key names of the database, a page per call.")
        .complexity("O(1) per call, O(N) for a complete iteration.")
        .syntax("cursor [MATCH pattern] [COUNT count] [TYPE type]"),
    CommandSpec::new("randomkey", 1, READONLY, Keys::AllDb, randomkey)
        .summary("Returns a random key name from the database.")
        .complexity("O(1)"),
    CommandSpec::new("rename", 3, WRITE, Keys::Range(1, 2, 1), rename)
        .summary("Renames a key, overwriting the destination.")
        .complexity("O(1)")
        .syntax("key newkey"),
    CommandSpec::new("renamenx", 3, WRITE | FAST, Keys::Range(1, 2, 1), renamenx)
        .summary("Renames a key only when the new name is not in use.")
        .complexity("O(1)")
        .syntax("key newkey"),
    CommandSpec::new("copy", -3, WRITE | DENYOOM, Keys::Custom(copy_keys), copy)
        .since("6.2.0")
        .summary("Copies the value of a key to a new key, possibly in another database.")
        .complexity("O(N) for collections with N elements, O(1) for strings.")
        .syntax("source destination [DB destination-db] [REPLACE]"),
    CommandSpec::new("move", 3, WRITE | FAST, Keys::Custom(move_keys), move_cmd)
        .summary("Moves a key to another database.")
        .complexity("O(1)")
        .syntax("key db"),
    CommandSpec::new("touch", -2, READONLY | FAST, Keys::Range(1, -1, 1), touch)
        .since("3.2.1")
        .summary("Records an access to keys without reading them; counts those that exist.")
        .complexity("O(N) where N is the number of keys that will be touched.")
        .syntax("key [key ...]"),
    CommandSpec::new("expire", -3, WRITE | FAST, Keys::Range(1, 1, 1), expire)
        .summary("Sets a key's time to live in seconds.")
        .complexity("O(1)")
        .syntax("key seconds [NX | XX | GT | LT]"),
    CommandSpec::new("pexpire", -3, WRITE | FAST, Keys::Range(1, 1, 1), pexpire)
        .since("2.6.0")
        .summary("Sets a key's time to live in milliseconds.")
        .complexity("O(1)")
        .syntax("key milliseconds [NX | XX | GT | LT]"),
    CommandSpec::new("expireat", -3, WRITE | FAST, Keys::Range(1, 1, 1), expireat)
        .since("1.2.0")
        .summary("Sets a key's expiry as a Unix time in seconds.")
        .complexity("O(1)")
        .syntax("key unix-time-seconds [NX | XX | GT | LT]"),
    CommandSpec::new(
        "pexpireat",
        -3,
        WRITE | FAST,
        Keys::Range(1, 1, 1),
        pexpireat,
    )
    .since("2.6.0")
    .summary("Sets a key's expiry as a Unix time in milliseconds.")
    .complexity("O(1)")
    .syntax("key unix-time-milliseconds [NX | XX | GT | LT]"),
    CommandSpec::new("ttl", 2, READONLY | FAST, Keys::Range(1, 1, 1), ttl)
        .summary("Returns a key's remaining time to live in seconds.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new("pttl", 2, READONLY | FAST, Keys::Range(1, 1, 1), pttl)
        .since("2.6.0")
        .summary("Returns a key's remaining time to live in milliseconds.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new(
        "expiretime",
        2,
        READONLY | FAST,
        Keys::Range(1, 1, 1),
        expiretime,
    )
    .since("7.0.0")
    .summary("Returns a key's expiry as a Unix time in seconds.")
    .complexity("O(1)")
    .syntax("key"),
    CommandSpec::new(
        "pexpiretime",
        2,
        READONLY | FAST,
        Keys::Range(1, 1, 1),
        pexpiretime,
    )
    .since("7.0.0")
    .summary("Returns a key's expiry as a Unix time in milliseconds.")
    .complexity("O(1)")
    .syntax("key"),
    CommandSpec::new("persist", 2, WRITE | FAST, Keys::Range(1, 1, 1), persist)
        .since("2.2.0")
        .summary("Removes a key's time to live.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new("object", -2, 0, Keys::None, object)
        .since("2.2.3")
        .summary("A container for commands that inspect how a key's value is stored.")
        .complexity("Depends on subcommand.")
        .subcommands(OBJECT_SUBCOMMANDS),
];

const OBJECT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "encoding",
        3,
        READONLY,
        Keys::Range(2, 2, 1),
        object_encoding,
    )
    .since("2.2.3")
    .summary("Returns the internal encoding of a key's value.")
    .complexity("O(1)")
    .syntax("key"),
    CommandSpec::new("freq", 3, READONLY, Keys::Range(2, 2, 1), object_freq)
        .since("4.0.0")
        .summary("Returns the logarithmic access frequency counter of a key's value.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new(
        "idletime",
        3,
        READONLY,
        Keys::Range(2, 2, 1),
        object_idletime,
    )
    .since("2.2.3")
    .summary("Returns the seconds since a key's value was last accessed.")
    .complexity("O(1)")
    .syntax("key"),
    CommandSpec::new(
        "refcount",
        3,
        READONLY,
        Keys::Range(2, 2, 1),
        object_refcount,
    )
    .since("2.2.3")
    .summary("Returns the reference count of a key's value.")
    .complexity("O(1)")
    .syntax("key"),
    CommandSpec::new("help", 2, LOADING | STALE, Keys::None, object_help)
        .since("6.2.0")
        .summary("Returns helpful text about the different subcommands.")
        .complexity("O(1)"),
];

/// `DEL key [key ...]`: the number of keys removed. O(N) keys, plus the size of the values
/// (freed in the background like UNLINK's when `lazyfree-lazy-user-del` is set).
/// A key past its deadline is deleted but not counted, as in Redis.
fn del(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    del_generic(cx, args, false)
}

/// `UNLINK key [key ...]`: DEL, but a big value's memory is freed on the lazy-free thread
/// instead of under its shard's lock. O(1) per key.
fn unlink(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    del_generic(cx, args, true)
}

/// How much work freeing a value takes, as Redis 7.0 estimates it to choose between freeing
/// in place and in the background: elements of a hashtable or skiplist, nodes of a list
/// (one per 8 KiB, the default node size), 1 for strings and compact encodings.
fn free_effort(e: &Entry) -> usize {
    match e.value() {
        ValueRef::Str(_) | ValueRef::Other(Value::Str(_)) => 1,
        ValueRef::Other(Value::List(l)) => 1 + l.heap_size() / 8192,
        ValueRef::Other(v) if matches!(v.encoding(), "listpack" | "intset") => 1,
        ValueRef::Other(Value::Hash(h)) => h.len(),
        ValueRef::Other(Value::Set(s)) => s.len(),
        ValueRef::Other(Value::ZSet(z)) => z.len(),
        ValueRef::Other(Value::Stream(s)) => 1 + s.heap_size() / 4096,
    }
}

fn del_generic(cx: &mut Ctx, args: &[&[u8]], unlink: bool) -> CmdResult {
    let now = cx.now;
    let mut n = 0;
    // Read only when a big value shows up: DEL of small keys never takes the config lock.
    let mut lazy = unlink.then_some(true);
    for (i, key) in args.iter().enumerate().skip(1) {
        let (sh, h) = cx.shard(key)?;
        if !sh.contains(h, key, now) {
            // Nothing changed there: its WATCHes and trackers hear nothing (Redis signals
            // only the keys it deleted).
            cx.keep_watches(i);
            continue;
        }
        {
            if let Some(e) = sh.remove(h, key) {
                if free_effort(&e) > LAZYFREE_THRESHOLD
                    && *lazy.get_or_insert_with(|| {
                        cx.server.config.read().get_bool("lazyfree-lazy-user-del")
                    })
                {
                    free_lazily(e, 1);
                }
            }
            cx.notify(GENERIC, "del", key);
            n += 1;
        }
    }
    cx.dirty(n as u64);
    cx.out.int(n);
    Ok(())
}

/// `EXISTS key [key ...]`: how many of the keys exist (repeats count each time). O(N) keys.
fn exists(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let now = cx.now;
    let mut n = 0;
    let server = cx.server;
    for key in &args[1..] {
        let (sh, h) = cx.shard(key)?;
        let found = sh.contains(h, key, now);
        count_read(server, sh, key, found);
        n += i64::from(found);
    }
    cx.out.int(n);
    Ok(())
}

/// `TYPE key`: the value's type name, or `none`. O(1).
fn type_cmd(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, server) = (cx.now, cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let found = match sh.get(h, key, now) {
        Some(e) => {
            out.simple(e.type_name());
            true
        }
        None => {
            out.simple("none");
            false
        }
    };
    count_read(server, sh, key, found);
    Ok(())
}

/// `KEYS pattern`: every live key matching the glob pattern, from a consistent snapshot of
/// the database (all of its shards are locked). O(N) keys.
fn keys(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let pattern = args[1];
    let all = pattern == b"*";
    let (db, now) = (cx.db(), cx.now);
    // The count is known only at the end: encode the keys aside, then the header.
    let mut body = Vec::new();
    let mut page = Out::new(&mut body, cx.out.resp3);
    let mut n = 0;
    for idx in 0..SHARDS {
        let sh = cx.shard_at(db, idx)?;
        for e in sh.iter() {
            // Redis's KEYS skips logically expired keys without deleting them.
            if (all || glob_match(pattern, e.key(), false)) && !sh.is_expired(e, now) {
                page.bulk(e.key());
                n += 1;
            }
        }
    }
    cx.out.array(n);
    cx.out.raw(&body);
    Ok(())
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`: about COUNT keys (default 10)
/// from the cursor on, and the next cursor (0 when the iteration is complete). O(1) per call.
///
/// The cursor is a position in hash space (shard in the top bits). Each call locks one shard
/// at a time, so a full iteration never blocks the database; every key that exists for the
/// whole iteration is returned at least once whatever happens in between. MATCH and TYPE
/// filter keys after they are selected, as in Redis, so a page may be empty.
fn scan(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let cursor = parse_cursor(args[1])?;
    let opts = super::args::scan_options(args, 2, true)?;
    let (count, pattern) = (opts.count, opts.pattern);
    let type_name = opts.type_name;

    let (db, now, server) = (cx.db(), cx.now, cx.server);
    let shard_start = |idx: usize| (idx as u64) << (64 - SHARD_BITS);
    let mut idx = (cursor >> (64 - SHARD_BITS)) as usize;
    let mut from = cursor;
    let mut body = Vec::new();
    let mut page = Out::new(&mut body, cx.out.resp3);
    let (mut n, mut selected) = (0usize, 0usize);
    let next = loop {
        let sh = cx.shard_at(db, idx)?;
        let expired_before = sh.expired.len();
        let resume = sh.scan_page(from, count - selected, now, |e| {
            selected += 1;
            let matched = pattern.is_none_or(|p| glob_match(p, e.key(), false));
            // Redis checks the type of a matching key with a read lookup: a keyspace hit.
            if matched && type_name.is_some() {
                server.metrics.stats.lookup(true);
            }
            let type_ok =
                type_name.is_none_or(|t| t.eq_ignore_ascii_case(e.type_name().as_bytes()));
            if type_ok && matched {
                page.bulk(e.key());
                n += 1;
            }
        });
        if type_name.is_some() {
            // That lookup is what expires a matching key, so it also raises `keymiss`.
            for i in expired_before..sh.expired.len() {
                if pattern.is_none_or(|p| glob_match(p, &sh.expired[i], false)) {
                    tell_expired_to(server, sh, i + 1);
                    server.metrics.stats.lookup(false);
                    key_miss(server, db, &sh.expired[i]);
                }
            }
        }
        // One shard at a time: other clients get the shard back before the next one.
        cx.unlock_all();
        if let Some(pos) = resume {
            break pos;
        }
        idx += 1;
        if idx == SHARDS {
            break 0;
        }
        from = shard_start(idx);
        if selected >= count {
            break from;
        }
    };
    cx.out.array(2);
    cx.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    cx.out.array(n);
    cx.out.raw(&body);
    Ok(())
}

/// `RANDOMKEY`: a random live key of the database, or nil when it has none. O(1) expected
/// (the shard is picked weighted by size, then a key inside it).
fn randomkey(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    use rand::Rng;
    let (db, now) = (cx.db(), cx.now);
    let mut sizes = [0usize; SHARDS];
    for (idx, size) in sizes.iter_mut().enumerate() {
        *size = cx.shard_at(db, idx)?.len();
    }
    let total: usize = sizes.iter().sum();
    let mut found = None;
    if total > 0 {
        let mut rng = rand::thread_rng();
        // A few weighted picks; a shard can come up empty only if all its keys are
        // logically expired, and then a linear pass settles it.
        for _ in 0..16 {
            let mut r = rng.gen_range(0..total);
            let idx = sizes.iter().position(|&s| {
                if r < s {
                    true
                } else {
                    r -= s;
                    false
                }
            });
            if let Some(idx) = idx {
                found = cx.shard_at(db, idx)?.random_key(now);
                if found.is_some() {
                    break;
                }
            }
        }
        if found.is_none() {
            for idx in 0..SHARDS {
                found = cx.shard_at(db, idx)?.random_key(now);
                if found.is_some() {
                    break;
                }
            }
        }
    }
    match found {
        Some(k) => cx.out.bulk(&k),
        None => cx.out.null(),
    }
    Ok(())
}

/// The same entry under another name: key, value, LRU and flags move, the value is not
/// copied when it lives on the heap.
fn rekey(e: Entry, key: &[u8]) -> Entry {
    match e {
        Entry::Boxed(mut o) => {
            o.key = key.into();
            Entry::Boxed(o)
        }
        inline => {
            let mut n = Entry::string(key, inline.as_str().unwrap_or_default(), inline.lru());
            n.set_meta(inline.meta());
            n
        }
    }
}

/// `RENAME key newkey`. O(1).
fn rename(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    rename_generic(cx, args, false)
}

/// `RENAMENX key newkey`: 1 if renamed, 0 if `newkey` exists. O(1).
fn renamenx(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    rename_generic(cx, args, true)
}

/// RENAME and RENAMENX: the value keeps its TTL and LRU under the new name; an existing
/// `newkey` is overwritten (RENAME) or left alone (RENAMENX).
fn rename_generic(cx: &mut Ctx, args: &[&[u8]], nx: bool) -> CmdResult {
    let (src, dst) = (args[1], args[2]);
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h) = cx.shard(src)?;
    let Some(e) = sh.get(h, src, now) else {
        return Err(E(NO_SUCH_KEY));
    };
    e.touch(lru);
    if src == dst {
        // Nothing to do, but only once the key is known to exist.
        if nx {
            cx.out.int(0);
        } else {
            cx.out.ok();
        }
        return Ok(());
    }
    if nx {
        let (dsh, dh) = cx.shard(dst)?;
        if dsh.contains(dh, dst, now) {
            cx.out.int(0);
            return Ok(());
        }
    }
    let (sh, h) = cx.shard(src)?;
    let at = sh.expire_of(h, src);
    let e = sh.remove(h, src).ok_or(E(NO_SUCH_KEY))?;
    let (dsh, dh) = cx.shard(dst)?;
    // Redis deletes an existing destination (one past its deadline expires first) and adds
    // the value anew: a `new` key event.
    if dsh.contains(dh, dst, now) {
        dsh.remove(dh, dst);
    }
    dsh.insert(dh, rekey(e, dst));
    if let Some(at) = at {
        dsh.set_expire(dh, dst, at);
    }
    cx.dirty(1);
    cx.notify(GENERIC, "rename_from", src);
    cx.notify(GENERIC, "rename_to", dst);
    if nx {
        cx.out.int(1);
    } else {
        cx.out.ok();
    }
    Ok(())
}

/// Checks that a database index names an existing database.
fn db_index(v: i64, databases: usize) -> Result<usize, CommandError> {
    usize::try_from(v)
        .ok()
        .filter(|&d| d < databases)
        .ok_or(E(DB_INDEX))
}

/// COPY's options: the destination database (if given) and REPLACE, parsed in Redis's order
/// so the first bad option is the one reported. `databases` bounds the DB index; the key
/// spec passes `usize::MAX` and lets the dispatcher drop indexes that do not exist.
fn copy_options(args: &[&[u8]], databases: usize) -> Result<(Option<usize>, bool), CommandError> {
    let (mut db, mut replace) = (None, false);
    let mut j = 3;
    while j < args.len() {
        if args[j].eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if args[j].eq_ignore_ascii_case(b"db") && j + 1 < args.len() {
            db = Some(db_index(parse_db(args[j + 1])?, databases)?);
            j += 1;
        } else {
            return Err(E(SYNTAX));
        }
        j += 1;
    }
    Ok((db, replace))
}

/// COPY's keys: the source in the current database, the destination in the target one.
fn copy_keys(args: &[&[u8]], cur_db: usize, push: &mut dyn FnMut(usize, &[u8])) {
    push(cur_db, args[1]);
    if let Ok((db, _)) = copy_options(args, usize::MAX) {
        push(db.unwrap_or(cur_db), args[2]);
    }
}

/// A copy of an entry's value under another key, as Redis's duplicate of the object: a
/// fresh LRU, the same encoding, and a small integer that is no longer a shared object.
fn duplicate(e: &Entry, key: &[u8], lru: u32) -> Entry {
    let mut n = match e.value() {
        ValueRef::Str(s) => Entry::string(key, s, lru),
        ValueRef::Other(v) => Entry::new(key, v.clone(), lru),
    };
    let mut meta = e.meta() & META_RAW;
    if e.encoding() == "int" {
        meta |= META_UNSHARED;
    }
    n.set_meta(meta);
    n
}

/// `COPY source destination [DB destination-db] [REPLACE]`: 1 if copied, 0 if the source
/// is missing or the destination exists (without REPLACE). The copy keeps the TTL. O(N) for
/// a collection of N elements.
fn copy(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (src, dst) = (args[1], args[2]);
    if cx.server.cluster.is_some() && copy_options(args, usize::MAX)?.0.is_some_and(|d| d != 0) {
        return Err(CommandError::err(
            "Copying to another database is not allowed in cluster mode",
        ));
    }
    let (db, replace) = copy_options(args, cx.server.keyspace.dbs.len())?;
    let cur = cx.db();
    let dst_db = db.unwrap_or(cur);
    if dst_db == cur && src == dst {
        return Err(E(SAME_OBJECT));
    }
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h) = cx.shard(src)?;
    if lookup_read(server, sh, h, src, now, lru).is_none() {
        cx.out.int(0);
        return Ok(());
    }
    let at = sh.expire_of(h, src);
    let (dsh, dh) = cx.shard_in(dst_db, dst)?;
    if dsh.contains(dh, dst, now) {
        if !replace {
            cx.out.int(0);
            return Ok(());
        }
        // Redis deletes the old destination and adds the copy: a `new` key event.
        dsh.remove(dh, dst);
    }
    // Only now duplicate the value (it may be big): the source is still there, under the
    // same locks.
    let (sh, h) = cx.shard(src)?;
    let copy = duplicate(sh.peek(h, src).ok_or(E(NO_SUCH_KEY))?, dst, lru);
    let (dsh, dh) = cx.shard_in(dst_db, dst)?;
    dsh.insert(dh, copy);
    if let Some(at) = at {
        dsh.set_expire(dh, dst, at);
    }
    cx.dirty(1);
    cx.notify_in(dst_db, GENERIC, "copy_to", dst);
    cx.out.int(1);
    Ok(())
}

/// MOVE's keys: the key in the current database and in the target one.
fn move_keys(args: &[&[u8]], cur_db: usize, push: &mut dyn FnMut(usize, &[u8])) {
    push(cur_db, args[1]);
    if let Ok(db) = parse_db(args[2]).and_then(|v| db_index(v, usize::MAX)) {
        push(db, args[1]);
    }
}

/// `MOVE key db`: 1 if the key moved to database `db`, 0 if it is missing here or already
/// exists there. The TTL moves with it. O(1).
fn move_cmd(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if cx.server.cluster.is_some() {
        return Err(CommandError::err("MOVE is not allowed in cluster mode"));
    }
    let key = args[1];
    let dst_db = db_index(parse_db(args[2])?, cx.server.keyspace.dbs.len())?;
    let cur = cx.db();
    if dst_db == cur {
        return Err(E(SAME_OBJECT));
    }
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h) = cx.shard(key)?;
    let Some(e) = sh.get(h, key, now) else {
        cx.out.int(0);
        return Ok(());
    };
    e.touch(lru);
    let (dsh, dh) = cx.shard_in(dst_db, key)?;
    if dsh.contains(dh, key, now) {
        cx.out.int(0);
        return Ok(());
    }
    let (sh, h) = cx.shard(key)?;
    let at = sh.expire_of(h, key);
    let e = sh.remove(h, key).ok_or(E(NO_SUCH_KEY))?;
    let (dsh, dh) = cx.shard_in(dst_db, key)?;
    dsh.insert(dh, e);
    if let Some(at) = at {
        dsh.set_expire(dh, key, at);
    }
    cx.dirty(1);
    cx.notify(GENERIC, "move_from", key);
    cx.notify_in(dst_db, GENERIC, "move_to", key);
    cx.out.int(1);
    Ok(())
}

/// `TOUCH key [key ...]`: records an access to each key; how many exist. O(N) keys.
fn touch(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let mut n = 0;
    for key in &args[1..] {
        let (sh, h) = cx.shard(key)?;
        let found = lookup_read(server, sh, h, key, now, lru).is_some();
        n += i64::from(found);
    }
    cx.out.int(n);
    Ok(())
}

/// The NX / XX / GT / LT options of the EXPIRE family.
#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

/// Parses the EXPIRE family's options with Redis's checks and texts.
fn expire_flags(opts: &[&[u8]]) -> Result<ExpireFlags, CommandError> {
    let mut f = ExpireFlags::default();
    for opt in opts {
        if opt.eq_ignore_ascii_case(b"nx") {
            f.nx = true;
        } else if opt.eq_ignore_ascii_case(b"xx") {
            f.xx = true;
        } else if opt.eq_ignore_ascii_case(b"gt") {
            f.gt = true;
        } else if opt.eq_ignore_ascii_case(b"lt") {
            f.lt = true;
        } else {
            // Redis formats the option as a C string: it ends at a NUL byte.
            let shown = opt.split(|&c| c == 0).next().unwrap_or_default();
            return Err(CommandError::err(format!(
                "Unsupported option {}",
                String::from_utf8_lossy(shown)
            )));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(E(EXPIRE_NX_AND_OTHERS));
    }
    if f.gt && f.lt {
        return Err(E(EXPIRE_GT_AND_LT));
    }
    Ok(f)
}

/// `EXPIRE key seconds [NX | XX | GT | LT]`: 1 if the TTL was set, 0 if the key is missing
/// or a condition failed. O(1).
fn expire(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    expire_generic(cx, args, "expire", 1000, false)
}

/// `PEXPIRE key milliseconds [NX | XX | GT | LT]`. O(1).
fn pexpire(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    expire_generic(cx, args, "pexpire", 1, false)
}

/// `EXPIREAT key unix-time-seconds [NX | XX | GT | LT]`. O(1).
fn expireat(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    expire_generic(cx, args, "expireat", 1000, true)
}

/// `PEXPIREAT key unix-time-milliseconds [NX | XX | GT | LT]`. O(1).
fn pexpireat(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    expire_generic(cx, args, "pexpireat", 1, true)
}

/// The EXPIRE family. Options are checked before the time, and the time (which may be
/// negative) only for overflow; a deadline at or before now deletes the key (reply 1). For
/// GT and LT a key without TTL counts as expiring never.
fn expire_generic(
    cx: &mut Ctx,
    args: &[&[u8]],
    name: &str,
    unit_ms: i64,
    absolute: bool,
) -> CmdResult {
    let flags = expire_flags(&args[3..])?;
    let when = int(args[2])?;
    let when = when
        .checked_mul(unit_ms)
        .ok_or_else(|| CommandError::invalid_expire(name))?;
    let base = if absolute { 0 } else { cx.now as i64 };
    let when = when
        .checked_add(base)
        .ok_or_else(|| CommandError::invalid_expire(name))?;
    let key = args[1];
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(e) = sh.get(h, key, now) else {
        out.int(0);
        return Ok(());
    };
    e.touch(lru);
    // Deadlines are stored as u64 but always come from an i64.
    let current = sh
        .expire_of(h, key)
        .map(|at| i64::try_from(at).unwrap_or(i64::MAX));
    let refused = (flags.nx && current.is_some())
        || (flags.xx && current.is_none())
        || (flags.gt && current.is_none_or(|c| when <= c))
        || (flags.lt && current.is_some_and(|c| when >= c));
    if refused {
        out.int(0);
        return Ok(());
    }
    let event = if when <= now as i64 {
        // Redis deletes the key outright (propagated as a DEL, not counted as expired).
        sh.remove(h, key);
        "del"
    } else {
        sh.set_expire(h, key, when as u64);
        "expire"
    };
    out.int(1);
    cx.dirty(1);
    // Replicas get the effect: the deletion, or the deadline as PEXPIREAT (the options
    // kept), as Redis 7.0 rewrites it; PEXPIREAT itself goes as sent.
    if cx.propagating() {
        if event == "del" {
            let lazy = cx.server.config.read().get_bool("lazyfree-lazy-expire");
            let cmd: &[u8] = if lazy { b"UNLINK" } else { b"DEL" };
            cx.propagate(&[cmd, key]);
        } else if name != "pexpireat" {
            let at = itoa::Buffer::new().format(when).as_bytes().to_vec();
            let mut argv: Vec<&[u8]> = vec![b"PEXPIREAT", key, &at];
            argv.extend_from_slice(&args[3..]);
            cx.propagate(&argv);
        }
    }
    cx.notify(GENERIC, event, key);
    Ok(())
}

/// `TTL key`: remaining seconds (rounded), -1 without TTL, -2 if missing. O(1).
fn ttl(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ttl_generic(cx, args, false, false)
}

/// `PTTL key`: remaining milliseconds, -1 without TTL, -2 if missing. O(1).
fn pttl(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ttl_generic(cx, args, true, false)
}

/// `EXPIRETIME key`: the deadline in Unix seconds (rounded), -1 / -2 as TTL. O(1).
fn expiretime(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ttl_generic(cx, args, false, true)
}

/// `PEXPIRETIME key`: the deadline in Unix milliseconds, -1 / -2 as TTL. O(1).
fn pexpiretime(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    ttl_generic(cx, args, true, true)
}

/// TTL, PTTL, EXPIRETIME and PEXPIRETIME. Seconds are rounded to the nearest, as Redis does.
fn ttl_generic(cx: &mut Ctx, args: &[&[u8]], ms: bool, absolute: bool) -> CmdResult {
    let key = args[1];
    let (now, server) = (cx.now, cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let found = sh.get(h, key, now).is_some();
    count_read(server, sh, key, found);
    if !found {
        out.int(-2);
    } else if let Some(at) = sh.expire_of(h, key) {
        let v = if absolute { at } else { at.saturating_sub(now) };
        // Deadlines fit an i64, so neither the rounding nor the conversion can overflow.
        let v = if ms { v } else { v.saturating_add(500) / 1000 };
        out.int(i64::try_from(v).unwrap_or(i64::MAX));
    } else {
        out.int(-1);
    }
    Ok(())
}

/// `PERSIST key`: 1 if a TTL was removed, 0 if the key is missing or had none. O(1).
fn persist(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(e) = sh.get(h, key, now) else {
        out.int(0);
        return Ok(());
    };
    e.touch(lru);
    let removed = sh.persist(h, key);
    out.int(i64::from(removed));
    if removed {
        cx.dirty(1);
        cx.notify(GENERIC, "persist", key);
    }
    Ok(())
}

/// `OBJECT <subcommand>`: never runs (the dispatcher resolves the subcommand first).
fn object(_cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    Err(CommandError::arity("object"))
}

/// Runs `f` on the entry of OBJECT's key (`args[2]`) without recording an access, or
/// replies nil when the key does not exist.
fn object_lookup(
    cx: &mut Ctx,
    args: &[&[u8]],
    f: impl FnOnce(&Entry, &mut Out) -> CmdResult,
) -> CmdResult {
    let key = args[2];
    let now = cx.now;
    let (sh, h, out) = cx.shard_out(key)?;
    let (found, result) = match sh.get(h, key, now) {
        Some(e) => (true, f(e, out)),
        None => {
            out.null();
            (false, Ok(()))
        }
    };
    // Counted even when the subcommand then refuses (FREQ / IDLETIME policy errors).
    cx.hit(found);
    result
}

/// `OBJECT ENCODING key`: the value's internal representation as Redis names it. O(1).
fn object_encoding(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    object_lookup(cx, args, |e, out| {
        out.bulk(e.encoding().as_bytes());
        Ok(())
    })
}

/// Redis keeps the integers 0..9999 as shared objects (`OBJ_SHARED_INTEGERS`)...
const SHARED_INTEGERS: i64 = 10_000;
/// ...whose reference count reads as `OBJ_SHARED_REFCOUNT`.
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

/// Redis's `maxmemory-policy` families that change what OBJECT reports.
fn policy(cx: &Ctx) -> (bool, bool) {
    let mem = &cx.server.memory;
    (mem.lfu(), mem.shares_integers())
}

/// `OBJECT REFCOUNT key`: 1, or Redis's shared-object count for the small integers that
/// Redis would hold as shared objects. O(1).
fn object_refcount(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (_, shared_ints) = policy(cx);
    object_lookup(cx, args, |e, out| {
        let shared = shared_ints
            && e.meta() & META_UNSHARED == 0
            && e.encoding() == "int"
            && e.as_str()
                .and_then(crate::util::parse_i64)
                .is_some_and(|v| (0..SHARED_INTEGERS).contains(&v));
        out.int(if shared { SHARED_REFCOUNT } else { 1 });
        Ok(())
    })
}

/// `OBJECT IDLETIME key`: seconds since the last access. Refused under an LFU policy, as in
/// Redis. O(1).
fn object_idletime(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (lfu, _) = policy(cx);
    let now = cx.now;
    object_lookup(cx, args, |e, out| {
        if lfu {
            return Err(E(LFU_SELECTED));
        }
        let idle = crate::clock::idle_seconds(e.lru(), now);
        out.int(i64::try_from(idle).unwrap_or(i64::MAX));
        Ok(())
    })
}

/// `OBJECT FREQ key`: the key's logarithmic access counter, decayed to now; only under an
/// LFU policy, as in Redis. O(1).
fn object_freq(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (lfu, _) = policy(cx);
    let minutes = crate::storage::access::lfu_minutes(cx.now);
    object_lookup(cx, args, |e, out| {
        if !lfu {
            return Err(E(LFU_NOT_SELECTED));
        }
        out.int(i64::from(crate::storage::access::decayed(e.lru(), minutes)));
        Ok(())
    })
}

/// `OBJECT HELP`: the subcommands, one status line each, in Redis's help layout. O(1).
fn object_help(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    const LINES: &[&str] = &[
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the name of the internal representation of the value stored at <key>.",
        "FREQ <key>",
        "    Return the logarithmic access frequency counter of <key> (LFU policies only).",
        "IDLETIME <key>",
        "    Return the seconds elapsed since <key> was last read or written.",
        "REFCOUNT <key>",
        "    Return the number of references to the value stored at <key>.",
        "HELP",
        "    Print this help.",
    ];
    cx.out.array(LINES.len());
    for line in LINES {
        cx.out.simple(line);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::INT_RANGE;

    #[test]
    fn expire_options_are_checked_like_redis() {
        assert!(expire_flags(&[b"xx", b"GT"]).is_ok());
        assert_eq!(
            expire_flags(&[b"nx", b"lt"]).err(),
            Some(E(EXPIRE_NX_AND_OTHERS))
        );
        assert_eq!(
            expire_flags(&[b"gt", b"lt"]).err(),
            Some(E(EXPIRE_GT_AND_LT))
        );
        assert_eq!(
            expire_flags(&[b"nx", b"xx", b"foo"]).err().unwrap().text(),
            "ERR Unsupported option foo"
        );
    }

    #[test]
    fn copy_options_report_the_first_bad_one() {
        let a: Vec<&[u8]> = vec![b"copy", b"a", b"b", b"db", b"99", b"db", b"1"];
        assert_eq!(copy_options(&a, 16), Err(E(DB_INDEX)));
        let a: Vec<&[u8]> = vec![b"copy", b"a", b"b", b"db", b"1", b"replace"];
        assert_eq!(copy_options(&a, 16), Ok((Some(1), true)));
        let a: Vec<&[u8]> = vec![b"copy", b"a", b"b", b"db", b"2147483648"];
        assert_eq!(copy_options(&a, 16), Err(E(INT_RANGE)));
        let a: Vec<&[u8]> = vec![b"copy", b"a", b"b", b"db"];
        assert_eq!(copy_options(&a, 16), Err(E(SYNTAX)));
    }

    #[test]
    fn renamed_entries_keep_their_value_and_flags() {
        let mut e = Entry::string(b"k", b"v", 42);
        e.set_meta(META_RAW);
        let r = rekey(e, b"a-much-longer-key-name-than-fits-inline");
        assert_eq!(r.key(), b"a-much-longer-key-name-than-fits-inline");
        assert_eq!(r.as_str(), Some(&b"v"[..]));
        assert_eq!(r.lru(), 42);
        assert_eq!(r.meta(), META_RAW);
        let r = rekey(r, b"k2");
        assert_eq!(r.key(), b"k2");
        assert_eq!(r.as_str(), Some(&b"v"[..]));
    }
}
