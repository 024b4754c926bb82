//! Watching the server: MONITOR, SLOWLOG, LATENCY and INFO latencystats, compared with
//! redis-server where the outcome is deterministic once times, durations and ports are
//! masked. Several connections per test; states are waited for by polling, never by sleeps.

mod support;

use support::{servers, wait_until, Raw, TestServer, DEBUG_ON};

/// Replaces what differs between two servers in a transcript: unix times with
/// microseconds (`1796654710.099821`), `ip:port` addresses, and with `ints` every integer
/// reply (`:123`) too.
fn mask(text: &str, ints: bool) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let mut l = line.trim_end_matches('\r').to_string();
        // `+<secs>.<usecs> [<db> <addr>] ...`
        if let Some(rest) = l.strip_prefix('+') {
            if let Some((ts, after)) = rest.split_once(' ') {
                if ts.contains('.') && ts.chars().all(|c| c.is_ascii_digit() || c == '.') {
                    l = format!("+T {after}");
                }
            }
        }
        let words: Vec<String> = l
            .split(' ')
            .map(|w| {
                let bare = w.trim_end_matches(']');
                match bare.rsplit_once(':') {
                    Some((ip, port))
                        if ip.split('.').count() == 4
                            && ip.split('.').all(|p| p.parse::<u8>().is_ok())
                            && port.parse::<u16>().is_ok() =>
                    {
                        w.replace(bare, "ADDR")
                    }
                    _ => w.to_string(),
                }
            })
            .collect();
        l = words.join(" ");
        if ints && l.starts_with(':') {
            l = ":N".into();
        }
        lines.push(l);
    }
    // A bulk string's length changes with the port's digits.
    for i in 1..lines.len() {
        if lines[i] == "ADDR" && lines[i - 1].starts_with('$') {
            lines[i - 1] = "$N".into();
        }
    }
    lines.join("\n")
}

/// `text` with every run of digits replaced by one `N`.
fn digits_masked(text: &str) -> String {
    let mut out = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            if !out.ends_with('N') {
                out.push('N');
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// Reads the monitor's lines up to the one that contains `until`.
fn monitor_lines(m: &mut Raw, until: &str) -> String {
    let mut out = String::new();
    loop {
        let r = m.read_reply().expect("monitor closed");
        let line = String::from_utf8_lossy(&r).into_owned();
        out.push_str(&line);
        if line.contains(until) {
            return out;
        }
    }
}

/// Runs `run` on Kiln and on Redis (where installed), each started with `extra`; their
/// (masked) transcripts must be equal. Returns Kiln's.
fn on_both(extra: &[&str], run: impl Fn(&str, &TestServer) -> String) -> String {
    let results: Vec<(&str, String)> = servers(extra)
        .iter()
        .map(|(name, s)| (*name, run(name, s)))
        .collect();
    let (_, kiln) = &results[0];
    for (name, other) in &results[1..] {
        assert_eq!(kiln, other, "kiln and {name} differ");
    }
    results[0].1.clone()
}

#[test]
fn monitor_stream_matches_redis_with_scripts_and_transactions() {
    let kiln = on_both(&[], |_, s| {
        let mut m = s.raw();
        assert_eq!(m.cmd(&["MONITOR"]), "+OK\r\n");
        let mut c = s.raw();
        let script = "redis.call('set','x','1'); return redis.call('get','x')";
        let cmds: Vec<Vec<&[u8]>> = vec![
            vec![b"SELECT", b"1"],
            vec![b"SET", b"a", b"b\x01\"\n\\ \xff"],
            vec![b"SELECT", b"0"],
            vec![b"EVAL", script.as_bytes(), b"0"],
            vec![b"FCALL", b"nosuchfunction", b"0"],
            vec![b"GET"],
            vec![b"NOSUCHCOMMAND"],
            vec![b"LPUSH", b"x", b"wrongtype"],
            vec![b"MULTI"],
            vec![b"SET", b"q", b"1"],
            vec![b"INCR", b"q"],
            vec![b"EVAL", b"return redis.call('incr','q')", b"0"],
            vec![b"EXEC"],
            vec![b"MULTI"],
            vec![b"GET", b"q", b"extra"],
            vec![b"EXEC"],
            vec![b"CONFIG", b"GET", b"maxmemory"],
            vec![b"CLIENT", b"SETNAME", b"watched"],
            vec![b"AUTH", b"user", b"secret"],
            vec![b"HELLO", b"2", b"AUTH", b"user", b"secret"],
            vec![b"ECHO", b"end"],
        ];
        for argv in &cmds {
            c.send_cmd(argv);
            c.read_reply().unwrap();
        }
        let lines = monitor_lines(&mut m, "\"end\"");
        mask(&lines, false)
    });
    assert!(kiln.contains("[0 lua] \"set\" \"x\" \"1\""));
}

#[test]
fn a_monitor_may_only_listen_as_in_redis() {
    let kiln = on_both(&[], |_, s| {
        let mut m = s.raw();
        let mut other = s.raw();
        let mut t = String::new();
        t += &m.cmd(&["CLIENT", "SETNAME", "mon"]);
        t += &m.cmd(&["MONITOR"]);
        // A second MONITOR gets no reply at all: PING's reply comes next.
        m.send_cmd(&["MONITOR"]);
        t += &m.cmd(&["PING"]);
        t += &monitor_lines(&mut m, "\"PING\"");
        let line = support::client_line(&mut other, "mon").unwrap();
        let flags = line.split(' ').find(|w| w.starts_with("flags=")).unwrap();
        t += flags;
        t += "\n";
        t += &m.cmd(&["SET", "k", "v"]);
        t += &m.cmd(&["GET", "k"]);
        t += &m.cmd(&["RESET"]);
        // Not monitoring any more: the other client's command is not shown.
        other.cmd(&["SET", "k", "v"]);
        t += &m.cmd(&["GET", "k"]);
        let line = support::client_line(&mut other, "mon");
        assert!(line.is_none(), "RESET clears the name too: {line:?}");
        mask(&t, false)
    });
    assert!(kiln.contains("flags=O"));
}

#[test]
fn a_monitor_that_does_not_read_is_closed_at_its_output_limit() {
    let s = TestServer::kiln(&["--client-output-buffer-limit", "normal 256kb 0 0"]);
    let mut m = s.raw();
    m.cmd(&["CLIENT", "SETNAME", "mon"]);
    assert_eq!(m.cmd(&["MONITOR"]), "+OK\r\n");
    let mut c = s.raw();
    let value = "x".repeat(16 * 1024);
    // The monitor never reads: its socket fills, then its queue, then it is closed.
    wait_until("the monitor to be closed", || {
        for _ in 0..64 {
            c.send_cmd(&["SET", "k", value.as_str()]);
        }
        for _ in 0..64 {
            c.read_reply().unwrap();
        }
        support::client_line(&mut c, "mon").is_none()
    });
    assert_eq!(c.cmd(&["PING"]), "+PONG\r\n");
}

/// `SLOWLOG GET -1` with times, durations and addresses masked.
fn slowlog_transcript(s: &TestServer) -> String {
    let mut c = s.raw();
    let mut t = String::new();
    t += &c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    t += &c.cmd(&["SLOWLOG", "RESET"]);
    t += &c.cmd(&["CLIENT", "SETNAME", "slow-one"]);
    let mut many: Vec<String> = vec!["RPUSH".into(), "list".into()];
    many.extend((0..40).map(|i| format!("v{i}")));
    t += &c.cmd(&many);
    t += &c.cmd(&["SET", "long", &"y".repeat(200)]);
    t += &c.cmd(&["AUTH", "user", "secret"]);
    t += &c.cmd(&["EVAL", "return redis.call('get','long')", "0"]);
    t += &c.cmd(&["MULTI"]);
    t += &c.cmd(&["INCR", "n"]);
    t += &c.cmd(&["EXEC"]);
    t += &c.cmd(&["SLOWLOG", "LEN"]);
    let entries = c.cmd(&["SLOWLOG", "GET", "-1"]);
    // Each entry: id, time, duration, then the arguments: mask the time and duration only.
    let mut masked = String::new();
    let mut lines = entries.split("\r\n").peekable();
    while let Some(l) = lines.next() {
        masked.push_str(l);
        masked.push('\n');
        if l == "*6" {
            let id = lines.next().unwrap();
            masked.push_str(id);
            masked.push('\n');
            lines.next();
            lines.next();
            masked.push_str(":TIME\n:USEC\n");
        }
    }
    t + &mask(&masked, false)
}

#[test]
fn slowlog_entries_match_redis() {
    let kiln = on_both(&[], |_, s| slowlog_transcript(s));
    assert!(kiln.contains("... (11 more arguments)"), "{kiln}");
    assert!(kiln.contains("... (72 more bytes)"), "{kiln}");
    assert!(kiln.contains("(redacted)"), "{kiln}");
    assert!(kiln.contains("?:0"), "{kiln}");
    assert!(kiln.contains("slow-one"), "{kiln}");
}

#[test]
fn the_slow_log_is_shared_by_every_worker_thread() {
    let s = TestServer::kiln(&["--threads", "4", "--slowlog-log-slower-than", "0"]);
    let mut conns: Vec<Raw> = (0..8).map(|_| s.raw()).collect();
    conns[0].cmd(&["SLOWLOG", "RESET"]);
    for (i, c) in conns.iter_mut().enumerate() {
        for j in 0..10 {
            c.cmd(&["SET", &format!("k{i}:{j}"), "v"]);
        }
    }
    // 80 SETs, then SLOWLOG LEN itself once it ran.
    let len = conns[0].cmd(&["SLOWLOG", "LEN"]);
    assert_eq!(len, ":81\r\n");
    let all = conns[0].cmd(&["SLOWLOG", "GET", "-1"]);
    assert_eq!(all.matches("*6\r\n").count(), 82);
}

#[test]
fn latency_monitor_samples_slow_commands_as_redis_does() {
    let kiln = on_both(DEBUG_ON, |name, s| {
        let mut c = s.raw();
        let mut t = String::new();
        t += &c.cmd(&["CONFIG", "SET", "latency-monitor-threshold", "1"]);
        t += &c.cmd(&["DEBUG", "SLEEP", "0.02"]);
        // Only the `command` event is compared: the servers' background cycles may be
        // sampled too under load.
        let latest = c.cmd(&["LATENCY", "LATEST"]);
        assert!(latest.contains("$7\r\ncommand\r\n"), "{name}: {latest}");
        let history = c.cmd(&["LATENCY", "HISTORY", "command"]);
        t += &mask(&history, true);
        let graph = c.cmd(&["LATENCY", "GRAPH", "command"]);
        let head = graph.split('\n').nth(1).unwrap().to_string();
        assert!(head.starts_with("command - high "), "{graph}");
        assert!(graph.contains("-".repeat(80).as_str()), "{graph}");
        let doctor = c.cmd(&["LATENCY", "DOCTOR"]);
        assert!(
            doctor.contains("1. command: 1 latency spikes (average "),
            "{name}: {doctor}"
        );
        t += &c.cmd(&["LATENCY", "RESET", "command"]);
        t += &c.cmd(&["LATENCY", "HISTORY", "command"]);
        t
    });
    assert!(kiln.starts_with("+OK\r\n+OK\r\n*1\n*2\n:N\n:N"), "{}", kiln);
}

#[test]
fn latency_histograms_and_latencystats_have_redis_shape() {
    let kiln = on_both(&[], |name, s| {
        let mut c = s.raw();
        let mut t = String::new();
        c.cmd(&["CONFIG", "RESETSTAT"]);
        for i in 0..3 {
            c.cmd(&["SET", &format!("k{i}"), "v"]);
        }
        c.cmd(&["GET", "k1"]);
        let info = c.cmd(&["INFO", "latencystats"]);
        let set = info
            .split("\r\n")
            .find(|l| l.starts_with("latency_percentiles_usec_set:"))
            .unwrap_or_else(|| panic!("{name}: {info}"));
        let shape = digits_masked(set);
        t += &shape;
        t += "\n";
        // RESP2: [name, [calls, n, histogram_usec, [bucket, count, ...]]]; RESP3: maps.
        for proto in ["2", "3"] {
            c.cmd(&["HELLO", proto]);
            let h = c.cmd(&["LATENCY", "HISTOGRAM", "set", "get", "nosuch"]);
            let lines: Vec<&str> = h.split("\r\n").collect();
            // Up to `histogram_usec`, the reply is deterministic: names and call counts.
            let upto = lines.iter().position(|l| *l == "histogram_usec").unwrap();
            t += &lines[..=upto].join("\n");
            t += "\n";
            let none = c.cmd(&["LATENCY", "HISTOGRAM", "nosuch"]);
            t += &none;
        }
        c.cmd(&["HELLO", "2"]);
        c.cmd(&["CONFIG", "RESETSTAT"]);
        t += &c.cmd(&["LATENCY", "HISTOGRAM", "set"]);
        t
    });
    assert!(
        kiln.contains("latency_percentiles_usec_set:pN=N.N,pN=N.N,pN.N=N.N"),
        "{}",
        kiln
    );
}

#[test]
fn observers_switch_on_and_off_at_run_time() {
    let s = TestServer::kiln(&["--slowlog-log-slower-than", "-1"]);
    let mut c = s.raw();
    c.cmd(&["SET", "a", "1"]);
    assert_eq!(c.cmd(&["SLOWLOG", "LEN"]), ":0\r\n");
    // A monitor attaches while every other observer is off: it still sees every command.
    let mut m = s.raw();
    assert_eq!(m.cmd(&["MONITOR"]), "+OK\r\n");
    c.cmd(&["SET", "b", "2"]);
    assert!(monitor_lines(&mut m, "\"b\"").contains("\"SET\" \"b\" \"2\""));
    assert_eq!(m.cmd(&["RESET"]), "+RESET\r\n");
    assert_eq!(c.cmd(&["SLOWLOG", "LEN"]), ":0\r\n");
    c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    c.cmd(&["SET", "c", "3"]);
    // CONFIG SET itself and the SET (SLOWLOG LEN is logged once it ran, as in Redis).
    assert_eq!(c.cmd(&["SLOWLOG", "LEN"]), ":2\r\n");
    c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "-1"]);
    c.cmd(&["SET", "d", "4"]);
    assert_eq!(c.cmd(&["SLOWLOG", "LEN"]), ":3\r\n");
}
