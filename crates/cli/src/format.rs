//! Rendering replies the way redis-cli prints them.
//!
//! * [`tty`]: the human format used on a terminal (`(integer) 1`, `"quoted"` strings,
//!   numbered nested arrays, `1# key => value` maps, `1~` sets).
//! * [`raw`]: `--raw` and the default when stdout is not a terminal: bare values, array
//!   items separated by the `-d` delimiter.
//! * [`csv`] and [`json`]: `--csv` and `--json`.
//!
//! Attributes (RESP3 `|`) are skipped and the value they annotate is shown. Big numbers,
//! which redis-cli 7.0 cannot print at all, are shown as `(big number) <digits>`.

use kiln_resp::Value;

/// The output format selected by the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Human readable (the default on a terminal).
    Standard,
    /// `--raw`.
    Raw,
    /// `--csv`.
    Csv,
    /// `--json`.
    Json,
}

/// Appends `s` quoted and escaped like Redis's `sdscatrepr`: printable ASCII as is, `\n`
/// `\r` `\t` `\a` `\b` `\\` `\"` escaped, everything else as `\xHH`.
pub fn repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(c),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[(c >> 4) as usize],
                    HEX[(c & 15) as usize],
                ]);
            }
        }
    }
    out.push(b'"');
}

/// [`repr`] into a new `String` (the result is always ASCII).
pub fn repr_string(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    repr(&mut out, s);
    String::from_utf8_lossy(&out).into_owned()
}

/// Strips attributes: the value a reply really carries.
pub fn unwrap_attr(v: &Value) -> &Value {
    match v {
        Value::Attribute(_, inner) => unwrap_attr(inner),
        other => other,
    }
}

/// Whether a reply is an error (`-ERR ...` or a RESP3 blob error).
pub fn is_error(v: &Value) -> bool {
    matches!(unwrap_attr(v), Value::Error(_) | Value::BlobError(_))
}

/// The text of an error reply, if `v` is one.
pub fn error_text(v: &Value) -> Option<&[u8]> {
    match unwrap_attr(v) {
        Value::Error(e) | Value::BlobError(e) => Some(e),
        _ => None,
    }
}

/// The elements of an aggregate, flattened (a map gives key, value, key, value...).
fn elements(v: &Value) -> Option<Vec<&Value>> {
    match v {
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            Some(items.iter().collect())
        }
        Value::Map(pairs) => Some(pairs.iter().flat_map(|(k, v)| [k, v]).collect()),
        _ => None,
    }
}

/// Whether [`tty`] renders `v` on more than one line (a map value that does starts on a
/// new line after `=>`).
fn multiline(v: &Value) -> bool {
    match unwrap_attr(v) {
        Value::Array(items) | Value::Set(items) | Value::Push(items) => match items.len() {
            0 => false,
            1 => multiline(&items[0]),
            _ => true,
        },
        Value::Map(pairs) => match pairs.len() {
            0 => false,
            1 => multiline(&pairs[0].1),
            _ => true,
        },
        _ => false,
    }
}

/// Appends the human readable rendering of `v`; nested lines start with `prefix`.
pub fn tty(out: &mut Vec<u8>, v: &Value, prefix: &[u8]) {
    let v = unwrap_attr(v);
    match v {
        Value::Error(e) | Value::BlobError(e) => {
            out.extend_from_slice(b"(error) ");
            out.extend_from_slice(e);
            out.push(b'\n');
        }
        Value::Simple(s) => {
            out.extend_from_slice(s);
            out.push(b'\n');
        }
        Value::Int(n) => {
            out.extend_from_slice(b"(integer) ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.push(b'\n');
        }
        Value::Double(d) => {
            out.extend_from_slice(b"(double) ");
            out.extend_from_slice(d);
            out.push(b'\n');
        }
        Value::BigNumber(d) => {
            out.extend_from_slice(b"(big number) ");
            out.extend_from_slice(d);
            out.push(b'\n');
        }
        Value::Bulk(s) => {
            repr(out, s);
            out.push(b'\n');
        }
        Value::Verbatim(_, s) => {
            out.extend_from_slice(s);
            out.push(b'\n');
        }
        Value::Nil | Value::NilArray => out.extend_from_slice(b"(nil)\n"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"(true)\n" } else { b"(false)\n" }),
        Value::Array(_) | Value::Set(_) | Value::Push(_) | Value::Map(_) => {
            tty_aggregate(out, v, prefix)
        }
        Value::Attribute(..) => unreachable!("attributes are unwrapped above"),
    }
}

fn tty_aggregate(out: &mut Vec<u8>, v: &Value, prefix: &[u8]) {
    let is_map = matches!(v, Value::Map(_));
    let items = elements(v).unwrap_or_default();
    if items.is_empty() {
        out.extend_from_slice(match v {
            Value::Map(_) => b"(empty hash)\n".as_slice(),
            Value::Set(_) => b"(empty set)\n",
            Value::Push(_) => b"(empty push)\n",
            _ => b"(empty array)\n",
        });
        return;
    }
    let count = if is_map { items.len() / 2 } else { items.len() };
    let width = count.to_string().len();
    // Children are indented past the widest index and its separator.
    let mut child_prefix = prefix.to_vec();
    child_prefix.resize(prefix.len() + width + 2, b' ');
    let sep = match v {
        Value::Set(_) => b'~',
        Value::Map(_) => b'#',
        _ => b')',
    };
    let step = if is_map { 2 } else { 1 };
    for (n, chunk) in items.chunks(step).enumerate() {
        // The first line continues whatever the caller already printed.
        if n > 0 {
            out.extend_from_slice(prefix);
        }
        out.extend_from_slice(format!("{:>width$}", n + 1).as_bytes());
        out.push(sep);
        out.push(b' ');
        tty(out, chunk[0], &child_prefix);
        if is_map {
            out.pop(); // the key's newline
            out.extend_from_slice(b" => ");
            if multiline(chunk[1]) {
                out.push(b'\n');
                out.extend_from_slice(&child_prefix);
            }
            tty(out, chunk[1], &child_prefix);
        }
    }
}

/// Appends the `--raw` rendering of `v`; `delim` separates aggregate items (`-d`).
pub fn raw(out: &mut Vec<u8>, v: &Value, delim: &[u8]) {
    match unwrap_attr(v) {
        Value::Nil | Value::NilArray => {}
        Value::Error(e) | Value::BlobError(e) => {
            out.extend_from_slice(e);
            out.push(b'\n');
        }
        Value::Simple(s) | Value::Bulk(s) | Value::Verbatim(_, s) => out.extend_from_slice(s),
        Value::Double(s) | Value::BigNumber(s) => out.extend_from_slice(s),
        Value::Bool(b) => out.extend_from_slice(if *b { b"(true)" } else { b"(false)" }),
        Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(delim);
                }
                raw(out, item, delim);
            }
        }
        Value::Map(pairs) => {
            for (i, (k, val)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(delim);
                }
                raw(out, k, delim);
                out.push(b' ');
                raw(out, val, delim);
            }
        }
        Value::Attribute(..) => unreachable!("attributes are unwrapped above"),
    }
}

/// Appends the `--csv` rendering of `v` (aggregates, maps included, are flattened).
pub fn csv(out: &mut Vec<u8>, v: &Value) {
    let v = unwrap_attr(v);
    match v {
        Value::Error(e) | Value::BlobError(e) => {
            out.extend_from_slice(b"ERROR,");
            repr(out, e);
        }
        Value::Simple(s) | Value::Bulk(s) | Value::Verbatim(_, s) => repr(out, s),
        Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Double(s) | Value::BigNumber(s) => out.extend_from_slice(s),
        Value::Nil | Value::NilArray => out.extend_from_slice(b"NULL"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Array(_) | Value::Set(_) | Value::Push(_) | Value::Map(_) => {
            for (i, item) in elements(v).unwrap_or_default().into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                csv(out, item);
            }
        }
        Value::Attribute(..) => unreachable!("attributes are unwrapped above"),
    }
}

/// Appends `s` as a JSON string. Like redis-cli, bytes from 0x7f up are copied as they are
/// (valid UTF-8 stays readable); control characters are escaped. With `ascii`
/// (`--quoted-json`) they are escaped too, as `\u00XX`.
pub fn json_string(out: &mut Vec<u8>, s: &[u8], ascii: bool) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            0x7f..=0xff if ascii => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

/// Appends the `--json` rendering of `v` (`ascii`: `--quoted-json`).
pub fn json(out: &mut Vec<u8>, v: &Value, ascii: bool) {
    match unwrap_attr(v) {
        Value::Error(e) | Value::BlobError(e) => {
            out.extend_from_slice(b"error:");
            json_string(out, e, ascii);
        }
        Value::Simple(s) | Value::Bulk(s) | Value::Verbatim(_, s) => json_string(out, s, ascii),
        Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Double(s) | Value::BigNumber(s) => out.extend_from_slice(s),
        Value::Nil | Value::NilArray => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json(out, item, ascii);
            }
            out.push(b']');
        }
        Value::Map(pairs) => {
            out.push(b'{');
            for (i, (k, val)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                // JSON keys must be strings: other key types are rendered, then quoted.
                let start = out.len();
                json(out, k, ascii);
                if out.get(start) != Some(&b'"') && !is_error(k) {
                    out.insert(start, b'"');
                    out.push(b'"');
                }
                out.push(b':');
                json(out, val, ascii);
            }
            out.push(b'}');
        }
        Value::Attribute(..) => unreachable!("attributes are unwrapped above"),
    }
}

/// Settings that shape a rendered reply.
#[derive(Clone, Debug)]
pub struct Style {
    /// Selected format.
    pub output: Output,
    /// `-d`: between the items of an aggregate in raw mode.
    pub mb_delim: Vec<u8>,
    /// `-D`: after each reply in raw mode.
    pub cmd_delim: Vec<u8>,
    /// `--quoted-json`: ASCII-only JSON strings.
    pub ascii_json: bool,
}

impl Style {
    /// Renders one complete reply. `verbatim` is set for commands whose text is meant to be
    /// read as is (INFO, CLIENT LIST...): then it is written raw whatever the format.
    pub fn reply(&self, out: &mut Vec<u8>, v: &Value, verbatim: bool) {
        if verbatim {
            raw(out, v, &self.mb_delim);
            return;
        }
        match self.output {
            Output::Standard => tty(out, v, b""),
            Output::Raw => {
                raw(out, v, &self.mb_delim);
                out.extend_from_slice(&self.cmd_delim);
            }
            Output::Csv => {
                csv(out, v);
                out.push(b'\n');
            }
            Output::Json => {
                json(out, v, self.ascii_json);
                out.push(b'\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    fn render(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn repr_escapes_like_sdscatrepr() {
        assert_eq!(
            repr_string(b"a\x00\"\\\n\r\t\x07\x08 \x7f\xff~"),
            r#""a\x00\"\\\n\r\t\a\b \x7f\xff~""#
        );
    }

    #[test]
    fn nested_arrays_are_numbered_and_indented() {
        let v = Value::Array(vec![
            Value::Int(1),
            Value::Array(vec![
                Value::Int(2),
                Value::Array(vec![Value::Int(3), b("x")]),
                Value::Array(vec![]),
            ]),
        ]);
        assert_eq!(
            render(|o| tty(o, &v, b"")),
            "1) (integer) 1\n2) 1) (integer) 2\n   2) 1) (integer) 3\n      2) \"x\"\n   3) (empty array)\n"
        );
    }

    #[test]
    fn indexes_are_right_aligned_to_the_widest() {
        let v = Value::Array((0..10).map(Value::Int).collect());
        let s = render(|o| tty(o, &v, b""));
        assert!(s.starts_with(" 1) (integer) 0\n 2)"));
        assert!(s.ends_with("10) (integer) 9\n"));
    }

    #[test]
    fn maps_put_multiline_values_on_the_next_line() {
        let v = Value::Map(vec![
            (b("a"), Value::Array(vec![Value::Int(1), Value::Int(2)])),
            (b("b"), Value::Array(vec![])),
            (b("c"), Value::Array(vec![Value::Int(7)])),
        ]);
        assert_eq!(
            render(|o| tty(o, &v, b"")),
            "1# \"a\" => \n   1) (integer) 1\n   2) (integer) 2\n2# \"b\" => (empty array)\n3# \"c\" => 1) (integer) 7\n"
        );
    }

    #[test]
    fn raw_csv_and_json_render_every_type() {
        let v = Value::Map(vec![
            (Value::Int(0), Value::Bool(false)),
            (b("k"), Value::Nil),
            (b("d"), Value::Double(b"1.5".to_vec())),
        ]);
        let style = |output| Style {
            output,
            mb_delim: b"\n".to_vec(),
            cmd_delim: b"\n".to_vec(),
            ascii_json: false,
        };
        assert_eq!(
            render(|o| style(Output::Raw).reply(o, &v, false)),
            "0 (false)\nk \nd 1.5\n"
        );
        assert_eq!(
            render(|o| style(Output::Csv).reply(o, &v, false)),
            "0,false,\"k\",NULL,\"d\",1.5\n"
        );
        assert_eq!(
            render(|o| style(Output::Json).reply(o, &v, false)),
            "{\"0\":false,\"k\":null,\"d\":1.5}\n"
        );
        let e = Value::Error(b"ERR x".to_vec());
        assert_eq!(
            render(|o| style(Output::Raw).reply(o, &e, false)),
            "ERR x\n\n"
        );
        assert_eq!(
            render(|o| style(Output::Json).reply(o, &e, false)),
            "error:\"ERR x\"\n"
        );
    }

    #[test]
    fn json_strings_escape_control_characters_only() {
        assert_eq!(
            render(|o| json_string(o, b"a\x00\x07\x08\x0c\n\"\\/\x7f", false)),
            "\"a\\u0000\\u0007\\b\\f\\n\\\"\\\\/\x7f\""
        );
    }
}
