//! Wire-protocol black-box tests: raw bytes in, raw bytes out.
//!
//! Each case runs against kiln-server and, when `TestServer::redis` finds one, against
//! redis-server with the very same bytes, so the expected replies written here are checked
//! against the oracle as well as against Kiln. Cases cover pipelining, requests split across
//! writes, inline commands, every protocol error (exact text, and only the offending
//! connection is closed), the pre-AUTH limits, and that a declared-but-unsent huge bulk
//! string does not make the server allocate it.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::{Raw, TestServer};

/// Kiln plus, where available, Redis, started with the same arguments.
struct Pair {
    kiln: TestServer,
    redis: Option<TestServer>,
}

impl Pair {
    fn start(extra: &[&str]) -> Self {
        Self {
            kiln: TestServer::kiln(extra),
            redis: TestServer::redis(extra),
        }
    }

    /// Every server of the pair, named for assertion messages.
    fn servers(&self) -> Vec<(&'static str, &TestServer)> {
        let mut v = vec![("kiln", &self.kiln)];
        if let Some(r) = &self.redis {
            v.push(("redis", r));
        }
        v
    }

    /// Sends `bytes` in one write on a fresh connection to each server and checks that the
    /// replies are exactly `expected`, then that the connection is still usable (`closes`
    /// false: a PING gets PONG) or was closed by the server (`closes` true).
    fn check(&self, bytes: &[u8], expected: &[&str], closes: bool) {
        for (name, server) in self.servers() {
            let mut c = server.raw();
            c.send(bytes);
            let got = read_n(&mut c, expected.len());
            assert_eq!(got, expected, "{name}: replies to {:?}", show(bytes));
            if closes {
                assert!(
                    c.is_closed(),
                    "{name}: connection left open after {:?}",
                    show(bytes)
                );
            } else {
                assert_eq!(
                    c.cmd(&["PING"]),
                    "+PONG\r\n",
                    "{name}: connection unusable after {:?}",
                    show(bytes)
                );
            }
        }
    }
}

/// Reads `n` replies as strings; panics if the server closes the connection first.
fn read_n(c: &mut Raw, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let r = c
                .read_reply()
                .unwrap_or_else(|| panic!("connection closed before reply {}", i + 1));
            String::from_utf8_lossy(&r).into_owned()
        })
        .collect()
}

/// A short printable form of a request for failure messages.
fn show(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
    if bytes.len() > 60 {
        format!("{s}... ({} bytes)", bytes.len())
    } else {
        s
    }
}

fn multibulk(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    kiln_resp::encode::request(&mut out, args);
    out
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`: resident memory, `VmSize`: address space).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_thousand_pipelined_commands_in_one_write_get_a_thousand_replies_in_order() {
    let pair = Pair::start(&[]);
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for i in 0..1000 {
        let key = format!("pipe:{}", i % 100);
        let val = format!("v{i}");
        match i % 4 {
            0 => {
                wire.extend(multibulk(&[b"SET", key.as_bytes(), val.as_bytes()]));
                expected.push("+OK\r\n".to_string());
            }
            1 => {
                // Reads its own pipeline's write: the SET one request earlier.
                let prev = format!("v{}", i - 1);
                let key = format!("pipe:{}", (i - 1) % 100);
                wire.extend(multibulk(&[b"GET", key.as_bytes()]));
                expected.push(format!("${}\r\n{prev}\r\n", prev.len()));
            }
            2 => {
                wire.extend(multibulk(&[b"ECHO", val.as_bytes()]));
                expected.push(format!("${}\r\n{val}\r\n", val.len()));
            }
            _ => {
                // Inline commands mixed into a multibulk pipeline.
                wire.extend_from_slice(b"PING\r\n");
                expected.push("+PONG\r\n".to_string());
            }
        }
    }
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    pair.check(&wire, &expected, false);
}

#[test]
fn a_request_split_at_every_byte_boundary_across_two_writes_still_works() {
    let pair = Pair::start(&[]);
    let mut wire = multibulk(&[b"SET", b"split", b"hello world"]);
    wire.extend_from_slice(b"ECHO \"a b\"\r\n");
    wire.extend(multibulk(&[b"GET", b"split"]));
    let expected = ["+OK\r\n", "$3\r\na b\r\n", "$11\r\nhello world\r\n"];
    for (name, server) in pair.servers() {
        let mut c = server.raw();
        for cut in 1..wire.len() {
            c.send(&wire[..cut]);
            // Give the server a chance to read the first part on its own, so the split
            // really reaches its parser rather than being coalesced by the socket.
            std::thread::sleep(Duration::from_millis(1));
            c.send(&wire[cut..]);
            assert_eq!(read_n(&mut c, 3), expected, "{name}: split at byte {cut}");
        }
    }
}

#[test]
fn a_request_sent_one_byte_per_write_still_works() {
    let pair = Pair::start(&[]);
    let mut wire = multibulk(&[b"SET", b"bytewise", b"v"]);
    wire.extend_from_slice(b"GET bytewise\n");
    for (name, server) in pair.servers() {
        let mut c = server.raw();
        for b in &wire {
            c.send(std::slice::from_ref(b));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(read_n(&mut c, 2), ["+OK\r\n", "$1\r\nv\r\n"], "{name}");
    }
}

#[test]
fn inline_commands_are_split_on_spaces_and_understand_quotes() {
    let pair = Pair::start(&[]);
    pair.check(b"PING\r\n", &["+PONG\r\n"], false);
    pair.check(b"ECHO \"a b\"\r\n", &["$3\r\na b\r\n"], false);
    pair.check(b"ECHO 'it\\'s'\r\n", &["$4\r\nit's\r\n"], false);
    pair.check(b"ECHO \"\\x41\\n\"\r\n", &["$2\r\nA\n\r\n"], false);
    pair.check(b"  ECHO    spaced   \r\n", &["$6\r\nspaced\r\n"], false);
    pair.check(b"ping\r\n", &["+PONG\r\n"], false);
}

#[test]
fn inline_commands_accept_bare_newline_line_endings() {
    let pair = Pair::start(&[]);
    pair.check(b"PING\n", &["+PONG\r\n"], false);
    pair.check(
        b"SET nl value\nGET nl\n",
        &["+OK\r\n", "$5\r\nvalue\r\n"],
        false,
    );
}

#[test]
fn empty_lines_are_ignored() {
    let pair = Pair::start(&[]);
    pair.check(b"\r\n\r\nPING\r\n", &["+PONG\r\n"], false);
    pair.check(b"\n\n   \r\n\t\nPING\n", &["+PONG\r\n"], false);
}

#[test]
fn empty_and_null_multibulk_requests_are_ignored() {
    let pair = Pair::start(&[]);
    pair.check(b"*0\r\nPING\r\n", &["+PONG\r\n"], false);
    pair.check(b"*-1\r\n*0\r\n*-1\r\nPING\r\n", &["+PONG\r\n"], false);
}

#[test]
fn a_bulk_of_exactly_the_declared_length_is_taken_without_checking_its_terminator() {
    // Redis skips the two bytes after a bulk instead of checking them for CRLF.
    let pair = Pair::start(&[]);
    pair.check(
        b"*2\r\n$4\r\nECHO\r\n$1\r\nxyzPING\r\n",
        &["$1\r\nx\r\n", "+PONG\r\n"],
        false,
    );
}

#[test]
fn an_unknown_command_gets_an_error_and_the_connection_stays_open() {
    let pair = Pair::start(&[]);
    pair.check(
        &multibulk(&[b"NOSUCHCMD", b"a", b"b"]),
        &["-ERR unknown command 'NOSUCHCMD', with args beginning with: 'a' 'b' \r\n"],
        false,
    );
    pair.check(
        b"nosuch\r\n",
        &["-ERR unknown command 'nosuch', with args beginning with: \r\n"],
        false,
    );
    pair.check(
        b"*1\r\n$0\r\n\r\n",
        &["-ERR unknown command '', with args beginning with: \r\n"],
        false,
    );
}

/// Every protocol error: the exact reply, then the server closes that connection.
const PROTOCOL_ERRORS: &[(&[u8], &str)] = &[
    (b"*x\r\n", "invalid multibulk length"),
    (b"*1 \r\n", "invalid multibulk length"),
    (b"*+1\r\n", "invalid multibulk length"),
    (b"*\r\n", "invalid multibulk length"),
    (b"*3000000000\r\n", "invalid multibulk length"),
    (b"*2147483648\r\n", "invalid multibulk length"),
    (b"*1\r\n+PING\r\n", "expected '$', got '+'"),
    (b"*2\r\n$4\r\nECHO\r\n:1\r\n", "expected '$', got ':'"),
    (b"*2\r\n$4\r\nPING\r\n*1\r\n", "expected '$', got '*'"),
    (b"*1\r\n$-5\r\n", "invalid bulk length"),
    (b"*1\r\n$-1\r\n", "invalid bulk length"),
    (b"*1\r\n$x\r\n", "invalid bulk length"),
    (b"*1\r\n$\r\n", "invalid bulk length"),
    // One byte more than the default proto-max-bulk-len (512 MB).
    (b"*1\r\n$536870913\r\n", "invalid bulk length"),
    (b"\"abc\r\n", "unbalanced quotes in request"),
    (b"ECHO 'a\r\n", "unbalanced quotes in request"),
    (b"ECHO \"a\"b\r\n", "unbalanced quotes in request"),
];

#[test]
fn every_protocol_error_replies_the_exact_text_and_closes_only_that_connection() {
    let pair = Pair::start(&[]);
    // Opened first and kept across all cases: errors elsewhere must not disturb it.
    let mut bystanders: Vec<(&str, Raw)> = pair
        .servers()
        .into_iter()
        .map(|(n, s)| (n, s.raw()))
        .collect();
    for (bytes, msg) in PROTOCOL_ERRORS {
        let reply = format!("-ERR Protocol error: {msg}\r\n");
        pair.check(bytes, &[&reply], true);
        for (name, c) in bystanders.iter_mut() {
            assert_eq!(
                c.cmd(&["PING"]),
                "+PONG\r\n",
                "{name} after {:?}",
                show(bytes)
            );
        }
    }
}

#[test]
fn oversized_inline_requests_and_length_lines_are_protocol_errors() {
    let pair = Pair::start(&[]);
    let mut inline = b"ECHO ".to_vec();
    inline.resize(70 * 1024, b'a');
    let mut mbulk = b"*".to_vec();
    mbulk.resize(70 * 1024, b'1');
    let mut bulk = b"*1\r\n$".to_vec();
    bulk.resize(70 * 1024, b'1');
    for (bytes, msg) in [
        (inline, "too big inline request"),
        (mbulk, "too big mbulk count string"),
        (bulk, "too big bulk count string"),
    ] {
        let reply = format!("-ERR Protocol error: {msg}\r\n");
        pair.check(&bytes, &[&reply], true);
    }
}

#[test]
fn replies_to_requests_before_a_protocol_error_are_still_sent() {
    let pair = Pair::start(&[]);
    pair.check(
        b"PING\r\n*1\r\n$4\r\nPING\r\n*x\r\nPING\r\n",
        &[
            "+PONG\r\n",
            "+PONG\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ],
        true,
    );
}

#[test]
fn a_bulk_longer_than_a_lowered_proto_max_bulk_len_is_a_protocol_error() {
    let pair = Pair::start(&["--proto-max-bulk-len", "1mb"]);
    pair.check(
        b"*2\r\n$4\r\nECHO\r\n$1048577\r\n",
        &["-ERR Protocol error: invalid bulk length\r\n"],
        true,
    );
    // Exactly the limit is accepted.
    let mut ok = b"*2\r\n$4\r\nECHO\r\n$1048576\r\n".to_vec();
    ok.resize(ok.len() + 1_048_576, b'z');
    ok.extend_from_slice(b"\r\n");
    for (name, server) in pair.servers() {
        let mut c = server.raw();
        c.send(&ok);
        let r = c.read_reply().unwrap();
        assert_eq!(r.len(), "$1048576\r\n".len() + 1_048_576 + 2, "{name}");
        assert!(r.starts_with(b"$1048576\r\nzzz"), "{name}");
    }
}

#[test]
fn an_unauthenticated_client_cannot_declare_big_multibulk_or_bulk_lengths() {
    let pair = Pair::start(&["--requirepass", "pw"]);
    pair.check(
        b"*100\r\n",
        &["-ERR Protocol error: unauthenticated multibulk length\r\n"],
        true,
    );
    pair.check(
        b"*11\r\n",
        &["-ERR Protocol error: unauthenticated multibulk length\r\n"],
        true,
    );
    pair.check(
        b"*1\r\n$16385\r\n",
        &["-ERR Protocol error: unauthenticated bulk length\r\n"],
        true,
    );
    // Ordinary commands before AUTH are refused, not treated as protocol errors.
    for (name, server) in pair.servers() {
        let mut c = server.raw();
        assert_eq!(
            c.cmd(&["PING"]),
            "-NOAUTH Authentication required.\r\n",
            "{name}"
        );
        assert_eq!(c.cmd(&["AUTH", "pw"]), "+OK\r\n", "{name}");
        // Once authenticated, the limits are the normal ones.
        let mut del = vec![b"DEL".as_slice()];
        let keys: Vec<String> = (0..99).map(|i| format!("k{i}")).collect();
        del.extend(keys.iter().map(|k| k.as_bytes()));
        c.send(&multibulk(&del));
        assert_eq!(read_n(&mut c, 1), [":0\r\n"], "{name}");
        let big = "x".repeat(20_000);
        assert_eq!(
            c.cmd(&["ECHO", big.as_str()]),
            format!("$20000\r\n{big}\r\n"),
            "{name}"
        );
    }
}

#[test]
fn a_declared_500mb_bulk_with_a_few_bytes_sent_does_not_grow_the_server_memory() {
    let kiln = TestServer::kiln(&[]);
    let mut probe = kiln.raw();
    assert_eq!(probe.cmd(&["PING"]), "+PONG\r\n");
    let pid = kiln.pid();
    let (rss_before, vm_before) = (proc_kib(pid, "VmRSS"), proc_kib(pid, "VmSize"));

    // Four connections each promise 500 MB and send only a small part of it: 8 bytes, then
    // 1 MiB more, so both the first read and the buffer-growth path are exercised.
    let mut hogs = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(("127.0.0.1", kiln.port)).unwrap();
        s.write_all(b"*2\r\n$4\r\nECHO\r\n$524288000\r\nabcdefgh")
            .unwrap();
        hogs.push(s);
    }
    std::thread::sleep(Duration::from_millis(100));
    let chunk = vec![b'x'; 1 << 20];
    for s in &mut hogs {
        s.write_all(&chunk).unwrap();
    }
    // The server has read those bytes by the time it answers a later request.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(probe.cmd(&["PING"]), "+PONG\r\n");
    let (rss_after, vm_after) = (proc_kib(pid, "VmRSS"), proc_kib(pid, "VmSize"));
    let rss_mib = rss_after.saturating_sub(rss_before) / 1024;
    assert!(
        rss_mib < 64,
        "RSS grew by {rss_mib} MiB ({rss_before} KiB -> {rss_after} KiB)"
    );
    // Untouched reservations do not show in RSS, so check the address space as well:
    // reserving the declared lengths up front would add 2000 MiB here.
    let vm_mib = vm_after.saturating_sub(vm_before) / 1024;
    assert!(
        vm_mib < 512,
        "address space grew by {vm_mib} MiB ({vm_before} KiB -> {vm_after} KiB)"
    );

    // The half-sent requests are still pending: nothing was answered on those sockets.
    for s in &mut hogs {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut b = [0u8; 16];
        assert!(
            s.read(&mut b).is_err(),
            "a reply arrived for an incomplete bulk"
        );
    }
}
