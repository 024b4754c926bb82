//! Client-side caching (CLIENT TRACKING): which clients read which keys, and the
//! invalidation messages sent when those keys change.
//!
//! In the default mode the table maps each key a tracking client read to the clients that
//! read it (keys of every database together, as in Redis); a change to the key sends each
//! of them one invalidation and forgets the key. In BCAST mode clients name key prefixes
//! instead and hear of every change under them. Messages go through each client's message
//! queue (`pubsub::Subscriber`), so they reach its connection behind the replies it was
//! already sent, from whichever worker thread made the change: a RESP3 `invalidate` push,
//! or, for a RESP2 client redirecting to a subscribed connection, a message on
//! `__redis__:invalidate`. Reads are recorded and changes are signalled while the key's
//! shard is locked, so a change on another thread cannot slip between a read and its
//! record. BCAST invalidations are gathered while a command runs ([`Tracking::batch`]) and
//! go out once it is over, one message per prefix with its keys in order, as Redis sends
//! them once per event-loop turn. Depends on nothing else of the server but the message
//! queues.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};

use hashbrown::HashMap;
use parking_lot::{Mutex, RwLock};
use smallvec::SmallVec;

use crate::pubsub::{Limits, Subscriber};

/// The channel a RESP2 redirect target receives invalidations on.
pub const CHANNEL: &[u8] = b"__redis__:invalidate";

const PARTS: usize = 16;

/// One part of the key table: each tracked key and the clients that read it.
type Part = Mutex<HashMap<Box<[u8]>, SmallVec<[u64; 2]>>>;

/// One tracking client's options (CLIENT TRACKING ON ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Client id to send invalidations to instead (0: this connection).
    pub redirect: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    pub prefixes: Vec<Vec<u8>>,
}

/// A client with tracking on.
struct Tracker {
    opts: Options,
    /// The connection's protocol (the null of a flush invalidation is written in it).
    resp3: bool,
    /// The redirect target could not be found at the last message (CLIENT LIST `R`).
    broken: std::sync::atomic::AtomicBool,
}

/// Every tracking client and the keys and prefixes they follow.
pub struct Tracking {
    table: Vec<Part>,
    hasher: foldhash::fast::FixedState,
    keys: AtomicU64,
    items: AtomicU64,
    trackers: RwLock<HashMap<u64, Arc<Tracker>>>,
    /// BCAST prefixes and the clients following each.
    prefixes: RwLock<BTreeMap<Vec<u8>, Vec<u64>>>,
    /// The message queues of connections that have one, by client id.
    queues: RwLock<HashMap<u64, Weak<Subscriber>>>,
    /// Clients with tracking on: the write path's one load.
    count: AtomicU64,
    /// `tracking-table-max-keys` (0: no limit).
    pub max_keys: AtomicU64,
    /// `client-output-buffer-limit`'s normal and pubsub classes: an invalidation counts
    /// against its receiver's output like any reply.
    limits: RwLock<[Limits; 2]>,
}

impl Default for Tracking {
    fn default() -> Self {
        Self {
            table: (0..PARTS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: foldhash::fast::FixedState::with_seed(0x74726b),
            keys: AtomicU64::new(0),
            items: AtomicU64::new(0),
            trackers: RwLock::new(HashMap::new()),
            prefixes: RwLock::new(BTreeMap::new()),
            queues: RwLock::new(HashMap::new()),
            limits: RwLock::new([Limits::default(); 2]),
            count: AtomicU64::new(0),
            max_keys: AtomicU64::new(1_000_000),
        }
    }
}

/// Why CLIENT TRACKING ON was refused (the texts are Redis's).
pub fn prefix_conflict(existing: &[Vec<u8>], new: &[Vec<u8>]) -> Result<(), String> {
    let overlaps = |a: &[u8], b: &[u8]| a.starts_with(b) || b.starts_with(a);
    for n in new {
        if let Some(e) = existing.iter().find(|e| overlaps(e, n)) {
            return Err(format!(
                "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                String::from_utf8_lossy(n),
                String::from_utf8_lossy(e)
            ));
        }
    }
    for (i, a) in new.iter().enumerate() {
        for b in &new[i + 1..] {
            if overlaps(a, b) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(a),
                    String::from_utf8_lossy(b)
                ));
            }
        }
    }
    Ok(())
}

fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(b.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// An invalidation message for `keys` (`None`: every key, after a flush) as `target`
/// receives it: a RESP3 push, or a pub/sub message on [`CHANNEL`] for a RESP2 redirect
/// target in subscribed mode. `null` is the flush's null in the tracking client's protocol.
fn message(target_resp3: bool, keys: Option<&[&[u8]]>, null: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    if target_resp3 {
        m.extend_from_slice(b">2\r\n$10\r\ninvalidate\r\n");
    } else {
        m.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n");
        bulk(&mut m, CHANNEL);
    }
    match keys {
        Some(keys) => {
            m.push(b'*');
            m.extend_from_slice(itoa::Buffer::new().format(keys.len()).as_bytes());
            m.extend_from_slice(b"\r\n");
            for k in keys {
                bulk(&mut m, k);
            }
        }
        None => m.extend_from_slice(null),
    }
    m
}

/// BCAST invalidations gathered on this thread while a command runs: per prefix, each key
/// with the client that changed it (None when several did, or the server did).
#[derive(Default)]
struct Gathered {
    depth: u32,
    keys: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Option<u64>>>,
}

thread_local! {
    static GATHERED: std::cell::RefCell<Gathered> = std::cell::RefCell::default();
}

/// An open [`Tracking::batch`]: its BCAST invalidations go out when the outermost one ends.
pub struct Batch<'a>(&'a Tracking);

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        let done = GATHERED.with(|g| {
            let mut g = g.borrow_mut();
            g.depth -= 1;
            if g.depth == 0 {
                std::mem::take(&mut g.keys)
            } else {
                BTreeMap::new()
            }
        });
        if !done.is_empty() {
            self.0.send_gathered(done);
        }
    }
}

impl Tracking {
    /// Gathers the BCAST invalidations of what runs until the guard is dropped (a command,
    /// with the transaction, script or served waiters it runs), to send each prefix's keys
    /// in one message then. None when no client tracks.
    pub fn batch(&self) -> Option<Batch<'_>> {
        if !self.active() {
            return None;
        }
        GATHERED.with(|g| g.borrow_mut().depth += 1);
        Some(Batch(self))
    }

    /// Sends what a batch gathered: per prefix, to each of its clients, the keys in order
    /// (without a NOLOOP client's own changes).
    fn send_gathered(&self, gathered: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Option<u64>>>) {
        let trackers = self.trackers.read();
        let prefixes = self.prefixes.read();
        for (pre, keys) in &gathered {
            let Some(ids) = prefixes.get(pre) else {
                continue;
            };
            for &id in ids {
                let Some(t) = trackers.get(&id) else { continue };
                let list: Vec<&[u8]> = keys
                    .iter()
                    .filter(|(_, w)| !(t.opts.noloop && **w == Some(id)))
                    .map(|(k, _)| &k[..])
                    .collect();
                if !list.is_empty() {
                    self.send(id, t, Some(&list));
                }
            }
        }
    }

    /// Whether any client tracks: when not, the write path does nothing more.
    #[inline]
    pub fn active(&self) -> bool {
        self.count.load(Relaxed) != 0
    }

    /// Remembers a connection's message queue (it subscribed, or turned tracking on), so
    /// it can be a redirect target.
    pub fn register_queue(&self, id: u64, q: &Arc<Subscriber>) {
        self.queues.write().insert(id, Arc::downgrade(q));
    }

    /// Turns tracking on for `id` with `opts` (already checked), or changes its options.
    pub fn enable(&self, id: u64, resp3: bool, opts: Options) {
        let mut trackers = self.trackers.write();
        let old = trackers.insert(
            id,
            Arc::new(Tracker {
                opts: opts.clone(),
                resp3,
                broken: Default::default(),
            }),
        );
        if old.is_none() {
            self.count.fetch_add(1, Relaxed);
        }
        drop(trackers);
        if opts.bcast {
            let mut p = self.prefixes.write();
            let prefixes = if opts.prefixes.is_empty() {
                vec![Vec::new()]
            } else {
                opts.prefixes.clone()
            };
            for pre in prefixes {
                let ids = p.entry(pre).or_default();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
    }

    /// Turns tracking off for `id` (CLIENT TRACKING OFF, RESET, the connection's end).
    /// Keys it read stay in the table until they change, as in Redis.
    pub fn disable(&self, id: u64) {
        if self.trackers.write().remove(&id).is_some() {
            self.count.fetch_sub(1, Relaxed);
        }
        let mut p = self.prefixes.write();
        p.retain(|_, ids| {
            ids.retain(|&i| i != id);
            !ids.is_empty()
        });
    }

    /// The connection's end: tracking off, and its queue forgotten.
    pub fn forget(&self, id: u64) {
        self.disable(id);
        self.queues.write().remove(&id);
    }

    /// `id`'s options, if it tracks.
    pub fn options(&self, id: u64) -> Option<Options> {
        self.trackers.read().get(&id).map(|t| t.opts.clone())
    }

    /// Whether `id`'s redirect target was gone at its last message.
    pub fn broken_redirect(&self, id: u64) -> bool {
        self.trackers
            .read()
            .get(&id)
            .is_some_and(|t| t.broken.load(Relaxed))
    }

    /// Records that tracking client `id` read `keys` (default mode; the caller checked the
    /// OPTIN/OPTOUT rules), under the keys' shard locks.
    pub fn remember(&self, id: u64, keys: &[&[u8]]) {
        for key in keys {
            let mut part = self.part(key).lock();
            match part.get_mut(*key) {
                Some(ids) => {
                    if !ids.contains(&id) {
                        ids.push(id);
                        self.items.fetch_add(1, Relaxed);
                    }
                }
                None => {
                    part.insert((*key).into(), SmallVec::from_slice(&[id]));
                    self.keys.fetch_add(1, Relaxed);
                    self.items.fetch_add(1, Relaxed);
                }
            }
        }
        let max = self.max_keys.load(Relaxed);
        if max != 0 && self.keys.load(Relaxed) > max {
            self.evict_to(max);
        }
    }

    /// `tracking-table-max-keys`: forgets keys (sending their invalidations, as Redis does)
    /// until the table holds at most `max`.
    fn evict_to(&self, max: u64) {
        let start = crate::storage::access::random_u64() as usize;
        for i in 0..PARTS {
            if self.keys.load(Relaxed) <= max {
                return;
            }
            let victim = {
                let part = self.table[(start + i) % PARTS].lock();
                part.keys().next().cloned()
            };
            if let Some(k) = victim {
                self.invalidate(&k, None);
            }
        }
    }

    fn part(&self, key: &[u8]) -> &Part {
        &self.table[self.hasher.hash_one(key) as usize % PARTS]
    }

    /// A key changed (written, deleted, expired or evicted) by client `writer` (None: the
    /// server itself): its default-mode readers and the BCAST clients of a matching prefix
    /// are told, except the writer when it asked for NOLOOP. Called under the key's shard
    /// lock.
    pub fn invalidate(&self, key: &[u8], writer: Option<u64>) {
        let ids = {
            let mut part = self.part(key).lock();
            part.remove(key)
        };
        let trackers = self.trackers.read();
        if let Some(ids) = ids {
            self.keys.fetch_sub(1, Relaxed);
            self.items.fetch_sub(ids.len() as u64, Relaxed);
            for id in ids {
                if let Some(t) = trackers.get(&id) {
                    if t.opts.bcast || (t.opts.noloop && writer == Some(id)) {
                        continue;
                    }
                    self.send(id, t, Some(&[key]));
                }
            }
        }
        let prefixes = self.prefixes.read();
        if prefixes.is_empty() {
            return;
        }
        for (pre, ids) in prefixes.iter() {
            if !key.starts_with(pre) {
                continue;
            }
            let gathered = GATHERED.with(|g| {
                let mut g = g.borrow_mut();
                if g.depth == 0 {
                    return false;
                }
                let keys = g.keys.entry(pre.clone()).or_default();
                keys.entry(key.to_vec())
                    .and_modify(|w| {
                        if *w != writer {
                            *w = None;
                        }
                    })
                    .or_insert(writer);
                true
            });
            if gathered {
                continue;
            }
            for &id in ids {
                if let Some(t) = trackers.get(&id) {
                    if t.opts.noloop && writer == Some(id) {
                        continue;
                    }
                    self.send(id, t, Some(&[key]));
                }
            }
        }
    }

    /// FLUSHDB / FLUSHALL: every tracking client is told that every key changed (a null
    /// invalidation), and the table is emptied.
    pub fn flushed(&self) {
        for part in &self.table {
            part.lock().clear();
        }
        self.keys.store(0, Relaxed);
        self.items.store(0, Relaxed);
        let trackers = self.trackers.read();
        for (&id, t) in trackers.iter() {
            self.send(id, t, None);
        }
    }

    /// The output limits invalidations are held to: the `normal` class's, and for a
    /// receiver with subscriptions the `pubsub` class's (CONFIG SET, start-up).
    pub fn set_limits(&self, normal: Limits, pubsub: Limits) {
        *self.limits.write() = [normal, pubsub];
    }

    /// The limits of `q`'s class.
    fn limits_for(&self, q: &Subscriber) -> Limits {
        self.limits.read()[usize::from(q.is_subscribed())]
    }

    /// Sends one invalidation to tracking client `id` (or its redirect target).
    fn send(&self, id: u64, t: &Tracker, keys: Option<&[&[u8]]>) {
        let null: &[u8] = if t.resp3 { b"_\r\n" } else { b"$-1\r\n" };
        let target = if t.opts.redirect != 0 {
            t.opts.redirect
        } else {
            id
        };
        let queue = self.queues.read().get(&target).and_then(Weak::upgrade);
        let Some(q) = queue else {
            if t.opts.redirect != 0 {
                t.broken.store(true, Relaxed);
                // Tell the tracking client its redirect is gone (RESP3 only, as Redis).
                if t.resp3 {
                    if let Some(own) = self.queues.read().get(&id).and_then(Weak::upgrade) {
                        let mut m = b">2\r\n$21\r\ntracking-redir-broken\r\n:".to_vec();
                        m.extend_from_slice(itoa::Buffer::new().format(t.opts.redirect).as_bytes());
                        m.extend_from_slice(b"\r\n");
                        own.push_frame(m.into(), &self.limits_for(&own));
                    }
                }
            }
            return;
        };
        let target_resp3 = q.resp3.load(Relaxed);
        if !target_resp3 && (t.opts.redirect == 0 || !q.is_subscribed()) {
            // RESP2 has no pushes: only a subscribed redirect target can receive them.
            return;
        }
        // Invalidations count against the target's output buffer like any reply (the
        // normal class has no limit by default, as in Redis).
        q.push_frame(
            message(target_resp3, keys, null).into(),
            &self.limits_for(&q),
        );
    }

    /// INFO figures: tracking clients, keys, items, prefixes.
    pub fn figures(&self) -> (u64, u64, u64, u64) {
        (
            self.count.load(Relaxed),
            self.keys.load(Relaxed),
            self.items.load(Relaxed),
            self.prefixes.read().len() as u64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_redis_shaped() {
        assert_eq!(
            message(true, Some(&[b"k"]), b"_\r\n"),
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"
        );
        assert_eq!(
            message(false, None, b"$-1\r\n"),
            b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"
        );
    }

    #[test]
    fn prefixes_may_not_overlap() {
        let v = |s: &[&str]| s.iter().map(|x| x.as_bytes().to_vec()).collect::<Vec<_>>();
        assert!(prefix_conflict(&v(&["a"]), &v(&["b"])).is_ok());
        assert!(prefix_conflict(&v(&["a"]), &v(&["ab"])).is_err());
        assert!(prefix_conflict(&[], &v(&["ab", "a"])).is_err());
        assert!(prefix_conflict(&v(&["a"]), &v(&["a"])).is_err());
        assert!(prefix_conflict(&[], &v(&["x", "x"])).is_err());
    }

    #[test]
    fn a_change_forgets_the_key_and_counts_go_back() {
        let t = Tracking::default();
        t.enable(7, true, Options::default());
        t.remember(7, &[b"a", b"b"]);
        t.remember(7, &[b"a"]);
        assert_eq!(t.figures(), (1, 2, 2, 0));
        t.invalidate(b"a", None);
        assert_eq!(t.figures(), (1, 1, 1, 0));
        t.flushed();
        assert_eq!(t.figures(), (1, 0, 0, 0));
        t.disable(7);
        assert_eq!(t.figures(), (0, 0, 0, 0));
    }
}
