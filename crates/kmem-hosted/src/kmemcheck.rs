//! kmemcheck's real traps on the hosted platform (Linux 4.14's arch/x86/mm/kmemcheck/:
//! `kmemcheck_fault`, `kmemcheck_trap`, opcode.c), with
//! [`HostedPlatform::enable_kmemcheck_traps`](crate::HostedPlatform::enable_kmemcheck_traps).
//!
//! kmem hides every tracked page (`PROT_NONE` on the direct map). An access to one raises
//! `SIGSEGV`; `fault`'s handler calls [`on_fault`], which
//! 1. decodes the faulting instruction (yaxpeax-x86's decoder, at the context's RIP) for the size
//!    of its memory operand — the direction comes from the fault's error code (`X86_PF_WRITE`),
//!    as in Linux, so a read-modify-write counts as a write;
//! 2. hands (address, size, write) to kmem ([`KmemcheckHook::access`]), which checks or updates
//!    the shadow, reports a bad read, and shows the page;
//! 3. remembers the page for this thread and sets the trap flag (EFLAGS.TF) in the context.
//!
//! The handler returns, the instruction runs once (an instruction touching two hidden pages
//! faults again first, and the second page is shown and remembered too), and the CPU raises a
//! debug trap: [`on_trap`] (`SIGTRAP`) clears TF and asks kmem to hide the remembered pages
//! again ([`KmemcheckHook::hide`]). A `SIGTRAP` with nothing remembered is not ours and goes
//! to the previous action.
//!
//! Only the instruction's own thread runs with the page shown, but the page is shown to every
//! thread of the process for that one instruction (Linux ran kmemcheck on one CPU for the
//! same reason). Nothing here allocates.

use core::cell::{Cell, UnsafeCell};
use core::mem::MaybeUninit;
use std::sync::Once;

use kmem::platform::KmemcheckHook;
use yaxpeax_x86::amd64::InstDecoder;

/// Pages one instruction may have shown (two operands, each across a page boundary).
const MAX_PENDING: usize = 4;

/// `X86_EFLAGS_TF`.
const EFLAGS_TF: i64 = 0x100;

std::thread_local! {
    /// Pages shown for this thread's instruction being single-stepped, and their hooks.
    static PENDING: Cell<[Option<(KmemcheckHook, usize)>; MAX_PENDING]> =
        const { Cell::new([None; MAX_PENDING]) };
}

static INSTALL: Once = Once::new();

/// The `SIGTRAP` action before ours, written once (under `INSTALL`) before ours can run.
struct OldAction(UnsafeCell<MaybeUninit<libc::sigaction>>);

// SAFETY: written once inside `INSTALL.call_once`, before our handler is installed; only read
// afterwards.
unsafe impl Sync for OldAction {}

static OLD: OldAction = OldAction(UnsafeCell::new(MaybeUninit::zeroed()));

/// Warms the decoder up and installs the `SIGTRAP` handler (once per process).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; we fill handler, flags and an empty mask. OLD
        // is written here only, before the new handler can run.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_trap as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGTRAP, &sa, (*OLD.0.get()).as_mut_ptr());
        }
    });
}

/// The size of the memory operand of the instruction at the start of `code` (0 when it has
/// none or its size is not fixed), if it decodes: the x86 `opcode.c` of Linux's kmemcheck, by
/// a full decoder (yaxpeax-x86: no allocation, no tables built at run time, so it may run in
/// a signal handler).
fn access_size_of(code: &[u8]) -> Option<usize> {
    let ins = InstDecoder::default().decode_slice(code).ok()?;
    Some(
        ins.mem_size()
            .and_then(|s| s.bytes_size())
            .map_or(0, usize::from),
    )
}

/// The access size of the instruction at `ip`: its memory operand's size, 1 when the decoder
/// knows none (kmemcheck then checks the byte that faulted).
///
/// # Safety
/// `ip` is the address of an instruction that just ran (its bytes are mapped).
unsafe fn access_size(ip: usize) -> usize {
    let mut buf = [0u8; 15];
    // Read to the end of the instruction's page first; the next page only if the instruction
    // does not decode from that (it then crosses into it, so that page is mapped).
    let first = 15.min(4096 - ip % 4096);
    for (i, b) in buf.iter_mut().enumerate().take(first) {
        // SAFETY: the caller's guarantee: code bytes of the faulting instruction's page.
        *b = unsafe { core::ptr::read_volatile((ip + i) as *const u8) };
    }
    let size = access_size_of(&buf[..first]).or_else(|| {
        for (i, b) in buf.iter_mut().enumerate().skip(first) {
            // SAFETY: the instruction continues on the next page, which is mapped.
            *b = unsafe { core::ptr::read_volatile((ip + i) as *const u8) };
        }
        access_size_of(&buf)
    });
    size.filter(|&n| n > 0).unwrap_or(1)
}

/// A fault at `addr` in a direct map with kmemcheck's `hook`: returns whether it was on a
/// page kmemcheck hid (then shown, and the instruction set to single-step).
///
/// # Safety
/// Called from the `SIGSEGV` handler with the kernel's `ucontext_t`, while the platform that
/// registered `hook` is alive.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn on_fault(
    hook: KmemcheckHook,
    addr: usize,
    is_write: bool,
    uc: *mut libc::c_void,
) -> bool {
    // SAFETY: the caller's guarantee; gregs is a plain array in the context.
    let g = unsafe { &mut (*uc.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
    let ip = g[libc::REG_RIP as usize] as usize;
    let mut pending = PENDING.get();
    let Some(slot) = pending.iter().position(Option::is_none) else {
        return false;
    };
    // SAFETY: the instruction at RIP just faulted on a data access: its bytes are mapped.
    let size = unsafe { access_size(ip) };
    let checked = if !is_write && size >= 16 && crate::kmemcheck_sys::in_libc(ip) {
        // A vector load by one of libc's (or ld.so's) string and memory routines: an over-read past the
        // end of a string within its aligned chunk (strlen, strchr, memchr … load whole
        // 16/32/64-byte chunks and discard the bytes after the terminator), or a copy
        // (memcpy, memmove: a copy of uninitialised padding is no use of it). Shown without
        // a check (docs/KMEMCHECK.md, "kmemcheck on real programs").
        // SAFETY: as below.
        unsafe { (hook.show)(hook.ctx, addr) }
    } else {
        // SAFETY: the caller's guarantee: the hook's machine is alive.
        unsafe { (hook.access)(hook.ctx, addr, size, is_write, ip) }
    };
    if !checked {
        return false;
    }
    pending[slot] = Some((hook, addr));
    PENDING.set(pending);
    g[libc::REG_EFL as usize] |= EFLAGS_TF;
    true
}

/// Elsewhere no traps are offered (see `HostedPlatform::set_kmemcheck_hook`).
///
/// # Safety
/// As on x86_64.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn on_fault(
    _hook: KmemcheckHook,
    _addr: usize,
    _is_write: bool,
    _uc: *mut libc::c_void,
) -> bool {
    false
}

extern "C" fn on_trap(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let pending = PENDING.get();
    if pending.iter().all(Option::is_none) {
        // SAFETY: OLD was written before this handler was installed.
        unsafe { chain(sig, info, uc) };
        return;
    }
    PENDING.set([None; MAX_PENDING]);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the kernel passes its ucontext_t to an SA_SIGINFO handler.
        let g = unsafe { &mut (*uc.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
        g[libc::REG_EFL as usize] &= !EFLAGS_TF;
    }
    for (hook, addr) in pending.into_iter().flatten() {
        // SAFETY: the page was shown by this hook's machine a moment ago, on this thread; a
        // platform unregisters (and its machine goes) only after its threads' accesses.
        unsafe { (hook.hide)(hook.ctx, addr) };
    }
}

/// Hands a `SIGTRAP` that is not ours to the action that was there before.
///
/// # Safety
/// Called from the signal handler with its arguments.
unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: initialised before our handler was installed, read only.
    let old = unsafe { (*OLD.0.get()).assume_init_ref() };
    let h = old.sa_sigaction;
    if h == libc::SIG_IGN {
        return;
    }
    if h == libc::SIG_DFL {
        // Restore the default and raise again: the default action (a core dump) happens.
        let mut dfl = *old;
        dfl.sa_sigaction = libc::SIG_DFL;
        // SAFETY: installing a plain default action, then raising the signal on this thread.
        unsafe {
            libc::sigaction(libc::SIGTRAP, &dfl, core::ptr::null_mut());
            libc::raise(libc::SIGTRAP);
        }
    } else if old.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed as an SA_SIGINFO handler with this type.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { core::mem::transmute(h) };
        f(sig, info, uc);
    } else {
        // SAFETY: the previous handler was installed as a plain handler with this type.
        let f: extern "C" fn(libc::c_int) = unsafe { core::mem::transmute(h) };
        f(sig);
    }
}

#[cfg(test)]
mod tests {
    use super::access_size_of;

    #[test]
    fn operand_sizes() {
        // mov eax, [rdi]
        assert_eq!(access_size_of(&[0x8b, 0x07]), Some(4));
        // mov rax, [rdi]
        assert_eq!(access_size_of(&[0x48, 0x8b, 0x07]), Some(8));
        // movzx eax, byte [rdi]
        assert_eq!(access_size_of(&[0x0f, 0xb6, 0x07]), Some(1));
        // mov word [rdi], ax
        assert_eq!(access_size_of(&[0x66, 0x89, 0x07]), Some(2));
        // movdqu xmm0, [rdi]
        assert_eq!(access_size_of(&[0xf3, 0x0f, 0x6f, 0x07]), Some(16));
        // Truncated.
        assert_eq!(access_size_of(&[0x48, 0x8b]), None);
    }
}
