//! `LATENCY LATEST | HISTORY | RESET | GRAPH | DOCTOR | HISTOGRAM | HELP`: the latency
//! monitor's events (`crate::latency`) and the per-command latency histograms
//! (`crate::histogram`, INFO latencystats).

use super::{container, help_reply};
use crate::command::flags::*;
use crate::command::{Cmd, CommandSpec, Ctx, Keys};
use crate::error::{CmdResult, CommandError};

const F: u32 = ADMIN | NOSCRIPT | LOADING | STALE;

const LATENCY_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("doctor", 2, F, Keys::None, latency_doctor)
        .group("server")
        .since("2.8.13")
        .summary("Return a human readable latency analysis report.")
        .complexity("O(1)"),
    CommandSpec::new("graph", 3, F, Keys::None, latency_graph)
        .group("server")
        .since("2.8.13")
        .summary("Return a latency graph for the event.")
        .complexity("O(1)")
        .syntax("event"),
    CommandSpec::new("help", 2, LOADING | STALE, Keys::None, latency_help)
        .group("server")
        .since("2.8.13")
        .summary("Show helpful text about the different subcommands.")
        .complexity("O(1)"),
    CommandSpec::new("histogram", -2, F, Keys::None, latency_histogram)
        .group("server")
        .since("7.0.0")
        .summary("Return the cumulative distribution of latencies of a subset of commands or all.")
        .complexity(
            "O(N) where N is the number of commands with latency information being retrieved.",
        )
        .syntax("[command [command ...]]"),
    CommandSpec::new("history", 3, F, Keys::None, latency_history)
        .group("server")
        .since("2.8.13")
        .summary("Return timestamp-latency samples for the event.")
        .complexity("O(1)")
        .syntax("event"),
    CommandSpec::new("latest", 2, F, Keys::None, latency_latest)
        .group("server")
        .since("2.8.13")
        .summary("Return the latest latency samples for all events.")
        .complexity("O(1)"),
    CommandSpec::new("reset", -2, F, Keys::None, latency_reset)
        .group("server")
        .since("2.8.13")
        .summary("Reset latency data for one or more events.")
        .complexity("O(1)")
        .syntax("[event [event ...]]"),
];

/// The `LATENCY` entry of the family's table.
pub(super) const LATENCY: CommandSpec = CommandSpec::new("latency", -2, 0, Keys::None, container)
    .group("server")
    .since("2.8.13")
    .summary("A container for latency diagnostics commands")
    .complexity("Depends on subcommand.")
    .subcommands(LATENCY_SUBCOMMANDS);

fn unix_now() -> u64 {
    crate::clock::now_ms() / 1000
}

/// `LATENCY LATEST`: `[event, time, latest ms, worst ms]` for every event.
fn latency_latest(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let events = cx.server.latency.events();
    cx.out.array(events.len());
    for (name, ts) in events {
        let last = ts.last();
        cx.out.array(4);
        cx.out.bulk(name.as_bytes());
        cx.out.int(last.time as i64);
        cx.out.int(last.latency as i64);
        cx.out.int(ts.max as i64);
    }
    Ok(())
}

/// `LATENCY HISTORY event`: `[time, ms]` pairs, oldest first (empty for an unknown event).
fn latency_history(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let samples = cx
        .server
        .latency
        .series(args[2])
        .map(|s| s.samples())
        .unwrap_or_default();
    cx.out.array(samples.len());
    for s in samples {
        cx.out.array(2);
        cx.out.int(s.time as i64);
        cx.out.int(s.latency as i64);
    }
    Ok(())
}

/// `LATENCY RESET [event ...]`: how many events were reset.
fn latency_reset(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let n = cx.server.latency.reset(&args[2..]);
    cx.out.int(n as i64);
    Ok(())
}

/// `LATENCY GRAPH event`: Redis's ASCII graph of the event's samples.
fn latency_graph(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let Some(ts) = cx.server.latency.series(args[2]) else {
        return Err(CommandError::Owned(format!(
            "{} '{}'",
            crate::error::NO_SAMPLES,
            String::from_utf8_lossy(args[2])
        )));
    };
    let name = String::from_utf8_lossy(args[2]);
    let g = crate::latency::graph(&name, &ts, unix_now());
    cx.out.verbatim(g.as_bytes());
    Ok(())
}

/// `LATENCY DOCTOR`: a report on the events in Redis's voice.
fn latency_doctor(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let l = &cx.server.latency;
    let report = crate::latency::doctor(&l.events(), l.threshold(), unix_now());
    cx.out.verbatim(report.as_bytes());
    Ok(())
}

/// `LATENCY HISTOGRAM [command ...]`: for every named command (a container's
/// subcommands with it; unknown names skipped), or every command, that has recorded
/// calls: `{name: {calls, histogram_usec: {µs: cumulative count}}}`.
fn latency_histogram(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let server = cx.server;
    let mut cmds: Vec<&Cmd> = Vec::new();
    if args.len() == 2 {
        let mut all: Vec<&Cmd> = server.commands.iter().collect();
        all.sort_by_key(|c| c.id);
        for c in all {
            push_with_subs(c, &mut cmds);
        }
    } else {
        for name in &args[2..] {
            let lower = name.to_ascii_lowercase();
            let mut parts = lower.splitn(2, |&b| b == b'|');
            let top = parts.next().unwrap_or_default();
            let Some(c) = server.commands.by_name.get(top) else {
                continue;
            };
            match parts.next() {
                Some(sub) => {
                    if let Some(s) = c.subs.get(sub) {
                        cmds.push(s);
                    }
                }
                None => push_with_subs(c, &mut cmds),
            }
        }
    }
    let stats = &server.metrics.stats;
    let found: Vec<(&Cmd, crate::histogram::Snapshot)> = cmds
        .into_iter()
        .filter_map(|c| stats.latency_histogram(c.id).map(|h| (c, h)))
        .collect();
    let out = &mut cx.out;
    out.map(found.len());
    for (c, h) in found {
        out.bulk(c.fullname.as_bytes());
        out.map(2);
        out.bulk(b"calls");
        out.int(h.total as i64);
        out.bulk(b"histogram_usec");
        let buckets = h.cumulative();
        out.map(buckets.len());
        for (us, n) in buckets {
            out.int(us as i64);
            out.int(n as i64);
        }
    }
    Ok(())
}

/// A command and its subcommands (by id, the table's order).
fn push_with_subs<'t>(c: &'t Cmd, cmds: &mut Vec<&'t Cmd>) {
    cmds.push(c);
    let mut subs: Vec<&Cmd> = c.subs.values().collect();
    subs.sort_by_key(|s| s.id);
    cmds.extend(subs);
}

/// `LATENCY HELP`
fn latency_help(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    help_reply(
        &mut cx.out,
        "LATENCY",
        &[
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "GRAPH <event>",
            "    Return an ASCII latency graph for the <event> class.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
        ],
    );
    Ok(())
}
