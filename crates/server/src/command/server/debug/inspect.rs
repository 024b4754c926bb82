//! The DEBUG subcommands that describe how Kiln holds a value or a table: LISTPACK,
//! QUICKLIST, SDSLEN, HTSTATS, HTSTATS-KEY, and CLIENT-EVICTION's client memory buckets.
//! Their replies have Redis's shape and errors; the figures are Kiln's own structures'
//! (see docs/COMPATIBILITY.md).

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use super::atoi;
use crate::command::Ctx;
use crate::error::{
    CmdResult, DEBUG_DB_OUT_OF_RANGE, DEBUG_NOT_HASH_TABLE, DEBUG_NOT_LISTPACK,
    DEBUG_NOT_QUICKLIST, DEBUG_NOT_SDS, DEBUG_NO_CLIENT_EVICTION, E, NOT_INTEGER, NO_SUCH_KEY,
};
use crate::storage::entry::{Entry, ValueRef};
use crate::storage::value::Value;
use crate::storage::SHARDS;
use crate::util::parse_i64;

/// `DEBUG LISTPACK key`: a value OBJECT ENCODING calls `listpack` (a small hash or sorted
/// set) is dumped, entry by entry, to the server's standard output, as Redis does.
pub(super) fn debug_listpack(cx: &mut Ctx, key: &[u8]) -> CmdResult {
    let (sh, h, out) = cx.shard_out(key)?;
    let e = sh.peek(h, key).ok_or(E(NO_SUCH_KEY))?;
    let mut dump = format!("{{listpack {}}}\n", String::from_utf8_lossy(key));
    match e.value() {
        ValueRef::Other(Value::Hash(hash)) if hash.encoding() == "listpack" => {
            let _ = writeln!(dump, "{{type hash}} {{fields {}}}", hash.len());
            for (i, (f, v)) in hash.iter().enumerate() {
                let _ = writeln!(
                    dump,
                    "  [{i}] field {:?} value {:?}",
                    String::from_utf8_lossy(f),
                    String::from_utf8_lossy(v)
                );
            }
        }
        ValueRef::Other(Value::ZSet(z)) if z.encoding() == "listpack" => {
            let _ = writeln!(dump, "{{type zset}} {{members {}}}", z.len());
            for (i, (m, score)) in z.iter().enumerate() {
                let _ = writeln!(
                    dump,
                    "  [{i}] member {:?} score {}",
                    String::from_utf8_lossy(m),
                    crate::util::fmt_g17(score)
                );
            }
        }
        _ => return Err(E(DEBUG_NOT_LISTPACK)),
    }
    dump.push_str("{end}\n");
    print_stdout(&dump);
    out.simple("Listpack structure printed on stdout");
    Ok(())
}

/// `DEBUG QUICKLIST key [level]`: a list (OBJECT ENCODING `quicklist`) has its chunks
/// dumped to standard output: level 0 the totals, 1 one line per chunk too, 2 (or more)
/// each chunk's elements as well.
pub(super) fn debug_quicklist(cx: &mut Ctx, key: &[u8], level: Option<&[u8]>) -> CmdResult {
    let level = level.map_or(0, atoi);
    let (sh, h, out) = cx.shard_out(key)?;
    let e = sh.peek(h, key).ok_or(E(NO_SUCH_KEY))?;
    let ValueRef::Other(Value::List(l)) = e.value() else {
        return Err(E(DEBUG_NOT_QUICKLIST));
    };
    let chunks = l.chunk_shapes();
    let mut dump = format!(
        "{{quicklist {}}} {{elements {}}} {{chunks {}}} {{bytes used {}}} {{bytes allocated {}}}\n",
        String::from_utf8_lossy(key),
        l.len(),
        chunks.len(),
        chunks.iter().map(|c| c.1).sum::<usize>(),
        chunks.iter().map(|c| c.2).sum::<usize>(),
    );
    if level >= 1 {
        let mut elems = l.iter();
        for (i, &(count, used, alloc)) in chunks.iter().enumerate() {
            let _ = writeln!(
                dump,
                "  {{chunk {i}}} {{elements {count}}} {{bytes used {used}}} {{bytes allocated {alloc}}}"
            );
            for j in 0..count {
                let Some(v) = elems.next() else { break };
                if level >= 2 {
                    let _ = writeln!(dump, "    [{j}] {:?}", String::from_utf8_lossy(&v));
                }
            }
        }
    }
    dump.push_str("{end}\n");
    print_stdout(&dump);
    out.simple("Quicklist structure printed on stdout");
    Ok(())
}

/// Where DEBUG LISTPACK and QUICKLIST write, as Redis does: the process's standard output
/// (a closed one loses the dump, not the reply).
fn print_stdout(text: &str) {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// `DEBUG SDSLEN key`: the lengths, spare room and allocation sizes of a string key's key
/// and value, in Redis's format. A key and value held inside the table's 32-byte entry
/// have no allocation of their own (0); a boxed one reports its buffers' jemalloc size
/// classes. Integer-encoded and non-string values are refused as Redis refuses them.
pub(super) fn debug_sdslen(cx: &mut Ctx, key: &[u8]) -> CmdResult {
    let (sh, h, out) = cx.shard_out(key)?;
    let e = sh.peek(h, key).ok_or(E(NO_SUCH_KEY))?;
    let not_sds = || E(DEBUG_NOT_SDS);
    let enc = e.encoding();
    if enc != "embstr" && enc != "raw" {
        return Err(not_sds());
    }
    let class = crate::storage::usage::size_class;
    let (key_alloc, val_len, val_avail, val_alloc) = match e {
        Entry::Inline { .. } => (0, e.as_str().map_or(0, <[u8]>::len), 0, 0),
        Entry::Boxed(o) => match &o.value {
            Value::Str(s) => (
                class(o.key.len()),
                s.len(),
                s.capacity() - s.len(),
                class(s.capacity()),
            ),
            _ => return Err(not_sds()),
        },
    };
    out.simple(&format!(
        "key_sds_len:{}, key_sds_avail:0, key_zmalloc: {key_alloc}, val_sds_len:{val_len}, val_sds_avail:{val_avail}, val_zmalloc: {val_alloc}",
        key.len()
    ));
    Ok(())
}

/// Redis's statistics text for one table of `buckets` buckets holding `elements`, as
/// table 0 (Kiln's tables grow in one step: there is never a rehashing target). Kiln's
/// tables are open-addressed: each bucket holds at most one element, so every element
/// has a slot of its own and every "chain" is one long.
fn table_stats(s: &mut String, buckets: usize, elements: usize) {
    s.push_str("Hash table 0 stats (main hash table):\n");
    if elements == 0 {
        s.push_str("No stats available for empty dictionaries\n");
        return;
    }
    let buckets = buckets.max(elements);
    let pct = |n: usize| n as f64 * 100.0 / buckets as f64;
    let _ = write!(
        s,
        " table size: {buckets}\n number of elements: {elements}\n different slots: {elements}\n max chain length: 1\n avg chain length (counted): 1.00\n avg chain length (computed): 1.00\n Chain length distribution:\n"
    );
    let empty = buckets - elements;
    if empty > 0 {
        let _ = writeln!(s, "   0: {empty} ({:.2}%)", pct(empty));
    }
    let _ = writeln!(s, "   1: {elements} ({:.2}%)", pct(elements));
}

/// `DEBUG HTSTATS dbid`: the key and expires tables of a database, each summed over the
/// database's shards, in Redis's format.
pub(super) fn debug_htstats(cx: &mut Ctx, dbid: &[u8]) -> CmdResult {
    let db = parse_i64(dbid).ok_or(E(NOT_INTEGER))?;
    let db = usize::try_from(db)
        .ok()
        .filter(|&d| d < cx.server.keyspace.dbs.len())
        .ok_or(E(DEBUG_DB_OUT_OF_RANGE))?;
    let mut sums = [(0, 0); 2];
    for idx in 0..SHARDS {
        let st = cx.shard_at(db, idx)?.table_stats();
        for (sum, (b, n)) in sums.iter_mut().zip(st) {
            sum.0 += b;
            sum.1 += n;
        }
    }
    let mut s = String::from("[Dictionary HT]\n");
    table_stats(&mut s, sums[0].0, sums[0].1);
    s.push_str("[Expires HT]\n");
    table_stats(&mut s, sums[1].0, sums[1].1);
    cx.out.verbatim(s.as_bytes());
    Ok(())
}

/// `DEBUG HTSTATS-KEY key`: the hash table of a hash, set or sorted set whose encoding
/// is a table (OBJECT ENCODING `hashtable` or `skiplist`).
pub(super) fn debug_htstats_key(cx: &mut Ctx, key: &[u8]) -> CmdResult {
    let (sh, h, out) = cx.shard_out(key)?;
    let e = sh.peek(h, key).ok_or(E(NO_SUCH_KEY))?;
    let stats = match e.value() {
        ValueRef::Other(Value::Hash(v)) => v.table_stats(),
        ValueRef::Other(Value::Set(v)) => v.table_stats(),
        ValueRef::Other(Value::ZSet(v)) => v.table_stats(),
        _ => None,
    };
    let Some((buckets, elements)) = stats else {
        return Err(E(DEBUG_NOT_HASH_TABLE));
    };
    let mut s = String::new();
    table_stats(&mut s, buckets, elements);
    out.verbatim(s.as_bytes());
    Ok(())
}

/// Buckets of DEBUG CLIENT-EVICTION: the first holds clients under 32 KiB, each next one
/// twice the size, the last everything from 4 GiB.
const BUCKETS: usize = 19;
const FIRST_BUCKET_LOG2: u32 = 15;

/// The bucket of a client holding `mem` bytes.
fn bucket_of(mem: u64) -> usize {
    let log2 = 63 - mem.max(1).leading_zeros();
    (log2.saturating_sub(FIRST_BUCKET_LOG2 - 1) as usize).min(BUCKETS - 1)
}

/// `DEBUG CLIENT-EVICTION`: with `maxmemory-clients` on, the evictable clients (neither
/// replicas, the primary's link, nor NO-EVICT) counted by the memory they hold, in
/// Redis's power-of-two buckets. Kiln keeps no buckets: they are counted now, from the
/// same per-client figures eviction compares. O(clients).
pub(super) fn debug_client_eviction(cx: &mut Ctx) -> CmdResult {
    if cx.server.clients.mem.limit() == 0 {
        return Err(E(DEBUG_NO_CLIENT_EVICTION));
    }
    let mut buckets = [(0u64, 0u64); BUCKETS];
    for h in cx.server.clients.lock().values() {
        if h.killed.load(Relaxed) || !crate::command::client::evictable(h) {
            continue;
        }
        let mem = h.memory();
        let b = &mut buckets[bucket_of(mem)];
        b.0 += mem;
        b.1 += 1;
    }
    let mut s = String::new();
    for (i, (mem, clients)) in buckets.iter().enumerate() {
        let low: u64 = if i == 0 {
            0
        } else {
            1 << (FIRST_BUCKET_LOG2 + i as u32 - 1)
        };
        if i == BUCKETS - 1 {
            let _ = writeln!(
                s,
                "bucket {low:>10}+            : tot-mem: {mem:>10}, clients: {clients}"
            );
        } else {
            let high = (1u64 << (FIRST_BUCKET_LOG2 + i as u32)) - 1;
            let _ = writeln!(
                s,
                "bucket {low:>10} - {high:>10}: tot-mem: {mem:>10}, clients: {clients}"
            );
        }
    }
    cx.out.verbatim(s.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_buckets_double_from_32k() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(32_767), 0);
        assert_eq!(bucket_of(32_768), 1);
        assert_eq!(bucket_of(65_535), 1);
        assert_eq!(bucket_of(65_536), 2);
        assert_eq!(bucket_of((1 << 32) - 1), 17);
        assert_eq!(bucket_of(1 << 32), 18);
        assert_eq!(bucket_of(u64::MAX), 18);
    }

    #[test]
    fn table_stats_have_redis_shape() {
        let mut s = String::new();
        table_stats(&mut s, 4, 2);
        assert_eq!(
            s,
            "Hash table 0 stats (main hash table):\n table size: 4\n number of elements: 2\n different slots: 2\n max chain length: 1\n avg chain length (counted): 1.00\n avg chain length (computed): 1.00\n Chain length distribution:\n   0: 2 (50.00%)\n   1: 2 (50.00%)\n"
        );
        let mut s = String::new();
        table_stats(&mut s, 0, 0);
        assert_eq!(
            s,
            "Hash table 0 stats (main hash table):\nNo stats available for empty dictionaries\n"
        );
    }
}
