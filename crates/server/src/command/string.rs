//! String commands: GET, SET and friends.

use super::flags::*;
use super::{Args, CommandSpec, Ctx, Keys};
use crate::error::{CmdResult, CommandError, E, SYNTAX};
use crate::storage::Entry;

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("get", 2, READONLY | FAST, Keys::Range(1, 1, 1), get)
        .group("string")
        .summary("Returns the string value of a key.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new("set", -3, WRITE | DENYOOM, Keys::Range(1, 1, 1), set)
        .group("string")
        .summary("Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.")
        .complexity("O(1)")
        .syntax("key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]"),
];

/// `GET key`: the value, nil, or WRONGTYPE. O(1).
fn get(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let hit = match sh.get(h, key, now) {
        Some(e) => {
            let v = e.as_str().ok_or_else(CommandError::wrong_type)?;
            out.bulk(v);
            e.touch(lru);
            true
        }
        None => {
            out.null();
            false
        }
    };
    cx.hit(hit);
    Ok(())
}

/// Expiry options shared by SET and GETEX: an absolute deadline in unix ms.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Ttl {
    /// No expiry option: the key loses any TTL it had (SET) or keeps it (GETEX).
    None,
    KeepTtl,
    Persist,
    At(u64),
}

/// Converts an EX/PX/EXAT/PXAT argument to an absolute deadline, with Redis's checks.
pub(super) fn deadline(cmd: &str, unit_ms: i64, absolute: bool, arg: &[u8], now: u64) -> Result<u64, CommandError> {
    let v = super::args::int(arg)?;
    if v <= 0 {
        return Err(CommandError::invalid_expire(cmd));
    }
    let ms = v
        .checked_mul(unit_ms)
        .ok_or_else(|| CommandError::invalid_expire(cmd))?;
    let at = if absolute {
        ms
    } else {
        ms.checked_add(now as i64)
            .ok_or_else(|| CommandError::invalid_expire(cmd))?
    };
    Ok(at as u64)
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ms | KEEPTTL]`. O(1).
fn set(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (key, val) = (args[1], args[2]);
    let now = cx.now;
    let (mut nx, mut xx, mut get) = (false, false, false);
    let mut ttl = Ttl::None;
    let mut a = Args::new(args, 3);
    while let Some(opt) = a.peek() {
        a.next()?;
        let expire = |unit: i64, abs: bool, a: &mut Args| -> Result<Ttl, CommandError> {
            if ttl != Ttl::None {
                return Err(E(SYNTAX));
            }
            let arg = a.next()?;
            Ok(Ttl::At(deadline("set", unit, abs, arg, now)?))
        };
        match opt.to_ascii_uppercase().as_slice() {
            b"NX" if !xx => nx = true,
            b"XX" if !nx => xx = true,
            b"GET" => get = true,
            b"EX" => ttl = expire(1000, false, &mut a)?,
            b"PX" => ttl = expire(1, false, &mut a)?,
            b"EXAT" => ttl = expire(1000, true, &mut a)?,
            b"PXAT" => ttl = expire(1, true, &mut a)?,
            b"KEEPTTL" if ttl == Ttl::None => ttl = Ttl::KeepTtl,
            _ => return Err(E(SYNTAX)),
        }
    }
    let lru = cx.lru();
    let (sh, h, out) = cx.shard_out(key)?;
    let old = sh.get(h, key, now);
    let exists = old.is_some();
    if get {
        match old {
            Some(e) => out.bulk(e.as_str().ok_or_else(CommandError::wrong_type)?),
            None => out.null(),
        }
    }
    if (nx && exists) || (xx && !exists) {
        if !get {
            out.null();
        }
        return Ok(());
    }
    let entry = Entry::string(key, val, lru);
    match ttl {
        Ttl::KeepTtl => {
            sh.insert_keep_ttl(h, entry);
        }
        Ttl::At(at) if at <= now => {
            // A deadline in the past: the key ends up deleted, as in Redis.
            sh.remove(h, key);
        }
        Ttl::At(at) => {
            sh.insert(h, entry);
            sh.set_expire(h, key, at);
        }
        Ttl::None | Ttl::Persist => {
            sh.insert(h, entry);
        }
    }
    if !get {
        out.ok();
    }
    cx.dirty(1);
    Ok(())
}
