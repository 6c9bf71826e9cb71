//! The self-tests, in groups run in boot order: `early` (before kmem) and `platform`; then, over
//! the booted machine, `page_alloc` (memblock, zones, the buddy allocator to exhaustion and
//! back), `slab` (kmalloc, kmem_cache, slub_debug), `kds` (the data structures on kmem memory),
//! `rcu` (grace periods, callbacks, kfree_rcu, the XArray on RCU),
//! `vmalloc` (on the real page tables), `heap` (`alloc` collections on kmalloc), `stress` (a
//! random mixed workload), `kfence` (real `#PF`s on KFENCE's guard pages, with
//! `kfence.sample_interval=N`) and `user` (ring-3 programs: demand faults, fork/COW, SIGSEGV
//! kills, system calls, swap); with `kmemleak=on`, `kmemleak` (a planted leak found by
//! scanning the real memory); with `kmemcheck=1` (or 2), `kmemcheck` (uninitialised and freed
//! reads caught through real `#PF`/`#DB` on hidden slab pages); with `cma=`, `cma` (the area,
//! `cma_alloc`/`cma_release`,
//! `dma_alloc_coherent`); last, the deliberate failures the command line asks for.
//! After `platform`, `acpi` (the RSDP found by the BIOS-area scan); after `page_alloc`, `numa`:
//! the ACPI table parser on tables of its own (malformed ones included) and the SRAT/SLIT QEMU
//! gave, checked against `selftest.numa=`.

mod cma;
mod deliberate;
mod early;
mod heap;
mod kds;
mod kfence;
mod kmemcheck;
mod kmemleak;
mod numa;
mod page_alloc;
mod platform;
mod rcu;
mod slab;
mod stress;
mod user;
mod vmalloc;

use crate::mm::Kmem;
use crate::platform::BareMetal;
use crate::pvh::{BootInfo, Cmdline};
use crate::selftest::Runner;

/// What the tests over a booted machine see.
pub struct KernelCtx {
    /// The boot information.
    pub info: &'static BootInfo,
    /// The booted memory subsystem.
    pub mm: &'static Kmem,
}

/// Returns the number of free pages once every slab cache has been shrunk (empty slabs back
/// in the buddy allocator) and the per-CPU page lists drained: the figure to compare before
/// and after a test that allocates and frees everything it allocated.
pub fn settle(mm: &Kmem) -> usize {
    let mut caches = [None; 256];
    let mut n = 0;
    mm.for_each_cache(&mut |c, _| {
        if n < caches.len() {
            caches[n] = Some(c);
            n += 1;
        }
    });
    for c in caches[..n].iter().flatten() {
        mm.kmem_cache_shrink(*c);
    }
    mm.drain_local_pages();
    // kmemleak's metadata pool (kmemleak=on) keeps the pages it takes: not the test's.
    mm.nr_free_pages() + mm.kmemleak_stats().pool_pages
}

/// Runs the groups that need no kmem.
pub fn run_early(runner: &mut Runner, info: &BootInfo, plat: &BareMetal) {
    runner.run("early", early::TESTS, info);
    runner.run("platform", platform::TESTS, plat);
    runner.run("acpi", numa::EARLY, info);
}

/// Runs the groups over the booted machine, then the deliberate failures.
pub fn run_kernel(runner: &mut Runner, ctx: &KernelCtx) {
    runner.run("page_alloc", page_alloc::TESTS, ctx);
    runner.run("numa", numa::TESTS, ctx);
    runner.run("slab", slab::TESTS, ctx);
    runner.run("kds", kds::TESTS, ctx);
    runner.run("rcu", rcu::TESTS, ctx);
    runner.run("vmalloc", vmalloc::TESTS, ctx);
    runner.run("heap", heap::TESTS, ctx);
    runner.run("stress", stress::TESTS, ctx);
    runner.run("kfence", kfence::TESTS, ctx);
    runner.run("user", user::TESTS, ctx);
    let cmdline = Cmdline(ctx.info.cmdline());
    if cmdline.has_value("kmemleak", "on") {
        runner.run("kmemleak", kmemleak::TESTS, ctx);
    }
    if cmdline.values("kmemcheck").any(|v| v != "0") {
        runner.run("kmemcheck", kmemcheck::TESTS, ctx);
    }
    if cmdline.values("cma").next().is_some() {
        runner.run("cma", cma::TESTS, ctx);
    }
    for (value, group) in [
        ("fail", deliberate::FAIL),
        ("panic", deliberate::PANIC),
        ("fault", deliberate::FAULT),
        ("doublefault", deliberate::DOUBLE_FAULT),
    ] {
        if cmdline.has_value("selftest", value) {
            runner.run("deliberate", group, ctx.info);
        }
    }
}
