//! Replication: a primary streams every change to its replicas; a replica follows one
//! primary. Both sides speak Redis 7.0's protocol, so a Kiln replica follows a redis-server
//! primary and a redis-server replica follows a Kiln primary.
//!
//! # The pieces
//!
//! * This module: the replication state both roles share (role, replication ids, the
//!   attached replicas and their acknowledged offsets, the primary link's state), the write
//!   gate the dispatcher consults (`READONLY`, `NOREPLICAS`, `MASTERDOWN`), `INFO
//!   replication`, `ROLE`, `WAIT`'s bookkeeping, and the replication cron (pings, backlog
//!   trimming, output limits, timeouts).
//! * [`primary`]: serving one replica connection after `PSYNC` / `SYNC`: `+FULLRESYNC` and a
//!   snapshot, or `+CONTINUE` from the backlog, then the stream, while reading its
//!   `REPLCONF ACK`s.
//! * [`replica`]: the link to the primary, on a thread of its own: handshake, the RDB
//!   transfer and load, applying the stream, acknowledging it.
//!
//! # Offsets and the backlog
//!
//! The replication stream is the write feed's replication output (`feed`): its offset is
//! `master_repl_offset`, and the history it holds is the backlog. A replica keeps the same
//! offsets as its primary: it appends the bytes it applied verbatim to its own feed (proxy
//! mode), so its own replicas, and any replica that follows it once it is promoted, continue
//! at the same offsets. The backlog is trimmed to `repl-backlog-size`, but never past what
//! an attached replica still has to receive (a slow replica is cut off by
//! `client-output-buffer-limit replica` instead).
//!
//! # Replication ids
//!
//! `replid` names the history this server's offsets belong to. A replica takes its
//! primary's after a full sync. A promoted replica (`REPLICAOF NO ONE`) starts a new one and
//! keeps the old one as `replid2`, valid up to `second_repl_offset`, so the other replicas
//! of its old primary continue with `PSYNC` instead of a full sync.

pub mod primary;
pub mod replica;
pub mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::client::Client;
use crate::command::flags;
use crate::config::Config;
use crate::error::{LOADING, MASTERDOWN, NOREPLICAS, READONLY_REPLICA};
use crate::pubsub::Limits;
use crate::reply::Out;
use crate::server::{ClientHandle, Server};

/// The all-zero replication id: "none" (`master_replid2` of a server that was never
/// promoted).
pub const NO_REPLID: &str = "0000000000000000000000000000000000000000";

/// How often the replication cron runs.
const CRON_PERIOD: Duration = Duration::from_millis(100);

/// Replication state and counters of one server.
pub struct Repl {
    state: Mutex<State>,
    /// This server follows a primary (`REPLICAOF host port`).
    replica: AtomicBool,
    /// Whether the dispatcher must consult [`Repl::gate`] at all: a replica, or a primary
    /// with `min-replicas-to-write` on. One atomic load for everything else.
    gated: AtomicBool,
    /// `replica-read-only`.
    read_only: AtomicBool,
    /// `replica-serve-stale-data`.
    serve_stale: AtomicBool,
    /// The link to the primary is up (`master_link_status:up`).
    link_up: AtomicBool,
    /// The primary's snapshot is replacing the dataset: only `loading` commands run.
    loading: AtomicBool,
    /// Signalled when a load ends, for the commands waiting it out.
    loaded: (parking_lot::Mutex<()>, parking_lot::Condvar),
    /// `min-replicas-to-write` and `min-replicas-max-lag`.
    min_to_write: AtomicU64,
    min_max_lag: AtomicU64,
    /// Online replicas whose last ACK is at most `min-replicas-max-lag` seconds old.
    good: AtomicU64,
    /// Woken when a replica acknowledges an offset (WAIT).
    pub acks: tokio::sync::Notify,
    /// Clients in WAIT now (INFO `blocked_clients` counts them, as Redis does).
    pub waiting: AtomicU64,
    /// Held by the replica link while it applies one command of its primary's stream and
    /// appends it to its own backlog; a snapshot point on a replica takes it first, so the
    /// offset it records matches the data exactly.
    pub apply_lock: Mutex<()>,
    /// Bumped at every role change: a link thread from an older generation stops.
    generation: AtomicU64,
    /// Held across a FAILOVER's transitions together with the role change they make
    /// (handing over, aborting, ending), so that an ABORT cannot land between the cron's
    /// decision to hand over and its REPLICAOF. Taken before the apply lock.
    failover_lock: Mutex<()>,
    /// The database the primary's stream has selected (the RDB `repl-stream-db` field of a
    /// snapshot this replica serves to its own replicas).
    pub master_db: AtomicUsize,
    /// INFO stats: full syncs served, partial resyncs accepted and refused.
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
    /// INFO stats: stream bytes received from the primary and sent to replicas.
    pub net_repl_in: AtomicU64,
    pub net_repl_out: AtomicU64,
    /// Ids for replica links.
    next_link: AtomicU64,
}

/// The parts of the state that change together, under one lock.
struct State {
    replid: String,
    replid2: String,
    /// `second_repl_offset`: `replid2` is valid for PSYNC offsets up to this (-1: none).
    second_offset: i64,
    /// Whether this server's offsets and `replid` describe data it holds (a primary, or a
    /// replica that completed a sync): then it may ask a new primary to continue from them.
    history: bool,
    /// The primary this server follows.
    master: Option<Master>,
    /// Attached replicas, in the order they attached (`slave0`, `slave1`, ...).
    replicas: Vec<Arc<ReplicaLink>>,
    /// A coordinated failover (FAILOVER) under way.
    failover: Failover,
}

/// Where a FAILOVER is (INFO's `master_failover_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FailoverPhase {
    #[default]
    None,
    /// Writes are paused; waiting for a replica to acknowledge the whole stream.
    WaitForSync,
    /// This server turned into a replica of the target and asks it, with
    /// `PSYNC <replid> <offset+1> FAILOVER`, to become the primary.
    InProgress,
}

impl FailoverPhase {
    fn name(self) -> &'static str {
        match self {
            FailoverPhase::None => "no-failover",
            FailoverPhase::WaitForSync => "waiting-for-sync",
            FailoverPhase::InProgress => "failover-in-progress",
        }
    }
}

/// A FAILOVER's parameters.
#[derive(Default)]
struct Failover {
    phase: FailoverPhase,
    /// The replica to hand over to: given by `TO`, or the first one found caught up.
    target: Option<(String, u16)>,
    /// Unix ms at which waiting for sync ends (0: no TIMEOUT).
    end_ms: u64,
    /// `FORCE`: at the timeout, hand over to the target anyway.
    force: bool,
}

/// The primary link, as INFO and ROLE show it.
#[derive(Clone, Debug)]
pub struct Master {
    pub host: String,
    pub port: u16,
    pub link: LinkState,
    /// Unix ms of the last byte received on an established link (0: no master client).
    pub last_io_ms: u64,
    /// Unix ms the established link was lost (0: never).
    pub down_since_ms: u64,
    /// RDB transfer progress: total size (-1 while unknown: EOF-marker form), bytes read,
    /// unix ms of the last transfer read.
    pub transfer_size: i64,
    pub transfer_read: u64,
    pub transfer_last_io_ms: u64,
    /// Bytes of the stream read from the socket (`slave_read_repl_offset`).
    pub read_offset: u64,
}

/// Where the replica is in following its primary (Redis's `repl_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Must connect (after REPLICAOF, or after the link dropped).
    Connect,
    /// Connecting.
    Connecting,
    /// Connected, handshake in progress.
    Handshake,
    /// Receiving the RDB.
    Transfer,
    /// Following the stream.
    Connected,
}

impl LinkState {
    /// The name ROLE gives the state.
    fn role_name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Transfer => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// A replica's state as its primary sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ReplicaState {
    /// Waiting for the snapshot to start.
    WaitBgsave = 0,
    /// Receiving the snapshot.
    SendBulk = 1,
    /// Receiving the stream.
    Online = 2,
}

/// One attached replica (the primary side of a link).
pub struct ReplicaLink {
    pub id: u64,
    /// The connection's shared view (CLIENT LIST / KILL).
    pub handle: Arc<ClientHandle>,
    /// `REPLCONF ip-address`, or the peer's address.
    pub ip: String,
    /// `REPLCONF listening-port` (0 when not announced).
    pub port: u16,
    state: AtomicU8,
    /// Last offset the replica acknowledged, and when (unix ms).
    pub ack_off: AtomicU64,
    pub ack_ms: AtomicU64,
    /// The next stream offset to send it (`u64::MAX` before its snapshot point): the
    /// backlog is not trimmed past it.
    pub pos: AtomicU64,
    /// Unix ms since which its pending output has been over the soft limit (0: it is not).
    soft_since: AtomicU64,
    /// Attached with SYNC (the old protocol): it never acknowledges, so it never times out.
    pub pre_psync: bool,
}

impl ReplicaLink {
    /// Where the replica is in its sync (INFO's `state=`).
    pub fn state(&self) -> ReplicaState {
        match self.state.load(Relaxed) {
            0 => ReplicaState::WaitBgsave,
            1 => ReplicaState::SendBulk,
            _ => ReplicaState::Online,
        }
    }

    /// Moves the replica to its next sync state.
    pub fn set_state(&self, s: ReplicaState) {
        self.state.store(s as u8, Relaxed);
    }
}

/// Per-client replication details (the `repl` field of [`Client`]).
#[derive(Default)]
pub struct ClientRepl {
    /// This is the replica's link to its primary: its writes pass the write gate, and it
    /// sees keys whose deadline passed (only the primary's DEL removes them).
    pub master: bool,
    /// The replication offset right after this client's last write (WAIT waits for it).
    pub woff: u64,
    /// `REPLCONF listening-port` / `ip-address` / `capa` announced before PSYNC.
    pub listening_port: u16,
    pub ip_address: Option<String>,
    pub capa_eof: bool,
    pub capa_psync2: bool,
    /// What the connection must do once the current batch of replies is written.
    pub action: Option<Action>,
}

/// Work a command leaves to the connection task (it needs the socket, or to wait).
#[derive(Debug)]
pub enum Action {
    /// PSYNC / SYNC: the connection becomes a replica link.
    Sync {
        /// `None` for SYNC (old protocol: no `+FULLRESYNC` line).
        psync: Option<(Vec<u8>, i64)>,
    },
    /// WAIT: reply with the number of replicas that acknowledged `offset` once there are
    /// `replicas` of them or `deadline` passes.
    Wait {
        replicas: u64,
        offset: u64,
        deadline: Option<Instant>,
    },
}

impl Default for Repl {
    fn default() -> Self {
        Self::new()
    }
}

impl Repl {
    /// A primary with a fresh replication id, no replicas and no history sent yet.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                replid: crate::server::random_hex(40),
                replid2: NO_REPLID.to_string(),
                second_offset: -1,
                history: true,
                master: None,
                replicas: Vec::new(),
                failover: Failover::default(),
            }),
            replica: AtomicBool::new(false),
            gated: AtomicBool::new(false),
            read_only: AtomicBool::new(true),
            serve_stale: AtomicBool::new(true),
            link_up: AtomicBool::new(false),
            loading: AtomicBool::new(false),
            loaded: (parking_lot::Mutex::new(()), parking_lot::Condvar::new()),
            min_to_write: AtomicU64::new(0),
            min_max_lag: AtomicU64::new(10),
            good: AtomicU64::new(0),
            acks: tokio::sync::Notify::new(),
            waiting: AtomicU64::new(0),
            apply_lock: Mutex::new(()),
            generation: AtomicU64::new(0),
            failover_lock: Mutex::new(()),
            master_db: AtomicUsize::new(0),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
            net_repl_in: AtomicU64::new(0),
            net_repl_out: AtomicU64::new(0),
            next_link: AtomicU64::new(1),
        }
    }

    /// Copies the replication parameters the hot paths read (after load and CONFIG SET).
    pub fn refresh_config(&self, c: &Config) {
        self.read_only
            .store(c.get_bool("replica-read-only"), Relaxed);
        self.serve_stale
            .store(c.get_bool("replica-serve-stale-data"), Relaxed);
        self.min_to_write
            .store(c.get_u64("min-replicas-to-write"), Relaxed);
        self.min_max_lag
            .store(c.get_u64("min-replicas-max-lag"), Relaxed);
        self.refresh_gate();
    }

    fn refresh_gate(&self) {
        let min = self.min_to_write.load(Relaxed) > 0 && self.min_max_lag.load(Relaxed) > 0;
        self.gated.store(self.replica.load(Relaxed) || min, Relaxed);
    }

    /// Whether this server is a replica.
    #[inline]
    /// Replicas attached to this server (INFO's `connected_clients` leaves them out, as
    /// Redis does).
    pub fn replica_count(&self) -> usize {
        self.state.lock().replicas.len()
    }

    pub fn is_replica(&self) -> bool {
        self.replica.load(Relaxed)
    }

    /// Marks the dataset as being replaced (clients get `-LOADING` meanwhile).
    pub fn set_loading(&self, on: bool) {
        let _g = self.loaded.0.lock();
        self.loading.store(on, Relaxed);
        if !on {
            self.loaded.1.notify_all();
        }
    }

    /// Whether the link to the primary is up (a replica following its stream).
    pub fn link_is_up(&self) -> bool {
        self.link_up.load(Relaxed)
    }

    /// DEBUG CHANGE-REPL-ID: a new replication id, and no secondary one (Redis's
    /// `changeReplicationId` and `clearReplicationId2`).
    pub fn change_replid(&self) {
        let mut st = self.state.lock();
        st.replid = crate::server::random_hex(40);
        st.replid2 = NO_REPLID.to_string();
        st.second_offset = -1;
    }

    /// The current replication id.
    pub fn replid(&self) -> String {
        self.state.lock().replid.clone()
    }

    /// `(replid, replid2, second_repl_offset)`.
    pub fn ids(&self) -> (String, String, i64) {
        let st = self.state.lock();
        (st.replid.clone(), st.replid2.clone(), st.second_offset)
    }

    /// The write gate: the error a command with `flags` gets from `client` in the current
    /// role, if any (Redis's checks in `processCommand`, in its order): `NOREPLICAS` on a
    /// primary without enough good replicas, `READONLY` on a read-only replica,
    /// `MASTERDOWN` for commands that need fresh data on a replica whose link is down with
    /// `replica-serve-stale-data no`, and `LOADING` while a replica replaces its dataset
    /// with its primary's snapshot. The primary's own link passes.
    #[inline]
    pub fn gate(&self, client: &Client, cmd_flags: u32) -> Option<&'static str> {
        if !self.gated.load(Relaxed) || client.repl.master {
            return None;
        }
        self.gate_slow(cmd_flags)
    }

    fn gate_slow(&self, cmd_flags: u32) -> Option<&'static str> {
        let write = cmd_flags & flags::WRITE != 0;
        let replica = self.replica.load(Relaxed);
        if write && !replica {
            let need = self.min_to_write.load(Relaxed);
            if need > 0 && self.min_max_lag.load(Relaxed) > 0 && self.good.load(Relaxed) < need {
                return Some(NOREPLICAS);
            }
        }
        if !replica {
            return None;
        }
        if write && self.read_only.load(Relaxed) {
            return Some(READONLY_REPLICA);
        }
        if cmd_flags & flags::STALE == 0
            && !self.link_up.load(Relaxed)
            && !self.serve_stale.load(Relaxed)
        {
            return Some(MASTERDOWN);
        }
        if cmd_flags & flags::LOADING == 0 && self.loading.load(Relaxed) {
            // Redis loads a primary's snapshot on its one thread: a client's command waits
            // for a short load and meets -LOADING only once the load takes long enough for
            // Redis to serve clients in between. Wait as long, up to a second, before
            // answering it. (No shard is held here: the gate comes before locking.)
            let deadline = std::time::Duration::from_secs(1);
            let mut g = self.loaded.0.lock();
            while self.loading.load(Relaxed) {
                if self.loaded.1.wait_for(&mut g, deadline).timed_out() {
                    return self.loading.load(Relaxed).then_some(LOADING);
                }
            }
        }
        None
    }

    /// Online replicas whose acknowledged offset is at least `offset` (WAIT).
    pub fn count_acks(&self, offset: u64) -> u64 {
        self.state
            .lock()
            .replicas
            .iter()
            .filter(|r| r.state() == ReplicaState::Online && r.ack_off.load(Relaxed) >= offset)
            .count() as u64
    }

    /// Asks every replica to acknowledge its offset now (`REPLCONF GETACK *` into the
    /// stream), for WAIT.
    /// Not while a FAILOVER waits: the stream must not move past what the replicas may
    /// already have acknowledged (Redis sends no GETACK while writes are paused).
    pub fn request_acks(&self, server: &Server) {
        let st = self.state.lock();
        if !self.is_replica() && !st.replicas.is_empty() && st.failover.phase == FailoverPhase::None
        {
            drop(st);
            server
                .feed
                .append_repl_only(&[b"REPLCONF", b"GETACK", b"*"]);
        }
    }

    /// Records a replica's acknowledgement.
    pub fn ack(&self, link: &ReplicaLink, offset: u64) {
        link.ack_off.fetch_max(offset, Relaxed);
        link.ack_ms.store(crate::clock::now_ms(), Relaxed);
        self.acks.notify_waiters();
    }

    /// Adds a replica link (a connection that sent PSYNC or SYNC).
    fn attach(
        &self,
        handle: Arc<ClientHandle>,
        ip: String,
        port: u16,
        pre_psync: bool,
    ) -> Arc<ReplicaLink> {
        let link = Arc::new(ReplicaLink {
            id: self.next_link.fetch_add(1, Relaxed),
            handle,
            ip,
            port,
            state: AtomicU8::new(ReplicaState::WaitBgsave as u8),
            ack_off: AtomicU64::new(0),
            ack_ms: AtomicU64::new(crate::clock::now_ms()),
            pos: AtomicU64::new(u64::MAX),
            soft_since: AtomicU64::new(0),
            pre_psync,
        });
        self.state.lock().replicas.push(link.clone());
        link
    }

    /// Removes a replica link (its connection ended).
    fn detach(&self, link: &ReplicaLink) {
        self.state.lock().replicas.retain(|r| r.id != link.id);
        self.acks.notify_waiters();
    }

    /// Closes every replica connection (they reconnect and PSYNC: after a role or history
    /// change they must learn the new replication id).
    pub fn disconnect_replicas(&self) {
        for r in self.state.lock().replicas.iter() {
            r.handle.kill();
        }
    }

    fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Relaxed) + 1
    }

    /// Whether a link thread of generation `gen` is still the current one.
    pub fn current(&self, gen: u64) -> bool {
        self.generation.load(Relaxed) == gen
    }

    /// Updates the primary link's state for INFO (no-op when no longer a replica of it).
    fn with_master(&self, gen: u64, f: impl FnOnce(&mut Master)) {
        let mut st = self.state.lock();
        if self.current(gen) {
            if let Some(m) = st.master.as_mut() {
                f(m);
            }
        }
    }

    /// Where a FAILOVER is.
    pub fn failover_phase(&self) -> FailoverPhase {
        self.state.lock().failover.phase
    }

    /// The attached replica a FAILOVER may name (`host` compared as Redis does: the
    /// announced or peer address as text, without resolving), if any.
    pub fn find_replica(&self, host: &str, port: u16) -> Option<Arc<ReplicaLink>> {
        find_replica(&self.state.lock(), host, port)
    }

    /// The primary this server follows, as (host, port).
    pub fn master_addr(&self) -> Option<(String, u16)> {
        self.state
            .lock()
            .master
            .as_ref()
            .map(|m| (m.host.clone(), m.port))
    }
}

/// Starts replication services: the cron, and following the configured `replicaof`.
/// Called once the server runs, from inside its Tokio runtime.
pub fn start(server: &Arc<Server>) {
    tokio::spawn(cron(server.clone()));
    let target = server.config.read().replicaof();
    if let Some((host, port)) = target {
        // A server started as a replica has no history a primary could continue.
        server.repl.state.lock().history = false;
        follow(server, host, port, true);
    }
}

/// Whether this server already follows `host:port` (REPLICAOF to it changes nothing).
pub fn follows(server: &Server, host: &str, port: u16) -> bool {
    let st = server.repl.state.lock();
    st.master
        .as_ref()
        .is_some_and(|m| m.host.eq_ignore_ascii_case(host) && m.port == port)
}

/// How old a replica's data may be (ms, at `now`), as Redis's cluster failover measures
/// it in whole seconds: since the last byte from the primary while the link is up,
/// otherwise since the link went down (forever when it never came up). None on a primary.
pub fn master_data_age_ms(server: &Server, now: u64) -> Option<u64> {
    let st = server.repl.state.lock();
    let m = st.master.as_ref()?;
    let since = if m.link == LinkState::Connected && m.last_io_ms > 0 {
        m.last_io_ms
    } else {
        m.down_since_ms
    };
    Some((now / 1000).saturating_sub(since / 1000) * 1000)
}

/// `REPLICAOF host port` (`Some`) or `REPLICAOF NO ONE` (`None`). Returns false when
/// already following that primary (nothing changes). Takes the apply lock: never call it
/// while holding shard locks (commands defer it with `Ctx::after_unlock`).
pub fn replicaof(server: &Arc<Server>, target: Option<(String, u16)>) -> bool {
    let repl = &server.repl;
    // CONFIG GET replicaof (and CONFIG REWRITE) show the role in force.
    let value = match &target {
        Some((host, port)) => vec![host.clone(), port.to_string()],
        None => vec!["no".to_string(), "one".to_string()],
    };
    let _ = server.config.write().set("replicaof", &value);
    match target {
        None => {
            if !repl.is_replica() {
                return true;
            }
            promote(server);
            true
        }
        Some((host, port)) => {
            if follows(server, &host, port) {
                return false;
            }
            follow(server, host, port, false);
            true
        }
    }
}

/// Becomes a replica of `host:port` (from either role). `at_start`: the server starts as
/// a replica (`replicaof` in its configuration), with no history to continue.
fn follow(server: &Arc<Server>, host: String, port: u16, at_start: bool) {
    let repl = &server.repl;
    let gen = repl.next_generation();
    // Wait out a command being applied from the previous primary, so no byte of its stream
    // lands after this point.
    let _applying = repl.apply_lock.lock();
    let was_primary = !repl.is_replica();
    {
        let mut st = repl.state.lock();
        if was_primary && !at_start {
            // Our own history is what a new primary may continue from (Redis's cached
            // master built from ourselves): make sure it has a backlog to serve from.
            server.feed.enable_repl(server.feed.repl_offset());
            st.history = true;
        }
        let down_since = st.master.as_ref().map_or(0, |m| m.down_since_ms);
        st.master = Some(Master {
            host: host.clone(),
            port,
            link: LinkState::Connect,
            last_io_ms: 0,
            down_since_ms: down_since,
            transfer_size: -1,
            transfer_read: 0,
            transfer_last_io_ms: 0,
            read_offset: 0,
        });
    }
    repl.link_up.store(false, Relaxed);
    repl.replica.store(true, Relaxed);
    repl.refresh_gate();
    // A replica's stream is its primary's, relayed; its keys expire only by the primary's
    // DELs.
    server.feed.set_repl_proxy(true);
    server.refresh_expiry_mode();
    // Blocked clients cannot be served by writes that will never come from them.
    drop(_applying);
    kill_master_clients(server);
    unblock_all(server);
    tracing::info!("Connecting to MASTER {host}:{port}");
    replica::spawn(server.clone(), host, port, gen);
}

/// `REPLICAOF NO ONE`: stops following, starts a new history and keeps the old one as
/// `replid2`.
fn promote(server: &Arc<Server>) {
    let repl = &server.repl;
    repl.next_generation();
    let _applying = repl.apply_lock.lock();
    {
        let mut st = repl.state.lock();
        let offset = server.feed.repl_offset();
        if st.history {
            st.replid2 = std::mem::replace(&mut st.replid, crate::server::random_hex(40));
            st.second_offset = offset as i64 + 1;
            tracing::warn!(
                "Setting secondary replication ID to {}, valid up to offset: {}. New replication ID is {}",
                st.replid2,
                st.second_offset,
                st.replid
            );
        } else {
            st.replid = crate::server::random_hex(40);
        }
        st.history = true;
        st.master = None;
        server.feed.enable_repl(offset);
    }
    repl.replica.store(false, Relaxed);
    repl.link_up.store(false, Relaxed);
    repl.refresh_gate();
    server.feed.set_repl_proxy(false);
    server.feed.forget_db();
    server.refresh_expiry_mode();
    drop(_applying);
    kill_master_clients(server);
    // Our replicas must learn the new id: they reconnect and continue with PSYNC.
    repl.disconnect_replicas();
    tracing::info!("MASTER MODE enabled");
}

fn find_replica(st: &State, host: &str, port: u16) -> Option<Arc<ReplicaLink>> {
    st.replicas
        .iter()
        .find(|r| r.ip.eq_ignore_ascii_case(host) && r.port == port)
        .cloned()
}

/// FAILOVER, once its checks passed: pauses writes and waits for a replica (`target`, or
/// any) to acknowledge the whole stream; the cron carries it on ([`update_failover`]).
/// `timeout_ms` 0: no timeout.
pub fn start_failover(
    server: &Server,
    target: Option<(String, u16)>,
    timeout_ms: u64,
    force: bool,
) {
    let now = crate::clock::now_ms();
    {
        let mut st = server.repl.state.lock();
        match &target {
            Some((h, p)) => tracing::info!("FAILOVER requested to {h}:{p}."),
            None => tracing::info!("FAILOVER requested to any replica."),
        }
        st.failover = Failover {
            phase: FailoverPhase::WaitForSync,
            target,
            end_ms: if timeout_ms > 0 {
                now.saturating_add(timeout_ms)
            } else {
                0
            },
            force,
        };
    }
    server.pause.hold_for_failover(true);
    server.refresh_expiry_mode();
}

/// Ends a FAILOVER: writes resume. Redis's `clearFailoverState`.
fn clear_failover(server: &Server) {
    server.repl.state.lock().failover = Failover::default();
    server.pause.hold_for_failover(false);
    server.refresh_expiry_mode();
}

/// The target accepted `PSYNC ... FAILOVER` (`+CONTINUE` or `+FULLRESYNC`): the failover
/// is over and this server stays the target's replica. Called by the link thread.
pub fn failover_accepted(server: &Server) {
    let _transition = server.repl.failover_lock.lock();
    if server.repl.failover_phase() == FailoverPhase::InProgress {
        clear_failover(server);
    }
}

/// Gives a FAILOVER up (`FAILOVER ABORT`, the timeout without FORCE, the target refusing
/// the hand-over): a server that already turned into a replica becomes a primary again
/// (with a new replication id, as `REPLICAOF NO ONE` gives it), and writes resume. Takes
/// the apply lock when demoted: never call it while holding shard locks.
pub fn abort_failover(server: &Arc<Server>, why: &str) {
    let _transition = server.repl.failover_lock.lock();
    let phase = {
        let st = server.repl.state.lock();
        match &st.failover.target {
            _ if st.failover.phase == FailoverPhase::None => return,
            Some((h, p)) => tracing::info!("FAILOVER to {h}:{p} aborted: {why}"),
            None => tracing::info!("FAILOVER to any replica aborted: {why}"),
        }
        st.failover.phase
    };
    if phase == FailoverPhase::InProgress {
        let _ = server
            .config
            .write()
            .set("replicaof", &["no".to_string(), "one".to_string()]);
        promote(server);
    }
    clear_failover(server);
}

/// The cron's step of a FAILOVER waiting for sync (Redis's `updateFailoverStatus`): at the
/// timeout, hand over anyway (FORCE) or give up; otherwise hand over to the target, or the
/// first replica found, once it acknowledged this server's whole stream.
fn update_failover(server: &Arc<Server>) {
    if server.repl.failover_phase() != FailoverPhase::WaitForSync {
        return;
    }
    let transition = server.repl.failover_lock.lock();
    let offset = server.feed.repl_offset();
    let now = crate::clock::now_ms();
    let target = {
        let mut st = server.repl.state.lock();
        let f = &st.failover;
        if f.phase != FailoverPhase::WaitForSync {
            return;
        }
        if f.end_ms != 0 && f.end_ms <= now {
            if !f.force {
                drop(st);
                drop(transition);
                abort_failover(server, "Replica never caught up before timeout");
                return;
            }
            if let Some((h, p)) = &f.target {
                tracing::info!("FAILOVER to {h}:{p} time out exceeded, failing over.");
            }
            st.failover.phase = FailoverPhase::InProgress;
            st.failover.target.clone()
        } else {
            let caught_up = match &f.target {
                Some((h, p)) => find_replica(&st, h, *p),
                None => st
                    .replicas
                    .iter()
                    .find(|r| r.ack_off.load(Relaxed) == offset)
                    .cloned(),
            };
            match caught_up {
                Some(r) if r.ack_off.load(Relaxed) == offset => {
                    st.failover.target = Some((r.ip.clone(), r.port));
                    st.failover.phase = FailoverPhase::InProgress;
                    tracing::info!(
                        "Failover target {}:{} is synced, failing over.",
                        r.ip,
                        r.port
                    );
                    st.failover.target.clone()
                }
                _ => return,
            }
        }
    };
    if let Some((host, port)) = target {
        let _ = server
            .config
            .write()
            .set("replicaof", &[host.clone(), port.to_string()]);
        follow(server, host, port, false);
    }
}

/// Answers every client blocked on keys, and every client in WAIT, with Redis's error for
/// a role change, then closes their connections (Redis's `disconnectAllBlockedClients`).
fn unblock_all(server: &Server) {
    let waiters: Vec<_> = server.blocked.by_id.lock().values().cloned().collect();
    for w in waiters {
        w.finish(crate::command::blocking::WaitState::Closing(
            crate::error::UNBLOCKED_ROLE_CHANGE.as_bytes().to_vec(),
        ));
    }
    // WAITs look at the role when woken (`primary::wait`).
    server.repl.acks.notify_waiters();
}

/// Closes the registered primary link client(s) (CLIENT LIST shows it as `flags=M`).
fn kill_master_clients(server: &Server) {
    let clients: Vec<_> = server.clients.lock().values().cloned().collect();
    for c in clients {
        if c.info.lock().flags.contains('M') {
            c.kill();
        }
    }
}

/// The replication cron: pings replicas every `repl-ping-replica-period`, trims the
/// backlog, enforces `client-output-buffer-limit replica` and `repl-timeout`, and counts
/// the good replicas for `min-replicas-to-write`.
async fn cron(server: Arc<Server>) {
    let mut last_ping = crate::clock::instant();
    loop {
        tokio::time::sleep(CRON_PERIOD).await;
        if server.process.shutting_down.load(Relaxed) {
            return;
        }
        let (period, backlog, timeout, limits) = {
            let c = server.config.read();
            (
                c.get_u64("repl-ping-replica-period").max(1),
                c.get_u64("repl-backlog-size").max(1),
                c.get_u64("repl-timeout").max(1),
                crate::server::class_limits(c.get("client-output-buffer-limit"), "slave"),
            )
        };
        let repl = &server.repl;
        update_failover(&server);
        let (replicas, failing_over) = {
            let st = repl.state.lock();
            (
                st.replicas.clone(),
                st.failover.phase != FailoverPhase::None,
            )
        };
        if last_ping.elapsed() >= Duration::from_secs(period) {
            last_ping = crate::clock::instant();
            // A replica relays its primary's pings; only a primary makes its own, and not
            // while a FAILOVER waits for a replica to acknowledge its whole stream.
            if !repl.is_replica() && !replicas.is_empty() && !failing_over {
                server.feed.append_repl_only(&[b"ping"]);
            }
        }
        let now = crate::clock::now_ms();
        let end = server.feed.repl_offset();
        let mut keep_from = end.saturating_sub(backlog);
        let mut good = 0;
        let max_lag = repl.min_max_lag.load(Relaxed);
        for r in &replicas {
            let pos = r.pos.load(Relaxed);
            keep_from = keep_from.min(pos);
            if pos != u64::MAX {
                let pending = end.saturating_sub(pos);
                if over_limit(r, pending, &limits, now) {
                    r.handle.output_buf.store(pending, Relaxed);
                    tracing::warn!(
                        "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
                        crate::command::client::info_line(&server, &r.handle)
                    );
                    r.handle.kill();
                    continue;
                }
            }
            if r.state() == ReplicaState::Online && !r.pre_psync {
                let lag_s = now.saturating_sub(r.ack_ms.load(Relaxed)) / 1000;
                if lag_s > timeout {
                    tracing::warn!("Disconnecting timedout replica: {}", r.handle.addr);
                    r.handle.kill();
                    continue;
                }
                if lag_s <= max_lag {
                    good += 1;
                }
            }
        }
        repl.good.store(good, Relaxed);
        if server.feed.repl_enabled() {
            server.feed.trim_repl(keep_from);
        }
    }
}

/// Whether a replica with `pending` unsent stream bytes must be cut off: the `slave` class
/// of `client-output-buffer-limit`, judged as every other client's output is.
fn over_limit(r: &ReplicaLink, pending: u64, l: &Limits, now: u64) -> bool {
    let mut since = r.soft_since.load(Relaxed);
    let over = l.exceeded_at(pending, &mut since, now);
    r.soft_since.store(since, Relaxed);
    over
}

/// Appends `INFO replication`'s fields (Redis 7.0's, in its order).
pub fn info(server: &Server, s: &mut String) {
    use std::fmt::Write as _;
    let repl = &server.repl;
    let now = crate::clock::now_ms();
    let feed = &server.feed;
    let offset = feed.repl_offset();
    let history = feed.repl_history();
    let (backlog, priority, announced) = {
        let c = server.config.read();
        (
            c.get_u64("repl-backlog-size"),
            c.get_u64("replica-priority"),
            c.get_bool("replica-announced"),
        )
    };
    let st = repl.state.lock();
    match st.master.as_ref() {
        None => s.push_str("role:master\r\n"),
        Some(m) => {
            let connected = m.link == LinkState::Connected;
            let reploff = if st.history || connected { offset } else { 1 };
            let read_off = if connected {
                m.read_offset.max(reploff)
            } else {
                reploff
            };
            let last_io = if m.last_io_ms > 0 {
                (now.saturating_sub(m.last_io_ms) / 1000) as i64
            } else {
                -1
            };
            let _ = write!(
                s,
                "role:slave\r\nmaster_host:{}\r\nmaster_port:{}\r\nmaster_link_status:{}\r\n\
                 master_last_io_seconds_ago:{last_io}\r\nmaster_sync_in_progress:{}\r\n\
                 slave_read_repl_offset:{read_off}\r\nslave_repl_offset:{reploff}\r\n",
                m.host,
                m.port,
                if connected { "up" } else { "down" },
                u8::from(m.link == LinkState::Transfer),
            );
            if m.link == LinkState::Transfer {
                let size = m.transfer_size;
                let read = m.transfer_read as i64;
                let perc = if size > 0 {
                    read as f64 / size as f64 * 100.0
                } else {
                    0.0
                };
                let _ = write!(
                    s,
                    "master_sync_total_bytes:{size}\r\nmaster_sync_read_bytes:{read}\r\n\
                     master_sync_left_bytes:{}\r\nmaster_sync_perc:{perc:.2}\r\n\
                     master_sync_last_io_seconds_ago:{}\r\n",
                    size - read,
                    now.saturating_sub(m.transfer_last_io_ms) / 1000
                );
            }
            if !connected {
                let down = if m.down_since_ms > 0 {
                    (now.saturating_sub(m.down_since_ms) / 1000) as i64
                } else {
                    -1
                };
                let _ = write!(s, "master_link_down_since_seconds:{down}\r\n");
            }
            let _ = write!(
                s,
                "slave_priority:{priority}\r\nslave_read_only:{}\r\nreplica_announced:{}\r\n",
                u8::from(repl.read_only.load(Relaxed)),
                u8::from(announced)
            );
        }
    }
    let _ = write!(s, "connected_slaves:{}\r\n", st.replicas.len());
    let need = repl.min_to_write.load(Relaxed);
    if need > 0 && repl.min_max_lag.load(Relaxed) > 0 {
        let _ = write!(s, "min_slaves_good_slaves:{}\r\n", repl.good.load(Relaxed));
    }
    for (i, r) in st.replicas.iter().enumerate() {
        let state = match r.state() {
            ReplicaState::WaitBgsave => "wait_bgsave",
            ReplicaState::SendBulk => "send_bulk",
            ReplicaState::Online => "online",
        };
        let lag = if r.state() == ReplicaState::Online {
            now.saturating_sub(r.ack_ms.load(Relaxed)) / 1000
        } else {
            0
        };
        let _ = write!(
            s,
            "slave{i}:ip={},port={},state={state},offset={},lag={lag}\r\n",
            r.ip,
            r.port,
            r.ack_off.load(Relaxed)
        );
    }
    let (first, histlen) = match history {
        Some((start, len)) => (start + 1, len),
        None => (0, 0),
    };
    let _ = write!(
        s,
        "master_failover_state:{}\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\n\
         master_repl_offset:{offset}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:{}\r\n\
         repl_backlog_size:{backlog}\r\nrepl_backlog_first_byte_offset:{first}\r\n\
         repl_backlog_histlen:{histlen}\r\n",
        st.failover.phase.name(),
        st.replid,
        st.replid2,
        st.second_offset,
        u8::from(history.is_some()),
    );
}

/// `ROLE`'s reply: `[master, offset, [[ip, port, offset], ...]]` or
/// `[slave, host, port, state, offset]`.
pub fn role(server: &Server, out: &mut Out) {
    let repl = &server.repl;
    let offset = server.feed.repl_offset();
    let st = repl.state.lock();
    match st.master.as_ref() {
        None => {
            out.array(3);
            out.bulk(b"master");
            out.int(offset as i64);
            let online: Vec<&Arc<ReplicaLink>> = st
                .replicas
                .iter()
                .filter(|r| r.state() == ReplicaState::Online)
                .collect();
            out.array(online.len());
            let mut b = itoa::Buffer::new();
            for r in online {
                out.array(3);
                out.bulk(r.ip.as_bytes());
                out.bulk(b.format(r.port).as_bytes());
                out.bulk(b.format(r.ack_off.load(Relaxed)).as_bytes());
            }
        }
        Some(m) => {
            out.array(5);
            out.bulk(b"slave");
            out.bulk(m.host.as_bytes());
            out.int(i64::from(m.port));
            out.bulk(m.link.role_name().as_bytes());
            // The offset of the master client, which exists once a sync completed.
            let has_master_client = m.last_io_ms > 0 && m.link == LinkState::Connected;
            out.int(if has_master_client { offset as i64 } else { -1 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replica_class_of_the_output_limits_is_parsed() {
        let l = crate::server::class_limits(
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 1 2 3",
            "slave",
        );
        assert_eq!(
            l,
            Limits {
                hard: 268435456,
                soft: 67108864,
                soft_secs: 60
            }
        );
    }

    #[test]
    fn a_replica_over_the_soft_limit_is_cut_off_only_after_the_soft_seconds() {
        let repl = Repl::new();
        let h = Arc::new(ClientHandle::new(1, "a".into(), "b".into(), 0, 0));
        let r = repl.attach(h, "127.0.0.1".into(), 1, false);
        let l = Limits {
            hard: 1000,
            soft: 100,
            soft_secs: 2,
        };
        assert!(!over_limit(&r, 50, &l, 10_000));
        assert!(!over_limit(&r, 150, &l, 10_000));
        assert!(!over_limit(&r, 150, &l, 11_000));
        // Cut off once over the soft limit for more than the soft seconds, as Redis does.
        assert!(!over_limit(&r, 150, &l, 12_000));
        assert!(over_limit(&r, 150, &l, 12_001));
        // Back under the soft limit: the clock restarts.
        assert!(!over_limit(&r, 10, &l, 12_500));
        assert!(!over_limit(&r, 150, &l, 13_000));
        assert!(over_limit(&r, 1000, &l, 13_000));
    }

    #[test]
    fn the_write_gate_refuses_writes_on_a_read_only_replica_but_not_from_its_primary() {
        let repl = Repl::new();
        let h = Arc::new(ClientHandle::new(1, "a".into(), "b".into(), 0, 0));
        let mut client = Client::new(h, false);
        assert_eq!(repl.gate(&client, flags::WRITE), None);
        repl.replica.store(true, Relaxed);
        repl.refresh_gate();
        assert_eq!(repl.gate(&client, flags::WRITE), Some(READONLY_REPLICA));
        assert_eq!(repl.gate(&client, flags::READONLY | flags::STALE), None);
        // Link down, stale data refused: only STALE commands run.
        repl.serve_stale.store(false, Relaxed);
        assert_eq!(repl.gate(&client, flags::READONLY), Some(MASTERDOWN));
        client.repl.master = true;
        assert_eq!(repl.gate(&client, flags::WRITE), None);
    }

    #[test]
    fn min_replicas_to_write_counts_good_replicas() {
        let repl = Repl::new();
        let h = Arc::new(ClientHandle::new(1, "a".into(), "b".into(), 0, 0));
        let client = Client::new(h, false);
        repl.min_to_write.store(1, Relaxed);
        repl.refresh_gate();
        assert_eq!(repl.gate(&client, flags::WRITE), Some(NOREPLICAS));
        assert_eq!(repl.gate(&client, flags::READONLY), None);
        repl.good.store(1, Relaxed);
        assert_eq!(repl.gate(&client, flags::WRITE), None);
    }
}
