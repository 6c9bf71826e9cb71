//! Memory compaction (mm/compaction.c): the two scanners on hand-built layouts, deferral,
//! the counters, the extfrag debugfs files and the compaction sysctls.
//!
//! The hand-built layouts use a balloon-like kernel user whose pages are movable through
//! movable operations (`CompactMigrate::isolate_movable`): every page of memory is
//! allocated, each filled with a pattern, then every page with an even PFN is freed, so no
//! free block is larger than one page.
//!
//! Why the even ones: after a pageblock in which it isolated nothing, the free scanner
//! samples every `stride`-th page from the pageblock's start (mm/compaction.c
//! `isolate_freepages`: `stride = min(COMPACT_CLUSTER_MAX, stride << 1)`, back to 1 only
//! after an isolation). Pageblock starts are even and strides powers of two, so sampling
//! looks only at even PFNs: with the odd ones free it never isolates again once it has
//! crossed one pageblock without a free page — and the top of DMA32 has one, the 2 MiB
//! memblock block of the vmemmap memmap (mm/sparse.c `sparse_buffer_init`).

mod common;
use common::*;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use kmem::arch::Arch;
use kmem::compaction::{CompactControl, CompactMigrate, CompactResult, MigrateMode, MigrateTarget};
use kmem::errno::Errno;
use kmem::mmzone::ZoneType;
use kmem::page_alloc::compaction::ContigPageInfo;
use kmem::page_alloc::CompactPriority;
use kmem::proc::ProcError;
use kmem::{GfpFlags, Order, PagePtr, Pfn, PAGE_SIZE};

const MIB: u64 = 1 << 20;

fn fill(m: &M, pfn: u64, tag: u64) {
    // SAFETY: the page is allocated to the test and lies below phys_end.
    unsafe {
        let p = m.phys_to_real(Pfn::new(pfn).phys()).cast::<u64>();
        for i in 0..PAGE_SIZE / 8 {
            p.add(i).write(tag ^ i as u64);
        }
    }
}

fn check(m: &M, pfn: u64, tag: u64) -> bool {
    // SAFETY: the page is allocated to the test and lies below phys_end.
    unsafe {
        let p = m.phys_to_real(Pfn::new(pfn).phys()).cast::<u64>();
        (0..PAGE_SIZE / 8).all(|i| p.add(i).read() == tag ^ i as u64)
    }
}

/// A balloon-like user of pages with movable operations: pfn → tag.
struct Balloon<'a> {
    m: &'a M,
    pages: RefCell<HashMap<u64, u64>>,
    isolated: RefCell<HashSet<u64>>,
    /// Fail every migration with this error (a pinned page: -EAGAIN).
    fail: Option<Errno>,
}

impl Balloon<'_> {
    fn pfn(&self, p: PagePtr) -> u64 {
        self.m.page_to_pfn(p).as_u64()
    }
    fn intact(&self) -> bool {
        self.pages
            .borrow()
            .iter()
            .all(|(&p, &t)| check(self.m, p, t))
    }
    fn release(&self) {
        for (&pfn, _) in self.pages.borrow().iter() {
            let p = self.m.pfn_to_page(Pfn::new(pfn)).unwrap();
            self.m.__free_pages(p, Order::ZERO);
        }
        self.pages.borrow_mut().clear();
    }
}

impl CompactMigrate for Balloon<'_> {
    fn isolate(&self, _page: PagePtr, _unevictable: bool) -> bool {
        false
    }
    fn isolate_movable(&self, page: PagePtr) -> bool {
        let pfn = self.pfn(page);
        self.pages.borrow().contains_key(&pfn) && self.isolated.borrow_mut().insert(pfn)
    }
    fn putback(&self, page: PagePtr) {
        assert!(self.isolated.borrow_mut().remove(&self.pfn(page)));
    }
    fn migrate(
        &self,
        from: &mut [Option<PagePtr>],
        target: &mut dyn MigrateTarget,
        _mode: MigrateMode,
    ) -> Result<(), Errno> {
        if let Some(e) = self.fail {
            return Err(e);
        }
        for slot in from.iter_mut() {
            let Some(old) = *slot else { continue };
            let new = target.alloc(old).ok_or(Errno::ENOMEM)?;
            let (o, n) = (self.pfn(old), self.pfn(new));
            // SAFETY: both pages are the test's (the old one isolated, the new one a target).
            unsafe {
                core::ptr::copy_nonoverlapping(
                    self.m.phys_to_real(Pfn::new(o).phys()),
                    self.m.phys_to_real(Pfn::new(n).phys()),
                    PAGE_SIZE,
                );
            }
            let tag = self.pages.borrow_mut().remove(&o).unwrap();
            self.pages.borrow_mut().insert(n, tag);
            self.isolated.borrow_mut().remove(&o);
            self.m.__free_pages(old, Order::ZERO);
            *slot = None;
        }
        Ok(())
    }
}

/// Takes every free page (movable, no watermarks), fills each, frees the even PFNs (see
/// the module documentation for why not the odd ones).
fn fragment(m: &M) -> Balloon<'_> {
    fragment_keeping(m, 1)
}

/// [`fragment`] keeping the pages whose PFN is `parity` modulo 2, freeing the others.
fn fragment_keeping(m: &M, parity: u64) -> Balloon<'_> {
    let gfp = GfpFlags::__GFP_MOVABLE | GfpFlags::__GFP_MEMALLOC | GfpFlags::__GFP_NOWARN;
    let mut pages = HashMap::new();
    let mut freed = Vec::new();
    while let Some(p) = m.alloc_page(gfp) {
        let pfn = m.page_to_pfn(p).as_u64();
        if pfn % 2 != parity {
            freed.push(p);
        } else {
            let tag = pfn.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            fill(m, pfn, tag);
            pages.insert(pfn, tag);
        }
    }
    for p in freed {
        m.__free_pages(p, Order::ZERO);
    }
    m.drain_local_pages();
    Balloon {
        m,
        pages: RefCell::new(pages),
        isolated: RefCell::new(HashSet::new()),
        fail: None,
    }
}

fn order9(m: &M) -> Option<PagePtr> {
    m.alloc_pages(GfpFlags::__GFP_NOWARN, Order::new(9))
}

fn stat(m: &M, name: &str) -> u64 {
    proc(m, "/proc/vmstat")
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /proc/vmstat"))
}

/// The order-`o` column of a zone's row of an extfrag file.
fn column(file: &str, zone: &str, o: usize) -> String {
    let row = file
        .lines()
        .find(|l| l.starts_with(&format!("Node 0, zone {zone:>8} ")))
        .unwrap_or_else(|| panic!("no {zone} row in\n{file}"));
    row["Node 0, zone        X ".len()..]
        .split_whitespace()
        .nth(o)
        .unwrap()
        .to_string()
}

#[test]
fn contig_page_info_matches_linux_arithmetic() {
    // 1024 free order-0 pages: an order-9 request fails by fragmentation.
    let mut counts = [0usize; 11];
    counts[0] = 1024;
    let i = ContigPageInfo::from_counts(&counts, 9);
    assert_eq!(
        i,
        ContigPageInfo {
            free_pages: 1024,
            free_blocks_total: 1024,
            free_blocks_suitable: 0
        }
    );
    // 1000 - (1000 + 1024 * 1000 / 512) / 1024 = 998 (mm/vmstat.c __fragmentation_index).
    assert_eq!(i.fragmentation_index(9), 998);
    assert_eq!(i.unusable_index(9), 1000);
    assert_eq!(i.extfrag_percent(9), 100);
    // One free order-10 block and 512 order-0 pages.
    counts[10] = 1;
    counts[0] = 512;
    let i = ContigPageInfo::from_counts(&counts, 9);
    assert_eq!(i.free_blocks_suitable, 2);
    assert_eq!(i.fragmentation_index(9), -1000);
    // (1536 - 2 * 512) * 1000 / 1536 = 333.
    assert_eq!(i.unusable_index(9), 333);
    assert_eq!(i.extfrag_percent(9), 33);
    // No free memory: index 0, unusable 1000.
    let i = ContigPageInfo::from_counts(&[0; 11], 3);
    assert_eq!((i.fragmentation_index(3), i.unusable_index(3)), (0, 1000));
    assert_eq!(
        kmem::page_alloc::compaction::fragmentation_score_wmark(20, true),
        80
    );
    assert_eq!(
        kmem::page_alloc::compaction::fragmentation_score_wmark(20, false),
        90
    );
    assert_eq!(
        kmem::page_alloc::compaction::fragmentation_score_wmark(100, true),
        5
    );
}

#[test]
fn extfrag_files_have_linux_format() {
    let m = boot(Arch::X86_64, 128 * MIB, 1);
    let ext = proc(&m, "/sys/kernel/debug/extfrag/extfrag_index");
    let unu = proc(&m, "/sys/kernel/debug/extfrag/unusable_index");
    for (file, width) in [(&ext, 6), (&unu, 5)] {
        let rows: Vec<&str> = file.lines().collect();
        assert_eq!(rows.len(), 2, "{file}");
        assert!(rows[0].starts_with("Node 0, zone      DMA "), "{file}");
        assert!(rows[1].starts_with("Node 0, zone    DMA32 "), "{file}");
        for r in rows {
            let cells = &r["Node 0, zone    DMA32 ".len()..];
            assert!(cells.ends_with(' '), "{r:?}");
            let cells: Vec<&str> = cells.split(' ').filter(|c| !c.is_empty()).collect();
            assert_eq!(cells.len(), 11, "{r}");
            for c in cells {
                let (int, frac) = c.split_once('.').unwrap();
                assert_eq!(frac.len(), 3, "{c}");
                assert!(int.parse::<i32>().is_ok(), "{c}");
                assert!(c.len() <= width, "{c}");
            }
        }
    }
    // Right after boot memory is in large blocks: order 0 is never fragmented ("-1.000" in
    // extfrag_index, "0.000" unusable).
    assert_eq!(column(&ext, "DMA32", 0), "-1.000");
    assert_eq!(column(&unu, "DMA32", 0), "0.000");
    assert_eq!(
        m.proc_mode("/sys/kernel/debug/extfrag/extfrag_index"),
        Some(0o444)
    );
}

#[test]
fn compact_node_makes_a_failed_order9_allocation_succeed() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let free0 = settle(&m);
    let b = fragment(&m);
    assert!(order9(&m).is_none(), "fragmented: no order-9 block");
    let ext = proc(&m, "/sys/kernel/debug/extfrag/extfrag_index");
    let unu = proc(&m, "/sys/kernel/debug/extfrag/unusable_index");
    let frag = column(&ext, "DMA32", 9);
    assert!(frag.starts_with(" 0.9") || frag.starts_with("0.9"), "{ext}");
    assert_eq!(column(&unu, "DMA32", 9), "1.000");
    let scanned0 = stat(&m, "compact_migrate_scanned");
    m.compact_node(&b, false);
    assert!(b.isolated.borrow().is_empty(), "nothing stays isolated");
    assert!(b.intact(), "every moved page kept its data");
    assert_eq!(m.check_invariants(), Ok(()));
    let ext2 = proc(&m, "/sys/kernel/debug/extfrag/extfrag_index");
    let unu2 = proc(&m, "/sys/kernel/debug/extfrag/unusable_index");
    assert_eq!(column(&ext2, "DMA32", 9), "-1.000", "{ext2}");
    assert_ne!(column(&unu2, "DMA32", 9), "1.000", "{unu2}");
    assert!(stat(&m, "compact_migrate_scanned") > scanned0);
    assert!(stat(&m, "compact_free_scanned") > 0);
    assert!(stat(&m, "compact_isolated") > 0);
    let p = order9(&m).expect("order-9 after compaction");
    m.__free_pages(p, Order::new(9));
    b.release();
    assert_eq!(settle(&m), free0);
    assert_eq!(m.check_invariants(), Ok(()));
}

#[test]
fn scanners_meet_and_respect_skip_hints() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let b = fragment(&m);
    // A run that honours hints over a zone with nothing movable marks every pageblock the
    // migrate scanner passed; the next such run skips them and scans far less.
    let nothing = Balloon {
        m: &m,
        pages: RefCell::new(HashMap::new()),
        isolated: RefCell::new(HashSet::new()),
        fail: None,
    };
    let mut cc = CompactControl::new(ZoneType::Dma32, None, MigrateMode::SyncLight);
    cc.whole_zone = true;
    assert_eq!(m.compact_zone(&mut cc, &nothing), CompactResult::Complete);
    assert!(cc.scanners_met());
    let first = cc.total_migrate_scanned;
    assert!(first > 0);
    let zone = m.zone(ZoneType::Dma32);
    let start = zone.geo.start_pfn.as_u64();
    assert!(zone.pageblock_skip(Pfn::new(start)), "first block marked");
    let mut cc = CompactControl::new(ZoneType::Dma32, None, MigrateMode::SyncLight);
    cc.whole_zone = true;
    m.compact_zone(&mut cc, &nothing);
    assert!(cc.total_migrate_scanned < first / 4, "skipped blocks");
    // compact_memory's full run ignores the hints and moves the pages.
    m.reset_isolation_suitable(ZoneType::Dma32);
    assert!(!zone.pageblock_skip(Pfn::new(start)));
    let mut cc = CompactControl::full(ZoneType::Dma32);
    assert_eq!(m.compact_zone(&mut cc, &b), CompactResult::Complete);
    assert!(cc.nr_migrated > 0);
    assert!(b.intact());
    b.release();
    assert_eq!(m.check_invariants(), Ok(()));
}

#[test]
fn free_scanner_samples_only_even_pfns_after_a_pageblock_without_free_pages() {
    // The layout the merge with SPARSEMEM_VMEMMAP broke: odd PFNs free. The memmap's 2 MiB
    // memblock block (pageblock 30, PFNs 15360..15872 of a 64 MiB machine) has no free
    // page; below it the free scanner's stride is 2, 4, .. 32 from even pageblock starts
    // (mm/compaction.c isolate_freepages), so it isolates nothing more and meets the
    // migrate scanner: only what fits in the top pageblock moves.
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let b = fragment_keeping(&m, 0);
    assert!((15360..15872).all(|p| !b.pages.borrow().contains_key(&p)));
    let mut cc = CompactControl::full(ZoneType::Dma32);
    assert_eq!(m.compact_zone(&mut cc, &b), CompactResult::Complete);
    assert!(cc.scanners_met());
    assert!(
        cc.nr_migrated > 0 && cc.nr_migrated < 256,
        "{}",
        cc.nr_migrated
    );
    assert!(order9(&m).is_none());
    assert!(b.intact());
    b.release();
    assert_eq!(m.check_invariants(), Ok(()));
}

#[test]
fn failed_migration_puts_pages_back_and_frees_targets() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let mut b = fragment(&m);
    b.fail = Some(Errno::EAGAIN);
    let free = settle(&m);
    let mut cc = CompactControl::full(ZoneType::Dma32);
    assert_eq!(m.compact_zone(&mut cc, &b), CompactResult::Complete);
    assert_eq!(cc.nr_migrated, 0);
    assert!(b.isolated.borrow().is_empty());
    assert!(b.intact());
    assert_eq!(settle(&m), free, "isolated free pages all given back");
    assert!(order9(&m).is_none());
    b.release();
    assert_eq!(m.check_invariants(), Ok(()));
}

#[test]
fn order_compaction_stops_at_success() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let b = fragment(&m);
    let mut cc = CompactControl::new(ZoneType::Dma32, Some(9), MigrateMode::SyncLight);
    cc.whole_zone = true;
    assert_eq!(m.compact_zone(&mut cc, &b), CompactResult::Success);
    assert!(!cc.scanners_met(), "stopped once an order-9 block was free");
    // Nothing to do any more: the watermark check at order 9 already passes.
    let mut cc = CompactControl::new(ZoneType::Dma32, Some(9), MigrateMode::SyncLight);
    assert_eq!(m.compact_zone(&mut cc, &b), CompactResult::Success);
    assert_eq!(cc.total_migrate_scanned, 0);
    assert!(b.intact());
    b.release();
}

#[test]
fn deferral_follows_linux() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let z = m.zone(ZoneType::Dma32);
    // Nothing failed yet (order_failed 0 means every order may be deferred once failed).
    assert!(!m.compaction_deferred(z, 9));
    m.defer_compaction(z, 9);
    // shift 1: one attempt skipped, then one allowed.
    assert_eq!(
        (0..2)
            .map(|_| m.compaction_deferred(z, 9))
            .collect::<Vec<_>>(),
        [true, false]
    );
    m.defer_compaction(z, 9);
    // shift 2: three skipped, then allowed.
    assert_eq!(
        (0..4)
            .map(|_| m.compaction_deferred(z, 9))
            .collect::<Vec<_>>(),
        [true, true, true, false]
    );
    // Orders below the failed one are never deferred.
    m.compaction_defer_reset(z, 3, false);
    assert_eq!(z.compact.order_failed.load(Ordering::Relaxed), 4);
    assert!(!m.compaction_deferred(z, 3));
    for _ in 0..10 {
        m.defer_compaction(z, 9);
    }
    assert_eq!(z.compact.defer_shift.load(Ordering::Relaxed), 6);
    for _ in 0..63 {
        assert!(m.compaction_deferred(z, 9));
    }
    assert!(!m.compaction_deferred(z, 9));
    assert!(m.compaction_restarting(z, 9));
    m.compaction_defer_reset(z, 9, true);
    assert_eq!(z.compact.defer_shift.load(Ordering::Relaxed), 0);
    assert_eq!(z.compact.order_failed.load(Ordering::Relaxed), 10);
    assert!(!m.compaction_restarting(z, 9));
}

#[test]
fn direct_compaction_counts_and_defers() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let b = fragment(&m);
    // Async direct compaction for an unmovable allocation moves pages only out of
    // unmovable pageblocks (suitable_migration_source): the balloon's are movable.
    let r = m.try_to_compact_pages(
        &b,
        GfpFlags::GFP_KERNEL,
        9,
        ZoneType::Dma32,
        CompactPriority::Async,
    );
    assert_eq!(r, CompactResult::Complete);
    assert!(order9(&m).is_none());
    // For a movable one at the sync priority they move: success.
    let gfp = GfpFlags::GFP_HIGHUSER_MOVABLE;
    let r = m.try_to_compact_pages(&b, gfp, 9, ZoneType::Dma32, CompactPriority::SyncLight);
    assert_eq!(r, CompactResult::Success);
    let p = order9(&m).expect("order 9 after direct compaction");
    m.__free_pages(p, Order::new(9));
    b.release();

    // The allocation slow path: nothing the task layer can move (the balloon's pages are
    // not its), so direct compaction fails, is counted and defers the zone.
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let b = fragment(&m);
    let (stall, fail) = (stat(&m, "compact_stall"), stat(&m, "compact_fail"));
    let gfp = GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN;
    assert!(m.alloc_pages(gfp, Order::new(9)).is_none());
    assert!(stat(&m, "compact_stall") > stall);
    assert!(stat(&m, "compact_fail") > fail);
    assert_eq!(stat(&m, "compact_success"), 0);
    assert!(stat(&m, "compact_daemon_wake") > 0, "kswapd woke kcompactd");
    let z = m.zone(ZoneType::Dma32);
    assert!(
        z.compact.defer_shift.load(Ordering::Relaxed) > 0,
        "deferred"
    );
    assert!(b.intact());
    b.release();
    assert_eq!(m.check_invariants(), Ok(()));
    // Order-0 and small movable allocations never compact.
    let s = stat(&m, "compact_stall");
    let p = m
        .alloc_pages(GfpFlags::GFP_HIGHUSER_MOVABLE, Order::new(2))
        .unwrap();
    m.__free_pages(p, Order::new(2));
    assert_eq!(stat(&m, "compact_stall"), s);
}

#[test]
fn sysctls_read_write_and_reject_bad_values() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    for (f, v, mode) in [
        ("extfrag_threshold", "500\n", 0o644),
        ("compaction_proactiveness", "20\n", 0o644),
        ("compact_unevictable_allowed", "1\n", 0o644),
    ] {
        let path = format!("/proc/sys/vm/{f}");
        assert_eq!(proc(&m, &path), v);
        assert_eq!(m.proc_mode(&path), Some(mode));
    }
    assert_eq!(m.proc_mode("/proc/sys/vm/compact_memory"), Some(0o200));
    let mut s = String::new();
    assert!(matches!(
        m.proc_read("/proc/sys/vm/compact_memory", &mut s),
        Err(ProcError::Errno(Errno::EACCES))
    ));
    let einval = |path: &str, v: &str| {
        assert!(
            matches!(m.proc_write(path, v), Err(ProcError::Errno(Errno::EINVAL))),
            "{path} {v}"
        );
    };
    einval("/proc/sys/vm/extfrag_threshold", "1001");
    einval("/proc/sys/vm/extfrag_threshold", "-1");
    einval("/proc/sys/vm/compaction_proactiveness", "101");
    einval("/proc/sys/vm/compact_unevictable_allowed", "2");
    einval("/proc/sys/vm/compact_memory", "2");
    einval("/proc/sys/vm/compact_memory", "x");
    m.proc_write("/proc/sys/vm/extfrag_threshold", "700\n")
        .unwrap();
    assert_eq!(proc(&m, "/proc/sys/vm/extfrag_threshold"), "700\n");
    m.proc_write("/proc/sys/vm/compact_unevictable_allowed", "0")
        .unwrap();
    assert_eq!(proc(&m, "/proc/sys/vm/compact_unevictable_allowed"), "0\n");
    m.proc_write("/proc/sys/vm/compaction_proactiveness", "0")
        .unwrap();
    assert_eq!(proc(&m, "/proc/sys/vm/compaction_proactiveness"), "0\n");
    // compact_memory on a quiet machine: runs, allocator intact.
    m.proc_write("/proc/sys/vm/compact_memory", "1\n").unwrap();
    assert_eq!(m.check_invariants(), Ok(()));
    assert_eq!((m.bug_count(), m.warn_count()), (0, 0));
}

#[test]
fn vmstat_lists_compaction_counters_in_linux_order() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let v = proc(&m, "/proc/vmstat");
    let names: Vec<&str> = v
        .lines()
        .filter_map(|l| l.split(' ').next())
        .filter(|n| n.starts_with("compact_"))
        .collect();
    assert_eq!(
        names,
        [
            "compact_migrate_scanned",
            "compact_free_scanned",
            "compact_isolated",
            "compact_stall",
            "compact_fail",
            "compact_success",
            "compact_daemon_wake",
            "compact_daemon_migrate_scanned",
            "compact_daemon_free_scanned"
        ]
    );
    assert!(v
        .lines()
        .filter(|l| l.starts_with("compact_"))
        .all(|l| l.ends_with(" 0")));
}

#[test]
fn proactive_compaction_runs_above_the_score() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let b = fragment(&m);
    let score = m.fragmentation_score_node();
    assert!(score > 90, "{score}");
    assert!(m.should_proactive_compact_node());
    assert!(m.proactive_compact(&b));
    assert!(
        m.fragmentation_score_node() <= 80,
        "{}",
        m.fragmentation_score_node()
    );
    assert!(stat(&m, "compact_daemon_migrate_scanned") > 0);
    assert!(b.intact());
    // proactiveness 0 turns it off.
    m.proc_write("/proc/sys/vm/compaction_proactiveness", "0")
        .unwrap();
    assert!(!m.should_proactive_compact_node());
    b.release();
}

#[test]
fn kcompactd_timer_checks_every_500ms_and_defers_useless_runs() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let mut b = fragment(&m);
    // A migrator that moves nothing: the score cannot fall.
    b.fail = Some(Errno::EAGAIN);
    let hz = kmem::platform::Platform::hz(m.platform());
    let period = 500 * hz / 1000;
    assert!(!m.kcompactd_tick(&b), "not due at boot");
    m.platform().advance_jiffies(period);
    assert!(m.kcompactd_tick(&b), "due: score above the high mark");
    // The run did not lower the score: the next checks wait 1 << COMPACT_MAX_DEFER_SHIFT
    // periods.
    m.platform().advance_jiffies(period);
    assert!(!m.kcompactd_tick(&b));
    m.platform().advance_jiffies(62 * period);
    assert!(!m.kcompactd_tick(&b));
    m.platform().advance_jiffies(period);
    b.fail = None;
    assert!(m.kcompactd_tick(&b), "deferral over");
    assert!(m.fragmentation_score_node() <= 80);
    // Low score: due, but nothing to do.
    m.platform().advance_jiffies(period);
    assert!(!m.kcompactd_tick(&b));
    assert!(b.intact());
    b.release();
}

const PAGE: u64 = PAGE_SIZE as u64;

fn pat(i: u64) -> u64 {
    0x5a5a_0000_0000_0000 ^ (i << 12) ^ 0xc0de
}

/// A process maps a large region and touches it 256 pages at a time until no order-9
/// block is left, then frees every other page with `MADV_DONTNEED`. Returns (pid, address,
/// pages touched).
fn fragment_with_process(m: &M) -> (i32, u64, u64) {
    use kmem::memory::MADV_DONTNEED;
    use kmem::vma::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
    let p = m.spawn("frag").unwrap();
    let max = 64 * MIB / PAGE;
    let a = m
        .mmap(
            p,
            0,
            max * PAGE,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            -1,
            0,
        )
        .unwrap();
    // Touch 256 pages at a time while an order-9 block is still free.
    let mut n = 0;
    while let Some(pg) = order9(m) {
        m.__free_pages(pg, Order::new(9));
        for i in n..n + 256 {
            m.upoke(p, a + i * PAGE, 8, pat(i)).unwrap();
        }
        n += 256;
    }
    assert!(n > 4096, "touched {n} pages");
    for i in (1..n).step_by(2) {
        m.madvise(p, a + i * PAGE, PAGE, MADV_DONTNEED).unwrap();
    }
    m.drain_local_pages();
    (p, a, n)
}

/// Issue 16's scenario: a process maps a large region and touches it until no order-9
/// block is left, then frees every other page with `MADV_DONTNEED`; an order-9 allocation
/// fails; `echo 1 > /proc/sys/vm/compact_memory` migrates the process's pages together
/// and the allocation succeeds; the extfrag files show the change; the data is intact.
#[test]
fn process_fragments_memory_and_compact_memory_fixes_it() {
    process_scenario(Arch::X86_64, "DMA32");
}

#[test]
fn process_scenario_on_i386() {
    process_scenario(Arch::I386, "Normal");
}

fn process_scenario(arch: Arch, zone: &str) {
    let m = boot(arch, 64 * MIB, 1);
    let warm = m.spawn("warmup").unwrap();
    m.exit(warm).unwrap();
    let base = settle(&m);
    let (p, a, n) = fragment_with_process(&m);
    assert!(
        order9(&m).is_none(),
        "every other page freed: still no order-9 block"
    );
    let ext = proc(&m, "/sys/kernel/debug/extfrag/extfrag_index");
    let unu = proc(&m, "/sys/kernel/debug/extfrag/unusable_index");
    assert_ne!(column(&ext, zone, 9), "-1.000", "{ext}");
    assert_eq!(column(&unu, zone, 9), "1.000", "{unu}");
    let migrated0 = stat(&m, "pgmigrate_success");
    m.proc_write("/proc/sys/vm/compact_memory", "1\n").unwrap();
    assert!(stat(&m, "pgmigrate_success") > migrated0);
    assert!(stat(&m, "compact_migrate_scanned") > 0);
    assert!(stat(&m, "compact_free_scanned") > 0);
    assert!(stat(&m, "compact_isolated") > 0);
    let ext2 = proc(&m, "/sys/kernel/debug/extfrag/extfrag_index");
    let unu2 = proc(&m, "/sys/kernel/debug/extfrag/unusable_index");
    assert_eq!(column(&ext2, zone, 9), "-1.000", "{ext2}");
    assert_ne!(column(&unu2, zone, 9), "1.000", "{unu2}");
    let pg = order9(&m).expect("order-9 after compact_memory");
    for i in 0..n {
        let want = if i % 2 == 0 { pat(i) } else { 0 };
        assert_eq!(m.upeek(p, a + i * PAGE, 8).unwrap(), want, "page {i}");
    }
    m.__free_pages(pg, Order::new(9));
    m.exit(p).unwrap();
    assert_eq!(settle(&m), base);
    assert_eq!(m.check_invariants(), Ok(()));
    assert_eq!((m.bug_count(), m.warn_count()), (0, 0));
}

/// A migrator that records the pages (their `struct page` addresses) offered for
/// isolation and takes none.
#[derive(Default)]
struct Offered(RefCell<HashSet<u64>>);

impl CompactMigrate for Offered {
    fn isolate(&self, page: PagePtr, _unevictable: bool) -> bool {
        self.0.borrow_mut().insert(page.as_ptr() as u64);
        false
    }
    fn putback(&self, _page: PagePtr) {}
    fn migrate(
        &self,
        _from: &mut [Option<PagePtr>],
        _target: &mut dyn MigrateTarget,
        _mode: MigrateMode,
    ) -> Result<(), Errno> {
        Err(Errno::EBUSY)
    }
}

/// Pinned anonymous pages (references beyond their mappings) are not isolated:
/// `isolate_migratepages_block`'s racy check keeps migration from failing on them.
#[test]
fn pinned_pages_are_left_where_they_are() {
    use kmem::migrate::{FOLL_LONGTERM, FOLL_WRITE};
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let (p, a, n) = fragment_with_process(&m);
    // Pin every 64th kept page.
    let mut pinned = Vec::new();
    for i in (0..n).step_by(64) {
        let mut pg = [None];
        let got = m
            .pin_user_pages(p, a + i * PAGE, FOLL_WRITE | FOLL_LONGTERM, &mut pg)
            .unwrap();
        assert_eq!(got, 1);
        pinned.push((i, pg[0].unwrap()));
    }
    // The migrate scanner never offers a pinned page for isolation.
    let offered = Offered::default();
    for z in [ZoneType::Dma, ZoneType::Dma32] {
        m.compact_zone(&mut CompactControl::full(z), &offered);
    }
    let offered = offered.0.into_inner();
    assert!(offered.len() > 1000, "{}", offered.len());
    for &(i, pg) in &pinned {
        assert!(
            !offered.contains(&(pg.as_ptr() as u64)),
            "pinned page {i} offered"
        );
    }
    m.proc_write("/proc/sys/vm/compact_memory", "1").unwrap();
    assert!(stat(&m, "pgmigrate_success") > 0);
    for &(i, pg) in &pinned {
        assert_eq!(
            m.follow_page(p, a + i * PAGE).unwrap(),
            Some(pg),
            "page {i} stayed"
        );
        assert_eq!(m.upeek(p, a + i * PAGE, 8).unwrap(), pat(i));
    }
    let pages: Vec<PagePtr> = pinned.iter().map(|&(_, pg)| pg).collect();
    m.unpin_user_pages(&pages);
    m.exit(p).unwrap();
    assert_eq!(m.check_invariants(), Ok(()));
}

/// compact_memory on one CPU while another allocates and frees kernel pages of orders 0..=3
/// (from the same zones the scanners walk): the process's data stays intact, nothing is lost
/// and the buddy allocator's invariants hold.
#[test]
fn compaction_runs_while_another_cpu_allocates() {
    use std::sync::atomic::AtomicBool;
    let m = boot(Arch::X86_64, 64 * MIB, 2);
    let warm = m.spawn("warmup").unwrap();
    m.exit(warm).unwrap();
    let base = settle(&m);
    let (p, a, n) = fragment_with_process(&m);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (m, stop) = (&m, &stop);
        s.spawn(move || {
            let gfp = GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN;
            let mut held: Vec<(PagePtr, u32)> = Vec::new();
            let mut k = 0u32;
            while !stop.load(Ordering::Relaxed) {
                k = k.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let order = (k >> 16) % 4;
                if held.len() < 64 && k & 1 == 0 {
                    if let Some(pg) = m.alloc_pages(gfp, Order::new(order)) {
                        held.push((pg, order));
                    }
                } else if let Some((pg, o)) = held.pop() {
                    m.__free_pages(pg, Order::new(o));
                }
            }
            for (pg, o) in held {
                m.__free_pages(pg, Order::new(o));
            }
        });
        for _ in 0..10 {
            m.proc_write("/proc/sys/vm/compact_memory", "1").unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    for i in (0..n).step_by(2) {
        assert_eq!(m.upeek(p, a + i * PAGE, 8).unwrap(), pat(i), "page {i}");
    }
    m.exit(p).unwrap();
    assert_eq!(settle(&m), base);
    assert_eq!(m.check_invariants(), Ok(()));
    assert_eq!((m.bug_count(), m.warn_count()), (0, 0));
}
