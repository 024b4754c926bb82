//! Black-box tests of what blocked clients are answered when the key they wait on changes in
//! ways other than receiving data: a BLMOVE whose destination holds another type, a stream
//! deleted, replaced or flushed under XREADGROUP, a group destroyed, SWAPDB bringing data
//! into a waiter's database, and a WATCH on the destination of a served BLMOVE. Each scenario
//! runs on Kiln and on redis-server (when installed) with the same connections in the same
//! order, and both transcripts must equal the expected one.

mod support;

use support::{Raw, TestServer};

/// The CLIENT LIST line of the connection `c` (found by its address), once it has one.
fn client_line(admin: &mut Raw, c: &Raw) -> Option<String> {
    let addr = format!("addr={} ", c.stream.local_addr().unwrap());
    let list = admin.cmd(&["CLIENT", "LIST"]);
    list.lines().find(|l| l.contains(&addr)).map(str::to_string)
}

/// Polls CLIENT LIST until `c` is blocked (never sleeps on the assumption that it is).
fn wait_blocked(admin: &mut Raw, c: &Raw) {
    for _ in 0..1000 {
        let line = client_line(admin, c).unwrap_or_default();
        let flags = line.split(' ').find_map(|f| f.strip_prefix("flags="));
        if flags.is_some_and(|f| f.contains('b')) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the client never blocked");
}

/// Runs a scenario and returns every reply it read, as raw RESP text. Lines:
/// * `CMD`: on connection 0, its reply recorded;
/// * `N: CMD`: on connection N, its reply recorded;
/// * `&N CMD`: sent on connection N, which must then block (CLIENT LIST is polled until it
///   does);
/// * `<N`: the reply connection N got, recorded;
/// * `?N`: whether connection N is still blocked: CLIENT UNBLOCK's answer, recorded, and
///   the error that ends its block.
fn transcript(s: &TestServer, script: &str) -> Vec<String> {
    let mut conns: Vec<Raw> = (0..4).map(|_| s.raw()).collect();
    let mut admin = s.raw();
    let mut got = Vec::new();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let conn = |l: &str| -> usize { l.parse().unwrap() };
        if let Some(rest) = line.strip_prefix('&') {
            let (n, cmd) = rest.split_once(' ').unwrap();
            let n = conn(n);
            conns[n].send_cmd(&support::split_line(cmd));
            wait_blocked(&mut admin, &conns[n]);
        } else if let Some(n) = line.strip_prefix('<') {
            got.push(text(conns[conn(n)].read_reply().unwrap()));
        } else if let Some(n) = line.strip_prefix('?') {
            let n = conn(n);
            let line = client_line(&mut admin, &conns[n]).expect("a connection that ran a command");
            let id = line.split(' ').next().and_then(|f| f.strip_prefix("id="));
            let answer = admin.cmd(&["CLIENT", "UNBLOCK", id.unwrap(), "ERROR"]);
            if answer == ":1\r\n" {
                got.push(format!(
                    "blocked, then {}",
                    text(conns[n].read_reply().unwrap())
                ));
            } else {
                got.push(format!("not blocked: {answer}"));
            }
        } else {
            let (n, cmd) = match line.split_once(": ") {
                Some((n, cmd)) if n.parse::<usize>().is_ok() => (conn(n), cmd),
                _ => (0, line),
            };
            got.push(conns[n].cmd(&support::split_line(cmd)));
        }
    }
    got
}

/// Runs `script` on Kiln and on redis-server and checks both against `expected`.
fn check(script: &str, expected: &[&str]) {
    let kiln = TestServer::kiln(&[]);
    assert_eq!(transcript(&kiln, script), expected, "kiln");
    if let Some(redis) = TestServer::redis(&[]) {
        assert_eq!(transcript(&redis, script), expected, "redis-server");
    }
}

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
const STILL_BLOCKED: &str = "blocked, then -UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n";
const STREAM_GONE: &str = "-UNBLOCKED the stream key no longer exists\r\n";
const GROUP_GONE: &str =
    "-NOGROUP the consumer group this client was blocked on no longer exists\r\n";

#[test]
fn a_move_into_a_key_of_another_type_answers_wrongtype_and_the_next_waiter_is_served() {
    check(
        "SET target nolist
         &1 BRPOPLPUSH blist target 0
         &2 BRPOP blist 0
         &3 BLMOVE blist target LEFT RIGHT 0
         RPUSH blist foo
         <1
         <2
         ?3
         LRANGE blist 0 -1",
        &[
            "+OK\r\n",
            ":1\r\n",
            WRONGTYPE,
            "*2\r\n$5\r\nblist\r\n$3\r\nfoo\r\n",
            STILL_BLOCKED,
            "*0\r\n",
        ],
    );
    // Both movers answered, the element left where it was.
    check(
        "SET target nolist
         &1 BLMOVE blist target LEFT RIGHT 0
         &2 BRPOPLPUSH blist target 0
         RPUSH blist foo
         <1
         <2
         LRANGE blist 0 -1",
        &[
            "+OK\r\n",
            ":1\r\n",
            WRONGTYPE,
            WRONGTYPE,
            "*1\r\n$3\r\nfoo\r\n",
        ],
    );
}

#[test]
fn a_waiter_of_another_type_does_not_hold_up_the_waiters_behind_it() {
    check(
        "&1 BZPOPMIN k 0
         &2 BLPOP k 0
         RPUSH k a
         <2
         ?1",
        &[":1\r\n", "*2\r\n$1\r\nk\r\n$1\r\na\r\n", STILL_BLOCKED],
    );
    // A reader whose ID is ahead keeps waiting; the one behind it is served.
    check(
        "XADD s 1-0 f v
         &1 XREAD BLOCK 0 STREAMS s 5-0
         &2 XREAD BLOCK 0 STREAMS s 1-0
         XADD s 2-0 f v
         <2
         ?1",
        &[
            "$3\r\n1-0\r\n",
            "$3\r\n2-0\r\n",
            "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
            STILL_BLOCKED,
        ],
    );
}

/// A group reader (connection 1) and a plain reader (connection 2) blocked on `mystream`,
/// then `change`: the group reader gets `answer`, the plain reader keeps waiting.
fn stream_change(change: &str, replies: &[&str], answer: &str) {
    let script = format!(
        "XGROUP CREATE mystream g $ MKSTREAM
         &1 XREADGROUP GROUP g c BLOCK 0 STREAMS mystream >
         &2 XREAD BLOCK 0 STREAMS mystream $
         {change}
         <1
         ?2"
    );
    let mut expected = vec!["+OK\r\n"];
    expected.extend_from_slice(replies);
    expected.extend([answer, STILL_BLOCKED]);
    check(&script, &expected);
}

#[test]
fn a_group_reader_is_unblocked_when_its_stream_goes() {
    stream_change("DEL mystream", &[":1\r\n"], STREAM_GONE);
    stream_change("UNLINK mystream", &[":1\r\n"], STREAM_GONE);
    stream_change("SET mystream x", &["+OK\r\n"], STREAM_GONE);
    stream_change("FLUSHALL", &["+OK\r\n"], STREAM_GONE);
    stream_change("FLUSHDB", &["+OK\r\n"], STREAM_GONE);
    stream_change("FLUSHALL ASYNC", &["+OK\r\n"], STREAM_GONE);
    stream_change("SWAPDB 0 1", &["+OK\r\n"], STREAM_GONE);
    stream_change("MOVE mystream 1", &[":1\r\n"], STREAM_GONE);
    stream_change("RENAME mystream other", &["+OK\r\n"], STREAM_GONE);
    stream_change(
        "MULTI
         DEL mystream
         SADD mystream m
         EXEC",
        &[
            "+OK\r\n",
            "+QUEUED\r\n",
            "+QUEUED\r\n",
            "*2\r\n:1\r\n:1\r\n",
        ],
        STREAM_GONE,
    );
    // Expired, by the active expiry cycle (nobody touches the key).
    stream_change("PEXPIRE mystream 1", &[":1\r\n"], STREAM_GONE);
}

#[test]
fn a_group_reader_gets_nogroup_when_its_group_goes() {
    stream_change("XGROUP DESTROY mystream g", &[":1\r\n"], GROUP_GONE);
    // Recreated as a stream without the group: the plain reader gets the new entry.
    check(
        "XGROUP CREATE mystream g $ MKSTREAM
         &1 XREADGROUP GROUP g c BLOCK 0 STREAMS mystream >
         &2 XREAD BLOCK 0 STREAMS mystream $
         MULTI
         DEL mystream
         XADD mystream 1-1 f v
         EXEC
         <1
         <2",
        &[
            "+OK\r\n",
            "+OK\r\n",
            "+QUEUED\r\n",
            "+QUEUED\r\n",
            "*2\r\n:1\r\n$3\r\n1-1\r\n",
            GROUP_GONE,
            "*1\r\n*2\r\n$8\r\nmystream\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
        ],
    );
}

#[test]
fn swapdb_serves_the_waiters_of_the_keys_it_brings_in() {
    check(
        "1: SELECT 9
         &1 BRPOP k 0
         2: SELECT 9
         &2 BZPOPMIN z 0
         3: SELECT 9
         &3 XREAD BLOCK 0 STREAMS s 0-0
         SELECT 1
         RPUSH k a
         ZADD z 1 m
         XADD s 1-0 f v
         SWAPDB 1 9
         <1
         <2
         <3",
        &[
            "+OK\r\n",
            "+OK\r\n",
            "+OK\r\n",
            "+OK\r\n",
            ":1\r\n",
            ":1\r\n",
            "$3\r\n1-0\r\n",
            "+OK\r\n",
            "*2\r\n$1\r\nk\r\n$1\r\na\r\n",
            "*3\r\n$1\r\nz\r\n$1\r\nm\r\n$1\r\n1\r\n",
            "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
        ],
    );
}

#[test]
fn a_served_move_invalidates_a_watch_on_its_destination() {
    for mover in ["BLMOVE src dst LEFT RIGHT 0", "BRPOPLPUSH src dst 0"] {
        check(
            &format!(
                "&1 {mover}
                 2: WATCH dst
                 RPUSH src a
                 <1
                 2: MULTI
                 2: LLEN dst
                 2: EXEC"
            ),
            &[
                "+OK\r\n",
                ":1\r\n",
                "$1\r\na\r\n",
                "+OK\r\n",
                "+QUEUED\r\n",
                "*-1\r\n",
            ],
        );
    }
}

/// INFO's `blocked_clients` drops a client the moment it is served or unblocked (by the
/// command that did it, as Redis counts it), not once its connection has caught up.
#[test]
fn a_served_or_unblocked_client_stops_counting_as_blocked_at_once() {
    let blocked = |c: &mut Raw| -> String {
        let info = c.cmd(&["INFO", "clients"]);
        info.lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .unwrap()
            .trim()
            .to_string()
    };
    let run = |s: &TestServer| -> Vec<String> {
        let (mut a, mut b) = (s.raw(), s.raw());
        let mut got = Vec::new();
        a.send_cmd(&["BLPOP", "k", "0"]);
        wait_blocked(&mut b, &a);
        got.push(blocked(&mut b));
        // Pipelined: INFO runs right after the push, on the pusher's connection.
        b.send(b"RPUSH k v\r\nINFO clients\r\n");
        got.push(String::from_utf8(b.read_reply().unwrap()).unwrap());
        let info = String::from_utf8(b.read_reply().unwrap()).unwrap();
        got.push(info.contains("\r\nblocked_clients:0\r\n").to_string());
        got.push(String::from_utf8(a.read_reply().unwrap()).unwrap());
        // CLIENT UNBLOCK, the same way.
        let id = a.cmd(&["CLIENT", "ID"]);
        let id = id.trim_start_matches(':').trim().to_string();
        a.send_cmd(&["BLPOP", "k", "0"]);
        wait_blocked(&mut b, &a);
        b.send(format!("CLIENT UNBLOCK {id}\r\nINFO clients\r\n").as_bytes());
        got.push(String::from_utf8(b.read_reply().unwrap()).unwrap());
        let info = String::from_utf8(b.read_reply().unwrap()).unwrap();
        got.push(info.contains("\r\nblocked_clients:0\r\n").to_string());
        got.push(String::from_utf8(a.read_reply().unwrap()).unwrap());
        got
    };
    let kiln = TestServer::kiln(&[]);
    let expected = [
        "1",
        ":1\r\n",
        "true",
        "*2\r\n$1\r\nk\r\n$1\r\nv\r\n",
        ":1\r\n",
        "true",
        "*-1\r\n",
    ];
    assert_eq!(run(&kiln), expected, "kiln");
    if let Some(redis) = TestServer::redis(&[]) {
        assert_eq!(run(&redis), expected, "redis-server");
    }
}

/// A waiter on several keys is served from the key that became ready alone, as Redis does:
/// another of its keys that became another type meanwhile is not looked at, and a
/// multi-stream XREAD answers with the ready stream only.
#[test]
fn a_waiter_on_several_keys_is_served_from_the_ready_key_alone() {
    check(
        "&1 BLPOP k1 k2 0
         SET k1 str
         RPUSH k2 a
         <1",
        &["+OK\r\n", ":1\r\n", "*2\r\n$2\r\nk2\r\n$1\r\na\r\n"],
    );
    check(
        "&1 BLMPOP 0 2 k1 k2 LEFT COUNT 2
         SET k1 str
         RPUSH k2 a b c
         <1",
        &[
            "+OK\r\n",
            ":3\r\n",
            "*2\r\n$2\r\nk2\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        ],
    );
    check(
        "&1 BZPOPMIN z1 z2 0
         SET z1 str
         ZADD z2 1 m
         <1",
        &[
            "+OK\r\n",
            ":1\r\n",
            "*3\r\n$2\r\nz2\r\n$1\r\nm\r\n$1\r\n1\r\n",
        ],
    );
    check(
        "&1 XREAD BLOCK 0 STREAMS s1 s2 $ $
         MULTI
         XADD s1 1-1 f v
         XADD s2 1-1 f v
         EXEC
         <1",
        &[
            "+OK\r\n",
            "+QUEUED\r\n",
            "+QUEUED\r\n",
            "*2\r\n$3\r\n1-1\r\n$3\r\n1-1\r\n",
            "*1\r\n*2\r\n$2\r\ns1\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
        ],
    );
}
