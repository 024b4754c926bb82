//! A session with the server: connecting (AUTH, SELECT, HELLO), sending commands, printing
//! replies, and the state redis-cli keeps between commands (selected database for the
//! prompt, MULTI state, subscribe and MONITOR streaming, reconnection).

use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_resp::Value;

use crate::conn::{io_text, Conn, ConnError, Stream};
use crate::format::{self, Output, Style};
use crate::help::HelpTable;
use crate::opts::{atoi, Config, Resp};

/// Writes to stdout and flushes; a closed stdout (a pager that quit) ends the program.
pub fn write_stdout(data: &[u8]) {
    let mut out = io::stdout().lock();
    if out.write_all(data).and_then(|_| out.flush()).is_err() {
        std::process::exit(1);
    }
}

/// `printf` to stdout through [`write_stdout`].
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {
        $crate::session::write_stdout(format!($($t)*).as_bytes())
    };
}

/// Ctrl-C handling shared with the signal thread: while a reply stream runs (MONITOR,
/// SUBSCRIBE), Ctrl-C shuts the socket down, which ends the blocking read; the session then
/// reconnects and returns to the prompt.
#[derive(Default)]
pub struct Interrupt {
    streaming: AtomicBool,
    aborted: AtomicBool,
    socket: Mutex<Option<Stream>>,
}

impl Interrupt {
    /// Called on SIGINT. Returns false when nothing was streaming (the caller exits).
    pub fn fire(&self) -> bool {
        if !self.streaming.load(Ordering::SeqCst) {
            return false;
        }
        self.aborted.store(true, Ordering::SeqCst);
        if let Some(s) = self.socket.lock().unwrap_or_else(|e| e.into_inner()).take() {
            s.shutdown();
        }
        true
    }

    fn begin(&self, conn: &Conn) {
        *self.socket.lock().unwrap_or_else(|e| e.into_inner()) =
            conn.stream().shutdown_handle().ok();
        self.aborted.store(false, Ordering::SeqCst);
        self.streaming.store(true, Ordering::SeqCst);
    }

    fn end(&self) {
        self.streaming.store(false, Ordering::SeqCst);
        *self.socket.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn take_aborted(&self) -> bool {
        self.aborted.swap(false, Ordering::SeqCst)
    }
}

/// Commands whose reply is text meant to be printed as is, whatever the output format.
fn prints_verbatim(argv: &[Vec<u8>]) -> bool {
    let a = |i: usize| {
        argv.get(i)
            .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
            .unwrap_or_default()
    };
    let (cmd, sub, n) = (a(0), a(1), argv.len());
    matches!(cmd.as_str(), "info" | "lolwut")
        || (n >= 2
            && cmd == "debug"
            && matches!(sub.as_str(), "htstats" | "htstats-key" | "client-eviction"))
        || (n >= 2 && cmd == "memory" && matches!(sub.as_str(), "malloc-stats" | "doctor"))
        || (n == 2 && cmd == "cluster" && matches!(sub.as_str(), "nodes" | "info"))
        || (n >= 2 && cmd == "client" && matches!(sub.as_str(), "list" | "info"))
        || (n == 3 && cmd == "latency" && sub == "graph")
        || (n == 2 && cmd == "latency" && sub == "doctor")
        || (n >= 2 && cmd == "proxy" && sub == "info")
}

/// What reading a reply produced.
enum Read {
    /// A reply (already printed unless it was a cluster redirection).
    Reply(Value),
    /// Ctrl-C ended a stream; the session reconnected.
    Aborted,
    /// The connection ended after SHUTDOWN, as expected.
    Closed,
}

/// The client state.
pub struct Session {
    pub cfg: Config,
    pub style: Style,
    pub conn: Option<Conn>,
    /// Database shown in the prompt.
    pub dbnum: i64,
    /// Database to select on (re)connection.
    pub input_dbnum: i64,
    pub in_multi: bool,
    pre_multi_dbnum: i64,
    pub current_resp3: bool,
    /// Interactive (a prompt, or lines from stdin): connection loss is not fatal.
    pub interactive: bool,
    pub push_output: bool,
    shutdown: bool,
    monitor_mode: bool,
    pubsub_mode: bool,
    cluster_reissue: bool,
    cluster_asking: bool,
    pub interrupt: Arc<Interrupt>,
    /// Help table: COMMAND DOCS when the server has it, the built-in one otherwise.
    pub help: Rc<RefCell<HelpTable>>,
    help_from_server_tried: bool,
    /// Set when a command could not reach the server at all.
    pub unreachable: bool,
    /// Before each command, check that the server did not close the connection (a
    /// restarted server): reconnect quietly instead of failing the command.
    pub check_alive: bool,
}

impl Session {
    /// A session that is not connected yet.
    pub fn new(cfg: Config, style: Style, push_output: bool) -> Self {
        let input_dbnum = cfg.dbnum;
        Self {
            cfg,
            style,
            conn: None,
            dbnum: 0,
            input_dbnum,
            in_multi: false,
            pre_multi_dbnum: 0,
            current_resp3: false,
            interactive: false,
            push_output,
            shutdown: false,
            monitor_mode: false,
            pubsub_mode: false,
            cluster_reissue: false,
            cluster_asking: false,
            interrupt: Arc::new(Interrupt::default()),
            help: Rc::new(RefCell::new(HelpTable::builtin())),
            help_from_server_tried: false,
            unreachable: false,
            check_alive: false,
        }
    }

    /// The interactive prompt (`127.0.0.1:6379[2](TX)> `).
    pub fn prompt(&self) -> String {
        if self.conn.is_none() {
            return "not connected> ".into();
        }
        let mut p = match &self.cfg.socket {
            Some(path) => format!("redis {}", path.display()),
            None if self.cfg.host.contains(':') => format!("[{}]:{}", self.cfg.host, self.cfg.port),
            None => format!("{}:{}", self.cfg.host, self.cfg.port),
        };
        if self.dbnum != 0 {
            p.push_str(&format!("[{}]", self.dbnum));
        }
        if self.in_multi {
            p.push_str("(TX)");
        }
        p.push_str("> ");
        p
    }

    /// Connects unless connected (`force`: drop the current connection first). Prints why
    /// it failed unless `quiet`. A connection whose AUTH, SELECT or HELLO failed is kept
    /// (the user may fix it by hand) but reported as a failure.
    pub fn connect(&mut self, force: bool, quiet: bool) -> bool {
        if self.conn.is_some() && !force {
            return true;
        }
        if self.conn.take().is_some() {
            self.dbnum = 0;
            self.in_multi = false;
            self.pubsub_mode = false;
        }
        let target = self.cfg.target();
        let conn = match Conn::connect(&target, self.cfg.timeout) {
            Ok(c) => c,
            Err(e) => {
                if !quiet {
                    eprintln!("Could not connect to Redis at {target}: {}", io_text(&e));
                }
                return false;
            }
        };
        self.conn = Some(conn);
        self.current_resp3 = false;
        self.auth() && self.select_db() && self.switch_proto()
    }

    /// One command for the session's own use (handshake, tools): `None` on I/O error.
    fn internal(&mut self, args: &[&[u8]]) -> Option<Value> {
        let conn = self.conn.as_mut()?;
        match conn.command(args) {
            Ok(v) => Some(v),
            Err(_) => {
                eprintln!("\nI/O error");
                None
            }
        }
    }

    fn auth(&mut self) -> bool {
        let Some(pass) = self.cfg.auth.clone() else {
            return true;
        };
        let reply = match self.cfg.user.clone() {
            Some(user) => self.internal(&[b"AUTH", user.as_bytes(), pass.as_bytes()]),
            None => self.internal(&[b"AUTH", pass.as_bytes()]),
        };
        match reply {
            None => false,
            Some(v) => match format::error_text(&v) {
                Some(e) => {
                    eprintln!("AUTH failed: {}", String::from_utf8_lossy(e));
                    false
                }
                None => true,
            },
        }
    }

    /// Selects `input_dbnum` if it is not the current database.
    fn select_db(&mut self) -> bool {
        if self.input_dbnum == self.dbnum {
            return true;
        }
        let db = self.input_dbnum.to_string();
        match self.internal(&[b"SELECT", db.as_bytes()]) {
            None => false,
            Some(v) => match format::error_text(&v) {
                Some(e) => {
                    eprintln!("SELECT {db} failed: {}", String::from_utf8_lossy(e));
                    false
                }
                None => {
                    self.dbnum = self.input_dbnum;
                    true
                }
            },
        }
    }

    fn switch_proto(&mut self) -> bool {
        if !matches!(self.cfg.resp, Resp::Three | Resp::ThreeIfPossible) {
            return true;
        }
        let Some(v) = self.internal(&[b"HELLO", b"3"]) else {
            return false;
        };
        if let Some(e) = format::error_text(&v) {
            eprintln!("HELLO 3 failed: {}", String::from_utf8_lossy(e));
            return self.cfg.resp == Resp::ThreeIfPossible;
        }
        self.current_resp3 = true;
        true
    }

    /// Loads the help table from the server's COMMAND DOCS (once per connection attempt).
    pub fn load_help(&mut self) {
        if self.help_from_server_tried || self.conn.is_none() {
            return;
        }
        self.help_from_server_tried = true;
        let docs = self
            .conn
            .as_mut()
            .and_then(|c| c.command(&[b"COMMAND".as_slice(), b"DOCS"]).ok());
        if let Some(table) = docs.as_ref().and_then(HelpTable::from_docs) {
            *self.help.borrow_mut() = table;
        }
    }

    /// Forgets the help table source (after CONNECT to another server).
    pub fn reset_help(&mut self) {
        self.help_from_server_tried = false;
        *self.help.borrow_mut() = HelpTable::builtin();
    }

    /// Runs a command `repeat` times (negative: forever), connecting first if needed and
    /// handling HELP locally. Returns false when the command could not be run.
    pub fn issue(&mut self, argv: &[Vec<u8>], repeat: i64) -> bool {
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        if name == "help" || name == "?" {
            self.load_help();
            let text = self.help.borrow().help_text(&argv[1..]);
            write_stdout(&text);
            return true;
        }
        loop {
            let dead = self.check_alive && self.conn.as_mut().is_some_and(|c| !c.is_alive());
            if self.cluster_reissue || self.conn.is_none() || dead {
                let had_conn = self.conn.is_some();
                if !self.connect(true, false) && self.conn.is_none() {
                    self.cluster_reissue = false;
                    self.unreachable = true;
                    return false;
                }
                if !had_conn || dead {
                    // Possibly another server now: its own COMMAND DOCS drive hints and help.
                    self.help_from_server_tried = false;
                    if self.check_alive {
                        self.load_help();
                    }
                }
            }
            self.cluster_reissue = false;
            if self.cluster_asking {
                self.cluster_asking = false;
                match self.internal(&[b"ASKING"]) {
                    Some(v) if format::is_error(&v) => {
                        eprintln!(
                            "ASKING failed: {}",
                            String::from_utf8_lossy(format::error_text(&v).unwrap_or_default())
                        );
                        return false;
                    }
                    Some(_) => {}
                    None => return false,
                }
            }
            if let Err(e) = self.send_command(argv, repeat) {
                eprintln!("Error: {e}");
                self.conn = None;
                return false;
            }
            if self.cfg.cluster_mode && self.cluster_reissue {
                continue;
            }
            return true;
        }
    }

    /// Sends the command and prints its replies (cliSendCommand).
    fn send_command(&mut self, argv: &[Vec<u8>], mut repeat: i64) -> Result<(), ConnError> {
        let command = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        let verbatim = prints_verbatim(argv);
        match command.as_str() {
            "shutdown" => self.shutdown = true,
            "monitor" => self.monitor_mode = true,
            "subscribe" | "psubscribe" | "ssubscribe" => self.pubsub_mode = true,
            _ => {}
        }
        let replica = matches!(command.as_str(), "sync" | "psync");
        // Negative: forever.
        while repeat != 0 {
            if repeat > 0 {
                repeat -= 1;
            }
            let Some(conn) = self.conn.as_mut() else {
                return Err(ConnError::Eof);
            };
            conn.append(argv);
            conn.flush()?;

            if self.monitor_mode {
                self.stream_replies(verbatim, |s, v| {
                    if format::is_error(v) {
                        s.monitor_mode = false;
                    }
                    s.monitor_mode
                });
                self.monitor_mode = false;
                return Ok(());
            }
            if self.pubsub_mode {
                if self.style.output != Output::Raw {
                    out!("Reading messages... (press Ctrl-C to quit)\n");
                }
                self.stream_replies(verbatim, |_, v| !format::is_error(v));
                self.pubsub_mode = false;
                continue;
            }
            if replica {
                out!("Entering replica output mode...  (press Ctrl-C to quit)\n");
                crate::replication::replica_stream(self, false);
                return Err(ConnError::Eof);
            }

            let reply = match self.read_reply(verbatim)? {
                Read::Reply(v) => v,
                Read::Aborted | Read::Closed => return Ok(()),
            };
            self.after_reply(&command, argv, &reply);
            if self.cluster_reissue {
                break;
            }
            if self.cfg.interval_us > 0 {
                std::thread::sleep(Duration::from_micros(self.cfg.interval_us));
            }
        }
        Ok(())
    }

    /// Reads and prints replies until `keep_going` says stop, the connection fails (fatal)
    /// or Ctrl-C interrupts (back to the prompt).
    fn stream_replies(
        &mut self,
        verbatim: bool,
        mut keep_going: impl FnMut(&mut Self, &Value) -> bool,
    ) {
        if let Some(c) = &self.conn {
            self.interrupt.begin(c);
        }
        loop {
            match self.read_reply(verbatim) {
                Ok(Read::Reply(v)) => {
                    if !keep_going(self, &v) {
                        break;
                    }
                }
                Ok(Read::Aborted) | Ok(Read::Closed) => break,
                Err(e) => {
                    self.interrupt.end();
                    eprintln!("Error: {e}");
                    std::process::exit(1);
                }
            }
        }
        self.interrupt.end();
    }

    /// Keeps the prompt's state in step with what the command did.
    fn after_reply(&mut self, command: &str, argv: &[Vec<u8>], reply: &Value) {
        let failed = format::is_error(reply);
        let argc = argv.len();
        match command {
            "select" if argc == 2 && !failed => {
                self.dbnum = atoi(&String::from_utf8_lossy(&argv[1]));
                self.input_dbnum = self.dbnum;
            }
            "auth" if argc == 2 || argc == 3 => {
                self.select_db();
            }
            "multi" if argc == 1 && !failed => {
                self.in_multi = true;
                self.pre_multi_dbnum = self.dbnum;
            }
            "exec" if argc == 1 && self.in_multi => {
                self.in_multi = false;
                if failed || matches!(format::unwrap_attr(reply), Value::Nil | Value::NilArray) {
                    self.dbnum = self.pre_multi_dbnum;
                    self.input_dbnum = self.dbnum;
                }
            }
            "discard" if argc == 1 && !failed => {
                self.in_multi = false;
                self.dbnum = self.pre_multi_dbnum;
                self.input_dbnum = self.dbnum;
            }
            "reset" if argc == 1 && !failed => {
                self.in_multi = false;
                self.dbnum = 0;
                self.input_dbnum = 0;
                self.current_resp3 = false;
            }
            "hello" => match format::unwrap_attr(reply) {
                Value::Map(_) => self.current_resp3 = true,
                Value::Array(_) => self.current_resp3 = false,
                _ => {}
            },
            _ => {}
        }
    }

    /// Prints a push message that arrived outside a subscription.
    fn print_push(&mut self, v: &Value) {
        if !self.push_output {
            return;
        }
        let mut out = Vec::new();
        if let (Output::Standard, Value::Push(items)) = (self.style.output, v) {
            if let [Value::Bulk(kind), Value::Array(keys)] = items.as_slice() {
                if kind.as_slice() == b"invalidate" {
                    out.extend_from_slice(b"-> invalidate: ");
                    for (i, k) in keys.iter().enumerate() {
                        if i > 0 {
                            out.extend_from_slice(b", ");
                        }
                        out.push(b'\'');
                        if let Value::Bulk(k) = k {
                            out.extend_from_slice(k);
                        }
                        out.push(b'\'');
                    }
                    out.push(b'\n');
                    write_stdout(&out);
                    return;
                }
            }
        }
        self.style.reply(&mut out, v, false);
        write_stdout(&out);
    }

    /// Reads one reply and prints it (cliReadReply).
    fn read_reply(&mut self, verbatim: bool) -> Result<Read, ConnError> {
        let reply = loop {
            let res = match self.conn.as_mut() {
                Some(c) => c.read_reply(),
                None => Err(ConnError::Eof),
            };
            match res {
                Ok(v) => {
                    // Outside a subscription, pushes (client tracking...) are not replies.
                    if matches!(v, Value::Push(_)) && !self.pubsub_mode {
                        self.print_push(&v);
                        continue;
                    }
                    break v;
                }
                Err(e) => {
                    if self.interrupt.take_aborted() {
                        self.interrupt.end();
                        self.monitor_mode = false;
                        self.pubsub_mode = false;
                        if !self.connect(true, false) {
                            self.conn = None;
                        }
                        return Ok(Read::Aborted);
                    }
                    if self.shutdown {
                        self.conn = None;
                        return Ok(Read::Closed);
                    }
                    let recoverable = match &e {
                        ConnError::Eof => true,
                        ConnError::Io(io) => matches!(
                            io.kind(),
                            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                        ),
                        ConnError::Protocol(_) => false,
                    };
                    if self.interactive && recoverable {
                        return Err(e);
                    }
                    eprintln!("Error: {e}");
                    std::process::exit(1);
                }
            }
        };

        if let Some(err) = format::error_text(&reply) {
            if self.cfg.cluster_mode && (err.starts_with(b"MOVED ") || err.starts_with(b"ASK ")) {
                self.redirect(err.to_vec());
                return Ok(Read::Reply(reply));
            }
            if !self.interactive && self.cfg.set_errcode {
                eprintln!("{}", String::from_utf8_lossy(err));
                std::process::exit(1);
            }
        }
        let mut out = Vec::new();
        self.style.reply(&mut out, &reply, verbatim);
        write_stdout(&out);
        Ok(Read::Reply(reply))
    }

    /// Follows `-MOVED slot host:port` / `-ASK slot host:port` (with `-c`).
    fn redirect(&mut self, err: Vec<u8>) {
        let text = String::from_utf8_lossy(&err).into_owned();
        let mut parts = text.split(' ');
        let kind = parts.next().unwrap_or("");
        let slot = atoi(parts.next().unwrap_or(""));
        let addr = parts.next().unwrap_or("");
        if let Some(colon) = addr.rfind(':') {
            if colon > 0 {
                self.cfg.host = addr[..colon].to_string();
            }
            self.cfg.port = u16::try_from(atoi(&addr[colon + 1..])).unwrap_or(self.cfg.port);
        }
        self.cfg.socket = None;
        if self.interactive {
            out!(
                "-> Redirected to slot [{slot}] located at {}:{}\n",
                self.cfg.host,
                self.cfg.port
            );
        }
        self.cluster_reissue = true;
        self.cluster_asking = kind == "ASK";
    }

    /// A command for the tools (--stat, --latency...): reconnects, retrying every second,
    /// while the server is unreachable.
    pub fn reconnecting_command(&mut self, args: &[&[u8]]) -> Value {
        let mut tries = 0;
        loop {
            if let Some(conn) = self.conn.as_mut() {
                match conn.command(args) {
                    Ok(v) => {
                        if tries > 0 {
                            out!("\r\x1b[0K");
                        }
                        return v;
                    }
                    Err(ConnError::Protocol(m)) => {
                        eprintln!("Error: {m}");
                        std::process::exit(1);
                    }
                    Err(_) => self.conn = None,
                }
            }
            tries += 1;
            out!("\r\x1b[0KReconnecting... {tries}\r");
            let target = self.cfg.target();
            if let Ok(c) = Conn::connect(&target, self.cfg.timeout) {
                self.conn = Some(c);
                self.dbnum = 0;
                let _ = self.auth() && self.select_db() && self.switch_proto();
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// A command for the tools that exits on I/O errors.
    pub fn command_or_exit(&mut self, args: &[&[u8]]) -> Value {
        match self.conn.as_mut().map(|c| c.command(args)) {
            Some(Ok(v)) => v,
            _ => {
                eprintln!("\nI/O error");
                std::process::exit(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn text_commands_are_printed_verbatim() {
        assert!(prints_verbatim(&argv(&["INFO"])));
        assert!(prints_verbatim(&argv(&["client", "LIST"])));
        assert!(prints_verbatim(&argv(&["memory", "doctor"])));
        assert!(!prints_verbatim(&argv(&["client", "id"])));
        assert!(!prints_verbatim(&argv(&["cluster", "nodes", "x"])));
    }

    #[test]
    fn the_prompt_shows_database_and_transaction() {
        let style = Style {
            output: Output::Standard,
            mb_delim: b"\n".to_vec(),
            cmd_delim: b"\n".to_vec(),
            ascii_json: false,
        };
        let mut s = Session::new(Config::default(), style, false);
        assert_eq!(s.prompt(), "not connected> ");
        // A connection is needed for the normal prompt: fake one with a socket pair.
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        s.conn = Some(Conn::from_stream(Stream::Unix(a)));
        assert_eq!(s.prompt(), "127.0.0.1:6379> ");
        s.dbnum = 3;
        s.in_multi = true;
        assert_eq!(s.prompt(), "127.0.0.1:6379[3](TX)> ");
        s.cfg.host = "::1".into();
        s.in_multi = false;
        assert_eq!(s.prompt(), "[::1]:6379[3]> ");
    }
}
