//! [`HostedPlatform`]: the [`Platform`] implementation for Linux userspace.
//!
//! The platform handle owns a small control block (`control::Inner`, in its own mapping, see
//! `maparc`) holding the physical memory, the CPU-dead hook, the clock, the random
//! state, the console and the process name. Threads that entered CPU sections hold weak
//! references to it for hot-unplug; windows hold strong references (they map its memfd).
//!
//! Dropping the handle first closes its hook cell (waiting for a hook call in progress; no hook
//! runs afterwards), then releases the control block, which unmaps the direct map and closes
//! the memfd once no window and no hook call in progress holds it.

use core::sync::atomic::Ordering;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use kmem::platform::{CpuDeadHook, LogLevel, PageFaultHook, Platform};
use kmem::PhysAddr;

use crate::config::{Clock, HostedConfig};
use crate::console::Console;
use crate::control::Inner;
use crate::cpu::{self, NR_CPUS};
use crate::maparc::MapArc;
use crate::stack::StackWalk;
use crate::sys;
use crate::window::VirtWindow;

/// Linux userspace as a kmem machine: a memfd as physical memory, threads as CPUs.
///
/// See the [crate documentation](crate) for the model. The handle is small (a pointer to its
/// control block and the cached direct-map base) and is not `Clone`: the machine built on it
/// owns it.
///
/// # CPU-dead hook
/// The hook registered with [`Platform::set_cpu_dead_hook`] runs on an exiting thread (one
/// that entered a section on this platform and had its own CPU), from its pthread-key
/// destructor, with that thread's CPU. It may run at any time until this handle's drop begins
/// (the drop waits for a call in progress), so its `ctx` must stay valid until then: memory
/// inside the direct map, as kmem's machine state is, qualifies. Inside the hook, sections run
/// on [`crate::SHARED_CPU`]. Do not drop the platform or set its hook from inside a hook or a
/// CPU section.
pub struct HostedPlatform {
    inner: MapArc<Inner>,
    base: *mut u8,
    /// The window mirroring kmem's kernel mappings (vmalloc, kmap), reserved on first use by
    /// [`Platform::kernel_window`].
    kwin: std::sync::OnceLock<VirtWindow>,
    /// The window holding the virtual memory map (SPARSEMEM_VMEMMAP), reserved on first use
    /// by [`Platform::vmemmap_window`].
    vwin: std::sync::OnceLock<VirtWindow>,
    /// Whether the configuration asked for room to grow (`max_phys_size` set): only then is
    /// [`Platform::max_phys_end`] above the current end (memory hotplug). The default
    /// reservation up to `DEFAULT_MAX_PHYS` stays [`HostedPlatform::grow_phys`]'s alone.
    hotplug: bool,
    /// The vmemmap window maps private anonymous memory instead of the memfd's pages
    /// ([`HostedPlatform::use_private_vmemmap`]).
    vmemmap_private: core::sync::atomic::AtomicBool,
    /// The private vmemmap is advised for transparent huge pages
    /// ([`HostedPlatform::use_huge_vmemmap`]).
    vmemmap_huge: core::sync::atomic::AtomicBool,
    /// [`Platform::vmemmap_window`] says `None` ([`HostedPlatform::disable_vmemmap`]).
    vmemmap_off: core::sync::atomic::AtomicBool,
    /// Memory for kmem's debugging state (its lock validator, its stack depot), off the
    /// machine's books.
    debug: std::sync::OnceLock<DebugArea>,
    /// The stack walker ([`StackWalk`] as u8).
    walk: core::sync::atomic::AtomicU8,
    /// kmemcheck's tracked pages are really hidden and accesses trapped
    /// ([`HostedPlatform::enable_kmemcheck_traps`]).
    kmc_traps: core::sync::atomic::AtomicBool,
    /// System calls with arguments in the direct map are trapped too
    /// ([`HostedPlatform::enable_kmemcheck_syscalls`]).
    kmc_sys: core::sync::atomic::AtomicBool,
}

/// Anonymous memory for [`Platform::debug_area`], unmapped with the platform.
struct DebugArea {
    base: core::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the area is plain memory reachable only through the raw pointer handed to kmem,
// which follows its own rules for it; mmap/munmap are thread safe.
unsafe impl Send for DebugArea {}
// SAFETY: `&DebugArea` exposes only the immutable base and length; the area's memory is reached
// only through the raw pointer handed to kmem, and munmap on drop needs `&mut`.
unsafe impl Sync for DebugArea {}

impl DebugArea {
    fn new(len: usize) -> Option<Self> {
        let len = len.checked_next_multiple_of(crate::PAGE_SIZE)?;
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing; no
        // existing mapping is affected.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        Some(Self {
            base: core::ptr::NonNull::new(p.cast())?,
            len,
        })
    }
}

impl Drop for DebugArea {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `new`, unmapped once, when nothing uses it any
        // more (the platform, and so the machine, is going away).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

// SAFETY: `base` is a cached copy of `inner.mem.base()`, the address of memory owned by
// `inner`, which is Send + Sync; the handle has no thread affinity.
unsafe impl Send for HostedPlatform {}
// SAFETY: `&HostedPlatform` reads only the immutable cached `base` and goes through `Inner`'s
// synchronised fields (atomics, locks) for everything else; the direct map is reached only through
// raw pointers.
unsafe impl Sync for HostedPlatform {}

impl core::fmt::Debug for HostedPlatform {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HostedPlatform")
            .field("direct_map_base", &self.base)
            .field("phys_end", &self.inner.mem.end())
            .field("max_phys", &self.inner.mem.max())
            .field("console", &self.inner.console.kind())
            .field("clock", &self.inner.clock)
            .finish()
    }
}

impl HostedPlatform {
    /// Creates the platform: a sparse memfd of `config.phys_size` bytes mapped as the direct
    /// map, with address space reserved up to the maximum.
    ///
    /// Construction does not call the global allocator (the control block is its own mapping),
    /// so a platform can be built inside a `#[global_allocator]`.
    ///
    /// # Errors
    /// `InvalidInput` for a size that is zero or not a multiple of 4 KiB, or a maximum below
    /// the size; `Unsupported` if the host page size is not 4 KiB; otherwise the error of the
    /// failing system call (`memfd_create`, `ftruncate`, `mmap`).
    pub fn new(config: HostedConfig) -> io::Result<Self> {
        let hotplug = config.max_phys_size > config.phys_size;
        let inner = Inner::create(config)?;
        let base = inner.mem.base();
        Ok(Self {
            inner,
            base,
            kwin: std::sync::OnceLock::new(),
            vwin: std::sync::OnceLock::new(),
            hotplug,
            vmemmap_private: core::sync::atomic::AtomicBool::new(false),
            vmemmap_huge: core::sync::atomic::AtomicBool::new(false),
            vmemmap_off: core::sync::atomic::AtomicBool::new(false),
            debug: std::sync::OnceLock::new(),
            walk: core::sync::atomic::AtomicU8::new(StackWalk::Unwind as u8),
            kmc_traps: core::sync::atomic::AtomicBool::new(false),
            kmc_sys: core::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Chooses how [`Platform::stack_trace`] walks stacks (the default is
    /// [`StackWalk::Unwind`]); see [`StackWalk`].
    pub fn set_stack_walk(&self, walk: StackWalk) {
        self.walk
            .store(walk as u8, core::sync::atomic::Ordering::Relaxed);
    }

    /// The stack walker in use.
    pub fn stack_walk(&self) -> StackWalk {
        StackWalk::from_u8(self.walk.load(core::sync::atomic::Ordering::Relaxed))
    }

    /// With [`HostedPlatform::enable_kmemcheck_traps`], for a whole program under kmemcheck
    /// (libkmem_malloc.so): system calls given pointers into hidden pages are trapped by a
    /// seccomp filter and made with the pages shown, and what the host kernel writes is
    /// marked initialised (see `kmemcheck_sys.rs`). Process-wide and permanent: sets
    /// `PR_SET_NO_NEW_PRIVS`, and the filters outlive the platform.
    pub fn enable_kmemcheck_syscalls(&self) {
        self.enable_kmemcheck_traps();
        self.kmc_sys
            .store(cfg!(target_arch = "x86_64"), Ordering::Relaxed);
    }

    /// Asks for kmemcheck's real traps (`kmemcheck=1|2` on the machine's command line, x86_64
    /// hosts): the machine booted on this platform hides its tracked pages (`PROT_NONE`), and
    /// every access to them is caught by a `SIGSEGV` handler that decodes the instruction,
    /// lets kmem check its shadow, and single-steps it (see `kmemcheck.rs`). Call before
    /// `Machine::boot`. Without it kmemcheck's shadow is consulted only by explicit
    /// accesses (the shell's `peek`/`poke`). Every access to the machine's slab memory then
    /// costs two signals: this is for finding bugs, not for speed.
    pub fn enable_kmemcheck_traps(&self) {
        self.kmc_traps
            .store(cfg!(target_arch = "x86_64"), Ordering::Relaxed);
    }

    /// Makes the memmap a private part of this process, for a platform whose direct map was
    /// made a private mapping so that `fork` copies the machine (libkmem_malloc.so): from
    /// then on [`Platform::map_vmemmap`] maps fresh private anonymous memory in the vmemmap
    /// window, not the memfd's pages (which a forked child would share with its parent, and
    /// which are not the private direct map's copies anyway), and releases the direct map's
    /// pages of the range (`MADV_DONTNEED`): the memmap exists once per process, in the
    /// window, and `fork` copies it on write with the rest. kmem does not use the direct map
    /// of a range it mapped at vmemmap (the [`Platform`] contract allows the window to be
    /// memory of its own). Call before `Machine::boot`.
    pub fn use_private_vmemmap(&self) {
        self.vmemmap_private.store(true, Ordering::Release);
    }

    /// As [`HostedPlatform::use_private_vmemmap`], and advises the memmap's mappings for
    /// transparent huge pages (`MADV_HUGEPAGE`; 2 MiB per 128 MiB section, one PMD, as
    /// Linux maps its vmemmap), so that the memmap is faulted in and zeroed 2 MiB at a time.
    /// A win where the host has free 2 MiB blocks at hand (a 64 GiB machine boots in 0.34 s
    /// instead of 0.55 s); a loss in a VM whose free page reporting hands those blocks back
    /// to its hypervisor, where every one of them is faulted in again 4 KiB at a time (3 s;
    /// docs/BENCHMARKS.md "Issue 19, session 6"). Call before `Machine::boot`.
    pub fn use_huge_vmemmap(&self) {
        self.vmemmap_huge.store(true, Ordering::Release);
        self.use_private_vmemmap();
    }

    /// Offers no vmemmap window ([`Platform::vmemmap_window`] returns `None`), as bare metal
    /// does: a machine booted on the platform keeps its memmap as one array in the direct
    /// map under the section table, and cannot hot-add memory. For testing that path. Call
    /// before `Machine::boot`.
    pub fn disable_vmemmap(&self) {
        self.vmemmap_off.store(true, Ordering::Release);
    }

    /// The largest physical end [`HostedPlatform::grow_phys`] accepts.
    pub fn max_phys(&self) -> PhysAddr {
        PhysAddr::new(self.inner.mem.max())
    }

    /// Grows physical memory to `new_end` (memory hotplug): the memfd is extended and the new
    /// range mapped into the reserved tail of the direct map, after which
    /// [`Platform::phys_end`] returns `new_end`. Existing addresses do not move. Growing to the
    /// current end does nothing.
    ///
    /// # Errors
    /// `InvalidInput` if `new_end` is not a multiple of 4 KiB, below the current end, or above
    /// [`HostedPlatform::max_phys`]; otherwise the `ftruncate`/`mmap` error (the old size is
    /// kept then).
    pub fn grow_phys(&self, new_end: PhysAddr) -> io::Result<()> {
        self.inner.mem.grow(new_end.as_u64())
    }

    /// Grows physical memory to `new_end` as [`HostedPlatform::grow_phys`], the new range
    /// backed by node `nid`'s memfd (hot-added memory of that node; created if the node had
    /// none).
    ///
    /// # Errors
    /// As [`HostedPlatform::grow_phys`]; `InvalidInput` for a node number of
    /// `kmem::MAX_NUMA_NODES` or more.
    pub fn grow_phys_node(&self, new_end: PhysAddr, nid: usize) -> io::Result<()> {
        self.inner.mem.grow_node(new_end.as_u64(), nid)
    }

    /// Backs each NUMA node's memory with its own memfd (`kmem-phys-nodeN`), mapped at the
    /// node's physical ranges; the direct map stays one window. A hole between two ranges
    /// (the PCI hole), or after the last, goes to the file of the range below it, so node
    /// N's file is as long as the addresses it spans (Linux's `node_spanned_pages`). On a
    /// host with several NUMA nodes each node's mapping is placed (`mbind`,
    /// `MPOL_PREFERRED`) on host node N mod the host's nodes; on a one-node host nothing is.
    /// Memory hot-added later goes to the file of the node `add_memory` names
    /// (`Platform::grow_phys_end_node`, [`HostedPlatform::grow_phys_node`]). Call before `Machine::boot`, with the machine's `NumaTopology::memblks`.
    ///
    /// # Errors
    /// `InvalidInput` if physical memory was written or split already, or a node number is
    /// out of range; otherwise the failing system call's error (one memfd backs everything
    /// again then).
    pub fn set_numa_memblks(&self, blks: &[kmem::NumaMemblk]) -> io::Result<()> {
        self.inner.mem.split_nodes(blks)
    }

    /// Node `nid`'s memfd and its size in bytes, if the node has one (node 0 always has):
    /// see [`HostedPlatform::set_numa_memblks`]. The descriptor is raw for the reasons
    /// [`HostedPlatform::memfd`] gives.
    pub fn node_memfd(&self, nid: usize) -> Option<(RawFd, u64)> {
        self.inner.mem.node_memfd(nid)
    }

    /// The memfd backing physical address `phys`, the offset in it, and how many bytes from
    /// there the same file continues; `None` beyond the end of physical memory.
    pub fn memfd_at(&self, phys: PhysAddr) -> Option<(RawFd, u64, u64)> {
        self.inner.mem.memfd_at(phys.as_u64())
    }

    /// Releases the host memory behind physical `[phys, phys + len)` (free page reporting,
    /// `MADV_REMOVE`-like): the range stays mapped and reads as zeroes afterwards, and costs no
    /// host memory until written again.
    ///
    /// # Errors
    /// `InvalidInput` if the range is not page aligned or extends beyond `phys_end`; otherwise
    /// the `fallocate` error.
    ///
    /// # Safety
    /// No Rust reference into the range may be live, and the machine must not rely on its
    /// contents (e.g. it is free memory): the bytes become zero under everyone's feet.
    pub unsafe fn punch_hole(&self, phys: PhysAddr, len: u64) -> io::Result<()> {
        // SAFETY: forwarded to the caller.
        unsafe { self.inner.mem.punch_hole(phys.as_u64(), len) }
    }

    /// Bytes of host memory the physical memory uses now (the memfd's allocated blocks).
    ///
    /// # Errors
    /// The `fstat` error.
    pub fn resident_bytes(&self) -> io::Result<u64> {
        self.inner.mem.resident_bytes()
    }

    /// Reserves a window of `len` bytes of address space in which physical pages can be mapped
    /// at chosen offsets (for vmalloc). The window outlives the platform handle safely (it
    /// keeps the physical memory alive).
    ///
    /// # Errors
    /// `InvalidInput` if `len` is zero or not a multiple of 4 KiB; otherwise the `mmap` error.
    pub fn reserve_window(&self, len: usize) -> io::Result<VirtWindow> {
        VirtWindow::new(self.inner.clone(), len, crate::PAGE_SIZE)
    }

    /// The descriptor of node 0's memfd, which holds all of physical memory (at file offset
    /// = physical address) unless [`HostedPlatform::set_numa_memblks`] split it, for reading
    /// it from outside (e.g. `pread` in tests, or handing it to a debugger).
    ///
    /// It is a raw descriptor on purpose: anything done with it needs `unsafe`, and changing
    /// the file (truncating it, writing to memory the machine uses) is the caller's
    /// responsibility. It stays valid while the platform lives.
    pub fn memfd(&self) -> RawFd {
        self.inner.mem.fd().as_raw_fd()
    }

    /// The console sink.
    pub fn console(&self) -> Console {
        self.inner.console.kind()
    }

    /// A copy of everything printed so far with [`Console::Capture`] (empty otherwise).
    pub fn captured(&self) -> String {
        self.inner.console.captured()
    }

    /// Everything printed so far with [`Console::Capture`], leaving the capture empty.
    pub fn take_captured(&self) -> String {
        self.inner.console.take_captured()
    }

    /// Moves the clock `n` jiffies forward (with either clock).
    pub fn advance_jiffies(&self, n: u64) {
        self.inner.jiffies_offset.fetch_add(n, Ordering::Relaxed);
    }
}

impl Drop for HostedPlatform {
    fn drop(&mut self) {
        // No hook may run once the platform (and the machine around it) starts going away.
        crate::fault::unregister(self.base as usize);
        self.inner.hook.close();
    }
}

/// `HPAGE_PMD_SIZE` on x86_64: the 2 MiB a PMD maps.
const HPAGE_PMD_SIZE: usize = 2 << 20;

/// `0x9e3779b97f4a7c15`: 2^64 / φ, the increment of SplitMix64 (Steele, Lea, Flood 2014).
const SPLITMIX_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

fn splitmix64_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// SAFETY:
// - the direct map `[base, base + phys_end())` is a read-write shared mapping of the memfd,
//   owned by `inner.mem`, which lives at least as long as this handle; it only grows;
// - `cpu_get` returns the calling thread's exclusive slot (unique among live threads, never
//   handed out again before the thread's exit hooks ran) or SHARED_CPU with its lock held
//   until the matching outermost `cpu_put`; both are below NR_CPUS; a thread cannot migrate;
// - hooks are called as `CpuDeadHook` requires (see `hook::HookCell::cpu_dead`).
unsafe impl Platform for HostedPlatform {
    // A futex mutex that never calls the global allocator: kmem's locks sit under
    // KmemAlloc and libkmem_malloc.so, where parking_lot's lazily allocated parking table
    // would re-enter the allocator on first contention.
    type RawLock = crate::futex::RawFutexMutex;

    #[inline]
    fn direct_map_base(&self) -> *mut u8 {
        self.base
    }

    #[inline]
    fn phys_end(&self) -> PhysAddr {
        PhysAddr::new(self.inner.mem.end())
    }

    #[inline]
    fn possible_cpus(&self) -> usize {
        NR_CPUS
    }

    fn prefault(&self, addr: *mut u8, len: usize) {
        // Populate the range in one system call instead of one page fault per page
        // (MADV_POPULATE_WRITE, Linux 5.14); failure only loses the speed-up.
        let start = addr as usize & !4095;
        let end = (addr as usize + len + 4095) & !4095;
        // SAFETY: madvise with MADV_POPULATE_WRITE only faults in pages of our own shared
        // mapping; it does not change their contents or the mapping.
        let _ = unsafe {
            libc::madvise(
                start as *mut libc::c_void,
                end - start,
                libc::MADV_POPULATE_WRITE,
            )
        };
    }

    unsafe fn zero_unbacked(&self, addr: *mut u8, len: usize) -> bool {
        let base = self.base as usize;
        let Some(phys) = (addr as usize).checked_sub(base) else {
            return false;
        };
        // SAFETY: the range is allocated to the caller and nothing references it (the
        // caller's contract), so its bytes may become zero under it. The memfd's pages go
        // (a shared direct map reads the hole: zeroes) ...
        if unsafe { self.punch_hole(PhysAddr::new(phys as u64), len as u64) }.is_err() {
            return false;
        }
        // ... and so do the private copies of a private direct map (libkmem_malloc.so's,
        // see `use_private_vmemmap`), which then read the memfd's hole too, or anonymous
        // memory's zero page; on a shared mapping this only drops page table entries.
        // SAFETY: `[addr, addr + len)` is allocated to the caller with nothing referring
        // into it (the caller's contract), so its bytes may become zero; MADV_DONTNEED keeps
        // the mapping, only its pages go.
        unsafe { libc::madvise(addr.cast(), len, libc::MADV_DONTNEED) == 0 }
    }

    #[inline]
    fn cpu_get(&self) -> usize {
        cpu::cpu_get(&self.inner)
    }

    fn cpu_try_get(&self) -> Option<usize> {
        cpu::cpu_try_get(&self.inner)
    }

    #[inline]
    fn cpu_put(&self, cpu: usize) {
        cpu::cpu_put(cpu)
    }

    #[inline(always)]
    fn cpu_owned(&self) -> Option<usize> {
        cpu::cpu_owned(&self.inner)
    }

    fn membarrier(&self) -> bool {
        cpu::membarrier()
    }

    fn set_cpu_dead_hook(&self, hook: CpuDeadHook) {
        self.inner.hook.set(hook);
    }

    fn jiffies(&self) -> u64 {
        let manual = self.inner.jiffies_offset.load(Ordering::Relaxed);
        match self.inner.clock {
            Clock::Manual => manual,
            Clock::Monotonic => manual.wrapping_add(self.inner.start.elapsed().as_millis() as u64),
        }
    }

    fn console_write(&self, _level: LogLevel, s: &str) {
        self.inner.console.write(s);
    }

    fn random_u64(&self) -> u64 {
        let s = self
            .inner
            .rng
            .fetch_add(SPLITMIX_GAMMA, Ordering::Relaxed)
            .wrapping_add(SPLITMIX_GAMMA);
        splitmix64_mix(s)
    }

    fn current_pid(&self) -> u32 {
        sys::gettid()
    }

    fn current_comm(&self) -> &str {
        self.inner.comm()
    }

    fn protect_direct_page(&self, va: *mut u8, protect: bool) -> bool {
        let (base, a) = (self.base as usize, va as usize);
        let end = base + self.inner.mem.end() as usize;
        if a < base || a >= end || !a.is_multiple_of(crate::PAGE_SIZE) {
            return false;
        }
        let prot = if protect {
            libc::PROT_NONE
        } else {
            libc::PROT_READ | libc::PROT_WRITE
        };
        // SAFETY: one page of our own direct map (checked above); changing its protection
        // affects only accesses to it, which kmem owns (KFENCE's guard page or freed object's
        // page, or a page kmemcheck tracks); a fault there is caught by `fault`'s handler.
        unsafe { crate::kmemcheck_sys::mprotect(va.cast(), crate::PAGE_SIZE, prot) }
    }

    fn set_kmemcheck_hook(&self, hook: kmem::platform::KmemcheckHook) -> bool {
        if !self.kmc_traps.load(Ordering::Relaxed) {
            return false;
        }
        let start = self.base as usize;
        let end = start + self.inner.mem.max() as usize;
        // The SIGSEGV and SIGTRAP handlers first: once the seccomp filter is in, a
        // `sigaction` for them from libc is refused (see kmemcheck_sys).
        if !crate::fault::register_kmemcheck(start, end, hook) {
            return false;
        }
        !self.kmc_sys.load(Ordering::Relaxed) || crate::kmemcheck_sys::register(start, end, hook)
    }

    fn set_page_fault_hook(&self, hook: PageFaultHook) {
        let start = self.base as usize;
        crate::fault::register(start, start + self.inner.mem.max() as usize, hook);
    }

    fn debug_area(&self, size: usize, align: usize) -> Option<core::ptr::NonNull<u8>> {
        // Page-aligned anonymous memory serves any alignment up to a page.
        if align > crate::PAGE_SIZE || self.debug.get().is_some() {
            return None;
        }
        let area = DebugArea::new(size)?;
        let base = area.base;
        self.debug.set(area).ok()?;
        Some(base)
    }

    fn raw_cpu_id(&self) -> usize {
        cpu::raw_cpu_id()
    }

    fn stack_trace(&self, out: &mut [usize], frame: usize) -> usize {
        crate::stack::stack_trace(self.stack_walk(), out, frame)
    }

    fn symbolize(&self, addr: usize, out: &mut dyn core::fmt::Write) -> bool {
        crate::stack::symbolize(addr, out)
    }

    fn run_on_report_stack(&self, f: &mut dyn FnMut()) {
        crate::stack::run_on_report_stack(f);
    }

    fn cpu_relax(&self) {
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }

    fn kernel_window(&self, len: usize, align: usize) -> Option<*mut u8> {
        if let Some(w) = self.kwin.get() {
            return Some(w.base());
        }
        let w = VirtWindow::new(self.inner.clone(), len, align).ok()?;
        // A racing first call may have won; its window is the one used.
        let _ = self.kwin.set(w);
        self.kwin.get().map(|w| w.base())
    }

    fn map_kernel_range(&self, va: *mut u8, phys: PhysAddr, len: usize, writable: bool) -> bool {
        let Some(w) = self.kwin.get() else {
            return false;
        };
        match (va as usize).checked_sub(w.base() as usize) {
            Some(off) => w.map_phys_at(off, phys, len, writable).is_ok(),
            None => false,
        }
    }

    fn unmap_kernel_range(&self, va: *mut u8, len: usize) {
        if let Some(w) = self.kwin.get() {
            if let Some(off) = (va as usize).checked_sub(w.base() as usize) {
                let _ = w.unmap_at(off, len);
            }
        }
    }

    fn vmemmap_window(&self, len: usize) -> Option<*mut u8> {
        if self.vmemmap_off.load(Ordering::Acquire) {
            return None;
        }
        if let Some(w) = self.vwin.get() {
            return Some(w.base());
        }
        let w = VirtWindow::new(self.inner.clone(), len, 2 << 20).ok()?;
        // A racing first call may have won; its window is the one used.
        let _ = self.vwin.set(w);
        self.vwin.get().map(|w| w.base())
    }

    fn map_vmemmap(&self, va: *mut u8, phys: PhysAddr, len: usize) -> bool {
        let Some(w) = self.vwin.get() else {
            return false;
        };
        let Some(off) = (va as usize).checked_sub(w.base() as usize) else {
            return false;
        };
        if !self.vmemmap_private.load(Ordering::Acquire) {
            return w.map_phys_at(off, phys, len, true).is_ok();
        }
        // Private memory (see `use_private_vmemmap`): the window gets pages of its own and
        // the direct map's copies of the range are released.
        let in_ram = phys
            .as_u64()
            .checked_add(len as u64)
            .is_some_and(|end| end <= self.phys_end().as_u64());
        if !in_ram || !phys.as_u64().is_multiple_of(crate::PAGE_SIZE as u64) {
            return false;
        }
        let Ok(addr) = w.map_anon_at(off, len) else {
            return false;
        };
        // With `use_huge_vmemmap`, back the memmap with 2 MiB pages where whole PMDs are
        // mapped, as Linux maps its vmemmap (arch/x86/mm/init_64.c `vmemmap_populate` →
        // `vmemmap_populate_hugepages`): a section's 2 MiB of memmap is one PMD and kmem
        // writes every entry of it (`memmap_init`), so a huge page costs no more host memory
        // than 512 small ones. Failure (or a host whose THP mode is `never`) only loses it.
        if self.vmemmap_huge.load(Ordering::Acquire)
            && (addr as usize).is_multiple_of(HPAGE_PMD_SIZE)
            && len.is_multiple_of(HPAGE_PMD_SIZE)
        {
            // SAFETY: advice on the anonymous mapping just made in our window; it does not
            // change its contents or its mapping.
            unsafe { libc::madvise(addr.cast(), len, libc::MADV_HUGEPAGE) };
        }
        // SAFETY: `[phys, phys + len)` is inside the direct map (checked above), page aligned,
        // and kmem does not use its direct-map view while the range is mapped at vmemmap (the
        // Platform contract): dropping the private pages behind it loses nothing in use.
        unsafe {
            libc::madvise(
                self.base.add(phys.as_u64() as usize).cast(),
                len,
                libc::MADV_DONTNEED,
            )
        };
        true
    }

    fn share_vmemmap(&self, va: *mut u8, len: usize, template: *const u8) -> bool {
        let Some(w) = self.vwin.get() else {
            return false;
        };
        let base = w.base() as usize;
        let (Some(off), Some(toff)) = (
            (va as usize).checked_sub(base),
            (template as usize).checked_sub(base),
        ) else {
            return false;
        };
        w.share_readonly_at(off, len, toff).is_ok()
    }

    fn share_vmemmap_cow(&self, va: *mut u8, len: usize) -> bool {
        // Only a private memmap: a memmap mapped from the memfd is the direct map's pages as
        // well, and a private copy would part the two views.
        if !self.vmemmap_private.load(Ordering::Acquire) {
            return false;
        }
        let Some(w) = self.vwin.get() else {
            return false;
        };
        match (va as usize).checked_sub(w.base() as usize) {
            Some(off) => w.share_cow_at(off, len).is_ok(),
            None => false,
        }
    }

    fn unmap_vmemmap(&self, va: *mut u8, len: usize) {
        if let Some(w) = self.vwin.get() {
            if let Some(off) = (va as usize).checked_sub(w.base() as usize) {
                let _ = w.unmap_at(off, len);
            }
        }
    }

    fn max_phys_end(&self) -> PhysAddr {
        if self.hotplug {
            self.max_phys()
        } else {
            self.phys_end()
        }
    }

    fn grow_phys_end(&self, new_end: PhysAddr) -> bool {
        new_end <= self.phys_end() || self.grow_phys(new_end).is_ok()
    }

    fn grow_phys_end_node(&self, new_end: PhysAddr, nid: usize) -> bool {
        if nid == 0 {
            return self.grow_phys_end(new_end);
        }
        // Node nid's memfd (a machine whose nodes share one file has no such file: the range
        // goes to node 0's, checked before anything changes).
        new_end <= self.phys_end()
            || self.grow_phys_node(new_end, nid).is_ok()
            || self.node_memfd(nid).is_none() && self.grow_phys(new_end).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> HostedPlatform {
        HostedPlatform::new(HostedConfig::deterministic(1 << 20, 42)).unwrap()
    }

    /// The vmemmap window shows the memfd's pages, or (private) pages of its own.
    #[test]
    fn vmemmap_window_shared_or_private() {
        let page = crate::PAGE_SIZE;
        let p = small();
        let w = p.vmemmap_window(4 << 20).unwrap();
        assert_eq!(w as usize % (2 << 20), 0);
        assert!(p.map_vmemmap(w.wrapping_add(page), PhysAddr::new(0x2000), page));
        // SAFETY: the window page was just mapped; the direct map covers 1 MiB.
        unsafe {
            w.add(page).write(7);
            assert_eq!(p.direct_map_base().add(0x2000).read(), 7);
        }
        p.unmap_vmemmap(w.wrapping_add(page), page);

        let q = small();
        q.use_private_vmemmap();
        // SAFETY: inside q's 1 MiB direct map.
        unsafe { q.direct_map_base().add(0x2000).write(9) };
        let w = q.vmemmap_window(4 << 20).unwrap();
        assert!(
            !q.map_vmemmap(w, PhysAddr::new(1 << 20), page),
            "beyond RAM"
        );
        assert!(q.map_vmemmap(w, PhysAddr::new(0x2000), page));
        // SAFETY: the window page was just mapped.
        unsafe {
            assert_eq!(w.read(), 0, "fresh memory, not the memfd's page");
            w.write(5);
            assert_eq!(q.direct_map_base().add(0x2000).read(), 9);
        }
        q.unmap_vmemmap(w, page);
    }

    /// `THPeligible` of the mapping at `addr` in /proc/self/smaps.
    fn thp_eligible(addr: *mut u8) -> Option<bool> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let a = addr as usize;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        inside = (lo..hi).contains(&a);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(v) = line.strip_prefix("THPeligible:") {
                    return Some(v.trim() == "1");
                }
            }
        }
        None
    }

    /// With `use_huge_vmemmap` a section's 2 MiB of memmap is advised for huge pages
    /// (`THPeligible: 1` under the host's `madvise` mode); the plain private memmap is not.
    #[test]
    fn huge_vmemmap_is_advised_for_thp() {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if !mode.contains("[madvise]") {
            eprintln!("host THP mode is not madvise ({}): skipped", mode.trim());
            return;
        }
        let sec = HPAGE_PMD_SIZE;
        for huge in [false, true] {
            let p = HostedPlatform::new(HostedConfig::deterministic(4 << 20, 42)).unwrap();
            if huge {
                p.use_huge_vmemmap();
            } else {
                p.use_private_vmemmap();
            }
            let w = p.vmemmap_window(4 * sec).unwrap();
            let va = w.wrapping_add(sec);
            assert!(p.map_vmemmap(va, PhysAddr::new(sec as u64), sec));
            p.prefault(va, sec);
            assert_eq!(thp_eligible(va), Some(huge), "huge {huge}");
            // SAFETY: the window's second 2 MiB was just mapped writable.
            unsafe {
                va.write(1);
                va.add(sec - 1).write(2);
            }
            p.unmap_vmemmap(va, sec);
        }
    }

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let p = small();
        assert_eq!(p.jiffies(), 0);
        p.advance_jiffies(250);
        assert_eq!(p.jiffies(), 250);
        assert_eq!(p.hz(), 1000);
    }

    #[test]
    fn monotonic_clock_never_goes_back() {
        let p = HostedPlatform::new(HostedConfig {
            phys_size: 1 << 20,
            console: Console::Null,
            ..HostedConfig::default()
        })
        .unwrap();
        let a = p.jiffies();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let b = p.jiffies();
        assert!(b >= a + 3, "{a} then {b}");
        p.advance_jiffies(1000);
        assert!(p.jiffies() >= b + 1000);
    }

    #[test]
    fn seeded_random_is_reproducible() {
        let a = small();
        let b = small();
        let xs: Vec<u64> = (0..8).map(|_| a.random_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.random_u64()).collect();
        assert_eq!(xs, ys);
        let mut sorted = xs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 8);
        let c = HostedPlatform::new(HostedConfig::deterministic(1 << 20, 43)).unwrap();
        assert_ne!(c.random_u64(), xs[0]);
    }

    #[test]
    fn splitmix_reference_values() {
        // First outputs of SplitMix64 seeded with 0 (the reference C implementation).
        let p = HostedPlatform::new(HostedConfig::deterministic(1 << 20, 0)).unwrap();
        assert_eq!(p.random_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(p.random_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn comm_is_the_process_name() {
        let p = small();
        let expected = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(p.current_comm(), expected.trim_end());
        assert!(p.current_comm().len() < crate::control::TASK_COMM_LEN);
    }

    #[test]
    fn pid_is_the_thread_id() {
        let p = small();
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        assert_eq!(p.current_pid(), tid);
        let other = std::thread::scope(|s| s.spawn(|| p.current_pid()).join().unwrap());
        assert_ne!(other, tid);
    }

    #[test]
    fn console_capture_through_the_trait() {
        let p = small();
        p.console_write(LogLevel::Err, "BUG: Bad page state\n");
        assert_eq!(p.captured(), "BUG: Bad page state\n");
        assert_eq!(p.take_captured(), "BUG: Bad page state\n");
        assert_eq!(p.captured(), "");
    }

    #[test]
    fn nested_cpu_get_returns_same_cpu() {
        let p = small();
        let a = p.cpu_get();
        let b = p.cpu_get();
        assert_eq!(a, b);
        assert!(a < p.possible_cpus());
        p.cpu_put(b);
        p.cpu_put(a);
        assert_eq!(cpu::thread_cpu_slot(), Some(a));
    }

    #[test]
    fn sections_in_hooks_and_after_exit_do_not_track_the_platform() {
        // A hook that enters a section (as kmem's draining does) must not leave a weak
        // reference behind in the exiting thread: the platform's block would leak.
        /// # Safety
        /// `ctx` must point at a live `HostedPlatform` for as long as the hook is registered.
        unsafe fn hook(ctx: *const (), _cpu: usize) {
            // SAFETY: the test registers a live platform and keeps it alive.
            let p = unsafe { &*ctx.cast::<HostedPlatform>() };
            let c = p.cpu_get();
            p.cpu_put(c);
        }
        let p = Box::new(small());
        p.set_cpu_dead_hook(CpuDeadHook {
            ctx: (&*p as *const HostedPlatform).cast(),
            func: hook,
        });
        assert_eq!(MapArc::weak_count(&p.inner), 1);
        std::thread::scope(|s| {
            s.spawn(|| {
                let c = p.cpu_get();
                p.cpu_put(c);
                assert_eq!(MapArc::weak_count(&p.inner), 2);
            })
            .join()
            .unwrap();
        });
        assert_eq!(MapArc::weak_count(&p.inner), 1);
    }

    #[test]
    fn config_errors() {
        assert!(HostedPlatform::new(HostedConfig::new(0)).is_err());
        assert!(HostedPlatform::new(HostedConfig::new(12345)).is_err());
        let mut c = HostedConfig::new(8 << 20);
        c.max_phys_size = 4 << 20;
        assert!(HostedPlatform::new(c).is_err());
    }

    /// Under an address-space limit below [`DEFAULT_MAX_PHYS`](crate::DEFAULT_MAX_PHYS) (`ulimit -v`) a default
    /// platform still starts, with less room to grow; an explicit maximum is not shrunk. The
    /// limit would bind the whole test process, so a child re-run of this test sets it.
    #[test]
    fn default_growth_room_fits_an_address_space_limit() {
        const CHILD: &str = "KMEM_HOSTED_RLIMIT_AS_CHILD";
        const LIMIT: u64 = 8 << 30;
        if std::env::var_os(CHILD).is_some() {
            let lim = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            // SAFETY: `lim` is a valid rlimit for the duration of the call.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
            let p = HostedPlatform::new(HostedConfig::deterministic(1 << 20, 1)).unwrap();
            let max = p.max_phys().as_u64();
            assert!((2 << 20..LIMIT).contains(&max), "max_phys {max:#x}");
            // DEFAULT_MAX_PHYS halved some times.
            assert!(max.is_power_of_two(), "max_phys {max:#x}");
            p.grow_phys(PhysAddr::new(2 << 20)).unwrap();
            let mut c = HostedConfig::deterministic(1 << 20, 1);
            c.max_phys_size = crate::DEFAULT_MAX_PHYS;
            assert!(HostedPlatform::new(c).is_err());
            println!("child: max_phys {max:#x}");
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "platform::tests::default_growth_room_fits_an_address_space_limit",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("child: max_phys"),
            "{:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
