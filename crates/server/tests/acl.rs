//! ACL across connections, on the real server: rules changed while a transaction is
//! queued, users deleted or narrowed under their connections, CLIENT LIST / KILL by user,
//! the ACL log's grouping, and users from the config file, an ACL file and CONFIG REWRITE.
//! Where redis-server is installed the same steps run against it too, and both must agree.
//! Tests poll for states (a closed connection, a log entry), never sleep for them.

mod support;

use support::{poll, servers, Raw, TestServer};

fn authed(s: &TestServer, user: &str, pass: &str) -> Raw {
    let mut c = s.raw();
    assert_eq!(c.cmd(&["AUTH", user, pass]), "+OK\r\n");
    c
}

#[test]
fn exec_refuses_what_the_rules_stopped_allowing_since_it_was_queued() {
    for (name, s) in servers(&[]) {
        let mut admin = s.raw();
        assert_eq!(
            admin.cmd(&["ACL", "SETUSER", "u", "on", ">pw", "~k*", "&ch*", "+@all"]),
            "+OK\r\n"
        );
        let mut c = authed(&s, "u", "pw");
        assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
        for q in [
            &["SET", "k1", "v"][..],
            &["GET", "k2"],
            &["PUBLISH", "ch1", "m"],
            &["PING"],
        ] {
            assert_eq!(c.cmd(q), "+QUEUED\r\n", "{name}");
        }
        assert_eq!(
            admin.cmd(&[
                "ACL",
                "SETUSER",
                "u",
                "-set",
                "resetkeys",
                "~k1",
                "resetchannels"
            ]),
            "+OK\r\n"
        );
        let reply = c.cmd(&["EXEC"]);
        let prefix = "-NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: ";
        let expected = format!(
            "*4\r\n{prefix}no permission to execute the command or subcommand\r\n\
             {prefix}no permission to touch the specified keys\r\n\
             {prefix}no permission to access one of the channels used as arguments\r\n+PONG\r\n"
        );
        assert_eq!(reply, expected, "{name}");
        // Each refusal is in the log, in the multi context.
        let log = admin.cmd(&["ACL", "LOG"]);
        assert!(log.contains("multi"), "{name}: {log}");
        assert!(log.contains("\r\nk2\r\n"), "{name}: {log}");
    }
}

#[test]
fn deleting_a_user_closes_its_connections_and_its_own_after_the_reply() {
    for (name, s) in servers(&[]) {
        let mut admin = s.raw();
        assert_eq!(
            admin.cmd(&["ACL", "SETUSER", "gone", "on", "nopass", "+@all", "~*"]),
            "+OK\r\n"
        );
        let mut other = authed(&s, "gone", "x");
        let mut me = authed(&s, "gone", "x");
        assert_eq!(other.cmd(&["CLIENT", "SETNAME", "other"]), "+OK\r\n");
        let line = support::client_line(&mut admin, "other").unwrap();
        assert!(line.contains(" user=gone "), "{name}: {line}");
        assert_eq!(me.cmd(&["ACL", "DELUSER", "gone"]), ":1\r\n", "{name}");
        assert!(me.is_closed(), "{name}: the deleting connection stays open");
        assert!(other.is_closed(), "{name}: the other connection stays open");
        assert_eq!(admin.cmd(&["PING"]), "+PONG\r\n");
    }
}

#[test]
fn narrowing_channels_closes_subscribers_the_new_rules_refuse() {
    for (name, s) in servers(&[]) {
        let mut admin = s.raw();
        assert_eq!(
            admin.cmd(&["ACL", "SETUSER", "sub", "on", "nopass", "+@all", "&news.*", "&sports"]),
            "+OK\r\n"
        );
        let mut news = authed(&s, "sub", "x");
        news.send_cmd(&["SUBSCRIBE", "news.world"]);
        assert!(news.read_reply().is_some());
        let mut sports = authed(&s, "sub", "x");
        sports.send_cmd(&["SUBSCRIBE", "sports"]);
        assert!(sports.read_reply().is_some());
        let mut pattern = authed(&s, "sub", "x");
        pattern.send_cmd(&["PSUBSCRIBE", "news.*"]);
        assert!(pattern.read_reply().is_some());
        // Widening keeps everyone.
        assert_eq!(admin.cmd(&["ACL", "SETUSER", "sub", "&weather"]), "+OK\r\n");
        assert_eq!(admin.cmd(&["PUBLISH", "sports", "m"]), ":1\r\n", "{name}");
        // Dropping `sports` closes only its subscriber.
        assert_eq!(
            admin.cmd(&["ACL", "SETUSER", "sub", "resetchannels", "&news.*"]),
            "+OK\r\n"
        );
        assert!(sports.is_closed(), "{name}");
        poll("the news subscribers to stay", || {
            (admin
                .cmd(&["PUBSUB", "NUMSUB", "news.world"])
                .ends_with(":1\r\n")
                && admin.cmd(&["PUBSUB", "NUMPAT"]) == ":1\r\n")
                .then_some(())
        });
        // The literal pattern goes when only a narrower one is allowed.
        assert_eq!(
            admin.cmd(&["ACL", "SETUSER", "sub", "resetchannels", "&news.world"]),
            "+OK\r\n"
        );
        assert!(pattern.is_closed(), "{name}");
        assert_eq!(
            admin.cmd(&["PUBLISH", "news.world", "m"]),
            ":1\r\n",
            "{name}"
        );
    }
}

#[test]
fn client_kill_user_closes_that_users_connections() {
    for (name, s) in servers(&[]) {
        let mut admin = s.raw();
        assert_eq!(
            admin.cmd(&["ACL", "SETUSER", "k", "on", "nopass", "+@all"]),
            "+OK\r\n"
        );
        let mut a = authed(&s, "k", "x");
        let mut b = authed(&s, "k", "x");
        assert_eq!(
            admin.cmd(&["CLIENT", "KILL", "USER", "k"]),
            ":2\r\n",
            "{name}"
        );
        assert!(a.is_closed() && b.is_closed(), "{name}");
        assert_eq!(
            admin.cmd(&["CLIENT", "KILL", "USER", "nosuch"]),
            "-ERR No such user 'nosuch'\r\n"
        );
    }
}

#[test]
fn the_acl_log_groups_repeated_refusals() {
    for (name, s) in servers(&[]) {
        let mut admin = s.raw();
        assert_eq!(
            admin.cmd(&["ACL", "SETUSER", "l", "on", "nopass", "+get", "~a*"]),
            "+OK\r\n"
        );
        let mut c = authed(&s, "l", "x");
        for _ in 0..3 {
            assert!(c.cmd(&["GET", "b"]).starts_with("-NOPERM"));
        }
        assert!(c.cmd(&["SET", "a", "1"]).starts_with("-NOPERM"));
        assert!(c.cmd(&["AUTH", "l", "x", "y"]).starts_with("-ERR"));
        assert!(c.cmd(&["AUTH", "nosuch", "x"]).starts_with("-WRONGPASS"));
        let mut r = s.client();
        let log: Vec<redis::Value> = redis::cmd("ACL").arg("LOG").query(&mut r).unwrap();
        let entries: Vec<Vec<(String, String)>> = log
            .iter()
            .map(|e| {
                let redis::Value::Array(kv) = e else {
                    panic!("{e:?}")
                };
                kv.chunks(2)
                    .filter_map(|p| {
                        let k: String = redis::from_redis_value(&p[0]).ok()?;
                        let v: String = redis::from_redis_value(&p[1]).ok()?;
                        (k != "age-seconds" && k != "client-info").then_some((k, v))
                    })
                    .collect()
            })
            .collect();
        let field = |e: &Vec<(String, String)>, k: &str| {
            e.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let summary: Vec<String> = entries
            .iter()
            .map(|e| {
                format!(
                    "{} {} {} {} {}",
                    field(e, "count"),
                    field(e, "reason"),
                    field(e, "context"),
                    field(e, "object"),
                    field(e, "username")
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                "1 auth toplevel AUTH nosuch",
                "1 command toplevel set l",
                "3 key toplevel b l"
            ],
            "{name}"
        );
        assert_eq!(admin.cmd(&["ACL", "LOG", "RESET"]), "+OK\r\n");
        assert_eq!(admin.cmd(&["ACL", "LOG"]), "*0\r\n");
        // `acllog-max-len` trims.
        assert_eq!(
            admin.cmd(&["CONFIG", "SET", "acllog-max-len", "1"]),
            "+OK\r\n"
        );
        assert!(c.cmd(&["GET", "b"]).starts_with("-NOPERM"));
        assert!(c.cmd(&["GET", "c"]).starts_with("-NOPERM"));
        assert!(admin.cmd(&["ACL", "LOG"]).starts_with("*1\r\n"), "{name}");
    }
}

#[test]
fn users_come_from_config_lines_and_requirepass_sets_the_default_password() {
    let args = [
        "--requirepass",
        "secret",
        "--user",
        "worker",
        "on",
        ">wpass",
        "~jobs:*",
        "+@list",
        "+@connection",
    ];
    for (name, s) in servers(&args) {
        let mut c = s.raw();
        assert_eq!(c.cmd(&["PING"]), "-NOAUTH Authentication required.\r\n");
        assert_eq!(c.cmd(&["AUTH", "worker", "wpass"]), "+OK\r\n", "{name}");
        assert_eq!(c.cmd(&["LPUSH", "jobs:1", "x"]), ":1\r\n", "{name}");
        assert!(c.cmd(&["LPUSH", "other", "x"]).starts_with("-NOPERM"));
        assert_eq!(c.cmd(&["AUTH", "secret"]), "+OK\r\n", "{name}");
        assert_eq!(c.cmd(&["ACL", "WHOAMI"]), "$7\r\ndefault\r\n");
        let list = c.cmd(&["ACL", "LIST"]);
        assert!(list.contains("user worker on #"), "{name}: {list}");
        // CONFIG SET requirepass replaces the default user's password.
        assert_eq!(c.cmd(&["CONFIG", "SET", "requirepass", "new"]), "+OK\r\n");
        let mut d = s.raw();
        assert_eq!(
            d.cmd(&["AUTH", "secret"]),
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert_eq!(d.cmd(&["AUTH", "new"]), "+OK\r\n", "{name}");
        // HELLO AUTH authenticates as a user too.
        let mut h = s.raw();
        let hello = h.cmd(&["HELLO", "2", "AUTH", "worker", "wpass"]);
        assert!(hello.starts_with('*'), "{name}: {hello}");
        assert_eq!(
            h.cmd(&["ACL", "WHOAMI"]),
            "-NOPERM this user has no permissions to run the 'acl|whoami' command\r\n",
            "{name}"
        );
    }
}

#[test]
fn acl_file_loads_saves_and_reloads() {
    let dir = std::env::temp_dir().join(format!("kiln-acl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (name, _)) in servers(&[]).into_iter().enumerate() {
        let file = dir.join(format!("users-{i}.acl"));
        std::fs::write(
            &file,
            "user default on nopass ~* &* +@all\nuser reader on >r ~* -@all +get\n",
        )
        .unwrap();
        let path = file.to_string_lossy().to_string();
        let s = if name == "kiln" {
            TestServer::kiln(&["--aclfile", &path])
        } else {
            TestServer::redis(&["--aclfile", &path]).unwrap()
        };
        let mut admin = s.raw();
        let mut reader = authed(&s, "reader", "r");
        assert_eq!(reader.cmd(&["GET", "x"]), "$-1\r\n", "{name}");
        assert_eq!(
            admin.cmd(&["ACL", "SETUSER", "writer", "on", ">w", "~*", "+set"]),
            "+OK\r\n"
        );
        assert_eq!(admin.cmd(&["ACL", "SAVE"]), "+OK\r\n", "{name}");
        let saved = std::fs::read_to_string(&file).unwrap();
        assert!(saved.contains("user writer on #"), "{name}: {saved}");
        // LOAD replaces every user: `reader` is gone from the file, so its connection closes.
        std::fs::write(&file, "user default on nopass ~* &* +@all\n").unwrap();
        assert_eq!(admin.cmd(&["ACL", "LOAD"]), "+OK\r\n", "{name}");
        assert!(reader.is_closed(), "{name}");
        assert_eq!(admin.cmd(&["ACL", "USERS"]), "*1\r\n$7\r\ndefault\r\n");
        // A broken file changes nothing and says why.
        std::fs::write(&file, "user x on +nosuch\nbogus line\n").unwrap();
        let err = admin.cmd(&["ACL", "LOAD"]);
        assert!(
            err.contains("Unknown command or category name in ACL")
                && err.contains("should start with user keyword")
                && err.ends_with("no change to the previously active ACL rules was performed\r\n"),
            "{name}: {err}"
        );
        assert_eq!(admin.cmd(&["ACL", "USERS"]), "*1\r\n$7\r\ndefault\r\n");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
