//! The Prometheus exporter: the server's figures in the Prometheus text exposition format
//! (version 0.0.4), served by `metrics_http` when `metrics-port` is set. Redis has no such
//! endpoint; this is what oliver006/redis_exporter would export, without the exporter.
//!
//! One source of truth: the figures are INFO's. [`render`] takes INFO's text (all
//! sections, computed by INFO's own code, `info::everything`, and counted nowhere) and
//! maps its fields to metrics, as redis_exporter maps them. Only what INFO prints as
//! text alone is read from the server directly: the per-command latency histograms'
//! buckets (INFO prints percentiles; LATENCY HISTOGRAM's counters are summed the same way)
//! and the per-thread counters INFO sums.
//!
//! Names: redis_exporter's where it has one (`redis_` prefix, `redis_commands_total{cmd}`,
//! `redis_db_keys{db}`, ...), so that its dashboards and alerts work unchanged; `kiln_`
//! for figures only Kiln has (per worker thread). The list is in docs/COMPATIBILITY.md.
//!
//! Only `main` uses this module (it is no part of the server's import loop).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::server::Server;

/// A family's type, as `# TYPE` names it.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Summary,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Summary => "summary",
            Self::Histogram => "histogram",
        }
    }
}

use Kind::{Counter, Gauge};

/// INFO fields exported one to one: (INFO field, metric, kind, help). A field's value is
/// its number; `ok`/`up` read 1 and `err`/`down` 0.
#[rustfmt::skip]
const FIELDS: &[(&str, &str, Kind, &str)] = &[
    // Server
    ("uptime_in_seconds", "redis_uptime_in_seconds", Gauge, "Seconds since the server started."),
    ("process_id", "redis_process_id", Gauge, "The server's process id."),
    ("configured_hz", "redis_config_hz", Gauge, "The configured hz."),
    // Clients
    ("connected_clients", "redis_connected_clients", Gauge, "Client connections (replicas excluded)."),
    ("blocked_clients", "redis_blocked_clients", Gauge, "Clients blocked in a blocking command or a pause."),
    ("maxclients", "redis_config_maxclients", Gauge, "The maxclients setting."),
    ("client_recent_max_input_buffer", "redis_client_recent_max_input_buffer_bytes", Gauge, "The largest client query buffer."),
    ("client_recent_max_output_buffer", "redis_client_recent_max_output_buffer_bytes", Gauge, "The largest client output buffer."),
    // Memory
    ("used_memory", "redis_memory_used_bytes", Gauge, "Bytes allocated."),
    ("used_memory_rss", "redis_memory_used_rss_bytes", Gauge, "Resident set size of the process."),
    ("used_memory_peak", "redis_memory_used_peak_bytes", Gauge, "Highest used_memory seen."),
    ("used_memory_overhead", "redis_memory_used_overhead_bytes", Gauge, "Bytes not holding the dataset."),
    ("used_memory_startup", "redis_memory_used_startup_bytes", Gauge, "Bytes allocated at start."),
    ("used_memory_dataset", "redis_memory_used_dataset_bytes", Gauge, "Bytes holding the dataset."),
    ("used_memory_lua", "redis_memory_used_lua_bytes", Gauge, "Bytes used by the Lua engine."),
    ("used_memory_scripts", "redis_memory_used_scripts_bytes", Gauge, "Bytes of cached scripts."),
    ("maxmemory", "redis_memory_max_bytes", Gauge, "The maxmemory setting (0: no limit)."),
    ("total_system_memory", "redis_total_system_memory_bytes", Gauge, "RAM of the machine."),
    ("allocator_allocated", "redis_allocator_allocated_bytes", Gauge, "jemalloc's allocated bytes."),
    ("allocator_active", "redis_allocator_active_bytes", Gauge, "jemalloc's active bytes."),
    ("allocator_resident", "redis_allocator_resident_bytes", Gauge, "jemalloc's resident bytes."),
    ("mem_fragmentation_ratio", "redis_mem_fragmentation_ratio", Gauge, "used_memory_rss / used_memory."),
    ("mem_clients_normal", "redis_mem_clients_normal", Gauge, "Bytes held by normal clients' buffers."),
    ("mem_clients_slaves", "redis_mem_clients_slaves", Gauge, "Bytes held by replicas' buffers."),
    ("number_of_cached_scripts", "redis_number_of_cached_scripts", Gauge, "Scripts cached by EVAL and SCRIPT LOAD."),
    ("lazyfree_pending_objects", "redis_lazyfree_pending_objects", Gauge, "Objects waiting to be freed."),
    // Persistence
    ("loading", "redis_loading_dump_file", Gauge, "A dump file is being loaded."),
    ("rdb_changes_since_last_save", "redis_rdb_changes_since_last_save", Gauge, "Changes since the last save."),
    ("rdb_bgsave_in_progress", "redis_rdb_bgsave_in_progress", Gauge, "A BGSAVE runs."),
    ("rdb_last_save_time", "redis_rdb_last_save_timestamp_seconds", Gauge, "Unix time of the last successful save."),
    ("rdb_last_bgsave_status", "redis_rdb_last_bgsave_status", Gauge, "1 if the last BGSAVE succeeded."),
    ("rdb_last_bgsave_time_sec", "redis_rdb_last_bgsave_duration_sec", Gauge, "Seconds the last BGSAVE took."),
    ("rdb_current_bgsave_time_sec", "redis_rdb_current_bgsave_duration_sec", Gauge, "Seconds the running BGSAVE has taken (-1: none)."),
    ("rdb_saves", "redis_rdb_saves_total", Counter, "Snapshots saved."),
    ("aof_enabled", "redis_aof_enabled", Gauge, "appendonly is on."),
    ("aof_rewrite_in_progress", "redis_aof_rewrite_in_progress", Gauge, "An AOF rewrite runs."),
    ("aof_rewrite_scheduled", "redis_aof_rewrite_scheduled", Gauge, "An AOF rewrite waits to start."),
    ("aof_last_bgrewrite_status", "redis_aof_last_bgrewrite_status", Gauge, "1 if the last AOF rewrite succeeded."),
    ("aof_last_write_status", "redis_aof_last_write_status", Gauge, "1 if the last AOF write succeeded."),
    ("aof_rewrites", "redis_aof_rewrites_total", Counter, "AOF rewrites done."),
    ("aof_current_size", "redis_aof_current_size_bytes", Gauge, "Size of the AOF."),
    ("aof_base_size", "redis_aof_base_size_bytes", Gauge, "Size of the AOF at its last rewrite."),
    // Stats
    ("total_connections_received", "redis_connections_received_total", Counter, "Connections accepted."),
    ("total_commands_processed", "redis_commands_processed_total", Counter, "Commands run."),
    ("instantaneous_ops_per_sec", "redis_instantaneous_ops_per_sec", Gauge, "Commands per second, recently."),
    ("total_net_input_bytes", "redis_net_input_bytes_total", Counter, "Bytes read from clients."),
    ("total_net_output_bytes", "redis_net_output_bytes_total", Counter, "Bytes written to clients."),
    ("total_net_repl_input_bytes", "redis_net_repl_input_bytes_total", Counter, "Bytes read from the primary."),
    ("total_net_repl_output_bytes", "redis_net_repl_output_bytes_total", Counter, "Bytes written to replicas."),
    ("instantaneous_input_kbps", "redis_instantaneous_input_kbps", Gauge, "Input KiB per second, recently."),
    ("instantaneous_output_kbps", "redis_instantaneous_output_kbps", Gauge, "Output KiB per second, recently."),
    ("rejected_connections", "redis_rejected_connections_total", Counter, "Connections refused (maxclients)."),
    ("sync_full", "redis_replica_resyncs_full", Counter, "Full resynchronisations served."),
    ("sync_partial_ok", "redis_replica_partial_resync_accepted", Counter, "Partial resynchronisations accepted."),
    ("sync_partial_err", "redis_replica_partial_resync_denied", Counter, "Partial resynchronisations denied."),
    ("expired_keys", "redis_expired_keys_total", Counter, "Keys expired."),
    ("evicted_keys", "redis_evicted_keys_total", Counter, "Keys evicted (maxmemory)."),
    ("evicted_clients", "redis_evicted_clients_total", Counter, "Clients evicted (maxmemory-clients)."),
    ("keyspace_hits", "redis_keyspace_hits_total", Counter, "Key lookups that found the key."),
    ("keyspace_misses", "redis_keyspace_misses_total", Counter, "Key lookups that did not."),
    ("pubsub_channels", "redis_pubsub_channels", Gauge, "Channels with subscribers."),
    ("pubsub_patterns", "redis_pubsub_patterns", Gauge, "Pattern subscriptions."),
    ("pubsubshard_channels", "redis_pubsubshard_channels", Gauge, "Shard channels with subscribers."),
    ("total_error_replies", "redis_total_error_replies", Counter, "Error replies sent."),
    // Replication
    ("connected_slaves", "redis_connected_slaves", Gauge, "Replicas attached."),
    ("master_repl_offset", "redis_master_repl_offset", Gauge, "The replication offset."),
    ("repl_backlog_size", "redis_repl_backlog_size_bytes", Gauge, "The replication backlog's size."),
    ("master_link_status", "redis_master_link_up", Gauge, "1 if the link to the primary is up (replicas)."),
    ("master_last_io_seconds_ago", "redis_master_last_io_seconds_ago", Gauge, "Seconds since the primary was heard (replicas)."),
    ("master_sync_in_progress", "redis_master_sync_in_progress", Gauge, "A full sync from the primary runs (replicas)."),
    ("slave_repl_offset", "redis_slave_repl_offset", Gauge, "The offset applied from the primary (replicas)."),
    // CPU
    ("used_cpu_sys", "redis_cpu_sys_seconds_total", Counter, "System CPU time."),
    ("used_cpu_user", "redis_cpu_user_seconds_total", Counter, "User CPU time."),
];

/// The whole exposition: every family with its `# HELP` and `# TYPE`, then its samples.
pub fn render(server: &Server) -> String {
    let start = crate::clock::instant();
    let text = crate::command::server::info::everything(server);
    let info = Info::parse(&text);
    let mut w = Writer::default();

    w.family("redis_up", Gauge, "1: the server answered.");
    w.sample("redis_up", &[], 1.0);
    w.family(
        "redis_instance_info",
        Gauge,
        "Facts about the server, as labels.",
    );
    let label = |f| info.get(f).unwrap_or("");
    let role = if info.get("role") == Some("slave") {
        "slave"
    } else {
        "master"
    };
    w.sample(
        "redis_instance_info",
        &[
            ("role", role),
            ("redis_version", label("redis_version")),
            ("kiln_version", label("kiln_version")),
            ("redis_mode", label("redis_mode")),
            ("os", label("os")),
            ("tcp_port", label("tcp_port")),
            ("run_id", label("run_id")),
            ("maxmemory_policy", label("maxmemory_policy")),
        ],
        1.0,
    );

    for &(field, metric, kind, help) in FIELDS {
        if let Some(v) = info.get(field).and_then(number) {
            w.family(metric, kind, help);
            w.sample(metric, &[], v);
        }
    }

    replicas(&mut w, &info);
    keyspace(&mut w, &info, server.keyspace.dbs.len());
    commands(&mut w, &info, server);
    errors(&mut w, &info);
    threads(&mut w, server);

    w.family(
        "kiln_exporter_scrape_duration_seconds",
        Gauge,
        "Seconds this exposition took to compute.",
    );
    let took = crate::clock::instant().saturating_duration_since(start);
    w.sample(
        "kiln_exporter_scrape_duration_seconds",
        &[],
        took.as_secs_f64(),
    );
    w.out
}

/// Attached replicas (`slaveN:ip=...,port=...,state=...,offset=...,lag=...`): their acked
/// offset, the seconds since their last ack, and how many bytes they are behind.
fn replicas(w: &mut Writer, info: &Info) {
    let master = info.get("master_repl_offset").and_then(number);
    let list: Vec<HashMap<&str, &str>> = (0..)
        .map_while(|i| info.get(&format!("slave{i}")).map(pairs))
        .collect();
    if list.is_empty() {
        return;
    }
    let families = [
        (
            "redis_connected_slave_offset_bytes",
            "The offset a replica acknowledged.",
        ),
        (
            "redis_connected_slave_lag_seconds",
            "Seconds since a replica acknowledged.",
        ),
        (
            "kiln_connected_replica_lag_bytes",
            "Bytes of the stream a replica has not acknowledged (master_repl_offset - offset).",
        ),
    ];
    for (j, (name, help)) in families.into_iter().enumerate() {
        w.family(name, Gauge, help);
        for r in &list {
            let get = |k| r.get(k).copied().unwrap_or("");
            let labels = [
                ("slave_ip", get("ip")),
                ("slave_port", get("port")),
                ("slave_state", get("state")),
            ];
            let offset = number(get("offset"));
            let v = match j {
                0 => offset,
                1 => number(get("lag")),
                _ => master.zip(offset).map(|(m, o)| (m - o).max(0.0)),
            };
            if let Some(v) = v {
                w.sample(name, &labels, v);
            }
        }
    }
}

/// Keys and keys with a deadline per database, every database (0 where INFO keyspace
/// lists none), when INFO had its keyspace section.
fn keyspace(w: &mut Writer, info: &Info, databases: usize) {
    if !info.sections.contains(&"Keyspace") {
        return;
    }
    let dbs: Vec<(String, HashMap<&str, &str>)> = (0..databases)
        .map(|i| {
            let name = format!("db{i}");
            let fields = info.get(&name).map(pairs).unwrap_or_default();
            (name, fields)
        })
        .collect();
    for (metric, field, help) in [
        ("redis_db_keys", "keys", "Keys in a database."),
        (
            "redis_db_keys_expiring",
            "expires",
            "Keys with a deadline in a database.",
        ),
    ] {
        w.family(metric, Gauge, help);
        for (name, fields) in &dbs {
            let v = fields.get(field).and_then(|v| number(v)).unwrap_or(0.0);
            w.sample(metric, &[("db", name)], v);
        }
    }
}

/// Per command: calls, time, rejected and failed calls (INFO commandstats), latency
/// percentiles (INFO latencystats) as a summary, and the latency histogram.
fn commands(w: &mut Writer, info: &Info, server: &Server) {
    let stats: Vec<(&str, HashMap<&str, &str>)> = info
        .fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("cmdstat_")?, pairs(v))))
        .collect();
    let count = |m: &HashMap<&str, &str>, k| m.get(k).and_then(|v| number(v)).unwrap_or(0.0);
    // (metric, help, commandstats field, scale)
    for (metric, help, field, scale) in [
        ("redis_commands_total", "Calls of a command.", "calls", 1.0),
        (
            "redis_commands_duration_seconds_total",
            "Seconds spent in a command.",
            "usec",
            1e-6,
        ),
        (
            "redis_commands_rejected_calls_total",
            "Calls of a command refused before it ran (arity, ACL, OOM, ...).",
            "rejected_calls",
            1.0,
        ),
        (
            "redis_commands_failed_calls_total",
            "Calls of a command that answered an error.",
            "failed_calls",
            1.0,
        ),
    ] {
        if stats.is_empty() {
            break;
        }
        w.family(metric, Counter, help);
        for (cmd, m) in &stats {
            w.sample(metric, &[("cmd", cmd)], count(m, field) * scale);
        }
    }
    let calls_usec = |cmd: &str| {
        stats
            .iter()
            .find(|(c, _)| *c == cmd)
            .map_or((0.0, 0.0), |(_, m)| (count(m, "calls"), count(m, "usec")))
    };

    // INFO latencystats: `latency_percentiles_usec_<cmd>:p50=1.003,p99=...`.
    let percentiles: Vec<(&str, Vec<(f64, f64)>)> = info
        .fields
        .iter()
        .filter_map(|(k, v)| {
            let cmd = k.strip_prefix("latency_percentiles_usec_")?;
            let qs = v
                .split(',')
                .filter_map(|p| {
                    let (q, v) = p.strip_prefix('p')?.split_once('=')?;
                    // p99.9 is quantile 0.999, not 0.9990000000000001.
                    let q = (q.parse::<f64>().ok()? * 1e6).round() / 1e8;
                    Some((q, v.parse().ok()?))
                })
                .collect();
            Some((cmd, qs))
        })
        .collect();
    if !percentiles.is_empty() {
        let name = "redis_latency_percentiles_usec";
        w.family(
            name,
            Kind::Summary,
            "Latency percentiles of a command in microseconds (latency-tracking-info-percentiles).",
        );
        for (cmd, qs) in &percentiles {
            for (q, v) in qs {
                w.sample(name, &[("cmd", cmd), ("quantile", &fmt_float(*q))], *v);
            }
            let (calls, usec) = calls_usec(cmd);
            w.sample(&format!("{name}_sum"), &[("cmd", cmd)], usec);
            w.sample(&format!("{name}_count"), &[("cmd", cmd)], calls);
        }
    }

    // The histograms LATENCY HISTOGRAM reads, at fixed bounds: 1 µs to 2^20 µs (~1 s).
    let name = "redis_commands_latencies_usec";
    let mut first = true;
    for (id, cmd) in server.commands.names.iter().enumerate() {
        let Some(h) = server.metrics.stats.latency_histogram(id) else {
            continue;
        };
        if first {
            w.family(
                name,
                Kind::Histogram,
                "Latency of a command in microseconds (latency-tracking), cumulative buckets.",
            );
            first = false;
        }
        let bucket = format!("{name}_bucket");
        for k in 0..=20 {
            let le = 1u64 << k;
            let n = h.count_at_most_usec(le) as f64;
            w.sample(&bucket, &[("cmd", cmd), ("le", &le.to_string())], n);
        }
        w.sample(&bucket, &[("cmd", cmd), ("le", "+Inf")], h.total as f64);
        w.sample(&format!("{name}_sum"), &[("cmd", cmd)], calls_usec(cmd).1);
        w.sample(&format!("{name}_count"), &[("cmd", cmd)], h.total as f64);
    }
}

/// Error replies by their first word (INFO errorstats).
fn errors(w: &mut Writer, info: &Info) {
    let errs: Vec<(&str, f64)> = info
        .fields
        .iter()
        .filter_map(|(k, v)| {
            let code = k.strip_prefix("errorstat_")?;
            Some((code, number(pairs(v).get("count")?)?))
        })
        .collect();
    if errs.is_empty() {
        return;
    }
    w.family(
        "redis_errors_total",
        Counter,
        "Error replies by error code.",
    );
    for (code, n) in errs {
        w.sample("redis_errors_total", &[("err", code)], n);
    }
}

/// Kiln's own: the counters INFO sums over threads, per thread (`worker-<i>`, `accept`,
/// and `other` for the cron, replication links and loading).
fn threads(w: &mut Writer, server: &Server) {
    let workers = server.process.threads;
    let name = |i: usize| match i {
        i if i < workers => format!("worker-{i}"),
        i if i == workers => "accept".to_string(),
        _ => "other".to_string(),
    };
    type Field = fn(&crate::server::ThreadStats) -> &std::sync::atomic::AtomicU64;
    #[rustfmt::skip]
    let families: [(&str, &str, Field); 4] = [
        ("kiln_thread_commands_processed_total", "Commands run by a thread.", |t| &t.commands),
        ("kiln_thread_connections_received_total", "Connections a thread has served.", |t| &t.connections),
        ("kiln_thread_net_input_bytes_total", "Bytes a thread read from clients.", |t| &t.net_input),
        ("kiln_thread_net_output_bytes_total", "Bytes a thread wrote to clients.", |t| &t.net_output),
    ];
    for (metric, help, f) in families {
        w.family(metric, Counter, help);
        for (i, t) in server.metrics.stats.per_thread().enumerate() {
            let v = f(t).load(std::sync::atomic::Ordering::Relaxed);
            w.sample(metric, &[("thread", &name(i))], v as f64);
        }
    }
}

/// INFO's text as fields, and the titles of the sections it holds.
struct Info<'a> {
    fields: Vec<(&'a str, &'a str)>,
    index: HashMap<&'a str, &'a str>,
    sections: Vec<&'a str>,
}

impl<'a> Info<'a> {
    fn parse(text: &'a str) -> Self {
        let mut fields = Vec::new();
        let mut sections = Vec::new();
        for line in text.lines() {
            if let Some(title) = line.strip_prefix("# ") {
                sections.push(title.trim());
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k, v.trim_end()));
            }
        }
        let index = fields.iter().copied().collect();
        Self {
            fields,
            index,
            sections,
        }
    }

    fn get(&self, field: &str) -> Option<&'a str> {
        self.index.get(field).copied()
    }
}

/// `a=1,b=2` as a map.
fn pairs(v: &str) -> HashMap<&str, &str> {
    v.split(',').filter_map(|p| p.split_once('=')).collect()
}

/// An INFO value as a number: digits, or the words INFO uses for states.
fn number(v: &str) -> Option<f64> {
    match v {
        "ok" | "up" => Some(1.0),
        "err" | "down" => Some(0.0),
        _ => v.parse().ok().filter(|f: &f64| f.is_finite()),
    }
}

/// A float as Prometheus reads it (`+Inf`, `-Inf`, `NaN` spelt its way).
fn fmt_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// The exposition being written.
#[derive(Default)]
struct Writer {
    out: String,
}

impl Writer {
    /// Starts a family: its `# HELP` and `# TYPE` lines.
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = write!(
            self.out,
            "# HELP {name} {}\n# TYPE {name} {}\n",
            escape(help, false),
            kind.name()
        );
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v, true));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", fmt_float(v));
    }
}

/// Escapes a HELP text (`\` and newline) or a label value (also `"`).
fn escape(s: &str, quotes: bool) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '"' if quotes => o.push_str("\\\""),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_values_read_as_numbers() {
        assert_eq!(number("12"), Some(12.0));
        assert_eq!(number("1.50"), Some(1.5));
        assert_eq!(number("ok"), Some(1.0));
        assert_eq!(number("down"), Some(0.0));
        assert_eq!(number("0.00%"), None);
        assert_eq!(number("inf"), None);
    }

    #[test]
    fn samples_escape_labels_and_spell_floats() {
        let mut w = Writer::default();
        w.family("a_b", Kind::Summary, "Line\\one\nline two.");
        w.sample("a_b", &[("x", "q\"\\\n"), ("y", "2")], f64::INFINITY);
        w.sample("a_b", &[], 0.5);
        assert_eq!(
            w.out,
            "# HELP a_b Line\\\\one\\nline two.\n# TYPE a_b summary\n\
             a_b{x=\"q\\\"\\\\\\n\",y=\"2\"} +Inf\na_b 0.5\n"
        );
    }

    #[test]
    fn info_text_parses_into_fields_and_sections() {
        let text = "# Server\r\nredis_version:7.0.15\r\n\r\n# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n";
        let info = Info::parse(text);
        assert_eq!(info.sections, ["Server", "Keyspace"]);
        assert_eq!(info.get("redis_version"), Some("7.0.15"));
        let db = pairs(info.get("db0").unwrap());
        assert_eq!((db["keys"], db["expires"]), ("2", "1"));
        let mut w = Writer::default();
        keyspace(&mut w, &info, 2);
        assert!(w.out.contains("redis_db_keys{db=\"db0\"} 2\n"));
        assert!(w.out.contains("redis_db_keys{db=\"db1\"} 0\n"));
        assert!(w.out.contains("redis_db_keys_expiring{db=\"db0\"} 1\n"));
    }

    #[test]
    fn replicas_report_their_lag_in_bytes() {
        let text = "master_repl_offset:100\r\nslave0:ip=10.0.0.1,port=7000,state=online,offset=60,lag=1\r\n";
        let mut w = Writer::default();
        replicas(&mut w, &Info::parse(text));
        let labels = "{slave_ip=\"10.0.0.1\",slave_port=\"7000\",slave_state=\"online\"}";
        for line in [
            format!("redis_connected_slave_offset_bytes{labels} 60"),
            format!("redis_connected_slave_lag_seconds{labels} 1"),
            format!("kiln_connected_replica_lag_bytes{labels} 40"),
        ] {
            assert!(w.out.contains(&line), "{line} in\n{}", w.out);
        }
    }
}
