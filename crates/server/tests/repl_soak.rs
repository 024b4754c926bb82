//! Replication soak: a Kiln primary under a mixed write load from several connections, one
//! Kiln replica and one redis-server replica, while links are cut, replicas restart and the
//! Kiln replica is killed with SIGKILL. At the end the load stops, everything catches up,
//! and `DEBUG DIGEST` must be equal on all three, and every write a `WAIT` acknowledged
//! must be there.
//!
//! * `KILN_SOAK_SECS`: how long the load and the faults run (default 120, the CI run; the
//!   local soak is `KILN_SOAK_SECS=1800`).
//! * `KILN_SOAK_SEED`: the seed of every random choice (printed at the start). Each writer
//!   and the fault thread draw from their own generator derived from it, so a seed replays
//!   the same operations and faults (their interleaving still depends on timing).
//!
//! Without redis-server the test runs with the Kiln replica only (unless
//! `KILN_REQUIRE_REDIS` is set, which makes that a failure).

mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::{Connection, Value};
use support::{free_port, Node};

/// Writer connections.
const WRITERS: u64 = 4;
/// Keys per type the writers share (small, so writers collide on keys and shards).
const KEYS: u64 = 300;
/// How long the final catch-up may take before the watchdog's verdict.
const SETTLE: Duration = Duration::from_secs(180);

fn info_field(c: &mut Connection, name: &str) -> Option<String> {
    let text: String = redis::cmd("INFO").arg("replication").query(c).ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(&format!("{name}:"))
            .map(|v| v.trim().to_string())
    })
}

/// Runs a command whose error replies are part of the load (WRONGTYPE, not an integer,
/// ...); a broken connection is a failure: nothing in this test cuts the primary's clients.
fn run(c: &mut Connection, cmd: &redis::Cmd) -> Option<Value> {
    match cmd.query::<Value>(c) {
        Ok(v) => Some(v),
        Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
            panic!("the primary's connection failed: {e}")
        }
        Err(_) => None,
    }
}

fn key(rng: &mut StdRng, kind: &str) -> String {
    format!("{kind}:{}", rng.gen_range(0..KEYS))
}

/// One random write (or a short pipeline of them) of any type.
fn random_write(rng: &mut StdRng, c: &mut Connection) {
    let mut cmd = |args: Vec<String>| {
        let mut q = redis::cmd(&args[0]);
        for a in &args[1..] {
            q.arg(a);
        }
        run(c, &q);
    };
    let n = rng.gen_range(0..1000u32);
    let v = format!("{}", rng.gen_range(0..1_000_000u32));
    let a = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match rng.gen_range(0..34) {
        0 => cmd(a(&["SET", &key(rng, "s"), &v])),
        1 => cmd(a(&["SET", &key(rng, "s"), &v, "PX", &(50 + n).to_string()])),
        2 => cmd(a(&["APPEND", &key(rng, "s"), &v])),
        3 => cmd(a(&["INCRBY", &key(rng, "n"), &n.to_string()])),
        4 => cmd(a(&["INCRBYFLOAT", &key(rng, "f"), "1.25"])),
        5 => cmd(a(&["GETDEL", &key(rng, "s")])),
        6 => cmd(a(&["SETRANGE", &key(rng, "s"), &(n % 20).to_string(), &v])),
        7 => cmd(a(&["RPUSH", &key(rng, "l"), &v, &n.to_string()])),
        8 => cmd(a(&["LPOP", &key(rng, "l")])),
        9 => cmd(a(&[
            "LMOVE",
            &key(rng, "l"),
            &key(rng, "l"),
            "LEFT",
            "RIGHT",
        ])),
        10 => cmd(a(&["LTRIM", &key(rng, "l"), "0", "20"])),
        11 => cmd(a(&["HSET", &key(rng, "h"), &format!("f{}", n % 30), &v])),
        12 => cmd(a(&["HDEL", &key(rng, "h"), &format!("f{}", n % 30)])),
        13 => cmd(a(&["HINCRBYFLOAT", &key(rng, "h"), "x", "0.5"])),
        14 => cmd(a(&["SADD", &key(rng, "t"), &v, &(n % 50).to_string()])),
        15 => cmd(a(&["SREM", &key(rng, "t"), &(n % 50).to_string()])),
        16 => cmd(a(&["SPOP", &key(rng, "t")])),
        17 => cmd(a(&[
            "SMOVE",
            &key(rng, "t"),
            &key(rng, "t"),
            &(n % 50).to_string(),
        ])),
        18 => cmd(a(&["ZADD", &key(rng, "z"), &format!("{}.5", n), &v])),
        19 => cmd(a(&["ZINCRBY", &key(rng, "z"), "0.1", &v])),
        20 => cmd(a(&["ZPOPMIN", &key(rng, "z")])),
        21 => cmd(a(&["ZREMRANGEBYRANK", &key(rng, "z"), "0", "2"])),
        22 => cmd(a(&[
            "XADD",
            &key(rng, "x"),
            "MAXLEN",
            "~",
            "50",
            "*",
            "f",
            &v,
        ])),
        23 => cmd(a(&["XADD", &key(rng, "x"), "*", "a", &v, "b", "c"])),
        24 => cmd(a(&["XTRIM", &key(rng, "x"), "MAXLEN", "10"])),
        25 => {
            let kind = ["s", "l", "h", "t", "z", "x"][rng.gen_range(0..6)];
            cmd(a(&["PEXPIRE", &key(rng, kind), &(20 + n * 3).to_string()]))
        }
        26 => {
            let kind = ["s", "l", "h", "t", "z", "x"][rng.gen_range(0..6)];
            cmd(a(&["EXPIRE", &key(rng, kind), "100000"]))
        }
        27 => {
            let kind = ["s", "l", "h", "t", "z", "x"][rng.gen_range(0..6)];
            cmd(a(&["PERSIST", &key(rng, kind)]))
        }
        28 => {
            let kind = ["s", "l", "h", "t", "z", "x", "n"][rng.gen_range(0..7)];
            cmd(a(&["DEL", &key(rng, kind)]))
        }
        29 => cmd(a(&["RENAME", &key(rng, "h"), &key(rng, "h")])),
        // Pushes that serve the blocked consumers.
        30 => cmd(a(&["RPUSH", &format!("bq:{}", n % 4), &v])),
        31 => cmd(a(&["ZADD", &format!("bz:{}", n % 4), &n.to_string(), &v])),
        32 => {
            // A transaction across types and databases.
            let mut p = redis::pipe();
            p.cmd("MULTI").ignore();
            p.cmd("INCR").arg(key(rng, "n")).ignore();
            p.cmd("RPUSH").arg(key(rng, "l")).arg(&v).ignore();
            p.cmd("SELECT").arg(1).ignore();
            p.cmd("HSET").arg(key(rng, "h")).arg("m").arg(&v).ignore();
            p.cmd("SET")
                .arg(key(rng, "s"))
                .arg(&v)
                .arg("PX")
                .arg(100 + n)
                .ignore();
            p.cmd("SELECT").arg(0).ignore();
            p.cmd("SADD").arg(key(rng, "t")).arg(&v).ignore();
            p.cmd("EXEC").ignore();
            if let Err(e) = p.query::<()>(c) {
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    panic!("the primary's connection failed: {e}");
                }
            }
        }
        _ => {
            // A pipeline of plain writes in another database.
            let mut p = redis::pipe();
            p.cmd("SELECT").arg(1).ignore();
            for i in 0..rng.gen_range(1..20) {
                p.cmd("SET")
                    .arg(format!("d1:{}", (n + i) % 200))
                    .arg(&v)
                    .ignore();
            }
            p.cmd("SELECT").arg(0).ignore();
            if let Err(e) = p.query::<()>(c) {
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    panic!("the primary's connection failed: {e}");
                }
            }
        }
    }
}

/// The load of one writer: random writes, and now and then a marker write followed by
/// WAIT; markers that WAIT reports as acknowledged by at least one replica are recorded.
fn writer(
    port: u16,
    seed: u64,
    id: u64,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, String)>>>,
    ops: Arc<AtomicU64>,
) {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(id));
    let mut c = connect(port);
    let mut marker = 0u64;
    while !stop.load(Relaxed) {
        if rng.gen_range(0..50) == 0 {
            marker += 1;
            let (k, v) = (format!("ack:{id}:{marker}"), format!("{seed}:{marker}"));
            run(&mut c, redis::cmd("SET").arg(&k).arg(&v));
            if let Some(Value::Int(n)) = run(&mut c, redis::cmd("WAIT").arg(2).arg(200)) {
                if n >= 1 {
                    acked.lock().unwrap().push((k, v));
                }
            }
        } else {
            random_write(&mut rng, &mut c);
        }
        ops.fetch_add(1, Relaxed);
    }
}

/// Blocked consumers: BLPOP, BLMOVE and BZPOPMIN on the keys the writers push to.
fn consumer(port: u16, seed: u64, stop: Arc<AtomicBool>) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xb10c);
    let mut c = connect(port);
    while !stop.load(Relaxed) {
        let k = rng.gen_range(0..4);
        let cmd = match rng.gen_range(0..3) {
            0 => redis::cmd("BLPOP").arg(format!("bq:{k}")).arg(0.2).clone(),
            1 => redis::cmd("BLMOVE")
                .arg(format!("bq:{k}"))
                .arg(format!("bmoved:{k}"))
                .arg("LEFT")
                .arg("RIGHT")
                .arg(0.2)
                .clone(),
            _ => redis::cmd("BZPOPMIN")
                .arg(format!("bz:{k}"))
                .arg(0.2)
                .clone(),
        };
        run(&mut c, &cmd);
    }
}

fn connect(port: u16) -> Connection {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(10))
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    c
}

/// The replicas' processes, shared by the fault thread and the final check.
struct Replicas {
    kiln: Node,
    redis: Option<Node>,
}

/// One random fault.
fn fault(rng: &mut StdRng, primary_port: u16, r: &mut Replicas, log: &mut Vec<String>) {
    let kill = |port: u16, ty: &str| {
        if let Ok(mut c) = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(10)))
        {
            let _ = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg(ty)
                .query::<Value>(&mut c);
        }
    };
    let what = rng.gen_range(0..8);
    let name = match what {
        0 | 1 => {
            kill(r.kiln.port, "master");
            "cut the Kiln replica's link (CLIENT KILL TYPE master)"
        }
        2 | 3 => {
            kill(primary_port, "replica");
            "cut every replica link on the primary (CLIENT KILL TYPE replica)"
        }
        4 => {
            r.kiln.restart();
            "kill -9 and restart the Kiln replica"
        }
        5 => {
            r.kiln.shutdown();
            r.kiln.restart();
            "restart the Kiln replica (SHUTDOWN)"
        }
        6 => match r.redis.as_mut() {
            Some(p) => {
                kill(p.port, "master");
                "cut the Redis replica's link (CLIENT KILL TYPE master)"
            }
            None => "nothing (no Redis replica)",
        },
        _ => match r.redis.as_mut() {
            Some(p) => {
                p.shutdown();
                p.restart();
                "restart the Redis replica"
            }
            None => "nothing (no Redis replica)",
        },
    };
    log.push(name.to_string());
}

/// Whether a replica is connected and at the primary's offset `want`.
fn caught_up(c: &mut Connection, want: &str) -> bool {
    info_field(c, "master_link_status").as_deref() == Some("up")
        && info_field(c, "slave_repl_offset").as_deref() == Some(want)
}

fn describe_difference(p: &mut Connection, r: &mut Connection) -> String {
    let (a, b) = (
        support::key_digests(p, &[0, 1]),
        support::key_digests(r, &[0, 1]),
    );
    let mut lines = Vec::new();
    for (k, d) in &a {
        if b.get(k) != Some(d) {
            lines.push(format!("{k:?}: primary {d} replica {:?}", b.get(k)));
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        lines.push(format!("{k:?}: only on the replica"));
    }
    let n = lines.len();
    lines.truncate(20);
    format!("{n} keys differ (the keys may change meanwhile): {lines:#?}")
}

#[test]
fn replication_soak_under_faults() {
    let secs: u64 = std::env::var("KILN_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let seed: u64 = std::env::var("KILN_SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("replication soak: KILN_SOAK_SEED={seed} KILN_SOAK_SECS={secs}");

    // The watchdog: if the whole test has not finished long after its planned end, say so
    // and end the process (with the servers it started) rather than hang.
    let done = Arc::new(AtomicBool::new(false));
    let phase = Arc::new(Mutex::new(String::from("starting")));
    {
        let (done, phase) = (done.clone(), phase.clone());
        let limit = Duration::from_secs(secs) + SETTLE + Duration::from_secs(120);
        std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                if done.load(Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            eprintln!(
                "replication soak WATCHDOG: no verdict after {limit:?}; stuck in phase: {} (KILN_SOAK_SEED={seed})",
                phase.lock().unwrap()
            );
            support::kill_nodes();
            std::process::exit(101);
        });
    }
    let set_phase = |s: &str| *phase.lock().unwrap() = s.to_string();

    let primary = Node::kiln(free_port(), &["--repl-backlog-size", "262144"]);
    let target = format!("127.0.0.1 {}", primary.port);
    let redis_found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    if !redis_found && std::env::var(support::REQUIRE_REDIS_ENV).is_ok_and(|v| v != "0") {
        panic!("redis-server not found and KILN_REQUIRE_REDIS is set");
    }
    let redis_args = ["--replicaof", &target, "--repl-diskless-sync-delay", "0"];
    let replicas = Arc::new(Mutex::new(Replicas {
        kiln: Node::kiln(free_port(), &["--replicaof", &target]),
        redis: redis_found.then(|| Node::redis(free_port(), &redis_args)),
    }));

    set_phase("the load and the faults");
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let ops = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for id in 0..WRITERS {
        let (stop, acked, ops) = (stop.clone(), acked.clone(), ops.clone());
        let port = primary.port;
        threads.push(std::thread::spawn(move || {
            writer(port, seed, id, stop, acked, ops)
        }));
    }
    for i in 0..2 {
        let stop = stop.clone();
        let port = primary.port;
        threads.push(std::thread::spawn(move || {
            consumer(port, seed.wrapping_add(100 + i), stop)
        }));
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0xfa17);
    let mut faults = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    // A load thread that failed ends the run early (its panic is the verdict at the join).
    while Instant::now() < end && !threads.iter().any(|t| t.is_finished()) {
        let pause = rng.gen_range(300..3000);
        std::thread::sleep(Duration::from_millis(pause).min(end - Instant::now()));
        if Instant::now() >= end {
            break;
        }
        let mut r = replicas.lock().unwrap();
        fault(&mut rng, primary.port, &mut r, &mut faults);
    }
    stop.store(true, Relaxed);
    // Every thread ends before a verdict (the servers go down with the panic).
    let failed = threads
        .into_iter()
        .map(|t| t.join())
        .filter(Result::is_err)
        .count();
    assert_eq!(
        failed, 0,
        "{failed} load threads failed (see their messages above; KILN_SOAK_SEED={seed})"
    );
    eprintln!(
        "replication soak: {} operations, {} WAIT-acknowledged markers, {} faults",
        ops.load(Relaxed),
        acked.lock().unwrap().len(),
        faults.len()
    );
    let mut counts = std::collections::BTreeMap::new();
    for f in &faults {
        *counts.entry(f.as_str()).or_insert(0) += 1;
    }
    eprintln!("replication soak: faults {counts:#?}");

    // Everything catches up: the same offset everywhere, unchanged while the digests are
    // read (keys still expire on the primary, which moves the offset: then read again).
    set_phase("waiting for the replicas to catch up and agree");
    let r = replicas.lock().unwrap();
    let mut p = connect(primary.port);
    let mut kr = connect(r.kiln.port);
    let mut rr = r.redis.as_ref().map(|n| connect(n.port));
    let deadline = Instant::now() + SETTLE;
    let digests = loop {
        assert!(
            Instant::now() < deadline,
            "the replicas did not catch up within {SETTLE:?} (KILN_SOAK_SEED={seed})"
        );
        let want = info_field(&mut p, "master_repl_offset").unwrap();
        let all_there =
            caught_up(&mut kr, &want) && rr.as_mut().is_none_or(|c| caught_up(c, &want));
        if !all_there {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let dp = support::digest(&mut p);
        let dk = support::digest(&mut kr);
        let dr = rr.as_mut().map(support::digest);
        let still = info_field(&mut p, "master_repl_offset").unwrap() == want
            && caught_up(&mut kr, &want)
            && rr.as_mut().is_none_or(|c| caught_up(c, &want));
        if still {
            break (want, dp, dk, dr);
        }
    };
    let (offset, dp, dk, dr) = digests;
    eprintln!("replication soak: settled at offset {offset}, digest {dp}");
    // Equal offsets must mean equal data.
    if dk != dp {
        panic!(
            "Kiln replica differs from the primary at offset {offset} (KILN_SOAK_SEED={seed}): {}",
            describe_difference(&mut p, &mut kr)
        );
    }
    if let (Some(dr), Some(c)) = (dr, rr.as_mut()) {
        if dr != dp {
            panic!(
                "Redis replica differs from the primary at offset {offset} (KILN_SOAK_SEED={seed}): {}",
                describe_difference(&mut p, c)
            );
        }
    }

    // No write WAIT acknowledged is missing (markers are never changed after their SET).
    set_phase("checking the WAIT-acknowledged writes");
    let acked = acked.lock().unwrap().clone();
    let mut conns: Vec<(&str, &mut Connection)> = vec![("primary", &mut p), ("kiln", &mut kr)];
    if let Some(c) = rr.as_mut() {
        conns.push(("redis", c));
    }
    for (name, c) in conns {
        for (k, v) in &acked {
            let got: Option<String> = redis::cmd("GET").arg(k).query(c).unwrap();
            assert_eq!(
                got.as_deref(),
                Some(v.as_str()),
                "{name} lost {k}, which WAIT acknowledged (KILN_SOAK_SEED={seed})"
            );
        }
    }
    done.store(true, Relaxed);
}
