//! kmem's lock classes and the lock type every subsystem uses (kernel/locking/).
//!
//! Every kmem lock is a [`Lock`]: a `lock_api` mutex on the platform's raw lock that reports
//! its acquisitions to the machine's lock validator ([`kds::lockdep`]) in debug builds, and
//! is exactly a `lock_api::Mutex` in release builds. A lock belongs to one of the classes
//! below (every zone lock to [`ZONE_LOCK`], every SLUB node list lock to [`LIST_LOCK`], …),
//! named as Linux's lockdep names them; a CPU section (`get_cpu()`…`put_cpu()`,
//! [`crate::platform::CpuGuard`]) is the reentrant class [`CPU_SECTION`]. The order these
//! are taken in, and why, is docs/LOCKING.md; the validator checks the order the code
//! actually takes and reports an inversion as Linux does (`WARNING: possible circular
//! locking dependency detected`).
//!
//! The validator needs memory that is not the machine's own (so that turning it on changes
//! no /proc number): the platform's [`crate::platform::Platform::debug_area`]. On a platform
//! without one, locks are not checked.
//!
//! The classes are immutable statics: what a validator learns about them lives in the
//! validator, one per machine.

#![forbid(unsafe_code)]

use kds::lockdep::LockClass;

pub use kds::lockdep::{Lockdep, Section};

/// Whether this build has the validator (debug builds, or kds's `lockdep` feature): without
/// it `Lockdep` is zero-sized and kmem skips everything that would feed it.
pub const LOCKDEP: bool = core::mem::size_of::<Lockdep>() != 0;

/// A kmem lock: see the module documentation.
pub type Lock<R, T> = kds::lockdep::Mutex<R, T>;
/// The guard of a [`Lock`].
pub type LockGuard<'a, R, T> = kds::lockdep::MutexGuard<'a, R, T>;

/// `tasklist_lock`: the task table, and every task's memory (it stands for each mm's
/// `mmap_lock`, page table lock and anon_vma locks; `crate::task`). The outermost lock.
pub static TASKLIST_LOCK: LockClass = LockClass::new("tasklist_lock");
/// `shmem_lock`: the shmem objects and their page caches (`crate::memory::shmem`);
/// taken under `tasklist_lock`.
pub static SHMEM_LOCK: LockClass = LockClass::new("shmem_lock");
/// `slab_mutex`: the list of slab caches.
pub static SLAB_MUTEX: LockClass = LockClass::new("slab_mutex");
/// `vmap_purge_lock`: serialises lazy vmap-area purges.
pub static VMAP_PURGE_LOCK: LockClass = LockClass::new("vmap_purge_lock");
/// `kmap_lock`: the pkmap area.
pub static KMAP_LOCK: LockClass = LockClass::new("kmap_lock");
/// The memblock allocator (kept after boot).
pub static MEMBLOCK_LOCK: LockClass = LockClass::new("memblock_lock");
/// `mem_hotplug_lock` (mm/memory_hotplug.c): outermost for memory hotplug; the zone locks,
/// the page-table lock and the log lock are taken under it.
pub static MEM_HOTPLUG_LOCK: LockClass = LockClass::new("mem_hotplug_lock");
/// `vmap_area_lock` (with `free_vmap_area_lock`): vmalloc's area trees.
pub static VMAP_AREA_LOCK: LockClass = LockClass::new("vmap_area_lock");
/// `init_mm.page_table_lock`: the kernel page tables.
pub static PAGE_TABLE_LOCK: LockClass = LockClass::new("init_mm.page_table_lock");
/// A CPU section (`get_cpu()`…`put_cpu()`); sections nest.
pub static CPU_SECTION: LockClass = LockClass::new_reentrant("cpu_section");
/// `&n->list_lock`: a SLUB cache node's partial and full lists.
pub static LIST_LOCK: LockClass = LockClass::new("&n->list_lock");
/// `&barn->lock`: a SLUB cache's barn of full and empty sheaves; a leaf taken in a CPU
/// section (or under `slab_mutex`), never with a `list_lock` held.
pub static BARN_LOCK: LockClass = LockClass::new("&barn->lock");
/// `slob_lock`: every SLOB structure (mm/slob.c: the three partial page lists and the
/// free-block lists inside the pages).
pub static SLOB_LOCK: LockClass = LockClass::new("slob_lock");
/// `swap_lock`: the swap areas, their maps and swap caches (`swap/swapfile.rs`).
pub static SWAP_LOCK: LockClass = LockClass::new("swap_lock");
/// `&lruvec->lru_lock`: the LRU lists of a node (`vmscan/`).
pub static LRU_LOCK: LockClass = LockClass::new("&lruvec->lru_lock");
/// The page allocator's registered reclaim callbacks (`page_alloc`); a leaf.
pub static RECLAIM_HOOK: LockClass = LockClass::new("reclaim_hook");
/// The page allocator's registered direct-compaction callback (`page_alloc/compaction.rs`);
/// a leaf.
pub static COMPACT_HOOK: LockClass = LockClass::new("compact_hook");
/// `&zone->lock`: a zone's free areas.
pub static ZONE_LOCK: LockClass = LockClass::new("&zone->lock");
/// `cma_mutex` (mm/cma.c), which in kmem also covers every area's bitmap (`cma->lock`),
/// the counters and the migration hook (`page_alloc/cma.rs`). Taken under no other kmem lock;
/// the page allocator's locks (and the migration hook's) are taken under it.
pub static CMA_MUTEX: LockClass = LockClass::new("cma_mutex");
/// The CPU hotplug state table (`cpuhp_state_mutex`); a leaf.
pub static CPUHP_STATE_MUTEX: LockClass = LockClass::new("cpuhp_state_mutex");
/// RCU's callback list (`rcu_segcblist`, `mm/rcu.rs`); a leaf taken under any lock.
pub static RCU_CBLIST_LOCK: LockClass = LockClass::new("rcu_cblist_lock");
/// `krcp->lock`: kfree_rcu's batches (`slab/kfree_rcu.rs`); a leaf.
pub static KRC_LOCK: LockClass = LockClass::new("&krcp->lock");
/// The driver core's registry (buses, drivers, devices; `base/`): kmem's one lock for what
/// Linux splits into the bus klists' locks and `device_lock`. Never held across a probe.
pub static DEVICE_MODEL_LOCK: LockClass = LockClass::new("device_model_lock");
/// `&dev->devres_lock`: a device's managed-resource list (`base/devres.rs`); nothing
/// allocates or frees under it.
pub static DEVRES_LOCK: LockClass = LockClass::new("&dev->devres_lock");
/// `kfence_freelist_lock`: KFENCE's freelist and object metadata (`slab/kfence`); only the
/// log lock is taken under it.
pub static KFENCE_FREELIST_LOCK: LockClass = LockClass::new("kfence_freelist_lock");
/// `kmemleak_lock`: kmemleak's objects, search tree, pool and scan (`slab/kmemleak/`); a
/// leaf under which only the log lock is taken.
pub static KMEMLEAK_LOCK: LockClass = LockClass::new("kmemleak_lock");
/// `logbuf_lock` (printk's ring buffer); the innermost lock.
pub static LOGBUF_LOCK: LockClass = LockClass::new("logbuf_lock");
