//! Black-box tests of the stream commands, for what a differential script cannot show:
//! blocking XREAD (served by XADD from other clients, `$`, timeouts, several waiters) and
//! generated IDs. The differential scripts are in `tests/diff/streams/` (those in its
//! `debug/` folder run with DEBUG enabled).

mod support;

use support::TestServer;

#[test]
fn stream_commands_match_redis() {
    support::run_script_dir("streams");
}

/// The scripts of `tests/diff/streams/debug/` need DEBUG enabled on both servers.
#[test]
fn stream_digests_match_redis() {
    support::run_script_with(
        "debug/digest.txt",
        include_str!("diff/streams/debug/digest.txt"),
        &["--enable-debug-command", "yes"],
    );
}

#[test]
fn xadd_with_a_star_generates_increasing_ids() {
    let s = TestServer::kiln(&[]);
    let mut r = s.raw();
    let a = r.cmd(&["XADD", "s", "*", "f", "v"]);
    let b = r.cmd(&["XADD", "s", "*", "f", "v"]);
    let parse = |x: &str| -> (u64, u64) {
        let id = x.lines().nth(1).unwrap();
        let (ms, seq) = id.split_once('-').unwrap();
        (ms.parse().unwrap(), seq.parse().unwrap())
    };
    assert!(parse(&b) > parse(&a));
    assert_eq!(r.cmd(&["XLEN", "s"]), ":2\r\n");
}

#[test]
fn a_blocked_xread_is_woken_by_xadd_from_another_client() {
    let s = TestServer::kiln(&[]);
    let mut reader = s.raw();
    reader.send_cmd(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
    s.raw().wait_blocked(1);
    let mut writer = s.raw();
    assert_eq!(writer.cmd(&["XADD", "s", "1-1", "f", "v"]), "$3\r\n1-1\r\n");
    assert_eq!(
        reply(&mut reader),
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
}

#[test]
fn xread_with_dollar_only_sees_entries_added_after_the_call() {
    let s = TestServer::kiln(&[]);
    let mut writer = s.raw();
    writer.cmd(&["XADD", "s", "1", "old", "x"]);
    let mut reader = s.raw();
    reader.send_cmd(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
    s.raw().wait_blocked(1);
    // An entry below the last ID cannot be added; a later one wakes the reader with only it.
    writer.cmd(&["XADD", "s", "2", "new", "y"]);
    let reply = reply(&mut reader);
    assert!(reply.contains("new"));
    assert!(!reply.contains("old"));
}

#[test]
fn a_blocked_xread_times_out_with_a_null_array() {
    let s = TestServer::kiln(&[]);
    let mut r = s.raw();
    assert_eq!(
        r.cmd(&["XREAD", "BLOCK", "50", "STREAMS", "s", "0"]),
        "*-1\r\n"
    );
    r.cmd(&["HELLO", "3"]);
    assert_eq!(
        r.cmd(&["XREAD", "BLOCK", "50", "STREAMS", "s", "0"]),
        "_\r\n"
    );
}

#[test]
fn every_blocked_xread_on_a_stream_gets_the_new_entry() {
    let s = TestServer::kiln(&[]);
    let mut readers: Vec<_> = (0..3).map(|_| s.raw()).collect();
    for r in readers.iter_mut() {
        r.send_cmd(&["XREAD", "BLOCK", "0", "STREAMS", "other", "s", "0", "0"]);
    }
    s.raw().wait_blocked(3);
    let mut w = s.raw();
    w.cmd(&["XADD", "s", "7", "f", "v"]);
    for r in readers.iter_mut() {
        let reply = reply(r);
        assert!(reply.starts_with("*1\r\n*2\r\n$1\r\ns\r\n"));
        assert!(reply.contains("7-0"));
    }
}

#[test]
fn xadd_inside_multi_wakes_a_blocked_xread() {
    let s = TestServer::kiln(&[]);
    let mut reader = s.raw();
    reader.send_cmd(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
    s.raw().wait_blocked(1);
    let mut w = s.raw();
    w.cmd(&["MULTI"]);
    w.cmd(&["XADD", "s", "3", "f", "v"]);
    w.cmd(&["EXEC"]);
    assert!(reply(&mut reader).contains("3-0"));
}

/// The next reply on a raw connection, as text.
fn reply(r: &mut support::Raw) -> String {
    String::from_utf8(r.read_reply().unwrap()).unwrap()
}

#[test]
fn a_blocked_xreadgroup_gets_the_new_entry_and_it_becomes_pending() {
    let s = TestServer::kiln(&[]);
    let mut w = s.raw();
    w.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    let mut reader = s.raw();
    reader.send_cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "alice",
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">",
    ]);
    s.raw().wait_blocked(1);
    w.cmd(&["XADD", "s", "5-1", "f", "v"]);
    assert_eq!(
        reply(&mut reader),
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
    let pending = w.cmd(&["XPENDING", "s", "g"]);
    assert!(pending.starts_with(":1\r\n") || pending.starts_with("*4\r\n:1\r\n"));
    assert!(pending.contains("alice"));
}

#[test]
fn blocked_consumers_of_one_group_share_the_entries_first_come_first_served() {
    let s = TestServer::kiln(&[]);
    let mut w = s.raw();
    w.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    let mut first = s.raw();
    first.send_cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "a",
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">",
    ]);
    s.raw().wait_blocked(1);
    let mut second = s.raw();
    second.send_cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "b",
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">",
    ]);
    s.raw().wait_blocked(2);
    w.cmd(&["XADD", "s", "1", "n", "1"]);
    assert!(reply(&mut first).contains("1-0"));
    w.cmd(&["XADD", "s", "2", "n", "2"]);
    let r = reply(&mut second);
    assert!(r.contains("2-0"));
    assert!(!r.contains("1-0"));
}

#[test]
fn a_blocked_xreadgroup_times_out_with_a_null_array() {
    let s = TestServer::kiln(&[]);
    let mut r = s.raw();
    r.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    assert_eq!(
        r.cmd(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "BLOCK",
            "30",
            "STREAMS",
            "s",
            ">"
        ]),
        "*-1\r\n"
    );
}

#[test]
fn xread_blocked_on_several_streams_is_served_by_the_one_that_gets_data() {
    let s = TestServer::kiln(&[]);
    let mut w = s.raw();
    w.cmd(&["XADD", "a", "1", "x", "1"]);
    let mut reader = s.raw();
    reader.send_cmd(&["XREAD", "BLOCK", "0", "STREAMS", "a", "b", "$", "$"]);
    s.raw().wait_blocked(1);
    w.cmd(&["XADD", "b", "9", "y", "2"]);
    let r = reply(&mut reader);
    assert!(r.starts_with("*1\r\n*2\r\n$1\r\nb\r\n"));
}

#[test]
fn a_large_stream_reads_back_in_order_from_any_id() {
    let s = TestServer::kiln(&[]);
    let mut c = s.client();
    let mut pipe = redis::pipe();
    for i in 1..=5000u64 {
        pipe.cmd("XADD")
            .arg("s")
            .arg(format!("{}-{}", i / 7, i))
            .arg("f")
            .arg(i)
            .ignore();
    }
    let () = pipe.query(&mut c).unwrap();
    let n: u64 = redis::cmd("XLEN").arg("s").query(&mut c).unwrap();
    assert_eq!(n, 5000);
    let got: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg("s")
        .arg("300")
        .arg("+")
        .arg("COUNT")
        .arg(3)
        .query(&mut c)
        .unwrap();
    let ids: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(ids, vec!["300-2100", "300-2101", "300-2102"]);
    let back: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
        .arg("s")
        .arg("300-2101")
        .arg("-")
        .arg("COUNT")
        .arg(2)
        .query(&mut c)
        .unwrap();
    assert_eq!(back[0].0, "300-2101");
    assert_eq!(back[1].0, "300-2100");
    let trimmed: u64 = redis::cmd("XTRIM")
        .arg("s")
        .arg("MAXLEN")
        .arg(10)
        .query(&mut c)
        .unwrap();
    assert_eq!(trimmed, 4990);
}
