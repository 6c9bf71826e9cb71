//! SLOB's `kmem_cache` emulation and its [`SlabAllocator`] implementation (mm/slob.c:
//! `__kmem_cache_create`, `slob_alloc_node`, `kmem_cache_free`, `kmem_cache_init`).
//!
//! A cache is a small structure (allocated from SLOB itself, as Linux's `kmem_cache` cache
//! is under SLOB) on the cache list under `slab_mutex`. Destroyed structures are kept on the
//! dead list for reuse, with a new generation, so stale handles are detected as under SLUB.

use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};

use kds::list::{self, ListHead};

use super::{slob_init, slob_units_of, SLOB_ALIGN, SLOB_UNIT};
use crate::addr::PAGE_SIZE;
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::mm::mm_types::PagePtr;
use crate::mm::rcu::RcuHead;
use crate::page_alloc::NUMA_NO_NODE;
use crate::platform::Platform;
use crate::slab::common::{
    calculate_alignment, get_order, CacheHandle, Owner, SlabAllocator, SlabBootState, SlabError,
    SlabFlags, SlabInfo, SlabLayout, SlabList, SlabStats, SlabinfoMode, ARCH_KMALLOC_MINALIGN,
    ARCH_SLAB_MINALIGN, KMALLOC_MAX_SIZE,
};
use crate::slab::SlabLayer;

/// Longest cache name kept (as SLUB's).
const CACHE_NAME_LEN: usize = crate::slab::slub::CACHE_NAME_LEN;

/// `sizeof(struct slob_rcu)`. Linux's footer is an `rcu_head` (two pointers) and an `int`
/// size, padded: 24 bytes. kmem's callback also needs the allocator it frees into (Linux has
/// one global SLOB; kmem has one per machine, and an `RcuCallback` gets only the head), so
/// the footer carries a pointer to the `SlabLayer` as well: 32 bytes.
pub const SLOB_RCU_SIZE: usize = core::mem::size_of::<SlobRcu>();

/// `struct slob_rcu`: written at the end of an object of a `SLAB_TYPESAFE_BY_RCU` cache when
/// it is freed, queued with `call_rcu`; [`kmem_rcu_free`] frees the object from it.
#[repr(C)]
struct SlobRcu {
    head: RcuHead,
    /// The `SlabLayer<P>` the object goes back to (kmem's addition, see [`SLOB_RCU_SIZE`]).
    layer: *const (),
    /// The cache's `size` (the object's block size, footer included).
    size: usize,
}

/// SLOB's `struct kmem_cache` (the fields mm/slab.h keeps for SLOB).
#[repr(C)]
struct SlobCache {
    /// Link on `slab_caches` or on the dead list.
    list: ListHead,
    /// Generation: changes when the cache is destroyed.
    gen: AtomicU32,
    /// `size`: bytes per object, in whole units, with the RCU footer.
    size: usize,
    /// `object_size`.
    object_size: usize,
    /// `align`.
    align: usize,
    flags: SlabFlags,
    ctor: Option<fn(*mut u8)>,
    refcount: AtomicI32,
    /// Objects allocated and not freed (kmem's count; Linux's SLOB keeps none).
    live: AtomicUsize,
    name_len: usize,
    name: [u8; CACHE_NAME_LEN],
}

impl SlobCache {
    fn name(&self) -> &'static str {
        // SAFETY: cache structures are never freed (the module documentation), and the name
        // bytes are only written before the cache is linked.
        let bytes = unsafe { core::slice::from_raw_parts(self.name.as_ptr(), self.name_len) };
        core::str::from_utf8(bytes).unwrap_or("?")
    }
}

fn cache_ref<'a>(h: CacheHandle) -> &'a SlobCache {
    // SAFETY: handles are made from pointers to SLOB cache structures, never freed.
    unsafe { &*h.ptr.as_ptr().cast::<SlobCache>() }
}

fn handle_of(s: &SlobCache) -> CacheHandle {
    CacheHandle {
        ptr: NonNull::from(s).cast(),
        gen: s.gen.load(Ordering::Relaxed),
    }
}

/// The cache of a handle, or `None` (reported) for a destroyed cache.
fn resolve<'a, P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    caller: &'static Location<'static>,
) -> Option<&'a SlobCache> {
    let s = cache_ref(h);
    if s.gen.load(Ordering::Relaxed) == h.gen {
        return Some(s);
    }
    m.warn_at(
        caller,
        format_args!(
            "kmem_cache {:#x} used after kmem_cache_destroy (stale handle)",
            m.to_model(h.ptr.as_ptr() as usize)
        ),
    );
    None
}

/// Walks the cache list (newest first) under `slab_mutex`.
fn walk<P: Platform>(m: &SlabLayer<P>, f: &mut dyn FnMut(&SlobCache)) {
    // Lock order: slab_mutex (rank 1); the closure runs under it.
    let mut list = m.slab().mutex.lock();
    let head: *mut ListHead = &mut list.caches;
    // SAFETY: the cache list under slab_mutex; entries are `SlobCache::list` links.
    for l in unsafe { list::list_for_each(head) } {
        // SAFETY: linked caches are live SlobCache structures.
        f(unsafe { &*kds::container_of!(l, SlobCache, list) });
    }
}

/// A cache structure: a dead one for reuse, or a new SLOB block.
fn alloc_cache_struct<P: Platform>(
    m: &SlabLayer<P>,
    list: &mut SlabList,
) -> Option<(*mut SlobCache, u32)> {
    // SAFETY: the dead list under slab_mutex (held by the caller).
    if let Some(l) = unsafe { list::list_first(&list.dead) } {
        // SAFETY: `l` is a linked entry of the dead list (just returned by `list_first`) under
        // slab_mutex, held by the caller, so unlinking touches only live links; dead entries
        // are the `list` links of SlobCache structures, which are never freed, so their
        // `gen` word stays valid to read.
        unsafe {
            list::list_del(l);
            let p = kds::container_of!(l, SlobCache, list);
            return Some((p, (*p).gen.load(Ordering::Relaxed)));
        }
    }
    let b = m.slob_alloc(
        core::mem::size_of::<SlobCache>(),
        GfpFlags::GFP_KERNEL,
        ARCH_KMALLOC_MINALIGN.max(core::mem::align_of::<SlobCache>()),
        0,
        NUMA_NO_NODE,
    )?;
    Some((b.as_ptr().cast(), 1))
}

/// `__kmem_cache_create` under SLOB (with slab_common's checks and alignment).
fn create<P: Platform>(
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
    // slab_common's create_cache: calculate_alignment; SLOB keeps only forced alignment
    // (SLAB_HWCACHE_ALIGN → SLOB_ALIGN) and ARCH_SLAB_MINALIGN.
    let mut a = calculate_alignment(flags, align, size).max(ARCH_SLAB_MINALIGN);
    if flags.contains(SlabFlags::HWCACHE_ALIGN) {
        a = a.max(SLOB_ALIGN);
    }
    let mut sz = size;
    if flags.contains(SlabFlags::TYPESAFE_BY_RCU) {
        // Room for the RCU footer at the end of the object. Linux adds it right after the
        // object (x86 does not mind a misaligned footer); kmem rounds the object up to the
        // footer's alignment first, and objects are at least that aligned, so the footer's
        // `rcu_head` is always aligned.
        sz = sz.next_multiple_of(core::mem::align_of::<SlobRcu>()) + SLOB_RCU_SIZE;
        a = a.max(core::mem::align_of::<SlobRcu>());
    }
    let sz = slob_units_of(sz) * SLOB_UNIT;
    let mut nm = [0u8; CACHE_NAME_LEN];
    nm[..name.len()].copy_from_slice(name.as_bytes());
    // Lock order: slab_mutex (rank 1) → slob_lock (in slob_alloc).
    let mut list = m.slab().mutex.lock();
    let (p, gen) = alloc_cache_struct(m, &mut list).ok_or(SlabError::NoMemory)?;
    let c = SlobCache {
        list: ListHead::new(),
        gen: AtomicU32::new(gen),
        size: sz,
        object_size: size,
        align: a,
        // SLOB has no debugging: slub_debug flags are not applied.
        flags: flags.without(SlabFlags::OBJECT_POISON),
        ctor,
        refcount: AtomicI32::new(1),
        live: AtomicUsize::new(0),
        name_len: name.len(),
        name: nm,
    };
    // SAFETY: `p` is a block of size_of::<SlobCache>() bytes, suitably aligned, ours; linked
    // under slab_mutex (newest first, as Linux's list_add).
    unsafe {
        p.write(c);
        ListHead::init(ptr::addr_of_mut!((*p).list));
        list::list_add(ptr::addr_of_mut!((*p).list), &mut list.caches);
    }
    list.count += 1;
    // SAFETY: just initialised.
    Ok(handle_of(unsafe { &*p }))
}

/// `slob_alloc_node` with `NUMA_NO_NODE`.
#[track_caller]
fn alloc<P: Platform>(m: &SlabLayer<P>, s: &SlobCache, gfp: GfpFlags) -> Option<NonNull<u8>> {
    alloc_node(m, s, gfp, NUMA_NO_NODE)
}

/// `slob_alloc_node`: an object on `node` (`NUMA_NO_NODE`: any).
#[track_caller]
fn alloc_node<P: Platform>(
    m: &SlabLayer<P>,
    s: &SlobCache,
    gfp: GfpFlags,
    node: i32,
) -> Option<NonNull<u8>> {
    let b = if s.size < PAGE_SIZE {
        m.slob_alloc(s.size, gfp, s.align, 0, node)?
    } else {
        m.kmalloc_large_order_node(get_order(s.size), gfp, node)?
    };
    if let Some(ctor) = s.ctor {
        if gfp.contains(GfpFlags::__GFP_ZERO) {
            m.warn(format_args!(
                "kmem_cache_alloc: __GFP_ZERO with a constructor ({})",
                s.name()
            ));
        }
        ctor(b.as_ptr());
    }
    s.live.fetch_add(1, Ordering::Relaxed);
    Some(b)
}

/// `kmem_cache_alloc_node` of SLOB.
#[track_caller]
pub(crate) fn kmem_cache_alloc_node<P: Platform>(
    m: &SlabLayer<P>,
    c: CacheHandle,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
    node: i32,
) -> Option<NonNull<u8>> {
    alloc_node(m, resolve(m, c, caller)?, gfp, node)
}

/// `kmem_cache_free` (`__kmem_cache_free`), after checking that `p` is an object `s` could
/// have handed out.
#[track_caller]
fn free<P: Platform>(m: &SlabLayer<P>, s: &SlobCache, p: *mut u8) {
    if p.is_null() {
        return;
    }
    let ok = if !(p as usize).is_multiple_of(s.align) {
        false
    } else if s.flags.contains(SlabFlags::TYPESAFE_BY_RCU) {
        // Readers may still look at the object: it goes back after a grace period.
        rcu_free(m, s, p)
    } else {
        free_now(m, p, s.size)
    };
    if ok {
        s.live.fetch_sub(1, Ordering::Relaxed);
    } else if s.size >= PAGE_SIZE || !matches!(m.owner_of(p), Owner::Slab(..)) {
        m.warn(format_args!(
            "kmem_cache_free: 0x{:016x} is not an object of {}",
            m.to_model(p as usize),
            s.name()
        ));
    }
}

/// `__kmem_cache_free`: gives the block `p` of `size` bytes back (to SLOB below `PAGE_SIZE`,
/// else to the page allocator). Returns whether `p` was such a block.
fn free_now<P: Platform>(m: &SlabLayer<P>, p: *mut u8, size: usize) -> bool {
    if size < PAGE_SIZE {
        match m.owner_of(p) {
            Owner::Slab(page, _) => m.slob_free(page, p, size, "kmem_cache_free"),
            _ => false,
        }
    } else if is_large_block(m, p, size) {
        m.kfree(p);
        true
    } else {
        false
    }
}

/// Whether `p` is the start of a compound page of `get_order(size)`.
fn is_large_block<P: Platform>(m: &SlabLayer<P>, p: *mut u8, size: usize) -> bool {
    match m.owner_of(p) {
        Owner::Large(page) => {
            page.compound_order().as_u32() == get_order(size)
                && m.page_address(page).map(|v| v.as_usize()) == Some(p as usize)
        }
        _ => false,
    }
}

/// `kmem_cache_free` of a `SLAB_TYPESAFE_BY_RCU` cache: writes the `slob_rcu` footer at the
/// end of the object and queues it with `call_rcu`; [`kmem_rcu_free`] frees it. Unlike Linux,
/// the block is checked first (a SLOB page or a compound page of the right order), so a bad
/// pointer is reported now and no footer is written into memory that is not the cache's.
/// Returns whether `p` was queued.
fn rcu_free<P: Platform>(m: &SlabLayer<P>, s: &SlobCache, p: *mut u8) -> bool {
    let owned = if s.size < PAGE_SIZE {
        matches!(m.owner_of(p), Owner::Slab(..))
    } else {
        is_large_block(m, p, s.size)
    };
    if !owned {
        return false;
    }
    // The footer lies inside the block: `size` includes it, and `create` made `size -
    // SLOB_RCU_SIZE` a multiple of its alignment, as the block's address is.
    let f = p.wrapping_add(s.size - SLOB_RCU_SIZE).cast::<SlobRcu>();
    // SAFETY: `f` is inside the object being freed (above), aligned (above), and the object
    // is the caller's to give up; from here it is RCU's until `kmem_rcu_free` runs.
    unsafe {
        f.write(SlobRcu {
            head: RcuHead::new(),
            layer: (m as *const SlabLayer<P>).cast(),
            size: s.size,
        });
    }
    // SAFETY: the head is valid and unqueued and stays untouched (the object is freed, no
    // one else writes it) until `kmem_rcu_free::<P>` gets it; that callback expects a
    // `SlobRcu` whose `layer` is a `SlabLayer<P>`, which lives as long as the machine and so
    // outlives its callbacks: they run only from this machine's RCU state, which lives and
    // dies with the layer.
    unsafe {
        m.call_rcu(
            NonNull::new_unchecked(ptr::addr_of_mut!((*f).head)),
            kmem_rcu_free::<P>,
        )
    };
    true
}

/// `kmem_rcu_free`: the grace period after the free has passed; the block goes back.
///
/// # Safety
/// `head` is the `head` of a [`SlobRcu`] footer written by [`rcu_free`] of a
/// `SlabLayer<P>`, queued once.
unsafe fn kmem_rcu_free<P: Platform>(head: NonNull<RcuHead>) {
    let f = head.as_ptr().cast::<SlobRcu>();
    // SAFETY: the caller's guarantee: `head` is the first field of a `#[repr(C)]` footer,
    // which `rcu_free` wrote; the layer lives as long as the machine.
    let (layer, size) = unsafe { (&*(*f).layer.cast::<SlabLayer<P>>(), (*f).size) };
    let b = f.cast::<u8>().wrapping_sub(size - SLOB_RCU_SIZE);
    // Checked when queued; a SLOB block freed twice meanwhile is reported by slob_free.
    if !free_now(layer, b, size) && size >= PAGE_SIZE {
        layer.warn(format_args!(
            "kmem_rcu_free: 0x{:016x} is no longer a block of {size} bytes",
            layer.to_model(b as usize)
        ));
    }
}

/// `kmem_cache_destroy`: SLOB keeps no per-cache pages, so nothing is checked
/// (`__kmem_cache_shutdown` returns 0); the structure goes to the dead list.
fn destroy<P: Platform>(m: &SlabLayer<P>, h: CacheHandle, caller: &'static Location<'static>) {
    let Some(s) = resolve(m, h, caller) else {
        return;
    };
    // Lock order: slab_mutex (rank 1).
    let mut list = m.slab().mutex.lock();
    if s.refcount.fetch_sub(1, Ordering::Relaxed) > 1 {
        return;
    }
    let p = (s as *const SlobCache).cast_mut();
    // SAFETY: a linked cache under slab_mutex; moved to the dead list, its generation bumped
    // so every handle to it is stale.
    unsafe {
        list::list_del(ptr::addr_of_mut!((*p).list));
        (*p).gen.fetch_add(1, Ordering::Relaxed);
        list::list_add(ptr::addr_of_mut!((*p).list), &mut list.dead);
    }
    list.count -= 1;
}

fn info_of(s: &SlobCache) -> SlabInfo {
    let live = s.live.load(Ordering::Relaxed);
    SlabInfo {
        active_objs: live,
        num_objs: live,
        objsize: s.size,
        object_size: s.object_size,
        refcount: s.refcount.load(Ordering::Relaxed),
        ..SlabInfo::default()
    }
}

/// SLOB as a [`SlabAllocator`].
pub(crate) struct Slob;

impl SlabAllocator for Slob {
    const SLABINFO: SlabinfoMode = SlabinfoMode::Absent;
    const CPUHP_DEAD: Option<&'static str> = None;

    fn init<P: Platform>(m: &SlabLayer<P>) -> Result<(), SlabError> {
        {
            // Lock order: slab_mutex alone, at boot.
            let mut l = m.slab().mutex.lock();
            // SAFETY: the list heads live in the machine's state and never move.
            unsafe {
                ListHead::init(&mut l.caches);
                ListHead::init(&mut l.dead);
            }
        }
        slob_init(m);
        let st = m.slab();
        st.state.store(SlabBootState::Up as u8, Ordering::Release);
        st.state.store(SlabBootState::Full as u8, Ordering::Release);
        Ok(())
    }
    fn create<P: Platform>(
        m: &SlabLayer<P>,
        name: &str,
        size: usize,
        align: usize,
        flags: SlabFlags,
        ctor: Option<fn(*mut u8)>,
    ) -> Result<CacheHandle, SlabError> {
        create(m, name, size, align, flags, ctor)
    }
    #[inline]
    fn alloc<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
        _orig: Option<usize>,
    ) -> Option<NonNull<u8>> {
        alloc(m, resolve(m, c, caller)?, gfp)
    }
    #[inline]
    fn free<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        p: *mut u8,
        caller: &'static Location<'static>,
    ) {
        if let Some(s) = resolve(m, c, caller) {
            free(m, s, p);
        }
    }
    fn alloc_bulk<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        gfp: GfpFlags,
        out: &mut [*mut u8],
        caller: &'static Location<'static>,
    ) -> usize {
        // slab_common's __kmem_cache_alloc_bulk: all or nothing.
        let Some(s) = resolve(m, c, caller) else {
            return 0;
        };
        for i in 0..out.len() {
            match alloc(m, s, gfp) {
                Some(p) => out[i] = p.as_ptr(),
                None => {
                    for q in &out[..i] {
                        free(m, s, *q);
                    }
                    return 0;
                }
            }
        }
        out.len()
    }
    fn free_bulk<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        objs: &[*mut u8],
        caller: &'static Location<'static>,
    ) {
        if let Some(s) = resolve(m, c, caller) {
            for p in objs {
                free(m, s, *p);
            }
        }
    }
    fn shrink<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        caller: &'static Location<'static>,
    ) -> bool {
        // __kmem_cache_shrink: SLOB keeps no empty pages.
        let _ = resolve(m, c, caller);
        false
    }
    fn destroy<P: Platform>(m: &SlabLayer<P>, c: CacheHandle, caller: &'static Location<'static>) {
        destroy(m, c, caller)
    }
    fn validate<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        caller: &'static Location<'static>,
    ) -> usize {
        let _ = resolve(m, c, caller);
        0
    }
    fn name<P: Platform>(_m: &SlabLayer<P>, c: CacheHandle) -> Option<&'static str> {
        let s = cache_ref(c);
        (s.gen.load(Ordering::Relaxed) == c.gen).then(|| s.name())
    }
    fn info<P: Platform>(_m: &SlabLayer<P>, c: CacheHandle) -> Option<SlabInfo> {
        let s = cache_ref(c);
        (s.gen.load(Ordering::Relaxed) == c.gen).then(|| info_of(s))
    }
    fn stats<P: Platform>(_m: &SlabLayer<P>, _c: CacheHandle) -> Option<SlabStats> {
        None
    }
    fn layout<P: Platform>(c: CacheHandle) -> Option<SlabLayout> {
        let s = cache_ref(c);
        (s.gen.load(Ordering::Relaxed) == c.gen).then_some(SlabLayout {
            object_size: s.object_size,
            size: s.size,
            offset: 0,
            inuse: s.size,
            red_left_pad: 0,
            align: s.align,
            order: if s.size < PAGE_SIZE {
                0
            } else {
                get_order(s.size)
            },
            objects: if s.size < PAGE_SIZE {
                (PAGE_SIZE / s.size) as u32
            } else {
                1
            },
            flags: s.flags,
            min_partial: 0,
            cpu_partial_slabs: 0,
        })
    }
    fn for_each<P: Platform>(m: &SlabLayer<P>, f: &mut dyn FnMut(CacheHandle, &str)) {
        walk(m, &mut |s| f(handle_of(s), s.name()));
    }
    fn for_each_info<P: Platform>(m: &SlabLayer<P>, f: &mut dyn FnMut(&str, &SlabInfo)) {
        walk(m, &mut |s| f(s.name(), &info_of(s)));
    }
    fn kmalloc_cache<P: Platform>(
        _m: &SlabLayer<P>,
        _size: usize,
        _gfp: GfpFlags,
    ) -> Option<CacheHandle> {
        // SLOB has no kmalloc caches.
        None
    }
    #[inline]
    fn kmalloc<P: Platform>(
        m: &SlabLayer<P>,
        size: usize,
        gfp: GfpFlags,
        _caller: &'static Location<'static>,
    ) -> Option<NonNull<u8>> {
        m.slob_kmalloc(size, gfp)
    }
    #[inline]
    unsafe fn kfree<P: Platform>(
        m: &SlabLayer<P>,
        page: PagePtr,
        _cache: usize,
        p: *mut u8,
        caller: &'static Location<'static>,
    ) {
        m.slob_kfree(page, p, caller)
    }
    unsafe fn kfree_sized<P: Platform>(
        m: &SlabLayer<P>,
        p: *mut u8,
        _size: usize,
        _gfp: GfpFlags,
        _caller: &'static Location<'static>,
    ) {
        // SLOB blocks carry their size: an ordinary kfree.
        m.kfree(p)
    }
    fn krealloc_in_place<P: Platform>(_m: &SlabLayer<P>, _p: *mut u8, _new_size: usize) {
        // The header keeps the original size; ksize covers the new one (mm/slab_common.c
        // __do_krealloc returns the block as is).
    }
    unsafe fn ksize<P: Platform>(
        m: &SlabLayer<P>,
        page: PagePtr,
        _cache: usize,
        p: *const u8,
    ) -> usize {
        m.slob_ksize(page, p)
    }
    fn kmalloc_size_roundup(size: usize) -> usize {
        // mm/slob.c kmalloc_size_roundup (6.1–6.3).
        match size {
            0 => 0,
            usize::MAX => usize::MAX,
            n => n.next_multiple_of(ARCH_KMALLOC_MINALIGN),
        }
    }
    fn slabinfo_write<P: Platform>(_m: &SlabLayer<P>, _text: &str) -> Result<(), Errno> {
        Err(Errno::ENOENT)
    }
}
