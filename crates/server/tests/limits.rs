//! Hostile and broken clients cost what they send: declared lengths that never arrive,
//! too many connections, clients that do not read their replies, query buffers over the
//! limit, slow subscribers and slow replicas. Each test reads the server's own memory
//! (RSS and its high-water mark from /proc, or INFO) and polls for the state it waits for;
//! none asserts on timing. Where redis-server is installed, the same behaviour is checked
//! against it too.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::{client_line, list_field, poll, servers, Raw, TestServer, PATIENCE};

/// A `/proc/<pid>/status` field in bytes (`VmRSS`, `VmHWM`).
fn proc_bytes(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A numeric field of an INFO section.
fn info_u64(c: &mut Raw, section: &str, field: &str) -> u64 {
    let text = c.cmd(&["INFO", section]);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .trim()
        .parse()
        .unwrap()
}

/// Reads until the server closes the connection; returns what arrived (a reset counts
/// as closed too: the server dropped unread input).
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("reading until close: {e}"),
        }
    }
}

#[test]
fn declared_512mb_bulks_that_never_arrive_keep_memory_small() {
    let s = TestServer::kiln(&[]);
    let mut observer = s.raw();
    let before = proc_bytes(s.pid(), "VmRSS");
    // Twenty clients each promise a 512 MB argument (10 GB in all) and send three bytes.
    let mut liars = Vec::new();
    for i in 0..20 {
        let mut c = s.raw();
        assert_eq!(
            c.cmd(&["CLIENT", "SETNAME", &format!("liar{i}")]),
            "+OK\r\n"
        );
        c.send(b"*2\r\n$3\r\nGET\r\n$536870912\r\nabc");
        liars.push(c);
    }
    for i in 0..20 {
        poll("the declared bulk's first bytes to be read", || {
            client_line(&mut observer, &format!("liar{i}")).filter(|l| list_field(l, "qbuf") == 28)
        });
    }
    let after = proc_bytes(s.pid(), "VmRSS");
    assert!(
        after < before + (32 << 20),
        "RSS grew from {before} to {after} bytes"
    );
    assert!(info_u64(&mut observer, "memory", "used_memory") < 64 << 20);
    // Everyone else is served meanwhile.
    assert_eq!(observer.cmd(&["PING"]), "+PONG\r\n");
    drop(liars);
}

/// Connects until the server admits the connection (a closing test connection may still
/// hold a slot for a moment).
fn admitted(port: u16) -> Raw {
    poll("a connection to be admitted", || {
        let mut c = Raw::connect(port);
        c.send_cmd(&["PING"]);
        match c.read_reply() {
            Some(r) if r == b"+PONG\r\n" => Some(c),
            _ => None,
        }
    })
}

#[test]
fn connections_over_maxclients_get_the_error_and_are_closed() {
    for (name, s) in servers(&["--maxclients", "4"]) {
        let mut held: Vec<Raw> = (0..4).map(|_| admitted(s.port)).collect();
        let before = proc_bytes(s.pid(), "VmRSS");
        let c = &mut held[0];
        let received = info_u64(c, "stats", "total_connections_received");
        for _ in 0..200 {
            let mut extra = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
            assert_eq!(
                read_to_close(&mut extra),
                b"-ERR max number of clients reached\r\n",
                "{name}"
            );
        }
        assert_eq!(info_u64(c, "clients", "connected_clients"), 4, "{name}");
        assert_eq!(info_u64(c, "stats", "rejected_connections"), 200, "{name}");
        assert_eq!(
            info_u64(c, "stats", "total_connections_received"),
            received,
            "{name}: rejected connections are not counted as received"
        );
        let after = proc_bytes(s.pid(), "VmRSS");
        assert!(
            after < before + (8 << 20),
            "{name}: RSS grew from {before} to {after} bytes"
        );
        // A freed slot admits the next one.
        held.pop();
        admitted(s.port);
    }
}

/// Sets `big` to a 64 KiB value, then sends `gets` GETs of it on a new connection named
/// `name` that never reads. Returns that connection.
fn flood_gets(s: &TestServer, name: &str, gets: usize) -> Raw {
    let mut c = s.raw();
    assert_eq!(c.cmd(&["SET", "big", &"v".repeat(64 * 1024)]), "+OK\r\n");
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", name]), "+OK\r\n");
    let mut wire = Vec::new();
    for _ in 0..gets {
        kiln_resp::encode::request(&mut wire, &["GET", "big"]);
    }
    // The server may close the connection before it took every byte.
    let _ = c.stream.write_all(&wire);
    c
}

#[test]
fn a_client_over_its_hard_output_limit_is_disconnected_and_memory_stays_bounded() {
    for (name, s) in servers(&["--client-output-buffer-limit", "normal 2mb 0 0"]) {
        let mut observer = s.raw();
        let before = proc_bytes(s.pid(), "VmRSS");
        // 800 GETs of 64 KiB: 50 MB of replies it does not read.
        let mut flood = flood_gets(&s, "flood", 800);
        poll("the flooding client to be disconnected", || {
            client_line(&mut observer, "flood").is_none().then_some(())
        });
        // Its replies never all arrive: the server dropped what it had not sent.
        let got = read_to_close(&mut flood.stream);
        assert!(
            got.len() < 800 * 64 * 1024,
            "{name}: {} bytes arrived",
            got.len()
        );
        if name == "kiln" {
            let peak = proc_bytes(s.pid(), "VmHWM");
            assert!(
                peak < before + (24 << 20),
                "{name}: peak RSS {peak} bytes, {before} before"
            );
        }
        assert_eq!(observer.cmd(&["PING"]), "+PONG\r\n");
    }
}

#[test]
fn output_is_unlimited_for_normal_clients_by_default() {
    for (name, s) in servers(&[]) {
        let mut observer = s.raw();
        let mut flood = flood_gets(&s, "reader", 400);
        // Every GET ran while the client was not reading: the replies wait for it.
        poll("every GET to run", || {
            let stats = observer.cmd(&["INFO", "commandstats"]);
            stats.contains("cmdstat_get:calls=400,").then_some(())
        });
        assert!(client_line(&mut observer, "reader").is_some(), "{name}");
        for _ in 0..400 {
            let reply = flood.read_reply().unwrap();
            assert_eq!(reply.len(), 64 * 1024 + 10, "{name}");
        }
    }
}

#[test]
fn a_client_over_its_soft_output_limit_for_longer_than_allowed_is_disconnected() {
    for (_, s) in servers(&["--client-output-buffer-limit", "normal 0 1mb 3600"]) {
        let mut observer = s.raw();
        let mut flood = flood_gets(&s, "slow", 400);
        // Over the soft limit, but not for an hour: still connected.
        poll("the replies to pile up", || {
            client_line(&mut observer, "slow").filter(|l| list_field(l, "omem") >= 1 << 20)
        });
        // Allowed one second over it now: the next replies added find it overdue.
        assert_eq!(
            observer.cmd(&[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "normal 0 1mb 1"
            ]),
            "+OK\r\n"
        );
        poll("the slow client to be disconnected", || {
            let mut one = Vec::new();
            kiln_resp::encode::request(&mut one, &["GET", "big"]);
            if flood.stream.write_all(&one).is_err() {
                return Some(());
            }
            std::thread::sleep(Duration::from_millis(40));
            client_line(&mut observer, "slow").is_none().then_some(())
        });
    }
}

#[test]
fn output_buffer_limits_are_set_per_class_as_in_redis() {
    for (name, s) in servers(&[]) {
        let mut c = s.raw();
        for v in ["pubsub 1mb 2mb 3", "normal 4mb 5kb 6", "replica 7 8 9"] {
            assert_eq!(
                c.cmd(&["CONFIG", "SET", "client-output-buffer-limit", v]),
                "+OK\r\n",
                "{name}"
            );
        }
        assert_eq!(
            c.cmd(&["CONFIG", "GET", "client-output-buffer-limit"]),
            "*2\r\n$26\r\nclient-output-buffer-limit\r\n$58\r\n\
             normal 4194304 5120 6 slave 7 8 9 pubsub 1048576 2097152 3\r\n",
            "{name}"
        );
        for (v, err) in [
            (
                "normal 1 2",
                "Wrong number of arguments in buffer limit configuration.",
            ),
            (
                "nobody 1 2 3",
                "Invalid client class specified in buffer limit configuration.",
            ),
            (
                "normal x 2 3",
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
            ),
        ] {
            assert_eq!(
                c.cmd(&["CONFIG", "SET", "client-output-buffer-limit", v]),
                format!(
                    "-ERR CONFIG SET failed (possibly related to argument \
                     'client-output-buffer-limit') - {err}\r\n"
                ),
                "{name}"
            );
        }
    }
}

#[test]
fn a_query_buffer_over_the_limit_closes_the_client_without_a_reply() {
    for (name, s) in servers(&["--client-query-buffer-limit", "1mb"]) {
        let mut observer = s.raw();
        // Under the limit: served.
        let mut ok = s.raw();
        let reply = ok.cmd(&["ECHO", &"a".repeat(900_000)]);
        assert_eq!(reply.len(), 900_000 + 11, "{name}");
        // Over it: closed before anything runs, nothing sent back.
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        let mut wire = b"*3\r\n$3\r\nSET\r\n$4\r\nhuge\r\n$2000000\r\n".to_vec();
        wire.resize(wire.len() + 1_500_000, b'x');
        let _ = c.write_all(&wire);
        assert_eq!(read_to_close(&mut c), b"", "{name}");
        assert_eq!(observer.cmd(&["EXISTS", "huge"]), ":0\r\n", "{name}");
        // Redis's floor and units.
        assert_eq!(
            observer.cmd(&["CONFIG", "SET", "client-query-buffer-limit", "1000"]),
            "-ERR CONFIG SET failed (possibly related to argument 'client-query-buffer-limit') \
             - argument must be between 1048576 and 9223372036854775807 inclusive\r\n",
            "{name}"
        );
        assert_eq!(
            observer.cmd(&["CONFIG", "GET", "client-query-buffer-limit"]),
            "*2\r\n$25\r\nclient-query-buffer-limit\r\n$7\r\n1048576\r\n",
            "{name}"
        );
    }
}

#[test]
fn a_replica_that_stops_reading_is_dropped_at_its_output_limit() {
    // A long repl-timeout: only the output limit can drop the replica here.
    let s = TestServer::kiln(&[
        "--client-output-buffer-limit",
        "replica 2mb 0 0",
        "--repl-timeout",
        "3600",
    ]);
    let mut observer = s.raw();
    let mut replica = s.raw();
    replica.send_cmd(&["PSYNC", "?", "-1"]);
    let first = replica.read_reply().unwrap();
    assert!(first.starts_with(b"+FULLRESYNC"), "{first:?}");
    poll("the replica to be attached", || {
        (info_u64(&mut observer, "replication", "connected_slaves") == 1).then_some(())
    });
    // 50 MB of writes it never reads.
    let value = "w".repeat(64 * 1024);
    for i in 0..800 {
        assert_eq!(observer.cmd(&["SET", &format!("k{i}"), &value]), "+OK\r\n");
        if info_u64(&mut observer, "replication", "connected_slaves") == 0 {
            break;
        }
    }
    poll("the replica to be dropped", || {
        (info_u64(&mut observer, "replication", "connected_slaves") == 0).then_some(())
    });
    read_to_close(&mut replica.stream);
}
