//! Server commands: INFO, CONFIG, DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME, LASTSAVE,
//! SHUTDOWN and DEBUG.
//!
//! INFO is assembled from the server's counters on demand: nothing here runs on the hot
//! path of other commands. CONFIG SET validates every pair before changing anything and
//! swaps the whole configuration under the write lock, so it is all-or-nothing and never
//! observed half done. DEBUG is refused unless `enable-debug-command` allows it, as in
//! Redis 7.

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use super::flags::*;
use super::{CommandSpec, Ctx, Keys};
use crate::config::{self, Config, Kind, Param};
use crate::digest;
use crate::error::{
    CmdResult, CommandError, CLIENT_NAME, DB_INDEX, DEBUG_NOT_ALLOWED, E, INVALID_FIRST_DB,
    INVALID_SECOND_DB, NOT_POSITIVE, NO_CONFIG_FILE, NO_SHUTDOWN_IN_PROGRESS, NO_SUCH_KEY,
    STRING_TOO_LONG, SYNTAX,
};
use crate::reply::Out;
use crate::server::{InstMetrics, Server};
use crate::storage::entry::{Entry, ValueRef, META_UNSHARED};
use crate::storage::value::Value;
use crate::storage::{Shard, SHARDS};
use crate::util::parse_i64;

const CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "get",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::None,
        config_get,
    )
    .group("server")
    .since("2.0.0")
    .summary("Get the values of configuration parameters")
    .complexity("O(N) when N is the number of configuration parameters provided")
    .syntax("parameter [parameter ...]"),
    CommandSpec::new(
        "set",
        -4,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::WalkAll,
        config_set,
    )
    .group("server")
    .since("2.0.0")
    .summary("Set configuration parameters to the given values")
    .complexity("O(N) when N is the number of configuration parameters provided")
    .syntax("parameter value [parameter value ...]"),
    CommandSpec::new(
        "resetstat",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::None,
        config_resetstat,
    )
    .group("server")
    .since("2.0.0")
    .summary("Reset the stats returned by INFO")
    .complexity("O(1)"),
    CommandSpec::new(
        "rewrite",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Keys::None,
        config_rewrite,
    )
    .group("server")
    .since("2.8.0")
    .summary("Rewrite the configuration file with the in memory configuration")
    .complexity("O(1)"),
    CommandSpec::new("help", 2, LOADING | STALE, Keys::None, config_help)
        .group("server")
        .since("5.0.0")
        .summary("Show helpful text about the different subcommands")
        .complexity("O(1)"),
];

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("info", -1, LOADING | STALE, Keys::WalkAll, info)
        .group("server")
        .summary("Get information and statistics about the server")
        .complexity("O(1)")
        .syntax("[section [section ...]]"),
    CommandSpec::new("config", -2, 0, Keys::None, container)
        .group("server")
        .since("2.0.0")
        .summary("A container for server configuration commands")
        .complexity("Depends on subcommand.")
        .subcommands(CONFIG_SUBCOMMANDS),
    CommandSpec::new("dbsize", 1, READONLY | FAST, Keys::AllDb, dbsize)
        .group("server")
        .summary("Return the number of keys in the selected database")
        .complexity("O(1)"),
    CommandSpec::new("flushdb", -1, WRITE, Keys::AllDb, flushdb)
        .group("server")
        .summary("Remove all keys from the current database")
        .complexity("O(N) where N is the number of keys in the selected database")
        .syntax("[ASYNC | SYNC]"),
    CommandSpec::new("flushall", -1, WRITE, Keys::AllDbs, flushall)
        .group("server")
        .summary("Remove all keys from all databases")
        .complexity("O(N) where N is the total number of keys in all databases")
        .syntax("[ASYNC | SYNC]"),
    CommandSpec::new("swapdb", 3, WRITE | FAST, Keys::AllDbs, swapdb)
        .group("server")
        .since("4.0.0")
        .summary("Swaps two Redis databases")
        .complexity("O(N) where N is the count of clients watching or blocking on keys from both databases.")
        .syntax("index1 index2"),
    CommandSpec::new("time", 1, LOADING | STALE | FAST, Keys::None, time)
        .group("server")
        .since("2.6.0")
        .summary("Return the current server time")
        .complexity("O(1)"),
    CommandSpec::new("lastsave", 1, LOADING | STALE | FAST, Keys::None, lastsave)
        .group("server")
        .summary("Get the UNIX time stamp of the last successful save to disk")
        .complexity("O(1)"),
    CommandSpec::new("save", 1, ADMIN | NOSCRIPT | NO_MULTI, Keys::WalkAll, save)
        .group("server")
        .summary("Synchronously save the dataset to disk")
        .complexity("O(N) where N is the total number of keys in all databases"),
    CommandSpec::new("bgsave", -1, ADMIN | NOSCRIPT, Keys::WalkAll, bgsave)
        .group("server")
        .summary("Asynchronously save the dataset to disk")
        .complexity("O(1)")
        .syntax("[SCHEDULE]"),
    CommandSpec::new(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
        Keys::WalkAll,
        shutdown,
    )
    .group("server")
    .summary("Synchronously save the dataset to disk and then shut down the server")
    .complexity("O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)")
    .syntax("[NOSAVE | SAVE] [NOW] [FORCE] [ABORT]"),
    CommandSpec::new("debug", -2, ADMIN | NOSCRIPT | LOADING | STALE, Keys::WalkAll, debug)
        .group("server")
        .summary("A container for debugging commands")
        .complexity("Depends on subcommand."),
];

/// The `CONFIG` container itself: the dispatcher always resolves a subcommand first, so
/// this only answers if it is ever called directly.
fn container(_cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    Err(CommandError::unknown_subcommand(
        args[0],
        args.get(1).copied().unwrap_or_default(),
    ))
}

/// Writes a HELP reply the way Redis lays it out: a header, the given lines, then HELP.
fn help_reply(out: &mut Out, cmd: &str, lines: &[&str]) {
    out.array(lines.len() + 3);
    out.simple(&format!(
        "{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for l in lines {
        out.simple(l);
    }
    out.simple("HELP");
    out.simple("    Prints this help.");
}

// ---------------------------------------------------------------------------------------
// INFO

/// The sections of INFO in output order: (lowercase name, title, generator).
type Section = (&'static str, &'static str, fn(&mut Ctx, &mut String));

const SECTIONS: &[Section] = &[
    ("server", "Server", info_server),
    ("clients", "Clients", info_clients),
    ("memory", "Memory", info_memory),
    ("persistence", "Persistence", info_persistence),
    ("stats", "Stats", info_stats),
    ("replication", "Replication", info_replication),
    ("cpu", "CPU", info_cpu),
    ("modules", "Modules", info_nothing),
    ("commandstats", "Commandstats", info_commandstats),
    ("errorstats", "Errorstats", info_errorstats),
    // Per-command latency percentiles are not tracked: the section is empty, as in Redis
    // with `latency-tracking no`.
    ("latencystats", "Latencystats", info_nothing),
    ("cluster", "Cluster", info_cluster),
    ("keyspace", "Keyspace", info_keyspace),
];

/// Sections that `INFO all` adds to the default ones.
const NOT_DEFAULT: &[&str] = &["commandstats", "latencystats"];

/// Bit mask of the sections named by INFO's arguments (Redis 7: several at once; `default`,
/// `all` and `everything` expand; unknown names select nothing).
fn info_selection(args: &[&[u8]]) -> u32 {
    let default = SECTIONS
        .iter()
        .enumerate()
        .filter(|(_, s)| !NOT_DEFAULT.contains(&s.0))
        .fold(0, |m, (i, _)| m | 1 << i);
    if args.is_empty() {
        return default;
    }
    let all = (1u32 << SECTIONS.len()) - 1;
    let mut mask = 0;
    for a in args {
        let a = a.to_ascii_lowercase();
        mask |= match &a[..] {
            b"default" => default,
            // Kiln has no module sections, so `everything` is `all`.
            b"all" | b"everything" => all,
            name => SECTIONS
                .iter()
                .position(|s| s.0.as_bytes() == name)
                .map_or(0, |i| 1 << i),
        };
    }
    mask
}

/// `INFO [section [section ...]]`: server information and statistics as `field:value`
/// lines under `# Section` headers. O(1) except keyspace (O(shards)) and commandstats
/// (O(commands)).
fn info(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mask = info_selection(&args[1..]);
    let mut text = String::with_capacity(4096);
    for (i, (_, title, section)) in SECTIONS.iter().enumerate() {
        if mask & (1 << i) == 0 {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        let _ = write!(text, "# {title}\r\n");
        section(cx, &mut text);
    }
    cx.out.verbatim(text.as_bytes());
    Ok(())
}

/// Appends one `field:value` line.
macro_rules! field {
    ($s:expr, $name:expr, $($arg:tt)*) => {{
        let _ = write!($s, concat!($name, ":"));
        let _ = write!($s, $($arg)*);
        $s.push_str("\r\n");
    }};
}

fn info_nothing(_cx: &mut Ctx, _s: &mut String) {}

/// `os` as Redis prints it from uname: "Linux 6.1.0 x86_64".
fn os_name() -> &'static str {
    static OS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OS.get_or_init(|| {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
        };
        match (
            read("/proc/sys/kernel/ostype"),
            read("/proc/sys/kernel/osrelease"),
        ) {
            (Some(t), Some(r)) => format!("{t} {r} {}", std::env::consts::ARCH),
            _ => format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    })
}

fn info_server(cx: &mut Ctx, s: &mut String) {
    let server = cx.server;
    let (hz, port) = {
        let c = server.config.read();
        (c.get_u64("hz"), server.port.load(Relaxed))
    };
    let uptime = server.uptime_secs();
    field!(s, "redis_version", "{}", crate::server::REDIS_VERSION);
    field!(s, "kiln_version", "{}", env!("CARGO_PKG_VERSION"));
    field!(s, "redis_git_sha1", "00000000");
    field!(s, "redis_git_dirty", "0");
    field!(s, "redis_build_id", "0");
    field!(s, "redis_mode", "standalone");
    field!(s, "os", "{}", os_name());
    field!(s, "arch_bits", "{}", usize::BITS);
    field!(s, "monotonic_clock", "POSIX clock_gettime");
    field!(
        s,
        "multiplexing_api",
        "{}",
        if cfg!(target_os = "linux") {
            "epoll"
        } else {
            "kqueue"
        }
    );
    field!(s, "atomicvar_api", "c11-builtin");
    // Not built by gcc: Redis prints 0.0.0 then too.
    field!(s, "gcc_version", "0.0.0");
    field!(s, "process_id", "{}", std::process::id());
    field!(s, "process_supervised", "no");
    field!(s, "run_id", "{}", server.run_id);
    field!(s, "tcp_port", "{port}");
    field!(s, "server_time_usec", "{}", crate::clock::now_us());
    field!(s, "uptime_in_seconds", "{uptime}");
    field!(s, "uptime_in_days", "{}", uptime / 86400);
    field!(s, "hz", "{}", server.hot.hz.load(Relaxed));
    field!(s, "configured_hz", "{hz}");
    field!(s, "lru_clock", "{}", cx.lru());
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    field!(s, "executable", "{exe}");
    let conf = server
        .config_file
        .get()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    field!(s, "config_file", "{conf}");
    field!(s, "io_threads_active", "0");
}

/// Connection counts and the largest buffers among them.
struct ClientSummary {
    connected: usize,
    max_query: u64,
    max_output: u64,
    buffers: u64,
}

fn client_summary(server: &Server) -> ClientSummary {
    let clients = server.clients.lock();
    let mut c = ClientSummary {
        connected: clients.len(),
        max_query: 0,
        max_output: 0,
        buffers: 0,
    };
    for h in clients.values() {
        let (q, o) = (h.query_buf.load(Relaxed), h.output_buf.load(Relaxed));
        c.max_query = c.max_query.max(q);
        c.max_output = c.max_output.max(o);
        c.buffers += q + o;
    }
    c
}

fn info_clients(cx: &mut Ctx, s: &mut String) {
    let server = cx.server;
    let c = client_summary(server);
    let replicas = server.repl.replica_count();
    field!(
        s,
        "connected_clients",
        "{}",
        c.connected.saturating_sub(replicas)
    );
    field!(s, "cluster_connections", "0");
    field!(s, "maxclients", "{}", server.hot.maxclients.load(Relaxed));
    field!(s, "client_recent_max_input_buffer", "{}", c.max_query);
    field!(s, "client_recent_max_output_buffer", "{}", c.max_output);
    let blocked = server.waiters.lock().len();
    field!(s, "blocked_clients", "{}", blocked);
    field!(s, "tracking_clients", "0");
    field!(s, "clients_in_timeout_table", "{}", blocked);
}

/// Redis's `bytesToHuman`.
fn human(n: u64) -> String {
    const K: u64 = 1024;
    let d = n as f64;
    let units = [
        (K, 'K'),
        (K * K, 'M'),
        (K * K * K, 'G'),
        (K.pow(4), 'T'),
        (K.pow(5), 'P'),
    ];
    if n < K {
        return format!("{n}B");
    }
    for (size, unit) in units {
        if n < size * K {
            return format!("{:.2}{unit}", d / size as f64);
        }
    }
    format!("{n}B")
}

/// `a / b` with two decimals, 0 when `b` is 0.
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The jemalloc version as Redis names its allocator: `jemalloc-5.3.0`.
fn allocator_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| match tikv_jemalloc_ctl::version::read() {
        Ok(v) => format!("jemalloc-{}", v.split('-').next().unwrap_or(v)),
        Err(_) => "jemalloc".to_string(),
    })
}

/// Total RAM of the machine, from /proc/meminfo.
fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}

/// Objects being freed in the background by FLUSHALL/FLUSHDB ASYNC, and objects freed so
/// far (INFO `lazyfree_pending_objects`, `lazyfreed_objects`).
static LAZYFREE_PENDING: AtomicU64 = AtomicU64::new(0);
static LAZYFREED: AtomicU64 = AtomicU64::new(0);

fn info_memory(cx: &mut Ctx, s: &mut String) {
    let server = cx.server;
    let used = server.used_memory();
    let peak = server.mem_peak.load(Relaxed).max(used);
    let startup = server.mem_startup.load(Relaxed);
    let active = tikv_jemalloc_ctl::stats::active::read().unwrap_or(0) as u64;
    let resident = tikv_jemalloc_ctl::stats::resident::read().unwrap_or(0) as u64;
    let rss = sys::rss_bytes();
    let clients = client_summary(server).buffers;
    // Kiln does not account per-structure overhead: the fixed part is what the server had
    // allocated at start, plus client buffers; the rest counts as dataset.
    let overhead = startup + clients;
    let dataset = used.saturating_sub(overhead);
    let total_mem = total_system_memory();
    let (maxmemory, policy) = {
        let c = server.config.read();
        (
            c.get_u64("maxmemory"),
            c.get("maxmemory-policy").to_string(),
        )
    };
    field!(s, "used_memory", "{used}");
    field!(s, "used_memory_human", "{}", human(used));
    field!(s, "used_memory_rss", "{rss}");
    field!(s, "used_memory_rss_human", "{}", human(rss));
    field!(s, "used_memory_peak", "{peak}");
    field!(s, "used_memory_peak_human", "{}", human(peak));
    field!(
        s,
        "used_memory_peak_perc",
        "{:.2}%",
        ratio(used * 100, peak)
    );
    field!(s, "used_memory_overhead", "{overhead}");
    field!(s, "used_memory_startup", "{startup}");
    field!(s, "used_memory_dataset", "{dataset}");
    field!(
        s,
        "used_memory_dataset_perc",
        "{:.2}%",
        ratio(dataset * 100, used.saturating_sub(startup))
    );
    field!(s, "allocator_allocated", "{used}");
    field!(s, "allocator_active", "{active}");
    field!(s, "allocator_resident", "{resident}");
    field!(s, "total_system_memory", "{total_mem}");
    field!(s, "total_system_memory_human", "{}", human(total_mem));
    // No scripting engine: nothing is spent on one.
    field!(s, "used_memory_lua", "0");
    field!(s, "used_memory_lua_human", "0B");
    field!(s, "used_memory_scripts", "0");
    field!(s, "used_memory_scripts_human", "0B");
    field!(s, "number_of_cached_scripts", "0");
    field!(s, "maxmemory", "{maxmemory}");
    field!(s, "maxmemory_human", "{}", human(maxmemory));
    field!(s, "maxmemory_policy", "{policy}");
    field!(s, "allocator_frag_ratio", "{:.2}", ratio(active, used));
    field!(s, "allocator_frag_bytes", "{}", active as i64 - used as i64);
    field!(s, "allocator_rss_ratio", "{:.2}", ratio(resident, active));
    field!(
        s,
        "allocator_rss_bytes",
        "{}",
        resident as i64 - active as i64
    );
    field!(s, "rss_overhead_ratio", "{:.2}", ratio(rss, resident));
    field!(s, "rss_overhead_bytes", "{}", rss as i64 - resident as i64);
    field!(s, "mem_fragmentation_ratio", "{:.2}", ratio(rss, used));
    field!(s, "mem_fragmentation_bytes", "{}", rss as i64 - used as i64);
    field!(s, "mem_not_counted_for_evict", "0");
    field!(s, "mem_replication_backlog", "0");
    field!(s, "mem_total_replication_buffers", "0");
    field!(s, "mem_clients_slaves", "0");
    field!(s, "mem_clients_normal", "{clients}");
    field!(s, "mem_cluster_links", "0");
    field!(s, "mem_aof_buffer", "0");
    field!(s, "mem_allocator", "{}", allocator_name());
    field!(s, "active_defrag_running", "0");
    field!(
        s,
        "lazyfree_pending_objects",
        "{}",
        LAZYFREE_PENDING.load(Relaxed)
    );
    field!(s, "lazyfreed_objects", "{}", LAZYFREED.load(Relaxed));
}

/// INFO persistence. `current_cow_*` / `rdb_last_cow_size` report the bytes a running
/// snapshot holds for keys changed before it saved them (Kiln's counterpart of fork
/// copy-on-write).
fn info_persistence(cx: &mut Ctx, s: &mut String) {
    let server = cx.server;
    let st = &server.rdb_state;
    let snap = &server.snapshot;
    let now = crate::clock::now_ms();
    let bg_started = st.bgsave_started_ms.load(Relaxed);
    let in_progress = snap.in_progress.load(Relaxed);
    field!(s, "loading", "0");
    field!(s, "async_loading", "0");
    field!(
        s,
        "current_cow_peak",
        "{}",
        if in_progress { snap.side_peak() } else { 0 }
    );
    field!(
        s,
        "current_cow_size",
        "{}",
        if in_progress { snap.side_peak() } else { 0 }
    );
    field!(s, "current_cow_size_age", "0");
    field!(s, "current_fork_perc", "0.00");
    let (done, total) = if in_progress {
        (snap.keys_done.load(Relaxed), snap.keys_total.load(Relaxed))
    } else {
        (0, 0)
    };
    field!(s, "current_save_keys_processed", "{done}");
    field!(s, "current_save_keys_total", "{total}");
    field!(
        s,
        "rdb_changes_since_last_save",
        "{}",
        server.changes_since_save()
    );
    field!(s, "rdb_bgsave_in_progress", "{}", u8::from(bg_started != 0));
    field!(
        s,
        "rdb_last_save_time",
        "{}",
        st.last_save_ms.load(Relaxed) / 1000
    );
    field!(
        s,
        "rdb_last_bgsave_status",
        "{}",
        if st.last_ok.load(Relaxed) {
            "ok"
        } else {
            "err"
        }
    );
    field!(
        s,
        "rdb_last_bgsave_time_sec",
        "{}",
        st.last_bgsave_secs.load(Relaxed)
    );
    let current = if bg_started != 0 {
        (now.saturating_sub(bg_started) / 1000) as i64
    } else {
        -1
    };
    field!(s, "rdb_current_bgsave_time_sec", "{current}");
    field!(s, "rdb_saves", "{}", st.saves.load(Relaxed));
    field!(s, "rdb_last_cow_size", "{}", st.last_cow.load(Relaxed));
    field!(
        s,
        "rdb_last_load_keys_expired",
        "{}",
        st.last_load_expired.load(Relaxed)
    );
    field!(
        s,
        "rdb_last_load_keys_loaded",
        "{}",
        st.last_load_loaded.load(Relaxed)
    );
    // The AOF fields to the end of the section (module_fork_* included: Redis prints
    // them between the AOF's fields and its sizes).
    crate::aof::info(server, s);
}

fn info_stats(cx: &mut Ctx, s: &mut String) {
    let server = cx.server;
    let st = &server.stats;
    let (ops, in_kbps, out_kbps) = {
        let m = server.inst.lock();
        (m.ops_per_sec, m.in_kbps, m.out_kbps)
    };
    field!(
        s,
        "total_connections_received",
        "{}",
        st.sum(|t| &t.connections)
    );
    field!(s, "total_commands_processed", "{}", st.sum(|t| &t.commands));
    field!(s, "instantaneous_ops_per_sec", "{ops}");
    field!(s, "total_net_input_bytes", "{}", st.sum(|t| &t.net_input));
    field!(s, "total_net_output_bytes", "{}", st.sum(|t| &t.net_output));
    let repl = &server.repl;
    field!(
        s,
        "total_net_repl_input_bytes",
        "{}",
        repl.net_repl_in.load(Relaxed)
    );
    field!(
        s,
        "total_net_repl_output_bytes",
        "{}",
        repl.net_repl_out.load(Relaxed)
    );
    field!(s, "instantaneous_input_kbps", "{in_kbps:.2}");
    field!(s, "instantaneous_output_kbps", "{out_kbps:.2}");
    field!(s, "instantaneous_input_repl_kbps", "0.00");
    field!(s, "instantaneous_output_repl_kbps", "0.00");
    field!(
        s,
        "rejected_connections",
        "{}",
        st.sum(|t| &t.rejected_connections)
    );
    field!(s, "sync_full", "{}", repl.sync_full.load(Relaxed));
    field!(
        s,
        "sync_partial_ok",
        "{}",
        repl.sync_partial_ok.load(Relaxed)
    );
    field!(
        s,
        "sync_partial_err",
        "{}",
        repl.sync_partial_err.load(Relaxed)
    );
    field!(s, "expired_keys", "{}", st.sum(|t| &t.expired_keys));
    field!(s, "expired_stale_perc", "0.00");
    field!(s, "expired_time_cap_reached_count", "0");
    field!(s, "expire_cycle_cpu_milliseconds", "0");
    field!(s, "evicted_keys", "0");
    field!(s, "evicted_clients", "0");
    field!(s, "total_eviction_exceeded_time", "0");
    field!(s, "current_eviction_exceeded_time", "0");
    field!(s, "keyspace_hits", "{}", st.sum(|t| &t.keyspace_hits));
    field!(s, "keyspace_misses", "{}", st.sum(|t| &t.keyspace_misses));
    let ps = &cx.server.pubsub;
    field!(
        s,
        "pubsub_channels",
        "{}",
        ps.channel_names(false, None).len()
    );
    field!(s, "pubsub_patterns", "{}", ps.numpat());
    field!(
        s,
        "pubsubshard_channels",
        "{}",
        ps.channel_names(true, None).len()
    );
    field!(s, "latest_fork_usec", "0");
    field!(s, "total_forks", "0");
    field!(s, "migrate_cached_sockets", "0");
    field!(s, "slave_expires_tracked_keys", "0");
    field!(s, "active_defrag_hits", "0");
    field!(s, "active_defrag_misses", "0");
    field!(s, "active_defrag_key_hits", "0");
    field!(s, "active_defrag_key_misses", "0");
    field!(s, "total_active_defrag_time", "0");
    field!(s, "current_active_defrag_time", "0");
    field!(s, "tracking_total_keys", "0");
    field!(s, "tracking_total_items", "0");
    field!(s, "tracking_total_prefixes", "0");
    field!(s, "unexpected_error_replies", "0");
    field!(s, "total_error_replies", "{}", st.sum(|t| &t.error_replies));
    field!(s, "dump_payload_sanitizations", "0");
    field!(s, "io_threaded_reads_processed", "0");
    field!(s, "io_threaded_writes_processed", "0");
}

fn info_replication(cx: &mut Ctx, s: &mut String) {
    crate::repl::info(cx.server, s);
}

fn info_cpu(_cx: &mut Ctx, s: &mut String) {
    let own = sys::cpu_times(false);
    let children = sys::cpu_times(true);
    field!(s, "used_cpu_sys", "{}", own.0);
    field!(s, "used_cpu_user", "{}", own.1);
    field!(s, "used_cpu_sys_children", "{}", children.0);
    field!(s, "used_cpu_user_children", "{}", children.1);
}

fn info_commandstats(cx: &mut Ctx, s: &mut String) {
    let server = cx.server;
    for (id, name) in server.commands.names.iter().enumerate() {
        let (calls, usec, rejected, failed) = server.stats.cmd_totals(id);
        if calls == 0 && rejected == 0 && failed == 0 {
            continue;
        }
        let _ = write!(
            s,
            "cmdstat_{name}:calls={calls},usec={usec},usec_per_call={:.2},rejected_calls={rejected},failed_calls={failed}\r\n",
            ratio(usec, calls)
        );
    }
}

fn info_errorstats(cx: &mut Ctx, s: &mut String) {
    for (code, n) in cx.server.stats.errors.lock().iter() {
        let _ = write!(s, "errorstat_{code}:count={n}\r\n");
    }
}

fn info_cluster(_cx: &mut Ctx, s: &mut String) {
    field!(s, "cluster_enabled", "0");
}

fn info_keyspace(cx: &mut Ctx, s: &mut String) {
    // INFO walks the keyspace (`Keys::WalkAll`): each shard is locked on its own, briefly,
    // except inside EXEC, which holds them all.
    for i in 0..cx.server.keyspace.dbs.len() {
        let (mut keys, mut expires) = (0, 0);
        for idx in 0..SHARDS {
            if let Ok((k, e)) = cx.visit(i, idx, |sh| (sh.len(), sh.expires_len())) {
                keys += k;
                expires += e;
            }
        }
        if keys > 0 {
            let _ = write!(s, "db{i}:keys={keys},expires={expires},avg_ttl=0\r\n");
        }
    }
}

/// The few facts only the operating system knows, through libc.
#[allow(unsafe_code)]
mod sys {
    /// Resident set size in bytes (`/proc/self/statm` pages times the page size).
    pub fn rss_bytes() -> u64 {
        let pages: u64 = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|t| t.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        // SAFETY: sysconf only reads a system constant.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        pages * u64::try_from(page).unwrap_or(4096)
    }

    /// (system, user) CPU time of this process, or of its waited-for children, formatted
    /// `seconds.micros` like Redis.
    pub fn cpu_times(children: bool) -> (String, String) {
        let who = if children {
            libc::RUSAGE_CHILDREN
        } else {
            libc::RUSAGE_SELF
        };
        // SAFETY: an all-zero rusage is a valid value of this plain C struct.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage writes only into the struct it is given, which lives here.
        if unsafe { libc::getrusage(who, &mut ru) } != 0 {
            return ("0.000000".into(), "0.000000".into());
        }
        let f = |t: libc::timeval| format!("{}.{:06}", t.tv_sec, t.tv_usec);
        (f(ru.ru_stime), f(ru.ru_utime))
    }
}

// ---------------------------------------------------------------------------------------
// CONFIG

/// `CONFIG GET parameter [parameter ...]`: name/value pairs of every parameter matching
/// any of the glob patterns. O(N) in the number of parameters.
fn config_get(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let cfg = cx.server.config.read();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for pat in &args[2..] {
        if !pat.iter().any(|c| b"*?[".contains(c)) {
            // A plain name (or alias) is looked up directly and echoed as the client wrote it.
            let name = String::from_utf8_lossy(pat);
            if let Some(p) = config::param(&name) {
                if seen.insert(name.to_ascii_lowercase()) {
                    pairs.push((name.into_owned(), config::shown(p.name, cfg.get(p.name))));
                }
            }
            continue;
        }
        for (name, value) in cfg.matching(pat) {
            if seen.insert(name.to_string()) {
                pairs.push((name.to_string(), value));
            }
        }
    }
    drop(cfg);
    cx.out.map(pairs.len());
    for (n, v) in &pairs {
        cx.out.bulk(n.as_bytes());
        cx.out.bulk(v.as_bytes());
    }
    Ok(())
}

/// Whether a connection from `addr` counts as local for the `enable-*` options.
fn is_local(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>()
        .is_ok_and(|a| match a.ip() {
            std::net::IpAddr::V4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
            std::net::IpAddr::V6(ip) => ip == std::net::Ipv6Addr::LOCALHOST,
        })
}

/// Whether an `enable-*` option (`no`, `yes`, `local`) lets this client through.
fn enabled_for(cx: &Ctx, option: &str) -> bool {
    match cx.server.config.read().get(option) {
        "yes" => true,
        "local" => is_local(&cx.client.handle.addr),
        _ => false,
    }
}

/// `CONFIG SET parameter value [parameter value ...]`: all or nothing. O(N) in the number
/// of pairs.
fn config_set(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let pairs = &args[2..];
    if !pairs.chunks_exact(2).remainder().is_empty() {
        return Err(E(SYNTAX));
    }
    // First every name: unknown, immutable, protected and repeated names fail before any
    // value is looked at, in argument order (Redis's order of checks).
    let protected_ok = enabled_for(cx, "enable-protected-configs");
    let mut checked: Vec<(&'static Param, String, String)> = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks_exact(2) {
        let name = String::from_utf8_lossy(pair[0]).into_owned();
        let p = config::param(&name).ok_or_else(|| CommandError::config_set_unknown(&name))?;
        if !p.mutable {
            return Err(CommandError::config_set_failed(
                &name,
                "can't set immutable config",
            ));
        }
        if config::PROTECTED.contains(&p.name) && !protected_ok {
            return Err(CommandError::config_set_failed(
                &name,
                "can't set protected config",
            ));
        }
        if checked
            .iter()
            .any(|(_, n, _)| n.eq_ignore_ascii_case(&name))
        {
            return Err(CommandError::config_set_failed(
                &name,
                "duplicate parameter",
            ));
        }
        checked.push((p, name, String::from_utf8_lossy(pair[1]).into_owned()));
    }
    // Then the values, on a copy that replaces the configuration only if all of them pass.
    let mut cfg = cx.server.config.write();
    let mut new: Config = cfg.clone();
    for (p, name, value) in &checked {
        set_value(&mut new, p, value)
            .map_err(|reason| CommandError::config_set_failed(name, &reason))?;
    }
    *cfg = new;
    drop(cfg);
    cx.server.refresh_hot_config();
    // Turning the AOF on or off, and its fsync policy, take effect now.
    crate::aof::config_changed(cx.server, cx.in_exec())
        .map_err(|reason| CommandError::config_set_failed("appendonly", &reason))?;
    cx.out.ok();
    Ok(())
}

/// Sets one parameter from a CONFIG SET value.
fn set_value(cfg: &mut Config, p: &Param, value: &str) -> Result<(), String> {
    // A multi-word value arrives as one argument split on single spaces, so a doubled
    // space makes an empty word, which Redis refuses for `save`.
    if p.name == "save" && !value.is_empty() && value.split(' ').any(str::is_empty) {
        return Err("Invalid save parameters".into());
    }
    cfg.set(p.name, &[value.to_string()])
}

/// `CONFIG RESETSTAT`: zeroes INFO's counters. O(commands).
fn config_resetstat(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let server = cx.server;
    server.stats.reset();
    *server.inst.lock() = InstMetrics::default();
    LAZYFREED.store(0, Relaxed);
    server.mem_peak.store(server.used_memory(), Relaxed);
    cx.out.ok();
    Ok(())
}

/// `CONFIG REWRITE`: writes the configuration in force back to the config file the server
/// was started with, keeping its comments and layout. O(parameters).
fn config_rewrite(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let Some(path) = cx.server.config_file.get() else {
        return Err(E(NO_CONFIG_FILE));
    };
    let cfg = cx.server.config.read().clone();
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(CommandError::config_rewrite_failed(&os_error(&e))),
    };
    let text = rewrite_config_text(&old, &cfg);
    // Write a sibling file and rename it over the old one: a crash never leaves a
    // truncated config behind.
    let mut tmp = path.clone().into_os_string();
    tmp.push(format!(".kiln-rewrite-{}", std::process::id()));
    let res = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(CommandError::config_rewrite_failed(&os_error(&e)));
    }
    tracing::info!("CONFIG REWRITE executed with success.");
    cx.out.ok();
    Ok(())
}

/// An I/O error as `strerror` words it (without Rust's "(os error N)" suffix).
fn os_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Marks the lines CONFIG REWRITE appended to a config file.
const REWRITE_SIGNATURE: &str = "# Generated by CONFIG REWRITE";

/// One config-file line setting `p` to its value in `cfg`, or none when the setting is
/// expressed by leaving the parameter out (no `replicaof`: not a replica).
fn config_line(p: &Param, cfg: &Config) -> Option<String> {
    let v = cfg.get(p.name);
    Some(match p.kind {
        Kind::Special if v.is_empty() && p.name == "replicaof" => return None,
        // Multi-word values are written as words, each quoted if it has to be (a bind
        // address or replicaof host may hold a quote); an empty one must stay visible.
        Kind::Special if !v.is_empty() => {
            let words: Vec<String> = v.split(' ').map(config::quote_config_arg).collect();
            format!("{} {}", p.name, words.join(" "))
        }
        Kind::Special | Kind::Str => format!("{} {}", p.name, config::quote_config_arg(v)),
        _ => format!("{} {v}", p.name),
    })
}

/// The new text of a config file: each known parameter's first line rewritten in place
/// with the value in force (later repeats dropped), comments and anything else kept, and
/// parameters that differ from their default but were not in the file appended after the
/// signature line.
pub fn rewrite_config_text(old: &str, cfg: &Config) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut written = std::collections::HashSet::new();
    let mut has_signature = false;
    for line in old.lines() {
        let trimmed = line.trim();
        if trimmed == REWRITE_SIGNATURE {
            has_signature = true;
        }
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            let words = config::split_config_line(trimmed).unwrap_or_default();
            if let Some(p) = words.first().and_then(|name| config::param(name)) {
                if written.insert(p.name) {
                    lines.extend(config_line(p, cfg));
                }
                continue;
            }
        }
        // `lines` drops one `\r` before a `\n`, none at the end of a last line without
        // `\n`: drop them all, or a second rewrite would change the file again.
        lines.push(line.trim_end_matches('\r').to_string());
    }
    let mut appended = config::PARAMS
        .iter()
        .filter(|p| !written.contains(p.name) && cfg.get(p.name) != p.default)
        .peekable();
    if appended.peek().is_some() && !has_signature {
        lines.push(REWRITE_SIGNATURE.to_string());
    }
    lines.extend(appended.filter_map(|p| config_line(p, cfg)));
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// `CONFIG HELP`
fn config_help(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    help_reply(
        &mut cx.out,
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Keyspace-wide commands

/// `DBSIZE`: the number of keys in the selected database. O(shards).
fn dbsize(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let db = cx.db();
    let mut n = 0;
    for i in 0..SHARDS {
        n += cx.shard_at(db, i)?.len();
    }
    cx.out.int(n as i64);
    Ok(())
}

/// Below this many keys, freeing in the background costs more than it saves (Redis's
/// `LAZYFREE_THRESHOLD`).
pub(crate) const LAZYFREE_THRESHOLD: usize = 64;

/// Something dropped on the lazy-free thread, and how many objects it counts for.
type Garbage = (Box<dyn Send>, u64);

/// Drops `garbage` (worth `objects` in INFO's `lazyfree_pending_objects` /
/// `lazyfreed_objects`) on a long-lived background thread, so that freeing a big value
/// (UNLINK) does not hold its shard's lock; drops it right here if that thread cannot be
/// started.
pub(crate) fn free_lazily<T: Send + 'static>(garbage: T, objects: u64) {
    static QUEUE: std::sync::OnceLock<Option<std::sync::mpsc::Sender<Garbage>>> =
        std::sync::OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Garbage>();
        std::thread::Builder::new()
            .name("kiln-lazyfree".into())
            .spawn(move || {
                for (g, n) in rx {
                    drop(g);
                    LAZYFREE_PENDING.fetch_sub(n, Relaxed);
                    LAZYFREED.fetch_add(n, Relaxed);
                }
            })
            .ok()
            .map(|_| tx)
    });
    if let Some(tx) = queue {
        LAZYFREE_PENDING.fetch_add(objects, Relaxed);
        if let Err(e) = tx.send((Box::new(garbage), objects)) {
            // The thread is gone: the value comes back in the error and is dropped here.
            LAZYFREE_PENDING.fetch_sub(objects, Relaxed);
            drop(e);
        }
    }
}

/// The `[ASYNC | SYNC]` argument of FLUSHDB/FLUSHALL: whether to free in the background.
fn flush_async(cx: &Ctx, args: &[&[u8]]) -> Result<bool, CommandError> {
    match args {
        [_] => Ok(cx.server.config.read().get_bool("lazyfree-lazy-user-flush")),
        [_, a] if a.eq_ignore_ascii_case(b"async") => Ok(true),
        [_, a] if a.eq_ignore_ascii_case(b"sync") => Ok(false),
        _ => Err(E(SYNTAX)),
    }
}

/// Empties the listed databases (whose shards the key spec locked). Returns the number of
/// keys removed. With `lazy`, the keys are moved out and freed on another thread, so the
/// locks are held only for the moves.
fn flush_dbs(cx: &mut Ctx, dbs: std::ops::Range<usize>, lazy: bool) -> Result<usize, CommandError> {
    let mut removed = 0;
    let mut garbage: Vec<Shard> = Vec::new();
    for db in dbs {
        for idx in 0..SHARDS {
            let sh = cx.shard_at(db, idx)?;
            if sh.is_empty() {
                continue;
            }
            removed += sh.len();
            if lazy {
                garbage.push(sh.take());
            } else {
                sh.clear();
            }
        }
    }
    if lazy && removed > LAZYFREE_THRESHOLD {
        LAZYFREE_PENDING.fetch_add(removed as u64, Relaxed);
        let spawned = std::thread::Builder::new()
            .name("kiln-lazyfree".into())
            .spawn(move || {
                drop(garbage);
                LAZYFREE_PENDING.fetch_sub(removed as u64, Relaxed);
                LAZYFREED.fetch_add(removed as u64, Relaxed);
            });
        if spawned.is_err() {
            // No thread to spare: the closure (and the garbage) was dropped right here.
            LAZYFREE_PENDING.fetch_sub(removed as u64, Relaxed);
        }
    }
    Ok(removed)
}

/// `FLUSHDB [ASYNC | SYNC]`: removes every key of the selected database. O(N) keys (O(1)
/// with ASYNC).
fn flushdb(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let lazy = flush_async(cx, args)?;
    let db = cx.db();
    let removed = flush_dbs(cx, db..db + 1, lazy)?;
    cx.dirty(removed as u64);
    // Fed even when there was nothing to remove, as in Redis: a replica holding keys its
    // primary lacks is emptied too.
    cx.propagate(args);
    cx.out.ok();
    Ok(())
}

/// `FLUSHALL [ASYNC | SYNC]`: removes every key of every database. O(N) keys (O(1) with
/// ASYNC).
fn flushall(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let lazy = flush_async(cx, args)?;
    let n = cx.server.keyspace.dbs.len();
    let removed = flush_dbs(cx, 0..n, lazy)?;
    cx.dirty(removed as u64);
    // Fed even when every database was empty (see FLUSHDB).
    cx.propagate(args);
    cx.out.ok();
    Ok(())
}

/// A SWAPDB index: an integer in C `int` range (else `invalid`), then a valid database.
fn db_index(cx: &Ctx, arg: &[u8], invalid: &'static str) -> Result<usize, CommandError> {
    let v = parse_i64(arg)
        .filter(|v| i32::try_from(*v).is_ok())
        .ok_or(E(invalid))?;
    usize::try_from(v)
        .ok()
        .filter(|&v| v < cx.server.keyspace.dbs.len())
        .ok_or(E(DB_INDEX))
}

/// `SWAPDB index1 index2`: exchanges the contents of two databases; clients see the other
/// dataset at once. O(shards).
fn swapdb(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let a = db_index(cx, args[1], INVALID_FIRST_DB);
    let b = db_index(cx, args[2], INVALID_SECOND_DB);
    // Both are parsed before either range check, as Redis does.
    let (a, b) = match (a, b) {
        (Err(e), _) if e != E(DB_INDEX) => return Err(e),
        (_, Err(e)) if e != E(DB_INDEX) => return Err(e),
        (a, b) => (a?, b?),
    };
    if a != b {
        for idx in 0..SHARDS {
            let mut moving = cx.shard_at(a, idx)?.take();
            cx.shard_at(b, idx)?.swap_contents(&mut moving);
            cx.shard_at(a, idx)?.swap_contents(&mut moving);
        }
    }
    cx.dirty(1);
    cx.out.ok();
    Ok(())
}

/// `TIME`: the server's unix time as [seconds, microseconds]. O(1).
fn time(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let us = crate::clock::now_us();
    let mut b = itoa::Buffer::new();
    cx.out.array(2);
    cx.out.bulk(b.format(us / 1_000_000).as_bytes());
    cx.out.bulk(b.format(us % 1_000_000).as_bytes());
    Ok(())
}

/// `LASTSAVE`: unix time of the last successful save (start-up counts as one). O(1).
fn lastsave(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let ms = cx.server.rdb_state.last_save_ms.load(Relaxed);
    cx.out.int((ms / 1000) as i64);
    Ok(())
}

/// `SAVE`: writes the dataset to `dir`/`dbfilename` and replies when it is on disk. Unlike
/// Redis, other clients keep being served meanwhile (the snapshot is point-in-time). O(N).
fn save(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    match crate::persist::save(&cx.server.arc()) {
        Ok(()) => {
            cx.out.ok();
            Ok(())
        }
        Err(crate::persist::SaveError::Busy) => {
            Err(CommandError::err("Background save already in progress"))
        }
        Err(crate::persist::SaveError::Io(e)) => {
            tracing::warn!("Failed opening the RDB file for saving: {e}");
            Err(E(crate::error::ERR_PLAIN))
        }
    }
}

/// `BGSAVE [SCHEDULE]`: takes a point-in-time snapshot now and writes it in the
/// background. O(1) to start.
fn bgsave(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let schedule = match args.get(1) {
        None => false,
        Some(a) if a.eq_ignore_ascii_case(b"schedule") && args.len() == 2 => true,
        Some(_) => return Err(E(SYNTAX)),
    };
    let server = cx.server.arc();
    // Inside EXEC the transaction holds shard locks the snapshot point needs: schedule it
    // (as Redis does inside EXEC), the cron starts it right after.
    if server.snapshot.in_progress.load(Relaxed) || cx.in_exec() {
        if schedule || cx.in_exec() {
            server.rdb_state.scheduled.store(true, Relaxed);
            cx.out.simple("Background saving scheduled");
            return Ok(());
        }
        return Err(CommandError::err("Background save already in progress"));
    }
    match crate::persist::bgsave(&server) {
        Ok(()) => {
            cx.out.simple("Background saving started");
            Ok(())
        }
        Err(_) if schedule => {
            server.rdb_state.scheduled.store(true, Relaxed);
            cx.out.simple("Background saving scheduled");
            Ok(())
        }
        Err(_) => Err(CommandError::err("Background save already in progress")),
    }
}

/// `SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]`: stops the server; the client gets no
/// reply, its connection just closes. O(1) (nothing to save yet).
fn shutdown(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (mut save, mut nosave, mut abort, mut other) = (false, false, false, false);
    for a in &args[1..] {
        let a = a.to_ascii_lowercase();
        match &a[..] {
            b"save" => save = true,
            b"nosave" => nosave = true,
            b"now" | b"force" => other = true,
            b"abort" => abort = true,
            _ => return Err(E(SYNTAX)),
        }
    }
    if (save && nosave) || (abort && (save || nosave || other)) {
        return Err(E(SYNTAX));
    }
    if abort {
        // A shutdown starts and completes within this command: none is ever pending.
        return Err(E(NO_SHUTDOWN_IN_PROGRESS));
    }
    let force = args[1..].iter().any(|a| a.eq_ignore_ascii_case(b"force"));
    tracing::warn!("User requested shutdown...");
    let server = cx.server.arc();
    let st = &server.rdb_state;
    if nosave {
        st.nosave_on_exit.store(true, Relaxed);
    } else {
        st.force_save_on_exit.store(save, Relaxed);
        // Save now, so a failed save keeps the server up (unless FORCE) as in Redis.
        if !crate::persist::save_on_exit(&server) && !force {
            st.force_save_on_exit.store(false, Relaxed);
            return Err(CommandError::err("Errors trying to SHUTDOWN. Check logs."));
        }
        st.nosave_on_exit.store(true, Relaxed);
    }
    cx.server.request_shutdown();
    cx.client.close_after_reply = true;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// DEBUG

/// `DEBUG <subcommand> [arg ...]`: OBJECT, DIGEST, DIGEST-VALUE, POPULATE, SLEEP,
/// SET-ACTIVE-EXPIRE, HELP. Refused unless `enable-debug-command` allows this client.
fn debug(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if !enabled_for(cx, "enable-debug-command") {
        return Err(E(DEBUG_NOT_ALLOWED));
    }
    let sub = args[1].to_ascii_lowercase();
    match (&sub[..], args.len()) {
        (b"help", 2) => debug_help(cx),
        (b"object", 3) => debug_object(cx, args[2]),
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
    }
    let path = crate::persist::rdb_path(&server);
    let opts = crate::rdb::LoadOptions {
        replace_existing: merge,
        ..crate::rdb::LoadOptions::default()
    };
    let loaded = std::fs::File::open(&path)
        .map_err(|e| crate::rdb::RdbError::io(0, &e))
        .and_then(|f| {
            crate::rdb::load_held(&server, cx.lock_set(), std::io::BufReader::new(f), opts)
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

/// `DEBUG HELP`
fn debug_help(cx: &mut Ctx) -> CmdResult {
    help_reply(
        &mut cx.out,
        "DEBUG",
        &[
            "DIGEST",
            "    Output a hex signature representing the current DB content.",
            "DIGEST-VALUE <key> [<key> ...]",
            "    Output a hex signature of the values of all the specified keys.",
            "OBJECT <key>",
            "    Show low level info about `key` and associated value.",
            "PANIC",
            "    Crash the server on purpose: a crash report, then the process aborts.",
            "POPULATE <count> [<prefix>] [<size>]",
            "    Create <count> string keys named <prefix>:<num> (prefix 'key' by default)",
            "    holding value:<num>, zero-padded or cut to <size> bytes when given.",
            "    Existing keys are left alone.",
            "RELOAD [MERGE] [NOFLUSH] [NOSAVE]",
            "    Save the dataset to the RDB file, empty it and load the file back.",
            "SET-ACTIVE-EXPIRE <0|1>",
            "    0 stops deleting expired keys in the background (they still expire when",
            "    accessed); 1 restores the default.",
            "SLEEP <seconds>",
            "    Block the connection's worker thread for <seconds>. Decimals allowed.",
        ],
    );
    Ok(())
}

/// Bytes Redis's RDB encoding uses for a length.
fn rdb_len_size(n: usize) -> usize {
    match n {
        0..=63 => 1,
        64..=16383 => 2,
        _ if n as u64 <= u64::from(u32::MAX) => 5,
        _ => 9,
    }
}

/// Bytes of the RDB integer encoding of `v`, if it has one (8, 16 or 32 bits).
fn rdb_int_size(v: i64) -> Option<usize> {
    if i8::try_from(v).is_ok() {
        Some(2)
    } else if i16::try_from(v).is_ok() {
        Some(3)
    } else if i32::try_from(v).is_ok() {
        Some(5)
    } else {
        None
    }
}

/// The RDB-serialized size of a string value (DEBUG OBJECT's `serializedlength`): integer
/// encodings as Redis picks them, else length prefix plus bytes. Redis LZF-compresses
/// strings over 20 bytes when `rdbcompression` is on; that is not modelled, so such
/// strings report their uncompressed size.
fn serialized_len(s: &[u8], int_encoded: bool) -> usize {
    if int_encoded || s.len() <= 11 {
        if let Some(n) = parse_i64(s).and_then(rdb_int_size) {
            return n;
        }
    }
    rdb_len_size(s.len()) + s.len()
}

/// Bytes of one listpack entry holding `s` (encoding header + data + back-length), as
/// Redis lays it out: integer-looking strings take the smallest integer encoding.
fn listpack_entry_len(s: &[u8]) -> usize {
    let body = match parse_i64(s) {
        Some(0..=127) => 1,
        Some(-4096..=4095) => 2,
        Some(v) if i16::try_from(v).is_ok() => 3,
        Some(-8_388_608..=8_388_607) => 4,
        Some(v) if i32::try_from(v).is_ok() => 5,
        Some(_) => 9,
        None if s.len() < 64 => 1 + s.len(),
        None if s.len() < 4096 => 2 + s.len(),
        None => 5 + s.len(),
    };
    // The back-length stores `body` in 7-bit groups.
    let back = match body {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        2_097_152..=268_435_455 => 4,
        _ => 5,
    };
    body + back
}

/// Bytes of an empty listpack: 4-byte total size, 2-byte count, end marker.
const LISTPACK_EMPTY: usize = 7;

/// How Redis 7.0 writes a sorted-set score into a listpack: integral values of moderate
/// size (under 2^52) as integers, the rest like `%.17g`.
fn listpack_score(score: f64) -> String {
    if score.is_finite()
        && score != 0.0
        && score.fract() == 0.0
        && score.abs() < 4_503_599_627_370_496.0
    {
        (score as i64).to_string()
    } else {
        crate::util::fmt_g17(score)
    }
}

/// A list's quicklist layout as Redis would build it by appending the elements in order:
/// (node count, total listpack bytes), nodes bounded by `list-max-listpack-size` (`fill`:
/// negative = a byte limit of 4 KiB << (-fill - 1), positive = an element count, still
/// capped at 8 KiB). Each node's listpack is serialized on its own.
fn quicklist_nodes(l: &crate::storage::List, fill: i64) -> Vec<usize> {
    const SAFETY_LIMIT: usize = 8192;
    let fill = fill.clamp(-5, (1 << 15) - 1);
    let mut nodes = Vec::new();
    let (mut sz, mut count) = (LISTPACK_EMPTY, 0i64);
    for e in l.iter() {
        // Redis sizes the candidate from the raw length plus worst-case headers.
        let overhead = if e.len() < 254 { 1 } else { 5 }
            + match e.len() {
                0..=63 => 1,
                64..=16_383 => 2,
                _ => 5,
            };
        let new_sz = sz + e.len() + overhead;
        let fits = if fill < 0 {
            new_sz <= 4096 << (-fill - 1)
        } else {
            new_sz <= SAFETY_LIMIT && count < fill
        };
        if count > 0 && !fits {
            nodes.push(sz);
            (sz, count) = (LISTPACK_EMPTY, 0);
        }
        sz += listpack_entry_len(&e);
        count += 1;
    }
    if count > 0 {
        nodes.push(sz);
    }
    nodes
}

/// RDB bytes of a blob (a listpack or intset) saved as a raw string.
fn blob_len(n: usize) -> usize {
    rdb_len_size(n) + n
}

/// The RDB-serialized size of a collection (DEBUG OBJECT's `serializedlength`): compact
/// encodings are saved as one blob, the others element by element. Like strings, blobs
/// are counted uncompressed (exact when `rdbcompression` is off), and lists are assumed to
/// have the node layout that appending their elements in order gives.
fn collection_serialized_len(v: &Value, list_fill: i64) -> usize {
    match v {
        Value::Str(s) => serialized_len(s, false),
        Value::List(l) => {
            let nodes = quicklist_nodes(l, list_fill);
            // Node count, then per node its container kind and its listpack.
            rdb_len_size(nodes.len()) + nodes.iter().map(|&n| 1 + blob_len(n)).sum::<usize>()
        }
        Value::Hash(h) if h.encoding() == "listpack" => blob_len(
            LISTPACK_EMPTY
                + h.iter()
                    .map(|(f, v)| listpack_entry_len(f) + listpack_entry_len(v))
                    .sum::<usize>(),
        ),
        Value::Hash(h) => {
            rdb_len_size(h.len())
                + h.iter()
                    .map(|(f, v)| serialized_len(f, false) + serialized_len(v, false))
                    .sum::<usize>()
        }
        Value::Set(s) if s.encoding() == "intset" => {
            // 8-byte header, then every member at the width the widest one needs.
            let width = s
                .iter()
                .filter_map(|m| parse_i64(&m))
                .map(|v| {
                    if i16::try_from(v).is_ok() {
                        2
                    } else if i32::try_from(v).is_ok() {
                        4
                    } else {
                        8
                    }
                })
                .max()
                .unwrap_or(2);
            blob_len(8 + width * s.len())
        }
        Value::Set(s) => {
            rdb_len_size(s.len()) + s.iter().map(|m| serialized_len(&m, false)).sum::<usize>()
        }
        Value::ZSet(z) if z.encoding() == "listpack" => blob_len(
            LISTPACK_EMPTY
                + z.iter()
                    .map(|(m, score)| {
                        listpack_entry_len(m) + listpack_entry_len(listpack_score(score).as_bytes())
                    })
                    .sum::<usize>(),
        ),
        // Skiplist members are saved with their scores as 8-byte binary doubles.
        Value::ZSet(z) => {
            rdb_len_size(z.len())
                + z.iter()
                    .map(|(m, _)| serialized_len(m, false) + 8)
                    .sum::<usize>()
        }
        // Approximated by the in-memory size until streams model their RDB layout.
        Value::Stream(s) => s.heap_size(),
    }
}

/// `DEBUG OBJECT key`: Redis's low-level description of a value, even a logically expired
/// one. O(1).
fn debug_object(cx: &mut Ctx, key: &[u8]) -> CmdResult {
    let shared_ints = {
        let c = cx.server.config.read();
        let policy = c.get("maxmemory-policy");
        c.get_u64("maxmemory") == 0 || !(policy.ends_with("-lru") || policy.ends_with("-lfu"))
    };
    let (list_fill, list_compress) = {
        let c = cx.server.config.read();
        (
            c.get_i64("list-max-listpack-size"),
            c.get_u64("list-compress-depth"),
        )
    };
    let now = cx.now;
    let (sh, h, out) = cx.shard_out(key)?;
    let e = sh.peek(h, key).ok_or(E(NO_SUCH_KEY))?;
    let encoding = e.encoding();
    let value: &[u8] = e.as_str().unwrap_or_default();
    // Redis shares the objects of the integers 0..9999, whose refcount reads as INT_MAX.
    let shared = shared_ints
        && encoding == "int"
        && e.meta() & META_UNSHARED == 0
        && parse_i64(value).is_some_and(|v| (0..10_000).contains(&v));
    let serialized = match e.value() {
        ValueRef::Str(s) => serialized_len(s, encoding == "int"),
        ValueRef::Other(Value::Str(s)) => serialized_len(s, encoding == "int"),
        ValueRef::Other(v) => collection_serialized_len(v, list_fill),
    };
    let mut text = format!(
        "Value at:{:p} refcount:{} encoding:{encoding} serializedlength:{serialized} lru:{} lru_seconds_idle:{}",
        e as *const Entry,
        if shared { i32::MAX } else { 1 },
        e.lru(),
        crate::clock::idle_seconds(e.lru(), now),
    );
    // Lists add their quicklist's shape (modelled as in `quicklist_nodes`).
    if let ValueRef::Other(Value::List(l)) = e.value() {
        let nodes = quicklist_nodes(l, list_fill);
        let _ = write!(
            text,
            " ql_nodes:{} ql_avg_node:{:.2} ql_listpack_max:{} ql_compressed:{} ql_uncompressed_size:{}",
            nodes.len(),
            l.len() as f64 / nodes.len().max(1) as f64,
            list_fill.clamp(-5, (1 << 15) - 1),
            u8::from(list_compress != 0),
            nodes.iter().sum::<usize>(),
        );
    }
    out.simple(&text);
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

/// Client names may not contain spaces or special characters (CLIENT SETNAME, HELLO).
pub(super) fn validate_client_name(name: &[u8]) -> CmdResult {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(E(CLIENT_NAME));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewritten_config_quotes_words_of_multi_word_values() {
        // Caught by the config_file fuzz target: `bind "\"x"` was rewritten as `bind "x`, which does not load.
        let text = "bind \"\\\"x\" 'a b'\nreplicaof \"h'\" 6379\nsave 60 1\n";
        let mut cfg = Config::default();
        cfg.load_text(text).unwrap();
        let rewritten = rewrite_config_text(text, &cfg);
        assert_eq!(
            rewritten,
            "bind \"\\\"x\" a b\nreplicaof \"h'\" 6379\nsave 60 1\n"
        );
        let mut again = Config::default();
        again.load_text(&rewritten).unwrap();
        assert_eq!(again.matching(b"*"), cfg.matching(b"*"));
    }

    #[test]
    fn rewriting_a_rewritten_config_changes_nothing() {
        // Found by fuzzing: a last line "#\r" without a newline became "#\r\n", then "#\n".
        let cfg = Config::default();
        let once = rewrite_config_text("port 6379\r\n#\r", &cfg);
        assert_eq!(once, "port 6379\n#\n");
        assert_eq!(rewrite_config_text(&once, &cfg), once);
        let once = rewrite_config_text("# a\r\r\n# b\r\r\r", &cfg);
        assert_eq!(once, "# a\n# b\n");
        assert_eq!(rewrite_config_text(&once, &cfg), once);
    }

    #[test]
    fn info_sections_select_like_redis() {
        let names = |m: u32| -> Vec<&str> {
            SECTIONS
                .iter()
                .enumerate()
                .filter(|(i, _)| m & (1 << i) != 0)
                .map(|(_, s)| s.0)
                .collect()
        };
        let default = names(info_selection(&[]));
        assert!(!default.contains(&"commandstats") && default.contains(&"keyspace"));
        assert_eq!(names(info_selection(&[b"default"])), default);
        assert_eq!(names(info_selection(&[b"ALL"])).len(), SECTIONS.len());
        assert_eq!(
            names(info_selection(&[b"cpu", b"Server", b"nosuch"])),
            ["server", "cpu"]
        );
        assert_eq!(names(info_selection(&[b"nosuch"])), Vec::<&str>::new());
        let mut with_stats = default.clone();
        with_stats.insert(8, "commandstats");
        assert_eq!(
            names(info_selection(&[b"default", b"commandstats"])),
            with_stats
        );
    }

    #[test]
    fn human_sizes_match_redis() {
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(1024), "1.00K");
        assert_eq!(human(1188152), "1.13M");
        assert_eq!(human(25274793984), "23.54G");
    }

    #[test]
    fn serialized_lengths_match_redis() {
        // (value, int encoded, what Redis 7.0 reports)
        for (v, int, n) in [
            (&b"1"[..], true, 2),
            (b"200", true, 3),
            (b"-200", true, 3),
            (b"100000", true, 5),
            (b"3000000000", true, 11),
            (b"-9223372036854775808", true, 21),
            (b"12345678901", true, 12),
            (b"hello", false, 6),
            (b"0123", false, 5),
            (b"", false, 1),
            (b" 1", false, 3),
            (b"aaaaaaaaaaaaaaaaaaaa", false, 21),
        ] {
            assert_eq!(
                serialized_len(v, int),
                n,
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        assert_eq!(rdb_len_size(16383), 2);
        assert_eq!(rdb_len_size(16384), 5);
    }

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

    #[test]
    fn config_rewrite_keeps_comments_and_appends_changes() {
        let mut cfg = Config::default();
        cfg.set("port", &["7000".into()]).unwrap();
        cfg.set("maxmemory", &["1mb".into()]).unwrap();
        cfg.set("save", &["".into()]).unwrap();
        cfg.set("requirepass", &["a b".into()]).unwrap();
        let old = "# my server\nport 6000\n\nport 6001\nslave-read-only yes\nreplicaof no one\n";
        let text = rewrite_config_text(old, &cfg);
        assert_eq!(
            text,
            "# my server\nport 7000\n\nreplica-read-only yes\n# Generated by CONFIG REWRITE\n\
             requirepass \"a b\"\nsave \"\"\nmaxmemory 1048576\n"
        );
        // What was written reads back to the same configuration.
        let mut back = Config::default();
        back.load_text(&text).unwrap();
        for p in config::PARAMS {
            assert_eq!(back.get(p.name), cfg.get(p.name), "{}", p.name);
        }
        // A second rewrite changes nothing.
        assert_eq!(rewrite_config_text(&text, &cfg), text);
    }

    #[test]
    fn only_loopback_peers_are_local() {
        assert!(is_local("127.0.0.1:5000"));
        assert!(is_local("[::1]:5000"));
        assert!(!is_local("10.0.0.1:5000"));
        assert!(!is_local("127.0.0.2:5000"));
        assert!(!is_local(""));
    }
}
