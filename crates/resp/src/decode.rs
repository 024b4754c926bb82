//! A complete RESP2/RESP3 decoder, for the client side of a connection: kiln-cli, the
//! replica end of a replication link, and tests that compare replies.
//!
//! Like the server-side parser it never trusts declared lengths for allocation: a frame is
//! only materialised once all of its bytes are in the buffer, and aggregate pre-allocation
//! is capped. Nesting is limited to [`MAX_DEPTH`].

/// Deepest accepted nesting of aggregates.
pub const MAX_DEPTH: usize = 128;

/// A decoded RESP value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `+OK`
    Simple(Vec<u8>),
    /// `-ERR ...`
    Error(Vec<u8>),
    /// `:1`
    Int(i64),
    /// `$3\r\nabc`
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` (RESP2) or `_` (RESP3)
    Nil,
    /// `*-1` in RESP2 (kept apart from `$-1` so byte-exact comparisons stay possible)
    NilArray,
    /// `*n`
    Array(Vec<Value>),
    /// `%n`
    Map(Vec<(Value, Value)>),
    /// `~n`
    Set(Vec<Value>),
    /// `>n`
    Push(Vec<Value>),
    /// `|n` attributes followed by the value they annotate.
    Attribute(Vec<(Value, Value)>, Box<Value>),
    /// `,1.5` (kept as text so formatting round-trips exactly)
    Double(Vec<u8>),
    /// `#t` / `#f`
    Bool(bool),
    /// `(123...`
    BigNumber(Vec<u8>),
    /// `=len\r\nfmt:text`: format and text
    Verbatim([u8; 3], Vec<u8>),
    /// `!len\r\n...`
    BlobError(Vec<u8>),
}

/// Why a buffer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not enough bytes yet.
    Incomplete,
    /// The bytes are not RESP.
    Invalid(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Incomplete => f.write_str("incomplete frame"),
            Self::Invalid(m) => write!(f, "invalid frame: {m}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one value from the start of `buf`, returning it and the bytes it used.
pub fn decode(buf: &[u8]) -> Result<(Value, usize), DecodeError> {
    let mut pos = 0;
    let v = value(buf, &mut pos, 0)?;
    Ok((v, pos))
}

fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], DecodeError> {
    let start = *pos;
    let rel = memchr::memchr(b'\n', &buf[start..]).ok_or(DecodeError::Incomplete)?;
    let end = start + rel;
    if end == start || buf[end - 1] != b'\r' {
        return Err(DecodeError::Invalid("line not terminated by CRLF".into()));
    }
    *pos = end + 1;
    Ok(&buf[start..end - 1])
}

fn int(s: &[u8]) -> Result<i64, DecodeError> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| {
            DecodeError::Invalid(format!("bad integer {:?}", String::from_utf8_lossy(s)))
        })
}

fn blob(buf: &[u8], pos: &mut usize, len: i64) -> Result<Vec<u8>, DecodeError> {
    let len = usize::try_from(len).map_err(|_| DecodeError::Invalid("negative length".into()))?;
    let end = pos.checked_add(len).ok_or(DecodeError::Incomplete)?;
    if end + 2 > buf.len() {
        return Err(DecodeError::Incomplete);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(DecodeError::Invalid("bulk not terminated by CRLF".into()));
    }
    let v = buf[*pos..end].to_vec();
    *pos = end + 2;
    Ok(v)
}

fn items(buf: &[u8], pos: &mut usize, n: i64, depth: usize) -> Result<Vec<Value>, DecodeError> {
    // Cap the pre-allocation: a hostile `*1000000000` must not reserve memory.
    let mut v = Vec::with_capacity((n.max(0) as usize).min(1024));
    for _ in 0..n {
        v.push(value(buf, pos, depth + 1)?);
    }
    Ok(v)
}

fn pairs(
    buf: &[u8],
    pos: &mut usize,
    n: i64,
    depth: usize,
) -> Result<Vec<(Value, Value)>, DecodeError> {
    let mut v = Vec::with_capacity((n.max(0) as usize).min(1024));
    for _ in 0..n {
        let k = value(buf, pos, depth + 1)?;
        let val = value(buf, pos, depth + 1)?;
        v.push((k, val));
    }
    Ok(v)
}

fn value(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::Invalid("nesting too deep".into()));
    }
    let Some(&kind) = buf.get(*pos) else {
        return Err(DecodeError::Incomplete);
    };
    *pos += 1;
    let l = line(buf, pos)?;
    Ok(match kind {
        b'+' => Value::Simple(l.to_vec()),
        b'-' => Value::Error(l.to_vec()),
        b':' => Value::Int(int(l)?),
        b'$' => match int(l)? {
            -1 => Value::Nil,
            n => Value::Bulk(blob(buf, pos, n)?),
        },
        b'!' => Value::BlobError(blob(buf, pos, int(l)?)?),
        b'=' => {
            let b = blob(buf, pos, int(l)?)?;
            if b.len() < 4 || b[3] != b':' {
                return Err(DecodeError::Invalid("bad verbatim string".into()));
            }
            Value::Verbatim([b[0], b[1], b[2]], b[4..].to_vec())
        }
        b'*' => match int(l)? {
            -1 => Value::NilArray,
            n => Value::Array(items(buf, pos, n, depth)?),
        },
        b'~' => Value::Set(items(buf, pos, int(l)?, depth)?),
        b'>' => Value::Push(items(buf, pos, int(l)?, depth)?),
        b'%' => Value::Map(pairs(buf, pos, int(l)?, depth)?),
        b'|' => {
            let attrs = pairs(buf, pos, int(l)?, depth)?;
            Value::Attribute(attrs, Box::new(value(buf, pos, depth + 1)?))
        }
        b'_' => Value::Nil,
        b',' => Value::Double(l.to_vec()),
        b'#' => match l {
            b"t" => Value::Bool(true),
            b"f" => Value::Bool(false),
            _ => return Err(DecodeError::Invalid("bad boolean".into())),
        },
        b'(' => Value::BigNumber(l.to_vec()),
        other => {
            return Err(DecodeError::Invalid(format!(
                "unknown type byte {:?}",
                other as char
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_resp3_types() {
        let wire = b"%2\r\n+a\r\n,1.5\r\n$1\r\nb\r\n~2\r\n#t\r\n_\r\n";
        let (v, n) = decode(wire).unwrap();
        assert_eq!(n, wire.len());
        assert_eq!(
            v,
            Value::Map(vec![
                (Value::Simple(b"a".to_vec()), Value::Double(b"1.5".to_vec())),
                (
                    Value::Bulk(b"b".to_vec()),
                    Value::Set(vec![Value::Bool(true), Value::Nil])
                ),
            ])
        );
    }

    #[test]
    fn incomplete_and_hostile_input() {
        assert_eq!(decode(b"$5\r\nab").unwrap_err(), DecodeError::Incomplete);
        assert_eq!(
            decode(b"*1000000000\r\n").unwrap_err(),
            DecodeError::Incomplete
        );
        let deep = "*1\r\n".repeat(1000);
        assert!(matches!(
            decode(deep.as_bytes()),
            Err(DecodeError::Invalid(_))
        ));
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&data);
        }
    }
}
