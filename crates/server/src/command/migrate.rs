//! MIGRATE, RESTORE-ASKING and ASKING, as Redis 7.0 has them outside cluster mode.
//!
//! `MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password |
//! AUTH2 username password] [KEYS key [key ...]]` sends its keys' DUMP payloads to another
//! server as RESTOREs (RESTORE-ASKING in cluster mode), and without COPY deletes from the
//! source the keys the target acknowledged, propagated as one `DEL` (Redis rewrites the
//! command so). The network side (connection cache, the exchange, Redis's IOERR texts) is
//! `crate::migrate`.
//!
//! **Locks and the network.** Redis is single-threaded: MIGRATE blocks its whole server
//! for up to the timeout per network step, and is atomic. Kiln splits it so that no
//! client waits on another's network round trip:
//!
//! 1. The handler runs under the command's shard locks (its keys'): it parses, reads every
//!    key's payload and TTL, and hands the job to its connection (`Client::migrate`);
//!    it replies nothing yet.
//! 2. The connection task, the locks released, runs the exchange with `.await`s bounded by
//!    the timeout (each connect, 64 KiB write and reply line); the worker thread serves
//!    its other connections meanwhile, and the client's pipelined requests wait behind it
//!    in its buffer, as they wait behind WAIT.
//! 3. It then ends the command ([`finish`], through `command::resume`): the same keys'
//!    shards are locked again and each key the target acknowledged is deleted **only if
//!    it is still what was sent** (same serialized value, same deadline). A key another
//!    client changed in between (or deleted and made again) stays, so a write that landed
//!    between the read and the delete is never lost; the target then holds the older
//!    value, as it would had that write come after a Redis MIGRATE. What is not kept is
//!    Redis's atomicity: between steps 1 and 3, other clients see the keys on both
//!    servers (they read them on the source).
//!
//! Inside EXEC or a script nothing may await: the exchange runs on a helper thread while
//! the command keeps its (the transaction's) locks, bounded by the same timeout, which
//! holds the worker thread and those shards as Redis holds its server; the deletion is then
//! atomic with the read. A script never sends keys speculatively (what was sent cannot be
//! taken back): it stops and runs alone first (`scripting::atomic::prepare`). O(N) for N
//! keys plus the network round trip.

use super::flags::*;
use super::{dump, lookup_read, CommandSpec, Ctx, Keys};
use crate::error::{CmdResult, CommandError, E, MIGRATE_KEYS_NOT_EMPTY, SYNTAX};
use crate::migrate::{Item, Job, Outcome, Reply};
use crate::notify::GENERIC;

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("migrate", -6, WRITE, Keys::Custom(migrate_keys), migrate)
        .since("2.6.0")
        .summary("Atomically transfers a key from one Redis instance to another.")
        .complexity(
            "This command actually executes a DUMP+DEL in the source instance, and a RESTORE \
             in the target instance.",
        )
        .syntax(
            "host port <key | \"\"> destination-db timeout [COPY] [REPLACE] \
             [AUTH password | AUTH2 username password] [KEYS key [key ...]]",
        ),
    CommandSpec::new(
        "restore-asking",
        -4,
        WRITE | DENYOOM | ASKING,
        Keys::Range(1, 1, 1),
        dump::restore,
    )
    .group("server")
    .since("3.0.0")
    .summary("An internal command for migrating keys in a cluster.")
    .complexity(
        "O(1) to create the new key and additional O(N*M) to reconstruct the serialized \
         value, where N is the number of Redis objects composing the value and M their \
         average size.",
    )
    .syntax("key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]"),
];

/// MIGRATE's keys, as Redis's `migrateGetKeys` finds them: the key argument, or with a
/// KEYS option (AUTH's and AUTH2's values skipped) every argument after it.
fn migrate_keys(args: &[&[u8]], cur_db: usize, push: &mut dyn FnMut(usize, &[u8])) {
    match key_range(args) {
        (first, true) => args[first.min(args.len())..]
            .iter()
            .for_each(|k| push(cur_db, k)),
        _ if args.len() > 3 => push(cur_db, args[3]),
        _ => {}
    }
}

/// The first key's index, and whether the KEYS form is used.
fn key_range(args: &[&[u8]]) -> (usize, bool) {
    let mut i = 6;
    while i < args.len() {
        let a = args[i];
        if a.eq_ignore_ascii_case(b"auth") {
            i += 1;
        } else if a.eq_ignore_ascii_case(b"auth2") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"keys") {
            return (i + 1, true);
        }
        i += 1;
    }
    (3, false)
}

/// MIGRATE's options, parsed as Redis does (in order; the first error wins).
struct Options<'a> {
    copy: bool,
    replace: bool,
    auth: Option<(Option<&'a [u8]>, &'a [u8])>,
    /// Index of the first key; the keys run to the end with KEYS, else just `args[3]`.
    first_key: usize,
    keys_form: bool,
}

fn options<'a>(args: &[&'a [u8]]) -> Result<Options<'a>, CommandError> {
    let mut o = Options {
        copy: false,
        replace: false,
        auth: None,
        first_key: 3,
        keys_form: false,
    };
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let a = args[j];
        if a.eq_ignore_ascii_case(b"copy") {
            o.copy = true;
        } else if a.eq_ignore_ascii_case(b"replace") {
            o.replace = true;
        } else if a.eq_ignore_ascii_case(b"auth") {
            if more == 0 {
                return Err(E(SYNTAX));
            }
            j += 1;
            o.auth = Some((None, args[j]));
        } else if a.eq_ignore_ascii_case(b"auth2") {
            if more < 2 {
                return Err(E(SYNTAX));
            }
            o.auth = Some((Some(args[j + 1]), args[j + 2]));
            j += 2;
        } else if a.eq_ignore_ascii_case(b"keys") {
            if !args[3].is_empty() {
                return Err(E(MIGRATE_KEYS_NOT_EMPTY));
            }
            o.first_key = j + 1;
            o.keys_form = true;
            break;
        } else {
            return Err(E(SYNTAX));
        }
        j += 1;
    }
    Ok(o)
}

/// A MIGRATE whose keys were read, waiting for its connection to run the exchange.
pub struct Pending {
    pub job: Job,
    copy: bool,
    /// Each item's deadline when it was read, to tell whether it changed since.
    expires: Vec<Option<u64>>,
    /// Each item's argument position (for the WATCHes of keys it does not delete).
    positions: Vec<usize>,
    /// The command's arguments (its locks are planned from them again).
    args: Vec<Vec<u8>>,
}

/// `MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password | AUTH2
/// username password] [KEYS key [key ...]]`: see the module documentation.
fn migrate(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let o = options(args)?;
    let timeout = super::args::int(args[5])?;
    let dbid = super::args::int(args[4])?;
    let timeout = if timeout <= 0 { 1000 } else { timeout as u64 };
    let keys: &[&[u8]] = if o.keys_form {
        &args[o.first_key..]
    } else {
        &args[3..4]
    };
    let opts = dump::dump_options(cx);
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (mut items, mut expires, mut positions) = (Vec::new(), Vec::new(), Vec::new());
    let mut found = 0;
    for (j, key) in keys.iter().enumerate() {
        let (sh, h) = cx.shard(key)?;
        let Some(e) = lookup_read(server, sh, h, key, now, lru) else {
            continue;
        };
        found += 1;
        let payload = crate::rdb::dump_payload(e.value(), &opts);
        let at = sh.expire_of(h, key);
        let ttl = match at {
            Some(at) if (at as i64) < now as i64 => continue,
            Some(at) => (at as i64 - now as i64).max(1),
            None => 0,
        };
        items.push(Item {
            key: key.to_vec(),
            ttl,
            payload,
        });
        expires.push(at);
        positions.push(if o.keys_form { o.first_key + j } else { 3 });
    }
    if found == 0 {
        cx.out.simple("NOKEY");
        return Ok(());
    }
    let p = Pending {
        job: Job {
            host: args[1].to_vec(),
            port: args[2].to_vec(),
            dbid,
            timeout: std::time::Duration::from_millis(timeout),
            auth: o.auth.map(|(u, p)| (u.map(<[u8]>::to_vec), p.to_vec())),
            replace: o.replace,
            asking: cx.server.cluster.is_some(),
            items,
        },
        copy: o.copy,
        expires,
        positions,
        args: args.iter().map(|a| a.to_vec()).collect(),
    };
    if cx.can_await() {
        cx.client.migrate = Some(Box::new(p));
        return Ok(());
    }
    let outcome = crate::migrate::exchange_blocking(&cx.server.migrate, &p.job);
    apply(cx, &p, &outcome, false)
}

/// Ends a MIGRATE whose exchange the connection ran: under the keys' shard locks again,
/// deletes what the target acknowledged and is unchanged since it was read, and replies.
pub fn finish(cx: &mut Ctx, p: Pending, outcome: Outcome) {
    let args: Vec<&[u8]> = p.args.iter().map(|a| &a[..]).collect();
    super::resume(cx, &args, |cx| apply(cx, &p, &outcome, true));
}

/// Deletes (without COPY) the acknowledged keys, raising their `del` events, propagating
/// one DEL, leaving the WATCHes of keys it keeps; then replies. With `verify`, a key is
/// deleted only if its value and deadline are still those that were sent.
fn apply(cx: &mut Ctx, p: &Pending, outcome: &Outcome, verify: bool) -> CmdResult {
    let mut deleted: Vec<&[u8]> = Vec::new();
    let mut kept = Vec::new();
    let opts = verify.then(|| dump::dump_options(cx));
    let now = cx.now;
    for (i, it) in p.job.items.iter().enumerate() {
        if p.copy || !outcome.acked[i] {
            kept.push(p.positions[i]);
            continue;
        }
        let (sh, h) = cx.shard(&it.key)?;
        if let Some(opts) = &opts {
            let same = sh.expire_of(h, &it.key) == p.expires[i]
                && sh
                    .get(h, &it.key, now)
                    .is_some_and(|e| crate::rdb::dump_payload(e.value(), opts) == it.payload);
            if !same {
                kept.push(p.positions[i]);
                continue;
            }
        }
        if sh.remove(h, &it.key).is_some() {
            deleted.push(&it.key);
        } else {
            kept.push(p.positions[i]);
        }
    }
    for pos in kept {
        cx.keep_watches(pos);
    }
    if !deleted.is_empty() {
        for key in &deleted {
            cx.notify(GENERIC, "del", key);
        }
        cx.dirty(deleted.len() as u64);
        let mut argv: Vec<&[u8]> = vec![b"DEL"];
        argv.extend(deleted.iter().copied());
        cx.propagate(&argv);
    }
    match &outcome.reply {
        Reply::Ok => {
            cx.out.ok();
            Ok(())
        }
        Reply::Target(e) => Err(CommandError::Owned(format!(
            "ERR Target instance replied with error: {}",
            String::from_utf8_lossy(e)
        ))),
        Reply::Io(text) => Err(E(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(a: &[&str]) -> Vec<String> {
        let args: Vec<&[u8]> = a.iter().map(|s| s.as_bytes()).collect();
        let mut v = Vec::new();
        migrate_keys(&args, 0, &mut |_, k| {
            v.push(String::from_utf8_lossy(k).into_owned())
        });
        v
    }

    #[test]
    fn keys_are_found_as_redis_finds_them() {
        assert_eq!(keys(&["migrate", "h", "1", "k", "0", "5"]), ["k"]);
        assert_eq!(
            keys(&["migrate", "h", "1", "", "0", "5", "copy", "keys", "a", "b"]),
            ["a", "b"]
        );
        assert_eq!(
            keys(&["migrate", "h", "1", "", "0", "5", "auth", "keys", "keys", "a"]),
            ["a"]
        );
        assert_eq!(
            keys(&["migrate", "h", "1", "", "0", "5", "auth2", "keys", "keys", "x"]),
            [""]
        );
    }

    fn err(a: &[&str]) -> String {
        let args: Vec<&[u8]> = a.iter().map(|s| s.as_bytes()).collect();
        options(&args)
            .err()
            .map(|e| e.text().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn options_report_redis_errors() {
        let base = ["migrate", "h", "1", "k", "0", "5"];
        let with = |extra: &[&'static str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            err(&v)
        };
        assert_eq!(with(&["keys", "a"]), MIGRATE_KEYS_NOT_EMPTY);
        assert_eq!(with(&["auth"]), SYNTAX);
        assert_eq!(with(&["auth2", "u"]), SYNTAX);
        assert_eq!(with(&["bogus"]), SYNTAX);
        assert_eq!(with(&["copy", "replace", "auth2", "u", "p"]), "");
    }
}
