//! kmemcheck on the real page tables (run when the kernel is booted with `kmemcheck=1` or
//! `2`): tracked slab pages are not present in the CPU's page tables, and every access to
//! them goes through a real `#PF` (the instruction decoded, the shadow checked or updated, the
//! page shown, EFLAGS.TF set) and a real `#DB` after the instruction (the page hidden again),
//! [`crate::kmemcheck`]. Reads of uninitialised or freed bytes print kmemcheck's report
//! (arch/x86/mm/kmemcheck/error.c of Linux 4.14) on the console, once per instruction.
//!
//! Objects are taken from slab pages kmemcheck tracks; with `kfence.sample_interval=` in the
//! same boot, KFENCE's objects (not tracked, as KFENCE's pool is not a slab) are skipped.

// A failure carries its message inline; results are returned once per test.
#![allow(clippy::result_large_err)]

use core::fmt::{self, Write};

use kmem::slab::common::SlabFlags;
use kmem::slab::kmemcheck::KmemcheckShadow;
use kmem::GfpFlags;

use super::KernelCtx;
use crate::mm::Kmem;
use crate::selftest::{Test, TestResult};
use crate::{arch, check, check_eq, kmemcheck, kpte, println, tests};

/// The group.
pub const TESTS: &[Test<KernelCtx>] = tests![
    kmemcheck_pages_are_hidden,
    kmemcheck_uninit_read_reported,
    kmemcheck_kzalloc_silent,
    kmemcheck_write_then_read_silent,
    kmemcheck_freed_read_reported,
    kmemcheck_once_per_site,
    kmemcheck_access_across_two_hidden_pages,
    kmemcheck_string_copy_moves_the_shadow,
    kmemcheck_long_string_copy_in_one_fault,
    kmemcheck_notrack_cache_silent,
    kmemcheck_rust_heap_moves_silent,
];

const GFP: GfpFlags = GfpFlags::GFP_KERNEL;

/// A kmalloc (or kzalloc) object of `size` bytes on a page kmemcheck tracks and hides (not a
/// KFENCE object).
fn tracked_alloc(mm: &Kmem, size: usize, zero: bool) -> Option<*mut u8> {
    let mut skipped = [core::ptr::null_mut::<u8>(); 64];
    let mut n = 0;
    let mut found = None;
    while n < skipped.len() {
        let p = if zero {
            mm.kzalloc(size, GFP)
        } else {
            mm.kmalloc(size, GFP)
        }?
        .as_ptr();
        if !mm.is_kfence_address(p) && mm.kmemcheck_is_tracked(p) {
            found = Some(p);
            break;
        }
        skipped[n] = p;
        n += 1;
    }
    for &p in &skipped[..n] {
        mm.kfree(p);
    }
    found
}

/// Whether the page of `p` is present in the live page tables.
fn present(p: *const u8) -> Option<bool> {
    kpte::present(p as u64 & !0xfff)
}

/// Loads of 4 and 8 bytes, each its own instruction (a site of its own).
#[inline(never)]
fn read32(p: *const u8) -> u32 {
    // SAFETY: the callers pass a pointer inside a live (or just freed, still slab-owned)
    // object, 4-byte aligned.
    unsafe { core::ptr::read_volatile(p.cast::<u32>()) }
}

#[inline(never)]
fn read32_other_site(p: *const u8) -> u32 {
    // SAFETY: as `read32`.
    unsafe { core::ptr::read_volatile(p.cast::<u32>()) }
}

#[inline(never)]
fn read64_unaligned(p: *const u8) -> u64 {
    // SAFETY: the caller passes 8 readable bytes.
    unsafe { core::ptr::read_unaligned(core::hint::black_box(p).cast::<u64>()) }
}

#[inline(never)]
fn write32(p: *mut u8, v: u32) {
    // SAFETY: the callers pass a pointer inside a live object, 4-byte aligned.
    unsafe { core::ptr::write_volatile(p.cast::<u32>(), v) }
}

/// The kernel log's lines, compared one by one with up to four expected lines.
struct Lines<'a> {
    want: &'a [&'a str],
    found: [bool; 4],
    line: [u8; 160],
    len: usize,
}

impl<'a> Lines<'a> {
    fn find(mm: &Kmem, want: &'a [&'a str]) -> [bool; 4] {
        let mut l = Lines {
            want,
            found: [false; 4],
            line: [0; 160],
            len: 0,
        };
        let _ = mm.dmesg(&mut l, false);
        l.found
    }
}

impl Write for Lines<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if b == b'\n' {
                let line = &self.line[..self.len];
                for (i, w) in self.want.iter().enumerate().take(4) {
                    self.found[i] |= line == w.as_bytes();
                }
                self.len = 0;
            } else if self.len < self.line.len() {
                self.line[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// A formatted line (up to 160 bytes).
struct Buf {
    b: [u8; 160],
    n: usize,
}

impl Buf {
    fn new(args: fmt::Arguments<'_>) -> Self {
        let mut b = Buf { b: [0; 160], n: 0 };
        let _ = b.write_fmt(args);
        b
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.b[..self.n]).unwrap_or("")
    }
}

impl Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &c in s.as_bytes() {
            if self.n < self.b.len() {
                self.b[self.n] = c;
                self.n += 1;
            }
        }
        Ok(())
    }
}

fn kmemcheck_pages_are_hidden(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    check!(
        mm.kmemcheck_built(),
        "kmemcheck is not built into this boot"
    );
    check!(kmemcheck::active(), "kmem registered no kmemcheck hook");
    // Every group before this one ran with kmemcheck's traps (this group runs last but
    // `cma`): none of them, nor the allocator's own reads (free pointers, SLUB's debug
    // reports, kmemleak's scan), read uninitialised memory.
    check_eq!(mm.kmemcheck_errors(), 0);
    let p = tracked_alloc(mm, 64, true);
    check!(p.is_some(), "no tracked kmalloc object");
    let p = p.expect("checked");
    // The slab's page is not present for the CPU, and stays so around an access.
    check_eq!(present(p), Some(false));
    let faults = kmemcheck::faults();
    // SAFETY: a live, zeroed 64-byte object.
    let v = unsafe { core::ptr::read_volatile(p.cast::<u64>()) };
    check_eq!(v, 0);
    check_eq!(kmemcheck::faults(), faults + 1);
    check_eq!(present(p), Some(false));
    // The single step's trap flag is gone again.
    check_eq!(arch::rflags() & kmemcheck::EFLAGS_TF, 0);
    mm.kfree(p);
    println!(
        "  ({} kmemcheck faults since boot, {} instructions without a decoded operand size)",
        kmemcheck::faults(),
        kmemcheck::unknown_instructions()
    );
    Ok(())
}

/// The case: a kmalloc'd object read before it is written is reported through a real
/// `#PF`/`#DB`, in kmemcheck's format, with the shadow line and its `^` marker.
fn kmemcheck_uninit_read_reported(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let p = tracked_alloc(mm, 64, false);
    check!(p.is_some(), "no tracked kmalloc object");
    let p = p.expect("checked");
    check_eq!(
        mm.kmemcheck_shadow_state(p.wrapping_add(4)),
        Some(KmemcheckShadow::Uninitialized)
    );
    println!("  (a kmemcheck report is expected next)");
    mm.dmesg_clear();
    let errors = mm.kmemcheck_errors();
    let faults = kmemcheck::faults();
    let _ = read32(p.wrapping_add(4));
    check_eq!(mm.kmemcheck_errors(), errors + 1);
    check!(kmemcheck::faults() > faults);
    let a = p as usize + 4;
    let head = Buf::new(format_args!(
        "WARNING: kmemcheck: Caught 32-bit read from uninitialized memory ({:016x})",
        mm.to_model(a)
    ));
    // error.c: the shadow letters of the 32-byte chunk, and `^` under the byte read.
    let off = a & 31;
    let mut marker = Buf::new(format_args!(""));
    let _ = write!(marker, "{:>w$}", '^', w = 2 + 2 * off);
    let found = Lines::find(mm, &[head.as_str(), marker.as_str(), "Call Trace:"]);
    check!(found[0], "no '{}'", head.as_str());
    check!(found[1], "no marker line '{}'", marker.as_str());
    check!(found[2], "no call trace");
    // "Don't warn about it again": the bytes read are initialised now.
    check_eq!(
        mm.kmemcheck_shadow_state(p.wrapping_add(4)),
        Some(KmemcheckShadow::Initialized)
    );
    check_eq!(present(p), Some(false));
    mm.kfree(p);
    Ok(())
}

fn kmemcheck_kzalloc_silent(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let p = tracked_alloc(mm, 64, true);
    check!(p.is_some(), "no tracked kzalloc object");
    let p = p.expect("checked");
    let errors = mm.kmemcheck_errors();
    let faults = kmemcheck::faults();
    check_eq!(read32_other_site(p.wrapping_add(8)), 0);
    check_eq!(read64_unaligned(p.wrapping_add(16)), 0);
    check!(kmemcheck::faults() >= faults + 2, "the reads did not trap");
    check_eq!(mm.kmemcheck_errors(), errors);
    mm.kfree(p);
    Ok(())
}

fn kmemcheck_write_then_read_silent(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let p = tracked_alloc(mm, 64, false);
    check!(p.is_some(), "no tracked kmalloc object");
    let p = p.expect("checked");
    let errors = mm.kmemcheck_errors();
    let faults = kmemcheck::faults();
    // The store traps too: it is what initialises the bytes.
    write32(p.wrapping_add(8), 0xdead_beef);
    check_eq!(kmemcheck::faults(), faults + 1);
    check_eq!(
        mm.kmemcheck_shadow_state(p.wrapping_add(8)),
        Some(KmemcheckShadow::Initialized)
    );
    check_eq!(
        mm.kmemcheck_shadow_state(p.wrapping_add(12)),
        Some(KmemcheckShadow::Uninitialized)
    );
    check_eq!(read32_other_site(p.wrapping_add(8)), 0xdead_beef);
    check_eq!(mm.kmemcheck_errors(), errors);
    mm.kfree(p);
    Ok(())
}

fn kmemcheck_freed_read_reported(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let p = tracked_alloc(mm, 128, true);
    check!(p.is_some(), "no tracked kmalloc object");
    let p = p.expect("checked");
    mm.kfree(p);
    // Past the allocator's own words (a free pointer, if it wrote one: those bytes are
    // initialised), a 4-byte word whose shadow says freed.
    let off = (0..128)
        .step_by(4)
        .find(|&o| mm.kmemcheck_shadow_state(p.wrapping_add(o)) == Some(KmemcheckShadow::Freed));
    check!(off.is_some(), "no freed bytes in the freed object");
    let a = p.wrapping_add(off.expect("checked"));
    println!("  (a kmemcheck report is expected next)");
    mm.dmesg_clear();
    let errors = mm.kmemcheck_errors();
    let _ = read32_freed(a);
    check_eq!(mm.kmemcheck_errors(), errors + 1);
    let head = Buf::new(format_args!(
        "WARNING: kmemcheck: Caught 32-bit read from freed memory ({:016x})",
        mm.to_model(a as usize)
    ));
    check!(
        Lines::find(mm, &[head.as_str()])[0],
        "no '{}'",
        head.as_str()
    );
    Ok(())
}

#[inline(never)]
fn read32_freed(p: *const u8) -> u32 {
    // SAFETY: a word of a just-freed object: its slab page still belongs to the slab layer
    // (nothing was allocated or shrunk since), so the read is of mapped memory.
    unsafe { core::ptr::read_volatile(p.cast::<u32>()) }
}

/// An instruction reports once: the same load on a second fresh object is silent, another
/// load on a third reports.
fn kmemcheck_once_per_site(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let mut objs = [core::ptr::null_mut::<u8>(); 3];
    for o in &mut objs {
        let p = tracked_alloc(mm, 64, false);
        check!(p.is_some(), "no tracked kmalloc object");
        *o = p.expect("checked");
    }
    println!("  (one kmemcheck report is expected next, then one more)");
    let errors = mm.kmemcheck_errors();
    let _ = read_once_site(objs[0]);
    check_eq!(mm.kmemcheck_errors(), errors + 1);
    let _ = read_once_site(objs[1]);
    check_eq!(mm.kmemcheck_errors(), errors + 1);
    let _ = read_once_other(objs[2]);
    check_eq!(mm.kmemcheck_errors(), errors + 2);
    for o in objs {
        mm.kfree(o);
    }
    Ok(())
}

#[inline(never)]
fn read_once_site(p: *const u8) -> u32 {
    // SAFETY: a live 64-byte object.
    unsafe { core::ptr::read_volatile(p.add(16).cast::<u32>()) }
}

#[inline(never)]
fn read_once_other(p: *const u8) -> u64 {
    // SAFETY: a live 64-byte object.
    unsafe { core::ptr::read_volatile(p.add(24).cast::<u64>()) }
}

/// An 8-byte load across the boundary of two hidden pages of a large kmalloc block: both
/// pages are shown by one fault (kmemcheck_read's split) and both hidden after the step.
/// The block is not zeroed and only the 8 bytes are written first: with the default
/// `kmemcheck.unhide=1` a page whose bytes are all initialised would stay present.
fn kmemcheck_access_across_two_hidden_pages(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let size = 2 * kmem::PAGE_SIZE + 1;
    let p = tracked_alloc(mm, size, false);
    check!(p.is_some(), "no tracked large kmalloc block");
    let p = p.expect("checked");
    let edge = p.wrapping_add(kmem::PAGE_SIZE);
    check_eq!(present(p), Some(false));
    check_eq!(present(edge), Some(false));
    write32(edge.wrapping_sub(4), 0);
    write32(edge, 0);
    check_eq!(present(p), Some(false));
    check_eq!(present(edge), Some(false));
    let faults = kmemcheck::faults();
    let errors = mm.kmemcheck_errors();
    check_eq!(read64_unaligned(edge.wrapping_sub(4)), 0);
    check_eq!(kmemcheck::faults(), faults + 1);
    check_eq!(mm.kmemcheck_errors(), errors);
    check_eq!(present(p), Some(false));
    check_eq!(present(edge), Some(false));
    check_eq!(arch::rflags() & kmemcheck::EFLAGS_TF, 0);
    mm.kfree(p);
    Ok(())
}

/// `memcpy` (`rep movsb`) of uninitialised bytes into tracked memory copies their shadow and
/// reports nothing (Linux's `kmemcheck_copy`); a later load of the copy reports.
fn kmemcheck_string_copy_moves_the_shadow(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let src = tracked_alloc(mm, 64, false);
    let dst = tracked_alloc(mm, 64, true);
    check!(src.is_some() && dst.is_some(), "no tracked kmalloc objects");
    let (src, dst) = (src.expect("checked"), dst.expect("checked"));
    write32(src, 0x1234_5678);
    let errors = mm.kmemcheck_errors();
    let n = core::hint::black_box(32usize);
    // SAFETY: two live 64-byte objects.
    unsafe { crate::libc::memcpy(dst, src, n) };
    check_eq!(mm.kmemcheck_errors(), errors);
    check_eq!(
        mm.kmemcheck_shadow_state(dst),
        Some(KmemcheckShadow::Initialized)
    );
    check_eq!(
        mm.kmemcheck_shadow_state(dst.wrapping_add(4)),
        Some(KmemcheckShadow::Uninitialized)
    );
    check_eq!(
        mm.kmemcheck_shadow_state(dst.wrapping_add(40)),
        Some(KmemcheckShadow::Initialized)
    );
    println!("  (a kmemcheck report is expected next)");
    let _ = read64_copy(dst.wrapping_add(8));
    check_eq!(mm.kmemcheck_errors(), errors + 1);
    mm.kfree(src);
    mm.kfree(dst);
    Ok(())
}

#[inline(never)]
fn read64_copy(p: *const u8) -> u64 {
    // SAFETY: 8 bytes of a live 64-byte object.
    unsafe { core::ptr::read_volatile(p.cast::<u64>()) }
}

/// A `memcpy` (`rep movsb`) of 9 hidden pages into 9 others: one fault shows both operands
/// and moves the whole shadow, the breakpoint after the instruction hides them again (TF
/// would have trapped after each of the 36,864 iterations).
fn kmemcheck_long_string_copy_in_one_fault(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let n = 9 * kmem::PAGE_SIZE;
    let src = tracked_alloc(mm, n, false);
    let dst = tracked_alloc(mm, n, true);
    check!(
        src.is_some() && dst.is_some(),
        "no tracked large kmalloc blocks"
    );
    let (src, dst) = (src.expect("checked"), dst.expect("checked"));
    write32(src, 1);
    write32(src.wrapping_add(n - 4), 2);
    let errors = mm.kmemcheck_errors();
    let faults = kmemcheck::faults();
    // SAFETY: two live blocks of `n` bytes.
    unsafe { crate::libc::memcpy(dst, src, core::hint::black_box(n)) };
    check_eq!(kmemcheck::faults(), faults + 1);
    check_eq!(present(src), Some(false));
    check_eq!(present(dst.wrapping_add(n - 1)), Some(false));
    check_eq!(mm.kmemcheck_errors(), errors);
    check_eq!(arch::rflags() & kmemcheck::EFLAGS_TF, 0);
    for (off, want) in [
        (0, KmemcheckShadow::Initialized),
        (4, KmemcheckShadow::Uninitialized),
        (n / 2, KmemcheckShadow::Uninitialized),
        (n - 5, KmemcheckShadow::Uninitialized),
        (n - 4, KmemcheckShadow::Initialized),
    ] {
        check_eq!(mm.kmemcheck_shadow_state(dst.wrapping_add(off)), Some(want));
    }
    check_eq!(read32_other_site(dst.wrapping_add(n - 4)), 2);
    mm.kfree(src);
    mm.kfree(dst);
    Ok(())
}

/// A `SLAB_NOTRACK` cache's objects are not tracked: no trap, no report.
fn kmemcheck_notrack_cache_silent(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let c = mm.kmem_cache_create("kmemcheck_notrack", 96, 8, SlabFlags::NOTRACK, None);
    check!(c.is_ok(), "kmem_cache_create failed");
    let c = c.expect("checked");
    let p = mm.kmem_cache_alloc(c, GFP);
    check!(p.is_some(), "kmem_cache_alloc failed");
    let p = p.expect("checked").as_ptr();
    check!(!mm.kmemcheck_is_tracked(p));
    check_eq!(present(p), Some(true));
    let faults = kmemcheck::faults();
    let errors = mm.kmemcheck_errors();
    let _ = read32_other_site(p.wrapping_add(32));
    check_eq!(kmemcheck::faults(), faults);
    check_eq!(mm.kmemcheck_errors(), errors);
    mm.kmem_cache_free(c, p);
    mm.kmem_cache_destroy(c);
    Ok(())
}

/// A value with a small and a large variant: `Small`'s payload leaves most of the value's
/// bytes never written, as the bare-metal kernel's `State::Zombie(Exit::Code(_))` did.
#[derive(Clone, Copy)]
enum Mixed {
    Small(u8),
    Large([u64; 4]),
}

/// The kernel's own heap (`Vec`, `Box`, … through the global allocator) is not checked:
/// Rust moves copy a value's padding and its unused variant bytes, never read as a value
/// (crate::heap's `__GFP_NOTRACK`). Moving `Small` values in and out of a `Vec` whose buffer
/// lies on a page kmemcheck tracks makes no report (before the heap passed `__GFP_NOTRACK`,
/// `Vec::remove` here reported a read of uninitialised memory from `memcpy`).
fn kmemcheck_rust_heap_moves_silent(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let errors = mm.kmemcheck_errors();
    // KFENCE (sampling every allocation in the debuggers' boot) may serve a buffer from its
    // pool, which kmemcheck does not track: those are kept aside until a slab object comes.
    let mut kept = [const { alloc::vec::Vec::<Mixed>::new() }; 16];
    let mut v = alloc::vec::Vec::<Mixed>::new();
    for slot in &mut kept {
        check!(v.try_reserve_exact(8).is_ok(), "no memory for the vector");
        if !mm.is_kfence_address(v.as_ptr().cast()) {
            break;
        }
        *slot = core::mem::take(&mut v);
    }
    check!(
        mm.kmemcheck_is_tracked(v.as_ptr().cast()),
        "the heap's object is on a page kmemcheck does not track"
    );
    for i in 0..7u8 {
        v.push(Mixed::Small(i));
    }
    v.push(Mixed::Large([7, 0, 0, 0]));
    let mut sum = 0u64;
    while !v.is_empty() {
        // `remove` moves the whole value out (its unused bytes too), then the tail down.
        match core::hint::black_box(v.remove(0)) {
            Mixed::Small(b) => sum += u64::from(b),
            Mixed::Large(w) => sum += w[0],
        }
    }
    check_eq!(sum, 28);
    check_eq!(mm.kmemcheck_errors(), errors);
    Ok(())
}
