//! CPU hot-unplug on the hosted platform: a thread that exits takes its CPU offline, and the
//! machine gets back everything that CPU held — SLUB's active and partial slabs
//! (`slub_cpu_dead`) and the per-CPU page lists (`page_alloc_cpu_dead`).

mod common;
use common::*;

use kmem::arch::Arch;
use kmem::GfpFlags;

/// Shrinks every cache and drains this CPU's page lists, then counts free pages: the buddy
/// free areas plus what sits on any CPU's page lists (the hook's own frees land on the
/// lists of the CPU that runs it, as Linux's hotplug callbacks run on a surviving CPU).
fn settle(m: &M) -> usize {
    let mut caches = Vec::new();
    m.for_each_cache(&mut |c, _| caches.push(c));
    for c in caches {
        m.kmem_cache_shrink(c);
    }
    m.drain_local_pages();
    m.nr_free_pages()
        + m.arch()
            .zones()
            .iter()
            .map(|z| m.pcp_pages(*z))
            .sum::<usize>()
}

#[test]
fn exiting_thread_gives_back_its_slabs_and_pages() {
    let m = std::sync::Arc::new(boot(Arch::X86_64, 256 << 20, 4));
    let before = settle(&m);
    let used_before = m.pages_in_use();
    let handles: Vec<_> = (0..3)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                let mut v = Vec::new();
                for i in 0..3000usize {
                    let size = [64usize, 192, 1000, 3000][(i + t) % 4];
                    v.push(m.kmalloc(size, GfpFlags::GFP_KERNEL).unwrap());
                }
                // Free in reverse so the last slabs touched stay active on this CPU.
                for p in v.into_iter().rev() {
                    m.kfree(p.as_ptr());
                }
            })
        })
        .collect();
    for h in handles {
        // pthread_join returns after the thread's exit hooks: its CPU is offline by now.
        h.join().unwrap();
    }
    assert_eq!(
        settle(&m),
        before,
        "slabs or pages stayed with the exited CPUs"
    );
    assert_eq!(m.pages_in_use(), used_before);
    m.check_invariants().unwrap();
    assert_eq!(m.bug_count(), 0);
}
