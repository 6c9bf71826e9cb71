//! Virtually contiguous memory: vmalloc, vmap and kvmalloc (mm/vmalloc.c, mm/util.c).
//!
//! Kernel virtual space above the direct map is handed out in *vmap areas*. Each area is a
//! [`VmapArea`] (`struct vmap_area` with its `struct vm_struct` folded in) that is in exactly
//! one of these states:
//!
//! 1. **free**: in the free tree (`free_vmap_area_root`), an rbtree ordered by address and
//!    augmented with the largest free size in each subtree (`subtree_max_size`), so the
//!    lowest-addressed fit is found in O(log n) (`find_vmap_lowest_match`). Free areas never
//!    touch: freeing merges with both neighbours (`merge_or_add_vmap_area`).
//! 2. **busy**: in the busy tree (`vmap_area_root`), ordered by address; its pages are mapped in
//!    the kernel page tables ([`crate::pgtable`]) and, on a hosted platform, mirrored in the
//!    platform's window, so the returned pointer is real memory. Unless `VM_NO_GUARD`, the
//!    area's last page is a guard page that stays unmapped.
//! 3. **lazily freed**: unmapped, pages freed, but stale TLB entries may remain, so the range
//!    must not be reused yet. Such areas wait on the purge list (shown as `unpurged vm_area`
//!    in /proc/vmallocinfo) until [`lazy_max_pages`](VmLayer::lazy_max_pages)
//!    (`fls(num_online_cpus()) × 32 MiB` of pages) accumulate; then one TLB flush covers the
//!    union of their ranges and they return to the free tree (`__purge_vmap_area_lazy`).
//!
//! Addresses in the trees and page tables are the machine's own (model) addresses
//! (`VMALLOC_START` 0xffffc90000000000 on x86_64, `high_memory + 8 MiB` on i386); the pointers
//! returned are real ones ([`VirtAddr`]): on a hosted platform, inside its window, translated
//! with one offset; on bare metal, the same.
//!
//! `struct vmap_area` objects come from the `vmap_area` kmem_cache (Linux's
//! `vmap_area_cachep`), through a small stash of recently freed objects so that splitting a
//! free area under the lock rarely allocates (a page slab of this module's own stands in if
//! the cache cannot be created); pages arrays are buddy blocks.
//!
//! # Locking (order, outermost first)
//! 1. `purge` ([`VmState::purge`], `vmap_purge_lock`): serialises purges;
//! 2. `areas` ([`VmState::areas`], `free_vmap_area_lock` + `vmap_area_lock`): both trees, the
//!    purge list, the object slab; may take a zone lock inside (object slab refill);
//! 3. `pgt` ([`VmState::pgt`], `init_mm.page_table_lock`): the kernel page tables and the TLB
//!    model. Never held together with `areas`.
//!
//! Page allocation, freeing and reports happen with none of these held.

use core::fmt::{self, Write};
use core::panic::Location;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kds::rbtree::augmented::{rb_erase_augmented, rb_insert_augmented, RbAugmentCallbacks};
use kds::rbtree::{
    rb_erase, rb_first, rb_insert_color, rb_link_node, rb_next, rb_parent, rb_prev, RbNode, RbRoot,
};
use lock_api::{Mutex, RawMutex};

use crate::addr::{Order, Pfn, PhysAddr, VirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::arch::{Arch, TranslationRegion};
use crate::gfp::GfpFlags;
use crate::layout::KernelLayout;
use crate::mm::mm_types::{PagePtr, PageType};
use crate::mm::NodeStat;
use crate::page_alloc::PageAllocator;
use crate::pgtable::{PageSize, PageTable, PtMemory, PteFlags, Tlb, TlbStats, Walk};
use crate::platform::{LogLevel, Platform};
use crate::slab::SlabLayer;

/// `VM_IOREMAP`.
pub const VM_IOREMAP: u32 = 0x0000_0001;
/// `VM_ALLOC`: vmalloc().
pub const VM_ALLOC: u32 = 0x0000_0002;
/// `VM_MAP`: vmap()ed pages.
pub const VM_MAP: u32 = 0x0000_0004;
/// `VM_USERMAP`: suitable for remap_vmalloc_range (vmalloc_user).
pub const VM_USERMAP: u32 = 0x0000_0008;
/// `VM_DMA_COHERENT`.
pub const VM_DMA_COHERENT: u32 = 0x0000_0010;
/// `VM_UNINITIALIZED`: not fully set up yet (hidden from /proc/vmallocinfo).
pub const VM_UNINITIALIZED: u32 = 0x0000_0020;
/// `VM_NO_GUARD`: no guard page after the area.
pub const VM_NO_GUARD: u32 = 0x0000_0040;
/// `VM_ALLOW_HUGE_VMAP`: sizes of a PMD or more may be mapped with huge pages (x86_64).
pub const VM_ALLOW_HUGE_VMAP: u32 = 0x0000_0400;
/// `VM_SPARSE`.
pub const VM_SPARSE: u32 = 0x0000_1000;
/// kmem: an area of `vm_map_ram` (Linux's `VMAP_RAM` va flag): no vm_struct.
const VM_MAP_RAM_AREA: u32 = 0x8000_0000;
/// `remove_vm_area`'s "any area with a vm_struct".
const ANY_VM: u32 = !VM_MAP_RAM_AREA;

/// 32 MiB of pages per `fls(num_online_cpus())` (`lazy_max_pages`, mm/vmalloc.c).
const LAZY_PAGES_PER_LOG: usize = (32 << 20) / PAGE_SIZE;

/// How much x86_64 vmalloc space a hosted machine's window covers.
pub const HOSTED_VMALLOC_WINDOW: u64 = 4 << 30;

/// `INT_MAX`: kvmalloc refuses larger sizes.
const INT_MAX: usize = i32::MAX as usize;

/// A vmap area: `struct vmap_area` with its `struct vm_struct`.
#[repr(C)]
pub(crate) struct VmapArea {
    rb: RbNode,
    va_start: u64,
    va_end: u64,
    /// Free tree: the largest `va_end - va_start` in this subtree.
    subtree_max_size: u64,
    flags: u32,
    nr_pages: usize,
    /// The pages (a buddy block of `pages_order`), or null.
    pages: *mut PagePtr,
    pages_order: u32,
    requested_size: usize,
    caller: Option<&'static Location<'static>>,
    phys_addr: u64,
    /// Purge list and slab free list link.
    next: *mut VmapArea,
}

fn va_size(va: &VmapArea) -> u64 {
    va.va_end - va.va_start
}

kds::rb_declare_callbacks_max!(FreeAugment, VmapArea, rb, u64, subtree_max_size, va_size);

/// A copy of an area's description (`struct vm_struct`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmInfo {
    /// First byte (real address).
    pub addr: VirtAddr,
    /// First byte in the machine's layout.
    pub model_addr: u64,
    /// Size including the guard page (`vm->size`).
    pub size: usize,
    /// Size the caller asked for (`vm->requested_size`).
    pub requested_size: usize,
    /// `VM_*` flags.
    pub flags: u32,
    /// Pages mapped by vmalloc (0 for vmap).
    pub nr_pages: usize,
}

/// Statistics of the vmalloc space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmallocStats {
    /// Busy areas.
    pub busy_areas: usize,
    /// Free areas (free tree nodes).
    pub free_areas: usize,
    /// Lazily freed areas waiting for a purge.
    pub lazy_areas: usize,
    /// Pages of address space (guard pages included) waiting for a purge (`vmap_lazy_nr`).
    pub lazy_pages: usize,
    /// Purges done.
    pub purges: usize,
    /// Pages of the fallback `struct vmap_area` slab (0 when the `vmap_area` kmem_cache is
    /// used).
    pub object_pages: usize,
    /// Freed `struct vmap_area` objects kept for reuse.
    pub stashed_objects: usize,
    /// Largest free area in bytes.
    pub largest_free: u64,
}

struct VmapAreas {
    free_root: RbRoot,
    busy_root: RbRoot,
    purge_head: *mut VmapArea,
    nr_lazy_areas: usize,
    nr_busy: usize,
    nr_free: usize,
    /// Object slab free list (linked through `next`).
    obj_free: *mut VmapArea,
    /// Objects on `obj_free`.
    obj_stash: usize,
    /// Pages of the fallback object slab (used only if the kmem_cache could not be made).
    obj_pages: usize,
    /// `vmap_area_cachep`.
    cache: Option<crate::slab::common::CacheHandle>,
}

struct KernelPgt {
    pt: Option<PageTable>,
    tlb: Tlb,
}

/// The vmalloc layer of a machine: the slab layer plus vmalloc's areas, the kernel page
/// tables. Dereferences to the [`SlabLayer`] below it.
pub struct VmLayer<P: Platform> {
    pub(crate) sl: SlabLayer<P>,
    pub(crate) vm: VmState<P::RawLock>,
}

impl<P: Platform> core::ops::Deref for VmLayer<P> {
    type Target = SlabLayer<P>;
    #[inline]
    fn deref(&self) -> &SlabLayer<P> {
        &self.sl
    }
}

/// The machine's vmalloc and kernel-mapping state. See the module documentation.
pub struct VmState<L: RawMutex> {
    areas: Mutex<L, VmapAreas>,
    pgt: Mutex<L, KernelPgt>,
    purge: Mutex<L, ()>,
    layout: core::cell::UnsafeCell<Option<KernelLayout>>,
    /// Real base of the window mirroring `layout.window()`, 0 when model = real.
    window: AtomicUsize,
    ready: AtomicBool,
    lazy_nr: AtomicUsize,
    /// `usize::MAX`: Linux's `lazy_max_pages`; otherwise this many pages.
    lazy_max: AtomicUsize,
    purges: AtomicUsize,
}

// SAFETY: the raw pointers inside are protected by the mutexes; `layout` is written once in
// `vmalloc_init` before `ready` is set (Release) and only read after `ready` is seen (Acquire).
unsafe impl<L: RawMutex + Send + Sync> Sync for VmState<L> {}
// SAFETY: as above.
unsafe impl<L: RawMutex + Send + Sync> Send for VmState<L> {}

impl<L: RawMutex> Default for VmState<L> {
    fn default() -> Self {
        Self::new()
    }
}

impl<L: RawMutex> VmState<L> {
    /// Uninitialised state (vmalloc fails until `vmalloc_init`).
    pub fn new() -> Self {
        Self {
            areas: Mutex::new(VmapAreas {
                free_root: RbRoot::new(),
                busy_root: RbRoot::new(),
                purge_head: ptr::null_mut(),
                nr_lazy_areas: 0,
                nr_busy: 0,
                nr_free: 0,
                obj_free: ptr::null_mut(),
                obj_stash: 0,
                obj_pages: 0,
                cache: None,
            }),
            pgt: Mutex::new(KernelPgt {
                pt: None,
                tlb: Tlb::new(),
            }),
            purge: Mutex::new(()),
            layout: core::cell::UnsafeCell::new(None),
            window: AtomicUsize::new(0),
            ready: AtomicBool::new(false),
            lazy_nr: AtomicUsize::new(0),
            lazy_max: AtomicUsize::new(usize::MAX),
            purges: AtomicUsize::new(0),
        }
    }
}

/// Page-table pages come from the buddy allocator, lowmem, typed and counted.
impl<P: Platform> PtMemory for PageAllocator<P> {
    fn alloc_table(&self) -> Option<PhysAddr> {
        let page = self.alloc_page(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO)?;
        page.set_page_type(PageType::Table);
        self.mod_node_stat(NodeStat::PageTables, 1);
        Some(self.page_to_pfn(page).phys())
    }
    fn free_table(&self, table: PhysAddr) {
        if let Some(page) = self.pfn_to_page(table.pfn()) {
            page.clear_page_type();
            self.mod_node_stat(NodeStat::PageTables, -1);
            self.__free_page(page);
        }
    }
    fn table_ptr(&self, table: PhysAddr) -> *mut u8 {
        // SAFETY: table pages are RAM below phys_end that this module owns.
        unsafe { self.phys_to_real(table) }
    }
}

/// Outcome of consulting the TLB model in [`Machine::translate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbOutcome {
    /// The TLB had the translation and it matches the page tables.
    Hit,
    /// The TLB missed; the walk's translation was cached.
    Miss,
    /// The TLB answered with a translation the page tables no longer have: a flush is owed.
    Stale(PhysAddr),
}

/// The result of [`Machine::translate`]: the page walk and what the TLB said.
#[derive(Clone, Copy, Debug)]
pub struct TranslateReport {
    /// The walk.
    pub walk: Walk,
    /// The TLB model's answer.
    pub tlb: TlbOutcome,
    /// What the address is (`vmalloc`, `direct map`, `pkmap`, `fixmap`, …).
    pub area: &'static str,
}

impl fmt::Display for TranslateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} ({})", self.walk, self.area)?;
        match self.tlb {
            TlbOutcome::Hit => write!(f, "  TLB: hit"),
            TlbOutcome::Miss if self.walk.result.is_some() => write!(f, "  TLB: miss (filled)"),
            TlbOutcome::Miss => write!(f, "  TLB: miss"),
            TlbOutcome::Stale(p) => write!(
                f,
                "  TLB: STALE entry -> physical {:#x} (a TLB flush is owed)",
                p.as_u64()
            ),
        }
    }
}

/// Writes `0x` and a pointer with `%pK`'s width (16 or 8 hex digits).
struct Ptr(u64, usize);
impl fmt::Display for Ptr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:0w$x}", self.0, w = self.1)
    }
}

/// The caller as `%pS` would name it: Rust has no symbol, so the source location.
struct CallerName(Option<&'static Location<'static>>);
impl fmt::Display for CallerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(l) => {
                // The file's last two path components: `shell/vmalloc.rs:21`.
                let path = l.file();
                let cut = path.rmatch_indices('/').nth(1).map_or(0, |(i, _)| i + 1);
                write!(f, "{}:{}", &path[cut..], l.line())
            }
            None => f.write_str("0x0"),
        }
    }
}

impl<P: Platform> VmLayer<P> {
    /// Where page-table pages come from: the page allocator.
    #[inline]
    fn pt_mem(&self) -> &PageAllocator<P> {
        &self.sl.pa
    }

    fn vm(&self) -> &VmState<P::RawLock> {
        &self.vm
    }

    /// The kernel virtual layout (`None` before `vmalloc_init`).
    pub fn kernel_layout(&self) -> Option<KernelLayout> {
        if !self.vm().ready.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: written once before `ready` was set; never written again.
        unsafe { *self.vm().layout.get() }
    }

    fn layout_unchecked(&self) -> KernelLayout {
        self.kernel_layout()
            .expect("vmalloc used before vmalloc_init")
    }

    /// `vmalloc_init` (and the kernel page table setup of `paging_init`): builds the kernel
    /// page tables with the direct map in huge pages, reserves the platform's window and
    /// seeds the free tree with the vmalloc space. Called once at boot; on failure vmalloc
    /// stays unavailable and an error is logged.
    ///
    /// # Safety
    /// Only once, during boot, before the machine is shared with another thread (it extends
    /// the model-address translation, which readers use without a lock).
    pub(crate) unsafe fn vmalloc_init(&self) {
        let arch = self.arch();
        let layout = KernelLayout::new(arch, self.lowmem_end().as_u64(), HOSTED_VMALLOC_WINDOW);
        let (wstart, wend) = layout.window();
        let window = match self.platform().kernel_window((wend - wstart) as usize) {
            Some(p) => p as usize,
            None => 0,
        };
        // Page tables.
        let pt = match self.platform().kernel_pgd() {
            // SAFETY: the platform hands us its live root table of this architecture.
            Some(root) => Some(unsafe { PageTable::from_root(root, arch) }),
            None => match PageTable::new(self.pt_mem(), arch) {
                Ok(mut pt) => {
                    if self.map_direct_map(&mut pt).is_err() {
                        self.printk(
                            LogLevel::Err,
                            format_args!("vmalloc_init: out of memory mapping the direct map"),
                        );
                    }
                    Some(pt)
                }
                Err(_) => None,
            },
        };
        let Some(pt) = pt else {
            self.printk(
                LogLevel::Err,
                format_args!("vmalloc_init: no memory for the kernel page table"),
            );
            return;
        };
        self.vm().pgt.lock().pt = Some(pt);
        // SAFETY: boot runs alone; `ready` is not yet set, so no reader exists.
        unsafe { *self.vm().layout.get() = Some(layout) };
        self.vm().window.store(window, Ordering::Relaxed);
        if window != 0 {
            // SAFETY: boot-only by this function's contract.
            unsafe {
                self.add_translation(TranslationRegion {
                    real: window,
                    model: wstart,
                    len: wend - wstart,
                })
            };
        }
        // `vmap_area_cachep = KMEM_CACHE(vmap_area, SLAB_PANIC)`; without it, a page slab.
        let cache = self
            .kmem_cache_create(
                "vmap_area",
                core::mem::size_of::<VmapArea>(),
                core::mem::align_of::<VmapArea>(),
                crate::slab::common::SlabFlags::NONE,
                None,
            )
            .ok();
        // The free tree: the whole vmalloc space.
        {
            let mut a = self.vm().areas.lock();
            a.cache = cache;
            let Some(va) = self.obj_alloc(&mut a) else {
                return;
            };
            // SAFETY: `va` is a fresh object of our slab.
            unsafe {
                (*va).va_start = layout.vmalloc_start;
                (*va).va_end = layout.vmalloc_end;
                insert_free(&mut a, va);
            }
        }
        self.vm().ready.store(true, Ordering::Release);
    }

    /// The end of `vmalloc_init`, after the architecture's kmap setup
    /// ([`crate::highmem`]'s `kmap_init`, which allocates from the boot CPU's page lists):
    /// gives those lists back and prints the vmalloc line.
    pub(crate) fn vmalloc_init_late(&self) {
        let Some(layout) = self.kernel_layout() else {
            return;
        };
        // Leave the boot CPU's page lists as they were before the tables were allocated.
        self.drain_local_pages();
        self.printk(
            LogLevel::Info,
            format_args!(
                "vmalloc: {:#x}-{:#x} ({} MB), lazy_max_pages {}",
                layout.vmalloc_start,
                layout.vmalloc_end,
                (layout.vmalloc_end - layout.vmalloc_start) >> 20,
                self.lazy_max_pages()
            ),
        );
    }

    /// Maps every RAM range of the direct map: 4 KiB pages up to the first huge boundary,
    /// huge pages, 4 KiB pages for the tail (`init_memory_mapping` / `split_mem_range`).
    fn map_direct_map(&self, pt: &mut PageTable) -> Result<(), crate::pgtable::PtError> {
        let huge = pt.format().page_bytes(PageSize::Huge);
        let low = self.lowmem_end().as_u64();
        let po = self.arch().page_offset();
        let page = PAGE_SIZE as u64;
        let e820 = *self.e820();
        for e in e820.entries() {
            if e.kind != crate::arch::E820Type::Ram {
                continue;
            }
            let s = e.addr.as_u64().div_ceil(page) * page;
            let t = (e.end().min(low)) & !(page - 1);
            let mut a = s;
            while a < t {
                let (size, step) = if a & (huge - 1) == 0 && a + huge <= t {
                    (PageSize::Huge, huge)
                } else {
                    (PageSize::Small, page)
                };
                let flags = if size == PageSize::Huge {
                    PteFlags::PAGE_KERNEL_LARGE
                } else {
                    PteFlags::PAGE_KERNEL
                };
                match pt.map(self.pt_mem(), po + a, PhysAddr::new(a), size, flags) {
                    Ok(()) | Err(crate::pgtable::PtError::AlreadyMapped) => {}
                    Err(e) => return Err(e),
                }
                a += step;
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------ model/real addresses

    /// The model address of a kernel virtual (real) address in the window.
    fn kva_model(&self, real: usize) -> u64 {
        let w = self.vm().window.load(Ordering::Relaxed);
        if w == 0 {
            return real as u64;
        }
        let (s, e) = self.layout_unchecked().window();
        match real.checked_sub(w) {
            Some(off) if (off as u64) < e - s => s + off as u64,
            _ => u64::MAX,
        }
    }

    /// The real address of a kernel virtual (model) address in the window.
    pub(crate) fn kernel_real(&self, model: u64) -> usize {
        self.kva_real(model)
    }

    /// The real address of a model address in the window.
    fn kva_real(&self, model: u64) -> usize {
        let w = self.vm().window.load(Ordering::Relaxed);
        if w == 0 {
            return model as usize;
        }
        let (s, _) = self.layout_unchecked().window();
        w + (model - s) as usize
    }

    /// Maps one run of pages at model address `va` in the kernel page table and mirrors it.
    /// Returns false (with nothing left mapped) on failure.
    pub(crate) fn kernel_map_pages(&self, va: u64, pages: &[PagePtr], prot: PteFlags) -> bool {
        self.kernel_map(va, pages, prot, false)
    }

    /// Maps `pages` at `va`; with `huge`, each run of `PTRS_PER_PMD` pages (physically
    /// contiguous, `va` PMD-aligned) is one huge PMD entry (`vmap_pmd_range`).
    fn kernel_map(&self, va: u64, pages: &[PagePtr], prot: PteFlags, huge: bool) -> bool {
        let mut g = self.vm().pgt.lock();
        let Some(pt) = g.pt.as_mut() else {
            return false;
        };
        let (step, size) = if huge {
            let bytes = pt.format().page_bytes(PageSize::Huge) as usize;
            (bytes / PAGE_SIZE, PageSize::Huge)
        } else {
            (1, PageSize::Small)
        };
        let mut ok = true;
        let mut mapped = 0;
        'chunks: for (i, chunk) in pages.chunks(step).enumerate() {
            let at = va + (i * step * PAGE_SIZE) as u64;
            let pa = self.page_to_pfn(chunk[0]).phys();
            let r = if chunk.len() == step {
                pt.map(self.pt_mem(), at, pa, size, prot)
            } else {
                Err(crate::pgtable::PtError::Misaligned)
            };
            if r.is_err() {
                if !huge {
                    ok = false;
                    break;
                }
                // `vmap_try_huge_pmd` failed: map this chunk with PTEs instead.
                for (j, &p) in chunk.iter().enumerate() {
                    let pa = self.page_to_pfn(p).phys();
                    let a = at + (j * PAGE_SIZE) as u64;
                    if pt.map(self.pt_mem(), a, pa, PageSize::Small, prot).is_err() {
                        ok = false;
                        break 'chunks;
                    }
                    mapped += 1;
                }
                continue;
            }
            mapped += step;
        }
        if ok && self.vm().window.load(Ordering::Relaxed) != 0 {
            // Mirror physically contiguous runs with one call each.
            let writable = prot.contains(PteFlags::RW);
            let mut i = 0;
            while i < pages.len() {
                let first = self.page_to_pfn(pages[i]);
                let mut j = i + 1;
                while j < pages.len() && self.page_to_pfn(pages[j]) == first + (j - i) as u64 {
                    j += 1;
                }
                let real = self.kva_real(va + (i * PAGE_SIZE) as u64);
                if !self.platform().map_kernel_range(
                    real as *mut u8,
                    first.phys(),
                    (j - i) * PAGE_SIZE,
                    writable,
                ) {
                    ok = false;
                    break;
                }
                i = j;
            }
        }
        if !ok {
            let end = va + (mapped * PAGE_SIZE) as u64;
            if let Ok(f) = pt.unmap_range(self.pt_mem(), va, end) {
                let (s, e) = f.flush(&mut g.tlb);
                self.platform().flush_tlb_kernel_range(s, e);
            }
            drop(g);
            self.kernel_unmirror(va, pages.len() * PAGE_SIZE);
        }
        ok
    }

    fn kernel_unmirror(&self, va: u64, len: usize) {
        if self.vm().window.load(Ordering::Relaxed) != 0 && len > 0 {
            self.platform()
                .unmap_kernel_range(self.kva_real(va) as *mut u8, len);
        }
    }

    /// Unmaps `[va, va + len)` from the kernel page table and the mirror. With `flush`, the
    /// TLB is flushed now; otherwise the caller owes the flush (lazy purge).
    pub(crate) fn kernel_unmap_range(&self, va: u64, len: usize, flush: bool) {
        {
            let mut g = self.vm().pgt.lock();
            let g = &mut *g;
            if let Some(pt) = g.pt.as_mut() {
                if let Ok(f) = pt.unmap_range(self.pt_mem(), va, va + len as u64) {
                    if flush {
                        let (s, e) = f.flush(&mut g.tlb);
                        self.platform().flush_tlb_kernel_range(s, e);
                    } else {
                        // Owed: the purge flushes the union of the lazy areas.
                        let _ = f.defer();
                    }
                }
            }
        }
        self.kernel_unmirror(va, len);
    }

    // ------------------------------------------------------------ object slab

    /// A `struct vmap_area`: from the stash of recently freed objects, else from the
    /// `vmap_area` kmem_cache (`vmap_area_cachep`), else (no cache) from a page of our own.
    fn obj_alloc(&self, a: &mut VmapAreas) -> Option<*mut VmapArea> {
        if a.obj_free.is_null() {
            if let Some(c) = a.cache {
                let o = self
                    .kmem_cache_alloc(c, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN)?
                    .as_ptr()
                    .cast::<VmapArea>();
                // SAFETY: a fresh object of the cache, sized and aligned for a VmapArea.
                unsafe { ptr::addr_of_mut!((*o).next).write(ptr::null_mut()) };
                a.obj_free = o;
                a.obj_stash += 1;
            } else {
                let addr = self.__get_free_page(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN)?;
                let sz = core::mem::size_of::<VmapArea>();
                let n = PAGE_SIZE / sz;
                let base = addr.as_ptr::<VmapArea>();
                for i in 0..n {
                    // SAFETY: `i < n` objects fit in the fresh page, which is ours and aligned.
                    unsafe { stash_push(a, base.add(i)) };
                }
                a.obj_pages += 1;
            }
        }
        let o = a.obj_free;
        // SAFETY: `o` is on our stash, so it is a valid object slot.
        unsafe {
            a.obj_free = (*o).next;
            a.obj_stash -= 1;
            o.write(VmapArea {
                rb: RbNode::new(),
                va_start: 0,
                va_end: 0,
                subtree_max_size: 0,
                flags: 0,
                nr_pages: 0,
                pages: ptr::null_mut(),
                pages_order: 0,
                requested_size: 0,
                caller: None,
                phys_addr: 0,
                next: ptr::null_mut(),
            });
        }
        Some(o)
    }

    /// Gives stashed objects beyond [`OBJ_STASH_MAX`] back to the kmem_cache.
    fn obj_trim(&self, a: &mut VmapAreas) {
        let Some(c) = a.cache else { return };
        while a.obj_stash > OBJ_STASH_MAX {
            let o = a.obj_free;
            // SAFETY: `o` is on the stash (count > 0), an object of the cache.
            unsafe { a.obj_free = (*o).next };
            a.obj_stash -= 1;
            self.kmem_cache_free(c, o.cast());
        }
    }

    // ------------------------------------------------------------ area allocator

    /// Finds and carves `size` bytes aligned to `align` out of the free tree within
    /// `[vstart, vend)`; returns the new busy area.
    fn alloc_vmap_area_locked(
        &self,
        a: &mut VmapAreas,
        size: u64,
        align: u64,
        vstart: u64,
        vend: u64,
    ) -> Option<*mut VmapArea> {
        if size == 0 || vend <= vstart || align > vend - vstart || size > vend - vstart {
            return None;
        }
        let adjust = !(align <= PAGE_SIZE as u64 || vend - vstart == size);
        let length = if adjust {
            size.checked_add(align - 1)?
        } else {
            size
        };
        // SAFETY: the free tree holds valid objects of our slab (areas lock held).
        let fva = unsafe { find_lowest_match(&a.free_root, size, align, vstart, length) }?;
        // SAFETY: `fva` is a free-tree node.
        let start = unsafe { align_up((*fva).va_start.max(vstart), align) };
        if start.checked_add(size)? > vend {
            return None;
        }
        let nva = self.obj_alloc(a)?;
        let Some(va) = self.obj_alloc(a) else {
            // SAFETY: `nva` is a fresh object, unused.
            unsafe { stash_push(a, nva) };
            return None;
        };
        // SAFETY: `fva` is in the free tree and contains [start, start+size); `nva` is a
        // fresh object used for an NE_FIT split or returned to the slab; `va` is fresh.
        unsafe {
            clip_free_area(a, fva, start, size, nva);
            (*va).va_start = start;
            (*va).va_end = start + size;
            // Hidden from /proc and find_vm_area until its owner publishes its flags
            // (under this lock); until then only the owner touches the other fields.
            (*va).flags = VM_UNINITIALIZED;
            insert_busy(a, va);
            Some(va)
        }
    }

    /// `alloc_vmap_area`: reserves address space, purging lazily freed areas and retrying
    /// once if none fits.
    fn alloc_vmap_area(
        &self,
        size: u64,
        align: u64,
        vstart: u64,
        vend: u64,
        gfp: GfpFlags,
    ) -> Option<*mut VmapArea> {
        if !self.vm().ready.load(Ordering::Acquire) || !align.is_power_of_two() {
            return None;
        }
        let mut purged = false;
        loop {
            let r = {
                let mut a = self.vm().areas.lock();
                let r = self.alloc_vmap_area_locked(&mut a, size, align, vstart, vend);
                self.obj_trim(&mut a);
                r
            };
            if r.is_some() {
                return r;
            }
            if !purged {
                purged = true;
                if self.purge_vmap_area_lazy() {
                    continue;
                }
            }
            if !gfp.contains(GfpFlags::__GFP_NOWARN) {
                self.printk(
                    LogLevel::Warning,
                    format_args!(
                        "vmalloc_node_range for size {size} failed: Address range restricted to {vstart:#x} - {vend:#x}"
                    ),
                );
            }
            return None;
        }
    }

    /// Returns a busy area's address space to the free tree now (no lazy wait): used when
    /// nothing was ever mapped there.
    fn free_vmap_area_now(&self, va: *mut VmapArea) {
        let mut a = self.vm().areas.lock();
        // SAFETY: `va` is a busy-tree node of ours.
        unsafe {
            unlink_busy(&mut a, va);
            merge_or_add_free(&mut a, va);
        }
        self.obj_trim(&mut a);
    }

    /// `free_vmap_area_noflush`: puts an unmapped area on the purge list; purges if
    /// `lazy_max_pages` is exceeded.
    fn free_vmap_area_lazy(&self, va: *mut VmapArea) {
        // SAFETY: `va` was unlinked from the busy tree by the caller and is ours.
        let pages = unsafe { (va_size(&*va) >> PAGE_SHIFT) as usize };
        {
            let mut a = self.vm().areas.lock();
            // SAFETY: as above; the purge list is protected by the areas lock.
            unsafe { (*va).next = a.purge_head };
            a.purge_head = va;
            a.nr_lazy_areas += 1;
        }
        let nr = self.vm().lazy_nr.fetch_add(pages, Ordering::Relaxed) + pages;
        if nr > self.lazy_max_pages() {
            self.purge_vmap_area_lazy();
        }
    }

    /// `lazy_max_pages`: `fls(num_online_cpus()) * 32 MiB / PAGE_SIZE`, unless overridden.
    pub fn lazy_max_pages(&self) -> usize {
        let o = self.vm().lazy_max.load(Ordering::Relaxed);
        if o != usize::MAX {
            return o;
        }
        let fls = usize::BITS - self.nr_cpus().leading_zeros();
        fls as usize * LAZY_PAGES_PER_LOG
    }

    /// Overrides `lazy_max_pages` (`Some(0)`: every free purges at once, i.e. no lazy
    /// freeing); `None` restores Linux's value.
    pub fn set_lazy_max_pages(&self, pages: Option<usize>) {
        self.vm()
            .lazy_max
            .store(pages.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    /// `__purge_vmap_area_lazy`: one TLB flush over the union of the lazily freed areas,
    /// then their address space goes back to the free tree. Returns whether anything was
    /// purged.
    pub fn purge_vmap_area_lazy(&self) -> bool {
        if !self.vm().ready.load(Ordering::Acquire) {
            return false;
        }
        let _p = self.vm().purge.lock();
        let (mut head, n) = {
            let mut a = self.vm().areas.lock();
            let h = a.purge_head;
            a.purge_head = ptr::null_mut();
            let n = a.nr_lazy_areas;
            a.nr_lazy_areas = 0;
            (h, n)
        };
        if head.is_null() {
            return false;
        }
        let (mut start, mut end, mut pages) = (u64::MAX, 0u64, 0usize);
        let mut p = head;
        while !p.is_null() {
            // SAFETY: purge-list nodes are ours, detached from the list above.
            unsafe {
                start = start.min((*p).va_start);
                end = end.max((*p).va_end);
                pages += (va_size(&*p) >> PAGE_SHIFT) as usize;
                p = (*p).next;
            }
        }
        {
            let mut g = self.vm().pgt.lock();
            let (s, e) = crate::pgtable::TlbFlush::range(start, end).flush(&mut g.tlb);
            drop(g);
            self.platform().flush_tlb_kernel_range(s, e);
        }
        self.vm().lazy_nr.fetch_sub(pages, Ordering::Relaxed);
        let mut a = self.vm().areas.lock();
        while !head.is_null() {
            // SAFETY: as above; each node is merged into the free tree once.
            unsafe {
                let next = (*head).next;
                merge_or_add_free(&mut a, head);
                head = next;
            }
        }
        self.obj_trim(&mut a);
        drop(a);
        let _ = n;
        self.vm().purges.fetch_add(1, Ordering::Relaxed);
        true
    }

    // ------------------------------------------------------------ vmalloc family

    /// `__vmalloc_node_range`: allocates `size` bytes of virtually contiguous memory in
    /// `[start, end)` (model addresses), aligned to `align`, pages from `gfp`, mapped with
    /// `prot`, area flags `vm_flags`.
    ///
    /// Returns the real address, or `None` (with Linux's `vmalloc error:` warning unless
    /// `__GFP_NOWARN`) if the size is zero or exceeds RAM, no address range fits, or pages
    /// run out.
    #[allow(clippy::too_many_arguments)]
    pub fn __vmalloc_node_range(
        &self,
        size: usize,
        align: usize,
        start: u64,
        end: u64,
        gfp: GfpFlags,
        prot: PteFlags,
        vm_flags: u32,
        caller: &'static Location<'static>,
    ) -> Option<VirtAddr> {
        let real_size = size;
        if size == 0 {
            self.warn(format_args!("__vmalloc_node_range: zero size"));
            return None;
        }
        const PMD_SIZE: usize = 2 << 20;
        let huge =
            vm_flags & VM_ALLOW_HUGE_VMAP != 0 && self.arch() == Arch::X86_64 && size >= PMD_SIZE;
        let (size, align) = if huge {
            (
                size.checked_add(PMD_SIZE - 1)? & !(PMD_SIZE - 1),
                align.max(PMD_SIZE),
            )
        } else {
            (size.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1), align)
        };
        let nr_pages = size >> PAGE_SHIFT;
        if nr_pages > self.totalram_pages() {
            self.warn_alloc(
                gfp,
                format_args!("vmalloc error: size {real_size}, exceeds total pages"),
            );
            return None;
        }
        let guard = if vm_flags & VM_NO_GUARD != 0 {
            0
        } else {
            PAGE_SIZE
        };
        let Some(va) =
            self.alloc_vmap_area((size + guard) as u64, align.max(1) as u64, start, end, gfp)
        else {
            let hint = if Some(start) == self.kernel_layout().map(|l| l.vmalloc_start) {
                ", use vmalloc=<size> to increase size"
            } else {
                ""
            };
            self.warn_alloc(
                gfp,
                format_args!("vmalloc error: size {real_size}, vm_struct allocation failed{hint}"),
            );
            return None;
        };
        // SAFETY: `va` is our new busy area, VM_UNINITIALIZED: nobody else reads these
        // fields until the flags are published under the areas lock.
        unsafe {
            (*va).caller = Some(caller);
            (*va).requested_size = real_size;
        }
        // The pages array, then the pages (`__vmalloc_area_node`).
        let arr_bytes = nr_pages * core::mem::size_of::<PagePtr>();
        let Some(arr_order) = Order::for_size(arr_bytes) else {
            self.free_vmap_area_now(va);
            self.warn_alloc(
                gfp,
                format_args!("vmalloc error: size {real_size}, failed to allocate page array size {arr_bytes}"),
            );
            return None;
        };
        let nested =
            gfp.without(GfpFlags::__GFP_HIGHMEM | GfpFlags::__GFP_ZERO) | GfpFlags::__GFP_NOWARN;
        let Some(arr) = self.__get_free_pages(nested, arr_order) else {
            self.free_vmap_area_now(va);
            self.warn_alloc(
                gfp,
                format_args!("vmalloc error: size {real_size}, failed to allocate page array size {arr_bytes}"),
            );
            return None;
        };
        let arr = arr.as_ptr::<PagePtr>();
        let mut page_gfp = gfp | GfpFlags::__GFP_NOWARN;
        if !gfp.intersects(GfpFlags::GFP_DMA | GfpFlags::GFP_DMA32) {
            page_gfp |= GfpFlags::__GFP_HIGHMEM;
        }
        let mut got = 0;
        // Huge mappings take PMD-sized blocks, split into order-0 pages so that they are
        // freed one by one (`vm_area_alloc_pages`).
        let order = if huge { Order::new(9) } else { Order::ZERO };
        while got < nr_pages {
            let Some(p) = self.alloc_pages(page_gfp, order) else {
                break;
            };
            if huge {
                self.split_page(p, order);
            }
            for i in 0..order.pages() {
                // SAFETY: `got + i < nr_pages` (nr_pages is a multiple of the block) entries
                // fit in the array block.
                unsafe { arr.add(got + i).write(p.add(i)) };
            }
            got += order.pages();
        }
        // SAFETY: `got` entries were written.
        let pages = unsafe { core::slice::from_raw_parts(arr, got) };
        if got < nr_pages && huge {
            // No PMD-sized blocks: fall back to small pages, as Linux does.
            for &p in pages {
                self.__free_page(p);
            }
            self.free_pages(VirtAddr::from_ptr(arr), arr_order);
            self.free_vmap_area_now(va);
            return self.__vmalloc_node_range(
                real_size,
                align,
                start,
                end,
                gfp,
                prot,
                vm_flags & !VM_ALLOW_HUGE_VMAP,
                caller,
            );
        }
        if got < nr_pages {
            for &p in pages {
                self.__free_page(p);
            }
            self.free_pages(VirtAddr::from_ptr(arr), arr_order);
            self.free_vmap_area_now(va);
            self.warn_alloc(
                gfp,
                format_args!(
                    "vmalloc error: size {real_size}, failed to allocate pages, allocated {got} of {nr_pages} pages"
                ),
            );
            return None;
        }
        // SAFETY: as above.
        let va_start = unsafe { (*va).va_start };
        if !self.kernel_map(va_start, pages, prot, huge) {
            for &p in pages {
                self.__free_page(p);
            }
            self.free_pages(VirtAddr::from_ptr(arr), arr_order);
            self.free_vmap_area_now(va);
            self.warn_alloc(
                gfp,
                format_args!("vmalloc error: size {real_size}, failed to map pages"),
            );
            return None;
        }
        self.mod_node_stat(NodeStat::VmallocPages, nr_pages as isize);
        {
            let _a = self.vm().areas.lock();
            // SAFETY: the areas lock orders this with /proc readers.
            unsafe {
                (*va).pages = arr;
                (*va).pages_order = arr_order.as_u32();
                (*va).nr_pages = nr_pages;
                (*va).flags = vm_flags & !(VM_UNINITIALIZED | VM_MAP_RAM_AREA);
            }
        }
        Some(VirtAddr::new(self.kva_real(va_start)))
    }

    /// `__vmalloc_node`: [`Machine::__vmalloc_node_range`] over the whole vmalloc space with
    /// `PAGE_KERNEL`.
    #[track_caller]
    pub fn __vmalloc_node(&self, size: usize, align: usize, gfp: GfpFlags) -> Option<VirtAddr> {
        let l = self.kernel_layout()?;
        self.__vmalloc_node_range(
            size,
            align,
            l.vmalloc_start,
            l.vmalloc_end,
            gfp,
            PteFlags::PAGE_KERNEL,
            VM_ALLOC,
            Location::caller(),
        )
    }

    /// `__vmalloc`: `size` bytes with `gfp`.
    #[track_caller]
    pub fn __vmalloc(&self, size: usize, gfp: GfpFlags) -> Option<VirtAddr> {
        self.__vmalloc_node(size, 1, gfp)
    }

    /// `vmalloc`: `size` bytes of virtually contiguous memory (`GFP_KERNEL`, HighMem pages
    /// allowed), followed by an unmapped guard page.
    ///
    /// # Examples
    /// ```
    /// # let params = kmem::BootParams::simulated(kmem::arch::Arch::X86_64, 64 << 20, 2).unwrap();
    /// # let m = kmem_hosted::boot(&params, kmem_hosted::HostedConfig::deterministic(0, 1)).unwrap();
    /// let v = m.vmalloc(40000).unwrap();
    /// // SAFETY: 40000 bytes were just allocated at `v`.
    /// unsafe { core::ptr::write_bytes(v.as_ptr::<u8>(), 0x5a, 40000) };
    /// assert!(m.is_vmalloc_addr(v));
    /// m.vfree(v);
    /// ```
    #[track_caller]
    pub fn vmalloc(&self, size: usize) -> Option<VirtAddr> {
        self.__vmalloc_node(size, 1, GfpFlags::GFP_KERNEL)
    }

    /// `vmalloc_huge`: [`Machine::vmalloc`] that maps sizes of 2 MiB or more with huge PMD
    /// entries (x86_64; the size is rounded up to 2 MiB), falling back to 4 KiB pages when
    /// no 2 MiB blocks are free.
    #[track_caller]
    pub fn vmalloc_huge(&self, size: usize, gfp: GfpFlags) -> Option<VirtAddr> {
        let l = self.kernel_layout()?;
        self.__vmalloc_node_range(
            size,
            1,
            l.vmalloc_start,
            l.vmalloc_end,
            gfp,
            PteFlags::PAGE_KERNEL,
            VM_ALLOC | VM_ALLOW_HUGE_VMAP,
            Location::caller(),
        )
    }

    /// `vzalloc`: zeroed [`Machine::vmalloc`].
    #[track_caller]
    pub fn vzalloc(&self, size: usize) -> Option<VirtAddr> {
        self.__vmalloc_node(size, 1, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO)
    }

    /// `vmalloc_user`: zeroed, `SHMLBA`-aligned, `VM_USERMAP` (mappable to user space).
    #[track_caller]
    pub fn vmalloc_user(&self, size: usize) -> Option<VirtAddr> {
        let l = self.kernel_layout()?;
        self.__vmalloc_node_range(
            size,
            PAGE_SIZE,
            l.vmalloc_start,
            l.vmalloc_end,
            GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO,
            PteFlags::PAGE_KERNEL,
            VM_ALLOC | VM_USERMAP,
            Location::caller(),
        )
    }

    /// `vmalloc_32`: pages addressable with 32 bits (`GFP_VMALLOC32`: `GFP_DMA32` on
    /// x86_64, lowmem `GFP_KERNEL` on i386).
    #[track_caller]
    pub fn vmalloc_32(&self, size: usize) -> Option<VirtAddr> {
        let gfp = match self.arch() {
            Arch::X86_64 => GfpFlags::GFP_KERNEL | GfpFlags::GFP_DMA32,
            // 32-bit: GFP_KERNEL, and no HighMem (the DMA32-less case keeps it lowmem).
            Arch::I386 => GfpFlags::GFP_KERNEL | GfpFlags::GFP_DMA32,
        };
        self.__vmalloc_node(size, 1, gfp)
    }

    /// `vfree`: releases memory from the vmalloc family (and `vmalloc_huge`). NULL is a no-op;
    /// a pointer that is not the start of a vmalloc area is reported (`Trying to vfree()
    /// nonexistent vm area`) and ignored. The address space is freed lazily.
    #[track_caller]
    pub fn vfree(&self, addr: VirtAddr) {
        if addr.is_null() {
            return;
        }
        if addr.page_offset() != 0 {
            self.warn(format_args!(
                "Trying to vfree() bad address ({:#x})",
                self.to_model(addr.as_usize())
            ));
            return;
        }
        let Some(va) = self.remove_vm_area(addr, VM_ALLOC) else {
            self.warn(format_args!(
                "Trying to vfree() nonexistent vm area ({:#x})",
                self.to_model(addr.as_usize())
            ));
            return;
        };
        // SAFETY: `va` was unlinked from the busy tree by remove_vm_area; it is ours.
        let (pages, nr, order) = unsafe { ((*va).pages, (*va).nr_pages, (*va).pages_order) };
        if !pages.is_null() {
            for i in 0..nr {
                // SAFETY: `nr` entries were written at allocation.
                self.__free_page(unsafe { pages.add(i).read() });
            }
            self.mod_node_stat(NodeStat::VmallocPages, -(nr as isize));
            self.free_pages(VirtAddr::from_ptr(pages), Order::new(order));
        }
        self.free_vmap_area_lazy(va);
    }

    /// `remove_vm_area`: unlinks the area starting at `addr` (of a kind in `want`),
    /// unmaps it without a TLB flush and returns it.
    fn remove_vm_area(&self, addr: VirtAddr, want: u32) -> Option<*mut VmapArea> {
        if !self.vm().ready.load(Ordering::Acquire) {
            return None;
        }
        let model = self.kva_model(addr.as_usize());
        let va = {
            let mut a = self.vm().areas.lock();
            // SAFETY: the busy tree holds valid objects (lock held).
            let va = unsafe { find_containing(&a.busy_root, model) }?;
            // SAFETY: as above.
            let (start, f) = unsafe { ((*va).va_start, (*va).flags) };
            let kind_ok = if want == ANY_VM {
                f & VM_MAP_RAM_AREA == 0
            } else {
                f & want != 0
            };
            let ok = start == model && f & VM_UNINITIALIZED == 0 && kind_ok;
            if !ok {
                return None;
            }
            // SAFETY: as above.
            unsafe { unlink_busy(&mut a, va) };
            va
        };
        // SAFETY: `va` is ours now.
        let (start, size, guard) = unsafe {
            (
                (*va).va_start,
                va_size(&*va),
                if (*va).flags & VM_NO_GUARD != 0 {
                    0
                } else {
                    PAGE_SIZE as u64
                },
            )
        };
        self.kernel_unmap_range(start, (size - guard) as usize, false);
        Some(va)
    }

    /// `__get_vm_area_caller`: reserves `size` bytes (page aligned up, plus a guard page
    /// unless [`VM_NO_GUARD`]) of address space in `[start, end)`, aligned to `align`,
    /// without mapping anything. Release with [`Machine::free_vm_area`].
    #[track_caller]
    pub fn __get_vm_area(
        &self,
        size: usize,
        align: usize,
        flags: u32,
        start: u64,
        end: u64,
    ) -> Option<VirtAddr> {
        let size = size.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1);
        if size == 0 {
            return None;
        }
        let guard = if flags & VM_NO_GUARD != 0 {
            0
        } else {
            PAGE_SIZE
        };
        let va = self.alloc_vmap_area(
            (size + guard) as u64,
            align.max(PAGE_SIZE) as u64,
            start,
            end,
            GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN,
        )?;
        let va_start = {
            let _a = self.vm().areas.lock();
            // SAFETY: our new busy area; the lock orders the writes with /proc readers.
            unsafe {
                (*va).flags = flags & !(VM_UNINITIALIZED | VM_MAP_RAM_AREA);
                (*va).caller = Some(Location::caller());
                (*va).requested_size = size;
                (*va).va_start
            }
        };
        Some(VirtAddr::new(self.kva_real(va_start)))
    }

    /// `get_vm_area`: [`Machine::__get_vm_area`] anywhere in the vmalloc space.
    #[track_caller]
    pub fn get_vm_area(&self, size: usize, flags: u32) -> Option<VirtAddr> {
        let l = self.kernel_layout()?;
        self.__get_vm_area(size, PAGE_SIZE, flags, l.vmalloc_start, l.vmalloc_end)
    }

    /// `free_vm_area`: releases an area from [`Machine::get_vm_area`] (unmapping whatever
    /// was mapped in it; the address space is freed lazily).
    #[track_caller]
    pub fn free_vm_area(&self, addr: VirtAddr) {
        match self.remove_vm_area(addr, ANY_VM) {
            Some(va) => self.free_vmap_area_lazy(va),
            None => self.warn(format_args!(
                "free_vm_area: nonexistent vm area ({:#x})",
                self.to_model(addr.as_usize())
            )),
        }
    }

    /// `vmap`: maps `pages` virtually contiguously (`VM_MAP`), with a guard page unless
    /// `flags` has [`VM_NO_GUARD`].
    #[track_caller]
    pub fn vmap(&self, pages: &[PagePtr], flags: u32, prot: PteFlags) -> Option<VirtAddr> {
        if !pages.iter().all(|&p| self.check_page_ptr(p, "vmap")) {
            return None;
        }
        let l = self.kernel_layout()?;
        if pages.is_empty() || pages.len() > self.totalram_pages() {
            return None;
        }
        let size = pages.len() * PAGE_SIZE;
        let guard = if flags & VM_NO_GUARD != 0 {
            0
        } else {
            PAGE_SIZE
        };
        let va = self.alloc_vmap_area(
            (size + guard) as u64,
            PAGE_SIZE as u64,
            l.vmalloc_start,
            l.vmalloc_end,
            GfpFlags::GFP_KERNEL,
        )?;
        // SAFETY: our new busy area, VM_UNINITIALIZED until published below.
        let start = unsafe {
            (*va).caller = Some(Location::caller());
            (*va).requested_size = size;
            (*va).va_start
        };
        if !self.kernel_map_pages(start, pages, prot) {
            self.free_vmap_area_now(va);
            return None;
        }
        {
            let _a = self.vm().areas.lock();
            // SAFETY: published under the lock, which orders it with readers.
            unsafe {
                (*va).flags = (flags | VM_MAP) & !(VM_ALLOC | VM_UNINITIALIZED | VM_MAP_RAM_AREA)
            };
        }
        Some(VirtAddr::new(self.kva_real(start)))
    }

    /// `vunmap`: removes a [`Machine::vmap`] mapping (the pages are the caller's). NULL is a
    /// no-op; anything else that is not a vmap area is reported.
    #[track_caller]
    pub fn vunmap(&self, addr: VirtAddr) {
        if addr.is_null() {
            return;
        }
        match self.remove_vm_area(addr, VM_MAP) {
            Some(va) => self.free_vmap_area_lazy(va),
            None => self.warn(format_args!(
                "Trying to vunmap() nonexistent vm area ({:#x})",
                self.to_model(addr.as_usize())
            )),
        }
    }

    /// `vm_map_ram`: a fast mapping of `pages` without a `vm_struct` or guard page (shown as
    /// `vm_map_ram` in /proc/vmallocinfo).
    pub fn vm_map_ram(&self, pages: &[PagePtr]) -> Option<VirtAddr> {
        if !pages.iter().all(|&p| self.check_page_ptr(p, "vm_map_ram")) {
            return None;
        }
        let l = self.kernel_layout()?;
        if pages.is_empty() {
            return None;
        }
        let size = (pages.len() * PAGE_SIZE) as u64;
        let va = self.alloc_vmap_area(
            size,
            PAGE_SIZE as u64,
            l.vmalloc_start,
            l.vmalloc_end,
            GfpFlags::GFP_KERNEL,
        )?;
        // SAFETY: our new busy area; `va_start` is not written after insertion.
        let start = unsafe { (*va).va_start };
        if !self.kernel_map_pages(start, pages, PteFlags::PAGE_KERNEL) {
            self.free_vmap_area_now(va);
            return None;
        }
        {
            let _a = self.vm().areas.lock();
            // SAFETY: published under the lock, which orders it with readers.
            unsafe { (*va).flags = VM_MAP_RAM_AREA | VM_NO_GUARD };
        }
        Some(VirtAddr::new(self.kva_real(start)))
    }

    /// `vm_unmap_ram`: removes a [`Machine::vm_map_ram`] mapping of `count` pages.
    #[track_caller]
    pub fn vm_unmap_ram(&self, addr: VirtAddr, count: usize) {
        match self.remove_vm_area(addr, VM_MAP_RAM_AREA) {
            Some(va) => {
                // SAFETY: ours now.
                let n = unsafe { (va_size(&*va) >> PAGE_SHIFT) as usize };
                if n != count {
                    self.warn(format_args!("vm_unmap_ram: count {count} != mapped {n}"));
                }
                self.free_vmap_area_lazy(va)
            }
            None => self.warn(format_args!(
                "vm_unmap_ram: bad address {:#x}",
                self.to_model(addr.as_usize())
            )),
        }
    }

    /// `is_vmalloc_addr`: whether `addr` lies in the vmalloc space.
    pub fn is_vmalloc_addr(&self, addr: VirtAddr) -> bool {
        match self.kernel_layout() {
            Some(l) => l.is_vmalloc_addr(self.kva_model(addr.as_usize())),
            None => false,
        }
    }

    /// `vmalloc_to_page`: the page mapped at a vmalloc (or kmap) address, by a page walk.
    pub fn vmalloc_to_page(&self, addr: VirtAddr) -> Option<PagePtr> {
        self.kernel_layout()?;
        let model = self.kva_model(addr.as_usize());
        let g = self.vm().pgt.lock();
        let t = g.pt.as_ref()?.lookup(self.pt_mem(), model)?;
        drop(g);
        self.pfn_to_page(t.phys.pfn())
    }

    /// `vmalloc_to_pfn`.
    pub fn vmalloc_to_pfn(&self, addr: VirtAddr) -> Option<Pfn> {
        self.vmalloc_to_page(addr).map(|p| self.page_to_pfn(p))
    }

    /// `find_vm_area`: the area containing `addr`.
    pub fn find_vm_area(&self, addr: VirtAddr) -> Option<VmInfo> {
        self.kernel_layout()?;
        let model = self.kva_model(addr.as_usize());
        let a = self.vm().areas.lock();
        // SAFETY: busy tree of valid objects under the lock.
        let va = unsafe { find_containing(&a.busy_root, model) }?;
        // SAFETY: as above.
        let v = unsafe { &*va };
        if v.flags & VM_UNINITIALIZED != 0 {
            return None;
        }
        Some(VmInfo {
            addr: VirtAddr::new(self.kva_real(v.va_start)),
            model_addr: v.va_start,
            size: va_size(v) as usize,
            requested_size: v.requested_size,
            flags: v.flags,
            nr_pages: v.nr_pages,
        })
    }

    /// `vrealloc`: resizes a vmalloc allocation. `p` NULL allocates; `size` 0 frees and
    /// returns `None`. Shrinking (and growing within the area's pages) keeps the address;
    /// otherwise a new area is allocated, the old contents copied and the old area freed.
    ///
    /// # Errors
    /// `None` (old allocation untouched) if `p` is not a vmalloc area or memory runs out.
    #[track_caller]
    pub fn vrealloc(&self, p: VirtAddr, size: usize, gfp: GfpFlags) -> Option<VirtAddr> {
        if size == 0 {
            self.vfree(p);
            return None;
        }
        let mut old_size = 0;
        if !p.is_null() {
            let Some(vm) = self.find_vm_area(p).filter(|v| v.addr == p) else {
                self.warn(format_args!(
                    "Trying to vrealloc() nonexistent vm area ({:#x})",
                    self.to_model(p.as_usize())
                ));
                return None;
            };
            let alloced = vm.nr_pages * PAGE_SIZE;
            old_size = vm.requested_size;
            if size <= alloced {
                if size < old_size && gfp.contains(GfpFlags::__GFP_ZERO) {
                    // SAFETY: `[p + size, p + old_size)` is inside the mapped area.
                    unsafe { ptr::write_bytes(p.as_ptr::<u8>().add(size), 0, old_size - size) };
                }
                self.set_requested_size(vm.model_addr, size);
                return Some(p);
            }
        }
        let n = self.__vmalloc_node_range(
            size,
            1,
            self.kernel_layout()?.vmalloc_start,
            self.kernel_layout()?.vmalloc_end,
            gfp,
            PteFlags::PAGE_KERNEL,
            VM_ALLOC,
            Location::caller(),
        )?;
        if !p.is_null() {
            // SAFETY: both areas are mapped for at least `old_size` bytes and distinct.
            unsafe { ptr::copy_nonoverlapping(p.as_ptr::<u8>(), n.as_ptr::<u8>(), old_size) };
            self.vfree(p);
        }
        Some(n)
    }

    fn set_requested_size(&self, model: u64, size: usize) {
        let a = self.vm().areas.lock();
        // SAFETY: busy tree of valid objects under the lock.
        if let Some(va) = unsafe { find_containing(&a.busy_root, model) } {
            // SAFETY: as above.
            unsafe { (*va).requested_size = size };
        }
    }

    // ------------------------------------------------------------ kvmalloc

    /// `kvmalloc`: kmalloc first, vmalloc if that fails — Linux's rules (mm/slub.c
    /// `__kvmalloc_node_noprof`): above a page, the kmalloc attempt is made `__GFP_NOWARN`,
    /// without direct reclaim unless `__GFP_RETRY_MAYFAIL`, and without `__GFP_NOFAIL`; sizes
    /// up to a page never fall back; non-blocking GFP never falls back; sizes over `INT_MAX`
    /// are refused (with a warning unless `__GFP_NOWARN`).
    #[track_caller]
    pub fn kvmalloc(&self, size: usize, gfp: GfpFlags) -> Option<VirtAddr> {
        let mut kgfp = gfp;
        if size > PAGE_SIZE {
            kgfp |= GfpFlags::__GFP_NOWARN;
            if !gfp.contains(GfpFlags::__GFP_RETRY_MAYFAIL) {
                kgfp = kgfp.without(GfpFlags::__GFP_DIRECT_RECLAIM);
            }
            kgfp = kgfp.without(GfpFlags::__GFP_NOFAIL);
        }
        if let Some(p) = self.kmalloc(size, kgfp) {
            return Some(VirtAddr::from_ptr(p.as_ptr()));
        }
        if size <= PAGE_SIZE || !gfp.allows_blocking() {
            return None;
        }
        if size > INT_MAX {
            if !gfp.contains(GfpFlags::__GFP_NOWARN) {
                self.warn(format_args!("kvmalloc: size {size} > INT_MAX"));
            }
            return None;
        }
        // kvmalloc can always use VM_ALLOW_HUGE_VMAP: callers assume nothing about the
        // mapping.
        self.vmalloc_huge(size, gfp)
    }

    /// `kvzalloc`: zeroed [`Machine::kvmalloc`].
    #[track_caller]
    pub fn kvzalloc(&self, size: usize, gfp: GfpFlags) -> Option<VirtAddr> {
        self.kvmalloc(size, gfp | GfpFlags::__GFP_ZERO)
    }

    /// `kvfree`: vfree for vmalloc addresses, kfree otherwise. NULL is a no-op.
    #[track_caller]
    pub fn kvfree(&self, addr: VirtAddr) {
        if self.is_vmalloc_addr(addr) {
            self.vfree(addr);
        } else {
            self.kfree(addr.as_ptr::<u8>());
        }
    }

    /// `kvrealloc`: vrealloc for vmalloc addresses; otherwise krealloc, falling back to a
    /// kvmalloc and copy (`kvrealloc_node_align_noprof`).
    #[track_caller]
    pub fn kvrealloc(&self, p: VirtAddr, size: usize, gfp: GfpFlags) -> Option<VirtAddr> {
        if self.is_vmalloc_addr(p) {
            return self.vrealloc(p, size, gfp);
        }
        let mut kgfp = gfp;
        if size > PAGE_SIZE {
            kgfp = (kgfp | GfpFlags::__GFP_NOWARN).without(GfpFlags::__GFP_NOFAIL);
            if !gfp.contains(GfpFlags::__GFP_RETRY_MAYFAIL) {
                kgfp = kgfp.without(GfpFlags::__GFP_DIRECT_RECLAIM);
            }
        }
        if let Some(n) = self.krealloc(p.as_ptr::<u8>(), size, kgfp) {
            return Some(VirtAddr::from_ptr(n.as_ptr()));
        }
        let n = self.kvmalloc(size, gfp)?;
        if !p.is_null() {
            let old = self.ksize(p.as_ptr::<u8>()).min(size);
            // SAFETY: the old object has `ksize` bytes, the new one at least `size`.
            unsafe { ptr::copy_nonoverlapping(p.as_ptr::<u8>(), n.as_ptr::<u8>(), old) };
            self.kfree(p.as_ptr::<u8>());
        }
        Some(n)
    }

    // ------------------------------------------------------------ translation, TLB, /proc

    /// `translate`: walks the kernel page table for model address `addr`, reporting each
    /// level's entry, and consults the TLB model (filling it on a miss).
    pub fn translate(&self, addr: u64) -> Option<TranslateReport> {
        let l = self.kernel_layout()?;
        let mut g = self.vm().pgt.lock();
        let g = &mut *g;
        let walk = g.pt.as_ref()?.walk(self.pt_mem(), addr);
        let tlb = match (g.tlb.lookup(addr), walk.result) {
            (Some(t), Some(w)) if t.phys == w.phys => TlbOutcome::Hit,
            (Some(t), _) => TlbOutcome::Stale(t.phys),
            (None, Some(w)) => {
                g.tlb.fill(walk.fmt, addr, w);
                TlbOutcome::Miss
            }
            (None, None) => TlbOutcome::Miss,
        };
        let area = if addr >= l.page_offset && addr < l.high_memory {
            "direct map"
        } else if l.is_vmalloc_addr(addr) {
            "vmalloc"
        } else if l
            .pkmap_base
            .is_some_and(|b| addr >= b && addr < b + ((crate::layout::LAST_PKMAP as u64) << 12))
        {
            "pkmap"
        } else if addr >= l.fixaddr_start && addr < l.fixaddr_top {
            "fixmap"
        } else {
            "unmapped kernel space"
        };
        Some(TranslateReport { walk, tlb, area })
    }

    /// The TLB model's counters.
    pub fn tlb_stats(&self) -> TlbStats {
        self.vm().pgt.lock().tlb.stats()
    }

    /// `flush_tlb_kernel_range` on the TLB model and the platform.
    pub fn flush_tlb_kernel_range(&self, start: u64, end: u64) {
        let (s, e) =
            crate::pgtable::TlbFlush::range(start, end).flush(&mut self.vm().pgt.lock().tlb);
        self.platform().flush_tlb_kernel_range(s, e);
    }

    /// `flush_tlb_all` on the TLB model and the platform.
    pub fn flush_tlb_all(&self) {
        self.vm().pgt.lock().tlb.flush_all();
        self.platform().flush_tlb_kernel_range(0, u64::MAX);
    }

    /// The physical address of the kernel's top-level page table (what CR3 would hold).
    pub fn kernel_pgd(&self) -> Option<PhysAddr> {
        self.vm().pgt.lock().pt.as_ref().map(|p| p.root())
    }

    /// Runs `f` with the kernel page table and the TLB model (for tests and the bare-metal
    /// kernel's self-tests).
    pub fn with_kernel_page_table<R>(
        &self,
        f: impl FnOnce(&mut PageTable, &mut Tlb) -> R,
    ) -> Option<R> {
        let mut g = self.vm().pgt.lock();
        let g = &mut *g;
        let pt = g.pt.as_mut()?;
        Some(f(pt, &mut g.tlb))
    }

    /// The model address of a kernel pointer (vmalloc, kmap, or direct map) for display.
    pub fn kva_to_model(&self, addr: VirtAddr) -> u64 {
        if self.kernel_layout().is_some() {
            let m = self.kva_model(addr.as_usize());
            if m != u64::MAX {
                return m;
            }
        }
        self.to_model(addr.as_usize())
    }

    /// Statistics of the vmalloc space.
    pub fn vmalloc_stats(&self) -> VmallocStats {
        let a = self.vm().areas.lock();
        let largest = if a.free_root.rb_node.is_null() {
            0
        } else {
            // SAFETY: the root is a valid free-tree node under the lock.
            unsafe { (*kds::container_of!(a.free_root.rb_node, VmapArea, rb)).subtree_max_size }
        };
        VmallocStats {
            busy_areas: a.nr_busy,
            free_areas: a.nr_free,
            lazy_areas: a.nr_lazy_areas,
            lazy_pages: self.vm().lazy_nr.load(Ordering::Relaxed),
            purges: self.vm().purges.load(Ordering::Relaxed),
            object_pages: a.obj_pages,
            stashed_objects: a.obj_stash,
            largest_free: largest,
        }
    }

    /// Checks the vmalloc invariants: the free tree is sorted, its areas neither overlap
    /// nor touch, its augmented values are right, and no busy area overlaps a free one.
    ///
    /// # Errors
    /// A description of the first violation.
    pub fn check_vmalloc(&self) -> Result<(), &'static str> {
        let a = self.vm().areas.lock();
        // SAFETY: both trees hold valid objects under the lock.
        unsafe {
            if !a.free_root.rb_node.is_null() {
                check_max(a.free_root.rb_node)?;
            }
            let mut prev_end: Option<u64> = None;
            let mut n = rb_first(&a.free_root);
            let mut count = 0;
            while !n.is_null() {
                let va = &*kds::container_of!(n, VmapArea, rb);
                if va.va_start >= va.va_end {
                    return Err("empty free area");
                }
                if let Some(e) = prev_end {
                    if va.va_start <= e {
                        return Err("free areas overlap or touch (not merged)");
                    }
                }
                prev_end = Some(va.va_end);
                count += 1;
                n = rb_next(n);
            }
            if count != a.nr_free {
                return Err("free area count mismatch");
            }
            let mut n = rb_first(&a.busy_root);
            let mut prev_end = 0;
            while !n.is_null() {
                let va = &*kds::container_of!(n, VmapArea, rb);
                if va.va_start < prev_end {
                    return Err("busy areas overlap");
                }
                prev_end = va.va_end;
                if find_containing(&a.free_root, va.va_start).is_some()
                    || find_containing(&a.free_root, va.va_end - 1).is_some()
                {
                    return Err("busy area overlaps a free area");
                }
                n = rb_next(n);
            }
        }
        Ok(())
    }

    /// /proc/vmallocinfo (mm/vmalloc.c `vmalloc_info_show`): one line per busy area in
    /// address order, then the lazily freed ones.
    pub fn show_vmallocinfo(&self, out: &mut dyn Write) -> fmt::Result {
        if self.kernel_layout().is_none() {
            return Ok(());
        }
        let w = self.arch().ptr_hex_digits();
        let a = self.vm().areas.lock();
        // SAFETY: the busy tree and purge list hold valid objects under the lock.
        unsafe {
            let mut n = rb_first(&a.busy_root);
            while !n.is_null() {
                let v = &*kds::container_of!(n, VmapArea, rb);
                n = rb_next(n);
                if v.flags & VM_UNINITIALIZED != 0 {
                    continue;
                }
                if v.flags & VM_MAP_RAM_AREA != 0 {
                    writeln!(
                        out,
                        "{}-{} {:7} vm_map_ram",
                        Ptr(v.va_start, w),
                        Ptr(v.va_end, w),
                        va_size(v)
                    )?;
                    continue;
                }
                write!(
                    out,
                    "{}-{} {:7}",
                    Ptr(v.va_start, w),
                    Ptr(v.va_end, w),
                    va_size(v)
                )?;
                if v.caller.is_some() {
                    write!(out, " {}", CallerName(v.caller))?;
                }
                if v.nr_pages != 0 {
                    write!(out, " pages={}", v.nr_pages)?;
                }
                if v.phys_addr != 0 {
                    write!(out, " phys={:#018x}", v.phys_addr)?;
                }
                for (bit, name) in [
                    (VM_IOREMAP, " ioremap"),
                    (VM_SPARSE, " sparse"),
                    (VM_ALLOC, " vmalloc"),
                    (VM_MAP, " vmap"),
                    (VM_USERMAP, " user"),
                    (VM_DMA_COHERENT, " dma-coherent"),
                ] {
                    if v.flags & bit != 0 {
                        out.write_str(name)?;
                    }
                }
                if v.nr_pages != 0 {
                    write!(out, " N0={}", v.nr_pages)?;
                }
                out.write_str("\n")?;
            }
            let mut p = a.purge_head;
            while !p.is_null() {
                let v = &*p;
                writeln!(
                    out,
                    "{}-{} {:7} unpurged vm_area",
                    Ptr(v.va_start, w),
                    Ptr(v.va_end, w),
                    va_size(v)
                )?;
                p = v.next;
            }
        }
        Ok(())
    }

    /// Runs vmalloc's self-tests (for the bare-metal kernel, which has no test harness):
    /// scenarios of lib/test_vmalloc.c (fix-size, random-size, aligned, full-fit), lowest
    /// placement and merging, vmap, a lazy purge, and the page walk against the pages. With
    /// `touch`, memory is also written and read through the returned pointers, which needs
    /// the kernel page table to be live (bare metal: loaded in CR3 or adopted through
    /// [`Platform::kernel_pgd`]; hosted: always).
    ///
    /// # Errors
    /// The first check that failed.
    pub fn vmalloc_selftest(&self, touch: bool) -> Result<(), &'static str> {
        self.kernel_layout().ok_or("vmalloc not initialised")?;
        let poke = |v: VirtAddr, len: usize, b: u8| {
            if touch {
                // SAFETY: `v` was just allocated with at least `len` bytes, mapped writable.
                unsafe { ptr::write_bytes(v.as_ptr::<u8>(), b, len) };
            }
        };
        let peek = |v: VirtAddr, off: usize| -> Option<u8> {
            // SAFETY: callers stay inside an allocation of theirs.
            touch.then(|| unsafe { v.as_ptr::<u8>().add(off).read_volatile() })
        };
        let saved = self.vm().lazy_max.load(Ordering::Relaxed);
        // fix_size_alloc
        for _ in 0..64 {
            let v = self
                .vmalloc(3 * PAGE_SIZE)
                .ok_or("fix_size: vmalloc failed")?;
            poke(v, 1, 0);
            self.vfree(v);
        }
        // random_size_alloc and random_size_align_alloc (platform randomness)
        for _ in 0..64 {
            let r = self.platform().random_u64();
            let n = (r % 100) as usize + 1;
            let v = self
                .vmalloc(n * PAGE_SIZE)
                .ok_or("random_size: vmalloc failed")?;
            poke(v, n * PAGE_SIZE, 0xa5);
            if peek(v, n * PAGE_SIZE - 1).is_some_and(|b| b != 0xa5) {
                return Err("random_size: read back differs");
            }
            // Every page of the area is the page the walk finds.
            for i in [0, n - 1] {
                let model = self.kva_model(v.as_usize()) + (i * PAGE_SIZE) as u64;
                let w = self.translate(model).ok_or("no page table")?;
                let pfn = w.walk.result.ok_or("walk: page not mapped")?.phys.pfn();
                if self.vmalloc_to_pfn(v + (i * PAGE_SIZE) as u64) != Some(pfn) {
                    return Err("vmalloc_to_pfn differs from the walk");
                }
            }
            self.vfree(v);
            let align = 1usize << ((r >> 8) % 23);
            let v = self
                .__vmalloc_node(
                    ((r >> 16) % 10 + 1) as usize * PAGE_SIZE,
                    align,
                    GfpFlags::GFP_KERNEL,
                )
                .ok_or("random_size_align: failed")?;
            if self.kva_model(v.as_usize()) & (align as u64 - 1) != 0 {
                return Err("random_size_align: misaligned");
            }
            self.vfree(v);
        }
        // Placement, merging, full fit (no lazy freeing for exact expectations).
        self.vm().lazy_max.store(0, Ordering::Relaxed);
        self.purge_vmap_area_lazy();
        let base = self.vmalloc_stats();
        let a = self.vmalloc(PAGE_SIZE).ok_or("placement: a")?;
        let b = self.vmalloc(4 * PAGE_SIZE).ok_or("placement: b")?;
        let c = self.vmalloc(PAGE_SIZE).ok_or("placement: c")?;
        self.vfree(b);
        let d = self.vmalloc(2 * PAGE_SIZE).ok_or("placement: d")?;
        if d != b {
            return Err("placement: not the lowest fitting hole");
        }
        self.vfree(d);
        self.vfree(a);
        self.vfree(c);
        if self.vmalloc_stats().free_areas != base.free_areas {
            return Err("merge: free areas did not merge back");
        }
        // vmap of pages written through the direct map.
        let mut pages = [None::<PagePtr>; 3];
        for (i, p) in pages.iter_mut().enumerate() {
            let pg = self
                .alloc_page(GfpFlags::GFP_KERNEL)
                .ok_or("vmap: no page")?;
            if let Some(va) = self.page_address(pg) {
                // SAFETY: the page was just allocated.
                unsafe { va.as_ptr::<u8>().write(i as u8 + 1) };
            }
            *p = Some(pg);
        }
        let arr = [pages[0].unwrap(), pages[1].unwrap(), pages[2].unwrap()];
        let v = self
            .vmap(&arr, VM_MAP, PteFlags::PAGE_KERNEL)
            .ok_or("vmap failed")?;
        for (i, &p) in arr.iter().enumerate() {
            if self.vmalloc_to_page(v + (i * PAGE_SIZE) as u64) != Some(p) {
                return Err("vmap: wrong page");
            }
            if peek(v, i * PAGE_SIZE).is_some_and(|b| b != i as u8 + 1) {
                return Err("vmap: wrong contents");
            }
        }
        self.vunmap(v);
        for p in arr {
            self.__free_page(p);
        }
        self.vm().lazy_max.store(saved, Ordering::Relaxed);
        // Lazy purge: freed areas wait, then one purge returns them.
        let v = self.vmalloc(PAGE_SIZE).ok_or("lazy: vmalloc")?;
        self.vfree(v);
        if self.vmalloc_stats().lazy_areas == 0 && self.lazy_max_pages() > 2 {
            return Err("lazy: area not deferred");
        }
        self.purge_vmap_area_lazy();
        if self.vmalloc_stats().lazy_areas != 0 {
            return Err("lazy: purge left areas");
        }
        self.check_vmalloc()
    }

    /// Writes the kernel virtual layout (`kmem layout`).
    pub fn show_layout(&self, out: &mut dyn Write) -> fmt::Result {
        match self.kernel_layout() {
            Some(l) => write!(out, "{l}"),
            None => writeln!(out, "(kernel page tables not initialised)"),
        }
    }
}

// ---------------------------------------------------------------- tree helpers

/// Freed `vmap_area` objects kept for reuse before going back to the kmem_cache (Linux keeps
/// one preloaded object per CPU, `ne_fit_preload_node`).
const OBJ_STASH_MAX: usize = 16;

/// Puts an unused object on the stash.
///
/// # Safety
/// `o` is a valid object in no tree and no list; the areas lock is held.
unsafe fn stash_push(a: &mut VmapAreas, o: *mut VmapArea) {
    // SAFETY: the caller's guarantee.
    unsafe { ptr::addr_of_mut!((*o).next).write(a.obj_free) };
    a.obj_free = o;
    a.obj_stash += 1;
}

const fn align_up(v: u64, align: u64) -> u64 {
    (v + align - 1) & !(align - 1)
}

/// The free-tree value of `n` (`get_subtree_max_size`), 0 for an empty child.
///
/// # Safety
/// `n` is null or a free-tree node.
unsafe fn subtree_max(n: *mut RbNode) -> u64 {
    if n.is_null() {
        0
    } else {
        // SAFETY: by the caller's guarantee.
        unsafe { (*kds::container_of!(n, VmapArea, rb)).subtree_max_size }
    }
}

/// Whether `[align_up(max(va_start, vstart)), + size)` fits in `va` (`is_within_this_va`).
///
/// # Safety
/// `va` is valid.
unsafe fn fits(va: *const VmapArea, size: u64, align: u64, vstart: u64) -> bool {
    // SAFETY: by the caller's guarantee.
    let (s, e) = unsafe { ((*va).va_start, (*va).va_end) };
    let start = s.max(vstart);
    let Some(a) = start.checked_add(align - 1) else {
        return false;
    };
    let a = a & !(align - 1);
    match a.checked_add(size) {
        Some(end) => end <= e,
        None => false,
    }
}

/// `find_vmap_lowest_match`: the lowest free area in which an aligned `size` fits at or
/// above `vstart`, skipping subtrees whose largest area is below `length`.
///
/// # Safety
/// `root` is the free tree, with valid nodes.
unsafe fn find_lowest_match(
    root: &RbRoot,
    size: u64,
    align: u64,
    mut vstart: u64,
    length: u64,
) -> Option<*mut VmapArea> {
    let mut node = root.rb_node;
    // SAFETY: every node reached is a free-tree node (caller's guarantee).
    unsafe {
        while !node.is_null() {
            let va = kds::container_of!(node, VmapArea, rb);
            if subtree_max((*node).rb_left) >= length && vstart < (*va).va_start {
                node = (*node).rb_left;
                continue;
            }
            if fits(va, size, align, vstart) {
                return Some(va);
            }
            if subtree_max((*node).rb_right) >= length && vstart <= (*va).va_end {
                node = (*node).rb_right;
                continue;
            }
            // Climb until a node whose right subtree can still hold the request.
            loop {
                node = rb_parent(node);
                if node.is_null() {
                    return None;
                }
                let va = kds::container_of!(node, VmapArea, rb);
                if fits(va, size, align, vstart) {
                    return Some(va);
                }
                if subtree_max((*node).rb_right) >= length && vstart <= (*va).va_start {
                    // Everything left of here is done; search the right subtree from its
                    // own addresses on.
                    vstart = (*va).va_start + 1;
                    node = (*node).rb_right;
                    break;
                }
            }
        }
    }
    None
}

/// Inserts `va` into the free tree by address, keeping the augmented values.
///
/// # Safety
/// `va` is a valid object not in any tree; the areas lock is held (`a`).
unsafe fn insert_free(a: &mut VmapAreas, va: *mut VmapArea) {
    // SAFETY: the caller's guarantees; nodes reached are free-tree nodes.
    unsafe {
        let mut link: *mut *mut RbNode = &mut a.free_root.rb_node;
        let mut parent = ptr::null_mut();
        while !(*link).is_null() {
            parent = *link;
            let p = kds::container_of!(parent, VmapArea, rb);
            link = if (*va).va_start < (*p).va_start {
                &mut (*parent).rb_left
            } else {
                &mut (*parent).rb_right
            };
        }
        (*va).subtree_max_size = 0;
        rb_link_node(&mut (*va).rb, parent, link);
        rb_insert_augmented::<FreeAugment>(&mut (*va).rb, &mut a.free_root);
        FreeAugment::propagate(&mut (*va).rb, ptr::null_mut());
        a.nr_free += 1;
    }
}

/// Removes `va` from the free tree.
///
/// # Safety
/// `va` is a free-tree node; the areas lock is held.
unsafe fn erase_free(a: &mut VmapAreas, va: *mut VmapArea) {
    // SAFETY: the caller's guarantees.
    unsafe {
        rb_erase_augmented::<FreeAugment>(&mut (*va).rb, &mut a.free_root);
        stash_push(a, va);
    }
    a.nr_free -= 1;
}

/// Carves `[start, start + size)` out of free area `fva` (`va_clip`): full fit removes it,
/// an edge fit shrinks it, a fit in the middle splits it using `nva`; `nva` goes back to the
/// slab if unused.
///
/// # Safety
/// `fva` is a free-tree node containing the range; `nva` a fresh object; lock held.
unsafe fn clip_free_area(
    a: &mut VmapAreas,
    fva: *mut VmapArea,
    start: u64,
    size: u64,
    nva: *mut VmapArea,
) {
    // SAFETY: the caller's guarantees.
    unsafe {
        let (s, e) = ((*fva).va_start, (*fva).va_end);
        let end = start + size;
        let mut nva_used = false;
        if s == start && e == end {
            erase_free(a, fva); // FL_FIT_TYPE
        } else if s == start {
            (*fva).va_start = end; // LE_FIT_TYPE
            FreeAugment::propagate(&mut (*fva).rb, ptr::null_mut());
        } else if e == end {
            (*fva).va_end = start; // RE_FIT_TYPE
            FreeAugment::propagate(&mut (*fva).rb, ptr::null_mut());
        } else {
            // NE_FIT_TYPE: the left part stays in `fva`, the right part becomes `nva`.
            (*fva).va_end = start;
            FreeAugment::propagate(&mut (*fva).rb, ptr::null_mut());
            (*nva).va_start = end;
            (*nva).va_end = e;
            insert_free(a, nva);
            nva_used = true;
        }
        if !nva_used {
            stash_push(a, nva);
        }
    }
}

/// `merge_or_add_vmap_area_augment`: returns `va`'s range to the free tree, merging with
/// the free neighbours it touches.
///
/// # Safety
/// `va` is a valid object in no tree; lock held.
unsafe fn merge_or_add_free(a: &mut VmapAreas, va: *mut VmapArea) {
    // SAFETY: the caller's guarantees; nodes reached are free-tree nodes.
    unsafe {
        // Find the neighbours: the last free area below and the first above.
        let mut node = a.free_root.rb_node;
        let mut below: *mut RbNode = ptr::null_mut();
        let mut above: *mut RbNode = ptr::null_mut();
        while !node.is_null() {
            let n = kds::container_of!(node, VmapArea, rb);
            if (*va).va_start < (*n).va_start {
                above = node;
                node = (*node).rb_left;
            } else {
                below = node;
                node = (*node).rb_right;
            }
        }
        debug_assert!(below.is_null() || rb_next(below) == above);
        debug_assert!(above.is_null() || rb_prev(above) == below);
        let mut merged: *mut VmapArea = ptr::null_mut();
        if !above.is_null() {
            let n = kds::container_of!(above, VmapArea, rb);
            if (*n).va_start == (*va).va_end {
                (*n).va_start = (*va).va_start;
                stash_push(a, va);
                merged = n;
            }
        }
        if !below.is_null() {
            let p = kds::container_of!(below, VmapArea, rb);
            let start = if merged.is_null() {
                (*va).va_start
            } else {
                (*merged).va_start
            };
            if (*p).va_end == start {
                if merged.is_null() {
                    (*p).va_end = (*va).va_end;
                    stash_push(a, va);
                } else {
                    (*p).va_end = (*merged).va_end;
                    erase_free(a, merged);
                }
                merged = p;
            }
        }
        if merged.is_null() {
            insert_free(a, va);
        } else {
            FreeAugment::propagate(&mut (*merged).rb, ptr::null_mut());
        }
    }
}

/// Inserts a busy area by address.
///
/// # Safety
/// `va` is a valid object in no tree; lock held.
unsafe fn insert_busy(a: &mut VmapAreas, va: *mut VmapArea) {
    // SAFETY: the caller's guarantees; nodes reached are busy-tree nodes.
    unsafe {
        let mut link: *mut *mut RbNode = &mut a.busy_root.rb_node;
        let mut parent = ptr::null_mut();
        while !(*link).is_null() {
            parent = *link;
            let p = kds::container_of!(parent, VmapArea, rb);
            link = if (*va).va_start < (*p).va_start {
                &mut (*parent).rb_left
            } else {
                &mut (*parent).rb_right
            };
        }
        rb_link_node(&mut (*va).rb, parent, link);
        rb_insert_color(&mut (*va).rb, &mut a.busy_root);
    }
    a.nr_busy += 1;
}

/// Removes a busy area.
///
/// # Safety
/// `va` is a busy-tree node; lock held.
unsafe fn unlink_busy(a: &mut VmapAreas, va: *mut VmapArea) {
    // SAFETY: the caller's guarantees.
    unsafe { rb_erase(&mut (*va).rb, &mut a.busy_root) };
    a.nr_busy -= 1;
}

/// `__find_vmap_area`: the area of the tree containing `addr`.
///
/// # Safety
/// `root`'s nodes are valid areas.
unsafe fn find_containing(root: &RbRoot, addr: u64) -> Option<*mut VmapArea> {
    let mut n = root.rb_node;
    // SAFETY: the caller's guarantee.
    unsafe {
        while !n.is_null() {
            let va = kds::container_of!(n, VmapArea, rb);
            if addr < (*va).va_start {
                n = (*n).rb_left;
            } else if addr >= (*va).va_end {
                n = (*n).rb_right;
            } else {
                return Some(va);
            }
        }
    }
    None
}

/// Recomputes and checks `subtree_max_size` below `n`; returns the subtree's maximum.
///
/// # Safety
/// `n` is a free-tree node.
unsafe fn check_max(n: *mut RbNode) -> Result<u64, &'static str> {
    // SAFETY: the caller's guarantee.
    unsafe {
        let va = kds::container_of!(n, VmapArea, rb);
        let mut m = va_size(&*va);
        for c in [(*n).rb_left, (*n).rb_right] {
            if !c.is_null() {
                m = m.max(check_max(c)?);
            }
        }
        if m != (*va).subtree_max_size {
            return Err("wrong subtree_max_size in the free tree");
        }
        Ok(m)
    }
}
