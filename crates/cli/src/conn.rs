//! A blocking client connection: TCP, TLS over TCP or a Unix socket, request encoding,
//! reply decoding.
//!
//! Replies are located with an incremental frame scanner before being decoded, so a reply
//! that arrives in many small reads (a huge `KEYS *`, a pipe of thousands of replies) costs
//! linear time: the scanner resumes where it stopped instead of re-parsing from the start.
//! The buffer only grows with bytes that actually arrived; declared lengths never allocate.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use kiln_resp::{DecodeError, Value};

/// Where to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `host:port`
    Tcp(String, u16),
    /// `host:port` over TLS.
    Tls(String, u16, crate::tls::Options),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(host, port) | Self::Tls(host, port, _) => write!(f, "{host}:{port}"),
            Self::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Why a reply could not be read.
#[derive(Debug)]
pub enum ConnError {
    /// A socket error.
    Io(io::Error),
    /// The server closed the connection.
    Eof,
    /// The bytes are not RESP.
    Protocol(String),
}

/// The OS error text without Rust's " (os error N)" suffix, as C's `strerror` prints it.
pub fn io_text(e: &io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    // Name resolution failures: keep getaddrinfo's own words.
    s.strip_prefix("failed to lookup address information: ")
        .map(str::to_string)
        .unwrap_or(s)
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => f.write_str(&io_text(e)),
            Self::Eof => f.write_str("Server closed the connection"),
            Self::Protocol(m) => f.write_str(m),
        }
    }
}

impl From<io::Error> for ConnError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Self::Eof
        } else {
            Self::Io(e)
        }
    }
}

/// The socket itself.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix domain socket.
    Unix(UnixStream),
    /// TLS over TCP.
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// A second handle on the same socket (used to shut it down from a signal thread, or to
    /// write from one thread while reading in another).
    /// A TLS session has one state both ways: it has no second handle (`--pipe` over TLS
    /// is refused).
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Self::Tcp(s) => Self::Tcp(s.try_clone()?),
            Self::Unix(s) => Self::Unix(s.try_clone()?),
            Self::Tls(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "a TLS connection cannot be shared between threads",
                ))
            }
        })
    }

    /// A handle that can only shut the socket down (from a signal thread), whatever the
    /// transport: over TLS, the TCP socket under it.
    pub fn shutdown_handle(&self) -> io::Result<Stream> {
        match self {
            Self::Tls(t) => Ok(Self::Tcp(t.sock.try_clone()?)),
            s => s.try_clone(),
        }
    }

    /// Shuts both directions down: a blocked reader wakes up with end-of-file.
    pub fn shutdown(&self) {
        let _ = match self {
            Self::Tcp(s) => s.shutdown(Shutdown::Both),
            Self::Unix(s) => s.shutdown(Shutdown::Both),
            Self::Tls(t) => t.sock.shutdown(Shutdown::Both),
        };
    }

    /// Sets the read timeout (`None`: block forever).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_read_timeout(t),
            Self::Unix(s) => s.set_read_timeout(t),
            Self::Tls(s) => s.sock.set_read_timeout(t),
        }
    }

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_nonblocking(on),
            Self::Unix(s) => s.set_nonblocking(on),
            Self::Tls(s) => s.sock.set_nonblocking(on),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            Self::Unix(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            Self::Unix(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Tls(s) => s.flush(),
            _ => Ok(()),
        }
    }
}

/// Opens a socket to `target`, giving up after `timeout` if one is set.
pub fn open(target: &Target, timeout: Option<Duration>) -> io::Result<Stream> {
    match target {
        Target::Tcp(host, port) => connect_tcp(host, *port, timeout).map(Stream::Tcp),
        Target::Tls(host, port, options) => {
            let s = connect_tcp(host, *port, timeout)?;
            // The handshake gives up after the connect timeout too.
            if let Some(t) = timeout.filter(|t| !t.is_zero()) {
                s.set_read_timeout(Some(t))?;
            }
            let t = crate::tls::connect(s, host, options)?;
            t.sock.set_read_timeout(None)?;
            Ok(Stream::Tls(Box::new(t)))
        }
        Target::Unix(path) => UnixStream::connect(path).map(Stream::Unix),
    }
}

/// A TCP connection to the first address of `host` that accepts.
fn connect_tcp(host: &str, port: u16, timeout: Option<Duration>) -> io::Result<TcpStream> {
    let addrs: Vec<_> = (host, port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "Name or service not known");
    for addr in addrs {
        let res = match timeout {
            Some(t) if !t.is_zero() => TcpStream::connect_timeout(&addr, t),
            _ => TcpStream::connect(addr),
        };
        match res {
            Ok(s) => {
                // Small request/reply exchanges: don't wait for Nagle.
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Finds where one RESP frame ends, resuming across calls as more bytes arrive.
#[derive(Debug, Default)]
struct FrameScan {
    /// Bytes of the frame already known to be complete elements.
    pos: usize,
    /// Elements still expected by each open aggregate, innermost last.
    open: Vec<i64>,
}

/// Deepest nesting the scanner follows (the decoder's own limit is lower).
const MAX_SCAN_DEPTH: usize = 1024;

impl FrameScan {
    /// Returns the frame's length once `buf` (which starts at the frame) holds all of it.
    fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, String> {
        loop {
            let start = self.pos;
            let Some(&kind) = buf.get(start) else {
                return Ok(None);
            };
            let Some(nl) = buf[start..].iter().position(|&c| c == b'\n') else {
                return Ok(None);
            };
            let line_end = start + nl + 1;
            let line = &buf[start + 1..start + nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let num = || -> Result<i64, String> {
                std::str::from_utf8(line)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| "Protocol error, bad length".to_string())
            };
            let mut children: i64 = 0;
            let mut end = line_end;
            match kind {
                b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {}
                b'$' | b'!' | b'=' => {
                    let n = num()?;
                    if n >= 0 {
                        end = line_end
                            .checked_add(n as usize + 2)
                            .ok_or_else(|| "Protocol error, bad length".to_string())?;
                        if buf.len() < end {
                            return Ok(None);
                        }
                    }
                }
                b'*' | b'~' | b'>' => children = num()?.max(0),
                b'%' => children = num()?.max(0).saturating_mul(2),
                // Attributes annotate the value that follows them.
                b'|' => children = num()?.max(0).saturating_mul(2).saturating_add(1),
                other => {
                    return Err(format!(
                        "Protocol error, got {} as reply type byte",
                        crate::format::repr_string(&[other])
                    ))
                }
            }
            self.pos = end;
            if children > 0 {
                if self.open.len() >= MAX_SCAN_DEPTH {
                    return Err("Protocol error, nesting too deep".into());
                }
                self.open.push(children);
                continue;
            }
            // One element is complete: close every aggregate it completes.
            loop {
                match self.open.last_mut() {
                    None => return Ok(Some(self.pos)),
                    Some(left) => {
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                        self.open.pop();
                    }
                }
            }
        }
    }
}

/// A connection with its read buffer.
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    rbuf: Vec<u8>,
    rpos: usize,
    scan: FrameScan,
    wbuf: Vec<u8>,
}

impl Conn {
    /// Connects to `target`.
    pub fn connect(target: &Target, timeout: Option<Duration>) -> io::Result<Conn> {
        Ok(Self::from_stream(open(target, timeout)?))
    }

    /// Wraps an open socket.
    pub fn from_stream(stream: Stream) -> Conn {
        Conn {
            stream,
            rbuf: Vec::new(),
            rpos: 0,
            scan: FrameScan::default(),
            wbuf: Vec::new(),
        }
    }

    /// The underlying socket.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Queues a command (sent by [`Conn::flush`]).
    pub fn append<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        kiln_resp::encode::request(&mut self.wbuf, args);
    }

    /// Sends everything queued.
    pub fn flush(&mut self) -> io::Result<()> {
        let res = self.stream.write_all(&self.wbuf);
        self.wbuf.clear();
        res
    }

    /// Sends one command and reads its reply.
    pub fn command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value, ConnError> {
        self.append(args);
        self.flush()?;
        self.read_reply()
    }

    /// Reads more bytes into the buffer; `Ok(0)` is end of file.
    fn fill(&mut self) -> io::Result<usize> {
        if self.rpos > 0 && self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        } else if self.rpos > 64 * 1024 && self.rpos * 2 > self.rbuf.len() {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        let old = self.rbuf.len();
        self.rbuf.resize(old + 64 * 1024, 0);
        let res = self.stream.read(&mut self.rbuf[old..]);
        let n = *res.as_ref().unwrap_or(&0);
        self.rbuf.truncate(old + n);
        res
    }

    /// A reply already complete in the buffer, without reading from the socket.
    pub fn buffered_reply(&mut self) -> Result<Option<Value>, ConnError> {
        let avail = &self.rbuf[self.rpos..];
        match self.scan.scan(avail).map_err(ConnError::Protocol)? {
            None => Ok(None),
            Some(len) => {
                let res = kiln_resp::decode(&avail[..len]);
                self.rpos += len;
                self.scan = FrameScan::default();
                match res {
                    Ok((v, _)) => Ok(Some(v)),
                    Err(DecodeError::Invalid(m)) => {
                        Err(ConnError::Protocol(format!("Protocol error, {m}")))
                    }
                    Err(DecodeError::Incomplete) => Err(ConnError::Protocol(
                        "Protocol error, truncated frame".into(),
                    )),
                }
            }
        }
    }

    /// Reads one reply, blocking until it is complete.
    pub fn read_reply(&mut self) -> Result<Value, ConnError> {
        loop {
            if let Some(v) = self.buffered_reply()? {
                return Ok(v);
            }
            match self.fill() {
                Ok(0) => return Err(ConnError::Eof),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ConnError::Io(e)),
            }
        }
    }

    /// Reads raw bytes (replication payloads), taking buffered bytes first.
    pub fn read_raw(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rpos < self.rbuf.len() {
            let n = buf.len().min(self.rbuf.len() - self.rpos);
            buf[..n].copy_from_slice(&self.rbuf[self.rpos..self.rpos + n]);
            self.rpos += n;
            return Ok(n);
        }
        self.stream.read(buf)
    }

    /// Writes raw bytes straight to the socket.
    pub fn write_raw(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(data)
    }

    /// Whether the server is still there: a closed socket shows up as end-of-file without
    /// blocking. Bytes that are already waiting (pushes) are kept in the buffer.
    pub fn is_alive(&mut self) -> bool {
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let res = self.fill();
        let _ = self.stream.set_nonblocking(false);
        match res {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(chunks: &[&[u8]]) -> Vec<Option<usize>> {
        let mut s = FrameScan::default();
        let mut buf = Vec::new();
        chunks
            .iter()
            .map(|c| {
                buf.extend_from_slice(c);
                s.scan(&buf).unwrap()
            })
            .collect()
    }

    #[test]
    fn frames_are_found_across_chunks() {
        let frame: &[u8] = b"*3\r\n$3\r\nabc\r\n%1\r\n+k\r\n*0\r\n|1\r\n+a\r\n:1\r\n_\r\n";
        for split in 0..frame.len() {
            let r = scan_all(&[&frame[..split], &frame[split..]]);
            assert_eq!(r[1], Some(frame.len()), "split at {split}");
            assert_eq!(r[0], None, "split at {split}");
        }
    }

    #[test]
    fn nil_aggregates_and_bulks_are_scalars() {
        assert_eq!(scan_all(&[b"*-1\r\n"]), [Some(5)]);
        assert_eq!(scan_all(&[b"$-1\r\n+x"]), [Some(5)]);
    }

    #[test]
    fn unknown_type_bytes_are_reported_like_hiredis() {
        let mut s = FrameScan::default();
        assert_eq!(
            s.scan(b"?x\r\n").unwrap_err(),
            "Protocol error, got \"?\" as reply type byte"
        );
    }
}
