//! Starting kiln-server: flags, config files, errors, signals.

mod support;

use std::process::Command;
use std::time::Duration;
use support::TestServer;

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln-server"))
}

#[test]
fn version_and_help_exit_zero() {
    for flag in ["--version", "-v"] {
        let out = kiln().arg(flag).output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("v="));
    }
    let out = kiln().arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
}

#[test]
fn an_unknown_option_is_an_error_naming_it() {
    let out = kiln().args(["--no-such-option", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-option"), "{err}");
}

#[test]
fn a_bad_value_is_an_error_naming_the_option() {
    let out = kiln().args(["--port", "notaport"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port notaport"), "{err}");
}

#[test]
fn a_missing_config_file_is_an_error() {
    let out = kiln().arg("/nonexistent/kiln.conf").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn config_file_is_read_and_the_command_line_wins() {
    let dir = std::env::temp_dir().join(format!("kiln-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("kiln.conf");
    std::fs::write(
        &conf,
        "# comment\nport 1\ndatabases 4\nrequirepass \"from file\"\n",
    )
    .unwrap();
    let port = support::free_port();
    let mut child = kiln()
        .arg(&conf)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut raw = None;
    for _ in 0..200 {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            raw = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(raw);
    let mut c = support::Raw::connect(port);
    assert_eq!(c.cmd(&["GET", "x"]), "-NOAUTH Authentication required.\r\n");
    assert_eq!(c.cmd(&["AUTH", "from file"]), "+OK\r\n");
    assert_eq!(c.cmd(&["SELECT", "3"]), "+OK\r\n");
    assert_eq!(c.cmd(&["SELECT", "4"]), "-ERR DB index is out of range\r\n");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_and_sigint_shut_down_cleanly() {
    for sig in ["TERM", "INT"] {
        let mut s = TestServer::kiln(&[]);
        let mut c = s.raw();
        assert_eq!(c.cmd(&["PING"]), "+PONG\r\n");
        s.signal(sig);
        let status = s.wait_exit(Duration::from_secs(10)).expect("server exits");
        assert!(status.success(), "{sig}: {status:?}");
        assert!(c.is_closed());
    }
}

#[test]
fn threads_option_is_accepted() {
    let s = TestServer::kiln(&["--threads", "3"]);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn idle_clients_are_closed_after_timeout_seconds() {
    let s = TestServer::kiln(&["--timeout", "1"]);
    let mut idle = s.raw();
    assert_eq!(idle.cmd(&["PING"]), "+PONG\r\n");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(idle.is_closed());
    let mut fresh = s.raw();
    assert_eq!(fresh.cmd(&["PING"]), "+PONG\r\n");
}
