//! The statistics dump at exit (`KMEM_MALLOC_STATS=FILE`): counters, and each node's kernel
//! log (slab debugging reports included) and /proc files, written without allocating.
//! `%p` in FILE is the process ID (one file per preloaded process, as valgrind's
//! `--log-file=...%p`); a plain FILE is replaced whole by each process that exits (written
//! beside it and renamed), so it holds the dump of the last one.

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
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let (mut tmp, mut dst) = ([0u8; 4096], [0u8; 4096]);
    if stats_path(&mut dst, path, pid, None).is_none()
        || stats_path(&mut tmp, path, pid, Some(pid)).is_none()
    {
        return;
    }
    // SAFETY: a NUL-terminated path in our buffer.
    let fd = unsafe {
        libc::open(
            tmp.as_ptr().cast(),
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
    // SAFETY: our descriptor; then two NUL-terminated paths in our buffers. The rename
    // replaces FILE whole: a reader (or another preloaded process of the same command, a
    // wrapper such as `timeout` or `/usr/bin/time` exiting after the program) never sees
    // a mixture of two processes' dumps or a truncated one.
    unsafe {
        libc::close(fd);
        if libc::rename(tmp.as_ptr().cast(), dst.as_ptr().cast()) != 0 {
            libc::unlink(tmp.as_ptr().cast());
        }
    }
}

/// Formats into a byte buffer, always leaving room for a terminating NUL; writing past it
/// is an error (the text then does not fit).
struct BufWriter<'a>(&'a mut [u8], usize);

impl Write for BufWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let b = s.as_bytes();
        if self.1 + b.len() >= self.0.len() {
            return Err(fmt::Error);
        }
        self.0[self.1..self.1 + b.len()].copy_from_slice(b);
        self.1 += b.len();
        Ok(())
    }
}

/// Writes the statistics file's path NUL-terminated into `buf`: `KMEM_MALLOC_STATS` with
/// every `%p` replaced by the process ID and `%%` by `%` (valgrind's `--log-file`
/// convention; other `%` sequences stay as they are), and with `tmp_of = Some(pid)` the
/// temporary file beside it (`.PID.tmp` appended) that the dump is written to first.
/// `None` when the path does not fit.
pub(crate) fn stats_path(
    buf: &mut [u8; 4096],
    path: &str,
    pid: i32,
    tmp_of: Option<i32>,
) -> Option<usize> {
    let mut w = BufWriter(&mut buf[..], 0);
    let mut rest = path;
    while let Some(i) = rest.find('%') {
        w.write_str(&rest[..i]).ok()?;
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('p') {
            write!(w, "{pid}").ok()?;
            rest = r;
        } else if let Some(r) = after.strip_prefix('%') {
            w.write_str("%").ok()?;
            rest = r;
        } else {
            w.write_str("%").ok()?;
            rest = after;
        }
    }
    w.write_str(rest).ok()?;
    if let Some(p) = tmp_of {
        write!(w, ".{p}.tmp").ok()?;
    }
    let n = w.1;
    if n == 0 {
        return None;
    }
    buf[n] = 0;
    Some(n)
}

/// Writes the statistics of every node.
pub fn write_stats(w: &mut dyn Write) -> fmt::Result {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    writeln!(w, "kmem-malloc statistics, pid {pid}")?;
    writeln!(w, "nodes: {} (hot-added: {})", heap::nr_nodes(), 0)?;
    writeln!(
        w,
        "memory hotplug: {} blocks of 128 MiB added, {} removed",
        heap::GROWER.added(),
        heap::GROWER.removed()
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
        if nd.m.kmemcheck_built() {
            let k = nd.m.kmemcheck_stats();
            writeln!(
                w,
                "kmemcheck: {} reports, {} traps, {} pages left present, {} hidden again",
                k.errors, k.faults, k.unhidden, k.rehidden
            )?;
        }
        writeln!(w, "--- dmesg")?;
        nd.m.dmesg(w, true)?;
        for f in [
            "/proc/meminfo",
            "/proc/buddyinfo",
            "/proc/slabinfo",
            "/proc/vmstat",
        ] {
            writeln!(w, "--- {f}")?;
            if nd.m.proc_read(f, w).is_err() {
                writeln!(w, "(unavailable)")?;
            }
        }
        // With KMEM_MALLOC_KFENCE only (the file exists while KFENCE runs).
        let kfence = "/sys/kernel/debug/kfence/stats";
        if nd.m.proc_mode(kfence).is_some() {
            writeln!(w, "--- {kfence}")?;
            nd.m.proc_read(kfence, w).map_err(|_| core::fmt::Error)?;
        }
    }
    Ok(())
}

/// `KMEM_MALLOC_TOP`: publish the statistics for `kmem top --pid` (0 unknown, 1 on, 2 off).
static TOP_ON: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
/// One publisher at a time.
static PUBLISHING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// CLOCK_MONOTONIC milliseconds of the last publication.
static LAST_MS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// At most this often (milliseconds).
const PUBLISH_MS: u64 = 200;

/// Frees between two looks at the clock (for [`publish_tick`]).
const PUBLISH_FREES: u64 = 1024;

/// Counts a free (`n`: the thread's frees so far, [`crate::fork::Hold::count_free`]); every
/// [`PUBLISH_FREES`] frees of a thread, [`publish_tick`].
#[inline]
pub fn free_tick(n: u64) {
    if n & (PUBLISH_FREES - 1) == 0 {
        publish_tick();
    }
}

/// Writes the path `/dev/shm/kmem-malloc.PID` (with `suffix`) NUL-terminated into `buf`.
fn shm_path(buf: &mut [u8; 64], pid: i32, suffix: &str) {
    let mut w = BufWriter(&mut buf[..], 0);
    let _ = write!(w, "/dev/shm/kmem-malloc.{pid}{suffix}");
    let n = w.1;
    buf[n] = 0;
}

/// Publishes the statistics in the shared-memory file `/dev/shm/kmem-malloc.PID` when
/// `KMEM_MALLOC_TOP` is set (at most every 200 ms; called now and then from the free path).
/// The text (the exit dump's, plus a `published_ms` line) is written to a temporary file and
/// renamed over the old one, so a reader (`kmem top --pid PID`) never sees half of it and the
/// process is never stopped. The file is removed at exit.
pub fn publish_tick() {
    let on = TOP_ON.load(Ordering::Relaxed);
    if on == 2 {
        return;
    }
    if on == 0 {
        let want = crate::env(c"KMEM_MALLOC_TOP").is_some_and(|v| !v.is_empty() && v != "0");
        TOP_ON.store(if want { 1 } else { 2 }, Ordering::Relaxed);
        if !want {
            return;
        }
        // SAFETY: `unpublish` is an `extern "C"` function valid for the life of the process.
        unsafe { libc::atexit(unpublish) };
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let now = ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000;
    let last = LAST_MS.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < PUBLISH_MS {
        return;
    }
    if PUBLISHING.swap(true, Ordering::Acquire) {
        return;
    }
    LAST_MS.store(now, Ordering::Relaxed);
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let (mut tmp, mut dst) = ([0u8; 64], [0u8; 64]);
    shm_path(&mut tmp, pid, ".tmp");
    shm_path(&mut dst, pid, "");
    // SAFETY: a NUL-terminated path in our buffer.
    let fd = unsafe {
        libc::open(
            tmp.as_ptr().cast(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd >= 0 {
        let mut w = FdWriter::new(fd);
        let _ = writeln!(w, "published_ms {now}");
        // The first node's zone watermarks, which the exit dump leaves out.
        if heap::nr_nodes() > 0 {
            let _ = writeln!(w, "--- /proc/zoneinfo");
            let _ = heap::node(0).m.proc_read("/proc/zoneinfo", &mut w);
        }
        let _ = write_stats(&mut w);
        w.flush();
        // SAFETY: our descriptor; then two NUL-terminated paths in our buffers.
        unsafe {
            libc::close(fd);
            libc::rename(tmp.as_ptr().cast(), dst.as_ptr().cast());
        }
    }
    PUBLISHING.store(false, Ordering::Release);
}

extern "C" fn unpublish() {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut p = [0u8; 64];
    shm_path(&mut p, pid, "");
    // SAFETY: a NUL-terminated path in our buffer.
    unsafe { libc::unlink(p.as_ptr().cast()) };
}

#[cfg(test)]
mod tests {
    use super::stats_path;

    fn expand(path: &str, pid: i32, tmp: Option<i32>) -> Option<String> {
        let mut b = [0u8; 4096];
        let n = stats_path(&mut b, path, pid, tmp)?;
        assert_eq!(b[n], 0);
        Some(String::from_utf8(b[..n].to_vec()).unwrap())
    }

    #[test]
    fn percent_p_is_the_pid() {
        assert_eq!(expand("st.txt", 42, None).as_deref(), Some("st.txt"));
        assert_eq!(
            expand("/t/st.%p.txt", 42, None).as_deref(),
            Some("/t/st.42.txt")
        );
        assert_eq!(expand("%p-%p", 7, None).as_deref(), Some("7-7"));
        assert_eq!(expand("a%%p%q%", 7, None).as_deref(), Some("a%p%q%"));
        assert_eq!(expand("st.%p", 7, Some(7)).as_deref(), Some("st.7.7.tmp"));
        assert_eq!(expand("", 7, None), None);
        assert_eq!(
            expand(&"x".repeat(4095), 7, None).map(|s| s.len()),
            Some(4095)
        );
        assert_eq!(expand(&"x".repeat(4096), 7, None), None);
        assert_eq!(expand(&"x".repeat(4090), 7, Some(7)), None);
    }
}
