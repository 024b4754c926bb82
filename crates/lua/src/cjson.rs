//! The `cjson` library as Redis 7.0 gives it to scripts (lua-cjson 2.1.0 with Redis's
//! defaults: nesting limits of 1000, invalid numbers refused when encoding and accepted when
//! decoding, 14 significant digits).
//!
//! Every function of the table is a small Lua wrapper around a Rust implementation. The
//! implementation reports failure as a value (`false, message`) and the wrapper raises it
//! with `error(message, 2)`, so scripts see plain string errors carrying the caller's
//! position (`user_script:1: ...`) exactly as `luaL_error` gives them in Redis, and
//! `pcall(cjson.decode, s)` yields the bare message. One difference remains: when a script
//! tail-calls a cjson function (`return cjson.encode(f)`), Lua 5.1 drops the caller's frame
//! for a Lua callee, so the position prefix and the function name in argument errors
//! (`'?'`) are lost where Redis (whose functions are C functions) still has them.

mod decode;
mod encode;
mod number;

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{Function, LightUserData, Lua, MultiValue, Table, Value};

/// Lua 5.1's limit on the stack slots one C function may use (`LUAI_MAXCSTACK`); lua-cjson
/// asks for slots as it nests, so this bounds the nesting it can reach whatever the limits.
const LUA_MAX_C_STACK: usize = 8000;

/// One table's settings, shared by its functions (`cjson.new()` makes a fresh set).
#[derive(Debug, Clone)]
struct Config {
    sparse_convert: bool,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// 0: refuse, 1: write `inf`/`nan`, 2: write `null`.
    encode_invalid_numbers: u8,
    decode_invalid_numbers: bool,
    keep_buffer: bool,
    precision: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: true,
            keep_buffer: true,
            precision: 14,
        }
    }
}

type Shared = Rc<RefCell<Config>>;

/// What an implementation hands its wrapper: up to three results, or an error message.
type Outcome = Result<Vec<Value>, mlua::String>;

/// An implementation: the arguments, and the table they were packed in (for exact numbers).
type Impl = dyn Fn(&Lua, &Shared, MultiValue, &Table) -> mlua::Result<Outcome>;

/// Lua source of the wrapper: calls the implementation (not as a tail call, so the frame
/// stays for error positions) and raises its message at the caller's level. Arguments
/// travel packed in a table, so numbers can be read back exactly (mlua's `Value` turns a
/// number within an epsilon of an integer into that integer, losing `-0` and tiny values).
const WRAPPER: &str = r##"
local impl, raise, three, select = ...
if three then
  return function(...)
    local ok, a, b, c = impl(select("#", ...), {...})
    if not ok then raise(a, 2) end
    return a, b, c
  end
end
return function(...)
  local ok, a = impl(select("#", ...), {...})
  if not ok then raise(a, 2) end
  return a
end
"##;

/// Registers the global `cjson` table.
pub fn register(lua: &Lua) -> mlua::Result<()> {
    let table = new_module(lua)?;
    lua.globals().set("cjson", table)
}

/// Builds one module table with its own settings (what `cjson.new()` returns).
fn new_module(lua: &Lua) -> mlua::Result<Table> {
    let cfg: Shared = Rc::new(RefCell::new(Config::default()));
    let table = lua.create_table()?;
    let factory: Function = lua.load(WRAPPER).set_name("=cjson").into_function()?;
    let raise: Function = lua.globals().raw_get("error")?;
    let select: Function = lua.globals().raw_get("select")?;

    let add = |name: &str, three: bool, f: Box<Impl>| -> mlua::Result<()> {
        let cfg = cfg.clone();
        let imp = lua.create_function(move |lua, (count, packed): (i64, Table)| {
            let mut args = MultiValue::new();
            for i in 1..=count {
                args.push_back(packed.raw_get::<Value>(i)?);
            }
            let mut out = MultiValue::new();
            match f(lua, &cfg, args, &packed)? {
                Ok(values) => {
                    out.push_back(Value::Boolean(true));
                    out.extend(values);
                }
                Err(msg) => {
                    out.push_back(Value::Boolean(false));
                    out.push_back(Value::String(msg));
                }
            }
            Ok(out)
        })?;
        let wrapped: Function = factory.call((imp, raise.clone(), three, select.clone()))?;
        table.raw_set(name, wrapped)
    };

    add("encode", false, Box::new(encode::lua_encode))?;
    add("decode", false, Box::new(decode::lua_decode))?;
    add(
        "encode_sparse_array",
        true,
        Box::new(cfg_encode_sparse_array),
    )?;
    add("encode_max_depth", false, Box::new(cfg_encode_max_depth))?;
    add("decode_max_depth", false, Box::new(cfg_decode_max_depth))?;
    add(
        "encode_number_precision",
        false,
        Box::new(cfg_encode_number_precision),
    )?;
    add(
        "encode_keep_buffer",
        false,
        Box::new(cfg_encode_keep_buffer),
    )?;
    add(
        "encode_invalid_numbers",
        false,
        Box::new(cfg_encode_invalid_numbers),
    )?;
    add(
        "decode_invalid_numbers",
        false,
        Box::new(cfg_decode_invalid_numbers),
    )?;
    add(
        "new",
        false,
        Box::new(|lua, _, _, _| Ok(Ok(vec![Value::Table(new_module(lua)?)]))),
    )?;

    table.raw_set(
        "null",
        Value::LightUserData(LightUserData(std::ptr::null_mut())),
    )?;
    table.raw_set("_NAME", "cjson")?;
    table.raw_set("_VERSION", "2.1.0")?;
    Ok(table)
}

// ===== Lua C API look-alikes for argument checking =====

/// The type name `luaL_typename` gives (light userdata is plain "userdata").
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

/// `luaL_argerror`'s message. The implementation runs at level 0 and its wrapper at level 1;
/// the wrapper's name is the one its caller used.
fn arg_error(lua: &Lua, narg: usize, extra: &str) -> mlua::Result<mlua::String> {
    let (name, method) = match lua.inspect_stack(1) {
        Some(debug) => {
            let names = debug.names();
            (
                names.name.map(|n| n.into_owned()),
                names.name_what == Some("method"),
            )
        }
        None => (None, false),
    };
    let name = name.unwrap_or_else(|| "?".to_string());
    let msg = if method && narg == 1 {
        format!("calling '{name}' on bad self ({extra})")
    } else {
        let narg = if method { narg - 1 } else { narg };
        format!("bad argument #{narg} to '{name}' ({extra})")
    };
    lua.create_string(msg)
}

/// `luaL_typerror`.
fn type_error(lua: &Lua, narg: usize, expected: &str, got: &Value) -> mlua::Result<mlua::String> {
    arg_error(
        lua,
        narg,
        &format!("{expected} expected, got {}", type_name(got)),
    )
}

/// `luaL_checkinteger` followed by the store into a C `int`.
fn check_int(lua: &Lua, args: &[Value], narg: usize) -> mlua::Result<Result<i32, mlua::String>> {
    let v = args.get(narg - 1).cloned().unwrap_or(Value::Nil);
    let n = match &v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(_) => lua.coerce_number(v.clone())?,
        _ => None,
    };
    match n {
        Some(n) => Ok(Ok(number::c_int_from_double(n))),
        None => Ok(Err(type_error(lua, narg, "number", &v)?)),
    }
}

/// `luaL_checkstring` (numbers are converted).
fn check_string(
    lua: &Lua,
    args: &[Value],
    narg: usize,
) -> mlua::Result<Result<mlua::String, mlua::String>> {
    let v = args.get(narg - 1).cloned().unwrap_or(Value::Nil);
    match &v {
        Value::String(s) => Ok(Ok(s.clone())),
        Value::Integer(_) | Value::Number(_) => match lua.coerce_string(v.clone())? {
            Some(s) => Ok(Ok(s)),
            None => Ok(Err(type_error(lua, narg, "string", &v)?)),
        },
        _ => Ok(Err(type_error(lua, narg, "string", &v)?)),
    }
}

/// The arguments of a configuration function, after the "too many" check.
fn config_args(
    lua: &Lua,
    args: MultiValue,
    max: usize,
) -> mlua::Result<Result<Vec<Value>, mlua::String>> {
    let args: Vec<Value> = args.into_iter().collect();
    if args.len() > max {
        return Ok(Err(arg_error(lua, max + 1, "found too many arguments")?));
    }
    Ok(Ok(args))
}

fn is_given(args: &[Value], idx: usize) -> bool {
    !matches!(args.get(idx - 1), None | Some(Value::Nil))
}

/// An integer setting: set it when given (within `min..=max`), return it.
fn integer_option(
    lua: &Lua,
    args: &[Value],
    idx: usize,
    setting: &mut i32,
    min: i32,
    max: i32,
) -> mlua::Result<Result<Value, mlua::String>> {
    if is_given(args, idx) {
        let value = match check_int(lua, args, idx)? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        if !(min <= value && value <= max) {
            // lua-cjson names argument 1 here whatever the position.
            let msg = format!("expected integer between {min} and {max}");
            return Ok(Err(arg_error(lua, 1, &msg)?));
        }
        *setting = value;
    }
    Ok(Ok(Value::Integer(i64::from(*setting))))
}

/// An enumerated setting: a boolean (`true` means `bool_true`) or one of `options`.
fn enum_option(
    lua: &Lua,
    args: &[Value],
    idx: usize,
    setting: &mut u8,
    options: &[&str],
    bool_true: u8,
) -> mlua::Result<Result<Value, mlua::String>> {
    if is_given(args, idx) {
        if let Some(Value::Boolean(b)) = args.get(idx - 1) {
            *setting = if *b { bool_true } else { 0 };
        } else {
            let s = match check_string(lua, args, idx)? {
                Ok(s) => s,
                Err(e) => return Ok(Err(e)),
            };
            let bytes = s.as_bytes();
            match options.iter().position(|o| o.as_bytes() == &bytes[..]) {
                Some(pos) => *setting = pos as u8,
                None => {
                    let msg = format!("invalid option '{}'", String::from_utf8_lossy(&bytes));
                    return Ok(Err(arg_error(lua, idx, &msg)?));
                }
            }
        }
    }
    if *setting == 0 || *setting == bool_true {
        Ok(Ok(Value::Boolean(*setting != 0)))
    } else {
        Ok(Ok(Value::String(
            lua.create_string(options[*setting as usize])?,
        )))
    }
}

const ON_OFF: &[&str] = &["off", "on"];

macro_rules! try_outcome {
    ($e:expr) => {
        match $e? {
            Ok(v) => v,
            Err(msg) => return Ok(Err(msg)),
        }
    };
}

fn cfg_encode_sparse_array(
    lua: &Lua,
    cfg: &Shared,
    args: MultiValue,
    _packed: &Table,
) -> mlua::Result<Outcome> {
    let args = try_outcome!(config_args(lua, args, 3));
    let mut c = cfg.borrow_mut();
    let mut convert = u8::from(c.sparse_convert);
    let a = try_outcome!(enum_option(lua, &args, 1, &mut convert, ON_OFF, 1));
    c.sparse_convert = convert != 0;
    let b = try_outcome!(integer_option(
        lua,
        &args,
        2,
        &mut c.sparse_ratio,
        0,
        i32::MAX
    ));
    let d = try_outcome!(integer_option(
        lua,
        &args,
        3,
        &mut c.sparse_safe,
        0,
        i32::MAX
    ));
    Ok(Ok(vec![a, b, d]))
}

fn cfg_encode_max_depth(
    lua: &Lua,
    cfg: &Shared,
    args: MultiValue,
    _packed: &Table,
) -> mlua::Result<Outcome> {
    let args = try_outcome!(config_args(lua, args, 1));
    let mut c = cfg.borrow_mut();
    let v = try_outcome!(integer_option(
        lua,
        &args,
        1,
        &mut c.encode_max_depth,
        1,
        i32::MAX
    ));
    Ok(Ok(vec![v]))
}

fn cfg_decode_max_depth(
    lua: &Lua,
    cfg: &Shared,
    args: MultiValue,
    _packed: &Table,
) -> mlua::Result<Outcome> {
    let args = try_outcome!(config_args(lua, args, 1));
    let mut c = cfg.borrow_mut();
    let v = try_outcome!(integer_option(
        lua,
        &args,
        1,
        &mut c.decode_max_depth,
        1,
        i32::MAX
    ));
    Ok(Ok(vec![v]))
}

fn cfg_encode_number_precision(
    lua: &Lua,
    cfg: &Shared,
    args: MultiValue,
    _packed: &Table,
) -> mlua::Result<Outcome> {
    let args = try_outcome!(config_args(lua, args, 1));
    let mut c = cfg.borrow_mut();
    let v = try_outcome!(integer_option(lua, &args, 1, &mut c.precision, 1, 14));
    Ok(Ok(vec![v]))
}

fn cfg_encode_keep_buffer(
    lua: &Lua,
    cfg: &Shared,
    args: MultiValue,
    _packed: &Table,
) -> mlua::Result<Outcome> {
    let args = try_outcome!(config_args(lua, args, 1));
    let mut c = cfg.borrow_mut();
    let mut keep = u8::from(c.keep_buffer);
    let v = try_outcome!(enum_option(lua, &args, 1, &mut keep, ON_OFF, 1));
    c.keep_buffer = keep != 0;
    Ok(Ok(vec![v]))
}

fn cfg_encode_invalid_numbers(
    lua: &Lua,
    cfg: &Shared,
    args: MultiValue,
    _packed: &Table,
) -> mlua::Result<Outcome> {
    let args = try_outcome!(config_args(lua, args, 1));
    let mut c = cfg.borrow_mut();
    let v = try_outcome!(enum_option(
        lua,
        &args,
        1,
        &mut c.encode_invalid_numbers,
        &["off", "on", "null"],
        1
    ));
    Ok(Ok(vec![v]))
}

fn cfg_decode_invalid_numbers(
    lua: &Lua,
    cfg: &Shared,
    args: MultiValue,
    _packed: &Table,
) -> mlua::Result<Outcome> {
    let args = try_outcome!(config_args(lua, args, 1));
    let mut c = cfg.borrow_mut();
    let mut on = u8::from(c.decode_invalid_numbers);
    let v = try_outcome!(enum_option(lua, &args, 1, &mut on, ON_OFF, 1));
    c.decode_invalid_numbers = on != 0;
    Ok(Ok(vec![v]))
}

#[cfg(test)]
mod tests;
