//! `SLOWLOG GET | LEN | RESET | HELP`, and [`log`], which the dispatcher calls for a command
//! that ran at least `slowlog-log-slower-than` microseconds (see `crate::slowlog`).

use super::{container, help_reply};
use crate::command::flags::*;
use crate::command::{Cmd, CommandSpec, Ctx, Keys};
use crate::error::{CmdResult, CommandError, E, SLOWLOG_COUNT};

const SLOWLOG_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("get", -2, ADMIN | LOADING | STALE, Keys::None, slowlog_get)
        .group("server")
        .since("2.2.12")
        .summary("Get the slow log's entries")
        .complexity("O(N) where N is the number of entries returned")
        .syntax("[count]"),
    CommandSpec::new("help", 2, LOADING | STALE, Keys::None, slowlog_help)
        .group("server")
        .since("6.2.0")
        .summary("Show helpful text about the different subcommands")
        .complexity("O(1)"),
    CommandSpec::new("len", 2, ADMIN | LOADING | STALE, Keys::None, slowlog_len)
        .group("server")
        .since("2.2.12")
        .summary("Get the slow log's length")
        .complexity("O(1)"),
    CommandSpec::new(
        "reset",
        2,
        ADMIN | LOADING | STALE,
        Keys::None,
        slowlog_reset,
    )
    .group("server")
    .since("2.2.12")
    .summary("Clear all entries from the slow log")
    .complexity("O(N) where N is the number of entries in the slowlog"),
];

/// The `SLOWLOG` entry of the family's table.
pub(super) const SLOWLOG: CommandSpec = CommandSpec::new("slowlog", -2, 0, Keys::None, container)
    .group("server")
    .since("2.2.12")
    .summary("A container for slow log commands")
    .complexity("Depends on subcommand.")
    .subcommands(SLOWLOG_SUBCOMMANDS);

/// Logs the command that just ran for `usec` microseconds (the caller checked the
/// threshold and the command's `skip_slowlog` flag). Redis logs a blocked command once it
/// is served; Kiln leaves the blocking call out.
#[cold]
pub(crate) fn log(cx: &mut Ctx, cmd: &Cmd, args: &[&[u8]], usec: u64) {
    if cx.client.blocked.is_some() {
        return;
    }
    let redact = crate::slowlog::redacted(&cmd.fullname, args);
    let (addr, name) = if cx.script_call {
        // Redis's Lua client: no connection, no name.
        ("?:0".to_string(), Vec::new())
    } else {
        let h = &cx.client.handle;
        (h.addr.clone(), h.info.lock().name.clone())
    };
    let now = crate::clock::now_ms() / 1000;
    cx.server.slowlog.push(args, &redact, usec, now, addr, name);
}

/// `SLOWLOG GET [count]`: the newest `count` entries (10 by default, -1 for all), each
/// `[id, unix time, µs, [args...], addr, name]`. O(count).
fn slowlog_get(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(CommandError::bad_subcommand(b"slowlog", args[1]));
    }
    let count = match args.get(2) {
        None => Some(10),
        Some(a) => match crate::util::parse_i64(a) {
            Some(-1) => None,
            Some(n) if n >= 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => return Err(E(SLOWLOG_COUNT)),
        },
    };
    let entries = cx.server.slowlog.get(count);
    let out = &mut cx.out;
    out.array(entries.len());
    for e in entries {
        out.array(6);
        out.int(e.id as i64);
        out.int(e.time as i64);
        out.int(e.usec as i64);
        out.array(e.args.len());
        for a in &e.args {
            out.bulk(a);
        }
        out.bulk(e.addr.as_bytes());
        out.bulk(&e.name);
    }
    Ok(())
}

/// `SLOWLOG LEN`. O(1).
fn slowlog_len(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    cx.out.int(cx.server.slowlog.len() as i64);
    Ok(())
}

/// `SLOWLOG RESET`. O(N).
fn slowlog_reset(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    cx.server.slowlog.reset();
    cx.out.ok();
    Ok(())
}

/// `SLOWLOG HELP`
fn slowlog_help(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    help_reply(
        &mut cx.out,
        "SLOWLOG",
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    );
    Ok(())
}
