//! A machine: one booted instance of the memory subsystem on one [`Platform`] — the handle
//! on the top layer, and the boot sequence.
//!
//! The layers, bottom up, each owning the one below and dereferencing to it:
//! [`MemoryModel`] (pfn ↔ page ↔ phys ↔ virt, printk, reports) → [`PageAllocator`] (zones,
//! buddy, pcp lists) → [`SlabLayer`] (SLUB, kmalloc) → [`VmLayer`] (kernel page tables,
//! vmalloc) → [`KmapLayer`] (pkmap, kmap_local) → [`MemoryLayer`] (user page tables,
//! faults) → [`TaskLayer`] (tasks and their memory system calls). A [`Machine`]
//! dereferences to the top, so `m.alloc_pages(…)`, `m.kmalloc(…)`, `m.vmalloc(…)` and
//! `m.spawn(…)` are the layers' own methods.
//!
//! [`Machine::boot`] does what Linux's `setup_arch` → `mm_core_init` path does for memory:
//! [`crate::mm_init`] reads the firmware map, sets up memblock and takes the state, the log,
//! the memmap and per-CPU lists from it; then each layer starts in turn (`memblock_free_all`
//! and the zone tunables, `kmem_cache_init`, `vmalloc_init`, `kmap_init`) and registers its
//! CPU hotplug teardown in the memory model's [`cpuhp`](crate::mm::cpuhp) table, which the
//! platform's CPU-dead hook runs. The machine's state lives in memory taken from memblock,
//! like Linux's `pglist_data`, so it never moves: free-list heads can point at themselves.
//!
//! # Locking
//! The whole order is in docs/LOCKING.md; each layer's module documentation lists its own.

use core::ptr::NonNull;

use crate::base::{DevLayer, DevState};
use crate::highmem::{KmapLayer, KmapState};
use crate::locking::{Lockdep, LOCKDEP};
use crate::memory::{MemState, MemoryLayer};
use crate::mm::stackdepot::{StackDepot, DEPOT_AREA_BYTES};
use crate::mm::MemoryModel;
use crate::mm_init;
use crate::page_alloc::PageAllocator;
use crate::platform::{CpuDeadHook, Platform};
use crate::slab::common::SlabState;
use crate::slab::SlabLayer;
use crate::task::TaskLayer;
use crate::vmalloc::{VmLayer, VmState};

pub use crate::mm::{KernelImage, NodeStat, NodeStats, Taint};
pub use crate::mm_init::{BootError, BootParams};

/// The top layer of a machine's state.
type State<P> = DevLayer<P>;

/// One booted memory subsystem. See the module documentation.
pub struct Machine<P: Platform> {
    /// The state, in memblock memory; it owns the platform (`MemoryModel::plat`), so that
    /// the CPU-dead hook, which only gets the memory model, can act on the machine.
    state: NonNull<State<P>>,
}

impl<P: Platform> Drop for Machine<P> {
    fn drop(&mut self) {
        let st = self.state.as_ptr();
        // SAFETY: the state is live until the platform goes; `plat` is read out exactly once
        // (here) and nothing touches the state afterwards. Dropping the platform releases the
        // memory the state lives in, so it must be moved out first.
        let plat =
            unsafe { core::ptr::read(core::ptr::addr_of!((*st).task.mem.km.vm.sl.pa.mm.plat)) };
        drop(plat);
    }
}

// SAFETY: every layer is Send + Sync (the memory model by its impls, the others by their
// fields); the platform is Send + Sync by its trait.
unsafe impl<P: Platform> Send for Machine<P> {}
// SAFETY: see the `Send` impl; shared use goes through the layers' `&self` APIs, which
// follow the locking rules of each module.
unsafe impl<P: Platform> Sync for Machine<P> {}

impl<P: Platform> core::ops::Deref for Machine<P> {
    type Target = State<P>;
    #[inline]
    fn deref(&self) -> &State<P> {
        // SAFETY: `state` points at the state written at boot, which lives in platform memory
        // for as long as `self` (and so the platform) lives.
        unsafe { self.state.as_ref() }
    }
}

impl<P: Platform> Machine<P> {
    /// Boots a machine on `plat`.
    ///
    /// # Errors
    /// See [`BootError`].
    pub fn boot(plat: P, params: &BootParams<'_>) -> Result<Self, BootError> {
        let mut em = mm_init::early_setup(&plat, params, core::mem::size_of::<State<P>>())?;
        let zones = mm_init::zones(&em);
        let numa = mm_init::numa_nodes(&em);
        let (slab, slab_notes) = SlabState::from_cmdline(params.cmdline, params.nr_cpus);
        // The lock validator (debug builds) and the stack depot live in the platform's one
        // debug area, off the machine's books: [lockdep, rounded to 64 bytes][depot].
        // A platform that refuses that much gets a second request, for the depot alone.
        let mut ld_bytes = if LOCKDEP {
            core::mem::size_of::<Lockdep>().next_multiple_of(64)
        } else {
            0
        };
        let mut area = plat.debug_area(
            ld_bytes + DEPOT_AREA_BYTES,
            core::mem::align_of::<Lockdep>().max(64),
        );
        if area.is_none() && ld_bytes != 0 {
            ld_bytes = 0;
            area = plat.debug_area(DEPOT_AREA_BYTES, 64);
        }
        let lockdep = match area {
            Some(p) if ld_bytes != 0 => p.as_ptr().cast::<Lockdep>().cast_const(),
            _ => core::ptr::null(),
        };
        let depot = match area {
            // SAFETY: the platform's debug area is valid, writable and ours alone for the
            // platform's life (Platform contract); the depot's part starts after lockdep's,
            // 64-byte aligned, and is DEPOT_AREA_BYTES long.
            Some(p) => unsafe { StackDepot::new(p.as_ptr().add(ld_bytes), DEPOT_AREA_BYTES) },
            None => StackDepot::empty(),
        };
        let mm = mm_init::memory_model(plat, params, &em, lockdep, depot);
        let state = DevLayer {
            task: TaskLayer::new(MemoryLayer {
                km: KmapLayer {
                    vm: VmLayer {
                        sl: SlabLayer {
                            pa: PageAllocator::new(mm, zones, numa),
                            slab,
                            slob: crate::slab::slob::SlobState::new(),
                            slab_numa: crate::slab::slab::SlabNumaParams::from_cmdline(
                                params.cmdline,
                            ),
                            nolock: crate::slab::slub::NolockState::new(),
                            kfence: crate::slab::kfence::KfenceSlot::new(),
                            leak: crate::slab::kmemleak::Kmemleak::from_cmdline(params.cmdline),
                            kmemcheck: crate::slab::kmemcheck::Kmemcheck::new(),
                        },
                        vm: VmState::new(),
                    },
                    kmap: KmapState::new(),
                },
                mem: MemState::new(),
            }),
            dev: DevState::from_cmdline(params.cmdline),
        };
        let state_p = em.state.cast::<State<P>>();
        // SAFETY: `em.state` is a fresh, zeroed memblock allocation of `size_of::<State<P>>()`
        // bytes, 64-byte aligned (no layer needs more), used by nothing else.
        unsafe { state_p.write(state) };
        let m = Machine {
            // SAFETY: just written; non-null because it came from the direct map.
            state: unsafe { NonNull::new_unchecked(state_p) },
        };
        // SAFETY: at boot, right after placing the state, before any lock is taken; the
        // state never moves.
        unsafe {
            m.mm.lockdep_init();
            m.pa.lockdep_attach();
            m.sl.lockdep_attach();
            m.vmalloc_lockdep_attach();
            m.lockdep_attach();
            m.task_lockdep_attach();
        }
        m.init_lists();
        // SAFETY: once, at boot, the state placed for good: the LRU lists link to
        // themselves, and reclaim is registered in the page allocator's slow path.
        unsafe { m.reclaim_init() };
        // SAFETY: once, at boot, after the state is placed for good (it never moves again): page
        // migration is registered as CMA's migration hook, which `migrate_init`'s contract asks.
        unsafe { m.migrate_init() };
        // SAFETY: once, at boot, the state placed for good: direct compaction and
        // kcompactd are registered in the page allocator.
        unsafe { m.compact_init() };
        mm_init::print_boot_log(&m, params, &mut em, |mb| {
            m.cma_reserve_from_cmdline(params.cmdline, mb);
        });
        mm_init::memmap_init(&m, &em);

        // The page allocator: memblock_free_all, then the per-zone tunables.
        // Lock order: memblock_lock (rank 1), boot; docs/LOCKING.md.
        *m.memblock.lock() = em.mb;
        // kfence_alloc_pool_and_metadata (mm_core_init, before memblock_free_all).
        m.kfence_alloc_pool(params.cmdline);
        // kmemcheck's shadow (kmem keeps it in one memblock array; see slab/kmemcheck).
        m.kmemcheck_alloc_shadow(params.cmdline);
        m.memblock_free_all();
        m.setup_per_zone_wmarks_and_reserves();
        m.setup_pcp_sizes();
        m.register_cpuhp();
        // SAFETY: once, at boot, after reclaim_init and memblock_free_all, before any user
        // page exists or another thread has the machine: each node's lruvec and kswapd.
        unsafe { m.reclaim_init_nodes() };

        // kmem_cache_init (mm_core_init → kmem_cache_init): the slab allocator.
        m.kmem_cache_init(&slab_notes)
            .map_err(|_| BootError::TooLittleMemory)?;
        m.slab_register_cpuhp();
        // kmemcheck_init (an early initcall in Linux; its slabs are tracked from the first).
        m.kmemcheck_init();
        // kmemleak_init (mm_core_init, after kmem_cache_init, before vmalloc_init): the
        // machine's state is kmem's data/bss, the first roots.
        m.kmemleak_init(state_p.cast::<u8>(), core::mem::size_of::<State<P>>());
        // vmalloc_init (mm_core_init → vmalloc_init): kernel page tables and vmalloc space;
        // then the pkmap and kmap_local state (i386).
        // SAFETY: once, at boot, on this thread; nobody else has the machine yet.
        unsafe { m.vmalloc_init() };
        if m.kernel_layout().is_some() {
            m.kmap_init();
            m.vmalloc_init_late();
        }
        // mem_init_print_info: 6.18 prints `Memory:` late in boot, after `SLUB:`, so the
        // free count includes what slab and vmalloc took at boot.
        m.print_memory_line();
        // kfence_init (start_kernel, once the slab allocator and timers run).
        m.kfence_init();
        // cma_init_reserved_areas (core_initcall): the CMA areas go to the buddy allocator.
        m.cma_init_reserved_areas();
        // driver_init (do_basic_setup, after the memory core): the driver core's lists and
        // the platform bus.
        // SAFETY: once, at boot, with the state at its final address, before any other call.
        unsafe { m.dev_init() };
        // kmemleak_late_init (a late initcall).
        m.kmemleak_late_init();
        // memhp_default_state= (an early_param in Linux; used only by later hot-adds).
        m.memhp_default_state_from_cmdline(params.cmdline);

        m.platform().set_cpu_dead_hook(CpuDeadHook {
            ctx: (&m.mm as *const MemoryModel<P>).cast(),
            func: crate::mm::cpu_dead_hook::<P>,
        });
        Ok(m)
    }
}
