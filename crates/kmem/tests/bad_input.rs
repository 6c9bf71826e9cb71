//! Bad input at the edges of the address space: the memory calls answer with an error, as
//! Linux's system calls do, instead of overflowing; a range far larger than what a task has
//! mapped is walked only where it is mapped. After each, the machine goes on.

mod common;
use common::*;
use kmem::arch::Arch;
use kmem::errno::Errno;
use kmem::memory::shmem::{IPC_CREAT, IPC_PRIVATE, SHMLBA, SHM_RND};
use kmem::vma::*;
use kmem::PAGE_SIZE;

const MIB: u64 = 1 << 20;
const PAGE: u64 = PAGE_SIZE as u64;

/// `shmat` where the segment would wrap past the top of the address space: ipc/shm.c
/// `do_shmat` refuses it (`if (addr + size < addr) goto invalid;`, -EINVAL).
#[test]
fn shmat_where_the_segment_would_wrap_is_einval() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let p = m.spawn("shm").unwrap();
    let id = m.shmget(IPC_PRIVATE, 2 * PAGE, IPC_CREAT | 0o600).unwrap();
    assert_eq!(m.shmat(p, id, !(SHMLBA - 1), 0), Err(Errno::EINVAL));
    assert_eq!(m.shmat(p, id, u64::MAX, SHM_RND), Err(Errno::EINVAL));
    let a = m.shmat(p, id, 0, 0).unwrap();
    m.upoke(p, a + PAGE, 8, 0x5eed).unwrap();
    assert_eq!(m.upeek(p, a + PAGE, 8), Ok(0x5eed));
    m.shmdt(p, a).unwrap();
    m.exit(p).unwrap();
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
}

/// `move_pages` of a range that wraps past the top of the address space is -EINVAL (as
/// madvise's and mprotect's `end < start`).
#[test]
fn move_pages_over_a_wrapping_range_is_einval() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let p = m.spawn("t").unwrap();
    let a = m
        .mmap(
            p,
            0,
            4 * PAGE,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            -1,
            0,
        )
        .unwrap();
    assert_eq!(m.move_pages(p, !(PAGE - 1), 16), Err(Errno::EINVAL));
    assert_eq!(m.move_pages(p, a, u64::MAX), Err(Errno::EINVAL));
    m.upoke(p, a, 8, 7).unwrap();
    assert_eq!(m.move_pages(p, a, 4), Ok(0));
    assert_eq!(m.upeek(p, a, 8), Ok(7));
    m.exit(p).unwrap();
}

/// `move_pages` of 2^40 pages from a 4-page mapping: only the mapped pages are looked at,
/// so the call ends (it used to try every address of the range, one page at a time), and
/// they move with their data.
#[test]
fn move_pages_walks_only_what_is_mapped() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let p = m.spawn("t").unwrap();
    let a = m
        .mmap(
            p,
            0,
            4 * PAGE,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            -1,
            0,
        )
        .unwrap();
    for i in 0..4 {
        m.upoke(p, a + i * PAGE, 8, 100 + i).unwrap();
    }
    let before: Vec<_> = (0..4)
        .map(|i| m.follow_page(p, a + i * PAGE).unwrap().unwrap())
        .collect();
    assert_eq!(m.move_pages(p, a, 1 << 40), Ok(0));
    for i in 0..4 {
        let now = m.follow_page(p, a + i * PAGE).unwrap().unwrap();
        assert_ne!(now, before[i as usize], "page {i} moved");
        assert_eq!(m.upeek(p, a + i * PAGE, 8), Ok(100 + i));
    }
    m.exit(p).unwrap();
    assert_eq!(m.check_invariants(), Ok(()));
}

/// `cma_alloc` of more pages than there are, and `cma_release` of a count that runs past
/// the end of the address space: both fail (mm/cma.c counts the failed request in
/// `alloc_pages_fail`, an atomic64 that wraps; a release past the area is refused), and the
/// area still works.
#[test]
fn cma_alloc_and_release_of_impossible_counts_fail() {
    let m = boot_with(Arch::X86_64, 256 * MIB, 1, "cma=16M", 42);
    let c = m.cma_find("reserved").unwrap();
    assert!(m.cma_alloc(c, usize::MAX, u32::MAX, true).is_none());
    assert!(m.cma_alloc(c, 1 << 40, 0, true).is_none());
    let fail = proc(&m, "/sys/kernel/mm/cma/reserved/alloc_pages_fail");
    assert_eq!(fail.trim(), (usize::MAX.wrapping_add(1 << 40)).to_string());
    let page = m.cma_alloc(c, 16, 0, true).unwrap();
    assert!(!m.cma_release(c, page, usize::MAX));
    assert!(m.cma_release(c, page, 16));
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
}
