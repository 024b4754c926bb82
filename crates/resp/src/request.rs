//! Server-side request parsing: multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline
//! (`GET k\r\n`) commands.
//!
//! [`RequestParser`] is resumable: a connection keeps one, and each call looks only at the
//! bytes that arrived since the last call. A partially received multibulk keeps its place
//! (the arguments parsed so far, as ranges; the pending bulk's declared length; how far a
//! search for a line end already got), so a 10 MB request trickled in over a thousand reads
//! costs one pass over its bytes, not a thousand. Arguments are byte ranges into the
//! caller's buffer, relative to the request's first byte: nothing is copied, and nothing is
//! allocated beyond the argument vector, which grows with the arguments that actually
//! arrived (a declared count preallocates at most [`PREALLOC_ARGS`] slots, as Redis caps it).
//!
//! [`parse_request`] is the stateless form (one call on a buffer that starts a request),
//! for the places that hold a whole request already (config lines, scripts, manifests).

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

/// Argument slots a declared multibulk count reserves up front, at most (Redis caps its
/// first `argv` allocation the same way): a `*2147483647` header alone costs nothing.
pub const PREALLOC_ARGS: usize = 1024;

/// Where a partly received request stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// No byte of the next request has been looked at.
    #[default]
    Start,
    /// An inline request whose newline has not arrived.
    Inline,
    /// A multibulk whose `*<count>` line has not arrived.
    Count,
    /// A multibulk with `left` arguments still to come; the next starts at `pos`.
    Args { left: u32 },
    /// Inside a multibulk: the bulk at `pos` was declared `len` bytes long, and its bytes
    /// (plus the two after them) have not all arrived.
    Bulk { left: u32, len: usize },
}

/// A resumable request parser: one per connection.
///
/// Call [`RequestParser::parse`] with a buffer that starts at the first byte of the current
/// request and holds every byte received for it so far (it may hold more requests after
/// it). On [`Parsed::Complete`] the request's arguments are in [`RequestParser::args`]
/// until the next call, which must then start at the following request.
#[derive(Debug, Default)]
pub struct RequestParser {
    args: Vec<Range<usize>>,
    state: State,
    /// Offset of the next unparsed byte of the current request (in multibulk states).
    pos: usize,
    /// Offset up to which a search for the current line's end found nothing.
    scanned: usize,
}

impl RequestParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The arguments of the last complete request, as ranges into the buffer it was parsed
    /// from (relative to that request's first byte).
    pub fn args(&self) -> &[Range<usize>] {
        &self.args
    }

    /// Forgets a partly parsed request (the connection dropped its bytes).
    pub fn reset(&mut self) {
        self.state = State::Start;
        self.pos = 0;
        self.scanned = 0;
    }

    /// Continues parsing the request at the start of `buf`. See the type's documentation.
    pub fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<Parsed, ParseError> {
        let r = self.step(buf, limits);
        if !matches!(r, Ok(Parsed::Incomplete { .. })) {
            self.reset();
        }
        r
    }

    fn step(&mut self, buf: &[u8], limits: &Limits) -> Result<Parsed, ParseError> {
        if self.state == State::Start {
            self.args.clear();
            match buf.first() {
                None => return Ok(Parsed::Incomplete { hint: None }),
                Some(b'*') => {
                    self.state = State::Count;
                    self.scanned = 1;
                }
                Some(_) => self.state = State::Inline,
            }
        }
        let mut left = match self.state {
            State::Start => unreachable!("handled above"),
            State::Inline => return self.inline(buf, limits),
            State::Count => {
                let Some(eol) = self.line_end(buf, 1) else {
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
                if count <= 0 {
                    return Ok(Parsed::Complete { consumed: eol + 2 });
                }
                self.args.reserve((count as usize).min(PREALLOC_ARGS));
                self.pos = eol + 2;
                self.scanned = self.pos;
                count as u32
            }
            State::Args { left } => left,
            State::Bulk { left, len } => {
                if let Some(p) = self.bulk_end(buf, left, len) {
                    return Ok(p);
                }
                left - 1
            }
        };
        while left > 0 {
            let pos = self.pos;
            self.state = State::Args { left };
            let Some(&first) = buf.get(pos) else {
                return Ok(Parsed::Incomplete { hint: None });
            };
            if first != b'$' {
                let got = first as char;
                return Err(ParseError(format!("expected '$', got '{got}'")));
            }
            let Some(eol) = self.line_end(buf, pos + 1) else {
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
            self.pos = eol + 2;
            if let Some(p) = self.bulk_end(buf, left, len) {
                return Ok(p);
            }
            left -= 1;
        }
        Ok(Parsed::Complete { consumed: self.pos })
    }

    /// Takes the bulk of `len` bytes at `pos` if all of it (and the two bytes after it) has
    /// arrived; otherwise records the wait and returns the `Incomplete` to report.
    #[inline]
    fn bulk_end(&mut self, buf: &[u8], left: u32, len: usize) -> Option<Parsed> {
        let start = self.pos;
        let end = start + len;
        if end + 2 > buf.len() {
            self.state = State::Bulk { left, len };
            return Some(Parsed::Incomplete {
                hint: Some(end + 2),
            });
        }
        // Redis does not check the CRLF after a bulk; it skips two bytes. Do the same so
        // byte-compatible clients behave identically.
        self.args.push(start..end);
        self.pos = end + 2;
        self.scanned = self.pos;
        None
    }

    /// Finds the `\r\n` ending the line whose content starts at `from`, resuming where an
    /// earlier search on the same line stopped.
    #[inline]
    fn line_end(&mut self, buf: &[u8], from: usize) -> Option<usize> {
        let at = self.scanned.max(from);
        let found = find_crlf(buf, at);
        if found.is_none() {
            // A `\r` in the last byte may yet be followed by `\n`: look at it again.
            let again = usize::from(buf.last() == Some(&b'\r'));
            self.scanned = (buf.len() - again).max(at);
        }
        found
    }

    fn inline(&mut self, buf: &[u8], limits: &Limits) -> Result<Parsed, ParseError> {
        let from = self.scanned.min(buf.len());
        let Some(nl) = memchr::memchr(b'\n', &buf[from..]).map(|i| from + i) else {
            self.scanned = buf.len();
            if buf.len() > limits.max_inline_len {
                return Err(perr("too big inline request"));
            }
            return Ok(Parsed::Incomplete { hint: None });
        };
        let mut line_end = nl;
        if line_end > 0 && buf[line_end - 1] == b'\r' {
            line_end -= 1;
        }
        split_inline(&buf[..line_end], &mut self.args)
            .ok_or_else(|| perr("unbalanced quotes in request"))?;
        Ok(Parsed::Complete { consumed: nl + 1 })
    }
}

/// Parses one request from the start of `buf` (a fresh parse, no state kept), filling
/// `args` with argument ranges.
pub fn parse_request(
    buf: &[u8],
    args: &mut Vec<Range<usize>>,
    limits: &Limits,
) -> Result<Parsed, ParseError> {
    let mut p = RequestParser {
        args: std::mem::take(args),
        ..RequestParser::default()
    };
    let r = p.parse(buf, limits);
    *args = p.args;
    if !matches!(r, Ok(Parsed::Complete { .. })) {
        args.clear();
    }
    r
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

    /// What a connection gets from `wire` arriving in pieces cut at `cuts` (sorted): the
    /// requests, in order, then the protocol error that ended it, if any.
    fn feed(wire: &[u8], cuts: &[usize]) -> (Vec<Vec<Vec<u8>>>, Option<String>) {
        let limits = Limits::default();
        let mut p = RequestParser::new();
        let mut buf = Vec::new();
        let mut fed = 0;
        let mut got = Vec::new();
        for &cut in cuts.iter().chain([&wire.len()]) {
            let cut = cut.clamp(fed, wire.len());
            buf.extend_from_slice(&wire[fed..cut]);
            fed = cut;
            loop {
                match p.parse(&buf, &limits) {
                    Ok(Parsed::Complete { consumed }) => {
                        got.push(p.args().iter().map(|r| buf[r.clone()].to_vec()).collect());
                        buf.drain(..consumed);
                    }
                    Ok(Parsed::Incomplete { .. }) => break,
                    Err(e) => return (got, Some(e.to_string())),
                }
            }
        }
        (got, None)
    }

    /// Valid and broken requests, each well under the 64 KiB line limits.
    const CORPUS: &[&[u8]] = &[
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n",
        b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$10\r\n0123456789\r\nPING\r\n",
        b"set  \"a b\" 'c d'\r\nECHO x\n\r\n*0\r\n*-1\r\n*1\r\n$1\r\nx\r\n",
        b"*1\r\n$4\r\nPING\r\n*x\r\n",
        b"*2\r\n$4\r\nECHO\r\n:1\r\n",
        b"*2\r\n$4\r\nECHO\r\n$-3\r\n",
        b"*1\r\n$600000000\r\n",
        b"*1\r\n$3\r\nabcXY*1\r\n$4\r\nPING\r\n",
        b"*1\r\r\n$1\r\r\nx\r\n",
        b"PING\r\nECHO \"a\r\n",
        b"*3000000000\r\n",
    ];

    #[test]
    fn split_at_every_byte_parses_like_the_whole_buffer() {
        for wire in CORPUS {
            let whole = feed(wire, &[]);
            let bytewise: Vec<usize> = (0..wire.len()).collect();
            assert_eq!(
                feed(wire, &bytewise),
                whole,
                "{:?}",
                String::from_utf8_lossy(wire)
            );
            for cut in 0..=wire.len() {
                assert_eq!(feed(wire, &[cut]), whole, "cut at {cut}");
            }
        }
    }

    #[test]
    fn a_partial_request_keeps_its_arguments_and_pending_bulk() {
        let limits = Limits::default();
        let mut p = RequestParser::new();
        let mut buf = b"*3\r\n$4\r\nSADD\r\n$1\r\ns\r\n$5\r\nab".to_vec();
        assert_eq!(
            p.parse(&buf, &limits),
            Ok(Parsed::Incomplete { hint: Some(32) })
        );
        assert_eq!(p.state, State::Bulk { left: 1, len: 5 });
        assert_eq!(p.args, vec![8..12, 18..19]);
        assert_eq!(p.pos, 25);
        buf.extend_from_slice(b"cde\r\n");
        assert_eq!(
            p.parse(&buf, &limits),
            Ok(Parsed::Complete { consumed: 32 })
        );
        assert_eq!(p.args(), &[8..12, 18..19, 25..30]);
        // The next request starts afresh.
        assert_eq!(
            p.parse(b"PING\r\n", &limits),
            Ok(Parsed::Complete { consumed: 6 })
        );
        assert_eq!(p.args().to_vec(), vec![Range { start: 0, end: 4 }]);
    }

    #[test]
    fn a_line_end_search_resumes_where_it_stopped() {
        let limits = Limits::default();
        let mut p = RequestParser::new();
        let mut buf = b"*1\r\n$12".to_vec();
        assert!(matches!(
            p.parse(&buf, &limits),
            Ok(Parsed::Incomplete { .. })
        ));
        assert_eq!(p.scanned, 7);
        // A `\r` at the very end is looked at again once the next byte arrives.
        buf.extend_from_slice(b"\r");
        assert!(matches!(
            p.parse(&buf, &limits),
            Ok(Parsed::Incomplete { .. })
        ));
        assert_eq!(p.scanned, 7);
        buf.extend_from_slice(b"\nhello world!\r\n");
        assert_eq!(
            p.parse(&buf, &limits),
            Ok(Parsed::Complete { consumed: 23 })
        );
    }

    #[test]
    fn a_huge_declared_count_reserves_a_bounded_argument_vector() {
        let mut p = RequestParser::new();
        let r = p.parse(b"*2147483647\r\n", &Limits::default());
        assert_eq!(r, Ok(Parsed::Incomplete { hint: None }));
        assert!(p.args.capacity() <= PREALLOC_ARGS);
    }

    proptest! {
        /// A pipeline of requests split into arbitrary chunks parses to the same requests,
        /// the way a connection accumulates reads, with the stateless and the resumable
        /// parser alike.
        #[test]
        fn pipeline_split_at_random_points(
            reqs in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6), 1..8),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let wire: Vec<u8> = reqs.iter().flat_map(|r| encode(r)).collect();
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            points.sort_unstable();
            prop_assert_eq!(feed(&wire, &points), (reqs.clone(), None));
            points.push(wire.len());
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

        /// Broken input too: a pipeline with bytes overwritten at random, fed byte by byte
        /// and in random pieces, gives the same requests and the same error as at once.
        #[test]
        fn damaged_pipelines_parse_alike_however_they_arrive(
            reqs in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 1..4), 1..5),
            damage in proptest::collection::vec(
                (any::<prop::sample::Index>(), prop::sample::select(b"*$\r\n-0123x ".to_vec())), 0..4),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let mut wire: Vec<u8> = reqs.iter().flat_map(|r| encode(r)).collect();
            for (at, b) in &damage {
                let i = at.index(wire.len());
                wire[i] = *b;
            }
            let whole = feed(&wire, &[]);
            let bytewise: Vec<usize> = (0..wire.len()).collect();
            prop_assert_eq!(&feed(&wire, &bytewise), &whole);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            points.sort_unstable();
            prop_assert_eq!(&feed(&wire, &points), &whole);
        }

        #[test]
        fn never_panics_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut args = Vec::new();
            let _ = parse_request(&data, &mut args, &Limits::default());
            let bytewise: Vec<usize> = (0..data.len()).collect();
            prop_assert_eq!(feed(&data, &bytewise), feed(&data, &[]));
        }
    }
}
