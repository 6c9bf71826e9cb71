//! The per-CPU arrays (mm/slab.c): `____cache_alloc` (pop from the CPU's array),
//! `cache_alloc_refill` (a batch from the shared array or the node's slabs, growing a slab if
//! needed), `__cache_free` / `___cache_free` (push, or `cache_flusharray` a batch to the
//! shared array or back to the slabs), the installation of arrays offered by
//! `do_tune_cpucache`, and the per-CPU part of `cache_reap`.

use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

use kds::list::{self, ListHead};

use crate::gfp::GfpFlags;
use crate::platform::{LogLevel, Platform};
use crate::slab::common::Owner;
use crate::slab::SlabLayer;

use super::{
    free_meta, ArrayCache, Cache, CpuSlot, NodeLists, SlabPage, BATCHREFILL_LIMIT,
    REAPTIMEOUT_AC_S, REAPTIMEOUT_NODE_S,
};

/// `transfer_objects`: moves up to `max` entries from the top of `from` to `to`.
///
/// # Safety
/// Both arrays are live and the caller may use them (CPU section / list lock).
unsafe fn transfer_objects(to: *mut ArrayCache, from: *mut ArrayCache, max: u32) -> u32 {
    // SAFETY: both arrays are live and ours to use (caller's guarantee), and they are two
    // different arrays (a CPU's and the node's shared one), so the copied ranges do not
    // overlap. `nr <= from.avail` entries are read below `from.avail`, and `nr <= to.limit -
    // to.avail` entries are written from `to.avail`, inside `to`'s `limit` entries.
    unsafe {
        let nr = (*from).avail.min(max).min((*to).limit - (*to).avail);
        if nr == 0 {
            return 0;
        }
        ptr::copy_nonoverlapping(
            ArrayCache::entries(from).add(((*from).avail - nr) as usize),
            ArrayCache::entries(to).add((*to).avail as usize),
            nr as usize,
        );
        (*from).avail -= nr;
        (*to).avail += nr;
        nr
    }
}

/// The first `n` entries of an array as a slice.
///
/// # Safety
/// The array is live, `n <= avail`, and it is not written while the slice lives.
unsafe fn entries<'a>(ac: *mut ArrayCache, n: u32) -> &'a [*mut u8] {
    // SAFETY: the array is live with `limit >= avail >= n` initialised entries after its
    // header, and the caller does not write it while the slice lives (its contract), so a
    // shared slice of the first `n` is valid.
    unsafe { core::slice::from_raw_parts(ArrayCache::entries(ac), n as usize) }
}

/// Drops the first `n` entries of an array, moving the rest down (`memmove`).
///
/// # Safety
/// As for [`entries`], with `n <= avail`.
unsafe fn shift_down(ac: *mut ArrayCache, n: u32) {
    // SAFETY: the array is live and ours (caller's guarantee) and `n <= avail`, so after
    // `avail -= n` the `avail` entries from index `n` are initialised and inside the array;
    // `ptr::copy` allows the overlapping move.
    unsafe {
        (*ac).avail -= n;
        let e = ArrayCache::entries(ac);
        ptr::copy(e.add(n as usize), e, (*ac).avail as usize);
    }
}

/// A local list of slabs to destroy once the list lock is dropped.
struct DestroyList(ListHead);

impl DestroyList {
    fn head(&mut self) -> *mut ListHead {
        let h: *mut ListHead = &mut self.0;
        // SAFETY: `h` is ours; an empty list points at itself (re-initialised before each
        // use, as the value may have moved since it was made).
        unsafe {
            if (*h).next.is_null() {
                ListHead::init(h);
            }
        }
        h
    }
}

impl<P: Platform> SlabLayer<P> {
    /// Installs an array offered by `do_tune_cpucache`; returns the old array, whose objects
    /// went back to the slabs, for the caller to free after leaving the CPU section.
    /// `nid` is the slot's CPU's node.
    pub(super) fn take_pending(&self, s: &Cache<P>, slot: &CpuSlot, nid: usize) -> *mut ArrayCache {
        if slot.pending.load(Ordering::Relaxed).is_null() {
            return ptr::null_mut();
        }
        let new = slot.pending.swap(ptr::null_mut(), Ordering::Acquire);
        if new.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: the caller is in this slot's CPU section.
        let old = unsafe { slot.ac() };
        // SAFETY: `set_ac` needs `ac`'s condition, the same CPU section of this slot, still
        // held by the caller; `new` is the array `do_tune_cpucache` built and handed over
        // through `pending` (the swap made it ours).
        unsafe { slot.set_ac(new) };
        if !old.is_null() {
            self.drain_whole_array(s, old, nid);
        }
        old
    }

    /// Gives every object of an array of node `nid`'s CPU (its objects are all of that
    /// node) back to the slabs (`free_block` of all entries).
    pub(super) fn drain_whole_array(&self, s: &Cache<P>, ac: *mut ArrayCache, nid: usize) {
        let mut dl = DestroyList(ListHead {
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
        });
        {
            // Lock order: &n->list_lock (rank 4), maybe in a CPU section; docs/LOCKING.md.
            let mut n = s.node(nid).lock();
            // SAFETY: the array is ours (taken from its slot, or its CPU is quiescent).
            let avail = unsafe { (*ac).avail };
            // SAFETY: the array is ours (see the read of `avail`) and live; `avail` entries is
            // exactly its filled part, and nothing writes the array while `free_block` reads
            // the slice (we are its only user).
            let objs = unsafe { entries(ac, avail) };
            self.free_block(s, &mut n, objs, dl.head());
            // SAFETY: the slice is gone; the array is still ours alone, so the write races
            // with nobody.
            unsafe { (*ac).avail = 0 };
        }
        self.slabs_destroy(s, dl.head());
    }

    /// Gives every object of every node's shared array back to the slabs.
    pub(super) fn drain_shared(&self, s: &Cache<P>) {
        for nid in 0..self.nr_online_nodes().min(crate::numa::MAX_NUMA_NODES) {
            self.drain_shared_node(s, nid);
        }
    }

    /// Gives every object of node `nid`'s shared array back to the slabs, under one
    /// list-lock hold (the array may be replaced by `do_tune_cpucache` once it is dropped).
    fn drain_shared_node(&self, s: &Cache<P>, nid: usize) {
        let mut dl = DestroyList(ListHead {
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
        });
        {
            // Lock order: &n->list_lock (rank 4); docs/LOCKING.md.
            let mut n = s.node(nid).lock();
            let sh = n.shared;
            if !sh.is_null() {
                // SAFETY: the shared array under the list lock.
                let objs = unsafe { entries(sh, (*sh).avail) };
                self.free_block(s, &mut n, objs, dl.head());
                // SAFETY: the shared array is live while it is the node's `shared` and is
                // used only under the list lock, which `n` still holds; the slice is gone.
                unsafe { (*sh).avail = 0 };
            }
        }
        self.slabs_destroy(s, dl.head());
    }

    /// `get_first_slab`: a partial slab, else a free one (marking the free list touched).
    fn get_first_slab(n: &mut NodeLists) -> Option<SlabPage> {
        // SAFETY: the node's lists under its lock (the caller holds it through `n`).
        if let Some(l) = unsafe { list::list_first(&n.slabs_partial) } {
            // SAFETY: list entries are slab links.
            return Some(unsafe { SlabPage::from_lru(l) });
        }
        n.free_touched = true;
        // SAFETY: `slabs_free` is an initialised list head of the node, read under its list
        // lock (held by the caller through `n`).
        let l = unsafe { list::list_first(&n.slabs_free) }?;
        n.free_slabs -= 1;
        // SAFETY: the node's free list links only slab pages through their `slab_list`.
        Some(unsafe { SlabPage::from_lru(l) })
    }

    /// `alloc_block`: moves objects of `slab` into `ac`, at most `batchcount`; returns what is
    /// left of it.
    fn alloc_block(
        &self,
        s: &Cache<P>,
        ac: *mut ArrayCache,
        slab: SlabPage,
        mut batchcount: u32,
    ) -> u32 {
        while slab.active() < s.num && batchcount > 0 {
            batchcount -= 1;
            let o = self.slab_get_obj(s, slab);
            // SAFETY: the array is this CPU's (section held) and has room: the caller asks for
            // at most `limit - avail` objects.
            unsafe {
                let a = (*ac).avail;
                ArrayCache::set(ac, a, o);
                (*ac).avail = a + 1;
            }
        }
        batchcount
    }

    /// One object straight from node `nid`'s slabs, growing one there (with `gfp`: on
    /// another node if it has no memory and `gfp` allows): `____cache_alloc_node` without
    /// its fallback, also for a cache without a per-CPU array yet (boot). Null when no slab
    /// could be grown.
    pub(super) fn alloc_one(&self, s: &Cache<P>, gfp: GfpFlags, nid: usize) -> *mut u8 {
        {
            // Lock order: &n->list_lock (rank 4), in a CPU section; docs/LOCKING.md.
            let mut n = s.node(nid).lock();
            if let Some(slab) = Self::get_first_slab(&mut n) {
                let o = self.slab_get_obj(s, slab);
                self.fixup_slab_list(s, &mut n, slab);
                n.free_objects -= 1;
                return o;
            }
        }
        let Some(slab) = self.cache_grow_begin(s, gfp, nid) else {
            return ptr::null_mut();
        };
        let o = self.slab_get_obj(s, slab);
        // Lock order: &n->list_lock (rank 4), in a CPU section; docs/LOCKING.md.
        let mut n = s.node(slab.0.nid()).lock();
        self.cache_grow_end(s, &mut n, slab);
        o
    }

    /// `cache_alloc_refill`: refills this CPU's array from its node `nid` and pops one object
    /// (null when out of memory; on a NUMA machine new slabs come only from `nid`,
    /// `gfp_exact_node`).
    fn cache_alloc_refill(
        &self,
        s: &Cache<P>,
        slot: &CpuSlot,
        gfp: GfpFlags,
        nid: usize,
    ) -> *mut u8 {
        // SAFETY: the caller is in this slot's CPU section.
        let ac = unsafe { slot.ac() };
        if ac.is_null() {
            return self.alloc_one(s, self.gfp_exact_node(gfp), nid);
        }
        s.allocmiss.fetch_add(1, Ordering::Relaxed);
        // SAFETY: this CPU's array, section held.
        let (mut batchcount, touched) = unsafe { ((*ac).batchcount, (*ac).touched) };
        if touched == 0 && batchcount > BATCHREFILL_LIMIT {
            // Little recent activity: a partial refill, to avoid refill bouncing.
            batchcount = BATCHREFILL_LIMIT;
        }
        // SAFETY: `ac` is this CPU's live array (non-null, read from the slot in the CPU
        // section the caller holds): nobody else reads or writes it meanwhile.
        batchcount = batchcount.min(unsafe { (*ac).limit });
        {
            // Lock order: &n->list_lock (rank 4), in a CPU section; docs/LOCKING.md.
            let mut n = s.node(nid).lock();
            // SAFETY: the shared array is used under the list lock; ours under the section.
            let from_shared =
                !n.shared.is_null() && unsafe { transfer_objects(ac, n.shared, batchcount) } != 0;
            if from_shared {
                // SAFETY: `n.shared` is non-null (checked just above) and live while it is
                // the node's shared array; it is written only under the list lock, held.
                unsafe { (*n.shared).touched = 1 };
            } else {
                while batchcount > 0 {
                    let Some(slab) = Self::get_first_slab(&mut n) else {
                        break;
                    };
                    batchcount = self.alloc_block(s, ac, slab, batchcount);
                    self.fixup_slab_list(s, &mut n, slab);
                }
                // SAFETY: `ac` is this CPU's live array and we hold the CPU section, so no
                // one else touches it.
                n.free_objects -= unsafe { (*ac).avail } as usize;
            }
        }
        // SAFETY: this CPU's live array, still in the CPU section the caller holds.
        if unsafe { (*ac).avail } == 0 {
            let slab = self.cache_grow_begin(s, self.gfp_exact_node(gfp), nid);
            if let Some(slab) = slab {
                self.alloc_block(s, ac, slab, batchcount.max(1));
                // Lock order: &n->list_lock (rank 4), in a CPU section; docs/LOCKING.md.
                let mut n = s.node(slab.0.nid()).lock();
                self.cache_grow_end(s, &mut n, slab);
            }
            // SAFETY: this CPU's live array; `cache_grow_begin` may have run the page
            // allocator but did not leave the CPU section, so the array is still ours.
            if unsafe { (*ac).avail } == 0 {
                return ptr::null_mut();
            }
        }
        // SAFETY: this CPU's live array in our CPU section; `avail > 0` (checked above), so
        // entry `avail - 1` is below `limit` and holds an object.
        unsafe {
            (*ac).touched = 1;
            (*ac).avail -= 1;
            ArrayCache::get(ac, (*ac).avail)
        }
    }

    /// `cache_flusharray`: gives `batchcount` objects from the bottom of this CPU's full array
    /// to its node `nid`'s shared array, or back to their slabs.
    fn cache_flusharray(&self, s: &Cache<P>, ac: *mut ArrayCache, nid: usize) {
        let mut dl = DestroyList(ListHead {
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
        });
        // SAFETY: this CPU's array, section held.
        let mut batchcount = unsafe { (*ac).batchcount.min((*ac).avail) };
        {
            // Lock order: &n->list_lock (rank 4), in a CPU section; docs/LOCKING.md.
            let mut n = s.node(nid).lock();
            let shared = n.shared;
            // SAFETY: the shared array under the list lock.
            let room = if shared.is_null() {
                0
            } else {
                // SAFETY: the shared array under the list lock.
                unsafe { (*shared).limit - (*shared).avail }
            };
            if room > 0 {
                batchcount = batchcount.min(room);
                // SAFETY: `ac` is this CPU's array (CPU section held) and `shared` the node's
                // shared array (list lock held, non-null since `room > 0`); they are distinct
                // allocations, so the ranges do not overlap. `batchcount <= ac.avail` entries
                // are read and `batchcount <= room = limit - avail` entries fit in `shared`.
                unsafe {
                    ptr::copy_nonoverlapping(
                        ArrayCache::entries(ac),
                        ArrayCache::entries(shared).add((*shared).avail as usize),
                        batchcount as usize,
                    );
                    (*shared).avail += batchcount;
                }
            } else {
                // SAFETY: this CPU's live array (CPU section held), `batchcount <= avail`,
                // and nothing writes it while `free_block` reads the slice.
                let objs = unsafe { entries(ac, batchcount) };
                self.free_block(s, &mut n, objs, dl.head());
            }
        }
        // SAFETY: this CPU's live array, still in our CPU section; `batchcount <= avail`
        // (capped when it was computed, and `avail` has not changed since).
        unsafe { shift_down(ac, batchcount) };
        self.slabs_destroy(s, dl.head());
    }

    /// `drain_array`: unless the array was touched since the last call, gives a fifth of
    /// its limit back (`drain_array_locked`).
    pub(super) fn drain_array(
        &self,
        s: &Cache<P>,
        n: &mut NodeLists,
        ac: *mut ArrayCache,
        to: *mut ListHead,
    ) {
        if ac.is_null() {
            return;
        }
        // SAFETY: the caller may use the array (its CPU section, or the list lock for the
        // shared array).
        unsafe {
            if (*ac).avail == 0 {
                return;
            }
            if (*ac).touched != 0 {
                (*ac).touched = 0;
                return;
            }
            let mut tofree = (*ac).limit.div_ceil(5);
            if tofree > (*ac).avail {
                tofree = (*ac).avail.div_ceil(2);
            }
            self.free_block(s, n, entries(ac, tofree), to);
            shift_down(ac, tofree);
        }
    }

    /// This CPU's `cache_reap` of one cache, when due: one alien cache of its node `nid`
    /// (`reap_alien`), its array and, every `REAPTIMEOUT_NODE`, the node's shared array and
    /// free slabs.
    pub(super) fn reap_cpu(&self, s: &Cache<P>, slot: &CpuSlot, nid: usize, force: bool) {
        let now = self.platform().jiffies();
        // SAFETY: the caller is in this slot's CPU section.
        if !force && now < unsafe { slot.next_reap() } {
            return;
        }
        // SAFETY: `set_next_reap` needs the slot's CPU section (or a dead CPU), which the
        // caller holds.
        unsafe { slot.set_next_reap(now + REAPTIMEOUT_AC_S * self.platform().hz()) };
        // SAFETY: the same CPU section of this slot.
        unsafe { self.reap_alien(s, slot, nid) };
        // SAFETY: the same CPU section of this slot.
        let ac = unsafe { slot.ac() };
        let mut dl = DestroyList(ListHead {
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
        });
        let tofree = {
            // Lock order: &n->list_lock (rank 4), in a CPU section; docs/LOCKING.md.
            let mut n = s.node(nid).lock();
            self.drain_array(s, &mut n, ac, dl.head());
            if !force && now < n.next_reap {
                0
            } else {
                n.next_reap = now + REAPTIMEOUT_NODE_S * self.platform().hz();
                let shared = n.shared;
                self.drain_array(s, &mut n, shared, dl.head());
                if n.free_touched {
                    n.free_touched = false;
                    0
                } else {
                    let num = s.num as usize;
                    n.free_limit.div_ceil(5 * num)
                }
            }
        };
        self.slabs_destroy(s, dl.head());
        if tofree > 0 {
            self.drain_freelist(s, nid, tofree);
        }
    }
}

/// `slab_alloc`: an object of `s` (the pointer the user sees), or `None`.
#[inline]
pub(super) fn cache_alloc<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
) -> Option<NonNull<u8>> {
    cache_alloc_node(m, s, gfp, caller, crate::page_alloc::NUMA_NO_NODE)
}

/// `slab_alloc_node`: an object of `s` from node `nodeid` (`NUMA_NO_NODE`: the CPU's node
/// first), or `None` (`__do_cache_alloc`, see node.rs for the node paths).
#[inline]
pub(super) fn cache_alloc_node<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
    nodeid: i32,
) -> Option<NonNull<u8>> {
    let mut want = None;
    let mut slow = false;
    let (objp, old) = {
        // Lock order: cpu_section (rank 3), &n->list_lock under it; docs/LOCKING.md.
        let g = m.cpu_guard();
        // SAFETY: a CPU section's CPU is a possible CPU.
        let slot = unsafe { s.cpu(g.cpu()) };
        let local = m.cpu_to_node(g.cpu());
        let old = m.take_pending(s, slot, local);
        // SAFETY: we are in the slot's CPU section.
        let ac = unsafe { slot.ac() };
        if ac.is_null() && !slot.requested.load(Ordering::Relaxed) {
            want = Some(slot);
        }
        let objp = if nodeid >= 0 && nodeid as usize != local {
            // Another node's object: never from this CPU's array.
            slow = true;
            m.cache_alloc_remote(s, gfp, nodeid as usize)
        } else if !ac.is_null()
            // SAFETY: a non-null `ac` is this CPU's live array and we hold its section.
            && unsafe { (*ac).avail } > 0
        {
            // SAFETY: `ac` is this CPU's live array and we hold the section; `avail > 0`
            // (the condition), so entry `avail - 1` is below `limit` and holds an object.
            unsafe {
                (*ac).touched = 1;
                (*ac).avail -= 1;
                ArrayCache::get(ac, (*ac).avail)
            }
        } else {
            let mut o = m.cache_alloc_refill(s, slot, gfp, local);
            if o.is_null() && m.nr_online_nodes() > 1 {
                // The local node is out of memory: ____cache_alloc_node and its fallback.
                o = m.cache_alloc_remote(s, gfp, local);
            }
            m.reap_cpu(s, slot, local, false);
            slow = true;
            o
        };
        (objp, old)
    };
    free_meta(m, old.cast());
    if let Some(slot) = want {
        request_array(m, s, slot);
    }
    // The slow path of an allocation that may sleep is where this CPU's periodic reap runs
    // when it is due (mm/slab.c's per-CPU delayed work, see the module documentation).
    if slow && gfp.contains(GfpFlags::__GFP_DIRECT_RECLAIM) {
        super::periodic_reap(m);
    }
    let Some(objp) = NonNull::new(objp) else {
        let nid = if nodeid >= 0 {
            nodeid as usize
        } else {
            m.numa_node_id()
        };
        slab_out_of_memory(m, s, gfp, nid);
        return None;
    };
    let objp = objp.as_ptr();
    if s.debug() {
        m.cache_alloc_debugcheck_after(s, objp, caller);
    }
    let obj = objp.wrapping_add(s.obj_offset as usize);
    if gfp.contains(GfpFlags::__GFP_ZERO) {
        // SAFETY: the object is ours now; `object_size` bytes from its start are in the stride.
        unsafe { ptr::write_bytes(obj, 0, s.object_size.load(Ordering::Relaxed) as usize) };
    }
    NonNull::new(obj)
}

/// `slab_out_of_memory` of SLAB: the request's node, then every node's slabs.
#[cold]
fn slab_out_of_memory<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>, gfp: GfpFlags, nid: usize) {
    if gfp.contains(GfpFlags::__GFP_NOWARN) {
        return;
    }
    m.printk(
        LogLevel::Warning,
        format_args!(
            "SLAB: Unable to allocate memory on node {nid}, gfp={:#x}({})",
            gfp.bits(),
            gfp
        ),
    );
    m.printk(
        LogLevel::Warning,
        format_args!(
            "  cache: {}, object size: {}, order: {}",
            s.name(),
            s.size,
            s.gfporder
        ),
    );
    for node in 0..m.nr_online_nodes().min(crate::numa::MAX_NUMA_NODES) {
        // Lock order: &n->list_lock (rank 4), no CPU section; docs/LOCKING.md.
        let (total, free_slabs, free_objs) = {
            let n = s.node(node).lock();
            (n.total_slabs, n.free_slabs, n.free_objects)
        };
        let num = s.num as usize;
        m.printk(
            LogLevel::Warning,
            format_args!(
                "  node {node}: slabs: {}/{}, objs: {}/{}",
                total - free_slabs,
                total,
                (total * num).saturating_sub(free_objs),
                total * num
            ),
        );
    }
}

/// `___cache_free` of a checked stride start.
fn cache_free_checked<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    objp: *mut u8,
    slab: SlabPage,
    caller: &'static Location<'static>,
) {
    if s.debug() && !m.cache_free_debugcheck(s, objp, caller) {
        return;
    }
    let mut want = None;
    let old = {
        // Lock order: cpu_section (rank 3), &n->list_lock under it; docs/LOCKING.md.
        let g = m.cpu_guard();
        // SAFETY: a CPU section's CPU is a possible CPU.
        let slot = unsafe { s.cpu(g.cpu()) };
        let local = m.cpu_to_node(g.cpu());
        let old = m.take_pending(s, slot, local);
        // SAFETY: we are in the slot's CPU section.
        let ac = unsafe { slot.ac() };
        if ac.is_null() && !slot.requested.load(Ordering::Relaxed) {
            want = Some(slot);
        }
        if m.nr_online_nodes() > 1 && m.cache_free_alien(s, objp, local, slab.0.nid()) {
            // A remote object: into this node's alien cache for its home (node.rs).
        } else if ac.is_null() {
            m.drain_objects(s, &[objp]);
        } else {
            // SAFETY: this CPU's array, section held.
            let (avail, limit) = unsafe { ((*ac).avail, (*ac).limit) };
            // SAFETY: this CPU's live array in our section; evaluated only when `avail > 0`,
            // and `avail - 1 < avail <= limit`.
            if avail > 0 && unsafe { ArrayCache::get(ac, avail - 1) } == objp {
                drop(g);
                double_free(m, s, slab, objp, caller);
                free_meta(m, old.cast());
                return;
            }
            if avail < limit {
                s.freehit.fetch_add(1, Ordering::Relaxed);
            } else {
                s.freemiss.fetch_add(1, Ordering::Relaxed);
                m.cache_flusharray(s, ac, local);
                m.reap_cpu(s, slot, local, false);
            }
            // SAFETY: this CPU's live array, still in our section (`cache_flusharray` and
            // `reap_cpu` do not leave it); there is room now: `avail < limit` before, or the
            // flush moved `batchcount >= 1` entries out.
            unsafe {
                let a = (*ac).avail;
                ArrayCache::set(ac, a, objp);
                (*ac).avail = a + 1;
            }
        }
        old
    };
    free_meta(m, old.cast());
    if let Some(slot) = want {
        request_array(m, s, slot);
    }
}

/// A CPU without an array used the cache: make one with the cache's tunables and offer it
/// (installed at the CPU's next operation), once. Runs outside any CPU section; objects of
/// the array's own kmalloc cache meanwhile go straight to the slabs, so this cannot recurse
/// more than once per cache.
#[cold]
fn request_array<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>, slot: &CpuSlot) {
    if m.slab().state.load(Ordering::Acquire) < crate::slab::common::SlabBootState::Full as u8
        || slot.requested.swap(true, Ordering::SeqCst)
    {
        return;
    }
    let limit = s.limit.load(Ordering::SeqCst);
    let batch = s.batchcount.load(Ordering::SeqCst);
    if limit == 0 {
        return;
    }
    if let Some(a) = super::alloc_arraycache(m, limit, batch) {
        // A retune may have offered one meanwhile: it wins (it has the newest tunables).
        if slot
            .pending
            .compare_exchange(ptr::null_mut(), a, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            free_meta(m, a.cast());
        }
    }
}

impl<P: Platform> SlabLayer<P> {
    /// `free_block` of a few objects under their home node's list lock (a run of objects of
    /// one node at a time), then `slabs_destroy`.
    pub(super) fn drain_objects(&self, s: &Cache<P>, objs: &[*mut u8]) {
        let mut dl = DestroyList(ListHead {
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
        });
        let home = |p: *mut u8| self.slab_of(s, p).map(|(slab, _)| slab.0.nid());
        let mut rest = objs;
        while let Some(&first) = rest.first() {
            let nid = home(first).unwrap_or(0);
            let run = rest
                .iter()
                .position(|&p| home(p).unwrap_or(0) != nid)
                .unwrap_or(rest.len());
            // Lock order: &n->list_lock (rank 4), maybe in a CPU section; docs/LOCKING.md.
            let mut n = s.node(nid).lock();
            self.free_block(s, &mut n, &rest[..run], dl.head());
            drop(n);
            rest = &rest[run..];
        }
        self.slabs_destroy(s, dl.head());
    }
}

#[cold]
fn double_free<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    slab: SlabPage,
    objp: *mut u8,
    caller: &'static Location<'static>,
) {
    let _ = slab;
    m.slab_error_line(format_args!(
        "slab: double free detected in cache '{}', objp {:016x}",
        s.name(),
        m.to_model(objp as usize + s.obj_offset as usize)
    ));
    m.dump_stack(LogLevel::Err, caller);
}

/// Frees `p` (a pointer from `cache_alloc`) through its own slab's cache check: a pointer
/// not at an object start, or of another cache, is reported and ignored or redirected.
pub(super) fn kmem_cache_free<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    let objp = p.wrapping_sub(s.obj_offset as usize);
    if let Some((slab, _)) = m.slab_of(s, objp) {
        return cache_free_checked(m, s, objp, slab, caller);
    }
    match m.owner_of(p) {
        Owner::Slab(_, cache) if cache != s as *const Cache<P> as usize => {
            // cache_from_obj: warn and free into the cache the object belongs to.
            // SAFETY: `mapping` of a slab page is its cache, which never goes away.
            let real = unsafe { &*(cache as *const Cache<P>) };
            m.warn_at(
                caller,
                format_args!(
                    "kmem_cache_free: Wrong slab cache. {} but object is from {}",
                    s.name(),
                    real.name()
                ),
            );
            let objp = p.wrapping_sub(real.obj_offset as usize);
            if let Some((slab, _)) = m.slab_of(real, objp) {
                cache_free_checked(m, real, objp, slab, caller);
            }
        }
        Owner::Slab(..) => {
            m.slab_error_line(format_args!(
                "kmem_cache_free: cache `{}': invalid object pointer {:016x} (not the start of an object), not freed",
                s.name(),
                m.to_model(p as usize)
            ));
            m.dump_stack(LogLevel::Err, caller);
        }
        _ => m.warn_at(
            caller,
            format_args!(
                "kmem_cache_free: object 0x{:016x} is not from a slab ({})",
                m.to_model(p as usize),
                s.name()
            ),
        ),
    }
}

/// Frees `p` into `s` if it is an object of `s` (used by `free_meta`).
pub(super) fn cache_free<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    kmem_cache_free(m, s, p, caller)
}
