//! Name hashing, as in `<linux/stringhash.h>` and fs/namei.c: `full_name_hash`,
//! `hashlen_string` and the `hash_len` packing the dcache uses.
//!
//! Linux hashes path components a word at a time on architectures with
//! `CONFIG_DCACHE_WORD_ACCESS` (x86 among them): each full `unsigned long` of the name is mixed
//! into two state words `x`, `y` (`y` seeded with the salt, usually the parent dentry's
//! address), the tail word is masked to the bytes that belong to the name, and `fold_hash`
//! folds the state into 32 bits. This module does the same, with the 64-bit mix on 64-bit
//! targets and the 32-bit one elsewhere, reading words little-endian as x86 does, so a hash
//! equals the one an x86 Linux kernel of the same width computes for the same salt and bytes.
//!
//! The incremental byte-at-a-time helpers (`init_name_hash`, `partial_name_hash`,
//! `end_name_hash`) are stringhash.h's, for callers that hash names character by character
//! (they give different values from `full_name_hash`, as in Linux).

#![forbid(unsafe_code)]

use crate::hash::__hash_32;
#[cfg(target_pointer_width = "64")]
use crate::hash::GOLDEN_RATIO_64;

/// The bytes of one `unsigned long`.
const WORD: usize = core::mem::size_of::<usize>();

/// `HASH_MIX(x, y, a)` (fs/namei.c): the 64-bit mix with rotations (12, 45).
#[cfg(target_pointer_width = "64")]
#[inline(always)]
fn hash_mix(x: &mut usize, y: &mut usize, a: usize) {
    *x ^= a;
    *y ^= *x;
    *x = x.rotate_left(12);
    *x = x.wrapping_add(*y);
    *y = y.rotate_left(45);
    *y = y.wrapping_mul(9);
}

/// `HASH_MIX(x, y, a)` (fs/namei.c): the 32-bit mix with rotations (7, 20).
#[cfg(not(target_pointer_width = "64"))]
#[inline(always)]
fn hash_mix(x: &mut usize, y: &mut usize, a: usize) {
    *x ^= a;
    *y ^= *x;
    *x = x.rotate_left(7);
    *x = x.wrapping_add(*y);
    *y = y.rotate_left(20);
    *y = y.wrapping_mul(9);
}

/// `fold_hash(x, y)` (fs/namei.c, 64-bit): two multiplications by `GOLDEN_RATIO_64`, top half.
#[cfg(target_pointer_width = "64")]
#[inline(always)]
fn fold_hash(x: usize, y: usize) -> u32 {
    let (x, mut y) = (x as u64, y as u64);
    y ^= x.wrapping_mul(GOLDEN_RATIO_64);
    y = y.wrapping_mul(GOLDEN_RATIO_64);
    (y >> 32) as u32
}

/// `fold_hash(x, y)` (fs/namei.c, 32-bit): `__hash_32(y ^ __hash_32(x))`.
#[cfg(not(target_pointer_width = "64"))]
#[inline(always)]
fn fold_hash(x: usize, y: usize) -> u32 {
    __hash_32(y as u32 ^ __hash_32(x as u32))
}

/// Loads up to one word of `bytes` little-endian, zero-padded (what `load_unaligned_zeropad`
/// followed by the byte mask leaves of a short tail).
#[inline(always)]
fn load_word(bytes: &[u8]) -> usize {
    let mut w = [0u8; WORD];
    let n = bytes.len().min(WORD);
    w[..n].copy_from_slice(&bytes[..n]);
    usize::from_le_bytes(w)
}

/// `full_name_hash(salt, name, len)`: the 32-bit hash of `name` (all its bytes, NULs
/// included) under `salt`.
pub fn full_name_hash(salt: usize, name: &[u8]) -> u32 {
    let (mut x, mut y) = (0usize, salt);
    let mut words = name.chunks_exact(WORD);
    for w in words.by_ref() {
        hash_mix(&mut x, &mut y, load_word(w));
    }
    // The tail (fewer than WORD bytes, possibly none) is xor-ed in without a mix round.
    x ^= load_word(words.remainder());
    fold_hash(x, y)
}

/// `hashlen_create(hash, len)`: packs a hash and a length into one `u64` (length high).
#[inline(always)]
pub const fn hashlen_create(hash: u32, len: u32) -> u64 {
    ((len as u64) << 32) | hash as u64
}

/// `hashlen_hash(hashlen)`: the hash half.
#[inline(always)]
pub const fn hashlen_hash(hashlen: u64) -> u32 {
    hashlen as u32
}

/// `hashlen_len(hashlen)`: the length half.
#[inline(always)]
pub const fn hashlen_len(hashlen: u64) -> u32 {
    (hashlen >> 32) as u32
}

/// `hashlen_string(salt, name)`: hash and length of the NUL-terminated string at the start of
/// `name` (the end of the slice counts as the terminator).
///
/// Computed as fs/namei.c does, a word at a time without knowing the length in advance: each
/// word is tested for a zero byte (`has_zero`: `(a - 0x01..01) & !a & 0x80..80`, exact for the
/// lowest zero byte of a little-endian word), full words are mixed, and the word holding the
/// NUL contributes the bytes before it. The result equals
/// `hashlen_create(full_name_hash(salt, s), s.len())` for that string `s` — the property
/// lib/test_hash.c checks.
pub fn hashlen_string(salt: usize, name: &[u8]) -> u64 {
    const ONES: usize = usize::MAX / 0xff;
    const HIGHS: usize = ONES << 7;
    let (mut x, mut y) = (0usize, salt);
    let mut len = 0usize;
    loop {
        let a = load_word(name.get(len..).unwrap_or(&[]));
        let zeros = a.wrapping_sub(ONES) & !a & HIGHS;
        if zeros != 0 {
            let before = zeros.trailing_zeros() as usize / 8;
            let keep = if before == 0 {
                0
            } else {
                usize::MAX >> (8 * (WORD - before))
            };
            x ^= a & keep;
            let total = u32::try_from(len + before).unwrap_or(u32::MAX);
            return hashlen_create(fold_hash(x, y), total);
        }
        hash_mix(&mut x, &mut y, a);
        len += WORD;
    }
}

/// `init_name_hash(salt)`: the starting value of an incremental name hash.
#[inline(always)]
pub const fn init_name_hash(salt: usize) -> usize {
    salt
}

/// `partial_name_hash(c, prevhash)`: folds one more character in.
#[inline(always)]
pub const fn partial_name_hash(c: u8, prevhash: usize) -> usize {
    let c = c as usize;
    prevhash
        .wrapping_add(c << 4)
        .wrapping_add(c >> 4)
        .wrapping_mul(11)
}

/// `end_name_hash(hash)`: the final 32-bit value of an incremental name hash.
#[inline(always)]
pub const fn end_name_hash(hash: usize) -> u32 {
    __hash_32(hash as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_bytes_and_word_boundaries() {
        // Trailing NULs are invisible to the hash (the tail is xor-ed in zero-padded): only the
        // length tells such names apart, which is why the dcache compares `hash_len`, hash and
        // length together.
        assert_eq!(
            full_name_hash(0, b"abcdefgh"),
            full_name_hash(0, b"abcdefgh\0")
        );
        assert_eq!(full_name_hash(0, b"abc"), full_name_hash(0, b"abc\0"));
        assert_ne!(full_name_hash(0, b"abc"), full_name_hash(0, b"abd"));
        assert_ne!(
            full_name_hash(0, b"abcdefgh"),
            full_name_hash(0, b"abcdefgi")
        );
        assert_eq!(
            hashlen_string(7, b"abc\0def"),
            hashlen_create(full_name_hash(7, b"abc"), 3)
        );
        assert_eq!(hashlen_len(hashlen_string(0, b"")), 0);
        // The salt matters.
        assert_ne!(full_name_hash(1, b"kmem"), full_name_hash(2, b"kmem"));
    }

    #[test]
    fn incremental_helpers_follow_stringhash_h() {
        let mut h = init_name_hash(0);
        for &c in b"ab" {
            h = partial_name_hash(c, h);
        }
        // ((0 + 0x610 + 6) * 11 + 0x620 + 6) * 11, by hand from stringhash.h's formula.
        assert_eq!(h, ((0x616 * 11) + 0x626) * 11);
        assert_eq!(end_name_hash(h), __hash_32(h as u32));
    }
}
