//! Threads as CPUs: CPU slot ids, the `get_cpu()`/`put_cpu()` sections, and CPU hot-unplug
//! when a thread exits.
//!
//! # Model
//! Every thread that enters a CPU section is given a **slot**: a CPU id in
//! `0..NR_CPUS - 1`, unique among the live threads of the process (a process-wide bitmap of
//! atomics, [`SLOTS`]). The thread keeps its slot until it exits, so any number of machines
//! in the process see the same id for it and per-CPU exclusivity holds for all of them at once.
//! The id is cached in a thread-local; the section's fast path is one thread-local read and a
//! plain (non-atomic) depth increment: no lock, no atomic read-modify-write.
//!
//! When all `NR_CPUS - 1` exclusive slots are taken, further threads share the last id,
//! [`SHARED_CPU`], whose sections are serialised by a reentrant lock ([`SHARED`]): their
//! `cpu_get` blocks until the holder's outermost `cpu_put`. Such a thread retries for an
//! exclusive slot at each outermost `cpu_get`. The same shared slot serves sections entered
//! after the thread-local was destroyed (from other thread-local destructors during thread
//! exit) and sections on a platform that the thread could not register (more than
//! [`MAX_PLATFORMS_PER_THREAD`] live platforms used by one thread). `SHARED_CPU` never goes
//! offline, like the boot CPU in Linux.
//!
//! # Thread exit = CPU hot-unplug
//! Each thread remembers (by weak reference, in a fixed array in its thread-local) the
//! platforms it entered sections on. When the thread exits, the thread-local's destructor calls
//! each still-alive platform's [`CpuDeadHook`] with the thread's exclusive slot, then frees the
//! slot. A dropped platform is skipped (its weak reference no longer upgrades), and a platform
//! being dropped waits for a hook call in progress (the hook cell's lock), so a hook never runs
//! once a platform's drop has begun.
//!
//! # Invariants
//! 1. A slot bit in [`SLOTS`] is set exactly while some live thread's `CpuLocal::slot` holds it
//!    (or while that thread's destructor runs its hooks). The bit of `SHARED_CPU` is never set.
//! 2. `CpuLocal::depth` counts the open exclusive-slot sections of the thread.
//! 3. `SHARED.owner` is the `pthread_self()` of the thread holding `SHARED.lock`, or 0;
//!    `SHARED.depth` (owned by the holder) counts its nested sections.
//! 4. `CpuLocal::ids[i]` is the identity of the platform `regs[i]` refers to (null if empty);
//!    `last`, when non-null, is one of the `ids` (the platform found by the last slow path).
//!
//! # Memory ordering
//! A slot is claimed with an Acquire CAS and released with a Release `fetch_and` after the
//! hooks ran, so everything the previous owner (and its hooks) did to that CPU's per-CPU data
//! happens-before the next owner's first section. The shared slot's lock orders its sections.
//!
//! # Locks, in order
//! 1. a platform's hook cell lock (held while its hook runs; the hook may take kmem's locks);
//! 2. [`SHARED`]'s lock (a CPU section, inside which kmem takes its locks).
//!
//! Neither allocates: both are [`RawFutexMutex`]es, and nothing here calls the global
//! allocator (the thread-local is const-initialised; registration only clones a weak
//! reference). Registering the thread-local's destructor the first time calls glibc's
//! `__cxa_thread_atexit_impl`, which allocates with glibc's `calloc`.
//!
//! # Process exit, fork
//! The main thread's destructor may run during `exit()` while other threads still run; it
//! behaves as for any other thread. After `fork()` the child keeps the parent's bitmap, so the
//! slots of the parent's other threads stay taken in the child.

use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use kmem::platform::CpuDeadHook;
use lock_api::RawMutex as _;

use crate::futex::{FutexMutex, RawFutexMutex};
use crate::maparc::{MapArc, MapWeak};
use crate::platform::Inner;

/// Number of possible CPUs (`nr_cpu_ids`, `CONFIG_NR_CPUS`): the size of kmem's per-CPU
/// arrays on this platform.
pub const NR_CPUS: usize = 256;

/// The CPU id shared, under a lock, by threads that found no free exclusive slot.
pub const SHARED_CPU: usize = NR_CPUS - 1;

/// How many live platforms one thread tracks for hot-unplug. Sections on further platforms use
/// [`SHARED_CPU`].
pub const MAX_PLATFORMS_PER_THREAD: usize = 8;

const NO_SLOT: usize = usize::MAX;
const WORDS: usize = NR_CPUS / 64;

/// The slot allocator: bit `i` set means CPU id `i` belongs to a live thread.
static SLOTS: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

/// Claims the lowest free exclusive slot.
fn claim_slot() -> Option<usize> {
    for (w, word) in SLOTS.iter().enumerate() {
        let reserved = if w == SHARED_CPU / 64 {
            1u64 << (SHARED_CPU % 64)
        } else {
            0
        };
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            let free = !(cur | reserved);
            if free == 0 {
                break;
            }
            let bit = free.trailing_zeros() as usize;
            match word.compare_exchange_weak(
                cur,
                cur | (1 << bit),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(w * 64 + bit),
                Err(now) => cur = now,
            }
        }
    }
    None
}

/// Gives an exclusive slot back.
fn release_slot(slot: usize) {
    debug_assert!(slot < SHARED_CPU);
    let old = SLOTS[slot / 64].fetch_and(!(1 << (slot % 64)), Ordering::Release);
    debug_assert!(old & (1 << (slot % 64)) != 0, "slot {slot} was not taken");
}

/// Number of exclusive slots currently held by threads of this process.
pub fn cpu_slots_in_use() -> usize {
    SLOTS
        .iter()
        .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
        .sum()
}

/// The reentrant lock behind [`SHARED_CPU`].
struct SharedCpu {
    lock: RawFutexMutex,
    owner: AtomicUsize,
    depth: UnsafeCell<usize>,
}

// SAFETY: `depth` is only accessed by the thread holding `lock` (invariant 3).
unsafe impl Sync for SharedCpu {}

static SHARED: SharedCpu = SharedCpu {
    lock: RawFutexMutex::new(),
    owner: AtomicUsize::new(0),
    depth: UnsafeCell::new(0),
};

fn thread_key() -> usize {
    // SAFETY: pthread_self has no preconditions; it reads the thread pointer (no TLS access
    // through Rust, so it works during thread-local destruction). Non-zero for live threads.
    unsafe { libc::pthread_self() as usize }
}

fn shared_held_by_me() -> bool {
    // Only this thread ever stores its own key, so a Relaxed load that sees it is exact.
    SHARED.owner.load(Ordering::Relaxed) == thread_key()
}

#[cold]
fn shared_get() -> usize {
    let me = thread_key();
    if SHARED.owner.load(Ordering::Relaxed) == me {
        // SAFETY: we hold the lock (owner == me), so `depth` is ours.
        unsafe { *SHARED.depth.get() += 1 };
    } else {
        SHARED.lock.lock();
        SHARED.owner.store(me, Ordering::Relaxed);
        // SAFETY: we just took the lock.
        unsafe { *SHARED.depth.get() = 1 };
    }
    SHARED_CPU
}

#[cold]
fn shared_put() {
    assert!(
        shared_held_by_me(),
        "cpu_put of the shared CPU by a thread not holding it"
    );
    // SAFETY: we hold the lock (checked above).
    let depth = unsafe { &mut *SHARED.depth.get() };
    *depth -= 1;
    if *depth == 0 {
        SHARED.owner.store(0, Ordering::Relaxed);
        // SAFETY: this thread holds the lock, taken in `shared_get`.
        unsafe { SHARED.lock.unlock() };
    }
}

/// A platform's CPU-dead hook and whether the platform is still accepting calls.
pub(crate) struct HookCell {
    state: FutexMutex<HookState>,
}

struct HookState {
    hook: Option<CpuDeadHook>,
    closed: bool,
}

impl HookCell {
    pub(crate) const fn new() -> Self {
        Self {
            state: FutexMutex::const_new(
                RawFutexMutex::new(),
                HookState {
                    hook: None,
                    closed: false,
                },
            ),
        }
    }

    /// Stores the hook (replacing an earlier one) unless the cell was closed.
    pub(crate) fn set(&self, hook: CpuDeadHook) {
        let mut g = self.state.lock();
        if !g.closed {
            g.hook = Some(hook);
        }
    }

    /// Forgets the hook for good; waits for a call in progress to return.
    pub(crate) fn close(&self) {
        let mut g = self.state.lock();
        g.closed = true;
        g.hook = None;
    }

    /// Runs the hook, if any, for `cpu` going offline.
    fn cpu_dead(&self, cpu: usize) {
        let g = self.state.lock();
        if let Some(h) = g.hook {
            // SAFETY: the hook's contract (kmem::platform::CpuDeadHook::func): the platform it
            // was registered on has not begun dropping (`close` would have removed the hook and
            // waits for us on the lock); `cpu` is the exiting thread's exclusive slot, still
            // marked taken in `SLOTS`, so it is neither used by any thread (the owner is in
            // its thread-local destructor, where its own sections fall back to SHARED_CPU) nor
            // handed out before we return.
            unsafe { (h.func)(h.ctx, cpu) };
        }
    }
}

/// Per-thread CPU state. Const-initialised: creating it never allocates.
struct CpuLocal {
    slot: Cell<usize>,
    depth: Cell<usize>,
    last: Cell<*const ()>,
    ids: [Cell<*const ()>; MAX_PLATFORMS_PER_THREAD],
    regs: [Cell<Option<MapWeak<Inner>>>; MAX_PLATFORMS_PER_THREAD],
}

impl CpuLocal {
    const fn new() -> Self {
        Self {
            slot: Cell::new(NO_SLOT),
            depth: Cell::new(0),
            last: Cell::new(core::ptr::null()),
            ids: [const { Cell::new(core::ptr::null()) }; MAX_PLATFORMS_PER_THREAD],
            regs: [const { Cell::new(None) }; MAX_PLATFORMS_PER_THREAD],
        }
    }

    /// Makes sure the thread tracks `plat`; false if all tracking entries hold live platforms.
    fn register(&self, plat: &MapArc<Inner>) -> bool {
        let id = MapArc::as_id(plat);
        if self.ids.iter().any(|c| c.get() == id) {
            self.last.set(id);
            return true;
        }
        for (idc, reg) in self.ids.iter().zip(&self.regs) {
            let old = reg.take();
            if old.as_ref().is_some_and(|w| !w.is_dead()) {
                reg.set(old);
                continue;
            }
            // Empty, or its platform is gone: reuse it. Dropping the old weak reference may
            // unmap its block; `last` is overwritten below, so it never names a freed block.
            drop(old);
            reg.set(Some(MapArc::downgrade(plat)));
            idc.set(id);
            self.last.set(id);
            return true;
        }
        false
    }
}

impl Drop for CpuLocal {
    fn drop(&mut self) {
        let slot = self.slot.get();
        debug_assert_eq!(self.depth.get(), 0, "thread exits inside a CPU section");
        for reg in &self.regs {
            if let Some(w) = reg.take() {
                if slot != NO_SLOT {
                    if let Some(p) = w.upgrade() {
                        p.hook.cpu_dead(slot);
                    }
                }
            }
        }
        if slot != NO_SLOT {
            self.slot.set(NO_SLOT);
            release_slot(slot);
        }
    }
}

thread_local! {
    static LOCAL: CpuLocal = const { CpuLocal::new() };
}

/// `get_cpu()` for the platform `plat`.
#[inline]
pub(crate) fn cpu_get(plat: &MapArc<Inner>) -> usize {
    let id = MapArc::as_id(plat);
    LOCAL
        .try_with(|l| {
            let slot = l.slot.get();
            if slot != NO_SLOT && l.last.get() == id {
                l.depth.set(l.depth.get() + 1);
                slot
            } else {
                cpu_get_slow(l, plat)
            }
        })
        .unwrap_or_else(|_| shared_get())
}

#[cold]
fn cpu_get_slow(l: &CpuLocal, plat: &MapArc<Inner>) -> usize {
    if !l.register(plat) {
        return shared_get();
    }
    let mut slot = l.slot.get();
    if slot == NO_SLOT && !shared_held_by_me() {
        if let Some(s) = claim_slot() {
            l.slot.set(s);
            slot = s;
        }
    }
    if slot == NO_SLOT {
        return shared_get();
    }
    l.depth.set(l.depth.get() + 1);
    slot
}

/// `put_cpu()`.
///
/// # Panics
/// If `cpu` is [`SHARED_CPU`] and this thread does not hold it.
#[inline]
pub(crate) fn cpu_put(cpu: usize) {
    if cpu == SHARED_CPU {
        shared_put();
        return;
    }
    let _ = LOCAL.try_with(|l| {
        debug_assert_eq!(
            l.slot.get(),
            cpu,
            "cpu_put of a CPU this thread does not own"
        );
        debug_assert!(l.depth.get() > 0, "unbalanced cpu_put");
        l.depth.set(l.depth.get().saturating_sub(1));
    });
}

/// The exclusive CPU slot of the calling thread, if it has one.
///
/// A thread gets its slot at its first CPU section on any platform and keeps it until it exits.
pub fn thread_cpu_slot() -> Option<usize> {
    LOCAL
        .try_with(|l| l.slot.get())
        .ok()
        .filter(|&s| s != NO_SLOT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_slot_is_reentrant() {
        assert_eq!(shared_get(), SHARED_CPU);
        assert_eq!(shared_get(), SHARED_CPU);
        assert!(shared_held_by_me());
        shared_put();
        assert!(shared_held_by_me());
        shared_put();
        assert!(!shared_held_by_me());
    }

    #[test]
    fn claim_and_release_are_exclusive() {
        let a = claim_slot().unwrap();
        let b = claim_slot().unwrap();
        assert_ne!(a, b);
        assert!(a < SHARED_CPU && b < SHARED_CPU);
        release_slot(a);
        release_slot(b);
    }
}
