//! One-shot and piped modes, compared byte for byte with redis-cli: both clients talk to
//! the same redis-server and must print the same thing, in every output format.

mod support;

use support::{eval_scripts, kiln, redis_cli, same, Server, EVAL_SCRIPTS, EVAL_SPLITS};

/// Loads a few values of every kind.
fn seed(r: &Server) {
    let p = r.p();
    let run = |args: &[&str]| {
        let mut a = vec!["-p", p.as_str()];
        a.extend_from_slice(args);
        redis_cli(&a, None);
    };
    run(&["rpush", "list", "a", "b", "c"]);
    run(&["hset", "hash", "f1", "v1", "f2", "v2"]);
    run(&["sadd", "set", "x"]);
    run(&["zadd", "zset", "1.5", "m"]);
    run(&["set", "bin", "a\tb\u{1}\"q\"\\ é"]);
}

/// Commands whose replies cover every reply type, nesting and quoting case.
const COMMANDS: &[&[&str]] = &[
    &["ping"],
    &["get", "bin"],
    &["get", "missing"],
    &["lrange", "list", "0", "-1"],
    &["lrange", "missing", "0", "-1"],
    &["hgetall", "hash"],
    &["smembers", "set"],
    &["zrange", "zset", "0", "-1", "withscores"],
    &["zscore", "zset", "m"],
    &["incr", "list"],
    &["set"],
    &["exists", "list", "hash", "nope"],
    &["config", "get", "maxmemory-policy"],
    &[
        "eval",
        "return {1,{2,{3,'x'},{}},'y',{'a','b','c','d','e','f','g','h','i','j','k'}}",
        "0",
    ],
    &["eval", "return redis.error_reply('MY failure')", "0"],
    &["debug", "protocol", "map"],
    &["debug", "protocol", "set"],
    &["debug", "protocol", "double"],
    &["debug", "protocol", "true"],
    &["debug", "protocol", "false"],
    &["debug", "protocol", "null"],
    &["debug", "protocol", "verbatim"],
    &["command", "docs", "get"],
    &["info", "keyspace"],
    &["client", "list", "id", "999999"],
    &["mget", "bin", "missing", "list"],
];

fn compare_all(format: &[&str]) {
    let Some(r) = Server::redis(&[]) else { return };
    seed(&r);
    let p = r.p();
    for cmd in COMMANDS {
        let mut args = vec!["-p", p.as_str()];
        args.extend_from_slice(format);
        args.extend_from_slice(cmd);
        same(&args, None);
    }
}

#[test]
fn the_terminal_format_matches_redis_cli() {
    compare_all(&["--no-raw"]);
}

#[test]
fn the_terminal_format_matches_redis_cli_in_resp3() {
    compare_all(&["--no-raw", "-3"]);
}

#[test]
fn raw_output_is_the_default_without_a_terminal_and_matches_redis_cli() {
    compare_all(&[]);
    compare_all(&["-3"]);
}

#[test]
fn csv_output_matches_redis_cli() {
    compare_all(&["--csv"]);
    compare_all(&["--csv", "-3"]);
}

#[test]
fn json_output_matches_redis_cli() {
    compare_all(&["--json"]);
    compare_all(&["--json", "-2"]);
}

#[test]
fn terminal_output_looks_like_redis_cli_documents_it() {
    let Some(r) = Server::redis(&[]) else { return };
    seed(&r);
    let p = r.p();
    let out = kiln(&["-p", &p, "--no-raw", "lrange", "list", "0", "-1"], None).out();
    assert_eq!(out, "1) \"a\"\n2) \"b\"\n3) \"c\"\n");
    let out = kiln(&["-p", &p, "--no-raw", "incr", "counter"], None).out();
    assert_eq!(out, "(integer) 1\n");
    let out = kiln(&["-p", &p, "--no-raw", "get", "nope"], None).out();
    assert_eq!(out, "(nil)\n");
    let out = kiln(&["-p", &p, "--no-raw", "-3", "hgetall", "hash"], None).out();
    assert_eq!(out, "1# \"f1\" => \"v1\"\n2# \"f2\" => \"v2\"\n");
}

#[test]
fn delimiters_repeat_and_interval_match_redis_cli() {
    let Some(r) = Server::redis(&[]) else { return };
    seed(&r);
    let p = r.p();
    same(&["-p", &p, "-d", ",", "lrange", "list", "0", "-1"], None);
    same(
        &[
            "-p", &p, "-D", "<end>", "-d", "|", "lrange", "list", "0", "-1",
        ],
        None,
    );
    same(&["-p", &p, "-r", "3", "ping"], None);
    same(
        &["-p", &p, "-r", "2", "-i", "0.05", "--no-raw", "echo", "hi"],
        None,
    );
    same(&["-p", &p, "-r", "0", "ping"], None);
}

#[test]
fn the_last_argument_can_come_from_stdin() {
    let Some(r) = Server::redis(&[]) else { return };
    let p = r.p();
    let data = b"line one\nline \x00two\n";
    same(&["-p", &p, "-x", "set", "fromstdin"], Some(data));
    same(&["-p", &p, "--no-raw", "get", "fromstdin"], None);
    same(&["-p", &p, "-X", "TAG", "set", "TAG", "v"], Some(data));
    same(&["-p", &p, "-X", "TAG", "set", "nomatch", "v"], Some(data));
    same(&["-p", &p, "--no-raw", "get", "TAG"], None);
}

#[test]
fn quoted_input_matches_redis_cli() {
    let Some(r) = Server::redis(&[]) else { return };
    let p = r.p();
    same(
        &["-p", &p, "--quoted-input", "set", r#""a\x00b""#, r#""v\n""#],
        None,
    );
    same(
        &["-p", &p, "--no-raw", "--quoted-input", "get", r#""a\x00b""#],
        None,
    );
    same(
        &["-p", &p, "--quoted-input", "get", r#""unterminated"#],
        None,
    );
}

#[test]
fn commands_piped_on_stdin_run_one_per_line() {
    let Some(r) = Server::redis(&[]) else { return };
    let p = r.p();
    let script = b"set a 1\nget a\n\nget \"unbalanced\nincr a\n   \nselect 2\nget a\n3 incr x\nlrange nolist 0 -1\nset\nset b \"x y\"\r\nget b\r\nhelp get\nquit\nget a\n";
    for format in [&[][..], &["--no-raw"], &["--csv"], &["--json"]] {
        let mut args = vec!["-p", p.as_str()];
        args.extend_from_slice(format);
        redis_cli(&["-p", &p, "flushall"], None);
        let r_out = redis_cli(&args, Some(script));
        redis_cli(&["-p", &p, "flushall"], None);
        let k_out = kiln(&args, Some(script));
        assert_eq!(k_out.out(), r_out.out(), "{format:?}");
        assert_eq!(k_out.code, Some(0));
    }
}

#[test]
fn error_replies_and_exit_statuses_match_redis_cli() {
    let Some(r) = Server::redis(&[]) else { return };
    let p = r.p();
    same(&["-p", &p, "set"], None);
    same(&["-p", &p, "--no-raw", "set"], None);
    // -e: the error goes to stderr and the exit status is 1.
    let run = same(&["-p", &p, "-e", "set"], None);
    assert_eq!(run.code, Some(1));
    assert!(run.err().starts_with("ERR wrong number of arguments"));
    same(&["-p", &p, "-e", "ping"], None);
    same(&["-p", &p, "--bogus-option"], None);
    same(&["-p"], None);
    same(&["-p", &p, "-2", "-3", "ping"], None);
    same(&["-u", "http://localhost", "ping"], None);
}

#[test]
fn an_unreachable_server_is_one_line_on_stderr_and_status_1() {
    let port = support::free_port().to_string();
    let run = kiln(&["-p", &port, "ping"], None);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.err(),
        format!("Could not connect to Redis at 127.0.0.1:{port}: Connection refused\n")
    );
    assert_eq!(run.out(), "");
    if support::redis_available() {
        same(&["-p", &port, "ping"], None);
    }
    // Piped commands report it too, and fail.
    let run = kiln(&["-p", &port], Some(b"ping\n"));
    assert_eq!(run.code, Some(1));
    assert!(run.err().contains("Could not connect to Redis at"));
}

#[test]
fn a_failed_auth_is_reported_and_fails() {
    let Some(r) = Server::redis(&["--requirepass", "secret"]) else {
        return;
    };
    let p = r.p();
    let run = kiln(&["-p", &p, "-a", "wrong", "ping"], None);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.err(),
        "Warning: Using a password with '-a' or '-u' option on the command line interface may not be safe.\n\
         AUTH failed: WRONGPASS invalid username-password pair or user is disabled.\n"
    );
    let run = kiln(
        &["-p", &p, "-a", "secret", "--no-auth-warning", "ping"],
        None,
    );
    assert_eq!((run.out().as_str(), run.err().as_str()), ("PONG\n", ""));
    let run = kiln(
        &[
            "-u",
            &format!("redis://default:secret@127.0.0.1:{p}/3"),
            "--no-auth-warning",
            "--no-raw",
            "client",
            "info",
        ],
        None,
    );
    assert!(run.out().contains(" db=3 "), "{}", run.out());
    let run = support::run_with(
        support::kiln_cli(),
        &["-p", &p, "ping"],
        None,
        &[("KILNCLI_AUTH", "secret")],
    );
    assert_eq!(run.out(), "PONG\n");
    let run = kiln(&["-p", &p, "ping"], None);
    assert!(run.out().starts_with("NOAUTH"), "{}", run.out());
}

#[test]
fn a_database_can_be_chosen_with_n_or_the_uri() {
    let Some(r) = Server::redis(&[]) else { return };
    let p = r.p();
    kiln(&["-p", &p, "-n", "5", "set", "k", "five"], None);
    let out = kiln(
        &["-u", &format!("redis://127.0.0.1:{p}/5"), "get", "k"],
        None,
    )
    .out();
    assert_eq!(out, "five\n");
    let run = kiln(&["-p", &p, "-n", "99", "ping"], None);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.err(),
        "SELECT 99 failed: ERR DB index is out of range\n"
    );
}

#[test]
fn help_for_commands_and_groups_matches_redis_cli() {
    let Some(r) = Server::redis(&[]) else { return };
    let p = r.p();
    for args in [
        &["help", "set"][..],
        &["help", "GET"],
        &["help", "config", "get"],
        &["help", "config"],
        &["help", "@hyperloglog"],
        &["help", "@string"],
        &["help", "nosuchcommand"],
    ] {
        let mut a = vec!["-p", p.as_str()];
        a.extend_from_slice(args);
        same(&a, None);
    }
    // Without a server the built-in table answers.
    let port = support::free_port().to_string();
    let run = kiln(&["-p", &port, "help", "set"], None);
    assert_eq!(run.code, Some(0));
    assert!(run.out().contains("SET\x1b[0m \x1b[90mkey value [NX|XX]"));
}

#[test]
fn eval_splits_keys_and_arguments_like_redis_cli() {
    let Some(r) = Server::redis(&[]) else { return };
    let p = r.p();
    let dir = eval_scripts("eval-split");
    let split = dir.join("split.lua").to_string_lossy().into_owned();
    for format in [&[][..], &["--no-raw"], &["--csv"], &["-3", "--json"]] {
        for rest in EVAL_SPLITS {
            let mut args = vec!["-p", p.as_str()];
            args.extend_from_slice(format);
            args.extend_from_slice(&["--eval", &split]);
            args.extend_from_slice(rest);
            same(&args, None);
        }
    }
    let run = same(
        &[
            "-p", &p, "--no-raw", "--eval", &split, "k1", "k2", ",", "a1",
        ],
        None,
    );
    assert_eq!(
        run.out(),
        "1) (integer) 2\n2) (integer) 1\n3) \"k1|k2\"\n4) \"a1\"\n"
    );
    // Options after the script's arguments are arguments.
    same(
        &["-p", &p, "--eval", &split, "k", ",", "a", "--no-raw"],
        None,
    );
}

#[test]
fn eval_replies_and_errors_print_like_redis_cli() {
    let Some(r) = Server::redis(&[]) else { return };
    let p = r.p();
    let dir = eval_scripts("eval-replies");
    for (file, _) in EVAL_SCRIPTS {
        let path = dir.join(file).to_string_lossy().into_owned();
        for format in [&[][..], &["--no-raw"], &["--csv"], &["-3", "--no-raw"]] {
            let mut args = vec!["-p", p.as_str()];
            args.extend_from_slice(format);
            args.extend_from_slice(&["--eval", &path, "key", ",", "value"]);
            same(&args, None);
        }
    }
    let error = dir.join("error.lua").to_string_lossy().into_owned();
    let run = same(&["-p", &p, "--no-raw", "--eval", &error], None);
    assert_eq!(run.out(), "(error) MY failure\n");
    // A file that is missing (checked after connecting), a directory (an empty script).
    let run = same(&["-p", &p, "--eval", "/nonexistent/script.lua"], None);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.err(),
        "Can't open file '/nonexistent/script.lua': No such file or directory\n"
    );
    let down = support::free_port().to_string();
    let run = same(&["-p", &down, "--eval", "/nonexistent/script.lua"], None);
    assert_eq!(run.code, Some(1));
    let d = dir.to_string_lossy().into_owned();
    same(&["-p", &p, "--no-raw", "--eval", &d], None);
    // -r repeats; -x, -X and --quoted-input do not apply to --eval.
    let split = dir.join("split.lua").to_string_lossy().into_owned();
    same(
        &["-p", &p, "-r", "3", "--eval", &split, "k", ",", "a"],
        None,
    );
    same(
        &["-p", &p, "-x", "--eval", &split, "k", ",", "a"],
        Some(b"in"),
    );
    same(&["-p", &p, "-X", "k", "--eval", &split, "k"], Some(b"in"));
    same(
        &["-p", &p, "--quoted-input", "--eval", &split, "\"k\\x41\""],
        None,
    );
}

#[test]
fn ldb_against_a_server_with_a_debugger_runs_nothing() {
    let Some(r) = Server::redis(&[]) else { return };
    let p = r.p();
    let dir = eval_scripts("eval-ldb");
    let setget = dir.join("setget.lua").to_string_lossy().into_owned();
    for mode in ["--ldb", "--ldb-sync-mode"] {
        let run = kiln(&["-p", &p, mode, "--eval", &setget, "k", ",", "v"], None);
        assert_eq!(run.code, Some(1));
        assert_eq!(run.out(), "");
        assert!(run.err().contains("no debugger front end"), "{}", run.err());
    }
    assert_eq!(kiln(&["-p", &p, "exists", "k"], None).out(), "0\n");
}

#[test]
fn subscribe_streams_messages_like_redis_cli() {
    let Some(r) = Server::redis(&[]) else { return };
    let p = r.p();
    let publish = || {
        support::wait_until("a subscriber", || {
            String::from_utf8_lossy(&r.raw("PUBSUB NUMSUB ch")).contains(":1\r\n")
        });
        r.raw("PUBLISH ch hello");
        r.raw("PUBLISH ch \"two words\"");
    };
    for args in [
        &["--no-raw", "subscribe", "ch"][..],
        &["subscribe", "ch"],
        &["-3", "--no-raw", "subscribe", "ch"],
    ] {
        let mut a = vec!["-p", p.as_str()];
        a.extend_from_slice(args);
        let k = support::stream_until(support::kiln_cli(), &a, publish, "two words");
        let rc = support::stream_until("redis-cli", &a, publish, "two words");
        assert_eq!(k, rc, "{args:?}");
        assert!(k.contains("hello"), "{k}");
    }
}

#[test]
fn monitor_streams_commands_like_redis_cli() {
    let Some(r) = Server::redis(&[]) else { return };
    let p = r.p();
    let out = support::stream_until(
        support::kiln_cli(),
        &["-p", &p, "monitor"],
        || {
            support::wait_until("the monitor", || {
                String::from_utf8_lossy(&r.raw("CLIENT LIST")).contains("cmd=monitor")
            });
            r.raw("SET watched 1");
        },
        "watched",
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("OK"));
    assert!(out.contains("\"SET\" \"watched\" \"1\""), "{out}");
}

#[test]
fn version_and_usage_are_printed() {
    let run = kiln(&["--version"], None);
    assert_eq!(run.code, Some(0));
    assert!(run.out().starts_with("kiln-cli "));
    let run = kiln(&["--help"], None);
    assert_eq!(run.code, Some(0));
    assert!(run.out().contains("--pipe"));
}

#[test]
fn a_tls_ca_file_that_does_not_load_is_reported() {
    let k = Server::kiln(&[]);
    let run = kiln(
        &[
            "--tls",
            "--cacert",
            "/nonexistent.crt",
            "-p",
            &k.p(),
            "ping",
        ],
        None,
    );
    assert_eq!(run.code, Some(1));
    assert!(
        run.err().contains("Invalid CA Certificate File/Directory"),
        "{}",
        run.err()
    );
}
