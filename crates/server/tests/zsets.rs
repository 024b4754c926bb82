//! Sorted sets: the differential scripts of `tests/diff/zsets/`, the blocking pops, and
//! behaviour a script cannot pin down byte for byte (random draws, large skiplist-encoded
//! sets, ZSCAN cursors, Redis 7.2's ZRANK WITHSCORE).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use redis::Value;
use support::TestServer;

#[test]
fn sorted_set_commands_match_redis() {
    support::run_script_dir("zsets");
}

/// The scripts of `tests/diff/zsets/debug/` need DEBUG enabled on both servers.
#[test]
fn sorted_set_digests_match_redis() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diff/zsets/debug");
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty());
    for p in scripts {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        support::run_script_with(
            &name,
            &std::fs::read_to_string(&p).unwrap(),
            &["--enable-debug-command", "yes"],
        );
    }
}

fn cmd(name: &str) -> redis::Cmd {
    redis::cmd(name)
}

#[test]
fn zrank_withscore_replies_rank_and_score_as_in_redis_7_2() {
    let server = TestServer::kiln(&[]);
    let mut r = server.raw();
    r.cmd(&["ZADD", "z", "1", "a", "2.5", "b"]);
    assert_eq!(
        r.cmd(&["ZRANK", "z", "b", "WITHSCORE"]),
        "*2\r\n:1\r\n$3\r\n2.5\r\n"
    );
    assert_eq!(
        r.cmd(&["ZREVRANK", "z", "b", "withscore"]),
        "*2\r\n:0\r\n$3\r\n2.5\r\n"
    );
    assert_eq!(r.cmd(&["ZRANK", "z", "nosuch", "WITHSCORE"]), "*-1\r\n");
    assert_eq!(r.cmd(&["ZRANK", "nokey", "a", "WITHSCORE"]), "*-1\r\n");
    assert_eq!(r.cmd(&["ZRANK", "z", "a", "FOO"]), "-ERR syntax error\r\n");
    assert_eq!(
        r.cmd(&["ZRANK", "z", "a", "WITHSCORE", "x"]),
        "-ERR wrong number of arguments for 'zrank' command\r\n"
    );
    r.cmd(&["HELLO", "3"]);
    assert_eq!(
        r.cmd(&["ZREVRANK", "z", "a", "WITHSCORE"]),
        "*2\r\n:1\r\n,1\r\n"
    );
    assert_eq!(r.cmd(&["ZRANK", "z", "nosuch", "WITHSCORE"]), "_\r\n");
}

#[test]
fn bzpopmin_waits_for_a_zadd_and_gets_the_lowest_member() {
    let server = TestServer::kiln(&[]);
    let mut waiter = server.raw();
    waiter.send_cmd(&["BZPOPMIN", "nokey", "z", "0"]);
    server.raw().wait_blocked(1);
    let mut other = server.raw();
    assert_eq!(
        other.cmd(&["ZADD", "z", "3", "c", "1", "a", "2", "b"]),
        ":3\r\n"
    );
    assert_eq!(
        String::from_utf8(waiter.read_reply().unwrap()).unwrap(),
        "*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n"
    );
    assert_eq!(other.cmd(&["ZCARD", "z"]), ":2\r\n");
}

#[test]
fn bzpopmax_is_served_when_members_are_added_to_an_existing_set() {
    let server = TestServer::kiln(&[]);
    let mut other = server.raw();
    // Another key makes the blocking command wait; then an existing key gets a member.
    let mut waiter = server.raw();
    waiter.send_cmd(&["BZPOPMAX", "z", "1.5"]);
    server.raw().wait_blocked(1);
    other.cmd(&["ZADD", "z", "1", "a"]);
    assert_eq!(
        String::from_utf8(waiter.read_reply().unwrap()).unwrap(),
        "*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n"
    );
    // Keys that exist but get new members by ZINCRBY or a store also wake waiters.
    waiter.send_cmd(&["BZPOPMAX", "z2", "0"]);
    server.raw().wait_blocked(1);
    other.cmd(&["ZADD", "src", "5", "x", "6", "y"]);
    assert_eq!(other.cmd(&["ZUNIONSTORE", "z2", "1", "src"]), ":2\r\n");
    assert_eq!(
        String::from_utf8(waiter.read_reply().unwrap()).unwrap(),
        "*3\r\n$2\r\nz2\r\n$1\r\ny\r\n$1\r\n6\r\n"
    );
}

#[test]
fn bzmpop_serves_waiters_in_arrival_order_with_their_counts() {
    let server = TestServer::kiln(&[]);
    let mut first = server.raw();
    let mut second = server.raw();
    first.send_cmd(&["BZMPOP", "0", "2", "k1", "k2", "MIN", "COUNT", "2"]);
    server.raw().wait_blocked(1);
    second.send_cmd(&["BZMPOP", "0", "1", "k2", "MAX"]);
    server.raw().wait_blocked(2);
    let mut other = server.raw();
    other.cmd(&["ZADD", "k2", "1", "a", "2", "b", "3", "c"]);
    assert_eq!(
        String::from_utf8(first.read_reply().unwrap()).unwrap(),
        "*2\r\n$2\r\nk2\r\n*2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n"
    );
    assert_eq!(
        String::from_utf8(second.read_reply().unwrap()).unwrap(),
        "*2\r\n$2\r\nk2\r\n*1\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n"
    );
    assert_eq!(other.cmd(&["EXISTS", "k2"]), ":0\r\n");
}

#[test]
fn blocking_pops_time_out_with_a_null_array() {
    let server = TestServer::kiln(&[]);
    let mut r = server.raw();
    let start = Instant::now();
    assert_eq!(r.cmd(&["BZPOPMIN", "nokey", "0.2"]), "*-1\r\n");
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(r.cmd(&["BZMPOP", "0.1", "1", "nokey", "MIN"]), "*-1\r\n");
    r.cmd(&["HELLO", "3"]);
    assert_eq!(r.cmd(&["BZPOPMAX", "nokey", "0.1"]), "_\r\n");
}

#[test]
fn a_blocked_pop_ignores_a_key_recreated_with_another_type() {
    let server = TestServer::kiln(&[]);
    let mut waiter = server.raw();
    waiter.send_cmd(&["BZPOPMIN", "k", "0"]);
    server.raw().wait_blocked(1);
    let mut other = server.raw();
    other.cmd(&["LPUSH", "k", "x"]);
    other.cmd(&["DEL", "k"]);
    other.cmd(&["ZADD", "k", "7", "m"]);
    assert_eq!(
        String::from_utf8(waiter.read_reply().unwrap()).unwrap(),
        "*3\r\n$1\r\nk\r\n$1\r\nm\r\n$1\r\n7\r\n"
    );
}

#[test]
fn zrandmember_draws_distinct_members_unless_the_count_is_negative() {
    let server = TestServer::kiln(&[]);
    let mut c = server.client();
    for (name, n) in [("small", 20), ("big", 1000)] {
        let mut add = cmd("ZADD");
        add.arg(name);
        for i in 0..n {
            add.arg(i).arg(format!("m{i}"));
        }
        let _: () = add.query(&mut c).unwrap();
        for count in [1, 3, n / 3, n / 2, n - 1] {
            let got: Vec<String> = cmd("ZRANDMEMBER")
                .arg(name)
                .arg(count)
                .query(&mut c)
                .unwrap();
            let distinct: std::collections::HashSet<_> = got.iter().collect();
            assert_eq!(got.len(), count as usize);
            assert_eq!(distinct.len(), got.len());
            assert!(got.iter().all(|m| m.starts_with('m')));
        }
        let got: Vec<String> = cmd("ZRANDMEMBER")
            .arg(name)
            .arg(-3 * n)
            .query(&mut c)
            .unwrap();
        assert_eq!(got.len(), 3 * n as usize);
        let pairs: Vec<(String, f64)> = cmd("ZRANDMEMBER")
            .arg(name)
            .arg(-5)
            .arg("WITHSCORES")
            .query(&mut c)
            .unwrap();
        for (m, s) in pairs {
            assert_eq!(m, format!("m{s}"));
        }
        let one: String = cmd("ZRANDMEMBER").arg(name).query(&mut c).unwrap();
        assert!(one.starts_with('m'));
    }
}

#[test]
fn zrandmember_refuses_a_reply_beyond_proto_max_bulk_len() {
    let server = TestServer::kiln(&[]);
    let mut r = server.raw();
    r.cmd(&["CONFIG", "SET", "proto-max-bulk-len", "1mb"]);
    r.cmd(&["ZADD", "z", "1", "member"]);
    assert!(r
        .cmd(&["ZRANDMEMBER", "z", "-10000000"])
        .starts_with("-ERR reply would exceed"));
    // A count the limit allows still works.
    let reply = r.cmd(&["ZRANDMEMBER", "z", "-1000"]);
    assert!(reply.starts_with("*1000\r\n"));
}

#[test]
fn zscan_over_a_skiplist_returns_every_member_with_its_score() {
    let server = TestServer::kiln(&["--zset-max-listpack-entries", "16"]);
    let mut c = server.client();
    let mut add = cmd("ZADD");
    add.arg("z");
    for i in 0..5000 {
        add.arg(i).arg(format!("m{i}"));
    }
    let _: () = add.query(&mut c).unwrap();
    let _: () = cmd("ZREMRANGEBYSCORE")
        .arg("z")
        .arg(0)
        .arg(999)
        .query(&mut c)
        .unwrap();
    let mut seen = std::collections::HashMap::new();
    let mut cursor = 0u64;
    let mut calls = 0;
    loop {
        let (next, items): (u64, Vec<String>) = cmd("ZSCAN")
            .arg("z")
            .arg(cursor)
            .arg("COUNT")
            .arg(100)
            .query(&mut c)
            .unwrap();
        for pair in items.chunks(2) {
            seen.insert(pair[0].clone(), pair[1].clone());
        }
        calls += 1;
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert!(calls > 10, "a big set is scanned in steps, not at once");
    assert_eq!(seen.len(), 4000);
    for i in 1000..5000 {
        assert_eq!(seen[&format!("m{i}")], i.to_string());
    }
    // MATCH filters members, never splitting a member from its score.
    let (_, items): (u64, Vec<String>) = cmd("ZSCAN")
        .arg("z")
        .arg(0)
        .arg("MATCH")
        .arg("m4999")
        .arg("COUNT")
        .arg(100_000)
        .query(&mut c)
        .unwrap();
    assert_eq!(items, ["m4999", "4999"]);
}

/// Runs the same random commands against both servers on sets big enough to be
/// skiplist-encoded and compares every reply.
#[test]
fn random_commands_on_large_sets_match_redis() {
    let Some(redis) = TestServer::redis(&[]) else {
        return;
    };
    let kiln = TestServer::kiln(&[]);
    let mut k = kiln.raw();
    let mut r = redis.raw();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut run = |args: Vec<String>| {
        let a = k.cmd(&args);
        let b = r.cmd(&args);
        assert_eq!(a, b, "{args:?}");
    };
    for i in 0..3000 {
        let score = rng.gen_range(0..500);
        run(vec![
            "ZADD".into(),
            "z".into(),
            score.to_string(),
            format!("m{i}"),
        ]);
        run(vec![
            "ZADD".into(),
            "l".into(),
            "0".into(),
            format!("m{}", rng.gen_range(0..5000)),
        ]);
    }
    let s = |v: i64| v.to_string();
    for _ in 0..1500 {
        let a = rng.gen_range(-3500..3500i64);
        let b = rng.gen_range(-3500..3500i64);
        let lo = rng.gen_range(-10..510);
        let hi = lo + rng.gen_range(0..60);
        let m = format!("m{}", rng.gen_range(0..3500));
        let args: Vec<String> = match rng.gen_range(0..18) {
            0 => vec!["ZRANGE".into(), "z".into(), s(a), s(b), "WITHSCORES".into()],
            1 => vec!["ZREVRANGE".into(), "z".into(), s(a), s(b)],
            2 => vec![
                "ZRANGEBYSCORE".into(),
                "z".into(),
                format!("({lo}"),
                s(hi),
                "WITHSCORES".into(),
                "LIMIT".into(),
                s(a.abs() % 20),
                s(b % 30),
            ],
            3 => vec![
                "ZREVRANGEBYSCORE".into(),
                "z".into(),
                s(hi),
                s(lo),
                "LIMIT".into(),
                s(a.abs() % 5),
                s(5),
            ],
            4 => vec!["ZCOUNT".into(), "z".into(), s(lo), format!("({hi}")],
            5 => vec!["ZRANK".into(), "z".into(), m],
            6 => vec!["ZREVRANK".into(), "z".into(), m],
            7 => vec!["ZINCRBY".into(), "z".into(), s(a % 7), m],
            8 => vec!["ZREM".into(), "z".into(), m, format!("m{}", a.abs())],
            9 => vec![
                "ZADD".into(),
                "z".into(),
                "XX".into(),
                "CH".into(),
                s(lo),
                m,
            ],
            10 => vec![
                "ZREMRANGEBYRANK".into(),
                "z".into(),
                s(a % 100),
                s(a % 100 + b.abs() % 4),
            ],
            11 => vec!["ZREMRANGEBYSCORE".into(), "z".into(), s(lo), s(lo)],
            12 => vec![
                "ZRANGEBYLEX".into(),
                "l".into(),
                format!("[m{}", a.abs()),
                format!("(m{}", b.abs()),
                "LIMIT".into(),
                "0".into(),
                "20".into(),
            ],
            13 => vec![
                "ZLEXCOUNT".into(),
                "l".into(),
                format!("(m{}", a.abs()),
                "+".into(),
            ],
            14 => vec![
                "ZREVRANGEBYLEX".into(),
                "l".into(),
                format!("[m{}", a.abs()),
                "-".into(),
                "LIMIT".into(),
                "3".into(),
                "4".into(),
            ],
            15 => vec!["ZPOPMIN".into(), "z".into(), s(a.abs() % 3)],
            16 => vec!["ZPOPMAX".into(), "z".into()],
            _ => vec!["ZMSCORE".into(), "z".into(), m, format!("m{}", b.abs())],
        };
        run(args);
    }
    run(vec![
        "ZRANGE".into(),
        "z".into(),
        "0".into(),
        "-1".into(),
        "WITHSCORES".into(),
    ]);
    run(vec![
        "ZUNIONSTORE".into(),
        "u".into(),
        "2".into(),
        "z".into(),
        "l".into(),
        "WEIGHTS".into(),
        "2".into(),
        "3".into(),
    ]);
    run(vec![
        "ZRANGE".into(),
        "u".into(),
        "0".into(),
        "-1".into(),
        "WITHSCORES".into(),
    ]);
    run(vec![
        "ZINTER".into(),
        "2".into(),
        "z".into(),
        "l".into(),
        "AGGREGATE".into(),
        "MAX".into(),
        "WITHSCORES".into(),
    ]);
    run(vec!["ZDIFF".into(), "2".into(), "l".into(), "z".into()]);
    run(vec!["OBJECT".into(), "ENCODING".into(), "u".into()]);
    run(vec![
        "ZREMRANGEBYLEX".into(),
        "l".into(),
        "[m1".into(),
        "(m3".into(),
    ]);
    run(vec!["ZRANGE".into(), "l".into(), "0".into(), "-1".into()]);
}

#[test]
fn a_million_member_set_answers_rank_queries_without_walking() {
    let server = TestServer::kiln(&[]);
    let mut c = server.client();
    for chunk in 0..100 {
        let mut add = cmd("ZADD");
        add.arg("z");
        for i in chunk * 10_000..(chunk + 1) * 10_000 {
            add.arg(i).arg(format!("member:{i}"));
        }
        let _: () = add.query(&mut c).unwrap();
    }
    let n: i64 = cmd("ZCARD").arg("z").query(&mut c).unwrap();
    assert_eq!(n, 1_000_000);
    let mid: Vec<String> = cmd("ZRANGE")
        .arg("z")
        .arg(500_000)
        .arg(500_002)
        .query(&mut c)
        .unwrap();
    assert_eq!(mid, ["member:500000", "member:500001", "member:500002"]);
    let rank: i64 = cmd("ZREVRANK")
        .arg("z")
        .arg("member:10")
        .query(&mut c)
        .unwrap();
    assert_eq!(rank, 999_989);
    let page: Vec<String> = cmd("ZRANGEBYSCORE")
        .arg("z")
        .arg("-inf")
        .arg("+inf")
        .arg("LIMIT")
        .arg(900_000)
        .arg(2)
        .query(&mut c)
        .unwrap();
    assert_eq!(page, ["member:900000", "member:900001"]);
    let v: Value = cmd("ZCOUNT")
        .arg("z")
        .arg("(10")
        .arg(20)
        .query(&mut c)
        .unwrap();
    assert_eq!(v, Value::Int(10));
    let removed: i64 = cmd("ZREMRANGEBYRANK")
        .arg("z")
        .arg(0)
        .arg(-11)
        .query(&mut c)
        .unwrap();
    assert_eq!(removed, 999_990);
    let rest: Vec<String> = cmd("ZRANGE").arg("z").arg(0).arg(0).query(&mut c).unwrap();
    assert_eq!(rest, ["member:999990"]);
}

/// Reads count keyspace hits and misses (one per input key), writes do not: the same
/// numbers as Redis after the same commands.
#[test]
fn keyspace_hits_and_misses_are_counted_like_redis() {
    let Some(redis) = TestServer::redis(&[]) else {
        return;
    };
    let kiln = TestServer::kiln(&[]);
    let script: &[&[&str]] = &[
        &["CONFIG", "RESETSTAT"],
        &["ZADD", "z", "1", "a", "2", "b"],
        &["ZADD", "z", "XX", "3", "a"],
        &["ZINCRBY", "z", "1", "c"],
        &["ZSCORE", "z", "a"],
        &["ZSCORE", "nokey", "a"],
        &["ZMSCORE", "z", "a", "x"],
        &["ZCARD", "nokey"],
        &["ZRANK", "z", "a"],
        &["ZCOUNT", "z", "0", "1"],
        &["ZLEXCOUNT", "nokey", "-", "+"],
        &["ZRANGE", "z", "0", "-1"],
        &["ZRANGEBYSCORE", "nokey", "0", "1"],
        &["ZRANGESTORE", "d", "z", "0", "-1"],
        &["ZUNION", "2", "z", "nokey"],
        &["ZINTERSTORE", "d", "2", "z", "z"],
        &["ZDIFF", "3", "z", "nokey", "d"],
        &["ZINTERCARD", "2", "z", "nokey"],
        &["ZRANDMEMBER", "nokey"],
        &["ZRANDMEMBER", "z", "2"],
        &["ZSCAN", "z", "0"],
        &["ZREM", "z", "x"],
        &["ZREMRANGEBYRANK", "nokey", "0", "1"],
        &["ZPOPMIN", "z"],
        &["ZMPOP", "2", "nokey", "z", "MIN"],
        &["BZPOPMAX", "nokey", "z", "0"],
    ];
    let stats = |s: &TestServer| {
        let mut r = s.raw();
        for cmd in script {
            r.cmd(cmd);
        }
        let info = r.cmd(&["INFO", "stats"]);
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        (field("keyspace_hits:"), field("keyspace_misses:"))
    };
    assert_eq!(stats(&kiln), stats(&redis));
}
