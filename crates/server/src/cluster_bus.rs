//! The cluster bus: this node's side of Redis Cluster's node-to-node protocol on the
//! cluster port (the messages are `kiln_formats::cluster::bus`), and the cluster's cron.
//! Started by `main` in cluster mode; it drives `crate::cluster`'s state with the whole
//! server (replication roles, pub/sub, pauses), so only `main` names it.
//!
//! One thread runs a single-threaded runtime: a task per link (an outbound link to each
//! known node, and each inbound connection) frames and decodes messages and hands them to
//! the engine, the one task that changes the cluster state. The engine also runs the cron
//! (10 times a second, as Redis's `clusterCron`): handshakes, pings, failure detection,
//! replica elections, manual failovers, `cluster_state`, nodes.conf.
//!
//! Lock order: a command may hold shards and then take the cluster state (a CLUSTER
//! command inside EXEC), so the engine never takes a shard while it holds the state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use kiln_formats::cluster::bus::{
    self, Body, Extension, Frame, Gossip, Header, Message, Ping, SlotBitmap, MFLAG0_FORCEACK,
    MFLAG0_PAUSED,
};
use kiln_formats::cluster::nodes_conf::NodesConf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::cluster::{
    flag, name_str, Cluster, LinkBuffer, LinkView, Name, Node, Outgoing, State, SLOTS,
};
use crate::server::Server;

/// How often the cron runs.
const TICK: Duration = Duration::from_millis(100);

/// The longest message accepted from a peer.
const MAX_MESSAGE: usize = 64 << 20;

fn now() -> u64 {
    crate::clock::now_ms()
}

/// Starts the cluster side of a cluster-mode server: loads nodes.conf (or starts a new
/// node), binds the cluster port, and starts the bus thread. Nothing outside cluster mode.
pub fn start(server: &Arc<Server>) -> Result<(), String> {
    let Some(cluster) = server.cluster.as_ref() else {
        return Ok(());
    };
    load_config(server, cluster)?;
    let cport = cluster.state.read().me().cport;
    let listeners = bind(server, cport)?;
    crate::command::cluster::save(cluster)
        .map_err(|e| format!("Could not save the cluster configuration file: {e}"))?;
    let (tx, rx) = unbounded_channel();
    let _ = cluster.outbox.set({
        let tx = tx.clone();
        let (otx, mut orx) = unbounded_channel::<Outgoing>();
        // Commands' messages join the engine's one queue of events.
        std::thread::Builder::new()
            .name("kiln-cluster-out".into())
            .spawn(move || {
                while let Some(m) = orx.blocking_recv() {
                    if tx.send(Event::Out(m)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| format!("cluster thread: {e}"))?;
        otx
    });
    let server = server.clone();
    std::thread::Builder::new()
        .name("kiln-cluster".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("cluster bus runtime: {e}");
                    return;
                }
            };
            rt.block_on(run(server, listeners, tx, rx));
        })
        .map_err(|e| format!("cluster thread: {e}"))?;
    Ok(())
}

/// nodes.conf, if there is one, becomes the state; this node's ports follow the server's.
fn load_config(server: &Server, cluster: &Cluster) -> Result<(), String> {
    let port = server.process.port.load(Relaxed);
    match std::fs::read(&cluster.config_file) {
        Ok(bytes) if !bytes.iter().all(u8::is_ascii_whitespace) => {
            let conf = NodesConf::parse(&bytes).map_err(|e| e.to_string())?;
            let mut st = State::from_conf(&conf, now())?;
            {
                let fresh = cluster.state.read();
                let me = st.me_mut();
                let f = fresh.me();
                me.port = if port != 0 { port } else { f.port };
                me.pport = f.pport;
                me.cport = f.cport;
                if !f.hostname.is_empty() {
                    me.hostname = f.hostname.clone();
                }
            }
            tracing::info!("Node configuration loaded, I'm {}", name_str(&st.myself));
            *cluster.state.write() = st;
        }
        _ => {
            let mut st = cluster.state.write();
            let me = st.me_mut();
            if port != 0 && me.port != port {
                if me.cport == me.port.wrapping_add(10000) {
                    me.cport = port.wrapping_add(10000);
                }
                me.port = port;
            }
            tracing::info!(
                "No cluster configuration found, I'm {}",
                name_str(&st.myself)
            );
        }
    }
    Ok(())
}

/// Binds the cluster port on the `bind` addresses (a `-` address is optional).
fn bind(server: &Server, cport: u16) -> Result<Vec<std::net::TcpListener>, String> {
    let binds = server.config.read().get("bind").to_string();
    let mut out = Vec::new();
    for addr in binds.split_whitespace() {
        let (optional, addr) = match addr.strip_prefix('-') {
            Some(a) => (true, a),
            None => (false, addr),
        };
        let host = match addr {
            "*" => "0.0.0.0",
            "::*" => "::",
            a => a,
        };
        let sa: SocketAddr = match format!("{host}:{cport}")
            .parse()
            .or_else(|_| format!("[{host}]:{cport}").parse())
        {
            Ok(a) => a,
            Err(_) => continue,
        };
        match std::net::TcpListener::bind(sa) {
            Ok(l) => {
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                out.push(l);
            }
            Err(_) if optional => {}
            Err(e) => {
                return Err(format!(
                    "Could not bind the cluster bus to {sa}: {e}, aborting"
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(format!("Could not bind the cluster bus port {cport}"));
    }
    Ok(out)
}

/// The sending side of a link, either way: where its messages queue for its writer, its
/// send buffer's figures, and the switch that closes it.
#[derive(Clone)]
struct Conn {
    tx: UnboundedSender<Vec<u8>>,
    buffer: Arc<LinkBuffer>,
    close: Arc<tokio::sync::Notify>,
}

impl Conn {
    fn new() -> (Self, UnboundedReceiver<Vec<u8>>) {
        let (tx, rx) = unbounded_channel();
        let conn = Conn {
            tx,
            buffer: Arc::default(),
            close: Arc::default(),
        };
        (conn, rx)
    }

    /// Queues a message; false if the link is gone.
    fn send(&self, bytes: Vec<u8>) -> bool {
        self.buffer.queued(&bytes, bytes.capacity());
        match self.tx.send(bytes) {
            Ok(()) => true,
            Err(e) => {
                self.buffer.written(&e.0, e.0.capacity());
                false
            }
        }
    }

    /// Ends the link: its task closes the connection, dropping what was not written.
    fn close(&self) {
        self.close.notify_one();
    }
}

/// Ids of inbound links.
static INBOUND_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Which connection a message came on.
#[derive(Clone)]
enum From {
    /// One of this node's links (it connected), by link id: the node it leads to can be
    /// renamed (a handshake ends) while the link stays.
    Outbound { id: u64 },
    /// A connection the peer opened, by id; replies go back on it.
    Inbound { id: u64, conn: Conn },
}

/// How a link's task reports its end.
#[derive(Clone, Copy)]
enum End {
    Outbound(u64),
    Inbound(u64),
}

enum Event {
    Message {
        from: From,
        msg: Box<Message>,
        /// This node's address on the connection, and the peer's.
        local_ip: String,
        peer_ip: String,
    },
    /// An outbound link closed.
    Down {
        id: u64,
    },
    /// A peer connected (before any message of the connection), and the connection closed.
    Accepted {
        id: u64,
        conn: Conn,
    },
    InboundDown {
        id: u64,
    },
    Out(Outgoing),
}

/// An outbound link: where to queue bytes. Dropped, it closes.
struct Link {
    conn: Conn,
    id: u64,
    ctime: u64,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.conn.close();
    }
}

/// A connection a peer opened: the node it comes from once a message said so.
struct Inbound {
    conn: Conn,
    ctime: u64,
    node: Option<Name>,
}

/// A replica's election (Redis's `failover_auth_*`).
#[derive(Default)]
struct Election {
    /// When it may ask for votes (ms), 0 when none is planned.
    time: u64,
    sent: bool,
    count: usize,
    epoch: u64,
}

/// A primary's side of a manual failover: writes paused for `replica` until `end`.
struct PrimaryHandover {
    replica: Name,
    end: u64,
}

struct Engine {
    server: Arc<Server>,
    events: UnboundedSender<Event>,
    links: HashMap<Name, Link>,
    /// Which node each outbound link (by id) leads to.
    link_node: HashMap<u64, Name>,
    next_link: u64,
    iteration: u64,
    election: Election,
    handover: Option<PrimaryHandover>,
    /// A manual failover's MFSTART went to the primary.
    mf_started: bool,
    /// The primary this replica was last told to follow.
    following: Option<(String, u16)>,
    /// Primaries left without a working replica, and since when (replica migration).
    orphaned: HashMap<Name, u64>,
    /// The connections peers opened, by id.
    inbound: HashMap<u64, Inbound>,
    /// Why this replica last could not fail over, and when that was last logged (Redis's
    /// `clusterLogCantFailover`).
    cant_failover: Option<CantFailover>,
    cant_failover_logged: u64,
}

/// Why a replica whose primary failed does not start an election.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CantFailover {
    /// Its data is older than `cluster-replica-validity-factor` allows.
    DataAge,
}

/// How long a reason to not fail over goes unlogged once logged (Redis: 5 minutes).
const CANT_FAILOVER_RELOG_MS: u64 = 5 * 60 * 1000;

/// Where a message goes.
enum To {
    Reply(From),
    Node(Name),
    /// Every node with a link, but this one.
    All,
    /// The given nodes.
    Nodes(Vec<Name>),
}

/// What the engine does outside the state lock.
enum Effect {
    /// Follow `ip:port` as its replica.
    Follow(String, u16),
    /// Stop replicating (this replica became a primary).
    Promote,
    /// Deliver a message from the bus to this node's subscribers.
    Publish {
        shard: bool,
        channel: Vec<u8>,
        message: Vec<u8>,
    },
    /// Delete the keys of slots this node no longer serves.
    DropSlots(Vec<u16>),
    /// Pause or resume writes for a manual failover.
    HoldWrites(bool),
}

async fn run(
    server: Arc<Server>,
    listeners: Vec<std::net::TcpListener>,
    events: UnboundedSender<Event>,
    mut rx: UnboundedReceiver<Event>,
) {
    for l in listeners {
        let Ok(l) = tokio::net::TcpListener::from_std(l) else {
            continue;
        };
        let events = events.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, peer)) = l.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let local = sock
                    .local_addr()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                let (conn, out) = Conn::new();
                let id = INBOUND_IDS.fetch_add(1, Relaxed);
                if events
                    .send(Event::Accepted {
                        id,
                        conn: conn.clone(),
                    })
                    .is_err()
                {
                    return;
                }
                let (buffer, close) = (conn.buffer.clone(), conn.close.clone());
                let from = From::Inbound { id, conn };
                tokio::spawn(serve_link(
                    sock,
                    from,
                    out,
                    events.clone(),
                    (local, peer.ip().to_string()),
                    End::Inbound(id),
                    (buffer, close),
                ));
            }
        });
    }
    let mut engine = Engine {
        server,
        events,
        links: HashMap::new(),
        link_node: HashMap::new(),
        next_link: 1,
        iteration: 0,
        election: Election::default(),
        handover: None,
        mf_started: false,
        following: None,
        orphaned: HashMap::new(),
        inbound: HashMap::new(),
        cant_failover: None,
        cant_failover_logged: 0,
    };
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => engine.event(ev),
                None => return,
            },
            _ = tick.tick() => {
                if engine.server.process.shutting_down.load(Relaxed) {
                    return;
                }
                engine.cron();
            }
        }
    }
}

/// Reads and writes one connection until it fails or is closed (`close`): bytes queued on
/// `out` are written (and counted off `buffer` once written), whole messages read are
/// handed to the engine. The link reports its end.
async fn serve_link(
    sock: tokio::net::TcpStream,
    from: From,
    mut out: UnboundedReceiver<Vec<u8>>,
    events: UnboundedSender<Event>,
    (local_ip, peer_ip): (String, String),
    end: End,
    (buffer, close): (Arc<LinkBuffer>, Arc<tokio::sync::Notify>),
) {
    let (mut r, mut w) = sock.into_split();
    let mut writer = tokio::spawn(async move {
        while let Some(bytes) = out.recv().await {
            let ok = w.write_all(&bytes).await.is_ok();
            buffer.written(&bytes, bytes.capacity());
            if !ok {
                return;
            }
        }
    });
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    'read: loop {
        loop {
            if buf.is_empty() {
                break;
            }
            match bus::frame(&buf, MAX_MESSAGE) {
                Ok(Frame::Complete { len }) => {
                    // A message of a version or type this node cannot read is skipped,
                    // as Redis skips it.
                    if let Ok(msg) = bus::decode(&buf[..len]) {
                        let ev = Event::Message {
                            from: from.clone(),
                            msg: Box::new(msg),
                            local_ip: local_ip.clone(),
                            peer_ip: peer_ip.clone(),
                        };
                        if events.send(ev).is_err() {
                            break 'read;
                        }
                    }
                    buf.drain(..len);
                }
                Ok(Frame::Incomplete { .. }) => break,
                Err(_) => break 'read,
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        tokio::select! {
            r = r.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
            _ = close.notified() => break,
            // The writer failed, or (an outbound link) its queue was dropped.
            _ = &mut writer => break,
        }
    }
    writer.abort();
    let _ = events.send(match end {
        End::Outbound(id) => Event::Down { id },
        End::Inbound(id) => Event::InboundDown { id },
    });
}

impl Engine {
    fn cluster(&self) -> &Cluster {
        self.server.cluster.as_ref().expect("cluster mode")
    }

    fn node_timeout(&self) -> u64 {
        self.cluster().settings.node_timeout.load(Relaxed).max(1)
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::Message {
                from,
                msg,
                local_ip,
                peer_ip,
            } => {
                let link = match &from {
                    From::Outbound { id } => match self.link_node.get(id) {
                        Some(name) => Some(*name),
                        // A link dropped meanwhile: what it still carried is stale.
                        None => return,
                    },
                    From::Inbound { id, .. } => {
                        if !self.inbound.contains_key(id) {
                            // Closed meanwhile.
                            return;
                        }
                        None
                    }
                };
                self.process(from, link, *msg, &local_ip, &peer_ip)
            }
            Event::Down { id } => {
                if let Some(name) = self.link_node.remove(&id) {
                    if self.links.get(&name).is_some_and(|l| l.id == id) {
                        self.links.remove(&name);
                        if let Some(n) = self.cluster().state.write().nodes.get_mut(&name) {
                            n.link = false;
                        }
                    }
                }
            }
            Event::Accepted { id, conn } => {
                self.inbound.insert(
                    id,
                    Inbound {
                        conn,
                        ctime: now(),
                        node: None,
                    },
                );
            }
            Event::InboundDown { id } => {
                self.inbound.remove(&id);
            }
            Event::Out(Outgoing::Publish {
                shard,
                channel,
                message,
            }) => {
                let (header, to) = {
                    let st = self.cluster().state.read();
                    let to = if shard {
                        To::Nodes(shard_members(&st))
                    } else {
                        To::All
                    };
                    (self.header(&st), to)
                };
                let body = if shard {
                    Body::PublishShard { channel, message }
                } else {
                    Body::Publish { channel, message }
                };
                self.send(to, Message { header, body });
            }
        }
    }

    /// The header of a message from this node, as the state is now.
    fn header(&self, st: &State) -> Header {
        let me = st.me();
        let primary = me
            .master
            .and_then(|m| st.nodes.get(&m))
            .filter(|_| me.is_replica())
            .unwrap_or(me);
        let mut myslots = SlotBitmap::default();
        for slot in 0..SLOTS {
            if primary.has_slot(slot) {
                myslots.set(slot as u16, true);
            }
        }
        let announce = self
            .server
            .config
            .read()
            .get("cluster-announce-ip")
            .to_string();
        let mut mflags = [0u8; 3];
        if self.handover.is_some() && me.is_master() {
            mflags[0] |= MFLAG0_PAUSED;
        }
        Header {
            port: me.port,
            current_epoch: st.current_epoch,
            config_epoch: primary.config_epoch,
            offset: self.server.feed.repl_offset(),
            sender: me.name,
            myslots,
            slaveof: if me.is_replica() {
                me.master.unwrap_or([0; 40])
            } else {
                [0; 40]
            },
            myip: bus::ip_field(announce.as_bytes()),
            pport: me.pport,
            cport: me.cport,
            flags: me.flags,
            state: if st.ok {
                bus::STATE_OK
            } else {
                bus::STATE_FAIL
            },
            mflags,
        }
    }

    /// A PING, PONG or MEET with gossip about a few nodes (and every failing one).
    fn ping(&self, st: &State, kind: u16) -> Message {
        use rand::seq::SliceRandom;
        let candidates: Vec<&Node> = st
            .nodes
            .values()
            .filter(|n| {
                n.flags & (flag::MYSELF | flag::HANDSHAKE | flag::NOADDR) == 0
                    && (n.link || n.numslots != 0)
            })
            .collect();
        let wanted = (st.nodes.len() / 10).max(3);
        let mut rng = rand::thread_rng();
        let mut chosen: Vec<&Node> = candidates
            .choose_multiple(&mut rng, wanted.min(candidates.len()))
            .copied()
            .collect();
        for n in st.nodes.values() {
            if n.timed_out() && !chosen.iter().any(|c| c.name == n.name) {
                chosen.push(n);
            }
        }
        let gossip = chosen
            .into_iter()
            .map(|n| Gossip {
                name: n.name,
                ping_sent: (n.ping_sent / 1000) as u32,
                pong_received: (n.pong_received / 1000) as u32,
                ip: bus::ip_field(n.ip.as_bytes()),
                port: n.port,
                cport: n.cport,
                flags: n.flags,
                pport: n.pport,
            })
            .collect();
        let me = st.me();
        let extensions = if me.hostname.is_empty() {
            Vec::new()
        } else {
            vec![Extension::Hostname(me.hostname.as_bytes().to_vec())]
        };
        let p = Ping { gossip, extensions };
        Message {
            header: self.header(st),
            body: match kind {
                bus::TYPE_PONG => Body::Pong(p),
                bus::TYPE_MEET => Body::Meet(p),
                _ => Body::Ping(p),
            },
        }
    }

    fn send(&mut self, to: To, msg: Message) {
        let bytes = bus::encode(&msg);
        let t = msg.msg_type() as usize;
        let mut sent = 0u64;
        match to {
            To::Reply(From::Inbound { conn, .. }) => {
                sent += u64::from(conn.send(bytes));
            }
            To::Reply(From::Outbound { id }) => {
                let l = self.link_node.get(&id).and_then(|n| self.links.get(n));
                if let Some(l) = l.filter(|l| l.id == id) {
                    sent += u64::from(l.conn.send(bytes));
                }
            }
            To::Node(name) => {
                if let Some(l) = self.links.get(&name) {
                    sent += u64::from(l.conn.send(bytes));
                }
            }
            To::All => {
                for l in self.links.values() {
                    sent += u64::from(l.conn.send(bytes.clone()));
                }
            }
            To::Nodes(names) => {
                for n in names {
                    if let Some(l) = self.links.get(&n) {
                        sent += u64::from(l.conn.send(bytes.clone()));
                    }
                }
            }
        }
        if t < 11 && sent > 0 {
            self.cluster().state.write().stats.sent[t] += sent;
        }
    }

    /// Opens the outbound link to `node` and sends it a PING (a MEET while it has the
    /// MEET flag).
    fn connect(&mut self, st: &mut State, name: Name) {
        let Some(n) = st.nodes.get_mut(&name) else {
            return;
        };
        let addr = format!("{}:{}", n.ip, n.cport);
        let (conn, out) = Conn::new();
        let id = self.next_link;
        self.next_link += 1;
        self.unlink(&name);
        self.link_node.insert(id, name);
        self.links.insert(
            name,
            Link {
                conn: conn.clone(),
                id,
                ctime: now(),
            },
        );
        let meet = n.flags & flag::MEET != 0;
        n.flags &= !flag::MEET;
        n.link = true;
        if n.ping_sent == 0 {
            n.ping_sent = now();
        }
        let first = bus::encode(&self.ping(st, if meet { bus::TYPE_MEET } else { bus::TYPE_PING }));
        let t = if meet { bus::TYPE_MEET } else { bus::TYPE_PING } as usize;
        st.stats.sent[t] += 1;
        conn.send(first);
        let (buffer, close) = (conn.buffer.clone(), conn.close.clone());
        drop(conn);
        let events = self.events.clone();
        let timeout = Duration::from_millis(self.node_timeout().max(1000));
        tokio::spawn(async move {
            let sock =
                match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
                    Ok(Ok(s)) => s,
                    _ => {
                        let _ = events.send(Event::Down { id });
                        return;
                    }
                };
            let _ = sock.set_nodelay(true);
            let local = sock
                .local_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let peer = sock
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            serve_link(
                sock,
                From::Outbound { id },
                out,
                events,
                (local, peer),
                End::Outbound(id),
                (buffer, close),
            )
            .await;
        });
    }

    /// Forgets the outbound link to `name` (its task ends once its queue is dropped).
    fn unlink(&mut self, name: &Name) {
        if let Some(l) = self.links.remove(name) {
            self.link_node.remove(&l.id);
        }
    }

    fn drop_link(&mut self, st: &mut State, name: &Name) {
        self.unlink(name);
        if let Some(n) = st.nodes.get_mut(name) {
            n.link = false;
        }
    }

    /// One received message (Redis's `clusterProcessPacket`).
    fn process(
        &mut self,
        from: From,
        link: Option<Name>,
        msg: Message,
        local_ip: &str,
        peer_ip: &str,
    ) {
        let now = now();
        let node_timeout = self.node_timeout();
        let mut out: Vec<(To, Message)> = Vec::new();
        let mut effects: Vec<Effect> = Vec::new();
        let server = self.server.clone();
        let cluster = server.cluster.as_ref().expect("cluster mode");
        let mut st = cluster.state.write();
        let t = msg.msg_type();
        if (t as usize) < 11 {
            st.stats.received[t as usize] += 1;
        }
        let h = &msg.header;
        let sender = h.sender;
        // A message in this node's own name (it met itself, or a confused peer) changes
        // nothing about it.
        let known = sender != st.myself && st.nodes.get(&sender).is_some_and(|n| !n.in_handshake());
        if known {
            if h.current_epoch > st.current_epoch {
                st.current_epoch = h.current_epoch;
                st.save_pending = true;
            }
            let n = st.nodes.get_mut(&sender).expect("known");
            n.data_received = now;
            if h.config_epoch > n.config_epoch && h.slaveof == [0; 40] {
                n.config_epoch = h.config_epoch;
                st.save_pending = true;
            }
            if let From::Inbound { id, .. } = &from {
                // The connection is this node's inbound link from the sender (the latest
                // one, when it has several, as Redis keeps it).
                if let Some(l) = self.inbound.get_mut(id) {
                    l.node = Some(sender);
                }
            }
            let n = st.nodes.get_mut(&sender).expect("known");
            n.repl_offset = h.offset;
            let me_master = st.me().master;
            if let Some(mf) = st.manual_failover.as_mut() {
                if me_master == Some(sender)
                    && h.mflags[0] & MFLAG0_PAUSED != 0
                    && mf.primary_offset.is_none()
                {
                    mf.primary_offset = Some(h.offset);
                }
            }
        }
        let announce_ip = self
            .server
            .config
            .read()
            .get("cluster-announce-ip")
            .to_string();
        let gossip_of = |b: &Body| match b {
            Body::Ping(p) | Body::Pong(p) | Body::Meet(p) => Some(p.clone()),
            _ => None,
        };
        if let Some(p) = gossip_of(&msg.body) {
            let inbound = matches!(from, From::Inbound { .. });
            if matches!(msg.body, Body::Ping(_) | Body::Meet(_)) {
                if (t == bus::TYPE_MEET || st.me().ip.is_empty())
                    && announce_ip.is_empty()
                    && st.me().ip != local_ip
                {
                    st.me_mut().ip = local_ip.to_string();
                    st.save_pending = true;
                }
                if !known && t == bus::TYPE_MEET && !st.nodes.contains_key(&sender) {
                    let mut n = Node::new(crate::cluster::random_name(), flag::HANDSHAKE, now);
                    n.ip = ip_of(h, peer_ip);
                    n.port = h.port;
                    n.pport = h.pport;
                    n.cport = h.cport;
                    st.nodes.insert(n.name, n);
                    st.save_pending = true;
                }
                out.push((To::Reply(from.clone()), self.ping(&st, bus::TYPE_PONG)));
            }
            if let Some(name) = link {
                let in_handshake = st.nodes.get(&name).is_some_and(|n| n.in_handshake());
                if in_handshake {
                    if known || sender == st.myself {
                        // Met under its real name already (or it is this node): forget the
                        // handshake node.
                        st.remove_node(&name);
                        self.unlink(&name);
                        drop(st);
                        self.flush(out);
                        return;
                    }
                    // The handshake is over: the node takes its real name.
                    if let Some(mut n) = st.nodes.remove(&name) {
                        n.name = sender;
                        n.flags &= !flag::HANDSHAKE;
                        n.flags |= h.flags & (flag::MASTER | flag::SLAVE);
                        st.nodes.insert(sender, n);
                        if let Some(l) = self.links.remove(&name) {
                            self.link_node.insert(l.id, sender);
                            self.unlink(&sender);
                            self.links.insert(sender, l);
                        }
                        st.save_pending = true;
                    }
                } else if name != sender {
                    // The node at that address has another name now.
                    if let Some(n) = st.nodes.get_mut(&name) {
                        n.flags |= flag::NOADDR;
                        n.ip.clear();
                        n.port = 0;
                        n.cport = 0;
                    }
                    self.drop_link(&mut st, &name);
                    st.save_pending = true;
                    drop(st);
                    self.flush(out);
                    return;
                }
            }
            let known =
                sender != st.myself && st.nodes.get(&sender).is_some_and(|n| !n.in_handshake());
            if known && inbound && t == bus::TYPE_PING {
                // An inbound PING tells the node's current address.
                let ip = ip_of(h, peer_ip);
                let n = st.nodes.get_mut(&sender).expect("known");
                if n.ip != ip || n.port != h.port || n.cport != h.cport {
                    n.ip = ip;
                    n.port = h.port;
                    n.pport = h.pport;
                    n.cport = h.cport;
                    n.flags &= !flag::NOADDR;
                    self.drop_link(&mut st, &sender);
                    st.save_pending = true;
                }
            }
            if !inbound && t == bus::TYPE_PONG {
                if let Some(n) = st.nodes.get_mut(&sender) {
                    n.pong_received = now;
                    n.ping_sent = 0;
                    if n.timed_out() {
                        n.flags &= !flag::PFAIL;
                    } else if n.failed()
                        && (n.is_replica()
                            || n.numslots == 0
                            || now.saturating_sub(n.fail_time) > node_timeout * 2)
                    {
                        n.flags &= !flag::FAIL;
                        st.save_pending = true;
                    }
                }
            }
            if known {
                self.update_role_and_slots(&mut st, h, &from, &mut out, &mut effects);
                self.process_gossip(&mut st, &sender, &p.gossip, now);
                for e in &p.extensions {
                    if let Extension::Hostname(name) = e {
                        let host = String::from_utf8_lossy(name).into_owned();
                        if let Some(n) = st.nodes.get_mut(&sender) {
                            if n.hostname != host {
                                n.hostname = host;
                                st.save_pending = true;
                            }
                        }
                    }
                }
            }
        } else if known {
            match &msg.body {
                Body::Fail { about } => {
                    if let Some(n) = st.nodes.get_mut(about) {
                        if n.flags & (flag::FAIL | flag::MYSELF) == 0 {
                            n.flags = (n.flags | flag::FAIL) & !flag::PFAIL;
                            n.fail_time = now;
                            st.save_pending = true;
                        }
                    }
                }
                Body::Publish { channel, message } => effects.push(Effect::Publish {
                    shard: false,
                    channel: channel.clone(),
                    message: message.clone(),
                }),
                Body::PublishShard { channel, message } => effects.push(Effect::Publish {
                    shard: true,
                    channel: channel.clone(),
                    message: message.clone(),
                }),
                Body::FailoverAuthRequest => {
                    if let Some(ack) = self.vote(&mut st, h, now) {
                        out.push((To::Node(sender), ack));
                    }
                }
                Body::FailoverAuthAck => {
                    let n = &st.nodes[&sender];
                    if n.is_master() && n.numslots > 0 && h.current_epoch >= self.election.epoch {
                        self.election.count += 1;
                    }
                }
                Body::MfStart => {
                    let me = st.myself;
                    if st.nodes[&sender].master == Some(me) && st.me().is_master() {
                        self.handover = Some(PrimaryHandover {
                            replica: sender,
                            end: now + 5000,
                        });
                        effects.push(Effect::HoldWrites(true));
                        out.push((To::Node(sender), self.ping(&st, bus::TYPE_PING)));
                    }
                }
                Body::Update {
                    config_epoch,
                    name,
                    slots,
                } => {
                    if let Some(n) = st.nodes.get(name) {
                        if n.config_epoch < *config_epoch {
                            let name = *name;
                            let n = st.nodes.get_mut(&name).expect("exists");
                            if n.is_replica() {
                                n.flags = (n.flags & !flag::SLAVE) | flag::MASTER;
                                n.master = None;
                            }
                            n.config_epoch = *config_epoch;
                            self.update_slots(&mut st, name, *config_epoch, slots, &mut effects);
                            st.save_pending = true;
                        }
                    }
                }
                _ => {}
            }
        }
        let lost = st.take_lost_slots();
        drop(st);
        // With the state released: a handover stamped in the header now.
        let fix_paused = effects
            .iter()
            .any(|e| matches!(e, Effect::HoldWrites(true)));
        if fix_paused {
            for (_, m) in out.iter_mut() {
                m.header.mflags[0] |= MFLAG0_PAUSED;
            }
        }
        self.flush(out);
        crate::command::cluster::end_channels_of(&server, &lost);
        self.apply(effects);
    }

    fn flush(&mut self, out: Vec<(To, Message)>) {
        for (to, m) in out {
            self.send(to, m);
        }
    }

    /// The sender's role and, for a primary, its slots (from a PING, PONG or MEET).
    fn update_role_and_slots(
        &mut self,
        st: &mut State,
        h: &Header,
        from: &From,
        out: &mut Vec<(To, Message)>,
        effects: &mut Vec<Effect>,
    ) {
        let sender = h.sender;
        let is_primary = h.slaveof == [0; 40];
        {
            let n = st.nodes.get_mut(&sender).expect("known");
            if is_primary {
                if n.is_replica() {
                    n.flags = (n.flags & !flag::SLAVE) | flag::MASTER;
                    n.master = None;
                    st.save_pending = true;
                }
            } else if n.is_master() || n.master != Some(h.slaveof) {
                n.flags = (n.flags & !(flag::MASTER | flag::MIGRATE_TO)) | flag::SLAVE;
                n.master = Some(h.slaveof);
                st.save_pending = true;
                for slot in 0..SLOTS {
                    if st.owners[slot] == Some(sender) {
                        st.unassign(slot);
                    }
                }
            }
        }
        if !is_primary {
            return;
        }
        let dirty =
            (0..SLOTS).any(|s| st.nodes[&sender].has_slot(s) != h.myslots.contains(s as u16));
        if dirty {
            self.update_slots(st, sender, h.config_epoch, &h.myslots, effects);
            // A stale claim: tell the sender who owns what it claims, with a newer epoch.
            for slot in 0..SLOTS {
                if !h.myslots.contains(slot as u16) {
                    continue;
                }
                let Some(owner) = st.owners[slot] else {
                    continue;
                };
                if owner == sender {
                    continue;
                }
                let o = &st.nodes[&owner];
                if o.config_epoch > h.config_epoch {
                    let mut slots = SlotBitmap::default();
                    for s in 0..SLOTS {
                        if o.has_slot(s) {
                            slots.set(s as u16, true);
                        }
                    }
                    out.push((
                        To::Reply(from.clone()),
                        Message {
                            header: self.header(st),
                            body: Body::Update {
                                config_epoch: o.config_epoch,
                                name: owner,
                                slots,
                            },
                        },
                    ));
                    break;
                }
            }
        }
        // Two primaries with one config epoch: the one with the greater name moves on.
        let me = st.myself;
        if st.me().is_master()
            && st.nodes[&sender].is_master()
            && h.config_epoch == st.me().config_epoch
            && sender > me
        {
            st.current_epoch += 1;
            let e = st.current_epoch;
            st.me_mut().config_epoch = e;
            st.save_pending = true;
            tracing::warn!(
                "WARNING: configEpoch collision with node {}. configEpoch set to {e}",
                name_str(&sender)
            );
        }
    }

    /// Redis's `clusterUpdateSlotsConfigWith`: `sender` (a primary at `epoch`) claims
    /// `slots`; it gets those unassigned or held with an older epoch. When this node (or its
    /// primary) loses its last slot to it, this node becomes its replica.
    fn update_slots(
        &mut self,
        st: &mut State,
        sender: Name,
        epoch: u64,
        slots: &SlotBitmap,
        effects: &mut Vec<Effect>,
    ) {
        let me = st.myself;
        if sender == me {
            return;
        }
        let curmaster = if st.me().is_master() {
            me
        } else {
            st.me().master.unwrap_or(me)
        };
        let (mut newmaster, mut migrated) = (false, 0usize);
        let mut lost = Vec::new();
        for slot in 0..SLOTS {
            if !slots.contains(slot as u16) {
                continue;
            }
            let owner = st.owners[slot];
            if owner == Some(sender) || st.importing.contains_key(&(slot as u16)) {
                continue;
            }
            let older = match owner {
                None => true,
                Some(o) => st.nodes.get(&o).is_none_or(|n| n.config_epoch < epoch),
            };
            if older {
                if owner == Some(me) {
                    lost.push(slot as u16);
                }
                if owner == Some(curmaster) {
                    newmaster = true;
                    migrated += 1;
                }
                st.assign(slot, sender);
                st.migrating.remove(&(slot as u16));
            }
        }
        let allow_migration = self
            .server
            .config
            .read()
            .get_bool("cluster-allow-replica-migration");
        let sender_slots = st.nodes[&sender].numslots;
        if newmaster
            && st.nodes.get(&curmaster).is_some_and(|n| n.numslots == 0)
            && (allow_migration || sender_slots == migrated)
        {
            tracing::info!(
                "Configuration change detected. Reconfiguring myself as a replica of {}",
                name_str(&sender)
            );
            crate::command::cluster::set_primary(st, sender);
            let n = &st.nodes[&sender];
            effects.push(Effect::Follow(n.ip.clone(), n.port));
            if self.handover.take().is_some() {
                effects.push(Effect::HoldWrites(false));
            }
        } else if !lost.is_empty() {
            effects.push(Effect::DropSlots(lost));
        }
        st.save_pending = true;
    }

    /// The gossip section of a PING, PONG or MEET from `sender`.
    fn process_gossip(&mut self, st: &mut State, sender: &Name, gossip: &[Gossip], now: u64) {
        let sender_primary = st.nodes.get(sender).is_some_and(|n| n.is_master());
        let node_timeout = self.node_timeout();
        for g in gossip {
            if let Some(n) = st.nodes.get_mut(&g.name) {
                if sender_primary && n.flags & flag::MYSELF == 0 {
                    if g.flags & (flag::FAIL | flag::PFAIL) != 0 {
                        match n.fail_reports.iter_mut().find(|(r, _)| r == sender) {
                            Some(r) => r.1 = now,
                            None => n.fail_reports.push((*sender, now)),
                        }
                        let name = g.name;
                        self.mark_failing_if_needed(st, &name, now);
                    } else {
                        n.fail_reports.retain(|(r, _)| r != sender);
                    }
                }
                let Some(n) = st.nodes.get_mut(&g.name) else {
                    continue;
                };
                if g.flags & (flag::FAIL | flag::PFAIL) == 0
                    && n.ping_sent == 0
                    && n.fail_reports.is_empty()
                {
                    let pong = u64::from(g.pong_received) * 1000;
                    if pong <= now + 500 && pong > n.pong_received {
                        n.pong_received = pong;
                    }
                }
                let ip = String::from_utf8_lossy(bus::until_nul(&g.ip)).into_owned();
                if n.flags & (flag::FAIL | flag::PFAIL) != 0
                    && g.flags & flag::NOADDR == 0
                    && n.flags & flag::MYSELF == 0
                    && (n.ip != ip || n.port != g.port || n.cport != g.cport)
                {
                    n.ip = ip;
                    n.port = g.port;
                    n.pport = g.pport;
                    n.cport = g.cport;
                    n.flags &= !flag::NOADDR;
                    let name = g.name;
                    self.drop_link(st, &name);
                }
            } else if g.flags & flag::NOADDR == 0
                && st.blacklist.get(&g.name).is_none_or(|&until| until <= now)
                && g.name.iter().all(u8::is_ascii_hexdigit)
            {
                let mut n = Node::new(
                    g.name,
                    g.flags & !(flag::MYSELF | flag::PFAIL | flag::FAIL),
                    now,
                );
                n.ip = String::from_utf8_lossy(bus::until_nul(&g.ip)).into_owned();
                n.port = g.port;
                n.pport = g.pport;
                n.cport = g.cport;
                let _ = node_timeout;
                st.nodes.insert(g.name, n);
                st.save_pending = true;
            }
        }
    }

    /// Redis's `markNodeAsFailingIfNeeded`: a node this node finds timed out, reported
    /// failing by a majority of primaries, is FAIL, and every node is told.
    fn mark_failing_if_needed(&mut self, st: &mut State, name: &Name, now: u64) {
        let validity = self.node_timeout() * 2;
        let quorum = st.size / 2 + 1;
        let me_primary = st.me().is_master();
        let Some(n) = st.nodes.get_mut(name) else {
            return;
        };
        if !n.timed_out() || n.failed() {
            return;
        }
        n.fail_reports
            .retain(|(_, t)| now.saturating_sub(*t) <= validity);
        let failures = n.fail_reports.len() + usize::from(me_primary);
        if failures < quorum {
            return;
        }
        tracing::info!(
            "Marking node {} as failing (quorum reached).",
            name_str(name)
        );
        n.flags = (n.flags | flag::FAIL) & !flag::PFAIL;
        n.fail_time = now;
        st.save_pending = true;
        let msg = Message {
            header: self.header(st),
            body: Body::Fail { about: *name },
        };
        let bytes = bus::encode(&msg);
        let mut sent = 0;
        for l in self.links.values() {
            sent += u64::from(l.conn.send(bytes.clone()));
        }
        st.stats.sent[bus::TYPE_FAIL as usize] += sent;
    }

    /// Redis's `clusterSendFailoverAuthIfNeeded`: a primary's vote for a replica asking to
    /// replace its failed primary.
    fn vote(&mut self, st: &mut State, h: &Header, now: u64) -> Option<Message> {
        let me = st.me();
        if me.is_replica() || me.numslots == 0 {
            return None;
        }
        if h.current_epoch < st.current_epoch || st.last_vote_epoch == st.current_epoch {
            return None;
        }
        let node = st.nodes.get(&h.sender)?;
        let primary = node.master.filter(|_| node.is_replica())?;
        let force = h.mflags[0] & MFLAG0_FORCEACK != 0;
        let p = st.nodes.get(&primary)?;
        if !p.failed() && !force {
            return None;
        }
        if now.saturating_sub(p.voted_time) < self.node_timeout() * 2 {
            return None;
        }
        for slot in 0..SLOTS {
            if !h.myslots.contains(slot as u16) {
                continue;
            }
            if let Some(o) = st.owners[slot] {
                if st
                    .nodes
                    .get(&o)
                    .is_some_and(|n| n.config_epoch > h.config_epoch)
                {
                    return None;
                }
            }
        }
        st.last_vote_epoch = st.current_epoch;
        if let Some(p) = st.nodes.get_mut(&primary) {
            p.voted_time = now;
        }
        st.save_pending = true;
        tracing::info!(
            "Failover auth granted to {} for epoch {}",
            name_str(&h.sender),
            st.current_epoch
        );
        Some(Message {
            header: self.header(st),
            body: Body::FailoverAuthAck,
        })
    }

    /// What must happen outside the state lock.
    fn apply(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Follow(ip, port) => {
                    let server = self.server.clone();
                    std::thread::spawn(move || {
                        crate::repl::replicaof(&server, Some((ip, port)));
                    });
                }
                Effect::Promote => {
                    let server = self.server.clone();
                    std::thread::spawn(move || {
                        crate::repl::replicaof(&server, None);
                    });
                }
                Effect::Publish {
                    shard,
                    channel,
                    message,
                } => {
                    self.server.pubsub.publish(shard, &channel, &message);
                }
                Effect::DropSlots(slots) => {
                    let server = self.server.clone();
                    std::thread::spawn(move || drop_slot_keys(&server, &slots));
                }
                Effect::HoldWrites(on) => self.server.pause.hold_for_failover(on),
            }
        }
    }

    /// The cron (Redis's `clusterCron`).
    fn cron(&mut self) {
        self.iteration += 1;
        let now = now();
        let nt = self.node_timeout();
        let mut out: Vec<(To, Message)> = Vec::new();
        let mut effects = Vec::new();
        let server = self.server.clone();
        let cluster = server.cluster.as_ref().expect("cluster mode");
        // Read before the state is locked (a replica's election needs it).
        let data_age = crate::repl::master_data_age_ms(&server, now);
        let mut st = cluster.state.write();
        // Handshakes that did not finish in time are dropped.
        let handshake_timeout = nt.max(1000);
        let stale: Vec<Name> = st
            .nodes
            .values()
            .filter(|n| n.in_handshake() && now.saturating_sub(n.ctime) > handshake_timeout)
            .map(|n| n.name)
            .collect();
        for name in stale {
            st.remove_node(&name);
            self.unlink(&name);
        }
        st.blacklist.retain(|_, until| *until > now);
        // Every node gets a link.
        let unlinked: Vec<Name> = st
            .nodes
            .values()
            .filter(|n| {
                n.flags & (flag::MYSELF | flag::NOADDR) == 0
                    && !self.links.contains_key(&n.name)
                    && !n.ip.is_empty()
            })
            .map(|n| n.name)
            .collect();
        for name in unlinked {
            self.connect(&mut st, name);
        }
        self.free_links_over_limit(&mut st);
        // Once a second, a ping to one of five random nodes: the one heard from least
        // recently.
        if self.iteration.is_multiple_of(10) {
            use rand::seq::IteratorRandom;
            let pick = st
                .nodes
                .values()
                .filter(|n| {
                    n.link && n.ping_sent == 0 && n.flags & (flag::MYSELF | flag::HANDSHAKE) == 0
                })
                .choose_multiple(&mut rand::thread_rng(), 5)
                .into_iter()
                .min_by_key(|n| n.pong_received)
                .map(|n| n.name);
            if let Some(name) = pick {
                st.nodes.get_mut(&name).expect("exists").ping_sent = now;
                out.push((To::Node(name), self.ping(&st, bus::TYPE_PING)));
            }
        }
        let names: Vec<Name> = st.nodes.keys().copied().collect();
        for name in names {
            let n = &st.nodes[&name];
            if n.flags & (flag::MYSELF | flag::NOADDR | flag::HANDSHAKE) != 0 {
                continue;
            }
            let link_age = self.links.get(&name).map(|l| now.saturating_sub(l.ctime));
            let ping_delay = now.saturating_sub(n.ping_sent);
            let data_delay = now.saturating_sub(n.data_received);
            if link_age.is_some_and(|a| a > nt)
                && n.ping_sent != 0
                && ping_delay > nt / 2
                && data_delay > nt / 2
            {
                // A link that stopped answering is reopened.
                self.drop_link(&mut st, &name);
                continue;
            }
            let n = &st.nodes[&name];
            if n.link && n.ping_sent == 0 && now.saturating_sub(n.pong_received) > nt / 2 {
                st.nodes.get_mut(&name).expect("exists").ping_sent = now;
                out.push((To::Node(name), self.ping(&st, bus::TYPE_PING)));
                continue;
            }
            if self.handover.as_ref().is_some_and(|h| h.replica == name) {
                out.push((To::Node(name), self.ping(&st, bus::TYPE_PING)));
            }
            let n = &st.nodes[&name];
            if n.ping_sent == 0 {
                continue;
            }
            if ping_delay.min(data_delay) > nt && n.flags & (flag::PFAIL | flag::FAIL) == 0 {
                tracing::info!("*** NODE {} possibly failing", name_str(&name));
                st.nodes.get_mut(&name).expect("exists").flags |= flag::PFAIL;
            }
        }
        // A primary's manual failover hand-over times out.
        if self.handover.as_ref().is_some_and(|h| now > h.end) {
            self.handover = None;
            effects.push(Effect::HoldWrites(false));
        }
        self.announce(&mut st);
        // A replica (after a restart from nodes.conf, say) replicates its primary.
        let me = st.me();
        if let Some(p) = me
            .master
            .filter(|_| me.is_replica())
            .and_then(|m| st.nodes.get(&m))
        {
            let target = (p.ip.clone(), p.port);
            if !p.ip.is_empty()
                && !crate::repl::follows(&self.server, &target.0, target.1)
                && self.following.as_ref() != Some(&target)
            {
                self.following = Some(target.clone());
                effects.push(Effect::Follow(target.0, target.1));
            }
        } else {
            self.following = None;
        }
        self.replica_cron(&mut st, now, data_age, &mut out, &mut effects);
        self.replica_migration(&mut st, now, &mut effects);
        let s = &cluster.settings;
        st.update_state(now, s.require_full_coverage.load(Relaxed), nt);
        st.links = self.link_views(&st);
        let save = st.save_pending;
        let lost = st.take_lost_slots();
        drop(st);
        redirect_blocked(&server, cluster);
        crate::command::cluster::end_channels_of(&server, &lost);
        self.flush(out);
        self.apply(effects);
        if save {
            if let Err(e) = crate::command::cluster::save(self.cluster()) {
                tracing::warn!("Could not save the cluster configuration file: {e}");
            }
        }
    }

    /// Frees the links whose send buffer holds more than `cluster-link-sendbuf-limit`
    /// (Redis's `clusterNodeCronFreeLinkOnBufferLimitReached`): a peer that does not read
    /// cannot grow this node's memory without bound. An outbound link is opened again by
    /// the next cron step; the peer reopens its inbound one.
    fn free_links_over_limit(&mut self, st: &mut State) {
        let limit = self
            .server
            .config
            .read()
            .get_u64("cluster-link-sendbuf-limit");
        if limit == 0 {
            return;
        }
        let over = |b: &LinkBuffer| b.allocated() > limit;
        let log = |dir: &str, node: Option<&Name>, mem: u64| {
            tracing::warn!(
                "Freeing cluster link({dir} node {}, used memory: {mem}) due to exceeding send buffer memory limit.",
                node.map_or("", name_str)
            );
        };
        let outbound: Vec<(Name, u64)> = self
            .links
            .iter()
            .filter(|(_, l)| over(&l.conn.buffer))
            .map(|(n, l)| (*n, l.conn.buffer.allocated()))
            .collect();
        for (name, mem) in outbound {
            log("to", Some(&name), mem);
            self.drop_link(st, &name);
            st.links_buffer_exceeded += 1;
        }
        let inbound: Vec<u64> = self
            .inbound
            .iter()
            .filter(|(_, l)| over(&l.conn.buffer))
            .map(|(id, _)| *id)
            .collect();
        for id in inbound {
            if let Some(l) = self.inbound.remove(&id) {
                log("from", l.node.as_ref(), l.conn.buffer.allocated());
                l.conn.close();
                st.links_buffer_exceeded += 1;
            }
        }
    }

    /// This node's links for CLUSTER LINKS: for each known node, the link to it and the
    /// (latest) link from it.
    fn link_views(&self, st: &State) -> Vec<LinkView> {
        let mut latest_in: HashMap<Name, (u64, &Inbound)> = HashMap::new();
        for (id, l) in &self.inbound {
            if let Some(n) = l.node {
                let e = latest_in.entry(n).or_insert((*id, l));
                if *id > e.0 {
                    *e = (*id, l);
                }
            }
        }
        let mut names: Vec<&Name> = st.nodes.keys().filter(|n| **n != st.myself).collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if let Some(l) = self.links.get(name) {
                out.push(LinkView {
                    inbound: false,
                    node: *name,
                    ctime: l.ctime,
                    buffer: l.conn.buffer.clone(),
                });
            }
            if let Some((_, l)) = latest_in.get(name) {
                out.push(LinkView {
                    inbound: true,
                    node: *name,
                    ctime: l.ctime,
                    buffer: l.conn.buffer.clone(),
                });
            }
        }
        out
    }

    /// Replica migration (Redis's `clusterHandleSlaveMigration`): a primary that had
    /// replicas and has no working one left is orphaned; after 5 s, a replica of the
    /// primary with the most working replicas (if that is more than
    /// `cluster-migration-barrier`) moves over to it: the one with the smallest name, so
    /// that only one does.
    fn replica_migration(&mut self, st: &mut State, now: u64, effects: &mut Vec<Effect>) {
        // A primary that ever had a replica may receive one (Redis's MIGRATE_TO flag).
        let primaries: Vec<Name> = st
            .nodes
            .values()
            .filter(|n| n.is_replica())
            .filter_map(|n| n.master)
            .collect();
        for p in primaries {
            if let Some(n) = st.nodes.get_mut(&p) {
                n.flags |= flag::MIGRATE_TO;
            }
        }
        let (allow, barrier) = {
            let c = self.server.config.read();
            (
                c.get_bool("cluster-allow-replica-migration"),
                c.get_u64("cluster-migration-barrier") as usize,
            )
        };
        let me = st.me();
        let Some(mine) = me.master.filter(|_| me.is_replica()) else {
            self.orphaned.clear();
            return;
        };
        let working = |st: &State, p: &Name| {
            st.replicas_of(p)
                .iter()
                .filter(|r| !r.failed() && !r.timed_out())
                .count()
        };
        let mut names: Vec<Name> = st
            .nodes
            .values()
            .filter(|n| n.is_master())
            .map(|n| n.name)
            .collect();
        names.sort();
        let max = names.iter().map(|n| working(st, n)).max().unwrap_or(0);
        let (mut target, mut candidate) = (None, st.myself);
        for name in &names {
            let n = &st.nodes[name];
            let ok = working(st, name);
            let orphaned = !n.failed() && n.flags & flag::MIGRATE_TO != 0 && ok == 0;
            if orphaned {
                if target.is_none() && n.numslots > 0 {
                    target = Some(*name);
                }
                self.orphaned.entry(*name).or_insert(now);
            } else {
                self.orphaned.remove(name);
            }
            if ok == max {
                for r in st.replicas_of(name) {
                    if r.name < candidate {
                        candidate = r.name;
                    }
                }
            }
        }
        let this = working(st, &mine);
        if !allow || !st.ok || max < 2 || this != max || this <= barrier {
            return;
        }
        let Some(t) = target else { return };
        if candidate != st.myself || now.saturating_sub(self.orphaned[&t]) <= 5000 {
            return;
        }
        tracing::info!("Migrating to orphaned master {}", name_str(&t));
        crate::command::cluster::set_primary(st, t);
        let n = &st.nodes[&t];
        effects.push(Effect::Follow(n.ip.clone(), n.port));
        st.save_pending = true;
        self.orphaned.clear();
    }

    /// This node's own announced address and flags, as the config says now
    /// (`cluster-announce-*`, `cluster-replica-no-failover`).
    fn announce(&self, st: &mut State) {
        let (ip, host, port, bus_port, no_failover) = {
            let c = self.server.config.read();
            (
                c.get("cluster-announce-ip").to_string(),
                c.get("cluster-announce-hostname").to_string(),
                c.get_u64("cluster-announce-port") as u16,
                c.get_u64("cluster-announce-bus-port") as u16,
                c.get_bool("cluster-replica-no-failover"),
            )
        };
        let bound = self.server.process.port.load(Relaxed);
        let me = st.me_mut();
        let mut changed = false;
        let mut set = |field: &mut u16, v: u16| {
            if *field != v {
                *field = v;
                changed = true;
            }
        };
        set(&mut me.port, if port != 0 { port } else { bound });
        if bus_port != 0 {
            set(&mut me.cport, bus_port);
        }
        if !ip.is_empty() && me.ip != ip {
            me.ip = ip;
            changed = true;
        }
        if me.hostname != host {
            me.hostname = host;
            changed = true;
        }
        let flags = if no_failover {
            me.flags | flag::NOFAILOVER
        } else {
            me.flags & !flag::NOFAILOVER
        };
        if flags != me.flags {
            me.flags = flags;
            changed = true;
        }
        if changed {
            st.save_pending = true;
        }
    }

    /// A replica's part of the cron: manual failovers and elections (Redis's
    /// `clusterHandleManualFailover` and `clusterHandleSlaveFailover`).
    fn replica_cron(
        &mut self,
        st: &mut State,
        now: u64,
        data_age: Option<u64>,
        out: &mut Vec<(To, Message)>,
        effects: &mut Vec<Effect>,
    ) {
        let me = st.me();
        let Some(primary) = me.master.filter(|_| me.is_replica()) else {
            self.mf_started = false;
            st.manual_failover = None;
            return;
        };
        let mut manual_ready = false;
        if let Some(mf) = st.manual_failover.clone() {
            if now > mf.deadline {
                tracing::warn!("Manual failover timed out.");
                st.manual_failover = None;
                self.mf_started = false;
                self.election = Election::default();
            } else {
                match mf.mode {
                    2 => {
                        // TAKEOVER: no election, a new epoch of this node's own.
                        st.manual_failover = None;
                        self.mf_started = false;
                        st.bump_epoch();
                        let e = st.me().config_epoch;
                        self.replace_primary(st, primary, e, out, effects);
                        return;
                    }
                    1 => manual_ready = true,
                    _ => {
                        if !self.mf_started {
                            self.mf_started = true;
                            out.push((
                                To::Node(primary),
                                Message {
                                    header: self.header(st),
                                    body: Body::MfStart,
                                },
                            ));
                        }
                        if let Some(off) = mf.primary_offset {
                            manual_ready = self.server.feed.repl_offset() >= off;
                        }
                    }
                }
            }
        }
        let Some(p) = st.nodes.get(&primary) else {
            return;
        };
        if !(p.failed() || manual_ready) || p.numslots == 0 {
            self.cant_failover = None;
            return;
        }
        // `cluster-replica-no-failover`: only a manual failover promotes this replica.
        if st.me().flags & flag::NOFAILOVER != 0 && !manual_ready {
            self.cant_failover = None;
            return;
        }
        let nt = self.node_timeout();
        // A replica whose data is too old does not ask for votes (but for a manual
        // failover): disconnected for longer than the node timeout (the time it takes to
        // flag the primary FAIL, which is fine) plus `cluster-replica-validity-factor`
        // node timeouts and a replication ping period. A factor of 0 disables the check.
        let (factor, ping_period) = {
            let c = self.server.config.read();
            (
                c.get_u64("cluster-replica-validity-factor"),
                c.get_u64("repl-ping-replica-period"),
            )
        };
        let mut age = data_age.unwrap_or(now);
        if age > nt {
            age -= nt;
        }
        if factor != 0
            && age > ping_period.saturating_mul(1000) + nt.saturating_mul(factor)
            && !manual_ready
        {
            self.log_cant_failover(st, primary, now, CantFailover::DataAge);
            return;
        }
        let auth_timeout = (nt * 2).max(2000);
        let auth_retry = auth_timeout * 2;
        if self.election.time == 0 || now.saturating_sub(self.election.time) > auth_retry {
            if self.election.time != 0 && now < self.election.time {
                return;
            }
            use rand::Rng;
            let my_offset = self.server.feed.repl_offset();
            let rank = st
                .replicas_of(&primary)
                .iter()
                .filter(|r| r.name != st.myself && r.repl_offset > my_offset)
                .count() as u64;
            self.election = Election {
                time: if manual_ready {
                    now
                } else {
                    now + 500 + rand::thread_rng().gen_range(0..500) + rank * 1000
                },
                ..Election::default()
            };
            return;
        }
        if now < self.election.time {
            return;
        }
        if now - self.election.time > auth_timeout {
            return;
        }
        if !self.election.sent {
            st.current_epoch += 1;
            self.election.epoch = st.current_epoch;
            self.election.sent = true;
            st.save_pending = true;
            tracing::info!(
                "Starting a failover election for epoch {}.",
                self.election.epoch
            );
            let mut m = Message {
                header: self.header(st),
                body: Body::FailoverAuthRequest,
            };
            if manual_ready {
                m.header.mflags[0] |= MFLAG0_FORCEACK;
            }
            out.push((To::All, m));
            return;
        }
        let quorum = st.size / 2 + 1;
        if self.election.count >= quorum {
            tracing::info!("Failover election won: I'm the new master.");
            let e = self.election.epoch;
            st.manual_failover = None;
            self.mf_started = false;
            self.replace_primary(st, primary, e, out, effects);
        }
    }

    /// Logs why this replica does not fail over (Redis's `clusterLogCantFailover`): once per
    /// reason every 5 minutes, and not while its primary failed less than the node timeout
    /// plus 5 s ago (only a replica stalled for long is worth a line).
    fn log_cant_failover(&mut self, st: &State, primary: Name, now: u64, why: CantFailover) {
        if self.cant_failover == Some(why)
            && now.saturating_sub(self.cant_failover_logged) < CANT_FAILOVER_RELOG_MS
        {
            return;
        }
        self.cant_failover = Some(why);
        let quiet = self.node_timeout() + 5000;
        if st
            .nodes
            .get(&primary)
            .is_some_and(|p| p.failed() && now.saturating_sub(p.fail_time) < quiet)
        {
            return;
        }
        let msg = match why {
            CantFailover::DataAge => {
                "Disconnected from master for longer than allowed. Please check the \
                 'cluster-replica-validity-factor' configuration option."
            }
        };
        self.cant_failover_logged = now;
        tracing::warn!("Currently unable to failover: {msg}");
    }

    /// This replica takes its primary's slots at config epoch `epoch` and becomes a
    /// primary; every node hears it at once.
    fn replace_primary(
        &mut self,
        st: &mut State,
        primary: Name,
        epoch: u64,
        out: &mut Vec<(To, Message)>,
        effects: &mut Vec<Effect>,
    ) {
        let me = st.myself;
        {
            let n = st.me_mut();
            n.flags = (n.flags & !flag::SLAVE) | flag::MASTER;
            n.master = None;
            n.config_epoch = epoch;
        }
        if st.current_epoch < epoch {
            st.current_epoch = epoch;
        }
        for slot in 0..SLOTS {
            if st.owners[slot] == Some(primary) {
                st.assign(slot, me);
            }
        }
        self.election = Election::default();
        st.save_pending = true;
        effects.push(Effect::Promote);
        out.push((To::All, self.ping(st, bus::TYPE_PONG)));
    }
}

/// Clients blocked on keys of a slot this node no longer serves (and does not import) are
/// answered `-MOVED`, or `-CLUSTERDOWN` while the cluster is down, as Redis's
/// `clusterRedirectBlockedClientIfNeeded` answers them.
fn redirect_blocked(server: &Server, cluster: &Cluster) {
    let waiters: Vec<_> = {
        let by_id = server.blocked.by_id.lock();
        if by_id.is_empty() {
            return;
        }
        by_id.values().cloned().collect()
    };
    let st = cluster.state.read();
    let kind = cluster.settings.endpoint();
    for w in waiters {
        let Some(key) = w.keys.first() else { continue };
        let redirect = if !st.ok {
            Some(crate::cluster::Redirect::Down)
        } else {
            let slot = crate::cluster::key_slot(key);
            let owner = st.owners[slot as usize];
            if owner != Some(st.myself) && !st.importing.contains_key(&slot) {
                Some(match owner.and_then(|o| st.nodes.get(&o)) {
                    None => crate::cluster::Redirect::DownUnbound,
                    Some(n) => crate::cluster::Redirect::Moved(
                        slot,
                        st.client_address(n, kind, w.handle.tls),
                    ),
                })
            } else {
                None
            }
        };
        if let Some(r) = redirect {
            let reply = format!("-{}\r\n", r.text()).into_bytes();
            w.finish(crate::command::blocking::WaitState::Unblocked(reply));
        }
    }
}

/// The address a node announces in a header, or the one it connected from.
fn ip_of(h: &Header, peer_ip: &str) -> String {
    let announced = bus::until_nul(&h.myip);
    if announced.is_empty() {
        peer_ip.to_string()
    } else {
        String::from_utf8_lossy(announced).into_owned()
    }
}

/// The nodes of this node's shard (its primary and that primary's replicas), but itself.
fn shard_members(st: &State) -> Vec<Name> {
    let primary = st.my_primary();
    let mut v: Vec<Name> = st.replicas_of(&primary).iter().map(|n| n.name).collect();
    v.push(primary);
    v.retain(|n| *n != st.myself);
    v
}

/// Deletes the keys of slots this node lost to a node with a newer configuration (Redis's
/// `delKeysInSlot` for dirty slots): each key as DEL, through the write feed.
fn drop_slot_keys(server: &Arc<Server>, slots: &[u16]) {
    for &slot in slots {
        loop {
            let keys = {
                let mut locks = crate::storage::LockSet::new(&server.keyspace);
                let id = crate::storage::shard_id(0, slot as usize >> 6);
                locks
                    .with(id, |sh| sh.keys_in_slot(slot, 128))
                    .unwrap_or_default()
            };
            if keys.is_empty() {
                break;
            }
            let mut argv: Vec<&[u8]> = vec![b"DEL"];
            argv.extend(keys.iter().map(|k| &k[..]));
            crate::command::run_internal(server, &argv);
        }
    }
}
