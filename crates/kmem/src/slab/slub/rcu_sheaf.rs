//! `kfree_rcu` into sheaves (mm/slub.c of Linux 6.18: `kfree_rcu_sheaf`,
//! `__kfree_rcu_sheaf`, `rcu_free_sheaf`, `rcu_free_sheaf_nobarn`, `flush_all_rcu_sheaves`).
//!
//! An object of a cache with sheaves that is freed with `kfree_rcu` goes into the cache's
//! `rcu_free` sheaf instead of kfree_rcu's bulk pages. A full `rcu_free` sheaf is handed to
//! RCU as a whole (`call_rcu` on the sheaf's own head: its `next` and `rcu_aux` words, Linux's
//! union of `barn_list` and `rcu_head`); after the grace period `rcu_free_sheaf` puts it into
//! the barn as a full sheaf, so the objects are allocated again without touching their slabs
//! (a barn already holding `MAX_FULL_SHEAVES` full sheaves gets it flushed instead).
//! `FREE_RCU_SHEAF` counts the objects taken, `FREE_RCU_SHEAF_FAIL` those refused because no
//! empty sheaf could be had (they take kfree_rcu's ordinary path).
//!
//! Differences from Linux:
//! - one `rcu_free` sheaf per node (in the barn, under `barn->lock`), not per CPU: kmem's
//!   `kmem_cache_cpu` is one cache line with no room for another pointer, and kmem's
//!   kfree_rcu state is one per machine under one lock anyway;
//! - the sheaf is checked before it becomes allocatable: its objects are sorted and a
//!   pointer found twice (`kfree_rcu` of one object twice) sends the sheaf to the flush, which
//!   reports the double free, instead of into the barn (where it would be handed out twice);
//!   a sheaf handed over before it was full (`flush_all_rcu_sheaves`, shrink) is flushed too;
//! - only pointers that start an object of a SLUB slab are taken (`kfree_rcu_mightsleep`
//!   accepts any address; the others go the ordinary way and `kfree` reports them later).
//!
//! Lock order: `&barn->lock` → `rcu_cblist_lock` (the full sheaf is queued before the barn
//! lock is dropped, so `flush_all_rcu_sheaves` cannot miss it, as Linux queues it before
//! `local_unlock`); empty sheaves are allocated with no lock held. The RCU callbacks run
//! outside every kmem lock (mm/rcu.rs) and take the barn lock, a CPU section for the flush,
//! and the list locks under it (docs/LOCKING.md).

use core::ptr::{self, NonNull};

use crate::gfp::GfpFlags;
use crate::mm::rcu::RcuHead;
use crate::platform::Platform;
use crate::slab::SlabLayer;

use super::barn::MAX_FULL_SHEAVES;
use super::{walk_caches, Cache, Slab, SlabSheaf, Stat};

impl<P: Platform> SlabLayer<P> {
    /// `kfree_rcu_sheaf`: puts `obj` into its cache's `rcu_free` sheaf if it is an object of
    /// a SLUB cache with sheaves; returns whether it did (otherwise the caller queues it on
    /// kfree_rcu's bulk pages). Nothing is written to the object.
    pub(crate) fn kfree_rcu_sheaf(&self, obj: *mut u8) -> bool {
        if self.is_kfence_address(obj) {
            return false;
        }
        let Some((page, cache)) = self.virt_to_slab(obj) else {
            return false;
        };
        // SAFETY: `mapping` of a SLUB slab page is its cache, which stays alive while it has
        // slabs (and this object is in one of them).
        let s = unsafe { &*(cache as *const Cache<P>) };
        if !s.has_sheaves() || !self.is_object_start(s, Slab(page), obj) {
            return false;
        }
        let mut fresh: *mut SlabSheaf = ptr::null_mut();
        let done = loop {
            // Lock order: &barn->lock (rank 4), then rcu_cblist_lock (leaf) in call_rcu.
            let mut b = self.get_barn(s).lock();
            let mut sh = b.rcu_free();
            if sh.is_null() {
                sh = if fresh.is_null() {
                    b.get_empty().map_or(ptr::null_mut(), NonNull::as_ptr)
                } else {
                    core::mem::replace(&mut fresh, ptr::null_mut())
                };
                if sh.is_null() {
                    drop(b);
                    // No empty sheaf in the barn: allocate one with the lock released.
                    fresh = self
                        .alloc_empty_sheaf(
                            s,
                            GfpFlags::GFP_NOWAIT | GfpFlags::__GFP_NOWARN,
                            s.sheaf_capacity,
                        )
                        .map_or(ptr::null_mut(), NonNull::as_ptr);
                    if fresh.is_null() {
                        break false;
                    }
                    continue;
                }
                // SAFETY: an empty sheaf of `s` we own (from the barn or just allocated).
                unsafe { b.set_rcu_free(sh) };
            }
            // SAFETY: the barn's `rcu_free` sheaf, ours under its lock; it has room (it is
            // handed to RCU as soon as it is full) and its first `size` slots hold objects.
            unsafe {
                let n = (*sh).size as usize;
                let objs = SlabSheaf::objects(sh);
                if n > 0 && *objs.add(n - 1) == obj {
                    // The same pointer twice in a row: leave it to the ordinary path, whose
                    // `kfree` reports the double free.
                    break false;
                }
                *objs.add(n) = obj;
                (*sh).size = n as u32 + 1;
                if (*sh).size >= (*sh).capacity {
                    b.set_rcu_free(ptr::null_mut());
                    self.queue_rcu_sheaf(sh, rcu_free_sheaf::<P>);
                }
            }
            break true;
        };
        if !fresh.is_null() {
            self.put_or_free_empty(s, fresh);
        }
        s.stat(if done {
            Stat::FreeRcuSheaf
        } else {
            Stat::FreeRcuSheafFail
        });
        done
    }

    /// Hands a sheaf taken from the barn's `rcu_free` slot to RCU.
    ///
    /// # Safety
    /// `sh` is a live sheaf of a cache of this layer, owned by the caller and on no list;
    /// ownership passes to the callback `f`, one of this module's.
    unsafe fn queue_rcu_sheaf(&self, sh: *mut SlabSheaf, f: crate::mm::rcu::RcuCallback) {
        // The callback finds the layer through the cache (`KmemCache::layer`).
        let head = sh.cast::<RcuHead>();
        // SAFETY: a sheaf's first two words (`next`, `rcu_aux`) are its RCU head: 16 bytes,
        // 8-aligned, matching `RcuHead`'s `repr(C)` layout, unused while the sheaf is on no
        // list; nobody touches the sheaf until `f` gets it back.
        unsafe { self.call_rcu(NonNull::new_unchecked(head), f) };
    }

    /// `flush_rcu_sheaf` of every cache, then `rcu_barrier`: every object given to
    /// `kfree_rcu` before the call is back in its cache (`flush_all_rcu_sheaves`, from
    /// `kvfree_rcu_barrier`). Under no lock, outside read-side sections.
    pub(crate) fn flush_all_rcu_sheaves(&self) {
        // Lock order: slab_mutex (rank 1) → &barn->lock → rcu_cblist_lock.
        walk_caches(self, &mut |s| self.flush_rcu_sheaf(s));
        self.rcu_barrier();
    }

    /// Hands the cache's partly filled `rcu_free` sheaf to RCU (shrink, barrier); its
    /// callback flushes it and frees the sheaf (`rcu_free_sheaf_nobarn`).
    pub(super) fn flush_rcu_sheaf(&self, s: &Cache<P>) {
        if !s.has_sheaves() {
            return;
        }
        for nid in 0..self.nr_online_nodes() {
            // Lock order: &barn->lock (rank 4), then rcu_cblist_lock (leaf); one node's
            // barn at a time.
            let mut b = self.node_barn(s, nid).lock();
            // SAFETY: taking the sheaf out (null in its place); it is ours now.
            let sh = unsafe { b.set_rcu_free(ptr::null_mut()) };
            if !sh.is_null() {
                // SAFETY: a sheaf of `s` we own, on no list.
                unsafe { self.queue_rcu_sheaf(sh, rcu_free_sheaf_nobarn::<P>) };
            }
        }
    }

    /// After the grace period: the objects of `sh` are free. A full sheaf without duplicates
    /// goes to the barn as a full sheaf (`to_barn`, while it holds fewer than
    /// `MAX_FULL_SHEAVES`); otherwise its objects go back to their slabs and the empty sheaf
    /// to the barn or, without `to_barn`, is freed.
    fn rcu_sheaf_done(&self, s: &Cache<P>, sh: *mut SlabSheaf, to_barn: bool) {
        // SAFETY: the callback owns the sheaf; its first `size` slots hold objects.
        let objs = unsafe {
            (*sh).next = ptr::null_mut();
            (*sh).rcu_aux = 0;
            core::slice::from_raw_parts_mut(SlabSheaf::objects(sh), (*sh).size as usize)
        };
        if self.leak.tracking_free() {
            // `__rcu_free_sheaf_prepare`'s slab_free_hook: the objects are freed now.
            for &o in objs.iter() {
                self.kmemleak_free(o);
            }
        }
        // SAFETY: the callback owns `sh` (no CPU or barn refers to it), and the header words read
        // here are outside the slot array that `objs` borrows.
        let full = unsafe { (*sh).size == (*sh).capacity };
        objs.sort_unstable();
        let twice = objs.windows(2).any(|w| w[0] == w[1]);
        if to_barn && full && !twice {
            // Lock order: &barn->lock (rank 4, leaf).
            let mut b = self.get_barn(s).lock();
            if b.nr_full() < MAX_FULL_SHEAVES {
                // SAFETY: a full sheaf of `s` we own, on no list; the barn takes it.
                unsafe { b.put_full(NonNull::new_unchecked(sh)) };
                drop(b);
                s.stat(Stat::BarnPut);
                return;
            }
            drop(b);
            s.stat(Stat::BarnPutFail);
        }
        {
            // Lock order: cpu_section (rank 3), &n->list_lock under it (the flush).
            let g = self.cpu_guard();
            // SAFETY: we hold this CPU's section and no other reference to its data.
            let c = unsafe { s.cpu(g.cpu()) };
            self.sheaf_flush_unused(s, c, sh);
        }
        if to_barn {
            // Kept while the barn holds fewer than MAX_EMPTY_SHEAVES empty sheaves.
            self.put_or_free_empty(s, sh);
        } else {
            self.free_empty_sheaf(s, sh);
        }
    }
}

/// Recovers the sheaf, its cache and its layer from an RCU head queued by this module.
///
/// # Safety
/// `head` is the head of a sheaf queued by [`SlabLayer::queue_rcu_sheaf`] of a
/// `SlabLayer<P>`.
unsafe fn sheaf_of<'a, P: Platform>(
    head: NonNull<RcuHead>,
) -> (*mut SlabSheaf, &'a Cache<P>, &'a SlabLayer<P>) {
    let sh = head.as_ptr().cast::<SlabSheaf>();
    // SAFETY: the caller's guarantee: a live sheaf whose `cache` is its live cache (a cache
    // is destroyed only after `rcu_barrier`), whose `layer` is the machine's slab layer,
    // which outlives every callback.
    unsafe {
        let s = &*((*sh).cache as *const Cache<P>);
        (sh, s, &*(s.layer as *const SlabLayer<P>))
    }
}

/// `rcu_free_sheaf`: the RCU callback of a full `rcu_free` sheaf.
///
/// # Safety
/// `head` is the head of a sheaf queued by [`SlabLayer::queue_rcu_sheaf`] of a
/// `SlabLayer<P>`.
unsafe fn rcu_free_sheaf<P: Platform>(head: NonNull<RcuHead>) {
    // SAFETY: forwarded.
    let (sh, s, m) = unsafe { sheaf_of::<P>(head) };
    m.rcu_sheaf_done(s, sh, true);
}

/// `rcu_free_sheaf_nobarn`: the RCU callback of an `rcu_free` sheaf taken away before it was
/// full (shrink, `flush_all_rcu_sheaves`).
///
/// # Safety
/// As [`rcu_free_sheaf`].
unsafe fn rcu_free_sheaf_nobarn<P: Platform>(head: NonNull<RcuHead>) {
    // SAFETY: forwarded.
    let (sh, s, m) = unsafe { sheaf_of::<P>(head) };
    m.rcu_sheaf_done(s, sh, false);
}
