//! Shared memory objects (mm/shmem.c, mm/memfd.c, ipc/shm.c): tmpfs inodes whose pages live
//! in a page cache (an XArray indexed by page offset), mapped by any number of VMAs.
//!
//! Three kinds, as Linux makes them: `memfd_create` files (`/memfd:NAME (deleted)` in maps),
//! SysV segments (`shmget`, `/SYSV%08x (deleted)`), and the object behind a shared anonymous
//! mapping (`shmem_zero_setup`, `/dev/zero (deleted)`). A page is allocated, zeroed, on the
//! first fault at its offset (`shmem_get_folio`); the page cache holds one reference, each
//! PTE one more (and one mapper: `NR_FILE_MAPPED`); every cache page counts in `NR_SHMEM`
//! and is on the anon LRU lists (`PG_swapbacked`, as Linux's), where migration can isolate
//! it; reclaim leaves it there (kmem does not write shmem to swap). Migration replaces a
//! cache page in place ([`MemoryLayer::shmem_replace_page`]).
//! An object lives while a descriptor, a mapping or (SysV) its id names it; the task layer
//! collects unnamed objects ([`MemoryLayer::shmem_collect`]).
//!
//! # Locking
//! `shmem_lock` (the table of objects, their sizes and page caches; Linux's
//! `info->lock` and the mapping's `i_pages` lock) is taken under `tasklist_lock` and takes
//! the allocator's locks (`cpu_section`, `&zone->lock`, `&n->list_lock`) inside.

use core::ptr::NonNull;

use kds::alloc::Gfp;
use kds::xarray::{XArray, XaEntry};
use lock_api::RawMutex;

use super::MemoryLayer;
use crate::addr::Order;
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::locking::{Lock, SHMEM_LOCK};
use crate::mm::mm_types::PagePtr;
use crate::mm::NodeStat;
use crate::platform::Platform;
use crate::vma::{KAlloc, PAGE};

/// `SHMMAX` (include/uapi/linux/shm.h: `ULONG_MAX - (1UL << 24)`).
pub const SHMMAX: u64 = u64::MAX - (1 << 24);
/// `IPC_PRIVATE`.
pub const IPC_PRIVATE: i32 = 0;
/// `IPC_CREAT`.
pub const IPC_CREAT: i32 = 0o1000;
/// `IPC_EXCL`.
pub const IPC_EXCL: i32 = 0o2000;
/// `IPC_RMID`.
pub const IPC_RMID: i32 = 0;
/// `SHM_RDONLY`.
pub const SHM_RDONLY: i32 = 0o10000;
/// `SHM_RND`.
pub const SHM_RND: i32 = 0o20000;
/// `SHM_REMAP`.
pub const SHM_REMAP: i32 = 0o40000;
/// `SHMLBA` on x86: `PAGE_SIZE`.
pub const SHMLBA: u64 = PAGE;
/// `IPCMNI_SEQ_SHIFT` multiplier (`SEQ_MULTIPLIER`, 32768): shmid = seq * 32768 + index.
const SEQ_MULTIPLIER: i32 = 32768;

/// What made a shmem object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShmKind {
    /// `memfd_create`.
    Memfd,
    /// A SysV segment: its key and id.
    SysV {
        /// The key given to `shmget` (0 for `IPC_PRIVATE`).
        key: i32,
        /// The shmid.
        id: i32,
    },
    /// The object of a shared anonymous mapping.
    DevZero,
}

/// A shmem inode (`struct shmem_inode_info` + its `address_space`).
pub struct ShmemInode {
    /// The inode number (what maps shows).
    pub ino: u64,
    /// `i_size` in bytes.
    pub size: u64,
    /// What made it.
    pub kind: ShmKind,
    name: [u8; 32],
    name_len: u8,
    /// Open descriptors (memfd) naming it.
    pub fd_refs: usize,
    /// SysV: `IPC_RMID` done (the id is gone; the segment lives while attached).
    pub removed: bool,
    /// Pages in the page cache.
    pub nr_pages: u64,
    pages: XArray<KAlloc>,
    /// `mapping->i_mmap`: the VMAs mapping the object (under `tasklist_lock`).
    pub(crate) i_mmap: crate::vma::IMmap,
    next: Option<NonNull<ShmemInode>>,
}

impl ShmemInode {
    /// The name given at creation (memfd).
    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len as usize]).unwrap_or("?")
    }
}

/// The table of shmem objects.
pub struct ShmemTable {
    head: Option<NonNull<ShmemInode>>,
    next_ino: u64,
    sysv_seq: i32,
    sysv_idx: i32,
}

// SAFETY: the objects are only reached under `shmem_lock`.
unsafe impl Send for ShmemTable {}

impl ShmemTable {
    /// An empty table.
    pub const fn new() -> Self {
        Self {
            head: None,
            next_ino: 1,
            sysv_seq: 0,
            sysv_idx: 0,
        }
    }

    fn iter(&self) -> impl Iterator<Item = &ShmemInode> + '_ {
        let mut c = self.head;
        core::iter::from_fn(move || {
            let p = c?;
            // SAFETY: linked objects are live while the lock is held.
            let i = unsafe { &*p.as_ptr() };
            c = i.next;
            Some(i)
        })
    }

    fn find_mut(&mut self, ino: u64) -> Option<&mut ShmemInode> {
        let mut c = self.head;
        while let Some(p) = c {
            // SAFETY: `p` is linked on this list, whose objects are live while the lock is held,
            // and `&mut self` (the lock's guard) makes this the only reference to any of them.
            let i = unsafe { &mut *p.as_ptr() };
            if i.ino == ino {
                return Some(i);
            }
            c = i.next;
        }
        None
    }
}

impl Default for ShmemTable {
    fn default() -> Self {
        Self::new()
    }
}

/// The shmem state of a machine (in the memory layer).
pub struct ShmemState<L: RawMutex> {
    pub(crate) table: Lock<L, ShmemTable>,
}

impl<L: RawMutex> ShmemState<L> {
    /// Empty.
    pub const fn new() -> Self {
        Self {
            table: Lock::new(&SHMEM_LOCK, ShmemTable::new()),
        }
    }
}

impl<L: RawMutex> Default for ShmemState<L> {
    fn default() -> Self {
        Self::new()
    }
}

/// Facts about one object, for /proc and the SysV calls.
#[derive(Clone, Copy, Debug)]
pub struct ShmemInfo {
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Kind.
    pub kind: ShmKind,
    /// Pages cached.
    pub nr_pages: u64,
    /// SysV: removed.
    pub removed: bool,
}

impl<P: Platform> MemoryLayer<P> {
    /// `shmem_file_setup`: a new object of `size` bytes; returns its inode number.
    ///
    /// # Errors
    /// `ENOMEM`.
    pub fn shmem_create(&self, kind: ShmKind, name: &str, size: u64) -> Result<u64, Errno> {
        // Lock order: shmem_lock (rank 0'), under tasklist_lock; docs/LOCKING.md.
        let mut t = self.mem.shmem.table.lock();
        let ino = t.next_ino;
        let mut nm = [0u8; 32];
        let mut n = name.len().min(32);
        while !name.is_char_boundary(n) {
            n -= 1;
        }
        nm[..n].copy_from_slice(&name.as_bytes()[..n]);
        let kind = match kind {
            ShmKind::SysV { key, .. } => {
                let id = t.sysv_seq * SEQ_MULTIPLIER + t.sysv_idx;
                t.sysv_seq += 1;
                t.sysv_idx += 1;
                ShmKind::SysV { key, id }
            }
            k => k,
        };
        let inode = ShmemInode {
            ino,
            size,
            kind,
            name: nm,
            name_len: n as u8,
            fd_refs: 0,
            removed: false,
            nr_pages: 0,
            pages: XArray::new_in(self.kalloc()),
            i_mmap: crate::vma::IMmap::new(),
            next: t.head,
        };
        let p = self.kalloc().new_box(inode).ok_or(Errno::ENOMEM)?;
        t.head = Some(p);
        t.next_ino += 1;
        Ok(ino)
    }

    /// Facts about object `ino`.
    pub fn shmem_info(&self, ino: u64) -> Option<ShmemInfo> {
        let t = self.mem.shmem.table.lock();
        let r = t.iter().find(|i| i.ino == ino).map(|i| ShmemInfo {
            ino: i.ino,
            size: i.size,
            kind: i.kind,
            nr_pages: i.nr_pages,
            removed: i.removed,
        });
        r
    }

    /// The name of object `ino` (memfd), copied into `buf`; returns its length.
    pub fn shmem_name(&self, ino: u64, buf: &mut [u8; 32]) -> usize {
        let t = self.mem.shmem.table.lock();
        let r = t.iter().find(|i| i.ino == ino).map_or(0, |i| {
            let n = i.name_len as usize;
            buf[..n].copy_from_slice(&i.name[..n]);
            n
        });
        r
    }

    /// The SysV segment with `key` (not removed), or with shmid `id` when `key` is `None`.
    pub fn shmem_find_sysv(&self, key: Option<i32>, id: i32) -> Option<ShmemInfo> {
        let t = self.mem.shmem.table.lock();
        let r = t
            .iter()
            .find(|i| match (i.kind, key) {
                (ShmKind::SysV { key: k, .. }, Some(want)) => k == want && !i.removed,
                (ShmKind::SysV { id: x, .. }, None) => x == id && !i.removed,
                _ => false,
            })
            .map(|i| ShmemInfo {
                ino: i.ino,
                size: i.size,
                kind: i.kind,
                nr_pages: i.nr_pages,
                removed: i.removed,
            });
        r
    }

    /// Changes an object's descriptor count by `delta`, or marks a SysV segment removed.
    pub fn shmem_update(&self, ino: u64, fd_delta: isize, remove: bool) {
        let mut t = self.mem.shmem.table.lock();
        if let Some(i) = t.find_mut(ino) {
            i.fd_refs = (i.fd_refs as isize + fd_delta).max(0) as usize;
            i.removed |= remove;
        }
    }

    /// `shmem_get_folio`: the cache page at `pgoff` of `ino`, allocated (zeroed) if absent.
    /// `Err(EFAULT)` beyond the end (SIGBUS), `Err(ENOMEM)` without memory.
    ///
    /// # Errors
    /// See above.
    pub fn shmem_get_page(&self, ino: u64, pgoff: u64) -> Result<PagePtr, Errno> {
        let mut t = self.mem.shmem.table.lock();
        let i = t.find_mut(ino).ok_or(Errno::EFAULT)?;
        if pgoff >= i.size.div_ceil(PAGE) {
            return Err(Errno::EFAULT);
        }
        if let Some(e) = i.pages.load(pgoff as usize) {
            let p = e
                .as_ptr::<crate::mm::mm_types::Page>()
                .ok_or(Errno::EFAULT)?;
            // SAFETY: the cache stores only memmap entries of this machine.
            return Ok(unsafe { PagePtr::from_raw(p) });
        }
        let page = self
            .alloc_page(GfpFlags::GFP_HIGHUSER_MOVABLE | GfpFlags::__GFP_NOWARN)
            .ok_or(Errno::ENOMEM)?;
        // SAFETY: a fresh page of ours.
        unsafe { core::ptr::write_bytes(self.user_page_bytes(page), 0, PAGE as usize) };
        let entry = NonNull::new(page.as_ptr()).and_then(XaEntry::from_ptr);
        if i.pages
            .store(pgoff as usize, entry, Gfp::GFP_KERNEL)
            .is_err()
        {
            self.__free_pages(page, Order::new(0));
            return Err(Errno::ENOMEM);
        }
        page.set_mapping(i as *const ShmemInode as usize);
        page.set_index(pgoff as usize);
        page.set_flag_bits(crate::mm::mm_types::pg::UPTODATE);
        i.nr_pages += 1;
        self.mod_page_node_stat(page, NodeStat::Shmem, 1);
        // shmem_add_to_page_cache + folio_add_lru: swap-backed, so on the anon lists (reclaim
        // keeps shmem pages: kmem does not write them to swap).
        self.mem.lru.folio_add_lru(&self.km.vm, page, true);
        Ok(page)
    }

    /// The shmem half of `__folio_migrate_mapping` (`shmem_migrate_folio` →
    /// `migrate_folio`): `new` takes `old`'s slot in its object's page cache, with its
    /// `mapping`, `index` and the cache's reference; `old` loses them. Returns `false`
    /// (nothing changed) when `old` is not a cache page of a live object.
    pub(crate) fn shmem_replace_page(&self, old: PagePtr, new: PagePtr) -> bool {
        let mapping = old.mapping();
        if mapping == 0 || mapping & crate::rmap::PAGE_MAPPING_ANON != 0 {
            return false;
        }
        // Lock order: shmem_lock, under tasklist_lock (migration); docs/LOCKING.md.
        let t = self.mem.shmem.table.lock();
        let Some(i) = t
            .iter()
            .find(|i| core::ptr::eq(*i, mapping as *const ShmemInode))
        else {
            return false;
        };
        let idx = old.index();
        let cur = i
            .pages
            .load(idx)
            .and_then(|e| e.as_ptr::<crate::mm::mm_types::Page>());
        if cur != NonNull::new(old.as_ptr()) {
            return false;
        }
        let Some(entry) = NonNull::new(new.as_ptr()).and_then(XaEntry::from_ptr) else {
            return false;
        };
        // Replacing a present slot allocates nothing.
        if i.pages.store(idx, Some(entry), Gfp::GFP_KERNEL).is_err() {
            return false;
        }
        drop(t);
        new.get();
        new.set_mapping(mapping);
        new.set_index(idx);
        old.set_mapping(0);
        old.set_index(0);
        let last = old.put_testzero();
        debug_assert!(!last, "the page cache's reference was the last");
        true
    }

    /// Whether `page` is a shmem page-cache page (`folio_mapping` names a shmem inode).
    pub fn page_is_shmem(&self, page: PagePtr) -> bool {
        let mapping = page.mapping();
        if mapping == 0 || mapping & crate::rmap::PAGE_MAPPING_ANON != 0 {
            return false;
        }
        let t = self.mem.shmem.table.lock();
        let r = t
            .iter()
            .any(|i| core::ptr::eq(i, mapping as *const ShmemInode));
        r
    }

    /// The `i_mmap` of object `ino` (the VMAs mapping it), for the VMA layer
    /// ([`crate::vma::PteOps::i_mmap`]). The object does not move while it lives.
    pub(crate) fn shmem_i_mmap(&self, ino: u64) -> Option<NonNull<crate::vma::IMmap>> {
        let mut t = self.mem.shmem.table.lock();
        let r = t.find_mut(ino).map(|i| NonNull::from(&mut i.i_mmap));
        r
    }

    /// The `i_mmap` of the shmem object whose cache holds `page` (`folio_mapping`), if any.
    pub(crate) fn page_i_mmap(&self, page: PagePtr) -> Option<NonNull<crate::vma::IMmap>> {
        let mapping = page.mapping();
        if mapping == 0 || mapping & crate::rmap::PAGE_MAPPING_ANON != 0 {
            return None;
        }
        let t = self.mem.shmem.table.lock();
        let r = t
            .iter()
            .find(|i| core::ptr::eq(*i, mapping as *const ShmemInode))
            .map(|i| NonNull::from(&i.i_mmap));
        r
    }

    /// The inode number of the shmem object whose cache holds `page`, if any.
    pub fn page_shmem_ino(&self, page: PagePtr) -> Option<u64> {
        let mapping = page.mapping();
        if mapping == 0 || mapping & crate::rmap::PAGE_MAPPING_ANON != 0 {
            return None;
        }
        let t = self.mem.shmem.table.lock();
        let r = t
            .iter()
            .find(|i| core::ptr::eq(*i, mapping as *const ShmemInode))
            .map(|i| i.ino);
        r
    }

    /// Drops the cache pages of `ino` at offsets `>= from` (`shmem_truncate_range`); the
    /// caller has unmapped them.
    fn shmem_drop_pages(&self, i: &mut ShmemInode, from: u64) {
        let mut idx = from as usize;
        let mut gone = 0u64;
        while let Some(e) = i
            .pages
            .find(&mut idx, usize::MAX, kds::xarray::XaFilter::Present)
        {
            i.pages.erase(idx);
            if let Some(p) = e.as_ptr::<crate::mm::mm_types::Page>() {
                // SAFETY: a memmap entry the cache held.
                let page = unsafe { PagePtr::from_raw(p) };
                if page.refcount() == 1 {
                    page.set_mapping(0);
                    page.set_index(0);
                }
                // The cache's reference; the last one takes the page off its LRU list.
                self.mod_page_node_stat(page, NodeStat::Shmem, -1);
                self.mem.lru.folio_put(&self.km.vm, page);
                gone += 1;
            }
            idx += 1;
        }
        i.nr_pages -= gone;
    }

    /// `ftruncate`: sets the size; pages beyond it are dropped (the caller unmapped them).
    ///
    /// # Errors
    /// `EINVAL` (no such object).
    pub fn shmem_setsize(&self, ino: u64, size: u64) -> Result<(), Errno> {
        let mut t = self.mem.shmem.table.lock();
        let i = t.find_mut(ino).ok_or(Errno::EINVAL)?;
        if size < i.size {
            self.shmem_drop_pages(i, size.div_ceil(PAGE));
        }
        i.size = size;
        Ok(())
    }

    /// Frees every object no descriptor, id or mapping names (`mapped(ino)` says whether a
    /// VMA maps it); returns how many went.
    pub fn shmem_collect(&self, mapped: impl Fn(u64) -> bool) -> usize {
        let mut t = self.mem.shmem.table.lock();
        let mut prev: Option<NonNull<ShmemInode>> = None;
        let mut c = t.head;
        let mut n = 0;
        while let Some(p) = c {
            // SAFETY: a live object of the table (lock held).
            let i = unsafe { &mut *p.as_ptr() };
            let next = i.next;
            let named = i.fd_refs > 0
                || matches!(i.kind, ShmKind::SysV { .. }) && !i.removed
                || mapped(i.ino);
            if named {
                prev = c;
            } else {
                match prev {
                    // SAFETY: the previous live object.
                    Some(mut q) => unsafe { q.as_mut().next = next },
                    None => t.head = next,
                }
                self.shmem_drop_pages(i, 0);
                debug_assert_eq!(i.i_mmap.count(), 0, "a VMA still maps the object");
                // SAFETY: unlinked, ours; allocated by `shmem_create`.
                unsafe { self.kalloc().free_box(p) };
                n += 1;
            }
            c = next;
        }
        n
    }

    /// Every object's facts, for listings (`ipcs -m`), into `out`; returns how many.
    pub fn shmem_list(&self, out: &mut [Option<ShmemInfo>]) -> usize {
        let t = self.mem.shmem.table.lock();
        let mut n = 0;
        for i in t.iter() {
            if n < out.len() {
                out[n] = Some(ShmemInfo {
                    ino: i.ino,
                    size: i.size,
                    kind: i.kind,
                    nr_pages: i.nr_pages,
                    removed: i.removed,
                });
            }
            n += 1;
        }
        n
    }
}
