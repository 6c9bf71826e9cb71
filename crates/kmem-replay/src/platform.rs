//! [`ReplayPlatform`]: the hosted platform with the CPU chosen by the trace.
//!
//! A trace interleaves the events of several CPUs in timestamp order. To replay each event on
//! the CPU that recorded it (so per-CPU page lists and per-CPU slabs see the same traffic as the
//! traced kernel's), the replayer runs serially on one thread and, before each event, sets the
//! platform's *current CPU*; [`Platform::cpu_get`] returns it.
//!
//! # Invariants
//! - Only the thread that created the platform (the *owner*) may enter CPU sections: per-CPU
//!   exclusivity then holds trivially, since one thread runs one section stack at a time. A
//!   CPU section entered from another thread panics (kmem would otherwise share per-CPU data).
//! - The current CPU changes only between events, never inside a CPU section: the replayer
//!   calls [`ReplayPlatform::set_cpu`] only when no kmem call is running on the owner thread,
//!   so a section's `cpu_get` and `cpu_put` see the same CPU.
//!
//! Everything else (physical memory, kernel mappings for vmalloc, clock, console, randomness)
//! is the wrapped [`HostedPlatform`]'s.

use core::cell::Cell;
use core::sync::atomic::{AtomicUsize, Ordering};

use kmem::platform::{CpuDeadHook, LogLevel, Platform};
use kmem::PhysAddr;
use kmem_hosted::HostedPlatform;

thread_local! {
    /// A per-thread byte whose address identifies the thread (cheaper than `thread::current`).
    static THREAD_TOKEN: Cell<u8> = const { Cell::new(0) };
}

fn thread_token() -> usize {
    THREAD_TOKEN.with(|t| t as *const Cell<u8> as usize)
}

/// The hosted platform with a settable current CPU. See the module documentation.
pub struct ReplayPlatform {
    inner: HostedPlatform,
    cpu: AtomicUsize,
    owner: usize,
}

impl ReplayPlatform {
    /// Wraps `inner`; the calling thread becomes the owner, on CPU 0.
    pub fn new(inner: HostedPlatform) -> Self {
        Self {
            inner,
            cpu: AtomicUsize::new(0),
            owner: thread_token(),
        }
    }

    /// The wrapped hosted platform.
    pub fn hosted(&self) -> &HostedPlatform {
        &self.inner
    }

    /// Makes `cpu` the current CPU of the next CPU sections.
    ///
    /// # Panics
    /// If `cpu` is not below [`Platform::possible_cpus`].
    pub fn set_cpu(&self, cpu: usize) {
        assert!(cpu < self.inner.possible_cpus(), "CPU {cpu} out of range");
        self.cpu.store(cpu, Ordering::Relaxed);
    }

    /// The current CPU.
    pub fn current_cpu(&self) -> usize {
        self.cpu.load(Ordering::Relaxed)
    }
}

// SAFETY:
// - the direct map and everything but the CPUs is the wrapped HostedPlatform's, which upholds
//   the contract;
// - CPU sections: only the owner thread may enter one (checked in `cpu_get`), so no two callers
//   ever hold the same CPU; the CPU returned is below `possible_cpus()` (checked in `set_cpu`);
//   it changes only between events, never inside a section (module invariants), so the caller
//   does not migrate;
// - the CPU-dead hook is the hosted platform's: it runs only for threads that took hosted CPU
//   slots, which the replay never does, so it is simply never called for replay CPUs.
unsafe impl Platform for ReplayPlatform {
    type RawLock = <HostedPlatform as Platform>::RawLock;

    #[inline]
    fn direct_map_base(&self) -> *mut u8 {
        self.inner.direct_map_base()
    }

    #[inline]
    fn phys_end(&self) -> PhysAddr {
        self.inner.phys_end()
    }

    #[inline]
    fn possible_cpus(&self) -> usize {
        self.inner.possible_cpus()
    }

    #[inline]
    fn cpu_get(&self) -> usize {
        assert_eq!(
            thread_token(),
            self.owner,
            "a ReplayPlatform is driven by the thread that created it"
        );
        self.cpu.load(Ordering::Relaxed)
    }

    #[inline]
    fn cpu_put(&self, _cpu: usize) {}

    fn set_cpu_dead_hook(&self, hook: CpuDeadHook) {
        self.inner.set_cpu_dead_hook(hook);
    }

    fn jiffies(&self) -> u64 {
        self.inner.jiffies()
    }

    fn hz(&self) -> u64 {
        self.inner.hz()
    }

    fn console_write(&self, level: LogLevel, s: &str) {
        self.inner.console_write(level, s);
    }

    fn random_u64(&self) -> u64 {
        self.inner.random_u64()
    }

    fn prefault(&self, addr: *mut u8, len: usize) {
        self.inner.prefault(addr, len);
    }

    fn current_pid(&self) -> u32 {
        self.inner.current_pid()
    }

    fn current_comm(&self) -> &str {
        self.inner.current_comm()
    }

    fn kernel_window(&self, len: usize, align: usize) -> Option<*mut u8> {
        self.inner.kernel_window(len, align)
    }

    fn kernel_pgd(&self) -> Option<PhysAddr> {
        self.inner.kernel_pgd()
    }

    fn map_kernel_range(&self, va: *mut u8, phys: PhysAddr, len: usize, writable: bool) -> bool {
        self.inner.map_kernel_range(va, phys, len, writable)
    }

    fn unmap_kernel_range(&self, va: *mut u8, len: usize) {
        self.inner.unmap_kernel_range(va, len);
    }

    fn vmemmap_window(&self, len: usize) -> Option<*mut u8> {
        self.inner.vmemmap_window(len)
    }

    fn map_vmemmap(&self, va: *mut u8, phys: PhysAddr, len: usize) -> bool {
        self.inner.map_vmemmap(va, phys, len)
    }

    fn unmap_vmemmap(&self, va: *mut u8, len: usize) {
        self.inner.unmap_vmemmap(va, len);
    }

    fn max_phys_end(&self) -> PhysAddr {
        self.inner.max_phys_end()
    }

    fn grow_phys_end(&self, new_end: PhysAddr) -> bool {
        self.inner.grow_phys_end(new_end)
    }

    fn flush_tlb_kernel_range(&self, start: u64, end: u64) {
        self.inner.flush_tlb_kernel_range(start, end);
    }
}
