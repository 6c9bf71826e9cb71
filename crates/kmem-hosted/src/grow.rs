//! Growing one machine by memory hotplug and giving the memory back (issue 19): what
//! [`KmemAlloc`](crate::KmemAlloc) and `libkmem_malloc.so` do when their machine runs out,
//! instead of booting another machine.
//!
//! - [`Grower::grow`]: one memory block (a 128 MiB section) is added at the lowest free
//!   section above boot memory — the platform's memfd and direct map grow first when the
//!   block lies past their end — with `MHP_MEMMAP_ON_MEMORY` (its memmap is its own first
//!   2 MiB, so a machine that has run out needs no memory to describe the new block), and
//!   onlined into **ZONE_NORMAL** (`online_kernel`). ZONE_MOVABLE would be wrong here: it
//!   promises that every page in it can be migrated, and what an allocator hands out —
//!   slab objects and large kmalloc blocks that a program holds raw pointers to — never can.
//!   Such blocks can still be offlined later: not by migrating, but once every page in them is
//!   free again, which [`Grower::shrink`] waits for. Kernel metadata cannot pin a block
//!   either: its memmap lives in the block itself, and the block's usage bytes are a small
//!   `kmalloc` in whatever slab has room.
//! - [`Grower::shrink`]: from the highest block down, every hot-added block whose pages are
//!   all free is offlined and removed (while the machine keeps `keep` free pages besides),
//!   and its host memory released: `MADV_DONTNEED` on its direct map (private copies of a
//!   forked heap) and `FALLOC_FL_PUNCH_HOLE` on the memfd (its memmap, written through the
//!   vmemmap window). The platform keeps its size (the memfd only grows); a block added
//!   again at the same place reuses the range.
//!
//! # Locking
//! A [`Grower`] serialises its own calls with a futex; kmem's `mem_hotplug_lock` serialises
//! them with everything else. Allocations on other threads go on meanwhile: a block being
//! offlined has its pageblocks isolated first, so nothing is allocated from it.

use core::sync::atomic::{AtomicU64, Ordering};

use kmem::memory_hotplug::{MhpFlags, OnlineType, MEMORY_BLOCK_SIZE, NR_VMEMMAP_PAGES};
use kmem::platform::Platform;
use kmem::sparse::PAGES_PER_SECTION;
use kmem::{Machine, PhysAddr};
use lock_api::RawMutex as _;

use crate::futex::RawFutexMutex;
use crate::HostedPlatform;

/// Grows and shrinks one machine (see the module documentation).
pub struct Grower {
    lock: RawFutexMutex,
    /// Blocks added and onlined so far.
    added: AtomicU64,
    /// Blocks offlined and removed so far.
    removed: AtomicU64,
}

impl Default for Grower {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`Grower::grow`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grown {
    /// It added a block of [`Grower::BLOCK_PAGES`] free pages.
    ByThisCall,
    /// Another thread grew the machine since the caller looked.
    Meanwhile,
    /// The machine cannot grow.
    No,
}

impl Grown {
    /// Whether the machine has more memory than when the caller looked.
    pub fn grew(self) -> bool {
        self != Self::No
    }
}

/// Called with the physical range `[old_end, new_end)` the platform just grew by, before
/// the machine uses it (`libkmem_malloc.so` makes it a private mapping there); `false`
/// gives up the growth.
pub type PrepareFn<'a> = &'a dyn Fn(&HostedPlatform, u64, u64) -> bool;

impl Grower {
    /// Pages a block adds to the buddy allocator (its memmap's pageblock excluded).
    pub const BLOCK_PAGES: usize = (PAGES_PER_SECTION - NR_VMEMMAP_PAGES) as usize;

    /// A grower that has done nothing yet.
    pub const fn new() -> Self {
        Self {
            lock: RawFutexMutex::new(),
            added: AtomicU64::new(0),
            removed: AtomicU64::new(0),
        }
    }

    /// Blocks added so far.
    #[inline]
    pub fn added(&self) -> u64 {
        self.added.load(Ordering::Relaxed)
    }

    /// Blocks removed so far.
    #[inline]
    pub fn removed(&self) -> u64 {
        self.removed.load(Ordering::Relaxed)
    }

    /// Growths so far: a caller that saw this value before its allocation failed and sees a
    /// larger one now should retry before growing again. Inlined: `libkmem_malloc.so` reads
    /// it on every allocation (a call to it was 0.15-0.2 % of python3's and sqlite3's samples).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.added()
    }

    fn locked<R>(&self, f: impl FnOnce() -> R) -> R {
        self.lock.lock();
        let r = f();
        // SAFETY: locked above by this thread.
        unsafe { self.lock.unlock() };
        r
    }

    /// Adds and onlines one memory block unless another thread grew the machine since the
    /// caller read [`Grower::generation`] as `seen`. Returns how the machine grew:
    /// [`Grown::No`] when the platform has no room left or the host refused.
    pub fn grow(&self, m: &Machine<HostedPlatform>, seen: u64, prepare: PrepareFn<'_>) -> Grown {
        self.locked(|| {
            if self.generation() != seen {
                return Grown::Meanwhile;
            }
            if grow_one(m, prepare) {
                self.added.fetch_add(1, Ordering::Relaxed);
                Grown::ByThisCall
            } else {
                Grown::No
            }
        })
    }

    /// Offlines and removes hot-added blocks whose pages are all free, highest first, while
    /// at least `keep` pages stay free besides; releases their host memory. Returns the
    /// number of blocks removed.
    pub fn shrink(&self, m: &Machine<HostedPlatform>, keep: usize) -> usize {
        self.locked(|| {
            // Pages parked on the CPUs' lists go back to the buddy allocator first.
            m.drain_all_pages();
            let mut blocks = [0usize; 512];
            let mut n = 0;
            for b in m.memory_blocks() {
                if !b.early && b.online && n < blocks.len() {
                    blocks[n] = b.nr;
                    n += 1;
                }
            }
            let online = Self::BLOCK_PAGES;
            let mut removed = 0;
            for &nr in blocks[..n].iter().rev() {
                if m.nr_free_pages() < keep + online || !m.memory_block_is_free(nr) {
                    continue;
                }
                if m.offline_memory_block(nr).is_err() {
                    continue;
                }
                let start = nr as u64 * MEMORY_BLOCK_SIZE;
                if m.remove_memory(start, MEMORY_BLOCK_SIZE).is_err() {
                    // Offline but present: onlined again by the next growth.
                    continue;
                }
                release(m.platform(), start, MEMORY_BLOCK_SIZE);
                removed += 1;
            }
            self.removed.fetch_add(removed as u64, Ordering::Relaxed);
            removed
        })
    }
}

/// Adds and onlines the lowest absent (or onlines the lowest offline hot-added) block.
fn grow_one(m: &Machine<HostedPlatform>, prepare: PrepareFn<'_>) -> bool {
    // An offline hot-added block (a removal that failed) is onlined first.
    if let Some(b) = m.memory_blocks().find(|b| !b.early && !b.online) {
        return m
            .online_memory_block(b.nr, OnlineType::OnlineKernel)
            .is_ok();
    }
    let plat = m.platform();
    let first = m
        .memory_blocks()
        .filter(|b| b.early)
        .map(|b| b.nr + 1)
        .max()
        .unwrap_or(0);
    let max = plat.max_phys_end().as_u64() / MEMORY_BLOCK_SIZE;
    let Some(nr) = (first..max as usize).find(|&nr| m.memory_block(nr).is_none()) else {
        return false;
    };
    let start = nr as u64 * MEMORY_BLOCK_SIZE;
    let end = start + MEMORY_BLOCK_SIZE;
    let old_end = plat.phys_end().as_u64();
    if end > old_end {
        if plat.grow_phys(PhysAddr::new(end)).is_err() {
            return false;
        }
        if !prepare(plat, old_end, end) {
            return false;
        }
    }
    if m.add_memory_flags(0, start, MEMORY_BLOCK_SIZE, MhpFlags::MEMMAP_ON_MEMORY)
        .is_err()
    {
        return false;
    }
    if m.online_memory_block(nr, OnlineType::OnlineKernel).is_err() {
        let _ = m.remove_memory(start, MEMORY_BLOCK_SIZE);
        return false;
    }
    true
}

/// Releases the host memory behind physical `[start, start + len)` of a removed block.
fn release(plat: &HostedPlatform, start: u64, len: u64) {
    let va = plat.direct_map_base() as usize + start as usize;
    // SAFETY: the block was removed: kmem has no page, memmap or reference in it, and the
    // range lies inside the platform's direct map (below `phys_end`). MADV_DONTNEED drops
    // private copies (a private direct map); the hole releases the memfd's pages.
    unsafe {
        libc::madvise(va as *mut libc::c_void, len as usize, libc::MADV_DONTNEED);
        let _ = plat.punch_hole(PhysAddr::new(start), len);
    }
}
