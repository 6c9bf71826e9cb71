//! Allocation on a given node (mm/slub.c `slab_alloc_node` with `node != NUMA_NO_NODE`:
//! `node_match`, `get_partial_node`, `___slab_alloc`'s `try_thisnode`, and 6.18's
//! `alloc_from_pcs` node checks): `kmem_cache_alloc_node` and `kmalloc_node`.
//!
//! Each node has its own `kmem_cache_node` (`s->node[nid]`, see `nodes`), so a request for
//! a node takes from that node's partial list (`get_partial_node(s, get_node(s, node))`).
//!
//! A request for a node (on a NUMA machine; with one node, node 0 is `NUMA_NO_NODE`):
//! - the CPU's main sheaf only when the node is the CPU's node and the object on top of the
//!   sheaf is on that node (6.18 `alloc_from_pcs`: "Bypass percpu sheaves if node is
//!   requested and it's not the local node", then `folio_nid(virt_to_folio(object)) != node`);
//!   a cache without sheaves uses its CPU freelist only when the CPU slab is on the node
//!   (`node_match`);
//! - else one object taken from a partial slab of the node's list under its `list_lock` (the
//!   CPU slab stays as it is; the debug caches do the same in `slab_alloc_debug`);
//! - else a new slab: first `GFP_NOWAIT | __GFP_THISNODE` on the node, then, unless the caller
//!   asked for `__GFP_THISNODE` (which fails rather than use another node), a partial slab of
//!   another node (`get_any_partial`), then the caller's flags from the node's zonelist,
//!   which may give another node's memory (`try_thisnode`; `refill_step` in slab.rs). A new
//!   slab goes onto its own node's list.
//!
//! Frees go back to their own slab and, when it changes lists, to its node's list; 6.18's
//! `slab_free` pushes an object onto the CPU's sheaf only when `slab_nid(slab) ==
//! numa_mem_id()` (free.rs).

use core::panic::Location;
use core::ptr::NonNull;

use crate::addr::{Order, VirtAddr};
use crate::gfp::GfpFlags;
use crate::mm::mm_types::PagePtr;
use crate::page_alloc::NUMA_NO_NODE;
use crate::platform::Platform;
use crate::slab::common::CacheHandle;
use crate::slab::SlabLayer;

use super::alloc::{alloc_inner, slab_out_of_memory, zero_object};
use super::slab::{add_partial, first_partial, remove_partial, Refill};
use super::{resolve, Cache, Counters, Slab, SlabSheaf, Stat};

impl<P: Platform> SlabLayer<P> {
    /// One object of `node` for a cache without debugging: from a partial slab of the node
    /// under `list_lock`, else from a new slab put on the partial list.
    fn alloc_single_node(&self, s: &Cache<P>, gfp: GfpFlags, node: i32) -> Option<*mut u8> {
        let mut target = node as usize;
        let mut step = 0;
        let mut new_slab: Option<Slab> = None;
        loop {
            // A new slab goes onto its own node's list and serves this request even if it
            // came from another node (the fallback without `__GFP_THISNODE`).
            let kn = self.get_node(s, new_slab.map_or(target, |sl| sl.0.nid()));
            // Lock order: &n->list_lock (rank 4), no CPU section; docs/LOCKING.md.
            let mut n = kn.list_lock.lock();
            if let Some(slab) = new_slab.take() {
                add_partial(&mut n, slab, false);
            }
            let first = first_partial(&n);
            if let Some(l) = first {
                // SAFETY: partial-list entries are `slab->slab_list` links of memmap pages.
                let slab = Slab(unsafe { PagePtr::from_lru(l) });
                let base = self.slab_base(slab);
                // A slab on the node list is not frozen: only frees (which push in front of
                // the head) change it without the list lock, so the head's link is stable.
                let (obj, next) = loop {
                    let old = slab.counters();
                    let fl = old.freelist(base);
                    if fl.is_null() {
                        break (fl, fl);
                    }
                    // SAFETY: `fl` is the head of the slab's freelist, which only we pop.
                    let next = unsafe { s.get_fp(fl) };
                    let new = Counters::new(next, base, old.inuse() + 1, false);
                    if slab.cas(old, new) {
                        break (fl, next);
                    }
                    s.stat(Stat::CmpxchgDoubleFail);
                };
                if next.is_null() {
                    // Full now (or found full): on no list, as a full non-debug slab is.
                    remove_partial(&mut n, slab);
                }
                kn.hint(&n);
                if obj.is_null() {
                    continue;
                }
                s.stat(Stat::AllocFromPartial);
                return Some(obj);
            }
            drop(n);
            let local = self.numa_node_id();
            match self.refill_step(s, gfp, true, node, local, &mut step)? {
                Refill::Partial(nid) => target = nid,
                Refill::Slab(slab, fl) => {
                    let base = self.slab_base(slab);
                    slab.set_counters(Counters::new(fl, base, 0, false));
                    new_slab = Some(slab);
                }
            }
        }
    }
}

/// The fast paths for a request on `node`: the main sheaf (the CPU's node only, and only if
/// its top object is on `node`) or the CPU freelist of a CPU slab on `node`.
fn alloc_node_fast<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>, node: usize) -> Option<*mut u8> {
    // Lock order: cpu_section (rank 3), lock-free; docs/LOCKING.md.
    let g = m.cpu_guard();
    // SAFETY: we hold this CPU's section and no other reference to its data.
    let c = unsafe { s.cpu(g.cpu()) };
    let sh = c.main;
    if !sh.is_null() {
        if m.cpu_to_node(g.cpu()) != node {
            return None;
        }
        // SAFETY: `main` is a live sheaf of this cache owned by this CPU (sheaf.rs), used
        // only inside the CPU section we hold; slot `n - 1` holds an object when n > 0.
        unsafe {
            let n = (*sh).size as usize;
            if n == 0 {
                return None;
            }
            let obj = *SlabSheaf::objects(sh).add(n - 1);
            let page = m.virt_to_page(VirtAddr::new(obj as usize))?;
            if page.nid() != node {
                return None;
            }
            (*sh).size = n as u32 - 1;
            c.alloc_pcs = c.alloc_pcs.wrapping_add(1);
            return Some(obj);
        }
    }
    let slab = Slab::from_page(c.slab)?;
    let obj = c.freelist;
    if obj.is_null() || slab.0.nid() != node {
        return None;
    }
    // SAFETY: `obj` is a CPU-owned free object.
    c.freelist = unsafe { s.get_fp(obj) };
    c.alloc_fast = c.alloc_fast.wrapping_add(1);
    Some(obj)
}

/// `slab_alloc_node` with a node.
pub(crate) fn slab_alloc_node<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
    orig: usize,
    node: i32,
) -> Option<NonNull<u8>> {
    if node == NUMA_NO_NODE || (node == 0 && m.numa().is_none()) {
        return alloc_inner(m, s, gfp, caller, orig);
    }
    m.slub_drain_deferred();
    let obj = if node < 0 || !m.node_online(node as usize) {
        // A node that is not online has no lists and no memory: the page allocator prints
        // its warning (`warn_if_node_offline`), then `slab_out_of_memory` below.
        let page = m.alloc_pages_node(node, gfp | GfpFlags::__GFP_THISNODE, Order::new(0));
        debug_assert!(page.is_none());
        None
    } else if s.debug() {
        m.slab_alloc_debug(s, gfp, caller, orig, true, node)
    } else {
        alloc_node_fast(m, s, node as usize).or_else(|| m.alloc_single_node(s, gfp, node))
    };
    match obj {
        Some(o) => {
            zero_object::<P>(s, gfp, o, orig);
            // SAFETY: objects are never null.
            Some(unsafe { NonNull::new_unchecked(o) })
        }
        None => {
            slab_out_of_memory(m, s, gfp, node);
            None
        }
    }
}

/// `kmem_cache_alloc_node` through a handle (`orig`: the kmalloc request's size, if any).
pub(crate) fn slab_alloc_node_handle<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
    orig: Option<usize>,
    node: i32,
) -> Option<NonNull<u8>> {
    let s = resolve(m, h, caller)?;
    slab_alloc_node(
        m,
        s,
        gfp,
        caller,
        orig.unwrap_or(s.object_size as usize),
        node,
    )
}

/// `kmalloc_node` up to `KMALLOC_MAX_CACHE_SIZE`.
pub(crate) fn kmalloc_small_node<P: Platform>(
    m: &SlabLayer<P>,
    size: usize,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
    node: i32,
) -> Option<NonNull<u8>> {
    let p = super::kmalloc_slot(m, size, gfp);
    if p.is_null() {
        return None;
    }
    // SAFETY: kmalloc table entries are caches created at boot, never destroyed.
    let s = unsafe { &*p.cast::<Cache<P>>() };
    slab_alloc_node(m, s, gfp, caller, size, node)
}
