//! The special modes: `--scan`, `--bigkeys`/`--memkeys`, `--hotkeys`, `--latency`,
//! `--latency-history`, `--stat`, `--pipe` and `--intrinsic-latency`. Each prints what
//! redis-cli prints, in the same words and layout, and exits.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_resp::Value;

use crate::conn::{io_text, ConnError};
use crate::format::{self, repr_string, Output};
use crate::out;
use crate::session::{write_stdout, Session};

fn fail(msg: impl AsRef<str>) -> ! {
    eprintln!("{}", msg.as_ref());
    std::process::exit(1);
}

/// Whether `n` is a multiple of `period` (`u64::is_multiple_of` needs Rust 1.87).
fn multiple_of(n: u64, period: u64) -> bool {
    n.checked_rem(period) == Some(0)
}

fn sleep_us(us: u64) {
    if us > 0 {
        std::thread::sleep(Duration::from_micros(us));
    }
}

/// One `SCAN` call: the next cursor and the keys.
fn scan_once(s: &mut Session, cursor: u64, with_type: bool) -> (u64, Vec<Vec<u8>>) {
    let cur = cursor.to_string();
    let mut args: Vec<Vec<u8>> = vec![b"SCAN".to_vec(), cur.into_bytes()];
    if let Some(p) = &s.cfg.pattern {
        args.push(b"MATCH".to_vec());
        args.push(p.clone());
    }
    if let Some(c) = s.cfg.count {
        args.push(b"COUNT".to_vec());
        args.push(c.to_string().into_bytes());
    }
    if with_type {
        if let Some(t) = &s.cfg.scan_type {
            args.push(b"TYPE".to_vec());
            args.push(t.as_bytes().to_vec());
        }
    }
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    let reply = s.command_or_exit(&refs);
    if let Some(e) = format::error_text(&reply) {
        fail(format!("SCAN error: {}", String::from_utf8_lossy(e)));
    }
    let Value::Array(items) = format::unwrap_attr(&reply) else {
        fail("Non ARRAY response from SCAN!");
    };
    if items.len() != 2 {
        fail("Invalid element count from SCAN!");
    }
    let next = match &items[0] {
        Value::Bulk(b) | Value::Simple(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
        Value::Int(n) => *n as u64,
        _ => 0,
    };
    let keys = match &items[1] {
        Value::Array(k) | Value::Set(k) => k
            .iter()
            .filter_map(|k| match k {
                Value::Bulk(b) | Value::Simple(b) => Some(b.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    (next, keys)
}

/// `--scan`: every key matching `--pattern` (and `--type`), one per line.
pub fn scan_mode(s: &mut Session) -> ! {
    let mut cursor = 0;
    loop {
        let (next, keys) = scan_once(s, cursor, true);
        let mut out = Vec::new();
        for k in keys {
            if s.style.output == Output::Standard {
                format::repr(&mut out, &k);
            } else {
                out.extend_from_slice(&k);
            }
            out.push(b'\n');
        }
        write_stdout(&out);
        sleep_us(s.cfg.interval_us);
        cursor = next;
        if cursor == 0 {
            std::process::exit(0);
        }
    }
}

fn dbsize(s: &mut Session) -> u64 {
    let v = s.command_or_exit(&[b"DBSIZE"]);
    match format::unwrap_attr(&v) {
        Value::Int(n) => (*n).max(0) as u64,
        Value::Error(e) | Value::BlobError(e) => fail(format!(
            "Couldn't determine DBSIZE: {}",
            String::from_utf8_lossy(e)
        )),
        _ => fail("Non INTEGER response from DBSIZE!"),
    }
}

/// Per-type statistics of `--bigkeys` / `--memkeys`.
struct TypeStats {
    name: String,
    size_cmd: Option<&'static str>,
    unit: &'static str,
    biggest: u64,
    biggest_key: Option<String>,
    count: u64,
    total: u64,
}

impl TypeStats {
    fn new(name: &str, size_cmd: Option<&'static str>, unit: &'static str) -> Self {
        Self {
            name: name.to_string(),
            size_cmd,
            unit,
            biggest: 0,
            biggest_key: None,
            count: 0,
            total: 0,
        }
    }
}

/// Sends a batch of commands in one write and reads their replies.
fn pipeline(s: &mut Session, cmds: &[Vec<Vec<u8>>]) -> Vec<Value> {
    let Some(conn) = s.conn.as_mut() else {
        fail("\nI/O error");
    };
    for c in cmds {
        conn.append(c);
    }
    if conn.flush().is_err() {
        fail("\nI/O error");
    }
    cmds.iter()
        .map(|_| {
            conn.read_reply()
                .unwrap_or_else(|e| fail(format!("Error: {e}")))
        })
        .collect()
}

const HEADER_TAIL: &str = "# average sizes per key type.  You can use -i 0.1 to sleep 0.1 sec\n\
                           # per 100 SCAN commands (not usually needed).\n\n";

/// `--bigkeys` (element counts) and `--memkeys` (MEMORY USAGE).
pub fn big_keys(s: &mut Session, memkeys: bool, samples: Option<i64>) -> ! {
    // redis-cli reports the types in the order its hash table happens to keep them.
    let mut types = vec![
        TypeStats::new("list", Some("LLEN"), "items"),
        TypeStats::new("hash", Some("HLEN"), "fields"),
        TypeStats::new("string", Some("STRLEN"), "bytes"),
        TypeStats::new("stream", Some("XLEN"), "entries"),
        TypeStats::new("set", Some("SCARD"), "members"),
        TypeStats::new("zset", Some("ZCARD"), "members"),
    ];
    let total_keys = dbsize(s);
    out!("\n# Scanning the entire keyspace to find biggest keys as well as\n{HEADER_TAIL}");
    let (mut sampled, mut total_len, mut loops, mut cursor) = (0u64, 0u64, 0u64, 0u64);
    loop {
        let pct = 100.0 * sampled as f64 / total_keys as f64;
        let (next, keys) = scan_once(s, cursor, false);
        cursor = next;
        loops += 1;
        let type_cmds: Vec<Vec<Vec<u8>>> = keys
            .iter()
            .map(|k| vec![b"TYPE".to_vec(), k.clone()])
            .collect();
        let mut key_types: Vec<Option<usize>> = Vec::with_capacity(keys.len());
        for (k, reply) in keys.iter().zip(pipeline(s, &type_cmds)) {
            let name = match format::unwrap_attr(&reply) {
                Value::Simple(t) => String::from_utf8_lossy(t).into_owned(),
                Value::Error(e) | Value::BlobError(e) => fail(format!(
                    "TYPE returned an error: {}",
                    String::from_utf8_lossy(e)
                )),
                _ => fail(format!(
                    "Invalid reply type for TYPE on key '{}'!",
                    String::from_utf8_lossy(k)
                )),
            };
            let idx = match types.iter().position(|t| t.name == name) {
                Some(i) => Some(i),
                // A key deleted since SCAN.
                None if name == "none" => None,
                // A module type: counted, but there is no command to size it.
                None => {
                    types.push(TypeStats::new(&name, None, "?"));
                    Some(types.len() - 1)
                }
            };
            key_types.push(idx);
        }
        let mut size_cmds = Vec::new();
        let mut sized = Vec::new();
        for (i, (k, t)) in keys.iter().zip(&key_types).enumerate() {
            let Some(t) = t else { continue };
            let cmd: Vec<Vec<u8>> = if memkeys {
                let mut c = vec![b"MEMORY".to_vec(), b"USAGE".to_vec(), k.clone()];
                if let Some(n) = samples {
                    c.push(b"SAMPLES".to_vec());
                    c.push(n.to_string().into_bytes());
                }
                c
            } else if let Some(sc) = types[*t].size_cmd {
                vec![sc.as_bytes().to_vec(), k.clone()]
            } else {
                continue;
            };
            size_cmds.push(cmd);
            sized.push(i);
        }
        let mut sizes = vec![0u64; keys.len()];
        for ((i, reply), cmd) in sized.iter().zip(pipeline(s, &size_cmds)).zip(&size_cmds) {
            match format::unwrap_attr(&reply) {
                Value::Int(n) => sizes[*i] = (*n).max(0) as u64,
                _ => eprintln!(
                    "Warning:  {} on '{}' failed (may have changed type)",
                    if memkeys {
                        "MEMORY USAGE"
                    } else {
                        std::str::from_utf8(&cmd[0]).unwrap_or("?")
                    },
                    String::from_utf8_lossy(&keys[*i])
                ),
            }
        }
        let mut out = String::new();
        for (i, k) in keys.iter().enumerate() {
            let Some(t) = key_types[i] else { continue };
            let ty = &mut types[t];
            ty.total = ty.total.saturating_add(sizes[i]);
            ty.count += 1;
            total_len += k.len() as u64;
            sampled += 1;
            if ty.biggest < sizes[i] {
                let name = repr_string(k);
                out.push_str(&format!(
                    "[{pct:05.2}%] Biggest {:<6} found so far '{name}' with {} {}\n",
                    ty.name,
                    sizes[i],
                    if memkeys { "bytes" } else { ty.unit }
                ));
                ty.biggest_key = Some(name);
                ty.biggest = sizes[i];
            }
            if multiple_of(sampled, 1_000_000) {
                out.push_str(&format!("[{pct:05.2}%] Sampled {sampled} keys so far\n"));
            }
        }
        write_stdout(out.as_bytes());
        if s.cfg.interval_us > 0 && multiple_of(loops, 100) {
            sleep_us(s.cfg.interval_us);
        }
        if cursor == 0 {
            break;
        }
    }
    let mut out = String::from("\n-------- summary -------\n\n");
    out.push_str(&format!("Sampled {sampled} keys in the keyspace!\n"));
    let avg = if total_len > 0 {
        total_len as f64 / sampled as f64
    } else {
        0.0
    };
    out.push_str(&format!(
        "Total key length in bytes is {total_len} (avg len {avg:.2})\n\n"
    ));
    for t in &types {
        if let Some(k) = &t.biggest_key {
            out.push_str(&format!(
                "Biggest {:>6} found '{k}' has {} {}\n",
                t.name,
                t.biggest,
                if memkeys { "bytes" } else { t.unit }
            ));
        }
    }
    out.push('\n');
    for t in &types {
        let share = if sampled > 0 {
            100.0 * t.count as f64 / sampled as f64
        } else {
            0.0
        };
        let avg = if t.count > 0 {
            t.total as f64 / t.count as f64
        } else {
            0.0
        };
        out.push_str(&format!(
            "{} {}s with {} {} ({share:05.2}% of keys, avg size {avg:.2})\n",
            t.count,
            t.name,
            t.total,
            if memkeys { "bytes" } else { t.unit }
        ));
    }
    write_stdout(out.as_bytes());
    std::process::exit(0);
}

/// Entries kept by `--hotkeys`.
const HOTKEYS_SAMPLE: usize = 16;

/// `--hotkeys`: the keys with the highest LFU counters.
pub fn hot_keys(s: &mut Session) -> ! {
    let total_keys = dbsize(s);
    out!("\n# Scanning the entire keyspace to find hot keys as well as\n{HEADER_TAIL}");
    let mut counters = [0u64; HOTKEYS_SAMPLE];
    let mut names: [Option<String>; HOTKEYS_SAMPLE] = Default::default();
    let (mut sampled, mut loops, mut cursor) = (0u64, 0u64, 0u64);
    loop {
        let pct = 100.0 * sampled as f64 / total_keys as f64;
        let (next, keys) = scan_once(s, cursor, false);
        cursor = next;
        loops += 1;
        let cmds: Vec<Vec<Vec<u8>>> = keys
            .iter()
            .map(|k| vec![b"OBJECT".to_vec(), b"FREQ".to_vec(), k.clone()])
            .collect();
        let mut out = String::new();
        for (k, reply) in keys.iter().zip(pipeline(s, &cmds)) {
            let freq = match format::unwrap_attr(&reply) {
                Value::Int(n) => (*n).max(0) as u64,
                Value::Error(e) | Value::BlobError(e) => {
                    fail(format!("Error: {}", String::from_utf8_lossy(e)))
                }
                _ => {
                    eprintln!(
                        "Warning: OBJECT freq on '{}' failed (may have been deleted)",
                        repr_string(k)
                    );
                    0
                }
            };
            sampled += 1;
            if multiple_of(sampled, 1_000_000) {
                out.push_str(&format!("[{pct:05.2}%] Sampled {sampled} keys so far\n"));
            }
            // Keep the counters sorted ascending: find where this one belongs.
            let mut slot = 0;
            while slot < HOTKEYS_SAMPLE && freq > counters[slot] {
                slot += 1;
            }
            if slot == 0 {
                continue;
            }
            slot -= 1;
            if slot > 0 && counters[slot] != 0 {
                counters.copy_within(1..=slot, 0);
                names[..=slot].rotate_left(1);
            }
            counters[slot] = freq;
            let name = repr_string(k);
            out.push_str(&format!(
                "[{pct:05.2}%] Hot key '{name}' found so far with counter {freq}\n"
            ));
            names[slot] = Some(name);
        }
        write_stdout(out.as_bytes());
        if s.cfg.interval_us > 0 && multiple_of(loops, 100) {
            sleep_us(s.cfg.interval_us);
        }
        if cursor == 0 {
            break;
        }
    }
    let mut out =
        format!("\n-------- summary -------\n\nSampled {sampled} keys in the keyspace!\n");
    for k in (0..HOTKEYS_SAMPLE).rev() {
        if counters[k] > 0 {
            out.push_str(&format!(
                "hot key found with counter: {}\tkeyname: {}\n",
                counters[k],
                names[k].as_deref().unwrap_or("")
            ));
        }
    }
    write_stdout(out.as_bytes());
    std::process::exit(0);
}

/// Milliseconds between latency samples.
const LATENCY_SAMPLE_MS: u64 = 10;

fn latency_print(output: Output, min: i64, max: i64, avg: f64, count: i64) {
    match output {
        Output::Standard => out!("min: {min}, max: {max}, avg: {avg:.2} ({count} samples)"),
        Output::Csv => out!("{min},{max},{avg:.2},{count}\n"),
        Output::Raw => out!("{min} {max} {avg:.2} {count}\n"),
        Output::Json => {
            out!("{{\"min\": {min}, \"max\": {max}, \"avg\": {avg:.2}, \"count\": {count}}}\n")
        }
    }
}

/// `--latency` and `--latency-history`: PING round trips in milliseconds.
pub fn latency_mode(s: &mut Session) -> ! {
    let history = s.cfg.latency_history;
    let history_interval = if s.cfg.interval_us > 0 {
        Duration::from_micros(s.cfg.interval_us)
    } else {
        Duration::from_secs(15)
    };
    // Without a terminal, sample for one interval and print a single line.
    let one_shot_after = if s.cfg.interval_us > 0 {
        Duration::from_micros(s.cfg.interval_us)
    } else {
        Duration::from_secs(1)
    };
    let (mut min, mut max, mut tot, mut count) = (0i64, 0i64, 0i64, 0i64);
    let mut history_start = Instant::now();
    loop {
        let start = Instant::now();
        s.reconnecting_command(&[b"PING"]);
        let latency = start.elapsed().as_millis() as i64;
        count += 1;
        if count == 1 {
            (min, max, tot) = (latency, latency, latency);
        } else {
            min = min.min(latency);
            max = max.max(latency);
            tot = tot.saturating_add(latency);
        }
        let avg = tot as f64 / count as f64;
        if s.style.output == Output::Standard {
            out!("\x1b[0G\x1b[2K");
            latency_print(s.style.output, min, max, avg, count);
        } else if history {
            latency_print(s.style.output, min, max, avg, count);
        } else if history_start.elapsed() > one_shot_after {
            latency_print(s.style.output, min, max, avg, count);
            std::process::exit(0);
        }
        if history && history_start.elapsed() > history_interval {
            out!(
                " -- {:.2} seconds range\n",
                history_start.elapsed().as_secs_f64()
            );
            history_start = Instant::now();
            (min, max, tot, count) = (0, 0, 0, 0);
        }
        std::thread::sleep(Duration::from_millis(LATENCY_SAMPLE_MS));
    }
}

/// A field of an INFO reply (`name:value` lines).
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|v| v.split(',').next().unwrap_or(v).trim_end())
    })
}

fn info_long(info: &str, name: &str) -> i64 {
    info_field(info, name).map(crate::opts::atoi).unwrap_or(0)
}

/// `1003B`, `4.03K`, `100.00M`, `2.32G`, `3.01T`.
pub fn bytes_to_human(n: i64) -> String {
    let (sign, n) = if n < 0 {
        ("-", n.unsigned_abs())
    } else {
        ("", n as u64)
    };
    let d = n as f64;
    const K: f64 = 1024.0;
    let body = if n < 1024 {
        format!("{n}B")
    } else if d < K * K {
        format!("{:.2}K", d / K)
    } else if d < K * K * K {
        format!("{:.2}M", d / (K * K))
    } else if d < K * K * K * K {
        format!("{:.2}G", d / (K * K * K))
    } else {
        format!("{:.2}T", d / (K * K * K * K))
    };
    format!("{sign}{body}")
}

/// `--stat`: one line of server statistics per interval.
pub fn stat_mode(s: &mut Session) -> ! {
    let interval = if s.cfg.interval_us > 0 {
        s.cfg.interval_us
    } else {
        1_000_000
    };
    let mut requests: i64 = 0;
    let mut lines = 0u64;
    loop {
        let reply = s.reconnecting_command(&[b"INFO"]);
        if let Some(e) = format::error_text(&reply) {
            fail(format!("ERROR: {}", String::from_utf8_lossy(e)));
        }
        let info = match format::unwrap_attr(&reply) {
            Value::Bulk(b) | Value::Verbatim(_, b) | Value::Simple(b) => {
                String::from_utf8_lossy(b).into_owned()
            }
            _ => String::new(),
        };
        let mut out = String::new();
        if multiple_of(lines, 20) {
            out.push_str(
                "------- data ------ --------------------- load -------------------- - child -\n\
                 keys       mem      clients blocked requests            connections          \n",
            );
        }
        lines += 1;
        // Keys of every database: lines like "db0:keys=1,expires=0,avg_ttl=0".
        let keys: i64 = info
            .lines()
            .filter(|l| l.starts_with("db"))
            .filter_map(|l| l.split_once(':'))
            .filter_map(|(_, v)| v.split(',').find_map(|kv| kv.strip_prefix("keys=")))
            .map(crate::opts::atoi)
            .fold(0, i64::saturating_add);
        out.push_str(&format!("{:<11}", keys));
        out.push_str(&format!(
            "{:<8}",
            bytes_to_human(info_long(&info, "used_memory"))
        ));
        out.push_str(&format!(" {:<8}", info_long(&info, "connected_clients")));
        out.push_str(&format!("{:<8}", info_long(&info, "blocked_clients")));
        let total = info_long(&info, "total_commands_processed");
        let delta = if requests == 0 {
            0
        } else {
            total.wrapping_sub(requests)
        };
        out.push_str(&format!("{:<19}", format!("{total} (+{delta})")));
        requests = total;
        out.push_str(&format!(
            " {:<12}",
            info_long(&info, "total_connections_received")
        ));
        let child = info_long(&info, "bgsave_in_progress")
            | info_long(&info, "aof_rewrite_in_progress") << 1
            | info_long(&info, "loading") << 2;
        out.push_str(match child {
            1 => "SAVE",
            2 => "AOF",
            3 => "SAVE+AOF",
            4 => "LOAD",
            _ => "",
        });
        out.push('\n');
        write_stdout(out.as_bytes());
        sleep_us(interval);
    }
}

/// 20 unpredictable bytes (no RNG crate needed: the std hasher is randomly keyed).
fn magic_bytes() -> [u8; 20] {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let mut out = [0u8; 20];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = state.build_hasher();
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    out
}

/// `--pipe`: streams RESP from stdin to the server while counting replies and errors, then
/// sends an ECHO of random bytes: its reply proves every earlier reply arrived.
pub fn pipe_mode(s: &mut Session) -> ! {
    let Some(mut conn) = s.conn.take() else {
        fail("\nI/O error");
    };
    let mut writer = match conn.stream().try_clone() {
        Ok(w) => w,
        Err(e) => fail(format!("Error writing to the server: {}", io_text(&e))),
    };
    let magic = magic_bytes();
    let eof = Arc::new(AtomicBool::new(false));
    let eof_w = eof.clone();
    std::thread::spawn(move || {
        use std::io::Write;
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => fail(format!("Error reading from stdin: {}", io_text(&e))),
            };
            let data: Vec<u8> = if n == 0 {
                // The leading CRLF keeps the ECHO well formed after a truncated input;
                // the server ignores empty lines.
                let mut echo = b"\r\n*2\r\n$4\r\nECHO\r\n$20\r\n".to_vec();
                echo.extend_from_slice(&magic);
                echo.extend_from_slice(b"\r\n");
                eof_w.store(true, Ordering::SeqCst);
                // Printed before the ECHO goes out, so it always precedes the last reply.
                out!("All data transferred. Waiting for the last reply...\n");
                echo
            } else {
                buf[..n].to_vec()
            };
            if let Err(e) = writer.write_all(&data) {
                fail(format!("Error writing to the server: {}", io_text(&e)));
            }
            if n == 0 {
                return;
            }
        }
    });
    let _ = conn.stream().set_read_timeout(Some(Duration::from_secs(1)));
    let (mut errors, mut replies) = (0u64, 0u64);
    let mut last_reply = Instant::now();
    loop {
        match conn.read_reply() {
            Ok(v) => {
                last_reply = Instant::now();
                if let Some(e) = format::error_text(&v) {
                    eprintln!("{}", String::from_utf8_lossy(e));
                    errors += 1;
                } else if eof.load(Ordering::SeqCst) {
                    if let Value::Bulk(b) = &v {
                        if b.as_slice() == magic {
                            out!("Last reply received from server.\n");
                            break;
                        }
                    }
                }
                replies += 1;
            }
            Err(ConnError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => fail("Error reading replies from server"),
        }
        if eof.load(Ordering::SeqCst)
            && s.cfg.pipe_timeout > 0
            && last_reply.elapsed() > Duration::from_secs(s.cfg.pipe_timeout as u64)
        {
            eprintln!("No replies for {} seconds: exiting.", s.cfg.pipe_timeout);
            errors += 1;
            break;
        }
    }
    out!("errors: {errors}, replies: {replies}\n");
    std::process::exit(if errors > 0 { 1 } else { 0 });
}

/// A little work whose duration should be stable: any delay is the scheduler's.
fn busy_work(seed: u64) -> u64 {
    let mut s = [0u8; 256];
    for (i, b) in s.iter_mut().enumerate() {
        *b = i as u8;
    }
    let (mut i, mut j, mut acc) = (0u8, seed as u8, 0u64);
    for _ in 0..1000 {
        i = i.wrapping_add(1);
        j = j.wrapping_add(s[i as usize]);
        s.swap(i as usize, j as usize);
        acc = acc.wrapping_add(s[(s[i as usize].wrapping_add(s[j as usize])) as usize] as u64);
    }
    acc
}

/// `--intrinsic-latency <seconds>`: how late this process gets scheduled, without any I/O.
pub fn intrinsic_latency(seconds: i64) -> ! {
    let run_time = Duration::from_secs(seconds.max(0) as u64);
    let start_all = Instant::now();
    let (mut max_latency, mut runs, mut sink) = (0u128, 0u64, 0u64);
    loop {
        let start = Instant::now();
        sink = sink.wrapping_add(busy_work(runs));
        let latency = start.elapsed().as_micros();
        runs += 1;
        if latency > max_latency {
            max_latency = latency;
            out!("Max latency so far: {max_latency} microseconds.\n");
        }
        if start_all.elapsed() > run_time {
            let avg_us = run_time.as_micros() as f64 / runs as f64;
            out!(
                "\n{runs} total runs (avg latency: {avg_us:.4} microseconds / {:.2} nanoseconds per run).\n",
                avg_us * 1e3
            );
            out!(
                "Worst run took {:.0}x longer than the average latency.\n",
                max_latency as f64 / avg_us
            );
            // Keep the computation observable so it is not optimised away.
            std::process::exit(if sink == u64::MAX { 2 } else { 0 });
        }
    }
}

/// A connection for a tool; exits with redis-cli's message when there is none.
pub fn require(s: &mut Session) {
    if !s.connect(false, false) {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Conn;

    #[test]
    fn sizes_read_like_redis_cli() {
        assert_eq!(bytes_to_human(1003), "1003B");
        assert_eq!(bytes_to_human(4127), "4.03K");
        assert_eq!(bytes_to_human(1_782_579), "1.70M");
        assert_eq!(bytes_to_human(-2048), "-2.00K");
    }

    #[test]
    fn info_fields_are_found_by_exact_name() {
        let info = "# Memory\r\nused_memory:100\r\nused_memory_human:100B\r\nloading:0\r\nasync_loading:1\r\n";
        assert_eq!(info_field(info, "used_memory"), Some("100"));
        assert_eq!(info_field(info, "loading"), Some("0"));
        assert_eq!(info_field(info, "nope"), None);
    }

    #[test]
    fn magic_bytes_differ_between_calls() {
        assert_ne!(magic_bytes(), magic_bytes());
    }

    #[test]
    fn read_timeouts_do_not_lose_partial_replies() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut conn = Conn::from_stream(crate::conn::Stream::Unix(a));
        let _ = conn
            .stream()
            .set_read_timeout(Some(Duration::from_millis(20)));
        use std::io::Write;
        b.write_all(b"*2\r\n$1\r\na").unwrap();
        assert!(matches!(conn.read_reply(), Err(ConnError::Io(_))));
        b.write_all(b"\r\n:5\r\n").unwrap();
        assert_eq!(
            conn.read_reply().unwrap(),
            Value::Array(vec![Value::Bulk(b"a".to_vec()), Value::Int(5)])
        );
    }
}
