//! Process-wide state shared by every connection and background job.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};

use crate::command::CommandTable;
use crate::config::Config;
pub use crate::registry::{ClientHandle, ClientInfo};
use crate::storage::Keyspace;

/// Everything shared across threads: the configuration, the keyspace and the command
/// table, then one field per subsystem, each owning its state.
pub struct Server {
    pub config: RwLock<Config>,
    /// Redis Cluster's state, in cluster mode (`cluster-enabled yes`) only.
    pub cluster: Option<crate::cluster::Cluster>,
    /// Mirrors of config values read on hot paths.
    pub hot: HotConfig,
    /// `maxmemory`: the memory gauge and eviction settings (see `maxmemory`).
    pub memory: crate::maxmemory::Memory,
    pub keyspace: Keyspace,
    pub commands: CommandTable,
    /// ACL users, their rules and the ACL log (see `acl`).
    pub acl: crate::acl::Acl,
    /// CLIENT PAUSE (see `pause`).
    pub pause: crate::pause::Pause,
    /// Client-side caching: tracked keys and tracking clients (see `tracking`).
    pub tracking: crate::tracking::Tracking,
    /// The process: identity, start time, bound port, threads, shutdown.
    pub process: Process,
    /// Counters and samples INFO reports.
    pub metrics: Metrics,
    /// Every connection's shared handle (see `registry`).
    pub clients: crate::registry::Registry,
    /// The TLS configuration new connections on `tls-port` get (see `tls`).
    pub tls: crate::tls::Tls,
    next_client_id: AtomicU64,
    /// Blocked clients by waiter id (see `command::blocking`).
    pub blocked: crate::command::blocking::Registry,
    /// Number of WATCH registrations alive: when 0, writes skip the watch bookkeeping.
    pub watching: std::sync::atomic::AtomicUsize,
    /// DEBUG SET-ACTIVE-EXPIRE.
    pub active_expire: AtomicBool,
    /// DEBUG SET-SKIP-CHECKSUM-VALIDATION: RESTORE does not check payloads' CRC.
    pub skip_checksum: AtomicBool,
    /// DEBUG PAUSE-CRON: the cron does nothing while set.
    pub cron_paused: AtomicBool,
    /// MIGRATE's cached connections to its targets (see `migrate`).
    pub migrate: crate::migrate::Cache,
    /// Pub/Sub subscriptions.
    pub pubsub: crate::pubsub::PubSub,
    /// Every change to the dataset, for the AOF and replicas (see `feed`).
    pub feed: crate::feed::Feed,
    /// Replication state: role, ids, replicas, the primary link (see `repl`).
    pub repl: crate::repl::Repl,
    /// The snapshot in progress, if any (see `snapshot`).
    pub snapshot: crate::snapshot::Status,
    /// The append-only file (see `aof`).
    pub aof: crate::aof::Aof,
    /// RDB save and load bookkeeping (see `rdb`, `persist`).
    pub rdb_state: crate::rdb::RdbState,
    /// The Lua script cache and the running script's controls (see `command::scripting`).
    pub scripts: crate::command::scripting::Scripts,
    /// SLOWLOG's entries (see `slowlog`).
    pub slowlog: crate::slowlog::SlowLog,
    /// The latency monitor's events (see `latency`).
    pub latency: crate::latency::Latency,
    /// The clients in MONITOR mode (see `monitor`).
    pub monitors: crate::monitor::Monitors,
    /// This server's own `Arc` (set by [`Server::new_shared`]), for work that outlives a
    /// command (a background save).
    me: std::sync::OnceLock<std::sync::Weak<Server>>,
}

/// The process: who it is, since when, where it listens, and its shutdown signal.
pub struct Process {
    pub run_id: String,
    pub started: Instant,
    /// Unix ms when the server started.
    pub started_ms: u64,
    /// The port actually bound (differs from config when `port 0`).
    pub port: AtomicU16,
    /// Number of worker threads serving connections.
    pub threads: usize,
    /// Absolute path of the config file the server was started with (CONFIG REWRITE,
    /// INFO `config_file`); unset without one.
    pub config_file: std::sync::OnceLock<std::path::PathBuf>,
    /// CONFIG SET `port` / `bind`: rebinds the plain TCP listeners for a new
    /// configuration, or says why it could not (installed by `net::serve`; without it, as
    /// in a server that does not listen, nothing is rebound).
    #[allow(clippy::type_complexity)]
    pub rebind: std::sync::OnceLock<Box<dyn Fn(&Config) -> Result<(), String> + Send + Sync>>,
    /// Set by SHUTDOWN or a signal; the listener exits and workers stop.
    pub shutdown: tokio::sync::Notify,
    pub shutting_down: AtomicBool,
}

/// What INFO's stats and memory sections report.
pub struct Metrics {
    /// Per-thread counters.
    pub stats: Stats,
    /// Instantaneous ops/sec samples, computed by the cron.
    pub inst: Mutex<InstMetrics>,
    /// Highest `used_memory` seen (INFO `used_memory_peak`).
    pub mem_peak: AtomicU64,
    /// `used_memory` right after start (INFO `used_memory_startup`).
    pub mem_startup: AtomicU64,
}

/// Config values copied into atomics so hot paths never take the config lock.
#[derive(Default)]
pub struct HotConfig {
    pub proto_max_bulk_len: AtomicU64,
    pub client_query_buffer_limit: AtomicU64,
    /// `client-output-buffer-limit normal`.
    pub obuf_normal: ClassLimits,
    pub maxclients: AtomicU64,
    pub hz: AtomicU32,
    pub timeout: AtomicU64,
    /// `notify-keyspace-events` as flags (see `notify`).
    pub notify: AtomicU32,
    /// Compact-encoding thresholds of the collection types (Redis's *-max-listpack-*).
    pub encoding: EncodingLimits,
    /// `busy-reply-threshold` (alias `lua-time-limit`), in milliseconds.
    pub busy_reply_ms: AtomicU64,
    /// `latency-tracking`: per-command latency histograms (INFO latencystats).
    pub latency_tracking: AtomicBool,
    /// The shortest command (µs) that MONITOR, the slow log or the latency monitor wants:
    /// 0 while a client monitors, `u64::MAX` when all are off (see
    /// [`Server::observers_changed`]).
    pub observe_floor: AtomicU64,
}

/// One class of `client-output-buffer-limit`, readable without a lock.
#[derive(Default)]
pub struct ClassLimits {
    hard: AtomicU64,
    soft: AtomicU64,
    soft_secs: AtomicU64,
}

impl ClassLimits {
    pub fn get(&self) -> crate::pubsub::Limits {
        crate::pubsub::Limits {
            hard: self.hard.load(Relaxed),
            soft: self.soft.load(Relaxed),
            soft_secs: self.soft_secs.load(Relaxed),
        }
    }

    fn set(&self, l: crate::pubsub::Limits) {
        self.hard.store(l.hard, Relaxed);
        self.soft.store(l.soft, Relaxed);
        self.soft_secs.store(l.soft_secs, Relaxed);
    }
}

/// When a collection converts from its compact encoding to the full one; read by the
/// collection families at every write, as Redis does.
#[derive(Default)]
pub struct EncodingLimits {
    pub list_max_listpack_size: std::sync::atomic::AtomicI64,
    pub hash_max_listpack_entries: AtomicU64,
    pub hash_max_listpack_value: AtomicU64,
    pub set_max_intset_entries: AtomicU64,
    pub zset_max_listpack_entries: AtomicU64,
    pub zset_max_listpack_value: AtomicU64,
    pub stream_node_max_entries: AtomicU64,
    pub stream_node_max_bytes: AtomicU64,
}

impl Server {
    pub fn new(config: Config, threads: usize) -> Self {
        let databases = config.get_u64("databases").max(1) as usize;
        let cluster = crate::cluster::from_config(&config);
        let keyspace = Keyspace::with_slots(databases, cluster.is_some());
        let scripts = crate::command::scripting::Scripts::new(keyspace.gate.busy_flag());
        let commands = CommandTable::build();
        let acl = crate::acl::Acl::new(crate::command::acl::catalog(&commands));
        acl.set_default_password(config.get("requirepass").as_bytes());
        let s = Self {
            keyspace,
            scripts,
            commands,
            acl,
            pause: Default::default(),
            tracking: Default::default(),
            process: Process {
                run_id: random_hex(40),
                started: crate::clock::instant(),
                started_ms: crate::clock::now_ms(),
                port: AtomicU16::new(0),
                threads,
                config_file: std::sync::OnceLock::new(),
                rebind: std::sync::OnceLock::new(),
                shutdown: tokio::sync::Notify::new(),
                shutting_down: AtomicBool::new(false),
            },
            metrics: Metrics {
                stats: Stats::new(threads + 2),
                inst: Mutex::new(InstMetrics::default()),
                mem_peak: AtomicU64::new(0),
                mem_startup: AtomicU64::new(0),
            },
            clients: Default::default(),
            tls: Default::default(),
            next_client_id: AtomicU64::new(1),
            blocked: crate::command::blocking::Registry::new(),
            watching: std::sync::atomic::AtomicUsize::new(0),
            active_expire: AtomicBool::new(true),
            skip_checksum: AtomicBool::new(false),
            cron_paused: AtomicBool::new(false),
            migrate: Default::default(),
            hot: HotConfig::default(),
            memory: crate::maxmemory::Memory::default(),
            pubsub: crate::pubsub::PubSub::new(),
            feed: crate::feed::Feed::new(),
            repl: crate::repl::Repl::new(),
            snapshot: crate::snapshot::Status::default(),
            aof: crate::aof::Aof::new(),
            rdb_state: crate::rdb::RdbState::new(crate::clock::now_ms()),
            slowlog: Default::default(),
            latency: Default::default(),
            monitors: Default::default(),
            me: std::sync::OnceLock::new(),
            cluster,
            config: RwLock::new(config),
        };
        s.refresh_hot_config();
        s.metrics.mem_startup.store(s.used_memory(), Relaxed);
        s
    }

    /// A server shared by `Arc`, which knows its own `Arc` ([`Server::arc`]).
    pub fn new_shared(config: Config, threads: usize) -> Arc<Self> {
        let s = Arc::new(Self::new(config, threads));
        let _ = s.me.set(Arc::downgrade(&s));
        s
    }

    /// This server's `Arc`. Panics for a server not made by [`Server::new_shared`].
    pub fn arc(&self) -> Arc<Server> {
        self.me
            .get()
            .and_then(std::sync::Weak::upgrade)
            .expect("server made by Server::new_shared")
    }

    /// Bytes the allocator has handed out (INFO `used_memory`, jemalloc's `stats.allocated`),
    /// read after refreshing jemalloc's statistics; also raises the recorded peak.
    pub fn used_memory(&self) -> u64 {
        // jemalloc caches its statistics until the epoch advances.
        let _ = tikv_jemalloc_ctl::epoch::advance();
        let used = tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0) as u64;
        self.metrics.mem_peak.fetch_max(used, Relaxed);
        self.memory.refresh(used);
        used
    }

    /// Whether shards delete keys whose deadline passed: on a primary whose writes are not
    /// paused. A replica only hides them (its primary's DELs remove them), and so does a
    /// primary while CLIENT PAUSE holds writes back, as Redis does.
    pub fn refresh_expiry_mode(&self) {
        let paused = self.pause.writes_paused(crate::clock::now_ms());
        self.keyspace
            .set_delete_expired(!self.repl.is_replica() && !paused);
    }

    /// Copies hot config values into their atomics (after load and every CONFIG SET).
    pub fn refresh_hot_config(&self) {
        let c = self.config.read();
        self.hot
            .proto_max_bulk_len
            .store(c.get_u64("proto-max-bulk-len"), Relaxed);
        self.hot
            .client_query_buffer_limit
            .store(c.get_u64("client-query-buffer-limit"), Relaxed);
        self.hot.maxclients.store(c.get_u64("maxclients"), Relaxed);
        self.tracking
            .max_keys
            .store(c.get_u64("tracking-table-max-keys"), Relaxed);
        self.acl
            .log_max_len
            .store(c.get_u64("acllog-max-len"), Relaxed);
        self.acl.trim_log();
        self.acl
            .pubsub_all
            .store(c.get("acl-pubsub-default") == "allchannels", Relaxed);
        if let Some(cl) = &self.cluster {
            let st = &cl.settings;
            st.endpoint.store(
                match c.get("cluster-preferred-endpoint-type") {
                    "hostname" => 1,
                    "unknown-endpoint" => 2,
                    _ => 0,
                },
                Relaxed,
            );
            st.allow_reads_when_down
                .store(c.get_bool("cluster-allow-reads-when-down"), Relaxed);
            st.allow_pubsubshard_when_down
                .store(c.get_bool("cluster-allow-pubsubshard-when-down"), Relaxed);
            st.require_full_coverage
                .store(c.get_bool("cluster-require-full-coverage"), Relaxed);
            st.node_timeout
                .store(c.get_u64("cluster-node-timeout"), Relaxed);
        }
        self.hot.hz.store(c.get_u64("hz").max(1) as u32, Relaxed);
        self.hot.timeout.store(c.get_u64("timeout"), Relaxed);
        self.hot
            .busy_reply_ms
            .store(c.get_u64("busy-reply-threshold"), Relaxed);
        self.hot.notify.store(
            crate::notify::parse(c.get("notify-keyspace-events")),
            Relaxed,
        );
        self.hot
            .latency_tracking
            .store(c.get_bool("latency-tracking"), Relaxed);
        self.slowlog.configure(
            c.get_i64("slowlog-log-slower-than"),
            c.get_u64("slowlog-max-len"),
        );
        self.latency
            .configure(c.get_u64("latency-monitor-threshold"));
        self.observers_changed();
        self.memory.configure(&c);
        let obuf = c.get("client-output-buffer-limit");
        self.hot.obuf_normal.set(class_limits(obuf, "normal"));
        self.pubsub.set_limits(class_limits(obuf, "pubsub"));
        self.tracking
            .set_limits(class_limits(obuf, "normal"), class_limits(obuf, "pubsub"));
        self.repl.refresh_config(&c);
        self.clients
            .mem
            .set_limit(crate::config::client_eviction_limit(
                c.get("maxmemory-clients"),
                c.get_u64("maxmemory"),
            ));
        let e = &self.hot.encoding;
        e.list_max_listpack_size
            .store(c.get_i64("list-max-listpack-size"), Relaxed);
        e.hash_max_listpack_entries
            .store(c.get_u64("hash-max-listpack-entries"), Relaxed);
        e.hash_max_listpack_value
            .store(c.get_u64("hash-max-listpack-value"), Relaxed);
        e.set_max_intset_entries
            .store(c.get_u64("set-max-intset-entries"), Relaxed);
        e.zset_max_listpack_entries
            .store(c.get_u64("zset-max-listpack-entries"), Relaxed);
        e.zset_max_listpack_value
            .store(c.get_u64("zset-max-listpack-value"), Relaxed);
        e.stream_node_max_entries
            .store(c.get_u64("stream-node-max-entries"), Relaxed);
        e.stream_node_max_bytes
            .store(c.get_u64("stream-node-max-bytes"), Relaxed);
    }

    /// Recomputes the floor below which a command's duration interests no observer (after
    /// CONFIG SET, and whenever a client starts or stops monitoring).
    pub fn observers_changed(&self) {
        let mut floor = u64::MAX;
        if self.monitors.active() {
            floor = 0;
        }
        if let Some(t) = self.slowlog.threshold() {
            floor = floor.min(t);
        }
        let ms = self.latency.threshold();
        if ms != 0 {
            floor = floor.min(ms.saturating_mul(1000));
        }
        self.hot.observe_floor.store(floor, Relaxed);
    }

    pub fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Relaxed)
    }

    /// Starts a shutdown: the listener stops and every worker ends its connections.
    pub fn request_shutdown(&self) {
        self.process.shutting_down.store(true, Relaxed);
        // A running script stops at its next instruction check, writes or not: its thread
        // must come back for the process to end (SHUTDOWN NOSAVE while a script is busy).
        self.scripts.stop_running();
        self.process.shutdown.notify_waiters();
    }

    /// Changes since the last successful save (INFO rdb_changes_since_last_save).
    pub fn changes_since_save(&self) -> u64 {
        self.metrics
            .stats
            .sum(|s| &s.dirty)
            .saturating_sub(self.rdb_state.dirty_at_save.load(Relaxed))
    }

    pub fn uptime_secs(&self) -> u64 {
        self.process.started.elapsed().as_secs()
    }
}

/// One class (`normal`, `slave`, `pubsub`) of a normalised `client-output-buffer-limit`.
pub fn class_limits(v: &str, class: &str) -> crate::pubsub::Limits {
    let w: Vec<&str> = v.split_whitespace().collect();
    w.chunks(4)
        .find(|c| c.len() == 4 && c[0] == class)
        .map(|c| crate::pubsub::Limits {
            hard: c[1].parse().unwrap_or(0),
            soft: c[2].parse().unwrap_or(0),
            soft_secs: c[3].parse().unwrap_or(0),
        })
        .unwrap_or_default()
}

/// Random lowercase hex, for run ids and replication ids.
pub fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
        .collect()
}

/// Samples for INFO's `instantaneous_*` fields.
#[derive(Default)]
pub struct InstMetrics {
    pub last_sample_ms: u64,
    pub last_ops: u64,
    pub last_in: u64,
    pub last_out: u64,
    pub ops_per_sec: u64,
    pub in_kbps: f64,
    pub out_kbps: f64,
}

/// Server-wide counters, one cache-padded slot per thread so that counting never contends:
/// each thread writes only its own slot, INFO sums them.
pub struct Stats {
    slots: Box<[CachePadded<ThreadStats>]>,
    /// Per-command stats, indexed like `slots`, then by command id.
    cmds: Box<[Box<[CmdStat]>]>,
    /// `errorstat_<CODE>` counters.
    pub errors: Mutex<BTreeMap<String, u64>>,
}

/// Counters of one thread.
#[derive(Default)]
pub struct ThreadStats {
    pub commands: AtomicU64,
    pub connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub expired_keys: AtomicU64,
    pub evicted_keys: AtomicU64,
    pub net_input: AtomicU64,
    pub net_output: AtomicU64,
    pub error_replies: AtomicU64,
    /// Changes to the dataset (Redis's `server.dirty`), counted per thread.
    pub dirty: AtomicU64,
}

/// Counters of one command on one thread.
#[derive(Default)]
pub struct CmdStat {
    pub calls: AtomicU64,
    pub usec: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    /// Its latency histogram (`latency-tracking`), made on the thread's first call.
    pub hist: std::sync::OnceLock<crate::histogram::Counters>,
}

impl CmdStat {
    /// Records a call's duration in the histogram (the recording thread owns it).
    #[inline]
    pub fn record_latency(&self, usec: u64) {
        self.hist.get_or_init(Default::default).record_usec(usec);
    }
}

thread_local! {
    static SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Names the calling thread's stats slot (worker threads call this once at start).
pub fn set_stats_slot(i: usize) {
    SLOT.with(|s| s.set(i));
}

impl Stats {
    fn new(n: usize) -> Self {
        let ncmds = crate::command::CommandTable::count_ids();
        Self {
            slots: (0..n)
                .map(|_| CachePadded::new(ThreadStats::default()))
                .collect(),
            cmds: (0..n)
                .map(|_| (0..ncmds).map(|_| CmdStat::default()).collect())
                .collect(),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    #[inline]
    fn slot_index(&self) -> usize {
        let i = SLOT.with(|s| s.get());
        if i < self.slots.len() {
            i
        } else {
            self.slots.len() - 1
        }
    }

    /// This thread's counters.
    #[inline]
    pub fn local(&self) -> &ThreadStats {
        &self.slots[self.slot_index()]
    }

    /// This thread's counters for command `id`.
    #[inline]
    pub fn cmd(&self, id: usize) -> &CmdStat {
        &self.cmds[self.slot_index()][id]
    }

    /// Sum of a counter over all threads.
    pub fn sum(&self, f: impl Fn(&ThreadStats) -> &AtomicU64) -> u64 {
        self.slots.iter().map(|s| f(s).load(Relaxed)).sum()
    }

    /// Each thread's counters, in slot order: the worker threads (`0..threads`), then
    /// the accepting thread, then every other thread (cron, replication links, loading).
    pub fn per_thread(&self) -> impl Iterator<Item = &ThreadStats> {
        self.slots.iter().map(|s| &**s)
    }

    /// (calls, usec, rejected, failed) of a command summed over threads.
    pub fn cmd_totals(&self, id: usize) -> (u64, u64, u64, u64) {
        let mut t = (0, 0, 0, 0);
        for c in self.cmds.iter() {
            let s = &c[id];
            t.0 += s.calls.load(Relaxed);
            t.1 += s.usec.load(Relaxed);
            t.2 += s.rejected.load(Relaxed);
            t.3 += s.failed.load(Relaxed);
        }
        t
    }

    /// Command `id`'s latency histogram summed over threads; `None` if it has no
    /// recorded call.
    pub fn latency_histogram(&self, id: usize) -> Option<crate::histogram::Snapshot> {
        let mut s = crate::histogram::Snapshot::default();
        for c in self.cmds.iter() {
            if let Some(h) = c[id].hist.get() {
                h.add_to(&mut s);
            }
        }
        (s.total > 0).then_some(s)
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        for s in self.slots.iter() {
            for a in [
                &s.commands,
                &s.connections,
                &s.rejected_connections,
                &s.keyspace_hits,
                &s.keyspace_misses,
                &s.expired_keys,
                &s.net_input,
                &s.net_output,
                &s.error_replies,
            ] {
                a.store(0, Relaxed);
            }
        }
        for c in self.cmds.iter() {
            for s in c.iter() {
                s.calls.store(0, Relaxed);
                s.usec.store(0, Relaxed);
                s.rejected.store(0, Relaxed);
                s.failed.store(0, Relaxed);
                if let Some(h) = s.hist.get() {
                    h.reset();
                }
            }
        }
        self.errors.lock().clear();
    }

    /// Counts a read lookup of a key (INFO keyspace_hits / keyspace_misses).
    #[inline]
    pub fn lookup(&self, hit: bool) {
        let s = self.local();
        if hit {
            s.keyspace_hits.fetch_add(1, Relaxed);
        } else {
            s.keyspace_misses.fetch_add(1, Relaxed);
        }
    }

    /// Counts an error reply by its code.
    pub fn count_error(&self, code: &str) {
        self.local().error_replies.fetch_add(1, Relaxed);
        let mut e = self.errors.lock();
        if let Some(n) = e.get_mut(code) {
            *n += 1;
        } else if e.len() < 128 {
            // Redis caps distinct error codes too, so a client cannot grow this map.
            e.insert(code.to_string(), 1);
        }
    }
}

impl Server {
    /// Every key deleted because it expired (lazily or by the active cycle) comes through
    /// here: the one place that counts them and, as features arrive, raises `expired`
    /// keyspace events and propagates DEL to replicas and the AOF.
    /// Feeds DELs for keys deleted outside any command (active expiry): the caller holds
    /// their shard's lock.
    pub fn propagate_deletions(&self, db: usize, keys: &[Box<[u8]>]) {
        if self.tracking.active() {
            for k in keys {
                self.tracking.invalidate(k, None);
            }
        }
        if keys.is_empty() || !self.feed.is_active() {
            return;
        }
        let cmds: Vec<(usize, Vec<Vec<u8>>)> = keys
            .iter()
            .map(|k| (db, vec![b"DEL".to_vec(), k.to_vec()]))
            .collect();
        self.feed.append(&cmds, false);
    }

    /// Memory `maxmemory` does not count (Redis leaves out replicas' output buffers and the
    /// AOF buffer, which evicting keys would not shrink). Kiln's replication backlog and AOF
    /// buffer are bounded and counted, as INFO's `mem_not_counted_for_evict` says.
    pub fn mem_not_counted_for_evict(&self) -> u64 {
        0
    }

    /// After eviction deleted `key` of `db` (and fed its DEL): the `evicted` event and INFO's
    /// `evicted_keys`.
    pub fn key_evicted(&self, db: usize, key: &[u8]) {
        let flags = self.hot.notify.load(Relaxed);
        if flags & crate::notify::EVICTED != 0 {
            crate::notify::publish(
                &self.pubsub,
                flags,
                crate::notify::EVICTED,
                "evicted",
                key,
                db,
            );
        }
        let st = self.metrics.stats.local();
        st.evicted_keys.fetch_add(1, Relaxed);
        st.dirty.fetch_add(1, Relaxed);
    }

    pub fn keys_expired(&self, db: usize, keys: Vec<Box<[u8]>>) {
        if keys.is_empty() {
            return;
        }
        let flags = self.hot.notify.load(Relaxed);
        if flags & crate::notify::EXPIRED != 0 {
            for k in &keys {
                crate::notify::publish(
                    &self.pubsub,
                    flags,
                    crate::notify::EXPIRED,
                    "expired",
                    k,
                    db,
                );
            }
        }
        self.metrics
            .stats
            .local()
            .expired_keys
            .fetch_add(keys.len() as u64, Relaxed);
        self.metrics
            .stats
            .local()
            .dirty
            .fetch_add(keys.len() as u64, Relaxed);
    }
}

impl Server {
    /// The server's current encoding thresholds (`*-max-listpack-*` and friends), for building
    /// loaded and restored values.
    /// `stream-node-max-entries` and `stream-node-max-bytes`.
    pub fn stream_node_limits(&self) -> crate::storage::stream::NodeLimits {
        let e = &self.hot.encoding;
        let us = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        crate::storage::stream::NodeLimits {
            entries: us(e.stream_node_max_entries.load(Relaxed)),
            bytes: us(e.stream_node_max_bytes.load(Relaxed)),
        }
    }

    pub fn encoding_limits(&self) -> crate::rdb::Limits {
        let e = &self.hot.encoding;
        let us = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        crate::rdb::Limits {
            hash: crate::storage::hash::Limits {
                entries: us(e.hash_max_listpack_entries.load(Relaxed)),
                value: us(e.hash_max_listpack_value.load(Relaxed)),
            },
            zset: crate::storage::zset::Limits {
                entries: us(e.zset_max_listpack_entries.load(Relaxed)),
                value: us(e.zset_max_listpack_value.load(Relaxed)),
            },
            max_intset: us(e.set_max_intset_entries.load(Relaxed)),
            list_fill: e.list_max_listpack_size.load(Relaxed),
        }
    }

    /// Where an RDB load puts what it reads: this keyspace, built with the current
    /// thresholds, counted for INFO persistence.
    pub fn rdb_target(&self) -> crate::rdb::Target<'_> {
        crate::rdb::Target {
            keyspace: &self.keyspace,
            limits: self.encoding_limits(),
            last_loaded: &self.rdb_state.last_load_loaded,
            last_expired: &self.rdb_state.last_load_expired,
            lfu: self.memory.lfu(),
            functions: self,
        }
    }
}

/// The function libraries an RDB load reads are created as FUNCTION LOAD creates them.
impl crate::rdb::Functions for Server {
    fn function(&self, code: Vec<u8>) -> Result<(), String> {
        crate::command::scripting::functions::restore(self, &code)
    }
}

pub use crate::REDIS_VERSION;

/// What a snapshot reads of the server.
impl crate::snapshot::Source for Server {
    fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    fn status(&self) -> &crate::snapshot::Status {
        &self.snapshot
    }

    fn write_options(&self) -> crate::rdb::WriteOptions {
        crate::rdb::WriteOptions {
            compress: self.config.read().get_bool("rdbcompression"),
            list_fill: self.encoding_limits().list_fill,
            access: self.memory.rdb_access(crate::clock::now_ms()),
        }
    }

    fn checksum(&self) -> bool {
        self.config.read().get_bool("rdbchecksum")
    }

    fn used_memory(&self) -> u64 {
        Server::used_memory(self)
    }

    fn library_codes(&self) -> Vec<Vec<u8>> {
        crate::command::scripting::functions::library_codes(self)
    }
}

/// The crash report's view of the server: atomics and `try_lock` only.
impl crate::crash::Reporter for Server {
    fn command_name(&self, id: u32) -> Option<String> {
        self.commands.names.get(id as usize).cloned()
    }

    fn info(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(out, "uptime_in_seconds:{}", self.uptime_secs());
        let clients = self.clients.try_lock().map(|c| c.len());
        match clients {
            Some(n) => {
                let _ = writeln!(out, "connected_clients:{n}");
            }
            None => {
                let _ = writeln!(out, "connected_clients:(registry locked)");
            }
        }
        let _ = writeln!(out, "used_memory:{}", self.used_memory());
        let _ = writeln!(
            out,
            "total_commands_processed:{}",
            self.metrics.stats.sum(|t| &t.commands)
        );
        let _ = writeln!(
            out,
            "role:{}",
            if self.repl.is_replica() {
                "slave"
            } else {
                "master"
            }
        );
        let _ = writeln!(
            out,
            "rdb_changes_since_last_save:{}",
            self.changes_since_save()
        );
    }
}
