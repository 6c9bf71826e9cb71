//! Fork safety (see the crate documentation).
//!
//! # Invariants
//! - `ACTIVE` counts threads inside an allocator operation; its top bit is set from a fork's
//!   prepare handler until its parent handler (or, in the child, its child handler) ran. A
//!   thread entering while the bit is set backs out and waits.
//! - `FORK_LOCK` serialises forks that use these handlers (held from prepare to parent/child).
//! - Every node's direct map is a private mapping ([`make_private`]), so the child gets a
//!   copy-on-write snapshot of the heap taken while no thread was inside the allocator.
//! - So is every node's memmap: its `struct page`s live in the platform's vmemmap window, not
//!   in the direct map, and [`make_private`] has the platform map private anonymous memory
//!   there (`HostedPlatform::use_private_vmemmap`). Mapped as the memfd's shared pages they
//!   would be one copy for parent and child — the buddy allocator's free lists, which run
//!   through `struct page`, corrupted by whichever allocated second — and not even the pages
//!   the private direct map holds. A node's memmap sections mapped later (memory hot-add)
//!   are private the same way, in whichever process adds them.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use kmem::platform::Platform;

const FORK_BIT: usize = 1 << (usize::BITS - 1);
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static FORK_LOCK: AtomicU32 = AtomicU32::new(0);

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
    // SAFETY: the handlers are `extern "C"` functions without arguments, valid for the life of
    // the process (this library is never unloaded: it is preloaded).
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
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
}

extern "C" fn parent() {
    ACTIVE.fetch_and(!FORK_BIT, Ordering::Release);
    FORK_LOCK.store(0, Ordering::Release);
}

extern "C" fn child() {
    // Only this thread exists in the child.
    crate::reporter_after_fork();
    ACTIVE.store(0, Ordering::Release);
    FORK_LOCK.store(0, Ordering::Release);
}

/// Makes a new node's direct map a private mapping of its memfd, so that `fork` copies it on
/// write like the rest of the process (see the crate documentation). Called before the node
/// boots, when the file is still empty; should it hold data, every such page is copied into
/// the private mapping first, then the file's pages are released: from then on the memfd is
/// all holes and the node's memory is anonymous memory.
///
/// Returns false if the host refused; the node must not be used then.
pub fn make_private(plat: &kmem_hosted::HostedPlatform) -> bool {
    let fd = plat.memfd();
    let len = plat.phys_end().as_u64() as usize;
    let base = plat.direct_map_base();
    // With KMEM_MALLOC_THP=1 the direct map is plain anonymous memory advised for transparent
    // huge pages (a private file mapping's copied pages cannot be huge); the file is empty
    // before boot, so the contents are the same (zero).
    let thp = crate::env(c"KMEM_MALLOC_THP") == Some("1");
    // SAFETY: replaces the node's direct map, which nobody uses yet (the machine is not
    // booted), by a private mapping of the same file range, or by anonymous memory when the
    // file is empty: the contents read the same.
    let r = unsafe {
        if thp {
            libc::mmap(
                base.cast(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        } else {
            libc::mmap(
                base.cast(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                fd,
                0,
            )
        }
    };
    if r == libc::MAP_FAILED {
        return false;
    }
    // The memmap, mapped at boot in the vmemmap window, is private too (module invariants).
    plat.use_private_vmemmap();
    if thp {
        // SAFETY: advice on our own mapping; it does not change its contents.
        unsafe { libc::madvise(base.cast(), len, libc::MADV_HUGEPAGE) };
        return true;
    }
    // Copy on write every page the file holds, so that releasing the file loses nothing.
    let page = kmem::PAGE_SIZE;
    let mut off: libc::off_t = 0;
    while (off as usize) < len {
        // SAFETY: lseek on the platform's descriptor.
        let data = unsafe { libc::lseek(fd, off, libc::SEEK_DATA) };
        if data < 0 {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let end = if hole < 0 {
            len
        } else {
            (hole as usize).min(len)
        };
        let mut pos = data as usize & !(page - 1);
        while pos < end {
            // SAFETY: `base + pos` is inside the direct map (pos < len); a volatile read and a
            // write of the same byte change nothing but make the page private.
            unsafe {
                let p = base.add(pos);
                p.write_volatile(p.read_volatile());
            }
            pos += page;
        }
        off = end as libc::off_t;
    }
    // SAFETY: every page with data now lives in the private mapping; the file's copies are
    // not referenced by anything any more.
    unsafe { plat.punch_hole(kmem::PhysAddr::new(0), len as u64) }.is_ok()
}
