//! TLS: clients on `tls-port` (redis-cli, redis-py), client certificates
//! (`tls-auth-clients`), certificates replaced by CONFIG SET, handshakes that fail or stall,
//! and replication over TLS between Kiln and redis-server both ways. Certificates are made
//! at run time (`kiln_testkit::certs`).

mod support;

use std::process::Command;

use kiln_testkit::certs::Certs;
use support::{wait_until, TestServer};

/// A fresh certificate set in a directory of this test's own.
fn certs(tag: &str) -> Certs {
    let dir = std::env::temp_dir().join(format!("kiln-tls-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Certs::new(&dir)
}

/// redis-cli over TLS with `auth` (`--cert`/`--key` and the like), its output (stdout and
/// stderr) trimmed.
fn cli(port: u16, ca: &str, auth: &[&str], args: &[&str]) -> String {
    let o = Command::new("redis-cli")
        .args(["--tls", "--cacert", ca, "-p", &port.to_string()])
        .args(auth)
        .args(args)
        .output()
        .expect("redis-cli runs");
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    s.trim().to_string()
}

/// Starts `bin` serving TLS only (`port 0`) with `c`'s certificates and `extra`; returns
/// it with its TLS port once it answers there.
fn tls_only(bin: &str, c: &Certs, extra: &[&str]) -> (TestServer, u16) {
    let tls_port = support::free_port();
    let mut args = c.server_args(tls_port);
    args.extend(["--port", "0"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = TestServer::launch(bin, &args);
    let auth = ["--cert", &c.client_cert, "--key", &c.client_key];
    wait_until("the TLS port answers", || {
        cli(tls_port, &c.ca, &auth, &["PING"]) == "PONG"
    });
    (s, tls_port)
}

/// redis-cli's options presenting `c`'s client certificate.
fn mine(c: &Certs) -> [&str; 4] {
    ["--cert", &c.client_cert, "--key", &c.client_key]
}

/// A TLS-only kiln-server with fresh certificates, once it answers; None (the test
/// skips) without redis-cli, which the tests talk through.
fn kiln_tls(tag: &str, extra: &[&str]) -> Option<(Certs, TestServer, u16)> {
    if !support::redis_tools(&["redis-cli"]) {
        return None;
    }
    let c = certs(tag);
    let (s, port) = tls_only(support::kiln_bin(), &c, extra);
    Some((c, s, port))
}

/// Runs a python3 script in which `{ca}`, `{cert}`, `{key}` (the client's) and `{port}`
/// name the files and the TLS port; its output (stdout and stderr).
fn python(c: &Certs, port: u16, script: &str) -> String {
    let script = script
        .replace("{ca}", &c.ca)
        .replace("{cert}", &c.client_cert)
        .replace("{key}", &c.client_key)
        .replace("{port}", &port.to_string());
    let o = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn tls_clients_redis_cli_and_redis_py_are_served() {
    let Some((c, s, port)) = kiln_tls("clients", &["--threads", "1"]) else {
        return;
    };
    let auth = mine(&c);
    assert_eq!(cli(port, &c.ca, &auth, &["SET", "k", "v"]), "OK");
    assert_eq!(cli(port, &c.ca, &auth, &["GET", "k"]), "v");
    let info = cli(port, &c.ca, &auth, &["CLIENT", "INFO"]);
    assert!(info.contains(&format!("laddr=127.0.0.1:{port}")), "{info}");
    // redis-py: a pipeline, and values bigger than a TLS record and the socket buffers.
    let script = r#"
import redis
r = redis.Redis(host="127.0.0.1", port={port}, ssl=True, ssl_ca_certs="{ca}",
                ssl_certfile="{cert}", ssl_keyfile="{key}")
p = r.pipeline(transaction=False)
for i in range(2000):
    p.set("key:%d" % i, "value:%d" % i)
p.execute()
assert r.get("key:1999") == b"value:1999"
big = b"x" * (8 << 20)
r.set("big", big)
assert r.get("big") == big
assert len(r.mget(["big", "big", "big"])[2]) == len(big)
print("ok")
"#;
    let out = python(&c, port, script);
    if out.contains("No module named 'redis'") {
        eprintln!("redis-py not installed: skipping its part");
    } else {
        assert_eq!(out.trim(), "ok");
    }
    drop(s);
}

#[test]
fn requests_pipelined_behind_a_blocked_command_over_tls_all_run() {
    let Some((c, _s, port)) = kiln_tls("blocked", &["--threads", "1"]) else {
        return;
    };
    // Python's own ssl module (no redis-py needed): a BLPOP with 20000 PINGs behind it in
    // one write, then an LPUSH from another connection once the first is blocked.
    let script = r#"
import socket, ssl, time
ctx = ssl.create_default_context(cafile="{ca}")
ctx.check_hostname = False
ctx.load_cert_chain("{cert}", "{key}")
def conn():
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {port})))
    s.settimeout(20)
    return s
def reply(s, want):
    got = b""
    while len(got) < len(want):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    return got
a, b = conn(), conn()
n = 20000
a.sendall(b"BLPOP l 0\r\n" + b"PING\r\n" * n)
while True:
    b.sendall(b"INFO clients\r\n")
    if b"blocked_clients:1" in b.recv(65536):
        break
    time.sleep(0.01)
b.sendall(b"LPUSH l x\r\n")
want = b"*2\r\n$1\r\nl\r\n$1\r\nx\r\n" + b"+PONG\r\n" * n
got = reply(a, want)
print("ok" if got == want else "got %d of %d bytes" % (len(got), len(want)))
"#;
    let out = python(&c, port, script);
    assert_eq!(out.trim(), "ok");
}

#[test]
fn sessions_resume_while_tls_session_caching_is_on() {
    let Some((c, _s, port)) = kiln_tls("sessions", &[]) else {
        return;
    };
    // Python's ssl: a second connection offering the first one's session resumes it.
    let script = r#"
import socket, ssl
ctx = ssl.create_default_context(cafile="{ca}")
ctx.check_hostname = False
ctx.load_cert_chain("{cert}", "{key}")
def conn(session=None):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {port})), session=session)
    s.settimeout(20)
    s.sendall(b"PING\r\n")
    assert s.recv(100) == b"+PONG\r\n"
    return s
first = conn()
second = conn(first.session)
print(second.session_reused)
"#;
    assert_eq!(python(&c, port, script).trim(), "True");
    let off = ["CONFIG", "SET", "tls-session-caching", "no"];
    assert_eq!(cli(port, &c.ca, &mine(&c), &off), "OK");
    assert_eq!(python(&c, port, script).trim(), "False");
}

#[test]
fn tls_auth_clients_yes_needs_a_certificate_the_ca_signed_and_optional_does_not() {
    let Some((c, _s, port)) = kiln_tls("auth", &[]) else {
        return;
    };
    let stranger = ["--cert", c.stranger_cert.as_str(), "--key", &c.stranger_key];
    // (mode, no certificate served, another CA's certificate served)
    for (mode, bare, other) in [
        ("yes", false, false),
        ("optional", true, false),
        ("no", true, true),
    ] {
        let set = ["CONFIG", "SET", "tls-auth-clients", mode];
        assert_eq!(cli(port, &c.ca, &mine(&c), &set), "OK");
        assert_eq!(cli(port, &c.ca, &mine(&c), &["PING"]), "PONG", "{mode}");
        assert_eq!(cli(port, &c.ca, &[], &["PING"]) == "PONG", bare, "{mode}");
        assert_eq!(
            cli(port, &c.ca, &stranger, &["PING"]) == "PONG",
            other,
            "{mode}"
        );
    }
}

#[test]
fn config_set_replaces_certificates_for_new_connections_and_refuses_bad_ones() {
    let Some((c, s, port)) = kiln_tls("reload", &[]) else {
        return;
    };
    let mine = mine(&c);
    let bad = cli(
        port,
        &c.ca,
        &mine,
        &["CONFIG", "SET", "tls-cert-file", "/nonexistent.crt"],
    );
    let expected = "ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS configuration. Check server logs.";
    assert_eq!(bad, expected);
    assert_eq!(cli(port, &c.ca, &mine, &["PING"]), "PONG");
    assert_eq!(
        cli(port, &c.ca, &mine, &["CONFIG", "GET", "tls-cert-file"]),
        format!("tls-cert-file\n{}", c.server_cert)
    );
    // A whole new set: new connections need the new CA, the old connection carries on.
    let n = certs("reload-new");
    let set = cli(
        port,
        &c.ca,
        &mine,
        &[
            "CONFIG",
            "SET",
            "tls-cert-file",
            &n.server_cert,
            "tls-key-file",
            &n.server_key,
            "tls-ca-cert-file",
            &n.ca,
        ],
    );
    assert_eq!(set, "OK");
    let theirs = ["--cert", n.client_cert.as_str(), "--key", &n.client_key];
    assert_eq!(cli(port, &n.ca, &theirs, &["PING"]), "PONG");
    assert_ne!(cli(port, &c.ca, &mine, &["PING"]), "PONG");
    assert!(s.log_tail(50).contains(
        "Failed applying new configuration. Possibly related to new tls-cert-file setting. Restoring previous settings."
    ));
    if let Some((_r, rport)) =
        support::redis_tools(&["redis-server"]).then(|| tls_only("redis-server", &c, &[]))
    {
        let rbad = cli(
            rport,
            &c.ca,
            &mine,
            &["CONFIG", "SET", "tls-cert-file", "/nonexistent.crt"],
        );
        assert_eq!(rbad, expected);
    }
}

#[test]
fn a_stalled_or_failed_handshake_holds_up_no_other_client() {
    // One worker thread: every connection shares it.
    let Some((c, s, port)) = kiln_tls("stall", &["--threads", "1"]) else {
        return;
    };
    let mine = mine(&c);
    // Connected, never says anything: its handshake waits in its own task.
    let _silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Speaks plain RESP to the TLS port: its handshake fails and it is closed.
    let mut plain = support::Raw::connect(port);
    plain.send(b"PING\r\n");
    assert!(plain.is_closed());
    assert_eq!(cli(port, &c.ca, &mine, &["PING"]), "PONG");
    assert!(s
        .log_tail(50)
        .contains("Error accepting a client connection:"));
    // With `timeout`, a handshake that never comes closes like any idle client.
    let set = ["CONFIG", "SET", "timeout", "1"];
    assert_eq!(cli(port, &c.ca, &mine, &set), "OK");
    let mut late = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    late.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut b = [0u8; 16];
    assert!(matches!(std::io::Read::read(&mut late, &mut b), Ok(0)));
}

/// Options that make a replica (Kiln or Redis) follow `primary_port` over TLS, presenting
/// `c`'s server certificate (Redis's fallback when no client certificate is configured).
fn replica_args(c: &Certs, primary_port: u16) -> Vec<String> {
    [
        "--tls-replication",
        "yes",
        "--tls-cert-file",
        &c.server_cert,
        "--tls-key-file",
        &c.server_key,
        "--tls-ca-cert-file",
        &c.ca,
        "--replicaof",
        "127.0.0.1",
        &primary_port.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// Writes through `write` (a SET on the primary) and waits until `replica` reports its
/// link up and has the key, then does it again (the stream after the full sync).
fn check_replication(replica: &TestServer, mut write: impl FnMut(&str, &str)) {
    let mut r = replica.raw();
    write("k", "over-tls");
    wait_until("the replica's link is up", || {
        r.cmd(&["INFO", "replication"])
            .contains("master_link_status:up")
    });
    wait_until("the write arrives", || {
        r.cmd(&["GET", "k"]) == "$8\r\nover-tls\r\n"
    });
    write("k2", "later");
    wait_until("the stream carries later writes", || {
        r.cmd(&["GET", "k2"]) == "$5\r\nlater\r\n"
    });
}

#[test]
fn a_kiln_replica_follows_a_redis_primary_over_tls() {
    if !support::redis_tools(&["redis-server", "redis-cli"]) {
        return;
    }
    let c = certs("kiln-replica");
    let (_primary, pport) = tls_only("redis-server", &c, &[]);
    let mine = mine(&c);
    // A client certificate of its own, which wins over tls-cert-file.
    let mut args = replica_args(&c, pport);
    args.extend(
        [
            "--tls-client-cert-file",
            &c.client_cert,
            "--tls-client-key-file",
            &c.client_key,
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let replica = TestServer::kiln(&args);
    check_replication(&replica, |k, v| {
        assert_eq!(cli(pport, &c.ca, &mine, &["SET", k, v]), "OK");
    });
}

#[test]
fn a_redis_replica_follows_a_kiln_primary_over_tls() {
    if !support::redis_tools(&["redis-server", "redis-cli"]) {
        return;
    }
    let c = certs("redis-replica");
    let (_primary, pport) = tls_only(support::kiln_bin(), &c, &[]);
    let mine = mine(&c);
    let args = replica_args(&c, pport);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let replica = TestServer::redis(&args).unwrap();
    check_replication(&replica, |k, v| {
        assert_eq!(cli(pport, &c.ca, &mine, &["SET", k, v]), "OK");
    });
}

#[test]
fn a_kiln_replica_follows_a_kiln_primary_over_tls() {
    let c = certs("kiln-kiln");
    let tls_port = support::free_port();
    let args = c.server_args(tls_port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let primary = TestServer::kiln(&args);
    let args = replica_args(&c, tls_port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let replica = TestServer::kiln(&args);
    let mut p = primary.raw();
    check_replication(&replica, |k, v| {
        assert_eq!(p.cmd(&["SET", k, v]), "+OK\r\n")
    });
    let list = p.cmd(&["CLIENT", "LIST"]);
    assert!(list.contains("flags=S"), "{list}");
}

/// CONFIG SET `tls-port` moves the TLS listener, and CONFIG SET `bind` rebinds it with the
/// plain one, as in Redis; a TLS port already taken is refused and the old one kept.
#[test]
fn config_set_tls_port_and_bind_rebind_the_tls_listener() {
    if !support::redis_tools(&["redis-cli"]) {
        return;
    }
    let c = certs("rebind");
    let mine = mine(&c);
    let mut bins = vec![support::kiln_bin()];
    if support::redis_tools(&["redis-server"]) {
        bins.push("redis-server");
    }
    for bin in bins {
        let (s, port) = tls_only(bin, &c, &["--enable-protected-configs", "yes"]);
        let moved = support::free_port();
        let set = |at: u16, args: &[&str]| cli(at, &c.ca, &mine, args);
        assert_eq!(
            set(port, &["CONFIG", "SET", "tls-port", &moved.to_string()]),
            "OK",
            "{bin}"
        );
        assert_eq!(set(moved, &["PING"]), "PONG", "{bin}");
        assert_ne!(
            set(port, &["PING"]),
            "PONG",
            "{bin}: the old TLS port still answers"
        );
        assert_eq!(
            set(moved, &["CONFIG", "SET", "bind", "127.0.0.1 -::1"]),
            "OK",
            "{bin}"
        );
        assert_eq!(set(moved, &["PING"]), "PONG", "{bin}");
        // A port taken by another listener: refused, the TLS port stays where it was.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken_port = taken.local_addr().unwrap().port().to_string();
        assert_eq!(
            set(moved, &["CONFIG", "SET", "tls-port", &taken_port]),
            "ERR CONFIG SET failed (possibly related to argument 'tls-port') - Unable to listen on this port. Check server logs.",
            "{bin}"
        );
        assert_eq!(set(moved, &["PING"]), "PONG", "{bin}");
        assert_eq!(
            set(moved, &["CONFIG", "GET", "tls-port"]),
            format!("tls-port\n{moved}"),
            "{bin}"
        );
        drop(s);
    }
}
