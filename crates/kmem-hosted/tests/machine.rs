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
