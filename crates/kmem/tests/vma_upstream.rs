//! Cases of tools/testing/vma/vma.c (Linux 6.13) through kmem's system-call level API
//! (`mmap`/`mprotect`/`mremap`/`munmap` on a task), with Linux's expected ranges, page
//! offsets and map counts. Upstream addresses start at 0; kmem's start at `B` (no mapping
//! may go below `mmap_min_addr`), so page offsets of anonymous memory are `B >> 12` more.
//! docs/upstream/vma.md lists every upstream case and where it is.

mod common;
use common::*;
use kmem::arch::Arch;
use kmem::vma::*;

const B: u64 = 0x1000_0000;
const RW: u32 = PROT_READ | PROT_WRITE;
const FIX: u32 = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;

/// The VMAs of `pid` below the stack: (start - B, end - B, pgoff - B >> 12).
fn vmas(m: &M, pid: i32) -> Vec<(u64, u64, u64)> {
    m.with_task(pid, |t| {
        t.mm.validate().unwrap();
        t.mm.vmas()
            .filter(|v| v.vm_start < 0x7000_0000_0000)
            .map(|v| (v.vm_start - B, v.vm_end - B, v.vm_pgoff - (B >> 12)))
            .collect()
    })
    .unwrap()
}

fn map_count(m: &M, pid: i32) -> usize {
    // The stack is one more mapping than upstream's bare mm has.
    m.with_task(pid, |t| t.mm.map_count).unwrap() - 1
}

fn task() -> (M, i32) {
    let m = boot(Arch::X86_64, 128 << 20, 1);
    let p = m.spawn("vma").unwrap();
    (m, p)
}

#[test]
fn simple_merge() {
    let (m, p) = task();
    m.mmap(p, B, 0x1000, RW, FIX, -1, 0).unwrap();
    m.mmap(p, B + 0x2000, 0x1000, RW, FIX, -1, 0).unwrap();
    m.mmap(p, B + 0x1000, 0x1000, RW, FIX, -1, 0).unwrap();
    assert_eq!(vmas(&m, p), [(0, 0x3000, 0)]);
}

#[test]
fn simple_modify() {
    let (m, p) = task();
    m.mmap(p, B, 0x3000, RW, FIX, -1, 0).unwrap();
    m.mprotect(p, B + 0x1000, 0x1000, PROT_READ).unwrap();
    assert_eq!(
        vmas(&m, p),
        [(0, 0x1000, 0), (0x1000, 0x2000, 1), (0x2000, 0x3000, 2)]
    );
}

#[test]
fn simple_expand() {
    let (m, p) = task();
    m.mmap(p, B, 0x1000, RW, FIX, -1, 0).unwrap();
    assert_eq!(m.mremap(p, B, 0x1000, 0x3000, 0, 0), Ok(B));
    assert_eq!(vmas(&m, p), [(0, 0x3000, 0)]);
}

#[test]
fn simple_shrink() {
    let (m, p) = task();
    m.mmap(p, B, 0x3000, RW, FIX, -1, 0).unwrap();
    assert_eq!(m.mremap(p, B, 0x3000, 0x1000, 0, 0), Ok(B));
    assert_eq!(vmas(&m, p), [(0, 0x1000, 0)]);
}

/// `test_merge_new`: new ranges merge with the previous, the next, or both neighbours.
#[test]
fn merge_new() {
    let (m, p) = task();
    // AA B       CC
    m.mmap(p, B, 0x2000, RW, FIX, -1, 0).unwrap();
    m.mmap(p, B + 0x3000, 0x1000, RW, FIX, -1, 0).unwrap();
    m.mmap(p, B + 0xb000, 0x1000, RW, FIX, -1, 0).unwrap();
    // No merge: AA B   **  CC
    m.mmap(p, B + 0x7000, 0x2000, RW, FIX, -1, 0).unwrap();
    assert_eq!(map_count(&m, p), 4);
    // Merge both sides: AA*B   DD  CC
    m.mmap(p, B + 0x2000, 0x1000, RW, FIX, -1, 0).unwrap();
    assert_eq!(vmas(&m, p)[0], (0, 0x4000, 0));
    assert_eq!(map_count(&m, p), 3);
    // Merge to previous: AAAA*  DD  CC
    m.mmap(p, B + 0x4000, 0x1000, RW, FIX, -1, 0).unwrap();
    assert_eq!(vmas(&m, p)[0], (0, 0x5000, 0));
    assert_eq!(map_count(&m, p), 3);
    // Merge to next: AAAAA *DD  CC
    m.mmap(p, B + 0x6000, 0x1000, RW, FIX, -1, 0).unwrap();
    assert_eq!(vmas(&m, p)[1], (0x6000, 0x9000, 6));
    assert_eq!(map_count(&m, p), 3);
    // Merge both sides: AAAAA*DDD  CC
    m.mmap(p, B + 0x5000, 0x1000, RW, FIX, -1, 0).unwrap();
    assert_eq!(vmas(&m, p)[0], (0, 0x9000, 0));
    assert_eq!(map_count(&m, p), 2);
    // Merge to next: AAAAAAAAA *CC
    m.mmap(p, B + 0xa000, 0x1000, RW, FIX, -1, 0).unwrap();
    assert_eq!(vmas(&m, p)[1], (0xa000, 0xc000, 0xa));
    assert_eq!(map_count(&m, p), 2);
    // Merge both sides: AAAAAAAAA*CCC
    m.mmap(p, B + 0x9000, 0x1000, RW, FIX, -1, 0).unwrap();
    assert_eq!(vmas(&m, p), [(0, 0xc000, 0)]);
    assert_eq!(map_count(&m, p), 1);
}

/// `test_anon_vma_non_mergeable` in spirit: neighbours with different anon_vmas (each
/// written to, so each has its own) do not merge across a new range; without anon_vmas
/// they would.
#[test]
fn anon_vma_non_mergeable() {
    let (m, p) = task();
    m.mmap(p, B, 0x1000, RW, FIX, -1, 0).unwrap();
    m.mmap(p, B + 0x2000, 0x1000, RW, FIX, -1, 0).unwrap();
    m.upoke(p, B, 1, 1).unwrap();
    m.upoke(p, B + 0x2000, 1, 1).unwrap();
    m.mmap(p, B + 0x1000, 0x1000, RW, FIX, -1, 0).unwrap();
    // Merged with the previous one only.
    assert_eq!(vmas(&m, p), [(0, 0x2000, 0), (0x2000, 0x3000, 2)]);
    assert_eq!(m.upeek(p, B + 0x2000, 1), Ok(1));
}

/// `test_copy_vma` through mremap: a moved VMA keeps its page offset, so it merges with
/// nothing that is not contiguous in offset.
#[test]
fn copy_vma() {
    let (m, p) = task();
    m.mmap(p, B, 0x2000, RW, FIX, -1, 0).unwrap();
    let to = m
        .mremap(
            p,
            B,
            0x2000,
            0x2000,
            MREMAP_MAYMOVE | MREMAP_FIXED,
            B + 0x4000,
        )
        .unwrap();
    assert_eq!(to, B + 0x4000);
    assert_eq!(vmas(&m, p), [(0x4000, 0x6000, 0)]);
}
