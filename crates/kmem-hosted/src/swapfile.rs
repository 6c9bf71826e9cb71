//! A swap area's storage in a host file (what `mkswap FILE; swapon FILE` gives a Linux
//! machine): [`FileSwap`] implements kmem's [`SwapBackend`] with positioned reads and writes
//! on the file, page `n` at byte offset `n * 4096`.
//!
//! The file is created if missing and set to the area's size; it is closed when the value
//! is dropped, which kmem does at `swapoff`. Page 0 holds a swap header like the one
//! `mkswap` writes (version 1, `last_page`, the `SWAPSPACE2` signature at the end of the
//! page), so the file is a valid Linux swap file; kmem never reads it back.

#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use kmem::swap::{SwapBackend, SwapIoError};
use kmem::PAGE_SIZE;

/// A swap area backed by a host file. See the module documentation.
pub struct FileSwap {
    file: File,
    pages: u64,
}

impl FileSwap {
    /// Creates (or opens and truncates to size) the file at `path` for an area of `bytes`
    /// bytes (rounded down to pages), and writes the swap header to its first page.
    ///
    /// # Errors
    /// The host's error creating, sizing or writing the file; `InvalidInput` for an area
    /// smaller than two pages.
    pub fn create(path: &Path, bytes: u64) -> io::Result<FileSwap> {
        let pages = bytes / PAGE_SIZE as u64;
        if pages < 2 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "swap area needs at least two pages",
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        file.set_len(pages * PAGE_SIZE as u64)?;
        // include/linux/swap.h `union swap_header`: bootbits[1024], then version (u32),
        // last_page (u32), nr_badpages (u32), …; the magic "SWAPSPACE2" ends the page.
        let mut header = [0u8; PAGE_SIZE];
        header[1024..1028].copy_from_slice(&1u32.to_le_bytes());
        header[1028..1032].copy_from_slice(&((pages - 1) as u32).to_le_bytes());
        header[PAGE_SIZE - 10..].copy_from_slice(b"SWAPSPACE2");
        file.write_all_at(&header, 0)?;
        Ok(FileSwap { file, pages })
    }
}

impl SwapBackend for FileSwap {
    fn nr_pages(&self) -> u64 {
        self.pages
    }
    fn read_page(&self, offset: u64, buf: &mut [u8; PAGE_SIZE]) -> Result<(), SwapIoError> {
        if offset >= self.pages {
            return Err(SwapIoError);
        }
        self.file
            .read_exact_at(buf, offset * PAGE_SIZE as u64)
            .map_err(|_| SwapIoError)
    }
    fn write_page(&self, offset: u64, buf: &[u8; PAGE_SIZE]) -> Result<(), SwapIoError> {
        if offset >= self.pages {
            return Err(SwapIoError);
        }
        self.file
            .write_all_at(buf, offset * PAGE_SIZE as u64)
            .map_err(|_| SwapIoError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_swap_has_a_header_and_reads_back_pages() {
        let dir = std::env::temp_dir().join(format!("kmem-swapfile-{}", std::process::id()));
        let f = FileSwap::create(&dir, 16 * PAGE_SIZE as u64).unwrap();
        assert_eq!(f.nr_pages(), 16);
        let mut hdr = [0u8; PAGE_SIZE];
        f.read_page(0, &mut hdr).unwrap();
        assert_eq!(&hdr[PAGE_SIZE - 10..], b"SWAPSPACE2");
        assert_eq!(u32::from_le_bytes(hdr[1028..1032].try_into().unwrap()), 15);
        let page = [0x5au8; PAGE_SIZE];
        f.write_page(15, &page).unwrap();
        let mut back = [0u8; PAGE_SIZE];
        f.read_page(15, &mut back).unwrap();
        assert_eq!(back, page);
        assert!(f.write_page(16, &page).is_err());
        assert_eq!(
            std::fs::metadata(&dir).unwrap().len(),
            16 * PAGE_SIZE as u64
        );
        drop(f);
        std::fs::remove_file(&dir).unwrap();
        assert!(FileSwap::create(&dir, PAGE_SIZE as u64).is_err());
    }
}
