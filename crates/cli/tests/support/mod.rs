//! Test support for kiln-cli: start redis-server or kiln-server on a free port, run
//! kiln-cli and redis-cli as subprocesses, compare what they print.
//!
//! Tests that need redis-server and redis-cli skip themselves when those are missing,
//! unless `KILN_REQUIRE_REDIS` is set (as CI does): then a missing tool is a failure.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use kiln_testkit::{free_port, wait_until};

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

/// Whether redis-server and redis-cli are there; panics if they are missing and required.
pub fn redis_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| kiln_testkit::redis_tools(&["redis-server", "redis-cli"]))
}

/// A server process killed on drop ([`kiln_testkit::Server`]), started the ways these
/// tests need.
pub struct Server(kiln_testkit::Server);

impl std::ops::Deref for Server {
    type Target = kiln_testkit::Server;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
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
        Some(Server(kiln_testkit::Server::start("redis-server", &args)))
    }

    /// Starts redis-server on a given port (to restart one where it was).
    pub fn redis_on(port: u16, extra: &[&str]) -> Option<Server> {
        if !redis_available() {
            return None;
        }
        Some(Server(kiln_testkit::Server::start_on(
            "redis-server",
            port,
            extra,
        )))
    }

    /// Starts kiln-server.
    pub fn kiln(extra: &[&str]) -> Server {
        Server(kiln_testkit::Server::kiln(extra))
    }

    /// The port as an argument string.
    pub fn p(&self) -> String {
        self.port.to_string()
    }

    /// Sends one inline command with a raw connection and returns the raw reply bytes.
    pub fn raw(&self, line: &str) -> Vec<u8> {
        let mut c = self.0.raw();
        c.send(format!("{line}\r\n").as_bytes());
        c.read_reply().expect("connection closed")
    }
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

/// [`same`] where redis-cli is installed, kiln-cli alone otherwise.
pub fn same_if_possible(args: &[&str], stdin: Option<&[u8]>) -> Run {
    if redis_available() {
        same(args, stdin)
    } else {
        kiln(args, stdin)
    }
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

/// `--eval` scripts: every reply kind, an error reply, a runtime error and a compile error.
pub const EVAL_SCRIPTS: &[(&str, &str)] = &[
    (
        "split.lua",
        "return {#KEYS, #ARGV, table.concat(KEYS, '|'), table.concat(ARGV, '|')}",
    ),
    (
        "setget.lua",
        "redis.call('SET', KEYS[1] or 'k', ARGV[1] or 'v')\nreturn redis.call('GET', KEYS[1] or 'k')",
    ),
    (
        "kinds.lua",
        "return {1, 'two', {3, {'four'}}, redis.status_reply('FINE'), 5.7}",
    ),
    ("error.lua", "return redis.error_reply('MY failure')"),
    ("runtime.lua", "return redis.call('NOSUCHCOMMAND', 'x')"),
    ("syntax.lua", "this is not lua"),
    ("empty.lua", ""),
];

/// How `--eval`'s arguments are split at the lone comma.
pub const EVAL_SPLITS: &[&[&str]] = &[
    &["k1", "k2", ",", "a1", "a2"],
    &["k1,k2", ",", "a1"],
    &["k1", ",", ",", "a1"],
    &[",", "a1", "a2"],
    &["k1", "k2"],
    &["k1", ",a1"],
    &["k1,", "a1"],
    &[","],
    &[],
    &[",,", "x"],
    &["k1", ",", "a1", ",", "a2"],
    &["key one", ",", "arg, two"],
];

/// Writes [`EVAL_SCRIPTS`] into a scratch directory; returns it.
pub fn eval_scripts(name: &str) -> std::path::PathBuf {
    let dir = scratch(name);
    for (file, text) in EVAL_SCRIPTS {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}
