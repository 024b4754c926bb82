//! Values across the Lua boundary, as Redis 7.0 converts them.
//!
//! * A command's reply becomes a Lua value ([`reply_to_lua`]) by the script's protocol
//!   (`redis.setresp`): RESP2 integers are numbers, bulks strings, nils `false`, statuses
//!   `{ok=...}`, errors `{err=...}`; RESP3 adds maps `{map=...}`, sets `{set=...}`,
//!   doubles `{double=...}`, booleans, big numbers and verbatim strings.
//! * A script's result becomes a reply ([`lua_to_reply`]) by the calling client's protocol:
//!   numbers are truncated to integers, `false` is nil in RESP2, tables with `ok` / `err`
//!   are statuses / errors, other tables arrays up to their first nil.

use kiln_resp::Value as Resp;
use mlua::{Lua, Table, Value};

use crate::reply::Out;

/// Deepest table nesting a script's result may have (Redis stops at the Lua C stack's
/// depth; deeper levels are cut to nil).
const MAX_DEPTH: usize = 1000;

/// A command's reply as the value `redis.call` returns. `Err` carries the error's text
/// (without the `-`), which `redis.call` raises and `redis.pcall` returns as `{err=...}`.
pub fn reply_to_lua(lua: &Lua, v: Resp, resp3: bool) -> mlua::Result<Result<Value, String>> {
    Ok(Ok(match v {
        Resp::Error(e) | Resp::BlobError(e) => {
            return Ok(Err(String::from_utf8_lossy(&e).into_owned()))
        }
        Resp::Simple(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", lua.create_string(&s)?)?;
            Value::Table(t)
        }
        Resp::Int(n) => Value::Number(n as f64),
        Resp::Bulk(b) => Value::String(lua.create_string(&b)?),
        Resp::Nil | Resp::NilArray => {
            if resp3 {
                Value::Nil
            } else {
                Value::Boolean(false)
            }
        }
        Resp::Array(items) | Resp::Push(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                t.raw_set(i + 1, nested(lua, item, resp3)?)?;
            }
            Value::Table(t)
        }
        Resp::Map(pairs) => {
            let inner = lua.create_table()?;
            for (k, v) in pairs {
                inner.raw_set(nested(lua, k, resp3)?, nested(lua, v, resp3)?)?;
            }
            let t = lua.create_table()?;
            t.raw_set("map", inner)?;
            Value::Table(t)
        }
        Resp::Set(items) => {
            let inner = lua.create_table()?;
            for item in items {
                inner.raw_set(nested(lua, item, resp3)?, true)?;
            }
            let t = lua.create_table()?;
            t.raw_set("set", inner)?;
            Value::Table(t)
        }
        Resp::Attribute(_, v) => return reply_to_lua(lua, *v, resp3),
        Resp::Double(d) => {
            let t = lua.create_table()?;
            let n = crate::util::parse_f64(&d).unwrap_or(f64::NAN);
            t.raw_set("double", n)?;
            Value::Table(t)
        }
        Resp::Bool(b) => Value::Boolean(b),
        Resp::BigNumber(n) => {
            let t = lua.create_table()?;
            t.raw_set("big_number", lua.create_string(&n)?)?;
            Value::Table(t)
        }
        Resp::Verbatim(fmt, text) => {
            let inner = lua.create_table()?;
            inner.raw_set("format", lua.create_string(fmt)?)?;
            inner.raw_set("string", lua.create_string(&text)?)?;
            let t = lua.create_table()?;
            t.raw_set("verbatim_string", inner)?;
            Value::Table(t)
        }
    }))
}

/// An element inside an aggregate: errors become `{err=...}` tables there.
fn nested(lua: &Lua, v: Resp, resp3: bool) -> mlua::Result<Value> {
    Ok(match reply_to_lua(lua, v, resp3)? {
        Ok(v) => v,
        Err(e) => {
            let t = lua.create_table()?;
            t.raw_set("err", e)?;
            Value::Table(t)
        }
    })
}

/// Lua's number to integer conversion for replies: truncation, with what the C cast gives
/// on x86-64 for values it cannot hold (the minimum integer).
pub fn truncate(n: f64) -> i64 {
    // 2^63: the first double an i64 cannot hold.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if n.is_nan() || !(-LIMIT..LIMIT).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// Writes a script's result (or an element of it) as the calling client's reply.
pub fn lua_to_reply(out: &mut Out, v: &Value) {
    write(out, v, 0);
}

fn write(out: &mut Out, v: &Value, depth: usize) {
    match v {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Number(n) => out.int(truncate(*n)),
        Value::Integer(n) => out.int(*n),
        Value::Boolean(true) => {
            if out.resp3 {
                out.boolean(true)
            } else {
                out.int(1)
            }
        }
        Value::Boolean(false) => {
            if out.resp3 {
                out.boolean(false)
            } else {
                out.null()
            }
        }
        Value::Table(t) if depth < MAX_DEPTH => write_table(out, t, depth),
        _ => out.null(),
    }
}

fn field(t: &Table, name: &str) -> Value {
    t.raw_get(name).unwrap_or(Value::Nil)
}

fn write_table(out: &mut Out, t: &Table, depth: usize) {
    // `{err=...}`: an error reply (a string field only).
    if let Value::String(e) = field(t, "err") {
        let text = e.as_bytes();
        out.error(&String::from_utf8_lossy(&text));
        return;
    }
    if let Value::String(s) = field(t, "ok") {
        let s = s.as_bytes();
        let s = String::from_utf8_lossy(&s).replace(['\r', '\n'], " ");
        out.simple(&s);
        return;
    }
    // RESP3 types: written as such to a RESP3 client, as their RESP2 forms otherwise.
    {
        if let Value::Number(d) = field(t, "double") {
            out.double_text(crate::util::fmt_g17(d).as_bytes());
            return;
        }
        if let Value::Integer(d) = field(t, "double") {
            out.double_text(crate::util::fmt_g17(d as f64).as_bytes());
            return;
        }
        if let Value::String(n) = field(t, "big_number") {
            let n = n.as_bytes().to_vec();
            if out.resp3 {
                out.raw(b"(");
                out.raw(&n);
                out.raw(b"\r\n");
            } else {
                out.bulk(&n);
            }
            return;
        }
        if let Value::Table(m) = field(t, "map") {
            let pairs: Vec<(Value, Value)> = m.pairs().filter_map(Result::ok).collect();
            out.map(pairs.len());
            for (k, v) in &pairs {
                write(out, k, depth + 1);
                write(out, v, depth + 1);
            }
            return;
        }
        if let Value::Table(s) = field(t, "set") {
            let items: Vec<Value> = s
                .pairs::<Value, Value>()
                .filter_map(Result::ok)
                .map(|(k, _)| k)
                .collect();
            out.set(items.len());
            for k in &items {
                write(out, k, depth + 1);
            }
            return;
        }
        if let Value::Table(v) = field(t, "verbatim_string") {
            if let (Value::String(fmt), Value::String(s)) =
                (field(&v, "format"), field(&v, "string"))
            {
                let fmt = fmt.as_bytes();
                let s = s.as_bytes();
                if !out.resp3 {
                    out.bulk(&s);
                    return;
                }
                let mut f = [b' '; 3];
                for (d, b) in f.iter_mut().zip(fmt.iter()) {
                    *d = *b;
                }
                let mut buf = Vec::with_capacity(s.len() + 4);
                buf.extend_from_slice(&f);
                buf.push(b':');
                buf.extend_from_slice(&s);
                out.raw(format!("={}\r\n", buf.len()).as_bytes());
                out.raw(&buf);
                out.raw(b"\r\n");
                return;
            }
        }
    }
    // An array: elements 1, 2, ... up to the first nil.
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(v),
        }
    }
    out.array(items.len());
    for v in &items {
        write(out, v, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_truncate_like_the_c_cast() {
        assert_eq!(truncate(3.99), 3);
        assert_eq!(truncate(-3.5), -3);
        assert_eq!(truncate(1e20), i64::MIN);
        assert_eq!(truncate(f64::NAN), i64::MIN);
        assert_eq!(truncate(-1e20), i64::MIN);
    }

    #[test]
    fn results_become_replies() {
        let lua = Lua::new();
        let mut buf = Vec::new();
        let v: Value = lua
            .load("return {1, 'a', {2.7, false}, nil, 5}")
            .eval()
            .unwrap();
        lua_to_reply(&mut Out::new(&mut buf, false), &v);
        assert_eq!(buf, b"*3\r\n:1\r\n$1\r\na\r\n*2\r\n:2\r\n$-1\r\n");
        buf.clear();
        let v: Value = lua.load("return {err='-MY err'}").eval().unwrap();
        lua_to_reply(&mut Out::new(&mut buf, false), &v);
        // The text as it is: Redis adds its own `-`.
        assert_eq!(buf, b"--MY err\r\n");
    }
}
