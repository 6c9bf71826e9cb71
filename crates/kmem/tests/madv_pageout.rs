//! `MADV_COLD` and `MADV_PAGEOUT` (mm/madvise.c `madvise_cold_or_pageout_pte_range`,
//! mm/vmscan.c `reclaim_pages`): COLD makes a task's own pages old and inactive; PAGEOUT
//! reclaims them at once — to swap when there is swap, regardless of their references —
//! and leaves pages another task maps alone.

mod common;
use common::*;
use kmem::arch::Arch;
use kmem::memory::{MADV_COLD, MADV_PAGEOUT};
use kmem::vma::*;
use kmem::PAGE_SIZE;

const MIB: u64 = 1 << 20;
const RW: u32 = PROT_READ | PROT_WRITE;
const PA: u32 = MAP_PRIVATE | MAP_ANONYMOUS;
const PAGE: u64 = PAGE_SIZE as u64;

fn rollup(m: &M, pid: i32, label: &str) -> u64 {
    kb_field(&proc(m, &format!("/proc/{pid}/smaps_rollup")), label)
}

/// A task with `pages` pages, page `i` holding `i + 1`.
fn filled(m: &M, pages: u64) -> (i32, u64) {
    let p = m.spawn("t").unwrap();
    let a = m.mmap(p, 0, pages * PAGE, RW, PA, -1, 0).unwrap();
    for i in 0..pages {
        m.upoke(p, a + i * PAGE, 8, i + 1).unwrap();
    }
    (p, a)
}

#[test]
fn pageout_swaps_the_range_out_and_it_reads_back() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let (path, name) = swapon_file(&m, "pageout", 16 * MIB);
    let pages = 100;
    let (p, a) = filled(&m, pages);
    assert_eq!(rollup(&m, p, "Rss:"), pages * 4);
    let out0 = vmstat(&m, "pswpout");
    // Every page was just written (young PTEs): PAGEOUT ignores references.
    m.madvise(p, a, pages * PAGE, MADV_PAGEOUT).unwrap();
    assert_eq!(vmstat(&m, "pswpout") - out0, pages);
    assert_eq!(rollup(&m, p, "Rss:"), 0);
    assert_eq!(rollup(&m, p, "Swap:"), pages * 4);
    for i in 0..pages {
        assert_eq!(m.upeek(p, a + i * PAGE, 8), Ok(i + 1), "page {i}");
    }
    m.exit(p).unwrap();
    m.swapoff(&name).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
}

#[test]
fn pageout_leaves_shared_pages_and_needs_swap_for_anonymous_memory() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let w = m.spawn("warmup").unwrap();
    m.exit(w).unwrap();
    let free0 = settle(&m);
    let pages = 64;
    let (p, a) = filled(&m, pages);
    // No swap: nothing can go, every page stays resident and intact.
    m.madvise(p, a, pages * PAGE, MADV_PAGEOUT).unwrap();
    assert_eq!(rollup(&m, p, "Rss:"), pages * 4);
    assert_eq!(vmstat(&m, "pswpout"), 0);
    let (path, name) = swapon_file(&m, "pageout-shared", 16 * MIB);
    // Pages shared with a child after fork are not this task's to push out.
    let c = m.fork(p).unwrap();
    m.madvise(p, a, pages * PAGE, MADV_PAGEOUT).unwrap();
    assert_eq!(vmstat(&m, "pswpout"), 0);
    assert_eq!(rollup(&m, p, "Rss:"), pages * 4);
    m.exit(c).unwrap();
    m.madvise(p, a, pages * PAGE, MADV_PAGEOUT).unwrap();
    assert_eq!(vmstat(&m, "pswpout"), pages);
    for i in 0..pages {
        assert_eq!(m.upeek(p, a + i * PAGE, 8), Ok(i + 1), "page {i}");
    }
    m.exit(p).unwrap();
    m.swapoff(&name).unwrap();
    std::fs::remove_file(&path).unwrap();
    m.synchronize_rcu();
    assert_eq!(settle(&m), free0);
}

#[test]
fn cold_makes_pages_old_and_inactive() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let pages = 64;
    let (p, a) = filled(&m, pages);
    assert_eq!(rollup(&m, p, "Referenced:"), pages * 4);
    let info = proc(&m, "/proc/meminfo");
    let (inactive0, active0) = (
        kb_field(&info, "Inactive(anon):"),
        kb_field(&info, "Active(anon):"),
    );
    let deact0 = vmstat(&m, "pgdeactivate");
    m.madvise(p, a, pages * PAGE, MADV_COLD).unwrap();
    // Old PTEs, nothing freed, the data in place.
    assert_eq!(rollup(&m, p, "Referenced:"), 0);
    assert_eq!(rollup(&m, p, "Rss:"), pages * 4);
    // New pages start inactive: nothing to deactivate, the lists are as they were.
    let info = proc(&m, "/proc/meminfo");
    assert_eq!(kb_field(&info, "Inactive(anon):"), inactive0);
    assert_eq!(kb_field(&info, "Active(anon):"), active0);
    assert_eq!(vmstat(&m, "pgdeactivate"), deact0);
    for i in 0..pages {
        assert_eq!(m.upeek(p, a + i * PAGE, 8), Ok(i + 1));
    }
    m.exit(p).unwrap();
}

/// `folio_deactivate`, what `MADV_COLD` does to an active page: to the inactive list of its
/// kind, `PG_referenced` cleared, `pgdeactivate` counted; an inactive page stays.
#[test]
fn folio_deactivate_moves_an_active_page_to_the_inactive_list() {
    use kmem::gfp::GfpFlags;
    use kmem::mm::VmEvent;
    use kmem::vmalloc::VmLayer;
    use kmem::vmscan::{LruList, VmscanState};
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let l: &VmLayer<_> = &m;
    let vm = Box::new(VmscanState::<kmem_hosted::HostedPlatform>::new());
    // SAFETY: boxed, never moves until dropped at the end of the test.
    unsafe { vm.init() };
    let page = m.alloc_page(GfpFlags::GFP_HIGHUSER_MOVABLE).unwrap();
    vm.folio_add_lru(l, page, true);
    let deact0 = m.vm_event(VmEvent::PgDeactivate);
    vm.folio_deactivate(l, page);
    assert_eq!(m.vm_event(VmEvent::PgDeactivate), deact0);
    // Two accesses: PG_referenced, then the active list.
    vm.mark_page_accessed(l, page);
    vm.mark_page_accessed(l, page);
    assert_eq!(vm.nr_pages(LruList::ActiveAnon), 1);
    vm.folio_deactivate(l, page);
    assert_eq!(vm.nr_pages(LruList::ActiveAnon), 0);
    assert_eq!(vm.nr_pages(LruList::InactiveAnon), 1);
    assert_eq!(m.vm_event(VmEvent::PgDeactivate), deact0 + 1);
    vm.folio_put(l, page);
    assert!(vm.lru_empty());
}
