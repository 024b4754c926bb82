//! Function libraries persist: in RDB files both ways between Kiln and Redis 7.0, through
//! FUNCTION DUMP / RESTORE both ways, DEBUG RELOAD, a full sync, and the AOF (its
//! commands and its rewritten base).

mod support;

use support::{wait_until, TestServer, DEBUG_ON as DEBUG};

/// A Redis 7.0.15 dump with two libraries (`f1` returns 1, `f2` reads a key) and keys.
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/rdb/redis-7.0-functions.rdb"
);

const LIB: &str =
    "#!lua name=kilnlib\nredis.register_function('kf', function(keys, args) return 'kiln' end)";

fn dir_with(file: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!(
        "kiln-rdbfn-{}-{}",
        std::process::id(),
        support::free_port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dump.rdb"), file).unwrap();
    dir.to_string_lossy().into_owned()
}

#[test]
fn libraries_cross_between_kiln_and_redis_in_rdb_files_and_dump_payloads() {
    // Kiln loads Redis's file: keys and libraries.
    let d = dir_with(&std::fs::read(FIXTURE).unwrap());
    let kiln = TestServer::kiln(&["--dir", &d, DEBUG[0], DEBUG[1]]);
    let mut k = kiln.raw();
    assert_eq!(k.cmd(&["FCALL", "f1", "0"]), ":1\r\n");
    assert_eq!(k.cmd(&["FCALL_RO", "f2", "1", "foo"]), "$3\r\nbar\r\n");
    // DEBUG RELOAD keeps them (saved, emptied, loaded again).
    assert_eq!(k.cmd(&["FUNCTION", "LOAD", LIB]), "$7\r\nkilnlib\r\n");
    assert_eq!(k.cmd(&["DEBUG", "RELOAD"]), "+OK\r\n");
    assert_eq!(k.cmd(&["FCALL", "kf", "0"]), "$4\r\nkiln\r\n");
    assert_eq!(k.cmd(&["FCALL", "f1", "0"]), ":1\r\n");
    assert_eq!(k.cmd(&["SAVE"]), "+OK\r\n");

    let Some(redis) = TestServer::redis(DEBUG) else {
        return;
    };
    let mut r = redis.raw();
    // Redis loads Kiln's file.
    let kiln_file = std::fs::read(std::path::Path::new(&d).join("dump.rdb")).unwrap();
    let d2 = dir_with(&kiln_file);
    let redis2 = TestServer::redis(&["--dir", &d2, DEBUG[0], DEBUG[1]]).unwrap();
    let mut r2 = redis2.raw();
    assert_eq!(r2.cmd(&["FCALL", "kf", "0"]), "$4\r\nkiln\r\n");
    assert_eq!(r2.cmd(&["FCALL_RO", "f2", "1", "foo"]), "$3\r\nbar\r\n");

    // FUNCTION DUMP from Kiln restores in Redis, and Redis's in Kiln.
    let payload = dump(&mut k);
    r.send_cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload]);
    assert_eq!(r.read_reply().unwrap(), b"+OK\r\n");
    assert_eq!(r.cmd(&["FCALL", "kf", "0"]), "$4\r\nkiln\r\n");
    assert_eq!(
        r.cmd(&[
            "FUNCTION",
            "LOAD",
            "#!lua name=redislib\nredis.register_function('rf', function() return 'redis' end)"
        ]),
        "$8\r\nredislib\r\n"
    );
    let payload = dump(&mut r);
    assert_eq!(k.cmd(&["FUNCTION", "FLUSH"]), "+OK\r\n");
    k.send_cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload]);
    assert_eq!(k.read_reply().unwrap(), b"+OK\r\n");
    assert_eq!(k.cmd(&["FCALL", "rf", "0"]), "$5\r\nredis\r\n");
    // The policies.
    k.send_cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload]);
    let e = String::from_utf8(k.read_reply().unwrap()).unwrap();
    assert!(
        e.starts_with("-ERR Library ") && e.ends_with(" already exists\r\n"),
        "{e}"
    );
    k.send_cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload, b"REPLACE"]);
    assert_eq!(k.read_reply().unwrap(), b"+OK\r\n");
    assert_eq!(k.cmd(&["FUNCTION", "DELETE", "redislib"]), "+OK\r\n");
    k.send_cmd(&[&b"FUNCTION"[..], b"RESTORE", &payload, b"FLUSH"]);
    assert_eq!(k.read_reply().unwrap(), b"+OK\r\n");
    assert_eq!(k.cmd(&["FCALL", "rf", "0"]), "$5\r\nredis\r\n");
    assert_eq!(
        k.cmd(&["FUNCTION", "RESTORE", "garbage"]),
        "-ERR DUMP payload version or checksum are wrong\r\n"
    );
}

fn dump(c: &mut support::Raw) -> Vec<u8> {
    c.send_cmd(&["FUNCTION", "DUMP"]);
    let reply = c.read_reply().unwrap();
    let (v, _) = kiln_resp::decode(&reply).unwrap();
    match v {
        kiln_resp::Value::Bulk(b) => b,
        other => panic!("FUNCTION DUMP replied {other:?}"),
    }
}

/// Stops a server the way an operator would (SHUTDOWN: the AOF is flushed).
fn shut_down(s: &mut TestServer) {
    s.raw().send_cmd(&["SHUTDOWN"]);
    assert!(
        s.wait_exit(std::time::Duration::from_secs(30)).is_some(),
        "the server did not exit"
    );
}

#[test]
fn libraries_reach_a_replica_and_survive_the_aof() {
    let d = dir_with(b"");
    std::fs::remove_file(std::path::Path::new(&d).join("dump.rdb")).unwrap();
    let args = ["--appendonly", "yes", "--dir", &d];
    let mut primary = TestServer::kiln(&args);
    let mut p = primary.raw();
    assert_eq!(p.cmd(&["FUNCTION", "LOAD", LIB]), "$7\r\nkilnlib\r\n");
    // A full sync carries the library; FUNCTION DELETE / LOAD follow on the stream.
    let replica = TestServer::kiln(&[]);
    let mut r = replica.raw();
    assert_eq!(
        r.cmd(&[
            "FUNCTION",
            "LOAD",
            "#!lua name=stale\nredis.register_function('stalef', function() return 0 end)"
        ]),
        "$5\r\nstale\r\n"
    );
    assert_eq!(
        r.cmd(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]),
        "+OK\r\n"
    );
    // On the read-only replica a function that may write is refused, but found.
    wait_until("the library to reach the replica", || {
        r.cmd(&["FCALL", "kf", "0"]) == "-READONLY You can't write against a read only replica.\r\n"
    });
    // The replica's own library went with its old dataset.
    assert_eq!(
        r.cmd(&["FCALL", "stalef", "0"]),
        "-ERR Function not found\r\n"
    );
    assert_eq!(p.cmd(&["FUNCTION", "DELETE", "kilnlib"]), "+OK\r\n");
    wait_until("the delete to reach the replica", || {
        r.cmd(&["FCALL", "kf", "0"]) == "-ERR Function not found\r\n"
    });
    assert_eq!(p.cmd(&["FUNCTION", "LOAD", LIB]), "$7\r\nkilnlib\r\n");

    // The AOF replays FUNCTION LOAD; after a rewrite, its base carries the library.
    shut_down(&mut primary);
    let mut restarted = TestServer::kiln(&args);
    let mut p = restarted.raw();
    assert_eq!(p.cmd(&["FCALL", "kf", "0"]), "$4\r\nkiln\r\n");
    assert_eq!(
        p.cmd(&["BGREWRITEAOF"]),
        "+Background append only file rewriting started\r\n"
    );
    p.wait_info("persistence", "aof_rewrite_in_progress", "0");
    shut_down(&mut restarted);
    let again = TestServer::kiln(&args);
    assert_eq!(again.raw().cmd(&["FCALL", "kf", "0"]), "$4\r\nkiln\r\n");
    let _ = std::fs::remove_dir_all(&d);
}
