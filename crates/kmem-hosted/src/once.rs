//! Booting a machine once, on first use, from inside an allocator: [`BootOnce`] and the
//! [`BumpArena`] that serves the booting thread should it re-enter.
//!
//! Both allocators built on kmem, [`KmemAlloc`](crate::KmemAlloc) (Rust's
//! `#[global_allocator]`) and libkmem_malloc.so (C's `malloc`), boot their machine on the first
//! allocation of the process. That first call may come from any thread, from several at once,
//! and (through a libc call inside the boot that allocates) from the booting thread itself.
//! `std::sync::OnceLock` does not fit: it may allocate, it blocks a re-entrant caller forever,
//! and it cannot report a failed boot for good.
//!
//! # The state machine of [`BootOnce`]
//! ```text
//!              first caller wins the CAS              boot returned Some(value)
//!   UNINIT ────────────────────────────────▶ BOOTING ─────────────────────────────▶ READY
//!                                              │     (value written, then READY stored
//!                                              │      with Release; `then` runs after)
//!                                              │ boot returned None, or panicked
//!                                              └────────────────────────────────▶ FAILED
//! ```
//! - **UNINIT → BOOTING**: the caller that wins a compare-exchange records its kernel thread
//!   id (`gettid`) as the booter and runs `boot`.
//! - **BOOTING → READY / FAILED**: the booter writes the value and stores READY (Release), or
//!   stores FAILED. READY and FAILED are final; `boot` never runs again.
//! - **READY**: every caller gets the value ([`Boot::Ready`]); the fast path is one Acquire
//!   load. The `then` callback of [`BootOnce::get_or_boot_then`] runs on the booting thread
//!   right after READY is stored, so it may itself use the value through the `BootOnce`
//!   (libkmem_malloc.so registers its `pthread_atfork` and `atexit` handlers there, and both
//!   may call `malloc`).
//! - **FAILED**: every caller gets [`Boot::Failed`] at once.
//! - **A caller that finds BOOTING** and is not the booter waits (`sched_yield`) until READY or
//!   FAILED. The booter itself, calling again from inside `boot` (re-entered), gets
//!   [`Boot::Reentered`] at once instead of deadlocking: what it does then is the user's
//!   choice (both allocators serve it from a [`BumpArena`]).
//!
//! Two consequences of identifying the booter by thread id, kept on purpose:
//! - the thread id is read with the raw `gettid` system call every time the slow path runs
//!   (not cached in a thread-local, which could allocate in a preloaded library or be stale
//!   in a fork child);
//! - a `fork` while another thread is booting leaves the child with BOOTING and a booter that
//!   does not exist there: the child's callers wait for ever. Neither allocator forks during
//!   its boot, and libkmem_malloc.so registers its fork handlers only once READY.
//!
//! A `BootOnce` that is dropped drops its value if it is READY (wrap the value in
//! `ManuallyDrop` to keep it, as `KmemAlloc` does: blocks it handed out may outlive it).
//!
//! # Memory ordering
//! The value is written before READY is stored with Release, and read only after READY is
//! loaded with Acquire (by the fast path or the slow path's compare-exchange), so every reader
//! sees it fully written. The booter id is only compared by the thread that wrote it (any
//! other thread's id differs from both its stale and its current value), so it is Relaxed.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

const UNINIT: u8 = 0;
const BOOTING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

/// What [`BootOnce::get_or_boot`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Boot<'a, T> {
    /// Booted: the value.
    Ready(&'a T),
    /// The calling thread is the one booting, and called again from inside `boot`.
    Reentered,
    /// The boot failed (now or earlier); it is never retried.
    Failed,
}

/// A value booted once, on first use, by one thread, with re-entry from that thread
/// reported instead of deadlocking (see the [module documentation](self)).
///
/// # Examples
/// ```
/// use kmem_hosted::once::{Boot, BootOnce};
/// static ONCE: BootOnce<u32> = BootOnce::new();
/// let inner = std::cell::Cell::new(None);
/// let r = ONCE.get_or_boot(|| {
///     // Re-entered from inside the boot: reported, not deadlocked.
///     inner.set(Some(ONCE.get_or_boot(|| unreachable!()) == Boot::Reentered));
///     Some(7)
/// });
/// assert_eq!(r, Boot::Ready(&7));
/// assert_eq!(inner.get(), Some(true));
/// assert_eq!(ONCE.get(), Some(&7));
/// ```
pub struct BootOnce<T> {
    state: AtomicU8,
    /// The `gettid` of the booting thread (0 before the boot starts).
    booter: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once, by the booting thread, before READY is stored (Release)
// and only read through shared references after READY is loaded (Acquire); after that it is
// only shared, which needs `T: Sync`. It may be created on one thread and dropped on another
// (the one dropping the `BootOnce`), which needs `T: Send`.
unsafe impl<T: Send + Sync> Sync for BootOnce<T> {}

impl<T> Default for BootOnce<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> core::fmt::Debug for BootOnce<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = match self.state.load(Ordering::Acquire) {
            UNINIT => "uninit",
            BOOTING => "booting",
            READY => "ready",
            _ => "failed",
        };
        f.debug_struct("BootOnce").field("state", &state).finish()
    }
}

impl<T> BootOnce<T> {
    /// A `BootOnce` that has not booted.
    pub const fn new() -> Self {
        Self {
            state: AtomicU8::new(UNINIT),
            booter: AtomicUsize::new(0),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The value if booted; never boots.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == READY {
            // SAFETY: READY was loaded with Acquire; it is stored (Release) only after the
            // value was written, and the value is never written again.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    /// Whether the boot failed.
    pub fn is_failed(&self) -> bool {
        self.state.load(Ordering::Acquire) == FAILED
    }

    /// The value, booting it with `boot` if this is the first use (see the module
    /// documentation for what each state does).
    #[inline]
    pub fn get_or_boot(&self, boot: impl FnOnce() -> Option<T>) -> Boot<'_, T> {
        self.get_or_boot_then(boot, |_| ())
    }

    /// As [`BootOnce::get_or_boot`]; when this call booted the value, `then` runs with it
    /// after READY is published (so calls from inside `then` find it READY), before returning.
    #[inline]
    pub fn get_or_boot_then(
        &self,
        boot: impl FnOnce() -> Option<T>,
        then: impl FnOnce(&T),
    ) -> Boot<'_, T> {
        match self.get() {
            Some(v) => Boot::Ready(v),
            None => self.slow(boot, then),
        }
    }

    #[cold]
    #[inline(never)]
    fn slow(&self, boot: impl FnOnce() -> Option<T>, then: impl FnOnce(&T)) -> Boot<'_, T> {
        let me = gettid();
        loop {
            match self
                .state
                .compare_exchange(UNINIT, BOOTING, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => {
                    self.booter.store(me, Ordering::Relaxed);
                    return self.run_boot(boot, then);
                }
                Err(READY) => {
                    // SAFETY: READY was loaded with Acquire (as in `get`).
                    return Boot::Ready(unsafe { (*self.value.get()).assume_init_ref() });
                }
                Err(FAILED) => return Boot::Failed,
                Err(_) => {
                    if self.booter.load(Ordering::Relaxed) == me {
                        return Boot::Reentered;
                    }
                    std::thread::yield_now();
                }
            }
        }
    }

    /// The booting thread's part: runs `boot`, publishes the outcome, runs `then`.
    fn run_boot(&self, boot: impl FnOnce() -> Option<T>, then: impl FnOnce(&T)) -> Boot<'_, T> {
        /// Marks the boot FAILED if `boot` unwinds, so that other threads stop waiting.
        struct FailOnUnwind<'a>(&'a AtomicU8);
        impl Drop for FailOnUnwind<'_> {
            fn drop(&mut self) {
                self.0.store(FAILED, Ordering::Release);
            }
        }
        let guard = FailOnUnwind(&self.state);
        let value = boot();
        core::mem::forget(guard);
        match value {
            Some(v) => {
                // SAFETY: this thread won UNINIT -> BOOTING, so it is the only writer, once;
                // no reader looks at the value before READY is stored below.
                unsafe { (*self.value.get()).write(v) };
                self.state.store(READY, Ordering::Release);
                // SAFETY: written above; from now on only shared references are made.
                let v = unsafe { (*self.value.get()).assume_init_ref() };
                then(v);
                Boot::Ready(v)
            }
            None => {
                self.state.store(FAILED, Ordering::Release);
                Boot::Failed
            }
        }
    }
}

impl<T> Drop for BootOnce<T> {
    fn drop(&mut self) {
        if *self.state.get_mut() == READY {
            // SAFETY: READY means the value was written, and nothing borrows it any more
            // (`&mut self`); it is dropped once.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}

/// The calling thread's kernel thread id, from the system call (see the module
/// documentation for why it is not cached).
fn gettid() -> usize {
    // SAFETY: gettid has no preconditions and cannot fail.
    (unsafe { libc::syscall(libc::SYS_gettid) }) as usize
}

/// A static bump arena of `N` bytes: blocks are handed out by an atomic bump and never
/// reused or freed, and are zero (the arena starts zeroed and no byte is handed out twice).
///
/// It serves an allocator's requests while its machine boots (the booter re-entered, see
/// [`Boot::Reentered`]) and, for `KmemAlloc`, after a failed boot. The arena is 4 KiB aligned.
///
/// # Examples
/// ```
/// use kmem_hosted::once::BumpArena;
/// static ARENA: BumpArena<4096> = BumpArena::new();
/// let p = ARENA.alloc(100, 16);
/// assert!(!p.is_null() && p as usize % 16 == 0 && ARENA.contains(p));
/// assert!(ARENA.alloc(8192, 8).is_null(), "larger than what is left");
/// ```
#[repr(C, align(4096))]
pub struct BumpArena<const N: usize> {
    bytes: UnsafeCell<[u8; N]>,
    /// Bytes handed out from the start, alignment padding included.
    used: AtomicUsize,
}

// SAFETY: the arena hands out disjoint byte ranges (each compare-exchange of `used` claims
// `[start, end)` above every earlier claim) and never reads or writes them itself.
unsafe impl<const N: usize> Sync for BumpArena<N> {}

impl<const N: usize> Default for BumpArena<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Debug for BumpArena<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BumpArena")
            .field("len", &N)
            .field("used", &self.used())
            .finish()
    }
}

impl<const N: usize> BumpArena<N> {
    /// A zeroed arena.
    pub const fn new() -> Self {
        Self {
            bytes: UnsafeCell::new([0; N]),
            used: AtomicUsize::new(0),
        }
    }

    /// A zeroed block of `size` bytes (at least one is reserved, so that every block is
    /// distinct and inside the arena) aligned to `align` (a power of two), or null when the
    /// arena has no room left for it.
    pub fn alloc(&self, size: usize, align: usize) -> *mut u8 {
        debug_assert!(align.is_power_of_two());
        let base = self.base() as usize;
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            let Some(start) = (base + cur)
                .checked_next_multiple_of(align)
                .map(|a| a - base)
            else {
                return ptr::null_mut();
            };
            let end = match start.checked_add(size.max(1)) {
                Some(end) if end <= N => end,
                _ => return ptr::null_mut(),
            };
            match self
                .used
                .compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                // `start < end <= N`: an address inside the arena, derived from its base.
                Ok(_) => return self.base().wrapping_add(start),
                Err(now) => cur = now,
            }
        }
    }

    /// Whether `p` points into the arena.
    #[inline]
    pub fn contains(&self, p: *const u8) -> bool {
        let base = self.base() as usize;
        (p as usize) >= base && (p as usize) < base + N
    }

    /// Bytes from `p` to the end of the arena (0 if `p` is not in it): how much a block
    /// starting at `p` may be read without leaving the arena.
    pub fn bytes_from(&self, p: *const u8) -> usize {
        if self.contains(p) {
            self.base() as usize + N - p as usize
        } else {
            0
        }
    }

    /// Bytes handed out so far, alignment padding included.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn base(&self) -> *mut u8 {
        self.bytes.get().cast()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::atomic::AtomicU32;
    use std::sync::{Arc, Barrier};

    #[test]
    fn concurrent_first_use_boots_once() {
        const THREADS: usize = 8;
        let once = Arc::new(BootOnce::<Box<u64>>::new());
        let boots = Arc::new(AtomicU32::new(0));
        let entered = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (once, boots, entered, start) =
                    (once.clone(), boots.clone(), entered.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    entered.fetch_add(1, Ordering::SeqCst);
                    let r = once.get_or_boot(|| {
                        boots.fetch_add(1, Ordering::SeqCst);
                        // Stay in BOOTING until every thread is at (or in) its own call, so
                        // that the others find the boot in progress and must wait for it.
                        while entered.load(Ordering::SeqCst) < THREADS {
                            std::thread::yield_now();
                        }
                        Some(Box::new(1000 + i as u64))
                    });
                    match r {
                        Boot::Ready(v) => (**v, v as *const Box<u64> as usize),
                        other => panic!("thread {i}: {other:?}"),
                    }
                })
            })
            .collect();
        let seen: Vec<(u64, usize)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(boots.load(Ordering::SeqCst), 1, "boot ran once");
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "every thread got the one value: {seen:?}"
        );
        assert_eq!(Some(&Box::new(seen[0].0)), once.get());
    }

    #[test]
    fn reentry_from_the_booting_thread_is_reported() {
        let once = BootOnce::<u32>::new();
        let inner = Cell::new(None);
        let r = once.get_or_boot(|| {
            // Twice: the re-entered state is stable while the boot runs.
            for _ in 0..2 {
                let again = once.get_or_boot(|| panic!("boot must not run again"));
                assert_eq!(again, Boot::Reentered);
            }
            assert_eq!(once.get(), None, "not READY while booting");
            inner.set(Some(once.get_or_boot(|| None)));
            Some(5)
        });
        assert_eq!(inner.take(), Some(Boot::Reentered));
        assert_eq!(r, Boot::Ready(&5));
        assert_eq!(
            once.get_or_boot(|| panic!("booted already")),
            Boot::Ready(&5)
        );
    }

    #[test]
    fn another_thread_during_the_boot_waits_instead_of_reentering() {
        let once = Arc::new(BootOnce::<u32>::new());
        let calling = Arc::new(AtomicU32::new(0));
        let handle = Cell::new(None);
        let r = once.get_or_boot(|| {
            let (o, c) = (once.clone(), calling.clone());
            handle.set(Some(std::thread::spawn(move || {
                c.store(1, Ordering::SeqCst);
                o.get_or_boot(|| panic!("second boot")) == Boot::Ready(&9)
            })));
            // Keep BOOTING until the other thread is making its call.
            while calling.load(Ordering::SeqCst) == 0 {
                std::thread::yield_now();
            }
            Some(9)
        });
        assert_eq!(r, Boot::Ready(&9));
        let h = handle.take().unwrap();
        assert!(
            h.join().unwrap(),
            "the other thread waited and got the value"
        );
    }

    #[test]
    fn failure_is_final() {
        let once = BootOnce::<u32>::new();
        assert_eq!(once.get_or_boot(|| None), Boot::Failed);
        assert!(once.is_failed());
        assert_eq!(once.get_or_boot(|| panic!("no retry")), Boot::Failed);
        assert_eq!(once.get(), None);
    }

    #[test]
    fn a_panicking_boot_fails_instead_of_leaving_waiters_stuck() {
        let once = BootOnce::<u32>::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            once.get_or_boot(|| panic!("boot panics"))
        }));
        assert!(r.is_err());
        assert!(once.is_failed());
        assert_eq!(once.get_or_boot(|| Some(1)), Boot::Failed);
    }

    #[test]
    fn then_runs_once_after_ready_is_published() {
        let once = BootOnce::<u32>::new();
        let calls = Cell::new(0);
        let r = once.get_or_boot_then(
            || Some(3),
            |v| {
                calls.set(calls.get() + 1);
                assert_eq!(*v, 3);
                // Using the value from `then` (a malloc from pthread_atfork) finds it READY.
                assert_eq!(once.get_or_boot(|| panic!("booted")), Boot::Ready(&3));
            },
        );
        assert_eq!(r, Boot::Ready(&3));
        let again = once.get_or_boot_then(|| panic!("booted"), |_| panic!("then ran twice"));
        assert_eq!(again, Boot::Ready(&3));
        assert_eq!(calls.get(), 1);
        // No `then` for a failed boot.
        let failed = BootOnce::<u32>::new();
        failed.get_or_boot_then(|| None, |_| panic!("then after a failure"));
        assert!(failed.is_failed());
    }

    #[test]
    fn drop_drops_a_booted_value_only() {
        // A static counter, not an `Arc`: the `ManuallyDrop` case below must not leak heap
        // memory (scripts/sanitize runs this under Valgrind's leak check).
        static DROPS: AtomicU32 = AtomicU32::new(0);
        let drops = &DROPS;
        struct D(&'static AtomicU32);
        impl Drop for D {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let once = BootOnce::<D>::new();
        assert!(matches!(
            once.get_or_boot(|| Some(D(drops))),
            Boot::Ready(_)
        ));
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(once);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        let failed = BootOnce::<D>::new();
        failed.get_or_boot(|| None);
        drop(failed);
        drop(BootOnce::<D>::new());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        let kept = BootOnce::<core::mem::ManuallyDrop<D>>::new();
        kept.get_or_boot(|| Some(core::mem::ManuallyDrop::new(D(drops))));
        drop(kept);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "ManuallyDrop keeps it");
    }

    #[test]
    fn arena_blocks_are_aligned_disjoint_zero_and_bounded() {
        let arena = Box::new(BumpArena::<8192>::new());
        assert_eq!(arena.base() as usize % 4096, 0);
        let mut blocks = Vec::new();
        for (size, align) in [(1, 1), (3, 16), (100, 64), (0, 8), (1000, 4096), (7, 2)] {
            let p = arena.alloc(size, align);
            assert!(!p.is_null(), "{size}/{align}");
            assert_eq!(p as usize % align, 0);
            assert!(arena.contains(p));
            assert!(arena.bytes_from(p) >= size.max(1));
            // SAFETY: the block has `size` bytes of the arena, handed out to us only.
            let bytes = unsafe { core::slice::from_raw_parts_mut(p, size) };
            assert!(bytes.iter().all(|&b| b == 0), "fresh blocks are zero");
            bytes.fill(0xa5);
            blocks.push((p as usize, size.max(1)));
        }
        blocks.sort();
        assert!(
            blocks.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0),
            "{blocks:?}"
        );
        let used = arena.used();
        assert!(arena.alloc(8192, 1).is_null(), "no room");
        assert!(arena.alloc(usize::MAX, 1).is_null(), "overflow is no room");
        assert!(
            arena.alloc(1, 1 << 62).is_null(),
            "alignment beyond the address space"
        );
        assert_eq!(arena.used(), used, "failed requests take nothing");
        let rest = 8192 - used;
        assert!(!arena.alloc(rest, 1).is_null(), "the exact remainder fits");
        assert!(arena.alloc(1, 1).is_null());
        let outside = 0u8;
        assert!(!arena.contains(&outside));
        assert_eq!(arena.bytes_from(&outside), 0);
        // SAFETY: one past the end of the arena's bytes: compared, not dereferenced.
        let end = unsafe { arena.base().add(8192) };
        assert!(!arena.contains(end));
    }

    #[test]
    fn arena_concurrent_allocations_are_disjoint() {
        let arena = Arc::new(BumpArena::<{ 64 << 10 }>::new());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let arena = arena.clone();
                std::thread::spawn(move || {
                    let mut v = Vec::new();
                    loop {
                        let p = arena.alloc(24, 8);
                        if p.is_null() {
                            return v;
                        }
                        v.push(p as usize);
                    }
                })
            })
            .collect();
        let mut all: Vec<usize> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort();
        assert!(all.windows(2).all(|w| w[0] + 24 <= w[1]));
        assert!(all.len() >= (64 << 10) / 24 - 4, "{} blocks", all.len());
    }
}
