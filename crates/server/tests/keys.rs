//! Black-box tests of the keyspace commands, for what a differential script cannot show:
//! SCAN's guarantees under concurrent writes, the atomicity of multi-shard and multi-database
//! commands, KEYS and RANDOMKEY on many keys, and which commands record an access.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Commands, Connection};
use support::TestServer;

/// Writes `n` keys `{prefix}{i}` with value `i`, pipelined.
fn fill(con: &mut Connection, prefix: &str, n: usize) {
    let mut p = redis::pipe();
    for i in 0..n {
        p.cmd("SET").arg(format!("{prefix}{i}")).arg(i).ignore();
    }
    p.query::<()>(con).unwrap();
}

/// Runs a full SCAN with the given extra arguments; returns every key of every page (with
/// repeats) and the number of calls.
fn full_scan(con: &mut Connection, extra: &[&str]) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    let mut calls = 0;
    loop {
        let (next, page): (String, Vec<String>) = redis::cmd("SCAN")
            .arg(&cursor)
            .arg(extra)
            .query(con)
            .unwrap();
        calls += 1;
        keys.extend(page);
        if next == "0" {
            return (keys, calls);
        }
        cursor = next;
    }
}

#[test]
fn scan_returns_every_key_that_exists_for_the_whole_iteration_despite_concurrent_writes() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    fill(&mut con, "orig:", 10_000);

    // Another client keeps adding and deleting other keys, growing and shrinking the tables
    // while the scan runs.
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        let mut other = server.client();
        std::thread::spawn(move || {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut p = redis::pipe();
                for j in 0..500 {
                    p.cmd("SET")
                        .arg(format!("churn:{round}:{j}"))
                        .arg(j)
                        .ignore();
                }
                if round > 0 {
                    for j in 0..500 {
                        p.cmd("DEL")
                            .arg(format!("churn:{}:{j}", round - 1))
                            .ignore();
                    }
                }
                p.query::<()>(&mut other).unwrap();
                round += 1;
            }
            round
        })
    };

    let (keys, calls) = full_scan(&mut con, &["COUNT", "20"]);
    stop.store(true, Ordering::Relaxed);
    let rounds = churn.join().unwrap();
    assert!(rounds > 0);
    assert!(calls > 1);

    let seen: HashSet<&str> = keys.iter().map(String::as_str).collect();
    for i in 0..10_000 {
        assert!(
            seen.contains(format!("orig:{i}").as_str()),
            "orig:{i} never returned"
        );
    }
    // Nothing that never existed shows up.
    assert!(keys
        .iter()
        .all(|k| k.starts_with("orig:") || k.starts_with("churn:")));
}

#[test]
fn a_full_scan_of_an_unchanging_database_returns_each_key_exactly_once() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    fill(&mut con, "k", 5_000);
    for count in ["1", "7", "100", "100000"] {
        let (keys, _) = full_scan(&mut con, &["COUNT", count]);
        let unique: HashSet<&String> = keys.iter().collect();
        assert_eq!(keys.len(), 5_000, "COUNT {count}");
        assert_eq!(unique.len(), 5_000, "COUNT {count}");
    }
}

#[test]
fn scan_pages_hold_about_count_keys() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    fill(&mut con, "k", 5_000);
    let (cursor, page): (String, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("COUNT")
        .arg(50)
        .query(&mut con)
        .unwrap();
    assert_ne!(cursor, "0");
    assert!((1..=60).contains(&page.len()), "{} keys", page.len());
    // The default COUNT is 10.
    let (_, page): (String, Vec<String>) = redis::cmd("SCAN").arg(0).query(&mut con).unwrap();
    assert!((1..=20).contains(&page.len()), "{} keys", page.len());
}

#[test]
fn scan_match_and_type_filter_pages_after_selecting_keys() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    fill(&mut con, "user:", 2_000);
    fill(&mut con, "item:", 2_000);
    // Pages may be empty while the cursor is not done, as in Redis.
    let (keys, calls) = full_scan(&mut con, &["MATCH", "user:1*", "COUNT", "10"]);
    let expected: HashSet<String> = (0..2_000)
        .map(|i| format!("user:{i}"))
        .filter(|k| k.starts_with("user:1"))
        .collect();
    assert_eq!(keys.iter().cloned().collect::<HashSet<_>>(), expected);
    assert_eq!(keys.len(), expected.len());
    assert!(calls > 10);

    let (keys, _) = full_scan(&mut con, &["TYPE", "string", "COUNT", "500"]);
    assert_eq!(keys.len(), 4_000);
    let (keys, _) = full_scan(&mut con, &["TYPE", "list", "COUNT", "500"]);
    assert!(keys.is_empty());
}

#[test]
fn scan_accepts_any_cursor_it_can_parse_and_rejects_the_rest() {
    let server = TestServer::kiln(&[]);
    let mut raw = server.raw();
    raw.cmd(&["SET", "k", "v"]);
    // Any number is a position to resume from; past the end, the scan is simply over.
    for c in ["0", "", "+0", "007", "18446744073709551615", "-1"] {
        let r = raw.cmd(&["SCAN", c, "COUNT", "1000"]);
        assert!(r.starts_with("*2\r\n$1\r\n0\r\n"), "SCAN {c:?}: {r:?}");
    }
    for c in ["abc", " 1", "1 ", "18446744073709551616", "-", "0x1"] {
        assert_eq!(
            raw.cmd(&["SCAN", c]),
            "-ERR invalid cursor\r\n",
            "SCAN {c:?}"
        );
    }
}

#[test]
fn expired_keys_are_not_returned_by_scan_and_are_deleted_by_it() {
    let server = TestServer::kiln(&["--enable-debug-command", "yes"]);
    let mut con = server.client();
    // Only SCAN can reclaim them then.
    redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query::<()>(&mut con)
        .unwrap();
    fill(&mut con, "live:", 100);
    let mut p = redis::pipe();
    for i in 0..100 {
        p.cmd("SET")
            .arg(format!("dead:{i}"))
            .arg(i)
            .arg("PX")
            .arg(20)
            .ignore();
    }
    p.query::<()>(&mut con).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(redis::cmd("DBSIZE").query::<usize>(&mut con).unwrap(), 200);
    let (keys, _) = full_scan(&mut con, &["COUNT", "1000"]);
    assert_eq!(keys.len(), 100);
    assert!(keys.iter().all(|k| k.starts_with("live:")));
    let n: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 100);
}

#[test]
fn rename_between_shards_is_atomic() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    // Many pairs, so some surely live in different shards.
    let pairs = 32;
    for i in 0..pairs {
        let _: () = con.set(format!("a{i}"), i).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let renamer = {
        let stop = stop.clone();
        let mut other = server.client();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut p = redis::pipe();
                for i in 0..pairs {
                    p.cmd("RENAME")
                        .arg(format!("a{i}"))
                        .arg(format!("b{i}"))
                        .ignore();
                    p.cmd("RENAME")
                        .arg(format!("b{i}"))
                        .arg(format!("a{i}"))
                        .ignore();
                }
                p.query::<()>(&mut other).unwrap();
                n += 1;
            }
            n
        })
    };
    // EXISTS locks both shards too: it must always see exactly one of the two names.
    for _ in 0..300 {
        let mut p = redis::pipe();
        for i in 0..pairs {
            p.cmd("EXISTS").arg(format!("a{i}")).arg(format!("b{i}"));
        }
        let counts: Vec<i64> = p.query(&mut con).unwrap();
        assert!(counts.iter().all(|&c| c == 1), "{counts:?}");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(renamer.join().unwrap() > 0);
    for i in 0..pairs {
        let v: i64 = con.get(format!("a{i}")).unwrap();
        assert_eq!(v, i);
    }
}

#[test]
fn renamenx_races_have_exactly_one_winner() {
    let server = TestServer::kiln(&[]);
    let mut setup = server.client();
    for round in 0..50 {
        for t in 0..4 {
            let _: () = setup.set(format!("src{round}:{t}"), t).unwrap();
        }
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let mut c = server.client();
                std::thread::spawn(move || {
                    redis::cmd("RENAMENX")
                        .arg(format!("src{round}:{t}"))
                        .arg(format!("dst{round}"))
                        .query::<i64>(&mut c)
                        .unwrap()
                })
            })
            .collect();
        let wins: i64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(wins, 1, "round {round}");
        let left: i64 = redis::cmd("EXISTS")
            .arg(
                (0..4)
                    .map(|t| format!("src{round}:{t}"))
                    .collect::<Vec<_>>(),
            )
            .query(&mut setup)
            .unwrap();
        assert_eq!(left, 3);
    }
}

#[test]
fn move_takes_the_key_and_its_ttl_to_the_other_database() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    let _: () = con.set("k", "v").unwrap();
    let _: () = redis::cmd("PEXPIREAT")
        .arg("k")
        .arg(4_102_444_800_123u64)
        .query(&mut con)
        .unwrap();
    let moved: i64 = redis::cmd("MOVE").arg("k").arg(5).query(&mut con).unwrap();
    assert_eq!(moved, 1);
    assert!(!con.exists::<_, bool>("k").unwrap());
    let _: () = redis::cmd("SELECT").arg(5).query(&mut con).unwrap();
    assert_eq!(con.get::<_, String>("k").unwrap(), "v");
    let at: i64 = redis::cmd("PEXPIRETIME").arg("k").query(&mut con).unwrap();
    assert_eq!(at, 4_102_444_800_123);
    // Back again; a key already there blocks the move.
    let _: () = redis::cmd("SELECT").arg(0).query(&mut con).unwrap();
    let _: () = con.set("k", "other").unwrap();
    let _: () = redis::cmd("SELECT").arg(5).query(&mut con).unwrap();
    let moved: i64 = redis::cmd("MOVE").arg("k").arg(0).query(&mut con).unwrap();
    assert_eq!(moved, 0);
    assert_eq!(con.get::<_, String>("k").unwrap(), "v");
}

#[test]
fn moving_keys_back_and_forth_never_loses_or_duplicates_them() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    fill(&mut con, "m", 200);
    let handles: Vec<_> = [(0, 1), (1, 0)]
        .into_iter()
        .map(|(from, to)| {
            let mut c = server.client();
            std::thread::spawn(move || {
                let _: () = redis::cmd("SELECT").arg(from).query(&mut c).unwrap();
                for _ in 0..20 {
                    let mut p = redis::pipe();
                    for i in 0..200 {
                        p.cmd("MOVE").arg(format!("m{i}")).arg(to).ignore();
                    }
                    p.query::<()>(&mut c).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut total = 0;
    for db in 0..2 {
        let _: () = redis::cmd("SELECT").arg(db).query(&mut con).unwrap();
        total += redis::cmd("DBSIZE").query::<usize>(&mut con).unwrap();
    }
    assert_eq!(total, 200);
}

#[test]
fn copy_to_another_database_duplicates_value_and_ttl() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    let big = "x".repeat(1000);
    let _: () = con.set("src", &big).unwrap();
    let _: () = redis::cmd("EXPIREAT")
        .arg("src")
        .arg(4_102_444_800u64)
        .query(&mut con)
        .unwrap();
    let n: i64 = redis::cmd("COPY")
        .arg("src")
        .arg("dst")
        .arg("DB")
        .arg(3)
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1);
    // The copy is independent of the source.
    let _: () = con.set("src", "changed").unwrap();
    let _: () = redis::cmd("SELECT").arg(3).query(&mut con).unwrap();
    assert_eq!(con.get::<_, String>("dst").unwrap(), big);
    let at: i64 = redis::cmd("EXPIRETIME").arg("dst").query(&mut con).unwrap();
    assert_eq!(at, 4_102_444_800);
    let _: () = redis::cmd("SELECT").arg(0).query(&mut con).unwrap();
    let n: i64 = redis::cmd("COPY")
        .arg("src")
        .arg("dst")
        .arg("DB")
        .arg(3)
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 0);
    let n: i64 = redis::cmd("COPY")
        .arg("src")
        .arg("dst")
        .arg("DB")
        .arg(3)
        .arg("REPLACE")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1);
    let _: () = redis::cmd("SELECT").arg(3).query(&mut con).unwrap();
    assert_eq!(con.get::<_, String>("dst").unwrap(), "changed");
    // SET cleared the source's TTL, and REPLACE took the source as it is.
    let ttl: i64 = con.ttl("dst").unwrap();
    assert_eq!(ttl, -1);
}

#[test]
fn keys_lists_every_matching_key_of_a_large_database() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    fill(&mut con, "key:", 50_000);
    fill(&mut con, "other:", 1_000);
    let all: Vec<String> = con.keys("*").unwrap();
    assert_eq!(all.len(), 51_000);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 51_000);
    let some: Vec<String> = con.keys("key:4999?").unwrap();
    let mut some: Vec<i64> = some.iter().map(|k| k[4..].parse().unwrap()).collect();
    some.sort_unstable();
    assert_eq!(some, (49_990..50_000).collect::<Vec<_>>());
    let others: Vec<String> = con.keys("other:*").unwrap();
    assert_eq!(others.len(), 1_000);
    // Another database is separate.
    let _: () = redis::cmd("SELECT").arg(1).query(&mut con).unwrap();
    let none: Vec<String> = con.keys("*").unwrap();
    assert!(none.is_empty());
}

#[test]
fn randomkey_returns_only_existing_keys_and_eventually_each_of_them() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    let empty: Option<String> = redis::cmd("RANDOMKEY").query(&mut con).unwrap();
    assert_eq!(empty, None);
    fill(&mut con, "r", 8);
    let mut seen = HashSet::new();
    for _ in 0..2_000 {
        let k: String = redis::cmd("RANDOMKEY").query(&mut con).unwrap();
        assert!(
            k.starts_with('r') && k[1..].parse::<u32>().unwrap() < 8,
            "{k}"
        );
        seen.insert(k);
        if seen.len() == 8 {
            break;
        }
    }
    assert_eq!(seen.len(), 8);
}

#[test]
fn only_touch_and_real_accesses_reset_the_idle_time() {
    let server = TestServer::kiln(&[]);
    let mut raw = server.raw();
    let before = Instant::now();
    raw.cmd(&["SET", "k", "v"]);
    raw.cmd(&["SET", "t", "v"]);
    std::thread::sleep(Duration::from_millis(2_100));
    // None of these count as an access.
    for cmd in [
        &["TYPE", "k"][..],
        &["EXISTS", "k"],
        &["TTL", "k"],
        &["PTTL", "k"],
        &["EXPIRETIME", "k"],
        &["OBJECT", "ENCODING", "k"],
        &["OBJECT", "REFCOUNT", "k"],
        &["OBJECT", "IDLETIME", "k"],
    ] {
        raw.cmd(cmd);
    }
    let idle: u64 = raw.cmd(&["OBJECT", "IDLETIME", "k"])[1..]
        .trim()
        .parse()
        .unwrap();
    // At least the 2.1 s slept; at most what this side's clock saw pass, plus a second of
    // rounding (a slow machine widens the window instead of failing the test).
    let most = before.elapsed().as_secs() + 1;
    assert!((2..=most).contains(&idle), "{idle} (at most {most})");
    assert_eq!(raw.cmd(&["TOUCH", "t", "nokey"]), ":1\r\n");
    let idle = raw.cmd(&["OBJECT", "IDLETIME", "t"]);
    assert!(idle == ":0\r\n" || idle == ":1\r\n", "{idle:?}");
}

#[test]
fn resp3_nulls_and_types() {
    let server = TestServer::kiln(&[]);
    let mut raw = server.raw();
    raw.cmd(&["HELLO", "3"]);
    assert_eq!(raw.cmd(&["RANDOMKEY"]), "_\r\n");
    assert_eq!(raw.cmd(&["OBJECT", "ENCODING", "nokey"]), "_\r\n");
    assert_eq!(raw.cmd(&["TYPE", "nokey"]), "+none\r\n");
    assert_eq!(raw.cmd(&["SCAN", "0"]), "*2\r\n$1\r\n0\r\n*0\r\n");
    raw.cmd(&["SET", "k", "1"]);
    assert_eq!(raw.cmd(&["KEYS", "*"]), "*1\r\n$1\r\nk\r\n");
    assert_eq!(raw.cmd(&["OBJECT", "REFCOUNT", "k"]), ":2147483647\r\n");
}

#[test]
fn hostile_glob_patterns_do_not_hang_keys_or_scan() {
    let server = TestServer::kiln(&[]);
    let mut raw = server.raw();
    let key = "a".repeat(200);
    raw.cmd(&["SET", key.as_str(), "v"]);
    let pattern = format!("{}b", "*a".repeat(40));
    assert_eq!(raw.cmd(&["KEYS", pattern.as_str()]), "*0\r\n");
    assert_eq!(
        raw.cmd(&["SCAN", "0", "MATCH", pattern.as_str(), "COUNT", "100"]),
        "*2\r\n$1\r\n0\r\n*0\r\n"
    );
}
