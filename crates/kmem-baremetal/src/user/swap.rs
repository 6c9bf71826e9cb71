//! The swap area of the user address spaces: kmem's swap ([`kmem::swap`]: mm/swapfile.c's
//! areas, `swap_map` counts and slot allocation, x86_64 swap PTEs, `/proc/swaps`, the
//! `pswpin`/`pswpout` counters) on a [`RamSwap`] — on bare metal, a RAM region the kernel takes
//! from vmalloc.
//!
//! The reclaim side (which page to evict, when) is [`super::mm`]'s: kmem's LRU/rmap-driven
//! reclaim (`vmscan`) needs the rmap of kmem's process-memory core, which these address spaces
//! do not use. Without a swap cache here, a page goes out as Linux's `shrink_folio_list` takes
//! it (`folio_alloc_swap` with `SWAP_HAS_CACHE`, the data written, `try_to_unmap`'s
//! `swap_duplicate` for the PTE, then `put_swap_folio` when the page leaves the cache), and a
//! swap-in reads the slot into a private page and drops the PTE's reference (`swap_free`).

extern crate alloc;

use alloc::string::String;

use kmem::arch::Arch;
use kmem::swap::entry::is_swap_pte;
use kmem::swap::{RamSwap, SwapState, SwpEntry};
use kmem::vmalloc::VmLayer;
use kmem::{VirtAddr, PAGE_SIZE};

use crate::mm::Kmem;
use crate::platform::BareMetal;

/// The name the area has in `/proc/swaps`.
pub const SWAP_NAME: &str = "/dev/ramswap0";

/// `swp_entry_to_pte` of x86_64 (not exclusive: fork shares the entries).
pub fn swp_entry_pte(e: SwpEntry) -> u64 {
    e.to_pte(Arch::X86_64, false)
}

/// `is_swap_pte` + `pte_to_swp_entry` of x86_64.
pub fn pte_swp_entry(pte: u64) -> Option<SwpEntry> {
    is_swap_pte(Arch::X86_64, pte).then(|| SwpEntry::from_pte(Arch::X86_64, pte))
}

/// `pswpin` and `pswpout`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SwapCounts {
    /// Pages written to the area.
    pub pswpout: u64,
    /// Pages read back.
    pub pswpin: u64,
}

fn vm(k: &Kmem) -> &VmLayer<BareMetal> {
    k
}

/// One RAM swap area in kmem's swap state.
pub struct SwapArea<'k> {
    k: &'k Kmem,
    state: SwapState<BareMetal>,
    region: VirtAddr,
}

impl<'k> SwapArea<'k> {
    /// `swapon` of a RAM region of `pages` pages; `None` if the region or kmem's swap map
    /// cannot be allocated.
    pub fn new(k: &'k Kmem, pages: usize) -> Option<SwapArea<'k>> {
        let region = k.vmalloc(pages * PAGE_SIZE)?;
        // SAFETY: the region is `pages` pages of vmalloc memory that only this RamSwap uses,
        // and it is freed only after swapoff has dropped the RamSwap (destroy).
        let backend = unsafe { RamSwap::new(region.as_ptr::<u8>(), pages as u64) };
        let state = SwapState::new();
        if state.swapon(vm(k), SWAP_NAME, backend, None).is_err() {
            k.vfree(region);
            return None;
        }
        Some(SwapArea { k, state, region })
    }

    /// Usable slots in the area (its first page is the swap header, as in Linux).
    pub fn size(&self) -> usize {
        self.state.si_swapinfo().total
    }

    /// Slots in use (`/proc/swaps`' Used, in pages).
    pub fn inuse(&self) -> usize {
        let i = self.state.si_swapinfo();
        i.total - i.free
    }

    /// The counters.
    pub fn stats(&self) -> SwapCounts {
        // pswpin/pswpout are the machine's vm events.
        SwapCounts {
            pswpout: self.k.vm_event(kmem::mm::VmEvent::PswpOut),
            pswpin: self.k.vm_event(kmem::mm::VmEvent::PswpIn),
        }
    }

    /// `/proc/swaps`.
    pub fn show(&self) -> String {
        let mut s = String::new();
        let _ = self.state.show_swaps(&mut s);
        s
    }

    /// `swap_duplicate`: one more PTE names `e` (fork).
    pub fn dup(&mut self, e: SwpEntry) {
        if self.state.swap_duplicate(vm(self.k), e).is_err() {
            crate::println!("swap_duplicate: {e:?} failed");
        }
    }

    /// `swap_free`: a PTE naming `e` is gone.
    pub fn free(&mut self, e: SwpEntry) {
        self.state.swap_free(vm(self.k), e);
    }

    /// Writes the page at `src` to a new slot named by one PTE; returns the entry.
    ///
    /// # Safety
    /// `src` must be readable for a page.
    pub unsafe fn write_out(&mut self, src: *const u8) -> Option<SwpEntry> {
        let e = self.state.get_swap_page(vm(self.k))?;
        // SAFETY: by the caller's guarantee `src` is a readable page; u8 arrays have no
        // alignment requirement.
        let page = unsafe { &*src.cast::<[u8; PAGE_SIZE]>() };
        let ok = self.state.write_slot(vm(self.k), e, page).is_ok()
            && self.state.swap_duplicate(vm(self.k), e).is_ok();
        // The page leaves the (notional) swap cache: the PTE's count alone keeps the slot.
        self.state.put_swap_folio(vm(self.k), e);
        ok.then_some(e)
    }

    /// Reads slot `e` into the page at `dst` (`swap_read_folio`).
    ///
    /// # Safety
    /// `dst` must be writable for a page.
    pub unsafe fn read_in(&mut self, e: SwpEntry, dst: *mut u8) -> bool {
        // SAFETY: by the caller's guarantee `dst` is a writable page no one else uses now.
        let page = unsafe { &mut *dst.cast::<[u8; PAGE_SIZE]>() };
        self.state.read_slot(vm(self.k), e, page).is_ok()
    }

    /// `swapoff` (every PTE naming the area must be gone) and the region freed.
    pub fn destroy(self) {
        let inuse = self.inuse();
        if inuse != 0 {
            crate::println!("swapoff: {inuse} slots still in use (leaked)");
        }
        let vm = vm(self.k);
        if self.state.swapoff(vm, SWAP_NAME, &mut |_| Ok(())).is_err() {
            self.state.swapoff_all_unused(vm);
        }
        self.k.vfree(self.region);
    }
}
