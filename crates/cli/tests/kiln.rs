//! kiln-cli against kiln-server, with the commands every Kiln build has (PING, ECHO, SET,
//! GET, DEL, EXISTS, SELECT, DBSIZE, HELLO). Where redis-cli is installed, it runs against
//! the same kiln-server and both clients must print the same bytes.

mod support;

use std::process::Command;

use rexpect::session::spawn_command;
use support::{kiln, Server};

use support::same_if_possible;

#[test]
fn one_shot_commands_print_like_redis_cli() {
    let k = Server::kiln(&[]);
    let p = k.p();
    assert_eq!(kiln(&["-p", &p, "ping"], None).out(), "PONG\n");
    assert_eq!(
        kiln(&["-p", &p, "--no-raw", "set", "a", "1"], None).out(),
        "OK\n"
    );
    assert_eq!(
        kiln(&["-p", &p, "--no-raw", "get", "a"], None).out(),
        "\"1\"\n"
    );
    assert_eq!(
        kiln(&["-p", &p, "--no-raw", "get", "nope"], None).out(),
        "(nil)\n"
    );
    assert_eq!(
        kiln(&["-p", &p, "--no-raw", "exists", "a", "nope"], None).out(),
        "(integer) 1\n"
    );
    assert_eq!(
        kiln(&["-p", &p, "--no-raw", "del", "gone", "nope"], None).out(),
        "(integer) 0\n"
    );
    for format in [
        &[][..],
        &["--no-raw"],
        &["--csv"],
        &["--json"],
        &["-3", "--no-raw"],
    ] {
        for cmd in [
            &["echo", "tab\there \u{1} \"quoted\" é"][..],
            &["get", "a"],
            &["get", "nope"],
            &["set"],
            &["exists", "a", "nope"],
            &["dbsize"],
            &["nosuchcommand", "x"],
        ] {
            let mut args = vec!["-p", p.as_str()];
            args.extend_from_slice(format);
            args.extend_from_slice(cmd);
            same_if_possible(&args, None);
        }
    }
}

#[test]
fn databases_are_selected_with_n() {
    let k = Server::kiln(&[]);
    let p = k.p();
    kiln(&["-p", &p, "-n", "4", "set", "k", "in-four"], None);
    assert_eq!(
        kiln(&["-p", &p, "-n", "4", "get", "k"], None).out(),
        "in-four\n"
    );
    assert_eq!(kiln(&["-p", &p, "get", "k"], None).out(), "\n");
    assert_eq!(kiln(&["-p", &p, "-n", "4", "dbsize"], None).out(), "1\n");
}

#[test]
fn piped_commands_and_stdin_arguments_work() {
    let k = Server::kiln(&[]);
    let p = k.p();
    let run = same_if_possible(&["-p", &p, "-x", "set", "blob"], Some(b"from\nstdin"));
    assert_eq!(run.out(), "OK\n");
    let run = same_if_possible(
        &["-p", &p, "--no-raw"],
        Some(b"get blob\nselect 1\nset x \"a b\"\nget x\nexists x blob\nbad \"quote\n"),
    );
    assert_eq!(
        run.out(),
        "\"from\\nstdin\"\nOK\nOK\n\"a b\"\n(integer) 1\nInvalid argument(s)\n"
    );
}

#[test]
fn pipe_mode_mass_inserts_into_kiln() {
    let k = Server::kiln(&[]);
    let p = k.p();
    let mut input = Vec::new();
    for i in 0..5000 {
        input.extend_from_slice(format!("SET key{i} {i}\r\n").as_bytes());
    }
    let run = kiln(&["-p", &p, "--pipe"], Some(&input));
    assert_eq!(run.code, Some(0), "{}", run.err());
    assert!(
        run.out().ends_with("errors: 0, replies: 5000\n"),
        "{}",
        run.out()
    );
    assert_eq!(kiln(&["-p", &p, "dbsize"], None).out(), "5000\n");
    assert_eq!(kiln(&["-p", &p, "get", "key4999"], None).out(), "4999\n");
}

#[test]
fn the_interactive_prompt_works_with_kiln() {
    let k = Server::kiln(&[]);
    let dir = support::scratch("kiln-interactive");
    let mut cmd = Command::new(support::kiln_cli());
    cmd.args(["-p", &k.p()])
        .env("TERM", "xterm")
        .env("KILNCLI_HISTFILE", dir.join("h"))
        .env("KILNCLI_RCFILE", "/dev/null");
    let mut s = spawn_command(cmd, Some(30_000)).unwrap();
    let prompt = format!("127.0.0.1:{}> ", k.port);
    s.exp_string(&prompt).unwrap();
    s.send("set greeting hi\r").unwrap();
    s.flush().unwrap();
    s.exp_string("OK\r\n").unwrap();
    s.send("select 1\r").unwrap();
    s.flush().unwrap();
    s.exp_string(&format!("127.0.0.1:{}[1]> ", k.port)).unwrap();
    s.send("select 0\r").unwrap();
    s.flush().unwrap();
    s.exp_string("OK\r\n").unwrap();
    s.exp_string(&prompt).unwrap();
    s.send("get greeting\r").unwrap();
    s.flush().unwrap();
    s.exp_string("\"hi\"\r\n").unwrap();
    s.send("help get\r").unwrap();
    s.flush().unwrap();
    s.exp_string("\x1b[1mGET\x1b[0m \x1b[90mkey\x1b[0m")
        .unwrap();
    s.send("quit\r").unwrap();
    s.flush().unwrap();
    s.exp_eof().unwrap();
}

#[test]
fn eval_runs_scripts_on_kiln_like_redis_cli() {
    let k = Server::kiln(&[]);
    let p = k.p();
    let dir = support::eval_scripts("kiln-eval");
    let split = dir.join("split.lua").to_string_lossy().into_owned();
    for format in [&[][..], &["--no-raw"]] {
        for rest in support::EVAL_SPLITS {
            let mut args = vec!["-p", p.as_str()];
            args.extend_from_slice(format);
            args.extend_from_slice(&["--eval", &split]);
            args.extend_from_slice(rest);
            same_if_possible(&args, None);
        }
    }
    let run = kiln(
        &["-p", &p, "--no-raw", "--eval", &split, "a", "b", ",", "c"],
        None,
    );
    assert_eq!(
        run.out(),
        "1) (integer) 2\n2) (integer) 1\n3) \"a|b\"\n4) \"c\"\n"
    );
    for file in ["setget.lua", "kinds.lua", "error.lua", "empty.lua"] {
        let path = dir.join(file).to_string_lossy().into_owned();
        for format in [&[][..], &["--no-raw"], &["--csv"]] {
            let mut args = vec!["-p", p.as_str()];
            args.extend_from_slice(format);
            args.extend_from_slice(&["--eval", &path, "key", ",", "value"]);
            same_if_possible(&args, None);
        }
    }
    let error = dir.join("error.lua").to_string_lossy().into_owned();
    let run = kiln(&["-p", &p, "--no-raw", "--eval", &error], None);
    assert_eq!(run.out(), "(error) MY failure\n");
    assert_eq!(run.code, Some(0));
    let run = same_if_possible(&["-p", &p, "--eval", "/nonexistent/script.lua"], None);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.err(),
        "Can't open file '/nonexistent/script.lua': No such file or directory\n"
    );
}

#[test]
fn ldb_prints_kilns_refusal_and_runs_nothing() {
    let k = Server::kiln(&[]);
    let p = k.p();
    let dir = support::eval_scripts("kiln-ldb");
    let setget = dir.join("setget.lua").to_string_lossy().into_owned();
    let refusal = String::from_utf8_lossy(&k.raw("SCRIPT DEBUG YES")).into_owned();
    let refusal = refusal
        .strip_prefix('-')
        .and_then(|r| r.strip_suffix("\r\n"))
        .expect("SCRIPT DEBUG YES is an error on Kiln")
        .to_string();
    for mode in ["--ldb", "--ldb-sync-mode"] {
        let run = kiln(&["-p", &p, mode, "--eval", &setget, "k", ",", "v"], None);
        assert_eq!(run.out(), format!("(error) {refusal}\n"));
        assert_eq!(run.err(), "");
        assert_eq!(run.code, Some(1));
    }
    assert_eq!(kiln(&["-p", &p, "exists", "k"], None).out(), "0\n");
}
