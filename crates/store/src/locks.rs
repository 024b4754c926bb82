//! The one way to lock shards: a [`LockSet`].
//!
//! A shard is reachable only through a lock set (`Db`'s shards are private to `storage`),
//! and a lock set knows what it holds. That makes the two ways of deadlocking on shard
//! mutexes impossible by construction:
//!
//! * **Waiting on a lock the same code path already holds** (a command run inside EXEC
//!   locking its shard again). A lock set hands out a shard it holds instead of locking it
//!   again; and a thread may hold shard locks through one lock set only. Whatever locks
//!   shards on a thread that already holds some through another set (which could only be a
//!   bug) never waits: it try-locks, and in debug builds it panics, so the tests find it.
//! * **Two threads waiting on each other** (ABBA). A lock set waits for a shard only when
//!   its id is above every id it holds: all sets climb the same order, so no cycle can form.
//!   Below that it try-locks and reports failure rather than wait. Commands plan every shard
//!   they need before they start (`command::plan`), so for them that fallback never fires.
//!
//! Shard ids are `db * SHARDS + index`, the global order.

use std::cell::Cell;

use parking_lot::MutexGuard;
use smallvec::SmallVec;

use super::keyspace::{Keyspace, Shard, SHARDS};

thread_local! {
    /// Shard guards held by lock sets on this thread (at most one set holds any).
    static HELD: Cell<usize> = const { Cell::new(0) };
}

/// Shard locks held together, sorted by id.
pub struct LockSet<'a> {
    ks: &'a Keyspace,
    held: SmallVec<[(u32, MutexGuard<'a, Shard>); 4]>,
}

/// A shard lock id: its database and its index in the database.
#[inline]
pub fn shard_id(db: usize, idx: usize) -> u32 {
    (db * SHARDS + idx) as u32
}

impl<'a> LockSet<'a> {
    pub fn new(ks: &'a Keyspace) -> Self {
        Self {
            ks,
            held: SmallVec::new(),
        }
    }

    /// The keyspace this set locks.
    pub fn keyspace(&self) -> &'a Keyspace {
        self.ks
    }

    /// Number of shard ids (every shard of every database).
    pub fn id_count(&self) -> u32 {
        (self.ks.dbs.len() * SHARDS) as u32
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Whether every shard of the keyspace is held.
    pub fn holds_all(&self) -> bool {
        self.held.len() == self.id_count() as usize
    }

    /// Whether shard `id` is held.
    pub fn holds(&self, id: u32) -> bool {
        self.held.binary_search_by_key(&id, |x| x.0).is_ok()
    }

    /// The held shard `id`, if held.
    pub fn get(&mut self, id: u32) -> Option<&mut Shard> {
        let i = self.held.binary_search_by_key(&id, |x| x.0).ok()?;
        Some(&mut self.held[i].1)
    }

    /// Locks every id of `ids` (any order, duplicates allowed) that is not held yet. Ids
    /// above everything held are waited for; others are try-locked (see the module docs).
    /// False if some shard could not be taken without risking a deadlock.
    pub fn acquire(&mut self, ids: &mut [u32]) -> bool {
        if let [id] = ids {
            return self.lock(*id).is_some();
        }
        ids.sort_unstable();
        let mut ok = true;
        let mut last = u32::MAX;
        for &id in ids.iter() {
            if id != last {
                last = id;
                ok &= self.lock(id).is_some();
            }
        }
        ok
    }

    /// Locks every shard of every database (the snapshot point, whole-keyspace commands).
    pub fn acquire_all(&mut self) -> bool {
        let mut ids: Vec<u32> = (0..self.id_count()).collect();
        self.acquire(&mut ids)
    }

    /// Shard `id`: held, or locked now. Waits only where waiting cannot deadlock; `None`
    /// when the shard is busy and waiting could.
    pub fn lock(&mut self, id: u32) -> Option<&mut Shard> {
        let pos = match self.held.binary_search_by_key(&id, |x| x.0) {
            Ok(i) => return Some(&mut self.held[i].1),
            Err(pos) => pos,
        };
        let m = self.mutex(id);
        // Another lock set on this thread holds shards: waiting could be waiting on
        // ourselves. A bug wherever it happens; tests run debug builds and catch it.
        let foreign = HELD.with(|h| h.get()) > self.held.len();
        debug_assert!(
            !foreign,
            "a second lock set locks shard {id} on a thread that holds shard locks"
        );
        let g = if pos == self.held.len() && !foreign {
            m.lock()
        } else {
            m.try_lock()?
        };
        HELD.with(|h| h.set(h.get() + 1));
        if pos == self.held.len() {
            // The common case (ids come in ascending order): no shifting.
            self.held.push((id, g));
        } else {
            self.held.insert(pos, (id, g));
        }
        Some(&mut self.held[pos].1)
    }

    /// Runs `f` on shard `id`: the held one, or one locked for the call only (when the set
    /// holds nothing above it). `None` if it could not be taken (see [`LockSet::lock`]).
    pub fn with<R>(&mut self, id: u32, f: impl FnOnce(&mut Shard) -> R) -> Option<R> {
        let above_all = match self.held.binary_search_by_key(&id, |x| x.0) {
            Ok(i) => return Some(f(&mut self.held[i].1)),
            Err(pos) => pos == self.held.len(),
        };
        let foreign = HELD.with(|h| h.get()) > self.held.len();
        debug_assert!(
            !foreign,
            "a second lock set locks shard {id} on a thread that holds shard locks"
        );
        // Taken for the call only (the cron's and the snapshot writer's steps): the guard
        // never joins the held list, which stays as it was.
        let m = self.mutex(id);
        let mut g = if above_all && !foreign {
            m.lock()
        } else {
            m.try_lock()?
        };
        HELD.with(|h| h.set(h.get() + 1));
        let r = f(&mut g);
        drop(g);
        HELD.with(|h| h.set(h.get() - 1));
        Some(r)
    }

    /// Releases shard `id` if held.
    pub fn unlock(&mut self, id: u32) {
        if let Ok(i) = self.held.binary_search_by_key(&id, |x| x.0) {
            drop(self.held.remove(i));
            HELD.with(|h| h.set(h.get() - 1));
        }
    }

    /// Hands over every held guard (the caller drops them), leaving the set empty.
    pub fn release(&mut self) -> SmallVec<[(u32, MutexGuard<'a, Shard>); 4]> {
        let n = self.held.len();
        HELD.with(|h| h.set(h.get() - n));
        std::mem::take(&mut self.held)
    }

    /// The held guards, in id order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut Shard)> + use<'_, 'a> {
        self.held.iter_mut().map(|(id, g)| (*id, &mut **g))
    }

    /// The held shard `id`, shared (several at once, next to other borrows).
    pub fn peek(&self, id: u32) -> Option<&Shard> {
        let i = self.held.binary_search_by_key(&id, |x| x.0).ok()?;
        Some(&self.held[i].1)
    }

    /// Runs `f` on every shard of the keyspace in order: the held ones, and the others each
    /// locked for its call only (whole-keyspace work: a flush, a reload, a snapshot's
    /// writer). False if some shard could not be visited (see [`LockSet::lock`]).
    pub fn each(&mut self, mut f: impl FnMut(&mut Shard)) -> bool {
        (0..self.id_count()).all(|id| self.with(id, &mut f).is_some())
    }

    fn mutex(&self, id: u32) -> &'a parking_lot::Mutex<Shard> {
        let (db, idx) = (id as usize / SHARDS, id as usize % SHARDS);
        self.ks.dbs[db].shard_mutex(idx)
    }
}

impl Drop for LockSet<'_> {
    fn drop(&mut self) {
        let n = self.held.len();
        if n > 0 {
            HELD.with(|h| h.set(h.get() - n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_shard_is_handed_out_not_locked_again() {
        let ks = Keyspace::new(2);
        let mut a = LockSet::new(&ks);
        assert!(a.lock(shard_id(0, 5)).is_some());
        // Locking it again (EXEC running a command on a shard it holds) does not wait.
        assert!(a.lock(shard_id(0, 5)).is_some());
        assert!(a.with(shard_id(0, 5), |_| ()).is_some());
        assert!(a.holds(shard_id(0, 5)));
        // Below the highest held: try-locked, and free here.
        assert!(a.lock(shard_id(0, 1)).is_some());
        assert_eq!(a.release().len(), 2);
        assert_eq!(HELD.with(|h| h.get()), 0);
    }

    #[test]
    fn below_the_highest_held_a_busy_shard_is_refused_not_waited_for() {
        let ks = Keyspace::new(1);
        let mut a = LockSet::new(&ks);
        assert!(a.lock(shard_id(0, 3)).is_some());
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut b = LockSet::new(&ks);
                assert!(b.lock(shard_id(0, 9)).is_some());
                // b holds 9 and a holds 3: b waiting on 3 would be fine order-wise (a
                // never waits on 9), but 3 is busy below nothing b holds... b's id 3 is
                // below 9, so b refuses rather than wait.
                assert!(b.lock(shard_id(0, 3)).is_none());
            });
        });
        assert!(a.acquire_all());
        assert!(a.holds_all());
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "second lock set")]
    fn a_second_lock_set_on_one_thread_is_caught() {
        let ks = Keyspace::new(1);
        let mut a = LockSet::new(&ks);
        a.lock(shard_id(0, 1));
        let mut b = LockSet::new(&ks);
        b.lock(shard_id(0, 2));
    }
}
