//! kmemleak on the real machine (run when the kernel is booted with `kmemleak=on`): a leak
//! planted in kmalloc memory is found by scanning the kernel's real memory — the image's
//! `.data` and `.bss` (the boot stack included) as roots, as Linux registers `_sdata` and
//! `__bss_start` — while a block referenced from a static is not.

// A failure carries its message inline; results are returned once per test.
#![allow(clippy::result_large_err)]

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

use kmem::GfpFlags;

use super::KernelCtx;
use crate::mm::Kmem;
use crate::selftest::{Test, TestResult};
use crate::{boot, check, check_eq, tests};

/// The group.
pub const TESTS: &[Test<KernelCtx>] =
    tests![kmemleak_finds_planted_leak, kmemleak_not_leak_silences];

/// A root in `.bss`: the block the test keeps.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// The image's `.data` and `.bss`, identity-mapped, with the boot stack from `sp` up only
/// (below it are dead frames, whose stale pointers would hide the leak; Linux's stack scan
/// has the same blind spot for a task's old frames).
fn data_bss(sp: usize) -> [(usize, usize); 3] {
    let l = boot::image_layout();
    let data = (l.start + l.text + l.rodata) as usize;
    let (bottom, top) = boot::boot_stack();
    [(data, bottom), (sp, top), (top, l.end() as usize)]
}

/// Counts the `unreferenced object 0x… ` lines of the debugfs file naming `addr`.
struct Find {
    want: [u8; 40],
    want_len: usize,
    line: [u8; 64],
    len: usize,
    hits: usize,
    /// `backtrace` lines (`    [<addr>] …`): the frame-pointer walk's frames.
    frames: usize,
}

impl Find {
    fn new(addr: usize) -> Self {
        let mut f = Find {
            want: [0; 40],
            want_len: 0,
            line: [0; 64],
            len: 0,
            hits: 0,
            frames: 0,
        };
        let mut w = Cursor(&mut f.want, 0);
        let _ = write!(w, "unreferenced object 0x{addr:08x} ");
        f.want_len = w.1;
        f
    }
}

struct Cursor<'a>(&'a mut [u8], usize);

impl Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.1 < self.0.len() {
                self.0[self.1] = b;
                self.1 += 1;
            }
        }
        Ok(())
    }
}

impl Write for Find {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if b == b'\n' {
                if self.line[..self.len].starts_with(&self.want[..self.want_len]) {
                    self.hits += 1;
                }
                if self.line[..self.len].starts_with(b"    [<") {
                    self.frames += 1;
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

fn reported(mm: &Kmem, addr: usize) -> usize {
    let mut f = Find::new(addr);
    let _ = mm.proc_read("/sys/kernel/debug/kmemleak", &mut f);
    f.hits
}

/// The `backtrace` lines of the debugfs file.
fn frames(mm: &Kmem) -> usize {
    let mut f = Find::new(0);
    let _ = mm.proc_read("/sys/kernel/debug/kmemleak", &mut f);
    f.frames
}

/// Scans twice (the checksum rule) with the image as roots.
#[inline(never)]
fn scan(mm: &Kmem) {
    let here = core::hint::black_box(0u8);
    let r = data_bss(core::ptr::addr_of!(here) as usize);
    // SAFETY: the kernel image is mapped and readable for the kernel's life.
    unsafe {
        mm.kmemleak_scan_ranges(&r, &[]);
        mm.kmemleak_scan_ranges(&r, &[]);
    }
}

fn kmemleak_finds_planted_leak(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    check!(mm.kmemleak_enabled());
    // No clock to wait on here: report at once.
    mm.kmemleak_set_min_age(0);
    let held = mm
        .kmalloc(64, GfpFlags::GFP_KERNEL)
        .expect("kmalloc")
        .as_ptr();
    // SAFETY: a fresh 64-byte block.
    unsafe { held.write_bytes(0x11, 64) };
    HELD.store(held as usize, Ordering::Relaxed);
    let leak = mm
        .kmalloc(64, GfpFlags::GFP_KERNEL)
        .expect("kmalloc")
        .as_ptr();
    // SAFETY: `leak` is a fresh 64-byte kmalloc block of ours, so all 64 bytes written are inside
    // it and no one else uses it.
    unsafe { leak.write_bytes(0x5a, 64) };
    // Keep only the complement: the stack is scanned, the pointer must not be on it.
    let hidden = !(leak as usize);
    let leak = core::hint::black_box(0usize);
    let _ = leak;
    scan(mm);
    check_eq!(reported(mm, !hidden), 1);
    check_eq!(reported(mm, held as usize), 0);
    // Its allocation stack, from the frame-pointer walk of the boot stack (raw addresses:
    // the image carries no symbol table, as Linux without kallsyms): kmemleak's hook, the
    // allocator and this test at least.
    check!(frames(mm) >= 3);
    mm.kfree((!hidden) as *const u8);
    mm.kfree(HELD.swap(0, Ordering::Relaxed) as *const u8);
    check_eq!(reported(mm, !hidden), 0);
    Ok(())
}

fn kmemleak_not_leak_silences(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    mm.kmemleak_set_min_age(0);
    let p = mm
        .kmalloc(128, GfpFlags::GFP_KERNEL)
        .expect("kmalloc")
        .as_ptr();
    // SAFETY: a fresh block.
    unsafe { p.write_bytes(0x33, 128) };
    mm.kmemleak_not_leak(p);
    let hidden = !(p as usize);
    scan(mm);
    check_eq!(reported(mm, !hidden), 0);
    mm.kfree((!hidden) as *const u8);
    Ok(())
}
