//! Pub/Sub: the registry of subscriptions and per-connection message queues.
//!
//! PUBLISH encodes a message once per protocol version (and once per matching pattern) and
//! pushes a reference-counted copy onto each subscriber's queue, so fanning out to 10,000
//! subscribers costs one small push each, not an allocation and an encoding each. The
//! subscriber's connection task drains its queue into its socket. A publisher's messages
//! reach each subscriber in the order they were published, whichever threads are involved.
//!
//! A subscriber that does not read cannot grow memory without bound: its queued bytes are
//! checked against `client-output-buffer-limit pubsub <hard> <soft> <seconds>` on every
//! push, and past the limit it is disconnected.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::util::glob_match;

/// An encoded message, shared by every subscriber that receives it.
pub type Frame = Arc<[u8]>;

/// The message queue of one subscribed connection.
pub struct Subscriber {
    pub client_id: u64,
    pub resp3: AtomicBool,
    queue: Mutex<VecDeque<Frame>>,
    /// Bytes queued: the connection's `ClientHandle::msg_bytes` when it has one, so that
    /// CLIENT LIST and client eviction see them.
    queued_bytes: Arc<AtomicU64>,
    /// When the queue first went over the soft limit (unix ms), 0 if it is under.
    soft_since: AtomicU64,
    /// Set when the subscriber went over its output limit: the connection closes.
    pub overflowed: AtomicBool,
    pub notify: tokio::sync::Notify,
    /// The connection, closed when the subscriber overflows (even mid-write).
    handle: Option<Arc<crate::registry::ClientHandle>>,
    /// Shard channels whose subscriptions the server ended (their slot left this node's
    /// shard), for the connection to drop from its own list and announce with
    /// `sunsubscribe`; `has_revoked` says whether there are any (one load per batch).
    revoked: Mutex<Vec<Vec<u8>>>,
    has_revoked: AtomicBool,
}

impl Subscriber {
    pub fn new(client_id: u64, resp3: bool) -> Self {
        Self::for_client(client_id, resp3, None)
    }

    pub fn for_client(
        client_id: u64,
        resp3: bool,
        handle: Option<Arc<crate::registry::ClientHandle>>,
    ) -> Self {
        let queued_bytes = handle
            .as_ref()
            .map(|h| h.msg_bytes.clone())
            .unwrap_or_default();
        queued_bytes.store(0, Relaxed);
        Self {
            handle,
            client_id,
            resp3: AtomicBool::new(resp3),
            queue: Mutex::new(VecDeque::new()),
            queued_bytes,
            soft_since: AtomicU64::new(0),
            overflowed: AtomicBool::new(false),
            notify: tokio::sync::Notify::new(),
            revoked: Mutex::new(Vec::new()),
            has_revoked: AtomicBool::new(false),
        }
    }

    /// The server ended this subscriber's subscription to shard channel `ch` (already out
    /// of the registry): the connection is woken to tell its client.
    fn revoke(&self, ch: &[u8]) {
        self.revoked.lock().push(ch.to_vec());
        self.has_revoked.store(true, Relaxed);
        self.notify.notify_one();
    }

    /// The shard channels revoked since the last call (see [`PubSub::end_shard_channels`]).
    pub fn take_revoked(&self) -> Vec<Vec<u8>> {
        if !self.has_revoked.load(Relaxed) {
            return Vec::new();
        }
        let mut r = self.revoked.lock();
        self.has_revoked.store(false, Relaxed);
        std::mem::take(&mut *r)
    }

    /// Queues a message; false if the subscriber is being disconnected for overflowing.
    /// (Published messages, and a monitor's lines: see `monitor`.)
    pub fn push_frame(&self, f: Frame, limits: &Limits) -> bool {
        if self.overflowed.load(Relaxed) {
            return false;
        }
        let len = f.len() as u64;
        // The count changes under the queue's lock, as in `drain_into`: otherwise a drain
        // between the push and the add subtracts first and wraps the count, and the next
        // push sees a subscriber far over its hard limit.
        let queued = {
            let mut q = self.queue.lock();
            q.push_back(f);
            self.queued_bytes.fetch_add(len, Relaxed) + len
        };
        if let Some(h) = &self.handle {
            h.set_queue_mem(queued);
        }
        // The one rule for every output limit (`Limits::exceeded`).
        let mut since = self.soft_since.load(Relaxed);
        let over = limits.exceeded(queued, &mut since);
        self.soft_since.store(since, Relaxed);
        if over {
            self.overflow();
            return false;
        }
        self.notify.notify_one();
        true
    }

    fn overflow(&self) {
        self.overflowed.store(true, Relaxed);
        let mut q = self.queue.lock();
        q.clear();
        self.queued_bytes.store(0, Relaxed);
        drop(q);
        self.notify.notify_one();
        if let Some(h) = &self.handle {
            h.set_queue_mem(0);
            h.kill();
        }
    }

    /// Whether the connection has any subscription (pub/sub mode, for RESP2).
    pub fn is_subscribed(&self) -> bool {
        self.handle
            .as_ref()
            .is_some_and(|h| h.sub.load(Relaxed) + h.psub.load(Relaxed) + h.ssub.load(Relaxed) > 0)
    }

    /// Moves every queued message into `out`.
    pub fn drain_into(&self, out: &mut Vec<u8>) {
        let mut q = self.queue.lock();
        let mut n = 0;
        for f in q.drain(..) {
            n += f.len() as u64;
            out.extend_from_slice(&f);
        }
        if n > 0 {
            let left = self.queued_bytes.fetch_sub(n, Relaxed) - n;
            self.soft_since.store(0, Relaxed);
            drop(q);
            if let Some(h) = &self.handle {
                h.set_queue_mem(left);
            }
        }
    }

    /// Bytes waiting to be written (CLIENT LIST omem).
    pub fn queued(&self) -> u64 {
        self.queued_bytes.load(Relaxed)
    }
}

/// One class of `client-output-buffer-limit` in bytes and seconds (0 = no limit).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Limits {
    pub hard: u64,
    pub soft: u64,
    pub soft_secs: u64,
}

impl Limits {
    /// Whether `bytes` of unsent output break these limits, checked as Redis checks a
    /// client whenever replies are added: at or over the hard limit at once, at or over
    /// the soft one once it has been so for more than `soft_secs` seconds. `soft_since`
    /// keeps when the soft limit was first reached (unix ms; 0 while under it).
    pub fn exceeded(&self, bytes: u64, soft_since: &mut u64) -> bool {
        self.exceeded_at(bytes, soft_since, crate::clock::now_ms())
    }

    /// [`Limits::exceeded`] at the time `now` (unix ms).
    pub fn exceeded_at(&self, bytes: u64, soft_since: &mut u64, now: u64) -> bool {
        if self.hard > 0 && bytes >= self.hard {
            return true;
        }
        if self.soft > 0 && bytes >= self.soft {
            if *soft_since == 0 {
                *soft_since = now;
                return false;
            }
            return now.saturating_sub(*soft_since) > self.soft_secs.saturating_mul(1000);
        }
        *soft_since = 0;
        false
    }
}

type Subs = HashMap<u64, Arc<Subscriber>>;

const SHARDS: usize = 16;

/// One namespace of channels (plain or sharded), split in independently locked parts.
struct Channels {
    parts: Vec<Mutex<HashMap<Vec<u8>, Subs>>>,
    hasher: foldhash::fast::FixedState,
}

impl Channels {
    fn new() -> Self {
        Self {
            parts: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: foldhash::fast::FixedState::with_seed(0x6b696c6e),
        }
    }

    fn part(&self, ch: &[u8]) -> &Mutex<HashMap<Vec<u8>, Subs>> {
        &self.parts[self.hasher.hash_one(ch) as usize % SHARDS]
    }

    fn add(&self, ch: &[u8], sub: &Arc<Subscriber>) -> bool {
        self.part(ch)
            .lock()
            .entry(ch.to_vec())
            .or_default()
            .insert(sub.client_id, sub.clone())
            .is_none()
    }

    fn remove(&self, ch: &[u8], id: u64) -> bool {
        let mut p = self.part(ch).lock();
        let Some(s) = p.get_mut(ch) else {
            return false;
        };
        let had = s.remove(&id).is_some();
        if s.is_empty() {
            p.remove(ch);
        }
        had
    }

    /// Calls `f` on every subscriber of `ch`, under the channel's lock: once `remove`
    /// returns, no delivery to the removed subscriber is still under way.
    fn deliver(&self, ch: &[u8], f: impl FnMut(&Arc<Subscriber>)) {
        if let Some(s) = self.part(ch).lock().get(ch) {
            s.values().for_each(f);
        }
    }

    /// Removes every channel `which` selects, with its subscribers (each given the channel
    /// to `f`, under the channel's lock: no delivery to them is under way once this returns).
    fn remove_where(&self, which: &dyn Fn(&[u8]) -> bool, f: &mut dyn FnMut(&[u8], &Subscriber)) {
        for p in &self.parts {
            let mut p = p.lock();
            let names: Vec<Vec<u8>> = p.keys().filter(|n| which(n)).cloned().collect();
            for name in names {
                if let Some(subs) = p.remove(&name) {
                    for s in subs.values() {
                        f(&name, s);
                    }
                }
            }
        }
    }

    /// The channels a client is subscribed to (a walk over every channel: for the rare
    /// callers that must know, like ACL changes).
    fn of_client(&self, id: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for p in &self.parts {
            for (name, subs) in p.lock().iter() {
                if subs.contains_key(&id) {
                    out.push(name.clone());
                }
            }
        }
        out
    }

    fn count(&self, ch: &[u8]) -> usize {
        self.part(ch).lock().get(ch).map_or(0, HashMap::len)
    }

    fn names(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for p in &self.parts {
            for name in p.lock().keys() {
                if pattern.is_none_or(|pat| glob_match(pat, name, false)) {
                    out.push(name.clone());
                }
            }
        }
        out
    }
}

/// Every subscription of the server.
pub struct PubSub {
    channels: Channels,
    shard_channels: Channels,
    patterns: RwLock<HashMap<Vec<u8>, Subs>>,
    limits: RwLock<Limits>,
}

impl Default for PubSub {
    fn default() -> Self {
        Self::new()
    }
}

/// Which namespace a subscription is in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl PubSub {
    pub fn new() -> Self {
        Self {
            channels: Channels::new(),
            shard_channels: Channels::new(),
            patterns: RwLock::new(HashMap::new()),
            limits: RwLock::new(Limits::default()),
        }
    }

    pub fn set_limits(&self, l: Limits) {
        *self.limits.write() = l;
    }

    /// `client-output-buffer-limit pubsub`.
    pub fn limits(&self) -> Limits {
        *self.limits.read()
    }

    /// Adds a subscription; false if it already existed.
    pub fn subscribe(&self, kind: Kind, name: &[u8], sub: &Arc<Subscriber>) -> bool {
        match kind {
            Kind::Channel => self.channels.add(name, sub),
            Kind::Shard => self.shard_channels.add(name, sub),
            Kind::Pattern => self
                .patterns
                .write()
                .entry(name.to_vec())
                .or_default()
                .insert(sub.client_id, sub.clone())
                .is_none(),
        }
    }

    /// Every subscription of one client: channels, patterns and shard channels.
    pub fn subscriptions_of(&self, client_id: u64) -> Vec<(Kind, Vec<u8>)> {
        let mut out: Vec<(Kind, Vec<u8>)> = Vec::new();
        out.extend(
            self.channels
                .of_client(client_id)
                .into_iter()
                .map(|c| (Kind::Channel, c)),
        );
        out.extend(
            self.shard_channels
                .of_client(client_id)
                .into_iter()
                .map(|c| (Kind::Shard, c)),
        );
        for (name, subs) in self.patterns.read().iter() {
            if subs.contains_key(&client_id) {
                out.push((Kind::Pattern, name.clone()));
            }
        }
        out
    }

    /// Removes a subscription; false if it did not exist.
    pub fn unsubscribe(&self, kind: Kind, name: &[u8], client_id: u64) -> bool {
        match kind {
            Kind::Channel => self.channels.remove(name, client_id),
            Kind::Shard => self.shard_channels.remove(name, client_id),
            Kind::Pattern => {
                let mut p = self.patterns.write();
                let Some(s) = p.get_mut(name) else {
                    return false;
                };
                let had = s.remove(&client_id).is_some();
                if s.is_empty() {
                    p.remove(name);
                }
                had
            }
        }
    }

    /// Ends every subscription to the shard channels `which` selects (cluster mode: their
    /// slot left this node's shard, as Redis's `removeChannelsInSlot`). Each subscriber's
    /// connection is told, and answers its client `sunsubscribe` (see
    /// `command::pubsub::apply_revocations`). Returns how many channels were dropped.
    pub fn end_shard_channels(&self, which: &dyn Fn(&[u8]) -> bool) -> usize {
        let mut n = 0;
        let mut last: Option<Vec<u8>> = None;
        self.shard_channels.remove_where(which, &mut |ch, s| {
            if last.as_deref() != Some(ch) {
                n += 1;
                last = Some(ch.to_vec());
            }
            s.revoke(ch);
        });
        n
    }

    /// PUBLISH / SPUBLISH: delivers to every subscriber, returns how many received it.
    pub fn publish(&self, shard: bool, channel: &[u8], message: &[u8]) -> usize {
        let limits = *self.limits.read();
        let mut frames = Frames::new(
            if shard { "smessage" } else { "message" },
            None,
            channel,
            message,
        );
        let mut n = 0;
        let push = |s: &Arc<Subscriber>| {
            n += usize::from(s.push_frame(frames.get(s.resp3.load(Relaxed)), &limits));
        };
        if shard {
            self.shard_channels.deliver(channel, push);
        } else {
            self.channels.deliver(channel, push);
        }
        if !shard {
            let patterns = self.patterns.read();
            for (pat, subs) in patterns.iter() {
                if subs.is_empty() || !glob_match(pat, channel, false) {
                    continue;
                }
                let mut frames = Frames::new("pmessage", Some(pat), channel, message);
                for s in subs.values() {
                    n += usize::from(s.push_frame(frames.get(s.resp3.load(Relaxed)), &limits));
                }
            }
        }
        n
    }

    /// PUBSUB CHANNELS / SHARDCHANNELS.
    pub fn channel_names(&self, shard: bool, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        if shard {
            self.shard_channels.names(pattern)
        } else {
            self.channels.names(pattern)
        }
    }

    /// PUBSUB NUMSUB / SHARDNUMSUB for one channel.
    pub fn numsub(&self, shard: bool, channel: &[u8]) -> usize {
        if shard {
            self.shard_channels.count(channel)
        } else {
            self.channels.count(channel)
        }
    }

    /// PUBSUB NUMPAT: distinct patterns subscribed to.
    pub fn numpat(&self) -> usize {
        self.patterns.read().len()
    }
}

/// A message encoded lazily, once per protocol version.
struct Frames<'a> {
    kind: &'static str,
    pattern: Option<&'a [u8]>,
    channel: &'a [u8],
    message: &'a [u8],
    resp2: Option<Frame>,
    resp3: Option<Frame>,
}

impl<'a> Frames<'a> {
    fn new(
        kind: &'static str,
        pattern: Option<&'a [u8]>,
        channel: &'a [u8],
        message: &'a [u8],
    ) -> Self {
        Self {
            kind,
            pattern,
            channel,
            message,
            resp2: None,
            resp3: None,
        }
    }

    fn get(&mut self, resp3: bool) -> Frame {
        let slot = if resp3 {
            &mut self.resp3
        } else {
            &mut self.resp2
        };
        if let Some(f) = slot {
            return f.clone();
        }
        let mut out = Vec::with_capacity(32 + self.channel.len() + self.message.len());
        let n = if self.pattern.is_some() { 4 } else { 3 };
        kiln_resp::encode::header(&mut out, if resp3 { b'>' } else { b'*' }, n);
        kiln_resp::encode::bulk(&mut out, self.kind.as_bytes());
        if let Some(p) = self.pattern {
            kiln_resp::encode::bulk(&mut out, p);
        }
        kiln_resp::encode::bulk(&mut out, self.channel);
        kiln_resp::encode::bulk(&mut out, self.message);
        let f: Frame = out.into();
        *slot = Some(f.clone());
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_reaches_channel_and_pattern_subscribers_once_each() {
        let ps = PubSub::new();
        let a = Arc::new(Subscriber::new(1, false));
        let b = Arc::new(Subscriber::new(2, true));
        assert!(ps.subscribe(Kind::Channel, b"news", &a));
        assert!(!ps.subscribe(Kind::Channel, b"news", &a));
        assert!(ps.subscribe(Kind::Pattern, b"n*", &b));
        assert_eq!(ps.publish(false, b"news", b"hi"), 2);
        let mut out = Vec::new();
        a.drain_into(&mut out);
        assert_eq!(out, b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
        out.clear();
        b.drain_into(&mut out);
        assert_eq!(
            out,
            b">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert!(ps.unsubscribe(Kind::Channel, b"news", 1));
        assert_eq!(ps.publish(false, b"news", b"hi"), 1);
        assert_eq!(ps.numpat(), 1);
    }

    #[test]
    fn ended_shard_channels_lose_their_subscribers_who_are_told() {
        let ps = PubSub::new();
        let a = Arc::new(Subscriber::new(1, false));
        let b = Arc::new(Subscriber::new(2, false));
        for (ch, s) in [(&b"x1"[..], &a), (b"x1", &b), (b"y", &a)] {
            ps.subscribe(Kind::Shard, ch, s);
        }
        ps.subscribe(Kind::Channel, b"x1", &a);
        assert_eq!(ps.end_shard_channels(&|ch| ch.starts_with(b"x")), 1);
        assert_eq!(a.take_revoked(), vec![b"x1".to_vec()]);
        assert_eq!(a.take_revoked(), Vec::<Vec<u8>>::new());
        assert_eq!(b.take_revoked(), vec![b"x1".to_vec()]);
        assert_eq!(ps.numsub(true, b"x1"), 0);
        assert_eq!(ps.numsub(true, b"y"), 1);
        assert_eq!(ps.publish(true, b"x1", b"m"), 0);
        // Plain channels of the same name are not shard channels.
        assert_eq!(ps.publish(false, b"x1", b"m"), 1);
    }

    #[test]
    fn a_subscriber_over_the_hard_limit_overflows() {
        let ps = PubSub::new();
        ps.set_limits(Limits {
            hard: 100,
            soft: 0,
            soft_secs: 0,
        });
        let a = Arc::new(Subscriber::new(1, false));
        ps.subscribe(Kind::Channel, b"c", &a);
        for _ in 0..10 {
            ps.publish(false, b"c", b"0123456789");
        }
        assert!(a.overflowed.load(Relaxed));
        assert_eq!(a.queued(), 0);
    }

    /// Publishers on several threads and the connection draining at the same time: the
    /// byte count never runs ahead of (or wraps below) what is really queued. The hard limit
    /// is everything the publishers send together, so only a miscount can cross it.
    #[test]
    fn concurrent_publishers_and_a_draining_reader_never_overflow() {
        const PUSHERS: u64 = 3;
        const EACH: u64 = 100_000;
        let frame: Frame = Arc::from(&b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n"[..]);
        let limits = Limits {
            hard: PUSHERS * EACH * frame.len() as u64,
            soft: 0,
            soft_secs: 0,
        };
        let a = Arc::new(Subscriber::new(1, false));
        let pushers: Vec<_> = (0..PUSHERS)
            .map(|_| {
                let (a, frame) = (a.clone(), frame.clone());
                std::thread::spawn(move || {
                    for _ in 0..EACH {
                        assert!(a.push_frame(frame.clone(), &limits), "overflowed");
                    }
                })
            })
            .collect();
        let mut out = Vec::new();
        while pushers.iter().any(|p| !p.is_finished()) {
            a.drain_into(&mut out);
            out.clear();
        }
        for p in pushers {
            p.join().unwrap();
        }
        a.drain_into(&mut out);
        assert_eq!(a.queued(), 0);
        assert!(!a.overflowed.load(Relaxed));
    }
}
