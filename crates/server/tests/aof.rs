//! The append-only file end to end: Redis 7's multi-part directory in both directions with
//! real redis-server (same DEBUG DIGEST), restarts, BGREWRITEAOF and automatic rewrites
//! under load, turning the AOF on and off at run time, `aof-load-truncated` at every byte
//! of a torn last command, corruption refused with the file and offset, and the durability
//! promise of `appendfsync always` (and the bound of `everysec`) under kill -9.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Connection;
use support::{cmd, digest, key_digests, run, TestServer, DEBUG_ON as DEBUG};

/// What DEBUG DIGEST leaves out of the streams `populate` makes: their consumer groups
/// (XINFO GROUPS) and pending entries (XPENDING summary).
fn groups(c: &mut Connection) -> Vec<redis::Value> {
    let mut out = Vec::new();
    for tag in ["base", "incr"] {
        let key = format!("{tag}:stream");
        let exists: i64 = redis::cmd("EXISTS").arg(&key).query(c).unwrap();
        if exists == 0 {
            continue;
        }
        out.push(
            redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(&key)
                .query(c)
                .unwrap(),
        );
        out.push(redis::cmd("XPENDING").arg(&key).arg("g1").query(c).unwrap());
    }
    out
}

fn info_field(c: &mut Connection, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg("persistence").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO persistence"))
        .trim()
        .to_string()
}

/// Polls `f` (generous deadline: this checks that something happens, not how fast).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_rewrite_done(c: &mut Connection) {
    eventually("the AOF rewrite finished", || {
        info_field(c, "aof_rewrite_in_progress") == "0"
            && info_field(c, "aof_rewrite_scheduled") == "0"
    });
}

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("kiln-aof-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// Kiln with `appendonly yes` on `dir`.
fn kiln_aof(dir: &Path, extra: &[&str]) -> TestServer {
    let d = dir.to_string_lossy().to_string();
    let mut args = vec!["--dir", &d, "--appendonly", "yes", DEBUG[0], DEBUG[1]];
    args.extend_from_slice(extra);
    TestServer::kiln(&args)
}

/// redis-server with `appendonly yes` on `dir`, once it has loaded its data (None without
/// Redis).
fn redis_aof(dir: &Path, extra: &[&str]) -> Option<TestServer> {
    let d = dir.to_string_lossy().to_string();
    let mut args = vec!["--dir", &d, "--appendonly", "yes", DEBUG[0], DEBUG[1]];
    args.extend_from_slice(extra);
    let r = TestServer::redis(&args)?;
    let mut c = r.client();
    // Redis serves (with -LOADING errors) while it loads.
    eventually("redis-server loaded its data", || {
        redis::cmd("PING").query::<String>(&mut c).is_ok()
    });
    Some(r)
}

/// Stops a server the way an operator does (SIGTERM), waiting for it to exit.
fn stop(mut s: TestServer) {
    s.signal("TERM");
    assert!(
        s.wait_exit(Duration::from_secs(60)).is_some(),
        "the server did not exit on SIGTERM"
    );
}

/// Runs kiln-server on `dir` expecting start-up to fail: its exit code and its log.
fn kiln_start_fails(dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let port = support::free_port().to_string();
    let d = dir.to_string_lossy().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln-server"))
        .args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--dir",
            &d,
            "--save",
            "",
        ])
        .args(["--appendonly", "yes"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kiln-server started although it should have refused the AOF");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    (status.code(), log)
}

/// The manifest's text.
fn manifest(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap()
}

/// The path of the (last) incremental file the manifest names.
fn last_incr(dir: &Path) -> PathBuf {
    let m = manifest(dir);
    let name = m
        .lines()
        .rfind(|l| l.ends_with("type i"))
        .and_then(|l| l.split(' ').nth(1))
        .unwrap()
        .to_string();
    dir.join("appendonlydir").join(name)
}

/// Copies a data directory (flat, plus `appendonlydir`).
fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to.join("appendonlydir")).unwrap();
    for sub in ["", "appendonlydir"] {
        for e in std::fs::read_dir(from.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), to.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
}

/// Every type in small and large encodings, deadlines, several databases, a transaction.
fn populate(c: &mut Connection, tag: &str) {
    let binary: Vec<u8> = (0..300u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    cmd(c, &[b"SET", format!("{tag}:bin").as_bytes(), &binary]);
    for line in [
        "SET {t}:small hello",
        "SET {t}:int 12345",
        "INCRBY {t}:counter 41",
        "INCR {t}:counter",
        "APPEND {t}:small -world",
        "RPUSH {t}:list a b 1 2 -3 300000",
        "LPUSH {t}:list head",
        "HSET {t}:hash name kiln n 42 pi 3.14",
        "HINCRBY {t}:hash n 1",
        "SADD {t}:intset 5 1 3 -2",
        "SADD {t}:strset apple banana cherry",
        "SREM {t}:strset banana",
        "ZADD {t}:zset 1 a 2.5 b -0 c inf d -inf e 1e20 f 0.1 g",
        "ZINCRBY {t}:zset 2 a",
        "SET {t}:ttl value PXAT 99999999999999",
        "SET {t}:ttl2 value EX 100000",
        "HSET {t}:ttlhash f v",
        "PEXPIREAT {t}:ttlhash 99999999999999",
        "SET {t}:gone soon",
        "DEL {t}:gone",
        "XADD {t}:stream 1-1 f v",
        "XADD {t}:stream 1-2 f v2 g w",
        "XADD {t}:stream 2-0 other x",
        "XDEL {t}:stream 1-2",
        "XGROUP CREATE {t}:stream g1 0",
        "XGROUP CREATECONSUMER {t}:stream g1 idle",
        "XREADGROUP GROUP g1 alice COUNT 1 STREAMS {t}:stream >",
        "SPOP {t}:strset",
        "INCRBYFLOAT {t}:float 1.5",
        "EXPIRE {t}:ttlhash 100000",
        "GETEX {t}:int PX 100000000",
        "BLPOP {t}:list 0",
        "MULTI",
        "SET {t}:tx1 a",
        "RPUSH {t}:txlist a b",
        "EXEC",
        "SELECT 3",
        "SET {t}:db3 three",
        "SADD {t}:db3set x y",
        "SELECT 0",
    ] {
        run(c, &line.replace("{t}", tag));
    }
    let mut p = redis::pipe();
    for i in 0..700 {
        p.cmd("RPUSH")
            .arg(format!("{tag}:biglist"))
            .arg(format!("element-{i}"))
            .ignore();
        p.cmd("HSET")
            .arg(format!("{tag}:bighash"))
            .arg(format!("f{i}"))
            .arg(i * 7)
            .ignore();
        p.cmd("SADD")
            .arg(format!("{tag}:bigset"))
            .arg(format!("m{i}"))
            .ignore();
        p.cmd("SADD")
            .arg(format!("{tag}:bigints"))
            .arg(i * 3)
            .ignore();
        p.cmd("ZADD")
            .arg(format!("{tag}:bigzset"))
            .arg(i as f64 * 1.25 - 100.0)
            .arg(format!("m{i}"))
            .ignore();
    }
    p.query::<()>(c).unwrap();
    cmd(
        c,
        &[b"SET", format!("{tag}:long").as_bytes(), &[b'x'; 5000]],
    );
}

#[test]
fn the_dataset_survives_restarts_from_the_aof_alone() {
    let dir = temp_dir("restart");
    let s = kiln_aof(&dir, &[]);
    let mut c = s.client();
    populate(&mut c, "a");
    let want = digest(&mut c);
    assert_eq!(
        manifest(&dir),
        "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    stop(s);
    // No RDB file is involved: the AOF holds everything.
    assert!(!dir.join("dump.rdb").exists());
    let s = kiln_aof(&dir, &["--appendfsync", "always"]);
    let mut c = s.client();
    assert_eq!(digest(&mut c), want);
    let ttl: i64 = redis::cmd("TTL").arg("a:ttl2").query(&mut c).unwrap();
    assert!(ttl > 99_000, "{ttl}");
    // Appending continues in the same incremental file; kill -9 this time (with
    // `appendfsync always`, an acknowledged write is on disk).
    run(&mut c, "SET after restart");
    let want = digest(&mut c);
    drop(s);
    let s = kiln_aof(&dir, &[]);
    assert_eq!(digest(&mut s.client()), want);
    assert!(manifest(&dir).ends_with("appendonly.aof.1.incr.aof seq 1 type i\n"));
}

#[test]
fn a_redis_aof_directory_loads_in_kiln_with_the_same_digest() {
    for preamble in ["yes", "no"] {
        let dir = temp_dir(&format!("from-redis-{preamble}"));
        let Some(r) = redis_aof(&dir, &["--aof-use-rdb-preamble", preamble]) else {
            return;
        };
        let mut c = r.client();
        populate(&mut c, "base");
        run(&mut c, "BGREWRITEAOF");
        wait_rewrite_done(&mut c);
        populate(&mut c, "incr");
        let want = digest(&mut c);
        let want_groups = groups(&mut c);
        stop(r);
        let suffix = if preamble == "yes" { "rdb" } else { "aof" };
        assert!(manifest(&dir).starts_with(&format!(
            "file appendonly.aof.2.base.{suffix} seq 2 type b\n"
        )));

        let k = kiln_aof(&dir, &[]);
        let mut c = k.client();
        assert_eq!(digest(&mut c), want, "aof-use-rdb-preamble {preamble}");
        assert_eq!(groups(&mut c), want_groups);
        // Kiln carries on in Redis's numbering (its own base format: RDB by default).
        run(&mut c, "SET written by-kiln");
        run(&mut c, "BGREWRITEAOF");
        wait_rewrite_done(&mut c);
        let m = manifest(&dir);
        assert!(
            m.starts_with("file appendonly.aof.3.base.rdb seq 3 type b\n"),
            "{m}"
        );
        assert!(
            m.ends_with("file appendonly.aof.3.incr.aof seq 3 type i\n"),
            "{m}"
        );
        let want = digest(&mut c);
        stop(k);
        // And the directory goes back to Redis.
        let r = redis_aof(&dir, &[]).unwrap();
        assert_eq!(digest(&mut r.client()), want);
    }
}

#[test]
fn a_kiln_aof_directory_loads_in_redis_with_the_same_digest() {
    for preamble in ["yes", "no"] {
        let dir = temp_dir(&format!("to-redis-{preamble}"));
        let k = kiln_aof(&dir, &["--aof-use-rdb-preamble", preamble]);
        let mut c = k.client();
        populate(&mut c, "base");
        run(&mut c, "BGREWRITEAOF");
        wait_rewrite_done(&mut c);
        populate(&mut c, "incr");
        let want = digest(&mut c);
        let want_keys = key_digests(&mut c, &[0, 3]);
        let want_groups = groups(&mut c);
        stop(k);
        let suffix = if preamble == "yes" { "rdb" } else { "aof" };
        assert_eq!(
            manifest(&dir),
            format!("file appendonly.aof.2.base.{suffix} seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n")
        );
        let Some(r) = redis_aof(&dir, &[]) else {
            return;
        };
        let mut rc = r.client();
        assert_eq!(
            key_digests(&mut rc, &[0, 3]),
            want_keys,
            "aof-use-rdb-preamble {preamble}"
        );
        assert_eq!(digest(&mut rc), want, "aof-use-rdb-preamble {preamble}");
        assert_eq!(groups(&mut rc), want_groups);
        stop(r);
        // Loading it back in Kiln gives the same again.
        let k = kiln_aof(&dir, &[]);
        assert_eq!(digest(&mut k.client()), want);
    }
}

#[test]
fn with_appendonly_yes_the_aof_wins_over_the_rdb_file() {
    let dir = temp_dir("aof-wins");
    let d = dir.to_string_lossy().to_string();
    let s = TestServer::kiln(&["--dir", &d]);
    let mut c = s.client();
    run(&mut c, "SET from rdb");
    run(&mut c, "SAVE");
    drop(s);
    assert!(dir.join("dump.rdb").exists());
    // No AOF yet: Redis starts empty rather than from the RDB file, and so does Kiln.
    let s = kiln_aof(&dir, &[]);
    let mut c = s.client();
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 0);
    run(&mut c, "SET only aof");
    stop(s);
    let s = kiln_aof(&dir, &[]);
    let mut c = s.client();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    assert_eq!(keys, ["only"]);
}

#[test]
fn bgrewriteaof_compacts_while_clients_keep_writing() {
    let dir = temp_dir("rewrite-load");
    let s = kiln_aof(&dir, &[]);
    let mut c = s.client();
    for i in 0..2000 {
        run(&mut c, &format!("SET k{} {i}", i % 50));
    }
    let stop_flag = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|t| {
            let mut c = s.client();
            let stop_flag = stop_flag.clone();
            std::thread::spawn(move || {
                let mut n = 0i64;
                while !stop_flag.load(Ordering::Relaxed) {
                    let _: i64 = redis::cmd("INCR")
                        .arg(format!("counter{t}"))
                        .query(&mut c)
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let before = std::fs::metadata(last_incr(&dir)).unwrap().len();
    let reply: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    assert_eq!(reply, "Background append only file rewriting started");
    wait_rewrite_done(&mut c);
    std::thread::sleep(Duration::from_millis(100));
    stop_flag.store(true, Ordering::Relaxed);
    let counts: Vec<i64> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let want = digest(&mut c);
    assert_eq!(info_field(&mut c, "aof_rewrites"), "1");
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    // The old files are gone; the new base holds the 2000 SETs as 50 keys.
    assert_eq!(
        manifest(&dir),
        "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    let names: Vec<String> = std::fs::read_dir(dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let base = std::fs::metadata(dir.join("appendonlydir/appendonly.aof.2.base.rdb"))
        .unwrap()
        .len();
    assert!(base < before, "base {base} vs old incr {before}");
    stop(s);
    let s = kiln_aof(&dir, &[]);
    let mut c = s.client();
    assert_eq!(digest(&mut c), want);
    for (t, n) in counts.iter().enumerate() {
        let v: i64 = redis::cmd("GET")
            .arg(format!("counter{t}"))
            .query(&mut c)
            .unwrap();
        assert_eq!(v, *n);
    }
}

#[test]
fn the_aof_is_rewritten_automatically_when_it_grows() {
    let dir = temp_dir("auto");
    let s = kiln_aof(
        &dir,
        &[
            "--auto-aof-rewrite-percentage",
            "100",
            "--auto-aof-rewrite-min-size",
            "64kb",
        ],
    );
    let mut c = s.client();
    let value = "v".repeat(100);
    let mut p = redis::pipe();
    for i in 0..2000 {
        p.cmd("SET")
            .arg(format!("k{}", i % 10))
            .arg(&value)
            .ignore();
    }
    p.query::<()>(&mut c).unwrap();
    eventually("an automatic rewrite that shrank the AOF", || {
        info_field(&mut c, "aof_rewrites") != "0"
            && info_field(&mut c, "aof_rewrite_in_progress") == "0"
            && info_field(&mut c, "aof_current_size")
                .parse::<u64>()
                .unwrap()
                < 64 * 1024
    });
    assert_eq!(
        info_field(&mut c, "aof_base_size"),
        info_field(&mut c, "aof_current_size")
    );
    let want = digest(&mut c);
    stop(s);
    let s = kiln_aof(&dir, &[]);
    assert_eq!(digest(&mut s.client()), want);
}

#[test]
fn config_set_appendonly_turns_the_aof_on_with_a_first_rewrite_and_off_again() {
    let dir = temp_dir("config-set");
    let d = dir.to_string_lossy().to_string();
    let s = TestServer::kiln(&["--dir", &d, DEBUG[0], DEBUG[1]]);
    let mut c = s.client();
    populate(&mut c, "before");
    assert_eq!(info_field(&mut c, "aof_enabled"), "0");
    run(&mut c, "CONFIG SET appendonly yes");
    assert_eq!(info_field(&mut c, "aof_enabled"), "1");
    populate(&mut c, "during");
    wait_rewrite_done(&mut c);
    populate(&mut c, "after");
    assert_eq!(
        manifest(&dir),
        "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    let want = digest(&mut c);
    stop(s);
    let s = kiln_aof(&dir, &[]);
    let mut c = s.client();
    assert_eq!(digest(&mut c), want);

    run(&mut c, "CONFIG SET appendonly no");
    assert_eq!(info_field(&mut c, "aof_enabled"), "0");
    run(&mut c, "SET not-logged 1");
    stop(s);
    let s = kiln_aof(&dir, &[]);
    let mut c = s.client();
    assert_eq!(digest(&mut c), want);
}

#[test]
fn bgrewriteaof_with_the_aof_off_writes_a_base_only() {
    let dir = temp_dir("base-only");
    let d = dir.to_string_lossy().to_string();
    let s = TestServer::kiln(&["--dir", &d, DEBUG[0], DEBUG[1]]);
    let mut c = s.client();
    populate(&mut c, "x");
    let want = digest(&mut c);
    run(&mut c, "BGREWRITEAOF");
    wait_rewrite_done(&mut c);
    assert_eq!(
        manifest(&dir),
        "file appendonly.aof.1.base.rdb seq 1 type b\n"
    );
    drop(s);
    let s = kiln_aof(&dir, &[]);
    assert_eq!(digest(&mut s.client()), want);
}

#[test]
fn inside_exec_a_rewrite_and_turning_the_aof_on_start_once_the_transaction_is_over() {
    // The transaction holds its keys' shard locks, which a snapshot point must wait for:
    // both are scheduled, as Redis schedules them, instead of deadlocking.
    let dir = temp_dir("exec");
    let d = dir.to_string_lossy().to_string();
    let s = TestServer::kiln(&["--dir", &d, DEBUG[0], DEBUG[1]]);
    let mut c = s.client();
    let (_, _, rewrite, _): ((), (), String, ()) = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("a")
        .arg(1)
        .cmd("INCR")
        .arg("n")
        .cmd("BGREWRITEAOF")
        .cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("yes")
        .query(&mut c)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rewrite, "Background append only file rewriting scheduled");
    eventually("the AOF is on", || {
        info_field(&mut c, "aof_enabled") == "1"
            && info_field(&mut c, "aof_rewrite_in_progress") == "0"
            && info_field(&mut c, "aof_rewrite_scheduled") == "0"
            && manifest_exists(&dir)
            && manifest(&dir).contains("type i")
    });
    run(&mut c, "INCR n");
    let want = digest(&mut c);
    stop(s);
    let s = kiln_aof(&dir, &[]);
    assert_eq!(digest(&mut s.client()), want);
}

fn manifest_exists(dir: &Path) -> bool {
    dir.join("appendonlydir/appendonly.aof.manifest").exists()
}

/// A Kiln AOF whose incremental file ends with `last`; returns the offset where `last`
/// starts in that file and the file.
fn aof_ending_with(dir: &Path, last: &[&str]) -> (u64, PathBuf) {
    let s = kiln_aof(dir, &[]);
    let mut c = s.client();
    run(&mut c, "SET a 1");
    run(&mut c, "RPUSH b x y");
    stop(s);
    let incr = last_incr(dir);
    let start = std::fs::metadata(&incr).unwrap().len();
    let mut tail = Vec::new();
    for a in last {
        tail.extend_from_slice(a.as_bytes());
    }
    let mut bytes = std::fs::read(&incr).unwrap();
    bytes.extend_from_slice(&tail);
    std::fs::write(&incr, bytes).unwrap();
    (start, incr)
}

#[test]
fn an_aof_cut_at_every_byte_of_its_last_command_loads_without_it() {
    let dir = temp_dir("torn");
    let (start, incr) =
        aof_ending_with(&dir, &["*3\r\n$3\r\nSET\r\n$4\r\nlast\r\n$5\r\nvalue\r\n"]);
    let full = std::fs::metadata(&incr).unwrap().len();
    let work = temp_dir("torn-work");
    // The complete file has the command.
    copy_dir(&dir, &work);
    {
        let s = kiln_aof(&work, &[]);
        let v: String = redis::cmd("GET")
            .arg("last")
            .query(&mut s.client())
            .unwrap();
        assert_eq!(v, "value");
    }
    for cut in start + 1..full {
        copy_dir(&dir, &work);
        let torn = last_incr(&work);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&torn)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let s = kiln_aof(&work, &[]);
        let mut c = s.client();
        let a: String = redis::cmd("GET").arg("a").query(&mut c).unwrap();
        let b: Vec<String> = redis::cmd("LRANGE")
            .arg("b")
            .arg(0)
            .arg(-1)
            .query(&mut c)
            .unwrap();
        let last: Option<String> = redis::cmd("GET").arg("last").query(&mut c).unwrap();
        assert_eq!((a.as_str(), b.len(), last), ("1", 2, None), "cut at {cut}");
        // The torn tail was cut off, and appending carries on after the last command.
        assert_eq!(
            std::fs::metadata(&torn).unwrap().len(),
            start,
            "cut at {cut}"
        );
        run(&mut c, "SET later 1");
        stop(s);
        let s = kiln_aof(&work, &[]);
        let later: String = redis::cmd("GET")
            .arg("later")
            .query(&mut s.client())
            .unwrap();
        assert_eq!(later, "1", "cut at {cut}");
    }
}

#[test]
fn a_transaction_without_its_exec_is_dropped_like_a_torn_command() {
    let dir = temp_dir("torn-multi");
    let (start, incr) = aof_ending_with(
        &dir,
        &[
            "*1\r\n$5\r\nMULTI\r\n",
            "*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\n1\r\n",
        ],
    );
    let s = kiln_aof(&dir, &[]);
    let mut c = s.client();
    let x: Option<String> = redis::cmd("GET").arg("x").query(&mut c).unwrap();
    assert_eq!(x, None);
    assert_eq!(std::fs::metadata(&incr).unwrap().len(), start);
}

#[test]
fn a_torn_aof_is_refused_without_aof_load_truncated() {
    let dir = temp_dir("torn-refused");
    let (_, incr) = aof_ending_with(&dir, &["*3\r\n$3\r\nSET\r\n$4\r\nla"]);
    let len = std::fs::metadata(&incr).unwrap().len();
    let (code, log) = kiln_start_fails(&dir, &["--aof-load-truncated", "no"]);
    assert_eq!(code, Some(1));
    assert!(
        log.contains(
            "Unexpected end of file reading the append only file appendonly.aof.1.incr.aof"
        ),
        "{log}"
    );
    // Nothing was cut.
    assert_eq!(std::fs::metadata(&incr).unwrap().len(), len);
}

#[test]
fn corruption_before_the_end_is_refused_naming_the_file_and_offset() {
    let dir = temp_dir("corrupt");
    let (start, incr) =
        aof_ending_with(&dir, &["*3\r\n$3\r\nSET\r\n$4\r\nlast\r\n$5\r\nvalue\r\n"]);
    let mut bytes = std::fs::read(&incr).unwrap();
    // The `*` of the last command becomes garbage: not a torn write but a damaged file.
    bytes[start as usize] = b'!';
    std::fs::write(&incr, &bytes).unwrap();
    let (code, log) = kiln_start_fails(&dir, &[]);
    assert_eq!(code, Some(1));
    assert!(
        log.contains(&format!("Bad file format reading the append only file appendonly.aof.1.incr.aof at offset {start}")),
        "{log}"
    );
    assert_eq!(std::fs::read(&incr).unwrap(), bytes);
}

#[test]
fn a_torn_file_that_is_not_the_last_one_is_refused() {
    let dir = temp_dir("torn-middle");
    let (_, incr) = aof_ending_with(&dir, &["*3\r\n$3\r\nSET\r\n$4\r\nla"]);
    let name = incr.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::write(
        dir.join("appendonlydir/appendonly.aof.2.incr.aof"),
        b"*3\r\n$3\r\nSET\r\n$1\r\nz\r\n$1\r\n1\r\n",
    )
    .unwrap();
    let m = manifest(&dir) + "file appendonly.aof.2.incr.aof seq 2 type i\n";
    std::fs::write(dir.join("appendonlydir/appendonly.aof.manifest"), m).unwrap();
    let (code, log) = kiln_start_fails(&dir, &[]);
    assert_eq!(code, Some(1));
    assert!(
        log.contains(&format!("the truncated file {name} is not the last file")),
        "{log}"
    );
}

#[test]
fn a_bad_manifest_or_a_missing_file_is_refused() {
    let dir = temp_dir("bad-manifest");
    std::fs::create_dir_all(dir.join("appendonlydir")).unwrap();
    std::fs::write(
        dir.join("appendonlydir/appendonly.aof.manifest"),
        "file x seq 1\n",
    )
    .unwrap();
    let (code, log) = kiln_start_fails(&dir, &[]);
    assert_eq!(code, Some(1));
    assert!(log.contains("Invalid AOF manifest file format"), "{log}");
    std::fs::write(
        dir.join("appendonlydir/appendonly.aof.manifest"),
        "file appendonly.aof.1.incr.aof seq 1 type i\n",
    )
    .unwrap();
    let (code, log) = kiln_start_fails(&dir, &[]);
    assert_eq!(code, Some(1));
    assert!(
        log.contains("appendonly.aof.1.incr.aof doesn't exist"),
        "{log}"
    );
}

#[test]
fn an_old_single_file_aof_with_an_rdb_preamble_is_migrated_and_loaded() {
    // An RDB file (written by Kiln's SAVE) followed by commands: what Redis 4 to 6 wrote
    // with aof-use-rdb-preamble.
    let src = temp_dir("legacy-src");
    let d = src.to_string_lossy().to_string();
    let s = TestServer::kiln(&["--dir", &d]);
    let mut c = s.client();
    run(&mut c, "SET from preamble");
    run(&mut c, "RPUSH list a b");
    run(&mut c, "SAVE");
    drop(s);
    let mut legacy = std::fs::read(src.join("dump.rdb")).unwrap();
    legacy.extend_from_slice(
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$5\r\nRPUSH\r\n$4\r\nlist\r\n$1\r\nc\r\n",
    );
    let dir = temp_dir("legacy");
    std::fs::write(dir.join("appendonly.aof"), legacy).unwrap();
    let s = kiln_aof(&dir, &[]);
    let mut c = s.client();
    let v: String = redis::cmd("GET").arg("from").query(&mut c).unwrap();
    assert_eq!(v, "preamble");
    let l: Vec<String> = redis::cmd("LRANGE")
        .arg("list")
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap();
    assert_eq!(l, ["a", "b", "c"]);
    assert!(!dir.join("appendonly.aof").exists());
    assert_eq!(
        manifest(&dir),
        "file appendonly.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
}

#[test]
fn commands_replay_without_expiring_keys_whose_deadline_a_later_command_moved() {
    // SET with a deadline in the past, then PERSIST: as Redis replays it, the key lives.
    let dir = temp_dir("no-expiry-while-loading");
    std::fs::create_dir_all(dir.join("appendonlydir")).unwrap();
    std::fs::write(
        dir.join("appendonlydir/appendonly.aof.manifest"),
        "file appendonly.aof.1.incr.aof seq 1 type i\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("appendonlydir/appendonly.aof.1.incr.aof"),
        "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n\
         *5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$4\r\nPXAT\r\n$13\r\n1000000000000\r\n\
         *2\r\n$7\r\nPERSIST\r\n$1\r\nk\r\n\
         *5\r\n$3\r\nSET\r\n$1\r\nj\r\n$1\r\nv\r\n$4\r\nPXAT\r\n$13\r\n1000000000000\r\n",
    )
    .unwrap();
    let s = kiln_aof(&dir, &[]);
    let mut c = s.client();
    let k: Option<String> = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(k.as_deref(), Some("v"));
    let j: Option<String> = redis::cmd("GET").arg("j").query(&mut c).unwrap();
    assert_eq!(j, None);
}

#[test]
fn info_persistence_has_redis_aof_fields_and_bgrewriteaof_redis_replies() {
    let dir = temp_dir("info");
    let k = kiln_aof(&dir, &[]);
    let mut kc = k.client();
    let names = |c: &mut Connection| -> Vec<String> {
        let info: String = redis::cmd("INFO").arg("persistence").query(c).unwrap();
        info.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, _)| k.to_string())
            .filter(|k| k.starts_with("aof_") || k.starts_with("module_fork"))
            .collect()
    };
    let kiln_names = names(&mut kc);
    assert_eq!(info_field(&mut kc, "aof_enabled"), "1");
    let started: String = redis::cmd("BGREWRITEAOF").query(&mut kc).unwrap();
    assert_eq!(started, "Background append only file rewriting started");
    wait_rewrite_done(&mut kc);
    let rdir = temp_dir("info-redis");
    let Some(r) = redis_aof(&rdir, &[]) else {
        return;
    };
    let mut rc = r.client();
    assert_eq!(kiln_names, names(&mut rc));
    let started: String = redis::cmd("BGREWRITEAOF").query(&mut rc).unwrap();
    assert_eq!(started, "Background append only file rewriting started");
}

/// Clients INCR their own counters as fast as they can until the server dies; each
/// remembers the last value acknowledged. Returns (key, last acknowledged) per client.
fn write_until_killed(s: TestServer, clients: usize, min_each: i64) -> Vec<(String, i64)> {
    let acked: Vec<Arc<AtomicI64>> = (0..clients).map(|_| Arc::new(AtomicI64::new(0))).collect();
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            let mut c = s.client();
            let acked = acked[t].clone();
            std::thread::spawn(move || {
                let key = format!("counter:{t}");
                // Half the clients pipeline: a batch is acknowledged as a whole.
                let batch = if t % 2 == 0 { 1 } else { 16 };
                loop {
                    let mut p = redis::pipe();
                    for _ in 0..batch {
                        p.cmd("INCR").arg(&key);
                    }
                    match p.query::<Vec<i64>>(&mut c) {
                        Ok(v) => acked.store(*v.last().unwrap(), Ordering::SeqCst),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    eventually("every client wrote a while", || {
        acked.iter().all(|a| a.load(Ordering::SeqCst) >= min_each)
    });
    // kill -9 in the middle of the load.
    drop(s);
    for t in threads {
        t.join().unwrap();
    }
    acked
        .iter()
        .enumerate()
        .map(|(t, a)| (format!("counter:{t}"), a.load(Ordering::SeqCst)))
        .collect()
}

#[test]
fn with_appendfsync_always_kill_9_loses_no_acknowledged_write() {
    for round in 0..3 {
        let dir = temp_dir(&format!("always-{round}"));
        let s = kiln_aof(&dir, &["--appendfsync", "always"]);
        let acked = write_until_killed(s, 6, 300);
        let s = kiln_aof(&dir, &[]);
        let mut c = s.client();
        for (key, last) in acked {
            let v: i64 = redis::cmd("GET").arg(&key).query(&mut c).unwrap();
            assert!(
                v >= last,
                "{key}: {v} on disk, {last} acknowledged (round {round})"
            );
        }
    }
}

#[test]
fn with_appendfsync_everysec_kill_9_loses_little() {
    let dir = temp_dir("everysec");
    let s = kiln_aof(&dir, &["--appendfsync", "everysec"]);
    let acked = write_until_killed(s, 6, 2000);
    let s = kiln_aof(&dir, &[]);
    let mut c = s.client();
    let mut lost = 0;
    for (key, last) in &acked {
        let v: Option<i64> = redis::cmd("GET").arg(key).query(&mut c).unwrap();
        lost += (last - v.unwrap_or(0)).max(0);
    }
    // The process died, not the machine: what was written is in the kernel's cache, and
    // only what the feed still held is gone. A generous bound, far below a second of writes.
    assert!(
        lost <= 20_000,
        "lost {lost} acknowledged increments of {acked:?}"
    );
}

/// DEBUG LOADAOF empties the dataset and replays the AOF, as Redis does: what the AOF
/// holds comes back, replayed commands are not written again (a second reload gives the
/// same), and a command DEBUG REPLICATE sent to replicas only is not in it. Functions (in
/// the base) come back too. Inside MULTI it is refused; with the AOF off it is an error
/// that keeps the dataset (Redis exits).
#[test]
fn debug_loadaof_replays_the_aof_without_writing_it_again() {
    let dir = temp_dir("loadaof");
    let s = kiln_aof(&dir, &[]);
    let mut c = s.client();
    run(&mut c, "SET a 1");
    run(&mut c, "INCR n");
    run(&mut c, "RPUSH l x y");
    run(&mut c, "DEBUG REPLICATE SET replicated 1");
    let lib = "#!lua name=lib1\nredis.register_function('f1', function() return 7 end)";
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(lib)
        .query(&mut c)
        .unwrap();
    // The function goes to the base: rewrite, then write more into the new incr file.
    run(&mut c, "BGREWRITEAOF");
    wait_rewrite_done(&mut c);
    run(&mut c, "INCR n");
    run(&mut c, "PEXPIRE a 100000");
    let want = digest(&mut c);
    for _ in 0..2 {
        assert_eq!(run(&mut c, "DEBUG LOADAOF"), redis::Value::Okay);
        assert_eq!(digest(&mut c), want);
    }
    let n: i64 = redis::cmd("GET").arg("n").query(&mut c).unwrap();
    assert_eq!(n, 2);
    let ttl: i64 = redis::cmd("PTTL").arg("a").query(&mut c).unwrap();
    assert!(ttl > 90_000, "{ttl}");
    let f: i64 = redis::cmd("FCALL").arg("f1").arg(0).query(&mut c).unwrap();
    assert_eq!(f, 7);
    let exists: i64 = redis::cmd("EXISTS")
        .arg("replicated")
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, 0);
    // The replayed commands were not appended again.
    let incr = std::fs::read(last_incr(&dir)).unwrap();
    let incrs = incr.windows(4).filter(|w| w == b"INCR").count();
    assert_eq!(incrs, 1, "{}", String::from_utf8_lossy(&incr));

    let mut raw = s.raw();
    raw.cmd(&["MULTI"]);
    raw.cmd(&["DEBUG", "LOADAOF"]);
    assert_eq!(
        raw.cmd(&["EXEC"]),
        "*1\r\n-ERR DEBUG LOADAOF can't run inside a transaction\r\n"
    );

    run(&mut c, "CONFIG SET appendonly no");
    let e = redis::cmd("DEBUG")
        .arg("LOADAOF")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("needs the AOF on"), "{e}");
    assert_eq!(digest(&mut c), want);
}

/// DEBUG AOF-FLUSH-SLEEP delays each write of the AOF file by the given microseconds.
#[test]
fn debug_aof_flush_sleep_delays_the_aof_writes() {
    let dir = temp_dir("flushsleep");
    let s = kiln_aof(&dir, &[]);
    let mut c = s.client();
    run(&mut c, "SET before 1");
    let has = |key: &[u8]| {
        std::fs::read(last_incr(&dir))
            .unwrap()
            .windows(key.len())
            .any(|w| w == key)
    };
    eventually("the first write is in the AOF", || has(b"before"));
    assert_eq!(
        run(&mut c, "DEBUG AOF-FLUSH-SLEEP 2000000"),
        redis::Value::Okay
    );
    let t = Instant::now();
    run(&mut c, "SET during 1");
    // Not in the file before the sleep is over (a lower bound only: a slow machine is
    // later, never earlier).
    eventually("the delayed write is in the AOF", || has(b"during"));
    assert!(
        t.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(run(&mut c, "DEBUG AOF-FLUSH-SLEEP 0"), redis::Value::Okay);
}
