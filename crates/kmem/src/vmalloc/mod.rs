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
//!    purge list, the object stash; SLUB (a CPU section, a list lock, a zone lock) is entered
//!    under it to allocate and trim `struct vmap_area` objects (`obj_alloc`, `obj_trim`);
//! 3. `pgt` ([`VmState::pgt`], `init_mm.page_table_lock`): the kernel page tables and the TLB
//!    model. Never held together with `areas`; a leaf: page-table pages are allocated and
//!    freed with it dropped (`table_pool.rs`), since kmap_local takes it inside a CPU section.
//!
//! The pages of a vmalloc area are allocated and freed, and reports printed, with none of
//! these held. The whole order is in docs/LOCKING.md.
//!
//! # Files
//! This file holds the state ([`VmState`], `struct vmap_area`, the layer) and boot
//! (`vmalloc_init`). The rest, each file using only those listed before it:
//! - `map`: the kernel page tables (direct map, mapping and unmapping page runs, model ↔ real
//!   addresses, TLB);
//! - `area`: vmap areas (the free and busy trees, the object stash, lazy freeing and purge);
//! - `alloc`: vmalloc and its wrappers, vfree, vrealloc, address lookups;
//! - `vmap`: get_vm_area, vmap, vm_map_ram;
//! - `kvmalloc`: kvmalloc and friends;
//! - `info`: /proc/vmallocinfo, statistics and checks, the layout, translate;
//! - `selftest`: `vmalloc_selftest`.

use core::panic::Location;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kds::rbtree::{RbNode, RbRoot};
use lock_api::RawMutex;

use crate::locking::{Lock as Mutex, PAGE_TABLE_LOCK, VMAP_AREA_LOCK, VMAP_PURGE_LOCK};

use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE};
use crate::arch::TranslationRegion;
use crate::gfp::GfpFlags;
use crate::layout::KernelLayout;
use crate::mm::mm_types::{PagePtr, PageType};
use crate::mm::NodeStat;
use crate::page_alloc::PageAllocator;
use crate::pgtable::{PageTable, PtMemory, Tlb};
use crate::platform::{LogLevel, Platform};
use crate::slab::SlabLayer;

mod alloc;
mod area;
mod info;
mod kvmalloc;
mod map;
mod pages;
mod selftest;
mod table_pool;
mod vmap;

use area::insert_free;
pub use info::{TlbOutcome, TranslateReport};

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
// SAFETY: moving the state moves mutex-protected raw pointers and atomics; nothing in it is tied to
// a thread (L: Send), and `layout` follows the same publish rule after the move.
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
            areas: Mutex::new(
                &VMAP_AREA_LOCK,
                VmapAreas {
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
                },
            ),
            pgt: Mutex::new(
                &PAGE_TABLE_LOCK,
                KernelPgt {
                    pt: None,
                    tlb: Tlb::new(),
                },
            ),
            purge: Mutex::new(&VMAP_PURGE_LOCK, ()),
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
        self.mod_page_node_stat(page, NodeStat::PageTables, 1);
        Some(self.page_to_pfn(page).phys())
    }
    fn free_table(&self, table: PhysAddr) {
        if let Some(page) = self.pfn_to_page(table.pfn()) {
            page.clear_page_type();
            self.mod_page_node_stat(page, NodeStat::PageTables, -1);
            self.__free_page(page);
        }
    }
    fn table_ptr(&self, table: PhysAddr) -> *mut u8 {
        // SAFETY: table pages are RAM below phys_end that this module owns.
        unsafe { self.phys_to_real(table) }
    }
}

impl<P: Platform> VmLayer<P> {
    /// Attaches vmalloc's locks (`vmap_purge_lock`, `vmap_area_lock`,
    /// `init_mm.page_table_lock`) to the machine's lock validator, if it has one.
    ///
    /// # Safety
    /// Once, at boot, after `MemoryModel::lockdep_init` and before the locks are taken.
    pub(crate) unsafe fn vmalloc_lockdep_attach(&self) {
        let Some(ld) = self.lockdep() else { return };
        // SAFETY: the validator lives as long as the platform, so as this state.
        unsafe {
            self.vm.purge.attach(ld);
            self.vm.areas.attach(ld);
            self.vm.pgt.attach(ld);
        }
    }

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
        // An address aligned in the model must be aligned in the process too (issue 12).
        // No request in the range can be aligned beyond its length rounded down to a power
        // of two (the area search wants `size + align - 1` free bytes, as Linux's
        // `find_vmap_lowest_match`). The real window is reserved from the boundary of that
        // alignment below the range's start, at that alignment, so real and model
        // addresses agree modulo it. `window` is the real address of `wstart`.
        let wlen = wend - wstart;
        let walign = 1u64 << wlen.ilog2();
        let lead = wstart & (walign - 1);
        let window = match self
            .platform()
            .kernel_window((lead + wlen) as usize, walign as usize)
        {
            Some(p) => p as usize + lead as usize,
            None => 0,
        };
        // Page tables.
        let pt = match self.platform().kernel_pgd() {
            // SAFETY: the platform hands us its live root table of this architecture.
            Some(root) => Some(unsafe { PageTable::from_root(root, arch) }),
            None => match PageTable::new(self.pt_mem(), arch) {
                Ok(mut pt) => {
                    if self.map_direct_map(&mut pt).is_err() || self.map_vmemmap(&mut pt).is_err() {
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
        // Lock order: init_mm.page_table_lock (rank 5), boot; docs/LOCKING.md.
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
            // Lock order: vmap_area_lock (rank 2), boot; SLUB under it (obj_alloc);
            // docs/LOCKING.md.
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
        // kvfree_rcu's vmalloc channel frees through this layer (slab/kfree_rcu.rs).
        self.set_kvfree_hook(
            (self as *const Self).cast(),
            kvmalloc::kvfree_rcu_vfree::<P>,
        );
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
}
