//! System calls under kmemcheck's real traps
//! ([`HostedPlatform::enable_kmemcheck_syscalls`](crate::HostedPlatform::enable_kmemcheck_syscalls)):
//! the host kernel's own accesses to hidden pages.
//!
//! A system call handed a pointer into a hidden page does not fault: the host kernel fails it
//! with `EFAULT` (an `open` of a path built on the heap, a `read` into a heap buffer, an
//! `execve` whose arguments are heap strings). Linux's kmemcheck had the same blind spot for
//! DMA and gave such memory `__GFP_NOTRACK`; a C program cannot be annotated, so the
//! platform catches the system calls instead: a seccomp filter per kmemcheck range traps
//! (`SECCOMP_RET_TRAP`, `SIGSYS`) every system call with an argument inside the range,
//! except those made from [`kmem_kmc_syscall`]'s one `syscall` instruction. The `SIGSYS`
//! handler shows the pages the call's pointer arguments name (kmem's [`KmemcheckHook::show`]),
//! makes the call from that instruction, marks what the kernel wrote as initialised (an
//! access of the written size through [`KmemcheckHook::access`]), hides the pages again and
//! returns the call's result. Which argument is a buffer of how many bytes comes from a table
//! of the common calls; any other argument inside the range is shown two pages long (a path
//! or a small struct).
//!
//! Side effects, documented for `KMEM_MALLOC_KMEMCHECK`: `PR_SET_NO_NEW_PRIVS` is set (a
//! seccomp filter requires it: set-user-ID programs run without their privileges), and the
//! filters stay with the process and its children across `execve` (they only trap calls
//! with arguments inside ranges of the old address space, which the new program is unlikely
//! to use; a new program that preloads the library installs its own handler).

use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use kmem::platform::KmemcheckHook;

std::arch::global_asm!(
    ".pushsection .text.kmem_kmc_syscall,\"ax\",@progbits",
    ".globl kmem_kmc_syscall",
    ".type kmem_kmc_syscall,@function",
    "kmem_kmc_syscall:",
    "mov rax, rdi",
    "mov rdi, rsi",
    "mov rsi, rdx",
    "mov rdx, rcx",
    "mov r10, r8",
    "mov r8, r9",
    "mov r9, [rsp + 8]",
    "syscall",
    ".globl kmem_kmc_syscall_ret",
    "kmem_kmc_syscall_ret:",
    "ret",
    ".size kmem_kmc_syscall, . - kmem_kmc_syscall",
    ".popsection",
);

extern "C" {
    /// `syscall(nr, a0, …, a5)` from the one instruction the filters let through.
    fn kmem_kmc_syscall(nr: i64, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64;
    /// The address right after that `syscall` instruction (seccomp's instruction pointer).
    static kmem_kmc_syscall_ret: u8;
}

/// `AUDIT_ARCH_X86_64`.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `SECCOMP_RET_ALLOW`.
const RET_ALLOW: u32 = 0x7fff_0000;
/// `SECCOMP_RET_TRAP`.
const RET_TRAP: u32 = 0x0003_0000;

// Classic BPF opcodes (include/uapi/linux/filter.h).
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JGT_K: u16 = 0x25;
const RET_K: u16 = 0x06;

/// Most hook ranges a process has (kmem-malloc's nodes).
const MAX_RANGES: usize = 16;

#[derive(Clone, Copy)]
struct Range {
    start: usize,
    end: usize,
    hook: KmemcheckHook,
}

static RANGES: crate::futex::FutexMutex<[Option<Range>; MAX_RANGES]> =
    crate::futex::FutexMutex::const_new(crate::futex::RawFutexMutex::new(), [None; MAX_RANGES]);
static INSTALL: Once = Once::new();
static ON: AtomicBool = AtomicBool::new(false);

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// A filter program (no allocation: built in a signal-safe, allocator-free context).
struct Prog {
    ins: [libc::sock_filter; PROG_MAX],
    len: usize,
}

/// Longest program: 3 + 7 + 5 + code ranges 4 segments × 5 + 1 + 3 + 6 arguments × 2
/// segments × 5 + 1 + 1.
const PROG_MAX: usize = 104;

/// The signals kmemcheck's traps are made of: never blocked, never taken over.
const OURS: [libc::c_int; 3] = [libc::SIGSEGV, libc::SIGTRAP, libc::SIGSYS];

/// `rt_sigprocmask` and `rt_sigaction` made by the program: a synchronous signal that is
/// blocked when it is raised kills the process (and a handler the program installs for one
/// of ours would take kmemcheck's traps), so the masks are copied without our three signals
/// and our handlers are kept. Returns the call's result, or `None` for another call.
fn scrub_signals(nr: i64, a: &[u64; 6]) -> Option<i64> {
    let strip = |m: u64| OURS.iter().fold(m, |m, &s| m & !(1u64 << (s - 1)));
    match nr {
        libc::SYS_rt_sigprocmask if a[1] != 0 && a[0] != libc::SIG_UNBLOCK as u64 => {
            // SAFETY: the program's sigset (8 bytes for the kernel's sigsetsize), readable:
            // its page was shown by the caller if kmemcheck had hidden it.
            let set = strip(unsafe { core::ptr::read_unaligned(a[1] as *const u64) });
            // SAFETY: the program's call with a copy of its set.
            Some(unsafe {
                kmem_kmc_syscall(nr, a[0], core::ptr::addr_of!(set) as u64, a[2], a[3], 0, 0)
            })
        }
        libc::SYS_rt_sigaction if a[1] != 0 => {
            if OURS.contains(&(a[0] as libc::c_int)) {
                // Ours stays: report the current action only.
                // SAFETY: the program's call without a new action.
                return Some(unsafe { kmem_kmc_syscall(nr, a[0], 0, a[2], a[3], 0, 0) });
            }
            // struct kernel_sigaction: handler, flags, restorer, mask (8 bytes each).
            let mut act = [0u64; 4];
            // SAFETY: `a[1]` is the program's `struct kernel_sigaction` (32 bytes), which the
            // kernel would read for this call; its page was shown by the caller if kmemcheck had
            // hidden it, and `read`-only copying into our local `act` cannot overlap it.
            unsafe { core::ptr::copy_nonoverlapping(a[1] as *const u64, act.as_mut_ptr(), 4) };
            act[3] = strip(act[3]);
            // SAFETY: the program's call with a copy of its action.
            Some(unsafe { kmem_kmc_syscall(nr, a[0], act.as_ptr() as u64, a[2], a[3], 0, 0) })
        }
        _ => None,
    }
}

/// Calls whose effect depends on where they are made from (the signal frame, the new
/// thread's or child's stack): never trapped, whatever their registers hold.
const NEVER_TRAPPED: [i64; 5] = [
    libc::SYS_rt_sigreturn,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_fork,
    libc::SYS_vfork,
];

/// A piece of an address range inside one 4 GiB segment: (high word, low start, low last).
type Segment = (u32, u32, u32);

/// Bytes of code assumed from a library's load address (libc's and ld.so's text is smaller).
const CODE_SPAN: u64 = 8 << 20;

impl Prog {
    fn push(&mut self, i: libc::sock_filter) {
        self.ins[self.len] = i;
        self.len += 1;
    }

    /// `[start, end)` split at 4 GiB boundaries into (high word, low start, low last), at
    /// most `N` pieces.
    fn segments<const N: usize>(start: u64, end: u64) -> Option<([Segment; N], usize)> {
        let mut segs = [(0u32, 0u32, 0u32); N];
        let mut n = 0;
        let mut a = start;
        while a < end {
            if n == N {
                return None;
            }
            let hi = a >> 32;
            let seg_end = ((hi + 1) << 32).min(end);
            segs[n] = (hi as u32, a as u32, (seg_end - 1) as u32);
            n += 1;
            a = seg_end;
        }
        Some((segs, n))
    }

    /// For the 64-bit word at `off` and each segment: `ld hi; jeq H ? +0 : skip 3; ld lo;
    /// jge a ? +0 : skip 1; jgt last ? next : (inside)`. Returns the positions of the `jgt`s,
    /// whose false branch (inside) the caller patches.
    fn in_segments(
        &mut self,
        off: u32,
        segs: &[(u32, u32, u32)],
        out: &mut [usize],
        n: &mut usize,
    ) {
        for &(h, lo, last) in segs {
            self.push(ins(LD_W_ABS, 0, 0, off + 4));
            self.push(ins(JEQ_K, 0, 3, h));
            self.push(ins(LD_W_ABS, 0, 0, off));
            self.push(ins(JGE_K, 0, 1, lo));
            out[*n] = self.len;
            *n += 1;
            self.push(ins(JGT_K, 0, 0, last));
        }
    }

    /// Points the false branches of the `jgt`s at `out` to `target`.
    fn patch(&mut self, at: &[usize], target: usize) {
        for &i in at {
            // A jump offset is at most 255: PROG_MAX keeps every one shorter.
            self.ins[i].jf = (target - i - 1) as u8;
        }
    }
}

/// The filter for `[start, end)`: trap a call made from libc's or ld.so's code (`code`) with
/// an argument inside the range. The gadget is in this library, so its calls pass; after an
/// `execve` the new program's libc is elsewhere, so the filter (which stays) lets it be.
/// `None` when a range spans too many 4 GiB segments.
fn filter(start: usize, end: usize, code: [u64; 2]) -> Option<Prog> {
    let mut p = Prog {
        ins: [ins(0, 0, 0, 0); PROG_MAX],
        len: 0,
    };
    // arch check: anything else is allowed.
    p.push(ins(LD_W_ABS, 0, 0, 4));
    p.push(ins(JEQ_K, 1, 0, AUDIT_ARCH_X86_64));
    p.push(ins(RET_K, 0, 0, RET_ALLOW));
    p.push(ins(LD_W_ABS, 0, 0, 0));
    for (i, &nr) in NEVER_TRAPPED.iter().enumerate() {
        // Equal: jump to the `ret ALLOW` after the last comparison.
        p.push(ins(JEQ_K, (NEVER_TRAPPED.len() - i) as u8, 0, nr as u32));
    }
    p.push(ins(JEQ_K, 0, 1, 0xffff_ffff)); // never equal: skips the next
    p.push(ins(RET_K, 0, 0, RET_ALLOW));
    // The gadget's calls pass (this library may lie within CODE_SPAN of libc).
    let gadget = core::ptr::addr_of!(kmem_kmc_syscall_ret) as u64;
    p.push(ins(LD_W_ABS, 0, 0, 8 + 4));
    p.push(ins(JEQ_K, 0, 3, (gadget >> 32) as u32));
    p.push(ins(LD_W_ABS, 0, 0, 8));
    p.push(ins(JEQ_K, 0, 1, gadget as u32));
    p.push(ins(RET_K, 0, 0, RET_ALLOW));
    // The instruction pointer (offset 8) in libc's or ld.so's code, else allow.
    let mut at = [0usize; 12];
    let mut n = 0;
    for &base in code.iter().filter(|&&b| b != 0) {
        let (segs, k) = Prog::segments::<2>(base, base + CODE_SPAN)?;
        p.in_segments(8, &segs[..k], &mut at, &mut n);
    }
    p.push(ins(RET_K, 0, 0, RET_ALLOW));
    let args = p.len;
    p.patch(&at[..n], args);
    // Signal masks and actions are trapped from libc whatever their arguments (see
    // `scrub_signals`); the `ret TRAP` is the program's last instruction.
    p.push(ins(LD_W_ABS, 0, 0, 0));
    let sig_at = [p.len, p.len + 1];
    p.push(ins(JEQ_K, 0, 0, libc::SYS_rt_sigprocmask as u32));
    p.push(ins(JEQ_K, 0, 0, libc::SYS_rt_sigaction as u32));
    // An argument (offset 16 + 8i) inside the range: trap.
    let (segs, k) = Prog::segments::<2>(start as u64, end as u64)?;
    let mut n = 0;
    for arg in 0..6u32 {
        p.in_segments(16 + 8 * arg, &segs[..k], &mut at, &mut n);
    }
    p.push(ins(RET_K, 0, 0, RET_ALLOW));
    let trap = p.len;
    p.push(ins(RET_K, 0, 0, RET_TRAP));
    p.patch(&at[..n], trap);
    for i in sig_at {
        p.ins[i].jt = (trap - i - 1) as u8;
    }
    Some(p)
}

/// The load addresses of libc and of the dynamic linker (0 where unknown).
fn code_bases() -> [u64; 2] {
    // SAFETY: dladdr only reads the loader's tables; `info` is written on success.
    let libc_base = unsafe {
        let mut info: libc::Dl_info = core::mem::zeroed();
        if libc::dladdr(libc::read as *const libc::c_void, &mut info) != 0 {
            info.dli_fbase as u64
        } else {
            0
        }
    };
    // SAFETY: getauxval has no preconditions.
    let ld_base = unsafe { libc::getauxval(libc::AT_BASE) } as u64;
    [libc_base, ld_base]
}

/// libc's and ld.so's load addresses (0: unknown, or the system-call traps are off).
static LIBC_BASE: [core::sync::atomic::AtomicU64; 2] = [
    core::sync::atomic::AtomicU64::new(0),
    core::sync::atomic::AtomicU64::new(0),
];

/// Whether `ip` is in libc's or the dynamic linker's code (which has its own string
/// routines), when the system-call traps are on.
pub(crate) fn in_libc(ip: usize) -> bool {
    LIBC_BASE.iter().any(|b| {
        let b = b.load(Ordering::Relaxed);
        b != 0 && (ip as u64).wrapping_sub(b) < CODE_SPAN
    })
}

/// Installs the `SIGSYS` handler and sets `PR_SET_NO_NEW_PRIVS` (once per process).
fn install() {
    INSTALL.call_once(|| {
        for (slot, b) in LIBC_BASE.iter().zip(code_bases()) {
            slot.store(b, Ordering::Relaxed);
        }
        // SAFETY: prctl with these arguments has no memory effects; a zeroed sigaction is
        // valid and filled with our handler.
        unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_sys as *const () as usize;
            // SA_NODEFER: a signal handler of the program that interrupts a call made here
            // (bash's SIGCHLD handler during a `read`) may make trapped calls itself.
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGSYS, &sa, core::ptr::null_mut());
        }
        ON.store(true, Ordering::Release);
    });
}

/// Traps system calls with arguments in `[start, end)` for `hook`'s machine. Returns whether
/// the filter is in place.
pub(crate) fn register(start: usize, end: usize, hook: KmemcheckHook) -> bool {
    install();
    {
        let mut t = RANGES.lock();
        let Some(slot) = t.iter_mut().find(|r| r.is_none()) else {
            return false;
        };
        *slot = Some(Range { start, end, hook });
    }
    let Some(prog) = filter(start, end, code_bases()) else {
        return false;
    };
    let fprog = libc::sock_fprog {
        len: prog.len as u16,
        filter: prog.ins.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at a valid program for the duration of the call; TSYNC applies
    // it to every thread of the process.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &fprog as *const libc::sock_fprog,
        )
    };
    r == 0
}

/// For a call `nr`: which argument is a buffer the kernel writes (`true`) or reads, and
/// which argument holds its length (`None`: the result is the length written, for a read).
fn buffer_of(nr: i64) -> Option<(usize, Option<usize>, bool, Option<usize>)> {
    // (buffer argument, length argument, kernel writes, fixed length)
    Some(match nr {
        libc::SYS_read | libc::SYS_pread64 => (1, Some(2), true, None),
        libc::SYS_write | libc::SYS_pwrite64 => (1, Some(2), false, None),
        libc::SYS_recvfrom => (1, Some(2), true, None),
        libc::SYS_sendto => (1, Some(2), false, None),
        libc::SYS_getdents64 => (1, Some(2), true, None),
        libc::SYS_getcwd => (0, Some(1), true, None),
        libc::SYS_getrandom => (0, Some(1), true, None),
        libc::SYS_readlink => (1, Some(2), true, None),
        libc::SYS_readlinkat => (2, Some(3), true, None),
        libc::SYS_fstat | libc::SYS_stat | libc::SYS_lstat => (1, None, true, Some(144)),
        libc::SYS_newfstatat => (2, None, true, Some(144)),
        libc::SYS_statx => (4, None, true, Some(256)),
        _ => return None,
    })
}

/// The hook range holding `a`.
fn range_of(t: &[Option<Range>; MAX_RANGES], a: usize) -> Option<Range> {
    t.iter()
        .flatten()
        .find(|r| (r.start..r.end).contains(&a))
        .copied()
}

/// Most pages shown for one call.
const MAX_SHOWN: usize = 256;

/// Pages shown for one call.
struct Shown {
    pages: [(usize, Option<KmemcheckHook>); MAX_SHOWN],
    n: usize,
}

impl Shown {
    /// Shows the pages of `[a, a + len)` that kmemcheck hid.
    fn show(&mut self, r: Range, a: usize, len: usize) {
        let mut page = a & !4095;
        let end = a.saturating_add(len.max(1)).min(r.end);
        while page < end && self.n < self.pages.len() {
            if self.pages[..self.n].iter().any(|&(p, _)| p == page) {
                page += 4096;
                continue;
            }
            // SAFETY: the range's machine is alive while its range is registered.
            if unsafe { (r.hook.show)(r.hook.ctx, page) } {
                self.pages[self.n] = (page, Some(r.hook));
                self.n += 1;
            }
            page += 4096;
        }
    }
}

#[cfg(target_arch = "x86_64")]
extern "C" fn on_sys(_sig: libc::c_int, _info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: the kernel passes its ucontext_t to an SA_SIGINFO handler.
    let g = unsafe { &mut (*uc.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
    let nr = g[libc::REG_RAX as usize];
    let args = [
        g[libc::REG_RDI as usize] as u64,
        g[libc::REG_RSI as usize] as u64,
        g[libc::REG_RDX as usize] as u64,
        g[libc::REG_R10 as usize] as u64,
        g[libc::REG_R8 as usize] as u64,
        g[libc::REG_R9 as usize] as u64,
    ];
    let mut shown = Shown {
        pages: [(0, None); MAX_SHOWN],
        n: 0,
    };
    let t = *RANGES.lock();
    let buf = buffer_of(nr);
    for (i, &a) in args.iter().enumerate() {
        let Some(r) = range_of(&t, a as usize) else {
            continue;
        };
        let len = match buf {
            Some((b, Some(l), _, _)) if b == i => args[l] as usize,
            Some((b, None, _, Some(n))) if b == i => n,
            _ => 2 * 4096 - (a as usize & 4095),
        };
        shown.show(r, a as usize, len.min(32 * 4096));
    }
    // execve's argument and environment arrays point at strings, maybe on hidden pages.
    let arrays: &[usize] = match nr {
        libc::SYS_execve => &[1, 2],
        libc::SYS_execveat => &[2, 3],
        _ => &[],
    };
    for &i in arrays {
        let mut a = args[i] as usize;
        if a == 0 {
            continue;
        }
        loop {
            // Every array page is readable now (shown above, or never hidden); a NULL ends it.
            if let Some(r) = range_of(&t, a) {
                shown.show(r, a, 8);
            }
            // SAFETY: `a` is an element of the program's argv/envp array, which the kernel reads
            // for this call; its page was just shown if kmemcheck had hidden it (or was never
            // hidden), and the loop stops at the array's NULL.
            let s = unsafe { core::ptr::read_volatile(a as *const usize) };
            if s == 0 || shown.n == MAX_SHOWN {
                break;
            }
            if let Some(r) = range_of(&t, s) {
                shown.show(r, s, 2 * 4096 - (s & 4095));
            }
            a += 8;
        }
    }
    if nr == libc::SYS_execve || nr == libc::SYS_execveat {
        // The new program starts with this thread's mask, which blocks SIGSYS inside this
        // handler: unblock our signals first (returning restores the mask if exec fails).
        let set = OURS.iter().fold(0u64, |m, &s| m | 1u64 << (s - 1));
        // SAFETY: changes only this thread's signal mask.
        unsafe {
            kmem_kmc_syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_UNBLOCK as u64,
                core::ptr::addr_of!(set) as u64,
                0,
                8,
                0,
                0,
            )
        };
    }
    let ret = scrub_signals(nr, &args).unwrap_or_else(|| {
        // SAFETY: the gadget makes the call the program asked for, with its arguments.
        unsafe { kmem_kmc_syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) }
    });
    // What the kernel wrote is initialised.
    if let Some((b, l, true, fixed)) = buf {
        let a = args[b] as usize;
        let n = if ret < 0 {
            0
        } else {
            match (nr, l, fixed) {
                (_, _, Some(n)) => n,
                (libc::SYS_getcwd, _, _) => ret as usize,
                (_, Some(_), _) => ret as usize,
                _ => 0,
            }
        };
        if let (Some(r), true) = (range_of(&t, a), n > 0) {
            // SAFETY: the range's machine is alive while its range is registered.
            unsafe { (r.hook.access)(r.hook.ctx, a, n, true, 0) };
        }
    }
    for &(page, hook) in &shown.pages[..shown.n] {
        if let Some(h) = hook {
            // SAFETY: `h` was recorded by `show` from a registered range, and a range's machine is
            // alive while the range is registered (RANGES is not changed during this handler), so
            // `h.ctx` is valid for `hide`.
            unsafe { (h.hide)(h.ctx, page) };
        }
    }
    g[libc::REG_RAX as usize] = ret;
}

#[cfg(not(target_arch = "x86_64"))]
extern "C" fn on_sys(_sig: libc::c_int, _info: *mut libc::siginfo_t, _uc: *mut libc::c_void) {}

/// `mprotect` for the platform: from the gadget once the filters are on (a direct-map
/// address is a trapped argument).
///
/// # Safety
/// As `mprotect(2)`: the caller owns the pages and no Rust reference relies on them staying
/// accessible.
pub(crate) unsafe fn mprotect(addr: *mut libc::c_void, len: usize, prot: libc::c_int) -> bool {
    if ON.load(Ordering::Acquire) {
        // SAFETY: the caller's mprotect, made from the gadget.
        let r = unsafe {
            kmem_kmc_syscall(
                libc::SYS_mprotect,
                addr as u64,
                len as u64,
                prot as u64,
                0,
                0,
                0,
            )
        };
        r == 0
    } else {
        // SAFETY: forwarded: the caller owns the mapping.
        unsafe { libc::mprotect(addr, len, prot) == 0 }
    }
}
