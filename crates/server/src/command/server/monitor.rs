//! `MONITOR`, and [`feed`], which the dispatcher calls for every command while a client
//! monitors (see `crate::monitor`).

use crate::command::flags::*;
use crate::command::{Cmd, CommandSpec, Ctx, Keys};
use crate::error::{CmdResult, E, MONITOR_DENY_BLOCKING};
use crate::monitor::Origin;

/// The `MONITOR` entry of the family's table.
pub(super) const MONITOR: CommandSpec = CommandSpec::new(
    "monitor",
    1,
    ADMIN | NOSCRIPT | LOADING | STALE,
    Keys::None,
    monitor,
)
.group("server")
.since("1.0.0")
.summary("Listen for all requests received by the server in real time")
.complexity("");

/// `MONITOR`: from now on the client receives a line for every command any client runs.
/// Refused inside a transaction; a client that monitors already gets no reply (Redis).
fn monitor(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    if cx.in_exec() {
        return Err(E(MONITOR_DENY_BLOCKING));
    }
    if cx.client.monitor || cx.client.repl.master {
        return Ok(());
    }
    let sub = crate::command::tracking::own_queue(cx);
    cx.server.monitors.add(sub);
    cx.server.observers_changed();
    cx.client.monitor = true;
    crate::command::client::set_flag(&mut cx.client.handle.info.lock().flags, 'O', true);
    cx.out.ok();
    Ok(())
}

/// Leaves MONITOR mode (RESET, and the connection's end).
pub(crate) fn stop(server: &crate::server::Server, c: &mut crate::client::Client) {
    if std::mem::take(&mut c.monitor) {
        server.monitors.remove(c.id);
        server.observers_changed();
        crate::command::client::set_flag(&mut c.handle.info.lock().flags, 'O', false);
    }
}

/// Sends the command that ran (or, for EVAL and FCALL, is about to run) to the monitors,
/// with the database selected after it and its secrets redacted, as Redis does. A
/// monitor is a `normal` class client: that output limit closes one that falls behind.
#[cold]
pub(crate) fn feed(cx: &mut Ctx, cmd: &Cmd, args: &[&[u8]]) {
    let server = cx.server;
    let redact = crate::slowlog::redacted(&cmd.fullname, args);
    let h = &cx.client.handle;
    let origin = if cx.script_call {
        Origin::Script
    } else if h.unix {
        // CLIENT LIST shows `<path>:0`; MONITOR shows the socket as Redis does.
        Origin::Unix(h.addr.strip_suffix(":0").unwrap_or(&h.addr))
    } else {
        Origin::Client(&h.addr)
    };
    let limits = server.hot.obuf_normal.get();
    server
        .monitors
        .feed(cx.client.db, origin, args, &redact, &limits);
}
