//! Command-line options, parsed the way redis-cli parses them.
//!
//! redis-cli's conventions do not fit a declarative parser: options come first and the
//! first word that does not start with `-` begins the command; an option missing its value
//! is reported as "Unrecognized option or bad number of args"; numbers are read with C's
//! forgiving `atoi`/`strtod` (a trailing suffix is ignored). So this is a small hand-written
//! loop that mirrors redis-cli 7's behaviour option by option.

use std::path::PathBuf;
use std::time::Duration;

use crate::conn::Target;
use crate::format::Output;

/// Which protocol to ask for with `HELLO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resp {
    /// Whatever the server speaks by default (RESP2).
    Default,
    /// `-2`.
    Two,
    /// `-3`: HELLO 3 must succeed.
    Three,
    /// `--json` without `-2`/`-3`: try HELLO 3, carry on in RESP2 if it fails.
    ThreeIfPossible,
}

/// Everything the command line selects.
#[derive(Clone, Debug)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub socket: Option<PathBuf>,
    pub timeout: Option<Duration>,
    pub user: Option<String>,
    pub auth: Option<String>,
    /// The password came from `-a`/`-u` (warn about it).
    pub auth_on_command_line: bool,
    pub askpass: bool,
    pub no_auth_warning: bool,
    pub dbnum: i64,
    /// `-r`: how many times to run the command (negative: forever).
    pub repeat: i64,
    /// `-i`, in microseconds.
    pub interval_us: u64,
    pub resp: Resp,
    pub stdin_lastarg: bool,
    pub stdin_tag: Option<Vec<u8>>,
    pub mb_delim: Vec<u8>,
    pub cmd_delim: Vec<u8>,
    pub cluster_mode: bool,
    pub set_errcode: bool,
    pub tls: bool,
    /// `--cacert`, `--cert`, `--key`, `--sni`, `--insecure`...
    pub tls_options: crate::tls::Options,
    /// `None` until `--raw`, `--no-raw`, `--csv` or `--json` decide (then it depends on
    /// whether stdout is a terminal).
    pub output: Option<Output>,
    pub quoted_json: bool,
    pub quoted_input: bool,
    pub push_output: Option<bool>,
    pub verbose: bool,
    pub prefer_ipv4: bool,
    pub prefer_ipv6: bool,
    // Special modes.
    pub latency: bool,
    pub latency_history: bool,
    pub latency_dist: bool,
    pub stat: bool,
    pub scan: bool,
    pub pattern: Option<Vec<u8>>,
    pub count: Option<i64>,
    pub scan_type: Option<String>,
    pub bigkeys: bool,
    pub memkeys: bool,
    pub memkeys_samples: Option<i64>,
    pub hotkeys: bool,
    pub pipe: bool,
    pub pipe_timeout: i64,
    pub rdb: Option<String>,
    pub functions_rdb: bool,
    pub replica: bool,
    pub intrinsic_latency: Option<i64>,
    pub lru_test: Option<i64>,
    pub eval: Option<String>,
    pub ldb: bool,
    /// `--ldb-sync-mode`: SCRIPT DEBUG SYNC instead of YES.
    pub ldb_sync: bool,
    pub cluster_command: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 6379,
            socket: None,
            timeout: None,
            user: None,
            auth: None,
            auth_on_command_line: false,
            askpass: false,
            no_auth_warning: false,
            dbnum: 0,
            repeat: 1,
            interval_us: 0,
            resp: Resp::Default,
            stdin_lastarg: false,
            stdin_tag: None,
            mb_delim: b"\n".to_vec(),
            cmd_delim: b"\n".to_vec(),
            cluster_mode: false,
            set_errcode: false,
            tls: false,
            tls_options: Default::default(),
            output: None,
            quoted_json: false,
            quoted_input: false,
            push_output: None,
            verbose: false,
            prefer_ipv4: false,
            prefer_ipv6: false,
            latency: false,
            latency_history: false,
            latency_dist: false,
            stat: false,
            scan: false,
            pattern: None,
            count: None,
            scan_type: None,
            bigkeys: false,
            memkeys: false,
            memkeys_samples: None,
            hotkeys: false,
            pipe: false,
            pipe_timeout: 30,
            rdb: None,
            functions_rdb: false,
            replica: false,
            intrinsic_latency: None,
            lru_test: None,
            eval: None,
            ldb: false,
            ldb_sync: false,
            cluster_command: false,
        }
    }
}

impl Config {
    /// Where to connect.
    pub fn target(&self) -> Target {
        match &self.socket {
            Some(p) => Target::Unix(p.clone()),
            None if self.tls => Target::Tls(self.host.clone(), self.port, self.tls_options.clone()),
            None => Target::Tcp(self.host.clone(), self.port),
        }
    }
}

/// What the parser decided.
#[derive(Debug)]
pub enum Parsed {
    /// Run with this configuration; the command starts at this argument index.
    Run(Box<Config>, usize),
    /// Print this text on stdout and exit 0 (`--help`, `--version`).
    Print(String),
    /// Print this message on stderr and exit 1.
    Fail(String),
}

/// C `atoi`/`strtoll`: optional blanks and sign, then as many digits as there are.
pub fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for c in digits.bytes() {
        if !c.is_ascii_digit() {
            break;
        }
        n = n.saturating_mul(10).saturating_add((c - b'0') as i64);
    }
    if neg {
        -n
    } else {
        n
    }
}

/// The longest prefix of `s` that is a decimal floating point number (C `strtod`), and
/// whether it used the whole string.
pub fn strtod(s: &str) -> (f64, bool) {
    let t = s.trim_start();
    let b = t.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i == digits_start || (i == digits_start + 1 && b[digits_start] == b'.') {
        // Words like "inf" and "nan" are accepted by strtod too.
        for word in ["infinity", "inf", "nan"] {
            let rest = &t[digits_start..];
            if rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word) {
                let v: f64 = format!("{}{}", &t[..digits_start], word)
                    .parse()
                    .unwrap_or(0.0);
                return (v, digits_start + word.len() == t.len());
            }
        }
        return (0.0, false);
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    (t[..i].parse().unwrap_or(0.0), i == t.len())
}

/// Decodes `%XX` escapes in a URI part.
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if b.len() - i < 3 {
                return Err("Incomplete URI encoding".into());
            }
            let h = (b[i + 1] as char).to_digit(16);
            let l = (b[i + 2] as char).to_digit(16);
            match (h, l) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err("Illegal character in URI encoding".into()),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Applies a `redis://[[user:]password@]host[:port][/db]` URI to `cfg` (`rediss://`:
/// the same over TLS).
pub fn parse_uri(uri: &str, cfg: &mut Config) -> Result<(), String> {
    let lower = uri.to_ascii_lowercase();
    let rest = if lower.starts_with("rediss://") {
        cfg.tls = true;
        &uri["rediss://".len()..]
    } else if lower.starts_with("redis://") {
        &uri["redis://".len()..]
    } else {
        return Err("Invalid URI scheme".into());
    };
    let mut curr = rest;
    if curr.is_empty() {
        return Ok(());
    }
    if let Some(at) = curr.find('@') {
        let userinfo = &curr[..at];
        let pass = match userinfo.find(':') {
            Some(colon) => {
                cfg.user = Some(percent_decode(&userinfo[..colon])?);
                &userinfo[colon + 1..]
            }
            None => userinfo,
        };
        cfg.auth = Some(percent_decode(pass)?);
        cfg.auth_on_command_line = true;
        curr = &curr[at + 1..];
    }
    if curr.is_empty() {
        return Ok(());
    }
    let (hostport, path) = match curr.find('/') {
        Some(slash) => (&curr[..slash], Some(&curr[slash + 1..])),
        None => (curr, None),
    };
    if !hostport.is_empty() {
        let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
            // [ipv6]:port
            match inner.find(']') {
                Some(close) => {
                    let port = inner[close + 1..].strip_prefix(':').map(atoi);
                    (&inner[..close], port)
                }
                None => (inner, None),
            }
        } else {
            match hostport.find(':') {
                Some(colon) => (&hostport[..colon], Some(atoi(&hostport[colon + 1..]))),
                None => (hostport, None),
            }
        };
        cfg.host = host.to_string();
        if let Some(p) = port {
            cfg.port = check_port(p)?;
        }
    }
    if let Some(db) = path {
        if !db.is_empty() {
            cfg.dbnum = atoi(db);
        }
    }
    Ok(())
}

fn check_port(p: i64) -> Result<u16, String> {
    u16::try_from(p).map_err(|_| "Invalid server port.".to_string())
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Parsed {
    let mut cfg = Config::default();
    let (mut resp2, mut resp3, mut json) = (false, false, false);
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let has_value = i + 1 < args.len();
        let value = args.get(i + 1).map(String::as_str).unwrap_or("");
        macro_rules! take {
            () => {{
                i += 1;
                value
            }};
        }
        match a {
            "-h" if has_value => cfg.host = take!().to_string(),
            "-h" | "--help" => return Parsed::Print(usage()),
            "-x" => cfg.stdin_lastarg = true,
            "-X" if has_value => cfg.stdin_tag = Some(take!().as_bytes().to_vec()),
            "-p" if has_value => match check_port(atoi(take!())) {
                Ok(p) => cfg.port = p,
                Err(e) => return Parsed::Fail(e),
            },
            "-t" if has_value => {
                let (secs, whole) = strtod(take!());
                if !whole || secs.is_nan() || secs < 0.0 {
                    return Parsed::Fail("Invalid connection timeout for -t.".into());
                }
                cfg.timeout = Duration::try_from_secs_f64(secs).ok();
            }
            "-s" if has_value => cfg.socket = Some(PathBuf::from(take!())),
            "-r" if has_value => cfg.repeat = atoi(take!()),
            "-i" if has_value => {
                let secs = strtod(take!()).0;
                cfg.interval_us = if secs > 0.0 { (secs * 1e6) as u64 } else { 0 };
            }
            "-n" if has_value => cfg.dbnum = atoi(take!()),
            "--no-auth-warning" => cfg.no_auth_warning = true,
            "--askpass" => cfg.askpass = true,
            "-a" | "--pass" if has_value => {
                cfg.auth = Some(take!().to_string());
                cfg.auth_on_command_line = true;
            }
            "--user" if has_value => cfg.user = Some(take!().to_string()),
            "-u" if has_value => {
                if let Err(e) = parse_uri(take!(), &mut cfg) {
                    return Parsed::Fail(e);
                }
            }
            "--raw" => cfg.output = Some(Output::Raw),
            "--no-raw" => cfg.output = Some(Output::Standard),
            "--quoted-input" => cfg.quoted_input = true,
            "--csv" => cfg.output = Some(Output::Csv),
            "--json" | "--quoted-json" => {
                json = true;
                cfg.output = Some(Output::Json);
                cfg.quoted_json = a == "--quoted-json";
            }
            "--latency" => cfg.latency = true,
            "--latency-dist" => cfg.latency_dist = true,
            "--mono" => {}
            "--latency-history" => {
                cfg.latency = true;
                cfg.latency_history = true;
            }
            "--lru-test" if has_value => cfg.lru_test = Some(atoi(take!())),
            "--slave" | "--replica" => cfg.replica = true,
            "--stat" => cfg.stat = true,
            "--scan" => cfg.scan = true,
            "--pattern" if has_value => cfg.pattern = Some(take!().as_bytes().to_vec()),
            "--quoted-pattern" if has_value => match crate::split::unquote(take!().as_bytes()) {
                Some(p) => cfg.pattern = Some(p),
                None => {
                    return Parsed::Fail(
                        "Invalid quoted string specified for --quoted-pattern.".into(),
                    )
                }
            },
            "--count" if has_value => cfg.count = Some(atoi(take!())),
            "--type" if has_value => cfg.scan_type = Some(take!().to_string()),
            "--intrinsic-latency" if has_value => cfg.intrinsic_latency = Some(atoi(take!())),
            "--rdb" if has_value => cfg.rdb = Some(take!().to_string()),
            "--functions-rdb" if has_value => {
                cfg.rdb = Some(take!().to_string());
                cfg.functions_rdb = true;
            }
            "--pipe" => cfg.pipe = true,
            "--pipe-timeout" if has_value => cfg.pipe_timeout = atoi(take!()),
            "--bigkeys" => cfg.bigkeys = true,
            "--memkeys" => cfg.memkeys = true,
            "--memkeys-samples" if has_value => {
                let v = take!();
                let n: i64 = match v.parse() {
                    Ok(n) => n,
                    Err(_) => return Parsed::Fail("--memkeys-samples conversion error.".into()),
                };
                if n < 0 {
                    return Parsed::Fail("--memkeys-samples value should be positive.".into());
                }
                cfg.memkeys = true;
                cfg.memkeys_samples = Some(n);
            }
            "--hotkeys" => cfg.hotkeys = true,
            "--eval" if has_value => cfg.eval = Some(take!().to_string()),
            "--ldb" => {
                cfg.ldb = true;
                cfg.output = Some(Output::Raw);
            }
            "--ldb-sync-mode" => {
                cfg.ldb = true;
                cfg.ldb_sync = true;
                cfg.output = Some(Output::Raw);
            }
            "-c" => cfg.cluster_mode = true,
            "-d" if has_value => cfg.mb_delim = take!().as_bytes().to_vec(),
            "-D" if has_value => cfg.cmd_delim = take!().as_bytes().to_vec(),
            "-e" => cfg.set_errcode = true,
            "--verbose" => cfg.verbose = true,
            "-4" => cfg.prefer_ipv4 = true,
            "-6" => cfg.prefer_ipv6 = true,
            "--cluster" if has_value => {
                cfg.cluster_command = true;
                // The cluster manager is not part of kiln-cli: refuse it below.
                i = args.len();
                continue;
            }
            "--tls" => cfg.tls = true,
            "--insecure" => cfg.tls_options.insecure = true,
            "--sni" if has_value => cfg.tls_options.sni = Some(take!().to_string()),
            "--cacert" if has_value => cfg.tls_options.cacert = Some(take!().to_string()),
            "--cacertdir" if has_value => cfg.tls_options.cacertdir = Some(take!().to_string()),
            "--cert" if has_value => cfg.tls_options.cert = Some(take!().to_string()),
            "--key" if has_value => cfg.tls_options.key = Some(take!().to_string()),
            // rustls picks among its own suites (see docs/COMPATIBILITY.md).
            "--tls-ciphers" | "--tls-ciphersuites" if has_value => {
                take!();
            }
            "-v" | "--version" => return Parsed::Print(format!("kiln-cli {}\n", crate::VERSION)),
            "-2" => resp2 = true,
            "-3" => resp3 = true,
            "--show-pushes" if has_value => {
                let v = take!();
                if v.get(..1).is_some_and(|c| c.eq_ignore_ascii_case("n")) {
                    cfg.push_output = Some(false);
                } else if v.get(..1).is_some_and(|c| c.eq_ignore_ascii_case("y")) {
                    cfg.push_output = Some(true);
                } else {
                    eprintln!("Unknown --show-pushes value '{v}' (valid: '[y]es', '[n]o')");
                }
            }
            _ if a.starts_with('-') => {
                return Parsed::Fail(format!(
                    "Unrecognized option or bad number of args for: '{a}'"
                ))
            }
            _ => break,
        }
        i += 1;
    }
    if resp2 && resp3 {
        return Parsed::Fail("Options -2 and -3 are mutually exclusive.".into());
    }
    cfg.resp = match (resp2, resp3, json) {
        (true, _, _) => Resp::Two,
        (_, true, _) => Resp::Three,
        (_, _, true) => Resp::ThreeIfPossible,
        _ => Resp::Default,
    };
    if cfg.socket.is_some() && cfg.cluster_mode {
        return Parsed::Fail("Options -c and -s are mutually exclusive.".into());
    }
    if cfg.stdin_lastarg && cfg.stdin_tag.is_some() {
        return Parsed::Fail("Options -x and -X are mutually exclusive.".into());
    }
    if cfg.prefer_ipv4 && cfg.prefer_ipv6 {
        return Parsed::Fail("Options -4 and -6 are mutually exclusive.".into());
    }
    if cfg.ldb && cfg.eval.is_none() {
        return Parsed::Fail(
            "Options --ldb and --ldb-sync-mode require --eval.\nTry kiln-cli --help for more information."
                .into(),
        );
    }
    Parsed::Run(Box::new(cfg), i.min(args.len()))
}

/// The `--help` text.
pub fn usage() -> String {
    format!(
        "kiln-cli {version}

Usage: kiln-cli [OPTIONS] [cmd [arg [arg ...]]]
  -h <hostname>      Server hostname (default: 127.0.0.1).
  -p <port>          Server port (default: 6379).
  -t <timeout>       Connection timeout in seconds, decimals allowed (default: none).
  -s <socket>        Unix socket to connect to (overrides hostname and port).
  -a <password>      Password for AUTH. The KILNCLI_AUTH environment variable (or
                     REDISCLI_AUTH) is a safer way to pass it; -a wins over both.
  --user <username>  Username for ACL style 'AUTH username password'. Needs -a.
  --pass <password>  Same as -a.
  --askpass          Read the password from the terminal, hidden; -a and the
                     environment variables are then ignored.
  -u <uri>           Server URI: redis[s]://[[user:]password@]host[:port][/db].
  -r <repeat>        Run the command this many times (negative: forever).
  -i <interval>      Wait this many seconds between repeats (0.1 works). Also the
                     pause per cycle of --scan and --stat, and per 100 SCANs of
                     --bigkeys, --memkeys and --hotkeys.
  -n <db>            Database number.
  -2                 Use the RESP2 protocol.
  -3                 Use the RESP3 protocol.
  -x                 Read the last argument from standard input.
  -X <tag>           Replace the argument equal to <tag> by standard input.
  -d <delimiter>     Separator between the items of a reply in raw output (default: \\n).
  -D <delimiter>     Separator between replies in raw output (default: \\n).
  -c                 Cluster mode: follow -MOVED and -ASK redirections.
  -e                 Exit with status 1 when a command fails.
  -4                 Prefer IPv4 addresses.
  -6                 Prefer IPv6 addresses.
  --tls              Establish a secure TLS connection.
  --sni <host>       Server name indication for TLS.
  --cacert <file>    CA Certificate file to verify with.
  --cacertdir <dir>  Directory where trusted CA certificates are stored.
                     If neither cacert nor cacertdir are specified, the default
                     system-wide trusted root certs configuration will apply.
  --insecure         Allow insecure TLS connection by skipping cert validation.
  --cert <file>      Client certificate to authenticate with.
  --key <file>       Private key file to authenticate with.
  --raw              Raw output (the default when stdout is not a terminal).
  --no-raw           Formatted output even when stdout is not a terminal.
  --quoted-input     Read command arguments as quoted strings.
  --csv              CSV output.
  --json             JSON output (asks for RESP3 unless -2 is given).
  --quoted-json      Like --json, with ASCII-only escaped strings.
  --show-pushes <yn> Print RESP3 push messages (default: yes on a terminal).
  --stat             Print rolling server statistics: keys, memory, clients...
  --latency          Measure latency with PINGs: live on a terminal; with --raw,
                     --csv or a redirected output, sample for 1 second (or -i)
                     and print one line.
  --latency-history  Like --latency, starting a new line every 15 seconds (or -i).
  --replica          Act as a replica and print the commands the master sends.
  --rdb <filename>   Fetch an RDB snapshot through the replication protocol and
                     save it (\"-\" writes it to stdout).
  --functions-rdb <filename> Like --rdb, functions only.
  --pipe             Send raw RESP read from stdin (mass insertion).
  --pipe-timeout <n> With --pipe, give up when no reply arrives for <n> seconds
                     after all data was sent (default: 30, 0: wait forever).
  --bigkeys          Look for the keys with the most elements.
  --memkeys          Look for the keys using the most memory.
  --memkeys-samples <n> Like --memkeys, sampling <n> elements per key.
  --hotkeys          Look for the most used keys (needs an LFU maxmemory-policy).
  --scan             List keys with SCAN.
  --pattern <pat>    Key pattern for --scan, --bigkeys, --memkeys and --hotkeys.
  --quoted-pattern <pat> Same as --pattern, given as a quoted string.
  --count <count>    COUNT hint for those SCANs.
  --type <type>      With --scan, only keys of this type.
  --intrinsic-latency <sec> Measure this machine's own scheduling latency.
  --eval <file>      Run the Lua script in <file> with EVAL.
  --ldb              With --eval, ask the server for a Lua debugging session
                     (SCRIPT DEBUG YES) first. Kiln has no Lua debugger: its
                     refusal is printed and nothing is run.
  --ldb-sync-mode    Like --ldb, with SCRIPT DEBUG SYNC.
  --verbose          Verbose mode.
  --no-auth-warning  No warning about passwords given on the command line.
  --help             Print this help and exit.
  --version          Print the version and exit.

Examples:
  kiln-cli -u redis://default:PASSWORD@localhost:6379/0
  cat /etc/passwd | kiln-cli -x set mypasswd
  kiln-cli -D \"\" --raw dump key > key.dump && kiln-cli -X dump_tag restore key2 0 dump_tag replace < key.dump
  kiln-cli -r 100 lpush mylist x
  kiln-cli -r 100 -i 1 info | grep used_memory_human:
  kiln-cli --quoted-input set '\"null-\\x00-separated\"' value
  kiln-cli --eval myscript.lua key1 key2 , arg1 arg2 arg3
  kiln-cli --scan --pattern '*:12345*'

  (With --eval a lone comma separates the KEYS[] from the ARGV[] items.)

Without a command, kiln-cli starts in interactive mode: type \"help\" there.
",
        version = crate::VERSION
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> (Config, Vec<String>) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args) {
            Parsed::Run(c, start) => (*c, args[start..].to_vec()),
            other => panic!("{other:?}"),
        }
    }

    fn fail(args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args) {
            Parsed::Fail(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_stop_at_the_first_command_word() {
        let (c, rest) = run(&["-p", "7000", "-n", "2", "set", "-p", "x"]);
        assert_eq!(c.port, 7000);
        assert_eq!(c.dbnum, 2);
        assert_eq!(rest, ["set", "-p", "x"]);
    }

    #[test]
    fn missing_values_and_unknown_options_are_refused() {
        assert_eq!(
            fail(&["-p"]),
            "Unrecognized option or bad number of args for: '-p'"
        );
        assert_eq!(
            fail(&["--bogus"]),
            "Unrecognized option or bad number of args for: '--bogus'"
        );
        assert_eq!(fail(&["-p", "99999"]), "Invalid server port.");
        assert_eq!(fail(&["-t", "1x"]), "Invalid connection timeout for -t.");
        assert_eq!(
            fail(&["-2", "-3"]),
            "Options -2 and -3 are mutually exclusive."
        );
        assert_eq!(
            fail(&["-3", "-2"]),
            "Options -2 and -3 are mutually exclusive."
        );
    }

    #[test]
    fn numbers_are_read_like_c() {
        assert_eq!(atoi(" 12abc"), 12);
        assert_eq!(atoi("-3"), -3);
        assert_eq!(atoi("x"), 0);
        assert_eq!(strtod("0.5s"), (0.5, false));
        assert_eq!(strtod("1e3"), (1000.0, true));
        assert_eq!(strtod(""), (0.0, false));
        let (c, _) = run(&["-i", "0.25", "-r", "-1"]);
        assert_eq!(c.interval_us, 250_000);
        assert_eq!(c.repeat, -1);
    }

    #[test]
    fn uris_give_user_password_host_port_and_db() {
        let (c, _) = run(&["-u", "redis://al%40ice:p%3Ass@example.com:7001/3"]);
        assert_eq!(c.user.as_deref(), Some("al@ice"));
        assert_eq!(c.auth.as_deref(), Some("p:ss"));
        assert_eq!(c.host, "example.com");
        assert_eq!(c.port, 7001);
        assert_eq!(c.dbnum, 3);
        let (c, _) = run(&["-u", "redis://[::1]:7002"]);
        assert_eq!((c.host.as_str(), c.port), ("::1", 7002));
        let (c, _) = run(&["-u", "redis://secret@host"]);
        assert_eq!((c.user, c.auth.as_deref()), (None, Some("secret")));
        assert_eq!(fail(&["-u", "http://x"]), "Invalid URI scheme");
    }

    #[test]
    fn rediss_urls_and_tls_options_select_tls() {
        let (c, _) = run(&["-u", "rediss://example.com:7003"]);
        assert!(c.tls);
        assert!(matches!(c.target(), Target::Tls(h, 7003, _) if h == "example.com"));
        let (c, _) = run(&[
            "--tls", "--cacert", "ca", "--cert", "c", "--key", "k", "--sni", "s",
        ]);
        let o = &c.tls_options;
        assert_eq!(o.cacert.as_deref(), Some("ca"));
        assert_eq!(
            (o.cert.as_deref(), o.key.as_deref()),
            (Some("c"), Some("k"))
        );
        assert_eq!(o.sni.as_deref(), Some("s"));
        // The options alone do not turn TLS on (as in redis-cli): --tls does.
        let (c, _) = run(&["--cacert", "ca"]);
        assert!(matches!(c.target(), Target::Tcp(..)));
    }

    #[test]
    fn json_asks_for_resp3_unless_told_otherwise() {
        assert_eq!(run(&["--json"]).0.resp, Resp::ThreeIfPossible);
        assert_eq!(run(&["-2", "--json"]).0.resp, Resp::Two);
        assert_eq!(run(&["--json", "-3"]).0.resp, Resp::Three);
    }
}
