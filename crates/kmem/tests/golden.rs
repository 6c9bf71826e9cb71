//! Golden test: the boot log, every /proc file and debugfs memblock/memory, byte for byte, at 128 MiB,
//! 1 GiB and 5 GiB (x86_64) and 1 GiB (i386), after boot and after a small fixed workload.
//!
//! The expected files in `tests/golden/` were written by the code before the architecture
//! rework (issue 11); refactors must keep them identical. A deliberate change of output is
//! recorded by running this test with `KMEM_BLESS=1` and committing the new files with the
//! reason in the commit message.
mod common;

use std::fmt::Write as _;
use std::path::PathBuf;

use kmem::arch::Arch;
use kmem::proc::PROC_FILES;
use kmem::{GfpFlags, Order};

fn snapshot(m: &common::M) -> String {
    let mut out = String::new();
    writeln!(out, "==== dmesg").unwrap();
    m.dmesg(&mut out, true).unwrap();
    for path in PROC_FILES {
        // memblock's reserved list includes the machine's own state, whose size is a
        // property of the build (debug builds' locks carry lock-validator fields), like
        // sizeof(pg_data_t) in Linux: not part of the golden output.
        if *path == "/sys/kernel/debug/memblock/reserved" {
            continue;
        }
        writeln!(out, "==== {path}").unwrap();
        m.proc_read(path, &mut out).unwrap();
    }
    out
}

/// A fixed workload touching the buddy allocator, kmalloc, a cache and vmalloc, so the files
/// show more than the state right after boot. Callers seen by /proc/vmallocinfo are this file.
fn workload(m: &common::M) -> String {
    let mut pages = Vec::new();
    for order in [0u32, 1, 3, 5, 9] {
        pages.push((
            m.alloc_pages(GfpFlags::GFP_KERNEL, Order::new(order))
                .unwrap(),
            order,
        ));
    }
    let mut objs = Vec::new();
    for size in [8usize, 100, 192, 1000, 5000, 70_000] {
        objs.push(m.kmalloc(size, GfpFlags::GFP_KERNEL).unwrap());
    }
    let v1 = m.vmalloc(40_000).unwrap();
    let v2 = m.vmalloc(3 << 20).unwrap();
    let mid = snapshot(m);
    // Give half back: what stays shows in the final snapshot.
    for (p, order) in pages.drain(..).step_by(2) {
        m.__free_pages(p, Order::new(order));
    }
    for o in objs.drain(..).step_by(2) {
        m.kfree(o.as_ptr());
    }
    m.vfree(v1);
    let _ = v2;
    mid
}

/// The files show per-CPU page lists, so the workload must run on CPU 0 every time. A hosted
/// thread's CPU is the lowest slot free in the whole process when it first enters a CPU
/// section, so with tests running in parallel it was whichever slot was free (a run with
/// `--test-threads=4`, or under Valgrind, put one machine's workload on CPU 2 or 3). Hence: one
/// check at a time, each on a fresh thread that is the only CPU user in this binary, joined
/// (its slot freed) before the next starts.
fn check(name: &str, arch: Arch, mem: u64) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let r = std::thread::scope(|s| s.spawn(|| check_on_this_thread(name, arch, mem)).join());
    if let Err(panic) = r {
        std::panic::resume_unwind(panic);
    }
}

fn check_on_this_thread(name: &str, arch: Arch, mem: u64) {
    let m = common::boot(arch, mem, 2);
    let mut got = snapshot(&m);
    got.push_str("==== after workload (mid)\n");
    got.push_str(&workload(&m));
    got.push_str("==== after workload (end)\n");
    got.push_str(&snapshot(&m));
    common::assert_lockdep_quiet(&m);

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("KMEM_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with KMEM_BLESS=1 to create)", path.display()));
    if got != want {
        let (line, (g, w)) = got
            .lines()
            .zip(want.lines())
            .enumerate()
            .find(|(_, (g, w))| g != w)
            .unwrap_or((
                got.lines().count().min(want.lines().count()),
                ("<end>", "<end>"),
            ));
        panic!(
            "{name}: output differs from {} at line {}:\n  got:  {g}\n  want: {w}",
            path.display(),
            line + 1
        );
    }
}

/// One test for all machines: the hosted platform gives each thread a process-wide CPU slot,
/// and per-CPU page lists show in /proc/zoneinfo, so the machines must be driven from one
/// thread, one after the other, for the output to be the same on every run.
#[test]
fn golden_proc_files_and_boot_log() {
    check("x86_64-128M.txt", Arch::X86_64, 128 << 20);
    check("x86_64-1G.txt", Arch::X86_64, 1 << 30);
    check("x86_64-5G.txt", Arch::X86_64, 5 << 30);
    check("i386-1G.txt", Arch::I386, 1 << 30);
}
