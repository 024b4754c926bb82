//! Test support: start real servers on free ports, talk raw RESP, and run differential
//! scripts against kiln-server and redis-server.
#![allow(dead_code)]

pub mod cluster;
pub mod examples;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A server process (Kiln or Redis) killed on drop.
pub use kiln_testkit::Server as TestServer;
// Each test binary uses some of these.
#[allow(unused_imports)]
pub use kiln_testkit::{free_port, redis_tools, wait_ready, wait_until, Raw, REQUIRE_REDIS_ENV};

/// The kiln-server binary this test crate built.
pub fn kiln_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kiln-server")
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

    /// A connection with a 10-second read timeout, or None if the server does not answer.
    pub fn try_client(&self) -> Option<redis::Connection> {
        let c = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).ok()?;
        let conn = c.get_connection_with_timeout(Duration::from_secs(5)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        Some(conn)
    }
}

impl Node {
    /// Sends a signal (`STOP`, `CONT`, ...) to the running server.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([format!("-{sig}"), c.id().to_string()])
                .status();
        }
    }

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

/// How long [`poll`] waits for a state before the test fails (a bound, not a measurement).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Calls `f` until it returns `Some`, failing after [`PATIENCE`].
pub fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kiln, and Redis where it is installed, started with the same arguments.
pub fn servers(extra: &[&str]) -> Vec<(&'static str, TestServer)> {
    let mut v = vec![("kiln", TestServer::kiln(extra))];
    if let Some(r) = TestServer::redis(extra) {
        v.push(("redis", r));
    }
    v
}

/// The CLIENT LIST line of the client named `name`, if it is connected.
pub fn client_line(observer: &mut Raw, name: &str) -> Option<String> {
    let list = observer.cmd(&["CLIENT", "LIST"]);
    list.lines()
        .find(|l| l.contains(&format!(" name={name} ")))
        .map(str::to_string)
}

/// A numeric field (`qbuf`, `omem`, `tot-mem`) of a CLIENT LIST line.
pub fn list_field(line: &str, field: &str) -> u64 {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{field}=")))
        .unwrap_or_else(|| panic!("no {field} in {line}"))
        .parse()
        .unwrap()
}
