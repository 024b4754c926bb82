//! The Prometheus endpoint (`metrics-port`, a Kiln-only feature): scraped over raw HTTP,
//! the whole exposition parsed by a small text-format parser written here (so a malformed
//! line anywhere fails the test), then checked against what the test did. Also: the HTTP
//! side's answers (404, 405, 431, keep-alive) and that a client holding the metrics port
//! does not stop the Redis port.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::{free_port, wait_until, TestServer};

/// One sample: metric name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: the `# TYPE` of each family, and every sample in order.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(v: &str) -> f64 {
    match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => v.parse().unwrap_or_else(|_| panic!("bad value {v:?}")),
    }
}

/// The family a sample belongs to: histogram and summary samples carry a suffix.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    if types.contains_key(name) {
        return name;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            ) {
                return base;
            }
        }
    }
    panic!("sample {name} has no # TYPE line before it");
}

/// Parses the text format, version 0.0.4, strictly enough to catch what Prometheus
/// would reject.
fn parse(text: &str) -> Exposition {
    let mut e = Exposition::default();
    let mut seen_families: Vec<String> = Vec::new();
    for line in text.split('\n') {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let words: Vec<&str> = rest.trim_start().splitn(3, ' ').collect();
            match words.first() {
                Some(&"TYPE") => {
                    let (name, ty) = (words[1], words[2]);
                    assert!(valid_name(name), "{line}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                        "{line}"
                    );
                    assert!(
                        e.types.insert(name.to_string(), ty.to_string()).is_none(),
                        "two TYPE lines for {name}"
                    );
                }
                Some(&"HELP") => assert!(valid_name(words[1]), "{line}"),
                _ => {}
            }
            continue;
        }
        // name{labels} value [timestamp]
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("no value: {line}"),
        };
        assert!(valid_name(name), "bad name in {line}");
        let mut labels = BTreeMap::new();
        let rest = if let Some(mut r) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = r.strip_prefix('}') {
                    break after;
                }
                let eq = r.find('=').unwrap_or_else(|| panic!("{line}"));
                let key = &r[..eq];
                assert!(
                    valid_name(key) && !key.contains(':'),
                    "label {key} in {line}"
                );
                r = r[eq + 1..].strip_prefix('"').expect("quoted label value");
                let mut value = String::new();
                let mut chars = r.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c @ ('\\' | '"'))) => value.push(c),
                            other => panic!("bad escape {other:?} in {line}"),
                        },
                        Some((i, '"')) => break i,
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated label value in {line}"),
                    }
                };
                assert!(labels.insert(key.to_string(), value).is_none(), "{line}");
                r = &r[end + 1..];
                r = r.strip_prefix(',').unwrap_or(r);
            }
        } else {
            rest
        };
        let mut parts = rest.trim_start_matches(' ').split(' ');
        let value = parse_value(parts.next().unwrap());
        if let Some(ts) = parts.next() {
            ts.parse::<i64>().expect("timestamp");
        }
        assert!(parts.next().is_none(), "trailing text in {line}");
        let family = family_of(name, &e.types).to_string();
        // A family's samples are contiguous.
        if seen_families.last() != Some(&family) {
            assert!(
                !seen_families.contains(&family),
                "family {family} split in two"
            );
            seen_families.push(family);
        }
        e.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    e.check_histograms();
    e
}

/// A histogram bucket: its bound and its cumulative count.
type Bucket = (f64, f64);

impl Exposition {
    /// Every histogram's buckets are cumulative, end with `le="+Inf"`, and that bucket
    /// equals `_count`.
    fn check_histograms(&self) {
        for (family, ty) in &self.types {
            if ty != "histogram" {
                continue;
            }
            // Each series (labels but `le`): its (le, count) buckets in order.
            let mut series: BTreeMap<Vec<(String, String)>, Vec<Bucket>> = BTreeMap::new();
            for s in self
                .samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
            {
                let mut rest = s.labels.clone();
                let le = parse_value(&rest.remove("le").expect("le label"));
                series
                    .entry(rest.into_iter().collect())
                    .or_default()
                    .push((le, s.value));
            }
            assert!(!series.is_empty(), "histogram {family} without buckets");
            for (labels, buckets) in series {
                for w in buckets.windows(2) {
                    assert!(w[0].0 < w[1].0, "{family} {labels:?}: le out of order");
                    assert!(w[0].1 <= w[1].1, "{family} {labels:?}: not cumulative");
                }
                let last = buckets.last().unwrap();
                assert_eq!(
                    last.0,
                    f64::INFINITY,
                    "{family} {labels:?} ends without +Inf"
                );
                let labels: BTreeMap<String, String> = labels.into_iter().collect();
                let count = self.value(&format!("{family}_count"), &labels);
                assert_eq!(Some(last.1), count, "{family} {labels:?}: +Inf != _count");
            }
        }
    }

    fn value(&self, name: &str, labels: &BTreeMap<String, String>) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && &s.labels == labels)
            .map(|s| s.value)
    }

    /// The value of `name` with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.value(name, &labels)
    }
}

/// One HTTP response read off a stream: status line, headers (lowercase names), body.
struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Reads one response whose body has a Content-Length (all of ours do).
fn read_response(s: &mut TcpStream, head_only: bool) -> Option<Response> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => buf.push(b[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers: BTreeMap<String, String> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let len: usize = headers["content-length"].parse().unwrap();
    let mut body = vec![0u8; if head_only { 0 } else { len }];
    s.read_exact(&mut body).unwrap();
    Some(Response {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    })
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn request(port: u16, text: &str) -> Response {
    let mut s = connect(port);
    s.write_all(text.as_bytes()).unwrap();
    read_response(&mut s, text.starts_with("HEAD")).expect("a response")
}

fn scrape(port: u16) -> Exposition {
    let r = request(
        port,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&r.body)
}

/// A server with the endpoint on, and its metrics port.
fn server() -> (TestServer, u16) {
    let mport = free_port();
    let s = TestServer::kiln(&["--metrics-port", &mport.to_string()]);
    (s, mport)
}

#[test]
fn scrape_reports_what_the_clients_did() {
    let (s, mport) = server();
    let mut raw = s.raw();
    for i in 0..7 {
        assert_eq!(raw.cmd(&["SET", &format!("k{i}"), "v"]), "+OK\r\n");
    }
    raw.cmd(&["SET", "ttl", "v", "EX", "100"]);
    raw.cmd(&["GET", "k1"]);
    raw.cmd(&["GET", "missing"]);
    raw.cmd(&["INCR", "k1"]); // an error: failed_calls
    raw.cmd(&["GET"]); // wrong arity: rejected_calls
    raw.cmd(&["SELECT", "3"]);
    raw.cmd(&["SET", "in3", "v"]);
    let mut second = s.raw();
    assert_eq!(second.cmd(&["PING"]), "+PONG\r\n");

    let m = scrape(mport);
    let cmd = |name: &str, c: &str| m.get(name, &[("cmd", c)]);
    assert_eq!(cmd("redis_commands_total", "set"), Some(9.0));
    assert_eq!(cmd("redis_commands_total", "get"), Some(2.0));
    assert_eq!(cmd("redis_commands_rejected_calls_total", "get"), Some(1.0));
    assert_eq!(cmd("redis_commands_failed_calls_total", "incr"), Some(1.0));
    assert!(cmd("redis_commands_duration_seconds_total", "set").unwrap() > 0.0);
    assert_eq!(m.get("redis_db_keys", &[("db", "db0")]), Some(8.0));
    assert_eq!(m.get("redis_db_keys_expiring", &[("db", "db0")]), Some(1.0));
    assert_eq!(m.get("redis_db_keys", &[("db", "db3")]), Some(1.0));
    assert_eq!(m.get("redis_db_keys", &[("db", "db15")]), Some(0.0));
    assert_eq!(m.get("redis_connected_clients", &[]), Some(2.0));
    // GET k1 (INCR's write lookup counts nothing, as in Redis); GET missing.
    assert_eq!(m.get("redis_keyspace_hits_total", &[]), Some(1.0));
    assert_eq!(m.get("redis_keyspace_misses_total", &[]), Some(1.0));
    assert_eq!(m.get("redis_errors_total", &[("err", "ERR")]), Some(2.0));
    assert_eq!(m.get("redis_up", &[]), Some(1.0));
    assert!(m.get("redis_memory_used_bytes", &[]).unwrap() > 0.0);
    assert_eq!(m.get("redis_connected_slaves", &[]), Some(0.0));
    assert_eq!(m.get("redis_rdb_last_bgsave_status", &[]), Some(1.0));
    assert_eq!(m.types["redis_commands_total"], "counter");
    // The scrape itself is no command: it does not count an INFO call (the harness's
    // start-up check may have made one).
    let infos = cmd("redis_commands_total", "info");
    assert_eq!(
        scrape(mport).get("redis_commands_total", &[("cmd", "info")]),
        infos
    );
    // Latency: the histogram counts every SET; the summary has the configured quantiles.
    assert_eq!(m.types["redis_commands_latencies_usec"], "histogram");
    assert_eq!(
        m.get(
            "redis_commands_latencies_usec_bucket",
            &[("cmd", "set"), ("le", "+Inf")]
        ),
        Some(9.0)
    );
    assert_eq!(m.types["redis_latency_percentiles_usec"], "summary");
    for q in ["0.5", "0.99", "0.999"] {
        assert!(
            m.get(
                "redis_latency_percentiles_usec",
                &[("cmd", "set"), ("quantile", q)]
            )
            .is_some(),
            "quantile {q}"
        );
    }
    // Per thread: the workers' commands add up to the total.
    let per_thread: f64 = m
        .samples
        .iter()
        .filter(|s| s.name == "kiln_thread_commands_processed_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(
        Some(per_thread),
        m.get("redis_commands_processed_total", &[])
    );
    let info = m
        .samples
        .iter()
        .find(|s| s.name == "redis_instance_info")
        .unwrap();
    assert_eq!(info.labels["role"], "master");
    assert_eq!(info.labels["tcp_port"], s.port.to_string());
    // The same figures INFO gives.
    for (field, metric) in [
        ("total_commands_processed", "redis_commands_processed_total"),
        (
            "total_connections_received",
            "redis_connections_received_total",
        ),
        ("keyspace_misses", "redis_keyspace_misses_total"),
    ] {
        let info: f64 = raw.info_field("stats", field).unwrap().parse().unwrap();
        // INFO's own calls run after the scrape.
        let counted = m.get(metric, &[]).unwrap();
        assert!(
            info >= counted && info <= counted + 3.0,
            "{field}: {info} vs {counted}"
        );
    }
}

#[test]
fn other_paths_and_methods_are_refused() {
    let (_s, mport) = server();
    assert_eq!(request(mport, "GET / HTTP/1.1\r\n\r\n").status, 404);
    assert_eq!(request(mport, "GET /metricsx HTTP/1.1\r\n\r\n").status, 404);
    let r = request(mport, "DELETE /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "GET, HEAD");
    assert_eq!(request(mport, "garbage\r\n\r\n").status, 400);
    let head = request(mport, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.headers["content-length"].parse::<usize>().unwrap() > 0);
    assert_eq!(
        request(mport, "GET /metrics?name[]=x HTTP/1.0\r\n\r\n").headers["connection"],
        "close"
    );
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let (_s, mport) = server();
    let mut c = connect(mport);
    // Two requests in one write, then a third.
    c.write_all(b"GET /metrics HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n")
        .unwrap();
    let a = read_response(&mut c, false).unwrap();
    assert_eq!(a.status, 200);
    parse(&a.body);
    assert_eq!(read_response(&mut c, false).unwrap().status, 404);
    c.write_all(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let last = read_response(&mut c, false).unwrap();
    assert_eq!(last.headers["connection"], "close");
    let mut rest = Vec::new();
    assert_eq!(c.read_to_end(&mut rest).unwrap_or(0), 0);
}

#[test]
fn an_oversized_request_head_is_refused_and_closed() {
    let (_s, mport) = server();
    let mut c = connect(mport);
    let mut req = String::from("GET /metrics HTTP/1.1\r\n");
    while req.len() < 9000 {
        req.push_str("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    // No blank line: the head never ends, it only grows past the limit.
    let _ = c.write_all(req.as_bytes());
    let r = read_response(&mut c, false).expect("a 431 answer");
    assert_eq!(r.status, 431);
    let mut rest = Vec::new();
    let closed = match c.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "the connection stays open");
}

#[test]
fn a_silent_metrics_client_does_not_stop_the_redis_port() {
    let (s, mport) = server();
    // Clients that connect and send nothing, or half a request, and hold on.
    let silent: Vec<TcpStream> = (0..8).map(|_| connect(mport)).collect();
    let mut half = connect(mport);
    half.write_all(b"GET /metr").unwrap();
    let mut raw = s.raw();
    for i in 0..50 {
        assert_eq!(raw.cmd(&["SET", "k", &i.to_string()]), "+OK\r\n");
    }
    assert_eq!(raw.cmd(&["PING"]), "+PONG\r\n");
    // And the endpoint still answers others meanwhile.
    wait_until("a scrape while others hold connections", || {
        scrape(mport).get("redis_commands_total", &[("cmd", "set")]) == Some(50.0)
    });
    drop(silent);
}

#[test]
fn the_endpoint_is_off_by_default() {
    let s = TestServer::kiln(&[]);
    let mut raw = s.raw();
    let got = raw.cmd(&["CONFIG", "GET", "metrics-*"]);
    assert!(got.contains("metrics-port\r\n$1\r\n0\r\n"), "{got}");
    assert!(got.contains("metrics-bind\r\n$9\r\n127.0.0.1\r\n"), "{got}");
    assert!(raw
        .cmd(&["CONFIG", "SET", "metrics-port", "9"])
        .starts_with("-ERR"));
}

#[test]
fn replicas_are_listed_with_their_lag_and_the_replica_knows_its_role() {
    let (primary, mport) = server();
    let rport = free_port();
    let replica = TestServer::kiln(&[
        "--replicaof",
        "127.0.0.1",
        &primary.port.to_string(),
        "--metrics-port",
        &rport.to_string(),
    ]);
    let mut raw = primary.raw();
    raw.cmd(&["SET", "a", "1"]);
    wait_until("the replica online in the primary's metrics", || {
        let m = scrape(mport);
        m.samples.iter().any(|s| {
            s.name == "kiln_connected_replica_lag_bytes"
                && s.labels["slave_state"] == "online"
                && s.labels["slave_port"] == replica.port.to_string()
                && s.value == 0.0
        }) && m.get("redis_connected_slaves", &[]) == Some(1.0)
    });
    let m = scrape(mport);
    let offset = m
        .samples
        .iter()
        .find(|s| s.name == "redis_connected_slave_offset_bytes")
        .unwrap();
    assert_eq!(offset.labels["slave_ip"], "127.0.0.1");
    assert_eq!(Some(offset.value), m.get("redis_master_repl_offset", &[]));
    wait_until("the replica's link up in its metrics", || {
        let r = scrape(rport);
        r.get("redis_master_link_up", &[]) == Some(1.0)
            && r.samples
                .iter()
                .any(|s| s.name == "redis_instance_info" && s.labels["role"] == "slave")
    });
}
