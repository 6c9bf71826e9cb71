//! The storage under a swap area: what `swap_writepage`/`swap_read_folio` reach through the
//! block layer in Linux (mm/page_io.c). kmem is `no_std`, so the caller supplies it as a
//! [`SwapBackend`]: the hosted platform's is a host file (`kmem_hosted::FileSwap`), bare
//! metal's a RAM region ([`RamSwap`]).
//!
//! Offsets are page offsets in the area; page 0 is the swap header (Linux's
//! `union swap_header`), never handed out as a slot, so a backend of `n` pages gives
//! `n - 1` usable slots, as `/proc/swaps` shows.

use crate::addr::PAGE_SIZE;

/// An I/O error from a [`SwapBackend`] (`-EIO` from the block layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwapIoError;

/// The storage of one swap area.
///
/// Implementations must be usable from any thread (the machine's CPUs); kmem serialises
/// nothing for them beyond never reading and writing the same offset at once.
pub trait SwapBackend: Send + Sync {
    /// Pages of storage (the header page included).
    fn nr_pages(&self) -> u64;
    /// Reads page `offset` into `buf`.
    ///
    /// # Errors
    /// [`SwapIoError`] when the storage cannot be read.
    fn read_page(&self, offset: u64, buf: &mut [u8; PAGE_SIZE]) -> Result<(), SwapIoError>;
    /// Writes `buf` to page `offset`.
    ///
    /// # Errors
    /// [`SwapIoError`] when the storage cannot be written.
    fn write_page(&self, offset: u64, buf: &[u8; PAGE_SIZE]) -> Result<(), SwapIoError>;
}

/// A swap area's storage in a region of RAM outside the machine (bare metal: memory the
/// kernel keeps from the page allocator, like a ramdisk or zram without compression).
pub struct RamSwap {
    base: *mut u8,
    pages: u64,
}

// SAFETY: the region is owned by the `RamSwap` alone (constructor contract); kmem never reads
// and writes one page at once (trait contract), and distinct pages are disjoint bytes.
unsafe impl Send for RamSwap {}
// SAFETY: sharing a `RamSwap` shares `base`/`pages` (never written) and page copies through raw
// pointers; kmem never accesses one page from two threads at once (trait contract), and distinct
// pages are disjoint bytes.
unsafe impl Sync for RamSwap {}

impl RamSwap {
    /// Storage of `pages` pages at `base`.
    ///
    /// # Safety
    /// `base` must be valid for reads and writes of `pages * PAGE_SIZE` bytes for as long as
    /// the `RamSwap` lives, and nothing else may access that memory meanwhile.
    pub unsafe fn new(base: *mut u8, pages: u64) -> RamSwap {
        RamSwap { base, pages }
    }
    fn page(&self, offset: u64) -> Result<*mut u8, SwapIoError> {
        if offset >= self.pages {
            return Err(SwapIoError);
        }
        // SAFETY: `offset < pages`, so the page lies inside the region (constructor contract).
        Ok(unsafe { self.base.add(offset as usize * PAGE_SIZE) })
    }
}

impl SwapBackend for RamSwap {
    fn nr_pages(&self) -> u64 {
        self.pages
    }
    fn read_page(&self, offset: u64, buf: &mut [u8; PAGE_SIZE]) -> Result<(), SwapIoError> {
        let p = self.page(offset)?;
        // SAFETY: `p` is a page of the region (checked), which only this backend accesses,
        // and no write to the same page runs concurrently (trait contract); `buf` is a
        // distinct page-sized buffer.
        unsafe { core::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), PAGE_SIZE) };
        Ok(())
    }
    fn write_page(&self, offset: u64, buf: &[u8; PAGE_SIZE]) -> Result<(), SwapIoError> {
        let p = self.page(offset)?;
        // SAFETY: `p` is page `offset` of the region (checked by `page`), which only this backend
        // accesses, and kmem never reads or writes the same page concurrently (trait contract);
        // `buf` is a distinct page-sized buffer.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), p, PAGE_SIZE) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_swap_reads_back_what_was_written_and_refuses_out_of_range() {
        let mut mem = [0u64; 3 * PAGE_SIZE / 8];
        // SAFETY: `mem` is 3 pages, owned here and outliving `r`.
        let r = unsafe { RamSwap::new(mem.as_mut_ptr().cast(), 3) };
        let mut page = [0u8; PAGE_SIZE];
        page[0] = 0xab;
        page[PAGE_SIZE - 1] = 0xcd;
        r.write_page(2, &page).unwrap();
        let mut back = [0u8; PAGE_SIZE];
        r.read_page(2, &mut back).unwrap();
        assert_eq!(back, page);
        assert_eq!(r.write_page(3, &page), Err(SwapIoError));
        assert_eq!(r.read_page(3, &mut back), Err(SwapIoError));
        assert_eq!(r.nr_pages(), 3);
    }
}
