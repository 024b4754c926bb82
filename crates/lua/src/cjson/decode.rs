//! `cjson.decode`: JSON text to Lua values. The text is read like a C string (a NUL byte
//! ends it), numbers go through `strtod`, and nesting is followed with an explicit stack.

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use super::number::strtod;
use super::{arg_error, check_string, Config, Outcome, Shared, LUA_MAX_C_STACK};

enum Token {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str(Vec<u8>),
    Num(f64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl Token {
    /// How a parse error names what it found.
    fn name(&self) -> &'static str {
        match self {
            Token::ObjBegin => "T_OBJ_BEGIN",
            Token::ObjEnd => "T_OBJ_END",
            Token::ArrBegin => "T_ARR_BEGIN",
            Token::ArrEnd => "T_ARR_END",
            Token::Str(_) => "T_STRING",
            Token::Num(_) => "T_NUMBER",
            Token::Bool(_) => "T_BOOLEAN",
            Token::Null => "T_NULL",
            Token::Colon => "T_COLON",
            Token::Comma => "T_COMMA",
            Token::End => "T_END",
            Token::Error(what) => what,
        }
    }
}

/// A container being filled (the table itself sits in `open[depth]`: mlua can hold only
/// so many references at once, and Redis allows nesting near that number).
enum Open {
    Array(i64),
    Object(Vec<u8>),
}

struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
    cfg: &'a Config,
    depth: i64,
    /// Lua stack slots lua-cjson would be using: the argument, a table per array level,
    /// a table and a key per object level.
    slots: usize,
}

pub(super) fn lua_decode(
    lua: &Lua,
    cfg: &Shared,
    args: MultiValue,
    _packed: &Table,
) -> mlua::Result<Outcome> {
    let args: Vec<Value> = args.into_iter().collect();
    if args.len() != 1 {
        return Ok(Err(arg_error(lua, 1, "expected 1 argument")?));
    }
    let text = match check_string(lua, &args, 1)? {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let bytes = text.as_bytes();
    if bytes.len() >= 2 && (bytes[0] == 0 || bytes[1] == 0) {
        return Ok(Err(
            lua.create_string("JSON parser does not support UTF-16 or UTF-32")?
        ));
    }
    let cfg = cfg.borrow().clone();
    let mut parser = Parser {
        data: &bytes,
        pos: 0,
        cfg: &cfg,
        depth: 0,
        slots: 1,
    };
    match parser.parse(lua)? {
        Ok(v) => Ok(Ok(vec![v])),
        Err(msg) => Ok(Err(lua.create_string(msg)?)),
    }
}

fn expected(what: &str, token: &Token, index: usize) -> String {
    format!(
        "Expected {what} but found {} at character {}",
        token.name(),
        index + 1
    )
}

impl Parser<'_> {
    fn byte(&self, at: usize) -> u8 {
        self.data.get(at).copied().unwrap_or(0)
    }

    fn parse(&mut self, lua: &Lua) -> mlua::Result<Result<Value, String>> {
        let mut stack: Vec<Open> = Vec::new();
        let open = lua.create_table()?;
        let (mut token, mut index) = self.next_token();
        'value: loop {
            let mut value = match token {
                Token::Str(s) => Value::String(lua.create_string(&s)?),
                Token::Num(n) => Value::Number(n),
                Token::Bool(b) => Value::Boolean(b),
                Token::Null => Value::LightUserData(LightUserData(std::ptr::null_mut())),
                Token::ObjBegin => {
                    if let Err(e) = self.descend(3) {
                        return Ok(Err(e));
                    }
                    let table = lua.create_table()?;
                    let (t, i) = self.next_token();
                    if matches!(t, Token::ObjEnd) {
                        self.ascend(2);
                        Value::Table(table)
                    } else {
                        let key = match self.key_and_colon(t, i) {
                            Ok(k) => k,
                            Err(e) => return Ok(Err(e)),
                        };
                        stack.push(Open::Object(key));
                        open.raw_set(stack.len(), table)?;
                        (token, index) = self.next_token();
                        continue 'value;
                    }
                }
                Token::ArrBegin => {
                    if let Err(e) = self.descend(2) {
                        return Ok(Err(e));
                    }
                    let table = lua.create_table()?;
                    let (t, i) = self.next_token();
                    if matches!(t, Token::ArrEnd) {
                        self.ascend(1);
                        Value::Table(table)
                    } else {
                        stack.push(Open::Array(1));
                        open.raw_set(stack.len(), table)?;
                        (token, index) = (t, i);
                        continue 'value;
                    }
                }
                other => return Ok(Err(expected("value", &other, index))),
            };
            // Store the value in its container; close containers that end here.
            loop {
                let depth = stack.len();
                match stack.last_mut() {
                    None => {
                        let (t, i) = self.next_token();
                        if !matches!(t, Token::End) {
                            return Ok(Err(expected("the end", &t, i)));
                        }
                        return Ok(Ok(value));
                    }
                    Some(Open::Array(n)) => {
                        let table: Table = open.raw_get(depth)?;
                        table.raw_set(*n, value)?;
                        *n += 1;
                        let (t, i) = self.next_token();
                        match t {
                            Token::ArrEnd => {
                                self.ascend(1);
                                stack.pop();
                                open.raw_set(depth, Value::Nil)?;
                                value = Value::Table(table);
                            }
                            Token::Comma => {
                                (token, index) = self.next_token();
                                continue 'value;
                            }
                            other => return Ok(Err(expected("comma or array end", &other, i))),
                        }
                    }
                    Some(Open::Object(key)) => {
                        let table: Table = open.raw_get(depth)?;
                        table.raw_set(lua.create_string(&*key)?, value)?;
                        let (t, i) = self.next_token();
                        match t {
                            Token::ObjEnd => {
                                self.ascend(2);
                                stack.pop();
                                open.raw_set(depth, Value::Nil)?;
                                value = Value::Table(table);
                            }
                            Token::Comma => {
                                let (t, i) = self.next_token();
                                match self.key_and_colon(t, i) {
                                    Ok(k) => *key = k,
                                    Err(e) => return Ok(Err(e)),
                                }
                                (token, index) = self.next_token();
                                continue 'value;
                            }
                            other => return Ok(Err(expected("comma or object end", &other, i))),
                        }
                    }
                }
            }
        }
    }

    /// An object key (already read as `token`) and the colon after it.
    fn key_and_colon(&mut self, token: Token, index: usize) -> Result<Vec<u8>, String> {
        let Token::Str(key) = token else {
            return Err(expected("object key string", &token, index));
        };
        let (t, i) = self.next_token();
        if !matches!(t, Token::Colon) {
            return Err(expected("colon", &t, i));
        }
        Ok(key)
    }

    fn descend(&mut self, slots: usize) -> Result<(), String> {
        self.depth += 1;
        if self.depth <= i64::from(self.cfg.decode_max_depth)
            && self.slots + slots <= LUA_MAX_C_STACK
        {
            self.slots += slots - 1;
            return Ok(());
        }
        Err(format!(
            "Found too many nested data structures ({}) at character {}",
            self.depth, self.pos
        ))
    }

    fn ascend(&mut self, slots: usize) {
        self.depth -= 1;
        self.slots -= slots;
    }

    /// The next token and where it starts.
    fn next_token(&mut self) -> (Token, usize) {
        while matches!(self.byte(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let start = self.pos;
        let single = match self.byte(start) {
            b'{' => Some(Token::ObjBegin),
            b'}' => Some(Token::ObjEnd),
            b'[' => Some(Token::ArrBegin),
            b']' => Some(Token::ArrEnd),
            b',' => Some(Token::Comma),
            b':' => Some(Token::Colon),
            _ => None,
        };
        if let Some(t) = single {
            self.pos += 1;
            return (t, start);
        }
        let c = self.byte(start);
        match c {
            0 => (Token::End, start),
            b'"' => self.string_token(),
            b'-' | b'0'..=b'9' => {
                if !self.cfg.decode_invalid_numbers && self.is_invalid_number() {
                    return (Token::Error("invalid number"), start);
                }
                self.number_token()
            }
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+' => {
                let rest = &self.data[start..];
                if rest.starts_with(b"true") {
                    self.pos += 4;
                    (Token::Bool(true), start)
                } else if rest.starts_with(b"false") {
                    self.pos += 5;
                    (Token::Bool(false), start)
                } else if rest.starts_with(b"null") {
                    self.pos += 4;
                    (Token::Null, start)
                } else if self.cfg.decode_invalid_numbers && self.is_invalid_number() {
                    self.number_token()
                } else {
                    (Token::Error("invalid token"), start)
                }
            }
            _ => (Token::Error("invalid token"), start),
        }
    }

    /// Numbers strict JSON forbids but `strtod` takes: a leading `+`, leading zeros,
    /// hexadecimal, `inf` and `nan`.
    fn is_invalid_number(&self) -> bool {
        let mut p = self.pos;
        match self.byte(p) {
            b'+' => return true,
            b'-' => p += 1,
            _ => {}
        }
        let c = self.byte(p);
        if c == b'0' {
            let next = self.byte(p + 1);
            return (next | 0x20) == b'x' || next.is_ascii_digit();
        }
        if c <= b'9' {
            return false;
        }
        let rest = self.data.get(p..).unwrap_or_default();
        let prefix = |word: &[u8]| rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(word);
        prefix(b"inf") || prefix(b"nan")
    }

    fn number_token(&mut self) -> (Token, usize) {
        let start = self.pos;
        // Stop at a NUL as the C string would.
        let end = self.data[start..]
            .iter()
            .position(|&b| b == 0)
            .map_or(self.data.len(), |n| start + n);
        let (value, used) = strtod(&self.data[start..end]);
        if used == 0 {
            return (Token::Error("invalid number"), start);
        }
        self.pos += used;
        (Token::Num(value), start)
    }

    fn string_token(&mut self) -> (Token, usize) {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let c = self.byte(self.pos);
            match c {
                b'"' => break,
                0 => return (Token::Error("unexpected end of string"), self.pos),
                b'\\' => {
                    let translated = match self.byte(self.pos + 1) {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b't' => b'\t',
                        b'n' => b'\n',
                        b'f' => 0x0c,
                        b'r' => b'\r',
                        b'u' => {
                            match self.unicode_escape() {
                                Some((code, len)) => {
                                    let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                                    let mut buf = [0u8; 4];
                                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                                    self.pos += len;
                                }
                                None => {
                                    return (Token::Error("invalid unicode escape code"), self.pos)
                                }
                            }
                            continue;
                        }
                        _ => return (Token::Error("invalid escape code"), self.pos),
                    };
                    out.push(translated);
                    self.pos += 2;
                }
                _ => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        let _ = start;
        (Token::Str(out), start)
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let mut v = 0;
        for i in 0..4 {
            let d = (self.byte(at + i) as char).to_digit(16)?;
            v = (v << 4) | d;
        }
        Some(v)
    }

    /// `\uXXXX` (or a surrogate pair of them) at `pos`: the code point and the escape length.
    fn unicode_escape(&self) -> Option<(u32, usize)> {
        let high = self.hex4(self.pos + 2)?;
        if high & 0xF800 != 0xD800 {
            return Some((high, 6));
        }
        if high & 0x400 != 0 {
            return None;
        }
        if self.byte(self.pos + 6) != b'\\' || self.byte(self.pos + 7) != b'u' {
            return None;
        }
        let low = self.hex4(self.pos + 8)?;
        if low & 0xFC00 != 0xDC00 {
            return None;
        }
        Some(((((high & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000, 12))
    }
}
