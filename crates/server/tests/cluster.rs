//! Cluster mode on the real server: the CLUSTER commands of a single node, routing errors,
//! commands refused in cluster mode. Where redis-server is installed, the same steps run
//! against a redis-server node and the replies must agree once node names (random per
//! node) are replaced by placeholders.

mod support;

use support::{free_port, redis_tools, Raw, TestServer};

/// A cluster-mode node of `bin`, its bus on a free port.
fn node(kiln: bool) -> TestServer {
    let bus = free_port().to_string();
    let args = ["--cluster-enabled", "yes", "--cluster-port", &bus];
    if kiln {
        TestServer::kiln(&args)
    } else {
        TestServer::start("redis-server", &args)
    }
}

/// Replaces every 40-character hex word (a node name) by `<id1>`, `<id2>`... in order of
/// first appearance, and the node's own ports by `<port>` / `<bus>`.
fn normalise(text: &str, names: &mut Vec<String>, port: u16) -> String {
    let mut out = String::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let end = (i + 40).min(bytes.len());
        let word = &text[i..end];
        let boundary = |j: usize| j >= bytes.len() || !bytes[j].is_ascii_hexdigit();
        if word.len() == 40
            && word
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            && (i == 0 || !bytes[i - 1].is_ascii_hexdigit())
            && boundary(end)
        {
            let n = match names.iter().position(|x| x == word) {
                Some(n) => n,
                None => {
                    names.push(word.to_string());
                    names.len() - 1
                }
            };
            out.push_str(&format!("<id{}>", n + 1));
            i = end;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    // The bus port follows `@` in node lines.
    let out = out.replace(&port.to_string(), "<port>");
    let mut parts = out.split('@');
    let mut norm = parts.next().unwrap_or_default().to_string();
    for p in parts {
        norm.push_str("@<bus>");
        norm.push_str(p.trim_start_matches(|c: char| c.is_ascii_digit()));
    }
    norm
}

fn transcript(s: &TestServer, cmds: &[&[&str]]) -> Vec<String> {
    let mut c = s.raw();
    let mut names = Vec::new();
    cmds.iter()
        .map(|a| {
            let reply = c.cmd(a);
            format!("{a:?} -> {}", normalise(&reply, &mut names, s.port))
        })
        .collect()
}

fn compare(cmds: &[&[&str]]) {
    let kiln = node(true);
    let got = transcript(&kiln, cmds);
    if !redis_tools(&["redis-server"]) {
        return;
    }
    let redis = node(false);
    let want = transcript(&redis, cmds);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    assert_eq!(got.len(), want.len());
}

#[test]
fn a_lone_node_answers_cluster_commands_as_redis() {
    compare(&[
        &["CLUSTER", "INFO"],
        &["CLUSTER", "MYID"],
        &["CLUSTER", "SLOTS"],
        &["CLUSTER", "SHARDS"],
        &["CLUSTER", "ADDSLOTS", "0", "1", "2"],
        &["CLUSTER", "ADDSLOTSRANGE", "10", "20", "100", "200"],
        &["CLUSTER", "ADDSLOTSRANGE", "30", "20"],
        &["CLUSTER", "ADDSLOTSRANGE", "30"],
        &["CLUSTER", "ADDSLOTS", "5", "5"],
        &["CLUSTER", "ADDSLOTS", "1"],
        &["CLUSTER", "ADDSLOTS", "16384"],
        &["CLUSTER", "ADDSLOTS", "-1"],
        &["CLUSTER", "ADDSLOTS", "x"],
        &["CLUSTER", "NODES"],
        &["CLUSTER", "SLOTS"],
        &["CLUSTER", "SHARDS"],
        &["CLUSTER", "INFO"],
        &["CLUSTER", "DELSLOTS", "5"],
        &["CLUSTER", "DELSLOTSRANGE", "10", "12"],
        &["CLUSTER", "COUNTKEYSINSLOT", "0"],
        &["CLUSTER", "COUNTKEYSINSLOT", "16384"],
        &["CLUSTER", "COUNTKEYSINSLOT", "x"],
        &["CLUSTER", "GETKEYSINSLOT", "0", "10"],
        &["CLUSTER", "GETKEYSINSLOT", "0", "-1"],
        &["CLUSTER", "GETKEYSINSLOT", "x", "1"],
        &["CLUSTER", "KEYSLOT", "foo"],
        &["CLUSTER", "KEYSLOT", "{user1000}.following"],
        &["SET", "foo", "1"],
        &["MSET", "a", "1", "b", "2"],
        &["GET", "x{bar}"],
        &["SELECT", "1"],
        &["SELECT", "0"],
        &["SELECT", "x"],
        &["MOVE", "foo", "1"],
        &["SWAPDB", "0", "1"],
        &["COPY", "a", "b", "DB", "1"],
        &["CLUSTER", "LINKS"],
        &["CLUSTER", "REPLICAS", "nosuch"],
        &["CLUSTER", "COUNT-FAILURE-REPORTS", "nosuch"],
        &["CLUSTER", "FORGET", "nosuch"],
        &["CLUSTER", "REPLICATE", "nosuch"],
        &["CLUSTER", "SETSLOT", "1", "MIGRATING", "nosuch"],
        &["CLUSTER", "SETSLOT", "1", "BOGUS"],
        &["CLUSTER", "SETSLOT", "1", "STABLE", "extra"],
        &["CLUSTER", "MEET", "127.0.0.1", "x"],
        &["CLUSTER", "MEET", "nosuchhost", "7000"],
        &["CLUSTER", "FAILOVER"],
        &["CLUSTER", "FAILOVER", "BOGUS"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "-1"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "7"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "8"],
        &["CLUSTER", "BUMPEPOCH"],
        &["CLUSTER", "INFO"],
        &["CLUSTER", "FLUSHSLOTS"],
        &["CLUSTER", "NODES"],
        &["ASKING"],
        &["READONLY"],
        &["READWRITE"],
        &["REPLICAOF", "127.0.0.1", "1"],
        &["CLUSTER", "HELP"],
        &["CLUSTER", "NOSUCH"],
        &["CLUSTER", "RESET", "BOGUS"],
    ]);
}

#[test]
fn routing_errors_match_redis_once_slots_are_served() {
    // One node serving every slot but one: keys route here, CROSSSLOT across slots, the
    // missing slot is not served; MULTI queues the redirect and EXEC aborts.
    let cmds: &[&[&str]] = &[
        &["CLUSTER", "ADDSLOTSRANGE", "0", "12181", "12183", "16383"],
        &["SET", "bar", "1"],
        &["SET", "foo", "1"],
        &["MSET", "{bar}a", "1", "{bar}b", "2"],
        &["MSET", "bar", "1", "zap", "2"],
        &["MULTI"],
        &["SET", "foo", "1"],
        &["SET", "bar", "2"],
        &["EXEC"],
        &["MULTI"],
        &["SET", "bar", "2"],
        &["SET", "zap", "2"],
        &["EXEC"],
        &["EVAL", "return 1", "2", "bar", "zap"],
        &["CLUSTER", "COUNTKEYSINSLOT", "5061"],
        &["CLUSTER", "GETKEYSINSLOT", "5061", "10"],
        &["CLUSTER", "ADDSLOTS", "12182"],
    ];
    compare(cmds);
}

#[test]
fn a_node_becomes_ok_with_every_slot_and_counts_its_keys() {
    for kiln in [true, false] {
        if !kiln && !redis_tools(&["redis-server"]) {
            continue;
        }
        let s = node(kiln);
        let mut c: Raw = s.raw();
        assert_eq!(
            c.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]),
            "+OK\r\n"
        );
        support::poll("cluster_state:ok", || {
            c.cmd(&["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
                .then_some(())
        });
        for i in 0..200 {
            assert_eq!(c.cmd(&["SET", &format!("{{t}}k{i}"), "v"]), "+OK\r\n");
        }
        let slot = c.cmd(&["CLUSTER", "KEYSLOT", "{t}"]);
        let slot = slot.trim_start_matches(':').trim();
        assert_eq!(c.cmd(&["CLUSTER", "COUNTKEYSINSLOT", slot]), ":200\r\n");
        let keys = c.cmd(&["CLUSTER", "GETKEYSINSLOT", slot, "7"]);
        assert!(keys.starts_with("*7\r\n"), "{keys}");
        assert_eq!(
            c.cmd(&[
                "CLUSTER",
                "SETSLOT",
                slot,
                "NODE",
                "0000000000000000000000000000000000000000"
            ]),
            "-ERR Unknown node 0000000000000000000000000000000000000000\r\n"
        );
        assert_eq!(c.cmd(&["DEL", "{t}k1", "{t}k2"]), ":2\r\n");
        assert_eq!(c.cmd(&["CLUSTER", "COUNTKEYSINSLOT", slot]), ":198\r\n");
        assert_eq!(c.cmd(&["FLUSHALL"]), "+OK\r\n");
        assert_eq!(c.cmd(&["CLUSTER", "COUNTKEYSINSLOT", slot]), ":0\r\n");
        let info = c.cmd(&["INFO", "cluster"]);
        assert!(info.contains("cluster_enabled:1"), "{info}");
    }
}

/// Two nodes of one kind in a cluster: the first serves slots 0-8191, the second the rest.
fn pair(kiln: bool) -> (TestServer, TestServer) {
    let (a, b) = (node(kiln), node(kiln));
    let mut ca = a.raw();
    let mut cb = b.raw();
    let bus_b = cb
        .cmd(&["CLUSTER", "NODES"])
        .split('@')
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .to_string();
    assert_eq!(
        ca.cmd(&["CLUSTER", "MEET", "127.0.0.1", &b.port.to_string(), &bus_b]),
        "+OK\r\n"
    );
    assert_eq!(
        ca.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]),
        "+OK\r\n"
    );
    assert_eq!(
        cb.cmd(&["CLUSTER", "ADDSLOTSRANGE", "8192", "16383"]),
        "+OK\r\n"
    );
    for c in [&mut ca, &mut cb] {
        support::poll("both nodes ok", || {
            let info = c.cmd(&["CLUSTER", "INFO"]);
            (info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:2"))
                .then_some(())
        });
    }
    (a, b)
}

fn script_transcript(kiln: bool) -> Vec<String> {
    let (a, b) = pair(kiln);
    let mut c = a.raw();
    let cmds: &[&[&str]] = &[
        // "foo" is slot 12182 (the other node), "bar" 5061 and "zap" 6469 (this one).
        &["EVAL", "return redis.call('get','foo')", "0"],
        &["EVAL", "return redis.pcall('get','foo')", "0"],
        &["EVAL", "redis.call('set','bar',1); return redis.call('set','zap',1)", "0"],
        &["EVAL", "#!lua\nredis.call('set','bar',1); return redis.call('set','zap',1)", "0"],
        &["EVAL", "#!lua\nreturn redis.call('set','zap',1)", "1", "bar"],
        &["EVAL", "#!lua flags=allow-cross-slot-keys\nredis.call('set','bar',1); return redis.call('set','zap',1)", "0"],
        &["EVAL", "#!lua\nreturn redis.call('get','foo')", "1", "foo"],
        &["EVAL", "return 1", "2", "bar", "zap"],
        &["EVAL", "#!lua flags=no-cluster\nreturn 1", "0"],
    ];
    let mut names = Vec::new();
    let out = cmds
        .iter()
        .map(|a| normalise(&c.cmd(a), &mut names, b.port))
        .collect();
    drop(a);
    out
}

#[test]
fn scripts_see_only_local_keys_of_one_slot_as_in_redis() {
    let got = script_transcript(true);
    if redis_tools(&["redis-server"]) {
        assert_eq!(got, script_transcript(false));
    }
}

#[test]
fn nodes_gossip_publish_and_redirect_blocked_clients() {
    for kiln in [true, false] {
        if !kiln && !redis_tools(&["redis-server"]) {
            continue;
        }
        let (a, b) = pair(kiln);
        let mut ca = a.raw();
        let mut cb = b.raw();
        // Each node knows where the other's keys are.
        assert_eq!(
            ca.cmd(&["GET", "foo"]),
            format!("-MOVED 12182 127.0.0.1:{}\r\n", b.port)
        );
        assert_eq!(
            cb.cmd(&["GET", "bar"]),
            format!("-MOVED 5061 127.0.0.1:{}\r\n", a.port)
        );
        // PUBLISH reaches the other node's subscribers.
        let mut sub = b.raw();
        sub.send_cmd(&["SUBSCRIBE", "news"]);
        assert!(sub.read_reply().is_some());
        assert_eq!(ca.cmd(&["PUBLISH", "news", "hello"]), ":0\r\n");
        assert_eq!(
            String::from_utf8(sub.read_reply().unwrap()).unwrap(),
            "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
        );
        // A client blocked on a key whose slot moves away is sent there.
        let mut blocked = a.raw();
        blocked.send_cmd(&["BLPOP", "bar", "0"]);
        support::poll("the client to block", || {
            (ca.info_field("clients", "blocked_clients").as_deref() == Some("1")).then_some(())
        });
        let id_b = cb.cmd(&["CLUSTER", "MYID"]);
        let id_b = id_b.lines().nth(1).unwrap().to_string();
        assert_eq!(
            cb.cmd(&["CLUSTER", "SETSLOT", "5061", "NODE", &id_b]),
            "+OK\r\n"
        );
        assert_eq!(
            ca.cmd(&["CLUSTER", "SETSLOT", "5061", "NODE", &id_b]),
            "+OK\r\n"
        );
        assert_eq!(
            String::from_utf8(blocked.read_reply().unwrap()).unwrap(),
            format!("-MOVED 5061 127.0.0.1:{}\r\n", b.port)
        );
    }
}

/// The next reply or push on `c`, as text, waiting up to [`support::PATIENCE`] (a slot
/// change that reaches the node by gossip takes a few pings).
fn next_push(c: &mut Raw) -> String {
    c.stream.set_read_timeout(Some(support::PATIENCE)).unwrap();
    let r = c.read_reply().expect("connection closed");
    String::from_utf8(r).unwrap()
}

#[test]
fn shard_channel_subscribers_are_unsubscribed_when_the_slot_leaves() {
    for kiln in [true, false] {
        if !kiln && !redis_tools(&["redis-server"]) {
            continue;
        }
        let (a, b) = pair(kiln);
        let mut ca = a.raw();
        let mut cb = b.raw();
        // "bar" is slot 5061, "zap" 6469, "{bar}x" 5061 again: all on node a.
        let mut s2 = a.raw();
        s2.send_cmd(&["SSUBSCRIBE", "bar"]);
        assert_eq!(
            next_push(&mut s2),
            "*3\r\n$10\r\nssubscribe\r\n$3\r\nbar\r\n:1\r\n"
        );
        s2.send_cmd(&["SSUBSCRIBE", "zap"]);
        assert_eq!(
            next_push(&mut s2),
            "*3\r\n$10\r\nssubscribe\r\n$3\r\nzap\r\n:2\r\n"
        );
        s2.send_cmd(&["SUBSCRIBE", "news"]);
        assert_eq!(
            next_push(&mut s2),
            "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
        );
        let mut s3 = a.raw();
        assert!(s3.cmd(&["HELLO", "3"]).starts_with('%'));
        s3.send_cmd(&["SSUBSCRIBE", "{bar}x"]);
        assert_eq!(
            next_push(&mut s3),
            ">3\r\n$10\r\nssubscribe\r\n$6\r\n{bar}x\r\n:1\r\n"
        );
        // Node b takes slot 5061 with a newer config epoch; node a hears it by gossip.
        let id_b = cb.cmd(&["CLUSTER", "MYID"]);
        let id_b = id_b.lines().nth(1).unwrap().to_string();
        assert_eq!(
            cb.cmd(&["CLUSTER", "SETSLOT", "5061", "NODE", &id_b]),
            "+OK\r\n"
        );
        assert!(cb.cmd(&["CLUSTER", "BUMPEPOCH"]).starts_with('+'));
        assert_eq!(
            next_push(&mut s2),
            "*3\r\n$12\r\nsunsubscribe\r\n$3\r\nbar\r\n:1\r\n",
            "kiln: {kiln}"
        );
        assert_eq!(
            next_push(&mut s3),
            ">3\r\n$12\r\nsunsubscribe\r\n$6\r\n{bar}x\r\n:0\r\n",
            "kiln: {kiln}"
        );
        // CLUSTER DELSLOTS ends the subscriptions to the slot's channels at once.
        assert_eq!(ca.cmd(&["CLUSTER", "DELSLOTS", "6469"]), "+OK\r\n");
        assert_eq!(
            next_push(&mut s2),
            "*3\r\n$12\r\nsunsubscribe\r\n$3\r\nzap\r\n:0\r\n"
        );
        assert_eq!(
            ca.cmd(&["PUBSUB", "SHARDNUMSUB", "bar", "zap", "{bar}x"]),
            "*6\r\n$3\r\nbar\r\n:0\r\n$3\r\nzap\r\n:0\r\n$6\r\n{bar}x\r\n:0\r\n"
        );
        // The plain subscription is untouched; the RESP3 client may subscribe again.
        assert_eq!(ca.cmd(&["PUBLISH", "news", "hi"]), ":1\r\n");
        assert_eq!(
            next_push(&mut s2),
            "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        s3.send_cmd(&["SSUBSCRIBE", "{bar}x"]);
        assert_eq!(
            next_push(&mut s3),
            format!("-MOVED 5061 127.0.0.1:{}\r\n", b.port)
        );
        // CLUSTER FLUSHSLOTS too (the node holds no keys).
        let mut s4 = a.raw();
        s4.send_cmd(&["SSUBSCRIBE", "b"]);
        let sub = next_push(&mut s4);
        assert!(sub.contains("ssubscribe"), "{sub}");
        assert_eq!(ca.cmd(&["CLUSTER", "FLUSHSLOTS"]), "+OK\r\n");
        assert_eq!(
            next_push(&mut s4),
            "*3\r\n$12\r\nsunsubscribe\r\n$1\r\nb\r\n:0\r\n"
        );
    }
}
