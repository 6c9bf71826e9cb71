//! Real page faults on pages kmem protected ([`kmem::platform::Platform::protect_direct_page`],
//! KFENCE's guard pages): the process-wide `SIGSEGV` handler and the table of platforms that
//! want to hear about faults in their direct map.
//!
//! On the first [`register`] the handler is installed (`SA_SIGINFO | SA_ONSTACK`, keeping the
//! previous action). A fault whose address lies in a registered direct map is handed to that
//! platform's [`PageFaultHook`] (kmem's `kfence_handle_page_fault`): if kmem says it handled
//! it (reported it and unprotected the page), the handler returns and the faulting
//! instruction runs again, now successfully — the access completes, as after Linux's
//! `kfence_handle_page_fault`. Any other fault goes to the previous action (Rust's
//! stack-overflow handler, the CLI's crash handler, or the default, which re-raises by
//! restoring it and returning).
//!
//! With kmemcheck's real traps ([`register_kmemcheck`], `crate::kmemcheck`), a fault in a
//! registered direct map is first offered to kmemcheck: the instruction is decoded for its
//! access size, kmem checks the shadow and shows the page, and the instruction is
//! single-stepped (EFLAGS.TF) so that the `SIGTRAP` after it hides the page again.
//!
//! The table is a fixed array under a futex mutex that never allocates; the mutex is held
//! while a hook runs, so [`unregister`] (the platform's drop) waits for a hook call in
//! progress. The hook prints a report (printk) from the signal handler, like Linux's report
//! from its fault handler: acceptable for a fault in ordinary code, which holds none of
//! kmem's locks.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use std::sync::Once;

use kmem::platform::{KmemcheckHook, PageFaultHook};

use crate::futex::{FutexMutex, RawFutexMutex};

/// Platforms with KFENCE at once (tests boot many machines in parallel).
const SLOTS: usize = 64;

#[derive(Clone, Copy)]
struct Entry {
    start: usize,
    end: usize,
    /// KFENCE's hook.
    hook: Option<PageFaultHook>,
    /// kmemcheck's hook.
    kmc: Option<KmemcheckHook>,
}

static TABLE: FutexMutex<[Option<Entry>; SLOTS]> =
    FutexMutex::const_new(RawFutexMutex::new(), [None; SLOTS]);

static INSTALL: Once = Once::new();

/// The action that was in place before ours, written once (under `INSTALL`) before the
/// handler can run.
struct OldAction(UnsafeCell<MaybeUninit<libc::sigaction>>);

// SAFETY: written once inside `INSTALL.call_once`, before our handler is installed; only read
// afterwards.
unsafe impl Sync for OldAction {}

static OLD: OldAction = OldAction(UnsafeCell::new(MaybeUninit::zeroed()));

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; we fill handler, flags and an empty mask. OLD
        // is written here only, before the new handler can run (sigaction stores it first).
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_fault as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGSEGV, &sa, (*OLD.0.get()).as_mut_ptr());
        }
    });
}

/// Sends faults in `[start, end)` to `hook` until [`unregister`]`(start)`. Returns `false`
/// when the table is full (the pages are then still protected, and a fault is fatal).
pub(crate) fn register(start: usize, end: usize, hook: PageFaultHook) -> bool {
    register_with(start, end, |e| e.hook = Some(hook))
}

/// Sends faults in `[start, end)` to kmemcheck's `hook` first (see the module documentation).
pub(crate) fn register_kmemcheck(start: usize, end: usize, hook: KmemcheckHook) -> bool {
    crate::kmemcheck::install();
    register_with(start, end, |e| e.kmc = Some(hook))
}

fn register_with(start: usize, end: usize, set: impl FnOnce(&mut Entry)) -> bool {
    install();
    let mut t = TABLE.lock();
    let slot = t
        .iter()
        .position(|e| e.is_some_and(|e| e.start == start))
        .or_else(|| t.iter().position(Option::is_none));
    match slot {
        Some(i) => {
            let mut e = t[i].unwrap_or(Entry {
                start,
                end,
                hook: None,
                kmc: None,
            });
            e.end = end;
            set(&mut e);
            t[i] = Some(e);
            true
        }
        None => false,
    }
}

/// Forgets the range registered at `start`; waits for a hook call in progress.
pub(crate) fn unregister(start: usize) {
    let mut t = TABLE.lock();
    for e in t.iter_mut() {
        if e.is_some_and(|e| e.start == start) {
            *e = None;
        }
    }
}

/// Whether the access was a write, and the faulting instruction's address.
///
/// # Safety
/// `uc` is the `ucontext_t` the kernel passed to an `SA_SIGINFO` handler.
#[cfg(target_arch = "x86_64")]
unsafe fn decode(uc: *mut libc::c_void) -> (bool, usize) {
    // SAFETY: the caller's guarantee; gregs is a plain array in the context.
    let g = unsafe { &(*uc.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
    // X86_PF_WRITE is bit 1 of the page-fault error code.
    (
        g[libc::REG_ERR as usize] & 2 != 0,
        g[libc::REG_RIP as usize] as usize,
    )
}

/// Elsewhere: unknown (reported as a read at an unknown instruction).
///
/// # Safety
/// As on x86_64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn decode(_uc: *mut libc::c_void) -> (bool, usize) {
    (false, 0)
}

/// Farther than this from the interrupted stack pointer, the handler runs on another stack
/// (its alternate signal stack): on the interrupted one, only the red zone and the signal
/// frame lie between them.
const ALT_GAP: usize = 64 << 10;

/// The interrupted code's stack pointer (0 where unknown).
///
/// # Safety
/// `uc` is the `ucontext_t` the kernel passed to an `SA_SIGINFO` handler.
#[cfg(target_arch = "x86_64")]
unsafe fn interrupted_sp(uc: *mut libc::c_void) -> usize {
    // SAFETY: the caller's guarantee; gregs is a plain array in the context.
    unsafe { (*uc.cast::<libc::ucontext_t>()).uc_mcontext.gregs[libc::REG_RSP as usize] as usize }
}

/// Elsewhere: unknown.
///
/// # Safety
/// As on x86_64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn interrupted_sp(_uc: *mut libc::c_void) -> usize {
    0
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSEGV to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let handled = {
        let t = TABLE.lock();
        match t
            .iter()
            .flatten()
            .find(|e| (e.start..e.end).contains(&addr))
        {
            Some(e) => {
                // SAFETY: `uc` comes from the kernel (SA_SIGINFO).
                let (is_write, ip) = unsafe { decode(uc) };
                let mut handled = false;
                // The hooks run kmem (a kmemcheck check, a report with its stack trace): on
                // the thread's alternate signal stack, whose size the thread's creator chose
                // (Rust's: 8 KiB, less the signal frame, which is 2.7 KiB with AVX-512 state),
                // they run on a stack of their own instead. Told without a system call (a
                // program under kmemcheck_sys traps them): the handler runs on the interrupted
                // stack if its frame lies just below the interrupted stack pointer.
                let here = 0u8;
                // SAFETY: `uc` comes from the kernel (SA_SIGINFO).
                let isp = unsafe { interrupted_sp(uc) };
                let on_alt = isp != 0 && isp.abs_diff(&here as *const u8 as usize) > ALT_GAP;
                crate::stack::run_on_own_stack_if(on_alt, &mut || {
                    // SAFETY: as below, for kmemcheck's hook; `uc` is the kernel's context.
                    let kmc = e.kmc.is_some_and(|k| unsafe {
                        crate::kmemcheck::on_fault(k, addr, is_write, uc)
                    });
                    // SAFETY: the entry is removed (under this lock) before its platform, and
                    // the machine that registered the hook, go away: the hook's contract holds.
                    handled = kmc
                        || e.hook
                            .is_some_and(|h| unsafe { (h.func)(h.ctx, addr, is_write, ip) });
                });
                handled
            }
            None => false,
        }
    };
    if !handled {
        // SAFETY: OLD was written before this handler was installed.
        unsafe { chain(sig, info, uc) };
    }
}

/// Hands a fault that is not kmem's to the action that was there before.
///
/// # Safety
/// Called from the signal handler with its arguments.
unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: initialised before our handler was installed, read only.
    let old = unsafe { (*OLD.0.get()).assume_init_ref() };
    let h = old.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // Restore it and return: the instruction faults again and the default action (a core
        // dump) happens, with the right address. (Ignoring SIGSEGV is not possible for a
        // fault; treat it as the default.)
        let mut dfl = *old;
        dfl.sa_sigaction = libc::SIG_DFL;
        // SAFETY: installing a plain default action.
        unsafe { libc::sigaction(libc::SIGSEGV, &dfl, core::ptr::null_mut()) };
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
