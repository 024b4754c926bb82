//! Black-box tests of the string commands, for what a differential script cannot show: large
//! values, atomicity and exact counts under concurrent clients, TTLs that run out, the
//! proto-max-bulk-len limits (compared with redis-server where it is installed), RESP3 reply
//! shapes, and numeric edge cases checked across many inputs.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Commands, Value};
use support::TestServer;

#[test]
fn a_one_megabyte_binary_value_round_trips() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let value: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    let _: () = con.set("big", &value).unwrap();
    let back: Vec<u8> = con.get("big").unwrap();
    assert_eq!(back, value);
    let len: usize = con.strlen("big").unwrap();
    assert_eq!(len, value.len());
    let tail: Vec<u8> = con.getrange("big", -3, -1).unwrap();
    assert_eq!(tail, &value[value.len() - 3..]);
    let n: usize = con.append("big", &value[..10]).unwrap();
    assert_eq!(n, value.len() + 10);
    let all: Vec<u8> = redis::cmd("GETDEL").arg("big").query(&mut con).unwrap();
    assert_eq!(&all[..value.len()], &value[..]);
    assert_eq!(&all[value.len()..], &value[..10]);
}

#[test]
fn concurrent_incr_from_eight_threads_counts_exactly() {
    let s = Arc::new(TestServer::kiln(&[]));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut con = s.client();
                for _ in 0..1000 {
                    let _: i64 = con.incr("counter", 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = s.client();
    let n: i64 = con.get("counter").unwrap();
    assert_eq!(n, 8000);
}

#[test]
fn concurrent_incrbyfloat_and_decr_lose_no_update() {
    let s = Arc::new(TestServer::kiln(&[]));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut con = s.client();
                for _ in 0..500 {
                    if i % 2 == 0 {
                        let _: String = redis::cmd("INCRBYFLOAT")
                            .arg("f")
                            .arg("0.5")
                            .query(&mut con)
                            .unwrap();
                    } else {
                        let _: i64 = con.decr("d", 1).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = s.client();
    let f: String = con.get("f").unwrap();
    assert_eq!(f, "500");
    let d: i64 = con.get("d").unwrap();
    assert_eq!(d, -1000);
}

#[test]
fn mget_never_sees_half_of_an_mset() {
    let s = Arc::new(TestServer::kiln(&[]));
    // Several keys, so that they certainly live in different shards.
    let keys = ["a", "b", "c", "d", "e", "f", "g", "h"];
    {
        let mut con = s.client();
        let pairs: Vec<(&str, i64)> = keys.iter().map(|k| (*k, 1)).collect();
        let _: () = con.mset(&pairs).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut con = s.client();
            let mut v = 1;
            while !stop.load(Ordering::Relaxed) {
                v = 3 - v;
                let pairs: Vec<(&str, i64)> = keys.iter().map(|k| (*k, v)).collect();
                let _: () = con.mset(&pairs).unwrap();
            }
        })
    };
    let mut con = s.client();
    for _ in 0..1000 {
        let vals: Vec<i64> = con.mget(&keys).unwrap();
        assert!(vals.iter().all(|&v| v == vals[0]), "mixed values {vals:?}");
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

#[test]
fn msetnx_sets_all_keys_or_none_under_contention() {
    let s = Arc::new(TestServer::kiln(&[]));
    // Each thread tries to claim the same keys; exactly one MSETNX may win each round.
    for round in 0..20 {
        let keys: Vec<String> = (0..6).map(|i| format!("r{round}:{i}")).collect();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (s, keys) = (s.clone(), keys.clone());
                std::thread::spawn(move || {
                    let mut con = s.client();
                    let pairs: Vec<(String, i64)> = keys.iter().map(|k| (k.clone(), t)).collect();
                    let won: i64 = redis::cmd("MSETNX").arg(&pairs).query(&mut con).unwrap();
                    won
                })
            })
            .collect();
        let wins: i64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(wins, 1);
        let mut con = s.client();
        let vals: Vec<i64> = con.mget(&keys).unwrap();
        assert!(
            vals.iter().all(|&v| v == vals[0]),
            "round {round}: {vals:?}"
        );
    }
}

#[test]
fn setex_and_psetex_keys_expire_after_their_ttl() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let before = Instant::now();
    let _: () = con.set_ex("sx", "v", 1).unwrap();
    let _: () = con.pset_ex("px", "v", 300).unwrap();
    let ttl: i64 = con.ttl("sx").unwrap();
    assert_eq!(ttl, 1);
    let pttl: i64 = con.pttl("px").unwrap();
    assert!(pttl > 0 && pttl <= 300, "{pttl}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(con.get::<_, Option<String>>("px").unwrap(), None);
    let sx = con.get::<_, Option<String>>("sx").unwrap();
    // Its deadline is a second after `before`: it must be there unless this machine
    // stalled for that long.
    if before.elapsed() < Duration::from_secs(1) {
        assert_eq!(sx.as_deref(), Some("v"));
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(con.get::<_, Option<String>>("sx").unwrap(), None);
    assert!(!con.exists::<_, bool>("sx").unwrap());
}

#[test]
fn getex_sets_a_ttl_and_persist_removes_it() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let _: () = con.set("gone", "v").unwrap();
    let _: () = con.set("kept", "v").unwrap();
    let v: String = redis::cmd("GETEX")
        .arg("gone")
        .arg("PX")
        .arg(300)
        .query(&mut con)
        .unwrap();
    assert_eq!(v, "v");
    let v: String = redis::cmd("GETEX")
        .arg("kept")
        .arg("PX")
        .arg(300)
        .query(&mut con)
        .unwrap();
    assert_eq!(v, "v");
    let v: String = redis::cmd("GETEX")
        .arg("kept")
        .arg("PERSIST")
        .query(&mut con)
        .unwrap();
    assert_eq!(v, "v");
    assert_eq!(con.ttl::<_, i64>("kept").unwrap(), -1);
    // A plain GETEX leaves the TTL alone.
    let _: String = redis::cmd("GETEX").arg("gone").query(&mut con).unwrap();
    assert!(con.pttl::<_, i64>("gone").unwrap() > 0);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(con.get::<_, Option<String>>("gone").unwrap(), None);
    assert_eq!(
        con.get::<_, Option<String>>("kept").unwrap().as_deref(),
        Some("v")
    );
}

#[test]
fn set_keepttl_keeps_the_deadline_and_plain_set_drops_it() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let _: () = con.pset_ex("k", "v1", 400).unwrap();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v2")
        .arg("KEEPTTL")
        .query(&mut con)
        .unwrap();
    let _: () = con.pset_ex("plain", "v1", 400).unwrap();
    let _: () = con.set("plain", "v2").unwrap();
    // Counters and in-place edits keep the TTL too.
    let _: () = con.pset_ex("n", 1, 400).unwrap();
    let _: i64 = con.incr("n", 1).unwrap();
    let _: () = con.pset_ex("a", "x", 400).unwrap();
    let _: usize = con.append("a", "y").unwrap();
    let _: usize = con.setrange("a", 5, "z").unwrap();
    assert_eq!(con.get::<_, String>("k").unwrap(), "v2");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(con.get::<_, Option<String>>("k").unwrap(), None);
    assert_eq!(con.get::<_, Option<String>>("n").unwrap(), None);
    assert_eq!(con.get::<_, Option<String>>("a").unwrap(), None);
    assert_eq!(con.get::<_, String>("plain").unwrap(), "v2");
}

#[test]
fn set_with_an_absolute_deadline_expires_at_that_time() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("PXAT")
        .arg(now_ms + 300)
        .query(&mut con)
        .unwrap();
    assert_eq!(con.get::<_, String>("k").unwrap(), "v");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(con.get::<_, Option<String>>("k").unwrap(), None);
}

/// A differential script run with a 1 MB proto-max-bulk-len (Redis's minimum), so the size
/// limits of APPEND, SETRANGE and LCS can be reached with small requests.
#[test]
fn size_limits_follow_proto_max_bulk_len_like_redis() {
    let mb = 1024 * 1024;
    let a500 = "a".repeat(500);
    let b500 = "ab".repeat(250);
    let a600 = "a".repeat(600);
    // Strings near the limit are built with SETRANGE: script lines must stay short.
    let script = format!(
        "SETRANGE h {halfm1} x\n\
         SETRANGE h {m1} y\n\
         STRLEN h\n\
         APPEND h y\n\
         APPEND h \"\"\n\
         SETRANGE h {mb} y\n\
         SETRANGE h {m1} z\n\
         SETRANGE h {m1} zz\n\
         SETRANGE h 0 \"\"\n\
         GETRANGE h -2 -1\n\
         SETRANGE new {mb} y\n\
         SETRANGE new {m1} y\n\
         STRLEN new\n\
         SET a500 {a500}\n\
         SET b500 {b500}\n\
         SET a600 {a600}\n\
         LCS a500 b500 LEN\n\
         LCS a500 a500 LEN\n\
         LCS a600 a600 LEN\n\
         LCS a600 a600 IDX\n\
         LCS a600 a600 IDX LEN\n\
         LCS a600 nokey LEN\n\
         LCS a600 a500 FOO\n",
        halfm1 = mb / 2 - 1,
        m1 = mb - 1,
    );
    support::run_script_with("size_limits", &script, &["--proto-max-bulk-len", "1mb"]);
}

#[test]
fn a_huge_setrange_offset_is_refused_without_allocating() {
    // The default limit is 512 MB; offsets beyond it must fail fast, not allocate.
    let s = TestServer::kiln(&[]);
    let mut raw = s.raw();
    for offset in ["536870912", "9223372036854775807", "4294967296"] {
        assert_eq!(
            raw.cmd(&["SETRANGE", "k", offset, "x"]),
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"
        );
    }
    assert_eq!(raw.cmd(&["EXISTS", "k"]), ":0\r\n");
    // An LCS table beyond the limit is refused before anything is allocated.
    let big = "z".repeat(20_000);
    raw.cmd(&["MSET", "l1", &big, "l2", &big]);
    assert_eq!(
        raw.cmd(&["LCS", "l1", "l2"]),
        "-ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n"
    );
    assert_eq!(raw.cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn resp3_replies_use_nulls_and_maps() {
    let s = TestServer::kiln(&[]);
    let mut raw = s.raw();
    raw.cmd(&["HELLO", "3"]);
    assert_eq!(raw.cmd(&["GET", "nokey"]), "_\r\n");
    assert_eq!(raw.cmd(&["MGET", "nokey", "x"]), "*2\r\n_\r\n_\r\n");
    assert_eq!(raw.cmd(&["SET", "k", "v", "GET"]), "_\r\n");
    assert_eq!(raw.cmd(&["SET", "k", "v", "NX"]), "_\r\n");
    assert_eq!(raw.cmd(&["GETEX", "nokey"]), "_\r\n");
    assert_eq!(raw.cmd(&["GETDEL", "nokey"]), "_\r\n");
    assert_eq!(raw.cmd(&["INCRBYFLOAT", "f", "1.5"]), "$3\r\n1.5\r\n");
    raw.cmd(&["MSET", "k1", "ohmytext", "k2", "mynewtext"]);
    assert_eq!(
        raw.cmd(&["LCS", "k1", "k2", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"]),
        "%2\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n$3\r\nlen\r\n:6\r\n"
    );
    // The same in RESP2 is a flat array.
    raw.cmd(&["HELLO", "2"]);
    assert_eq!(
        raw.cmd(&["LCS", "k1", "k2", "IDX", "MINMATCHLEN", "5"]),
        "*4\r\n$7\r\nmatches\r\n*0\r\n$3\r\nlen\r\n:6\r\n"
    );
}

#[test]
fn incrby_matches_checked_i64_addition_and_refuses_overflow() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let samples = [
        i64::MIN,
        i64::MIN + 1,
        -4_611_686_018_427_387_904,
        -10_000,
        -1,
        0,
        1,
        9_999,
        10_000,
        4_611_686_018_427_387_904,
        i64::MAX - 1,
        i64::MAX,
    ];
    for &start in &samples {
        for &by in &samples {
            let _: () = con.set("c", start).unwrap();
            let got: redis::RedisResult<i64> =
                redis::cmd("INCRBY").arg("c").arg(by).query(&mut con);
            match start.checked_add(by) {
                Some(n) => assert_eq!(got.unwrap(), n, "{start} + {by}"),
                None => {
                    let e = got.unwrap_err();
                    assert!(
                        e.to_string()
                            .contains("increment or decrement would overflow"),
                        "{e}"
                    );
                    assert_eq!(con.get::<_, i64>("c").unwrap(), start);
                }
            }
        }
    }
}

#[test]
fn lcs_of_random_strings_matches_redis() {
    // Random strings over small alphabets give many equally long answers, so this pins down
    // the tie-breaking of the walk back through the table.
    let mut script = String::new();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..40 {
        let alphabet = b"abc";
        let la = (next() % 40) as usize;
        let lb = (next() % 40) as usize;
        let a: String = (0..la)
            .map(|_| alphabet[(next() % 3) as usize] as char)
            .collect();
        let b: String = (0..lb)
            .map(|_| alphabet[(next() % 3) as usize] as char)
            .collect();
        script.push_str(&format!("MSET a{i} \"{a}\" b{i} \"{b}\"\n"));
        script.push_str(&format!("LCS a{i} b{i}\n"));
        script.push_str(&format!("LCS a{i} b{i} IDX WITHMATCHLEN\n"));
        script.push_str(&format!("LCS a{i} b{i} IDX MINMATCHLEN 2\n"));
    }
    support::run_script("lcs_random", &script);
}

#[test]
fn pipelined_string_commands_reply_in_order() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let mut p = redis::pipe();
    p.cmd("SET").arg("p").arg("1");
    p.cmd("INCR").arg("p");
    p.cmd("APPEND").arg("p").arg("0");
    p.cmd("GETRANGE").arg("p").arg(0).arg(-1);
    p.cmd("GETDEL").arg("p");
    p.cmd("GET").arg("p");
    let replies: Vec<Value> = p.query(&mut con).unwrap();
    assert_eq!(
        replies,
        vec![
            Value::Okay,
            Value::Int(2),
            Value::Int(2),
            Value::BulkString(b"20".to_vec()),
            Value::BulkString(b"20".to_vec()),
            Value::Nil,
        ]
    );
}

#[test]
fn every_string_command_records_an_access_on_the_keys_it_reads() {
    let s = TestServer::kiln(&[]);
    let mut raw = s.raw();
    let touched: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    for k in &touched {
        raw.cmd(&["SET", k, "v"]);
    }
    raw.cmd(&["SET", "control", "v"]);
    std::thread::sleep(Duration::from_millis(2200));
    // Reads, and writes that end up changing nothing, all look the key up.
    raw.cmd(&["STRLEN", "t0"]);
    raw.cmd(&["GETRANGE", "t1", "0", "0"]);
    raw.cmd(&["SUBSTR", "t2", "0", "0"]);
    raw.cmd(&["LCS", "t3", "nokey"]);
    raw.cmd(&["SETRANGE", "t4", "0", ""]);
    raw.cmd(&["MSETNX", "t5", "x"]);
    raw.cmd(&["SET", "t6", "x", "NX"]);
    raw.cmd(&["GETEX", "t7"]);
    raw.cmd(&["MGET", "nokey", "t8"]);
    raw.cmd(&["INCR", "t9"]);
    for k in &touched {
        let idle = raw.cmd(&["OBJECT", "IDLETIME", k]);
        assert!(idle == ":0\r\n" || idle == ":1\r\n", "{k}: {idle:?}");
    }
    let idle = raw.cmd(&["OBJECT", "IDLETIME", "control"]);
    assert!(idle != ":0\r\n" && idle != ":1\r\n", "control: {idle:?}");
}
