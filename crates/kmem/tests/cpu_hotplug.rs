//! CPU hot-unplug on the hosted platform: a thread that exits takes its CPU offline, and the
//! machine gets back everything that CPU held — SLUB's active and partial slabs
//! (`slub_cpu_dead`) and the per-CPU page lists (`page_alloc_cpu_dead`).

mod common;
use common::*;

use kmem::arch::Arch;
use kmem::GfpFlags;

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
