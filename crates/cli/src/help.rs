//! Command help: the `HELP` command, the argument hints shown while typing and tab
//! completion of command names.
//!
//! The table comes from the server's `COMMAND DOCS` when it answers (so it describes exactly
//! the commands that server has), and otherwise from a built-in table of Redis 7.0 commands
//! (`commands.txt`: name, group, version and argument synopsis, without summaries). The
//! synopsis is built from the `COMMAND DOCS` argument tree with the same rules redis-cli's
//! help file was generated with, so `HELP SET` reads the same in both tools.

use kiln_resp::Value;

/// One command (or subcommand: `CONFIG GET`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Upper case, subcommands separated by a space.
    pub name: String,
    /// The argument synopsis (`key value [NX|XX]`).
    pub params: String,
    /// One-line summary, when the server documented one.
    pub summary: Option<String>,
    /// First version with the command.
    pub since: String,
    /// Command group (`string`, `sorted-set`...).
    pub group: String,
}

impl Entry {
    fn words(&self) -> impl Iterator<Item = &str> {
        self.name.split(' ')
    }

    fn word_count(&self) -> usize {
        self.words().count()
    }
}

/// Groups in the order `help @<tab>` offers them.
const GROUPS: &[&str] = &[
    "generic",
    "string",
    "list",
    "set",
    "sorted-set",
    "hash",
    "pubsub",
    "transactions",
    "connection",
    "server",
    "scripting",
    "hyperloglog",
    "cluster",
    "geo",
    "stream",
    "bitmap",
];

/// The help table.
#[derive(Clone, Debug)]
pub struct HelpTable {
    /// Sorted by name.
    pub entries: Vec<Entry>,
    /// Known groups.
    pub groups: Vec<String>,
}

const BUILTIN: &str = include_str!("commands.txt");

impl HelpTable {
    fn with_entries(mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries.dedup_by(|a, b| a.name == b.name);
        let mut groups: Vec<String> = GROUPS.iter().map(|g| g.to_string()).collect();
        for e in &entries {
            if !e.group.is_empty() && !groups.contains(&e.group) {
                groups.push(e.group.clone());
            }
        }
        Self { entries, groups }
    }

    /// The built-in table.
    pub fn builtin() -> Self {
        let entries = BUILTIN
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let mut f = l.splitn(4, '|');
                Some(Entry {
                    name: f.next()?.to_string(),
                    group: f.next()?.to_string(),
                    since: f.next()?.to_string(),
                    params: f.next().unwrap_or("").to_string(),
                    summary: None,
                })
            })
            .collect();
        Self::with_entries(entries)
    }

    /// Builds the table from a `COMMAND DOCS` reply (RESP2 or RESP3); `None` if the reply is
    /// an error or has no commands.
    pub fn from_docs(reply: &Value) -> Option<Self> {
        let mut entries = Vec::new();
        for (name, doc) in pairs(reply)? {
            add_docs(&mut entries, &text(name)?, doc);
        }
        if entries.is_empty() {
            return None;
        }
        Some(Self::with_entries(entries))
    }

    /// Text of `HELP <args>` (`help`, `help @group`, `help command [subcommand]`).
    pub fn help_text(&self, args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = String::new();
        if args.is_empty() {
            return generic_help().into_bytes();
        }
        let first = String::from_utf8_lossy(&args[0]).into_owned();
        let group = first.strip_prefix('@').and_then(|g| {
            self.groups
                .iter()
                .find(|known| known.eq_ignore_ascii_case(g))
                .cloned()
        });
        for e in &self.entries {
            match &group {
                Some(g) => {
                    if &e.group == g {
                        entry_help(&mut out, e, false);
                    }
                }
                None => {
                    let words: Vec<&str> = e.words().collect();
                    if args.len() <= words.len()
                        && args
                            .iter()
                            .zip(&words)
                            .all(|(a, w)| String::from_utf8_lossy(a).eq_ignore_ascii_case(w))
                    {
                        entry_help(&mut out, e, true);
                    }
                }
            }
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    /// The entry for the longest command (with subcommand) that `words` start with.
    fn longest_match(&self, words: &[Vec<u8>]) -> Option<&Entry> {
        let mut best: Option<&Entry> = None;
        for e in &self.entries {
            let n = e.word_count();
            if n > words.len() || best.is_some_and(|b| b.word_count() >= n) {
                continue;
            }
            if e.words()
                .zip(words)
                .all(|(w, a)| String::from_utf8_lossy(a).eq_ignore_ascii_case(w))
            {
                best = Some(e);
            }
        }
        best
    }

    /// The hint shown after what was typed: the synopsis without the arguments already
    /// entered, up to the first optional one (whose position can't be known).
    pub fn hint(&self, line: &str) -> Option<String> {
        let words = crate::split::split_args(line.as_bytes())?;
        if words.is_empty() {
            return None;
        }
        let entry = self.longest_match(&words)?;
        let mut hint = entry.params.as_str();
        let mut to_remove = words.len() - entry.word_count();
        while to_remove > 0 && !hint.is_empty() {
            if hint.starts_with('[') {
                break;
            }
            if hint.starts_with(' ') {
                to_remove -= 1;
            }
            let ch = hint.chars().next().map_or(1, char::len_utf8);
            hint = &hint[ch..];
        }
        let ends_in_space = line.ends_with(|c: char| c.is_ascii_whitespace());
        Some(if ends_in_space {
            hint.to_string()
        } else {
            format!(" {hint}")
        })
    }

    /// Tab completions: every command name the line is a prefix of, and after `help ` also
    /// the `@group` topics. Each candidate is a whole new line.
    pub fn completions(&self, line: &str) -> Vec<String> {
        let (head, rest, with_groups) = match line.get(..5) {
            Some(p) if p.eq_ignore_ascii_case("help ") => {
                let rest = line[5..].trim_start_matches(|c: char| c.is_ascii_whitespace());
                (&line[..line.len() - rest.len()], rest, true)
            }
            _ => ("", line, false),
        };
        let starts = |name: &str| {
            name.len() >= rest.len()
                && name.is_char_boundary(rest.len())
                && name[..rest.len()].eq_ignore_ascii_case(rest)
        };
        let mut out = Vec::new();
        if with_groups {
            for g in &self.groups {
                let topic = format!("@{g}");
                if starts(&topic) {
                    out.push(format!("{head}{topic}"));
                }
            }
        }
        for e in &self.entries {
            if starts(&e.name) {
                out.push(format!("{head}{}", e.name));
            }
        }
        out
    }
}

/// The `help` text with no arguments.
fn generic_help() -> String {
    format!(
        "kiln-cli {}\n\
         To get help about commands type:\n      \
         \"help @<group>\" to get a list of commands in <group>\n      \
         \"help <command>\" for help on <command>\n      \
         \"help <tab>\" to get a list of possible help topics\n      \
         \"quit\" to exit\n\n\
         To set kiln-cli preferences:\n      \
         \":set hints\" enable online hints\n      \
         \":set nohints\" disable online hints\n\
         Set your preferences in ~/.kilnclirc\n",
        crate::VERSION
    )
}

/// Appends the help block of one entry (colours as redis-cli prints them).
fn entry_help(out: &mut String, e: &Entry, with_group: bool) {
    out.push_str(&format!(
        "\r\n  \x1b[1m{}\x1b[0m \x1b[90m{}\x1b[0m\r\n",
        e.name, e.params
    ));
    if let Some(s) = &e.summary {
        out.push_str(&format!("  \x1b[33msummary:\x1b[0m {s}\r\n"));
    }
    out.push_str(&format!("  \x1b[33msince:\x1b[0m {}\r\n", e.since));
    if with_group {
        out.push_str(&format!("  \x1b[33mgroup:\x1b[0m {}\r\n", e.group));
    }
}

/// A string-ish reply as text.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Bulk(b) | Value::Simple(b) | Value::Verbatim(_, b) => {
            Some(String::from_utf8_lossy(b).into_owned())
        }
        _ => None,
    }
}

/// Key/value pairs of a RESP3 map or of a RESP2 flat array.
fn pairs(v: &Value) -> Option<Vec<(&Value, &Value)>> {
    match v {
        Value::Map(p) => Some(p.iter().map(|(k, v)| (k, v)).collect()),
        Value::Array(items) if items.len() % 2 == 0 => {
            Some(items.chunks(2).map(|c| (&c[0], &c[1])).collect())
        }
        _ => None,
    }
}

fn field<'a>(doc: &'a Value, key: &str) -> Option<&'a Value> {
    pairs(doc)?
        .into_iter()
        .find(|(k, _)| text(k).is_some_and(|t| t.eq_ignore_ascii_case(key)))
        .map(|(_, v)| v)
}

fn field_text(doc: &Value, key: &str) -> Option<String> {
    field(doc, key).and_then(text)
}

fn add_docs(entries: &mut Vec<Entry>, name: &str, doc: &Value) {
    let group = field_text(doc, "group").unwrap_or_default();
    let params = match field(doc, "arguments") {
        Some(Value::Array(args)) => args.iter().map(syntax).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    };
    entries.push(Entry {
        name: name.replace('|', " ").to_ascii_uppercase(),
        params,
        summary: field_text(doc, "summary"),
        since: field_text(doc, "since").unwrap_or_default(),
        group,
    });
    if let Some(subs) = field(doc, "subcommands").and_then(pairs) {
        for (sub, sub_doc) in subs {
            if let Some(sub) = text(sub) {
                add_docs(entries, &sub, sub_doc);
            }
        }
    }
}

/// The synopsis of one `COMMAND DOCS` argument.
pub fn syntax(arg: &Value) -> String {
    let kind = field_text(arg, "type").unwrap_or_default();
    let children = || match field(arg, "arguments") {
        Some(Value::Array(a)) => a.iter().map(syntax).collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let mut name = match kind.as_str() {
        "block" => Some(children().join(" ")),
        "oneof" => Some(children().join("|")),
        "pure-token" => None,
        _ => field_text(arg, "display_text")
            .or_else(|| field_text(arg, "display"))
            .or_else(|| field_text(arg, "name")),
    };
    let flags: Vec<String> = match field(arg, "flags") {
        Some(Value::Array(f)) | Some(Value::Set(f)) => f.iter().filter_map(text).collect(),
        _ => Vec::new(),
    };
    let has = |f: &str| flags.iter().any(|x| x == f);
    // An empty token is shown as the two quotes a user has to type.
    let token = field_text(arg, "token").map(|t| if t.is_empty() { "\"\"".to_string() } else { t });
    if has("multiple") {
        let n = name.clone().unwrap_or_default();
        name = Some(match (&token, has("multiple_token")) {
            (Some(t), true) => format!("{n} [{t} {n} ...]"),
            _ => format!("{n} [{n} ...]"),
        });
    }
    if let Some(t) = token {
        name = Some(match name {
            Some(n) => format!("{t} {n}"),
            None => t,
        });
    }
    let name = name.unwrap_or_default();
    if has("optional") {
        format!("[{name}]")
    } else {
        name
    }
}

/// Commands whose arguments may hold secrets: they are kept in the in-memory history but
/// never written to the history file.
pub fn is_sensitive(args: &[Vec<u8>]) -> bool {
    let lower: Vec<String> = args
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let a = |i: usize| lower.get(i).map(String::as_str).unwrap_or("");
    match a(0) {
        "auth" => true,
        "acl" => matches!(a(1), "deluser" | "setuser" | "getuser"),
        "config" if a(1) == "set" => lower.iter().skip(2).step_by(2).any(|p| {
            matches!(
                p.as_str(),
                "masterauth"
                    | "masteruser"
                    | "tls-key-file-pass"
                    | "tls-client-key-file-pass"
                    | "requirepass"
            )
        }),
        "hello" => {
            let mut j = 2;
            while j < lower.len() {
                let more = lower.len() - 1 - j;
                if a(j) == "auth" && more >= 2 {
                    return true;
                } else if a(j) == "setname" && more >= 1 {
                    j += 2;
                } else {
                    return false;
                }
            }
            false
        }
        "migrate" if lower.len() > 7 => {
            for j in 6..lower.len() {
                let more = lower.len() - 1 - j;
                match a(j) {
                    "auth" if more >= 1 => return true,
                    "auth2" if more >= 2 => return true,
                    "keys" if more >= 1 => return false,
                    _ => {}
                }
            }
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    fn map(kv: &[(&str, Value)]) -> Value {
        Value::Map(kv.iter().map(|(k, v)| (bulk(k), v.clone())).collect())
    }

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn the_builtin_table_knows_redis_7_commands() {
        let t = HelpTable::builtin();
        let set = t.entries.iter().find(|e| e.name == "SET").unwrap();
        assert!(set.params.starts_with("key value [NX|XX] [GET]"));
        assert_eq!(set.group, "string");
        assert!(t.entries.iter().any(|e| e.name == "CONFIG GET"));
        assert!(t.entries.windows(2).all(|w| w[0].name < w[1].name));
    }

    #[test]
    fn synopsis_follows_the_argument_tree() {
        let arg = map(&[
            ("name", bulk("expiration")),
            ("type", bulk("oneof")),
            ("flags", Value::Array(vec![bulk("optional")])),
            (
                "arguments",
                Value::Array(vec![
                    map(&[
                        ("name", bulk("seconds")),
                        ("type", bulk("integer")),
                        ("token", bulk("EX")),
                    ]),
                    map(&[
                        ("name", bulk("keepttl")),
                        ("type", bulk("pure-token")),
                        ("token", bulk("KEEPTTL")),
                    ]),
                ]),
            ),
        ]);
        assert_eq!(syntax(&arg), "[EX seconds|KEEPTTL]");
        let multi = map(&[
            ("name", bulk("pattern")),
            ("type", bulk("pattern")),
            ("token", bulk("GET")),
            (
                "flags",
                Value::Array(vec![
                    bulk("optional"),
                    bulk("multiple"),
                    bulk("multiple_token"),
                ]),
            ),
        ]);
        assert_eq!(syntax(&multi), "[GET pattern [GET pattern ...]]");
    }

    #[test]
    fn command_docs_in_resp2_and_resp3_shapes_are_read() {
        let doc = map(&[
            ("summary", bulk("Get it")),
            ("since", bulk("1.0.0")),
            ("group", bulk("string")),
            (
                "arguments",
                Value::Array(vec![map(&[("name", bulk("key")), ("type", bulk("key"))])]),
            ),
        ]);
        let t = HelpTable::from_docs(&Value::Map(vec![(bulk("get"), doc.clone())])).unwrap();
        assert_eq!(t.entries[0].name, "GET");
        assert_eq!(t.entries[0].summary.as_deref(), Some("Get it"));
        let Value::Map(p) = doc else { unreachable!() };
        let flat = Value::Array(p.into_iter().flat_map(|(k, v)| [k, v]).collect());
        let t2 = HelpTable::from_docs(&Value::Array(vec![bulk("get"), flat])).unwrap();
        assert_eq!(t.entries, t2.entries);
        assert!(HelpTable::from_docs(&Value::Error(b"ERR unknown".to_vec())).is_none());
    }

    #[test]
    fn hints_drop_the_arguments_already_typed() {
        let t = HelpTable::builtin();
        assert_eq!(t.hint("get").as_deref(), Some(" key"));
        assert_eq!(t.hint("GET ").as_deref(), Some("key"));
        assert_eq!(t.hint("get a").as_deref(), Some(" "));
        assert!(t.hint("set a").unwrap().starts_with(" value [NX|XX]"));
        assert!(t.hint("set a b c").unwrap().starts_with(" [NX|XX]"));
        assert_eq!(
            t.hint("config get").as_deref(),
            Some(" parameter [parameter ...]")
        );
        assert_eq!(t.hint("nosuchcommand"), None);
        assert_eq!(t.hint(""), None);
    }

    #[test]
    fn completion_offers_commands_and_help_topics() {
        let t = HelpTable::builtin();
        let c = t.completions("conf");
        assert!(c.contains(&"CONFIG".to_string()) && c.contains(&"CONFIG GET".to_string()));
        let c = t.completions("help @str");
        assert_eq!(c, ["help @string", "help @stream"]);
        assert!(t.completions("help ge").contains(&"help GET".to_string()));
        assert!(t.completions("zzz").is_empty());
    }

    #[test]
    fn help_text_lists_matching_commands() {
        let t = HelpTable::builtin();
        let text = String::from_utf8(t.help_text(&args(&["get"]))).unwrap();
        assert!(text.starts_with("\r\n  \x1b[1mGET\x1b[0m \x1b[90mkey\x1b[0m\r\n"));
        assert!(text.ends_with("  \x1b[33mgroup:\x1b[0m string\r\n\r\n"));
        let text = String::from_utf8(t.help_text(&args(&["@hyperloglog"]))).unwrap();
        assert!(text.contains("PFADD") && !text.contains("group:"));
        assert_eq!(t.help_text(&args(&["nosuch"])), b"\r\n");
        assert!(String::from_utf8(t.help_text(&[]))
            .unwrap()
            .contains("help @<group>"));
    }

    #[test]
    fn secrets_are_recognised() {
        assert!(is_sensitive(&args(&["AUTH", "pw"])));
        assert!(is_sensitive(&args(&[
            "config",
            "set",
            "maxmemory",
            "1",
            "requirepass",
            "x"
        ])));
        assert!(!is_sensitive(&args(&["config", "set", "maxmemory", "1"])));
        assert!(is_sensitive(&args(&[
            "hello", "3", "setname", "n", "auth", "u", "p"
        ])));
        assert!(!is_sensitive(&args(&["hello", "3"])));
        assert!(is_sensitive(&args(&[
            "migrate", "h", "1", "", "0", "5", "auth", "pw"
        ])));
        assert!(!is_sensitive(&args(&["get", "auth"])));
    }
}
