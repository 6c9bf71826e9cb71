//! Swap areas, slot counts, the swap cache and /proc/swaps on a hosted machine
//! (mm/swapfile.c, mm/swap_state.c semantics).

mod common;

use kmem::arch::Arch;
use kmem::errno::Errno;
use kmem::gfp::GfpFlags;
use kmem::mm::VmEvent;
use kmem::swap::entry::SwpEntry;
use kmem::swap::swapfile::{COUNT_CONTINUED, SWAP_HAS_CACHE, SWAP_MAP_BAD, SWAP_MAP_MAX};
use kmem::swap::{put_page, RamSwap, SwapState};
use kmem::vmalloc::VmLayer;
use kmem::{Order, PAGE_SIZE};
use kmem_hosted::{FileSwap, HostedPlatform};

type S = SwapState<HostedPlatform>;

fn ram(pages: u64) -> (Vec<u64>, RamSwap) {
    let mut mem = vec![0u64; pages as usize * PAGE_SIZE / 8];
    // SAFETY: the vector outlives the backend in every test (returned with it and kept
    // until after swapoff), and nothing else touches it.
    let r = unsafe { RamSwap::new(mem.as_mut_ptr().cast(), pages) };
    (mem, r)
}

fn proc_swaps(s: &S) -> String {
    let mut out = String::new();
    s.show_swaps(&mut out).unwrap();
    out
}

#[test]
fn swapon_shows_size_minus_header_and_automatic_priorities() {
    let m = common::boot(Arch::X86_64, 64 << 20, 1);
    let l: &VmLayer<_> = &m;
    let s = S::new();
    let (_m1, r1) = ram(257);
    let (_m2, r2) = ram(65);
    assert_eq!(s.swapon(l, "/swapfile", r1, None), Ok(0));
    assert_eq!(s.swapon(l, "/dev/ram0", r2, None), Ok(1));
    assert_eq!(
        proc_swaps(&s),
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
         /swapfile                               file\t\t1024\t\t0\t\t-2\n\
         /dev/ram0                               file\t\t256\t\t0\t\t-3\n"
    );
    let info = s.si_swapinfo();
    assert_eq!((info.total, info.free), (256 + 64, 256 + 64));
    let log = m.platform().take_captured();
    assert!(
        log.contains("Adding 1024k swap on /swapfile.  Priority:-2 extents:1 across:1024k"),
        "{log}"
    );
    // A second swapon of the same path is busy; tiny storage is refused.
    let (_m3, r3) = ram(8);
    assert_eq!(s.swapon(l, "/swapfile", r3, None), Err(Errno::EBUSY));
    let (_m4, r4) = ram(1);
    assert_eq!(s.swapon(l, "/tiny", r4, None), Err(Errno::EINVAL));
    // swapoff of the first moves the later automatic priority up (least_priority++).
    assert_eq!(s.swapoff(l, "/swapfile", &mut |_| Ok(())), Ok(()));
    assert!(proc_swaps(&s)
        .ends_with("/dev/ram0                               file\t\t256\t\t0\t\t-2\n"));
    assert_eq!(
        s.swapoff(l, "/swapfile", &mut |_| Ok(())),
        Err(Errno::EINVAL)
    );
    assert_eq!(s.swapoff(l, "/dev/ram0", &mut |_| Ok(())), Ok(()));
    assert_eq!(
        proc_swaps(&s),
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
    );
}

#[test]
fn slot_counts_follow_swap_map_rules() {
    let m = common::boot(Arch::X86_64, 64 << 20, 1);
    let l: &VmLayer<_> = &m;
    let s = S::new();
    let (_mem, r) = ram(17);
    s.swapon(l, "/s", r, Some(5)).unwrap();
    let e = s.get_swap_page(l).unwrap();
    assert_eq!(e.swp_type(), 0);
    assert_eq!(e.offset(), 1, "page 0 is the header");
    assert_eq!(s.swap_map_byte(SwpEntry::new(0, 0)), None);
    assert_eq!(s.swap_map_byte(e), Some(SWAP_HAS_CACHE));
    assert_eq!(s.nr_swap_pages(), 15);
    s.swap_duplicate(l, e).unwrap();
    s.swap_duplicate(l, e).unwrap();
    assert_eq!(s.swap_count(e), 2);
    // The cache bit goes; two PTEs still name the slot.
    assert_eq!(s.put_swap_folio(l, e), Some(2));
    assert_eq!(s.swap_free(l, e), Some(1));
    assert_eq!(s.swapcache_prepare(e), Ok(()));
    assert_eq!(s.swapcache_prepare(e), Err(Errno::EBUSY));
    assert_eq!(s.swap_free(l, e), Some(SWAP_HAS_CACHE));
    assert_eq!(s.nr_swap_pages(), 15);
    assert_eq!(s.put_swap_folio(l, e), Some(0));
    assert_eq!(s.nr_swap_pages(), 16);
    assert_eq!(s.swap_map_byte(e), Some(0));
    // A free slot is a bad entry to free again: reported, nothing changes.
    assert_eq!(s.swap_free(l, e), None);
    assert!(m
        .platform()
        .take_captured()
        .contains("swap_info_get: Bad swap offset entry"));
    assert_eq!(s.swap_duplicate(l, SwpEntry::new(9, 1)), Err(Errno::EINVAL));
    assert!(m
        .platform()
        .take_captured()
        .contains("swap_info_get: Bad swap file entry"));
    assert_ne!(SWAP_MAP_BAD, SWAP_HAS_CACHE | SWAP_MAP_MAX);
}

/// Counts past `SWAP_MAP_MAX` continue in continuation pages (mm/swapfile.c
/// `add_swap_count_continuation`, `swap_count_continued`): the map byte reads
/// `COUNT_CONTINUED | digit`, and going down borrows back, to the same bytes as Linux's.
#[test]
fn swap_counts_continue_past_swap_map_max() {
    let m = common::boot(Arch::X86_64, 64 << 20, 1);
    let l: &VmLayer<_> = &m;
    let s = S::new();
    let (_mem, r) = ram(17);
    s.swapon(l, "/s", r, None).unwrap();
    m.drain_local_pages();
    let free0 = m.nr_free_pages();
    let e = s.get_swap_page(l).unwrap();
    let other = s.get_swap_page(l).unwrap();
    s.swap_duplicate(l, other).unwrap();
    for _ in 0..SWAP_MAP_MAX {
        s.swap_duplicate(l, e).unwrap();
    }
    assert_eq!(s.swap_map_byte(e), Some(SWAP_HAS_CACHE | SWAP_MAP_MAX));
    // 63: the first continuation page holds 1, the map byte 0 with COUNT_CONTINUED.
    s.swap_duplicate(l, e).unwrap();
    assert_eq!(s.swap_count(e), 63);
    assert_eq!(s.swap_map_byte(e), Some(SWAP_HAS_CACHE | COUNT_CONTINUED));
    // The neighbour slot (same swap_map page) is untouched.
    assert_eq!(s.swap_count(other), 1);
    assert_eq!(s.swap_map_byte(other), Some(SWAP_HAS_CACHE | 1));
    // 63 × 128 + 5 needs a second continuation page.
    let big = 63 * 128 + 5;
    for _ in 63..big {
        s.swap_duplicate(l, e).unwrap();
    }
    assert_eq!(s.swap_count(e), big);
    assert_eq!(
        s.swap_map_byte(e),
        Some(SWAP_HAS_CACHE | COUNT_CONTINUED | 5)
    );
    // Two continuation pages are in use while the slot is.
    m.drain_local_pages();
    assert_eq!(free0 - m.nr_free_pages(), 2);
    // Down again: 62 reads SWAP_MAP_MAX without COUNT_CONTINUED.
    for _ in 62..big {
        assert!(s.swap_free(l, e).is_some());
    }
    assert_eq!(s.swap_map_byte(e), Some(SWAP_HAS_CACHE | SWAP_MAP_MAX));
    for n in (0..62).rev() {
        assert_eq!(s.swap_free(l, e), Some(SWAP_HAS_CACHE | n));
    }
    assert_eq!(s.put_swap_folio(l, e), Some(0));
    assert_eq!(s.swap_free(l, other), Some(SWAP_HAS_CACHE));
    assert_eq!(s.put_swap_folio(l, other), Some(0));
    assert_eq!(s.nr_swap_pages(), 16);
    // The continuation pages stay until swapoff (free_swap_count_continuations).
    s.swapoff(l, "/s", &mut |_| Ok(())).unwrap();
    m.synchronize_rcu();
    m.drain_local_pages();
    assert_eq!(m.nr_free_pages(), free0);
}

#[test]
fn allocation_fills_every_slot_then_fails_and_areas_go_by_priority() {
    let m = common::boot(Arch::X86_64, 64 << 20, 1);
    let l: &VmLayer<_> = &m;
    let s = S::new();
    let (_a, lo) = ram(600);
    let (_b, hi) = ram(10);
    s.swapon(l, "/lo", lo, Some(1)).unwrap();
    s.swapon(l, "/hi", hi, Some(10)).unwrap();
    let mut got = Vec::new();
    while let Some(e) = s.get_swap_page(l) {
        got.push(e);
    }
    assert_eq!(got.len(), 599 + 9);
    assert!(
        got[..9].iter().all(|e| e.swp_type() == 1),
        "higher priority first"
    );
    // Free clusters first (1 and 2, sequentially), then the header's cluster 0, as
    // cluster_alloc_swap_entry takes free_clusters before nonfull_clusters.
    let offs: Vec<u64> = got[9..].iter().map(|e| e.offset()).collect();
    assert_eq!(offs, (256..600).chain(1..256).collect::<Vec<_>>());
    assert_eq!(s.nr_swap_pages(), 0);
    assert!(s.vm_swap_full());
    // Free one slot in the middle of a full cluster: it is found again.
    s.put_swap_folio(l, got[300]);
    assert_eq!(s.get_swap_page(l), Some(got[300]));
    let mut out = String::new();
    s.show_swaps(&mut out).unwrap();
    assert!(
        out.contains("/lo                                     file\t\t2396\t\t2396\t\t1\n"),
        "{out}"
    );
    for e in got {
        s.put_swap_folio(l, e);
    }
    assert_eq!(s.si_swapinfo().free, 608);
    s.swapoff_all_unused(l);
}

#[test]
fn swapoff_refuses_while_unuse_fails_and_area_stays() {
    let m = common::boot(Arch::X86_64, 64 << 20, 1);
    let l: &VmLayer<_> = &m;
    let s = S::new();
    let (_a, r) = ram(9);
    s.swapon(l, "/s", r, None).unwrap();
    let e = s.get_swap_page(l).unwrap();
    assert_eq!(
        s.swapoff(l, "/s", &mut |_| Err(Errno::ENOMEM)),
        Err(Errno::ENOMEM)
    );
    // Unuse that "succeeds" but leaves the slot in use: EBUSY, the area stays usable.
    assert_eq!(s.swapoff(l, "/s", &mut |_| Ok(())), Err(Errno::EBUSY));
    assert_eq!(s.nr_swap_pages(), 7);
    assert!(s.get_swap_page(l).is_some());
    let mut ty = None;
    s.put_swap_folio(l, e);
    s.put_swap_folio(l, SwpEntry::new(0, 2));
    assert_eq!(
        s.swapoff(l, "/s", &mut |t| {
            ty = Some(t);
            Ok(())
        }),
        Ok(())
    );
    assert_eq!(ty, Some(0));
    assert!(!s.has_swap());
}

#[test]
fn swap_cache_write_out_and_read_back_through_a_host_file() {
    let m = common::boot(Arch::X86_64, 64 << 20, 1);
    let l: &VmLayer<_> = &m;
    let s = S::new();
    let path = std::env::temp_dir().join(format!("kmem-swap-area-{}", std::process::id()));
    let f = FileSwap::create(&path, 64 * PAGE_SIZE as u64).unwrap();
    s.swapon(l, path.to_str().unwrap(), f, None).unwrap();
    let free0 = common::settle(&m);
    // Eight pages with distinct contents go out, as reclaim does: add_to_swap, write, drop.
    let mut entries = Vec::new();
    for i in 0..8u8 {
        let p = m
            .alloc_pages(GfpFlags::GFP_HIGHUSER_MOVABLE, Order::ZERO)
            .unwrap();
        let va = m.page_address(p).unwrap();
        // SAFETY: the page was just allocated to this test.
        unsafe { core::ptr::write_bytes(va.as_ptr::<u8>(), 0xa0 + i, PAGE_SIZE) };
        let e = s.add_to_swap(l, p).unwrap();
        assert_eq!(s.lookup_swap_cache(e), Some(p));
        put_page(l, p); // the lookup's reference
        s.swap_duplicate(l, e).unwrap(); // one PTE now names the slot
        s.swap_writepage(l, p).unwrap();
        s.delete_from_swap_cache(l, p);
        put_page(l, p);
        entries.push(e);
    }
    assert_eq!(m.vm_event(VmEvent::PswpOut), 8);
    assert_eq!(s.total_swapcache_pages(), 0);
    assert_eq!(
        common::settle(&m),
        free0,
        "{}",
        m.platform().take_captured()
    );
    // Fault on the fourth: readahead brings its aligned window of 8 into the cache.
    let mut new = Vec::new();
    let p = s
        .swapin_readahead(l, entries[3], GfpFlags::GFP_HIGHUSER_MOVABLE, &mut |p| {
            new.push(p)
        })
        .unwrap();
    // The aligned window of 8 around offset 4 is 0..=7; page 0 is the header.
    assert_eq!(new.len(), 7, "offsets 1..=7 are read");
    assert_eq!(s.total_swapcache_pages(), 7);
    assert_eq!(m.vm_event(VmEvent::PswpIn), 7);
    assert_eq!(
        s.lookup_swap_cache(entries[7]),
        None,
        "offset 8 is in the next window"
    );
    let va = m.page_address(p).unwrap();
    // SAFETY: the page is held (our reference) and mapped by nobody.
    let bytes = unsafe { std::slice::from_raw_parts(va.as_ptr::<u8>(), PAGE_SIZE) };
    assert!(bytes.iter().all(|&b| b == 0xa3));
    // A second fault on a readahead page finds it in the cache: no new read.
    let q = s.lookup_swap_cache(entries[5]).unwrap();
    assert_eq!(m.vm_event(VmEvent::PswpIn), 7);
    put_page(l, q);
    // The PTEs go (zap): each unmapped cached page leaves the cache and is handed back.
    put_page(l, p);
    for e in &entries[..7] {
        let page = s.free_swap_and_cache(l, *e).expect("cached and unmapped");
        put_page(l, page);
    }
    assert_eq!(
        s.free_swap_and_cache(l, entries[7]),
        None,
        "not cached: the slot just goes"
    );
    assert_eq!(s.total_swapcache_pages(), 0);
    assert_eq!(s.si_swapinfo().free, 63);
    assert_eq!(common::settle(&m), free0);
    assert_eq!(
        s.swapoff(l, path.to_str().unwrap(), &mut |_| Ok(())),
        Ok(())
    );
    std::fs::remove_file(&path).unwrap();
}
