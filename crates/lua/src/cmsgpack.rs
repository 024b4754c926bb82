//! The `cmsgpack` library (lua-cmsgpack 0.4.0, as Redis 7.0 embeds it): MessagePack
//! encoding and decoding of Lua values.
//!
//! * `pack(v1, v2, ...)` encodes each value and returns the concatenation. Numbers that are
//!   whole and fit in 64 bits use the smallest integer form (fixint, uint8..64, int8..64);
//!   other numbers use float32 when that keeps the value exactly, otherwise float64. Strings
//!   use fixstr / str8 / str16 / str32 (there is no bin type). A table whose keys are exactly
//!   the integers 1..n is an array, any other table a map (an empty table is an empty
//!   array). Tables nested deeper than 16 levels, and values of other types, encode as nil.
//! * `unpack(s)` returns every value in `s`; `unpack_one(s [, offset])` and
//!   `unpack_limit(s, limit [, offset])` return the offset to continue from (-1 at the end)
//!   followed by at most one / `limit` values.
//!
//! The error texts, and the Lua stack limits that bound how many values one call can return
//! and how deep a decoded value can nest, are those of the C library in Redis.

use crate::bit::{arg_error_at, lua_error};
use crate::structlib::{c_to_i64, check_bytes, check_number, opt_integer};
use mlua::{Lua, MultiValue, Table, Value};

const NAME: &str = "cmsgpack";
const VERSION: &str = "lua-cmsgpack 0.4.0";
const COPYRIGHT: &str = "Copyright (C) 2012, Salvatore Sanfilippo";
const DESCRIPTION: &str = "MessagePack C implementation for Lua";

/// Tables at this depth (the arguments being depth 0) encode as nil.
const MAX_NESTING: usize = 16;

/// The most stack slots a C function may use in Redis's Lua 5.1 (`LUAI_MAXCSTACK`).
const MAX_C_STACK: usize = 8000;

// ------------------------------------------------------------------------------------------
// Encoding

fn encode_str(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(bytes);
}

fn encode_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 0x7f {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_number(out: &mut Vec<u8>, n: f64) {
    let as_int = c_to_i64(n);
    if !n.is_infinite() && as_int as f64 == n {
        encode_int(out, as_int);
        return;
    }
    let single = n as f32;
    if f64::from(single) == n {
        out.push(0xca);
        out.extend_from_slice(&single.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_len_header(out: &mut Vec<u8>, n: usize, fix: u8, tag16: u8, tag32: u8) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(tag16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(tag32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// A C cast from double to `int` on x86-64: out of range (and NaN) gives `i32::MIN`.
fn c_to_i32(n: f64) -> i32 {
    if n.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&n) {
        i32::MIN
    } else {
        n as i32
    }
}

fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// Whether the table's keys are exactly the integers 1..n.
fn is_array(table: &Table) -> mlua::Result<bool> {
    let mut count: i64 = 0;
    let mut max: i64 = 0;
    for pair in table.pairs::<Value, Value>() {
        let (key, _) = pair?;
        let Some(n) = number_of(&key) else {
            return Ok(false);
        };
        if n <= 0.0 || f64::from(c_to_i32(n)) != n {
            return Ok(false);
        }
        max = max.max(n as i64);
        count += 1;
    }
    Ok(max == count)
}

fn encode_table(out: &mut Vec<u8>, table: &Table, level: usize) -> mlua::Result<()> {
    if is_array(table)? {
        let len = table.raw_len();
        encode_len_header(out, len, 0x90, 0xdc, 0xdd);
        for j in 1..=len {
            let item: Value = table.get(j)?;
            encode_value(out, &item, level + 1)?;
        }
    } else {
        let mut len = 0usize;
        for pair in table.pairs::<Value, Value>() {
            pair?;
            len += 1;
        }
        encode_len_header(out, len, 0x80, 0xde, 0xdf);
        for pair in table.pairs::<Value, Value>() {
            let (key, item) = pair?;
            encode_value(out, &key, level + 1)?;
            encode_value(out, &item, level + 1)?;
        }
    }
    Ok(())
}

fn encode_value(out: &mut Vec<u8>, value: &Value, level: usize) -> mlua::Result<()> {
    match value {
        Value::String(s) => encode_str(out, &s.as_bytes()),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_number(out, *i as f64),
        Value::Number(n) => encode_number(out, *n),
        Value::Table(t) if level < MAX_NESTING => encode_table(out, t, level)?,
        _ => out.push(0xc0),
    }
    Ok(())
}

fn pack(lua: &Lua, args: MultiValue) -> mlua::Result<mlua::String> {
    if args.is_empty() {
        return Err(arg_error_at(lua, 0, "MessagePack pack needs input."));
    }
    let mut out = Vec::new();
    for value in args.iter() {
        encode_value(&mut out, value, 0)?;
    }
    lua.create_string(&out)
}

// ------------------------------------------------------------------------------------------
// Decoding

/// Why decoding stopped.
enum DecodeError {
    /// The input ended inside a value.
    Eof,
    /// A byte that starts no MessagePack value this library knows.
    BadFormat,
    /// A Lua error (stack overflow, invalid table key).
    Lua(mlua::Error),
}

impl From<mlua::Error> for DecodeError {
    fn from(err: mlua::Error) -> Self {
        DecodeError::Lua(err)
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn left(&self) -> usize {
        self.data.len() - self.pos
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.left() < n {
            Err(DecodeError::Eof)
        } else {
            Ok(())
        }
    }

    /// The `n` bytes after the type byte (which the caller has checked are there).
    fn arg(&self, n: usize) -> &[u8] {
        &self.data[self.pos + 1..self.pos + 1 + n]
    }

    fn be(&self, n: usize) -> u64 {
        self.arg(n)
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    }
}

/// What one MessagePack item starts: a complete scalar, or a container header.
enum Item {
    Scalar(Value),
    Array(usize),
    Map(usize),
}

/// Reads one scalar, or the header of an array or map. `depth` is how many Lua stack slots
/// the C library would be using at this point, to reproduce its stack overflow errors.
fn read_item(lua: &Lua, cur: &mut Cursor, depth: usize) -> Result<Item, DecodeError> {
    cur.need(1)?;
    if depth + 1 > MAX_C_STACK {
        return Err(lua_error(
            lua,
            "stack overflow (too many return values at once; use unpack_one or unpack_limit \
             instead.)",
        )
        .into());
    }
    let tag = cur.data[cur.pos];
    let number = |n: f64| Ok(Item::Scalar(Value::Number(n)));
    match tag {
        0xc0 => {
            cur.pos += 1;
            Ok(Item::Scalar(Value::Nil))
        }
        0xc2 | 0xc3 => {
            cur.pos += 1;
            Ok(Item::Scalar(Value::Boolean(tag == 0xc3)))
        }
        0xca..=0xd3 => {
            let n = match tag {
                0xcc | 0xd0 => 1,
                0xcd | 0xd1 => 2,
                0xce | 0xd2 | 0xca => 4,
                _ => 8,
            };
            cur.need(1 + n)?;
            let raw = cur.be(n);
            let value = match tag {
                0xcc..=0xce => raw as f64,
                // Pushed as a signed Lua integer, so the top half reads as negative.
                0xcf | 0xd3 => raw as i64 as f64,
                0xd0 => f64::from(raw as u8 as i8),
                0xd1 => f64::from(raw as u16 as i16),
                0xd2 => f64::from(raw as u32 as i32),
                0xca => f64::from(f32::from_bits(raw as u32)),
                _ => f64::from_bits(raw),
            };
            cur.pos += 1 + n;
            number(value)
        }
        0xd9 | 0xda | 0xdb | 0xa0..=0xbf => {
            let n = match tag {
                0xd9 => 1,
                0xda => 2,
                0xdb => 4,
                _ => 0,
            };
            cur.need(1 + n)?;
            let len = if n == 0 {
                usize::from(tag & 0x1f)
            } else {
                cur.be(n) as usize
            };
            cur.need(1 + n + len)?;
            let start = cur.pos + 1 + n;
            let s = lua.create_string(&cur.data[start..start + len])?;
            cur.pos = start + len;
            Ok(Item::Scalar(Value::String(s)))
        }
        0xdc | 0xdd | 0xde | 0xdf | 0x80..=0x9f => {
            let n = match tag {
                0xdc | 0xde => 2,
                0xdd | 0xdf => 4,
                _ => 0,
            };
            cur.need(1 + n)?;
            let len = if n == 0 {
                usize::from(tag & 0x0f)
            } else {
                cur.be(n) as usize
            };
            cur.pos += 1 + n;
            if matches!(tag, 0xdc | 0xdd | 0x90..=0x9f) {
                Ok(Item::Array(len))
            } else {
                Ok(Item::Map(len))
            }
        }
        0x00..=0x7f => {
            cur.pos += 1;
            number(f64::from(tag))
        }
        0xe0..=0xff => {
            cur.pos += 1;
            number(f64::from(tag as i8))
        }
        _ => Err(DecodeError::BadFormat),
    }
}

/// A container being filled while decoding.
enum Frame {
    /// An array, and the 1-based index its next element goes to.
    Array {
        table: Table,
        len: usize,
        next: usize,
    },
    /// A map, how many pairs are still to come, and the key read for the current pair.
    Map {
        table: Table,
        remaining: usize,
        key: Option<Value>,
    },
}

/// Decodes one complete value, without recursion (nesting can go thousands deep). `depth`
/// is the number of Lua stack slots the C library would be using before it starts; each
/// open array then holds two (the table and the index), each open map one (the table) plus
/// one while a pair's value is decoded (the key).
fn decode(lua: &Lua, cur: &mut Cursor, depth: usize) -> Result<Value, DecodeError> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut slots = depth;
    loop {
        let mut value = match read_item(lua, cur, slots)? {
            Item::Scalar(value) => value,
            Item::Array(len) => {
                let table = lua.create_table()?;
                // The new table takes a slot, and the C code then asks for one more.
                if slots + 2 > MAX_C_STACK {
                    return Err(lua_error(
                        lua,
                        "stack overflow (in function mp_decode_to_lua_array)",
                    )
                    .into());
                }
                if len == 0 {
                    Value::Table(table)
                } else {
                    frames.push(Frame::Array {
                        table,
                        len,
                        next: 1,
                    });
                    slots += 2;
                    continue;
                }
            }
            Item::Map(len) => {
                let table = lua.create_table()?;
                if len == 0 {
                    Value::Table(table)
                } else {
                    frames.push(Frame::Map {
                        table,
                        remaining: len,
                        key: None,
                    });
                    slots += 1;
                    continue;
                }
            }
        };
        // Hand the finished value to the innermost open container, closing every container
        // it completes.
        loop {
            let finished = match frames.last_mut() {
                None => return Ok(value),
                Some(Frame::Array { table, len, next }) => {
                    table.raw_set(*next, value)?;
                    if *next == *len {
                        slots -= 2;
                        true
                    } else {
                        *next += 1;
                        false
                    }
                }
                Some(Frame::Map {
                    table,
                    remaining,
                    key,
                }) => match key.take() {
                    None => {
                        *key = Some(value);
                        slots += 1;
                        false
                    }
                    Some(k) => {
                        match &k {
                            Value::Nil => return Err(lua_error_plain("table index is nil").into()),
                            Value::Number(n) if n.is_nan() => {
                                return Err(lua_error_plain("table index is NaN").into())
                            }
                            _ => {}
                        }
                        table.raw_set(k, value)?;
                        slots -= 1;
                        *remaining -= 1;
                        if *remaining == 0 {
                            slots -= 1;
                            true
                        } else {
                            false
                        }
                    }
                },
            };
            if !finished {
                break;
            }
            value = match frames.pop() {
                Some(Frame::Array { table, .. }) | Some(Frame::Map { table, .. }) => {
                    Value::Table(table)
                }
                None => unreachable!("a container was just completed"),
            };
        }
    }
}

/// An error raised by the Lua core inside the C function: no position prefix.
fn lua_error_plain(msg: &str) -> mlua::Error {
    mlua::Error::RuntimeError(msg.to_string())
}

/// Decodes up to `limit` values from `offset` (both 0: everything, without the offset
/// result). `base` is the number of stack slots the C function holds before it starts.
fn unpack_full(
    lua: &Lua,
    data: &[u8],
    limit: i64,
    offset: i64,
    base: usize,
) -> mlua::Result<MultiValue> {
    let len = data.len();
    if offset < 0 || limit < 0 {
        // The C code prints the input length where it means the limit.
        return Err(lua_error(
            lua,
            &format!(
                "Invalid request to unpack with offset of {} and limit of {}.",
                offset as i32, len as i32
            ),
        ));
    }
    if offset as u64 > len as u64 {
        return Err(lua_error(
            lua,
            &format!(
                "Start offset {} greater than input length {}.",
                offset as i32, len as i32
            ),
        ));
    }
    let decode_all = limit == 0 && offset == 0;
    let limit = if decode_all {
        i64::from(i32::MAX)
    } else {
        limit
    };
    let mut cur = Cursor {
        data,
        pos: offset as usize,
    };
    let mut results: Vec<Value> = Vec::new();
    let mut count: i64 = 0;
    while cur.left() > 0 && count < limit {
        match decode(lua, &mut cur, base + results.len()) {
            Ok(value) => results.push(value),
            Err(DecodeError::Eof) => return Err(lua_error(lua, "Missing bytes in input.")),
            Err(DecodeError::BadFormat) => return Err(lua_error(lua, "Bad data format in input.")),
            Err(DecodeError::Lua(err)) => return Err(err),
        }
        count += 1;
    }
    if !decode_all {
        if base + results.len() + 1 > MAX_C_STACK {
            return Err(lua_error(
                lua,
                "stack overflow (in function mp_unpack_full)",
            ));
        }
        let next = if cur.left() == 0 {
            -1.0
        } else {
            cur.pos as f64
        };
        results.insert(0, Value::Number(next));
    }
    Ok(results.into_iter().collect())
}

fn unpack(lua: &Lua, args: MultiValue) -> mlua::Result<MultiValue> {
    let args: Vec<Value> = args.into_iter().collect();
    let data = check_bytes(lua, &args, 1)?;
    // Every argument stays on the C function's stack.
    unpack_full(lua, &data, 0, 0, args.len())
}

fn unpack_one(lua: &Lua, args: MultiValue) -> mlua::Result<MultiValue> {
    let args: Vec<Value> = args.into_iter().collect();
    let offset = opt_integer(lua, &args, 2, 0)?;
    let data = check_bytes(lua, &args, 1)?;
    unpack_full(lua, &data, 1, offset, 1)
}

fn unpack_limit(lua: &Lua, args: MultiValue) -> mlua::Result<MultiValue> {
    let args: Vec<Value> = args.into_iter().collect();
    let limit = c_to_i64(check_number(lua, &args, 2)?);
    let offset = opt_integer(lua, &args, 3, 0)?;
    let data = check_bytes(lua, &args, 1)?;
    unpack_full(lua, &data, limit, offset, 1)
}

/// Registers the library's global table.
pub fn register(lua: &Lua) -> mlua::Result<()> {
    let table = lua.create_table()?;
    table.set("pack", lua.create_function(pack)?)?;
    table.set("unpack", lua.create_function(unpack)?)?;
    table.set("unpack_one", lua.create_function(unpack_one)?)?;
    table.set("unpack_limit", lua.create_function(unpack_limit)?)?;
    table.set("_NAME", NAME)?;
    table.set("_VERSION", VERSION)?;
    table.set("_COPYRIGHT", COPYRIGHT)?;
    table.set("_DESCRIPTION", DESCRIPTION)?;
    lua.globals().set("cmsgpack", table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lua() -> Lua {
        let lua = Lua::new();
        register(&lua).unwrap();
        lua
    }

    const PRELUDE: &str = "local function hx(s) return (string.gsub(s, '.', function(c) \
        return string.format('%02x', string.byte(c)) end)) end \
        local function all(...) local t = {} for i = 1, select('#', ...) do \
        t[#t+1] = tostring((select(i, ...))) end return table.concat(t, '|') end \
        local function dump(v) if type(v) ~= 'table' then return tostring(v) end \
        local ks = {} for k in pairs(v) do ks[#ks+1] = k end \
        table.sort(ks, function(a,b) return tostring(a) < tostring(b) end) local o = {} \
        for _, k in ipairs(ks) do o[#o+1] = tostring(k)..'='..dump(v[k]) end \
        return '{'..table.concat(o, ',')..'}' end ";

    /// Evaluates `all(<expr>)` as the chunk `user_script`; an error gives its message.
    fn run(lua: &Lua, expr: &str) -> String {
        let code = format!("{PRELUDE} return all({expr})");
        match lua.load(&code).set_name("=user_script").eval::<String>() {
            Ok(s) => s,
            Err(e) => crate::bit::tests::root_message(&e),
        }
    }

    /// (expression, result); results come from redis-server 7.0.15.
    fn check(cases: &[(&str, &str)]) {
        let lua = lua();
        for (expr, want) in cases {
            assert_eq!(run(&lua, expr), *want, "{expr}");
        }
    }

    #[test]
    fn metadata() {
        check(&[(
            "cmsgpack._NAME, cmsgpack._VERSION, cmsgpack._COPYRIGHT, cmsgpack._DESCRIPTION",
            "cmsgpack|lua-cmsgpack 0.4.0|Copyright (C) 2012, Salvatore Sanfilippo\
             |MessagePack C implementation for Lua",
        )]);
    }

    #[test]
    fn pack_numbers() {
        check(&[
            (
                "hx(cmsgpack.pack(0, 127, 128, 255, 256, 65535, 65536, 2^32-1, 2^32, 2^53, -1, \
                 -32, -33, -128, -129, -32768, -32769, -2^31, -2^31-1, -2^53))",
                "007fcc80ccffcd0100cdffffce00010000ceffffffffcf0000000100000000cf00200000000000\
                 00ffe0d0dfd080d1ff7fd18000d2ffff7fffd280000000d3ffffffff7fffffffd3ffe000000000\
                 0000",
            ),
            (
                "hx(cmsgpack.pack(2^63, -2^63, 1.5, 0.1, 1/0, -1/0, 0/0, -0.0, 1e300))",
                "ca5f000000d38000000000000000ca3fc00000cb3fb999999999999aca7f800000caff800000\
                 cbfff800000000000000cb7e37e43c8800759c",
            ),
        ]);
    }

    #[test]
    fn pack_strings_and_others() {
        check(&[
            (
                "hx(cmsgpack.pack(string.rep('a', 31), string.rep('b', 32)))",
                "bf61616161616161616161616161616161616161616161616161616161616161d920626262626262\
                 6262626262626262626262626262626262626262626262626262",
            ),
            (
                "hx(string.sub(cmsgpack.pack(string.rep('a', 255)), 1, 3)), \
                 hx(string.sub(cmsgpack.pack(string.rep('a', 256)), 1, 4)), \
                 hx(string.sub(cmsgpack.pack(string.rep('a', 65536)), 1, 6))",
                "d9ff61|da010061|db0001000061",
            ),
            (
                "hx(cmsgpack.pack(true, false, nil, cmsgpack.pack))",
                "c3c2c0c0",
            ),
            ("#cmsgpack.pack(cmsgpack)", "188"),
        ]);
    }

    #[test]
    fn pack_tables() {
        check(&[
            ("hx(cmsgpack.pack({1,2,'a'}))", "930102a161"),
            (
                "hx(cmsgpack.pack({}, {[1]=1,[3]=3}, {a=1}, {[1.5]=1}, {[-1]=2}, {[0]=1}))",
                "90820101030381a1610181ca3fc000000181ff02810001",
            ),
            (
                "hx(cmsgpack.pack({1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16}))",
                "dc00100102030405060708090a0b0c0d0e0f10",
            ),
            (
                "#cmsgpack.pack({[2^31]=1}), #cmsgpack.pack({[2^31-1]=1})",
                "7|7",
            ),
            (
                "hx(cmsgpack.pack(setmetatable({}, {__index=function(t,k) return 7 end})))",
                "90",
            ),
        ]);
    }

    #[test]
    fn map_key_order() {
        // Same construction, same Lua 5.1 hash layout, so the same traversal order.
        check(&[
            (
                "hx(cmsgpack.pack({a=1,b=2,c=3,[10]=5,foo='bar',[1]=true}))",
                "86a16101a16303a1620201c30a05a3666f6fa3626172",
            ),
            (
                "hx(cmsgpack.pack({x={y={1,2}}, [2.5]=false}))",
                "82ca40200000c2a17881a179920102",
            ),
        ]);
    }

    #[test]
    fn nesting_limit() {
        check(&[
            (
                "(function() local t = {} local cur = t for i=1,20 do cur[1] = {} cur = cur[1] \
                 end return hx(cmsgpack.pack(t)) end)()",
                "91919191919191919191919191919191c0",
            ),
            (
                "(function() local t = {} t[1] = t return hx(cmsgpack.pack(t, 1)) end)()",
                "91919191919191919191919191919191c001",
            ),
            (
                "(function() local t = {} t.a = t return hx(cmsgpack.pack(t)) end)()",
                "81a16181a16181a16181a16181a16181a16181a16181a16181a16181a16181a16181a16181a161\
                 81a16181a16181a161c0",
            ),
        ]);
    }

    #[test]
    fn unpack_variants() {
        check(&[
            ("cmsgpack.unpack(cmsgpack.pack(1,2,3))", "1|2|3"),
            ("cmsgpack.unpack_one(cmsgpack.pack(1,2,3))", "1|1"),
            ("cmsgpack.unpack_one(cmsgpack.pack(1,2,3), 1)", "2|2"),
            ("cmsgpack.unpack_one(cmsgpack.pack(1,2,3), 2)", "-1|3"),
            ("cmsgpack.unpack_one(cmsgpack.pack(1,2,3), 3)", "-1"),
            ("cmsgpack.unpack_limit(cmsgpack.pack(1,2,3), 2)", "2|1|2"),
            ("cmsgpack.unpack_limit(cmsgpack.pack(1,2,3), 0)", "1|2|3"),
            ("cmsgpack.unpack_limit(cmsgpack.pack(1,2,3), 0, 1)", "1"),
            (
                "cmsgpack.unpack_limit(cmsgpack.pack(1,2,3), 5, 1)",
                "-1|2|3",
            ),
            ("cmsgpack.unpack('')", ""),
            ("cmsgpack.unpack_one('')", "-1"),
            ("cmsgpack.unpack_limit('', 1)", "-1"),
            ("cmsgpack.unpack(123)", "49|50|51"),
        ]);
    }

    #[test]
    fn unpack_types() {
        check(&[
            ("dump(cmsgpack.unpack('\\147\\1\\192\\3'))", "{1=1,3=3}"),
            ("dump(cmsgpack.unpack('\\130\\161a\\1\\161b\\146\\2\\3'))", "{a=1,b={1=2,2=3}}"),
            ("dump(cmsgpack.unpack('\\207\\255\\255\\255\\255\\255\\255\\255\\255'))", "-1"),
            ("dump(cmsgpack.unpack('\\207\\0\\32\\0\\0\\0\\0\\0\\1'))", "9.007199254741e+15"),
            ("dump(cmsgpack.unpack('\\211\\255\\255\\255\\255\\255\\255\\255\\254'))", "-2"),
            (
                "cmsgpack.unpack('\\202\\63\\192\\0\\0\\203\\63\\185\\153\\153\\153\\153\\153\\154')",
                "1.5|0.1",
            ),
            (
                "cmsgpack.unpack('\\208\\128\\209\\128\\0\\210\\128\\0\\0\\0\\204\\255\\205\\255\
                 \\255\\206\\255\\255\\255\\255\\224\\127')",
                "-128|-32768|-2147483648|255|65535|4294967295|-32|127",
            ),
            (
                "dump({cmsgpack.unpack('\\220\\0\\2\\1\\2\\221\\0\\0\\0\\1\\3\\222\\0\\1\\1\\2\
                 \\223\\0\\0\\0\\1\\1\\2')})",
                "{1={1=1,2=2},2={1=3},3={1=2},4={1=2}}",
            ),
            (
                "cmsgpack.unpack('\\218\\0\\2ab\\219\\0\\0\\0\\1c\\217\\1d')",
                "ab|c|d",
            ),
            (
                "dump(cmsgpack.unpack(cmsgpack.pack({a={b={c={1,2,{x=true}}}}, 'z'})))",
                "{1=z,a={b={c={1=1,2=2,3={x=true}}}}}",
            ),
            (
                "dump({cmsgpack.unpack(cmsgpack.pack(nil, true, false, 'x', -0.25, {}))})",
                "{2=true,3=false,4=x,5=-0.25,6={}}",
            ),
        ]);
    }

    #[test]
    fn unpack_errors() {
        let u = "user_script:1: ";
        check(&[
            (
                "cmsgpack.unpack('\\205')",
                &format!("{u}Missing bytes in input."),
            ),
            (
                "cmsgpack.unpack('\\193')",
                &format!("{u}Bad data format in input."),
            ),
            (
                "cmsgpack.unpack('\\196\\1a')",
                &format!("{u}Bad data format in input."),
            ),
            (
                "cmsgpack.unpack('\\147\\1')",
                &format!("{u}Missing bytes in input."),
            ),
            (
                "cmsgpack.unpack('\\218\\0\\3ab')",
                &format!("{u}Missing bytes in input."),
            ),
            (
                "cmsgpack.unpack('\\219\\0\\0\\0\\3ab')",
                &format!("{u}Missing bytes in input."),
            ),
            (
                "cmsgpack.unpack_one('ab', 5)",
                &format!("{u}Start offset 5 greater than input length 2."),
            ),
            (
                "cmsgpack.unpack_one('ab', -1)",
                &format!("{u}Invalid request to unpack with offset of -1 and limit of 2."),
            ),
            (
                "cmsgpack.unpack_limit('ab', -1)",
                &format!("{u}Invalid request to unpack with offset of 0 and limit of 2."),
            ),
            (
                "cmsgpack.unpack_limit('ab', -1, 7)",
                &format!("{u}Invalid request to unpack with offset of 7 and limit of 2."),
            ),
            (
                "cmsgpack.unpack_limit('ab')",
                &format!("{u}bad argument #2 to 'unpack_limit' (number expected, got no value)"),
            ),
            (
                "cmsgpack.unpack_one('ab', 'x')",
                &format!("{u}bad argument #2 to 'unpack_one' (number expected, got string)"),
            ),
            (
                "cmsgpack.unpack()",
                &format!("{u}bad argument #1 to 'unpack' (string expected, got no value)"),
            ),
            (
                "cmsgpack.unpack({})",
                &format!("{u}bad argument #1 to 'unpack' (string expected, got table)"),
            ),
            (
                "cmsgpack.pack()",
                &format!("{u}bad argument #0 to 'pack' (MessagePack pack needs input.)"),
            ),
            ("cmsgpack.unpack('\\129\\192\\1')", "table index is nil"),
            (
                "cmsgpack.unpack('\\129\\203\\255\\248\\0\\0\\0\\0\\0\\0\\1')",
                "table index is NaN",
            ),
        ]);
    }

    #[test]
    fn stack_limits() {
        let u = "user_script:1: ";
        check(&[
            // Redis returns up to 7999 values (7998 plus the offset from unpack_limit);
            // mlua's callback machinery fails a few values short of that ("out of Lua
            // stack, ..."), so only counts clear of the edge are checked here.
            ("#{cmsgpack.unpack(string.rep('\\1', 7900))}", "7900"),
            (
                "select('#', cmsgpack.unpack(string.rep('\\1', 8000)))",
                &format!(
                    "{u}stack overflow (too many return values at once; use unpack_one or \
                     unpack_limit instead.)"
                ),
            ),
            (
                "select('#', cmsgpack.unpack_limit(string.rep('\\1', 8000), 8000))",
                &format!(
                    "{u}stack overflow (too many return values at once; use unpack_one or \
                     unpack_limit instead.)"
                ),
            ),
            (
                "type(cmsgpack.unpack(string.rep('\\145', 4000)..'\\1'))",
                &format!("{u}stack overflow (in function mp_decode_to_lua_array)"),
            ),
            (
                "type(cmsgpack.unpack(string.rep('\\145', 3997)..'\\1'))",
                "table",
            ),
            (
                "select('#', cmsgpack.unpack(string.rep('\\1', 7999), 1))",
                &format!(
                    "{u}stack overflow (too many return values at once; use unpack_one or \
                     unpack_limit instead.)"
                ),
            ),
            (
                "select('#', cmsgpack.unpack_limit(string.rep('\\1', 7999), 7999))",
                &format!("{u}stack overflow (in function mp_unpack_full)"),
            ),
            (
                "#{cmsgpack.unpack_limit(string.rep('\\1', 7899), 7899)}",
                "7900",
            ),
        ]);
    }
}
