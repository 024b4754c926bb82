//! What a command's table entry says beyond its [`CommandSpec`]: the part of Redis's command
//! table that clients read (ACL categories, tips, the legacy key triple, key specs with their
//! access flags), and the key finding built on it that `COMMAND GETKEYS` and WATCH share.
//!
//! Everything written by hand about a command is in its family's [`CommandSpec`]: behaviour
//! (handler, arity, flags, Kiln key spec) and documentation (group, since, summary,
//! complexity, argument synopsis). What only Redis's own definitions say is generated from
//! redis-server 7.0 into [`redis_7_0`] by `meta/generate.py`, one row per command and
//! subcommand (`.ci/command-meta` fails CI when the checked-in rows are not what the installed
//! redis-server reports). [`CommandTable::build`](super::CommandTable::build) joins each
//! command's row into its [`Cmd`] once, as a [`Meta`]; nothing reads the rows after that. A
//! command Redis 7.0 does not have (its `since` is later) gets its [`Meta`] derived from its
//! spec instead.

mod redis_7_0;

use std::borrow::Cow;

use super::flags::*;
use super::{Cmd, CommandSpec, Keys};
use crate::error::{CommandError, E, GETKEYS_ARITY, GETKEYS_INVALID, GETKEYS_NO_KEYS};

/// Redis 7.0's definition of one command or subcommand, as its `COMMAND INFO` reports it
/// (generated: see the module docs).
pub(super) struct RedisEntry {
    /// Full name: `get`, `client|kill`.
    pub name: &'static str,
    /// Redis's arity and flags (space separated, `movablekeys` included), only checked
    /// against the spec's (a unit test): Kiln's own are the ones that count.
    #[cfg_attr(not(test), allow(dead_code))]
    pub arity: i32,
    pub flags: &'static str,
    /// ACL categories the flags do not imply, space separated (`@string`).
    pub acl: &'static str,
    /// Tips, space separated (`nondeterministic_output request_policy:all_shards`).
    pub tips: &'static str,
    /// The legacy (first key, last key, step) triple.
    pub legacy: (i32, i32, i32),
    pub specs: &'static [KeySpec],
}

impl RedisEntry {
    fn has_flag(&self, flag: &str) -> bool {
        self.flags.split(' ').any(|f| f == flag)
    }
}

/// Redis 7.0's row for a full command name.
fn redis_entry(fullname: &str) -> Option<&'static RedisEntry> {
    let rows = redis_7_0::COMMANDS;
    rows.binary_search_by(|r| r.name.cmp(fullname))
        .ok()
        .map(|i| &rows[i])
}

/// One key spec: where some of a command's keys are and how it uses them.
#[derive(Clone, Copy, Debug)]
pub struct KeySpec {
    pub notes: &'static str,
    /// Space separated, in Redis's order (`RW access update`).
    pub flags: &'static str,
    pub begin: Begin,
    pub find: Find,
}

/// Where the search for a key spec's keys begins.
#[derive(Clone, Copy, Debug)]
pub enum Begin {
    /// At this argument.
    Index(i32),
    /// After this keyword, searched from the argument (negative: backwards from the end).
    Keyword(&'static str, i32),
    Unknown,
}

/// How a key spec's keys follow its start.
#[derive(Clone, Copy, Debug)]
pub enum Find {
    /// (lastkey relative to the start or negative from the end, keystep, limit).
    Range(i32, i32, i32),
    /// (index of the key count relative to the start, first key after it, keystep).
    Keynum(i32, i32, i32),
    Unknown,
}

impl KeySpec {
    pub fn has(&self, flag: &str) -> bool {
        self.flags.split(' ').any(|f| f == flag)
    }
}

/// A command's metadata beyond its spec, joined into its [`Cmd`] when the table is built.
pub struct Meta {
    /// ACL categories, a bit mask over [`CATEGORIES`].
    pub acl: u32,
    /// Tips, space separated.
    pub tips: &'static str,
    /// The legacy (first key, last key, step) triple `COMMAND INFO` reports.
    pub legacy: (i32, i32, i32),
    /// Whether key positions depend on the arguments (`movablekeys`).
    pub movable: bool,
    pub key_specs: Cow<'static, [KeySpec]>,
}

impl Meta {
    /// The metadata of `spec`, named `fullname`: Redis 7.0's, or derived from the spec for a
    /// command Redis 7.0 does not have.
    pub(super) fn join(spec: &CommandSpec, fullname: &str) -> Self {
        let row = redis_entry(fullname);
        let (legacy, movable, tips, key_specs) = match row {
            Some(r) => (
                r.legacy,
                r.has_flag("movablekeys"),
                r.tips,
                Cow::Borrowed(r.specs),
            ),
            None => (
                match spec.keys {
                    Keys::Range(f, l, s) if f > 0 => (f, l, s),
                    _ => (0, 0, 0),
                },
                matches!(spec.keys, Keys::Custom(_) | Keys::CustomOrDb(..)),
                "",
                Cow::Owned(derived_spec(spec).into_iter().collect()),
            ),
        };
        Self {
            acl: acl_mask(spec, row),
            tips,
            legacy,
            movable,
            key_specs,
        }
    }
}

pub(super) use crate::acl::{category_bit, CATEGORIES};

fn bit(name: &str) -> u32 {
    category_bit(name.as_bytes()).unwrap_or(0)
}

/// The category a command group implies, for commands Redis does not have.
fn group_category(group: &str) -> u32 {
    match group {
        "string" => bit("string"),
        "generic" | "keyspace" => bit("keyspace"),
        "connection" => bit("connection"),
        "list" => bit("list"),
        "hash" => bit("hash"),
        "set" => bit("set"),
        "sorted-set" | "sorted_set" | "sortedset" | "zset" => bit("sortedset"),
        "bitmap" => bit("bitmap"),
        "hyperloglog" => bit("hyperloglog"),
        "geo" => bit("geo"),
        "stream" => bit("stream"),
        "transactions" | "transaction" => bit("transaction"),
        "scripting" => bit("scripting"),
        _ => 0,
    }
}

/// A command's ACL categories: Redis's explicit ones (or its group's, for a command Redis
/// does not have) and those Kiln's flags imply.
fn acl_mask(spec: &CommandSpec, row: Option<&RedisEntry>) -> u32 {
    let mut mask = match row {
        Some(r) => r.acl.split_whitespace().map(bit).fold(0, |a, b| a | b),
        // A container's categories are its subcommands' business.
        None if !spec.subcommands.is_empty() => 0,
        None => group_category(spec.group),
    };
    let f = spec.flags;
    if f & WRITE != 0 {
        mask |= bit("write");
    }
    if f & READONLY != 0 && mask & bit("scripting") == 0 {
        mask |= bit("read");
    }
    if f & ADMIN != 0 {
        mask |= bit("admin") | bit("dangerous");
    }
    if f & PUBSUB != 0 {
        mask |= bit("pubsub");
    }
    mask |= if f & FAST != 0 {
        bit("fast")
    } else {
        bit("slow")
    };
    if f & BLOCKING != 0 {
        mask |= bit("blocking");
    }
    mask
}

/// The key spec derived from a Kiln key spec, for commands Redis does not have.
fn derived_spec(spec: &CommandSpec) -> Option<KeySpec> {
    let flags = if spec.flags & WRITE != 0 {
        "RW access update"
    } else if spec.flags & READONLY != 0 {
        "RO access"
    } else {
        "RO"
    };
    let (begin, find) = match spec.keys {
        Keys::Range(f, l, s) if f > 0 => (
            Begin::Index(f),
            Find::Range(if l < 0 { l } else { l - f }, s, 0),
        ),
        Keys::Custom(_) | Keys::CustomOrDb(..) => (Begin::Unknown, Find::Unknown),
        _ => return None,
    };
    Some(KeySpec {
        notes: "",
        flags,
        begin,
        find,
    })
}

impl Cmd {
    /// The key positions in `argv` (a full invocation of this command) with their access
    /// flags, or the error `COMMAND GETKEYS` replies with.
    pub(super) fn keys_and_flags(
        &self,
        argv: &[&[u8]],
    ) -> Result<Vec<(usize, &'static str)>, CommandError> {
        let specs: &[KeySpec] = &self.meta.key_specs;
        if !specs.iter().any(|s| !s.has("not_key")) {
            return Err(E(GETKEYS_NO_KEYS));
        }
        if !self.spec.arity_ok(argv.len()) {
            return Err(E(GETKEYS_ARITY));
        }
        // Key specs describe the keys exactly unless one of them cannot (an unknown or
        // incomplete search) or the flags depend on the arguments: then the command's own
        // key function, the one the dispatcher locks with, finds them.
        let exact = !specs.iter().any(|s| {
            matches!(s.begin, Begin::Unknown)
                || matches!(s.find, Find::Unknown)
                || s.has("incomplete")
                || s.has("variable_flags")
        });
        let keys = if exact {
            let mut keys = Vec::new();
            for s in specs.iter().filter(|s| !s.has("not_key")) {
                match spec_positions(s, argv) {
                    Some(ps) => keys.extend(ps.into_iter().map(|p| (p, s.flags))),
                    // A key count that does not fit the arguments: no keys at all, as in
                    // Redis.
                    None => {
                        keys.clear();
                        break;
                    }
                }
            }
            keys
        } else {
            kiln_positions(self.spec, argv)
                .into_iter()
                .map(|p| (p, self.flags_at(argv, p)))
                .collect()
        };
        if keys.is_empty() && self.spec.flags & NO_MANDATORY_KEYS == 0 {
            return Err(E(GETKEYS_INVALID));
        }
        Ok(keys)
    }

    /// Positions of the keys this invocation writes (key specs flagged RW, OW or RM; not
    /// the keys it only reads, like a STORE command's sources): the keys whose WATCHes it
    /// invalidates. `None` when the key specs cannot tell.
    pub(super) fn written_positions(&self, argv: &[&[u8]]) -> Option<Vec<usize>> {
        let keys = self.keys_and_flags(argv).ok()?;
        Some(
            keys.into_iter()
                .filter(|(_, f)| {
                    f.split_whitespace()
                        .any(|w| matches!(w, "RW" | "OW" | "RM"))
                })
                .map(|(p, _)| p)
                .collect(),
        )
    }

    /// The access flags of the key at `pos`: from the key spec that covers it.
    fn flags_at(&self, argv: &[&[u8]], pos: usize) -> &'static str {
        if self.fullname == "set" {
            // SET's one key spec is marked variable: GET makes it read the old value.
            let get = argv.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"GET"));
            return if get { "RW access update" } else { "OW update" };
        }
        let specs: &[KeySpec] = &self.meta.key_specs;
        for s in specs {
            if spec_positions(s, argv).is_some_and(|ps| ps.contains(&pos)) {
                return s.flags;
            }
        }
        // Keys found by the command itself (SORT ... STORE) belong to its last unknown spec.
        specs
            .iter()
            .rev()
            .find(|s| matches!(s.begin, Begin::Unknown))
            .or(specs.first())
            .map_or("RW", |s| s.flags)
    }
}

/// The argument positions a key spec selects in `argv`; None when the arguments do not fit
/// the spec (a bad key count, a range past the end).
fn spec_positions(s: &KeySpec, argv: &[&[u8]]) -> Option<Vec<usize>> {
    let argc = argv.len() as i64;
    let start = match s.begin {
        Begin::Index(i) => {
            let i = i64::from(i);
            if i < 0 {
                argc + i
            } else {
                i
            }
        }
        Begin::Keyword(kw, from) => {
            let from = i64::from(from);
            let found = if from >= 0 {
                (from..argc).find(|&i| argv[i as usize].eq_ignore_ascii_case(kw.as_bytes()))
            } else {
                (1..=argc + from)
                    .rev()
                    .find(|&i| argv[i as usize].eq_ignore_ascii_case(kw.as_bytes()))
            };
            match found {
                Some(i) => i + 1,
                // An optional keyword that is absent: this spec has no keys here.
                None => return Some(Vec::new()),
            }
        }
        Begin::Unknown => return None,
    };
    if start <= 0 || start >= argc {
        return Some(Vec::new());
    }
    let (first, last, step) = match s.find {
        Find::Range(lastkey, step, limit) => {
            let lastkey = i64::from(lastkey);
            let limit = i64::from(limit);
            let last = if lastkey >= 0 {
                start + lastkey
            } else if lastkey == -1 && limit > 1 {
                // Only a 1/limit share of the remaining arguments are keys (XREAD STREAMS).
                start + (argc - start) / limit - 1
            } else {
                argc + lastkey
            };
            (start, last, i64::from(step))
        }
        Find::Keynum(idx, firstkey, step) => {
            let at = start + i64::from(idx);
            if at >= argc {
                return None;
            }
            let n = crate::util::parse_i64(argv[at as usize]).filter(|&n| n > 0)?;
            let first = start + i64::from(firstkey);
            let last = (n - 1)
                .checked_mul(i64::from(step).max(1))
                .and_then(|x| x.checked_add(first))?;
            (first, last, i64::from(step))
        }
        Find::Unknown => return None,
    };
    if last >= argc || first >= argc {
        return None;
    }
    let step = step.max(1) as usize;
    Some(
        (first.max(1) as usize..=last.max(0) as usize)
            .step_by(step)
            .collect(),
    )
}

/// Key positions as the command's Kiln key spec finds them: each argument once.
fn kiln_positions(spec: &CommandSpec, argv: &[&[u8]]) -> Vec<usize> {
    match spec.keys {
        Keys::Range(..) => spec.key_positions(argv.len()).collect(),
        Keys::Custom(f) | Keys::CustomOrDb(f, _) => {
            let mut positions = Vec::new();
            f(argv, 0, &mut |_, key| {
                // Keys are slices of the arguments: find which one (MOVE names its key once
                // per database, but it is one argument).
                let pos = argv
                    .iter()
                    .position(|a| std::ptr::eq(a.as_ptr(), key.as_ptr()) && a.len() == key.len());
                if let Some(p) = pos {
                    if !positions.contains(&p) {
                        positions.push(p);
                    }
                }
            });
            positions
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::CommandTable;
    use super::*;

    /// Every command and subcommand of the table.
    fn every_cmd(table: &CommandTable) -> Vec<&Cmd> {
        let mut all = Vec::new();
        for cmd in table.iter() {
            all.push(cmd);
            all.extend(cmd.subs.values());
        }
        all
    }

    /// The commands Redis 7.0 has, each with its row.
    fn with_redis_rows(table: &CommandTable) -> Vec<(&Cmd, &'static RedisEntry)> {
        every_cmd(table)
            .into_iter()
            .filter_map(|c| redis_entry(&c.fullname).map(|r| (c, r)))
            .collect()
    }

    #[test]
    fn redis_rows_are_sorted_for_binary_search() {
        let names: Vec<&str> = redis_7_0::COMMANDS.iter().map(|r| r.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert!(redis_entry("get").is_some());
        assert!(redis_entry("client|kill").is_some());
        assert!(redis_entry("nosuch").is_none());
    }

    /// (major, minor) of a `since` version.
    fn version(v: &str) -> (u32, u32) {
        let mut parts = v.split('.').map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    /// A command Redis 7.0 has must have its row (a misspelt name would quietly get derived
    /// metadata); one without a row must say it came later.
    #[test]
    fn every_command_has_redis_metadata_or_is_newer_than_7_0() {
        let table = CommandTable::build();
        let mut wrong = Vec::new();
        for cmd in every_cmd(&table) {
            let newer = version(cmd.spec.since) > (7, 0);
            match redis_entry(&cmd.fullname) {
                None if !newer => wrong.push(format!(
                    "{} (since {}): no Redis 7.0 row",
                    cmd.fullname, cmd.spec.since
                )),
                Some(_) if newer => wrong.push(format!(
                    "{} (since {}): Redis 7.0 has it",
                    cmd.fullname, cmd.spec.since
                )),
                _ => {}
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// Where Kiln's table says otherwise than Redis 7.0's, deliberately: (full name, what
    /// differs).
    const DIFFERS_FROM_REDIS_7_0: &[(&str, &str)] = &[
        // Redis 7.2's arity: ZRANK/ZREVRANK take WITHSCORE.
        ("zrank", "arity"),
        ("zrevrank", "arity"),
        // Redis 7.2 marks PUBLISH and SPUBLISH may_replicate.
        ("publish", "flags"),
        ("spublish", "flags"),
        // Kiln never loads a dataset asynchronously, so nothing is no_async_loading.
        ("bgrewriteaof", "flags"),
        ("bgsave", "flags"),
        ("save", "flags"),
    ];

    #[test]
    fn arity_and_flags_agree_with_redis() {
        let table = CommandTable::build();
        let mut wrong = Vec::new();
        for (cmd, r) in with_redis_rows(&table) {
            let allowed = |what: &str| {
                DIFFERS_FROM_REDIS_7_0
                    .iter()
                    .any(|&(n, w)| n == cmd.fullname && w == what)
            };
            if cmd.spec.arity != r.arity && !allowed("arity") {
                wrong.push(format!(
                    "{}: arity {}, Redis {}",
                    cmd.fullname, cmd.spec.arity, r.arity
                ));
            }
            let mut ours: Vec<&str> = crate::command::flags::NAMES
                .iter()
                .filter(|(f, _)| cmd.spec.flags & f != 0)
                .map(|(_, n)| *n)
                .collect();
            let mut theirs: Vec<&str> = r
                .flags
                .split_whitespace()
                .filter(|f| *f != "movablekeys")
                .collect();
            ours.sort_unstable();
            theirs.sort_unstable();
            if ours != theirs && !allowed("flags") {
                wrong.push(format!(
                    "{}: flags {ours:?}, Redis {theirs:?}",
                    cmd.fullname
                ));
            }
            if cmd.spec.arity == r.arity && allowed("arity") || ours == theirs && allowed("flags") {
                wrong.push(format!("{}: listed as differing, but agrees", cmd.fullname));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn key_specs_agree_with_redis() {
        // Kiln must find the same keys as Redis: the dispatcher locks by the one, clients
        // route by the other.
        let table = CommandTable::build();
        let mut wrong = Vec::new();
        for (cmd, r) in with_redis_rows(&table) {
            match cmd.spec.keys {
                Keys::Range(f, l, s) if !r.has_flag("movablekeys") && r.legacy != (f, l, s) => {
                    wrong.push(format!(
                        "{}: {:?}, Redis {:?}",
                        cmd.fullname,
                        (f, l, s),
                        r.legacy
                    ));
                }
                // The dispatcher would lock nothing for a command that has keys.
                Keys::None if r.specs.iter().any(|s| !s.has("not_key")) => {
                    wrong.push(format!("{}: no keys, Redis has key specs", cmd.fullname));
                }
                _ => {}
            }
        }
        assert!(
            wrong.is_empty(),
            "key ranges differ from Redis:\n{}",
            wrong.join("\n")
        );
    }

    #[test]
    fn acl_categories_follow_flags_and_group() {
        let table = CommandTable::build();
        let names = |mask: u32| -> Vec<String> {
            (0..CATEGORIES.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| format!("@{}", CATEGORIES[i]))
                .collect()
        };
        let acl = |name: &[u8]| names(table.get(name).unwrap().meta.acl);
        assert_eq!(acl(b"get"), ["@read", "@string", "@fast"]);
        assert_eq!(acl(b"set"), ["@write", "@string", "@slow"]);
        assert_eq!(acl(b"ping"), ["@fast", "@connection"]);
        let no_touch = &table.get(b"client").unwrap().subs[&b"no-touch"[..]];
        assert_eq!(names(no_touch.meta.acl), ["@slow", "@connection"]);
        assert_eq!(category_bit(b"@CONNECTION"), category_bit(b"connection"));
        assert_eq!(category_bit(b"nosuch"), None);
    }

    fn positions(s: KeySpec, line: &str) -> Option<Vec<usize>> {
        let words: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        spec_positions(&s, &words)
    }

    fn ks(begin: Begin, find: Find) -> KeySpec {
        KeySpec {
            notes: "",
            flags: "RO",
            begin,
            find,
        }
    }

    #[test]
    fn key_specs_find_keys_like_redis() {
        let range = ks(Begin::Index(1), Find::Range(-1, 2, 0));
        assert_eq!(positions(range, "mset a 1 b 2"), Some(vec![1, 3]));
        let keynum = ks(Begin::Index(2), Find::Keynum(0, 1, 1));
        assert_eq!(positions(keynum, "zunionstore d 2 a b"), Some(vec![3, 4]));
        assert_eq!(positions(keynum, "zunionstore d 5 a b"), None);
        assert_eq!(positions(keynum, "zunionstore d 0 a"), None);
        assert_eq!(positions(keynum, "zunionstore d x a"), None);
        assert_eq!(
            positions(keynum, "zunionstore d 9223372036854775807 a"),
            None
        );
        let streams = ks(Begin::Keyword("STREAMS", 1), Find::Range(-1, 1, 2));
        assert_eq!(
            positions(streams, "xread count 1 streams a b 0 0"),
            Some(vec![4, 5])
        );
        assert_eq!(positions(streams, "xread count 1"), Some(vec![]));
        let store = ks(Begin::Keyword("STORE", -2), Find::Range(0, 1, 0));
        assert_eq!(positions(store, "x a STORE d"), Some(vec![3]));
    }

    #[test]
    fn watch_sees_only_the_keys_a_command_writes() {
        let table = CommandTable::build();
        let written = |line: &str| {
            let argv: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            table.resolve(&argv).unwrap().written_positions(&argv)
        };
        assert_eq!(written("set k v"), Some(vec![1]));
        assert_eq!(written("sinterstore d a b"), Some(vec![1]));
        assert_eq!(written("mset a 1 b 2"), Some(vec![1, 3]));
        assert_eq!(written("get k"), Some(vec![]));
    }
}
