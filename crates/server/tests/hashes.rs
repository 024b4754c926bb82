//! Black-box tests of the hash commands, for what a differential script cannot show:
//! random replies, HSCAN's guarantee on large hashes that change during the scan, large
//! hashes in both encodings, and atomicity under concurrent clients. The differential
//! scripts are in `tests/diff/hashes/` (those in its `debug/` folder run with DEBUG on).

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use redis::{Commands, Value};
use support::{TestServer, DEBUG_ON};

#[test]
fn hash_commands_match_redis() {
    support::run_script_dir("hashes");
}

/// The scripts of `tests/diff/hashes/debug/` need DEBUG enabled on both servers.
#[test]
fn hash_digests_match_redis() {
    support::run_script_with(
        "debug/digest.txt",
        include_str!("diff/hashes/debug/digest.txt"),
        DEBUG_ON,
    );
}

/// Every (field, value) of a hash, via HGETALL.
fn all(con: &mut redis::Connection, key: &str) -> HashMap<String, String> {
    con.hgetall(key).unwrap()
}

#[test]
fn a_large_hash_round_trips_and_shrinks_field_by_field() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let mut expect = HashMap::new();
    for chunk in 0..20 {
        let pairs: Vec<(String, String)> = (0..500)
            .map(|i| {
                let n = chunk * 500 + i;
                // Every seventh value is too long to sit inline next to its field.
                let v = if n % 7 == 0 {
                    "x".repeat(100 + n % 50)
                } else {
                    format!("v{n}")
                };
                (format!("field:{n}"), v)
            })
            .collect();
        let _: () = con.hset_multiple("big", &pairs).unwrap();
        expect.extend(pairs);
    }
    let enc: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("big")
        .query(&mut con)
        .unwrap();
    assert_eq!(enc, "hashtable");
    assert_eq!(con.hlen::<_, usize>("big").unwrap(), 10_000);
    assert_eq!(all(&mut con, "big"), expect);
    let v: String = con.hget("big", "field:1234").unwrap();
    assert_eq!(v, expect["field:1234"]);
    for n in (0..10_000).step_by(2) {
        let removed: i64 = con.hdel("big", format!("field:{n}")).unwrap();
        assert_eq!(removed, 1);
        expect.remove(&format!("field:{n}"));
    }
    assert_eq!(all(&mut con, "big"), expect);
    let keys: Vec<String> = con.hkeys("big").unwrap();
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 5_000);
    for n in (1..10_000).step_by(2) {
        let _: i64 = con.hdel("big", format!("field:{n}")).unwrap();
    }
    assert!(!con.exists::<_, bool>("big").unwrap());
}

#[test]
fn hscan_returns_every_field_that_stays_while_the_hash_changes() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    for i in 0..3000 {
        let _: () = con
            .hset_multiple("h", &[(format!("keep{i}"), "v"), (format!("drop{i}"), "v")])
            .unwrap();
    }
    let mut seen = HashSet::new();
    let (mut cursor, mut round) = (0u64, 0);
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("HSCAN")
            .arg("h")
            .arg(cursor)
            .arg("COUNT")
            .arg(25)
            .query(&mut con)
            .unwrap();
        for pair in page.chunks(2) {
            assert_eq!(pair[1], "v");
            seen.insert(pair[0].clone());
        }
        // Fields come and go between the calls.
        for j in 0..20 {
            let _: i64 = con.hdel("h", format!("drop{}", round * 20 + j)).unwrap();
            let _: i64 = con.hset("h", format!("new{round}-{j}"), "v").unwrap();
        }
        round += 1;
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    for i in 0..3000 {
        assert!(seen.contains(&format!("keep{i}")), "keep{i} never returned");
    }
}

#[test]
fn hscan_with_match_filters_a_large_hash() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    for i in 0..1000 {
        let _: i64 = con.hset("h", format!("f{i}"), i).unwrap();
    }
    let mut found = HashSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("HSCAN")
            .arg("h")
            .arg(cursor)
            .arg("MATCH")
            .arg("f1*")
            .query(&mut con)
            .unwrap();
        for pair in page.chunks(2) {
            assert!(pair[0].starts_with("f1"));
            assert_eq!(pair[0][1..], pair[1]);
            found.insert(pair[0].clone());
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    // f1, f10-f19, f100-f199
    assert_eq!(found.len(), 111);
}

#[test]
fn hrandfield_with_a_positive_count_returns_distinct_fields() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    for (key, n) in [("small", 50), ("large", 1000)] {
        for i in 0..n {
            let _: i64 = con.hset(key, format!("f{i}"), format!("v{i}")).unwrap();
        }
        for count in [1, 2, 10, 49, 300, 999, 1000, 5000] {
            let fields: Vec<String> = redis::cmd("HRANDFIELD")
                .arg(key)
                .arg(count)
                .query(&mut con)
                .unwrap();
            assert_eq!(fields.len(), count.min(n), "{key} {count}");
            let distinct: HashSet<&String> = fields.iter().collect();
            assert_eq!(distinct.len(), fields.len(), "{key} {count}");
            assert!(fields.iter().all(|f| f[1..].parse::<usize>().unwrap() < n));
            let pairs: Vec<String> = redis::cmd("HRANDFIELD")
                .arg(key)
                .arg(count)
                .arg("WITHVALUES")
                .query(&mut con)
                .unwrap();
            assert_eq!(pairs.len(), 2 * count.min(n));
            for p in pairs.chunks(2) {
                assert_eq!(p[0][1..], p[1][1..]);
            }
        }
    }
}

#[test]
fn hrandfield_distinct_picks_from_a_listpack_keep_its_order() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    for i in 0..100 {
        let _: i64 = con.hset("h", format!("f{i}"), "v").unwrap();
    }
    for _ in 0..20 {
        let fields: Vec<String> = redis::cmd("HRANDFIELD")
            .arg("h")
            .arg(30)
            .query(&mut con)
            .unwrap();
        let idx: Vec<usize> = fields.iter().map(|f| f[1..].parse().unwrap()).collect();
        assert!(idx.windows(2).all(|w| w[0] < w[1]), "{idx:?}");
    }
}

#[test]
fn hrandfield_with_a_negative_count_repeats_and_covers_every_field() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let _: () = con
        .hset_multiple(
            "h",
            &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")],
        )
        .unwrap();
    let picks: Vec<String> = redis::cmd("HRANDFIELD")
        .arg("h")
        .arg(-1000)
        .query(&mut con)
        .unwrap();
    assert_eq!(picks.len(), 1000);
    let distinct: HashSet<&str> = picks.iter().map(String::as_str).collect();
    assert_eq!(distinct, HashSet::from(["a", "b", "c", "d", "e"]));
    let pairs: Vec<String> = redis::cmd("HRANDFIELD")
        .arg("h")
        .arg(-7)
        .arg("WITHVALUES")
        .query(&mut con)
        .unwrap();
    assert_eq!(pairs.len(), 14);
    for p in pairs.chunks(2) {
        let expect = (p[0].as_bytes()[0] - b'a' + 1).to_string();
        assert_eq!(p[1], expect);
    }
    let one: String = redis::cmd("HRANDFIELD").arg("h").query(&mut con).unwrap();
    assert!(distinct.contains(one.as_str()));
}

#[test]
fn hrandfield_refuses_a_negative_count_too_large_to_reply() {
    let s = TestServer::kiln(&[]);
    let mut raw = s.raw();
    raw.cmd(&["HSET", "h", "f", "v"]);
    assert_eq!(
        raw.cmd(&["HRANDFIELD", "h", "-100000000000"]),
        "-ERR value is out of range\r\n"
    );
    // A missing key still replies an empty array, as Redis does.
    assert_eq!(raw.cmd(&["HRANDFIELD", "nokey", "-100000000000"]), "*0\r\n");
    assert_eq!(raw.cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn hrandfield_withvalues_nests_pairs_in_resp3() {
    let s = TestServer::kiln(&[]);
    let mut raw = s.raw();
    raw.cmd(&["HELLO", "3"]);
    raw.cmd(&["HSET", "h", "f", "v"]);
    assert_eq!(
        raw.cmd(&["HRANDFIELD", "h", "-2", "WITHVALUES"]),
        "*2\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
    assert_eq!(raw.cmd(&["HGETALL", "h"]), "%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
}

#[test]
fn concurrent_hincrby_from_eight_threads_counts_exactly() {
    let s = Arc::new(TestServer::kiln(&[]));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut con = s.client();
                for i in 0..500 {
                    let _: i64 = con.hincr("counters", "shared", 1).unwrap();
                    let _: i64 = con
                        .hincr("counters", format!("t{t}-{}", i % 10), 1)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = s.client();
    let shared: i64 = con.hget("counters", "shared").unwrap();
    assert_eq!(shared, 4000);
    assert_eq!(con.hlen::<_, usize>("counters").unwrap(), 81);
    let all: HashMap<String, i64> = con.hgetall("counters").unwrap();
    assert_eq!(all.values().sum::<i64>(), 8000);
}

#[test]
fn large_hashes_digest_like_redis_in_both_encodings() {
    let Some(redis) = TestServer::redis(DEBUG_ON) else {
        return;
    };
    let kiln = TestServer::kiln(DEBUG_ON);
    for s in [&kiln, &redis] {
        let mut con = s.client();
        for i in 0..2000 {
            let _: i64 = con.hset("big", format!("field:{i}"), i * 3).unwrap();
        }
        for i in 0..100 {
            let _: i64 = con.hset("small", format!("f{i}"), format!("v{i}")).unwrap();
        }
        for i in (0..2000).step_by(3) {
            let _: i64 = con.hdel("big", format!("field:{i}")).unwrap();
        }
        let _: f64 = con.hincr("big", "field:1", 0.5).unwrap();
    }
    let digest = |s: &TestServer, key: &str| -> String {
        redis::cmd("DEBUG")
            .arg("DIGEST-VALUE")
            .arg(key)
            .query::<Vec<String>>(&mut s.client())
            .unwrap()
            .remove(0)
    };
    for key in ["big", "small"] {
        assert_eq!(digest(&kiln, key), digest(&redis, key), "{key}");
    }
    let enc = |s: &TestServer, key: &str| -> String {
        redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(key)
            .query(&mut s.client())
            .unwrap()
    };
    assert_eq!(enc(&kiln, "big"), enc(&redis, "big"));
    assert_eq!(enc(&kiln, "small"), enc(&redis, "small"));
    let small = |s: &TestServer| -> Value {
        redis::cmd("HGETALL")
            .arg("small")
            .query(&mut s.client())
            .unwrap()
    };
    assert_eq!(small(&kiln), small(&redis));
}
