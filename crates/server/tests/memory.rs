//! MEMORY: the differential scripts under `tests/diff/memory/` (help, errors, arity, nil for
//! a missing key, inside MULTI/EXEC and scripts), and black-box checks of what cannot be
//! compared with Redis byte for byte because the figures are Kiln's own: MEMORY USAGE
//! follows the value's size and layout, MEMORY STATS has Redis's fields in Redis's order
//! with Kiln's counts, DOCTOR answers in Redis's words.

mod support;

use redis::{Connection, Value};
use support::TestServer;

#[test]
fn memory_commands_match_redis() {
    support::run_script_dir("memory");
}

fn usage(con: &mut Connection, key: &str, samples: Option<u32>) -> Option<i64> {
    let mut cmd = redis::cmd("MEMORY");
    cmd.arg("USAGE").arg(key);
    if let Some(n) = samples {
        cmd.arg("SAMPLES").arg(n);
    }
    cmd.query(con).unwrap()
}

#[test]
fn usage_grows_with_the_value_and_is_nil_for_a_missing_key() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    assert_eq!(usage(&mut con, "nokey", None), None);
    let mut last = 0;
    for len in [1, 30, 100, 1_000, 10_000, 100_000] {
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("x".repeat(len))
            .query(&mut con)
            .unwrap();
        let n = usage(&mut con, "k", None).unwrap();
        assert!(n > last, "{len} bytes: {n} after {last}");
        assert!(n as usize >= len, "{len} bytes cost {n}");
        last = n;
    }
}

#[test]
fn a_small_inline_key_costs_less_than_a_boxed_one() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let big = "y".repeat(40);
    let _: () = redis::cmd("MSET")
        .arg(&["a", "1", "b", &big])
        .query(&mut con)
        .unwrap();
    let (small, big) = (
        usage(&mut con, "a", None).unwrap(),
        usage(&mut con, "b", None).unwrap(),
    );
    // The inline key is its slot alone: less than the 64 bytes Redis reports for it.
    assert!(small < 64, "{small}");
    assert!(small < big, "{small} vs {big}");
    // A TTL costs a bucket of the expires table and a copy of the name.
    let _: () = redis::cmd("EXPIRE")
        .arg("a")
        .arg(100)
        .query(&mut con)
        .unwrap();
    assert!(usage(&mut con, "a", None).unwrap() > small);
}

#[test]
fn sampling_every_field_of_a_big_hash_sees_at_least_the_default() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    // Small values first: the default five samples see only them.
    let mut cmd = redis::cmd("HSET");
    cmd.arg("h");
    for i in 0..1000 {
        let len = if i < 10 { 1 } else { 500 };
        cmd.arg(format!("field:{i}")).arg("v".repeat(len));
    }
    let _: i64 = cmd.query(&mut con).unwrap();
    let default = usage(&mut con, "h", None).unwrap();
    let all = usage(&mut con, "h", Some(0)).unwrap();
    assert!(all >= default, "{all} < {default}");
    assert!(all > 990 * 500, "{all}");
    assert_eq!(usage(&mut con, "h", Some(1_000_000)), Some(all));
}

/// The field names of MEMORY STATS, in Redis 7.0's order, before and after the `db.N`
/// entries.
const STATS_HEAD: &[&str] = &[
    "peak.allocated",
    "total.allocated",
    "startup.allocated",
    "replication.backlog",
    "clients.slaves",
    "clients.normal",
    "cluster.links",
    "aof.buffer",
    "lua.caches",
    "functions.caches",
];
const STATS_TAIL: &[&str] = &[
    "overhead.total",
    "keys.count",
    "keys.bytes-per-key",
    "dataset.bytes",
    "dataset.percentage",
    "peak.percentage",
    "allocator.allocated",
    "allocator.active",
    "allocator.resident",
    "allocator-fragmentation.ratio",
    "allocator-fragmentation.bytes",
    "allocator-rss.ratio",
    "allocator-rss.bytes",
    "rss-overhead.ratio",
    "rss-overhead.bytes",
    "fragmentation",
    "fragmentation.bytes",
];

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

/// MEMORY STATS as (name, value) pairs.
fn stats(con: &mut Connection) -> Vec<(String, Value)> {
    let Value::Array(items) = redis::cmd("MEMORY").arg("STATS").query(con).unwrap() else {
        panic!("MEMORY STATS is not an array");
    };
    items
        .chunks(2)
        .map(|p| (text(&p[0]), p[1].clone()))
        .collect()
}

#[test]
fn stats_has_redis_fields_in_redis_order_with_the_key_count() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let _: () = redis::cmd("MSET")
        .arg(&["a", "1", "b", "2", "c", "3"])
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("t")
        .arg("v")
        .arg("EX")
        .arg(100)
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SELECT").arg(2).query(&mut con).unwrap();
    let _: () = redis::cmd("SET").arg("d").arg("4").query(&mut con).unwrap();
    let fields = stats(&mut con);
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    let mut want: Vec<&str> = STATS_HEAD.to_vec();
    want.extend(["db.0", "db.2"]);
    want.extend(STATS_TAIL);
    assert_eq!(names, want);
    let field = |name: &str| &fields.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(field("keys.count"), &Value::Int(5));
    let Value::Array(db0) = field("db.0") else {
        panic!("db.0 is not a map");
    };
    let db0: Vec<String> = db0.iter().step_by(2).map(text).collect();
    assert_eq!(
        db0,
        [
            "overhead.hashtable.main",
            "overhead.hashtable.expires",
            "overhead.hashtable.slot-to-keys"
        ]
    );
    let Value::Int(total) = field("total.allocated") else {
        panic!("total.allocated is not an integer");
    };
    assert!(*total > 0);
    let ratio: f64 = text(field("fragmentation")).parse().unwrap();
    assert!(ratio > 0.0);
}

fn resident(con: &mut Connection) -> i64 {
    let fields = stats(con);
    match fields.iter().find(|(n, _)| n == "allocator.resident") {
        Some((_, Value::Int(n))) => *n,
        other => panic!("allocator.resident: {other:?}"),
    }
}

#[test]
fn purge_gives_freed_pages_back_and_malloc_stats_is_jemallocs_report() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    // 4 MB of values, freed: their pages stay dirty in jemalloc until they decay (10 s)...
    let value = "x".repeat(100_000);
    for i in 0..40 {
        let _: () = redis::cmd("SET")
            .arg(i)
            .arg(&value)
            .query(&mut con)
            .unwrap();
    }
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let before = resident(&mut con);
    // ...or until PURGE returns them at once.
    let ok: String = redis::cmd("MEMORY").arg("PURGE").query(&mut con).unwrap();
    assert_eq!(ok, "OK");
    let after = resident(&mut con);
    assert!(after < before, "resident {before} -> {after}");
    let report: String = redis::cmd("MEMORY")
        .arg("MALLOC-STATS")
        .query(&mut con)
        .unwrap();
    assert!(
        report.starts_with("___ Begin jemalloc statistics ___\n"),
        "{report}"
    );
    assert!(report
        .trim_end()
        .ends_with("--- End jemalloc statistics ---"));
}

const EMPTY: &str = "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n";

#[test]
fn doctor_declines_an_empty_instance_and_reports_on_a_loaded_one() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let doctor =
        |con: &mut Connection| -> String { redis::cmd("MEMORY").arg("DOCTOR").query(con).unwrap() };
    assert_eq!(doctor(&mut con), EMPTY);
    // About 12 MB of values.
    let value = "x".repeat(1000);
    for batch in 0..12 {
        let mut cmd = redis::cmd("MSET");
        for i in 0..1000 {
            cmd.arg(format!("key:{batch}:{i}")).arg(&value);
        }
        let _: () = cmd.query(&mut con).unwrap();
    }
    let report = doctor(&mut con);
    assert!(
        report == "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n"
            || (report.starts_with("Sam, I detected a few issues in this Redis instance memory implants:\n\n * ")
                && report.ends_with("I'm here to keep you safe, Sam. I want to help you.\n")),
        "{report}"
    );
}
