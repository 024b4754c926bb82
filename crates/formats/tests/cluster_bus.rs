//! The cluster bus codec against messages recorded between real Redis 7.0.15 nodes
//! (`tests/fixtures/cluster_bus/capture.py` wrote them, with `facts.txt`: the nodes'
//! ids and ports). Nodes A, B, D were primaries of slots 0-5460, 5461-10922 and
//! 10923-16383 with config epochs 1, 2, 3, C a replica of A; B announced the hostname
//! `bus-b.example`. Then A crashed (FAIL, C elected), came back as C's replica and took
//! its slots back with CLUSTER FAILOVER (MFSTART, UPDATE); last, D was killed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kiln_formats::cluster::bus::*;

struct Node {
    port: u16,
    cport: u16,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster_bus")
}

/// name → (letter, ports), from facts.txt.
fn facts() -> HashMap<String, (char, Node)> {
    let text = std::fs::read_to_string(dir().join("facts.txt")).unwrap();
    let mut out = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() == 4 && f[1].starts_with("id=") {
            let v = |i: usize| f[i].split_once('=').unwrap().1;
            out.insert(
                v(1).to_string(),
                (
                    f[0].chars().next().unwrap(),
                    Node {
                        port: v(2).parse().unwrap(),
                        cport: v(3).parse().unwrap(),
                    },
                ),
            );
        }
    }
    assert_eq!(out.len(), 4);
    out
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    assert!(v.len() > 30, "fixtures missing");
    v
}

fn name(n: &NodeName) -> String {
    String::from_utf8(n.to_vec()).unwrap()
}

fn slots(a: u16, b: u16) -> SlotBitmap {
    let mut s = SlotBitmap::default();
    for i in a..=b {
        s.set(i, true);
    }
    s
}

#[test]
fn every_recorded_message_decodes_and_reencodes_to_the_same_bytes() {
    let facts = facts();
    let mut types = std::collections::BTreeSet::new();
    for (file, bytes) in fixtures() {
        let msg = decode(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(encode(&msg), bytes, "{file}");
        assert_eq!(
            frame(&bytes, DEFAULT_MAX_MESSAGE_LEN),
            Ok(Frame::Complete { len: bytes.len() })
        );
        let kind = file.rsplitn(4, '-').last().unwrap();
        let expected = match kind {
            "ping" => TYPE_PING,
            "pong" => TYPE_PONG,
            "meet" => TYPE_MEET,
            "fail" => TYPE_FAIL,
            "publish" => TYPE_PUBLISH,
            "publishshard" => TYPE_PUBLISHSHARD,
            "auth-request" => TYPE_FAILOVER_AUTH_REQUEST,
            "auth-ack" => TYPE_FAILOVER_AUTH_ACK,
            "update" => TYPE_UPDATE,
            "mfstart" => TYPE_MFSTART,
            other => panic!("{file}: {other}"),
        };
        assert_eq!(msg.msg_type(), expected, "{file}");
        types.insert(expected);

        // The header is the sender's own view of itself.
        let h = &msg.header;
        let (letter, node) = &facts[&name(&h.sender)];
        assert_eq!(
            (h.port, h.cport, h.pport),
            (node.port, node.cport, 0),
            "{file}"
        );
        assert_eq!(until_nul(&h.myip), b"127.0.0.1", "{file}");
        assert!(h.flags & (NODE_MASTER | NODE_SLAVE) != 0, "{file}");
        assert!(h.state == STATE_OK || h.state == STATE_FAIL, "{file}");
        if h.flags & NODE_SLAVE != 0 {
            let (primary, _) = &facts[&name(&h.slaveof)];
            assert!("AC".contains(*primary), "{file}");
        } else {
            assert_eq!(h.slaveof, [0; NAME_LEN], "{file}");
        }
        // B and D never changed: their slots and epochs are the ones they were given.
        match letter {
            'B' => {
                assert_eq!(h.myslots, slots(5461, 10922), "{file}");
                assert_eq!(h.config_epoch, 2, "{file}");
            }
            'D' => {
                assert_eq!(h.myslots, slots(10923, 16383), "{file}");
                assert_eq!(h.config_epoch, 3, "{file}");
            }
            _ => {
                let s = h.myslots;
                assert!(s == slots(0, 5460) || s.count() == 0, "{file}: {s:?}");
            }
        }
        assert!(h.current_epoch >= h.config_epoch, "{file}");

        match &msg.body {
            Body::Ping(p) | Body::Pong(p) | Body::Meet(p) => {
                for g in &p.gossip {
                    let (_, n) = &facts[&name(&g.name)];
                    assert_eq!((g.port, g.cport, g.pport), (n.port, n.cport, 0), "{file}");
                    assert_eq!(until_nul(&g.ip), b"127.0.0.1", "{file}");
                    assert_ne!(g.name, h.sender, "{file}: gossip about the sender");
                }
                if *letter == 'B' {
                    assert_eq!(
                        p.extensions,
                        [Extension::Hostname(b"bus-b.example".to_vec())],
                        "{file}"
                    );
                    assert!(h.mflags[0] & MFLAG0_EXT_DATA != 0, "{file}");
                } else {
                    assert!(p.extensions.is_empty(), "{file}");
                    assert_eq!(h.mflags[0] & MFLAG0_EXT_DATA, 0, "{file}");
                }
                assert_eq!(
                    bytes.len(),
                    HEADER_LEN + GOSSIP_LEN * p.gossip.len() + if *letter == 'B' { 24 } else { 0 }
                );
            }
            Body::Fail { about } => {
                let failed = facts[&name(about)].0;
                assert!(
                    "AD".contains(failed),
                    "{file}: A and D were the ones to fail"
                );
            }
            Body::Publish { channel, message } => {
                assert_eq!(
                    (&channel[..], &message[..]),
                    (&b"news"[..], &b"hello bus"[..])
                );
                assert_eq!(*letter, 'B');
            }
            Body::PublishShard { channel, message } => {
                assert!(channel.starts_with(b"news"), "{file}");
                assert_eq!(message, b"sharded hello");
                assert_eq!(*letter, 'A');
            }
            Body::FailoverAuthRequest => {
                assert!("AC".contains(*letter), "{file}: a replica of the A/C shard");
                assert_ne!(h.flags & NODE_SLAVE, 0, "{file}");
            }
            Body::FailoverAuthAck => assert_ne!(h.flags & NODE_MASTER, 0, "{file}"),
            Body::MfStart => {
                assert_eq!(*letter, 'A', "{file}: A took its slots back");
                assert_ne!(h.flags & NODE_SLAVE, 0, "{file}");
            }
            Body::Update {
                config_epoch,
                name: n,
                slots: s,
            } => {
                assert!("AC".contains(facts[&name(n)].0), "{file}");
                assert_eq!(*s, slots(0, 5460), "{file}");
                assert!(*config_epoch > 3, "{file}");
            }
            other => panic!("{file}: {other:?}"),
        }
    }
    // Everything Redis 7.0 sends without a module.
    assert_eq!(types.len(), 10, "{types:?}");
}

#[test]
fn manual_failover_flags_were_seen() {
    let all: Vec<Message> = fixtures().iter().map(|(_, b)| decode(b).unwrap()).collect();
    assert!(all
        .iter()
        .any(|m| matches!(m.body, Body::FailoverAuthRequest)
            && m.header.mflags[0] & MFLAG0_FORCEACK != 0));
    assert!(all
        .iter()
        .any(|m| matches!(m.body, Body::Ping(_) | Body::Pong(_))
            && m.header.mflags[0] & MFLAG0_PAUSED != 0));
}

#[test]
fn frame_splits_a_stream_read_in_pieces() {
    let fixtures = fixtures();
    let stream: Vec<u8> = fixtures.iter().flat_map(|(_, b)| b.clone()).collect();
    for piece in [1, 7, 8, 13, 14, 100, 2255, 2256, 4096, 100_000] {
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for chunk in stream.chunks(piece) {
            buf.extend_from_slice(chunk);
            loop {
                match frame(&buf, DEFAULT_MAX_MESSAGE_LEN).unwrap() {
                    Frame::Complete { len } => {
                        got.push(buf[..len].to_vec());
                        buf.drain(..len);
                    }
                    Frame::Incomplete { needed } => {
                        assert!(needed > 0);
                        break;
                    }
                }
            }
        }
        assert!(buf.is_empty());
        let want: Vec<Vec<u8>> = fixtures.iter().map(|(_, b)| b.clone()).collect();
        assert_eq!(got, want, "pieces of {piece}");
    }
}

/// A recorded PING with gossip entries and no extensions.
fn sample() -> Vec<u8> {
    fixtures()
        .into_iter()
        .find(|(f, b)| f.starts_with("ping-") && b.len() > HEADER_LEN && b[2253] == 0)
        .unwrap()
        .1
}

#[test]
fn frame_refuses_what_no_peer_sends() {
    let max = DEFAULT_MAX_MESSAGE_LEN;
    assert_eq!(frame(b"", max), Ok(Frame::Incomplete { needed: 8 }));
    assert_eq!(frame(b"RC", max), Ok(Frame::Incomplete { needed: 6 }));
    assert_eq!(frame(b"GET", max), Err(Error::BadSignature));
    assert_eq!(
        frame(b"*1\r\n$4\r\nPING\r\n", max),
        Err(Error::BadSignature)
    );
    let mut m = sample();
    m[4..8].copy_from_slice(&100u32.to_be_bytes());
    assert!(matches!(
        frame(&m[..8], max),
        Err(Error::TooShort {
            msg_type: None,
            totlen: 100
        })
    ));
    m[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(frame(&m[..8], max), Err(Error::TooLong { .. })));
    // The type's minimum, as soon as the type is in.
    m[4..8].copy_from_slice(&2256u32.to_be_bytes());
    m[12..14].copy_from_slice(&TYPE_UPDATE.to_be_bytes());
    assert_eq!(frame(&m[..13], max), Ok(Frame::Incomplete { needed: 2243 }));
    assert_eq!(
        frame(&m[..14], max),
        Err(Error::TooShort {
            msg_type: Some(TYPE_UPDATE),
            totlen: 2256
        })
    );
    let m = sample();
    assert_eq!(
        frame(&m[..m.len() - 1], max),
        Ok(Frame::Incomplete { needed: 1 })
    );
    assert_eq!(
        frame(&m, 100),
        Err(Error::TooLong {
            totlen: m.len() as u32,
            max: 100
        })
    );
}

#[test]
fn decode_refuses_inconsistent_messages() {
    let m = sample();
    assert!(matches!(
        decode(&m[..m.len() - 1]),
        Err(Error::LengthMismatch { .. })
    ));
    let mut v = m.clone();
    v[9] = 2;
    assert_eq!(decode(&v), Err(Error::Version(2)));
    // More gossip entries than the message holds.
    let mut v = m.clone();
    v[14..16].copy_from_slice(&600u16.to_be_bytes());
    assert!(matches!(decode(&v), Err(Error::BadBody { .. })));
    // Bytes past the gossip entries without extensions.
    let mut v = m.clone();
    v.extend_from_slice(&[0; 8]);
    let n = v.len() as u32;
    v[4..8].copy_from_slice(&n.to_be_bytes());
    assert!(matches!(decode(&v), Err(Error::BadBody { .. })));
    // An extension of a length that is not a multiple of 8, or past the end.
    for len in [12u32, 0, 16] {
        let mut v = v.clone();
        v[2253] |= MFLAG0_EXT_DATA;
        v[2214..2216].copy_from_slice(&1u16.to_be_bytes());
        let at = v.len() - 8;
        v[at..at + 4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(decode(&v), Err(Error::BadBody { .. })), "{len}");
    }
    // PUBLISH lengths that do not add up.
    let mut msg = decode(&m).unwrap();
    msg.body = Body::Publish {
        channel: b"c".to_vec(),
        message: b"m".to_vec(),
    };
    let mut v = encode(&msg);
    assert_eq!(decode(&v).unwrap(), msg);
    v[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&5u32.to_be_bytes());
    assert!(matches!(decode(&v), Err(Error::BadBody { .. })));
    assert_eq!(
        decode(b"RCmb"),
        Err(Error::TooShort {
            msg_type: None,
            totlen: 4
        })
    );
    assert_eq!(decode(b"nope"), Err(Error::BadSignature));
}

#[test]
fn built_messages_round_trip() {
    let header = Header {
        port: 7000,
        current_epoch: 9,
        config_epoch: 8,
        offset: 12345,
        sender: [b'a'; NAME_LEN],
        myslots: slots(100, 200),
        myip: ip_field(b"10.0.0.1"),
        cport: 17000,
        flags: NODE_MASTER | NODE_MYSELF,
        ..Header::default()
    };
    let gossip = Gossip {
        name: [b'b'; NAME_LEN],
        ping_sent: 1,
        pong_received: 2,
        ip: ip_field(b"::1"),
        port: 7001,
        cport: 17001,
        flags: NODE_SLAVE | NODE_PFAIL,
        pport: 0,
    };
    let bodies = vec![
        Body::Meet(Ping {
            gossip: vec![gossip.clone(), gossip],
            extensions: vec![
                Extension::Hostname(b"h".to_vec()),
                Extension::Hostname(b"exactly-fifteen".to_vec()),
                Extension::Other {
                    ext_type: 1,
                    data: vec![7; 40],
                },
            ],
        }),
        Body::Pong(Ping::default()),
        Body::Fail {
            about: [b'c'; NAME_LEN],
        },
        Body::PublishShard {
            channel: vec![],
            message: vec![0; 3],
        },
        Body::FailoverAuthAck,
        Body::MfStart,
        Body::Update {
            config_epoch: u64::MAX,
            name: [b'd'; NAME_LEN],
            slots: slots(0, 16383),
        },
        Body::Module {
            module_id: *b"modid\0\0\x01",
            module_type: 3,
            payload: b"payload".to_vec(),
        },
        Body::Unknown {
            msg_type: 11,
            data: vec![1, 2, 3],
        },
    ];
    for body in bodies {
        let mut msg = Message {
            header: header.clone(),
            body,
        };
        let bytes = encode(&msg);
        assert_eq!(
            u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize,
            bytes.len()
        );
        if let Body::Meet(p) = &msg.body {
            // 8 + "h\0" → 16; 8 + 15 + 1 → 24; 8 + 40 → 48.
            assert_eq!(bytes.len(), HEADER_LEN + 2 * GOSSIP_LEN + 16 + 24 + 48);
            assert_eq!(p.extensions.len(), 3);
            msg.header.mflags[0] |= MFLAG0_EXT_DATA;
        }
        assert_eq!(decode(&bytes).unwrap(), msg);
        assert_eq!(encode(&decode(&bytes).unwrap()), bytes);
    }
}

#[test]
fn slot_bitmap_ranges() {
    let mut s = SlotBitmap::default();
    for slot in [0, 1, 2, 5, 16383, 16384] {
        s.set(slot, true);
    }
    assert_eq!(s.ranges(), [(0, 2), (5, 5), (16383, 16383)]);
    assert_eq!(s.count(), 5);
    assert!(!s.contains(16384));
    // Slot s is bit s % 8 of byte s / 8.
    assert_eq!(s.0[0], 0b0010_0111);
    assert_eq!(s.0[2047], 0b1000_0000);
}
