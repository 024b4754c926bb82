//! The server-side request parser (`kiln_resp::parse_request`), driven as a connection
//! drives it: bytes arrive, every complete request is taken from the front of the buffer,
//! the rest waits for more. Inline arguments are unquoted as the connection does.
//!
//! Asserts: no panic; a complete request consumes at least one byte and no more than the
//! buffer, its arguments lie inside what it consumed; a size hint is beyond the buffer;
//! and the input fed in arbitrary pieces gives exactly the requests (and the error) that
//! feeding it whole gives.
#![no_main]

use kiln_fuzz::Splitter;
use kiln_resp::{parse_request, Limits, Parsed};
use libfuzzer_sys::fuzz_target;

/// The requests a connection sees from these reads, and the protocol error that ended it.
type Outcome = (Vec<Vec<Vec<u8>>>, Option<String>);

fn connection(reads: &[&[u8]], limits: &Limits) -> Outcome {
    let mut buf: Vec<u8> = Vec::new();
    let mut ranges = Vec::new();
    let mut requests = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        let mut start = 0;
        loop {
            let b = &buf[start..];
            match parse_request(b, &mut ranges, limits) {
                Ok(Parsed::Complete { consumed }) => {
                    assert!(consumed > 0 && consumed <= b.len(), "consumed {consumed}");
                    let mut args = Vec::with_capacity(ranges.len());
                    for r in &ranges {
                        assert!(r.start <= r.end && r.end <= consumed, "{r:?} / {consumed}");
                        let a = &b[r.clone()];
                        args.push(if b[0] == b'*' {
                            a.to_vec()
                        } else {
                            kiln_resp::request::unquote_inline_arg(a).unwrap_or_else(|| a.to_vec())
                        });
                    }
                    requests.push(args);
                    start += consumed;
                }
                Ok(Parsed::Incomplete { hint }) => {
                    if let Some(h) = hint {
                        assert!(h > b.len(), "hint {h} for {} bytes", b.len());
                    }
                    break;
                }
                Err(e) => return (requests, Some(e.to_string())),
            }
        }
        buf.drain(..start);
    }
    (requests, None)
}

fuzz_target!(|data: &[u8]| {
    // Limits the input cannot reach, so where the pieces end cannot matter.
    let roomy = Limits {
        max_inline_len: data.len() + 1,
        ..Limits::default()
    };
    let unauth = Limits {
        unauthenticated: true,
        ..roomy
    };
    for limits in [roomy, unauth] {
        let whole = connection(&[data], &limits);
        let pieces = connection(&Splitter::new(data).split(data), &limits);
        assert_eq!(whole, pieces);
    }
    // Tight limits: reachable errors; only the invariants are checked.
    let tight = Limits {
        max_bulk_len: 64,
        max_inline_len: 32,
        max_multibulk_len: 8,
        unauthenticated: false,
    };
    connection(&[data], &tight);
    connection(&Splitter::new(data).split(data), &tight);
});
