//! `TIME`.

use crate::command::flags::*;
use crate::command::{CommandSpec, Ctx, Keys};
use crate::error::CmdResult;

/// The `TIME` entry of the family's table.
pub(super) const TIME: CommandSpec =
    CommandSpec::new("time", 1, LOADING | STALE | FAST, Keys::None, time)
        .group("server")
        .since("2.6.0")
        .summary("Return the current server time")
        .complexity("O(1)");

/// `TIME`: the server's unix time as [seconds, microseconds]. O(1).
fn time(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let us = crate::clock::now_us();
    let mut b = itoa::Buffer::new();
    cx.out.array(2);
    cx.out.bulk(b.format(us / 1_000_000).as_bytes());
    cx.out.bulk(b.format(us % 1_000_000).as_bytes());
    Ok(())
}
