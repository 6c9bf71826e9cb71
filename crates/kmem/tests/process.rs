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

/// Boots, spawns and exits one task so that the zero page exists, and returns the settled
/// free-page count to compare with after the test's tasks are gone.
fn baseline(m: &M) -> usize {
    let p = m.spawn("warmup").unwrap();
    m.exit(p).unwrap();
    settle(m)
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
