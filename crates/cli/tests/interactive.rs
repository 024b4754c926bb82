//! The interactive mode, driven in a pseudo-terminal: prompt, hints, completion, history,
//! HELP, subscribe and MONITOR streams stopped with Ctrl-C, reconnection.
//!
//! The expect timeout only bounds how long a broken build can hang a test; nothing here
//! measures speed.

mod support;

use std::path::Path;
use std::process::Command;

use rexpect::session::{spawn_command, PtySession};
use support::Server;

/// Hints are drawn in dark grey right after the text typed.
const GREY: &str = "\x1b[0;90;49m";

fn cli(port: u16, history: &Path, extra: &[&str]) -> PtySession {
    let mut cmd = Command::new(support::kiln_cli());
    cmd.args(["-p", &port.to_string()])
        .args(extra)
        .env("TERM", "xterm")
        .env("KILNCLI_HISTFILE", history)
        .env("KILNCLI_RCFILE", "/dev/null")
        .env_remove("KILNCLI_AUTH")
        .env_remove("REDISCLI_AUTH");
    spawn_command(cmd, Some(30_000)).unwrap()
}

fn prompt(port: u16) -> String {
    format!("127.0.0.1:{port}> ")
}

/// Types a line and presses Enter.
fn enter(p: &mut PtySession, line: &str) {
    p.send(line).unwrap();
    p.send("\r").unwrap();
    p.flush().unwrap();
}

fn type_text(p: &mut PtySession, text: &str) {
    p.send(text).unwrap();
    p.flush().unwrap();
}

#[test]
fn the_prompt_shows_the_server_then_the_database_and_transactions() {
    let Some(r) = Server::redis(&[]) else { return };
    let dir = support::scratch("prompt");
    let mut p = cli(r.port, &dir.join("h"), &[]);
    p.exp_string(&prompt(r.port)).unwrap();
    enter(&mut p, "set greeting hello");
    p.exp_string("OK\r\n").unwrap();
    enter(&mut p, "get greeting");
    p.exp_string("\"hello\"\r\n").unwrap();
    enter(&mut p, "select 2");
    p.exp_string(&format!("127.0.0.1:{}[2]> ", r.port)).unwrap();
    enter(&mut p, "multi");
    p.exp_string(&format!("127.0.0.1:{}[2](TX)> ", r.port))
        .unwrap();
    enter(&mut p, "incr n");
    p.exp_string("QUEUED\r\n").unwrap();
    enter(&mut p, "exec");
    p.exp_string("1) (integer) 1\r\n").unwrap();
    p.exp_string(&format!("127.0.0.1:{}[2]> ", r.port)).unwrap();
    enter(&mut p, "lrange nolist 0 -1");
    p.exp_string("(empty array)\r\n").unwrap();
    enter(&mut p, "set");
    p.exp_string("(error) ERR wrong number of arguments for 'set' command\r\n")
        .unwrap();
    enter(&mut p, "quit");
    p.exp_eof().unwrap();
}

#[test]
fn hints_show_the_arguments_still_to_type() {
    let Some(r) = Server::redis(&[]) else { return };
    let dir = support::scratch("hints");
    let mut p = cli(r.port, &dir.join("h"), &[]);
    p.exp_string(&prompt(r.port)).unwrap();
    type_text(&mut p, "get");
    p.exp_string(&format!("get{GREY} key")).unwrap();
    type_text(&mut p, " ");
    p.exp_string(&format!("get {GREY}key")).unwrap();
    type_text(&mut p, "k\r");
    p.exp_string("(nil)").unwrap();
    type_text(&mut p, "hset h");
    p.exp_string(&format!("hset h{GREY} field value [field value ...]"))
        .unwrap();
    // The hints can be turned off.
    type_text(&mut p, "\x15"); // Ctrl-U: clear the line
    enter(&mut p, ":set nohints");
    p.exp_string(&prompt(r.port)).unwrap();
    enter(&mut p, "lpush");
    let typed = p.exp_string("(error)").unwrap();
    assert!(!typed.contains(GREY), "{typed:?}");
    p.exp_string(&prompt(r.port)).unwrap();
    enter(&mut p, ":set hints");
    p.exp_string(":set hints").unwrap();
    p.exp_string(&prompt(r.port)).unwrap();
    enter(&mut p, ":set bogus");
    p.exp_string("unknown kiln-cli preference 'bogus'").unwrap();
}

#[test]
fn tab_completes_command_names_and_help_topics() {
    let Some(r) = Server::redis(&[]) else { return };
    let dir = support::scratch("complete");
    let mut p = cli(r.port, &dir.join("h"), &[]);
    p.exp_string(&prompt(r.port)).unwrap();
    type_text(&mut p, "hgeta\t");
    p.exp_string("HGETALL").unwrap();
    type_text(&mut p, " nohash\r");
    p.exp_string("(empty array)").unwrap();
    type_text(&mut p, "help @hyper\t");
    p.exp_string("help @hyperloglog").unwrap();
    type_text(&mut p, "\r");
    p.exp_string("PFADD").unwrap();
}

#[test]
fn help_describes_commands_and_groups() {
    let Some(r) = Server::redis(&[]) else { return };
    let dir = support::scratch("help");
    let mut p = cli(r.port, &dir.join("h"), &[]);
    p.exp_string(&prompt(r.port)).unwrap();
    enter(&mut p, "help get");
    p.exp_string("\x1b[1mGET\x1b[0m \x1b[90mkey\x1b[0m")
        .unwrap();
    p.exp_string("summary:\x1b[0m Get the value of a key")
        .unwrap();
    p.exp_string("group:\x1b[0m string").unwrap();
    enter(&mut p, "HELP @sorted-set");
    p.exp_string("ZRANGEBYSCORE").unwrap();
    enter(&mut p, "help");
    p.exp_string("\"help @<group>\" to get a list of commands in <group>")
        .unwrap();
}

#[test]
fn history_persists_across_sessions_without_secrets() {
    let Some(r) = Server::redis(&[]) else { return };
    let dir = support::scratch("history");
    let hist = dir.join("history");
    let mut p = cli(r.port, &hist, &[]);
    p.exp_string(&prompt(r.port)).unwrap();
    enter(&mut p, "set remembered 42");
    p.exp_string("OK").unwrap();
    enter(&mut p, "auth not-a-real-password");
    p.exp_string("(error)").unwrap();
    enter(&mut p, "config set requirepass \"\"");
    p.exp_string("OK").unwrap();
    enter(&mut p, "get remembered");
    p.exp_string("\"42\"").unwrap();
    enter(&mut p, "quit");
    p.exp_eof().unwrap();
    let saved = std::fs::read_to_string(&hist).unwrap();
    assert_eq!(saved, "set remembered 42\nget remembered\nquit\n");

    // A new session recalls it with the arrow keys.
    let mut p = cli(r.port, &hist, &[]);
    p.exp_string(&prompt(r.port)).unwrap();
    type_text(&mut p, "\x1b[A\x1b[A"); // Up twice: "get remembered"
    p.exp_string("get remembered").unwrap();
    type_text(&mut p, "\r");
    p.exp_string("\"42\"").unwrap();
}

#[test]
fn subscribe_streams_messages_until_ctrl_c() {
    let Some(r) = Server::redis(&[]) else { return };
    let dir = support::scratch("subscribe");
    let mut p = cli(r.port, &dir.join("h"), &["-n", "3"]);
    let db_prompt = format!("127.0.0.1:{}[3]> ", r.port);
    p.exp_string(&db_prompt).unwrap();
    enter(&mut p, "subscribe news");
    p.exp_string("Reading messages... (press Ctrl-C to quit)")
        .unwrap();
    p.exp_string("3) (integer) 1").unwrap();
    support::wait_until("the subscription", || {
        String::from_utf8_lossy(&r.raw("PUBSUB NUMSUB news")).contains(":1\r\n")
    });
    r.raw("PUBLISH news flash");
    p.exp_string("1) \"message\"\r\n2) \"news\"\r\n3) \"flash\"")
        .unwrap();
    p.send_control('c').unwrap();
    // Back at the prompt, on a fresh connection to the same database.
    p.exp_string(&db_prompt).unwrap();
    enter(&mut p, "ping");
    p.exp_string("PONG").unwrap();
    support::wait_until("the old subscription to go away", || {
        String::from_utf8_lossy(&r.raw("PUBSUB NUMSUB news")).contains(":0\r\n")
    });
}

#[test]
fn monitor_streams_until_ctrl_c() {
    let Some(r) = Server::redis(&[]) else { return };
    let dir = support::scratch("monitor");
    let mut p = cli(r.port, &dir.join("h"), &[]);
    p.exp_string(&prompt(r.port)).unwrap();
    enter(&mut p, "monitor");
    p.exp_string("OK\r\n").unwrap();
    support::wait_until("the monitor", || {
        String::from_utf8_lossy(&r.raw("CLIENT LIST")).contains("cmd=monitor")
    });
    r.raw("SET observed 1");
    p.exp_string("\"SET\" \"observed\" \"1\"").unwrap();
    p.send_control('c').unwrap();
    p.exp_string(&prompt(r.port)).unwrap();
    enter(&mut p, "get observed");
    p.exp_string("\"1\"").unwrap();
}

#[test]
fn ctrl_c_and_ctrl_d_at_the_prompt_end_the_session() {
    let Some(r) = Server::redis(&[]) else { return };
    let dir = support::scratch("exit");
    let mut p = cli(r.port, &dir.join("h"), &[]);
    p.exp_string(&prompt(r.port)).unwrap();
    p.send_control('c').unwrap();
    p.exp_eof().unwrap();
    let mut p = cli(r.port, &dir.join("h"), &[]);
    p.exp_string(&prompt(r.port)).unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn the_client_reconnects_after_the_server_restarts() {
    let Some(mut r) = Server::redis(&[]) else {
        return;
    };
    let port = r.port;
    let dir = support::scratch("restart");
    let mut p = cli(port, &dir.join("h"), &[]);
    p.exp_string(&prompt(port)).unwrap();
    enter(&mut p, "set before restart");
    p.exp_string("OK").unwrap();
    r.stop();
    enter(&mut p, "ping");
    p.exp_string(&format!(
        "Could not connect to Redis at 127.0.0.1:{port}: Connection refused"
    ))
    .unwrap();
    p.exp_string("not connected> ").unwrap();
    let _r = Server::redis_on(port, &[]).unwrap();
    enter(&mut p, "ping");
    p.exp_string("PONG").unwrap();
    p.exp_string(&prompt(port)).unwrap();
    // A restart between two commands is noticed before the next command is sent.
    drop(_r);
    let _r = Server::redis_on(port, &[]).unwrap();
    enter(&mut p, "echo still-here");
    p.exp_string("\"still-here\"").unwrap();
}

#[test]
fn connect_switches_to_another_server() {
    let Some(a) = Server::redis(&[]) else { return };
    let b = Server::redis(&[]).unwrap();
    b.raw("SET where b");
    let dir = support::scratch("connect");
    let mut p = cli(a.port, &dir.join("h"), &[]);
    p.exp_string(&prompt(a.port)).unwrap();
    enter(&mut p, &format!("connect 127.0.0.1 {}", b.port));
    p.exp_string(&prompt(b.port)).unwrap();
    enter(&mut p, "get where");
    p.exp_string("\"b\"").unwrap();
}

#[test]
fn slow_commands_report_their_duration() {
    let Some(r) = Server::redis(&[]) else { return };
    let dir = support::scratch("slow");
    let mut p = cli(r.port, &dir.join("h"), &[]);
    p.exp_string(&prompt(r.port)).unwrap();
    enter(&mut p, "debug sleep 0.6");
    p.exp_string("OK\r\n").unwrap();
    p.exp_regex(r"\(0\.[6-9]\ds\)|\([1-9]\.\d\ds\)").unwrap();
}

#[test]
fn a_repeat_count_before_the_command_runs_it_that_many_times() {
    let Some(r) = Server::redis(&[]) else { return };
    let dir = support::scratch("repeat");
    let mut p = cli(r.port, &dir.join("h"), &[]);
    p.exp_string(&prompt(r.port)).unwrap();
    enter(&mut p, "3 incr counter");
    p.exp_string("(integer) 1\r\n(integer) 2\r\n(integer) 3\r\n")
        .unwrap();
    enter(&mut p, "0 incr counter");
    p.exp_string("Invalid kiln-cli repeat command option value.")
        .unwrap();
    enter(&mut p, "get \"unbalanced");
    p.exp_string("Invalid argument(s)").unwrap();
}
