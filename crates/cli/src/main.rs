//! kiln-cli: a command-line client for Kiln (and any Redis 7 server) that behaves like
//! redis-cli: the same options, the same output byte for byte, the same interactive mode
//! and tools.
//!
//! * One-shot: `kiln-cli SET a b`; `-x` reads the last argument from stdin, `-X <tag>`
//!   replaces one; `-r`/`-i` repeat.
//! * Commands piped on stdin, one per line, when no command is given and stdin is not a
//!   terminal.
//! * Interactive mode on a terminal ([`repl`]).
//! * Tools ([`tools`], [`replication`]): `--scan`, `--bigkeys`, `--memkeys`, `--hotkeys`,
//!   `--latency`, `--latency-history`, `--stat`, `--pipe`, `--rdb`, `--replica`, `--eval`.
//!
//! Output is formatted by [`format`]: the human format on a terminal, raw otherwise, or
//! `--csv` / `--json`.

mod conn;
mod format;
mod help;
mod opts;
mod repl;
mod replication;
mod session;
mod split;
mod tls;
mod tools;

use std::io::{IsTerminal, Read};
use std::os::unix::ffi::OsStrExt;

use format::{Output, Style};
use opts::Parsed;
use session::Session;

/// The version kiln-cli reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn fail(msg: impl AsRef<str>) -> ! {
    eprintln!("{}", msg.as_ref());
    std::process::exit(1);
}

/// Reads all of stdin (`-x`, `-X`).
fn read_stdin() -> Vec<u8> {
    let mut data = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut data) {
        fail(format!(
            "Reading from standard input: {}",
            conn::io_text(&e)
        ));
    }
    data
}

/// `--askpass`: a password typed on the terminal, echoed as stars.
fn ask_password(prompt: &str) -> String {
    use rustyline::highlight::{CmdKind, Highlighter};
    use std::borrow::Cow;

    struct Mask;
    impl Highlighter for Mask {
        fn highlight<'l>(&self, line: &'l str, _: usize) -> Cow<'l, str> {
            Cow::Owned("*".repeat(line.chars().count()))
        }
        fn highlight_char(&self, _: &str, _: usize, _: CmdKind) -> bool {
            true
        }
    }
    impl rustyline::completion::Completer for Mask {
        type Candidate = String;
    }
    impl rustyline::hint::Hinter for Mask {
        type Hint = String;
    }
    impl rustyline::validate::Validator for Mask {}
    impl rustyline::Helper for Mask {}

    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        return line.trim_end_matches(['\n', '\r']).to_string();
    }
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .check_cursor_position(false)
        .build();
    let mut ed: rustyline::Editor<Mask, rustyline::history::DefaultHistory> =
        match rustyline::Editor::with_config(config) {
            Ok(e) => e,
            Err(e) => fail(format!("kiln-cli: cannot use the terminal: {e}")),
        };
    ed.set_helper(Some(Mask));
    ed.readline(prompt)
        .unwrap_or_else(|_| std::process::exit(1))
}

/// Reads the `--eval` script. A file that opens but cannot be read (a directory) gives
/// what could be read, like redis-cli's fopen/fread loop: an empty script for a directory.
fn read_script(path: &str) -> Vec<u8> {
    let mut file = std::fs::File::open(path)
        .unwrap_or_else(|e| fail(format!("Can't open file '{path}': {}", conn::io_text(&e))));
    let mut script = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match file.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => script.extend_from_slice(&chunk[..n]),
        }
    }
    script
}

/// `EVAL script numkeys key ... arg ...` from `--eval`'s arguments: everything before the
/// first argument that is exactly "," is a key, everything after it an argument (a later
/// lone comma is an argument too; "a,b" or ",x" are plain keys). No comma: all keys.
fn eval_args(script: Vec<u8>, args: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let (keys, argv) = match args.iter().position(|a| a.as_slice() == b",") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    let mut out = Vec::with_capacity(3 + args.len());
    out.push(b"EVAL".to_vec());
    out.push(script);
    out.push(keys.len().to_string().into_bytes());
    out.extend(keys.iter().cloned());
    out.extend(argv.iter().cloned());
    out
}

/// `--ldb` / `--ldb-sync-mode`: asks for a debugging session before the script runs. A
/// server without a Lua debugger (Kiln) refuses SCRIPT DEBUG: the refusal is printed as
/// redis-cli prints an error that stops a debugging session from starting, and the script
/// is not run. A server that accepts (Redis) is put back to normal, since kiln-cli has no
/// debugger front end.
fn start_ldb(s: &mut Session) {
    let mode: &[u8] = if s.cfg.ldb_sync { b"SYNC" } else { b"YES" };
    let reply = s.command_or_exit(&[b"SCRIPT", b"DEBUG", mode]);
    if format::is_error(&reply) {
        let mut out = Vec::new();
        format::tty(&mut out, &reply, b"");
        session::write_stdout(&out);
        std::process::exit(1);
    }
    s.command_or_exit(&[b"SCRIPT", b"DEBUG", b"NO"]);
    fail("kiln-cli: this server has a Lua debugger, but kiln-cli has no debugger front end (--ldb, --ldb-sync-mode); use redis-cli --ldb.");
}

/// `--eval <file> key ... , arg ...`: connects, then sends the script. Like redis-cli
/// 7.0, -x, -X and --quoted-input do not apply to it; -r and -i do.
fn eval_mode(s: &mut Session, path: &str, args: &[Vec<u8>]) -> ! {
    if !s.connect(false, false) {
        std::process::exit(1);
    }
    let argv = eval_args(read_script(path), args);
    if s.cfg.ldb {
        start_ldb(s);
    }
    let repeat = s.cfg.repeat;
    let ok = s.issue(&argv, repeat);
    std::process::exit(if ok { 0 } else { 1 });
}

fn main() {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let args: Vec<String> = raw
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (mut cfg, start) = match opts::parse(&args) {
        Parsed::Print(text) => {
            session::write_stdout(text.as_bytes());
            std::process::exit(0);
        }
        Parsed::Fail(msg) => fail(msg),
        Parsed::Run(cfg, start) => (*cfg, start),
    };
    // Arguments are bytes: keep non-UTF-8 values intact.
    let command: Vec<Vec<u8>> = raw[start..].iter().map(|a| a.as_bytes().to_vec()).collect();

    let stdout_tty = std::io::stdout().is_terminal() || std::env::var_os("FAKETTY").is_some();
    let output = cfg.output.unwrap_or(if stdout_tty {
        Output::Standard
    } else {
        Output::Raw
    });
    let push_output = cfg.push_output.unwrap_or(stdout_tty);
    if cfg.auth_on_command_line && !cfg.no_auth_warning {
        eprintln!(
            "Warning: Using a password with '-a' or '-u' option on the command line interface may not be safe."
        );
    }
    if cfg.auth.is_none() {
        cfg.auth = std::env::var("KILNCLI_AUTH")
            .or_else(|_| std::env::var("REDISCLI_AUTH"))
            .ok();
    }
    if cfg.askpass {
        cfg.auth = Some(ask_password("Please input password: "));
    }
    if cfg.cluster_command {
        fail("kiln-cli: the --cluster manager is not supported; use redis-cli --cluster.");
    }
    if cfg.latency_dist {
        fail("kiln-cli: --latency-dist is not supported; use --latency-history.");
    }
    if cfg.lru_test.is_some() {
        fail("kiln-cli: --lru-test is not supported.");
    }

    let style = Style {
        output,
        mb_delim: cfg.mb_delim.clone(),
        cmd_delim: cfg.cmd_delim.clone(),
        ascii_json: cfg.quoted_json,
    };
    let mut s = Session::new(cfg, style, push_output);

    if s.cfg.latency {
        tools::require(&mut s);
        tools::latency_mode(&mut s);
    }
    if s.cfg.replica {
        tools::require(&mut s);
        replication::replica_mode(&mut s);
    }
    if let Some(path) = s.cfg.rdb.clone() {
        tools::require(&mut s);
        let functions = s.cfg.functions_rdb;
        replication::fetch_rdb(&mut s, &path, functions);
    }
    if s.cfg.pipe {
        tools::require(&mut s);
        tools::pipe_mode(&mut s);
    }
    if s.cfg.bigkeys {
        tools::require(&mut s);
        tools::big_keys(&mut s, false, None);
    }
    if s.cfg.memkeys {
        tools::require(&mut s);
        let samples = s.cfg.memkeys_samples;
        tools::big_keys(&mut s, true, samples);
    }
    if s.cfg.hotkeys {
        tools::require(&mut s);
        tools::hot_keys(&mut s);
    }
    if s.cfg.stat {
        tools::require(&mut s);
        tools::stat_mode(&mut s);
    }
    if s.cfg.scan {
        tools::require(&mut s);
        tools::scan_mode(&mut s);
    }
    if let Some(secs) = s.cfg.intrinsic_latency {
        tools::intrinsic_latency(secs);
    }

    if command.is_empty() && s.cfg.eval.is_none() {
        // A failed connection is not fatal here: every command tries again.
        s.connect(false, false);
        repl::run(&mut s);
    }

    if let Some(path) = s.cfg.eval.clone() {
        eval_mode(&mut s, &path, &command);
    }
    let mut argv = command;
    if s.cfg.quoted_input {
        let parsed: Option<Vec<Vec<u8>>> = argv.iter().map(|a| split::unquote(a)).collect();
        match parsed {
            Some(p) => argv = p,
            None => {
                session::write_stdout(b"Invalid quoted string\n");
                std::process::exit(1);
            }
        }
    }
    if s.cfg.stdin_lastarg {
        argv.push(read_stdin());
    } else if let Some(tag) = s.cfg.stdin_tag.clone() {
        match argv.iter().position(|a| *a == tag) {
            Some(i) => argv[i] = read_stdin(),
            None => fail("Using -X option but stdin tag not match."),
        }
    }
    let is_help = {
        let first = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        first == "help" || first == "?"
    };
    // HELP works without a server; anything else needs one, and a failed AUTH, SELECT or
    // HELLO is an error.
    let connected = s.connect(false, is_help);
    if !connected && (!is_help || s.conn.is_some()) {
        std::process::exit(1);
    }
    let repeat = s.cfg.repeat;
    let ok = s.issue(&argv, repeat);
    std::process::exit(if ok { 0 } else { 1 });
}
