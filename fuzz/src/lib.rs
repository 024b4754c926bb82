//! Helpers shared by Kiln's fuzz targets: feeding one input in pieces, and writing RESP
//! values back as bytes.

use std::io::Read;

use kiln_resp::Value;

/// Chunk sizes derived from the input itself (FNV-1a hash, then xorshift), so that every
/// input is also tried split at its own arbitrary points, reproducibly.
pub struct Splitter {
    state: u64,
}

impl Splitter {
    pub fn new(data: &[u8]) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Self { state: h | 1 }
    }

    /// The next chunk size: mostly 1 to 16 bytes, sometimes up to 4 KiB.
    pub fn next_size(&mut self) -> usize {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        if x % 8 == 0 {
            1 + (x >> 8) as usize % 4096
        } else {
            1 + (x >> 8) as usize % 16
        }
    }

    /// `data` cut into consecutive pieces.
    pub fn split<'a>(mut self, data: &'a [u8]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = self.next_size().min(rest.len());
            out.push(&rest[..n]);
            rest = &rest[n..];
        }
        out
    }
}

/// A reader that returns its data a few bytes at a time (as a socket or a pipe may).
pub struct Trickle<'a> {
    data: &'a [u8],
    sizes: Splitter,
}

impl<'a> Trickle<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            sizes: Splitter::new(data),
        }
    }
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.sizes.next_size().min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Writes `v` as RESP3 (RESP2's `*-1` for [`Value::NilArray`]): what the decoder must
/// read back as the same value.
pub fn encode_value(out: &mut Vec<u8>, v: &Value) {
    fn line(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
        out.push(kind);
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    fn blob(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
        line(out, kind, body.len().to_string().as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    match v {
        Value::Simple(s) => line(out, b'+', s),
        Value::Error(s) => line(out, b'-', s),
        Value::Int(n) => line(out, b':', n.to_string().as_bytes()),
        Value::Bulk(b) => blob(out, b'$', b),
        Value::Nil => line(out, b'_', b""),
        Value::NilArray => line(out, b'*', b"-1"),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            let kind = match v {
                Value::Array(_) => b'*',
                Value::Set(_) => b'~',
                _ => b'>',
            };
            line(out, kind, items.len().to_string().as_bytes());
            for i in items {
                encode_value(out, i);
            }
        }
        Value::Map(pairs) => {
            line(out, b'%', pairs.len().to_string().as_bytes());
            for (k, v) in pairs {
                encode_value(out, k);
                encode_value(out, v);
            }
        }
        Value::Attribute(pairs, inner) => {
            line(out, b'|', pairs.len().to_string().as_bytes());
            for (k, v) in pairs {
                encode_value(out, k);
                encode_value(out, v);
            }
            encode_value(out, inner);
        }
        Value::Double(t) => line(out, b',', t),
        Value::Bool(b) => line(out, b'#', if *b { b"t" } else { b"f" }),
        Value::BigNumber(t) => line(out, b'(', t),
        Value::Verbatim(fmt, text) => {
            let mut body = fmt.to_vec();
            body.push(b':');
            body.extend_from_slice(text);
            blob(out, b'=', &body);
        }
        Value::BlobError(b) => blob(out, b'!', b),
    }
}
