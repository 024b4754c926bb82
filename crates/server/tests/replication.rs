//! Replication: Kiln primaries and replicas among themselves and with real redis-server on
//! either side, resyncs after faults, WAIT, ROLE, INFO replication, the write gate, and the
//! exact bytes of the handshake, the stream and the acknowledgements.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use redis::Connection;
use support::{digest, free_port, Node, Raw, TestServer};

/// How long a test waits for replication to converge before failing.
const CONVERGE: Duration = Duration::from_secs(60);

fn info(c: &mut Connection, section: &str) -> String {
    redis::cmd("INFO").arg(section).query(c).unwrap()
}

/// One `field:value` of an INFO text.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        l.strip_prefix(&format!("{name}:"))
            .map(|v| v.trim().to_string())
    })
}

fn info_field(c: &mut Connection, section: &str, name: &str) -> String {
    field(&info(c, section), name).unwrap_or_default()
}

/// Polls `f` until it holds; panics with `what` after [`CONVERGE`].
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + CONVERGE;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// Waits until the replica's link is up and it processed everything the primary sent so
/// far (the same replication offset on both sides).
fn wait_synced(primary: &mut Connection, replica: &mut Connection) {
    wait_for("the replica to catch up", || {
        let r = info(replica, "replication");
        if field(&r, "master_link_status").as_deref() != Some("up") {
            return false;
        }
        let p = info_field(primary, "replication", "master_repl_offset");
        field(&r, "slave_repl_offset").as_deref() == Some(p.as_str())
    });
}

/// Waits until both sides hold the same data.
fn wait_same_digest(primary: &mut Connection, replica: &mut Connection) {
    wait_synced(primary, replica);
    let mut last = (String::new(), String::new());
    let converged = (0..500).any(|_| {
        last = (digest(primary), digest(replica));
        if last.0 == last.1 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
        false
    });
    assert!(converged, "digests differ: {last:?}");
}

fn kiln(extra: &[&str]) -> TestServer {
    let mut args = vec!["--enable-debug-command", "yes"];
    args.extend_from_slice(extra);
    TestServer::kiln(&args)
}

fn kiln_replica_of(port: u16, extra: &[&str]) -> TestServer {
    let target = format!("127.0.0.1 {port}");
    let mut args = vec!["--replicaof", target.as_str()];
    args.extend_from_slice(extra);
    kiln(&args)
}

fn redis_server(extra: &[&str]) -> Option<TestServer> {
    let mut args = vec![
        "--enable-debug-command",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ];
    args.extend_from_slice(extra);
    TestServer::redis(&args)
}

/// A write load touching every data type, with and without TTLs (long ones: nothing
/// expires during a test), plus the commands replicas must receive as their effects.
fn write_load(c: &mut Connection, round: usize) {
    let mut p = redis::pipe();
    for i in 0..200 {
        let k = |t: &str| format!("{t}:{round}:{i}");
        p.cmd("SET").arg(k("str")).arg(format!("v{i}")).ignore();
        p.cmd("SET")
            .arg(k("ttl"))
            .arg(i)
            .arg("EX")
            .arg(1000 + i)
            .ignore();
        p.cmd("RPUSH")
            .arg(k("list"))
            .arg(i)
            .arg("b")
            .arg("c")
            .ignore();
        p.cmd("HSET")
            .arg(k("hash"))
            .arg("f")
            .arg(i)
            .arg("g")
            .arg("x".repeat(i % 100))
            .ignore();
        p.cmd("SADD")
            .arg(k("set"))
            .arg(i)
            .arg(i + 1)
            .arg("m")
            .ignore();
        p.cmd("ZADD")
            .arg(k("zset"))
            .arg(i)
            .arg("a")
            .arg(1.5)
            .arg("b")
            .ignore();
        p.cmd("XADD")
            .arg(k("stream"))
            .arg("*")
            .arg("f")
            .arg(i)
            .ignore();
        p.cmd("PEXPIRE").arg(k("hash")).arg(2_000_000).ignore();
    }
    for i in 0..20 {
        let k = |t: &str| format!("{t}:{round}:{i}");
        p.cmd("SPOP").arg(k("set")).ignore();
        p.cmd("INCRBYFLOAT").arg(k("float")).arg("1.1").ignore();
        p.cmd("HINCRBYFLOAT")
            .arg(k("hash"))
            .arg("h")
            .arg("0.3")
            .ignore();
        p.cmd("SETEX").arg(k("setex")).arg(500).arg("v").ignore();
        p.cmd("GETEX").arg(k("str")).arg("PX").arg(900_000).ignore();
        p.cmd("EXPIREAT")
            .arg(k("list"))
            .arg(4_000_000_000u64)
            .ignore();
        p.cmd("LMPOP")
            .arg(1)
            .arg(k("list"))
            .arg("LEFT")
            .arg("COUNT")
            .arg(2)
            .ignore();
        p.cmd("ZPOPMIN").arg(k("zset")).ignore();
        p.cmd("XADD")
            .arg(k("stream"))
            .arg("MAXLEN")
            .arg("~")
            .arg(1)
            .arg("*")
            .arg("g")
            .arg(1)
            .ignore();
        p.cmd("GETDEL").arg(k("setex")).ignore();
    }
    p.cmd("MULTI").ignore();
    p.cmd("INCR").arg(format!("counter:{round}")).ignore();
    p.cmd("SELECT").arg(3).ignore();
    p.cmd("SET").arg(format!("db3:{round}")).arg("x").ignore();
    p.cmd("SELECT").arg(0).ignore();
    p.cmd("EXEC").ignore();
    p.query::<()>(c).unwrap();
}

#[test]
fn a_kiln_replica_follows_a_kiln_primary_through_a_full_sync_and_the_stream() {
    let primary = kiln(&[]);
    let mut p = primary.client();
    write_load(&mut p, 0);
    let replica = kiln_replica_of(primary.port, &[]);
    let mut r = replica.client();
    wait_same_digest(&mut p, &mut r);
    write_load(&mut p, 1);
    wait_same_digest(&mut p, &mut r);
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut r).unwrap();
    assert!(dbsize > 2000);

    // Replicas are read-only; reads work.
    let e = redis::cmd("SET")
        .arg("x")
        .arg(1)
        .query::<()>(&mut r)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("You can't write against a read only replica."),
        "{e}"
    );
    let v: String = redis::cmd("GET").arg("str:1:5").query(&mut r).unwrap();
    assert_eq!(v, "v5");
    assert_eq!(info_field(&mut p, "stats", "sync_full"), "1");
}

#[test]
fn role_and_info_replication_describe_both_sides() {
    let primary = kiln(&[]);
    let mut p = primary.client();
    let replica = kiln_replica_of(primary.port, &[]);
    let mut r = replica.client();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query::<()>(&mut p)
        .unwrap();
    wait_synced(&mut p, &mut r);
    let pi = info(&mut p, "replication");
    assert_eq!(field(&pi, "role").unwrap(), "master");
    assert_eq!(field(&pi, "connected_slaves").unwrap(), "1");
    let slave0 = field(&pi, "slave0").unwrap();
    assert!(
        slave0.starts_with(&format!(
            "ip=127.0.0.1,port={},state=online,offset=",
            replica.port
        )),
        "{slave0}"
    );
    assert_eq!(field(&pi, "master_replid").unwrap().len(), 40);
    assert_eq!(field(&pi, "repl_backlog_active").unwrap(), "1");
    assert_eq!(field(&pi, "repl_backlog_first_byte_offset").unwrap(), "1");
    let ri = info(&mut r, "replication");
    assert_eq!(field(&ri, "role").unwrap(), "slave");
    assert_eq!(field(&ri, "master_host").unwrap(), "127.0.0.1");
    assert_eq!(field(&ri, "master_port").unwrap(), primary.port.to_string());
    assert_eq!(field(&ri, "master_sync_in_progress").unwrap(), "0");
    assert_eq!(field(&ri, "slave_read_only").unwrap(), "1");
    assert_eq!(field(&ri, "master_replid"), field(&pi, "master_replid"));

    let role: redis::Value = redis::cmd("ROLE").query(&mut p).unwrap();
    let redis::Value::Array(items) = role else {
        panic!("{role:?}")
    };
    assert_eq!(items[0], redis::Value::BulkString(b"master".to_vec()));
    let role: redis::Value = redis::cmd("ROLE").query(&mut r).unwrap();
    let redis::Value::Array(items) = role else {
        panic!("{role:?}")
    };
    assert_eq!(items.len(), 5);
    assert_eq!(items[0], redis::Value::BulkString(b"slave".to_vec()));
    assert_eq!(items[2], redis::Value::Int(i64::from(primary.port)));
    assert_eq!(items[3], redis::Value::BulkString(b"connected".to_vec()));
}

#[test]
fn info_replication_has_the_fields_of_a_real_redis_pair() {
    let Some(rp) = redis_server(&[]) else { return };
    let target = format!("127.0.0.1 {}", rp.port);
    let Some(rr) = redis_server(&["--replicaof", &target]) else {
        return;
    };
    let kp = kiln(&[]);
    let kr = kiln_replica_of(kp.port, &[]);
    let (mut rpc, mut rrc, mut kpc, mut krc) = (rp.client(), rr.client(), kp.client(), kr.client());
    wait_synced(&mut rpc, &mut rrc);
    wait_synced(&mut kpc, &mut krc);
    let names = |t: String| -> Vec<String> {
        t.lines()
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_string()))
            .collect()
    };
    assert_eq!(
        names(info(&mut rpc, "replication")),
        names(info(&mut kpc, "replication"))
    );
    assert_eq!(
        names(info(&mut rrc, "replication")),
        names(info(&mut krc, "replication"))
    );
}

#[test]
fn a_kiln_replica_follows_a_redis_primary() {
    let Some(primary) = redis_server(&[]) else {
        return;
    };
    let mut p = primary.client();
    write_load(&mut p, 0);
    let replica = kiln_replica_of(primary.port, &[]);
    let mut r = replica.client();
    wait_same_digest(&mut p, &mut r);
    write_load(&mut p, 1);
    wait_same_digest(&mut p, &mut r);
    // Redis's replication id is adopted.
    assert_eq!(
        info_field(&mut r, "replication", "master_replid"),
        info_field(&mut p, "replication", "master_replid")
    );
    // A dropped link continues where it stopped.
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("master")
        .query::<()>(&mut r)
        .unwrap();
    write_load(&mut p, 2);
    wait_for("the partial resync", || {
        info_field(&mut p, "stats", "sync_partial_ok") == "1"
    });
    wait_same_digest(&mut p, &mut r);
    assert_eq!(info_field(&mut p, "stats", "sync_full"), "1");
    let conf: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("replicaof")
        .query(&mut r)
        .unwrap();
    assert_eq!(conf[1], format!("127.0.0.1 {}", primary.port));
}

#[test]
fn a_redis_replica_follows_a_kiln_primary() {
    let primary = kiln(&[]);
    let mut p = primary.client();
    write_load(&mut p, 0);
    let target = format!("127.0.0.1 {}", primary.port);
    let Some(replica) = redis_server(&["--replicaof", &target]) else {
        return;
    };
    let mut r = replica.client();
    wait_same_digest(&mut p, &mut r);
    write_load(&mut p, 1);
    wait_same_digest(&mut p, &mut r);
    // WAIT counts the Redis replica's acknowledgement.
    redis::cmd("SET")
        .arg("w")
        .arg(1)
        .query::<()>(&mut p)
        .unwrap();
    let n: i64 = redis::cmd("WAIT").arg(1).arg(0).query(&mut p).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn a_dropped_link_resumes_with_a_partial_resync_from_either_side() {
    let primary = kiln(&[]);
    let mut p = primary.client();
    write_load(&mut p, 0);
    let replica = kiln_replica_of(primary.port, &[]);
    let mut r = replica.client();
    wait_same_digest(&mut p, &mut r);

    // The replica drops its primary's link.
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("master")
        .query::<()>(&mut r)
        .unwrap();
    write_load(&mut p, 1);
    wait_same_digest(&mut p, &mut r);
    assert_eq!(info_field(&mut p, "stats", "sync_partial_ok"), "1");

    // The primary drops the replica's link.
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query::<()>(&mut p)
        .unwrap();
    write_load(&mut p, 2);
    wait_for("the second partial resync", || {
        info_field(&mut p, "stats", "sync_partial_ok") == "2"
    });
    wait_same_digest(&mut p, &mut r);
    assert_eq!(info_field(&mut p, "stats", "sync_full"), "1");
}

#[test]
fn a_redis_replica_continues_from_a_kiln_primary_after_its_link_drops() {
    let primary = kiln(&[]);
    let mut p = primary.client();
    let target = format!("127.0.0.1 {}", primary.port);
    let Some(replica) = redis_server(&["--replicaof", &target]) else {
        return;
    };
    let mut r = replica.client();
    write_load(&mut p, 0);
    wait_same_digest(&mut p, &mut r);
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("master")
        .query::<()>(&mut r)
        .unwrap();
    write_load(&mut p, 1);
    wait_for("the partial resync", || {
        info_field(&mut p, "stats", "sync_partial_ok") == "1"
    });
    wait_same_digest(&mut p, &mut r);
    assert_eq!(info_field(&mut p, "stats", "sync_full"), "1");
}

#[test]
fn a_restarted_replica_does_a_full_sync() {
    let primary = kiln(&[]);
    let mut p = primary.client();
    write_load(&mut p, 0);
    {
        let replica = kiln_replica_of(primary.port, &[]);
        let mut r = replica.client();
        wait_same_digest(&mut p, &mut r);
    }
    write_load(&mut p, 1);
    let replica = kiln_replica_of(primary.port, &[]);
    let mut r = replica.client();
    wait_same_digest(&mut p, &mut r);
    assert_eq!(info_field(&mut p, "stats", "sync_full"), "2");
}

#[test]
fn a_replica_follows_its_primary_across_a_primary_restart() {
    let mut primary = Node::kiln(free_port(), &[]);
    let mut p = primary.client();
    write_load(&mut p, 0);
    let replica = kiln_replica_of(primary.port, &[]);
    let mut r = replica.client();
    wait_same_digest(&mut p, &mut r);
    // The restarted primary has no data and a new history: the replica syncs it in full.
    primary.restart();
    let mut p = primary.client();
    write_load(&mut p, 1);
    wait_same_digest(&mut p, &mut r);
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut r).unwrap();
    let expected: i64 = redis::cmd("DBSIZE").query(&mut p).unwrap();
    assert_eq!(dbsize, expected);
}

#[test]
fn a_replica_killed_mid_sync_and_restarted_converges() {
    let primary = kiln(&[]);
    let mut p = primary.client();
    // Enough data that the transfer takes a moment.
    for round in 0..20 {
        let mut pipe = redis::pipe();
        for i in 0..5000 {
            pipe.cmd("SET")
                .arg(format!("big:{round}:{i}"))
                .arg("x".repeat(200))
                .ignore();
        }
        pipe.query::<()>(&mut p).unwrap();
    }
    let mut replica = Node::kiln(
        free_port(),
        &["--replicaof", &format!("127.0.0.1 {}", primary.port)],
    );
    // Stop it as soon as the sync starts (or right away if it is that fast).
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && info_field(&mut p, "stats", "sync_full") == "0" {
        std::thread::sleep(Duration::from_millis(1));
    }
    replica.stop();
    write_load(&mut p, 0);
    replica.restart();
    let mut r = replica.client();
    wait_same_digest(&mut p, &mut r);
}

#[test]
fn a_promoted_replica_keeps_its_history_so_the_others_continue() {
    let primary = kiln(&[]);
    let mut p = primary.client();
    write_load(&mut p, 0);
    let a = kiln_replica_of(primary.port, &[]);
    let b = kiln_replica_of(primary.port, &[]);
    let (mut ac, mut bc) = (a.client(), b.client());
    wait_same_digest(&mut p, &mut ac);
    wait_same_digest(&mut p, &mut bc);
    // WAIT-acknowledged writes survive the failover.
    redis::cmd("SET")
        .arg("acked")
        .arg("yes")
        .query::<()>(&mut p)
        .unwrap();
    let n: i64 = redis::cmd("WAIT").arg(2).arg(0).query(&mut p).unwrap();
    assert_eq!(n, 2);
    drop(primary);

    let old_id = info_field(&mut ac, "replication", "master_replid");
    redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query::<()>(&mut ac)
        .unwrap();
    let ri = info(&mut ac, "replication");
    assert_eq!(field(&ri, "role").unwrap(), "master");
    assert_eq!(field(&ri, "master_replid2").unwrap(), old_id);
    assert_ne!(field(&ri, "master_replid").unwrap(), old_id);
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(a.port)
        .query::<()>(&mut bc)
        .unwrap();
    write_load(&mut ac, 1);
    wait_same_digest(&mut ac, &mut bc);
    assert_eq!(info_field(&mut ac, "stats", "sync_partial_ok"), "1");
    assert_eq!(info_field(&mut ac, "stats", "sync_full"), "0");
    let v: String = redis::cmd("GET").arg("acked").query(&mut bc).unwrap();
    assert_eq!(v, "yes");
}

/// INFO's `role` and `master_failover_state` of a server.
fn role_and_failover(c: &mut Connection) -> (String, String) {
    let r = info(c, "replication");
    (
        field(&r, "role").unwrap_or_default(),
        field(&r, "master_failover_state").unwrap_or_default(),
    )
}

/// Waits until `new` is a primary and `old` its replica with its link up, both without a
/// failover under way.
fn wait_swapped(new: &mut Connection, old: &mut Connection) {
    wait_for("the roles to swap", || {
        let o = info(old, "replication");
        role_and_failover(new) == ("master".into(), "no-failover".into())
            && field(&o, "role").as_deref() == Some("slave")
            && field(&o, "master_link_status").as_deref() == Some("up")
            && field(&o, "master_failover_state").as_deref() == Some("no-failover")
    });
}

/// A coordinated failover between a primary and its synced replica: the roles swap, the
/// data written before is on both, the new primary's writes reach the old one, which now
/// refuses writes.
fn fail_over(primary: &TestServer, replica: &TestServer, to: bool, round: usize) {
    let (mut p, mut r) = (primary.client(), replica.client());
    write_load(&mut p, round);
    wait_same_digest(&mut p, &mut r);
    // A client blocked on a key, and one in WAIT, are answered as the primary turns into a
    // replica, and their connections close (Redis's disconnectAllBlockedClients).
    let mut blocked = primary.raw();
    blocked.send_cmd(&["BLPOP", "failover-nolist", "0"]);
    wait_for("the client to block", || {
        info_field(&mut p, "clients", "blocked_clients") == "1"
    });
    let mut waiting = primary.raw();
    waiting.send_cmd(&["WAIT", "5", "0"]);
    wait_for("WAIT to count as blocked", || {
        info_field(&mut p, "clients", "blocked_clients") == "2"
    });
    let port = replica.port.to_string();
    let mut args = vec!["FAILOVER"];
    if to {
        args.extend(["TO", "127.0.0.1", port.as_str()]);
    }
    assert_eq!(primary.raw().cmd(&args), "+OK\r\n");
    wait_swapped(&mut r, &mut p);
    for c in [&mut blocked, &mut waiting] {
        assert_eq!(
            String::from_utf8(c.read_reply().unwrap()).unwrap(),
            "-UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)\r\n"
        );
        assert!(c.read_reply().is_none(), "the connection stays open");
    }
    wait_same_digest(&mut r, &mut p);
    write_load(&mut r, round + 1);
    wait_same_digest(&mut r, &mut p);
    assert!(primary
        .raw()
        .cmd(&["SET", "x", "1"])
        .starts_with("-READONLY"));
}

#[test]
fn failover_swaps_a_kiln_primary_and_its_kiln_replica() {
    let primary = kiln(&[]);
    let replica = kiln_replica_of(primary.port, &[]);
    fail_over(&primary, &replica, false, 0);
    // And back, naming the target.
    fail_over(&replica, &primary, true, 2);
}

#[test]
fn failover_works_between_kiln_and_redis_both_ways() {
    let primary = kiln(&[]);
    let target = format!("127.0.0.1 {}", primary.port);
    let Some(replica) = redis_server(&["--replicaof", &target]) else {
        return;
    };
    // A Kiln primary hands over to a Redis replica, then the Redis primary to Kiln.
    fail_over(&primary, &replica, true, 0);
    fail_over(&replica, &primary, false, 2);
}

/// Stops (`STOP`) or resumes (`CONT`) the process `pid`.
fn signal(pid: &str, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), pid])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// FAILOVER's checks that need a replica, then a replica that cannot catch up (stopped):
/// ABORT, TIMEOUT giving up, FORCE handing over anyway. Writes are held meanwhile, also
/// after CLIENT UNPAUSE.
fn failover_with_a_stopped_replica(primary: &TestServer, replica: &TestServer) {
    let (mut p, mut r) = (primary.client(), replica.client());
    let mut c = primary.raw();
    let port = replica.port.to_string();
    redis::cmd("SET")
        .arg("a")
        .arg(1)
        .query::<()>(&mut p)
        .unwrap();
    wait_synced(&mut p, &mut r);
    let force =
        "-ERR FAILOVER with force option requires both a timeout and target HOST and IP.\r\n";
    assert_eq!(c.cmd(&["FAILOVER", "FORCE", "TIMEOUT", "10"]), force);
    assert_eq!(
        c.cmd(&["FAILOVER", "TO", "127.0.0.1", &port, "FORCE"]),
        force
    );
    let not_replica = "-ERR FAILOVER target HOST and PORT is not a replica.\r\n";
    assert_eq!(c.cmd(&["FAILOVER", "TO", "localhost", &port]), not_replica);
    assert_eq!(c.cmd(&["FAILOVER", "TO", "127.0.0.1", "1"]), not_replica);
    assert_eq!(
        replica.raw().cmd(&["FAILOVER"]),
        "-ERR FAILOVER is not valid when server is a replica.\r\n"
    );

    let pid = info_field(&mut r, "server", "process_id");
    signal(&pid, "STOP");
    redis::cmd("SET")
        .arg("b")
        .arg(2)
        .query::<()>(&mut p)
        .unwrap();
    assert_eq!(c.cmd(&["FAILOVER", "TIMEOUT", "600000"]), "+OK\r\n");
    assert_eq!(
        c.cmd(&["FAILOVER"]),
        "-ERR FAILOVER already in progress.\r\n"
    );
    assert_eq!(
        role_and_failover(&mut p),
        ("master".into(), "waiting-for-sync".into())
    );
    assert_eq!(
        c.cmd(&["PSYNC", "?", "-1"]),
        "-NOMASTERLINK Can't SYNC while failing over\r\n"
    );
    // CLIENT UNPAUSE does not end FAILOVER's pause; reads go on.
    assert_eq!(c.cmd(&["CLIENT", "UNPAUSE"]), "+OK\r\n");
    let mut writer = primary.raw();
    writer.send_cmd(&["SET", "c", "3"]);
    wait_for("the write to be held", || {
        info_field(&mut p, "clients", "blocked_clients") == "1"
    });
    assert_eq!(c.cmd(&["GET", "a"]), "$1\r\n1\r\n");
    assert_eq!(c.cmd(&["FAILOVER", "ABORT"]), "+OK\r\n");
    assert_eq!(writer.read_reply().unwrap(), b"+OK\r\n");
    assert_eq!(
        role_and_failover(&mut p),
        ("master".into(), "no-failover".into())
    );
    assert_eq!(
        c.cmd(&["FAILOVER", "ABORT"]),
        "-ERR No failover in progress.\r\n"
    );

    // TIMEOUT: given up when the replica does not catch up in time.
    assert_eq!(c.cmd(&["FAILOVER", "TIMEOUT", "100"]), "+OK\r\n");
    wait_for("the failover to time out", || {
        role_and_failover(&mut p) == ("master".into(), "no-failover".into())
    });
    assert_eq!(c.cmd(&["SET", "d", "4"]), "+OK\r\n");

    // FORCE: at the timeout the primary hands over anyway, and waits for the target.
    assert_eq!(
        c.cmd(&[
            "FAILOVER",
            "TO",
            "127.0.0.1",
            &port,
            "FORCE",
            "TIMEOUT",
            "100"
        ]),
        "+OK\r\n"
    );
    wait_for("the forced hand-over", || {
        role_and_failover(&mut p) == ("slave".into(), "failover-in-progress".into())
    });
    signal(&pid, "CONT");
    wait_swapped(&mut r, &mut p);
    wait_same_digest(&mut r, &mut p);
}

#[test]
fn failover_abort_timeout_and_force_with_a_replica_that_cannot_catch_up() {
    let primary = kiln(&[]);
    let replica = kiln_replica_of(primary.port, &[]);
    failover_with_a_stopped_replica(&primary, &replica);
    // The same steps against redis-server, so the expectations are Redis's.
    let Some(primary) = redis_server(&[]) else {
        return;
    };
    let target = format!("127.0.0.1 {}", primary.port);
    let Some(replica) = redis_server(&["--replicaof", &target]) else {
        return;
    };
    failover_with_a_stopped_replica(&primary, &replica);
}

#[test]
fn chained_replicas_receive_the_stream() {
    let primary = kiln(&[]);
    let mut p = primary.client();
    write_load(&mut p, 0);
    let middle = kiln_replica_of(primary.port, &[]);
    let mut m = middle.client();
    wait_same_digest(&mut p, &mut m);
    let leaf = kiln_replica_of(middle.port, &[]);
    let mut l = leaf.client();
    write_load(&mut p, 1);
    wait_same_digest(&mut p, &mut m);
    wait_same_digest(&mut p, &mut l);
    // The chain shares the primary's history and offsets.
    assert_eq!(
        info_field(&mut l, "replication", "master_replid"),
        info_field(&mut p, "replication", "master_replid")
    );
}

#[test]
fn wait_returns_at_once_without_pending_writes_and_counts_acknowledgements() {
    let primary = kiln(&[]);
    let mut p = primary.client();
    // No replicas: nothing can acknowledge.
    let n: i64 = redis::cmd("WAIT").arg(1).arg(50).query(&mut p).unwrap();
    assert_eq!(n, 0);
    let replica = kiln_replica_of(primary.port, &[]);
    let mut r = replica.client();
    wait_synced(&mut p, &mut r);
    wait_for("the replica's first acknowledgement", || {
        redis::cmd("WAIT")
            .arg(1)
            .arg(10)
            .query::<i64>(&mut p)
            .unwrap()
            == 1
    });
    // A fresh client has written nothing: WAIT answers at once, even with no timeout.
    let mut fresh = primary.client();
    let n: i64 = redis::cmd("WAIT").arg(1).arg(0).query(&mut fresh).unwrap();
    assert_eq!(n, 1);
    // After a write, WAIT waits for the acknowledgement (GETACK makes it prompt).
    redis::cmd("SET")
        .arg("a")
        .arg(1)
        .query::<()>(&mut p)
        .unwrap();
    let n: i64 = redis::cmd("WAIT").arg(1).arg(0).query(&mut p).unwrap();
    assert_eq!(n, 1);
    // More replicas than exist: the timeout ends it with the count so far.
    let n: i64 = redis::cmd("WAIT").arg(2).arg(100).query(&mut p).unwrap();
    assert_eq!(n, 1);
    // WAIT on a replica is refused.
    let e = redis::cmd("WAIT")
        .arg(0)
        .arg(0)
        .query::<i64>(&mut r)
        .unwrap_err();
    assert!(e
        .to_string()
        .contains("WAIT cannot be used with replica instances"));
    // Errors are Redis's.
    let mut raw = primary.raw();
    assert_eq!(
        raw.cmd(&["WAIT", "1", "-1"]),
        "-ERR timeout is negative\r\n"
    );
    assert_eq!(
        raw.cmd(&["WAIT", "x", "1"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    // Requests pipelined behind a waiting WAIT run after it.
    raw.send(b"SET b 1\r\nWAIT 5 200\r\nPING\r\n");
    assert_eq!(raw.read_reply().unwrap(), b"+OK\r\n");
    assert_eq!(raw.read_reply().unwrap(), b":1\r\n");
    assert_eq!(raw.read_reply().unwrap(), b"+PONG\r\n");
}

#[test]
fn min_replicas_to_write_refuses_writes_without_enough_good_replicas() {
    let primary = kiln(&["--min-replicas-to-write", "1"]);
    let mut raw = primary.raw();
    assert_eq!(
        raw.cmd(&["SET", "k", "v"]),
        "-NOREPLICAS Not enough good replicas to write.\r\n"
    );
    assert_eq!(raw.cmd(&["GET", "k"]), "$-1\r\n");
    let replica = kiln_replica_of(primary.port, &[]);
    let mut p = primary.client();
    wait_for("a good replica", || {
        info_field(&mut p, "replication", "min_slaves_good_slaves") == "1"
    });
    assert_eq!(raw.cmd(&["SET", "k", "v"]), "+OK\r\n");
    drop(replica);
}

#[test]
fn a_replica_with_stale_data_refused_answers_masterdown_while_its_link_is_down() {
    let port = free_port();
    let replica = kiln(&[
        "--replicaof",
        &format!("127.0.0.1 {port}"),
        "--replica-serve-stale-data",
        "no",
    ]);
    let mut raw = replica.raw();
    assert_eq!(
        raw.cmd(&["GET", "k"]),
        "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n"
    );
    // Only commands flagged stale run (not even PING, as in Redis 7.0).
    assert!(raw
        .cmd(&["INFO", "replication"])
        .contains("master_link_status:down"));
    assert_eq!(raw.cmd(&["ECHO", "hi"]), "$2\r\nhi\r\n");
    assert!(raw.cmd(&["PING"]).starts_with("-MASTERDOWN"));
    let role = raw.cmd(&["ROLE"]);
    assert!(role.contains("slave") && role.contains(":-1\r\n"), "{role}");
    // REPLICAOF NO ONE lifts it.
    assert_eq!(raw.cmd(&["REPLICAOF", "NO", "ONE"]), "+OK\r\n");
    assert_eq!(raw.cmd(&["GET", "k"]), "$-1\r\n");
}

#[test]
fn a_replica_hides_expired_keys_until_the_primary_deletes_them() {
    let primary = kiln(&[]);
    let mut p = primary.client();
    redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query::<()>(&mut p)
        .unwrap();
    let replica = kiln_replica_of(primary.port, &[]);
    let mut r = replica.client();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("PX")
        .arg(200)
        .query::<()>(&mut p)
        .unwrap();
    wait_synced(&mut p, &mut r);
    std::thread::sleep(Duration::from_millis(400));
    // Logically expired: hidden from reads, but still there until the primary says so.
    let v: Option<String> = redis::cmd("GET").arg("k").query(&mut r).unwrap();
    assert_eq!(v, None);
    let n: i64 = redis::cmd("DBSIZE").query(&mut r).unwrap();
    assert_eq!(n, 1);
    // The primary expires it on access and propagates the DEL.
    let v: Option<String> = redis::cmd("GET").arg("k").query(&mut p).unwrap();
    assert_eq!(v, None);
    wait_for("the DEL to reach the replica", || {
        redis::cmd("DBSIZE").query::<i64>(&mut r).unwrap() == 0
    });
}

#[test]
fn replicaof_answers_like_redis() {
    let s = kiln(&[]);
    let mut raw = s.raw();
    assert_eq!(
        raw.cmd(&["REPLICAOF", "127.0.0.1", "99999"]),
        "-ERR Invalid master port\r\n"
    );
    assert_eq!(raw.cmd(&["REPLICAOF", "NO", "ONE"]), "+OK\r\n");
    let port = free_port().to_string();
    assert_eq!(raw.cmd(&["SLAVEOF", "127.0.0.1", &port]), "+OK\r\n");
    assert_eq!(
        raw.cmd(&["REPLICAOF", "127.0.0.1", &port]),
        "+OK Already connected to specified master\r\n"
    );
    assert_eq!(
        raw.cmd(&["SET", "k", "v"]),
        "-READONLY You can't write against a read only replica.\r\n"
    );
    // A queued write is refused and aborts the transaction.
    assert_eq!(raw.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(
        raw.cmd(&["SET", "k", "v"]),
        "-READONLY You can't write against a read only replica.\r\n"
    );
    assert_eq!(
        raw.cmd(&["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(
        raw.cmd(&["PSYNC", "?", "-1"]),
        "-NOMASTERLINK Can't SYNC while not connected with my master\r\n"
    );
    assert_eq!(raw.cmd(&["REPLCONF", "a"]), "-ERR syntax error\r\n");
    assert_eq!(
        raw.cmd(&["REPLCONF", "foo", "bar"]),
        "-ERR Unrecognized REPLCONF option: foo\r\n"
    );
    assert_eq!(raw.cmd(&["REPLCONF", "listening-port", "5"]), "+OK\r\n");
    // A writable replica accepts writes.
    assert_eq!(
        raw.cmd(&["CONFIG", "SET", "replica-read-only", "no"]),
        "+OK\r\n"
    );
    assert_eq!(raw.cmd(&["SET", "k", "v"]), "+OK\r\n");
}

#[test]
fn replication_commands_have_redis_command_info() {
    let Some(r) = redis_server(&[]) else { return };
    let k = kiln(&[]);
    let (mut rr, mut kr) = (r.raw(), k.raw());
    for c in [
        "replicaof",
        "slaveof",
        "replconf",
        "psync",
        "sync",
        "wait",
        "role",
    ] {
        assert_eq!(
            kr.cmd(&["COMMAND", "INFO", c]),
            rr.cmd(&["COMMAND", "INFO", c]),
            "COMMAND INFO {c}"
        );
    }
}

// --- The wire: a raw replica against a Kiln primary, a fake primary against a Kiln replica.

/// A raw connection's bytes as they arrive.
struct Wire {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    fn new(s: TcpStream) -> Self {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Self { s, buf: Vec::new() }
    }

    fn fill(&mut self, deadline: Instant, what: &str) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        let mut chunk = [0u8; 65536];
        match self.s.read(&mut chunk) {
            Ok(0) => panic!("connection closed waiting for {what}"),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{e}"),
        }
    }

    /// The position of `needle` at or after `from`, reading until it arrives.
    fn find(&mut self, from: usize, needle: &[u8]) -> usize {
        let deadline = Instant::now() + CONVERGE;
        loop {
            if self.buf.len() >= from + needle.len() {
                if let Some(i) = self.buf[from..]
                    .windows(needle.len())
                    .position(|w| w == needle)
                {
                    return from + i;
                }
            }
            self.fill(deadline, &String::from_utf8_lossy(needle));
        }
    }

    /// Reads until at least `n` bytes are buffered.
    fn at_least(&mut self, n: usize) {
        let deadline = Instant::now() + CONVERGE;
        while self.buf.len() < n {
            self.fill(deadline, "more bytes");
        }
    }
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    kiln_resp::encode::request(&mut out, args);
    out
}

/// Asks for a full sync on a raw connection (announcing `capa`); returns the wire with the
/// `+FULLRESYNC` line's offset, and where the stream starts in the buffer.
fn raw_full_sync(port: u16, capa: &[&str]) -> (Wire, u64, usize) {
    let mut raw = Raw::connect(port);
    let mut conf = vec!["REPLCONF"];
    for c in capa {
        conf.push("capa");
        conf.push(c);
    }
    assert_eq!(raw.cmd(&conf), "+OK\r\n");
    raw.send(&resp(&["PSYNC", "?", "-1"]));
    let mut w = Wire::new(raw.stream);
    let eol = w.find(0, b"\r\n");
    let line = String::from_utf8(w.buf[..eol].to_vec()).unwrap();
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(parts[0], "+FULLRESYNC", "{line}");
    assert_eq!(parts[1].len(), 40);
    let offset: u64 = parts[2].parse().unwrap();
    let head = eol + 2;
    let head_end = w.find(head, b"\r\n");
    let spec = String::from_utf8(w.buf[head..head_end].to_vec()).unwrap();
    let body = head_end + 2;
    let stream_at = if let Some(mark) = spec.strip_prefix("$EOF:") {
        let mark = mark.as_bytes().to_vec();
        assert_eq!(mark.len(), 40);
        let end = w.find(body, &mark);
        end + 40
    } else {
        let len: usize = spec[1..].parse().unwrap();
        w.at_least(body + len);
        body + len
    };
    w.at_least(body + 9);
    assert_eq!(&w.buf[body..body + 9], b"REDIS0010");
    (w, offset, stream_at)
}

#[test]
fn the_primary_sends_fullresync_an_eof_marked_snapshot_and_the_effects_of_commands() {
    let primary = kiln(&[]);
    let (mut w, offset, stream_at) = raw_full_sync(primary.port, &["eof", "psync2"]);
    // The stream starts after the first ACK.
    w.s.write_all(&resp(&["REPLCONF", "ACK", &offset.to_string()]))
        .unwrap();
    let mut c = primary.client();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("EX")
        .arg(100)
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("SADD")
        .arg("s")
        .arg("only")
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("SPOP").arg("s").query::<()>(&mut c).unwrap();
    redis::cmd("INCRBYFLOAT")
        .arg("f")
        .arg("1.5")
        .query::<()>(&mut c)
        .unwrap();
    let end = w.find(stream_at, b"KEEPTTL\r\n");
    let text = String::from_utf8_lossy(&w.buf[stream_at..end]).replace("\r\n", " ");
    assert!(
        text.starts_with("*2 $6 SELECT $1 0 *5 $3 SET $1 k $1 v $4 PXAT $13 "),
        "{text}"
    );
    assert!(
        text.contains("*3 $4 SADD $1 s $4 only *3 $4 SREM $1 s $4 only "),
        "{text}"
    );
    assert!(text.ends_with("*4 $3 SET $1 f $3 1.5 $7 "), "{text}");
}

/// A client served by another's push (its BLPOP's pop fed by the pusher's command) waits,
/// in WAIT, for its pop to be acknowledged, not only for its own earlier writes.
#[test]
fn wait_after_a_served_blocking_pop_covers_the_pop() {
    let primary = kiln(&[]);
    let (mut w, offset, _) = raw_full_sync(primary.port, &["eof", "psync2"]);
    // The replica acknowledges everything up to the full sync, and nothing after.
    w.s.write_all(&resp(&["REPLCONF", "ACK", &offset.to_string()]))
        .unwrap();
    let mut popper = primary.raw();
    let mut pusher = primary.raw();
    wait_for("the raw replica's acknowledgement", || {
        pusher.cmd(&["WAIT", "1", "1"]) == ":1\r\n"
    });
    popper.send_cmd(&["BLPOP", "list", "0"]);
    pusher.wait_info("clients", "blocked_clients", "1");
    assert_eq!(pusher.cmd(&["RPUSH", "list", "a"]), ":1\r\n");
    assert_eq!(
        popper.read_reply().unwrap(),
        b"*2\r\n$4\r\nlist\r\n$1\r\na\r\n"
    );
    // The pop is not acknowledged: WAIT times out with no replica.
    assert_eq!(popper.cmd(&["WAIT", "1", "100"]), ":0\r\n");
    let now = pusher
        .info_field("replication", "master_repl_offset")
        .unwrap();
    w.s.write_all(&resp(&["REPLCONF", "ACK", &now])).unwrap();
    assert_eq!(popper.cmd(&["WAIT", "1", "0"]), ":1\r\n");
}

#[test]
fn the_replication_stream_matches_redis_for_commands_propagated_as_effects() {
    let Some(redis) = redis_server(&[]) else {
        return;
    };
    let kiln = kiln(&[]);
    let battery: &[&[&str]] = &[
        &["SET", "a", "1", "EX", "100"],
        &["SET", "b", "2", "PX", "100000", "NX", "GET"],
        &["SET", "c", "3", "EXAT", "9999999999"],
        &["SET", "d", "4", "KEEPTTL"],
        &["SETEX", "f", "10", "v"],
        &["PSETEX", "g", "10000", "v"],
        &["GETEX", "a", "EX", "50"],
        &["GETEX", "a", "PERSIST"],
        &["EXPIRE", "b", "100", "NX"],
        &["PEXPIREAT", "b", "99999999999999", "GT"],
        &["EXPIREAT", "b", "9999999999"],
        &["EXPIRE", "b", "-1"],
        &["GETDEL", "c"],
        &["INCRBYFLOAT", "n", "1.5"],
        &["HINCRBYFLOAT", "h", "f", "2.5"],
        &["SADD", "s", "a", "b"],
        &["SPOP", "s", "0"],
        &["SPOP", "s", "10"],
        &["RPUSH", "l", "a", "b", "c", "d"],
        &["BLPOP", "l", "0"],
        &["BLMOVE", "l", "l2", "LEFT", "RIGHT", "0"],
        &["BRPOPLPUSH", "l", "l2", "0"],
        &["LMPOP", "1", "l2", "RIGHT", "COUNT", "5"],
        &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
        &["BZPOPMIN", "z", "0"],
        &["BZMPOP", "0", "1", "z", "MAX", "COUNT", "2"],
        &["ZMPOP", "1", "z", "MIN", "COUNT", "9"],
        &["XADD", "st", "1-1", "f", "v"],
        &["XADD", "st", "1-*", "f", "v"],
        &["XADD", "st", "MAXLEN", "~", "10", "2-1", "f", "v"],
        &["XGROUP", "CREATE", "st", "g", "0"],
        &[
            "XCLAIM", "st", "g", "c0", "0", "1-1", "TIME", "1000", "FORCE",
        ],
        &["XDEL", "st", "1-1"],
        &["XCLAIM", "st", "g", "c0", "0", "1-1"],
        &["XTRIM", "st", "MAXLEN", "~", "0"],
        &["SET", "x", "1"],
        &["EXPIRE", "x", "0"],
        &["PUBLISH", "ch", "msg"],
    ];
    let mut streams = Vec::new();
    for port in [redis.port, kiln.port] {
        // Without `capa eof`: `$<length>` and the file, then the stream at once.
        let (mut w, _, stream_at) = raw_full_sync(port, &["psync2"]);
        let mut c = Raw::connect(port);
        assert_eq!(c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), "+OK\r\n");
        for cmd in battery {
            c.cmd(cmd);
        }
        // Keys found expired by a command: their DEL goes with it (in MULTI ... EXEC when
        // the command writes too, as Redis 7.0 does).
        c.cmd(&["SET", "lazy1", "1", "PX", "1"]);
        c.cmd(&["SET", "lazy2", "1", "PX", "1"]);
        std::thread::sleep(Duration::from_millis(20));
        c.cmd(&["INCR", "lazy1"]);
        c.cmd(&["GET", "lazy2"]);
        c.cmd(&["SET", "end", "1"]);
        let end = w.find(stream_at, b"$3\r\nend\r\n$1\r\n1\r\n");
        // Deadlines depend on the clock, pings on timing.
        let text = String::from_utf8_lossy(&w.buf[stream_at..end])
            .replace("*1\r\n$4\r\nping\r\n", "")
            .replace("\r\n", " ");
        let norm: Vec<String> = text
            .split(' ')
            .map(|w| {
                if w.len() == 13 && w.starts_with('1') && w.bytes().all(|b| b.is_ascii_digit()) {
                    "<ms>".to_string()
                } else {
                    w.to_string()
                }
            })
            .collect();
        streams.push(norm.join(" "));
    }
    assert_eq!(streams[1], streams[0]);
}

/// A fake primary for one replica: answers the handshake, recording it.
struct FakePrimary {
    listener: TcpListener,
}

impl FakePrimary {
    fn new() -> Self {
        Self {
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }

    /// Accepts the replica and answers its handshake up to PSYNC; returns the connection,
    /// the commands it sent, and bytes read past them.
    fn handshake(&self) -> (TcpStream, Vec<Vec<String>>) {
        let (mut s, _) = self.listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut seen = Vec::new();
        let mut buf = Vec::new();
        loop {
            let (cmd, used) = loop {
                if let Ok((v, n)) = kiln_resp::decode(&buf) {
                    break (v, n);
                }
                let mut chunk = [0u8; 4096];
                match s.read(&mut chunk) {
                    Ok(0) => panic!("replica closed during the handshake"),
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(_) => {}
                }
            };
            buf.drain(..used);
            let kiln_resp::Value::Array(items) = cmd else {
                panic!("not a command: {cmd:?}")
            };
            let args: Vec<String> = items
                .into_iter()
                .map(|v| match v {
                    kiln_resp::Value::Bulk(b) => String::from_utf8(b).unwrap(),
                    other => panic!("{other:?}"),
                })
                .collect();
            // Each step waits for its reply: nothing else may have been sent yet.
            assert!(buf.is_empty(), "the replica did not wait for a reply");
            let name = args[0].to_ascii_uppercase();
            seen.push(args);
            match name.as_str() {
                "PING" => s.write_all(b"+PONG\r\n").unwrap(),
                "PSYNC" => return (s, seen),
                _ => s.write_all(b"+OK\r\n").unwrap(),
            }
        }
    }
}

/// The smallest RDB: header, EOF, no checksum.
const EMPTY_RDB: &[u8] = b"REDIS0010\xff\0\0\0\0\0\0\0\0";

/// Reads `REPLCONF ACK <n>` commands from the replica until one matches `want`; returns
/// every offset acknowledged on the way.
fn acks_until(s: &mut TcpStream, buf: &mut Vec<u8>, want: u64) -> Vec<u64> {
    let mut acks = Vec::new();
    let deadline = Instant::now() + CONVERGE;
    loop {
        while let Ok((v, n)) = kiln_resp::decode(buf) {
            buf.drain(..n);
            if let kiln_resp::Value::Array(items) = v {
                if let Some(kiln_resp::Value::Bulk(off)) = items.get(2) {
                    let off: u64 = String::from_utf8_lossy(off).parse().unwrap();
                    acks.push(off);
                    if off == want {
                        return acks;
                    }
                }
            }
        }
        assert!(Instant::now() < deadline, "no ACK {want}: {acks:?}");
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) => panic!("replica closed"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    }
}

/// After a full sync in the `$<length>` form the replica sends no ACK of its own accord
/// until its once-a-second tick (as Redis): a GETACK sent right after the load gets the
/// first ACK. Only an EOF-marked snapshot is acknowledged at once.
#[test]
fn after_a_length_prefixed_sync_the_first_ack_answers_getack() {
    let fake = FakePrimary::new();
    let replica = kiln(&["--replicaof", &format!("127.0.0.1 {}", fake.port())]);
    let (mut s, _) = fake.handshake();
    let mut out = format!(
        "+FULLRESYNC {} 100\r\n${}\r\n",
        "a".repeat(40),
        EMPTY_RDB.len()
    )
    .into_bytes();
    out.extend_from_slice(EMPTY_RDB);
    let sent = Instant::now();
    s.write_all(&out).unwrap();
    let mut r = replica.client();
    wait_for("the replica to load the snapshot", || {
        info_field(&mut r, "replication", "master_link_status") == "up"
    });
    let getack = resp(&["REPLCONF", "GETACK", "*"]);
    s.write_all(&getack).unwrap();
    let mut buf = Vec::new();
    // The GETACK's answer, then the tick's (which counts the GETACK): the second cannot
    // come before a second has passed since the link started (which was after `sent`).
    assert_eq!(acks_until(&mut s, &mut buf, 100), vec![100]);
    let after = 100 + getack.len() as u64;
    assert_eq!(acks_until(&mut s, &mut buf, after), vec![after]);
    assert!(
        sent.elapsed() >= Duration::from_millis(990),
        "two ACKs within the first second after a `$<length>` sync"
    );
}

#[test]
fn the_replica_handshakes_step_by_step_and_acknowledges_exact_offsets() {
    let fake = FakePrimary::new();
    let replica = kiln(&[
        "--replicaof",
        &format!("127.0.0.1 {}", fake.port()),
        "--masterauth",
        "secret",
    ]);
    let (mut s, seen) = fake.handshake();
    let port = replica.port.to_string();
    let expected: Vec<Vec<&str>> = vec![
        vec!["PING"],
        vec!["AUTH", "secret"],
        vec!["REPLCONF", "listening-port", &port],
        vec!["REPLCONF", "capa", "eof", "capa", "psync2"],
        vec!["PSYNC", "?", "-1"],
    ];
    assert_eq!(seen, expected);

    // `$<length>`, the file, and stream bytes right behind it in the same write.
    let ping = resp(&["PING"]);
    let set = resp(&["SET", "k", "v"]);
    let getack = resp(&["REPLCONF", "GETACK", "*"]);
    let mut out = format!(
        "+FULLRESYNC {} 100\r\n${}\r\n",
        "a".repeat(40),
        EMPTY_RDB.len()
    )
    .into_bytes();
    out.extend_from_slice(EMPTY_RDB);
    out.extend_from_slice(&ping);
    out.extend_from_slice(&set);
    out.extend_from_slice(&getack);
    s.write_all(&out).unwrap();
    // The GETACK is answered with the offset of everything before it (PING included).
    let before_getack = 100 + (ping.len() + set.len()) as u64;
    let mut buf = Vec::new();
    let acks = acks_until(&mut s, &mut buf, before_getack);
    assert!(
        acks.iter().all(|&a| a == 100 || a == before_getack),
        "{acks:?}"
    );
    // The next one counts the GETACK answered before.
    s.write_all(&getack).unwrap();
    let after = before_getack + getack.len() as u64;
    let acks = acks_until(&mut s, &mut buf, after);
    assert!(
        acks.iter().all(|&a| a == before_getack || a == after),
        "{acks:?}"
    );

    let mut r = replica.client();
    let v: String = redis::cmd("GET").arg("k").query(&mut r).unwrap();
    assert_eq!(v, "v");
    // The second GETACK counts once processed.
    let after = after + getack.len() as u64;
    wait_for("the offset to count the last GETACK", || {
        info_field(&mut r, "replication", "slave_repl_offset") == after.to_string()
    });
    assert_eq!(
        info_field(&mut r, "replication", "master_replid"),
        "a".repeat(40)
    );
    // The primary's client shows in CLIENT LIST as flags=M; killing it reconnects with
    // PSYNC from the offset reached.
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut r).unwrap();
    assert!(list.contains("flags=M"), "{list}");
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("master")
        .query::<()>(&mut r)
        .unwrap();
    let (mut s, seen) = fake.handshake();
    assert_eq!(
        seen.last().unwrap(),
        &vec!["PSYNC".to_string(), "a".repeat(40), (after + 1).to_string()]
    );
    s.write_all(b"+CONTINUE\r\n").unwrap();
    s.write_all(&resp(&["SET", "k", "w"])).unwrap();
    wait_for("the stream after CONTINUE", || {
        redis::cmd("GET").arg("k").query::<String>(&mut r).unwrap() == "w"
    });
}

#[test]
fn the_replica_loads_an_eof_marked_snapshot_followed_by_the_stream() {
    let fake = FakePrimary::new();
    let replica = kiln(&["--replicaof", &format!("127.0.0.1 {}", fake.port())]);
    let (mut s, _) = fake.handshake();
    let mark = "0123456789abcdef0123456789abcdef01234567";
    // Keep-alive newlines may precede the payload.
    let mut out = format!("+FULLRESYNC {} 7\r\n\n\n$EOF:{mark}\r\n", "b".repeat(40)).into_bytes();
    out.extend_from_slice(EMPTY_RDB);
    out.extend_from_slice(mark.as_bytes());
    let set = resp(&["SET", "x", "y"]);
    out.extend_from_slice(&set);
    // Split awkwardly: the marker straddles two writes.
    let cut = out.len() - set.len() - 20;
    s.write_all(&out[..cut]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&out[cut..]).unwrap();
    let mut r = replica.client();
    // (-LOADING while the snapshot loads.)
    wait_for("the key from the stream", || {
        redis::cmd("GET")
            .arg("x")
            .query::<Option<String>>(&mut r)
            .ok()
            .flatten()
            == Some("y".into())
    });
    let mut buf = Vec::new();
    acks_until(&mut s, &mut buf, 7 + set.len() as u64);
}

#[test]
fn a_transaction_split_across_reads_counts_only_once_applied_and_survives_a_link_loss() {
    let fake = FakePrimary::new();
    let replica = kiln(&["--replicaof", &format!("127.0.0.1 {}", fake.port())]);
    let (mut s, _) = fake.handshake();
    let id = "c".repeat(40);
    let mut out = format!("+FULLRESYNC {id} 1000\r\n${}\r\n", EMPTY_RDB.len()).into_bytes();
    out.extend_from_slice(EMPTY_RDB);
    let first = resp(&["SET", "a", "1"]);
    out.extend_from_slice(&first);
    s.write_all(&out).unwrap();
    let mut r = replica.client();
    let applied = 1000 + first.len() as u64;
    wait_for("the first write", || {
        info_field(&mut r, "replication", "slave_repl_offset") == applied.to_string()
    });

    // Forget the ACKs sent so far.
    let mut buf = Vec::new();
    s.set_nonblocking(true).unwrap();
    let mut chunk = [0u8; 4096];
    while s.read(&mut chunk).is_ok_and(|n| n > 0) {}
    s.set_nonblocking(false).unwrap();

    // The primary's transaction arrives without its EXEC: queued, not applied.
    let multi = resp(&["MULTI"]);
    let set = resp(&["SET", "t", "x"]);
    let mut part = multi.clone();
    part.extend_from_slice(&set);
    s.write_all(&part).unwrap();
    let read = applied + part.len() as u64;
    wait_for("the partial transaction to be read", || {
        info_field(&mut r, "replication", "slave_read_repl_offset") == read.to_string()
    });
    assert_eq!(
        info_field(&mut r, "replication", "slave_repl_offset"),
        applied.to_string()
    );
    let role: redis::Value = redis::cmd("ROLE").query(&mut r).unwrap();
    let redis::Value::Array(items) = role else {
        panic!("{role:?}")
    };
    assert_eq!(items[4], redis::Value::Int(applied as i64));
    // The ACKs sent every second acknowledge only what is applied (the first one read may
    // predate the transaction; the later ones follow it).
    let mut acks = Vec::new();
    while acks.len() < 3 {
        acks.extend(acks_until(&mut s, &mut buf, applied));
    }
    assert!(acks.iter().all(|&a| a == applied), "{acks:?}");
    let t: Option<String> = redis::cmd("GET").arg("t").query(&mut r).unwrap();
    assert_eq!(t, None);

    // The link drops there: the replica continues from the MULTI, so the primary sends
    // the whole transaction again.
    drop(s);
    let (mut s, seen) = fake.handshake();
    assert_eq!(
        seen.last().unwrap(),
        &vec!["PSYNC".to_string(), id.clone(), (applied + 1).to_string()]
    );
    s.write_all(b"+CONTINUE\r\n").unwrap();
    let exec = resp(&["EXEC"]);
    let mut again = part.clone();
    again.extend_from_slice(&exec);
    s.write_all(&again).unwrap();
    let done = applied + again.len() as u64;
    wait_for("the transaction to be applied", || {
        info_field(&mut r, "replication", "slave_repl_offset") == done.to_string()
    });
    let t: Option<String> = redis::cmd("GET").arg("t").query(&mut r).unwrap();
    assert_eq!(t.as_deref(), Some("x"));
    let mut buf = Vec::new();
    acks_until(&mut s, &mut buf, done);
}

/// A replica authenticates to its primary as an ACL user (`masteruser`, `masterauth`)
/// allowed only what replication needs: Kiln or Redis on either side.
#[test]
fn replicas_authenticate_as_an_acl_user_with_only_the_replication_commands() {
    let user = [
        "--requirepass",
        "adminpw",
        "--user",
        "repl",
        "on",
        ">rp",
        "+psync",
        "+replconf",
        "+ping",
    ];
    let auth = ["--masteruser", "repl", "--masterauth", "rp"];
    let login = |c: &mut Connection| {
        redis::cmd("AUTH").arg("adminpw").query::<()>(c).unwrap();
    };
    // Kiln primary: a Kiln replica, then a Redis one.
    let primary = kiln(&user);
    let mut p = primary.client();
    login(&mut p);
    write_load(&mut p, 0);
    let replica = kiln_replica_of(primary.port, &auth);
    let mut r = replica.client();
    wait_same_digest(&mut p, &mut r);
    let target = format!("127.0.0.1 {}", primary.port);
    let mut args = vec!["--replicaof", target.as_str()];
    args.extend_from_slice(&auth);
    if let Some(redis_replica) = redis_server(&args) {
        let mut rr = redis_replica.client();
        write_load(&mut p, 1);
        wait_same_digest(&mut p, &mut rr);
    }
    // Redis primary, Kiln replica.
    let Some(redis_primary) = redis_server(&user) else {
        return;
    };
    let mut p = redis_primary.client();
    login(&mut p);
    write_load(&mut p, 0);
    let replica = kiln_replica_of(redis_primary.port, &auth);
    let mut r = replica.client();
    wait_same_digest(&mut p, &mut r);
}

/// DEBUG REPLICATE sends a command to the replicas without running it on the primary (a
/// test hook that makes them diverge on purpose); a replica's own DEBUG REPLICATE sends
/// nothing down its chain, since it proxies its primary's stream.
#[test]
fn debug_replicate_reaches_the_replica_only() {
    let primary = kiln(&[]);
    let mut p = primary.client();
    let replica = kiln_replica_of(primary.port, &[]);
    let mut r = replica.client();
    let sub = kiln_replica_of(replica.port, &[]);
    let mut s = sub.client();
    wait_synced(&mut p, &mut r);
    wait_synced(&mut r, &mut s);
    let ok: String = redis::cmd("DEBUG")
        .arg("REPLICATE")
        .arg("SET")
        .arg("diverged")
        .arg("yes")
        .query(&mut p)
        .unwrap();
    assert_eq!(ok, "OK");
    wait_for("the replicated command on the replica", || {
        redis::cmd("EXISTS")
            .arg("diverged")
            .query::<i64>(&mut r)
            .unwrap()
            == 1
    });
    let on_primary: i64 = redis::cmd("EXISTS").arg("diverged").query(&mut p).unwrap();
    assert_eq!(on_primary, 0);
    // The replica passes its primary's stream on.
    wait_synced(&mut r, &mut s);
    let v: String = redis::cmd("GET").arg("diverged").query(&mut s).unwrap();
    assert_eq!(v, "yes");
    // The replica's own DEBUG REPLICATE adds nothing to that stream.
    let _: String = redis::cmd("DEBUG")
        .arg("REPLICATE")
        .arg("SET")
        .arg("from-replica")
        .arg("1")
        .query(&mut r)
        .unwrap();
    let _: () = redis::cmd("SET").arg("after").arg(1).query(&mut p).unwrap();
    wait_synced(&mut p, &mut r);
    wait_synced(&mut r, &mut s);
    let exists: i64 = redis::cmd("EXISTS")
        .arg("from-replica")
        .query(&mut s)
        .unwrap();
    assert_eq!(exists, 0);
}
