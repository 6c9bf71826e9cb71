//! The lock validator on a machine: a lock inversion made through the public API is reported
//! in Linux's words (and the machine goes on); the order the allocators take is consistent.
//! (Every other test of the suite runs with the validator on, too: debug builds on the hosted
//! platform; `tests/common` checks it stayed quiet.)
mod common;

use std::fmt::{self, Write};

use kmem::arch::Arch;
use kmem::GfpFlags;

/// A `dmesg` writer that uses memblock while `dmesg` holds the log lock.
struct UsesMemblock<'a>(&'a common::M, String);

impl Write for UsesMemblock<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.with_memblock(|mb| mb.memory.regions().len());
        self.1.push_str(s);
        Ok(())
    }
}

#[test]
fn an_inversion_through_the_public_api_is_reported() {
    let m = common::boot(Arch::X86_64, 128 << 20, 1);
    let ld = m
        .lockdep()
        .expect("debug builds on the hosted platform have a validator");
    assert_eq!(ld.report_count(), 0);
    // memblock_lock -> logbuf_lock: printing while holding memblock (the documented order).
    m.with_memblock(|_| m.printk(kmem::platform::LogLevel::Info, format_args!("in memblock")));
    // logbuf_lock -> memblock_lock: the writer runs under the log lock.
    let warnings = m.warn_count();
    let mut w = UsesMemblock(&m, String::new());
    m.dmesg(&mut w, false).unwrap();
    assert_eq!(ld.report_count(), 1);
    assert!(
        ld.is_off(),
        "lockdep turns itself off after its first report"
    );
    assert_eq!(m.warn_count(), warnings + 1);

    // The report reached the console (the log lock was held by the reporting task).
    let console = m.platform().take_captured();
    let want = [
        "WARNING: possible circular locking dependency detected",
        "is trying to acquire lock:",
        "(memblock_lock)",
        "but task is already holding lock:",
        "(logbuf_lock)",
        "which lock already depends on the new lock.",
        "the existing dependency chain (in reverse order) is:",
        "Possible unsafe locking scenario:",
    ];
    for w in want {
        assert!(console.contains(w), "missing {w:?} in:\n{console}");
    }
    // The machine goes on.
    let p = m.alloc_page(GfpFlags::GFP_KERNEL).unwrap();
    m.__free_page(p);
    assert_eq!(m.bug_count(), 0);
}

#[test]
fn the_allocators_take_locks_in_one_order() {
    let m = common::boot(Arch::I386, 1 << 30, 2);
    let ld = m.lockdep().unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for i in 0..200usize {
                    let k = m.kmalloc(8 << (i % 10), GfpFlags::GFP_KERNEL).unwrap();
                    let v = m.vmalloc(4096 * (1 + i % 5)).unwrap();
                    let p = m.alloc_page(GfpFlags::GFP_HIGHUSER).unwrap();
                    let a = m.kmap_local_page(p).unwrap();
                    let b = m.kmap(p).unwrap();
                    m.kunmap(p);
                    m.kunmap_local(a);
                    let _ = b;
                    m.__free_page(p);
                    m.vfree(v);
                    m.kfree(k.as_ptr());
                }
            });
        }
    });
    let mut deps = String::new();
    ld.write_dependencies(&mut deps).unwrap();
    assert_eq!(ld.report_count(), 0, "{}", m.platform().take_captured());
    assert!(!ld.is_off(), "{deps}");
}

/// i386's first `kmap` outside any CPU section, then `kmap` inside a `kmap_local_page`
/// section: before the pkmap page table was made at boot, the first took a CPU section (to
/// allocate the table) under `kmap_lock` and the second `kmap_lock` inside a CPU section.
#[test]
fn kmap_under_kmap_local_is_in_order() {
    let m = common::boot(Arch::I386, 1 << 30, 1);
    let ld = m.lockdep().unwrap();
    let p = m.alloc_page(GfpFlags::GFP_HIGHUSER).unwrap();
    let q = m.alloc_page(GfpFlags::GFP_HIGHUSER).unwrap();
    m.kmap(p).unwrap();
    let a = m.kmap_local_page(q).unwrap();
    m.kmap(q).unwrap();
    m.kunmap(q);
    m.kunmap_local(a);
    m.kunmap(p);
    m.__free_page(q);
    m.__free_page(p);
    assert_eq!(ld.report_count(), 0, "{}", m.platform().take_captured());
}
