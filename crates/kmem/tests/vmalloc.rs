//! vmalloc, vmap, kvmalloc, page tables and kmap on hosted machines. Includes scenarios of
//! lib/test_vmalloc.c, written anew.

mod common;

use common::{boot, proc, M};
use kmem::arch::Arch;

use kmem::VirtAddr;

fn x86() -> M {
    boot(Arch::X86_64, 256 << 20, 2)
}

fn fill(v: VirtAddr, len: usize, b: u8) {
    // SAFETY: the tests only fill memory they just allocated with at least `len` bytes.
    unsafe { core::ptr::write_bytes(v.as_ptr::<u8>(), b, len) };
}

fn read(v: VirtAddr, off: usize) -> u8 {
    // SAFETY: the tests only read inside their allocations.
    unsafe { v.as_ptr::<u8>().add(off).read_volatile() }
}

#[test]
fn vmalloc_40000_done_when() {
    let m = x86();
    let v = m.vmalloc(40000).unwrap();
    fill(v, 40000, 0x5a);
    assert_eq!(read(v, 39999), 0x5a);
    assert!(m.is_vmalloc_addr(v));
    let model = m.kva_to_model(v);
    assert_eq!(model, 0xffff_c900_0000_0000, "lowest address first");
    let t = m.translate(model + 4096 * 3 + 5).unwrap();
    let r = t.walk.result.unwrap();
    assert_eq!(t.walk.steps().len(), 4);
    assert_eq!(t.area, "vmalloc");
    // The walk's physical page holds what was written through the vmalloc pointer.
    // SAFETY: the page is allocated and mapped.
    let b = unsafe { m.phys_to_real(r.phys).read() };
    assert_eq!(b, 0x5a);
    assert_eq!(m.vmalloc_to_pfn(v + 3 * 4096).unwrap(), r.phys.pfn());
    let info = proc(&m, "/proc/vmallocinfo");
    let line = info
        .lines()
        .find(|l| l.contains("pages=10 vmalloc"))
        .unwrap();
    assert!(
        line.starts_with("0xffffc90000000000-0xffffc9000000b000   45056 "),
        "{line}"
    );
    assert!(line.ends_with(" pages=10 vmalloc N0=10"), "{line}");
    // The guard page is not mapped, in the tables and in the process.
    assert!(m.translate(model + 40960).unwrap().walk.result.is_none());
    assert!(kmem_hosted::probe_read((v + 40960).as_ptr()).is_err());
    assert!(kmem_hosted::probe_read((v + 40959).as_ptr()).is_ok());
    m.vfree(v);
    m.check_vmalloc().unwrap();
    let info = proc(&m, "/proc/vmallocinfo");
    assert!(info.contains("   45056 unpurged vm_area"), "{info}");
    assert!(kmem_hosted::probe_read(v.as_ptr()).is_err());
    assert!(m.purge_vmap_area_lazy());
    assert_eq!(proc(&m, "/proc/vmallocinfo"), "");
    assert_eq!(m.bug_count() + m.warn_count(), 0);
}

use kmem::gfp::GfpFlags;
use kmem::mmzone::ZoneType;
use kmem::pgtable::PteFlags;
use kmem::vmalloc::{TlbOutcome, VM_IOREMAP, VM_NO_GUARD};
use kmem::{PagePtr, PAGE_SIZE};

const VSTART: u64 = 0xffff_c900_0000_0000;

/// A small deterministic generator (splitmix64) for the randomised scenarios.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn gen_range(&mut self, r: std::ops::RangeInclusive<usize>) -> usize {
        r.start() + (self.next() % (r.end() - r.start() + 1) as u64) as usize
    }
    fn gen_u8(&mut self) -> u8 {
        self.next() as u8
    }
}

fn rng(seed: u64) -> Rng {
    Rng(seed)
}

fn clean(m: &M) {
    m.check_vmalloc().unwrap();
    assert_eq!(m.bug_count(), 0, "{}", m.platform().captured());
    assert_eq!(m.warn_count(), 0, "{}", m.platform().captured());
}

/// test_vmalloc.c fix_size_alloc_test: 3-page allocations, touched and freed, many times.
#[test]
fn fix_size_alloc() {
    let m = x86();
    for _ in 0..2000 {
        let v = m.vmalloc(3 * PAGE_SIZE).unwrap();
        fill(v, 1, 0);
        m.vfree(v);
    }
    clean(&m);
}

/// align_shift_alloc_test: one page with every power-of-two alignment up to 2^63. Linux
/// expects this test to fail: alignments beyond the vmalloc space cannot be met.
#[test]
fn align_shift_alloc_fails_for_huge_alignments() {
    let m = x86();
    let mut failed_at = None;
    for i in 0..64 {
        let align = 1usize << i;
        match m.__vmalloc_node(
            PAGE_SIZE,
            align,
            GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO | GfpFlags::__GFP_NOWARN,
        ) {
            Some(v) => {
                assert_eq!(m.kva_to_model(v) % align as u64, 0, "align {align:#x}");
                // The pointer the caller uses is aligned too, not just its model address.
                assert_eq!(v.as_u64() % align as u64, 0, "real {v:?}, align {align:#x}");
                m.vfree(v);
            }
            None => {
                failed_at.get_or_insert(i);
            }
        }
    }
    // The hosted window is 4 GiB at a 2^32-aligned VMALLOC_START: alignments up to 2^32
    // fit, 2^33 and more do not.
    assert_eq!(failed_at, Some(33));
    clean(&m);
}

/// The alignment asked of `__vmalloc_node` holds for the pointer the caller gets, on i386's
/// smaller window as on x86_64 (the hosted window is aligned as the model range it mirrors).
#[test]
fn aligned_vmalloc_pointers_are_aligned_in_the_process() {
    for arch in [Arch::X86_64, Arch::I386] {
        let m = boot(arch, 512 << 20, 2);
        for shift in 13..=22 {
            let align = 1usize << shift;
            let v = m
                .__vmalloc_node(2 * PAGE_SIZE, align, GfpFlags::GFP_KERNEL)
                .unwrap();
            assert_eq!(m.kva_to_model(v) % align as u64, 0, "{arch:?} {align:#x}");
            assert_eq!(
                v.as_u64() % align as u64,
                0,
                "{arch:?}: {v:?}, align {align:#x}"
            );
            fill(v, 2 * PAGE_SIZE, 1);
            m.vfree(v);
        }
    }
}

/// random_size_alloc_test: 1..=100 pages.
#[test]
fn random_size_alloc() {
    let m = x86();
    let mut r = rng(1);
    for _ in 0..300 {
        let n = r.gen_range(1..=100) * PAGE_SIZE;
        let v = m.vmalloc(n).unwrap();
        fill(v, n, 0xa5);
        assert_eq!(read(v, n - 1), 0xa5);
        m.vfree(v);
    }
    clean(&m);
}

/// random_size_align_alloc_test: up to 10 pages aligned to up to 2^22.
#[test]
fn random_size_align_alloc() {
    let m = x86();
    let mut r = rng(2);
    for _ in 0..500 {
        let rnd = r.gen_u8();
        let align = 1usize << (rnd % 23);
        let size = ((rnd as usize % 10) + 1) * PAGE_SIZE;
        let v = m
            .__vmalloc_node(size, align, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO)
            .unwrap();
        assert_eq!(m.kva_to_model(v) % align as u64, 0);
        assert_eq!(v.as_u64() % align as u64, 0, "real {v:?}, align {align:#x}");
        assert_eq!(read(v, size - 1), 0);
        m.vfree(v);
    }
    clean(&m);
}

/// full_fit_alloc_test: pairs of one-page areas, every second one freed, then one-page
/// allocations fit those holes exactly (lowest first). Linux uses lazy_max_pages pairs;
/// scaled down here (each page is a separate host mapping).
#[test]
fn full_fit_alloc() {
    let m = x86();
    let n = 512;
    let mut keep = Vec::new();
    let mut junk = Vec::new();
    for _ in 0..n {
        keep.push(m.vmalloc(PAGE_SIZE).unwrap());
        junk.push(m.vmalloc(PAGE_SIZE).unwrap());
    }
    for &j in &junk {
        m.vfree(j);
    }
    m.purge_vmap_area_lazy();
    let free_before = m.vmalloc_stats().free_areas;
    // n - 1 holes; the last junk area merged with the free tail.
    assert_eq!(free_before, n);
    for _ in 0..1000 {
        let t = m.vmalloc(PAGE_SIZE).unwrap();
        // The hole left by the first junk area: a full fit, the tree keeps its shape.
        assert_eq!(t, junk[0]);
        fill(t, 1, 1);
        m.vfree(t);
        m.purge_vmap_area_lazy();
        assert_eq!(m.vmalloc_stats().free_areas, free_before);
    }
    for k in keep {
        m.vfree(k);
    }
    m.purge_vmap_area_lazy();
    assert_eq!(m.vmalloc_stats().free_areas, 1);
    clean(&m);
}

/// long_busy_list_alloc_test: many busy one-page areas, then allocations past them.
#[test]
fn long_busy_list_alloc() {
    let m = x86();
    let busy: Vec<_> = (0..3000).map(|_| m.vmalloc(PAGE_SIZE).unwrap()).collect();
    assert_eq!(m.vmalloc_stats().busy_areas, 3000);
    for _ in 0..1000 {
        let v = m.vmalloc(PAGE_SIZE).unwrap();
        assert!(m.kva_to_model(v) >= VSTART + 3000 * 2 * PAGE_SIZE as u64);
        fill(v, 1, 0);
        m.vfree(v);
    }
    for v in busy {
        m.vfree(v);
    }
    clean(&m);
}

/// pcpu_alloc_test-like: many small allocations with random sizes (up to a quarter page) and
/// alignments (up to 2 KiB, i.e. page alignment for vmalloc), freed in random order.
#[test]
fn pcpu_alloc_like() {
    let m = x86();
    let mut r = rng(3);
    let mut v: Vec<(VirtAddr, usize)> = (0..2000)
        .map(|_| {
            let size = r.gen_range(1..=PAGE_SIZE / 4);
            let align = 1usize << r.gen_range(1..=11);
            let p = m.__vmalloc_node(size, align, GfpFlags::GFP_KERNEL).unwrap();
            fill(p, size, 0x77);
            (p, size)
        })
        .collect();
    for i in (1..v.len()).rev() {
        v.swap(i, r.gen_range(0..=i));
    }
    for (p, size) in v {
        assert_eq!(read(p, size - 1), 0x77);
        m.vfree(p);
    }
    clean(&m);
}

#[test]
fn lowest_address_placement_and_merge_on_free() {
    let m = x86();
    m.set_lazy_max_pages(Some(0)); // every free purges at once
    let a = m.vmalloc(PAGE_SIZE).unwrap();
    let b = m.vmalloc(4 * PAGE_SIZE).unwrap();
    let c = m.vmalloc(PAGE_SIZE).unwrap();
    assert_eq!(m.kva_to_model(a), VSTART);
    assert_eq!(m.kva_to_model(b), VSTART + 2 * 4096);
    assert_eq!(m.kva_to_model(c), VSTART + 7 * 4096);
    assert_eq!(m.vmalloc_stats().free_areas, 1);
    m.vfree(b);
    // A hole of 5 pages and the tail.
    assert_eq!(m.vmalloc_stats().free_areas, 2);
    // Two pages (+ guard) go to the lowest hole, not after `c`.
    let d = m.vmalloc(2 * PAGE_SIZE).unwrap();
    assert_eq!(d, b);
    m.vfree(d);
    m.vfree(a); // merges with the hole below `c`
    assert_eq!(m.vmalloc_stats().free_areas, 2);
    m.vfree(c); // merges hole, itself and the tail
    assert_eq!(m.vmalloc_stats().free_areas, 1);
    assert_eq!(m.vmalloc_stats().busy_areas, 0);
    clean(&m);
}

#[test]
fn lazy_purge_threshold_and_tlb() {
    for (cpus, want) in [(1, 8192), (2, 16384), (3, 16384), (4, 24576), (8, 32768)] {
        let m = boot(Arch::X86_64, 64 << 20, cpus);
        assert_eq!(m.lazy_max_pages(), want, "{cpus} CPUs");
    }
    let m = x86();
    assert_eq!(m.lazy_max_pages(), 16384);
    // 1 MiB areas are 257 pages with the guard: 63 of them stay below the threshold.
    let v: Vec<_> = (0..64).map(|_| m.vmalloc(1 << 20).unwrap()).collect();
    // Put the first area's translation in the TLB.
    let first = m.kva_to_model(v[0]);
    assert_eq!(m.translate(first).unwrap().tlb, TlbOutcome::Miss);
    assert_eq!(m.translate(first).unwrap().tlb, TlbOutcome::Hit);
    for (i, &p) in v.iter().enumerate().take(63) {
        m.vfree(p);
        assert_eq!(m.vmalloc_stats().lazy_pages, (i + 1) * 257);
    }
    let s = m.vmalloc_stats();
    assert_eq!((s.purges, s.lazy_areas), (0, 63));
    // Unmapped but not flushed: the TLB still answers with the old page.
    let t = m.translate(first).unwrap();
    assert!(matches!(t.tlb, TlbOutcome::Stale(_)), "{t}");
    assert!(t.to_string().contains("STALE"));
    let flushes = m.tlb_stats().flush_all;
    m.vfree(v[63]); // 64 × 257 = 16448 > 16384: one purge, one flush over the union
    let s = m.vmalloc_stats();
    assert_eq!(
        (s.purges, s.lazy_areas, s.lazy_pages, s.free_areas),
        (1, 0, 0, 1)
    );
    assert_eq!(m.tlb_stats().flush_all, flushes + 1);
    assert_eq!(m.translate(first).unwrap().tlb, TlbOutcome::Miss);
    clean(&m);
}

#[test]
fn vmallocinfo_format() {
    let m = x86();
    let a = m.vmalloc(40000).unwrap();
    let z = m.vzalloc(PAGE_SIZE).unwrap();
    let u = m.vmalloc_user(2 * PAGE_SIZE).unwrap();
    let pages: Vec<PagePtr> = (0..2)
        .map(|_| m.alloc_page(GfpFlags::GFP_KERNEL).unwrap())
        .collect();
    let vm = m.vmap(&pages, 0, PteFlags::PAGE_KERNEL).unwrap();
    let ram = m.vm_map_ram(&pages).unwrap();
    let io = m.get_vm_area(3 * PAGE_SIZE, VM_IOREMAP).unwrap();
    let gone = m.vmalloc(PAGE_SIZE).unwrap();
    m.vfree(gone);
    let info = proc(&m, "vmallocinfo");
    let lines: Vec<&str> = info.lines().collect();
    assert_eq!(lines.len(), 7, "{info}");
    let file = "vmalloc.rs:";
    assert!(lines[0].starts_with("0xffffc90000000000-0xffffc9000000b000   45056 "));
    assert!(lines[0].contains(file) && lines[0].ends_with(" pages=10 vmalloc N0=10"));
    assert!(lines[1].starts_with("0xffffc9000000b000-0xffffc9000000d000    8192 "));
    assert!(lines[1].ends_with(" pages=1 vmalloc N0=1"), "{}", lines[1]);
    assert!(lines[2].ends_with("   12288 ") || lines[2].ends_with(" pages=2 vmalloc user N0=2"));
    assert!(
        lines[3].contains("   12288 ") && lines[3].ends_with(" vmap"),
        "{}",
        lines[3]
    );
    assert!(!lines[3].contains("pages="));
    assert!(lines[4].ends_with("    8192 vm_map_ram"), "{}", lines[4]);
    assert!(
        lines[5].contains("   16384 ") && lines[5].ends_with(" ioremap"),
        "{}",
        lines[5]
    );
    assert!(
        lines[6].ends_with("    8192 unpurged vm_area"),
        "{}",
        lines[6]
    );
    // Addresses ascend.
    let starts: Vec<u64> = lines[..6]
        .iter()
        .map(|l| u64::from_str_radix(&l[2..18], 16).unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]));
    m.vfree(a);
    m.vfree(z);
    m.vfree(u);
    m.vunmap(vm);
    m.vm_unmap_ram(ram, 2);
    m.free_vm_area(io);
    for p in pages {
        m.__free_page(p);
    }
    clean(&m);
}

#[test]
fn vmap_shows_the_same_pages() {
    let m = x86();
    let pages: Vec<PagePtr> = (0..3)
        .map(|_| m.alloc_page(GfpFlags::GFP_KERNEL).unwrap())
        .collect();
    for (i, &p) in pages.iter().enumerate() {
        fill(m.page_address(p).unwrap(), PAGE_SIZE, i as u8 + 1);
    }
    let v = m.vmap(&pages, 0, PteFlags::PAGE_KERNEL).unwrap();
    for (i, &p) in pages.iter().enumerate() {
        assert_eq!(read(v, i * PAGE_SIZE + 17), i as u8 + 1);
        assert_eq!(m.vmalloc_to_page(v + (i * PAGE_SIZE) as u64), Some(p));
    }
    fill(v + 4096, 1, 0xee);
    assert_eq!(read(m.page_address(pages[1]).unwrap(), 0), 0xee);
    assert!(kmem_hosted::probe_read((v + 3 * 4096).as_ptr()).is_err());
    m.vunmap(v);
    for p in pages {
        m.__free_page(p);
    }
    clean(&m);
}

#[test]
fn no_guard_areas_touch() {
    let m = x86();
    let a = m
        .__get_vm_area(
            PAGE_SIZE,
            PAGE_SIZE,
            VM_NO_GUARD,
            VSTART,
            VSTART + (1 << 30),
        )
        .unwrap();
    let b = m.get_vm_area(PAGE_SIZE, VM_NO_GUARD).unwrap();
    assert_eq!(b.as_usize() - a.as_usize(), PAGE_SIZE);
    m.free_vm_area(a);
    m.free_vm_area(b);
    clean(&m);
}

#[test]
fn vrealloc_and_zeroing() {
    let m = x86();
    let v = m.vmalloc(3 * PAGE_SIZE).unwrap();
    fill(v, 3 * PAGE_SIZE, 0xff);
    let same = m.vrealloc(v, 2 * PAGE_SIZE, GfpFlags::GFP_KERNEL).unwrap();
    assert_eq!(same, v);
    let same = m.vrealloc(v, 3 * PAGE_SIZE, GfpFlags::GFP_KERNEL).unwrap();
    assert_eq!(same, v);
    let big = m.vrealloc(v, 10 * PAGE_SIZE, GfpFlags::GFP_KERNEL).unwrap();
    assert_ne!(big, v);
    assert_eq!(read(big, 3 * PAGE_SIZE - 1), 0xff);
    assert!(m.find_vm_area(v).is_none());
    assert!(m.vrealloc(big, 0, GfpFlags::GFP_KERNEL).is_none());
    m.purge_vmap_area_lazy();
    let z = m.vzalloc(10 * PAGE_SIZE).unwrap();
    assert!((0..10 * PAGE_SIZE).all(|i| read(z, i) == 0));
    m.vfree(z);
    clean(&m);
}

#[test]
fn misuse_is_reported() {
    let m = x86();
    m.vfree(VirtAddr::new(0));
    assert_eq!(m.warn_count(), 0);
    let v = m.vmalloc(2 * PAGE_SIZE).unwrap();
    m.vfree(v + 4096);
    assert_eq!(m.warn_count(), 1);
    m.vfree(v + 1);
    assert_eq!(m.warn_count(), 2);
    m.vfree(v);
    m.vfree(v); // double free
    assert_eq!(m.warn_count(), 3);
    assert!(m
        .platform()
        .captured()
        .contains("Trying to vfree() nonexistent vm area"));
    assert!(m.vmalloc(0).is_none());
    assert_eq!(m.warn_count(), 4);
    // More than RAM.
    assert!(m.vmalloc(1 << 30).is_none());
    assert!(m.platform().captured().contains("exceeds total pages"));
    m.check_vmalloc().unwrap();
    // Still works.
    let v = m.vmalloc(PAGE_SIZE).unwrap();
    m.vfree(v);
    assert_eq!(m.bug_count(), 0);
}

#[test]
fn kvmalloc_fallback_rules() {
    let m = x86();
    let small = m.kvmalloc(100, GfpFlags::GFP_KERNEL).unwrap();
    assert!(!m.is_vmalloc_addr(small));
    let big = m.kvmalloc(8 << 20, GfpFlags::GFP_KERNEL).unwrap();
    assert!(m.is_vmalloc_addr(big), "beyond kmalloc's largest order");
    fill(big, 8 << 20, 3);
    // Non-blocking: no vmalloc fallback.
    assert!(m.kvmalloc(8 << 20, GfpFlags::GFP_ATOMIC).is_none());
    assert!(m.kvmalloc(8 << 20, GfpFlags::GFP_NOWAIT).is_none());
    // Over INT_MAX: refused with a warning (unless NOWARN).
    let w = m.warn_count();
    assert!(m.kvmalloc(1 << 31, GfpFlags::GFP_KERNEL).is_none());
    assert_eq!(m.warn_count(), w + 1);
    assert!(m
        .kvmalloc(1 << 31, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN)
        .is_none());
    assert_eq!(m.warn_count(), w + 1);
    let z = m.kvzalloc(16 << 20, GfpFlags::GFP_KERNEL).unwrap();
    assert!(read(z, (16 << 20) - 1) == 0);
    // kvrealloc across the boundary keeps the contents.
    fill(small, 100, 9);
    let grown = m.kvrealloc(small, 6 << 20, GfpFlags::GFP_KERNEL).unwrap();
    assert!(m.is_vmalloc_addr(grown));
    assert_eq!(read(grown, 99), 9);
    m.kvfree(grown);
    m.kvfree(big);
    m.kvfree(z);
    m.kvfree(VirtAddr::new(0));
    m.check_vmalloc().unwrap();
    assert_eq!(m.bug_count(), 0);
}

/// Writing through the direct map and reading through the vmalloc pointer shows that the
/// host maps each vmalloc page to exactly the frame the software page walk finds.
#[test]
fn page_walk_equals_host_mapping() {
    for arch in [Arch::X86_64, Arch::I386] {
        let m = boot(arch, 2 << 30, 2);
        let n = 64;
        let v = m.vmalloc(n * PAGE_SIZE).unwrap();
        let model = m.kva_to_model(v);
        for i in 0..n {
            let t = m.translate(model + (i * PAGE_SIZE) as u64).unwrap();
            let phys = t.walk.result.unwrap().phys;
            // SAFETY: the frame belongs to our vmalloc area.
            unsafe { m.phys_to_real(phys).add(5).write_volatile(i as u8 ^ 0x3c) };
        }
        for i in 0..n {
            assert_eq!(
                read(v, i * PAGE_SIZE + 5),
                i as u8 ^ 0x3c,
                "{arch} page {i}"
            );
        }
        if arch == Arch::I386 {
            // vmalloc pages may be HighMem on i386.
            let high = (0..n)
                .filter(|&i| {
                    let p = m.vmalloc_to_page(v + (i * PAGE_SIZE) as u64).unwrap();
                    m.page_ref(p).unwrap().zone_type() == ZoneType::HighMem
                })
                .count();
            assert_eq!(high, n);
        }
        m.vfree(v);
        clean(&m);
    }
}

#[test]
fn direct_map_uses_huge_pages() {
    let m = x86();
    let t = m.translate(0xffff_8880_0040_1234).unwrap();
    let r = t.walk.result.unwrap();
    assert_eq!(r.size, kmem::pgtable::PageSize::Huge);
    assert_eq!(r.phys.as_u64(), 0x40_1234);
    assert_eq!(t.walk.steps().len(), 3);
    assert_eq!(t.area, "direct map");
    let i = boot(Arch::I386, 2 << 30, 2);
    let t = i.translate(0xc080_0010).unwrap();
    assert_eq!(t.walk.steps().len(), 1);
    assert_eq!(t.walk.result.unwrap().phys.as_u64(), 0x80_0010);
    // Page tables are counted in /proc/meminfo.
    assert!(proc(&m, "meminfo")
        .lines()
        .any(|l| l.starts_with("PageTables:") && !l.contains(" 0 kB")));
}

#[test]
fn i386_layout_and_highmem_kmap() {
    let m = boot(Arch::I386, 2 << 30, 2);
    let mut s = String::new();
    m.show_layout(&mut s).unwrap();
    assert!(
        s.contains("      lowmem : 0xc0000000 - 0xf8000000   ( 896 MB)"),
        "{s}"
    );
    assert!(
        s.contains("     vmalloc : 0xf8800000 - 0xff3fe000   ( 107 MB)"),
        "{s}"
    );
    assert!(s.contains("pkmap : 0xff400000 - 0xff800000"), "{s}");
    let page = m
        .alloc_page(GfpFlags::GFP_HIGHUSER | GfpFlags::__GFP_ZERO)
        .unwrap();
    assert_eq!(m.page_ref(page).unwrap().zone_type(), ZoneType::HighMem);
    assert!(m.page_address(page).is_none());
    // Write through kmap…
    let k = m.kmap(page).unwrap();
    let km = m.kva_to_model(k);
    assert!((0xff40_0000..0xff80_0000).contains(&km), "{km:#x}");
    fill(k, PAGE_SIZE, 0x42);
    assert_eq!(m.translate(km).unwrap().area, "pkmap");
    // …a second kmap finds the same slot and raises its count…
    assert_eq!(m.kmap(page).unwrap(), k);
    let nr = ((km - 0xff40_0000) / 4096) as usize;
    assert_eq!(m.pkmap_count(nr), 3);
    m.kunmap(page);
    m.kunmap(page);
    assert_eq!(
        m.pkmap_count(nr),
        1,
        "mapped but unused until the next flush"
    );
    // …read back through kmap_local (another mapping) and the memfd.
    let l = m.kmap_local_page(page).unwrap();
    assert_ne!(l, k);
    assert!(m.kva_to_model(l) >= 0xffc0_0000);
    assert_eq!(m.translate(m.kva_to_model(l)).unwrap().area, "fixmap");
    assert_eq!(read(l, 4095), 0x42);
    m.kunmap_local(l);
    // SAFETY: the page is ours.
    let direct = unsafe { m.phys_to_real(m.page_to_pfn(page).phys()).read() };
    assert_eq!(direct, 0x42);
    // kmap_atomic too.
    let a = m.kmap_atomic(page).unwrap();
    assert_eq!(read(a, 7), 0x42);
    m.kunmap_atomic(a);
    // Lowmem pages pass through page_address.
    let low = m.alloc_page(GfpFlags::GFP_KERNEL).unwrap();
    assert_eq!(m.kmap(low), m.page_address(low));
    assert_eq!(m.kmap_local_page(low), m.page_address(low));
    assert_eq!(m.kmap_local_depth(), 0);
    m.kunmap_local(m.page_address(low).unwrap());
    m.kunmap(low);
    m.__free_page(low);
    m.__free_page(page);
    clean(&m);
}

#[test]
fn kmap_local_must_nest() {
    let m = boot(Arch::I386, 2 << 30, 2);
    let p1 = m.alloc_page(GfpFlags::GFP_HIGHUSER).unwrap();
    let p2 = m.alloc_page(GfpFlags::GFP_HIGHUSER).unwrap();
    let a = m.kmap_local_page(p1).unwrap();
    let b = m.kmap_local_page(p2).unwrap();
    assert_eq!(m.kmap_local_depth(), 2);
    fill(a, 1, 1);
    fill(b, 1, 2);
    // Out of order: reported, nothing unmapped.
    m.kunmap_local(a);
    assert_eq!(m.warn_count(), 1);
    assert!(m.platform().captured().contains("mappings must nest"));
    assert_eq!(m.kmap_local_depth(), 2);
    assert_eq!(read(a, 0), 1);
    m.kunmap_local(b + 100); // any address inside the page
    m.kunmap_local(a);
    assert_eq!(m.kmap_local_depth(), 0);
    // The slot's page is gone from the host mapping too.
    assert!(kmem_hosted::probe_read(a.as_ptr()).is_err());
    // At most KM_MAX_IDX deep.
    let v: Vec<_> = (0..16).map(|_| m.kmap_local_page(p1).unwrap()).collect();
    assert!(m.kmap_local_page(p1).is_none());
    for x in v.into_iter().rev() {
        m.kunmap_local(x);
    }
    assert_eq!(m.kmap_local_depth(), 0);
    m.__free_page(p1);
    m.__free_page(p2);
    assert_eq!(m.bug_count(), 0);
}

#[test]
fn pkmap_wraps_and_flushes() {
    let m = boot(Arch::I386, 2 << 30, 2);
    let pages: Vec<_> = (0..1100)
        .map(|_| m.alloc_page(GfpFlags::GFP_HIGHUSER).unwrap())
        .collect();
    for &p in &pages {
        let k = m.kmap(p).unwrap();
        fill(k, 1, 0x11);
        m.kunmap(p);
    }
    // The scan starts at slot 1 and reaches slot 0 on the wrap, which flushed the unused
    // mappings once.
    let s = m.pkmap_stats();
    assert_eq!(s.flushes, 1);
    assert_eq!(s.in_use, 0);
    // All slots busy: kmap cannot sleep here, it reports.
    let held: Vec<_> = pages[..1024].iter().map(|&p| m.kmap(p).unwrap()).collect();
    assert_eq!(held.len(), 1024);
    assert!(m.kmap(pages[1050]).is_none());
    assert_eq!(m.warn_count(), 1);
    for &p in &pages[..1024] {
        m.kunmap(p);
    }
    for p in pages {
        m.__free_page(p);
    }
    assert_eq!(m.bug_count(), 0);
}

/// A write one byte past a vmalloc area hits the unmapped guard page: the child process
/// dies of SIGSEGV (the parent re-runs this test binary with an environment variable).
#[test]
fn guard_page_write_faults_in_child() {
    if std::env::var_os("KMEM_VMALLOC_GUARD_CHILD").is_some() {
        let m = x86();
        let v = m.vmalloc(40000).unwrap();
        fill(v, 40960, 0x5a); // the whole last page is fine
        eprintln!("child: writing to the guard page");
        // SAFETY: deliberately not safe: this must fault.
        unsafe { (v + 40960).as_ptr::<u8>().write_volatile(1) };
        std::process::exit(0); // not reached
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "guard_page_write_faults_in_child", "--nocapture"])
        .env("KMEM_VMALLOC_GUARD_CHILD", "1")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc_sigsegv()),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("child: writing to the guard page"));
}

fn libc_sigsegv() -> i32 {
    11
}

#[test]
fn threads_vmalloc_concurrently() {
    let m = std::sync::Arc::new(x86());
    let hs: Vec<_> = (0..4)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                let mut r = rng(t);
                for _ in 0..300 {
                    let n = r.gen_range(1..=8) * PAGE_SIZE;
                    let v = m.vmalloc(n).unwrap();
                    fill(v, n, t as u8);
                    assert_eq!(read(v, n - 1), t as u8);
                    m.vfree(v);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    m.purge_vmap_area_lazy();
    assert_eq!(m.vmalloc_stats().free_areas, 1);
    clean(&m);
}

mod model {
    //! The area allocator against a BTreeMap of busy ranges: with page alignment the
    //! allocator must return exactly the lowest gap that fits.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Alloc(usize, bool),
        AllocAligned(usize, u32),
        Free(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1usize..40, any::<bool>()).prop_map(|(n, g)| Op::Alloc(n, g)),
            1 => (1usize..8, 13u32..22).prop_map(|(n, s)| Op::AllocAligned(n, s)),
            3 => any::<usize>().prop_map(Op::Free),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn area_allocator_matches_model(ops in proptest::collection::vec(op(), 1..150)) {
            let m = boot(Arch::X86_64, 64 << 20, 2);
            m.set_lazy_max_pages(Some(0));
            let l = m.kernel_layout().unwrap();
            // A small range, so that it fills up sometimes.
            let (vs, ve) = (l.vmalloc_start, l.vmalloc_start + 256 * 4096);
            let mut busy: BTreeMap<u64, u64> = BTreeMap::new();
            let mut live: Vec<VirtAddr> = Vec::new();
            for op in ops {
                match op {
                    Op::Alloc(pages, guard) => {
                        let total = (pages + usize::from(guard)) as u64 * 4096;
                        let mut expect = None;
                        let mut at = vs;
                        for (&s, &e) in busy.iter() {
                            if s - at >= total { break; }
                            at = e;
                        }
                        if at + total <= ve { expect = Some(at); }
                        let flags = if guard { 0 } else { VM_NO_GUARD };
                        let got = m.__get_vm_area(pages * PAGE_SIZE, PAGE_SIZE, flags, vs, ve);
                        prop_assert_eq!(got.map(|v| m.kva_to_model(v)), expect);
                        if let Some(v) = got {
                            let s = m.kva_to_model(v);
                            busy.insert(s, s + total);
                            live.push(v);
                        }
                    }
                    Op::AllocAligned(pages, shift) => {
                        let align = 1u64 << shift;
                        let got = m.__get_vm_area(pages * PAGE_SIZE, align as usize, 0, vs, ve);
                        if let Some(v) = got {
                            let s = m.kva_to_model(v);
                            let e = s + (pages as u64 + 1) * 4096;
                            prop_assert_eq!(s % align, 0);
                            prop_assert!(e <= ve);
                            let overlaps = busy.range(..e).next_back().is_some_and(|(_, &pe)| pe > s);
                            prop_assert!(!overlaps);
                            busy.insert(s, e);
                            live.push(v);
                        }
                    }
                    Op::Free(i) => {
                        if !live.is_empty() {
                            let v = live.swap_remove(i % live.len());
                            busy.remove(&m.kva_to_model(v));
                            m.free_vm_area(v);
                        }
                    }
                }
                prop_assert_eq!(m.check_vmalloc(), Ok(()));
            }
            prop_assert_eq!(m.warn_count(), 0);
        }
    }
}

#[test]
fn vmalloc_huge_uses_pmd_mappings() {
    let m = x86();
    let v = m.vmalloc_huge(3 << 20, GfpFlags::GFP_KERNEL).unwrap();
    let model = m.kva_to_model(v);
    assert_eq!(model % (2 << 20), 0);
    fill(v, 4 << 20, 0x6c); // rounded up to 4 MiB
    let t = m.translate(model + (2 << 20) + 5).unwrap();
    assert_eq!(t.walk.steps().len(), 3);
    let r = t.walk.result.unwrap();
    assert_eq!(r.size, kmem::pgtable::PageSize::Huge);
    // SAFETY: inside the area.
    assert_eq!(unsafe { m.phys_to_real(r.phys).read() }, 0x6c);
    let info = m.find_vm_area(v).unwrap();
    assert_eq!(info.nr_pages, 1024);
    assert_eq!(info.size, (4 << 20) + PAGE_SIZE);
    // Every small page is found by vmalloc_to_page.
    let p0 = m.vmalloc_to_page(v).unwrap();
    let p9 = m.vmalloc_to_page(v + 9 * 4096).unwrap();
    assert_eq!(m.page_to_pfn(p9) - m.page_to_pfn(p0), 9);
    assert!(kmem_hosted::probe_read((v + (4 << 20)).as_ptr()).is_err());
    m.vfree(v);
    m.purge_vmap_area_lazy();
    assert!(m.translate(model).unwrap().walk.result.is_none());
    // Small requests are not affected.
    let s = m.vmalloc_huge(PAGE_SIZE, GfpFlags::GFP_KERNEL).unwrap();
    let t = m.translate(m.kva_to_model(s)).unwrap();
    assert_eq!(t.walk.steps().len(), 4);
    m.vfree(s);
    clean(&m);
}

/// Address space once mapped with 4 KiB pages keeps its (now empty) PTE tables; a huge
/// mapping there frees them (`pmd_free_pte_page`) instead of failing.
#[test]
fn huge_mapping_replaces_empty_pte_tables() {
    let m = boot(Arch::X86_64, 1 << 30, 2);
    m.set_lazy_max_pages(Some(0));
    for _ in 0..3 {
        let v = m.vmalloc(4 << 20).unwrap();
        m.vfree(v);
    }
    let tables = proc(&m, "meminfo");
    for _ in 0..20 {
        let v = m.vmalloc_huge(4 << 20, GfpFlags::GFP_KERNEL).unwrap();
        let t = m.translate(m.kva_to_model(v)).unwrap();
        assert_eq!(t.walk.result.unwrap().size, kmem::pgtable::PageSize::Huge);
        m.vfree(v);
    }
    assert_ne!(tables, proc(&m, "meminfo"), "PTE tables were freed");
    clean(&m);
}

/// The self-test the bare-metal kernel runs passes on hosted machines of both architectures.
#[test]
fn selftest_passes() {
    for arch in [Arch::X86_64, Arch::I386] {
        let m = boot(arch, 512 << 20, 2);
        m.vmalloc_selftest(true).unwrap();
        clean(&m);
    }
}

/// vmalloc_32: pages addressable with 32 bits (below 4 GiB on x86_64, lowmem on i386).
#[test]
fn vmalloc_32_pages_are_low() {
    for (arch, mem, limit) in [
        (Arch::X86_64, 6u64 << 30, 1u64 << 32),
        (Arch::I386, 3 << 30, 896 << 20),
    ] {
        let m = boot(arch, mem, 2);
        let v = m.vmalloc_32(64 * PAGE_SIZE).unwrap();
        for i in 0..64u64 {
            let pfn = m.vmalloc_to_pfn(v + i * 4096).unwrap();
            assert!(pfn.phys().as_u64() < limit, "{arch}: {pfn:?}");
        }
        fill(v, 64 * PAGE_SIZE, 1);
        m.vfree(v);
        clean(&m);
    }
}

// ------------------------------------------------------------ test_vmalloc.c, RCU and no-block

/// `struct test_kvfree_rcu { struct rcu_head rcu; unsigned char array[20]; }`: the head at 0.
const TEST_KVFREE_RCU_HEAD: usize = 0;

/// Loops of the kvfree_rcu cases (test_loop_count is 1000000 in Linux; each vmalloc here is
/// also a host mapping).
const KVFREE_RCU_LOOPS: usize = 3000;

/// Everything handed to kvfree_rcu was freed: no vmalloc area left (the page tables vmalloc
/// built stay, as in Linux, so free pages are not compared).
fn kvfree_rcu_done(m: &M) {
    m.kvfree_rcu_barrier();
    let st = m.kfree_rcu_stats();
    assert_eq!(st.queued, st.freed);
    assert_eq!(st.queued, KVFREE_RCU_LOOPS as u64);
    m.purge_vmap_area_lazy();
    let info = proc(m, "/proc/vmallocinfo");
    assert!(!info.contains("vmalloc"), "{info}");
    m.kfree_rcu_shrink_cache();
    clean(m);
}

/// test_vmalloc.c kvfree_rcu_1_arg_vmalloc_test: a page vmalloc'ed, written, and freed with
/// `kvfree_rcu_mightsleep`, many times.
#[test]
fn kvfree_rcu_1_arg_vmalloc() {
    let m = x86();
    for _ in 0..KVFREE_RCU_LOOPS {
        let p = m.vmalloc(PAGE_SIZE).unwrap();
        fill(VirtAddr::new(p.as_usize() + 16), 1, b'a');
        m.kvfree_rcu_mightsleep(p);
    }
    kvfree_rcu_done(&m);
}

/// test_vmalloc.c kvfree_rcu_2_arg_vmalloc_test: the same with `kvfree_rcu(p, rcu)`.
#[test]
fn kvfree_rcu_2_arg_vmalloc() {
    let m = x86();
    for _ in 0..KVFREE_RCU_LOOPS {
        let p = m.vmalloc(PAGE_SIZE).unwrap();
        fill(VirtAddr::new(p.as_usize() + 16), 1, b'a');
        // SAFETY: a live vmalloc block with its head at offset 0, freed once.
        unsafe { m.kvfree_rcu(p, TEST_KVFREE_RCU_HEAD) };
    }
    kvfree_rcu_done(&m);
}

/// kvfree_rcu of vmalloc memory waits for readers: the area stays until the grace period
/// (the reader is on another CPU: vmalloc's lookups may not run inside a read-side section,
/// which is a CPU section, under `vmap_area_lock`'s order).
#[test]
fn kvfree_rcu_waits_for_reader() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let m = x86();
    let p = m.vmalloc(PAGE_SIZE).unwrap();
    let (inside, go) = (AtomicBool::new(false), AtomicBool::new(false));
    std::thread::scope(|s| {
        s.spawn(|| {
            let _r = m.rcu_read_lock();
            inside.store(true, SeqCst);
            while !go.load(SeqCst) {
                std::thread::yield_now();
            }
        });
        while !inside.load(SeqCst) {
            std::thread::yield_now();
        }
        // SAFETY: a live vmalloc block with its head at offset 0, freed once.
        unsafe { m.kvfree_rcu(p, TEST_KVFREE_RCU_HEAD) };
        m.rcu_core();
        assert!(m.find_vm_area(p).is_some(), "freed under a reader");
        go.store(true, SeqCst);
    });
    m.kvfree_rcu_barrier();
    assert!(m.find_vm_area(p).is_none());
    clean(&m);
}

/// test_vmalloc.c fix_align_alloc_test: five pages aligned to `THREAD_ALIGN << 1` (32 KiB on
/// x86_64), zeroed, touched and freed, many times.
#[test]
fn fix_align_alloc() {
    const THREAD_ALIGN: usize = 16 << 10;
    let m = x86();
    for _ in 0..2000 {
        let p = m
            .__vmalloc_node(
                5 * PAGE_SIZE,
                THREAD_ALIGN << 1,
                GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO,
            )
            .unwrap();
        assert_eq!(m.kva_to_model(p) % (THREAD_ALIGN << 1) as u64, 0);
        assert_eq!(read(p, 5 * PAGE_SIZE - 1), 0);
        fill(p, 1, 0);
        m.vfree(p);
    }
    clean(&m);
}

/// test_vmalloc.c no_block_alloc_test: one page with `GFP_NOWAIT` or `GFP_ATOMIC` at random,
/// under a spinlock of the test's own (a `Mutex` here; not a kmem lock, so no CPU section is
/// held across the call), touched and freed.
#[test]
fn no_block_alloc() {
    let m = x86();
    let lock = std::sync::Mutex::new(());
    let mut r = rng(11);
    for _ in 0..2000 {
        let gfp = if r.gen_u8() % 2 == 1 {
            GfpFlags::GFP_NOWAIT
        } else {
            GfpFlags::GFP_ATOMIC
        };
        let p = {
            let _g = lock.lock().unwrap();
            m.__vmalloc(PAGE_SIZE, gfp)
        }
        .expect("a non-blocking vmalloc of one page failed");
        fill(p, 1, 0);
        m.vfree(p);
    }
    clean(&m);
}
