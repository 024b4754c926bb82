//! The `bit` library (LuaBitOp 1.0.2, as Redis 7.0 embeds it): 32-bit bitwise operations
//! on Lua numbers.
//!
//! Every argument is normalised to 32 bits the way LuaBitOp does it: the number is added to
//! 2^52 + 2^51 and the low 32 bits of the resulting double's representation are taken. For
//! numbers in the usual range that is "round half to even, then wrap modulo 2^32"; for huge
//! numbers, infinities and NaN it gives whatever bits the addition leaves, exactly as the C
//! library does. Every result is returned as a signed 32-bit value.
//!
//! This module also holds the small helpers the other libraries use to raise errors with the
//! texts Lua's auxiliary library would produce (`luaL_error`, `luaL_argerror`).

use mlua::{Lua, MultiValue, Value};

/// The type name `luaL_typename` gives for a value (`"no value"` is for a missing argument).
pub(crate) fn type_name(value: Option<&Value>) -> &'static str {
    match value {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::LightUserData(_)) | Some(Value::UserData(_)) => "userdata",
        Some(Value::Integer(_)) | Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

/// The position prefix `luaL_where(L, 1)` gives: `"chunk:line: "` when the caller of the
/// running function is Lua code with line information, otherwise nothing.
pub(crate) fn where_prefix(lua: &Lua) -> String {
    if let Some(caller) = lua.inspect_stack(1) {
        let line = caller.curr_line();
        if line > 0 {
            let source = caller.source();
            let short_src = source.short_src.unwrap_or_default();
            return format!("{short_src}:{line}: ");
        }
    }
    String::new()
}

/// An error raised the way `luaL_error` raises it: the caller's position, then the message.
pub(crate) fn lua_error(lua: &Lua, msg: &str) -> mlua::Error {
    mlua::Error::RuntimeError(format!("{}{msg}", where_prefix(lua)))
}

/// An error raised the way `luaL_argerror` raises it: `bad argument #N to 'name' (extra)`,
/// with the name the running function was called by (and method calls counted as Lua does).
pub(crate) fn arg_error(lua: &Lua, narg: usize, extra: &str) -> mlua::Error {
    arg_error_at(lua, narg as i64, extra)
}

/// [`arg_error`] for any argument number, including 0 (used for "the call as a whole").
pub(crate) fn arg_error_at(lua: &Lua, narg: i64, extra: &str) -> mlua::Error {
    let Some(current) = lua.inspect_stack(0) else {
        return lua_error(lua, &format!("bad argument #{narg} ({extra})"));
    };
    let names = current.names();
    let name = names.name.as_deref().unwrap_or("?").to_string();
    let mut narg = narg;
    if names.name_what == Some("method") {
        narg -= 1;
        if narg == 0 {
            return lua_error(lua, &format!("calling '{name}' on bad self ({extra})"));
        }
    }
    lua_error(lua, &format!("bad argument #{narg} to '{name}' ({extra})"))
}

/// The error `luaL_typerror` raises: `<expected> expected, got <actual type>`.
pub(crate) fn type_error(
    lua: &Lua,
    narg: usize,
    expected: &str,
    got: Option<&Value>,
) -> mlua::Error {
    arg_error(
        lua,
        narg,
        &format!("{expected} expected, got {}", type_name(got)),
    )
}

/// Converts a value to a number the way `lua_tonumber` does (numbers, and strings that read
/// as numbers).
pub(crate) fn to_number(lua: &Lua, value: &Value) -> Option<f64> {
    match value {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(_) => lua.coerce_number(value.clone()).ok().flatten(),
        _ => None,
    }
}

/// LuaBitOp's normalisation of a double to 32 bits: add 2^52 + 2^51, keep the low word.
fn normalise(n: f64) -> u32 {
    (n + 6_755_399_441_055_744.0).to_bits() as u32
}

/// Argument `idx` (1-based) as 32 bits, with LuaBitOp's "number expected" error.
fn bit_arg(lua: &Lua, args: &[Value], idx: usize) -> mlua::Result<u32> {
    let value = args.get(idx - 1);
    let number = value.and_then(|v| to_number(lua, v));
    match number {
        Some(n) => Ok(normalise(n)),
        None => Err(type_error(lua, idx, "number", value)),
    }
}

/// The value a LuaBitOp function returns: the bits read as a signed 32-bit number.
fn ret(bits: u32) -> f64 {
    f64::from(bits as i32)
}

fn tohex(lua: &Lua, args: &[Value]) -> mlua::Result<mlua::String> {
    let mut bits = bit_arg(lua, args, 1)?;
    let mut width = if args.len() < 2 {
        8
    } else {
        bit_arg(lua, args, 2)? as i32
    };
    let digits: &[u8; 16] = if width < 0 {
        // i32::MIN has no positive counterpart; LuaBitOp treats it as i32::MAX.
        width = width.checked_neg().unwrap_or(i32::MAX);
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let width = width.min(8) as usize;
    let mut out = vec![0u8; width];
    for slot in out.iter_mut().rev() {
        *slot = digits[(bits & 15) as usize];
        bits >>= 4;
    }
    lua.create_string(&out)
}

/// Builds a LuaBitOp function of one argument.
fn unary(lua: &Lua, op: fn(u32) -> u32) -> mlua::Result<mlua::Function> {
    lua.create_function(move |lua, args: MultiValue| {
        let args: Vec<Value> = args.into_iter().collect();
        Ok(ret(op(bit_arg(lua, &args, 1)?)))
    })
}

/// Builds a LuaBitOp function folding all its arguments (at least one) with `op`. Like the C
/// library, it reads argument 1 first and then the rest from the last one down.
fn fold(lua: &Lua, op: fn(u32, u32) -> u32) -> mlua::Result<mlua::Function> {
    lua.create_function(move |lua, args: MultiValue| {
        let args: Vec<Value> = args.into_iter().collect();
        let mut acc = bit_arg(lua, &args, 1)?;
        for idx in (2..=args.len()).rev() {
            acc = op(acc, bit_arg(lua, &args, idx)?);
        }
        Ok(ret(acc))
    })
}

/// Builds a LuaBitOp shift or rotate: value, then a count of which only the low 5 bits count.
fn shift(lua: &Lua, op: fn(u32, u32) -> u32) -> mlua::Result<mlua::Function> {
    lua.create_function(move |lua, args: MultiValue| {
        let args: Vec<Value> = args.into_iter().collect();
        let value = bit_arg(lua, &args, 1)?;
        let count = bit_arg(lua, &args, 2)? & 31;
        Ok(ret(op(value, count)))
    })
}

/// Registers the library's global table.
pub fn register(lua: &Lua) -> mlua::Result<()> {
    let bit = lua.create_table()?;
    bit.set("tobit", unary(lua, |b| b)?)?;
    bit.set("bnot", unary(lua, |b| !b)?)?;
    bit.set("bswap", unary(lua, u32::swap_bytes)?)?;
    bit.set("band", fold(lua, |a, b| a & b)?)?;
    bit.set("bor", fold(lua, |a, b| a | b)?)?;
    bit.set("bxor", fold(lua, |a, b| a ^ b)?)?;
    bit.set("lshift", shift(lua, |b, n| b << n)?)?;
    bit.set("rshift", shift(lua, |b, n| b >> n)?)?;
    bit.set("arshift", shift(lua, |b, n| ((b as i32) >> n) as u32)?)?;
    bit.set("rol", shift(lua, u32::rotate_left)?)?;
    bit.set("ror", shift(lua, u32::rotate_right)?)?;
    bit.set(
        "tohex",
        lua.create_function(|lua, args: MultiValue| {
            let args: Vec<Value> = args.into_iter().collect();
            tohex(lua, &args)
        })?,
    )?;
    lua.globals().set("bit", bit)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn lua() -> Lua {
        let lua = Lua::new();
        register(&lua).unwrap();
        lua
    }

    /// Runs `code` as the chunk `user_script` (the name Redis gives scripts) and returns the
    /// string it evaluates to.
    fn eval(lua: &Lua, code: &str) -> String {
        lua.load(code)
            .set_name("=user_script")
            .eval::<String>()
            .unwrap()
    }

    /// Runs `code` as `user_script` and returns the message of the error it raises.
    fn error_of(lua: &Lua, code: &str) -> String {
        let err = lua.load(code).set_name("=user_script").exec().unwrap_err();
        root_message(&err)
    }

    pub(crate) fn root_message(err: &mlua::Error) -> String {
        match err {
            mlua::Error::CallbackError { cause, .. } => root_message(cause),
            mlua::Error::RuntimeError(msg) => msg.clone(),
            other => other.to_string(),
        }
    }

    const JOIN: &str = "local function s(...) local t={} for i=1,select('#',...) do \
                        t[#t+1]=tostring((select(i,...))) end return table.concat(t,' ') end ";

    // Expected outputs below come from redis-server 7.0.15.

    #[test]
    fn tobit_normalisation() {
        let lua = lua();
        let got = eval(
            &lua,
            &format!(
                "{JOIN} return s(bit.tobit(0xffffffff), bit.tobit(2^31), bit.tobit(-1), \
                 bit.tobit(1.5), bit.tobit(2.5), bit.tobit(-1.5), bit.tobit(2^32+5), \
                 bit.tobit(2^53), bit.tobit(2^60+3), bit.tobit(1e300), bit.tobit(-0.5), \
                 bit.tobit(0.5), bit.tobit('12'), bit.tobit(' 0x10 '), bit.tobit(0/0), \
                 bit.tobit(1/0), bit.tobit(-1/0))"
            ),
        );
        assert_eq!(
            got,
            "-1 -2147483648 -1 2 2 -2 5 0 0 -2013235812 0 0 12 16 0 0 0"
        );
        assert_eq!(eval(&lua, "return type(bit.tobit(1))"), "number");
    }

    #[test]
    fn tohex_widths() {
        let lua = lua();
        let got = eval(
            &lua,
            &format!(
                "{JOIN} return s(bit.tohex(1), bit.tohex(-1), bit.tohex(0x1234abcd, 4), \
                 bit.tohex(0x1234abcd, -4), bit.tohex(255, 0), bit.tohex(255, 20), \
                 bit.tohex(255, -20), bit.tohex(255, 2.7), bit.tohex(255, '3'))"
            ),
        );
        assert_eq!(
            got,
            "00000001 ffffffff abcd ABCD  000000ff 000000FF 0ff 0ff"
        );
        assert_eq!(eval(&lua, "return bit.tohex(65535, -4)"), "FFFF");
        assert_eq!(eval(&lua, "return bit.tohex(1, -2147483648)"), "00000001");
    }

    #[test]
    fn logic_ops() {
        let lua = lua();
        let got = eval(
            &lua,
            &format!(
                "{JOIN} return s(bit.bnot(0), bit.bnot(5), bit.band(0xff, 0x0f0, 0x30), \
                 bit.bor(1,2,4,8), bit.bxor(0xff, 0x0f), bit.band(7), 1)"
            ),
        );
        assert_eq!(got, "-1 -6 48 15 240 7 1");
    }

    #[test]
    fn shifts_and_rotates() {
        let lua = lua();
        let got = eval(
            &lua,
            &format!(
                "{JOIN} return s(bit.lshift(1, 31), bit.lshift(1, 32), bit.lshift(1,33), \
                 bit.rshift(-1, 1), bit.arshift(-256, 4), bit.rshift(256, -1), \
                 bit.rol(0x12345678, 12), bit.ror(0x12345678, 12), bit.rol(5,0), \
                 bit.ror(5,32), bit.bswap(0x12345678), bit.bswap(-1), \
                 bit.arshift(0x80000000, 31))"
            ),
        );
        assert_eq!(
            got,
            "-2147483648 1 2 2147483647 -16 0 1164411171 1736516421 5 5 2018915346 -1 -1"
        );
    }

    #[test]
    fn table_contents() {
        let lua = lua();
        let got = eval(
            &lua,
            "local t={} for k in pairs(bit) do t[#t+1]=k end table.sort(t) \
             return table.concat(t, ' ')",
        );
        assert_eq!(
            got,
            "arshift band bnot bor bswap bxor lshift rol ror rshift tobit tohex"
        );
    }

    #[test]
    fn argument_errors() {
        let lua = lua();
        assert_eq!(
            error_of(&lua, "return bit.band(nil)"),
            "user_script:1: bad argument #1 to 'band' (number expected, got nil)"
        );
        assert_eq!(
            error_of(&lua, "return bit.bor()"),
            "user_script:1: bad argument #1 to 'bor' (number expected, got no value)"
        );
        assert_eq!(
            error_of(&lua, "local f = bit.bor\nreturn f(1,{})"),
            "user_script:2: bad argument #2 to 'f' (number expected, got table)"
        );
        assert_eq!(
            error_of(&lua, "local x = bit.rol(1)"),
            "user_script:1: bad argument #2 to 'rol' (number expected, got no value)"
        );
        assert_eq!(
            error_of(&lua, "return bit.tohex()"),
            "user_script:1: bad argument #1 to 'tohex' (number expected, got no value)"
        );
        assert_eq!(
            error_of(&lua, "return bit.bswap(true)"),
            "user_script:1: bad argument #1 to 'bswap' (number expected, got boolean)"
        );
        assert_eq!(
            error_of(&lua, "return bit.tobit(bit)"),
            "user_script:1: bad argument #1 to 'tobit' (number expected, got table)"
        );
        assert_eq!(
            error_of(&lua, "local t = {f=bit.band} return t:f(1)"),
            "user_script:1: calling 'f' on bad self (number expected, got table)"
        );
        // The last argument is checked before the middle ones; called from outside Lua code
        // (Redis: straight from pcall) there is neither a position nor a name.
        let band: mlua::Function = lua.load("return bit.band").eval().unwrap();
        let err = band.call::<()>((1, Value::Nil, "x")).unwrap_err();
        assert_eq!(
            root_message(&err),
            "bad argument #3 to '?' (number expected, got string)"
        );
    }
}
