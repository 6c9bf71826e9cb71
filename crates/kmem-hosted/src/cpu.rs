//! Threads as CPUs: CPU slot ids, the `get_cpu()`/`put_cpu()` sections, and CPU hot-unplug
//! when a thread exits.
//!
//! # Model
//! Every thread that enters a CPU section is given a **slot**: a CPU id in
//! `0..NR_CPUS - 1`, unique among the live threads of the process (a process-wide bitmap of
//! atomics, `SLOTS`). The thread keeps its slot until it exits, so any number of machines
//! in the process see the same id for it and per-CPU exclusivity holds for all of them at once.
//! The id is cached in a thread-local; the section's fast path is one thread-local read and a
//! compare with the two platforms used last (so a thread alternating between two machines, say
//! a global allocator's and its own, stays on the fast path): no lock, no atomic
//! read-modify-write, and in release builds no write at all. An exclusive slot needs no
//! count of open sections (the thread *is* the CPU, nothing waits for its `put_cpu`), so the
//! depth counter that checks their balance exists only with `debug_assertions`: a
//! read-modify-write of one thread-local word on each `get_cpu` and `put_cpu` made a chain of
//! four dependent store-to-load forwards per allocation+free pair (about 20 cycles, the
//! longest dependency chain of `KmemAlloc`'s LIFO pair; docs/BENCHMARKS.md, issue 14).
//!
//! When all `NR_CPUS - 1` exclusive slots are taken, further threads share the last id,
//! [`SHARED_CPU`], whose sections are serialised by a reentrant lock (`SHARED`): their
//! `cpu_get` blocks until the holder's outermost `cpu_put`, and nested sections on the holder
//! just count. Such a thread retries for an exclusive slot at each outermost `cpu_get`. The
//! shared slot also serves sections entered after the thread went offline (from later
//! destructors during thread exit), sections on a platform the thread could not register (more
//! than [`MAX_PLATFORMS_PER_THREAD`] live platforms used by one thread), and threads for which
//! the exit handler could not be armed. `SHARED_CPU` never goes offline, like the boot CPU.
//!
//! # Thread exit = CPU hot-unplug
//! Each thread remembers (by weak reference, in a fixed array in its thread-local) the
//! platforms it entered sections on. On its first section the thread arms a pthread key
//! (`EXIT_KEY`) whose destructor, `cpu_thread_exit`, runs when the thread exits: it calls
//! each still-alive platform's [`CpuDeadHook`](kmem::platform::CpuDeadHook) with the thread's exclusive slot, marks the
//! thread `DEAD` and frees the slot. A dropped platform is skipped (its weak reference no longer
//! upgrades), and a platform being dropped waits for a hook call in progress (the hook cell's
//! lock), so a hook never runs once a platform's drop has begun.
//!
//! A pthread key rather than a Rust thread-local destructor because registering the latter
//! makes glibc `calloc` (`__cxa_thread_atexit_impl`), which under an `LD_PRELOAD` malloc would
//! recurse into the allocator on every thread's first allocation; `pthread_setspecific` on one
//! of the first 32 keys does not allocate. It also runs later (after all thread-local
//! destructors), so those still find the thread's CPU online.
//!
//! # Invariants
//! 1. A slot bit in `SLOTS` is set exactly while some live thread's `CpuLocal::slot` holds it
//!    (or while that thread's exit handler runs its hooks). The bit of `SHARED_CPU` is never
//!    set.
//! 2. In debug builds, `CpuLocal::depth` counts the open exclusive-slot sections of the
//!    thread (checked by `cpu_put`); release builds do not keep it.
//! 3. `SHARED.owner` is the `pthread_self()` of the thread holding `SHARED.lock`, or 0;
//!    `SHARED.depth` (owned by the holder) counts its nested sections.
//! 4. A non-null `CpuLocal::regs[i]` owns one weak reference to a platform's control block and
//!    is that block's address; `last` and `prev`, when non-null, equal one of the `regs`.
//! 5. A thread takes an exclusive slot or registers a platform only once its exit handler is
//!    armed and before it has run (`DEAD`), so neither leaks when it exits.
//!
//! # Memory ordering
//! A slot is claimed with an Acquire CAS and released with a Release `fetch_and` after the
//! hooks ran, so everything the previous owner (and its hooks) did to that CPU's per-CPU data
//! happens-before the next owner's first section. The shared slot's lock orders its sections.
//!
//! # Locks, in order
//! 1. a platform's hook cell lock (held while its hook runs; the hook may take kmem's locks
//!    and enter sections, which use `SHARED_CPU`);
//! 2. `SHARED`'s lock (a CPU section, inside which kmem takes its locks).
//!
//! So: never drop a platform or set its hook inside a CPU section or inside a hook.
//!
//! Nothing here allocates: both locks are [`RawFutexMutex`]es, the thread-local is
//! const-initialised without drop glue, registration clones a weak reference, and the key
//! is created with `pthread_key_create` (no allocation in glibc).
//!
//! # Process exit, fork
//! glibc does not run key destructors for the main thread at `exit()`: its CPU stays online
//! and no hook runs then. After `fork()` the child keeps the parent's bitmap (the slots of the
//! parent's other threads stay taken) and the shared lock's state.

use core::cell::{Cell, UnsafeCell};
use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use lock_api::RawMutex as _;

use crate::control::Inner;
use crate::futex::RawFutexMutex;
use crate::maparc::{MapArc, MapWeak};

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

/// `shared_get` that never waits: `None` when another thread holds the shared CPU.
#[cold]
fn shared_try_get() -> Option<usize> {
    let me = thread_key();
    if SHARED.owner.load(Ordering::Relaxed) == me {
        // SAFETY: we hold the lock (owner == me), so `depth` is ours.
        unsafe { *SHARED.depth.get() += 1 };
    } else {
        if !SHARED.lock.try_lock() {
            return None;
        }
        SHARED.owner.store(me, Ordering::Relaxed);
        // SAFETY: we just took the lock.
        unsafe { *SHARED.depth.get() = 1 };
    }
    Some(SHARED_CPU)
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

/// Per-thread CPU state, in the thread's [`ThreadBlock`]. Zero-initialised and without drop
/// glue: it lives in a plain ELF TLS block (initial-exec on x86-64 Linux), needs no
/// destructor registration (hence no allocation, not even glibc's) and is readable for the
/// whole life of the thread, exit included. Thread exit is handled by the pthread key
/// destructor [`cpu_thread_exit`].
struct CpuLocal {
    /// `NO_SLOT`, `DEAD` after the exit handler ran, or the thread's exclusive CPU, stored
    /// complemented (`!slot`) so that a new thread's `NO_SLOT` is 0 ([`ThreadBlock`]); read
    /// and written through [`CpuLocal::slot`] and [`CpuLocal::set_slot`].
    not_slot: Cell<usize>,
    depth: Cell<usize>,
    /// Whether the exit handler is armed (the pthread key is set for this thread).
    armed: Cell<bool>,
    /// The platforms of the two most recent slow paths (a tiny MRU cache of `regs`).
    last: Cell<*const ()>,
    prev: Cell<*const ()>,
    /// Weak references (`MapWeak::into_raw`) to the platforms entered; null when empty.
    regs: [Cell<*const ()>; MAX_PLATFORMS_PER_THREAD],
}

/// `slot` after the thread went offline: further sections use [`SHARED_CPU`].
const DEAD: usize = usize::MAX - 1;

impl CpuLocal {
    const fn new() -> Self {
        Self {
            not_slot: Cell::new(!NO_SLOT),
            depth: Cell::new(0),
            armed: Cell::new(false),
            last: Cell::new(core::ptr::null()),
            prev: Cell::new(core::ptr::null()),
            regs: [const { Cell::new(core::ptr::null()) }; MAX_PLATFORMS_PER_THREAD],
        }
    }

    /// `NO_SLOT`, `DEAD`, or the thread's exclusive CPU.
    #[inline(always)]
    fn slot(&self) -> usize {
        !self.not_slot.get()
    }

    #[inline(always)]
    fn set_slot(&self, slot: usize) {
        self.not_slot.set(!slot);
    }

    /// Enters an exclusive-slot section: counted in debug builds only (invariant 2).
    #[inline(always)]
    fn enter(&self) {
        #[cfg(debug_assertions)]
        self.depth.set(self.depth.get() + 1);
    }

    /// Makes sure the thread tracks `plat`; false if it cannot (exit handler unavailable, or
    /// all tracking entries hold live platforms).
    fn register(&self, plat: &MapArc<Inner>) -> bool {
        let id = MapArc::as_id(plat);
        if self.regs.iter().any(|c| c.get() == id) {
            self.touch(id);
            return true;
        }
        if !self.arm() {
            return false;
        }
        for reg in &self.regs {
            let old = reg.get();
            if !old.is_null() {
                // SAFETY: `old` came from `into_raw` and is still owned by this entry; the
                // ManuallyDrop keeps the entry's ownership while we look.
                let w = ManuallyDrop::new(unsafe { MapWeak::<Inner>::from_raw(old) });
                if !w.is_dead() {
                    continue;
                }
                // Its platform is gone: release the entry. This may unmap the old block, so
                // the cache must stop naming it first.
                for c in [&self.last, &self.prev] {
                    if c.get() == old {
                        c.set(core::ptr::null());
                    }
                }
                drop(ManuallyDrop::into_inner(w));
            }
            reg.set(MapArc::downgrade(plat).into_raw());
            self.touch(id);
            return true;
        }
        false
    }

    /// Makes `id` (one of `regs`) the most recent platform.
    fn touch(&self, id: *const ()) {
        if self.last.get() != id {
            self.prev.set(self.last.get());
            self.last.set(id);
        }
    }

    /// Arms the exit handler for this thread (once); false if that is impossible.
    fn arm(&self) -> bool {
        if !self.armed.get() && self.slot() != DEAD {
            if let Some(key) = exit_key() {
                // SAFETY: `key` is a valid key; the value is a non-null marker that the
                // destructor ignores. For low key numbers glibc stores it without allocating.
                if unsafe { libc::pthread_setspecific(key, core::ptr::dangling::<libc::c_void>()) }
                    == 0
                {
                    self.armed.set(true);
                }
            }
        }
        self.armed.get()
    }
}

/// Words of the calling thread's block kept for the crate that embeds this platform
/// ([`with_thread_words`]).
pub const THREAD_WORDS: usize = 3;

/// Everything this crate keeps per thread on the CPU-section path, in one place: the CPU state
/// and [`THREAD_WORDS`] words for the embedding crate (kmem-malloc's fork slot). Every field is
/// a `Cell` of an integer, a `bool` or a raw pointer, so all-zero bits are a valid value, and
/// [`ThreadBlock::zero()`] — the state of a thread that has done nothing yet — is all-zero
/// bits (`CpuLocal::new`): the initial-exec block (`tls`) starts out as zero-filled `.tbss`.
#[repr(C)]
struct ThreadBlock {
    cpu: CpuLocal,
    words: [Cell<usize>; THREAD_WORDS],
}

impl ThreadBlock {
    /// A thread's block before it did anything.
    const fn zero() -> Self {
        Self {
            cpu: CpuLocal::new(),
            words: [const { Cell::new(0) }; THREAD_WORDS],
        }
    }

    /// Whether every field is zero (the initial-exec block's start: checked at compile time).
    /// The destructuring names every field, so a field added later must be added here.
    #[allow(dead_code)] // on targets using `thread_local!`
    const fn is_zero(&self) -> bool {
        let Self {
            cpu:
                CpuLocal {
                    not_slot,
                    depth,
                    armed,
                    last,
                    prev,
                    regs,
                },
            words,
        } = self;
        let mut zero =
            not_slot.get() == 0 && depth.get() == 0 && !armed.get() && last.get().is_null();
        zero &= prev.get().is_null();
        let mut i = 0;
        while i < regs.len() {
            zero &= regs[i].get().is_null();
            i += 1;
        }
        let mut i = 0;
        while i < words.len() {
            zero &= words[i].get() == 0;
            i += 1;
        }
        zero
    }
}

/// The thread's block through the initial-exec TLS model: `mov %fs:0` and one add from the
/// GOT, where a `thread_local!` in a shared library (`libkmem_malloc.so`) costs a
/// `__tls_get_addr` call per lookup (general-dynamic: stable Rust has no way to ask for
/// another model). x86-64 Linux only; elsewhere (and under Miri) a plain `thread_local!`.
///
/// The block is a symbol of our own in `.tbss` (`global_asm!`), so the dynamic linker places
/// it in the static TLS area, as it does for C's `__attribute__((tls_model("initial-exec")))`
/// (jemalloc's and mimalloc's thread caches): the library gets `DF_STATIC_TLS`. Loaded at
/// start (`LD_PRELOAD`, or linked) that costs nothing; a `dlopen` after start is served from
/// glibc's static TLS surplus (`rtld.optional_static_tls`, 512 bytes by default since 2.32),
/// and fails with "cannot allocate memory in static TLS block" if that is used up.
/// In an executable (the test binaries) the linker relaxes the sequence to a constant offset.
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
mod tls {
    use super::ThreadBlock;

    // The block starts as zero bytes; that must be a thread's initial state.
    const _: () = assert!(ThreadBlock::zero().is_zero());

    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".globl kmem_hosted_thread_block",
        ".hidden kmem_hosted_thread_block",
        ".type kmem_hosted_thread_block,@object",
        ".p2align {align}",
        "kmem_hosted_thread_block:",
        ".zero {size}",
        ".size kmem_hosted_thread_block, {size}",
        ".popsection",
        size = const core::mem::size_of::<ThreadBlock>(),
        align = const core::mem::align_of::<ThreadBlock>().trailing_zeros(),
        options(att_syntax),
    );

    /// Runs `f` on the calling thread's block.
    #[inline(always)]
    pub(super) fn with<R>(f: impl FnOnce(&ThreadBlock) -> R) -> R {
        let p: *const ThreadBlock;
        // SAFETY: `%fs:0` holds the thread pointer (the x86-64 TLS ABI: the TCB's first word
        // points to itself), and the GOT slot holds the block's offset from it (the
        // `R_X86_64_TPOFF64` the dynamic linker resolved before any of our code ran, or the
        // constant the static linker put in an executable). Reads only; the stack is untouched.
        // `pure, nomem`: both words are fixed for the life of the thread (nothing writes them
        // after the thread starts), so the result is a function of the thread alone and the
        // compiler may compute it once per function, across any stores of ours.
        unsafe {
            core::arch::asm!(
                "movq %fs:0, {p}",
                "addq kmem_hosted_thread_block@gottpoff(%rip), {p}",
                p = out(reg) p,
                options(att_syntax, pure, nomem, nostack),
            );
        }
        // SAFETY: `p` is this thread's copy of the `.tbss` block defined above: sized and
        // aligned for a `ThreadBlock` (the `const` operands), zero-filled by the dynamic linker
        // before the thread runs any code (for `dlopen`, in every existing thread before
        // `dlopen` returns), and a valid `ThreadBlock` as zero bits (its docs). It lives until
        // the thread's stack and TCB are freed, after every thread-local and pthread key
        // destructor ran (so `cpu_thread_exit` may use it). Only this thread reaches it — the
        // shared reference handed to `f` is not `Send`, `ThreadBlock` being `!Sync` — and all
        // access goes through `Cell`s, so the nested calls of a reentrant path (or a signal
        // handler on this thread) alias it only by shared references.
        f(unsafe { &*p })
    }

    /// Reads one word of this thread's CPU state at `$off` bytes into the block straight
    /// through `%fs`: one GOT load (in an executable, a constant) and one `%fs`-relative
    /// load. [`with`]'s address needs `%fs:0` loaded first, one more dependent load, which
    /// cost `KmemAlloc`'s `lifo64` pair half a nanosecond. One read per word, so the fast
    /// path's test loads a word only when it needs it (`owned_slot`).
    macro_rules! fast_word {
        ($(#[$m:meta])* $name:ident, $field:ident) => {
            $(#[$m])*
            #[inline(always)]
            pub(super) fn $name() -> usize {
                use core::mem::offset_of;
                let v: usize;
                // SAFETY: the GOT slot holds the block's offset from the thread pointer (as in
                // `with`); the offset is that of a word-sized, word-aligned `Cell` field inside
                // the block (`offset_of!`). Reading it is `Cell::get` by this thread, the only
                // one that reaches its block; `readonly` (not `nomem`) keeps the load ordered
                // after this thread's writes through the `Cell`s.
                unsafe {
                    core::arch::asm!(
                        "movq kmem_hosted_thread_block@gottpoff(%rip), {b}",
                        "movq %fs:{o}({b}), {v}",
                        b = out(reg) _,
                        v = out(reg) v,
                        o = const offset_of!(ThreadBlock, cpu)
                            + offset_of!(super::CpuLocal, $field),
                        options(att_syntax, pure, readonly, nostack, preserves_flags),
                    );
                }
                v
            }
        };
    }
    fast_word!(
        /// This thread's complemented slot (`CpuLocal::not_slot`).
        not_slot, not_slot
    );
    fast_word!(
        /// The platform this thread used last (`CpuLocal::last`), as an address.
        last, last
    );
    fast_word!(
        /// The platform used before it (`CpuLocal::prev`), as an address.
        prev, prev
    );
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
mod tls {
    use super::ThreadBlock;

    thread_local! {
        static BLOCK: ThreadBlock = const { ThreadBlock::zero() };
    }

    /// Runs `f` on the calling thread's block (const-initialised without drop glue: never
    /// destroyed, readable for the whole life of the thread).
    #[inline(always)]
    pub(super) fn with<R>(f: impl FnOnce(&ThreadBlock) -> R) -> R {
        BLOCK.with(f)
    }

    /// This thread's complemented slot (`CpuLocal::not_slot`).
    #[inline(always)]
    pub(super) fn not_slot() -> usize {
        with(|b| b.cpu.not_slot.get())
    }

    /// The platform this thread used last (`CpuLocal::last`), as an address.
    #[inline(always)]
    pub(super) fn last() -> usize {
        with(|b| b.cpu.last.get() as usize)
    }

    /// The platform used before it (`CpuLocal::prev`), as an address.
    #[inline(always)]
    pub(super) fn prev() -> usize {
        with(|b| b.cpu.prev.get() as usize)
    }
}

/// Runs `f` on the calling thread's [`THREAD_WORDS`] words: zero when the thread starts,
/// written only by the thread, kept until it exits (thread-exit destructors included). For
/// the crate embedding the platform, so its own per-thread state costs no second lookup
/// (an initial-exec TLS read on x86-64 Linux, see `tls`).
#[inline(always)]
pub fn with_thread_words<R>(f: impl FnOnce(&[Cell<usize>; THREAD_WORDS]) -> R) -> R {
    tls::with(|b| f(&b.words))
}

/// Runs `f` on the calling thread's CPU state.
#[inline(always)]
fn with_local<R>(f: impl FnOnce(&CpuLocal) -> R) -> R {
    tls::with(|b| f(&b.cpu))
}

/// `raw_smp_processor_id`: this thread's CPU slot if it has one, else [`SHARED_CPU`]; enters
/// no section and never blocks (for reports printed under locks).
pub(crate) fn raw_cpu_id() -> usize {
    with_local(|l| l.slot().min(SHARED_CPU))
}

/// The pthread key whose destructor takes an exiting thread's CPU offline; 0 = not created.
static EXIT_KEY: AtomicUsize = AtomicUsize::new(0);

/// Creates (once per process) and returns the exit key; `None` if keys are exhausted.
fn exit_key() -> Option<libc::pthread_key_t> {
    let k = EXIT_KEY.load(Ordering::Acquire);
    if k != 0 {
        return Some((k - 1) as libc::pthread_key_t);
    }
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; `cpu_thread_exit` has the destructor signature.
    if unsafe { libc::pthread_key_create(&mut key, Some(cpu_thread_exit)) } != 0 {
        return None;
    }
    match EXIT_KEY.compare_exchange(0, key as usize + 1, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(key),
        Err(winner) => {
            // Another thread created the key first: use theirs.
            // SAFETY: our key was never used.
            unsafe { libc::pthread_key_delete(key) };
            Some((winner - 1) as libc::pthread_key_t)
        }
    }
}

/// Thread exit: runs the CPU-dead hooks of the platforms this thread used, then frees its
/// CPU slot.
///
/// glibc runs pthread key destructors after the C++/Rust thread-local destructors
/// (`__call_tls_dtors`), so those still run on the thread's own CPU; anything later (other key
/// destructors, libc's own teardown) finds `DEAD` and uses [`SHARED_CPU`]. Not run for the
/// main thread at `exit()` (the process is going away; its CPU stays online like the boot
/// CPU).
extern "C" fn cpu_thread_exit(_marker: *mut libc::c_void) {
    // Never unwind into libc: a panicking hook aborts.
    struct AbortOnUnwind;
    impl Drop for AbortOnUnwind {
        fn drop(&mut self) {
            std::process::abort();
        }
    }
    let guard = AbortOnUnwind;
    // A thread that exits inside a shared section (a leaked guard) must not keep the shared
    // CPU locked forever.
    if shared_held_by_me() {
        // SAFETY: we hold the lock (owner == me), so `depth` is ours.
        unsafe { *SHARED.depth.get() = 1 };
        shared_put();
    }
    with_local(|l| {
        // Sections left open (leaked guards) end with the thread.
        l.depth.set(0);
        let slot = l.slot();
        l.set_slot(DEAD);
        l.last.set(core::ptr::null());
        l.prev.set(core::ptr::null());
        let online = slot < SHARED_CPU;
        for reg in &l.regs {
            let raw = reg.replace(core::ptr::null());
            if raw.is_null() {
                continue;
            }
            // SAFETY: `raw` came from `into_raw` and the entry, now cleared, owned it.
            let w = unsafe { MapWeak::<Inner>::from_raw(raw) };
            if online {
                if let Some(p) = w.upgrade() {
                    // SAFETY: `slot` is this exiting thread's exclusive slot (`online`); the
                    // thread is marked DEAD above and the slot is released only below, after
                    // every hook ran.
                    unsafe { p.hook.cpu_dead(slot) };
                }
            }
        }
        if online {
            release_slot(slot);
        }
    });
    core::mem::forget(guard);
}

/// `get_cpu()` for the platform `plat`.
#[inline]
pub(crate) fn cpu_get(plat: &MapArc<Inner>) -> usize {
    match owned_slot(plat) {
        Some(slot) => {
            #[cfg(debug_assertions)]
            with_local(CpuLocal::enter);
            slot
        }
        None => with_local(|l| own_slot_slow(l, plat)).unwrap_or_else(shared_get),
    }
}

/// The fast path's test: the thread's exclusive slot if it has one and tracks `plat` among
/// the two platforms used last.
#[inline(always)]
fn owned_slot(plat: &MapArc<Inner>) -> Option<usize> {
    let id = MapArc::as_id(plat) as usize;
    let slot = !tls::not_slot();
    (slot < SHARED_CPU && (tls::last() == id || tls::prev() == id)).then_some(slot)
}

/// `Platform::cpu_owned`: the thread's exclusive slot when [`cpu_get`] would return it at
/// once (the thread tracks `plat`), else `None`. Such a slot is the thread's until it exits
/// and no other live thread holds it (invariant 1); leaving a section of it changes nothing
/// but the balance count of debug builds (invariant 2), which a section never entered does
/// not disturb.
#[inline(always)]
pub(crate) fn cpu_owned(plat: &MapArc<Inner>) -> Option<usize> {
    owned_slot(plat)
}

/// The slow part of [`cpu_get`] and [`cpu_try_get`]: registers `plat` with the thread and
/// claims a slot if the thread has none. Returns the thread's exclusive slot, its section
/// entered, or `None` when the thread must use [`SHARED_CPU`].
#[cold]
fn own_slot_slow(l: &CpuLocal, plat: &MapArc<Inner>) -> Option<usize> {
    // Once offline (in or after the exit handler: hooks, later destructors), a thread tracks
    // nothing more; a weak reference taken now would never be released.
    if l.slot() == DEAD || !l.register(plat) {
        return None;
    }
    let mut slot = l.slot();
    if slot == NO_SLOT && !shared_held_by_me() {
        if let Some(s) = claim_slot() {
            l.set_slot(s);
            slot = s;
        }
    }
    if slot >= SHARED_CPU {
        return None;
    }
    l.enter();
    Some(slot)
}

/// `get_cpu()` that never waits (the CPU-section entry of kmem's `*_nolock` paths): the
/// same as [`cpu_get`] except that a thread served by the shared slot gets `None` instead of
/// waiting while another thread holds that slot. A thread with its own slot, or already inside
/// a section, always gets its CPU.
pub(crate) fn cpu_try_get(plat: &MapArc<Inner>) -> Option<usize> {
    if let Some(slot) = owned_slot(plat) {
        #[cfg(debug_assertions)]
        with_local(CpuLocal::enter);
        return Some(slot);
    }
    with_local(|l| own_slot_slow(l, plat)).map_or_else(shared_try_get, Some)
}

/// `put_cpu()`.
///
/// # Panics
/// If `cpu` is [`SHARED_CPU`] and this thread does not hold it.
#[inline]
pub(crate) fn cpu_put(cpu: usize) {
    if cpu == SHARED_CPU {
        shared_put();
    } else {
        // An exclusive slot stays the thread's until it exits: leaving the section changes
        // nothing (invariant 2), except the balance check of debug builds.
        #[cfg(debug_assertions)]
        with_local(|l| {
            debug_assert_eq!(l.slot(), cpu, "cpu_put of a CPU this thread does not own");
            debug_assert!(l.depth.get() > 0, "unbalanced cpu_put");
            l.depth.set(l.depth.get().saturating_sub(1));
        });
    }
}

/// The exclusive CPU slot of the calling thread, if it has one.
///
/// A thread gets its slot at its first CPU section on any platform and keeps it until it exits.
pub fn thread_cpu_slot() -> Option<usize> {
    Some(with_local(CpuLocal::slot)).filter(|&s| s < SHARED_CPU)
}

/// `Platform::membarrier`: every running thread of the process executes a full memory barrier
/// before the system call returns (linux/membarrier.h). `MEMBARRIER_CMD_PRIVATE_EXPEDITED`
/// needs a registration, which is per process and not inherited by a forked child: a refused
/// command registers and retries, then falls back to `MEMBARRIER_CMD_GLOBAL` (a grace period,
/// slow but needing none). `false` when the kernel refuses all of them (an old kernel, a
/// seccomp filter, Valgrind).
pub(crate) fn membarrier() -> bool {
    // include/uapi/linux/membarrier.h
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1 << 0;
    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;
    let cmd = |c: libc::c_long| {
        // SAFETY: membarrier takes no pointers; registering twice is harmless.
        let r = unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                c,
                0 as libc::c_long,
                0 as libc::c_long,
            )
        };
        r == 0
    };
    cmd(MEMBARRIER_CMD_PRIVATE_EXPEDITED)
        || (cmd(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) && cmd(MEMBARRIER_CMD_PRIVATE_EXPEDITED))
        || cmd(MEMBARRIER_CMD_GLOBAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cpu_try_get`'s shared slot never waits: `None` while another thread holds it,
    /// nested entries by the holder count.
    #[test]
    fn shared_try_get_does_not_wait() {
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            assert_eq!(shared_get(), SHARED_CPU);
            assert_eq!(shared_try_get(), Some(SHARED_CPU), "nested: counts");
            shared_put();
            held_tx.send(()).unwrap();
            done_rx.recv().unwrap();
            shared_put();
        });
        held_rx.recv().unwrap();
        assert_eq!(shared_try_get(), None, "held by another thread");
        done_tx.send(()).unwrap();
        t.join().unwrap();
        // Free again (other tests may hold it for a moment: retry until they let go).
        loop {
            if let Some(c) = shared_try_get() {
                assert_eq!(c, SHARED_CPU);
                shared_put();
                break;
            }
            std::thread::yield_now();
        }
    }

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

    /// A new thread's block is the zero state (no slot, nothing tracked, words 0), and each
    /// thread has its own.
    #[test]
    fn thread_block_starts_zero_and_is_per_thread() {
        with_thread_words(|w| {
            w[0].set(7);
            w[1].set(9);
        });
        std::thread::spawn(|| {
            with_thread_words(|w| assert!(w.iter().all(|c| c.get() == 0)));
            with_local(|l| {
                assert_eq!(l.slot(), NO_SLOT);
                assert!(!l.armed.get() && l.depth.get() == 0);
                assert!(l.last.get().is_null() && l.prev.get().is_null());
                assert!(l.regs.iter().all(|r| r.get().is_null()));
            });
            assert_eq!(thread_cpu_slot(), None);
            with_thread_words(|w| w[0].set(1));
        })
        .join()
        .unwrap();
        with_thread_words(|w| {
            assert_eq!((w[0].get(), w[1].get()), (7, 9));
            w[0].set(0);
            w[1].set(0);
        });
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
