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
//!
//! Above the shards sits the [`Gate`], lock number "minus one": a lock set passes it
//! (shared, one counter of its thread's own) before its first shard, and leaves when it
//! holds none again. A script, which cannot say in advance which keys it will touch, takes
//! the gate whole instead ([`LockSet::exclusive`]): it waits for every other lock set to
//! let go, holding nothing itself, and then owns every shard. Nothing waits for the gate
//! while holding a shard, so the gate adds no cycle.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex, MutexGuard};
use smallvec::SmallVec;

use super::keyspace::{Keyspace, Shard, SHARDS};

thread_local! {
    /// Shard guards held by lock sets on this thread (at most one set holds any).
    static HELD: Cell<usize> = const { Cell::new(0) };
    /// This thread's counter in every [`Gate`].
    static SLOT: usize = NEXT_SLOT.fetch_add(1, SeqCst) % SLOTS;
    /// Gates this thread is inside (by address): how many of its lock sets entered each
    /// shared, or `usize::MAX` for the gate it holds whole.
    static INSIDE: std::cell::RefCell<Vec<(usize, usize)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// How a lock set passed the gate.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pass {
    /// Counted on the thread's slot.
    Counted,
    /// On a thread that holds the gate whole (a script's own nested lock set): not counted.
    Owner,
}

/// Gate counters: threads beyond this many share them (counters, not flags, so sharing is
/// correct, only slower).
const SLOTS: usize = 64;
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// The gate above every shard: shared by every lock set that holds shards, or held whole by
/// one (a script). A brlock: each thread enters through a counter of its own, so the shared
/// side costs one uncontended atomic add and a load, and commands on different cores do not
/// bounce one cache line between them.
///
/// Entering shared bumps the thread's counter, then checks `exclusive`; taking it whole
/// sets `exclusive`, then waits until every counter is zero. Both sides use sequentially
/// consistent operations, so at least one of them sees the other.
pub struct Gate {
    /// One lock set holds (or is about to hold) the gate whole.
    exclusive: AtomicBool,
    /// Serialises the exclusive holders; its guard lives in the lock set holding the gate.
    owner: Mutex<()>,
    slots: Box<[CachePadded<AtomicUsize>]>,
    /// Sleeping on either side (readers waiting for the owner to finish, the owner waiting
    /// for readers to drain).
    park: Mutex<()>,
    wake: Condvar,
    /// The owner has run for too long (a script past `busy-reply-threshold`): entrants that
    /// may be refused stop waiting (Redis answers them `-BUSY`).
    busy: Arc<AtomicBool>,
}

/// [`LockSet::enter`] was refused: the gate is held whole by a script that is past its
/// time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    pub fn new() -> Self {
        Self {
            exclusive: AtomicBool::new(false),
            owner: Mutex::new(()),
            slots: (0..SLOTS)
                .map(|_| CachePadded::new(AtomicUsize::new(0)))
                .collect(),
            park: Mutex::new(()),
            wake: Condvar::new(),
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Marks the gate's owner as past its time limit (or not): waiting entrants that may be
    /// refused are, from now on.
    pub fn set_busy(&self, on: bool) {
        self.busy.store(on, SeqCst);
        if on {
            let _g = self.park.lock();
            self.wake.notify_all();
        }
    }

    /// The busy flag itself, for the owner's time keeper (a script's instruction hook sets
    /// it; entrants waiting at the gate look at it at least every 100 ms).
    pub fn busy_flag(&self) -> Arc<AtomicBool> {
        self.busy.clone()
    }

    /// Whether the gate is held (or about to be held) whole: a script runs alone.
    pub fn is_held(&self) -> bool {
        self.exclusive.load(SeqCst)
    }

    /// Whether the gate is held whole by an owner past its time limit.
    pub fn is_busy(&self) -> bool {
        self.busy.load(SeqCst)
    }

    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// This thread's standing with the gate: lock sets inside it shared, or `usize::MAX`
    /// when the thread holds it whole.
    fn inside(&self) -> usize {
        let me = self.addr();
        INSIDE.with(|i| i.borrow().iter().find(|e| e.0 == me).map_or(0, |e| e.1))
    }

    fn set_inside(&self, n: usize) {
        let me = self.addr();
        INSIDE.with(|i| {
            let mut i = i.borrow_mut();
            match i.iter().position(|e| e.0 == me) {
                Some(p) if n == 0 => {
                    i.swap_remove(p);
                }
                Some(p) => i[p].1 = n,
                None if n > 0 => i.push((me, n)),
                None => {}
            }
        });
    }

    /// Enters shared for this thread; waits while the gate is held whole, or returns
    /// [`Busy`] if `refusable` and the owner is past its limit. A thread already inside
    /// (one of its lock sets entered and a nested one enters too: SAVE's writer under the
    /// command's set) does not wait: the owner-to-be waits for it anyway, so waiting here
    /// would be waiting on itself. Nor does the owner's own thread.
    fn enter(&self, refusable: bool) -> Result<Pass, Busy> {
        let slot = &self.slots[SLOT.with(|s| *s)];
        match self.inside() {
            usize::MAX => return Ok(Pass::Owner),
            0 => {}
            n => {
                slot.fetch_add(1, SeqCst);
                self.set_inside(n + 1);
                return Ok(Pass::Counted);
            }
        }
        loop {
            slot.fetch_add(1, SeqCst);
            if !self.exclusive.load(SeqCst) {
                self.set_inside(1);
                return Ok(Pass::Counted);
            }
            // Step back out of the owner's way, and tell it.
            self.leave_slot(slot);
            // Owners (scripts) are mostly short: spin a little before sleeping.
            if spin_until(|| !self.exclusive.load(SeqCst)) {
                continue;
            }
            let mut g = self.park.lock();
            while self.exclusive.load(SeqCst) {
                if refusable && self.busy.load(SeqCst) {
                    return Err(Busy);
                }
                // The timeout is a safety net only: both sides notify under `park`.
                self.wake.wait_for(&mut g, Duration::from_millis(100));
            }
        }
    }

    fn leave(&self, pass: Pass) {
        if pass == Pass::Counted {
            self.set_inside(self.inside().saturating_sub(1));
            self.leave_slot(&self.slots[SLOT.with(|s| *s)]);
        }
    }

    fn leave_slot(&self, slot: &AtomicUsize) {
        slot.fetch_sub(1, SeqCst);
        if self.exclusive.load(SeqCst) {
            let _g = self.park.lock();
            self.wake.notify_all();
        }
    }

    /// Takes the gate whole: waits for the other owner, if any, then for every shared
    /// entrant to leave. The caller holds no shard.
    fn take(&self) -> MutexGuard<'_, ()> {
        assert_eq!(
            self.inside(),
            0,
            "the gate is taken whole by a thread inside it (it would wait for itself)"
        );
        let owner = self.owner.lock();
        self.exclusive.store(true, SeqCst);
        // Commands hold shards for microseconds: spin a little before sleeping.
        if spin_until(|| self.slots.iter().all(|s| s.load(SeqCst) == 0)) {
            self.set_inside(usize::MAX);
            return owner;
        }
        let mut g = self.park.lock();
        while self.slots.iter().any(|s| s.load(SeqCst) != 0) {
            self.wake.wait_for(&mut g, Duration::from_millis(100));
        }
        drop(g);
        self.set_inside(usize::MAX);
        owner
    }

    fn give_back(&self, owner: MutexGuard<'_, ()>) {
        self.set_inside(0);
        self.busy.store(false, SeqCst);
        self.exclusive.store(false, SeqCst);
        drop(owner);
        let _g = self.park.lock();
        self.wake.notify_all();
    }
}

/// Spins (then yields) while `done` is false, for a short while: true once it held.
fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    for i in 0..64 {
        if done() {
            return true;
        }
        if i < 48 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    done()
}

/// Where a lock set stands with its keyspace's [`Gate`].
enum World<'a> {
    /// Not entered: holds no shard.
    Out,
    /// Entered shared (holds shards, or is about to).
    Shared(Pass),
    /// Holds the gate whole: every shard is free for it to take.
    Exclusive(MutexGuard<'a, ()>),
}

/// Shard locks held together, sorted by id.
pub struct LockSet<'a> {
    ks: &'a Keyspace,
    held: SmallVec<[(u32, MutexGuard<'a, Shard>); 4]>,
    world: World<'a>,
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
            world: World::Out,
        }
    }

    /// Enters the gate before the set's first shard (the dispatcher does, so that a client
    /// command can be refused with `-BUSY` while a script holds the gate too long). Shard
    /// locks enter by themselves, never refused; this only makes the wait refusable.
    pub fn enter(&mut self, refusable: bool) -> Result<(), Busy> {
        if matches!(self.world, World::Out) {
            self.world = World::Shared(self.ks.gate.enter(refusable)?);
        }
        Ok(())
    }

    /// Takes the gate whole, for a script: afterwards every shard is this set's to lock, in
    /// any order, without waiting on anyone. Holding nothing yet is the caller's promise
    /// (checked); a set that holds the gate keeps it until [`LockSet::release`] or drop.
    pub fn exclusive(&mut self) {
        assert!(
            self.held.is_empty() && matches!(self.world, World::Out),
            "the gate is taken whole before any shard"
        );
        debug_assert_eq!(
            HELD.with(|h| h.get()),
            0,
            "the gate is taken whole by a thread holding shard locks"
        );
        self.world = World::Exclusive(self.ks.gate.take());
    }

    /// Whether the set holds the gate whole.
    pub fn is_exclusive(&self) -> bool {
        matches!(self.world, World::Exclusive(_))
    }

    /// Marks the gate's exclusive owner (this set) as past its time limit, or not.
    pub fn set_busy(&self, on: bool) {
        if self.is_exclusive() {
            self.ks.gate.set_busy(on);
        }
    }

    /// Leaves the gate if the set entered it shared and holds no shard any more. A set
    /// holding it whole keeps it until [`LockSet::release`] or drop.
    fn maybe_leave(&mut self) {
        if let (true, World::Shared(pass)) = (self.held.is_empty(), &self.world) {
            let pass = *pass;
            self.world = World::Out;
            self.ks.gate.leave(pass);
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
        if matches!(self.world, World::Out) {
            // Holds nothing, so waiting at the gate cannot deadlock; never refused.
            let _ = self.enter(false);
        }
        // Another lock set on this thread holds shards: waiting could be waiting on
        // ourselves. A bug wherever it happens; tests run debug builds and catch it.
        let foreign = HELD.with(|h| h.get()) > self.held.len();
        debug_assert!(
            !foreign,
            "a second lock set locks shard {id} on a thread that holds shard locks"
        );
        let g = if pos == self.held.len() && !foreign {
            m.lock()
        } else if let Some(g) = m.try_lock() {
            g
        } else {
            self.maybe_leave();
            return None;
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
        if matches!(self.world, World::Out) {
            let _ = self.enter(false);
        }
        let g = if above_all && !foreign {
            Some(m.lock())
        } else {
            m.try_lock()
        };
        let r = g.map(|mut g| {
            HELD.with(|h| h.set(h.get() + 1));
            let r = f(&mut g);
            drop(g);
            HELD.with(|h| h.set(h.get() - 1));
            r
        });
        self.maybe_leave();
        r
    }

    /// Releases shard `id` if held.
    pub fn unlock(&mut self, id: u32) {
        if let Ok(i) = self.held.binary_search_by_key(&id, |x| x.0) {
            drop(self.held.remove(i));
            HELD.with(|h| h.set(h.get() - 1));
            self.maybe_leave();
        }
    }

    /// Hands over every held guard (the caller drops them), leaving the set empty. The gate
    /// is left once the guards are gone (see [`Released`]).
    pub fn release(&mut self) -> Released<'a> {
        let n = self.held.len();
        HELD.with(|h| h.set(h.get() - n));
        Released {
            guards: std::mem::take(&mut self.held),
            world: std::mem::replace(&mut self.world, World::Out),
            gate: &self.ks.gate,
        }
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

/// Guards handed over by [`LockSet::release`]: the shards are unlocked, then the gate left,
/// when this is dropped (so the caller can still read the shards in between).
pub struct Released<'a> {
    pub guards: SmallVec<[(u32, MutexGuard<'a, Shard>); 4]>,
    world: World<'a>,
    gate: &'a Gate,
}

impl Released<'_> {
    pub fn len(&self) -> usize {
        self.guards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }
}

impl Drop for Released<'_> {
    fn drop(&mut self) {
        self.guards.clear();
        match std::mem::replace(&mut self.world, World::Out) {
            World::Out => {}
            World::Shared(pass) => self.gate.leave(pass),
            World::Exclusive(owner) => self.gate.give_back(owner),
        }
    }
}

impl Drop for LockSet<'_> {
    fn drop(&mut self) {
        let n = self.held.len();
        if n > 0 {
            HELD.with(|h| h.set(h.get() - n));
        }
        self.held.clear();
        match std::mem::replace(&mut self.world, World::Out) {
            World::Out => {}
            World::Shared(pass) => self.ks.gate.leave(pass),
            World::Exclusive(owner) => self.ks.gate.give_back(owner),
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
    fn the_gate_taken_whole_waits_for_holders_and_holds_off_entrants() {
        use std::sync::mpsc;
        let ks = Keyspace::new(1);
        let mut a = LockSet::new(&ks);
        assert!(a.lock(shard_id(0, 7)).is_some());
        std::thread::scope(|s| {
            let (took, got) = mpsc::channel();
            let (finish, finished) = mpsc::channel::<()>();
            let ks = &ks;
            let owner = s.spawn(move || {
                let mut b = LockSet::new(ks);
                b.exclusive();
                took.send(()).unwrap();
                // Every shard is free for the owner, in any order.
                assert!(b.lock(shard_id(0, 9)).is_some());
                assert!(b.lock(shard_id(0, 7)).is_some());
                assert!(b.lock(shard_id(0, 1)).is_some());
                b.set_busy(true);
                took.send(()).unwrap();
                // Until told to finish (after a refused entrant was seen).
                finished.recv().unwrap();
                assert!(b.is_exclusive());
            });
            // The owner announced itself and waits for `a` to leave.
            while !ks.gate.exclusive.load(SeqCst) {
                std::thread::yield_now();
            }
            assert!(
                got.try_recv().is_err(),
                "took the gate while a shard was held"
            );
            drop(a.release());
            got.recv().unwrap();
            got.recv().unwrap();
            // A refusable entrant is refused while the owner is busy; a plain one waits.
            let mut c = LockSet::new(ks);
            assert_eq!(c.enter(true), Err(Busy));
            let waiter = s.spawn(move || {
                let mut d = LockSet::new(ks);
                assert!(d.lock(shard_id(0, 7)).is_some());
            });
            finish.send(()).unwrap();
            owner.join().unwrap();
            waiter.join().unwrap();
            assert!(!ks.gate.is_busy());
        });
        assert!(ks.gate.slots.iter().all(|s| s.load(SeqCst) == 0));
    }

    #[test]
    fn a_nested_lock_set_passes_where_its_thread_is_inside_already() {
        use std::sync::mpsc;
        let ks = Keyspace::new(1);
        let mut outer = LockSet::new(&ks);
        outer.enter(false).unwrap();
        std::thread::scope(|s| {
            let (took, got) = mpsc::channel();
            let ks = &ks;
            s.spawn(move || {
                let mut owner = LockSet::new(ks);
                owner.exclusive();
                // The owner's own nested lock set passes too.
                assert!(LockSet::new(ks).with(shard_id(0, 3), |_| ()).is_some());
                took.send(()).unwrap();
            });
            while !ks.gate.exclusive.load(SeqCst) {
                std::thread::yield_now();
            }
            // An owner waits for `outer`: a second set on this thread must not wait for it
            // (SAVE's writer under the command's set).
            assert!(LockSet::new(ks).with(shard_id(0, 5), |_| ()).is_some());
            assert!(got.try_recv().is_err());
            drop(outer);
            got.recv().unwrap();
        });
        assert_eq!(ks.gate.inside(), 0);
        assert!(ks.gate.slots.iter().all(|s| s.load(SeqCst) == 0));
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
