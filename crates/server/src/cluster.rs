//! Redis Cluster: what this node knows of the cluster (its nodes, who serves which of the
//! 16384 hash slots, the epochs, slots being migrated) and the routing decision every
//! command with keys passes in cluster mode (`-MOVED`, `-ASK`, `-CROSSSLOT`, `-TRYAGAIN`,
//! `-CLUSTERDOWN`, as Redis's `getNodeByQuery` decides them).
//!
//! A state type the server holds, knowing nothing of it: the CLUSTER commands
//! (`command/cluster.rs`) and the cluster bus change it, the dispatcher reads it. One lock
//! guards it; a command takes it for reading once, the bus for writing per message.

use std::collections::HashMap;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8};

use kiln_formats::cluster::bus;
use kiln_formats::cluster::nodes_conf::{self, NodeLine, NodesConf, SlotMark};
use parking_lot::RwLock;

pub use crate::storage::slot::{key_slot, SLOTS};

/// A node's name: 40 lowercase hex characters.
pub type Name = [u8; 40];

/// Node flags, with the bit values the cluster bus carries.
pub mod flag {
    use super::bus;
    pub const MASTER: u16 = bus::NODE_MASTER;
    pub const SLAVE: u16 = bus::NODE_SLAVE;
    pub const PFAIL: u16 = bus::NODE_PFAIL;
    pub const FAIL: u16 = bus::NODE_FAIL;
    pub const MYSELF: u16 = bus::NODE_MYSELF;
    pub const HANDSHAKE: u16 = bus::NODE_HANDSHAKE;
    pub const NOADDR: u16 = bus::NODE_NOADDR;
    pub const MEET: u16 = bus::NODE_MEET;
    pub const MIGRATE_TO: u16 = bus::NODE_MIGRATE_TO;
    pub const NOFAILOVER: u16 = bus::NODE_NOFAILOVER;
}

/// A random node name.
pub fn random_name() -> Name {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let mut n = [0u8; 40];
    for b in &mut n {
        *b = b"0123456789abcdef"[rng.gen_range(0..16)];
    }
    n
}

/// `name` as text.
pub fn name_str(name: &Name) -> &str {
    // Names are made of hex digits only (`parse_name` and `random_name`).
    std::str::from_utf8(name).unwrap_or("")
}

/// A node name from a client or a file: exactly 40 characters. Redis compares names as
/// bytes; any 40 bytes are accepted here and looked up.
pub fn parse_name(s: &[u8]) -> Option<Name> {
    s.try_into().ok()
}

/// One node of the cluster, as this node knows it.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: Name,
    pub ip: String,
    /// The client port (plain TCP), the TLS port, the bus port.
    pub port: u16,
    pub pport: u16,
    pub cport: u16,
    pub hostname: String,
    pub flags: u16,
    /// The primary of a replica.
    pub master: Option<Name>,
    /// When the last PING still unanswered was sent (ms, 0 = none), the last PONG came.
    pub ping_sent: u64,
    pub pong_received: u64,
    /// The last time anything arrived from it.
    pub data_received: u64,
    pub config_epoch: u64,
    pub repl_offset: u64,
    /// When the node was flagged FAIL.
    pub fail_time: u64,
    /// Primaries that reported it failing, with when they last did.
    pub fail_reports: Vec<(Name, u64)>,
    /// When it was added (a handshake times out).
    pub ctime: u64,
    /// Whether this node's outbound bus link to it is up.
    pub link: bool,
    /// When this node last voted for one of its replicas (as a primary).
    pub voted_time: u64,
    /// Slots this node serves (meaningful for primaries).
    pub slots: Box<[u64; SLOTS / 64]>,
    pub numslots: usize,
}

impl Node {
    pub fn new(name: Name, flags: u16, now: u64) -> Self {
        Self {
            name,
            ip: String::new(),
            port: 0,
            pport: 0,
            cport: 0,
            hostname: String::new(),
            flags,
            master: None,
            ping_sent: 0,
            pong_received: 0,
            data_received: 0,
            config_epoch: 0,
            repl_offset: 0,
            fail_time: 0,
            fail_reports: Vec::new(),
            ctime: now,
            link: false,
            voted_time: 0,
            slots: Box::new([0; SLOTS / 64]),
            numslots: 0,
        }
    }

    pub fn is_master(&self) -> bool {
        self.flags & flag::MASTER != 0
    }

    pub fn is_replica(&self) -> bool {
        self.flags & flag::SLAVE != 0
    }

    pub fn failed(&self) -> bool {
        self.flags & flag::FAIL != 0
    }

    pub fn timed_out(&self) -> bool {
        self.flags & flag::PFAIL != 0
    }

    pub fn in_handshake(&self) -> bool {
        self.flags & flag::HANDSHAKE != 0
    }

    pub fn has_slot(&self, slot: usize) -> bool {
        self.slots[slot / 64] & (1 << (slot % 64)) != 0
    }

    fn set_slot(&mut self, slot: usize, on: bool) -> bool {
        let (w, b) = (slot / 64, 1u64 << (slot % 64));
        let was = self.slots[w] & b != 0;
        if was != on {
            self.slots[w] ^= b;
            if on {
                self.numslots += 1;
            } else {
                self.numslots -= 1;
            }
        }
        was != on
    }

    /// The endpoint clients are sent to (`cluster-preferred-endpoint-type`): the ip, the
    /// hostname, or `?` when it is not known.
    pub fn endpoint(&self, kind: Endpoint) -> &str {
        match kind {
            Endpoint::Ip => &self.ip,
            Endpoint::Hostname if !self.hostname.is_empty() => &self.hostname,
            Endpoint::Hostname | Endpoint::Unknown => "?",
        }
    }
}

/// `cluster-preferred-endpoint-type`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Endpoint {
    Ip,
    Hostname,
    Unknown,
}

/// Why a command is not served here.
#[derive(Debug, PartialEq, Eq)]
pub enum Redirect {
    Moved(u16, String),
    Ask(u16, String),
    CrossSlot,
    TryAgain,
    DownUnbound,
    Down,
    DownReadOnly,
}

impl Redirect {
    /// The error text, as Redis sends it.
    pub fn text(&self) -> String {
        match self {
            Redirect::Moved(slot, addr) => format!("MOVED {slot} {addr}"),
            Redirect::Ask(slot, addr) => format!("ASK {slot} {addr}"),
            Redirect::CrossSlot => crate::error::CROSSSLOT.to_string(),
            Redirect::TryAgain => crate::error::TRYAGAIN.to_string(),
            Redirect::DownUnbound => crate::error::CLUSTERDOWN_UNBOUND.to_string(),
            Redirect::Down => crate::error::CLUSTERDOWN.to_string(),
            Redirect::DownReadOnly => crate::error::CLUSTERDOWN_READONLY.to_string(),
        }
    }
}

/// What the routing decision needs to know of a command and its client.
pub struct Query<'a> {
    /// The keys (or shard channels) the command names, in order.
    pub keys: &'a [&'a [u8]],
    pub write: bool,
    /// The client sent ASKING, or the command is one that implies it (RESTORE-ASKING).
    pub asking: bool,
    /// The client sent READONLY.
    pub readonly: bool,
    /// SPUBLISH, SSUBSCRIBE, SUNSUBSCRIBE.
    pub pubsubshard: bool,
    /// MIGRATE, which works on open slots from this node.
    pub migrate: bool,
    /// Whether the client is on TLS (it is sent to a node's TLS port).
    pub tls: bool,
}

/// Counters of bus messages, by type, for CLUSTER INFO.
#[derive(Default, Clone)]
pub struct MessageStats {
    pub sent: [u64; 11],
    pub received: [u64; 11],
}

/// Bus message type names, as CLUSTER INFO's `cluster_stats_messages_<name>_sent` say them.
pub const MESSAGE_NAMES: [&str; 11] = [
    "ping",
    "pong",
    "meet",
    "fail",
    "publish",
    "auth-req",
    "auth-ack",
    "update",
    "mfstart",
    "module",
    "publishshard",
];

/// The send buffer of one cluster bus link: the bytes queued on it and not yet written
/// (`used`), and the memory they hold (`allocated`). The bus adds a message as it queues
/// it and the link's writer takes it off once the socket took all of it.
#[derive(Default, Debug)]
pub struct LinkBuffer {
    used: AtomicU64,
    allocated: AtomicU64,
}

impl LinkBuffer {
    pub fn queued(&self, msg: &[u8], capacity: usize) {
        self.used.fetch_add(msg.len() as u64, Relaxed);
        self.allocated.fetch_add(capacity as u64, Relaxed);
    }

    pub fn written(&self, msg: &[u8], capacity: usize) {
        self.used.fetch_sub(msg.len() as u64, Relaxed);
        self.allocated.fetch_sub(capacity as u64, Relaxed);
    }

    pub fn used(&self) -> u64 {
        self.used.load(Relaxed)
    }

    pub fn allocated(&self) -> u64 {
        self.allocated.load(Relaxed)
    }
}

/// A cluster bus link as CLUSTER LINKS shows it: one this node opened to `node` (`to`), or
/// one `node` opened to this node (`from`).
#[derive(Clone, Debug)]
pub struct LinkView {
    pub inbound: bool,
    pub node: Name,
    /// When the link was created (ms).
    pub ctime: u64,
    pub buffer: std::sync::Arc<LinkBuffer>,
}

/// A manual failover (CLUSTER FAILOVER) under way on a replica.
#[derive(Clone, Debug)]
pub struct ManualFailover {
    /// 0: wait for the primary to hand over its offset; 1: FORCE (no handshake with the
    /// primary); 2: TAKEOVER (no election either).
    pub mode: u8,
    /// When it is abandoned (ms).
    pub deadline: u64,
    /// The primary's replication offset, once its paused clients let it report one.
    pub primary_offset: Option<u64>,
}

/// Everything this node knows of the cluster.
pub struct State {
    pub myself: Name,
    pub nodes: HashMap<Name, Node>,
    /// Who serves each slot.
    pub owners: Box<[Option<Name>]>,
    /// Slots this node is moving out, and to whom; slots it takes in, and from whom.
    pub migrating: HashMap<u16, Name>,
    pub importing: HashMap<u16, Name>,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
    /// `cluster_state:ok`.
    pub ok: bool,
    /// `cluster_size`: primaries serving slots, as last computed with the state (1 until
    /// then, as in Redis).
    pub size: usize,
    /// Nodes removed by CLUSTER FORGET, not to be re-added by gossip until the time (ms).
    pub blacklist: HashMap<Name, u64>,
    pub stats: MessageStats,
    /// Links freed for going over `cluster-link-sendbuf-limit`.
    pub links_buffer_exceeded: u64,
    /// This node's bus links, as the bus last listed them (every cron step).
    pub links: Vec<LinkView>,
    /// Something changed that nodes.conf must hold.
    pub save_pending: bool,
    /// A CLUSTER FAILOVER this replica is carrying out.
    pub manual_failover: Option<ManualFailover>,
    /// Slots that left this node's shard (their owner was this node or its primary): their
    /// shard channels' subscribers are to be unsubscribed ([`State::take_lost_slots`]).
    lost_slots: Vec<u16>,
    /// When the state was first computed, and when this node last found itself in a
    /// minority partition (Redis waits before serving again).
    first_update: u64,
    minority_since: u64,
}

impl State {
    pub fn new(myself: Node) -> Self {
        let name = myself.name;
        let mut nodes = HashMap::new();
        nodes.insert(name, myself);
        Self {
            myself: name,
            nodes,
            owners: vec![None; SLOTS].into_boxed_slice(),
            migrating: HashMap::new(),
            importing: HashMap::new(),
            current_epoch: 0,
            last_vote_epoch: 0,
            ok: false,
            size: 1,
            blacklist: HashMap::new(),
            stats: MessageStats::default(),
            links_buffer_exceeded: 0,
            links: Vec::new(),
            save_pending: true,
            manual_failover: None,
            lost_slots: Vec::new(),
            first_update: 0,
            minority_since: 0,
        }
    }

    pub fn me(&self) -> &Node {
        &self.nodes[&self.myself]
    }

    pub fn me_mut(&mut self) -> &mut Node {
        self.nodes.get_mut(&self.myself).expect("myself is a node")
    }

    pub fn node(&self, name: &[u8]) -> Option<&Node> {
        parse_name(name).and_then(|n| self.nodes.get(&n))
    }

    /// The primary this node's slots come from: itself, or its primary when a replica.
    pub fn my_primary(&self) -> Name {
        self.me().master.unwrap_or(self.myself)
    }

    /// Notes that `slot` is leaving `old`: when `old` is this node or its primary, the
    /// slot's shard channels lose their subscribers here (Redis's `clusterDelSlot` does so
    /// whenever the slot's previous owner is served by this node, even when the slot is
    /// given back to the same node).
    fn leaving(&mut self, slot: usize, old: Name) {
        let me = self.me();
        if old == self.myself || (me.is_replica() && me.master == Some(old)) {
            self.lost_slots.push(slot as u16);
        }
    }

    /// The slots that left this node's shard since the last call, sorted, once each: the
    /// caller ends their shard channels' subscriptions once the state is unlocked.
    pub fn take_lost_slots(&mut self) -> Vec<u16> {
        let mut v = std::mem::take(&mut self.lost_slots);
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Gives `slot` to `node` (taking it from its previous owner).
    pub fn assign(&mut self, slot: usize, node: Name) {
        if let Some(old) = self.owners[slot] {
            self.leaving(slot, old);
            if let Some(n) = self.nodes.get_mut(&old) {
                n.set_slot(slot, false);
            }
        }
        if let Some(n) = self.nodes.get_mut(&node) {
            n.set_slot(slot, true);
        }
        self.owners[slot] = Some(node);
        self.save_pending = true;
    }

    /// Leaves `slot` unassigned.
    pub fn unassign(&mut self, slot: usize) {
        if let Some(old) = self.owners[slot].take() {
            self.leaving(slot, old);
            if let Some(n) = self.nodes.get_mut(&old) {
                n.set_slot(slot, false);
            }
        }
        self.save_pending = true;
    }

    /// Removes a node and everything that names it.
    pub fn remove_node(&mut self, name: &Name) {
        for slot in 0..SLOTS {
            if self.owners[slot] == Some(*name) {
                self.unassign(slot);
            }
        }
        self.migrating.retain(|_, n| n != name);
        self.importing.retain(|_, n| n != name);
        for n in self.nodes.values_mut() {
            n.fail_reports.retain(|(r, _)| r != name);
        }
        self.nodes.remove(name);
        self.save_pending = true;
    }

    /// The replicas of `primary`.
    pub fn replicas_of(&self, primary: &Name) -> Vec<&Node> {
        let mut v: Vec<&Node> = self
            .nodes
            .values()
            .filter(|n| n.master.as_ref() == Some(primary) && n.is_replica())
            .collect();
        v.sort_by_key(|n| n.name);
        v
    }

    /// Recomputes `cluster_state` as Redis does: every slot served by a reachable node
    /// (unless `cluster-require-full-coverage no`) and a majority of the primaries that serve
    /// slots reachable; a primary that was in a minority waits `rejoin` ms before serving
    /// again, and a starting primary waits 2 s.
    pub fn update_state(&mut self, now: u64, full_coverage: bool, rejoin: u64) {
        if self.first_update == 0 {
            self.first_update = now;
        }
        let me_master = self.me().is_master();
        if me_master && !self.ok && now.saturating_sub(self.first_update) < 2000 {
            return;
        }
        let mut ok = true;
        if full_coverage {
            for owner in self.owners.iter() {
                match owner.and_then(|o| self.nodes.get(&o)) {
                    Some(n) if !n.failed() => {}
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
        }
        let (mut size, mut reachable) = (0usize, 0usize);
        for n in self.nodes.values() {
            if n.is_master() && n.numslots > 0 {
                size += 1;
                if n.flags & (flag::FAIL | flag::PFAIL) == 0 {
                    reachable += 1;
                }
            }
        }
        self.size = size;
        if reachable < size / 2 + 1 {
            ok = false;
            self.minority_since = now;
        }
        if ok != self.ok {
            let rejoin = rejoin.clamp(500, 5000);
            if ok && me_master && now.saturating_sub(self.minority_since) < rejoin {
                return;
            }
            self.ok = ok;
        }
    }

    /// The address a client is sent to for `node`: `endpoint:port`.
    pub fn client_address(&self, node: &Node, kind: Endpoint, tls: bool) -> String {
        let port = if tls && node.pport != 0 {
            node.pport
        } else {
            node.port
        };
        format!("{}:{}", node.endpoint(kind), port)
    }

    /// Where a command with these keys is served, as Redis's `getNodeByQuery` decides:
    /// `Ok` to run it here. `exists` says whether a key is in this node's keyspace (asked
    /// only for slots being migrated or imported).
    pub fn route(
        &self,
        q: &Query,
        kind: Endpoint,
        allow_reads_when_down: bool,
        allow_pubsubshard_when_down: bool,
        exists: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), Redirect> {
        let Some(first) = q.keys.first() else {
            return Ok(());
        };
        let slot = key_slot(first);
        let Some(owner) = self.owners[slot as usize] else {
            return Err(Redirect::DownUnbound);
        };
        let mine = owner == self.myself;
        let migrating = mine && self.migrating.contains_key(&slot);
        let importing = !migrating && self.importing.contains_key(&slot);
        let (mut missing, mut existing, mut multiple) = (0, 0, false);
        for key in q.keys {
            if *key != *first {
                if key_slot(key) != slot {
                    return Err(Redirect::CrossSlot);
                }
                multiple = true;
            }
            if migrating || importing {
                if exists(key) {
                    existing += 1;
                } else {
                    missing += 1;
                }
            }
        }
        if !self.ok {
            if q.pubsubshard {
                if !allow_pubsubshard_when_down {
                    return Err(Redirect::Down);
                }
            } else if !allow_reads_when_down {
                return Err(Redirect::Down);
            } else if q.write {
                return Err(Redirect::DownReadOnly);
            }
        }
        if (migrating || importing) && q.migrate {
            return Ok(());
        }
        if migrating && missing > 0 {
            if existing > 0 {
                return Err(Redirect::TryAgain);
            }
            let to = &self.migrating[&slot];
            return Err(match self.nodes.get(to) {
                Some(n) => Redirect::Ask(slot, self.client_address(n, kind, q.tls)),
                None => Redirect::DownUnbound,
            });
        }
        if importing && q.asking {
            if multiple && missing > 0 {
                return Err(Redirect::TryAgain);
            }
            return Ok(());
        }
        if mine {
            return Ok(());
        }
        let me = self.me();
        if (q.readonly || q.pubsubshard) && !q.write && me.is_replica() && me.master == Some(owner)
        {
            return Ok(());
        }
        match self.nodes.get(&owner) {
            Some(n) => Err(Redirect::Moved(slot, self.client_address(n, kind, q.tls))),
            None => Err(Redirect::DownUnbound),
        }
    }

    /// `n` as a node line of CLUSTER NODES and nodes.conf; this node's own line carries
    /// its open slots (`[slot->-name]`, `[slot-<-name]`).
    pub fn line_of(&self, n: &Node) -> NodeLine {
        let mut marks = Vec::new();
        if n.flags & flag::MYSELF != 0 {
            let mut open: Vec<(u16, bool, &Name)> = self
                .migrating
                .iter()
                .map(|(s, n)| (*s, true, n))
                .chain(self.importing.iter().map(|(s, n)| (*s, false, n)))
                .collect();
            open.sort();
            for (slot, out, other) in open {
                let id = name_str(other).to_string();
                marks.push(if out {
                    SlotMark::Migrating { slot, to: id }
                } else {
                    SlotMark::Importing { slot, from: id }
                });
            }
        }
        NodeLine {
            id: name_str(&n.name).to_string(),
            ip: n.ip.clone(),
            port: n.port,
            cport: n.cport,
            hostname: (!n.hostname.is_empty()).then(|| n.hostname.clone()),
            flags: n.flags,
            primary: n.master.as_ref().map(|m| name_str(m).to_string()),
            ping_sent: n.ping_sent as i64,
            pong_recv: n.pong_received as i64,
            config_epoch: self.node_epoch(n),
            connected: n.flags & flag::MYSELF != 0 || n.link,
            slots: Self::ranges(n)
                .into_iter()
                .map(|(a, b)| (a as u16, b as u16))
                .collect(),
            marks,
        }
    }

    /// One line of CLUSTER NODES for `n`, without the final newline.
    pub fn node_line(&self, n: &Node) -> String {
        self.line_of(n).to_line()
    }

    /// The config epoch CLUSTER NODES shows: a replica shows its primary's.
    pub fn node_epoch(&self, n: &Node) -> u64 {
        match n.master.and_then(|m| self.nodes.get(&m)) {
            Some(m) if n.is_replica() => m.config_epoch,
            _ => n.config_epoch,
        }
    }

    /// Every node's line, this one first.
    fn lines(&self) -> Vec<NodeLine> {
        let mut names: Vec<&Name> = self.nodes.keys().collect();
        names.sort_by_key(|n| (**n != self.myself, **n));
        names
            .into_iter()
            .map(|n| self.line_of(&self.nodes[n]))
            .collect()
    }

    /// CLUSTER NODES.
    pub fn nodes_text(&self) -> String {
        nodes_conf::nodes_text(&self.lines())
    }

    /// nodes.conf: the node lines and the epochs.
    pub fn config_text(&self) -> String {
        NodesConf {
            nodes: self.lines(),
            current_epoch: self.current_epoch,
            last_vote_epoch: self.last_vote_epoch,
        }
        .to_text()
    }

    /// The state a nodes.conf describes (Redis's `clusterLoadConfig`): exactly one line
    /// must be `myself`. Failure flags and links start afresh.
    pub fn from_conf(conf: &NodesConf, now: u64) -> Result<State, String> {
        let mine: Vec<&NodeLine> = conf
            .nodes
            .iter()
            .filter(|l| l.flags & flag::MYSELF != 0)
            .collect();
        let [me] = mine[..] else {
            return Err("the file must describe exactly one node as myself".into());
        };
        let node_of = |l: &NodeLine| -> Result<Node, String> {
            let name =
                parse_name(l.id.as_bytes()).ok_or_else(|| format!("bad node name {}", l.id))?;
            let mut n = Node::new(name, l.flags & !(flag::PFAIL | flag::HANDSHAKE), now);
            n.ip = l.ip.clone();
            n.port = l.port;
            n.cport = l.cport;
            n.hostname = l.hostname.clone().unwrap_or_default();
            n.master = match &l.primary {
                Some(p) => {
                    Some(parse_name(p.as_bytes()).ok_or_else(|| format!("bad node name {p}"))?)
                }
                None => None,
            };
            n.config_epoch = l.config_epoch;
            n.pong_received = now;
            Ok(n)
        };
        let mut st = State::new(node_of(me)?);
        for l in &conf.nodes {
            let n = node_of(l)?;
            let name = n.name;
            if name != st.myself {
                st.nodes.insert(name, n);
            }
            for &(a, b) in &l.slots {
                for slot in a..=b {
                    st.assign(slot as usize, name);
                }
            }
            if l.flags & flag::MYSELF != 0 {
                for m in &l.marks {
                    match m {
                        SlotMark::Migrating { slot, to } => {
                            if let Some(to) = parse_name(to.as_bytes()) {
                                st.migrating.insert(*slot, to);
                            }
                        }
                        SlotMark::Importing { slot, from } => {
                            if let Some(from) = parse_name(from.as_bytes()) {
                                st.importing.insert(*slot, from);
                            }
                        }
                    }
                }
            }
        }
        st.current_epoch = conf.current_epoch;
        st.last_vote_epoch = conf.last_vote_epoch;
        st.save_pending = false;
        Ok(st)
    }

    /// The slot ranges of `node`, as (first, last) pairs.
    pub fn ranges(node: &Node) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut slot = 0;
        while slot < SLOTS {
            if node.has_slot(slot) {
                let start = slot;
                while slot + 1 < SLOTS && node.has_slot(slot + 1) {
                    slot += 1;
                }
                out.push((start, slot));
            }
            slot += 1;
        }
        out
    }

    /// Raises this node's config epoch above every other, if it is not already the
    /// highest and unique (CLUSTER BUMPEPOCH, a manual failover's takeover).
    pub fn bump_epoch(&mut self) -> bool {
        let max = self
            .nodes
            .values()
            .map(|n| n.config_epoch)
            .max()
            .unwrap_or(0)
            .max(self.current_epoch);
        let mine = self.me().config_epoch;
        let unique_max = mine == max
            && self
                .nodes
                .values()
                .filter(|n| n.config_epoch == max)
                .count()
                == 1;
        if mine == 0 || !unique_max {
            self.current_epoch = max + 1;
            let e = self.current_epoch;
            self.me_mut().config_epoch = e;
            self.save_pending = true;
            true
        } else {
            false
        }
    }
}

/// The `cluster-*` parameters the routing decision and the bus read, kept current by the
/// server's config refresh so that no command reads the config table.
#[derive(Default)]
pub struct Settings {
    /// `cluster-preferred-endpoint-type`: 0 ip, 1 hostname, 2 unknown-endpoint.
    pub endpoint: AtomicU8,
    pub allow_reads_when_down: AtomicBool,
    pub allow_pubsubshard_when_down: AtomicBool,
    pub require_full_coverage: AtomicBool,
    pub node_timeout: AtomicU64,
}

impl Settings {
    pub fn endpoint(&self) -> Endpoint {
        match self.endpoint.load(Relaxed) {
            1 => Endpoint::Hostname,
            2 => Endpoint::Unknown,
            _ => Endpoint::Ip,
        }
    }
}

/// What commands ask the bus to send.
#[derive(Debug)]
pub enum Outgoing {
    /// PUBLISH (to every node) or SPUBLISH (to the nodes of this node's shard).
    Publish {
        shard: bool,
        channel: Vec<u8>,
        message: Vec<u8>,
    },
}

/// The cluster state the server holds (`Server::cluster`, `None` outside cluster mode).
pub struct Cluster {
    pub state: RwLock<State>,
    pub settings: Settings,
    /// The bus's inbox for [`Outgoing`] messages, once the bus runs.
    pub outbox: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Outgoing>>,
    /// Where nodes.conf is.
    pub config_file: std::path::PathBuf,
}

impl Cluster {
    pub fn new(state: State, config_file: std::path::PathBuf) -> Self {
        Self {
            state: RwLock::new(state),
            settings: Settings::default(),
            outbox: std::sync::OnceLock::new(),
            config_file,
        }
    }

    /// Hands a message to the bus (dropped before the bus runs).
    pub fn send(&self, m: Outgoing) {
        if let Some(tx) = self.outbox.get() {
            let _ = tx.send(m);
        }
    }

    /// Routes a command (see [`State::route`]) with the current settings. Keys of an open
    /// slot are looked up (`exists`) while the state is not locked: the lock order is
    /// shards before the cluster state (a CLUSTER command inside EXEC holds every shard),
    /// so nothing takes a shard while holding the state.
    pub fn route(&self, q: &Query, exists: &mut dyn FnMut(&[u8]) -> bool) -> Result<(), Redirect> {
        let s = &self.settings;
        let decide = |st: &State, exists: &mut dyn FnMut(&[u8]) -> bool| {
            st.route(
                q,
                s.endpoint(),
                s.allow_reads_when_down.load(Relaxed),
                s.allow_pubsubshard_when_down.load(Relaxed),
                exists,
            )
        };
        {
            let st = self.state.read();
            let open = q.keys.first().is_some_and(|k| {
                let slot = key_slot(k);
                st.migrating.contains_key(&slot) || st.importing.contains_key(&slot)
            });
            if !open {
                // `exists` is asked only about an open slot's keys.
                return decide(&st, &mut |_| true);
            }
        }
        let found: Vec<bool> = q.keys.iter().map(|k| exists(k)).collect();
        let mut i = 0;
        let st = self.state.read();
        decide(&st, &mut |_| {
            // In key order (a slot that opened meanwhile counts its keys as present).
            let f = found.get(i).copied().unwrap_or(true);
            i += 1;
            f
        })
    }
}

/// The cluster state for `config`: `None` unless `cluster-enabled yes`. This node starts as
/// a primary with a new random name and no slots; the bus loads nodes.conf over it.
pub fn from_config(config: &crate::config::Config) -> Option<Cluster> {
    if !config.get_bool("cluster-enabled") {
        return None;
    }
    let port = config.get_u64("port") as u16;
    let mut me = Node::new(
        random_name(),
        flag::MYSELF | flag::MASTER,
        crate::clock::now_ms(),
    );
    me.port = port;
    me.pport = config.get_u64("tls-port") as u16;
    me.cport = match config.get_u64("cluster-port") as u16 {
        0 => port.wrapping_add(10000),
        p => p,
    };
    me.ip = config.get("cluster-announce-ip").to_string();
    me.hostname = config.get("cluster-announce-hostname").to_string();
    let file = std::path::Path::new(config.get("dir")).join(config.get("cluster-config-file"));
    Some(Cluster::new(State::new(me), file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_nodes() -> (State, Name, Name) {
        let me = random_name();
        let other = random_name();
        let mut st = State::new(Node::new(me, flag::MYSELF | flag::MASTER, 0));
        let mut o = Node::new(other, flag::MASTER, 0);
        o.ip = "10.0.0.2".into();
        o.port = 7001;
        o.cport = 17001;
        st.nodes.insert(other, o);
        for s in 0..8192 {
            st.assign(s, me);
        }
        for s in 8192..SLOTS {
            st.assign(s, other);
        }
        st.ok = true;
        (st, me, other)
    }

    fn q<'a>(keys: &'a [&'a [u8]]) -> Query<'a> {
        Query {
            keys,
            write: true,
            asking: false,
            readonly: false,
            pubsubshard: false,
            migrate: false,
            tls: false,
        }
    }

    fn route(st: &State, q: &Query, exists: bool) -> Result<(), Redirect> {
        st.route(q, Endpoint::Ip, false, true, &mut |_| exists)
    }

    #[test]
    fn keys_route_to_their_slots_owner() {
        let (st, ..) = two_nodes();
        // "bar" is slot 5061 (mine), "foo" slot 12182 (the other node's).
        assert_eq!(route(&st, &q(&[b"bar"]), true), Ok(()));
        assert_eq!(
            route(&st, &q(&[b"foo"]), true),
            Err(Redirect::Moved(12182, "10.0.0.2:7001".into()))
        );
        assert_eq!(
            route(&st, &q(&[b"bar", b"foo"]), true),
            Err(Redirect::CrossSlot)
        );
        assert!(matches!(
            route(&st, &q(&[b"{foo}a", b"{foo}b"]), true),
            Err(Redirect::Moved(12182, _))
        ));
        assert_eq!(route(&st, &q(&[]), true), Ok(()));
    }

    #[test]
    fn open_slots_ask_try_again_and_accept_asking() {
        let (mut st, _, other) = two_nodes();
        st.migrating.insert(5061, other);
        assert_eq!(route(&st, &q(&[b"bar"]), true), Ok(()));
        assert_eq!(
            route(&st, &q(&[b"bar"]), false),
            Err(Redirect::Ask(5061, "10.0.0.2:7001".into()))
        );
        let mut seen = 0;
        let r = st.route(
            &q(&[b"bar", b"{bar}x"]),
            Endpoint::Ip,
            false,
            true,
            &mut |_| {
                seen += 1;
                seen == 1
            },
        );
        assert_eq!(r, Err(Redirect::TryAgain));
        st.importing.insert(12182, other);
        let mut asking = q(&[b"foo"]);
        assert!(matches!(
            route(&st, &asking, false),
            Err(Redirect::Moved(..))
        ));
        asking.asking = true;
        assert_eq!(route(&st, &asking, false), Ok(()));
    }

    #[test]
    fn a_failed_cluster_refuses_writes_and_maybe_reads() {
        let (mut st, ..) = two_nodes();
        st.ok = false;
        assert_eq!(route(&st, &q(&[b"bar"]), true), Err(Redirect::Down));
        let mut read = q(&[b"bar"]);
        read.write = false;
        assert_eq!(
            st.route(&read, Endpoint::Ip, true, true, &mut |_| true),
            Ok(())
        );
        assert_eq!(
            st.route(&q(&[b"bar"]), Endpoint::Ip, true, true, &mut |_| true),
            Err(Redirect::DownReadOnly)
        );
    }

    #[test]
    fn slots_leaving_this_shard_are_noted_once() {
        let (mut st, me, other) = two_nodes();
        st.take_lost_slots();
        st.assign(5, other);
        st.assign(9000, me);
        st.unassign(6);
        st.unassign(6);
        st.assign(7, me);
        assert_eq!(st.take_lost_slots(), vec![5, 6, 7]);
        assert!(st.take_lost_slots().is_empty());
        // A replica loses the slots its primary loses.
        let n = st.me_mut();
        n.flags = flag::MYSELF | flag::SLAVE;
        n.master = Some(other);
        st.assign(9001, me);
        st.unassign(9002);
        assert_eq!(st.take_lost_slots(), vec![9001, 9002]);
    }

    #[test]
    fn node_lines_look_like_redis() {
        let (mut st, me, other) = two_nodes();
        st.nodes.get_mut(&me).unwrap().port = 7000;
        st.nodes.get_mut(&me).unwrap().cport = 17000;
        st.migrating.insert(3, other);
        let line = st.node_line(&st.nodes[&me]);
        assert_eq!(
            line,
            format!(
                "{} :7000@17000 myself,master - 0 0 0 connected 0-8191 [3->-{}]",
                name_str(&me),
                name_str(&other)
            )
        );
        let line = st.node_line(&st.nodes[&other]);
        assert!(
            line.ends_with(" master - 0 0 0 disconnected 8192-16383"),
            "{line}"
        );
    }

    #[test]
    fn the_state_waits_for_coverage_and_a_majority() {
        // Clock readings as a running system has them (far from 0).
        const T: u64 = 1_000_000;
        let (mut st, _, other) = two_nodes();
        st.ok = false;
        st.update_state(T + 1, true, 15000);
        assert!(!st.ok, "a starting primary waits 2 s");
        st.update_state(T + 3000, true, 15000);
        assert!(st.ok);
        st.nodes.get_mut(&other).unwrap().flags |= flag::FAIL;
        st.update_state(T + 4000, true, 15000);
        assert!(!st.ok);
        st.nodes.get_mut(&other).unwrap().flags &= !flag::FAIL;
        st.update_state(T + 5000, true, 15000);
        assert!(!st.ok, "rejoining waits");
        st.update_state(T + 10000, true, 15000);
        assert!(st.ok);
    }
}
