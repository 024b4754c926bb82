//! CLIENT PAUSE and UNPAUSE on the real server, with several connections: which commands a
//! WRITE pause holds back (writes, EVAL, PUBLISH, PFCOUNT, EXEC of a queued write) and which
//! it lets through, an ALL pause, expiry held back while writes are paused. Where
//! redis-server is installed the same steps run against it and both must agree. The held
//! state is observed through INFO blocked_clients (polled), never by sleeping.

mod support;

use support::{poll, servers, Raw, TestServer};

fn blocked(c: &mut Raw) -> String {
    c.info_field("clients", "blocked_clients")
        .unwrap_or_default()
}

/// Sends `args` on a new connection while writes are paused: the request must be held
/// (INFO shows one blocked client) and answered with `reply` once the pause ends.
fn held_until_unpause(
    s: &TestServer,
    admin: &mut Raw,
    setup: &[&[&str]],
    args: &[&str],
    reply: &str,
) {
    let mut c = s.raw();
    for a in setup {
        assert!(!c.cmd(a).starts_with('-'), "{a:?}");
    }
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]),
        "+OK\r\n"
    );
    c.send_cmd(args);
    poll("the request to be held", || {
        (blocked(admin) == "1").then_some(())
    });
    assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]), "+OK\r\n");
    let got = String::from_utf8_lossy(&c.read_reply().unwrap()).into_owned();
    assert_eq!(got, reply, "{args:?}");
    poll("nothing held", || (blocked(admin) == "0").then_some(()));
}

#[test]
fn a_write_pause_holds_writes_and_lets_reads_through() {
    for (name, s) in servers(&[]) {
        let mut admin = s.raw();
        assert_eq!(admin.cmd(&["SET", "k", "v"]), "+OK\r\n");
        assert_eq!(
            admin.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]),
            "+OK\r\n"
        );
        let mut r = s.raw();
        // Reads, read-only scripts and pings are served during the pause.
        assert_eq!(r.cmd(&["GET", "k"]), "$1\r\nv\r\n", "{name}");
        assert_eq!(r.cmd(&["EVAL_RO", "return 1", "0"]), ":1\r\n", "{name}");
        assert_eq!(r.cmd(&["PING"]), "+PONG\r\n", "{name}");
        // Errors are answered at once.
        assert!(
            r.cmd(&["SET", "k"]).starts_with("-ERR wrong number"),
            "{name}"
        );
        assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]), "+OK\r\n");
        held_until_unpause(&s, &mut admin, &[], &["SET", "k", "w"], "+OK\r\n");
        held_until_unpause(&s, &mut admin, &[], &["EVAL", "return 2", "0"], ":2\r\n");
        held_until_unpause(&s, &mut admin, &[], &["PUBLISH", "ch", "m"], ":0\r\n");
        held_until_unpause(&s, &mut admin, &[], &["PFCOUNT", "h"], ":0\r\n");
        // A transaction that queued a write before the pause: its EXEC is held.
        held_until_unpause(
            &s,
            &mut admin,
            &[&["MULTI"], &["INCR", "n"]],
            &["EXEC"],
            "*1\r\n:1\r\n",
        );
        assert_eq!(admin.cmd(&["GET", "k"]), "$1\r\nw\r\n", "{name}");
    }
}

#[test]
fn an_all_pause_holds_every_command_until_its_deadline() {
    for (name, s) in servers(&[]) {
        let mut admin = s.raw();
        let mut c = s.raw();
        assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "300", "ALL"]), "+OK\r\n");
        // Even CLIENT UNPAUSE waits (as in Redis); the deadline ends the pause.
        c.send_cmd(&["PING"]);
        admin.send_cmd(&["CLIENT", "UNPAUSE"]);
        assert_eq!(c.read_reply().unwrap(), b"+PONG\r\n", "{name}");
        assert_eq!(admin.read_reply().unwrap(), b"+OK\r\n", "{name}");
        // A pause in force keeps the stricter kind: WRITE after ALL still holds reads
        // (observed on the pausing connection itself, whose next command waits too).
        assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "300", "ALL"]), "+OK\r\n");
        admin.send_cmd(&["CLIENT", "PAUSE", "10", "WRITE"]);
        c.send_cmd(&["GET", "k"]);
        assert_eq!(admin.read_reply().unwrap(), b"+OK\r\n", "{name}");
        assert_eq!(c.read_reply().unwrap(), b"$-1\r\n", "{name}");
        assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]), "+OK\r\n");
    }
}

#[test]
fn keys_do_not_expire_while_writes_are_paused() {
    for (name, s) in servers(&[]) {
        let mut admin = s.raw();
        assert_eq!(admin.cmd(&["SET", "gone", "v", "PX", "50"]), "+OK\r\n");
        assert_eq!(
            admin.cmd(&["CLIENT", "PAUSE", "100000", "WRITE"]),
            "+OK\r\n"
        );
        // Past its deadline the key reads as missing, but stays until writes resume.
        poll("the key to read as expired", || {
            (admin.cmd(&["GET", "gone"]) == "$-1\r\n").then_some(())
        });
        assert_eq!(admin.cmd(&["DBSIZE"]), ":1\r\n", "{name}");
        assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]), "+OK\r\n");
        poll("the key to be deleted", || {
            admin.cmd(&["GET", "gone"]);
            (admin.cmd(&["DBSIZE"]) == ":0\r\n").then_some(())
        });
    }
}

#[test]
fn pause_arguments_are_checked_as_redis_does() {
    for (name, s) in servers(&[]) {
        let mut c = s.raw();
        for (args, reply) in [
            (&["CLIENT", "PAUSE", "-1"][..], "-ERR timeout is negative\r\n"),
            (&["CLIENT", "PAUSE", "x"], "-ERR timeout is not an integer or out of range\r\n"),
            (&["CLIENT", "PAUSE", "10", "read"], "-ERR CLIENT PAUSE mode must be WRITE or ALL\r\n"),
            (
                &["CLIENT", "PAUSE", "10", "all", "x"],
                "-ERR unknown subcommand or wrong number of arguments for 'PAUSE'. Try CLIENT HELP.\r\n",
            ),
            (&["CLIENT", "UNPAUSE", "x"], "-ERR wrong number of arguments for 'client|unpause' command\r\n"),
            (&["CLIENT", "UNPAUSE"], "+OK\r\n"),
            (&["CLIENT", "PAUSE", "0"], "+OK\r\n"),
        ] {
            assert_eq!(c.cmd(args), reply, "{name}: {args:?}");
        }
    }
}
