//! lib/test_hash.c (Linux's test of <linux/hash.h> and <linux/stringhash.h>), ported: every
//! non-empty substring of a 256-byte pseudo-random string is hashed by `full_name_hash` and
//! `hashlen_string` (salted with the substring's own address, as upstream does); the two must
//! agree and `hashlen_string` must get the length right; each hash value also feeds the
//! integer hashes, whose results must stay within `bits` bits. At the end the OR of all the
//! string hashes, of all `__hash_32` results and of every `hash_32(.., k)` / `hash_64(.., k)`
//! must cover every bit they can (upstream's expected values: all ones, and `2^k - 1`).

use kds::hash::{__hash_32, hash_32, hash_64};
use kds::stringhash::{full_name_hash, hashlen_hash, hashlen_len, hashlen_string};

/// test_hash.c's 32-bit xorshift (seed must not be zero).
fn xorshift(mut seed: u32) -> u32 {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    seed
}

/// test_hash.c's `mod255`: a non-zero byte from a non-zero word.
fn mod255(mut x: u32) -> u8 {
    x = (x & 0xffff) + (x >> 16);
    x = (x & 0xff) + (x >> 8);
    x = (x & 0xff) + (x >> 8);
    x = (x & 0xff) + (x >> 8);
    x as u8
}

const SIZE: usize = 256;

/// `test_int_hash`: returns false on a hash wider than asked for.
fn test_int_hash(h64: u64, hash_or: &mut [[u32; 33]; 2]) -> bool {
    let h0 = h64 as u32;
    hash_or[0][0] |= __hash_32(h0);
    for k in 1..=32u32 {
        let m = ((2u64 << (k - 1)) - 1) as u32;
        let h1 = hash_32(h0, k);
        hash_or[0][k as usize] |= h1;
        if h1 > m {
            return false;
        }
        let h1 = hash_64(h64, k);
        hash_or[1][k as usize] |= h1;
        if h1 > m {
            return false;
        }
    }
    true
}

#[test]
fn test_hash_init() {
    let mut buf = [0u8; SIZE + 1];
    let mut seed = 1u32;
    for b in buf.iter_mut().take(SIZE) {
        seed = xorshift(seed);
        *b = mod255(seed);
    }
    let mut string_or = 0u32;
    let mut hash_or = [[0u32; 33]; 2];
    let mut h64 = 0u64;
    let mut tests = 0u32;
    for j in (1..=SIZE).rev() {
        buf[j] = 0;
        for i in 0..=j {
            let salt = buf[i..].as_ptr() as usize;
            let hashlen = hashlen_string(salt, &buf[i..]);
            let h0 = full_name_hash(salt, &buf[i..j]);
            assert_eq!(
                hashlen_len(hashlen) as usize,
                j - i,
                "hashlen_string({i}..{j}) length"
            );
            assert_eq!(
                hashlen_hash(hashlen),
                h0,
                "hashlen_string({i}..{j}) != full_name_hash()"
            );
            string_or |= h0;
            h64 = (h64 << 32) | h0 as u64;
            assert!(
                test_int_hash(h64, &mut hash_or),
                "integer hash too wide for {h64:#x}"
            );
            tests += 1;
        }
    }
    assert_eq!(string_or, u32::MAX, "OR of all string hash results");
    assert_eq!(hash_or[0][0], u32::MAX, "OR of all __hash_32 results");
    for (i, (or32, or64)) in hash_or[0].iter().zip(&hash_or[1]).enumerate().skip(1) {
        let m = ((2u64 << (i - 1)) - 1) as u32;
        assert_eq!(*or32, m, "OR of all hash_32({i}) results");
        assert_eq!(*or64, m, "OR of all hash_64({i}) results");
    }
    // Upstream prints "%u tests passed.": one per (i, j) with 0 <= i <= j, 1 <= j <= 256.
    assert_eq!(tests, (1..=SIZE as u32).map(|j| j + 1).sum::<u32>());
}
