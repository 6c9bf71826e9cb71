//! The console under printk: where a platform's kernel messages go.
//!
//! File-descriptor sinks write with `write(2)` directly, unbuffered and without locks or
//! allocation, so printk works from inside a global allocator, from thread-local destructors and
//! during process exit. One `console_write` call is one `write(2)` in the common case, so lines
//! printed by different threads do not interleave within a line (for writes up to `PIPE_BUF`
//! on pipes). Rust's `println!` is line-buffered: as long as the program ends its own lines,
//! the two streams stay in order.
//!
//! [`Console::Capture`] appends to a `String` under a mutex instead, for tests that assert on
//! kernel reports; it allocates as the string grows, so it is not for use under a global
//! allocator.

use std::os::fd::RawFd;
use std::sync::Mutex;

/// Where printk output goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Console {
    /// The process's standard output (fd 1), unbuffered.
    Stdout,
    /// The process's standard error (fd 2).
    #[default]
    Stderr,
    /// Discard everything.
    Null,
    /// Keep everything in memory; read it with `HostedPlatform::captured` and
    /// `HostedPlatform::take_captured`.
    Capture,
    /// A file descriptor the caller keeps open for the platform's lifetime (not closed by it).
    Fd(RawFd),
}

/// A console's runtime state.
pub(crate) struct ConsoleSink {
    kind: Console,
    captured: Mutex<String>,
}

impl ConsoleSink {
    pub(crate) const fn new(kind: Console) -> Self {
        Self {
            kind,
            captured: Mutex::new(String::new()),
        }
    }

    pub(crate) fn kind(&self) -> Console {
        self.kind
    }

    pub(crate) fn write(&self, s: &str) {
        match self.kind {
            Console::Stdout => write_fd(1, s.as_bytes()),
            Console::Stderr => write_fd(2, s.as_bytes()),
            Console::Fd(fd) => write_fd(fd, s.as_bytes()),
            Console::Null => {}
            Console::Capture => self.lock().push_str(s),
        }
    }

    /// A copy of the captured text.
    pub(crate) fn captured(&self) -> String {
        self.lock().clone()
    }

    /// The captured text, leaving the capture empty.
    pub(crate) fn take_captured(&self) -> String {
        core::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, String> {
        // A panic while appending cannot leave the String invalid: ignore poisoning.
        self.captured.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes all of `buf` to `fd`, retrying on `EINTR` and short writes; other errors drop the
/// rest (a console cannot report its own failure).
fn write_fd(fd: RawFd, mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the duration of the call.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if n == 0 {
            return;
        }
        buf = &buf[n as usize..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    #[test]
    fn capture_collects_and_take_empties() {
        let c = ConsoleSink::new(Console::Capture);
        c.write("a\n");
        c.write("b\n");
        assert_eq!(c.captured(), "a\nb\n");
        assert_eq!(c.take_captured(), "a\nb\n");
        assert_eq!(c.captured(), "");
    }

    #[test]
    fn null_discards() {
        let c = ConsoleSink::new(Console::Null);
        c.write("x");
        assert_eq!(c.captured(), "");
    }

    #[test]
    fn fd_sink_writes_through_a_pipe() {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid out-array of two ints.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors are fresh and owned by nothing else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let c = ConsoleSink::new(Console::Fd(w.as_raw_fd()));
        c.write("hello ");
        c.write("console\n");
        drop(c);
        drop(w);
        let mut out = String::new();
        std::fs::File::from(r).read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello console\n");
    }
}
