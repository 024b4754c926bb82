//! The interactive mode: a prompt with line editing, persistent history, argument hints and
//! tab completion when stdin is a terminal; plain line-by-line reading (no prompt, no
//! history) when commands are piped in.
//!
//! History lives in `~/.kilncli_history` (or `$KILNCLI_HISTFILE`; `/dev/null` disables it),
//! one entry per line like redis-cli's, keeping the last 100 entries. Commands that carry
//! secrets (AUTH, CONFIG SET requirepass...) stay in the in-memory history only.
//! Preferences (`:set hints` / `:set nohints`) can be put in `~/.kilnclirc`
//! (`$KILNCLI_RCFILE`).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::{DefaultHistory, History};
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};

use crate::format::Output;
use crate::help::{is_sensitive, HelpTable};
use crate::out;
use crate::session::Session;
use crate::split::split_args;

/// Entries kept in the history (linenoise's default).
const HISTORY_MAX: usize = 100;

/// Hints, highlighting of hints and completion for rustyline.
struct CliHelper {
    help: Rc<RefCell<HelpTable>>,
    hints: Rc<Cell<bool>>,
}

impl Completer for CliHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok((0, self.help.borrow().completions(&line[..pos])))
    }
}

impl Hinter for CliHelper {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, _: &Context<'_>) -> Option<String> {
        if !self.hints.get() || pos < line.len() {
            return None;
        }
        self.help.borrow().hint(line)
    }
}

impl Highlighter for CliHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        // Dark grey, as redis-cli shows hints.
        Cow::Owned(format!("\x1b[0;90;49m{hint}\x1b[0m"))
    }
}

impl Validator for CliHelper {}
impl Helper for CliHelper {}

/// A dotfile path: `$<env>` if set (`/dev/null` means none), else `$HOME/<name>`.
fn dotfile(env: &str, name: &str) -> Option<PathBuf> {
    match std::env::var_os(env) {
        Some(p) if !p.is_empty() => {
            if p == "/dev/null" {
                None
            } else {
                Some(PathBuf::from(p))
            }
        }
        _ => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(name)),
    }
}

/// The history kept for the history file.
struct HistoryFile {
    path: Option<PathBuf>,
    /// Entries, with whether they may be written to the file.
    entries: Vec<(String, bool)>,
}

impl HistoryFile {
    fn load(path: Option<PathBuf>) -> Self {
        let mut entries = Vec::new();
        if let Some(p) = &path {
            if let Ok(text) = std::fs::read(p) {
                for line in String::from_utf8_lossy(&text).lines() {
                    let line = line.trim_end_matches('\r');
                    if !line.is_empty() {
                        entries.push((line.to_string(), true));
                    }
                }
            }
        }
        let excess = entries.len().saturating_sub(HISTORY_MAX);
        entries.drain(..excess);
        Self { path, entries }
    }

    fn add(&mut self, line: &str, savable: bool) {
        if self.entries.last().is_some_and(|(l, _)| l == line) {
            return;
        }
        self.entries.push((line.to_string(), savable));
        let excess = self.entries.len().saturating_sub(HISTORY_MAX);
        self.entries.drain(..excess);
    }

    fn save(&self) {
        let Some(p) = &self.path else { return };
        let mut text = String::new();
        for (line, savable) in &self.entries {
            if *savable {
                text.push_str(line);
                text.push('\n');
            }
        }
        let _ = std::fs::write(p, text);
    }
}

/// Applies a `:set ...` preference.
fn set_preference(argv: &[Vec<u8>], interactive: bool, hints: &Cell<bool>) {
    let word = |i: usize| String::from_utf8_lossy(&argv[i]).into_owned();
    let origin = if interactive { "" } else { ".kilnclirc: " };
    if word(0).eq_ignore_ascii_case(":set") && argv.len() >= 2 {
        match word(1).to_ascii_lowercase().as_str() {
            "hints" => hints.set(true),
            "nohints" => hints.set(false),
            _ => out!("{origin}unknown kiln-cli preference '{}'\n", word(1)),
        }
    } else {
        out!("{origin}unknown kiln-cli internal command '{}'\n", word(0));
    }
}

fn load_preferences(hints: &Cell<bool>) {
    let Some(path) = dotfile("KILNCLI_RCFILE", ".kilnclirc") else {
        return;
    };
    let Ok(text) = std::fs::read(path) else {
        return;
    };
    for line in text.split(|&c| c == b'\n') {
        if let Some(argv) = split_args(line) {
            if !argv.is_empty() {
                set_preference(&argv, false, hints);
            }
        }
    }
}

/// Reads a leading repeat count (`3 INCR x`) like C `strtol`: `None` when the first word
/// is not a number, `Some(None)` when it is one but not a usable count.
fn repeat_prefix(word: &[u8]) -> Option<Option<i64>> {
    let s = std::str::from_utf8(word).ok()?;
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if !digits.is_empty() && !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if digits.is_empty() && !s.is_empty() {
        return None;
    }
    // strtol consumed everything: a number, or an empty word (which reads as 0).
    Some(t.parse::<i64>().ok().filter(|&n| n > 0))
}

struct LineContext<'a> {
    history: Option<&'a mut HistoryFile>,
    editor: Option<&'a mut Editor<CliHelper, DefaultHistory>>,
    hints: &'a Cell<bool>,
}

/// Runs one typed line.
fn run_line(s: &mut Session, line: &[u8], ctx: &mut LineContext<'_>) {
    let text = String::from_utf8_lossy(line).into_owned();
    let remember = |ctx: &mut LineContext<'_>, savable: bool| {
        if let Some(ed) = ctx.editor.as_deref_mut() {
            let _ = ed.add_history_entry(text.as_str());
        }
        if let Some(h) = ctx.history.as_deref_mut() {
            h.add(&text, savable);
            if savable {
                h.save();
            }
        }
    };
    let Some(argv) = split_args(line) else {
        out!("Invalid argument(s)\n");
        remember(ctx, true);
        return;
    };
    if argv.is_empty() {
        return;
    }
    let (repeat, skip) = match (argv.len() > 1).then(|| repeat_prefix(&argv[0])).flatten() {
        Some(Some(n)) => (n, 1),
        Some(None) => {
            out!("Invalid kiln-cli repeat command option value.\n");
            return;
        }
        None => (1, 0),
    };
    remember(ctx, !is_sensitive(&argv[skip..]));

    let first = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    if first == "quit" || first == "exit" {
        std::process::exit(0);
    } else if first.starts_with(':') {
        set_preference(&argv, true, ctx.hints);
    } else if first == "restart" {
        out!("Use 'restart' only in Lua debugging mode.\n");
    } else if argv.len() == 3 && first == "connect" {
        s.cfg.host = String::from_utf8_lossy(&argv[1]).into_owned();
        s.cfg.port =
            u16::try_from(crate::opts::atoi(&String::from_utf8_lossy(&argv[2]))).unwrap_or(0);
        s.cfg.socket = None;
        s.reset_help();
        s.connect(true, false);
        s.load_help();
    } else if argv.len() == 1 && first == "clear" {
        match ctx.editor.as_deref_mut() {
            Some(ed) => {
                let _ = ed.clear_screen();
            }
            None => out!("\x1b[H\x1b[2J"),
        }
    } else {
        let start = Instant::now();
        s.issue(&argv[skip..], repeat);
        let elapsed = start.elapsed();
        if elapsed.as_millis() >= 500 && s.style.output == Output::Standard {
            out!("({:.2}s)\n", elapsed.as_secs_f64());
        }
    }
}

/// Installs the Ctrl-C handler: it ends a MONITOR/SUBSCRIBE stream, or the program.
fn install_sigint(s: &Session) {
    let interrupt = s.interrupt.clone();
    let Ok(mut signals) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT]) else {
        return;
    };
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if !interrupt.fire() {
                std::process::exit(1);
            }
        }
    });
}

/// Runs the interactive mode; never returns.
pub fn run(s: &mut Session) -> ! {
    s.interactive = true;
    install_sigint(s);
    let hints = Rc::new(Cell::new(true));
    if !std::io::stdin().is_terminal() {
        // Commands piped in: one per line, no prompt, no history.
        let mut stdin = std::io::stdin().lock();
        let mut line = Vec::new();
        let mut ctx = LineContext {
            history: None,
            editor: None,
            hints: &hints,
        };
        loop {
            line.clear();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if !line.is_empty() {
                run_line(s, &line, &mut ctx);
            }
        }
        std::process::exit(if s.unreachable { 1 } else { 0 });
    }

    s.check_alive = true;
    s.load_help();
    let mut history = HistoryFile::load(dotfile("KILNCLI_HISTFILE", ".kilncli_history"));
    load_preferences(&hints);
    let config = Config::builder()
        .auto_add_history(false)
        .completion_type(CompletionType::Circular)
        .check_cursor_position(false)
        .build();
    let mut editor: Editor<CliHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("kiln-cli: cannot use the terminal: {e}");
            std::process::exit(1);
        }
    };
    let _ = editor.history_mut().set_max_len(HISTORY_MAX);
    editor.set_helper(Some(CliHelper {
        help: s.help.clone(),
        hints: hints.clone(),
    }));
    for (line, _) in &history.entries {
        let _ = editor.add_history_entry(line.as_str());
    }
    loop {
        let prompt = s.prompt();
        match editor.readline(&prompt) {
            Ok(text) => {
                // A paste may bring several lines at once: run them one by one.
                for line in text.split(['\n', '\r']).filter(|l| !l.is_empty()) {
                    let mut ctx = LineContext {
                        history: Some(&mut history),
                        editor: Some(&mut editor),
                        hints: &hints,
                    };
                    run_line(s, line.as_bytes(), &mut ctx);
                }
            }
            // Ctrl-C or Ctrl-D at the prompt ends the session, as in redis-cli.
            Err(ReadlineError::Interrupted) | Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("kiln-cli: {e}");
                break;
            }
        }
    }
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeat_counts_follow_strtol() {
        assert_eq!(repeat_prefix(b"3"), Some(Some(3)));
        assert_eq!(repeat_prefix(b"+4"), Some(Some(4)));
        assert_eq!(repeat_prefix(b"0"), Some(None));
        assert_eq!(repeat_prefix(b"-2"), Some(None));
        assert_eq!(repeat_prefix(b""), Some(None));
        assert_eq!(repeat_prefix(b"99999999999999999999"), Some(None));
        assert_eq!(repeat_prefix(b"3x"), None);
        assert_eq!(repeat_prefix(b"get"), None);
        assert_eq!(repeat_prefix(b"+"), None);
    }

    #[test]
    fn history_keeps_the_last_entries_and_skips_secrets_on_disk() {
        let dir = std::env::temp_dir().join(format!("kiln-cli-hist-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("h");
        let mut h = HistoryFile::load(Some(path.clone()));
        for i in 0..150 {
            h.add(&format!("get k{i}"), true);
        }
        h.add("get k149", true);
        h.add("auth secret", false);
        h.save();
        let saved = std::fs::read_to_string(&path).unwrap();
        assert_eq!(saved.lines().count(), 99);
        assert!(saved.starts_with("get k51\n") && saved.ends_with("get k149\n"));
        assert!(!saved.contains("secret"));
        let again = HistoryFile::load(Some(path));
        assert_eq!(again.entries.len(), 99);
        let _ = std::fs::remove_dir_all(dir);
    }
}
