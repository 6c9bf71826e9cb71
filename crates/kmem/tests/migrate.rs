//! Page migration (mm/migrate.c): every page kind `migrate_pages` moves — private and
//! fork-shared anonymous pages, shmem/memfd and SysV shm pages mapped by two tasks, unmapped
//! page-cache pages, swap-cache pages, movable-ops pages — with the data read back through
//! the tasks' page tables, and every failure path (pinned pages and their retries, target
//! allocation failure, unmovable pages), with the counters back after the tasks exit.

mod common;
use common::*;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use kmem::arch::Arch;
use kmem::errno::Errno;
use kmem::migrate::{
    MigrateList, MigrateMode, MigrateReason, MovableOps, MovableOpsType, FOLL_WRITE,
    GUP_PIN_COUNTING_BIAS, NR_MAX_MIGRATE_PAGES_RETRY,
};
use kmem::mm::mm_types::{pg, PagePtr};
use kmem::mm::VmEvent;
use kmem::swap::RamSwap;
use kmem::vma::*;
use kmem::{GfpFlags, Order, PAGE_SIZE};

const RW: u32 = PROT_READ | PROT_WRITE;
const PA: u32 = MAP_PRIVATE | MAP_ANONYMOUS;
const MIB: u64 = 1 << 20;
const PAGE: u64 = PAGE_SIZE as u64;

fn lru_pages(m: &M) -> u64 {
    [
        "nr_inactive_anon",
        "nr_active_anon",
        "nr_inactive_file",
        "nr_active_file",
    ]
    .iter()
    .map(|n| vmstat(m, n))
    .sum()
}

/// The byte a test writes at `off` of page `i` (distinct per page and per tag).
fn pat(tag: u64, i: u64, off: u64) -> u64 {
    (tag << 40) ^ (i << 16) ^ off ^ 0x5a5a_0000_0000_0000
}

fn write_pages(m: &M, pid: i32, a: u64, n: u64, tag: u64) {
    for i in 0..n {
        for off in [0, 8, 2048, PAGE - 8] {
            m.upoke(pid, a + i * PAGE + off, 8, pat(tag, i, off))
                .unwrap();
        }
    }
}

fn check_pages(m: &M, pid: i32, a: u64, n: u64, tag: u64) {
    for i in 0..n {
        for off in [0, 8, 2048, PAGE - 8] {
            assert_eq!(
                m.upeek(pid, a + i * PAGE + off, 8).unwrap(),
                pat(tag, i, off),
                "pid {pid} page {i} offset {off}"
            );
        }
    }
}

fn pfns(m: &M, pid: i32, a: u64, n: u64) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let p = m.follow_page(pid, a + i * PAGE).unwrap().expect("mapped");
            m.page_to_pfn(p).as_u64()
        })
        .collect()
}

fn isolate_range(m: &M, pid: i32, a: u64, n: u64) -> MigrateList {
    let mut l = MigrateList::new();
    for i in 0..n {
        let p = m.follow_page(pid, a + i * PAGE).unwrap().expect("mapped");
        m.isolate_migratepage(p, &mut l).unwrap();
    }
    l
}

fn migrate(m: &M, l: &mut MigrateList) -> Result<usize, Errno> {
    let mut get = |src| m.alloc_migration_target(src);
    m.migrate_pages(l, &mut get, None, MigrateMode::Sync, MigrateReason::Syscall)
}

fn flags(m: &M, p: PagePtr) -> u64 {
    m.page_ref(p).unwrap().flags()
}

#[test]
fn private_anonymous_pages_move_with_data_and_ptes_intact() {
    for arch in [Arch::X86_64, Arch::I386] {
        let m = boot(arch, 256 * MIB, 2);
        let free0 = baseline(&m);
        let p = m.spawn("anon").unwrap();
        let n = 16;
        let a = m.mmap(p, 0, n * PAGE, RW, PA, -1, 0).unwrap();
        write_pages(&m, p, a, n, 1);
        let before = pfns(&m, p, a, n);
        let anon0 = vmstat(&m, "nr_anon_pages");
        let mut l = isolate_range(&m, p, a, n);
        assert_eq!(l.len(), 16);
        // Isolated pages are off the LRU; a second isolation is refused.
        let p0 = m.follow_page(p, a).unwrap().unwrap();
        assert_eq!(flags(&m, p0) & pg::LRU, 0);
        assert_eq!(m.isolate_migratepage(p0, &mut l), Err(Errno::EBUSY));
        assert_eq!(migrate(&m, &mut l), Ok(0));
        assert!(l.is_empty());
        let after = pfns(&m, p, a, n);
        for (b, a2) in before.iter().zip(&after) {
            assert_ne!(b, a2, "every page moved");
        }
        check_pages(&m, p, a, n, 1);
        // The PTEs kept their write permission: writing faults no more.
        let faults = m.vm_event(VmEvent::PgFault);
        write_pages(&m, p, a, n, 2);
        assert_eq!(
            m.vm_event(VmEvent::PgFault),
            faults,
            "no fault after migration"
        );
        check_pages(&m, p, a, n, 2);
        let np = m.follow_page(p, a).unwrap().unwrap();
        let f = flags(&m, np);
        assert_ne!(f & pg::LRU, 0, "the new page is on an LRU list");
        assert_ne!(f & pg::SWAPBACKED, 0);
        assert_eq!(m.page_mapcount(np), 1);
        assert_eq!(m.page_count(np), 1);
        assert_eq!(vmstat(&m, "nr_anon_pages"), anon0);
        assert_eq!(vmstat(&m, "pgmigrate_success"), 16);
        assert_eq!(vmstat(&m, "pgmigrate_fail"), 0);
        let status = proc(&m, &format!("/proc/{p}/status"));
        assert!(status.contains("RssAnon:\t      64 kB"), "{status}");
        m.exit(p).unwrap();
        assert_eq!(settle(&m), free0, "{arch:?}: no page leaked");
        assert_eq!(lru_pages(&m), 0, "every LRU list empty");
    }
}

#[test]
fn anonymous_pages_shared_after_fork_move_for_both_tasks() {
    let m = boot(Arch::X86_64, 256 * MIB, 2);
    let free0 = baseline(&m);
    let p = m.spawn("parent").unwrap();
    let n = 8;
    let a = m.mmap(p, 0, n * PAGE, RW, PA, -1, 0).unwrap();
    write_pages(&m, p, a, n, 3);
    let c = m.fork(p).unwrap();
    let shared = m.follow_page(p, a).unwrap().unwrap();
    assert_eq!(m.page_mapcount(shared), 2);
    assert_eq!(m.follow_page(c, a).unwrap(), Some(shared));
    let before = pfns(&m, p, a, n);
    let mut l = isolate_range(&m, p, a, n);
    assert_eq!(migrate(&m, &mut l), Ok(0));
    let after_p = pfns(&m, p, a, n);
    assert_eq!(after_p, pfns(&m, c, a, n), "still one page for both");
    assert!(before.iter().zip(&after_p).all(|(x, y)| x != y));
    let np = m.follow_page(p, a).unwrap().unwrap();
    assert_eq!(m.page_mapcount(np), 2);
    assert_eq!(m.page_count(np), 2);
    check_pages(&m, p, a, n, 3);
    check_pages(&m, c, a, n, 3);
    // Still copy-on-write: the child's write stays the child's.
    write_pages(&m, c, a, n, 4);
    check_pages(&m, p, a, n, 3);
    check_pages(&m, c, a, n, 4);
    m.exit(c).unwrap();
    m.exit(p).unwrap();
    assert_eq!(settle(&m), free0);
}

#[test]
fn memfd_pages_shared_by_two_tasks_move_in_the_page_cache() {
    let m = boot(Arch::X86_64, 256 * MIB, 2);
    let free0 = baseline(&m);
    let p = m.spawn("writer").unwrap();
    let fd = m.memfd_create(p, "buf").unwrap();
    let n = 8;
    m.ftruncate(p, fd, n * PAGE).unwrap();
    let a = m.mmap(p, 0, n * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    write_pages(&m, p, a, n, 5);
    let c = m.fork(p).unwrap();
    // The child maps it a second time, at another address, through its own descriptor.
    let b = m.mmap(c, 0, n * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    check_pages(&m, c, b, n, 5);
    let pg0 = m.follow_page(p, a).unwrap().unwrap();
    assert_eq!(
        m.page_mapcount(pg0),
        3,
        "parent, child's inherited and new mapping"
    );
    let shmem0 = vmstat(&m, "nr_shmem");
    let mapped0 = vmstat(&m, "nr_mapped");
    let before = pfns(&m, p, a, n);
    let mut l = isolate_range(&m, p, a, n);
    assert_eq!(migrate(&m, &mut l), Ok(0));
    let after = pfns(&m, p, a, n);
    assert!(before.iter().zip(&after).all(|(x, y)| x != y));
    assert_eq!(after, pfns(&m, c, a, n));
    assert_eq!(after, pfns(&m, c, b, n));
    assert_eq!(vmstat(&m, "nr_shmem"), shmem0);
    assert_eq!(vmstat(&m, "nr_mapped"), mapped0);
    // A write through one mapping is seen through the others: one page-cache page.
    write_pages(&m, c, b, n, 6);
    check_pages(&m, p, a, n, 6);
    check_pages(&m, c, a, n, 6);
    // Unmapped everywhere, the cache keeps the pages; they still migrate.
    m.munmap(p, a, n * PAGE).unwrap();
    m.munmap(c, a, n * PAGE).unwrap();
    m.munmap(c, b, n * PAGE).unwrap();
    let mut l = MigrateList::new();
    for pfn in &after {
        let page = m.pfn_to_page(kmem::Pfn::new(*pfn)).unwrap();
        assert_eq!(m.page_mapcount(page), 0);
        m.isolate_migratepage(page, &mut l).unwrap();
    }
    assert_eq!(migrate(&m, &mut l), Ok(0));
    let a2 = m
        .mmap(p, 0, n * PAGE, PROT_READ, MAP_SHARED, fd, 0)
        .unwrap();
    check_pages(&m, p, a2, n, 6);
    assert!(pfns(&m, p, a2, n).iter().zip(&after).all(|(x, y)| x != y));
    assert_eq!(vmstat(&m, "pgmigrate_success"), 16);
    m.exit(c).unwrap();
    m.exit(p).unwrap();
    assert_eq!(settle(&m), free0);
    assert_eq!(vmstat(&m, "nr_shmem"), 0);
}

#[test]
fn sysv_shm_pages_move_for_every_attacher() {
    let m = boot(Arch::X86_64, 256 * MIB, 2);
    let free0 = baseline(&m);
    let p = m.spawn("a").unwrap();
    let q = m.spawn("b").unwrap();
    let n = 4;
    let id = m.shmget(0x1234, n * PAGE, 0o1000 | 0o600).unwrap();
    let a = m.shmat(p, id, 0, 0).unwrap();
    let b = m.shmat(q, id, 0, 0).unwrap();
    write_pages(&m, p, a, n, 7);
    check_pages(&m, q, b, n, 7);
    let before = pfns(&m, q, b, n);
    assert_eq!(m.move_pages(q, b, n), Ok(0));
    let after = pfns(&m, p, a, n);
    assert_eq!(after, pfns(&m, q, b, n));
    assert!(before.iter().zip(&after).all(|(x, y)| x != y));
    write_pages(&m, q, b, n, 8);
    check_pages(&m, p, a, n, 8);
    m.shmdt(p, a).unwrap();
    m.shmdt(q, b).unwrap();
    m.shmctl(id, 0).unwrap();
    m.exit(p).unwrap();
    m.exit(q).unwrap();
    assert_eq!(settle(&m), free0);
}

/// A task bigger than memory on a RAM swap area; returns (pid, address, pages).
fn swapped_task(m: &M, swap: &mut Vec<u8>) -> (i32, u64, u64) {
    // SAFETY: `swap` outlives the area (swapoff before it drops) and nothing else uses it.
    let be = unsafe { RamSwap::new(swap.as_mut_ptr(), (swap.len() / PAGE_SIZE) as u64) };
    m.swapon("/dev/ram0", be, None).unwrap();
    let p = m.spawn("big").unwrap();
    let n = (96 * MIB) / PAGE;
    let a = m.mmap(p, 0, n * PAGE, RW, PA, -1, 0).unwrap();
    for i in 0..n {
        m.upoke(p, a + i * PAGE, 8, pat(9, i, 0)).unwrap();
    }
    assert!(vmstat(m, "pswpout") > 0);
    (p, a, n)
}

#[test]
fn swap_cache_pages_move_with_their_swap_entry() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let free0 = baseline(&m);
    let mut swap = vec![0u8; (128 * MIB) as usize];
    let (p, a, n) = swapped_task(&m, &mut swap);
    // Read the first pages back: read faults leave them in the swap cache, mapped, and
    // readahead brings their neighbours into the cache unmapped.
    for i in (0..8).chain([64, 128]) {
        assert_eq!(m.upeek(p, a + i * PAGE, 8).unwrap(), pat(9, i, 0));
    }
    let mut mapped = Vec::new();
    for i in 0..8 {
        if let Some(page) = m.follow_page(p, a + i * PAGE).unwrap() {
            if flags(&m, page) & pg::SWAPCACHE != 0 {
                mapped.push((i, page, m.page_ref(page).unwrap().private()));
            }
        }
    }
    assert!(
        !mapped.is_empty(),
        "read-faulted pages stay in the swap cache"
    );
    let cached0 = vmstat(&m, "nr_swapcached");
    let mut l = MigrateList::new();
    for (_, page, _) in &mapped {
        m.isolate_migratepage(*page, &mut l).unwrap();
    }
    assert_eq!(migrate(&m, &mut l), Ok(0));
    for (i, old, entry) in &mapped {
        let new = m.follow_page(p, a + i * PAGE).unwrap().unwrap();
        assert_ne!(new, *old);
        let r = m.page_ref(new).unwrap();
        assert_ne!(
            r.flags() & pg::SWAPCACHE,
            0,
            "the new page is in the swap cache"
        );
        assert_eq!(r.private(), *entry, "under the same swap entry");
        assert_eq!(m.page_count(new), 2, "the PTE's and the cache's references");
    }
    assert_eq!(vmstat(&m, "nr_swapcached"), cached0);
    // Unmapped swap-cache pages (readahead) move too.
    let mut l = MigrateList::new();
    let mut unmapped = 0;
    let (lo, hi) = (1u64 << 8, (64 * MIB) / PAGE);
    for pfn in lo..hi {
        let Some(page) = m.pfn_to_page(kmem::Pfn::new(pfn)) else {
            continue;
        };
        let Some(r) = m.page_ref(page) else { continue };
        if r.refcount() > 0
            && r.flags() & pg::SWAPCACHE != 0
            && r.flags() & pg::LRU != 0
            && m.page_mapcount(page) == 0
            && m.isolate_migratepage(page, &mut l).is_ok()
        {
            unmapped += 1;
        }
    }
    assert!(
        unmapped > 0,
        "readahead left unmapped pages in the swap cache"
    );
    assert_eq!(migrate(&m, &mut l), Ok(0));
    assert_eq!(vmstat(&m, "nr_swapcached"), cached0);
    // Every byte still reads back (the moved cache pages are found by later faults).
    for i in 0..n {
        assert_eq!(
            m.upeek(p, a + i * PAGE, 8).unwrap(),
            pat(9, i, 0),
            "page {i}"
        );
    }
    m.exit(p).unwrap();
    m.swapoff("/dev/ram0").unwrap();
    assert_eq!(settle(&m), free0);
    assert_eq!(lru_pages(&m), 0, "every LRU list empty");
}

#[test]
fn pinned_pages_fail_with_eagain_after_the_retries_and_go_back() {
    let m = boot(Arch::X86_64, 256 * MIB, 2);
    let free0 = baseline(&m);
    let p = m.spawn("pin").unwrap();
    let n = 4;
    let a = m.mmap(p, 0, n * PAGE, RW, PA, -1, 0).unwrap();
    write_pages(&m, p, a, n, 10);
    let mut pinned = [None; 2];
    assert_eq!(m.pin_user_pages(p, a, FOLL_WRITE, &mut pinned), Ok(2));
    let pins: Vec<PagePtr> = pinned.iter().map(|x| x.unwrap()).collect();
    assert!(m.page_maybe_dma_pinned(pins[0]));
    assert_eq!(m.page_count(pins[0]), 1 + GUP_PIN_COUNTING_BIAS);
    let before = pfns(&m, p, a, n);
    let mut l = isolate_range(&m, p, a, n);
    // Two pages move; the two pinned ones fail every pass and stay on the list.
    assert_eq!(migrate(&m, &mut l), Ok(2));
    assert_eq!(l.len(), 2);
    assert!(l.contains(pins[0]) && l.contains(pins[1]));
    assert_eq!(vmstat(&m, "pgmigrate_success"), 2);
    assert_eq!(vmstat(&m, "pgmigrate_fail"), 2);
    m.putback_movable_pages(&mut l);
    let after = pfns(&m, p, a, n);
    assert_eq!(&after[..2], &before[..2], "pinned pages stay");
    assert_ne!(after[2], before[2]);
    assert_ne!(flags(&m, pins[0]) & pg::LRU, 0, "back on the LRU");
    check_pages(&m, p, a, n, 10);
    m.unpin_user_pages(&pins);
    assert!(!m.page_maybe_dma_pinned(pins[0]));
    // Unpinned, they move.
    assert_eq!(m.move_pages(p, a, 2), Ok(0));
    assert_ne!(pfns(&m, p, a, 1)[0], before[0]);
    check_pages(&m, p, a, n, 10);
    m.exit(p).unwrap();
    assert_eq!(settle(&m), free0);
    let _ = NR_MAX_MIGRATE_PAGES_RETRY;
}

#[test]
fn eagain_is_retried_up_to_nr_max_migrate_pages_retry_passes() {
    let m = boot(Arch::X86_64, 256 * MIB, 2);
    let p = m.spawn("retry").unwrap();
    let a = m.mmap(p, 0, PAGE, RW, PA, -1, 0).unwrap();
    m.upoke(p, a, 8, 42).unwrap();
    let mut pinned = [None; 1];
    m.pin_user_pages(p, a, 0, &mut pinned).unwrap();
    let mut l = isolate_range(&m, p, a, 1);
    let calls = AtomicUsize::new(0);
    let freed = AtomicUsize::new(0);
    let mut get = |src| {
        calls.fetch_add(1, Ordering::Relaxed);
        m.alloc_migration_target(src)
    };
    let mut put = |dst: PagePtr| {
        freed.fetch_add(1, Ordering::Relaxed);
        m.__free_pages(dst, Order::ZERO);
    };
    let r = m.migrate_pages(
        &mut l,
        &mut get,
        Some(&mut put),
        MigrateMode::Async,
        MigrateReason::Compaction,
    );
    assert_eq!(r, Ok(1));
    assert_eq!(calls.load(Ordering::Relaxed), NR_MAX_MIGRATE_PAGES_RETRY);
    assert_eq!(
        freed.load(Ordering::Relaxed),
        NR_MAX_MIGRATE_PAGES_RETRY,
        "put_new got each"
    );
    m.putback_movable_pages(&mut l);
    m.unpin_user_pages(&[pinned[0].unwrap()]);
    assert_eq!(m.upeek(p, a, 8).unwrap(), 42);
    m.exit(p).unwrap();
}

#[test]
fn target_allocation_failure_is_enomem_and_leaves_the_pages_listed() {
    let m = boot(Arch::X86_64, 256 * MIB, 2);
    let free0 = baseline(&m);
    let p = m.spawn("nomem").unwrap();
    let n = 6;
    let a = m.mmap(p, 0, n * PAGE, RW, PA, -1, 0).unwrap();
    write_pages(&m, p, a, n, 11);
    let before = pfns(&m, p, a, n);
    let mut l = isolate_range(&m, p, a, n);
    // Two targets, then no memory.
    let left = Mutex::new(2);
    let mut get = |src| {
        let mut g = left.lock().unwrap();
        if *g == 0 {
            return None;
        }
        *g -= 1;
        m.alloc_migration_target(src)
    };
    let r = m.migrate_pages(
        &mut l,
        &mut get,
        None,
        MigrateMode::Sync,
        MigrateReason::ContigRange,
    );
    assert_eq!(r, Err(Errno::ENOMEM));
    assert_eq!(l.len(), 4, "the pages not migrated stay on the list");
    m.putback_movable_pages(&mut l);
    let after = pfns(&m, p, a, n);
    assert_ne!(after[0], before[0]);
    assert_ne!(after[1], before[1]);
    assert_eq!(&after[2..], &before[2..]);
    check_pages(&m, p, a, n, 11);
    assert_eq!(vmstat(&m, "pgmigrate_success"), 2);
    assert_eq!(vmstat(&m, "pgmigrate_fail"), 1, "the page without a target");
    m.exit(p).unwrap();
    assert_eq!(settle(&m), free0);
}

#[test]
fn unmovable_pages_are_ebusy_at_isolation() {
    let m = boot(Arch::X86_64, 256 * MIB, 2);
    let mut l = MigrateList::new();
    // A kernel allocation (no LRU, no owner).
    let k = m.alloc_pages(GfpFlags::GFP_KERNEL, Order::ZERO).unwrap();
    assert_eq!(m.isolate_migratepage(k, &mut l), Err(Errno::EBUSY));
    // Even a movable allocation that is not a user page.
    let mv = m
        .alloc_pages(GfpFlags::GFP_HIGHUSER_MOVABLE, Order::ZERO)
        .unwrap();
    assert_eq!(m.isolate_migratepage(mv, &mut l), Err(Errno::EBUSY));
    // A slab page.
    let obj = m.kmalloc(64, GfpFlags::GFP_KERNEL).unwrap();
    let sp = m
        .virt_to_page(kmem::VirtAddr::from_ptr(obj.as_ptr()))
        .unwrap();
    assert_eq!(m.isolate_migratepage(sp, &mut l), Err(Errno::EBUSY));
    // A page-table page of a task.
    let p = m.spawn("pt").unwrap();
    let a = m.mmap(p, 0, PAGE, RW, PA, -1, 0).unwrap();
    m.upoke(p, a, 8, 1).unwrap();
    let mut table = None;
    for pfn in 256..(256 * MIB / PAGE) {
        if let Some(pg) = m.pfn_to_page(kmem::Pfn::new(pfn)) {
            if m.page_ref(pg).and_then(|r| r.page_type()).map(|t| t.name()) == Some("table") {
                table = Some(pg);
                break;
            }
        }
    }
    assert_eq!(
        m.isolate_migratepage(table.unwrap(), &mut l),
        Err(Errno::EBUSY)
    );
    // A free page.
    let f = m.alloc_pages(GfpFlags::GFP_KERNEL, Order::ZERO).unwrap();
    m.__free_pages(f, Order::ZERO);
    m.drain_local_pages();
    assert_eq!(m.isolate_migratepage(f, &mut l), Err(Errno::EBUSY));
    assert!(l.is_empty());
    m.kfree(obj.as_ptr());
    m.__free_pages(k, Order::ZERO);
    m.__free_pages(mv, Order::ZERO);
    m.exit(p).unwrap();
}

/// A movable-ops owner, like a balloon driver: it owns pages and moves its bookkeeping
/// when migration asks.
struct Balloon {
    m: *const M,
    pages: Mutex<Vec<PagePtr>>,
    isolated: AtomicUsize,
    putback: AtomicUsize,
    refuse: std::sync::atomic::AtomicBool,
}

/// # Safety
/// `ctx` must point at the test's live `Balloon` (registered with `set_movable_ops` and removed
/// before the balloon is dropped).
unsafe fn b_isolate(ctx: *const (), page: PagePtr) -> bool {
    // SAFETY: ctx is the test's Balloon.
    let b = unsafe { &*ctx.cast::<Balloon>() };
    if b.refuse.load(Ordering::Relaxed) {
        return false;
    }
    b.isolated.fetch_add(1, Ordering::Relaxed);
    b.pages.lock().unwrap().contains(&page)
}

/// # Safety
/// `ctx` must point at the test's live `Balloon`, whose machine outlives it; `dst` and `src` are
/// distinct pages of that machine held by the caller.
unsafe fn b_migrate(ctx: *const (), dst: PagePtr, src: PagePtr) -> Result<(), Errno> {
    // SAFETY: ctx is the test's Balloon.
    let b = unsafe { &*ctx.cast::<Balloon>() };
    // SAFETY: the Balloon's machine outlives it.
    let m = unsafe { &*b.m };
    // SAFETY: both pages are held (the owner's and the allocation's); distinct frames.
    unsafe {
        core::ptr::copy_nonoverlapping(
            m.phys_to_real(m.page_to_pfn(src).phys()),
            m.phys_to_real(m.page_to_pfn(dst).phys()),
            PAGE_SIZE,
        );
    }
    let mut v = b.pages.lock().unwrap();
    let i = v.iter().position(|p| *p == src).ok_or(Errno::EAGAIN)?;
    v[i] = dst;
    m.get_page(dst);
    assert!(m.set_page_movable(dst, MovableOpsType::Offline));
    m.clear_page_movable(src);
    m.put_page(src);
    Ok(())
}

/// # Safety
/// `ctx` must point at the test's live `Balloon`.
unsafe fn b_putback(ctx: *const (), _page: PagePtr) {
    // SAFETY: ctx is the test's Balloon.
    let b = unsafe { &*ctx.cast::<Balloon>() };
    b.putback.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn movable_ops_pages_migrate_through_their_owner() {
    let m = boot(Arch::X86_64, 256 * MIB, 2);
    let free0 = settle(&m);
    let b = Box::new(Balloon {
        m: &m,
        pages: Mutex::new(Vec::new()),
        isolated: AtomicUsize::new(0),
        putback: AtomicUsize::new(0),
        refuse: false.into(),
    });
    let ops = MovableOps {
        ctx: (&*b as *const Balloon).cast(),
        isolate_page: b_isolate,
        migrate_page: b_migrate,
        putback_page: b_putback,
    };
    // SAFETY: the callbacks are sound with this ctx; removed before `b` drops.
    unsafe { m.set_movable_ops(MovableOpsType::Offline, Some(ops)) };
    for i in 0..4u64 {
        let pg = m
            .alloc_pages(GfpFlags::GFP_HIGHUSER_MOVABLE, Order::ZERO)
            .unwrap();
        // SAFETY: the page is ours.
        unsafe {
            m.phys_to_real(m.page_to_pfn(pg).phys())
                .cast::<u64>()
                .write(0xb0 + i)
        };
        assert!(m.set_page_movable(pg, MovableOpsType::Offline));
        assert!(m.page_has_movable_ops(pg));
        b.pages.lock().unwrap().push(pg);
    }
    let old = b.pages.lock().unwrap().clone();
    let mut l = MigrateList::new();
    for pg in &old {
        m.isolate_migratepage(*pg, &mut l).unwrap();
    }
    assert_eq!(b.isolated.load(Ordering::Relaxed), 4);
    assert_eq!(migrate(&m, &mut l), Ok(0));
    let new = b.pages.lock().unwrap().clone();
    for (i, (o, n)) in old.iter().zip(&new).enumerate() {
        assert_ne!(o, n);
        assert_eq!(m.page_count(*n), 1, "the owner's reference only");
        // SAFETY: the owner's page.
        let v = unsafe {
            m.phys_to_real(m.page_to_pfn(*n).phys())
                .cast::<u64>()
                .read()
        };
        assert_eq!(v, 0xb0 + i as u64);
    }
    // An owner that refuses isolation: -EBUSY; a putback goes to the owner.
    b.refuse.store(true, Ordering::Relaxed);
    assert_eq!(m.isolate_migratepage(new[0], &mut l), Err(Errno::EBUSY));
    b.refuse.store(false, Ordering::Relaxed);
    m.isolate_migratepage(new[0], &mut l).unwrap();
    m.putback_movable_pages(&mut l);
    assert_eq!(b.putback.load(Ordering::Relaxed), 1);
    assert_eq!(m.page_count(new[0]), 1);
    // SAFETY: no page of the owner is isolated any more.
    unsafe { m.set_movable_ops(MovableOpsType::Offline, None) };
    for pg in new {
        m.clear_page_movable(pg);
        m.__free_pages(pg, Order::ZERO);
    }
    assert_eq!(settle(&m), free0);
}

#[test]
fn shmem_pages_are_found_through_split_moved_and_forked_vmas() {
    let m = boot(Arch::X86_64, 256 * MIB, 2);
    let free0 = baseline(&m);
    let p = m.spawn("split").unwrap();
    let fd = m.memfd_create(p, "f").unwrap();
    let n = 6;
    m.ftruncate(p, fd, n * PAGE).unwrap();
    let a = m.mmap(p, 0, n * PAGE, RW, MAP_SHARED, fd, 0).unwrap();
    write_pages(&m, p, a, n, 12);
    // Three VMAs (mprotect splits), a private read-only view of the same object, a fork,
    // and the child's copy moved by mremap.
    m.mprotect(p, a + 2 * PAGE, 2 * PAGE, PROT_READ).unwrap();
    let r = m
        .mmap(p, 0, n * PAGE, PROT_READ, MAP_PRIVATE, fd, 0)
        .unwrap();
    check_pages(&m, p, r, n, 12);
    let c = m.fork(p).unwrap();
    // (mremap moves one VMA: the first two pages.)
    let moved = m.mremap(
        c,
        a,
        2 * PAGE,
        2 * PAGE,
        MREMAP_MAYMOVE | MREMAP_FIXED,
        a - 64 * PAGE,
    );
    let b = moved.unwrap();
    assert_eq!(m.page_mapcount(m.follow_page(p, a).unwrap().unwrap()), 4);
    let before = pfns(&m, p, a, n);
    assert_eq!(m.move_pages(p, a, n), Ok(0));
    let after = pfns(&m, p, a, n);
    assert!(before.iter().zip(&after).all(|(x, y)| x != y));
    for (pid, addr) in [(p, r), (c, r)] {
        assert_eq!(
            pfns(&m, pid, addr, n),
            after,
            "every view of the object follows"
        );
        check_pages(&m, pid, addr, n, 12);
    }
    assert_eq!(pfns(&m, c, b, 2), after[..2], "the moved VMA follows too");
    assert_eq!(pfns(&m, c, a + 2 * PAGE, n - 2), after[2..]);
    check_pages(&m, c, b, 2, 12);
    // The writable parts still write through to every view, the read-only part faults.
    m.upoke(c, b + 8, 8, 77).unwrap();
    assert_eq!(m.upeek(p, r + 8, 8).unwrap(), 77);
    assert!(m.upoke(p, a + 2 * PAGE, 8, 1).is_err(), "still read-only");
    assert!(m.kill(p, 0).is_err(), "the segfault killed the task");
    m.exit(c).unwrap();
    assert_eq!(settle(&m), free0);
}

/// A migration entered while this CPU already holds `tasklist_lock` (as compaction from an
/// allocation made under it would: here `get_new` of an outer migration starts an inner
/// one) runs under the holder's lock instead of deadlocking.
#[test]
fn migration_nested_under_tasklist_lock_does_not_deadlock() {
    let m = boot(Arch::X86_64, 256 * MIB, 2);
    let free0 = baseline(&m);
    let p = m.spawn("outer").unwrap();
    let a = m.mmap(p, 0, 4 * PAGE, RW, PA, -1, 0).unwrap();
    write_pages(&m, p, a, 4, 13);
    let mut outer = isolate_range(&m, p, a, 2);
    let inner = Mutex::new(isolate_range(&m, p, a + 2 * PAGE, 2));
    let nested = AtomicUsize::new(usize::MAX);
    let mut get = |src| {
        let mut l = inner.lock().unwrap();
        if !l.is_empty() {
            nested.store(migrate(&m, &mut l).unwrap(), Ordering::Relaxed);
        }
        m.alloc_migration_target(src)
    };
    let r = m.migrate_pages(
        &mut outer,
        &mut get,
        None,
        MigrateMode::Sync,
        MigrateReason::Compaction,
    );
    assert_eq!(r, Ok(0));
    assert_eq!(
        nested.load(Ordering::Relaxed),
        0,
        "the inner migration ran and moved all"
    );
    check_pages(&m, p, a, 4, 13);
    assert_eq!(vmstat(&m, "pgmigrate_success"), 4);
    assert_lockdep_quiet(&m);
    m.exit(p).unwrap();
    assert_eq!(settle(&m), free0);
}

/// Faults and writes on one CPU while another migrates the same task's pages: every
/// value reads back and the lock validator stays quiet.
#[test]
fn migration_races_with_a_faulting_task() {
    let m = boot(Arch::X86_64, 256 * MIB, 2);
    let free0 = baseline(&m);
    let p = m.spawn("race").unwrap();
    let n = 32;
    let a = m.mmap(p, 0, n * PAGE, RW, PA, -1, 0).unwrap();
    write_pages(&m, p, a, n, 14);
    std::thread::scope(|s| {
        let m = &m;
        s.spawn(move || {
            for _ in 0..20 {
                assert_eq!(m.move_pages(p, a, n), Ok(0));
            }
        });
        for round in 0..20u64 {
            for i in 0..n {
                m.upoke(p, a + i * PAGE + 16, 8, round * 1000 + i).unwrap();
                assert_eq!(m.upeek(p, a + i * PAGE + 16, 8).unwrap(), round * 1000 + i);
            }
        }
    });
    check_pages(&m, p, a, n, 14);
    assert_lockdep_quiet(&m);
    m.exit(p).unwrap();
    assert_eq!(settle(&m), free0);
}
