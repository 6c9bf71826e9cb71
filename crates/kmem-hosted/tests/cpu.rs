//! Threads as CPUs: exclusivity of CPU ids, nesting, and CPU hot-unplug on thread exit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use kmem::platform::{CpuDeadHook, CpuGuard, Platform};
use kmem_hosted::{HostedConfig, HostedPlatform, NR_CPUS, SHARED_CPU};

fn platform() -> HostedPlatform {
    HostedPlatform::new(HostedConfig::deterministic(1 << 20, 1)).unwrap()
}

/// Records the CPUs a hook was called with.
#[derive(Default)]
struct DeadLog {
    cpus: Mutex<Vec<usize>>,
}

/// # Safety
/// `ctx` must point at a live `DeadLog`.
unsafe fn record_dead(ctx: *const (), cpu: usize) {
    // SAFETY: the tests register a `DeadLog` that outlives the platform.
    let log = unsafe { &*ctx.cast::<DeadLog>() };
    log.cpus.lock().unwrap().push(cpu);
}

fn hook_for(log: &Arc<DeadLog>) -> CpuDeadHook {
    CpuDeadHook {
        ctx: Arc::as_ptr(log).cast(),
        func: record_dead,
    }
}

#[test]
fn threads_holding_sections_at_once_have_distinct_cpus() {
    let plat = platform();
    const THREADS: usize = 24;
    let barrier = Barrier::new(THREADS);
    let ids = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                let g = CpuGuard::new(&plat);
                // Everybody is inside a section at this point.
                barrier.wait();
                ids.lock().unwrap().push(g.cpu());
                barrier.wait();
            });
        }
    });
    let mut ids = ids.into_inner().unwrap();
    assert!(ids.iter().all(|&c| c < NR_CPUS));
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), THREADS, "two threads shared a CPU id");
}

#[test]
fn no_two_sections_on_one_cpu_overlap() {
    // Per-CPU "owner" words: entering a section must find its CPU's word free.
    let plat = platform();
    let owners: Vec<AtomicUsize> = (0..NR_CPUS).map(|_| AtomicUsize::new(0)).collect();
    let conflicts = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 1..=8usize {
            let (plat, owners, conflicts) = (&plat, &owners, &conflicts);
            s.spawn(move || {
                for _ in 0..5_000 {
                    let cpu = plat.cpu_get();
                    if owners[cpu].swap(t, Ordering::SeqCst) != 0 {
                        conflicts.fetch_add(1, Ordering::SeqCst);
                    }
                    // A nested section on the same thread gets the same CPU.
                    let inner = plat.cpu_get();
                    assert_eq!(inner, cpu);
                    plat.cpu_put(inner);
                    owners[cpu].store(0, Ordering::SeqCst);
                    plat.cpu_put(cpu);
                }
            });
        }
    });
    assert_eq!(conflicts.load(Ordering::SeqCst), 0);
}

#[test]
fn thread_exit_calls_hook_with_its_cpu() {
    let log = Arc::new(DeadLog::default());
    let plat = platform();
    plat.set_cpu_dead_hook(hook_for(&log));
    // `join` waits for the thread's full exit, thread-local destructors included.
    let cpu = std::thread::scope(|s| {
        s.spawn(|| {
            let c = plat.cpu_get();
            plat.cpu_put(c);
            c
        })
        .join()
        .unwrap()
    });
    assert_eq!(*log.cpus.lock().unwrap(), vec![cpu]);
    // A thread that never entered a section on this platform does not call its hook.
    std::thread::spawn(|| {
        let other = platform();
        let c = other.cpu_get();
        other.cpu_put(c);
    })
    .join()
    .unwrap();
    assert_eq!(log.cpus.lock().unwrap().len(), 1);
    drop(plat);
}

#[test]
fn scoped_threads_exit_into_hook_of_every_platform_they_used() {
    let log_a = Arc::new(DeadLog::default());
    let log_b = Arc::new(DeadLog::default());
    let a = platform();
    let b = platform();
    a.set_cpu_dead_hook(hook_for(&log_a));
    b.set_cpu_dead_hook(hook_for(&log_b));
    let mut cpus = Vec::new();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let ca = a.cpu_get();
                    let cb = b.cpu_get();
                    assert_eq!(ca, cb, "one thread is one CPU for every machine");
                    b.cpu_put(cb);
                    a.cpu_put(ca);
                    ca
                })
            })
            .collect();
        cpus = hs.into_iter().map(|h| h.join().unwrap()).collect();
    });
    cpus.sort_unstable();
    // Joined threads have fully exited, destructors included.
    for log in [&log_a, &log_b] {
        let mut got = log.cpus.lock().unwrap().clone();
        got.sort_unstable();
        assert_eq!(got, cpus);
    }
}

#[test]
fn dropped_platform_is_skipped_at_thread_exit() {
    let log = Arc::new(DeadLog::default());
    let plat = platform();
    plat.set_cpu_dead_hook(hook_for(&log));
    let entered = Arc::new(Barrier::new(2));
    let dropped = Arc::new(Barrier::new(2));
    let plat = Arc::new(plat);
    let t = std::thread::spawn({
        let (plat, entered, dropped) = (plat.clone(), entered.clone(), dropped.clone());
        move || {
            let c = plat.cpu_get();
            plat.cpu_put(c);
            drop(plat);
            entered.wait();
            // The platform is gone before this thread exits.
            dropped.wait();
        }
    });
    entered.wait();
    drop(Arc::into_inner(plat).expect("the thread gave its reference back"));
    dropped.wait();
    t.join().unwrap();
    assert!(log.cpus.lock().unwrap().is_empty());
}

#[test]
fn hook_may_enter_a_section_and_gets_the_shared_cpu() {
    struct Ctx {
        plat: *const HostedPlatform,
        seen: Mutex<Vec<(usize, usize)>>,
    }
    /// # Safety
    /// `ctx` points at a live `Ctx` whose platform is alive.
    unsafe fn hook(ctx: *const (), cpu: usize) {
        // SAFETY: see the function's contract; the test keeps both alive.
        let ctx = unsafe { &*ctx.cast::<Ctx>() };
        // SAFETY: `ctx.plat` points at the test's boxed platform, which the test keeps alive until
        // after the hook is unregistered (the function's contract).
        let plat = unsafe { &*ctx.plat };
        // The exiting thread's own thread-local is gone: its sections use the shared CPU.
        let c = plat.cpu_get();
        plat.cpu_put(c);
        ctx.seen.lock().unwrap().push((cpu, c));
    }
    let plat = Box::new(platform());
    let ctx = Box::new(Ctx {
        plat: &*plat,
        seen: Mutex::new(Vec::new()),
    });
    plat.set_cpu_dead_hook(CpuDeadHook {
        ctx: (&*ctx as *const Ctx).cast(),
        func: hook,
    });
    let cpu = std::thread::scope(|s| {
        s.spawn(|| {
            let c = plat.cpu_get();
            plat.cpu_put(c);
            c
        })
        .join()
        .unwrap()
    });
    assert_eq!(*ctx.seen.lock().unwrap(), vec![(cpu, SHARED_CPU)]);
    drop(plat);
}

#[test]
fn thread_local_destructors_still_run_on_the_threads_cpu() {
    struct Late(std::cell::Cell<Option<&'static HostedPlatform>>);
    static RESULT: AtomicUsize = AtomicUsize::new(usize::MAX);
    impl Drop for Late {
        fn drop(&mut self) {
            if let Some(p) = self.0.get() {
                let c = p.cpu_get();
                let nested = p.cpu_get();
                assert_eq!(nested, c);
                p.cpu_put(nested);
                p.cpu_put(c);
                RESULT.store(c, Ordering::SeqCst);
            }
        }
    }
    thread_local! {
        static LATE: Late = const { Late(std::cell::Cell::new(None)) };
    }
    // 'static for the thread-local's destructor; a static rather than a leaked box, so that
    // Valgrind's leak check (scripts/sanitize) has nothing to report.
    static PLAT: std::sync::OnceLock<HostedPlatform> = std::sync::OnceLock::new();
    let plat: &'static HostedPlatform = PLAT.get_or_init(platform);
    let mine = std::thread::spawn(move || {
        let c = plat.cpu_get();
        plat.cpu_put(c);
        LATE.with(|l| l.0.set(Some(plat)));
        c
    })
    .join()
    .unwrap();
    assert_ne!(mine, SHARED_CPU);
    assert_eq!(RESULT.load(Ordering::SeqCst), mine);
}

#[test]
fn sections_after_the_cpu_went_offline_use_the_shared_cpu() {
    // A pthread key created after kmem-hosted's has its destructor run after the thread's CPU
    // went offline (glibc runs key destructors in key order).
    static PLAT: std::sync::OnceLock<&'static HostedPlatform> = std::sync::OnceLock::new();
    static RESULT: AtomicUsize = AtomicUsize::new(usize::MAX);
    extern "C" fn late(_: *mut libc::c_void) {
        let p = PLAT.get().unwrap();
        let c = p.cpu_get();
        let nested = p.cpu_get();
        assert_eq!(nested, c);
        p.cpu_put(nested);
        p.cpu_put(c);
        RESULT.store(c, Ordering::SeqCst);
    }
    let plat: &'static HostedPlatform = PLAT.get_or_init(|| Box::leak(Box::new(platform())));
    // Make sure kmem-hosted's key exists before ours.
    let c = plat.cpu_get();
    plat.cpu_put(c);
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: valid out-pointer and destructor.
    assert_eq!(unsafe { libc::pthread_key_create(&mut key, Some(late)) }, 0);
    std::thread::spawn(move || {
        let c = plat.cpu_get();
        plat.cpu_put(c);
        assert_ne!(c, SHARED_CPU);
        // SAFETY: a valid key and a non-null marker value.
        let rc = unsafe { libc::pthread_setspecific(key, core::ptr::dangling::<libc::c_void>()) };
        assert_eq!(rc, 0);
    })
    .join()
    .unwrap();
    assert_eq!(RESULT.load(Ordering::SeqCst), SHARED_CPU);
}

#[test]
fn more_platforms_than_tracked_fall_back_to_the_shared_cpu() {
    let plats: Vec<HostedPlatform> = (0..kmem_hosted::cpu::MAX_PLATFORMS_PER_THREAD + 1)
        .map(|_| platform())
        .collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut got = Vec::new();
            for p in &plats {
                let c = p.cpu_get();
                got.push(c);
                p.cpu_put(c);
            }
            let mine = kmem_hosted::thread_cpu_slot().unwrap();
            let (last, tracked) = got.split_last().unwrap();
            assert!(tracked.iter().all(|&c| c == mine));
            assert_eq!(*last, SHARED_CPU);
        });
    });
    // Once a tracked platform is dropped, its entry is reused.
    let mut plats = plats;
    drop(plats.remove(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            for p in &plats {
                let c = p.cpu_get();
                p.cpu_put(c);
            }
            let mine = kmem_hosted::thread_cpu_slot().unwrap();
            for p in &plats {
                let c = p.cpu_get();
                assert_eq!(c, mine);
                p.cpu_put(c);
            }
        });
    });
}

#[test]
fn a_thread_exiting_inside_sections_still_goes_offline() {
    let log = Arc::new(DeadLog::default());
    let plat = platform();
    plat.set_cpu_dead_hook(hook_for(&log));
    let cpu = std::thread::scope(|s| {
        s.spawn(|| {
            // A leaked guard: the section never ends.
            let g = CpuGuard::new(&plat);
            let c = g.cpu();
            std::mem::forget(g);
            c
        })
        .join()
        .unwrap()
    });
    assert_eq!(*log.cpus.lock().unwrap(), vec![cpu]);
}

/// One step of the registration model test.
#[derive(Clone, Debug)]
enum Step {
    /// Create a platform in slot `i` of the test's table (if empty).
    Create(usize),
    /// Drop the platform in slot `i` (if present and not in an open section).
    Drop(usize),
    /// Enter a section on platform `i` (if present).
    Get(usize),
    /// Leave the innermost open section.
    Put,
}

const TABLE: usize = 12;

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        2 => (0..TABLE).prop_map(Step::Create),
        2 => (0..TABLE).prop_map(Step::Drop),
        3 => (0..TABLE).prop_map(Step::Get),
        3 => Just(Step::Put),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// A thread tracks up to MAX_PLATFORMS_PER_THREAD live platforms, reusing the entries of
    /// dropped ones first-fit; sections on tracked platforms run on the thread's own CPU, on
    /// any other platform on SHARED_CPU. Checked against a model of the tracking table.
    #[test]
    fn platform_tracking_matches_a_model(steps in proptest::collection::vec(step(), 1..160)) {
        const MAX: usize = kmem_hosted::cpu::MAX_PLATFORMS_PER_THREAD;
        // Run on a fresh thread so the thread-local starts empty.
        let r = std::thread::spawn(move || -> Result<(), String> {
            let mut table: Vec<Option<HostedPlatform>> = (0..TABLE).map(|_| None).collect();
            // Model: generation-tagged platform identities in the thread's tracking entries.
            let mut gen = [0usize; TABLE];
            let mut next_gen = 1usize;
            let mut regs: [Option<(usize, usize)>; MAX] = [None; MAX];
            let mut stack: Vec<(usize, usize)> = Vec::new();
            for s in steps {
                match s {
                    Step::Create(i) if table[i].is_none() => {
                        table[i] = Some(platform());
                        gen[i] = next_gen;
                        next_gen += 1;
                    }
                    Step::Drop(i) if table[i].is_some() && !stack.iter().any(|e| e.0 == i) => {
                        table[i] = None;
                    }
                    Step::Get(i) => {
                        let Some(p) = &table[i] else { continue };
                        let me = (i, gen[i]);
                        let alive = |e: &(usize, usize)| table[e.0].is_some() && gen[e.0] == e.1;
                        let tracked = if regs.contains(&Some(me)) {
                            true
                        } else if let Some(r) =
                            regs.iter_mut().find(|r| !matches!(r, Some(e) if alive(e)))
                        {
                            *r = Some(me);
                            true
                        } else {
                            false
                        };
                        let c = p.cpu_get();
                        let expect = if tracked {
                            kmem_hosted::thread_cpu_slot().ok_or("no slot")?
                        } else {
                            SHARED_CPU
                        };
                        if c != expect {
                            return Err(format!("platform {i}: cpu {c}, expected {expect}"));
                        }
                        stack.push((i, c));
                    }
                    Step::Put => {
                        if let Some((i, c)) = stack.pop() {
                            table[i].as_ref().unwrap().cpu_put(c);
                        }
                    }
                    _ => {}
                }
            }
            while let Some((i, c)) = stack.pop() {
                table[i].as_ref().unwrap().cpu_put(c);
            }
            Ok(())
        })
        .join()
        .unwrap();
        proptest::prop_assert_eq!(r, Ok(()));
    }
}
