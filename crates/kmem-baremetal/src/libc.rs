//! The C library symbols the prebuilt `core` and `compiler_builtins` call on
//! `x86_64-unknown-linux-gnu`: `memcpy`, `memmove`, `memset`, `memcmp`, `bcmp`, `strlen`.
//!
//! On a hosted target these come from glibc; here the kernel provides them. They must not be
//! compiled into calls to themselves (LLVM recognises copy and fill loops as `memcpy`/`memset`
//! idioms), so the copies and fills are single `rep movsb`/`rep stosb` instructions in inline
//! assembly, and the comparisons read through `read_volatile`, which no idiom pass rewrites.
//! `rep movsb`/`rep stosb` are fast on every CPU with ERMSB and correct on all of them.

use core::arch::asm;

/// Copies `n` bytes from `src` to `dst`; the ranges must not overlap.
///
/// # Safety
/// `src` valid for `n` byte reads, `dst` valid for `n` byte writes, no overlap (C semantics).
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid; DF is clear (the ABI requires it).
    unsafe {
        asm!("rep movsb",
            inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
            options(nostack, preserves_flags))
    }
    dst
}

/// Copies `n` bytes from `src` to `dst`; the ranges may overlap.
///
/// # Safety
/// `src` valid for `n` byte reads, `dst` valid for `n` byte writes.
#[no_mangle]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // dst is below src or past its end: a forward copy never reads a byte it already wrote.
        // SAFETY: as for memcpy; forward copying is correct for this overlap direction.
        unsafe {
            asm!("rep movsb",
                inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
                options(nostack, preserves_flags))
        }
    } else {
        // dst overlaps the tail of src: copy backwards from the last byte, with DF set for the
        // duration of the copy only.
        // SAFETY: the caller guarantees both ranges are valid; n > 0 here (otherwise the first
        // branch is taken), so `n - 1` stays inside them; DF is cleared again before returning.
        unsafe {
            asm!("std", "rep movsb", "cld",
                inout("rcx") n => _,
                inout("rdi") dst.add(n - 1) => _,
                inout("rsi") src.add(n - 1) => _,
                options(nostack))
        }
    }
    dst
}

/// Fills `n` bytes at `dst` with the low byte of `c`.
///
/// # Safety
/// `dst` valid for `n` byte writes.
#[no_mangle]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the range is valid; DF is clear.
    unsafe {
        asm!("rep stosb",
            inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
            options(nostack, preserves_flags))
    }
    dst
}

/// Compares `n` bytes: negative, zero or positive as the first differing byte of `a` is below,
/// equal to or above that of `b`.
///
/// # Safety
/// `a` and `b` valid for `n` byte reads.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n and the caller guarantees n readable bytes at both pointers.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// Returns zero exactly when the `n` bytes at `a` and `b` are equal.
///
/// # Safety
/// As [`memcmp`].
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// Returns the length of the NUL-terminated string at `s`.
///
/// # Safety
/// `s` points at a NUL-terminated byte string.
#[no_mangle]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the caller guarantees every byte up to and including the NUL is readable.
    while unsafe { s.add(n).read_volatile() } != 0 {
        n += 1;
    }
    n
}

/// The unwinder's personality routine, referenced by the prebuilt `core` (compiled with
/// `panic=unwind`) from its unwind tables. This kernel is built with `panic=abort` and discards
/// the unwind tables (linker.ld), so the routine is never called; it only has to exist for the
/// link. If something did call it, `_URC_FATAL_PHASE1_ERROR` (3) stops the unwind.
#[no_mangle]
pub extern "C" fn rust_eh_personality() -> i32 {
    3
}

/// The unwinder's resume entry, referenced by the landing pads of the prebuilt `alloc` (compiled
/// with `panic=unwind`). With `panic=abort` no unwind ever starts, so no landing pad runs; if
/// one did, stopping the machine is the only safe answer.
#[no_mangle]
pub extern "C" fn _Unwind_Resume() -> ! {
    crate::println!("\n*** _Unwind_Resume called: unwinding is not supported");
    crate::selftest::report_crash();
    crate::arch::qemu_exit(crate::arch::EXIT_FAILURE)
}
