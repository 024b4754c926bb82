//! Lua scripting: atomicity across threads, long scripts (BUSY, SCRIPT KILL), and what
//! scripts propagate. Replies and error texts are in tests/diff/scripting/.

mod support;

use std::thread;
use support::{wait_until, TestServer};

/// Moves one unit from a declared key to a key the script builds itself (undeclared), and
/// back, while plain INCRBY/DECRBY pairs run: the total never changes, and every script's
/// read-modify-write is atomic (no lost update).
#[test]
fn scripts_are_atomic_across_threads_with_declared_and_undeclared_keys() {
    let s = TestServer::kiln(&["--threads", "4"]);
    let mut c = s.raw();
    const KEYS: usize = 8;
    for i in 0..KEYS {
        assert_eq!(c.cmd(&["SET", &format!("acct:{i}"), "1000"]), "+OK\r\n");
    }
    // Reads both balances, then writes both: a lost update would break the sum.
    let transfer = "local from = tonumber(redis.call('GET', KEYS[1])) \
                    local to = 'acct:' .. ARGV[1] \
                    local b = tonumber(redis.call('GET', to)) \
                    redis.call('SET', KEYS[1], from - 1) \
                    redis.call('SET', to, b + 1) \
                    return from - 1";
    let sha = c.cmd(&["SCRIPT", "LOAD", transfer]);
    let sha = sha.lines().nth(1).unwrap().to_string();
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let port = s.port;
            let sha = sha.clone();
            thread::spawn(move || {
                let mut c = support::Raw::connect(port);
                for n in 0..300 {
                    let a = (w + n) % KEYS;
                    let b = (w * 3 + n * 7 + 1) % KEYS;
                    if w % 3 == 2 {
                        // Plain commands next to the scripts.
                        let r = c.cmd(&["INCRBY", &format!("acct:{a}"), "5"]);
                        assert!(r.starts_with(':'), "{r}");
                        let r = c.cmd(&["DECRBY", &format!("acct:{a}"), "5"]);
                        assert!(r.starts_with(':'), "{r}");
                    } else {
                        let r =
                            c.cmd(&["EVALSHA", &sha, "1", &format!("acct:{a}"), &b.to_string()]);
                        assert!(r.starts_with(':'), "{r}");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut total = 0i64;
    for i in 0..KEYS {
        let r = c.cmd(&["GET", &format!("acct:{i}")]);
        total += r.lines().nth(1).unwrap().parse::<i64>().unwrap();
    }
    assert_eq!(total, 1000 * KEYS as i64);
}

/// A script past busy-reply-threshold makes other clients' commands fail with BUSY (keyed
/// ones and others alike); SCRIPT KILL stops it; the server serves everyone afterwards.
#[test]
fn a_long_script_answers_busy_and_script_kill_stops_it() {
    let s = TestServer::kiln(&["--busy-reply-threshold", "50"]);
    let mut c = s.raw();
    let mut other = s.raw();
    assert_eq!(c.cmd(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(
        other.cmd(&["SCRIPT", "KILL"]),
        "-NOTBUSY No scripts in execution right now.\r\n"
    );
    c.send_cmd(&[
        "EVAL",
        "local x = redis.call('get', 'k') while true do end",
        "0",
    ]);
    wait_until("the script to be reported busy", || {
        other.cmd(&["PING"]).starts_with("-BUSY")
    });
    assert_eq!(
        other.cmd(&["GET", "k"]),
        "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
    );
    assert_eq!(other.cmd(&["SCRIPT", "KILL"]), "+OK\r\n");
    let reply = String::from_utf8(c.read_reply().unwrap()).unwrap();
    assert!(
        reply.starts_with("-ERR Script killed by user with SCRIPT KILL..."),
        "{reply}"
    );
    assert_eq!(other.cmd(&["GET", "k"]), "$1\r\nv\r\n");
    assert_eq!(c.cmd(&["PING"]), "+PONG\r\n");
}

/// While a script is busy, SHUTDOWN answers BUSY and SHUTDOWN NOSAVE stops the server.
#[test]
fn shutdown_nosave_stops_a_server_running_a_busy_script() {
    let mut s = TestServer::kiln(&["--busy-reply-threshold", "50"]);
    let mut c = s.raw();
    let mut other = s.raw();
    c.send_cmd(&["EVAL", "while true do end", "0"]);
    wait_until("the script to be reported busy", || {
        other.cmd(&["PING"]).starts_with("-BUSY")
    });
    assert!(other.cmd(&["SHUTDOWN"]).starts_with("-BUSY"));
    other.send_cmd(&["SHUTDOWN", "NOSAVE"]);
    assert!(
        s.wait_exit(std::time::Duration::from_secs(30)).is_some(),
        "the server did not exit"
    );
}

/// A script that wrote cannot be killed: SCRIPT KILL answers UNKILLABLE, and only
/// SHUTDOWN NOSAVE ends it. The script never ends by itself, so nothing here races a clock.
#[test]
fn a_script_that_wrote_is_unkillable() {
    let mut s = TestServer::kiln(&["--busy-reply-threshold", "50"]);
    let mut c = s.raw();
    let mut other = s.raw();
    c.send_cmd(&["EVAL", "redis.call('set', 'w', '1') while true do end", "0"]);
    wait_until("the script to be reported busy", || {
        other.cmd(&["PING"]).starts_with("-BUSY")
    });
    let r = other.cmd(&["SCRIPT", "KILL"]);
    assert!(
        r.starts_with("-UNKILLABLE Sorry the script already executed write commands"),
        "{r}"
    );
    // Still running: the kill was refused.
    assert!(other.cmd(&["GET", "w"]).starts_with("-BUSY"));
    other.send_cmd(&["SHUTDOWN", "NOSAVE"]);
    assert!(
        s.wait_exit(std::time::Duration::from_secs(30)).is_some(),
        "the server did not exit"
    );
}

/// A script's writes reach a replica as its effects (one MULTI/EXEC), so the replica ends
/// equal to the primary even for a script whose result depends on when it ran.
#[test]
fn script_effects_reach_a_replica() {
    let primary = TestServer::kiln(support::DEBUG_ON);
    let replica = TestServer::kiln(support::DEBUG_ON);
    let mut p = primary.raw();
    let mut r = replica.raw();
    assert_eq!(
        r.cmd(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]),
        "+OK\r\n"
    );
    r.wait_info("replication", "master_link_status", "up");
    let script = "redis.call('set', KEYS[1], redis.call('time')[1]) \
                  redis.call('incr', 'counter') \
                  redis.call('lpush', 'list', 'a', 'b') return 1";
    for _ in 0..3 {
        assert_eq!(p.cmd(&["EVAL", script, "1", "stamp"]), ":1\r\n");
    }
    assert_eq!(
        p.cmd(&["EVAL", "return redis.call('get', 'counter')", "0"]),
        "$1\r\n3\r\n"
    );
    let target = p.cmd(&["DEBUG", "DIGEST"]);
    assert!(!target.starts_with('-'), "{target}");
    wait_until("the replica to match the primary", || {
        r.cmd(&["DEBUG", "DIGEST"]) == target
    });
    assert_eq!(r.cmd(&["LLEN", "list"]), ":6\r\n");
}

/// On a read-only replica, scripts read; a write inside one fails with READONLY, and a
/// script whose flags allow writes is refused before it runs (texts from redis-server
/// 7.0.15).
#[test]
fn scripts_on_a_read_only_replica() {
    let primary = TestServer::kiln(&[]);
    let replica = TestServer::kiln(&[]);
    let mut p = primary.raw();
    let mut r = replica.raw();
    assert_eq!(p.cmd(&["SET", "a", "1"]), "+OK\r\n");
    assert_eq!(
        r.cmd(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]),
        "+OK\r\n"
    );
    r.wait_info("replication", "master_link_status", "up");
    wait_until("the key to reach the replica", || {
        r.cmd(&["GET", "a"]) == "$1\r\n1\r\n"
    });
    assert_eq!(
        r.cmd(&["EVAL", "return redis.call('set','a','b')", "0"]),
        "-READONLY You can't write against a read only replica. script: ff967d0ae0e68b4f9e360fa91c54598bc25ad9b6, on @user_script:1.\r\n"
    );
    assert_eq!(
        r.cmd(&["EVAL", "return redis.call('get','a')", "0"]),
        "$1\r\n1\r\n"
    );
    assert_eq!(
        r.cmd(&["EVAL", "#!lua\nreturn redis.call('get','a')", "0"]),
        "-READONLY You can't write against a read only replica.\r\n"
    );
    assert_eq!(
        r.cmd(&[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('get','a')",
            "0"
        ]),
        "$1\r\n1\r\n"
    );
    assert_eq!(
        r.cmd(&["EVAL", "return redis.pcall('set','a','b')", "0"]),
        "-READONLY You can't write against a read only replica.\r\n"
    );
    // Functions reach the replica, and only those flagged no-writes run there.
    let lib = "#!lua name=rl\nredis.register_function('w', function() return 1 end)\n\
               redis.register_function{function_name='r', callback=function() return 2 end, flags={'no-writes'}}";
    assert_eq!(p.cmd(&["FUNCTION", "LOAD", lib]), "$2\r\nrl\r\n");
    wait_until("the library to reach the replica", || {
        r.cmd(&["FCALL", "r", "0"]) == ":2\r\n"
    });
    assert_eq!(
        r.cmd(&["FCALL", "w", "0"]),
        "-READONLY You can't write against a read only replica.\r\n"
    );
}

/// The id of a connection (CLIENT ID) and a wait until CLIENT LIST shows it running `cmd`
/// (a script that cannot end before the test lets it: it is running, or waiting for locks).
fn client_id(c: &mut support::Raw) -> String {
    c.cmd(&["CLIENT", "ID"])
        .trim_start_matches(':')
        .trim()
        .to_string()
}

fn wait_running(admin: &mut support::Raw, id: &str, cmd: &str) {
    let want = format!("id={id} ");
    let running = format!("cmd={cmd} ");
    wait_until("the script to run", || {
        let list = admin.cmd(&["CLIENT", "LIST"]);
        list.lines()
            .any(|l| l.starts_with(&want) && l.contains(&running))
    });
}

/// A script runs beside commands and scripts on other keys (declared keys, disjoint): while
/// one waits, holding its key, until a client subscribes, other clients' commands and
/// scripts are served. Were the script alone in the server, they would wait for it, and it
/// for them (they would get -BUSY after the threshold).
#[test]
fn scripts_on_disjoint_keys_run_beside_each_other() {
    let s = TestServer::kiln(&["--threads", "4", "--busy-reply-threshold", "60000"]);
    let (mut a, mut c, mut admin) = (s.raw(), s.raw(), s.raw());
    let id = client_id(&mut a);
    a.send_cmd(&[
        "EVAL",
        "redis.call('SET', KEYS[1], 'mine') \
         while redis.call('PUBSUB', 'NUMSUB', 'go')[2] == 0 do end \
         return redis.call('GET', KEYS[1])",
        "1",
        "held",
    ]);
    wait_running(&mut admin, &id, "eval");
    assert_eq!(c.cmd(&["SET", "other", "1"]), "+OK\r\n");
    assert_eq!(
        c.cmd(&["EVAL", "return redis.call('INCR', KEYS[1])", "1", "other"]),
        ":2\r\n"
    );
    // A key the script did not declare, on a free shard, too.
    assert_eq!(
        c.cmd(&["EVAL", "return redis.call('INCR', ARGV[1])", "0", "other"]),
        ":3\r\n"
    );
    let mut sub = s.raw();
    sub.cmd(&["SUBSCRIBE", "go"]);
    assert_eq!(a.read_reply().unwrap(), b"$4\r\nmine\r\n");
    assert_eq!(admin.cmd(&["GET", "held"]), "$4\r\nmine\r\n");
}

/// A script that finds a key it did not declare held by another script (after writing its
/// own keys) is undone and runs again once the other ends: every write lands exactly once.
/// Whether it waits or rolls back depends on where the keys' shards fall; with twenty
/// declared keys it nearly always rolls back.
#[test]
fn a_script_meeting_a_busy_undeclared_key_runs_again_alone() {
    let s = TestServer::kiln(&["--threads", "4", "--busy-reply-threshold", "60000"]);
    let (mut holder, mut mover, mut admin) = (s.raw(), s.raw(), s.raw());
    let id = client_id(&mut holder);
    holder.send_cmd(&[
        "EVAL",
        "redis.call('INCR', KEYS[1]) \
         while redis.call('PUBSUB', 'NUMSUB', 'go')[2] == 0 do end \
         return 1",
        "1",
        "u",
    ]);
    wait_running(&mut admin, &id, "eval");
    // Running is not enough: the holder must have written `u` (its INCR counted, which
    // reading INFO learns without waiting for the key's shard).
    wait_until("the holder's INCR", || {
        admin
            .cmd(&["INFO", "commandstats"])
            .contains("cmdstat_incr:calls=1,")
    });
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let mut cmd = vec![
        "EVAL",
        "for i = 1, #KEYS do redis.call('INCR', KEYS[i]) end \
         return redis.call('INCR', ARGV[1])",
        "20",
    ];
    cmd.extend(keys.iter().map(|k| k.as_str()));
    cmd.push("u");
    mover.send_cmd(&cmd);
    let mut sub = s.raw();
    sub.cmd(&["SUBSCRIBE", "go"]);
    assert_eq!(holder.read_reply().unwrap(), b":1\r\n");
    assert_eq!(mover.read_reply().unwrap(), b":2\r\n");
    for k in &keys {
        assert_eq!(admin.cmd(&["GET", k]), "$1\r\n1\r\n", "{k}");
    }
}

/// A script's writes invalidate WATCHes on them (once it has run); its reads do not.
#[test]
fn a_script_invalidates_the_watches_of_the_keys_it_writes() {
    let s = TestServer::kiln(&[]);
    let (mut w, mut c) = (s.raw(), s.raw());
    for (key, script, aborted) in [
        ("r", "return redis.call('GET', KEYS[1])", false),
        ("x", "return redis.call('SET', KEYS[1], 'v')", true),
        ("y", "return redis.call('SET', ARGV[1], 'v')", true),
    ] {
        assert_eq!(w.cmd(&["WATCH", key]), "+OK\r\n");
        let n = if script.contains("ARGV") { "0" } else { "1" };
        let r = c.cmd(&["EVAL", script, n, key]);
        assert!(!r.starts_with('-'), "{r}");
        assert_eq!(w.cmd(&["MULTI"]), "+OK\r\n");
        assert_eq!(w.cmd(&["PING"]), "+QUEUED\r\n");
        let exec = w.cmd(&["EXEC"]);
        if aborted {
            assert_eq!(exec, "*-1\r\n", "{key}");
        } else {
            assert_eq!(exec, "*1\r\n+PONG\r\n", "{key}");
        }
    }
}

/// `redis.set_repl` picks where the writes after it go: nowhere, the AOF, replicas, or
/// both (what the primary's AOF holds, and what its replica receives).
#[test]
fn set_repl_chooses_where_a_scripts_writes_go() {
    let primary = TestServer::kiln(&["--appendonly", "yes", "--appendfsync", "always"]);
    let replica = TestServer::kiln(&[]);
    let mut r = replica.raw();
    assert_eq!(
        r.cmd(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]),
        "+OK\r\n"
    );
    r.wait_info("replication", "master_link_status", "up");
    let script = "redis.set_repl(redis.REPL_NONE) redis.call('set', 'none', '1') \
                  redis.set_repl(redis.REPL_AOF) redis.call('set', 'aof', '1') \
                  redis.set_repl(redis.REPL_REPLICA) redis.call('set', 'rep', '1') \
                  redis.set_repl(redis.REPL_ALL) redis.call('set', 'all', '1') \
                  return 1";
    assert_eq!(primary.raw().cmd(&["EVAL", script, "0"]), ":1\r\n");
    wait_until("the script's last write to reach the replica", || {
        r.cmd(&["GET", "all"]) == "$1\r\n1\r\n"
    });
    let names = ["none", "aof", "rep", "all"];
    let on_replica: Vec<bool> = names
        .iter()
        .map(|k| r.cmd(&["EXISTS", k]) == ":1\r\n")
        .collect();
    assert_eq!(on_replica, [false, false, true, true]);
    // appendfsync always: the file holds the writes once the reply came.
    let mut aof = String::new();
    for f in std::fs::read_dir(primary.dir.join("appendonlydir")).unwrap() {
        let path = f.unwrap().path();
        if path.to_string_lossy().ends_with(".incr.aof") {
            aof += &String::from_utf8_lossy(&std::fs::read(path).unwrap());
        }
    }
    let in_aof: Vec<bool> = names
        .iter()
        .map(|k| aof.contains(&format!("$3\r\nset\r\n${}\r\n{k}\r\n", k.len())))
        .collect();
    assert_eq!(in_aof, [false, true, false, true], "{aof:?}");
}
