//! The `struct` library (Roberto Ierusalimschy's struct, as Redis 7.0 embeds it): packing Lua
//! values into binary strings and back, driven by a format string.
//!
//! Format characters (sizes are those of Redis on x86-64 Linux):
//!
//! * `<` / `>`: little / big endian from here on (the default is little, the native order);
//!   `![n]`: maximum alignment `n` (a power of two; without `n`, 8); space: ignored.
//! * `b`/`B` (1 byte), `h`/`H` (2), `l`/`L` (8), `T` (8), `i[n]`/`I[n]` (`n` bytes, default 4,
//!   at most 32): signed / unsigned integers.
//! * `f` (4 bytes), `d` (8 bytes): floating point.
//! * `s`: zero-terminated string; `c[n]`: `n` chars (default 1); when packing `c0` takes the
//!   whole string, when unpacking `c0` takes the previous result as the length.
//! * `x`: one byte of padding.
//!
//! `unpack` takes an optional 1-based start position and returns, after the values, the
//! position just past what it read. Integers wider than 8 bytes keep only 8 significant
//! bytes, and out-of-range numbers convert the way the C casts do on x86-64, as in Redis.

use crate::bit::{arg_error, lua_error, to_number, type_error};
use mlua::{Lua, MultiValue, Value};

/// Largest size of an integral type (`i32`).
const MAX_INT_SIZE: i32 = 32;
/// The default for `!` without a number: the alignment of a double.
const MAX_ALIGN: i32 = 8;

const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// A C cast from double to a 64-bit signed integer on x86-64: out of range (and NaN) gives
/// the "integer indefinite" value, `i64::MIN`.
pub(crate) fn c_to_i64(n: f64) -> i64 {
    if n.is_nan() || !(-TWO_POW_63..TWO_POW_63).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// A C cast from double to a 64-bit unsigned integer as GCC compiles it on x86-64.
fn c_to_u64(n: f64) -> u64 {
    if n.is_nan() {
        1 << 63
    } else if n < TWO_POW_63 {
        c_to_i64(n) as u64
    } else {
        (c_to_i64(n - TWO_POW_63) as u64) ^ (1 << 63)
    }
}

/// Packing and unpacking state the control options change.
struct Header {
    little: bool,
    align: usize,
}

impl Header {
    fn new() -> Self {
        Header {
            little: true,
            align: 1,
        }
    }
}

/// A cursor over the format string (which, as in C, ends at the first zero byte).
struct Format<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Format<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Format {
            bytes: &bytes[..end],
            pos: 0,
        }
    }

    fn next_opt(&mut self) -> Option<u8> {
        let opt = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(opt)
    }

    /// Reads an optional decimal number following an option.
    fn number(&mut self, lua: &Lua, default: i32) -> mlua::Result<i32> {
        let mut value: i32 = 0;
        let mut any = false;
        while let Some(&c) = self.bytes.get(self.pos) {
            if !c.is_ascii_digit() {
                break;
            }
            let digit = i32::from(c - b'0');
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(digit))
                .ok_or_else(|| lua_error(lua, "integral size overflow"))?;
            any = true;
            self.pos += 1;
        }
        Ok(if any { value } else { default })
    }

    /// The size in bytes of option `opt`, reading its number if it takes one.
    fn opt_size(&mut self, lua: &Lua, opt: u8) -> mlua::Result<usize> {
        Ok(match opt {
            b'b' | b'B' => 1,
            b'h' | b'H' => 2,
            b'l' | b'L' | b'T' | b'd' => 8,
            b'f' => 4,
            b'x' => 1,
            b'c' => self.number(lua, 1)? as usize,
            b'i' | b'I' => {
                let size = self.number(lua, 4)?;
                if size > MAX_INT_SIZE {
                    return Err(lua_error(
                        lua,
                        &format!("integral size {size} is larger than limit of {MAX_INT_SIZE}"),
                    ));
                }
                size as usize
            }
            _ => 0,
        })
    }

    /// Applies a control option (endianness, alignment, space), or rejects an unknown one.
    fn control(&mut self, lua: &Lua, opt: u8, header: &mut Header) -> mlua::Result<()> {
        match opt {
            b' ' => {}
            b'>' => header.little = false,
            b'<' => header.little = true,
            b'!' => {
                let align = self.number(lua, MAX_ALIGN)?;
                if align <= 0 || align & (align - 1) != 0 {
                    return Err(lua_error(
                        lua,
                        &format!("alignment {align} is not a power of 2"),
                    ));
                }
                header.align = align as usize;
            }
            _ => {
                let shown = String::from_utf8_lossy(&[opt]).into_owned();
                return Err(arg_error(
                    lua,
                    1,
                    &format!("invalid format option '{shown}'"),
                ));
            }
        }
        Ok(())
    }
}

/// Padding needed before an item of `size` bytes at offset `len`.
fn to_align(len: usize, header: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(header.align);
    (size.wrapping_sub(len & (size - 1))) & (size - 1)
}

/// `luaL_checklstring`: a string, or a number converted to one.
pub(crate) fn check_bytes(lua: &Lua, args: &[Value], idx: usize) -> mlua::Result<Vec<u8>> {
    let value = args.get(idx - 1);
    match value {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => match lua.coerce_string(v.clone())? {
            Some(s) => Ok(s.as_bytes().to_vec()),
            None => Err(type_error(lua, idx, "string", value)),
        },
        _ => Err(type_error(lua, idx, "string", value)),
    }
}

/// `luaL_checknumber`.
pub(crate) fn check_number(lua: &Lua, args: &[Value], idx: usize) -> mlua::Result<f64> {
    let value = args.get(idx - 1);
    value
        .and_then(|v| to_number(lua, v))
        .ok_or_else(|| type_error(lua, idx, "number", value))
}

/// `luaL_optinteger`: the default for a missing or nil argument, else the number truncated.
pub(crate) fn opt_integer(
    lua: &Lua,
    args: &[Value],
    idx: usize,
    default: i64,
) -> mlua::Result<i64> {
    match args.get(idx - 1) {
        None | Some(Value::Nil) => Ok(default),
        Some(_) => Ok(c_to_i64(check_number(lua, args, idx)?)),
    }
}

fn put_integer(out: &mut Vec<u8>, n: f64, little: bool, size: usize) {
    let value = if n < 0.0 {
        c_to_i64(n) as u64
    } else {
        c_to_u64(n)
    };
    // Bytes beyond the eighth are zero: the value has been shifted out by then.
    let byte = |i: usize| if i < 8 { (value >> (8 * i)) as u8 } else { 0 };
    if little {
        out.extend((0..size).map(byte));
    } else {
        out.extend((0..size).rev().map(byte));
    }
}

fn get_integer(data: &[u8], little: bool, signed: bool) -> f64 {
    let size = data.len();
    let mut value: u64 = 0;
    let mut push = |b: u8| value = (value << 8) | u64::from(b);
    if little {
        data.iter().rev().for_each(|&b| push(b));
    } else {
        data.iter().for_each(|&b| push(b));
    }
    if !signed {
        return value as f64;
    }
    // The shift count wraps modulo 64 as the x86-64 shift instruction does.
    let mask = u64::MAX.wrapping_shl((size as u32).wrapping_mul(8).wrapping_sub(1));
    if value & mask != 0 {
        value |= mask;
    }
    value as i64 as f64
}

fn pack(lua: &Lua, args: MultiValue) -> mlua::Result<mlua::String> {
    let mut args: Vec<Value> = args.into_iter().collect();
    let fmt = check_bytes(lua, &args, 1)?;
    // The C function pushes a nil above its arguments before it starts, so the first missing
    // value argument reads as nil, not as "no value".
    args.push(Value::Nil);
    let mut fmt = Format::new(&fmt);
    let mut header = Header::new();
    let mut out: Vec<u8> = Vec::new();
    let mut arg = 2;
    let mut total: usize = 0;
    while let Some(opt) = fmt.next_opt() {
        let mut size = fmt.opt_size(lua, opt)?;
        let pad = to_align(total, &header, opt, size);
        total = total.wrapping_add(pad);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(lua, &args, arg)?;
                arg += 1;
                put_integer(&mut out, n, header.little, size);
            }
            b'x' => out.push(0),
            b'f' => {
                let f = check_number(lua, &args, arg)? as f32;
                arg += 1;
                if header.little {
                    out.extend_from_slice(&f.to_le_bytes());
                } else {
                    out.extend_from_slice(&f.to_be_bytes());
                }
            }
            b'd' => {
                let d = check_number(lua, &args, arg)?;
                arg += 1;
                if header.little {
                    out.extend_from_slice(&d.to_le_bytes());
                } else {
                    out.extend_from_slice(&d.to_be_bytes());
                }
            }
            b'c' | b's' => {
                let s = check_bytes(lua, &args, arg)?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // As in the C library, the argument number reported is one past the
                    // string's.
                    return Err(arg_error(lua, arg, "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                    size += 1;
                }
            }
            _ => fmt.control(lua, opt, &mut header)?,
        }
        total = total.wrapping_add(size);
    }
    lua.create_string(&out)
}

/// Whether `size` bytes from `pos` lie within `len` bytes of data.
fn fits(pos: usize, size: usize, len: usize) -> bool {
    size <= len && pos <= len - size
}

fn unpack(lua: &Lua, args: MultiValue) -> mlua::Result<MultiValue> {
    let args: Vec<Value> = args.into_iter().collect();
    let fmt = check_bytes(lua, &args, 1)?;
    let data = check_bytes(lua, &args, 2)?;
    let start = opt_integer(lua, &args, 3, 1)?;
    if start == 0 {
        return Err(arg_error(lua, 3, "offset must be 1 or greater"));
    }
    let mut pos = (start as u64).wrapping_sub(1) as usize;
    let mut fmt = Format::new(&fmt);
    let mut header = Header::new();
    let mut results: Vec<Value> = Vec::new();
    let too_short = |lua: &Lua| arg_error(lua, 2, "data string too short");
    while let Some(opt) = fmt.next_opt() {
        let mut size = fmt.opt_size(lua, opt)?;
        pos = pos.wrapping_add(to_align(pos, &header, opt, size));
        if !fits(pos, size, data.len()) {
            return Err(too_short(lua));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let signed = opt.is_ascii_lowercase();
                let n = get_integer(&data[pos..pos + size], header.little, signed);
                results.push(Value::Number(n));
            }
            b'x' => {}
            b'f' => {
                let bytes: [u8; 4] = data[pos..pos + 4].try_into().expect("4 bytes");
                let f = if header.little {
                    f32::from_le_bytes(bytes)
                } else {
                    f32::from_be_bytes(bytes)
                };
                results.push(Value::Number(f64::from(f)));
            }
            b'd' => {
                let bytes: [u8; 8] = data[pos..pos + 8].try_into().expect("8 bytes");
                let d = if header.little {
                    f64::from_le_bytes(bytes)
                } else {
                    f64::from_be_bytes(bytes)
                };
                results.push(Value::Number(d));
            }
            b'c' => {
                if size == 0 {
                    let previous = results.last().and_then(|v| to_number(lua, v));
                    let Some(n) = previous else {
                        return Err(lua_error(lua, "format 'c0' needs a previous size"));
                    };
                    size = c_to_u64(n) as usize;
                    results.pop();
                    if !fits(pos, size, data.len()) {
                        return Err(too_short(lua));
                    }
                }
                results.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(len) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(lua_error(lua, "unfinished string in data"));
                };
                results.push(Value::String(lua.create_string(&data[pos..pos + len])?));
                size = len + 1;
            }
            _ => fmt.control(lua, opt, &mut header)?,
        }
        pos = pos.wrapping_add(size);
    }
    results.push(Value::Number(pos.wrapping_add(1) as i64 as f64));
    Ok(results.into_iter().collect())
}

fn size(lua: &Lua, args: MultiValue) -> mlua::Result<f64> {
    let args: Vec<Value> = args.into_iter().collect();
    let fmt = check_bytes(lua, &args, 1)?;
    let mut fmt = Format::new(&fmt);
    let mut header = Header::new();
    let mut pos: usize = 0;
    while let Some(opt) = fmt.next_opt() {
        let size = fmt.opt_size(lua, opt)?;
        pos = pos.wrapping_add(to_align(pos, &header, opt, size));
        if opt == b's' {
            return Err(arg_error(lua, 1, "option 's' has no fixed size"));
        }
        if opt == b'c' && size == 0 {
            return Err(arg_error(lua, 1, "option 'c0' has no fixed size"));
        }
        // Letters and digits the format doesn't know are silently sized 0 here.
        if !opt.is_ascii_alphanumeric() {
            fmt.control(lua, opt, &mut header)?;
        }
        pos = pos.wrapping_add(size);
    }
    Ok(pos as i64 as f64)
}

/// Registers the library's global table.
pub fn register(lua: &Lua) -> mlua::Result<()> {
    let table = lua.create_table()?;
    table.set("pack", lua.create_function(pack)?)?;
    table.set("unpack", lua.create_function(unpack)?)?;
    table.set("size", lua.create_function(size)?)?;
    lua.globals().set("struct", table)
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
        t[#t+1] = tostring((select(i, ...))) end return table.concat(t, '|') end ";

    /// Evaluates `expr` in the chunk `user_script` and renders the outcome as the
    /// `pcall`-based loop run on redis-server did: `true|results...` or `false|message`.
    fn run(lua: &Lua, expr: &str) -> String {
        let code = format!("{PRELUDE} return all({expr})");
        match lua.load(&code).set_name("=user_script").eval::<String>() {
            Ok(s) => format!("true|{s}"),
            Err(e) => format!("false|{}", crate::bit::tests::root_message(&e)),
        }
    }

    /// (expression, outcome); outcomes come from redis-server 7.0.15.
    fn check(cases: &[(&str, &str)]) {
        let lua = lua();
        for (expr, want) in cases {
            assert_eq!(run(&lua, expr), *want, "{expr}");
        }
    }

    #[test]
    fn pack_integers() {
        check(&[
            ("hx(struct.pack('<i8', 2^64))", "true|0000000000000000"),
            ("hx(struct.pack('<i8', 2^63))", "true|0000000000000080"),
            ("hx(struct.pack('<i8', 0/0))", "true|0000000000000080"),
            (
                "hx(struct.pack('<i8', -2^63-5000))",
                "true|0000000000000080",
            ),
            ("hx(struct.pack('<i8', -1e30))", "true|0000000000000080"),
            ("hx(struct.pack('<i8', 1e30))", "true|0000000000000000"),
            ("hx(struct.pack('<i8', -1/0))", "true|0000000000000080"),
            (
                "hx(struct.pack('<i12', -2))",
                "true|feffffffffffffff00000000",
            ),
            (
                "hx(struct.pack('>i12', -2))",
                "true|00000000fffffffffffffffe",
            ),
            ("hx(struct.pack('<i4', -2.7))", "true|feffffff"),
            ("hx(struct.pack('<i4', 2.7))", "true|02000000"),
            (
                "hx(struct.pack('>bBhHlLTiI', -1, 255, -2, 65535, -3, 3, 4, -5, 6))",
                "true|fffffffefffffffffffffffffffd00000000000000030000000000000004fffffffb00000006",
            ),
            ("hx(struct.pack('i3', 1))", "true|010000"),
            ("hx(struct.pack('i0', 5))", "true|"),
            ("hx(struct.pack('b', 300))", "true|2c"),
            ("hx(struct.pack('i', '12'))", "true|0c000000"),
        ]);
    }

    #[test]
    fn pack_alignment_floats_strings() {
        check(&[
            (
                "hx(struct.pack('!bd', 1, 1.5))",
                "true|0100000000000000000000000000f83f",
            ),
            (
                "hx(struct.pack('!4 b d', 1, 1.5))",
                "true|01000000000000000000f83f",
            ),
            ("hx(struct.pack('>!bi3', 1, 7))", "true|010000000007"),
            (
                "hx(struct.pack('<f>f', 1.5, -0.1))",
                "true|0000c03fbdcccccd",
            ),
            (
                "hx(struct.pack('s c3 c0 x', 'a\\0b', 'xyzw', 12))",
                "true|6100620078797a313200",
            ),
            ("struct.pack('!', 1)", "true|"),
            ("struct.pack('c0', 5)", "true|5"),
            ("hx(struct.pack('s', 12))", "true|313200"),
            ("struct.pack('c2', 123)", "true|12"),
            ("struct.pack('c', 'abc')", "true|a"),
        ]);
    }

    #[test]
    fn unpack_values() {
        check(&[
            (
                "struct.unpack('>i12', string.rep('\\255', 12))",
                "true|-1|13",
            ),
            (
                "struct.unpack('<I12', string.rep('\\255', 11)..'\\1')",
                "true|1.844674407371e+19|13",
            ),
            (
                "struct.unpack('<I12', '\\1'..string.rep('\\255', 11))",
                "true|1.844674407371e+19|13",
            ),
            ("struct.unpack('<i3', '\\255\\255\\127')", "true|8388607|4"),
            ("struct.unpack('<i3', '\\255\\255\\128')", "true|-8323073|4"),
            ("struct.unpack('<I0', '')", "true|0|1"),
            ("struct.unpack('<i0', '')", "true|0|1"),
            ("struct.unpack('i0', 'ab')", "true|0|1"),
            (
                "struct.unpack('<f', struct.pack('<f', 0.1))",
                "true|0.10000000149012|5",
            ),
            ("struct.unpack('>d', struct.pack('>d', 0.1))", "true|0.1|9"),
            (
                "struct.unpack('!bd', struct.pack('!bd', 1, 2.5))",
                "true|1|2.5|17",
            ),
            (
                "struct.unpack('I8', string.rep('\\255', 8))",
                "true|1.844674407371e+19|9",
            ),
            (
                "struct.unpack('i8', '\\1\\0\\0\\0\\0\\0\\0\\128')",
                "true|-9.2233720368548e+18|9",
            ),
            (
                "struct.unpack('!4 b i', '\\1\\0\\0\\0\\2\\0\\0\\0')",
                "true|1|2|9",
            ),
            ("struct.unpack('b', 12)", "true|49|2"),
            ("struct.unpack('s', 'ab\\0cd', 2)", "true|b|4"),
            ("struct.unpack('i', 'abcd', '1')", "true|1684234849|5"),
            ("struct.unpack('i', 'abcd', nil)", "true|1684234849|5"),
        ]);
    }

    #[test]
    fn unpack_positions_and_c0() {
        check(&[
            ("struct.unpack('', 'ab', -1)", "true|-1"),
            ("struct.unpack('', 'ab', 5)", "true|5"),
            ("struct.unpack('', 'ab', 1.9)", "true|1"),
            ("struct.unpack('bc0', '\\2abc')", "true|ab|4"),
            ("struct.unpack('c1c0', '0ab')", "true||2"),
            ("struct.unpack('c1c0', '2ab')", "true|ab|4"),
            ("struct.unpack('c1c0', '2abc')", "true|ab|4"),
            (
                "struct.unpack('fc0', struct.pack('f', 2.5)..'abc')",
                "true|ab|7",
            ),
            ("struct.unpack('c1 c0', '1ab')", "true|a|3"),
            ("struct.unpack('c1 < c0', '1ab')", "true|a|3"),
            ("struct.unpack('bxc0', '\\1\\0ab')", "true|a|4"),
        ]);
    }

    #[test]
    fn size_values() {
        check(&[
            ("struct.size('ic')", "true|5"),
            ("struct.size('!4bi')", "true|8"),
            ("struct.size('!bd')", "true|16"),
            ("struct.size('!8bd')", "true|16"),
            ("struct.size('q')", "true|0"),
            ("struct.size('i0')", "true|0"),
            ("struct.size('bhlTifdxc3 I3')", "true|42"),
        ]);
    }

    #[test]
    fn error_texts() {
        let u = "false|user_script:1: ";
        check(&[
            (
                "struct.pack('i40', 1)",
                &format!("{u}integral size 40 is larger than limit of 32"),
            ),
            (
                "struct.pack('i99999999999', 1)",
                &format!("{u}integral size overflow"),
            ),
            (
                "struct.pack('!3', 1)",
                &format!("{u}alignment 3 is not a power of 2"),
            ),
            (
                "struct.pack('!0')",
                &format!("{u}alignment 0 is not a power of 2"),
            ),
            (
                "struct.size('!3')",
                &format!("{u}alignment 3 is not a power of 2"),
            ),
            (
                "struct.pack('q', 1)",
                &format!("{u}bad argument #1 to 'pack' (invalid format option 'q')"),
            ),
            (
                "struct.unpack('b x s c2 =', '\\3\\0ab\\0cd')",
                &format!("{u}bad argument #1 to 'unpack' (invalid format option '=')"),
            ),
            (
                "struct.unpack(12, '12')",
                &format!("{u}bad argument #1 to 'unpack' (invalid format option '1')"),
            ),
            (
                "struct.size('%')",
                &format!("{u}bad argument #1 to 'size' (invalid format option '%')"),
            ),
            (
                "struct.pack('c5', 'ab')",
                &format!("{u}bad argument #3 to 'pack' (string too short)"),
            ),
            (
                "struct.pack('c', '')",
                &format!("{u}bad argument #3 to 'pack' (string too short)"),
            ),
            (
                "struct.pack('i', 'x')",
                &format!("{u}bad argument #2 to 'pack' (number expected, got string)"),
            ),
            (
                "struct.pack('i')",
                &format!("{u}bad argument #2 to 'pack' (number expected, got nil)"),
            ),
            (
                "struct.pack('bs', 1)",
                &format!("{u}bad argument #3 to 'pack' (string expected, got nil)"),
            ),
            (
                "struct.pack('b', true)",
                &format!("{u}bad argument #2 to 'pack' (number expected, got boolean)"),
            ),
            (
                "struct.pack('s', {})",
                &format!("{u}bad argument #2 to 'pack' (string expected, got table)"),
            ),
            (
                "struct.pack()",
                &format!("{u}bad argument #1 to 'pack' (string expected, got no value)"),
            ),
            (
                "struct.unpack('i')",
                &format!("{u}bad argument #2 to 'unpack' (string expected, got no value)"),
            ),
            (
                "struct.size()",
                &format!("{u}bad argument #1 to 'size' (string expected, got no value)"),
            ),
            (
                "struct.unpack('i', 'ab')",
                &format!("{u}bad argument #2 to 'unpack' (data string too short)"),
            ),
            (
                "struct.unpack('s', 'ab')",
                &format!("{u}unfinished string in data"),
            ),
            (
                "struct.unpack('s', 'ab', 3)",
                &format!("{u}unfinished string in data"),
            ),
            (
                "struct.unpack('s', 'ab', 4)",
                &format!("{u}bad argument #2 to 'unpack' (data string too short)"),
            ),
            (
                "struct.unpack('c0', 'ab')",
                &format!("{u}format 'c0' needs a previous size"),
            ),
            (
                "struct.unpack('c0', '2')",
                &format!("{u}format 'c0' needs a previous size"),
            ),
            (
                "struct.unpack('c1c0', 'xab')",
                &format!("{u}format 'c0' needs a previous size"),
            ),
            (
                "struct.unpack('bc0', '\\255ab')",
                &format!("{u}bad argument #2 to 'unpack' (data string too short)"),
            ),
            (
                "struct.unpack('ic0', 'ab')",
                &format!("{u}bad argument #2 to 'unpack' (data string too short)"),
            ),
            (
                "struct.unpack('i', 'abcdabcd', 0)",
                &format!("{u}bad argument #3 to 'unpack' (offset must be 1 or greater)"),
            ),
            (
                "struct.unpack('', 'ab', 0.5)",
                &format!("{u}bad argument #3 to 'unpack' (offset must be 1 or greater)"),
            ),
            (
                "struct.unpack('i', 'abcdabcd', -1)",
                &format!("{u}bad argument #2 to 'unpack' (data string too short)"),
            ),
            (
                "struct.unpack(' ', 'ab', -1)",
                &format!("{u}bad argument #2 to 'unpack' (data string too short)"),
            ),
            (
                "struct.unpack('i', 'abcd', 'x')",
                &format!("{u}bad argument #3 to 'unpack' (number expected, got string)"),
            ),
            (
                "struct.size('s')",
                &format!("{u}bad argument #1 to 'size' (option 's' has no fixed size)"),
            ),
            (
                "struct.size('c0')",
                &format!("{u}bad argument #1 to 'size' (option 'c0' has no fixed size)"),
            ),
        ]);
    }

    #[test]
    fn round_trips() {
        let lua = lua();
        let got = run(
            &lua,
            "struct.unpack('>!4 b B h H l L T i I i2 I3 f d s c4 x b c0', \
             struct.pack('>!4 b B h H l L T i I i2 I3 f d s c4 x b c0', \
             -5, 250, -300, 60000, -2^40, 2^40, 77, -70000, 70000, -2, 65536, 0.5, -1.25, \
             'zero', 'four', 4, 'rest'))",
        );
        assert_eq!(
            got,
            "true|-5|250|-300|60000|-1099511627776|1099511627776|77|-70000|70000|-2|65536\
             |0.5|-1.25|zero|four|rest|76"
        );
    }
}
