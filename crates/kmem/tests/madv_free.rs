//! `MADV_FREE` as Linux's lazy free (mm/madvise.c `madvise_free_pte_range`, mm/swap.c
//! `folio_mark_lazyfree`, mm/vmscan.c and mm/rmap.c `try_to_unmap_one`): the pages stay
//! mapped and move to the inactive file list, clean; reclaim drops the ones still clean
//! without writing them to swap (they then read back as zeroes), and keeps the ones written
//! again (their data survives). /proc/vmstat counts `pglazyfree` and `pglazyfreed`; smaps
//! shows `LazyFree`.

mod common;
use common::*;
use kmem::arch::Arch;
use kmem::memory::MADV_FREE;
use kmem::vma::*;
use kmem::PAGE_SIZE;

const MIB: u64 = 1 << 20;
const RW: u32 = PROT_READ | PROT_WRITE;
const PA: u32 = MAP_PRIVATE | MAP_ANONYMOUS;
const PAGE: u64 = PAGE_SIZE as u64;

/// A task with `pages` pages written (page `i` holds `i + 1` in its first word), then
/// `MADV_FREE`d; every even page is written again afterwards (`i + 1000`).
fn lazyfree_task(m: &M, pages: u64) -> (i32, u64) {
    let p = m.spawn("lazy").unwrap();
    let a = m.mmap(p, 0, pages * PAGE, RW, PA, -1, 0).unwrap();
    for i in 0..pages {
        m.upoke(p, a + i * PAGE, 8, i + 1).unwrap();
    }
    let lazy0 = vmstat(m, "pglazyfree");
    let inactive_file0 = kb_field(&proc(m, "/proc/meminfo"), "Inactive(file):");
    m.madvise(p, a, pages * PAGE, MADV_FREE).unwrap();
    // Still mapped, still readable (nothing is dropped before reclaim), counted as moved.
    assert_eq!(vmstat(m, "pglazyfree") - lazy0, pages);
    assert_eq!(m.upeek(p, a + PAGE, 8), Ok(2));
    let info = proc(m, "/proc/meminfo");
    assert_eq!(
        kb_field(&info, "Inactive(file):") - inactive_file0,
        pages * 4,
        "{info}"
    );
    let smaps = proc(m, &format!("/proc/{p}/smaps"));
    assert!(
        smaps.contains(&format!("LazyFree:       {:>8} kB", pages * 4)),
        "{smaps}"
    );
    for i in (0..pages).step_by(2) {
        m.upoke(p, a + i * PAGE, 8, i + 1000).unwrap();
    }
    // smaps_account: a dirty PTE is no longer lazily freeable.
    let smaps = proc(m, &format!("/proc/{p}/smaps_rollup"));
    assert!(
        smaps.contains(&format!("LazyFree:       {:>8} kB", pages / 2 * 4)),
        "{smaps}"
    );
    (p, a)
}

/// Another task takes memory a page at a time until reclaim has dropped `want` lazily
/// freed pages (or `limit` bytes are used); returns its pid.
fn press(m: &M, want: u64, limit: u64) -> i32 {
    let q = m.spawn("press").unwrap();
    let b = m.mmap(q, 0, limit, RW, PA, -1, 0).unwrap();
    let freed0 = vmstat(m, "pglazyfreed");
    let mut off = 0;
    while off < limit && vmstat(m, "pglazyfreed") - freed0 < want {
        m.upoke(q, b + off, 8, off).unwrap();
        off += PAGE;
    }
    q
}

fn check_after_reclaim(m: &M, p: i32, a: u64, pages: u64) {
    for i in 0..pages {
        let v = m.upeek(p, a + i * PAGE, 8).unwrap();
        if i % 2 == 0 {
            assert_eq!(v, i + 1000, "page {i} was written after MADV_FREE: kept");
        } else {
            assert_eq!(v, 0, "page {i} was clean: dropped, a fresh zero page now");
        }
    }
}

#[test]
fn clean_lazyfree_pages_are_dropped_without_swap_and_written_ones_survive() {
    for arch in [Arch::X86_64, Arch::I386] {
        let m = boot(arch, 64 * MIB, 1);
        // The zero page, made with the first address space, stays.
        let w = m.spawn("warmup").unwrap();
        m.exit(w).unwrap();
        let free0 = settle(&m);
        let pages = 2048;
        let (p, a) = lazyfree_task(&m, pages);
        let q = press(&m, pages / 2, 96 * MIB);
        assert_eq!(vmstat(&m, "pglazyfreed"), pages / 2);
        assert_eq!(vmstat(&m, "pswpout"), 0);
        m.exit(q).unwrap();
        check_after_reclaim(&m, p, a, pages);
        m.exit(p).unwrap();
        assert_eq!(settle(&m), free0);
        assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
    }
}

#[test]
fn with_swap_clean_lazyfree_pages_are_not_swapped_out() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let (path, name) = swapon_file(&m, "madvfree-test", 64 * MIB);
    let pages = 2048;
    let (p, a) = lazyfree_task(&m, pages);
    let q = press(&m, pages / 2, 96 * MIB);
    assert_eq!(vmstat(&m, "pglazyfreed"), pages / 2);
    m.exit(q).unwrap();
    // A clean lazily freed page that had gone to swap would read back its old value.
    check_after_reclaim(&m, p, a, pages);
    m.exit(p).unwrap();
    m.swapoff(&name).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
}

/// After fork, `MADV_FREE` in the parent marks the shared, clean pages lazily freeable
/// (Linux checks exclusivity only for pages in the swap cache or with `PG_dirty`), but the
/// child's PTEs are still dirty: reclaim finds them, the pages become swap-backed again and
/// the child's data survives; nothing is counted in `pglazyfreed`.
#[test]
fn lazyfree_after_fork_keeps_the_childs_data() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let w = m.spawn("warmup").unwrap();
    m.exit(w).unwrap();
    let free0 = settle(&m);
    let pages = 512;
    let p = m.spawn("parent").unwrap();
    let a = m.mmap(p, 0, pages * PAGE, RW, PA, -1, 0).unwrap();
    for i in 0..pages {
        m.upoke(p, a + i * PAGE, 8, i + 7).unwrap();
    }
    let c = m.fork(p).unwrap();
    let inactive_file0 = kb_field(&proc(&m, "/proc/meminfo"), "Inactive(file):");
    let lazy0 = vmstat(&m, "pglazyfree");
    m.madvise(p, a, pages * PAGE, MADV_FREE).unwrap();
    assert_eq!(vmstat(&m, "pglazyfree") - lazy0, pages);
    // Pressure until reclaim has been through every one of them.
    let q = m.spawn("press").unwrap();
    let len = 96 * MIB;
    let b = m.mmap(q, 0, len, RW, PA, -1, 0).unwrap();
    let mut off = 0;
    while kb_field(&proc(&m, "/proc/meminfo"), "Inactive(file):") > inactive_file0 {
        assert!(off < len, "reclaim never reached the lazily freed pages");
        m.upoke(q, b + off, 8, 1).unwrap();
        off += PAGE;
    }
    m.exit(q).unwrap();
    assert_eq!(vmstat(&m, "pglazyfreed"), 0);
    for i in 0..pages {
        assert_eq!(m.upeek(c, a + i * PAGE, 8), Ok(i + 7), "child page {i}");
        let v = m.upeek(p, a + i * PAGE, 8).unwrap();
        assert!(v == i + 7 || v == 0, "parent page {i}: {v}");
    }
    m.exit(c).unwrap();
    m.exit(p).unwrap();
    assert_eq!(settle(&m), free0);
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
}
