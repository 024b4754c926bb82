//! Server commands: INFO, CONFIG, DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME, LASTSAVE, SAVE,
//! BGSAVE, SHUTDOWN, DEBUG, MEMORY, SLOWLOG, LATENCY and MONITOR, one file per command (FLUSHDB and FLUSHALL share one), each
//! with its table entry, handler, helpers and tests. This file assembles the family's
//! table and holds what several of them share.

mod bgsave;
mod config;
mod dbsize;
mod debug;
mod flush;
pub(crate) mod info;
mod lastsave;
mod latency;
mod lazyfree;
mod memory;
pub(crate) mod monitor;
mod save;
mod shutdown;
pub(crate) mod slowlog;
mod swapdb;
mod time;

use super::{CommandSpec, Ctx};
use crate::error::{CmdResult, CommandError, CLIENT_NAME, E};
use crate::reply::Out;

pub(crate) use config::os_error;
pub use config::rewrite_config_text;
pub(crate) use lazyfree::{free_lazily, LAZYFREE_THRESHOLD};

pub(super) const COMMANDS: &[CommandSpec] = &[
    info::INFO,
    config::CONFIG,
    dbsize::DBSIZE,
    flush::FLUSHDB,
    flush::FLUSHALL,
    swapdb::SWAPDB,
    time::TIME,
    lastsave::LASTSAVE,
    save::SAVE,
    bgsave::BGSAVE,
    shutdown::SHUTDOWN,
    debug::DEBUG,
    memory::MEMORY,
    slowlog::SLOWLOG,
    latency::LATENCY,
    monitor::MONITOR,
];

/// A subcommand family's container itself (CONFIG, MEMORY): the dispatcher always resolves
/// a subcommand first, so this only answers if it is ever called directly.
pub(super) fn container(_cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    Err(CommandError::unknown_subcommand(
        args[0],
        args.get(1).copied().unwrap_or_default(),
    ))
}

/// Writes a HELP reply the way Redis lays it out: a header, the given lines, then HELP.
pub(crate) fn help_reply(out: &mut Out, cmd: &str, lines: &[&str]) {
    out.array(lines.len() + 3);
    out.simple(&format!(
        "{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for l in lines {
        out.simple(l);
    }
    out.simple("HELP");
    out.simple("    Prints this help.");
}

/// Whether an `enable-*` option (`no`, `yes`, `local`) lets this client through.
fn enabled_for(cx: &Ctx, option: &str) -> bool {
    match cx.server.config.read().get(option) {
        "yes" => true,
        "local" => cx.client.handle.is_local(),
        _ => false,
    }
}

/// Client names may not contain spaces or special characters (CLIENT SETNAME, HELLO).
pub(super) fn validate_client_name(name: &[u8]) -> CmdResult {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(E(CLIENT_NAME));
    }
    Ok(())
}
