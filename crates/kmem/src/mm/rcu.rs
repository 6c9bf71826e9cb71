//! Read-copy update (kernel/rcu/tree.c, include/linux/rcupdate.h): read-side sections, grace
//! periods driven by the CPUs' quiescent states, `call_rcu` callbacks and `rcu_barrier`.
//!
//! # Model
//! kmem's RCU is Linux's non-preemptible flavour (`CONFIG_PREEMPT_RCU=n`): a read-side section
//! ([`MemoryModel::rcu_read_lock`], an [`RcuReadGuard`]) is a CPU section — preemption off —
//! and may not block. The grace-period core is [`kds::rcu`]: each CPU has an [`RcuCpu`]
//! counter (Linux's `struct rcu_data`; one per possible CPU, taken from memblock at boot like
//! the per-CPU areas), the machine one [`RcuGp`] (`rcu_state.gp_seq`). A CPU is quiescent
//! outside read-side sections: the end of its outermost section is its quiescent state, and a
//! CPU going offline (a hosted thread exiting: [`MemoryModel::cpu_dead`]) can only do so
//! outside one. A grace period ends once every CPU that was inside a section when it began
//! has passed a quiescent state; whoever polls ([`MemoryModel::synchronize_rcu`],
//! [`MemoryModel::rcu_barrier`], [`MemoryModel::poll_state_synchronize_rcu`], `call_rcu`,
//! kfree_rcu's monitor, a CPU going offline) drives the grace-period machinery, which
//! never waits. On the bare-metal platform (one CPU, sections with interrupts off) a grace
//! period requested outside a section ends at once, as `rcu_blocking_is_gp()` says in Linux.
//!
//! # Callbacks
//! [`MemoryModel::call_rcu`] queues an [`RcuHead`] embedded in the caller's object on the
//! machine's callback list, tagged with the grace period it needs (the segments of
//! `rcu_segcblist`: *done*, *wait* — one cookie —, *next* — the latest cookie). Callbacks are
//! invoked (`rcu_do_batch`) in the order they were queued, one invoker at a time, outside every
//! lock and CPU section, at the invocation points — where Linux would run `RCU_SOFTIRQ`:
//! [`MemoryModel::rcu_core`], the end of [`MemoryModel::synchronize_rcu`] and
//! [`MemoryModel::rcu_barrier`], and a CPU going offline. Like a softirq handler, a callback
//! must not block: no `synchronize_rcu`, no `rcu_barrier`, no lock its queuer may hold while
//! reaching an invocation point. [`MemoryModel::rcu_barrier`] queues a callback of its own
//! and drives and invokes until it has run: then every callback queued before it has run.
//!
//! # Invariants
//! - `cpus` points at `ncpus` (= possible CPUs) [`RcuCpu`]s in memblock memory that never
//!   moves; entry `c` changes only inside a CPU section on `c` (its owner).
//! - Every queued head is on exactly one segment; the *wait* segment's cookie is not newer
//!   than the *next* segment's; a callback on *done* has its grace period over.
//! - `invoking` is set exactly while one thread runs `rcu_do_batch`.
//!
//! # Locking
//! `rcu_cblist_lock` (`RcuState::cbs`) is a leaf: taken by `call_rcu`, `rcu_barrier` and the
//! invoker to move segments, under any lock, and nothing (no printk) is taken under it. The
//! grace-period driver's try-lock (kds) is innermost and never waits. A read-side section is
//! the `cpu_section` class. `synchronize_rcu` and `rcu_barrier` wait, so they take no lock
//! while waiting and must be called under none (Linux's `might_sleep()`); called inside a
//! read-side section they print Linux's warning and return without waiting (docs/LOCKING.md).

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kds::rcu::{RcuCookie, RcuCpu, RcuDomain, RcuGp};

use super::MemoryModel;
use crate::locking::Lock;
use crate::platform::{CpuGuard, LogLevel, Platform};

/// `struct callback_head` (`rcu_head`): embedded in an object to queue it with
/// [`MemoryModel::call_rcu`].
#[repr(C)]
#[derive(Debug)]
pub struct RcuHead {
    next: *mut RcuHead,
    func: Option<RcuCallback>,
}

impl RcuHead {
    /// An unqueued head.
    pub const fn new() -> Self {
        RcuHead {
            next: ptr::null_mut(),
            func: None,
        }
    }
}

impl Default for RcuHead {
    fn default() -> Self {
        Self::new()
    }
}

/// `rcu_callback_t`: invoked with the head once a grace period has passed.
///
/// # Safety
/// Called once per `call_rcu`, with the head that was queued, outside every lock.
pub type RcuCallback = unsafe fn(head: NonNull<RcuHead>);

/// A run of queued heads, linked through `next`, and the cookie they wait for.
struct Seg {
    head: *mut RcuHead,
    tail: *mut RcuHead,
    cookie: RcuCookie,
}

impl Seg {
    const EMPTY: Seg = Seg {
        head: ptr::null_mut(),
        tail: ptr::null_mut(),
        cookie: RcuCookie(0),
    };
    fn is_empty(&self) -> bool {
        self.head.is_null()
    }
    fn push(&mut self, h: *mut RcuHead) {
        if self.tail.is_null() {
            self.head = h;
        } else {
            // SAFETY: `tail` is a queued head, owned by the list under its lock.
            unsafe { (*self.tail).next = h };
        }
        self.tail = h;
    }
    fn append(&mut self, other: Seg) {
        if other.is_empty() {
            return;
        }
        if self.tail.is_null() {
            self.head = other.head;
        } else {
            // SAFETY: `tail` is non-null here, so it is the last head queued on this segment, owned
            // by the list under its lock (`&mut self`); `other`'s heads now belong to this segment
            // too.
            unsafe { (*self.tail).next = other.head };
        }
        self.tail = other.tail;
    }
}

/// The callback list (`rcu_segcblist`), behind `rcu_cblist_lock`.
struct CbList {
    done: Seg,
    wait: Seg,
    next: Seg,
}

// SAFETY: the heads are owned by the list while queued (the `call_rcu` contract); moving the
// list between threads moves that ownership.
unsafe impl Send for CbList {}

impl CbList {
    /// `rcu_segcblist_enqueue` + `rcu_accelerate_cbs`.
    fn enqueue(&mut self, h: *mut RcuHead, cookie: RcuCookie) {
        if self.wait.is_empty() && self.next.is_empty() {
            self.wait.cookie = cookie;
            self.wait.push(h);
        } else if self.next.is_empty() && self.wait.cookie == cookie {
            self.wait.push(h);
        } else {
            self.next.cookie = self.next.cookie.max(cookie);
            self.next.push(h);
        }
    }
    /// `rcu_segcblist_advance`: moves what has its grace period over to *done*.
    fn advance(&mut self, gp: &RcuGp) {
        loop {
            if !self.wait.is_empty() && gp.poll_state(self.wait.cookie) {
                let w = core::mem::replace(&mut self.wait, Seg::EMPTY);
                self.done.append(w);
            } else if self.wait.is_empty() && !self.next.is_empty() {
                self.wait = core::mem::replace(&mut self.next, Seg::EMPTY);
            } else {
                return;
            }
        }
    }
}

/// Counters of [`MemoryModel::rcu_stats`] (the old `/sys/kernel/debug/rcu/rcugp` and
/// `rcudata` files).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RcuStats {
    /// `rcu_state.gp_seq`.
    pub gp_seq: u64,
    /// Grace periods completed.
    pub completed: u64,
    /// Callbacks queued with `call_rcu` (barrier callbacks included).
    pub cbs_queued: u64,
    /// Callbacks invoked.
    pub cbs_invoked: u64,
    /// `rcu_barrier` calls.
    pub barriers: u64,
}

/// The machine's RCU state (`rcu_state` and the per-CPU `rcu_data`). See the module docs.
pub struct RcuState<R: lock_api::RawMutex> {
    gp: RcuGp,
    cpus: *const RcuCpu,
    ncpus: usize,
    cbs: Lock<R, CbList>,
    invoking: AtomicBool,
    queued: AtomicU64,
    invoked: AtomicU64,
    barriers: AtomicU64,
}

// SAFETY: `cpus` points at per-CPU counters in memblock memory owned by the machine, used only
// through atomics; every other field is Send + Sync by itself.
unsafe impl<R: lock_api::RawMutex + Send + Sync> Send for RcuState<R> {}
// SAFETY: shared use only reads `cpus` and updates the per-CPU counters through atomics; the other
// fields are Sync (R: Sync), so concurrent `&RcuState` use is race-free.
unsafe impl<R: lock_api::RawMutex + Send + Sync> Sync for RcuState<R> {}

impl<R: lock_api::RawMutex> RcuState<R> {
    /// The state over `ncpus` per-CPU counters at `cpus`.
    ///
    /// # Safety
    /// `cpus` points at `ncpus` zeroed (or `RcuCpu::new()`) entries that live, unmoved and
    /// used by nothing else, as long as the state.
    pub(crate) unsafe fn new(cpus: *const RcuCpu, ncpus: usize) -> Self {
        RcuState {
            gp: RcuGp::new(),
            cpus,
            ncpus,
            cbs: Lock::new(
                &crate::locking::RCU_CBLIST_LOCK,
                CbList {
                    done: Seg::EMPTY,
                    wait: Seg::EMPTY,
                    next: Seg::EMPTY,
                },
            ),
            invoking: AtomicBool::new(false),
            queued: AtomicU64::new(0),
            invoked: AtomicU64::new(0),
            barriers: AtomicU64::new(0),
        }
    }
    fn cpus(&self) -> &[RcuCpu] {
        if self.cpus.is_null() {
            return &[];
        }
        // SAFETY: `cpus` has `ncpus` live entries (invariant).
        unsafe { core::slice::from_raw_parts(self.cpus, self.ncpus) }
    }
    /// Attaches the callback lock to the validator.
    ///
    /// # Safety
    /// As [`kds::lockdep::Mutex::attach`]: once, before the lock is taken.
    pub(crate) unsafe fn lockdep_attach(&self, ld: *const crate::locking::Lockdep) {
        // SAFETY: forwarded.
        unsafe { self.cbs.attach(ld) };
    }
}

/// A read-side section (`rcu_read_lock()` … `rcu_read_unlock()`): while it lives, nothing
/// unlinked before it began is freed by RCU. Not `Send`: the section belongs to its CPU.
pub struct RcuReadGuard<'a, P: Platform> {
    rcu: &'a RcuCpu,
    _cpu: CpuGuard<'a, P>,
}

impl<P: Platform> Drop for RcuReadGuard<'_, P> {
    fn drop(&mut self) {
        // The quiescent state; the CPU section ends right after (field drop).
        self.rcu.read_unlock();
    }
}

/// Marks `rcu_barrier`'s own callback as run.
///
/// # Safety
/// `head` is the `head` field of a live [`BarrierHead`].
unsafe fn rcu_barrier_callback(head: NonNull<RcuHead>) {
    let b = kds::container_of!(head.as_ptr(), BarrierHead, head);
    // SAFETY: the caller's guarantee; `rcu_barrier` keeps it alive until `done` is set.
    unsafe { (*b).done.store(true, Ordering::Release) };
}

#[repr(C)]
struct BarrierHead {
    head: RcuHead,
    done: AtomicBool,
}

impl<P: Platform> MemoryModel<P> {
    /// `rcu_read_lock`: enters a read-side section on the current CPU (a CPU section, so it
    /// must not block). Sections nest.
    #[track_caller]
    pub fn rcu_read_lock(&self) -> RcuReadGuard<'_, P> {
        let cpu = self.cpu_guard();
        let rcu = &self.rcu.cpus()[cpu.cpu()];
        rcu.read_lock();
        RcuReadGuard { rcu, _cpu: cpu }
    }

    /// `rcu_read_lock_held`: whether the current CPU is inside a read-side section.
    pub fn rcu_read_lock_held(&self) -> bool {
        let g = CpuGuard::new(&self.plat);
        // Inside a section we nest on our own CPU; outside, the CPU is ours alone now, so
        // no other section can be open on it.
        self.rcu.cpus()[g.cpu()].depth() != 0
    }

    /// `get_state_synchronize_rcu`: a cookie for the next grace period (nothing started).
    pub fn get_state_synchronize_rcu(&self) -> RcuCookie {
        self.rcu.gp.snap()
    }

    /// `start_poll_synchronize_rcu`: a cookie, and the grace period is requested.
    pub fn start_poll_synchronize_rcu(&self) -> RcuCookie {
        let c = self.rcu.gp.start_poll();
        self.rcu.gp.drive(self.rcu.cpus());
        c
    }

    /// `start_poll_synchronize_rcu` without driving (atomics only: callable under any lock).
    pub(crate) fn rcu_request_gp(&self) -> RcuCookie {
        self.rcu.gp.start_poll()
    }

    /// Drives the grace-period machinery without invoking callbacks (atomics only).
    pub(crate) fn rcu_core_gp(&self) {
        self.rcu.gp.drive(self.rcu.cpus());
    }

    /// `poll_state_synchronize_rcu`: drives the grace-period machinery, then returns true if
    /// `cookie`'s grace period has ended. Never waits.
    pub fn poll_state_synchronize_rcu(&self, cookie: RcuCookie) -> bool {
        if self.rcu.gp.poll_state(cookie) {
            return true;
        }
        self.rcu.gp.drive(self.rcu.cpus());
        self.rcu.gp.poll_state(cookie)
    }

    /// Reports a blocking RCU call made inside a read-side section (which would wait for
    /// itself); true if so. Linux: "Illegal synchronize_rcu() in RCU read-side critical
    /// section" (lockdep's RCU checking).
    #[track_caller]
    fn rcu_blocking_in_reader(&self, what: &str) -> bool {
        if !self.rcu_read_lock_held() {
            return false;
        }
        let at = core::panic::Location::caller();
        self.taint.warnings.fetch_add(1, Ordering::Relaxed);
        self.printk(
            LogLevel::Warning,
            format_args!("WARNING: suspicious RCU usage"),
        );
        self.printk(
            LogLevel::Warning,
            format_args!(
                "{}:{} Illegal {what}() in RCU read-side critical section!",
                at.file(),
                at.line()
            ),
        );
        true
    }

    /// Waits, driving the machinery, until `cookie`'s grace period has ended.
    fn rcu_wait(&self, cookie: RcuCookie) {
        while !self.poll_state_synchronize_rcu(cookie) {
            self.plat.cpu_relax();
        }
    }

    /// `synchronize_rcu`: waits until every read-side section open at the call has ended,
    /// then runs the callbacks that became ready. Must not be called under a lock; inside a
    /// read-side section it warns and returns at once.
    #[track_caller]
    pub fn synchronize_rcu(&self) {
        if self.rcu_blocking_in_reader("synchronize_rcu") {
            return;
        }
        self.rcu_wait(self.rcu.gp.start_poll());
        self.rcu_do_batch();
    }

    /// `call_rcu`: queues `func(head)` to run after a grace period, at an invocation point
    /// (module docs). Callable under any lock and inside read-side sections.
    ///
    /// # Safety
    /// `head` is valid and unqueued, and stays valid and untouched by the caller until
    /// `func` is called with it; `func` may be called on any thread.
    pub unsafe fn call_rcu(&self, head: NonNull<RcuHead>, func: RcuCallback) {
        let h = head.as_ptr();
        // SAFETY: the caller hands the head over.
        unsafe {
            (*h).next = ptr::null_mut();
            (*h).func = Some(func);
        }
        let cookie = self.rcu.gp.start_poll();
        // Lock order: rcu_cblist_lock (leaf); docs/LOCKING.md.
        self.rcu.cbs.lock().enqueue(h, cookie);
        self.rcu.queued.fetch_add(1, Ordering::Relaxed);
        self.rcu.gp.drive(self.rcu.cpus());
    }

    /// `rcu_do_batch`: invokes the callbacks whose grace period has ended, in queue order,
    /// outside every lock. If another thread is invoking, leaves the work to it.
    fn rcu_do_batch(&self) {
        if self.rcu.invoking.swap(true, Ordering::Acquire) {
            return;
        }
        loop {
            let done = {
                // Lock order: rcu_cblist_lock (leaf); docs/LOCKING.md.
                let mut l = self.rcu.cbs.lock();
                l.advance(&self.rcu.gp);
                core::mem::replace(&mut l.done, Seg::EMPTY)
            };
            if done.is_empty() {
                break;
            }
            let mut h = done.head;
            while !h.is_null() {
                // SAFETY: a queued head, handed over by `call_rcu` and now ours; `next` and
                // `func` are read before the callback may free it.
                let (next, func) = unsafe { ((*h).next, (*h).func) };
                if let Some(f) = func {
                    // SAFETY: once, with the head it was queued with, outside every lock
                    // (the `call_rcu` contract).
                    unsafe { f(NonNull::new_unchecked(h)) };
                }
                self.rcu.invoked.fetch_add(1, Ordering::Relaxed);
                h = next;
            }
        }
        self.rcu.invoking.store(false, Ordering::Release);
    }

    /// `rcu_core` (the `RCU_SOFTIRQ` handler): drives the grace-period machinery and invokes
    /// the callbacks that are ready. Call it where a softirq could run: under no lock.
    pub fn rcu_core(&self) {
        self.rcu.gp.drive(self.rcu.cpus());
        self.rcu_do_batch();
    }

    /// `rcu_barrier`: waits until every callback queued before the call has been invoked.
    /// Must not be called under a lock or from a callback; inside a read-side section it
    /// warns and returns at once.
    #[track_caller]
    pub fn rcu_barrier(&self) {
        if self.rcu_blocking_in_reader("rcu_barrier") {
            return;
        }
        self.rcu.barriers.fetch_add(1, Ordering::Relaxed);
        let b = BarrierHead {
            head: RcuHead::new(),
            done: AtomicBool::new(false),
        };
        let head = NonNull::from(&b.head);
        // SAFETY: `b` lives on this stack until its callback has run (the loop below waits
        // for `done`), and nothing else touches its head meanwhile.
        unsafe { self.call_rcu(head, rcu_barrier_callback) };
        while !b.done.load(Ordering::Acquire) {
            self.rcu_core();
            if !b.done.load(Ordering::Acquire) {
                self.plat.cpu_relax();
            }
        }
    }

    /// RCU's part of a CPU going offline (`rcutree_dead_cpu`): the CPU is outside every
    /// read-side section, a quiescent state; the grace period may end and callbacks run.
    pub(crate) fn rcu_cpu_dead(&self, cpu: usize) {
        debug_assert!(self.rcu.cpus().get(cpu).is_none_or(|c| c.depth() == 0));
        self.rcu_core();
    }

    /// RCU counters.
    pub fn rcu_stats(&self) -> RcuStats {
        let gp_seq = self.rcu.gp.gp_seq();
        RcuStats {
            gp_seq,
            completed: gp_seq >> 2,
            cbs_queued: self.rcu.queued.load(Ordering::Relaxed),
            cbs_invoked: self.rcu.invoked.load(Ordering::Relaxed),
            barriers: self.rcu.barriers.load(Ordering::Relaxed),
        }
    }
}

// SAFETY: a section is a CPU section plus the CPU's counter, so the CPU is the caller's alone
// until `read_unlock` (Platform contract); grace periods are `kds::rcu`'s, whose ordering gives
// the RCU property.
unsafe impl<P: Platform> RcuDomain for MemoryModel<P> {
    fn read_lock(&self) -> usize {
        // Unrecorded by the lock validator: the section spans the caller's calls.
        let cpu = self.plat.cpu_get();
        self.rcu.cpus()[cpu].read_lock();
        cpu
    }
    unsafe fn read_unlock(&self, token: usize) {
        self.rcu.cpus()[token].read_unlock();
        self.plat.cpu_put(token);
    }
    fn start_poll(&self) -> RcuCookie {
        self.start_poll_synchronize_rcu()
    }
    fn poll(&self, cookie: RcuCookie) -> bool {
        self.poll_state_synchronize_rcu(cookie)
    }
}
