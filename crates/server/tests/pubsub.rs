//! Pub/Sub: differential scripts, delivery across connections and threads, slow
//! subscribers.

mod support;

use std::io::Read;
use std::time::Duration;
use support::TestServer;

#[test]
fn pubsub_commands_match_redis() {
    support::run_script_dir("pubsub");
}

#[test]
fn published_messages_reach_channel_and_pattern_subscribers() {
    let s = TestServer::kiln(&["--threads", "3"]);
    let mut sub = s.raw();
    sub.send_cmd(&["SUBSCRIBE", "news"]);
    assert_eq!(
        String::from_utf8(sub.read_reply().unwrap()).unwrap(),
        "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
    );
    let mut psub = s.raw();
    assert!(psub.cmd(&["HELLO", "3"]).starts_with('%'));
    psub.send_cmd(&["PSUBSCRIBE", "n*"]);
    assert_eq!(
        String::from_utf8(psub.read_reply().unwrap()).unwrap(),
        ">3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:1\r\n"
    );
    let mut publisher = s.raw();
    assert_eq!(publisher.cmd(&["PUBLISH", "news", "hi"]), ":2\r\n");
    assert_eq!(
        String::from_utf8(sub.read_reply().unwrap()).unwrap(),
        "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
    );
    assert_eq!(
        String::from_utf8(psub.read_reply().unwrap()).unwrap(),
        ">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
    );
    assert_eq!(
        publisher.cmd(&["PUBSUB", "NUMSUB", "news"]),
        "*2\r\n$4\r\nnews\r\n:1\r\n"
    );
    assert_eq!(publisher.cmd(&["PUBSUB", "NUMPAT"]), ":1\r\n");
    // A RESP3 subscriber may run commands, and gets pushes in between.
    assert_eq!(psub.cmd(&["SET", "k", "v"]), "+OK\r\n");
}

#[test]
fn one_publishers_messages_arrive_in_order() {
    let s = TestServer::kiln(&["--threads", "4"]);
    let mut subs: Vec<_> = (0..5).map(|_| s.raw()).collect();
    for c in subs.iter_mut() {
        c.send_cmd(&["SUBSCRIBE", "seq"]);
        c.read_reply().unwrap();
    }
    let mut p = s.raw();
    let mut pipeline = Vec::new();
    for i in 0..1000 {
        kiln_resp::encode::request(&mut pipeline, &["PUBLISH", "seq", &i.to_string()]);
    }
    p.send(&pipeline);
    for _ in 0..1000 {
        assert_eq!(p.read_reply().unwrap(), b":5\r\n");
    }
    for c in subs.iter_mut() {
        for i in 0..1000 {
            let m = String::from_utf8(c.read_reply().unwrap()).unwrap();
            assert!(
                m.ends_with(&format!("${}\r\n{i}\r\n", i.to_string().len())),
                "{m}"
            );
        }
    }
}

#[test]
fn a_subscriber_that_stops_reading_is_disconnected_and_memory_stays_bounded() {
    let s = TestServer::kiln(&["--client-output-buffer-limit", "pubsub 1mb 512kb 60"]);
    let mut slow = s.raw();
    slow.send_cmd(&["SUBSCRIBE", "firehose"]);
    slow.read_reply().unwrap();
    // Shrink the receive window so the kernel buffers little on the slow side.
    let mut p = s.raw();
    let payload = "x".repeat(64 * 1024);
    let mut received = 1;
    for _ in 0..400 {
        let r = p.cmd(&["PUBLISH", "firehose", &payload]);
        if r == ":0\r\n" {
            received = 0;
            break;
        }
    }
    assert_eq!(received, 0, "the slow subscriber should have been dropped");
    // Everyone else carries on.
    assert_eq!(p.cmd(&["PING"]), "+PONG\r\n");
    // The slow connection is closed (after whatever the kernel had buffered).
    slow.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut closed = false;
    for _ in 0..1000 {
        match slow.stream.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert!(closed);
}

#[test]
fn unsubscribing_everything_leaves_subscribed_mode() {
    let s = TestServer::kiln(&[]);
    let mut c = s.raw();
    c.send_cmd(&["SUBSCRIBE", "a"]);
    c.read_reply().unwrap();
    assert!(c.cmd(&["GET", "x"]).starts_with("-ERR Can't execute 'get'"));
    c.send_cmd(&["UNSUBSCRIBE"]);
    c.read_reply().unwrap();
    assert_eq!(c.cmd(&["GET", "x"]), "$-1\r\n");
    c.send_cmd(&["PSUBSCRIBE", "x*"]);
    c.read_reply().unwrap();
    assert_eq!(c.cmd(&["RESET"]), "+RESET\r\n");
    assert_eq!(c.cmd(&["GET", "x"]), "$-1\r\n");
}

/// While a publisher keeps publishing, a subscriber's RESET or UNSUBSCRIBE reply is the last
/// thing of its subscription: messages published before come ahead of it, none after it.
#[test]
fn no_message_follows_the_reply_that_ends_a_subscription() {
    let s = TestServer::kiln(&["--threads", "2"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let (stop, mut c) = (stop.clone(), s.raw());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.cmd(&["PUBLISH", "ch", "m"]);
            }
        })
    };
    let mut sub = s.raw();
    let text = |r: Option<Vec<u8>>| String::from_utf8(r.expect("closed")).unwrap();
    let message = "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n";
    for round in 0..200 {
        sub.send_cmd(&["SUBSCRIBE", "ch"]);
        assert_eq!(
            text(sub.read_reply()),
            "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
        );
        // Messages are flowing: one arrived.
        assert_eq!(text(sub.read_reply()), message);
        let (end, ended): (&[&str], &str) = if round % 2 == 0 {
            (&["RESET"], "+RESET\r\n")
        } else {
            (
                &["UNSUBSCRIBE", "ch"],
                "*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n",
            )
        };
        sub.send_cmd(end);
        loop {
            let r = text(sub.read_reply());
            if r == ended {
                break;
            }
            assert_eq!(r, message, "round {round}: before `{}`", end[0]);
        }
        assert_eq!(
            sub.cmd(&["PING"]),
            "+PONG\r\n",
            "round {round}: a message came after `{}`",
            end[0]
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher.join().unwrap();
}
