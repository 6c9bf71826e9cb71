//! The heap's size classes: which `malloc-N` cache serves a request up to 16 KiB, and the
//! least slab order each cache asks for.

/// Largest size class; larger blocks come from the page allocator.
pub(super) const CLASS_MAX: usize = 16 << 10;
/// Classes up to 256 bytes: 16-byte steps to 128, 32-byte steps to 256.
const NR_SMALL: usize = 12;
/// Four classes per power of two from 256 bytes to 1 KiB, eight from 1 KiB to 16 KiB.
pub(super) const NR_CLASSES: usize = NR_SMALL + 4 * 2 + 8 * 4;
/// Object size of each small class.
const SMALL: [usize; NR_SMALL] = [16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256];
/// Index of the first class above 1 KiB.
const FIT_FIRST: usize = NR_SMALL + 4 * 2;
/// Largest size of the slab-fitted classes ([`fit_class`]).
pub(super) const FIT_MAX: usize = 8 << 10;

/// Object size of the `j`-th class (0..8) above `2^k` bytes, `k` in 10..13: the largest
/// multiple of 16 bytes of which `15 - j` fill a slab of `16 * 2^k` bytes (16 KiB for the
/// classes above 1 KiB, 32 KiB above 2 KiB, 64 KiB above 4 KiB).
///
/// A SLUB slab holds `slab / size` objects and leaves the rest unused, so what an object
/// costs is `slab / objects`, not its size: the old classes (`2^k + i * 2^k / 8`) cost up to
/// 7 % more than their size (`malloc-1280`: 12 in a 16 KiB slab, 1,365 bytes each), and
/// the classes between two of these sizes cost as much as the larger one. These classes are
/// those costs themselves, eight per power of two as before: the same number of caches, each
/// as large as its objects' share of the slab (the largest within 16 bytes).
const fn fit_class(k: usize, j: usize) -> usize {
    ((16usize << k) / (15 - j)) & !15
}

/// The least slab order a class asks for (`KmemCacheArgs::min_order`; 0: SLUB's choice).
/// The classes above 4 KiB fill 64 KiB slabs (order 4, [`fit_class`]); at SLUB's default
/// `slub_max_order` (3, `PAGE_ALLOC_COSTLY_ORDER`) their slabs would be 32 KiB and leave up
/// to a seventh of the slab unused (4,368-byte objects: 7 in 32 KiB, 15 in 64 KiB). The
/// classes of 4 KiB and 8 KiB fill any slab and stay mergeable with kmalloc's.
pub(super) const fn slab_order_of(class: usize) -> u32 {
    if class > 4096 && class < FIT_MAX {
        4
    } else {
        0
    }
}

/// Class index of each size from 1 KiB + 1 to [`FIT_MAX`], by `(size - 1) / 16`.
const FIT_INDEX: [u8; FIT_MAX / 16] = fit_index();

const fn fit_index() -> [u8; FIT_MAX / 16] {
    let mut t = [0u8; FIT_MAX / 16];
    let mut i = 1024 / 16;
    while i < FIT_MAX / 16 {
        let size = i * 16 + 16; // the largest size with this index
        let k = (usize::BITS - 1 - (size - 1).leading_zeros()) as usize;
        let mut j = 0;
        while fit_class(k, j) < size {
            j += 1;
        }
        t[i] = (FIT_FIRST + (k - 10) * 8 + j) as u8;
        i += 1;
    }
    t
}

/// The size class of `size` (`size <= CLASS_MAX`): its index and object size.
///
/// The classes are a general-purpose allocator's (16-byte steps for small blocks, then four
/// classes per power of two to 1 KiB and eight above, keeping the waste under a quarter and an
/// eighth), each a SLUB cache of the
/// node (`malloc-N`), as kernel subsystems make their own `kmem_cache`s. kmalloc's own caches
/// double above 256 bytes, which wastes up to half of a block just above a power of two (a
/// 4 KiB database page plus its header), and under `slub_debug=Z` red-zone the bytes past the
/// requested size, which a C program may use (`malloc_usable_size`). From 1 KiB to 8 KiB the
/// classes fill their slabs ([`fit_class`]); above 8 KiB, where a slab holds 2 to 4 objects,
/// they are eighths of the power of two.
#[inline]
pub const fn class_of(size: usize) -> (usize, usize) {
    if size <= 128 {
        let i = if size == 0 { 0 } else { (size - 1) / 16 };
        return (i, (i + 1) * 16);
    }
    if size <= 256 {
        let i = 8 + (size - 129) / 32;
        return (i, SMALL[i]);
    }
    let k = (usize::BITS - 1 - (size - 1).leading_zeros()) as usize; // 2^k < size <= 2^(k+1)
    let base = 1usize << k;
    if k < 10 {
        let step = base >> 2;
        let quarter = (size - base).div_ceil(step); // 1..=4
        return (NR_SMALL + (k - 8) * 4 + quarter - 1, base + quarter * step);
    }
    if size <= FIT_MAX {
        let i = FIT_INDEX[(size - 1) / 16] as usize;
        let j = (i - FIT_FIRST) % 8;
        return (i, fit_class(k, j));
    }
    let step = base >> 3;
    let eighth = (size - base).div_ceil(step); // 1..=8
    (
        NR_SMALL + 8 + (k - 10) * 8 + eighth - 1,
        base + eighth * step,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        assert_eq!(class_of(0), (0, 16));
        assert_eq!(class_of(1), (0, 16));
        assert_eq!(class_of(17), (1, 32));
        assert_eq!(class_of(128), (7, 128));
        assert_eq!(class_of(129), (8, 160));
        assert_eq!(class_of(256), (11, 256));
        assert_eq!(class_of(257), (12, 320));
        assert_eq!(class_of(513), (16, 640));
        assert_eq!(class_of(1024), (19, 1024));
        assert_eq!(class_of(1025), (20, 1088));
        assert_eq!(class_of(1032), (20, 1088));
        assert_eq!(class_of(1089), (21, 1168));
        assert_eq!(class_of(2048), (27, 2048));
        assert_eq!(class_of(2049), (28, 2176));
        assert_eq!(class_of(4096 + 272), (36, 4368));
        assert_eq!(class_of(4096 + 273), (37, 4672));
        assert_eq!(class_of(8192), (43, 8192));
        assert_eq!(class_of(8193), (44, 9216));
        assert_eq!(class_of(16384), (NR_CLASSES - 1, 16384));
        let mut prev = 0;
        for size in 1..=CLASS_MAX {
            let (i, c) = class_of(size);
            assert!(c >= size && c % 16 == 0, "{size} -> {c}");
            assert!(c * 4 < size * 5 + 4 * 32, "{size} -> {c}");
            if size > 1024 {
                assert!(c * 8 < size * 9 + 8 * 128, "{size} -> {c}");
            }
            assert!(i < NR_CLASSES && i >= prev);
            prev = i;
        }
    }
}
