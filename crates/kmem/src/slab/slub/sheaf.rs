//! Per-CPU sheaves (mm/slub.c of Linux 6.18): `alloc_from_pcs`/`__pcs_replace_empty_main`,
//! `free_to_pcs`/`__pcs_replace_full_main`, `refill_sheaf`, `sheaf_flush_unused`,
//! `alloc_empty_sheaf`/`free_empty_sheaf`, the prefilled-sheaf API
//! (`kmem_cache_prefill_sheaf`, `kmem_cache_alloc_from_sheaf`, `kmem_cache_refill_sheaf`,
//! `kmem_cache_return_sheaf`), `pcs_flush_all`, `barn_shrink` and the CPU-dead flush
//! (`__pcs_flush_all_cpu`).
//!
//! A cache with sheaves (`sheaf_capacity > 0`: asked for with
//! [`KmemCacheArgs::sheaf_capacity`](crate::slab::common::KmemCacheArgs), and every kmalloc
//! cache, see `calculate_sheaf_capacity` in cache.rs) keeps on each CPU a *main* sheaf that
//! the fast paths pop and push (alloc.rs `alloc_inner`, free.rs `free_inner`) and a *spare*;
//! the node's barn (barn.rs) trades full and empty sheaves between CPUs. Below the sheaves the
//! CPU slab path stays as it is in 6.18: a sheaf is refilled from the CPU slab and its
//! partial slabs (`__kmem_cache_alloc_bulk`), and flushed with one freelist splice or one
//! compare-and-swap per slab (its objects sorted by address first, so the objects of one slab
//! are adjacent — Linux's `build_detached_freelist` only looks ahead a few objects).
//! Caches with any slub_debug flag have no sheaves (capacity 0), as in Linux.
//!
//! Differences from Linux, all because a kmem CPU section never sleeps: an empty main sheaf is
//! refilled in place inside the section (Linux drops its `local_trylock`, refills the spare or
//! an empty sheaf from the barn or a new one, and installs that); main sheaves are allocated
//! on a CPU's first use of the cache, not at creation (6.18's `init_percpu_sheaves`); the
//! sheaf structures are kmalloc objects taken from the kmalloc caches' slab path directly, so
//! that a kmalloc cache never recurses into its own sheaves (the later mainline bootstrap
//! needs `bootstrap_kmalloc_sheaves` for the same reason). `kmem_cache_shrink` flushes the
//! calling CPU's sheaves and slab at once and asks every other CPU to flush its own at its
//! next safe point (`sheaves_flush_requested`: kmem has no work queues to run Linux's
//! `flush_all` work on each CPU). `kfree_rcu` objects are batched into sheaves by
//! rcu_sheaf.rs.
//!
//! Sheaf structures (their headers and slots) are owned by exactly one of: a CPU's `main` or
//! `spare` (used only inside that CPU's section), the barn (under its lock), or the holder of
//! a [`Sheaf`] handle.

use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

use crate::addr::PAGE_SIZE;
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::platform::Platform;
use crate::slab::common::{kmalloc_index, CacheHandle, KmallocType, KMALLOC_MAX_CACHE_SIZE};
use crate::slab::SlabLayer;

use super::alloc::alloc_from_slab;
use super::barn::{sheaf_bytes, ReplaceFull, MAX_EMPTY_SHEAVES, MAX_FULL_SHEAVES};
use super::free::{double_free, free_to_slab, FreeChain};
use super::{resolve, Cache, KmemCacheCpu, Owner, Slab, SlabSheaf, Stat};

/// A prefilled sheaf (`struct slab_sheaf *` from `kmem_cache_prefill_sheaf`): objects of one
/// cache reserved by the holder, handed out by `kmem_cache_alloc_from_sheaf` without failing,
/// until it is given back with `kmem_cache_return_sheaf`. Dropping it instead leaks its
/// objects and its memory (as losing the pointer does in Linux).
pub struct Sheaf {
    ptr: NonNull<SlabSheaf>,
}

// SAFETY: a `Sheaf` is the only owner of its sheaf (module invariant); the objects it holds
// are plain memory of the cache, usable from any thread (Linux's prefilled sheaves are not
// tied to a CPU either).
unsafe impl Send for Sheaf {}

impl Sheaf {
    /// `kmem_cache_sheaf_size`: objects left in the sheaf.
    pub fn size(&self) -> usize {
        // SAFETY: the handle owns a live sheaf.
        unsafe { (*self.ptr.as_ptr()).size as usize }
    }
    /// Slots of the sheaf (the cache's `sheaf_capacity`, or more for an oversize sheaf).
    pub fn capacity(&self) -> usize {
        // SAFETY: the handle owns its sheaf (module invariant: a `Sheaf` is the sheaf's only
        // owner), so the header behind `ptr` is live and no CPU or the barn writes `capacity` while
        // we read it.
        unsafe { (*self.ptr.as_ptr()).capacity as usize }
    }
}

/// What a cache's sheaves hold, for tests and statistics (`SlabLayer::slub_sheaf_census`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SheafCensus {
    /// `s->sheaf_capacity`.
    pub capacity: u32,
    /// Sheaves held by CPUs (main and spare).
    pub cpu_sheaves: usize,
    /// Objects in the CPUs' sheaves.
    pub cpu_objects: usize,
    /// Full and empty sheaves in the barn.
    pub barn_full: usize,
    pub barn_empty: usize,
    /// Objects in the barn's sheaves.
    pub barn_objects: usize,
}

/// A list of sheaves to free once no CPU data of their cache is borrowed (linked by `next`).
pub(super) struct Bin(pub(super) *mut SlabSheaf);

impl Bin {
    fn push(&mut self, sh: *mut SlabSheaf) {
        if !sh.is_null() {
            // SAFETY: the caller owns `sh` (taken from a CPU or the barn) and gives it up.
            unsafe { (*sh).next = self.0 };
            self.0 = sh;
        }
    }
}

impl<P: Platform> SlabLayer<P> {
    /// `alloc_empty_sheaf`: a zeroed sheaf of `capacity` slots for `s`. Small sheaves come
    /// from the kmalloc caches' slab path (never their sheaves), large ones from kmalloc's
    /// page path.
    pub(super) fn alloc_empty_sheaf(
        &self,
        s: &Cache<P>,
        gfp: GfpFlags,
        capacity: u32,
    ) -> Option<NonNull<SlabSheaf>> {
        let bytes = sheaf_bytes(capacity);
        let gfp = gfp.without(GfpFlags::__GFP_ZERO);
        let p = if bytes <= KMALLOC_MAX_CACHE_SIZE {
            let k = self.slab().kmalloc[KmallocType::Normal as usize]
                [kmalloc_index(bytes) as usize]
                .load(Ordering::Acquire);
            if k.is_null() {
                // Early boot: the kmalloc cache for sheaves does not exist yet.
                return None;
            }
            // SAFETY: kmalloc table entries are caches created at boot, never destroyed.
            let k = unsafe { &*k.cast::<Cache<P>>() };
            alloc_from_slab(
                self,
                k,
                gfp | GfpFlags::__GFP_NOWARN,
                Location::caller(),
                bytes,
            )?
        } else {
            self.kmalloc_large(bytes, gfp | GfpFlags::__GFP_NOWARN)?
        };
        let sh = p.cast::<SlabSheaf>();
        // SAFETY: a fresh allocation of `bytes` >= 32 bytes, 8-aligned (kmalloc objects are),
        // owned by us.
        unsafe {
            ptr::write(
                sh.as_ptr(),
                SlabSheaf {
                    next: ptr::null_mut(),
                    rcu_aux: 0,
                    cache: s as *const Cache<P> as usize,
                    size: 0,
                    capacity,
                },
            )
        };
        s.stat(Stat::SheafAlloc);
        Some(sh)
    }

    /// `free_empty_sheaf`: gives an empty sheaf's memory back (bypassing sheaves). Returns
    /// the kmalloc cache it went to, if a slab cache.
    pub(super) fn free_empty_sheaf(
        &self,
        s: &Cache<P>,
        sh: *mut SlabSheaf,
    ) -> Option<*const Cache<P>> {
        if sh.is_null() {
            return None;
        }
        let p = sh.cast::<u8>();
        s.stat(Stat::SheafFree);
        match self.owner_of(p) {
            Owner::Slab(page, cache) => {
                // SAFETY: `mapping` of a slab page is its cache, which never goes away.
                let k = unsafe { &*(cache as *const Cache<P>) };
                free_to_slab(self, k, Slab(page), p, Location::caller());
                Some(k)
            }
            _ => {
                crate::slab::kmalloc::kfree_internal(self, p);
                None
            }
        }
    }

    /// Frees every sheaf of a [`Bin`] (no CPU data of their caches may be borrowed; the
    /// statistics go to each sheaf's own cache). With `shrink`, the kmalloc caches the
    /// sheaves went back to are shrunk too (their current CPU slab and empty partial slabs),
    /// so that `kmem_cache_shrink` of every cache, in any order, leaves no empty slab behind.
    fn empty_bin(&self, bin: Bin, shrink: bool) {
        let mut touched: [*const Cache<P>; 8] = [ptr::null(); 8];
        let mut sh = bin.0;
        while !sh.is_null() {
            // SAFETY: the bin owns its sheaves; `cache` is the live cache they belong to.
            let (next, owner) = unsafe { ((*sh).next, &*((*sh).cache as *const Cache<P>)) };
            if let Some(k) = self.free_empty_sheaf(owner, sh) {
                if let Some(slot) = touched.iter_mut().find(|t| t.is_null() || **t == k) {
                    *slot = k;
                }
            }
            sh = next;
        }
        if !shrink {
            return;
        }
        for k in touched.iter().take_while(|k| !k.is_null()) {
            // SAFETY: kmalloc caches are never destroyed.
            let k = unsafe { &**k };
            {
                // Lock order: cpu_section (rank 3), &n->list_lock under it (flush_cpu).
                let g = self.cpu_guard();
                // SAFETY: we hold this CPU's section and no other reference to its data.
                let c = unsafe { k.cpu(g.cpu()) };
                self.flush_cpu(k, c);
            }
            super::slab::discard_empty_partials(self, k);
        }
    }

    /// `refill_sheaf`: fills `sh` to its capacity from the CPU slab path. Returns whether it
    /// is full (Linux: 0 or `-ENOMEM`); what was allocated stays in the sheaf either way.
    fn refill_sheaf(
        &self,
        s: &Cache<P>,
        c: &mut KmemCacheCpu,
        sh: *mut SlabSheaf,
        gfp: GfpFlags,
    ) -> bool {
        let gfp = gfp.without(GfpFlags::__GFP_ZERO) | GfpFlags::__GFP_NOWARN;
        // SAFETY: the caller owns `sh` (a CPU's sheaf under its section, or a detached one).
        let (start, cap, objs) = unsafe { ((*sh).size, (*sh).capacity, SlabSheaf::objects(sh)) };
        // SAFETY: slots `start..cap` of the caller's sheaf are free and only ours to write.
        let free = unsafe {
            core::slice::from_raw_parts_mut(objs.add(start as usize), (cap - start) as usize)
        };
        // Allocations pop the top slot, so the objects are stored from the top down: they are
        // handed out in freelist order (ascending addresses in a fresh slab without
        // `slab_freelist_random`), as the CPU slab hands them out, and consecutive
        // allocations stay adjacent in memory. (Stored bottom-up and reversed afterwards, the
        // reversal's 16-byte loads waited on the 8-byte stores just made: store forwarding
        // fails.) A new slab fills its share of the slots directly (`new_slab_bulk`).
        let mut k = free.len();
        while k > 0 {
            let obj = c.freelist;
            if !obj.is_null() {
                // SAFETY: `obj` is a CPU-owned free object.
                c.freelist = unsafe { s.get_fp(obj) };
                k -= 1;
                free[k] = obj;
                continue;
            }
            let (below, top) = free.split_at_mut(k - 1);
            match self.slab_alloc_slow_bulk(s, c, gfp, true, below) {
                Some((o, taken)) => {
                    top[0] = o;
                    k -= 1 + taken;
                }
                None => break,
            }
        }
        let got = free.len() - k;
        if k > 0 {
            // Short (no memory): move what was got down to the bottom, order kept.
            free.copy_within(k.., 0);
        }
        let n = start + got as u32;
        // SAFETY: `sh` is the caller's sheaf (a CPU's, used only inside its section, or a detached
        // one) and nothing else refers to its header; `n` <= capacity was just counted.
        unsafe { (*sh).size = n };
        s.stat_add(Stat::SheafRefill, u64::from(n - start));
        n == cap
    }

    /// `sheaf_flush_unused`: gives every object of `sh` back to its slab, sorted by address
    /// so that each slab gets one chain (one splice into the CPU freelist, or one
    /// `__slab_free` compare-and-swap). A pointer twice in the sheaf (a double free the fast
    /// path's naive check could not see) sits next to itself after sorting and is reported.
    pub(super) fn sheaf_flush_unused(
        &self,
        s: &Cache<P>,
        c: &mut KmemCacheCpu,
        sh: *mut SlabSheaf,
    ) {
        // SAFETY: the caller owns `sh`; its first `size` slots hold objects.
        let objs =
            unsafe { core::slice::from_raw_parts_mut(SlabSheaf::objects(sh), (*sh).size as usize) };
        let n = objs.len();
        objs.sort_unstable();
        self.prefetch_flush(s, objs);
        let caller = Location::caller();
        let mut i = 0;
        while i < n {
            let p = objs[i];
            let Some(page) = self.virt_to_page_fast(p) else {
                i += 1;
                continue;
            };
            let slab = Slab(page.compound_head());
            let end = self.slab_base(slab) as usize + (PAGE_SIZE << slab.order());
            let (mut head, tail, mut cnt) = (p, p, 1u32);
            let mut j = i + 1;
            while j < n && (objs[j] as usize) < end {
                let q = objs[j];
                if q == objs[j - 1] {
                    double_free(self, s, slab, q, caller);
                } else {
                    // SAFETY: `q` is an object of this slab held by the sheaf; it joins the
                    // detached chain.
                    unsafe { s.set_fp(q, head) };
                    head = q;
                    cnt += 1;
                }
                j += 1;
            }
            if c.slab == slab.raw() {
                if tail == c.freelist {
                    double_free(self, s, slab, tail, caller);
                } else {
                    // SAFETY: the chain's objects are ours; splice it onto the CPU freelist.
                    unsafe { s.set_fp(tail, c.freelist) };
                    c.freelist = head;
                }
            } else {
                self.slab_free_slow(s, c, slab, FreeChain { head, tail, cnt }, caller);
            }
            i = j;
        }
        // SAFETY: the caller owns `sh`.
        unsafe { (*sh).size = 0 };
        s.stat_add(Stat::SheafFlush, n as u64);
    }

    /// Starts the cache misses of a flush before its first compare-and-swap: the objects'
    /// free-pointer words (written when chained) and their slabs' head `struct page`s (the
    /// freelist+counters word). A sheaf of randomly freed objects has about one object per
    /// slab, both lines cold; `__slab_free`'s locked `cmpxchg` waits for its own miss and for
    /// the chain's stores, so without this the misses of a flush are taken one after the
    /// other instead of overlapping (random1m_pair, docs/BENCHMARKS.md).
    fn prefetch_flush(&self, s: &Cache<P>, objs: &[*mut u8]) {
        let off = s.offset as usize;
        for &p in objs {
            crate::page_alloc::prefetch(p.wrapping_add(off));
            if let Some(page) = self.virt_to_page_fast(p) {
                // A plain load (the tail's head link), overlapped by the CPU with the others.
                crate::page_alloc::prefetch(page.compound_head().as_ptr());
            }
        }
    }

    /// Pops an object off a CPU's main sheaf known to hold one.
    #[inline]
    fn pop_main(c: &mut KmemCacheCpu) -> *mut u8 {
        let sh = c.main;
        // SAFETY: the CPU's main sheaf (caller holds its section) is non-empty (caller).
        unsafe {
            let n = (*sh).size - 1;
            (*sh).size = n;
            c.alloc_pcs = c.alloc_pcs.wrapping_add(1);
            *SlabSheaf::objects(sh).add(n as usize)
        }
    }

    /// `alloc_from_pcs` when the main sheaf is empty (`__pcs_replace_empty_main`) or not
    /// allocated yet. `None`: the caller takes the CPU slab path (as Linux does when it cannot
    /// refill: no blocking allowed, or memory exhausted).
    pub(super) fn alloc_from_pcs_slow(&self, s: &Cache<P>, gfp: GfpFlags) -> Option<*mut u8> {
        let mut fresh: Option<NonNull<SlabSheaf>> = None;
        let r = loop {
            // Lock order: cpu_section (rank 3), &barn->lock and &n->list_lock under it;
            // docs/LOCKING.md.
            let g = self.cpu_guard();
            // SAFETY: we hold this CPU's section and no other reference to its data.
            let c = unsafe { s.cpu(g.cpu()) };
            if c.main.is_null() {
                match fresh.take() {
                    Some(f) => c.main = f.as_ptr(),
                    None => {
                        drop(g);
                        fresh = Some(self.alloc_empty_sheaf(s, gfp, s.sheaf_capacity)?);
                        continue;
                    }
                }
            }
            let main = c.main;
            // SAFETY: the CPU's sheaves are live and ours inside its section.
            if unsafe { (*main).size } > 0 {
                break Some(Self::pop_main(c));
            }
            let spare = c.spare;
            // SAFETY: a non-null `spare` is, like `main`, this CPU's sheaf, live and used only
            // inside this CPU's section, which we hold.
            if !spare.is_null() && unsafe { (*spare).size } > 0 {
                c.spare = main;
                c.main = spare;
                break Some(Self::pop_main(c));
            }
            // Lock order: &barn->lock (rank 4, leaf) in the CPU section; docs/LOCKING.md.
            let full = {
                let mut b = self.get_barn(s).lock();
                // SAFETY: `main` is ours (this CPU's) and empty; on success the barn owns it.
                unsafe { b.replace_empty(NonNull::new_unchecked(main)) }
            };
            if let Some(full) = full {
                s.stat(Stat::BarnGet);
                c.main = full.as_ptr();
                break Some(Self::pop_main(c));
            }
            s.stat(Stat::BarnGetFail);
            if !gfp.allows_blocking() {
                break None;
            }
            self.refill_sheaf(s, c, main, gfp);
            // SAFETY: `main` is still this CPU's main sheaf: `refill_sheaf` filled it in place
            // under the section we hold, so its header is live and ours.
            if unsafe { (*main).size } == 0 {
                break None;
            }
            break Some(Self::pop_main(c));
        };
        if let Some(f) = fresh {
            self.free_empty_sheaf(s, f.as_ptr());
        }
        r
    }

    /// `free_to_pcs` when the main sheaf is full (`__pcs_replace_full_main`) or not allocated
    /// yet, or `p` is on its top (reported as a double free). Returns false when the object
    /// must take the slab path instead (no sheaf could be had).
    pub(super) fn free_to_pcs_slow(
        &self,
        s: &Cache<P>,
        slab: Slab,
        p: *mut u8,
        caller: &'static Location<'static>,
    ) -> bool {
        let mut fresh: Option<NonNull<SlabSheaf>> = None;
        let mut alloc_failed = false;
        let cap = s.sheaf_capacity;
        let done = loop {
            // Lock order: cpu_section (rank 3), &barn->lock and &n->list_lock under it;
            // docs/LOCKING.md.
            let g = self.cpu_guard();
            // SAFETY: we hold this CPU's section and no other reference to its data.
            let c = unsafe { s.cpu(g.cpu()) };
            if c.main.is_null() {
                match fresh.take() {
                    Some(f) => c.main = f.as_ptr(),
                    None if alloc_failed => break false,
                    None => {
                        drop(g);
                        fresh = self.alloc_empty_sheaf(s, GfpFlags::GFP_NOWAIT, cap);
                        alloc_failed = fresh.is_none();
                        continue;
                    }
                }
            }
            let main = c.main;
            // SAFETY: the CPU's sheaves are live and ours inside its section.
            let n = unsafe { (*main).size };
            // SAFETY: the read is of `main`'s slot `n - 1`, reached only when n > 0: below `size`,
            // so in the slot array and holding an object; the sheaf is this CPU's and we hold its
            // section.
            if n > 0 && unsafe { *SlabSheaf::objects(main).add(n as usize - 1) } == p {
                drop(g);
                double_free(self, s, slab, p, caller);
                break true;
            }
            if n < cap {
                // SAFETY: n < cap, so slot `n` lies inside `main`'s slot array and is free; `main`
                // is this CPU's sheaf and we hold its section, so no one else reads or writes its
                // slots or `size`.
                unsafe {
                    *SlabSheaf::objects(main).add(n as usize) = p;
                    (*main).size = n + 1;
                }
                c.free_pcs = c.free_pcs.wrapping_add(1);
                break true;
            }
            if alloc_failed {
                // No empty sheaf anywhere: `sheaf_flush_main`, then the push above.
                s.stat(Stat::BarnPutFail);
                self.sheaf_flush_unused(s, c, main);
                alloc_failed = false;
                continue;
            }
            let spare = c.spare;
            if spare.is_null() {
                // Lock order: &barn->lock (rank 4, leaf) in the CPU section; docs/LOCKING.md.
                let empty = fresh.take().or_else(|| self.get_barn(s).lock().get_empty());
                if let Some(e) = empty {
                    c.spare = main;
                    c.main = e.as_ptr();
                    continue;
                }
            // SAFETY: `spare` is non-null in this branch and is this CPU's spare sheaf, live and
            // used only inside this CPU's section, which we hold.
            } else if unsafe { (*spare).size } < cap {
                c.spare = main;
                c.main = spare;
                continue;
            } else {
                let r = {
                    // Lock order: &barn->lock (rank 4, leaf) in the CPU section.
                    let mut b = self.get_barn(s).lock();
                    match fresh.take() {
                        // SAFETY: `main` is this CPU's full sheaf; the barn takes it.
                        Some(f) => unsafe {
                            b.put_full(NonNull::new_unchecked(main));
                            Ok(f)
                        },
                        // SAFETY: `main` is this CPU's full sheaf, ours inside the section;
                        // `replace_full` takes it only when it hands back an empty one, and
                        // otherwise leaves it with us.
                        None => unsafe { b.replace_full(NonNull::new_unchecked(main)) },
                    }
                };
                match r {
                    Ok(e) => {
                        s.stat(Stat::BarnPut);
                        c.main = e.as_ptr();
                        continue;
                    }
                    Err(ReplaceFull::TooManyFull) => {
                        // Flush the full spare and make it the main sheaf.
                        s.stat(Stat::BarnPutFail);
                        self.sheaf_flush_unused(s, c, spare);
                        c.spare = main;
                        c.main = spare;
                        continue;
                    }
                    Err(ReplaceFull::NoEmpty) => {}
                }
            }
            // No empty sheaf to be had in the section: allocate one outside it.
            drop(g);
            fresh = self.alloc_empty_sheaf(s, GfpFlags::GFP_NOWAIT, cap);
            alloc_failed = fresh.is_none();
        };
        if let Some(f) = fresh {
            self.put_or_free_empty(s, f.as_ptr());
        }
        done
    }

    /// An unneeded empty sheaf goes to the barn unless it holds `MAX_EMPTY_SHEAVES` already.
    pub(super) fn put_or_free_empty(&self, s: &Cache<P>, sh: *mut SlabSheaf) {
        {
            // Lock order: &barn->lock (rank 4, leaf), no other lock held; docs/LOCKING.md.
            let mut b = self.get_barn(s).lock();
            if b.nr_empty() < MAX_EMPTY_SHEAVES {
                // SAFETY: an empty sheaf we own; the barn takes it.
                unsafe { b.put_empty(NonNull::new_unchecked(sh)) };
                return;
            }
        }
        self.free_empty_sheaf(s, sh);
    }

    /// `pcs_flush_all` for one CPU's data: flushes the main sheaf (kept) and the spare
    /// (freed). `c` is the current CPU's (in its section) or an offline CPU's.
    fn pcs_flush_cpu(&self, s: &Cache<P>, c: &mut KmemCacheCpu, bin: &mut Bin) {
        if !c.main.is_null() {
            self.sheaf_flush_unused(s, c, c.main);
        }
        let spare = c.spare;
        if !spare.is_null() {
            c.spare = ptr::null_mut();
            self.sheaf_flush_unused(s, c, spare);
            bin.push(spare);
        }
    }

    /// `barn_shrink` of every node's barn: flushes the full sheaves and frees all sheaves.
    fn barn_shrink(&self, s: &Cache<P>, c: &mut KmemCacheCpu, bin: &mut Bin) {
        for nid in 0..self.nr_online_nodes() {
            self.barn_shrink_node(s, nid, c, bin);
        }
    }

    /// `barn_shrink` of node `nid`'s barn.
    fn barn_shrink_node(&self, s: &Cache<P>, nid: usize, c: &mut KmemCacheCpu, bin: &mut Bin) {
        // Lock order: &barn->lock (rank 4, leaf), released before the flushes.
        let (mut full, mut empty) = self.node_barn(s, nid).lock().take_all();
        while !full.is_null() {
            // SAFETY: taken off the barn: ours.
            let next = unsafe { (*full).next };
            self.sheaf_flush_unused(s, c, full);
            bin.push(full);
            full = next;
        }
        while !empty.is_null() {
            // SAFETY: `empty` is the next sheaf of the empty chain `take_all` detached from the
            // barn: no CPU and no barn refers to it any more, so reading its `next` link is ours
            // alone.
            let next = unsafe { (*empty).next };
            bin.push(empty);
            empty = next;
        }
    }

    /// `kmem_cache_shrink`'s sheaf part: the calling CPU's sheaves (flushed and freed) and
    /// the barn.
    pub(super) fn sheaves_shrink(&self, s: &Cache<P>) {
        if !s.has_sheaves() {
            return;
        }
        // `pcs_flush_all`'s `rcu_free` part: the objects waiting in the `kfree_rcu` sheaf come
        // back after a grace period (`rcu_free_sheaf_nobarn`).
        self.flush_rcu_sheaf(s);
        // Every other CPU is asked to flush its sheaves and slab too (see
        // `sheaves_flush_requested`); this one does it now.
        let gen = s.flush_gen.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        let mut bin = Bin(ptr::null_mut());
        {
            // Lock order: cpu_section (rank 3), &barn->lock, &n->list_lock under it.
            let g = self.cpu_guard();
            // SAFETY: we hold this CPU's section and no other reference to its data.
            let c = unsafe { s.cpu(g.cpu()) };
            c.flush_seen = gen;
            self.pcs_flush_cpu(s, c, &mut bin);
            // Unlike Linux, the main sheaf goes too (allocated again on the next use), so
            // that a shrink gives back everything the cache's sheaves held.
            let main = c.main;
            c.main = ptr::null_mut();
            bin.push(main);
            self.barn_shrink(s, c, &mut bin);
        }
        self.empty_bin(bin, true);
    }

    /// Linux's `flush_all(s)` queues `flush_cpu_sheaves`/`flush_cpu_slab` work on every CPU
    /// and waits for it; kmem has no work queues and cannot touch another CPU's per-CPU data,
    /// so `kmem_cache_shrink` bumps the cache's `flush_gen` and each CPU does that work itself
    /// here, at its next safe point: SLUB's slow paths of the cache (where deferred frees are
    /// drained too), `slab_tick` on that CPU (every cache), its own shrink, and going offline
    /// (which flushes everything anyway). Its sheaves are flushed and freed, its CPU slab
    /// deactivated, and empty slabs beyond `min_partial` discarded, as the shrink would have.
    pub(crate) fn sheaves_flush_requested(&self, s: &Cache<P>) {
        let gen = s.flush_gen.load(Ordering::Acquire);
        let mut bin = Bin(ptr::null_mut());
        {
            // Lock order: cpu_section (rank 3), &barn->lock, &n->list_lock under it.
            let g = self.cpu_guard();
            // SAFETY: we hold this CPU's section and no other reference to its data.
            let c = unsafe { s.cpu(g.cpu()) };
            if c.flush_seen == gen {
                return;
            }
            c.flush_seen = gen;
            self.pcs_flush_cpu(s, c, &mut bin);
            let main = c.main;
            c.main = ptr::null_mut();
            bin.push(main);
            self.flush_cpu(s, c);
        }
        self.empty_bin(bin, false);
        super::slab::discard_empty_partials(self, s);
    }

    /// `pcs_destroy` + `barn_shrink` for `kmem_cache_destroy`: every CPU's sheaves are
    /// flushed and freed.
    ///
    /// # Safety
    /// No thread uses the cache (destroy's contract), so every CPU's data is ours.
    pub(super) unsafe fn sheaves_destroy(&self, s: &Cache<P>) {
        if !s.has_sheaves() {
            return;
        }
        let mut bin = Bin(ptr::null_mut());
        for cpu in 0..self.platform().possible_cpus() {
            // SAFETY: the cache is quiescent (caller), so no CPU section uses its data.
            let c = unsafe { s.cpu(cpu) };
            self.pcs_flush_cpu(s, c, &mut bin);
            let main = c.main;
            c.main = ptr::null_mut();
            bin.push(main);
        }
        {
            // Lock order: cpu_section (rank 3) under slab_mutex; &barn->lock under it.
            let g = self.cpu_guard();
            // SAFETY: we hold this CPU's section (`g`), so its `KmemCacheCpu` is used by nothing
            // else; the loop's `c` above was dropped before the guard was taken.
            let c = unsafe { s.cpu(g.cpu()) };
            self.barn_shrink(s, c, &mut bin);
        }
        self.empty_bin(bin, false);
    }

    /// `__pcs_flush_all_cpu` for a CPU gone offline (`slub_cpu_dead`): its sheaves are
    /// flushed, their objects going back through the dead CPU's slab data (which the caller
    /// flushes next), and parked in the barn as empty sheaves for the other CPUs (kmem
    /// allocates main sheaves on first use, so an offline CPU keeps none). Nothing is freed
    /// here: a CPU section entered from the CPU-dead hook may run on a CPU id no teardown
    /// ever flushes (the hosted platform's shared slot).
    pub(super) fn sheaves_cpu_dead(&self, s: &Cache<P>, c: &mut KmemCacheCpu) {
        if !s.has_sheaves() {
            return;
        }
        let mut bin = Bin(ptr::null_mut());
        self.pcs_flush_cpu(s, c, &mut bin);
        let main = c.main;
        c.main = ptr::null_mut();
        bin.push(main);
        let mut sh = bin.0;
        while !sh.is_null() {
            // SAFETY: the bin owns its (now empty) sheaves; the barn takes them.
            unsafe {
                let next = (*sh).next;
                self.get_barn(s)
                    .lock()
                    .put_empty(NonNull::new_unchecked(sh));
                sh = next;
            }
        }
    }

    /// `kmem_cache_prefill_sheaf` on a resolved cache.
    fn prefill(&self, s: &Cache<P>, gfp: GfpFlags, size: u32) -> Option<NonNull<SlabSheaf>> {
        if size > s.sheaf_capacity {
            // An oversize sheaf, filled and flushed object by object (any cache, debug
            // caches included).
            let sh = self.alloc_empty_sheaf(s, gfp, size)?;
            s.stat(Stat::SheafPrefillOversize);
            if !self.fill_detached(s, sh.as_ptr(), gfp) {
                self.flush_detached(s, sh.as_ptr());
                self.free_empty_sheaf(s, sh.as_ptr());
                return None;
            }
            return Some(sh);
        }
        let got = {
            // Lock order: cpu_section (rank 3), &barn->lock under it; docs/LOCKING.md.
            let g = self.cpu_guard();
            // SAFETY: we hold this CPU's section and no other reference to its data.
            let c = unsafe { s.cpu(g.cpu()) };
            if !c.spare.is_null() {
                let sp = c.spare;
                c.spare = ptr::null_mut();
                s.stat(Stat::SheafPrefillFast);
                NonNull::new(sp)
            } else {
                s.stat(Stat::SheafPrefillSlow);
                let sh = self.get_barn(s).lock().get_full_or_empty();
                // SAFETY: a sheaf just taken off the barn is ours.
                if sh.is_some_and(|x| unsafe { (*x.as_ptr()).size } > 0) {
                    s.stat(Stat::BarnGet);
                } else {
                    s.stat(Stat::BarnGetFail);
                }
                sh
            }
        };
        let sh = match got {
            Some(sh) => sh,
            None => self.alloc_empty_sheaf(s, gfp, s.sheaf_capacity)?,
        };
        // SAFETY: `sh` came off this CPU's spare or the barn (taken under its lock) or is fresh
        // from `alloc_empty_sheaf`: in every case no CPU and no barn refers to it any more, so its
        // header is ours to read.
        if unsafe { (*sh.as_ptr()).size } < size && !self.fill_detached(s, sh.as_ptr(), gfp) {
            self.flush_detached(s, sh.as_ptr());
            self.free_empty_sheaf(s, sh.as_ptr());
            return None;
        }
        Some(sh)
    }

    /// Fills a sheaf the caller holds (no CPU owns it) to its capacity.
    fn fill_detached(&self, s: &Cache<P>, sh: *mut SlabSheaf, gfp: GfpFlags) -> bool {
        if s.debug() {
            // SAFETY: the caller owns `sh`.
            let (mut n, cap, objs) =
                unsafe { ((*sh).size, (*sh).capacity, SlabSheaf::objects(sh)) };
            let gfp = gfp.without(GfpFlags::__GFP_ZERO);
            while n < cap {
                let Some(o) =
                    alloc_from_slab(self, s, gfp, Location::caller(), s.object_size as usize)
                else {
                    break;
                };
                // SAFETY: slot `n` < capacity.
                unsafe { *objs.add(n as usize) = o.as_ptr() };
                n += 1;
            }
            // SAFETY: `sh` is the caller's detached sheaf and `n` <= capacity (the loop stops at
            // `cap`), so writing its `size` is in bounds and races with no one.
            unsafe { (*sh).size = n };
            return n == cap;
        }
        // Lock order: cpu_section (rank 3), &n->list_lock and &zone->lock under it.
        let g = self.cpu_guard();
        // SAFETY: we hold this CPU's section and no other reference to its data.
        let c = unsafe { s.cpu(g.cpu()) };
        self.refill_sheaf(s, c, sh, gfp)
    }

    /// Flushes a sheaf the caller holds (no CPU owns it).
    fn flush_detached(&self, s: &Cache<P>, sh: *mut SlabSheaf) {
        if s.debug() {
            // SAFETY: the caller owns `sh`.
            let (n, objs) = unsafe { ((*sh).size, SlabSheaf::objects(sh)) };
            for i in 0..n as usize {
                // SAFETY: slot `i` < size holds an object of `s`.
                let o = unsafe { *objs.add(i) };
                if let Owner::Slab(page, _) = self.owner_of(o) {
                    free_to_slab(self, s, Slab(page), o, Location::caller());
                }
            }
            // SAFETY: the caller owns `sh` and every slot below `n` went back to its slab above, so
            // the sheaf is now empty; no one else refers to its header.
            unsafe { (*sh).size = 0 };
            s.stat_add(Stat::SheafFlush, u64::from(n));
            return;
        }
        // Lock order: cpu_section (rank 3), &n->list_lock under it.
        let g = self.cpu_guard();
        // SAFETY: we hold this CPU's section and no other reference to its data.
        let c = unsafe { s.cpu(g.cpu()) };
        self.sheaf_flush_unused(s, c, sh);
    }

    /// `kmem_cache_return_sheaf` on a resolved cache.
    fn return_sheaf(&self, s: &Cache<P>, gfp: GfpFlags, sh: NonNull<SlabSheaf>) {
        let p = sh.as_ptr();
        // SAFETY: the handle's sheaf is ours.
        if unsafe { (*p).capacity } != s.sheaf_capacity {
            self.flush_detached(s, p);
            self.free_empty_sheaf(s, p);
            return;
        }
        {
            // Lock order: cpu_section (rank 3); docs/LOCKING.md.
            let g = self.cpu_guard();
            // SAFETY: we hold this CPU's section and no other reference to its data.
            let c = unsafe { s.cpu(g.cpu()) };
            if c.spare.is_null() {
                c.spare = p;
                s.stat(Stat::SheafReturnFast);
                return;
            }
        }
        s.stat(Stat::SheafReturnSlow);
        // Lock order: &barn->lock (rank 4, leaf); docs/LOCKING.md.
        let crowded = self.get_barn(s).lock().nr_full() >= MAX_FULL_SHEAVES;
        if crowded || !self.fill_detached(s, p, gfp) {
            self.flush_detached(s, p);
            self.free_empty_sheaf(s, p);
            return;
        }
        // SAFETY: a full sheaf we own; the barn takes it.
        unsafe { self.get_barn(s).lock().put_full(sh) };
        s.stat(Stat::BarnPut);
    }
}

/// Resolves the cache of a sheaf operation and checks that the sheaf is that cache's.
fn sheaf_cache<'a, P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    sh: &Sheaf,
    caller: &'static Location<'static>,
) -> Option<&'a Cache<P>> {
    let s = resolve(m, h, caller)?;
    // SAFETY: the handle owns a live sheaf.
    let owner = unsafe { (*sh.ptr.as_ptr()).cache };
    if owner != s as *const Cache<P> as usize {
        m.warn_at(
            caller,
            format_args!("kmem_cache sheaf of another cache used with {}", s.name()),
        );
        return None;
    }
    Some(s)
}

/// `kmem_cache_prefill_sheaf`: a sheaf holding at least `size` objects of the cache.
pub(crate) fn kmem_cache_prefill_sheaf<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    gfp: GfpFlags,
    size: usize,
    caller: &'static Location<'static>,
) -> Option<Sheaf> {
    let s = resolve(m, h, caller)?;
    let size = u32::try_from(size).ok()?;
    if sheaf_bytes(size) > crate::slab::common::KMALLOC_MAX_SIZE {
        return None;
    }
    m.prefill(s, gfp, size).map(|ptr| Sheaf { ptr })
}

/// `kmem_cache_alloc_from_sheaf`: an object from a prefilled sheaf (`None` once it is empty).
pub(crate) fn kmem_cache_alloc_from_sheaf<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    gfp: GfpFlags,
    sh: &mut Sheaf,
    caller: &'static Location<'static>,
) -> Option<core::ptr::NonNull<u8>> {
    let s = sheaf_cache(m, h, sh, caller)?;
    let p = sh.ptr.as_ptr();
    // SAFETY: the handle owns the sheaf; slot `size - 1` holds an object when size > 0.
    let o = unsafe {
        let n = (*p).size;
        if n == 0 {
            return None;
        }
        (*p).size = n - 1;
        *SlabSheaf::objects(p).add(n as usize - 1)
    };
    if gfp.contains(GfpFlags::__GFP_ZERO) {
        // SAFETY: an object of `object_size` bytes, now the caller's.
        unsafe { ptr::write_bytes(o, 0, s.object_size as usize) };
    }
    NonNull::new(o)
}

/// `kmem_cache_refill_sheaf`: makes `sh` hold at least `size` objects (replacing it with an
/// oversize sheaf when it has fewer slots).
///
/// # Errors
/// `ENOMEM` when the objects cannot be allocated, `EINVAL` for a sheaf of another cache.
pub(crate) fn kmem_cache_refill_sheaf<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    gfp: GfpFlags,
    sh: &mut Sheaf,
    size: usize,
    caller: &'static Location<'static>,
) -> Result<(), Errno> {
    let s = sheaf_cache(m, h, sh, caller).ok_or(Errno::EINVAL)?;
    if sh.size() >= size {
        return Ok(());
    }
    if sh.capacity() >= size {
        return if m.fill_detached(s, sh.ptr.as_ptr(), gfp) {
            Ok(())
        } else {
            Err(Errno::ENOMEM)
        };
    }
    let new = kmem_cache_prefill_sheaf(m, h, gfp, size, caller).ok_or(Errno::ENOMEM)?;
    let old = core::mem::replace(sh, new);
    m.return_sheaf(s, gfp, old.ptr);
    Ok(())
}

/// `kmem_cache_return_sheaf`: gives a prefilled sheaf and the objects left in it back.
pub(crate) fn kmem_cache_return_sheaf<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    gfp: GfpFlags,
    sh: Sheaf,
    caller: &'static Location<'static>,
) {
    if let Some(s) = sheaf_cache(m, h, &sh, caller) {
        m.return_sheaf(s, gfp, sh.ptr);
    }
}

/// Counts what a cache's sheaves hold.
///
/// # Safety
/// No other thread uses the cache during the call (the per-CPU sheaves of every CPU are
/// read).
pub(crate) unsafe fn sheaf_census<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
) -> Option<SheafCensus> {
    let s = resolve(m, h, Location::caller())?;
    let mut r = SheafCensus {
        capacity: s.sheaf_capacity,
        ..SheafCensus::default()
    };
    for cpu in 0..m.platform().possible_cpus() {
        // SAFETY: the cache is quiescent (caller), so reading any CPU's data is race-free.
        let c = unsafe { s.cpu(cpu) };
        for sh in [c.main, c.spare] {
            if !sh.is_null() {
                r.cpu_sheaves += 1;
                // SAFETY: a live sheaf of that CPU.
                r.cpu_objects += unsafe { (*sh).size } as usize;
            }
        }
    }
    for nid in 0..m.nr_online_nodes() {
        // Lock order: &barn->lock (rank 4, leaf), one node's at a time.
        m.node_barn(s, nid).lock().walk(|sh, full| {
            // SAFETY: barn sheaves, owned by the barn while we hold its lock.
            r.barn_objects += unsafe { (*sh).size } as usize;
            if full {
                r.barn_full += 1;
            } else {
                r.barn_empty += 1;
            }
        });
    }
    Some(r)
}
