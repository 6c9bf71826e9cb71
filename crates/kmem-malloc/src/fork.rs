//! Fork safety (see the crate documentation).
//!
//! # Invariants
//! - `ACTIVE` counts threads inside an allocator operation; its top bit is set from a fork's
//!   prepare handler until its parent handler (or, in the child, its child handler) ran. A
//!   thread entering while the bit is set backs out and waits.
//! - `FORK_LOCK` serialises forks that use these handlers (held from prepare to parent/child).
//! - `SYNC` is a word in a shared anonymous page: 0 from prepare until the child finished
//!   copying its memory, then 1.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kmem::platform::Platform;

use crate::heap;

const FORK_BIT: usize = 1 << (usize::BITS - 1);
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static FORK_LOCK: AtomicU32 = AtomicU32::new(0);
static SYNC: AtomicPtr<AtomicU32> = AtomicPtr::new(ptr::null_mut());

/// Longest a parent waits for its child's copy of memory.
const CHILD_COPY_TIMEOUT: Duration = Duration::from_secs(10);

/// Enters an allocator operation.
#[inline]
pub fn enter() {
    loop {
        let v = ACTIVE.fetch_add(1, Ordering::Acquire);
        if v & FORK_BIT == 0 {
            return;
        }
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
        while ACTIVE.load(Ordering::Relaxed) & FORK_BIT != 0 {
            std::thread::yield_now();
        }
    }
}

/// Leaves an allocator operation.
#[inline]
pub fn exit() {
    ACTIVE.fetch_sub(1, Ordering::Release);
}

/// Registers the handlers (once, after the first node booted).
pub fn register() {
    // SAFETY: an anonymous shared mapping of one page; no preconditions.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            kmem::PAGE_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return;
    }
    SYNC.store(p.cast(), Ordering::Release);
    // SAFETY: the handlers are `extern "C"` functions without arguments, valid for the life of
    // the process (this library is never unloaded: it is preloaded).
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

fn sync() -> Option<&'static AtomicU32> {
    let p = SYNC.load(Ordering::Acquire);
    // SAFETY: a page mapped in `register` and never unmapped; an AtomicU32 is valid for any
    // bit pattern and suitably aligned at the page start.
    (!p.is_null()).then(|| unsafe { &*p })
}

extern "C" fn prepare() {
    while FORK_LOCK
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
    ACTIVE.fetch_or(FORK_BIT, Ordering::AcqRel);
    while ACTIVE.load(Ordering::Acquire) & !FORK_BIT != 0 {
        std::thread::yield_now();
    }
    if let Some(s) = sync() {
        s.store(0, Ordering::Release);
    }
}

extern "C" fn parent() {
    if let Some(s) = sync() {
        let start = Instant::now();
        while s.load(Ordering::Acquire) == 0 && start.elapsed() < CHILD_COPY_TIMEOUT {
            let ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 1_000_000,
            };
            // SAFETY: FUTEX_WAIT on a valid shared word, with a timeout; spurious returns are
            // handled by the loop.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    s.as_ptr(),
                    libc::FUTEX_WAIT,
                    0u32,
                    &ts as *const libc::timespec,
                )
            };
        }
    }
    ACTIVE.fetch_and(!FORK_BIT, Ordering::Release);
    FORK_LOCK.store(0, Ordering::Release);
}

extern "C" fn child() {
    for i in 0..heap::nr_nodes() {
        if !private_copy(heap::node(i)) {
            // The child would share its heap with its parent: stop before it corrupts it.
            const MSG: &[u8] = b"kmem-malloc: fork: cannot copy the heap for the child\n";
            // SAFETY: write(2) of a static buffer, then abort.
            unsafe {
                libc::write(2, MSG.as_ptr().cast(), MSG.len());
                libc::abort();
            }
        }
    }
    if let Some(s) = sync() {
        s.store(1, Ordering::Release);
        // SAFETY: FUTEX_WAKE on a valid shared word.
        unsafe { libc::syscall(libc::SYS_futex, s.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
    }
    // Only this thread exists in the child.
    ACTIVE.store(0, Ordering::Release);
    FORK_LOCK.store(0, Ordering::Release);
}

/// Gives the node a private copy of its physical memory (see the crate documentation).
fn private_copy(nd: &heap::Node) -> bool {
    let plat = nd.m.platform();
    let fd = plat.memfd();
    let len = plat.phys_end().as_u64() as usize;
    let base = plat.direct_map_base();
    // SAFETY: fcntl/memfd_create/ftruncate on descriptors we own; no memory is touched.
    let (flags, new) = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        let new = libc::memfd_create(c"kmem-phys".as_ptr(), libc::MFD_CLOEXEC);
        (flags, new)
    };
    if new < 0 {
        return false;
    }
    // SAFETY: as above.
    if unsafe { libc::ftruncate(new, len as libc::off_t) } != 0 {
        return false;
    }
    // Copy the data ranges only (the memfd is sparse).
    let mut off: libc::off_t = 0;
    while (off as usize) < len {
        // SAFETY: lseek on our descriptor.
        let data = unsafe { libc::lseek(fd, off, libc::SEEK_DATA) };
        if data < 0 {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let end = if hole < 0 { len as libc::off_t } else { hole };
        let mut pos = data;
        while pos < end {
            // SAFETY: `[base + pos, base + end)` is inside the direct map (pos < end <= len),
            // readable; pwrite only reads it.
            let n = unsafe {
                libc::pwrite(
                    new,
                    base.add(pos as usize).cast(),
                    (end - pos) as usize,
                    pos,
                )
            };
            if n <= 0 {
                return false;
            }
            pos += n as libc::off_t;
        }
        off = end;
    }
    // SAFETY: replaces the direct map's mapping with the same range of the new file: the
    // contents are identical, and only this thread runs in the child.
    let m = unsafe {
        libc::mmap(
            base.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED,
            new,
            0,
        )
    };
    if m == libc::MAP_FAILED {
        return false;
    }
    let cloexec = if flags >= 0 && flags & libc::FD_CLOEXEC != 0 {
        libc::O_CLOEXEC
    } else {
        0
    };
    // SAFETY: makes the platform's descriptor number refer to the new file (punch_hole and
    // growth then act on the child's copy), then drops our extra reference.
    unsafe {
        if libc::dup3(new, fd, cloexec) < 0 {
            return false;
        }
        libc::close(new);
    }
    true
}
