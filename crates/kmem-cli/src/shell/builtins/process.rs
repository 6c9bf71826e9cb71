//! Processes and their memory (issue 15): tasks (`spawn`, `fork`, `kill`), the memory system
//! calls made on a task's behalf (`mmap`, `munmap`, `mprotect`, `mremap`, `brk`,
//! `madvise`), and user memory accesses through the task's page tables (`upeek*`, `upoke*`,
//! `umemset`), which fault as the CPU would; shared memory (`memfd_create`, `ftruncate`,
//! `close`, `shmget`, `shmat`, `shmdt`, `shmctl`); and swap areas in host files (`swapon`,
//! `swapoff`).
//!
//! Conventions:
//! - A task is named by its pid (an integer: `cat /proc/$p/maps`).
//! - A system call that fails returns `-errno`, which prints as Linux's `%pe` prints an
//!   error pointer (`a = -ENOMEM`) and compares as the integer (`if (a < 0)`).
//! - User addresses are the task's own (x86_64: below `0x7ffffffff000`), never translated:
//!   they print as pointers (`a = 0x7f…`).
//! - A user access the kernel cannot resolve kills the task with Linux's report (`NAME[PID]:
//!   segfault at ADDR …`, or the OOM report) and abandons the statement, as an oops does;
//!   an access to a pid that does not exist is an error (`ESRCH`).

use kmem::errno::Errno;
use kmem::uaccess::UaccessError;

use super::{Args, Builtin, Ctx, Fail, Param::*};
use crate::shell::value::{PtrKind, Value};

/// Processes and their memory.
pub static PROCESS_BUILTINS: &[Builtin] = &[
    Builtin {
        name: "spawn",
        proto: "pid_t spawn(const char *comm)",
        doc: "a new task with a fresh address space (only its [stack]); returns its pid",
        params: &[Str],
        run: |c, a| Ok(int_or_errno(c.k.m.spawn(a.str(0)).map(|p| p as u64))),
    },
    Builtin {
        name: "fork",
        proto: "pid_t fork(pid_t pid)",
        doc: "a copy of task pid, its memory shared copy-on-write; returns the child's pid",
        params: &[Uint],
        run: |c, a| {
            let pid = pid(a, 0)?;
            Ok(int_or_errno(c.k.m.fork(pid).map(|p| p as u64)))
        },
    },
    Builtin {
        name: "kill",
        proto: "int kill(pid_t pid, int sig)",
        doc: "sends a signal: every signal but 0 ends the task (its memory is freed)",
        params: &[Uint, Uint],
        run: |c, a| {
            let sig = i32::try_from(a.u(1) as i64).unwrap_or(-1);
            Ok(zero_or_errno(c.k.m.kill(pid(a, 0)?, sig)))
        },
    },
    Builtin {
        name: "mmap",
        proto: "void *mmap(pid_t pid, void *addr, size_t len, int prot, int flags, int fd, off_t off)",
        doc: "maps memory in task pid (MAP_PRIVATE|MAP_ANONYMOUS…); returns the address or -errno",
        params: &[Uint, Addr, Uint, Uint, Uint, Uint, Uint],
        run: |c, a| {
            let r = c.k.m.mmap(
                pid(a, 0)?,
                a.u(1),
                a.u(2),
                bits32(a, 3),
                bits32(a, 4),
                a.u(5) as i64 as i32,
                a.u(6),
            );
            Ok(ptr_or_errno(r))
        },
    },
    Builtin {
        name: "munmap",
        proto: "int munmap(pid_t pid, void *addr, size_t len)",
        doc: "unmaps [addr, addr + len) of task pid",
        params: &[Uint, Addr, Uint],
        run: |c, a| Ok(zero_or_errno(c.k.m.munmap(pid(a, 0)?, a.u(1), a.u(2)))),
    },
    Builtin {
        name: "mprotect",
        proto: "int mprotect(pid_t pid, void *addr, size_t len, int prot)",
        doc: "changes the protection of [addr, addr + len) of task pid",
        params: &[Uint, Addr, Uint, Uint],
        run: |c, a| {
            let r = c.k.m.mprotect(pid(a, 0)?, a.u(1), a.u(2), bits32(a, 3));
            Ok(zero_or_errno(r))
        },
    },
    Builtin {
        name: "mremap",
        proto: "void *mremap(pid_t pid, void *old, size_t old_len, size_t new_len, int flags, ... /* void *new_addr */)",
        doc: "resizes or moves a mapping of task pid (MREMAP_MAYMOVE, MREMAP_FIXED + new_addr)",
        params: &[Uint, Addr, Uint, Uint, Uint, OptAddr],
        run: |c, a| {
            let new_addr = if a.0.len() > 5 { a.u(5) } else { 0 };
            let r = c.k.m.mremap(pid(a, 0)?, a.u(1), a.u(2), a.u(3), bits32(a, 4), new_addr);
            Ok(ptr_or_errno(r))
        },
    },
    Builtin {
        name: "brk",
        proto: "void *brk(pid_t pid, void *addr)",
        doc: "moves task pid's program break; returns the new break (the old one if refused; brk(p, 0) reads it)",
        params: &[Uint, Addr],
        run: |c, a| Ok(ptr_or_errno(c.k.m.brk(pid(a, 0)?, a.u(1)))),
    },
    Builtin {
        name: "madvise",
        proto: "int madvise(pid_t pid, void *addr, size_t len, int advice)",
        doc: "advice on [addr, addr + len) of task pid (MADV_DONTNEED, MADV_FREE, MADV_COLD…)",
        params: &[Uint, Addr, Uint, Uint],
        run: |c, a| {
            let r = c.k.m.madvise(pid(a, 0)?, a.u(1), a.u(2), bits32(a, 3));
            Ok(zero_or_errno(r))
        },
    },
    Builtin {
        name: "upeek8",
        proto: "u8 upeek8(pid_t pid, void *addr)",
        doc: "reads a byte of task pid's memory (faulting as the CPU would)",
        params: &[Uint, Addr],
        run: |c, a| upeek(c, a, 1),
    },
    Builtin {
        name: "upeek16",
        proto: "u16 upeek16(pid_t pid, void *addr)",
        doc: "reads a little-endian 16-bit value of task pid's memory",
        params: &[Uint, Addr],
        run: |c, a| upeek(c, a, 2),
    },
    Builtin {
        name: "upeek32",
        proto: "u32 upeek32(pid_t pid, void *addr)",
        doc: "reads a little-endian 32-bit value of task pid's memory",
        params: &[Uint, Addr],
        run: |c, a| upeek(c, a, 4),
    },
    Builtin {
        name: "upeek64",
        proto: "u64 upeek64(pid_t pid, void *addr)",
        doc: "reads a little-endian 64-bit value of task pid's memory",
        params: &[Uint, Addr],
        run: |c, a| upeek(c, a, 8),
    },
    Builtin {
        name: "upoke8",
        proto: "void upoke8(pid_t pid, void *addr, u8 val)",
        doc: "writes a byte of task pid's memory (faulting as the CPU would)",
        params: &[Uint, Addr, Addr],
        run: |c, a| upoke(c, a, 1),
    },
    Builtin {
        name: "upoke16",
        proto: "void upoke16(pid_t pid, void *addr, u16 val)",
        doc: "writes a little-endian 16-bit value of task pid's memory",
        params: &[Uint, Addr, Addr],
        run: |c, a| upoke(c, a, 2),
    },
    Builtin {
        name: "upoke32",
        proto: "void upoke32(pid_t pid, void *addr, u32 val)",
        doc: "writes a little-endian 32-bit value of task pid's memory",
        params: &[Uint, Addr, Addr],
        run: |c, a| upoke(c, a, 4),
    },
    Builtin {
        name: "upoke64",
        proto: "void upoke64(pid_t pid, void *addr, u64 val)",
        doc: "writes a little-endian 64-bit value of task pid's memory",
        params: &[Uint, Addr, Addr],
        run: |c, a| upoke(c, a, 8),
    },
    Builtin {
        name: "umemset",
        proto: "void umemset(pid_t pid, void *addr, int c, size_t n)",
        doc: "fills n bytes of task pid's memory with the byte c",
        params: &[Uint, Addr, Uint, Uint],
        run: |c, a| {
            let r = c.k.m.umemset(pid(a, 0)?, a.u(1), a.u(2) as u8, a.u(3));
            uaccess(r).map(|()| Value::Void)
        },
    },
    Builtin {
        name: "memfd_create",
        proto: "int memfd_create(pid_t pid, const char *name)",
        doc: "an empty shmem file for task pid (flags 0); returns its descriptor (mmap it with MAP_SHARED)",
        params: &[Uint, Str],
        run: |c, a| {
            let r = c.k.m.memfd_create(pid(a, 0)?, a.str(1));
            Ok(int_or_errno(r.map(|fd| fd as u64)))
        },
    },
    Builtin {
        name: "ftruncate",
        proto: "int ftruncate(pid_t pid, int fd, off_t length)",
        doc: "sets the size of task pid's memfd fd",
        params: &[Uint, Uint, Uint],
        run: |c, a| {
            let r = c.k.m.ftruncate(pid(a, 0)?, int(a, 1), a.u(2));
            Ok(zero_or_errno(r))
        },
    },
    Builtin {
        name: "close",
        proto: "int close(pid_t pid, int fd)",
        doc: "closes task pid's descriptor fd (the file goes when nothing maps it)",
        params: &[Uint, Uint],
        run: |c, a| Ok(zero_or_errno(c.k.m.close(pid(a, 0)?, int(a, 1)))),
    },
    Builtin {
        name: "shmget",
        proto: "int shmget(key_t key, size_t size, int shmflg)",
        doc: "a System V shared memory segment (IPC_PRIVATE, IPC_CREAT|0600); returns its id",
        params: &[Uint, Uint, Uint],
        run: |c, a| {
            let r = c.k.m.shmget(int(a, 0), a.u(1), int(a, 2));
            Ok(int_or_errno(r.map(|id| id as u64)))
        },
    },
    Builtin {
        name: "shmat",
        proto: "void *shmat(pid_t pid, int shmid, void *addr, int shmflg)",
        doc: "attaches segment shmid to task pid (addr 0: the kernel chooses); returns the address",
        params: &[Uint, Uint, Addr, Uint],
        run: |c, a| {
            let r = c.k.m.shmat(pid(a, 0)?, int(a, 1), a.u(2), int(a, 3));
            Ok(ptr_or_errno(r))
        },
    },
    Builtin {
        name: "shmdt",
        proto: "int shmdt(pid_t pid, void *addr)",
        doc: "detaches the segment attached at addr from task pid",
        params: &[Uint, Addr],
        run: |c, a| Ok(zero_or_errno(c.k.m.shmdt(pid(a, 0)?, a.u(1)))),
    },
    Builtin {
        name: "shmctl",
        proto: "int shmctl(int shmid, int cmd)",
        doc: "IPC_RMID: the id goes, the segment when the last task detaches",
        params: &[Uint, Uint],
        run: |c, a| Ok(zero_or_errno(c.k.m.shmctl(int(a, 0), int(a, 1)))),
    },
    Builtin {
        name: "swapon",
        proto: "int swapon(const char *path, size_t size)",
        doc: "a swap area of size bytes in the host file path (created, or an existing swap file)",
        params: &[Str, Uint],
        run: |c, a| {
            Ok(match swapon(c, a.str(0), a.u(1)) {
                Ok(()) => Value::Int(0),
                Err(e) => Value::Errno(e),
            })
        },
    },
    Builtin {
        name: "swapoff",
        proto: "int swapoff(const char *path)",
        doc: "swaps every page of the area back in and removes it (the host file stays)",
        params: &[Str],
        run: |c, a| Ok(zero_or_errno(c.k.m.swapoff(a.str(0)))),
    },
];

/// `swapon(path, size)`: the host file at `path` becomes a swap area of `size` bytes. A file
/// that exists and is not empty must be a swap file already (the `SWAPSPACE2` signature at
/// the end of its first page, as `mkswap` writes it), else `EINVAL` as Linux's swapon says
/// "Unable to find swap-space signature" (mm/swapfile.c) — so no other file is overwritten.
fn swapon(c: &mut Ctx<'_>, path: &str, size: u64) -> Result<(), i32> {
    use std::os::unix::fs::FileExt;
    const PAGE: u64 = kmem::PAGE_SIZE as u64;
    // A host error as the host's error number (the same numbers as the machine's).
    let host = |e: std::io::Error| e.raw_os_error().unwrap_or(Errno::EIO.code());
    if path.is_empty() {
        return Err(Errno::ENOENT.code());
    }
    if size / PAGE < 2 {
        return Err(Errno::EINVAL.code());
    }
    // An area in use: EBUSY before the file is touched (resizing it would cut the area).
    let mut swaps = String::new();
    let _ = c.k.m.proc_read("/proc/swaps", &mut swaps);
    if swaps
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().next() == Some(path))
    {
        return Err(Errno::EBUSY.code());
    }
    if let Ok(md) = std::fs::metadata(path) {
        if !md.is_file() {
            return Err(Errno::EINVAL.code());
        }
        if md.len() > 0 {
            let f = std::fs::File::open(path).map_err(host)?;
            let mut sig = [0u8; 10];
            let signed = md.len() >= PAGE
                && f.read_exact_at(&mut sig, PAGE - 10).is_ok()
                && &sig == b"SWAPSPACE2";
            if !signed {
                c.k.m.printk(
                    kmem::platform::LogLevel::Err,
                    format_args!("Unable to find swap-space signature"),
                );
                return Err(Errno::EINVAL.code());
            }
        }
    }
    let backend = kmem_hosted::FileSwap::create(std::path::Path::new(path), size).map_err(host)?;
    c.k.m
        .swapon(path, backend, None)
        .map(|_| ())
        .map_err(Errno::code)
}

/// Argument `i` as a pid (an `int`).
fn pid(a: &Args, i: usize) -> Result<i32, Fail> {
    let v = a.u(i) as i64;
    i32::try_from(v).map_err(|_| Fail::Error(format!("{v} is not a pid")))
}

/// Argument `i` as C's `int` (the low 32 bits, signed).
fn int(a: &Args, i: usize) -> i32 {
    a.u(i) as i32
}

/// Argument `i` as C's `int` flags (the low 32 bits, as the system call takes them).
fn bits32(a: &Args, i: usize) -> u32 {
    a.u(i) as u32
}

/// A system call's integer result or `-errno`.
fn int_or_errno(r: Result<u64, Errno>) -> Value {
    match r {
        Ok(v) => Value::Int(v),
        Err(e) => Value::Errno(e.code()),
    }
}

/// `0` or `-errno`.
fn zero_or_errno(r: Result<(), Errno>) -> Value {
    int_or_errno(r.map(|()| 0))
}

/// A user address or `-errno`.
fn ptr_or_errno(r: Result<u64, Errno>) -> Value {
    match r {
        Ok(v) => Value::Ptr(v, PtrKind::Void),
        Err(e) => Value::Errno(e.code()),
    }
}

/// The outcome of a user access: a task the kernel killed (its report is printed) abandons
/// the statement; a pid with no task is an error.
fn uaccess<T>(r: Result<T, UaccessError>) -> Result<T, Fail> {
    match r {
        Ok(v) => Ok(v),
        Err(UaccessError::NoTask) => Err(Fail::Error("no such process (ESRCH)".into())),
        Err(UaccessError::Segfault(_) | UaccessError::OutOfMemory | UaccessError::Bus(_)) => {
            Err(Fail::Oops)
        }
    }
}

fn upeek(c: &mut Ctx<'_>, a: &Args, size: usize) -> Result<Value, Fail> {
    let r = c.k.m.upeek(pid(a, 0)?, a.u(1), size);
    uaccess(r).map(Value::Int)
}

fn upoke(c: &mut Ctx<'_>, a: &Args, size: usize) -> Result<Value, Fail> {
    let r = c.k.m.upoke(pid(a, 0)?, a.u(1), size, a.u(2));
    uaccess(r).map(|()| Value::Void)
}
