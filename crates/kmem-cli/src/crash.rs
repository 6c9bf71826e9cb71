//! What happens when the simulated kernel's own memory was corrupted (by `poke`/`memset` in
//! the shell, as a real kernel can be) and kmem then touches a wild pointer: the host raises
//! SIGSEGV or SIGBUS. Instead of dying silently, the process prints Linux's panic line with
//! the host address and exits with [`EXIT_KERNEL_CRASH`].
//!
//! The handler is async-signal-safe: it formats into a stack buffer, calls `write(2)` and
//! `_exit(2)`, and runs on the alternate signal stack (`SA_ONSTACK`) that Rust's runtime
//! installs for the main thread, so a stack overflow is reported too.

/// Exit status after a host fault inside the simulated kernel.
pub const EXIT_KERNEL_CRASH: i32 = 3;

const MSG: &[u8] = b"Kernel panic - not syncing: Fatal exception (kmem: host fault at 0x";
const TAIL: &[u8] = b": the simulated kernel's memory is corrupted)\n";

extern "C" fn on_fault(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let mut buf = [0u8; 160];
    let mut n = 0;
    for &b in MSG {
        buf[n] = b;
        n += 1;
    }
    let addr = if info.is_null() {
        0
    } else {
        // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler; si_addr is
        // the faulting address for SIGSEGV and SIGBUS.
        unsafe { (*info).si_addr() as usize }
    };
    let digits = (usize::BITS as usize / 4).max(1);
    let mut started = false;
    for i in (0..digits).rev() {
        let d = (addr >> (i * 4)) & 0xf;
        if d != 0 || started || i == 0 {
            started = true;
            buf[n] = b"0123456789abcdef"[d];
            n += 1;
        }
    }
    for &b in TAIL {
        buf[n] = b;
        n += 1;
    }
    // SAFETY: write(2) and _exit(2) are async-signal-safe; `buf` is valid for `n` bytes.
    unsafe {
        libc::write(1, buf.as_ptr().cast(), n);
        libc::_exit(EXIT_KERNEL_CRASH);
    }
}

/// Installs the handler for SIGSEGV and SIGBUS (process-wide; the CLI's edge only).
pub fn install() {
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: a zeroed sigaction is a valid starting point; we set the handler, flags and
        // an empty mask, and `on_fault` has the SA_SIGINFO signature.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_fault as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, core::ptr::null_mut());
        }
    }
}
