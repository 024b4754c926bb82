//! Test support for kiln-cli: start redis-server or kiln-server on a free port, run
//! kiln-cli and redis-cli as subprocesses, compare what they print.
//!
//! Tests that need redis-server and redis-cli skip themselves when those are missing,
//! unless `KILN_REQUIRE_REDIS` is set (as CI does): then a missing tool is a failure.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Set (to anything but "0") to make a missing redis-server/redis-cli a failure.
pub const REQUIRE_REDIS_ENV: &str = "KILN_REQUIRE_REDIS";

/// The kiln-cli binary under test.
pub fn kiln_cli() -> &'static str {
    env!("CARGO_BIN_EXE_kiln-cli")
}

/// A scratch directory unique to this test process and name.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A port nobody listens on right now (the kernel picks it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tool_found(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Whether redis-server and redis-cli are there; panics if they are missing and required.
pub fn redis_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    let found = *FOUND.get_or_init(|| tool_found("redis-server") && tool_found("redis-cli"));
    if !found {
        if std::env::var(REQUIRE_REDIS_ENV).is_ok_and(|v| v != "0") {
            panic!("redis-server/redis-cli not found and {REQUIRE_REDIS_ENV} is set");
        }
        eprintln!("redis-server or redis-cli not found: skipping this test");
    }
    found
}

/// A server process killed on drop.
pub struct Server {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Server {
    /// Starts redis-server (with DEBUG enabled, for DEBUG PROTOCOL), or `None` when it is not
    /// installed and not required.
    pub fn redis(extra: &[&str]) -> Option<Server> {
        if !redis_available() {
            return None;
        }
        let mut args = vec!["--enable-debug-command", "yes"];
        args.extend_from_slice(extra);
        Some(Self::spawn(Path::new("redis-server"), &args, None))
    }

    /// Starts redis-server on a given port (to restart one where it was).
    pub fn redis_on(port: u16, extra: &[&str]) -> Option<Server> {
        if !redis_available() {
            return None;
        }
        Some(Self::spawn(Path::new("redis-server"), extra, Some(port)))
    }

    /// Starts kiln-server.
    pub fn kiln(extra: &[&str]) -> Server {
        Self::spawn(&kiln_server_binary(), extra, None)
    }

    fn spawn(bin: &Path, extra: &[&str], fixed_port: Option<u16>) -> Server {
        for _attempt in 0..5 {
            let port = fixed_port.unwrap_or_else(free_port);
            let dir = scratch(&format!("server-{port}"));
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
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            let mut s = Server { port, dir, child };
            if s.wait_ready() {
                return s;
            }
            // Lost a race for the port: try another one.
            let _ = s.child.kill();
        }
        panic!("{} did not start", bin.display());
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut c) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                if c.write_all(b"PING\r\n").is_ok() {
                    let mut b = [0u8; 64];
                    if matches!(c.read(&mut b), Ok(n) if n > 0) {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The port as an argument string.
    pub fn p(&self) -> String {
        self.port.to_string()
    }

    /// Sends one inline command with a raw connection and returns the raw reply bytes.
    pub fn raw(&self, line: &str) -> Vec<u8> {
        let mut c = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            let n = c.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..n]);
            if n == 0 || kiln_resp::decode(&buf).is_ok() {
                return buf;
            }
        }
    }

    /// Stops the server (to test what clients do when it goes away).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// kiln-server: next to the test binaries when the workspace was built (as `cargo test
/// --workspace` does), otherwise built here with `cargo build -p kiln-server` into a
/// separate target directory (the running `cargo test` may hold the lock of its own).
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
        let target = profile_dir.join("kiln-cli-test-build");
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

/// What a CLI run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub code: Option<i32>,
}

impl Run {
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            stdout: o.stdout,
            stderr: o.stderr,
            code: o.status.code(),
        }
    }
}

/// Runs `bin args...` with `stdin` (closed when `None`) in a clean environment (no
/// password or history variables leaking in from the developer's shell).
pub fn run_with(bin: &str, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_remove("REDISCLI_AUTH")
        .env_remove("KILNCLI_AUTH")
        .env_remove("FAKETTY")
        .env("REDISCLI_HISTFILE", "/dev/null")
        .env("KILNCLI_HISTFILE", "/dev/null")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("running {bin}: {e}"));
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let data = data.to_vec();
        // Write from a thread: the child may produce output before reading all input.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    child.wait_with_output().unwrap().into()
}

/// Runs kiln-cli.
pub fn kiln(args: &[&str], stdin: Option<&[u8]>) -> Run {
    run_with(kiln_cli(), args, stdin, &[])
}

/// Runs redis-cli.
pub fn redis_cli(args: &[&str], stdin: Option<&[u8]>) -> Run {
    run_with("redis-cli", args, stdin, &[])
}

/// Runs redis-cli and kiln-cli with the same arguments and input and asserts they print
/// the same bytes on stdout and stderr and exit with the same status. Returns the run.
pub fn same(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let r = redis_cli(args, stdin);
    let k = kiln(args, stdin);
    assert_eq!(
        k.out(),
        r.out(),
        "stdout differs for {args:?}\n redis-cli: {:?}\n kiln-cli:  {:?}",
        r.stdout,
        k.stdout
    );
    assert_eq!(k.err(), r.err(), "stderr differs for {args:?}");
    assert_eq!(k.code, r.code, "exit status differs for {args:?}");
    k
}

/// Runs a command with a long-running mode (MONITOR, SUBSCRIBE): runs `during` once it
/// started, waits until its output contains `until`, then kills it and returns the output.
pub fn stream_until(bin: &str, args: &[&str], during: impl FnOnce(), until: &str) -> String {
    let mut child = Command::new(bin)
        .args(args)
        .env("KILNCLI_HISTFILE", "/dev/null")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    during();
    wait_until(&format!("{until:?} in the output of {bin}"), || {
        String::from_utf8_lossy(&seen.lock().unwrap()).contains(until)
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let out = seen.lock().unwrap().clone();
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits until `cond` holds (polling), panicking after a generous deadline: only a broken
/// program takes that long.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
