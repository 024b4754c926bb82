//! The reply writer: one API for handlers, RESP2 or RESP3 on the wire.
//!
//! Handlers append replies straight into the connection's output buffer (no intermediate
//! `Reply` tree, no per-reply allocation). Where the two protocol versions differ (nulls,
//! maps, sets, doubles, booleans, push messages) this is the only place that knows.

use kiln_resp::encode;

/// Appends replies to an output buffer in the client's protocol version.
pub struct Out<'a> {
    pub buf: &'a mut Vec<u8>,
    pub resp3: bool,
}

impl<'a> Out<'a> {
    pub fn new(buf: &'a mut Vec<u8>, resp3: bool) -> Self {
        Self { buf, resp3 }
    }

    #[inline]
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// `+<text>`
    #[inline]
    pub fn simple(&mut self, text: &str) {
        encode::simple(self.buf, text.as_bytes());
    }

    /// `-<text>` (CR/LF are replaced by spaces).
    pub fn error(&mut self, text: &str) {
        encode::error(self.buf, text.as_bytes());
    }

    #[inline]
    pub fn bulk(&mut self, data: &[u8]) {
        encode::bulk(self.buf, data);
    }

    #[inline]
    pub fn int(&mut self, n: i64) {
        encode::integer(self.buf, n);
    }

    /// A null bulk string: `$-1` (RESP2) or `_` (RESP3).
    #[inline]
    pub fn null(&mut self) {
        self.buf
            .extend_from_slice(if self.resp3 { b"_\r\n" } else { b"$-1\r\n" });
    }

    /// A null array: `*-1` (RESP2) or `_` (RESP3).
    #[inline]
    pub fn null_array(&mut self) {
        self.buf
            .extend_from_slice(if self.resp3 { b"_\r\n" } else { b"*-1\r\n" });
    }

    #[inline]
    pub fn array(&mut self, n: usize) {
        encode::header(self.buf, b'*', n as i64);
    }

    /// A map of `n` pairs: `%n` (RESP3) or a flat array of `2n` (RESP2).
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            encode::header(self.buf, b'%', n as i64);
        } else {
            encode::header(self.buf, b'*', 2 * n as i64);
        }
    }

    /// A set: `~n` (RESP3) or an array (RESP2).
    pub fn set(&mut self, n: usize) {
        encode::header(self.buf, if self.resp3 { b'~' } else { b'*' }, n as i64);
    }

    /// A push message header: `>n` (RESP3) or an array (RESP2).
    pub fn push(&mut self, n: usize) {
        encode::header(self.buf, if self.resp3 { b'>' } else { b'*' }, n as i64);
    }

    /// A boolean: `#t`/`#f` (RESP3) or `:1`/`:0` (RESP2).
    pub fn boolean(&mut self, b: bool) {
        if self.resp3 {
            self.buf
                .extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(i64::from(b));
        }
    }

    /// A double already formatted the way Redis formats it: `,<text>` (RESP3) or a bulk
    /// string (RESP2).
    pub fn double_text(&mut self, text: &[u8]) {
        if self.resp3 {
            self.buf.push(b',');
            self.buf.extend_from_slice(text);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    /// Text for humans (INFO, CLIENT LIST): verbatim `txt` (RESP3) or a bulk string (RESP2).
    pub fn verbatim(&mut self, text: &[u8]) {
        if self.resp3 {
            encode::verbatim(self.buf, b"txt", text);
        } else {
            self.bulk(text);
        }
    }

    /// An array of bulk strings.
    pub fn bulks<I, B>(&mut self, items: I)
    where
        I: ExactSizeIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        self.array(items.len());
        for b in items {
            self.bulk(b.as_ref());
        }
    }

    /// Raw, already encoded bytes.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp2_and_resp3_shapes() {
        let mut b = Vec::new();
        let mut o = Out::new(&mut b, false);
        o.null();
        o.map(1);
        o.boolean(true);
        assert_eq!(b, b"$-1\r\n*2\r\n:1\r\n");
        let mut b = Vec::new();
        let mut o = Out::new(&mut b, true);
        o.null();
        o.map(1);
        o.boolean(true);
        o.double_text(b"1.5");
        assert_eq!(b, b"_\r\n%1\r\n#t\r\n,1.5\r\n");
    }
}
