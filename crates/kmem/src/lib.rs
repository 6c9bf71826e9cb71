//! # kmem — the Linux kernel's memory subsystem, in Rust
//!
//! `#![no_std]` and free of globals: every allocator lives in a [`Machine`], generic over the
//! [`platform::Platform`] that supplies physical memory, CPUs, locks and a console. Modules are
//! named after the files of Linux's `mm/` that they mirror.
//!
//! Layers, bottom up: vocabulary ([`addr`], [`gfp`]) → platform ([`platform`]) → memory model
//! ([`arch`], [`mm_types`], [`mmzone`]) → boot allocator ([`memblock`]) → page allocator
//! ([`page_alloc`]) → slab caches ([`slab_common`], [`slub`], [`kmalloc`]) → front ends (/proc files in [`vmstat`] and [`meminfo`]).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod addr;
pub mod arch;
pub mod debug;
pub mod gfp;
pub mod highmem;
pub mod kmalloc;
pub mod layout;
pub mod machine;
pub mod memblock;
pub mod meminfo;
pub mod mm_types;
pub mod mmzone;
pub mod page_alloc;
pub mod pgtable;
pub mod platform;
pub mod printk;
pub mod proc;
pub mod slab_common;
pub mod slub;
pub mod vmalloc;
pub mod vmstat;

pub use addr::{Order, Pfn, PhysAddr, VirtAddr, PAGE_SHIFT, PAGE_SIZE};
pub use gfp::GfpFlags;
pub use machine::{BootError, BootParams, Machine};
pub use mm_types::{Page, PagePtr};
pub use slab_common::{CacheHandle, SlabError, SlabFlags, SlabInfo, ZERO_SIZE_PTR};
