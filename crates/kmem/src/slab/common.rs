//! The slab cache layer common to every slab allocator (mm/slab_common.c, mm/slab.h).
//!
//! This module owns what does not depend on how objects are managed inside a slab: the
//! cache flags ([`SlabFlags`]), the kmalloc size classes (`kmalloc_index`, the `kmalloc-*`,
//! `kmalloc-rcl-*`, `kmalloc-cg-*` and `dma-kmalloc-*` caches picked by GFP flags), the cache
//! merging rules (`find_mergeable`), the boot options (`slab=`, `slub_debug=`,
//! `slub_min_order=`, `slub_max_order=`, `slub_min_objects=`), the `/proc/slabinfo`
//! rendering, `virt_to_slab` (which kind of allocation a pointer is in), and the
//! `SlabAllocator` interface an implementation provides with what it reports ([`SlabInfo`],
//! [`SlabStats`], [`SlabLayout`]). It knows no implementation: the
//! public cache API with Linux's names (`kmem_cache_create`, `kmem_cache_alloc`, …) is in
//! [`crate::slab`], above both.
//!
//! # Allocators
//! The implementation behind the API is chosen at boot from the `slab=` command-line option
//! ([`SlabAllocatorKind`]). SLUB ([`crate::slab::slub`]) is the only one built so far; `slab=slab` and
//! `slab=slob` print a notice and use SLUB, as Linux 6.x does since SLAB and SLOB were removed.
//! The dispatch (in [`crate::slab`]) is a `match` on a one-variant enum, which compiles to
//! nothing.
//!
//! # Locking
//! 1. `slab_mutex` ([`SlabState::mutex`]): the list of caches and the metadata of every cache
//!    (creation, merging, destruction, `/proc/slabinfo` walks);
//! 2. then a cache's node `list_lock` (see [`crate::slab::slub`]).
//!
//! The kmalloc cache table is written once at boot (before any other thread can use the
//! machine) and read without locks afterwards.
//!
//! # Handles
//! [`CacheHandle`] is a copyable reference to a cache with a generation number. A destroyed
//! cache's `struct kmem_cache` is never returned to general use (it goes back to the
//! `kmem_cache` cache, which is never merged), and its generation changes, so a stale handle
//! is detected and reported instead of touching freed memory. Using a handle concurrently with
//! `kmem_cache_destroy` of the same cache is a caller bug, as in Linux.

use core::fmt::{self, Write};
use core::panic::Location;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, AtomicUsize};

use kds::list::ListHead;

use crate::addr::{VirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::mm::mm_types::{PagePtr, PageType};
use crate::platform::Platform;
use crate::slab::SlabLayer;

/// Slab cache flags (`slab_flags_t`), with Linux's bit values (include/linux/slab.h, 5.x/6.x).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct SlabFlags(pub u32);

impl SlabFlags {
    /// No flags.
    pub const NONE: SlabFlags = SlabFlags(0);
    /// `SLAB_CONSISTENCY_CHECKS` (`F`): expensive checks on alloc and free.
    pub const CONSISTENCY_CHECKS: SlabFlags = SlabFlags(0x0000_0100);
    /// `SLAB_RED_ZONE` (`Z`): red zones around objects.
    pub const RED_ZONE: SlabFlags = SlabFlags(0x0000_0400);
    /// `SLAB_POISON` (`P`): poison free objects with 0x6b / 0xa5.
    pub const POISON: SlabFlags = SlabFlags(0x0000_0800);
    /// `SLAB_KMALLOC`: a kmalloc cache.
    pub const KMALLOC: SlabFlags = SlabFlags(0x0000_1000);
    /// `SLAB_HWCACHE_ALIGN`: align objects on cache lines.
    pub const HWCACHE_ALIGN: SlabFlags = SlabFlags(0x0000_2000);
    /// `SLAB_CACHE_DMA`: slabs from ZONE_DMA.
    pub const CACHE_DMA: SlabFlags = SlabFlags(0x0000_4000);
    /// `SLAB_CACHE_DMA32`: slabs from ZONE_DMA32.
    pub const CACHE_DMA32: SlabFlags = SlabFlags(0x0000_8000);
    /// `SLAB_STORE_USER` (`U`): record the last allocating and freeing caller.
    pub const STORE_USER: SlabFlags = SlabFlags(0x0001_0000);
    /// `SLAB_RECLAIM_ACCOUNT`: objects are reclaimable (slabs `__GFP_RECLAIMABLE`).
    pub const RECLAIM_ACCOUNT: SlabFlags = SlabFlags(0x0002_0000);
    /// `SLAB_PANIC`: creation failure is fatal (kmem reports it and returns the error).
    pub const PANIC: SlabFlags = SlabFlags(0x0004_0000);
    /// `SLAB_TYPESAFE_BY_RCU`.
    pub const TYPESAFE_BY_RCU: SlabFlags = SlabFlags(0x0008_0000);
    /// `SLAB_TRACE` (`T`): trace allocations and frees.
    pub const TRACE: SlabFlags = SlabFlags(0x0020_0000);
    /// `SLAB_NOLEAKTRACE`.
    pub const NOLEAKTRACE: SlabFlags = SlabFlags(0x0080_0000);
    /// `SLAB_NO_MERGE`: never merge this cache with another.
    pub const NO_MERGE: SlabFlags = SlabFlags(0x0100_0000);
    /// `SLAB_FAILSLAB` (`A`): fault injection.
    pub const FAILSLAB: SlabFlags = SlabFlags(0x0200_0000);
    /// `SLAB_ACCOUNT`: charge to the memory cgroup.
    pub const ACCOUNT: SlabFlags = SlabFlags(0x0400_0000);
    /// `SLAB_NO_USER_FLAGS`: ignore `slub_debug` for this cache.
    pub const NO_USER_FLAGS: SlabFlags = SlabFlags(0x1000_0000);
    /// `SLAB_NOTRACK`: kmemcheck does not track the cache's slabs (Linux 4.14's
    /// 0x01000000, taken by `SLAB_NO_MERGE` since; kmem gives it a free bit).
    pub const NOTRACK: SlabFlags = SlabFlags(0x4000_0000);
    /// `__OBJECT_POISON` (internal): the object itself is poisoned.
    pub const OBJECT_POISON: SlabFlags = SlabFlags(0x8000_0000);

    /// `SLAB_DEBUG_FLAGS`: any of these takes the cache off the lockless fast path.
    pub const DEBUG_FLAGS: SlabFlags = SlabFlags(
        Self::RED_ZONE.0
            | Self::POISON.0
            | Self::STORE_USER.0
            | Self::TRACE.0
            | Self::CONSISTENCY_CHECKS.0,
    );
    /// `DEBUG_DEFAULT_FLAGS`: what a bare `slub_debug` turns on (FZPU).
    pub const DEBUG_DEFAULT: SlabFlags = SlabFlags(
        Self::CONSISTENCY_CHECKS.0 | Self::RED_ZONE.0 | Self::POISON.0 | Self::STORE_USER.0,
    );
    /// `DEBUG_METADATA_FLAGS`: flags that add metadata to objects.
    pub const DEBUG_METADATA: SlabFlags =
        SlabFlags(Self::RED_ZONE.0 | Self::POISON.0 | Self::STORE_USER.0);
    /// `SLAB_NEVER_MERGE` (mm/slab_common.c).
    pub const NEVER_MERGE: SlabFlags = SlabFlags(
        Self::RED_ZONE.0
            | Self::POISON.0
            | Self::STORE_USER.0
            | Self::TRACE.0
            | Self::TYPESAFE_BY_RCU.0
            | Self::NOLEAKTRACE.0
            | Self::FAILSLAB.0
            | Self::NO_MERGE.0,
    );
    /// `SLAB_MERGE_SAME` (mm/slab_common.c; 4.14's had `SLAB_NOTRACK`): flags two merged
    /// caches must agree on. kmem also
    /// keeps `SLAB_CONSISTENCY_CHECKS` here, as SLUB's `SLUB_MERGE_SAME` did with
    /// `SLAB_DEBUG_FREE`, so a checked cache is never merged into an unchecked one.
    pub const MERGE_SAME: SlabFlags = SlabFlags(
        Self::RECLAIM_ACCOUNT.0
            | Self::CACHE_DMA.0
            | Self::CACHE_DMA32.0
            | Self::ACCOUNT.0
            | Self::CONSISTENCY_CHECKS.0
            | Self::NOTRACK.0,
    );

    /// Whether every bit of `o` is set.
    #[inline]
    pub const fn contains(self, o: SlabFlags) -> bool {
        self.0 & o.0 == o.0
    }
    /// Whether any bit of `o` is set.
    #[inline]
    pub const fn intersects(self, o: SlabFlags) -> bool {
        self.0 & o.0 != 0
    }
    /// The union.
    #[inline]
    pub const fn union(self, o: SlabFlags) -> SlabFlags {
        SlabFlags(self.0 | o.0)
    }
    /// `self` without the bits of `o`.
    #[inline]
    pub const fn without(self, o: SlabFlags) -> SlabFlags {
        SlabFlags(self.0 & !o.0)
    }
    /// The raw bits.
    #[inline]
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Parses `SLAB_RED_ZONE|SLAB_POISON`, `RED_ZONE|POISON` or a number.
    ///
    /// # Errors
    /// The unknown word.
    pub fn parse(s: &str) -> Result<SlabFlags, &str> {
        let mut f = SlabFlags::NONE;
        for w in s.split('|').map(str::trim).filter(|w| !w.is_empty()) {
            if let Some(h) = w.strip_prefix("0x") {
                f = f.union(SlabFlags(u32::from_str_radix(h, 16).map_err(|_| w)?));
                continue;
            }
            if let Ok(v) = w.parse::<u32>() {
                f = f.union(SlabFlags(v));
                continue;
            }
            let name = w.strip_prefix("SLAB_").unwrap_or(w);
            let bit = NAMES
                .iter()
                .find(|(_, n)| n.eq_ignore_ascii_case(name))
                .map(|(b, _)| *b)
                .ok_or(w)?;
            f = f.union(bit);
        }
        Ok(f)
    }
}

const NAMES: &[(SlabFlags, &str)] = &[
    (SlabFlags::CONSISTENCY_CHECKS, "CONSISTENCY_CHECKS"),
    (SlabFlags::RED_ZONE, "RED_ZONE"),
    (SlabFlags::POISON, "POISON"),
    (SlabFlags::KMALLOC, "KMALLOC"),
    (SlabFlags::HWCACHE_ALIGN, "HWCACHE_ALIGN"),
    (SlabFlags::CACHE_DMA, "CACHE_DMA"),
    (SlabFlags::CACHE_DMA32, "CACHE_DMA32"),
    (SlabFlags::STORE_USER, "STORE_USER"),
    (SlabFlags::RECLAIM_ACCOUNT, "RECLAIM_ACCOUNT"),
    (SlabFlags::PANIC, "PANIC"),
    (SlabFlags::TYPESAFE_BY_RCU, "TYPESAFE_BY_RCU"),
    (SlabFlags::TRACE, "TRACE"),
    (SlabFlags::NOLEAKTRACE, "NOLEAKTRACE"),
    (SlabFlags::NO_MERGE, "NO_MERGE"),
    (SlabFlags::FAILSLAB, "FAILSLAB"),
    (SlabFlags::ACCOUNT, "ACCOUNT"),
    (SlabFlags::NO_USER_FLAGS, "NO_USER_FLAGS"),
    (SlabFlags::NOTRACK, "NOTRACK"),
];

impl core::ops::BitOr for SlabFlags {
    type Output = SlabFlags;
    fn bitor(self, o: SlabFlags) -> SlabFlags {
        self.union(o)
    }
}

impl fmt::Debug for SlabFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for SlabFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut rest = self.0;
        for (b, n) in NAMES {
            if self.contains(*b) {
                if !first {
                    f.write_str("|")?;
                }
                write!(f, "SLAB_{n}")?;
                first = false;
                rest &= !b.0;
            }
        }
        if rest != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{rest:#x}")?;
            first = false;
        }
        if first {
            f.write_str("0")?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ kmalloc size classes

/// `ARCH_KMALLOC_MINALIGN`: the smallest alignment kmalloc guarantees (x86: 8).
pub const ARCH_KMALLOC_MINALIGN: usize = 8;
/// `ARCH_SLAB_MINALIGN`.
pub const ARCH_SLAB_MINALIGN: usize = 8;
/// `L1_CACHE_BYTES` on x86_64.
pub const L1_CACHE_BYTES: usize = 64;
/// `KMALLOC_SHIFT_LOW`: the smallest kmalloc cache is 8 bytes.
pub const KMALLOC_SHIFT_LOW: u32 = 3;
/// `KMALLOC_SHIFT_HIGH` for SLUB: `PAGE_SHIFT + 1` (8 KiB).
pub const KMALLOC_SHIFT_HIGH: u32 = PAGE_SHIFT + 1;
/// `KMALLOC_SHIFT_MAX`: `MAX_PAGE_ORDER + PAGE_SHIFT` (4 MiB).
pub const KMALLOC_SHIFT_MAX: u32 = crate::addr::MAX_PAGE_ORDER + PAGE_SHIFT;
/// `KMALLOC_MAX_CACHE_SIZE`: larger requests go to the page allocator.
pub const KMALLOC_MAX_CACHE_SIZE: usize = 1 << KMALLOC_SHIFT_HIGH;
/// `KMALLOC_MAX_SIZE`: the largest kmalloc.
pub const KMALLOC_MAX_SIZE: usize = 1 << KMALLOC_SHIFT_MAX;
/// `ZERO_SIZE_PTR`: what `kmalloc(0)` returns.
pub const ZERO_SIZE_PTR: usize = 16;
/// Number of kmalloc cache indexes of SLUB (`KMALLOC_SHIFT_HIGH + 1`).
pub const NR_KMALLOC_INDEX: usize = KMALLOC_SHIFT_HIGH as usize + 1;
/// Slots per type of the machine's kmalloc cache table: room for every index up to
/// `KMALLOC_SHIFT_MAX` (SLAB had kmalloc caches up to `KMALLOC_MAX_SIZE`).
pub const NR_KMALLOC_SLOTS: usize = KMALLOC_SHIFT_MAX as usize + 1;

/// `ZERO_OR_NULL_PTR`.
#[inline]
pub const fn zero_or_null_ptr(p: usize) -> bool {
    p <= ZERO_SIZE_PTR
}

/// The kinds of kmalloc caches (`enum kmalloc_cache_type`, without the random copies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum KmallocType {
    /// `KMALLOC_NORMAL`: `kmalloc-*`.
    Normal = 0,
    /// `KMALLOC_RECLAIM`: `kmalloc-rcl-*` for `__GFP_RECLAIMABLE`.
    Reclaim = 1,
    /// `KMALLOC_DMA`: `dma-kmalloc-*` for `__GFP_DMA`.
    Dma = 2,
    /// `KMALLOC_CGROUP`: `kmalloc-cg-*` for `__GFP_ACCOUNT`.
    Cgroup = 3,
}

/// Number of [`KmallocType`]s.
pub const NR_KMALLOC_TYPES: usize = 4;

impl KmallocType {
    /// All types in creation order (Linux creates them in enum order).
    pub const ALL: [KmallocType; NR_KMALLOC_TYPES] = [
        KmallocType::Normal,
        KmallocType::Reclaim,
        KmallocType::Dma,
        KmallocType::Cgroup,
    ];
    /// The prefix of the caches' names.
    pub const fn prefix(self) -> &'static str {
        match self {
            KmallocType::Normal => "kmalloc-",
            KmallocType::Reclaim => "kmalloc-rcl-",
            KmallocType::Dma => "dma-kmalloc-",
            KmallocType::Cgroup => "kmalloc-cg-",
        }
    }
    /// Flags of the caches of this type (`kmalloc_caches` creation in mm/slab_common.c).
    pub const fn cache_flags(self) -> SlabFlags {
        match self {
            KmallocType::Normal => SlabFlags::NONE,
            KmallocType::Reclaim => SlabFlags::RECLAIM_ACCOUNT,
            KmallocType::Dma => SlabFlags::CACHE_DMA,
            KmallocType::Cgroup => SlabFlags::ACCOUNT,
        }
    }
}

/// `kmalloc_type`: which kmalloc caches serve `gfp` (include/linux/slab.h).
#[inline]
pub const fn kmalloc_type(gfp: GfpFlags) -> KmallocType {
    let bits = GfpFlags::__GFP_DMA.bits()
        | GfpFlags::__GFP_RECLAIMABLE.bits()
        | GfpFlags::__GFP_ACCOUNT.bits();
    if gfp.bits() & bits == 0 {
        KmallocType::Normal
    } else if gfp.bits() & GfpFlags::__GFP_DMA.bits() != 0 {
        KmallocType::Dma
    } else if gfp.bits() & GfpFlags::__GFP_RECLAIMABLE.bits() != 0 {
        KmallocType::Reclaim
    } else {
        KmallocType::Cgroup
    }
}

/// `size_index[]` of mm/slab_common.c: the cache index for sizes 1..=192 by `(size - 1) / 8`.
const SIZE_INDEX: [u8; 24] = [
    3, 4, 5, 5, 6, 6, 6, 6, 1, 1, 1, 1, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 2,
];

/// `kmalloc_index`: the kmalloc cache index for `size` (1 ⇒ 96, 2 ⇒ 192, `n` ⇒ `1 << n`);
/// 0 for size 0. Sizes above [`KMALLOC_MAX_CACHE_SIZE`] have no cache.
#[inline]
pub const fn kmalloc_index(size: usize) -> u32 {
    if size == 0 {
        0
    } else if size <= 192 {
        SIZE_INDEX[(size - 1) / 8] as u32
    } else {
        usize::BITS - (size - 1).leading_zeros()
    }
}

/// [`kmalloc_index`] of every size in `1..=KMALLOC_MAX_CACHE_SIZE` by `(size - 1) / 8`
/// (Linux's `size_index[]` extended past 192 bytes; the sizes of one 8-byte step never cross
/// a power of two above 8): the fast paths' size lookup without `fls` or a branch on 192.
const KMALLOC_INDEX_BY_8: [u8; KMALLOC_MAX_CACHE_SIZE / 8] = {
    let mut t = [0u8; KMALLOC_MAX_CACHE_SIZE / 8];
    let mut i = 0;
    while i < t.len() {
        t[i] = kmalloc_index(8 * i + 8) as u8;
        i += 1;
    }
    t
};

/// [`kmalloc_index`] of `size` in `1..=KMALLOC_MAX_CACHE_SIZE` (one table load); 0 (the
/// index of no cache) for other sizes.
#[inline(always)]
pub(crate) fn kmalloc_index_fast(size: usize) -> u32 {
    match KMALLOC_INDEX_BY_8.get(size.wrapping_sub(1) / 8) {
        Some(&i) => u32::from(i),
        None => 0,
    }
}

/// The object size of kmalloc cache `index` (`kmalloc_info[index].size`).
#[inline]
pub const fn kmalloc_size(index: u32) -> usize {
    match index {
        0 => 0,
        1 => 96,
        2 => 192,
        n => 1 << n,
    }
}

/// `kmalloc_size_roundup`: the size kmalloc really gives for a request of `size`.
pub const fn kmalloc_size_roundup(size: usize) -> usize {
    if size == 0 {
        0
    } else if size <= KMALLOC_MAX_CACHE_SIZE {
        kmalloc_size(kmalloc_index(size))
    } else if size > KMALLOC_MAX_SIZE {
        // Linux returns the size unchanged; the allocation will fail.
        size
    } else {
        (size.div_ceil(PAGE_SIZE)).next_power_of_two() * PAGE_SIZE
    }
}

/// Writes the name of kmalloc cache `index` of `ty` (`kmalloc-96`, `dma-kmalloc-1k`…).
pub fn kmalloc_cache_name(ty: KmallocType, index: u32, out: &mut dyn Write) -> fmt::Result {
    let size = kmalloc_size(index);
    out.write_str(ty.prefix())?;
    if size >= 1024 && size & 1023 == 0 {
        write!(out, "{}k", size / 1024)
    } else {
        write!(out, "{size}")
    }
}

// ------------------------------------------------------------------ slab geometry

/// `MAX_OBJS_PER_PAGE`: `slab->objects` is 15 bits.
pub const MAX_OBJS_PER_PAGE: u32 = 32767;
/// `PAGE_ALLOC_COSTLY_ORDER`, the default `slub_max_order`.
pub const DEFAULT_SLUB_MAX_ORDER: u32 = crate::mmzone::PAGE_ALLOC_COSTLY_ORDER;

/// `get_order`: the smallest order whose block holds `size` bytes.
#[inline]
pub const fn get_order(size: usize) -> u32 {
    if size <= PAGE_SIZE {
        0
    } else {
        usize::BITS - ((size - 1) >> PAGE_SHIFT).leading_zeros()
    }
}

/// `fls`: the 1-based position of the highest set bit, 0 for 0.
#[inline]
pub const fn fls(x: u32) -> u32 {
    u32::BITS - x.leading_zeros()
}

/// `order_objects`: objects of `size` in a slab of `order`.
#[inline]
pub const fn order_objects(order: u32, size: u32) -> u32 {
    ((PAGE_SIZE as u32) << order) / size
}

/// Slab sizing parameters (`slub_min_order`, `slub_max_order`, `slub_min_objects`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderParams {
    /// `slub_min_order`.
    pub min_order: u32,
    /// `slub_max_order`.
    pub max_order: u32,
    /// `slub_min_objects`; 0 means `4 * (fls(nr_cpus) + 1)`.
    pub min_objects: u32,
    /// CPUs for the default `min_objects`.
    pub nr_cpus: u32,
}

impl OrderParams {
    /// Linux's defaults for `nr_cpus` CPUs.
    pub const fn new(nr_cpus: u32) -> Self {
        Self {
            min_order: 0,
            max_order: DEFAULT_SLUB_MAX_ORDER,
            min_objects: 0,
            nr_cpus,
        }
    }
}

/// `calc_slab_order` (mm/slub.c): the first order from `min_order` whose leftover is at most
/// `1 / fract_leftover` of the slab.
fn calc_slab_order(size: u32, min_order: u32, max_order: u32, fract_leftover: u32) -> u32 {
    let mut order = min_order;
    while order <= max_order {
        let slab_size = (PAGE_SIZE as u32) << order;
        let rem = slab_size % size;
        if rem <= slab_size / fract_leftover {
            break;
        }
        order += 1;
    }
    order
}

/// `calculate_order` (mm/slub.c): the slab order for objects of `size` bytes, or `None` if
/// even one object does not fit in a `MAX_PAGE_ORDER` block.
pub fn calculate_order(size: u32, p: &OrderParams) -> Option<u32> {
    let mut min_objects = p.min_objects;
    if min_objects == 0 {
        // Linux uses nr_cpu_ids when only one CPU is present.
        min_objects = 4 * (fls(p.nr_cpus.max(1)) + 1);
    }
    let max_objects = order_objects(p.max_order, size).max(1);
    min_objects = min_objects.min(max_objects);
    let min_order = p
        .min_order
        .max(get_order(min_objects as usize * size as usize));
    if order_objects(min_order, size) > MAX_OBJS_PER_PAGE {
        return Some(get_order(size as usize * MAX_OBJS_PER_PAGE as usize) - 1);
    }
    // Try to keep the waste below 1/16, then 1/8, then 1/4, then 1/2 of the slab.
    let mut fraction = 16;
    while fraction > 1 {
        let order = calc_slab_order(size, min_order, p.max_order, fraction);
        if order <= p.max_order {
            return Some(order);
        }
        fraction /= 2;
    }
    // Doh: accept any waste, up to the largest block the buddy allocator has.
    let order = calc_slab_order(size, 0, crate::addr::MAX_PAGE_ORDER, 1);
    (order <= crate::addr::MAX_PAGE_ORDER).then_some(order)
}

/// `calculate_alignment` (mm/slab_common.c).
pub fn calculate_alignment(flags: SlabFlags, align: usize, size: usize) -> usize {
    let mut align = align;
    if flags.contains(SlabFlags::HWCACHE_ALIGN) {
        let mut ralign = L1_CACHE_BYTES;
        while size <= ralign / 2 {
            ralign /= 2;
        }
        align = align.max(ralign);
    }
    align = align.max(ARCH_SLAB_MINALIGN);
    (align + 7) & !7
}

// ------------------------------------------------------------------ boot options

/// The slab allocator behind the cache API (`slab=` boot option).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SlabAllocatorKind {
    /// SLAB (mm/slab.c of Linux ≤ 6.7): per-CPU array caches, colouring.
    Slab,
    /// SLUB ([`crate::slab::slub`]).
    #[default]
    Slub,
    /// SLOB ([`crate::slab::slob`], mm/slob.c of Linux ≤ 6.3): a list of blocks.
    Slob,
}

impl SlabAllocatorKind {
    /// The name shown in the boot log and by `kmem --slab X replay`.
    pub const fn name(self) -> &'static str {
        match self {
            SlabAllocatorKind::Slab => "SLAB",
            SlabAllocatorKind::Slub => "SLUB",
            SlabAllocatorKind::Slob => "SLOB",
        }
    }

    /// The value of `slab=` that selects it (`slab`, `slub`, `slob`).
    pub const fn option(self) -> &'static str {
        match self {
            SlabAllocatorKind::Slab => "slab",
            SlabAllocatorKind::Slub => "slub",
            SlabAllocatorKind::Slob => "slob",
        }
    }

    /// Parses a `slab=` value (`slab`, `slub`, `slob`, any case).
    pub fn from_option(v: &str) -> Option<SlabAllocatorKind> {
        [
            SlabAllocatorKind::Slab,
            SlabAllocatorKind::Slub,
            SlabAllocatorKind::Slob,
        ]
        .into_iter()
        .find(|k| k.option().eq_ignore_ascii_case(v))
    }

    /// The mode of `/proc/slabinfo` (mm/slab_common.c `SLABINFO_RIGHTS`: 0600 with SLAB,
    /// whose tunables are writable, 0400 with SLUB), or `None`: SLOB has no slabinfo.
    pub const fn slabinfo_mode(self) -> Option<u16> {
        match self {
            SlabAllocatorKind::Slab => Some(0o600),
            SlabAllocatorKind::Slub => Some(0o400),
            SlabAllocatorKind::Slob => None,
        }
    }
}

/// How `/proc/slabinfo` exists under an allocator ([`SlabAllocator::SLABINFO`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlabinfoMode {
    /// No such file (SLOB: `CONFIG_SLUB_DEBUG`/`CONFIG_SLAB` off, no `slabinfo` entry).
    Absent,
    /// Mode 0400 (SLUB: no tunables).
    ReadOnly,
    /// Mode 0600 (SLAB: `echo "name limit batchcount shared" > /proc/slabinfo`).
    ReadWrite,
}

/// Longest `slub_debug=` string kept.
const DEBUG_STR_LEN: usize = 256;

/// The parsed `slub_debug=` option (mm/slub.c `setup_slub_debug`).
pub struct SlubDebug {
    /// Flags for every cache not named in a block with a cache list.
    pub global: SlabFlags,
    /// The raw option text, kept for per-cache blocks (`slub_debug_string`).
    text: [u8; DEBUG_STR_LEN],
    text_len: usize,
    has_lists: bool,
    /// `slub_debug=O`: drop metadata flags on caches whose order would grow.
    pub disable_higher_order_debug: bool,
}

impl SlubDebug {
    const fn new() -> Self {
        Self {
            global: SlabFlags::NONE,
            text: [0; DEBUG_STR_LEN],
            text_len: 0,
            has_lists: false,
            disable_higher_order_debug: false,
        }
    }

    fn text(&self) -> &str {
        core::str::from_utf8(&self.text[..self.text_len]).unwrap_or("")
    }

    /// Parses one `;`-separated block: flags, then an optional `,`-separated cache list.
    fn parse_block(block: &str) -> (SlabFlags, Option<&str>, bool, Option<char>) {
        let (fl, list) = match block.find(',') {
            Some(i) => (&block[..i], Some(&block[i + 1..])),
            None => (block, None),
        };
        if fl.is_empty() && list.is_some() {
            return (SlabFlags::DEBUG_DEFAULT, list, false, None);
        }
        let mut f = SlabFlags::NONE;
        let mut o = false;
        let mut unknown = None;
        for c in fl.chars() {
            match c.to_ascii_lowercase() {
                '-' => f = SlabFlags::NONE,
                'f' => f = f | SlabFlags::CONSISTENCY_CHECKS,
                'z' => f = f | SlabFlags::RED_ZONE,
                'p' => f = f | SlabFlags::POISON,
                'u' => f = f | SlabFlags::STORE_USER,
                't' => f = f | SlabFlags::TRACE,
                'a' => f = f | SlabFlags::FAILSLAB,
                'o' => o = true,
                _ => unknown = Some(c),
            }
        }
        (f, list, o, unknown)
    }

    /// `setup_slub_debug`: parses the value after `slub_debug` (`None` for a bare
    /// `slub_debug`). Returns unknown option letters for the boot log.
    fn setup(&mut self, value: Option<&str>, mut unknown: impl FnMut(char)) {
        let Some(v) = value.filter(|v| !v.is_empty()) else {
            self.global = SlabFlags::DEBUG_DEFAULT;
            return;
        };
        let mut global = SlabFlags::DEBUG_DEFAULT;
        let mut global_changed = false;
        for block in v.split(';').filter(|b| !b.is_empty()) {
            let (f, list, o, bad) = Self::parse_block(block);
            if let Some(c) = bad {
                unknown(c);
            }
            if o {
                self.disable_higher_order_debug = true;
            }
            if list.is_none() {
                global = f;
                global_changed = true;
            } else {
                self.has_lists = true;
            }
        }
        if self.has_lists {
            if !global_changed {
                global = SlabFlags::NONE;
            }
            let n = v.len().min(DEBUG_STR_LEN);
            self.text[..n].copy_from_slice(&v.as_bytes()[..n]);
            self.text_len = n;
        }
        self.global = global;
    }

    /// `kmem_cache_flags`: the debug flags for a cache called `name` created with `flags`.
    pub fn cache_flags(&self, flags: SlabFlags, name: &str) -> SlabFlags {
        if flags.contains(SlabFlags::NO_USER_FLAGS) {
            return flags;
        }
        if self.has_lists {
            for block in self.text().split(';').filter(|b| !b.is_empty()) {
                let (f, list, _, _) = Self::parse_block(block);
                let Some(list) = list else { continue };
                for pat in list.split(',').filter(|p| !p.is_empty()) {
                    let hit = match pat.find('*') {
                        Some(i) => name.starts_with(&pat[..i]),
                        None => name == pat,
                    };
                    if hit {
                        return flags | f;
                    }
                }
            }
        }
        flags | self.global
    }

    /// Whether any debugging was requested.
    pub fn enabled(&self) -> bool {
        self.global.0 != 0 || self.has_lists
    }
}

// ------------------------------------------------------------------ machine-wide slab state

/// `slab_state` (mm/slab.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum SlabBootState {
    /// No slab functionality yet.
    Down = 0,
    /// The `kmem_cache` cache works.
    Partial = 1,
    /// kmalloc caches exist.
    Up = 2,
    /// Everything is working.
    Full = 3,
}

/// The list of caches under `slab_mutex`.
pub(crate) struct SlabList {
    /// `slab_caches`: every cache, newest first (Linux's `list_add`).
    pub(crate) caches: ListHead,
    /// Number of caches on the list.
    pub(crate) count: usize,
    /// Structures of destroyed caches, kept for reuse (see the module documentation).
    pub(crate) dead: ListHead,
}

/// Machine-wide slab state, part of the machine's [`crate::mm::MemoryModel`].
pub struct SlabState<L: lock_api::RawMutex> {
    /// `slab_mutex` and `slab_caches`.
    pub(crate) mutex: crate::locking::Lock<L, SlabList>,
    /// `kmalloc_caches[type][index]` (pointers to `KmemCache`), written at boot.
    /// Each allocator uses the slots of its own size classes (SLUB `0..NR_KMALLOC_INDEX`,
    /// SLAB up to `NR_KMALLOC_SLOTS`, SLOB none).
    pub(crate) kmalloc: [[AtomicPtr<u8>; NR_KMALLOC_SLOTS]; NR_KMALLOC_TYPES],
    /// The `kmem_cache` cache (where `struct kmem_cache`s come from).
    pub(crate) kmem_cache: AtomicPtr<u8>,
    /// `slab_state`.
    pub(crate) state: AtomicU8,
    /// `slub_debug=`.
    pub(crate) debug: SlubDebug,
    /// Order parameters.
    pub(crate) order: OrderParams,
    /// The allocator chosen at boot.
    pub(crate) kind: SlabAllocatorKind,
    /// The general path, not SLUB's directly (`SlabLayer::slab_hooked`): not SLUB, or KFENCE,
    /// kmemleak or kmemcheck set up. Set at boot (after the options only), never cleared.
    pub(crate) hooked: core::sync::atomic::AtomicBool,
    /// Reports and fixes printed by slab debugging (`slab_errors` of slub_kunit).
    pub(crate) errors: AtomicUsize,
    /// `slab_nomerge`.
    pub(crate) nomerge: bool,
    /// Whether new slabs chain their objects in a random order (`CONFIG_SLAB_FREELIST_RANDOM`,
    /// on by default as in distribution kernels). A kmem boot option,
    /// `slab_freelist_random=off`, turns it off for users that want allocation-order locality
    /// more than hardening (an allocator for ordinary programs, see crates/kmem-malloc).
    pub(crate) freelist_random: bool,
    /// kfree_rcu's batches (`struct kfree_rcu_cpu`).
    pub(crate) krc: super::kfree_rcu::KfreeRcu<L>,
    /// SLAB: each possible CPU's jiffies of its next periodic `cache_reap` (an array of
    /// `possible_cpus`, made at boot), or null for SLUB and SLOB.
    pub(crate) reap_ticks: AtomicPtr<AtomicU64>,
}

impl<L: lock_api::RawMutex> SlabState<L> {
    /// An empty state; `kmem_cache_init` fills it.
    pub(crate) fn new() -> Self {
        Self {
            mutex: crate::locking::Lock::new(
                &crate::locking::SLAB_MUTEX,
                SlabList {
                    caches: ListHead::new(),
                    count: 0,
                    dead: ListHead::new(),
                },
            ),
            kmalloc: core::array::from_fn(|_| {
                core::array::from_fn(|_| AtomicPtr::new(core::ptr::null_mut()))
            }),
            kmem_cache: AtomicPtr::new(core::ptr::null_mut()),
            state: AtomicU8::new(SlabBootState::Down as u8),
            debug: SlubDebug::new(),
            order: OrderParams::new(1),
            kind: SlabAllocatorKind::Slub,
            hooked: core::sync::atomic::AtomicBool::new(false),
            errors: AtomicUsize::new(0),
            nomerge: false,
            freelist_random: true,
            krc: super::kfree_rcu::KfreeRcu::new(),
            reap_ticks: AtomicPtr::new(core::ptr::null_mut()),
        }
    }
}

/// What the slab boot options said that is printed once the slab allocator starts
/// (`kmem_cache_init`), in the order Linux prints it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SlabBootNotes<'a> {
    /// Unknown `slub_debug=` option letters (the first four).
    pub(crate) bad_debug: [Option<char>; 4],
    /// `slab=X` naming an allocator this kernel does not have (SLUB is used; see
    /// [`crate::slab::SLAB_BUILT`]).
    pub(crate) other_allocator: Option<&'a str>,
}

impl<L: lock_api::RawMutex> SlabState<L> {
    /// The state for a machine with `nr_cpus` CPUs booted with `cmdline`: the slab boot
    /// options (`slub_debug=`, `slub_min_order=`, `slub_max_order=`, `slub_min_objects=`,
    /// `slab_nomerge`, `slab_freelist_random=`, `slab=`) applied, and what must be printed.
    pub(crate) fn from_cmdline(cmdline: &str, nr_cpus: usize) -> (Self, SlabBootNotes<'_>) {
        let mut st = Self::new();
        let mut notes = SlabBootNotes::default();
        st.order = OrderParams::new(nr_cpus as u32);
        for w in cmdline.split_whitespace() {
            let (k, v) = match w.find('=') {
                Some(i) => (&w[..i], Some(&w[i + 1..])),
                None => (w, None),
            };
            match (k, v) {
                ("slub_debug", v) | ("slab_debug", v) => {
                    let mut nbad = 0;
                    st.debug.setup(v, |c| {
                        if nbad < notes.bad_debug.len() {
                            notes.bad_debug[nbad] = Some(c);
                            nbad += 1;
                        }
                    });
                }
                ("slub_min_order" | "slab_min_order", Some(v)) => {
                    if let Ok(n) = v.parse::<u32>() {
                        st.order.min_order = n.min(crate::addr::MAX_PAGE_ORDER);
                    }
                }
                ("slub_max_order" | "slab_max_order", Some(v)) => {
                    if let Ok(n) = v.parse::<u32>() {
                        st.order.max_order = n.min(crate::addr::MAX_PAGE_ORDER);
                    }
                }
                ("slub_min_objects" | "slab_min_objects", Some(v)) => {
                    if let Ok(n) = v.parse::<u32>() {
                        st.order.min_objects = n;
                    }
                }
                ("slab_nomerge" | "slub_nomerge", _) => st.nomerge = true,
                ("slab_freelist_random", Some(v)) => {
                    st.freelist_random = !matches!(v, "0" | "off" | "n" | "no");
                }
                ("slab", Some(v)) => match SlabAllocatorKind::from_option(v) {
                    Some(SlabAllocatorKind::Slab) if !crate::slab::SLAB_BUILT => {
                        st.kind = SlabAllocatorKind::Slub;
                        notes.other_allocator = Some(v);
                    }
                    Some(k) => {
                        st.kind = k;
                        *st.hooked.get_mut() = k != SlabAllocatorKind::Slub;
                        notes.other_allocator = None;
                    }
                    None => notes.other_allocator = Some(v),
                },
                _ => {}
            }
        }
        (st, notes)
    }
}

/// Errors of [`Machine::kmem_cache_create`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlabError {
    /// The name is empty or longer than [`crate::slab::slub::CACHE_NAME_LEN`] bytes.
    BadName,
    /// Size 0, above [`KMALLOC_MAX_SIZE`], or an alignment that is not a power of two.
    BadSize,
    /// No memory for the cache's metadata.
    NoMemory,
    /// The slab allocator is not initialised.
    NotReady,
}

impl fmt::Display for SlabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SlabError::BadName => "invalid cache name",
            SlabError::BadSize => "invalid object size or alignment",
            SlabError::NoMemory => "out of memory",
            SlabError::NotReady => "slab allocator not initialised",
        })
    }
}

/// A handle to a cache from [`Machine::kmem_cache_create`] (Linux's `struct kmem_cache *`).
///
/// It is `Copy` and may be shared between threads. After `kmem_cache_destroy` it is stale and
/// every use is reported and refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheHandle {
    pub(crate) ptr: NonNull<u8>,
    pub(crate) gen: u32,
}

// SAFETY: a handle is an address plus a generation; the cache it names is Sync.
unsafe impl Send for CacheHandle {}
// SAFETY: `&CacheHandle` exposes only the address and generation (Copy words); the cache behind it
// is Sync and is reached only after checking the generation.
unsafe impl Sync for CacheHandle {}

impl fmt::Debug for CacheHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheHandle({:p}#{})", self.ptr, self.gen)
    }
}

impl CacheHandle {
    /// The address of the cache's `struct kmem_cache` (for display).
    pub fn as_ptr(self) -> *const u8 {
        self.ptr.as_ptr()
    }
}

/// One line of `/proc/slabinfo` (`struct slabinfo` of mm/slab.h) plus SLUB statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlabInfo {
    /// Objects in use (total minus free objects on the node partial lists).
    pub active_objs: usize,
    /// Objects in all slabs.
    pub num_objs: usize,
    /// Object stride (`s->size`).
    pub objsize: usize,
    /// The size the user asked for (`s->object_size`).
    pub object_size: usize,
    /// Objects per slab.
    pub objperslab: u32,
    /// Pages per slab.
    pub pagesperslab: u32,
    /// Slabs.
    pub num_slabs: usize,
    /// Slabs on the node partial list.
    pub partial_slabs: usize,
    /// Aliases (caches merged into this one, itself included).
    pub refcount: i32,
    /// Tunables (SLAB's `limit`, `batchcount`, `shared`; 0 for SLUB).
    pub tunables: SlabTunables,
    /// `active_slabs` of the slabdata columns (slabs with an object in use; SLUB reports all
    /// its slabs).
    pub active_slabs: usize,
    /// `shared_avail` of the slabdata columns (objects in SLAB's per-node shared arrays).
    pub shared_avail: usize,
}

/// A cache's `/proc/slabinfo` tunables (SLAB's `enable_cpucache`/`do_tune_cpucache`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlabTunables {
    /// `limit`: most objects in a per-CPU array cache.
    pub limit: u32,
    /// `batchcount`: objects moved at once between a per-CPU array and the lists.
    pub batchcount: u32,
    /// `shared`: the per-node shared array holds `shared * batchcount` objects.
    pub shared: u32,
}

impl SlabInfo {
    /// Bytes of slab memory not usable for objects: per-slab leftover plus per-object
    /// metadata and padding (`size - object_size`), over all slabs.
    pub fn waste_bytes(&self) -> usize {
        let slab_bytes = self.pagesperslab as usize * PAGE_SIZE;
        let per_slab_left = slab_bytes - self.objperslab as usize * self.objsize;
        self.num_slabs * per_slab_left
            + self.num_objs * (self.objsize.saturating_sub(self.object_size))
    }
}

/// Writes the `/proc/slabinfo` header (mm/slab_common.c `print_slabinfo_header`).
pub fn write_slabinfo_header(out: &mut dyn Write) -> fmt::Result {
    out.write_str("slabinfo - version: 2.1\n")?;
    out.write_str(
        "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>",
    )?;
    out.write_str(" : tunables <limit> <batchcount> <sharedfactor>")?;
    out.write_str(" : slabdata <active_slabs> <num_slabs> <sharedavail>\n")
}

/// Writes one `/proc/slabinfo` line (mm/slab_common.c `cache_show`; SLUB's tunables are 0).
pub fn write_slabinfo_line(out: &mut dyn Write, name: &str, i: &SlabInfo) -> fmt::Result {
    writeln!(
        out,
        "{:<17} {:>6} {:>6} {:>6} {:>4} {:>4} : tunables {:>4} {:>4} {:>4} : slabdata {:>6} {:>6} {:>6}",
        name,
        i.active_objs,
        i.num_objs,
        i.objsize,
        i.objperslab,
        i.pagesperslab,
        i.tunables.limit,
        i.tunables.batchcount,
        i.tunables.shared,
        i.active_slabs,
        i.num_slabs,
        i.shared_avail
    )
}

// ------------------------------------------------------------------ the allocator interface

/// A cache's SLUB statistics (the `CONFIG_SLUB_STATS` files of `/sys/kernel/slab/<cache>/`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlabStats {
    /// Allocations from the CPU freelist.
    pub alloc_fastpath: u64,
    /// Allocations that needed the slow path.
    pub alloc_slowpath: u64,
    /// Frees to the CPU's active slab.
    pub free_fastpath: u64,
    /// Frees to another slab.
    pub free_slowpath: u64,
    /// Slow-path frees to a frozen slab.
    pub free_frozen: u64,
    /// Frees that put a slab on the node partial list.
    pub free_add_partial: u64,
    /// Frees that took an empty slab off the partial list.
    pub free_remove_partial: u64,
    /// Slabs taken from the node partial list for a CPU.
    pub alloc_from_partial: u64,
    /// New slabs from the page allocator.
    pub alloc_slab: u64,
    /// CPU freelist refilled from the active slab's remote frees.
    pub alloc_refill: u64,
    /// Slabs given back to the page allocator.
    pub free_slab: u64,
    /// CPU slabs flushed.
    pub cpuslab_flush: u64,
    /// Deactivated slabs that were full.
    pub deactivate_full: u64,
    /// Deactivated slabs that were empty.
    pub deactivate_empty: u64,
    /// Deactivated slabs put on the partial list.
    pub deactivate_to_tail: u64,
    /// Exhausted CPU slabs dropped without list work.
    pub deactivate_bypass: u64,
    /// New slabs that fell back to the minimum order.
    pub order_fallback: u64,
    /// Compare-and-swap retries.
    pub cmpxchg_double_fail: u64,
    /// CPU partial slabs made active.
    pub cpu_partial_alloc: u64,
    /// Frees that put a slab on a CPU partial list.
    pub cpu_partial_free: u64,
    /// Slabs moved from the node list to a CPU partial list.
    pub cpu_partial_node: u64,
    /// CPU partial lists drained to the node list.
    pub cpu_partial_drain: u64,
    // SLUB sheaves (Linux 6.18 `enum stat_item`, the `/sys/kernel/slab/<cache>/` file names
    // in the comments).
    /// `ALLOC_PCS` (`alloc_cpu_sheaf`): allocations from a CPU's main sheaf.
    pub alloc_pcs: u64,
    /// `FREE_PCS` (`free_cpu_sheaf`): frees onto a CPU's main sheaf.
    pub free_pcs: u64,
    /// `FREE_RCU_SHEAF` (`free_rcu_sheaf`): `kfree_rcu` into an rcu_free sheaf.
    pub free_rcu_sheaf: u64,
    /// `FREE_RCU_SHEAF_FAIL` (`free_rcu_sheaf_fail`).
    pub free_rcu_sheaf_fail: u64,
    /// `SHEAF_FLUSH` (`sheaf_flush`): objects flushed from sheaves to slabs.
    pub sheaf_flush: u64,
    /// `SHEAF_REFILL` (`sheaf_refill`): objects refilled into sheaves from slabs.
    pub sheaf_refill: u64,
    /// `SHEAF_ALLOC` (`sheaf_alloc`): sheaves allocated.
    pub sheaf_alloc: u64,
    /// `SHEAF_FREE` (`sheaf_free`): sheaves freed.
    pub sheaf_free: u64,
    /// `BARN_GET` (`barn_get`): full sheaves taken from the barn.
    pub barn_get: u64,
    /// `BARN_GET_FAIL` (`barn_get_fail`): the barn had no full sheaf.
    pub barn_get_fail: u64,
    /// `BARN_PUT` (`barn_put`): full sheaves put into the barn.
    pub barn_put: u64,
    /// `BARN_PUT_FAIL` (`barn_put_fail`): the barn could not take a full sheaf.
    pub barn_put_fail: u64,
    /// `SHEAF_PREFILL_FAST` (`sheaf_prefill_fast`): prefill took the CPU's spare.
    pub sheaf_prefill_fast: u64,
    /// `SHEAF_PREFILL_SLOW` (`sheaf_prefill_slow`): prefill went to the barn.
    pub sheaf_prefill_slow: u64,
    /// `SHEAF_PREFILL_OVERSIZE` (`sheaf_prefill_oversize`): prefill above the capacity.
    pub sheaf_prefill_oversize: u64,
    /// `SHEAF_RETURN_FAST` (`sheaf_return_fast`): a returned sheaf became the CPU's spare.
    pub sheaf_return_fast: u64,
    /// `SHEAF_RETURN_SLOW` (`sheaf_return_slow`): a returned sheaf went to the barn or away.
    pub sheaf_return_slow: u64,
}

/// `struct kmem_cache_args` (include/linux/slab.h): the optional arguments of
/// `kmem_cache_create`.
#[derive(Clone, Copy, Debug, Default)]
pub struct KmemCacheArgs {
    /// `align`: required alignment of the objects (0: the default).
    pub align: usize,
    /// `ctor`: run once per object when its slab is created.
    pub ctor: Option<fn(*mut u8)>,
    /// `sheaf_capacity`: objects per per-CPU sheaf (SLUB, Linux 6.18). 0: the default, which
    /// is no sheaves for a cache other than a kmalloc cache. A cache with a capacity is
    /// never merged with another.
    pub sheaf_capacity: u32,
    /// kmem's: the least order of the cache's slabs (SLUB; 0: what `calculate_order` picks).
    /// It is `slub_min_order=` for one cache: the order is at least this, and `slub_max_order`
    /// is raised to it for the cache, as `setup_slub_min_order` raises it for all
    /// (mm/slub.c). Linux set one cache's order through the writable sysfs `order` file
    /// (`order_store` → `calculate_sizes(s, order)`, later made read-only); a cache that
    /// knows its objects fill a larger slab better asks here. A cache with a least order is
    /// never merged into another. SLAB and SLOB ignore it.
    pub min_order: u32,
}

/// The object layout of a cache (`/sys/kernel/slab/<cache>/` files).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabLayout {
    /// `object_size`: what the user asked for.
    pub object_size: usize,
    /// `size`: the object stride.
    pub size: usize,
    /// `offset`: where a free object keeps its free pointer.
    pub offset: usize,
    /// `inuse`: where the metadata starts.
    pub inuse: usize,
    /// `red_left_pad`.
    pub red_left_pad: usize,
    /// `align`.
    pub align: usize,
    /// Slab order.
    pub order: u32,
    /// Objects per slab.
    pub objects: u32,
    /// The cache's flags (debug flags included).
    pub flags: SlabFlags,
    /// `min_partial`.
    pub min_partial: u32,
    /// Most slabs on a CPU partial list.
    pub cpu_partial_slabs: u32,
}

/// The operations every slab allocator provides behind the cache API (what `mm/slab.h`
/// declares for SLAB, SLUB and SLOB alike): `crate::slab::slub::Slub`,
/// `crate::slab::slob::Slob` and SLAB. The one in use is chosen at boot by `slab=`
/// ([`SlabAllocatorKind`]) and called through `dispatch!` in [`crate::slab`]: a `match` on the
/// kind, which never changes after boot, with every arm a direct (inlinable) call of a
/// monomorphised method — no function pointer, no vtable.
///
/// What the common code does before calling in: `kmalloc(0)` returns `ZERO_SIZE_PTR`;
/// `kfree`/`ksize` of NULL/`ZERO_SIZE_PTR` return early; `kfree` and `ksize` find the page
/// ([`Owner`]) and call in only for [`PageType::Slab`] pages (an allocator's own pages);
/// large kmalloc pages ([`PageType::LargeKmalloc`], from `kmalloc_large`) are freed and
/// sized by the common code. `/proc/slabinfo`'s header and line format are common
/// ([`write_slabinfo_line`]); an allocator gives the figures ([`SlabInfo`]).
pub(crate) trait SlabAllocator {
    /// Whether and how `/proc/slabinfo` exists.
    const SLABINFO: SlabinfoMode;
    /// The name of the allocator's CPU-dead hotplug state (`"slub:dead"`, SLAB's
    /// `"slab:dead"`), or `None` when it keeps no per-CPU state (SLOB). Registered in the
    /// slot [`crate::mm::cpuhp::CpuhpState::SlubDead`] with a teardown that calls
    /// [`SlabAllocator::cpu_dead`].
    const CPUHP_DEAD: Option<&'static str>;

    /// `kmem_cache_init`: bootstraps the allocator and creates the kmalloc caches.
    fn init<P: Platform>(m: &SlabLayer<P>) -> Result<(), SlabError>;
    /// `__kmem_cache_create` (or an alias of a mergeable cache).
    fn create<P: Platform>(
        m: &SlabLayer<P>,
        name: &str,
        size: usize,
        align: usize,
        flags: SlabFlags,
        ctor: Option<fn(*mut u8)>,
    ) -> Result<CacheHandle, SlabError>;
    /// `__kmem_cache_create_args`: as [`Self::create`] with [`KmemCacheArgs`] (allocators
    /// without sheaves ignore `sheaf_capacity`).
    fn create_args<P: Platform>(
        m: &SlabLayer<P>,
        name: &str,
        size: usize,
        args: &KmemCacheArgs,
        flags: SlabFlags,
    ) -> Result<CacheHandle, SlabError> {
        Self::create(m, name, size, args.align, flags, args.ctor)
    }
    /// `slab_alloc_node` for a request of `orig` bytes (`None`: the object size).
    fn alloc<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
        orig: Option<usize>,
    ) -> Option<NonNull<u8>>;
    /// `kmem_cache_free`.
    fn free<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        p: *mut u8,
        caller: &'static Location<'static>,
    );
    /// `kmem_cache_alloc_bulk`.
    fn alloc_bulk<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        gfp: GfpFlags,
        out: &mut [*mut u8],
        caller: &'static Location<'static>,
    ) -> usize;
    /// `kmem_cache_free_bulk`.
    fn free_bulk<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        objs: &[*mut u8],
        caller: &'static Location<'static>,
    );
    /// `__kmem_cache_shrink`.
    fn shrink<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        caller: &'static Location<'static>,
    ) -> bool;
    /// `kmem_cache_destroy`.
    fn destroy<P: Platform>(m: &SlabLayer<P>, c: CacheHandle, caller: &'static Location<'static>);
    /// `validate_slab_cache`.
    fn validate<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        caller: &'static Location<'static>,
    ) -> usize;
    /// The cache's name.
    fn name<P: Platform>(m: &SlabLayer<P>, c: CacheHandle) -> Option<&'static str>;
    /// `get_slabinfo`.
    fn info<P: Platform>(m: &SlabLayer<P>, c: CacheHandle) -> Option<SlabInfo>;
    /// Allocator statistics.
    fn stats<P: Platform>(m: &SlabLayer<P>, c: CacheHandle) -> Option<SlabStats>;
    /// Object layout.
    fn layout<P: Platform>(c: CacheHandle) -> Option<SlabLayout>;
    /// Walks the cache list (newest first) under `slab_mutex`.
    fn for_each<P: Platform>(m: &SlabLayer<P>, f: &mut dyn FnMut(CacheHandle, &str));
    /// Walks the cache list with each cache's `/proc/slabinfo` figures.
    fn for_each_info<P: Platform>(m: &SlabLayer<P>, f: &mut dyn FnMut(&str, &SlabInfo));
    /// `kmalloc_slab`: the kmalloc cache for a size and GFP flags.
    fn kmalloc_cache<P: Platform>(
        m: &SlabLayer<P>,
        size: usize,
        gfp: GfpFlags,
    ) -> Option<CacheHandle>;

    // The kmalloc family's needs (crate::slab::kmalloc).

    /// `__kmalloc`: `size` bytes (`size > 0`, any size). Sizes the allocator does not serve
    /// itself go to [`SlabLayer::kmalloc_large`] (SLUB: above [`KMALLOC_MAX_CACHE_SIZE`];
    /// SLOB: from `PAGE_SIZE - minalign`).
    fn kmalloc<P: Platform>(
        m: &SlabLayer<P>,
        size: usize,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
    ) -> Option<NonNull<u8>>;
    /// `kfree` of `p`, an object of a slab ([`Owner::Slab`]`(page, cache)`).
    ///
    /// # Safety
    /// `page` is a [`PageType::Slab`] head page of this machine's allocator that contains
    /// `p`, and `cache` is that page's `mapping` word, as [`SlabLayer::virt_to_slab`] or
    /// [`SlabLayer::owner_of`] read them.
    unsafe fn kfree<P: Platform>(
        m: &SlabLayer<P>,
        page: PagePtr,
        cache: usize,
        p: *mut u8,
        caller: &'static Location<'static>,
    );
    /// `kfree` of a block of `kmalloc(size, gfp)`, `size` in `1..=KMALLOC_MAX_CACHE_SIZE`, with
    /// the cache found from the size class rather than the page.
    ///
    /// # Safety
    /// `p` was returned by `kmalloc` of this machine for a size of the same kmalloc size class
    /// and the same `kmalloc_type` of `gfp`, and is freed once.
    unsafe fn kfree_sized<P: Platform>(
        m: &SlabLayer<P>,
        p: *mut u8,
        size: usize,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
    );
    /// `kmalloc_nolock` (Linux 6.18, SLUB only): kmalloc from any context without waiting.
    /// The default (SLAB, SLOB, which Linux removed before it existed) always fails.
    fn kmalloc_nolock<P: Platform>(
        _m: &SlabLayer<P>,
        _size: usize,
        _gfp: GfpFlags,
        _caller: &'static Location<'static>,
    ) -> Option<NonNull<u8>> {
        None
    }
    /// `kfree_nolock` of a non-null pointer. The default frees with `kfree`'s path (SLAB and
    /// SLOB have no `kmalloc_nolock`; their objects come from `kmalloc`, whose callers may
    /// wait).
    fn kfree_nolock<P: Platform>(m: &SlabLayer<P>, p: *mut u8, caller: &'static Location<'static>) {
        let _ = caller;
        m.kfree(p);
    }
    /// Frees what the `*_nolock` functions deferred (SLUB); the default has nothing to do.
    fn drain_deferred<P: Platform>(_m: &SlabLayer<P>) {}
    /// `krealloc` keeping the block: the bookkeeping of a shrink or growth within `ksize`.
    fn krealloc_in_place<P: Platform>(m: &SlabLayer<P>, p: *mut u8, new_size: usize);
    /// `get_orig_size` of the slab object at `p` for `krealloc`: the size last asked for when
    /// its cache tracks it (`slub_debug_orig_size`), 0 when it does not.
    /// The default: the allocator does not track requested sizes (SLAB, SLOB).
    fn krealloc_orig_size<P: Platform>(_m: &SlabLayer<P>, _p: *mut u8) -> usize {
        0
    }
    /// `skip_orig_size_check` (mm/slub.c, from `__ksize`): the caller of `ksize` may use the
    /// whole object at `p`, so its requested size becomes the object size and the kmalloc
    /// red zone stops covering the slack; nothing when `p` is not an object start. The
    /// default: no requested sizes (SLAB, SLOB).
    ///
    /// # Safety
    /// `page` and `cache` as for [`Self::ksize`].
    unsafe fn skip_orig_size_check<P: Platform>(
        _m: &SlabLayer<P>,
        _page: PagePtr,
        _cache: usize,
        _p: *const u8,
    ) {
    }
    /// `ksize` of `p`, a pointer into `page`, a [`PageType::Slab`] head page whose
    /// `mapping` is `cache` (`__ksize`: SLUB's `slab_ksize(cache)`, SLOB's block header).
    /// Whether `p` must be an object start is the allocator's: SLUB answers the cache's
    /// `slab_ksize` for any pointer into the slab, as 6.18's `__ksize` (mm/slub.c), which does
    /// not check it; SLAB warns and returns 0 for a pointer that is not an object start, SLOB
    /// for one that is not a block with a kmalloc header.
    ///
    /// # Safety
    /// `page` and `cache` as for [`Self::kfree`]: a slab head page of this machine holding
    /// `p` and its `mapping` word.
    unsafe fn ksize<P: Platform>(
        m: &SlabLayer<P>,
        page: PagePtr,
        cache: usize,
        p: *const u8,
    ) -> usize;
    /// `kmalloc_size_roundup`: the size `kmalloc(size)` really gives (what `ksize` of the
    /// block returns) for sizes up to the allocator's own limit; larger sizes go to the
    /// common page rounding.
    fn kmalloc_size_roundup(size: usize) -> usize;

    // Hooks with defaults (an allocator overrides what it has).

    /// The cache's constructor (`s->ctor`), for KFENCE objects, which the allocator does not
    /// construct. The default: none.
    fn ctor<P: Platform>(_c: CacheHandle) -> Option<fn(*mut u8)> {
        None
    }

    /// CPU `cpu` went offline: give back its per-CPU objects/slabs (`slub_cpu_dead`,
    /// SLAB's `slab_dead_cpu`).
    ///
    /// # Safety
    /// No thread uses `cpu`'s per-CPU data during the call (the CPU-dead hook's contract).
    unsafe fn cpu_dead<P: Platform>(_m: &SlabLayer<P>, _cpu: usize) {}
    /// The periodic reap for the calling CPU (SLAB's `cache_reap`: drain per-CPU and
    /// shared arrays a little, free free slabs), driven by [`crate::slab::SlabLayer::slab_tick`].
    fn reap<P: Platform>(_m: &SlabLayer<P>, _cpu: usize) {}
    /// A write to `/proc/slabinfo` (SLAB's `slabinfo_write`: `"name limit batchcount
    /// shared"`). Only called when [`SlabAllocator::SLABINFO`] is `ReadWrite`.
    ///
    /// # Errors
    /// Linux's: `EINVAL` for bad text or tunables, `ENOMEM`, `EIO` (SLUB's `slabinfo_write`).
    fn slabinfo_write<P: Platform>(_m: &SlabLayer<P>, _text: &str) -> Result<(), Errno> {
        Err(Errno::EIO)
    }
}

// ------------------------------------------------------------------ object lookup

/// Where a pointer lands.
pub(crate) enum Owner {
    /// An object slot of a slab: the slab head page and its cache.
    Slab(PagePtr, usize),
    /// A large kmalloc (compound pages from the page allocator).
    Large(PagePtr),
    /// Memory kmem manages but did not hand out through kmalloc.
    Other(PagePtr),
    /// No struct page.
    Unknown,
}

impl<P: Platform> SlabLayer<P> {
    /// `virt_to_slab`: the slab head page of `p` and its cache, if `p` lies in a slab page
    /// (the check the free fast paths make inline; [`Self::owner_of`] classifies the rest).
    /// Reads one or two `struct page`s: the page of `p` and, for a tail page, its head.
    #[inline(always)]
    pub(crate) fn virt_to_slab(&self, p: *const u8) -> Option<(PagePtr, usize)> {
        let head = self.virt_to_page_fast(p)?.compound_head();
        (head.raw_page_type() >> 24 == PageType::Slab as u32).then(|| (head, head.mapping()))
    }

    /// `virt_to_slab` / `virt_to_head_page`.
    #[inline]
    pub(crate) fn owner_of(&self, p: *const u8) -> Owner {
        let Some(page) = self.virt_to_page(VirtAddr::new(p as usize)) else {
            return Owner::Unknown;
        };
        let head = page.compound_head();
        match head.page_type() {
            Some(PageType::Slab) => Owner::Slab(head, head.mapping()),
            Some(PageType::LargeKmalloc) => Owner::Large(head),
            _ => Owner::Other(head),
        }
    }
}

#[cfg(test)]
mod tests;
