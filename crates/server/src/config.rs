//! Configuration: one table of parameters serves the config file, the command line,
//! `CONFIG GET` and `CONFIG SET`, exactly as redis-server treats them all as config lines.
//!
//! Values are kept normalised as strings (what `CONFIG GET` prints) and parsed by typed
//! accessors; the few that a hot path needs are mirrored into atomics by the server.

use std::collections::BTreeMap;

use crate::util::glob_match;

/// How a parameter's value is validated and normalised.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// Integer in `[min, max]`.
    Int(i64, i64),
    /// Byte size with optional unit (`1gb`, `100mb`, `64k`), printed as a plain number.
    Memory,
    /// `yes` / `no`.
    Bool,
    /// One of the listed words.
    Enum(&'static [&'static str]),
    /// Any single string.
    Str,
    /// Needs its own parser (`save`, `bind`, `replicaof`, `client-output-buffer-limit`).
    Special,
}

/// One configuration parameter.
pub struct Param {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub kind: Kind,
    pub default: &'static str,
    /// Can be changed with CONFIG SET.
    pub mutable: bool,
}

const fn p(name: &'static str, kind: Kind, default: &'static str, mutable: bool) -> Param {
    Param {
        name,
        alias: None,
        kind,
        default,
        mutable,
    }
}

const fn pa(
    name: &'static str,
    alias: &'static str,
    kind: Kind,
    default: &'static str,
    mutable: bool,
) -> Param {
    Param {
        name,
        alias: Some(alias),
        kind,
        default,
        mutable,
    }
}

// Listed in Redis 7.0's order: its error text for a bad value enumerates them.
const LOGLEVELS: &[&str] = &["debug", "verbose", "notice", "warning"];
const FSYNC: &[&str] = &["everysec", "always", "no"];
/// `enable-debug-command` and friends: refused, allowed, or allowed from loopback only.
const ENABLE: &[&str] = &["no", "yes", "local"];
/// `tls-auth-clients`: whether a TLS client must present a certificate the CA signed.
const TLS_AUTH: &[&str] = &["no", "yes", "optional"];
const POLICIES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];
/// `repl-diskless-load`: how a replica loads the primary's snapshot.
const DISKLESS_LOAD: &[&str] = &["disabled", "on-empty-db", "swapdb"];
/// `sanitize-dump-payload`: accepted and reported only. Kiln validates every RDB file and
/// RESTORE payload in depth whatever it says (as Redis does with `yes`).
const SANITIZE: &[&str] = &["no", "yes", "clients"];
const I64MAX: i64 = i64::MAX;
/// Redis keeps most integer parameters in a C `int`.
const I32MAX: i64 = i32::MAX as i64;

/// Every parameter Kiln knows. Adding one is a line here.
pub const PARAMS: &[Param] = &[
    p("port", Kind::Int(0, 65535), "6379", true),
    p("bind", Kind::Special, "127.0.0.1", true),
    p("dir", Kind::Str, ".", true),
    p("dbfilename", Kind::Str, "dump.rdb", true),
    pa("replicaof", "slaveof", Kind::Special, "", false),
    p("requirepass", Kind::Str, "", true),
    p("aclfile", Kind::Str, "", false),
    p("acllog-max-len", Kind::Int(0, i64::MAX), "128", true),
    p(
        "acl-pubsub-default",
        Kind::Enum(&["allchannels", "resetchannels"]),
        "resetchannels",
        true,
    ),
    p("masterauth", Kind::Str, "", true),
    p("masteruser", Kind::Str, "", true),
    p("maxclients", Kind::Int(1, u32::MAX as i64), "10000", true),
    p("databases", Kind::Int(1, 1 << 20), "16", false),
    p("save", Kind::Special, "3600 1 300 100 60 10000", true),
    p("appendonly", Kind::Bool, "no", true),
    p("appendfsync", Kind::Enum(FSYNC), "everysec", true),
    p("appendfilename", Kind::Str, "appendonly.aof", false),
    p("appenddirname", Kind::Str, "appendonlydir", false),
    p("loglevel", Kind::Enum(LOGLEVELS), "notice", true),
    p("logfile", Kind::Str, "", false),
    p("daemonize", Kind::Bool, "no", false),
    p("pidfile", Kind::Str, "", false),
    p("protected-mode", Kind::Bool, "yes", true),
    p("io-threads", Kind::Int(1, 128), "1", false),
    p("threads", Kind::Int(0, 1024), "0", false),
    // Kiln's Prometheus endpoint (`metrics_http`): off while the port is 0. Fixed at
    // start, like `port` and `bind`.
    p("metrics-port", Kind::Int(0, 65535), "0", false),
    p("metrics-bind", Kind::Str, "127.0.0.1", false),
    // Any int is accepted; `Config::set` clamps it to 1..=500 as Redis does.
    p("hz", Kind::Int(0, I32MAX), "10", true),
    p("timeout", Kind::Int(0, I32MAX), "0", true),
    p("tcp-keepalive", Kind::Int(0, I32MAX), "300", true),
    p("tcp-backlog", Kind::Int(0, I32MAX), "511", false),
    p("proto-max-bulk-len", Kind::Memory, "536870912", true),
    p(
        "client-query-buffer-limit",
        Kind::Memory,
        "1073741824",
        true,
    ),
    // Bytes, or a percentage of `maxmemory` kept as written ("10%"); 0 is off.
    p("maxmemory-clients", Kind::Special, "0", true),
    p("maxmemory", Kind::Memory, "0", true),
    p("maxmemory-policy", Kind::Enum(POLICIES), "noeviction", true),
    p("maxmemory-samples", Kind::Int(1, I32MAX), "5", true),
    p("maxmemory-eviction-tenacity", Kind::Int(0, 100), "10", true),
    p("lfu-log-factor", Kind::Int(0, I32MAX), "10", true),
    p("lfu-decay-time", Kind::Int(0, I32MAX), "1", true),
    p("lazyfree-lazy-user-flush", Kind::Bool, "no", true),
    p("lazyfree-lazy-user-del", Kind::Bool, "no", true),
    p("lazyfree-lazy-expire", Kind::Bool, "no", true),
    p("lazyfree-lazy-eviction", Kind::Bool, "no", true),
    p("lazyfree-lazy-server-del", Kind::Bool, "no", true),
    p("active-expire-effort", Kind::Int(1, 10), "1", true),
    p("hll-sparse-max-bytes", Kind::Memory, "3000", true),
    p(
        "slowlog-log-slower-than",
        Kind::Int(-1, I64MAX),
        "10000",
        true,
    ),
    p("slowlog-max-len", Kind::Int(0, I64MAX), "128", true),
    p("latency-monitor-threshold", Kind::Int(0, I64MAX), "0", true),
    p("latency-tracking", Kind::Bool, "yes", true),
    p(
        "latency-tracking-info-percentiles",
        Kind::Special,
        "50 99 99.9",
        true,
    ),
    p("notify-keyspace-events", Kind::Special, "", true),
    pa(
        "replica-read-only",
        "slave-read-only",
        Kind::Bool,
        "yes",
        true,
    ),
    pa(
        "replica-serve-stale-data",
        "slave-serve-stale-data",
        Kind::Bool,
        "yes",
        true,
    ),
    p("repl-backlog-size", Kind::Memory, "1048576", true),
    p("repl-backlog-ttl", Kind::Int(0, I64MAX), "3600", true),
    pa(
        "repl-ping-replica-period",
        "repl-ping-slave-period",
        Kind::Int(1, I32MAX),
        "10",
        true,
    ),
    p("repl-timeout", Kind::Int(1, I32MAX), "60", true),
    p("repl-diskless-sync", Kind::Bool, "yes", true),
    p("repl-diskless-sync-delay", Kind::Int(0, I32MAX), "5", true),
    p(
        "repl-diskless-sync-max-replicas",
        Kind::Int(0, I32MAX),
        "0",
        true,
    ),
    p(
        "repl-diskless-load",
        Kind::Enum(DISKLESS_LOAD),
        "disabled",
        true,
    ),
    p("repl-disable-tcp-nodelay", Kind::Bool, "no", true),
    pa(
        "min-replicas-to-write",
        "min-slaves-to-write",
        Kind::Int(0, I32MAX),
        "0",
        true,
    ),
    pa(
        "min-replicas-max-lag",
        "min-slaves-max-lag",
        Kind::Int(0, I32MAX),
        "10",
        true,
    ),
    pa(
        "replica-announce-ip",
        "slave-announce-ip",
        Kind::Str,
        "",
        true,
    ),
    pa(
        "replica-announce-port",
        "slave-announce-port",
        Kind::Int(0, 65535),
        "0",
        true,
    ),
    p("replica-announced", Kind::Bool, "yes", true),
    pa(
        "replica-priority",
        "slave-priority",
        Kind::Int(0, I32MAX),
        "100",
        true,
    ),
    pa(
        "replica-lazy-flush",
        "slave-lazy-flush",
        Kind::Bool,
        "no",
        true,
    ),
    pa(
        "replica-ignore-maxmemory",
        "slave-ignore-maxmemory",
        Kind::Bool,
        "yes",
        true,
    ),
    p("rdbcompression", Kind::Bool, "yes", true),
    p("rdbchecksum", Kind::Bool, "yes", true),
    // Kiln always sanitizes (see SANITIZE); the value is kept for CONFIG GET and rewrites.
    p("sanitize-dump-payload", Kind::Enum(SANITIZE), "no", true),
    p("stop-writes-on-bgsave-error", Kind::Bool, "yes", true),
    p(
        "auto-aof-rewrite-percentage",
        Kind::Int(0, I32MAX),
        "100",
        true,
    ),
    p("auto-aof-rewrite-min-size", Kind::Memory, "67108864", true),
    p("aof-load-truncated", Kind::Bool, "yes", true),
    p("aof-use-rdb-preamble", Kind::Bool, "yes", true),
    p(
        "client-output-buffer-limit",
        Kind::Special,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        true,
    ),
    pa(
        "list-max-listpack-size",
        "list-max-ziplist-size",
        Kind::Int(i32::MIN as i64, I32MAX),
        "-2",
        true,
    ),
    p("list-compress-depth", Kind::Int(0, I32MAX), "0", true),
    // 512 is Redis's built-in default (its sample redis.conf says 128).
    pa(
        "hash-max-listpack-entries",
        "hash-max-ziplist-entries",
        Kind::Int(0, I64MAX),
        "512",
        true,
    ),
    pa(
        "hash-max-listpack-value",
        "hash-max-ziplist-value",
        Kind::Memory,
        "64",
        true,
    ),
    p("set-max-intset-entries", Kind::Int(0, I64MAX), "512", true),
    p(
        "set-max-listpack-entries",
        Kind::Int(0, I64MAX),
        "128",
        true,
    ),
    p("set-max-listpack-value", Kind::Int(0, I64MAX), "64", true),
    pa(
        "zset-max-listpack-entries",
        "zset-max-ziplist-entries",
        Kind::Int(0, I64MAX),
        "128",
        true,
    ),
    pa(
        "zset-max-listpack-value",
        "zset-max-ziplist-value",
        Kind::Memory,
        "64",
        true,
    ),
    p("stream-node-max-bytes", Kind::Memory, "4096", true),
    p("stream-node-max-entries", Kind::Int(0, I64MAX), "100", true),
    pa(
        "busy-reply-threshold",
        "lua-time-limit",
        Kind::Int(0, I64MAX),
        "5000",
        true,
    ),
    p("cluster-enabled", Kind::Bool, "no", false),
    p("no-appendfsync-on-rewrite", Kind::Bool, "no", true),
    p("enable-debug-command", Kind::Enum(ENABLE), "no", false),
    p("enable-protected-configs", Kind::Enum(ENABLE), "no", false),
    p("enable-module-command", Kind::Enum(ENABLE), "no", false),
    // Accepted with Redis 7.0's validation; what Kiln does with each (most nothing yet:
    // no defrag, no fork, no syslog, no cluster yet) is in docs/COMPATIBILITY.md.
    p("activedefrag", Kind::Bool, "no", true),
    p("active-defrag-cycle-min", Kind::Int(1, 99), "1", true),
    p("active-defrag-cycle-max", Kind::Int(1, 99), "25", true),
    p(
        "active-defrag-ignore-bytes",
        Kind::Memory,
        "104857600",
        true,
    ),
    p(
        "active-defrag-max-scan-fields",
        Kind::Int(1, I64MAX),
        "1000",
        true,
    ),
    p(
        "active-defrag-threshold-lower",
        Kind::Int(0, 1000),
        "10",
        true,
    ),
    p(
        "active-defrag-threshold-upper",
        Kind::Int(0, 1000),
        "100",
        true,
    ),
    p("activerehashing", Kind::Bool, "yes", true),
    p("always-show-logo", Kind::Bool, "no", false),
    p("aof-disable-auto-gc", Kind::Bool, "no", true),
    p("aof-rewrite-incremental-fsync", Kind::Bool, "yes", true),
    p("aof-timestamp-enabled", Kind::Bool, "no", true),
    p("server_cpulist", Kind::Str, "", false),
    p("bio_cpulist", Kind::Str, "", false),
    p("aof_rewrite_cpulist", Kind::Str, "", false),
    p("bgsave_cpulist", Kind::Str, "", false),
    p("bind-source-addr", Kind::Str, "", true),
    p(
        "cluster-allow-pubsubshard-when-down",
        Kind::Bool,
        "yes",
        true,
    ),
    p("cluster-allow-reads-when-down", Kind::Bool, "no", true),
    p("cluster-allow-replica-migration", Kind::Bool, "yes", true),
    p("cluster-announce-bus-port", Kind::Int(0, 65535), "0", true),
    p("cluster-announce-hostname", Kind::Str, "", true),
    p("cluster-announce-ip", Kind::Str, "", true),
    p("cluster-announce-port", Kind::Int(0, 65535), "0", true),
    p("cluster-announce-tls-port", Kind::Int(0, 65535), "0", true),
    p("cluster-config-file", Kind::Str, "nodes.conf", false),
    p("cluster-link-sendbuf-limit", Kind::Memory, "0", true),
    p("cluster-migration-barrier", Kind::Int(0, I32MAX), "1", true),
    p("cluster-node-timeout", Kind::Int(0, I64MAX), "15000", true),
    p("cluster-port", Kind::Int(0, 65535), "0", false),
    p(
        "cluster-preferred-endpoint-type",
        Kind::Enum(&["ip", "hostname", "unknown-endpoint"]),
        "ip",
        true,
    ),
    pa(
        "cluster-replica-no-failover",
        "cluster-slave-no-failover",
        Kind::Bool,
        "no",
        true,
    ),
    pa(
        "cluster-replica-validity-factor",
        "cluster-slave-validity-factor",
        Kind::Int(0, I32MAX),
        "10",
        true,
    ),
    p("cluster-require-full-coverage", Kind::Bool, "yes", true),
    p("crash-log-enabled", Kind::Bool, "yes", true),
    p("crash-memcheck-enabled", Kind::Bool, "yes", true),
    p("disable-thp", Kind::Bool, "yes", false),
    p("dynamic-hz", Kind::Bool, "yes", true),
    p("ignore-warnings", Kind::Str, "", true),
    p("io-threads-do-reads", Kind::Bool, "no", false),
    p("jemalloc-bg-thread", Kind::Bool, "yes", true),
    p(
        "oom-score-adj",
        Kind::Enum(&["no", "yes", "relative", "absolute"]),
        "no",
        true,
    ),
    p("oom-score-adj-values", Kind::Special, "0 200 800", true),
    p(
        "proc-title-template",
        Kind::Str,
        "{title} {listen-addr} {server-mode}",
        true,
    ),
    p(
        "propagation-error-behavior",
        Kind::Enum(&["ignore", "panic", "panic-on-replicas"]),
        "ignore",
        true,
    ),
    p("rdb-del-sync-files", Kind::Bool, "no", true),
    p("rdb-save-incremental-fsync", Kind::Bool, "yes", true),
    p("replica-ignore-disk-write-errors", Kind::Bool, "no", true),
    p("set-proc-title", Kind::Bool, "yes", false),
    p("shutdown-on-sigint", Kind::Special, "default", true),
    p("shutdown-on-sigterm", Kind::Special, "default", true),
    p("shutdown-timeout", Kind::Int(0, I32MAX), "10", true),
    p("socket-mark-id", Kind::Int(0, I64MAX), "0", false),
    p(
        "supervised",
        Kind::Enum(&["upstart", "systemd", "auto", "no"]),
        "no",
        false,
    ),
    p("syslog-enabled", Kind::Bool, "no", false),
    p("syslog-facility", Kind::Str, "local0", false),
    p("syslog-ident", Kind::Str, "redis", false),
    p(
        "tracking-table-max-keys",
        Kind::Int(0, I64MAX),
        "1000000",
        true,
    ),
    p("unixsocket", Kind::Str, "", false),
    // Octal, as in redis.conf (`700`); 0 leaves the socket's mode to the umask.
    p("unixsocketperm", Kind::Special, "0", false),
    // TLS (see `tls`). The port is bound at start only; the rest applies to new
    // connections when changed.
    p("tls-port", Kind::Int(0, 65535), "0", true),
    p("tls-cert-file", Kind::Str, "", true),
    p("tls-key-file", Kind::Str, "", true),
    p("tls-key-file-pass", Kind::Str, "", true),
    p("tls-client-cert-file", Kind::Str, "", true),
    p("tls-client-key-file", Kind::Str, "", true),
    p("tls-client-key-file-pass", Kind::Str, "", true),
    p("tls-dh-params-file", Kind::Str, "", true),
    p("tls-ca-cert-file", Kind::Str, "", true),
    p("tls-ca-cert-dir", Kind::Str, "", true),
    p("tls-auth-clients", Kind::Enum(TLS_AUTH), "yes", true),
    p("tls-protocols", Kind::Str, "", true),
    p("tls-ciphers", Kind::Str, "", true),
    p("tls-ciphersuites", Kind::Str, "", true),
    p("tls-prefer-server-ciphers", Kind::Bool, "no", true),
    p("tls-session-caching", Kind::Bool, "yes", true),
    p(
        "tls-session-cache-size",
        Kind::Int(0, I32MAX),
        "20480",
        true,
    ),
    p(
        "tls-session-cache-timeout",
        Kind::Int(0, I32MAX),
        "300",
        true,
    ),
    p("tls-replication", Kind::Bool, "no", true),
    p("tls-cluster", Kind::Bool, "no", true),
];

/// Parameters CONFIG SET refuses unless `enable-protected-configs` allows it (Redis 7's
/// `PROTECTED_CONFIG`: changing them lets a client write files anywhere).
pub const PROTECTED: &[&str] = &["dir", "dbfilename"];

/// Finds a parameter by name or alias (case-insensitive).
pub fn param(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| {
        p.name.eq_ignore_ascii_case(name) || p.alias.is_some_and(|a| a.eq_ignore_ascii_case(name))
    })
}

/// The configuration in force.
#[derive(Clone, Debug)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
    /// `user name rule ...` lines, each the words after `user` (loaded into the ACL at
    /// startup, see `command::acl::load_at_startup`).
    pub users: Vec<Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        let mut values = BTreeMap::new();
        for p in PARAMS {
            values.insert(p.name, p.default.to_string());
        }
        Self {
            values,
            users: Vec::new(),
        }
    }
}

/// Parses `1gb`, `100mb`, `64k`, `512` into bytes (Redis's `memtoull`).
pub fn parse_memory(s: &str) -> Option<u64> {
    let l = s.to_ascii_lowercase();
    let split = l.find(|c: char| !c.is_ascii_digit()).unwrap_or(l.len());
    let (num, unit) = l.split_at(split);
    let n: u64 = num.parse().ok()?;
    n.checked_mul(memory_unit(unit)?)
}

/// What a unit of Redis's memory values multiplies by (`kb` is 1024, `k` 1000).
fn memory_unit(unit: &str) -> Option<u64> {
    Some(match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    })
}

impl Config {
    /// The normalised value of a parameter (its canonical name).
    pub fn get(&self, name: &str) -> &str {
        param(name)
            .and_then(|p| self.values.get(p.name))
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn get_i64(&self, name: &str) -> i64 {
        self.get(name).parse().unwrap_or(0)
    }

    pub fn get_u64(&self, name: &str) -> u64 {
        self.get(name).parse().unwrap_or(0)
    }

    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name) == "yes"
    }

    /// Sets a parameter from its arguments (as they appear after the name on a config line).
    /// Returns the reason on failure, in Redis's words where it has them.
    pub fn set(&mut self, name: &str, args: &[String]) -> Result<(), String> {
        let p =
            param(name).ok_or_else(|| "Bad directive or wrong number of arguments".to_string())?;
        let mut value = normalise(p, args)?;
        if p.name == "client-output-buffer-limit" {
            // Each setting changes only the classes it names, as in Redis (a config file
            // may give one line per class).
            let merged = [self.get(p.name).to_string(), args.join(" ")];
            value = normalise(p, &merged)?;
        }
        if p.name == "dir" {
            if self.get("dir") != "." {
                // Redis changes into `dir`, so a relative one is relative to the previous
                // `dir`.
                value = std::path::Path::new(self.get("dir"))
                    .join(&value)
                    .to_string_lossy()
                    .into_owned();
            }
            enterable_dir(&value)?;
        }
        if p.name == "hz" {
            // Redis accepts any hz and stores it clamped to what the server loop supports.
            value = value.parse::<i64>().unwrap_or(10).clamp(1, 500).to_string();
        }
        self.values.insert(p.name, value);
        Ok(())
    }

    /// `(name, value)` of every parameter matching a glob pattern (CONFIG GET).
    pub fn matching(&self, pattern: &[u8]) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for p in PARAMS {
            let hit = glob_match(pattern, p.name.as_bytes(), true);
            let alias_hit = p.alias.filter(|a| glob_match(pattern, a.as_bytes(), true));
            if hit {
                out.push((p.name, shown(p.name, &self.values[p.name])));
            }
            if let Some(a) = alias_hit {
                out.push((a, shown(p.name, &self.values[p.name])));
            }
        }
        out
    }

    /// Reads a redis.conf-style text (`name arg arg` lines, `#` comments, quotes).
    pub fn load_text(&mut self, text: &str) -> Result<(), ConfigError> {
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let words = split_config_line(trimmed).ok_or_else(|| ConfigError {
                line: i + 1,
                text: trimmed.to_string(),
                reason: "Unbalanced quotes in configuration line".into(),
            })?;
            let Some((name, args)) = words.split_first() else {
                continue;
            };
            if name.eq_ignore_ascii_case("user") {
                if args.is_empty() {
                    return Err(ConfigError {
                        line: i + 1,
                        text: trimmed.to_string(),
                        reason: "Bad directive or wrong number of arguments".into(),
                    });
                }
                if self.users.iter().any(|u| u[0] == args[0]) {
                    return Err(ConfigError {
                        line: i + 1,
                        text: trimmed.to_string(),
                        reason: "Error in user declaration 'Duplicate user found. A user can only be defined once in config files'".into(),
                    });
                }
                self.users.push(args.to_vec());
                continue;
            }
            if name.eq_ignore_ascii_case("include") {
                return Err(ConfigError {
                    line: i + 1,
                    text: trimmed.to_string(),
                    reason: "include is not supported".into(),
                });
            }
            self.set(name, args).map_err(|reason| ConfigError {
                line: i + 1,
                text: trimmed.to_string(),
                reason,
            })?;
        }
        Ok(())
    }

    /// The `save` points as (seconds, changes) pairs.
    pub fn save_points(&self) -> Vec<(u64, u64)> {
        let v: Vec<u64> = self
            .get("save")
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        v.chunks_exact(2).map(|c| (c[0], c[1])).collect()
    }

    /// The addresses to listen on, each with whether it is optional (`-` before it: failing
    /// to bind it is not fatal).
    pub fn bind_addrs(&self) -> Vec<(String, bool)> {
        self.get("bind")
            .split_whitespace()
            .map(|s| match s.strip_prefix('-') {
                Some(a) => (a.to_string(), true),
                None => (s.to_string(), false),
            })
            .collect()
    }

    /// `replicaof` as (host, port), if set.
    pub fn replicaof(&self) -> Option<(String, u16)> {
        let v = self.get("replicaof");
        let mut it = v.split_whitespace();
        let host = it.next()?;
        let port = it.next()?.parse().ok()?;
        Some((host.to_string(), port))
    }
}

/// A config file or command-line error, reported like redis-server does.
#[derive(Debug)]
pub struct ConfigError {
    pub line: usize,
    pub text: String,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "\n*** FATAL CONFIG FILE ERROR (Kiln {}) ***\nReading the configuration file, at line {}\n>>> '{}'\n{}",
            env!("CARGO_PKG_VERSION"),
            self.line,
            self.text,
            self.reason
        )
    }
}

/// A CONFIG SET value as the parameter would store it.
pub fn normalise_value(p: &Param, value: &str) -> Result<String, String> {
    normalise(p, &[value.to_string()])
}

fn normalise(p: &Param, args: &[String]) -> Result<String, String> {
    let single = || -> Result<&str, String> {
        match args {
            [one] => Ok(one.as_str()),
            _ => Err("wrong number of arguments".to_string()),
        }
    };
    match p.kind {
        Kind::Int(min, max) => {
            let v = single()?;
            // Strict like Redis's string2ll: no `+`, no leading zeros or spaces.
            let n = crate::util::parse_i64(v.as_bytes())
                .ok_or_else(|| "argument couldn't be parsed into an integer".to_string())?;
            if n < min || n > max {
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
            Ok(n.to_string())
        }
        Kind::Memory => {
            let v = single()?;
            let n = parse_memory(v).ok_or_else(|| "argument must be a memory value".to_string())?;
            // Redis's bounds: most sizes are a C long; a few have a floor.
            let (min, max) = match p.name {
                "proto-max-bulk-len" | "client-query-buffer-limit" => (1 << 20, I64MAX as u64),
                "repl-backlog-size" | "active-defrag-ignore-bytes" => (1, I64MAX as u64),
                "cluster-link-sendbuf-limit" => (0, u64::MAX),
                "maxmemory" => (0, u64::MAX),
                _ => (0, I64MAX as u64),
            };
            if n < min || n > max {
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
            Ok(n.to_string())
        }
        Kind::Bool => match single()?.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Enum(words) => {
            let v = single()?.to_ascii_lowercase();
            if words.contains(&v.as_str()) {
                Ok(v)
            } else {
                Err("argument(s) must be one of the following: ".to_string() + &words.join(", "))
            }
        }
        Kind::Str => Ok(single()?.to_string()),
        Kind::Special => normalise_special(p.name, args),
    }
}

fn normalise_special(name: &str, args: &[String]) -> Result<String, String> {
    let words: Vec<&str> = args.iter().flat_map(|a| a.split_whitespace()).collect();
    match name {
        "save" => {
            if words.is_empty() || (words.len() == 1 && words[0].is_empty()) {
                return Ok(String::new());
            }
            if !words.len().is_multiple_of(2) {
                return Err("Invalid save parameters".into());
            }
            for w in &words {
                if w.parse::<u64>().is_err() {
                    return Err("Invalid save parameters".into());
                }
            }
            Ok(words.join(" "))
        }
        "oom-score-adj-values" => {
            if words.len() != 3 {
                return Err("wrong number of arguments".into());
            }
            let ok = words
                .iter()
                .all(|w| w.parse::<i64>().is_ok_and(|n| (-2000..=2000).contains(&n)));
            if !ok {
                return Err(
                    "Invalid oom-score-adj-values, elements must be between -2000 and 2000.".into(),
                );
            }
            Ok(words.join(" "))
        }
        "shutdown-on-sigint" | "shutdown-on-sigterm" => {
            // Flags in Redis's order; `default` is no flag.
            const FLAGS: [&str; 5] = ["default", "save", "nosave", "now", "force"];
            let mut set = [false; 5];
            for w in &words {
                let i = FLAGS
                    .iter()
                    .position(|f| f.eq_ignore_ascii_case(w))
                    .ok_or_else(|| {
                        "argument(s) must be one of the following: default, save, nosave, now, force"
                            .to_string()
                    })?;
                set[i] = true;
            }
            if words.is_empty() {
                return Err("wrong number of arguments".into());
            }
            if set[1] && set[2] {
                return Err("shutdown options SAVE and NOSAVE can't be used simultaneously".into());
            }
            let on: Vec<&str> = (1..5).filter(|&i| set[i]).map(|i| FLAGS[i]).collect();
            Ok(if on.is_empty() {
                "default".into()
            } else {
                on.join(" ")
            })
        }
        "bind" => {
            if words.is_empty() {
                return Err("wrong number of arguments".into());
            }
            if words.len() > 16 {
                return Err("Too many bind addresses specified.".into());
            }
            Ok(words.join(" "))
        }
        "unixsocketperm" => match args {
            [one] => u32::from_str_radix(one, 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .map(|m| format!("{m:o}"))
                .ok_or_else(|| "Invalid socket file permissions".into()),
            _ => Err("wrong number of arguments".into()),
        },
        "replicaof" => match words.as_slice() {
            [no, one] if no.eq_ignore_ascii_case("no") && one.eq_ignore_ascii_case("one") => {
                Ok(String::new())
            }
            [host, port] => {
                port.parse::<u16>()
                    .map_err(|_| "Invalid master port".to_string())?;
                Ok(format!("{host} {port}"))
            }
            _ => Err("wrong number of arguments".into()),
        },
        "client-output-buffer-limit" => {
            if words.is_empty() || !words.len().is_multiple_of(4) {
                return Err("Wrong number of arguments in buffer limit configuration.".into());
            }
            let mut classes: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
            classes.insert("normal", [0, 0, 0]);
            classes.insert("slave", [268_435_456, 67_108_864, 60]);
            classes.insert("pubsub", [33_554_432, 8_388_608, 60]);
            for c in words.chunks(4) {
                let class = match c[0].to_ascii_lowercase().as_str() {
                    "normal" => "normal",
                    "slave" | "replica" => "slave",
                    "pubsub" => "pubsub",
                    _ => {
                        return Err(
                            "Invalid client class specified in buffer limit configuration.".into(),
                        )
                    }
                };
                let hard = parse_memory(c[1]);
                let soft = parse_memory(c[2]);
                let secs = c[3].parse::<u64>().ok();
                match (hard, soft, secs) {
                    (Some(h), Some(s), Some(t)) => {
                        classes.insert(class, [h, s, t]);
                    }
                    _ => return Err("Error in hard, soft or soft_seconds setting in buffer limit configuration.".into()),
                }
            }
            Ok(["normal", "slave", "pubsub"]
                .iter()
                .map(|c| {
                    let v = classes[c];
                    format!("{c} {} {} {}", v[0], v[1], v[2])
                })
                .collect::<Vec<_>>()
                .join(" "))
        }
        "notify-keyspace-events" => notify_flags(&args.join(" ")),
        "latency-tracking-info-percentiles" => {
            let mut out = Vec::new();
            for w in &words {
                let v: f64 = w
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite())
                    .ok_or("Invalid latency-tracking-info-percentiles parameters")?;
                if !(0.0..=100.0).contains(&v) {
                    return Err(
                        "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
                            .into(),
                    );
                }
                out.push(format_percentile(v));
            }
            Ok(out.join(" "))
        }
        "maxmemory-clients" => match args {
            [one] => memory_or_percent(one),
            _ => Err("wrong number of arguments".into()),
        },
        _ => Ok(words.join(" ")),
    }
}

/// A percentile as Redis prints it (`%f` with trailing zeros and point trimmed).
pub fn format_percentile(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The percentiles of `latency-tracking-info-percentiles`.
pub fn percentiles(v: &str) -> Vec<f64> {
    v.split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// `maxmemory-clients`: a byte size with Redis's units, or `N%` of `maxmemory` (N from 0
/// to 100, written as a plain integer). Like Redis, a size too big for 64 bits wraps, and
/// one that lands negative reads as a percentage (so `99999999999999999999` is `1%`).
fn memory_or_percent(v: &str) -> Result<String, String> {
    const BAD: &str = "argument must be a memory or percent value";
    const OVER: &str = "percentage argument must be less or equal to 100";
    if let Some(n) = v.strip_suffix('%').filter(|n| !n.is_empty()) {
        let pct = crate::util::parse_i64(n.as_bytes())
            .filter(|&p| p >= 0)
            .ok_or(BAD)?;
        return match pct {
            0 => Ok("0".into()),
            1..=100 => Ok(format!("{pct}%")),
            _ => Err(OVER.into()),
        };
    }
    let l = v.to_ascii_lowercase();
    let split = l.find(|c: char| !c.is_ascii_digit()).unwrap_or(l.len());
    let (num, unit) = l.split_at(split);
    let mul = memory_unit(unit).ok_or(BAD)?;
    // No digits reads as 0; too many saturate (strtoull), then the unit wraps.
    let n = if num.is_empty() {
        0
    } else {
        num.parse::<u64>().unwrap_or(u64::MAX)
    };
    let bytes = n.wrapping_mul(mul) as i64;
    match bytes {
        0.. => Ok(bytes.to_string()),
        -100..=-1 => Ok(format!("{}%", -bytes)),
        _ => Err(OVER.into()),
    }
}

/// `maxmemory-clients` in bytes given `maxmemory`: 0 when off (0, or a percentage of an
/// unlimited `maxmemory`), otherwise at least 128 KiB, Redis's floor, so that a tiny value
/// cannot leave every client evicted.
pub fn client_eviction_limit(maxmemory_clients: &str, maxmemory: u64) -> u64 {
    let bytes = match maxmemory_clients.strip_suffix('%') {
        Some(pct) => {
            let pct: u64 = pct.parse().unwrap_or(0);
            (maxmemory as f64 * pct as f64 / 100.0) as u64
        }
        None => maxmemory_clients.parse().unwrap_or(0),
    };
    if bytes == 0 {
        0
    } else {
        bytes.max(128 * 1024)
    }
}

/// Event classes in the order Redis prints them; `A` stands for the first ten together.
const NOTIFY_CLASSES: &str = "g$lshzxetdnKEm";
const NOTIFY_ALL: &str = "g$lshzxetd";

/// Validates `notify-keyspace-events` and normalises it the way Redis prints it back
/// (`KEA` becomes `AKE`): each class once, in a fixed order, `A` for all of `g$lshzxetd`.
fn notify_flags(v: &str) -> Result<String, String> {
    let mut set = String::new();
    for c in v.chars() {
        match c {
            'A' => set.push_str(NOTIFY_ALL),
            c if NOTIFY_CLASSES.contains(c) => set.push(c),
            _ => return Err("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into()),
        }
    }
    let all = NOTIFY_ALL.chars().all(|c| set.contains(c));
    let mut out = String::new();
    if all {
        out.push('A');
    }
    for c in NOTIFY_CLASSES.chars() {
        // With `A`, only the classes outside it follow. `n` (new-key events) is kept in the
        // stored value but hidden from CONFIG GET, as Redis prints it (see `shown`).
        let shown = if all { "nKEm".contains(c) } else { true };
        if shown && set.contains(c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Refuses a `dir` Redis's chdir would refuse, with its reason (strerror's text): one that
/// does not exist or is not a directory. (Search permission is not checked.)
fn enterable_dir(dir: &str) -> Result<(), String> {
    let reason = |e: std::io::Error| {
        let text = e.to_string();
        // "No such file or directory (os error 2)": strerror's part.
        match text.rfind(" (os error ") {
            Some(at) => text[..at].to_string(),
            None => text,
        }
    };
    let meta = std::fs::metadata(dir).map_err(reason)?;
    if !meta.is_dir() {
        return Err(reason(std::io::Error::from_raw_os_error(libc::ENOTDIR)));
    }
    Ok(())
}

/// A stored value as CONFIG GET prints it: Redis does not show `n` in a
/// `notify-keyspace-events` value that has `A`, though the class stays enabled.
pub fn shown(name: &str, value: &str) -> String {
    if name == "notify-keyspace-events" && value.starts_with('A') {
        value.replace('n', "")
    } else if name == "dir" {
        // Redis changes into `dir` and reports its working directory: an absolute path.
        // Kiln's paths are `dir` joined to the process's own working directory, the same.
        std::fs::canonicalize(value)
            .map_or_else(|_| value.to_owned(), |p| p.to_string_lossy().into_owned())
    } else {
        value.to_owned()
    }
}

/// Splits a config line into words like `sdssplitargs` (quotes and escapes).
pub fn split_config_line(line: &str) -> Option<Vec<String>> {
    let bytes = line.as_bytes();
    let mut ranges = Vec::new();
    let mut tmp = bytes.to_vec();
    tmp.extend_from_slice(b"\n");
    let mut args = Vec::new();
    match kiln_resp::parse_request(&tmp, &mut ranges, &kiln_resp::Limits::default()) {
        Ok(kiln_resp::Parsed::Complete { .. }) => {}
        _ => return None,
    }
    for r in ranges {
        let raw = &tmp[r];
        let v = kiln_resp::request::unquote_inline_arg(raw).unwrap_or_else(|| raw.to_vec());
        args.push(String::from_utf8_lossy(&v).into_owned());
    }
    Some(args)
}

/// Turns redis-server style arguments (`[configfile] [--name value ...]`) into config text,
/// the way redis-server does: each `--name` starts a line, following words are its arguments.
pub fn args_to_config_text(args: &[String]) -> String {
    let mut text = String::new();
    let mut first_option = true;
    for a in args {
        if let Some(name) = a.strip_prefix("--") {
            if !first_option || !text.is_empty() {
                text.push('\n');
            }
            first_option = false;
            text.push_str(name);
        } else {
            text.push(' ');
            text.push_str(&quote_config_arg(a));
        }
    }
    text.push('\n');
    text
}

/// Quotes a word for a config line (empty strings and spaces survive the round trip).
pub fn quote_config_arg(a: &str) -> String {
    if !a.is_empty()
        && !a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '\\')
    {
        return a.to_string();
    }
    let mut s = String::from("\"");
    for c in a.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_becomes_config_lines() {
        let args: Vec<String> = ["--port", "7000", "--save", "", "--replicaof", "h 1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut c = Config::default();
        c.load_text(&args_to_config_text(&args)).unwrap();
        assert_eq!(c.get("port"), "7000");
        assert_eq!(c.get("save"), "");
        assert_eq!(c.replicaof(), Some(("h".into(), 1)));
    }

    #[test]
    fn bad_values_are_errors_naming_the_line() {
        let mut c = Config::default();
        let e = c.load_text("port 1\nport abc\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("port abc"));
        assert!(c.load_text("nosuchoption 1").is_err());
    }

    #[test]
    fn unixsocketperm_is_octal_and_bind_addresses_may_be_optional() {
        let mut c = Config::default();
        c.set("unixsocketperm", &["0770".into()]).unwrap();
        assert_eq!(c.get("unixsocketperm"), "770");
        assert!(c.set("unixsocketperm", &["800".into()]).is_err());
        assert!(c.set("unixsocketperm", &["1777".into()]).is_err());
        c.set("bind", &["* -::*".into()]).unwrap();
        assert_eq!(
            c.bind_addrs(),
            [("*".to_string(), false), ("::*".to_string(), true)]
        );
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("64k"), Some(64_000));
        assert_eq!(parse_memory("x"), None);
        let mut c = Config::default();
        c.set("maxmemory", &["100mb".into()]).unwrap();
        assert_eq!(c.get("maxmemory"), "104857600");
    }

    #[test]
    fn output_buffer_limits_change_only_the_classes_named() {
        let mut c = Config::default();
        c.load_text(
            "client-output-buffer-limit normal 1mb 512kb 10\n\
             client-output-buffer-limit replica 2gb 1gb 30\n",
        )
        .unwrap();
        let v =
            "normal 1048576 524288 10 slave 2147483648 1073741824 30 pubsub 33554432 8388608 60";
        assert_eq!(c.get("client-output-buffer-limit"), v);
        assert_eq!(
            c.set("client-output-buffer-limit", &["normal 1mb 5".into()]),
            Err("Wrong number of arguments in buffer limit configuration.".into())
        );
        c.set("client-output-buffer-limit", &["pubsub 1 2 3".into()])
            .unwrap();
        assert!(c
            .get("client-output-buffer-limit")
            .ends_with("30 pubsub 1 2 3"));
    }

    #[test]
    fn config_get_globs_and_aliases() {
        let c = Config::default();
        let m = c.matching(b"*max-*-entries*");
        assert!(m.iter().any(|(n, _)| *n == "hash-max-listpack-entries"));
        let m = c.matching(b"slave-read-only");
        assert_eq!(m, vec![("slave-read-only", "yes".to_string())]);
    }
}
