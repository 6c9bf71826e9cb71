//! The statistics dump at exit (`KMEM_MALLOC_STATS=FILE`): counters, and each node's kernel
//! log (slab debugging reports included) and /proc files, written without allocating.

use core::fmt::{self, Write};
use core::sync::atomic::Ordering;

use crate::heap::{self, STATS};

/// A `fmt::Write` over a file descriptor with a fixed buffer.
pub(crate) struct FdWriter {
    fd: libc::c_int,
    buf: [u8; 4096],
    len: usize,
}

impl FdWriter {
    /// A writer to `fd` (not closed by it).
    pub(crate) const fn new(fd: libc::c_int) -> Self {
        Self {
            fd,
            buf: [0; 4096],
            len: 0,
        }
    }

    /// Writes out what is buffered.
    pub(crate) fn flush(&mut self) {
        let mut done = 0;
        while done < self.len {
            // SAFETY: writes initialised bytes of our buffer.
            let n = unsafe {
                libc::write(
                    self.fd,
                    self.buf[done..self.len].as_ptr().cast(),
                    self.len - done,
                )
            };
            if n <= 0 {
                break;
            }
            done += n as usize;
        }
        self.len = 0;
    }
}

impl FdWriter {
    /// Buffers `b`, writing out when the buffer is full.
    pub(crate) fn write_bytes(&mut self, b: &[u8]) {
        for chunk in b.chunks(self.buf.len()) {
            if self.len + chunk.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
    }
}

impl Write for FdWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Registers the exit handler when `KMEM_MALLOC_STATS` is set.
pub fn register() {
    if crate::env(c"KMEM_MALLOC_STATS").is_some() {
        // SAFETY: `dump` is an `extern "C"` function valid for the life of the process.
        unsafe { libc::atexit(dump) };
    }
}

extern "C" fn dump() {
    let Some(path) = crate::env(c"KMEM_MALLOC_STATS") else {
        return;
    };
    let mut cpath = [0u8; 4096];
    if path.len() >= cpath.len() {
        return;
    }
    cpath[..path.len()].copy_from_slice(path.as_bytes());
    // SAFETY: a NUL-terminated path in our buffer.
    let fd = unsafe {
        libc::open(
            cpath.as_ptr().cast(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        return;
    }
    let mut w = FdWriter::new(fd);
    let _ = write_stats(&mut w);
    w.flush();
    // SAFETY: our descriptor.
    unsafe { libc::close(fd) };
}

/// Writes the statistics of every node.
pub fn write_stats(w: &mut dyn Write) -> fmt::Result {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    writeln!(w, "kmem-malloc statistics, pid {pid}")?;
    writeln!(
        w,
        "nodes: {} (hot-added: {})",
        heap::nr_nodes(),
        STATS.hot_adds.load(Ordering::Relaxed)
    )?;
    writeln!(
        w,
        "free page reporting: {} passes, {} MiB released to the host",
        STATS.report_passes.load(Ordering::Relaxed),
        STATS.reported_bytes.load(Ordering::Relaxed) >> 20
    )?;
    writeln!(
        w,
        "host-mapped blocks: {}; frees of foreign pointers: {}",
        STATS.host_blocks.load(Ordering::Relaxed),
        STATS.foreign_frees.load(Ordering::Relaxed)
    )?;
    for i in 0..heap::nr_nodes() {
        let nd = heap::node(i);
        writeln!(w, "\n=== node {i}: {} MiB of RAM ===", nd.ram >> 20)?;
        writeln!(
            w,
            "reports: {} BUG, {} warnings, {} slab errors",
            nd.m.bug_count(),
            nd.m.warn_count(),
            nd.m.slab_errors()
        )?;
        writeln!(w, "--- dmesg")?;
        nd.m.dmesg(w, true)?;
        for f in ["/proc/meminfo", "/proc/buddyinfo", "/proc/slabinfo"] {
            writeln!(w, "--- {f}")?;
            if nd.m.proc_read(f, w).is_err() {
                writeln!(w, "(unavailable)")?;
            }
        }
    }
    Ok(())
}
