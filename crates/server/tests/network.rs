//! Where clients connect and who may: `unixsocket` (alone or beside TCP), `bind` with
//! optional (`-`) and wildcard addresses, protected mode and what counts as local. Each
//! test checks Kiln and, where it runs, redis-server the same way.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{wait_until, Raw, TestServer};

/// A raw RESP connection over a Unix socket.
struct UnixRaw {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl UnixRaw {
    fn connect(path: &Path) -> Self {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        UnixRaw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends a command and returns its reply, lossy text; None when the server closed.
    fn cmd(&mut self, args: &[&str]) -> Option<String> {
        let mut out = Vec::new();
        kiln_resp::encode::request(&mut out, args);
        self.stream.write_all(&out).ok()?;
        loop {
            if let Ok((_, n)) = kiln_resp::decode(&self.buf) {
                let r = String::from_utf8_lossy(&self.buf[..n]).into_owned();
                self.buf.drain(..n);
                return Some(r);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Whether the socket at `path` answers PING.
fn answers(path: &Path) -> bool {
    let Ok(s) = UnixStream::connect(path) else {
        return false;
    };
    let mut c = UnixRaw {
        stream: s,
        buf: Vec::new(),
    };
    c.cmd(&["PING"]).is_some_and(|r| r == "+PONG\r\n")
}

/// A field of a CLIENT LIST / CLIENT INFO line.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// A socket path of this test process's own (`tag` tells the tests apart).
fn sock_path(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("kiln-net-{}-{tag}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// Starts `bin` with only a Unix socket (`port 0`); returns it once the socket answers.
fn socket_only(bin: &str) -> (TestServer, std::path::PathBuf) {
    let path = sock_path(if bin == "redis-server" {
        "redis"
    } else {
        "kiln"
    });
    let s = TestServer::launch(
        bin,
        &[
            "--port",
            "0",
            "--unixsocket",
            path.to_str().unwrap(),
            "--unixsocketperm",
            "700",
        ],
    );
    wait_until("the unix socket answers", || answers(&path));
    (s, path)
}

/// What a socket-only server shows of a Unix client, and what redis-cli -s does with it.
fn unix_client_view(bin: &str) -> (String, String, String, String, u32) {
    let (s, path) = socket_only(bin);
    let p = path.to_str().unwrap();
    let mut a = UnixRaw::connect(&path);
    let mut b = UnixRaw::connect(&path);
    let info = a.cmd(&["CLIENT", "INFO"]).unwrap();
    let shown = format!(
        "addr={} laddr={} flags={}",
        field(&info, "addr"),
        field(&info, "laddr"),
        field(&info, "flags")
    );
    let tcp_port = b.cmd(&["INFO", "server"]).unwrap();
    let tcp_port = tcp_port
        .lines()
        .find(|l| l.starts_with("tcp_port:"))
        .unwrap()
        .to_string();
    // CLIENT KILL ADDR matches the socket's clients (not the caller: SKIPME).
    let killed = b
        .cmd(&["CLIENT", "KILL", "ADDR", &format!("{p}:0")])
        .unwrap();
    let cli = Command::new("redis-cli")
        .args(["-s", p, "PING"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    b.cmd(&["SHUTDOWN", "NOSAVE"]);
    let mut s = s;
    s.wait_exit(Duration::from_secs(20)).expect("server exits");
    assert!(!path.exists(), "{bin} left its socket file behind");
    (
        shown.replace(p, "PATH"),
        tcp_port,
        killed,
        cli.trim().to_string(),
        mode,
    )
}

#[test]
fn a_unix_socket_alone_serves_clients_as_redis_does() {
    let kiln = unix_client_view(support::kiln_bin());
    assert_eq!(kiln.0, "addr=PATH:0 laddr=PATH:0 flags=U");
    assert_eq!(kiln.1, "tcp_port:0");
    assert_eq!(kiln.2, ":1\r\n");
    if support::redis_tools(&["redis-cli"]) {
        assert_eq!(kiln.3, "PONG");
    }
    assert_eq!(kiln.4, 0o700);
    if support::redis_tools(&["redis-server"]) {
        assert_eq!(unix_client_view("redis-server"), kiln);
    }
}

#[test]
fn a_unix_socket_beside_tcp_serves_both() {
    let path = sock_path("beside");
    let s = TestServer::kiln(&["--unixsocket", path.to_str().unwrap()]);
    let mut tcp = s.raw();
    assert_eq!(tcp.cmd(&["SET", "k", "v"]), "+OK\r\n");
    let mut unix = UnixRaw::connect(&path);
    assert_eq!(unix.cmd(&["GET", "k"]).unwrap(), "$1\r\nv\r\n");
    let list = tcp.cmd(&["CLIENT", "LIST"]);
    assert!(
        list.contains(&format!("addr={}:0", path.display())),
        "{list}"
    );
    assert!(list.contains("addr=127.0.0.1:"), "{list}");
    // MONITOR names the socket as Redis does: `[db unix:<path>]`.
    let mut mon = s.raw();
    assert_eq!(mon.cmd(&["MONITOR"]), "+OK\r\n");
    assert_eq!(unix.cmd(&["GET", "k"]).unwrap(), "$1\r\nv\r\n");
    let line = String::from_utf8_lossy(&mon.read_reply().unwrap()).into_owned();
    assert!(
        line.ends_with(&format!("[0 unix:{}] \"GET\" \"k\"\r\n", path.display())),
        "{line}"
    );
    drop(s);
    let _ = std::fs::remove_file(&path);
}

/// What a client connecting from 127.0.0.2 reads first: the whole reply, then whether the
/// connection closed.
fn from_other_loopback(port: u16) -> (String, bool) {
    let mut c = Raw::connect_from([127, 0, 0, 2].into(), port);
    c.send(b"PING\r\n");
    let reply = c
        .try_read_reply()
        .ok()
        .flatten()
        .map(|r| String::from_utf8_lossy(&r).into_owned())
        .unwrap_or_default();
    (reply, c.is_closed())
}

/// Protected mode as one server applies it, seen from 127.0.0.2 (not local: Redis
/// compares the address with 127.0.0.1 and ::1), 127.0.0.1 and a Unix socket.
fn protected_mode_view(s: &TestServer, sock: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let (denied, closed) = from_other_loopback(s.port);
    out.push(denied);
    out.push(format!("closed={closed}"));
    let mut local = s.raw();
    out.push(local.cmd(&["PING"]));
    out.push(UnixRaw::connect(sock).cmd(&["PING"]).unwrap());
    out.push(local.info_field("stats", "rejected_connections").unwrap());
    // A password for the default user lets remote clients reach AUTH.
    local.cmd(&["CONFIG", "SET", "requirepass", "secret"]);
    out.push(from_other_loopback(s.port).0);
    local.cmd(&["AUTH", "secret"]);
    local.cmd(&["CONFIG", "SET", "requirepass", ""]);
    local.cmd(&["CONFIG", "SET", "protected-mode", "no"]);
    out.push(from_other_loopback(s.port).0);
    // `enable-debug-command local` shares the definition of local: 127.0.0.2 is not, a
    // Unix socket is.
    let mut remote = Raw::connect_from([127, 0, 0, 2].into(), s.port);
    out.push(remote.cmd(&["DEBUG", "SLEEP", "0"]));
    out.push(
        UnixRaw::connect(sock)
            .cmd(&["DEBUG", "SLEEP", "0"])
            .unwrap(),
    );
    // `enable-protected-configs local` likewise.
    let dir = local.cmd(&["CONFIG", "GET", "dir"]);
    let dir = dir.lines().nth(4).unwrap().to_string();
    out.push(remote.cmd(&["CONFIG", "SET", "dir", &dir]));
    let mut unix = UnixRaw::connect(sock);
    out.push(unix.cmd(&["CONFIG", "SET", "dir", &dir]).unwrap());
    out
}

#[test]
fn protected_mode_denies_non_local_clients_without_a_password() {
    let args = |sock: &Path| {
        vec![
            "--bind".to_string(),
            "127.0.0.1".to_string(),
            "--unixsocket".to_string(),
            sock.to_string_lossy().into_owned(),
            "--enable-debug-command".to_string(),
            "local".to_string(),
            "--enable-protected-configs".to_string(),
            "local".to_string(),
        ]
    };
    let ksock = sock_path("protected-kiln");
    let kargs = args(&ksock);
    let kargs: Vec<&str> = kargs.iter().map(String::as_str).collect();
    let kiln = TestServer::kiln(&kargs);
    let got = protected_mode_view(&kiln, &ksock);
    assert!(
        got[0].starts_with("-DENIED Redis is running in protected mode"),
        "{got:?}"
    );
    assert_eq!(got[1], "closed=true");
    assert_eq!(got[2], "+PONG\r\n");
    assert_eq!(got[3], "+PONG\r\n");
    assert_eq!(got[4], "1");
    assert_eq!(got[5], "-NOAUTH Authentication required.\r\n");
    assert_eq!(got[6], "+PONG\r\n");
    assert!(
        got[7].starts_with("-ERR DEBUG command not allowed"),
        "{got:?}"
    );
    assert_eq!(got[8], "+OK\r\n");
    assert!(got[9].contains("can't set protected config"), "{got:?}");
    assert_eq!(got[10], "+OK\r\n");
    if let Some(redis) = {
        let rsock = sock_path("protected-redis");
        let rargs = args(&rsock);
        let rargs: Vec<&str> = rargs.iter().map(String::as_str).collect();
        TestServer::redis(&rargs).map(|r| (r, rsock))
    } {
        assert_eq!(protected_mode_view(&redis.0, &redis.1), got);
    }
}

/// Whether `bin` starts with `bind`, and if so whether it serves on 127.0.0.1.
fn starts_with_bind(bin: &str, bind: &str) -> bool {
    let port = support::free_port();
    let mut s = TestServer::launch(bin, &["--port", &port.to_string(), "--bind", bind]);
    let mut served = false;
    wait_until("the server serves or exits", || {
        served = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        served || !s.alive()
    });
    served
}

#[test]
fn bind_skips_optional_addresses_that_are_not_here() {
    // 192.0.2.123 (TEST-NET-1) is no address of this host.
    for bin in [support::kiln_bin(), "redis-server"] {
        if bin == "redis-server" && !support::redis_tools(&["redis-server"]) {
            continue;
        }
        assert!(starts_with_bind(bin, "127.0.0.1 -192.0.2.123"), "{bin}");
        assert!(!starts_with_bind(bin, "127.0.0.1 192.0.2.123"), "{bin}");
        assert!(starts_with_bind(bin, "* -::*"), "{bin}");
    }
}

/// CONFIG SET `port` and `bind` rebind the listeners at run time, as Redis does; a port
/// or address that cannot be bound fails with Redis's error and the old listeners stay.
#[test]
fn config_set_port_and_bind_rebind_the_listeners() {
    for (name, s) in support::servers(&[]) {
        let mut c = s.raw();
        let port = s.port.to_string();
        // Setting the current value always succeeds.
        assert_eq!(
            c.cmd(&["CONFIG", "SET", "port", &port]),
            "+OK\r\n",
            "{name}"
        );
        assert_eq!(
            c.cmd(&["CONFIG", "SET", "bind", "127.0.0.1"]),
            "+OK\r\n",
            "{name}"
        );
        // A port another socket holds: refused, and the old port keeps serving.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken_port = taken.local_addr().unwrap().port().to_string();
        assert_eq!(
            c.cmd(&["CONFIG", "SET", "port", &taken_port]),
            "-ERR CONFIG SET failed (possibly related to argument 'port') - Unable to listen on this port. Check server logs.\r\n",
            "{name}"
        );
        assert_eq!(s.raw().cmd(&["PING"]), "+PONG\r\n", "{name}");
        // An address that is not here: refused the same way.
        assert_eq!(
            c.cmd(&["CONFIG", "SET", "bind", "192.0.2.1"]),
            "-ERR CONFIG SET failed (possibly related to argument 'bind') - Failed to bind to specified addresses.\r\n",
            "{name}"
        );
        assert_eq!(s.raw().cmd(&["PING"]), "+PONG\r\n", "{name}");
        assert_eq!(
            c.cmd(&["CONFIG", "GET", "bind"]),
            "*2\r\n$4\r\nbind\r\n$9\r\n127.0.0.1\r\n"
        );
        // A free port: new connections go there, the old port is closed, and the
        // connection that asked stays connected.
        drop(taken);
        let free = kiln_testkit::free_port();
        assert_eq!(
            c.cmd(&["CONFIG", "SET", "port", &free.to_string()]),
            "+OK\r\n",
            "{name}"
        );
        assert_eq!(Raw::connect(free).cmd(&["PING"]), "+PONG\r\n", "{name}");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", s.port)).is_err(),
            "{name}: the old port still accepts"
        );
        assert_eq!(c.cmd(&["PING"]), "+PONG\r\n", "{name}");
        let info = c.cmd(&["INFO", "server"]);
        assert!(
            info.contains(&format!("tcp_port:{free}\r\n")),
            "{name}: {info}"
        );
        // Put it back, so the test harness can stop the server on the port it knows.
        assert_eq!(
            c.cmd(&["CONFIG", "SET", "port", &port]),
            "+OK\r\n",
            "{name}"
        );
    }
}

/// Kiln's own `threads` may be set to its current value (a config file written back by
/// CONFIG REWRITE, or a tool that sets everything it read), not changed.
#[test]
fn config_set_threads_accepts_only_its_current_value() {
    let s = TestServer::kiln(&["--threads", "2"]);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["CONFIG", "SET", "threads", "2"]), "+OK\r\n");
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "threads", "3"]),
        "-ERR CONFIG SET failed (possibly related to argument 'threads') - can't set immutable config\r\n"
    );
}
