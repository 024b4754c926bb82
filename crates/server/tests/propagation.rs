//! Every write of the differential scripts reaches the write feed with the effects Redis
//! propagates. Each script in `tests/diff/` runs against kiln-server and redis-server, each
//! with a raw replica attached (`PSYNC ? -1`, the snapshot skipped); after every script line
//! a second connection PUBLISHes a marker, which both servers replicate, so the commands
//! each server fed for each line can be told apart and compared line by line. Kiln's AOF
//! must then hold what its replica stream held, less the markers.
//!
//! The differential tests compare the replies; this test compares only what was fed. Where
//! Redis and Kiln may legitimately feed different bytes for the same effect, the streams are
//! normalised first (see [`normalise`]); each normalisation says why.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_resp::Value;
use support::{split_line, TestServer};

/// The marker channel: one PUBLISH on it after every script line.
const MARK: &str = "__kiln_feed_mark__";

/// DEBUG for `DEBUG SET-ACTIVE-EXPIRE 0` (below) and the scripts that use it.
const REDIS_ARGS: &[&str] = &["--enable-debug-command", "yes"];
/// The same, and an AOF for Kiln's side of the check.
const KILN_ARGS: &[&str] = &["--enable-debug-command", "yes", "--appendonly", "yes"];

/// One propagated command: the database it applies to and its arguments.
type Fed = (u32, Vec<Vec<u8>>);

/// A replica's end of a server's replication stream.
struct Replica {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The database the stream's last SELECT chose.
    db: u32,
}

impl Replica {
    /// Attaches as a replica: PSYNC without `capa eof`, so the snapshot comes as
    /// `$<length>` and can be skipped without parsing it.
    fn attach(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut r = Replica {
            stream,
            buf: Vec::new(),
            db: 0,
        };
        r.stream.write_all(b"PSYNC ? -1\r\n").unwrap();
        let line = r.line();
        assert!(line.starts_with("+FULLRESYNC"), "PSYNC answered {line:?}");
        let len = r.line();
        let len: usize = len
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a snapshot length: {len:?}"));
        r.fill(len);
        r.buf.drain(..len);
        r
    }

    fn read_more(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).expect("reading the stream");
        assert!(n > 0, "the server closed the replication stream");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    fn fill(&mut self, n: usize) {
        while self.buf.len() < n {
            self.read_more();
        }
    }

    /// One line, after the newlines a primary sends to keep the link alive while it
    /// prepares the snapshot.
    fn line(&mut self) -> String {
        loop {
            while self.buf.first() == Some(&b'\n') {
                self.buf.remove(0);
            }
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return line;
            }
            self.read_more();
        }
    }

    /// The next command of the stream, with the database it applies to; SELECTs are
    /// folded into that database rather than returned.
    fn next(&mut self) -> Fed {
        loop {
            let args = loop {
                match kiln_resp::decode(&self.buf) {
                    Ok((v, n)) => {
                        self.buf.drain(..n);
                        break command(v);
                    }
                    Err(kiln_resp::DecodeError::Incomplete) => self.read_more(),
                    Err(e) => panic!("bad stream {e}: {:?}", String::from_utf8_lossy(&self.buf)),
                }
            };
            if is(&args, "select") {
                self.db = std::str::from_utf8(&args[1]).unwrap().parse().unwrap();
                continue;
            }
            return (self.db, args);
        }
    }

    /// What was fed up to the next marker.
    fn until_mark(&mut self) -> Vec<Fed> {
        let mut fed = Vec::new();
        loop {
            let c = self.next();
            if is(&c.1, "publish") && c.1[1] == MARK.as_bytes() {
                return fed;
            }
            fed.push(c);
        }
    }
}

/// A fed command's arguments.
fn command(v: Value) -> Vec<Vec<u8>> {
    let Value::Array(items) = v else {
        panic!("not a command: {v:?}");
    };
    items
        .into_iter()
        .map(|a| match a {
            Value::Bulk(b) => b,
            other => panic!("not a bulk argument: {other:?}"),
        })
        .collect()
}

fn is(args: &[Vec<u8>], name: &str) -> bool {
    args.first()
        .is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
}

/// The commands a stream (or AOF) holds, folding SELECTs into databases.
fn commands(bytes: &[u8]) -> Vec<Fed> {
    let mut out = Vec::new();
    let mut db = 0;
    let mut at = 0;
    while at < bytes.len() {
        let Ok((v, n)) = kiln_resp::decode(&bytes[at..]) else {
            break; // a command still being written
        };
        at += n;
        let args = command(v);
        if is(&args, "select") {
            db = std::str::from_utf8(&args[1]).unwrap().parse().unwrap();
        } else {
            out.push((db, args));
        }
    }
    out
}

/// Milliseconds since the epoch, a day ago: a number above it in a fed command is a point
/// in time (a deadline, a stream ID's time part), which depends on the server's clock.
fn time_floor() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    now.as_millis() as u64 - 86_400_000
}

/// A fed sequence as text, made comparable between two servers:
/// * PING and REPLCONF are dropped: a primary sends them on a timer, not for a command;
/// * SELECT is folded into the database each command applies to (done when reading): a
///   server may repeat a SELECT that changes nothing;
/// * a number that is a point in time (the `PXAT` of a SET with a TTL, PEXPIREAT, the time
///   of an XADD `*` ID, XCLAIM's TIME) reads `<time>`: each server takes it from its own
///   clock;
/// * SET's GET option is dropped and GETSET reads SET: Redis feeds the write without the
///   read, Kiln feeds the command as the client sent it; a replica ends up with the same
///   value either way;
/// * in XADD and XCLAIM a stream ID `N-0` reads `N`: Redis repeats the ID as the client
///   wrote it, Kiln writes the ID it parsed, and `N` means `N-0`;
/// * with `names_only` (a line whose reply depends on a random choice, such as SPOP) only
///   the command names are kept: which members a random pop takes differs run to run.
fn normalise(fed: &[Fed], floor: u64, names_only: bool) -> Vec<String> {
    let time = |a: &[u8]| -> String {
        let s = String::from_utf8_lossy(a).into_owned();
        if s.parse::<u64>().is_ok_and(|n| n >= floor) {
            return "<time>".into();
        }
        match s.split_once('-') {
            Some((ms, seq))
                if ms.parse::<u64>().is_ok_and(|n| n >= floor) && seq.parse::<u64>().is_ok() =>
            {
                format!("<time>-{seq}")
            }
            _ => s,
        }
    };
    fed.iter()
        .filter(|(_, a)| !is(a, "ping") && !is(a, "replconf"))
        .map(|(db, a)| {
            let mut a = a.clone();
            if is(&a, "getset") {
                a[0] = b"SET".to_vec();
            }
            if is(&a, "set") {
                let options = a.split_off(3);
                a.extend(
                    options
                        .into_iter()
                        .filter(|o| !o.eq_ignore_ascii_case(b"get")),
                );
            }
            if is(&a, "xadd") || is(&a, "xclaim") {
                for w in a.iter_mut().skip(2) {
                    if let Some(ms) = w.strip_suffix(b"-0") {
                        if !ms.is_empty() && ms.iter().all(u8::is_ascii_digit) {
                            *w = ms.to_vec();
                        }
                    }
                }
            }
            if names_only {
                format!("{db}: {}", String::from_utf8_lossy(&a[0]).to_lowercase())
            } else {
                let words: Vec<String> = a.iter().map(|w| time(w)).collect();
                format!("{db}: {}", words.join(" "))
            }
        })
        .collect()
}

/// Single-key DELs one server fed and the other has not fed yet.
#[derive(Default)]
struct Owed {
    kiln: Vec<String>,
    redis: Vec<String>,
}

/// A key found expired is deleted, and fed as a DEL, by whichever command first meets it,
/// and that is not always the same command in both servers: RANDOMKEY deletes the expired
/// keys it happens to pick, and each server picks its own, so a key's DEL can come with
/// RANDOMKEY on one side and with the next command that looks it up on the other. A single-key DEL that one side fed and the other did not
/// is therefore owed by the other side and settles a later line's extra DEL; what is still
/// owed at the end of the script fails it.
fn settle_deferred_dels(owed: &mut Owed, k: &mut Vec<String>, r: &mut Vec<String>) {
    let single_del = |c: &String| {
        let words: Vec<&str> = c.split(' ').collect();
        words.len() == 3 && words[1].eq_ignore_ascii_case("del")
    };
    // Extra DELs now pay what the other side fed earlier.
    for (fed, debts) in [(&mut *k, &mut owed.kiln), (&mut *r, &mut owed.redis)] {
        debts.retain(|d| match fed.iter().position(|c| c == d) {
            Some(i) => {
                fed.remove(i);
                false
            }
            None => true,
        });
    }
    if k == r {
        return;
    }
    // What one side fed alone becomes owed by the other, when that is all that differs.
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|c| !b.contains(c)).cloned().collect()
    };
    let (k_only, r_only) = (only(k, r), only(r, k));
    if k_only.iter().chain(&r_only).all(single_del) {
        k.retain(|c| !k_only.contains(c));
        r.retain(|c| !r_only.contains(c));
        if k == r {
            owed.redis.extend(k_only);
            owed.kiln.extend(r_only);
        }
    }
}

/// Kiln's AOF: the commands of its incr files, in the manifest's order.
fn aof_commands(dir: &Path) -> Vec<Fed> {
    let aof_dir = dir.join("appendonlydir");
    let Ok(manifest) = std::fs::read_to_string(aof_dir.join("appendonly.aof.manifest")) else {
        return Vec::new();
    };
    let mut bytes = Vec::new();
    for line in manifest.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() >= 6 && words[0] == "file" && words[5] == "i" {
            bytes.extend(std::fs::read(aof_dir.join(words[1])).unwrap_or_default());
        }
    }
    commands(&bytes)
}

/// Runs one script against both servers and returns the lines whose feeds differ.
fn check_script(name: &str, script: &str) -> Vec<String> {
    let kiln = TestServer::kiln(KILN_ARGS);
    let redis = TestServer::redis(REDIS_ARGS);
    let servers: Vec<&TestServer> = std::iter::once(&kiln).chain(redis.iter()).collect();
    // Expiry only where a command meets an expired key: the active cycle's DELs would land
    // between any two lines, at a time neither server can repeat.
    for s in &servers {
        assert_eq!(s.raw().cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), "+OK\r\n");
    }
    let mut replicas: Vec<Replica> = servers.iter().map(|s| Replica::attach(s.port)).collect();
    let mut conns: Vec<_> = servers.iter().map(|s| s.raw()).collect();
    let mut markers: Vec<_> = servers.iter().map(|s| s.raw()).collect();
    let floor = time_floor();
    let mut failures = Vec::new();
    let mut kiln_fed = Vec::new();
    let mut owed = Owed::default();
    for (lineno, line) in script.lines().enumerate() {
        let line = line.trim();
        // `&` lines block a second client (notification scripts): the write that serves it
        // still runs here.
        if line.is_empty() || line.starts_with('#') || line.starts_with("& ") {
            continue;
        }
        if let Some(ms) = line.strip_prefix("!sleep ") {
            std::thread::sleep(Duration::from_millis(ms.trim().parse().unwrap()));
            continue;
        }
        let (names_only, line) = match line.strip_prefix("!uncompared ") {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let (replies, line) = match line.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((n, rest)) if n.parse::<usize>().is_ok() => (n.parse().unwrap(), rest.trim()),
            _ => (1, line),
        };
        let (names_only, cmd) = if let Some(rest) = line.strip_prefix("sort:") {
            (names_only, rest.trim())
        } else if let Some(rest) = line.strip_prefix('~') {
            (true, rest.trim())
        } else {
            (names_only, line)
        };
        let args = split_line(cmd);
        let mut fed = Vec::new();
        let mut answers = Vec::new();
        for (i, s) in servers.iter().enumerate() {
            conns[i].send_cmd(&args);
            let mut answer = Vec::new();
            for _ in 0..replies {
                let Some(reply) = conns[i].read_reply() else {
                    // The command closed the connection (QUIT, a kill): go on with a new one.
                    conns[i] = s.raw();
                    break;
                };
                answer.extend(reply);
            }
            answers.push(answer);
            // The command's effects are fed before its reply is sent, so the marker that
            // follows it comes after all of them.
            markers[i].cmd(&["PUBLISH", MARK, &lineno.to_string()]);
            fed.push(replicas[i].until_mark());
        }
        // DEBUG REPLICATE feeds the replicas only, never the AOF (as in Redis).
        let replicas_only = args.len() > 1
            && args[0].eq_ignore_ascii_case(b"debug")
            && args[1].eq_ignore_ascii_case(b"replicate");
        if !replicas_only {
            kiln_fed.extend(fed[0].iter().cloned());
        }
        // A line marked random whose replies differ took different random choices (or met
        // the results of earlier ones, as an SMOVE of a member a random SPOP may have
        // taken): what it fed cannot be compared.
        if fed.len() < 2 || (names_only && answers[0] != answers[1]) {
            continue;
        }
        let (mut k, mut r) = (
            normalise(&fed[0], floor, names_only),
            normalise(&fed[1], floor, names_only),
        );
        // SCAN deletes the expired keys it passes in hash table order, which depends on
        // each process's random hash seed: its DELs are compared as a set.
        if args[0].eq_ignore_ascii_case(b"scan") {
            k.sort();
            r.sort();
        }
        settle_deferred_dels(&mut owed, &mut k, &mut r);
        if k != r {
            failures.push(format!(
                "{name}:{}: {cmd}\n    redis fed: {r:?}\n    kiln fed:  {k:?}",
                lineno + 1
            ));
        }
    }
    if !owed.kiln.is_empty() || !owed.redis.is_empty() {
        failures.push(format!(
            "{name}: expired keys deleted by one server only\n    kiln never fed: {:?}\n    redis never fed: {:?}",
            owed.kiln, owed.redis
        ));
    }
    // Kiln's AOF holds what its replicas got, less PUBLISH and SPUBLISH (replicated, so
    // that subscribers of replicas get them, but never written to the AOF, as in Redis).
    // The AOF is written in the background: wait for it to catch up.
    kiln_fed.retain(|(_, a)| !is(a, "publish") && !is(a, "spublish"));
    let want = normalise(&kiln_fed, floor, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = normalise(&aof_commands(&kiln.dir), floor, false);
    while got.len() < want.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        got = normalise(&aof_commands(&kiln.dir), floor, false);
    }
    if got != want {
        failures.push(format!(
            "{name}: Kiln's AOF differs from its replica stream\n    stream: {want:?}\n    aof:    {got:?}"
        ));
    }
    failures
}

/// Every `*.txt` script under `tests/diff/<dir>`, its subfolders included.
fn scripts(dir: &str) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "txt")
                // FAILOVER with the harness's replica attached would hand the primary role
                // over to it (tests/replication.rs covers FAILOVER's feed).
                && !p.ends_with("server/failover.txt")
            {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/diff")
        .join(dir);
    let mut out = Vec::new();
    walk(&root, &mut out);
    out.sort();
    assert!(!out.is_empty(), "no scripts in {}", root.display());
    out
}

fn check_dir(dir: &str) {
    let mut failures = Vec::new();
    for p in scripts(dir) {
        let text = std::fs::read_to_string(&p).unwrap();
        let name = format!("{dir}/{}", p.file_name().unwrap().to_string_lossy());
        failures.extend(check_script(&name, &text));
    }
    assert!(
        failures.is_empty(),
        "{} differences in what was fed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

macro_rules! feed_tests {
    ($($test:ident: $dir:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check_dir($dir);
            }
        )*
    };
}

feed_tests! {
    collections_feed_what_redis_feeds: "collections",
    connection_feeds_what_redis_feeds: "connection",
    dump_feeds_what_redis_feeds: "dump",
    hashes_feed_what_redis_feeds: "hashes",
    keys_feed_what_redis_feeds: "keys",
    lists_feed_what_redis_feeds: "lists",
    notifications_scripts_feed_what_redis_feeds: "notifications",
    pubsub_feeds_what_redis_feeds: "pubsub",
    server_feeds_what_redis_feeds: "server",
    sets_feed_what_redis_feeds: "sets",
    streams_feed_what_redis_feeds: "streams",
    strings_feed_what_redis_feeds: "strings",
    transactions_feed_what_redis_feeds: "transactions",
    zsets_feed_what_redis_feeds: "zsets",
    scripting_feeds_what_redis_feeds: "scripting",
    bitmaps_feed_what_redis_feeds: "bitmaps",
    hyperloglog_feeds_what_redis_feeds: "hyperloglog",
    geo_feeds_what_redis_feeds: "geo",
    sort_feeds_what_redis_feeds: "sort",
}
