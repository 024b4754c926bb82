//! Test support: start real servers on free ports, talk raw RESP, and run differential
//! scripts against kiln-server and redis-server.
#![allow(dead_code)]

pub mod examples;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Set (to anything but "0") to make a missing redis-server a failure instead of a skip.
pub const REQUIRE_REDIS_ENV: &str = "KILN_REQUIRE_REDIS";

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A free loopback port. Ports are handed out from a per-process range so parallel tests in
/// one binary never race for the same one, and each is checked free before use.
pub fn free_port() -> u16 {
    let base = 20000 + (std::process::id() % 2000) as u16 * 20;
    loop {
        let off = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let port = if off < 20 {
            base + off
        } else {
            // Fallback: let the kernel choose.
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            return l.local_addr().unwrap().port();
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A server process (Kiln or Redis) killed on drop.
pub struct TestServer {
    pub port: u16,
    child: Child,
    pub dir: std::path::PathBuf,
}

impl TestServer {
    /// Starts kiln-server with extra redis-server style arguments.
    pub fn kiln(extra: &[&str]) -> Self {
        Self::spawn(env!("CARGO_BIN_EXE_kiln-server"), extra)
    }

    /// Starts redis-server, or returns None (skip) unless `KILN_REQUIRE_REDIS` is set.
    pub fn redis(extra: &[&str]) -> Option<Self> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok();
        if !found {
            if std::env::var(REQUIRE_REDIS_ENV).is_ok_and(|v| v != "0") {
                panic!("redis-server not found and {REQUIRE_REDIS_ENV} is set");
            }
            eprintln!("redis-server not found: skipping the differential part of this test");
            return None;
        }
        Some(Self::spawn("redis-server", extra))
    }

    fn spawn(bin: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("kiln-test-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port_s = port.to_string();
        let dir_s = dir.to_string_lossy().to_string();
        let mut args: Vec<&str> = vec![
            "--port",
            &port_s,
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir_s,
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        args.extend_from_slice(extra);
        let child = Command::new(bin)
            .args(&args)
            .stdout(Stdio::null())
            // KILN_TEST_STDERR=1 shows the servers' logs (panics, crash reports).
            .stderr(if std::env::var_os("KILN_TEST_STDERR").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        let s = Self { port, child, dir };
        wait_ready(s.port);
        s
    }

    /// A `redis` crate connection.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// A raw RESP connection.
    pub fn raw(&self) -> Raw {
        Raw::connect(self.port)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit on its own (e.g. after SHUTDOWN).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until a server answers on `port` (+PONG, or -NOAUTH / -LOADING: either way it is
/// serving).
fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            if c.write_all(b"PING\r\n").is_ok() {
                let mut b = [0u8; 64];
                if c.read(&mut b).is_ok_and(|n| n > 0) {
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server on port {port} did not start");
}

/// Pids of the running [`Node`]s, for [`kill_nodes`].
static NODES: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// A server on a fixed port that a test can stop (SIGKILL), shut down and start again; its
/// directory stays across restarts.
pub struct Node {
    pub port: u16,
    pub dir: std::path::PathBuf,
    bin: String,
    extra: Vec<String>,
    child: Option<Child>,
}

impl Node {
    /// Starts kiln-server (DEBUG enabled; no persistence unless `extra` asks for it).
    pub fn kiln(port: u16, extra: &[&str]) -> Self {
        Self::start(env!("CARGO_BIN_EXE_kiln-server"), port, extra)
    }

    /// Starts redis-server likewise (the caller checks that it is installed).
    pub fn redis(port: u16, extra: &[&str]) -> Self {
        Self::start("redis-server", port, extra)
    }

    fn start(bin: &str, port: u16, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("kiln-node-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(dir.with_extension("log"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut n = Node {
            port,
            dir,
            bin: bin.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        n.restart();
        n
    }

    /// Stops the server if it runs, and starts it again.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port.to_string();
        let dir = self.dir.to_string_lossy().to_string();
        let mut args: Vec<&str> = vec![
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir,
            "--save",
            "",
            "--appendonly",
            "no",
            "--enable-debug-command",
            "yes",
        ];
        args.extend(self.extra.iter().map(|s| s.as_str()));
        // Output goes to a log next to the directory, kept when the test fails.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let child = Command::new(&self.bin)
            .args(&args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.bin));
        NODES.lock().unwrap().push(child.id());
        self.child = Some(child);
        wait_ready(self.port);
    }

    /// SIGKILL: the server gets no chance to do anything on the way out.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            NODES.lock().unwrap().retain(|&p| p != c.id());
        }
    }

    /// A clean stop (SHUTDOWN NOSAVE), with SIGKILL after 10 seconds.
    pub fn shutdown(&mut self) {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.write_all(b"SHUTDOWN NOSAVE\r\n");
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = s.read(&mut [0u8; 64]);
        }
        if let Some(c) = self.child.as_mut() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.stop();
    }

    pub fn client(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Node {
    /// The server's output, across restarts.
    pub fn log(&self) -> std::path::PathBuf {
        self.dir.with_extension("log")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        if std::thread::panicking() {
            eprintln!("server log kept: {}", self.log().display());
        } else {
            let _ = std::fs::remove_file(self.log());
        }
    }
}

/// SIGKILLs every running [`Node`] (so a watchdog that ends the process leaves none behind).
pub fn kill_nodes() {
    for pid in NODES.lock().unwrap().iter() {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// A raw connection that sends bytes and reads whole RESP replies.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends a command as a multibulk request.
    pub fn send_cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let mut out = Vec::new();
        kiln_resp::encode::request(&mut out, args);
        self.send(&out);
    }

    /// Reads exactly one reply and returns its raw bytes; None on EOF.
    pub fn read_reply(&mut self) -> Option<Vec<u8>> {
        self.try_read_reply()
            .unwrap_or_else(|e| panic!("read error: {e}"))
    }

    /// Reads exactly one reply: `Ok(None)` when the server closed the connection (EOF, or a
    /// reset after we wrote to a closed one), `Err` on any other error (a read timeout).
    pub fn try_read_reply(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            match kiln_resp::decode(&self.buf) {
                Ok((_, n)) => {
                    let r = self.buf[..n].to_vec();
                    self.buf.drain(..n);
                    return Ok(Some(r));
                }
                Err(kiln_resp::DecodeError::Incomplete) => {}
                Err(e) => panic!("bad reply {e}: {:?}", String::from_utf8_lossy(&self.buf)),
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a command and returns the raw reply as a string (lossy).
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> String {
        self.send_cmd(args);
        String::from_utf8_lossy(&self.read_reply().expect("connection closed")).into_owned()
    }

    /// Whether the server closed the connection (reads until EOF or timeout).
    pub fn is_closed(&mut self) -> bool {
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut b = [0u8; 1024];
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// Splits a script line into arguments like redis-cli (quotes, `\x..` escapes).
pub fn split_line(line: &str) -> Vec<Vec<u8>> {
    let mut ranges = Vec::new();
    let mut tmp = line.as_bytes().to_vec();
    tmp.extend_from_slice(b"\r\n");
    match kiln_resp::parse_request(&tmp, &mut ranges, &kiln_resp::Limits::default()) {
        Ok(kiln_resp::Parsed::Complete { .. }) => {}
        other => panic!("bad script line {line:?}: {other:?}"),
    }
    ranges
        .iter()
        .map(|r| {
            let a = &tmp[r.clone()];
            kiln_resp::request::unquote_inline_arg(a).unwrap_or_else(|| a.to_vec())
        })
        .collect()
}

/// How a script line's reply is compared.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Compare {
    Exact,
    /// `sort:` the reply is an array whose order is unspecified (KEYS, SMEMBERS).
    Sorted,
    /// `~` the reply is not compared (TIME, CLIENT ID, HELLO), only that both succeed or
    /// both fail.
    Kind,
}

/// Runs a differential script against Kiln and Redis and panics listing every line whose
/// replies differ. Without redis-server (and without `KILN_REQUIRE_REDIS`), checks only that
/// Kiln answers every line.
///
/// Script format, one command per line:
/// * `SET k v` a command, its reply compared byte for byte;
/// * `sort: KEYS *` an array reply compared after sorting its elements;
/// * `~ TIME` a reply compared only by kind (both errors or both not);
/// * `!sleep 120` sleep that many milliseconds;
/// * `[2] SUBSCRIBE a b` a command that produces several replies, all compared;
/// * `# text` and blank lines are comments.
///
/// Each script starts on a fresh server pair with FLUSHALL.
pub fn run_script(name: &str, script: &str) {
    run_script_with(name, script, &[]);
}

/// [`run_script`] with extra server arguments for both servers.
pub fn run_script_with(name: &str, script: &str, extra: &[&str]) {
    let kiln = TestServer::kiln(extra);
    let redis = TestServer::redis(extra);
    let mut k = kiln.raw();
    let mut r = redis.as_ref().map(|s| s.raw());
    let mut failures = Vec::new();
    for (lineno, line) in script.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(ms) = line.strip_prefix("!sleep ") {
            std::thread::sleep(Duration::from_millis(ms.trim().parse().unwrap()));
            continue;
        }
        // `[N] CMD`: the command produces N replies (SUBSCRIBE a b), each compared.
        let (replies, line) = match line.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((n, rest)) if n.parse::<usize>().is_ok() => (n.parse().unwrap(), rest.trim()),
            _ => (1, line),
        };
        let (mode, cmd) = if let Some(rest) = line.strip_prefix("sort:") {
            (Compare::Sorted, rest.trim())
        } else if let Some(rest) = line.strip_prefix('~') {
            (Compare::Kind, rest.trim())
        } else {
            (Compare::Exact, line)
        };
        let args = split_line(cmd);
        let read_all = |c: &mut Raw, who: &str| -> Vec<u8> {
            let mut all = Vec::new();
            for _ in 0..replies {
                all.extend(c.read_reply().unwrap_or_else(|| {
                    panic!(
                        "{name}:{}: {who} closed the connection at {cmd:?}",
                        lineno + 1
                    )
                }));
            }
            all
        };
        k.send_cmd(&args);
        let kr = read_all(&mut k, "kiln");
        let Some(r) = r.as_mut() else {
            continue;
        };
        r.send_cmd(&args);
        let rr = read_all(r, "redis");
        let same = match mode {
            Compare::Exact => kr == rr,
            Compare::Sorted => sorted(&kr) == sorted(&rr),
            Compare::Kind => (kr[0] == b'-') == (rr[0] == b'-'),
        };
        if !same {
            failures.push(format!(
                "{name}:{}: {cmd}\n    redis: {:?}\n    kiln:  {:?}",
                lineno + 1,
                String::from_utf8_lossy(&rr),
                String::from_utf8_lossy(&kr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences from redis-server:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn sorted(reply: &[u8]) -> kiln_resp::Value {
    use kiln_resp::Value;
    let (v, _) = kiln_resp::decode(reply).unwrap();
    match v {
        Value::Array(mut items) => {
            items.sort_by_key(|a| format!("{a:?}"));
            Value::Array(items)
        }
        Value::Set(mut items) => {
            items.sort_by_key(|a| format!("{a:?}"));
            Value::Set(items)
        }
        other => other,
    }
}

/// Runs every `*.txt` script in `tests/diff/<dir>`.
pub fn run_script_dir(dir: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/diff")
        .join(dir);
    let mut entries: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "no scripts in {}", root.display());
    let mut failures = Vec::new();
    for p in entries {
        let text = std::fs::read_to_string(&p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if let Err(e) = std::panic::catch_unwind(|| run_script(&name, &text)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(msg);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The `(event, key)` pairs a `PSUBSCRIBE __keyevent@0__:*` connection receives while the
/// commands run, up to a SET of the key `end` (the sentinel).
pub fn keyevents(s: &TestServer, cmds: &[&[&str]]) -> Vec<(String, String)> {
    let mut sub = s.raw();
    sub.cmd(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    let mut c = s.raw();
    c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    for cmd in cmds {
        c.cmd(cmd);
    }
    c.cmd(&["SET", "end", "x"]);
    let mut events = Vec::new();
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
        let key = text[3].clone();
        if key == "end" {
            return events;
        }
        events.push((event, key));
    }
}

/// Server arguments that allow DEBUG from any connection.
pub const DEBUG_ON: &[&str] = &["--enable-debug-command", "yes"];

/// Runs one command given as byte arguments and returns its reply.
pub fn cmd(c: &mut redis::Connection, args: &[&[u8]]) -> redis::Value {
    let mut q = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        q.arg(*a);
    }
    q.query(c).unwrap()
}

/// Runs one command written as a line of space-separated words.
pub fn run(c: &mut redis::Connection, line: &str) -> redis::Value {
    let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    cmd(c, &args)
}

/// `DEBUG DIGEST` of the whole dataset.
pub fn digest(c: &mut redis::Connection) -> String {
    redis::cmd("DEBUG").arg("DIGEST").query(c).unwrap()
}

/// DEBUG DIGEST-VALUE of every key of databases `dbs`, by (database, key): names the keys
/// that differ when two datasets' digests do. Leaves database 0 selected.
pub fn key_digests(
    c: &mut redis::Connection,
    dbs: &[u8],
) -> std::collections::BTreeMap<(u8, String), String> {
    let mut out = std::collections::BTreeMap::new();
    for &db in dbs {
        run(c, &format!("SELECT {db}"));
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(c).unwrap();
        for k in keys {
            let d: Vec<String> = redis::cmd("DEBUG")
                .arg("DIGEST-VALUE")
                .arg(&k)
                .query(c)
                .unwrap();
            out.insert((db, k), d.concat());
        }
    }
    run(c, "SELECT 0");
    out
}
