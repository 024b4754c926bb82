//! The cluster bus codec talking to a live redis-server 7.0 in cluster mode: a node made
//! of nothing but `encode`, `frame` and `decode` MEETs it, completes the handshake, and
//! has its address, role and hostname (a ping extension) show in the Redis node's
//! CLUSTER NODES. Skipped without redis-server unless `KILN_REQUIRE_REDIS` is set.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kiln_formats::cluster::bus::*;
use kiln_testkit::{free_port, wait_until, Server};

const OUR_NAME: &[u8; 40] = b"0123456789abcdef0123456789abcdef01234567";
/// The client port we announce (nothing listens there; Redis does not check).
const OUR_PORT: u16 = 7777;

/// Reads the next whole message from `s` (with `buf` holding what was read past the last
/// one), or None at the end of the connection or on a read timeout.
fn read_msg(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Message> {
    loop {
        if let Frame::Complete { len } = frame(buf, DEFAULT_MAX_MESSAGE_LEN).unwrap() {
            let msg = decode(&buf[..len]).unwrap();
            buf.drain(..len);
            return Some(msg);
        }
        let mut chunk = [0; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn our_header(cport: u16) -> Header {
    Header {
        port: OUR_PORT,
        sender: *OUR_NAME,
        cport,
        flags: NODE_MASTER | NODE_MYSELF,
        ..Header::default()
    }
}

fn pong(cport: u16) -> Vec<u8> {
    encode(&Message {
        header: our_header(cport),
        body: Body::Pong(Ping {
            gossip: vec![],
            extensions: vec![Extension::Hostname(b"kiln.example".to_vec())],
        }),
    })
}

#[test]
fn a_redis_node_accepts_our_meet_and_pongs() {
    let bus = free_port();
    let bus_s = bus.to_string();
    let Some(redis) = Server::redis(&[
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        &bus_s,
        "--cluster-node-timeout",
        "2000",
    ]) else {
        return;
    };
    let mut cli = redis.raw();
    let reply = cli.cmd(&["CLUSTER", "MYID"]);
    let redis_id = reply.lines().nth(1).unwrap().to_string();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let our_cport = listener.local_addr().unwrap().port();

    // MEET on our own connection: Redis answers with a PONG about itself.
    let mut out = TcpStream::connect(("127.0.0.1", bus)).unwrap();
    out.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let meet = Message {
        header: our_header(our_cport),
        body: Body::Meet(Ping::default()),
    };
    out.write_all(&encode(&meet)).unwrap();
    let mut buf = Vec::new();
    let reply = read_msg(&mut out, &mut buf).expect("a PONG to our MEET");
    assert!(matches!(reply.body, Body::Pong(_)), "{reply:?}");
    assert_eq!(reply.header.sender, redis_id.as_bytes());
    assert_eq!((reply.header.port, reply.header.cport), (redis.port, bus));
    // A node sends its own flags, MYSELF included.
    assert_eq!(reply.header.flags, NODE_MYSELF | NODE_MASTER);

    // Redis now knows us as a node in handshake and connects to our bus port to PING us;
    // we answer every PING with a PONG that carries a hostname.
    let (mut inbound, _) = listener.accept().unwrap();
    inbound
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let answering = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut pings = 0;
        while !stop2.load(Ordering::Relaxed) {
            match read_msg(&mut inbound, &mut buf) {
                Some(m) => {
                    assert!(matches!(m.body, Body::Ping(_) | Body::Meet(_)), "{m:?}");
                    assert_eq!(m.header.cport, bus);
                    pings += 1;
                    if inbound.write_all(&pong(our_cport)).is_err() {
                        break;
                    }
                }
                None => continue,
            }
        }
        pings
    });

    let ours = format!(
        "{} 127.0.0.1:{OUR_PORT}@{our_cport},kiln.example master - ",
        std::str::from_utf8(OUR_NAME).unwrap()
    );
    wait_until("our node in CLUSTER NODES", || {
        cli.cmd(&["CLUSTER", "NODES"]).contains(&ours)
    });
    stop.store(true, Ordering::Relaxed);
    assert!(answering.join().unwrap() >= 2);
}
