//! Telling the program's user what went wrong, on standard error, as glibc's malloc does:
//!
//! - the first node cannot boot: one line saying why (every allocation then fails with
//!   `ENOMEM`; without the line a program just sees NULL from every `malloc`);
//! - the kernel reported a BUG or a slab debugging error (a double free, a use after free
//!   caught by poisoning, a red zone overwritten under `KMEM_SLUB_DEBUG`): the report's lines
//!   of the node's log are copied to standard error and the process aborts (`SIGABRT`), as
//!   glibc does on `free(): double free detected`. `KMEM_MALLOC_ABORT=0` keeps the program
//!   running after the report.
//!
//! The nodes' console is silent (their boot logs would flood the program's standard error);
//! the reports are taken from each node's log buffer instead, from where the last copy ended.
//! Nothing here allocates.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::heap::{self, Node};
use crate::stats::FdWriter;

/// Abort after a report (`KMEM_MALLOC_ABORT`, default on).
static ABORT: AtomicBool = AtomicBool::new(true);

/// Reads `KMEM_MALLOC_ABORT` (at the first node's boot).
pub(crate) fn configure() {
    if crate::env(c"KMEM_MALLOC_ABORT") == Some("0") {
        ABORT.store(false, Ordering::Relaxed);
    }
}

/// Passes text on from byte `skip` of the stream.
struct Skip<'a> {
    skip: usize,
    seen: usize,
    out: &'a mut FdWriter,
}

impl Write for Skip<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let start = self.skip.saturating_sub(self.seen).min(s.len());
        self.seen += s.len();
        if start < s.len() {
            self.out.write_bytes(&s.as_bytes()[start..]);
        }
        Ok(())
    }
}

/// After an allocator call: copies new reports of any node to standard error and aborts
/// unless `KMEM_MALLOC_ABORT=0`. Cheap when nothing happened: one load of the node's
/// report count (`report_count`, which every BUG, slab error and kmemcheck error moves)
/// against the count last looked at, on the node's own line. Reading the three counters
/// themselves after every call (three cache lines of the machine) was a quarter of `free`'s
/// own samples (docs/BENCHMARKS.md "Issue 14, session 8: thread-locals").
#[inline]
pub(crate) fn check() {
    for i in 0..heap::nr_nodes() {
        let nd = heap::node(i);
        let now = nd.m.report_count();
        if now != nd.any_seen.load(Ordering::Relaxed) {
            changed(nd, now);
        }
    }
}

/// [`check`] when the node's report count moved: which reports are new. `now` was read
/// before the counters below (Acquire), so they include every report it counts; a later
/// report moves the count again and is found by the next check.
#[cold]
#[inline(never)]
fn changed(nd: &Node, now: usize) {
    if nd.reports() != nd.reports_seen.load(Ordering::Relaxed) {
        report(nd);
    }
    if nd.m.kmemcheck_errors() != nd.kmemcheck_seen.load(Ordering::Relaxed) {
        kmemcheck_report(nd);
    }
    nd.any_seen.store(now, Ordering::Relaxed);
}

/// Copies the node's log from where the last copy ended to standard error.
fn copy_log(nd: &Node, w: &mut FdWriter) {
    let from = nd.log_shown.load(Ordering::Relaxed);
    let mut skip = Skip {
        skip: from,
        seen: 0,
        out: w,
    };
    let _ = nd.m.dmesg(&mut skip, false);
    nd.log_shown.store(skip.seen, Ordering::Relaxed);
}

/// kmemcheck's reports (made in the `SIGSEGV` handler, into the node's log) go to standard
/// error; the program goes on, as the kernel does after a kmemcheck warning.
#[cold]
fn kmemcheck_report(nd: &Node) {
    let now = nd.m.kmemcheck_errors();
    if nd.kmemcheck_seen.swap(now, Ordering::Relaxed) == now {
        return; // another thread copied it
    }
    let mut w = FdWriter::new(2);
    copy_log(nd, &mut w);
    w.flush();
}

/// At exit: the kmemcheck reports made since the last allocator call.
pub(crate) fn register_exit() {
    if crate::kmemcheck_wanted().is_none() {
        return;
    }
    extern "C" fn at_exit() {
        for i in 0..heap::nr_nodes() {
            let nd = heap::node(i);
            if nd.m.kmemcheck_errors() != nd.kmemcheck_seen.load(Ordering::Relaxed) {
                kmemcheck_report(nd);
            }
        }
    }
    // SAFETY: registering a plain function; atexit has no other preconditions.
    unsafe { libc::atexit(at_exit) };
}

#[cold]
fn report(nd: &Node) {
    let now = nd.reports();
    let before = nd.reports_seen.swap(now, Ordering::Relaxed);
    if before == now {
        return; // another thread copied it
    }
    let from = nd.log_shown.load(Ordering::Relaxed);
    let mut w = FdWriter::new(2);
    let mut skip = Skip {
        skip: from,
        seen: 0,
        out: &mut w,
    };
    let _ = nd.m.dmesg(&mut skip, false);
    let total = skip.seen;
    nd.log_shown.store(total, Ordering::Relaxed);
    let abort = ABORT.load(Ordering::Relaxed);
    let _ = writeln!(
        w,
        "libkmem_malloc: heap corruption reported (above){}",
        if abort {
            "; aborting (KMEM_MALLOC_ABORT=0 to go on)"
        } else {
            ""
        }
    );
    w.flush();
    if abort {
        // SAFETY: abort has no preconditions; it does not return.
        unsafe { libc::abort() };
    }
}

/// Says on standard error, once, that the first node could not boot.
pub(crate) fn boot_failed(ram: u64, why: &str, errno: i32) {
    let mut w = FdWriter::new(2);
    let _ = write!(
        w,
        "libkmem_malloc: cannot boot the first node ({} MiB of RAM): {why}",
        ram >> 20
    );
    if errno != 0 {
        let _ = write!(w, " (errno {errno})");
    }
    let _ = writeln!(w, "; every allocation fails with ENOMEM");
    w.flush();
}
