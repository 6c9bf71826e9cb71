//! "Physical memory": a memfd per NUMA node (`kmem-phys-nodeN`; one, node 0's, until
//! [`PhysMem::split_nodes`]), mapped as one direct map (windows that alias it are in
//! `window`). Below, "the memfd" is node 0's on a one-node machine; with several nodes the
//! direct map is cut into extents, each a range of one node's file (`Layout`), and every
//! operation on a physical range (mapping it in a window, punching a hole) goes piece by
//! piece.
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
//! - `[base, base + end)` is mapped read-write, shared, each extent over its node's memfd at
//!   the extent's offset (one extent, node 0's file at offset 0, until split), and each file
//!   is at least as long as its extents reach; `[base + end, base + max)` is reserved
//!   PROT_NONE. Both hold from construction until drop; `end` only grows.
//! - `end` and `max` are multiples of [`PAGE_SIZE`]; `base` is aligned to [`DIRECT_MAP_ALIGN`].
//!
//! # Locking
//! `layout`'s lock (a futex mutex: no allocation, usable inside a global allocator)
//! serialises growth, splitting and every use of the extents; `end` is published with Release
//! after the new range is mapped, so a reader that loads it with Acquire may touch everything
//! below it. Nothing else takes a lock.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

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

/// Maps `len` bytes of `fd` at file offset `off` over `addr` privately, readable and
/// writable (MAP_PRIVATE|MAP_FIXED): a page reads as the file's until it is first written,
/// which gives this process a copy of its own (the file is never written through it).
///
/// # Safety
/// As [`map_fd_fixed`].
pub(crate) unsafe fn map_fd_private_fixed(
    addr: *mut u8,
    len: usize,
    fd: BorrowedFd<'_>,
    off: u64,
) -> io::Result<()> {
    let off = libc::off_t::try_from(off).map_err(|_| invalid("offset too large"))?;
    // SAFETY: the caller owns the target range; MAP_FIXED replaces only that range.
    let raw = unsafe {
        libc::mmap(
            addr.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_FIXED,
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

/// Reads `buf.len()` bytes of `fd` at file offset `off` (`pread`, retried on short reads
/// and `EINTR`); `UnexpectedEof` past the end of the file.
pub(crate) fn read_exact_at(
    fd: BorrowedFd<'_>,
    mut buf: &mut [u8],
    mut off: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        let o = libc::off_t::try_from(off).map_err(|_| invalid("offset too large"))?;
        // SAFETY: `buf` is a live slice of `buf.len()` writable bytes; pread only writes them.
        let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), o) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        buf = &mut buf[n as usize..];
        off += n as u64;
    }
    Ok(())
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

/// A new close-on-exec memfd named `name` (no global allocator needed).
pub(crate) fn anon_memfd(name: &core::ffi::CStr) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; memfd_create has no other preconditions.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Writes all of `buf` to `fd` at file offset `off` (`pwrite`, retried on short writes and
/// `EINTR`).
pub(crate) fn write_all_at(fd: BorrowedFd<'_>, mut buf: &[u8], mut off: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let o = libc::off_t::try_from(off).map_err(|_| invalid("offset too large"))?;
        // SAFETY: `buf` is a live slice of `buf.len()` readable bytes; pwrite only reads them.
        let n = unsafe { libc::pwrite(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), o) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        buf = &buf[n as usize..];
        off += n as u64;
    }
    Ok(())
}

pub(crate) fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
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

/// Nodes that may have a memfd of their own (kmem's `MAX_NUMA_NODES`).
pub(crate) const MAX_NODES: usize = kmem::MAX_NUMA_NODES;

/// Pieces the physical address space may be cut into (node ranges, holes given to a
/// neighbour, ranges hot-added to another node than the last piece's).
const MAX_EXTENTS: usize = 64;

/// `[start, end)` of physical memory is node `nid`'s memfd from file offset `off` on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Extent {
    start: u64,
    end: u64,
    nid: usize,
    off: u64,
}

/// Which memfd backs which physical range.
///
/// # Invariants
/// `ext[..n]` are sorted, contiguous and cover `[0, end)`; node `nid`'s extents lie inside
/// `[0, file_len[nid])` of `fds[nid]`, which exists for every node that has one; `fds[0]`
/// always exists.
struct Layout {
    fds: [Option<OwnedFd>; MAX_NODES],
    file_len: [u64; MAX_NODES],
    ext: [Extent; MAX_EXTENTS],
    n: usize,
    /// Host NUMA nodes seen when the layout was split (0 or 1: no `mbind`).
    host_nodes: usize,
}

impl Layout {
    /// Appends `[start, end)` from node `nid`'s file at `off`, merging with the last piece
    /// when it continues it.
    fn push(&mut self, start: u64, end: u64, nid: usize, off: u64) -> io::Result<()> {
        if let Some(last) = self.ext[..self.n].last_mut() {
            if last.end == start && last.nid == nid && last.off + (last.end - last.start) == off {
                last.end = end;
                return Ok(());
            }
        }
        let slot = self
            .ext
            .get_mut(self.n)
            .ok_or_else(|| invalid("physical memory is cut into too many pieces"))?;
        *slot = Extent {
            start,
            end,
            nid,
            off,
        };
        self.n += 1;
        Ok(())
    }

    /// Calls `f(fd, file offset, phys, len)` for each piece of `[phys, phys + len)`, in
    /// order; the range must lie below the end of the layout.
    fn for_each_piece(
        &self,
        phys: u64,
        len: u64,
        mut f: impl FnMut(BorrowedFd<'_>, u64, u64, u64) -> io::Result<()>,
    ) -> io::Result<()> {
        let end = phys
            .checked_add(len)
            .ok_or_else(|| invalid("range overflows"))?;
        for e in &self.ext[..self.n] {
            let (s, t) = (phys.max(e.start), end.min(e.end));
            if s >= t {
                continue;
            }
            let fd = self.fds[e.nid]
                .as_ref()
                .ok_or_else(|| invalid("node without a memfd"))?;
            f(fd.as_fd(), e.off + (s - e.start), s, t - s)?;
        }
        Ok(())
    }

    /// Node `nid`'s memfd, created (`kmem-phys-nodeN`) on first use.
    fn node_fd(&mut self, nid: usize) -> io::Result<BorrowedFd<'_>> {
        if nid >= MAX_NODES {
            return Err(invalid("node number out of range"));
        }
        if self.fds[nid].is_none() {
            self.fds[nid] = Some(memfd_create(nid)?);
        }
        match &self.fds[nid] {
            Some(f) => Ok(f.as_fd()),
            None => Err(invalid("node without a memfd")),
        }
    }
}

/// A memfd named `kmem-phys-nodeN` (without the global allocator: the name is built on the
/// stack).
fn memfd_create(nid: usize) -> io::Result<OwnedFd> {
    let mut name = *b"kmem-phys-node\0\0\0";
    let digits = if nid >= 10 { 2 } else { 1 };
    if nid >= 100 {
        return Err(invalid("node number out of range"));
    }
    if digits == 2 {
        name[14] = b'0' + (nid / 10) as u8;
    }
    name[13 + digits] = b'0' + (nid % 10) as u8;
    // The last byte stays 0: the name is NUL-terminated.
    let name = core::ffi::CStr::from_bytes_until_nul(&name).map_err(|_| invalid("memfd name"))?;
    anon_memfd(name)
}

/// Host NUMA nodes online (`/sys/devices/system/node/online`, e.g. `0-1`); 1 when unknown.
fn host_nodes() -> usize {
    let Ok(s) = std::fs::read_to_string("/sys/devices/system/node/online") else {
        return 1;
    };
    let mut n = 0;
    for part in s.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            n += b.saturating_sub(a) + 1;
        }
    }
    n.max(1)
}

/// `mbind(addr, len, MPOL_PREFERRED, {host_node})`: the host places the range's pages on
/// that node when it can (the mapping's shmem policy, so the memfd's pages follow it).
/// Failure only loses the placement.
fn bind_to_host_node(addr: *mut u8, len: u64, host_node: usize) {
    const MPOL_PREFERRED: libc::c_long = 1;
    let mask: libc::c_ulong = 1 << (host_node % 64);
    // SAFETY: mbind on a range of our own mapping changes only where the host places its
    // pages; `mask` outlives the call and holds 64 bits, as `maxnode` says.
    unsafe {
        libc::syscall(
            libc::SYS_mbind,
            addr,
            len as libc::c_ulong,
            MPOL_PREFERRED,
            &mask as *const libc::c_ulong,
            65 as libc::c_ulong,
            0 as libc::c_uint,
        )
    };
}

/// The per-node memfds and the direct map.
pub(crate) struct PhysMem {
    /// Node 0's memfd, also in `layout` (a second descriptor of the same file), for
    /// [`PhysMem::fd`]'s callers.
    fd0: OwnedFd,
    base: NonNull<u8>,
    max: u64,
    end: AtomicU64,
    /// Serialises growth, splitting and every use of the layout.
    layout: FutexMutex<Layout>,
    /// Node 0's file backs all of `[0, end)` at offset = physical address (never split, grown
    /// only on node 0): ranges are then mapped and punched without taking `layout`'s lock,
    /// as a one-node machine always did (a process forked while another thread held the
    /// lock must not block on it). Cleared before a split or a growth on another node
    /// publishes its `end`, so a reader that saw a range below `end` sees it cleared.
    identity: AtomicBool,
}

// SAFETY: `base` points at a mapping owned by this value; all mutation of the mapping layout
// is serialised by `layout`'s lock and the contents are only accessed through raw pointers by
// the platform's users.
unsafe impl Send for PhysMem {}
// SAFETY: `&PhysMem` lets threads read `base` and the atomic `end`, and change the mapping only
// under `layout`'s lock; the contents are reached only through raw pointers by the platform's
// users, so no shared reference to them exists to race with.
unsafe impl Sync for PhysMem {}

impl PhysMem {
    /// Creates node 0's memfd of `size` bytes and maps it, reserving room to grow up to `max`.
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
        let fd = memfd_create(0)?;
        ftruncate(fd.as_fd(), size)?;
        let fd0 = fd.try_clone()?;
        let base = reserve(max_len, DIRECT_MAP_ALIGN)?;
        // SAFETY: `[base, base + size)` lies in the reservation we own, nothing refers to it.
        if let Err(e) = unsafe { map_fd_fixed(base.as_ptr(), size as usize, fd.as_fd(), 0, true) } {
            // SAFETY: the reservation is ours and unused.
            unsafe { libc::munmap(base.as_ptr().cast(), max_len) };
            return Err(e);
        }
        let mut layout = Layout {
            fds: [const { None }; MAX_NODES],
            file_len: [0; MAX_NODES],
            ext: [Extent::default(); MAX_EXTENTS],
            n: 0,
            host_nodes: 0,
        };
        layout.fds[0] = Some(fd);
        layout.file_len[0] = size;
        layout.push(0, size, 0, 0)?;
        Ok(Self {
            fd0,
            base,
            max,
            end: AtomicU64::new(size),
            layout: FutexMutex::new(layout),
            identity: AtomicBool::new(true),
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

    /// Node 0's memfd (on a one-node machine, all of physical memory at file offset =
    /// physical address).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd0.as_fd()
    }

    /// Node `nid`'s memfd and its size, if the node has one.
    pub(crate) fn node_memfd(&self, nid: usize) -> Option<(RawFd, u64)> {
        let l = self.layout.lock();
        let fd = l.fds.get(nid)?.as_ref()?;
        Some((fd.as_raw_fd(), l.file_len[nid]))
    }

    /// The memfd and file offset behind physical address `phys`, and how many bytes from
    /// there on the same file continues.
    pub(crate) fn memfd_at(&self, phys: u64) -> Option<(RawFd, u64, u64)> {
        let l = self.layout.lock();
        let e = l.ext[..l.n]
            .iter()
            .find(|e| (e.start..e.end).contains(&phys))?;
        let fd = l.fds[e.nid].as_ref()?;
        Some((fd.as_raw_fd(), e.off + (phys - e.start), e.end - phys))
    }

    /// Gives each NUMA node its own memfd (`kmem-phys-nodeN`): every physical range of
    /// `blks` is mapped from its node's file, a hole between two ranges (or after the last)
    /// from the file of the range before it, so a node's file is as long as the span of
    /// addresses it owns. The direct map stays one mapping of the address space. Must be
    /// called before anything is written to physical memory.
    ///
    /// # Errors
    /// `InvalidInput` if memory was written already, was split before, or a node number is
    /// out of range; otherwise the `memfd_create`/`ftruncate`/`mmap` error (node 0's file
    /// then backs everything again, as before the call).
    pub(crate) fn split_nodes(&self, blks: &[kmem::NumaMemblk]) -> io::Result<()> {
        let mut sorted = [kmem::NumaMemblk {
            nid: 0,
            start: 0,
            end: 0,
        }; MAX_EXTENTS];
        let given = blks;
        let blks = sorted
            .get_mut(..given.len())
            .ok_or_else(|| invalid("too many NUMA memory ranges"))?;
        blks.copy_from_slice(given);
        blks.sort_unstable_by_key(|b| b.start);
        if blks.iter().any(|b| b.nid as usize >= MAX_NODES) {
            return Err(invalid("node number out of range"));
        }
        let mut l = self.layout.lock();
        if l.n != 1 || self.resident_locked(&l)? != 0 {
            return Err(invalid("physical memory is in use or already split"));
        }
        let end = self.end();
        self.identity.store(false, Ordering::Release);
        let r = self.split_locked(&mut l, blks, end);
        if r.is_err() {
            // Back to node 0's file over everything (nothing was written yet).
            l.n = 0;
            l.file_len = [0; MAX_NODES];
            for fd in l.fds.iter_mut().skip(1) {
                *fd = None;
            }
            let _ = ftruncate(self.fd(), end);
            l.file_len[0] = end;
            let _ = l.push(0, end, 0, 0);
            // SAFETY: `[base, base + end)` is the direct map we own; nothing was written.
            let _ = unsafe { map_fd_fixed(self.base(), end as usize, self.fd(), 0, true) };
            self.identity.store(true, Ordering::Release);
        }
        r
    }

    fn split_locked(&self, l: &mut Layout, blks: &[kmem::NumaMemblk], end: u64) -> io::Result<()> {
        l.n = 0;
        l.file_len = [0; MAX_NODES];
        let mut cursor = 0;
        let mut prev = blks.first().map_or(0, |b| b.nid as usize);
        for b in blks {
            let (s, e, nid) = (b.start.min(end), b.end.min(end), b.nid as usize);
            if s > cursor {
                let off = l.file_len[prev];
                l.push(cursor, s, prev, off)?;
                l.file_len[prev] += s - cursor;
                cursor = s;
            }
            if e > cursor {
                let off = l.file_len[nid];
                l.push(cursor, e, nid, off)?;
                l.file_len[nid] += e - cursor;
                cursor = e;
            }
            prev = nid;
        }
        if end > cursor {
            let off = l.file_len[prev];
            l.push(cursor, end, prev, off)?;
            l.file_len[prev] += end - cursor;
        }
        for nid in 0..MAX_NODES {
            if l.file_len[nid] != 0 || nid == 0 {
                let len = l.file_len[nid];
                ftruncate(l.node_fd(nid)?, len)?;
            }
        }
        l.host_nodes = host_nodes();
        for i in 0..l.n {
            let e = l.ext[i];
            let fd = l.node_fd(e.nid)?;
            // SAFETY: `[base + start, base + end)` is inside the direct map we own (below
            // `end`); nothing was written to it nor refers to it.
            unsafe {
                map_fd_fixed(
                    self.base().add(e.start as usize),
                    (e.end - e.start) as usize,
                    fd,
                    e.off,
                    true,
                )?;
            }
            self.bind(l, e.start, e.end - e.start, e.nid);
        }
        Ok(())
    }

    /// Places node `nid`'s range on host node `nid mod host nodes`, on a host with more than
    /// one node.
    fn bind(&self, l: &Layout, phys: u64, len: u64, nid: usize) {
        if l.host_nodes > 1 {
            // The range is inside the direct map (the caller's mapping).
            bind_to_host_node(
                self.base().wrapping_add(phys as usize),
                len,
                nid % l.host_nodes,
            );
        }
    }

    /// Grows physical memory to `new_end`, the new range on node 0's memfd; see
    /// `HostedPlatform::grow_phys`.
    pub(crate) fn grow(&self, new_end: u64) -> io::Result<()> {
        self.grow_node(new_end, 0)
    }

    /// Grows physical memory to `new_end`, the new range appended to node `nid`'s memfd.
    pub(crate) fn grow_node(&self, new_end: u64, nid: usize) -> io::Result<()> {
        let mut l = self.layout.lock();
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
        let off = *l
            .file_len
            .get(nid)
            .ok_or_else(|| invalid("node number out of range"))?;
        let fd = l.node_fd(nid)?;
        if off != old {
            // The new range's file offset is not its address (another node's file).
            self.identity.store(false, Ordering::Release);
        }
        ftruncate(fd, off + (new_end - old))?;
        // SAFETY: `[base + old, base + new_end)` is the PROT_NONE tail of our reservation
        // (old < new_end <= max); nothing refers to it.
        let r = unsafe {
            map_fd_fixed(
                self.base().add(old as usize),
                (new_end - old) as usize,
                fd,
                off,
                true,
            )
        };
        let r = r.and_then(|()| l.push(old, new_end, nid, off));
        if let Err(e) = r {
            // Best effort: give the file its old size back and the range back to the
            // reservation.
            let fd = l.node_fd(nid)?;
            let _ = ftruncate(fd, off);
            // SAFETY: the range is the tail of our reservation above `end`, unused.
            let _ = unsafe { unmap_fixed(self.base().add(old as usize), (new_end - old) as usize) };
            return Err(e);
        }
        l.file_len[nid] = off + (new_end - old);
        self.bind(&l, old, new_end - old, nid);
        self.end.store(new_end, Ordering::Release);
        Ok(())
    }

    /// Maps physical `[phys, phys + len)` (below the end) at `addr`, piece by piece from
    /// each node's memfd.
    ///
    /// # Safety
    /// As [`map_fd_fixed`], for `[addr, addr + len)`.
    pub(crate) unsafe fn map_phys(
        &self,
        addr: *mut u8,
        phys: u64,
        len: u64,
        writable: bool,
    ) -> io::Result<()> {
        if self.identity.load(Ordering::Acquire) {
            // SAFETY: forwarded to the caller; node 0's file holds `phys` at offset `phys`.
            return unsafe { map_fd_fixed(addr, len as usize, self.fd(), phys, writable) };
        }
        let l = self.layout.lock();
        l.for_each_piece(phys, len, |fd, off, p, n| {
            // SAFETY: `[addr + (p - phys), + n)` is inside `[addr, addr + len)`, which the
            // caller owns.
            unsafe {
                map_fd_fixed(
                    addr.wrapping_add((p - phys) as usize),
                    n as usize,
                    fd,
                    off,
                    writable,
                )
            }
        })
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
        let punch = |fd: BorrowedFd<'_>, off: u64, _: u64, n: u64| -> io::Result<()> {
            let off = libc::off_t::try_from(off).map_err(|_| invalid("offset too large"))?;
            let n = libc::off_t::try_from(n).map_err(|_| invalid("length too large"))?;
            // SAFETY: fallocate does not touch our memory directly; the kernel zaps the pages
            // from every mapping, which the caller allows (no live references).
            let rc = unsafe {
                libc::fallocate(
                    fd.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    off,
                    n,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        if self.identity.load(Ordering::Acquire) {
            return punch(self.fd(), phys, phys, len);
        }
        self.layout.lock().for_each_piece(phys, len, punch)
    }

    fn resident_locked(&self, l: &Layout) -> io::Result<u64> {
        let mut sum = 0;
        for fd in l.fds.iter().flatten() {
            sum += fstat(fd.as_fd())?.st_blocks as u64 * 512;
        }
        Ok(sum)
    }

    /// Bytes of host memory backing the memfds now (`st_blocks * 512`, summed).
    pub(crate) fn resident_bytes(&self) -> io::Result<u64> {
        self.resident_locked(&self.layout.lock())
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
