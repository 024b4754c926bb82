//! Freeing in the background: UNLINK's big values and FLUSHDB/FLUSHALL ASYNC's shards are
//! dropped off the shard locks, and INFO counts what is pending and what was freed.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

/// Objects being freed in the background by FLUSHALL/FLUSHDB ASYNC, and objects freed so
/// far (INFO `lazyfree_pending_objects`, `lazyfreed_objects`).
pub(super) static LAZYFREE_PENDING: AtomicU64 = AtomicU64::new(0);
pub(super) static LAZYFREED: AtomicU64 = AtomicU64::new(0);

/// Below this many keys, freeing in the background costs more than it saves (Redis's
/// `LAZYFREE_THRESHOLD`).
pub(crate) const LAZYFREE_THRESHOLD: usize = 64;

/// Something dropped on the lazy-free thread, and how many objects it counts for.
type Garbage = (Box<dyn Send>, u64);

/// Drops `garbage` (worth `objects` in INFO's `lazyfree_pending_objects` /
/// `lazyfreed_objects`) on a long-lived background thread, so that freeing a big value
/// (UNLINK) does not hold its shard's lock; drops it right here if that thread cannot be
/// started.
pub(crate) fn free_lazily<T: Send + 'static>(garbage: T, objects: u64) {
    static QUEUE: std::sync::OnceLock<Option<std::sync::mpsc::Sender<Garbage>>> =
        std::sync::OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Garbage>();
        std::thread::Builder::new()
            .name("kiln-lazyfree".into())
            .spawn(move || {
                for (g, n) in rx {
                    drop(g);
                    LAZYFREE_PENDING.fetch_sub(n, Relaxed);
                    LAZYFREED.fetch_add(n, Relaxed);
                }
            })
            .ok()
            .map(|_| tx)
    });
    if let Some(tx) = queue {
        LAZYFREE_PENDING.fetch_add(objects, Relaxed);
        if let Err(e) = tx.send((Box::new(garbage), objects)) {
            // The thread is gone: the value comes back in the error and is dropped here.
            LAZYFREE_PENDING.fetch_sub(objects, Relaxed);
            drop(e);
        }
    }
}
