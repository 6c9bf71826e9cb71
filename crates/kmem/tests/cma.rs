//! The Contiguous Memory Allocator (mm/cma.c, kernel/dma/contiguous.c): `cma=` areas,
//! MIGRATE_CMA pageblocks borrowed by movable allocations, `cma_alloc`/`cma_release` with
//! isolation and migration, the sysfs/debugfs files and the boot-parameter errors.

mod common;
use common::*;

use std::sync::Mutex;

use kmem::arch::Arch;
use kmem::errno::Errno;
use kmem::page_alloc::MigrateHook;
use kmem::{GfpFlags, Order, Pfn, PAGE_SIZE};

const MIB: u64 = 1 << 20;

fn dmesg(m: &M) -> String {
    let mut s = String::new();
    m.dmesg(&mut s, false).unwrap();
    s
}

fn meminfo_kb(m: &M, key: &str) -> Option<usize> {
    proc(m, "/proc/meminfo").lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.trim().trim_end_matches(" kB").trim().parse().ok()
    })
}

fn file(m: &M, path: &str) -> String {
    proc(m, path).trim_end().to_string()
}

/// The area's PFN range.
fn area_range(m: &M, name: &str) -> (u64, u64) {
    let c = m.cma_find(name).expect("area");
    let i = m.cma_info(c).unwrap();
    (i.base_pfn.as_u64(), i.base_pfn.as_u64() + i.count as u64)
}

/// Allocates movable pages until one lands in `[lo, hi)`; frees the others and returns the
/// PFNs kept (each filled with its own PFN as a pattern).
fn borrow_cma_pages(m: &M, lo: u64, hi: u64, want: usize) -> Vec<u64> {
    let gfp = GfpFlags::GFP_HIGHUSER_MOVABLE | GfpFlags::__GFP_NOWARN;
    let mut others = Vec::new();
    let mut kept = Vec::new();
    while kept.len() < want {
        let Some(p) = m.alloc_pages(gfp, Order::ZERO) else {
            break;
        };
        let pfn = m.page_to_pfn(p).as_u64();
        if (lo..hi).contains(&pfn) {
            fill(m, pfn);
            kept.push(pfn);
        } else {
            others.push(p);
        }
    }
    for p in others {
        m.__free_pages(p, Order::ZERO);
    }
    kept
}

fn fill(m: &M, pfn: u64) {
    // SAFETY: the page is allocated to the test and lies below phys_end.
    unsafe {
        let p = m.phys_to_real(Pfn::new(pfn).phys()).cast::<u64>();
        for i in 0..PAGE_SIZE / 8 {
            p.add(i).write(pfn ^ i as u64);
        }
    }
}

fn check(m: &M, pfn: u64, pattern: u64) -> bool {
    // SAFETY: the page is allocated to the test and lies below phys_end.
    unsafe {
        let p = m.phys_to_real(Pfn::new(pfn).phys()).cast::<u64>();
        (0..PAGE_SIZE / 8).all(|i| p.add(i).read() == pattern ^ i as u64)
    }
}

/// Spawns task `name` with a private anonymous read-write mapping of `n` pages, the first
/// word of page `i` holding `word(i)`. Returns the pid and the mapping's address.
fn anon_task(m: &M, name: &str, n: u64, word: impl Fn(u64) -> u64) -> (i32, u64) {
    use kmem::vma::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
    const PAGE: u64 = PAGE_SIZE as u64;
    let p = m.spawn(name).unwrap();
    let a = m
        .mmap(
            p,
            0,
            n * PAGE,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            -1,
            0,
        )
        .unwrap();
    for i in 0..n {
        m.upoke(p, a + i * PAGE, 8, word(i)).unwrap();
    }
    (p, a)
}

/// The indexes `i < n` of the pages of task `p`'s mapping at `a` whose frames lie in the PFN
/// range `[lo, hi)`.
fn pages_in_range(m: &M, p: i32, a: u64, n: u64, (lo, hi): (u64, u64)) -> Vec<u64> {
    const PAGE: u64 = PAGE_SIZE as u64;
    (0..n)
        .filter(|i| {
            let pg = m.follow_page(p, a + i * PAGE).unwrap().unwrap();
            (lo..hi).contains(&m.page_to_pfn(pg).as_u64())
        })
        .collect()
}

#[test]
fn cma_16m_reserves_and_reports() {
    let m = boot_with(Arch::X86_64, 256 * MIB, 2, "cma=16M", 42);
    let log = dmesg(&m);
    let line = log
        .lines()
        .find(|l| l.contains("cma: Reserved 16 MiB at 0x"))
        .unwrap_or_else(|| panic!("no Reserved line:\n{log}"));
    assert!(line.ends_with(" on node -1"), "{line}");
    assert!(log.contains(", 16384K cma-reserved)"), "{log}");
    assert_eq!(meminfo_kb(&m, "CmaTotal"), Some(16384));
    assert_eq!(meminfo_kb(&m, "CmaFree"), Some(16384));
    let pti = proc(&m, "/proc/pagetypeinfo");
    assert!(pti.contains("type          CMA"), "{pti}");
    assert!(pti.contains("         CMA      Isolate"), "{pti}");
    let zi = proc(&m, "/proc/zoneinfo");
    assert!(zi.contains("        cma      4096"), "{zi}");
    assert!(
        zi.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["nr_free_cma", "4096"]),
        "{zi}"
    );
    let c = m.cma_find("reserved").unwrap();
    let info = m.cma_info(c).unwrap();
    assert_eq!(info.count, 4096);
    assert_eq!(info.base_pfn.as_u64() % 512, 0, "pageblock aligned");
    assert_eq!(file(&m, "/sys/kernel/mm/cma/reserved/total_pages"), "4096");
    assert_eq!(
        file(&m, "/sys/kernel/mm/cma/reserved/available_pages"),
        "4096"
    );
    assert_eq!(file(&m, "/sys/kernel/debug/cma/reserved/count"), "4096");
    assert_eq!(
        file(&m, "/sys/kernel/debug/cma/reserved/order_per_bit"),
        "0"
    );
    assert_eq!(file(&m, "/sys/kernel/debug/cma/reserved/used"), "0");
    assert_eq!(file(&m, "/sys/kernel/debug/cma/reserved/maxchunk"), "4096");
    assert_eq!(
        file(&m, "/sys/kernel/debug/cma/reserved/base_pfn"),
        info.base_pfn.as_u64().to_string()
    );
    assert_eq!(m.check_invariants(), Ok(()));
    assert_lockdep_quiet(&m);
}

#[test]
fn no_cma_no_cma_lines() {
    let m = boot(Arch::X86_64, 256 * MIB, 2);
    assert_eq!(meminfo_kb(&m, "CmaTotal"), None);
    assert!(!proc(&m, "/proc/pagetypeinfo").contains("CMA"));
    assert!(m.cma_find("reserved").is_none());
    assert!(m
        .proc_read(
            "/sys/kernel/mm/cma/reserved/total_pages",
            &mut String::new()
        )
        .is_err());
}

#[test]
fn movable_borrows_cma_and_unmovable_never_does() {
    let m = boot_with(Arch::X86_64, 256 * MIB, 1, "cma=16M", 42);
    let (lo, hi) = area_range(&m, "reserved");
    // Unmovable allocations until failure: none lands in the area, CmaFree stays whole.
    let mut held = Vec::new();
    while let Some(p) = m.alloc_pages(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN, Order::ZERO) {
        let pfn = m.page_to_pfn(p).as_u64();
        assert!(!(lo..hi).contains(&pfn), "unmovable page {pfn:#x} in CMA");
        held.push(p);
    }
    assert!(held.len() > 40_000);
    assert_eq!(meminfo_kb(&m, "CmaFree"), Some(16384));
    // Movable allocations may still borrow the CMA pages.
    let mv = m
        .alloc_pages(GfpFlags::GFP_HIGHUSER_MOVABLE, Order::ZERO)
        .expect("movable from CMA");
    let pfn = m.page_to_pfn(mv).as_u64();
    assert!((lo..hi).contains(&pfn), "{pfn:#x}");
    m.__free_pages(mv, Order::ZERO);
    for p in held {
        m.__free_pages(p, Order::ZERO);
    }
    m.drain_local_pages();
    assert_eq!(meminfo_kb(&m, "CmaFree"), Some(16384));
    assert_eq!(m.check_invariants(), Ok(()));
}

#[test]
fn cma_alloc_and_release_restore_counters() {
    let m = boot_with(Arch::X86_64, 256 * MIB, 1, "cma=16M", 42);
    let c = m.cma_find("reserved").unwrap();
    let free0 = settle(&m);
    let page = m.cma_alloc(c, 4096, 0, false).expect("cma_alloc");
    assert_eq!(m.page_to_pfn(page), m.cma_info(c).unwrap().base_pfn);
    assert_eq!(meminfo_kb(&m, "CmaFree"), Some(0));
    assert_eq!(settle(&m), free0 - 4096);
    assert_eq!(
        file(&m, "/sys/kernel/mm/cma/reserved/alloc_pages_success"),
        "4096"
    );
    assert_eq!(file(&m, "/sys/kernel/mm/cma/reserved/available_pages"), "0");
    assert_eq!(file(&m, "/sys/kernel/debug/cma/reserved/used"), "4096");
    assert_eq!(file(&m, "/sys/kernel/debug/cma/reserved/maxchunk"), "0");
    let bm = file(&m, "/sys/kernel/debug/cma/reserved/bitmap");
    assert_eq!(bm.split(' ').count(), 128);
    assert!(bm.split(' ').all(|w| w == "4294967295"), "{bm}");
    // A second one does not fit.
    assert!(m.cma_alloc(c, 1, 0, true).is_none());
    assert_eq!(
        file(&m, "/sys/kernel/mm/cma/reserved/alloc_pages_fail"),
        "1"
    );
    assert!(m.cma_release(c, page, 4096));
    assert_eq!(settle(&m), free0);
    assert_eq!(meminfo_kb(&m, "CmaFree"), Some(16384));
    assert_eq!(
        file(&m, "/sys/kernel/mm/cma/reserved/release_pages_success"),
        "4096"
    );
    assert_eq!(
        file(&m, "/sys/kernel/mm/cma/reserved/available_pages"),
        "4096"
    );
    // Aligned small allocations and a foreign page.
    let a = m.cma_alloc(c, 3, 4, false).unwrap();
    assert_eq!(m.page_to_pfn(a).as_u64() % 16, 0);
    let b = m.cma_alloc(c, 3, 4, false).unwrap();
    assert_eq!(m.page_to_pfn(b).as_u64(), m.page_to_pfn(a).as_u64() + 16);
    let other = m.alloc_page(GfpFlags::GFP_KERNEL).unwrap();
    assert!(!m.cma_release(c, other, 1));
    m.__free_pages(other, Order::ZERO);
    assert!(m.cma_release(c, a, 3));
    assert!(m.cma_release(c, b, 3));
    assert_eq!(settle(&m), free0);
    assert_eq!(m.check_invariants(), Ok(()));
    assert_lockdep_quiet(&m);
}

/// The test's migrator: moves each page of `pages` in the range to a new unmovable page.
struct Migrator {
    m: *const M,
    pages: Mutex<Vec<u64>>,
}

/// # Safety
/// `ctx` must point at a live `Migrator` whose machine outlives the registration (the test
/// registers it so and unregisters it before dropping either).
unsafe fn migrate(ctx: *const (), start: Pfn, end: Pfn) -> Result<(), Errno> {
    // SAFETY: `ctx` is the test's Migrator, alive while registered.
    let mg = unsafe { &*ctx.cast::<Migrator>() };
    // SAFETY: the machine outlives the registration.
    let m = unsafe { &*mg.m };
    let mut pages = mg.pages.lock().unwrap();
    for pfn in pages.iter_mut() {
        if !(start.as_u64()..end.as_u64()).contains(pfn) {
            continue;
        }
        let new = m.alloc_page(GfpFlags::GFP_KERNEL).ok_or(Errno::ENOMEM)?;
        let npfn = m.page_to_pfn(new).as_u64();
        // SAFETY: both pages are allocated to the test; distinct frames below phys_end.
        unsafe {
            core::ptr::copy_nonoverlapping(
                m.phys_to_real(Pfn::new(*pfn).phys()),
                m.phys_to_real(Pfn::new(npfn).phys()),
                PAGE_SIZE,
            );
        }
        m.__free_pages(m.pfn_to_page(Pfn::new(*pfn)).unwrap(), Order::ZERO);
        *pfn = npfn;
    }
    Ok(())
}

#[test]
fn cma_alloc_busy_without_hook_and_migrates_with_it() {
    let m = boot_with(Arch::X86_64, 256 * MIB, 1, "cma=16M", 42);
    let c = m.cma_find("reserved").unwrap();
    let (lo, hi) = area_range(&m, "reserved");
    let kept = borrow_cma_pages(&m, lo, hi, 8);
    assert_eq!(kept.len(), 8, "movable pages landed in the area");
    let patterns: Vec<u64> = kept.clone();
    // No hook (the boot one, page migration, removed): every aligned 4096-page range is
    // busy.
    m.unregister_migrate_hook();
    assert!(m.cma_alloc(c, 4096, 0, false).is_none());
    assert!(
        dmesg(&m)
            .contains("cma: __cma_alloc: reserved: alloc failed, req-size: 4096 pages, ret: -16"),
        "{}",
        dmesg(&m)
    );
    assert_eq!(
        file(&m, "/sys/kernel/mm/cma/reserved/alloc_pages_fail"),
        "4096"
    );
    assert_eq!(file(&m, "/sys/kernel/debug/cma/reserved/used"), "0");
    assert_eq!(m.check_invariants(), Ok(()));
    // With the migrator the borrowers move out, their data intact.
    let mg = Box::new(Migrator {
        m: &m,
        pages: Mutex::new(kept),
    });
    let hook = MigrateHook {
        ctx: (&*mg as *const Migrator).cast(),
        func: migrate,
    };
    // SAFETY: `migrate` is sound with this ctx; unregistered before `mg` drops.
    unsafe { m.register_migrate_hook(hook) };
    let free_before = settle(&m);
    let page = m
        .cma_alloc(c, 4096, 0, false)
        .expect("cma_alloc with migration");
    m.unregister_migrate_hook();
    assert_eq!(m.page_to_pfn(page).as_u64(), lo);
    let moved = mg.pages.lock().unwrap().clone();
    for (new, old) in moved.iter().zip(&patterns) {
        assert!(!(lo..hi).contains(new));
        assert!(check(&m, *new, *old), "data of {old:#x} lost");
    }
    // The 4096 pages left the free lists; the 8 new ones came from elsewhere and the 8 old
    // ones are part of the allocation.
    assert_eq!(settle(&m), free_before - 4096 + 8 - 8);
    assert_eq!(meminfo_kb(&m, "CmaFree"), Some(0));
    assert!(m.cma_release(c, page, 4096));
    for p in moved {
        m.__free_pages(m.pfn_to_page(Pfn::new(p)).unwrap(), Order::ZERO);
    }
    m.drain_local_pages();
    assert_eq!(meminfo_kb(&m, "CmaFree"), Some(16384));
    assert_eq!(m.check_invariants(), Ok(()));
    assert_lockdep_quiet(&m);
}

#[test]
fn named_areas_and_cma_map() {
    let m = boot_with(
        Arch::X86_64,
        256 * MIB,
        2,
        "cma=v=20M,c=20M cma_map=video=v;camera=c",
        42,
    );
    let v = m.cma_find("v").unwrap();
    let c = m.cma_find("c").unwrap();
    assert_ne!(v, c);
    assert_eq!(m.cma_info(v).unwrap().count, 5120);
    assert_eq!(m.cma_info(c).unwrap().count, 5120);
    assert_eq!(meminfo_kb(&m, "CmaTotal"), Some(40960));
    assert_eq!(dmesg(&m).matches("cma: Reserved 20 MiB at 0x").count(), 2);
    let names_match = |drv: &str, dev: &str| match dev.strip_prefix(drv) {
        Some("") => true,
        Some(r) => {
            let d = r.strip_prefix('.').unwrap_or(r);
            !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    };
    assert_eq!(m.cma_for_device("camera0", names_match), Some(c));
    assert_eq!(m.cma_for_device("video", names_match), Some(v));
    assert_eq!(m.cma_for_device("camerax", names_match), None);
    assert!(m.cma_find("reserved").is_none());
    assert_eq!(file(&m, "/sys/kernel/mm/cma/c/total_pages"), "5120");
}

#[test]
fn bad_cma_parameters_reserve_nothing() {
    for cmd in ["cma=", "cma=abc", "cma=0"] {
        let m = boot_with(Arch::X86_64, 256 * MIB, 1, cmd, 42);
        assert!(m.cma_find("reserved").is_none(), "{cmd}");
        assert_eq!(meminfo_kb(&m, "CmaTotal"), None, "{cmd}");
        assert!(!dmesg(&m).contains("cma: "), "{cmd}");
    }
    for cmd in [
        "cma=16E",
        "cma=0xffffffffffffffff",
        "cma=16M@0xffffffffffffffff",
        "cma=16M@0x100000-0x200000",
        "cma=x=",
        "cma==16M",
        "cma=16M cma_map=camera=nope;=;x",
    ] {
        let m = boot_with(Arch::X86_64, 256 * MIB, 1, cmd, 42);
        assert_eq!(m.check_invariants(), Ok(()), "{cmd}");
        if let Some(c) = m.cma_find("reserved") {
            assert_eq!(cmd, "cma=16M cma_map=camera=nope;=;x");
            assert_eq!(m.cma_info(c).unwrap().count, 4096);
            assert_eq!(m.cma_for_device("camera", |a, b| a == b), None);
        }
    }
    let m = boot_with(Arch::X86_64, 256 * MIB, 1, "cma=1G", 42);
    let log = dmesg(&m);
    assert!(
        log.contains(
            "cma: Size (0x0000000040000000) of region at 0x0000000000000000 exceeds limit (0x"
        ),
        "{log}"
    );
    assert!(
        log.contains("cma: Failed to reserve 1024 MiB on node -1"),
        "{log}"
    );
    assert!(m.cma_find("reserved").is_none());
    assert_eq!(meminfo_kb(&m, "CmaTotal"), None);
    assert_eq!(m.check_invariants(), Ok(()));
}

#[test]
fn fixed_base_area() {
    let m = boot_with(Arch::X86_64, 256 * MIB, 1, "cma=8M@0x8000000", 42);
    let c = m.cma_find("reserved").unwrap();
    assert_eq!(m.cma_info(c).unwrap().base_pfn.as_u64(), 0x8000);
    assert!(dmesg(&m).contains("cma: Reserved 8 MiB at 0x0000000008000000 on node -1"));
    let m = boot_with(Arch::X86_64, 256 * MIB, 1, "cma=8M@0x8000100", 42);
    assert!(m.cma_find("reserved").is_none());
    assert!(dmesg(&m)
        .contains("cma: Region at 0x0000000008000100 must be aligned to 0x0000000000200000 bytes"));
}

#[test]
fn dma_alloc_coherent_uses_the_device_area() {
    let m = boot_with(
        Arch::X86_64,
        256 * MIB,
        1,
        "cma=v=20M,c=20M cma_map=video=v;camera=c",
        42,
    );
    let (clo, chi) = area_range(&m, "c");
    let cam = m.device_create("camera0", "platform").unwrap();
    let other = m.device_create("sensor0", "platform").unwrap();
    let free0 = settle(&m);
    let (va, dma) = m
        .dma_alloc_coherent(cam, 3 * PAGE_SIZE + 10, GfpFlags::GFP_KERNEL)
        .unwrap();
    let pfn = dma.as_u64() >> 12;
    assert!((clo..chi).contains(&pfn), "camera0's buffer from area c");
    assert_eq!(m.virt_to_phys(va), Some(dma));
    assert_eq!(file(&m, "/sys/kernel/mm/cma/c/alloc_pages_success"), "4");
    // SAFETY: the buffer is ours and below phys_end.
    let zeroed = unsafe {
        let p = m.phys_to_real(dma);
        (0..4 * PAGE_SIZE).all(|i| p.add(i).read() == 0)
    };
    assert!(zeroed);
    // A device without a mapping and no default area: the page allocator, below 4 GiB.
    let (va2, dma2) = m
        .dma_alloc_coherent(other, 2 * PAGE_SIZE, GfpFlags::GFP_KERNEL)
        .unwrap();
    assert!(!(clo..chi).contains(&(dma2.as_u64() >> 12)));
    assert!(dma2.as_u64() < 1 << 32);
    m.dma_free_coherent(cam, 3 * PAGE_SIZE + 10, va).unwrap();
    m.dma_free_coherent(other, 2 * PAGE_SIZE, va2).unwrap();
    assert_eq!(file(&m, "/sys/kernel/mm/cma/c/release_pages_success"), "4");
    assert_eq!(settle(&m), free0);
    assert_eq!(
        m.dma_alloc_coherent(cam, 0, GfpFlags::GFP_KERNEL),
        Err(Errno::EINVAL)
    );
    assert_lockdep_quiet(&m);
}

#[test]
fn dma_alloc_coherent_default_area() {
    let m = boot_with(Arch::X86_64, 256 * MIB, 1, "cma=16M", 42);
    let (lo, hi) = area_range(&m, "reserved");
    let d = m.device_create("camera0", "platform").unwrap();
    let (va, dma) = m
        .dma_alloc_coherent(d, 64 * PAGE_SIZE, GfpFlags::GFP_KERNEL)
        .unwrap();
    assert!((lo..hi).contains(&(dma.as_u64() >> 12)));
    // One page or less, or an atomic caller: not from CMA.
    let (va1, dma1) = m.dma_alloc_coherent(d, 100, GfpFlags::GFP_KERNEL).unwrap();
    assert!(!(lo..hi).contains(&(dma1.as_u64() >> 12)));
    let (va2, dma2) = m
        .dma_alloc_coherent(d, 8 * PAGE_SIZE, GfpFlags::GFP_ATOMIC)
        .unwrap();
    assert!(!(lo..hi).contains(&(dma2.as_u64() >> 12)));
    m.dma_free_coherent(d, 64 * PAGE_SIZE, va).unwrap();
    m.dma_free_coherent(d, 100, va1).unwrap();
    m.dma_free_coherent(d, 8 * PAGE_SIZE, va2).unwrap();
    assert_eq!(
        file(&m, "/sys/kernel/mm/cma/reserved/available_pages"),
        "4096"
    );
    assert_eq!(m.check_invariants(), Ok(()));
}

#[test]
fn movable_takes_cma_first_when_it_is_most_of_free_memory() {
    // 40 MiB of CMA on a 64 MiB machine: NR_FREE_CMA_PAGES > NR_FREE_PAGES / 2, so movable
    // allocations use the CMA lists first (6.18's __rmqueue balancing).
    let m = boot_with(Arch::X86_64, 64 * MIB, 1, "cma=40M", 42);
    let (lo, hi) = area_range(&m, "reserved");
    let p = m
        .alloc_pages(GfpFlags::GFP_HIGHUSER_MOVABLE, Order::new(4))
        .unwrap();
    assert!((lo..hi).contains(&m.page_to_pfn(p).as_u64()));
    m.__free_pages(p, Order::new(4));
    // On a 256 MiB machine with 16 MiB of CMA the movable lists come first.
    let m2 = boot_with(Arch::X86_64, 256 * MIB, 1, "cma=16M", 42);
    let (lo2, hi2) = area_range(&m2, "reserved");
    let p = m2
        .alloc_pages(GfpFlags::GFP_HIGHUSER_MOVABLE, Order::new(4))
        .unwrap();
    assert!(!(lo2..hi2).contains(&m2.page_to_pfn(p).as_u64()));
    m2.__free_pages(p, Order::new(4));
}

#[test]
fn busy_range_is_retried_at_the_next_aligned_offset() {
    let m = boot_with(Arch::X86_64, 256 * MIB, 1, "cma=16M", 42);
    let c = m.cma_find("reserved").unwrap();
    let (lo, hi) = area_range(&m, "reserved");
    // Borrow the whole area, then keep only the borrower of its first page.
    let kept = borrow_cma_pages(&m, lo, hi, (hi - lo) as usize);
    assert_eq!(kept.len(), (hi - lo) as usize);
    let busy = lo + 5;
    for &p in kept.iter().filter(|&&p| p != busy) {
        m.__free_pages(m.pfn_to_page(Pfn::new(p)).unwrap(), Order::ZERO);
    }
    m.drain_local_pages();
    // 512 pages aligned to 512: the first run is busy (-EBUSY), the next one is taken.
    let pg = m.cma_alloc(c, 512, 9, false).expect("next aligned run");
    let pfn = m.page_to_pfn(pg).as_u64();
    assert_eq!(pfn, lo + 512);
    assert!(!dmesg(&m).contains("alloc failed"));
    assert!(check(&m, busy, busy), "the borrower was not touched");
    assert!(m.cma_release(c, pg, 512));
    m.__free_pages(m.pfn_to_page(Pfn::new(busy)).unwrap(), Order::ZERO);
    m.drain_local_pages();
    assert_eq!(meminfo_kb(&m, "CmaFree"), Some(16384));
    assert_eq!(m.check_invariants(), Ok(()));
}

#[test]
fn i386_area_in_lowmem() {
    let m = boot_with(Arch::I386, 1024 * MIB, 1, "cma=16M", 42);
    let c = m.cma_find("reserved").unwrap();
    let info = m.cma_info(c).unwrap();
    assert!(info.base_pfn.phys().as_u64() + (info.count as u64) * 4096 <= m.lowmem_end().as_u64());
    assert_eq!(meminfo_kb(&m, "CmaTotal"), Some(16384));
    let pg = m.cma_alloc(c, 4096, 0, false).unwrap();
    assert!(m.cma_release(c, pg, 4096));
    assert_eq!(m.check_invariants(), Ok(()));
}

/// Issue 16's first "Done when": `cma=16M` on 256 MiB, a process fills memory with movable
/// pages some of which land in the CMA pageblocks, `cma_alloc` of 4096 pages succeeds by
/// migrating them with the boot's migration hook (page migration), the process's data is
/// intact, and `cma_release` restores the counters.
#[test]
fn cma_alloc_migrates_a_process_out_of_the_area() {
    const PAGE: u64 = PAGE_SIZE as u64;
    for cpus in [1, 2] {
        let m = boot_with(Arch::X86_64, 256 * MIB, cpus, "cma=16M", 42);
        assert_eq!(meminfo_kb(&m, "CmaTotal"), Some(16384));
        let c = m.cma_find("reserved").unwrap();
        let (lo, hi) = area_range(&m, "reserved");
        let free0 = baseline(&m);
        let n = 192 * MIB / PAGE;
        let (p, a) = anon_task(&m, "filler", n, |i| i ^ 0xc0ffee);
        for i in 0..n {
            m.upoke(p, a + i * PAGE + PAGE - 8, 8, !i).unwrap();
        }
        let in_area = |m: &M| pages_in_range(m, p, a, n, (lo, hi)).len();
        let borrowed = in_area(&m);
        assert!(
            borrowed > 0,
            "some of the process's pages landed in the CMA area"
        );
        let cma_free0 = meminfo_kb(&m, "CmaFree").unwrap();
        assert!(cma_free0 < 16384);
        let success0 = m.vm_event(kmem::mm::VmEvent::PgMigrateSuccess);
        let page = m
            .cma_alloc(c, 4096, 0, false)
            .expect("cma_alloc migrates the borrowers");
        assert_eq!(m.page_to_pfn(page).as_u64(), lo);
        assert_eq!(in_area(&m), 0, "every page of the process left the area");
        assert!(
            m.vm_event(kmem::mm::VmEvent::PgMigrateSuccess) - success0 >= borrowed as u64,
            "the borrowers were migrated"
        );
        assert_eq!(meminfo_kb(&m, "CmaFree"), Some(0));
        assert_eq!(file(&m, "/sys/kernel/debug/cma/reserved/used"), "4096");
        assert_eq!(
            file(&m, "/sys/kernel/mm/cma/reserved/alloc_pages_success"),
            "4096"
        );
        for i in 0..n {
            assert_eq!(
                m.upeek(p, a + i * PAGE, 8).unwrap(),
                i ^ 0xc0ffee,
                "page {i}"
            );
            assert_eq!(m.upeek(p, a + i * PAGE + PAGE - 8, 8).unwrap(), !i);
        }
        assert!(m.cma_release(c, page, 4096));
        m.drain_local_pages();
        assert_eq!(
            meminfo_kb(&m, "CmaFree"),
            Some(16384),
            "the whole area is free again"
        );
        assert_eq!(file(&m, "/sys/kernel/debug/cma/reserved/used"), "0");
        assert_eq!(
            file(&m, "/sys/kernel/mm/cma/reserved/release_pages_success"),
            "4096"
        );
        m.exit(p).unwrap();
        assert_eq!(
            settle(&m),
            free0,
            "{cpus} CPUs: free pages back to the baseline"
        );
        assert_eq!(meminfo_kb(&m, "CmaFree"), Some(16384));
        assert_eq!(m.check_invariants(), Ok(()));
        assert_lockdep_quiet(&m);
    }
}

/// Pages of the area sitting on another CPU's page lists (refilled there from the CMA
/// pageblocks, not yet allocated) are drained by `alloc_contig_range` (`drain_all_pages`),
/// so `cma_alloc` of the whole area succeeds while that CPU is alive and idle.
#[test]
fn cma_alloc_drains_every_cpus_page_lists() {
    let m = boot_with(Arch::X86_64, 256 * MIB, 2, "cma=16M", 42);
    let c = m.cma_find("reserved").unwrap();
    let (lo, hi) = area_range(&m, "reserved");
    let free0 = settle(&m);
    let (to_main, from_cpu) = std::sync::mpsc::channel();
    let (to_cpu, from_main) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let m = &m;
        s.spawn(move || {
            // Another CPU: allocate until a page comes from the area (the pcp refill takes
            // a batch of them), then free everything it holds.
            let gfp = GfpFlags::GFP_HIGHUSER_MOVABLE | GfpFlags::__GFP_NOWARN;
            let mut held = Vec::new();
            loop {
                let p = m.alloc_pages(gfp, Order::ZERO).unwrap();
                held.push(p);
                if (lo..hi).contains(&m.page_to_pfn(p).as_u64()) {
                    break;
                }
            }
            for p in held {
                m.__free_pages(p, Order::ZERO);
            }
            to_main.send(()).unwrap();
            // Stay alive (a CPU that goes offline drains its lists itself).
            from_main.recv().unwrap();
        });
        from_cpu.recv().unwrap();
        let page = m.cma_alloc(c, 4096, 0, false);
        let ok = page.is_some();
        if let Some(pg) = page {
            assert_eq!(m.page_to_pfn(pg).as_u64(), lo);
            assert!(m.cma_release(c, pg, 4096));
        }
        to_cpu.send(()).unwrap();
        assert!(ok, "cma_alloc failed: {}", dmesg(m));
    });
    assert_eq!(settle(&m), free0);
    assert_eq!(m.check_invariants(), Ok(()));
}

/// A pinned page in the area cannot move: `cma_alloc` over it fails with `-EBUSY` (Linux's
/// `alloc failed … ret: -16` line), and succeeds once the pin is dropped.
#[test]
fn cma_alloc_fails_over_a_pinned_page_until_it_is_unpinned() {
    const PAGE: u64 = PAGE_SIZE as u64;
    let m = boot_with(Arch::X86_64, 256 * MIB, 1, "cma=16M", 42);
    let c = m.cma_find("reserved").unwrap();
    let range = area_range(&m, "reserved");
    let n = 200 * MIB / PAGE;
    let (p, a) = anon_task(&m, "dma", n, |i| i);
    let i = *pages_in_range(&m, p, a, n, range)
        .first()
        .expect("a page in the area");
    let mut pinned = [None];
    assert_eq!(m.pin_user_pages(p, a + i * PAGE, 0, &mut pinned), Ok(1));
    assert!(m.cma_alloc(c, 4096, 0, false).is_none());
    assert!(
        dmesg(&m)
            .contains("cma: __cma_alloc: reserved: alloc failed, req-size: 4096 pages, ret: -16"),
        "{}",
        dmesg(&m)
    );
    assert!(m.vm_event(kmem::mm::VmEvent::PgMigrateFail) > 0);
    assert_eq!(m.upeek(p, a + i * PAGE, 8).unwrap(), i);
    m.unpin_user_pages(&[pinned[0].unwrap()]);
    let page = m.cma_alloc(c, 4096, 0, false).expect("unpinned, it moves");
    assert_eq!(m.upeek(p, a + i * PAGE, 8).unwrap(), i);
    assert!(m.cma_release(c, page, 4096));
    m.exit(p).unwrap();
    assert_eq!(m.check_invariants(), Ok(()));
    assert_lockdep_quiet(&m);
}
