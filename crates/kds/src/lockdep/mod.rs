//! A lock dependency validator modelled on Linux's lockdep (kernel/locking/lockdep.c), and a
//! mutex that reports to it.
//!
//! # What it checks
//! Locks belong to *classes* ([`LockClass`], one `static` per kind of lock, like the
//! `lock_class_key` Linux derives from a lock's initialisation site). Whenever a task that holds
//! a lock of class A acquires one of class B, the validator records the dependency A → B, with
//! the site of that first acquisition. A new dependency A → B that closes a cycle (B already
//! reaches A through recorded dependencies) is a possible deadlock even if it never happened:
//! the validator prints Linux's `WARNING: possible circular locking dependency detected`
//! report with the existing chain and the CPU0/CPU1 scenario. It also reports acquiring a class
//! the task already holds (`WARNING: possible recursive locking detected`, unless the class is
//! [`LockClass::new_reentrant`] or the acquisition is nested with a different subclass, as
//! `spin_lock_nested`) and releasing a lock the task does not hold
//! (`WARNING: bad unlock balance detected!`). As in Linux (`debug_locks_off()`), the first
//! report turns the validator off: each problem is reported once and later ones are not
//! looked for.
//!
//! # Data, all fixed-size (no allocation, no globals)
//! One [`Lockdep`] per machine, owned by the caller in memory that does not move:
//! - a registry of [`MAX_LOCKDEP_KEYS`] keys, a key being a class and a subclass;
//! - the dependency graph: one bitset per key of the keys acquired after it, and for each
//!   edge the site of its first acquisition and the site where the held lock had been taken;
//! - [`MAX_LOCKDEP_TASKS`] held-lock stacks of [`MAX_LOCK_DEPTH`] entries. There are no
//!   thread-locals in `no_std`: the caller's [`LockdepHost`] names the current task and a task
//!   claims a stack by a compare-and-swap of its id while it holds a lock.
//!
//! Running out of any of them prints Linux's `BUG: MAX_LOCK_DEPTH too low!` (or
//! `MAX_LOCKDEP_KEYS`, or our `MAX_LOCKDEP_TASKS`) and `turning off the locking correctness
//! validator.`, and turns the validator off; it never panics.
//!
//! # Concurrency
//! A task's held-lock stack is touched only by that task (the one whose id is in the stack's
//! `owner`). Edges are only ever added: a lock-free test of the bitset finds an edge that is
//! already known, and only a new edge takes the graph lock (a test-and-set spinlock of the
//! validator's own, Linux's `lockdep_lock`), which also guards key registration. Reports are
//! printed after the graph lock is released and after the validator is off, so the printing
//! path may itself take locks that report here.
//!
//! # Debug builds only
//! The bookkeeping exists when `debug_assertions` are on (tests, debug builds) or the `lockdep`
//! feature is enabled. Otherwise [`Lockdep`] is an empty struct whose methods do nothing, and
//! [`Mutex`] is exactly a `lock_api::Mutex` (no extra field, no call into the validator).
//!
//! # Use
//! ```
//! use kds::lockdep::{LockClass, Lockdep, LockdepHost, Mutex};
//! static ZONE_LOCK: LockClass = LockClass::new("zone->lock");
//! static LOG_LOCK: LockClass = LockClass::new("printk log");
//! # struct Raw(core::sync::atomic::AtomicBool);
//! # unsafe impl lock_api::RawMutex for Raw {
//! #     const INIT: Self = Raw(core::sync::atomic::AtomicBool::new(false));
//! #     type GuardMarker = lock_api::GuardSend;
//! #     fn lock(&self) { while !self.try_lock() {} }
//! #     fn try_lock(&self) -> bool { !self.0.swap(true, core::sync::atomic::Ordering::Acquire) }
//! #     unsafe fn unlock(&self) { self.0.store(false, core::sync::atomic::Ordering::Release) }
//! # }
//! struct Host;
//! impl LockdepHost for Host {
//!     fn task_id(&self) -> u64 { 1 }
//!     fn print_line(&self, _level: u8, line: &str) { println!("{line}") }
//! }
//! static HOST: Host = Host;
//! let ld = Lockdep::new(&HOST);
//! let zone: Mutex<Raw, u32> = Mutex::new(&ZONE_LOCK, 0);
//! let log: Mutex<Raw, u32> = Mutex::new(&LOG_LOCK, 0);
//! // SAFETY: `ld` outlives both mutexes and does not move while they are used.
//! unsafe { zone.attach(&ld); log.attach(&ld) };
//! {
//!     let _z = zone.lock();
//!     let _l = log.lock(); // records zone->lock -> printk log
//! }
//! assert_eq!(ld.report_count(), 0);
//! ```

mod mutex;
#[cfg(any(debug_assertions, feature = "lockdep"))]
mod report;

pub use mutex::{Mutex, MutexGuard, UNNAMED};

use core::fmt::{self, Write};
#[cfg(any(debug_assertions, feature = "lockdep"))]
use core::panic::Location;
#[cfg(any(debug_assertions, feature = "lockdep"))]
use core::sync::atomic::AtomicPtr;
#[cfg(any(debug_assertions, feature = "lockdep"))]
use core::sync::atomic::Ordering::*;
#[cfg(any(debug_assertions, feature = "lockdep"))]
use report::{KeyName, Printer};

#[cfg(any(debug_assertions, feature = "lockdep"))]
use core::cell::UnsafeCell;
#[cfg(any(debug_assertions, feature = "lockdep"))]
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize};

/// Lock classes (class, subclass pairs) one [`Lockdep`] can tell apart (`MAX_LOCKDEP_KEYS`).
pub const MAX_LOCKDEP_KEYS: usize = 32;
/// Tasks that can hold locks at the same time.
pub const MAX_LOCKDEP_TASKS: usize = 64;
/// Locks one task can hold at once (`MAX_LOCK_DEPTH`).
pub const MAX_LOCK_DEPTH: usize = 16;
/// Subclasses of one class (`MAX_LOCKDEP_SUBCLASSES`).
pub const MAX_LOCKDEP_SUBCLASSES: u8 = 8;

/// printk level of the reports (`KERN_WARNING`).
pub const LEVEL_WARNING: u8 = 4;
/// printk level of the "turning off" messages (`KERN_DEBUG`).
pub const LEVEL_DEBUG: u8 = 7;

/// A class of locks: every lock of one kind (all zone locks, all SLUB node list locks…) shares
/// one, declared as a `static` (its address identifies it, like Linux's `lock_class_key`).
/// It is immutable: what a validator learns about a class lives in that validator, so
/// classes are no global state and several machines can share them.
pub struct LockClass {
    name: &'static str,
    reentrant: bool,
}

impl LockClass {
    /// A class named `name` (the name reports print: use Linux's, e.g. `"&zone->lock"`).
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            reentrant: false,
        }
    }

    /// A class a task may acquire again while holding it, like a CPU section
    /// (`get_cpu()` nests): the inner acquisition records no dependency and no recursion.
    pub const fn new_reentrant(name: &'static str) -> Self {
        Self {
            name,
            reentrant: true,
        }
    }

    /// The class's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether the class may be re-acquired by a task that holds it.
    pub fn is_reentrant(&self) -> bool {
        self.reentrant
    }
}

impl fmt::Debug for LockClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockClass")
            .field("name", &self.name)
            .field("reentrant", &self.reentrant)
            .finish()
    }
}

/// What the validator needs from its surroundings: who the current task is and where reports
/// go. kmem implements it on its machine state (task = `Platform::current_pid`, output =
/// printk); hosted code can use the thread id.
pub trait LockdepHost: Sync {
    /// The current task's id, unique among tasks that exist at the same time. `u64::MAX`
    /// means "not a task" (the validator then ignores the acquisition).
    fn task_id(&self) -> u64;

    /// Writes the current task as Linux's reports name it, `comm/pid`.
    fn task_name(&self, w: &mut dyn Write) -> fmt::Result {
        write!(w, "task/{}", self.task_id())
    }

    /// Receives one line of a report, without its newline, and its printk level
    /// ([`LEVEL_WARNING`] for reports, [`LEVEL_DEBUG`] for the "turning off" messages).
    /// Called with whatever locks the reporting task holds, so it must not take a lock that
    /// may be among them (printk's log lock, the innermost lock, is fine).
    fn print_line(&self, level: u8, line: &str);

    /// Writes the kernel identification line of a report (`print_kernel_ident`, e.g.
    /// `6.8.0 #1 Not tainted`). Writing nothing (the default) leaves the line out.
    fn kernel_ident(&self, w: &mut dyn Write) -> fmt::Result {
        let _ = w;
        Ok(())
    }

    /// Writes the current backtrace for the `stack backtrace:` part of a report
    /// (`dump_stack`). Writing nothing (the default) leaves the part out.
    fn dump_stack(&self, w: &mut dyn Write) -> fmt::Result {
        let _ = w;
        Ok(())
    }

    /// Called once a report of a locking bug has been printed (kmem counts it as a warning
    /// and taints); not called for a table overflow ([`Report::Overflow`]), which only turns
    /// the validator off.
    fn reported(&self, kind: Report) {
        let _ = kind;
    }
}

/// Why the validator turned itself off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Report {
    /// `WARNING: possible circular locking dependency detected`.
    CircularDependency = 1,
    /// `WARNING: possible recursive locking detected`.
    RecursiveLocking = 2,
    /// `WARNING: bad unlock balance detected!`.
    BadUnlockBalance = 3,
    /// A table was too small (`BUG: MAX_LOCK_DEPTH too low!` and friends). Not a locking bug.
    Overflow = 4,
}

impl Report {
    #[cfg(any(debug_assertions, feature = "lockdep"))]
    fn from_u8(v: u8) -> Option<Report> {
        match v {
            1 => Some(Report::CircularDependency),
            2 => Some(Report::RecursiveLocking),
            3 => Some(Report::BadUnlockBalance),
            4 => Some(Report::Overflow),
            _ => None,
        }
    }
}

// ------------------------------------------------------------------------------ validator

#[cfg(any(debug_assertions, feature = "lockdep"))]
type Site = &'static Location<'static>;

/// One entry of a task's held-lock stack (`struct held_lock`).
#[cfg(any(debug_assertions, feature = "lockdep"))]
#[derive(Clone, Copy)]
struct HeldLock {
    key: u8,
    trylock: bool,
    instance: usize,
    site: Site,
}

/// A held-lock stack and the task that owns it.
#[cfg(any(debug_assertions, feature = "lockdep"))]
struct TaskSlot {
    /// 1 + the owning task's id; 0 when free.
    owner: AtomicU64,
    /// Touched only by the owner: the number of held locks and the locks.
    stack: UnsafeCell<TaskStack>,
}

#[cfg(any(debug_assertions, feature = "lockdep"))]
struct TaskStack {
    depth: usize,
    held: [Option<HeldLock>; MAX_LOCK_DEPTH],
}

/// Where a dependency was first seen: the acquisition of the later lock and the site at
/// which the earlier one had been taken.
#[cfg(any(debug_assertions, feature = "lockdep"))]
#[derive(Clone, Copy)]
struct EdgeSite {
    acquired: Site,
    holding: Site,
}

/// Graph data written under the graph lock.
#[cfg(any(debug_assertions, feature = "lockdep"))]
struct GraphSites {
    site: [[Option<EdgeSite>; MAX_LOCKDEP_KEYS]; MAX_LOCKDEP_KEYS],
}

/// The validator of one machine. See the module documentation.
pub struct Lockdep {
    #[cfg(any(debug_assertions, feature = "lockdep"))]
    st: State,
}

#[cfg(any(debug_assertions, feature = "lockdep"))]
struct State {
    host: *const dyn LockdepHost,
    off: AtomicBool,
    /// The first [`Report`] (as `u8`), 0 while on.
    reason: AtomicU8,
    reports: AtomicUsize,
    graph_lock: AtomicBool,
    nr_keys: AtomicUsize,
    keys: [AtomicPtr<LockClass>; MAX_LOCKDEP_KEYS],
    subclass: [AtomicU8; MAX_LOCKDEP_KEYS],
    /// `after[a]` bit `b`: dependency a → b recorded.
    after: [AtomicU32; MAX_LOCKDEP_KEYS],
    sites: UnsafeCell<GraphSites>,
    tasks: [TaskSlot; MAX_LOCKDEP_TASKS],
}

// SAFETY: the host is `Sync` (trait bound) and valid whenever it is used (`new`: `'static`;
// `new_unchecked`/`init_at`: their contract); a task stack is only accessed by the task whose id its `owner` holds, claimed and
// released with Acquire/Release; `sites` only under the graph lock; everything else is atomic.
#[cfg(any(debug_assertions, feature = "lockdep"))]
unsafe impl Sync for Lockdep {}
// SAFETY: moving the validator moves plain data and atomics; the host reference is `Sync` and valid
// for the validator's life (see Sync above), and a moved validator is not attached to anything
// (`Mutex::attach` requires it to stay put).
#[cfg(any(debug_assertions, feature = "lockdep"))]
unsafe impl Send for Lockdep {}

impl Lockdep {
    /// A validator reporting through `host`.
    ///
    /// Returns a value of about 40 KiB; [`Lockdep::init_at`] builds one in place instead.
    pub fn new(host: &'static dyn LockdepHost) -> Self {
        // SAFETY: a `'static` host is valid whenever the validator runs.
        unsafe { Lockdep::new_unchecked(host) }
    }

    /// A validator reporting through a host that is not `'static` (kmem: its machine state,
    /// which owns the validator).
    ///
    /// # Safety
    /// `host` must be valid for shared access from every task whenever the validator runs a
    /// check: from the first acquisition or release recorded through it (directly or by an
    /// attached [`Mutex`]) until it is dropped.
    pub unsafe fn new_unchecked(host: *const dyn LockdepHost) -> Self {
        let mut v = core::mem::MaybeUninit::<Lockdep>::uninit();
        // SAFETY: `v` is valid for writes of a `Lockdep` and `init_at` initialises every
        // field; the host contract is forwarded from our caller.
        unsafe {
            Lockdep::init_at(v.as_mut_ptr(), host);
            v.assume_init()
        }
    }

    /// Initialises a validator in place at `this` (no large temporary on the stack).
    ///
    /// # Safety
    /// `this` must be valid for writes of a `Lockdep` and suitably aligned; any previous
    /// contents are overwritten without being dropped. `host` as in
    /// [`Lockdep::new_unchecked`].
    pub unsafe fn init_at(this: *mut Lockdep, host: *const dyn LockdepHost) {
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        {
            let _ = (this, host);
        }
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        // SAFETY: every write goes to a field of `*this`, valid for writes per the caller;
        // together they initialise the whole struct (which has no padding-sensitive
        // invariant).
        unsafe {
            use core::ptr::{addr_of_mut, write};
            let st = addr_of_mut!((*this).st);
            write(addr_of_mut!((*st).host), host);
            write(addr_of_mut!((*st).off), AtomicBool::new(false));
            write(addr_of_mut!((*st).reason), AtomicU8::new(0));
            write(addr_of_mut!((*st).reports), AtomicUsize::new(0));
            write(addr_of_mut!((*st).graph_lock), AtomicBool::new(false));
            write(addr_of_mut!((*st).nr_keys), AtomicUsize::new(0));
            write(
                addr_of_mut!((*st).keys),
                [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_LOCKDEP_KEYS],
            );
            write(
                addr_of_mut!((*st).subclass),
                [const { AtomicU8::new(0) }; MAX_LOCKDEP_KEYS],
            );
            write(
                addr_of_mut!((*st).after),
                [const { AtomicU32::new(0) }; MAX_LOCKDEP_KEYS],
            );
            let sites = addr_of_mut!((*st).sites).cast::<GraphSites>();
            for a in 0..MAX_LOCKDEP_KEYS {
                write(addr_of_mut!((*sites).site[a]), [None; MAX_LOCKDEP_KEYS]);
            }
            let tasks = addr_of_mut!((*st).tasks).cast::<TaskSlot>();
            for i in 0..MAX_LOCKDEP_TASKS {
                write(
                    tasks.add(i),
                    TaskSlot {
                        owner: AtomicU64::new(0),
                        stack: UnsafeCell::new(TaskStack {
                            depth: 0,
                            held: [None; MAX_LOCK_DEPTH],
                        }),
                    },
                );
            }
        }
    }

    /// Whether the validator is off (after a report or an overflow; always in builds without
    /// `debug_assertions` or the `lockdep` feature).
    pub fn is_off(&self) -> bool {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        return self.st.off.load(Relaxed);
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        true
    }

    /// Whether this build runs the validator at all (`debug_assertions` or the `lockdep`
    /// feature).
    pub const fn enabled() -> bool {
        cfg!(any(debug_assertions, feature = "lockdep"))
    }

    /// Number of locking bugs reported (circular, recursive, bad unlock): 0 or 1, since the
    /// first report turns the validator off.
    pub fn report_count(&self) -> usize {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        return self.st.reports.load(Relaxed);
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        0
    }

    /// Why the validator turned off, if it did.
    pub fn reason(&self) -> Option<Report> {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        return Report::from_u8(self.st.reason.load(Acquire));
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        None
    }

    /// Records that the current task acquires the lock at `instance`, of `class` and
    /// `subclass` (`lock_acquire`); `trylock` for an acquisition that did not wait (it adds
    /// no dependency towards the lock and cannot be recursive). Call it *before* blocking on
    /// the lock (after succeeding, for a trylock), so an inversion is reported rather than
    /// deadlocked on. Returns whether the acquisition was recorded: only then must
    /// [`Lockdep::release`] follow.
    ///
    /// This is the annotation for locks that are not a [`Mutex`] (e.g. a CPU section:
    /// `get_cpu()` acquires a [`LockClass::new_reentrant`] class, `put_cpu()` releases it).
    #[cfg_attr(any(debug_assertions, feature = "lockdep"), track_caller)]
    pub fn acquire(
        &self,
        class: &'static LockClass,
        subclass: u8,
        instance: *const (),
        trylock: bool,
    ) -> bool {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        return self.acquire_at(
            class,
            subclass,
            instance as usize,
            trylock,
            Location::caller(),
        );
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        {
            let _ = (class, subclass, instance, trylock);
            false
        }
    }

    /// Records that the current task releases the lock at `instance` (`lock_release`);
    /// reports a bad unlock balance if it does not hold it.
    #[cfg_attr(any(debug_assertions, feature = "lockdep"), track_caller)]
    pub fn release(&self, class: &'static LockClass, instance: *const ()) {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        self.release_at(class, instance as usize, Location::caller());
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        let _ = (class, instance);
    }

    /// [`Lockdep::acquire`] with a guard that calls [`Lockdep::release`] when dropped: the
    /// annotation for a section that is not a [`Mutex`], e.g. kmem's `CpuGuard`
    /// (`get_cpu()`…`put_cpu()`, a [`LockClass::new_reentrant`] class). The guard must be
    /// dropped by the task that made it.
    #[cfg_attr(any(debug_assertions, feature = "lockdep"), track_caller)]
    pub fn enter(&self, class: &'static LockClass, instance: *const ()) -> Section<'_> {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        {
            let tracked = self.acquire_at(class, 0, instance as usize, false, Location::caller());
            Section {
                held: tracked.then_some((self, class, instance as usize)),
            }
        }
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        {
            let _ = (class, instance);
            Section {
                _ld: core::marker::PhantomData,
            }
        }
    }

    /// [`Lockdep::enter`] for a section entered by a try-acquisition that cannot wait (kmem's
    /// `cpu_guard_try`): like a `try_lock`, it adds no dependency on the locks already held.
    #[cfg_attr(any(debug_assertions, feature = "lockdep"), track_caller)]
    pub fn enter_try(&self, class: &'static LockClass, instance: *const ()) -> Section<'_> {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        {
            let tracked = self.acquire_at(class, 0, instance as usize, true, Location::caller());
            Section {
                held: tracked.then_some((self, class, instance as usize)),
            }
        }
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        {
            let _ = (class, instance);
            Section {
                _ld: core::marker::PhantomData,
            }
        }
    }

    /// Whether the current task holds the lock at `instance` (`lockdep_is_held`). `None` when
    /// the validator cannot tell (off, or not built in).
    pub fn is_held(&self, instance: *const ()) -> Option<bool> {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        {
            if self.is_off() {
                return None;
            }
            let task = self.host().task_id();
            let Some(slot) = self.slot_of(task, false) else {
                return Some(false);
            };
            // SAFETY: the slot is owned by the current task (found by its id).
            let st = unsafe { &*self.st.tasks[slot].stack.get() };
            Some(
                st.held[..st.depth]
                    .iter()
                    .flatten()
                    .any(|h| h.instance == instance as usize),
            )
        }
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        {
            let _ = instance;
            None
        }
    }

    /// Number of locks the current task holds as far as the validator knows.
    pub fn held_count(&self) -> usize {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        {
            let task = self.host().task_id();
            match self.slot_of(task, false) {
                // SAFETY: owned by the current task.
                Some(slot) => unsafe { (*self.st.tasks[slot].stack.get()).depth },
                None => 0,
            }
        }
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        0
    }

    /// Whether the dependency `a` → `b` (subclass 0 of both) has been observed directly:
    /// some task acquired a `b` lock while its most recent lock was an `a` lock.
    pub fn depends(&self, a: &'static LockClass, b: &'static LockClass) -> bool {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        {
            match (self.find_key(a, 0), self.find_key(b, 0)) {
                (Some(a), Some(b)) => self.st.after[a as usize].load(Acquire) & (1 << b) != 0,
                _ => false,
            }
        }
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        {
            let _ = (a, b);
            false
        }
    }

    /// Writes the observed dependencies, like `/proc/lockdep`: each class with the number of
    /// classes it reaches (`FD`) and that reach it (`BD`), then one ` -> [class]` line per
    /// direct dependency with the site where it was first seen.
    pub fn write_dependencies(&self, w: &mut dyn Write) -> fmt::Result {
        #[cfg(any(debug_assertions, feature = "lockdep"))]
        {
            // Lock order: lockdep's graph lock, innermost of all; docs/LOCKING.md.
            self.graph_lock();
            let r = self.write_dependencies_locked(w);
            self.graph_unlock();
            r
        }
        #[cfg(not(any(debug_assertions, feature = "lockdep")))]
        {
            writeln!(w, "all lock classes:")
        }
    }
}

#[cfg(any(debug_assertions, feature = "lockdep"))]
impl Lockdep {
    fn host(&self) -> &dyn LockdepHost {
        // SAFETY: the host is valid whenever the validator runs: `'static` (`new`) or by the
        // contract of `new_unchecked`/`init_at`.
        unsafe { &*self.st.host }
    }

    fn graph_lock(&self) {
        while self
            .st
            .graph_lock
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            while self.st.graph_lock.load(Relaxed) {
                core::hint::spin_loop();
            }
        }
    }

    fn graph_unlock(&self) {
        self.st.graph_lock.store(false, Release);
    }

    /// `debug_locks_off()`: returns true for the one caller that turned the validator off.
    fn turn_off(&self, why: Report) -> bool {
        if self.st.off.swap(true, AcqRel) {
            return false;
        }
        self.st.reason.store(why as u8, Release);
        if why != Report::Overflow {
            self.st.reports.fetch_add(1, Relaxed);
        }
        true
    }

    fn class_of(&self, key: u8) -> &'static LockClass {
        let p = self.st.keys[key as usize].load(Acquire);
        // SAFETY: registered keys point at `&'static LockClass`es (only `key_of` stores, from
        // such a reference) and stay registered.
        unsafe { &*p }
    }

    fn key_name(&self, key: u8) -> KeyName {
        KeyName {
            class: self.class_of(key),
            subclass: self.st.subclass[key as usize].load(Relaxed),
        }
    }

    fn find_key(&self, class: &'static LockClass, subclass: u8) -> Option<u8> {
        let cp = class as *const LockClass as *mut LockClass;
        let n = self.st.nr_keys.load(Acquire);
        for i in 0..n {
            if self.st.keys[i].load(Relaxed) == cp && self.st.subclass[i].load(Relaxed) == subclass
            {
                return Some(i as u8);
            }
        }
        None
    }

    /// The key of (`class`, `subclass`), registering it (`register_lock_class`).
    fn key_of(&self, class: &'static LockClass, subclass: u8) -> Option<u8> {
        if let Some(k) = self.find_key(class, subclass) {
            return Some(k);
        }
        // Lock order: lockdep's graph lock, innermost of all; docs/LOCKING.md.
        self.graph_lock();
        let k = match self.find_key(class, subclass) {
            Some(k) => Some(k),
            None => {
                let n = self.st.nr_keys.load(Relaxed);
                if n == MAX_LOCKDEP_KEYS {
                    None
                } else {
                    self.st.subclass[n].store(subclass, Relaxed);
                    self.st.keys[n].store(class as *const LockClass as *mut LockClass, Relaxed);
                    self.st.nr_keys.store(n + 1, Release);
                    Some(n as u8)
                }
            }
        };
        self.graph_unlock();
        k
    }

    /// The stack owned by `task`, claiming a free one if `claim`.
    fn slot_of(&self, task: u64, claim: bool) -> Option<usize> {
        let me = task.wrapping_add(1);
        // Only this task ever stores `me`, so a plain load finds its own slot.
        if let Some(i) = self
            .st
            .tasks
            .iter()
            .position(|t| t.owner.load(Relaxed) == me)
        {
            return Some(i);
        }
        if !claim {
            return None;
        }
        // Acquire: see the previous owner's last writes (its depth back at 0).
        self.st
            .tasks
            .iter()
            .position(|t| t.owner.compare_exchange(0, me, Acquire, Relaxed).is_ok())
    }

    /// The stack of slot `slot`.
    ///
    /// # Safety
    /// `slot` must be owned by the current task, and no other reference to its stack live.
    #[allow(clippy::mut_from_ref)]
    unsafe fn stack(&self, slot: usize) -> &mut TaskStack {
        // SAFETY: per the contract, only the current task touches this stack, and only
        // through this one reference.
        unsafe { &mut *self.st.tasks[slot].stack.get() }
    }

    fn acquire_at(
        &self,
        class: &'static LockClass,
        subclass: u8,
        instance: usize,
        trylock: bool,
        site: Site,
    ) -> bool {
        if self.is_off() {
            return false;
        }
        let host = self.host();
        let task = host.task_id();
        if task == u64::MAX {
            return false;
        }
        if subclass >= MAX_LOCKDEP_SUBCLASSES {
            self.overflow(host, "BUG: looking up invalid subclass", None);
            return false;
        }
        let Some(key) = self.key_of(class, subclass) else {
            self.overflow(host, "BUG: MAX_LOCKDEP_KEYS too low!", None);
            return false;
        };
        let Some(slot) = self.slot_of(task, true) else {
            self.overflow(host, "BUG: MAX_LOCKDEP_TASKS too low!", None);
            return false;
        };
        // SAFETY: the slot carries our id; this is the only reference made to it here.
        let st = unsafe { self.stack(slot) };
        if st.depth == MAX_LOCK_DEPTH {
            self.overflow(host, "BUG: MAX_LOCK_DEPTH too low!", Some(st));
            return false;
        }
        let next = HeldLock {
            key,
            trylock,
            instance,
            site,
        };
        if !trylock {
            // check_deadlock: the same key already held.
            if let Some(prev) = st.held[..st.depth].iter().flatten().find(|h| h.key == key) {
                if !class.reentrant {
                    let prev = *prev;
                    if self.turn_off(Report::RecursiveLocking) {
                        self.print_recursive(host, st, &prev, &next);
                        host.reported(Report::RecursiveLocking);
                    }
                    return false;
                }
            } else {
                // check_prevs_add: a dependency from the most recent lock, and from the ones
                // below it as long as those were trylocks.
                for i in (0..st.depth).rev() {
                    let Some(prev) = st.held[i] else { continue };
                    if !self.add_dependency(host, st, &prev, &next) {
                        return false;
                    }
                    if !prev.trylock {
                        break;
                    }
                }
            }
        }
        st.held[st.depth] = Some(next);
        st.depth += 1;
        true
    }

    /// Records `prev` → `next` unless it closes a cycle; returns false after reporting one.
    fn add_dependency(
        &self,
        host: &dyn LockdepHost,
        st: &TaskStack,
        prev: &HeldLock,
        next: &HeldLock,
    ) -> bool {
        let bit = 1u32 << next.key;
        if self.st.after[prev.key as usize].load(Acquire) & bit != 0 {
            return true;
        }
        // Lock order: lockdep's graph lock, innermost of all; docs/LOCKING.md.
        self.graph_lock();
        if self.st.after[prev.key as usize].load(Relaxed) & bit != 0 {
            self.graph_unlock();
            return true;
        }
        // check_noncircular: does `next` already reach `prev`?
        if let Some(path) = self.bfs(next.key, prev.key) {
            // SAFETY: under the graph lock.
            let sites = unsafe { &*self.st.sites.get() };
            let mut chain = [None; MAX_LOCKDEP_KEYS];
            for (i, w) in path.keys[..path.len].windows(2).enumerate() {
                chain[i + 1] = sites.site[w[0] as usize][w[1] as usize];
            }
            let first = self.turn_off(Report::CircularDependency);
            self.graph_unlock();
            if first {
                self.print_circular(host, st, prev, next, &path, &chain);
                host.reported(Report::CircularDependency);
            }
            return false;
        }
        // SAFETY: under the graph lock.
        let sites = unsafe { &mut *self.st.sites.get() };
        sites.site[prev.key as usize][next.key as usize] = Some(EdgeSite {
            acquired: next.site,
            holding: prev.site,
        });
        self.st.after[prev.key as usize].fetch_or(bit, Release);
        self.graph_unlock();
        true
    }

    /// Breadth-first search from `from` to `to` over recorded dependencies (graph lock held);
    /// returns the path `from` … `to`.
    fn bfs(&self, from: u8, to: u8) -> Option<Path> {
        let mut parent = [u8::MAX; MAX_LOCKDEP_KEYS];
        let mut queue = [0u8; MAX_LOCKDEP_KEYS];
        let (mut head, mut tail) = (0, 1);
        queue[0] = from;
        let mut seen = 1u32 << from;
        while head < tail {
            let k = queue[head];
            head += 1;
            if k == to {
                let mut rev = [0u8; MAX_LOCKDEP_KEYS];
                let mut n = 0;
                let mut c = k;
                loop {
                    rev[n] = c;
                    n += 1;
                    if c == from {
                        break;
                    }
                    c = parent[c as usize];
                }
                let mut path = Path {
                    keys: [0; MAX_LOCKDEP_KEYS],
                    len: n,
                };
                for i in 0..n {
                    path.keys[i] = rev[n - 1 - i];
                }
                return Some(path);
            }
            let mut next = self.st.after[k as usize].load(Relaxed) & !seen;
            while next != 0 {
                let b = next.trailing_zeros() as u8;
                next &= next - 1;
                seen |= 1 << b;
                parent[b as usize] = k;
                queue[tail] = b;
                tail += 1;
            }
        }
        None
    }

    fn release_at(&self, class: &'static LockClass, instance: usize, site: Site) {
        if self.is_off() {
            return;
        }
        let host = self.host();
        let task = host.task_id();
        if task == u64::MAX {
            return;
        }
        let slot = self.slot_of(task, false);
        if let Some(slot) = slot {
            // SAFETY: the slot carries our id; the only reference made to it here.
            let st = unsafe { self.stack(slot) };
            // find_held_lock: the most recent acquisition of this instance.
            if let Some(i) = (0..st.depth)
                .rev()
                .find(|&i| st.held[i].is_some_and(|h| h.instance == instance))
            {
                st.held.copy_within(i + 1..st.depth, i);
                st.depth -= 1;
                st.held[st.depth] = None;
                if st.depth == 0 {
                    // Release: the next owner sees the stack empty.
                    self.st.tasks[slot].owner.store(0, Release);
                }
                return;
            }
        }
        if self.turn_off(Report::BadUnlockBalance) {
            // SAFETY: `slot`, if any, is the task slot whose `owner` holds our task id, so no other
            // task writes its stack; we only read it for printing.
            let st = slot.map(|s| unsafe { &*self.st.tasks[s].stack.get() });
            self.print_bad_unlock(host, st, class, site);
            host.reported(Report::BadUnlockBalance);
        }
    }

    fn overflow(&self, host: &dyn LockdepHost, msg: &str, st: Option<&TaskStack>) {
        if !self.turn_off(Report::Overflow) {
            return;
        }
        // print_lockdep_off
        let mut p = Printer::new(host, LEVEL_DEBUG);
        let _ = writeln!(p, "{msg}");
        let _ = writeln!(p, "turning off the locking correctness validator.");
        if let Some(st) = st {
            let _ = writeln!(p, "depth: {}  max: {}!", st.depth, MAX_LOCK_DEPTH);
            let _ = self.print_held_locks(&mut p, host, Some(st));
        }
        p.finish();
    }
}

/// A section entered with [`Lockdep::enter`]; released (for the validator) when dropped.
#[must_use = "the section ends when the guard is dropped"]
pub struct Section<'a> {
    #[cfg(any(debug_assertions, feature = "lockdep"))]
    held: Option<(&'a Lockdep, &'static LockClass, usize)>,
    #[cfg(not(any(debug_assertions, feature = "lockdep")))]
    _ld: core::marker::PhantomData<&'a Lockdep>,
}

// Only with the validator: without it a section is a zero-sized marker with no drop glue.
#[cfg(any(debug_assertions, feature = "lockdep"))]
impl Drop for Section<'_> {
    fn drop(&mut self) {
        if let Some((ld, class, instance)) = self.held {
            ld.release_at(class, instance, Location::caller());
        }
    }
}

impl fmt::Debug for Section<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Section")
    }
}

/// A path in the dependency graph.
#[cfg(any(debug_assertions, feature = "lockdep"))]
struct Path {
    keys: [u8; MAX_LOCKDEP_KEYS],
    len: usize,
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[cfg(not(any(debug_assertions, feature = "lockdep")))]
    struct Raw(core::sync::atomic::AtomicBool);
    // SAFETY: a test-and-set lock: one holder at a time, Acquire/Release.
    #[cfg(not(any(debug_assertions, feature = "lockdep")))]
    unsafe impl lock_api::RawMutex for Raw {
        #[allow(clippy::declare_interior_mutable_const)]
        const INIT: Self = Raw(core::sync::atomic::AtomicBool::new(false));
        type GuardMarker = lock_api::GuardSend;
        fn lock(&self) {
            while !self.try_lock() {
                core::hint::spin_loop();
            }
        }
        fn try_lock(&self) -> bool {
            !self.0.swap(true, core::sync::atomic::Ordering::Acquire)
        }
        unsafe fn unlock(&self) {
            self.0.store(false, core::sync::atomic::Ordering::Release);
        }
    }

    /// Without the validator the wrapper is exactly a `lock_api::Mutex` and the validator an
    /// empty struct: run with `cargo test --release -p kds --lib lockdep`.
    #[cfg(not(any(debug_assertions, feature = "lockdep")))]
    #[test]
    fn release_builds_carry_nothing() {
        use core::mem::size_of;
        assert_eq!(
            size_of::<Mutex<Raw, u64>>(),
            size_of::<lock_api::Mutex<Raw, u64>>()
        );
        assert_eq!(
            size_of::<MutexGuard<'_, Raw, u64>>(),
            size_of::<lock_api::MutexGuard<'_, Raw, u64>>()
        );
        assert_eq!(size_of::<Lockdep>(), 0);
        assert!(!Lockdep::enabled());
        static A: LockClass = LockClass::new("a");
        let m: Mutex<Raw, u64> = Mutex::new(&A, 1);
        assert!(m.class().is_none());
        let g = m.lock();
        assert!(m.try_lock().is_none());
        drop(g);
    }

    #[cfg(any(debug_assertions, feature = "lockdep"))]
    mod on {
        use super::super::report::{Printer, Rule};
        use super::*;
        use std::string::String;
        use std::sync::Mutex as StdMutex;
        use std::vec::Vec;

        struct Lines(StdMutex<Vec<String>>);
        impl LockdepHost for Lines {
            fn task_id(&self) -> u64 {
                1
            }
            fn print_line(&self, _level: u8, line: &str) {
                self.0.lock().unwrap().push(line.into());
            }
        }

        #[test]
        fn printer_cuts_lines_and_keeps_empty_ones() {
            let h = Lines(StdMutex::new(Vec::new()));
            let mut p = Printer::new(&h, LEVEL_WARNING);
            write!(p, "a\n\nb").unwrap();
            p.write_str("c\n").unwrap();
            let long: String = "é".repeat(200); // 400 bytes
            write!(p, "{long}").unwrap();
            p.finish();
            p.finish(); // nothing pending: no extra line
            let got = h.0.lock().unwrap().clone();
            assert_eq!(got[..3], ["a", "", "bc"]);
            assert_eq!(got.len(), 5);
            assert_eq!(got[3].len(), 256);
            assert_eq!(std::format!("{}{}", got[3], got[4]), long);
        }

        #[test]
        fn bfs_finds_the_shortest_path() {
            static H: Lines = Lines(StdMutex::new(Vec::new()));
            let ld = std::boxed::Box::new(Lockdep::new(&H));
            // 0 -> 1 -> 2 -> 3 and 0 -> 3 directly; 3 -> 4.
            for (a, b) in [(0, 1), (1, 2), (2, 3), (0, 3), (3, 4)] {
                ld.st.after[a].fetch_or(1 << b, Relaxed);
            }
            let p = ld.bfs(0, 4).unwrap();
            assert_eq!(&p.keys[..p.len], &[0, 3, 4]);
            let p = ld.bfs(1, 3).unwrap();
            assert_eq!(&p.keys[..p.len], &[1, 2, 3]);
            assert!(ld.bfs(4, 0).is_none());
            assert!(ld.bfs(3, 2).is_none());
        }

        #[test]
        fn rules_match_the_titles() {
            assert_eq!(std::format!("{}", Rule('=', 5)), "=====");
        }
    }
}
