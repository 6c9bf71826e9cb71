//! `fork` under libkmem_malloc.so: parent and child must each have their own heap, including
//! the allocator's `struct page`s (which live in the nodes' virtual memory map, not in the
//! direct map: both must be copied on write by `fork`).
//!
//! Each program runs with the library preloaded, in its own process group, and is killed
//! (the whole group) if it has not finished after [`HANG`]: a child that shares its parent's
//! free lists can loop forever in them.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::lib;

/// How long a program may run before it counts as hung (they take well under a second).
const HANG: Duration = Duration::from_secs(120);

fn have(prog: &str) -> bool {
    let ok = Command::new(prog)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("note: {prog} is not installed; test skipped");
    }
    ok
}

/// Runs `cmd` with the library preloaded; returns (exit status, stdout, stderr). Panics if it
/// hangs (after killing its process group).
fn run_preloaded(mut cmd: Command, what: &str) -> (std::process::ExitStatus, String, String) {
    cmd.env("LD_PRELOAD", lib())
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let pid = child.id() as i32;
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > HANG {
            // SAFETY: kill(2) of the process group this test created (its leader is `pid`).
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.wait();
            panic!("{what}: hung under libkmem_malloc.so (killed)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    // Whatever the group's other members (forked children) still do, they go too.
    // SAFETY: kill(2) of the process group this test created (its leader is `pid`), touching
    // no memory of ours; the group may be empty by now (ESRCH), which is fine.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kmem-malloc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gcc(src: &Path, out: &Path) {
    let st = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(out)
        .arg(src)
        .status()
        .unwrap();
    assert!(st.success(), "gcc {} failed", src.display());
}

/// Command substitutions: bash forks a subshell per `$(…)`; the second one runs a program.
/// The library's `struct page`s were shared with the child: this segfaulted.
#[test]
fn bash_command_substitutions() {
    if !have("bash") {
        return;
    }
    let mut c = Command::new("bash");
    c.args([
        "-c",
        "x=$(echo hi); y=$(/bin/echo yo); z=$(for i in 1 2 3; do echo $i; done | tr -d '\\n'); echo \"$x $y $z\"",
    ]);
    let (st, out, err) = run_preloaded(c, "bash");
    assert!(st.success(), "bash: {st} (signal {:?})\n{err}", st.signal());
    assert_eq!(out, "hi yo 123\n");
}

/// Parents and (nested) children allocating and freeing buddy blocks and slab objects, at
/// the same time and one after the other: no block is ever handed out twice.
#[test]
fn fork_keeps_parent_and_child_heaps_apart() {
    if !have("gcc") {
        return;
    }
    let d = tmpdir("fork-pages");
    let exe = d.join("fork_pages");
    gcc(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/programs/fork_pages.c"),
        &exe,
    );
    for thp in ["0", "1"] {
        let mut c = Command::new(&exe);
        c.env("KMEM_MALLOC_THP", thp);
        let (st, out, err) = run_preloaded(c, "fork_pages");
        assert!(
            st.success(),
            "fork_pages (KMEM_MALLOC_THP={thp}): {st} (signal {:?})\n{out}\n{err}",
            st.signal()
        );
        assert_eq!(out, "bad 0\n", "KMEM_MALLOC_THP={thp}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `fork` while three threads are inside `malloc`/`free` all the time: the prepare handler
/// waits for every thread to leave the allocator (per-thread counters and `membarrier`,
/// `ACTIVE` without it), so each of 150 children finds the heap whole and allocates,
/// checks and frees. A child forked in the middle of another thread's operation hangs on
/// its lock or breaks a free list.
#[test]
fn fork_while_threads_allocate() {
    if !have("gcc") {
        return;
    }
    let d = tmpdir("fork-busy");
    let exe = d.join("fork_busy");
    gcc(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/programs/fork_busy.c"),
        &exe,
    );
    let (st, out, err) = run_preloaded(Command::new(&exe), "fork_busy");
    assert!(
        st.success(),
        "fork_busy: {st} (signal {:?})\n{out}\n{err}",
        st.signal()
    );
    assert_eq!(out, "forks 150 bad 0\n");
    let _ = std::fs::remove_dir_all(&d);
}
