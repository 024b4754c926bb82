//! Black-box tests of the connection commands (AUTH, HELLO, QUIT, RESET) and CLIENT: what
//! needs several connections, raw protocol bytes or a password, which the differential
//! scripts under tests/diff/connection cannot express.

mod support;

use std::thread::sleep;
use std::time::Duration;

use support::{Raw, TestServer};

/// The fields of a Redis 7.0 CLIENT LIST line, in order.
const CLIENT_FIELDS: &[&str] = &[
    "id",
    "addr",
    "laddr",
    "fd",
    "name",
    "age",
    "idle",
    "flags",
    "db",
    "sub",
    "psub",
    "ssub",
    "multi",
    "qbuf",
    "qbuf-free",
    "argv-mem",
    "multi-mem",
    "rbs",
    "rbp",
    "obl",
    "oll",
    "omem",
    "tot-mem",
    "events",
    "cmd",
    "user",
    "redir",
    "resp",
];

/// The body of a bulk or verbatim string reply.
fn text_of(reply: &str) -> String {
    let body = reply.split_once("\r\n").unwrap().1;
    let body = body.strip_suffix("\r\n").unwrap();
    body.strip_prefix("txt:").unwrap_or(body).to_string()
}

/// `key=value` pairs of one CLIENT LIST line.
fn fields(line: &str) -> Vec<(String, String)> {
    line.split(' ')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn field(line: &str, key: &str) -> String {
    fields(line).into_iter().find(|(k, _)| k == key).unwrap().1
}

fn client_id(c: &mut Raw) -> String {
    c.cmd(&["CLIENT", "ID"])
        .trim_start_matches(':')
        .trim()
        .to_string()
}

#[test]
fn commands_fail_with_noauth_until_auth_succeeds() {
    let s = TestServer::kiln(&["--requirepass", "pw"]);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["PING"]), "-NOAUTH Authentication required.\r\n");
    assert_eq!(
        c.cmd(&["CLIENT", "ID"]),
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        c.cmd(&["AUTH", "wrong"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(
        c.cmd(&["AUTH", "nobody", "pw"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(c.cmd(&["AUTH", "a", "b", "c"]), "-ERR syntax error\r\n");
    assert_eq!(c.cmd(&["PING"]), "-NOAUTH Authentication required.\r\n");
    assert_eq!(c.cmd(&["AUTH", "pw"]), "+OK\r\n");
    assert_eq!(c.cmd(&["PING"]), "+PONG\r\n");
    // A failed AUTH does not undo an earlier success.
    assert!(c.cmd(&["AUTH", "wrong"]).starts_with("-WRONGPASS"));
    assert_eq!(c.cmd(&["PING"]), "+PONG\r\n");
    let mut d = s.raw();
    assert_eq!(d.cmd(&["AUTH", "default", "pw"]), "+OK\r\n");
    assert_eq!(d.cmd(&["ECHO", "hi"]), "$2\r\nhi\r\n");
}

#[test]
fn hello_before_authenticating_fails_with_noauth_but_keeps_the_name() {
    let s = TestServer::kiln(&["--requirepass", "pw"]);
    let mut c = s.raw();
    let noauth = "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n";
    assert_eq!(c.cmd(&["HELLO"]), noauth);
    assert_eq!(c.cmd(&["HELLO", "3", "SETNAME", "early"]), noauth);
    assert_eq!(
        c.cmd(&["HELLO", "3", "AUTH", "default", "wrong"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(c.cmd(&["AUTH", "pw"]), "+OK\r\n");
    // Still RESP2: the failed HELLOs did not switch protocol.
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), "$5\r\nearly\r\n");
}

#[test]
fn hello_3_with_auth_and_setname_authenticates_names_and_switches_to_resp3() {
    let s = TestServer::kiln(&["--requirepass", "pw"]);
    let mut c = s.raw();
    let id = {
        let r = c.cmd(&["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "x"]);
        assert!(
            r.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n"),
            "{r}"
        );
        assert!(r.contains("$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:"), "{r}");
        assert!(r.ends_with(
            "$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
        ));
        r.split("$2\r\nid\r\n:")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(client_id(&mut c), id);
    assert_eq!(c.cmd(&["GET", "missing"]), "_\r\n");
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), "$1\r\nx\r\n");
    let info = c.cmd(&["CLIENT", "INFO"]);
    assert!(
        info.starts_with('=') && info.contains("\r\ntxt:id="),
        "{info}"
    );
    assert_eq!(field(text_of(&info).trim_end(), "resp"), "3");
    // Back to RESP2.
    assert!(c.cmd(&["HELLO", "2"]).starts_with("*14\r\n"));
    assert_eq!(c.cmd(&["GET", "missing"]), "$-1\r\n");
}

#[test]
fn hello_3_switches_replies_to_resp3() {
    let s = TestServer::kiln(&[]);
    let mut c = s.raw();
    assert!(c.cmd(&["HELLO", "3"]).starts_with("%7\r\n"));
    assert_eq!(c.cmd(&["GET", "missing"]), "_\r\n");
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), "_\r\n");
    assert_eq!(c.cmd(&["COMMAND", "INFO", "nosuch"]), "*1\r\n_\r\n");
    let info = c.cmd(&["COMMAND", "INFO", "get"]);
    assert!(
        info.starts_with("*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n"),
        "{info}"
    );
    assert!(c
        .cmd(&["COMMAND", "DOCS", "get"])
        .starts_with("%1\r\n$3\r\nget\r\n%"));
}

#[test]
fn requirepass_flows_match_redis() {
    support::run_script_with(
        "requirepass",
        "PING
         ~ HELLO
         ~ HELLO 3 SETNAME x
         AUTH x
         AUTH default x
         AUTH nouser pw
         HELLO 3 AUTH default wrong
         ECHO a
         CLIENT ID
         RESET
         AUTH pw
         CLIENT GETNAME
         ~ HELLO 3 AUTH default pw SETNAME y
         CLIENT GETNAME
         GET missing
         RESET
         GET missing
         PING
         AUTH default pw
         PING",
        &["--requirepass", "pw"],
    );
}

#[test]
fn the_redis_crate_connects_with_a_password() {
    let s = TestServer::kiln(&["--requirepass", "secret"]);
    let url = format!("redis://:secret@127.0.0.1:{}/", s.port);
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    let url = format!("redis://default:secret@127.0.0.1:{}/3", s.port);
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut con).unwrap();
    assert_eq!(field(info.trim_end(), "db"), "3");
    let url = format!("redis://:wrong@127.0.0.1:{}/", s.port);
    assert!(redis::Client::open(url).unwrap().get_connection().is_err());
}

#[test]
fn quit_replies_ok_then_closes() {
    let s = TestServer::kiln(&[]);
    let mut c = s.raw();
    // The reply to QUIT arrives, and nothing pipelined after it runs.
    c.send(b"*1\r\n$4\r\nQUIT\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
    assert_eq!(c.read_reply().unwrap(), b"+OK\r\n");
    assert!(c.is_closed());
    let mut d = s.raw();
    assert_eq!(d.cmd(&["EXISTS", "k"]), ":0\r\n");
}

#[test]
fn client_kill_by_id_closes_the_other_connection() {
    let s = TestServer::kiln(&[]);
    let mut a = s.raw();
    let mut b = s.raw();
    let id = client_id(&mut b);
    assert_eq!(a.cmd(&["CLIENT", "KILL", "ID", &id]), ":1\r\n");
    assert!(b.is_closed());
    assert_eq!(a.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(a.cmd(&["CLIENT", "KILL", "ID", &id]), ":0\r\n");
}

#[test]
fn client_kill_by_address_closes_the_connection_from_it() {
    let s = TestServer::kiln(&[]);
    let mut a = s.raw();
    let mut b = s.raw();
    let mut c = s.raw();
    // A round trip each, so the server has registered them.
    for x in [&mut a, &mut b, &mut c] {
        assert_eq!(x.cmd(&["PING"]), "+PONG\r\n");
    }
    let b_addr = b.stream.local_addr().unwrap().to_string();
    assert_eq!(a.cmd(&["CLIENT", "KILL", &b_addr]), "+OK\r\n");
    assert!(b.is_closed());
    assert_eq!(
        a.cmd(&["CLIENT", "KILL", &b_addr]),
        "-ERR No such client\r\n"
    );
    let c_addr = c.stream.local_addr().unwrap().to_string();
    assert_eq!(
        a.cmd(&["CLIENT", "KILL", "ADDR", &c_addr, "TYPE", "normal"]),
        ":1\r\n"
    );
    assert!(c.is_closed());
    // LADDR is the server's side: every connection here shares it; SKIPME spares the caller.
    let mut d = s.raw();
    assert_eq!(d.cmd(&["PING"]), "+PONG\r\n");
    let laddr = d.stream.peer_addr().unwrap().to_string();
    let n = a.cmd(&["CLIENT", "KILL", "LADDR", &laddr]);
    assert!(n.starts_with(':') && n != ":0\r\n", "{n}");
    assert!(d.is_closed());
    assert_eq!(a.cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn a_client_killing_itself_gets_the_reply_before_the_close() {
    let s = TestServer::kiln(&[]);
    let mut a = s.raw();
    let id = client_id(&mut a);
    assert_eq!(a.cmd(&["CLIENT", "KILL", "ID", &id]), ":0\r\n");
    assert_eq!(
        a.cmd(&["CLIENT", "KILL", "ID", &id, "SKIPME", "no"]),
        ":1\r\n"
    );
    assert!(a.is_closed());
    let mut b = s.raw();
    let addr = b.stream.local_addr().unwrap().to_string();
    assert_eq!(b.cmd(&["CLIENT", "KILL", &addr]), "+OK\r\n");
    assert!(b.is_closed());
}

#[test]
fn client_kill_maxage_closes_only_older_connections() {
    let s = TestServer::kiln(&[]);
    let mut old = s.raw();
    assert_eq!(old.cmd(&["PING"]), "+PONG\r\n");
    sleep(Duration::from_millis(2100));
    let mut a = s.raw();
    let mut young = s.raw();
    assert_eq!(young.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(a.cmd(&["CLIENT", "KILL", "MAXAGE", "1"]), ":1\r\n");
    assert!(old.is_closed());
    assert_eq!(young.cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn client_list_shows_every_connection_with_its_name() {
    let s = TestServer::kiln(&[]);
    let mut a = s.raw();
    let mut b = s.raw();
    assert_eq!(a.cmd(&["CLIENT", "SETNAME", "alpha"]), "+OK\r\n");
    assert_eq!(b.cmd(&["CLIENT", "SETNAME", "beta"]), "+OK\r\n");
    assert_eq!(b.cmd(&["SELECT", "4"]), "+OK\r\n");
    let (a_id, b_id) = (client_id(&mut a), client_id(&mut b));
    let list = text_of(&a.cmd(&["CLIENT", "LIST"]));
    let lines: Vec<&str> = list.lines().collect();
    assert!(list.ends_with('\n'));
    let line_of = |id: &str| *lines.iter().find(|l| field(l, "id") == id).unwrap();
    let la = line_of(&a_id);
    let lb = line_of(&b_id);
    assert_eq!(field(la, "name"), "alpha");
    assert_eq!(field(la, "cmd"), "client|list");
    assert_eq!(field(la, "argv-mem"), "10");
    assert_eq!(field(lb, "name"), "beta");
    assert_eq!(field(lb, "db"), "4");
    assert_eq!(field(lb, "cmd"), "client|id");
    // Sorted by id.
    let ids: Vec<u64> = lines
        .iter()
        .map(|l| field(l, "id").parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let only_b = text_of(&a.cmd(&["CLIENT", "LIST", "ID", &b_id, "99999"]));
    assert_eq!(only_b.lines().count(), 1);
    assert_eq!(field(only_b.trim_end(), "name"), "beta");
    let normal = text_of(&a.cmd(&["CLIENT", "LIST", "TYPE", "normal"]));
    assert_eq!(normal.lines().count(), lines.len());
}

#[test]
fn client_list_lines_have_redis_7_0_fields_in_order() {
    let s = TestServer::kiln(&[]);
    let mut c = s.raw();
    let line = text_of(&c.cmd(&["CLIENT", "INFO"]));
    let line = line.strip_suffix('\n').unwrap();
    let f = fields(line);
    let keys: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, CLIENT_FIELDS);
    assert_eq!(field(line, "name"), "");
    assert_eq!(field(line, "flags"), "N");
    assert_eq!(field(line, "multi"), "-1");
    assert_eq!(field(line, "cmd"), "client|info");
    assert_eq!(field(line, "user"), "default");
    assert_eq!(field(line, "resp"), "2");
    assert_eq!(field(line, "laddr"), format!("127.0.0.1:{}", s.port));
    assert_eq!(
        field(line, "addr"),
        c.stream.local_addr().unwrap().to_string()
    );
    let id = client_id(&mut c);
    assert_eq!(field(line, "id"), id);
}

#[test]
fn client_no_evict_and_no_touch_show_as_flags() {
    let s = TestServer::kiln(&[]);
    let mut c = s.raw();
    let flags = |c: &mut Raw| field(text_of(&c.cmd(&["CLIENT", "INFO"])).trim_end(), "flags");
    assert_eq!(c.cmd(&["CLIENT", "NO-TOUCH", "on"]), "+OK\r\n");
    assert_eq!(flags(&mut c), "T");
    assert_eq!(c.cmd(&["CLIENT", "NO-EVICT", "ON"]), "+OK\r\n");
    assert_eq!(flags(&mut c), "eT");
    assert_eq!(c.cmd(&["CLIENT", "NO-TOUCH", "off"]), "+OK\r\n");
    assert_eq!(flags(&mut c), "e");
    assert_eq!(
        c.cmd(&["CLIENT", "NO-TOUCH", "maybe"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(c.cmd(&["RESET"]), "+RESET\r\n");
    assert_eq!(flags(&mut c), "N");
}

#[test]
fn a_blocked_client_shows_flag_b_until_its_block_is_over() {
    let s = TestServer::kiln(&[]);
    let mut waiter = s.raw();
    let id = client_id(&mut waiter);
    let mut c = s.raw();
    let flags = |c: &mut Raw| {
        let list = text_of(&c.cmd(&["CLIENT", "LIST", "ID", &id]));
        field(list.trim_end(), "flags")
    };
    waiter.send_cmd(&["BLPOP", "q", "0"]);
    // The block starts when the server has read the request: poll for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while flags(&mut c) != "b" {
        assert!(
            std::time::Instant::now() < deadline,
            "CLIENT LIST never showed the BLPOP client as blocked (flags=b)"
        );
    }
    assert_eq!(c.cmd(&["RPUSH", "q", "x"]), ":1\r\n");
    assert_eq!(
        String::from_utf8(waiter.read_reply().unwrap()).unwrap(),
        "*2\r\n$1\r\nq\r\n$1\r\nx\r\n"
    );
    assert_eq!(flags(&mut c), "N");
}

#[test]
fn client_setinfo_accepts_library_name_and_version() {
    let s = TestServer::kiln(&[]);
    let mut c = s.raw();
    assert_eq!(
        c.cmd(&["CLIENT", "SETINFO", "lib-name", "redis-py"]),
        "+OK\r\n"
    );
    assert_eq!(c.cmd(&["CLIENT", "SETINFO", "LIB-VER", "5.0.1"]), "+OK\r\n");
    assert_eq!(
        c.cmd(&["CLIENT", "SETINFO", "lib-foo", "x"]),
        "-ERR Unrecognized option 'lib-foo'\r\n"
    );
    assert_eq!(
        c.cmd(&["CLIENT", "SETINFO", "lib-name", "a b"]),
        "-ERR lib-name cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(
        c.cmd(&["CLIENT", "SETINFO", "lib-name"]),
        "-ERR wrong number of arguments for 'client|setinfo' command\r\n"
    );
}

/// Sends `cmds` pipelined, then PING, and returns every reply before the PONG.
fn pipeline(c: &mut Raw, cmds: &[&[&str]]) -> Vec<String> {
    let mut out = Vec::new();
    for cmd in cmds {
        kiln_resp::encode::request(&mut out, cmd);
    }
    kiln_resp::encode::request(&mut out, &["PING"]);
    c.send(&out);
    let mut replies = Vec::new();
    loop {
        let r = String::from_utf8(c.read_reply().unwrap()).unwrap();
        if r == "+PONG\r\n" {
            return replies;
        }
        replies.push(r);
    }
}

#[test]
fn client_reply_off_and_skip_drop_replies_like_redis() {
    let cases: &[&[&[&str]]] = &[
        &[
            &["CLIENT", "REPLY", "OFF"],
            &["SET", "k", "v"],
            &["NOSUCH"],
            &["GET", "k"],
            &["CLIENT", "REPLY", "ON"],
            &["GET", "k"],
        ],
        &[
            &["CLIENT", "REPLY", "SKIP"],
            &["ECHO", "skipped"],
            &["ECHO", "seen"],
        ],
        &[
            &["CLIENT", "REPLY", "SKIP"],
            &["CLIENT", "REPLY", "ON"],
            &["ECHO", "after"],
        ],
        &[
            &["CLIENT", "REPLY", "OFF"],
            &["CLIENT", "REPLY", "SKIP"],
            &["ECHO", "x"],
            &["CLIENT", "REPLY", "ON"],
            &["ECHO", "y"],
        ],
        &[
            &["CLIENT", "REPLY", "SKIP"],
            &["CLIENT", "REPLY", "SKIP"],
            &["ECHO", "a"],
            &["ECHO", "b"],
        ],
        &[&["CLIENT", "REPLY", "OFF"], &["RESET"], &["ECHO", "back"]],
    ];
    let kiln = TestServer::kiln(&[]);
    let redis = TestServer::redis(&[]);
    for case in cases {
        let got = pipeline(&mut kiln.raw(), case);
        // The PING that ends each pipeline is itself skipped after a trailing SKIP, so none
        // of the cases ends with one.
        if let Some(r) = &redis {
            assert_eq!(got, pipeline(&mut r.raw(), case), "{case:?}");
        }
    }
    let got = pipeline(&mut kiln.raw(), cases[0]);
    assert_eq!(got, ["+OK\r\n", "$1\r\nv\r\n"]);
    let got = pipeline(&mut kiln.raw(), cases[1]);
    assert_eq!(got, ["$4\r\nseen\r\n"]);
}

#[test]
fn reset_returns_to_a_fresh_connection_state() {
    let s = TestServer::kiln(&[]);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["SELECT", "5"]), "+OK\r\n");
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", "busy"]), "+OK\r\n");
    assert_eq!(c.cmd(&["CLIENT", "NO-EVICT", "on"]), "+OK\r\n");
    assert!(c.cmd(&["HELLO", "3"]).starts_with('%'));
    assert_eq!(c.cmd(&["RESET"]), "+RESET\r\n");
    assert_eq!(c.cmd(&["GET", "missing"]), "$-1\r\n");
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), "$-1\r\n");
    let line = text_of(&c.cmd(&["CLIENT", "INFO"]));
    assert_eq!(field(line.trim_end(), "db"), "0");
    assert_eq!(field(line.trim_end(), "resp"), "2");
    assert_eq!(field(line.trim_end(), "flags"), "N");
}

#[test]
fn reset_requires_authenticating_again_when_a_password_is_set() {
    let s = TestServer::kiln(&["--requirepass", "pw"]);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["RESET"]), "+RESET\r\n");
    assert_eq!(c.cmd(&["AUTH", "pw"]), "+OK\r\n");
    assert_eq!(c.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(c.cmd(&["RESET"]), "+RESET\r\n");
    assert_eq!(c.cmd(&["PING"]), "-NOAUTH Authentication required.\r\n");
}

#[test]
fn command_getkeys_and_docs_describe_the_table() {
    let s = TestServer::kiln(&[]);
    let mut con = s.client();
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg(&["GETKEYS", "MSET", "a", "1", "b", "2"])
        .query(&mut con)
        .unwrap();
    assert_eq!(keys, ["a", "b"]);
    let count: usize = redis::cmd("COMMAND").arg("COUNT").query(&mut con).unwrap();
    let all: Vec<redis::Value> = redis::cmd("COMMAND").query(&mut con).unwrap();
    assert_eq!(all.len(), count);
    let names: Vec<String> = redis::cmd("COMMAND").arg("LIST").query(&mut con).unwrap();
    assert!(names.len() > count);
    assert!(names.iter().any(|n| n == "client|kill"));
    let docs: redis::Value = redis::cmd("COMMAND")
        .arg(&["DOCS", "set"])
        .query(&mut con)
        .unwrap();
    let text = format!("{docs:?}");
    for word in [
        "summary",
        "arguments",
        "key_spec_index",
        "pure-token",
        "oneof",
        "KEEPTTL",
    ] {
        assert!(text.contains(word), "{word} missing from {text}");
    }
}
