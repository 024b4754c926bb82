//! `MEMORY` and its subcommands: USAGE (what a key costs in Kiln's layout, from
//! `storage::usage`), STATS and DOCTOR (the figures INFO memory reports, from
//! [`MemoryFigures`]), MALLOC-STATS and PURGE (jemalloc's own report and decay), HELP.

use super::info::{allocator_name, client_summary, MemoryFigures};
use super::{container, help_reply};
use crate::command::args;
use crate::command::flags::*;
use crate::command::{CommandSpec, Ctx, Keys};
use crate::error::{CmdResult, E, SYNTAX};
use crate::storage::usage::{key_usage, DEFAULT_SAMPLES};
use crate::util::fmt_g17;

const MEMORY_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("doctor", 2, 0, Keys::WalkAll, memory_doctor)
        .group("server")
        .since("4.0.0")
        .summary("Outputs a memory problems report")
        .complexity("O(1)"),
    CommandSpec::new("help", 2, LOADING | STALE, Keys::None, memory_help)
        .group("server")
        .since("4.0.0")
        .summary("Show helpful text about the different subcommands")
        .complexity("O(1)"),
    CommandSpec::new("malloc-stats", 2, 0, Keys::None, memory_malloc_stats)
        .group("server")
        .since("4.0.0")
        .summary("Show allocator internal stats")
        .complexity("Depends on how much memory is allocated, could be slow"),
    CommandSpec::new("purge", 2, 0, Keys::None, memory_purge)
        .group("server")
        .since("4.0.0")
        .summary("Ask the allocator to release memory")
        .complexity("Depends on how much memory is allocated, could be slow"),
    CommandSpec::new("stats", 2, 0, Keys::WalkAll, memory_stats)
        .group("server")
        .since("4.0.0")
        .summary("Show memory usage details")
        .complexity("O(1)"),
    CommandSpec::new("usage", -3, READONLY, Keys::Range(2, 2, 1), memory_usage)
        .group("server")
        .since("4.0.0")
        .summary("Estimate the memory usage of a key")
        .complexity("O(N) where N is the number of samples.")
        .syntax("key [SAMPLES count]"),
];

/// The `MEMORY` entry of the family's table.
pub(super) const MEMORY: CommandSpec = CommandSpec::new("memory", -2, 0, Keys::None, container)
    .group("server")
    .since("4.0.0")
    .summary("A container for memory diagnostics commands")
    .complexity("Depends on subcommand.")
    .subcommands(MEMORY_SUBCOMMANDS);

/// `MEMORY USAGE key [SAMPLES count]`: the bytes the key and its value cost in Kiln's
/// layout, nil for a missing key. Aggregates are sampled `count` elements (default 5, 0:
/// all). As in Redis, neither an access (no LRU update) nor a keyspace hit or miss, and a
/// key past its TTL that expiry has not reclaimed yet is still measured. O(count).
fn memory_usage(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mut samples = DEFAULT_SAMPLES;
    let mut opts = args[3..].iter();
    while let Some(opt) = opts.next() {
        let count = match opts.next() {
            Some(count) if opt.eq_ignore_ascii_case(b"samples") => count,
            _ => return Err(E(SYNTAX)),
        };
        // 0 means every element; key_usage reads it so.
        samples = usize::try_from(args::int(count)?).map_err(|_| E(SYNTAX))?;
    }
    let key = args[2];
    let (sh, h, out) = cx.shard_out(key)?;
    match sh.peek(h, key) {
        Some(e) => out.int(i64::try_from(key_usage(e, samples)).unwrap_or(i64::MAX)),
        None => out.null(),
    }
    Ok(())
}

/// A ratio as Redis reports it in MEMORY STATS: a C `float`, printed as a double.
fn float_text(a: f64, b: f64) -> String {
    fmt_g17(f64::from((a / b) as f32))
}

/// `MEMORY STATS`: INFO memory's figures as Redis's map, with each database's table
/// overhead. O(databases x shards).
fn memory_stats(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let m = MemoryFigures::read(cx);
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let diff = |a: u64, b: u64| a as i64 - b as i64;
    let net = m.net().max(1);
    let out = &mut cx.out;
    out.map(27 + m.dbs.len());
    let counts = [
        ("peak.allocated", m.peak),
        ("total.allocated", m.used),
        ("startup.allocated", m.startup),
        ("replication.backlog", m.repl_backlog),
        ("clients.slaves", m.clients_slaves),
        ("clients.normal", m.clients_normal),
        ("cluster.links", 0),
        ("aof.buffer", m.aof_buffer),
        ("lua.caches", m.lua_caches),
        ("functions.caches", m.functions_caches),
    ];
    for (name, n) in counts {
        out.bulk(name.as_bytes());
        out.int(int(n));
    }
    for d in &m.dbs {
        out.bulk(format!("db.{}", d.db).as_bytes());
        out.map(3);
        out.bulk(b"overhead.hashtable.main");
        out.int(int(d.main));
        out.bulk(b"overhead.hashtable.expires");
        out.int(int(d.expires));
        // Kiln has no cluster mode, so no slot-to-keys index.
        out.bulk(b"overhead.hashtable.slot-to-keys");
        out.int(0);
    }
    let per_key = m.net().checked_div(m.keys).unwrap_or(0);
    for (name, n) in [
        ("overhead.total", m.overhead),
        ("keys.count", m.keys),
        ("keys.bytes-per-key", per_key),
        ("dataset.bytes", m.dataset),
    ] {
        out.bulk(name.as_bytes());
        out.int(int(n));
    }
    out.bulk(b"dataset.percentage");
    out.double_text(float_text(m.dataset as f64 * 100.0, net as f64).as_bytes());
    out.bulk(b"peak.percentage");
    out.double_text(float_text(m.used as f64 * 100.0, m.peak as f64).as_bytes());
    for (name, n) in [
        ("allocator.allocated", m.used),
        ("allocator.active", m.active),
        ("allocator.resident", m.resident),
    ] {
        out.bulk(name.as_bytes());
        out.int(int(n));
    }
    // (ratio name, bytes name, numerator, denominator), as Redis pairs them.
    let ratios = [
        (
            "allocator-fragmentation.ratio",
            "allocator-fragmentation.bytes",
            m.active,
            m.used,
        ),
        (
            "allocator-rss.ratio",
            "allocator-rss.bytes",
            m.resident,
            m.active,
        ),
        (
            "rss-overhead.ratio",
            "rss-overhead.bytes",
            m.rss,
            m.resident,
        ),
        ("fragmentation", "fragmentation.bytes", m.rss, m.used),
    ];
    for (ratio, bytes, a, b) in ratios {
        out.bulk(ratio.as_bytes());
        out.double_text(float_text(a as f64, b as f64).as_bytes());
        out.bulk(bytes.as_bytes());
        out.int(diff(a, b));
    }
    Ok(())
}

/// Below this much memory MEMORY DOCTOR declines to judge (Redis's 5 MB). Redis counts
/// all it allocated; Kiln counts what it allocated since start-up, as its start-up
/// allocations grow with its threads (each with its own stats and caches).
const DOCTOR_MIN_BYTES: u64 = 5 << 20;
/// Fragmentation and overhead only count as issues beyond this many bytes (Redis's 10 MB).
const DOCTOR_BYTES: i64 = 10 << 20;

const DOCTOR_EMPTY: &str = "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n";
const DOCTOR_HEALTHY: &str = "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n";
const DOCTOR_ISSUES: &str =
    "Sam, I detected a few issues in this Redis instance memory implants:\n\n";
const DOCTOR_BYE: &str = "I'm here to keep you safe, Sam. I want to help you.\n";
const DOCTOR_PEAK: &str = " * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n";
const DOCTOR_TOTAL_RSS: (&str, &str) = (
    " * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"",
    "\".\n\n",
);
const DOCTOR_ALLOC_FRAG: &str = " * High allocator fragmentation: This instance has an allocator external fragmentation greater than 1.1. This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. You can try enabling 'activedefrag' config option.\n\n";
const DOCTOR_ALLOC_RSS: &str = " * High allocator RSS overhead: This instance has an RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the allocator is much larger than the sum what the allocator actually holds). This problem is usually due to a large peak memory (check if there is a peak memory entry above in the report), you can try the MEMORY PURGE command to reclaim it.\n\n";
const DOCTOR_PROC_RSS: &str = " * High process RSS overhead: This instance has non-allocator RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the Redis process is much larger than the RSS the allocator holds). This problem may be due to Lua scripts or Modules.\n\n";
const DOCTOR_REPLICA_BUF: &str = " * Big replica buffers: The replica output buffers in this instance are greater than 10MB for each replica (on average). This likely means that there is some replica instance that is struggling receiving data, either because it is too slow or because of networking issues. As a result, data piles on the master output buffers. Please try to identify what replica is not receiving data correctly and why. You can use the INFO output in order to check the replicas delays and the CLIENT LIST command to check the output buffers of each replica.\n\n";
const DOCTOR_CLIENT_BUF: &str = " * Big client buffers: The clients output buffers in this instance are greater than 200K per client (on average). This may result from different causes, like Pub/Sub clients subscribed to channels bot not receiving data fast enough, so that data piles on the Redis instance output buffer, or clients sending commands with large replies or very large sequences of commands in the same pipeline. Please use the CLIENT LIST command in order to investigate the issue if it causes problems in your instance, or to understand better why certain clients are using a big amount of memory.\n\n";
const DOCTOR_SCRIPTS: &str = " * Many scripts: There seem to be many cached scripts in this instance (more than 1000). This may be because scripts are generated and `EVAL`ed, instead of being parameterized (with KEYS and ARGV), `SCRIPT LOAD`ed and `EVALSHA`ed. Unless `SCRIPT FLUSH` is called periodically, the scripts' caches may end up consuming most of your memory.\n\n";

/// What MEMORY DOCTOR looks at besides [`MemoryFigures`].
struct DoctorInputs {
    clients: u64,
    replicas: u64,
    scripts: usize,
}

/// MEMORY DOCTOR's report: Redis's checks on the same figures, Redis's words.
fn doctor_report(m: &MemoryFigures, x: &DoctorInputs) -> String {
    if m.net() < DOCTOR_MIN_BYTES {
        return DOCTOR_EMPTY.to_string();
    }
    // A ratio over `limit` with more than 10 MB behind it.
    let over = |a: u64, b: u64, limit: f32| {
        (a as f32 / b as f32) > limit && a as i64 - b as i64 > DOCTOR_BYTES
    };
    let total_rss = format!(
        "{}{}{}",
        DOCTOR_TOTAL_RSS.0,
        allocator_name(),
        DOCTOR_TOTAL_RSS.1
    );
    let checks: [(bool, &str); 8] = [
        (m.peak as f32 / m.used as f32 > 1.5, DOCTOR_PEAK),
        (over(m.rss, m.used, 1.4), &total_rss),
        (over(m.active, m.used, 1.1), DOCTOR_ALLOC_FRAG),
        (over(m.resident, m.active, 1.1), DOCTOR_ALLOC_RSS),
        (over(m.rss, m.resident, 1.1), DOCTOR_PROC_RSS),
        (
            x.replicas > 0 && m.clients_slaves / x.replicas > 10 << 20,
            DOCTOR_REPLICA_BUF,
        ),
        (
            x.clients > 0 && m.clients_normal / x.clients > 200 << 10,
            DOCTOR_CLIENT_BUF,
        ),
        (x.scripts > 1000, DOCTOR_SCRIPTS),
    ];
    let issues: Vec<&str> = checks.iter().filter(|c| c.0).map(|c| c.1).collect();
    if issues.is_empty() {
        return DOCTOR_HEALTHY.to_string();
    }
    let mut s = DOCTOR_ISSUES.to_string();
    s.extend(issues);
    s.push_str(DOCTOR_BYE);
    s
}

/// `MEMORY DOCTOR`: a report of the memory issues Redis detects, in Redis's words, on
/// Kiln's figures. O(databases x shards).
fn memory_doctor(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let m = MemoryFigures::read(cx);
    let replicas = cx.server.repl.replica_count();
    let x = DoctorInputs {
        clients: client_summary(cx.server).connected.saturating_sub(replicas) as u64,
        replicas: replicas as u64,
        scripts: cx.server.scripts.count(),
    };
    cx.out.verbatim(doctor_report(&m, &x).as_bytes());
    Ok(())
}

/// `MEMORY MALLOC-STATS`: jemalloc's own statistics report (`malloc_stats_print`), as
/// Redis replies it. O(size classes x arenas).
fn memory_malloc_stats(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let _ = tikv_jemalloc_ctl::epoch::advance();
    let mut text = Vec::with_capacity(32 * 1024);
    if tikv_jemalloc_ctl::stats_print::stats_print(&mut text, Default::default()).is_err() {
        text = b"Stats not supported for the current allocator".to_vec();
    }
    cx.out.verbatim(&text);
    Ok(())
}

/// `MEMORY PURGE`: returns jemalloc's unused dirty pages to the system. Redis calls
/// `arena.<all>.purge`, which the safe mallctl interface cannot reach (it takes no
/// value); setting each arena's decay times to 0 purges the same pages at once, and the
/// times are put back. O(arenas + dirty pages).
fn memory_purge(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    use tikv_jemalloc_ctl::{arenas, Access, AsName};
    let Ok(narenas) = arenas::narenas::read() else {
        return Err(E("ERR Error purging dirty pages"));
    };
    for arena in 0..narenas {
        for decay in ["dirty_decay_ms", "muzzy_decay_ms"] {
            let name = format!("arena.{arena}.{decay}\0");
            let name = name.as_bytes().name();
            // Arenas never initialised have no decay to read: nothing to purge there.
            // (Not `update`: it hands jemalloc one buffer for the old and the new value,
            // so the old value is written back and nothing changes.)
            if let Ok(old) = Access::<isize>::read(name) {
                if name.write(0isize).is_ok() {
                    let _ = name.write(old);
                }
            }
        }
    }
    cx.out.ok();
    Ok(())
}

/// `MEMORY HELP`: Redis's help text. O(1).
fn memory_help(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    help_reply(
        &mut cx.out,
        "MEMORY",
        &[
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
        ],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(used: u64) -> MemoryFigures {
        MemoryFigures {
            used,
            peak: used,
            startup: 1 << 20,
            active: used,
            resident: used,
            rss: used,
            clients_normal: 0,
            clients_slaves: 0,
            repl_backlog: 0,
            aof_buffer: 0,
            lua_caches: 0,
            functions_caches: 0,
            dbs: Vec::new(),
            keys: 0,
            overhead: 0,
            dataset: 0,
        }
    }

    const CALM: DoctorInputs = DoctorInputs {
        clients: 1,
        replicas: 0,
        scripts: 0,
    };

    #[test]
    fn doctor_declines_below_five_megabytes_and_is_calm_above() {
        assert_eq!(doctor_report(&figures(5 << 20), &CALM), DOCTOR_EMPTY);
        assert_eq!(doctor_report(&figures(50 << 20), &CALM), DOCTOR_HEALTHY);
    }

    #[test]
    fn doctor_names_each_issue_it_finds_in_redis_order() {
        let mut m = figures(50 << 20);
        m.peak = 100 << 20;
        m.rss = 200 << 20;
        m.resident = 60 << 20;
        let x = DoctorInputs {
            scripts: 1001,
            ..CALM
        };
        let r = doctor_report(&m, &x);
        assert!(
            r.starts_with(DOCTOR_ISSUES) && r.ends_with(DOCTOR_BYE),
            "{r}"
        );
        let at = |s: &str| r.find(s).unwrap_or_else(|| panic!("{s} missing from {r}"));
        assert!(at(DOCTOR_PEAK) < at(" * High total RSS"));
        assert!(at(" * High total RSS") < at(DOCTOR_PROC_RSS));
        assert!(at(DOCTOR_PROC_RSS) < at(DOCTOR_SCRIPTS));
        assert!(!r.contains(DOCTOR_ALLOC_FRAG) && !r.contains(DOCTOR_CLIENT_BUF));
    }

    #[test]
    fn stats_ratios_print_as_redis_floats() {
        assert_eq!(float_text(2.0, 1.0), "2");
        assert_eq!(float_text(0.0, 1.0), "0");
        assert_eq!(float_text(100.0, 3.0), "33.333332061767578");
    }
}
