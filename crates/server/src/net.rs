//! Listening, worker threads and the per-connection loop.
//!
//! Threading: `threads` worker threads each run a single-threaded Tokio runtime. The main
//! thread accepts connections and hands each to a worker, round robin; a connection then
//! lives on that one thread, so its reads, command execution and writes never cross threads
//! (no work stealing, no cross-core wakeups on the hot path). Workers share the keyspace,
//! whose shards have their own locks (see `storage::keyspace`).
//!
//! The connection loop: read what the socket has, parse and execute *every* complete
//! request in the buffer, then write all replies with one write. Pipelines therefore cost
//! one read and one write per batch, not per command.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::client::Client;
use crate::command::blocking::{self, WaitState};
use crate::command::{dispatch, Ctx};
use crate::config::Config;
use crate::pubsub::{Limits as OutputLimits, Subscriber};
use crate::server::{set_stats_slot, ClientHandle, Server, ThreadStats};
use crate::transport::{Conn, TlsConn};
use kiln_resp::{Limits, Parsed, RequestParser};

/// A bound listening socket, before the runtime takes it.
pub enum Listener {
    /// `port` (plain) or `tls-port` (TLS) on one bind address.
    Tcp {
        listener: std::net::TcpListener,
        tls: bool,
    },
    /// `unixsocket`; clients show as `<path>:0`.
    Unix {
        listener: std::os::unix::net::UnixListener,
        path: String,
    },
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Binds what the configuration asks for: `port` and `tls-port` on every `bind` address
/// (`*` is every IPv4 address, `::*` every IPv6 one; an address written `-addr` is
/// skipped if it does not exist here), and `unixsocket`. Sets up TLS first when asked for
/// (a configuration that does not load stops the server, as in Redis). Errors are
/// redis-server's log lines.
pub fn bind(server: &Server) -> std::io::Result<Vec<Listener>> {
    let c = server.config.read().clone();
    let (port, tls_port) = (c.get_u64("port") as u16, c.get_u64("tls-port") as u16);
    if crate::tls::wanted(&c) {
        match crate::tls::server_config(&c) {
            Ok(cfg) => server.tls.install(Some(cfg)),
            Err(e) => {
                tracing::warn!("{e}");
                return Err(other("Failed to configure TLS. Check logs for more info."));
            }
        }
    }
    let mut out = Vec::new();
    for (port, tls) in [(port, false), (tls_port, true)] {
        out.extend(bind_tcp(&c, port, tls)?);
    }
    let path = c.get("unixsocket");
    if !path.is_empty() {
        // A socket file left by a previous run would fail the bind (Redis unlinks it too).
        let _ = std::fs::remove_file(path);
        let l = std::os::unix::net::UnixListener::bind(path)
            .map_err(|e| other(format!("Failed opening Unix socket: {e}")))?;
        let perm = u32::from_str_radix(c.get("unixsocketperm"), 8).unwrap_or(0);
        if perm != 0 {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(perm))
                .map_err(|e| other(format!("Failed opening Unix socket: {e}")))?;
        }
        l.set_nonblocking(true).map_err(other)?;
        out.push(Listener::Unix {
            listener: l,
            path: path.to_string(),
        });
    }
    if out.is_empty() {
        return Err(other("Configured to not listen anywhere, exiting."));
    }
    // INFO's tcp_port and a replica's announced port: the plain port, else the TLS one.
    let bound = out.iter().find_map(|l| match l {
        Listener::Tcp { listener, tls } if !tls || port == 0 => listener.local_addr().ok(),
        _ => None,
    });
    if let Some(a) = bound {
        server.process.port.store(a.port(), Relaxed);
    }
    Ok(out)
}

/// Listeners for `port` on every `bind` address (none for port 0); `tls` marks them as
/// the `tls-port`'s. An optional (`-addr`) address that does not exist here is skipped.
fn bind_tcp(c: &Config, port: u16, tls: bool) -> std::io::Result<Vec<Listener>> {
    let mut out = Vec::new();
    if port == 0 {
        return Ok(out);
    }
    let backlog = c.get_u64("tcp-backlog").clamp(1, i32::MAX as u64) as i32;
    let kind = if tls { "tls" } else { "tcp" };
    for (a, optional) in c.bind_addrs() {
        let ip: std::net::IpAddr = match a.as_str() {
            "*" => std::net::Ipv4Addr::UNSPECIFIED.into(),
            "::*" => std::net::Ipv6Addr::UNSPECIFIED.into(),
            a => a
                .parse()
                .map_err(|e| other(format!("Invalid bind address '{a}': {e}")))?,
        };
        match listen_tcp(SocketAddr::new(ip, port), backlog) {
            Ok(l) => out.push(Listener::Tcp { listener: l, tls }),
            Err(e) => {
                tracing::warn!(
                    "Warning: Could not create server TCP listening socket {a}:{port}: {e}"
                );
                let missing = matches!(
                    e.raw_os_error(),
                    Some(libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT)
                );
                if optional && missing {
                    continue;
                }
                return Err(other(format!(
                    "Failed listening on port {port} ({kind}), aborting."
                )));
            }
        }
    }
    Ok(out)
}

/// The TCP accept loops (plain and TLS), so CONFIG SET `port` / `tls-port` / `bind` can
/// stop them: each has a stop signal, and says when its listener is closed.
#[derive(Default)]
struct TcpLoops {
    /// Each loop's stop signal, with whether it serves the `tls-port`.
    running: Mutex<Vec<(bool, Arc<Stop>)>>,
}

impl TcpLoops {
    /// Starts an accept loop for `l` (through `spawn`) that [`rebind`] can stop.
    fn start(&self, l: Listener, spawn: &(dyn Fn(Listener, Arc<Stop>) + Send + Sync)) {
        let stop = Arc::new(Stop::default());
        let tls = matches!(l, Listener::Tcp { tls: true, .. });
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((tls, stop.clone()));
        spawn(l, stop);
    }

    /// Takes the stop signals of the loops of one kind (TLS or plain).
    fn take(&self, tls: bool) -> Vec<Arc<Stop>> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let (taken, kept) = std::mem::take(&mut *running)
            .into_iter()
            .partition(|(t, _)| *t == tls);
        *running = kept;
        taken.into_iter().map(|(_, s)| s).collect()
    }
}

#[derive(Default)]
struct Stop {
    asked: tokio::sync::Notify,
    closed: Mutex<bool>,
    done: std::sync::Condvar,
}

impl Stop {
    /// Asks the loop to stop and waits (a bounded time) until its listener is closed.
    fn stop_and_wait(&self) {
        self.asked.notify_one();
        let mut closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = crate::clock::instant() + Duration::from_secs(5);
        while !*closed {
            let left = deadline.saturating_duration_since(crate::clock::instant());
            if left.is_zero() {
                break;
            }
            closed = match self.done.wait_timeout(closed, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    fn mark_closed(&self) {
        *self.closed.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.done.notify_all();
    }
}

/// Rebinds the TCP listeners for `new` (CONFIG SET `port`, `tls-port`, `bind`), as Redis
/// does: the old ones of each kind whose port or address changed close, the new ones open;
/// when they cannot, the old ones come back and the error says which parameter failed.
fn rebind(
    server: &Server,
    loops: &TcpLoops,
    spawn: &(dyn Fn(Listener, Arc<Stop>) + Send + Sync),
    new: &Config,
) -> Result<(), String> {
    let old = server.config.read().clone();
    let changed = |n: &str| old.get(n) != new.get(n);
    let port_changed = changed("port") || changed("tls-port");
    // (kind is TLS, its port parameter)
    let kinds: Vec<(bool, &str)> = [(false, "port"), (true, "tls-port")]
        .into_iter()
        .filter(|(_, p)| changed(p) || changed("bind"))
        .collect();
    for &(tls, _) in &kinds {
        for s in loops.take(tls) {
            s.stop_and_wait();
        }
    }
    let start = |c: &Config| -> std::io::Result<()> {
        let mut listeners = Vec::new();
        for &(tls, port) in &kinds {
            listeners.extend(bind_tcp(c, c.get_u64(port) as u16, tls)?);
        }
        if let Some(Listener::Tcp { listener, .. }) = listeners
            .iter()
            .find(|l| matches!(l, Listener::Tcp { tls: false, .. }))
        {
            if let Ok(a) = listener.local_addr() {
                server.process.port.store(a.port(), Relaxed);
            }
        }
        for l in listeners {
            loops.start(l, spawn);
        }
        Ok(())
    };
    if let Err(e) = start(new) {
        tracing::warn!("{e}");
        // What opened of the new ones closes again before the old ones come back.
        for &(tls, _) in &kinds {
            for s in loops.take(tls) {
                s.stop_and_wait();
            }
        }
        if let Err(e) = start(&old) {
            tracing::warn!("Failed to restore the old listening sockets: {e}");
        }
        return Err(if port_changed {
            "Unable to listen on this port. Check server logs.".into()
        } else {
            "Failed to bind to specified addresses.".into()
        });
    }
    Ok(())
}

/// A non-blocking TCP listener on `addr`; an IPv6 one takes IPv6 only (Redis's
/// `IPV6_V6ONLY`), so `* ::*` binds both families on one port.
fn listen_tcp(addr: SocketAddr, backlog: i32) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(backlog)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The start-up log lines that say where clients can connect.
pub fn log_ready(server: &Server) {
    let c = server.config.read();
    if c.get_u64("port") != 0 {
        tracing::info!("Ready to accept connections tcp");
    }
    if c.get_u64("tls-port") != 0 {
        tracing::info!("Ready to accept connections tls");
    }
    let path = c.get("unixsocket");
    if !path.is_empty() {
        tracing::info!("The server is now ready to accept connections at {path}");
    }
}

/// Removes the Unix socket file at shutdown, as Redis does.
pub fn remove_unix_socket(server: &Server) {
    let path = server.config.read().get("unixsocket").to_string();
    if !path.is_empty() {
        tracing::info!("Removing the unix socket file.");
        let _ = std::fs::remove_file(path);
    }
}

/// Runs the server until SHUTDOWN or a signal: starts workers, accepts, runs the cron.
pub fn serve(server: Arc<Server>, listeners: Vec<Listener>) -> std::io::Result<()> {
    let mut handles = Vec::new();
    let mut joins = Vec::new();
    for i in 0..server.process.threads {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        handles.push(rt.handle().clone());
        let srv = server.clone();
        joins.push(
            std::thread::Builder::new()
                .name(format!("kiln-worker-{i}"))
                .spawn(move || {
                    set_stats_slot(i);
                    rt.block_on(async {
                        while !srv.process.shutting_down.load(Relaxed) {
                            let n = srv.process.shutdown.notified();
                            if srv.process.shutting_down.load(Relaxed) {
                                break;
                            }
                            n.await;
                        }
                    });
                    // Dropping the runtime drops every connection task: sockets close.
                    drop(rt);
                })
                .map_err(|e| std::io::Error::other(e.to_string()))?,
        );
    }

    let main_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    set_stats_slot(server.process.threads);
    // TCP accept loops run on this runtime from wherever they are started (at start, and
    // by CONFIG SET `port` / `tls-port` / `bind` from a worker thread).
    let loops = Arc::new(TcpLoops::default());
    let spawn: Arc<dyn Fn(Listener, Arc<Stop>) + Send + Sync> = {
        let (main, srv, workers) = (
            main_rt.handle().clone(),
            Arc::downgrade(&server),
            handles.clone(),
        );
        Arc::new(move |l: Listener, stop: Arc<Stop>| {
            let (Listener::Tcp { listener, tls }, Some(srv)) = (l, srv.upgrade()) else {
                stop.mark_closed();
                return;
            };
            let workers = workers.clone();
            main.spawn(async move {
                match TcpListener::from_std(listener) {
                    Ok(l) => accept_loop(srv, Listening::Tcp(l, tls), workers, Some(&stop)).await,
                    Err(e) => tracing::warn!("Listening: {e}"),
                }
                // The listener is closed once the loop has returned.
                stop.mark_closed();
            });
        })
    };
    {
        let (srv, loops, spawn) = (Arc::downgrade(&server), loops.clone(), spawn.clone());
        let _ = server
            .process
            .rebind
            .set(Box::new(move |new: &crate::config::Config| {
                match srv.upgrade() {
                    Some(s) => rebind(&s, &loops, &*spawn, new),
                    None => Ok(()),
                }
            }));
    }
    main_rt.block_on(async {
        let mut tasks = Vec::new();
        for l in listeners {
            let l = match l {
                Listener::Tcp { .. } => {
                    loops.start(l, &*spawn);
                    continue;
                }
                Listener::Unix { listener, path } => {
                    Listening::Unix(UnixListener::from_std(listener).map_err(other)?, path)
                }
            };
            tasks.push(tokio::spawn(accept_loop(
                server.clone(),
                l,
                handles.clone(),
                None,
            )));
        }
        // Its own thread: the cron may wait for shards (a script can hold them for
        // seconds), and this one must keep accepting connections and signals meanwhile.
        let srv = server.clone();
        std::thread::Builder::new()
            .name("kiln-cron".into())
            .spawn(move || crate::cron::run(srv))?;
        crate::repl::start(&server);
        let srv = server.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::warn!("Received shutdown signal, scheduling shutdown...");
            srv.request_shutdown();
        });
        loop {
            let n = server.process.shutdown.notified();
            if server.process.shutting_down.load(Relaxed) {
                break;
            }
            n.await;
        }
        for t in tasks {
            t.abort();
        }
        Ok::<_, std::io::Error>(())
    })?;
    for j in joins {
        let _ = j.join();
    }
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A listener in the accepting runtime.
enum Listening {
    Tcp(TcpListener, bool),
    Unix(UnixListener, String),
}

/// An accepted socket on its way to a worker thread (std types cross runtimes).
enum Accepted {
    Tcp {
        stream: std::net::TcpStream,
        peer: SocketAddr,
        tls: bool,
    },
    Unix {
        stream: std::os::unix::net::UnixStream,
        path: String,
    },
}

/// Accepts connections and hands each to a worker thread, round robin, until `stop` (if
/// any) is asked; the listener is dropped (closed) when this returns.
async fn accept_loop(
    server: Arc<Server>,
    listener: Listening,
    workers: Vec<tokio::runtime::Handle>,
    stop: Option<&Stop>,
) {
    let mut next = 0usize;
    loop {
        let accept = async {
            match &listener {
                Listening::Tcp(l, tls) => l.accept().await.and_then(|(s, peer)| {
                    Ok(Accepted::Tcp {
                        stream: s.into_std()?,
                        peer,
                        tls: *tls,
                    })
                }),
                Listening::Unix(l, path) => l.accept().await.and_then(|(s, _)| {
                    Ok(Accepted::Unix {
                        stream: s.into_std()?,
                        path: path.clone(),
                    })
                }),
            }
        };
        let accepted = tokio::select! {
            a = accept => a,
            _ = async {
                match stop {
                    Some(s) => s.asked.notified().await,
                    None => std::future::pending().await,
                }
            } => return,
        };
        let accepted = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("Accepting client connection: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let worker = &workers[next % workers.len()];
        next = next.wrapping_add(1);
        let srv = server.clone();
        worker.spawn(async move {
            if let Some((conn, peer, laddr)) = open(&srv, accepted).await {
                connection(srv, conn, peer, laddr).await;
            }
        });
    }
}

/// Turns an accepted socket into the connection's transport on its worker thread, with
/// its peer and local addresses as CLIENT LIST shows them. A TLS handshake runs here, in
/// the connection's own task: a slow or failed one holds up no other client.
async fn open(server: &Server, accepted: Accepted) -> Option<(Conn, String, String)> {
    match accepted {
        Accepted::Unix { stream, path } => {
            let s = UnixStream::from_std(stream).ok()?;
            let addr = format!("{path}:0");
            Some((Conn::Unix(s), addr.clone(), addr))
        }
        Accepted::Tcp { stream, peer, tls } => {
            let s = TcpStream::from_std(stream).ok()?;
            let _ = s.set_nodelay(true);
            let laddr = s.local_addr().map(|a| a.to_string()).unwrap_or_default();
            if !tls {
                return Some((Conn::Tcp(s), peer.to_string(), laddr));
            }
            let config = server.tls.acceptor()?;
            let fd = {
                use std::os::fd::AsRawFd;
                s.as_raw_fd()
            };
            // A client that never finishes its handshake is an idle client: `timeout`
            // closes it as it closes any other.
            let idle = server.hot.timeout.load(Relaxed);
            let handshake = tokio_rustls::TlsAcceptor::from(config).accept(s);
            let done = if idle == 0 {
                handshake.await
            } else {
                tokio::time::timeout(Duration::from_secs(idle), handshake)
                    .await
                    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
            };
            match done {
                Ok(t) => {
                    let (tcp, session) = t.into_inner();
                    let conn = Conn::Tls(Box::new(TlsConn::new(tcp, session)));
                    Some((conn, peer.to_string(), laddr))
                }
                Err(e) => {
                    tracing::warn!("Error accepting a client connection: {e} (conn: fd={fd})");
                    None
                }
            }
        }
    }
}

/// Replies the socket has not taken yet, and the client's output-limit bookkeeping.
#[derive(Default)]
struct Output {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already written.
    sent: usize,
    /// When the unsent replies first reached the soft limit (unix ms); 0 while under it.
    soft_since: u64,
}

impl Output {
    fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Writes as much as the socket takes without waiting; false if the connection broke.
    fn write_some(
        &mut self,
        stream: &mut Conn,
        stats: &ThreadStats,
        handle: &ClientHandle,
    ) -> bool {
        while self.sent < self.buf.len() {
            match stream.try_write(&self.buf[self.sent..]) {
                Ok(0) => return false,
                Ok(n) => {
                    self.sent += n;
                    stats.net_output.fetch_add(n as u64, Relaxed);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        if self.sent == self.buf.len() {
            self.buf.clear();
            self.sent = 0;
            if self.buf.capacity() > 4 * READ_CHUNK {
                self.buf.shrink_to(READ_CHUNK);
            }
            // Over TLS, records the session still holds go out as the socket takes them.
            if stream.wants_write() {
                match stream.try_flush() {
                    Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return false,
                    _ => {}
                }
            }
        } else if self.sent >= self.buf.len() / 2 {
            // Moving the unsent half costs no more than what was just written.
            self.buf.drain(..self.sent);
            self.sent = 0;
        }
        handle.output_buf.store(self.pending() as u64, Relaxed);
        true
    }

    /// Writes everything, unless the client is killed meanwhile: a client that stopped
    /// reading must not pin its task in a write forever (CLIENT KILL, output limits).
    async fn write_all(
        &mut self,
        stream: &mut Conn,
        stats: &ThreadStats,
        handle: &ClientHandle,
    ) -> bool {
        loop {
            if handle.killed.load(Relaxed) || !self.write_some(stream, stats, handle) {
                return false;
            }
            if self.pending() == 0 && !stream.wants_write() {
                return true;
            }
            tokio::select! {
                biased;
                r = stream.writable() => if r.is_err() {
                    return false;
                },
                _ = handle.kill.notified() => return false,
            }
        }
    }

    /// The one way replies leave the connection: waits for the AOF first if `how` says
    /// so, appends a subscriber's published messages once no reply is left unsent (a
    /// subscription's confirmation precedes the channel's first message; until then they
    /// wait in the subscriber's queue, under its pubsub limit), writes what the socket
    /// takes, and with `how.all` the rest too. False if the connection is to close: the
    /// socket broke, the client was killed while it waited, or the subscriber overflowed.
    async fn flush(
        &mut self,
        server: &Server,
        stream: &mut Conn,
        stats: &ThreadStats,
        handle: &ClientHandle,
        how: Flush<'_>,
    ) -> bool {
        if how.durable {
            wait_aof_synced(server).await;
        }
        if let Some(s) = how.messages {
            // (Logged as the connection ends.)
            if s.overflowed.load(Relaxed) {
                return false;
            }
            if self.pending() == 0 {
                s.drain_into(&mut self.buf);
            }
        }
        if !self.write_some(stream, stats, handle) {
            return false;
        }
        !how.all || self.write_all(stream, stats, handle).await
    }
}

/// What [`Output::flush`] does besides writing what the socket takes now.
#[derive(Default, Clone, Copy)]
struct Flush<'s> {
    /// Wait first until the AOF holds on disk everything appended so far: under
    /// `appendfsync always`, replies to writes go out only then.
    durable: bool,
    /// The connection's subscriber, whose published messages follow the replies.
    messages: Option<&'s Subscriber>,
    /// Write everything before returning: what follows waits on something other than the
    /// socket (closing, a replica link, WAIT, a blocked command).
    all: bool,
}

/// The `client-output-buffer-limit` class that applies to a client: `pubsub` while it is
/// subscribed to something, `normal` otherwise (replicas are watched by `repl`).
fn output_limits(server: &Server, subscriber: bool) -> OutputLimits {
    if subscriber {
        server.pubsub.limits()
    } else {
        server.hot.obuf_normal.get()
    }
}

/// Waits until everything appended to the AOF so far is written and fsynced (group commit:
/// the AOF writer thread's one fsync releases every connection waiting for it, and this
/// worker keeps serving its other connections meanwhile).
async fn wait_aof_synced(server: &Server) {
    let (epoch, offset) = server.aof.sync_point(server);
    server.aof.wait_synced(epoch, offset).await;
}

/// How much the read buffer grows at least per read.
const READ_CHUNK: usize = 16 * 1024;

/// Unsent reply bytes that output limits do not count: Redis's per-client reply buffer
/// (only what overflows it into the reply list counts there).
const REPLY_BUF: usize = crate::command::client::REPLY_BUF as usize;

/// What a connection costs besides its buffers: its state, its handle, its parser.
const CLIENT_BASE: usize = std::mem::size_of::<Client>()
    + std::mem::size_of::<ClientHandle>()
    + std::mem::size_of::<RequestParser>();

/// What a connection last reported of the memory it holds (CLIENT LIST's `qbuf`,
/// `qbuf-free`, `rbs`, `multi-mem`, `tot-mem`; the totals `maxmemory-clients` limits).
#[derive(Default)]
struct Held {
    total: usize,
    /// Commands of the MULTI queue already counted in `multi_bytes`.
    multi_len: usize,
    multi_bytes: usize,
}

impl Held {
    /// Reports what the connection holds now: its read buffer's and reply buffer's
    /// capacities and its MULTI queue (only commands queued since the last report are
    /// measured). True if the total grew. A subscriber's queued messages are counted by
    /// its queue.
    fn report(
        &mut self,
        h: &ClientHandle,
        rbuf: &[u8],
        start: usize,
        rbuf_cap: usize,
        reply_cap: usize,
        multi: Option<&crate::command::transaction::Multi>,
    ) -> bool {
        h.query_buf.store((rbuf.len() - start) as u64, Relaxed);
        h.query_free.store((rbuf_cap - rbuf.len()) as u64, Relaxed);
        h.reply_cap.store(reply_cap as u64, Relaxed);
        match multi {
            Some(m) if m.queue.len() >= self.multi_len => {
                for cmd in &m.queue[self.multi_len..] {
                    let args: usize = cmd.iter().map(|a| a.capacity() + ARG_COST).sum();
                    self.multi_bytes += args + ARG_COST;
                }
                self.multi_len = m.queue.len();
            }
            _ => {
                self.multi_len = 0;
                self.multi_bytes = 0;
            }
        }
        h.multi_mem.store(self.multi_bytes as u64, Relaxed);
        let total = CLIENT_BASE + rbuf_cap + reply_cap + self.multi_bytes;
        if total == self.total {
            return false;
        }
        let grew = total > self.total;
        self.total = total;
        h.set_conn_mem(total as u64);
        grew
    }
}

/// What a queued command costs besides its arguments' bytes: a `Vec` header per argument
/// and one for the command.
const ARG_COST: usize = std::mem::size_of::<Vec<u8>>();

/// Client eviction (`maxmemory-clients`): while the normal and pub/sub clients together
/// hold the limit or more, closes the evictable client that holds the most (never a
/// replica, the primary's link, or a client with CLIENT NO-EVICT ON). What an evicted
/// client held leaves the totals at once; its connection closes after its current
/// command. One thread evicts at a time: another finding the limit crossed meanwhile goes
/// on, and the one evicting sees what it added. O(N log N) in clients, only when over.
fn evict_clients(server: &Server) {
    let totals = &server.clients.mem;
    let Some(mut last_warning) = totals.evicting.try_lock() else {
        return;
    };
    if !totals.over_limit() {
        return;
    }
    let mut candidates: Vec<(u64, Arc<ClientHandle>)> = server
        .clients
        .lock()
        .values()
        .filter(|h| !h.killed.load(Relaxed))
        .map(|h| (h.memory(), h.clone()))
        .collect();
    candidates.retain(|(_, h)| crate::command::client::evictable(h));
    candidates.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
    for (_, h) in candidates {
        if !totals.over_limit() {
            return;
        }
        tracing::info!(
            "Evicting client: {}",
            crate::command::client::info_line(server, &h)
        );
        h.kill();
        h.release_mem();
        totals.evicted.fetch_add(1, Relaxed);
    }
    let now = crate::clock::now_ms();
    if totals.over_limit() && now.saturating_sub(*last_warning) >= 1000 {
        *last_warning = now;
        tracing::warn!("Over client maxmemory after evicting all evictable clients");
    }
}

/// Whether protected mode turns this peer away: Redis 7's check, made per connection
/// whatever `bind` says, when the default user has no password.
fn protected_mode_denies(server: &Server, handle: &ClientHandle) -> bool {
    !handle.is_local()
        && server.acl.default_user().rules().nopass
        && server.config.read().get_bool("protected-mode")
}

/// One client connection, from accept to close, whatever its transport.
async fn connection(server: Arc<Server>, mut stream: Conn, peer: String, laddr: String) {
    let stats = server.metrics.stats.local();
    let now = crate::clock::now_ms();
    let fd = stream.raw_fd();
    let id = server.next_client_id();
    let mut handle = ClientHandle::new(id, peer, laddr, fd, now);
    if stream.is_unix() {
        handle = handle.with_unix();
    }
    if stream.is_tls() {
        handle = handle.with_tls();
    }
    if protected_mode_denies(&server, &handle) {
        stats.rejected_connections.fetch_add(1, Relaxed);
        let mut reply = Vec::new();
        kiln_resp::encode::error(&mut reply, crate::error::DENIED_PROTECTED_MODE.as_bytes());
        let _ = stream.write_all(&reply).await;
        let _ = stream.flush().await;
        return;
    }
    let handle = Arc::new(handle.with_totals(server.clients.mem.clone()));
    let admitted = {
        let mut clients = server.clients.lock();
        let ok = (clients.len() as u64) < server.hot.maxclients.load(Relaxed);
        if ok {
            clients.insert(id, handle.clone());
        }
        ok
    };
    if !admitted {
        stats.rejected_connections.fetch_add(1, Relaxed);
        let _ = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        let _ = stream.flush().await;
        return;
    }
    // As in Redis, a rejected connection is not counted as received.
    stats.connections.fetch_add(1, Relaxed);
    // From here on the client is registered; the guard undoes it on every way out.
    let mut client = Registered {
        server: server.clone(),
        client: {
            let mut c = Client::new(handle.clone(), false);
            crate::command::acl::connect(&server, &mut c);
            c
        },
    };

    let mut rbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut start = 0usize; // parsed-up-to offset in rbuf
    let mut parser = RequestParser::new();
    let mut out = Output::default();
    let mut held = Held::default();
    // False right after a blocked command finished: requests already buffered behind it
    // run before the socket is read again.
    let mut need_read = true;

    'conn: loop {
        // Make room: compact consumed bytes, then ensure spare capacity. A partly received
        // request moves to the front; the parser's offsets are relative to its first byte.
        if start > 0 {
            rbuf.drain(..start);
            start = 0;
        }
        if need_read {
            if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
                rbuf.reserve(READ_CHUNK.max(rbuf.len()));
            }
            // `timeout` (seconds): close clients idle that long, as Redis does (not
            // subscribers, which only listen).
            let sub = client.subscriber.clone();
            let idle = if sub.is_some() {
                0
            } else {
                server.hot.timeout.load(Relaxed)
            };
            let idle_timer = async move {
                if idle == 0 {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_secs(idle)).await;
            };
            // Replies the socket did not take yet go out as it drains, while requests keep
            // being read and run (as Redis does), so a client that does not read its
            // replies meets its output buffer limit instead of stalling its requests.
            let writing = out.pending() > 0 || stream.wants_write();
            let n = tokio::select! {
                r = stream.readable() => match r.and_then(|()| stream.try_read_buf(&mut rbuf)) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue 'conn,
                    Err(_) => break,
                },
                r = stream.writable(), if writing => {
                    if r.is_err()
                        || !out.flush(&server, &mut stream, stats, &handle, Flush::default()).await
                    {
                        break;
                    }
                    continue 'conn;
                }
                _ = handle.kill.notified() => break,
                _ = idle_timer => break,
                _ = async {
                    match &sub {
                        Some(s) => s.notify.notified().await,
                        None => std::future::pending().await,
                    }
                }, if !writing => {
                    // Published messages (and shard channels the server unsubscribed):
                    // write them and go back to waiting.
                    crate::command::pubsub::apply_revocations(&mut client, &mut out.buf);
                    let how = Flush { messages: sub.as_deref(), ..Flush::default() };
                    if !out.flush(&server, &mut stream, stats, &handle, how).await {
                        break;
                    }
                    continue 'conn;
                }
            };
            if handle.killed.load(Relaxed) {
                break;
            }
            stats.net_input.fetch_add(n as u64, Relaxed);
            // (last_interaction_ms is stamped by Ctx::new, which reads the clock anyway.)
            // Like Redis, a query buffer over `client-query-buffer-limit` closes the client
            // before anything in it runs (no reply).
            let pending = rbuf.len() - start;
            if pending as u64 > server.hot.client_query_buffer_limit.load(Relaxed) {
                let (rcap, ocap) = (rbuf.capacity(), out.buf.capacity());
                held.report(&handle, &rbuf, start, rcap, ocap, None);
                tracing::warn!(
                    "Closing client that reached max query buffer length: {} (qbuf initial bytes: {})",
                    crate::command::client::info_line(&server, &handle),
                    kiln_formats::aof::manifest::sdscatrepr(&rbuf[start..start + pending.min(64)])
                );
                break;
            }
            // What arrived is held now (CLIENT LIST shows the running command's bytes in
            // `qbuf`, as Redis does); a read buffer grown for a big argument may cross
            // `maxmemory-clients`.
            let (rcap, ocap) = (rbuf.capacity(), out.buf.capacity());
            let multi = client.multi.as_ref();
            if held.report(&handle, &rbuf, start, rcap, ocap, multi)
                && server.clients.mem.over_limit()
            {
                evict_clients(&server);
                if handle.killed.load(Relaxed) {
                    break;
                }
            }
        }
        need_read = true;

        // Execute every complete request in the buffer.
        let limits = Limits {
            max_bulk_len: server.hot.proto_max_bulk_len.load(Relaxed) as usize,
            unauthenticated: !client.authenticated,
            ..Limits::default()
        };
        // The `pubsub` class is for clients with subscriptions (as Redis classes them): a
        // monitor or a tracking client has a message queue but is `normal`.
        let pubsub_class = client.subscribed();
        let obuf_limits = output_limits(&server, pubsub_class);
        let mut protocol_error = None;
        let mut over_output_limit = false;
        let mut evicted = false;
        let mut paused = false;
        // Changes made by this batch (the counter is this worker thread's own, and nothing
        // else runs on the thread while the batch executes).
        let dirty_before = stats.dirty.load(Relaxed);
        {
            let mut held_reply_cap = out.buf.capacity();
            let mut cx = Ctx::new(&server, &mut client, &mut out.buf);
            let mut argv: Vec<&[u8]> = Vec::new();
            let mut owned: Vec<Vec<u8>>;
            loop {
                let buf = &rbuf[start..];
                match parser.parse(
                    buf,
                    &Limits {
                        unauthenticated: !cx.client.authenticated,
                        ..limits
                    },
                ) {
                    Ok(Parsed::Complete { consumed }) => {
                        let ranges = parser.args();
                        if !ranges.is_empty() {
                            argv.clear();
                            let inline: Vec<&[u8]>;
                            let args: &[&[u8]] = if buf[0] == b'*' {
                                argv.extend(ranges.iter().map(|r| &buf[r.clone()]));
                                &argv
                            } else {
                                owned = ranges
                                    .iter()
                                    .map(|r| {
                                        let a = &buf[r.clone()];
                                        kiln_resp::request::unquote_inline_arg(a)
                                            .unwrap_or_else(|| a.to_vec())
                                    })
                                    .collect();
                                inline = owned.iter().map(|v| &v[..]).collect();
                                &inline
                            };
                            // CLIENT PAUSE: the request stays in the buffer until the
                            // pause is over (one relaxed load when there is none).
                            if let Some(kind) = server.pause.active(crate::clock::now_ms) {
                                if crate::command::client::paused_for(&cx, args, kind) {
                                    paused = true;
                                    break;
                                }
                            }
                            dispatch(&mut cx, args);
                        }
                        start += consumed;
                        let unsent = (cx.out.buf.len() - out.sent).saturating_sub(REPLY_BUF);
                        if obuf_limits.exceeded(unsent as u64, &mut out.soft_since) {
                            over_output_limit = true;
                            break;
                        }
                        // Replies grew the buffer: what the client holds grew with it.
                        if cx.out.buf.capacity() != held_reply_cap {
                            held_reply_cap = cx.out.buf.capacity();
                            let multi = cx.client.multi.as_ref();
                            let rcap = rbuf.capacity();
                            if held.report(&handle, &rbuf, start, rcap, held_reply_cap, multi)
                                && server.clients.mem.over_limit()
                            {
                                evict_clients(&server);
                                if handle.killed.load(Relaxed) {
                                    evicted = true;
                                    break;
                                }
                            }
                        }
                        if cx.client.close_after_reply
                            || cx.client.blocked.is_some()
                            || cx.client.repl.action.is_some()
                            || cx.client.migrate.is_some()
                        {
                            break;
                        }
                    }
                    Ok(Parsed::Incomplete { hint }) => {
                        if let Some(total) = hint {
                            // A big bulk is on its way: grow once, bounded by what the
                            // protocol limit allows and doubling what already arrived.
                            let total = start + total;
                            let want = total.min(rbuf.len().saturating_mul(2) + READ_CHUNK);
                            if want > rbuf.capacity() {
                                rbuf.reserve(want - rbuf.len());
                            }
                        }
                        break;
                    }
                    Err(e) => {
                        protocol_error = Some(e);
                        break;
                    }
                }
            }
        }
        if over_output_limit {
            // Redis drops the client at once, and its pending replies with it.
            handle.output_buf.store(out.pending() as u64, Relaxed);
            let (rcap, ocap) = (rbuf.capacity(), out.buf.capacity());
            held.report(&handle, &rbuf, start, rcap, ocap, None);
            tracing::warn!(
                "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
                crate::command::client::info_line(&server, &handle)
            );
            break;
        }
        if evicted {
            break;
        }
        if let Some(e) = protocol_error {
            kiln_resp::encode::error(&mut out.buf, format!("ERR {e}").as_bytes());
            client.close_after_reply = true;
            tracing::debug!("Protocol error from client {id}: {e}");
        }
        handle.output_buf.store(out.pending() as u64, Relaxed);
        let (rcap, ocap) = (rbuf.capacity(), out.buf.capacity());
        held.report(&handle, &rbuf, start, rcap, ocap, client.multi.as_ref());
        // Whoever grew (this client, or subscribers of what it published) pays here.
        if server.clients.mem.over_limit() {
            evict_clients(&server);
            if handle.killed.load(Relaxed) {
                break;
            }
        }
        crate::command::pubsub::apply_revocations(&mut client, &mut out.buf);
        let how = Flush {
            durable: server.aof.fsync_always() && stats.dirty.load(Relaxed) != dirty_before,
            messages: client.subscriber.as_deref(),
            all: client.close_after_reply
                || client.repl.action.is_some()
                || client.blocked.is_some()
                || client.migrate.is_some(),
        };
        if !out.flush(&server, &mut stream, stats, &handle, how).await {
            break;
        }
        if client.close_after_reply {
            break;
        }
        if paused {
            // Wait for the pause to change or end (or a kill), then parse the held request
            // again: it may still be paused, or run now.
            let changed = server.pause.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = crate::clock::now_ms();
            if server.pause.active(|| now).is_some() {
                // FAILOVER's pause has no deadline: look again at least hourly.
                let left = Duration::from_millis(
                    server.pause.until_ms().saturating_sub(now).min(3_600_000),
                );
                server.pause.waiting.fetch_add(1, Relaxed);
                crate::command::client::set_flag(&mut handle.info.lock().flags, 'b', true);
                let killed = tokio::select! {
                    _ = &mut changed => false,
                    _ = tokio::time::sleep(left) => false,
                    _ = handle.kill.notified() => true,
                };
                crate::command::client::set_flag(&mut handle.info.lock().flags, 'b', false);
                server.pause.waiting.fetch_sub(1, Relaxed);
                if killed {
                    break;
                }
            }
            need_read = false;
            continue;
        }
        // WAIT waits here; PSYNC / SYNC turn the connection into a replica link.
        if let Some(action) = client.repl.action.take() {
            if !crate::repl::primary::run_action(
                &server,
                &mut stream,
                &handle,
                &mut client,
                action,
                &mut rbuf,
                start,
            )
            .await
            {
                break;
            }
            need_read = false;
            continue;
        }
        // MIGRATE read its keys: the network round trip runs here, with no lock held and
        // the worker's other connections served, then the command ends (deleting what the
        // target took) and replies. Requests pipelined behind it wait in the buffer.
        if let Some(pending) = client.migrate.take() {
            let outcome = crate::migrate::exchange(&server.migrate, &pending.job).await;
            {
                let mut cx = Ctx::new(&server, &mut client, &mut out.buf);
                crate::command::migrate::finish(&mut cx, *pending, outcome);
            }
            let how = Flush {
                durable: server.aof.fsync_always(),
                messages: client.subscriber.as_deref(),
                all: true,
            };
            if !out.flush(&server, &mut stream, stats, &handle, how).await {
                break;
            }
            need_read = false;
            continue;
        }
        // A blocking command found nothing: wait for data, a timeout, CLIENT UNBLOCK, a
        // kill or a disconnect. Requests sent meanwhile stay buffered until it is over.
        while let Some(blocked) = client.blocked.take() {
            let w = blocked.waiter;
            let mut close_after = false;
            let state = loop {
                let timeout = async {
                    match blocked.deadline {
                        Some(d) => tokio::time::sleep_until(d.into()).await,
                        None => std::future::pending().await,
                    }
                };
                if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
                    rbuf.reserve(READ_CHUNK);
                }
                tokio::select! {
                    _ = w.notify.notified() => {}
                    _ = timeout => {
                        w.finish(WaitState::TimedOut);
                    }
                    r = stream.read_buf(&mut rbuf) => match r {
                        Ok(0) | Err(_) => {
                            blocking::unregister(&server, &w);
                            break 'conn;
                        }
                        Ok(n) => {
                            stats.net_input.fetch_add(n as u64, Relaxed);
                        }
                    },
                    _ = handle.kill.notified() => {
                        blocking::unregister(&server, &w);
                        break 'conn;
                    }
                }
                let st = w.state.lock().clone();
                if st != WaitState::Waiting {
                    break st;
                }
            };
            blocking::unregister(&server, &w);
            match state {
                WaitState::Served(reply) => {
                    // Its command ran on the serving client's thread and fed its effects
                    // before this wake-up: a WAIT from this client covers them.
                    if server.feed.is_active() {
                        client.repl.woff = server.feed.repl_offset();
                    }
                    out.buf.extend(reply);
                }
                WaitState::Unblocked(reply) => out.buf.extend(reply),
                WaitState::Closing(reply) => {
                    out.buf.extend(reply);
                    close_after = true;
                }
                WaitState::TimedOut => out
                    .buf
                    .extend_from_slice(blocking::timeout_reply(client.resp3)),
                WaitState::Retry => {
                    // Could not be served in place: run the command again, normally.
                    let argv: Vec<&[u8]> = w.argv.iter().map(|a| &a[..]).collect();
                    let mut cx = Ctx::new(&server, &mut client, &mut out.buf);
                    dispatch(&mut cx, &argv);
                }
                WaitState::Waiting => {}
            }
            // The command that served this client wrote (a pop): its effect must be durable
            // before the reply under `appendfsync always`.
            let how = Flush {
                durable: server.aof.fsync_always(),
                messages: None,
                all: true,
            };
            if !out.flush(&server, &mut stream, stats, &handle, how).await || close_after {
                break 'conn;
            }
            need_read = false;
        }
        if rbuf.capacity() > 4 * READ_CHUNK && rbuf.len() - start < READ_CHUNK {
            rbuf.drain(..start);
            start = 0;
            rbuf.shrink_to(READ_CHUNK);
        }
    }
    if client
        .subscriber
        .as_ref()
        .is_some_and(|s| s.overflowed.load(Relaxed))
    {
        tracing::warn!(
            "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
            crate::command::client::info_line(&server, &handle)
        );
    }
}

/// A registered connection's client. Dropping it undoes everything the connection left in
/// shared state: its block, subscriptions, WATCHes and registry entry, on every way the
/// connection task ends (a break, a return, or the task dropped at shutdown), not only at
/// the end of the loop.
struct Registered {
    server: Arc<Server>,
    client: Client,
}

impl std::ops::Deref for Registered {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for Registered {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let server = &self.server;
        let client = &mut self.client;
        if let Some(b) = client.blocked.take() {
            blocking::unregister(server, &b.waiter);
        }
        crate::command::pubsub::unsubscribe_all(server, client);
        server.tracking.forget(client.id);
        if client.monitor {
            server.monitors.remove(client.id);
            server.observers_changed();
        }
        if !client.watched.is_empty() {
            let mut out = Vec::new();
            let mut cx = Ctx::new(server, client, &mut out);
            crate::command::transaction::unwatch_all(&mut cx);
        }
        server.clients.lock().remove(&client.id);
        client.handle.release_mem();
    }
}
