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
    let params = BootParams::simulated(Arch::X86_64, G, 2).unwrap();
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
