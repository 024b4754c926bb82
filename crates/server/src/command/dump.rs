//! DUMP and RESTORE: a key's value in Redis's serialization format (an RDB value with the
//! RDB version and a CRC-64 appended), so values move between Kiln and Redis servers with
//! MIGRATE-style tools and `redis-cli --rdb`-style dumps (the format is in `crate::rdb`).
//!
//! RESTORE checks its arguments in Redis 7.0's order (options, then an existing key, then
//! the TTL, then the payload's version and checksum, then the value) so every error matches.
//! Unlike Redis's default (`sanitize-dump-payload no`), every payload is validated in depth
//! before it is used: a payload that would not decode to a sound value is `Bad data format`.

use std::sync::atomic::Ordering::Relaxed;

use super::args::int;
use super::flags::*;
use super::{lookup_read, CommandSpec, Ctx, Keys};
use crate::error::{
    CmdResult, BAD_DATA_FORMAT, BUSYKEY, DUMP_PAYLOAD, E, RESTORE_FREQ, RESTORE_IDLETIME,
    RESTORE_TTL_NEGATIVE, SYNTAX,
};
use crate::notify::GENERIC;
use crate::rdb::{self, PayloadError, WriteOptions};
use crate::storage::Entry;

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("dump", 2, READONLY, Keys::Range(1, 1, 1), dump)
        .since("2.6.0")
        .summary("Serializes a key's value in the RDB format that RESTORE accepts.")
        .complexity("O(1) to find the key, O(N*M) to serialize N elements of average size M.")
        .syntax("key"),
    CommandSpec::new(
        "restore",
        -4,
        WRITE | DENYOOM,
        Keys::Range(1, 1, 1),
        restore,
    )
    .since("2.6.0")
    .summary("Creates a key from a value serialized by DUMP.")
    .complexity(
        "O(1) to create the key, O(N*M) to rebuild N elements of average size M \
             (O(N*M*log(N)) for sorted sets).",
    )
    .syntax("key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]"),
];

/// `DUMP key`: the serialized value, or nil for a missing key. Strings of more than 20
/// bytes are LZF-compressed when `rdbcompression` is on, as in Redis. O(N) for N elements.
fn dump(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let opts = dump_options(cx);
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    match lookup_read(server, sh, h, key, now, lru) {
        Some(e) => out.bulk(&rdb::dump_payload(e.value(), &opts)),
        None => out.null(),
    }
    Ok(())
}

/// How DUMP (and MIGRATE) serialize a value: LZF with `rdbcompression`, lists in nodes of
/// `list-max-listpack-size`.
pub(super) fn dump_options(cx: &Ctx) -> WriteOptions {
    WriteOptions {
        compress: cx.server.config.read().get("rdbcompression") == "yes",
        list_fill: cx.server.hot.encoding.list_max_listpack_size.load(Relaxed),
        ..WriteOptions::default()
    }
}

/// RESTORE's options.
#[derive(Default, Debug)]
struct RestoreOptions {
    replace: bool,
    absttl: bool,
    idle: Option<u64>,
    freq: Option<u8>,
}

/// Parses RESTORE's options with Redis's errors: IDLETIME and FREQ exclude each other (the
/// second one given is a syntax error).
fn restore_options(args: &[&[u8]]) -> Result<RestoreOptions, crate::error::CommandError> {
    let mut o = RestoreOptions::default();
    let mut j = 4;
    while j < args.len() {
        let has_value = j + 1 < args.len();
        let a = args[j];
        if a.eq_ignore_ascii_case(b"replace") {
            o.replace = true;
        } else if a.eq_ignore_ascii_case(b"absttl") {
            o.absttl = true;
        } else if a.eq_ignore_ascii_case(b"idletime") && has_value && o.freq.is_none() {
            let v = int(args[j + 1])?;
            if v < 0 {
                return Err(E(RESTORE_IDLETIME));
            }
            o.idle = Some(v as u64);
            j += 1;
        } else if a.eq_ignore_ascii_case(b"freq") && has_value && o.idle.is_none() {
            let v = int(args[j + 1])?;
            o.freq = Some(u8::try_from(v).map_err(|_| E(RESTORE_FREQ))?);
            j += 1;
        } else {
            return Err(E(SYNTAX));
        }
        j += 1;
    }
    Ok(o)
}

/// `RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ
/// frequency]`: creates `key` from a DUMP payload, with a TTL in milliseconds (0: none;
/// with ABSTTL a unix time in ms). A TTL already in the past creates nothing (and with
/// REPLACE deletes the old key). IDLETIME sets the access clock back under an LRU policy,
/// FREQ the access counter under an LFU one; the other is ignored. O(N*M) to rebuild the
/// value.
pub(super) fn restore(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let o = restore_options(args)?;
    let now = cx.now;
    let (sh, h) = cx.shard(key)?;
    if !o.replace && sh.contains(h, key, now) {
        return Err(E(BUSYKEY));
    }
    let ttl = int(args[2])?;
    if ttl < 0 {
        return Err(E(RESTORE_TTL_NEGATIVE));
    }
    let verify_crc = !cx.server.skip_checksum.load(Relaxed);
    let value = match rdb::restore_payload_checked(args[3], cx.server.encoding_limits(), verify_crc)
    {
        Ok(v) => v,
        Err(PayloadError::VersionOrChecksum) => return Err(E(DUMP_PAYLOAD)),
        Err(PayloadError::BadData(e)) => {
            tracing::debug!("RESTORE of a bad payload: {e}");
            return Err(E(BAD_DATA_FORMAT));
        }
    };
    let lru = crate::storage::access::restored(cx.lru(), o.idle, o.freq);
    let (sh, h) = cx.shard(key)?;
    let deleted = o.replace && sh.remove(h, key).is_some();
    // A relative TTL is added to now the way Redis's signed arithmetic does it.
    let when = if ttl != 0 && !o.absttl {
        ttl.wrapping_add(now as i64)
    } else {
        ttl
    };
    if ttl != 0 && when <= now as i64 {
        if deleted {
            cx.dirty(1);
            // Replicas delete the old key (Redis 7.0 propagates DEL, or UNLINK with
            // lazyfree-lazy-server-del).
            let lazy =
                cx.propagating() && cx.server.config.read().get_bool("lazyfree-lazy-server-del");
            let cmd: &[u8] = if lazy { b"UNLINK" } else { b"DEL" };
            cx.propagate(&[cmd, key]);
            cx.notify(GENERIC, "del", key);
        }
        cx.out.ok();
        return Ok(());
    }
    sh.insert(h, Entry::new(key, value, lru));
    if ttl != 0 {
        sh.set_expire(h, key, when as u64);
    }
    cx.dirty(1);
    if ttl != 0 && !o.absttl && cx.propagating() {
        // Replicas get the deadline as an absolute time: the TTL argument becomes it, and
        // ABSTTL is appended (Redis 7.0's rewrite).
        let at = itoa::Buffer::new().format(when).as_bytes().to_vec();
        let mut argv: Vec<&[u8]> = args.to_vec();
        argv[2] = &at;
        argv.push(b"ABSTTL");
        cx.propagate(&argv);
    }
    cx.notify(GENERIC, "restore", key);
    cx.out.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(extra: &[&str]) -> Result<RestoreOptions, String> {
        let mut a: Vec<&[u8]> = vec![b"restore", b"k", b"0", b"payload"];
        a.extend(extra.iter().map(|s| s.as_bytes()));
        restore_options(&a).map_err(|e| e.text().to_string())
    }

    #[test]
    fn restore_options_report_redis_errors() {
        assert!(opts(&["REPLACE", "absttl"]).unwrap().replace);
        assert_eq!(opts(&["idletime", "5"]).unwrap().idle, Some(5));
        assert_eq!(opts(&["freq", "255"]).unwrap().freq, Some(255));
        assert_eq!(opts(&["idletime", "5", "freq", "3"]).unwrap_err(), SYNTAX);
        assert_eq!(opts(&["freq", "3", "idletime", "5"]).unwrap_err(), SYNTAX);
        assert_eq!(opts(&["freq", "256"]).unwrap_err(), RESTORE_FREQ);
        assert_eq!(opts(&["freq", "-1"]).unwrap_err(), RESTORE_FREQ);
        assert_eq!(opts(&["idletime", "-1"]).unwrap_err(), RESTORE_IDLETIME);
        assert_eq!(opts(&["idletime"]).unwrap_err(), SYNTAX);
        assert_eq!(
            opts(&["idletime", "x"]).unwrap_err(),
            crate::error::NOT_INTEGER
        );
    }
}
