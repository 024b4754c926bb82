//! Redis Cluster's commands (CLUSTER and its subcommands, ASKING, READONLY, READWRITE) and
//! the routing check the dispatcher runs before a command with keys in cluster mode
//! ([`route`]). The state they read and change is `crate::cluster`; the bus that carries
//! changes to other nodes reads the same state.

use std::fmt::Write as _;

use smallvec::SmallVec;
use std::sync::atomic::Ordering::Relaxed;

use super::flags::*;
use super::{Cmd, CommandSpec, Ctx, Keys};
use crate::cluster::{self as cl, flag, key_slot, name_str, Node, Query, Redirect, State, SLOTS};
use crate::error::{CmdResult, CommandError, CLUSTER_DISABLED, E, NOT_INTEGER};
use crate::storage::{keyspace::shard_of, shard_id};

const A: u32 = ADMIN | STALE | NO_ASYNC_LOADING;

macro_rules! sub {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $handler:ident, $since:literal, $summary:literal) => {
        CommandSpec::new($name, $arity, $flags, $keys, $handler)
            .group("cluster")
            .since($since)
            .summary($summary)
            .complexity("O(1)")
    };
}

const CLUSTER_SUBCOMMANDS: &[CommandSpec] = &[
    sub!(
        "addslots",
        -3,
        A,
        Keys::None,
        addslots,
        "3.0.0",
        "Assign new hash slots to receiving node"
    )
    .syntax("slot [slot ...]"),
    sub!(
        "addslotsrange",
        -4,
        A,
        Keys::None,
        addslotsrange,
        "7.0.0",
        "Assign new hash slots to receiving node"
    )
    .syntax("start-slot end-slot [start-slot end-slot ...]"),
    sub!(
        "bumpepoch",
        2,
        A,
        Keys::None,
        bumpepoch,
        "3.0.0",
        "Advance the cluster config epoch"
    ),
    sub!(
        "count-failure-reports",
        3,
        ADMIN | STALE,
        Keys::None,
        count_failure_reports,
        "3.0.0",
        "Return the number of failure reports active for a given node"
    )
    .syntax("node-id"),
    sub!(
        "countkeysinslot",
        3,
        STALE,
        Keys::WalkDb,
        countkeysinslot,
        "3.0.0",
        "Return the number of local keys in the specified hash slot"
    )
    .syntax("slot"),
    sub!(
        "delslots",
        -3,
        A,
        Keys::None,
        delslots,
        "3.0.0",
        "Set hash slots as unbound in receiving node"
    )
    .syntax("slot [slot ...]"),
    sub!(
        "delslotsrange",
        -4,
        A,
        Keys::None,
        delslotsrange,
        "7.0.0",
        "Set hash slots as unbound in receiving node"
    )
    .syntax("start-slot end-slot [start-slot end-slot ...]"),
    sub!(
        "failover",
        -2,
        A,
        Keys::None,
        failover,
        "3.0.0",
        "Forces a replica to perform a manual failover of its master."
    )
    .syntax("[FORCE | TAKEOVER]"),
    sub!(
        "flushslots",
        2,
        A,
        Keys::WalkDb,
        flushslots,
        "3.0.0",
        "Delete a node's own slots information"
    ),
    sub!(
        "forget",
        3,
        A,
        Keys::None,
        forget,
        "3.0.0",
        "Remove a node from the nodes table"
    )
    .syntax("node-id"),
    sub!(
        "getkeysinslot",
        4,
        STALE,
        Keys::WalkDb,
        getkeysinslot,
        "3.0.0",
        "Return local key names in the specified hash slot"
    )
    .syntax("slot count"),
    sub!(
        "help",
        2,
        LOADING | STALE,
        Keys::None,
        help,
        "5.0.0",
        "Show helpful text about the different subcommands"
    ),
    sub!(
        "info",
        2,
        STALE,
        Keys::None,
        info,
        "3.0.0",
        "Provides info about Redis Cluster node state"
    ),
    sub!(
        "keyslot",
        3,
        STALE,
        Keys::None,
        keyslot,
        "3.0.0",
        "Returns the hash slot of the specified key"
    )
    .syntax("key"),
    sub!(
        "links",
        2,
        STALE,
        Keys::None,
        links,
        "7.0.0",
        "Returns a list of all TCP links to and from peer nodes in cluster"
    ),
    sub!(
        "meet",
        -4,
        A,
        Keys::None,
        meet,
        "3.0.0",
        "Force a node cluster to handshake with another node"
    )
    .syntax("ip port [cluster-bus-port]"),
    sub!(
        "myid",
        2,
        STALE,
        Keys::None,
        myid,
        "3.0.0",
        "Return the node id"
    ),
    sub!(
        "nodes",
        2,
        STALE,
        Keys::None,
        nodes,
        "3.0.0",
        "Get Cluster config for the node"
    ),
    sub!(
        "replicas",
        3,
        ADMIN | STALE,
        Keys::None,
        replicas,
        "5.0.0",
        "List replica nodes of the specified master node"
    )
    .syntax("node-id"),
    sub!(
        "replicate",
        3,
        A,
        Keys::WalkAll,
        replicate,
        "3.0.0",
        "Reconfigure a node as a replica of the specified master node"
    )
    .syntax("node-id"),
    sub!(
        "reset",
        -2,
        ADMIN | NOSCRIPT | STALE,
        Keys::WalkAll,
        reset,
        "3.0.0",
        "Reset a Redis Cluster node"
    )
    .syntax("[HARD | SOFT]"),
    sub!(
        "saveconfig",
        2,
        A,
        Keys::None,
        saveconfig,
        "3.0.0",
        "Forces the node to save cluster state on disk"
    ),
    sub!(
        "set-config-epoch",
        3,
        A,
        Keys::None,
        set_config_epoch,
        "3.0.0",
        "Set the configuration epoch in a new node"
    )
    .syntax("config-epoch"),
    sub!(
        "setslot",
        -4,
        A,
        Keys::WalkDb,
        setslot,
        "3.0.0",
        "Bind a hash slot to a specific node"
    )
    .syntax("slot IMPORTING node-id | MIGRATING node-id | NODE node-id | STABLE"),
    sub!(
        "shards",
        2,
        STALE,
        Keys::None,
        shards,
        "7.0.0",
        "Get array of cluster slots to node mappings"
    ),
    sub!(
        "slaves",
        3,
        ADMIN | STALE,
        Keys::None,
        replicas,
        "3.0.0",
        "List replica nodes of the specified master node"
    )
    .syntax("node-id"),
    sub!(
        "slots",
        2,
        STALE,
        Keys::None,
        slots,
        "3.0.0",
        "Get array of Cluster slot to node mappings"
    ),
];

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("cluster", -2, 0, Keys::None, container)
        .group("cluster")
        .since("3.0.0")
        .summary("A container for cluster commands")
        .complexity("Depends on subcommand.")
        .subcommands(CLUSTER_SUBCOMMANDS),
    CommandSpec::new("asking", 1, FAST, Keys::None, asking)
        .group("cluster")
        .since("3.0.0")
        .summary("Sent by cluster clients after an -ASK redirect")
        .complexity("O(1)"),
    CommandSpec::new("readonly", 1, LOADING | STALE | FAST, Keys::None, readonly)
        .group("cluster")
        .since("3.0.0")
        .summary("Enables read queries for a connection to a cluster replica node")
        .complexity("O(1)"),
    CommandSpec::new(
        "readwrite",
        1,
        LOADING | STALE | FAST,
        Keys::None,
        readwrite,
    )
    .group("cluster")
    .since("3.0.0")
    .summary("Disables read queries for a connection to a cluster replica node")
    .complexity("O(1)"),
];

fn container(_cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    Err(CommandError::unknown_subcommand(
        args[0],
        args.get(1).copied().unwrap_or_default(),
    ))
}

/// The cluster state, or Redis's error outside cluster mode.
fn cluster<'a>(cx: &Ctx<'a>) -> Result<&'a cl::Cluster, CommandError> {
    cx.server.cluster.as_ref().ok_or(E(CLUSTER_DISABLED))
}

fn now() -> u64 {
    crate::clock::now_ms()
}

/// Whether the dispatcher must route this command in cluster mode: it names keys (or
/// shard channels), or it is EXEC (whose queued commands are routed together).
pub(super) fn routed(cmd: &Cmd) -> bool {
    !matches!(
        cmd.spec.keys,
        Keys::None | Keys::AllDb | Keys::AllDbs | Keys::WalkDb | Keys::WalkAll
    ) || cmd.spec.name == "exec"
}

/// The routing check of a client's command in cluster mode (Redis's `getNodeByQuery`):
/// `Err` with the redirection or error to send instead of running it. EXEC routes every
/// queued command together.
pub(super) fn route(cx: &mut Ctx, cmd: &Cmd, args: &[&[u8]]) -> Result<(), Redirect> {
    let Some(cluster) = cx.server.cluster.as_ref() else {
        return Ok(());
    };
    let mut write = cmd.spec.flags & WRITE != 0;
    if cmd.spec.name == "exec" {
        let Some(m) = cx.client.multi.as_ref() else {
            return Ok(());
        };
        let queued = m.queue.clone();
        let mut keys: Vec<&[u8]> = Vec::new();
        for argv in &queued {
            let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
            let Ok(c) = cx.server.commands.resolve(&argv) else {
                continue;
            };
            write |= c.spec.flags & WRITE != 0;
            push_keys(c, &argv, &mut |k| keys.push(k));
        }
        return decide(cx, cluster, &keys, write, false, false, false);
    }
    let migrate = cmd.spec.name == "migrate";
    let mut keys: SmallVec<[&[u8]; 4]> = SmallVec::new();
    push_keys(cmd, args, &mut |k| keys.push(k));
    let shard = matches!(cmd.spec.name, "spublish" | "ssubscribe" | "sunsubscribe");
    // RESTORE-ASKING carries ASKING itself.
    let asking = cmd.spec.flags & ASKING != 0;
    decide(cx, cluster, &keys, write, shard, migrate, asking)
}

/// The cluster check of a command a script calls (Redis's `scriptCall` in cluster mode):
/// `Ok` with the slot of its keys (if it names any), or the error the script raises.
pub(super) fn route_script_call(
    cx: &mut Ctx,
    cmd: &Cmd,
    args: &[&[u8]],
) -> Result<Option<u16>, &'static str> {
    let Some(cluster) = cx.server.cluster.as_ref() else {
        return Ok(None);
    };
    let mut keys: Vec<&[u8]> = Vec::new();
    push_keys(cmd, args, &mut |k| keys.push(k));
    let shard = matches!(cmd.spec.name, "spublish" | "ssubscribe" | "sunsubscribe");
    let asking = cmd.spec.flags & ASKING != 0;
    match decide(cx, cluster, &keys, cmd.spec.flags & WRITE != 0, shard, false, asking) {
        Ok(()) => Ok(keys.first().map(|k| key_slot(k))),
        Err(Redirect::DownReadOnly) => Err(
            "ERR Script attempted to execute a write command while the cluster is down and readonly",
        ),
        Err(Redirect::Down) => {
            Err("ERR Script attempted to execute a command while the cluster is down")
        }
        Err(_) => Err("ERR Script attempted to access a non local key in a cluster node"),
    }
}

fn decide(
    cx: &mut Ctx,
    cluster: &cl::Cluster,
    keys: &[&[u8]],
    write: bool,
    pubsubshard: bool,
    migrate: bool,
    asking: bool,
) -> Result<(), Redirect> {
    let q = Query {
        keys,
        write,
        asking: asking || cx.client.asking,
        readonly: cx.client.cluster_readonly,
        pubsubshard,
        migrate,
        tls: cx.client.handle.tls,
    };
    let server = cx.server;
    let now = cx.now;
    let locks = &mut cx.locks;
    cluster.route(&q, &mut |key| {
        // Asked only for open slots. As Redis's lookup without side effects: a key past its
        // deadline is missing, though not deleted here.
        let h = server.keyspace.hash(key);
        locks
            .with(shard_id(0, shard_of(h)), |sh| {
                sh.peek(h, key).is_some_and(|e| !sh.is_expired(e, now))
            })
            .unwrap_or(false)
    })
}

/// Calls `f` with each key (or shard channel) `args` names, as the cluster routes them.
fn push_keys<'a>(cmd: &Cmd, args: &[&'a [u8]], f: &mut dyn FnMut(&'a [u8])) {
    match cmd.spec.keys {
        Keys::Range(..) => {
            for i in cmd.spec.key_positions(args.len()) {
                f(args[i]);
            }
        }
        Keys::None | Keys::AllDb | Keys::AllDbs | Keys::WalkDb | Keys::WalkAll => {}
        _ => {
            if let Ok(found) = cmd.keys_and_flags(args) {
                for (i, _) in found {
                    if let Some(k) = args.get(i) {
                        f(k);
                    }
                }
            }
        }
    }
}

fn parse_slot(arg: &[u8]) -> Result<usize, CommandError> {
    match crate::util::parse_i64(arg) {
        Some(n) if (0..SLOTS as i64).contains(&n) => Ok(n as usize),
        _ => Err(CommandError::err("Invalid or out of range slot")),
    }
}

fn unknown_node(arg: &[u8]) -> CommandError {
    CommandError::Owned(format!("ERR Unknown node {}", String::from_utf8_lossy(arg)))
}

/// Marks the state changed: recomputes `cluster_state` and asks for nodes.conf to be
/// written (the bus saves it before its next step; SAVECONFIG at once).
fn changed(cluster: &cl::Cluster, st: &mut State) {
    let s = &cluster.settings;
    st.update_state(
        now(),
        s.require_full_coverage.load(Relaxed),
        s.node_timeout.load(Relaxed),
    );
    st.save_pending = true;
}

/// [`changed`], then the state unlocked, then the end of the subscriptions to the shard
/// channels of the slots that left this node's shard: what every CLUSTER command that
/// changes the state ends with.
fn commit(
    server: &crate::server::Server,
    cluster: &cl::Cluster,
    mut st: parking_lot::RwLockWriteGuard<'_, State>,
) {
    changed(cluster, &mut st);
    let lost = st.take_lost_slots();
    drop(st);
    end_channels_of(server, &lost);
}

/// Ends the subscriptions to the shard channels of `slots` (sorted: what
/// `State::take_lost_slots` gives), with the cluster state unlocked.
pub fn end_channels_of(server: &crate::server::Server, slots: &[u16]) {
    if !slots.is_empty() {
        server
            .pubsub
            .end_shard_channels(&|ch| slots.binary_search(&cl::key_slot(ch)).is_ok());
    }
}

fn addslots(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let slots = args[2..]
        .iter()
        .map(|a| parse_slot(a))
        .collect::<Result<Vec<_>, _>>()?;
    add_or_del(cx, c, &slots, true)
}

fn delslots(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let slots = args[2..]
        .iter()
        .map(|a| parse_slot(a))
        .collect::<Result<Vec<_>, _>>()?;
    add_or_del(cx, c, &slots, false)
}

fn ranges(cx: &Ctx, args: &[&[u8]]) -> Result<Vec<usize>, CommandError> {
    if args.len() % 2 == 1 {
        let name = String::from_utf8_lossy(args[1]).to_lowercase();
        return Err(CommandError::arity(&format!("cluster|{name}")));
    }
    let _ = cx;
    let mut slots = Vec::new();
    for pair in args[2..].chunks(2) {
        let (a, b) = (parse_slot(pair[0])?, parse_slot(pair[1])?);
        if a > b {
            return Err(CommandError::Owned(format!(
                "ERR start slot number {a} is greater than end slot number {b}"
            )));
        }
        slots.extend(a..=b);
    }
    Ok(slots)
}

fn addslotsrange(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let slots = ranges(cx, args)?;
    add_or_del(cx, c, &slots, true)
}

fn delslotsrange(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let slots = ranges(cx, args)?;
    add_or_del(cx, c, &slots, false)
}

fn add_or_del(cx: &mut Ctx, c: &cl::Cluster, slots: &[usize], add: bool) -> CmdResult {
    let mut st = c.state.write();
    let mut seen = vec![false; SLOTS];
    for &s in slots {
        if add && st.owners[s].is_some() {
            return Err(CommandError::Owned(format!("ERR Slot {s} is already busy")));
        }
        if !add && st.owners[s].is_none() {
            return Err(CommandError::Owned(format!(
                "ERR Slot {s} is already unassigned"
            )));
        }
        if std::mem::replace(&mut seen[s], true) {
            return Err(CommandError::Owned(format!(
                "ERR Slot {s} specified multiple times"
            )));
        }
    }
    let me = st.myself;
    for &s in slots {
        if add {
            // Owning it now, this node no longer imports it.
            st.importing.remove(&(s as u16));
            st.assign(s, me);
        } else {
            st.unassign(s);
        }
    }
    commit(cx.server, c, st);
    cx.out.ok();
    Ok(())
}

fn bumpepoch(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let mut st = c.state.write();
    let bumped = st.bump_epoch();
    let epoch = st.me().config_epoch;
    commit(cx.server, c, st);
    cx.out.simple(&format!(
        "{} {epoch}",
        if bumped { "BUMPED" } else { "STILL" }
    ));
    Ok(())
}

fn count_failure_reports(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let st = c.state.read();
    let n = st.node(args[2]).ok_or_else(|| unknown_node(args[2]))?;
    cx.out.int(n.fail_reports.len() as i64);
    Ok(())
}

fn countkeysinslot(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    cluster(cx)?;
    let slot = match crate::util::parse_i64(args[2]) {
        Some(n) if (0..SLOTS as i64).contains(&n) => n as u16,
        Some(_) => return Err(CommandError::err("Invalid slot")),
        None => return Err(E(NOT_INTEGER)),
    };
    let n = cx.visit(0, slot as usize >> 6, |sh| sh.count_in_slot(slot))?;
    cx.out.int(n as i64);
    Ok(())
}

fn getkeysinslot(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    cluster(cx)?;
    let (Some(slot), Some(max)) = (
        crate::util::parse_i64(args[2]),
        crate::util::parse_i64(args[3]),
    ) else {
        return Err(E(NOT_INTEGER));
    };
    if !(0..SLOTS as i64).contains(&slot) || max < 0 {
        return Err(CommandError::err("Invalid slot or number of keys"));
    }
    let slot = slot as u16;
    let keys = cx.visit(0, slot as usize >> 6, |sh| {
        sh.keys_in_slot(slot, usize::try_from(max).unwrap_or(usize::MAX))
    })?;
    cx.out.array(keys.len());
    for k in &keys {
        cx.out.bulk(k);
    }
    Ok(())
}

fn keyslot(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    cluster(cx)?;
    cx.out.int(i64::from(key_slot(args[2])));
    Ok(())
}

fn myid(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let name = c.state.read().myself;
    cx.out.bulk(&name);
    Ok(())
}

fn nodes(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let text = c.state.read().nodes_text();
    cx.out.verbatim(text.as_bytes());
    Ok(())
}

fn info(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let text = info_text(&c.state.read());
    cx.out.verbatim(text.as_bytes());
    Ok(())
}

/// CLUSTER INFO's text.
pub fn info_text(st: &State) -> String {
    let (mut assigned, mut ok, mut pfail, mut fail) = (0, 0, 0, 0);
    for owner in st.owners.iter().flatten() {
        assigned += 1;
        match st.nodes.get(owner) {
            Some(n) if n.failed() => fail += 1,
            Some(n) if n.timed_out() => pfail += 1,
            _ => ok += 1,
        }
    }
    let mut s = String::new();
    let _ = write!(
        s,
        "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{ok}\r\n\
         cluster_slots_pfail:{pfail}\r\ncluster_slots_fail:{fail}\r\ncluster_known_nodes:{}\r\n\
         cluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n",
        if st.ok { "ok" } else { "fail" },
        st.nodes.len(),
        st.size,
        st.current_epoch,
        st.node_epoch(st.me()),
    );
    let (mut sent, mut received) = (0, 0);
    for (i, name) in cl::MESSAGE_NAMES.iter().enumerate() {
        if st.stats.sent[i] > 0 {
            let _ = write!(
                s,
                "cluster_stats_messages_{name}_sent:{}\r\n",
                st.stats.sent[i]
            );
        }
        sent += st.stats.sent[i];
    }
    let _ = write!(s, "cluster_stats_messages_sent:{sent}\r\n");
    for (i, name) in cl::MESSAGE_NAMES.iter().enumerate() {
        if st.stats.received[i] > 0 {
            let _ = write!(
                s,
                "cluster_stats_messages_{name}_received:{}\r\n",
                st.stats.received[i]
            );
        }
        received += st.stats.received[i];
    }
    let _ = write!(
        s,
        "cluster_stats_messages_received:{received}\r\ntotal_cluster_links_buffer_limit_exceeded:{}\r\n",
        st.links_buffer_exceeded
    );
    s
}

/// A node as CLUSTER SLOTS lists it: endpoint, port, id, and the other endpoint kinds.
fn slot_node(cx: &mut Ctx, st: &State, n: &Node, kind: cl::Endpoint) {
    let tls = cx.client.handle.tls;
    let port = if tls && n.pport != 0 { n.pport } else { n.port };
    cx.out.array(4);
    cx.out.bulk(n.endpoint(kind).as_bytes());
    cx.out.int(i64::from(port));
    cx.out.bulk(&n.name);
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if kind != cl::Endpoint::Ip && !n.ip.is_empty() {
        extra.push(("ip", &n.ip));
    }
    if kind != cl::Endpoint::Hostname && !n.hostname.is_empty() {
        extra.push(("hostname", &n.hostname));
    }
    cx.out.map(extra.len());
    for (k, v) in extra {
        cx.out.bulk(k.as_bytes());
        cx.out.bulk(v.as_bytes());
    }
    let _ = st;
}

fn slots(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let kind = c.settings.endpoint();
    let st = c.state.read();
    // Ranges of consecutive slots with one owner, in slot order.
    let mut ranges: Vec<(usize, usize, cl::Name)> = Vec::new();
    for (slot, owner) in st.owners.iter().enumerate() {
        let Some(owner) = owner else { continue };
        match ranges.last_mut() {
            Some((_, end, o)) if *end + 1 == slot && o == owner => *end = slot,
            _ => ranges.push((slot, slot, *owner)),
        }
    }
    cx.out.array(ranges.len());
    for (start, end, owner) in ranges {
        let primary = &st.nodes[&owner];
        let replicas: Vec<&Node> = st
            .replicas_of(&owner)
            .into_iter()
            .filter(|r| !r.failed())
            .collect();
        cx.out.array(3 + replicas.len());
        cx.out.int(start as i64);
        cx.out.int(end as i64);
        slot_node(cx, &st, primary, kind);
        for r in replicas {
            slot_node(cx, &st, r, kind);
        }
    }
    Ok(())
}

fn shards(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let kind = c.settings.endpoint();
    let tls = cx.client.handle.tls;
    let my_offset = cx.server.feed.repl_offset();
    let st = c.state.read();
    let mut primaries: Vec<&Node> = st.nodes.values().filter(|n| n.is_master()).collect();
    primaries.sort_by_key(|n| n.name);
    cx.out.array(primaries.len());
    for p in primaries {
        cx.out.map(2);
        cx.out.bulk(b"slots");
        let ranges = State::ranges(p);
        cx.out.array(ranges.len() * 2);
        for (a, b) in ranges {
            cx.out.int(a as i64);
            cx.out.int(b as i64);
        }
        cx.out.bulk(b"nodes");
        let mut members = vec![p];
        members.extend(st.replicas_of(&p.name));
        cx.out.array(members.len());
        for n in members {
            let mut fields: Vec<(&str, Field)> =
                vec![("id", Field::Bulk(name_str(&n.name).into()))];
            if tls {
                fields.push(("port", Field::Int(i64::from(n.port))));
                if n.pport != 0 {
                    fields.push(("tls-port", Field::Int(i64::from(n.pport))));
                }
            } else {
                fields.push(("port", Field::Int(i64::from(n.port))));
            }
            fields.push(("ip", Field::Bulk(n.ip.clone())));
            fields.push(("endpoint", Field::Bulk(n.endpoint(kind).into())));
            if !n.hostname.is_empty() {
                fields.push(("hostname", Field::Bulk(n.hostname.clone())));
            }
            fields.push((
                "role",
                Field::Bulk(if n.is_master() { "master" } else { "replica" }.into()),
            ));
            let offset = if n.flags & flag::MYSELF != 0 {
                my_offset
            } else {
                n.repl_offset
            };
            fields.push(("replication-offset", Field::Int(offset as i64)));
            let health = if n.failed() {
                "fail"
            } else if n.is_replica() && offset == 0 {
                "loading"
            } else {
                "online"
            };
            fields.push(("health", Field::Bulk(health.into())));
            cx.out.map(fields.len());
            for (k, v) in fields {
                cx.out.bulk(k.as_bytes());
                match v {
                    Field::Bulk(s) => cx.out.bulk(s.as_bytes()),
                    Field::Int(i) => cx.out.int(i),
                }
            }
        }
    }
    Ok(())
}

enum Field {
    Bulk(String),
    Int(i64),
}

/// CLUSTER LINKS: the bus's links, as its cron last listed them, with their send buffers
/// as they are now (`events` is `rw` while the link has bytes to write, as Redis's write
/// handler is installed only then).
fn links(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let links = c.state.read().links.clone();
    cx.out.array(links.len());
    for l in links {
        let used = l.buffer.used();
        cx.out.map(6);
        cx.out.bulk(b"direction");
        cx.out.bulk(if l.inbound { b"from" } else { b"to" });
        cx.out.bulk(b"node");
        cx.out.bulk(&l.node);
        cx.out.bulk(b"create-time");
        cx.out.int(l.ctime as i64);
        cx.out.bulk(b"events");
        cx.out.bulk(if used > 0 { b"rw" } else { b"r" });
        cx.out.bulk(b"send-buffer-allocated");
        cx.out.int(l.buffer.allocated() as i64);
        cx.out.bulk(b"send-buffer-used");
        cx.out.int(used as i64);
    }
    Ok(())
}

fn replicas(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let st = c.state.read();
    let n = st.node(args[2]).ok_or_else(|| unknown_node(args[2]))?;
    if n.is_replica() {
        return Err(CommandError::err("The specified node is not a master"));
    }
    let lines: Vec<String> = st
        .replicas_of(&n.name)
        .into_iter()
        .map(|r| st.node_line(r))
        .collect();
    cx.out.array(lines.len());
    for l in lines {
        cx.out.bulk(l.as_bytes());
    }
    Ok(())
}

fn meet(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    if args.len() > 5 {
        return Err(CommandError::arity("cluster|meet"));
    }
    let port_arg = String::from_utf8_lossy(args[3]);
    let port = crate::util::parse_i64(args[3]).ok_or_else(|| {
        CommandError::Owned(format!("ERR Invalid TCP base port specified: {port_arg}"))
    })?;
    let cport = match args.get(4) {
        Some(a) => crate::util::parse_i64(a).ok_or_else(|| {
            CommandError::Owned(format!(
                "ERR Invalid TCP bus port specified: {}",
                String::from_utf8_lossy(a)
            ))
        })?,
        None => port + 10000,
    };
    let ip = String::from_utf8_lossy(args[2]).into_owned();
    let bad = || {
        CommandError::Owned(format!(
            "ERR Invalid node address specified: {ip}:{port_arg}"
        ))
    };
    let addr: std::net::IpAddr = ip.parse().map_err(|_| bad())?;
    if !(1..=65535).contains(&port) || !(1..=65535).contains(&cport) {
        return Err(bad());
    }
    let mut st = c.state.write();
    start_handshake(&mut st, addr.to_string(), port as u16, cport as u16);
    cx.out.ok();
    Ok(())
}

/// Adds a node in handshake with a random name, to MEET at `ip:port@cport`, unless a
/// handshake with that address is already going on (Redis's `clusterStartHandshake`).
pub fn start_handshake(st: &mut State, ip: String, port: u16, cport: u16) {
    let busy = st
        .nodes
        .values()
        .any(|n| n.in_handshake() && n.ip == ip && n.port == port && n.cport == cport);
    if busy {
        return;
    }
    let mut n = Node::new(cl::random_name(), flag::HANDSHAKE | flag::MEET, now());
    n.ip = ip;
    n.port = port;
    n.cport = cport;
    st.nodes.insert(n.name, n);
}

fn forget(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let mut st = c.state.write();
    let name = st
        .node(args[2])
        .map(|n| n.name)
        .ok_or_else(|| unknown_node(args[2]))?;
    if name == st.myself {
        return Err(CommandError::err(
            "I tried hard but I can't forget myself...",
        ));
    }
    if st.me().is_replica() && st.me().master == Some(name) {
        return Err(CommandError::err("Can't forget my master!"));
    }
    // Gossip may not re-add it for a minute.
    st.blacklist.insert(name, now() + 60_000);
    st.remove_node(&name);
    commit(cx.server, c, st);
    cx.out.ok();
    Ok(())
}

fn setslot(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    if c.state.read().me().is_replica() {
        return Err(CommandError::err("Please use SETSLOT only with masters."));
    }
    let slot = parse_slot(args[2])?;
    let action = args[3].to_ascii_lowercase();
    let bad = || {
        CommandError::err("Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP")
    };
    let target = |st: &State| -> Result<cl::Name, CommandError> {
        let n = st.node(args[4]).ok_or_else(|| {
            CommandError::Owned(format!(
                "ERR I don't know about node {}",
                String::from_utf8_lossy(args[4])
            ))
        })?;
        if n.is_replica() {
            return Err(CommandError::err("Target node is not a master"));
        }
        Ok(n.name)
    };
    let keys_here = cx.visit(0, slot >> 6, |sh| sh.count_in_slot(slot as u16))?;
    let mut st = c.state.write();
    let me = st.myself;
    match (&action[..], args.len()) {
        (b"migrating", 5) => {
            if st.owners[slot] != Some(me) {
                return Err(CommandError::Owned(format!(
                    "ERR I'm not the owner of hash slot {slot}"
                )));
            }
            let to = target(&st)?;
            st.migrating.insert(slot as u16, to);
        }
        (b"importing", 5) => {
            if st.owners[slot] == Some(me) {
                return Err(CommandError::Owned(format!(
                    "ERR I'm already the owner of hash slot {slot}"
                )));
            }
            let from = target(&st)?;
            st.importing.insert(slot as u16, from);
        }
        (b"stable", 4) => {
            st.migrating.remove(&(slot as u16));
            st.importing.remove(&(slot as u16));
        }
        (b"node", 5) => {
            let n = st
                .node(args[4])
                .map(|n| (n.name, n.is_replica()))
                .ok_or_else(|| {
                    CommandError::Owned(format!(
                        "ERR Unknown node {}",
                        String::from_utf8_lossy(args[4])
                    ))
                })?;
            if n.1 {
                return Err(CommandError::err("Target node is not a master"));
            }
            let to = n.0;
            if st.owners[slot] == Some(me) && to != me && keys_here != 0 {
                return Err(CommandError::Owned(format!(
                    "ERR Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."
                )));
            }
            // The last key gone, the slot stops migrating.
            if keys_here == 0 {
                st.migrating.remove(&(slot as u16));
            }
            // Taking the slot in: the import is over, and this node's epoch must win over
            // the old owner's (without the cluster's agreement, as Redis does).
            if to == me && st.importing.remove(&(slot as u16)).is_some() {
                st.bump_epoch();
            }
            st.assign(slot, to);
        }
        _ => return Err(bad()),
    }
    commit(cx.server, c, st);
    cx.out.ok();
    Ok(())
}

fn set_config_epoch(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let epoch = crate::util::parse_i64(args[2]).ok_or(E(NOT_INTEGER))?;
    if epoch < 0 {
        return Err(CommandError::Owned(format!(
            "ERR Invalid config epoch specified: {epoch}"
        )));
    }
    let mut st = c.state.write();
    if st.nodes.len() > 1 {
        return Err(CommandError::err(
            "The user can assign a config epoch only when the node does not know any other node.",
        ));
    }
    if st.me().config_epoch != 0 {
        return Err(CommandError::err("Node config epoch is already non-zero"));
    }
    st.me_mut().config_epoch = epoch as u64;
    if st.current_epoch < epoch as u64 {
        st.current_epoch = epoch as u64;
    }
    commit(cx.server, c, st);
    cx.out.ok();
    Ok(())
}

fn saveconfig(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    save(c).map_err(|e| {
        CommandError::Owned(format!("ERR error saving the cluster node config: {e}"))
    })?;
    cx.out.ok();
    Ok(())
}

/// Writes nodes.conf (a temporary file, fsynced, renamed over the old one).
pub fn save(c: &cl::Cluster) -> std::io::Result<()> {
    let text = {
        let mut st = c.state.write();
        st.save_pending = false;
        st.config_text()
    };
    let tmp = c.config_file.with_extension("tmp-kiln");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &c.config_file)
}

fn flushslots(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    if db_keys(cx)? != 0 {
        return Err(CommandError::err(
            "DB must be empty to perform CLUSTER FLUSHSLOTS.",
        ));
    }
    let mut st = c.state.write();
    let me = st.myself;
    for s in 0..SLOTS {
        if st.owners[s] == Some(me) {
            st.unassign(s);
        }
    }
    commit(cx.server, c, st);
    cx.out.ok();
    Ok(())
}

/// Keys in database 0.
fn db_keys(cx: &mut Ctx) -> Result<usize, CommandError> {
    let mut n = 0;
    for i in 0..crate::storage::SHARDS {
        n += cx.visit(0, i, |sh| sh.len())?;
    }
    Ok(n)
}

fn replicate(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let (name, ip, port) = {
        let st = c.state.read();
        let n = st.node(args[2]).ok_or_else(|| unknown_node(args[2]))?;
        if n.name == st.myself {
            return Err(CommandError::err("Can't replicate myself"));
        }
        if n.is_replica() {
            return Err(CommandError::err(
                "I can only replicate a master, not a replica.",
            ));
        }
        (n.name, n.ip.clone(), n.port)
    };
    // The state is read in statements of their own: `db_keys` takes shards, which come
    // before the cluster state in the lock order.
    let (me_master, my_slots) = {
        let st = c.state.read();
        (st.me().is_master(), st.me().numslots)
    };
    if me_master && (my_slots != 0 || db_keys(cx)? != 0) {
        return Err(CommandError::err(
            "To set a master the node must be empty and without assigned slots.",
        ));
    }
    let mut st = c.state.write();
    set_primary(&mut st, name);
    commit(cx.server, c, st);
    super::replication::follow_from_cluster(cx, &ip, port);
    cx.out.ok();
    Ok(())
}

/// Makes this node a replica of `primary` in the cluster's state (its slots given up).
pub fn set_primary(st: &mut State, primary: cl::Name) {
    let me = st.myself;
    for s in 0..SLOTS {
        if st.owners[s] == Some(me) {
            st.unassign(s);
        }
    }
    st.migrating.clear();
    st.importing.clear();
    let n = st.me_mut();
    n.flags = (n.flags & !flag::MASTER) | flag::SLAVE;
    n.master = Some(primary);
}

fn reset(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let hard = match args.get(2).map(|a| a.to_ascii_lowercase()) {
        None => false,
        Some(a) if a == b"hard" && args.len() == 3 => true,
        Some(a) if a == b"soft" && args.len() == 3 => false,
        _ => return Err(CommandError::err("syntax error")),
    };
    let master = c.state.read().me().is_master();
    if master && db_keys(cx)? != 0 {
        return Err(CommandError::err(
            "CLUSTER RESET can't be called with master nodes containing keys",
        ));
    }
    if !master {
        super::replication::unfollow_from_cluster(cx);
    }
    let mut st = c.state.write();
    let me = st.myself;
    // A primary first (as Redis): a replica's primary's slots do not leave this node's
    // shard here, only its own slots do.
    {
        let n = st.me_mut();
        n.flags = flag::MYSELF | flag::MASTER;
        n.master = None;
    }
    let others: Vec<cl::Name> = st.nodes.keys().filter(|n| **n != me).copied().collect();
    for n in others {
        st.remove_node(&n);
    }
    for s in 0..SLOTS {
        st.unassign(s);
    }
    st.migrating.clear();
    st.importing.clear();
    if hard {
        st.current_epoch = 0;
        st.last_vote_epoch = 0;
        st.me_mut().config_epoch = 0;
        let new = cl::random_name();
        let mut node = st.nodes.remove(&me).expect("myself");
        node.name = new;
        st.nodes.insert(new, node);
        st.myself = new;
    }
    commit(cx.server, c, st);
    cx.out.ok();
    Ok(())
}

fn failover(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let c = cluster(cx)?;
    let mode = match args.get(2).map(|a| a.to_ascii_lowercase()) {
        None => 0,
        Some(a) if a == b"force" && args.len() == 3 => 1,
        Some(a) if a == b"takeover" && args.len() == 3 => 2,
        _ => return Err(CommandError::err("syntax error")),
    };
    let mut st = c.state.write();
    if st.me().is_master() {
        return Err(CommandError::err(
            "You should send CLUSTER FAILOVER to a replica",
        ));
    }
    let Some(primary) = st.me().master.and_then(|m| st.nodes.get(&m)) else {
        return Err(CommandError::err(
            "I'm a replica but my master is unknown to me",
        ));
    };
    if mode == 0 && (primary.failed() || primary.timed_out() || !primary.link) {
        return Err(CommandError::err(
            "Master is down or failed, please use CLUSTER FAILOVER FORCE",
        ));
    }
    st.manual_failover = Some(cl::ManualFailover {
        mode,
        deadline: now() + 5000,
        primary_offset: None,
    });
    cx.out.ok();
    Ok(())
}

fn asking(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    cluster(cx)?;
    cx.client.asking = true;
    cx.out.ok();
    Ok(())
}

fn readonly(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    cluster(cx)?;
    cx.client.cluster_readonly = true;
    cx.out.ok();
    Ok(())
}

fn readwrite(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    cluster(cx)?;
    cx.client.cluster_readonly = false;
    cx.out.ok();
    Ok(())
}

fn help(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    cluster(cx)?;
    super::server::help_reply(
        &mut cx.out,
        "CLUSTER",
        &[
            "ADDSLOTS <slot> [<slot> ...]",
            "    Assign slots to current node.",
            "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
            "    Assign slots which are between <start-slot> and <end-slot> to current node.",
            "BUMPEPOCH",
            "    Advance the cluster config epoch.",
            "COUNT-FAILURE-REPORTS <node-id>",
            "    Return number of failure reports for <node-id>.",
            "COUNTKEYSINSLOT <slot>",
            "    Return the number of keys in <slot>.",
            "DELSLOTS <slot> [<slot> ...]",
            "    Delete slots information from current node.",
            "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
            "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
            "FAILOVER [FORCE|TAKEOVER]",
            "    Promote current replica node to being a master.",
            "FORGET <node-id>",
            "    Remove a node from the cluster.",
            "GETKEYSINSLOT <slot> <count>",
            "    Return key names stored by current node in a slot.",
            "FLUSHSLOTS",
            "    Delete current node own slots information.",
            "INFO",
            "    Return information about the cluster.",
            "KEYSLOT <key>",
            "    Return the hash slot for <key>.",
            "MEET <ip> <port> [<bus-port>]",
            "    Connect nodes into a working cluster.",
            "MYID",
            "    Return the node id.",
            "NODES",
            "    Return cluster configuration seen by node. Output format:",
            "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
            "REPLICATE <node-id>",
            "    Configure current node as replica to <node-id>.",
            "RESET [HARD|SOFT]",
            "    Reset current node (default: soft).",
            "SET-CONFIG-EPOCH <epoch>",
            "    Set config epoch of current node.",
            "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
            "    Set slot state.",
            "REPLICAS <node-id>",
            "    Return <node-id> replicas.",
            "SAVECONFIG",
            "    Force saving cluster configuration on disk.",
            "SLOTS",
            "    Return information about slots range mappings. Each range is made of:",
            "    start, end, master and replicas IP addresses, ports and ids",
            "SHARDS",
            "    Return information about slot range mappings and the nodes associated with them.",
            "LINKS",
            "    Return information about all network links between this node and its peers.",
            "    Output format is an array where each array element is a map containing attributes of a link",
        ],
    );
    Ok(())
}
