//! kmem against a real Linux 6.18 booted in QEMU (`-M pc -smp 2`, 128 MiB and 5 GiB; the
//! files in tests/fixtures/linux-6.18-qemu, copied from shared/reference/linux-6.18-qemu, see
//! its README): every field whose value follows from a formula kmem models must be Linux's.
//! Values that depend on the real kernel's image size and drivers are not compared.

mod common;
use common::*;

use kmem::arch::Arch;

const MACHINES: [(&str, u64); 2] = [("128M-smp2", 128 << 20), ("5G-smp2", 5 << 30)];

fn reference(machine: &str, file: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/linux-6.18-qemu/{machine}/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The messages of a boot log, without the `[    0.000000] ` timestamps.
fn messages(log: &str) -> Vec<String> {
    log.lines()
        .map(|l| match l.strip_prefix('[') {
            Some(rest) => rest.split_once("] ").map_or(rest, |(_, m)| m).to_string(),
            None => l.to_string(),
        })
        .collect()
}

fn kmem_dmesg(m: &M) -> Vec<String> {
    let mut s = String::new();
    m.dmesg(&mut s, true).unwrap();
    messages(&s)
}

/// `Number of blocks type` rows of /proc/pagetypeinfo: zone name → total pageblocks.
fn pageblocks(pagetypeinfo: &str) -> Vec<(String, u64)> {
    let mut rows = Vec::new();
    let mut in_blocks = false;
    for l in pagetypeinfo.lines() {
        if l.starts_with("Number of blocks type") {
            in_blocks = true;
            continue;
        }
        if !in_blocks || !l.starts_with("Node 0, zone") {
            continue;
        }
        let mut w = l["Node 0, zone".len()..].split_whitespace();
        let zone = w.next().unwrap().to_string();
        rows.push((zone, w.map(|n| n.parse::<u64>().unwrap()).sum()));
    }
    rows
}

/// mm/vmstat.c pagetypeinfo_showblockcount_print: pageblocks whose first page is valid and
/// in the zone; the 5 GiB machine's DMA32 has 1528 (the PCI hole has no memmap), not 2040.
#[test]
fn pageblock_counts_skip_memory_holes() {
    for (name, mem) in MACHINES {
        let m = boot(Arch::X86_64, mem, 2);
        assert_eq!(
            pageblocks(&proc(&m, "/proc/pagetypeinfo")),
            pageblocks(&reference(name, "pagetypeinfo.txt")),
            "{name}"
        );
    }
}

/// Since 6.7 `pcp->high` starts at 0 and is clamped to [high_min, high_max] the first time
/// the CPU's lists are used (`nr_pcp_high`, `nr_pcp_alloc`): a CPU that never used a zone's
/// lists shows `high: 0` in /proc/zoneinfo, as every pageset of DMA does in the reference.
#[test]
fn unused_pageset_high_is_zero() {
    for (name, mem) in MACHINES {
        let m = boot(Arch::X86_64, mem, 2);
        let zi = proc(&m, "/proc/zoneinfo");
        let mut zone = String::new();
        let mut unused_per_zone = std::collections::BTreeMap::new();
        let mut count = None;
        for l in zi.lines() {
            if let Some(z) = l.strip_prefix("Node 0, zone") {
                zone = z.trim().to_string();
            }
            let t = l.trim();
            if let Some(c) = t.strip_prefix("count:") {
                count = Some(c.trim().parse::<u64>().unwrap());
            }
            if let Some(h) = t.strip_prefix("high:") {
                let h: u64 = h.trim().parse().unwrap();
                if zone == "DMA" {
                    assert_eq!(h, 0, "{name}: DMA pageset high");
                }
                if h == 0 {
                    assert_eq!(count, Some(0), "{name}: high 0 with pages on the list");
                    *unused_per_zone.entry(zone.clone()).or_insert(0) += 1;
                }
            }
        }
        // One thread booted the machine: at least one of the two CPUs never touched a zone.
        for z in ["DMA", "DMA32"] {
            assert!(
                unused_per_zone.get(z).copied().unwrap_or(0) >= 1,
                "{name}: zone {z} has no unused pageset with high 0:\n{zi}"
            );
        }
    }
}

fn meminfo_kb(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.trim().trim_end_matches(" kB").trim().parse().ok()
    })
}

/// arch/x86/mm/pat/set_memory.c arch_report_meminfo: the direct map as built by
/// init_mem_mapping/split_mem_range — the first MiB and unaligned heads/tails in 4k pages,
/// the rest in 2M pages (QEMU's default CPU has no 1G pages). The real kernel later splits
/// 20 MiB of 2M mappings into 4k (kernel text/rodata protections), so its 4k count is 20480 kB
/// more and its 2M count 20480 kB less; the total is the same.
#[test]
fn meminfo_directmap() {
    for (name, mem) in MACHINES {
        let m = boot(Arch::X86_64, mem, 2);
        let mi = proc(&m, "/proc/meminfo");
        let r = reference(name, "meminfo.txt");
        let keys = |s: &str| -> Vec<String> {
            s.lines()
                .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
                .filter(|k| k.starts_with("DirectMap"))
                .collect()
        };
        assert_eq!(keys(&mi), keys(&r), "{name}");
        let (k4, m2) = (
            meminfo_kb(&mi, "DirectMap4k").unwrap(),
            meminfo_kb(&mi, "DirectMap2M").unwrap(),
        );
        let (rk4, rm2) = (
            meminfo_kb(&r, "DirectMap4k").unwrap(),
            meminfo_kb(&r, "DirectMap2M").unwrap(),
        );
        assert_eq!(k4 + m2, rk4 + rm2, "{name}: direct map total");
        assert_eq!(
            k4,
            rk4 - 20480,
            "{name}: 4k mappings before the kernel's splits"
        );
        assert!(mi.ends_with(&format!(
            "Hugetlb:               0 kB\nDirectMap4k:    {k4:>8} kB\nDirectMap2M:    {m2:>8} kB\n"
        )));
    }
    // i386 without PAE: 4M pages above the first 4 MiB of lowmem.
    let m = boot(Arch::I386, 1 << 30, 2);
    let mi = proc(&m, "/proc/meminfo");
    let k4 = meminfo_kb(&mi, "DirectMap4k").unwrap();
    let m4 = meminfo_kb(&mi, "DirectMap4M").unwrap();
    assert_eq!(k4, 4096, "{mi}");
    // The direct map ends at 896 MiB; [0, 4 MiB) in 4 KiB pages.
    assert_eq!(k4 + m4, 896 * 1024, "{mi}");
}

/// arch/x86/kernel/setup.c trim_bios_range: page 0 becomes reserved in the e820 table
/// (logged), and the legacy ROM hole is removed.
#[test]
fn e820_page_zero_is_reserved() {
    for (name, mem) in MACHINES {
        let m = boot(Arch::X86_64, mem, 2);
        let log = kmem_dmesg(&m);
        let want = [
            "e820: update [mem 0x00000000-0x00000fff] usable ==> reserved",
            "e820: remove [mem 0x000a0000-0x000fffff] usable",
        ];
        let at = |s: &str| log.iter().position(|l| l == s);
        let (u, r) = (at(want[0]), at(want[1]));
        assert!(u.is_some() && r == u.map(|u| u + 1), "{name}: {log:#?}");
        let first_last_pfn = log.iter().position(|l| l.starts_with("last_pfn")).unwrap();
        assert!(r.unwrap() < first_last_pfn);
        let iomem = proc(&m, "/proc/iomem");
        let ri = reference(name, "iomem.txt");
        assert_eq!(
            iomem.lines().take(2).collect::<Vec<_>>(),
            ri.lines().take(2).collect::<Vec<_>>(),
            "{name}"
        );
    }
}

/// kernel/resource.c + arch/x86/kernel/setup.c: the kernel image's code, rodata, data and
/// bss are children of the System RAM resource holding them, in that order, and agree with
/// the `Memory:` line's sizes.
#[test]
fn iomem_kernel_image_children() {
    for arch in [Arch::X86_64, Arch::I386] {
        for mem in [128u64 << 20, 1 << 30, 5 << 30] {
            if arch == Arch::I386 && mem > (1 << 30) {
                continue;
            }
            let m = boot(arch, mem, 2);
            let iomem = proc(&m, "/proc/iomem");
            let parse = |l: &str| -> (u64, u64, String) {
                let (r, n) = l.trim().split_once(" : ").unwrap();
                let (a, b) = r.split_once('-').unwrap();
                (
                    u64::from_str_radix(a, 16).unwrap(),
                    u64::from_str_radix(b, 16).unwrap(),
                    n.to_string(),
                )
            };
            let mut parent = None;
            let mut kids = Vec::new();
            for l in iomem.lines() {
                if l.starts_with("  ") {
                    kids.push((parse(l), parent.clone()));
                } else {
                    parent = Some(parse(l));
                }
            }
            let names: Vec<_> = kids.iter().map(|((_, _, n), _)| n.as_str()).collect();
            assert_eq!(
                names,
                ["Kernel code", "Kernel rodata", "Kernel data", "Kernel bss"],
                "{arch} {mem}:\n{iomem}"
            );
            let mut prev_end = 0;
            for ((s, e, _), p) in &kids {
                let (ps, pe, pn) = p.clone().unwrap();
                assert_eq!(pn, "System RAM");
                assert!(ps <= *s && e <= &pe && s <= e && *s > prev_end, "{iomem}");
                prev_end = *e;
            }
            let log = kmem_dmesg(&m);
            let mem_line = log.iter().find(|l| l.starts_with("Memory: ")).unwrap();
            let code_k: u64 = mem_line
                .split_once(" (")
                .unwrap()
                .1
                .split_once('K')
                .unwrap()
                .0
                .parse()
                .unwrap();
            let ((cs, ce, _), _) = &kids[0];
            assert_eq!((ce + 1 - cs) >> 10, code_k, "{mem_line}\n{iomem}");
        }
    }
}

/// The memory lines of the boot log, in 6.18's order: e820, trim, `last_pfn` (twice above
/// 4 GiB), zones, `On node 0, zone X: N pages in unavailable ranges`, the zonelists,
/// `SLUB:`, then `Memory:` (printed late since 6.x, after SLUB).
#[test]
fn boot_log_memory_lines_as_linux() {
    let kinds = [
        "BIOS-e820:",
        "e820: update",
        "e820: remove",
        "last_pfn =",
        "Zone ranges:",
        "  DMA",
        "  DMA32",
        "  Normal",
        "  Device",
        "Movable zone start",
        "Early memory node ranges",
        "  node   0:",
        "Initmem setup node",
        "On node 0, zone",
        "Built 1 zonelists",
        "SLUB:",
        "Memory:",
    ];
    for (name, mem) in MACHINES {
        let pick = |log: &[String]| -> Vec<String> {
            log.iter()
                .filter(|l| kinds.iter().any(|k| l.starts_with(k)))
                // QEMU's TCG adds e820 entries kmem's machine has not (README), and the
                // `Memory:` totals depend on the kernel image.
                .filter(|l| !l.contains("0x000000fd00000000") && !l.contains("0x00000000feffc000"))
                .map(|l| {
                    if l.starts_with("Memory:") {
                        "Memory:".to_string()
                    } else {
                        l.clone()
                    }
                })
                .collect()
        };
        let m = boot(Arch::X86_64, mem, 2);
        assert_eq!(
            pick(&kmem_dmesg(&m)),
            pick(&messages(&reference(name, "dmesg.txt"))),
            "{name}"
        );
    }
}

/// /proc/slabinfo ends with `kmem_cache_node` then `kmem_cache`, the two boot caches.
#[test]
fn slabinfo_boot_caches() {
    for (name, mem) in MACHINES {
        let m = boot(Arch::X86_64, mem, 2);
        let si = proc(&m, "/proc/slabinfo");
        let tail: Vec<_> = si
            .lines()
            .rev()
            .take(2)
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(tail, ["kmem_cache", "kmem_cache_node"], "{name}:\n{si}");
        let node = si
            .lines()
            .find(|l| l.starts_with("kmem_cache_node "))
            .unwrap();
        let f: Vec<u64> = node
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        // The caches: every line but the two header lines and kmem_cache_node's own.
        let caches = si.lines().count() as u64 - 3;
        // active, total, objsize, per slab, pages per slab, tunables ×3, active slabs, slabs.
        assert_eq!(f[0], caches, "{node}");
        assert_eq!(f[2] % 64, 0, "SLAB_HWCACHE_ALIGN: {node}");
        assert_eq!(f[8], f[0].div_ceil(f[3]), "{node}");
        assert_eq!(f[1], f[8] * f[3], "{node}");
    }
}

/// mm/percpu.c pcpu_nr_pages: /proc/meminfo `Percpu` is the pages of per-CPU data, every
/// possible CPU's copy included — each populated zone's per-CPU page lists (Linux's
/// `alloc_percpu(struct per_cpu_pages)`), one per possible CPU of the platform, plus every slab
/// cache's per-CPU `kmem_cache_cpu` array (`alloc_kmem_cache_cpus`), which a new cache adds
/// and its destruction gives back.
#[test]
fn meminfo_percpu_counts_per_cpu_areas() {
    use kmem::platform::Platform;
    use kmem::slab::common::SlabFlags;
    for (name, mem) in MACHINES {
        let m = boot(Arch::X86_64, mem, 2);
        let mi = proc(&m, "/proc/meminfo");
        let zones = pageblocks(&proc(&m, "/proc/pagetypeinfo")).len();
        let per_zone = (m.platform().possible_cpus()
            * std::mem::size_of::<kmem::mmzone::PcpSlot>())
        .div_ceil(4096);
        let zone_kb = (zones * per_zone * 4) as u64;
        let before = meminfo_kb(&mi, "Percpu").unwrap();
        assert!(
            before > zone_kb,
            "{name}: slab caches' per-CPU arrays count too:\n{mi}"
        );
        let c = m
            .kmem_cache_create("percpu_probe", 100, 0, SlabFlags::NO_MERGE, None)
            .unwrap();
        let with = meminfo_kb(&proc(&m, "/proc/meminfo"), "Percpu").unwrap();
        assert!(
            with > before,
            "{name}: a new cache's kmem_cache_cpu array is per-CPU memory"
        );
        m.kmem_cache_destroy(c);
        let after = meminfo_kb(&proc(&m, "/proc/meminfo"), "Percpu").unwrap();
        assert_eq!(after, before, "{name}: destroying the cache gives it back");
    }
}
