//! Cluster bus messages (`kiln_formats::cluster::bus`), as a node reads them from a peer:
//! the input is the bytes of one connection.
//!
//! Asserts: no panic, no allocation from a declared length; every message `decode`
//! accepts is one `frame` delimits, re-encodes to bytes that decode to the same message
//! and encode to themselves; `frame` finds the same messages, and the same error or the
//! same incomplete tail, whether the stream arrives whole or in arbitrary pieces.
#![no_main]

use kiln_formats::cluster::bus::{decode, encode, frame, Error, Frame};
use kiln_fuzz::Splitter;
use libfuzzer_sys::fuzz_target;

/// A limit well inside the fuzzer's memory limits, so `TooLong` is reached too.
const MAX: usize = 1 << 20;

#[derive(Debug, PartialEq, Eq)]
enum End {
    Error(Error),
    /// Bytes of an unfinished message left over.
    Partial(usize),
}

/// Splits `buf` as a reader that has received it so far: the whole messages it starts
/// with, and where it stopped.
fn split(buf: &[u8], out: &mut Vec<Vec<u8>>) -> Result<usize, Error> {
    let mut pos = 0;
    loop {
        match frame(&buf[pos..], MAX)? {
            Frame::Complete { len } => {
                out.push(buf[pos..pos + len].to_vec());
                pos += len;
            }
            Frame::Incomplete { needed } => {
                assert!(needed > 0);
                return Ok(pos);
            }
        }
    }
}

fn check(msg_bytes: &[u8]) {
    let Ok(msg) = decode(msg_bytes) else {
        return;
    };
    assert_eq!(
        frame(msg_bytes, MAX),
        Ok(Frame::Complete {
            len: msg_bytes.len()
        })
    );
    let again = encode(&msg);
    let back = decode(&again).unwrap_or_else(|e| panic!("own encoding refused: {e}"));
    assert_eq!(back, msg);
    assert_eq!(encode(&back), again);
}

fuzz_target!(|data: &[u8]| {
    check(data);

    let mut whole = Vec::new();
    let end = match split(data, &mut whole) {
        Ok(pos) => End::Partial(data.len() - pos),
        Err(e) => End::Error(e),
    };
    for m in &whole {
        check(m);
    }

    let mut pieces = Vec::new();
    let mut buf = Vec::new();
    let mut piece_end = End::Partial(0);
    for piece in Splitter::new(data).split(data) {
        buf.extend_from_slice(piece);
        match split(&buf, &mut pieces) {
            Ok(pos) => {
                buf.drain(..pos);
                piece_end = End::Partial(buf.len());
            }
            Err(e) => {
                piece_end = End::Error(e);
                break;
            }
        }
    }
    assert_eq!(pieces, whole);
    assert_eq!(piece_end, end);
});
