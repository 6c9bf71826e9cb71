//! [`KmemAlloc`]: kmem as Rust's `#[global_allocator]`.
//!
//! ```ignore
//! use kmem_hosted::KmemAlloc;
//! #[global_allocator]
//! static A: KmemAlloc = KmemAlloc::new();
//! ```
//!
//! # Boot
//! The machine boots on the first allocation, without allocating: [`HostedPlatform::new`] and
//! [`Machine::boot`] use only mappings and fixed buffers. The boot-once state machine is
//! [`BootOnce`] (see [`crate::once`]): one thread boots, the others wait until it is done.
//! Should the booting thread itself re-enter the allocator (it does not today), it is served
//! from a small bump arena ([`BumpArena`], 64 KiB inside the `KmemAlloc`) whose blocks are
//! never freed, so a future change there cannot deadlock the process. If the boot fails,
//! allocations are served from that arena until it is exhausted (then they fail), frees of
//! other blocks do nothing and `realloc` fails.
//!
//! # Serving requests
//! - alignment ≤ 8, or a kmalloc size class whose natural alignment covers the request:
//!   `kmalloc` (size classes up to 8 KiB; power-of-two classes are naturally aligned);
//! - alignment up to 4 KiB: `kmalloc` of the next power of two (slab objects naturally
//!   aligned, or page-aligned large kmallocs);
//! - alignment above 4 KiB (up to 2 MiB, the direct map's alignment): a large-kmalloc block
//!   from the page allocator of the order the alignment needs (buddy blocks are naturally
//!   aligned);
//! - more than `KMALLOC_MAX_SIZE` (4 MiB, the largest buddy block): anonymous `mmap` from the
//!   host, as a kernel would use vmalloc. Such blocks are recognised on free because they lie
//!   outside the machine's direct map.
//!
//! `dealloc` knows the size, so a kmalloc block is freed into the cache its size class names
//! without reading its `struct page` first ([`Machine::kfree_sized`]). `realloc` therefore
//! keeps a block only while the new size stays in its size class (or, for large kmallocs,
//! while `ksize` suffices); otherwise it allocates, copies and frees.
//!
//! # Growth
//! The machine boots with the RAM asked for: [`KmemAlloc::new`] simulates 4 GiB (a sparse
//! memfd: only touched pages cost host memory, plus the memmap of 64 bytes per page, 64 MiB);
//! [`KmemAlloc::with_ram`] picks another size. When an allocation finds it exhausted, the
//! machine grows by memory hotplug ([`crate::grow`]): a 128 MiB block is added with its
//! memmap on itself, onlined into ZONE_NORMAL, and the allocation retried — up to
//! [`KMEM_ALLOC_MAX_PHYS`] of physical address space (less where the host refuses to reserve
//! that much address space: then the machine does not grow). [`KmemAlloc::trim`] gives
//! hot-added blocks that are entirely free back (offline, remove, host memory released), as
//! `malloc_trim` does.
//! [`KmemAlloc::with_params`] also picks the slab allocator behind kmalloc (`slab=slab|slub|slob`).
//! Threads are CPUs of the machine (up to 255 exclusive ones); a thread's exit takes its CPU
//! offline and the next thread reuses its per-CPU slab state.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::ManuallyDrop;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use kmem::arch::Arch;
use kmem::slab::common::{
    kmalloc_index, kmalloc_size_roundup, SlabAllocatorKind, KMALLOC_MAX_CACHE_SIZE,
    KMALLOC_MAX_SIZE,
};
use kmem::slab::SlabLayer;
use kmem::{BootParams, GfpFlags, Machine, VirtAddr, PAGE_SIZE};

use crate::once::{Boot, BootOnce, BumpArena};
use crate::{HostedConfig, HostedPlatform, DIRECT_MAP_ALIGN};

/// Default simulated RAM of a [`KmemAlloc`] machine.
pub const KMEM_ALLOC_DEFAULT_RAM: u64 = 4 << 30;
/// Physical address space a [`KmemAlloc`] machine may grow to by memory hotplug.
pub const KMEM_ALLOC_MAX_PHYS: u64 = crate::DEFAULT_MAX_PHYS;

/// Flags of every allocation: may sleep, no reports (Rust reports allocation failure).
const GFP: GfpFlags = GfpFlags::GFP_KERNEL.union(GfpFlags::__GFP_NOWARN);

/// Bytes of the bump arena used only while the machine boots (or after it failed to).
const ARENA_LEN: usize = 64 << 10;

/// A `#[global_allocator]` backed by a kmem machine (see the module documentation).
pub struct KmemAlloc {
    /// The machine, never dropped: blocks it handed out may outlive the allocator.
    machine: BootOnce<ManuallyDrop<Machine<HostedPlatform>>>,
    /// The booted machine's slab layer once the boot succeeded without serving anything
    /// from the arena, else null: the fast paths' one load (boot-once state and arena check
    /// folded, and the machine's state pointer already followed). Set once, never cleared; it
    /// points into the machine's state, which lives as long as the machine, never dropped.
    fast: AtomicPtr<SlabLayer<HostedPlatform>>,
    ram: u64,
    /// The slab allocator the machine boots with (`slab=`).
    slab: SlabAllocatorKind,
    /// More kernel parameters (`kmemleak=on`, `kfence.sample_interval=`, `slub_debug=`…).
    cmdline: &'static str,
    arena: BumpArena<ARENA_LEN>,
    /// Grows the machine when it runs out (memory hotplug).
    grower: crate::Grower,
}

impl Default for KmemAlloc {
    fn default() -> Self {
        Self::new()
    }
}

impl KmemAlloc {
    /// An allocator whose machine (4 GiB of simulated RAM) boots on first use.
    pub const fn new() -> Self {
        Self::with_ram(KMEM_ALLOC_DEFAULT_RAM)
    }

    /// An allocator whose machine has `ram` bytes of simulated RAM (at least 64 MiB).
    pub const fn with_ram(ram: u64) -> Self {
        Self::with_params(ram, SlabAllocatorKind::Slub)
    }

    /// An allocator whose machine has `ram` bytes of simulated RAM (at least 64 MiB) and
    /// boots with `slab=` `slab` (SLAB, SLUB or SLOB behind kmalloc).
    pub const fn with_params(ram: u64, slab: SlabAllocatorKind) -> Self {
        Self::with_cmdline(ram, slab, "")
    }

    /// An allocator as [`KmemAlloc::with_params`] whose machine also boots with the kernel
    /// parameters `cmdline` (at most 200 bytes): the memory debuggers for a Rust program —
    /// `kmemleak=on` (then [`KmemAlloc::kmemleak_report`]), `kfence.sample_interval=MS`
    /// (KFENCE: an overflow into a guard page or a use after free of a sampled block is
    /// reported in the machine's log, see [`KmemAlloc::machine`]'s `dmesg`), `slub_debug=…`.
    ///
    /// # Examples
    /// ```ignore
    /// use kmem::slab::common::SlabAllocatorKind;
    /// #[global_allocator]
    /// static A: kmem_hosted::KmemAlloc =
    ///     kmem_hosted::KmemAlloc::with_cmdline(1 << 30, SlabAllocatorKind::Slub, "kmemleak=on");
    /// ```
    pub const fn with_cmdline(ram: u64, slab: SlabAllocatorKind, cmdline: &'static str) -> Self {
        Self {
            machine: BootOnce::new(),
            fast: AtomicPtr::new(ptr::null_mut()),
            ram: if ram < (64 << 20) { 64 << 20 } else { ram },
            slab,
            cmdline,
            arena: BumpArena::new(),
            grower: crate::Grower::new(),
        }
    }

    /// The machine, booting it if needed; `None` if boot failed or this thread is booting it.
    #[inline]
    pub fn machine(&self) -> Option<&Machine<HostedPlatform>> {
        match self.machine.get() {
            Some(m) => Some(m),
            None => self.machine_slow(),
        }
    }

    #[cold]
    #[inline(never)]
    fn machine_slow(&self) -> Option<&Machine<HostedPlatform>> {
        match self
            .machine
            .get_or_boot(|| self.boot().map(ManuallyDrop::new))
        {
            Boot::Ready(m) => {
                // Only the booting thread, re-entering during the boot, can have used the
                // arena (every other thread waits for the boot or finds it done): after
                // READY its use is final. With an unused arena no block can be the arena's,
                // so the fast paths may skip that check.
                if self.arena.used() == 0 {
                    let sl: &SlabLayer<HostedPlatform> = m;
                    let p: *const SlabLayer<HostedPlatform> = sl;
                    self.fast.store(p.cast_mut(), Ordering::Release);
                }
                Some(m)
            }
            Boot::Reentered | Boot::Failed => None,
        }
    }

    /// The machine's slab layer if it booted and the arena is unused (see `fast`): one load.
    #[inline(always)]
    fn fast_machine(&self) -> Option<&SlabLayer<HostedPlatform>> {
        let p = self.fast.load(Ordering::Acquire);
        // SAFETY: `fast` is null or points into the state of the machine inside
        // `self.machine`, which is never dropped (`ManuallyDrop`; the state lives in the
        // platform's memory as long as the machine), so it lives as long as `self`; the
        // Acquire load pairs with the Release store made after the boot published it.
        unsafe { p.as_ref() }
    }

    /// Whether a layout is served by `kmalloc(size)` directly and freed by
    /// `kfree_sized(size)`: an alignment every kmalloc size class gives (8 bytes) and a size
    /// of a kmalloc cache (1..=`KMALLOC_MAX_CACHE_SIZE`). `kmalloc_request` gives `Some(size)`
    /// for these.
    #[inline(always)]
    fn fast_layout(layout: Layout) -> bool {
        layout.align() <= 8 && layout.size().wrapping_sub(1) < KMALLOC_MAX_CACHE_SIZE
    }

    /// Everything but a fast-path allocation: boot, arena, over-aligned and large layouts,
    /// exhaustion (growth).
    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, layout: Layout, gfp: GfpFlags) -> *mut u8 {
        match self.machine() {
            Some(m) => self.alloc_growing(m, layout, gfp),
            // The arena is zero-initialised and never reused.
            None => self.arena_alloc(layout),
        }
    }

    /// Everything but a fast-path free (see [`GlobalAlloc::dealloc`] for the routes).
    ///
    /// # Safety
    /// As [`GlobalAlloc::dealloc`].
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_slow(&self, p: *mut u8, layout: Layout) {
        if self.in_arena(p) {
            return;
        }
        let Some(m) = self.machine() else { return };
        match self.kmalloc_request(layout.size(), layout.align()) {
            Some(r) if r <= KMALLOC_MAX_CACHE_SIZE => {
                // SAFETY: `alloc_with` served this layout with `kmalloc(r, GFP)` (or `realloc`
                // kept a block of the same size class), and the caller frees it once.
                unsafe { m.kfree_sized(p, r, GFP) }
            }
            _ if in_machine(m, p) => m.kfree(p),
            _ => {
                // SAFETY: a block of `layout.size()` bytes from `host_mmap`.
                unsafe { libc::munmap(p.cast(), layout.size()) };
            }
        }
    }

    fn boot(&self) -> Option<Machine<HostedPlatform>> {
        // SAFETY: sysconf has no preconditions.
        let ncpu = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        let ncpu = (ncpu.max(1) as usize).min(crate::NR_CPUS - 1);
        let mut params = BootParams::simulated(Arch::X86_64, self.ram, ncpu).ok()?;
        let slab = match self.slab {
            SlabAllocatorKind::Slub => "",
            SlabAllocatorKind::Slab => "slab=slab ",
            SlabAllocatorKind::Slob => "slab=slob ",
        };
        // "slab=… " and the caller's parameters, in a buffer of this frame (no allocation).
        let mut buf = [0u8; 256];
        let len = slab.len() + self.cmdline.len();
        if len > buf.len() {
            return None;
        }
        buf[..slab.len()].copy_from_slice(slab.as_bytes());
        buf[slab.len()..len].copy_from_slice(self.cmdline.as_bytes());
        params.cmdline = core::str::from_utf8(&buf[..len]).ok()?;
        let phys = params.e820.ram_end().next_multiple_of(PAGE_SIZE as u64);
        let mut config = HostedConfig::new(phys);
        config.console = crate::Console::Null;
        // Room to grow by memory hotplug: KMEM_ALLOC_MAX_PHYS, halved while the host refuses to
        // reserve it (an address-space limit, or Valgrind's largest single mapping), as the
        // platform's default room is; at worst a fixed size.
        let mut room = KMEM_ALLOC_MAX_PHYS.max(phys);
        let plat = loop {
            config.max_phys_size = room;
            match HostedPlatform::new(config) {
                Ok(p) => break p,
                Err(_) if room > phys => room = (room / 2).max(phys),
                Err(_) if room != 0 => room = 0,
                Err(_) => return None,
            }
        };
        // The log stays in the machine (`dmesg`); nothing is printed.
        Machine::boot(plat, &params).ok()
    }

    /// Serves a request from the boot-time arena (zeroed memory, never reused).
    fn arena_alloc(&self, layout: Layout) -> *mut u8 {
        self.arena.alloc(layout.size(), layout.align())
    }

    fn in_arena(&self, p: *mut u8) -> bool {
        self.arena.contains(p)
    }

    /// Whether kmalloc of `size` bytes is aligned to `align` (SLAB and SLUB: the natural
    /// alignment of the size class; SLOB: 8 bytes, the size itself when it is a power of two,
    /// a page from `PAGE_SIZE - 8` on).
    #[inline]
    fn kmalloc_fits(&self, size: usize, align: usize) -> bool {
        if align <= 8 {
            return true;
        }
        if self.slab == SlabAllocatorKind::Slob {
            return if size >= PAGE_SIZE - 8 {
                align <= PAGE_SIZE
            } else {
                size.is_power_of_two() && size >= align
            };
        }
        if size > KMALLOC_MAX_CACHE_SIZE {
            return align <= PAGE_SIZE;
        }
        let class = kmalloc_size_roundup(size);
        class & class.wrapping_neg() >= align
    }

    /// The `kmalloc` request size `alloc_with` uses for a layout, or `None` when the block
    /// comes from the page allocator by order (alignment above 4 KiB) or from the host.
    #[inline]
    fn kmalloc_request(&self, size: usize, align: usize) -> Option<usize> {
        if size > KMALLOC_MAX_SIZE {
            None
        } else if self.kmalloc_fits(size, align) {
            Some(size)
        } else if align <= PAGE_SIZE {
            Some(size.max(align).next_power_of_two())
        } else {
            None
        }
    }

    /// [`Self::alloc_with`], growing the machine by a memory block and retrying while an
    /// allocation from the machine fails and it can grow.
    fn alloc_growing(&self, m: &Machine<HostedPlatform>, layout: Layout, gfp: GfpFlags) -> *mut u8 {
        loop {
            let seen = self.grower.generation();
            let p = self.alloc_with(m, layout, gfp);
            if !p.is_null() || layout.size() > KMALLOC_MAX_SIZE {
                return p;
            }
            if !self.grow(m, seen) {
                return p;
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&self, m: &Machine<HostedPlatform>, seen: u64) -> bool {
        self.grower.grow(m, seen, &|_, _, _| true).grew()
    }

    /// Gives hot-added memory blocks whose pages are all free back (offlined, removed, their
    /// host memory released), keeping 32 MiB free besides; returns how many were removed
    /// (`malloc_trim`). Nothing happens before the machine booted.
    pub fn trim(&self) -> usize {
        match self.machine.get() {
            Some(m) => self.grower.shrink(m, 8192),
            None => 0,
        }
    }

    /// Memory blocks (128 MiB) hot-added and removed so far.
    pub fn hotplug_counts(&self) -> (u64, u64) {
        (self.grower.added(), self.grower.removed())
    }

    #[inline]
    fn alloc_with(&self, m: &Machine<HostedPlatform>, layout: Layout, gfp: GfpFlags) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        if let Some(r) = self.kmalloc_request(size, align) {
            return m.kmalloc(r, gfp).map_or(ptr::null_mut(), |p| p.as_ptr());
        }
        if size <= KMALLOC_MAX_SIZE {
            if align <= DIRECT_MAP_ALIGN {
                let order = kmem::slab::common::get_order(size.max(align));
                return m
                    .kmalloc_large_order(order, gfp)
                    .map_or(ptr::null_mut(), |p| p.as_ptr());
            }
            return ptr::null_mut();
        }
        host_mmap(size, align, gfp.contains(GfpFlags::__GFP_ZERO))
    }
}

impl KmemAlloc {
    /// Scans for leaks (with `kmemleak=on` in [`KmemAlloc::with_cmdline`]) and writes what
    /// `/sys/kernel/debug/kmemleak` then shows to `out`, after a line `kmemleak: N new
    /// suspected memory leaks`; returns N. The roots are the process's private writable
    /// mappings (the program's and its libraries' data and bss, the heap, thread stacks —
    /// the calling thread's from its stack pointer up) and the calling thread's callee-saved
    /// registers, as `libkmem_malloc.so`'s report; every scan is done twice (the checksum
    /// rule) with the minimum object age set to 0. Blocks above 4 MiB (host mappings) are not
    /// tracked. Without kmemleak, writes nothing and returns 0.
    ///
    /// The report is rendered into a host mapping first and handed to `out` after kmemleak's
    /// lock is released, so `out` may allocate (through this allocator).
    #[inline(never)]
    pub fn kmemleak_report(&self, out: &mut dyn core::fmt::Write) -> usize {
        let Some(m) = self.machine() else { return 0 };
        if !m.kmemleak_enabled() {
            return 0;
        }
        let regs = crate::roots::callee_saved_registers();
        let Some(mut maps) = HostBuf::new(1 << 20) else {
            return 0;
        };
        let len = crate::roots::read_self_maps(maps.bytes());
        let Some(mut ranges) = HostBuf::new(4096 * 16) else {
            return 0;
        };
        // SAFETY: the buffer is page aligned and 64 KiB long: 4096 (usize, usize) pairs.
        let ranges = unsafe {
            core::slice::from_raw_parts_mut(
                ranges.bytes().as_mut_ptr().cast::<(usize, usize)>(),
                4096,
            )
        };
        let base = kmem::platform::Platform::direct_map_base(m.platform()) as usize;
        let end = base + m.platform().max_phys().as_u64() as usize;
        let own = |s: usize, e: usize| s < end && e > base;
        let nr = crate::roots::root_ranges(
            &maps.bytes()[..len],
            crate::roots::stack_pointer(),
            &own,
            ranges,
        );
        m.kmemleak_set_min_age(0);
        // SAFETY: the ranges are mappings of this process that were readable and writable a
        // moment ago (a thread unmapping one meanwhile could make the scan fault, as for
        // libkmem_malloc.so's report).
        let new = unsafe {
            m.kmemleak_scan_ranges(&ranges[..nr], &regs)
                + m.kmemleak_scan_ranges(&ranges[..nr], &regs)
        };
        let Some(mut text) = HostBuf::new(16 << 20) else {
            return new;
        };
        let mut w = text.writer();
        let _ = core::fmt::Write::write_fmt(
            &mut w,
            format_args!("kmemleak: {new} new suspected memory leaks\n"),
        );
        let _ = m.proc_read("/sys/kernel/debug/kmemleak", &mut w);
        let n = w.len;
        let _ = out.write_str(core::str::from_utf8(&text.bytes()[..n]).unwrap_or(""));
        new
    }
}

/// A private anonymous host mapping used as a scratch buffer (no allocation, not tracked by
/// kmemleak), unmapped on drop.
struct HostBuf {
    p: *mut u8,
    len: usize,
}

impl HostBuf {
    fn new(len: usize) -> Option<Self> {
        let p = host_mmap(len, PAGE_SIZE, true);
        (!p.is_null()).then_some(Self { p, len })
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `p` is a mapping of `len` bytes owned by `self`.
        unsafe { core::slice::from_raw_parts_mut(self.p, self.len) }
    }

    /// A writer appending whole UTF-8 strings while they fit.
    fn writer(&mut self) -> HostBufWriter<'_> {
        HostBufWriter {
            buf: self.bytes(),
            len: 0,
        }
    }
}

impl Drop for HostBuf {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer borrowed.
        unsafe { libc::munmap(self.p.cast(), self.len) };
    }
}

struct HostBufWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl core::fmt::Write for HostBufWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(core::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Anonymous host memory for requests larger than the largest buddy block.
fn host_mmap(size: usize, align: usize, _zero: bool) -> *mut u8 {
    if align > PAGE_SIZE {
        return ptr::null_mut();
    }
    // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

#[inline]
fn in_machine(m: &Machine<HostedPlatform>, p: *mut u8) -> bool {
    m.virt_to_phys(VirtAddr::new(p as usize)).is_some()
}

// SAFETY: blocks come from kmalloc / the page allocator / mmap, are at least `layout.size()`
// bytes with `layout.align()` alignment (see the module documentation), and are not handed
// out again until freed. `dealloc` routes each pointer back to where it came from.
unsafe impl GlobalAlloc for KmemAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(m) = self.fast_machine() {
            if Self::fast_layout(layout) {
                if let Some(p) = m.kmalloc_fast(layout.size(), GFP) {
                    return p.as_ptr();
                }
            }
        }
        self.alloc_slow(layout, GFP)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let gfp = GFP.union(GfpFlags::__GFP_ZERO);
        if let Some(m) = self.fast_machine() {
            if Self::fast_layout(layout) {
                if let Some(p) = m.kmalloc_fast(layout.size(), gfp) {
                    return p.as_ptr();
                }
            }
        }
        self.alloc_slow(layout, gfp)
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if let Some(m) = self.fast_machine() {
            if Self::fast_layout(layout) {
                // SAFETY: with `fast` set no block is the arena's, so `p` came from the
                // machine: `alloc` served this layout with `kmalloc(layout.size(), GFP)`
                // (`kmalloc_request` is `Some(size)` for it), or `realloc` kept a block of the
                // same size class; the caller frees it once. `__GFP_ZERO` does not change
                // `kmalloc_type`.
                if unsafe { m.kfree_sized_fast(p, layout.size(), GFP) } {
                    return;
                }
            }
        }
        // SAFETY: forwarded caller guarantees.
        unsafe { self.dealloc_slow(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(m) = self.machine() else {
            return ptr::null_mut();
        };
        let align = layout.align();
        if !self.in_arena(p) {
            if let (Some(o), Some(n)) = (
                self.kmalloc_request(layout.size(), align),
                self.kmalloc_request(new_size, align),
            ) {
                let small = |x: usize| x <= KMALLOC_MAX_CACHE_SIZE;
                // Keep the block while it stays in the same size class (so that `dealloc`
                // finds its cache from the size), or stays a large kmalloc that is big enough
                // (krealloc's rule).
                // Under SLOB a block's usable size is its own (no size classes): it is kept
                // only while `ksize` suffices.
                let same_class = if self.slab == SlabAllocatorKind::Slob {
                    m.ksize(p) >= n
                } else {
                    kmalloc_index(o) == kmalloc_index(n)
                };
                if small(o) && small(n) && same_class {
                    return p;
                }
                if !small(o) && !small(n) && in_machine(m, p) && m.ksize(p) >= n {
                    return p;
                }
            }
        }
        // SAFETY: the caller guarantees a valid layout for `new_size` with the same alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
        // SAFETY: forwarded caller guarantees.
        let q = unsafe { self.alloc(new_layout) };
        if !q.is_null() {
            // SAFETY: both blocks hold at least `min(old, new)` bytes and are distinct.
            unsafe { ptr::copy_nonoverlapping(p, q, layout.size().min(new_size)) };
            // SAFETY: `p` was allocated by us with `layout`.
            unsafe { self.dealloc(p, layout) };
        }
        q
    }
}
