//! The byte transports a client connection runs over: TCP, a Unix socket, or TLS over TCP.
//!
//! The connection loop (`net`) is written once, against [`Conn`]. It relies on readiness
//! and non-blocking calls (`readable`, `try_read_buf`, `writable`, `try_write`): a batch's
//! replies leave in one write and whatever the socket does not take waits in the output
//! buffer while requests keep being read. TCP and Unix sockets are Tokio's streams as they
//! are (one `match` per call on the hot path). TLS is a rustls session driven over the
//! TCP stream with the same calls: reads pull records from the socket, decrypt them and
//! hand out the plaintext; writes encrypt into the session's buffer and push what the
//! socket takes. (tokio-rustls's stream only offers `AsyncRead`/`AsyncWrite`, which hide
//! that readiness; it is used for the handshake, which then hands its session over.)
//! [`Conn`] also implements `AsyncRead`/`AsyncWrite`, for the code that waits on a
//! connection outside the loop (WAIT, a blocked client, a replica link).
//!
//! Knows nothing of the server: the server's TLS settings live in `tls`.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// A client connection's transport.
pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsConn>),
}

impl Conn {
    /// Waits until a read may make progress (it may still find nothing: `WouldBlock`).
    /// Polls the socket's readiness directly (one waker slot, the connection task's)
    /// rather than through Tokio's `readable()`, whose waiter list costs more per wait.
    pub fn readable(&self) -> impl std::future::Future<Output = io::Result<()>> + '_ {
        std::future::poll_fn(move |cx| match self {
            Conn::Tcp(s) => s.poll_read_ready(cx),
            Conn::Unix(s) => s.poll_read_ready(cx),
            Conn::Tls(t) if t.buffered => Poll::Ready(Ok(())),
            Conn::Tls(t) => t.tcp.poll_read_ready(cx),
        })
    }

    /// Appends what arrived to `buf` without waiting; `Ok(0)` is the end of the stream.
    ///
    /// A read that stops short of the space it was given found the socket drained at that
    /// moment: the socket's readiness is then cleared as a `WouldBlock` would clear it, so
    /// the next [`Conn::readable`] waits in epoll rather than costing a `read` that finds
    /// nothing (one system call of four per unpipelined request). Tokio keeps a readiness
    /// that arrived after the one this read used (its tick moved on), so no wake-up is lost.
    pub fn try_read_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        macro_rules! read_until_short {
            ($s:expr) => {{
                let s = $s;
                let spare = buf.capacity() - buf.len();
                let mut short = None;
                let r = s.try_io(tokio::io::Interest::READABLE, || {
                    let n = s.try_read_buf(&mut *buf)?;
                    if n == 0 || n >= spare {
                        return Ok(n);
                    }
                    short = Some(n);
                    Err(io::ErrorKind::WouldBlock.into())
                });
                match (r, short) {
                    (Err(_), Some(n)) => Ok(n),
                    (r, _) => r,
                }
            }};
        }
        match self {
            Conn::Tcp(s) => read_until_short!(s),
            Conn::Unix(s) => read_until_short!(s),
            Conn::Tls(t) => t.try_read_buf(buf),
        }
    }

    /// Waits until a write may make progress.
    pub fn writable(&self) -> impl std::future::Future<Output = io::Result<()>> + '_ {
        std::future::poll_fn(move |cx| match self {
            Conn::Tcp(s) => s.poll_write_ready(cx),
            Conn::Unix(s) => s.poll_write_ready(cx),
            Conn::Tls(t) => t.tcp.poll_write_ready(cx),
        })
    }

    /// Writes what the transport takes without waiting. Over TLS, bytes taken may still sit
    /// encrypted in the session's buffer: [`Conn::wants_write`] says so.
    pub fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.try_write(buf),
            Conn::Unix(s) => s.try_write(buf),
            Conn::Tls(t) => t.try_write(buf),
        }
    }

    /// Whether bytes already taken by [`Conn::try_write`] are still waiting for the socket
    /// (only TLS buffers; [`Conn::try_flush`] pushes them).
    pub fn wants_write(&self) -> bool {
        match self {
            Conn::Tls(t) => t.tls.wants_write(),
            _ => false,
        }
    }

    /// Pushes buffered TLS records the socket takes now (`WouldBlock` if some remain).
    pub fn try_flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Tls(t) => t.send_tls(),
            _ => Ok(()),
        }
    }

    /// The socket's descriptor (CLIENT LIST `fd`).
    pub fn raw_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        match self {
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Unix(s) => s.as_raw_fd(),
            Conn::Tls(t) => t.tcp.as_raw_fd(),
        }
    }

    /// Whether the connection came through the Unix socket.
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    pub fn is_unix(&self) -> bool {
        matches!(self, Conn::Unix(_))
    }
}

/// A server-side TLS session over a TCP stream, past its handshake.
pub struct TlsConn {
    tcp: TcpStream,
    tls: rustls::ServerConnection,
    /// Plaintext may be waiting in the session (what arrived with the handshake's last
    /// records): the next `readable` does not wait for the socket.
    buffered: bool,
    /// `close_notify` queued (AsyncWrite::poll_shutdown).
    closing: bool,
}

/// `Read`/`Write` over a Tokio TCP stream that never wait (`WouldBlock` instead), for
/// rustls's `read_tls`/`write_tls`. Tokio clears the stream's readiness on `WouldBlock`,
/// so the next `readable`/`writable` waits for the socket.
struct TryIo<'a>(&'a TcpStream);

impl Read for TryIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for TryIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsConn {
    /// Takes over a session whose handshake is complete (tokio-rustls's `into_inner`).
    pub fn new(tcp: TcpStream, tls: rustls::ServerConnection) -> Self {
        Self {
            tcp,
            tls,
            buffered: true,
            closing: false,
        }
    }

    /// Pushes encrypted records to the socket until the session has none left.
    fn send_tls(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut TryIo(&self.tcp))? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// [`TlsConn::send_tls`], waiting for the socket as needed.
    fn poll_send_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.send_tls() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.tcp.poll_write_ready(cx))?;
                }
                r => return Poll::Ready(r),
            }
        }
    }

    /// Decrypts what the socket has until plaintext is available. Returns how much (0: the
    /// peer closed), or `WouldBlock` when the socket has nothing more.
    fn fill(&mut self) -> io::Result<usize> {
        self.buffered = false;
        loop {
            let state = match self.tls.process_new_packets() {
                Ok(s) => s,
                Err(e) => {
                    // The alert rustls queued for the peer, if the socket takes it.
                    let _ = self.send_tls();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            };
            let avail = state.plaintext_bytes_to_read();
            let closed = state.peer_has_closed();
            // Whatever processing queued (a key update's answer) goes out when it can.
            match self.send_tls() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if avail > 0 {
                return Ok(avail);
            }
            if closed {
                return Ok(0);
            }
            if self.tls.read_tls(&mut TryIo(&self.tcp))? == 0 {
                return Ok(0);
            }
        }
    }

    fn try_read_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let avail = self.fill()?;
        if avail == 0 {
            return Ok(0);
        }
        let len = buf.len();
        buf.resize(len + avail, 0);
        let n = self.tls.reader().read(&mut buf[len..])?;
        buf.truncate(len + n);
        Ok(n)
    }

    fn try_read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = if out.is_empty() { 0 } else { self.fill()? };
        if avail == 0 {
            return Ok(0);
        }
        let n = self.tls.reader().read(out)?;
        // What did not fit stays in the session: the next `readable` must not wait for
        // the socket, which may have nothing more to say.
        self.buffered = n < avail;
        Ok(n)
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send_tls()?;
        let n = self.tls.writer().write(buf)?;
        match self.send_tls() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if n == 0 && !buf.is_empty() {
            // The session's buffer is full: the socket must drain first.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(t) => loop {
                match t.try_read(buf.initialize_unfilled()) {
                    Ok(n) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready!(t.tcp.poll_read_ready(cx))?;
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            },
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(t) => loop {
                match t.try_write(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready!(t.tcp.poll_write_ready(cx))?;
                    }
                    r => return Poll::Ready(r),
                }
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(t) => t.poll_send_tls(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(t) => {
                if !t.closing {
                    t.closing = true;
                    t.tls.send_close_notify();
                }
                ready!(t.poll_send_tls(cx))?;
                Pin::new(&mut t.tcp).poll_shutdown(cx)
            }
        }
    }
}
