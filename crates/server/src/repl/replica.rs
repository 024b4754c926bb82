//! The replica side: the link to the primary, run on a thread of its own with blocking
//! sockets (the RDB load is blocking work anyway, and one connection needs no runtime).
//!
//! One session, from connect to link loss:
//!
//! 1. **Handshake**, one step at a time, each waiting for its reply: `PING`, `AUTH` when
//!    `masterauth` is set, `REPLCONF listening-port`, `REPLCONF ip-address` when
//!    `replica-announce-ip` is set, `REPLCONF capa eof capa psync2`, then `PSYNC <replid>
//!    <offset + 1>` when this server's history may continue (it synced before, or it was a
//!    primary), `PSYNC ? -1` otherwise.
//! 2. `+FULLRESYNC <replid> <offset>`: the RDB arrives as `$<length>` and exactly that many
//!    bytes, or as `$EOF:<mark>`, the data and the mark again; the stream may follow in the
//!    same read. The file is received whole while clients keep reading the old data, then
//!    the dataset is replaced by it. `+CONTINUE [<replid>]`: nothing to load.
//! 3. **The stream**: every command is applied as the primary's own client (no replies,
//!    writes pass the write gate, keys past their deadline stay visible to it) and appended
//!    verbatim to this server's backlog, which keeps its offset equal to the primary's and
//!    relays the stream to this server's own replicas. `REPLCONF GETACK` is answered with
//!    `REPLCONF ACK <offset>`, the offset of every byte processed before the GETACK; the
//!    same ACK goes out every second. The bytes of a transaction (`MULTI` ... `EXEC`) join
//!    the backlog only once `EXEC` applied them (see [`Applied`]).
//!
//! When the link drops the thread reconnects every second and asks to continue from its
//! offset; a role change (`REPLICAOF`) ends the thread (its generation is no longer
//! current).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::wire::{self, LineStep, PsyncReply, RdbPreamble};
use super::{FailoverPhase, LinkState, NO_REPLID};
use crate::client::Client;
use crate::command::{dispatch, Ctx};
use crate::server::{ClientHandle, Server};

/// How long one blocking read waits before the thread checks for a role change.
const POLL: Duration = Duration::from_millis(100);

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Starts the link thread for generation `gen`.
pub fn spawn(server: Arc<Server>, host: String, port: u16, gen: u64) {
    let spawned = std::thread::Builder::new()
        .name("kiln-replica".into())
        .spawn(move || run(server, host, port, gen));
    if let Err(e) = spawned {
        tracing::warn!("Cannot start the replication thread: {e}");
    }
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    /// A newer REPLICAOF or a shutdown: stop for good.
    Stopped,
    /// The link failed: retry.
    Failed(String),
}

impl From<std::io::Error> for End {
    fn from(e: std::io::Error) -> Self {
        End::Failed(e.to_string())
    }
}

fn run(server: Arc<Server>, host: String, port: u16, gen: u64) {
    let repl = &server.repl;
    loop {
        if !live(&server, gen) {
            return;
        }
        match session(&server, &host, port, gen) {
            Err(End::Stopped) => return,
            Err(End::Failed(msg)) => tracing::warn!("{msg}"),
            Ok(()) => {}
        }
        repl.link_up.store(false, Relaxed);
        repl.with_master(gen, |m| {
            m.link = LinkState::Connect;
            m.last_io_ms = 0;
        });
        // Redis's cron retries once a second.
        let until = crate::clock::instant() + Duration::from_secs(1);
        while crate::clock::instant() < until {
            if !live(&server, gen) {
                return;
            }
            std::thread::sleep(POLL);
        }
        tracing::info!("Connecting to MASTER {host}:{port}");
    }
}

/// Whether generation `gen` is still the one to run.
fn live(server: &Server, gen: u64) -> bool {
    server.repl.current(gen) && !server.process.shutting_down.load(Relaxed)
}

/// The link's transport: TCP, or TLS over it (`tls-replication`).
enum Link {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Link {
    fn tcp(&self) -> &TcpStream {
        match self {
            Link::Plain(s) => s,
            Link::Tls(t) => &t.sock,
        }
    }
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Link::Plain(s) => s.read(buf),
            Link::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Link::Plain(s) => s.write(buf),
            Link::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Link::Plain(s) => s.flush(),
            Link::Tls(t) => t.flush(),
        }
    }
}

/// Wraps the link in TLS and completes the handshake (the socket's read timeout is
/// [`POLL`], so a role change is still noticed), within `timeout`.
fn start_tls(
    server: &Server,
    gen: u64,
    s: TcpStream,
    host: &str,
    timeout: Duration,
) -> Result<Link, End> {
    let config = crate::tls::client_config(&server.config.read()).map_err(|e| {
        tracing::warn!("{e}");
        End::Failed("Failed to configure TLS for the link with MASTER".into())
    })?;
    let session = rustls::ClientConnection::new(config, crate::tls::server_name(host))
        .map_err(|e| End::Failed(format!("Unable to connect to MASTER: {e}")))?;
    let mut t = rustls::StreamOwned::new(session, s);
    let started = crate::clock::instant();
    while t.conn.is_handshaking() {
        match t.conn.complete_io(&mut t.sock) {
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                if !live(server, gen) {
                    return Err(End::Stopped);
                }
                if started.elapsed() > timeout {
                    return Err(End::Failed("Timeout connecting to the MASTER...".into()));
                }
            }
            Err(e) => return Err(End::Failed(format!("Unable to connect to MASTER: {e}"))),
        }
    }
    Ok(Link::Tls(Box::new(t)))
}

/// A blocking connection with a read buffer, polling so role changes are noticed.
struct Conn {
    s: Link,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    pos: usize,
}

impl Conn {
    /// Reads more bytes into the buffer. `Ok(0)` means nothing arrived within [`POLL`].
    fn fill(&mut self) -> Result<usize, End> {
        if self.pos > 0 && (self.pos == self.buf.len() || self.pos >= READ_CHUNK) {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK, 0);
        let r = self.s.read(&mut self.buf[len..]);
        match r {
            Ok(0) => {
                self.buf.truncate(len);
                Err(End::Failed("Connection with master lost.".into()))
            }
            Ok(n) => {
                self.buf.truncate(len + n);
                Ok(n)
            }
            // A signal (SIGSTOP/SIGCONT, a profiler) interrupts a read: not a link error.
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut
                    || e.kind() == std::io::ErrorKind::Interrupted =>
            {
                self.buf.truncate(len);
                Ok(0)
            }
            Err(e) => {
                self.buf.truncate(len);
                Err(End::Failed(format!("Error reading from MASTER: {e}")))
            }
        }
    }

    /// The bytes received and not consumed yet.
    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads one line (without its `\r\n`), skipping the empty lines a primary sends to
    /// keep the link alive while it prepares the snapshot. Fails after `timeout` without
    /// any byte.
    fn line(&mut self, server: &Server, gen: u64, timeout: Duration) -> Result<String, End> {
        let mut last = crate::clock::instant();
        loop {
            match wire::next_line(self.pending()) {
                LineStep::Line(line, used) => {
                    self.pos += used;
                    return Ok(line);
                }
                LineStep::More(used) => self.pos += used,
                LineStep::TooLong => {
                    return Err(End::Failed(
                        "Protocol error: the master sent a too long line".into(),
                    ))
                }
            }
            if !live(server, gen) {
                return Err(End::Stopped);
            }
            if self.fill()? > 0 {
                last = crate::clock::instant();
            } else if last.elapsed() > timeout {
                return Err(End::Failed(
                    "Timeout connecting to the MASTER...".to_string(),
                ));
            }
        }
    }

    fn send(&mut self, args: &[&[u8]]) -> Result<(), End> {
        send_on(&mut self.s, args)
    }

    /// Sends a command and reads its one-line reply.
    fn call(
        &mut self,
        server: &Server,
        gen: u64,
        args: &[&[u8]],
        timeout: Duration,
    ) -> Result<String, End> {
        self.send(args)?;
        self.line(server, gen, timeout)
    }
}

/// Sends one command to the primary.
fn send_on(s: &mut Link, args: &[&[u8]]) -> Result<(), End> {
    let mut out = Vec::with_capacity(64);
    crate::feed::encode(&mut out, args);
    s.write_all(&out)
        .and_then(|()| s.flush())
        .map_err(|e| End::Failed(format!("Error writing to MASTER: {e}")))
}

/// `REPLCONF ACK <offset>`.
fn send_ack(s: &mut Link, offset: u64) -> Result<(), End> {
    send_on(s, &[b"REPLCONF", b"ACK", offset.to_string().as_bytes()])
}

/// The parameters a session reads from the config once.
struct Params {
    timeout: Duration,
    masterauth: String,
    masteruser: String,
    announce_ip: String,
    announce_port: u16,
    verify_checksum: bool,
}

fn params(server: &Server) -> Params {
    let c = server.config.read();
    let announce_port = match c.get_u64("replica-announce-port") {
        // Over TLS the primary is told the port its replicas' replicas would use: tls-port.
        0 if c.get_bool("tls-replication") && c.get_u64("tls-port") != 0 => {
            c.get_u64("tls-port") as u16
        }
        0 => server.process.port.load(Relaxed),
        p => p as u16,
    };
    Params {
        timeout: Duration::from_secs(c.get_u64("repl-timeout").max(1)),
        masterauth: c.get("masterauth").to_string(),
        masteruser: c.get("masteruser").to_string(),
        announce_ip: c.get("replica-announce-ip").to_string(),
        announce_port,
        verify_checksum: c.get_bool("rdbchecksum"),
    }
}

/// One connection to the primary: handshake, sync, stream, until the link is lost.
fn session(server: &Arc<Server>, host: &str, port: u16, gen: u64) -> Result<(), End> {
    let repl = &server.repl;
    let p = params(server);
    repl.with_master(gen, |m| m.link = LinkState::Connecting);
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| End::Failed(format!("Unable to connect to MASTER: {e}")))?
        .next()
        .ok_or_else(|| End::Failed("Unable to connect to MASTER: no address".into()))?;
    let s = TcpStream::connect_timeout(&addr, p.timeout)
        .map_err(|e| End::Failed(format!("Error condition on socket for SYNC: {e}")))?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(POLL))?;
    s.set_write_timeout(Some(p.timeout))?;
    let s = if server.config.read().get_bool("tls-replication") {
        start_tls(server, gen, s, host, p.timeout)?
    } else {
        Link::Plain(s)
    };
    let mut c = Conn {
        s,
        buf: Vec::with_capacity(READ_CHUNK),
        pos: 0,
    };
    tracing::info!("MASTER <-> REPLICA sync started");
    repl.with_master(gen, |m| m.link = LinkState::Handshake);

    let reply = c.call(server, gen, &[b"PING"], p.timeout)?;
    let ok_errors = ["-NOAUTH", "-NOPERM", "-ERR operation not permitted"];
    if reply.starts_with('-') && !ok_errors.iter().any(|e| reply.starts_with(e)) {
        return Err(End::Failed(format!(
            "Error reply to PING from master: '{reply}'"
        )));
    }
    tracing::info!("Master replied to PING, replication can continue...");
    if !p.masterauth.is_empty() {
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        if !p.masteruser.is_empty() {
            args.push(p.masteruser.as_bytes());
        }
        args.push(p.masterauth.as_bytes());
        let reply = c.call(server, gen, &args, p.timeout)?;
        if reply.starts_with('-') {
            return Err(End::Failed(format!("Unable to AUTH to MASTER: {reply}")));
        }
    }
    let port_s = p.announce_port.to_string();
    let reply = c.call(
        server,
        gen,
        &[b"REPLCONF", b"listening-port", port_s.as_bytes()],
        p.timeout,
    )?;
    if reply.starts_with('-') {
        tracing::info!(
            "(Non critical) Master does not understand REPLCONF listening-port: {reply}"
        );
    }
    if !p.announce_ip.is_empty() {
        let reply = c.call(
            server,
            gen,
            &[b"REPLCONF", b"ip-address", p.announce_ip.as_bytes()],
            p.timeout,
        )?;
        if reply.starts_with('-') {
            tracing::info!(
                "(Non critical) Master does not understand REPLCONF ip-address: {reply}"
            );
        }
    }
    let reply = c.call(
        server,
        gen,
        &[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"],
        p.timeout,
    )?;
    if reply.starts_with('-') {
        tracing::info!("(Non critical) Master does not understand REPLCONF capa: {reply}");
    }

    // Continue our history if we have one.
    let (cached_id, cached_off) = {
        let st = repl.state.lock();
        if st.history {
            (st.replid.clone(), server.feed.repl_offset() as i64 + 1)
        } else {
            ("?".to_string(), -1)
        }
    };
    if cached_off > 0 {
        tracing::info!("Trying a partial resynchronization (request {cached_id}:{cached_off}).");
    } else {
        tracing::info!("Partial resynchronization not possible (no cached master)");
    }
    let off_s = cached_off.to_string();
    // A primary handing over (FAILOVER) asks its target to become the primary.
    let failover = repl.failover_phase() == FailoverPhase::InProgress;
    let mut psync: Vec<&[u8]> = vec![b"PSYNC", cached_id.as_bytes(), off_s.as_bytes()];
    if failover {
        psync.push(b"FAILOVER");
    }
    let reply = c.call(server, gen, &psync, p.timeout)?;
    let parsed = wire::parse_psync_reply(&reply);
    if failover {
        if parsed.is_ok() {
            super::failover_accepted(server);
        } else {
            tracing::info!("Master does not support PSYNC or is in error state (reply: {reply})");
            super::abort_failover(server, "Failover target rejected psync request");
            return Err(End::Stopped);
        }
    }
    // As in Redis, only a snapshot that came EOF-marked (diskless) is acknowledged at once:
    // such a primary starts the stream on that first ACK. Otherwise the first ACK is the
    // once-a-second one, or the answer to a GETACK.
    let ack_now = match parsed.map_err(End::Failed)? {
        PsyncReply::FullResync { replid, offset } => {
            tracing::info!("Full resync from master: {replid}:{offset}");
            full_sync(server, &mut c, gen, &p, replid, offset)?
        }
        PsyncReply::Continue { replid } => {
            tracing::info!("Successful partial resynchronization with master.");
            continue_sync(server, gen, replid)?;
            tracing::info!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
            false
        }
    };
    follow_stream(server, &mut c, gen, host, port, &p, ack_now)
}

/// After `+CONTINUE [<replid>]`: adopt the primary's id if it changed (keeping ours as
/// `replid2`, so our own replicas continue too) and carry on from our offset.
fn continue_sync(server: &Server, gen: u64, new_id: &str) -> Result<(), End> {
    let repl = &server.repl;
    let _applying = repl.apply_lock.lock();
    if !live(server, gen) {
        return Err(End::Stopped);
    }
    let offset = server.feed.repl_offset();
    server.feed.enable_repl(offset);
    let mut st = repl.state.lock();
    if !new_id.is_empty() && new_id != st.replid {
        st.replid2 = std::mem::replace(&mut st.replid, new_id.to_string());
        st.second_offset = offset as i64 + 1;
        tracing::info!("Master replication ID changed to {new_id}");
        drop(st);
        repl.disconnect_replicas();
    }
    Ok(())
}

/// Receives the RDB after `+FULLRESYNC` and replaces the dataset with it. `Ok(true)` when
/// the snapshot came in the EOF-marker form.
fn full_sync(
    server: &Server,
    c: &mut Conn,
    gen: u64,
    p: &Params,
    replid: &str,
    offset: u64,
) -> Result<bool, End> {
    let repl = &server.repl;
    repl.with_master(gen, |m| {
        m.link = LinkState::Transfer;
        m.transfer_size = -1;
        m.transfer_read = 0;
        m.transfer_last_io_ms = crate::clock::now_ms();
    });
    let head = c.line(server, gen, p.timeout)?;
    let preamble = wire::parse_rdb_preamble(&head).map_err(End::Failed)?;
    let marked = matches!(preamble, RdbPreamble::EofMark(_));
    let data = match preamble {
        RdbPreamble::EofMark(mark) => {
            tracing::info!(
                "MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF to memory"
            );
            receive_until_mark(server, c, gen, p, mark)?
        }
        RdbPreamble::Length(len) => {
            tracing::info!("MASTER <-> REPLICA sync: receiving {len} bytes from master to memory");
            repl.with_master(gen, |m| m.transfer_size = len as i64);
            receive_exact(server, c, gen, p, len)?
        }
    };
    repl.net_repl_in.fetch_add(data.len() as u64, Relaxed);

    let _applying = repl.apply_lock.lock();
    if !live(server, gen) {
        return Err(End::Stopped);
    }
    // Our replicas' history is gone: they must sync again, from the new data.
    repl.disconnect_replicas();
    // Clients get -LOADING rather than a half-loaded dataset.
    repl.set_loading(true);
    tracing::info!("MASTER <-> REPLICA sync: Flushing old data");
    flush_all(server);
    tracing::info!("MASTER <-> REPLICA sync: Loading DB in memory");
    let opts = crate::rdb::LoadOptions {
        replica: true,
        replace_existing: true,
        verify_checksum: p.verify_checksum,
        size_hint: Some(data.len() as u64),
    };
    let loaded = crate::rdb::load(server.rdb_target(), &data[..], opts);
    repl.set_loading(false);
    let stats = match loaded {
        Ok(s) => s,
        Err(e) => {
            flush_all(server);
            repl.state.lock().history = false;
            return Err(End::Failed(format!(
                "Failed trying to load the MASTER synchronization DB from socket: {e}"
            )));
        }
    };
    drop(data);
    let stream_db = stats
        .aux
        .iter()
        .find(|(k, _)| k == b"repl-stream-db")
        .and_then(|(_, v)| crate::util::parse_u64(v))
        .filter(|&d| (d as usize) < server.keyspace.dbs.len())
        .unwrap_or(0);
    repl.master_db.store(stream_db as usize, Relaxed);
    {
        let mut st = repl.state.lock();
        st.replid = replid.to_string();
        st.replid2 = NO_REPLID.to_string();
        st.second_offset = -1;
        st.history = true;
    }
    // The backlog restarts at the primary's offset, empty.
    server.feed.disable_repl();
    server.feed.enable_repl(offset);
    server.feed.set_repl_proxy(true);
    tracing::info!(
        "Done loading RDB, keys loaded: {}, keys expired: {}.",
        stats.keys,
        stats.expired_skipped
    );
    tracing::info!("MASTER <-> REPLICA sync: Finished with success");
    Ok(marked)
}

/// Empties every database and the function libraries (before loading the primary's
/// snapshot, which carries its own).
fn flush_all(server: &Server) {
    crate::storage::LockSet::new(&server.keyspace).each(|sh| sh.clear());
    server.scripts.libraries.write().clear();
}

/// Records transfer progress for INFO and checks the transfer timeout.
fn transfer_progress(
    server: &Server,
    gen: u64,
    got: usize,
    total: u64,
    last: &mut Instant,
    timeout: Duration,
) -> Result<(), End> {
    if got > 0 {
        *last = crate::clock::instant();
        server.repl.with_master(gen, |m| {
            m.transfer_read = total;
            m.transfer_last_io_ms = crate::clock::now_ms();
        });
    } else if last.elapsed() > timeout {
        return Err(End::Failed(
            "Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in kiln.conf to a larger value.".into(),
        ));
    }
    Ok(())
}

/// Receives exactly `len` bytes of RDB; whatever follows stays buffered (the stream).
fn receive_exact(
    server: &Server,
    c: &mut Conn,
    gen: u64,
    p: &Params,
    len: u64,
) -> Result<Vec<u8>, End> {
    // Never reserve by a length the peer sent: grow with what arrives.
    let mut data = Vec::with_capacity((len as usize).min(1 << 20));
    let mut last = crate::clock::instant();
    loop {
        let want = (len - data.len() as u64) as usize;
        let take = want.min(c.pending().len());
        data.extend_from_slice(&c.buf[c.pos..c.pos + take]);
        c.pos += take;
        if data.len() as u64 == len {
            return Ok(data);
        }
        if !live(server, gen) {
            return Err(End::Stopped);
        }
        let n = c.fill()?;
        transfer_progress(server, gen, n, data.len() as u64, &mut last, p.timeout)?;
    }
}

/// Receives RDB data up to the end marker; whatever follows the marker stays buffered.
fn receive_until_mark(
    server: &Server,
    c: &mut Conn,
    gen: u64,
    p: &Params,
    mark: &[u8],
) -> Result<Vec<u8>, End> {
    let mut data: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut last = crate::clock::instant();
    loop {
        let searched = data.len();
        data.extend_from_slice(c.pending());
        c.pos = c.buf.len();
        if let Some(at) = wire::find_eof_mark(&data, searched, mark) {
            let after = data.split_off(at);
            // Bytes after the mark are the stream: put them back in the read buffer.
            let rest = &after[mark.len()..];
            c.buf.drain(..c.pos);
            c.pos = 0;
            c.buf.splice(0..0, rest.iter().copied());
            return Ok(data);
        }
        if !live(server, gen) {
            return Err(End::Stopped);
        }
        let n = c.fill()?;
        transfer_progress(server, gen, n, data.len() as u64, &mut last, p.timeout)?;
    }
}

/// Applies the primary's stream until the link is lost.
fn follow_stream(
    server: &Arc<Server>,
    c: &mut Conn,
    gen: u64,
    host: &str,
    port: u16,
    p: &Params,
    ack_now: bool,
) -> Result<(), End> {
    let repl = &server.repl;
    // The primary's client, as CLIENT LIST shows it (`flags=M`); CLIENT KILL TYPE master
    // drops the link.
    let now = crate::clock::now_ms();
    let id = server.next_client_id();
    let laddr =
        c.s.tcp()
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
    let fd = {
        use std::os::fd::AsRawFd;
        c.s.tcp().as_raw_fd()
    };
    let handle = Arc::new(ClientHandle::new(
        id,
        format!("{host}:{port}"),
        laddr,
        fd,
        now,
    ));
    handle.info.lock().flags = "M".to_string();
    server.clients.lock().insert(id, handle.clone());
    let mut client = Client::new(handle.clone(), false);
    client.repl.master = true;
    client.select(repl.master_db.load(Relaxed));

    repl.link_up.store(true, Relaxed);
    repl.with_master(gen, |m| {
        m.link = LinkState::Connected;
        m.last_io_ms = now;
    });
    let result = apply_loop(server, c, gen, &handle, &mut client, p, ack_now);
    server.clients.lock().remove(&id);
    repl.link_up.store(false, Relaxed);
    let lost = crate::clock::now_ms();
    repl.with_master(gen, |m| {
        m.down_since_ms = lost;
        m.link = LinkState::Connect;
        m.last_io_ms = 0;
    });
    if live(server, gen) {
        tracing::warn!("Connection with master lost.");
    }
    result
}

fn apply_loop(
    server: &Arc<Server>,
    c: &mut Conn,
    gen: u64,
    handle: &ClientHandle,
    client: &mut Client,
    p: &Params,
    ack_now: bool,
) -> Result<(), End> {
    let repl = &server.repl;
    let limits = wire::stream_limits();
    // Resumable: a long command that arrives over many reads is scanned once, not again
    // from its first byte after every read.
    let mut parser = kiln_resp::RequestParser::new();
    let mut out = Vec::new();
    let mut applied = Applied::default();
    let mut last_io = crate::clock::instant();
    let mut last_ack = crate::clock::instant();
    if ack_now {
        last_ack -= Duration::from_secs(2);
    }
    loop {
        if !live(server, gen) {
            return Err(End::Stopped);
        }
        if handle.killed.load(Relaxed) {
            return Err(End::Failed(
                "The master link was killed (CLIENT KILL)".into(),
            ));
        }
        // Apply every complete command buffered, under the apply lock (see `Repl`). GETACKs
        // are answered once it is released (a slow socket must not hold the lock).
        let mut acks: Vec<u64> = Vec::new();
        if !c.pending().is_empty() {
            let applying = repl.apply_lock.lock();
            if !live(server, gen) {
                return Err(End::Stopped);
            }
            let mut cx = Ctx::new(server, client, &mut out);
            // Keys past their deadline stay until the primary's DEL, for its commands too.
            cx.set_replaying();
            loop {
                let buf = &c.buf[c.pos..];
                match parser.parse(buf, &limits) {
                    Ok(kiln_resp::Parsed::Complete { consumed }) => {
                        let args: Vec<&[u8]> =
                            parser.args().iter().map(|r| &buf[r.clone()]).collect();
                        if wire::is_getack(&args) {
                            // The offset before this GETACK: everything applied so far.
                            acks.push(server.feed.repl_offset());
                        } else if !args.is_empty() {
                            dispatch(&mut cx, &args);
                            cx.out.buf.clear();
                        }
                        applied.push(server, &buf[..consumed], cx.client.multi.is_some());
                        repl.net_repl_in.fetch_add(consumed as u64, Relaxed);
                        c.pos += consumed;
                    }
                    Ok(kiln_resp::Parsed::Incomplete { .. }) => break,
                    Err(e) => return Err(End::Failed(format!("Protocol error from MASTER: {e}"))),
                }
            }
            repl.master_db.store(cx.client.db, Relaxed);
            drop(cx);
            drop(applying);
            if out.capacity() > 1 << 16 {
                out = Vec::new();
            }
        }
        for off in acks {
            send_ack(&mut c.s, off)?;
            last_ack = crate::clock::instant();
        }
        if last_ack.elapsed() >= Duration::from_secs(1) {
            send_ack(&mut c.s, server.feed.repl_offset())?;
            last_ack = crate::clock::instant();
        }
        let n = c.fill()?;
        if n > 0 {
            last_io = crate::clock::instant();
            let now = crate::clock::now_ms();
            let read = server.feed.repl_offset() + (applied.held.len() + c.pending().len()) as u64;
            repl.with_master(gen, |m| {
                m.last_io_ms = now;
                m.read_offset = read;
            });
        } else if last_io.elapsed() > p.timeout {
            return Err(End::Failed(
                "MASTER timeout: no data nor PING received...".into(),
            ));
        }
    }
}

/// Moves the primary's stream bytes into this server's backlog once the commands they carry
/// are applied, which is what the offset (ACKs, INFO, ROLE, PSYNC after a link loss, the
/// snapshot point for our own replicas) promises.
///
/// A command inside `MULTI` is only queued when it arrives: its data changes at `EXEC`.
/// Appending each command's bytes as it was dispatched let the offset run ahead of the data
/// whenever a read ended inside a transaction (a Redis or Kiln primary writes
/// `MULTI ... EXEC` in one piece, but TCP may deliver it in several): `REPLCONF ACK`,
/// `slave_repl_offset` and `ROLE` acknowledged writes not applied, a snapshot for a chained
/// replica taken then lacked them while its stream started at `EXEC`, and a link lost
/// there made the next `PSYNC` continue after the queued commands, which the new master
/// client never saw: the transaction was lost for good. So the bytes of an open
/// transaction are held here and join the backlog together with its `EXEC` (or
/// `DISCARD`); when the link is lost they are dropped with the master client's queue, and
/// the primary sends the transaction again from its `MULTI`.
#[derive(Default)]
struct Applied {
    /// Bytes of the open transaction, `MULTI` included.
    held: Vec<u8>,
}

impl Applied {
    /// Records one command's bytes; `in_multi`: the master client is inside `MULTI` after
    /// it (the command was queued, or was the `MULTI`).
    fn push(&mut self, server: &Server, bytes: &[u8], in_multi: bool) {
        if in_multi {
            self.held.extend_from_slice(bytes);
        } else if self.held.is_empty() {
            server.feed.append_repl_verbatim(bytes);
        } else {
            self.held.extend_from_slice(bytes);
            server.feed.append_repl_verbatim(&self.held);
            self.held.clear();
            if self.held.capacity() > 1 << 16 {
                self.held = Vec::new();
            }
        }
    }
}
