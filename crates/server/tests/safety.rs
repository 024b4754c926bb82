//! What no client can do: keep the server from shutting down, or make a bug leave it
//! running in a state it cannot vouch for (see `crash`: a panic reports and aborts).

mod support;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::Duration;

use support::{Raw, TestServer, DEBUG_ON};

/// A data directory that outlives one server process (removed on drop).
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("kiln-safety-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }

    fn arg(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_panic_reports_and_exits_and_every_acknowledged_write_survives_the_restart() {
    let dir = Dir::new("panic");
    let log = dir.0.join("kiln.log");
    let (d, l) = (dir.arg(), log.to_string_lossy().into_owned());
    let args = [
        "--dir",
        &d,
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--logfile",
        &l,
        DEBUG_ON[0],
        DEBUG_ON[1],
    ];
    let mut kiln = TestServer::kiln(&args);
    let mut c = kiln.raw();
    // Acknowledged writes, from several clients, one of them mid-transaction and one
    // blocked when the panic comes.
    for i in 0..200 {
        assert_eq!(c.cmd(&["INCR", "counter"]), format!(":{}\r\n", i + 1));
        assert_eq!(c.cmd(&["SET", &format!("k{i}"), "v"]), "+OK\r\n");
    }
    let mut in_multi = kiln.raw();
    assert_eq!(in_multi.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(in_multi.cmd(&["INCR", "counter"]), "+QUEUED\r\n");
    let mut blocked = kiln.raw();
    blocked.send_cmd(&["BLPOP", "nolist", "0"]);
    c.wait_info("clients", "blocked_clients", "1");

    c.send_cmd(&["DEBUG", "PANIC"]);
    assert_eq!(c.read_reply(), None, "DEBUG PANIC answers nothing");
    let status = kiln
        .wait_exit(Duration::from_secs(60))
        .expect("the process ends after a panic");
    assert_eq!(
        status.signal(),
        Some(libc_sigabrt()),
        "it aborts: {status:?}"
    );
    let report = std::fs::read_to_string(&log).unwrap();
    for part in [
        "=== KILN BUG REPORT START",
        "DEBUG PANIC called at Unix time",
        "command: debug",
        "argc: 2",
        "argv[1]: 5 bytes",
        "------ STACK TRACE ------",
        "connected_clients:",
        "=== KILN BUG REPORT END",
    ] {
        assert!(
            report.contains(part),
            "the report lacks {part:?}:\n{report}"
        );
    }
    assert_eq!(in_multi.read_reply(), None);
    assert_eq!(blocked.read_reply(), None);

    // What a supervisor does: start it again on the same data.
    let kiln = TestServer::kiln(&args);
    let mut c = kiln.raw();
    assert_eq!(c.cmd(&["GET", "counter"]), "$3\r\n200\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]), ":201\r\n");
}

fn libc_sigabrt() -> i32 {
    6
}

/// Clients in every state that could hold a server up: blocked forever, in a transaction
/// holding queued writes, in the middle of a request, subscribed, and a pipeline it does not
/// read.
fn clients_in_every_state(kiln: &TestServer) -> Vec<Raw> {
    let mut admin = kiln.raw();
    let mut blocked = kiln.raw();
    blocked.send_cmd(&["BLPOP", "nolist", "0"]);
    let mut blocked_stream = kiln.raw();
    blocked_stream.send_cmd(&["XREAD", "BLOCK", "0", "STREAMS", "nostream", "$"]);
    admin.wait_info("clients", "blocked_clients", "2");
    let mut in_multi = kiln.raw();
    assert_eq!(in_multi.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(in_multi.cmd(&["SET", "a", "1"]), "+QUEUED\r\n");
    let mut mid_request = kiln.raw();
    mid_request.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000\r\nabc");
    let mut half_inline = kiln.raw();
    half_inline.send(b"SET k v");
    let mut subscribed = kiln.raw();
    subscribed.send_cmd(&["SUBSCRIBE", "ch"]);
    subscribed.read_reply().unwrap();
    let mut flood = kiln.raw();
    let big = "x".repeat(1 << 16);
    assert_eq!(admin.cmd(&["SET", "big", &big]), "+OK\r\n");
    for _ in 0..200 {
        flood.send_cmd(&["GET", "big"]);
    }
    vec![
        admin,
        blocked,
        blocked_stream,
        in_multi,
        mid_request,
        half_inline,
        subscribed,
        flood,
    ]
}

#[test]
fn sigterm_and_sigint_stop_the_server_whatever_its_clients_are_doing() {
    for sig in ["TERM", "INT"] {
        let mut kiln = TestServer::kiln(&["--threads", "2"]);
        let _clients = clients_in_every_state(&kiln);
        kiln.signal(sig);
        let status = kiln
            .wait_exit(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("SIG{sig} did not stop the server"));
        assert!(status.success(), "SIG{sig}: {status:?}");
    }
}

#[test]
fn shutdown_stops_the_server_whatever_its_clients_are_doing() {
    let mut kiln = TestServer::kiln(&["--threads", "2"]);
    let _clients = clients_in_every_state(&kiln);
    let mut c = kiln.raw();
    c.send_cmd(&["SHUTDOWN", "NOSAVE"]);
    assert_eq!(c.read_reply(), None);
    let status = kiln
        .wait_exit(Duration::from_secs(60))
        .expect("SHUTDOWN did not stop the server");
    assert!(status.success(), "{status:?}");
}

/// Every way a connection ends (its peer leaves, CLIENT KILL, an output limit, a protocol
/// error, QUIT) leaves nothing of it behind: not in the registry, not as a waiter, not as
/// a subscriber.
#[test]
fn every_way_a_connection_ends_leaves_nothing_behind() {
    let kiln = TestServer::kiln(&["--client-output-buffer-limit", "normal 1mb 0 0"]);
    let mut admin = kiln.raw();
    let settled = |admin: &mut Raw| {
        admin.wait_info("clients", "connected_clients", "1");
        admin.wait_info("clients", "blocked_clients", "0");
        assert_eq!(
            admin.cmd(&["PUBSUB", "NUMSUB", "ch"]),
            "*2\r\n$2\r\nch\r\n:0\r\n"
        );
        assert_eq!(admin.cmd(&["PUBSUB", "NUMPAT"]), ":0\r\n");
    };
    let id_of = |c: &mut Raw| {
        let r = c.cmd(&["CLIENT", "ID"]);
        r.trim_start_matches(':').trim().to_string()
    };

    // The peer leaves: while blocked, subscribed, watching, in MULTI, mid-request.
    {
        let mut blocked = kiln.raw();
        blocked.send_cmd(&["BLPOP", "l", "0"]);
        let mut sub = kiln.raw();
        sub.send_cmd(&["SUBSCRIBE", "ch"]);
        sub.read_reply().unwrap();
        let mut psub = kiln.raw();
        psub.send_cmd(&["PSUBSCRIBE", "c*"]);
        psub.read_reply().unwrap();
        let mut watching = kiln.raw();
        assert_eq!(watching.cmd(&["WATCH", "w"]), "+OK\r\n");
        assert_eq!(watching.cmd(&["MULTI"]), "+OK\r\n");
        let mut mid = kiln.raw();
        mid.send(b"*2\r\n$3\r\nGET\r\n$100\r\nab");
        admin.wait_info("clients", "blocked_clients", "1");
    }
    settled(&mut admin);

    // CLIENT KILL: while blocked and while subscribed.
    let mut blocked = kiln.raw();
    let bid = id_of(&mut blocked);
    blocked.send_cmd(&["BLPOP", "l", "0"]);
    let mut sub = kiln.raw();
    let sid = id_of(&mut sub);
    sub.send_cmd(&["SUBSCRIBE", "ch"]);
    sub.read_reply().unwrap();
    admin.wait_info("clients", "blocked_clients", "1");
    assert_eq!(admin.cmd(&["CLIENT", "KILL", "ID", &bid]), ":1\r\n");
    assert_eq!(admin.cmd(&["CLIENT", "KILL", "ID", &sid]), ":1\r\n");
    assert_eq!(blocked.read_reply(), None);
    settled(&mut admin);

    // The output limit: a client that pipelines big replies without reading.
    let big = "x".repeat(1 << 16);
    assert_eq!(admin.cmd(&["SET", "big", &big]), "+OK\r\n");
    let mut flood = kiln.raw();
    assert_eq!(flood.cmd(&["WATCH", "big"]), "+OK\r\n");
    for _ in 0..400 {
        // The server may close the connection (the limit) before the last ones are sent.
        if flood
            .stream
            .write_all(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n")
            .is_err()
        {
            break;
        }
    }
    settled(&mut admin);

    // A protocol error, and QUIT.
    let mut bad = kiln.raw();
    bad.send(b"*1\r\n$x\r\n");
    assert!(bad
        .read_reply()
        .unwrap()
        .starts_with(b"-ERR Protocol error"));
    let mut quits = kiln.raw();
    assert_eq!(quits.cmd(&["QUIT"]), "+OK\r\n");
    settled(&mut admin);
}
