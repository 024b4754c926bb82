//! RDB persistence end to end: SAVE / BGSAVE / LASTSAVE / save points / saving on shutdown,
//! the point-in-time guarantee of a background save under concurrent writes, and files
//! that real redis-server loads with the same DEBUG DIGEST.

mod support;

use std::time::{Duration, Instant};

use redis::Commands;
use support::{digest, TestServer};

fn info_field(c: &mut redis::Connection, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg(section).query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .trim()
        .to_string()
}

fn wait_bgsave_done(c: &mut redis::Connection) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while info_field(c, "persistence", "rdb_bgsave_in_progress") != "0" {
        assert!(Instant::now() < deadline, "BGSAVE never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A mixed dataset over several databases, with TTLs.
fn fill(c: &mut redis::Connection) {
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(20_000)
        .query(c)
        .unwrap();
    let _: () = c.rpush("list", &["a", "b", "c", "1", "2"]).unwrap();
    let _: () = c.hset_multiple("hash", &[("f", "v"), ("n", "1")]).unwrap();
    let _: () = c.sadd("ints", &[1, 2, 3]).unwrap();
    let _: () = c.sadd("strs", &["x", "y"]).unwrap();
    let _: () = c.zadd_multiple("zset", &[(1.5, "a"), (2.0, "b")]).unwrap();
    let _: () = c.set_ex("ttl", "v", 1000).unwrap();
    let long = "x".repeat(5000);
    let _: () = c.set("long", &long).unwrap();
    let _: String = redis::cmd("XADD")
        .arg("stream")
        .arg("*")
        .arg("f")
        .arg("v")
        .query(c)
        .unwrap();
    let _: () = redis::cmd("SELECT").arg(5).query(c).unwrap();
    let _: () = c.set("in5", "five").unwrap();
    let _: () = redis::cmd("SELECT").arg(0).query(c).unwrap();
}

#[test]
fn save_writes_a_file_that_kiln_and_redis_load_with_the_same_digest() {
    let kiln = TestServer::kiln(&["--enable-debug-command", "yes"]);
    let mut c = kiln.client();
    fill(&mut c);
    let before: i64 = redis::cmd("LASTSAVE").query(&mut c).unwrap();
    assert_ne!(
        info_field(&mut c, "persistence", "rdb_changes_since_last_save"),
        "0"
    );
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    let after: i64 = redis::cmd("LASTSAVE").query(&mut c).unwrap();
    assert!(after >= before);
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_changes_since_last_save"),
        "0"
    );
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_last_bgsave_status"),
        "ok"
    );
    let want = digest(&mut c);
    let file = kiln.dir.join("dump.rdb");
    assert!(file.exists());
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&kiln.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("temp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // DEBUG RELOAD: save, empty, load back.
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    assert_eq!(digest(&mut c), want);
    let keys: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    let in5 = 1; // `fill` puts one key in database 5
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_last_load_keys_loaded"),
        (keys + in5).to_string()
    );

    // A second Kiln started on the same directory.
    let dir = kiln.dir.to_string_lossy().to_string();
    let copy = std::env::temp_dir().join(format!("kiln-persist-copy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(file, copy.join("dump.rdb")).unwrap();
    let copy_s = copy.to_string_lossy().to_string();
    let again = TestServer::kiln(&["--enable-debug-command", "yes", "--dir", &copy_s]);
    assert_eq!(digest(&mut again.client()), want);

    // redis-check-rdb accepts it, and real Redis loads the same data.
    if let Some(redis) = TestServer::redis(&["--enable-debug-command", "yes", "--dir", &copy_s]) {
        assert_eq!(digest(&mut redis.client()), want);
        let out = std::process::Command::new("redis-check-rdb")
            .arg(copy.join("dump.rdb"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("RDB looks OK"), "{text}");
    }
    let _ = std::fs::remove_dir_all(&copy);
    let _ = dir;
}

#[test]
fn bgsave_is_a_point_in_time_snapshot_under_concurrent_writes() {
    let kiln = TestServer::kiln(&["--enable-debug-command", "yes"]);
    let mut c = kiln.client();
    let n = 50_000;
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.set(format!("k:{i}"), "before").ignore();
    }
    pipe.rpush("list", &["a", "b"]).ignore();
    pipe.set_ex("ttl", "old", 1000).ignore();
    let _: () = pipe.query(&mut c).unwrap();
    let want = digest(&mut c);

    // In one pipeline: the snapshot point, then writes of every kind to keys the writer
    // has not reached yet. None of them may show in the file.
    let mut pipe = redis::pipe();
    pipe.cmd("BGSAVE").ignore();
    for i in (0..n).rev() {
        match i % 4 {
            0 => pipe.set(format!("k:{i}"), "after").ignore(),
            1 => pipe.del(format!("k:{i}")).ignore(),
            2 => pipe.append(format!("k:{i}"), "!").ignore(),
            _ => pipe.expire(format!("k:{i}"), 5000).ignore(),
        };
    }
    pipe.rpush("list", "c").ignore();
    pipe.persist("ttl").ignore();
    pipe.rename("list", "list2").ignore();
    pipe.set("new-key", "x").ignore();
    let _: () = pipe.query(&mut c).unwrap();
    let changed = digest(&mut c);
    assert_ne!(changed, want);
    wait_bgsave_done(&mut c);

    let dir = kiln.dir.to_string_lossy().to_string();
    let copy = std::env::temp_dir().join(format!("kiln-persist-pit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(kiln.dir.join("dump.rdb"), copy.join("dump.rdb")).unwrap();
    let copy_s = copy.to_string_lossy().to_string();
    let loaded = TestServer::kiln(&["--enable-debug-command", "yes", "--dir", &copy_s]);
    let mut l = loaded.client();
    assert_eq!(digest(&mut l), want);
    let ttl: i64 = l.ttl("ttl").unwrap();
    assert!(ttl > 900);
    let _ = std::fs::remove_dir_all(&copy);
    let _ = dir;
}

#[test]
fn flushall_and_swapdb_during_a_bgsave_do_not_leak_into_it() {
    let kiln = TestServer::kiln(&["--enable-debug-command", "yes"]);
    let mut c = kiln.client();
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(30_000)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SELECT").arg(1).query(&mut c).unwrap();
    let _: () = c.set("one", "1").unwrap();
    let _: () = redis::cmd("SELECT").arg(0).query(&mut c).unwrap();
    let want = digest(&mut c);
    let mut pipe = redis::pipe();
    pipe.cmd("BGSAVE").ignore();
    pipe.cmd("SWAPDB").arg(0).arg(1).ignore();
    pipe.cmd("FLUSHALL").ignore();
    pipe.set("x", "y").ignore();
    let _: () = pipe.query(&mut c).unwrap();
    wait_bgsave_done(&mut c);
    let copy = std::env::temp_dir().join(format!("kiln-persist-flush-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(kiln.dir.join("dump.rdb"), copy.join("dump.rdb")).unwrap();
    let copy_s = copy.to_string_lossy().to_string();
    let loaded = TestServer::kiln(&["--enable-debug-command", "yes", "--dir", &copy_s]);
    assert_eq!(digest(&mut loaded.client()), want);
    let _ = std::fs::remove_dir_all(&copy);
}

#[test]
fn bgsave_replies_and_errors_match_redis() {
    let kiln = TestServer::kiln(&[]);
    let mut r = kiln.raw();
    assert_eq!(r.cmd(&["BGSAVE", "now"]), "-ERR syntax error\r\n");
    assert_eq!(r.cmd(&["BGSAVE"]), "+Background saving started\r\n");
    // Either still running (then SCHEDULE schedules) or already done (then it starts).
    let again = r.cmd(&["BGSAVE", "SCHEDULE"]);
    assert!(
        again == "+Background saving scheduled\r\n" || again == "+Background saving started\r\n",
        "{again}"
    );
    assert_eq!(r.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(
        r.cmd(&["SAVE"]),
        "-ERR Command not allowed inside a transaction\r\n"
    );
    r.cmd(&["DISCARD"]);
}

#[test]
fn a_save_point_triggers_a_background_save() {
    let kiln = TestServer::kiln(&["--save", "1 1"]);
    let mut c = kiln.client();
    let _: () = c.set("a", "1").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if info_field(&mut c, "persistence", "rdb_saves") != "0" {
            break;
        }
        assert!(Instant::now() < deadline, "no automatic save happened");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(kiln.dir.join("dump.rdb").exists());
    let save: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query(&mut c)
        .unwrap();
    assert_eq!(save, vec!["save", "1 1"]);
}

#[test]
fn shutdown_saves_unless_told_not_to_and_sigterm_saves_with_save_points() {
    // SHUTDOWN SAVE without save points still saves.
    let mut kiln = TestServer::kiln(&[]);
    let mut c = kiln.client();
    let _: () = c.set("a", "1").unwrap();
    let mut r = kiln.raw();
    r.send_cmd(&["SHUTDOWN", "SAVE"]);
    assert!(kiln.wait_exit(Duration::from_secs(30)).is_some());
    assert!(kiln.dir.join("dump.rdb").exists());

    // SHUTDOWN NOSAVE with save points does not.
    let mut kiln = TestServer::kiln(&["--save", "3600 1"]);
    let mut c = kiln.client();
    let _: () = c.set("a", "1").unwrap();
    kiln.raw().send_cmd(&["SHUTDOWN", "NOSAVE"]);
    assert!(kiln.wait_exit(Duration::from_secs(30)).is_some());
    assert!(!kiln.dir.join("dump.rdb").exists());

    // SIGTERM with save points saves.
    let mut kiln = TestServer::kiln(&["--save", "3600 1"]);
    let mut c = kiln.client();
    let _: () = c.set("a", "1").unwrap();
    kiln.signal("TERM");
    assert!(kiln.wait_exit(Duration::from_secs(30)).is_some());
    assert!(kiln.dir.join("dump.rdb").exists());
}

#[test]
fn bgsave_inside_a_transaction_is_scheduled_and_then_runs_and_debug_reload_runs_in_place() {
    let kiln = TestServer::kiln(&["--enable-debug-command", "yes"]);
    let mut r = kiln.raw();
    r.cmd(&["MULTI"]);
    r.cmd(&["SET", "a", "1"]);
    r.cmd(&["BGSAVE"]);
    r.cmd(&["DEBUG", "RELOAD"]);
    assert_eq!(
        r.cmd(&["EXEC"]),
        "*3\r\n+OK\r\n+Background saving scheduled\r\n+OK\r\n"
    );
    // DEBUG RELOAD saved once inside the transaction (holding every shard); the scheduled
    // BGSAVE makes the second.
    let mut c = kiln.client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(&mut c, "persistence", "rdb_saves")
        .parse::<u32>()
        .unwrap()
        < 2
    {
        assert!(Instant::now() < deadline, "the scheduled save never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(kiln.dir.join("dump.rdb").exists());
}
