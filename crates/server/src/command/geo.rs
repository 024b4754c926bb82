//! The geo family: GEOADD, GEODIST, GEOHASH, GEOPOS, GEOSEARCH, GEOSEARCHSTORE and the
//! legacy GEORADIUS / GEORADIUSBYMEMBER (with STORE / STOREDIST) and their `_RO` forms.
//!
//! A geo set is a sorted set whose scores are 52-bit geohashes (see `crate::geohash`):
//! GEOADD turns each position into a score and runs ZADD with them (and reaches replicas
//! and the AOF as that ZADD, as in Redis 7.0), so every sorted-set command, encoding,
//! DUMP and RDB form applies to geo sets unchanged. Searches scan the score ranges of the
//! centre cell and its neighbours and keep the points inside the shape, in Redis's order;
//! replies format distances with 4 decimals and coordinates with Redis's `%.17Lf`
//! trimmed of trailing zeros.

use std::cmp::Ordering;

use smallvec::SmallVec;

use super::flags::*;
use super::sorted_set::{as_zset, limits, parse_score, read_zset, reply_per_member, store, zadd};
use super::{CommandSpec, Ctx, Keys};
use crate::error::{CmdResult, CommandError, E, NOT_FLOAT, NOT_INTEGER, SYNTAX};
use crate::geohash::{self, Search, Shape};
use crate::notify::{GENERIC, ZSET};
use crate::reply::Out;
use crate::storage::zset::ScoreRange;
use crate::storage::ZSet;
use crate::util::parse_i64;

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("geoadd", -5, WRITE | DENYOOM, Keys::Range(1, 1, 1), geoadd)
        .group("geo")
        .since("3.2.0")
        .summary("Adds members with their positions to a geo set (a sorted set); creates the key if needed.")
        .complexity("O(log(N)) for each member added, N being the set's size.")
        .syntax("key [NX | XX] [CH] longitude latitude member [longitude latitude member ...]"),
    CommandSpec::new("geodist", -4, READONLY, Keys::Range(1, 1, 1), geodist)
        .group("geo")
        .since("3.2.0")
        .summary("Returns the distance between two members of a geo set.")
        .complexity("O(1)")
        .syntax("key member1 member2 [M | KM | FT | MI]"),
    CommandSpec::new("geohash", -2, READONLY, Keys::Range(1, 1, 1), geohash_cmd)
        .group("geo")
        .since("3.2.0")
        .summary("Returns members' positions as standard geohash strings.")
        .complexity("O(1) for each member asked for.")
        .syntax("key [member [member ...]]"),
    CommandSpec::new("geopos", -2, READONLY, Keys::Range(1, 1, 1), geopos)
        .group("geo")
        .since("3.2.0")
        .summary("Returns the longitude and latitude of members of a geo set.")
        .complexity("O(1) for each member asked for.")
        .syntax("key [member [member ...]]"),
    CommandSpec::new("georadius", -6, WRITE | DENYOOM, Keys::Custom(radius_keys), georadius)
        .group("geo")
        .since("3.2.0")
        .summary("Returns the members within a radius of a position, optionally storing them.")
        .complexity("O(N+log(M)) where N is the number of members in the area searched and M the set's size.")
        .syntax("key longitude latitude radius M | KM | FT | MI [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC | DESC] [STORE key | STOREDIST key]"),
    CommandSpec::new("georadius_ro", -6, READONLY, Keys::Range(1, 1, 1), georadius_ro)
        .group("geo")
        .since("3.2.10")
        .summary("Returns the members within a radius of a position.")
        .complexity("O(N+log(M)) where N is the number of members in the area searched and M the set's size.")
        .syntax("key longitude latitude radius M | KM | FT | MI [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC | DESC]"),
    CommandSpec::new("georadiusbymember", -5, WRITE | DENYOOM, Keys::Custom(radius_keys), georadiusbymember)
        .group("geo")
        .since("3.2.0")
        .summary("Returns the members within a radius of a member, optionally storing them.")
        .complexity("O(N+log(M)) where N is the number of members in the area searched and M the set's size.")
        .syntax("key member radius M | KM | FT | MI [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC | DESC] [STORE key | STOREDIST key]"),
    CommandSpec::new("georadiusbymember_ro", -5, READONLY, Keys::Range(1, 1, 1), georadiusbymember_ro)
        .group("geo")
        .since("3.2.10")
        .summary("Returns the members within a radius of a member.")
        .complexity("O(N+log(M)) where N is the number of members in the area searched and M the set's size.")
        .syntax("key member radius M | KM | FT | MI [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC | DESC]"),
    CommandSpec::new("geosearch", -7, READONLY, Keys::Range(1, 1, 1), geosearch)
        .group("geo")
        .since("6.2.0")
        .summary("Returns the members within a radius or a box around a member or a position.")
        .complexity("O(N+log(M)) where N is the number of members in the area searched and M the set's size.")
        .syntax("key FROMMEMBER member | FROMLONLAT longitude latitude BYRADIUS radius M | KM | FT | MI | BYBOX width height M | KM | FT | MI [ASC | DESC] [COUNT count [ANY]] [WITHCOORD] [WITHDIST] [WITHHASH]"),
    CommandSpec::new("geosearchstore", -8, WRITE | DENYOOM, Keys::Range(1, 2, 1), geosearchstore)
        .group("geo")
        .since("6.2.0")
        .summary("Stores the members within a radius or a box around a member or a position.")
        .complexity("O(N+log(M)) where N is the number of members in the area searched and M the set's size.")
        .syntax("destination source FROMMEMBER member | FROMLONLAT longitude latitude BYRADIUS radius M | KM | FT | MI | BYBOX width height M | KM | FT | MI [ASC | DESC] [COUNT count [ANY]] [STOREDIST]"),
];

/// GEORADIUS and GEORADIUSBYMEMBER: the source, and the key after any STORE / STOREDIST
/// word among the options (a superset of what the handler may use as destination).
fn radius_keys(args: &[&[u8]], db: usize, push: &mut dyn FnMut(usize, &[u8])) {
    if let Some(k) = args.get(1) {
        push(db, k);
    }
    for i in 5..args.len().saturating_sub(1) {
        let a = args[i];
        if a.eq_ignore_ascii_case(b"store") || a.eq_ignore_ascii_case(b"storedist") {
            push(db, args[i + 1]);
        }
    }
}

// --- parsing and formatting ---------------------------------------------------------------

const UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";

/// A float argument as Redis's `getDoubleFromObjectOrReply`, with its error text.
fn double(a: &[u8], err: &'static str) -> Result<f64, CommandError> {
    parse_score(a).ok_or(E(err))
}

/// A unit's size in meters.
fn unit(a: &[u8]) -> Result<f64, CommandError> {
    let is = |w: &[u8]| a.eq_ignore_ascii_case(w);
    if is(b"m") {
        Ok(1.0)
    } else if is(b"km") {
        Ok(1000.0)
    } else if is(b"ft") {
        Ok(0.3048)
    } else if is(b"mi") {
        Ok(1609.34)
    } else {
        Err(E(UNIT))
    }
}

/// `longitude latitude`, within the limits.
fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), CommandError> {
    let x = double(lon, NOT_FLOAT)?;
    let y = double(lat, NOT_FLOAT)?;
    if !geohash::valid(x, y) {
        return Err(CommandError::Owned(format!(
            "ERR invalid longitude,latitude pair {x:.6},{y:.6}"
        )));
    }
    Ok((x, y))
}

/// `radius unit`: (radius, meters per unit).
fn radius(r: &[u8], u: &[u8]) -> Result<(f64, f64), CommandError> {
    let d = double(r, "ERR need numeric radius")?;
    if d < 0.0 {
        return Err(CommandError::err("radius cannot be negative"));
    }
    Ok((d, unit(u)?))
}

/// A distance reply: `%.4f` as a bulk string whatever the protocol.
fn reply_distance(out: &mut Out, d: f64) {
    out.bulk(format!("{d:.4}").as_bytes());
}

/// A coordinate as Redis's `addReplyHumanLongDouble`: 17 decimals, trailing zeros (and a
/// trailing dot) dropped; a bulk string in RESP2, a double in RESP3.
fn reply_coord(out: &mut Out, d: f64) {
    let mut s = if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{d:.17}")
    };
    if s.contains('.') {
        let t = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(t);
    }
    if s == "-0" {
        s = "0".into();
    }
    out.double_text(s.as_bytes());
}

fn reply_position(out: &mut Out, score: f64) {
    let (lon, lat) = geohash::decode_score(score);
    out.array(2);
    reply_coord(out, lon);
    reply_coord(out, lat);
}

// --- GEOADD ---------------------------------------------------------------------------------

/// `GEOADD key [NX | XX] [CH] longitude latitude member [...]`: ZADD of the positions'
/// scores (replies as ZADD does), propagated as that ZADD.
fn geoadd(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let (mut nx, mut xx) = (false, false);
    let mut first = 2;
    while first < args.len() {
        let a = args[first];
        if a.eq_ignore_ascii_case(b"nx") {
            nx = true;
        } else if a.eq_ignore_ascii_case(b"xx") {
            xx = true;
        } else if !a.eq_ignore_ascii_case(b"ch") {
            break;
        }
        first += 1;
    }
    if !(args.len() - first).is_multiple_of(3) || (nx && xx) {
        return Err(E(SYNTAX));
    }
    // The scores' decimal text, without an allocation each (the usual GEOADD adds one).
    let mut values: SmallVec<[u64; 2]> = SmallVec::new();
    for t in args[first..].chunks_exact(3) {
        let (x, y) = lon_lat(t[0], t[1])?;
        values.push(geohash::score_of(x, y).unwrap_or(0));
    }
    let mut bufs: SmallVec<[itoa::Buffer; 2]> =
        values.iter().map(|_| itoa::Buffer::new()).collect();
    let texts: SmallVec<[&str; 2]> = bufs
        .iter_mut()
        .zip(&values)
        .map(|(b, &v)| b.format(v))
        .collect();
    let mut zargs: SmallVec<[&[u8]; 8]> = SmallVec::with_capacity(first + texts.len() * 2);
    zargs.push(b"zadd");
    zargs.extend_from_slice(&args[1..first]);
    for (t, s) in args[first..].chunks_exact(3).zip(&texts) {
        zargs.push(s.as_bytes());
        zargs.push(t[2]);
    }
    zadd(cx, &zargs)?;
    if cx.cmd_dirty.get() > 0 {
        cx.propagate(&zargs);
    }
    Ok(())
}

// --- reads by member ------------------------------------------------------------------------

/// `GEODIST key member1 member2 [unit]`: the distance, nil when a member is missing.
fn geodist(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let to_meter = match args.len() {
        4 => 1.0,
        5 => unit(args[4])?,
        _ => return Err(E(SYNTAX)),
    };
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let (sh, h, out) = cx.shard_out(args[1])?;
    let z = read_zset(server, sh, h, args[1], now, lru)?;
    match z.and_then(|z| Some((z.score(args[2])?, z.score(args[3])?))) {
        Some((a, b)) => {
            let (x1, y1) = geohash::decode_score(a);
            let (x2, y2) = geohash::decode_score(b);
            reply_distance(out, geohash::distance(x1, y1, x2, y2) / to_meter);
        }
        None => out.null(),
    }
    Ok(())
}

/// `GEOHASH key [member ...]`: each member's 11-character geohash, or nil.
fn geohash_cmd(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    reply_per_member(cx, args, |out, score| match score {
        Some(s) => out.bulk(&geohash::geohash_string(s)),
        None => out.null(),
    })
}

/// `GEOPOS key [member ...]`: each member's `[longitude, latitude]`, or a null array.
fn geopos(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    reply_per_member(cx, args, |out, score| match score {
        Some(s) => reply_position(out, s),
        None => out.null_array(),
    })
}

// --- searches -------------------------------------------------------------------------------

/// Which search command runs (Redis's `georadiusGeneric` flags).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// GEORADIUS[_RO]: `key lon lat radius unit`.
    Coords { ro: bool },
    /// GEORADIUSBYMEMBER[_RO]: `key member radius unit`.
    Member { ro: bool },
    /// GEOSEARCH / GEOSEARCHSTORE.
    Search { store: bool },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// A point found by a search.
struct Point {
    member: Vec<u8>,
    score: f64,
    /// Meters from the centre.
    dist: f64,
    lon: f64,
    lat: f64,
}

fn georadius(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    search_generic(cx, args, 1, Kind::Coords { ro: false })
}

fn georadius_ro(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    search_generic(cx, args, 1, Kind::Coords { ro: true })
}

fn georadiusbymember(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    search_generic(cx, args, 1, Kind::Member { ro: false })
}

fn georadiusbymember_ro(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    search_generic(cx, args, 1, Kind::Member { ro: true })
}

fn geosearch(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    search_generic(cx, args, 1, Kind::Search { store: false })
}

fn geosearchstore(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    search_generic(cx, args, 2, Kind::Search { store: true })
}

/// The sorted set at `key` without counting a lookup (the search looked it up already).
fn quiet_zset<'c>(cx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c ZSet>, CommandError> {
    let now = cx.now;
    let (sh, h) = cx.shard(key)?;
    match sh.get(h, key, now) {
        Some(e) => as_zset(e).map(Some),
        None => Ok(None),
    }
}

/// The position of `member` in the set at `key`.
fn member_position(cx: &mut Ctx, key: &[u8], member: &[u8]) -> Result<(f64, f64), CommandError> {
    quiet_zset(cx, key)?
        .and_then(|z| z.score(member))
        .map(geohash::decode_score)
        .ok_or_else(|| CommandError::err("could not decode requested zset member"))
}

/// Every search command (Redis's `georadiusGeneric`): parses in Redis's order (errors
/// included), scans the cells, then replies or stores.
fn search_generic(cx: &mut Ctx, args: &[&[u8]], src_idx: usize, kind: Kind) -> CmdResult {
    let src = args[src_idx];
    let (now, lru, server) = (cx.now, cx.lru(), cx.server);
    let exists = {
        let (sh, h) = cx.shard(src)?;
        read_zset(server, sh, h, src, now, lru)?.is_some()
    };
    let mut center = (0.0, 0.0);
    let mut shape = Shape::Radius(0.0);
    let mut conversion = 1.0;
    let mut store_key: Option<&[u8]> = None;
    let base = match kind {
        Kind::Coords { .. } => {
            center = lon_lat(args[2], args[3])?;
            let (r, c) = radius(args[4], args[5])?;
            (shape, conversion) = (Shape::Radius(r), c);
            6
        }
        Kind::Member { .. } if !exists => 5,
        Kind::Member { .. } => {
            center = member_position(cx, src, args[2])?;
            let (r, c) = radius(args[3], args[4])?;
            (shape, conversion) = (Shape::Radius(r), c);
            5
        }
        Kind::Search { store } => {
            if store {
                store_key = Some(args[1]);
                3
            } else {
                2
            }
        }
    };
    let (search, search_store) = match kind {
        Kind::Search { store } => (true, store),
        _ => (false, false),
    };
    let nostore = matches!(kind, Kind::Coords { ro: true } | Kind::Member { ro: true });
    let (mut withdist, mut withhash, mut withcoord) = (false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut any = false;
    let mut count: i64 = 0;
    let mut storedist = false;
    let rest = &args[base..];
    let mut i = 0;
    while i < rest.len() {
        let a = rest[i];
        let left = rest.len() - i - 1;
        let is = |w: &[u8]| a.eq_ignore_ascii_case(w);
        if is(b"withdist") {
            withdist = true;
        } else if is(b"withhash") {
            withhash = true;
        } else if is(b"withcoord") {
            withcoord = true;
        } else if is(b"any") {
            any = true;
        } else if is(b"asc") {
            sort = Sort::Asc;
        } else if is(b"desc") {
            sort = Sort::Desc;
        } else if is(b"count") && left >= 1 {
            count = parse_i64(rest[i + 1]).ok_or(E(NOT_INTEGER))?;
            if count <= 0 {
                return Err(CommandError::err("COUNT must be > 0"));
            }
            i += 1;
        } else if (is(b"store") || is(b"storedist")) && left >= 1 && !nostore && !search {
            store_key = Some(rest[i + 1]);
            storedist = is(b"storedist");
            i += 1;
        } else if is(b"storedist") && search_store {
            storedist = true;
        } else if is(b"frommember") && left >= 1 && search && !fromloc {
            if exists {
                center = member_position(cx, src, rest[i + 1])?;
            }
            frommember = true;
            i += 1;
        } else if is(b"fromlonlat") && left >= 2 && search && !frommember {
            center = lon_lat(rest[i + 1], rest[i + 2])?;
            fromloc = true;
            i += 2;
        } else if is(b"byradius") && left >= 2 && search && !bybox {
            let (r, c) = radius(rest[i + 1], rest[i + 2])?;
            (shape, conversion) = (Shape::Radius(r), c);
            byradius = true;
            i += 2;
        } else if is(b"bybox") && left >= 3 && search && !byradius {
            let w = double(rest[i + 1], "ERR need numeric width")?;
            let h = double(rest[i + 2], "ERR need numeric height")?;
            if h < 0.0 || w < 0.0 {
                return Err(CommandError::err("height or width cannot be negative"));
            }
            (shape, conversion) = (Shape::Box(w, h), unit(rest[i + 3])?);
            bybox = true;
            i += 3;
        } else {
            return Err(E(SYNTAX));
        }
        i += 1;
    }
    if store_key.is_some() && (withdist || withhash || withcoord) {
        return Err(CommandError::Owned(format!(
            "ERR {} is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            if search_store {
                "GEOSEARCHSTORE"
            } else {
                "STORE option in GEORADIUS"
            }
        )));
    }
    let name = String::from_utf8_lossy(args[0]);
    if search && !(frommember || fromloc) {
        return Err(CommandError::Owned(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if search && !(byradius || bybox) {
        return Err(CommandError::Owned(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if any && count == 0 {
        return Err(CommandError::err(
            "the ANY argument requires COUNT argument",
        ));
    }
    if !exists {
        match store_key {
            Some(dst) => {
                let deleted = delete_key(cx, dst)?;
                cx.out.int(0);
                if deleted {
                    cx.notify(GENERIC, "del", dst);
                    cx.dirty(1);
                }
            }
            None => cx.out.array(0),
        }
        return Ok(());
    }
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let search = Search {
        lon: center.0,
        lat: center.1,
        shape,
        conversion,
    };
    let limit = if any {
        usize::try_from(count).unwrap_or(usize::MAX)
    } else {
        0
    };
    let mut points = match quiet_zset(cx, src)? {
        Some(z) => find_points(z, &search, limit),
        None => Vec::new(),
    };
    if points.is_empty() && store_key.is_none() {
        cx.out.array(0);
        return Ok(());
    }
    let returned = if count == 0 {
        points.len()
    } else {
        points
            .len()
            .min(usize::try_from(count).unwrap_or(usize::MAX))
    };
    if sort != Sort::None {
        let cmp = |a: &Point, b: &Point| {
            let c = a.dist.partial_cmp(&b.dist).unwrap_or(Ordering::Equal);
            if sort == Sort::Desc {
                c.reverse()
            } else {
                c
            }
        };
        // Redis: `qsort` (glibc's, stable) for everything, its partial quicksort for the
        // first `returned`; ties come out as each leaves them.
        if returned == points.len() {
            points.sort_by(cmp);
        } else if returned > 0 {
            crate::pqsort::partial_sort(&mut points, 0, returned - 1, &cmp);
        }
    }
    points.truncate(returned);
    for p in &mut points {
        p.dist /= conversion;
    }
    let Some(dst) = store_key else {
        let out = &mut cx.out;
        let options = usize::from(withdist) + usize::from(withhash) + usize::from(withcoord);
        out.array(returned);
        for p in &points {
            if options > 0 {
                out.array(options + 1);
            }
            out.bulk(&p.member);
            if withdist {
                reply_distance(out, p.dist);
            }
            if withhash {
                out.int(p.score as i64);
            }
            if withcoord {
                out.array(2);
                reply_coord(out, p.lon);
                reply_coord(out, p.lat);
            }
        }
        return Ok(());
    };
    if returned > 0 {
        let mut items: Vec<(Vec<u8>, f64)> = points
            .into_iter()
            .map(|p| (p.member, if storedist { p.dist } else { p.score }))
            .collect();
        items.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        let z = ZSet::from_sorted(items, limits(server));
        let (sh, h) = cx.shard(dst)?;
        store(sh, h, dst, z, lru);
        cx.notify(
            ZSET,
            if search_store {
                "geosearchstore"
            } else {
                "georadiusstore"
            },
            dst,
        );
        cx.dirty(returned as u64);
    } else if delete_key(cx, dst)? {
        cx.notify(GENERIC, "del", dst);
        cx.dirty(1);
    }
    cx.out.int(returned as i64);
    Ok(())
}

/// Deletes `key` (a search's empty destination); whether it existed.
fn delete_key(cx: &mut Ctx, key: &[u8]) -> Result<bool, CommandError> {
    let now = cx.now;
    let (sh, h) = cx.shard(key)?;
    // A key past its deadline is gone already: only a live one counts as deleted.
    if sh.get(h, key, now).is_none() {
        return Ok(false);
    }
    Ok(sh.remove(h, key).is_some())
}

/// The points of `z` inside the search's shape, cell by cell in Redis's order; with a
/// `limit` (COUNT ... ANY) the scan stops once that many are found.
fn find_points(z: &ZSet, search: &Search, limit: usize) -> Vec<Point> {
    let cells = search.cells();
    let mut found = Vec::new();
    let mut last: usize = 0;
    for (i, cell) in cells.iter().enumerate() {
        if cell.is_zero() {
            continue;
        }
        // Huge radiuses make neighbours coincide: skip a cell equal to the last one
        // scanned (Redis never compares with the centre cell, index 0).
        if last != 0 && *cell == cells[last] {
            continue;
        }
        if limit != 0 && found.len() >= limit {
            break;
        }
        let (min, max) = geohash::score_range(*cell);
        let range = ScoreRange {
            min: min as f64,
            max: max as f64,
            minex: false,
            maxex: true,
        };
        let (lo, hi) = z.score_span(&range);
        for (member, score) in z.range(lo, hi, false) {
            let (lon, lat) = geohash::decode_score(score);
            if let Some(dist) = search.distance_if_within(lon, lat) {
                found.push(Point {
                    member: member.to_vec(),
                    score,
                    dist,
                    lon,
                    lat,
                });
                if limit != 0 && found.len() >= limit {
                    break;
                }
            }
        }
        last = i;
    }
    found
}
