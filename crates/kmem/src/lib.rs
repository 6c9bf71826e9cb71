//! # kmem — the Linux kernel's memory subsystem, in Rust
//!
//! `#![no_std]` and free of globals: every allocator lives in a [`Machine`], generic over the
//! [`platform::Platform`] that supplies physical memory, CPUs, locks and a console. Folders
//! and modules are named after the files of Linux's `mm/` that they mirror.
//!
//! Layers, bottom up; a module uses only those below it (`scripts/check-layers` checks):
//! 1. vocabulary: [`addr`], [`gfp`], [`locking`] (lock classes, the validated lock), [`mmzone`] (zone and migratetype names, zone structs),
//!    [`arch`], [`layout`], [`pgtable`], [`platform`], [`memblock`];
//! 2. [`mm`]: the memory model (pfn ↔ `struct page` ↔ phys ↔ virt, printk, the cpuhp table,
//!    RCU);
//! 3. [`debug`]: reports (`dump_page`, `bad_page`, one `WARN`);
//! 4. [`mm_init`]: boot up to the memmap;
//! 5. [`page_alloc`]: the buddy allocator, pcp lists, watermarks;
//! 6. [`slab`]: the slab allocators and kmalloc;
//! 7. [`vmalloc`], then [`highmem`]: kernel page tables, vmalloc, kmap;
//! 8. [`proc`]: every /proc and debugfs file;
//! 9. [`machine`]: the [`Machine`] handle and the boot sequence.
//!
//! Each layer's state owns the one below and dereferences to it, so a [`Machine`] offers
//! every layer's methods (`m.alloc_pages`, `m.kmalloc`, `m.vmalloc`, `m.proc_read`).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(clippy::too_many_lines)]

pub mod addr;
pub mod arch;
pub mod errno;
pub mod gfp;
pub mod layout;
pub mod locking;
pub mod memblock;
pub mod mmzone;
pub mod numa;
pub mod pgtable;
pub mod platform;
pub mod sparse;

pub mod mm;

pub mod debug;

pub mod mm_init;

pub mod page_alloc;

pub mod slab;

pub mod highmem;
pub mod vmalloc;

pub mod vma;

pub mod rmap;

pub mod swap;

pub mod vmscan;

pub mod compaction;

pub mod memory;

pub mod task;

/// Memory hotplug (above migrate: offlining migrates what lives in a block).
pub mod memory_hotplug;
/// The memory-policy system calls (above migrate: `mbind` moves misplaced pages).
pub mod mempolicy;
pub mod migrate;

pub mod kcompactd;

pub mod oom_kill;

pub mod uaccess;

pub mod base;

pub mod proc;

pub mod machine;

pub use addr::{Order, Pfn, PhysAddr, VirtAddr, PAGE_SHIFT, PAGE_SIZE};
pub use gfp::GfpFlags;
pub use machine::{BootError, BootParams, Machine};
pub use mm::mm_types::{Page, PagePtr};
pub use numa::{NumaMemblk, NumaTopology, MAX_NUMA_NODES};
pub use slab::common::{CacheHandle, KmemCacheArgs, SlabError, SlabFlags, SlabInfo, ZERO_SIZE_PTR};
pub use slab::slub::{Sheaf, SheafCensus, SlabNodeAttr};
