//! The platform abstraction: what kmem needs from the machine it runs on.
//!
//! kmem is a library: it holds no globals and never touches hardware or the host directly.
//! Everything machine-specific comes through one [`Platform`] value owned by each
//! [`crate::Machine`]:
//!
//! - **physical memory** through the direct map: physical address `p` is readable and
//!   writable at `direct_map_base() + p` for every `p < phys_end()`;
//! - **CPUs**: a number of possible CPUs (the size of every per-CPU array) and
//!   [`Platform::cpu_get`]/[`Platform::cpu_put`], the equivalent of
//!   `get_cpu()`/`put_cpu()` (preemption off): between the two, the caller has exclusive use of
//!   that CPU's per-CPU data;
//! - **locks**: the raw lock type used for zone locks, list locks and the like;
//! - a **clock** (jiffies), **randomness** (free-pointer hardening, freelist shuffling), the
//!   **console** under printk, and the **current task** id for owner tracking.
//!
//! `kmem-hosted` implements it on Linux (memfd + mmap, threads as CPUs); `kmem-baremetal`
//! implements it for the QEMU test kernel.

use crate::addr::PhysAddr;

/// A callback into kmem run when a CPU goes offline (`cpuhp` teardown: drain its per-CPU
/// caches). On the hosted platform a thread that exits takes its CPU slot offline.
#[derive(Clone, Copy)]
pub struct CpuDeadHook {
    /// Opaque context passed back to `func` (kmem's machine state).
    pub ctx: *const (),
    /// The function to call with `ctx` and the CPU going offline.
    ///
    /// # Safety
    /// Called by the platform only while the machine that registered it is alive, with a CPU
    /// id that no thread uses during the call and that is not handed out again before the call
    /// returns.
    pub func: unsafe fn(ctx: *const (), cpu: usize),
}

// SAFETY: `ctx` points at kmem's machine state, which is Sync; the hook only passes it back.
unsafe impl Send for CpuDeadHook {}
// SAFETY: sharing the hook shares a plain fn pointer and `ctx`, which points at kmem's machine
// state (Sync); the hook only passes it back to kmem.
unsafe impl Sync for CpuDeadHook {}

/// A callback into kmem run by a platform whose [`Platform::protect_direct_page`] really
/// protects pages, when an access faults on such a page (KFENCE's guard pages:
/// `kfence_handle_page_fault`, called from the page-fault handler in Linux).
#[derive(Clone, Copy)]
pub struct PageFaultHook {
    /// Opaque context passed back to `func` (kmem's machine state).
    pub ctx: *const (),
    /// Called with `ctx`, the faulting address, whether the access was a write, and the
    /// address of the faulting instruction (0 if unknown). Returns `true` when kmem handled
    /// the fault (reported it and made the page accessible again), so that the access can be
    /// retried; `false` when the fault is not kmem's, for the platform's own handling.
    ///
    /// # Safety
    /// Called by the platform only while the machine that registered it is alive.
    pub func: unsafe fn(ctx: *const (), addr: usize, is_write: bool, ip: usize) -> bool,
}

// SAFETY: `ctx` points at kmem's machine state, which is Sync; the hook only passes it back.
unsafe impl Send for PageFaultHook {}
// SAFETY: the hook's function pointer is a plain `fn` and `ctx` points at kmem's machine state,
// which is Sync; the platform only passes `ctx` back, so using the hook from several threads at
// once shares only that Sync state.
unsafe impl Sync for PageFaultHook {}

/// What kmemcheck gives a platform that can trap accesses to tracked pages and single-step
/// them (Linux 4.14's `kmemcheck_fault` and `kmemcheck_trap`): kmem hides tracked pages with
/// [`Platform::protect_direct_page`]; the platform decodes each faulting instruction and
/// passes kmem only the access (address, size, direction).
#[derive(Clone, Copy)]
pub struct KmemcheckHook {
    /// Opaque context passed back (kmem's machine state).
    pub ctx: *const (),
    /// An access of `size` bytes at `addr` (`write` or read) by the instruction at `ip`
    /// faulted: if the page is one kmemcheck hid, the shadow is checked (a report) or updated
    /// and the page is shown (made accessible) for the instruction; returns `true` then, and
    /// the platform single-steps the instruction and calls `hide` after it. `false`: not
    /// kmemcheck's page.
    ///
    /// # Safety
    /// Called by the platform only while the machine that registered it is alive.
    pub access: unsafe fn(ctx: *const (), addr: usize, size: usize, write: bool, ip: usize) -> bool,
    /// Shows the page holding `addr` if kmemcheck hid it, without checking anything (for the
    /// host kernel's own access during a system call); returns whether it did.
    ///
    /// # Safety
    /// As `access`.
    pub show: unsafe fn(ctx: *const (), addr: usize) -> bool,
    /// A string move (`movs`: Linux's `kmemcheck_copy`, arch/x86/mm/kmemcheck/kmemcheck.c)
    /// of `size` bytes (at most 8) from `src` to `dst` by the instruction at `ip` faulted on
    /// a hidden page: the destination's shadow becomes the source's where the destination
    /// is tracked; where it is not, uninitialised source bytes are reported as a read. Shows
    /// no page: the platform shows the pages of both operands with `show`.
    ///
    /// # Safety
    /// As `access`.
    pub copy: unsafe fn(ctx: *const (), dst: usize, src: usize, size: usize, ip: usize),
    /// After the single step: hides the page holding `addr` again if kmemcheck still tracks
    /// it (`kmemcheck_hide`).
    ///
    /// # Safety
    /// As `access`.
    pub hide: unsafe fn(ctx: *const (), addr: usize),
}

// SAFETY: `ctx` points at kmem's machine state, which is Sync; the hook only passes it back.
unsafe impl Send for KmemcheckHook {}
// SAFETY: the hook's function pointers are plain `fn`s and `ctx` points at kmem's machine state,
// which is Sync; the platform only passes `ctx` back, so sharing the hook between threads shares
// only that Sync state.
unsafe impl Sync for KmemcheckHook {}

/// Log levels of printk (include/linux/kern_levels.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum LogLevel {
    /// `KERN_EMERG`
    Emerg = 0,
    /// `KERN_ALERT`
    Alert = 1,
    /// `KERN_CRIT`
    Crit = 2,
    /// `KERN_ERR`
    Err = 3,
    /// `KERN_WARNING`
    Warning = 4,
    /// `KERN_NOTICE`
    Notice = 5,
    /// `KERN_INFO`
    Info = 6,
    /// `KERN_DEBUG`
    Debug = 7,
}

/// What kmem needs from the machine it runs on.
///
/// # Safety
/// Implementors guarantee:
/// - `[direct_map_base(), direct_map_base() + phys_end())` is valid, writable memory for the
///   whole life of the platform value, not used by anything but the machine built on it;
/// - between `cpu_get()` returning `c` and the matching `cpu_put(c)`, no other caller is given
///   `c` (per-CPU exclusivity), `c < possible_cpus()`, and the caller does not migrate;
/// - a registered [`CpuDeadHook`] is called as its documentation says;
/// - memory returned by [`Platform::debug_area`] is valid for reads and writes of the size
///   asked, aligned as asked, and used by nothing else for the whole life of the platform;
/// - after [`Platform::map_vmemmap`] returned `true`, `[va, va + len)` is readable and
///   writable memory until [`Platform::unmap_vmemmap`] of it, and the window of
///   [`Platform::vmemmap_window`] stays reserved for the whole life of the platform. The
///   memory is either the same as `direct_map_base() + phys` (writes through one are seen
///   through the other) or — on a platform whose memory must stay private to one process,
///   such as a hosted one whose machine `fork` copies — memory of its own that stands in for
///   the physical range: its contents start unspecified, and kmem neither reads nor writes
///   `[phys, phys + len)` through the direct map while it is mapped (kmem only ever reaches
///   the memmap through vmemmap), nor relies on that range's contents after the unmap;
/// - after [`Platform::grow_phys_end`] returned `true`, the direct-map guarantee above holds
///   up to the new end.
pub unsafe trait Platform: Send + Sync + 'static {
    /// The raw lock under kmem's spinlocks and mutexes.
    type RawLock: lock_api::RawMutex + Send + Sync;

    /// The pointer at which physical address 0 is mapped.
    fn direct_map_base(&self) -> *mut u8;

    /// The end (exclusive) of the physical address range the platform backs.
    fn phys_end(&self) -> PhysAddr;

    /// Size of every per-CPU array (`nr_cpu_ids`).
    fn possible_cpus(&self) -> usize;

    /// Disables preemption and returns the current CPU (`get_cpu()`).
    fn cpu_get(&self) -> usize;

    /// Enters a section like [`Platform::cpu_get`] but never waits: `None` where `cpu_get`
    /// would have to wait for another caller to leave (the entry used by kmem's `*_nolock`
    /// functions, which may run in any context, including inside a section of the same CPU).
    /// A nested entry on a CPU the caller is already in must succeed. The default is
    /// `Some(cpu_get())`, right for platforms whose `cpu_get` never waits (bare metal:
    /// interrupts off).
    fn cpu_try_get(&self) -> Option<usize> {
        Some(self.cpu_get())
    }

    /// Ends the section begun by [`Platform::cpu_get`] (`put_cpu()`).
    fn cpu_put(&self, cpu: usize);

    /// The CPU the caller owns outright, if it owns one: a CPU that [`Platform::cpu_get`]
    /// would return at once, whose per-CPU data no other thread ever uses while the caller
    /// runs, and whose section exit ([`Platform::cpu_put`]) does nothing (a hosted thread's
    /// exclusive slot). Code that takes no lock meanwhile may then use that CPU's per-CPU
    /// data as inside a section it entered and left with `cpu_get`/`cpu_put`, without the
    /// two calls: kmem's allocation fast paths do, so that they call nothing. `None` sends them to a
    /// [`Platform::cpu_get`] section; the default (bare metal: a section disables
    /// interrupts) is always `None`.
    #[inline]
    fn cpu_owned(&self) -> Option<usize> {
        None
    }

    /// Registers the hook run when a CPU goes offline. kmem registers one per machine at boot.
    fn set_cpu_dead_hook(&self, hook: CpuDeadHook);

    /// The clock, in jiffies since boot.
    fn jiffies(&self) -> u64;

    /// `HZ`: jiffies per second.
    fn hz(&self) -> u64 {
        1000
    }

    /// Writes printk output to the console.
    fn console_write(&self, level: LogLevel, s: &str);

    /// Returns 64 random bits (`get_random_u64`).
    fn random_u64(&self) -> u64;

    /// Hints that `[addr, addr+len)` of the direct map is about to be written in full (the
    /// memmap at boot), so a platform that backs memory lazily can populate it in bulk.
    /// The default does nothing.
    fn prefault(&self, addr: *mut u8, len: usize) {
        let _ = (addr, len);
    }

    /// Makes `[addr, addr + len)` of the direct map read as zeroes without backing it: a
    /// platform that backs memory lazily (the hosted one: a memfd, pages on first touch)
    /// gives the host memory behind the range back, so each page is backed again only when
    /// first written. For per-CPU data (the SLUB `kmem_cache_cpu` arrays): a CPU that never
    /// uses a cache never costs its pages, as Linux's percpu allocator backs a chunk's pages
    /// only as they are used (mm/percpu-vm.c, `pcpu_populate_chunk`). Returns `false` (the
    /// default) if the platform cannot; the caller then zeroes the range itself.
    ///
    /// # Safety
    /// `addr` and `len` are page aligned, the range lies in the direct map below
    /// `phys_end`, is allocated to the caller (not free, not shared with anyone), and no
    /// reference into it is live.
    unsafe fn zero_unbacked(&self, addr: *mut u8, len: usize) -> bool {
        let _ = (addr, len);
        false
    }

    /// The current task's pid (for owner tracking); 0 when there are no tasks.
    fn current_pid(&self) -> u32 {
        0
    }

    /// The current task's name (`current->comm`) for reports.
    fn current_comm(&self) -> &str {
        "swapper/0"
    }

    // ------------------------------------------------------------ kernel mappings (optional)
    //
    // kmem keeps the kernel page tables (crate::pgtable) for vmalloc, vmap and kmap. On bare
    // metal those tables are the CPU's, so the defaults below (no mirroring) are right: a
    // kernel virtual address is used as is. A hosted platform instead mirrors each mapping in
    // a reserved window of its own address space, so a vmalloc pointer is real memory.

    /// Reserves (on the first call; later calls return the same window) `len` bytes of real
    /// address space in which kmem's kernel mappings are mirrored, and returns its base.
    /// `None` (the default) means kernel virtual addresses are real addresses (bare metal).
    ///
    /// The base must be aligned to `align` (a power of two, at most `len`): kmem places the
    /// model range in the window so that a model address aligned for a caller of
    /// `__vmalloc_node(size, align, ...)` stays aligned in the real address the caller uses.
    fn kernel_window(&self, len: usize, align: usize) -> Option<*mut u8> {
        let _ = (len, align);
        None
    }

    /// The physical address of a live top-level page table kmem should extend instead of
    /// building its own (bare metal: the table in CR3). The default, `None`, lets kmem build
    /// one, including the direct map.
    fn kernel_pgd(&self) -> Option<PhysAddr> {
        None
    }

    /// Mirrors physical `[phys, phys + len)` at real address `va` inside the kernel window
    /// (page aligned). Returns `false` if the platform could not. The default does nothing.
    fn map_kernel_range(&self, va: *mut u8, phys: PhysAddr, len: usize, writable: bool) -> bool {
        let _ = (va, phys, len, writable);
        true
    }

    /// Removes the mirror of `[va, va + len)` (page aligned) so an access there faults. The
    /// default does nothing.
    fn unmap_kernel_range(&self, va: *mut u8, len: usize) {
        let _ = (va, len);
    }

    /// Reserves (on the first call; later calls return the same window) `len` bytes of real
    /// address space for the virtual memory map (`vmemmap`, SPARSEMEM_VMEMMAP) and returns
    /// its base, aligned to 2 MiB. Only the memmap of present sections is mapped in it
    /// ([`Platform::map_vmemmap`]); the rest stays inaccessible. `None` (the default) means
    /// the platform cannot: kmem then keeps the memmap as one array in the direct map (bare
    /// metal, whose tables would need mapping before the page allocator exists).
    fn vmemmap_window(&self, len: usize) -> Option<*mut u8> {
        let _ = len;
        None
    }

    /// Mirrors physical `[phys, phys + len)` writable at real address `va` inside the
    /// vmemmap window (page aligned), or maps memory standing in for it (see the trait's
    /// safety contract: kmem writes every entry of a memmap it maps before reading it).
    /// Returns `false` if the platform could not.
    fn map_vmemmap(&self, va: *mut u8, phys: PhysAddr, len: usize) -> bool {
        let _ = (va, phys, len);
        false
    }

    /// Maps `[va, va + len)` of the vmemmap window (page aligned, inside a range mapped by
    /// [`Platform::map_vmemmap`]) read-only onto copies of the page at `template` (a page of
    /// the window kmem has written, outside the range): every page of the range then reads
    /// as the template, and none is backed by memory of its own until it is read — the
    /// shared read-only `struct page` page of HugeTLB's vmemmap optimisation
    /// (mm/hugetlb_vmemmap.c), used by kmem for the `struct page`s of a section's hole
    /// (`init_unavailable_range`), which are all alike and never written after boot. A write
    /// to the range afterwards faults. Returns `false` (the default) if the platform cannot;
    /// kmem then writes the entries itself.
    fn share_vmemmap(&self, va: *mut u8, len: usize, template: *const u8) -> bool {
        let _ = (va, len, template);
        false
    }

    /// Maps `[va, va + len)` of the vmemmap window (page aligned, inside a range mapped by
    /// [`Platform::map_vmemmap`]), whose pages all read the same, copy-on-write onto copies
    /// of that content: the range reads exactly as before but is backed by no memory of its
    /// own until a page of it is written, which gives that page a copy of its own (the
    /// shared `struct page` page of HugeTLB's vmemmap optimisation, mm/hugetlb_vmemmap.c,
    /// without its read-only mapping: no writer has to restore the page first). kmem uses it
    /// for the `struct page`s of reported free memory. The caller keeps the range from being
    /// written until the call returns. Returns `false` (the default) if the platform did not
    /// (the range is then as it was).
    fn share_vmemmap_cow(&self, va: *mut u8, len: usize) -> bool {
        let _ = (va, len);
        false
    }

    /// Removes the mirror of `[va, va + len)` in the vmemmap window (memory hot-remove).
    fn unmap_vmemmap(&self, va: *mut u8, len: usize) {
        let _ = (va, len);
    }

    /// The highest physical end the platform can back after growing (memory hotplug); the
    /// default is [`Platform::phys_end`]: no growth.
    fn max_phys_end(&self) -> PhysAddr {
        self.phys_end()
    }

    /// Grows the backed physical range to `new_end` (memory hotplug: `add_memory` of a range
    /// above [`Platform::phys_end`]). Returns whether the range is now backed. The default
    /// cannot grow.
    fn grow_phys_end(&self, new_end: PhysAddr) -> bool {
        new_end <= self.phys_end()
    }

    /// [`Platform::grow_phys_end`] for memory of NUMA node `nid` (memory hotplug on a node:
    /// a platform that backs each node separately backs the range with `nid`'s memory). The
    /// default ignores the node.
    fn grow_phys_end_node(&self, new_end: PhysAddr, nid: usize) -> bool {
        let _ = nid;
        self.grow_phys_end(new_end)
    }

    /// Invalidates the CPU's cached translations of kernel virtual `[start, end)`
    /// (`flush_tlb_kernel_range`: `invlpg` per page, or a full flush). The default does
    /// nothing (a hosted platform's host kernel already keeps its TLB coherent).
    fn flush_tlb_kernel_range(&self, start: u64, end: u64) {
        let _ = (start, end);
    }

    /// Makes the page of the direct map at `va` (page aligned) inaccessible (`protect`) or
    /// accessible again, for KFENCE's guard pages (Linux's `kfence_protect_page`: clear or set
    /// the PTE's present bit). Returns whether the page really is protected as asked; the
    /// default, `false`, means the platform cannot protect pages, and kmem keeps the
    /// protection state itself (checked by explicit accesses such as the shell's `peek`).
    fn protect_direct_page(&self, va: *mut u8, protect: bool) -> bool {
        let _ = (va, protect);
        false
    }

    /// Registers the hook run when an access faults on a page protected with
    /// [`Platform::protect_direct_page`]. kmem registers one per machine when KFENCE starts.
    /// The default does nothing (no page is ever really protected).
    fn set_page_fault_hook(&self, hook: PageFaultHook) {
        let _ = hook;
    }

    /// Registers kmemcheck's hook and says whether this platform traps accesses to pages kmem
    /// hides and single-steps them (then kmem hides every tracked page). The default, `false`:
    /// kmemcheck's shadow is consulted only by explicit accesses (the shell's `peek`/`poke`).
    fn set_kmemcheck_hook(&self, hook: KmemcheckHook) -> bool {
        let _ = hook;
        false
    }

    /// Memory for debugging state that is not the machine's own (the lock validator of debug
    /// builds, the debuggers' stack depot), so that turning debugging on changes none of the
    /// machine's numbers: `size`
    /// bytes aligned to `align`, or `None` (the default: no such memory, debugging that
    /// needs it stays off). Called only at boot: once for the lock validator (debug builds)
    /// and the stack depot together, and, if that is refused in a debug build, once more for
    /// the depot alone; each area handed out is distinct.
    ///
    /// Implementors guarantee (see the trait's safety section) that the memory is valid,
    /// writable, and used by nothing else for the whole life of the platform value.
    fn debug_area(&self, size: usize, align: usize) -> Option<core::ptr::NonNull<u8>> {
        let _ = (size, align);
        None
    }

    /// Fills `out` with the return addresses of the current call stack, innermost first
    /// (`stack_trace_save`), and returns how many it wrote. `frame` is an address inside the
    /// stack frame of the kmem function asking: the trace starts with the return address into
    /// that function's caller (frames at or below `frame` — the walker's own and kmem's
    /// capture code — are skipped, however the compiler inlined them). The walk must be safe
    /// anywhere kmem runs — inside an allocator (the hosted `malloc`), under any kmem lock,
    /// in a fault handler: it must not allocate through kmem, take a lock kmem's callers may
    /// hold, or fault, and it must stop within the current stack's limits however corrupt the
    /// chain. The default writes none (reports then show the caller's source location).
    fn stack_trace(&self, out: &mut [usize], frame: usize) -> usize {
        let _ = (out, frame);
        0
    }

    /// Writes the symbol of code address `addr` as `%pS` prints it (`name+0xoff/0xsize`) and
    /// returns `true`; `false`, writing nothing, when no symbol is known (kmem then prints
    /// the address, as Linux does without kallsyms). Called while printing reports, under
    /// kmem's locks: the same rules as [`Platform::stack_trace`]. The default knows none.
    fn symbolize(&self, addr: usize, out: &mut dyn core::fmt::Write) -> bool {
        let _ = (addr, out);
        false
    }

    /// Runs `f`, a report made from a fault handler, on a stack with room for it: a platform
    /// whose handlers run on a small stack (the hosted platform's `SIGSEGV` handler runs on a
    /// thread's alternate signal stack, 8 KiB in Rust programs) switches to a larger one.
    /// `f` does not unwind. The default calls `f` where it is.
    fn run_on_report_stack(&self, f: &mut dyn FnMut()) {
        f();
    }

    /// Called in each round of a busy wait (`synchronize_rcu`, `rcu_barrier`), where Linux
    /// would sleep: lets the CPUs being waited for run (`cpu_relax()`; a hosted platform
    /// yields the thread). The default is a spin-loop hint.
    fn cpu_relax(&self) {
        core::hint::spin_loop();
    }

    /// Makes every CPU that is running code of this machine execute a full memory barrier
    /// before returning (Linux's `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`; in a kernel,
    /// an IPI to every online CPU), and returns `true`; `false` if the platform cannot.
    ///
    /// It lets a CPU's hot path publish "I am using my per-CPU data" with a plain store and no
    /// fence, while a rare remote user (`drain_all_pages`) pays for the ordering. kmem asks
    /// once at boot: on a platform that answers `false` (the default) the per-CPU page lists
    /// are locked on every use instead (`pcp->lock`, mmzone.rs `PcpSlot`).
    fn membarrier(&self) -> bool {
        false
    }

    /// The current CPU as `raw_smp_processor_id()` reads it, for reports: a hint that may be
    /// stale the moment it is read, taken without entering a CPU section (reports are printed
    /// under locks that are taken inside CPU sections). The default enters and leaves one.
    fn raw_cpu_id(&self) -> usize {
        let c = self.cpu_get();
        self.cpu_put(c);
        c
    }
}

/// A section with exclusive use of one CPU's per-CPU data (`get_cpu()` … `put_cpu()`).
///
/// Inside kmem a section is entered with the machine's `cpu_guard()`, which also tells the
/// lock validator (the section is the reentrant class `cpu_section` in docs/LOCKING.md).
pub struct CpuGuard<'a, P: Platform> {
    plat: &'a P,
    cpu: usize,
    _section: Option<kds::lockdep::Section<'a>>,
}

impl<'a, P: Platform> CpuGuard<'a, P> {
    /// Enters the section (not seen by a lock validator).
    #[inline]
    pub fn new(plat: &'a P) -> Self {
        let cpu = plat.cpu_get();
        debug_assert!(cpu < plat.possible_cpus());
        Self {
            plat,
            cpu,
            _section: None,
        }
    }
    /// Enters the section and records it in `lockdep` (when there is one) as `class`.
    #[inline]
    #[track_caller]
    pub fn tracked(
        plat: &'a P,
        lockdep: Option<&'a kds::lockdep::Lockdep>,
        class: &'static kds::lockdep::LockClass,
    ) -> Self {
        // Not `map` with a closure: the section records this function's caller.
        let mut section = None;
        if let Some(ld) = lockdep {
            section = Some(ld.enter(class, (plat as *const P).cast()));
        }
        let cpu = plat.cpu_get();
        debug_assert!(cpu < plat.possible_cpus());
        Self {
            plat,
            cpu,
            _section: section,
        }
    }
    /// Enters the section without waiting ([`Platform::cpu_try_get`]), recording it in
    /// `lockdep` as `class` (a try-acquisition: the validator records no waiting edge for it).
    /// `None` if the section could not be entered at once.
    #[inline]
    #[track_caller]
    pub fn try_tracked(
        plat: &'a P,
        lockdep: Option<&'a kds::lockdep::Lockdep>,
        class: &'static kds::lockdep::LockClass,
    ) -> Option<Self> {
        let cpu = plat.cpu_try_get()?;
        debug_assert!(cpu < plat.possible_cpus());
        let mut section = None;
        if let Some(ld) = lockdep {
            section = Some(ld.enter_try(class, (plat as *const P).cast()));
        }
        Some(Self {
            plat,
            cpu,
            _section: section,
        })
    }
    /// The CPU this section runs on.
    #[inline]
    pub fn cpu(&self) -> usize {
        self.cpu
    }
}

impl<P: Platform> Drop for CpuGuard<'_, P> {
    #[inline]
    fn drop(&mut self) {
        self.plat.cpu_put(self.cpu);
    }
}
