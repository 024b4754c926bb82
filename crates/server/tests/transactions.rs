//! Transactions: MULTI/EXEC/DISCARD/WATCH, differential scripts and concurrency.

mod support;

use std::thread;
use std::time::Duration;
use support::TestServer;

#[test]
fn transaction_commands_match_redis() {
    support::run_script_dir("transactions");
}

#[test]
fn watch_is_invalidated_by_another_clients_write() {
    let s = TestServer::kiln(&[]);
    let mut a = s.raw();
    let mut b = s.raw();
    assert_eq!(a.cmd(&["SET", "k", "1"]), "+OK\r\n");
    assert_eq!(a.cmd(&["WATCH", "k"]), "+OK\r\n");
    assert_eq!(b.cmd(&["SET", "k", "2"]), "+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(a.cmd(&["SET", "k", "3"]), "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), "*-1\r\n");
    assert_eq!(a.cmd(&["GET", "k"]), "$1\r\n2\r\n");
}

#[test]
fn a_write_that_changes_nothing_does_not_invalidate_watch() {
    let s = TestServer::kiln(&[]);
    let mut a = s.raw();
    let mut b = s.raw();
    assert_eq!(a.cmd(&["SET", "k", "1"]), "+OK\r\n");
    assert_eq!(a.cmd(&["WATCH", "k", "other"]), "+OK\r\n");
    assert_eq!(b.cmd(&["SET", "k", "2", "NX"]), "$-1\r\n");
    assert_eq!(b.cmd(&["DEL", "other"]), ":0\r\n");
    assert_eq!(b.cmd(&["SET", "unrelated", "2"]), "+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(a.cmd(&["GET", "k"]), "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), "*1\r\n$1\r\n1\r\n");
}

#[test]
fn watch_is_invalidated_by_expiry_and_flushall_and_swapdb() {
    let s = TestServer::kiln(&[]);
    let mut a = s.raw();
    let mut b = s.raw();
    // Expiry.
    assert_eq!(a.cmd(&["SET", "k", "1", "PX", "50"]), "+OK\r\n");
    assert_eq!(a.cmd(&["WATCH", "k"]), "+OK\r\n");
    thread::sleep(Duration::from_millis(120));
    assert_eq!(a.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(a.cmd(&["PING"]), "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), "*-1\r\n");
    // FLUSHALL from another client.
    assert_eq!(a.cmd(&["SET", "k", "1"]), "+OK\r\n");
    assert_eq!(a.cmd(&["WATCH", "k"]), "+OK\r\n");
    assert_eq!(b.cmd(&["FLUSHALL"]), "+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(a.cmd(&["PING"]), "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), "*-1\r\n");
    // SWAPDB.
    assert_eq!(a.cmd(&["SET", "k", "1"]), "+OK\r\n");
    assert_eq!(a.cmd(&["WATCH", "k"]), "+OK\r\n");
    assert_eq!(b.cmd(&["SWAPDB", "0", "1"]), "+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(a.cmd(&["PING"]), "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), "*-1\r\n");
    // RENAME onto the watched key.
    assert_eq!(a.cmd(&["SET", "src", "1"]), "+OK\r\n");
    assert_eq!(a.cmd(&["WATCH", "dst"]), "+OK\r\n");
    assert_eq!(b.cmd(&["RENAME", "src", "dst"]), "+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(a.cmd(&["PING"]), "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), "*-1\r\n");
}

/// The classic optimistic-locking increment: WATCH, GET, MULTI, SET, EXEC, retried on
/// conflict, from many clients at once. The final count is exact.
#[test]
fn concurrent_watch_increments_are_exact() {
    let s = TestServer::kiln(&["--threads", "4"]);
    let port = s.port;
    let threads = 8;
    let per_thread = 200;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            thread::spawn(move || {
                let mut c = support::Raw::connect(port);
                for _ in 0..per_thread {
                    loop {
                        assert_eq!(c.cmd(&["WATCH", "counter"]), "+OK\r\n");
                        let v = c.cmd(&["GET", "counter"]);
                        let n: i64 = v
                            .lines()
                            .nth(1)
                            .map(|l| l.trim().parse().unwrap())
                            .unwrap_or(0);
                        assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
                        assert_eq!(
                            c.cmd(&["SET", "counter", &(n + 1).to_string()]),
                            "+QUEUED\r\n"
                        );
                        if c.cmd(&["EXEC"]) != "*-1\r\n" {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut c = s.raw();
    let expect = (threads * per_thread).to_string();
    assert_eq!(
        c.cmd(&["GET", "counter"]),
        format!("${}\r\n{expect}\r\n", expect.len())
    );
}

/// No client ever observes a state between two commands of a transaction.
#[test]
fn exec_is_atomic_across_threads_and_shards() {
    let s = TestServer::kiln(&["--threads", "4"]);
    let port = s.port;
    let writer = thread::spawn(move || {
        let mut c = support::Raw::connect(port);
        for _ in 0..500 {
            c.send(b"MULTI\r\nINCR a\r\nINCR b\r\nINCR c\r\nEXEC\r\n");
            for _ in 0..5 {
                c.read_reply().unwrap();
            }
        }
    });
    let readers: Vec<_> = (0..3)
        .map(|_| {
            thread::spawn(move || {
                let mut c = support::Raw::connect(port);
                for _ in 0..500 {
                    let r = c.cmd(&["MGET", "a", "b", "c"]);
                    let vals: Vec<&str> = r.lines().skip(1).step_by(2).collect();
                    assert!(vals.windows(2).all(|w| w[0] == w[1]), "saw {r:?}");
                }
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
}

#[test]
fn disconnecting_with_watches_leaves_no_trace() {
    let s = TestServer::kiln(&[]);
    {
        let mut a = s.raw();
        assert_eq!(a.cmd(&["WATCH", "k1", "k2"]), "+OK\r\n");
        assert_eq!(a.cmd(&["MULTI"]), "+OK\r\n");
    }
    // Once the server has seen the disconnect, only `b` is connected.
    let mut b = s.raw();
    b.wait_info("clients", "connected_clients", "1");
    assert_eq!(b.cmd(&["SET", "k1", "v"]), "+OK\r\n");
    assert_eq!(b.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(b.cmd(&["GET", "k1"]), "+QUEUED\r\n");
    assert_eq!(b.cmd(&["EXEC"]), "*1\r\n$1\r\nv\r\n");
}

/// A push inside MULTI/EXEC wakes a blocked client, which gets the element atomically at
/// the end of the transaction.
#[test]
fn a_push_inside_exec_wakes_a_blocked_client() {
    let s = TestServer::kiln(&["--threads", "2"]);
    let port = s.port;
    let waiter = thread::spawn(move || {
        let mut c = support::Raw::connect(port);
        c.cmd(&["BLPOP", "q", "0"])
    });
    // Let the waiter block first.
    s.raw().wait_blocked(1);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["RPUSH", "q", "a", "b"]), "+QUEUED\r\n");
    assert_eq!(c.cmd(&["LLEN", "q"]), "+QUEUED\r\n");
    // Inside the transaction the list still holds both elements: the waiter is served
    // only when EXEC is over.
    assert_eq!(c.cmd(&["EXEC"]), "*2\r\n:2\r\n:2\r\n");
    assert_eq!(waiter.join().unwrap(), "*2\r\n$1\r\nq\r\n$1\r\na\r\n");
    assert_eq!(c.cmd(&["LRANGE", "q", "0", "-1"]), "*1\r\n$1\r\nb\r\n");
}
