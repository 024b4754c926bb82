//! MIGRATE, black-box: keys of every type with their TTLs moved Kiln→Redis, Redis→Kiln and
//! Kiln→Kiln (Redis→Redis alongside, as the reference), each option (COPY, REPLACE, KEYS,
//! AUTH, AUTH2, another database), a target that refuses (BUSYKEY), dead targets (IOERR
//! within the timeout), what the source propagates, WATCH, the connection cache, and a
//! server that keeps answering its other clients while a MIGRATE waits on the network.
//! The argument errors and NOKEY are compared with Redis in `tests/diff/migrate/`.

mod support;

use std::time::{Duration, Instant};

use support::{key_digests, poll, run, Raw, TestServer};

/// Kiln, and Redis where it is installed (a missing one skips the pairs that need it).
fn kiln() -> TestServer {
    TestServer::kiln(support::DEBUG_ON)
}

fn redis() -> Option<TestServer> {
    TestServer::redis(support::DEBUG_ON)
}

/// Every source/target pairing available: (name, source, target).
fn pairs() -> Vec<(&'static str, TestServer, TestServer)> {
    let mut v = vec![("kiln->kiln", kiln(), kiln())];
    if let (Some(a), Some(b), Some(c), Some(d)) = (redis(), redis(), redis(), redis()) {
        v.push(("kiln->redis", kiln(), a));
        v.push(("redis->kiln", b, kiln()));
        v.push(("redis->redis", c, d));
    }
    v
}

/// Keys of every type and encoding, some with a TTL: (key, has a TTL).
const KEYS: &[(&str, bool)] = &[
    ("str", false),
    ("int", true),
    ("big", false),
    ("list", true),
    ("biglist", false),
    ("hash", false),
    ("bighash", true),
    ("set", false),
    ("intset", false),
    ("zset", true),
    ("bigzset", false),
    ("stream", false),
];

fn populate(c: &mut redis::Connection) {
    for line in [
        "SET str hello",
        "SET int 12345",
        "RPUSH list a b c",
        "HSET hash f1 v1 f2 v2",
        "SADD set a b c",
        "SADD intset 1 2 3",
        "ZADD zset 1 a 2 b",
        "XADD stream 1-1 f v",
        "XGROUP CREATE stream g 0",
        "XREADGROUP GROUP g c COUNT 1 STREAMS stream >",
    ] {
        run(c, line);
    }
    run(c, &format!("SET big {}", "x".repeat(5000)));
    for i in 0..300 {
        run(c, &format!("RPUSH biglist item{i}"));
        run(c, &format!("HSET bighash field{i} {}", "v".repeat(i % 70)));
        run(c, &format!("ZADD bigzset {i}.5 member{i}"));
    }
    for (k, ttl) in KEYS {
        if *ttl {
            run(c, &format!("PEXPIRE {k} 100000"));
        }
    }
}

fn migrate(src: &mut Raw, port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let mut v = vec!["MIGRATE", "127.0.0.1", &port];
    v.extend_from_slice(args);
    src.cmd(&v)
}

fn pttl(c: &mut Raw, key: &str) -> i64 {
    c.cmd(&["PTTL", key])
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn migrate_moves_every_type_with_its_ttl_between_servers() {
    for (name, src, dst) in pairs() {
        let mut c = src.client();
        populate(&mut c);
        let before = key_digests(&mut c, &[0]);
        let mut s = src.raw();
        let mut args = vec!["", "0", "5000", "KEYS"];
        args.extend(KEYS.iter().map(|(k, _)| *k));
        args.push("missing");
        assert_eq!(migrate(&mut s, dst.port, &args), "+OK\r\n", "{name}");
        assert_eq!(s.cmd(&["DBSIZE"]), ":0\r\n", "{name}: source emptied");
        let after = key_digests(&mut dst.client(), &[0]);
        assert_eq!(before, after, "{name}: values on the target");
        let mut d = dst.raw();
        for (k, ttl) in KEYS {
            let t = pttl(&mut d, k);
            if *ttl {
                assert!(t > 90_000 && t <= 100_000, "{name}: {k} ttl {t}");
            } else {
                assert_eq!(t, -1, "{name}: {k}");
            }
        }
        // The stream's consumer group travelled too.
        let groups = d.cmd(&["XINFO", "GROUPS", "stream"]);
        assert!(groups.contains("$7\r\npending\r\n:1"), "{name}: {groups}");
        // One key, the single-key form, back again.
        assert_eq!(migrate(&mut d, src.port, &["str", "0", "5000"]), "+OK\r\n");
        assert_eq!(s.cmd(&["GET", "str"]), "$5\r\nhello\r\n", "{name}");
    }
}

#[test]
fn migrate_options_copy_replace_db_auth_and_busykey() {
    for (name, src, dst) in pairs() {
        let (mut s, mut d) = (src.raw(), dst.raw());
        let p = dst.port;
        s.cmd(&["SET", "k", "source"]);
        d.cmd(&["SET", "k", "target"]);
        // BUSYKEY: the target refuses, the source keeps its key.
        assert_eq!(
            migrate(&mut s, p, &["k", "0", "1000"]),
            "-ERR Target instance replied with error: BUSYKEY Target key name already exists.\r\n",
            "{name}"
        );
        assert_eq!(s.cmd(&["EXISTS", "k"]), ":1\r\n");
        // COPY REPLACE: both hold it.
        assert_eq!(
            migrate(&mut s, p, &["k", "0", "1000", "COPY", "REPLACE"]),
            "+OK\r\n"
        );
        assert_eq!(s.cmd(&["GET", "k"]), "$6\r\nsource\r\n", "{name}");
        assert_eq!(d.cmd(&["GET", "k"]), "$6\r\nsource\r\n", "{name}");
        // Another database, with KEYS: only the keys that exist go.
        s.cmd(&["MSET", "a", "1", "b", "2"]);
        assert_eq!(
            migrate(&mut s, p, &["", "3", "1000", "KEYS", "a", "nokey", "b"]),
            "+OK\r\n"
        );
        assert_eq!(s.cmd(&["EXISTS", "a", "b"]), ":0\r\n");
        d.cmd(&["SELECT", "3"]);
        assert_eq!(d.cmd(&["MGET", "a", "b"]), "*2\r\n$1\r\n1\r\n$1\r\n2\r\n");
        d.cmd(&["SELECT", "0"]);
        // And database 0 again on the cached connection (SELECT sent again).
        s.cmd(&["SET", "c", "3"]);
        assert_eq!(migrate(&mut s, p, &["c", "0", "1000"]), "+OK\r\n");
        assert_eq!(d.cmd(&["GET", "c"]), "$1\r\n3\r\n", "{name}");
        // AUTH and AUTH2 against a target that requires them.
        d.cmd(&["ACL", "SETUSER", "mover", "on", ">pw2", "~*", "+@all"]);
        d.cmd(&["CONFIG", "SET", "requirepass", "pw"]);
        s.cmd(&["SET", "e", "5"]);
        assert_eq!(
            migrate(&mut s, p, &["e", "0", "1000", "AUTH", "bad"]),
            "-ERR Target instance replied with error: WRONGPASS invalid username-password pair or user is disabled.\r\n",
            "{name}"
        );
        assert_eq!(s.cmd(&["EXISTS", "e"]), ":1\r\n", "{name}");
        // (The cached connection was authenticated before requirepass: the target took
        // the RESTORE anyway, as Redis's does, so REPLACE from here.)
        let ok = migrate(&mut s, p, &["e", "0", "1000", "REPLACE", "AUTH", "pw"]);
        assert_eq!(ok, "+OK\r\n", "{name}");
        s.cmd(&["SET", "f", "6"]);
        assert_eq!(
            migrate(&mut s, p, &["f", "0", "1000", "AUTH2", "mover", "pw2"]),
            "+OK\r\n",
            "{name}"
        );
        assert_eq!(s.cmd(&["EXISTS", "e", "f"]), ":0\r\n");
        d.cmd(&["AUTH", "pw"]);
        assert_eq!(d.cmd(&["MGET", "e", "f"]), "*2\r\n$1\r\n5\r\n$1\r\n6\r\n");
        assert!(s
            .cmd(&["INFO", "stats"])
            .contains("migrate_cached_sockets:1"));
    }
}

#[test]
fn dead_targets_answer_ioerr_within_the_timeout() {
    let mut servers = vec![("kiln", kiln())];
    if let Some(r) = redis() {
        servers.push(("redis", r));
    }
    // Accepts (the kernel does) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let closed_port = support::free_port();
    for (name, src) in &servers {
        let mut s = src.raw();
        s.cmd(&["SET", "k", "v"]);
        let t = Instant::now();
        assert_eq!(
            migrate(&mut s, silent_port, &["k", "0", "300"]),
            "-IOERR error or timeout reading to target instance\r\n",
            "{name}"
        );
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert_eq!(
            migrate(&mut s, closed_port, &["k", "0", "300"]),
            "-IOERR error or timeout writing to target instance\r\n",
            "{name}"
        );
        assert_eq!(s.cmd(&["GET", "k"]), "$1\r\nv\r\n", "{name}: the key stays");
        assert_eq!(
            migrate(&mut s, closed_port, &["nokey", "0", "300"]),
            "+NOKEY\r\n"
        );
    }
}

#[test]
fn a_server_with_a_migrate_in_flight_keeps_answering() {
    // One worker thread: the waiting MIGRATE and the other client share it.
    let src = TestServer::kiln(&["--threads", "1"]);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let mut a = src.raw();
    a.cmd(&["SET", "k", "v"]);
    let t = Instant::now();
    a.send_cmd(&["MIGRATE", "127.0.0.1", &port, "k", "0", "2000"]);
    a.send_cmd(&["GET", "k"]);
    let mut b = src.raw();
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..50 {
        assert_eq!(b.cmd(&["PING"]), "+PONG\r\n");
        // The key being migrated stays readable and writable meanwhile.
        assert_eq!(b.cmd(&["GET", "k"]), "$1\r\nv\r\n");
        assert_eq!(b.cmd(&["SET", "other", "x"]), "+OK\r\n");
    }
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    let reply = String::from_utf8(a.read_reply().unwrap()).unwrap();
    assert_eq!(
        reply,
        "-IOERR error or timeout reading to target instance\r\n"
    );
    assert!(t.elapsed() >= Duration::from_millis(1900));
    // The request pipelined behind it ran after it.
    assert_eq!(a.read_reply().unwrap(), b"$1\r\nv\r\n");
}

#[test]
fn a_key_changed_during_the_round_trip_is_not_deleted() {
    // The target answers only once the test lets it: the key changes meanwhile.
    let src = kiln();
    let dst = kiln();
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let pport = proxy.local_addr().unwrap().port().to_string();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let dport = dst.port;
    let relay = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut c, _) = proxy.accept().unwrap();
        let mut t = std::net::TcpStream::connect(("127.0.0.1", dport)).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let n = c.read(&mut buf).unwrap();
        t.write_all(&buf[..n]).unwrap();
        rx.recv().unwrap();
        let n = t.read(&mut buf).unwrap();
        c.write_all(&buf[..n]).unwrap();
    });
    let mut a = src.raw();
    a.cmd(&["MSET", "k", "v", "same", "s"]);
    a.send_cmd(&[
        "MIGRATE",
        "127.0.0.1",
        &pport,
        "",
        "0",
        "5000",
        "KEYS",
        "k",
        "same",
    ]);
    let mut b = src.raw();
    let mut d = dst.raw();
    poll("the target to restore", || {
        (d.cmd(&["EXISTS", "k", "same"]) == ":2\r\n").then_some(())
    });
    b.cmd(&["APPEND", "k", "2"]);
    tx.send(()).unwrap();
    assert_eq!(a.read_reply().unwrap(), b"+OK\r\n");
    relay.join().unwrap();
    // `k` changed after it was read: it stays; `same` went.
    assert_eq!(b.cmd(&["GET", "k"]), "$2\r\nv2\r\n");
    assert_eq!(b.cmd(&["EXISTS", "same"]), ":0\r\n");
    assert_eq!(d.cmd(&["GET", "k"]), "$1\r\nv\r\n");
}

#[test]
fn migrate_propagates_del_raises_events_and_touches_watches() {
    let dst = kiln();
    let mut servers = vec![("kiln", kiln())];
    if let Some(r) = redis() {
        servers.push(("redis", r));
    }
    let mut events = Vec::new();
    for (name, src) in &servers {
        let port = dst.port.to_string();
        dst.raw().cmd(&["FLUSHALL"]);
        src.raw().cmd(&["MSET", "a", "1", "b", "2", "c", "3"]);
        let ev = support::keyevents(
            src,
            &[
                &[
                    "MIGRATE",
                    "127.0.0.1",
                    &port,
                    "",
                    "0",
                    "1000",
                    "KEYS",
                    "a",
                    "b",
                ],
                &["MIGRATE", "127.0.0.1", &port, "c", "0", "1000", "COPY"],
            ],
        );
        events.push(ev);
        // WATCH: a migrated key invalidates, a COPY leaves the transaction alone.
        let mut w = src.raw();
        let mut o = src.raw();
        w.cmd(&["SET", "w", "1"]);
        w.cmd(&["WATCH", "w"]);
        o.cmd(&[
            "MIGRATE",
            "127.0.0.1",
            &port,
            "w",
            "0",
            "1000",
            "COPY",
            "REPLACE",
        ]);
        w.cmd(&["MULTI"]);
        w.cmd(&["PING"]);
        assert_eq!(w.cmd(&["EXEC"]), "*1\r\n+PONG\r\n", "{name}: COPY");
        w.cmd(&["WATCH", "w"]);
        o.cmd(&["MIGRATE", "127.0.0.1", &port, "w", "0", "1000", "REPLACE"]);
        w.cmd(&["MULTI"]);
        w.cmd(&["PING"]);
        assert_eq!(w.cmd(&["EXEC"]), "*-1\r\n", "{name}: moved");
    }
    if events.len() == 2 {
        assert_eq!(events[0], events[1], "keyspace events, kiln vs redis");
    }
    assert_eq!(
        events[0],
        vec![
            ("del".to_string(), "a".to_string()),
            ("del".into(), "b".into())
        ]
    );

    // A replica of the source loses the migrated keys (MIGRATE is fed as a DEL).
    let primary = kiln();
    let replica = TestServer::kiln(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    let mut p = primary.raw();
    p.cmd(&["MSET", "x", "1", "y", "2", "z", "3"]);
    let mut r = replica.raw();
    poll("the replica to sync", || {
        (r.cmd(&["DBSIZE"]) == ":3\r\n").then_some(())
    });
    let moved = migrate(
        &mut p,
        dst.port,
        &["", "0", "1000", "REPLACE", "KEYS", "x", "y"],
    );
    assert_eq!(moved, "+OK\r\n");
    poll("the replica to delete", || {
        (r.cmd(&["DBSIZE"]) == ":1\r\n").then_some(())
    });
    assert_eq!(r.cmd(&["GET", "z"]), "$1\r\n3\r\n");
}

#[test]
fn a_broken_cached_connection_is_retried_once() {
    let src = kiln();
    let mut dst = kiln();
    let mut s = src.raw();
    s.cmd(&["MSET", "a", "1", "b", "2"]);
    assert_eq!(migrate(&mut s, dst.port, &["a", "0", "1000"]), "+OK\r\n");
    assert!(s
        .cmd(&["INFO", "stats"])
        .contains("migrate_cached_sockets:1"));
    // The target restarts: the cached connection is dead, the retry opens a new one.
    let port = dst.port;
    dst.stop();
    let dst = TestServer::start_on(support::kiln_bin(), port, support::DEBUG_ON);
    assert_eq!(migrate(&mut s, dst.port, &["b", "0", "1000"]), "+OK\r\n");
    assert_eq!(dst.raw().cmd(&["GET", "b"]), "$1\r\n2\r\n");
}

#[test]
fn migrate_inside_exec_and_scripts_moves_keys_too() {
    let dst = kiln();
    let mut servers = vec![("kiln", kiln())];
    if let Some(r) = redis() {
        servers.push(("redis", r));
    }
    let port = dst.port.to_string();
    for (name, src) in &servers {
        dst.raw().cmd(&["FLUSHALL"]);
        let mut s = src.raw();
        s.cmd(&["MSET", "a", "1", "b", "2"]);
        s.cmd(&["MULTI"]);
        s.cmd(&["MIGRATE", "127.0.0.1", &port, "a", "0", "1000"]);
        s.cmd(&["EXISTS", "a"]);
        assert_eq!(s.cmd(&["EXEC"]), "*2\r\n+OK\r\n:0\r\n", "{name}");
        let script = "return {redis.call('MIGRATE', ARGV[1], ARGV[2], KEYS[1], 0, 1000), \
                      redis.call('EXISTS', KEYS[1])}";
        let reply = s.cmd(&["EVAL", script, "1", "b", "127.0.0.1", &port]);
        assert_eq!(reply, "*2\r\n+OK\r\n:0\r\n", "{name}");
        assert_eq!(
            dst.raw().cmd(&["MGET", "a", "b"]),
            "*2\r\n$1\r\n1\r\n$1\r\n2\r\n"
        );
    }
}
