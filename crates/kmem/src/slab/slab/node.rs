//! SLAB on a NUMA machine (mm/slab.c of v6.7 with `CONFIG_NUMA`).
//!
//! Every cache has one `kmem_cache_node` per online node: its three slab lists,
//! `free_objects`, `free_limit`, shared array, alien caches and `list_lock`. Node 0's is in
//! the `struct kmem_cache` (so a one-node machine's `kmem_cache` objects keep their size);
//! on a NUMA machine the others, the alien-cache table and the statistics are one kmalloc'd
//! [`NumaPart`] (Linux kmallocs each node's structure, `cachep->node[nid]`).
//! A slab is on the lists of the node its pages are on; every object in a CPU's array and in
//! a node's shared array is of that CPU's (that array's) node.
//!
//! # Allocation on a node (`__do_cache_alloc`)
//! - `NUMA_NO_NODE` or the CPU's own node: the CPU's array, refilled from the node's shared
//!   array or slabs; a new slab only on the node (`gfp_exact_node`: `__GFP_THISNODE |
//!   __GFP_NOWARN`, no reclaim, no `__GFP_NOFAIL`). If that fails, `____cache_alloc_node` on
//!   the CPU's node and then `fallback_alloc`.
//! - Another node: `____cache_alloc_node` — one object straight from a slab of the node
//!   (never through the CPU's array), growing a slab there with `gfp_exact_node`; if that
//!   fails and the caller did not ask for `__GFP_THISNODE`, `fallback_alloc`: the nodes of
//!   the CPU's zonelist that have free objects, in order, then a new slab with the caller's
//!   flags wherever the page allocator finds memory, and an object of it.
//!
//! # Alien caches (`cache_free_alien`)
//! A CPU freeing an object of another node (its *home*) does not put it in its array: node
//! `local`'s `alien[home]` array collects such objects (12 entries, `alloc_alien_cache`);
//! when it is full it goes home in one batch (`__drain_alien_cache`: into the home node's
//! shared array as far as it has room, the rest back to the home node's slabs). The periodic
//! reap drains one alien cache per run, round robin over the nodes (`reap_alien`,
//! `slab_reap_node`); shrink, validate and destroy drain them all (`drain_alien_cache`).
//! `noaliencache` on the command line turns them off: remote objects then go straight back
//! to their home node's slabs.
//!
//! Linux guards each alien cache with its own `alc->lock` and takes the home node's
//! `list_lock` inside it. kmem keeps a node's alien caches under that node's `list_lock` and
//! moves a batch out (at most 12 objects, onto the stack) before dropping it and taking the
//! home node's lock, so two `list_lock`s are never held together (docs/LOCKING.md).

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, Ordering};

use kds::list::ListHead;

use crate::gfp::GfpFlags;
use crate::numa::MAX_NUMA_NODES;
use crate::platform::Platform;
use crate::slab::common::{CacheHandle, SlabAllocatorKind, SlabError};
use crate::slab::SlabLayer;

use super::{alloc_arraycache, alloc_meta, free_meta, ArrayCache, Cache, CpuSlot};

/// `alloc_alien_cache`: an alien cache holds 12 objects (1 when the cache's `limit` is 1).
const ALIEN_LIMIT: u32 = 12;

/// The NUMA part of a SLAB cache (`KmemCache::numa`): nodes 1.. (`cachep->node[nid]`), the
/// alien-cache table (row `local`, column `home`; each row is node `local`'s `n->alien`,
/// used under its list lock) and the `STATS` of node allocations and remote frees.
pub(crate) struct NumaPart<L: lock_api::RawMutex> {
    pub(super) nodes: [crate::locking::Lock<L, super::NodeLists>; MAX_NUMA_NODES - 1],
    pub(super) alien: [[*mut ArrayCache; MAX_NUMA_NODES]; MAX_NUMA_NODES],
    /// `STATS`: allocations served by `____cache_alloc_node`, frees of remote objects
    /// (`cache_free_alien`), alien caches sent home because they were full.
    pub(super) nodeallocs: AtomicU64,
    pub(super) nodefrees: AtomicU64,
    pub(super) acoverflow: AtomicU64,
}

/// Counts a NUMA statistic of `s` (every cache of a NUMA machine has a `NumaPart`).
fn count<L: lock_api::RawMutex>(
    s: &super::KmemCache<L>,
    f: impl FnOnce(&NumaPart<L>) -> &AtomicU64,
) {
    if let Some(part) = s.numa_part() {
        f(part).fetch_add(1, Ordering::Relaxed);
    }
}

/// SLAB's NUMA boot options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlabNumaParams {
    /// `use_alien_caches`: on unless `noaliencache` is given (`noaliencache_setup`).
    pub(crate) use_alien_caches: bool,
}

impl SlabNumaParams {
    /// The options of `cmdline`.
    pub(crate) fn from_cmdline(cmdline: &str) -> Self {
        Self {
            use_alien_caches: !cmdline.split_whitespace().any(|w| w == "noaliencache"),
        }
    }
}

/// One node's state of a SLAB cache (`kmem_cache_node`), for tests and tools.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlabNodeInfo {
    /// Slabs on the node's lists.
    pub total_slabs: usize,
    /// Slabs with no object in use.
    pub free_slabs: usize,
    /// Free objects in the node's slabs.
    pub free_objects: usize,
    /// Objects in the node's shared array.
    pub shared_avail: usize,
    /// `alien[home]->avail`: objects of node `home` freed on this node, not gone home yet.
    pub alien_avail: [usize; MAX_NUMA_NODES],
    /// Whether the node has alien caches (several nodes, no `noaliencache`).
    pub has_alien: bool,
    /// `STATS` of the cache (all nodes): `____cache_alloc_node` allocations, remote frees
    /// (`nodefrees`) and alien caches drained because they were full (`acoverflow`).
    pub nodeallocs: u64,
    /// See [`SlabNodeInfo::nodeallocs`].
    pub nodefrees: u64,
    /// See [`SlabNodeInfo::nodeallocs`].
    pub acoverflow: u64,
}

/// A batch of objects taken out of an alien cache on their way home.
struct Batch {
    objs: [*mut u8; ALIEN_LIMIT as usize],
    n: usize,
}

impl Batch {
    const fn new() -> Self {
        Self {
            objs: [ptr::null_mut(); ALIEN_LIMIT as usize],
            n: 0,
        }
    }
    /// Moves every entry of `ac` (an alien cache, at most `ALIEN_LIMIT` entries) here.
    ///
    /// # Safety
    /// `ac` is a live alien cache and the caller holds the list lock of the node owning it.
    unsafe fn take_all(&mut self, ac: *mut ArrayCache) {
        // SAFETY: `ac` is live and ours under the owner node's list lock (the caller's
        // contract); it has `avail <= limit <= ALIEN_LIMIT` initialised entries, which fit
        // in `objs`, a distinct stack array.
        unsafe {
            let n = ((*ac).avail as usize).min(ALIEN_LIMIT as usize);
            ptr::copy_nonoverlapping(ArrayCache::entries(ac), self.objs.as_mut_ptr(), n);
            (*ac).avail = 0;
            self.n = n;
        }
    }
}

impl<P: Platform> SlabLayer<P> {
    /// The NUMA part of a new cache (nodes 1.. with `num` free objects allowed and their
    /// first reap at `next_reap(nid)`; an empty alien table): kmalloc'd (pages while the
    /// kmalloc caches are not up), null on a one-node machine.
    pub(super) fn alloc_numa_part<L: lock_api::RawMutex>(
        &self,
        num: u32,
        next_reap: &dyn Fn(usize) -> u64,
    ) -> Result<*mut NumaPart<L>, SlabError> {
        if self.nr_online_nodes() == 1 {
            return Ok(ptr::null_mut());
        }
        let p = alloc_meta(self, core::mem::size_of::<NumaPart<L>>())
            .ok_or(SlabError::NoMemory)?
            .cast::<NumaPart<L>>();
        assert!(p.is_aligned(), "kmalloc memory is 8-aligned");
        let part = NumaPart {
            nodes: core::array::from_fn(|i| {
                crate::locking::Lock::new(
                    &crate::locking::LIST_LOCK,
                    super::cache::new_node_lists(i + 1, num, next_reap(i + 1)),
                )
            }),
            alien: [[ptr::null_mut(); MAX_NUMA_NODES]; MAX_NUMA_NODES],
            nodeallocs: AtomicU64::new(0),
            nodefrees: AtomicU64::new(0),
            acoverflow: AtomicU64::new(0),
        };
        // SAFETY: fresh metadata memory of `NumaPart`'s size, aligned (checked), ours; the
        // caller initialises the list heads in place before any use.
        unsafe { ptr::write(p, part) };
        Ok(p)
    }

    /// `nr_cpus_node(nid)`: the machine's CPUs on node `nid`.
    pub(super) fn nr_cpus_node(&self, nid: usize) -> usize {
        if self.nr_online_nodes() == 1 {
            return self.nr_cpus();
        }
        (0..self.nr_cpus())
            .filter(|&c| self.cpu_to_node(c) == nid)
            .count()
    }

    /// `gfp_exact_node`: a new slab only on the node asked for, no reclaim for it. With one
    /// node the flags stay as they are (Linux's `!CONFIG_NUMA` version only drops
    /// `__GFP_NOFAIL`; kmem's one-node SLAB keeps its behaviour from before NUMA).
    pub(super) fn gfp_exact_node(&self, flags: GfpFlags) -> GfpFlags {
        if self.nr_online_nodes() == 1 {
            return flags;
        }
        (flags | GfpFlags::__GFP_THISNODE | GfpFlags::__GFP_NOWARN)
            .without(GfpFlags::__GFP_RECLAIM | GfpFlags::__GFP_NOFAIL)
    }

    /// `____cache_alloc_node` on node `nid`, then `fallback_alloc` (unless
    /// `__GFP_THISNODE`); null when nothing could be found. A node that is not online is a
    /// caller's bug: a warning (unless `__GFP_NOWARN`) and null.
    pub(super) fn cache_alloc_remote(&self, s: &Cache<P>, gfp: GfpFlags, nid: usize) -> *mut u8 {
        if nid >= self.nr_online_nodes() {
            if !gfp.contains(GfpFlags::__GFP_NOWARN) {
                // warn_if_node_offline (include/linux/gfp.h).
                self.warn(format_args!("{gfp} allocation from offline node {nid}"));
            }
            return ptr::null_mut();
        }
        count(s, |p| &p.nodeallocs);
        let o = self.alloc_one(s, self.gfp_exact_node(gfp), nid);
        if !o.is_null() {
            return o;
        }
        self.fallback_alloc(s, gfp)
    }

    /// `fallback_alloc`: an object of any node the CPU's zonelist allows, nearest first;
    /// then a new slab with the caller's flags (the page allocator's own fallback).
    fn fallback_alloc(&self, s: &Cache<P>, gfp: GfpFlags) -> *mut u8 {
        if gfp.contains(GfpFlags::__GFP_THISNODE) {
            return ptr::null_mut();
        }
        let local = self.numa_node_id();
        let exact = self.gfp_exact_node(gfp);
        // Linux retries without bound when another CPU took the new slab's objects; kmem
        // gives up after a few rounds instead of risking a livelock.
        for _ in 0..4 {
            for &nid in self.fallback_order(local) {
                let nid = usize::from(nid);
                // Lock order: &n->list_lock (rank 4), maybe in a CPU section.
                if s.node(nid).lock().free_objects == 0 {
                    continue;
                }
                let o = self.alloc_one(s, exact, nid);
                if !o.is_null() {
                    return o;
                }
            }
            let Some(slab) = self.cache_grow_begin(s, gfp, local) else {
                return ptr::null_mut();
            };
            let home = slab.0.nid();
            {
                // Lock order: &n->list_lock (rank 4), maybe in a CPU section.
                let mut n = s.node(home).lock();
                self.cache_grow_end(s, &mut n, slab);
            }
            let o = self.alloc_one(s, exact, home);
            if !o.is_null() {
                return o;
            }
        }
        ptr::null_mut()
    }

    /// The alien part of `setup_kmem_cache_node`: node `nid` gets an alien cache for every
    /// other online node, once (a retune keeps them), when there are several nodes and
    /// `noaliencache` was not given.
    pub(super) fn setup_alien_caches(&self, s: &Cache<P>, nid: usize, limit: u32) {
        let nr = self.nr_online_nodes().min(MAX_NUMA_NODES);
        if nr == 1 || !self.slab_numa.use_alien_caches {
            return;
        }
        let entries = if limit > 1 { ALIEN_LIMIT } else { limit.max(1) };
        for home in (0..nr).filter(|&h| h != nid) {
            // Lock order: &n->list_lock (rank 4), under slab_mutex; docs/LOCKING.md.
            if !s.node(nid).lock().alien(home).is_null() {
                continue;
            }
            let Some(a) = alloc_arraycache(self, entries, 0xbaad_f00d) else {
                continue;
            };
            // Lock order: &n->list_lock (rank 4), under slab_mutex; docs/LOCKING.md.
            let mut n = s.node(nid).lock();
            if n.alien(home).is_null() && !n.alien.is_null() {
                n.set_alien(home, a);
            } else {
                drop(n);
                free_meta(self, a.cast());
            }
        }
    }

    /// `cache_free_alien`: `objp` (a checked stride start of a slab on node `home`) is freed
    /// on a CPU of node `local`. Returns false when it is a local object (the caller puts it
    /// in the CPU's array); otherwise it went into `local`'s alien cache for `home` (sending
    /// the full cache home first) or, without alien caches, straight to `home`'s slabs.
    pub(super) fn cache_free_alien(
        &self,
        s: &Cache<P>,
        objp: *mut u8,
        local: usize,
        home: usize,
    ) -> bool {
        if local == home {
            return false;
        }
        count(s, |p| &p.nodefrees);
        let mut batch = Batch::new();
        {
            // Lock order: &n->list_lock (rank 4), in a CPU section; docs/LOCKING.md.
            let n = s.node(local).lock();
            let ac = n.alien(home);
            if ac.is_null() {
                drop(n);
                self.drain_objects(s, &[objp]);
                return true;
            }
            // SAFETY: `local`'s alien cache for `home`, under `local`'s list lock (held by
            // `n`); `avail < limit` after the batch is taken, so entry `avail` is inside it.
            unsafe {
                if (*ac).avail >= (*ac).limit {
                    count(s, |p| &p.acoverflow);
                    batch.take_all(ac);
                }
                let a = (*ac).avail;
                ArrayCache::set(ac, a, objp);
                (*ac).avail = a + 1;
            }
            drop(n);
        }
        self.alien_go_home(s, home, &batch.objs[..batch.n]);
        true
    }

    /// `__drain_alien_cache` after the batch left its alien cache: into node `home`'s shared
    /// array as far as it has room, the rest back to its slabs.
    fn alien_go_home(&self, s: &Cache<P>, home: usize, objs: &[*mut u8]) {
        if objs.is_empty() {
            return;
        }
        let mut dl = ListHead::new();
        // SAFETY: a local list head that does not move while linked.
        unsafe { ListHead::init(&mut dl) };
        {
            // Lock order: &n->list_lock (rank 4), maybe in a CPU section; docs/LOCKING.md.
            let mut n = s.node(home).lock();
            let sh = n.shared;
            let mut rest = objs;
            if !sh.is_null() {
                // SAFETY: `home`'s shared array under its list lock; `room` entries from
                // `avail` are inside its `limit`, and `objs` is a distinct stack buffer.
                unsafe {
                    let room = ((*sh).limit - (*sh).avail) as usize;
                    let k = room.min(rest.len());
                    let from = rest.len() - k;
                    ptr::copy_nonoverlapping(
                        rest.as_ptr().add(from),
                        ArrayCache::entries(sh).add((*sh).avail as usize),
                        k,
                    );
                    (*sh).avail += k as u32;
                    rest = &rest[..from];
                }
            }
            self.free_block(s, &mut n, rest, &mut dl);
        }
        self.slabs_destroy(s, &mut dl);
    }

    /// Sends node `local`'s alien cache for `home` home, if it holds objects.
    fn drain_alien(&self, s: &Cache<P>, local: usize, home: usize, try_only: bool) {
        let mut batch = Batch::new();
        {
            // Lock order: &n->list_lock (rank 4), maybe in a CPU section; docs/LOCKING.md.
            let guard = if try_only {
                s.node(local).try_lock()
            } else {
                Some(s.node(local).lock())
            };
            let Some(n) = guard else {
                return;
            };
            let ac = n.alien(home);
            if ac.is_null() {
                return;
            }
            // SAFETY: `local`'s alien cache, under its list lock (held by `n`).
            unsafe { batch.take_all(ac) };
        }
        self.alien_go_home(s, home, &batch.objs[..batch.n]);
    }

    /// `drain_alien_cache` of every online node: every alien cache goes home.
    pub(super) fn drain_all_aliens(&self, s: &Cache<P>) {
        let nr = self.nr_online_nodes().min(MAX_NUMA_NODES);
        if nr == 1 {
            return;
        }
        for local in 0..nr {
            for home in (0..nr).filter(|&h| h != local) {
                self.drain_alien(s, local, home, false);
            }
        }
    }

    /// `reap_alien`: the periodic reap of node `local`'s CPU sends one alien cache home,
    /// the next node's each time (`slab_reap_node`), skipping it if the lock is busy.
    ///
    /// # Safety
    /// The caller is in `slot`'s CPU section (or the CPU is dead).
    pub(super) unsafe fn reap_alien(&self, s: &Cache<P>, slot: &CpuSlot, local: usize) {
        let nr = self.nr_online_nodes().min(MAX_NUMA_NODES);
        if nr == 1 {
            return;
        }
        // SAFETY: the caller is in the slot's CPU section (its contract).
        let home = unsafe { slot.next_reap_node(nr) };
        if home != local {
            self.drain_alien(s, local, home, true);
        }
    }

    /// Node `nid`'s state of the SLAB cache `c` (`None` unless `slab=slab`, for a stale
    /// handle or a node that is not online).
    pub fn slab_cache_node(&self, c: CacheHandle, nid: usize) -> Option<SlabNodeInfo> {
        if self.slab().kind != SlabAllocatorKind::Slab || nid >= self.nr_online_nodes() {
            return None;
        }
        let s = super::cache_ref::<P>(c);
        if s.gen.load(Ordering::Relaxed) != c.gen {
            return None;
        }
        // Lock order: &n->list_lock (rank 4), alone; docs/LOCKING.md.
        let n = s.node(nid).lock();
        let mut info = SlabNodeInfo {
            total_slabs: n.total_slabs,
            free_slabs: n.free_slabs,
            free_objects: n.free_objects,
            ..SlabNodeInfo::default()
        };
        if let Some(part) = s.numa_part() {
            info.nodeallocs = part.nodeallocs.load(Ordering::Relaxed);
            info.nodefrees = part.nodefrees.load(Ordering::Relaxed);
            info.acoverflow = part.acoverflow.load(Ordering::Relaxed);
        }
        if !n.shared.is_null() {
            // SAFETY: the node's shared array under its list lock.
            info.shared_avail = unsafe { (*n.shared).avail as usize };
        }
        for home in 0..MAX_NUMA_NODES {
            let ac = n.alien(home);
            if !ac.is_null() {
                info.has_alien = true;
                // SAFETY: the node's alien cache under its list lock.
                info.alien_avail[home] = unsafe { (*ac).avail as usize };
            }
        }
        Some(info)
    }
}

/// `kmalloc_node` of SLAB for a size with a kmalloc cache.
pub(crate) fn kmalloc_node<P: Platform>(
    m: &SlabLayer<P>,
    size: usize,
    gfp: GfpFlags,
    caller: &'static core::panic::Location<'static>,
    node: i32,
) -> Option<NonNull<u8>> {
    let s = super::kmalloc_cache_ptr(m, size, gfp)?;
    super::alloc::cache_alloc_node(m, s, gfp, caller, node)
}

/// `kmem_cache_alloc_node` of SLAB.
pub(crate) fn kmem_cache_alloc_node<P: Platform>(
    m: &SlabLayer<P>,
    c: CacheHandle,
    gfp: GfpFlags,
    caller: &'static core::panic::Location<'static>,
    node: i32,
) -> Option<NonNull<u8>> {
    let s = super::resolve(m, c, caller)?;
    super::alloc::cache_alloc_node(m, s, gfp, caller, node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noaliencache_turns_alien_caches_off() {
        assert!(SlabNumaParams::from_cmdline("slab=slab").use_alien_caches);
        assert!(!SlabNumaParams::from_cmdline("slab=slab noaliencache").use_alien_caches);
        assert!(SlabNumaParams::from_cmdline("noaliencachex").use_alien_caches);
    }
}
