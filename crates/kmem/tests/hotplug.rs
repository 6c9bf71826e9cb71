//! Memory hotplug (issue 19, first half): add_memory, memory blocks in
//! /sys/devices/system/memory, online into ZONE_NORMAL / ZONE_MOVABLE, offline of free
//! blocks and the -EBUSY path, removal; every counter returns.
//! Linux: mm/memory_hotplug.c, drivers/base/memory.c.

mod common;
use common::*;
use kmem::arch::Arch;
use kmem::errno::Errno;
use kmem::memory_hotplug::OnlineType;
use kmem::mmzone::ZoneType;
use kmem::proc::ProcError;
use kmem::{BootParams, GfpFlags, Machine, Order};
use kmem_hosted::{HostedConfig, HostedPlatform};

const G: u64 = 1 << 30;
const DIR: &str = "/sys/devices/system/memory";

/// A 1 GiB QEMU machine whose platform may grow to `max` bytes of physical memory.
fn boot_growable(max: u64) -> Machine<HostedPlatform> {
    boot_growable_with(max, "")
}

/// [`boot_growable`] with a kernel command line.
fn boot_growable_with(max: u64, cmdline: &str) -> Machine<HostedPlatform> {
    let mut params = BootParams::simulated(Arch::X86_64, G, 2).unwrap();
    params.cmdline = cmdline;
    let mut cfg = HostedConfig::deterministic(params.e820.ram_end().next_multiple_of(4096), 42);
    cfg.max_phys_size = max;
    Machine::boot(HostedPlatform::new(cfg).unwrap(), &params).unwrap()
}

fn sysfs(m: &Machine<HostedPlatform>, block: usize, attr: &str) -> String {
    proc(m, &format!("{DIR}/memory{block}/{attr}"))
}

fn echo(m: &Machine<HostedPlatform>, block: usize, attr: &str, v: &str) -> Result<(), Errno> {
    m.proc_write(&format!("{DIR}/memory{block}/{attr}"), v)
        .map_err(|e| match e {
            ProcError::Errno(e) => e,
            e => panic!("{e}"),
        })
}

fn meminfo_kb(m: &Machine<HostedPlatform>, key: &str) -> u64 {
    let s = proc(m, "/proc/meminfo");
    let l = s.lines().find(|l| l.starts_with(key)).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn dmesg(m: &Machine<HostedPlatform>) -> String {
    let mut s = String::new();
    m.dmesg(&mut s, false).unwrap();
    s
}

/// Boot memory shows as online blocks of 128 MiB.
#[test]
fn boot_blocks_are_online() {
    let m = boot(Arch::X86_64, G, 2);
    assert_eq!(proc(&m, &format!("{DIR}/block_size_bytes")), "8000000\n");
    let blocks: Vec<_> = m.memory_blocks().map(|b| b.nr).collect();
    assert_eq!(blocks, (0..8).collect::<Vec<_>>());
    assert_eq!(sysfs(&m, 0, "state"), "online\n");
    assert_eq!(sysfs(&m, 0, "online"), "1\n");
    assert_eq!(sysfs(&m, 3, "phys_index"), "00000003\n");
    assert_eq!(sysfs(&m, 3, "removable"), "1\n");
    // Block 0 holds DMA and DMA32 pages; block 1 only DMA32.
    assert_eq!(sysfs(&m, 0, "valid_zones"), "none\n");
    assert_eq!(sysfs(&m, 1, "valid_zones"), "DMA32\n");
    assert!(m
        .proc_read(&format!("{DIR}/memory8/state"), &mut String::new())
        .is_err());
    // Without room to grow, nothing can be added.
    assert_eq!(m.add_memory(0, 4 * G, G), Err(Errno::E2BIG));
    assert!(dmesg(&m)
        .contains("Hotplug memory [0x100000000-0x13fffffff] exceeds maximum addressable range"));
}

fn zone_field(m: &Machine<HostedPlatform>, zone: &str, field: &str) -> u64 {
    let s = proc(m, "/proc/zoneinfo");
    let start = s.find(&format!("zone {zone:>8}")).unwrap();
    let l = s[start..]
        .lines()
        .find(|l| l.trim_start().starts_with(field))
        .unwrap();
    l.split_whitespace().last().unwrap().parse().unwrap()
}

/// The scenario without migration: add 1 GiB, online it movable, fill part of it,
/// see offlining fail while pages are in use, free them, offline, remove; every counter
/// returns.
#[test]
fn add_online_movable_offline_remove_restores_every_counter() {
    let m = boot_growable(8 * G);
    let total0 = meminfo_kb(&m, "MemTotal:");
    let free0 = settle(&m);
    assert_eq!(zone_field(&m, "Movable", "present"), 0);

    m.add_memory(0, 4 * G, G).unwrap();
    for b in 32..40 {
        assert_eq!(sysfs(&m, b, "state"), "offline\n");
        assert_eq!(sysfs(&m, b, "valid_zones"), "Normal Movable\n");
    }
    assert_eq!(sysfs(&m, 32, "phys_index"), "00000020\n");
    assert_eq!(
        meminfo_kb(&m, "MemTotal:"),
        total0,
        "added memory is not online yet"
    );
    assert!(m.pfn_valid(kmem::Pfn::new(0x10_0000)));
    assert!(m.pfn_to_online_page(kmem::Pfn::new(0x10_0000)).is_none());
    // Adding it again: the sections are present.
    assert_eq!(m.add_memory(0, 4 * G, G), Err(Errno::EEXIST));

    for b in 32..40 {
        echo(&m, b, "state", "online_movable\n").unwrap();
    }
    assert_eq!(sysfs(&m, 35, "valid_zones"), "Movable\n");
    assert_eq!(zone_field(&m, "Movable", "present"), 262_144);
    assert_eq!(zone_field(&m, "Movable", "managed"), 262_144);
    assert_eq!(zone_field(&m, "Movable", "spanned"), 262_144);
    assert_eq!(meminfo_kb(&m, "MemTotal:"), total0 + G / 1024);
    assert!(dmesg(&m).contains("Built 1 zonelists, mobility grouping on.  Total pages: "));
    assert!(m.pfn_to_online_page(kmem::Pfn::new(0x10_0000)).is_some());
    m.check_invariants().unwrap();

    // Movable user pages land in the new zone.
    let mut pages = Vec::new();
    for _ in 0..64 {
        let p = m
            .alloc_pages(GfpFlags::GFP_HIGHUSER_MOVABLE, Order::new(4))
            .unwrap();
        assert_eq!(m.page_ref(p).unwrap().zone_type(), ZoneType::Movable);
        pages.push(p);
    }
    let busy = pages
        .iter()
        .map(|&p| (m.page_to_pfn(p).as_u64() >> 15) as usize)
        .next()
        .unwrap();
    assert_eq!(echo(&m, busy, "state", "offline"), Err(Errno::EBUSY));
    let s = (busy as u64) << 27;
    let line = format!(
        "memory offlining [mem {:#010x}-{:#010x}] failed due to unmovable page",
        s,
        s + (1 << 27) - 1
    );
    assert!(dmesg(&m).contains(&line), "{line}");
    assert_eq!(sysfs(&m, busy, "state"), "online\n");
    // Removing an online block fails.
    assert_eq!(m.remove_memory(4 * G, G), Err(Errno::EBUSY));
    assert!(dmesg(&m).contains("removing memory fails, because memory ["));
    for p in pages {
        m.__free_pages(p, Order::new(4));
    }

    for b in 32..40 {
        echo(&m, b, "online", "0").unwrap();
        assert_eq!(sysfs(&m, b, "state"), "offline\n");
    }
    assert_eq!(zone_field(&m, "Movable", "present"), 0);
    assert_eq!(zone_field(&m, "Movable", "managed"), 0);
    m.remove_memory(4 * G, G).unwrap();
    assert!(m.memory_block(32).is_none());
    assert!(!m.pfn_valid(kmem::Pfn::new(0x10_0000)));
    assert_eq!(meminfo_kb(&m, "MemTotal:"), total0);
    assert_eq!(settle(&m), free0, "the memmap's pages went back");
    assert_eq!(m.bug_count(), 0);
    m.check_invariants().unwrap();
    // And it can be added again.
    m.add_memory(0, 4 * G, 128 << 20).unwrap();
    echo(&m, 32, "state", "online").unwrap();
    assert_eq!(sysfs(&m, 32, "valid_zones"), "Normal\n");
    assert_eq!(zone_field(&m, "Normal", "present"), 32_768);
    m.check_invariants().unwrap();
}

#[test]
fn bad_calls_fail_cleanly() {
    let m = boot_growable(8 * G);
    let free0 = settle(&m);
    assert_eq!(m.add_memory(0, 4 * G + 4096, G), Err(Errno::EINVAL));
    assert_eq!(m.add_memory(0, 4 * G, 4096), Err(Errno::EINVAL));
    assert_eq!(m.add_memory(1, 4 * G, G), Err(Errno::EINVAL));
    assert_eq!(m.add_memory(0, 7 * G, 2 * G), Err(Errno::E2BIG));
    // Boot memory overlaps.
    assert_eq!(m.add_memory(0, 0, 128 << 20), Err(Errno::EEXIST));
    assert_eq!(
        m.online_memory_block(40, OnlineType::Online),
        Err(Errno::EINVAL)
    );
    assert_eq!(m.offline_memory_block(40), Err(Errno::EINVAL));
    assert_eq!(m.remove_memory(4 * G, G), Err(Errno::EINVAL));
    m.add_memory(0, 4 * G, 128 << 20).unwrap();
    assert_eq!(echo(&m, 32, "state", "sideways"), Err(Errno::EINVAL));
    assert_eq!(echo(&m, 32, "phys_index", "1"), Err(Errno::EACCES));
    // A boot block is never removed; offlining a busy boot block fails.
    assert_eq!(m.remove_memory(0, 128 << 20), Err(Errno::EBUSY));
    assert_eq!(echo(&m, 7, "state", "offline"), Err(Errno::EBUSY));
    m.remove_memory(4 * G, 128 << 20).unwrap();
    assert_eq!(settle(&m), free0);
    assert_eq!(m.bug_count(), 0);
    m.check_invariants().unwrap();
}

/// i386 is FLATMEM: no hotplug.
#[test]
fn flatmem_cannot_hotplug() {
    let m = boot(Arch::I386, G, 2);
    assert_eq!(m.add_memory(0, 4 * G, G), Err(Errno::EINVAL));
    assert!(m.memory_blocks().next().is_none());
}

const PAGE: u64 = kmem::PAGE_SIZE as u64;

fn pat(i: u64, off: u64) -> u64 {
    (i << 16) ^ off ^ 0x5a5a_0000_0000_0000
}

fn vmstat(m: &Machine<HostedPlatform>, name: &str) -> u64 {
    proc(m, "/proc/vmstat")
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap()
}

/// The scenario: add 1 GiB, online it movable, fill it with a process's pages,
/// offline it (the pages migrate, the data is intact), remove it; every counter returns.
#[test]
fn offline_migrates_a_process_out_and_every_counter_returns() {
    use kmem::vma::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
    let m = boot_growable(8 * G);
    let warm = m.spawn("warmup").unwrap();
    m.exit(warm).unwrap();
    let total0 = meminfo_kb(&m, "MemTotal:");
    let free0 = settle(&m);
    m.add_memory(0, 4 * G, G).unwrap();
    for b in 32..40 {
        echo(&m, b, "state", "online_movable").unwrap();
    }
    let pid = m.spawn("filler").unwrap();
    let n = 4096u64;
    let rw = PROT_READ | PROT_WRITE;
    let a = m
        .mmap(pid, 0, n * PAGE, rw, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        .unwrap();
    for i in 0..n {
        for off in [0, PAGE - 8] {
            m.upoke(pid, a + i * PAGE + off, 8, pat(i, off)).unwrap();
        }
    }
    let zone_of = |i: u64| {
        let p = m.follow_page(pid, a + i * PAGE).unwrap().unwrap();
        m.page_ref(p).unwrap().zone_type()
    };
    assert!((0..n).all(|i| zone_of(i) == ZoneType::Movable));
    let migrated0 = vmstat(&m, "pgmigrate_success");
    for b in 32..40 {
        echo(&m, b, "state", "offline").unwrap();
    }
    assert!(vmstat(&m, "pgmigrate_success") >= migrated0 + n);
    for i in 0..n {
        assert_ne!(zone_of(i), ZoneType::Movable);
        for off in [0, PAGE - 8] {
            assert_eq!(m.upeek(pid, a + i * PAGE + off, 8).unwrap(), pat(i, off));
        }
    }
    assert_eq!(zone_field(&m, "Movable", "present"), 0);
    m.remove_memory(4 * G, G).unwrap();
    m.exit(pid).unwrap();
    assert_eq!(meminfo_kb(&m, "MemTotal:"), total0);
    assert_eq!(settle(&m), free0, "every page came back");
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
    m.check_invariants().unwrap();
}

/// A pinned page cannot move: offlining fails with -EBUSY, the block stays online and
/// usable, and succeeds once the pin is gone.
#[test]
fn a_pinned_page_keeps_its_block_online() {
    use kmem::migrate::{FOLL_LONGTERM, FOLL_WRITE};
    use kmem::vma::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
    let m = boot_growable(8 * G);
    m.add_memory(0, 4 * G, 128 << 20).unwrap();
    echo(&m, 32, "state", "online_movable").unwrap();
    let pid = m.spawn("pinner").unwrap();
    let a = m
        .mmap(
            pid,
            0,
            16 * PAGE,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            -1,
            0,
        )
        .unwrap();
    m.upoke(pid, a, 8, 42).unwrap();
    let mut pages = [None];
    assert_eq!(
        m.pin_user_pages(pid, a, FOLL_WRITE | FOLL_LONGTERM, &mut pages),
        Ok(1)
    );
    assert_eq!(echo(&m, 32, "state", "offline"), Err(Errno::EBUSY));
    assert!(dmesg(&m)
        .contains("memory offlining [mem 0x100000000-0x107ffffff] failed due to unmovable page"));
    assert_eq!(sysfs(&m, 32, "state"), "online\n");
    // The block's pageblocks are usable again.
    let p = m
        .alloc_pages(GfpFlags::GFP_HIGHUSER_MOVABLE, Order::ZERO)
        .unwrap();
    assert_eq!(m.page_ref(p).unwrap().zone_type(), ZoneType::Movable);
    m.__free_pages(p, Order::ZERO);
    m.unpin_user_pages(&[pages[0].unwrap()]);
    echo(&m, 32, "state", "offline").unwrap();
    assert_eq!(m.upeek(pid, a, 8).unwrap(), 42);
    m.exit(pid).unwrap();
    m.remove_memory(4 * G, 128 << 20).unwrap();
    m.check_invariants().unwrap();
}

/// `MHP_MEMMAP_ON_MEMORY`: a machine that has run out of memory cannot add memory whose
/// memmap comes from the page allocator (-ENOMEM), but can add it with the memmap on the
/// added memory itself; the memmap pageblock is present but not managed, the rest is online
/// in ZONE_NORMAL, and offlining and removal give every counter back.
#[test]
fn memmap_on_memory_grows_a_full_machine() {
    use kmem::memory_hotplug::{MhpFlags, NR_VMEMMAP_PAGES};
    const M256: u64 = 256 << 20;
    let params = BootParams::simulated(Arch::X86_64, M256, 2).unwrap();
    let mut cfg = HostedConfig::deterministic(params.e820.ram_end().next_multiple_of(4096), 42);
    cfg.max_phys_size = G;
    let m = Machine::boot(HostedPlatform::new(cfg).unwrap(), &params).unwrap();
    let total0 = meminfo_kb(&m, "MemTotal:");
    let free0 = settle(&m);
    let gfp = GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN | GfpFlags::__GFP_NORETRY;
    let mut held = Vec::new();
    while let Some(p) = m.alloc_pages(gfp, Order::ZERO) {
        held.push(p);
    }
    assert_eq!(m.add_memory(0, M256, 128 << 20), Err(Errno::ENOMEM));
    assert!(m.memory_block(2).is_none(), "nothing left behind");
    m.add_memory_flags(0, M256, 128 << 20, MhpFlags::MEMMAP_ON_MEMORY)
        .unwrap();
    assert_eq!(m.memory_block(2).unwrap().nr_vmemmap_pages, 512);
    assert!(!m.memory_block_is_free(2), "offline");
    m.online_memory_block(2, OnlineType::OnlineKernel).unwrap();
    assert_eq!(sysfs(&m, 2, "valid_zones"), "Normal\n");
    assert_eq!(zone_field(&m, "Normal", "present"), 32_768);
    assert_eq!(
        zone_field(&m, "Normal", "managed"),
        32_768 - NR_VMEMMAP_PAGES
    );
    assert_eq!(
        meminfo_kb(&m, "MemTotal:"),
        total0 + (32_768 - NR_VMEMMAP_PAGES) * 4
    );
    assert!(m.memory_block_is_free(2));
    // The memmap's pages are reserved, the first page after them is free memory.
    let first = m.pfn_to_page(kmem::Pfn::new(M256 >> 12)).unwrap();
    assert!(m.page_ref(first).unwrap().is_reserved());
    m.check_invariants().unwrap();
    // The machine allocates again, from the new block, which is in the direct map
    // (arch_add_memory's init_memory_mapping): kmalloc works there and finds its pages back.
    let p = m.alloc_pages(gfp, Order::ZERO).unwrap();
    assert_eq!(m.page_ref(p).unwrap().zone_type(), ZoneType::Normal);
    let va = m
        .page_address(p)
        .expect("hot-added memory is in the direct map");
    assert_eq!(m.virt_to_page(va), Some(p));
    let big = m
        .kmalloc(64 << 10, gfp)
        .expect("a large kmalloc from the new block");
    let pa = m
        .virt_to_phys(kmem::VirtAddr::new(big.as_ptr() as usize))
        .unwrap();
    assert!(pa.as_u64() >= M256, "{pa:?}");
    m.kfree(big.as_ptr());
    assert!(!m.memory_block_is_free(2));
    assert_eq!(m.offline_memory_block(2), Err(Errno::EBUSY));
    m.__free_pages(p, Order::ZERO);
    m.drain_all_pages();
    assert!(m.memory_block_is_free(2));
    m.offline_memory_block(2).unwrap();
    assert_eq!(zone_field(&m, "Normal", "present"), 0);
    assert_eq!(zone_field(&m, "Normal", "managed"), 0);
    assert_eq!(meminfo_kb(&m, "MemTotal:"), total0);
    m.remove_memory(M256, 128 << 20).unwrap();
    assert!(m.memory_block(2).is_none());
    for p in held {
        m.__free_pages(p, Order::ZERO);
    }
    assert_eq!(settle(&m), free0, "every page came back");
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
    m.check_invariants().unwrap();
    // Added again, the memmap is initialised afresh.
    m.add_memory_flags(0, M256, 128 << 20, MhpFlags::MEMMAP_ON_MEMORY)
        .unwrap();
    m.online_memory_block(2, OnlineType::Online).unwrap();
    assert!(m.memory_block_is_free(2));
    m.check_invariants().unwrap();
}

/// On a platform whose memmap is private memory of the process (libkmem_malloc's nodes,
/// which `fork` copies), hot-added sections get their memmap in the window as well: add,
/// online, use, offline and remove work, the memmap's pages go back, and none of the memmap
/// is in the shared memfd (it would be one copy for a parent and its forked child).
#[test]
fn private_vmemmap_hot_add_and_remove() {
    let boot_with = |private: bool| {
        let params = BootParams::simulated(Arch::X86_64, G, 2).unwrap();
        let mut cfg = HostedConfig::deterministic(params.e820.ram_end().next_multiple_of(4096), 42);
        cfg.max_phys_size = 8 * G;
        let plat = HostedPlatform::new(cfg).unwrap();
        if private {
            plat.use_private_vmemmap();
        }
        Machine::boot(plat, &params).unwrap()
    };
    let memfd_bytes = |m: &Machine<HostedPlatform>| m.platform().resident_bytes().unwrap();
    let (shared, m) = (boot_with(false), boot_with(true));
    // The boot memmap: 8 sections × 2 MiB, in the memfd only when shared.
    assert!(
        memfd_bytes(&m) + (16 << 20) <= memfd_bytes(&shared),
        "private {} shared {}",
        memfd_bytes(&m),
        memfd_bytes(&shared)
    );
    drop(shared);
    let free0 = settle(&m);
    m.add_memory(0, 4 * G, G).unwrap();
    for b in 32..40 {
        echo(&m, b, "state", "online_movable").unwrap();
    }
    let mut pages = Vec::new();
    for i in 0..448u64 {
        let p = m
            .alloc_pages(GfpFlags::GFP_HIGHUSER_MOVABLE, Order::new(9))
            .unwrap();
        assert_eq!(m.page_ref(p).unwrap().zone_type(), ZoneType::Movable, "{i}");
        pages.push(p);
    }
    m.check_invariants().unwrap();
    for p in pages {
        m.__free_pages(p, Order::new(9));
    }
    for b in 32..40 {
        echo(&m, b, "state", "offline").unwrap();
    }
    m.remove_memory(4 * G, G).unwrap();
    assert!(!m.pfn_valid(kmem::Pfn::new(0x10_0000)));
    assert_eq!(settle(&m), free0, "the memmap's pages went back");
    assert_eq!(m.bug_count(), 0);
    m.check_invariants().unwrap();
}

/// /sys/devices/system/memory/auto_online_blocks (drivers/base/memory.c): offline by default;
/// set, `add_memory` onlines the new blocks that way; a bad word is -EINVAL.
#[test]
fn auto_online_blocks_onlines_added_memory() {
    let m = boot_growable(8 * G);
    let f = format!("{DIR}/auto_online_blocks");
    assert_eq!(proc(&m, &f), "offline\n");
    let write = |v: &str| {
        m.proc_write(&f, v).map_err(|e| match e {
            ProcError::Errno(e) => e,
            e => panic!("{e}"),
        })
    };
    assert_eq!(write("sideways"), Err(Errno::EINVAL));
    assert_eq!(proc(&m, &f), "offline\n");
    write("online_movable\n").unwrap();
    assert_eq!(proc(&m, &f), "online_movable\n");
    m.add_memory(0, 4 * G, 256 << 20).unwrap();
    for b in 32..34 {
        assert_eq!(sysfs(&m, b, "state"), "online\n");
        assert_eq!(sysfs(&m, b, "valid_zones"), "Movable\n");
    }
    assert_eq!(zone_field(&m, "Movable", "present"), 65_536);
    write("offline").unwrap();
    m.add_memory(0, 5 * G, 128 << 20).unwrap();
    assert_eq!(sysfs(&m, 40, "state"), "offline\n");
    write("online").unwrap();
    m.add_memory(0, 6 * G, 128 << 20).unwrap();
    assert_eq!(sysfs(&m, 48, "state"), "online\n");
    assert_eq!(sysfs(&m, 48, "valid_zones"), "Normal\n");
    m.check_invariants().unwrap();
}

/// `memhp_default_state=` sets auto_online_blocks at boot; a bad word leaves the default.
#[test]
fn memhp_default_state_on_the_command_line() {
    let f = format!("{DIR}/auto_online_blocks");
    let m = boot_growable_with(8 * G, "memhp_default_state=online_kernel");
    assert_eq!(proc(&m, &f), "online_kernel\n");
    m.add_memory(0, 4 * G, 128 << 20).unwrap();
    assert_eq!(sysfs(&m, 32, "state"), "online\n");
    assert_eq!(sysfs(&m, 32, "valid_zones"), "Normal\n");
    m.check_invariants().unwrap();
    let m = boot_growable_with(8 * G, "memhp_default_state=sideways");
    assert_eq!(proc(&m, &f), "offline\n");
}

/// A hot-added section's usage block is referenced only from the `mem_section` table, which
/// kmemleak does not scan: it must not be reported as a leak (Linux finds it through the
/// memblock-allocated section roots; kmem marks it `kmemleak_not_leak`).
#[test]
fn hot_added_sections_are_not_kmemleak_reports() {
    use kmem::memory_hotplug::MhpFlags;
    let mut params = BootParams::simulated(Arch::X86_64, 256 << 20, 2).unwrap();
    params.cmdline = "kmemleak=on";
    let mut cfg = HostedConfig::deterministic(params.e820.ram_end().next_multiple_of(4096), 42);
    cfg.max_phys_size = G;
    let m = Machine::boot(HostedPlatform::new(cfg).unwrap(), &params).unwrap();
    m.kmemleak_set_min_age(0);
    m.add_memory_flags(0, 256 << 20, 256 << 20, MhpFlags::MEMMAP_ON_MEMORY)
        .unwrap();
    m.online_memory_block(2, OnlineType::OnlineKernel).unwrap();
    m.add_memory(0, 512 << 20, 128 << 20).unwrap();
    let n = m.kmemleak_scan(&[]) + m.kmemleak_scan(&[]);
    assert_eq!(n, 0, "{}", proc(&m, "/sys/kernel/debug/kmemleak"));
    // The offline blocks go away (block 2 now holds kmemleak's own objects, among others).
    m.remove_memory(384 << 20, 256 << 20).unwrap();
    assert_eq!(m.kmemleak_scan(&[]), 0);
    m.check_invariants().unwrap();
}

/// Compaction of a zone that was empty at boot and holds only hot-added memory (ZONE_NORMAL
/// of a 1 GiB machine after a block at 4 GiB is onlined as kernel memory): its boot span is
/// empty, so the scanners' `pageblock_start(zone_end - 1)` wrapped below zero — an overflow
/// panic in a debug build, and in a release build a free scanner starting at 2^64 that the
/// migrate scanner walked towards one pageblock at a time (`libkmem_malloc.so` hung in direct
/// compaction for a 1 MiB block on a 32 MiB machine that had grown). Now the zone is skipped
/// (hot-added memory is not compacted; see `compaction::engine::compactable`), and a costly
/// allocation that needs compaction there fails or succeeds without hanging.
#[test]
fn compaction_skips_a_zone_with_only_hot_added_memory() {
    let m = boot_growable(8 * G);
    m.add_memory(0, 4 * G, 128 << 20).unwrap();
    echo(&m, 32, "state", "online_kernel").unwrap();
    assert!(zone_field(&m, "Normal", "present") > 0);
    m.proc_write("/proc/sys/vm/compact_memory", "1").unwrap();
    // A costly order straight from the hot-added zone: direct compaction is tried there.
    let mut held = Vec::new();
    while let Some(p) = m.alloc_pages(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN, Order::new(0))
    {
        if m.page_to_pfn(p).as_u64() < (4 * G) >> 12 {
            m.__free_pages(p, Order::new(0));
            break;
        }
        held.push(p);
    }
    for (i, p) in held.iter().enumerate() {
        if i % 2 == 0 {
            m.__free_pages(*p, Order::new(0));
        }
    }
    if let Some(p) = m.alloc_pages(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN, Order::new(4)) {
        m.__free_pages(p, Order::new(4));
    }
    for (i, p) in held.iter().enumerate() {
        if i % 2 == 1 {
            m.__free_pages(*p, Order::new(0));
        }
    }
}

/// A hot-added section is marked for the slab free's fast `struct page` lookup
/// (`virt_to_page_fast`'s second bitmap) when it is added and unmarked before its memmap is
/// removed: slab objects in the added block are freed and reused without a report, and
/// after the removal a pointer into the range is reported as having no `struct page`
/// instead of reading the unmapped memmap.
#[test]
fn slab_objects_in_a_hot_added_block() {
    let m = boot_growable(8 * G);
    let first = kmem::Pfn::new((4 * G) >> 12);
    assert!(!m.memmap_hot_section(first));
    assert!(
        !m.memmap_hot_section(kmem::Pfn::new(0)),
        "boot sections are the other bitmap's"
    );
    m.add_memory(0, 4 * G, 128 << 20).unwrap();
    assert!(m.memmap_hot_section(first), "marked when added");
    m.online_memory_block(32, OnlineType::OnlineKernel).unwrap();
    // Hold every free MAX_ORDER block; give back those of the added block, so that new
    // slabs come from it.
    let top = Order::new(10);
    let gfp = GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN;
    let mut held = Vec::new();
    while let Some(p) = m.alloc_pages(gfp, top) {
        held.push(p);
    }
    held.retain(|&p| {
        let hot = m.page_to_pfn(p) >= first;
        if hot {
            m.__free_pages(p, top);
        }
        !hot
    });
    let objs: Vec<*mut u8> = (0..4096)
        .map(|_| m.kmalloc(192, GfpFlags::GFP_KERNEL).unwrap().as_ptr())
        .collect();
    let hot = |p: *mut u8| {
        m.virt_to_phys(kmem::VirtAddr::new(p as usize))
            .unwrap()
            .as_u64()
            >= 4 * G
    };
    let in_block = objs.iter().filter(|&&p| hot(p)).count();
    assert!(in_block > 0, "some objects in the added block");
    for &p in &objs {
        m.kfree(p);
    }
    let again = m.kmalloc(192, GfpFlags::GFP_KERNEL).unwrap().as_ptr();
    assert!(objs.contains(&again), "freed objects are reused");
    m.kfree(again);
    assert_eq!(m.bug_count(), 0);
    for p in held {
        m.__free_pages(p, top);
    }
    m.check_invariants().unwrap();

    // A block added and removed again: its bit goes with it.
    let m = boot_growable(8 * G);
    m.add_memory(0, 4 * G, 128 << 20).unwrap();
    let base = kmem::platform::Platform::direct_map_base(m.platform()) as usize;
    let stale = (base + (4 * G) as usize + (4 << 20)) as *const u8;
    m.remove_memory(4 * G, 128 << 20).unwrap();
    assert!(!m.memmap_hot_section(first), "unmarked when removed");
    m.kfree(stale);
    let mut log = String::new();
    m.dmesg(&mut log, false).unwrap();
    assert!(log.contains("has no struct page"), "{log}");
    assert_eq!(m.bug_count(), 1);
    m.check_invariants().unwrap();
}
