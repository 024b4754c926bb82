//! Black-box tests of the list commands, for what a differential script cannot show: the
//! blocking commands (waiters served first come first served, across connections, with
//! timeouts and disconnections), atomic hand-off of BLMOVE, and large lists compared with a
//! model. The differential scripts are in `tests/diff/lists/` (those in its `debug/` folder
//! run with DEBUG enabled).

mod support;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Commands;
use support::{TestServer, DEBUG_ON};

#[test]
fn list_commands_match_redis() {
    support::run_script_dir("lists");
}

/// The scripts of `tests/diff/lists/debug/` need DEBUG enabled on both servers.
#[test]
fn list_digests_match_redis() {
    support::run_script_with(
        "debug/digest.txt",
        include_str!("diff/lists/debug/digest.txt"),
        DEBUG_ON,
    );
}

/// Whether a reply is waiting to be read on `raw` (without consuming it).
fn has_reply(raw: &support::Raw) -> bool {
    let mut b = [0u8; 1];
    raw.stream.set_nonblocking(true).unwrap();
    let r = raw.stream.peek(&mut b);
    raw.stream.set_nonblocking(false).unwrap();
    matches!(r, Ok(n) if n > 0)
}

/// A RESP2 reply `[key, element]` as raw text.
fn pair(key: &str, elem: &str) -> String {
    format!(
        "*2\r\n${}\r\n{key}\r\n${}\r\n{elem}\r\n",
        key.len(),
        elem.len()
    )
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

#[test]
fn waiters_on_one_key_are_served_first_come_first_served() {
    let s = TestServer::kiln(&[]);
    let mut waiters = Vec::new();
    for i in 0..4 {
        let mut w = s.raw();
        w.send_cmd(&["BLPOP", "q", "0"]);
        s.raw().wait_blocked(i + 1);
        waiters.push(w);
    }
    let mut pusher = s.raw();
    assert_eq!(pusher.cmd(&["RPUSH", "q", "a", "b", "c"]), ":3\r\n");
    for (w, want) in waiters.iter_mut().zip(["a", "b", "c"]) {
        let got = String::from_utf8(w.read_reply().unwrap()).unwrap();
        assert_eq!(got, pair("q", want));
    }
    // The fourth is still waiting, and gets the next push.
    s.raw().wait_blocked(1);
    assert!(!has_reply(&waiters[3]));
    assert_eq!(pusher.cmd(&["LPUSH", "q", "d"]), ":1\r\n");
    let got = String::from_utf8(waiters[3].read_reply().unwrap()).unwrap();
    assert_eq!(got, pair("q", "d"));
    assert_eq!(pusher.cmd(&["EXISTS", "q"]), ":0\r\n");
}

#[test]
fn blpop_on_several_keys_takes_the_first_non_empty_one() {
    let s = TestServer::kiln(&[]);
    let mut c = s.raw();
    c.cmd(&["RPUSH", "k3", "three"]);
    c.cmd(&["RPUSH", "k2", "two"]);
    assert_eq!(c.cmd(&["BLPOP", "k1", "k2", "k3", "0"]), pair("k2", "two"));
    assert_eq!(
        c.cmd(&["BRPOP", "k1", "k2", "k3", "0"]),
        pair("k3", "three")
    );
    // All empty: it waits on every key, and a push to any of them serves it.
    let mut w = s.raw();
    w.send_cmd(&["BLPOP", "k1", "k2", "k3", "0"]);
    s.raw().wait_blocked(1);
    c.cmd(&["RPUSH", "k3", "x"]);
    assert_eq!(
        String::from_utf8(w.read_reply().unwrap()).unwrap(),
        pair("k3", "x")
    );
    // Its registrations on the other keys are gone: a later push stays in the list.
    s.raw().wait_blocked(0);
    c.cmd(&["RPUSH", "k1", "y"]);
    assert_eq!(c.cmd(&["LRANGE", "k1", "0", "-1"]), "*1\r\n$1\r\ny\r\n");
}

#[test]
fn a_fractional_timeout_replies_a_null_array() {
    let s = TestServer::kiln(&[]);
    let mut c = s.raw();
    let start = Instant::now();
    assert_eq!(c.cmd(&["BLPOP", "nokey", "0.1"]), "*-1\r\n");
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert_eq!(c.cmd(&["BRPOP", "a", "b", "0.05"]), "*-1\r\n");
    assert_eq!(
        c.cmd(&["BLMOVE", "a", "b", "LEFT", "RIGHT", "0.05"]),
        "*-1\r\n"
    );
    assert_eq!(c.cmd(&["BRPOPLPUSH", "a", "b", "0.05"]), "*-1\r\n");
    assert_eq!(c.cmd(&["BLMPOP", "0.05", "2", "a", "b", "LEFT"]), "*-1\r\n");
    c.cmd(&["HELLO", "3"]);
    assert_eq!(c.cmd(&["BLPOP", "nokey", "0.05"]), "_\r\n");
    // Nothing was created, and the connection is usable.
    assert_eq!(c.cmd(&["EXISTS", "a", "b", "nokey"]), ":0\r\n");
    s.raw().wait_blocked(0);
}

#[test]
fn a_zero_timeout_waits_until_a_push() {
    let s = TestServer::kiln(&[]);
    let mut w = s.raw();
    w.send_cmd(&["BRPOP", "k", "0"]);
    s.raw().wait_blocked(1);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!has_reply(&w), "BRPOP with timeout 0 returned early");
    let mut c = s.raw();
    c.cmd(&["LPUSH", "k", "late"]);
    assert_eq!(
        String::from_utf8(w.read_reply().unwrap()).unwrap(),
        pair("k", "late")
    );
}

#[test]
fn a_waiter_is_woken_by_lpush_from_another_connection() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let waiter = std::thread::spawn({
        let mut con = s.client();
        move || -> (String, String) {
            redis::cmd("BLPOP")
                .arg("jobs")
                .arg(0)
                .query(&mut con)
                .unwrap()
        }
    });
    s.raw().wait_blocked(1);
    let n: i64 = redis::cmd("LPUSH")
        .arg("jobs")
        .arg("job-1")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        waiter.join().unwrap(),
        ("jobs".to_string(), "job-1".to_string())
    );
    // The waiter took the element: nothing is left.
    let len: i64 = redis::cmd("LLEN").arg("jobs").query(&mut con).unwrap();
    assert_eq!(len, 0);
}

#[test]
fn rpush_creating_the_key_wakes_brpop_and_blmpop_waiters() {
    let s = TestServer::kiln(&[]);
    let mut a = s.raw();
    a.send_cmd(&["BRPOP", "fresh", "0"]);
    s.raw().wait_blocked(1);
    let mut b = s.raw();
    b.send_cmd(&["BLMPOP", "0", "2", "other", "fresh", "RIGHT", "COUNT", "5"]);
    s.raw().wait_blocked(2);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["RPUSH", "fresh", "1", "2", "3", "4"]), ":4\r\n");
    // BRPOP came first and takes the tail; BLMPOP gets the rest, tail first.
    assert_eq!(
        String::from_utf8(a.read_reply().unwrap()).unwrap(),
        pair("fresh", "4")
    );
    assert_eq!(
        String::from_utf8(b.read_reply().unwrap()).unwrap(),
        "*2\r\n$5\r\nfresh\r\n*3\r\n$1\r\n3\r\n$1\r\n2\r\n$1\r\n1\r\n"
    );
    assert_eq!(c.cmd(&["EXISTS", "fresh"]), ":0\r\n");
}

#[test]
fn lmove_into_the_key_wakes_a_waiter() {
    let s = TestServer::kiln(&[]);
    let mut w = s.raw();
    w.send_cmd(&["BLPOP", "dst", "0"]);
    s.raw().wait_blocked(1);
    let mut c = s.raw();
    c.cmd(&["RPUSH", "src", "moved"]);
    assert_eq!(
        c.cmd(&["LMOVE", "src", "dst", "LEFT", "RIGHT"]),
        bulk("moved")
    );
    assert_eq!(
        String::from_utf8(w.read_reply().unwrap()).unwrap(),
        pair("dst", "moved")
    );
    assert_eq!(c.cmd(&["EXISTS", "src", "dst"]), ":0\r\n");
    // RPOPLPUSH too.
    w.send_cmd(&["BRPOP", "dst", "0"]);
    s.raw().wait_blocked(1);
    c.cmd(&["RPUSH", "src", "again"]);
    assert_eq!(c.cmd(&["RPOPLPUSH", "src", "dst"]), bulk("again"));
    assert_eq!(
        String::from_utf8(w.read_reply().unwrap()).unwrap(),
        pair("dst", "again")
    );
}

#[test]
fn a_blmove_waiter_passes_the_element_on_to_the_next_waiter() {
    let s = TestServer::kiln(&[]);
    // BLMOVE a -> b waits on a; BLPOP waits on b; one push to a serves both in turn.
    let mut mover = s.raw();
    mover.send_cmd(&["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"]);
    s.raw().wait_blocked(1);
    let mut popper = s.raw();
    popper.send_cmd(&["BLPOP", "b", "0"]);
    s.raw().wait_blocked(2);
    let mut c = s.raw();
    c.cmd(&["RPUSH", "a", "baton"]);
    assert_eq!(
        String::from_utf8(mover.read_reply().unwrap()).unwrap(),
        bulk("baton")
    );
    assert_eq!(
        String::from_utf8(popper.read_reply().unwrap()).unwrap(),
        pair("b", "baton")
    );
    assert_eq!(c.cmd(&["EXISTS", "a", "b"]), ":0\r\n");
    // BRPOPLPUSH the same way.
    mover.send_cmd(&["BRPOPLPUSH", "a", "b", "0"]);
    s.raw().wait_blocked(1);
    c.cmd(&["LPUSH", "a", "x", "y"]);
    assert_eq!(
        String::from_utf8(mover.read_reply().unwrap()).unwrap(),
        bulk("x")
    );
    assert_eq!(c.cmd(&["LRANGE", "a", "0", "-1"]), "*1\r\n$1\r\ny\r\n");
    assert_eq!(c.cmd(&["LRANGE", "b", "0", "-1"]), "*1\r\n$1\r\nx\r\n");
}

#[test]
fn a_client_that_disconnects_while_blocked_leaves_no_trace() {
    let s = TestServer::kiln(&[]);
    {
        let mut gone = s.raw();
        gone.send_cmd(&["BLPOP", "k", "0"]);
        s.raw().wait_blocked(1);
    }
    s.raw().wait_blocked(0);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["RPUSH", "k", "kept"]), ":1\r\n");
    assert_eq!(c.cmd(&["LRANGE", "k", "0", "-1"]), "*1\r\n$4\r\nkept\r\n");
    // A live waiter queued behind a departed one still gets served.
    let mut first = s.raw();
    first.send_cmd(&["BLPOP", "k2", "0"]);
    s.raw().wait_blocked(1);
    let mut second = s.raw();
    second.send_cmd(&["BLPOP", "k2", "0"]);
    s.raw().wait_blocked(2);
    drop(first);
    s.raw().wait_blocked(1);
    c.cmd(&["RPUSH", "k2", "v"]);
    assert_eq!(
        String::from_utf8(second.read_reply().unwrap()).unwrap(),
        pair("k2", "v")
    );
    assert_eq!(c.cmd(&["EXISTS", "k2"]), ":0\r\n");
}

#[test]
fn blmove_hands_every_element_over_exactly_once() {
    let s = Arc::new(TestServer::kiln(&[]));
    const N: usize = 2000;
    let movers: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut c = s.raw();
                let mut moved = 0;
                loop {
                    let r = c.cmd(&["BLMOVE", "src", "dst", "RIGHT", "LEFT", "0.5"]);
                    if r == "*-1\r\n" {
                        return moved;
                    }
                    moved += 1;
                }
            })
        })
        .collect();
    let mut c = s.raw();
    for i in 0..N {
        c.cmd(&["LPUSH", "src", &i.to_string()]);
    }
    let moved: usize = movers.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(moved, N);
    assert_eq!(c.cmd(&["EXISTS", "src"]), ":0\r\n");
    let mut con = s.client();
    let all: Vec<usize> = redis::cmd("LRANGE")
        .arg("dst")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    let mut sorted = all.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..N).collect::<Vec<_>>());
}

#[test]
fn waiters_in_another_database_are_not_served() {
    let s = TestServer::kiln(&[]);
    let mut w = s.raw();
    w.cmd(&["SELECT", "1"]);
    w.send_cmd(&["BLPOP", "k", "0"]);
    s.raw().wait_blocked(1);
    let mut c = s.raw();
    c.cmd(&["RPUSH", "k", "db0"]);
    std::thread::sleep(Duration::from_millis(100));
    assert!(!has_reply(&w));
    assert_eq!(c.cmd(&["LLEN", "k"]), ":1\r\n");
    c.cmd(&["SELECT", "1"]);
    c.cmd(&["RPUSH", "k", "db1"]);
    assert_eq!(
        String::from_utf8(w.read_reply().unwrap()).unwrap(),
        pair("k", "db1")
    );
}

#[test]
fn a_large_list_agrees_with_a_model_through_random_commands() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let mut model: VecDeque<String> = VecDeque::new();
    let mut x: u64 = 12345;
    let mut rnd = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as usize
    };
    for step in 0..6000 {
        let r = rnd();
        let v = match r % 3 {
            0 => (r % 500).to_string(),
            1 => format!("item-{}", r % 997),
            _ => "z".repeat(r % 200),
        };
        match (r >> 10) % 10 {
            0..=2 => {
                let _: i64 = con.lpush("l", &v).unwrap();
                model.push_front(v);
            }
            3..=5 => {
                let _: i64 = con.rpush("l", &v).unwrap();
                model.push_back(v);
            }
            6 => {
                let got: Option<String> = con.rpop("l", None).unwrap();
                assert_eq!(got, model.pop_back());
            }
            7 if !model.is_empty() => {
                let i = rnd() % model.len();
                let _: () = con.lset("l", i as isize, &v).unwrap();
                model[i] = v;
            }
            8 if !model.is_empty() => {
                let i = rnd() % model.len();
                let got: Option<String> = con.lindex("l", i as isize).unwrap();
                assert_eq!(got.as_ref(), model.get(i));
                let pivot = model[i].clone();
                let n: i64 = redis::cmd("LINSERT")
                    .arg("l")
                    .arg("AFTER")
                    .arg(&pivot)
                    .arg(&v)
                    .query(&mut con)
                    .unwrap();
                let at = model.iter().position(|e| *e == pivot).unwrap();
                model.insert(at + 1, v);
                assert_eq!(n as usize, model.len());
            }
            _ => {
                let got: Option<String> = con.lpop("l", None).unwrap();
                assert_eq!(got, model.pop_front());
            }
        }
        if step % 500 == 0 {
            let all: Vec<String> = con.lrange("l", 0, -1).unwrap();
            assert_eq!(all, model.iter().cloned().collect::<Vec<_>>());
        }
    }
    let all: Vec<String> = con.lrange("l", 0, -1).unwrap();
    assert_eq!(all, model.iter().cloned().collect::<Vec<_>>());
}

#[test]
fn list_commands_emit_the_keyspace_events_of_redis() {
    let cmds: &[&[&str]] = &[
        &["RPUSH", "a", "1", "2", "3"],
        &["LPUSHX", "nokey", "1"],
        &["LPOP", "a", "0"],
        &["LPOP", "a", "2"],
        &["RPUSH", "b", "x"],
        &["LMOVE", "a", "b", "LEFT", "RIGHT"],
        &["LMOVE", "b", "b", "LEFT", "LEFT"],
        &["LREM", "b", "1", "zz"],
        &["LREM", "b", "1", "x"],
        &["LTRIM", "b", "0", "-1"],
        &["LTRIM", "nokey", "0", "1"],
        &["LSET", "b", "0", "q"],
        &["LINSERT", "b", "BEFORE", "q", "w"],
        &["LINSERT", "b", "BEFORE", "nope", "w"],
        &["RPUSH", "c", "1"],
        &["LMPOP", "1", "c", "LEFT", "COUNT", "5"],
        &["RPUSH", "d", "1", "2"],
        &["BLPOP", "d", "0"],
        &["RPOPLPUSH", "d", "d"],
        &["RPUSH", "e", "1"],
        &["RPOPLPUSH", "e", "f"],
        &["LTRIM", "f", "1", "0"],
    ];
    let expected: Vec<(String, String)> = [
        ("rpush", "a"),
        ("lpop", "a"),
        ("rpush", "b"),
        ("rpush", "b"),
        ("lpop", "a"),
        ("del", "a"),
        ("lpush", "b"),
        ("lpop", "b"),
        ("lrem", "b"),
        ("ltrim", "b"),
        ("lset", "b"),
        ("linsert", "b"),
        ("rpush", "c"),
        ("lpop", "c"),
        ("del", "c"),
        ("rpush", "d"),
        ("lpop", "d"),
        ("lpush", "d"),
        ("rpop", "d"),
        ("rpush", "e"),
        ("lpush", "f"),
        ("rpop", "e"),
        ("del", "e"),
        ("ltrim", "f"),
        ("del", "f"),
    ]
    .iter()
    .map(|(e, k)| (e.to_string(), k.to_string()))
    .collect();
    let kiln = TestServer::kiln(&[]);
    assert_eq!(support::keyevents(&kiln, cmds), expected);
    if let Some(redis) = TestServer::redis(&[]) {
        assert_eq!(support::keyevents(&redis, cmds), expected);
    }
}
