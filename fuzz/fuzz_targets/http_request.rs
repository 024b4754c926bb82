//! The metrics endpoint's request handling (`kiln::metrics_http::step`), looped over as a
//! connection loops over it: pipelined requests, each answered and dropped from the
//! buffer, until one asks to close or the head grows too large.
//!
//! Asserts: no panic; a step uses some of what it holds and no more; every reply is an
//! HTTP/1.1 status line and headers, with a body as long as its Content-Length (or none,
//! for HEAD); the input in pieces gives the same steps as whole.
#![no_main]

use std::sync::Arc;

use kiln::metrics_http::{step, Render, Step};
use libfuzzer_sys::fuzz_target;

fn check_reply(bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).expect("replies are text");
    assert!(text.starts_with("HTTP/1.1 "), "{text:?}");
    let (head, body) = text.split_once("\r\n\r\n").expect("a blank line");
    let length: usize = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("a Content-Length")
        .parse()
        .unwrap();
    assert!(body.len() == length || body.is_empty(), "{text:?}");
}

/// Feeds `pieces` in turn, stepping after each as the connection does.
fn run<'a>(pieces: impl Iterator<Item = &'a [u8]>, render: &Render) -> Vec<Step> {
    let mut buf = Vec::new();
    let mut steps = Vec::new();
    'feed: for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match step(&buf, render) {
                Step::Incomplete => break,
                Step::TooLarge => {
                    steps.push(Step::TooLarge);
                    break 'feed;
                }
                Step::Reply { bytes, close, used } => {
                    assert!(used > 0 && used <= buf.len());
                    check_reply(&bytes);
                    buf.drain(..used);
                    steps.push(Step::Reply { bytes, close, used });
                    if close {
                        break 'feed;
                    }
                }
            }
        }
    }
    steps
}

fuzz_target!(|data: &[u8]| {
    let render: Render = Arc::new(|| "# TYPE kiln_up gauge\nkiln_up 1\n".to_string());
    let whole = run(std::iter::once(data), &render);
    let size = 1 + data.first().copied().unwrap_or(0) as usize % 61;
    let pieces = run(data.chunks(size), &render);
    assert_eq!(whole, pieces);
});
