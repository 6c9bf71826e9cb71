//! The swap area of the ring-3 tasks: a [`RamSwap`] — on bare metal, a RAM region the kernel
//! takes from vmalloc — given to kmem's `swapon` ([`kmem::task::TaskLayer::swapon`]).
//!
//! Everything else is kmem's process-memory core, as for any kmem task: kswapd and direct
//! reclaim (`vmscan`: LRU aging, `shrink_folio_list`, `try_to_unmap` through the anon rmap)
//! swap anonymous pages out when the free pages fall below the low watermark, a fault on a
//! swap PTE is `do_swap_page` (`memory/swapin.rs`, with the swap cache and readahead), `fork`
//! duplicates swap entries (`swap_duplicate`), `exit_mmap` frees them; `/proc/swaps` and the
//! `pswpin`/`pswpout` counters are the machine's.

extern crate alloc;

use alloc::string::String;

use kmem::mm::VmEvent;
use kmem::swap::RamSwap;
use kmem::{VirtAddr, PAGE_SIZE};

use crate::mm::Kmem;

/// The name the area has in `/proc/swaps`.
pub const SWAP_NAME: &str = "/dev/ramswap0";

/// `pswpin` and `pswpout`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SwapCounts {
    /// Pages written to the area.
    pub pswpout: u64,
    /// Pages read back.
    pub pswpin: u64,
}

/// One RAM swap area, on in kmem's swap state while this value lives (until
/// [`SwapArea::destroy`]).
pub struct SwapArea<'k> {
    k: &'k Kmem,
    region: VirtAddr,
}

impl<'k> SwapArea<'k> {
    /// `swapon` of a RAM region of `pages` pages.
    ///
    /// # Errors
    /// When the region cannot be allocated or kmem's `swapon` fails (its errno's name).
    pub fn new(k: &'k Kmem, pages: usize) -> Result<SwapArea<'k>, &'static str> {
        let region = k
            .vmalloc(pages * PAGE_SIZE)
            .ok_or("no memory for the swap area")?;
        // SAFETY: the region is `pages` pages of vmalloc memory that only this RamSwap uses;
        // it is freed only after swapoff has dropped the RamSwap (destroy), and kmem drops a
        // backend only in swapoff.
        let backend = unsafe { RamSwap::new(region.as_ptr::<u8>(), pages as u64) };
        if let Err(e) = k.swapon(SWAP_NAME, backend, None) {
            // A failed swapon dropped the backend: nothing uses the region any more.
            k.vfree(region);
            return Err(e.text());
        }
        Ok(SwapArea { k, region })
    }

    /// Usable slots in the area (its first page is the swap header, as in Linux).
    pub fn size(&self) -> usize {
        self.k.si_swapinfo().total
    }

    /// Slots in use (`/proc/swaps`' Used, in pages).
    pub fn inuse(&self) -> usize {
        let i = self.k.si_swapinfo();
        i.total - i.free
    }

    /// The machine's `pswpin`/`pswpout` vm events.
    pub fn stats(&self) -> SwapCounts {
        SwapCounts {
            pswpout: self.k.vm_event(VmEvent::PswpOut),
            pswpin: self.k.vm_event(VmEvent::PswpIn),
        }
    }

    /// `/proc/swaps`.
    pub fn show(&self) -> String {
        let mut s = String::new();
        let _ = self.k.show_swaps(&mut s);
        s
    }

    /// `swapoff` (kmem's `try_to_unuse` reads back what live tasks still have in the area),
    /// then the region is freed.
    ///
    /// # Errors
    /// kmem's `swapoff` failed (no memory to take the pages back): the area stays on and its
    /// region is leaked rather than freed under it.
    pub fn destroy(self) -> Result<(), &'static str> {
        match self.k.swapoff(SWAP_NAME) {
            Ok(()) => {
                self.k.vfree(self.region);
                Ok(())
            }
            Err(e) => Err(e.text()),
        }
    }
}
