//! `KmemAlloc` grows its one machine by memory hotplug (issue 19): a 64 MiB machine serves
//! 512 MiB of live blocks by hot-adding 128 MiB blocks (memmap on the block, ZONE_NORMAL), the
//! data stays intact, and once everything is freed `trim` offlines and removes the blocks:
//! MemTotal and the memory blocks return to what the machine booted with.

use kmem_hosted::KmemAlloc;

#[global_allocator]
static A: KmemAlloc = KmemAlloc::with_ram(64 << 20);

fn meminfo_kb(key: &str) -> u64 {
    let mut s = String::new();
    A.machine()
        .unwrap()
        .proc_read("/proc/meminfo", &mut s)
        .unwrap();
    let l = s.lines().find(|l| l.starts_with(key)).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn hot_blocks() -> usize {
    A.machine()
        .unwrap()
        .memory_blocks()
        .filter(|b| !b.early)
        .count()
}

#[test]
fn grows_past_its_boot_size_and_trims_back() {
    let total0 = meminfo_kb("MemTotal:");
    assert!(total0 < 64 << 10, "{total0}");
    assert_eq!(hot_blocks(), 0);
    // 512 blocks of 1 MiB (large kmallocs from the page allocator).
    let mut v: Vec<Box<[u8]>> = Vec::with_capacity(512);
    for i in 0..512usize {
        let mut b = vec![0u8; 1 << 20].into_boxed_slice();
        b[0] = i as u8;
        b[(1 << 20) - 1] = !(i as u8);
        v.push(b);
    }
    let (added, removed) = A.hotplug_counts();
    assert!(added >= 4, "added {added}");
    assert_eq!(removed, 0);
    assert_eq!(hot_blocks() as u64, added);
    assert!(meminfo_kb("MemTotal:") >= total0 + 4 * 126 * 1024);
    let m = A.machine().unwrap();
    for b in A.machine().unwrap().memory_blocks().filter(|b| !b.early) {
        assert!(b.online);
        assert_eq!(b.zone, Some(kmem::mmzone::ZoneType::Normal));
        assert_eq!(b.nr_vmemmap_pages, 512);
    }
    for (i, b) in v.iter().enumerate() {
        assert_eq!(b[0], i as u8);
        assert_eq!(b[(1 << 20) - 1], !(i as u8));
    }
    // Nothing is trimmed while the blocks are in use.
    assert_eq!(A.trim(), 0);
    drop(v);
    let trimmed = A.trim();
    assert!(trimmed as u64 + 1 >= added, "trimmed {trimmed} of {added}");
    assert_eq!(A.hotplug_counts().1, trimmed as u64);
    assert!(hot_blocks() <= 1);
    assert!(meminfo_kb("MemTotal:") <= total0 + 126 * 1024);
    assert_eq!(m.bug_count(), 0);
    m.check_invariants().unwrap();
    // It grows again after trimming.
    let again: Vec<Box<[u8]>> = (0..256)
        .map(|_| vec![1u8; 1 << 20].into_boxed_slice())
        .collect();
    assert!(again.iter().all(|b| b[4095] == 1));
    assert!(A.hotplug_counts().0 > added);
}
