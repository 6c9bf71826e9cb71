//! Ctrl-C in the interactive shell: SIGINT sets a flag that the shell's loops test at each
//! iteration (`while (1) { }` stops with `error: interrupted` and the prompt comes back). A
//! second SIGINT before the shell took the first one ends the process as SIGINT would
//! (status 130), so a long statement that tests no flag can still be stopped.
//!
//! At the prompt the terminal is in raw mode and Ctrl-C is a key for the line editor, not a
//! signal.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the handler; tested and cleared by the shell.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_sig: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::Relaxed) {
        // SAFETY: _exit(2) is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

/// Installs the SIGINT handler (process-wide) and returns the flag it sets.
pub fn install() -> &'static AtomicBool {
    // SAFETY: a zeroed sigaction is a valid starting point; we set a handler with the plain
    // one-argument signature, no flags but SA_RESTART, and an empty mask.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_sigint as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, core::ptr::null_mut());
    }
    &INTERRUPTED
}
