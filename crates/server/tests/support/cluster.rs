//! A cluster of real nodes for the tests: N servers (kiln-server, redis-server, or a mix, one
//! binary per node) in cluster mode on free ports, joined with `redis-cli --cluster create` or
//! with CLUSTER ADDSLOTSRANGE / MEET / REPLICATE sent directly, and the `redis-cli --cluster`
//! operations (check, reshard, add-node, del-node, rebalance) on top.
//!
//! Every wait polls for a state (CLUSTER INFO, CLUSTER SLOTS, CLUSTER NODES) and fails after
//! a bound; nothing sleeps and hopes. A [`Watchdog`] ends the whole test process, nodes
//! killed first, when a test runs past its bound (a hung cluster must not hang CI).

use super::{kill_nodes, kiln_bin, Node};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary of a mode word: `kiln` is this crate's kiln-server, `redis` is redis-server on
/// the PATH, anything else a path.
pub fn binary(word: &str) -> String {
    match word.trim() {
        "kiln" | "kiln-server" => kiln_bin().to_string(),
        "redis" | "redis-server" => "redis-server".to_string(),
        other => other.to_string(),
    }
}

/// A short name of a binary for messages: `kiln` or `redis`.
pub fn short(bin: &str) -> &'static str {
    if bin.contains("kiln") {
        "kiln"
    } else {
        "redis"
    }
}

/// Ends the test process (SIGKILLing every node first) if it is not dropped within its bound.
pub struct Watchdog {
    _stop: mpsc::Sender<()>,
}

impl Watchdog {
    pub fn new(what: &str, bound: Duration) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        let what = what.to_string();
        std::thread::spawn(move || {
            // Dropping the sender disconnects the channel: the test finished in time.
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(bound) {
                eprintln!("watchdog: {what} ran past {bound:?}; killing the nodes and aborting");
                kill_nodes();
                std::process::abort();
            }
        });
        Watchdog { _stop: tx }
    }
}

/// One line of CLUSTER NODES.
#[derive(Clone, Debug)]
pub struct NodeLine {
    pub id: String,
    pub port: u16,
    pub bus: u16,
    pub flags: Vec<String>,
    pub master: Option<String>,
    pub connected: bool,
    /// Slot ranges (inclusive); importing/migrating entries are left out.
    pub slots: Vec<(u16, u16)>,
}

impl NodeLine {
    pub fn is_master(&self) -> bool {
        self.flags.iter().any(|f| f == "master")
    }
    pub fn failed(&self) -> bool {
        self.flags.iter().any(|f| f == "fail" || f == "fail?")
    }
    pub fn myself(&self) -> bool {
        self.flags.iter().any(|f| f == "myself")
    }
    pub fn slot_count(&self) -> usize {
        self.slots.iter().map(|(a, b)| (*b - *a) as usize + 1).sum()
    }
}

/// Parses CLUSTER NODES output.
pub fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            // ip:port@bus[,hostname]
            let addr = f[1].split(',').next().unwrap();
            let (hostport, bus) = addr.split_once('@').unwrap_or((addr, "0"));
            let port = hostport.rsplit(':').next().unwrap().parse().unwrap_or(0);
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .map(|s| match s.split_once('-') {
                    Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                    None => {
                        let n = s.parse().unwrap();
                        (n, n)
                    }
                })
                .collect();
            NodeLine {
                id: f[0].to_string(),
                port,
                bus: bus.parse().unwrap_or(0),
                flags: f[2].split(',').map(str::to_string).collect(),
                master: (f[3] != "-").then(|| f[3].to_string()),
                connected: f[7] == "connected",
                slots,
            }
        })
        .collect()
}

/// A slot map, as CLUSTER SLOTS gives it: each range with its primary's port and its
/// replicas' ports (sorted: the order of replicas is not part of the map).
pub type SlotMap = Vec<(u16, u16, u16, Vec<u16>)>;

fn parse_slots(v: &redis::Value) -> Option<SlotMap> {
    use redis::Value;
    let Value::Array(ranges) = v else {
        return None;
    };
    let int = |v: &Value| match v {
        Value::Int(n) => Some(*n),
        _ => None,
    };
    let port = |v: &Value| match v {
        Value::Array(parts) => parts.get(1).and_then(int).map(|p| p as u16),
        _ => None,
    };
    let mut map = Vec::new();
    for r in ranges {
        let Value::Array(parts) = r else {
            return None;
        };
        let start = int(parts.first()?)? as u16;
        let end = int(parts.get(1)?)? as u16;
        let master = port(parts.get(2)?)?;
        let mut replicas: Vec<u16> = parts[3..].iter().filter_map(port).collect();
        replicas.sort();
        map.push((start, end, master, replicas));
    }
    map.sort();
    Some(map)
}

/// A member of a [`Cluster`].
pub struct Member {
    pub node: Node,
    pub bin: String,
    pub bus: u16,
    /// Killed or shut down (and not restarted).
    pub down: bool,
    /// Removed from the cluster with del-node.
    pub gone: bool,
}

/// N cluster-mode nodes, stopped (SIGKILL) on drop.
pub struct Cluster {
    pub members: Vec<Member>,
    /// cluster-node-timeout, milliseconds.
    pub timeout_ms: u64,
    _watchdog: Watchdog,
}

/// The default cluster-node-timeout: short enough for quick failovers, long enough that a
/// busy 2-core machine does not see false failures.
pub const NODE_TIMEOUT_MS: u64 = 2000;

/// How long one redis-cli run may take.
pub const CLI_BOUND: Duration = Duration::from_secs(120);

impl Cluster {
    /// Starts one node per binary in `bins` (not yet joined), with a watchdog of `bound`.
    pub fn start(what: &str, bins: &[String], bound: Duration) -> Self {
        Self::start_with(what, bins, bound, NODE_TIMEOUT_MS)
    }

    pub fn start_with(what: &str, bins: &[String], bound: Duration, timeout_ms: u64) -> Self {
        let watchdog = Watchdog::new(what, bound);
        let mut c = Cluster {
            members: Vec::new(),
            timeout_ms,
            _watchdog: watchdog,
        };
        for b in bins {
            c.spawn(b);
        }
        c
    }

    /// Starts one more node of `bin` (not joined) and returns its index.
    pub fn spawn(&mut self, bin: &str) -> usize {
        let port = super::free_port();
        let bus = super::free_port();
        let (bus_s, timeout) = (bus.to_string(), self.timeout_ms.to_string());
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &timeout,
            "--cluster-port",
            &bus_s,
        ];
        let node = Node::start(bin, port, &args);
        self.members.push(Member {
            node,
            bin: bin.to_string(),
            bus,
            down: false,
            gone: false,
        });
        self.members.len() - 1
    }

    pub fn port(&self, i: usize) -> u16 {
        self.members[i].node.port
    }

    pub fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.port(i))
    }

    /// Indexes of the nodes that run and belong to the cluster.
    pub fn live(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| !self.members[i].down && !self.members[i].gone)
            .collect()
    }

    /// A plain connection to node `i`.
    pub fn conn(&self, i: usize) -> redis::Connection {
        self.members[i].node.client()
    }

    /// A raw RESP connection to node `i`.
    pub fn raw(&self, i: usize) -> super::Raw {
        super::Raw::connect(self.port(i))
    }

    /// A cluster client (the `redis` crate's) seeded with every live node.
    pub fn client(&self) -> redis::cluster::ClusterConnection {
        let seeds: Vec<String> = self
            .live()
            .iter()
            .map(|&i| format!("redis://{}/", self.addr(i)))
            .collect();
        redis::cluster::ClusterClientBuilder::new(seeds)
            .retries(16)
            .build()
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Runs a command on node `i`, returning its reply or error text.
    pub fn cmd(&self, i: usize, args: &[&str]) -> Result<redis::Value, String> {
        let mut c = self.conn(i);
        let mut q = redis::cmd(args[0]);
        for a in &args[1..] {
            q.arg(*a);
        }
        q.query(&mut c).map_err(|e| e.to_string())
    }

    fn text(&self, i: usize, args: &[&str]) -> Option<String> {
        let mut c = self.members[i].node.try_client()?;
        let mut q = redis::cmd(args[0]);
        for a in &args[1..] {
            q.arg(*a);
        }
        q.query::<String>(&mut c).ok()
    }

    /// CLUSTER NODES of node `i`, parsed.
    pub fn nodes(&self, i: usize) -> Vec<NodeLine> {
        parse_nodes(&self.text(i, &["CLUSTER", "NODES"]).unwrap_or_default())
    }

    /// Node `i`'s own line of CLUSTER NODES.
    pub fn me(&self, i: usize) -> NodeLine {
        super::poll(&format!("CLUSTER NODES of node {i}"), || {
            self.nodes(i).into_iter().find(NodeLine::myself)
        })
    }

    pub fn id(&self, i: usize) -> String {
        self.me(i).id
    }

    /// The index of the node whose id is `id`.
    pub fn index_of_id(&self, id: &str) -> usize {
        (0..self.members.len())
            .find(|&i| !self.members[i].down && self.id(i) == id)
            .unwrap_or_else(|| panic!("no running node has id {id}"))
    }

    pub fn is_master(&self, i: usize) -> bool {
        self.me(i).is_master()
    }

    /// Live primaries holding slots, in index order.
    pub fn primaries(&self) -> Vec<usize> {
        self.live()
            .into_iter()
            .filter(|&i| {
                let me = self.me(i);
                me.is_master() && !me.slots.is_empty()
            })
            .collect()
    }

    /// Live replicas of node `p` (by node `p`'s id), per their own view.
    pub fn replicas_of(&self, p: usize) -> Vec<usize> {
        let id = self.id(p);
        self.live()
            .into_iter()
            .filter(|&i| self.me(i).master.as_deref() == Some(&id))
            .collect()
    }

    /// A field of CLUSTER INFO of node `i`.
    pub fn info_field(&self, i: usize, field: &str) -> Option<String> {
        let info = self.text(i, &["CLUSTER", "INFO"])?;
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .map(|v| v.trim().to_string())
    }

    /// CLUSTER SLOTS of node `i`, normalised.
    pub fn slot_map(&self, i: usize) -> Option<SlotMap> {
        let mut c = self.members[i].node.try_client()?;
        let v: redis::Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut c).ok()?;
        parse_slots(&v)
    }

    /// Why the live nodes are not (yet) one healthy cluster, or None when they are: every
    /// one says cluster_state:ok, knows every other live node (and none as failing), and
    /// all give the same CLUSTER SLOTS covering the 16384 slots.
    pub fn unhealthy(&self) -> Option<String> {
        let live = self.live();
        let ports: Vec<u16> = live.iter().map(|&i| self.port(i)).collect();
        let mut first: Option<SlotMap> = None;
        for &i in &live {
            match self.info_field(i, "cluster_state") {
                Some(s) if s == "ok" => {}
                other => return Some(format!("node {i}: cluster_state {other:?}")),
            }
            let nodes = self.nodes(i);
            for p in &ports {
                match nodes.iter().find(|n| n.port == *p) {
                    Some(n) if !n.failed() => {}
                    Some(_) => return Some(format!("node {i} sees port {p} failing")),
                    None => return Some(format!("node {i} does not know port {p}")),
                }
            }
            let Some(map) = self.slot_map(i) else {
                return Some(format!("node {i}: no CLUSTER SLOTS"));
            };
            // A live replica is listed under its primary.
            for &j in &live {
                let Some(me) = self.nodes(j).into_iter().find(NodeLine::myself) else {
                    return Some(format!("node {j}: no CLUSTER NODES"));
                };
                let Some(master) = me.master else { continue };
                let Some(mp) = nodes.iter().find(|n| n.id == master).map(|n| n.port) else {
                    return Some(format!("node {i} does not know node {j}'s primary"));
                };
                let (rp, listed) = (
                    self.port(j),
                    map.iter().any(|r| r.2 == mp && r.3.contains(&self.port(j))),
                );
                if !listed && map.iter().any(|r| r.2 == mp) {
                    return Some(format!(
                        "node {i}: CLUSTER SLOTS does not list replica {rp} under {mp}"
                    ));
                }
            }
            let covered: usize = map.iter().map(|r| (r.1 - r.0) as usize + 1).sum();
            if covered != 16384 {
                return Some(format!("node {i}: {covered} slots covered"));
            }
            match &first {
                None => first = Some(map),
                Some(f) if *f != map => {
                    return Some(format!("node {i} has another slot map: {map:?} vs {f:?}"))
                }
                Some(_) => {}
            }
        }
        None
    }

    /// Calls `f` until it returns `Ok`, failing after [`super::PATIENCE`] with the last
    /// reason `f` gave (the [`Cluster::label`] too).
    pub fn wait<T>(&self, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
        let deadline = Instant::now() + super::PATIENCE;
        loop {
            match f() {
                Ok(v) => return v,
                Err(why) => assert!(
                    Instant::now() < deadline,
                    "[{}] timed out after {:?} waiting for {what}: {why}",
                    self.label(),
                    super::PATIENCE
                ),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until [`Cluster::unhealthy`] has nothing to say; returns the agreed slot map.
    pub fn wait_ok(&self) -> SlotMap {
        self.wait("the cluster to be ok", || match self.unhealthy() {
            None => self
                .slot_map(self.live()[0])
                .ok_or_else(|| "no CLUSTER SLOTS".to_string()),
            Some(why) => Err(why),
        })
    }

    /// Joins the nodes with `redis-cli --cluster create ... --cluster-replicas <replicas>`
    /// and waits until the cluster is ok.
    pub fn create_with_cli(&self, replicas: usize) -> SlotMap {
        let mut args = vec!["--cluster".to_string(), "create".to_string()];
        args.extend(self.live().iter().map(|&i| self.addr(i)));
        args.extend([
            "--cluster-replicas".to_string(),
            replicas.to_string(),
            "--cluster-yes".to_string(),
        ]);
        self.cli_ok(&args);
        self.wait_ok()
    }

    /// Joins the nodes directly: the first `primaries` live nodes get equal slot ranges
    /// (CLUSTER ADDSLOTSRANGE), every node MEETs the first, and the others are spread as
    /// replicas over the primaries (CLUSTER REPLICATE, once they know their primary).
    pub fn create_direct(&self, primaries: usize) -> SlotMap {
        let live = self.live();
        assert!(primaries >= 1 && primaries <= live.len());
        for (n, &i) in live[..primaries].iter().enumerate() {
            let start = 16384 * n / primaries;
            let end = 16384 * (n + 1) / primaries - 1;
            self.cmd(
                i,
                &[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &start.to_string(),
                    &end.to_string(),
                ],
            )
            .unwrap();
        }
        // The bus port is given: port + 10000 (the default) may not even be a port.
        let p0 = self.port(live[0]).to_string();
        let b0 = self.members[live[0]].bus.to_string();
        for &i in &live[1..] {
            self.cmd(i, &["CLUSTER", "MEET", "127.0.0.1", &p0, &b0])
                .unwrap();
        }
        // Everyone knows everyone before the replicas look up their primary's id.
        self.wait("every node to know every other", || {
            for &i in &live {
                let nodes = self.nodes(i);
                let linked = nodes.iter().filter(|n| n.connected).count();
                if nodes.len() != live.len() || linked != live.len() {
                    return Err(format!(
                        "node {i} knows {} nodes, {linked} connected, of {}",
                        nodes.len(),
                        live.len()
                    ));
                }
            }
            Ok(())
        });
        for (n, &i) in live[primaries..].iter().enumerate() {
            let primary = self.id(live[n % primaries]);
            super::poll("CLUSTER REPLICATE to succeed", || {
                self.cmd(i, &["CLUSTER", "REPLICATE", &primary]).ok()
            });
        }
        self.wait_ok()
    }

    /// Runs redis-cli with `args`, returning (success, stdout + stderr). A run past
    /// [`CLI_BOUND`] (`--cluster create` waits forever for a cluster that never joins) is
    /// killed and fails.
    pub fn cli(&self, args: &[String]) -> (bool, String) {
        self.cli_with_input(args, None)
    }

    /// [`Cluster::cli`] with `input` on redis-cli's standard input (answers to the
    /// questions `--cluster-yes` does not cover, such as `fix`'s slot coverage).
    pub fn cli_with_input(&self, args: &[String], input: Option<&str>) -> (bool, String) {
        let mut child = Command::new("redis-cli")
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running redis-cli");
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            use std::io::Write as _;
            // A question it never asks leaves the answers unread: not an error.
            let _ = stdin.write_all(text.as_bytes());
        }
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(CLI_BOUND) {
            Ok(Ok(out)) => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                (out.status.success(), text)
            }
            Ok(Err(e)) => (false, format!("redis-cli: {e}")),
            Err(_) => {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                let out = rx.recv().ok().and_then(Result::ok);
                let text = out.map_or_else(String::new, |o| {
                    String::from_utf8_lossy(&o.stdout).into_owned()
                });
                (
                    false,
                    format!("redis-cli ran past {CLI_BOUND:?}, killed:\n{text}"),
                )
            }
        }
    }

    /// [`Cluster::cli`], failing the test unless it succeeds without an `[ERR]` line.
    pub fn cli_ok(&self, args: &[String]) -> String {
        let (ok, text) = self.cli(args);
        assert!(
            ok && !text.contains("[ERR]"),
            "[{}] redis-cli {} failed:\n{text}",
            self.label(),
            args.join(" ")
        );
        text
    }

    /// `redis-cli --cluster check` through the first live node: no errors, every slot
    /// covered, every node agreeing. Polls a while (a check right after a change may see a
    /// node that has not caught up).
    pub fn check(&self) -> String {
        let args = vec![
            "--cluster".to_string(),
            "check".to_string(),
            self.addr(self.live()[0]),
        ];
        let deadline = Instant::now() + super::PATIENCE;
        loop {
            let (ok, text) = self.cli(&args);
            let clean = ok
                && !text.contains("[ERR]")
                && !text.contains("[WARNING]")
                && text.contains("[OK] All 16384 slots covered")
                && text.contains("[OK] All nodes agree about slots configuration");
            if clean {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "redis-cli --cluster check is not clean:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `redis-cli --cluster reshard`: moves `slots` slots from node `from` to node `to`.
    pub fn reshard(&self, from: usize, to: usize, slots: usize) -> String {
        let args: Vec<String> = [
            "--cluster",
            "reshard",
            &self.addr(to),
            "--cluster-from",
            &self.id(from),
            "--cluster-to",
            &self.id(to),
            "--cluster-slots",
            &slots.to_string(),
            "--cluster-yes",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        self.cli_ok(&args)
    }

    /// `redis-cli --cluster rebalance` (with `--cluster-use-empty-masters` if `use_empty`).
    pub fn rebalance(&self, use_empty: bool) -> String {
        self.wait_ok();
        let mut args = vec![
            "--cluster".to_string(),
            "rebalance".to_string(),
            self.addr(self.live()[0]),
        ];
        if use_empty {
            args.push("--cluster-use-empty-masters".to_string());
        }
        self.cli_ok(&args)
    }

    /// Starts a node of `bin` and adds it with `redis-cli --cluster add-node`: as an empty
    /// primary, or as a replica of node `replica_of`. Waits until every live node knows it.
    pub fn add_node(&mut self, bin: &str, replica_of: Option<usize>) -> usize {
        let existing = self.addr(self.live()[0]);
        let master = replica_of.map(|p| self.id(p));
        let i = self.spawn(bin);
        let mut args = vec![
            "--cluster".to_string(),
            "add-node".to_string(),
            self.addr(i),
            existing,
        ];
        if let Some(m) = master {
            args.extend([
                "--cluster-slave".to_string(),
                "--cluster-master-id".to_string(),
                m,
            ]);
        }
        self.cli_ok(&args);
        let port = self.port(i);
        self.wait("every node to know the added node", || {
            match self
                .live()
                .into_iter()
                .find(|&j| !self.nodes(j).iter().any(|n| n.port == port && !n.failed()))
            {
                Some(j) => Err(format!(
                    "node {j} does not know port {port} (or sees it fail)"
                )),
                None => Ok(()),
            }
        });
        self.wait_ok();
        i
    }

    /// `redis-cli --cluster del-node`: the node (which must hold no slots) is forgotten by
    /// the others and shut down.
    pub fn del_node(&mut self, i: usize) -> String {
        let entry = self.live().into_iter().find(|&j| j != i).unwrap();
        let args = vec![
            "--cluster".to_string(),
            "del-node".to_string(),
            self.addr(entry),
            self.id(i),
        ];
        let text = self.cli_ok(&args);
        self.members[i].node.stop();
        self.members[i].gone = true;
        text
    }

    /// The hash slot of `key` (CLUSTER KEYSLOT on a live node).
    pub fn keyslot(&self, key: &str) -> u16 {
        match self.cmd(self.live()[0], &["CLUSTER", "KEYSLOT", key]) {
            Ok(redis::Value::Int(n)) => n as u16,
            other => panic!("CLUSTER KEYSLOT {key}: {other:?}"),
        }
    }

    /// The index of the node serving `slot` per the agreed slot map.
    pub fn node_of_slot(&self, slot: u16) -> usize {
        let map = self.slot_map(self.live()[0]).unwrap();
        let (_, _, port, _) = map
            .iter()
            .find(|r| r.0 <= slot && slot <= r.1)
            .unwrap_or_else(|| panic!("slot {slot} is not served"));
        (0..self.members.len())
            .find(|&i| self.port(i) == *port)
            .unwrap()
    }

    /// The index of the primary serving `key`.
    pub fn node_of_key(&self, key: &str) -> usize {
        self.node_of_slot(self.keyslot(key))
    }

    /// SIGKILL node `i` (its directory, nodes.conf included, stays).
    pub fn kill(&mut self, i: usize) {
        self.members[i].node.stop();
        self.members[i].down = true;
    }

    /// A clean SHUTDOWN of node `i`.
    pub fn shutdown(&mut self, i: usize) {
        self.members[i].node.shutdown();
        self.members[i].down = true;
    }

    /// Starts node `i` again on its port with its directory (its nodes.conf).
    pub fn restart(&mut self, i: usize) {
        self.members[i].node.restart();
        self.members[i].down = false;
    }

    /// Waits until node `i` says it is a primary (ROLE / CLUSTER NODES); returns how long.
    pub fn wait_master(&self, i: usize) -> Duration {
        let t = Instant::now();
        super::poll(&format!("node {i} to become a primary"), || {
            self.nodes(i)
                .iter()
                .find(|n| n.myself())
                .is_some_and(NodeLine::is_master)
                .then_some(())
        });
        t.elapsed()
    }

    /// Waits until node `i` is a replica of node `p` with its link up.
    pub fn wait_replica_of(&self, i: usize, p: usize) {
        let id = self.id(p);
        super::poll(&format!("node {i} to replicate node {p}"), || {
            let me = self.nodes(i).into_iter().find(NodeLine::myself)?;
            let link = self.text(i, &["INFO", "replication"])?;
            (me.master.as_deref() == Some(&id) && link.contains("master_link_status:up"))
                .then_some(())
        });
    }

    /// Waits until every replica of every primary has its replication link up.
    pub fn wait_replicas(&self) {
        for p in self.primaries() {
            for r in self.replicas_of(p) {
                self.wait_replica_of(r, p);
            }
        }
    }

    /// Labels the cluster for messages: `redis,redis,kiln...`.
    pub fn label(&self) -> String {
        self.members
            .iter()
            .map(|m| short(&m.bin))
            .collect::<Vec<_>>()
            .join(",")
    }
}
