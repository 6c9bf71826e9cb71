//! kmemleak (mm/kmemleak.c) on a booted machine: tracking hooks, the scan (roots, references
//! into an object, min_count, the checksum rule, no_scan/ignore/not_leak), the debugfs file's
//! format and commands, the boot parameter, and samples/kmemleak/kmemleak-test.c ported.
mod common;

use kmem::arch::Arch;
use kmem::errno::Errno;
use kmem::platform::Platform;
use kmem::proc::ProcError;
use kmem::slab::common::SlabFlags;
use kmem::{GfpFlags, PhysAddr, VirtAddr};

use common::M;

const DEBUGFS: &str = "/sys/kernel/debug/kmemleak";

fn leaky() -> M {
    common::boot_with(Arch::X86_64, 256 << 20, 2, "kmemleak=on", 42)
}

/// Moves the clock past `MSECS_MIN_AGE` (5 s).
fn age(m: &M) {
    let hz = m.platform().hz();
    m.platform().advance_jiffies(6 * hz);
}

fn kmalloc(m: &M, size: usize) -> *mut u8 {
    m.kmalloc(size, GfpFlags::GFP_KERNEL).unwrap().as_ptr()
}

/// Stores `v` as a word at `p + off`.
fn poke(p: *mut u8, off: usize, v: usize) {
    // SAFETY: tests only poke inside blocks they allocated, at aligned offsets.
    unsafe { p.add(off).cast::<usize>().write(v) };
}

/// Two scans (a new leak is reported by the second, or by the first when its contents
/// checksum to 0, as all-zero blocks do: crc32 of zeroes with seed 0 is 0); the new leaks.
fn scan2(m: &M, roots: &[usize]) -> usize {
    m.kmemleak_scan(roots) + m.kmemleak_scan(roots)
}

/// The first vmalloc area starts at the base of the kernel window, which the machine's
/// state holds: a kept first area, so the test's areas are not "referenced" by it.
fn skip_window_base(m: &M) {
    let v = m.vmalloc(4096).unwrap();
    m.kmemleak_not_leak(v.as_ptr());
}

fn file(m: &M) -> String {
    common::proc(m, DEBUGFS)
}

fn reported(m: &M) -> usize {
    file(m).matches("unreferenced object").count()
}

fn write(m: &M, s: &str) -> Result<(), ProcError> {
    m.proc_write(DEBUGFS, s)
}

#[test]
fn off_by_default_and_with_kmemleak_off() {
    let m = common::boot(Arch::X86_64, 128 << 20, 1);
    assert!(!m.kmemleak_enabled());
    let p = kmalloc(&m, 64);
    assert!(!m.kmemleak_tracks(p));
    assert_eq!(m.kmemleak_scan(&[]), 0);
    assert!(matches!(
        write(&m, "scan"),
        Err(ProcError::Errno(Errno::EPERM))
    ));
    assert_eq!(file(&m), "");
    let mut log = String::new();
    m.dmesg(&mut log, true).unwrap();
    assert!(!log.contains("kmemleak"), "{log}");

    let m = common::boot_with(Arch::X86_64, 128 << 20, 1, "kmemleak=off", 1);
    assert!(!m.kmemleak_enabled());
    let mut log = String::new();
    m.dmesg(&mut log, true).unwrap();
    assert!(log.contains("kmemleak: Kernel memory leak detector disabled"));
}

#[test]
fn boot_lines_and_state_roots() {
    let m = leaky();
    assert!(m.kmemleak_enabled());
    let mut log = String::new();
    m.dmesg(&mut log, true).unwrap();
    assert!(log.contains("kmemleak: Automatic memory scanning thread started"));
    assert!(log.contains("kmemleak: Kernel memory leak detector initialized (mem pool available: "));
    // Boot-time objects (vmalloc's areas and the like) are all reachable from the machine's
    // state: nothing is reported.
    age(&m);
    assert_eq!(m.kmemleak_scan(&[]), 0);
    assert_eq!(m.kmemleak_scan(&[]), 0);
    assert_eq!(file(&m), "");
    common::assert_lockdep_quiet(&m);
}

#[test]
fn leak_reported_after_two_scans_in_linux_format() {
    let m = leaky();
    let p = kmalloc(&m, 64);
    assert!(m.kmemleak_tracks(p));
    for i in 0..64 {
        // SAFETY: inside the 64-byte block.
        unsafe { p.add(i).write(b'k') };
    }
    // SAFETY: byte 31 of the same live 64-byte block `p`, written just above, still allocated and
    // not shared with any other thread.
    unsafe { p.add(31).write(0xa5) };
    age(&m);
    // First scan: the checksum changes from 0, the object is grey for this scan.
    assert_eq!(m.kmemleak_scan(&[]), 0);
    assert_eq!(file(&m), "");
    // Second scan: unchanged and unreferenced.
    assert_eq!(m.kmemleak_scan(&[]), 1);
    let mut log = String::new();
    m.dmesg(&mut log, true).unwrap();
    assert!(log.contains("kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)"));
    let f = file(&m);
    let model = m.kva_to_model(VirtAddr::new(p as usize));
    let lines: Vec<&str> = f.lines().collect();
    assert_eq!(
        lines[0],
        format!("unreferenced object 0x{model:08x} (size 64):")
    );
    assert!(lines[1].starts_with("  comm \""), "{f}");
    assert!(lines[1].contains(", pid "), "{f}");
    assert!(lines[1].contains(", jiffies "), "{f}");
    assert_eq!(lines[2], "  hex dump (first 32 bytes):");
    assert_eq!(
        lines[3],
        "    6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b  kkkkkkkkkkkkkkkk"
    );
    assert_eq!(
        lines[4],
        "    6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b a5  kkkkkkkkkkkkkkk."
    );
    assert!(lines[5].starts_with("  backtrace (crc "), "{f}");
    // The allocation's stack, print_unreferenced's "    [<%pK>] %pS" a frame, innermost first,
    // bounded by kmemleak's MAX_TRACE (16), down to this test.
    let trace = &lines[6..];
    assert!((2..=16).contains(&trace.len()), "{f}");
    for l in trace {
        let hex = l
            .strip_prefix("    [<")
            .and_then(|r| r.get(..16))
            .unwrap_or("");
        assert!(
            hex.chars().all(|c| c.is_ascii_hexdigit()) && hex.len() == 16,
            "{f}"
        );
        assert_eq!(&l[22..25], ">] ", "{f}");
    }
    // Down to this test crate's frames (`kmemleak::…`; not the test function by name: an
    // optimised build, scripts/sanitize's opt-level 1, inlines it into the harness's closure).
    assert!(trace.iter().any(|l| l.contains(">] kmemleak::")), "{f}");
    // Reported once: a third scan finds nothing new, the file still lists it.
    assert_eq!(m.kmemleak_scan(&[]), 0);
    assert_eq!(reported(&m), 1);
    // Freed: gone.
    m.kfree(p);
    assert_eq!(reported(&m), 0);
    common::assert_lockdep_quiet(&m);
}

#[test]
fn referenced_objects_are_not_reported() {
    let m = leaky();
    // A root (a front end's variable), an object it points to the middle of, and one that
    // object points to: a chain from the root.
    let a = kmalloc(&m, 128);
    let b = kmalloc(&m, 256);
    let c = kmalloc(&m, 32);
    poke(a, 8, b as usize + 100);
    poke(b, 248, c as usize);
    let lone = kmalloc(&m, 32);
    age(&m);
    let roots = [a as usize];
    // A new object's bytes are whatever the slab left there (a free pointer, or nothing for
    // an object a sheaf refill took straight from a new slab): two scans report it either way.
    assert_eq!(scan2(&m, &roots), 1);
    let f = file(&m);
    assert_eq!(reported(&m), 1, "{f}");
    let lone_model = m.kva_to_model(VirtAddr::new(lone as usize));
    assert!(f.contains(&format!("0x{lone_model:08x}")), "{f}");
    // Unaligned pointer values do not count: only aligned words are read.
    // SAFETY: inside b (256 bytes), an unaligned write of a word.
    unsafe { b.add(201).cast::<usize>().write_unaligned(lone as usize) };
    poke(b, 248, 0);
    assert_eq!(scan2(&m, &roots), 1, "c lost its only reference");
    assert_eq!(reported(&m), 2);
}

#[test]
fn self_reference_and_cycle_do_not_keep_alive() {
    let m = leaky();
    let a = kmalloc(&m, 64);
    let b = kmalloc(&m, 64);
    poke(a, 0, a as usize); // self reference: ignored
    poke(a, 8, b as usize);
    poke(b, 8, a as usize); // a cycle not reachable from a root
    age(&m);
    assert_eq!(scan2(&m, &[]), 2);
}

#[test]
fn not_leak_ignore_no_scan_and_transient() {
    let m = leaky();
    let quiet = kmalloc(&m, 64);
    let ign = kmalloc(&m, 64);
    let child_of_ign = kmalloc(&m, 64);
    let ns = kmalloc(&m, 64);
    let child_of_ns = kmalloc(&m, 64);
    let grey = kmalloc(&m, 64);
    let child_of_grey = kmalloc(&m, 64);
    poke(ign, 0, child_of_ign as usize);
    poke(ns, 0, child_of_ns as usize);
    poke(grey, 0, child_of_grey as usize);
    m.kmemleak_not_leak(quiet);
    m.kmemleak_ignore(ign);
    m.kmemleak_no_scan(ns);
    m.kmemleak_not_leak(grey);
    age(&m);
    let roots = [ns as usize];
    assert_eq!(scan2(&m, &roots), 2);
    let f = file(&m);
    let shown = |p: *mut u8| {
        f.contains(&format!(
            "0x{:08x} ",
            m.kva_to_model(VirtAddr::new(p as usize))
        ))
    };
    // Black: not reported, not scanned (its child leaks). NO_SCAN: referenced (a root points
    // at it) but not scanned (its child leaks). Grey: never reported, and scanned.
    assert!(!shown(quiet) && !shown(ign) && !shown(ns) && !shown(grey) && !shown(child_of_grey));
    assert!(shown(child_of_ign) && shown(child_of_ns), "{f}");

    // kmemleak_transient_leak resets the checksum: the next scan does not report it.
    let t = kmalloc(&m, 64);
    // Not all zero (its crc would equal the reset checksum 0), whatever the slab left in it.
    poke(t, 0, 7);
    age(&m);
    m.kmemleak_scan(&roots);
    m.kmemleak_transient_leak(t);
    assert_eq!(m.kmemleak_scan(&roots), 0);
    assert_eq!(m.kmemleak_scan(&roots), 1);
}

#[test]
fn unknown_object_warnings() {
    let m = leaky();
    m.platform().take_captured();
    let mut x = [0u64; 4];
    m.kmemleak_not_leak(x.as_mut_ptr().cast());
    m.kmemleak_ignore(x.as_mut_ptr().cast());
    m.kmemleak_no_scan(x.as_mut_ptr().cast());
    let out = m.platform().take_captured();
    assert!(
        out.contains("kmemleak: Trying to color unknown object at 0x"),
        "{out}"
    );
    assert!(out.contains(" as Grey"), "{out}");
    assert!(out.contains(" as Black"), "{out}");
    assert!(
        out.contains("kmemleak: Not scanning unknown object at 0x"),
        "{out}"
    );
    // An address inside an object is found "by alias" and warned about.
    let p = kmalloc(&m, 64);
    // SAFETY: inside the block.
    m.kmemleak_not_leak(unsafe { p.add(8) });
    let out = m.platform().take_captured();
    assert!(
        out.contains("kmemleak: Found object by alias at 0x"),
        "{out}"
    );
    assert!(out.contains("kmemleak:   min_count = 1"), "{out}");
}

#[test]
fn min_count_zero_objects_are_roots_and_min_count_two() {
    let m = leaky();
    let region = kmalloc(&m, 256);
    let child = kmalloc(&m, 64);
    let two = kmalloc(&m, 64);
    // A region registered by hand: kmalloc'd memory re-registered would overlap, so take it
    // out of kmemleak's view first (kmemleak_free) and register it grey.
    m.kmemleak_free(region);
    // SAFETY: the block is readable until freed below.
    unsafe { m.kmemleak_alloc(region, 256, 0, GfpFlags::GFP_KERNEL) };
    poke(region, 16, child as usize);
    // An object that needs two references (vmalloc's min_count in Linux).
    m.kmemleak_free(two);
    // SAFETY: `two` is a live 64-byte kmalloc block freed only at the end of the test (after the
    // scans), so `[two, two + 64)` stays readable for every scan, as `kmemleak_alloc` asks.
    unsafe { m.kmemleak_alloc(two, 64, 2, GfpFlags::GFP_KERNEL) };
    poke(region, 24, two as usize);
    age(&m);
    assert_eq!(
        scan2(&m, &[]),
        1,
        "one reference is not enough for min_count 2"
    );
    poke(region, 32, two as usize + 8);
    // Its checksum does not change, but it has two references now: no new leak, and the file
    // no longer lists it (it is not white).
    m.kmemleak_scan(&[]);
    assert_eq!(reported(&m), 0, "{}", file(&m));
    m.kmemleak_free(region);
    m.kmemleak_free(two);
    m.kfree(region);
    m.kfree(two);
    m.kfree(child);
}

#[test]
fn checksum_rule_changed_objects_wait_a_scan() {
    let m = leaky();
    let p = kmalloc(&m, 64);
    poke(p, 0, 1);
    age(&m);
    assert_eq!(m.kmemleak_scan(&[]), 0);
    poke(p, 0, 2); // modified since the last scan
    assert_eq!(m.kmemleak_scan(&[]), 0);
    assert_eq!(m.kmemleak_scan(&[]), 1);
}

/// A new object's checksum is 0 (mm/kmemleak.c `__alloc_object`), and crc32 of zeroes with
/// seed 0 is 0: an all-zero leak is unchanged at the first scan and reported by it; one with
/// any nonzero byte changed and is reported by the second. Which one a fresh, unzeroed
/// kmalloc object is depends on what the slab left in it (a hardened free pointer, or nothing
/// when a sheaf refill took it straight from a new slab), so tests that count the reports of a
/// single scan set the contents.
#[test]
fn zeroed_leak_is_reported_by_the_first_scan() {
    let m = leaky();
    let z = m
        .kmalloc(64, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO)
        .unwrap()
        .as_ptr();
    let nz = m
        .kmalloc(64, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO)
        .unwrap()
        .as_ptr();
    poke(nz, 56, 1);
    age(&m);
    assert_eq!(m.kmemleak_scan(&[]), 1);
    let zm = m.kva_to_model(VirtAddr::new(z as usize));
    assert!(file(&m).contains(&format!("0x{zm:08x} ")), "{}", file(&m));
    assert_eq!(m.kmemleak_scan(&[]), 1);
    assert_eq!(reported(&m), 2);
}

#[test]
fn young_objects_are_not_reported() {
    let m = leaky();
    let p = kmalloc(&m, 64);
    poke(p, 0, 7);
    m.kmemleak_scan(&[]);
    assert_eq!(m.kmemleak_scan(&[]), 0);
    let hz = m.platform().hz();
    m.platform().advance_jiffies(5 * hz - 1);
    assert_eq!(m.kmemleak_scan(&[]), 0);
    m.platform().advance_jiffies(1);
    assert_eq!(m.kmemleak_scan(&[]), 1, "5 s old at the scan's start");
}

#[test]
fn free_part_splits() {
    let m = leaky();
    let p = kmalloc(&m, 256);
    // SAFETY: pointer arithmetic inside the block.
    let (q, r) = unsafe { (p.add(64), p.add(128)) };
    m.kmemleak_free_part(q, 64);
    assert!(m.kmemleak_tracks(p));
    assert!(!m.kmemleak_tracks(q));
    assert!(m.kmemleak_tracks(r));
    let f0 = m.kmemleak_stats().objects;
    m.kfree(p);
    assert_eq!(
        m.kmemleak_stats().objects,
        f0 - 1,
        "kfree forgets the left part"
    );
    m.kmemleak_free(r);
    assert!(!m.kmemleak_tracks(r));
}

#[test]
fn vmalloc_cache_large_and_phys() {
    let m = leaky();
    skip_window_base(&m);
    let v = m.vmalloc(10_000).unwrap();
    let big = kmalloc(&m, 20_000);
    let c = m
        .kmem_cache_create("leak_test", 200, 0, SlabFlags::NONE, None)
        .unwrap();
    let o = m
        .kmem_cache_alloc(c, GfpFlags::GFP_KERNEL)
        .unwrap()
        .as_ptr();
    let nl = m
        .kmem_cache_create("noleak_test", 200, 0, SlabFlags::NOLEAKTRACE, None)
        .unwrap();
    let n = m
        .kmem_cache_alloc(nl, GfpFlags::GFP_KERNEL)
        .unwrap()
        .as_ptr();
    assert!(!m.kmemleak_tracks(n));
    assert!(m.kmemleak_tracks(v.as_ptr()) && m.kmemleak_tracks(big) && m.kmemleak_tracks(o));
    // A physical range is a root: what it points to is referenced.
    let page = m
        .alloc_pages(GfpFlags::GFP_KERNEL, kmem::Order::new(0))
        .unwrap();
    let va = m.page_address(page).unwrap();
    let pa = m.virt_to_phys(va).unwrap();
    m.kmemleak_alloc_phys(pa, 4096, GfpFlags::GFP_KERNEL);
    let kept = kmalloc(&m, 64);
    poke(va.as_ptr(), 0, kept as usize);
    age(&m);
    let f = file(&m);
    assert_eq!(scan2(&m, &[]), 3, "{f}");
    let f = file(&m);
    assert!(f.contains("(size 10000):"), "{f}");
    assert!(f.contains("(size 20000):"), "{f}");
    assert!(f.contains("(size 200):"), "{f}");
    let vm = m.kva_to_model(v);
    assert!(
        f.contains(&format!("unreferenced object 0x{vm:016x} (size 10000)")),
        "{f}"
    );
    m.vfree(v);
    m.kfree(big);
    m.kmem_cache_free(c, o);
    assert_eq!(reported(&m), 0);
    m.kmemleak_free_part_phys(pa, 4096);
    m.kmemleak_ignore_phys(PhysAddr::new(0));
    m.kmem_cache_free(nl, n);
    common::assert_lockdep_quiet(&m);
}

#[test]
fn debugfs_commands() {
    let m = leaky();
    let p = kmalloc(&m, 64);
    let root = kmalloc(&m, 64);
    let child = kmalloc(&m, 64);
    poke(root, 0, child as usize);
    m.kmemleak_not_leak(root);
    age(&m);
    write(&m, "scan").unwrap();
    write(&m, "scan").unwrap();
    assert_eq!(reported(&m), 1);
    // dump=ADDR prints the object's metadata.
    m.platform().take_captured();
    let pm = m.kva_to_model(VirtAddr::new(p as usize));
    write(&m, &format!("dump=0x{pm:x}")).unwrap();
    let out = m.platform().take_captured();
    assert!(
        out.contains(&format!("kmemleak: Object 0x{pm:08x} (size 64):")),
        "{out}"
    );
    assert!(out.contains("kmemleak:   min_count = 1"), "{out}");
    assert!(out.contains("kmemleak:   count = 0"), "{out}");
    assert!(out.contains("kmemleak:   flags = 0x3"), "{out}");
    assert!(out.contains("kmemleak:   backtrace:"), "{out}");
    assert!(matches!(
        write(&m, "dump=0x1234"),
        Err(ProcError::Errno(Errno::EINVAL))
    ));
    assert!(m
        .platform()
        .take_captured()
        .contains("kmemleak: Unknown object at 0x00001234"));
    assert!(matches!(
        write(&m, "dump=zz"),
        Err(ProcError::Errno(Errno::EINVAL))
    ));
    assert!(matches!(
        write(&m, "bogus"),
        Err(ProcError::Errno(Errno::EINVAL))
    ));
    assert!(matches!(
        write(&m, "scan=x"),
        Err(ProcError::Errno(Errno::EINVAL))
    ));
    // clear: the reported object turns grey, the list empties.
    write(&m, "clear").unwrap();
    assert_eq!(file(&m), "");
    // stack=off: the caller's roots are not scanned.
    let held = kmalloc(&m, 64);
    // Not all zero (crc 0, the checksum a new object starts with, would report it at once),
    // whatever the slab left in it.
    poke(held, 0, 5);
    age(&m);
    let roots = [held as usize];
    m.kmemleak_write_roots("scan", &roots).unwrap();
    m.kmemleak_write_roots("scan", &roots).unwrap();
    assert_eq!(reported(&m), 0);
    write(&m, "stack=off").unwrap();
    // White for the first time: its checksum is recorded by this scan, reported by the next.
    m.kmemleak_write_roots("scan", &roots).unwrap();
    assert_eq!(reported(&m), 0);
    m.kmemleak_write_roots("scan", &roots).unwrap();
    assert_eq!(reported(&m), 1);
    write(&m, "stack=on").unwrap();
    // scan=SECS: the automatic scan runs at the next poll, then every SECS.
    m.platform().take_captured();
    write(&m, "scan=5").unwrap();
    let out = m.platform().take_captured();
    assert!(
        out.contains("kmemleak: Automatic memory scanning thread ended"),
        "{out}"
    );
    assert!(
        out.contains("kmemleak: Automatic memory scanning thread started"),
        "{out}"
    );
    let leak2 = kmalloc(&m, 64);
    poke(leak2, 0, 5);
    age(&m);
    m.kmemleak_poll(&[]); // due now: checksum recorded
    m.kmemleak_poll(&[]); // not due yet
    assert!(!file(&m).contains(&format!(
        "0x{:08x}",
        m.kva_to_model(VirtAddr::new(leak2 as usize))
    )));
    let hz = m.platform().hz();
    m.platform().advance_jiffies(5 * hz);
    m.kmemleak_poll(&[]);
    assert!(file(&m).contains(&format!(
        "0x{:08x}",
        m.kva_to_model(VirtAddr::new(leak2 as usize))
    )));
    write(&m, "scan=off").unwrap();
    // off: disabled for good; the found leaks are kept until clear.
    m.platform().take_captured();
    write(&m, "off").unwrap();
    let out = m.platform().take_captured();
    assert!(
        out.contains("kmemleak: Kernel memory leak detector disabled"),
        "{out}"
    );
    assert!(
        out.contains("Reclaim the memory with \"echo clear > /sys/kernel/debug/kmemleak\""),
        "{out}"
    );
    assert!(!m.kmemleak_enabled());
    assert!(matches!(
        write(&m, "scan"),
        Err(ProcError::Errno(Errno::EPERM))
    ));
    assert!(reported(&m) >= 1);
    write(&m, "clear").unwrap();
    assert_eq!(m.kmemleak_stats().objects, 0);
    assert_eq!(file(&m), "");
    // Allocating and freeing goes on untracked.
    let q = kmalloc(&m, 64);
    m.kfree(q);
    m.kfree(p);
    common::assert_lockdep_quiet(&m);
}

#[test]
fn kfree_rcu_objects_are_not_leaks() {
    let m = leaky();
    let p = kmalloc(&m, 64);
    m.kfree_rcu_mightsleep(p);
    age(&m);
    m.kmemleak_scan(&[]);
    assert_eq!(m.kmemleak_scan(&[]), 0);
    m.rcu_barrier();
    m.kvfree_rcu_barrier();
}

#[test]
fn slob_and_slab_allocators() {
    for alloc in ["slab=slob", "slab=slab"] {
        let m = common::boot_with(
            Arch::X86_64,
            128 << 20,
            1,
            &format!("kmemleak=on {alloc}"),
            3,
        );
        let a = kmalloc(&m, 100);
        let b = kmalloc(&m, 9000);
        let c = m
            .kmem_cache_create("leak_slob", 5000, 0, SlabFlags::NONE, None)
            .unwrap();
        let o = m
            .kmem_cache_alloc(c, GfpFlags::GFP_KERNEL)
            .unwrap()
            .as_ptr();
        age(&m);
        assert_eq!(scan2(&m, &[]), 3, "{alloc}");
        m.kfree(a);
        m.kfree(b);
        m.kmem_cache_free(c, o);
        assert_eq!(reported(&m), 0, "{alloc}");
        common::assert_lockdep_quiet(&m);
    }
}

/// samples/kmemleak/kmemleak-test.c, ported: the orphans of its init function are reported
/// by a scan; the list elements hanging off the module's static list head are not, until the
/// module exit unlinks them (without freeing), after which they are.
#[test]
fn kmemleak_test_module() {
    let m = leaky();
    let cpus = m.platform().possible_cpus();
    // The module's data: `static LIST_HEAD(test_list)` and the per-CPU
    // `kmemleak_test_pointer`s, a grey region as a module's .data is.
    let data = m
        .kzalloc(16 + 8 * cpus, GfpFlags::GFP_KERNEL)
        .unwrap()
        .as_ptr();
    skip_window_base(&m);
    m.kmemleak_not_leak(data);
    let files_cachep = m
        .kmem_cache_create("files_cache", 704, 0, SlabFlags::HWCACHE_ALIGN, None)
        .unwrap();
    // make some orphan objects
    for size in [32, 32, 1024, 1024, 2048, 2048, 4096, 4096] {
        kmalloc(&m, size);
    }
    for _ in 0..2 {
        m.kmem_cache_alloc(files_cachep, GfpFlags::GFP_KERNEL)
            .unwrap();
    }
    for _ in 0..5 {
        m.vmalloc(64).unwrap();
    }
    // struct test_node { long header[25]; struct list_head list; long footer[25]; }: ten
    // elements on test_list (list_add_tail).
    let head = data as usize;
    poke(data, 0, head);
    poke(data, 8, head);
    let list_off = 25 * 8;
    for _ in 0..10 {
        let e = m
            .kzalloc(51 * 8 + 8, GfpFlags::GFP_KERNEL)
            .unwrap()
            .as_ptr();
        let node = e as usize + list_off;
        // SAFETY: `data` and the elements are live blocks; list_add_tail by hand.
        unsafe {
            let prev = *(data.add(8).cast::<usize>());
            poke(e, list_off, head); // next
            poke(e, list_off + 8, prev); // prev
            *(prev as *mut usize) = node; // prev->next
            *(data.add(8).cast::<usize>()) = node; // head->prev
        }
    }
    for cpu in 0..cpus {
        let p = kmalloc(&m, 129);
        poke(data, 16 + 8 * cpu, p as usize);
    }
    age(&m);
    write(&m, "scan").unwrap();
    write(&m, "scan").unwrap();
    let f = file(&m);
    assert_eq!(reported(&m), 8 + 2 + 5, "{f}");
    assert_eq!(f.matches("(size 32):").count(), 2);
    assert_eq!(f.matches("(size 1024):").count(), 2);
    assert_eq!(f.matches("(size 2048):").count(), 2);
    assert_eq!(f.matches("(size 4096):").count(), 2);
    assert_eq!(f.matches("(size 704):").count(), 2);
    assert_eq!(f.matches("(size 64):").count(), 5);
    // kmemleak_test_exit: list_del of every element, memory not freed (LIST_POISON1/2).
    let mut node = head;
    // SAFETY: walking the list built above.
    unsafe {
        node = *(node as *const usize);
        while node != head {
            let next = *(node as *const usize);
            *(node as *mut usize) = 0xdead_0000_0000_0100;
            *((node + 8) as *mut usize) = 0xdead_0000_0000_0122;
            node = next;
        }
    }
    poke(data, 0, head);
    poke(data, 8, head);
    write(&m, "scan").unwrap(); // the elements changed: grey for this scan
    assert_eq!(reported(&m), 15);
    write(&m, "scan").unwrap();
    let f = file(&m);
    assert_eq!(reported(&m), 25, "{f}");
    // sizeof(struct test_node) is 416: a kmalloc-512 object.
    assert_eq!(f.matches("(size 512):").count(), 10, "{f}");
    common::assert_lockdep_quiet(&m);
}

#[test]
fn scan_area_and_model_address_references() {
    let m = leaky();
    let holder = kmalloc(&m, 128);
    m.kmemleak_not_leak(holder);
    let a = kmalloc(&m, 64);
    let b = kmalloc(&m, 64);
    // A model address (what the shell writes) is a reference as a real one is.
    poke(
        holder,
        64,
        m.kva_to_model(VirtAddr::new(a as usize)) as usize,
    );
    // Outside the scan area: not looked at.
    poke(holder, 0, b as usize);
    // SAFETY: inside the block.
    let area = unsafe { holder.add(64) };
    m.kmemleak_scan_area(area, usize::MAX, GfpFlags::GFP_KERNEL);
    age(&m);
    assert_eq!(scan2(&m, &[]), 1);
    let f = file(&m);
    let bm = m.kva_to_model(VirtAddr::new(b as usize));
    assert!(
        f.contains(&format!("unreferenced object 0x{bm:08x} ")),
        "{f}"
    );
    // An area past the object's end is refused with Linux's warning.
    m.platform().take_captured();
    m.kmemleak_scan_area(area, 65, GfpFlags::GFP_KERNEL);
    let out = m.platform().take_captured();
    assert!(
        out.contains("kmemleak: Scan area larger than object 0x"),
        "{out}"
    );
    // A second area makes the object scanned in full: b is referenced again.
    m.kmemleak_scan_area(holder, 8, GfpFlags::GFP_KERNEL);
    m.kmemleak_scan(&[]);
    assert_eq!(reported(&m), 0, "{}", file(&m));
}

#[test]
fn memory_ranges_as_roots_and_min_age() {
    let m = leaky();
    m.kmemleak_set_min_age(0);
    let a = kmalloc(&m, 64);
    let b = kmalloc(&m, 64);
    poke(a, 0, 1);
    poke(b, 0, 2);
    // A program's data: host memory holding a pointer to `a`.
    let mut data = [0usize; 4];
    data[1] = a as usize;
    let r = [(data.as_ptr() as usize, data.as_ptr() as usize + 32)];
    // SAFETY: `data` is live for both calls.
    let n = unsafe { m.kmemleak_scan_ranges(&r, &[]) + m.kmemleak_scan_ranges(&r, &[]) };
    assert_eq!(n, 1, "b, at once: no minimum age");
    let f = file(&m);
    let bm = m.kva_to_model(VirtAddr::new(b as usize));
    assert!(f.contains(&format!("0x{bm:08x}")), "{f}");
}
