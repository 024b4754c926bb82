//! Function libraries through the persistence hooks (`kiln::functions_hook`), with stand-in
//! hooks in place of the function engine: loads hand each library to the load hook, and
//! every snapshot writes what the list hook returns, where Redis writes libraries; the
//! AOF command base turns them into FUNCTION LOAD. With redis-server installed, Redis
//! 7.0 loads Kiln's file and serves the functions.
//!
//! A test binary of its own: the hooks are process-wide.

mod support;

use std::sync::{Arc, Mutex};

use kiln::config::Config;
use kiln::rdb::{self, Reader, Record};
use kiln::server::Server;
use kiln::snapshot::Snapshot;
use support::{run, TestServer, DEBUG_ON as DEBUG};

/// The stand-in engine's libraries (one registry for the process).
static LIBS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn load(_: &Server, code: &[u8]) -> Result<(), String> {
    let mut libs = LIBS.lock().unwrap();
    if libs.iter().any(|c| c == code) {
        return Err("library already exists".to_string());
    }
    libs.push(code.to_vec());
    Ok(())
}

fn list(_: &Server) -> Vec<Vec<u8>> {
    LIBS.lock().unwrap().clone()
}

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/rdb/redis-7.0-functions.rdb"
);

#[test]
fn libraries_load_through_the_hook_and_every_snapshot_writes_them() {
    kiln::functions_hook::set_hooks(load, list);
    assert!(kiln::functions_hook::hooks_set());
    let file = std::fs::read(FIXTURE).unwrap();
    let s = Arc::new(Server::new(Config::default(), 1));
    let stats = rdb::load(s.rdb_target(), &file[..], rdb::LoadOptions::default()).unwrap();
    assert_eq!((stats.keys, stats.functions), (4, 2));
    let libs = list(&s);
    assert_eq!(libs.len(), 2);
    assert!(libs[1].starts_with(b"#!lua name=mylib\n"));

    // A second load of the same libraries: the hook refuses, the load fails.
    let again = Server::new(Config::default(), 1);
    let e = rdb::load(again.rdb_target(), &file[..], rdb::LoadOptions::default()).unwrap_err();
    assert!(e.msg.contains("library already exists"), "{e}");

    // A snapshot writes the libraries after the AUX fields, before the databases.
    let (snap, ()) = Snapshot::begin(&s, |_| ()).unwrap();
    let mut out = Vec::new();
    snap.write_rdb(&mut out, &[]).unwrap();
    let mut r = Reader::new(&out[..]).unwrap();
    let mut seen = Vec::new();
    let mut keys = 0;
    loop {
        match r.next_record().unwrap() {
            Record::Function(code) => {
                assert_eq!(keys, 0);
                seen.push(code);
            }
            Record::Key { .. } => keys += 1,
            Record::End => break,
            _ => {}
        }
    }
    assert_eq!((seen, keys), (libs.clone(), 4));

    // The AOF base in command form starts with FUNCTION LOAD for each library.
    let mut cmds = Vec::new();
    kiln::aof::commands::rdb_to_commands(&out[..], &mut cmds).unwrap();
    let mut want = Vec::new();
    for code in &libs {
        want.extend_from_slice(
            format!("*3\r\n$8\r\nFUNCTION\r\n$4\r\nLOAD\r\n${}\r\n", code.len()).as_bytes(),
        );
        want.extend_from_slice(code);
        want.extend_from_slice(b"\r\n");
    }
    assert!(cmds.starts_with(&want));

    // Redis 7.0 loads Kiln's file with its libraries.
    let dir = std::env::temp_dir().join(format!("kiln-rdbfn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dump.rdb"), &out).unwrap();
    let d = dir.to_string_lossy().to_string();
    let Some(r) = TestServer::redis(&["--dir", &d, DEBUG[0], DEBUG[1]]) else {
        return;
    };
    let mut c = r.client();
    assert_eq!(run(&mut c, "FCALL f1 0"), redis::Value::Int(1));
    assert_eq!(
        run(&mut c, "FCALL_RO f2 1 foo"),
        redis::Value::BulkString(b"bar".to_vec())
    );
    assert_eq!(run(&mut c, "DBSIZE"), redis::Value::Int(3));
}
