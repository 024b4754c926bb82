//! Pub/Sub commands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH, PUBSUB.
//! The registry and message delivery live in `crate::pubsub`.

use std::sync::atomic::Ordering::Relaxed;

use super::flags::*;
use super::{CommandSpec, Ctx, Keys};
use crate::client::Client;
use crate::error::{CmdResult, CommandError, E};
use crate::pubsub::Kind;

const PS: u32 = PUBSUB | NOSCRIPT | LOADING | STALE;

pub(super) const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("subscribe", -2, PS, Keys::None, subscribe)
        .group("pubsub")
        .since("2.0.0")
        .summary("Listens for messages published to channels.")
        .complexity("O(N) where N is the number of channels to subscribe to.")
        .syntax("channel [channel ...]"),
    CommandSpec::new("unsubscribe", -1, PS, Keys::None, unsubscribe)
        .group("pubsub")
        .since("2.0.0")
        .summary("Stops listening to messages posted to channels.")
        .complexity("O(N) where N is the number of channels to unsubscribe.")
        .syntax("[channel [channel ...]]"),
    CommandSpec::new("psubscribe", -2, PS, Keys::None, psubscribe)
        .group("pubsub")
        .since("2.0.0")
        .summary("Listens for messages published to channels that match one or more patterns.")
        .complexity("O(N) where N is the number of patterns to subscribe to.")
        .syntax("pattern [pattern ...]"),
    CommandSpec::new("punsubscribe", -1, PS, Keys::None, punsubscribe)
        .group("pubsub")
        .since("2.0.0")
        .summary("Stops listening to messages published to channels that match one or more patterns.")
        .complexity("O(N) where N is the number of patterns to unsubscribe.")
        .syntax("[pattern [pattern ...]]"),
    CommandSpec::new("ssubscribe", -2, PS, Keys::Range(1, -1, 1), ssubscribe)
        .group("pubsub")
        .since("7.0.0")
        .summary("Listens for messages published to shard channels.")
        .complexity("O(N) where N is the number of shard channels to subscribe to.")
        .syntax("shardchannel [shardchannel ...]"),
    CommandSpec::new("sunsubscribe", -1, PS, Keys::Range(1, -1, 1), sunsubscribe)
        .group("pubsub")
        .since("7.0.0")
        .summary("Stops listening to messages posted to shard channels.")
        .complexity("O(N) where N is the number of shard channels to unsubscribe.")
        .syntax("[shardchannel [shardchannel ...]]"),
    CommandSpec::new("publish", 3, PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE, Keys::None, publish)
        .group("pubsub")
        .since("2.0.0")
        .summary("Posts a message to a channel.")
        .complexity("O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).")
        .syntax("channel message"),
    CommandSpec::new("spublish", 3, PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE, Keys::Range(1, 1, 1), spublish)
        .group("pubsub")
        .since("7.0.0")
        .summary("Post a message to a shard channel")
        .complexity("O(N) where N is the number of clients subscribed to the receiving shard channel.")
        .syntax("shardchannel message"),
    CommandSpec::new("pubsub", -2, 0, Keys::None, container)
        .group("pubsub")
        .since("2.8.0")
        .summary("A container for Pub/Sub commands.")
        .complexity("Depends on subcommand.")
        .subcommands(PUBSUB_SUBCOMMANDS),
];

const PUBSUB_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("channels", -2, PUBSUB | LOADING | STALE, Keys::None, channels)
        .group("pubsub")
        .since("2.8.0")
        .summary("Returns the active channels.")
        .complexity("O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)")
        .syntax("[pattern]"),
    CommandSpec::new("help", 2, LOADING | STALE, Keys::None, help)
        .group("pubsub")
        .since("6.2.0")
        .summary("Returns helpful text about the different subcommands.")
        .complexity("O(1)"),
    CommandSpec::new("numpat", 2, PUBSUB | LOADING | STALE, Keys::None, numpat)
        .group("pubsub")
        .since("2.8.0")
        .summary("Returns a count of unique pattern subscriptions.")
        .complexity("O(1)"),
    CommandSpec::new("numsub", -2, PUBSUB | LOADING | STALE, Keys::None, numsub)
        .group("pubsub")
        .since("2.8.0")
        .summary("Returns a count of subscribers to channels.")
        .complexity("O(N) for the NUMSUB subcommand, where N is the number of requested channels")
        .syntax("[channel [channel ...]]"),
    CommandSpec::new("shardchannels", -2, PUBSUB | LOADING | STALE, Keys::None, shardchannels)
        .group("pubsub")
        .since("7.0.0")
        .summary("Returns the active shard channels.")
        .complexity("O(N) where N is the number of active shard channels, and assuming constant time pattern matching (relatively short shard channels).")
        .syntax("[pattern]"),
    CommandSpec::new("shardnumsub", -2, PUBSUB | LOADING | STALE, Keys::None, shardnumsub)
        .group("pubsub")
        .since("7.0.0")
        .summary("Returns the count of subscribers of shard channels.")
        .complexity("O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels")
        .syntax("[shardchannel [shardchannel ...]]"),
];

fn container(_cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    Err(CommandError::unknown_subcommand(
        args[0],
        args.get(1).copied().unwrap_or_default(),
    ))
}

/// The commands a RESP2 client may run while subscribed.
pub(super) fn allowed_when_subscribed(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "unsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "ssubscribe"
            | "sunsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

fn event_name(kind: Kind, sub: bool) -> &'static [u8] {
    match (kind, sub) {
        (Kind::Channel, true) => b"subscribe",
        (Kind::Channel, false) => b"unsubscribe",
        (Kind::Pattern, true) => b"psubscribe",
        (Kind::Pattern, false) => b"punsubscribe",
        (Kind::Shard, true) => b"ssubscribe",
        (Kind::Shard, false) => b"sunsubscribe",
    }
}

/// The count Redis reports after a (un)subscription: channels + patterns, or shard channels.
fn count(c: &Client, kind: Kind) -> usize {
    match kind {
        Kind::Shard => c.subscriptions[2].len(),
        _ => c.subscriptions[0].len() + c.subscriptions[1].len(),
    }
}

fn slot(kind: Kind) -> usize {
    match kind {
        Kind::Channel => 0,
        Kind::Pattern => 1,
        Kind::Shard => 2,
    }
}

fn sync_counters(c: &Client) {
    let h = &c.handle;
    h.sub.store(c.subscriptions[0].len() as u32, Relaxed);
    h.psub.store(c.subscriptions[1].len() as u32, Relaxed);
    h.ssub.store(c.subscriptions[2].len() as u32, Relaxed);
    let on = c.subscriptions.iter().any(|s| !s.is_empty());
    super::client::set_flag(&mut h.info.lock().flags, 'P', on);
}

fn do_subscribe(cx: &mut Ctx, kind: Kind, names: &[&[u8]]) -> CmdResult {
    apply_revocations(cx.client, cx.out.buf);
    let server = cx.server;
    // The connection's queue, known to client tracking as a possible redirect target.
    let sub = super::tracking::own_queue(cx);
    for name in names {
        if cx.client.subscriptions[slot(kind)].insert(name.to_vec()) {
            server.pubsub.subscribe(kind, name, &sub);
        }
        let n = count(cx.client, kind);
        cx.out.push(3);
        cx.out.bulk(event_name(kind, true));
        cx.out.bulk(name);
        cx.out.int(n as i64);
    }
    sync_counters(cx.client);
    cx.pushes_only();
    Ok(())
}

fn do_unsubscribe(cx: &mut Ctx, kind: Kind, names: &[&[u8]]) -> CmdResult {
    apply_revocations(cx.client, cx.out.buf);
    let names: Vec<Vec<u8>> = if names.is_empty() {
        cx.client.subscriptions[slot(kind)]
            .iter()
            .cloned()
            .collect()
    } else {
        names.iter().map(|n| n.to_vec()).collect()
    };
    if names.is_empty() {
        let n = count(cx.client, kind);
        cx.out.push(3);
        cx.out.bulk(event_name(kind, false));
        cx.out.null();
        cx.out.int(n as i64);
        cx.pushes_only();
        return Ok(());
    }
    for name in names {
        if cx.client.subscriptions[slot(kind)].remove(&name) {
            cx.server.pubsub.unsubscribe(kind, &name, cx.client.id);
            flush_queued(cx);
        }
        let n = count(cx.client, kind);
        cx.out.push(3);
        cx.out.bulk(event_name(kind, false));
        cx.out.bulk(&name);
        cx.out.int(n as i64);
    }
    sync_counters(cx.client);
    cx.pushes_only();
    Ok(())
}

/// Writes the messages already queued for this client, ahead of the reply of a command that
/// ended subscriptions: they were published while the subscriptions held (deliveries run
/// under the registry's locks, so none reaches the queue once the unsubscription is done).
/// Without this they would follow the reply, after the client was told it was unsubscribed.
pub(super) fn flush_queued(cx: &mut Ctx) {
    if let Some(s) = &cx.client.subscriber {
        s.drain_into(cx.out.buf);
    }
}

/// Shard channel subscriptions the server ended (cluster mode: the channel's slot left this
/// node's shard) leave the client's own list, each announced as SUNSUBSCRIBE would: a
/// `sunsubscribe` push with the shard channels left. Messages already queued for the client
/// come first. Called by the connection before it runs commands and when its subscriber is
/// woken; a channel the client unsubscribed meanwhile is not announced twice.
pub fn apply_revocations(c: &mut Client, out: &mut Vec<u8>) {
    // One load per batch for a client with a message queue; nothing for one without.
    let lost = match &c.subscriber {
        Some(s) => s.take_revoked(),
        None => return,
    };
    if lost.is_empty() {
        return;
    }
    if let Some(s) = &c.subscriber {
        s.drain_into(out);
    }
    let mut o = crate::reply::Out::new(out, c.resp3);
    let mut any = false;
    for ch in lost {
        if c.subscriptions[slot(Kind::Shard)].remove(&ch) {
            any = true;
            o.push(3);
            o.bulk(event_name(Kind::Shard, false));
            o.bulk(&ch);
            o.int(count(c, Kind::Shard) as i64);
        }
    }
    if any {
        sync_counters(c);
    }
}

/// Drops every subscription of a client (RESET, disconnect), without replies.
pub fn unsubscribe_all(server: &crate::server::Server, c: &mut Client) {
    if let Some(s) = &c.subscriber {
        s.take_revoked();
    }
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        for name in std::mem::take(&mut c.subscriptions[slot(kind)]) {
            server.pubsub.unsubscribe(kind, &name, c.id);
        }
    }
    sync_counters(c);
}

/// `SUBSCRIBE channel [channel ...]`
fn subscribe(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    do_subscribe(cx, Kind::Channel, &args[1..])
}

/// `UNSUBSCRIBE [channel ...]`
fn unsubscribe(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    do_unsubscribe(cx, Kind::Channel, &args[1..])
}

/// `PSUBSCRIBE pattern [pattern ...]`
fn psubscribe(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    do_subscribe(cx, Kind::Pattern, &args[1..])
}

/// `PUNSUBSCRIBE [pattern ...]`
fn punsubscribe(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    do_unsubscribe(cx, Kind::Pattern, &args[1..])
}

/// `SSUBSCRIBE shardchannel [shardchannel ...]`
fn ssubscribe(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    // Redis 7.0 refuses SSUBSCRIBE to a client that may not block, which includes one in
    // EXEC (SUBSCRIBE and PSUBSCRIBE make an exception for transactions; SSUBSCRIBE not).
    if cx.in_exec() {
        return Err(E(crate::error::SSUBSCRIBE_DENY_BLOCKING));
    }
    do_subscribe(cx, Kind::Shard, &args[1..])
}

/// `SUNSUBSCRIBE [shardchannel ...]`
fn sunsubscribe(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    do_unsubscribe(cx, Kind::Shard, &args[1..])
}

/// `PUBLISH channel message`: the number of clients that received it.
fn publish(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let n = cx.server.pubsub.publish(false, args[1], args[2]);
    propagate_message(cx, false, args);
    cx.out.int(n as i64);
    Ok(())
}

/// Messages reach the replicas' subscribers too: Redis replicates PUBLISH and SPUBLISH
/// (outside cluster mode) to replicas, never to the AOF. A replica relays its primary's.
/// In cluster mode the cluster bus carries them instead: PUBLISH to every node, SPUBLISH
/// to the nodes of this node's shard.
fn propagate_message(cx: &Ctx, shard: bool, args: &[&[u8]]) {
    let server = cx.server;
    if let Some(c) = &server.cluster {
        c.send(crate::cluster::Outgoing::Publish {
            shard,
            channel: args[1].to_vec(),
            message: args[2].to_vec(),
        });
        return;
    }
    if server.feed.is_active() && !server.repl.is_replica() && server.feed.repl_enabled() {
        server.feed.append_repl_only(args);
    }
}

/// `SPUBLISH shardchannel message`
fn spublish(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let n = cx.server.pubsub.publish(true, args[1], args[2]);
    propagate_message(cx, true, args);
    cx.out.int(n as i64);
    Ok(())
}

fn names_reply(cx: &mut Ctx, shard: bool, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(CommandError::Owned(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(args[1])
        )));
    }
    let names = cx.server.pubsub.channel_names(shard, args.get(2).copied());
    cx.out.bulks(names.iter());
    Ok(())
}

/// `PUBSUB CHANNELS [pattern]`
fn channels(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    names_reply(cx, false, args)
}

/// `PUBSUB SHARDCHANNELS [pattern]`
fn shardchannels(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    names_reply(cx, true, args)
}

/// Channel, count, channel, count...: a flat array in RESP3 too, as Redis 7.0 replies.
fn numsub_reply(cx: &mut Ctx, shard: bool, args: &[&[u8]]) -> CmdResult {
    cx.out.array(2 * (args.len() - 2));
    for ch in &args[2..] {
        cx.out.bulk(ch);
        cx.out.int(cx.server.pubsub.numsub(shard, ch) as i64);
    }
    Ok(())
}

/// `PUBSUB NUMSUB [channel ...]`
fn numsub(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    numsub_reply(cx, false, args)
}

/// `PUBSUB SHARDNUMSUB [shardchannel ...]`
fn shardnumsub(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    numsub_reply(cx, true, args)
}

/// `PUBSUB NUMPAT`
fn numpat(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    cx.out.int(cx.server.pubsub.numpat() as i64);
    Ok(())
}

/// `PUBSUB HELP`
fn help(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    const LINES: &[&str] = &[
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    List the channels that have subscribers, optionally only those matching <pattern>.",
        "NUMPAT",
        "    Count the distinct patterns clients are subscribed to.",
        "NUMSUB [<channel> ...]",
        "    For each <channel>, count its subscribers (pattern subscriptions not included).",
        "SHARDCHANNELS [<pattern>]",
        "    List the shard channels that have subscribers, optionally matching <pattern>.",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    For each <shardchannel>, count its subscribers.",
        "HELP",
        "    Show this text.",
    ];
    cx.out.array(LINES.len());
    for l in LINES {
        cx.out.simple(l);
    }
    Ok(())
}
