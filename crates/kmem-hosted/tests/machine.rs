//! A kmem machine booted on the hosted platform: boot log on the console, and per-CPU page
//! lists drained when the threads (CPUs) that filled them exit.

use std::sync::Barrier;

use kmem::arch::Arch;
use kmem::mmzone::ZoneType;
use kmem::platform::Platform;
use kmem::{BootParams, GfpFlags, Machine, Order};
use kmem_hosted::{HostedConfig, HostedPlatform};

fn boot(mem: u64) -> Machine<HostedPlatform> {
    let params = BootParams::simulated(Arch::X86_64, mem, 2).unwrap();
    kmem_hosted::boot(&params, HostedConfig::deterministic(0, 5)).unwrap()
}

fn snapshot(m: &Machine<HostedPlatform>) -> Vec<[usize; 11]> {
    [ZoneType::Dma, ZoneType::Dma32]
        .into_iter()
        .map(|z| m.free_area_counts(z))
        .collect()
}

fn pcp_total(m: &Machine<HostedPlatform>) -> usize {
    [ZoneType::Dma, ZoneType::Dma32]
        .into_iter()
        .map(|z| m.pcp_pages(z))
        .sum()
}

#[test]
fn boot_log_reaches_the_console() {
    let m = boot(64 << 20);
    let log = m.platform().take_captured();
    assert!(
        log.contains("BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable"),
        "{log}"
    );
    assert!(log.contains("Memory: "), "{log}");
    // Physical memory covers exactly the RAM of the firmware map.
    assert_eq!(m.platform().phys_end().as_u64(), m.e820().ram_end());
    assert!(m.totalram_pages() > 0);
}

#[test]
fn exiting_threads_give_their_per_cpu_pages_back() {
    let m = boot(64 << 20);
    let before = snapshot(&m);
    assert_eq!(pcp_total(&m), 0);
    const THREADS: usize = 4;
    let filled = Barrier::new(THREADS + 1);
    let checked = Barrier::new(THREADS + 1);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|_| {
                let (m, filled, checked) = (&m, &filled, &checked);
                s.spawn(move || {
                    let pages: Vec<_> = (0..16)
                        .map(|_| m.alloc_pages(GfpFlags::GFP_KERNEL, Order::new(0)).unwrap())
                        .collect();
                    for p in pages {
                        m.__free_pages(p, Order::new(0));
                    }
                    filled.wait();
                    checked.wait();
                })
            })
            .collect();
        filled.wait();
        // The freed pages sit on the threads' per-CPU lists.
        assert!(pcp_total(&m) > 0);
        checked.wait();
        for h in hs {
            // `join` returns after the thread's destructors, hence its CPU-dead hook, ran.
            h.join().unwrap();
        }
    });
    assert_eq!(
        pcp_total(&m),
        0,
        "per-CPU lists of dead CPUs were not drained"
    );
    assert_eq!(snapshot(&m), before);
    m.check_invariants().unwrap();
}

#[test]
fn machine_dropped_before_its_threads_exit() {
    // A thread that outlives the machine it used exits without calling into the machine.
    let m2 = std::sync::Arc::new(boot(32 << 20));
    let used = std::sync::Arc::new(Barrier::new(2));
    let dropped = std::sync::Arc::new(Barrier::new(2));
    let h = std::thread::spawn({
        let (m2, used, dropped) = (m2.clone(), used.clone(), dropped.clone());
        move || {
            let p = m2.alloc_pages(GfpFlags::GFP_KERNEL, Order::new(0)).unwrap();
            m2.__free_pages(p, Order::new(0));
            drop(m2);
            used.wait();
            dropped.wait();
        }
    });
    used.wait();
    drop(std::sync::Arc::into_inner(m2).unwrap());
    dropped.wait();
    h.join().unwrap();
}

#[test]
fn thread_churn_keeps_the_machine_consistent() {
    // Threads come and go while others allocate: CPU-dead hooks run concurrently with
    // allocations, slots are reused, and in the end every page is back in the buddy lists.
    let m = boot(64 << 20);
    let before = snapshot(&m);
    for round in 0..20 {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|t| {
                    let m = &m;
                    s.spawn(move || {
                        let pages: Vec<_> = (0..24)
                            .map(|k| {
                                let order = Order::new(((k + t + round) % 4) as u32);
                                (m.alloc_pages(GfpFlags::GFP_KERNEL, order).unwrap(), order)
                            })
                            .collect();
                        for (p, order) in pages {
                            m.__free_pages(p, order);
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        });
    }
    assert_eq!(pcp_total(&m), 0);
    assert_eq!(snapshot(&m), before);
    m.check_invariants().unwrap();
    assert_eq!(m.bug_count(), 0);
}

/// A SLUB cache's per-CPU array (`kmem_cache_cpu` for each of the 256 possible CPUs, four
/// pages) costs host memory only for the pages a CPU touches: the platform zeroes it by
/// giving its memfd pages back (`Platform::zero_unbacked`) instead of writing zeroes, as
/// Linux's percpu allocator backs chunk pages only as they are used. /proc/meminfo's
/// `Percpu:` still counts the whole arrays (the machine allocated them). Before, creating
/// 16 caches wrote 16 × 16 KiB of zeroes.
#[test]
fn per_cpu_arrays_cost_only_touched_pages() {
    let m = boot(256 << 20);
    let percpu = |m: &Machine<HostedPlatform>| -> u64 {
        let mut s = String::new();
        m.proc_read("/proc/meminfo", &mut s).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("Percpu:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    };
    let names: Vec<String> = (0..16).map(|i| format!("percpu-test-{i}")).collect();
    let pc0 = percpu(&m);
    let before = m.platform().resident_bytes().unwrap();
    let caches: Vec<_> = names
        .iter()
        .map(|n| {
            m.kmem_cache_create(n, 64, 8, kmem::SlabFlags::NO_MERGE, None)
                .unwrap()
        })
        .collect();
    let grown = m.platform().resident_bytes().unwrap() - before;
    assert!(grown < 128 << 10, "resident grew by {grown} bytes");
    assert!(percpu(&m) >= pc0 + 16 * 16, "Percpu: {} kB", percpu(&m));
    // The arrays read as zeroes and work: this CPU's entries fill on first use.
    for &c in &caches {
        let p = m.kmem_cache_alloc(c, GfpFlags::GFP_KERNEL).unwrap();
        m.kmem_cache_free(c, p.as_ptr());
    }
    for c in caches {
        m.kmem_cache_destroy(c);
    }
    assert_eq!(percpu(&m), pc0);
}

/// Whether each page of `[addr, addr + len)` is mapped by a present page-table entry of this
/// process (`/proc/self/pagemap` bit 63): memory the process is charged for (its RSS).
fn resident_pages(addr: *const u8, len: usize) -> Vec<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open("/proc/self/pagemap").unwrap();
    f.seek(SeekFrom::Start((addr as u64 / 4096) * 8)).unwrap();
    let mut buf = vec![0u8; len.div_ceil(4096) * 8];
    f.read_exact(&mut buf).unwrap();
    buf.chunks(8)
        .map(|e| u64::from_le_bytes(e.try_into().unwrap()) >> 63 == 1)
        .collect()
}

/// A small machine's section hole costs no host memory: a 16 MiB machine's one 128 MiB
/// section has 2 MiB of memmap, of which the 28,672 `struct page`s beyond `max_pfn`
/// (`init_unavailable_range`) are all alike; after the first whole page of them is written,
/// the rest of the hole is mapped read-only onto copies of it (`Platform::share_vmemmap`).
/// Before, boot wrote all 2 MiB (`MADV_POPULATE_WRITE`, then `memmap_init`): 447 resident
/// pages more.
#[test]
fn a_section_hole_in_the_memmap_is_shared_not_backed() {
    let params = BootParams::simulated(Arch::X86_64, 16 << 20, 2).unwrap();
    let mut cfg = HostedConfig::deterministic(0, 5);
    cfg.max_phys_size = 1 << 30;
    let m = kmem_hosted::boot(&params, cfg).unwrap();
    let max = m.max_pfn().as_usize();
    assert!(max <= 4096, "max_pfn {max}");
    let base = m
        .pfn_to_page(kmem::Pfn::new(0))
        .unwrap()
        .as_ptr()
        .cast::<u8>();
    let entry = core::mem::size_of::<kmem::mm::mm_types::Page>();
    let section = 32768 * entry;
    // The template: the first whole memmap page beyond max_pfn.
    let tpl = (max * entry).div_ceil(4096);
    let res = resident_pages(base, section);
    // Written at boot: the entries below max_pfn and the first page of the hole (the
    // template).
    assert!(res[..=tpl].iter().all(|&r| r), "{res:?}");
    let backed = res[tpl + 1..].iter().filter(|&&r| r).count();
    assert_eq!(backed, 0, "{backed} hole pages of the memmap are resident");
    // Hot-adding a block above the hole and looking at the memory blocks (as the hosted
    // heap's growth and shrink do) reads none of the hole: a boot block's zone comes from
    // the zones' spans (`early_node_zone_for_memory_block`), not from its `struct page`s.
    m.add_memory(0, 128 << 20, 128 << 20).unwrap();
    m.proc_write("/sys/devices/system/memory/memory1/state", "online")
        .unwrap();
    let blocks: Vec<_> = m.memory_blocks().collect();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].zone, Some(kmem::mmzone::ZoneType::Dma));
    assert_eq!(blocks[1].zone, Some(kmem::mmzone::ZoneType::Normal));
    let res = resident_pages(base, section);
    let backed = res[tpl + 1..].iter().filter(|&&r| r).count();
    assert_eq!(
        backed, 0,
        "{backed} hole pages resident after the block walk"
    );
    // Every page of the hole reads as the template: reserved pages of the last zone.
    // SAFETY: the section's memmap is mapped (read-only in the hole) for the machine's
    // lifetime; the reads are of plain bytes.
    let page = |k: usize| unsafe { std::slice::from_raw_parts(base.add(k * 4096), 4096) };
    let template = page(tpl);
    assert!(template.chunks(entry).all(|e| e == &template[..entry]));
    for k in [tpl + 1, tpl + 17, section / 4096 - 1] {
        assert_eq!(page(k), template, "memmap page {k}");
    }
    // Reading faulted in only around what was read (the host maps up to 16 neighbouring
    // pages of a file mapping on a read fault: `fault_around_bytes`, 64 KiB).
    let res = resident_pages(base, section);
    let now = res[tpl + 1..].iter().filter(|&&r| r).count();
    assert!(
        (3..=48).contains(&now),
        "{now} hole pages resident after reading 3"
    );
    // The machine works as before.
    let p = m.alloc_pages(GfpFlags::GFP_KERNEL, Order::new(2)).unwrap();
    m.__free_pages(p, Order::new(2));
    let mut s = String::new();
    m.proc_read("/proc/zoneinfo", &mut s).unwrap();
    m.check_invariants().unwrap();
    assert_eq!(m.bug_count(), 0);
}

/// Memory that boot zeroes but does not write (`memblock_alloc`'s zeroing of the 128 KiB
/// printk buffer beyond the boot log, and of per-CPU arrays beyond what `init_lists` writes)
/// is zeroed by the platform without backing it (`Platform::zero_unbacked`): a 16 MiB
/// machine backs 540 KiB of its RAM after boot; before, the zeroing backed 680 KiB.
#[test]
fn boot_backs_only_the_ram_it_writes() {
    let params = BootParams::simulated(Arch::X86_64, 16 << 20, 2).unwrap();
    let m = kmem_hosted::boot(&params, HostedConfig::deterministic(0, 5)).unwrap();
    let resident = m.platform().resident_bytes().unwrap();
    assert!(resident < 600 << 10, "{} KiB resident", resident >> 10);
    m.check_invariants().unwrap();
}

/// A large free block's `struct page`s cost no host memory once shared: the memmap pages
/// holding only its tail pages (15 of an order-10 block's 16) are mapped copy-on-write onto
/// one page of alike entries (`share_free_memmap`, free page reporting's memmap side),
/// read exactly as before, and the block is allocated, split, used as compound pages and
/// freed again as before (each memmap page written gets a copy of its own). Before, a free
/// hot-added block kept all 2 MiB of its memmap resident (`free_rss big`: 2,048 KiB of a
/// kept block's memmap).
#[test]
fn a_free_blocks_memmap_is_shared_copy_on_write() {
    let params = BootParams::simulated(Arch::X86_64, 16 << 20, 2).unwrap();
    let mut cfg = HostedConfig::deterministic(params.e820.ram_end().next_multiple_of(4096), 5);
    cfg.max_phys_size = 1 << 30;
    let plat = HostedPlatform::new(cfg).unwrap();
    plat.use_private_vmemmap();
    let m = Machine::boot(plat, &params).unwrap();
    m.add_memory(0, 128 << 20, 128 << 20).unwrap();
    m.proc_write("/sys/devices/system/memory/memory1/state", "online")
        .unwrap();
    // An order-10 block of the new memory, used as compound pages (as large kmalloc does:
    // their heads leave list and compound words behind when freed and merged), then freed.
    let p = m.alloc_pages(GfpFlags::GFP_KERNEL, Order::new(10)).unwrap();
    let pfn = m.page_to_pfn(p);
    m.__free_pages(p, Order::new(10));
    let mut parts = Vec::new();
    while let Some(q) = m.alloc_pages(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_COMP, Order::new(5)) {
        let at = m.page_to_pfn(q).as_u64();
        let inside = (pfn.as_u64()..pfn.as_u64() + 1024).contains(&at);
        parts.push(q);
        if inside && parts.len() > 64 {
            break;
        }
        if parts.len() > 4096 {
            break;
        }
    }
    for q in parts {
        m.__free_pages(q, Order::new(5));
    }
    m.drain_all_pages();
    let entry = core::mem::size_of::<kmem::mm::mm_types::Page>();
    let base = m.pfn_to_page(pfn).unwrap().as_ptr().cast::<u8>();
    let len = 1024 * entry;
    assert!(resident_pages(base, len).iter().all(|&r| r));
    let shared = m.share_free_memmap(pfn);
    assert_eq!(shared, 15, "memmap pages shared");
    let res = resident_pages(base, len);
    assert!(res[0], "the head's memmap page stays");
    assert_eq!(res[1..].iter().filter(|&&r| r).count(), 0, "{res:?}");
    // SAFETY: the block's memmap is mapped for the machine's lifetime; plain bytes.
    let bytes = unsafe { std::slice::from_raw_parts(base.add(4096), len - 4096) };
    assert!(
        bytes.chunks(entry).all(|e| e == &bytes[..entry]),
        "alike entries"
    );
    // Sharing again (the next reporting pass) finds the pages alike and maps them again.
    assert_eq!(m.share_free_memmap(pfn + 5), 15, "any page of the block");
    // Allocated whole and as compound pages, split, freed: as before.
    let mut big = Vec::new();
    // (Below the watermarks too: the block may be the zone's last.)
    let gfp = GfpFlags::GFP_KERNEL | GfpFlags::__GFP_COMP | GfpFlags::__GFP_MEMALLOC;
    while let Some(q) = m.alloc_pages(gfp, Order::new(10)) {
        big.push(q);
        if m.page_to_pfn(q) == pfn || big.len() > 64 {
            break;
        }
    }
    assert_eq!(
        big.last().map(|&q| m.page_to_pfn(q)),
        Some(pfn),
        "the block taken"
    );
    for q in big {
        m.__free_pages(q, Order::new(10));
    }
    let small: Vec<_> = (0..300)
        .map(|_| m.alloc_pages(GfpFlags::GFP_KERNEL, Order::new(2)).unwrap())
        .collect();
    for q in small {
        m.__free_pages(q, Order::new(2));
    }
    m.drain_all_pages();
    m.check_invariants().unwrap();
    let mut s = String::new();
    m.proc_read("/proc/buddyinfo", &mut s).unwrap();
}
