//! DUMP and RESTORE, black-box: replies compared with Redis 7.0 (tests/diff/dump), and
//! the effects Redis has: keyspace events, blocked clients served, WATCH invalidated, the
//! access clock set back, versions and damaged payloads.

mod support;

use kiln::rdb::crc;
use support::{Raw, TestServer};

/// A DUMP payload of the string "hello" (Redis 7.0's bytes).
const HELLO: &[u8] = b"\x00\x05hello\x0a\x00cr\xdfve4 \x0a";

#[test]
fn dump_and_restore_replies_match_redis() {
    support::run_script_dir("dump");
}

/// The keyspace events (event, key) the commands raise, with `KEA` notifications.
fn events(s: &TestServer, cmds: &[Vec<&[u8]>]) -> Vec<(String, String)> {
    let mut sub = s.raw();
    sub.cmd(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    let mut c = s.raw();
    c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    for cmd in cmds {
        c.send_cmd(cmd);
        c.read_reply().unwrap();
    }
    c.cmd(&["SET", "end", "x"]);
    let mut out = Vec::new();
    loop {
        let reply = sub.read_reply().unwrap();
        let (v, _) = kiln_resp::decode(&reply).unwrap();
        let kiln_resp::Value::Array(parts) = v else {
            panic!("not a message: {v:?}");
        };
        let text: Vec<String> = parts
            .iter()
            .map(|p| match p {
                kiln_resp::Value::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                other => format!("{other:?}"),
            })
            .collect();
        let event = text[2].trim_start_matches("__keyevent@0__:").to_string();
        if text[3] == "end" {
            return out;
        }
        out.push((event, text[3].clone()));
    }
}

#[test]
fn restore_raises_the_events_redis_raises() {
    let cmds: Vec<Vec<&[u8]>> = vec![
        vec![b"RESTORE", b"a", b"0", HELLO],
        vec![b"RESTORE", b"a", b"0", HELLO, b"REPLACE"],
        vec![b"RESTORE", b"a", b"1", HELLO, b"ABSTTL", b"REPLACE"],
        vec![b"RESTORE", b"b", b"1", HELLO, b"ABSTTL"],
        vec![b"RESTORE", b"c", b"100000", HELLO],
        vec![b"RESTORE", b"c", b"0", b"bad payload"],
    ];
    let k = TestServer::kiln(&[]);
    let got = events(&k, &cmds);
    let want: Vec<(String, String)> = [
        ("restore", "a"),
        ("restore", "a"),
        ("del", "a"),
        ("restore", "c"),
    ]
    .iter()
    .map(|(e, k)| (e.to_string(), k.to_string()))
    .collect();
    assert_eq!(got, want);
    if let Some(r) = TestServer::redis(&[]) {
        assert_eq!(events(&r, &cmds), want);
    }
}

/// A list payload: RPUSH l a b c.
fn list_payload(s: &TestServer) -> Vec<u8> {
    let mut c = s.client();
    redis::cmd("RPUSH")
        .arg("tmp")
        .arg(&["a", "b", "c"])
        .query::<i64>(&mut c)
        .unwrap();
    let p: Vec<u8> = redis::cmd("DUMP").arg("tmp").query(&mut c).unwrap();
    redis::cmd("DEL").arg("tmp").query::<i64>(&mut c).unwrap();
    p
}

#[test]
fn a_restored_list_serves_a_blocked_client() {
    let k = TestServer::kiln(&[]);
    let payload = list_payload(&k);
    let mut waiter = k.raw();
    waiter.send_cmd(&["BLPOP", "q", "0"]);
    // Wait until the server has the client blocked.
    k.raw().wait_blocked(1);
    let mut c = k.client();
    let ok: String = redis::cmd("RESTORE")
        .arg("q")
        .arg(0)
        .arg(&payload)
        .query(&mut c)
        .unwrap();
    assert_eq!(ok, "OK");
    let reply = waiter.read_reply().unwrap();
    assert_eq!(reply, b"*2\r\n$1\r\nq\r\n$1\r\na\r\n");
    let rest: Vec<String> = redis::cmd("LRANGE")
        .arg("q")
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap();
    assert_eq!(rest, ["b", "c"]);
}

#[test]
fn restore_invalidates_a_watch_of_its_key() {
    let k = TestServer::kiln(&[]);
    let mut w = k.raw();
    w.cmd(&["WATCH", "k"]);
    let mut c = k.raw();
    c.send_cmd(&[&b"RESTORE"[..], b"k", b"0", HELLO]);
    assert_eq!(c.read_reply().unwrap(), b"+OK\r\n");
    w.cmd(&["MULTI"]);
    w.cmd(&["GET", "k"]);
    assert_eq!(w.cmd(&["EXEC"]), "*-1\r\n");
}

#[test]
fn idletime_sets_the_access_clock_back() {
    let k = TestServer::kiln(&[]);
    let mut c = k.raw();
    c.send_cmd(&[&b"RESTORE"[..], b"k", b"0", HELLO, b"IDLETIME", b"1000"]);
    assert_eq!(c.read_reply().unwrap(), b"+OK\r\n");
    let idle = c.cmd(&["OBJECT", "IDLETIME", "k"]);
    let n: u64 = idle.trim_start_matches(':').trim().parse().unwrap();
    assert!((1000..1010).contains(&n), "{n}");
}

/// `payload` with its version set to `v` and the checksum recomputed.
fn with_version(payload: &[u8], v: u16) -> Vec<u8> {
    let n = payload.len();
    let mut p = payload[..n - 10].to_vec();
    p.extend_from_slice(&v.to_le_bytes());
    let c = crc::crc64(&p);
    p.extend_from_slice(&c.to_le_bytes());
    p
}

#[test]
fn payloads_up_to_rdb_12_restore_and_newer_ones_are_refused() {
    let k = TestServer::kiln(&[]);
    let mut c: Raw = k.raw();
    for (v, want) in [
        (9u16, "+OK\r\n"),
        (11, "+OK\r\n"),
        (12, "+OK\r\n"),
        (13, "-ERR DUMP payload version or checksum are wrong\r\n"),
    ] {
        let p = with_version(HELLO, v);
        let key = format!("k{v}");
        c.send_cmd(&[b"RESTORE", key.as_bytes(), b"0", &p]);
        let got = String::from_utf8(c.read_reply().unwrap()).unwrap();
        assert_eq!(got, want, "version {v}");
    }
}

#[test]
fn every_type_round_trips_through_dump_and_restore() {
    let k = TestServer::kiln(&["--enable-debug-command", "yes"]);
    let mut c = k.client();
    let setup: &[&[&str]] = &[
        &["SET", "s", "hello"],
        &["SET", "i", "-123456789"],
        &["RPUSH", "l", "a", "1", "b"],
        &["HSET", "h", "f", "v"],
        &["SADD", "is", "1", "2"],
        &["SADD", "ss", "a", "b"],
        &["ZADD", "z", "1.5", "a"],
        &["XADD", "x", "1-1", "f", "v"],
    ];
    for cmd in setup {
        redis::cmd(cmd[0])
            .arg(&cmd[1..])
            .query::<redis::Value>(&mut c)
            .unwrap();
    }
    for i in 0..1000 {
        redis::cmd("HSET")
            .arg("bh")
            .arg(i)
            .arg(i)
            .query::<i64>(&mut c)
            .unwrap();
        redis::cmd("SADD")
            .arg("bs")
            .arg(format!("m{i}"))
            .query::<i64>(&mut c)
            .unwrap();
        redis::cmd("SADD")
            .arg("bi")
            .arg(i)
            .query::<i64>(&mut c)
            .unwrap();
        redis::cmd("ZADD")
            .arg("bz")
            .arg(i)
            .arg(i)
            .query::<i64>(&mut c)
            .unwrap();
        redis::cmd("RPUSH")
            .arg("bl")
            .arg(format!("element {i}"))
            .query::<i64>(&mut c)
            .unwrap();
    }
    for key in [
        "s", "i", "l", "h", "is", "ss", "z", "x", "bh", "bs", "bi", "bz", "bl",
    ] {
        let p: Vec<u8> = redis::cmd("DUMP").arg(key).query(&mut c).unwrap();
        let copy = format!("{key}:copy");
        let ok: String = redis::cmd("RESTORE")
            .arg(&copy)
            .arg(0)
            .arg(&p)
            .query(&mut c)
            .unwrap();
        assert_eq!(ok, "OK");
        let d: Vec<String> = redis::cmd("DEBUG")
            .arg("DIGEST-VALUE")
            .arg(key)
            .arg(&copy)
            .query(&mut c)
            .unwrap();
        assert_eq!(d[0], d[1], "{key}");
        let enc = |k: &str, c: &mut redis::Connection| -> String {
            redis::cmd("OBJECT")
                .arg("ENCODING")
                .arg(k)
                .query(c)
                .unwrap()
        };
        assert_eq!(enc(key, &mut c), enc(&copy, &mut c), "{key}");
    }
}

#[test]
fn deeply_damaged_payloads_are_bad_data_format_and_the_server_carries_on() {
    let k = TestServer::kiln(&[]);
    let mut c = k.raw();
    let seal = |body: &[u8]| with_version(&[body, &[0u8; 10][..]].concat(), 10);
    let bad: Vec<Vec<u8>> = vec![
        // An intset out of order (Redis accepts it unless sanitize-dump-payload is yes).
        seal(b"\x0b\x0e\x02\x00\x00\x00\x03\x00\x00\x00\x03\x00\x02\x00\x01\x00"),
        // A listpack hash whose header counts 3 elements but holds 4.
        seal(b"\x10\x17\x17\x00\x00\x00\x03\x00\x82f1\x03\x82v1\x03\x82f2\x03\x82v2\x03\xff"),
        // A listpack hash with an odd number of elements.
        seal(b"\x10\x0f\x0f\x00\x00\x00\x01\x00\x82f1\x03\xff\x00\x00\x00\x00"),
        // A quicklist node of an unknown container kind.
        seal(b"\x12\x01\x07\x01a"),
        // A module value.
        seal(b"\x07\x00"),
    ];
    for p in &bad {
        c.send_cmd(&[&b"RESTORE"[..], b"k", b"0", p]);
        assert_eq!(c.read_reply().unwrap(), b"-ERR Bad data format\r\n");
    }
    assert_eq!(c.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(c.cmd(&["EXISTS", "k"]), ":0\r\n");
}
