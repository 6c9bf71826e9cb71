//! `kfree_rcu` / `kvfree_rcu` (mm/slab_common.c in 6.18, from kernel/rcu/tree.c): objects freed
//! after a grace period, batched.
//!
//! # Structure (Linux's `struct kfree_rcu_cpu`, one per machine here)
//! - **Bulk pages** (`struct kvfree_rcu_bulk_data`): a page holding up to
//!   [`KVFREE_BULK_MAX_ENTR`] object pointers, one chain per *channel* — channel 0 for slab and
//!   large-kmalloc objects (freed with `kfree`), channel 1 for vmalloc'ed ones (freed through
//!   the hook the vmalloc layer registers, [`SlabLayer::set_kvfree_hook`]). Emptied pages are
//!   kept in a small cache (`bkvcache`, up to [`RCU_MIN_CACHED_OBJS`]) before going back to
//!   the page allocator.
//! - **Head lists**: when no page can be had, an object freed with an embedded two-word head
//!   (`kfree_rcu(ptr, rhf)`) is chained through that head instead (`krcp->head`). A headless
//!   free (`kvfree_rcu_mightsleep`) that finds no page waits for a grace period and frees
//!   inline, as Linux does.
//! - **Batches** ([`KFREE_N_BATCHES`] `struct kfree_rcu_cpu_work`): the *monitor*
//!   (`kfree_rcu_monitor`) detaches everything collected into a free batch and hands it to a
//!   grace period (a polled cookie, `get_state_synchronize_rcu`); once the grace period has
//!   ended the batch is reclaimed (`kfree_rcu_work`). The monitor runs when a bulk page fills,
//!   when the oldest collected object has waited [`KFREE_DRAIN_JIFFIES`], and from
//!   [`SlabLayer::kvfree_rcu_barrier`]; finished batches are reclaimed by the next
//!   `kvfree_call_rcu` outside a read-side section, and by the barrier.
//!
//! # Locking
//! `krc.lock` (`KfreeRcu::lock`, Linux's `krcp->lock`) is a leaf: the state above moves under
//! it; pages are allocated and objects freed with it released. Reclaiming frees objects (the
//! `kfree`/`vfree` lock chains), so the callers of `kvfree_call_rcu` follow `kvfree`'s rules;
//! inside a read-side section nothing is reclaimed inline (a `vfree` there would take
//! `vmap_area_lock` inside a CPU section). `kvfree_rcu_barrier` waits: under no lock
//! (docs/LOCKING.md).
//!
//! # Invariants
//! - Every pointer on a bulk page, head list or batch was handed over exactly once and is
//!   freed exactly once, after a grace period that started after it was handed over.
//! - `count` is the number of objects collected and not yet in a batch.

use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

use kds::rcu::RcuCookie;

use super::SlabLayer;
use crate::addr::{VirtAddr, PAGE_SIZE};
use crate::gfp::GfpFlags;
use crate::locking::Lock;
use crate::platform::Platform;

/// `FREE_N_CHANNELS`: slab objects and vmalloc'ed objects.
pub const FREE_N_CHANNELS: usize = 2;
/// `KFREE_N_BATCHES`.
pub const KFREE_N_BATCHES: usize = 2;
/// `KFREE_DRAIN_JIFFIES` (HZ / 50 at HZ = 1000).
pub const KFREE_DRAIN_JIFFIES: u64 = 20;
/// `rcu_min_cached_objs`: bulk pages kept for reuse.
pub const RCU_MIN_CACHED_OBJS: usize = 5;
/// Words of a bulk page's header (`list`, `gp_snap`, `nr_records`; one link here).
const BULK_HDR_WORDS: usize = 3;
/// `KVFREE_BULK_MAX_ENTR`: pointers per bulk page.
pub const KVFREE_BULK_MAX_ENTR: usize = (PAGE_SIZE - BULK_HDR_WORDS * 8) / 8;

/// `struct kvfree_rcu_bulk_data`: one page.
#[repr(C)]
struct BulkData {
    next: *mut BulkData,
    _gp_snap: u64,
    nr_records: usize,
    records: [*mut u8; KVFREE_BULK_MAX_ENTR],
}

const _: () = assert!(core::mem::size_of::<BulkData>() <= PAGE_SIZE);

/// The head an object freed with `kfree_rcu(ptr, rhf)` carries (`struct rcu_head`, two
/// words): chained through `next`, `ptr` the object's start (Linux keeps it in `func`).
#[repr(C)]
struct KvfreeHead {
    next: *mut KvfreeHead,
    ptr: *mut u8,
}

/// What one batch or the collection holds.
#[derive(Clone, Copy)]
struct Objects {
    bulk: [*mut BulkData; FREE_N_CHANNELS],
    heads: [*mut KvfreeHead; FREE_N_CHANNELS],
}

impl Objects {
    const EMPTY: Objects = Objects {
        bulk: [ptr::null_mut(); FREE_N_CHANNELS],
        heads: [ptr::null_mut(); FREE_N_CHANNELS],
    };
    fn is_empty(&self) -> bool {
        self.bulk.iter().all(|b| b.is_null()) && self.heads.iter().all(|h| h.is_null())
    }
}

/// `struct kfree_rcu_cpu_work`: a batch handed to a grace period.
#[derive(Clone, Copy)]
struct Batch {
    objs: Objects,
    cookie: RcuCookie,
    in_use: bool,
}

/// `struct kfree_rcu_cpu`, behind `krc.lock`.
pub(crate) struct Krc {
    cur: Objects,
    batches: [Batch; KFREE_N_BATCHES],
    cache: *mut BulkData,
    nr_cached: usize,
    count: usize,
    monitor_start: u64,
}

// SAFETY: the pages and heads are owned by the state while on it; moving it moves ownership.
unsafe impl Send for Krc {}

/// The kfree_rcu state of a machine: see the module documentation.
pub(crate) struct KfreeRcu<L: lock_api::RawMutex> {
    pub(crate) lock: Lock<L, Krc>,
    /// The vmalloc layer's `vfree` for channel 1: context and function.
    hook: core::sync::atomic::AtomicPtr<()>,
    hook_fn: core::sync::atomic::AtomicUsize,
    batches_queued: AtomicU64,
    objects_queued: AtomicU64,
    objects_freed: AtomicU64,
}

impl<L: lock_api::RawMutex> KfreeRcu<L> {
    pub(crate) fn new() -> Self {
        KfreeRcu {
            lock: Lock::new(
                &crate::locking::KRC_LOCK,
                Krc {
                    cur: Objects::EMPTY,
                    batches: [Batch {
                        objs: Objects::EMPTY,
                        cookie: RcuCookie(0),
                        in_use: false,
                    }; KFREE_N_BATCHES],
                    cache: ptr::null_mut(),
                    nr_cached: 0,
                    count: 0,
                    monitor_start: 0,
                },
            ),
            hook: core::sync::atomic::AtomicPtr::new(ptr::null_mut()),
            hook_fn: core::sync::atomic::AtomicUsize::new(0),
            batches_queued: AtomicU64::new(0),
            objects_queued: AtomicU64::new(0),
            objects_freed: AtomicU64::new(0),
        }
    }
}

/// The free function of channel 1 (`vfree`), registered by the vmalloc layer.
pub type KvfreeHook = unsafe fn(ctx: *const (), addr: VirtAddr);

/// kfree_rcu counters (for `rcu_stats`-style reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KfreeRcuStats {
    /// Batches handed to a grace period.
    pub batches: u64,
    /// Objects handed to `kvfree_call_rcu`.
    pub queued: u64,
    /// Objects freed after their grace period.
    pub freed: u64,
}

/// Which lists of `Objects` to put a pointer on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    /// Slab and large kmalloc: `kfree`.
    Slab = 0,
    /// vmalloc: the registered hook.
    Vmalloc = 1,
}

impl<P: Platform> SlabLayer<P> {
    /// Registers the free function of vmalloc'ed objects (the vmalloc layer, at boot).
    pub(crate) fn set_kvfree_hook(&self, ctx: *const (), f: KvfreeHook) {
        let k = &self.slab.krc;
        k.hook_fn.store(f as usize, Ordering::Relaxed);
        k.hook.store(ctx.cast_mut(), Ordering::Release);
    }

    /// kfree_rcu counters.
    pub fn kfree_rcu_stats(&self) -> KfreeRcuStats {
        let k = &self.slab.krc;
        KfreeRcuStats {
            batches: k.batches_queued.load(Ordering::Relaxed),
            queued: k.objects_queued.load(Ordering::Relaxed),
            freed: k.objects_freed.load(Ordering::Relaxed),
        }
    }

    /// `kfree_rcu(ptr, rhf)`: frees the kmalloc or `kmem_cache_alloc` object `obj` after a
    /// grace period; `head_offset` is the offset of a two-word `struct rcu_head` inside it,
    /// used only when no bulk page can be had. Never sleeps. NULL is ignored.
    ///
    /// # Safety
    /// `obj` is a live slab or kmalloc object of this machine with 16 writable bytes at
    /// `head_offset` (8-aligned), freed once; the caller does not touch it afterwards.
    pub unsafe fn kfree_rcu(&self, obj: *mut u8, head_offset: usize) {
        // SAFETY: forwarded.
        unsafe { self.kvfree_call_rcu(obj, Some(head_offset), Channel::Slab) }
    }

    /// `kfree_rcu_mightsleep(ptr)` (`kfree_rcu` with one argument): as [`Self::kfree_rcu`]
    /// without a head; if no bulk page can be had it waits for a grace period (so: under no
    /// lock, outside read-side sections) and frees at once. The object is not touched until
    /// it is freed with `kfree`, which reports a pointer kmalloc never returned (or a double
    /// free) then.
    pub fn kfree_rcu_mightsleep(&self, obj: *mut u8) {
        // Only the address is kept: nothing is read or written through it here.
        let addr = obj as usize as *mut u8;
        // SAFETY: no head: nothing is written to the object; the address is only passed to
        // `kfree`, which checks it.
        unsafe { self.kvfree_call_rcu(addr, None, Channel::Slab) }
    }

    /// `kvfree_call_rcu`: collects `obj` on `ch` and runs the monitor when due.
    ///
    /// # Safety
    /// With `head`, as [`Self::kfree_rcu`] (16 writable bytes at the offset). Without, none:
    /// the pointer is only handed to `kfree` (channel 0) or the vmalloc hook (`vfree`,
    /// channel 1), which check it.
    pub(crate) unsafe fn kvfree_call_rcu(&self, obj: *mut u8, head: Option<usize>, ch: Channel) {
        if obj.is_null() {
            return;
        }
        // The caller considers the object freed and likely drops its references; the real
        // free (and kmemleak_free) comes after a grace period: out of kmemleak's view now.
        self.kmemleak_ignore_tracked(obj);
        // SLUB caches with sheaves collect the object in a sheaf that goes back to the cache
        // whole after the grace period (`kfree_rcu_sheaf`, slab/slub/rcu_sheaf.rs).
        if ch == Channel::Slab && self.slub_active() && self.kfree_rcu_sheaf(obj) {
            return;
        }
        self.slab.krc.objects_queued.fetch_add(1, Ordering::Relaxed);
        let now = self.platform().jiffies();
        let mut spare: *mut BulkData = ptr::null_mut();
        let due = loop {
            // Lock order: krc.lock (leaf); docs/LOCKING.md.
            let mut k = self.slab.krc.lock.lock();
            if let Some(full) = k.add_ptr(ch, obj, &mut spare) {
                if k.count == 0 {
                    k.monitor_start = now;
                }
                k.count += 1;
                break full || now.saturating_sub(k.monitor_start) >= KFREE_DRAIN_JIFFIES;
            }
            drop(k);
            // No page: get one with the lock dropped (Linux's `add_ptr_to_bulk_krc_lock`).
            if spare.is_null() {
                spare = self
                    .__get_free_page(GfpFlags::GFP_NOWAIT | GfpFlags::__GFP_NOWARN)
                    .map_or(ptr::null_mut(), |v| v.as_ptr::<BulkData>());
            }
            if spare.is_null() {
                // SAFETY: forwarded from the caller.
                unsafe { self.kvfree_no_page(obj, head, ch) };
                return;
            }
        };
        if !spare.is_null() {
            self.put_bulk_page(spare);
        }
        if due {
            self.kfree_rcu_monitor();
        }
        if !self.rcu_read_lock_held() {
            self.kfree_rcu_drain_ready();
        }
    }

    /// No bulk page: chain `obj` through its head, or (headless) wait and free it now.
    ///
    /// # Safety
    /// As [`Self::kvfree_call_rcu`].
    unsafe fn kvfree_no_page(&self, obj: *mut u8, head: Option<usize>, ch: Channel) {
        match head {
            Some(off) => {
                let h = obj.wrapping_add(off).cast::<KvfreeHead>();
                // SAFETY: the caller's 16 writable, aligned bytes at `off`, ours now.
                unsafe {
                    h.write(KvfreeHead {
                        next: ptr::null_mut(),
                        ptr: obj,
                    })
                };
                // Lock order: krc.lock (leaf); docs/LOCKING.md.
                let mut k = self.slab.krc.lock.lock();
                // SAFETY: `h` is ours; the list is under the lock.
                unsafe { (*h).next = k.cur.heads[ch as usize] };
                k.cur.heads[ch as usize] = h;
                if k.count == 0 {
                    k.monitor_start = self.platform().jiffies();
                }
                k.count += 1;
            }
            None => {
                // `kvfree_rcu_mightsleep` without memory: synchronize_rcu, then free inline.
                // Inside a read-side section synchronize_rcu warns instead of waiting; the
                // object is then leaked rather than freed under a reader.
                let in_reader = self.rcu_read_lock_held();
                self.synchronize_rcu();
                if !in_reader {
                    self.free_one(ch, obj);
                }
            }
        }
    }

    /// Returns a bulk page to the cache, or to the page allocator when the cache is full.
    fn put_bulk_page(&self, page: *mut BulkData) {
        {
            // Lock order: krc.lock (leaf); docs/LOCKING.md.
            let mut k = self.slab.krc.lock.lock();
            if k.nr_cached < RCU_MIN_CACHED_OBJS {
                // SAFETY: an unused page of ours.
                unsafe { (*page).next = k.cache };
                k.cache = page;
                k.nr_cached += 1;
                return;
            }
        }
        self.free_pages(VirtAddr::new(page as usize), crate::addr::Order::ZERO);
    }

    /// `kfree_rcu_monitor` / `kvfree_rcu_queue_batch`: hands what was collected to a grace
    /// period in a free batch slot. Returns false if there was something but no free slot.
    fn kfree_rcu_monitor(&self) -> bool {
        {
            // Lock order: krc.lock (leaf); docs/LOCKING.md.
            let mut k = self.slab.krc.lock.lock();
            if k.cur.is_empty() {
                return true;
            }
            let Some(i) = k.batches.iter().position(|b| !b.in_use) else {
                return false;
            };
            let objs = core::mem::replace(&mut k.cur, Objects::EMPTY);
            // The cookie is taken after the objects were handed over (atomics only, no lock).
            let cookie = self.rcu_request_gp();
            k.batches[i] = Batch {
                objs,
                cookie,
                in_use: true,
            };
            k.count = 0;
        }
        self.slab.krc.batches_queued.fetch_add(1, Ordering::Relaxed);
        // Start the grace period now if no reader holds it up.
        self.rcu_core_gp();
        true
    }

    /// `kvfree_rcu_drain_ready` + `kfree_rcu_work`: reclaims every batch whose grace period
    /// has ended. Returns the number of batches still waiting.
    fn kfree_rcu_drain_ready(&self) -> usize {
        let mut waiting = 0;
        for i in 0..KFREE_N_BATCHES {
            let objs = {
                // Lock order: krc.lock (leaf); docs/LOCKING.md.
                let mut k = self.slab.krc.lock.lock();
                let b = k.batches[i];
                if !b.in_use {
                    continue;
                }
                if !self.poll_state_synchronize_rcu(b.cookie) {
                    waiting += 1;
                    continue;
                }
                k.batches[i].in_use = false;
                b.objs
            };
            self.kfree_rcu_work(objs);
        }
        waiting
    }

    /// Frees one object of channel `ch`.
    fn free_one(&self, ch: Channel, obj: *mut u8) {
        match ch {
            Channel::Slab => self.kfree(obj),
            Channel::Vmalloc => {
                let k = &self.slab.krc;
                let ctx = k.hook.load(Ordering::Acquire);
                let f = k.hook_fn.load(Ordering::Relaxed);
                if !ctx.is_null() && f != 0 {
                    // SAFETY: `f` is the `KvfreeHook` stored with `ctx` by `set_kvfree_hook`
                    // (a fn pointer round-tripped through usize).
                    let f: KvfreeHook = unsafe { core::mem::transmute::<usize, KvfreeHook>(f) };
                    // SAFETY: the hook's context is the registering layer, alive as long as
                    // the machine; `obj` is a vmalloc address handed to kvfree_rcu.
                    unsafe { f(ctx, VirtAddr::new(obj as usize)) };
                }
            }
        }
        self.slab.krc.objects_freed.fetch_add(1, Ordering::Relaxed);
    }

    /// `kfree_rcu_work`: frees a reclaimed batch, outside the lock.
    fn kfree_rcu_work(&self, objs: Objects) {
        for ch in [Channel::Slab, Channel::Vmalloc] {
            let mut page = objs.bulk[ch as usize];
            while !page.is_null() {
                // SAFETY: a bulk page of the batch, ours now; its first `nr_records` records
                // are objects handed over once.
                let (next, n) = unsafe { ((*page).next, (*page).nr_records) };
                for r in 0..n {
                    // SAFETY: `page` is a bulk page of this batch, owned by this work; `r <
                    // nr_records`, so the record was written by kvfree_call_rcu and is read once.
                    let obj = unsafe { (*page).records[r] };
                    self.free_one(ch, obj);
                }
                self.put_bulk_page(page);
                page = next;
            }
            let mut h = objs.heads[ch as usize];
            while !h.is_null() {
                // SAFETY: a head inside an object of the batch; read before the object goes.
                let (next, obj) = unsafe { ((*h).next, (*h).ptr) };
                self.free_one(ch, obj);
                h = next;
            }
        }
    }

    /// `kvfree_rcu_barrier`: waits until every object handed to `kfree_rcu`/`kvfree_rcu`
    /// before the call has been freed. Under no lock, outside read-side sections.
    pub fn kvfree_rcu_barrier(&self) {
        if self.rcu_read_lock_held() {
            // synchronize_rcu prints the warning.
            self.synchronize_rcu();
            return;
        }
        if self.slub_active() {
            // Linux 6.18: `flush_all_rcu_sheaves()` first (it ends with `rcu_barrier()`).
            self.flush_all_rcu_sheaves();
        }
        loop {
            let handed = self.kfree_rcu_monitor();
            let waiting = self.kfree_rcu_drain_ready();
            // Lock order: krc.lock (leaf); docs/LOCKING.md.
            let empty = self.slab.krc.lock.lock().cur.is_empty();
            if handed && empty && waiting == 0 {
                return;
            }
            self.platform().cpu_relax();
        }
    }

    /// Frees the cached bulk pages (`kfree_rcu_shrink_scan`'s cache part).
    pub fn kfree_rcu_shrink_cache(&self) -> usize {
        let mut n = 0;
        loop {
            let page = {
                // Lock order: krc.lock (leaf); docs/LOCKING.md.
                let mut k = self.slab.krc.lock.lock();
                let p = k.cache;
                if p.is_null() {
                    return n;
                }
                // SAFETY: a cached page of ours.
                k.cache = unsafe { (*p).next };
                k.nr_cached -= 1;
                p
            };
            self.free_pages(VirtAddr::new(page as usize), crate::addr::Order::ZERO);
            n += 1;
        }
    }
}

impl Krc {
    /// `add_ptr_to_bulk_krc_lock`: puts `obj` on channel `ch`'s current bulk page, taking a
    /// page from the cache or from `spare` if it is full. `None` if no page is available;
    /// `Some(true)` if the page is now full (the monitor should run).
    fn add_ptr(&mut self, ch: Channel, obj: *mut u8, spare: &mut *mut BulkData) -> Option<bool> {
        let c = ch as usize;
        let mut page = self.cur.bulk[c];
        // SAFETY: a non-null current bulk page is ours, under the lock.
        let full = page.is_null() || unsafe { (*page).nr_records } == KVFREE_BULK_MAX_ENTR;
        if full {
            let fresh = if !self.cache.is_null() {
                let p = self.cache;
                // SAFETY: a cached page.
                self.cache = unsafe { (*p).next };
                self.nr_cached -= 1;
                p
            } else if !spare.is_null() {
                core::mem::replace(spare, ptr::null_mut())
            } else {
                return None;
            };
            // SAFETY: a page we own; the header is initialised before use.
            unsafe {
                (*fresh).next = page;
                (*fresh).nr_records = 0;
            }
            self.cur.bulk[c] = fresh;
            page = fresh;
        }
        // SAFETY: `page` is the current bulk page of this CPU's krc, owned under its lock; it was
        // either checked not full (`nr_records < KVFREE_BULK_MAX_ENTR`) or just initialised empty.
        unsafe {
            let n = (*page).nr_records;
            (*page).records[n] = obj;
            (*page).nr_records = n + 1;
            Some(n + 1 == KVFREE_BULK_MAX_ENTR)
        }
    }
}
