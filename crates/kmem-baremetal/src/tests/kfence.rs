//! KFENCE on the real page tables (run when the kernel is booted with
//! `kfence.sample_interval=N`; without it the group only says so): an overflow into a guard
//! page and a use after free are caught by a real `#PF` (the guard page's PTE is not present;
//! the handler asks KFENCE, which reports and makes the page present, and the access is
//! retried), and a write into the canary bytes is found when the object is freed.

// A failure carries its message inline; results are returned once per test.
#![allow(clippy::result_large_err)]

use core::fmt;

use kmem::platform::Platform;
use kmem::GfpFlags;

use super::KernelCtx;
use crate::mm::Kmem;
use crate::selftest::{Test, TestResult};
use crate::{check, check_eq, println, tests};

/// The group.
pub const TESTS: &[Test<KernelCtx>] = tests![
    kfence_out_of_bounds_write_faults,
    kfence_use_after_free_read_faults,
    kfence_corruption_found_on_free,
];

const GFP: GfpFlags = GfpFlags::GFP_KERNEL;

/// Which side of its page a KFENCE object should be on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
    Any,
}

/// kfence_test.c's `test_alloc`: kmalloc until KFENCE serves an object on `side` (the clock is
/// real: a sample interval of 1 ms passes while we spin).
fn kfence_alloc(mm: &Kmem, size: usize, side: Side) -> Option<*mut u8> {
    for _ in 0..20_000 {
        let p = mm.kmalloc(size, GFP)?.as_ptr();
        if mm.is_kfence_address(p) {
            let left = (p as usize).is_multiple_of(kmem::PAGE_SIZE);
            if side == Side::Any || (side == Side::Left) == left {
                return Some(p);
            }
        }
        mm.kfree(p);
        let j = mm.platform().jiffies();
        while mm.platform().jiffies() == j {
            core::hint::spin_loop();
        }
    }
    None
}

/// Whether the kernel log contains `needle` (in one line).
fn dmesg_contains(mm: &Kmem, needle: &str) -> bool {
    struct Find<'a> {
        needle: &'a str,
        found: bool,
    }
    impl fmt::Write for Find<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.found |= s.contains(self.needle);
            Ok(())
        }
    }
    let mut f = Find {
        needle,
        found: false,
    };
    let _ = mm.dmesg(&mut f, false);
    f.found
}

/// A small formatting buffer for the expected lines.
struct Line {
    buf: [u8; 128],
    len: usize,
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let b = s.as_bytes();
        let n = b.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        Ok(())
    }
}

fn line(args: fmt::Arguments<'_>) -> Line {
    let mut l = Line {
        buf: [0; 128],
        len: 0,
    };
    let _ = fmt::write(&mut l, args);
    l
}

impl Line {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

fn kfence_off(mm: &Kmem) -> bool {
    if mm.kfence_pool().is_none() {
        println!("  (KFENCE is off: boot with kfence.sample_interval=1 to run this test)");
        return true;
    }
    false
}

/// kfence_test.c's `test_out_of_bounds_write` on the right side: a store one past a 32-byte
/// object faults on the guard page.
fn kfence_out_of_bounds_write_faults(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    if kfence_off(mm) {
        return Ok(());
    }
    let p = kfence_alloc(mm, 32, Side::Right);
    check!(p.is_some(), "no KFENCE object on the right side");
    let p = p.expect("checked");
    check!(
        mm.kfence_protected(p.wrapping_add(32)),
        "the guard page is not protected"
    );
    println!("  (a KFENCE out-of-bounds report is expected next)");
    mm.dmesg_clear();
    let bugs = mm.bug_count();
    // SAFETY: the byte after the object is KFENCE's guard page: the store faults, KFENCE
    // reports it and makes the page present, and the store completes there.
    unsafe { p.add(32).write_volatile(0x42) };
    check_eq!(mm.bug_count(), bugs + 1);
    check!(dmesg_contains(mm, "BUG: KFENCE: out-of-bounds write in 0x"));
    let want = line(format_args!(
        "Out-of-bounds write at 0x{:016x} (32B right of kfence-#",
        mm.to_model(p as usize + 32)
    ));
    check!(dmesg_contains(mm, want.as_str()), "no '{}'", want.as_str());
    // SAFETY: the page is present again; the byte is the one just written.
    check_eq!(unsafe { p.add(32).read_volatile() }, 0x42);
    mm.kfree(p);
    check_eq!(mm.bug_count(), bugs + 1);
    check!(
        mm.kfence_protected(p.wrapping_add(32)),
        "the guard page is not protected again"
    );
    Ok(())
}

/// kfence_test.c's `test_use_after_free_read`: a load from a freed object faults.
fn kfence_use_after_free_read_faults(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    if kfence_off(mm) {
        return Ok(());
    }
    let p = kfence_alloc(mm, 64, Side::Any);
    check!(p.is_some(), "no KFENCE object");
    let p = p.expect("checked");
    mm.kfree(p);
    println!("  (a KFENCE use-after-free report is expected next)");
    mm.dmesg_clear();
    let bugs = mm.bug_count();
    // SAFETY: the freed object's page is not present: the load faults, KFENCE reports it and
    // makes the page present, and the load completes.
    let _ = unsafe { p.read_volatile() };
    check_eq!(mm.bug_count(), bugs + 1);
    let want = line(format_args!(
        "Use-after-free read at 0x{:016x} (in kfence-#",
        mm.to_model(p as usize)
    ));
    check!(dmesg_contains(mm, want.as_str()), "no '{}'", want.as_str());
    Ok(())
}

/// kfence_test.c's `test_corruption` on the left side: a store into the canary bytes after the
/// object does not fault, and the free finds it.
fn kfence_corruption_found_on_free(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    if kfence_off(mm) {
        return Ok(());
    }
    let p = kfence_alloc(mm, 32, Side::Left);
    check!(p.is_some(), "no KFENCE object on the left side");
    let p = p.expect("checked");
    println!("  (a KFENCE memory corruption report is expected next)");
    mm.dmesg_clear();
    let bugs = mm.bug_count();
    // SAFETY: a canary byte of the object's own (present) page.
    unsafe { p.add(32).write_volatile(0x42) };
    check_eq!(mm.bug_count(), bugs);
    mm.kfree(p);
    check_eq!(mm.bug_count(), bugs + 1);
    let want = line(format_args!(
        "Corrupted memory at 0x{:016x} [ ! . . . . . . . . . . . . . . . ]",
        mm.to_model(p as usize + 32)
    ));
    check!(dmesg_contains(mm, want.as_str()), "no '{}'", want.as_str());
    Ok(())
}
