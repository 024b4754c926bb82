//! SORT and SORT_RO: the differential scripts of `tests/diff/sort/`, and what a script of
//! one connection cannot show: STORE waking a client blocked on the destination, WATCH on
//! a destination written by a SORT that locks the whole database (BY/GET patterns), and
//! SORTs reading keys all over the keyspace while other clients write them.

mod support;

use support::TestServer;

#[test]
fn sort_commands_match_redis() {
    support::run_script_dir("sort");
}

/// Both servers, where Redis is installed: the same scenario gives the same replies.
fn servers() -> Vec<TestServer> {
    let mut v = vec![TestServer::kiln(&[])];
    v.extend(TestServer::redis(&[]));
    v
}

#[test]
fn sort_store_wakes_a_client_blocked_on_the_destination() {
    for s in servers() {
        let mut c = s.raw();
        c.cmd(&["RPUSH", "l", "3", "1", "2"]);
        c.cmd(&["MSET", "w_1", "3", "w_2", "2", "w_3", "1"]);
        let mut waiter = s.raw();
        waiter.send_cmd(&["BLPOP", "dst", "0"]);
        c.wait_blocked(1);
        // With a BY pattern: the whole database is locked, the waiter still served.
        assert_eq!(c.cmd(&["SORT", "l", "BY", "w_*", "STORE", "dst"]), ":3\r\n");
        let got = String::from_utf8(waiter.read_reply().unwrap()).unwrap();
        assert_eq!(got, "*2\r\n$3\r\ndst\r\n$1\r\n3\r\n");
        assert_eq!(
            c.cmd(&["LRANGE", "dst", "0", "-1"]),
            "*2\r\n$1\r\n2\r\n$1\r\n1\r\n"
        );
        // Without patterns.
        let mut waiter = s.raw();
        waiter.send_cmd(&["BLPOP", "dst2", "0"]);
        c.wait_blocked(1);
        assert_eq!(c.cmd(&["SORT", "l", "STORE", "dst2"]), ":3\r\n");
        let got = String::from_utf8(waiter.read_reply().unwrap()).unwrap();
        assert_eq!(got, "*2\r\n$4\r\ndst2\r\n$1\r\n1\r\n");
    }
}

#[test]
fn sort_store_invalidates_watches_of_the_destination() {
    for s in servers() {
        for pattern in [None, Some("w_*")] {
            let mut c = s.raw();
            c.cmd(&["RPUSH", "l", "2", "1"]);
            c.cmd(&["MSET", "w_1", "1", "w_2", "2"]);
            let mut w = s.raw();
            w.cmd(&["WATCH", "dst"]);
            let mut sort = vec!["SORT", "l"];
            if let Some(p) = pattern {
                sort.extend(["BY", p]);
            }
            sort.extend(["STORE", "dst"]);
            assert_eq!(c.cmd(&sort), ":2\r\n");
            w.cmd(&["MULTI"]);
            w.cmd(&["PING"]);
            assert_eq!(w.cmd(&["EXEC"]), "*-1\r\n", "{pattern:?}");
            // A SORT reading the watched key by pattern changes nothing.
            w.cmd(&["WATCH", "w_1"]);
            c.cmd(&["SORT", "l", "BY", "w_*", "GET", "w_*"]);
            w.cmd(&["MULTI"]);
            w.cmd(&["PING"]);
            assert_eq!(w.cmd(&["EXEC"]), "*1\r\n+PONG\r\n", "{pattern:?}");
            c.cmd(&["FLUSHALL"]);
        }
    }
}

/// SORTs with BY and GET patterns (whole-database plans) run alongside writers of the
/// keys they read, in other shards: every reply is whole and consistent, nothing hangs.
#[test]
fn pattern_sorts_run_alongside_writers() {
    let s = TestServer::kiln(&[]);
    let mut c = s.raw();
    let n = 200;
    let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let mut rpush = vec!["RPUSH".to_string(), "l".into()];
    rpush.extend(items.iter().cloned());
    c.cmd(&rpush);
    let port_cmds = |i: usize| {
        vec![
            "MSET".to_string(),
            format!("w_{i}"),
            (n - i).to_string(),
            format!("v_{i}"),
            format!("x{i}"),
        ]
    };
    for i in 0..n {
        c.cmd(&port_cmds(i));
    }
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let mut w = s.raw();
            std::thread::spawn(move || {
                for round in 0..300 {
                    let i = (round * 7 + t * 13) % 200;
                    // Weights keep their order: the sorted result never changes.
                    w.cmd(&["MSET", &format!("w_{i}"), &(200 - i).to_string()]);
                    w.cmd(&["HSET", &format!("h_{i}"), "f", "v"]);
                    w.cmd(&["SORT", "l", "BY", "nosort", "STORE", &format!("out{t}")]);
                }
            })
        })
        .collect();
    let mut expected = format!("*{}\r\n", n * 2);
    for i in (0..n).rev() {
        let v = format!("x{i}");
        expected.push_str(&format!(
            "${}\r\n{i}\r\n${}\r\n{v}\r\n",
            i.to_string().len(),
            v.len()
        ));
    }
    for _ in 0..100 {
        assert_eq!(
            c.cmd(&["SORT", "l", "BY", "w_*", "GET", "#", "GET", "v_*"]),
            expected
        );
    }
    for w in writers {
        w.join().unwrap();
    }
}

/// ALPHA BY with many equal and missing values on lists: full sorts keep the list's order
/// for ties, LIMITed ones give the order of Redis's partial quicksort.
#[test]
fn alpha_by_ties_come_out_in_redis_order() {
    use rand::{Rng, SeedableRng};
    let kiln = TestServer::kiln(&[]);
    let Some(redis) = TestServer::redis(&[]) else {
        return;
    };
    let (mut k, mut r) = (kiln.raw(), redis.raw());
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for _ in 0..150 {
        k.cmd(&["FLUSHALL"]);
        r.cmd(&["FLUSHALL"]);
        let n = rng.gen_range(5..150);
        let mut items: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            items.swap(i, rng.gen_range(0..=i));
        }
        let mut push = vec!["RPUSH".to_string(), "l".into()];
        push.extend(items.iter().map(|i| i.to_string()));
        let mut mset = vec!["MSET".to_string()];
        for i in (0..n).filter(|i| i % 5 != 0) {
            mset.extend([format!("w_{i}"), (i % 4).to_string()]);
        }
        for c in [&mut k, &mut r] {
            c.cmd(&push);
            c.cmd(&mset);
        }
        let lo = rng.gen_range(0..n);
        let mut q: Vec<String> = ["SORT", "l", "BY", "w_*", "ALPHA", "LIMIT"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        q.extend([lo.to_string(), rng.gen_range(1..=n).to_string()]);
        if rng.gen_bool(0.5) {
            q.push("DESC".into());
        }
        assert_eq!(k.cmd(&q), r.cmd(&q), "{q:?}");
    }
}
