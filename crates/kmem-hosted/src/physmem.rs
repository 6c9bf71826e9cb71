//! "Physical memory": a memfd, mapped whole as the direct map (windows that alias it are in
//! `window`).
//!
//! ```text
//!   memfd (sparse file, size = phys_end)
//!   ┌──────────────────────────────┬ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ┐
//!   │ pages 0 .. phys_end          │ (grows by ftruncate)
//!   └──────────────────────────────┴ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ┘
//!   direct map (one reservation of max_phys bytes, 2 MiB aligned)
//!   ┌──────────────────────────────┬───────────────────────┐
//!   │ MAP_SHARED|MAP_FIXED of fd@0 │ PROT_NONE, NORESERVE  │
//!   └──────────────────────────────┴───────────────────────┘
//!   base                       base+phys_end            base+max_phys
//! ```
//!
//! A [`VirtWindow`](crate::VirtWindow) (module `window`) is another PROT_NONE reservation into which memfd pages can be mapped at
//! chosen offsets (vmalloc's page tables, issue 7); a page written through a window is the
//! same page seen through the direct map.
//!
//! # Invariants
//! - `[base, base + end)` is mapped read-write, shared, over the memfd at offset 0, and the
//!   memfd is at least `end` bytes long; `[base + end, base + max)` is reserved PROT_NONE.
//!   Both hold from construction until drop; `end` only grows.
//! - `end` and `max` are multiples of [`PAGE_SIZE`]; `base` is aligned to [`DIRECT_MAP_ALIGN`].
//!
//! # Locking
//! `grow_lock` serialises [`PhysMem::grow`]; `end` is published with Release after the new
//! range is mapped, so a reader that loads it with Acquire may touch everything below it.
//! Nothing else takes a lock.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, Ordering};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::futex::FutexMutex;
use crate::PAGE_SIZE;

/// Alignment of the direct map's base: 2 MiB (PMD size), so that an order-9 block at an
/// aligned physical address is also aligned virtually and shmem may use huge pages.
pub const DIRECT_MAP_ALIGN: usize = 2 << 20;

pub(crate) fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

pub(crate) fn is_page_aligned(x: u64) -> bool {
    x & (PAGE_SIZE as u64 - 1) == 0
}

/// Checks that the host's page size is the 4 KiB the model assumes.
fn check_host_page_size() -> io::Result<()> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ps = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if ps == PAGE_SIZE as libc::c_long {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "kmem-hosted needs a host page size of 4096 bytes",
        ))
    }
}

/// Reserves `len` bytes of address space aligned to `align`, PROT_NONE and MAP_NORESERVE
/// (no memory and no commit charge behind it).
pub(crate) fn reserve(len: usize, align: usize) -> io::Result<NonNull<u8>> {
    let total = len
        .checked_add(align)
        .ok_or_else(|| invalid("reservation too large"))?;
    // SAFETY: a new anonymous PROT_NONE mapping at a kernel-chosen address replaces nothing.
    let raw = unsafe {
        libc::mmap(
            ptr::null_mut(),
            total,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let start = raw as usize;
    let aligned = (start + align - 1) & !(align - 1);
    let head = aligned - start;
    let tail = total - head - len;
    // SAFETY: both trimmed pieces lie inside the mapping we just made and nobody else uses.
    unsafe {
        if head != 0 {
            libc::munmap(raw, head);
        }
        if tail != 0 {
            libc::munmap((aligned + len) as *mut libc::c_void, tail);
        }
    }
    // SAFETY: `aligned` lies inside a successful mapping, so it is not null.
    Ok(unsafe { NonNull::new_unchecked(aligned as *mut u8) })
}

/// Maps `len` bytes of `fd` at file offset `off` over `addr` (MAP_SHARED|MAP_FIXED).
///
/// # Safety
/// `[addr, addr + len)` must be address space this crate owns (one of its reservations), with
/// no live Rust reference into it: whatever was mapped there is replaced.
pub(crate) unsafe fn map_fd_fixed(
    addr: *mut u8,
    len: usize,
    fd: BorrowedFd<'_>,
    off: u64,
    writable: bool,
) -> io::Result<()> {
    let prot = if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    };
    let off = libc::off_t::try_from(off).map_err(|_| invalid("offset too large"))?;
    // SAFETY: the caller owns the target range; MAP_FIXED replaces only that range.
    let raw = unsafe {
        libc::mmap(
            addr.cast(),
            len,
            prot,
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd.as_raw_fd(),
            off,
        )
    };
    if raw == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Maps `len` bytes of fresh private anonymous memory, readable and writable, over `addr`
/// (MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED): memory of this process alone, which `fork` copies
/// on write.
///
/// # Safety
/// As [`map_fd_fixed`].
pub(crate) unsafe fn map_anon_fixed(addr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: the caller owns the target range; MAP_FIXED replaces only that range.
    let raw = unsafe {
        libc::mmap(
            addr.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Puts PROT_NONE reserved address space back over `[addr, addr + len)`.
///
/// # Safety
/// As [`map_fd_fixed`].
pub(crate) unsafe fn unmap_fixed(addr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: the caller owns the target range; MAP_FIXED replaces only that range.
    let raw = unsafe {
        libc::mmap(
            addr.cast(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| invalid("size too large"))?;
    // SAFETY: ftruncate on a valid fd has no memory-safety preconditions.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: `stat` is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer for the duration of the call.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } == 0 {
        Ok(st)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The memfd and its direct map.
pub(crate) struct PhysMem {
    fd: OwnedFd,
    base: NonNull<u8>,
    max: u64,
    end: AtomicU64,
    grow_lock: FutexMutex<()>,
}

// SAFETY: `base` points at a mapping owned by this value; all mutation of the mapping layout
// is serialised by `grow_lock` and the contents are only accessed through raw pointers by the
// platform's users.
unsafe impl Send for PhysMem {}
// SAFETY: as above.
unsafe impl Sync for PhysMem {}

impl PhysMem {
    /// Creates a memfd of `size` bytes and maps it, reserving room to grow up to `max`.
    ///
    /// # Errors
    /// `InvalidInput` if `size` is zero, or either size is not a multiple of 4 KiB, or
    /// `max < size`; `Unsupported` on a host whose page size is not 4 KiB; otherwise the
    /// error of `memfd_create`, `ftruncate` or `mmap`.
    pub(crate) fn new(size: u64, max: u64) -> io::Result<Self> {
        check_host_page_size()?;
        if size == 0 || !is_page_aligned(size) || !is_page_aligned(max) {
            return Err(invalid(
                "physical memory size must be a non-zero multiple of 4 KiB",
            ));
        }
        if max < size {
            return Err(invalid("max_phys_size is below phys_size"));
        }
        let max_len = usize::try_from(max).map_err(|_| invalid("size too large"))?;
        // SAFETY: the name is a NUL-terminated string; memfd_create has no other preconditions.
        let raw = unsafe { libc::memfd_create(c"kmem-phys".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        ftruncate(fd.as_fd(), size)?;
        let base = reserve(max_len, DIRECT_MAP_ALIGN)?;
        // SAFETY: `[base, base + size)` lies in the reservation we own, nothing refers to it.
        if let Err(e) = unsafe { map_fd_fixed(base.as_ptr(), size as usize, fd.as_fd(), 0, true) } {
            // SAFETY: the reservation is ours and unused.
            unsafe { libc::munmap(base.as_ptr().cast(), max_len) };
            return Err(e);
        }
        Ok(Self {
            fd,
            base,
            max,
            end: AtomicU64::new(size),
            grow_lock: FutexMutex::new(()),
        })
    }

    /// The address of physical address 0.
    #[inline]
    pub(crate) fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// The current end of physical memory.
    #[inline]
    pub(crate) fn end(&self) -> u64 {
        self.end.load(Ordering::Acquire)
    }

    /// The end physical memory may grow to.
    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// The memfd.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Grows physical memory to `new_end`; see `HostedPlatform::grow_phys`.
    pub(crate) fn grow(&self, new_end: u64) -> io::Result<()> {
        let _g = self.grow_lock.lock();
        let old = self.end.load(Ordering::Relaxed);
        if !is_page_aligned(new_end) {
            return Err(invalid("new physical end is not a multiple of 4 KiB"));
        }
        if new_end < old {
            return Err(invalid("physical memory cannot shrink"));
        }
        if new_end > self.max {
            return Err(invalid("new physical end is beyond the reserved maximum"));
        }
        if new_end == old {
            return Ok(());
        }
        ftruncate(self.fd(), new_end)?;
        // SAFETY: `[base + old, base + new_end)` is the PROT_NONE tail of our reservation
        // (old < new_end <= max); nothing refers to it.
        let r = unsafe {
            map_fd_fixed(
                self.base().add(old as usize),
                (new_end - old) as usize,
                self.fd(),
                old,
                true,
            )
        };
        if let Err(e) = r {
            // Best effort: give the file its old size back (pages beyond are unmapped anyway).
            let _ = ftruncate(self.fd(), old);
            return Err(e);
        }
        self.end.store(new_end, Ordering::Release);
        Ok(())
    }

    /// Releases the backing of `[phys, phys + len)`; see `HostedPlatform::punch_hole`.
    ///
    /// # Safety
    /// No Rust reference into the range may be live: its bytes become zero.
    pub(crate) unsafe fn punch_hole(&self, phys: u64, len: u64) -> io::Result<()> {
        if !is_page_aligned(phys) || !is_page_aligned(len) {
            return Err(invalid("hole is not page aligned"));
        }
        let end = phys
            .checked_add(len)
            .ok_or_else(|| invalid("hole overflows"))?;
        if end > self.end() {
            return Err(invalid("hole extends beyond physical memory"));
        }
        if len == 0 {
            return Ok(());
        }
        let off = libc::off_t::try_from(phys).map_err(|_| invalid("offset too large"))?;
        let len = libc::off_t::try_from(len).map_err(|_| invalid("length too large"))?;
        // SAFETY: fallocate does not touch our memory directly; the kernel zaps the pages from
        // every mapping, which the caller allows (no live references).
        let rc = unsafe {
            libc::fallocate(
                self.fd.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off,
                len,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Bytes of host memory backing the memfd now (`st_blocks * 512`).
    pub(crate) fn resident_bytes(&self) -> io::Result<u64> {
        let st = fstat(self.fd())?;
        Ok(st.st_blocks as u64 * 512)
    }
}

impl Drop for PhysMem {
    fn drop(&mut self) {
        // SAFETY: the whole reservation is ours; by the type's contract nothing uses it any
        // more once the owner drops it. The fd is closed by `OwnedFd`.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.max as usize) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn rejects_bad_sizes() {
        assert!(PhysMem::new(0, 0).is_err());
        assert!(PhysMem::new(4097, 8192).is_err());
        assert!(PhysMem::new(8192, 4096).is_err());
    }

    #[test]
    fn base_aligned_and_writable() {
        let m = PhysMem::new(4 * MIB, 8 * MIB).unwrap();
        assert_eq!(m.base() as usize % DIRECT_MAP_ALIGN, 0);
        assert_eq!(m.end(), 4 * MIB);
        assert_eq!(m.max(), 8 * MIB);
        // SAFETY: the first and last byte of physical memory are mapped read-write.
        unsafe {
            m.base().write(7);
            m.base().add(4 * MIB as usize - 1).write(9);
            assert_eq!(m.base().read(), 7);
        }
    }

    #[test]
    fn grow_checks_bounds() {
        let m = PhysMem::new(MIB, 4 * MIB).unwrap();
        assert!(m.grow(MIB + 1).is_err());
        assert!(m.grow(8 * MIB).is_err());
        m.grow(2 * MIB).unwrap();
        assert!(m.grow(MIB).is_err(), "shrinking is refused");
        m.grow(2 * MIB).unwrap();
        assert_eq!(m.end(), 2 * MIB);
    }
}
