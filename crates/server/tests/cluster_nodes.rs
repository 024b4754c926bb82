//! Clusters of several real nodes: `redis-cli --cluster` create/check/reshard/add-node/
//! del-node/rebalance, cluster clients (the `redis` crate's and redis-py's), failover (a
//! primary SIGKILLed, CLUSTER FAILOVER, FAILOVER TAKEOVER), a full restart from nodes.conf,
//! READONLY replicas, and pub/sub (PUBLISH and SPUBLISH) across nodes.
//!
//! Every test runs once per *mode*: a list of node binaries cycled over the test's nodes.
//! By default: all Kiln, and Kiln and Redis nodes alternating (a mixed cluster).
//!
//! * `KILN_CLUSTER_REDIS=1` adds the all-redis-server mode (the harness's own check);
//! * `KILN_CLUSTER_MODES='kiln;redis,kiln'` replaces the modes: `;` between modes, `,`
//!   between the binaries of one mode (`kiln`, `redis`, or a path).

mod support;

use redis::Commands;
use std::time::{Duration, Instant};
use support::cluster::{binary, Cluster};
use support::redis_tools;

/// The modes that run by default: each a pattern of binaries, cycled over the nodes.
const MODES: &[&[&str]] = &[&["kiln"], &["kiln", "redis"]];
/// The mode `KILN_CLUSTER_REDIS=1` adds.
const REDIS_MODES: &[&[&str]] = &[&["redis"]];
/// A bound on one test in one mode; past it the watchdog ends the process.
const BOUND: Duration = Duration::from_secs(300);

fn modes() -> Vec<Vec<String>> {
    if let Ok(spec) = std::env::var("KILN_CLUSTER_MODES") {
        return spec
            .split(';')
            .filter(|m| !m.trim().is_empty())
            .map(|m| m.split(',').map(binary).collect())
            .collect();
    }
    let mut all: Vec<&[&str]> = MODES.to_vec();
    if std::env::var("KILN_CLUSTER_REDIS").is_ok_and(|v| v != "0") {
        all.extend(REDIS_MODES);
    }
    all.iter()
        .map(|m| m.iter().map(|w| binary(w)).collect())
        .collect()
}

/// Runs `body` with `n` binaries for each mode (skipping where the Redis tools it needs are
/// missing and `KILN_REQUIRE_REDIS` is not set).
fn for_modes(name: &str, n: usize, body: fn(&[String])) {
    for mode in modes() {
        let bins: Vec<String> = mode.iter().cycle().take(n).cloned().collect();
        let mut tools = vec!["redis-cli"];
        if bins.iter().any(|b| b == "redis-server") {
            tools.push("redis-server");
        }
        if !redis_tools(&tools) {
            return;
        }
        let label: Vec<&str> = bins.iter().map(|b| support::cluster::short(b)).collect();
        let t = Instant::now();
        body(&bins);
        eprintln!("{name} [{}]: {:.1?}", label.join(","), t.elapsed());
    }
}

/// Six nodes joined by `redis-cli --cluster create --cluster-replicas 1`.
fn six(what: &str, bins: &[String]) -> Cluster {
    let c = Cluster::start(what, bins, BOUND);
    c.create_with_cli(1);
    assert_eq!(c.primaries().len(), 3, "{}", c.label());
    c
}

/// Writes `key:<i>` = i for i in `range` through a cluster connection.
fn write_keys(cc: &mut redis::cluster::ClusterConnection, range: std::ops::Range<usize>) {
    for i in range {
        let _: () = cc.set(format!("key:{i}"), i).unwrap();
    }
}

/// Checks `key:<i>` = i for i in `range` through a cluster connection.
fn read_keys(cc: &mut redis::cluster::ClusterConnection, range: std::ops::Range<usize>) {
    for i in range {
        let v: Option<usize> = cc.get(format!("key:{i}")).unwrap();
        assert_eq!(v, Some(i), "key:{i}");
    }
}

/// The sum of DBSIZE over the primaries.
fn total_keys(c: &Cluster) -> i64 {
    c.primaries()
        .iter()
        .map(|&i| match c.cmd(i, &["DBSIZE"]) {
            Ok(redis::Value::Int(n)) => n,
            other => panic!("DBSIZE: {other:?}"),
        })
        .sum()
}

const PY_WORKLOAD: &str = r#"
import sys
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]), decode_responses=True)
n = int(sys.argv[2])
for i in range(0, n, 7):
    assert rc.get(f"key:{i}") == str(i), i
p = rc.pipeline()
for i in range(n):
    p.set(f"py:{i}", i)
    if i % 3 == 0:
        p.hset(f"h:{i}", mapping={"a": i, "b": "x"})
    if i % 5 == 0:
        p.rpush(f"l:{i}", i, i + 1)
    if i % 7 == 0:
        p.incrby(f"c:{i % 100}", 1)
p.execute()
p = rc.pipeline()
for i in range(n):
    p.get(f"py:{i}")
assert p.execute() == [str(i) for i in range(n)]
assert rc.hgetall("h:9") == {"a": "9", "b": "x"}
assert rc.lrange("l:10", 0, -1) == ["10", "11"]
assert sum(int(rc.get(f"c:{j}")) for j in range(100)) == len(range(0, n, 7))
rc.mset_nonatomic({"{t}a": "1", "{t}b": "2", "x": "3"})
assert rc.mget_nonatomic("{t}a", "{t}b", "x") == ["1", "2", "3"]
assert rc.mget("{t}a", "{t}b") == ["1", "2"]
expect = n + n + len(range(0, n, 3)) + len(range(0, n, 5)) + 100 + 3
size = rc.dbsize(target_nodes=RedisCluster.PRIMARIES)
assert size == expect, (size, expect)
print("ok", expect)
"#;

fn python_cluster_client() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import redis.cluster"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !kiln_testkit::redis_required(),
            "redis-py not installed and KILN_REQUIRE_REDIS is set"
        );
        eprintln!("redis-py not installed: skipping its half");
    }
    ok
}

fn six_nodes_clients_in(bins: &[String]) {
    const N: usize = 10_000;
    let c = six("six nodes, clients", bins);
    let mut cc = c.client();
    write_keys(&mut cc, 0..N);
    read_keys(&mut cc, 0..N);
    // Every primary got a share.
    for &p in &c.primaries() {
        let n: i64 = redis::cmd("DBSIZE").query(&mut c.conn(p)).unwrap();
        assert!(n > N as i64 / 5, "primary {p} holds only {n} keys");
    }
    assert_eq!(total_keys(&c), N as i64);
    if python_cluster_client() {
        let out = std::process::Command::new("python3")
            .args(["-c", PY_WORKLOAD, &c.port(0).to_string(), &N.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "redis-py workload failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Each primary's replica caught up, and the cluster is consistent.
    c.wait_replicas();
    c.check();
}

#[test]
fn six_nodes_clients() {
    for_modes("six_nodes_clients", 6, six_nodes_clients_in);
}

fn reshard_under_load_in(bins: &[String]) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let c = six("reshard under load", bins);
    let primaries = c.primaries();
    let (from, to) = (primaries[0], primaries[1]);
    let before = (c.me(from).slot_count(), c.me(to).slot_count());
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let mut cc = c.client();
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        std::thread::spawn(move || {
            let mut retries = 0;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                // A write either is acknowledged or is retried (the same key and value).
                let mut tries = 0;
                loop {
                    match cc.set::<_, _, ()>(format!("key:{i}"), i) {
                        Ok(()) => break,
                        Err(e) => {
                            tries += 1;
                            retries += 1;
                            assert!(tries < 100, "SET key:{i} keeps failing: {e}");
                        }
                    }
                }
                i += 1;
                written.store(i, Ordering::Relaxed);
            }
            retries
        })
    };
    support::poll("the writer to get going", || {
        (written.load(Ordering::Relaxed) >= 2000).then_some(())
    });
    let at_start = written.load(Ordering::Relaxed);
    c.reshard(from, to, 1000);
    let at_end = written.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let retries = writer.join().unwrap();
    let n = written.load(Ordering::Relaxed);
    eprintln!(
        "reshard: {} writes during the migration, {n} in all, {retries} retried",
        at_end - at_start
    );
    assert!(
        at_end > at_start,
        "no write went through during the reshard"
    );
    c.wait_ok();
    assert_eq!(c.me(from).slot_count(), before.0 - 1000);
    assert_eq!(c.me(to).slot_count(), before.1 + 1000);
    read_keys(&mut c.client(), 0..n);
    assert_eq!(total_keys(&c), n as i64);
    c.check();
}

#[test]
fn reshard_under_load() {
    for_modes("reshard_under_load", 6, reshard_under_load_in);
}

/// Up to `n` keys `fo:<i>` that hash to a slot of node `p`.
fn keys_of(c: &Cluster, p: usize, n: usize) -> Vec<String> {
    let map = c.slot_map(p).unwrap();
    let port = c.port(p);
    let mut conn = c.conn(p);
    (0..)
        .map(|i| format!("fo:{i}"))
        .filter(|k| {
            let slot: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(k)
                .query(&mut conn)
                .unwrap();
            map.iter()
                .any(|r| r.0 <= slot && slot <= r.1 && r.2 == port)
        })
        .take(n)
        .collect()
}

fn failover_in(bins: &[String]) {
    let mut c = six("failover", bins);
    let p = c.primaries()[0];
    let r = c.replicas_of(p)[0];
    c.wait_replica_of(r, p);
    let keys = keys_of(&c, p, 500);
    let mut conn = c.conn(p);
    for k in &keys {
        let _: () = conn.set(k, k).unwrap();
    }
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(1000)
        .query(&mut conn)
        .unwrap();
    assert!(acked >= 1, "WAIT 1 1000 answered {acked}");
    drop(conn);
    c.kill(p);
    let took = c.wait_master(r);
    let bound = Duration::from_millis(10 * c.timeout_ms);
    eprintln!(
        "failover: replica primary after {took:.1?} (node timeout {} ms)",
        c.timeout_ms
    );
    assert!(took < bound, "failover took {took:?}, over {bound:?}");
    c.wait_ok();
    let mut cc = c.client();
    for k in &keys {
        let v: Option<String> = cc.get(k).unwrap();
        assert_eq!(v.as_deref(), Some(k.as_str()), "{k} lost in the failover");
    }
    // The old primary comes back as a replica of the new one.
    c.restart(p);
    c.wait_replica_of(p, r);
    c.wait_ok();
    c.check();
}

#[test]
fn failover() {
    for_modes("failover", 6, failover_in);
}

fn manual_failover_in(bins: &[String]) {
    let c = six("manual failover", bins);
    let p = c.primaries()[0];
    let r = c.replicas_of(p)[0];
    c.wait_replica_of(r, p);
    let mut cc = c.client();
    write_keys(&mut cc, 0..2000);
    // CLUSTER FAILOVER: a coordinated switch, no write lost.
    assert_eq!(
        c.cmd(r, &["CLUSTER", "FAILOVER"]),
        Ok(redis::Value::Okay),
        "CLUSTER FAILOVER"
    );
    c.wait_master(r);
    c.wait_replica_of(p, r);
    c.wait_ok();
    read_keys(&mut c.client(), 0..2000);
    // TAKEOVER: the replica takes over without asking anyone.
    assert_eq!(
        c.cmd(p, &["CLUSTER", "FAILOVER", "TAKEOVER"]),
        Ok(redis::Value::Okay),
        "CLUSTER FAILOVER TAKEOVER"
    );
    c.wait_master(p);
    c.wait_replica_of(r, p);
    c.wait_ok();
    let mut cc = c.client();
    read_keys(&mut cc, 0..2000);
    write_keys(&mut cc, 2000..2100);
    c.check();
}

#[test]
fn manual_failover() {
    for_modes("manual_failover", 6, manual_failover_in);
}

fn restart_all_in(bins: &[String]) {
    let mut c = six("restart all", bins);
    let mut cc = c.client();
    write_keys(&mut cc, 0..1000);
    drop(cc);
    c.wait_replicas();
    let map = c.slot_map(0).unwrap();
    let ids: Vec<String> = (0..6).map(|i| c.id(i)).collect();
    let roles: Vec<Option<String>> = (0..6).map(|i| c.me(i).master).collect();
    for i in 0..6 {
        // A BGSAVE for a replica's sync may be running: SAVE once it is done.
        support::poll("SAVE", || c.cmd(i, &["SAVE"]).ok());
    }
    for i in 0..6 {
        c.shutdown(i);
    }
    for i in 0..6 {
        c.restart(i);
    }
    assert_eq!(c.wait_ok(), map, "the slot map changed across the restart");
    let after: Vec<String> = (0..6).map(|i| c.id(i)).collect();
    assert_eq!(after, ids, "node ids changed across the restart");
    let roles_after: Vec<Option<String>> = (0..6).map(|i| c.me(i).master).collect();
    assert_eq!(roles_after, roles, "roles changed across the restart");
    read_keys(&mut c.client(), 0..1000);
    c.check();
}

#[test]
fn restart_all() {
    for_modes("restart_all", 6, restart_all_in);
}

fn add_del_node_in(bins: &[String]) {
    let mut c = Cluster::start("add/del node", &bins[..3], BOUND);
    c.create_direct(3);
    let mut cc = c.client();
    write_keys(&mut cc, 0..3000);
    // A new empty primary, given its share by rebalance.
    let n = c.add_node(&bins[3], None);
    c.rebalance(true);
    c.wait_ok();
    let share = c.me(n).slot_count();
    assert!(
        (4000..=4200).contains(&share),
        "the new primary got {share} slots"
    );
    // Its replica, and READONLY reads there.
    let r = c.add_node(&bins[4], Some(n));
    c.wait_replica_of(r, n);
    c.wait_ok();
    let key = (0..)
        .map(|i| format!("ro:{i}"))
        .find(|k| c.node_of_key(k) == n)
        .unwrap();
    let mut pc = c.conn(n);
    let _: () = pc.set(&key, "v").unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(1000).query(&mut pc).unwrap();
    assert_eq!(acked, 1);
    let mut rc = c.conn(r);
    let moved = rc.get::<_, Option<String>>(&key).unwrap_err();
    assert!(
        moved.kind() == redis::ErrorKind::Moved,
        "GET on a replica without READONLY: {moved}"
    );
    let _: () = redis::cmd("READONLY").query(&mut rc).unwrap();
    let v: Option<String> = rc.get(&key).unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    let _: () = redis::cmd("READWRITE").query(&mut rc).unwrap();
    assert!(rc.get::<_, Option<String>>(&key).is_err());
    // Empty the new primary, then remove both.
    c.del_node(r);
    c.reshard(n, 0, share);
    c.wait_ok();
    assert_eq!(c.me(n).slot_count(), 0);
    c.del_node(n);
    c.wait_ok();
    assert_eq!(c.nodes(0).len(), 3);
    read_keys(&mut c.client(), 0..3000);
    c.check();
}

#[test]
fn add_del_node() {
    for_modes("add_del_node", 5, add_del_node_in);
}

/// Reads replies on `sub` until one contains `text`.
fn expect_message(sub: &mut support::Raw, text: &str) {
    let reply = sub.read_reply().expect("subscriber connection closed");
    let reply = String::from_utf8_lossy(&reply).to_string();
    assert!(reply.contains(text), "expected {text:?}, got {reply:?}");
}

fn pubsub_in(bins: &[String]) {
    let c = six("pub/sub", bins);
    // PUBLISH reaches subscribers on every node, over the bus.
    let mut subs: Vec<support::Raw> = (1..6).map(|i| c.raw(i)).collect();
    for s in subs.iter_mut() {
        s.send_cmd(&["SUBSCRIBE", "news"]);
        expect_message(s, "subscribe");
    }
    c.cmd(0, &["PUBLISH", "news", "hello"]).unwrap();
    for s in subs.iter_mut() {
        expect_message(s, "hello");
    }
    // SPUBLISH reaches the shard's nodes (a replica included), not the others.
    let p = c.node_of_key("orders");
    let r = c.replicas_of(p)[0];
    c.wait_replica_of(r, p);
    let mut on_p = c.raw(p);
    let mut on_r = c.raw(r);
    for s in [&mut on_p, &mut on_r] {
        s.send_cmd(&["SSUBSCRIBE", "orders"]);
        expect_message(s, "ssubscribe");
    }
    let other = c.primaries().into_iter().find(|&i| i != p).unwrap();
    let mut elsewhere = c.raw(other);
    elsewhere.send_cmd(&["SSUBSCRIBE", "orders"]);
    expect_message(&mut elsewhere, "MOVED");
    c.cmd(p, &["SPUBLISH", "orders", "o-1"]).unwrap();
    expect_message(&mut on_p, "o-1");
    expect_message(&mut on_r, "o-1");
    // SPUBLISH on a node outside the shard is redirected.
    let err = c.cmd(other, &["SPUBLISH", "orders", "o-2"]).unwrap_err();
    assert!(err.to_lowercase().contains("moved"), "{err}");
    // The slot moves to another shard: its subscribers on the old shard's primary and
    // replica are unsubscribed (the replica once it hears of the new owner).
    let slot = c.keyslot("orders").to_string();
    let to = c.id(other);
    c.cmd(other, &["CLUSTER", "SETSLOT", &slot, "NODE", &to])
        .unwrap();
    c.cmd(other, &["CLUSTER", "BUMPEPOCH"]).unwrap();
    c.cmd(p, &["CLUSTER", "SETSLOT", &slot, "NODE", &to])
        .unwrap();
    for s in [&mut on_p, &mut on_r] {
        s.stream.set_read_timeout(Some(support::PATIENCE)).unwrap();
        let reply = s.read_reply().expect("subscriber connection closed");
        assert_eq!(
            String::from_utf8_lossy(&reply),
            "*3\r\n$12\r\nsunsubscribe\r\n$6\r\norders\r\n:0\r\n"
        );
    }
}

#[test]
fn pubsub() {
    for_modes("pubsub", 6, pubsub_in);
}

fn replica_migration_in(bins: &[String]) {
    let mut c = Cluster::start("replica migration", &bins[..3], BOUND);
    c.create_direct(3);
    // Primary 0 gets two replicas, primary 1 one.
    let r0a = c.add_node(&bins[3], Some(0));
    let r0b = c.add_node(&bins[4], Some(0));
    let r1 = c.add_node(&bins[5], Some(1));
    for (r, p) in [(r0a, 0), (r0b, 0), (r1, 1)] {
        c.wait_replica_of(r, p);
    }
    c.wait_ok();
    // Primary 1 loses its only replica: one of primary 0's moves over to it.
    c.kill(r1);
    let id1 = c.id(1);
    c.wait("a replica to migrate to the orphaned primary", || {
        let moved = [r0a, r0b]
            .into_iter()
            .filter(|&r| c.me(r).master.as_deref() == Some(id1.as_str()))
            .count();
        if moved == 1 {
            Ok(())
        } else {
            Err(format!("{moved} replicas follow primary 1"))
        }
    });
}

#[test]
fn replica_migration() {
    for_modes("replica_migration", 6, replica_migration_in);
}

/// `cluster-replica-validity-factor`: a replica cut off from its primary for longer than
/// the factor allows does not fail over when the primary dies (and says why in its log);
/// with the factor set to 0 it does.
fn replica_validity_in(bins: &[String]) {
    // The replica is the mode's first binary (Kiln), the primaries the others.
    let order = [&bins[1], &bins[2], &bins[3], &bins[0]].map(|b| b.to_string());
    let mut c = Cluster::start("replica validity factor", &order, BOUND);
    c.create_direct(3);
    let (p, r) = (0, 3);
    c.wait_replica_of(r, p);
    for (k, v) in [
        ("cluster-replica-validity-factor", "1"),
        ("repl-ping-replica-period", "1"),
    ] {
        c.cmd(r, &["CONFIG", "SET", k, v]).unwrap();
    }
    let got = c.cmd(r, &["CONFIG", "GET", "cluster-slave-validity-factor"]);
    assert_eq!(
        got,
        Ok(redis::Value::Array(vec![
            redis::Value::BulkString(b"cluster-slave-validity-factor".to_vec()),
            redis::Value::BulkString(b"1".to_vec()),
        ]))
    );
    let err = c.cmd(
        r,
        &["CONFIG", "SET", "cluster-replica-validity-factor", "-1"],
    );
    assert!(
        err.as_ref()
            .is_err_and(|e| e.contains("argument must be between 0 and 2147483647 inclusive")),
        "{err:?}"
    );
    // The replica loses its link to the primary (which now wants a password it does not
    // have) while the cluster bus between them works on.
    c.cmd(p, &["CONFIG", "SET", "requirepass", "secret"])
        .unwrap();
    c.cmd(r, &["CLIENT", "KILL", "TYPE", "master"]).unwrap();
    // Allowed: node timeout (2 s) + 1 x node timeout + 1 s of ping period past it.
    support::poll("the replica's link to be down for 6 s", || {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut c.conn(r))
            .ok()?;
        let down: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("master_link_down_since_seconds:"))?
            .trim()
            .parse()
            .ok()?;
        (down >= 6).then_some(())
    });
    let epoch = c.info_field(r, "cluster_current_epoch");
    c.kill(p);
    let log = c.members[r].node.log();
    support::poll("the replica to log why it does not fail over", || {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains(
            "Currently unable to failover: Disconnected from master for longer than allowed. \
             Please check the 'cluster-replica-validity-factor' configuration option.",
        )
        .then_some(())
    });
    assert!(!c.is_master(r), "the replica failed over with stale data");
    assert_eq!(
        c.info_field(r, "cluster_current_epoch"),
        epoch,
        "the replica held an election"
    );
    // Factor 0: data of any age will do.
    c.cmd(
        r,
        &["CONFIG", "SET", "cluster-replica-validity-factor", "0"],
    )
    .unwrap();
    c.wait_master(r);
    c.wait_ok();
}

#[test]
fn replica_validity_factor() {
    for_modes("replica_validity_factor", 4, replica_validity_in);
}

/// CLUSTER LINKS of node `i`: each link's fields, values as text.
fn links(c: &Cluster, i: usize) -> Vec<std::collections::HashMap<String, String>> {
    use redis::Value;
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    };
    let Ok(Value::Array(links)) = c.cmd(i, &["CLUSTER", "LINKS"]) else {
        return Vec::new();
    };
    links
        .iter()
        .map(|l| match l {
            Value::Array(kv) => kv.chunks(2).map(|p| (text(&p[0]), text(&p[1]))).collect(),
            Value::Map(kv) => kv.iter().map(|(k, v)| (text(k), text(v))).collect(),
            _ => Default::default(),
        })
        .collect()
}

/// The link of `dir` (`to` or `from`) between node `i` and the node named `id`.
fn link(
    c: &Cluster,
    i: usize,
    dir: &str,
    id: &str,
) -> Option<std::collections::HashMap<String, String>> {
    links(c, i)
        .into_iter()
        .find(|l| l.get("direction").map(String::as_str) == Some(dir) && l["node"] == id)
}

/// CLUSTER LINKS's send buffers and `cluster-link-sendbuf-limit`: a link to a node that
/// stopped reading shows the bytes it holds; with a limit it is freed (counted in CLUSTER
/// INFO) and opened again later.
fn link_sendbuf_limit_in(bins: &[String]) {
    let c = Cluster::start("cluster link send buffers", &bins[..3], BOUND);
    c.create_direct(3);
    let (a, b) = (0, 1);
    let id_b = c.id(b);
    let first = c.wait("node a to list its links to and from the others", || {
        let l = links(&c, a);
        if l.len() != 4 {
            return Err(format!("{} links: {l:?}", l.len()));
        }
        for f in [
            "direction",
            "node",
            "create-time",
            "events",
            "send-buffer-allocated",
            "send-buffer-used",
        ] {
            if l.iter().any(|l| !l.contains_key(f)) {
                return Err(format!("no {f}: {l:?}"));
            }
        }
        match (link(&c, a, "to", &id_b), link(&c, a, "from", &id_b)) {
            (Some(to), Some(_)) => Ok(to["create-time"].parse::<u64>().unwrap()),
            _ => Err(format!("no link to and from node b: {l:?}")),
        }
    });
    let mut pc = c.conn(a);
    let big = vec![b'x'; 1 << 20];
    let mut publish = || {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("ch")
            .arg(&big)
            .query(&mut pc)
            .unwrap();
    };
    // Node b stops reading: what node a sends it piles up in the link's send buffer.
    c.members[b].node.signal("STOP");
    c.wait("the link to node b to hold unsent bytes", || {
        publish();
        let to = link(&c, a, "to", &id_b).ok_or("no link to node b")?;
        let used: u64 = to["send-buffer-used"].parse().unwrap();
        let alloc: u64 = to["send-buffer-allocated"].parse().unwrap();
        if used > 0 && alloc >= used && to["events"] == "rw" {
            Ok(())
        } else {
            Err(format!("{to:?}"))
        }
    });
    c.cmd(a, &["CONFIG", "SET", "cluster-link-sendbuf-limit", "1mb"])
        .unwrap();
    assert_eq!(
        c.cmd(a, &["CONFIG", "GET", "cluster-link-sendbuf-limit"]),
        Ok(redis::Value::Array(vec![
            redis::Value::BulkString(b"cluster-link-sendbuf-limit".to_vec()),
            redis::Value::BulkString(b"1048576".to_vec()),
        ]))
    );
    c.wait("a link over the limit to be freed", || {
        publish();
        match c.info_field(a, "total_cluster_links_buffer_limit_exceeded") {
            Some(n) if n != "0" => Ok(()),
            other => Err(format!(
                "total_cluster_links_buffer_limit_exceeded {other:?}"
            )),
        }
    });
    let log = std::fs::read_to_string(c.members[a].node.log()).unwrap();
    assert!(
        log.contains("due to exceeding send buffer memory limit"),
        "node a's log does not say it freed a link"
    );
    c.cmd(a, &["CONFIG", "SET", "cluster-link-sendbuf-limit", "0"])
        .unwrap();
    c.members[b].node.signal("CONT");
    c.wait_ok();
    c.wait("node a to link to node b again", || {
        match (link(&c, a, "to", &id_b), link(&c, a, "from", &id_b)) {
            (Some(to), Some(_)) if to["create-time"].parse::<u64>().unwrap() > first => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

#[test]
fn link_sendbuf_limit() {
    for_modes("link_sendbuf_limit", 3, link_sendbuf_limit_in);
}

/// `redis-cli --cluster fix` repairs what a crashed resharding or an operator leaves: a slot
/// left MIGRATING on its owner and IMPORTING on another (its keys then move, the slot with
/// them), and a slot no node serves (given to the node that holds its keys). Each is fixed
/// on its own, as an uncovered slot takes the cluster down, and then no key moves (in Redis
/// too). Afterwards `--cluster check` is clean and every key reads back.
fn fix_in(bins: &[String]) {
    let c = Cluster::start("fix", bins, BOUND);
    c.create_direct(3);
    let mut cc = c.client();
    write_keys(&mut cc, 0..2000);
    // (Its report quotes the damage it found as `[ERR]` lines: only its exit status and
    // the check afterwards judge it.)
    let fix = || {
        let args = ["--cluster", "fix", &c.addr(0), "--cluster-yes"].map(String::from);
        let (ok, text) = c.cli_with_input(&args, Some("yes\nyes\n"));
        assert!(
            ok,
            "[{}] redis-cli --cluster fix failed:\n{text}",
            c.label()
        );
    };
    let damaged = || {
        let (ok, report) = c.cli(&["--cluster".into(), "check".into(), c.addr(0)]);
        assert!(
            !ok || report.contains("[WARNING]") || report.contains("[ERR]"),
            "check did not see the damage:\n{report}"
        );
    };
    // A half-done move of a slot with keys, from its owner to another primary.
    let slot = c.keyslot("key:7");
    let owner = c.node_of_slot(slot);
    let target = (owner + 1) % 3;
    let s = slot.to_string();
    c.cmd(
        owner,
        &["CLUSTER", "SETSLOT", &s, "MIGRATING", &c.id(target)],
    )
    .unwrap();
    c.cmd(
        target,
        &["CLUSTER", "SETSLOT", &s, "IMPORTING", &c.id(owner)],
    )
    .unwrap();
    damaged();
    fix();
    c.wait_ok();
    c.check();
    assert_eq!(
        c.node_of_slot(slot),
        target,
        "the open slot went to its importer"
    );
    // A slot that no node serves any more (its owner keeps the keys): forgotten by every
    // node, as DELSLOTS only drops a node's own view.
    let lost_key = (0..2000)
        .map(|i| format!("key:{i}"))
        .find(|k| c.keyslot(k) != slot)
        .unwrap();
    let lost = c.keyslot(&lost_key);
    let keeper = c.node_of_slot(lost);
    for i in 0..3 {
        c.cmd(i, &["CLUSTER", "DELSLOTS", &lost.to_string()])
            .unwrap();
    }
    damaged();
    fix();
    c.wait_ok();
    c.check();
    assert_eq!(
        c.node_of_slot(lost),
        keeper,
        "the lost slot went to its keys' node"
    );
    read_keys(&mut c.client(), 0..2000);
    assert_eq!(total_keys(&c), 2000);
}

#[test]
fn fix() {
    for_modes("fix", 3, fix_in);
}
