//! Keyspace commands that work on keys of any type: DEL, EXISTS, TYPE, KEYS, SCAN, RENAME,
//! the expiry family, OBJECT, ...

use super::flags::*;
use super::{CommandSpec, Ctx, Keys};
use crate::error::CmdResult;

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("del", -2, WRITE, Keys::Range(1, -1, 1), del)
        .group("generic")
        .summary("Deletes one or more keys.")
        .complexity("O(N) where N is the number of keys that will be removed.")
        .syntax("key [key ...]"),
    CommandSpec::new("exists", -2, READONLY | FAST, Keys::Range(1, -1, 1), exists)
        .group("generic")
        .since("1.0.0")
        .summary("Determines whether one or more keys exist.")
        .complexity("O(N) where N is the number of keys to check.")
        .syntax("key [key ...]"),
];

/// `DEL key [key ...]`: the number of keys removed.
fn del(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let now = cx.now;
    let mut n = 0;
    for key in &args[1..] {
        let (sh, h) = cx.shard(key)?;
        if sh.contains(h, key, now) {
            sh.remove(h, key);
            n += 1;
        }
    }
    cx.dirty(n as u64);
    cx.out.int(n);
    Ok(())
}

/// `EXISTS key [key ...]`: how many of the keys exist (repeats count each time).
fn exists(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let now = cx.now;
    let mut n = 0;
    for key in &args[1..] {
        let (sh, h) = cx.shard(key)?;
        if sh.contains(h, key, now) {
            n += 1;
        }
    }
    cx.out.int(n);
    Ok(())
}
