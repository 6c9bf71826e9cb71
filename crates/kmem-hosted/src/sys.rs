//! Small host queries: thread id and OS randomness.

use core::cell::Cell;

thread_local! {
    /// The calling thread's kernel tid, 0 until first asked.
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// The calling thread's kernel thread id (`gettid()`), cached per thread.
pub(crate) fn gettid() -> u32 {
    let raw = || {
        // SAFETY: gettid has no preconditions and cannot fail.
        unsafe { libc::gettid() as u32 }
    };
    TID.try_with(|t| {
        let v = t.get();
        if v != 0 {
            v
        } else {
            let v = raw();
            t.set(v);
            v
        }
    })
    .unwrap_or_else(|_| raw())
}

/// 64 bits from the kernel's CSPRNG (`getrandom(2)`), or `None` if it fails.
pub(crate) fn os_random_u64() -> Option<u64> {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is valid for writes of 8 bytes for the duration of the call.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    (n == 8).then(|| u64::from_ne_bytes(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tid_is_stable_per_thread_and_differs_between_threads() {
        let a = gettid();
        assert_eq!(a, gettid());
        let b = std::thread::spawn(gettid).join().unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn os_random_varies() {
        let a = os_random_u64().unwrap();
        let b = os_random_u64().unwrap();
        // 2^-64 chance of a false failure.
        assert_ne!(a, b);
    }
}
