//! `cjson.encode`: Lua values to JSON text, walking nested tables with an explicit stack
//! (so deep nesting costs heap, not Rust stack).

use mlua::{Function, Lua, MultiValue, Table, Value};

use super::number::{c_int_direct, format_g};
use super::{arg_error, type_name, Config, Outcome, Shared, LUA_MAX_C_STACK};

/// A table being written: an array (indices still to write) or an object. The tables
/// themselves (and an object's current key) sit in Lua tables indexed by depth, since mlua
/// can hold only so many references at once and Redis allows nesting near that number.
#[derive(Clone, Copy)]
enum Frame {
    Array { len: i64, next: i64 },
    Object { first: bool },
}

/// How a table is written, decided as lua-cjson does from its keys.
enum Shape {
    Array(i64),
    Object,
}

/// One step through an object: the next pair after `keys[depth]` (which it advances, so
/// keys never round-trip through Rust), with numbers also returned as plain numbers to be
/// read exactly.
const STEP: &str = r#"
local next = ...
return function(t, keys, depth)
  local k, v = next(t, keys[depth])
  keys[depth] = k
  return k, v, type(k) == "number" and k or 0, type(v) == "number" and v or 0
end
"#;

struct Encoder<'a> {
    cfg: &'a Config,
    out: Vec<u8>,
    stack: Vec<Frame>,
    /// Lua stack slots lua-cjson would be using (the argument, plus per level one for an
    /// array's element or two for an object's key and value).
    slots: usize,
    /// `open[depth]`: the table being written at that depth.
    open: Table,
    /// `keys[depth]`: the current key of the object at that depth.
    keys: Table,
    /// [`STEP`], built.
    step: Function,
}

pub(super) fn lua_encode(
    lua: &Lua,
    cfg: &Shared,
    args: MultiValue,
    packed: &Table,
) -> mlua::Result<Outcome> {
    if args.len() != 1 {
        return Ok(Err(arg_error(lua, 1, "expected 1 argument")?));
    }
    let mut value = args.into_iter().next().unwrap_or(Value::Nil);
    if let Value::Integer(_) = value {
        value = Value::Number(packed.raw_get::<f64>(1)?);
    }
    let cfg = cfg.borrow().clone();
    let mut enc = Encoder {
        cfg: &cfg,
        out: Vec::new(),
        stack: Vec::new(),
        slots: 1,
        open: lua.create_table()?,
        keys: lua.create_table()?,
        step: lua
            .load(STEP)
            .set_name("=cjson")
            .call(lua.globals().raw_get::<Function>("next")?)?,
    };
    match enc.run(value)? {
        Ok(()) => Ok(Ok(vec![Value::String(lua.create_string(&enc.out)?)])),
        Err(msg) => Ok(Err(lua.create_string(msg)?)),
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

fn serialise_error(v: &Value, reason: &str) -> String {
    format!("Cannot serialise {}: {reason}", type_name(v))
}

impl Encoder<'_> {
    fn run(&mut self, value: Value) -> mlua::Result<Result<(), String>> {
        if let Err(e) = self.value(value)? {
            return Ok(Err(e));
        }
        while let Some(&frame) = self.stack.last() {
            let depth = self.stack.len();
            let child = match frame {
                Frame::Array { len, next } => {
                    if next > len {
                        None
                    } else {
                        if next > 1 {
                            self.out.push(b',');
                        }
                        let table: Table = self.open.raw_get(depth)?;
                        let mut v: Value = table.raw_get(next)?;
                        if let Value::Integer(_) = v {
                            v = Value::Number(table.raw_get::<f64>(next)?);
                        }
                        self.stack[depth - 1] = Frame::Array {
                            len,
                            next: next + 1,
                        };
                        Some(v)
                    }
                }
                Frame::Object { first } => {
                    let table: Table = self.open.raw_get(depth)?;
                    let (mut k, mut v, kn, vn): (Value, Value, f64, f64) =
                        self.step.call((table, &self.keys, depth))?;
                    if let Value::Integer(_) = k {
                        k = Value::Number(kn);
                    }
                    if let Value::Integer(_) = v {
                        v = Value::Number(vn);
                    }
                    if k.is_nil() {
                        None
                    } else {
                        if !first {
                            self.out.push(b',');
                        }
                        self.stack[depth - 1] = Frame::Object { first: false };
                        match &k {
                            Value::String(s) => {
                                self.string(&s.as_bytes());
                                self.out.push(b':');
                            }
                            Value::Integer(_) | Value::Number(_) => {
                                self.out.push(b'"');
                                if let Err(e) = self.number(&k) {
                                    return Ok(Err(e));
                                }
                                self.out.extend_from_slice(b"\":");
                            }
                            _ => {
                                return Ok(Err(serialise_error(
                                    &k,
                                    "table key must be a number or string",
                                )))
                            }
                        }
                        Some(v)
                    }
                }
            };
            match child {
                Some(v) => {
                    if let Err(e) = self.value(v)? {
                        return Ok(Err(e));
                    }
                }
                None => {
                    self.open.raw_set(depth, Value::Nil)?;
                    self.keys.raw_set(depth, Value::Nil)?;
                    match self.stack.pop() {
                        Some(Frame::Array { .. }) => {
                            self.out.push(b']');
                            self.slots -= 1;
                        }
                        Some(Frame::Object { .. }) => {
                            self.out.push(b'}');
                            self.slots -= 2;
                        }
                        None => {}
                    }
                }
            }
        }
        Ok(Ok(()))
    }

    /// Writes a scalar, or opens a table (pushing its frame).
    fn value(&mut self, v: Value) -> mlua::Result<Result<(), String>> {
        match v {
            Value::String(s) => self.string(&s.as_bytes()),
            Value::Integer(_) | Value::Number(_) => {
                if let Err(e) = self.number(&v) {
                    return Ok(Err(e));
                }
            }
            Value::Boolean(b) => self
                .out
                .extend_from_slice(if b { b"true" } else { b"false" }),
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::LightUserData(ud) if ud.0.is_null() => self.out.extend_from_slice(b"null"),
            Value::Table(t) => return self.table(t),
            other => return Ok(Err(serialise_error(&other, "type not supported"))),
        }
        Ok(Ok(()))
    }

    fn table(&mut self, t: Table) -> mlua::Result<Result<(), String>> {
        let depth = self.stack.len() + 1;
        if depth > self.cfg.encode_max_depth as usize || self.slots + 3 > LUA_MAX_C_STACK {
            return Ok(Err(format!(
                "Cannot serialise, excessive nesting ({depth})"
            )));
        }
        match self.shape(&t)? {
            Err(e) => Ok(Err(e)),
            Ok(Shape::Array(len)) => {
                self.out.push(b'[');
                self.slots += 1;
                self.open.raw_set(depth, t)?;
                self.stack.push(Frame::Array { len, next: 1 });
                Ok(Ok(()))
            }
            Ok(Shape::Object) => {
                self.out.push(b'{');
                self.slots += 2;
                self.open.raw_set(depth, t)?;
                self.stack.push(Frame::Object { first: true });
                Ok(Ok(()))
            }
        }
    }

    /// lua-cjson's array test: every key a number that is a whole number >= 1, and the
    /// array not excessively sparse (which is an error unless conversion is on).
    fn shape(&self, t: &Table) -> mlua::Result<Result<Shape, String>> {
        let mut max: i32 = 0;
        let mut items: i32 = 0;
        let mut array = true;
        t.for_each::<Value, mlua::Value>(|k, _| {
            if !array {
                return Ok(());
            }
            match number_of(&k) {
                Some(n) if n != 0.0 && n.floor() == n && n >= 1.0 => {
                    if n > f64::from(max) {
                        max = c_int_direct(n);
                    }
                    items = items.wrapping_add(1);
                }
                _ => array = false,
            }
            Ok(())
        })?;
        if !array {
            return Ok(Ok(Shape::Object));
        }
        let cfg = self.cfg;
        if cfg.sparse_ratio > 0
            && max > items.wrapping_mul(cfg.sparse_ratio)
            && max > cfg.sparse_safe
        {
            if !cfg.sparse_convert {
                return Ok(Err(
                    "Cannot serialise table: excessively sparse array".to_string()
                ));
            }
            return Ok(Ok(Shape::Object));
        }
        if max > 0 {
            Ok(Ok(Shape::Array(i64::from(max))))
        } else {
            Ok(Ok(Shape::Object))
        }
    }

    fn string(&mut self, s: &[u8]) {
        self.out.reserve(s.len() + 2);
        self.out.push(b'"');
        for &c in s {
            match c {
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'/' => self.out.extend_from_slice(b"\\/"),
                0x08 => self.out.extend_from_slice(b"\\b"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                0x0c => self.out.extend_from_slice(b"\\f"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                0..=0x1f | 0x7f => {
                    self.out
                        .extend_from_slice(format!("\\u{:04x}", c).as_bytes());
                }
                _ => self.out.push(c),
            }
        }
        self.out.push(b'"');
    }

    fn number(&mut self, v: &Value) -> Result<(), String> {
        let n = number_of(v).unwrap_or(0.0);
        let invalid = n.is_nan() || n.is_infinite();
        match self.cfg.encode_invalid_numbers {
            0 if invalid => return Err(serialise_error(v, "must not be NaN or Inf")),
            1 if n.is_nan() => {
                self.out.extend_from_slice(b"nan");
                return Ok(());
            }
            2 if invalid => {
                self.out.extend_from_slice(b"null");
                return Ok(());
            }
            _ => {}
        }
        self.out
            .extend_from_slice(format_g(n, self.cfg.precision).as_bytes());
        Ok(())
    }
}
