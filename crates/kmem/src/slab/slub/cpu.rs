//! CPU slabs and CPU partial lists (mm/slub.c): `put_cpu_partial`, `__unfreeze_partials`,
//! `deactivate_slab`, `flush_slab`, and `slub_cpu_dead` for a CPU going offline.

use core::ptr;

use crate::mm::mm_types::Page;
use crate::platform::Platform;
use crate::slab::SlabLayer;

use super::slab::{add_partial, Discard};
use super::{walk_caches, Cache, Counters, KmemCacheCpu, NodeLists, Slab, Stat};

/// A held `list_lock` of a cache node.
type NodeGuard<'a, P> = kds::lockdep::MutexGuard<'a, <P as Platform>::RawLock, NodeLists>;

impl<P: Platform> SlabLayer<P> {
    /// `__unfreeze_partials`: moves a CPU partial list to the node lists, each slab to its
    /// own node's, taking one node's `list_lock` at a time.
    fn unfreeze_partials(&self, s: &Cache<P>, mut first: *mut Page) {
        let mut discard = Discard::new();
        let mut held: Option<(usize, NodeGuard<'_, P>)> = None;
        while let Some(slab) = Slab::from_page(first) {
            first = slab.next_partial();
            slab.set_next_partial(ptr::null_mut());
            let nid = slab.0.nid();
            let kn = self.get_node(s, nid);
            if held.as_ref().is_none_or(|(h, _)| *h != nid) {
                if let Some((h, n)) = held.take() {
                    self.get_node(s, h).hint(&n);
                }
                // Lock order: &n->list_lock (rank 4), under cpu_section or slab_mutex, one
                // node's at a time; docs/LOCKING.md.
                held = Some((nid, kn.list_lock.lock()));
            }
            let Some((_, n)) = held.as_mut() else {
                unreachable!("locked above")
            };
            let new = loop {
                let old = slab.counters();
                let new = Counters(old.0 & !(1 << 48));
                if slab.cas(old, new) {
                    break new;
                }
                s.stat(Stat::CmpxchgDoubleFail);
            };
            if new.inuse() == 0 && n.nr_partial >= s.min_partial as usize && discard.push(slab) {
                continue;
            }
            add_partial(n, slab, true);
            s.stat(Stat::FreeAddPartial);
        }
        if let Some((h, n)) = held {
            self.get_node(s, h).hint(&n);
        }
        for p in &discard.slabs[..discard.n] {
            self.discard_slab(s, Slab::from_page(*p).expect("non-null"));
        }
    }

    /// `put_cpu_partial`: puts a just-frozen slab on the current CPU's partial list.
    pub(super) fn put_cpu_partial(&self, s: &Cache<P>, c: &mut KmemCacheCpu, slab: Slab) {
        if c.partial_slabs >= s.cpu_partial_slabs {
            let list = c.partial;
            c.partial = ptr::null_mut();
            c.partial_slabs = 0;
            s.stat(Stat::CpuPartialDrain);
            self.unfreeze_partials(s, list);
        }
        slab.set_next_partial(c.partial);
        c.partial = slab.raw();
        c.partial_slabs += 1;
    }

    /// `deactivate_slab`: returns a CPU slab and the CPU's freelist for it to the lists.
    fn deactivate_slab(&self, s: &Cache<P>, slab: Slab, mut freelist: *mut u8) {
        let base = self.slab_base(slab);
        let mut tail = ptr::null_mut();
        let mut cnt = 0u32;
        let mut p = freelist;
        // The walk is bounded by the slab's size: a longer chain loops (a double free the
        // naive check could not see, as in Linux). Its objects are then given up (they stay
        // counted in use), as `on_freelist` gives up a looping slab freelist.
        while !p.is_null() && cnt <= slab.objects() {
            tail = p;
            cnt += 1;
            // SAFETY: CPU-owned free objects of this slab.
            p = unsafe { s.get_fp(p) };
        }
        if !p.is_null() {
            self.slab_err(s, Some(slab), format_args!("Freelist cycle detected"));
            self.slab_fix(s.name(), format_args!("CPU freelist cleared"));
            freelist = ptr::null_mut();
            cnt = 0;
        }
        // The slab's own node (`get_node(s, slab_nid(slab))`).
        let kn = self.get_node(s, slab.0.nid());
        // Lock order: &n->list_lock (rank 4), under cpu_section or slab_mutex; docs/LOCKING.md.
        let mut n = kn.list_lock.lock();
        let new = loop {
            let old = slab.counters();
            let ofl = old.freelist(base);
            let nfl = if freelist.is_null() {
                ofl
            } else {
                // SAFETY: `tail` ends the CPU-owned chain.
                unsafe { s.set_fp(tail, ofl) };
                freelist
            };
            let new = Counters::new(nfl, base, old.inuse() - cnt, false);
            if slab.cas(old, new) {
                break new;
            }
            s.stat(Stat::CmpxchgDoubleFail);
        };
        let mut free = false;
        if new.inuse() == 0 && n.nr_partial >= s.min_partial as usize {
            free = true;
            s.stat(Stat::DeactivateEmpty);
        } else if !new.freelist(base).is_null() {
            add_partial(&mut n, slab, true);
            s.stat(Stat::DeactivateToTail);
        } else {
            s.stat(Stat::DeactivateFull);
        }
        kn.hint(&n);
        drop(n);
        if free {
            self.discard_slab(s, slab);
        }
    }

    /// `flush_slab` + `put_partials` of one CPU's data.
    pub(super) fn flush_cpu(&self, s: &Cache<P>, c: &mut KmemCacheCpu) {
        if let Some(slab) = Slab::from_page(c.slab) {
            let fl = c.freelist;
            c.slab = ptr::null_mut();
            c.freelist = ptr::null_mut();
            s.stat(Stat::CpuslabFlush);
            self.deactivate_slab(s, slab, fl);
        }
        let list = c.partial;
        c.partial = ptr::null_mut();
        c.partial_slabs = 0;
        self.unfreeze_partials(s, list);
    }
}

/// `slub_cpu_dead`: a CPU went offline; give its active and partial slabs of every cache
/// back to the node lists.
///
/// # Safety
/// No thread may use `cpu`'s per-CPU data during the call (the CPU-dead hook's contract).
pub(crate) unsafe fn slub_cpu_dead<P: Platform>(ctx: *const (), cpu: usize) {
    // SAFETY: registered by `SlabLayer::slab_register_cpuhp` with `ctx` = that layer, alive as
    // long as the machine (cpuhp invariant).
    let m = unsafe { &*ctx.cast::<SlabLayer<P>>() };
    walk_caches(m, &mut |s| {
        if !s.debug() {
            // SAFETY: `cpu` is offline and unused (caller's contract), so its per-CPU data of
            // this cache is ours.
            let c = unsafe { s.cpu(cpu) };
            // __pcs_flush_all_cpu first: the sheaves' objects go back through the dead
            // CPU's slab data, which flush_cpu then returns to the node lists.
            m.sheaves_cpu_dead(s, c);
            m.flush_cpu(s, c);
        }
    });
}
