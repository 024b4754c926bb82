//! The primary side of a replica link: what a connection does after `PSYNC` or `SYNC`.
//!
//! 1. **Partial resync** when the replica names this server's replication id (or the
//!    previous one, `replid2`, up to `second_repl_offset`) and an offset the backlog still
//!    holds: `+CONTINUE <replid>`, then the stream from that offset.
//! 2. Otherwise a **full sync**: the snapshot point (`Snapshot::begin`) turns the
//!    replication stream on and reads its offset; `+FULLRESYNC <replid> <offset>` goes out,
//!    then the snapshot as an RDB, written on a thread of its own while clients keep
//!    running. A replica that announced `capa eof` gets it in the EOF-marker form
//!    (`$EOF:<40 chars>`, the data, the 40 chars again), and the stream only after its first
//!    `REPLCONF ACK`, because a Redis replica that reads stream bytes in the same read as
//!    the end marker would not find the marker. Others get `$<length>` and the stream right
//!    behind it.
//! 3. **Streaming**: whatever the feed appended since the replica's offset, as it comes.
//!    Meanwhile the replica's `REPLCONF ACK <offset>`s are read and recorded (WAIT, lag).
//!
//! The cron in the parent module pings, trims the backlog, and cuts off replicas that fall
//! too far behind; a killed link ends here through the client handle.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::transport::Conn;

use super::{Action, ReplicaLink, ReplicaState};
use crate::client::Client;
use crate::server::{ClientHandle, Server};
use crate::snapshot::Snapshot;

/// Writes `bytes` and flushes them (over TLS, what the session buffered goes out too).
/// False if the connection broke.
async fn send(wr: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> bool {
    wr.write_all(bytes).await.is_ok() && wr.flush().await.is_ok()
}

/// Bytes of stream (or RDB) sent per write.
const SEND_CHUNK: usize = 256 * 1024;

/// Runs the action a command left to the connection (see [`Action`]). Returns whether the
/// connection carries on as a normal client (WAIT) or is over (a replica link ended).
pub async fn run_action(
    server: &Arc<Server>,
    stream: &mut Conn,
    handle: &Arc<ClientHandle>,
    client: &mut Client,
    action: Action,
    rbuf: &mut Vec<u8>,
    start: usize,
) -> bool {
    match action {
        Action::Wait {
            replicas,
            offset,
            deadline,
        } => wait(server, stream, handle, replicas, offset, deadline, rbuf).await,
        Action::Sync { psync } => {
            let leftover = rbuf[start..].to_vec();
            serve(server, stream, handle, client, psync, leftover).await;
            false
        }
    }
}

/// WAIT's blocking part: replies once `replicas` replicas acknowledged `offset` or the
/// deadline passes, with the count at that moment. Requests the client pipelines behind
/// WAIT are read into `rbuf` and run afterwards.
async fn wait(
    server: &Arc<Server>,
    stream: &mut Conn,
    handle: &Arc<ClientHandle>,
    replicas: u64,
    offset: u64,
    deadline: Option<std::time::Instant>,
    rbuf: &mut Vec<u8>,
) -> bool {
    let repl = &server.repl;
    // Blocked while it waits: INFO `blocked_clients` and CLIENT LIST's `b` flag show it,
    // on every way out.
    struct Blocked<'a>(&'a Server, &'a ClientHandle);
    impl Drop for Blocked<'_> {
        fn drop(&mut self) {
            self.0.repl.waiting.fetch_sub(1, Relaxed);
            crate::command::client::set_flag(&mut self.1.info.lock().flags, 'b', false);
        }
    }
    repl.waiting.fetch_add(1, Relaxed);
    crate::command::client::set_flag(&mut handle.info.lock().flags, 'b', true);
    let _blocked = Blocked(server, handle);
    loop {
        let notified = repl.acks.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if repl.is_replica() {
            // The server became a replica: WAIT is answered as a blocked client is, and
            // the connection closes (Redis's `disconnectAllBlockedClients`).
            let _ = send(stream, crate::error::UNBLOCKED_ROLE_CHANGE.as_bytes()).await;
            return false;
        }
        let n = repl.count_acks(offset);
        let timed_out = deadline.is_some_and(|d| crate::clock::instant() >= d);
        if n >= replicas || timed_out {
            let mut out = Vec::with_capacity(16);
            kiln_resp::encode::integer(&mut out, n as i64);
            server
                .metrics
                .stats
                .local()
                .net_output
                .fetch_add(out.len() as u64, Relaxed);
            return send(stream, &out).await;
        }
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(16 * 1024);
        }
        tokio::select! {
            _ = notified => {}
            _ = timer => {}
            r = stream.read_buf(rbuf) => match r {
                Ok(0) | Err(_) => return false,
                Ok(n) => {
                    server.metrics.stats.local().net_input.fetch_add(n as u64, Relaxed);
                }
            },
            _ = handle.kill.notified() => return false,
        }
        if handle.killed.load(Relaxed) {
            return false;
        }
    }
}

/// Serves one replica until its connection ends.
async fn serve(
    server: &Arc<Server>,
    stream: &mut Conn,
    handle: &Arc<ClientHandle>,
    client: &mut Client,
    psync: Option<(Vec<u8>, i64)>,
    leftover: Vec<u8>,
) {
    let repl = &server.repl;
    let peer_ip = handle
        .addr
        .rsplit_once(':')
        .map_or(handle.addr.clone(), |(ip, _)| ip.to_string());
    let ip = client.repl.ip_address.clone().unwrap_or(peer_ip);
    let port = client.repl.listening_port;
    let capa_eof = client.repl.capa_eof;
    let capa_psync2 = client.repl.capa_psync2;
    handle.info.lock().flags = "S".to_string();
    handle.set_replica();
    let link = repl.attach(handle.clone(), ip, port, psync.is_none());
    let shown = format!("{}:{}", link.ip, link.port);
    tracing::info!("Replica {shown} asks for synchronization");

    let (rd, mut wr) = tokio::io::split(stream);
    let acks = AtomicU64::new(0);
    let ack_wake = tokio::sync::Notify::new();
    let reader = read_acks(server, &link, rd, leftover, &acks, &ack_wake);
    let writer = async {
        let mut full = true;
        if let Some((id, offset)) = &psync {
            if let Some(reply) = try_partial(server, &link, id, *offset, capa_psync2) {
                full = false;
                if !send(&mut wr, reply.as_bytes()).await {
                    return;
                }
            } else if id.as_slice() != b"?" {
                repl.sync_partial_err.fetch_add(1, Relaxed);
            }
        }
        if full {
            tracing::info!("Full resync requested by replica {shown}");
            // ACKs counted before the transfer ends (none are expected: a replica has no
            // master client yet) do not open the stream.
            let seen = acks.load(Relaxed);
            if !full_sync(server, &link, &mut wr, psync.is_some(), capa_eof).await {
                return;
            }
            if capa_eof {
                // Wait for the replica's first ACK after the transfer (see the module docs):
                // counting from before the transfer ended, so an ACK that arrives before
                // this line runs is not missed (that cost a second of stream).
                loop {
                    let n = ack_wake.notified();
                    tokio::pin!(n);
                    n.as_mut().enable();
                    if acks.load(Relaxed) > seen {
                        break;
                    }
                    n.await;
                }
            }
            tracing::info!("Synchronization with replica {shown} succeeded");
        }
        send_stream(server, &link, &mut wr).await;
    };
    if !handle.killed.load(Relaxed) {
        tokio::select! {
            _ = reader => {}
            _ = writer => {}
            _ = handle.kill.notified() => {}
        }
    }
    repl.detach(&link);
    tracing::info!("Connection with replica {shown} lost.");
}

/// Accepts a partial resync if the history allows it: registers the replica's position and
/// returns the `+CONTINUE` line. `offset` is the first byte the replica needs.
fn try_partial(
    server: &Server,
    link: &ReplicaLink,
    id: &[u8],
    offset: i64,
    psync2: bool,
) -> Option<String> {
    let repl = &server.repl;
    if repl.is_replica() && !repl.link_up.load(Relaxed) {
        return None;
    }
    let (replid, replid2, second) = repl.ids();
    let id = std::str::from_utf8(id).ok()?;
    if id != replid && (id != replid2 || offset > second) {
        if id != "?" {
            tracing::info!(
                "Partial resynchronization not accepted: Replication ID mismatch (Replica asked for '{id}', my replication IDs are '{replid}' and '{replid2}')"
            );
        }
        return None;
    }
    let from = u64::try_from(offset).ok()?.checked_sub(1)?;
    // Claim the position first, so the cron cannot trim it away between the check and the
    // first read.
    link.pos.store(from, Relaxed);
    let mut probe = Vec::new();
    if server.feed.read_repl(from, 0, &mut probe).is_err() {
        link.pos.store(u64::MAX, Relaxed);
        tracing::info!(
            "Unable to partial resync with replica {}:{} for lack of backlog (Replica request was: {offset}).",
            link.ip,
            link.port
        );
        return None;
    }
    link.set_state(ReplicaState::Online);
    link.ack_ms.store(crate::clock::now_ms(), Relaxed);
    repl.sync_partial_ok.fetch_add(1, Relaxed);
    let end = server.feed.repl_offset();
    tracing::info!(
        "Partial resynchronization request from {}:{} accepted. Sending {} bytes of backlog starting from offset {offset}.",
        link.ip,
        link.port,
        end.saturating_sub(from)
    );
    Some(if psync2 {
        format!("+CONTINUE {replid}\r\n")
    } else {
        "+CONTINUE\r\n".to_string()
    })
}

/// What the snapshot point records for a full sync.
struct Point {
    replid: String,
    offset: u64,
    stream_db: usize,
}

/// Takes the snapshot point for a replica: turns the replication stream on (Redis creates
/// its backlog when the first replica attaches), reads its offset and claims it as the
/// replica's position (at the point, so the cron cannot trim the backlog past it before the
/// stream starts). Waits while another snapshot is being written.
async fn begin_snapshot(server: &Arc<Server>, link: &ReplicaLink) -> (Snapshot, Point) {
    loop {
        let replica = server.repl.is_replica();
        // On a replica, no command of the primary's stream may be half applied (in the
        // keyspace but not yet in the backlog) at the point.
        let applying = replica.then(|| server.repl.apply_lock.lock());
        let r = Snapshot::begin(server, |s| {
            let offset = s.feed.repl_offset();
            s.feed.enable_repl(offset);
            link.pos.store(offset, Relaxed);
            let stream_db = if replica {
                s.repl.master_db.load(Relaxed)
            } else {
                // The next command the stream carries selects its database.
                s.feed.forget_db();
                0
            };
            Point {
                replid: s.repl.replid(),
                offset,
                stream_db,
            }
        });
        drop(applying);
        match r {
            Ok(x) => return x,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

/// Sends `+FULLRESYNC` (PSYNC only) and the snapshot. False if the replica went away.
async fn full_sync(
    server: &Arc<Server>,
    link: &ReplicaLink,
    wr: &mut (impl AsyncWrite + Unpin),
    psync: bool,
    eof: bool,
) -> bool {
    let repl = &server.repl;
    let (snap, point) = begin_snapshot(server, link).await;
    link.set_state(ReplicaState::SendBulk);
    repl.sync_full.fetch_add(1, Relaxed);
    tracing::info!(
        "Starting snapshot for SYNC with target: replica {}:{} ({})",
        link.ip,
        link.port,
        if eof { "socket" } else { "buffer" }
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    let aux = [
        ("repl-stream-db", point.stream_db.to_string()),
        ("repl-id", point.replid.clone()),
        ("repl-offset", point.offset.to_string()),
    ];
    let spawned = std::thread::Builder::new()
        .name("kiln-repl-rdb".into())
        .spawn(move || {
            let mut w = ChannelWriter {
                tx,
                buf: Vec::with_capacity(SEND_CHUNK),
            };
            let aux: Vec<(&str, String)> = aux.iter().map(|(k, v)| (*k, v.clone())).collect();
            match snap.write_rdb(&mut w, &aux) {
                // An empty chunk marks the end of a complete file.
                Ok(_) => {
                    let _ = w.send().and_then(|()| {
                        w.tx.blocking_send(Vec::new()).map_err(|_| {
                            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "replica gone")
                        })
                    });
                }
                Err(e) => tracing::warn!("Snapshot for a replica not completed: {e}"),
            }
        });
    if spawned.is_err() {
        return false;
    }
    if psync {
        let line = format!("+FULLRESYNC {} {}\r\n", point.replid, point.offset);
        if !send(wr, line.as_bytes()).await {
            return false;
        }
    }
    let mut sent = 0u64;
    if eof {
        let mark = crate::server::random_hex(40);
        let head = format!("$EOF:{mark}\r\n");
        if !send(wr, head.as_bytes()).await {
            return false;
        }
        loop {
            match rx.recv().await {
                Some(chunk) if chunk.is_empty() => break,
                Some(chunk) => {
                    sent += chunk.len() as u64;
                    if !send(wr, &chunk).await {
                        return false;
                    }
                }
                // The snapshot failed: the replica must not load a truncated file.
                None => return false,
            }
        }
        if !send(wr, mark.as_bytes()).await {
            return false;
        }
    } else {
        // The length must come first: collect the whole file.
        let mut data = Vec::new();
        loop {
            match rx.recv().await {
                Some(chunk) if chunk.is_empty() => break,
                Some(chunk) => data.extend_from_slice(&chunk),
                None => return false,
            }
        }
        sent = data.len() as u64;
        let head = format!("${}\r\n", data.len());
        if !send(wr, head.as_bytes()).await || !send(wr, &data).await {
            return false;
        }
    }
    repl.net_repl_out.fetch_add(sent, Relaxed);
    link.ack_ms.store(crate::clock::now_ms(), Relaxed);
    link.set_state(ReplicaState::Online);
    true
}

/// Streams the feed to the replica from its position, forever (until an error; the caller
/// also stops on a kill).
async fn send_stream(server: &Arc<Server>, link: &ReplicaLink, wr: &mut (impl AsyncWrite + Unpin)) {
    let feed = &server.feed;
    let mut buf = Vec::with_capacity(SEND_CHUNK);
    loop {
        let notified = feed.repl_wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        buf.clear();
        let pos = link.pos.load(Relaxed);
        match feed.read_repl(pos, SEND_CHUNK, &mut buf) {
            Err(_) => {
                tracing::warn!(
                    "Replica {}:{} needs offset {pos}, which the backlog no longer holds: closing its link",
                    link.ip,
                    link.port
                );
                return;
            }
            Ok(0) => notified.await,
            Ok(n) => {
                if !send(wr, &buf).await {
                    return;
                }
                link.pos.store(pos + n as u64, Relaxed);
                server.repl.net_repl_out.fetch_add(n as u64, Relaxed);
            }
        }
    }
}

/// Reads what the replica sends: `REPLCONF ACK <offset> [FACK <offset>]` is recorded,
/// anything else ignored. Returns when the connection closes.
async fn read_acks(
    server: &Arc<Server>,
    link: &ReplicaLink,
    mut rd: impl AsyncRead + Unpin,
    mut buf: Vec<u8>,
    acks: &AtomicU64,
    ack_wake: &tokio::sync::Notify,
) {
    let mut ranges = Vec::new();
    let limits = kiln_resp::Limits::default();
    loop {
        let mut start = 0;
        loop {
            match kiln_resp::parse_request(&buf[start..], &mut ranges, &limits) {
                Ok(kiln_resp::Parsed::Complete { consumed }) => {
                    let b = &buf[start..];
                    let args: Vec<&[u8]> = ranges.iter().map(|r| &b[r.clone()]).collect();
                    if args.len() >= 3
                        && args[0].eq_ignore_ascii_case(b"REPLCONF")
                        && args[1].eq_ignore_ascii_case(b"ACK")
                    {
                        if let Some(off) = crate::util::parse_u64(args[2]) {
                            server.repl.ack(link, off);
                            acks.fetch_add(1, Relaxed);
                            ack_wake.notify_waiters();
                        }
                    }
                    start += consumed;
                }
                Ok(kiln_resp::Parsed::Incomplete { .. }) => break,
                Err(_) => return,
            }
        }
        buf.drain(..start);
        if buf.len() > 1 << 20 {
            // A replica has nothing this long to say.
            return;
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                server.repl.net_repl_in.fetch_add(n as u64, Relaxed);
            }
        }
    }
}

/// `io::Write` into a channel of chunks: the snapshot thread's output, which the replica's
/// task forwards to the socket. A closed channel (the replica went away) is a write error,
/// which ends the snapshot.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(SEND_CHUNK));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "replica gone"))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= SEND_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
