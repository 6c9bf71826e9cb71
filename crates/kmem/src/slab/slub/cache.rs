//! Cache management (mm/slub.c, mm/slab_common.c): `kmem_cache_create` (merging with
//! `find_mergeable`, `kmem_cache_open` / `calculate_sizes`, the random sequence),
//! `kmem_cache_init` (the `kmem_cache` bootstrap and the kmalloc caches), `kmem_cache_shrink`,
//! `validate_slab_cache` and `kmem_cache_destroy`.

use core::panic::Location;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

use kds::list::{self, ListHead};

use crate::addr::{Order, VirtAddr, PAGE_SIZE};
use crate::gfp::GfpFlags;
use crate::mm::mm_types::PagePtr;
use crate::mm::printk::LineBuf;
use crate::platform::{LogLevel, Platform};
use crate::slab::common::{
    calculate_alignment, calculate_order, get_order, kmalloc_cache_name, kmalloc_size,
    order_objects, CacheHandle, KmallocType, OrderParams, SlabBootState, SlabError, SlabFlags,
    KMALLOC_MAX_SIZE, KMALLOC_SHIFT_HIGH, KMALLOC_SHIFT_LOW, MAX_OBJS_PER_PAGE,
};
use crate::slab::SlabLayer;

use super::alloc::alloc_inner;
use super::barn::BarnLists;
use super::debug::{list_slab_objects, validate_slab, TRACK_SIZE};
use super::slab::{add_full, discard_empty_partials, remove_partial};
use super::{
    handle_of, resolve, walk_caches, Cache, KmemCache, KmemCacheCpu, KmemCacheNode, Slab,
    CACHE_NAME_LEN, MAX_PARTIAL, MIN_PARTIAL, PTR,
};

/// `kmem_cache_shrink`.
pub(crate) fn shrink<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    caller: &'static Location<'static>,
) -> bool {
    let Some(s) = resolve(m, h, caller) else {
        return false;
    };
    // pcs_flush_all + barn_shrink, then flush_all's CPU slab part.
    m.sheaves_shrink(s);
    if !s.debug() {
        // Lock order: cpu_section (rank 3), &n->list_lock under it (flush_cpu); docs/LOCKING.md.
        let g = m.cpu_guard();
        // SAFETY: we hold this CPU's section.
        let c = unsafe { s.cpu(g.cpu()) };
        m.flush_cpu(s, c);
    }
    discard_empty_partials(m, s);
    m.for_each_kmem_cache_node(s)
        .any(|(_, n)| n.nr_slabs.load(Ordering::Relaxed) != 0)
}

/// `validate_slab_cache`: returns the number of slab errors reported.
pub(crate) fn validate<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    caller: &'static Location<'static>,
) -> usize {
    let Some(s) = resolve(m, h, caller) else {
        return 0;
    };
    let before = m.slab_errors();
    if !s.debug() {
        // Lock order: cpu_section (rank 3), &n->list_lock under it (flush_cpu); docs/LOCKING.md.
        let g = m.cpu_guard();
        // SAFETY: we hold this CPU's section.
        let c = unsafe { s.cpu(g.cpu()) };
        m.flush_cpu(s, c);
    }
    for (_, kn) in m.for_each_kmem_cache_node(s) {
        validate_node(m, s, kn);
    }
    m.slab_errors() - before
}

/// `validate_slab_node`: every slab on one node's partial and full lists.
fn validate_node<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>, kn: &KmemCacheNode<P::RawLock>) {
    // Lock order: &n->list_lock (rank 4), no CPU section; reports under it; docs/LOCKING.md.
    let mut n = kn.list_lock.lock();
    let mut count = 0usize;
    for which in 0..2 {
        let head: *mut ListHead = if which == 0 {
            &mut n.partial
        } else {
            &mut n.full
        };
        // SAFETY: this node's lists under its lock; the only move is of the current entry.
        for l in unsafe { list::list_for_each_safe(head) } {
            // SAFETY: list entries are slab_list links.
            let slab = Slab(unsafe { PagePtr::from_lru(l) });
            validate_slab(m, s, slab);
            count += 1;
            if which == 0 && slab.counters().freelist(m.slab_base(slab)).is_null() {
                // Its freelist was given up ("Freelist cleared"): the slab is full now.
                remove_partial(&mut n, slab);
                if s.debug() {
                    add_full(&mut n, slab);
                }
            }
        }
    }
    kn.hint(&n);
    let nr = kn.nr_slabs.load(Ordering::Relaxed);
    if s.debug() && count != nr {
        m.slab_err(
            s,
            None,
            format_args!("{count} slabs counted but counter={nr}"),
        );
    }
}

/// `kmem_cache_destroy`.
pub(crate) fn destroy<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    caller: &'static Location<'static>,
) {
    let Some(s) = resolve(m, h, caller) else {
        return;
    };
    // Lock order: slab_mutex (rank 1), all of ranks 3-7 under it; taken again below;
    // docs/LOCKING.md.
    let mut list = m.slab().mutex.lock();
    if s.refcount.fetch_sub(1, Ordering::Relaxed) != 1 {
        return;
    }
    // __kmem_cache_shutdown: flush every CPU (the caller guarantees nobody uses the cache).
    // SAFETY: the caller guarantees that nobody uses the cache.
    unsafe { m.sheaves_destroy(s) };
    if !s.debug() {
        for cpu in 0..m.platform().possible_cpus() {
            // SAFETY: the cache is quiescent by the caller's guarantee, so no CPU section uses
            // this cache's per-CPU data.
            let c = unsafe { s.cpu(cpu) };
            m.flush_cpu(s, c);
        }
    }
    // free_partial: give the empty slabs back, then report the objects of the others.
    discard_empty_partials(m, s);
    for (_, kn) in m.for_each_kmem_cache_node(s) {
        // Lock order: &n->list_lock (rank 4), under slab_mutex, one node at a time;
        // docs/LOCKING.md.
        let mut n = kn.list_lock.lock();
        for which in 0..2 {
            let head: *mut ListHead = if which == 0 {
                &mut n.partial
            } else {
                &mut n.full
            };
            // SAFETY: this node's lists under its lock; reporting does not move slabs.
            for l in unsafe { list::list_for_each(head) } {
                // SAFETY: list entries are slab_list links.
                list_slab_objects(m, s, Slab(unsafe { PagePtr::from_lru(l) }));
            }
        }
    }
    if m.for_each_kmem_cache_node(s)
        .any(|(_, n)| n.nr_slabs.load(Ordering::Relaxed) != 0)
    {
        // The cache is kept, usable, with its reference back.
        s.refcount.store(1, Ordering::Relaxed);
        drop(list);
        // slub_kunit counts this warning as a slab error (mm/slab_common.c
        // `kmem_cache_destroy`: `slab_in_kunit_test()` bumps `slab_errors`; 6.18's
        // `test_leak_destroy` expects 2 with the `Objects remaining` report).
        m.slab().errors.fetch_add(1, Ordering::Relaxed);
        m.note_report();
        m.warn_at(
            caller,
            format_args!(
                "kmem_cache_destroy {}: Slab cache still has objects when called from {}:{}",
                s.name(),
                caller.file(),
                caller.line()
            ),
        );
        return;
    }
    // Release: unlink, bump the generation, recycle the structure.
    // SAFETY: linked on slab_caches; we hold slab_mutex.
    unsafe { list::list_del(ptr::addr_of!(s.list).cast_mut()) };
    list.count -= 1;
    s.gen.fetch_add(1, Ordering::Relaxed);
    s.alive.store(false, Ordering::Relaxed);
    let cpu_slab = s.cpu_slab;
    let cpu_order = s.cpu_slab_order;
    let seq = s.random_seq;
    drop(list);
    if !seq.is_null() {
        crate::slab::kmalloc::kfree_internal(m, seq.cast());
    }
    m.free_remote_nodes(cpu_slab);
    if let Some(pg) = m.virt_to_page(VirtAddr::new(cpu_slab as usize)) {
        m.__free_pages(pg, Order::new(cpu_order));
        m.percpu_charge(-(Order::new(cpu_order).pages() as isize));
    }
    // Keep the structure for reuse by a later kmem_cache_create: stale handles keep pointing
    // at a KmemCache whose generation tells them apart.
    // Lock order: slab_mutex (rank 1), again: parking the cache on `dead`; docs/LOCKING.md.
    let mut list = m.slab().mutex.lock();
    // SAFETY: unlinked above; the dead list is under slab_mutex.
    unsafe { list::list_add(ptr::addr_of!(s.list).cast_mut(), &mut list.dead) };
}

// ------------------------------------------------------------------ creation

fn slab_unmergeable<L: lock_api::RawMutex>(s: &KmemCache<L>, nomerge: bool) -> bool {
    // 6.18 `slab_unmergeable`: a cache with sheaves is not merged (kmalloc caches, whose
    // sheaves are the default here, stay mergeable as in later mainline).
    nomerge
        || (s.has_sheaves() && !s.flags.contains(SlabFlags::KMALLOC))
        || s.flags.intersects(SlabFlags::NEVER_MERGE)
        || s.ctor.is_some()
        || s.refcount.load(Ordering::Relaxed) < 0
        || !s.alive.load(Ordering::Relaxed)
}

/// `find_mergeable` (mm/slab_common.c).
fn find_mergeable<P: Platform>(
    m: &SlabLayer<P>,
    size: usize,
    align: usize,
    flags: SlabFlags,
    name: &str,
    ctor: Option<fn(*mut u8)>,
    list: &mut crate::slab::common::SlabList,
) -> Option<*const Cache<P>> {
    if m.slab().nomerge || ctor.is_some() {
        return None;
    }
    let flags = m.slab().debug.cache_flags(flags, name);
    if flags.intersects(SlabFlags::NEVER_MERGE) {
        return None;
    }
    let size = (size + 7) & !7;
    let align = calculate_alignment(flags, align, size);
    let size = (size + align - 1) & !(align - 1);
    let head: *mut ListHead = &mut list.caches;
    let mut found = None;
    // SAFETY: the cache list under slab_mutex (the caller holds it).
    for l in unsafe { list::list_for_each_prev(head) } {
        let s = kds::container_of!(l, Cache<P>, list);
        // SAFETY: linked caches are live.
        let s = unsafe { &*s };
        if slab_unmergeable(s, false) {
            continue;
        }
        if size > s.size as usize {
            continue;
        }
        if flags.0 & SlabFlags::MERGE_SAME.0 != s.flags.0 & SlabFlags::MERGE_SAME.0 {
            continue;
        }
        if s.size as usize & (align - 1) != 0 {
            continue;
        }
        if s.size as usize - size >= core::mem::size_of::<usize>() {
            continue;
        }
        found = Some(s as *const Cache<P>);
        break;
    }
    found
}

fn set_name(buf: &mut [u8; CACHE_NAME_LEN], name: &str) -> u32 {
    let n = name.len().min(CACHE_NAME_LEN);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    n as u32
}

/// What `calculate_sizes` decides: the object stride and where the metadata goes.
struct Sizes {
    /// The object stride (`s->size`).
    size: u32,
    /// Offset of the metadata (`s->inuse`).
    inuse: u32,
    /// Free pointer offset (`s->offset`).
    offset: u32,
    /// Left red zone (`s->red_left_pad`).
    red_left_pad: u32,
}

/// `calculate_sizes`: the layout of an object with the debug metadata `flags` asks for
/// (`__OBJECT_POISON` is set or cleared in `flags` here).
fn calculate_sizes(
    object_size: u32,
    align: u32,
    flags: &mut SlabFlags,
    ctor: Option<fn(*mut u8)>,
) -> Sizes {
    let mut sz = (object_size + PTR - 1) & !(PTR - 1);
    if flags.contains(SlabFlags::POISON)
        && !flags.contains(SlabFlags::TYPESAFE_BY_RCU)
        && ctor.is_none()
    {
        *flags = *flags | SlabFlags::OBJECT_POISON;
    } else {
        *flags = flags.without(SlabFlags::OBJECT_POISON);
    }
    if flags.contains(SlabFlags::RED_ZONE) && sz == object_size {
        sz += PTR;
    }
    let inuse = sz;
    let offset;
    if flags.intersects(SlabFlags::TYPESAFE_BY_RCU | SlabFlags::POISON)
        || (flags.contains(SlabFlags::RED_ZONE) && object_size < PTR)
        || ctor.is_some()
    {
        offset = sz;
        sz += PTR;
    } else {
        offset = (object_size / 2) & !(PTR - 1);
    }
    if flags.contains(SlabFlags::STORE_USER) {
        sz += 2 * TRACK_SIZE;
        if flags.contains(SlabFlags::KMALLOC) {
            // orig_size: what kmalloc was asked for (slub_debug_orig_size).
            sz += 4;
        }
    }
    let mut red_left = 0;
    if flags.contains(SlabFlags::RED_ZONE) {
        sz += PTR;
        red_left = (PTR + align - 1) & !(align - 1);
        sz += red_left;
    }
    sz = (sz + align - 1) & !(align - 1);
    Sizes {
        size: sz,
        inuse,
        offset,
        red_left_pad: red_left,
    }
}

/// `s->allocflags` (set by `calculate_sizes`): the zone and mobility of new slabs.
fn cache_allocflags(flags: SlabFlags) -> GfpFlags {
    let mut allocflags = GfpFlags::empty;
    if flags.contains(SlabFlags::CACHE_DMA) {
        allocflags |= GfpFlags::__GFP_DMA;
    }
    if flags.contains(SlabFlags::CACHE_DMA32) {
        allocflags |= GfpFlags::__GFP_DMA32;
    }
    if flags.contains(SlabFlags::RECLAIM_ACCOUNT) {
        allocflags |= GfpFlags::__GFP_RECLAIMABLE;
    }
    allocflags
}

/// `set_cpu_partial`: most slabs a CPU partial list keeps (0 for debug caches).
fn set_cpu_partial(flags: SlabFlags, sz: u32, objects: u32) -> u32 {
    if flags.intersects(SlabFlags::DEBUG_FLAGS) {
        0
    } else {
        // set_cpu_partial: objects, converted to slabs as Linux 6.x does
        // (slub_set_cpu_partial: nr_slabs = DIV_ROUND_UP(nr_objects * 2, oo_objects)).
        let nr_objects = if sz as usize >= PAGE_SIZE {
            6
        } else if sz >= 1024 {
            24
        } else if sz >= 256 {
            52
        } else {
            120
        };
        ((nr_objects * 2) as u32).div_ceil(objects).max(1)
    }
}

/// The sheaf capacity of a cache. No sheaves with debugging (both 6.18 and later). A cache
/// that asks for a capacity (`kmem_cache_args.sheaf_capacity`) gets exactly that, as in
/// 6.18; other caches have none, except the kmalloc caches, which get the default of
/// `calculate_sheaf_capacity` from the later mainline series that gives every cache sheaves
/// ("slab: add sheaves to most caches", Vlastimil Babka, after 6.18): about half of what
/// `set_cpu_partial` keeps per CPU in objects (there are two sheaves per CPU), rounded up so
/// that the sheaf fills its kmalloc bucket (60 → 512-byte sheaves, 26 → 28 in 256 bytes, 12
/// in 128 bytes, 4 in 64 bytes).
pub(super) fn calculate_sheaf_capacity(flags: SlabFlags, sz: u32, requested: u32) -> u32 {
    if flags.intersects(SlabFlags::DEBUG_FLAGS) {
        return 0;
    }
    if requested != 0 || !flags.contains(SlabFlags::KMALLOC) {
        return requested;
    }
    let capacity: u32 = if sz as usize >= PAGE_SIZE {
        4
    } else if sz >= 1024 {
        12
    } else if sz >= 256 {
        26
    } else {
        60
    };
    let bytes = crate::slab::common::kmalloc_size_roundup(super::barn::sheaf_bytes(capacity));
    ((bytes - super::barn::SHEAF_HEADER) / PTR as usize) as u32
}

/// `set_min_partial(s, ilog2(s->size) / 2)`: empty slabs a node keeps on its partial list.
fn set_min_partial(sz: u32) -> u32 {
    let min_partial = (31 - sz.leading_zeros()) / 2;
    min_partial.clamp(MIN_PARTIAL, MAX_PARTIAL)
}

/// `alloc_kmem_cache_cpus`: zeroed per-CPU data for every possible CPU, in pages of its own.
/// Returns it and the order of its block. The pages are zeroed by the platform where it can
/// leave them unbacked until first touched ([`Platform::zero_unbacked`]): the hosted
/// platform has 256 possible CPUs (threads), of which a program uses a few, and each
/// cache's array is four pages.
fn alloc_kmem_cache_cpus<P: Platform>(
    m: &SlabLayer<P>,
) -> Result<(*mut KmemCacheCpu, u32), SlabError> {
    let cpus = m.platform().possible_cpus();
    let bytes = cpus * core::mem::size_of::<KmemCacheCpu>();
    let cpu_order = get_order(bytes);
    let page = m
        .alloc_pages(GfpFlags::GFP_KERNEL, Order::new(cpu_order))
        .ok_or(SlabError::NoMemory)?;
    let Some(addr) = m.page_address(page) else {
        m.__free_pages(page, Order::new(cpu_order));
        return Err(SlabError::NoMemory);
    };
    let cpu_slab = addr.as_ptr::<KmemCacheCpu>();
    let len = Order::new(cpu_order).bytes();
    // SAFETY: the block was just allocated to us (page aligned, in the direct map) and
    // nothing refers into it yet.
    if !unsafe { m.platform().zero_unbacked(cpu_slab.cast(), len) } {
        // SAFETY: the block of `len` bytes at `cpu_slab` was just allocated to us (an order
        // `cpu_order` page block in the direct map) and nothing refers into it yet.
        unsafe { core::ptr::write_bytes(cpu_slab.cast::<u8>(), 0, len) };
    }
    // The per-CPU `kmem_cache_cpu` array is per-CPU memory: /proc/meminfo's Percpu counts it
    // (Linux: alloc_kmem_cache_cpus -> __alloc_percpu).
    m.percpu_charge(Order::new(cpu_order).pages() as isize);
    Ok((cpu_slab, cpu_order))
}

/// Fills in a cache structure at `p` and links it (`kmem_cache_open` + `calculate_sizes`).
#[allow(clippy::too_many_arguments)]
fn open_cache<P: Platform>(
    m: &SlabLayer<P>,
    p: *mut Cache<P>,
    name: &str,
    size: usize,
    align: usize,
    flags: SlabFlags,
    ctor: Option<fn(*mut u8)>,
    gen: u32,
    (sheaf_request, least_order): (u32, u32),
) -> Result<(), SlabError> {
    let st = m.slab();
    let mut flags = st.debug.cache_flags(flags, name);
    let object_size = size as u32;
    let align = calculate_alignment(flags, align, size) as u32;

    let Sizes {
        size: mut sz,
        mut inuse,
        mut offset,
        red_left_pad: mut red_left,
    } = calculate_sizes(object_size, align, &mut flags, ctor);
    if st.debug.disable_higher_order_debug
        && get_order(sz as usize) > get_order(object_size as usize)
    {
        flags = flags.without(SlabFlags::DEBUG_METADATA);
        Sizes {
            size: sz,
            inuse,
            offset,
            red_left_pad: red_left,
        } = calculate_sizes(object_size, align, &mut flags, ctor);
    }
    // A least order of the cache's own (`KmemCacheArgs::min_order`) acts as `slub_min_order=`
    // for this cache, raising `slub_max_order` with it (setup_slub_min_order, mm/slub.c).
    let params = if least_order > st.order.min_order {
        let min_order = least_order.min(crate::addr::MAX_PAGE_ORDER);
        OrderParams {
            min_order,
            max_order: st.order.max_order.max(min_order),
            ..st.order
        }
    } else {
        st.order
    };
    let order = calculate_order(sz, &params).ok_or(SlabError::BadSize)?;
    let objects = order_objects(order, sz).min(MAX_OBJS_PER_PAGE);
    if objects == 0 {
        return Err(SlabError::BadSize);
    }
    let allocflags = cache_allocflags(flags);
    let cpu_partial_slabs = set_cpu_partial(flags, sz, objects);
    let min_partial = set_min_partial(sz);
    let sheaf_capacity = calculate_sheaf_capacity(flags, sz, sheaf_request);
    if super::barn::sheaf_bytes(sheaf_capacity) > crate::slab::common::KMALLOC_MAX_CACHE_SIZE {
        return Err(SlabError::BadSize);
    }
    let (cpu_slab, cpu_order) = alloc_kmem_cache_cpus(m)?;
    // Nodes 1.. on a NUMA machine (nodes.rs).
    if let Err(e) = m.alloc_remote_nodes(cpu_slab) {
        if let Some(pg) = m.virt_to_page(VirtAddr::new(cpu_slab as usize)) {
            m.__free_pages(pg, Order::new(cpu_order));
            m.percpu_charge(-(Order::new(cpu_order).pages() as isize));
        }
        return Err(e);
    }

    let mut name_buf = [0u8; CACHE_NAME_LEN];
    let name_len = set_name(&mut name_buf, name);
    let cache = KmemCache {
        cpu_slab,
        gen: AtomicU32::new(gen),
        flags,
        size: sz,
        object_size,
        offset,
        inuse,
        align,
        red_left_pad: red_left,
        order,
        objects,
        min_order: get_order(sz as usize),
        min_partial,
        cpu_partial_slabs,
        sheaf_capacity,
        div_shift: sz.trailing_zeros(),
        div_inv: mod_inverse((sz >> sz.trailing_zeros()) as u64),
        random: m.platform().random_u64() as usize,
        allocflags,
        ctor,
        random_seq: ptr::null_mut(),
        refcount: AtomicI32::new(1),
        cpu_slab_order: cpu_order,
        name_len,
        name: name_buf,
        list: ListHead::new(),
        node: KmemCacheNode::new(),
        barn: crate::locking::Lock::new(&crate::locking::BARN_LOCK, BarnLists::new()),
        stats: core::array::from_fn(|_| AtomicU64::new(0)),
        alive: AtomicBool::new(true),
        layer: m as *const SlabLayer<P> as usize,
        flush_gen: AtomicU32::new(0),
    };
    // SAFETY: `p` is a fresh object of the kmem_cache cache (or boot memory) of the right
    // size and alignment, owned by us.
    unsafe {
        ptr::write(p, cache);
        if let Some(ld) = m.lockdep() {
            // The validator outlives every cache (it lives as long as the platform).
            (*p).node.list_lock.attach(ld);
            (*p).barn.attach(ld);
        }
        (*p).node.init_lists();
        ListHead::init(ptr::addr_of_mut!((*p).list));
    }
    if st.state.load(Ordering::Relaxed) >= SlabBootState::Up as u8 {
        // SAFETY: just initialised; not yet visible to anyone else.
        init_random_seq(m, unsafe { &mut *p });
    }
    Ok(())
}

/// The inverse of odd `a` modulo 2^64 (Newton's iteration).
pub(super) const fn mod_inverse(a: u64) -> u64 {
    let mut x = a; // correct to 3 bits
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}

/// `init_cache_random_seq`: a random permutation of the object indexes.
fn init_random_seq<P: Platform>(m: &SlabLayer<P>, s: &mut Cache<P>) {
    let n = s.objects as usize;
    if n < 2 || !s.random_seq.is_null() || !m.slab().freelist_random {
        return;
    }
    let Some(p) = crate::slab::kmalloc::kmalloc_internal(m, n * 2, GfpFlags::GFP_KERNEL) else {
        return;
    };
    let seq = p.cast::<u16>();
    for i in 0..n {
        // SAFETY: `seq` has `n` u16 slots (kmalloc'd above).
        unsafe { *seq.add(i) = i as u16 };
    }
    for i in (1..n).rev() {
        let j = (m.platform().random_u64() % (i as u64 + 1)) as usize;
        // SAFETY: `i` and `j` are below `n`.
        unsafe { ptr::swap(seq.add(i), seq.add(j)) };
    }
    s.random_seq = seq;
}

/// Allocates a `struct kmem_cache` (from the `kmem_cache` cache or the dead list).
fn alloc_cache_struct<P: Platform>(
    m: &SlabLayer<P>,
    list: &mut crate::slab::common::SlabList,
) -> Option<(*mut Cache<P>, u32)> {
    // SAFETY: the dead list under slab_mutex (held by the caller); entries are
    // `KmemCache::list` links.
    if let Some(l) = unsafe { list::list_first(&list.dead) } {
        // SAFETY: `l` is the first entry of the dead list, a live `KmemCache::list` link; the
        // caller holds slab_mutex, which guards the list and both of its neighbours, so the unlink
        // writes only linked, live entries.
        unsafe { list::list_del(l) };
        let p = kds::container_of!(l, Cache<P>, list);
        // SAFETY: a dead structure keeps its generation word valid.
        let gen = unsafe { (*p).gen.load(Ordering::Relaxed) };
        return Some((p, gen));
    }
    let kc = m.slab().kmem_cache.load(Ordering::Relaxed);
    // SAFETY: created at boot, never destroyed.
    let kc = unsafe { &*kc.cast::<Cache<P>>() };
    let o = alloc_inner(m, kc, GfpFlags::GFP_KERNEL, Location::caller(), 0)?;
    Some((o.as_ptr().cast(), 1))
}

/// `kmem_cache_create`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn kmem_cache_create<P: Platform>(
    m: &SlabLayer<P>,
    name: &str,
    size: usize,
    align: usize,
    flags: SlabFlags,
    ctor: Option<fn(*mut u8)>,
    sheaf_capacity: u32,
    min_order: u32,
) -> Result<CacheHandle, SlabError> {
    if name.is_empty() || name.len() > CACHE_NAME_LEN || name.contains(char::is_whitespace) {
        return Err(SlabError::BadName);
    }
    if size == 0
        || size > KMALLOC_MAX_SIZE
        || (align != 0 && !align.is_power_of_two())
        || align > PAGE_SIZE
    {
        return Err(SlabError::BadSize);
    }
    if m.slab().state.load(Ordering::Relaxed) < SlabBootState::Up as u8 {
        return Err(SlabError::NotReady);
    }
    let flags = flags.without(SlabFlags::OBJECT_POISON);
    // Lock order: slab_mutex (rank 1), cpu_section and below under it; docs/LOCKING.md.
    let mut list = m.slab().mutex.lock();
    let mergeable = sheaf_capacity == 0 && min_order == 0;
    if let Some(s) = mergeable
        .then(|| find_mergeable(m, size, align, flags, name, ctor, &mut list))
        .flatten()
    {
        // SAFETY: a live linked cache.
        let s = unsafe { &*s };
        s.refcount.fetch_add(1, Ordering::Relaxed);
        return Ok(handle_of(s));
    }
    let (p, gen) = alloc_cache_struct(m, &mut list).ok_or(SlabError::NoMemory)?;
    if let Err(e) = open_cache(
        m,
        p,
        name,
        size,
        align,
        flags,
        ctor,
        gen,
        (sheaf_capacity, min_order),
    ) {
        // SAFETY: `p` is a cache structure we own; keep it for reuse.
        unsafe {
            ListHead::init(ptr::addr_of_mut!((*p).list));
            list::list_add(ptr::addr_of_mut!((*p).list), &mut list.dead);
        }
        return Err(e);
    }
    // SAFETY: initialised by open_cache; link it (newest first, as Linux's list_add).
    unsafe { list::list_add(ptr::addr_of_mut!((*p).list), &mut list.caches) };
    list.count += 1;
    // SAFETY: `p` was initialised by `open_cache` and is now on the cache list: cache structures
    // are never freed while listed (they go to the dead list), so the reference is valid and shared
    // access is all it gives.
    Ok(handle_of(unsafe { &*p }))
}

/// `create_kmalloc_cache` / `create_boot_cache` for the kmalloc caches.
fn create_kmalloc_cache<P: Platform>(
    m: &SlabLayer<P>,
    ty: KmallocType,
    idx: u32,
) -> Result<(), SlabError> {
    let mut name = LineBuf::new();
    let _ = kmalloc_cache_name(ty, idx, &mut name);
    let size = kmalloc_size(idx);
    // kmalloc caches are naturally aligned to the largest power of two dividing their size.
    let align = 1usize << size.trailing_zeros();
    let flags = SlabFlags::KMALLOC | ty.cache_flags();
    // Lock order: slab_mutex (rank 1), cpu_section and below under it; docs/LOCKING.md.
    let mut list = m.slab().mutex.lock();
    let (p, gen) = alloc_cache_struct(m, &mut list).ok_or(SlabError::NoMemory)?;
    open_cache(m, p, name.as_str(), size, align, flags, None, gen, (0, 0))?;
    // SAFETY: initialised above.
    unsafe { list::list_add(ptr::addr_of_mut!((*p).list), &mut list.caches) };
    list.count += 1;
    m.slab().kmalloc[ty as usize][idx as usize].store(p.cast(), Ordering::Release);
    Ok(())
}

/// `kmem_cache_init` for SLUB: bootstraps `kmem_cache`, then the kmalloc caches.
pub(crate) fn kmem_cache_init<P: Platform>(m: &SlabLayer<P>) -> Result<(), SlabError> {
    let st = m.slab();
    // SAFETY: boot runs alone; the list head is in the pinned machine state.
    unsafe {
        // Lock order: slab_mutex (rank 1), boot; taken again below; docs/LOCKING.md.
        let mut l = st.mutex.lock();
        ListHead::init(&mut l.caches);
        ListHead::init(&mut l.dead);
    }

    // 1. A temporary kmem_cache in a page of its own (Linux's static boot_kmem_cache).
    let cache_size = core::mem::size_of::<Cache<P>>();
    let tmp_order = get_order(cache_size);
    let tmp_page = m
        .alloc_pages(
            GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO,
            Order::new(tmp_order),
        )
        .ok_or(SlabError::NoMemory)?;
    let tmp = m
        .page_address(tmp_page)
        .ok_or(SlabError::NoMemory)?
        .as_ptr::<Cache<P>>();
    open_cache(
        m,
        tmp,
        "kmem_cache",
        cache_size,
        0,
        SlabFlags::HWCACHE_ALIGN | SlabFlags::PANIC,
        None,
        1,
        (0, 0),
    )?;
    // SAFETY: initialised just above.
    let tmp_ref = unsafe { &*tmp };
    // 2. bootstrap(): allocate the real structure from itself and move into it.
    let real = alloc_inner(
        m,
        tmp_ref,
        GfpFlags::GFP_KERNEL,
        Location::caller(),
        cache_size,
    )
    .ok_or(SlabError::NoMemory)?
    .as_ptr()
    .cast::<Cache<P>>();
    // SAFETY: `real` is an object of the right size. The temporary is ours; the only links
    // into it are its own list heads, so the copy gets fresh heads and the slabs on the
    // temporary's lists (debug caches keep their slabs there) move over. Slab pages point at
    // their cache by `mapping`: fix it.
    unsafe {
        ptr::copy_nonoverlapping(tmp.cast::<u8>(), real.cast::<u8>(), cache_size);
        // Lock order: &n->list_lock (rank 4), the boot cache's taken under it; docs/LOCKING.md.
        let mut n = (*real).node.list_lock.lock();
        ListHead::init(&mut n.partial);
        ListHead::init(&mut n.full);
        // A second lock of the class, nested (`&n->list_lock/1`): the only place two are held.
        // Lock order: &n->list_lock/1 (rank 4'), under the real cache's; docs/LOCKING.md.
        let mut old = (*tmp).node.list_lock.lock_nested(1);
        for (from, to) in [
            (
                &mut old.partial as *mut ListHead,
                &mut n.partial as *mut ListHead,
            ),
            (&mut old.full, &mut n.full),
        ] {
            while let Some(l) = list::list_first(from) {
                list::list_del(l);
                PagePtr::from_lru(l).set_mapping(real as usize);
                list::list_add_tail(l, to);
            }
        }
        drop(old);
        drop(n);
        ListHead::init(ptr::addr_of_mut!((*real).list));
    }
    {
        // Lock order: cpu_section (rank 3), boot; docs/LOCKING.md.
        let g = m.cpu_guard();
        // SAFETY: we hold this CPU's section.
        let c = unsafe { (*real).cpu(g.cpu()) };
        if let Some(slab) = Slab::from_page(c.slab) {
            slab.0.set_mapping(real as usize);
        }
    }
    m.__free_pages(tmp_page, Order::new(tmp_order));
    {
        // Lock order: slab_mutex (rank 1), boot, again; docs/LOCKING.md.
        let mut list = st.mutex.lock();
        // SAFETY: initialised above; link it.
        unsafe { list::list_add(ptr::addr_of_mut!((*real).list), &mut list.caches) };
        list.count += 1;
    }
    // Boot caches are exempt from merging (create_boot_cache sets refcount -1).
    // SAFETY: initialised above.
    unsafe { (*real).refcount.store(-1, Ordering::Relaxed) };
    st.kmem_cache.store(real.cast(), Ordering::Release);
    st.state
        .store(SlabBootState::Partial as u8, Ordering::Release);

    // 3. create_kmalloc_caches: per type, 96 and 192 first, then the powers of two.
    for ty in KmallocType::ALL {
        for idx in [1u32, 2]
            .into_iter()
            .chain(KMALLOC_SHIFT_LOW..=KMALLOC_SHIFT_HIGH)
        {
            create_kmalloc_cache(m, ty, idx)?;
        }
    }
    st.state.store(SlabBootState::Up as u8, Ordering::Release);
    // init_freelist_randomization for the caches made before kmalloc worked.
    walk_caches_mut(m);
    st.state.store(SlabBootState::Full as u8, Ordering::Release);
    // Leave the boot CPU's page lists as the page allocator's boot left them.
    m.drain_local_pages();
    m.printk(
        LogLevel::Info,
        format_args!(
            "SLUB: HWalign={}, Order={}-{}, MinObjects={}, CPUs={}, Nodes={}",
            crate::slab::common::L1_CACHE_BYTES,
            st.order.min_order,
            st.order.max_order,
            st.order.min_objects,
            m.nr_cpus(),
            m.nr_online_nodes()
        ),
    );
    if st.debug.enabled() {
        m.printk(
            LogLevel::Info,
            format_args!("SLUB: slub_debug enabled, flags {}", st.debug.global),
        );
    }
    Ok(())
}

fn walk_caches_mut<P: Platform>(m: &SlabLayer<P>) {
    let mut ptrs = [ptr::null_mut::<Cache<P>>(); 64];
    let mut n = 0;
    walk_caches(m, &mut |s| {
        if n < ptrs.len() {
            ptrs[n] = s as *const Cache<P> as *mut Cache<P>;
            n += 1;
        }
    });
    for p in &ptrs[..n] {
        // SAFETY: boot runs alone; the caches are live and nobody else reads random_seq yet.
        init_random_seq(m, unsafe { &mut **p });
    }
}
