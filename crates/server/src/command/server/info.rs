//! `INFO`: assembled from the server's counters on demand, so nothing here runs on the hot
//! path of other commands.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use super::lazyfree::{LAZYFREED, LAZYFREE_PENDING};
use crate::command::flags::*;
use crate::command::{CommandSpec, Ctx, Keys};
use crate::error::CmdResult;
use crate::server::Server;
use crate::storage::SHARDS;

/// The `INFO` entry of the family's table.
pub(super) const INFO: CommandSpec =
    CommandSpec::new("info", -1, LOADING | STALE, Keys::WalkAll, info)
        .group("server")
        .summary("Get information and statistics about the server")
        .complexity("O(1)")
        .syntax("[section [section ...]]");

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
    ("latencystats", "Latencystats", info_latencystats),
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
    let text = sections_text(cx, info_selection(&args[1..]));
    cx.out.verbatim(text.as_bytes());
    Ok(())
}

/// The text of the sections in `mask`, as INFO prints them.
fn sections_text(cx: &mut Ctx, mask: u32) -> String {
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
    text
}

/// `INFO everything` for a reader that is no client (the Prometheus exporter): the same
/// text INFO gives, computed by the same code, but counted nowhere (no `cmdstat_info`
/// call, no slow log entry, no MONITOR line). While a script past its time limit holds
/// the keyspace, the sections that walk the shards (memory, keyspace) are left out rather
/// than waited for.
pub(crate) fn everything(server: &Server) -> String {
    let handle = std::sync::Arc::new(crate::server::ClientHandle::new(
        u64::MAX,
        String::new(),
        String::new(),
        -1,
        crate::clock::now_ms(),
    ));
    let mut client = crate::client::Client::new(handle, false);
    let mut out = Vec::new();
    let mut cx = Ctx::new(server, &mut client, &mut out);
    cx.cmd_name = INFO.name;
    let mut mask = (1u32 << SECTIONS.len()) - 1;
    if cx.lock_for(&INFO, &[b"info"]).is_err() {
        cx.reach = 0..0;
        for name in ["memory", "keyspace"] {
            if let Some(i) = SECTIONS.iter().position(|s| s.0 == name) {
                mask &= !(1 << i);
            }
        }
    }
    let text = sections_text(&mut cx, mask);
    cx.unlock_all();
    cx.reach = 0..0;
    text
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
        (c.get_u64("hz"), server.process.port.load(Relaxed))
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
    field!(s, "run_id", "{}", server.process.run_id);
    field!(s, "tcp_port", "{port}");
    field!(s, "server_time_usec", "{}", crate::clock::now_us());
    field!(s, "uptime_in_seconds", "{uptime}");
    field!(s, "uptime_in_days", "{}", uptime / 86400);
    field!(s, "hz", "{}", server.hot.hz.load(Relaxed));
    field!(s, "configured_hz", "{hz}");
    field!(s, "lru_clock", "{}", crate::clock::lru_clock(cx.now));
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    field!(s, "executable", "{exe}");
    let conf = server
        .process
        .config_file
        .get()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    field!(s, "config_file", "{conf}");
    field!(s, "io_threads_active", "0");
}

/// Connection counts and the largest buffers among them.
pub(super) struct ClientSummary {
    pub connected: usize,
    max_query: u64,
    max_output: u64,
}

pub(super) fn client_summary(server: &Server) -> ClientSummary {
    let clients = server.clients.lock();
    let mut c = ClientSummary {
        connected: clients.len(),
        max_query: 0,
        max_output: 0,
    };
    for h in clients.values() {
        let (q, o) = (h.query_buf.load(Relaxed), h.output_buf.load(Relaxed));
        c.max_query = c.max_query.max(q);
        c.max_output = c.max_output.max(o);
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
    // Waiters still waiting: one that was served, unblocked or timed out counts no more at
    // once, as in Redis, though its task unregisters it a moment later.
    let blocked = server
        .blocked
        .by_id
        .lock()
        .values()
        .filter(|w| *w.state.lock() == crate::command::blocking::WaitState::Waiting)
        .count()
        + server.pause.waiting.load(Relaxed) as usize
        + server.repl.waiting.load(Relaxed) as usize;
    field!(s, "blocked_clients", "{}", blocked);
    field!(s, "tracking_clients", "{}", server.tracking.figures().0);
    field!(s, "clients_in_timeout_table", "{}", blocked);
}

/// Redis's `bytesToHuman`.
pub(super) fn human(n: u64) -> String {
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
pub(super) fn allocator_name() -> &'static str {
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

/// One database's share of the overhead: its key count and its tables' own bytes.
pub(super) struct DbOverhead {
    pub db: usize,
    pub keys: u64,
    /// The key tables' index and entry slots (Redis's `overhead.hashtable.main`).
    pub main: u64,
    /// The expires tables' buckets (Redis's `overhead.hashtable.expires`).
    pub expires: u64,
}

/// The memory figures INFO memory and MEMORY STATS both report, computed in one place.
/// Overhead is what Redis counts as overhead (memory at start-up, client buffers, script
/// caches, each database's tables); the dataset is the rest of what is allocated.
pub(super) struct MemoryFigures {
    pub used: u64,
    pub peak: u64,
    pub startup: u64,
    /// jemalloc's `stats.active` and `stats.resident`.
    pub active: u64,
    pub resident: u64,
    /// The process's resident set size.
    pub rss: u64,
    pub clients_normal: u64,
    /// Kiln does not measure these apart yet (the feed's backlog and the AOF buffer live
    /// in the feed; replica links are clients): reported as 0, as INFO always did.
    pub clients_slaves: u64,
    pub repl_backlog: u64,
    pub aof_buffer: u64,
    /// Cached EVAL scripts' bodies, and the function libraries' code.
    pub lua_caches: u64,
    pub functions_caches: u64,
    /// Databases that hold keys, in order.
    pub dbs: Vec<DbOverhead>,
    pub keys: u64,
    pub overhead: u64,
    pub dataset: u64,
}

impl MemoryFigures {
    /// Reads the allocator and walks every shard once (`Keys::WalkAll`: each locked on its
    /// own, briefly, except inside EXEC). O(databases x shards).
    pub fn read(cx: &mut Ctx) -> Self {
        let server = cx.server;
        let used = server.used_memory();
        let peak = server.metrics.mem_peak.load(Relaxed).max(used);
        let startup = server.metrics.mem_startup.load(Relaxed);
        let mut dbs = Vec::new();
        for db in 0..server.keyspace.dbs.len() {
            let mut d = DbOverhead {
                db,
                keys: 0,
                main: 0,
                expires: 0,
            };
            for idx in 0..SHARDS {
                if let Ok((k, (m, x))) = cx.visit(db, idx, |sh| (sh.len(), sh.table_memory())) {
                    d.keys += k as u64;
                    d.main += m as u64;
                    d.expires += x as u64;
                }
            }
            if d.keys > 0 {
                dbs.push(d);
            }
        }
        let lua_caches = server.scripts.memory();
        let functions_caches = crate::command::scripting::functions::library_codes(server)
            .iter()
            .map(|c| c.len() as u64)
            .sum();
        // What connections hold, as client eviction accounts it (`registry::MemTotals`).
        let clients_normal = server.clients.mem.normal();
        let clients_slaves = server.clients.mem.replicas();
        let tables: u64 = dbs.iter().map(|d| d.main + d.expires).sum();
        let overhead =
            startup + clients_normal + clients_slaves + lua_caches + functions_caches + tables;
        Self {
            used,
            peak,
            startup,
            active: tikv_jemalloc_ctl::stats::active::read().unwrap_or(0) as u64,
            resident: tikv_jemalloc_ctl::stats::resident::read().unwrap_or(0) as u64,
            rss: sys::rss_bytes(),
            clients_normal,
            clients_slaves,
            repl_backlog: 0,
            aof_buffer: 0,
            lua_caches,
            functions_caches,
            keys: dbs.iter().map(|d| d.keys).sum(),
            dbs,
            overhead,
            dataset: used.saturating_sub(overhead),
        }
    }

    /// Allocated bytes beyond those held at start-up.
    pub fn net(&self) -> u64 {
        self.used.saturating_sub(self.startup)
    }
}

fn info_memory(cx: &mut Ctx, s: &mut String) {
    let server = cx.server;
    let m = MemoryFigures::read(cx);
    let MemoryFigures {
        used,
        peak,
        startup,
        active,
        resident,
        rss,
        overhead,
        dataset,
        ..
    } = m;
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
        ratio(dataset * 100, m.net())
    );
    field!(s, "allocator_allocated", "{used}");
    field!(s, "allocator_active", "{active}");
    field!(s, "allocator_resident", "{resident}");
    field!(s, "total_system_memory", "{total_mem}");
    field!(s, "total_system_memory_human", "{}", human(total_mem));
    let lua = crate::command::scripting::lua_memory() as u64;
    let scripts = m.lua_caches;
    field!(s, "used_memory_lua", "{lua}");
    field!(s, "used_memory_lua_human", "{}", human(lua));
    field!(s, "used_memory_scripts", "{scripts}");
    field!(s, "used_memory_scripts_human", "{}", human(scripts));
    field!(s, "number_of_cached_scripts", "{}", server.scripts.count());
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
    field!(
        s,
        "mem_not_counted_for_evict",
        "{}",
        server.mem_not_counted_for_evict()
    );
    field!(s, "mem_replication_backlog", "{}", m.repl_backlog);
    field!(s, "mem_total_replication_buffers", "{}", m.repl_backlog);
    field!(s, "mem_clients_slaves", "{}", m.clients_slaves);
    field!(s, "mem_clients_normal", "{}", m.clients_normal);
    field!(s, "mem_cluster_links", "0");
    field!(s, "mem_aof_buffer", "{}", m.aof_buffer);
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
    let st = &server.metrics.stats;
    let (ops, in_kbps, out_kbps) = {
        let m = server.metrics.inst.lock();
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
    field!(s, "evicted_keys", "{}", st.sum(|t| &t.evicted_keys));
    let evicted_clients = cx.server.clients.mem.evicted.load(Relaxed);
    field!(s, "evicted_clients", "{evicted_clients}");
    let (total, current) = cx.server.memory.exceeded_ms(cx.now);
    field!(s, "total_eviction_exceeded_time", "{total}");
    field!(s, "current_eviction_exceeded_time", "{current}");
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
    field!(s, "migrate_cached_sockets", "{}", server.migrate.len());
    field!(s, "slave_expires_tracked_keys", "0");
    field!(s, "active_defrag_hits", "0");
    field!(s, "active_defrag_misses", "0");
    field!(s, "active_defrag_key_hits", "0");
    field!(s, "active_defrag_key_misses", "0");
    field!(s, "total_active_defrag_time", "0");
    field!(s, "current_active_defrag_time", "0");
    let (_, keys, items, prefixes) = server.tracking.figures();
    field!(s, "tracking_total_keys", "{keys}");
    field!(s, "tracking_total_items", "{items}");
    field!(s, "tracking_total_prefixes", "{prefixes}");
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
        let (calls, usec, rejected, failed) = server.metrics.stats.cmd_totals(id);
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

/// Per-command latency percentiles (`latency-tracking-info-percentiles`) from each
/// command's histogram, in µs with three decimals; empty with `latency-tracking no`.
fn info_latencystats(cx: &mut Ctx, s: &mut String) {
    let server = cx.server;
    let (on, percentiles) = {
        let c = server.config.read();
        (
            c.get_bool("latency-tracking"),
            crate::config::percentiles(c.get("latency-tracking-info-percentiles")),
        )
    };
    if !on {
        return;
    }
    for (id, name) in server.commands.names.iter().enumerate() {
        let Some(h) = server.metrics.stats.latency_histogram(id) else {
            continue;
        };
        let _ = write!(s, "latency_percentiles_usec_{name}:");
        for (j, p) in percentiles.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            let v = h.value_at_percentile(*p) as f64 / 1000.0;
            let _ = write!(s, "p{}={v:.3}", crate::config::format_percentile(*p));
        }
        s.push_str("\r\n");
    }
}

fn info_errorstats(cx: &mut Ctx, s: &mut String) {
    for (code, n) in cx.server.metrics.stats.errors.lock().iter() {
        let _ = write!(s, "errorstat_{code}:count={n}\r\n");
    }
}

fn info_cluster(cx: &mut Ctx, s: &mut String) {
    let on = if cx.server.cluster.is_some() {
        "1"
    } else {
        "0"
    };
    field!(s, "cluster_enabled", "{on}");
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
