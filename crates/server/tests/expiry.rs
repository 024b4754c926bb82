//! Black-box tests of expiry: keys vanish at their deadline for every reader (lazy expiry),
//! and the background cycle reclaims the keys and the memory of expired keys that nobody
//! reads (active expiry), unless DEBUG SET-ACTIVE-EXPIRE turned it off.

mod support;

use std::time::{Duration, Instant};

use redis::{Commands, Connection};
use support::TestServer;

/// Writes `n` keys `{prefix}{i}` with a TTL of `px` milliseconds, pipelined.
fn fill_with_ttl(con: &mut Connection, prefix: &str, n: usize, px: u64) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let mut p = redis::pipe();
        for i in chunk {
            p.cmd("SET")
                .arg(format!("{prefix}{i}"))
                .arg("some value that is not tiny")
                .arg("PX")
                .arg(px)
                .ignore();
        }
        p.query::<()>(con).unwrap();
    }
}

fn dbsize(con: &mut Connection) -> usize {
    redis::cmd("DBSIZE").query(con).unwrap()
}

/// `used_memory` from INFO memory.
fn used_memory(con: &mut Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap_or_else(|| panic!("no used_memory in INFO memory: {info}"))
        .trim()
        .parse()
        .unwrap()
}

/// Polls `f` until it holds, giving up after `patience` (a generous bound: the point is
/// that it happens without anyone reading the keys, not how fast).
fn eventually(patience: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > patience {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn active_expiry_deletes_keys_that_nobody_reads() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    fill_with_ttl(&mut con, "k:", 100_000, 100);
    let mut last = usize::MAX;
    let done = eventually(Duration::from_secs(30), || {
        last = dbsize(&mut con);
        last < 100
    });
    assert!(done, "{last} keys still in the database");
}

#[test]
fn active_expiry_gives_the_memory_of_expired_keys_back() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    let baseline = used_memory(&mut con);
    // A TTL long enough to measure the peak before the keys go.
    fill_with_ttl(&mut con, "k:", 100_000, 2_000);
    let peak = used_memory(&mut con);
    assert!(
        peak > baseline + 4 * 1024 * 1024,
        "peak {peak}, baseline {baseline}"
    );
    let done = eventually(Duration::from_secs(30), || dbsize(&mut con) == 0);
    assert!(done, "{} keys left", dbsize(&mut con));
    let mut last = 0;
    let done = eventually(Duration::from_secs(30), || {
        last = used_memory(&mut con);
        // What is left is small change next to what the keys took (a few hash table
        // buckets per shard).
        last < baseline + (peak - baseline) / 10
    });
    assert!(done, "used_memory {last}, peak {peak}, baseline {baseline}");
}

#[test]
fn keys_with_a_future_deadline_survive_the_cycle() {
    let server = TestServer::kiln(&["--hz", "100"]);
    let mut con = server.client();
    fill_with_ttl(&mut con, "short:", 5_000, 50);
    fill_with_ttl(&mut con, "long:", 5_000, 3_600_000);
    let mut p = redis::pipe();
    for i in 0..5_000 {
        p.cmd("SET").arg(format!("forever:{i}")).arg(i).ignore();
    }
    p.query::<()>(&mut con).unwrap();
    let done = eventually(Duration::from_secs(30), || dbsize(&mut con) == 10_000);
    assert!(done, "{} keys", dbsize(&mut con));
    // Let a few more cycles run: nothing else goes.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(dbsize(&mut con), 10_000);
    let keys: Vec<String> = con.keys("short:*").unwrap();
    assert!(keys.is_empty());
}

#[test]
fn debug_set_active_expire_switches_the_cycle_off_and_on() {
    let server = TestServer::kiln(&["--hz", "100", "--enable-debug-command", "yes"]);
    let mut con = server.client();
    let _: () = redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query(&mut con)
        .unwrap();
    fill_with_ttl(&mut con, "k:", 1_000, 20);
    std::thread::sleep(Duration::from_millis(500));
    // Nobody read them and the cycle is off: they are still there, though invisible.
    assert_eq!(dbsize(&mut con), 1_000);
    assert!(!con.exists::<_, bool>("k:1").unwrap());
    assert_eq!(dbsize(&mut con), 999);
    let _: () = redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(1)
        .query(&mut con)
        .unwrap();
    let done = eventually(Duration::from_secs(30), || dbsize(&mut con) == 0);
    assert!(done, "{} keys", dbsize(&mut con));
}

#[test]
fn a_key_disappears_for_every_command_at_its_deadline() {
    let server = TestServer::kiln(&[]);
    let mut raw = server.raw();
    raw.cmd(&["SET", "k", "v"]);
    assert_eq!(raw.cmd(&["PEXPIRE", "k", "300"]), ":1\r\n");
    assert_eq!(raw.cmd(&["EXISTS", "k"]), ":1\r\n");
    let pttl: i64 = raw.cmd(&["PTTL", "k"])[1..].trim().parse().unwrap();
    assert!((1..=300).contains(&pttl), "{pttl}");
    std::thread::sleep(Duration::from_millis(400));
    for (cmd, expected) in [
        (&["GET", "k"][..], "$-1\r\n"),
        (&["EXISTS", "k"], ":0\r\n"),
        (&["TYPE", "k"], "+none\r\n"),
        (&["TTL", "k"], ":-2\r\n"),
        (&["PERSIST", "k"], ":0\r\n"),
        (&["OBJECT", "ENCODING", "k"], "$-1\r\n"),
        (&["KEYS", "*"], "*0\r\n"),
        (&["RANDOMKEY"], "$-1\r\n"),
        (&["RENAME", "k", "k2"], "-ERR no such key\r\n"),
    ] {
        assert_eq!(raw.cmd(cmd), expected, "{cmd:?}");
    }
}

#[test]
fn ttl_counts_down_and_rounds_to_the_nearest_second() {
    let server = TestServer::kiln(&[]);
    let mut raw = server.raw();
    raw.cmd(&["SET", "k", "v"]);
    raw.cmd(&["PEXPIRE", "k", "10400"]);
    assert_eq!(raw.cmd(&["TTL", "k"]), ":10\r\n");
    raw.cmd(&["PEXPIRE", "k", "10600"]);
    assert_eq!(raw.cmd(&["TTL", "k"]), ":11\r\n");
    let before = Instant::now();
    raw.cmd(&["EXPIRE", "k", "2"]);
    std::thread::sleep(Duration::from_millis(1_100));
    let pttl: i64 = raw.cmd(&["PTTL", "k"])[1..].trim().parse().unwrap();
    // The bounds come from this side's clock, so a machine that stalls widens the window
    // instead of failing the test: the deadline was set after `before`, and PTTL ran at
    // least 1.1 s after it was set (less a millisecond or two: both clocks count whole ones).
    let least = 2_000 - before.elapsed().as_millis() as i64 - 2;
    if pttl == -2 {
        assert!(least <= 0, "expired {least} ms early");
    } else {
        assert!(
            (least.max(0)..=900).contains(&pttl),
            "{pttl} (at least {least})"
        );
    }
}

#[test]
fn expire_with_a_time_in_the_past_deletes_at_once() {
    let server = TestServer::kiln(&[]);
    let mut raw = server.raw();
    for cmd in [
        &["EXPIRE", "k", "0"][..],
        &["EXPIRE", "k", "-10"],
        &["PEXPIRE", "k", "0"],
        &["EXPIREAT", "k", "1"],
        &["PEXPIREAT", "k", "-1"],
    ] {
        raw.cmd(&["SET", "k", "v"]);
        assert_eq!(raw.cmd(cmd), ":1\r\n", "{cmd:?}");
        assert_eq!(raw.cmd(&["DBSIZE"]), ":0\r\n", "{cmd:?}");
    }
}
