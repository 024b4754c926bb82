//! The config file parser (`kiln::config::Config::load_text`, as `kiln-server <file>`
//! reads it) and CONFIG REWRITE's writer of it.
//!
//! Asserts: no panic; a file that loads is rewritten (`rewrite_config_text`) as a file
//! that loads to the same configuration, and rewriting that again changes nothing.
#![no_main]

use kiln::command::rewrite_config_text;
use kiln::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut cfg = Config::default();
    if cfg.load_text(&text).is_err() {
        return;
    }
    let _ = (cfg.save_points(), cfg.bind_addrs(), cfg.replicaof());
    let rewritten = rewrite_config_text(&text, &cfg);
    let mut again = Config::default();
    again
        .load_text(&rewritten)
        .unwrap_or_else(|e| panic!("rewritten config refused: {e}\n{rewritten}"));
    assert_eq!(cfg.matching(b"*"), again.matching(b"*"), "{rewritten}");
    assert_eq!(rewrite_config_text(&rewritten, &again), rewritten);
});
