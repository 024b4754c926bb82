//! Black-box tests of the server commands, for what a differential script cannot show: that
//! INFO's values are true (they differ between any two servers), that SHUTDOWN and SIGTERM
//! end the process cleanly, CONFIG REWRITE's file, background FLUSHALL, and that DEBUG
//! DIGEST agrees with redis-server's for the same data.
//!
//! The scripts under `tests/diff/server/debug/` need `enable-debug-command` on both servers,
//! so they run from here rather than from the differential test binary.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::{Commands, Connection};
use support::{digest, TestServer, DEBUG_ON};

fn info(con: &mut Connection, section: &str) -> String {
    redis::cmd("INFO").arg(section).query(con).unwrap()
}

/// The `field:value` lines of an INFO reply.
fn fields(text: &str) -> HashMap<String, String> {
    text.split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn field_u64(con: &mut Connection, section: &str, name: &str) -> u64 {
    fields(&info(con, section))
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in INFO {section}"))
        .parse()
        .unwrap()
}

/// The `# Title` headers of an INFO reply, in order.
fn headers(text: &str) -> Vec<&str> {
    text.split("\r\n")
        .filter_map(|l| l.strip_prefix("# "))
        .collect()
}

/// Writes `n` keys `{prefix}{i}` with value `i`, pipelined.
fn fill(con: &mut Connection, prefix: &str, n: usize) {
    let mut p = redis::pipe();
    for i in 0..n {
        p.cmd("SET").arg(format!("{prefix}{i}")).arg(i).ignore();
    }
    p.query::<()>(con).unwrap();
}

/// Polls `f` until it returns true, for state that settles asynchronously (a closed
/// connection leaving the client list, a background free finishing).
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn info_has_redis_sections_in_redis_order() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    let default = [
        "Server",
        "Clients",
        "Memory",
        "Persistence",
        "Stats",
        "Replication",
        "CPU",
        "Modules",
        "Errorstats",
        "Cluster",
        "Keyspace",
    ];
    let plain: String = redis::cmd("INFO").query(&mut con).unwrap();
    assert_eq!(headers(&plain), default);
    assert_eq!(headers(&info(&mut con, "default")), default);
    let mut all = default.to_vec();
    all.insert(8, "Commandstats");
    all.insert(10, "Latencystats");
    assert_eq!(headers(&info(&mut con, "all")), all);
    assert_eq!(headers(&info(&mut con, "everything")), all);
    // Several sections in one call come out in the fixed order, once each.
    let several: String = redis::cmd("INFO")
        .arg("cpu")
        .arg("SERVER")
        .arg("cpu")
        .query(&mut con)
        .unwrap();
    assert_eq!(headers(&several), ["Server", "CPU"]);
    assert_eq!(info(&mut con, "nosuchsection"), "");
}

#[test]
fn info_lines_end_with_crlf_and_sections_are_separated_by_one_blank_line() {
    let server = TestServer::kiln(&[]);
    let mut raw = server.raw();
    let reply = raw.cmd(&["INFO", "server", "clients"]);
    let body = reply.split_once("\r\n").unwrap().1;
    let body = body.strip_suffix("\r\n").unwrap();
    assert!(body.starts_with("# Server\r\nredis_version:"));
    assert!(body.contains("io_threads_active:0\r\n\r\n# Clients\r\nconnected_clients:"));
    assert!(body.ends_with("clients_in_timeout_table:0\r\n"));
    assert!(!body.replace("\r\n", "").contains('\n'));
    // RESP3 clients get INFO as verbatim text.
    raw.cmd(&["HELLO", "3"]);
    assert!(raw
        .cmd(&["INFO", "cluster"])
        .starts_with("=34\r\ntxt:# Cluster\r\ncluster_enabled:0\r\n"));
}

#[test]
fn info_server_reports_this_process() {
    let server = TestServer::kiln(&["--hz", "25"]);
    let mut con = server.client();
    let f = fields(&info(&mut con, "server"));
    assert_eq!(f["redis_version"], "7.0.15");
    assert_eq!(f["kiln_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(f["redis_mode"], "standalone");
    assert_eq!(f["arch_bits"], "64");
    assert_eq!(f["process_id"], server.pid().to_string());
    assert_eq!(f["tcp_port"], server.port.to_string());
    assert_eq!(f["run_id"].len(), 40);
    assert!(f["run_id"].bytes().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(f["hz"], "25");
    assert_eq!(f["configured_hz"], "25");
    assert_eq!(f["config_file"], "");
    assert!(f["executable"].ends_with("kiln-server"));
    assert!(f["uptime_in_seconds"].parse::<u64>().unwrap() < 3600);
    assert_eq!(f["uptime_in_days"], "0");
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let server_us: u64 = f["server_time_usec"].parse().unwrap();
    assert!(server_us.abs_diff(now_us) < 60_000_000);
    // The replication id is fixed for the life of the server.
    let id1 = fields(&info(&mut con, "replication"))["master_replid"].clone();
    let id2 = fields(&info(&mut con, "replication"))["master_replid"].clone();
    assert_eq!(id1, id2);
    assert_eq!(id1.len(), 40);
}

#[test]
fn connected_clients_counts_open_connections() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    // The start-up probe's connection may still be closing.
    assert!(eventually(|| field_u64(
        &mut con,
        "clients",
        "connected_clients"
    ) == 1));
    let others: Vec<Connection> = (0..3).map(|_| server.client()).collect();
    assert_eq!(field_u64(&mut con, "clients", "connected_clients"), 4);
    drop(others);
    assert!(eventually(|| field_u64(
        &mut con,
        "clients",
        "connected_clients"
    ) == 1));
    assert_eq!(field_u64(&mut con, "clients", "maxclients"), 10000);
    let before = field_u64(&mut con, "stats", "total_connections_received");
    let _more = server.client();
    assert_eq!(
        field_u64(&mut con, "stats", "total_connections_received"),
        before + 1
    );
}

#[test]
fn stats_count_commands_hits_misses_and_errors() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut con)
        .unwrap();
    let _: () = con.set("k", "v").unwrap();
    let _: Option<String> = con.get("k").unwrap();
    let _: Option<String> = con.get("missing").unwrap();
    let _: Option<String> = con.get("missing").unwrap();
    let _ = redis::cmd("NOSUCHCOMMAND").query::<()>(&mut con);
    let _ = redis::cmd("GET").query::<()>(&mut con);
    let stats = fields(&info(&mut con, "stats"));
    // RESETSTAT itself, SET and 3 GETs (INFO counts once it is done); refused commands
    // are not processed.
    assert_eq!(stats["total_commands_processed"], "5");
    assert_eq!(stats["keyspace_hits"], "1");
    assert_eq!(stats["keyspace_misses"], "2");
    assert_eq!(stats["total_error_replies"], "2");
    let before = field_u64(&mut con, "stats", "total_commands_processed");
    fill(&mut con, "x", 100);
    assert_eq!(
        field_u64(&mut con, "stats", "total_commands_processed"),
        before + 101
    );
    let all = info(&mut con, "all");
    assert!(all.contains("\r\nerrorstat_ERR:count=2\r\n"));
    let get = all.lines().find(|l| l.starts_with("cmdstat_get:")).unwrap();
    assert!(get.starts_with("cmdstat_get:calls=3,usec="));
    assert!(get.ends_with(",rejected_calls=1,failed_calls=0"), "{get}");
    let set = all.lines().find(|l| l.starts_with("cmdstat_set:")).unwrap();
    assert!(set.starts_with("cmdstat_set:calls=101,"));
    // RESETSTAT starts every counter again.
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut con)
        .unwrap();
    let all = info(&mut con, "all");
    assert!(!all.contains("cmdstat_get:"));
    assert!(!all.contains("errorstat_"));
    assert_eq!(fields(&all)["keyspace_hits"], "0");
}

#[test]
fn keyspace_lists_each_non_empty_database() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    assert_eq!(info(&mut con, "keyspace"), "# Keyspace\r\n");
    fill(&mut con, "k", 3);
    let _: () = con.expire("k0", 100).unwrap();
    let _: () = redis::cmd("SELECT").arg(2).query(&mut con).unwrap();
    let _: () = con.set("other", "v").unwrap();
    assert_eq!(
        info(&mut con, "keyspace"),
        "# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\ndb2:keys=1,expires=0,avg_ttl=0\r\n"
    );
}

#[test]
fn used_memory_grows_with_the_dataset_and_shrinks_after_flushall() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    let empty = field_u64(&mut con, "memory", "used_memory");
    for chunk in 0..10 {
        fill(&mut con, &format!("key:{chunk}:"), 10_000);
    }
    let full = field_u64(&mut con, "memory", "used_memory");
    // 100k keys take megabytes whatever the layout.
    assert!(full > empty + 2_000_000, "{empty} -> {full}");
    let mem = fields(&info(&mut con, "memory"));
    assert!(mem["used_memory_peak"].parse::<u64>().unwrap() >= full);
    assert!(mem["used_memory_rss"].parse::<u64>().unwrap() > 0);
    assert_eq!(mem["mem_allocator"], "jemalloc-5.3.0");
    assert!(mem["used_memory_human"].ends_with('M'));
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let after = field_u64(&mut con, "memory", "used_memory");
    assert!(after < full - 2_000_000, "{full} -> {after}");
    assert!(field_u64(&mut con, "memory", "used_memory_peak") >= full);
}

#[test]
fn cpu_times_are_reported_with_microseconds() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    let cpu = fields(&info(&mut con, "cpu"));
    for f in [
        "used_cpu_sys",
        "used_cpu_user",
        "used_cpu_sys_children",
        "used_cpu_user_children",
    ] {
        let (secs, micros) = cpu[f].split_once('.').unwrap();
        assert!(
            secs.parse::<u64>().is_ok() && micros.len() == 6,
            "{f}: {}",
            cpu[f]
        );
    }
}

#[test]
fn persistence_fields_describe_a_server_without_persistence() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    let _: () = con.set("a", 1).unwrap();
    let _: () = con.set("b", 1).unwrap();
    let p = fields(&info(&mut con, "persistence"));
    assert_eq!(p["loading"], "0");
    assert_eq!(p["rdb_changes_since_last_save"], "2");
    assert_eq!(p["rdb_bgsave_in_progress"], "0");
    assert_eq!(p["rdb_last_bgsave_status"], "ok");
    assert_eq!(p["aof_enabled"], "0");
    let lastsave: u64 = redis::cmd("LASTSAVE").query(&mut con).unwrap();
    assert_eq!(p["rdb_last_save_time"], lastsave.to_string());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(lastsave <= now && lastsave + 3600 > now);
}

#[test]
fn time_is_the_system_clock() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut con).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(secs.abs_diff(now) <= 60);
    assert!(micros < 1_000_000);
}

#[test]
fn config_set_then_get_round_trips() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    let get = |con: &mut Connection, p: &str| -> HashMap<String, String> {
        redis::cmd("CONFIG").arg("GET").arg(p).query(con).unwrap()
    };
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("10mb")
        .arg("maxmemory-policy")
        .arg("ALLKEYS-LRU")
        .arg("slave-read-only")
        .arg("no")
        .arg("hz")
        .arg("1000")
        .query(&mut con)
        .unwrap();
    assert_eq!(get(&mut con, "maxmemory")["maxmemory"], "10485760");
    assert_eq!(
        get(&mut con, "maxmemory-policy")["maxmemory-policy"],
        "allkeys-lru"
    );
    assert_eq!(
        get(&mut con, "replica-read-only")["replica-read-only"],
        "no"
    );
    assert_eq!(get(&mut con, "hz")["hz"], "500");
    // The new hz is in force, not just stored.
    assert_eq!(field_u64(&mut con, "server", "hz"), 500);
    // One bad pair and nothing changes.
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("20mb")
        .arg("timeout")
        .arg("-1")
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("argument 'timeout'"), "{err}");
    assert_eq!(get(&mut con, "maxmemory")["maxmemory"], "10485760");
    // Globs find every match, aliases included.
    let m = get(&mut con, "*read-only");
    assert_eq!(m.len(), 2);
    assert_eq!(m["slave-read-only"], "no");
}

#[test]
fn config_set_requirepass_applies_to_new_connections() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret")
        .query(&mut con)
        .unwrap();
    // The connection that set it stays authenticated.
    let _: () = con.set("k", "v").unwrap();
    let mut raw = server.raw();
    assert!(raw.cmd(&["GET", "k"]).starts_with("-NOAUTH"));
    assert_eq!(raw.cmd(&["AUTH", "s3cret"]), "+OK\r\n");
}

#[test]
fn protected_configs_need_enable_protected_configs() {
    let server = TestServer::kiln(&[]);
    let mut raw = server.raw();
    assert_eq!(
        raw.cmd(&["CONFIG", "SET", "dbfilename", "x.rdb"]),
        "-ERR CONFIG SET failed (possibly related to argument 'dbfilename') - can't set protected config\r\n"
    );
    let server = TestServer::kiln(&["--enable-protected-configs", "local"]);
    let mut raw = server.raw();
    assert_eq!(
        raw.cmd(&["CONFIG", "SET", "dbfilename", "x.rdb"]),
        "+OK\r\n"
    );
    assert_eq!(
        raw.cmd(&["CONFIG", "GET", "dbfilename"]),
        "*2\r\n$10\r\ndbfilename\r\n$5\r\nx.rdb\r\n"
    );
}

/// A kiln-server started with a config file (TestServer puts its options first, and the
/// file must come first), killed on drop.
struct WithConfigFile {
    child: std::process::Child,
    port: u16,
}

impl WithConfigFile {
    fn start(conf: &Path, port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_kiln-server"))
            .arg(conf)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Owned from here, so a failed start still kills the process (on drop).
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) {
                let mut b = [0u8; 16];
                if c.write_all(b"PING\r\n").is_ok() && c.read(&mut b).is_ok_and(|n| n > 0) {
                    return server;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("kiln-server with {} did not start", conf.display());
    }
}

impl Drop for WithConfigFile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn config_rewrite_writes_the_acl_users_in_place_of_the_old_user_lines() {
    let dir = std::env::temp_dir().join(format!("kiln-rewrite-acl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("kiln.conf");
    std::fs::write(
        &conf,
        "save \"\"\nuser old on nopass +@all\nappendonly no\n",
    )
    .unwrap();
    let server = WithConfigFile::start(&conf, support::free_port());
    let mut raw = support::Raw::connect(server.port);
    let set = raw.cmd(&["ACL", "SETUSER", "new", "on", ">p", "~n*", "+get"]);
    assert_eq!(set, "+OK\r\n");
    assert_eq!(raw.cmd(&["CONFIG", "REWRITE"]), "+OK\r\n");
    let text = std::fs::read_to_string(&conf).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "save \"\"", "{text}");
    assert!(
        lines[1].starts_with("user default on nopass ~* &* +@all"),
        "{text}"
    );
    assert!(lines[2].starts_with("user new on #"), "{text}");
    assert_eq!(lines[3], "user old on nopass resetchannels +@all", "{text}");
    assert_eq!(lines[4], "appendonly no", "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_rewrite_writes_the_config_in_force_back_to_the_file() {
    let dir = std::env::temp_dir().join(format!("kiln-rewrite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("kiln.conf");
    std::fs::write(
        &conf,
        "# test config\nmaxmemory 1mb\nsave \"\"\nappendonly no\n",
    )
    .unwrap();
    let port = support::free_port();
    let server = WithConfigFile::start(&conf, port);
    let mut raw = support::Raw::connect(server.port);
    let info = raw.cmd(&["INFO", "server"]);
    assert!(info.contains(&format!("config_file:{}\r\n", conf.display())));
    assert_eq!(
        raw.cmd(&[
            "CONFIG",
            "SET",
            "maxmemory",
            "2mb",
            "maxmemory-policy",
            "allkeys-lru"
        ]),
        "+OK\r\n"
    );
    assert_eq!(raw.cmd(&["CONFIG", "REWRITE"]), "+OK\r\n");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(
        text.starts_with("# test config\nmaxmemory 2097152\nsave \"\"\nappendonly no\n"),
        "{text}"
    );
    assert!(text.contains("# Generated by CONFIG REWRITE\n"), "{text}");
    assert!(text.contains("\nmaxmemory-policy allkeys-lru\n"), "{text}");
    // The port came from the command line: it is part of the configuration too.
    assert!(text.contains(&format!("\nport {port}\n")), "{text}");
    drop(server);
    // The rewritten file starts a server with the same settings.
    let server = WithConfigFile::start(&conf, support::free_port());
    let mut raw = support::Raw::connect(server.port);
    assert_eq!(
        raw.cmd(&["CONFIG", "GET", "maxmemory-policy"]),
        "*2\r\n$16\r\nmaxmemory-policy\r\n$11\r\nallkeys-lru\r\n"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shutdown_closes_the_connection_without_a_reply_and_exits_with_status_0() {
    let mut server = TestServer::kiln(&[]);
    let mut other = server.raw();
    let mut raw = server.raw();
    raw.send_cmd(&["SHUTDOWN", "NOSAVE"]);
    assert_eq!(raw.read_reply(), None);
    assert!(other.is_closed());
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("server still running");
    assert!(status.success(), "{status:?}");
}

#[test]
fn shutdown_with_bad_options_keeps_the_server_running() {
    let mut server = TestServer::kiln(&[]);
    let mut raw = server.raw();
    assert_eq!(
        raw.cmd(&["SHUTDOWN", "SAVE", "NOSAVE"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        raw.cmd(&["SHUTDOWN", "ABORT"]),
        "-ERR No shutdown in progress.\r\n"
    );
    assert_eq!(raw.cmd(&["PING"]), "+PONG\r\n");
    assert!(server.alive());
}

#[test]
fn sigterm_makes_the_process_exit_with_status_0() {
    let mut server = TestServer::kiln(&[]);
    let mut con = server.client();
    let _: () = con.set("k", "v").unwrap();
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("server still running");
    assert!(status.success(), "{status:?}");
}

#[test]
fn flushall_async_empties_every_database_at_once_and_frees_in_the_background() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    fill(&mut con, "a", 5000);
    let _: () = redis::cmd("SELECT").arg(3).query(&mut con).unwrap();
    fill(&mut con, "b", 5000);
    let _: () = redis::cmd("FLUSHALL").arg("ASYNC").query(&mut con).unwrap();
    let n: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 0);
    let _: () = redis::cmd("SELECT").arg(0).query(&mut con).unwrap();
    let n: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 0);
    assert!(eventually(|| field_u64(
        &mut con,
        "memory",
        "lazyfreed_objects"
    ) == 10_000));
    assert_eq!(field_u64(&mut con, "memory", "lazyfree_pending_objects"), 0);
    // The databases work as before.
    let _: () = con.set("a0", "x").unwrap();
    assert_eq!(con.get::<_, String>("a0").unwrap(), "x");
}

#[test]
fn lazyfree_lazy_user_flush_makes_flushdb_asynchronous() {
    let server = TestServer::kiln(&["--lazyfree-lazy-user-flush", "yes"]);
    let mut con = server.client();
    fill(&mut con, "a", 1000);
    let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
    assert!(eventually(|| field_u64(
        &mut con,
        "memory",
        "lazyfreed_objects"
    ) == 1000));
    fill(&mut con, "a", 1000);
    let _: () = redis::cmd("FLUSHDB").arg("SYNC").query(&mut con).unwrap();
    assert_eq!(field_u64(&mut con, "memory", "lazyfreed_objects"), 1000);
    let n: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 0);
}

#[test]
fn swapdb_is_seen_at_once_by_connections_on_either_database() {
    let server = TestServer::kiln(&[]);
    let mut con = server.client();
    let mut on1 = server.client();
    let _: () = redis::cmd("SELECT").arg(1).query(&mut on1).unwrap();
    fill(&mut con, "zero", 300);
    let _: () = con.set_ex("ttl", "v", 100).unwrap();
    let _: () = on1.set("one", "1").unwrap();
    let _: () = redis::cmd("SWAPDB").arg(0).arg(1).query(&mut con).unwrap();
    assert_eq!(con.get::<_, String>("one").unwrap(), "1");
    assert_eq!(on1.get::<_, String>("zero7").unwrap(), "7");
    let ttl: i64 = on1.ttl("ttl").unwrap();
    assert!(ttl > 0 && ttl <= 100);
    let n: u64 = redis::cmd("DBSIZE").query(&mut on1).unwrap();
    assert_eq!(n, 301);
}

#[test]
fn debug_is_refused_unless_enable_debug_command_allows_it() {
    let server = TestServer::kiln(&[]);
    let mut raw = server.raw();
    assert!(raw
        .cmd(&["DEBUG", "DIGEST"])
        .starts_with("-ERR DEBUG command not allowed."));
    // Tests connect over loopback, which `local` lets through.
    let server = TestServer::kiln(&["--enable-debug-command", "local"]);
    let mut raw = server.raw();
    assert_eq!(
        raw.cmd(&["DEBUG", "DIGEST"]),
        format!("+{}\r\n", "0".repeat(40))
    );
}

#[test]
fn debug_set_active_expire_0_leaves_expired_keys_until_they_are_touched() {
    let server = TestServer::kiln(&["--enable-debug-command", "yes", "--hz", "100"]);
    let mut con = server.client();
    let _: () = redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("PX")
        .arg(10)
        .query(&mut con)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Still stored (DBSIZE counts it), gone as soon as it is read.
    assert_eq!(redis::cmd("DBSIZE").query::<u64>(&mut con).unwrap(), 1);
    assert_eq!(con.get::<_, Option<String>>("k").unwrap(), None);
    assert_eq!(redis::cmd("DBSIZE").query::<u64>(&mut con).unwrap(), 0);
    let _: () = redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(1)
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("PX")
        .arg(10)
        .query(&mut con)
        .unwrap();
    assert!(eventually(|| redis::cmd("DBSIZE")
        .query::<u64>(&mut con)
        .unwrap()
        == 0));
}

/// Loads the same varied dataset into a server: several databases, integers, binary keys
/// and values, big values, keys with a TTL.
fn load_varied_data(con: &mut Connection) {
    let mut p = redis::pipe();
    for db in [0, 1, 5] {
        p.cmd("SELECT").arg(db).ignore();
        for i in 0..200 {
            p.cmd("SET")
                .arg(format!("k{i}"))
                .arg(i * 37 - 1000)
                .ignore();
            p.cmd("SET")
                .arg(format!("s{i}"))
                .arg(format!("value {i} in {db}"))
                .ignore();
        }
        p.cmd("SET")
            .arg(&b"bin\x00\xff"[..])
            .arg(&b"\x00\x01\x02"[..])
            .ignore();
        p.cmd("SET").arg("big").arg("x".repeat(100_000)).ignore();
        p.cmd("SET").arg("empty").arg("").ignore();
        p.cmd("SET")
            .arg("ttl")
            .arg("v")
            .arg("EX")
            .arg(1000)
            .ignore();
        p.cmd("APPEND").arg("appended").arg("abc").ignore();
    }
    p.cmd("SELECT").arg(0).ignore();
    p.query::<()>(con).unwrap();
}

#[test]
fn debug_digest_equals_redis_server_for_the_same_data() {
    let kiln = TestServer::kiln(DEBUG_ON);
    let mut k = kiln.client();
    assert_eq!(digest(&mut k), "0".repeat(40));
    load_varied_data(&mut k);
    let kd = digest(&mut k);
    assert_ne!(kd, "0".repeat(40));
    // Moving data to another database changes the digest; moving it back restores it.
    let _: () = redis::cmd("SWAPDB").arg(1).arg(2).query(&mut k).unwrap();
    assert_ne!(digest(&mut k), kd);
    let _: () = redis::cmd("SWAPDB").arg(1).arg(2).query(&mut k).unwrap();
    assert_eq!(digest(&mut k), kd);
    let keys = ["k3", "s5", "ttl", "big", "nosuchkey"];
    let kv: Vec<String> = redis::cmd("DEBUG")
        .arg("DIGEST-VALUE")
        .arg(&keys)
        .query(&mut k)
        .unwrap();
    let Some(redis) = TestServer::redis(DEBUG_ON) else {
        return;
    };
    let mut r = redis.client();
    load_varied_data(&mut r);
    assert_eq!(kd, digest(&mut r));
    let rv: Vec<String> = redis::cmd("DEBUG")
        .arg("DIGEST-VALUE")
        .arg(&keys)
        .query(&mut r)
        .unwrap();
    assert_eq!(kv, rv);
}

#[test]
fn debug_populate_creates_the_keys_redis_creates() {
    let kiln = TestServer::kiln(DEBUG_ON);
    let redis = TestServer::redis(DEBUG_ON);
    let mut servers = vec![kiln.client()];
    servers.extend(redis.as_ref().map(|r| r.client()));
    let mut digests = Vec::new();
    for con in &mut servers {
        // An existing key is left alone.
        let _: () = con.set("key:5", "mine").unwrap();
        for args in [
            &["1000"][..],
            &["10", "p"],
            &["10", "padded", "20"],
            &["10", "cut", "3"],
        ] {
            let _: () = redis::cmd("DEBUG")
                .arg("POPULATE")
                .arg(args)
                .query(con)
                .unwrap();
        }
        assert_eq!(con.get::<_, String>("key:5").unwrap(), "mine");
        assert_eq!(con.get::<_, String>("key:999").unwrap(), "value:999");
        assert_eq!(
            con.get::<_, Vec<u8>>("padded:3").unwrap(),
            b"value:3\0\0\0\0\0\0\0\0\0\0\0\0\0"
        );
        assert_eq!(con.get::<_, String>("cut:9").unwrap(), "val");
        assert_eq!(redis::cmd("DBSIZE").query::<u64>(con).unwrap(), 1030);
        digests.push(digest(con));
    }
    if digests.len() == 2 {
        assert_eq!(digests[0], digests[1]);
    }
}

#[test]
fn debug_object_describes_the_value_like_redis() {
    let kiln = TestServer::kiln(DEBUG_ON);
    let redis = TestServer::redis(DEBUG_ON);
    // (Strings over 20 bytes that LZF could shrink are left out: Kiln reports their
    // uncompressed size.)
    let values = [
        "1",
        "9999",
        "10000",
        "-200",
        "3000000000",
        "hello",
        "0123",
        "",
        "abcdefghijklmnopqrstuvwxyz0123456789ABCD",
    ];
    let mut replies = Vec::new();
    for server in std::iter::once(&kiln).chain(redis.iter()) {
        let mut con = server.client();
        let mut lines = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let _: () = con.set(format!("k{i}"), *v).unwrap();
            let line: String = redis::cmd("DEBUG")
                .arg("OBJECT")
                .arg(format!("k{i}"))
                .query(&mut con)
                .unwrap();
            // The address, LRU clock and idle time are the server's own.
            let f: Vec<&str> = line.split(' ').collect();
            assert!(f[0] == "Value" && f[1].starts_with("at:0x"), "{line}");
            assert!(
                f[5].starts_with("lru:") && f[6].starts_with("lru_seconds_idle:"),
                "{line}"
            );
            lines.push(f[2..5].join(" "));
        }
        replies.push(lines);
    }
    assert_eq!(
        replies[0][0],
        "refcount:2147483647 encoding:int serializedlength:2"
    );
    assert_eq!(
        replies[0][5],
        "refcount:1 encoding:embstr serializedlength:6"
    );
    if replies.len() == 2 {
        assert_eq!(replies[0], replies[1]);
    }
}

/// Runs the scripts of `tests/diff/server/debug/` with DEBUG enabled on both servers.
#[test]
fn debug_commands_match_redis() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diff/server/debug");
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty());
    for p in scripts {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        support::run_script_with(&name, &std::fs::read_to_string(&p).unwrap(), DEBUG_ON);
    }
}

/// `CONFIG GET dir` reports the absolute working directory Redis changed into: a `dir`
/// given with `..` in it, or as `.` after CONFIG SET, comes back resolved.
#[test]
fn config_get_dir_is_the_resolved_directory() {
    let base = std::env::temp_dir().join(format!("kiln-dir-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let name = base.file_name().unwrap().to_string_lossy().to_string();
    let indirect = base.join("..").join(&name).to_string_lossy().to_string();
    support::run_script_with(
        "config_dir",
        "CONFIG GET dir\nCONFIG SET dir .\nCONFIG GET dir\n",
        &["--dir", &indirect, "--enable-protected-configs", "yes"],
    );
    let _ = std::fs::remove_dir_all(&base);
}

/// The DEBUG subcommands whose effects are not in their replies: LISTPACK and QUICKLIST
/// print the value's layout on standard output (the log file here), LEAK answers OK, and
/// MALLCTL writes a jemalloc setting and answers the old value, which then reads back.
#[test]
fn debug_structure_dumps_leak_and_mallctl_act() {
    let kiln = TestServer::kiln(DEBUG_ON);
    let mut c = kiln.client();
    let mut raw = kiln.raw();
    assert_eq!(
        raw.cmd(&["RPUSH", "mylist", "first", "second", "3"]),
        ":3\r\n"
    );
    assert_eq!(raw.cmd(&["HSET", "myhash", "field1", "value1"]), ":1\r\n");
    assert_eq!(raw.cmd(&["ZADD", "myzset", "1.5", "member1"]), ":1\r\n");
    assert_eq!(
        raw.cmd(&["DEBUG", "QUICKLIST", "mylist", "2"]),
        "+Quicklist structure printed on stdout\r\n"
    );
    assert_eq!(
        raw.cmd(&["DEBUG", "LISTPACK", "myhash"]),
        "+Listpack structure printed on stdout\r\n"
    );
    assert_eq!(
        raw.cmd(&["DEBUG", "LISTPACK", "myzset"]),
        "+Listpack structure printed on stdout\r\n"
    );
    support::wait_until("the dumps are in the log", || {
        let log = kiln.log_tail(200);
        log.contains("{quicklist mylist} {elements 3}")
            && log.contains("\"second\"")
            && log.contains("field \"field1\" value \"value1\"")
            && log.contains("member \"member1\" score 1.5")
    });

    assert_eq!(raw.cmd(&["DEBUG", "LEAK", "some bytes"]), "+OK\r\n");

    // A 64-bit setting: written, the old value answered, the new one read back.
    let old: i64 = redis::cmd("DEBUG")
        .arg("MALLCTL")
        .arg("arenas.dirty_decay_ms")
        .query(&mut c)
        .unwrap();
    let prev: i64 = redis::cmd("DEBUG")
        .arg("MALLCTL")
        .arg("arenas.dirty_decay_ms")
        .arg(old + 1000)
        .query(&mut c)
        .unwrap();
    assert_eq!(prev, old);
    let now: i64 = redis::cmd("DEBUG")
        .arg("MALLCTL")
        .arg("arenas.dirty_decay_ms")
        .query(&mut c)
        .unwrap();
    assert_eq!(now, old + 1000);
    // Read-only numbers of 64 bits read; narrower ones are EINVAL, as in Redis.
    let allocated: i64 = redis::cmd("DEBUG")
        .arg("MALLCTL")
        .arg("stats.allocated")
        .query(&mut c)
        .unwrap();
    assert!(allocated > 0);
    assert_eq!(
        raw.cmd(&["DEBUG", "MALLCTL", "arenas.narenas"]),
        "-ERR Invalid argument\r\n"
    );
    // Strings: jemalloc's version, and a write to a read-only one keeps it.
    let version: String = redis::cmd("DEBUG")
        .arg("MALLCTL-STR")
        .arg("version")
        .query(&mut c)
        .unwrap();
    assert!(version.starts_with("5."), "{version}");
    let thp: String = redis::cmd("DEBUG")
        .arg("MALLCTL-STR")
        .arg("opt.thp")
        .arg("never")
        .query(&mut c)
        .unwrap();
    let again: String = redis::cmd("DEBUG")
        .arg("MALLCTL-STR")
        .arg("opt.thp")
        .query(&mut c)
        .unwrap();
    assert_eq!(thp, again);
    // A number is not read as a string (Redis would follow it as a pointer).
    assert_eq!(
        raw.cmd(&["DEBUG", "MALLCTL-STR", "stats.allocated"]),
        "-ERR Invalid argument\r\n"
    );
}
