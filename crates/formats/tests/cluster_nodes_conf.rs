//! `nodes.conf` against files real Redis 7.0.15 nodes wrote (see
//! `tests/fixtures/cluster_bus/capture.py`): each reads, and writes back byte for byte;
//! the node lines are CLUSTER NODES's reply.

use std::path::{Path, PathBuf};

use kiln_formats::cluster::bus::{
    SlotBitmap, NODE_FAIL, NODE_MASTER, NODE_MYSELF, NODE_NOADDR, NODE_PFAIL, NODE_SLAVE,
};
use kiln_formats::cluster::nodes_conf::*;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster_bus")
}

fn files(suffix: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(suffix))
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn redis_files_read_and_write_back_identically() {
    let confs = files(".conf");
    assert!(confs.len() >= 10);
    for (file, text) in confs {
        let conf = NodesConf::parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(conf.to_text().as_bytes(), text, "{file}");
        assert_eq!(conf.nodes.len(), 4, "{file}");
        assert_eq!(
            conf.nodes
                .iter()
                .filter(|n| n.flags & NODE_MYSELF != 0)
                .count(),
            1,
            "{file}"
        );
        assert!(conf.current_epoch >= 3, "{file}");
        for n in &conf.nodes {
            assert_eq!(n.id.len(), 40);
            assert_eq!(n.ip, "127.0.0.1");
            assert_eq!(n.primary.is_some(), n.flags & NODE_SLAVE != 0, "{file}");
            if n.hostname.is_some() {
                assert_eq!(n.hostname.as_deref(), Some("bus-b.example"));
            }
        }
    }
}

#[test]
fn cluster_nodes_is_the_file_less_vars() {
    for letter in ["A", "B"] {
        let conf = std::fs::read(dir().join(format!("nodes-{letter}-marks.conf"))).unwrap();
        let reply =
            std::fs::read_to_string(dir().join(format!("cluster-nodes-{letter}-marks.txt")))
                .unwrap();
        let conf = NodesConf::parse(&conf).unwrap();
        // The reply was taken a moment after the file: times may differ, nothing else.
        let mut from_reply = NodesConf::parse(reply.as_bytes()).unwrap();
        assert_eq!(nodes_text(&from_reply.nodes), reply);
        for (a, b) in from_reply.nodes.iter_mut().zip(&conf.nodes) {
            a.ping_sent = b.ping_sent;
            a.pong_recv = b.pong_recv;
        }
        assert_eq!(from_reply.nodes, conf.nodes);
    }
}

#[test]
fn marks_failures_and_lone_slots() {
    let a = NodesConf::parse(&std::fs::read(dir().join("nodes-A-marks.conf")).unwrap()).unwrap();
    let b = NodesConf::parse(&std::fs::read(dir().join("nodes-B-marks.conf")).unwrap()).unwrap();
    let me_a = a.nodes.iter().find(|n| n.flags & NODE_MYSELF != 0).unwrap();
    let me_b = b.nodes.iter().find(|n| n.flags & NODE_MYSELF != 0).unwrap();
    assert_eq!(
        me_a.marks,
        [
            SlotMark::Migrating {
                slot: 100,
                to: me_b.id.clone()
            },
            SlotMark::Migrating {
                slot: 101,
                to: a
                    .nodes
                    .iter()
                    .find(|n| n.flags & NODE_FAIL != 0)
                    .unwrap()
                    .id
                    .clone()
            }
        ]
    );
    assert_eq!(
        me_b.marks,
        [
            SlotMark::Importing {
                slot: 100,
                from: me_a.id.clone()
            },
            SlotMark::Importing {
                slot: 102,
                from: me_a.id.clone()
            }
        ]
    );
    assert_eq!(me_b.slots, [(5461, 5469), (5471, 5471), (5473, 10922)]);
    assert_eq!(me_b.hostname.as_deref(), Some("bus-b.example"));
    let failed = a.nodes.iter().find(|n| n.flags & NODE_FAIL != 0).unwrap();
    assert_eq!(failed.flags, NODE_MASTER | NODE_FAIL);
    assert!(!failed.connected);
    assert!(failed.ping_sent > 0);
    assert_eq!(failed.slots, [(10923, 16383)]);
    assert_eq!((a.current_epoch, a.last_vote_epoch), (5, 0));
}

#[test]
fn written_like_redis() {
    let mut bits = SlotBitmap::default();
    for s in [0, 1, 2, 7, 100, 101] {
        bits.set(s, true);
    }
    let n = NodeLine {
        id: "e".repeat(40),
        ip: String::new(),
        port: 0,
        cport: 0,
        hostname: None,
        flags: NODE_NOADDR | NODE_PFAIL | NODE_SLAVE | NODE_MYSELF,
        primary: Some("f".repeat(40)),
        ping_sent: 5,
        pong_recv: 6,
        config_epoch: 7,
        connected: false,
        slots: bits.ranges(),
        marks: vec![],
    };
    let line = n.to_line();
    assert_eq!(
        line,
        format!(
            "{} :0@0 myself,slave,fail?,noaddr {} 5 6 7 disconnected 0-2 7 100-101",
            "e".repeat(40),
            "f".repeat(40)
        )
    );
    assert_eq!(NodeLine::parse(&line).unwrap(), n);
    assert_eq!(flags_text(0), "noflags");
    assert_eq!(
        NodeLine::parse(&line.replace("myself,slave,fail?,noaddr", "noflags"))
            .unwrap()
            .flags,
        0
    );
}

#[test]
fn errors_name_the_line() {
    let good = std::fs::read_to_string(dir().join("nodes-A.conf")).unwrap();
    let first = good.lines().next().unwrap();
    let cases = [
        ("a b c", "fewer than 8 fields"),
        (&first.replace("master", "leader")[..], "unknown flag"),
        (&first.replacen(":", ";", 1)[..], "no port"),
        (&first.replace(" connected", " linked")[..], "link state"),
        (&format!("{first} 16384"), "slot"),
        (&format!("{first} 9-3"), "slot range"),
        (&format!("{first} [5->-x"), "unterminated"),
        (&format!("{first} [5=>x]"), "slot mark"),
        (&first.replacen(" 0 ", " x ", 1)[..], "not a number"),
        ("vars currentEpoch", "vars without a value"),
        ("vars currentEpoch -1", "out of range"),
    ];
    for (bad, why) in cases {
        let text = format!("{good}\n{bad}\n");
        let e = NodesConf::parse(text.as_bytes()).unwrap_err();
        assert_eq!(e.line, good.lines().count() + 2, "{bad}");
        assert!(e.reason.contains(why), "{bad}: {}", e.reason);
    }
    assert_eq!(NodesConf::parse(b"\xff\n").unwrap_err().line, 1);
    // Blank lines and CRLF are fine; without vars both epochs are 0.
    let conf = NodesConf::parse(format!("\r\n{first}\r\n\n \x0c\n").as_bytes()).unwrap();
    assert_eq!(conf.nodes.len(), 1);
    assert_eq!(conf.current_epoch, 0);
    // The pre-4.0 address form: the bus port is implied.
    let mut fields: Vec<&str> = first.split(' ').collect();
    let addr = fields[1].split('@').next().unwrap();
    fields[1] = addr;
    let old = NodeLine::parse(&fields.join(" ")).unwrap();
    assert_eq!(old.cport, old.port + 10000);
}
