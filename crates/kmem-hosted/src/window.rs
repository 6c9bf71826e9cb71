//! [`VirtWindow`]: a reserved range of address space into which pages of a platform's
//! physical memory (its memfd) can be mapped at chosen offsets, for vmalloc's page tables
//! (issue 7). A page written through a window is the same page seen through the direct map.
//!
//! The window keeps the platform's control block ([`Inner`], hence the memfd and the direct
//! map) alive by a strong reference, so it may outlive the platform handle.

use core::ptr::NonNull;
use std::io;
use std::os::fd::AsFd;

use crate::control::Inner;
use crate::maparc::MapArc;
use crate::physmem::{
    invalid, is_page_aligned, map_anon_fixed, map_fd_fixed, map_fd_private_fixed, read_exact_at,
    reserve, unmap_fixed,
};
use crate::PAGE_SIZE;

/// Pages of the memfd behind [`VirtWindow::share_readonly_at`]: a shared range is mapped onto
/// this many copies of its template at a time (one `mmap` per 64 KiB).
pub const SHARE_RUN: usize = 16;

/// Distinct template pages [`VirtWindow::share_cow_at`] keeps a memfd for (kmem's free
/// `struct page`s: one page of them per zone and node).
pub const COW_TEMPLATES: usize = 8;

/// A reserved range of virtual address space into which physical pages can be mapped.
///
/// The window holds a reference to the platform's physical memory (the memfd and the direct
/// map), so it stays usable, and its mappings valid, after the platform handle is dropped.
/// Its contents are only reachable through
/// the raw pointer [`VirtWindow::base`]: mapping and unmapping are safe operations, and code
/// that dereferences window addresses is responsible for their being mapped.
///
/// Dropping the window unmaps all of it.
pub struct VirtWindow {
    owner: MapArc<Inner>,
    base: NonNull<u8>,
    len: usize,
    /// The memfds behind [`VirtWindow::share_cow_at`]: each holds [`SHARE_RUN`] copies of
    /// one template page, and is made once per distinct template.
    cow: std::sync::Mutex<[Option<std::os::fd::OwnedFd>; COW_TEMPLATES]>,
}

// SAFETY: the window's memory is only reachable through raw pointers; mmap/munmap are thread
// safe, so the handle may be shared and sent.
unsafe impl Send for VirtWindow {}
// SAFETY: `&VirtWindow` exposes only `base`/`len` (immutable) and mmap/munmap calls, which are
// thread safe; the window's memory is only reachable through raw pointers, so no reference into it
// is shared.
unsafe impl Sync for VirtWindow {}

impl core::fmt::Debug for VirtWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtWindow")
            .field("base", &self.base)
            .field("len", &self.len)
            .finish()
    }
}

impl VirtWindow {
    /// Reserves a window of `len` bytes over the physical memory of `owner`, its base
    /// aligned to `align` (a power of two; less than a page means a page).
    ///
    /// A window mirroring a range of kernel virtual addresses is aligned as that range is,
    /// so that an address aligned in the model (`__vmalloc_node(size, align, ...)`) is
    /// aligned in the process as well.
    pub(crate) fn new(owner: MapArc<Inner>, len: usize, align: usize) -> io::Result<Self> {
        if len == 0 || len & (PAGE_SIZE - 1) != 0 {
            return Err(invalid("window size must be a non-zero multiple of 4 KiB"));
        }
        if !align.is_power_of_two() {
            return Err(invalid("window alignment must be a power of two"));
        }
        let base = reserve(len, align.max(PAGE_SIZE))?;
        Ok(Self {
            owner,
            base,
            len,
            cow: std::sync::Mutex::new([const { None }; COW_TEMPLATES]),
        })
    }

    /// The window's first byte.
    pub fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// The window's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window is empty (never: windows have at least one page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maps physical `[phys, phys + len)` at `[base + offset, base + offset + len)`, replacing
    /// whatever was mapped there, and returns the address of the first byte.
    ///
    /// The pages are the memfd's: a write through the window is visible through the direct
    /// map and vice versa. With `writable == false` the mapping is read-only (a write faults).
    ///
    /// # Errors
    /// `InvalidInput` if an argument is not page aligned, `len` is zero, the range leaves the
    /// window, or the physical range is beyond the end of physical memory; otherwise the
    /// error of `mmap`.
    pub fn map_phys_at(
        &self,
        offset: usize,
        phys: kmem::PhysAddr,
        len: usize,
        writable: bool,
    ) -> io::Result<*mut u8> {
        self.check_range(offset, len)?;
        let phys = phys.as_u64();
        if !is_page_aligned(phys) {
            return Err(invalid("physical address is not page aligned"));
        }
        let mem = &self.owner.mem;
        match phys.checked_add(len as u64) {
            Some(end) if end <= mem.end() => {}
            _ => return Err(invalid("physical range beyond the end of physical memory")),
        }
        // SAFETY: `check_range` put the target inside our reservation, whose contents are only
        // reachable through raw pointers.
        let addr = unsafe { self.base.as_ptr().add(offset) };
        // SAFETY: `[addr, addr + len)` is inside this window's reservation (`check_range` above),
        // which this crate owns, and the window's memory is reached only through raw pointers, so
        // no Rust reference into it is live (`PhysMem::map_phys`'s contract); each node's
        // piece of the range comes from that node's memfd.
        unsafe { mem.map_phys(addr, phys, len as u64, writable)? };
        Ok(addr)
    }

    /// Maps fresh private anonymous memory (zero, readable and writable) at `[base + offset,
    /// base + offset + len)`, replacing whatever was mapped there, and returns the address of
    /// the first byte. Unlike [`VirtWindow::map_phys_at`] these pages are not the memfd's:
    /// they belong to this process alone, and `fork` copies them on write.
    ///
    /// # Errors
    /// `InvalidInput` if the range is not page aligned, empty, or leaves the window; otherwise
    /// the error of `mmap`.
    pub fn map_anon_at(&self, offset: usize, len: usize) -> io::Result<*mut u8> {
        self.check_range(offset, len)?;
        // SAFETY: `check_range` put the target inside our reservation, whose contents are only
        // reachable through raw pointers.
        let addr = unsafe { self.base.as_ptr().add(offset) };
        // SAFETY: `[addr, addr + len)` is inside this window's reservation (`check_range`
        // above), which this crate owns; its memory is reached only through raw pointers, so
        // replacing the mapping invalidates no Rust reference (`map_anon_fixed`'s contract).
        unsafe { map_anon_fixed(addr, len)? };
        Ok(addr)
    }

    /// Maps `[base + offset, base + offset + len)` read-only onto copies of the window's page
    /// at `template` (a mapped page outside the range, read now): a private memfd holds up to
    /// [`SHARE_RUN`] copies of it and the range is mapped onto that run again and again, so
    /// the range is backed by no memory of its own and each page is faulted in only when
    /// read. A write to the range faults. Used for memmap entries that are all alike and
    /// never written (`Platform::share_vmemmap`).
    ///
    /// # Errors
    /// `InvalidInput` if an offset or `len` is not page aligned, `len` is zero, the range or
    /// the template leaves the window, or the template lies in the range; otherwise the error
    /// of `memfd_create`, `ftruncate`, `pwrite` or `mmap` (the range is then as it was, or
    /// partly mapped onto the copies, which read the same as the template).
    pub fn share_readonly_at(&self, offset: usize, len: usize, template: usize) -> io::Result<()> {
        self.check_range(offset, len)?;
        self.check_range(template, PAGE_SIZE)?;
        if template + PAGE_SIZE > offset && template < offset + len {
            return Err(invalid("the template page lies in the range"));
        }
        let run = (len / PAGE_SIZE).min(SHARE_RUN);
        let fd = crate::physmem::anon_memfd(c"kmem-vmemmap-shared")?;
        crate::physmem::ftruncate(fd.as_fd(), (run * PAGE_SIZE) as u64)?;
        let mut page = [0u8; PAGE_SIZE];
        // SAFETY: `template` is a page of this window (`check_range` above) that the caller
        // has mapped and written; it is read through a raw pointer, no reference into the
        // window exists, and `page` is a distinct stack buffer.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.base.as_ptr().add(template),
                page.as_mut_ptr(),
                PAGE_SIZE,
            )
        };
        for k in 0..run {
            crate::physmem::write_all_at(fd.as_fd(), &page, (k * PAGE_SIZE) as u64)?;
        }
        let mut done = 0;
        while done < len {
            let n = (len - done).min(run * PAGE_SIZE);
            // SAFETY: `[base + offset + done, + n)` is inside this window's reservation
            // (`check_range` above), which this crate owns; its memory is reached only through
            // raw pointers, so replacing the mapping invalidates no Rust reference.
            unsafe {
                map_fd_fixed(
                    self.base.as_ptr().add(offset + done),
                    n,
                    fd.as_fd(),
                    0,
                    false,
                )?
            };
            done += n;
        }
        Ok(())
    }

    /// Maps `[base + offset, base + offset + len)` copy-on-write onto copies of its own
    /// first page, when every page of the range reads the same: afterwards the range reads
    /// exactly as before, is backed by no memory of its own (a memfd holds [`SHARE_RUN`]
    /// copies of the content, made once per distinct content and shared by every range
    /// mapped onto it), and a page gets a private copy again when it is first written. Used
    /// for the `struct page`s of reported free memory (`Platform::share_vmemmap_cow`); a
    /// page read afterwards is counted in the process's RSS again (one page of the memfd per
    /// page read), a page written costs a page of its own.
    ///
    /// The caller must keep the range from being written until this returns (a write in
    /// between may be lost): its pages are compared and then replaced.
    ///
    /// # Errors
    /// `InvalidInput` if the range is not page aligned, empty, or leaves the window, or its
    /// pages differ; `OutOfMemory` when [`COW_TEMPLATES`] templates are in use and this
    /// content is none of them; otherwise the error of `memfd_create`, `ftruncate`,
    /// `pwrite`, `pread` or `mmap` (the range then reads as before: replaced pages read as
    /// the copies).
    pub fn share_cow_at(&self, offset: usize, len: usize) -> io::Result<()> {
        self.check_range(offset, len)?;
        let mut page = [0u8; PAGE_SIZE];
        let mut other = [0u8; PAGE_SIZE];
        // SAFETY: `check_range` put the range inside this window; the caller has mapped it
        // and nothing writes it meanwhile (the contract above); the pages are read through
        // raw pointers into distinct stack buffers, and no reference into the window exists.
        unsafe {
            let at = self.base.as_ptr().add(offset);
            core::ptr::copy_nonoverlapping(at, page.as_mut_ptr(), PAGE_SIZE);
            for k in 1..len / PAGE_SIZE {
                core::ptr::copy_nonoverlapping(
                    at.add(k * PAGE_SIZE),
                    other.as_mut_ptr(),
                    PAGE_SIZE,
                );
                if other != page {
                    return Err(invalid("the pages of the range differ"));
                }
            }
        }
        let mut slots = self.cow.lock().unwrap_or_else(|e| e.into_inner());
        let mut found = None;
        for (i, slot) in slots.iter().enumerate() {
            let Some(fd) = slot else {
                continue;
            };
            if read_exact_at(fd.as_fd(), &mut other, 0).is_ok() && other == page {
                found = Some(i);
                break;
            }
        }
        let i = match found {
            Some(i) => i,
            None => {
                let Some(i) = slots.iter().position(Option::is_none) else {
                    return Err(io::Error::from(io::ErrorKind::OutOfMemory));
                };
                let fd = crate::physmem::anon_memfd(c"kmem-vmemmap-cow")?;
                crate::physmem::ftruncate(fd.as_fd(), (SHARE_RUN * PAGE_SIZE) as u64)?;
                for k in 0..SHARE_RUN {
                    crate::physmem::write_all_at(fd.as_fd(), &page, (k * PAGE_SIZE) as u64)?;
                }
                slots[i] = Some(fd);
                i
            }
        };
        let Some(fd) = &slots[i] else {
            return Err(invalid("template slot emptied"));
        };
        let mut done = 0;
        while done < len {
            let n = (len - done).min(SHARE_RUN * PAGE_SIZE);
            // SAFETY: `[base + offset + done, + n)` is inside this window's reservation
            // (`check_range` above), which this crate owns; its memory is reached only through
            // raw pointers, so replacing the mapping invalidates no Rust reference. The file's
            // pages hold the content the range held, so the range reads as before.
            unsafe {
                map_fd_private_fixed(self.base.as_ptr().add(offset + done), n, fd.as_fd(), 0)?
            };
            done += n;
        }
        Ok(())
    }

    /// Unmaps `[base + offset, base + offset + len)`, leaving it reserved (PROT_NONE).
    ///
    /// # Errors
    /// `InvalidInput` if the range is not page aligned, empty, or leaves the window; otherwise
    /// the error of `mmap`.
    pub fn unmap_at(&self, offset: usize, len: usize) -> io::Result<()> {
        self.check_range(offset, len)?;
        // SAFETY: `check_range` put `[base + offset, base + offset + len)` inside this window's
        // reservation, which this crate owns, and its memory is reached only through raw pointers,
        // so no Rust reference into it is live (`unmap_fixed`'s contract).
        unsafe { unmap_fixed(self.base.as_ptr().add(offset), len) }
    }

    fn check_range(&self, offset: usize, len: usize) -> io::Result<()> {
        if offset & (PAGE_SIZE - 1) != 0 || len & (PAGE_SIZE - 1) != 0 || len == 0 {
            return Err(invalid("window range must be non-empty and page aligned"));
        }
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(invalid("range leaves the window")),
        }
    }
}

impl Drop for VirtWindow {
    fn drop(&mut self) {
        // SAFETY: the reservation is ours and only reachable through raw pointers.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostedConfig;

    const MIB: u64 = 1 << 20;

    #[test]
    fn window_range_checks() {
        let owner = Inner::create(HostedConfig::deterministic(MIB, 1)).unwrap();
        let w = VirtWindow::new(owner.clone(), 64 * 1024, PAGE_SIZE).unwrap();
        let z = kmem::PhysAddr::new(0);
        assert!(w.map_phys_at(1, z, 4096, true).is_err());
        assert!(w.map_phys_at(0, z, 0, true).is_err());
        assert!(w.map_phys_at(60 * 1024, z, 8192, true).is_err());
        assert!(w
            .map_phys_at(0, kmem::PhysAddr::new(MIB), 4096, true)
            .is_err());
        assert!(w
            .map_phys_at(0, kmem::PhysAddr::new(12), 4096, true)
            .is_err());
        assert!(w.unmap_at(0, 3).is_err());
        assert!(VirtWindow::new(owner.clone(), 100, PAGE_SIZE).is_err());
        assert!(VirtWindow::new(owner.clone(), 8192, 3 << 12).is_err());
        // A large alignment is honoured (the kernel window's, issue 12).
        let big = VirtWindow::new(owner, 8192, 1 << 30).unwrap();
        assert_eq!(big.base() as usize % (1 << 30), 0);
        assert!(w.map_phys_at(60 * 1024, z, 4096, true).is_ok());
    }

    /// Whether the page at `addr` is backed (present in /proc/self/pagemap).
    fn resident(addr: *const u8) -> bool {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open("/proc/self/pagemap").unwrap();
        f.seek(SeekFrom::Start(addr as u64 / PAGE_SIZE as u64 * 8))
            .unwrap();
        let mut e = [0u8; 8];
        f.read_exact(&mut e).unwrap();
        u64::from_le_bytes(e) >> 63 == 1
    }

    /// A range of alike pages shared copy-on-write reads as before, is backed by nothing of
    /// its own until read, and a write gives the written page a copy of its own, leaving
    /// the others (and the next range shared with the same content) as they were.
    #[test]
    fn share_cow_reads_the_same_and_copies_on_write() {
        let owner = Inner::create(HostedConfig::deterministic(MIB, 1)).unwrap();
        let w = VirtWindow::new(owner, 64 * PAGE_SIZE, PAGE_SIZE).unwrap();
        let n = 20;
        let a = w.map_anon_at(0, n * PAGE_SIZE).unwrap();
        let fill = |a: *mut u8, k: usize, v: u8| {
            // SAFETY: page `k` of the range just mapped (or shared) in our window.
            unsafe { core::ptr::write_bytes(a.add(k * PAGE_SIZE), v, PAGE_SIZE) };
        };
        let read = |a: *const u8, k: usize, i: usize| {
            // SAFETY: inside the mapped range.
            unsafe { a.add(k * PAGE_SIZE + i).read_volatile() }
        };
        for k in 0..n {
            fill(a, k, 0x5a);
        }
        fill(a, 3, 1);
        assert!(w.share_cow_at(0, n * PAGE_SIZE).is_err(), "pages differ");
        assert_eq!(read(a, 3, 0), 1, "left as it was");
        fill(a, 3, 0x5a);
        w.share_cow_at(0, n * PAGE_SIZE).unwrap();
        assert!((0..n).all(|k| !resident(a.wrapping_add(k * PAGE_SIZE))));
        assert!((0..n).all(|k| read(a, k, 17) == 0x5a));
        // SAFETY: inside the mapped range.
        unsafe { a.add(5 * PAGE_SIZE + 9).write(7) };
        assert_eq!(read(a, 5, 9), 7);
        assert_eq!(read(a, 5, 10), 0x5a, "the copy keeps the rest of the page");
        assert_eq!(read(a, 6, 9), 0x5a, "other pages are not written");
        // Another range with the same content maps the same memfd; other content another.
        let b = w.map_anon_at(32 * PAGE_SIZE, 4 * PAGE_SIZE).unwrap();
        for k in 0..4 {
            fill(b, k, 0x5a);
        }
        w.share_cow_at(32 * PAGE_SIZE, 4 * PAGE_SIZE).unwrap();
        assert_eq!(read(b, 2, 100), 0x5a);
        assert_eq!(read(a, 5, 9), 7, "a copy is private to its page");
        let used = |w: &VirtWindow| w.cow.lock().unwrap().iter().flatten().count();
        assert_eq!(used(&w), 1);
        for k in 0..4 {
            fill(b, k, 0x33);
        }
        w.share_cow_at(32 * PAGE_SIZE, 4 * PAGE_SIZE).unwrap();
        assert_eq!(used(&w), 2);
        assert_eq!(read(b, 3, 4095), 0x33);
        assert_eq!(read(a, 7, 0), 0x5a);
    }
}
