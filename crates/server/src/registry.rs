//! The client registry: the shared, read-mostly view of every connection that CLIENT
//! LIST, CLIENT KILL, INFO clients and shutdown see. A connection owns its state
//! (`client::Client`); what other threads may read or ask of it lives in its
//! [`ClientHandle`], registered here for the connection's lifetime. Nothing here knows the
//! server, so pub/sub and replication can hold handles without depending on it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

/// Every registered connection by id (ascending: CLIENT LIST's order), and the memory
/// they hold together.
#[derive(Default)]
pub struct Registry {
    clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    /// What the clients hold, summed (INFO `mem_clients_*`, `maxmemory-clients`).
    pub mem: Arc<MemTotals>,
}

impl Registry {
    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<ClientHandle>>> {
        self.clients.lock()
    }

    /// For the crash report, which must not wait on a lock a crashing thread may hold.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, BTreeMap<u64, Arc<ClientHandle>>>> {
        self.clients.try_lock()
    }
}

/// The memory clients hold, summed by class, kept by deltas: each handle adds what its
/// own figure moved by, and only when it moved (a connection in a steady state keeps its
/// buffers' capacities, so a stream of small commands writes nothing here).
#[derive(Default)]
pub struct MemTotals {
    /// Normal and pub/sub clients: what `maxmemory-clients` limits (INFO
    /// `mem_clients_normal`).
    normal: AtomicI64,
    /// Replicas attached to this server (INFO `mem_clients_slaves`).
    replicas: AtomicI64,
    /// `maxmemory-clients` in bytes as it applies now (a percentage resolved against
    /// `maxmemory`, Redis's 128 KiB floor applied); 0 when off.
    limit: AtomicU64,
    /// Clients closed by client eviction (INFO `evicted_clients`).
    pub evicted: AtomicU64,
    /// Held by the one thread evicting clients; the unix ms of the last "could not get
    /// under the limit" warning.
    pub evicting: Mutex<u64>,
}

impl MemTotals {
    /// Bytes held by normal and pub/sub clients.
    pub fn normal(&self) -> u64 {
        self.normal.load(Relaxed).max(0) as u64
    }

    /// Bytes held by replica connections.
    pub fn replicas(&self) -> u64 {
        self.replicas.load(Relaxed).max(0) as u64
    }

    pub fn limit(&self) -> u64 {
        self.limit.load(Relaxed)
    }

    pub fn set_limit(&self, bytes: u64) {
        self.limit.store(bytes, Relaxed);
    }

    /// Whether client eviction is on and normal clients hold at least the limit: the
    /// check after every batch, two loads.
    pub fn over_limit(&self) -> bool {
        let limit = self.limit();
        limit != 0 && self.normal() >= limit
    }
}

/// Pub/sub messages queued for a subscriber move the totals in steps of this size at
/// least, so a subscriber that keeps up never touches them on its publishers' paths.
const QUEUE_STEP: u64 = 16 * 1024;

/// Whether a peer counts as local, Redis's `islocalClient`: a Unix socket client, or a
/// TCP peer at exactly `127.0.0.1` or `::1` (Redis compares the address text, so another
/// loopback address such as 127.0.0.2 is not local). The one definition protected mode
/// and the `enable-*-command local` options share.
pub fn is_local(addr: &str, unix: bool) -> bool {
    unix || addr
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| match a.ip() {
            std::net::IpAddr::V4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
            std::net::IpAddr::V6(ip) => ip == std::net::Ipv6Addr::LOCALHOST,
        })
}

/// The shared, read-mostly view of a connection (CLIENT LIST, CLIENT KILL, INFO clients).
pub struct ClientHandle {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i32,
    /// Connected through the Unix socket (CLIENT LIST flag `U`; always local).
    pub unix: bool,
    /// Connected over TLS (a cluster redirects it to nodes' TLS ports).
    pub tls: bool,
    pub created_ms: u64,
    pub db: AtomicU32,
    pub last_interaction_ms: AtomicU64,
    /// Command id of the last command, `u32::MAX` for none.
    pub last_cmd: AtomicU32,
    pub resp: AtomicU8,
    pub multi: AtomicU32,
    /// Channel, pattern and shard-channel subscription counts (CLIENT LIST sub/psub/ssub).
    pub sub: AtomicU32,
    pub psub: AtomicU32,
    pub ssub: AtomicU32,
    /// Unparsed bytes in the read buffer (CLIENT LIST `qbuf`), and its spare capacity
    /// (`qbuf-free`).
    pub query_buf: AtomicU64,
    pub query_free: AtomicU64,
    /// Replies the socket has not taken yet, and the reply buffer's capacity (`rbs`).
    pub output_buf: AtomicU64,
    pub reply_cap: AtomicU64,
    /// What the commands queued since MULTI hold (`multi-mem`).
    pub multi_mem: AtomicU64,
    /// Bytes of published messages queued for this subscriber (its `pubsub::Subscriber`
    /// counts them here).
    pub msg_bytes: Arc<AtomicU64>,
    /// What the connection holds (buffers, MULTI queue, fixed overhead) as last reported
    /// by its task, and the part of `msg_bytes` already added to the totals.
    conn_mem: AtomicU64,
    queue_mem: AtomicU64,
    /// Counted with the replicas rather than the normal clients.
    replica: AtomicBool,
    totals: Arc<MemTotals>,
    pub info: Mutex<ClientInfo>,
    /// Set to ask the connection to close (CLIENT KILL, SHUTDOWN).
    pub killed: AtomicBool,
    pub kill: tokio::sync::Notify,
}

/// The parts of a client's state that change rarely.
#[derive(Clone)]
pub struct ClientInfo {
    pub name: Vec<u8>,
    /// The ACL user the connection is authenticated as (CLIENT LIST `user`).
    pub user: Vec<u8>,
    pub lib_name: Vec<u8>,
    pub lib_ver: Vec<u8>,
    pub flags: String,
}

impl Default for ClientInfo {
    fn default() -> Self {
        Self {
            name: Vec::new(),
            user: b"default".to_vec(),
            lib_name: Vec::new(),
            lib_ver: Vec::new(),
            flags: String::new(),
        }
    }
}

impl ClientHandle {
    pub fn new(id: u64, addr: String, laddr: String, fd: i32, now_ms: u64) -> Self {
        Self {
            id,
            addr,
            laddr,
            fd,
            unix: false,
            tls: false,
            created_ms: now_ms,
            db: AtomicU32::new(0),
            last_interaction_ms: AtomicU64::new(now_ms),
            last_cmd: AtomicU32::new(u32::MAX),
            resp: AtomicU8::new(2),
            multi: AtomicU32::new(0),
            sub: AtomicU32::new(0),
            psub: AtomicU32::new(0),
            ssub: AtomicU32::new(0),
            query_buf: AtomicU64::new(0),
            query_free: AtomicU64::new(0),
            output_buf: AtomicU64::new(0),
            reply_cap: AtomicU64::new(0),
            multi_mem: AtomicU64::new(0),
            msg_bytes: Arc::default(),
            conn_mem: AtomicU64::new(0),
            queue_mem: AtomicU64::new(0),
            replica: AtomicBool::new(false),
            totals: Arc::default(),
            info: Mutex::new(ClientInfo::default()),
            killed: AtomicBool::new(false),
            kill: tokio::sync::Notify::new(),
        }
    }

    /// Counts this client's memory in `totals` (a registered connection's: its
    /// registry's) rather than in a private sum.
    pub fn with_totals(mut self, totals: Arc<MemTotals>) -> Self {
        self.totals = totals;
        self
    }

    /// Marks a connection that came through the Unix socket (flag `U`).
    pub fn with_tls(mut self) -> Self {
        self.tls = true;
        self
    }

    pub fn with_unix(mut self) -> Self {
        self.unix = true;
        self.info.get_mut().flags = "U".to_string();
        self
    }

    /// Whether the client counts as local (see [`is_local`]).
    pub fn is_local(&self) -> bool {
        is_local(&self.addr, self.unix)
    }

    /// Asks the connection to close after its current command.
    pub fn kill(&self) {
        self.killed.store(true, Relaxed);
        self.kill.notify_one();
    }

    /// What the client holds (CLIENT LIST `tot-mem`, less the running command's
    /// arguments): its connection's figure and its queued messages.
    pub fn memory(&self) -> u64 {
        self.conn_mem.load(Relaxed) + self.msg_bytes.load(Relaxed)
    }

    fn add(&self, delta: i64) {
        if delta != 0 {
            let sum = if self.replica.load(Relaxed) {
                &self.totals.replicas
            } else {
                &self.totals.normal
            };
            sum.fetch_add(delta, Relaxed);
        }
    }

    /// The connection's task reports what it holds now. A client already killed reports
    /// nothing: what it held was taken off when it was killed for it.
    pub fn set_conn_mem(&self, bytes: u64) {
        let bytes = if self.killed.load(Relaxed) { 0 } else { bytes };
        let old = self.conn_mem.swap(bytes, Relaxed);
        self.add(bytes as i64 - old as i64);
    }

    /// The subscriber's queue holds `queued` bytes now: moves the totals once it is a step
    /// away from what they hold of it (every time it shrinks to empty).
    pub fn set_queue_mem(&self, queued: u64) {
        let counted = self.queue_mem.load(Relaxed);
        if queued.abs_diff(counted) >= QUEUE_STEP || (queued == 0 && counted != 0) {
            let old = self.queue_mem.swap(queued, Relaxed);
            self.add(queued as i64 - old as i64);
        }
    }

    /// Takes everything this client holds off the totals (it is gone, or being closed).
    pub fn release_mem(&self) {
        let old = self.conn_mem.swap(0, Relaxed) + self.queue_mem.swap(0, Relaxed);
        self.add(-(old as i64));
    }

    /// The connection became a replica link: its memory counts with the replicas.
    pub fn set_replica(&self) {
        let held = self.conn_mem.swap(0, Relaxed) + self.queue_mem.swap(0, Relaxed);
        self.add(-(held as i64));
        self.replica.store(true, Relaxed);
        self.set_conn_mem(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_peers_and_unix_sockets_are_local() {
        assert!(is_local("127.0.0.1:5000", false));
        assert!(is_local("[::1]:5000", false));
        assert!(!is_local("10.0.0.1:5000", false));
        assert!(!is_local("127.0.0.2:5000", false));
        assert!(!is_local("", false));
        assert!(is_local("/tmp/kiln.sock:0", true));
    }
}
