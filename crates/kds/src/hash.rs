//! Multiplicative hashing, as in `<linux/hash.h>`.
//!
//! `hash_32(val, bits)` multiplies by a 32-bit constant close to 2^32/φ and keeps the top
//! `bits` bits; `hash_64` does the same in 64 bits. The high bits of the product depend on all
//! bits of the input, which is why the *top* bits are kept.

/// `GOLDEN_RATIO_32` from include/linux/hash.h (the 32-bit golden-ratio multiplier used since
/// Linux 4.7).
pub const GOLDEN_RATIO_32: u32 = 0x61C8_8647;
/// `GOLDEN_RATIO_64` from include/linux/hash.h.
pub const GOLDEN_RATIO_64: u64 = 0x61C8_8646_80B5_83EB;

/// `__hash_32(val)`: the full 32-bit product, before the top bits are taken.
#[inline(always)]
pub const fn __hash_32(val: u32) -> u32 {
    val.wrapping_mul(GOLDEN_RATIO_32)
}

/// `hash_32(val, bits)`: hashes `val` into `bits` bits (`0 < bits <= 32`).
///
/// # Panics
/// In debug builds, if `bits` is 0 or above 32.
#[inline(always)]
pub const fn hash_32(val: u32, bits: u32) -> u32 {
    debug_assert!(bits > 0 && bits <= 32);
    __hash_32(val) >> (32 - bits)
}

/// `hash_64(val, bits)`: hashes `val` into `bits` bits (`0 < bits <= 32`), the 64-bit
/// multiplicative variant.
///
/// # Panics
/// In debug builds, if `bits` is 0 or above 32.
#[inline(always)]
pub const fn hash_64(val: u64, bits: u32) -> u32 {
    debug_assert!(bits > 0 && bits <= 32);
    (val.wrapping_mul(GOLDEN_RATIO_64) >> (64 - bits)) as u32
}

/// `hash_long(val, bits)`: [`hash_64`] on 64-bit targets, [`hash_32`] on 32-bit ones.
#[inline(always)]
pub const fn hash_long(val: usize, bits: u32) -> u32 {
    #[cfg(target_pointer_width = "64")]
    {
        hash_64(val as u64, bits)
    }
    #[cfg(not(target_pointer_width = "64"))]
    {
        hash_32(val as u32, bits)
    }
}

/// `hash_ptr(ptr, bits)`: hashes a pointer's address.
#[inline(always)]
pub fn hash_ptr<T: ?Sized>(ptr: *const T, bits: u32) -> u32 {
    hash_long(ptr.cast::<u8>() as usize, bits)
}

/// `hash32_ptr(ptr)`: folds a pointer into 32 bits (high half xor low half on 64-bit).
#[inline(always)]
pub fn hash32_ptr<T: ?Sized>(ptr: *const T) -> u32 {
    let v = ptr.cast::<u8>() as usize as u64;
    (v ^ (v >> 32)) as u32
}

/// Keys a hash table (the `hashtable` module) can hash: `hash_min` picks [`hash_32`] for keys
/// of at most 4 bytes and [`hash_long`] otherwise, as include/linux/hashtable.h does by
/// `sizeof`.
pub trait HashKey: Copy {
    /// `hash_min(val, bits)`.
    fn hash_min(self, bits: u32) -> u32;
}

macro_rules! small_key {
    ($($t:ty),*) => {$(
        impl HashKey for $t {
            #[inline(always)]
            fn hash_min(self, bits: u32) -> u32 { hash_32(self as u32, bits) }
        }
    )*};
}
macro_rules! long_key {
    ($($t:ty),*) => {$(
        impl HashKey for $t {
            #[inline(always)]
            fn hash_min(self, bits: u32) -> u32 { hash_long(self as usize, bits) }
        }
    )*};
}
small_key!(u8, u16, u32, i8, i16, i32, bool, char);
long_key!(u64, i64, usize, isize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // The multiplier itself for 1, and the top bits of it.
        assert_eq!(__hash_32(1), 0x61C8_8647);
        assert_eq!(hash_32(1, 32), 0x61C8_8647);
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(0, 10), 0);
        assert_eq!(hash_64(1, 32), 0x61C8_8646);
        assert_eq!(hash_64(2, 4), 0xC);
        // The top 16 bits of both golden-ratio constants are 0x61C8.
        assert_eq!(hash_long(1, 16), 0x61C8);
        assert_eq!(5u32.hash_min(6), hash_32(5, 6));
        assert_eq!(5u64.hash_min(6), hash_64(5, 6));
    }

    #[test]
    fn spreads_sequential_keys() {
        // 1024 sequential keys over 64 buckets: no bucket should be empty or hold more than
        // four times its fair share.
        let mut buckets = [0u32; 64];
        for k in 0..1024u32 {
            buckets[hash_32(k, 6) as usize] += 1;
        }
        assert!(buckets.iter().all(|&c| c > 0 && c <= 64), "{buckets:?}");
    }
}
