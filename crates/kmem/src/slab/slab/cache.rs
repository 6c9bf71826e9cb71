//! Cache management of SLAB (mm/slab.c, mm/slab_common.c): `__kmem_cache_create` (sizes,
//! debug layout, management, colouring), `kmem_cache_init` (the static `kmem_cache` cache,
//! the kmalloc caches from 32 bytes, then `enable_cpucache` for all as
//! `kmem_cache_init_late` does), `enable_cpucache` / `do_tune_cpucache` /
//! `setup_kmem_cache_node`, `cache_reap`, shrink, destroy, `slab_dead_cpu`, `get_slabinfo`
//! and `slabinfo_write`.

use core::panic::Location;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

use kds::list::{self, ListHead};

use crate::addr::{Order, PAGE_SIZE};
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::mm::printk::LineBuf;
use crate::numa::MAX_NUMA_NODES;
use crate::platform::Platform;
use crate::slab::common::{
    calculate_alignment, get_order, kmalloc_cache_name, kmalloc_size, CacheHandle, KmallocType,
    SlabBootState, SlabError, SlabFlags, SlabInfo, SlabLayout, SlabStats, SlabTunables,
    KMALLOC_MAX_SIZE, KMALLOC_SHIFT_HIGH, L1_CACHE_BYTES,
};
use crate::slab::SlabLayer;

use super::grow::choose_management;
use super::{
    alloc, alloc_arraycache, free_meta, handle_of, kmalloc_cache_ptr, walk_caches, ArrayCache,
    Cache, CpuSlot, KmemCache, NodeLists, BYTES_PER_WORD, CACHE_NAME_LEN, CFLGS_OFF_SLAB,
    REAPTIMEOUT_NODE_S, REDZONE_ALIGN, SLAB_KMALLOC_SHIFT_LOW, SLAB_OBJ_MIN_SIZE, USER_WORDS,
};

/// `SLAB_MAX_ORDER_HI` / `SLAB_MAX_ORDER_LO`: `slab_max_order` is 1 on machines with more
/// than 32 MiB (`kmem_cache_init`), unless `slab_max_order=` says otherwise.
fn slab_max_order<P: Platform>(m: &SlabLayer<P>) -> u32 {
    let set = m.slab().order.max_order;
    if set != crate::slab::common::DEFAULT_SLUB_MAX_ORDER {
        return set;
    }
    u32::from(m.totalram_pages() > (32 << 20) / PAGE_SIZE)
}

fn set_name(buf: &mut [u8; CACHE_NAME_LEN], name: &str) -> u32 {
    let n = name.len().min(CACHE_NAME_LEN);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    n as u32
}

/// The per-CPU slots of a cache: zeroed, in pages of their own. Returns them and the order.
fn alloc_cpu_slots<P: Platform>(m: &SlabLayer<P>) -> Result<(*mut CpuSlot, u32), SlabError> {
    let bytes = m.platform().possible_cpus() * core::mem::size_of::<CpuSlot>();
    let order = get_order(bytes);
    let page = m
        .alloc_pages(
            GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO,
            Order::new(order),
        )
        .ok_or(SlabError::NoMemory)?;
    let p = m
        .page_address(page)
        .ok_or(SlabError::NoMemory)?
        .as_ptr::<CpuSlot>();
    Ok((p, order))
}

/// The stride, object offset, alignment and flags of `__kmem_cache_create`.
fn debug_layout(
    object_size: usize,
    align: usize,
    mut flags: SlabFlags,
) -> (usize, u32, usize, SlabFlags) {
    let mut size = (object_size + BYTES_PER_WORD as usize - 1) & !(BYTES_PER_WORD as usize - 1);
    let mut ralign = BYTES_PER_WORD as usize;
    if flags.contains(SlabFlags::RED_ZONE) {
        ralign = REDZONE_ALIGN as usize;
        size = (size + REDZONE_ALIGN as usize - 1) & !(REDZONE_ALIGN as usize - 1);
    }
    ralign = ralign.max(align);
    // Red zones and the user word need word alignment of the object end.
    if ralign > 8 {
        flags = flags.without(SlabFlags::RED_ZONE | SlabFlags::STORE_USER);
    }
    let mut obj_offset = 0;
    if flags.contains(SlabFlags::RED_ZONE) {
        obj_offset = 8;
        size += 16;
    }
    if flags.contains(SlabFlags::STORE_USER) {
        size += USER_WORDS as usize;
    }
    size = (size + ralign - 1) & !(ralign - 1);
    if size < SLAB_OBJ_MIN_SIZE {
        size = (SLAB_OBJ_MIN_SIZE + ralign - 1) & !(ralign - 1);
    }
    (size, obj_offset, ralign, flags)
}

/// `__kmem_cache_create` into the structure at `p`, linked nowhere yet.
#[allow(clippy::too_many_arguments)]
fn open_cache<P: Platform>(
    m: &SlabLayer<P>,
    p: *mut Cache<P>,
    name: &str,
    object_size: usize,
    align: usize,
    flags: SlabFlags,
    ctor: Option<fn(*mut u8)>,
    gen: u32,
) -> Result<(), SlabError> {
    let flags = m.slab().debug.cache_flags(flags, name);
    let align = calculate_alignment(flags, align, object_size);
    let (size, obj_offset, align, flags) = debug_layout(object_size, align, flags);
    let colour_off = L1_CACHE_BYTES.max(align);
    let freelist_cache = |n: usize| {
        kmalloc_cache_ptr(m, n, GfpFlags::GFP_KERNEL).map(|c| (c.size as usize, c.off_slab()))
    };
    let (g, cflgs, colour) = choose_management(
        size,
        object_size,
        flags,
        ctor.is_some(),
        colour_off,
        slab_max_order(m),
        &freelist_cache,
    )
    .ok_or(SlabError::BadSize)?;
    let mut allocflags = GfpFlags::__GFP_COMP;
    if flags.contains(SlabFlags::CACHE_DMA) {
        allocflags |= GfpFlags::__GFP_DMA;
    }
    if flags.contains(SlabFlags::CACHE_DMA32) {
        allocflags |= GfpFlags::__GFP_DMA32;
    }
    if flags.contains(SlabFlags::RECLAIM_ACCOUNT) {
        allocflags |= GfpFlags::__GFP_RECLAIMABLE;
    }
    let now = m.platform().jiffies();
    let hz = m.platform().hz();
    // Staggered by cache (and node), as `cache_reap`'s
    // `REAPTIMEOUT_NODE + ((unsigned long)cachep) % REAPTIMEOUT_NODE`.
    let next_reap = |nid: usize| {
        now + REAPTIMEOUT_NODE_S * hz + (p as u64 + nid as u64) % (REAPTIMEOUT_NODE_S * hz).max(1)
    };
    let numa = m.alloc_numa_part::<P::RawLock>(g.num, &next_reap)?;
    let (cpu_cache, cpu_order) = alloc_cpu_slots(m).inspect_err(|_| free_meta(m, numa.cast()))?;
    let mut name_buf = [0u8; CACHE_NAME_LEN];
    let name_len = set_name(&mut name_buf, name);
    let cache = KmemCache {
        cpu_cache,
        cpu_order,
        gen: AtomicU32::new(gen),
        batchcount: AtomicU32::new(0),
        limit: AtomicU32::new(0),
        shared: AtomicU32::new(0),
        size: size as u32,
        object_size: AtomicU32::new(object_size as u32),
        align: align as u32,
        num: g.num,
        gfporder: g.order,
        flags,
        cflgs,
        allocflags,
        colour,
        colour_off: colour_off as u32,
        freelist_size: g.num * super::IDX_SIZE as u32,
        obj_offset,
        ctor,
        refcount: AtomicI32::new(1),
        name_len,
        name: name_buf,
        list: ListHead::new(),
        node0: crate::locking::Lock::new(
            &crate::locking::LIST_LOCK,
            new_node_lists(0, g.num, next_reap(0)),
        ),
        numa,
        allochit: AtomicU64::new(0),
        allocmiss: AtomicU64::new(0),
        freehit: AtomicU64::new(0),
        freemiss: AtomicU64::new(0),
        alive: AtomicBool::new(true),
    };
    // SAFETY: `p` is fresh memory of the right size and alignment, owned by us.
    unsafe {
        ptr::write(p, cache);
        for nid in 0..m.nr_online_nodes().min(MAX_NUMA_NODES) {
            let node = (*p).node(nid);
            if let Some(ld) = m.lockdep() {
                // The validator outlives every cache (it lives as long as the platform).
                node.attach(ld);
            }
            // Lock order: &n->list_lock (rank 4), under slab_mutex; docs/LOCKING.md.
            let mut n = node.lock();
            ListHead::init(&mut n.slabs_partial);
            ListHead::init(&mut n.slabs_full);
            ListHead::init(&mut n.slabs_free);
            if !numa.is_null() {
                n.alien = ptr::addr_of_mut!((*numa).alien[nid]);
            }
        }
        ListHead::init(ptr::addr_of_mut!((*p).list));
    }
    Ok(())
}

/// A node's empty `kmem_cache_node` (list heads initialised once in place).
pub(super) fn new_node_lists(nid: usize, num: u32, next_reap: u64) -> NodeLists {
    NodeLists {
        slabs_partial: ListHead::new(),
        slabs_full: ListHead::new(),
        slabs_free: ListHead::new(),
        total_slabs: 0,
        free_slabs: 0,
        free_objects: 0,
        free_limit: num as usize,
        colour_next: 0,
        free_touched: false,
        next_reap,
        shared: ptr::null_mut(),
        grown: 0,
        reaped: 0,
        nid: nid as u8,
        alien: ptr::null_mut(),
    }
}

/// `enable_cpucache`: the default tunables by object size.
pub(super) fn default_tunables<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>) -> SlabTunables {
    let size = s.size as usize;
    let mut limit = if size > 131072 {
        1
    } else if size > PAGE_SIZE {
        8
    } else if size > 1024 {
        24
    } else if size > 256 {
        54
    } else {
        120
    };
    // On one CPU a shared array is only a larger limit, less efficient: off.
    let shared = if size <= PAGE_SIZE && m.nr_cpus() > 1 {
        8
    } else {
        0
    };
    if s.debug() {
        // DEBUG: long batches mean long stretches with interrupts off.
        limit = limit.min(32);
    }
    SlabTunables {
        limit,
        batchcount: limit.div_ceil(2),
        shared,
    }
}

/// `do_tune_cpucache` + `setup_kmem_cache_nodes`. Every CPU that has used the cache is
/// offered a new array, installed at its next operation on the cache; CPUs that have not get
/// one when they first use it (`request_array`). `fresh`: nobody can have used the cache;
/// the machine's CPUs get their arrays at once.
pub(super) fn do_tune_cpucache<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    t: SlabTunables,
    fresh: bool,
) -> Result<(), Errno> {
    let cpus = m.platform().possible_cpus();
    let shared_entries = u64::from(t.shared) * u64::from(t.batchcount);
    if shared_entries > u64::from(u32::MAX) {
        return Err(Errno::ENOMEM);
    }
    // One new shared array per online node (`setup_kmem_cache_node`).
    let nr_nodes = m.nr_online_nodes().min(MAX_NUMA_NODES);
    let mut new_shared = [ptr::null_mut::<ArrayCache>(); MAX_NUMA_NODES];
    if t.shared > 0 {
        for nid in 0..nr_nodes {
            match alloc_arraycache(m, shared_entries as u32, 0xbaad_f00d) {
                Some(a) => new_shared[nid] = a,
                None => {
                    new_shared.iter().for_each(|&a| free_meta(m, a.cast()));
                    return Err(Errno::ENOMEM);
                }
            }
        }
    }
    // Can an array of `limit` entries be made at all? (ENOMEM before anything changes.)
    let Some(mut probe) = alloc_arraycache(m, t.limit, t.batchcount) else {
        new_shared.iter().for_each(|&a| free_meta(m, a.cast()));
        return Err(Errno::ENOMEM);
    };
    // Tunables first, then the slots (SeqCst both ways, against `request_array`).
    s.batchcount.store(t.batchcount, Ordering::SeqCst);
    s.limit.store(t.limit, Ordering::SeqCst);
    s.shared.store(t.shared, Ordering::SeqCst);
    if fresh {
        // enable_cpucache of a new cache: arrays for the machine's CPUs at once (Linux's
        // possible CPUs); other CPU slots (hosted threads) ask for theirs on first use.
        for cpu in 0..cpus.min(m.nr_cpus()) {
            let a = if probe.is_null() {
                alloc_arraycache(m, t.limit, t.batchcount).unwrap_or(ptr::null_mut())
            } else {
                core::mem::replace(&mut probe, ptr::null_mut())
            };
            // SAFETY: `cpu` is a possible CPU.
            let slot = unsafe { s.cpu(cpu) };
            if !a.is_null() {
                // SAFETY: a fresh cache: no CPU uses its slots yet.
                unsafe { slot.set_ac(a) };
                slot.requested.store(true, Ordering::SeqCst);
            }
        }
    } else {
        for cpu in 0..cpus {
            // SAFETY: `cpu` is a possible CPU; only the slot's atomics are used.
            let slot = unsafe { s.cpu(cpu) };
            if !slot.requested.load(Ordering::SeqCst) {
                continue;
            }
            let a = if probe.is_null() {
                alloc_arraycache(m, t.limit, t.batchcount).unwrap_or(ptr::null_mut())
            } else {
                core::mem::replace(&mut probe, ptr::null_mut())
            };
            if !a.is_null() {
                free_meta(m, slot.pending.swap(a, Ordering::AcqRel).cast());
            }
        }
    }
    free_meta(m, probe.cast());
    for (nid, &shared) in new_shared.iter().enumerate().take(nr_nodes) {
        setup_node(m, s, t, nid, shared);
    }
    Ok(())
}

/// `setup_kmem_cache_node` with `force_change`: node `nid`'s new shared array and
/// `free_limit`, and its alien caches when it has none yet (node.rs).
fn setup_node<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    t: SlabTunables,
    nid: usize,
    new_shared: *mut ArrayCache,
) {
    m.setup_alien_caches(s, nid, t.limit);
    let mut dl = ListHead::new();
    // SAFETY: a local list head that does not move while linked.
    unsafe { ListHead::init(&mut dl) };
    let old = {
        // Lock order: &n->list_lock (rank 4), under slab_mutex; docs/LOCKING.md.
        let mut n = s.node(nid).lock();
        let old = core::mem::replace(&mut n.shared, new_shared);
        if !old.is_null() {
            // SAFETY: the old shared array, under the list lock.
            let objs = unsafe {
                core::slice::from_raw_parts(ArrayCache::entries(old), (*old).avail as usize)
            };
            m.free_block(s, &mut n, objs, &mut dl);
        }
        n.free_limit = (1 + m.nr_cpus_node(nid)) * t.batchcount as usize + s.num as usize;
        old
    };
    m.slabs_destroy(s, &mut dl);
    free_meta(m, old.cast());
}

/// `enable_cpucache`.
fn enable_cpucache<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    fresh: bool,
) -> Result<(), SlabError> {
    let t = default_tunables(m, s);
    do_tune_cpucache(m, s, t, fresh).map_err(|_| {
        m.printk(
            crate::platform::LogLevel::Err,
            format_args!("enable_cpucache failed for {}, error {}", s.name(), -12),
        );
        SlabError::NoMemory
    })
}

/// `slab_unmergeable`.
fn unmergeable<L: lock_api::RawMutex>(s: &KmemCache<L>) -> bool {
    s.flags.intersects(SlabFlags::NEVER_MERGE)
        || s.ctor.is_some()
        || s.refcount.load(Ordering::Relaxed) < 0
        || !s.alive.load(Ordering::Relaxed)
}

/// `find_mergeable` (mm/slab_common.c, with SLAB's alignment rule).
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
    // SAFETY: the cache list under slab_mutex (the caller holds it).
    for l in unsafe { list::list_for_each_prev(head) } {
        // SAFETY: linked caches are live.
        let s = unsafe { &*kds::container_of!(l, Cache<P>, list) };
        let ss = s.size as usize;
        if unmergeable(s)
            || size > ss
            || flags.bits() & SlabFlags::MERGE_SAME.bits()
                != s.flags.bits() & SlabFlags::MERGE_SAME.bits()
            || ss & !(align - 1) != ss
            || ss - size >= 8
            || align > s.align as usize
            || !(s.align as usize).is_multiple_of(align)
        {
            continue;
        }
        return Some(s);
    }
    None
}

/// Allocates a `struct kmem_cache` (from the `kmem_cache` cache or the dead list).
fn alloc_cache_struct<P: Platform>(
    m: &SlabLayer<P>,
    list: &mut crate::slab::common::SlabList,
) -> Option<(*mut Cache<P>, u32)> {
    // SAFETY: the dead list under slab_mutex (held by the caller).
    if let Some(l) = unsafe { list::list_first(&list.dead) } {
        // SAFETY: `l` is a linked entry of the dead list (just returned by `list_first`),
        // whose neighbours are live list heads; the list is under slab_mutex, held.
        unsafe { list::list_del(l) };
        let p = kds::container_of!(l, Cache<P>, list);
        // SAFETY: a dead structure keeps its generation word valid.
        let gen = unsafe { (*p).gen.load(Ordering::Relaxed) };
        return Some((p, gen));
    }
    let kc = m.slab().kmem_cache.load(Ordering::Acquire);
    // SAFETY: created at boot, never destroyed.
    let kc = unsafe { &*kc.cast::<Cache<P>>() };
    let o = alloc::cache_alloc(m, kc, GfpFlags::GFP_KERNEL, Location::caller())?;
    Some((o.as_ptr().cast(), 1))
}

/// `kmem_cache_create`.
pub(super) fn kmem_cache_create<P: Platform>(
    m: &SlabLayer<P>,
    name: &str,
    size: usize,
    align: usize,
    flags: SlabFlags,
    ctor: Option<fn(*mut u8)>,
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
    if let Some(s) = find_mergeable(m, size, align, flags, name, ctor, &mut list) {
        // SAFETY: a live linked cache.
        let s = unsafe { &*s };
        s.refcount.fetch_add(1, Ordering::Relaxed);
        // __kmem_cache_alias: the object size grows to what the alias asked for, so that
        // ksize (SLAB's slab_ksize is object_size) and kzalloc cover the whole request.
        s.object_size.fetch_max(size as u32, Ordering::Relaxed);
        return Ok(handle_of(s));
    }
    let (p, gen) = alloc_cache_struct(m, &mut list).ok_or(SlabError::NoMemory)?;
    let r = open_cache(m, p, name, size, align, flags, ctor, gen).and_then(|()| {
        // SAFETY: initialised just above, not yet visible to anyone.
        enable_cpucache(m, unsafe { &*p }, true)
    });
    if let Err(e) = r {
        // SAFETY: `p` is a cache structure we own; keep it for reuse.
        unsafe {
            ListHead::init(ptr::addr_of_mut!((*p).list));
            list::list_add(ptr::addr_of_mut!((*p).list), &mut list.dead);
        }
        return Err(e);
    }
    // SAFETY: initialised; link it (newest first).
    unsafe { list::list_add(ptr::addr_of_mut!((*p).list), &mut list.caches) };
    list.count += 1;
    // SAFETY: `p` is a fully initialised cache structure that is never freed (cache
    // structures are recycled through the dead list, not returned), so a shared reference
    // to it is valid for as long as a handle is used.
    Ok(handle_of(unsafe { &*p }))
}

/// `create_kmalloc_cache` with `ARCH_KMALLOC_FLAGS` (`SLAB_HWCACHE_ALIGN`): power-of-two
/// sizes are aligned to their size (`create_boot_cache`).
fn create_kmalloc_cache<P: Platform>(
    m: &SlabLayer<P>,
    ty: KmallocType,
    idx: u32,
) -> Result<(), SlabError> {
    let mut name = LineBuf::new();
    let _ = kmalloc_cache_name(ty, idx, &mut name);
    let size = kmalloc_size(idx);
    let align = if size.is_power_of_two() { size } else { 8 };
    let flags = SlabFlags::KMALLOC | SlabFlags::HWCACHE_ALIGN | ty.cache_flags();
    // Lock order: slab_mutex (rank 1), cpu_section and below under it; docs/LOCKING.md.
    let mut list = m.slab().mutex.lock();
    let (p, gen) = alloc_cache_struct(m, &mut list).ok_or(SlabError::NoMemory)?;
    open_cache(
        m,
        p,
        name.as_str(),
        size,
        align.min(PAGE_SIZE << 1),
        flags,
        None,
        gen,
    )?;
    // SAFETY: initialised above.
    unsafe { list::list_add(ptr::addr_of_mut!((*p).list), &mut list.caches) };
    list.count += 1;
    m.slab().kmalloc[ty as usize][idx as usize].store(p.cast(), Ordering::Release);
    Ok(())
}

/// `kmem_cache_init` + `kmem_cache_init_late` of SLAB.
pub(super) fn kmem_cache_init<P: Platform>(m: &SlabLayer<P>) -> Result<(), SlabError> {
    let st = m.slab();
    {
        // Lock order: slab_mutex (rank 1), boot; docs/LOCKING.md.
        let mut l = st.mutex.lock();
        // SAFETY: boot runs alone; the list heads are in the pinned machine state.
        unsafe {
            ListHead::init(&mut l.caches);
            ListHead::init(&mut l.dead);
        }
    }
    // 1. kmem_cache_boot: SLAB's `kmem_cache` cache lives in static memory (here: pages of
    //    its own, never freed).
    let cache_size = core::mem::size_of::<Cache<P>>();
    let page = m
        .alloc_pages(
            GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO,
            Order::new(get_order(cache_size)),
        )
        .ok_or(SlabError::NoMemory)?;
    let kc = m
        .page_address(page)
        .ok_or(SlabError::NoMemory)?
        .as_ptr::<Cache<P>>();
    open_cache(
        m,
        kc,
        "kmem_cache",
        cache_size,
        0,
        SlabFlags::HWCACHE_ALIGN | SlabFlags::PANIC,
        None,
        1,
    )?;
    {
        // Lock order: slab_mutex (rank 1), boot; docs/LOCKING.md.
        let mut l = st.mutex.lock();
        // SAFETY: initialised above; link it.
        unsafe { list::list_add(ptr::addr_of_mut!((*kc).list), &mut l.caches) };
        l.count += 1;
    }
    // SAFETY: `kc` was initialised by `open_cache` above and is never freed; `refcount` is
    // an atomic, so a store through the shared structure races with nothing. Boot caches
    // are never merged.
    unsafe { (*kc).refcount.store(-1, Ordering::Relaxed) };
    st.kmem_cache.store(kc.cast(), Ordering::Release);
    st.state
        .store(SlabBootState::Partial as u8, Ordering::Release);
    // 2. create_kmalloc_caches: per type the powers of two from 32, 96 after 64 and 192 after
    //    128.
    for ty in KmallocType::ALL {
        for i in SLAB_KMALLOC_SHIFT_LOW..=KMALLOC_SHIFT_HIGH {
            create_kmalloc_cache(m, ty, i)?;
            if i == 6 {
                create_kmalloc_cache(m, ty, 1)?;
            }
            if i == 7 {
                create_kmalloc_cache(m, ty, 2)?;
            }
        }
    }
    st.state.store(SlabBootState::Up as u8, Ordering::Release);
    // 3. kmem_cache_init_late: per-CPU arrays for every cache.
    let mut caches = [ptr::null::<Cache<P>>(); 128];
    let mut nr = 0;
    walk_caches(m, &mut |s| {
        if nr < caches.len() {
            caches[nr] = s;
            nr += 1;
        }
    });
    for &s in &caches[..nr] {
        // SAFETY: boot runs alone; the caches are live and no CPU uses them yet.
        enable_cpucache(m, unsafe { &*s }, true)?;
    }
    init_reap_ticks(m)?;
    st.state.store(SlabBootState::Full as u8, Ordering::Release);
    m.drain_local_pages();
    Ok(())
}

/// `start_cpu_timer` for every CPU: each CPU's first periodic reap is due about a second
/// after boot, staggered by CPU (`__round_jiffies_relative(HZ, cpu)`); then every
/// `REAPTIMEOUT_AC`. The per-CPU "next reap" clocks live in one kmalloc object.
fn init_reap_ticks<P: Platform>(m: &SlabLayer<P>) -> Result<(), SlabError> {
    let cpus = m.platform().possible_cpus();
    let t = m
        .kmalloc(
            cpus * core::mem::size_of::<AtomicU64>(),
            GfpFlags::GFP_KERNEL,
        )
        .ok_or(SlabError::NoMemory)?
        .as_ptr()
        .cast::<AtomicU64>();
    let first = m.platform().jiffies() + m.platform().hz();
    for cpu in 0..cpus {
        // SAFETY: the object has room for `cpus` u64s and kmalloc aligns it to 8 at least.
        unsafe { t.add(cpu).write(AtomicU64::new(first + cpu as u64)) };
    }
    m.slab().reap_ticks.store(t, Ordering::Release);
    Ok(())
}

/// Runs `f` on the calling CPU's slot of `s` and the CPU's node inside a CPU section, then
/// frees an array the slot replaced.
pub(super) fn with_cpu_slot<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    f: impl FnOnce(&CpuSlot, usize),
) {
    let old = {
        // Lock order: cpu_section (rank 3), &n->list_lock under it; docs/LOCKING.md.
        let g = m.cpu_guard();
        // SAFETY: a CPU section's CPU is a possible CPU.
        let slot = unsafe { s.cpu(g.cpu()) };
        let nid = m.cpu_to_node(g.cpu());
        let old = m.take_pending(s, slot, nid);
        f(slot, nid);
        old
    };
    free_meta(m, old.cast());
}

/// `cache_reap` for the calling CPU: every cache, under `slab_mutex`.
pub(super) fn cache_reap<P: Platform>(m: &SlabLayer<P>) {
    walk_caches(m, &mut |s| {
        with_cpu_slot(m, s, |slot, nid| m.reap_cpu(s, slot, nid, true))
    });
}

/// Drains the calling CPU's array, every node's alien caches (`drain_alien_cache`) and
/// shared array back to the slabs.
pub(super) fn drain_local<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>) {
    with_cpu_slot(m, s, |slot, nid| {
        // SAFETY: inside the slot's CPU section (with_cpu_slot).
        let ac = unsafe { slot.ac() };
        if !ac.is_null() {
            m.drain_whole_array(s, ac, nid);
        }
    });
    m.drain_all_aliens(s);
    m.drain_shared(s);
}

/// `__kmem_cache_shrink`: drains this CPU's array, the alien caches and the shared arrays,
/// frees every free slab of every node. Returns whether slabs remain.
pub(super) fn shrink<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>) -> bool {
    drain_local(m, s);
    let mut left = false;
    for nid in 0..m.nr_online_nodes().min(MAX_NUMA_NODES) {
        m.drain_freelist(s, nid, usize::MAX);
        // Lock order: &n->list_lock (rank 4); docs/LOCKING.md.
        left |= s.node(nid).lock().total_slabs != 0;
    }
    left
}

/// Drains every CPU's arrays (the caller guarantees nobody uses them) and the shared array.
fn drain_all_cpus<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>, only: Option<usize>) {
    for cpu in 0..m.platform().possible_cpus() {
        if only.is_some_and(|c| c != cpu) {
            continue;
        }
        // SAFETY: `cpu` is a possible CPU.
        let slot = unsafe { s.cpu(cpu) };
        // SAFETY: the cache is quiescent / the CPU is dead (callers' guarantee).
        let ac = unsafe { slot.ac() };
        let nid = m.cpu_to_node(cpu);
        if !ac.is_null() {
            m.drain_whole_array(s, ac, nid);
        }
        let pending = slot.pending.load(Ordering::Acquire);
        if !pending.is_null() {
            m.drain_whole_array(s, pending, nid);
        }
    }
    m.drain_all_aliens(s);
    m.drain_shared(s);
}

/// `kmem_cache_destroy`.
pub(super) fn destroy<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    caller: &'static Location<'static>,
) {
    // Lock order: slab_mutex (rank 1), all of ranks 3-7 under it; docs/LOCKING.md.
    let mut list = m.slab().mutex.lock();
    if s.refcount.fetch_sub(1, Ordering::Relaxed) != 1 {
        if s.refcount.load(Ordering::Relaxed) < 0 {
            s.refcount.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    drain_all_cpus(m, s, None);
    drop(list);
    let left = shrink(m, s);
    list = m.slab().mutex.lock();
    if left {
        s.refcount.store(1, Ordering::Relaxed);
        drop(list);
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
    // SAFETY: linked on slab_caches; we hold slab_mutex.
    unsafe { list::list_del(ptr::addr_of!(s.list).cast_mut()) };
    list.count -= 1;
    s.gen.fetch_add(1, Ordering::Relaxed);
    s.alive.store(false, Ordering::Relaxed);
    drop(list);
    for cpu in 0..m.platform().possible_cpus() {
        // SAFETY: `cpu` is a possible CPU.
        let slot = unsafe { s.cpu(cpu) };
        // SAFETY: quiescent (caller's guarantee) and unlinked.
        let ac = unsafe { slot.ac() };
        // SAFETY: `set_ac` has `ac`'s condition: the cache is quiescent (the caller of
        // destroy guarantees no other user) and unlinked from slab_caches, so no CPU reads
        // this slot concurrently.
        unsafe { slot.set_ac(ptr::null_mut()) };
        slot.requested.store(false, Ordering::Relaxed);
        free_meta(m, ac.cast());
        free_meta(
            m,
            slot.pending.swap(ptr::null_mut(), Ordering::AcqRel).cast(),
        );
    }
    for nid in 0..m.nr_online_nodes().min(MAX_NUMA_NODES) {
        let mut alien = [ptr::null_mut::<ArrayCache>(); MAX_NUMA_NODES];
        // Lock order: &n->list_lock (rank 4), alone; docs/LOCKING.md.
        let shared = {
            let mut n = s.node(nid).lock();
            for (home, a) in alien.iter_mut().enumerate() {
                *a = n.alien(home);
                n.set_alien(home, ptr::null_mut());
            }
            core::mem::replace(&mut n.shared, ptr::null_mut())
        };
        free_meta(m, shared.cast());
        alien.iter().for_each(|&a| free_meta(m, a.cast()));
    }
    // The node structures of a dead cache: nobody reaches them any more (stale handles fail
    // their generation check); `open_cache` makes new ones if the structure is reused.
    free_meta(m, s.numa.cast());
    if let Some(pg) = m.virt_to_page(crate::addr::VirtAddr::new(s.cpu_cache as usize)) {
        m.__free_pages(pg, Order::new(s.cpu_order));
    }
    // Lock order: slab_mutex (rank 1), again: parking the cache on `dead`; docs/LOCKING.md.
    let mut list = m.slab().mutex.lock();
    // SAFETY: unlinked above; the dead list is under slab_mutex.
    unsafe { list::list_add(ptr::addr_of!(s.list).cast_mut(), &mut list.dead) };
}

/// `slab_dead_cpu`: gives the dead CPU's array objects back and trims the free slabs.
///
/// # Safety
/// No thread uses `cpu`'s per-CPU data during the call.
pub(super) unsafe fn slab_cpu_dead<P: Platform>(m: &SlabLayer<P>, cpu: usize) {
    walk_caches(m, &mut |s| {
        drain_all_cpus(m, s, Some(cpu));
    });
}

/// `get_slabinfo`.
pub(super) fn info_of<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>) -> SlabInfo {
    // get_slabinfo: the sums over the nodes (for_each_kmem_cache_node).
    let (mut total_slabs, mut free_slabs, mut free_objects, mut shared_avail) = (0, 0, 0, 0);
    for nid in 0..m.nr_online_nodes().min(MAX_NUMA_NODES) {
        // Lock order: &n->list_lock (rank 4), maybe under slab_mutex; docs/LOCKING.md.
        let n = s.node(nid).lock();
        total_slabs += n.total_slabs;
        free_slabs += n.free_slabs;
        free_objects += n.free_objects;
        if !n.shared.is_null() {
            // SAFETY: the shared array under the list lock.
            shared_avail += unsafe { (*n.shared).avail as usize };
        }
    }
    let num_objs = total_slabs * s.num as usize;
    SlabInfo {
        active_objs: num_objs - free_objects,
        num_objs,
        objsize: s.size as usize,
        object_size: s.object_size.load(Ordering::Relaxed) as usize,
        objperslab: s.num,
        pagesperslab: 1 << s.gfporder,
        num_slabs: total_slabs,
        partial_slabs: total_slabs - free_slabs,
        refcount: s.refcount.load(Ordering::Relaxed),
        tunables: SlabTunables {
            limit: s.limit.load(Ordering::Relaxed),
            batchcount: s.batchcount.load(Ordering::Relaxed),
            shared: s.shared.load(Ordering::Relaxed),
        },
        active_slabs: total_slabs - free_slabs,
        shared_avail,
    }
}

/// SLAB's `STATS` counters in SLUB's statistics record.
pub(super) fn stats_of<P: Platform>(s: &Cache<P>) -> SlabStats {
    let (mut grown, mut reaped) = (0, 0);
    let nr_nodes = if s.numa.is_null() { 1 } else { MAX_NUMA_NODES };
    for nid in 0..nr_nodes {
        // Lock order: &n->list_lock (rank 4); docs/LOCKING.md.
        let n = s.node(nid).lock();
        grown += n.grown;
        reaped += n.reaped;
    }
    SlabStats {
        alloc_fastpath: s.allochit.load(Ordering::Relaxed),
        alloc_slowpath: s.allocmiss.load(Ordering::Relaxed),
        free_fastpath: s.freehit.load(Ordering::Relaxed),
        free_slowpath: s.freemiss.load(Ordering::Relaxed),
        alloc_slab: grown,
        free_slab: reaped,
        ..SlabStats::default()
    }
}

/// The object layout of a cache.
pub(super) fn layout_of<P: Platform>(s: &Cache<P>) -> SlabLayout {
    SlabLayout {
        object_size: s.object_size.load(Ordering::Relaxed) as usize,
        size: s.size as usize,
        offset: 0,
        inuse: s.size as usize,
        red_left_pad: s.obj_offset as usize,
        align: s.align as usize,
        order: s.gfporder,
        objects: s.num,
        flags: s.flags,
        min_partial: 0,
        cpu_partial_slabs: 0,
    }
}

/// `MAX_SLABINFO_WRITE`.
const MAX_SLABINFO_WRITE: usize = 128;

/// `sscanf("%d")` of one word: an optional sign and digits, then anything.
fn scan_int(w: &str) -> Option<i64> {
    let b = w.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == start {
        return None;
    }
    w[..i]
        .parse::<i64>()
        .ok()
        .map(|v| v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)))
}

/// `slabinfo_write`: `"name limit batchcount shared"`. As in Linux, tunables out of range
/// (`limit < 1`, `batchcount < 1`, `batchcount > limit`, `shared < 0`) are accepted and
/// ignored; bad text and unknown caches are `EINVAL`.
pub(super) fn slabinfo_write<P: Platform>(m: &SlabLayer<P>, text: &str) -> Result<(), Errno> {
    if text.len() > MAX_SLABINFO_WRITE {
        return Err(Errno::EINVAL);
    }
    let (name, rest) = text.split_once(' ').ok_or(Errno::EINVAL)?;
    let mut it = rest.split_whitespace().map(scan_int);
    let (Some(Some(limit)), Some(Some(batchcount)), Some(Some(shared))) =
        (it.next(), it.next(), it.next())
    else {
        return Err(Errno::EINVAL);
    };
    let mut found: Option<*const Cache<P>> = None;
    // Lock order: slab_mutex (rank 1), held over the retune; docs/LOCKING.md.
    let mut list = m.slab().mutex.lock();
    let head: *mut ListHead = &mut list.caches;
    // SAFETY: the cache list under slab_mutex.
    for l in unsafe { list::list_for_each(head) } {
        // SAFETY: linked caches are live.
        let s = unsafe { &*kds::container_of!(l, Cache<P>, list) };
        if s.name() == name {
            found = Some(s);
            break;
        }
    }
    // SAFETY: a live linked cache; slab_mutex is held for the whole retune.
    let s = unsafe { &*found.ok_or(Errno::EINVAL)? };
    if limit < 1 || batchcount < 1 || batchcount > limit || shared < 0 {
        return Ok(());
    }
    let t = SlabTunables {
        limit: limit as u32,
        batchcount: batchcount as u32,
        shared: shared as u32,
    };
    let r = do_tune_cpucache(m, s, t, false);
    drop(list);
    r
}

const _: () = assert!(CFLGS_OFF_SLAB != 0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_int_is_sscanf_percent_d() {
        assert_eq!(scan_int("240"), Some(240));
        assert_eq!(scan_int("-1"), Some(-1));
        assert_eq!(scan_int("+8"), Some(8));
        assert_eq!(scan_int("12abc"), Some(12));
        assert_eq!(scan_int("abc"), None);
        assert_eq!(scan_int("-"), None);
        assert_eq!(scan_int("99999999999"), Some(i64::from(i32::MAX)));
    }

    #[test]
    fn debug_layout_adds_red_zones_and_user_words() {
        // Plain: 40 bytes, word aligned.
        assert_eq!(
            debug_layout(40, 8, SlabFlags::NONE),
            (40, 0, 8, SlabFlags::NONE)
        );
        // Red zone: 8 + 40 + 8; with the user area 16 more.
        let f = SlabFlags::RED_ZONE | SlabFlags::STORE_USER;
        assert_eq!(debug_layout(40, 8, f), (72, 8, 8, f));
        // An alignment above a word turns red zones and the user word off (mm/slab.c).
        assert_eq!(debug_layout(40, 64, f), (64, 0, 64, SlabFlags::NONE));
        // Tiny objects are at least SLAB_OBJ_MIN_SIZE (one-byte freelist_idx_t).
        assert_eq!(debug_layout(4, 8, SlabFlags::NONE).0, 16);
    }
}
