//! SORT and SORT_RO: the elements of a list, set or sorted set, numerically or
//! lexicographically, ordered by themselves or by the keys a BY pattern names (`w_*`, or
//! hash fields `h_*->f`), with LIMIT, GET patterns (`#` for the element), and with SORT's
//! STORE, the result stored as a list.
//!
//! Locking: BY and GET patterns read keys that the sorted data names, unknown before the
//! command runs. The key plan is `Keys::CustomOrDb`: the command's own keys (the source,
//! STORE's destination) when no pattern can read a key, every shard of the database when
//! one can (a BY or GET pattern with a `*`). Patterns without `*` read nothing (BY then
//! means "don't sort", GET gives nil), so they keep the narrow plan.
//!
//! Redis 7.0's details are kept: numeric ties are broken by comparing the elements
//! themselves, ALPHA with BY sorts elements whose key is missing first, a set is sorted
//! even with `BY nosort` when the result is stored or the command runs from a script, an
//! invalid number fails the whole command, LIMIT is clamped to the elements, and reading a
//! listpack sorted set converts it to a skiplist (OBJECT ENCODING shows it).

use std::cmp::Ordering;

use super::flags::*;
use super::{lookup_read, CommandSpec, Ctx, Keys};
use crate::error::{CmdResult, CommandError, E, NOT_INTEGER, SYNTAX};
use crate::notify::{GENERIC, LIST};
use crate::storage::entry::ValueRef;
use crate::storage::{Entry, List, Value};
use crate::util::parse_i64;

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("sort", -2, WRITE | DENYOOM, Keys::CustomOrDb(sort_keys, reads_patterns), sort)
        .group("generic")
        .since("1.0.0")
        .summary("Sorts the elements of a list, set or sorted set, optionally storing the result.")
        .complexity("O(N+M*log(M)) where N is the number of elements and M the number returned.")
        .syntax("key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] [ASC | DESC] [ALPHA] [STORE destination]"),
    CommandSpec::new("sort_ro", -2, READONLY, Keys::CustomOrDb(sort_keys, reads_patterns_ro), sort_ro)
        .group("generic")
        .since("7.0.0")
        .summary("Sorts the elements of a list, set or sorted set.")
        .complexity("O(N+M*log(M)) where N is the number of elements and M the number returned.")
        .syntax("key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] [ASC | DESC] [ALPHA]"),
];

// --- options and key plans --------------------------------------------------------------------

/// SORT's options, parsed as Redis parses them (one pass, errors on the spot).
struct Options<'a> {
    desc: bool,
    alpha: bool,
    /// LIMIT offset and count (count < 0: no limit).
    offset: i64,
    count: i64,
    by: Option<&'a [u8]>,
    /// BY a pattern without `*`: the elements keep their order.
    dontsort: bool,
    gets: Vec<&'a [u8]>,
    store: Option<&'a [u8]>,
}

/// The bytes of `a` up to its first NUL (what Redis's C-string functions see).
fn c_str(a: &[u8]) -> &[u8] {
    a.split(|&c| c == 0).next().unwrap_or_default()
}

fn has_star(pattern: &[u8]) -> bool {
    c_str(pattern).contains(&b'*')
}

/// Parses SORT's options. `reads_all`: the user may read every key, which BY and GET
/// patterns need (they name keys only the data knows).
fn parse<'a>(
    args: &[&'a [u8]],
    readonly: bool,
    reads_all: bool,
    cluster: bool,
) -> Result<Options<'a>, CommandError> {
    let mut o = Options {
        desc: false,
        alpha: false,
        offset: 0,
        count: -1,
        by: None,
        dontsort: false,
        gets: Vec::new(),
        store: None,
    };
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let is = |w: &[u8]| args[j].eq_ignore_ascii_case(w);
        if is(b"asc") {
            o.desc = false;
        } else if is(b"desc") {
            o.desc = true;
        } else if is(b"alpha") {
            o.alpha = true;
        } else if is(b"limit") && left >= 2 {
            o.offset = parse_i64(args[j + 1]).ok_or(E(NOT_INTEGER))?;
            o.count = parse_i64(args[j + 2]).ok_or(E(NOT_INTEGER))?;
            j += 2;
        } else if !readonly && is(b"store") && left >= 1 {
            o.store = Some(args[j + 1]);
            j += 1;
        } else if is(b"by") && left >= 1 {
            // In cluster mode the keys a pattern names may be anywhere.
            if has_star(args[j + 1]) && cluster {
                return Err(CommandError::err(
                    "BY option of SORT denied in Cluster mode.",
                ));
            }
            if has_star(args[j + 1]) && !reads_all {
                return Err(E(crate::error::SORT_BY_ACL));
            }
            o.by = Some(args[j + 1]);
            o.dontsort = !has_star(args[j + 1]);
            j += 1;
        } else if is(b"get") && left >= 1 {
            if cluster {
                return Err(CommandError::err(
                    "GET option of SORT denied in Cluster mode.",
                ));
            }
            if !reads_all {
                return Err(E(crate::error::SORT_GET_ACL));
            }
            o.gets.push(args[j + 1]);
            j += 1;
        } else {
            return Err(E(SYNTAX));
        }
        j += 1;
    }
    Ok(o)
}

/// Whether the options read keys named by the data: a BY or GET pattern with a `*`.
fn reads_keys(args: &[&[u8]], readonly: bool) -> bool {
    parse(args, readonly, true, false)
        .is_ok_and(|o| o.by.is_some_and(has_star) || o.gets.iter().any(|g| has_star(g)))
}

fn reads_patterns(args: &[&[u8]]) -> bool {
    reads_keys(args, false)
}

fn reads_patterns_ro(args: &[&[u8]]) -> bool {
    reads_keys(args, true)
}

/// The source, and the STORE destination: the one the handler will use, and the one
/// Redis's COMMAND GETKEYS names (the last STORE, options skipped by their argument
/// counts), which differ only for arguments that the handler refuses or that name keys
/// after keywords.
fn sort_keys(args: &[&[u8]], db: usize, push: &mut dyn FnMut(usize, &[u8])) {
    let Some(src) = args.get(1) else {
        return;
    };
    push(db, src);
    let readonly = args[0].eq_ignore_ascii_case(b"sort_ro");
    if readonly {
        return;
    }
    let mut getkeys = None;
    let mut i = 2;
    while i < args.len() {
        let is = |w: &[u8]| args[i].eq_ignore_ascii_case(w);
        if is(b"limit") {
            i += 2;
        } else if is(b"get") || is(b"by") {
            i += 1;
        } else if is(b"store") && i + 1 < args.len() {
            getkeys = Some(args[i + 1]);
        }
        i += 1;
    }
    let handler = parse(args, false, true, false).ok().and_then(|o| o.store);
    if let Some(k) = getkeys {
        push(db, k);
    }
    if let Some(k) = handler.filter(|k| getkeys.is_none_or(|g| !std::ptr::eq(*k, g))) {
        push(db, k);
    }
}

// --- patterns ---------------------------------------------------------------------------------

/// What a BY or GET pattern gives for `elem` (Redis's `lookupKeyByPattern`): `#` the
/// element itself; `prefix*suffix` the string at the key with `*` replaced by the element;
/// `prefix*suffix->field` that field of the hash there; `None` for no `*`, a missing key
/// or field, or a key of another type. Lookups count as reads (hits, misses, `keymiss`).
fn lookup_pattern(cx: &mut Ctx, pattern: &[u8], elem: &[u8]) -> Option<Vec<u8>> {
    let c = c_str(pattern);
    if c == b"#" {
        return Some(elem.to_vec());
    }
    let star = c.iter().position(|&b| b == b'*')?;
    // `->` after the `*` with something after it: a hash field.
    let field = c[star + 1..]
        .windows(2)
        .position(|w| w == b"->")
        .map(|p| star + 1 + p)
        .filter(|&p| p + 2 < c.len());
    let key_end = field.unwrap_or(pattern.len());
    let mut key = Vec::with_capacity(key_end + elem.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(&pattern[star + 1..key_end]);
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h) = cx.shard(&key).ok()?;
    let e = lookup_read(server, sh, h, &key, now, lru)?;
    match (e.value(), field) {
        (ValueRef::Str(s), None) => Some(s.to_vec()),
        (ValueRef::Other(Value::Hash(hash)), Some(f)) => {
            hash.get(&pattern[f + 2..]).map(<[u8]>::to_vec)
        }
        _ => None,
    }
}

// --- the command ------------------------------------------------------------------------------

/// One element to sort, and what it sorts by.
struct Item {
    elem: Vec<u8>,
    score: f64,
    /// ALPHA with BY: the pattern's value (`None`: missing, sorts first).
    by: Option<Vec<u8>>,
}

/// `SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC | DESC] [ALPHA]
/// [STORE destination]`: the sorted elements (or their GET values), or with STORE the
/// length of the list stored.
fn sort(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    sort_generic(cx, args, false)
}

/// `SORT_RO key ...`: SORT without STORE.
fn sort_ro(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    sort_generic(cx, args, true)
}

/// The kind of value sorted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    List,
    Set,
    ZSet,
}

/// Numeric value of a BY value or element: C `strtod` up to the first NUL, which must use
/// it all (an empty string is 0), without overflow or NaN.
fn sort_number(s: &[u8]) -> Option<f64> {
    let s = c_str(s);
    let (v, n, erange) = super::sorted_set::strtod(s);
    (n == s.len() && !erange && !v.is_nan()).then_some(v)
}

/// C `strcmp` on the bytes before the first NUL (`strcoll` in the C locale).
fn strcmp(a: &[u8], b: &[u8]) -> Ordering {
    c_str(a).cmp(c_str(b))
}

fn sort_generic(cx: &mut Ctx, args: &[&[u8]], readonly: bool) -> CmdResult {
    let reads_all = super::acl::reads_every_key(cx, args);
    let mut o = parse(args, readonly, reads_all, cx.server.cluster.is_some())?;
    let key = args[1];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let from_script = cx.locks.is_exclusive();
    let (source, len) = {
        let (sh, h) = cx.shard(key)?;
        match lookup_read(server, sh, h, key, now, lru) {
            None => (Source::List, 0),
            Some(e) => {
                let source = match e.value() {
                    ValueRef::Other(Value::List(l)) => (Source::List, l.len()),
                    ValueRef::Other(Value::Set(s)) => (Source::Set, s.len()),
                    ValueRef::Other(Value::ZSet(z)) => (Source::ZSet, z.len()),
                    _ => return Err(CommandError::wrong_type()),
                };
                if let Value::ZSet(z) = e.value_mut() {
                    z.convert();
                }
                source
            }
        }
    };
    if o.dontsort && source == Source::Set && (o.store.is_some() || from_script) {
        // A set's order is arbitrary: stored or scripted results are sorted for
        // determinism.
        o.dontsort = false;
        o.alpha = true;
        o.by = None;
    }
    let vlen = len as i64;
    let mut start = o.offset.max(0);
    let mut end = if o.count < 0 {
        vlen - 1
    } else {
        start.saturating_add(o.count).saturating_sub(1)
    };
    if start >= vlen {
        start = vlen - 1;
        end = vlen - 2;
    }
    end = end.min(vlen - 1);
    // Lists and sorted sets keep their order without sorting: read only the range.
    let direct = o.dontsort && source != Source::Set;
    let elems: Vec<Vec<u8>> = {
        let (sh, h) = cx.shard(key)?;
        let value = sh.get(h, key, now).map(|e| e.value());
        let (lo, hi) = if direct {
            if end >= start {
                (start as usize, end as usize + 1)
            } else {
                (0, 0)
            }
        } else {
            (0, len)
        };
        let rev = direct && o.desc;
        match value {
            Some(ValueRef::Other(Value::List(l))) => {
                if rev {
                    let mut v: Vec<Vec<u8>> = l
                        .iter_from(len - hi)
                        .take(hi - lo)
                        .map(|e| e.to_vec())
                        .collect();
                    v.reverse();
                    v
                } else {
                    l.iter_from(lo).take(hi - lo).map(|e| e.to_vec()).collect()
                }
            }
            Some(ValueRef::Other(Value::Set(s))) => s.iter().map(|m| m.into_owned()).collect(),
            Some(ValueRef::Other(Value::ZSet(z))) => {
                let (lo, hi) = if rev { (len - hi, len - lo) } else { (lo, hi) };
                z.range(lo, hi, rev).map(|(m, _)| m.to_vec()).collect()
            }
            _ => Vec::new(),
        }
    };
    if direct {
        if end >= start {
            end -= start;
            start = 0;
        } else {
            (start, end) = (-1, -2);
        }
    }
    let mut items: Vec<Item> = elems
        .into_iter()
        .map(|elem| Item {
            elem,
            score: 0.0,
            by: None,
        })
        .collect();
    let mut bad_number = false;
    if !o.dontsort {
        for it in &mut items {
            let byval = match o.by {
                Some(p) => match lookup_pattern(cx, p, &it.elem) {
                    Some(v) => v,
                    None => continue,
                },
                None => it.elem.clone(),
            };
            if o.alpha {
                if o.by.is_some() {
                    it.by = Some(byval);
                }
            } else {
                match sort_number(&byval) {
                    Some(v) => it.score = v,
                    None => bad_number = true,
                }
            }
        }
        let (by, store) = (o.by.is_some(), o.store.is_some());
        let cmp = |a: &Item, b: &Item| -> Ordering {
            let c = if !o.alpha {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| a.elem.cmp(&b.elem))
            } else if by {
                match (&a.by, &b.by) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) if store => x.cmp(y),
                    (Some(x), Some(y)) => strcmp(x, y),
                }
            } else if store {
                a.elem.cmp(&b.elem)
            } else {
                strcmp(&a.elem, &b.elem)
            };
            if o.desc {
                c.reverse()
            } else {
                c
            }
        };
        // Redis: `qsort` (glibc's, stable), or with BY and a LIMIT that leaves elements out
        // its partial quicksort of the range; ties come out as each leaves them.
        let whole = start == 0 && end == vlen - 1;
        if o.by.is_none() || whole {
            items.sort_by(cmp);
        } else if end >= start {
            crate::pqsort::partial_sort(&mut items, start as usize, end as usize, &cmp);
        }
    }
    if bad_number {
        return Err(CommandError::err(
            "One or more scores can't be converted into double",
        ));
    }
    let picked = if end >= start {
        &items[start as usize..=end as usize]
    } else {
        &items[..0]
    };
    let per = o.gets.len().max(1);
    let outputlen = picked.len() * per;
    let Some(dst) = o.store else {
        cx.out.array(outputlen);
        for it in picked {
            if o.gets.is_empty() {
                cx.out.bulk(&it.elem);
            }
            for g in &o.gets {
                match lookup_pattern(cx, g, &it.elem) {
                    Some(v) => cx.out.bulk(&v),
                    None => cx.out.null(),
                }
            }
        }
        return Ok(());
    };
    let mut list = List::new();
    for it in picked {
        if o.gets.is_empty() {
            list.push_back(&it.elem);
        }
        for g in &o.gets {
            list.push_back(&lookup_pattern(cx, g, &it.elem).unwrap_or_default());
        }
    }
    let (sh, h) = cx.shard(dst)?;
    if outputlen > 0 {
        sh.insert(h, Entry::new(dst, Value::List(Box::new(list)), lru));
        cx.notify(LIST, "sortstore", dst);
        cx.dirty(outputlen as u64);
    } else if sh.get(h, dst, now).is_some() && sh.remove(h, dst).is_some() {
        cx.notify(GENERIC, "del", dst);
        cx.dirty(1);
    }
    cx.out.int(outputlen as i64);
    Ok(())
}
