//! Keyspace notifications: every script in `tests/diff/notifications/` runs against Kiln and
//! redis-server (both started with `--notify-keyspace-events KEA` unless the script says
//! otherwise), and the full sequence of `pmessage`s a `PSUBSCRIBE __key*__:*` connection
//! receives must be identical. Without redis-server only Kiln's side runs, and the tests
//! below that spell out the expected events still check it.
//!
//! Script format (on top of the differential format, whose replies `differential.rs`
//! compares separately): `#! args: --notify-keyspace-events Kl` on any line sets the server
//! arguments; `& CMD` sends a command on a second connection without reading its reply (a
//! client that blocks); `!sleep MS` sleeps; `sort:`, `~` and `[N]` prefixes are stripped.

mod support;

use std::time::Duration;
use support::{split_line, Raw, TestServer};

/// The keyspace channel name the harness publishes to mark the end of a run.
const SENTINEL: &str = "__keyevent@0__:zz-sentinel";

/// Server arguments a script asks for (`#! args: ...`), KEA by default.
fn script_args(script: &str) -> Vec<String> {
    script
        .lines()
        .find_map(|l| l.trim().strip_prefix("#! args:"))
        .map(|a| a.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_else(|| vec!["--notify-keyspace-events".into(), "KEA".into()])
}

/// Reads one `pmessage` and renders it as `channel message`.
fn read_event(sub: &mut Raw) -> String {
    let raw = sub.read_reply().expect("subscriber connection closed");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let parts: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(parts.get(2), Some(&"pmessage"), "not a pmessage: {text:?}");
    format!("{} {}", parts[6], parts[8])
}

/// Runs a script on `server` and returns every event the pattern subscriber saw, in order.
fn events(server: &TestServer, script: &str) -> Vec<String> {
    let mut sub = server.raw();
    sub.send_cmd(&["PSUBSCRIBE", "__key*__:*"]);
    sub.read_reply().unwrap();
    let mut c = server.raw();
    let mut blocked = server.raw();
    for line in script.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(ms) = line.strip_prefix("!sleep ") {
            std::thread::sleep(Duration::from_millis(ms.trim().parse().unwrap()));
            continue;
        }
        if let Some(cmd) = line.strip_prefix("& ") {
            blocked.send_cmd(&split_line(cmd));
            // Let the command reach the server and block before the script goes on.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let mut replies = 1;
        let mut cmd = line;
        if let Some(rest) = cmd.strip_prefix('[') {
            let (n, rest) = rest.split_once(']').unwrap();
            replies = n.parse().unwrap();
            cmd = rest.trim();
        }
        let cmd = cmd
            .strip_prefix("sort:")
            .or_else(|| cmd.strip_prefix('~'))
            .unwrap_or(cmd)
            .trim();
        c.send_cmd(&split_line(cmd));
        for _ in 0..replies {
            c.read_reply().unwrap();
        }
    }
    c.send_cmd(&["PUBLISH", SENTINEL, "end"]);
    c.read_reply().unwrap();
    let mut seen = Vec::new();
    loop {
        let e = read_event(&mut sub);
        if e.starts_with(SENTINEL) {
            return seen;
        }
        seen.push(e);
    }
}

/// Runs a script against Kiln and (when available) Redis; panics when the event sequences
/// differ. Returns Kiln's events.
fn compare(name: &str, script: &str) -> Vec<String> {
    check(name, script).unwrap_or_else(|report| panic!("{report}"))
}

/// [`compare`], returning a report of the first differences instead of panicking.
fn check(name: &str, script: &str) -> Result<Vec<String>, String> {
    let args = script_args(script);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let kiln = TestServer::kiln(&args);
    let got = events(&kiln, script);
    if let Some(redis) = TestServer::redis(&args) {
        let want = events(&redis, script);
        if got != want {
            let first = (0..).find(|&i| got.get(i) != want.get(i)).unwrap();
            let mut report = format!("{name}: events differ from event {first} on\n");
            for i in first.saturating_sub(3)..got.len().max(want.len()).min(first + 12) {
                let (k, r) = (got.get(i), want.get(i));
                let mark = if k == r { " " } else { "!" };
                report += &format!("{mark} redis: {r:?}\n  kiln:  {k:?}\n");
            }
            return Err(report);
        }
    }
    Ok(got)
}

#[test]
fn notification_scripts_match_redis() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/diff/notifications");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    for p in paths {
        eprintln!("running {}", p.display());
        let script = std::fs::read_to_string(&p).unwrap();
        let n = compare(&p.display().to_string(), &script).len();
        eprintln!("  {n} events");
    }
}

#[test]
fn set_with_a_ttl_raises_set_then_expire_on_both_channels() {
    let got = compare("set-ex", "SET k v EX 100\n");
    assert_eq!(
        got,
        [
            "__keyspace@0__:k set",
            "__keyevent@0__:set k",
            "__keyspace@0__:k expire",
            "__keyevent@0__:expire k",
        ]
    );
}

#[test]
fn rename_raises_rename_from_then_rename_to() {
    let got = compare(
        "rename",
        "#! args: --notify-keyspace-events Kg\nSET a 1\nRENAME a b\n",
    );
    assert_eq!(
        got,
        ["__keyspace@0__:a rename_from", "__keyspace@0__:b rename_to"]
    );
}

#[test]
fn move_raises_move_from_in_the_source_db_and_move_to_in_the_target_db() {
    let got = compare(
        "move",
        "#! args: --notify-keyspace-events Eg\nSET a 1\nMOVE a 3\n",
    );
    assert_eq!(
        got,
        ["__keyevent@0__:move_from a", "__keyevent@3__:move_to a"]
    );
}

#[test]
fn emptying_a_hash_raises_hdel_then_del() {
    let got = compare(
        "hdel",
        "#! args: --notify-keyspace-events Kgh\nHSET h f v\nHDEL h f nope\n",
    );
    assert_eq!(
        got,
        [
            "__keyspace@0__:h hset",
            "__keyspace@0__:h hdel",
            "__keyspace@0__:h del"
        ]
    );
}

#[test]
fn zadd_that_changes_nothing_raises_nothing() {
    let got = compare(
        "zadd",
        "#! args: --notify-keyspace-events Kz\nZADD z 1 a\nZADD z 1 a\nZADD z NX 2 a\nZINCRBY z 1 a\n",
    );
    assert_eq!(got, ["__keyspace@0__:z zadd", "__keyspace@0__:z zincr"]);
}

#[test]
fn string_counters_all_raise_incrby() {
    let got = compare(
        "incr",
        "#! args: --notify-keyspace-events E$\nINCR n\nDECR n\nDECRBY n 5\nINCRBYFLOAT n 1.5\n",
    );
    assert_eq!(
        got,
        [
            "__keyevent@0__:incrby n",
            "__keyevent@0__:incrby n",
            "__keyevent@0__:incrby n",
            "__keyevent@0__:incrbyfloat n",
        ]
    );
}

/// Every differential script of every command family, run with every event class enabled
/// (`KEAnm`: also `new` and `keymiss`), raises exactly Redis's events.
#[test]
fn every_family_script_raises_redis_events_with_every_class_enabled() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/diff");
    let mut paths = Vec::new();
    for dir in std::fs::read_dir(root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() || dir.ends_with("notifications") {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|x| x == "txt") {
                paths.push(p);
            }
        }
    }
    paths.sort();
    assert!(!paths.is_empty());
    let mut failures = Vec::new();
    for p in paths {
        let script = std::fs::read_to_string(&p).unwrap();
        if script.contains("#! args:") {
            continue;
        }
        let script = format!("#! args: --notify-keyspace-events KEAnm\n{script}");
        if let Err(report) = check(&p.display().to_string(), &script) {
            failures.push(report);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
