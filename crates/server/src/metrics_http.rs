//! The metrics endpoint's HTTP side: a minimal, hand-written HTTP/1.1 server that answers
//! `GET /metrics` (and `HEAD`) with whatever text the function it is given renders
//! (`exporter::render`: the Prometheus text format), 404 for any other path and 405 for
//! any other method on `/metrics`. Keep-alive as HTTP/1.1 has it (`Connection: close` and
//! HTTP/1.0 close after the reply); request bodies are not read, so a request announcing
//! one is answered and the connection closed.
//!
//! It runs on a thread and current-thread runtime of its own (`kiln-metrics`): a slow or
//! hostile client can hold a metrics connection open but cannot reach the Redis port's
//! workers or the accept loop. Each connection is bounded: a request head of more than
//! [`MAX_HEAD`] bytes gets 431 and the connection closes; a head that takes longer than
//! [`HEAD_TIMEOUT`] to arrive, a connection idle for [`IDLE_TIMEOUT`], or a reply not
//! taken within [`WRITE_TIMEOUT`], is closed; at most [`MAX_CONNECTIONS`] are open at
//! once (more are closed as they are accepted).
//!
//! Knows nothing of the server: `main` passes the renderer in.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The largest request line plus headers accepted (431 beyond).
pub const MAX_HEAD: usize = 8192;
/// The longest a request head may take to arrive once its first byte has.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a kept-alive connection may wait for its next request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a reply may take to be written (a client that stops reading is dropped).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

/// The Prometheus text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the body of `GET /metrics`.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Binds `addr` now (so that a port in use stops the server at start, as the Redis port
/// does) and serves it from a thread of its own for the life of the process. Returns the
/// bound address.
pub fn start(addr: SocketAddr, render: Render) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("kiln-metrics".into())
        .spawn(move || {
            rt.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(l) => accept_loop(l, render).await,
                    Err(e) => tracing::warn!("Metrics listener: {e}"),
                }
            })
        })?;
    Ok(local)
}

async fn accept_loop(listener: TcpListener, render: Render) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors, mostly: wait rather than spin.
                tracing::debug!("Metrics accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.load(Relaxed) >= MAX_CONNECTIONS {
            drop(stream);
            continue;
        }
        open.fetch_add(1, Relaxed);
        let (open, render) = (open.clone(), render.clone());
        tokio::spawn(async move {
            let _ = connection(stream, &render).await;
            open.fetch_sub(1, Relaxed);
        });
    }
}

/// Serves one connection's requests until it closes, errs, times out or asks to close.
async fn connection(mut stream: TcpStream, render: &Render) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        // The next request's head: wait up to IDLE_TIMEOUT for its first byte, then up to
        // HEAD_TIMEOUT for the rest.
        let (reply, close, used) = loop {
            match step(&buf, render) {
                Step::Reply { bytes, close, used } => break (bytes, close, used),
                Step::TooLarge => return too_large(stream).await,
                Step::Incomplete => {}
            }
            let wait = if buf.is_empty() {
                IDLE_TIMEOUT
            } else {
                HEAD_TIMEOUT
            };
            let mut chunk = [0u8; 2048];
            let n = match tokio::time::timeout(wait, stream.read(&mut chunk)).await {
                Ok(r) => r?,
                Err(_) => return Ok(()),
            };
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        buf.drain(..used);
        write(&mut stream, &reply).await?;
        if close {
            return Ok(());
        }
    }
}

/// What a connection does next with the bytes it holds.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// No whole request head yet: read more.
    Incomplete,
    /// The head is past [`MAX_HEAD`]: answer 431 and close.
    TooLarge,
    /// Send `bytes`, drop the first `used` bytes, and close if `close`.
    Reply {
        bytes: Vec<u8>,
        close: bool,
        used: usize,
    },
}

/// The connection loop's decision for a buffer that starts at a request: the one place
/// that reads client bytes (the `http_request` fuzz target drives it).
pub fn step(buf: &[u8], render: &Render) -> Step {
    match head_end(buf) {
        Some(n) if n <= MAX_HEAD => {
            let (bytes, close) = answer(&parse_head(&buf[..n]), render);
            Step::Reply {
                bytes,
                close,
                used: n,
            }
        }
        Some(_) => Step::TooLarge,
        None if buf.len() > MAX_HEAD => Step::TooLarge,
        None => Step::Incomplete,
    }
}

/// Writes all of `bytes` within [`WRITE_TIMEOUT`].
async fn write(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Answers 431 and closes. The client may still be sending its head: what arrives in the
/// next moments is read and dropped (a bounded amount), so that closing with unread bytes
/// does not reset the connection before the client has read the answer.
async fn too_large(mut stream: TcpStream) -> std::io::Result<()> {
    let reply = response(431, "Request Header Fields Too Large", None, true);
    write(&mut stream, &reply).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 4096];
    let mut left = 1 << 20;
    while left > 0 {
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => left -= n.min(left),
            _ => break,
        }
    }
    Ok(())
}

/// The reply to a parsed request, and whether the connection closes after it.
fn answer(req: &Result<Request, ()>, render: &Render) -> (Vec<u8>, bool) {
    let Ok(req) = req else {
        return (response(400, "Bad Request", None, true), true);
    };
    let close = req.close;
    // Any body the request announced is not read: the connection cannot go on after it.
    let close = close || req.has_body;
    let reply = if req.path != "/metrics" {
        response(404, "Not Found", None, close)
    } else if req.method == "GET" || req.method == "HEAD" {
        let body = render();
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        )
        .into_bytes();
        if req.method == "GET" {
            r.extend_from_slice(body.as_bytes());
        }
        r
    } else {
        response(405, "Method Not Allowed", Some("Allow: GET, HEAD"), close)
    };
    (reply, close)
}

/// A short plain-text reply with no body of interest.
fn response(code: u16, reason: &str, extra: Option<&str>, close: bool) -> Vec<u8> {
    let body = format!("{code} {reason}\n");
    let mut r = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(h) = extra {
        r.push_str(h);
        r.push_str("\r\n");
    }
    if close {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    r.push_str(&body);
    r.into_bytes()
}

/// The length of the request head (through its blank line) if `buf` holds all of it.
/// Bare `\n` line ends are accepted, as most servers accept them.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = &buf[line_start..i];
            if line.is_empty() || line == b"\r" {
                // A blank line before any request line is skipped (RFC 9112 2.2).
                if line_start > 0 && !buf[..line_start].iter().all(|&c| c == b'\r' || c == b'\n') {
                    return Some(i + 1);
                }
            }
            line_start = i + 1;
        }
    }
    None
}

/// What the server needs of a request.
#[derive(Debug, PartialEq)]
struct Request {
    method: String,
    /// The path, without its query string.
    path: String,
    /// The connection closes after the reply.
    close: bool,
    /// The request announced a body (which is never read).
    has_body: bool,
}

/// Parses a request head (as [`head_end`] delimits it). `Err` for anything malformed.
fn parse_head(head: &[u8]) -> Result<Request, ()> {
    let text = std::str::from_utf8(head).map_err(|_| ())?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip_while(|l| l.is_empty());
    let mut parts = lines.next().ok_or(())?.split(' ');
    let (method, target, version) = (
        parts.next().ok_or(())?,
        parts.next().ok_or(())?,
        parts.next().ok_or(())?,
    );
    if parts.next().is_some()
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
        || !target.is_ascii()
    {
        return Err(());
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(()),
    };
    let mut close = http10;
    let mut has_body = false;
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or(())?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(());
        }
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value.parse().map_err(|_| ())?;
            has_body |= n > 0;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            has_body = true;
        }
    }
    let path = target.split(['?', '#']).next().unwrap_or("");
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        close,
        has_body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Result<Request, ()> {
        let n = head_end(text.as_bytes()).expect("a whole head");
        parse_head(&text.as_bytes()[..n])
    }

    #[test]
    fn a_head_ends_at_its_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nGET"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nx"), Some(16));
        // Blank lines before the request line are skipped, not taken for its end.
        assert_eq!(head_end(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"), Some(22));
        assert_eq!(head_end(b"\r\n"), None);
    }

    #[test]
    fn requests_parse_with_their_connection_handling() {
        let r = req("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(
            r,
            Request {
                method: "GET".into(),
                path: "/metrics".into(),
                close: false,
                has_body: false
            }
        );
        assert!(req("GET /metrics HTTP/1.0\r\n\r\n").unwrap().close);
        assert!(
            !req("GET /metrics HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .close
        );
        assert!(
            req("GET /metrics HTTP/1.1\r\nconnection: foo, CLOSE\r\n\r\n")
                .unwrap()
                .close
        );
        assert!(
            req("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\n")
                .unwrap()
                .has_body
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        for bad in [
            "GET /metrics\r\n\r\n",
            "GET /metrics HTTP/2.0\r\n\r\n",
            "GET metrics HTTP/1.1\r\n\r\n",
            "get /metrics HTTP/1.1\r\n\r\n",
            "GET /metrics HTTP/1.1 x\r\n\r\n",
            "GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n",
            "GET /metrics HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET /metrics HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "GET /\u{e9} HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(req(bad), Err(()), "{bad:?}");
        }
        assert_eq!(parse_head(b"\xff\r\n\r\n"), Err(()));
    }

    proptest::proptest! {
        /// Whatever a client sends, finding and parsing the head neither panics nor
        /// reads past it.
        #[test]
        fn any_bytes_are_parsed_or_refused(bytes in proptest::collection::vec(0u8..=255, 0..400)) {
            if let Some(n) = head_end(&bytes) {
                proptest::prop_assert!(n <= bytes.len());
                let _ = parse_head(&bytes[..n]);
            }
        }

        /// A well-formed head ends at its blank line, and its method and path come back.
        #[test]
        fn well_formed_heads_parse(
            method in "[A-Z]{1,7}",
            path in "/[!-~&&[^?#]]{0,20}",
            headers in proptest::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,20}"), 0..6),
        ) {
            let mut text = format!("{method} {path} HTTP/1.1\r\n");
            for (k, v) in &headers {
                text.push_str(&format!("{k}: {v}\r\n"));
            }
            text.push_str("\r\n");
            let bytes = text.as_bytes();
            proptest::prop_assert_eq!(head_end(bytes), Some(bytes.len()));
            // A Content-Length that is no number is refused; anything else parses.
            if let Ok(r) = parse_head(bytes) {
                proptest::prop_assert_eq!(r.method, method);
                proptest::prop_assert_eq!(r.path, path);
            } else {
                let bad_length = headers.iter().any(|(k, v)| {
                    k.eq_ignore_ascii_case("content-length") && v.trim().parse::<u64>().is_err()
                });
                proptest::prop_assert!(bad_length);
            }
        }
    }

    #[test]
    fn answers_by_path_and_method() {
        let render: Render = Arc::new(|| "a 1\n".to_string());
        let text = |r: &str| {
            let (bytes, close) = answer(&req(r), &render);
            (String::from_utf8(bytes).unwrap(), close)
        };
        let (ok, close) = text("GET /metrics HTTP/1.1\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("\r\n\r\na 1\n"));
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4"));
        assert!(!close);
        let (head, _) = text("HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(head.contains("Content-Length: 4\r\n") && head.ends_with("\r\n\r\n"));
        assert!(text("GET / HTTP/1.1\r\n\r\n")
            .0
            .starts_with("HTTP/1.1 404 "));
        let (m, close) = text("DELETE /metrics HTTP/1.1\r\n\r\n");
        assert!(m.starts_with("HTTP/1.1 405 ") && m.contains("Allow: GET, HEAD\r\n"));
        assert!(!close);
        assert!(text("POST /metrics HTTP/1.1\r\nContent-Length: 1\r\n\r\n").1);
        let (bad, close) = answer(&Err(()), &render);
        assert!(bad.starts_with(b"HTTP/1.1 400 ") && close);
    }
}
