//! Process memory (issue 15): tasks, mmap/munmap/mprotect/mremap/brk/madvise with Linux's
//! results, demand faults, fork and COW, segfaults, /proc/PID files, and no page leaked.

mod common;
use common::*;
use kmem::arch::Arch;
use kmem::errno::Errno;
use kmem::memory::{MADV_DONTFORK, MADV_DONTNEED, MADV_WIPEONFORK};
use kmem::mm::VmEvent;
use kmem::uaccess::UaccessError;
use kmem::vma::*;

const RW: u32 = PROT_READ | PROT_WRITE;
const PA: u32 = MAP_PRIVATE | MAP_ANONYMOUS;

fn maps(m: &M, pid: i32) -> String {
    proc(m, &format!("/proc/{pid}/maps"))
}

#[test]
fn spawn_layout_is_linuxs() {
    for (arch, stack, base, pad) in [
        (
            Arch::X86_64,
            "7ffffffde000-7ffffffff000",
            0x7fff_f7ff_f000u64,
            26,
        ),
        (Arch::I386, "bffdf000-c0000000", 0xb800_0000, 10),
    ] {
        let m = boot(arch, 256 << 20, 2);
        let p = m.spawn("init").unwrap();
        assert_eq!(p, 1);
        let s = maps(&m, p);
        let sp = " ".repeat(pad);
        assert_eq!(s, format!("{stack} rw-p 00000000 00:00 0{sp}[stack]\n"));
        let a = m.mmap(p, 0, 4096, RW, PA, -1, 0).unwrap();
        assert_eq!(a, base - 4096, "first mmap right below mmap_base");
        let b = m.mmap(p, 0, 8192, PROT_READ, PA, -1, 0).unwrap();
        assert_eq!(b, a - 8192);
        m.exit(p).unwrap();
    }
}

#[test]
fn private_mapping_written_and_read_back() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    let free0 = baseline(&m);
    let p = m.spawn("t").unwrap();
    let a = m.mmap(p, 0, 16 << 12, RW, PA, -1, 0).unwrap();
    let faults = m.vm_event(VmEvent::PgFault);
    assert_eq!(
        m.upeek(p, a + 100, 8).unwrap(),
        0,
        "read of a new page: zero"
    );
    m.upoke(p, a + 100, 8, 0x1122_3344_5566_7788).unwrap();
    assert_eq!(m.upeek(p, a + 100, 8).unwrap(), 0x1122_3344_5566_7788);
    assert_eq!(m.upeek(p, a + 102, 2).unwrap(), 0x5566);
    m.umemset(p, a + 4090, 0xab, 20).unwrap();
    assert_eq!(m.upeek(p, a + 4095, 1).unwrap(), 0xab);
    assert_eq!(m.upeek(p, a + 4096 + 13, 1).unwrap(), 0xab);
    assert_eq!(m.upeek(p, a + 4096 + 14, 1).unwrap(), 0);
    assert!(m.vm_event(VmEvent::PgFault) >= faults + 3);
    let status = proc(&m, &format!("/proc/{p}/status"));
    assert!(status.contains("RssAnon:\t       8 kB"), "{status}");
    m.exit(p).unwrap();
    assert_eq!(settle(&m), free0, "no page leaked");
}

#[test]
fn mmap_errors_are_linuxs() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    let p = m.spawn("t").unwrap();
    assert_eq!(m.mmap(p, 0, 0, RW, PA, -1, 0), Err(Errno::EINVAL));
    assert_eq!(
        m.mmap(p, 0, 4096, RW, MAP_ANONYMOUS, -1, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        m.mmap(p, 0x1001, 4096, RW, PA | MAP_FIXED, -1, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(m.mmap(p, 0, 4096, RW, PA, -1, 1), Err(Errno::EINVAL));
    assert_eq!(
        m.mmap(p, 0, u64::MAX - 10, RW, PA, -1, 0),
        Err(Errno::ENOMEM)
    );
    assert_eq!(m.mmap(p, 0, 1 << 48, RW, PA, -1, 0), Err(Errno::ENOMEM));
    let a = m
        .mmap(p, 0x1000_0000, 4096, RW, PA | MAP_FIXED_NOREPLACE, -1, 0)
        .unwrap();
    assert_eq!(a, 0x1000_0000);
    assert_eq!(
        m.mmap(p, 0x1000_0000, 4096, RW, PA | MAP_FIXED_NOREPLACE, -1, 0),
        Err(Errno::EEXIST)
    );
    // A hint that is free is taken as is.
    assert_eq!(m.mmap(p, 0x2000_0000, 4096, RW, PA, -1, 0), Ok(0x2000_0000));
    assert_eq!(m.munmap(p, 0x1001, 4096), Err(Errno::EINVAL));
    assert_eq!(m.munmap(p, 0x1000, 0), Err(Errno::EINVAL));
    assert_eq!(
        m.munmap(p, 0x5000_0000, 4096),
        Ok(()),
        "unmapping nothing is fine"
    );
    assert_eq!(
        m.mprotect(p, 0x3000_0000, 4096, PROT_READ),
        Err(Errno::ENOMEM)
    );
    assert_eq!(m.mprotect(p, 0x1000_0000, 4096, 0x40), Err(Errno::EINVAL));
    assert_eq!(m.mmap(99, 0, 4096, RW, PA, -1, 0), Err(Errno::ESRCH));
    m.exit(p).unwrap();
}

#[test]
fn merge_split_and_maps_format() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    let p = m.spawn("t").unwrap();
    let base = 0x1000_0000u64;
    for i in 0..4 {
        m.mmap(p, base + i * 4096, 4096, RW, PA | MAP_FIXED, -1, 0)
            .unwrap();
    }
    let s = maps(&m, p);
    assert!(
        s.starts_with("10000000-10004000 rw-p 00000000 00:00 0 \n"),
        "{s}"
    );
    m.mprotect(p, base + 4096, 4096, PROT_READ).unwrap();
    let s = maps(&m, p);
    assert!(
        s.starts_with(
            "10000000-10001000 rw-p 00000000 00:00 0 \n10001000-10002000 r--p 00000000 00:00 0 \n10002000-10004000 rw-p 00000000 00:00 0 \n"
        ),
        "{s}"
    );
    m.mprotect(p, base + 4096, 4096, RW).unwrap();
    assert!(
        maps(&m, p).starts_with("10000000-10004000 rw-p"),
        "merged again"
    );
    m.munmap(p, base + 4096, 8192).unwrap();
    let s = maps(&m, p);
    assert!(
        s.starts_with(
            "10000000-10001000 rw-p 00000000 00:00 0 \n10003000-10004000 rw-p 00000000 00:00 0 \n"
        ),
        "{s}"
    );
    m.with_task(p, |t| t.mm.validate().unwrap()).unwrap();
    m.exit(p).unwrap();
}

#[test]
fn fork_cow_child_write_does_not_change_parent() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    let free0 = baseline(&m);
    let p = m.spawn("parent").unwrap();
    let a = m.mmap(p, 0, 4 << 12, RW, PA, -1, 0).unwrap();
    m.upoke(p, a, 8, 111).unwrap();
    m.upoke(p, a + 4096, 8, 222).unwrap();
    let f0 = m.vm_event(VmEvent::PgFault);
    let c = m.fork(p).unwrap();
    assert_eq!(m.upeek(c, a, 8).unwrap(), 111);
    m.upoke(c, a, 8, 333).unwrap();
    assert_eq!(m.upeek(c, a, 8).unwrap(), 333);
    assert_eq!(m.upeek(p, a, 8).unwrap(), 111, "the parent keeps its value");
    assert!(m.vm_event(VmEvent::PgFault) > f0);
    assert_eq!(m.vm_event(VmEvent::CowCopy), 1);
    // The parent's write to the other page: still shared → copied too.
    m.upoke(p, a + 4096, 8, 444).unwrap();
    assert_eq!(m.upeek(c, a + 4096, 8).unwrap(), 222);
    // After the child exits, the parent's pages are exclusive: a write reuses.
    m.exit(c).unwrap();
    let reuse = m.vm_event(VmEvent::CowReuse);
    m.upoke(p, a, 8, 555).unwrap();
    assert_eq!(m.vm_event(VmEvent::CowReuse), reuse + 1);
    assert_eq!(m.upeek(p, a, 8).unwrap(), 555);
    m.exit(p).unwrap();
    assert_eq!(settle(&m), free0, "no page leaked");
}

#[test]
fn segfault_after_munmap_kills_the_task() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    let p = m.spawn("victim").unwrap();
    let a = m.mmap(p, 0, 4096, RW, PA, -1, 0).unwrap();
    m.upoke(p, a, 4, 7).unwrap();
    m.munmap(p, a, 4096).unwrap();
    m.platform().take_captured();
    assert_eq!(m.upoke(p, a, 4, 7), Err(UaccessError::Segfault(a)));
    let log = m.platform().take_captured();
    assert!(
        log.contains(&format!(
            "victim[{p}]: segfault at {a:x} ip 0000555555555000 sp 00007fffffffe000 error 6"
        )),
        "{log}"
    );
    assert_eq!(m.upeek(p, a, 4), Err(UaccessError::NoTask));
    assert!(m.with_task(p, |_| ()).is_err());
}

#[test]
fn write_to_read_only_mapping_is_a_protection_fault() {
    let m = boot(Arch::I386, 256 << 20, 2);
    let p = m.spawn("ro").unwrap();
    let a = m.mmap(p, 0, 4096, PROT_READ, PA, -1, 0).unwrap();
    assert_eq!(m.upeek(p, a, 4).unwrap(), 0);
    m.platform().take_captured();
    assert_eq!(m.upoke(p, a, 4, 1), Err(UaccessError::Segfault(a)));
    let log = m.platform().take_captured();
    assert!(
        log.contains(&format!(
            "ro[{p}]: segfault at {a:x} ip 80000000 sp bffff000 error 7"
        )),
        "{log}"
    );
}

#[test]
fn brk_grows_and_shrinks_heap() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    let p = m.spawn("t").unwrap();
    let b0 = m.brk(p, 0).unwrap();
    assert_eq!(b0, 0x5555_5555_a000);
    assert_eq!(m.brk(p, b0 + 10000).unwrap(), b0 + 10000);
    m.upoke(p, b0 + 9999, 1, 5).unwrap();
    let s = maps(&m, p);
    let heap = format!(
        "55555555a000-55555555d000 rw-p 00000000 00:00 0{}[heap]\n",
        " ".repeat(26)
    );
    assert!(s.starts_with(&heap), "{s}");
    assert_eq!(
        m.brk(p, b0 - 1).unwrap(),
        b0 + 10000,
        "below start_brk: refused"
    );
    assert_eq!(m.brk(p, b0 + 100).unwrap(), b0 + 100);
    assert_eq!(m.upeek(p, b0 + 99, 1).unwrap(), 0);
    m.exit(p).unwrap();
}

#[test]
fn mremap_grows_in_place_and_moves() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    let free0 = baseline(&m);
    let p = m.spawn("t").unwrap();
    let a = 0x1000_0000;
    m.mmap(p, a, 4096, RW, PA | MAP_FIXED, -1, 0).unwrap();
    m.upoke(p, a, 8, 42).unwrap();
    assert_eq!(m.mremap(p, a, 4096, 8192, 0, 0), Ok(a), "grows in place");
    m.mmap(p, a + 8192, 4096, PROT_READ, PA | MAP_FIXED, -1, 0)
        .unwrap();
    assert_eq!(m.mremap(p, a, 8192, 16384, 0, 0), Err(Errno::ENOMEM));
    let b = m.mremap(p, a, 8192, 16384, MREMAP_MAYMOVE, 0).unwrap();
    assert_ne!(b, a);
    assert_eq!(m.upeek(p, b, 8).unwrap(), 42, "contents moved");
    assert_eq!(
        m.mremap(p, b, 4096, 4096, MREMAP_FIXED, 0x2000_0000),
        Err(Errno::EINVAL)
    );
    let c = m
        .mremap(
            p,
            b,
            16384,
            16384,
            MREMAP_MAYMOVE | MREMAP_FIXED,
            0x2000_0000,
        )
        .unwrap();
    assert_eq!(c, 0x2000_0000);
    assert_eq!(m.upeek(p, c, 8).unwrap(), 42);
    assert_eq!(
        m.mremap(p, 0x3000_0000, 4096, 8192, MREMAP_MAYMOVE, 0),
        Err(Errno::EFAULT)
    );
    assert_eq!(m.mremap(p, c, 16384, 4096, 0, 0), Ok(c), "shrinks");
    m.with_task(p, |t| t.mm.validate().unwrap()).unwrap();
    m.exit(p).unwrap();
    assert_eq!(settle(&m), free0, "no page leaked");
}

#[test]
fn madvise_dontneed_and_fork_flags() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    let p = m.spawn("t").unwrap();
    let a = m.mmap(p, 0, 3 << 12, RW, PA, -1, 0).unwrap();
    m.umemset(p, a, 1, 3 << 12).unwrap();
    m.madvise(p, a, 4096, MADV_DONTNEED).unwrap();
    assert_eq!(m.upeek(p, a, 1).unwrap(), 0);
    assert_eq!(m.upeek(p, a + 4096, 1).unwrap(), 1);
    assert_eq!(m.madvise(p, a + 1, 4096, MADV_DONTNEED), Err(Errno::EINVAL));
    assert_eq!(m.madvise(p, a, 4096, 99), Err(Errno::EINVAL));
    m.madvise(p, a + 4096, 4096, MADV_DONTFORK).unwrap();
    m.madvise(p, a + 8192, 4096, MADV_WIPEONFORK).unwrap();
    let c = m.fork(p).unwrap();
    assert_eq!(m.upeek(c, a + 8192, 1).unwrap(), 0, "wiped on fork");
    assert!(
        matches!(m.upeek(c, a + 4096, 1), Err(UaccessError::Segfault(_))),
        "not copied"
    );
    m.exit(p).unwrap();
}

#[test]
fn two_tasks_share_a_memfd_mapping() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    let free0 = baseline(&m);
    let a = m.spawn("a").unwrap();
    let b = m.spawn("b").unwrap();
    let fd = m.memfd_create(a, "buf").unwrap();
    assert_eq!(fd, 3);
    m.ftruncate(a, fd, 3 * 4096).unwrap();
    let pa = m.mmap(a, 0, 3 * 4096, RW, MAP_SHARED, fd, 0).unwrap();
    m.upoke(a, pa + 8, 8, 0xfeed).unwrap();
    // b gets the descriptor through fork of a's descriptor table: fork a, use the child.
    let c = m.fork(a).unwrap();
    let pc = m.mmap(c, 0, 4096, RW, MAP_SHARED, fd, 4096).unwrap();
    m.upoke(c, pc, 4, 77).unwrap();
    assert_eq!(m.upeek(a, pa + 4096, 4).unwrap(), 77, "a sees c's write");
    assert_eq!(
        m.upeek(c, pa + 8, 8).unwrap(),
        0xfeed,
        "c inherited a's mapping, shared"
    );
    m.upoke(c, pa + 8, 8, 0xbeef).unwrap();
    assert_eq!(
        m.upeek(a, pa + 8, 8).unwrap(),
        0xbeef,
        "shared mappings stay shared after fork"
    );
    let s = proc(&m, &format!("/proc/{a}/maps"));
    assert!(s.contains("rw-s 00000000 00:01 1 "), "{s}");
    assert!(s.contains("/memfd:buf (deleted)\n"), "{s}");
    let meminfo = proc(&m, "/proc/meminfo");
    assert!(meminfo.contains("Shmem:                 8 kB"), "{meminfo}");
    // A private mapping of the memfd copies on write.
    let pp = m.mmap(a, 0, 4096, RW, MAP_PRIVATE, fd, 0).unwrap();
    assert_eq!(m.upeek(a, pp + 8, 8).unwrap(), 0xbeef);
    m.upoke(a, pp + 8, 8, 1).unwrap();
    assert_eq!(
        m.upeek(a, pa + 8, 8).unwrap(),
        0xbeef,
        "the file keeps its data"
    );
    // Beyond the end: SIGBUS.
    m.ftruncate(a, fd, 4096).unwrap();
    assert!(matches!(m.upeek(c, pc, 4), Err(UaccessError::Bus(_))));
    assert_eq!(m.mmap(b, 0, 4096, RW, MAP_SHARED, fd, 0), Err(Errno::EBADF));
    m.close(a, fd).unwrap();
    m.exit(a).unwrap();
    m.exit(b).unwrap();
    assert_eq!(settle(&m), free0, "no page leaked");
}

#[test]
fn two_tasks_share_sysv_shm_and_shared_anon() {
    use kmem::memory::shmem::*;
    let m = boot(Arch::I386, 256 << 20, 2);
    let free0 = baseline(&m);
    let a = m.spawn("a").unwrap();
    let b = m.spawn("b").unwrap();
    let id = m.shmget(IPC_PRIVATE, 10000, IPC_CREAT | 0o600).unwrap();
    assert_eq!(id, 0);
    let id2 = m.shmget(0x1234, 4096, IPC_CREAT | 0o600).unwrap();
    assert_eq!(id2, 32769);
    assert_eq!(
        m.shmget(0x1234, 4096, IPC_CREAT | IPC_EXCL),
        Err(Errno::EEXIST)
    );
    assert_eq!(m.shmget(0x1234, 8192, 0), Err(Errno::EINVAL));
    assert_eq!(m.shmget(0x999, 4096, 0), Err(Errno::ENOENT));
    let xa = m.shmat(a, id, 0, 0).unwrap();
    let xb = m.shmat(b, id, 0, 0).unwrap();
    m.upoke(a, xa + 9000, 2, 0x4242).unwrap();
    assert_eq!(m.upeek(b, xb + 9000, 2).unwrap(), 0x4242);
    let s = proc(&m, &format!("/proc/{a}/maps"));
    assert!(s.contains("/SYSV00000000 (deleted)"), "{s}");
    m.shmctl(id, IPC_RMID).unwrap();
    assert_eq!(m.shmat(a, id, 0, 0), Err(Errno::EINVAL), "the id is gone");
    assert_eq!(m.upeek(b, xb + 9000, 2).unwrap(), 0x4242, "still attached");
    m.shmdt(a, xa).unwrap();
    m.shmdt(b, xb).unwrap();
    assert_eq!(m.shmdt(b, xb), Err(Errno::EINVAL));
    // Shared anonymous memory: shared with a child.
    let sa = m
        .mmap(a, 0, 4096, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0)
        .unwrap();
    let c = m.fork(a).unwrap();
    m.upoke(c, sa, 1, 9).unwrap();
    assert_eq!(m.upeek(a, sa, 1).unwrap(), 9);
    assert!(proc(&m, &format!("/proc/{a}/maps")).contains("/dev/zero (deleted)"));
    m.shmctl(id2, IPC_RMID).unwrap();
    for p in [a, b, c] {
        m.exit(p).unwrap();
    }
    assert_eq!(settle(&m), free0, "no page leaked");
}

#[test]
fn filling_memory_without_swap_kills_the_task_and_memory_comes_back() {
    let m = boot(Arch::X86_64, 64 << 20, 2);
    let free0 = baseline(&m);
    let p = m.spawn("hog").unwrap();
    let len = 128u64 << 20;
    let a = m.mmap(p, 0, len, RW, PA, -1, 0).unwrap();
    m.platform().take_captured();
    let r = m.umemset(p, a, 0x5a, len);
    assert_eq!(r, Err(UaccessError::OutOfMemory));
    let log = m.platform().take_captured();
    assert!(
        log.contains(&format!("Killed process {p} (hog) total-vm:")),
        "{log}"
    );
    assert_eq!(m.vm_event(VmEvent::OomKill), 1);
    assert!(m.with_task(p, |_| ()).is_err(), "the task is gone");
    assert_eq!(settle(&m), free0, "the memory came back");
    // The machine goes on.
    let q = m.spawn("after").unwrap();
    let b = m.mmap(q, 0, 4096, RW, PA, -1, 0).unwrap();
    m.upoke(q, b, 8, 1).unwrap();
    m.exit(q).unwrap();
}

#[test]
fn smaps_status_and_rollup_formats() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    let p = m.spawn("fmt").unwrap();
    let a = m
        .mmap(p, 0x1000_0000, 2 << 12, RW, PA | MAP_FIXED, -1, 0)
        .unwrap();
    m.upoke(p, a, 1, 1).unwrap();
    let c = m.fork(p).unwrap();
    let s = proc(&m, &format!("/proc/{p}/smaps"));
    let first: Vec<&str> = s.lines().take(9).collect();
    assert_eq!(
        first,
        [
            "10000000-10002000 rw-p 00000000 00:00 0 ",
            "Size:                  8 kB",
            "KernelPageSize:        4 kB",
            "MMUPageSize:           4 kB",
            "Rss:                   4 kB",
            "Pss:                   2 kB",
            "Pss_Dirty:             2 kB",
            "Shared_Clean:          0 kB",
            "Shared_Dirty:          4 kB",
        ]
    );
    assert!(s.contains("Private_Hugetlb:       0 kB\n"), "{s}");
    assert!(s.contains("VmFlags: rd wr mr mw me ac sd \n"), "{s}");
    assert!(
        s.contains("VmFlags: rd wr mr mw me gd ac sd \n"),
        "the stack: {s}"
    );
    let r = proc(&m, &format!("/proc/{c}/smaps_rollup"));
    assert!(
        r.starts_with(&format!(
            "10000000-7ffffffff000 ---p 00000000 00:00 0{}[rollup]\nRss:                   4 kB\nPss:                   2 kB\n",
            " ".repeat(30)
        )),
        "{r}"
    );
    let st = proc(&m, &format!("/proc/{c}/status"));
    assert!(
        st.starts_with(&format!(
            "Name:\tfmt\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t{c}\n"
        )),
        "{st}"
    );
    assert!(st.contains(&format!("PPid:\t{p}\n")), "{st}");
    assert!(st.contains("VmSize:\t     140 kB\n"), "{st}");
    assert!(st.contains("VmStk:\t     132 kB\n"), "{st}");
    assert!(st.contains("VmData:\t       8 kB\n"), "{st}");
    assert!(st.contains("RssAnon:\t       4 kB\n"), "{st}");
    assert_eq!(proc(&m, &format!("/proc/{p}/oom_score_adj")), "0\n");
    m.proc_write(&format!("/proc/{p}/oom_score_adj"), "500")
        .unwrap();
    assert_eq!(proc(&m, &format!("/proc/{p}/oom_score_adj")), "500\n");
    assert!(m
        .proc_write(&format!("/proc/{p}/oom_score_adj"), "1001")
        .is_err());
    assert!(m.proc_read("/proc/999/maps", &mut String::new()).is_err());
    let vm = proc(&m, "/proc/vmstat");
    assert!(vm.contains("\npgfault "), "{vm}");
}

/// `copy_from_user`/`copy_to_user` (include/linux/uaccess.h, lib/usercopy.c): a system call's
/// copies return the number of bytes not copied (the syscall's `-EFAULT`) and never kill the
/// task; the same bad address from a user-mode access (`upeek`) still does.
#[test]
fn copy_from_user_returns_bytes_not_copied_and_the_task_lives() {
    for arch in [Arch::X86_64, Arch::I386] {
        let m = boot(arch, 256 << 20, 2);
        let free0 = baseline(&m);
        let p = m.spawn("sys").unwrap();
        // Two pages, the second unmapped: a 6000-byte copy from 4096 before the hole.
        let a = m.mmap(p, 0, 2 * 4096, RW, PA, -1, 0).unwrap();
        m.munmap(p, a + 4096, 4096).unwrap();
        m.upoke(p, a + 4095, 1, 0x5a).unwrap();
        m.platform().take_captured();
        let mut buf = vec![0xffu8; 6000];
        // The first page is copied (4096 bytes), the rest is not and is zeroed, as
        // _copy_from_user does.
        assert_eq!(m.copy_from_user(p, &mut buf, a), Ok(6000 - 4096));
        assert_eq!(buf[4095], 0x5a);
        assert!(buf[4096..].iter().all(|&b| b == 0));
        // Into the hole: nothing copied; to a read-only page: nothing written.
        assert_eq!(m.copy_to_user(p, a + 4096, &[1, 2, 3]), Ok(3));
        m.mprotect(p, a, 4096, PROT_READ).unwrap();
        assert_eq!(m.copy_to_user(p, a, &[1, 2, 3]), Ok(3));
        assert_eq!(m.upeek(p, a, 1), Ok(0));
        // Beyond TASK_SIZE (access_ok fails): nothing touched.
        let kernel = m.with_task(p, |t| t.mm.task_size).unwrap();
        assert_eq!(m.copy_from_user(p, &mut buf[..8], kernel), Ok(8));
        assert_eq!(m.copy_to_user(p, kernel - 4, &[0; 8]), Ok(8));
        // No report, the task lives.
        let log = m.platform().take_captured();
        assert!(!log.contains("segfault"), "{log}");
        assert!(m.with_task(p, |_| ()).is_ok());
        // The same address from user mode: SIGSEGV, the report, the task gone.
        assert_eq!(
            m.upeek(p, a + 4096, 1),
            Err(UaccessError::Segfault(a + 4096))
        );
        assert!(m.platform().take_captured().contains("segfault at"));
        assert!(m.with_task(p, |_| ()).is_err());
        assert_eq!(m.copy_from_user(p, &mut buf, a), Err(Errno::ESRCH));
        assert_eq!(settle(&m), free0);
    }
}

/// `copy_to_user` faults pages in as the CPU would for a kernel-mode write: a fresh page on
/// a first touch, a COW copy after fork (the parent keeps its data).
#[test]
fn copy_to_user_faults_in_and_breaks_cow() {
    let m = boot(Arch::X86_64, 256 << 20, 2);
    let free0 = baseline(&m);
    let p = m.spawn("parent").unwrap();
    let a = m.mmap(p, 0, 3 * 4096, RW, PA, -1, 0).unwrap();
    let data: Vec<u8> = (0..3 * 4096).map(|i| (i % 253) as u8).collect();
    assert_eq!(m.copy_to_user(p, a, &data), Ok(0));
    let c = m.fork(p).unwrap();
    let cow = m.vm_event(VmEvent::CowCopy);
    assert_eq!(m.copy_to_user(c, a + 4090, &[9; 12]), Ok(0));
    assert_eq!(m.vm_event(VmEvent::CowCopy) - cow, 2);
    let mut back = vec![0u8; 3 * 4096];
    assert_eq!(m.copy_from_user(p, &mut back, a), Ok(0));
    assert_eq!(back, data);
    assert_eq!(m.copy_from_user(c, &mut back, a), Ok(0));
    assert_eq!(&back[4090..4102], &[9; 12]);
    assert_eq!(&back[..4090], &data[..4090]);
    m.exit(c).unwrap();
    m.exit(p).unwrap();
    assert_eq!(settle(&m), free0);
}

fn meminfo_kb(m: &M, label: &str) -> u64 {
    let info = proc(m, "/proc/meminfo");
    info.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("{label} not in {info}"))
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

fn vm_pte_kb(m: &M, pid: i32) -> u64 {
    let s = proc(m, &format!("/proc/{pid}/status"));
    s.lines()
        .find_map(|l| l.strip_prefix("VmPTE:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

/// `munmap` frees the page tables of the range (mm/mmap.c `free_pgtables`, mm/memory.c
/// `free_pgd_range`), bounded by the neighbouring mappings: a table a neighbour still uses
/// stays, every other comes back (meminfo PageTables, the task's VmPTE).
#[test]
fn munmap_frees_page_tables_bounded_by_neighbours() {
    for (arch, pte_span) in [(Arch::X86_64, 2u64 << 20), (Arch::I386, 4u64 << 20)] {
        let m = boot(arch, 256 << 20, 2);
        let boot_tables = meminfo_kb(&m, "PageTables:");
        let p = m.spawn("pt").unwrap();
        // The stack's tables exist (the upper tables near it are shared with mmap's area,
        // and stay while the stack is mapped, as in Linux).
        let sp = m.with_task(p, |t| t.mm.start_stack).unwrap();
        m.upoke(p, sp, 8, 1).unwrap();
        let tables0 = meminfo_kb(&m, "PageTables:");
        let vmpte0 = vm_pte_kb(&m, p);
        // 32 MiB, every page table of it populated.
        let len = 32 << 20;
        let a = m.mmap(p, 0, len, RW, PA, -1, 0).unwrap();
        for off in (0..len).step_by(4096) {
            m.upoke(p, a + off, 1, 1).unwrap();
        }
        assert!(meminfo_kb(&m, "PageTables:") >= tables0 + len / pte_span * 4);
        m.munmap(p, a, len).unwrap();
        assert_eq!(meminfo_kb(&m, "PageTables:"), tables0, "{arch:?}");
        assert_eq!(vm_pte_kb(&m, p), vmpte0, "{arch:?}");
        // Two mappings sharing one PTE table: unmapping one keeps the table and the other's
        // data; unmapping the second frees it.
        let c = m.mmap(p, 0, 3 * pte_span, RW, PA, -1, 0).unwrap();
        let b = c.next_multiple_of(pte_span);
        if b > c {
            m.munmap(p, c, b - c).unwrap();
        }
        m.munmap(p, b + pte_span, c + 3 * pte_span - (b + pte_span))
            .unwrap();
        m.munmap(p, b + 2 * 4096, 4096).unwrap();
        let (x, y) = (b + 4096, b + 8 * 4096);
        m.upoke(p, x, 8, 0x1111).unwrap();
        m.upoke(p, y, 8, 0x2222).unwrap();
        let with_table = meminfo_kb(&m, "PageTables:");
        assert!(with_table > tables0);
        m.munmap(p, b, 2 * 4096).unwrap();
        assert_eq!(meminfo_kb(&m, "PageTables:"), with_table, "{arch:?}");
        assert_eq!(m.upeek(p, y, 8), Ok(0x2222));
        m.munmap(p, b + 3 * 4096, pte_span - 3 * 4096).unwrap();
        assert_eq!(meminfo_kb(&m, "PageTables:"), tables0, "{arch:?}");
        m.exit(p).unwrap();
        assert_eq!(meminfo_kb(&m, "PageTables:"), boot_tables, "{arch:?}");
    }
}
