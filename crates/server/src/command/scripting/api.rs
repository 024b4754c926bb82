//! The parts of the `redis` table that need no command: `sha1hex`, `error_reply`,
//! `status_reply`, `log`, `setresp`, `set_repl`, `replicate_commands`, `breakpoint`,
//! `debug`, the `LOG_*` / `REPL_*` constants and the version; and Redis's `math.random`.
//!
//! Functions that can fail return the error text instead of raising it: the Lua wrappers in
//! the bootstrap raise it (`error(text, 0)`), so the message handler sees a plain string,
//! as it does for Redis's C functions.

use mlua::{Lua, MultiValue, Table, Value, Variadic};
use sha1::{Digest, Sha1};

use super::engine::Run;

pub const REPL_NONE: u32 = 0;
pub const REPL_AOF: u32 = 1;
pub const REPL_REPLICA: u32 = 2;
pub const REPL_ALL: u32 = REPL_AOF | REPL_REPLICA;

/// Lowercase hex SHA1 of `data` (script names, `redis.sha1hex`).
pub fn sha1_hex(data: &[u8]) -> [u8; 40] {
    let digest = Sha1::digest(data);
    let mut out = [0u8; 40];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = b"0123456789abcdef"[(b >> 4) as usize];
        out[2 * i + 1] = b"0123456789abcdef"[(b & 15) as usize];
    }
    out
}

/// An error `redis.call` raises: the command's error reply (or the check that refused it),
/// which Redis raises as an `{err=...}` table. Raised from Rust as an external error; the
/// message handler and `pcall` take the text back out ([`error_text`]).
#[derive(Debug)]
pub struct CallError(pub String);

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CallError {}

/// The text of an error raised from Rust, and whether it is a reply's (a [`CallError`],
/// kept as it is) rather than a plain message (which Redis prefixes with `ERR `).
pub fn error_text(e: &mlua::Error) -> (String, bool) {
    match e {
        mlua::Error::CallbackError { cause, .. } => error_text(cause),
        mlua::Error::RuntimeError(m) => (m.clone(), false),
        mlua::Error::ExternalError(x) => match x.downcast_ref::<CallError>() {
            Some(c) => (c.0.clone(), true),
            None => (x.to_string(), false),
        },
        other => (other.to_string(), false),
    }
}

/// Calls the run's command function with `mode` (0 `call`, 1 `pcall`, 2 `acl_check_cmd`).
fn command(lua: &Lua, mode: i64, args: MultiValue) -> mlua::Result<Value> {
    super::engine::call_current(lua, mode, args)
}

fn runtime(msg: &str) -> mlua::Error {
    mlua::Error::runtime(msg)
}

/// Fills the `redis` global and the internal helpers the bootstrap uses (`__kiln`).
pub fn register(lua: &Lua) -> mlua::Result<()> {
    let redis = lua.create_table()?;
    redis.raw_set(
        "call",
        lua.create_function(|lua, args: MultiValue| command(lua, 0, args))?,
    )?;
    redis.raw_set(
        "pcall",
        lua.create_function(|lua, args: MultiValue| command(lua, 1, args))?,
    )?;
    redis.raw_set(
        "acl_check_cmd",
        lua.create_function(|lua, args: MultiValue| command(lua, 2, args))?,
    )?;
    redis.raw_set(
        "sha1hex",
        lua.create_function(|lua, v: Variadic<Value>| {
            if v.len() != 1 {
                return Err(mlua::Error::runtime("wrong number of arguments"));
            }
            let s = lua
                .coerce_string(v[0].clone())?
                .map(|s| s.as_bytes().to_vec());
            let hex = sha1_hex(s.as_deref().unwrap_or_default());
            lua.create_string(hex)
        })?,
    )?;
    redis.raw_set(
        "error_reply",
        lua.create_function(|lua, v: Variadic<Value>| reply_table(lua, "err", v))?,
    )?;
    redis.raw_set(
        "status_reply",
        lua.create_function(|lua, v: Variadic<Value>| reply_table(lua, "ok", v))?,
    )?;
    redis.raw_set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    redis.raw_set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
    redis.raw_set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    for (name, v) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", REPL_NONE),
        ("REPL_AOF", REPL_AOF),
        ("REPL_SLAVE", REPL_REPLICA),
        ("REPL_REPLICA", REPL_REPLICA),
        ("REPL_ALL", REPL_ALL),
    ] {
        redis.raw_set(name, v)?;
    }
    redis.raw_set("REDIS_VERSION", crate::REDIS_VERSION)?;
    redis.raw_set("REDIS_VERSION_NUM", version_num(crate::REDIS_VERSION))?;
    redis.raw_set(
        "setresp",
        lua.create_function(|lua, v: Variadic<Value>| {
            if v.len() != 1 {
                return Err(runtime("redis.setresp() requires one argument."));
            }
            let n = match &v[0] {
                Value::Integer(n) => *n as f64,
                Value::Number(n) => *n,
                _ => 0.0,
            };
            if n != 2.0 && n != 3.0 {
                return Err(runtime("RESP version must be 2 or 3."));
            }
            if let Some(mut run) = lua.app_data_mut::<Run>() {
                run.resp3 = n == 3.0;
            }
            Ok(())
        })?,
    )?;
    redis.raw_set(
        "set_repl",
        lua.create_function(|lua, v: Variadic<Value>| {
            if v.len() != 1 {
                return Err(runtime("redis.set_repl() requires one argument."));
            }
            let flags = match &v[0] {
                Value::Integer(n) => *n,
                Value::Number(n) => *n as i64,
                _ => -1,
            };
            if !(0..=REPL_ALL as i64).contains(&flags) {
                return Err(runtime(
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                ));
            }
            if let Some(mut run) = lua.app_data_mut::<Run>() {
                run.repl = flags as u32;
            }
            Ok(())
        })?,
    )?;
    redis.raw_set(
        "log",
        lua.create_function(|lua, v: Variadic<Value>| {
            if v.len() < 2 {
                return Err(runtime("redis.log() requires two arguments or more."));
            }
            let level = match &v[0] {
                Value::Integer(n) => *n,
                Value::Number(n) => *n as i64,
                _ => return Err(runtime("First argument must be a number (log level).")),
            };
            if !(0..=3).contains(&level) {
                return Err(runtime("Invalid debug level."));
            }
            let mut msg = Vec::new();
            for (i, a) in v.iter().skip(1).enumerate() {
                if i > 0 {
                    msg.push(b' ');
                }
                if let Ok(Some(s)) = lua.coerce_string(a.clone()) {
                    msg.extend_from_slice(&s.as_bytes());
                }
            }
            let msg = String::from_utf8_lossy(&msg);
            match level {
                0 => tracing::debug!("{msg}"),
                1 => tracing::debug!("{msg}"),
                2 => tracing::info!("{msg}"),
                _ => tracing::warn!("{msg}"),
            }
            Ok(())
        })?,
    )?;
    lua.globals().raw_set("redis", redis)?;

    // `rawset` refuses the read-only tables (marked in their metatable by the bootstrap),
    // from Rust so that a tail call to it keeps the script's frame for the error's line.
    lua.globals().raw_set(
        "rawset",
        lua.create_function(|_, (t, k, v): (Table, Value, Value)| {
            let readonly = t
                .metatable()
                .is_some_and(|mt| mt.raw_get::<bool>("__readonly").unwrap_or(false));
            if readonly {
                return Err(runtime("Attempt to modify a readonly table"));
            }
            t.raw_set(k, v)?;
            Ok(t)
        })?,
    )?;
    let internal = lua.create_table()?;
    internal.raw_set(
        "errtext",
        lua.create_function(|_, v: Value| {
            Ok(match v {
                Value::Error(e) => Some(error_text(&e).0),
                _ => None,
            })
        })?,
    )?;
    lua.globals().raw_set("__kiln", internal)?;

    // What a library's code sees as `redis` while it loads.
    let load = lua.create_table()?;
    load.raw_set("register_function", lua.create_function(register_function)?)?;
    let redis: Table = lua.globals().raw_get("redis")?;
    for name in [
        "log",
        "LOG_DEBUG",
        "LOG_VERBOSE",
        "LOG_NOTICE",
        "LOG_WARNING",
        "REDIS_VERSION",
        "REDIS_VERSION_NUM",
    ] {
        load.raw_set(name, redis.raw_get::<Value>(name)?)?;
    }
    lua.globals().raw_set("__kiln_load", load)?;
    register_random(lua)?;
    Ok(())
}

/// Whether `name` is a valid library or function name: letters, digits and `_`, at least
/// one.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

pub const BAD_NAME: &str = "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

fn call_error(msg: &str) -> mlua::Error {
    mlua::Error::external(CallError(msg.to_string()))
}

/// `redis.register_function(name, callback)` or `redis.register_function{function_name=...,
/// callback=..., flags={...}, description=...}`, while a library loads.
fn register_function(lua: &Lua, args: MultiValue) -> mlua::Result<()> {
    let mut name = None;
    let mut callback = None;
    let mut flags = super::ScriptFlags::default();
    let mut description = None;
    match args.len() {
        1 => {
            let Some(Value::Table(t)) = args.front() else {
                return Err(call_error("ERR calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments)."));
            };
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                let key = match &k {
                    Value::String(s) => s.as_bytes().to_vec(),
                    _ => return Err(call_error(
                        "ERR named argument key given to redis.register_function is not a string",
                    )),
                };
                match (&key[..], v) {
                    (b"function_name", Value::String(s)) => name = Some(s.as_bytes().to_vec()),
                    (b"function_name", _) => return Err(call_error("ERR function_name argument given to redis.register_function must be a string")),
                    (b"callback", Value::Function(f)) => callback = Some(f),
                    (b"callback", _) => return Err(call_error("ERR callback argument given to redis.register_function must be a function")),
                    (b"description", Value::String(s)) => description = Some(s.as_bytes().to_vec()),
                    (b"description", _) => return Err(call_error("ERR description argument given to redis.register_function must be a string")),
                    (b"flags", Value::Table(list)) => {
                        for f in list.sequence_values::<Value>() {
                            let Value::String(f) = f? else {
                                return Err(call_error("ERR unknown flag given"));
                            };
                            if !flags.set(&f.as_bytes()) {
                                return Err(call_error("ERR unknown flag given"));
                            }
                        }
                    }
                    (b"flags", _) => return Err(call_error("ERR flags argument to redis.register_function must be a table representing function flags")),
                    _ => return Err(call_error("ERR unknown argument given to redis.register_function")),
                }
            }
        }
        2 => {
            let mut it = args.into_iter();
            // A number is a name too (Lua turns it into a string).
            match it.next().map(|v| lua.coerce_string(v)) {
                Some(Ok(Some(s))) => name = Some(s.as_bytes().to_vec()),
                _ => {
                    return Err(call_error(
                        "ERR first argument to redis.register_function must be a string",
                    ))
                }
            }
            match it.next() {
                Some(Value::Function(f)) => callback = Some(f),
                _ => {
                    return Err(call_error(
                        "ERR second argument to redis.register_function must be a function",
                    ))
                }
            }
        }
        _ => {
            return Err(call_error(
                "ERR wrong number of arguments to redis.register_function",
            ))
        }
    }
    let Some(name) = name else {
        return Err(call_error(
            "ERR redis.register_function must get a function name argument",
        ));
    };
    let Some(callback) = callback else {
        return Err(call_error(
            "ERR redis.register_function must get a callback argument",
        ));
    };
    if !valid_name(&name) {
        return Err(call_error(BAD_NAME));
    }
    let name = String::from_utf8_lossy(&name).into_owned();
    let mut reg = lua
        .app_data_mut::<super::engine::Registering>()
        .ok_or_else(|| {
            call_error("ERR redis.register_function can only be called on FUNCTION LOAD command")
        })?;
    if reg.0.iter().any(|r| r.name == name) {
        return Err(call_error("ERR Function already exists in the library"));
    }
    reg.0.push(super::engine::Registered {
        name,
        description,
        flags,
        callback,
    });
    Ok(())
}

/// `redis.error_reply(text)` / `redis.status_reply(text)`: `{err=text}` / `{ok=text}`
/// (an error's leading `-` dropped: the reply adds its own).
fn reply_table(lua: &Lua, field: &str, v: Variadic<Value>) -> mlua::Result<Table> {
    let text = match v.first() {
        Some(Value::String(s)) if v.len() == 1 => s.as_bytes().to_vec(),
        _ => return Err(mlua::Error::runtime("wrong number or type of arguments")),
    };
    let text = match text.strip_prefix(b"-") {
        Some(rest) if field == "err" => rest,
        _ => &text[..],
    };
    let t = lua.create_table()?;
    t.raw_set(field, lua.create_string(text)?)?;
    Ok(t)
}

/// `msg` with the position of the Lua code that called the running Rust function, as
/// `luaL_error` gives it (`user_script:3: msg`).
pub fn located(lua: &Lua, msg: &str) -> mlua::Error {
    let at = lua.inspect_stack(1).and_then(|d| {
        let line = d.curr_line();
        let src = d.source().short_src.map(|s| s.into_owned());
        (line > 0).then(|| format!("{}:{line}: ", src.unwrap_or_default()))
    });
    mlua::Error::runtime(format!("{}{msg}", at.unwrap_or_default()))
}

/// `major * 65536 + minor * 256 + patch`.
fn version_num(v: &str) -> u32 {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    (a << 16) | (b << 8) | c
}

/// The 48-bit generator of POSIX `lrand48`, which Redis's `math.random` uses (so a script's
/// random numbers do not depend on the C library).
#[derive(Clone, Copy)]
struct Rand48(u64);

impl Rand48 {
    const MASK: u64 = (1 << 48) - 1;
    fn seeded(seed: i32) -> Self {
        Self((((seed as u32) as u64) << 16 | 0x330e) & Self::MASK)
    }
    fn next(&mut self) -> i32 {
        self.0 = (self.0.wrapping_mul(0x5_deec_e66d).wrapping_add(0xb)) & Self::MASK;
        (self.0 >> 17) as i32
    }
}

/// `math.random` / `math.randomseed` on [`Rand48`], with Lua 5.1's argument rules.
fn register_random(lua: &Lua) -> mlua::Result<()> {
    lua.set_app_data(Rand48::seeded(0));
    let math: Table = lua.globals().raw_get("math")?;
    math.raw_set(
        "random",
        lua.create_function(|lua, v: Variadic<f64>| {
            let r = {
                let mut g = lua
                    .app_data_mut::<Rand48>()
                    .ok_or_else(|| mlua::Error::runtime("no generator"))?;
                (g.next() % i32::MAX) as f64 / i32::MAX as f64
            };
            match v.len() {
                0 => Ok(r),
                1 => {
                    let m = v[0];
                    if m < 1.0 {
                        return Err(located(
                            lua,
                            "bad argument #1 to 'random' (interval is empty)",
                        ));
                    }
                    Ok((r * m).floor() + 1.0)
                }
                2 => {
                    let (m, n) = (v[0], v[1]);
                    if m > n {
                        return Err(located(
                            lua,
                            "bad argument #2 to 'random' (interval is empty)",
                        ));
                    }
                    Ok((r * (n - m + 1.0)).floor() + m)
                }
                _ => Err(located(lua, "wrong number of arguments")),
            }
        })?,
    )?;
    math.raw_set(
        "randomseed",
        lua.create_function(|lua, seed: f64| {
            lua.set_app_data(Rand48::seeded(seed as i64 as i32));
            Ok(())
        })?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_sha() {
        assert_eq!(version_num("7.0.15"), 458767);
        assert_eq!(&sha1_hex(b""), b"da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }
}
