//! Physical memory: the memfd direct map, growth, hole punching, windows and probes.

use kmem::platform::Platform;
use kmem::PhysAddr;
use kmem_hosted::{probe_read, probe_write, HostedConfig, HostedPlatform, ProbeError};
use proptest::prelude::*;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const PAGE: usize = 4096;

fn platform(size: u64, max: u64) -> HostedPlatform {
    let mut c = HostedConfig::deterministic(size, 3);
    c.max_phys_size = max;
    HostedPlatform::new(c).unwrap()
}

/// The byte at physical `phys` through the direct map.
fn peek(p: &HostedPlatform, phys: u64) -> u8 {
    assert!(phys < p.phys_end().as_u64());
    // SAFETY: `phys` is below phys_end, so the direct map covers it.
    unsafe { p.direct_map_base().add(phys as usize).read_volatile() }
}

fn poke(p: &HostedPlatform, phys: u64, v: u8) {
    assert!(phys < p.phys_end().as_u64());
    // SAFETY: `phys` is below phys_end (asserted), so the direct map covers the byte, and no Rust
    // reference into the direct map is live while we write it.
    unsafe { p.direct_map_base().add(phys as usize).write_volatile(v) }
}

/// Reads `len` bytes of the memfd at `off` with pread, bypassing every mapping.
fn pread(p: &HostedPlatform, off: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    // SAFETY: `buf` is valid for `len` bytes of writes.
    let n = unsafe { libc::pread(p.memfd(), buf.as_mut_ptr().cast(), len, off as libc::off_t) };
    assert_eq!(n, len as isize);
    buf
}

#[test]
fn direct_map_is_the_memfd() {
    let p = platform(16 * MIB, 0);
    assert_eq!(p.phys_end(), PhysAddr::new(16 * MIB));
    assert_eq!(
        p.direct_map_base() as usize % kmem_hosted::DIRECT_MAP_ALIGN,
        0
    );
    for (i, phys) in [0, 4095, 4096, 5 * MIB + 17, 16 * MIB - 1]
        .into_iter()
        .enumerate()
    {
        poke(&p, phys, 0xa0 + i as u8);
    }
    for (i, phys) in [0, 4095, 4096, 5 * MIB + 17, 16 * MIB - 1]
        .into_iter()
        .enumerate()
    {
        assert_eq!(peek(&p, phys), 0xa0 + i as u8);
        assert_eq!(pread(&p, phys, 1), [0xa0 + i as u8]);
    }
    // Untouched memory reads as zero.
    assert_eq!(peek(&p, 8 * MIB), 0);
}

#[test]
fn sparse_memory_with_a_hole_costs_only_touched_pages() {
    let p = platform(5 * GIB, 0);
    let before = p.resident_bytes().unwrap();
    poke(&p, 0, 1);
    poke(&p, 4 * GIB + 512 * MIB, 2);
    let after = p.resident_bytes().unwrap();
    assert_eq!(peek(&p, 4 * GIB + 512 * MIB), 2);
    // Two pages were touched out of 5 GiB (shmem may allocate a huge page for each).
    assert!(
        after - before <= 4 * MIB,
        "resident grew by {}",
        after - before
    );
}

#[test]
fn growth_maps_new_memory_in_place() {
    let p = platform(16 * MIB, 64 * MIB);
    let base = p.direct_map_base();
    poke(&p, 16 * MIB - 1, 0x11);
    // Beyond phys_end the reservation is PROT_NONE: a probe reports the fault.
    // SAFETY: pointer arithmetic inside the reservation.
    let beyond = unsafe { base.add(16 * MIB as usize) };
    assert_eq!(
        probe_read(beyond),
        Err(ProbeError::Fault {
            addr: beyond as usize
        })
    );
    p.grow_phys(PhysAddr::new(32 * MIB)).unwrap();
    assert_eq!(p.phys_end(), PhysAddr::new(32 * MIB));
    assert_eq!(p.direct_map_base(), base, "the direct map does not move");
    assert_eq!(peek(&p, 16 * MIB - 1), 0x11);
    assert_eq!(probe_read(beyond), Ok(0));
    poke(&p, 32 * MIB - 1, 0x22);
    assert_eq!(pread(&p, 32 * MIB - 1, 1), [0x22]);
    // Limits.
    assert!(p.grow_phys(PhysAddr::new(128 * MIB)).is_err());
    assert!(p.grow_phys(PhysAddr::new(16 * MIB)).is_err());
    assert!(p.grow_phys(PhysAddr::new(40 * MIB + 1)).is_err());
    p.grow_phys(p.max_phys()).unwrap();
    assert_eq!(p.phys_end(), PhysAddr::new(64 * MIB));
    poke(&p, 64 * MIB - 1, 0x33);
}

#[test]
fn concurrent_growth_and_access() {
    let p = platform(4 * MIB, 64 * MIB);
    std::thread::scope(|s| {
        s.spawn(|| {
            for end in (8..=64).step_by(4) {
                p.grow_phys(PhysAddr::new(end * MIB)).unwrap();
            }
        });
        s.spawn(|| {
            // Whatever phys_end says is mapped.
            for _ in 0..2_000 {
                let end = p.phys_end().as_u64();
                poke(&p, end - 1, 1);
                assert_eq!(peek(&p, end - 1), 1);
            }
        });
    });
    assert_eq!(p.phys_end(), PhysAddr::new(64 * MIB));
}

#[test]
fn punching_a_hole_gives_memory_back() {
    let p = platform(64 * MIB, 0);
    for off in (8 * MIB..16 * MIB).step_by(PAGE) {
        poke(&p, off, 0x5a);
    }
    let full = p.resident_bytes().unwrap();
    assert!(full >= 8 * MIB, "resident {full}");
    // SAFETY: no reference into the range exists; its contents are not needed.
    unsafe { p.punch_hole(PhysAddr::new(8 * MIB), 8 * MIB).unwrap() };
    let after = p.resident_bytes().unwrap();
    assert!(after + 8 * MIB <= full, "resident {full} -> {after}");
    assert_eq!(peek(&p, 8 * MIB), 0);
    assert_eq!(peek(&p, 16 * MIB - PAGE as u64), 0);
    // The range is still usable.
    poke(&p, 9 * MIB, 7);
    assert_eq!(peek(&p, 9 * MIB), 7);
    // Misaligned or out-of-range holes are refused.
    // SAFETY: these calls fail before touching memory.
    unsafe {
        assert!(p.punch_hole(PhysAddr::new(KIB), 4 * KIB).is_err());
        assert!(p.punch_hole(PhysAddr::new(60 * MIB), 8 * MIB).is_err());
    }
}

#[test]
fn window_mapping_aliases_the_direct_map() {
    let p = platform(16 * MIB, 0);
    let w = p.reserve_window(1 << 20).unwrap();
    // Physical pages 100 and 7 mapped at window pages 2 and 3 (not contiguous physically).
    let a = w
        .map_phys_at(2 * PAGE, PhysAddr::new(100 * PAGE as u64), PAGE, true)
        .unwrap();
    let b = w
        .map_phys_at(3 * PAGE, PhysAddr::new(7 * PAGE as u64), PAGE, true)
        .unwrap();
    assert_eq!(a as usize, w.base() as usize + 2 * PAGE);
    assert_eq!(b as usize, a as usize + PAGE);
    // SAFETY: both window pages are mapped read-write over the memfd.
    unsafe {
        a.add(5).write_volatile(0xab);
        b.write_volatile(0xcd);
    }
    assert_eq!(peek(&p, 100 * PAGE as u64 + 5), 0xab);
    assert_eq!(peek(&p, 7 * PAGE as u64), 0xcd);
    poke(&p, 7 * PAGE as u64 + 1, 0xef);
    // SAFETY: `b` is the window page mapped read-write over physical page 7 just above and still
    // mapped; `b + 1` is inside that page, and no reference into the window is live.
    assert_eq!(unsafe { b.add(1).read_volatile() }, 0xef);

    // Read-only mapping: reads see the page, writes fault.
    let r = w
        .map_phys_at(4 * PAGE, PhysAddr::new(7 * PAGE as u64), PAGE, false)
        .unwrap();
    assert_eq!(probe_read(r), Ok(0xcd));
    // SAFETY: the page is read-only, so the write cannot happen.
    let wr = unsafe { probe_write(r, 1) };
    assert_eq!(wr, Err(ProbeError::Fault { addr: r as usize }));

    // Unmapped window pages fault; the window stays reserved.
    w.unmap_at(2 * PAGE, 2 * PAGE).unwrap();
    assert!(matches!(probe_read(a), Err(ProbeError::Fault { .. })));
    assert!(matches!(probe_read(b), Err(ProbeError::Fault { .. })));
    assert_eq!(
        peek(&p, 100 * PAGE as u64 + 5),
        0xab,
        "unmapping keeps the page"
    );

    // The window outlives the platform; its mappings stay valid.
    drop(p);
    assert_eq!(probe_read(r), Ok(0xcd));
}

#[test]
fn window_cannot_map_beyond_phys_end_until_growth() {
    let p = platform(MIB, 4 * MIB);
    let w = p.reserve_window(16 * PAGE).unwrap();
    assert!(w.map_phys_at(0, PhysAddr::new(MIB), PAGE, true).is_err());
    p.grow_phys(PhysAddr::new(2 * MIB)).unwrap();
    let a = w.map_phys_at(0, PhysAddr::new(MIB), PAGE, true).unwrap();
    poke(&p, MIB, 9);
    assert_eq!(probe_read(a), Ok(9));
}

#[test]
fn probe_reports_prot_none() {
    // SAFETY: a fresh anonymous PROT_NONE mapping, ours alone.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    let ptr = page.cast::<u8>();
    assert_eq!(
        probe_read(ptr),
        Err(ProbeError::Fault { addr: ptr as usize })
    );
    // SAFETY: the page is PROT_NONE, so the write cannot happen.
    let r = unsafe { probe_write(ptr.wrapping_add(10), 1) };
    assert_eq!(
        r,
        Err(ProbeError::Fault {
            addr: ptr as usize + 10
        })
    );
    // SAFETY: the page is ours; unmapping it is fine.
    unsafe { libc::munmap(page, PAGE) };
}

#[test]
fn probe_straddling_into_a_bad_page_reports_its_first_byte() {
    // SAFETY: a fresh anonymous read-write mapping of two pages, ours alone.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            2 * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED);
    let first = map.cast::<u8>();
    let second = first.wrapping_add(PAGE);
    // SAFETY: the mapping is ours; the first page is writable, then the second is protected.
    unsafe {
        first
            .add(PAGE - 4)
            .copy_from_nonoverlapping([1u8, 2, 3, 4].as_ptr(), 4);
        assert_eq!(libc::mprotect(second.cast(), PAGE, libc::PROT_NONE), 0);
    }
    let mut buf = [0u8; 8];
    let r = kmem_hosted::probe_read_bytes(first.wrapping_add(PAGE - 4), &mut buf);
    assert_eq!(
        r,
        Err(ProbeError::Fault {
            addr: second as usize
        })
    );
    assert_eq!(buf[..4], [1, 2, 3, 4]);
    // SAFETY: writes only to our mapping's first page before faulting on the second.
    let w = unsafe { kmem_hosted::probe_write_bytes(first.wrapping_add(PAGE - 2), &[9, 9, 9]) };
    assert_eq!(
        w,
        Err(ProbeError::Fault {
            addr: second as usize
        })
    );
    assert_eq!(kmem_hosted::probe_read(first.wrapping_add(PAGE - 1)), Ok(9));
    // SAFETY: the mapping is ours.
    unsafe { libc::munmap(map, 2 * PAGE) };
}

#[test]
fn two_platforms_are_independent() {
    let a = platform(MIB, 0);
    let b = platform(MIB, 0);
    poke(&a, 100, 1);
    poke(&b, 100, 2);
    assert_eq!(peek(&a, 100), 1);
    assert_eq!(peek(&b, 100), 2);
    assert_ne!(a.direct_map_base(), b.direct_map_base());
}

/// One window operation of the model test.
#[derive(Clone, Debug)]
enum Op {
    Map {
        win: usize,
        phys: usize,
        n: usize,
        writable: bool,
    },
    Unmap {
        win: usize,
        n: usize,
    },
    WritePhys {
        phys: usize,
        val: u8,
    },
    WriteWin {
        win: usize,
        val: u8,
    },
}

const WIN_PAGES: usize = 12;
const PHYS_PAGES: usize = 10;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..WIN_PAGES, 0..PHYS_PAGES, 1..4usize, any::<bool>()).prop_map(
            |(win, phys, n, writable)| Op::Map {
                win,
                phys,
                n,
                writable
            }
        ),
        (0..WIN_PAGES, 1..4usize).prop_map(|(win, n)| Op::Unmap { win, n }),
        (0..PHYS_PAGES, any::<u8>()).prop_map(|(phys, val)| Op::WritePhys { phys, val }),
        (0..WIN_PAGES, any::<u8>()).prop_map(|(win, val)| Op::WriteWin { win, val }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Windows against a model: each window page maps some physical page (read-only or
    /// writable) or nothing; reads through the window equal the model's physical bytes,
    /// unmapped pages fault, writes to read-only pages fault and change nothing.
    #[test]
    fn windows_match_a_page_table_model(ops in proptest::collection::vec(op(), 1..40)) {
        let p = platform(PHYS_PAGES as u64 * PAGE as u64, 0);
        let w = p.reserve_window(WIN_PAGES * PAGE).unwrap();
        let mut table: [Option<(usize, bool)>; WIN_PAGES] = [None; WIN_PAGES];
        let mut mem = [0u8; PHYS_PAGES];
        for op in ops {
            match op {
                Op::Map { win, phys, n, writable } => {
                    let ok = win + n <= WIN_PAGES && phys + n <= PHYS_PAGES;
                    let r = w.map_phys_at(
                        win * PAGE,
                        PhysAddr::new((phys * PAGE) as u64),
                        n * PAGE,
                        writable,
                    );
                    prop_assert_eq!(r.is_ok(), ok);
                    if ok {
                        for i in 0..n {
                            table[win + i] = Some((phys + i, writable));
                        }
                    }
                }
                Op::Unmap { win, n } => {
                    let ok = win + n <= WIN_PAGES;
                    prop_assert_eq!(w.unmap_at(win * PAGE, n * PAGE).is_ok(), ok);
                    if ok {
                        table[win..win + n].fill(None);
                    }
                }
                Op::WritePhys { phys, val } => {
                    poke(&p, (phys * PAGE) as u64, val);
                    mem[phys] = val;
                }
                Op::WriteWin { win, val } => {
                    let addr = w.base().wrapping_add(win * PAGE);
                    // SAFETY: only window memory, which no reference points into.
                    let r = unsafe { probe_write(addr, val) };
                    match table[win] {
                        Some((phys, true)) => {
                            prop_assert!(r.is_ok());
                            mem[phys] = val;
                        }
                        _ => prop_assert!(r.is_err()),
                    }
                }
            }
            for (i, e) in table.iter().enumerate() {
                let got = probe_read(w.base().wrapping_add(i * PAGE));
                match e {
                    Some((phys, _)) => prop_assert_eq!(got, Ok(mem[*phys])),
                    None => {
                        let is_fault = matches!(got, Err(ProbeError::Fault { .. }));
                        prop_assert!(is_fault);
                    }
                }
            }
            for (phys, v) in mem.iter().enumerate() {
                prop_assert_eq!(peek(&p, (phys * PAGE) as u64), *v);
            }
        }
    }
}
