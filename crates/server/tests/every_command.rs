//! Safety over the whole command table: no command, queued in a transaction next to a write
//! to another key, can stop EXEC from answering or the server from serving others.
//!
//! For every name in `COMMAND LIST` there is at least one valid invocation in
//! `support/examples.rs` (a new
//! command without one fails the test). Each runs as `MULTI`, `SET other v`, the command,
//! `EXEC`, on a fresh connection over a fixed dataset, and again after `WATCH`ing its keys;
//! meanwhile other connections keep running commands (transactions that walk the keyspace
//! among them). Every read has a watchdog (a socket timeout), so a deadlock fails the test
//! instead of hanging it. Where the reply is deterministic, the whole transcript must equal
//! redis-server 7.0's.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::examples::{command_list, connect, words, EXAMPLES, FIXTURE};
use support::{Raw, TestServer, DEBUG_ON};

/// Keys a `WATCH` covers in the watched variant: every key the examples use.
const WATCHED: &str = "watch s l l2 h st z x other k a b";

/// Resets a server to the fixture, through an admin connection, once background saves and
/// rewrites an earlier example started are over (polled, as INFO reports them).
fn reset(admin: &mut Raw) {
    loop {
        admin.send_cmd(&["info", "persistence"]);
        let info = String::from_utf8(admin.read_reply().expect("info")).unwrap();
        let busy = [
            "rdb_bgsave_in_progress:1",
            "aof_rewrite_in_progress:1",
            "aof_rewrite_scheduled:1",
        ];
        if !busy.iter().any(|b| info.contains(b)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for line in ["replicaof no one", "config set appendonly no", "flushall"] {
        admin.send_cmd(&words(line));
        admin
            .read_reply()
            .unwrap_or_else(|| panic!("server stopped answering `{line}`"));
    }
    for line in FIXTURE {
        admin.send_cmd(&words(line));
        admin.read_reply().expect("fixture");
    }
}

/// Runs one example in a transaction and returns the replies, in order, until EXEC's (or
/// until the connection closes: QUIT, a shutdown).
fn transcript(port: u16, admin: &mut Raw, example: &str, watch: bool) -> Vec<Vec<u8>> {
    reset(admin);
    let mut argv = words(example);
    if let Some(i) = argv.iter().position(|a| a == b"$DUMP") {
        admin.send_cmd(&["dump", "s"]);
        let reply = admin.read_reply().expect("dump");
        // `$<len>\r\n<payload>\r\n`
        let start = reply.iter().position(|&b| b == b'\n').unwrap() + 1;
        argv[i] = reply[start..reply.len() - 2].to_vec();
    }
    let mut c = connect(port);
    let mut sent = Vec::new();
    if watch {
        sent.push(words(WATCHED));
    }
    sent.push(words("multi"));
    sent.push(words("set other v"));
    sent.push(argv);
    sent.push(words("exec"));
    let mut replies = Vec::new();
    for args in &sent {
        c.send_cmd(args);
        match c.read_reply() {
            Some(r) => replies.push(r),
            None => break,
        }
    }
    replies
}

/// Other clients, on other connections, while the examples run: plain writes, and
/// transactions that walk the whole keyspace, so that lock conflicts actually happen.
fn background_load(port: u16, stop: Arc<AtomicBool>, served: Arc<AtomicU64>) {
    let mut c = connect(port);
    let mut i = 0u64;
    let scripts: &[&[&str]] = &[
        &["set bg1 1"],
        &["multi", "incr bg2", "info keyspace", "dbsize", "exec"],
        &["multi", "lpush bgl x", "scan 0", "keys bg*", "exec"],
        &["mset bg3 1 bg4 2 bg5 3"],
        &["multi", "set bg6 1", "debug digest", "exec"],
    ];
    while !stop.load(Ordering::Relaxed) {
        for line in scripts[(i % scripts.len() as u64) as usize] {
            c.send_cmd(&words(line));
            if c.read_reply().is_none() {
                // A background connection outlives nothing the examples do, except
                // FLUSHALL-free events like a replica switch: reconnect.
                c = connect(port);
            }
        }
        served.fetch_add(1, Ordering::Relaxed);
        i += 1;
    }
}

/// The full name an example exercises (`config|get`), as COMMAND LIST spells it.
fn example_name(example: &str, names: &BTreeSet<String>) -> String {
    let mut w = example.trim_start_matches(['~', '!']).split(' ');
    let first = w.next().unwrap().to_lowercase();
    if let Some(second) = w.next() {
        let full = format!("{first}|{}", second.to_lowercase());
        if names.contains(&full) {
            return full;
        }
    }
    first
}

#[test]
fn every_command_queued_in_a_transaction_answers_and_leaves_the_server_serving() {
    let mut extra = DEBUG_ON.to_vec();
    extra.extend_from_slice(&["--threads", "4"]);
    let kiln = TestServer::kiln(&extra);
    let redis = TestServer::redis(DEBUG_ON);

    let names = command_list(kiln.port);
    let covered: BTreeSet<String> = EXAMPLES.iter().map(|e| example_name(e, &names)).collect();
    let missing: Vec<&String> = names.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "commands without an example in support/examples.rs: {missing:?}"
    );

    // First under load from other clients (where lock conflicts happen), then alone, with
    // the replies compared with Redis's.
    for loaded in [true, false] {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let load: Vec<_> = (0..if loaded { 2 } else { 0 })
            .map(|_| {
                let (stop, served, port) = (stop.clone(), served.clone(), kiln.port);
                std::thread::spawn(move || background_load(port, stop, served))
            })
            .collect();
        let redis = if loaded { None } else { redis.as_ref() };
        run_examples(kiln.port, redis);
        stop.store(true, Ordering::Relaxed);
        for t in load {
            t.join().expect("background client failed");
        }
        assert!(!loaded || served.load(Ordering::Relaxed) > 0);
    }
}

/// Runs every example (plain and watched) on Kiln, checks each answers and the server
/// still serves others, and compares the deterministic transcripts with `redis`'s.
fn run_examples(kiln_port: u16, redis: Option<&TestServer>) {
    let mut k_admin = connect(kiln_port);
    let mut r_admin = redis.map(|r| connect(r.port));
    let mut differences = Vec::new();
    for example in EXAMPLES {
        for watch in [false, true] {
            let k = transcript(
                kiln_port,
                &mut k_admin,
                example.trim_start_matches(['~', '!']),
                watch,
            );
            // EXEC (or the connection's end, for QUIT) was reached: the last command got
            // an answer, or the connection closed by the command's own doing.
            let expected = if watch { 5 } else { 4 };
            let closes = ["quit", "shutdown"].iter().any(|c| example.starts_with(c));
            assert!(
                k.len() == expected || (closes && !k.is_empty()),
                "`{example}` (watch: {watch}): only {} of {expected} replies: {:?}",
                k.len(),
                k.iter()
                    .map(|r| String::from_utf8_lossy(r).into_owned())
                    .collect::<Vec<_>>()
            );
            // Everyone else is still served.
            let mut other = connect(kiln_port);
            assert_eq!(other.cmd(&["ping"]), "+PONG\r\n", "after `{example}`");
            if example.starts_with(['~', '!']) {
                continue;
            }
            if let (Some(redis), Some(r_admin)) = (redis, r_admin.as_mut()) {
                let r = transcript(redis.port, r_admin, example, watch);
                if k != r {
                    differences.push(format!(
                        "`{example}` (watch: {watch}):\n  kiln:  {:?}\n  redis: {:?}",
                        k.iter()
                            .map(|x| String::from_utf8_lossy(x).into_owned())
                            .collect::<Vec<_>>(),
                        r.iter()
                            .map(|x| String::from_utf8_lossy(x).into_owned())
                            .collect::<Vec<_>>()
                    ));
                }
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{} transactions differ from Redis:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
