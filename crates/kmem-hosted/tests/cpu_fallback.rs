//! More threads than CPU ids: the extra threads share `SHARED_CPU` under a lock.
//!
//! This file holds a single test because it takes every CPU slot of the process.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use kmem::platform::{CpuDeadHook, Platform};
use kmem_hosted::cpu::cpu_slots_in_use;
use kmem_hosted::{HostedConfig, HostedPlatform, NR_CPUS, SHARED_CPU};

/// # Safety
/// `ctx` must point at a live `Mutex<Vec<usize>>` for as long as the hook is registered.
unsafe fn record_dead(ctx: *const (), cpu: usize) {
    // SAFETY: `ctx` is the test's `Mutex<Vec<usize>>`, alive until the end of the test.
    let log = unsafe { &*ctx.cast::<Mutex<Vec<usize>>>() };
    log.lock().unwrap().push(cpu);
}

#[test]
fn extra_threads_share_the_last_cpu_under_a_lock() {
    let plat = HostedPlatform::new(HostedConfig::deterministic(1 << 20, 7)).unwrap();
    let dead = Mutex::new(Vec::new());
    plat.set_cpu_dead_hook(CpuDeadHook {
        ctx: (&dead as *const Mutex<Vec<usize>>).cast(),
        func: record_dead,
    });

    // Take every exclusive slot with threads that then wait, outside any section.
    let holders = NR_CPUS - 1 - cpu_slots_in_use();
    let hold = Arc::new(Barrier::new(holders + 1));
    let release = Arc::new(Barrier::new(holders + 1));
    const EXTRA: usize = 4;
    let inside = AtomicUsize::new(0);
    let overlap = AtomicBool::new(false);
    let extra_done = Barrier::new(EXTRA + 1);
    let retry = Barrier::new(EXTRA + 1);

    std::thread::scope(|s| {
        let holder_handles: Vec<_> = (0..holders)
            .map(|_| {
                let (plat, hold, release) = (&plat, hold.clone(), release.clone());
                std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn_scoped(s, move || {
                        let c = plat.cpu_get();
                        plat.cpu_put(c);
                        hold.wait();
                        release.wait();
                        c
                    })
                    .unwrap()
            })
            .collect();
        hold.wait();
        assert_eq!(cpu_slots_in_use(), NR_CPUS - 1);

        let extra: Vec<_> = (0..EXTRA)
            .map(|_| {
                let (plat, inside, overlap, extra_done, retry) =
                    (&plat, &inside, &overlap, &extra_done, &retry);
                s.spawn(move || {
                    for _ in 0..200 {
                        let c = plat.cpu_get();
                        assert_eq!(c, SHARED_CPU);
                        if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                            overlap.store(true, Ordering::SeqCst);
                        }
                        // Nested on the same thread: must not deadlock on the shared lock.
                        let n = plat.cpu_get();
                        assert_eq!(n, SHARED_CPU);
                        std::thread::yield_now();
                        plat.cpu_put(n);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        plat.cpu_put(c);
                    }
                    assert_eq!(kmem_hosted::thread_cpu_slot(), None);
                    extra_done.wait();
                    // The holders exit meanwhile; the next outermost section claims a slot.
                    retry.wait();
                    let c = plat.cpu_get();
                    plat.cpu_put(c);
                    c
                })
            })
            .collect();

        extra_done.wait();
        assert!(
            !overlap.load(Ordering::SeqCst),
            "two threads inside SHARED_CPU at once"
        );
        // A thread that exits inside a shared section (leaked guard) releases the shared CPU.
        let leaked = s
            .spawn(|| {
                let g = kmem::platform::CpuGuard::new(&plat);
                let c = g.cpu();
                std::mem::forget(g);
                c
            })
            .join()
            .unwrap();
        assert_eq!(leaked, SHARED_CPU);
        // Checked from this thread, alive all along, so its pthread id differs from the
        // leaker's (a new thread could reuse it and look like the owner).
        let again = plat.cpu_get();
        plat.cpu_put(again);
        assert_eq!(again, SHARED_CPU);
        release.wait();
        let held: Vec<usize> = holder_handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        retry.wait();
        let later: Vec<usize> = extra.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(later.iter().all(|&c| c != SHARED_CPU), "{later:?}");

        // Every holder went offline with its own CPU; the shared CPU never goes offline.
        let log = dead.lock().unwrap().clone();
        assert!(!log.contains(&SHARED_CPU));
        for c in held.iter().chain(&later) {
            assert!(log.contains(c), "cpu {c} did not go offline");
        }
    });
}
