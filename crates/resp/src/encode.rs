//! Appending RESP frames to an output buffer.
//!
//! These are the byte-level primitives; the server's reply writer decides between RESP2 and
//! RESP3 shapes (for example a null is `$-1` in RESP2 and `_` in RESP3) and calls these.

/// Appends `<prefix><n>\r\n`.
#[inline]
pub fn header(out: &mut Vec<u8>, prefix: u8, n: i64) {
    out.push(prefix);
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `$<len>\r\n<bytes>\r\n`
#[inline]
pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    header(out, b'$', data.len() as i64);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// `+<text>\r\n`; `text` must not contain CR or LF.
#[inline]
pub fn simple(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'+');
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

/// `-<text>\r\n`; CR and LF in `text` are replaced by spaces, as Redis does.
pub fn error(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'-');
    out.extend(
        text.iter()
            .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
    );
    out.extend_from_slice(b"\r\n");
}

/// `:<n>\r\n`
#[inline]
pub fn integer(out: &mut Vec<u8>, n: i64) {
    header(out, b':', n);
}

/// `=<len>\r\ntxt:<text>\r\n` (RESP3 verbatim string).
pub fn verbatim(out: &mut Vec<u8>, format: &[u8; 3], text: &[u8]) {
    header(out, b'=', text.len() as i64 + 4);
    out.extend_from_slice(format);
    out.push(b':');
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

/// Encodes a whole request as a multibulk array (clients and replication links use this).
pub fn request<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    header(out, b'*', args.len() as i64);
    for a in args {
        bulk(out, a.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_encoded() {
        let mut out = Vec::new();
        header(&mut out, b'*', 2);
        bulk(&mut out, b"ab");
        integer(&mut out, -7);
        simple(&mut out, b"OK");
        error(&mut out, b"ERR a\r\nb");
        verbatim(&mut out, b"txt", b"hi");
        assert_eq!(
            out,
            b"*2\r\n$2\r\nab\r\n:-7\r\n+OK\r\n-ERR a  b\r\n=6\r\ntxt:hi\r\n".to_vec()
        );
    }
}
