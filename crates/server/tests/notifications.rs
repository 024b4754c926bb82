//! Keyspace notifications: every script in `tests/diff/notifications/` runs against Kiln and
//! redis-server (both started with `--notify-keyspace-events KEA` unless the script says
//! otherwise), and the full sequence of `pmessage`s a `PSUBSCRIBE __key*__:*` connection
//! receives must be identical. Without redis-server only Kiln's side runs, and the tests
//! below that spell out the expected events still check it.
//!
//! Script format (on top of the differential format, whose replies `differential.rs`
//! compares separately): `#! args: --notify-keyspace-events Kl` on any line sets the server
//! arguments; `& CMD` sends a command on a second connection without reading its reply and
//! waits until the server counts it blocked (it must block; the one before must be served); `!sleep MS` sleeps; `sort:`, `~` and `[N]` prefixes are stripped;
//! `!uncompared CMD` runs a command whose events are left out of the comparison (what it does
//! depends on an earlier random choice).
//!
//! The events of a SCAN are compared per key, not in order: SCAN expires the keys it passes
//! in hash table order, which depends on each process's random hash seed.

mod support;

use std::time::Duration;
use support::{split_line, Raw, TestServer};

/// The keyspace channel name the harness publishes to mark the end of a run.
const SENTINEL: &str = "__keyevent@0__:zz-sentinel";

/// The channel the harness publishes to before and after a command whose events may come
/// in a different order in each server (see [`canonical`]).
const UNORDERED: &str = "__keyevent@0__:zz-unordered";

/// The channel the harness publishes to before and after a command whose events are not
/// compared (`!uncompared`).
const UNCOMPARED: &str = "__keyevent@0__:zz-uncompared";

/// Lines of family scripts that `every_family_script_...` runs as `!uncompared`: (script
/// path under `tests/diff`, line, why).
const RANDOM_EFFECTS: &[(&str, &str, &str)] = &[(
    "sets/expiry.txt",
    "~ SMOVE s s2 3",
    "moves 3 only if the random SPOP before it left it",
)];

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
            // The client served last may still count as blocked until its task took the
            // reply: wait for that, so that the count seen next is this command's.
            c.wait_blocked(0);
            blocked.send_cmd(&split_line(cmd));
            // The script goes on once the command blocked.
            c.wait_blocked(1);
            continue;
        }
        let mut replies = 1;
        let (mut cmd, uncompared) = match line.strip_prefix("!uncompared ") {
            Some(rest) => (rest.trim(), true),
            None => (line, false),
        };
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
        let argv = split_line(cmd);
        // SCAN expires keys in hash table order: mark its events off (see `canonical`).
        let unordered = argv
            .first()
            .is_some_and(|a| a.eq_ignore_ascii_case(b"scan"));
        let mark = match (uncompared, unordered) {
            (true, _) => Some(UNCOMPARED),
            (false, true) => Some(UNORDERED),
            _ => None,
        };
        if let Some(m) = mark {
            c.cmd(&["PUBLISH", m, "begin"]);
        }
        c.send_cmd(&argv);
        for _ in 0..replies {
            c.read_reply().unwrap();
        }
        if let Some(m) = mark {
            c.cmd(&["PUBLISH", m, "end"]);
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

/// The key an event (as [`read_event`] renders it) names.
fn event_key(e: &str) -> &str {
    if e.starts_with("__keyspace@") {
        let (channel, _) = e.rsplit_once(' ').unwrap_or((e, ""));
        channel.split_once("__:").map_or(channel, |x| x.1)
    } else {
        e.split_once(' ').map_or("", |x| x.1)
    }
}

/// Puts the events of each SCAN (between the harness's `UNORDERED` marks) in key order,
/// keeping each key's own events in their order, and drops those of `!uncompared`
/// commands. SCAN expires the keys it passes in hash table order, which depends on each
/// process's random hash seed, in Redis as in Kiln; every other event keeps its place.
fn canonical(events: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    let mut i = 0;
    while i < events.len() {
        let e = &events[i];
        let Some(channel) = [UNORDERED, UNCOMPARED]
            .into_iter()
            .find(|c| e.starts_with(c))
        else {
            out.push(e.clone());
            i += 1;
            continue;
        };
        let run = events[i + 1..]
            .iter()
            .take_while(|e| !e.starts_with(channel))
            .count();
        if channel == UNORDERED {
            let mut part = events[i + 1..i + 1 + run].to_vec();
            part.sort_by(|a, b| event_key(a).cmp(event_key(b)));
            out.extend(part);
        }
        i += run + 2;
    }
    out
}

/// [`compare`], returning a report of the first differences instead of panicking.
fn check(name: &str, script: &str) -> Result<Vec<String>, String> {
    let args = script_args(script);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let kiln = TestServer::kiln(&args);
    let events_kiln = events(&kiln, script);
    if let Some(redis) = TestServer::redis(&args) {
        let want_raw = events(&redis, script);
        let (got, want) = (canonical(&events_kiln), canonical(&want_raw));
        if got != want {
            dump(name, &events_kiln, &want_raw);
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
    Ok(events_kiln)
}

/// Debugging aid: with `KILN_EVENTS_DUMP=<dir>` set, writes both full event sequences of a
/// differing script to `<dir>/<family>_<script>.{kiln,redis}`, for `diff`.
fn dump(name: &str, got: &[String], want: &[String]) {
    let Some(dir) = std::env::var_os("KILN_EVENTS_DUMP") else {
        return;
    };
    let short = name.rsplit_once("/diff/").map_or(name, |(_, s)| s);
    let base = std::path::Path::new(&dir).join(short.replace('/', "_"));
    std::fs::create_dir_all(&dir).unwrap();
    for (ext, events) in [("kiln", got), ("redis", want)] {
        let mut text = events.join("\n");
        text.push('\n');
        std::fs::write(base.with_extension(ext), text).unwrap();
    }
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

#[test]
fn a_read_of_an_expired_key_raises_expired_then_keymiss() {
    let got = compare(
        "expired-keymiss",
        "#! args: --notify-keyspace-events Exm --enable-debug-command yes\n\
         DEBUG SET-ACTIVE-EXPIRE 0\nSET k v PXAT 1\nGET k\nGET k\n",
    );
    assert_eq!(
        got,
        [
            "__keyevent@0__:expired k",
            "__keyevent@0__:keymiss k",
            "__keyevent@0__:keymiss k",
        ]
    );
}

#[test]
fn smove_to_a_new_set_raises_srem_before_new_and_sadd() {
    let got = compare(
        "smove-new",
        "#! args: --notify-keyspace-events Esn\nSADD src a b\nSMOVE src dst a\n",
    );
    assert_eq!(
        got,
        [
            "__keyevent@0__:new src",
            "__keyevent@0__:sadd src",
            "__keyevent@0__:srem src",
            "__keyevent@0__:new dst",
            "__keyevent@0__:sadd dst",
        ]
    );
}

#[test]
fn rename_over_an_existing_key_adds_it_anew() {
    let got = compare(
        "rename-new",
        "#! args: --notify-keyspace-events Egn\nSET a 1\nSET b 2\nRENAME a b\n",
    );
    assert_eq!(
        got,
        [
            "__keyevent@0__:new a",
            "__keyevent@0__:new b",
            "__keyevent@0__:new b",
            "__keyevent@0__:rename_from a",
            "__keyevent@0__:rename_to b",
        ]
    );
}

#[test]
fn xread_misses_a_missing_stream_once_per_pass_and_store_sources_miss_too() {
    let got = compare(
        "xread-keymiss",
        "#! args: --notify-keyspace-events Em\nXREAD STREAMS nokey 0\nXLEN nokey\n\
         ZUNIONSTORE d 1 nokey2\nLPOP nokey3\nOBJECT ENCODING nokey4\n",
    );
    assert_eq!(
        got,
        [
            "__keyevent@0__:keymiss nokey",
            "__keyevent@0__:keymiss nokey",
            "__keyevent@0__:keymiss nokey",
            "__keyevent@0__:keymiss nokey2",
        ]
    );
}

/// Every differential script of every command family, run with every event class enabled
/// (`KEAnm`: also `new` and `keymiss`), raises exactly Redis's events. The active expiry
/// cycle is off in both servers (`DEBUG SET-ACTIVE-EXPIRE 0`): whether and in which order it
/// catches a key before the script's next command depends on timing and random sampling,
/// in Redis too. Keys still expire lazily, on access; `notifications/expiry.txt` covers
/// the cycle's events.
#[test]
fn every_family_script_raises_redis_events_with_every_class_enabled() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/diff");
    let mut paths = Vec::new();
    for dir in std::fs::read_dir(root).unwrap() {
        let dir = dir.unwrap().path();
        // The ACL scripts authenticate as users who may not publish the harness's markers.
        if !dir.is_dir() || dir.ends_with("notifications") || dir.ends_with("acl") {
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
        let mut script = format!(
            "#! args: --notify-keyspace-events KEAnm --enable-debug-command yes\n\
             DEBUG SET-ACTIVE-EXPIRE 0\n{script}"
        );
        for (path, line, _why) in RANDOM_EFFECTS {
            if p.ends_with(path) {
                let lines = script.lines();
                script = lines
                    .map(|l| match l.trim() == *line {
                        true => format!("!uncompared {l}\n"),
                        false => format!("{l}\n"),
                    })
                    .collect();
            }
        }
        if let Err(report) = check(&p.display().to_string(), &script) {
            failures.push(report);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
