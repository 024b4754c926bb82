//! Test helpers shared by the integration tests of `kiln-server` and `kiln-cli` (a
//! dev-dependency of both, never published): start a server process (kiln-server or
//! redis-server) on a free port and kill it on drop, talk raw RESP to it, and wait for a
//! state by polling for it instead of sleeping and hoping.
//!
//! kiln-server is found next to the test binaries (or built when it is not there), so the
//! cli's tests start the same server as the server's own.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod certs;

/// Set (to anything but "0") to make a missing redis-server or redis-cli a failure instead
/// of a skip. CI sets it.
pub const REQUIRE_REDIS_ENV: &str = "KILN_REQUIRE_REDIS";

/// Whether `KILN_REQUIRE_REDIS` asks for the Redis tools to be there.
pub fn redis_required() -> bool {
    std::env::var(REQUIRE_REDIS_ENV).is_ok_and(|v| v != "0")
}

/// Whether every one of `tools` (redis-server, redis-cli) runs. When one is missing this
/// panics if [`redis_required`], and otherwise says that the test skips its Redis half.
pub fn redis_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            Command::new(t)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    if redis_required() {
        panic!("{missing:?} not found and {REQUIRE_REDIS_ENV} is set");
    }
    eprintln!("{missing:?} not found: skipping what needs them");
    false
}

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
            // Past the range: let the kernel choose.
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            return l.local_addr().unwrap().port();
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Polls `cond` until it holds, panicking after a generous deadline: only a broken program
/// takes that long.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a server answers on `port` (+PONG, or -NOAUTH / -LOADING: either way it is
/// serving).
fn answers(port: u16) -> bool {
    let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let mut b = [0u8; 64];
    c.write_all(b"PING\r\n").is_ok() && c.read(&mut b).is_ok_and(|n| n > 0)
}

/// The process id the server on `port` reports (INFO server), if it says.
fn served_by(port: u16) -> Option<u32> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    c.write_all(b"INFO server\r\n").ok()?;
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while !got.windows(11).any(|w| w == b"process_id:") || !got.ends_with(b"\r\n\r\n") {
        let n = c.read(&mut b).ok()?;
        if n == 0 || got.first() == Some(&b'-') {
            return None;
        }
        got.extend_from_slice(&b[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    let line = text.lines().find(|l| l.starts_with("process_id:"))?;
    line["process_id:".len()..].trim().parse().ok()
}

/// Waits until a server answers on `port`; panics after 20 seconds.
pub fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !answers(port) {
        assert!(
            Instant::now() < deadline,
            "server on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// kiln-server: next to the test binaries when the crate or the workspace was built (`cargo
/// test -p kiln-server` and `cargo test --workspace` put it there), otherwise built here with
/// `cargo build -p kiln-server` into a separate target directory (the running `cargo test`
/// may hold the lock of its own).
pub fn kiln_server_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // <target>/<profile>/deps/<test binary>
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let next_to_us = profile_dir.join("kiln-server");
        if next_to_us.exists() {
            return next_to_us;
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let target = profile_dir.join("kiln-testkit-build");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "kiln-server", "--bin", "kiln-server"])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(&root)
            .status()
            .expect("running cargo build -p kiln-server");
        assert!(status.success(), "cargo build -p kiln-server failed");
        target.join("debug").join("kiln-server")
    })
    .clone()
}

/// The server's log, in its directory.
const LOG: &str = "server.log";

/// A server process (kiln-server or redis-server) with its own directory, started with
/// redis-server style arguments and no persistence unless asked for; killed on drop.
pub struct Server {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Server {
    /// Starts kiln-server with extra redis-server style arguments.
    pub fn kiln(extra: &[&str]) -> Self {
        Self::start(kiln_server_binary(), extra)
    }

    /// Starts redis-server, or returns None (the test skips its Redis half) unless
    /// `KILN_REQUIRE_REDIS` is set.
    pub fn redis(extra: &[&str]) -> Option<Self> {
        redis_tools(&["redis-server"]).then(|| Self::start("redis-server", extra))
    }

    /// Starts `bin` on a free port with `extra` arguments after the defaults. A server that
    /// exits before it serves (it lost its port to someone else) is tried again on another.
    pub fn start(bin: impl AsRef<Path>, extra: &[&str]) -> Self {
        let bin = bin.as_ref();
        for _attempt in 0..5 {
            if let Some(s) = Self::try_start(bin, free_port(), extra) {
                return s;
            }
        }
        panic!("{} did not start", bin.display());
    }

    /// Starts `bin` on `port` (to start a server again where one was).
    pub fn start_on(bin: impl AsRef<Path>, port: u16, extra: &[&str]) -> Self {
        let bin = bin.as_ref();
        Self::try_start(bin, port, extra)
            .unwrap_or_else(|| panic!("{} did not start on port {port}", bin.display()))
    }

    /// Starts `bin` without waiting for it to serve on a TCP port: for a server that
    /// listens only on a Unix socket or TLS (`--port 0`), whose readiness the test polls
    /// itself. `port` is free for the caller to use (it names the directory too).
    pub fn launch(bin: impl AsRef<Path>, extra: &[&str]) -> Self {
        Self::spawn(bin.as_ref(), free_port(), extra)
    }

    fn spawn(bin: &Path, port: u16, extra: &[&str]) -> Self {
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
        // The log (stdout) and panics and crash reports (stderr) go to a file in the
        // directory, whose tail a failing test prints; KILN_TEST_STDERR=1 shows them live.
        let (stdout, stderr) = if std::env::var_os("KILN_TEST_STDERR").is_some() {
            (Stdio::inherit(), Stdio::inherit())
        } else {
            match std::fs::File::create(dir.join(LOG)).and_then(|f| Ok((f.try_clone()?, f))) {
                Ok((a, b)) => (Stdio::from(a), Stdio::from(b)),
                Err(_) => (Stdio::null(), Stdio::null()),
            }
        };
        let child = Command::new(bin)
            .args(&args)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        // Owned from here: a failed start still kills the process and removes the directory.
        Self { port, dir, child }
    }

    fn try_start(bin: &Path, port: u16, extra: &[&str]) -> Option<Self> {
        let mut s = Self::spawn(bin, port, extra);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if !s.alive() {
                return None;
            }
            if answers(port) {
                // Another test's server may hold the port (ours then fails to bind and
                // exits): only ours will do.
                return match served_by(port) {
                    Some(pid) if pid != s.child.id() => None,
                    _ => Some(s),
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} on port {port} did not start", bin.display());
    }

    /// A raw RESP connection.
    pub fn raw(&self) -> Raw {
        Raw::connect(self.port)
    }

    /// A `redis` crate connection.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit on its own (after SHUTDOWN, a signal); looks at least
    /// once, so `Duration::ZERO` tells how a process that already exited ended.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `lines` lines of the server's log (empty with `KILN_TEST_STDERR`, where the
    /// log went to the test's own stderr).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read(self.dir.join(LOG)).unwrap_or_default();
        let log = String::from_utf8_lossy(&log);
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Sends a signal (`TERM`, `KILL`, ...) to the server process.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server now (to test what clients do when it goes away).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let tail = self.log_tail(40);
            if !tail.is_empty() {
                eprintln!(
                    "--- the end of the log of the server on port {} ---\n{tail}",
                    self.port
                );
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A raw connection that sends bytes and reads whole RESP replies.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub fn connect(port: u16) -> Self {
        Self::connect_to("127.0.0.1", port)
    }

    /// A connection to `host:port` (a server bound elsewhere than loopback).
    pub fn connect_to(host: &str, port: u16) -> Self {
        let stream = TcpStream::connect((host, port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// A connection from the local address `from` (another loopback address such as
    /// 127.0.0.2 is not local to Redis's protected mode), to `port` on 127.0.0.1.
    pub fn connect_from(from: std::net::IpAddr, port: u16) -> Self {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.bind(&std::net::SocketAddr::new(from, 0).into()).unwrap();
        s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
            .unwrap();
        let stream: TcpStream = s.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
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
                // Closed with our request unread: the kernel resets the connection.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    /// One field of `INFO section`, if the server reports it.
    pub fn info_field(&mut self, section: &str, field: &str) -> Option<String> {
        let info = self.cmd(&["INFO", section]);
        let prefix = format!("{field}:");
        info.split("\r\n")
            .find_map(|l| l.strip_prefix(&prefix))
            .map(str::to_owned)
    }

    /// Polls `INFO section` until `field` reads `value`.
    pub fn wait_info(&mut self, section: &str, field: &str, value: &str) {
        wait_until(&format!("INFO {field} to read {value}"), || {
            self.info_field(section, field).as_deref() == Some(value)
        });
    }

    /// Waits until the server reports `n` blocked clients (INFO clients), so a test knows
    /// its waiters are registered before it pushes: a sleep would only make that likely.
    pub fn wait_blocked(&mut self, n: usize) {
        self.wait_info("clients", "blocked_clients", &n.to_string());
    }
}
