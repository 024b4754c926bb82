//! COMMAND and its subcommands, written from the command table alone.
//!
//! Each entry comes from the looked-up [`Cmd`]: its family's [`CommandSpec`] (name, arity,
//! flags, group, since, summary, complexity, synopsis) and the [`Meta`](super::meta::Meta)
//! the table joined to it when it was built (ACL categories, tips, the legacy key triple,
//! key specs with their access flags). `COMMAND DOCS` turns each spec's synopsis into
//! Redis's argument tree (see [`syntax`]).

mod syntax;

use super::flags::{self, *};
use super::meta::{category_bit, Begin, Find, KeySpec, CATEGORIES};
use super::{Cmd, CommandSpec, CommandTable, Ctx, Keys};
use crate::error::{CmdResult, CommandError, E, GETKEYS_NO_COMMAND, SYNTAX};
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
    let meta = &cmd.meta;
    out.array(10);
    out.bulk(cmd.fullname.as_bytes());
    out.int(i64::from(spec.arity));

    let movable = meta.movable;
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

    let (first, last, step) = meta.legacy;
    out.int(i64::from(first));
    out.int(i64::from(last));
    out.int(i64::from(step));

    let mask = meta.acl;
    out.set(mask.count_ones() as usize);
    for (i, c) in CATEGORIES.iter().enumerate() {
        if mask & (1 << i) != 0 {
            out.simple(&format!("@{c}"));
        }
    }

    let tips = meta.tips;
    out.set(tips.split_whitespace().count());
    for t in tips.split_whitespace() {
        out.bulk(t.as_bytes());
    }

    out.set(meta.key_specs.len());
    for ks in meta.key_specs.iter() {
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
    let args = syntax::parse(spec.syntax, cmd.meta.key_specs.len());
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
        Filter::Category(bit) => cmd.meta.acl & bit != 0,
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
    let keys = target(&cx.server.commands, &args[2..])?.keys_and_flags(&args[2..])?;
    cx.out.array(keys.len());
    for (pos, _) in keys {
        cx.out.bulk(args[2 + pos]);
    }
    Ok(())
}

/// `COMMAND GETKEYSANDFLAGS command arg [arg ...]`: the keys of a full command, each with
/// its access flags. O(N) arguments.
fn getkeysandflags(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let keys = target(&cx.server.commands, &args[2..])?.keys_and_flags(&args[2..])?;
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

/// The command (or subcommand) a full invocation `argv` runs, for GETKEYS.
fn target<'t>(table: &'t CommandTable, argv: &[&[u8]]) -> Result<&'t Cmd, CommandError> {
    let cmd = table.get(argv[0]).ok_or(E(GETKEYS_NO_COMMAND))?;
    if cmd.subs.is_empty() || argv.len() < 2 {
        return Ok(cmd);
    }
    cmd.subs
        .get(&argv[1].to_ascii_lowercase())
        .ok_or(E(GETKEYS_NO_COMMAND))
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
