//! AOF manifests (`kiln::aof::manifest::Manifest::parse`).
//!
//! Asserts: no panic; a manifest that parses and names any file is written back
//! (`to_text`, what Kiln persists) as text that parses to the same manifest, unless
//! quoting made a line longer than a manifest line may be (Redis has the same limit on
//! its own output).
#![no_main]

use kiln::aof::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

/// Redis's (and Kiln's) longest manifest line, newline included.
const MAX_LINE: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Manifest::parse(data) else {
        return;
    };
    let text = m.to_text();
    if text.is_empty() || text.lines().any(|l| l.len() + 1 > MAX_LINE) {
        return;
    }
    let again = Manifest::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("own manifest refused: {e} in {text:?}"));
    assert_eq!(again, m, "{text:?}");
});
