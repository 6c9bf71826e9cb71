//! KFENCE: the cases of Linux's mm/kfence/kfence_test.c (6.18), each for kmalloc and, where
//! Linux runs a `-memcache` variant, for a cache of its own; plus the pool layout, the boot
//! parameters and the debugfs files.
//!
//! As in kfence_test.c, a case allocates until it gets a KFENCE object on the side it wants
//! (`test_alloc`: the machine's clock is manual, so each try moves it one sample interval on),
//! touches memory the way the bug would, and checks the report's title and access line
//! (`report_matches`). Accesses are real loads and stores through raw pointers: the guard
//! pages are `PROT_NONE` on the hosted platform, the access faults, the platform's `SIGSEGV`
//! handler hands it to KFENCE, which reports and unprotects the page, and the access
//! completes. The function named in the title is then the faulting instruction's address
//! (kmem has no symbols for it), so only the title's text before it is compared, as Linux
//! compares the title up to the function's offset.

mod common;

use std::ptr;

use common::{assert_lockdep_quiet, boot_with, proc, M};
use kmem::arch::Arch;
use kmem::slab::common::{CacheHandle, SlabFlags};
use kmem::slab::kfence::{
    canary_pattern, KFENCE_CLOCK_EVERY, KFENCE_NUM_OBJECTS, KFENCE_POOL_SIZE,
};
use kmem::{GfpFlags, PAGE_SIZE, ZERO_SIZE_PTR};

const K: GfpFlags = GfpFlags::GFP_KERNEL;

/// `enum allocation_policy`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Policy {
    Any,
    Left,
    Right,
    None,
}

/// A test machine with KFENCE sampling every millisecond (one jiffy), and the test's cache
/// (`test_cache`; `None`: kmalloc).
struct T {
    m: M,
    cache: Option<CacheHandle>,
}

fn machine(slab: &str) -> M {
    let cmdline = format!("kfence.sample_interval=1 slab={slab}");
    boot_with(Arch::X86_64, 128 << 20, 2, &cmdline, 7)
}

impl T {
    fn new(_memcache: bool) -> T {
        T::with("kfence.sample_interval=1 slab=slub")
    }

    fn with(cmdline: &str) -> T {
        let m = boot_with(Arch::X86_64, 128 << 20, 2, cmdline, 7);
        m.platform().take_captured();
        T { m, cache: None }
    }

    /// `setup_test_cache`: a cache of its own for `-memcache` cases (SLAB_NOLEAKTRACE keeps
    /// it from merging, as in Linux).
    fn setup_cache(
        &mut self,
        memcache: bool,
        size: usize,
        flags: SlabFlags,
        ctor: Option<fn(*mut u8)>,
    ) {
        if !memcache {
            return;
        }
        let c = self
            .m
            .kmem_cache_create(
                "test",
                size,
                1,
                flags | SlabFlags::NOLEAKTRACE | SlabFlags::ACCOUNT,
                ctor,
            )
            .unwrap();
        self.cache = Some(c);
    }

    /// `test_alloc`.
    fn alloc(&self, size: usize, gfp: GfpFlags, policy: Policy) -> *mut u8 {
        for _ in 0..10_000 {
            if policy != Policy::None {
                // One sample interval on: the allocation gate opens.
                self.m.platform().advance_jiffies(1);
            }
            let p = match self.cache {
                Some(c) => self.m.kmem_cache_alloc(c, gfp),
                None => self.m.kmalloc(size, gfp),
            }
            .unwrap()
            .as_ptr();
            if self.m.is_kfence_address(p) {
                let left = (p as usize).is_multiple_of(PAGE_SIZE);
                match policy {
                    Policy::Any => return p,
                    Policy::Left if left => return p,
                    Policy::Right if !left => return p,
                    _ => {}
                }
            } else if policy == Policy::None {
                return p;
            }
            self.free(p);
        }
        panic!("failed to allocate from KFENCE ({policy:?})");
    }

    /// `test_free`.
    #[track_caller]
    fn free(&self, p: *mut u8) {
        match self.cache {
            Some(c) => self.m.kmem_cache_free(c, p),
            None => self.m.kfree(p),
        }
    }

    /// The console since the last call.
    fn take(&self) -> String {
        self.m.platform().take_captured()
    }

    /// `report_matches`: the report's title starts with `title` and its access line with
    /// `access` followed by ` 0x<addr>`.
    #[track_caller]
    fn expect_report(&self, title: &str, access: &str, addr: *const u8) {
        let out = self.take();
        let lines: Vec<&str> = out.lines().collect();
        let t = lines
            .iter()
            .position(|l| l.contains("BUG: KFENCE: "))
            .unwrap_or_else(|| panic!("no KFENCE report in:\n{out}"));
        assert!(
            lines[t].contains(title),
            "title {:?}, want {title:?}",
            lines[t]
        );
        let want = format!("{access} 0x{:016x}", self.m.to_model(addr as usize));
        assert!(
            lines[t + 1..].iter().any(|l| l.contains(&want)),
            "want {want:?} in:\n{out}"
        );
    }

    #[track_caller]
    fn expect_no_report(&self) {
        let out = self.take();
        assert!(!out.contains("BUG: KFENCE"), "unexpected report:\n{out}");
    }

    /// `kmalloc_cache_alignment`.
    fn kmalloc_align(&self, size: usize) -> usize {
        let c = self.m.kmalloc_cache(size, K).unwrap();
        self.m.slab_layout(c).unwrap().align
    }
}

impl Drop for T {
    fn drop(&mut self) {
        if let Some(c) = self.cache.take() {
            self.m.kmem_cache_destroy(c);
        }
    }
}

/// `READ_ONCE(*p)`: a real load, which faults on a protected KFENCE page. The value goes
/// through `black_box`, so that the load is kept even where the caller ignores it (Valgrind's
/// code generator drops loads whose value is unused, volatile or not).
fn read_once(p: *const u8) -> u8 {
    // SAFETY: `p` is in the machine's KFENCE pool (an object, its canary bytes or a guard
    // page): memory no Rust reference covers; a guard page faults and KFENCE's handler makes
    // it readable before the load is retried.
    std::hint::black_box(unsafe { ptr::read_volatile(p) })
}

/// `WRITE_ONCE(*p, v)`.
fn write_once(p: *mut u8, v: u8) {
    // SAFETY: `p` is in the machine's KFENCE pool (an object, its canary bytes or a guard page):
    // memory no Rust reference covers; a store to a guard page faults and KFENCE's handler makes it
    // writable before the store is retried.
    unsafe { ptr::write_volatile(p, v) }
}

fn both(f: fn(bool)) {
    f(false);
    f(true);
}

fn out_of_bounds_read(memcache: bool) {
    let mut t = T::new(memcache);
    let mut size = 32;
    t.setup_cache(memcache, size, SlabFlags::NONE, None);
    if !memcache {
        // Adjusted for the cache's alignment, so that both sides touch a guard page.
        size = t.kmalloc_align(size).max(size);
    }
    let buf = t.alloc(size, K, Policy::Left);
    read_once(buf.wrapping_sub(1));
    t.expect_report(
        "BUG: KFENCE: out-of-bounds read in ",
        "Out-of-bounds read at",
        buf.wrapping_sub(1),
    );
    t.free(buf);
    let buf = t.alloc(size, K, Policy::Right);
    read_once(buf.wrapping_add(size));
    t.expect_report(
        "BUG: KFENCE: out-of-bounds read in ",
        "Out-of-bounds read at",
        buf.wrapping_add(size),
    );
    t.free(buf);
    t.expect_no_report();
}

#[test]
fn test_out_of_bounds_read() {
    both(out_of_bounds_read);
}

fn out_of_bounds_write(memcache: bool) {
    let mut t = T::new(memcache);
    let size = 32;
    t.setup_cache(memcache, size, SlabFlags::NONE, None);
    let buf = t.alloc(size, K, Policy::Left);
    let reports = t.m.report_count();
    write_once(buf.wrapping_sub(1), 42);
    assert_eq!(
        t.m.report_count(),
        reports + 1,
        "a KFENCE report is a report"
    );
    t.expect_report(
        "BUG: KFENCE: out-of-bounds write in ",
        "Out-of-bounds write at",
        buf.wrapping_sub(1),
    );
    t.free(buf);
    // The guard page was zeroed and protected again on free.
    t.expect_no_report();
    assert!(t.m.kfence_protected(buf.wrapping_sub(1)));
}

#[test]
fn test_out_of_bounds_write() {
    both(out_of_bounds_write);
}

fn use_after_free_read(memcache: bool) {
    let mut t = T::new(memcache);
    let size = 32;
    t.setup_cache(memcache, size, SlabFlags::NONE, None);
    let addr = t.alloc(size, K, Policy::Any);
    t.free(addr);
    read_once(addr);
    t.expect_report(
        "BUG: KFENCE: use-after-free read in ",
        "Use-after-free read at",
        addr,
    );
}

#[test]
fn test_use_after_free_read() {
    both(use_after_free_read);
}

fn use_after_free_read_nofault(memcache: bool) {
    let mut t = T::new(memcache);
    let size = 32;
    t.setup_cache(memcache, size, SlabFlags::NONE, None);
    let addr = t.alloc(size, K, Policy::Any);
    t.free(addr);
    // copy_from_kernel_nofault: the host copies for us (process_vm_readv), so the protected
    // page fails the copy with EFAULT instead of faulting: no report.
    assert!(kmem_hosted::probe_read(addr).is_err());
    t.expect_no_report();
}

#[test]
fn test_use_after_free_read_nofault() {
    both(use_after_free_read_nofault);
}

fn double_free(memcache: bool) {
    let mut t = T::new(memcache);
    let size = 32;
    t.setup_cache(memcache, size, SlabFlags::NONE, None);
    let addr = t.alloc(size, K, Policy::Any);
    t.free(addr);
    t.take();
    t.free(addr);
    t.expect_report("BUG: KFENCE: invalid free in ", "Invalid free of", addr);
}

#[test]
fn test_double_free() {
    both(double_free);
}

fn invalid_addr_free(memcache: bool) {
    let mut t = T::new(memcache);
    let size = 32;
    t.setup_cache(memcache, size, SlabFlags::NONE, None);
    let buf = t.alloc(size, K, Policy::Any);
    t.free(buf.wrapping_add(1));
    t.free(buf); // No error.
    t.expect_report(
        "BUG: KFENCE: invalid free in ",
        "Invalid free of",
        buf.wrapping_add(1),
    );
    t.expect_no_report();
}

#[test]
fn test_invalid_addr_free() {
    both(invalid_addr_free);
}

fn corruption(memcache: bool) {
    let mut t = T::new(memcache);
    let size = 32;
    t.setup_cache(memcache, size, SlabFlags::NONE, None);
    let buf = t.alloc(size, K, Policy::Left);
    write_once(buf.wrapping_add(size), 42);
    t.free(buf);
    t.expect_report(
        "BUG: KFENCE: memory corruption in ",
        "Corrupted memory at",
        buf.wrapping_add(size),
    );
    let buf = t.alloc(size, K, Policy::Right);
    write_once(buf.wrapping_sub(1), 42);
    t.free(buf);
    t.expect_report(
        "BUG: KFENCE: memory corruption in ",
        "Corrupted memory at",
        buf.wrapping_sub(1),
    );
}

#[test]
fn test_corruption() {
    both(corruption);
}

#[test]
fn corruption_report_dumps_the_canary_bytes() {
    let t = T::new(false);
    let buf = t.alloc(32, K, Policy::Left);
    // Bytes 32 and 34 past the start changed, 33 and the rest intact.
    write_once(buf.wrapping_add(32), 0);
    write_once(buf.wrapping_add(34), 0);
    t.free(buf);
    let out = t.take();
    let at = t.m.to_model(buf as usize + 32);
    let want =
        format!("Corrupted memory at 0x{at:016x} [ ! . ! . . . . . . . . . . . . . ] (in kfence-#");
    assert!(out.contains(&want), "{out}");
    assert!(
        out.contains("BUG: KFENCE: memory corruption in crates/kmem/tests/kfence.rs:"),
        "{out}"
    );
    assert!(out.contains("\nfreed by task "), "{out}");
}

fn free_bulk(memcache: bool) {
    for iter in 0..5usize {
        let mut t = T::new(memcache);
        let size = 8 + iter * 61;
        let ctor: Option<fn(*mut u8)> = if iter & 1 == 1 {
            Some(ctor_set_x)
        } else {
            None
        };
        t.setup_cache(true, size, SlabFlags::NONE, ctor);
        let objs = [
            t.alloc(size, K, Policy::Right),
            t.alloc(size, K, Policy::None),
            t.alloc(size, K, Policy::Left),
            t.alloc(size, K, Policy::None),
            t.alloc(size, K, Policy::None),
        ];
        t.m.kmem_cache_free_bulk(t.cache.unwrap(), &objs);
        t.expect_no_report();
        assert!(t.m.kfence_protected(objs[0]) && t.m.kfence_protected(objs[2]));
    }
}

#[test]
fn test_free_bulk() {
    both(free_bulk);
}

#[test]
fn test_kmalloc_aligned_oob_read() {
    let t = T::new(false);
    let size = 73;
    let align = t.kmalloc_align(size);
    let buf = t.alloc(size, K, Policy::Right);
    // The object is offset to the right: nothing to its left is a guard page.
    read_once(buf.wrapping_sub(1));
    t.expect_no_report();
    // `buf` is aligned on `align`, so buf + size is still in the page.
    read_once(buf.wrapping_add(size));
    t.expect_no_report();
    // Overflowing by `align` bytes reaches the guard page.
    let addr = buf.wrapping_add(size + align);
    read_once(addr);
    t.expect_report(
        "BUG: KFENCE: out-of-bounds read in ",
        "Out-of-bounds read at",
        addr,
    );
    t.free(buf);
}

#[test]
fn test_kmalloc_aligned_oob_write() {
    let t = T::new(false);
    let size = 73;
    let buf = t.alloc(size, K, Policy::Right);
    let addr = buf.wrapping_add(size);
    write_once(addr, read_once(addr).wrapping_add(1));
    t.expect_no_report();
    t.free(buf);
    t.expect_report(
        "BUG: KFENCE: memory corruption in ",
        "Corrupted memory at",
        addr,
    );
}

#[test]
fn test_shrink_memcache() {
    let mut t = T::new(true);
    t.setup_cache(true, 32, SlabFlags::NONE, None);
    let buf = t.alloc(32, K, Policy::Any);
    t.m.kmem_cache_shrink(t.cache.unwrap());
    t.free(buf);
    t.expect_no_report();
}

fn ctor_set_x(p: *mut u8) {
    // SAFETY: every object of the caches using this constructor has at least 8 bytes.
    unsafe { ptr::write_bytes(p, b'x', 8) };
}

#[test]
fn test_memcache_ctor() {
    let mut t = T::new(true);
    t.setup_cache(true, 32, SlabFlags::NONE, Some(ctor_set_x));
    let buf = t.alloc(32, K, Policy::Any);
    for i in 0..8 {
        assert_eq!(read_once(buf.wrapping_add(i)), b'x');
    }
    t.free(buf);
    t.expect_no_report();
}

#[test]
fn test_invalid_access() {
    let t = T::new(false);
    let pool = t.m.kfence_pool().unwrap();
    let addr = (pool.start + 10) as *const u8;
    read_once(addr);
    t.expect_report("BUG: KFENCE: invalid read in ", "Invalid read at", addr);
}

#[test]
fn test_gfpzero() {
    let mut t = T::new(false);
    let size = PAGE_SIZE;
    t.setup_cache(false, size, SlabFlags::NONE, None);
    let buf1 = t.alloc(size, K, Policy::Any);
    for i in 0..size {
        write_once(buf1.wrapping_add(i), (i + 1) as u8);
    }
    t.free(buf1);
    // Get the same object back: the freelist is a FIFO, so after every other object.
    let mut buf2 = ptr::null_mut();
    for _ in 0..=KFENCE_NUM_OBJECTS {
        buf2 = t.alloc(size, K | GfpFlags::__GFP_ZERO, Policy::Any);
        if buf2 == buf1 {
            break;
        }
        t.free(buf2);
    }
    assert_eq!(buf2, buf1, "cannot get the same object back");
    for i in 0..size {
        assert_eq!(read_once(buf2.wrapping_add(i)), 0, "byte {i}");
    }
    t.free(buf2);
    t.expect_no_report();
}

#[test]
fn test_memcache_typesafe_by_rcu() {
    let mut t = T::new(true);
    t.setup_cache(true, 32, SlabFlags::TYPESAFE_BY_RCU, None);
    let addr = t.alloc(32, K, Policy::Any);
    write_once(addr, 42);
    {
        let _rcu = t.m.rcu_read_lock();
        t.free(addr);
        // Not freed yet: no report.
        assert_eq!(read_once(addr), 42);
    }
    t.expect_no_report();
    // Only after rcu_barrier() is the memory guaranteed to be freed.
    t.m.rcu_barrier();
    assert_eq!(read_once(addr), 42);
    t.expect_report(
        "BUG: KFENCE: use-after-free read in ",
        "Use-after-free read at",
        addr,
    );
}

#[test]
fn test_krealloc() {
    let t = T::new(false);
    let size = 32;
    let first = t.alloc(size, K, Policy::Any);
    assert_eq!(
        t.m.ksize(first),
        size,
        "precise size after a KFENCE allocation"
    );
    for i in 0..size {
        write_once(first.wrapping_add(i), (i + 1) as u8);
    }
    let buf = t.m.krealloc(first, size * 3, K).unwrap().as_ptr();
    assert!(t.m.ksize(buf) >= size * 3);
    for i in 0..size {
        assert_eq!(read_once(buf.wrapping_add(i)), (i + 1) as u8);
    }
    for i in size..size * 3 {
        write_once(buf.wrapping_add(i), (i + 1) as u8);
    }
    let buf = t.m.krealloc(buf, size * 2, K).unwrap().as_ptr();
    assert!(t.m.ksize(buf) >= size * 2);
    for i in 0..size * 2 {
        assert_eq!(read_once(buf.wrapping_add(i)), (i + 1) as u8);
    }
    let buf = t.m.krealloc(buf, 0, K).unwrap().as_ptr();
    assert_eq!(buf as usize, ZERO_SIZE_PTR);
    t.expect_no_report();
    // krealloc() really freed the first KFENCE object.
    read_once(first);
    t.expect_report(
        "BUG: KFENCE: use-after-free read in ",
        "Use-after-free read at",
        first,
    );
}

#[test]
fn test_memcache_alloc_bulk() {
    let mut t = T::new(true);
    t.setup_cache(true, 32, SlabFlags::NONE, None);
    let c = t.cache.unwrap();
    let mut pass = false;
    for _ in 0..1000 {
        t.m.platform().advance_jiffies(1);
        let mut objs = [ptr::null_mut(); 100];
        let n =
            t.m.kmem_cache_alloc_bulk(c, GfpFlags::GFP_ATOMIC, &mut objs);
        if n == 0 {
            continue;
        }
        pass |= objs[..n].iter().any(|&p| t.m.is_kfence_address(p));
        t.m.kmem_cache_free_bulk(c, &objs[..n]);
        if pass {
            break;
        }
    }
    assert!(pass);
    t.expect_no_report();
}

// ------------------------------------------------------------------ beyond kfence_test.c

#[test]
fn pool_layout_and_boot_line() {
    let m = machine("slub");
    let log = m.platform().take_captured();
    let pool = m.kfence_pool().unwrap();
    assert_eq!(pool.len(), KFENCE_POOL_SIZE);
    assert_eq!(KFENCE_POOL_SIZE, (255 + 1) * 2 * 4096);
    let want = format!(
        "kfence: initialized - using 2097152 bytes for 255 objects at 0x{:016x}-0x{:016x}",
        m.to_model(pool.start),
        m.to_model(pool.end)
    );
    assert!(log.contains(&want), "{log}");
    // Pages 0 and 1, and every odd page, are guard pages; the data pages are protected
    // only while their objects are free (none is allocated yet: unused objects' pages stay
    // accessible, as in Linux).
    for page in 0..KFENCE_POOL_SIZE / PAGE_SIZE {
        let p = (pool.start + page * PAGE_SIZE) as *const u8;
        assert_eq!(
            m.kfence_protected(p),
            page < 2 || page % 2 == 1,
            "page {page}"
        );
    }
    // The guard pages are really protected on the hosted platform: the host refuses to
    // read them.
    let guard = (pool.start + 3 * PAGE_SIZE) as *const u8;
    assert!(kmem_hosted::probe_read(guard).is_err());
    assert!(kmem_hosted::probe_read((pool.start + 2 * PAGE_SIZE) as *const u8).is_ok());
    assert!(m.is_kfence_address(pool.start as *const u8));
    assert!(!m.is_kfence_address(pool.end as *const u8));
    assert_eq!(canary_pattern(0x1000), 0xaa);
    assert_eq!(canary_pattern(0x1007), 0xad);
}

#[test]
fn disabled_by_default_and_by_zero() {
    for cmdline in [
        "",
        "kfence.sample_interval=0",
        "kfence.sample_interval=100 slab=slob",
    ] {
        let m = boot_with(Arch::X86_64, 64 << 20, 1, cmdline, 1);
        assert!(m.kfence_pool().is_none(), "{cmdline}");
        let mut s = String::new();
        assert!(m
            .proc_read("/sys/kernel/debug/kfence/stats", &mut s)
            .is_err());
        assert!(!m.platform().captured().contains("kfence: "), "{cmdline}");
    }
}

#[test]
fn objects_are_placed_against_either_guard_page_with_canaries() {
    let t = T::new(false);
    let (mut left, mut right) = (0, 0);
    for _ in 0..40 {
        let p = t.alloc(20, K, Policy::Any);
        let page = p as usize & !(PAGE_SIZE - 1);
        if p as usize == page {
            left += 1;
        } else {
            right += 1;
            // Right: the end, aligned down to kmalloc-32's alignment.
            let align = t.kmalloc_align(20);
            assert_eq!(p as usize, (page + PAGE_SIZE - 20) / align * align);
        }
        // Canary bytes everywhere outside the object.
        for a in (page..page + PAGE_SIZE).filter(|&a| a < p as usize || a >= p as usize + 20) {
            assert_eq!(read_once(a as *const u8), canary_pattern(a));
        }
        t.free(p);
    }
    assert!(left > 0 && right > 0, "left {left} right {right}");
    t.expect_no_report();
}

#[test]
fn stats_and_objects_files() {
    let t = T::new(false);
    let p = t.alloc(32, K, Policy::Any);
    let q = t.alloc(64, K, Policy::Any);
    t.free(q);
    let stats = proc(&t.m, "/sys/kernel/debug/kfence/stats");
    let lines: Vec<&str> = stats.lines().collect();
    assert_eq!(lines[0], "enabled: 1");
    assert_eq!(lines[1], "currently allocated: 1");
    assert!(lines[2].starts_with("total allocations: "));
    assert!(lines[3].starts_with("total frees: "));
    assert_eq!(lines[4], "zombie allocations: 0");
    assert_eq!(lines[5], "total bugs: 0");
    assert_eq!(lines[6], "skipped allocations (incompatible): 0");
    assert_eq!(lines[7], "skipped allocations (capacity): 0");
    assert_eq!(lines[8], "skipped allocations (covered): 0");
    assert_eq!(lines.len(), 9);
    let objs = proc(&t.m, "/sys/kernel/debug/kfence/objects");
    assert_eq!(
        objs.matches("---------------------------------\n").count(),
        KFENCE_NUM_OBJECTS
    );
    let w = |a: *mut u8, n: usize| {
        format!(
            "0x{:016x}-0x{:016x}, size={n}, cache=kmalloc-",
            t.m.to_model(a as usize),
            t.m.to_model(a as usize + n - 1)
        )
    };
    assert!(objs.contains(&w(p, 32)), "{objs}");
    assert!(objs.contains(&w(q, 64)), "{objs}");
    assert!(objs.contains("allocated by task "), "{objs}");
    assert!(objs.contains(" on cpu "), "{objs}");
    assert!(objs.contains("\nfreed by task "), "{objs}");
    // The allocation stack, symbolised, down to this test crate's frames (the Rust call site
    // on a platform without a stack walker). Not the test function by name: an optimised
    // build (scripts/sanitize's opt-level 1) inlines it into the harness's closure.
    assert!(objs.contains(" kfence::"), "{objs}");
    assert!(objs.contains(" unused\n"), "{objs}");
    t.free(p);
    assert_lockdep_quiet(&t.m);
}

#[test]
fn destroying_a_cache_leaves_zombies() {
    let mut t = T::new(true);
    t.setup_cache(true, 32, SlabFlags::NONE, None);
    let p = t.alloc(32, K, Policy::Any);
    let c = t.cache.take().unwrap();
    t.m.kmem_cache_destroy(c);
    let stats = proc(&t.m, "/sys/kernel/debug/kfence/stats");
    assert!(stats.contains("zombie allocations: 1\n"), "{stats}");
    // The object is now a freed one of a destroyed cache.
    read_once(p);
    let out = t.take();
    assert!(
        out.contains("BUG: KFENCE: use-after-free read in "),
        "{out}"
    );
    assert!(out.contains(", size=32, cache=<destroyed>"), "{out}");
}

#[test]
fn zone_specific_and_large_requests_are_skipped() {
    let t = T::new(false);
    t.m.platform().advance_jiffies(1);
    let incompat = |t: &T| t.m.kfence_stats().unwrap().1[5].1;
    // The CPU notices the open gate within KFENCE_CLOCK_EVERY allocations.
    for n in 0.. {
        assert!(n <= KFENCE_CLOCK_EVERY, "the gate was never noticed");
        let dma = GfpFlags::GFP_KERNEL | GfpFlags::__GFP_DMA;
        let p = t.m.kmalloc(32, dma).unwrap().as_ptr();
        assert!(!t.m.is_kfence_address(p));
        t.m.kfree(p);
        if incompat(&t) == 1 {
            break;
        }
    }
    let p = t.m.kmalloc(PAGE_SIZE + 1, K).unwrap().as_ptr();
    assert!(!t.m.is_kfence_address(p));
    t.m.kfree(p);
    let stats = proc(&t.m, "/sys/kernel/debug/kfence/stats");
    assert!(
        stats.contains("skipped allocations (incompatible): 2\n"),
        "{stats}"
    );
    // The gate stayed open: the next allocation is KFENCE's.
    let p = t.m.kmalloc(32, K).unwrap().as_ptr();
    assert!(t.m.is_kfence_address(p));
    t.m.kfree(p);
}

#[test]
fn one_allocation_per_sample_interval() {
    let t = T::new(false);
    t.m.platform().advance_jiffies(1);
    // The CPU notices the open gate within KFENCE_CLOCK_EVERY allocations; one is sampled.
    let n = 3 * KFENCE_CLOCK_EVERY as usize;
    let ps: Vec<*mut u8> = (0..n)
        .map(|_| t.m.kmalloc(16, K).unwrap().as_ptr())
        .collect();
    assert_eq!(ps.iter().filter(|&&p| t.m.is_kfence_address(p)).count(), 1);
    for p in ps {
        t.m.kfree(p);
    }
}

/// The skipped-allocation counters (covered, capacity).
fn skips(t: &T) -> i64 {
    let (_, c) = t.m.kfence_stats().unwrap();
    c[6].1 + c[7].1
}

/// Opens the allocation gate `n` times, each time allocating from one site (and holding
/// everything) until the gate is used: by a KFENCE object or a skip.
fn fill_pool(t: &T, n: usize) -> (Vec<*mut u8>, String) {
    let mut held = Vec::new();
    for _ in 0..n {
        t.m.platform().advance_jiffies(1);
        let before = skips(t);
        loop {
            let p = t.m.kmalloc(16, K).unwrap().as_ptr();
            held.push(p);
            if t.m.is_kfence_address(p) || skips(t) != before {
                break;
            }
        }
    }
    (held, proc(&t.m, "/sys/kernel/debug/kfence/stats"))
}

#[test]
fn coverage_skips_a_site_once_the_pool_is_three_quarters_full() {
    let t = T::new(false);
    let (held, stats) = fill_pool(&t, KFENCE_NUM_OBJECTS);
    // thresh = 255 * 75 / 100 = 191: the 192nd object is allocated (the check is `>`), then
    // the site is covered.
    assert!(stats.contains("currently allocated: 192\n"), "{stats}");
    assert!(
        stats.contains("skipped allocations (covered): 63\n"),
        "{stats}"
    );
    for p in held {
        t.m.kfree(p);
    }
    t.expect_no_report();
}

#[test]
fn pool_exhaustion_is_counted_not_fatal() {
    let t = T::with("kfence.sample_interval=1 kfence.skip_covered_thresh=100");
    let (held, stats) = fill_pool(&t, KFENCE_NUM_OBJECTS + 5);
    assert!(stats.contains("currently allocated: 255\n"), "{stats}");
    assert!(
        stats.contains("skipped allocations (capacity): 5\n"),
        "{stats}"
    );
    for p in held {
        t.m.kfree(p);
    }
    t.expect_no_report();
}

#[test]
fn slab_allocator_variant() {
    // KFENCE under SLAB (mm/slab.c) as under SLUB.
    let t = T::with("kfence.sample_interval=1 slab=slab");
    let buf = t.alloc(32, K, Policy::Right);
    read_once(buf.wrapping_add(32));
    t.expect_report(
        "BUG: KFENCE: out-of-bounds read in ",
        "Out-of-bounds read at",
        buf.wrapping_add(32),
    );
    t.free(buf);
    t.free(buf);
    t.expect_report("BUG: KFENCE: invalid free in ", "Invalid free of", buf);
}

/// Threads allocating, writing and freeing concurrently while the clock runs: KFENCE serves a
/// share of them, nobody sees a report, and every KFENCE object comes back.
#[test]
fn concurrent_allocations_and_frees() {
    let t = T::new(false);
    let m = &t.m;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let stop = &stop;
    std::thread::scope(|s| {
        s.spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                m.platform().advance_jiffies(1);
                std::thread::yield_now();
            }
        });
        let workers: Vec<_> = (0..4)
            .map(|w| {
                s.spawn(move || {
                    let mut kfence = 0;
                    let mut held: Vec<(*mut u8, usize)> = Vec::new();
                    for i in 0..4000usize {
                        let size = 1 + (i * 37 + w * 101) % 600;
                        let p = m.kmalloc(size, K).unwrap().as_ptr();
                        kfence += usize::from(m.is_kfence_address(p));
                        // SAFETY: a fresh block of `size` bytes.
                        unsafe { ptr::write_bytes(p, w as u8, size) };
                        held.push((p, size));
                        if held.len() > 16 {
                            let (q, n) = held.remove(i % 16);
                            for j in 0..n {
                                assert_eq!(read_once(q.wrapping_add(j)), w as u8);
                            }
                            m.kfree(q);
                        }
                    }
                    for (q, _) in held {
                        m.kfree(q);
                    }
                    kfence
                })
            })
            .collect();
        let n: usize = workers.into_iter().map(|h| h.join().unwrap()).sum();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(n > 0, "no KFENCE allocation");
    });
    t.expect_no_report();
    let stats = proc(m, "/sys/kernel/debug/kfence/stats");
    assert!(stats.contains("currently allocated: 0\n"), "{stats}");
    assert!(stats.contains("total bugs: 0\n"), "{stats}");
    assert_lockdep_quiet(m);
}

/// Freeing an address of the pool that belongs to no object (the two leading guard pages) is
/// not KFENCE's to judge: kfree reports it as memory kmalloc never returned, and both go on.
#[test]
fn kfree_of_the_leading_guard_pages_is_reported_by_kfree() {
    let t = T::new(false);
    let pool = t.m.kfence_pool().unwrap();
    let warns = t.m.warn_count();
    t.m.kfree((pool.start + 8) as *const u8);
    assert_eq!(t.m.warn_count(), warns + 1);
    let out = t.take();
    assert!(out.contains("was not returned by kmalloc"), "{out}");
    assert!(!out.contains("BUG: KFENCE"), "{out}");
    let p = t.alloc(16, K, Policy::Any);
    t.free(p);
    t.expect_no_report();
}
