//! `nodes.conf` files (`kiln_formats::cluster::nodes_conf::NodesConf::parse`), as a
//! cluster node loads its configuration at start-up.
//!
//! Asserts: no panic; a file that parses is written (`to_text`, what the node saves
//! and, less its `vars` line, CLUSTER NODES) as text that parses to the same state and
//! writes to itself.
#![no_main]

use kiln_formats::cluster::nodes_conf::NodesConf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(conf) = NodesConf::parse(data) else {
        return;
    };
    let text = conf.to_text();
    let again = NodesConf::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("own nodes.conf refused: {e} in {text:?}"));
    assert_eq!(again, conf, "{text:?}");
    assert_eq!(again.to_text(), text);
});
