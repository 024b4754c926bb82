//! The sorted set family: ZADD and ZINCRBY; reads by member (ZSCORE, ZMSCORE, ZRANK,
//! ZREVRANK, ZCARD); counts and ranges by rank, score or lex (ZCOUNT, ZLEXCOUNT, ZRANGE with
//! all its forms, ZRANGESTORE and the legacy ZREVRANGE / Z[REV]RANGEBYSCORE /
//! Z[REV]RANGEBYLEX); removals (ZREM, ZREMRANGEBY{RANK,SCORE,LEX}); pops (ZPOPMIN, ZPOPMAX,
//! ZMPOP and the blocking BZPOPMIN, BZPOPMAX, BZMPOP); ZRANDMEMBER; the set operations
//! (ZUNION, ZINTER, ZDIFF, their STORE forms and ZINTERCARD, with plain sets as inputs of
//! score 1); and ZSCAN.
//!
//! Replies follow Redis 7.0 byte for byte: scores are formatted with `%.17g` (bulk strings
//! in RESP2, `,` doubles in RESP3), options are checked in Redis's order (option words, then
//! conflicts, then numbers, then the key), and arguments are parsed with C `strtod`'s
//! leniency where Redis uses it (range bounds accept leading spaces, hex floats and an empty
//! string as 0) and its strictness elsewhere (scores must be the whole argument, overflow
//! is refused). One addition: ZRANK / ZREVRANK accept Redis 7.2's WITHSCORE.
//!
//! Range commands turn their bounds into a span of ranks on the set (see
//! `storage::zset`), so LIMIT offsets and reverse walks cost O(log n), and replies are
//! written straight from the set while its shard is borrowed. Commands with several keys
//! have key specs naming all of them (numkeys ones through `Keys::Custom`), so the
//! dispatcher holds every shard they touch and they are atomic.

use std::sync::atomic::Ordering::Relaxed;

use rand::Rng;

use super::args::{int, parse_cursor};
use super::blocking::parse_timeout;
use super::flags::*;
use super::{CommandSpec, Ctx, Keys};
use crate::error::{
    CmdResult, CommandError, COUNT_NOT_POSITIVE, E, LEX_RANGE_INVALID, LIMIT_NEEDS_BY,
    LIMIT_NEGATIVE, LONG_RANGE, MIN_MAX_NOT_FLOAT, NOT_FLOAT, NOT_POSITIVE, NUMKEYS_NOT_POSITIVE,
    OUT_OF_RANGE, REPLY_TOO_BIG, SCORE_NAN, SYNTAX, WEIGHT_NOT_FLOAT, WITHSCORES_BYLEX,
    ZADD_GT_LT_NX, ZADD_INCR_PAIR, ZADD_NX_XX,
};
use crate::notify::{GENERIC, ZSET};
use crate::reply::Out;
use crate::server::Server;
use crate::storage::entry::ValueRef;
use crate::storage::zset::{LexBound, LexRange, Limits, ScoreRange};
use crate::storage::{Entry, Shard, Value, ZSet};
use crate::util::{glob_match, parse_i64};

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("zadd", -4, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), zadd)
        .group("sorted-set")
        .since("1.2.0")
        .summary("Adds members with scores to a sorted set, or updates their scores; creates the key if needed.")
        .complexity("O(log(N)) for each member added or updated, N being the set's size.")
        .syntax("key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]"),
    CommandSpec::new("zincrby", 4, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), zincrby)
        .group("sorted-set")
        .since("1.2.0")
        .summary("Adds an increment to the score of a member, adding the member if needed.")
        .complexity("O(log(N)) where N is the set's size.")
        .syntax("key increment member"),
    CommandSpec::new("zscore", 3, READONLY | FAST, Keys::Range(1, 1, 1), zscore)
        .group("sorted-set")
        .since("1.2.0")
        .summary("Returns the score of a member.")
        .complexity("O(1)")
        .syntax("key member"),
    CommandSpec::new("zmscore", -3, READONLY | FAST, Keys::Range(1, 1, 1), zmscore)
        .group("sorted-set")
        .since("6.2.0")
        .summary("Returns the scores of several members.")
        .complexity("O(N) where N is the number of members asked for.")
        .syntax("key member [member ...]"),
    CommandSpec::new("zcard", 2, READONLY | FAST, Keys::Range(1, 1, 1), zcard)
        .group("sorted-set")
        .since("1.2.0")
        .summary("Returns the number of members of a sorted set.")
        .complexity("O(1)")
        .syntax("key"),
    CommandSpec::new("zcount", 4, READONLY | FAST, Keys::Range(1, 1, 1), zcount)
        .group("sorted-set")
        .since("2.0.0")
        .summary("Counts the members whose scores are within a range.")
        .complexity("O(log(N)) where N is the set's size.")
        .syntax("key min max"),
    CommandSpec::new("zlexcount", 4, READONLY | FAST, Keys::Range(1, 1, 1), zlexcount)
        .group("sorted-set")
        .since("2.8.9")
        .summary("Counts the members within a lexicographical range.")
        .complexity("O(log(N)) where N is the set's size.")
        .syntax("key min max"),
    CommandSpec::new("zrange", -4, READONLY, Keys::Range(1, 1, 1), zrange)
        .group("sorted-set")
        .since("1.2.0")
        .summary("Returns the members in a range of ranks, scores or lexicographical order.")
        .complexity("O(log(N)+M) where N is the set's size and M the number of members returned.")
        .syntax("key start stop [BYSCORE | BYLEX] [REV] [LIMIT offset count] [WITHSCORES]"),
    CommandSpec::new("zrangestore", -5, WRITE | DENYOOM, Keys::Range(1, 2, 1), zrangestore)
        .group("sorted-set")
        .since("6.2.0")
        .summary("Stores a range of members of a sorted set in another key.")
        .complexity("O(log(N)+M) where N is the set's size and M the number of members stored.")
        .syntax("dst src min max [BYSCORE | BYLEX] [REV] [LIMIT offset count]"),
    CommandSpec::new("zrevrange", -4, READONLY, Keys::Range(1, 1, 1), zrevrange)
        .group("sorted-set")
        .since("1.2.0")
        .summary("Returns the members in a range of ranks, highest score first.")
        .complexity("O(log(N)+M) where N is the set's size and M the number of members returned.")
        .syntax("key start stop [WITHSCORES]"),
    CommandSpec::new("zrangebyscore", -4, READONLY, Keys::Range(1, 1, 1), zrangebyscore)
        .group("sorted-set")
        .since("1.0.5")
        .summary("Returns the members whose scores are within a range.")
        .complexity("O(log(N)+M) where N is the set's size and M the number of members returned.")
        .syntax("key min max [WITHSCORES] [LIMIT offset count]"),
    CommandSpec::new("zrevrangebyscore", -4, READONLY, Keys::Range(1, 1, 1), zrevrangebyscore)
        .group("sorted-set")
        .since("2.2.0")
        .summary("Returns the members whose scores are within a range, highest score first.")
        .complexity("O(log(N)+M) where N is the set's size and M the number of members returned.")
        .syntax("key max min [WITHSCORES] [LIMIT offset count]"),
    CommandSpec::new("zrangebylex", -4, READONLY, Keys::Range(1, 1, 1), zrangebylex)
        .group("sorted-set")
        .since("2.8.9")
        .summary("Returns the members within a lexicographical range.")
        .complexity("O(log(N)+M) where N is the set's size and M the number of members returned.")
        .syntax("key min max [LIMIT offset count]"),
    CommandSpec::new("zrevrangebylex", -4, READONLY, Keys::Range(1, 1, 1), zrevrangebylex)
        .group("sorted-set")
        .since("2.8.9")
        .summary("Returns the members within a lexicographical range, in reverse order.")
        .complexity("O(log(N)+M) where N is the set's size and M the number of members returned.")
        .syntax("key max min [LIMIT offset count]"),
    CommandSpec::new("zrank", -3, READONLY | FAST, Keys::Range(1, 1, 1), zrank)
        .group("sorted-set")
        .since("2.0.0")
        .summary("Returns the rank of a member, lowest score first.")
        .complexity("O(log(N)) where N is the set's size.")
        .syntax("key member [WITHSCORE]"),
    CommandSpec::new("zrevrank", -3, READONLY | FAST, Keys::Range(1, 1, 1), zrevrank)
        .group("sorted-set")
        .since("2.0.0")
        .summary("Returns the rank of a member, highest score first.")
        .complexity("O(log(N)) where N is the set's size.")
        .syntax("key member [WITHSCORE]"),
    CommandSpec::new("zrem", -3, WRITE | FAST, Keys::Range(1, 1, 1), zrem)
        .group("sorted-set")
        .since("1.2.0")
        .summary("Removes members from a sorted set; deletes the key when it becomes empty.")
        .complexity("O(M*log(N)) where N is the set's size and M the number of members removed.")
        .syntax("key member [member ...]"),
    CommandSpec::new("zremrangebyrank", 4, WRITE, Keys::Range(1, 1, 1), zremrangebyrank)
        .group("sorted-set")
        .since("2.0.0")
        .summary("Removes the members in a range of ranks.")
        .complexity("O(log(N)+M) where N is the set's size and M the number of members removed.")
        .syntax("key start stop"),
    CommandSpec::new("zremrangebyscore", 4, WRITE, Keys::Range(1, 1, 1), zremrangebyscore)
        .group("sorted-set")
        .since("1.2.0")
        .summary("Removes the members whose scores are within a range.")
        .complexity("O(log(N)+M) where N is the set's size and M the number of members removed.")
        .syntax("key min max"),
    CommandSpec::new("zremrangebylex", 4, WRITE, Keys::Range(1, 1, 1), zremrangebylex)
        .group("sorted-set")
        .since("2.8.9")
        .summary("Removes the members within a lexicographical range.")
        .complexity("O(log(N)+M) where N is the set's size and M the number of members removed.")
        .syntax("key min max"),
    CommandSpec::new("zpopmin", -2, WRITE | FAST, Keys::Range(1, 1, 1), zpopmin)
        .group("sorted-set")
        .since("5.0.0")
        .summary("Removes and returns the members with the lowest scores.")
        .complexity("O(log(N)*M) where N is the set's size and M the number of members popped.")
        .syntax("key [count]"),
    CommandSpec::new("zpopmax", -2, WRITE | FAST, Keys::Range(1, 1, 1), zpopmax)
        .group("sorted-set")
        .since("5.0.0")
        .summary("Removes and returns the members with the highest scores.")
        .complexity("O(log(N)*M) where N is the set's size and M the number of members popped.")
        .syntax("key [count]"),
    CommandSpec::new("zmpop", -4, WRITE, Keys::Custom(numkeys_at_1), zmpop)
        .group("sorted-set")
        .since("7.0.0")
        .summary("Removes and returns the lowest or highest members of the first non-empty sorted set.")
        .complexity("O(K)+O(M*log(N)) where K is the number of keys, N the set's size and M the number of members popped.")
        .syntax("numkeys key [key ...] MIN | MAX [COUNT count]"),
    CommandSpec::new("bzpopmin", -3, WRITE | NOSCRIPT | BLOCKING | FAST, Keys::Range(1, -2, 1), bzpopmin)
        .group("sorted-set")
        .since("5.0.0")
        .summary("Removes and returns the lowest member of the first non-empty sorted set, waiting for one if needed.")
        .complexity("O(log(N)) where N is the set's size.")
        .syntax("key [key ...] timeout"),
    CommandSpec::new("bzpopmax", -3, WRITE | NOSCRIPT | BLOCKING | FAST, Keys::Range(1, -2, 1), bzpopmax)
        .group("sorted-set")
        .since("5.0.0")
        .summary("Removes and returns the highest member of the first non-empty sorted set, waiting for one if needed.")
        .complexity("O(log(N)) where N is the set's size.")
        .syntax("key [key ...] timeout"),
    CommandSpec::new("bzmpop", -5, WRITE | BLOCKING, Keys::Custom(numkeys_at_2), bzmpop)
        .group("sorted-set")
        .since("7.0.0")
        .summary("Like ZMPOP, waiting for a non-empty sorted set if there is none.")
        .complexity("O(K)+O(M*log(N)) where K is the number of keys, N the set's size and M the number of members popped.")
        .syntax("timeout numkeys key [key ...] MIN | MAX [COUNT count]"),
    CommandSpec::new("zrandmember", -2, READONLY, Keys::Range(1, 1, 1), zrandmember)
        .group("sorted-set")
        .since("6.2.0")
        .summary("Returns random members of a sorted set.")
        .complexity("O(N) where N is the number of members returned.")
        .syntax("key [count [WITHSCORES]]"),
    CommandSpec::new("zunion", -3, READONLY, Keys::Custom(numkeys_at_1), zunion)
        .group("sorted-set")
        .since("6.2.0")
        .summary("Returns the union of sorted sets (and sets).")
        .complexity("O(N)+O(M*log(M)) where N is the total size of the inputs and M the size of the result.")
        .syntax("numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX] [WITHSCORES]"),
    CommandSpec::new("zinter", -3, READONLY, Keys::Custom(numkeys_at_1), zinter)
        .group("sorted-set")
        .since("6.2.0")
        .summary("Returns the intersection of sorted sets (and sets).")
        .complexity("O(N*K)+O(M*log(M)) where N is the smallest input's size, K the number of inputs and M the size of the result.")
        .syntax("numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX] [WITHSCORES]"),
    CommandSpec::new("zdiff", -3, READONLY, Keys::Custom(numkeys_at_1), zdiff)
        .group("sorted-set")
        .since("6.2.0")
        .summary("Returns the members of the first sorted set that are in none of the others.")
        .complexity("O(N)+O(M*log(M)) where N is the total size of the inputs and M the size of the result.")
        .syntax("numkeys key [key ...] [WITHSCORES]"),
    CommandSpec::new("zunionstore", -4, WRITE | DENYOOM, Keys::Custom(store_keys), zunionstore)
        .group("sorted-set")
        .since("2.0.0")
        .summary("Stores the union of sorted sets (and sets) in a key.")
        .complexity("O(N)+O(M*log(M)) where N is the total size of the inputs and M the size of the result.")
        .syntax("destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX]"),
    CommandSpec::new("zinterstore", -4, WRITE | DENYOOM, Keys::Custom(store_keys), zinterstore)
        .group("sorted-set")
        .since("2.0.0")
        .summary("Stores the intersection of sorted sets (and sets) in a key.")
        .complexity("O(N*K)+O(M*log(M)) where N is the smallest input's size, K the number of inputs and M the size of the result.")
        .syntax("destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM | MIN | MAX]"),
    CommandSpec::new("zdiffstore", -4, WRITE | DENYOOM, Keys::Custom(store_keys), zdiffstore)
        .group("sorted-set")
        .since("6.2.0")
        .summary("Stores in a key the members of the first sorted set that are in none of the others.")
        .complexity("O(N)+O(M*log(M)) where N is the total size of the inputs and M the size of the result.")
        .syntax("destination numkeys key [key ...]"),
    CommandSpec::new("zintercard", -3, READONLY, Keys::Custom(numkeys_at_1), zintercard)
        .group("sorted-set")
        .since("7.0.0")
        .summary("Returns the number of members in the intersection of sorted sets (and sets).")
        .complexity("O(N*K) where N is the smallest input's size and K the number of inputs.")
        .syntax("numkeys key [key ...] [LIMIT limit]"),
    CommandSpec::new("zscan", -3, READONLY, Keys::Range(1, 1, 1), zscan)
        .group("sorted-set")
        .since("2.8.0")
        .summary("Iterates over the members and scores of a sorted set.")
        .complexity("O(1) for every call, O(N) for a complete iteration.")
        .syntax("key cursor [MATCH pattern] [COUNT count]"),
];

// --- key specs ----------------------------------------------------------------------------

/// Pushes the `numkeys` keys that follow `args[idx]` (as many as there are).
fn push_numkeys(args: &[&[u8]], idx: usize, db: usize, push: &mut dyn FnMut(usize, &[u8])) {
    let Some(n) = args.get(idx).and_then(|a| parse_i64(a)) else {
        return;
    };
    if n < 1 {
        return;
    }
    let end = (idx as u64 + 1)
        .saturating_add(n as u64)
        .min(args.len() as u64) as usize;
    for k in args.get(idx + 1..end).unwrap_or_default() {
        push(db, k);
    }
}

/// ZUNION, ZINTER, ZDIFF, ZINTERCARD, ZMPOP: `numkeys key [key ...]` from argument 1.
fn numkeys_at_1(args: &[&[u8]], db: usize, push: &mut dyn FnMut(usize, &[u8])) {
    push_numkeys(args, 1, db, push);
}

/// BZMPOP: `timeout numkeys key [key ...]`.
fn numkeys_at_2(args: &[&[u8]], db: usize, push: &mut dyn FnMut(usize, &[u8])) {
    push_numkeys(args, 2, db, push);
}

/// ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE: the destination, then `numkeys key [key ...]`.
fn store_keys(args: &[&[u8]], db: usize, push: &mut dyn FnMut(usize, &[u8])) {
    if let Some(dst) = args.get(1) {
        push(db, dst);
    }
    push_numkeys(args, 2, db, push);
}

// --- parsing ---------------------------------------------------------------------------------

/// C's `isspace` in the C locale.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn starts_with_ci(s: &[u8], word: &[u8]) -> bool {
    s.len() >= word.len() && s[..word.len()].eq_ignore_ascii_case(word)
}

/// C `strtod` on `s` (which must not contain a NUL): the value, how many bytes it used (0
/// when nothing converts, leading spaces included otherwise), and whether it overflowed or
/// underflowed (`ERANGE`). Accepts what glibc does: leading spaces, a sign, decimal and
/// hexadecimal (`0x1p3`) forms, `inf`, `infinity` and `nan`.
pub(super) fn strtod(s: &[u8]) -> (f64, usize, bool) {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let sign = |v: f64| if neg { -v } else { v };
    let rest = &s[i..];
    if starts_with_ci(rest, b"inf") {
        let n = if starts_with_ci(rest, b"infinity") {
            8
        } else {
            3
        };
        return (sign(f64::INFINITY), i + n, false);
    }
    if starts_with_ci(rest, b"nan") {
        let mut n = 3;
        // `nan(chars)` is one token when the parenthesis closes.
        if rest.get(3) == Some(&b'(') {
            if let Some(close) = rest[4..]
                .iter()
                .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_'))
            {
                if rest[4 + close] == b')' {
                    n = 4 + close + 1;
                }
            }
        }
        return (f64::NAN, i + n, false);
    }
    if rest.len() >= 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        return match hex_float(&rest[2..]) {
            Some((v, n, erange)) => (sign(v), i + 2 + n, erange),
            // "0x" with no hex digit: only the "0" converts.
            None => (sign(0.0), i + 1, false),
        };
    }
    let mut j = 0;
    let mut digits = 0;
    let mut nonzero = false;
    while j < rest.len() && rest[j].is_ascii_digit() {
        nonzero |= rest[j] != b'0';
        j += 1;
        digits += 1;
    }
    if j < rest.len() && rest[j] == b'.' {
        j += 1;
        while j < rest.len() && rest[j].is_ascii_digit() {
            nonzero |= rest[j] != b'0';
            j += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return (0.0, 0, false);
    }
    if j < rest.len() && (rest[j] | 0x20) == b'e' {
        let mut k = j + 1;
        if k < rest.len() && (rest[k] == b'+' || rest[k] == b'-') {
            k += 1;
        }
        if k < rest.len() && rest[k].is_ascii_digit() {
            while k < rest.len() && rest[k].is_ascii_digit() {
                k += 1;
            }
            j = k;
        }
    }
    // The token is ASCII digits, '.', 'e' and signs: always UTF-8, always parseable.
    let v: f64 = std::str::from_utf8(&rest[..j])
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0.0);
    let erange = v.is_infinite() || (v == 0.0 && nonzero);
    (sign(v), i + j, erange)
}

/// The part of a hex float after `0x`: value, bytes used, ERANGE. None without a digit.
fn hex_float(s: &[u8]) -> Option<(f64, usize, bool)> {
    let mut mant: u64 = 0;
    let mut exp: i64 = 0;
    let mut sticky = false;
    let mut digits = 0;
    let mut j = 0;
    let mut seen_dot = false;
    while j < s.len() {
        let c = s[j];
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            b'.' if !seen_dot => {
                seen_dot = true;
                j += 1;
                continue;
            }
            _ => break,
        };
        digits += 1;
        if mant >> 60 == 0 {
            mant = (mant << 4) | u64::from(d);
            if seen_dot {
                exp -= 4;
            }
        } else {
            // Too many digits for the mantissa: keep their weight, remember they were there.
            sticky |= d != 0;
            if !seen_dot {
                exp += 4;
            }
        }
        j += 1;
    }
    if digits == 0 {
        return None;
    }
    if j < s.len() && (s[j] | 0x20) == b'p' {
        let mut k = j + 1;
        let mut eneg = false;
        if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
            eneg = s[k] == b'-';
            k += 1;
        }
        if k < s.len() && s[k].is_ascii_digit() {
            let mut e: i64 = 0;
            while k < s.len() && s[k].is_ascii_digit() {
                e = (e * 10 + i64::from(s[k] - b'0')).min(1 << 20);
                k += 1;
            }
            exp += if eneg { -e } else { e };
            j = k;
        }
    }
    if sticky {
        mant |= 1;
    }
    let nonzero = mant != 0;
    // Exact scaling by powers of two, in steps that stay within f64's exponent range.
    let mut v = mant as f64;
    let mut e = exp.clamp(-2200, 2200) as i32;
    while e > 0 {
        let step = e.min(1000);
        v *= 2f64.powi(step);
        e -= step;
    }
    while e < 0 {
        let step = (-e).min(1000);
        v /= 2f64.powi(step);
        e += step;
    }
    let erange = v.is_infinite() || (v == 0.0 && nonzero);
    Some((v, j, erange))
}

/// A score argument as Redis's `getDoubleFromObject`: the whole argument must convert, no
/// leading space, no NaN, no overflow or underflow to zero.
pub(super) fn parse_score(a: &[u8]) -> Option<f64> {
    if a.is_empty() || is_c_space(a[0]) {
        return None;
    }
    let nul = a.iter().position(|&c| c == 0).unwrap_or(a.len());
    let (v, n, erange) = strtod(&a[..nul]);
    if n != a.len() || v.is_nan() || (erange && (v.is_infinite() || v == 0.0)) {
        return None;
    }
    Some(v)
}

/// One bound of a score range: `(` makes it exclusive; the rest goes through `strtod` up to
/// the first NUL and must be used up (so an empty bound is 0, as in Redis).
fn parse_bound(a: &[u8]) -> Option<(f64, bool)> {
    let a = a.split(|&c| c == 0).next().unwrap_or_default();
    let (ex, body) = match a.first() {
        Some(b'(') => (true, &a[1..]),
        _ => (false, a),
    };
    let (v, n, _) = strtod(body);
    (n == body.len() && !v.is_nan()).then_some((v, ex))
}

fn parse_score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, CommandError> {
    let ((min, minex), (max, maxex)) = parse_bound(min)
        .zip(parse_bound(max))
        .ok_or(E(MIN_MAX_NOT_FLOAT))?;
    Ok(ScoreRange {
        min,
        max,
        minex,
        maxex,
    })
}

/// One bound of a lex range: `-`, `+`, `[member` or `(member` (C-string view for `-`/`+`).
fn parse_lex_bound(a: &[u8]) -> Option<LexBound<'_>> {
    let alone = a.len() == 1 || a.get(1) == Some(&0);
    match a.first()? {
        b'-' if alone => Some(LexBound::NegInf),
        b'+' if alone => Some(LexBound::PosInf),
        b'(' => Some(LexBound::Excl(&a[1..])),
        b'[' => Some(LexBound::Incl(&a[1..])),
        _ => None,
    }
}

fn parse_lex_range<'a>(min: &'a [u8], max: &'a [u8]) -> Result<LexRange<'a>, CommandError> {
    let (min, max) = parse_lex_bound(min)
        .zip(parse_lex_bound(max))
        .ok_or(E(LEX_RANGE_INVALID))?;
    Ok(LexRange { min, max })
}

/// Redis's `getPositiveLongFromObjectOrReply`: one error for "not a number" and "negative".
fn positive(a: &[u8]) -> Result<i64, CommandError> {
    parse_i64(a).filter(|&v| v >= 0).ok_or(E(NOT_POSITIVE))
}

/// Redis's `getRangeLongFromObjectOrReply(1, LONG_MAX, msg)`: one error for both failures.
fn at_least_one(a: &[u8], err: &'static str) -> Result<usize, CommandError> {
    parse_i64(a)
        .filter(|&v| v >= 1)
        .map(|v| usize::try_from(v).unwrap_or(usize::MAX))
        .ok_or(E(err))
}

// --- replies ---------------------------------------------------------------------------------

/// Formats `d` as C's `printf("%.17g")` (Redis 7.0's score format) into `buf`, without
/// allocating; returns the length.
fn g17(d: f64, buf: &mut [u8; 32]) -> usize {
    use std::io::Write;
    let put = |buf: &mut [u8; 32], s: &[u8]| {
        buf[..s.len()].copy_from_slice(s);
        s.len()
    };
    if d.is_nan() {
        return put(buf, b"nan");
    }
    if d.is_infinite() {
        return put(buf, if d > 0.0 { b"inf" } else { b"-inf" });
    }
    if d == 0.0 {
        return put(buf, if d.is_sign_negative() { b"-0" } else { b"0" });
    }
    // Integers below 1e17 print all their digits and nothing else.
    if d.fract() == 0.0 && d.abs() < 1e17 {
        return put(buf, itoa::Buffer::new().format(d as i64).as_bytes());
    }
    // 17 significant digits, rounded exactly as printf does.
    let mut sci = [0u8; 32];
    let len = {
        let mut w = &mut sci[..];
        let _ = write!(w, "{d:.16e}");
        32 - w.len()
    };
    let sci = &sci[..len];
    let epos = sci.iter().position(|&c| c == b'e').unwrap_or(len);
    let exp: i32 = std::str::from_utf8(&sci[epos + 1..])
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let neg = sci[0] == b'-';
    let mut digits = [0u8; 17];
    let mut nd = 0;
    for &c in &sci[..epos] {
        if c.is_ascii_digit() && nd < 17 {
            digits[nd] = c;
            nd += 1;
        }
    }
    // %g drops trailing zeros.
    while nd > 1 && digits[nd - 1] == b'0' {
        nd -= 1;
    }
    let mut n = 0;
    let mut push = |c: u8| {
        buf[n] = c;
        n += 1;
    };
    if neg {
        push(b'-');
    }
    if !(-4..17).contains(&exp) {
        push(digits[0]);
        if nd > 1 {
            push(b'.');
            digits[1..nd].iter().for_each(|&c| push(c));
        }
        push(b'e');
        push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e >= 100 {
            push(b'0' + (e / 100) as u8);
        }
        push(b'0' + (e / 10 % 10) as u8);
        push(b'0' + (e % 10) as u8);
    } else if exp < 0 {
        push(b'0');
        push(b'.');
        for _ in 0..(-exp - 1) {
            push(b'0');
        }
        digits[..nd].iter().for_each(|&c| push(c));
    } else {
        let int_len = exp as usize + 1;
        digits[..nd.min(int_len)].iter().for_each(|&c| push(c));
        (nd..int_len).for_each(|_| push(b'0'));
        if nd > int_len {
            push(b'.');
            digits[int_len..nd].iter().for_each(|&c| push(c));
        }
    }
    n
}

/// A score reply: a bulk string (RESP2) or a double (RESP3), `%.17g` either way.
#[inline]
fn reply_score(out: &mut Out, s: f64) {
    let mut b = [0u8; 32];
    let n = g17(s, &mut b);
    out.double_text(&b[..n]);
}

/// A score as a bulk string whatever the protocol (ZSCAN's flat member/score list).
fn bulk_score(out: &mut Out, s: f64) {
    let mut b = [0u8; 32];
    let n = g17(s, &mut b);
    out.bulk(&b[..n]);
}

/// The header of a reply of `n` members, with scores: flat pairs in RESP2, `[member,
/// score]` arrays in RESP3.
fn members_header(out: &mut Out, n: usize, withscores: bool) {
    out.array(if withscores && !out.resp3 { n * 2 } else { n });
}

/// One member of such a reply.
#[inline]
fn member_reply(out: &mut Out, m: &[u8], s: f64, withscores: bool) {
    if withscores {
        if out.resp3 {
            out.array(2);
        }
        out.bulk(m);
        reply_score(out, s);
    } else {
        out.bulk(m);
    }
}

// --- lookups ---------------------------------------------------------------------------------

pub(super) fn limits(server: &Server) -> Limits {
    let e = &server.hot.encoding;
    let to = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    Limits {
        entries: to(e.zset_max_listpack_entries.load(Relaxed)),
        value: to(e.zset_max_listpack_value.load(Relaxed)),
    }
}

/// Checks that an entry holds a sorted set.
pub(super) fn as_zset(e: &Entry) -> Result<&ZSet, CommandError> {
    match e.value() {
        ValueRef::Other(Value::ZSet(z)) => Ok(z),
        _ => Err(CommandError::wrong_type()),
    }
}

/// The sorted set at `key` for a read (Redis's `lookupKeyRead`): counts a keyspace hit or
/// miss, records the access; WRONGTYPE for another type.
pub(super) fn read_zset<'s>(
    server: &Server,
    sh: &'s mut Shard,
    h: u64,
    key: &[u8],
    now: u64,
    lru: u32,
) -> Result<Option<&'s ZSet>, CommandError> {
    match super::lookup_read(server, sh, h, key, now, lru) {
        Some(e) => as_zset(e).map(Some),
        None => Ok(None),
    }
}

/// The sorted set at `key` for a write (Redis's `lookupKeyWrite`); WRONGTYPE for another
/// type.
fn write_zset<'s>(
    sh: &'s mut Shard,
    h: u64,
    key: &[u8],
    now: u64,
    lru: u32,
) -> Result<Option<&'s mut ZSet>, CommandError> {
    let Some(e) = sh.get(h, key, now) else {
        return Ok(None);
    };
    e.touch(lru);
    as_zset(e)?;
    match e.value_mut() {
        Value::ZSet(z) => Ok(Some(z)),
        _ => Err(CommandError::wrong_type()),
    }
}

/// Stores `z` at `key` (replacing any value and TTL), or deletes the key when `z` is empty;
/// returns whether the dataset changed (for `dirty`).
pub(super) fn store(sh: &mut Shard, h: u64, key: &[u8], z: ZSet, lru: u32) -> bool {
    if z.is_empty() {
        sh.remove(h, key).is_some()
    } else {
        sh.insert(h, Entry::new(key, Value::ZSet(Box::new(z)), lru));
        true
    }
}

/// The event of a *STORE command: its own name when it stored `n` > 0 members, `del` when
/// an empty result deleted an existing destination, nothing otherwise.
fn notify_store(cx: &mut Ctx, event: &str, dst: &[u8], n: usize, changed: bool) {
    if n > 0 {
        cx.notify(ZSET, event, dst);
    } else if changed {
        cx.notify(GENERIC, "del", dst);
    }
}

// --- ZADD, ZINCRBY -------------------------------------------------------------------------

/// ZADD's options.
#[derive(Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// What adding one member did (Redis's `ZADD_OUT_*`).
enum Outcome {
    Added(f64),
    Updated(f64),
    /// Present with that score already.
    Same(f64),
    /// Skipped by NX, XX, GT or LT.
    Nop,
}

/// Adds or updates one member under ZADD's rules (Redis's `zsetAdd`).
fn add_one(
    z: &mut ZSet,
    member: &[u8],
    score: f64,
    f: AddFlags,
    lim: Limits,
) -> Result<Outcome, CommandError> {
    match z.score(member) {
        Some(cur) => {
            if f.nx {
                return Ok(Outcome::Nop);
            }
            let mut score = score;
            if f.incr {
                score += cur;
                if score.is_nan() {
                    return Err(E(SCORE_NAN));
                }
            }
            if (f.lt && score >= cur) || (f.gt && score <= cur) {
                return Ok(Outcome::Nop);
            }
            // -0 and 0 compare equal: no change, as in Redis.
            if score != cur {
                z.update(member, score);
                Ok(Outcome::Updated(score))
            } else {
                Ok(Outcome::Same(score))
            }
        }
        None if f.xx => Ok(Outcome::Nop),
        None => {
            z.insert(member, score, lim);
            Ok(Outcome::Added(score))
        }
    }
}

/// `ZADD key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]`: the number of
/// members added (or added and changed with CH), or with INCR the new score (nil when a
/// condition skipped it). O(log N) per member.
pub(super) fn zadd(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    zadd_generic(cx, args, false)
}

/// `ZINCRBY key increment member`: the member's new score. O(log N).
fn zincrby(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    zadd_generic(cx, args, true)
}

fn zadd_generic(cx: &mut Ctx, args: &[&[u8]], zincrby: bool) -> CmdResult {
    let key = args[1];
    let mut f = AddFlags {
        incr: zincrby,
        ..AddFlags::default()
    };
    // Redis reads option words from argument 2 on for ZINCRBY too (`ZINCRBY k nx m` is a
    // syntax error, not a bad float).
    let mut i = 2;
    while i < args.len() {
        let a = args[i];
        let is = |w: &[u8]| a.eq_ignore_ascii_case(w);
        if is(b"nx") {
            f.nx = true;
        } else if is(b"xx") {
            f.xx = true;
        } else if is(b"ch") {
            f.ch = true;
        } else if is(b"incr") {
            f.incr = true;
        } else if is(b"gt") {
            f.gt = true;
        } else if is(b"lt") {
            f.lt = true;
        } else {
            break;
        }
        i += 1;
    }
    let pairs = &args[i..];
    if pairs.is_empty() || pairs.len() & 1 == 1 {
        return Err(E(SYNTAX));
    }
    if f.nx && f.xx {
        return Err(E(ZADD_NX_XX));
    }
    // GT, LT and NX exclude each other (XX goes with either of GT and LT).
    if (f.gt || f.lt) && (f.nx || (f.gt && f.lt)) {
        return Err(E(ZADD_GT_LT_NX));
    }
    if f.incr && pairs.len() > 2 {
        return Err(E(ZADD_INCR_PAIR));
    }
    // Every score is checked before anything is written: the command is all or nothing.
    let mut scores: smallvec::SmallVec<[f64; 8]> =
        smallvec::SmallVec::with_capacity(pairs.len() / 2);
    for p in pairs.chunks_exact(2) {
        scores.push(parse_score(p[0]).ok_or(E(NOT_FLOAT))?);
    }

    let (now, lru, lim) = (cx.now, cx.lru(), limits(cx.server));
    let (sh, h, out) = cx.shard_out(key)?;
    let (mut added, mut updated, mut processed) = (0u64, 0u64, 0u64);
    let mut last = 0.0;
    let mut tally = |r: Outcome| match r {
        Outcome::Added(s) => {
            added += 1;
            processed += 1;
            last = s;
        }
        Outcome::Updated(s) => {
            updated += 1;
            processed += 1;
            last = s;
        }
        Outcome::Same(s) => {
            processed += 1;
            last = s;
        }
        Outcome::Nop => {}
    };
    let members = pairs
        .chunks_exact(2)
        .map(|p| p[1])
        .zip(scores.iter().copied());
    match write_zset(sh, h, key, now, lru)? {
        Some(z) => {
            for (m, s) in members {
                tally(add_one(z, m, s, f, lim)?);
            }
            if added > 0 {
                sh.signal_ready(key);
            }
        }
        None if f.xx => {}
        None => {
            // Redis picks the encoding from the first member before adding any.
            let mut z = ZSet::new(pairs[1].len(), lim);
            for (m, s) in members {
                tally(add_one(&mut z, m, s, f, lim)?);
            }
            store(sh, h, key, z, lru);
        }
    }
    if f.incr {
        if processed > 0 {
            reply_score(out, last);
        } else {
            out.null();
        }
    } else {
        out.int((if f.ch { added + updated } else { added }) as i64);
    }
    cx.dirty(added + updated);
    if added + updated > 0 {
        cx.notify(ZSET, if f.incr { "zincr" } else { "zadd" }, key);
    }
    Ok(())
}

// --- reads by member ---------------------------------------------------------------------

/// `ZSCORE key member`: the score, or nil. O(1).
fn zscore(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(args[1])?;
    match read_zset(server, sh, h, args[1], now, lru)?.and_then(|z| z.score(args[2])) {
        Some(s) => reply_score(out, s),
        None => out.null(),
    }
    Ok(())
}

/// `ZMSCORE key member [member ...]`: each member's score or nil. O(N) for N members.
fn zmscore(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    reply_per_member(cx, args, |out, score| match score {
        Some(s) => reply_score(out, s),
        None => out.null(),
    })
}

/// Replies an array of one entry per member named in `args[2..]` of the sorted set at
/// `args[1]`, each written by `each` from the member's score (`None`: no such member or
/// key). ZMSCORE, GEOPOS, GEOHASH.
pub(super) fn reply_per_member(
    cx: &mut Ctx,
    args: &[&[u8]],
    each: impl Fn(&mut Out, Option<f64>),
) -> CmdResult {
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(args[1])?;
    let z = read_zset(server, sh, h, args[1], now, lru)?;
    out.array(args.len() - 2);
    for m in &args[2..] {
        each(out, z.and_then(|z| z.score(m)));
    }
    Ok(())
}

/// `ZCARD key`: the number of members (0 for a missing key). O(1).
fn zcard(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(args[1])?;
    let n = read_zset(server, sh, h, args[1], now, lru)?.map_or(0, ZSet::len);
    out.int(n as i64);
    Ok(())
}

/// `ZRANK key member [WITHSCORE]`: the 0-based rank by ascending score, nil if absent; with
/// WITHSCORE (Redis 7.2) `[rank, score]`. O(log N).
fn zrank(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    zrank_generic(cx, args, false)
}

/// `ZREVRANK key member [WITHSCORE]`: like ZRANK, highest score first. O(log N).
fn zrevrank(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    zrank_generic(cx, args, true)
}

fn zrank_generic(cx: &mut Ctx, args: &[&[u8]], rev: bool) -> CmdResult {
    if args.len() > 4 {
        return Err(CommandError::arity(if rev { "zrevrank" } else { "zrank" }));
    }
    let withscore = match args.get(3) {
        Some(a) if a.eq_ignore_ascii_case(b"withscore") => true,
        Some(_) => return Err(E(SYNTAX)),
        None => false,
    };
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(args[1])?;
    let found = read_zset(server, sh, h, args[1], now, lru)?
        .and_then(|z| z.rank(args[2]).map(|(r, s)| (r, s, z.len())));
    match found {
        Some((rank, score, len)) => {
            if withscore {
                out.array(2);
            }
            out.int((if rev { len - 1 - rank } else { rank }) as i64);
            if withscore {
                reply_score(out, score);
            }
        }
        None if withscore => out.null_array(),
        None => out.null(),
    }
    Ok(())
}

// --- counts and ranges ------------------------------------------------------------------------

/// `ZCOUNT key min max`: how many scores are in the range. O(log N).
fn zcount(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let r = parse_score_range(args[2], args[3])?;
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(args[1])?;
    let n = read_zset(server, sh, h, args[1], now, lru)?.map_or(0, |z| {
        let (lo, hi) = z.score_span(&r);
        hi - lo
    });
    out.int(n as i64);
    Ok(())
}

/// `ZLEXCOUNT key min max`: how many members are in the lex range. O(log N).
fn zlexcount(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let r = parse_lex_range(args[2], args[3])?;
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(args[1])?;
    let n = read_zset(server, sh, h, args[1], now, lru)?.map_or(0, |z| {
        let (lo, hi) = z.lex_span(&r, false);
        hi - lo
    });
    out.int(n as i64);
    Ok(())
}

/// How a ZRANGE-like command selects members.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum By {
    Rank,
    Score,
    Lex,
}

/// A parsed range: which ranks of the set, in which direction.
enum Bounds<'a> {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange<'a>),
}

/// A ZRANGE request after parsing (Redis's `zrangeGenericCommand` steps 1 and 2).
struct RangeSpec<'a> {
    bounds: Bounds<'a>,
    rev: bool,
    withscores: bool,
    offset: i64,
    /// Negative: no limit.
    limit: i64,
}

/// Parses `src min max [options]` starting at `args[start]`: `by`/`rev` fixed by a legacy
/// command, or `None` when ZRANGE's BYSCORE / BYLEX / REV words may set them.
fn parse_range<'a>(
    args: &[&'a [u8]],
    start: usize,
    store: bool,
    by: Option<By>,
    rev: Option<bool>,
) -> Result<RangeSpec<'a>, CommandError> {
    let (mut by_opt, mut rev_opt) = (by, rev);
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = start + 3;
    while j < args.len() {
        let a = args[j];
        let left = args.len() - j - 1;
        if !store && a.eq_ignore_ascii_case(b"withscores") {
            withscores = true;
        } else if a.eq_ignore_ascii_case(b"limit") && left >= 2 {
            offset = int(args[j + 1])?;
            limit = int(args[j + 2])?;
            j += 2;
        } else if rev.is_none() && rev_opt.is_none() && a.eq_ignore_ascii_case(b"rev") {
            rev_opt = Some(true);
        } else if by.is_none() && by_opt.is_none() && a.eq_ignore_ascii_case(b"bylex") {
            by_opt = Some(By::Lex);
        } else if by.is_none() && by_opt.is_none() && a.eq_ignore_ascii_case(b"byscore") {
            by_opt = Some(By::Score);
        } else {
            return Err(E(SYNTAX));
        }
        j += 1;
    }
    let by = by_opt.unwrap_or(By::Rank);
    let rev = rev_opt.unwrap_or(false);
    if limit != -1 && by == By::Rank {
        return Err(E(LIMIT_NEEDS_BY));
    }
    if withscores && by == By::Lex {
        return Err(E(WITHSCORES_BYLEX));
    }
    // Reverse score and lex ranges are written max first.
    let (mut lo, mut hi) = (args[start + 1], args[start + 2]);
    if rev && by != By::Rank {
        std::mem::swap(&mut lo, &mut hi);
    }
    let bounds = match by {
        By::Rank => Bounds::Rank(int(lo)?, int(hi)?),
        By::Score => Bounds::Score(parse_score_range(lo, hi)?),
        By::Lex => Bounds::Lex(parse_lex_range(lo, hi)?),
    };
    Ok(RangeSpec {
        bounds,
        rev,
        withscores,
        offset,
        limit,
    })
}

/// The ascending ranks `[lo, hi)` a range selects on `z` (walked from `hi - 1` down when the
/// range is reversed), with LIMIT applied.
fn select(z: &ZSet, spec: &RangeSpec) -> (usize, usize) {
    let len = z.len() as i64;
    let (lo, hi) = match &spec.bounds {
        Bounds::Rank(start, end) => {
            let (mut start, mut end) = (*start, *end);
            if start < 0 {
                start += len;
            }
            if end < 0 {
                end += len;
            }
            start = start.max(0);
            if start > end || start >= len {
                return (0, 0);
            }
            end = end.min(len - 1);
            let (start, end) = (start as usize, end as usize);
            return if spec.rev {
                let n = len as usize;
                (n - 1 - end, n - start)
            } else {
                (start, end + 1)
            };
        }
        Bounds::Score(r) => z.score_span(r),
        Bounds::Lex(r) => z.lex_span(r, spec.rev),
    };
    // A negative offset walks off the end of the set in Redis: nothing is returned.
    if spec.offset < 0 {
        return (0, 0);
    }
    let skip = usize::try_from(spec.offset).unwrap_or(usize::MAX);
    let avail = (hi - lo).saturating_sub(skip);
    let take = if spec.limit < 0 {
        avail
    } else {
        avail.min(usize::try_from(spec.limit).unwrap_or(usize::MAX))
    };
    if spec.rev {
        let end = hi.saturating_sub(skip);
        (end - take, end)
    } else {
        (lo + skip.min(hi - lo), lo + skip.min(hi - lo) + take)
    }
}

/// Replies with the members a parsed range selects from `key`.
fn range_reply(cx: &mut Ctx, key: &[u8], spec: &RangeSpec) -> CmdResult {
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(z) = read_zset(server, sh, h, key, now, lru)? else {
        out.array(0);
        return Ok(());
    };
    let (lo, hi) = select(z, spec);
    members_header(out, hi - lo, spec.withscores);
    for (m, s) in z.range(lo, hi, spec.rev) {
        member_reply(out, m, s, spec.withscores);
    }
    Ok(())
}

/// `ZRANGE key start stop [BYSCORE | BYLEX] [REV] [LIMIT offset count] [WITHSCORES]`: the
/// members in a range of ranks, scores or lex order. O(log N + M).
fn zrange(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let spec = parse_range(args, 1, false, None, None)?;
    range_reply(cx, args[1], &spec)
}

/// `ZREVRANGE key start stop [WITHSCORES]`: ranks counted from the highest score.
/// O(log N + M).
fn zrevrange(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let spec = parse_range(args, 1, false, Some(By::Rank), Some(true))?;
    range_reply(cx, args[1], &spec)
}

/// `ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]`. O(log N + M).
fn zrangebyscore(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let spec = parse_range(args, 1, false, Some(By::Score), Some(false))?;
    range_reply(cx, args[1], &spec)
}

/// `ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]`. O(log N + M).
fn zrevrangebyscore(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let spec = parse_range(args, 1, false, Some(By::Score), Some(true))?;
    range_reply(cx, args[1], &spec)
}

/// `ZRANGEBYLEX key min max [LIMIT offset count]`. O(log N + M).
fn zrangebylex(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let spec = parse_range(args, 1, false, Some(By::Lex), Some(false))?;
    range_reply(cx, args[1], &spec)
}

/// `ZREVRANGEBYLEX key max min [LIMIT offset count]`. O(log N + M).
fn zrevrangebylex(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let spec = parse_range(args, 1, false, Some(By::Lex), Some(true))?;
    range_reply(cx, args[1], &spec)
}

/// `ZRANGESTORE dst src min max [BYSCORE | BYLEX] [REV] [LIMIT offset count]`: stores the
/// range (deleting `dst` when it is empty) and replies its size. O(log N + M).
fn zrangestore(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let spec = parse_range(args, 2, true, None, None)?;
    let (dst, src) = (args[1], args[2]);
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let lim = limits(server);
    let mut picked: Vec<(Vec<u8>, f64)> = Vec::new();
    {
        let (sh, h) = cx.shard(src)?;
        if let Some(z) = read_zset(server, sh, h, src, now, lru)? {
            let (lo, hi) = select(z, &spec);
            picked = z
                .range(lo, hi, false)
                .map(|(m, s)| (m.to_vec(), s))
                .collect();
        }
    }
    let n = picked.len();
    let (sh, h) = cx.shard(dst)?;
    let changed = store(sh, h, dst, ZSet::from_sorted(picked, lim), lru);
    cx.out.int(n as i64);
    cx.dirty(u64::from(changed));
    notify_store(cx, "zrangestore", dst, n, changed);
    Ok(())
}

/// The events of a removal: `event` when something was removed, then `del` when the key
/// went away with its last member.
fn notify_removal(cx: &mut Ctx, event: &str, key: &[u8], removed: bool, deleted: bool) {
    if removed {
        cx.notify(ZSET, event, key);
        if deleted {
            cx.notify(GENERIC, "del", key);
        }
    }
}

// --- removals ------------------------------------------------------------------------------

/// `ZREM key member [member ...]`: how many members were removed. O(M log N).
fn zrem(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let mut removed = 0u64;
    let mut deleted = false;
    if let Some(z) = write_zset(sh, h, key, now, lru)? {
        for m in &args[2..] {
            if z.remove(m).is_some() {
                removed += 1;
                if z.is_empty() {
                    break;
                }
            }
        }
        if z.is_empty() {
            sh.remove(h, key);
            deleted = true;
        }
    }
    out.int(removed as i64);
    cx.dirty(removed);
    notify_removal(cx, "zrem", key, removed > 0, deleted);
    Ok(())
}

/// Removes the ranks a range selects from `key`; replies how many.
fn remove_range(cx: &mut Ctx, key: &[u8], spec: &RangeSpec, event: &str) -> CmdResult {
    let (now, lru) = (cx.now, cx.lru());
    let (sh, h, out) = cx.shard_out(key)?;
    let (mut removed, mut deleted) = (0, false);
    if let Some(z) = write_zset(sh, h, key, now, lru)? {
        let (lo, hi) = select(z, spec);
        removed = z.remove_span(lo, hi);
        if z.is_empty() {
            sh.remove(h, key);
            deleted = true;
        }
    }
    out.int(removed as i64);
    cx.dirty(removed as u64);
    notify_removal(cx, event, key, removed > 0, deleted);
    Ok(())
}

fn plain(bounds: Bounds<'_>) -> RangeSpec<'_> {
    RangeSpec {
        bounds,
        rev: false,
        withscores: false,
        offset: 0,
        limit: -1,
    }
}

/// `ZREMRANGEBYRANK key start stop`: removes a range of ranks. O(log N + M).
fn zremrangebyrank(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let spec = plain(Bounds::Rank(int(args[2])?, int(args[3])?));
    remove_range(cx, args[1], &spec, "zremrangebyrank")
}

/// `ZREMRANGEBYSCORE key min max`: removes the members with scores in the range.
/// O(log N + M).
fn zremrangebyscore(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let spec = plain(Bounds::Score(parse_score_range(args[2], args[3])?));
    remove_range(cx, args[1], &spec, "zremrangebyscore")
}

/// `ZREMRANGEBYLEX key min max`: removes the members in the lex range. O(log N + M).
fn zremrangebylex(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let spec = plain(Bounds::Lex(parse_lex_range(args[2], args[3])?));
    remove_range(cx, args[1], &spec, "zremrangebylex")
}

// --- pops ------------------------------------------------------------------------------------

/// The reply shape of a pop (Redis's `genericZpopCommand` arguments).
#[derive(Clone, Copy)]
struct PopReply {
    /// BZPOP*, ZMPOP, BZMPOP: the key comes first.
    emit_key: bool,
    /// `[member, score]` pairs (ZMPOP always, ZPOP* with a count in RESP3).
    nested: bool,
    /// ZMPOP: a null array when no key has members (ZPOP*: an empty array).
    nil_when_empty: bool,
}

/// Pops up to `count` members from the first of `keys` that exists (WRONGTYPE stops the
/// search); `None` count is the single pop of ZPOPMIN without a count.
fn pop_generic(
    cx: &mut Ctx,
    keys: &[&[u8]],
    max: bool,
    count: Option<usize>,
    shape: PopReply,
) -> CmdResult {
    let (now, lru) = (cx.now, cx.lru());
    for &key in keys {
        let (sh, h, out) = cx.shard_out(key)?;
        let Some(z) = write_zset(sh, h, key, now, lru)? else {
            continue;
        };
        if count == Some(0) {
            out.array(0);
            return Ok(());
        }
        let n = count.unwrap_or(1).min(z.len());
        match (shape.emit_key, shape.nested) {
            (false, false) => out.array(n * 2),
            (false, true) => out.array(n),
            (true, false) => {
                out.array(n * 2 + 1);
                out.bulk(key);
            }
            (true, true) => {
                out.array(2);
                out.bulk(key);
                out.array(n);
            }
        }
        let len = z.len();
        let (lo, hi) = if max { (len - n, len) } else { (0, n) };
        for (m, s) in z.range(lo, hi, max) {
            if shape.nested {
                out.array(2);
            }
            out.bulk(m);
            reply_score(out, s);
        }
        z.remove_span(lo, hi);
        let deleted = z.is_empty();
        if deleted {
            sh.remove(h, key);
        }
        cx.dirty(n as u64);
        // ZMPOP and the blocking pops reach replicas as ZPOPMIN / ZPOPMAX (with the number
        // popped for the MPOP forms), as Redis 7.0 sends them.
        if shape.emit_key {
            let pop: &[u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
            if shape.nested {
                let n_s = itoa::Buffer::new().format(n).as_bytes().to_vec();
                cx.propagate(&[pop, key, &n_s]);
            } else {
                cx.propagate(&[pop, key]);
            }
        }
        let event = if max { "zpopmax" } else { "zpopmin" };
        notify_removal(cx, event, key, true, deleted);
        return Ok(());
    }
    if shape.nil_when_empty {
        cx.out.null_array();
    } else {
        cx.out.array(0);
    }
    Ok(())
}

fn zpop_generic(cx: &mut Ctx, args: &[&[u8]], max: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(E(SYNTAX));
    }
    let count = match args.get(2) {
        Some(a) => Some(usize::try_from(positive(a)?).unwrap_or(usize::MAX)),
        None => None,
    };
    let shape = PopReply {
        emit_key: false,
        nested: cx.out.resp3 && count.is_some(),
        nil_when_empty: false,
    };
    pop_generic(cx, &args[1..2], max, count, shape)
}

/// `ZPOPMIN key [count]`: removes and returns the lowest members. O(M log N).
fn zpopmin(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    zpop_generic(cx, args, false)
}

/// `ZPOPMAX key [count]`: removes and returns the highest members. O(M log N).
fn zpopmax(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    zpop_generic(cx, args, true)
}

/// ZMPOP's arguments from `numkeys` on: (keys, max, count).
fn parse_mpop<'a, 'b>(
    args: &'b [&'a [u8]],
    numkeys_idx: usize,
) -> Result<(&'b [&'a [u8]], bool, usize), CommandError> {
    let numkeys = at_least_one(args[numkeys_idx], NUMKEYS_NOT_POSITIVE)?;
    let where_idx = numkeys_idx
        .checked_add(numkeys)
        .and_then(|x| x.checked_add(1))
        .filter(|&x| x < args.len())
        .ok_or(E(SYNTAX))?;
    let max = if args[where_idx].eq_ignore_ascii_case(b"min") {
        false
    } else if args[where_idx].eq_ignore_ascii_case(b"max") {
        true
    } else {
        return Err(E(SYNTAX));
    };
    let mut count = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        if count.is_none() && args[j].eq_ignore_ascii_case(b"count") && j + 1 < args.len() {
            count = Some(at_least_one(args[j + 1], COUNT_NOT_POSITIVE)?);
            j += 2;
        } else {
            return Err(E(SYNTAX));
        }
    }
    Ok((&args[numkeys_idx + 1..where_idx], max, count.unwrap_or(1)))
}

const MPOP_REPLY: PopReply = PopReply {
    emit_key: true,
    nested: true,
    nil_when_empty: true,
};

/// `ZMPOP numkeys key [key ...] MIN | MAX [COUNT count]`: pops from the first non-empty
/// set; `[key, [[member, score], ...]]`, or nil. O(K + M log N).
fn zmpop(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (keys, max, count) = parse_mpop(args, 1)?;
    pop_generic(cx, keys, max, Some(count), MPOP_REPLY)
}

/// The blocking pops: serve from the first non-empty key (WRONGTYPE on a key before it),
/// or wait on all of them.
fn blocking_pop(
    cx: &mut Ctx,
    keys: &[&[u8]],
    timeout: Option<std::time::Duration>,
    max: bool,
    count: Option<usize>,
    shape: PopReply,
) -> CmdResult {
    let (now, lru) = (cx.now, cx.lru());
    for &key in keys {
        let (sh, h) = cx.shard(key)?;
        if write_zset(sh, h, key, now, lru)?.is_some() {
            return pop_generic(cx, &[key], max, count, shape);
        }
    }
    cx.block(keys, timeout)
}

/// `BZPOPMIN key [key ...] timeout`: `[key, member, score]` from the first non-empty set,
/// waiting up to `timeout` seconds (0: forever) for one. O(log N).
fn bzpopmin(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    bzpop_generic(cx, args, false)
}

/// `BZPOPMAX key [key ...] timeout`: like BZPOPMIN with the highest member. O(log N).
fn bzpopmax(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    bzpop_generic(cx, args, true)
}

fn bzpop_generic(cx: &mut Ctx, args: &[&[u8]], max: bool) -> CmdResult {
    let timeout = parse_timeout(args[args.len() - 1])?;
    let shape = PopReply {
        emit_key: true,
        nested: false,
        nil_when_empty: false,
    };
    blocking_pop(cx, &args[1..args.len() - 1], timeout, max, None, shape)
}

/// `BZMPOP timeout numkeys key [key ...] MIN | MAX [COUNT count]`: ZMPOP, waiting up to
/// `timeout` seconds (0: forever) for a non-empty set. O(K + M log N).
fn bzmpop(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    // Redis checks every other argument before the timeout.
    let (keys, max, count) = parse_mpop(args, 2)?;
    let timeout = parse_timeout(args[1])?;
    blocking_pop(cx, keys, timeout, max, Some(count), MPOP_REPLY)
}

// --- ZRANDMEMBER ---------------------------------------------------------------------------

/// `ZRANDMEMBER key [count [WITHSCORES]]`: one random member (nil if none); with a count,
/// that many distinct members (all of them, highest first, when the count covers the set),
/// or with a negative count that many independent draws. O(M).
fn zrandmember(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mut count = None;
    let mut withscores = false;
    if args.len() >= 3 {
        let l = int(args[2])?;
        if l == i64::MIN {
            return Err(E(LONG_RANGE));
        }
        if args.len() > 4 || (args.len() == 4 && !args[3].eq_ignore_ascii_case(b"withscores")) {
            return Err(E(SYNTAX));
        }
        if args.len() == 4 {
            withscores = true;
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
                return Err(E(OUT_OF_RANGE));
            }
        }
        count = Some(l);
    }
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let max_reply = server.hot.proto_max_bulk_len.load(Relaxed);
    let (sh, h, out) = cx.shard_out(args[1])?;
    let z = read_zset(server, sh, h, args[1], now, lru)?;
    let mut rng = rand::thread_rng();
    let Some(count) = count else {
        match z.filter(|z| !z.is_empty()) {
            Some(z) => {
                let r = rng.gen_range(0..z.len());
                if let Some((m, _)) = z.range(r, r + 1, false).next() {
                    out.bulk(m);
                }
            }
            None => out.null(),
        }
        return Ok(());
    };
    let Some(z) = z else {
        out.array(0);
        return Ok(());
    };
    let size = z.len();
    if count == 0 || size == 0 {
        out.array(0);
        return Ok(());
    }
    let at = |r: usize| z.range(r, r + 1, false).next();
    if count < 0 || count == 1 {
        // Independent draws. Redis would build any reply asked for; Kiln stops at
        // proto-max-bulk-len bytes so a huge count cannot exhaust memory.
        let n = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
        let start = out.buf.len();
        members_header(out, n, withscores);
        for i in 0..n {
            if let Some((m, s)) = at(rng.gen_range(0..size)) {
                member_reply(out, m, s, withscores);
            }
            if i % 1024 == 1023 && (out.buf.len() - start) as u64 > max_reply {
                return Err(E(REPLY_TOO_BIG));
            }
        }
        return Ok(());
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count >= size {
        // The whole set, walked from the highest score as Redis's iterator does.
        members_header(out, size, withscores);
        for (m, s) in z.range(0, size, true) {
            member_reply(out, m, s, withscores);
        }
        return Ok(());
    }
    // Distinct ranks: a partial shuffle when asking for much of the set, else rejection.
    let picks: Vec<usize> = if count * 3 > size {
        let mut all: Vec<usize> = (0..size).collect();
        for i in 0..count {
            let j = rng.gen_range(i..size);
            all.swap(i, j);
        }
        all.truncate(count);
        all
    } else {
        let mut seen = hashbrown::HashSet::with_capacity(count);
        let mut v = Vec::with_capacity(count);
        while v.len() < count {
            let r = rng.gen_range(0..size);
            if seen.insert(r) {
                v.push(r);
            }
        }
        v
    };
    members_header(out, picks.len(), withscores);
    for r in picks {
        if let Some((m, s)) = at(r) {
            member_reply(out, m, s, withscores);
        }
    }
    Ok(())
}

// --- set operations ----------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    /// Folds `v` into `acc` (Redis's `zunionInterAggregate`: inf + -inf sums to 0).
    #[inline]
    fn fold(self, acc: &mut f64, v: f64) {
        match self {
            Aggregate::Sum => {
                *acc += v;
                if acc.is_nan() {
                    *acc = 0.0;
                }
            }
            Aggregate::Min => {
                if v < *acc {
                    *acc = v;
                }
            }
            Aggregate::Max => {
                if v > *acc {
                    *acc = v;
                }
            }
        }
    }
}

/// `weight * score`, with Redis's convention that a NaN product (0 * inf) is 0.
#[inline]
fn weighted(score: f64, weight: f64) -> f64 {
    let v = score * weight;
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

/// The score of `member` in an input (a sorted set, or a set where every member scores 1).
fn input_score(v: &Value, member: &[u8]) -> Option<f64> {
    match v {
        Value::ZSet(z) => z.score(member),
        Value::Set(s) => s.contains(member).then_some(1.0),
        _ => None,
    }
}

/// Calls `f` for every (member, score) of an input.
fn for_each_input(v: &Value, mut f: impl FnMut(&[u8], f64)) {
    match v {
        Value::ZSet(z) => z.iter().for_each(|(m, s)| f(m, s)),
        Value::Set(s) => s.iter().for_each(|m| f(&m, 1.0)),
        _ => {}
    }
}

/// The input value at `key` (None if missing); WRONGTYPE unless a sorted set or a set.
/// With `count` (the first lookup of each input) it counts a keyspace hit or miss, as
/// Redis's one `lookupKeyRead` per input does.
fn input<'s>(
    count: Option<&Server>,
    sh: &'s mut Shard,
    h: u64,
    key: &[u8],
    now: u64,
    lru: u32,
) -> Result<Option<&'s Value>, CommandError> {
    let found = sh.get(h, key, now).is_some();
    if let Some(server) = count {
        // A miss also raises `keymiss`, as `lookupKeyRead` does.
        super::count_read(server, sh, key, found);
    }
    // Looked up again: the shard was needed above whatever the first lookup found.
    let Some(e) = sh.get(h, key, now).filter(|_| found) else {
        return Ok(None);
    };
    e.touch(lru);
    match e.value() {
        ValueRef::Other(v @ (Value::ZSet(_) | Value::Set(_))) => Ok(Some(v)),
        _ => Err(CommandError::wrong_type()),
    }
}

/// What a set-operation command does with the result.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    Reply,
    Store,
    Cardinality,
}

/// ZUNION, ZINTER, ZDIFF, their STORE forms and ZINTERCARD (Redis's
/// `zunionInterDiffGenericCommand`).
fn setop(cx: &mut Ctx, args: &[&[u8]], op: SetOp, output: Output) -> CmdResult {
    let numkeys_idx = if output == Output::Store { 2 } else { 1 };
    let setnum = int(args[numkeys_idx])?;
    if setnum < 1 {
        return Err(CommandError::Owned(format!(
            "ERR at least 1 input key is needed for '{}' command",
            String::from_utf8_lossy(args[0]).to_ascii_lowercase()
        )));
    }
    let first = numkeys_idx + 1;
    if setnum as u64 > (args.len() - first) as u64 {
        return Err(E(SYNTAX));
    }
    let setnum = setnum as usize;
    let keys = &args[first..first + setnum];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);

    // The inputs are looked up (and type-checked) before the options are parsed.
    let mut sizes = Vec::with_capacity(setnum);
    for &key in keys {
        let (sh, h) = cx.shard(key)?;
        sizes.push(
            input(Some(server), sh, h, key, now, lru)?.map_or(0, |v| match v {
                Value::ZSet(z) => z.len(),
                Value::Set(s) => s.len(),
                _ => 0,
            }),
        );
    }

    let mut weights = vec![1.0; setnum];
    let mut aggregate = Aggregate::Sum;
    let mut withscores = false;
    let mut limit = 0usize;
    let mut j = first + setnum;
    while j < args.len() {
        let a = args[j];
        let remaining = args.len() - j;
        let full = op != SetOp::Diff && output != Output::Cardinality;
        if full && remaining > setnum && a.eq_ignore_ascii_case(b"weights") {
            for (w, arg) in weights.iter_mut().zip(&args[j + 1..j + 1 + setnum]) {
                *w = parse_score(arg).ok_or(E(WEIGHT_NOT_FLOAT))?;
            }
            j += 1 + setnum;
        } else if full && remaining >= 2 && a.eq_ignore_ascii_case(b"aggregate") {
            let v = args[j + 1];
            aggregate = if v.eq_ignore_ascii_case(b"sum") {
                Aggregate::Sum
            } else if v.eq_ignore_ascii_case(b"min") {
                Aggregate::Min
            } else if v.eq_ignore_ascii_case(b"max") {
                Aggregate::Max
            } else {
                return Err(E(SYNTAX));
            };
            j += 2;
        } else if output == Output::Reply && a.eq_ignore_ascii_case(b"withscores") {
            withscores = true;
            j += 1;
        } else if output == Output::Cardinality
            && remaining >= 2
            && a.eq_ignore_ascii_case(b"limit")
        {
            let l = parse_i64(args[j + 1])
                .filter(|&v| v >= 0)
                .ok_or(E(LIMIT_NEGATIVE))?;
            limit = usize::try_from(l).unwrap_or(usize::MAX);
            j += 2;
        } else {
            return Err(E(SYNTAX));
        }
    }

    // Smallest inputs first (stable, like the merge sort behind glibc's qsort), except for
    // ZDIFF where the first input is the one subtracted from.
    let mut order: Vec<usize> = (0..setnum).collect();
    if op != SetOp::Diff {
        order.sort_by_key(|&i| sizes[i]);
    }

    let mut result: Vec<(Vec<u8>, f64)> = Vec::new();
    match op {
        SetOp::Inter => {
            if sizes[order[0]] > 0 {
                let k0 = order[0];
                {
                    let (sh, h) = cx.shard(keys[k0])?;
                    if let Some(v) = input(None, sh, h, keys[k0], now, lru)? {
                        for_each_input(v, |m, s| {
                            result.push((m.to_vec(), weighted(s, weights[k0])))
                        });
                    }
                }
                for &k in &order[1..] {
                    let (sh, h) = cx.shard(keys[k])?;
                    let Some(v) = input(None, sh, h, keys[k], now, lru)? else {
                        result.clear();
                        break;
                    };
                    result.retain_mut(|(m, acc)| match input_score(v, m) {
                        Some(s) => {
                            aggregate.fold(acc, weighted(s, weights[k]));
                            true
                        }
                        None => false,
                    });
                }
            }
        }
        SetOp::Union => {
            let mut acc: hashbrown::HashMap<Vec<u8>, f64> = hashbrown::HashMap::new();
            for &k in &order {
                if sizes[k] == 0 {
                    continue;
                }
                let (sh, h) = cx.shard(keys[k])?;
                if let Some(v) = input(None, sh, h, keys[k], now, lru)? {
                    acc.reserve(sizes[k]);
                    for_each_input(v, |m, s| {
                        let s = weighted(s, weights[k]);
                        match acc.get_mut(m) {
                            Some(a) => aggregate.fold(a, s),
                            None => {
                                acc.insert(m.to_vec(), s);
                            }
                        }
                    });
                }
            }
            result = acc.into_iter().collect();
        }
        SetOp::Diff => {
            if sizes[0] > 0 {
                {
                    let (sh, h) = cx.shard(keys[0])?;
                    if let Some(v) = input(None, sh, h, keys[0], now, lru)? {
                        for_each_input(v, |m, s| result.push((m.to_vec(), s)));
                    }
                }
                for &key in &keys[1..] {
                    if result.is_empty() {
                        break;
                    }
                    let (sh, h) = cx.shard(key)?;
                    if let Some(v) = input(None, sh, h, key, now, lru)? {
                        result.retain(|(m, _)| input_score(v, m).is_none());
                    }
                }
            }
        }
    }

    match output {
        Output::Cardinality => {
            let n = if limit > 0 {
                result.len().min(limit)
            } else {
                result.len()
            };
            cx.out.int(n as i64);
        }
        Output::Reply => {
            sort_result(&mut result);
            members_header(&mut cx.out, result.len(), withscores);
            for (m, s) in &result {
                member_reply(&mut cx.out, m, *s, withscores);
            }
        }
        Output::Store => {
            sort_result(&mut result);
            let n = result.len();
            let dst = args[1];
            let lim = limits(server);
            let (sh, h) = cx.shard(dst)?;
            let changed = store(sh, h, dst, ZSet::from_sorted(result, lim), lru);
            cx.out.int(n as i64);
            cx.dirty(u64::from(changed));
            let event = match op {
                SetOp::Union => "zunionstore",
                SetOp::Inter => "zinterstore",
                SetOp::Diff => "zdiffstore",
            };
            notify_store(cx, event, dst, n, changed);
        }
    }
    Ok(())
}

/// Orders a computed result by (score, member).
fn sort_result(r: &mut [(Vec<u8>, f64)]) {
    r.sort_unstable_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
}

/// `ZUNION numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM | MIN | MAX] [WITHSCORES]`.
/// O(N + M log M).
fn zunion(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    setop(cx, args, SetOp::Union, Output::Reply)
}

/// `ZINTER numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM | MIN | MAX] [WITHSCORES]`.
/// O(N K + M log M).
fn zinter(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    setop(cx, args, SetOp::Inter, Output::Reply)
}

/// `ZDIFF numkeys key [key ...] [WITHSCORES]`. O(N + M log M).
fn zdiff(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    setop(cx, args, SetOp::Diff, Output::Reply)
}

/// `ZUNIONSTORE destination numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE ...]`: the
/// result's size. O(N + M log M).
fn zunionstore(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    setop(cx, args, SetOp::Union, Output::Store)
}

/// `ZINTERSTORE destination numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE ...]`.
/// O(N K + M log M).
fn zinterstore(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    setop(cx, args, SetOp::Inter, Output::Store)
}

/// `ZDIFFSTORE destination numkeys key [key ...]`. O(N + M log M).
fn zdiffstore(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    setop(cx, args, SetOp::Diff, Output::Store)
}

/// `ZINTERCARD numkeys key [key ...] [LIMIT limit]`: the intersection's size, at most
/// `limit` when it is not 0. O(N K).
fn zintercard(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    setop(cx, args, SetOp::Inter, Output::Cardinality)
}

// --- ZSCAN -------------------------------------------------------------------------------------

/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`: the next cursor and a flat list of
/// members and scores. A listpack-encoded set comes back whole with cursor 0, as in Redis.
/// O(1) per call.
fn zscan(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let cursor = parse_cursor(args[2])?;
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(key)?;
    let Some(z) = read_zset(server, sh, h, key, now, lru)? else {
        out.raw(b"*2\r\n$1\r\n0\r\n*0\r\n");
        return Ok(());
    };
    // Options come after the key checks, as in Redis.
    let opts = super::args::scan_options(args, 3, false)?;
    let (count, pattern) = (opts.count, opts.pattern);
    let mut body = Vec::new();
    let mut page = Out::new(&mut body, out.resp3);
    let mut n = 0;
    let next = z.scan(cursor, count, |m, s| {
        if pattern.is_none_or(|p| glob_match(p, m, false)) {
            page.bulk(m);
            bulk_score(&mut page, s);
            n += 2;
        }
    });
    out.array(2);
    out.bulk(itoa::Buffer::new().format(next).as_bytes());
    out.array(n);
    out.raw(&body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g17_matches_printf() {
        let mut b = [0u8; 32];
        let mut rng = rand::thread_rng();
        let mut check = |v: f64| {
            let n = g17(v, &mut b);
            assert_eq!(
                std::str::from_utf8(&b[..n]).unwrap(),
                crate::util::fmt_g17(v),
                "{v:e}"
            );
        };
        for v in [
            1.0,
            1.5,
            0.1,
            -2.25,
            1e17,
            1.5e17,
            0.0001,
            0.00001,
            -0.0,
            0.0,
            3.0e-300,
            123.456,
            1e16,
            1e100,
            1e-100,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            99999999999999984.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            12345678901234567890.0,
        ] {
            check(v);
            check(-v);
        }
        for _ in 0..20_000 {
            check(f64::from_bits(
                rng.gen::<u64>() & !(0x7ff << 52) | (rng.gen_range(900u64..1150) << 52),
            ));
            check(rng.gen_range(-1e6..1e6));
        }
    }

    #[test]
    fn strtod_is_lenient_like_c() {
        assert_eq!(strtod(b"1.5"), (1.5, 3, false));
        assert_eq!(strtod(b"  -2x"), (-2.0, 4, false));
        assert_eq!(strtod(b""), (0.0, 0, false));
        assert_eq!(strtod(b"x"), (0.0, 0, false));
        assert_eq!(strtod(b"1e"), (1.0, 1, false));
        assert_eq!(strtod(b"1e+5"), (1e5, 4, false));
        assert_eq!(strtod(b".5"), (0.5, 2, false));
        assert_eq!(strtod(b"5."), (5.0, 2, false));
        assert_eq!(strtod(b"0x10"), (16.0, 4, false));
        assert_eq!(strtod(b"0x1p-3"), (0.125, 6, false));
        assert_eq!(strtod(b"0x"), (0.0, 1, false));
        assert_eq!(strtod(b"-Infinity"), (f64::NEG_INFINITY, 9, false));
        assert_eq!(strtod(b"infinit").1, 3);
        assert!(strtod(b"1e400").2);
        assert!(strtod(b"1e-400").2);
        assert!(strtod(b"nan").0.is_nan());
    }

    #[test]
    fn scores_and_bounds_parse_like_redis() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_score(b"0x10"), Some(16.0));
        assert!(parse_score(b"1e-310").is_some());
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"nan",
            b"1e400",
            b"1e-400",
            b"1\x002",
            b"abc",
        ] {
            assert_eq!(parse_score(bad), None, "{bad:?}");
        }
        assert_eq!(parse_bound(b""), Some((0.0, false)));
        assert_eq!(parse_bound(b"("), Some((0.0, true)));
        assert_eq!(parse_bound(b"( 1"), Some((1.0, true)));
        assert_eq!(parse_bound(b"1\0junk"), Some((1.0, false)));
        assert_eq!(parse_bound(b"  "), None);
        assert_eq!(parse_bound(b"(nan"), None);
        assert_eq!(parse_lex_bound(b"-"), Some(LexBound::NegInf));
        assert_eq!(parse_lex_bound(b"+\0x"), Some(LexBound::PosInf));
        assert_eq!(parse_lex_bound(b"+a"), None);
        assert_eq!(parse_lex_bound(b"[a"), Some(LexBound::Incl(b"a")));
        assert_eq!(parse_lex_bound(b"("), Some(LexBound::Excl(b"")));
        assert_eq!(parse_lex_bound(b""), None);
        assert_eq!(parse_lex_bound(b"a"), None);
    }

    #[test]
    fn numkeys_key_finders_stop_at_the_arguments() {
        let mut keys = Vec::new();
        store_keys(
            &[b"zunionstore", b"d", b"2", b"a", b"b", b"WEIGHTS"],
            0,
            &mut |_, k| keys.push(k.to_vec()),
        );
        assert_eq!(keys, [b"d".to_vec(), b"a".to_vec(), b"b".to_vec()]);
        keys.clear();
        numkeys_at_1(
            &[b"zmpop", b"9223372036854775807", b"a", b"MIN"],
            0,
            &mut |_, k| keys.push(k.to_vec()),
        );
        assert_eq!(keys.len(), 2);
        keys.clear();
        numkeys_at_2(&[b"bzmpop", b"0", b"-1", b"a"], 0, &mut |_, k| {
            keys.push(k.to_vec())
        });
        assert!(keys.is_empty());
    }
}
