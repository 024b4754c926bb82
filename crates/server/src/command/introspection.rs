//! COMMAND and its subcommands, generated from the command table.
//!
//! What a command *is* (name, arity, flags, where its keys are, summary, synopsis) lives in
//! its family's [`CommandSpec`]. What only Redis's own command definitions say, and what
//! clients still read, comes from [`redis_meta`]: Redis 7.0's ACL categories beyond those
//! the flags imply, its tips, and its key specs with their access flags (RW, OW, insert,
//! ...), generated from redis-server by `introspection/gen_redis_meta.py`. A command Redis
//! does not have gets that metadata derived from its spec instead.
//!
//! `COMMAND DOCS` turns each spec's synopsis into Redis's argument tree (see [`syntax`]).

mod redis_meta;
mod syntax;

use std::borrow::Cow;

use super::flags::{self, *};
use super::{Cmd, CommandSpec, CommandTable, Ctx, Keys};
use crate::error::{
    CmdResult, CommandError, E, GETKEYS_ARITY, GETKEYS_INVALID, GETKEYS_NO_COMMAND,
    GETKEYS_NO_KEYS, SYNTAX,
};
use crate::reply::Out;
use syntax::Arg;

pub(super) const COMMANDS: &[CommandSpec] =
    &[
        CommandSpec::new("command", -1, LOADING | STALE, Keys::None, command)
            .group("server")
            .since("2.8.13")
            .summary("Returns detailed information about all commands.")
            .complexity("O(N) where N is the total number of Redis commands")
            .subcommands(SUBCOMMANDS),
    ];

const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("count", 2, LOADING | STALE, Keys::None, count)
        .group("server")
        .since("2.8.13")
        .summary("Returns a count of commands.")
        .complexity("O(1)"),
    CommandSpec::new("docs", -2, LOADING | STALE, Keys::None, docs)
        .group("server")
        .since("7.0.0")
        .summary("Returns documentary information about one, multiple or all commands.")
        .complexity("O(N) where N is the number of commands to look up")
        .syntax("[command-name [command-name ...]]"),
    CommandSpec::new("getkeys", -4, LOADING | STALE, Keys::None, getkeys)
        .group("server")
        .since("2.8.13")
        .summary("Extracts the key names from an arbitrary command.")
        .complexity("O(N) where N is the number of arguments to the command")
        .syntax("command arg [arg ...]"),
    CommandSpec::new(
        "getkeysandflags",
        -4,
        LOADING | STALE,
        Keys::None,
        getkeysandflags,
    )
    .group("server")
    .since("7.0.0")
    .summary("Extracts the key names and access flags for an arbitrary command.")
    .complexity("O(N) where N is the number of arguments to the command")
    .syntax("command arg [arg ...]"),
    CommandSpec::new("help", 2, LOADING | STALE, Keys::None, help)
        .group("server")
        .since("5.0.0")
        .summary("Returns helpful text about the different subcommands.")
        .complexity("O(1)"),
    CommandSpec::new("info", -2, LOADING | STALE, Keys::None, info)
        .group("server")
        .since("2.8.13")
        .summary("Returns information about one, multiple or all commands.")
        .complexity("O(N) where N is the number of commands to look up")
        .syntax("[command-name [command-name ...]]"),
    CommandSpec::new("list", -2, LOADING | STALE, Keys::None, list)
        .group("server")
        .since("7.0.0")
        .summary("Returns a list of command names.")
        .complexity("O(N) where N is the total number of Redis commands")
        .syntax("[FILTERBY <MODULE module-name | ACLCAT category | PATTERN pattern>]"),
];

/// Redis's metadata for one command or subcommand (see the module docs).
struct Meta {
    /// Full name: `get`, `client|kill`.
    name: &'static str,
    /// ACL categories the flags do not imply, space separated (`@string`).
    acl: &'static str,
    /// Tips, space separated (`nondeterministic_output request_policy:all_shards`).
    tips: &'static str,
    /// The legacy (first key, last key, step) triple.
    legacy: (i32, i32, i32),
    /// Whether key positions depend on the arguments (`movablekeys`).
    movable: bool,
    specs: &'static [KeySpec],
}

/// One key spec: where some of a command's keys are and how it uses them.
#[derive(Clone, Copy, Debug)]
struct KeySpec {
    notes: &'static str,
    /// Space separated, in Redis's order (`RW access update`).
    flags: &'static str,
    begin: Begin,
    find: Find,
}

/// Where the search for a key spec's keys begins.
#[derive(Clone, Copy, Debug)]
enum Begin {
    /// At this argument.
    Index(i32),
    /// After this keyword, searched from the argument (negative: backwards from the end).
    Keyword(&'static str, i32),
    Unknown,
}

/// How a key spec's keys follow its start.
#[derive(Clone, Copy, Debug)]
enum Find {
    /// (lastkey relative to the start or negative from the end, keystep, limit).
    Range(i32, i32, i32),
    /// (index of the key count relative to the start, first key after it, keystep).
    Keynum(i32, i32, i32),
    Unknown,
}

impl KeySpec {
    fn has(&self, flag: &str) -> bool {
        self.flags.split(' ').any(|f| f == flag)
    }
}

/// Redis's metadata for a full command name.
fn meta(fullname: &str) -> Option<&'static Meta> {
    let table = redis_meta::META;
    table
        .binary_search_by(|m| m.name.cmp(fullname))
        .ok()
        .map(|i| &table[i])
}

/// ACL categories in the order Redis lists them.
const CATEGORIES: &[&str] = &[
    "@keyspace",
    "@read",
    "@write",
    "@set",
    "@sortedset",
    "@list",
    "@hash",
    "@string",
    "@bitmap",
    "@hyperloglog",
    "@geo",
    "@stream",
    "@pubsub",
    "@admin",
    "@fast",
    "@slow",
    "@blocking",
    "@dangerous",
    "@connection",
    "@transaction",
    "@scripting",
];

/// The bit of a category name (with or without `@`, any case).
fn category_bit(name: &[u8]) -> Option<u32> {
    let name = name.strip_prefix(b"@").unwrap_or(name);
    CATEGORIES
        .iter()
        .position(|c| c.as_bytes()[1..].eq_ignore_ascii_case(name))
        .map(|i| 1 << i)
}

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

/// A command's ACL categories as a bit mask over [`CATEGORIES`].
fn acl_mask(cmd: &Cmd) -> u32 {
    let spec = cmd.spec;
    let mut mask = match meta(&cmd.fullname) {
        Some(m) => m.acl.split_whitespace().map(bit).fold(0, |a, b| a | b),
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
        Keys::Custom(_) => (Begin::Unknown, Find::Unknown),
        _ => return None,
    };
    Some(KeySpec {
        notes: "",
        flags,
        begin,
        find,
    })
}

/// A command's key specs: Redis's, or derived from the Kiln spec.
fn key_specs(cmd: &Cmd) -> Cow<'static, [KeySpec]> {
    match meta(&cmd.fullname) {
        Some(m) => Cow::Borrowed(m.specs),
        None => Cow::Owned(derived_spec(cmd.spec).into_iter().collect()),
    }
}

/// The subcommands of a container in the order its spec lists them.
fn subs_in_order(cmd: &Cmd) -> impl Iterator<Item = &Cmd> {
    cmd.spec
        .subcommands
        .iter()
        .filter_map(move |s| cmd.subs.get(s.name.as_bytes()))
}

/// Finds `name` or `container|sub`, case-insensitively.
fn lookup<'t>(table: &'t CommandTable, name: &[u8]) -> Option<&'t Cmd> {
    match name.iter().position(|&c| c == b'|') {
        None => table.get(name),
        Some(i) => {
            let container = table.get(&name[..i])?;
            container.subs.get(&name[i + 1..].to_ascii_lowercase())
        }
    }
}

/// One `COMMAND INFO` entry: [name, arity, flags, first key, last key, step, ACL categories,
/// tips, key specs, subcommands].
fn write_info(out: &mut Out, cmd: &Cmd) {
    let spec = cmd.spec;
    let m = meta(&cmd.fullname);
    out.array(10);
    out.bulk(cmd.fullname.as_bytes());
    out.int(i64::from(spec.arity));

    let movable = m.map_or(matches!(spec.keys, Keys::Custom(_)), |m| m.movable);
    let n = flags::NAMES
        .iter()
        .filter(|(f, _)| spec.flags & f != 0)
        .count();
    out.set(n + usize::from(movable));
    let mut movable_done = !movable;
    for &(f, name) in flags::NAMES {
        // Redis lists movablekeys just before allow_busy.
        if f == ALLOW_BUSY && !movable_done {
            out.simple("movablekeys");
            movable_done = true;
        }
        if spec.flags & f != 0 {
            out.simple(name);
        }
    }
    if !movable_done {
        out.simple("movablekeys");
    }

    let (first, last, step) = match (m, spec.keys) {
        (Some(m), _) => m.legacy,
        (None, Keys::Range(f, l, s)) if f > 0 => (f, l, s),
        _ => (0, 0, 0),
    };
    out.int(i64::from(first));
    out.int(i64::from(last));
    out.int(i64::from(step));

    let mask = acl_mask(cmd);
    out.set(mask.count_ones() as usize);
    for (i, c) in CATEGORIES.iter().enumerate() {
        if mask & (1 << i) != 0 {
            out.simple(c);
        }
    }

    let tips = m.map_or("", |m| m.tips);
    out.set(tips.split_whitespace().count());
    for t in tips.split_whitespace() {
        out.bulk(t.as_bytes());
    }

    let specs = key_specs(cmd);
    out.set(specs.len());
    for ks in specs.iter() {
        write_key_spec(out, ks);
    }

    if cmd.subs.is_empty() {
        out.set(0);
    } else {
        out.array(cmd.subs.len());
        for sub in subs_in_order(cmd) {
            write_info(out, sub);
        }
    }
}

fn write_key_spec(out: &mut Out, ks: &KeySpec) {
    out.map(if ks.notes.is_empty() { 3 } else { 4 });
    if !ks.notes.is_empty() {
        out.bulk(b"notes");
        out.bulk(ks.notes.as_bytes());
    }
    out.bulk(b"flags");
    out.set(ks.flags.split_whitespace().count());
    for f in ks.flags.split_whitespace() {
        out.simple(f);
    }
    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    match ks.begin {
        Begin::Index(i) => {
            out.bulk(b"index");
            out.bulk(b"spec");
            out.map(1);
            out.bulk(b"index");
            out.int(i64::from(i));
        }
        Begin::Keyword(kw, from) => {
            out.bulk(b"keyword");
            out.bulk(b"spec");
            out.map(2);
            out.bulk(b"keyword");
            out.bulk(kw.as_bytes());
            out.bulk(b"startfrom");
            out.int(i64::from(from));
        }
        Begin::Unknown => {
            out.bulk(b"unknown");
            out.bulk(b"spec");
            out.map(0);
        }
    }
    out.bulk(b"find_keys");
    out.map(2);
    out.bulk(b"type");
    let fields: [(&[u8], i32); 3] = match ks.find {
        Find::Range(last, step, limit) => {
            out.bulk(b"range");
            [(b"lastkey", last), (b"keystep", step), (b"limit", limit)]
        }
        Find::Keynum(idx, first, step) => {
            out.bulk(b"keynum");
            [
                (b"keynumidx", idx),
                (b"firstkey", first),
                (b"keystep", step),
            ]
        }
        Find::Unknown => {
            out.bulk(b"unknown");
            out.bulk(b"spec");
            out.map(0);
            return;
        }
    };
    out.bulk(b"spec");
    out.map(3);
    for (name, v) in fields {
        out.bulk(name);
        out.int(i64::from(v));
    }
}

/// One `COMMAND DOCS` entry: a map of summary, since, group, complexity, arguments and
/// subcommands.
fn write_docs(out: &mut Out, cmd: &Cmd) {
    let spec = cmd.spec;
    let args = syntax::parse(spec.syntax, key_specs(cmd).len());
    let texts = [
        ("summary", spec.summary),
        ("since", spec.since),
        ("group", spec.group),
        ("complexity", spec.complexity),
    ];
    let n = texts.iter().filter(|(_, v)| !v.is_empty()).count()
        + usize::from(!args.is_empty())
        + usize::from(!cmd.subs.is_empty());
    out.map(n);
    for (k, v) in texts {
        if !v.is_empty() {
            out.bulk(k.as_bytes());
            out.bulk(v.as_bytes());
        }
    }
    if !args.is_empty() {
        out.bulk(b"arguments");
        write_args(out, &args);
    }
    if !cmd.subs.is_empty() {
        out.bulk(b"subcommands");
        out.map(cmd.subs.len());
        for sub in subs_in_order(cmd) {
            out.bulk(sub.fullname.as_bytes());
            write_docs(out, sub);
        }
    }
}

fn write_args(out: &mut Out, args: &[Arg]) {
    out.array(args.len());
    for a in args {
        let flags = [
            (a.optional, "optional"),
            (a.multiple, "multiple"),
            (a.multiple_token, "multiple_token"),
        ];
        let nflags = flags.iter().filter(|f| f.0).count();
        let n = 2
            + usize::from(a.key_spec_index.is_some())
            + usize::from(a.token.is_some())
            + usize::from(nflags > 0)
            + usize::from(!a.args.is_empty());
        out.map(n);
        out.bulk(b"name");
        out.bulk(a.name.as_bytes());
        out.bulk(b"type");
        out.bulk(a.kind.name().as_bytes());
        if let Some(i) = a.key_spec_index {
            out.bulk(b"key_spec_index");
            out.int(i as i64);
        }
        if let Some(t) = &a.token {
            out.bulk(b"token");
            out.bulk(t.as_bytes());
        }
        if nflags > 0 {
            out.bulk(b"flags");
            out.set(nflags);
            for (on, name) in flags {
                if on {
                    out.simple(name);
                }
            }
        }
        if !a.args.is_empty() {
            out.bulk(b"arguments");
            write_args(out, &a.args);
        }
    }
}

/// `COMMAND`: every command's `COMMAND INFO` entry. O(N) in the number of commands.
fn command(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let table = &cx.server.commands;
    cx.out.array(table.by_name.len());
    for cmd in table.iter() {
        write_info(&mut cx.out, cmd);
    }
    Ok(())
}

/// `COMMAND COUNT`: the number of top-level commands. O(1).
fn count(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    cx.out.int(cx.server.commands.by_name.len() as i64);
    Ok(())
}

/// `COMMAND INFO [command-name ...]`: the entries of the named commands (`container|sub`
/// names a subcommand), nil for unknown names, all commands without names. O(N) names.
fn info(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() == 2 {
        return command(cx, args);
    }
    let table = &cx.server.commands;
    cx.out.array(args.len() - 2);
    for name in &args[2..] {
        match lookup(table, name) {
            Some(cmd) => write_info(&mut cx.out, cmd),
            None => cx.out.null(),
        }
    }
    Ok(())
}

/// `COMMAND DOCS [command-name ...]`: a map from each known named command (all without
/// names) to its documentation; unknown names are left out. O(N) names.
fn docs(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let table = &cx.server.commands;
    let found: Vec<&Cmd> = if args.len() == 2 {
        table.iter().collect()
    } else {
        args[2..].iter().filter_map(|n| lookup(table, n)).collect()
    };
    cx.out.map(found.len());
    for cmd in found {
        cx.out.bulk(cmd.fullname.as_bytes());
        write_docs(&mut cx.out, cmd);
    }
    Ok(())
}

/// `COMMAND LIST [FILTERBY <MODULE module-name | ACLCAT category | PATTERN pattern>]`: the
/// names of all commands and subcommands, or of those matching the filter. O(N) commands.
fn list(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    enum Filter<'a> {
        All,
        Nothing,
        Category(u32),
        Pattern(&'a [u8]),
    }
    let filter = match args.len() {
        2 => Filter::All,
        5 if args[2].eq_ignore_ascii_case(b"FILTERBY") => {
            let kind = args[3];
            if kind.eq_ignore_ascii_case(b"MODULE") {
                // Kiln has no modules.
                Filter::Nothing
            } else if kind.eq_ignore_ascii_case(b"ACLCAT") {
                category_bit(args[4]).map_or(Filter::Nothing, Filter::Category)
            } else if kind.eq_ignore_ascii_case(b"PATTERN") {
                Filter::Pattern(args[4])
            } else {
                return Err(E(SYNTAX));
            }
        }
        _ => return Err(E(SYNTAX)),
    };
    let keep = |cmd: &Cmd| match filter {
        Filter::All => true,
        Filter::Nothing => false,
        Filter::Category(bit) => acl_mask(cmd) & bit != 0,
        Filter::Pattern(p) => crate::util::glob_match(p, cmd.fullname.as_bytes(), true),
    };
    let mut names: Vec<&str> = Vec::new();
    for cmd in cx.server.commands.iter() {
        if keep(cmd) {
            names.push(&cmd.fullname);
        }
        for sub in subs_in_order(cmd) {
            if keep(sub) {
                names.push(&sub.fullname);
            }
        }
    }
    cx.out.bulks(names.iter().map(|n| n.as_bytes()));
    Ok(())
}

/// `COMMAND GETKEYS command arg [arg ...]`: the keys of a full command. O(N) arguments.
fn getkeys(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let keys = keys_of(&cx.server.commands, &args[2..])?;
    cx.out.array(keys.len());
    for (pos, _) in keys {
        cx.out.bulk(args[2 + pos]);
    }
    Ok(())
}

/// `COMMAND GETKEYSANDFLAGS command arg [arg ...]`: the keys of a full command, each with
/// its access flags. O(N) arguments.
fn getkeysandflags(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let keys = keys_of(&cx.server.commands, &args[2..])?;
    let out = &mut cx.out;
    out.array(keys.len());
    for (pos, flags) in keys {
        out.array(2);
        out.bulk(args[2 + pos]);
        out.set(flags.split_whitespace().count());
        for f in flags.split_whitespace() {
            out.simple(f);
        }
    }
    Ok(())
}

/// Positions of the keys a command writes (key specs flagged RW, OW or RM; not the keys it
/// only reads, like a STORE command's sources): the keys whose WATCHes it invalidates.
/// `None` when the key specs cannot tell.
pub(super) fn written_positions(table: &CommandTable, argv: &[&[u8]]) -> Option<Vec<usize>> {
    let keys = keys_of(table, argv).ok()?;
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

/// The key positions in `argv` (a full command) with their access flags, or the error
/// GETKEYS replies with.
fn keys_of(
    table: &CommandTable,
    argv: &[&[u8]],
) -> Result<Vec<(usize, &'static str)>, CommandError> {
    let mut cmd = table.get(argv[0]).ok_or(E(GETKEYS_NO_COMMAND))?;
    if !cmd.subs.is_empty() && argv.len() >= 2 {
        cmd = cmd
            .subs
            .get(&argv[1].to_ascii_lowercase())
            .ok_or(E(GETKEYS_NO_COMMAND))?;
    }
    let specs = key_specs(cmd);
    if !specs.iter().any(|s| !s.has("not_key")) {
        return Err(E(GETKEYS_NO_KEYS));
    }
    if !cmd.spec.arity_ok(argv.len()) {
        return Err(E(GETKEYS_ARITY));
    }
    // Key specs describe the keys exactly unless one of them cannot (an unknown or incomplete
    // search) or the flags depend on the arguments: then the command's own key function,
    // the one the dispatcher locks with, finds them.
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
                // A key count that does not fit the arguments: no keys at all, as in Redis.
                None => {
                    keys.clear();
                    break;
                }
            }
        }
        keys
    } else {
        kiln_positions(cmd.spec, argv)
            .into_iter()
            .map(|p| (p, flags_at(cmd, &specs, argv, p)))
            .collect()
    };
    if keys.is_empty() && cmd.spec.flags & NO_MANDATORY_KEYS == 0 {
        return Err(E(GETKEYS_INVALID));
    }
    Ok(keys)
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
        Keys::Custom(f) => {
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

/// The access flags of the key at `pos`: from the key spec that covers it.
fn flags_at(cmd: &Cmd, specs: &[KeySpec], argv: &[&[u8]], pos: usize) -> &'static str {
    if cmd.fullname == "set" {
        // SET's one key spec is marked variable: GET makes it read the old value.
        let get = argv.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"GET"));
        return if get { "RW access update" } else { "OW update" };
    }
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

/// `COMMAND HELP`
fn help(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    const LINES: &[&str] = &[
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)",
        "    Return details about every command.",
        "COUNT",
        "    Return the number of commands.",
        "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
        "    Return the names of all commands, or of those matching the filter.",
        "INFO [<command-name> ...]",
        "    Return details about the named commands, or about every command when none is",
        "    named.",
        "DOCS [<command-name> ...]",
        "    Return the documentation of the named commands, or of every command when none",
        "    is named.",
        "GETKEYS <full-command>",
        "    Return the keys a full command would access.",
        "GETKEYSANDFLAGS <full-command>",
        "    Return the keys a full command would access, with how it accesses each.",
        "HELP",
        "    Print this help.",
    ];
    cx.out.array(LINES.len());
    for l in LINES {
        cx.out.simple(l);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_metadata_is_sorted_for_binary_search() {
        let names: Vec<&str> = redis_meta::META.iter().map(|m| m.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert!(meta("get").is_some());
        assert!(meta("client|kill").is_some());
        assert!(meta("nosuch").is_none());
    }

    #[test]
    fn key_specs_agree_with_redis() {
        // Kiln must find the same keys as Redis: the dispatcher locks by the one, clients
        // route by the other.
        let table = CommandTable::build();
        let mut wrong = Vec::new();
        let mut check = |cmd: &Cmd| {
            let Some(m) = meta(&cmd.fullname) else {
                return;
            };
            match cmd.spec.keys {
                Keys::Range(f, l, s) if !m.movable && m.legacy != (f, l, s) => {
                    wrong.push(format!(
                        "{}: {:?}, Redis {:?}",
                        cmd.fullname,
                        (f, l, s),
                        m.legacy
                    ));
                }
                // The dispatcher would lock nothing for a command that has keys.
                Keys::None if m.specs.iter().any(|s| !s.has("not_key")) => {
                    wrong.push(format!("{}: no keys, Redis has key specs", cmd.fullname));
                }
                _ => {}
            }
        };
        for cmd in table.iter() {
            check(cmd);
            for sub in subs_in_order(cmd) {
                check(sub);
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
        let names = |mask: u32| -> Vec<&str> {
            (0..CATEGORIES.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| CATEGORIES[i])
                .collect()
        };
        let get = table.get(b"get").unwrap();
        assert_eq!(names(acl_mask(get)), ["@read", "@string", "@fast"]);
        let set = table.get(b"set").unwrap();
        assert_eq!(names(acl_mask(set)), ["@write", "@string", "@slow"]);
        let ping = table.get(b"ping").unwrap();
        assert_eq!(names(acl_mask(ping)), ["@fast", "@connection"]);
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
}
