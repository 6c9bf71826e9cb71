//! Tests of the bare-metal platform before kmem takes it over: per-CPU guards, jiffies,
//! randomness, the spinlock.

// A failure carries its message inline (no heap needed); results are returned once per test,
// so the size does not matter.
#![allow(clippy::result_large_err)]

use crate::platform::BareMetal;
use crate::selftest::{Test, TestResult};
use crate::{check, check_eq, tests};

/// The group, over the platform.
pub const TESTS: &[Test<BareMetal>] = tests![
    platform_cpu_guard_nests,
    platform_jiffies_advance,
    platform_random_varies,
    platform_spinlock_try_lock,
];

fn platform_cpu_guard_nests(plat: &BareMetal) -> TestResult {
    use kmem::platform::{CpuGuard, Platform};
    check_eq!(plat.possible_cpus(), 1);
    {
        let outer = CpuGuard::new(plat);
        let inner = CpuGuard::new(plat);
        check_eq!((outer.cpu(), inner.cpu()), (0, 0));
        check!(
            !crate::arch::irq_save(),
            "interrupts must be off inside a per-CPU section"
        );
    }
    check!(
        !crate::arch::irq_save(),
        "interrupts stay off: the kernel never enables them"
    );
    Ok(())
}

fn platform_jiffies_advance(plat: &BareMetal) -> TestResult {
    use kmem::platform::Platform;
    let start = plat.jiffies();
    let tsc0 = crate::arch::rdtsc();
    // Wait for 3 jiffies (bounded by TSC cycles: 1000 jiffies' worth).
    while plat.jiffies() < start + 3 && crate::arch::rdtsc() - tsc0 < 1000 * plat.tsc_khz() {
        core::hint::spin_loop();
    }
    check!(
        plat.jiffies() >= start + 3,
        "jiffies did not advance ({} -> {})",
        start,
        plat.jiffies()
    );
    Ok(())
}

fn platform_random_varies(plat: &BareMetal) -> TestResult {
    use kmem::platform::Platform;
    let mut v = [0u64; 8];
    for x in v.iter_mut() {
        *x = plat.random_u64();
    }
    let distinct = (0..v.len()).filter(|&i| !v[..i].contains(&v[i])).count();
    check!(distinct >= 7, "random_u64 repeats: {v:x?}");
    let ones: u32 = v.iter().map(|x| x.count_ones()).sum();
    check!(
        (128..=384).contains(&ones),
        "random_u64 is biased: {ones} of 512 bits set"
    );
    Ok(())
}

fn platform_spinlock_try_lock(_: &BareMetal) -> TestResult {
    let lock = crate::spinlock::SpinLock::new(5u32);
    {
        let mut g = lock.lock();
        *g += 1;
        check!(
            lock.try_lock().is_none(),
            "a held lock must not be taken again"
        );
    }
    check_eq!(*lock.try_lock().expect("free lock"), 6);
    Ok(())
}
