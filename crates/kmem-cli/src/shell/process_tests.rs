//! The process functions on a small machine.

use super::tests::{out1, run, shell};
use super::*;
use kmem::arch::Arch;

const MAP: &str = "PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0";

#[test]
fn private_mapping_written_and_read_back() {
    let mut sh = shell(Arch::X86_64);
    assert_eq!(out1(&mut sh, "p = spawn(\"t\")"), "p = 1\n");
    let o = out1(&mut sh, &format!("a = mmap(p, 0, 8 << 12, {MAP})"));
    assert!(o.starts_with("a = 0x7ffff7"), "{o}");
    // Fresh anonymous memory reads as zero (the zero page), then holds what was written.
    assert_eq!(out1(&mut sh, "upeek64(p, a + 4096)"), "0\n");
    out1(
        &mut sh,
        "upoke64(p, a + 8, 0x1122334455667788); upoke8(p, a + 3, 0xab)",
    );
    assert_eq!(
        out1(&mut sh, "upeek64(p, a + 8) == 0x1122334455667788"),
        "1\n"
    );
    assert_eq!(
        out1(&mut sh, "upeek32(p, a)"),
        format!("{}\n", 0xab00_0000u32)
    );
    assert_eq!(out1(&mut sh, "upeek16(p, a + 2)"), format!("{}\n", 0xab00));
    out1(&mut sh, "umemset(p, a + 4096, 0x5a, 3 * 4096)");
    assert_eq!(out1(&mut sh, "upeek8(p, a + 4 * 4096 - 1)"), "90\n");
    assert_eq!(out1(&mut sh, "upeek8(p, a + 4 * 4096)"), "0\n");
    let maps = out1(&mut sh, "cat /proc/$p/maps");
    let first = maps.lines().next().unwrap();
    assert!(first.ends_with(" rw-p 00000000 00:00 0 "), "{maps}");
    assert!(maps.contains("[stack]"), "{maps}");
    assert_eq!(out1(&mut sh, "kill(p, SIGKILL)"), "0\n");
    assert_eq!(sh.k.reports(), 0);
}

#[test]
fn failures_print_errno_names() {
    let mut sh = shell(Arch::X86_64);
    out1(&mut sh, "p = spawn(\"t\")");
    let cases = [
        (format!("mmap(p, 0, 0, {MAP})"), "-EINVAL"),
        (
            format!(
                "mmap(p, 0, 4096, {})",
                "PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 1"
            ),
            "-EINVAL",
        ),
        (format!("mmap(99, 0, 4096, {MAP})"), "-ESRCH"),
        ("munmap(p, 1, 4096)".to_string(), "-EINVAL"),
        ("mprotect(p, 4096, 4096, PROT_READ)".to_string(), "-ENOMEM"),
        ("madvise(p, 1, 4096, MADV_DONTNEED)".to_string(), "-EINVAL"),
        ("kill(p, 1000)".to_string(), "-EINVAL"),
        ("kill(99, SIGKILL)".to_string(), "-ESRCH"),
        ("fork(99)".to_string(), "-ESRCH"),
    ];
    for (text, want) in &cases {
        assert_eq!(out1(&mut sh, text), format!("{want}\n"), "{text}");
    }
    // The value computes as -errno and expands by name.
    assert_eq!(
        out1(&mut sh, "r = munmap(p, 1, 4096); r == -EINVAL; r < 0"),
        "r = -EINVAL\n1\n1\n"
    );
    assert_eq!(out1(&mut sh, "echo $r"), "-EINVAL\n");
    // Usage errors are the shell's.
    let (_, e) = run(&mut sh, "upeek8(99, 0x1000)");
    assert!(e.contains("upeek8: no such process (ESRCH)"), "{e}");
    let (_, e) = run(&mut sh, "spawn(1)");
    assert!(e.contains("spawn: argument 1: expected a string"), "{e}");
    let (_, e) = run(&mut sh, "mremap(p, 0, 1)");
    assert!(e.contains("mremap takes 5 to 6 arguments, got 3"), "{e}");
    let (_, e) = run(&mut sh, "PROT_READ = 3");
    assert!(e.contains("cannot assign to 'PROT_READ'"), "{e}");
    assert_eq!(sh.k.reports(), 0);
}

#[test]
fn faults_kill_the_task_and_abandon_the_statement() {
    let mut sh = shell(Arch::X86_64);
    out1(&mut sh, "p = spawn(\"victim\")");
    out1(&mut sh, &format!("a = mmap(p, 0, 4096, {MAP})"));
    out1(&mut sh, "upoke8(p, a, 1)");
    assert_eq!(out1(&mut sh, "mprotect(p, a, 4096, PROT_READ)"), "0\n");
    assert_eq!(out1(&mut sh, "upeek8(p, a)"), "1\n");
    // A write to a read-only page: a protection fault (error 7), the task is gone, no
    // assignment, not a shell error.
    let (o, e) = run(&mut sh, "x = 5; upoke8(p, a, 2); x = 6");
    assert_eq!(e, "");
    let Some(Value::Ptr(a, _)) = sh.var("a").cloned() else {
        panic!()
    };
    let line = o.lines().nth(1).unwrap();
    assert!(
        line.starts_with(&format!("victim[1]: segfault at {a:x} ip "))
            && line.ends_with(" error 7"),
        "{o}"
    );
    assert!(o.ends_with("x = 6\n"), "{o}");
    assert_eq!(out1(&mut sh, "kill(p, 0)"), "-ESRCH\n");
    // In a loop the first fault ends the loop.
    out1(&mut sh, "q = spawn(\"loop\")");
    let (o, _) = run(
        &mut sh,
        "for (i = 0; i < 100; i++) { upoke8(q, 0x1000 + i, 1) }",
    );
    assert_eq!(o.matches("segfault at").count(), 1, "{o}");
    assert_eq!(out1(&mut sh, "i"), "0\n");
    assert_eq!(sh.errors, 0);
}

#[test]
fn fork_mremap_brk_madvise() {
    let mut sh = shell(Arch::X86_64);
    out1(&mut sh, "p = spawn(\"parent\")");
    out1(&mut sh, &format!("a = mmap(p, 0, 2 << 12, {MAP})"));
    out1(&mut sh, "upoke8(p, a, 7)");
    out1(&mut sh, "c = fork(p)");
    out1(&mut sh, "upoke8(c, a, 8)");
    assert_eq!(out1(&mut sh, "upeek8(p, a); upeek8(c, a)"), "7\n8\n");
    // madvise(MADV_DONTNEED) drops the private page: it reads as zero again.
    assert_eq!(
        out1(&mut sh, "madvise(c, a, 4096, MADV_DONTNEED); upeek8(c, a)"),
        "0\n0\n"
    );
    // mremap grows (moving if it must) and keeps the contents.
    let o = out1(
        &mut sh,
        "b = mremap(p, a, 2 << 12, 64 << 12, MREMAP_MAYMOVE)",
    );
    assert!(o.starts_with("b = 0x7ff"), "{o}");
    assert_eq!(out1(&mut sh, "upeek8(p, b)"), "7\n");
    assert_eq!(out1(&mut sh, "mremap(p, b, 4096, 8192, 0, 0)"), "-ENOMEM\n");
    // brk: read, grow, use.
    let o = out1(&mut sh, "h = brk(p, 0)");
    assert!(o.starts_with("h = 0x"), "{o}");
    assert_eq!(out1(&mut sh, "brk(p, h + 8192) == h + 8192"), "1\n");
    out1(&mut sh, "upoke64(p, h, 42)");
    assert_eq!(out1(&mut sh, "upeek64(p, h)"), "42\n");
    assert!(out1(&mut sh, "cat /proc/$p/maps").contains("[heap]"));
    assert_eq!(
        out1(&mut sh, "kill(p, SIGKILL); kill(c, SIGTERM)"),
        "0\n0\n"
    );
    assert_eq!(sh.k.reports(), 0);
}

#[test]
fn swapon_refuses_what_is_not_a_swap_file() {
    let mut sh = shell(Arch::X86_64);
    let dir = std::env::temp_dir().join(format!("kmem-swapon-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap().to_string();
    // An ordinary file is not overwritten.
    std::fs::write(dir.join("notes"), "precious").unwrap();
    let o = out1(&mut sh, &format!("swapon(\"{d}/notes\", 1 << 20)"));
    assert_eq!(o, "Unable to find swap-space signature\n-EINVAL\n");
    assert_eq!(std::fs::read(dir.join("notes")).unwrap(), b"precious");
    let cases = [
        (format!("swapon(\"{d}\", 1 << 20)"), "-EINVAL"),
        (format!("swapon(\"{d}/none/x\", 1 << 20)"), "-ENOENT"),
        (format!("swapon(\"{d}/small\", 4096)"), "-EINVAL"),
        ("swapon(\"\", 1 << 20)".to_string(), "-ENOENT"),
        (format!("swapoff(\"{d}/nosuch\")"), "-EINVAL"),
        (format!("swapon(\"{d}/sw\", 1 << 20)"), "0"),
        // In use: refused before the file is touched.
        (format!("swapon(\"{d}/sw\", 8192)"), "-EBUSY"),
        (format!("swapoff(\"{d}/sw\")"), "0"),
        // A swap file made before is taken again.
        (format!("swapon(\"{d}/sw\", 1 << 20)"), "0"),
        (format!("swapoff(\"{d}/sw\")"), "0"),
    ];
    for (text, want) in &cases {
        let o = out1(&mut sh, text);
        assert!(o.ends_with(&format!("{want}\n")), "{text}: {o}");
    }
    assert_eq!(std::fs::metadata(dir.join("sw")).unwrap().len(), 1 << 20);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(sh.k.reports(), 0);
}

#[test]
fn shm_and_memfd_errors() {
    let mut sh = shell(Arch::X86_64);
    out1(&mut sh, "p = spawn(\"t\")");
    let cases = [
        ("shmget(IPC_PRIVATE, 0, IPC_CREAT|0600)", "-EINVAL"),
        ("shmget(1234, 4096, 0600)", "-ENOENT"),
        ("shmat(p, 99, 0, 0)", "-EINVAL"),
        ("shmdt(p, 0x1000)", "-EINVAL"),
        ("shmctl(99, IPC_RMID)", "-EINVAL"),
        ("ftruncate(p, 7, 4096)", "-EBADF"),
        ("close(p, 7)", "-EBADF"),
        ("memfd_create(99, \"x\")", "-ESRCH"),
        ("mmap(p, 0, 4096, PROT_READ, MAP_SHARED, 7, 0)", "-EBADF"),
    ];
    for (text, want) in cases {
        assert_eq!(out1(&mut sh, text), format!("{want}\n"), "{text}");
    }
    // A memfd read beyond its size: SIGBUS kills the task, the statement is abandoned.
    out1(
        &mut sh,
        "fd = memfd_create(p, \"f\"); m = mmap(p, 0, 8192, PROT_READ, MAP_SHARED, fd, 0)",
    );
    let (o, e) = run(&mut sh, "v = upeek8(p, m)");
    assert_eq!(e, "");
    assert!(!o.contains("v = "), "{o}");
    assert_eq!(sh.var("v"), None);
    assert_eq!(out1(&mut sh, "kill(p, 0)"), "-ESRCH\n");
}
