//! Black-box tests of the set commands. The differential scripts under `tests/diff/sets/`
//! compare every deterministic reply with redis-server byte for byte; the tests here cover
//! what a script cannot: large sets (SSCAN's guarantee while the set changes, conversions
//! at scale), the randomness of SPOP and SRANDMEMBER, atomicity under concurrent clients,
//! and bounds on replies a client can ask for.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use redis::{Commands, Connection, Value};
use support::{TestServer, DEBUG_ON};

#[test]
fn set_commands_match_redis() {
    support::run_script_dir("sets");
}

/// Runs the scripts of `tests/diff/sets/debug/` with DEBUG enabled on both servers.
#[test]
fn set_digests_match_redis() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diff/sets/debug");
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty());
    for p in scripts {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        support::run_script_with(&name, &std::fs::read_to_string(&p).unwrap(), DEBUG_ON);
    }
}

fn sadd_range(con: &mut Connection, key: &str, prefix: &str, range: std::ops::Range<usize>) {
    let members: Vec<String> = range.map(|i| format!("{prefix}{i}")).collect();
    for chunk in members.chunks(1000) {
        let _: usize = con.sadd(key, chunk).unwrap();
    }
}

fn sscan_all(con: &mut Connection, key: &str, count: usize) -> Vec<String> {
    let mut cursor = 0u64;
    let mut seen = Vec::new();
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SSCAN")
            .arg(key)
            .arg(cursor)
            .arg("COUNT")
            .arg(count)
            .query(con)
            .unwrap();
        seen.extend(page);
        if next == 0 {
            return seen;
        }
        cursor = next;
    }
}

#[test]
fn sscan_returns_every_member_of_a_large_set_exactly_once_when_it_does_not_change() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    sadd_range(&mut con, "big", "member:", 0..20_000);
    let seen = sscan_all(&mut con, "big", 100);
    assert_eq!(seen.len(), 20_000);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 20_000);
}

#[test]
fn sscan_returns_every_member_present_for_the_whole_scan_while_the_set_changes() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    sadd_range(&mut con, "s", "keep:", 0..5_000);
    sadd_range(&mut con, "s", "temp:", 0..5_000);
    let mut cursor = 0u64;
    let mut seen = HashSet::new();
    let mut round = 0;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SSCAN")
            .arg("s")
            .arg(cursor)
            .arg("COUNT")
            .arg(50)
            .query(&mut con)
            .unwrap();
        seen.extend(page);
        // Between calls: remove some temporary members (which moves others around) and
        // add new ones.
        let gone: Vec<String> = (round * 40..round * 40 + 40)
            .map(|i| format!("temp:{i}"))
            .collect();
        let _: usize = con.srem("s", &gone).unwrap();
        let _: usize = con.sadd("s", format!("new:{round}")).unwrap();
        round += 1;
        if next == 0 {
            break;
        }
        cursor = next;
    }
    for i in 0..5_000 {
        assert!(
            seen.contains(&format!("keep:{i}")),
            "keep:{i} was never returned"
        );
    }
}

#[test]
fn sscan_with_match_filters_a_hashtable_set() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    sadd_range(&mut con, "s", "a:", 0..1000);
    sadd_range(&mut con, "s", "b:", 0..1000);
    let mut cursor = 0u64;
    let mut seen = HashSet::new();
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SSCAN")
            .arg("s")
            .arg(cursor)
            .arg("MATCH")
            .arg("a:*")
            .query(&mut con)
            .unwrap();
        for m in &page {
            assert!(m.starts_with("a:"), "{m}");
        }
        seen.extend(page);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 1000);
}

#[test]
fn a_large_integer_set_converts_to_a_hashtable_and_keeps_every_member() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    for i in 0..600 {
        let _: usize = con.sadd("s", i * 3).unwrap();
        let enc: String = redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg("s")
            .query(&mut con)
            .unwrap();
        assert_eq!(enc, if i < 512 { "intset" } else { "hashtable" }, "at {i}");
    }
    for i in 0..600 {
        let found: bool = con.sismember("s", i * 3).unwrap();
        assert!(found);
        let found: bool = con.sismember("s", i * 3 + 1).unwrap();
        assert!(!found);
    }
    let members: HashSet<i64> = con.smembers("s").unwrap();
    assert_eq!(members, (0..600).map(|i| i * 3).collect());
}

#[test]
fn removing_most_of_a_large_set_keeps_the_rest_intact() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    sadd_range(&mut con, "s", "m", 0..30_000);
    let gone: Vec<String> = (0..30_000)
        .filter(|i| i % 7 != 0)
        .map(|i| format!("m{i}"))
        .collect();
    for chunk in gone.chunks(1000) {
        let _: usize = con.srem("s", chunk).unwrap();
    }
    let n: usize = con.scard("s").unwrap();
    assert_eq!(n, 30_000_usize.div_ceil(7));
    let members: HashSet<String> = con.smembers("s").unwrap();
    let expected: HashSet<String> = (0..30_000)
        .filter(|i| i % 7 == 0)
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(members, expected);
}

#[test]
fn long_members_round_trip() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let long: Vec<Vec<u8>> = (0..50u8)
        .map(|i| {
            (0..(i as usize * 37))
                .map(|j| (j as u8).wrapping_mul(i))
                .collect()
        })
        .collect();
    for m in &long {
        let _: usize = con.sadd("s", m).unwrap();
    }
    let n: usize = con.scard("s").unwrap();
    assert_eq!(n, long.len());
    for m in &long {
        let found: bool = con.sismember("s", m).unwrap();
        assert!(found);
    }
    let back: HashSet<Vec<u8>> = con.smembers("s").unwrap();
    assert_eq!(back, long.into_iter().collect());
}

#[test]
fn spop_with_a_count_returns_distinct_members_and_removes_them() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    for (key, prefix) in [("ints", ""), ("strs", "m")] {
        sadd_range(&mut con, key, prefix, 0..100);
        let mut all = HashSet::new();
        for count in [1usize, 5, 30, 60] {
            let popped: Vec<String> = redis::cmd("SPOP")
                .arg(key)
                .arg(count)
                .query(&mut con)
                .unwrap();
            let left: usize = con.scard(key).unwrap();
            let expected = 100 - all.len() - popped.len();
            assert_eq!(left, expected);
            for m in popped {
                let member: bool = con.sismember(key, &m).unwrap();
                assert!(!member, "{m} still in {key}");
                assert!(all.insert(m), "{key}: popped twice");
            }
        }
        let rest: Vec<String> = redis::cmd("SPOP")
            .arg(key)
            .arg(1000)
            .query(&mut con)
            .unwrap();
        assert_eq!(all.len() + rest.len(), 100);
        let exists: bool = con.exists(key).unwrap();
        assert!(!exists);
    }
}

#[test]
fn srandmember_with_a_positive_count_returns_distinct_members() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    sadd_range(&mut con, "strs", "m", 0..50);
    sadd_range(&mut con, "ints", "", 0..50);
    for key in ["strs", "ints"] {
        for count in [1usize, 2, 10, 20, 40, 49, 50, 51] {
            let got: Vec<String> = con.srandmember_multiple(key, count).unwrap();
            assert_eq!(got.len(), count.min(50));
            let unique: HashSet<&String> = got.iter().collect();
            assert_eq!(unique.len(), got.len(), "{key} {count}: {got:?}");
        }
    }
}

#[test]
fn srandmember_and_spop_pick_every_member_about_equally_often() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    for (key, prefix) in [("ints", ""), ("strs", "m")] {
        sadd_range(&mut con, key, prefix, 0..10);
        let draws: Vec<String> = redis::cmd("SRANDMEMBER")
            .arg(key)
            .arg(-100_000)
            .query(&mut con)
            .unwrap();
        assert_eq!(draws.len(), 100_000);
        let mut counts: HashMap<String, usize> = HashMap::new();
        for d in draws {
            *counts.entry(d).or_default() += 1;
        }
        assert_eq!(counts.len(), 10);
        for (m, n) in &counts {
            // Expected 10000 each; 5 standard deviations is about 475.
            assert!((9_000..11_000).contains(n), "{key}: {m} drawn {n} times");
        }
        // Distinct draws of 3 out of 10, many times: each member about 30% of the time.
        let mut counts: HashMap<String, usize> = HashMap::new();
        for _ in 0..3000 {
            let got: Vec<String> = con.srandmember_multiple(key, 3).unwrap();
            for m in got {
                *counts.entry(m).or_default() += 1;
            }
        }
        for (m, n) in &counts {
            assert!((700..1100).contains(n), "{key}: {m} picked {n} times");
        }
    }
    // SPOP without a count, on fresh copies: every member comes out.
    let mut firsts = HashSet::new();
    for _ in 0..300 {
        sadd_range(&mut con, "p", "m", 0..5);
        let m: String = con.spop("p").unwrap();
        firsts.insert(m);
        let _: () = con.del("p").unwrap();
    }
    assert_eq!(firsts.len(), 5);
}

#[test]
fn a_negative_count_whose_reply_would_pass_proto_max_bulk_len_is_refused() {
    let s = TestServer::kiln(&["--proto-max-bulk-len", "1mb"]);
    let mut raw = s.raw();
    raw.cmd(&["SADD", "s", "a-member-of-some-length"]);
    let ok = raw.cmd(&["SRANDMEMBER", "s", "-1000"]);
    assert!(ok.starts_with("*1000\r\n"), "{ok}");
    let refused = raw.cmd(&["SRANDMEMBER", "s", "-9223372036854775807"]);
    assert_eq!(
        refused,
        "-ERR reply would exceed proto-max-bulk-len bytes, ask for fewer elements\r\n"
    );
    // The connection is still usable and the set unchanged.
    assert_eq!(raw.cmd(&["SCARD", "s"]), ":1\r\n");
}

#[test]
fn concurrent_smove_between_two_sets_never_loses_or_duplicates_a_member() {
    let s = Arc::new(TestServer::kiln(&[]));
    let mut con = s.client();
    sadd_range(&mut con, "left", "m", 0..200);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut con = s.client();
                for i in 0..2000 {
                    let m = format!("m{}", (i * 7 + t) % 200);
                    let (from, to) = if i % 2 == 0 {
                        ("left", "right")
                    } else {
                        ("right", "left")
                    };
                    let _: i64 = redis::cmd("SMOVE")
                        .arg(from)
                        .arg(to)
                        .arg(&m)
                        .query(&mut con)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let left: HashSet<String> = con.smembers("left").unwrap();
    let right: HashSet<String> = con.smembers("right").unwrap();
    assert_eq!(left.len() + right.len(), 200);
    assert!(left.is_disjoint(&right));
}

#[test]
fn concurrent_sunionstore_sees_each_source_whole() {
    let s = Arc::new(TestServer::kiln(&[]));
    let mut con = s.client();
    sadd_range(&mut con, "a", "x", 0..100);
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            let mut con = s.client();
            for _ in 0..300 {
                // Moves all of `a` to `b` and back, one command each: any reader sees 100
                // members in total.
                let _: usize = con.sunionstore("b", "a").unwrap();
                let _: () = con.del("a").unwrap();
                let _: usize = con.sunionstore("a", "b").unwrap();
                let _: () = con.del("b").unwrap();
            }
        })
    };
    for _ in 0..300 {
        let n: usize = redis::cmd("SUNIONSTORE")
            .arg("snapshot")
            .arg("a")
            .arg("b")
            .query(&mut con)
            .unwrap();
        assert!(n == 100 || n == 0 || n == 200, "{n}");
    }
    writer.join().unwrap();
}

#[test]
fn set_algebra_on_large_sets_matches_a_model() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    sadd_range(&mut con, "a", "", 0..3000);
    let b: Vec<String> = (0..3000).step_by(3).map(|i| i.to_string()).collect();
    let c: Vec<String> = (1500..4500).map(|i| format!("{i}")).collect();
    let _: usize = con.sadd("b", &b).unwrap();
    let _: usize = con.sadd("c", &c).unwrap();
    let model = |r: std::ops::Range<i64>| -> HashSet<i64> { r.collect() };
    let a_m = model(0..3000);
    let b_m: HashSet<i64> = (0..3000).step_by(3).collect();
    let c_m = model(1500..4500);
    let inter: HashSet<i64> = con.sinter(&["a", "b", "c"]).unwrap();
    let expected: HashSet<i64> = a_m
        .iter()
        .filter(|x| b_m.contains(x) && c_m.contains(x))
        .copied()
        .collect();
    assert_eq!(inter, expected);
    let card: usize = redis::cmd("SINTERCARD")
        .arg(3)
        .arg("a")
        .arg("b")
        .arg("c")
        .query(&mut con)
        .unwrap();
    assert_eq!(card, expected.len());
    let union: HashSet<i64> = con.sunion(&["a", "b", "c"]).unwrap();
    assert_eq!(union, model(0..4500));
    let diff: HashSet<i64> = con.sdiff(&["a", "b", "c"]).unwrap();
    let expected: HashSet<i64> = a_m
        .iter()
        .filter(|x| !b_m.contains(x) && !c_m.contains(x))
        .copied()
        .collect();
    assert_eq!(diff, expected);
    let n: usize = con.sdiffstore("d", &["c", "a"]).unwrap();
    assert_eq!(n, 1500);
    let stored: HashSet<i64> = con.smembers("d").unwrap();
    assert_eq!(stored, model(3000..4500));
}

#[test]
fn set_replies_have_the_resp3_set_type() {
    let s = TestServer::kiln(&[]);
    let mut raw = s.raw();
    raw.cmd(&["HELLO", "3"]);
    raw.cmd(&["SADD", "s", "a", "b"]);
    assert!(raw.cmd(&["SMEMBERS", "s"]).starts_with("~2\r\n"));
    assert!(raw.cmd(&["SUNION", "s", "t"]).starts_with("~2\r\n"));
    assert!(raw.cmd(&["SRANDMEMBER", "s", "5"]).starts_with("*2\r\n"));
    assert!(raw.cmd(&["SPOP", "s", "1"]).starts_with("~1\r\n"));
    let v: Value = {
        let mut con = s.client();
        redis::cmd("SMEMBERS").arg("s").query(&mut con).unwrap()
    };
    assert!(matches!(v, Value::Array(ref a) if a.len() == 1), "{v:?}");
}

#[test]
fn set_commands_emit_the_keyspace_events_of_redis() {
    let cmds: &[&[&str]] = &[
        &["SADD", "a", "1", "2", "3"],
        &["SADD", "a", "1"],
        &["SREM", "a", "9"],
        &["SREM", "a", "1"],
        &["SREM", "a", "2", "3"],
        &["SADD", "b", "x", "y"],
        &["SMOVE", "b", "c", "nope"],
        &["SMOVE", "b", "b", "x"],
        &["SMOVE", "b", "c", "x"],
        &["SADD", "d", "y"],
        &["SMOVE", "b", "d", "y"],
        &["SPOP", "d"],
        &["SADD", "e", "1", "2", "3"],
        &["SPOP", "e", "0"],
        &["SPOP", "e", "1"],
        &["SPOP", "e", "5"],
        &["SADD", "f", "1", "2"],
        &["SADD", "g", "2", "3"],
        &["SINTERSTORE", "h", "f", "g"],
        &["SUNIONSTORE", "h", "f", "g"],
        &["SDIFFSTORE", "h", "f", "g"],
        &["SDIFFSTORE", "h", "f", "f"],
        &["SDIFFSTORE", "h", "f", "f"],
        &["SINTERSTORE", "h", "f", "nokey"],
        &["RPUSH", "i", "v"],
        &["SUNIONSTORE", "i", "nokey"],
        &["SRANDMEMBER", "f"],
        &["SINTER", "f", "g"],
    ];
    let expected: Vec<(String, String)> = [
        ("sadd", "a"),
        ("srem", "a"),
        ("srem", "a"),
        ("del", "a"),
        ("sadd", "b"),
        ("srem", "b"),
        ("sadd", "c"),
        ("sadd", "d"),
        ("srem", "b"),
        ("del", "b"),
        ("spop", "d"),
        ("del", "d"),
        ("sadd", "e"),
        ("spop", "e"),
        ("spop", "e"),
        ("del", "e"),
        ("sadd", "f"),
        ("sadd", "g"),
        ("sinterstore", "h"),
        ("sunionstore", "h"),
        ("sdiffstore", "h"),
        ("del", "h"),
        ("rpush", "i"),
        ("del", "i"),
    ]
    .iter()
    .map(|(e, k)| (e.to_string(), k.to_string()))
    .collect();
    let kiln = TestServer::kiln(&[]);
    assert_eq!(support::keyevents(&kiln, cmds), expected);
    if let Some(redis) = TestServer::redis(&[]) {
        assert_eq!(support::keyevents(&redis, cmds), expected);
    }
}
