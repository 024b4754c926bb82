//! Many clients at once against a multi-threaded Kiln (`--threads 4`).
//!
//! Kiln executes commands on several worker threads against a sharded keyspace, so these
//! tests look for lost updates and torn multi-key operations: every INCR must be counted
//! exactly once, and an MGET running next to MSETs must never see half of one MSET. Work is
//! bounded by iteration counts, never by time.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use redis::Commands;
use support::TestServer;

const THREADS: usize = 16;
const ITERATIONS: usize = 1000;
const COUNTERS: usize = 8;
const SCRATCH: usize = 16;

#[test]
fn sixteen_clients_hammering_overlapping_keys_lose_no_increments() {
    let server = TestServer::kiln(&["--threads", "4"]);
    let barrier = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let mut con = server.client();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                // Every INCR reply, per counter: across all threads they must be 1..=n.
                let mut seen: HashMap<usize, Vec<i64>> = HashMap::new();
                for i in 0..ITERATIONS {
                    let c = (t + i) % COUNTERS;
                    // Plain INCR (the crate's `incr` helper would send INCRBY).
                    let n: i64 = redis::cmd("INCR")
                        .arg(format!("counter:{c}"))
                        .query(&mut con)
                        .unwrap();
                    seen.entry(c).or_default().push(n);

                    // SET, GET and DEL on keys other threads write and delete too: a GET
                    // sees nil or some thread's whole value, never anything else.
                    let s = (t * 7 + i) % SCRATCH;
                    let key = format!("scratch:{s}");
                    let _: () = con
                        .set(&key, format!("t{t}:i{i}:{}", "x".repeat(i % 64)))
                        .unwrap();
                    let got: Option<String> = con.get(&key).unwrap();
                    if let Some(v) = got {
                        assert!(well_formed(&v), "torn value {v:?} under {key}");
                    }
                    if i % 3 == 0 {
                        let deleted: i64 = con.del(&key).unwrap();
                        assert!(deleted == 0 || deleted == 1, "DEL returned {deleted}");
                    }
                }
                seen
            })
        })
        .collect();

    let mut all: HashMap<usize, Vec<i64>> = HashMap::new();
    for w in workers {
        for (c, mut v) in w.join().unwrap() {
            all.entry(c).or_default().append(&mut v);
        }
    }

    let mut con = server.client();
    let mut total = 0;
    for c in 0..COUNTERS {
        // How many times the iteration formula picks counter c, counted the same way.
        let expected = (0..THREADS)
            .flat_map(|t| (0..ITERATIONS).map(move |i| (t + i) % COUNTERS))
            .filter(|&x| x == c)
            .count() as i64;
        let value: i64 = con.get(format!("counter:{c}")).unwrap();
        assert_eq!(value, expected, "counter:{c}");
        let mut replies = all.remove(&c).unwrap_or_default();
        replies.sort_unstable();
        assert_eq!(
            replies,
            (1..=expected).collect::<Vec<_>>(),
            "INCR replies for counter:{c} must be distinct and gapless"
        );
        total += value;
    }
    assert_eq!(total, (THREADS * ITERATIONS) as i64);
}

/// Whether a value is one a worker above wrote: `t<thread>:i<iteration>:` then `x`s.
fn well_formed(v: &str) -> bool {
    let mut parts = v.splitn(3, ':');
    let (Some(t), Some(i), Some(pad)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let num = |s: &str, prefix: char| s.strip_prefix(prefix).and_then(|n| n.parse::<usize>().ok());
    match (num(t, 't'), num(i, 'i')) {
        (Some(t), Some(i)) => {
            t < THREADS && i < ITERATIONS && pad.len() == i % 64 && pad.bytes().all(|b| b == b'x')
        }
        _ => false,
    }
}

/// Ten keys with distinct names, so they land in different shards (and lock separately).
fn mset_keys() -> Vec<String> {
    ('a'..='j').map(|c| format!("atomic:{c}")).collect()
}

#[test]
fn mget_never_sees_a_half_applied_mset() {
    const ROUNDS: usize = 2000;
    const READERS: usize = 6;
    let server = TestServer::kiln(&["--threads", "4"]);
    let done = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(READERS + 1));

    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let mut con = server.client();
            let done = done.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let keys = mset_keys();
                barrier.wait();
                let mut last = 0u64;
                let mut reads = 0usize;
                // Read at least a few times even if the writer finishes first.
                while !done.load(Ordering::Relaxed) || reads < 10 {
                    let vals: Vec<Option<u64>> = con.mget(&keys).unwrap();
                    reads += 1;
                    let first = vals[0];
                    assert!(
                        vals.iter().all(|v| *v == first),
                        "MGET saw a partial MSET: {vals:?}"
                    );
                    // Each MSET writes a larger number, so a reader never goes back.
                    let now = first.unwrap_or(0);
                    assert!(now >= last, "MGET went back in time: {last} then {now}");
                    last = now;
                }
                last
            })
        })
        .collect();

    let mut con = server.client();
    let keys = mset_keys();
    barrier.wait();
    for round in 1..=ROUNDS as u64 {
        let pairs: Vec<(&str, u64)> = keys.iter().map(|k| (k.as_str(), round)).collect();
        let _: () = con.mset(&pairs).unwrap();
    }
    done.store(true, Ordering::Relaxed);

    for r in readers {
        let last = r.join().unwrap();
        assert!(last <= ROUNDS as u64);
    }
    let vals: Vec<u64> = con.mget(&keys).unwrap();
    assert_eq!(vals, vec![ROUNDS as u64; keys.len()]);
}

#[test]
fn many_connections_spread_over_worker_threads_are_all_served() {
    let server = TestServer::kiln(&["--threads", "4"]);
    let mut conns: Vec<_> = (0..64).map(|_| server.raw()).collect();
    // Send on every connection first, then read: all are in flight at once.
    for (i, c) in conns.iter_mut().enumerate() {
        c.send_cmd(&["SET", &format!("conn:{i}"), &i.to_string()]);
    }
    for c in conns.iter_mut() {
        assert_eq!(c.read_reply().unwrap(), b"+OK\r\n");
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let other = (i + 1) % 64;
        let v = other.to_string();
        assert_eq!(
            c.cmd(&["GET", &format!("conn:{other}")]),
            format!("${}\r\n{v}\r\n", v.len())
        );
    }
}
