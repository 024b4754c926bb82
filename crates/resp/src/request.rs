//! Server-side request parsing: multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline
//! (`GET k\r\n`) commands.
//!
//! [`parse_request`] is stateless: it looks at the start of a buffer and either reports a
//! complete request (how many bytes it used and where each argument lies), says the request
//! is incomplete, or returns a protocol error. Arguments are reported as byte ranges into the
//! buffer, so parsing allocates nothing beyond the reusable `args` vector, whose growth is
//! bounded by the number of arguments that have actually arrived.

use std::ops::Range;

/// Limits enforced while parsing, mirroring Redis's.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest accepted bulk string (`proto-max-bulk-len`, default 512 MB).
    pub max_bulk_len: usize,
    /// Largest inline request or length line without a newline (Redis: 64 KiB).
    pub max_inline_len: usize,
    /// Largest multibulk count (Redis: `INT_MAX`; unauthenticated clients: 10).
    pub max_multibulk_len: usize,
    /// Set for clients that still have to AUTH: Redis then refuses large frames early.
    pub unauthenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk_len: 512 * 1024 * 1024,
            max_inline_len: 64 * 1024,
            max_multibulk_len: i32::MAX as usize,
            unauthenticated: false,
        }
    }
}

/// Outcome of trying to parse one request at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole request: `consumed` bytes, its arguments are now in `args`
    /// (an empty `args` means an empty line or `*0`, which Redis silently skips).
    Complete { consumed: usize },
    /// More bytes are needed. `hint` is the total buffer size that would complete the
    /// frame if known (lets the caller reserve once for a big bulk string).
    Incomplete { hint: Option<usize> },
}

/// A protocol error: Redis replies `-ERR Protocol error: <msg>` and closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

fn perr(msg: &str) -> ParseError {
    ParseError(msg.to_string())
}

/// Parse one request from the start of `buf`, filling `args` with argument ranges.
pub fn parse_request(
    buf: &[u8],
    args: &mut Vec<Range<usize>>,
    limits: &Limits,
) -> Result<Parsed, ParseError> {
    args.clear();
    if buf.is_empty() {
        return Ok(Parsed::Incomplete { hint: None });
    }
    if buf[0] == b'*' {
        parse_multibulk(buf, args, limits)
    } else {
        parse_inline(buf, args, limits)
    }
}

/// Finds `\r\n` starting at `from`; returns the index of `\r`.
#[inline]
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let rel = memchr::memchr(b'\r', &buf[at..])?;
        let pos = at + rel;
        if pos + 1 >= buf.len() {
            return None;
        }
        if buf[pos + 1] == b'\n' {
            return Some(pos);
        }
        at = pos + 1;
    }
}

/// Parses a signed decimal as Redis's `string2ll` does (no leading `+`, no spaces).
#[inline]
fn parse_len(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    // Like Redis's string2ll: no leading zeros ("01"), no "-0".
    if digits.is_empty() || digits.len() > 19 || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(if neg { -v } else { v })
}

fn parse_multibulk(
    buf: &[u8],
    args: &mut Vec<Range<usize>>,
    limits: &Limits,
) -> Result<Parsed, ParseError> {
    let Some(eol) = find_crlf(buf, 1) else {
        if buf.len() > limits.max_inline_len {
            return Err(perr("too big mbulk count string"));
        }
        return Ok(Parsed::Incomplete { hint: None });
    };
    let count = parse_len(&buf[1..eol])
        .filter(|&n| n <= i64::from(i32::MAX))
        .ok_or_else(|| perr("invalid multibulk length"))?;
    if limits.unauthenticated && count > 10 {
        return Err(perr("unauthenticated multibulk length"));
    }
    if count > limits.max_multibulk_len as i64 {
        return Err(perr("invalid multibulk length"));
    }
    let mut pos = eol + 2;
    if count <= 0 {
        return Ok(Parsed::Complete { consumed: pos });
    }
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(Parsed::Incomplete { hint: None });
        }
        if buf[pos] != b'$' {
            let got = buf[pos] as char;
            return Err(ParseError(format!("expected '$', got '{got}'")));
        }
        let Some(eol) = find_crlf(buf, pos + 1) else {
            if buf.len() - pos > limits.max_inline_len {
                return Err(perr("too big bulk count string"));
            }
            return Ok(Parsed::Incomplete { hint: None });
        };
        let len = parse_len(&buf[pos + 1..eol])
            .filter(|&n| n >= 0 && n as u64 <= limits.max_bulk_len as u64)
            .ok_or_else(|| perr("invalid bulk length"))? as usize;
        if limits.unauthenticated && len > 16384 {
            return Err(perr("unauthenticated bulk length"));
        }
        let start = eol + 2;
        let end = start + len;
        if end + 2 > buf.len() {
            return Ok(Parsed::Incomplete {
                hint: Some(end + 2),
            });
        }
        // Redis does not check the CRLF after a bulk; it skips two bytes. Do the same so
        // byte-compatible clients behave identically.
        args.push(start..end);
        pos = end + 2;
    }
    Ok(Parsed::Complete { consumed: pos })
}

fn parse_inline(
    buf: &[u8],
    args: &mut Vec<Range<usize>>,
    limits: &Limits,
) -> Result<Parsed, ParseError> {
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        if buf.len() > limits.max_inline_len {
            return Err(perr("too big inline request"));
        }
        return Ok(Parsed::Incomplete { hint: None });
    };
    let mut line_end = nl;
    if line_end > 0 && buf[line_end - 1] == b'\r' {
        line_end -= 1;
    }
    split_inline(&buf[..line_end], args).ok_or_else(|| perr("unbalanced quotes in request"))?;
    Ok(Parsed::Complete { consumed: nl + 1 })
}

/// Splits an inline line into arguments like Redis's `sdssplitargs`.
///
/// Only boundaries are found here: a quoted argument is reported with its quotes, and the
/// caller decodes it with [`unquote_inline_arg`] (inline commands are rare, so the copy is
/// kept off the multibulk path).
fn split_inline(line: &[u8], args: &mut Vec<Range<usize>>) -> Option<()> {
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(());
        }
        let start = i;
        match line[i] {
            b'"' => {
                i += 1;
                loop {
                    if i >= n {
                        return None;
                    }
                    if line[i] == b'\\' && i + 1 < n {
                        i += 2;
                        continue;
                    }
                    if line[i] == b'"' {
                        i += 1;
                        if i < n && !line[i].is_ascii_whitespace() {
                            return None;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    if i >= n {
                        return None;
                    }
                    if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                        i += 2;
                        continue;
                    }
                    if line[i] == b'\'' {
                        i += 1;
                        if i < n && !line[i].is_ascii_whitespace() {
                            return None;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            _ => {
                while i < n && !line[i].is_ascii_whitespace() {
                    i += 1;
                }
            }
        }
        args.push(start..i);
    }
}

/// Decodes one inline argument as `sdssplitargs` would: strips quotes and resolves escapes
/// (`\n`, `\r`, `\t`, `\b`, `\a`, `\\`, `\"`, `\xHH` inside double quotes; `\'` inside single).
/// Returns `None` when the argument is a plain word that can be used as is.
pub fn unquote_inline_arg(arg: &[u8]) -> Option<Vec<u8>> {
    match arg.first() {
        Some(b'"') if arg.len() >= 2 => {
            let body = &arg[1..arg.len() - 1];
            let mut out = Vec::with_capacity(body.len());
            let mut i = 0;
            while i < body.len() {
                let c = body[i];
                if c == b'\\' && i + 1 < body.len() {
                    let e = body[i + 1];
                    if e == b'x'
                        && i + 3 < body.len()
                        && body[i + 2].is_ascii_hexdigit()
                        && body[i + 3].is_ascii_hexdigit()
                    {
                        let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                        out.push(hex(body[i + 2]) * 16 + hex(body[i + 3]));
                        i += 4;
                        continue;
                    }
                    out.push(match e {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                } else {
                    out.push(c);
                    i += 1;
                }
            }
            Some(out)
        }
        Some(b'\'') if arg.len() >= 2 => {
            let body = &arg[1..arg.len() - 1];
            let mut out = Vec::with_capacity(body.len());
            let mut i = 0;
            while i < body.len() {
                if body[i] == b'\\' && i + 1 < body.len() && body[i + 1] == b'\'' {
                    out.push(b'\'');
                    i += 2;
                } else {
                    out.push(body[i]);
                    i += 1;
                }
            }
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(buf: &[u8]) -> Result<(Parsed, Vec<Vec<u8>>), ParseError> {
        let mut args = Vec::new();
        let p = parse_request(buf, &mut args, &Limits::default())?;
        Ok((p, args.iter().map(|r| buf[r.clone()].to_vec()).collect()))
    }

    #[test]
    fn parses_a_multibulk_request() {
        let (p, a) = parse(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nextra").unwrap();
        assert_eq!(p, Parsed::Complete { consumed: 20 });
        assert_eq!(a, vec![b"GET".to_vec(), b"k".to_vec()]);
    }

    #[test]
    fn incomplete_until_the_last_byte() {
        let full = b"*2\r\n$3\r\nSET\r\n$5\r\nhello\r\n";
        for cut in 0..full.len() {
            assert!(matches!(
                parse(&full[..cut]).unwrap().0,
                Parsed::Incomplete { .. }
            ));
        }
        assert!(matches!(parse(full).unwrap().0, Parsed::Complete { .. }));
    }

    #[test]
    fn declared_length_hints_without_allocating() {
        let mut args = Vec::new();
        let p = parse_request(b"*1\r\n$100000000\r\nab", &mut args, &Limits::default()).unwrap();
        assert_eq!(
            p,
            Parsed::Incomplete {
                hint: Some(100_000_000 + 16 + 2)
            }
        );
        assert!(args.capacity() < 16);
    }

    #[test]
    fn protocol_errors_match_redis() {
        assert_eq!(
            parse(b"*x\r\n").unwrap_err().to_string(),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            parse(b"*1\r\n+x\r\n").unwrap_err().to_string(),
            "Protocol error: expected '$', got '+'"
        );
        assert_eq!(
            parse(b"*1\r\n$-5\r\n").unwrap_err().to_string(),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            parse(b"*1\r\n$600000000\r\n").unwrap_err().to_string(),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            parse(b"\"abc\r\n").unwrap_err().to_string(),
            "Protocol error: unbalanced quotes in request"
        );
        let big = vec![b'a'; 70 * 1024];
        assert_eq!(
            parse(&big).unwrap_err().to_string(),
            "Protocol error: too big inline request"
        );
    }

    #[test]
    fn inline_commands_split_on_whitespace_and_quotes() {
        let (p, a) = parse(b"set  \"a b\" 'c d'\r\n").unwrap();
        assert_eq!(p, Parsed::Complete { consumed: 18 });
        assert_eq!(
            a,
            vec![b"set".to_vec(), b"\"a b\"".to_vec(), b"'c d'".to_vec()]
        );
        assert_eq!(unquote_inline_arg(b"\"a\\x41\\n\"").unwrap(), b"aA\n");
        assert_eq!(unquote_inline_arg(b"'it\\'s'").unwrap(), b"it's");
        assert_eq!(unquote_inline_arg(b"plain"), None);
        let (_, a) = parse(b"\r\n").unwrap();
        assert!(a.is_empty());
    }

    #[test]
    fn empty_and_null_multibulk_are_skipped() {
        assert_eq!(
            parse(b"*0\r\n").unwrap().0,
            Parsed::Complete { consumed: 4 }
        );
        assert_eq!(
            parse(b"*-1\r\n").unwrap().0,
            Parsed::Complete { consumed: 5 }
        );
    }

    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    proptest! {
        /// A pipeline of requests split into arbitrary chunks parses to the same requests,
        /// the way a connection accumulates reads.
        #[test]
        fn pipeline_split_at_random_points(
            reqs in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6), 1..8),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let wire: Vec<u8> = reqs.iter().flat_map(|r| encode(r)).collect();
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            points.push(wire.len());
            points.sort_unstable();
            let mut buf = Vec::new();
            let mut fed = 0;
            let mut got = Vec::new();
            let mut args = Vec::new();
            for p in points {
                buf.extend_from_slice(&wire[fed..p]);
                fed = p;
                while let Parsed::Complete { consumed } =
                    parse_request(&buf, &mut args, &Limits::default()).unwrap()
                {
                    got.push(args.iter().map(|r| buf[r.clone()].to_vec()).collect::<Vec<_>>());
                    buf.drain(..consumed);
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, reqs);
        }

        #[test]
        fn never_panics_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut args = Vec::new();
            let _ = parse_request(&data, &mut args, &Limits::default());
        }
    }
}
