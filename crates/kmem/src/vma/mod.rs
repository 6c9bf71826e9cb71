//! Process address spaces: `mm_struct` and its VMAs (include/linux/mm_types.h, mm/mmap.c,
//! mm/vma.c, mm/mprotect.c, mm/mremap.c, mm/madvise.c, mm/util.c, arch/x86/mm/mmap.c).
//!
//! An [`MmStruct`] is one address space: its VMAs ([`VmAreaStruct`], each a range
//! `[vm_start, vm_end)` of page-aligned user addresses with [`VmFlags`]) in a **maple tree**
//! (`mm->mm_mt`, [`kds::maple_tree`]) keyed by `vm_start..=vm_end - 1`, the user page table
//! (built and used by [`crate::memory`]), the RSS counters (`rss_stat`) and the layout
//! (`mmap_base`, `start_brk`, `brk`, `start_stack`).
//!
//! This module does the VMA side of the memory system calls, with Linux's checks and error
//! codes: `get_unmapped_area` (top-down below `mmap_base`, then bottom-up, as
//! `arch_get_unmapped_area_topdown`), `do_mmap`/`mmap_region` with merging of compatible
//! neighbours (`vma_merge_new_range`), `split_vma`, `do_vmi_munmap`, `mprotect_fixup`,
//! `mremap` (shrink, grow in place, move), `brk`, and the VMA part of `madvise`. Whatever
//! touches page tables is done by the caller through [`PteOps`] (implemented by
//! [`crate::memory`]): zapping a range, changing protections, moving PTEs.
//!
//! User addresses are plain `u64`, as the system call ABI's `unsigned long`: they are model
//! addresses of a simulated user space (x86_64: 47 bits, `TASK_SIZE` 0x7ffffffff000; i386:
//! 3 GiB, `TASK_SIZE` 0xc0000000), never host pointers.
//!
//! # anon_vma
//! The rmap structures that tie anonymous pages to the VMAs mapping them (`anon_vma`,
//! `anon_vma_chain`, mm/rmap.c) live here too ([`anon_vma`]), since their lifetime follows
//! the VMAs': `anon_vma_prepare` on the first write fault, `anon_vma_clone` on split and fork,
//! `unlink_anon_vmas` when a VMA goes. The page side (mapcount, the walk) is [`crate::rmap`].
//!
//! # Locking
//! Linux takes `mmap_lock` for writing around every change of the tree, and for reading
//! around faults; the page table lock around PTE changes; the anon_vma root's rwsem around
//! chain changes and rmap walks. kmem runs every operation on a process's memory under the
//! task layer's `tasklist_lock` ([`crate::task`]), which therefore stands for `mmap_lock`
//! (always held for writing), the page table lock and the anon_vma locks at once: the code
//! here takes `&mut MmStruct`, which only that lock hands out. The maple tree's own spinlock
//! is taken inside it (a leaf). docs/LOCKING.md.

pub mod anon_vma;
mod flags;
mod kalloc;
pub mod mempolicy;
mod mm;
mod mmap;
mod mremap;

pub use flags::*;
pub use kalloc::KAlloc;
pub use mm::{elf_et_dyn_base, user_layout, MmCounter, MmStruct, VmAreaStruct, VmBacking, VmaIter};
pub use mm::{AnonVma, AnonVmaChain, IMmap, IMmapLink};
pub use mmap::MAX_MAP_COUNT;

use core::ptr::NonNull;

use crate::errno::Errno;

/// What the VMA code needs done to page tables; implemented by [`crate::memory`].
///
/// Implementations change page tables, pages and counters only, never the VMA tree: the
/// VMA passed stays valid for the call.
pub trait PteOps {
    /// Unmaps every page of `[start, end)` inside `vma` (`zap_page_range_single`), dropping
    /// the pages' references, mapcounts and RSS.
    fn zap(&self, mm: &mut MmStruct, vma: &VmAreaStruct, start: u64, end: u64);
    /// Applies `vma`'s (new) flags to the present PTEs of `[start, end)`
    /// (`change_protection`): writable only where the VMA is and the page need not be
    /// copied on write.
    fn change_protection(&self, mm: &mut MmStruct, vma: &VmAreaStruct, start: u64, end: u64);
    /// Moves the PTEs of `[old, old + len)` to `[new, new + len)` (`move_page_tables`).
    ///
    /// Must not change the VMA tree.
    ///
    /// # Errors
    /// `ENOMEM` when a page table cannot be allocated (what was moved stays moved).
    fn move_ptes(&self, mm: &mut MmStruct, old: u64, new: u64, len: u64) -> Result<(), Errno>;
    /// Frees the page tables of `[start, end)`, whose mappings are gone, that map nothing
    /// outside `[floor, ceiling)` (the end of the previous mapping and the start of the next,
    /// 0 for none): `free_pgtables`.
    fn free_pgtables(&self, mm: &mut MmStruct, start: u64, end: u64, floor: u64, ceiling: u64) {
        let _ = (mm, start, end, floor, ceiling);
    }

    /// The `i_mmap` of shmem object `ino`, on which a new VMA mapping it is linked
    /// (`None`: the VMA is on no list, as without an owner of shmem objects).
    fn i_mmap(&self, ino: u64) -> Option<NonNull<IMmap>> {
        let _ = ino;
        None
    }
}
