//! Client-side caching on the real server, with several connections: RESP3 `invalidate`
//! pushes, RESP2 invalidations through a redirect connection subscribed to
//! `__redis__:invalidate`, BCAST prefixes, OPTIN with CLIENT CACHING, NOLOOP, a flush's
//! null invalidation, expiry, and the INFO / CLIENT LIST / TRACKINGINFO fields. Where
//! redis-server is installed the same steps run against it and both must agree. Messages
//! are awaited by reading, never by sleeping.

mod support;

use support::{poll, servers, Raw, TestServer};

fn resp3(s: &TestServer) -> Raw {
    let mut c = s.raw();
    assert!(c.cmd(&["HELLO", "3"]).starts_with('%'));
    c
}

fn invalidate(keys: &[&str]) -> String {
    let mut m = format!(">2\r\n$10\r\ninvalidate\r\n*{}\r\n", keys.len());
    for k in keys {
        m.push_str(&format!("${}\r\n{k}\r\n", k.len()));
    }
    m
}

fn read(c: &mut Raw) -> String {
    String::from_utf8_lossy(&c.read_reply().expect("a message")).into_owned()
}

#[test]
fn a_change_invalidates_what_a_resp3_client_read() {
    for (name, s) in servers(&[]) {
        let mut a = resp3(&s);
        let mut b = s.raw();
        assert_eq!(a.cmd(&["CLIENT", "TRACKING", "ON"]), "+OK\r\n");
        assert_eq!(a.cmd(&["GET", "k"]), "_\r\n", "{name}");
        assert_eq!(a.cmd(&["MGET", "k2", "k3"]), "*2\r\n_\r\n_\r\n", "{name}");
        assert_eq!(b.cmd(&["SET", "k", "v"]), "+OK\r\n");
        assert_eq!(read(&mut a), invalidate(&["k"]), "{name}");
        // Forgotten once invalidated: a second change says nothing until read again.
        assert_eq!(b.cmd(&["SET", "k", "w"]), "+OK\r\n");
        assert_eq!(b.cmd(&["DEL", "k2"]), ":0\r\n");
        assert_eq!(b.cmd(&["SET", "k3", "x"]), "+OK\r\n");
        assert_eq!(read(&mut a), invalidate(&["k3"]), "{name}");
        // Its own write: the reply first, then the invalidation.
        assert_eq!(a.cmd(&["GET", "k"]), "$1\r\nw\r\n");
        a.send_cmd(&["SET", "k", "z"]);
        assert_eq!(read(&mut a), "+OK\r\n", "{name}");
        assert_eq!(read(&mut a), invalidate(&["k"]), "{name}");
        // INFO and CLIENT LIST see the tracking client and the keys it follows (k, and k2,
        // which the DEL of a missing key did not change).
        assert_eq!(a.cmd(&["GET", "k"]), "$1\r\nz\r\n");
        assert_eq!(
            b.info_field("clients", "tracking_clients").unwrap(),
            "1",
            "{name}"
        );
        assert_eq!(
            b.info_field("stats", "tracking_total_keys").unwrap(),
            "2",
            "{name}"
        );
        let list = b.cmd(&["CLIENT", "LIST"]);
        assert!(list.contains("flags=t "), "{name}: {list}");
        // A flush invalidates everything with a null.
        assert_eq!(b.cmd(&["FLUSHALL"]), "+OK\r\n");
        assert_eq!(read(&mut a), ">2\r\n$10\r\ninvalidate\r\n_\r\n", "{name}");
        assert_eq!(
            b.info_field("stats", "tracking_total_keys").unwrap(),
            "0",
            "{name}"
        );
        assert_eq!(a.cmd(&["CLIENT", "TRACKING", "OFF"]), "+OK\r\n");
        assert_eq!(
            b.info_field("clients", "tracking_clients").unwrap(),
            "0",
            "{name}"
        );
    }
}

#[test]
fn noloop_leaves_out_a_clients_own_writes() {
    for (name, s) in servers(&[]) {
        let mut a = resp3(&s);
        let mut b = s.raw();
        assert_eq!(a.cmd(&["CLIENT", "TRACKING", "ON", "NOLOOP"]), "+OK\r\n");
        assert_eq!(a.cmd(&["GET", "k"]), "_\r\n");
        assert_eq!(a.cmd(&["SET", "k", "mine"]), "+OK\r\n");
        assert_eq!(
            a.cmd(&["PING"]),
            "+PONG\r\n",
            "{name}: an invalidation came first"
        );
        assert_eq!(a.cmd(&["GET", "k"]), "$4\r\nmine\r\n");
        assert_eq!(b.cmd(&["SET", "k", "theirs"]), "+OK\r\n");
        assert_eq!(read(&mut a), invalidate(&["k"]), "{name}");
    }
}

#[test]
fn a_resp2_client_hears_through_a_subscribed_redirect_connection() {
    for (name, s) in servers(&[]) {
        let mut r = s.raw();
        let rid = r.cmd(&["CLIENT", "ID"]);
        let rid = rid.trim_start_matches(':').trim();
        r.send_cmd(&["SUBSCRIBE", "__redis__:invalidate"]);
        assert!(read(&mut r).contains("subscribe"));
        let mut a = s.raw();
        assert_eq!(
            a.cmd(&["CLIENT", "TRACKING", "ON", "REDIRECT", rid]),
            "+OK\r\n"
        );
        assert_eq!(
            a.cmd(&["CLIENT", "GETREDIR"]),
            format!(":{rid}\r\n"),
            "{name}"
        );
        assert_eq!(a.cmd(&["GET", "k"]), "$-1\r\n");
        let mut b = s.raw();
        assert_eq!(b.cmd(&["SET", "k", "v"]), "+OK\r\n");
        assert_eq!(
            read(&mut r),
            "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n",
            "{name}"
        );
        let list = b.cmd(&["CLIENT", "LIST"]);
        assert!(list.contains(&format!("redir={rid} ")), "{name}: {list}");
        assert_eq!(b.cmd(&["FLUSHDB"]), "+OK\r\n");
        assert_eq!(
            read(&mut r),
            "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n",
            "{name}"
        );
    }
}

#[test]
fn bcast_clients_hear_of_every_change_under_their_prefixes() {
    for (name, s) in servers(&[]) {
        let mut a = resp3(&s);
        let mut b = s.raw();
        assert_eq!(
            a.cmd(&["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:", "PREFIX", "cfg"]),
            "+OK\r\n"
        );
        assert_eq!(b.cmd(&["SET", "other", "1"]), "+OK\r\n");
        assert_eq!(b.cmd(&["SET", "user:1", "1"]), "+OK\r\n");
        assert_eq!(read(&mut a), invalidate(&["user:1"]), "{name}");
        assert_eq!(b.cmd(&["INCR", "cfg"]), ":1\r\n");
        assert_eq!(read(&mut a), invalidate(&["cfg"]), "{name}");
        assert_eq!(
            b.info_field("stats", "tracking_total_prefixes").unwrap(),
            "2",
            "{name}"
        );
        assert_eq!(
            a.cmd(&["CLIENT", "TRACKINGINFO"]),
            "%3\r\n$5\r\nflags\r\n~2\r\n$2\r\non\r\n$5\r\nbcast\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*2\r\n$3\r\ncfg\r\n$5\r\nuser:\r\n",
            "{name}"
        );
        assert_eq!(
            a.cmd(&["PING"]),
            "+PONG\r\n",
            "{name}: a change outside the prefixes was sent"
        );
    }
}

/// A command's changes under one prefix reach a BCAST client in one message, keys in
/// order (Redis sends them once per event-loop turn); a NOLOOP client hears only of the
/// others' changes.
#[test]
fn bcast_changes_of_one_command_come_in_one_message_per_prefix() {
    for (name, s) in servers(&[]) {
        let mut a = resp3(&s);
        let mut b = s.raw();
        assert_eq!(
            a.cmd(&["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "k", "PREFIX", "j"]),
            "+OK\r\n"
        );
        assert_eq!(
            b.cmd(&["MSET", "k2", "v", "x", "v", "k1", "v", "j9", "v"]),
            "+OK\r\n"
        );
        let mut got = [read(&mut a), read(&mut a)];
        got.sort();
        assert_eq!(
            got,
            [invalidate(&["j9"]), invalidate(&["k1", "k2"])],
            "{name}"
        );
        assert_eq!(b.cmd(&["DEL", "k2", "k1", "k3"]), ":2\r\n");
        assert_eq!(read(&mut a), invalidate(&["k1", "k2"]), "{name}");
        // NOLOOP: its own changes are left out of the same message.
        let mut n = resp3(&s);
        assert_eq!(
            n.cmd(&["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "k", "NOLOOP"]),
            "+OK\r\n"
        );
        assert_eq!(n.cmd(&["MSET", "k5", "v", "k4", "v"]), "+OK\r\n");
        assert_eq!(read(&mut a), invalidate(&["k4", "k5"]), "{name}");
        assert_eq!(b.cmd(&["SET", "k6", "v"]), "+OK\r\n");
        assert_eq!(read(&mut n), invalidate(&["k6"]), "{name}");
        assert_eq!(read(&mut a), invalidate(&["k6"]), "{name}");
    }
}

#[test]
fn optin_tracks_only_reads_after_client_caching_yes() {
    for (name, s) in servers(&[]) {
        let mut a = resp3(&s);
        let mut b = s.raw();
        assert_eq!(a.cmd(&["CLIENT", "TRACKING", "ON", "OPTIN"]), "+OK\r\n");
        assert_eq!(a.cmd(&["GET", "x"]), "_\r\n");
        assert_eq!(a.cmd(&["CLIENT", "CACHING", "YES"]), "+OK\r\n");
        assert_eq!(a.cmd(&["GET", "y"]), "_\r\n");
        // Only the one command after CACHING YES.
        assert_eq!(a.cmd(&["GET", "z"]), "_\r\n");
        assert_eq!(b.cmd(&["MSET", "x", "1", "y", "1", "z", "1"]), "+OK\r\n");
        assert_eq!(read(&mut a), invalidate(&["y"]), "{name}");
        assert_eq!(a.cmd(&["PING"]), "+PONG\r\n", "{name}");
    }
}

#[test]
fn keys_that_expire_are_invalidated() {
    for (name, s) in servers(&[]) {
        let mut a = resp3(&s);
        let mut b = s.raw();
        assert_eq!(b.cmd(&["SET", "t", "v", "PX", "30"]), "+OK\r\n");
        assert_eq!(a.cmd(&["CLIENT", "TRACKING", "ON"]), "+OK\r\n");
        assert_eq!(a.cmd(&["GET", "t"]), "$1\r\nv\r\n");
        // Active expiry (or the lookup below, whichever comes first) deletes it.
        poll("the key to expire", || {
            (b.cmd(&["EXISTS", "t"]) == ":0\r\n").then_some(())
        });
        assert_eq!(read(&mut a), invalidate(&["t"]), "{name}");
    }
}

/// Invalidations count against the receiver's output limit like any reply: a tracking
/// client that stops reading while its keys change is disconnected once what waits for it
/// passes `client-output-buffer-limit normal` (the kernel's socket buffers take the first
/// megabytes, hence the long keys).
#[test]
fn invalidations_count_against_the_output_limit() {
    let limit = ["--client-output-buffer-limit", "normal 1mb 0 0"];
    for (name, s) in servers(&limit) {
        let mut a = resp3(&s);
        let mut b = s.raw();
        assert_eq!(a.cmd(&["CLIENT", "SETNAME", "reader"]), "+OK\r\n");
        assert_eq!(a.cmd(&["CLIENT", "TRACKING", "ON"]), "+OK\r\n");
        let pad = "x".repeat(2000);
        let keys: Vec<String> = (0..8000).map(|i| format!("k:{i}:{pad}")).collect();
        for chunk in keys.chunks(100) {
            let mut mget = vec!["MGET"];
            mget.extend(chunk.iter().map(String::as_str));
            a.cmd(&mget);
        }
        // `a` reads no more; each SET below sends it a 2 KB invalidation.
        for chunk in keys.chunks(100) {
            for k in chunk {
                b.send_cmd(&["SET", k, "v"]);
            }
            for _ in chunk {
                assert_eq!(b.read_reply().unwrap(), b"+OK\r\n");
            }
        }
        poll(&format!("{name}: the reader to be disconnected"), || {
            support::client_line(&mut b, "reader")
                .is_none()
                .then_some(())
        });
    }
}
