//! HyperLogLog commands against redis-server: the differential scripts of
//! `tests/diff/hyperloglog/` (the raw bytes of every value compared with GET), and values
//! exchanged both ways with a real redis-server through DUMP / RESTORE and RDB files: a
//! HyperLogLog either server wrote keeps working, byte for byte, in the other.

mod support;

use redis::{Connection, Value};
use support::{cmd, run, TestServer};

#[test]
fn hyperloglog_commands_match_redis() {
    support::run_script_dir("hyperloglog");
}

fn bulk(v: Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b,
        other => panic!("not a bulk string: {other:?}"),
    }
}

fn int(v: Value) -> i64 {
    match v {
        Value::Int(n) => n,
        other => panic!("not an integer: {other:?}"),
    }
}

/// Adds `n` elements named `<prefix><i>` to `key`, 500 per PFADD.
fn fill(c: &mut Connection, key: &str, prefix: &str, n: usize) {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    for chunk in names.chunks(500) {
        let mut args: Vec<&[u8]> = vec![b"PFADD", key.as_bytes()];
        args.extend(chunk.iter().map(|s| s.as_bytes()));
        cmd(c, &args);
    }
}

/// The HyperLogLogs both directions exchange: (key, elements); sparse, near the sparse
/// limit, and dense.
const SHAPES: &[(&str, usize)] = &[
    ("tiny", 3),
    ("sparse", 300),
    ("edge", 1200),
    ("dense", 20000),
];

/// Builds every shape on `from`, moves each to `to` with DUMP / RESTORE, and checks that
/// `to` holds the same bytes, counts the same, and keeps the same bytes as both servers
/// take more elements.
fn exchange(from: &mut Connection, to: &mut Connection) {
    for &(key, n) in SHAPES {
        fill(from, key, key, n);
        let payload = bulk(cmd(from, &[b"DUMP", key.as_bytes()]));
        run(to, &format!("DEL {key}"));
        cmd(to, &[b"RESTORE", key.as_bytes(), b"0", &payload]);
        let get = |c: &mut Connection| bulk(run(c, &format!("GET {key}")));
        assert_eq!(get(from), get(to), "{key}: bytes after RESTORE");
        let count = |c: &mut Connection| int(run(c, &format!("PFCOUNT {key}")));
        assert_eq!(count(from), count(to), "{key}: PFCOUNT");
        assert_eq!(
            get(from),
            get(to),
            "{key}: bytes after PFCOUNT stored its cache"
        );
        fill(from, key, "more", 700);
        fill(to, key, "more", 700);
        assert_eq!(get(from), get(to), "{key}: bytes after more PFADDs");
        assert_eq!(count(from), count(to), "{key}: PFCOUNT after more PFADDs");
        // The payload the receiving side dumps restores on the sending side too.
        let back = bulk(cmd(to, &[b"DUMP", key.as_bytes()]));
        cmd(from, &[b"RESTORE", key.as_bytes(), b"0", &back, b"REPLACE"]);
        assert_eq!(get(from), get(to), "{key}: bytes after the return trip");
    }
    let union = |c: &mut Connection| int(run(c, "PFCOUNT tiny sparse edge dense"));
    assert_eq!(union(from), union(to), "PFCOUNT of every shape");
    run(from, "PFMERGE merged tiny sparse edge dense");
    run(to, "PFMERGE merged tiny sparse edge dense");
    assert_eq!(
        bulk(run(from, "GET merged")),
        bulk(run(to, "GET merged")),
        "PFMERGE"
    );
}

#[test]
fn hyperloglogs_move_between_redis_and_kiln_with_dump_and_restore() {
    let Some(r) = TestServer::redis(&[]) else {
        return;
    };
    let k = TestServer::kiln(&[]);
    exchange(&mut r.client(), &mut k.client());
    let (k2, r2) = (TestServer::kiln(&[]), TestServer::redis(&[]).unwrap());
    exchange(&mut k2.client(), &mut r2.client());
}

/// Loads `file` as dump.rdb into a fresh server made by `start(dir)`.
fn load_rdb(file: &[u8], name: &str, start: impl FnOnce(&str) -> TestServer) -> TestServer {
    let dir = std::env::temp_dir().join(format!("kiln-hll-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dump.rdb"), file).unwrap();
    start(&dir.to_string_lossy())
}

#[test]
fn hyperloglogs_move_between_redis_and_kiln_in_rdb_files() {
    let Some(r) = TestServer::redis(&[]) else {
        return;
    };
    let k = TestServer::kiln(&[]);
    let (mut rc, mut kc) = (r.client(), k.client());
    for &(key, n) in SHAPES {
        fill(&mut rc, key, key, n);
        fill(&mut kc, key, key, n);
    }
    run(&mut rc, "SAVE");
    run(&mut kc, "SAVE");
    let from_redis = std::fs::read(r.dir.join("dump.rdb")).unwrap();
    let from_kiln = std::fs::read(k.dir.join("dump.rdb")).unwrap();
    let k2 = load_rdb(&from_redis, "to-kiln", |d| TestServer::kiln(&["--dir", d]));
    let r2 = load_rdb(&from_kiln, "to-redis", |d| {
        TestServer::redis(&["--dir", d]).unwrap()
    });
    let (mut k2c, mut r2c) = (k2.client(), r2.client());
    for &(key, _) in SHAPES {
        let want = bulk(run(&mut rc, &format!("GET {key}")));
        assert_eq!(
            bulk(run(&mut kc, &format!("GET {key}"))),
            want,
            "{key}: built alike"
        );
        assert_eq!(
            bulk(run(&mut k2c, &format!("GET {key}"))),
            want,
            "{key}: Redis's file in Kiln"
        );
        assert_eq!(
            bulk(run(&mut r2c, &format!("GET {key}"))),
            want,
            "{key}: Kiln's file in Redis"
        );
        let n = int(run(&mut rc, &format!("PFCOUNT {key}")));
        assert_eq!(
            int(run(&mut k2c, &format!("PFCOUNT {key}"))),
            n,
            "{key}: PFCOUNT"
        );
    }
}
