//! `struct mm_struct` and `struct vm_area_struct` (include/linux/mm_types.h).

use core::ptr::NonNull;

use kds::alloc::Gfp;
use kds::maple_tree::{MapleTree, MtFlags, XaEntry};

use super::flags::*;
use super::kalloc::KAlloc;
use crate::arch::Arch;
use crate::errno::Errno;
use crate::pgtable::PageTable;

/// What backs a VMA's pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmBacking {
    /// Anonymous memory (private: COW after fork; shared: a shmem object of its own).
    Anon,
    /// A shmem/tmpfs inode (memfd, SysV shm, shared anonymous memory), by its number;
    /// `vm_pgoff` is the page offset into it.
    Shmem(u64),
}

/// `struct anon_vma` (managed by [`super::anon_vma`]).
#[derive(Debug)]
pub struct AnonVma {
    /// Chains naming it plus pins.
    pub refcount: usize,
    /// First chain on its list (`rb_root`).
    pub(super) head: Option<NonNull<AnonVmaChain>>,
}

/// `struct anon_vma_chain`: one (VMA, anon_vma) link.
#[derive(Debug)]
pub struct AnonVmaChain {
    /// The VMA.
    pub vma: NonNull<VmAreaStruct>,
    /// The anon_vma.
    pub anon_vma: NonNull<AnonVma>,
    /// Next link of the same VMA (`same_vma`).
    pub(super) same_vma_next: Option<NonNull<AnonVmaChain>>,
    /// Neighbours on the anon_vma's list (`rb`).
    pub(super) prev: Option<NonNull<AnonVmaChain>>,
    pub(super) next: Option<NonNull<AnonVmaChain>>,
}

/// `struct vm_area_struct`: one mapping, `[vm_start, vm_end)`.
#[derive(Debug)]
pub struct VmAreaStruct {
    /// First address.
    pub vm_start: u64,
    /// First address after the end.
    pub vm_end: u64,
    /// Flags.
    pub vm_flags: VmFlags,
    /// Offset of `vm_start` in the backing object, in pages; for private anonymous memory
    /// `vm_start >> PAGE_SHIFT` at creation (the linear index anon rmap uses).
    pub vm_pgoff: u64,
    /// The backing.
    pub backing: VmBacking,
    /// `vma->anon_vma`, made on the first write fault (`anon_vma_prepare`).
    pub anon_vma: Option<NonNull<AnonVma>>,
    /// `vma->anon_vma_chain`: this VMA's chain links, newest first.
    pub avc: Option<NonNull<AnonVmaChain>>,
    /// `vma->vm_mm`, as an address (the owning [`MmStruct`], which never moves).
    pub vm_mm: usize,
    /// The `i_mmap` of the shmem object this VMA maps (`vma->vm_file->f_mapping`), set when
    /// the VMA is made; [`MmStruct::insert_vma`] links the VMA on it and
    /// [`MmStruct::remove_vma`] unlinks it.
    pub i_mmap: Option<NonNull<IMmap>>,
    /// `vma->shared`: the neighbours on that list.
    pub(crate) shared: IMmapLink,
    /// `vma->vm_policy`: the policy `mbind` set (`None`: the task's policy applies).
    pub vm_policy: Option<super::mempolicy::MemPolicy>,
}

/// A VMA's links on an [`IMmap`] (`vma->shared`).
#[derive(Clone, Copy, Debug, Default)]
pub struct IMmapLink {
    prev: Option<NonNull<VmAreaStruct>>,
    next: Option<NonNull<VmAreaStruct>>,
}

impl IMmapLink {
    /// Not on any list.
    pub const NONE: IMmapLink = IMmapLink {
        prev: None,
        next: None,
    };
}

/// `address_space->i_mmap` of a shmem object: every VMA mapping it, in any address space
/// (Linux keeps an interval tree by page offset; kmem a list, walked in full). Changed
/// only under the task layer's lock, as the VMAs are.
///
/// # Invariants
/// Every VMA on the list is live, names this list in its `i_mmap`, and is linked through
/// its `shared` links; `count` is the list's length.
#[derive(Debug, Default)]
pub struct IMmap {
    head: Option<NonNull<VmAreaStruct>>,
    count: usize,
}

// SAFETY: the VMAs it links are only touched under the task layer's lock.
unsafe impl Send for IMmap {}
// SAFETY: `&IMmap` gives no access to the VMAs it links (every walk takes the task layer's lock and
// a raw pointer), so sharing the list head between threads shares nothing unsynchronised.
unsafe impl Sync for IMmap {}

impl IMmap {
    /// An empty list.
    pub const fn new() -> Self {
        Self {
            head: None,
            count: 0,
        }
    }
    /// VMAs on the list (`mapping_mapped` when non-zero).
    pub fn count(&self) -> usize {
        self.count
    }
    /// `vma_interval_tree_insert`.
    ///
    /// # Safety
    /// `v` is a live, boxed VMA not on any list, naming this list; the lock is held.
    unsafe fn link(&mut self, mut v: NonNull<VmAreaStruct>) {
        // SAFETY: the caller's guarantee; the old head is live (invariant).
        unsafe {
            v.as_mut().shared = IMmapLink {
                prev: None,
                next: self.head,
            };
            if let Some(mut h) = self.head {
                h.as_mut().shared.prev = Some(v);
            }
        }
        self.head = Some(v);
        self.count += 1;
    }
    /// `vma_interval_tree_remove`.
    ///
    /// # Safety
    /// `v` is on this list; the lock is held.
    unsafe fn unlink(&mut self, mut v: NonNull<VmAreaStruct>) {
        // SAFETY: `v` and its neighbours are live VMAs of this list (invariant).
        unsafe {
            let IMmapLink { prev, next } = v.as_ref().shared;
            match prev {
                Some(mut p) => p.as_mut().shared.next = next,
                None => self.head = next,
            }
            if let Some(mut n) = next {
                n.as_mut().shared.prev = prev;
            }
            v.as_mut().shared = IMmapLink::NONE;
        }
        self.count -= 1;
    }
    /// The VMAs on the list (`vma_interval_tree_foreach` without the offset filter).
    ///
    /// # Safety
    /// The task layer's lock is held for as long as the iterator is used, and the VMA
    /// trees do not change meanwhile.
    pub unsafe fn iter(&self) -> impl Iterator<Item = NonNull<VmAreaStruct>> + '_ {
        let mut c = self.head;
        core::iter::from_fn(move || {
            let v = c?;
            // SAFETY: a live VMA of the list (invariant, caller's lock).
            c = unsafe { v.as_ref().shared.next };
            Some(v)
        })
    }
}

// SAFETY: the raw pointers name objects of the same address space, only touched under the
// task layer's lock (module documentation of `vma`).
unsafe impl Send for VmAreaStruct {}
// SAFETY: shared access to a `VmAreaStruct` reads its plain fields; its raw pointers (to objects of
// the same address space) are followed only under the task layer's lock (module documentation of
// `vma`).
unsafe impl Sync for VmAreaStruct {}

impl VmAreaStruct {
    /// Bytes covered.
    pub fn len(&self) -> u64 {
        self.vm_end - self.vm_start
    }
    /// Whether it covers nothing (never for a VMA in a tree).
    pub fn is_empty(&self) -> bool {
        self.vm_end == self.vm_start
    }
    /// Pages covered (`vma_pages`).
    pub fn pages(&self) -> u64 {
        self.len() / PAGE
    }
    /// `vma_is_anonymous`.
    pub fn is_anonymous(&self) -> bool {
        self.backing == VmBacking::Anon
    }
    /// The page offset of `addr` in the backing (`linear_page_index`).
    pub fn linear_page_index(&self, addr: u64) -> u64 {
        self.vm_pgoff + (addr - self.vm_start) / PAGE
    }
    /// `vm_start_gap`: the start, less the guard gap of a stack.
    pub fn start_gap(&self) -> u64 {
        if self.vm_flags.contains(VmFlags::VM_GROWSDOWN) {
            self.vm_start.saturating_sub(STACK_GUARD_GAP)
        } else {
            self.vm_start
        }
    }
    /// `is_cow_mapping`: private and may be written.
    pub fn is_cow_mapping(&self) -> bool {
        self.vm_flags.0 & (VmFlags::VM_SHARED.0 | VmFlags::VM_MAYWRITE.0) == VmFlags::VM_MAYWRITE.0
    }
}

/// The RSS counters (`enum { MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmCounter {
    /// `MM_FILEPAGES`.
    FilePages = 0,
    /// `MM_ANONPAGES`.
    AnonPages = 1,
    /// `MM_SWAPENTS`.
    SwapEnts = 2,
    /// `MM_SHMEMPAGES`.
    ShmemPages = 3,
}

/// `struct mm_struct`: one address space. See the [module documentation](super).
pub struct MmStruct {
    pub(crate) mm_mt: MapleTree<KAlloc>,
    pub(crate) ka: KAlloc,
    /// The page table (`mm->pgd`), made by [`crate::memory`].
    pub pgd: Option<PageTable>,
    /// The architecture whose user space this is.
    pub arch: Arch,
    /// `TASK_SIZE`.
    pub task_size: u64,
    /// `mmap_base`: where top-down `get_unmapped_area` starts.
    pub mmap_base: u64,
    /// `start_brk`.
    pub start_brk: u64,
    /// `brk`.
    pub brk: u64,
    /// `start_stack`.
    pub start_stack: u64,
    /// `map_count`.
    pub map_count: usize,
    /// `total_vm` (pages).
    pub total_vm: u64,
    /// `data_vm`: private writable, not stack.
    pub data_vm: u64,
    /// `exec_vm`.
    pub exec_vm: u64,
    /// `stack_vm`.
    pub stack_vm: u64,
    /// `hiwater_vm` (VmPeak).
    pub hiwater_vm: u64,
    /// `hiwater_rss` (VmHWM).
    pub hiwater_rss: u64,
    /// `rss_stat`, indexed by [`MmCounter`].
    pub rss_stat: [i64; 4],
    /// `current->mempolicy` (`set_mempolicy`; `None`: the default, local allocation).
    /// kmem's tasks are single-threaded and own their address space, so the task policy
    /// lives with it (the fault path sees only the mm).
    pub task_policy: Option<super::mempolicy::MemPolicy>,
}

/// Iterator over an address space's VMAs in address order.
pub struct VmaIter<'a> {
    mm: &'a MmStruct,
    next: u64,
}

impl<'a> Iterator for VmaIter<'a> {
    type Item = &'a VmAreaStruct;
    fn next(&mut self) -> Option<&'a VmAreaStruct> {
        let v = self.mm.find_vma(self.next)?;
        self.next = v.vm_end;
        Some(v)
    }
}

/// `TASK_SIZE` and `mmap_base` of a simulated user space (arch/x86/mm/mmap.c `mmap_base`
/// with randomization off: the gap below the stack is `RLIMIT_STACK` + `stack_guard_gap`,
/// at least 128 MiB and at most 5/6 of the space, so 128 MiB).
pub fn user_layout(arch: Arch) -> (u64, u64) {
    let task_size = match arch {
        // `TASK_SIZE_MAX` with 4-level paging: `(1 << 47) - PAGE_SIZE`.
        Arch::X86_64 => (1u64 << 47) - PAGE,
        // `TASK_SIZE` = `PAGE_OFFSET` with VMSPLIT_3G.
        Arch::I386 => 0xc000_0000,
    };
    let mut gap = STK_LIM + STACK_GUARD_GAP;
    let gap_max = task_size / 6 * 5;
    gap = gap.clamp(MMAP_GAP_MIN, gap_max);
    (task_size, (task_size - gap) & !(PAGE - 1))
}

/// `ELF_ET_DYN_BASE` (arch/x86/include/asm/elf.h): where a PIE program would be loaded, with
/// randomization off; kmem's processes have no program image, and `start_brk` is placed
/// here.
pub fn elf_et_dyn_base(arch: Arch, task_size: u64) -> u64 {
    match arch {
        // `DEFAULT_MAP_WINDOW / 3 * 2`, page-aligned as load_elf_binary does.
        Arch::X86_64 => ((task_size + PAGE) / 3 * 2) & !(PAGE - 1),
        Arch::I386 => (task_size / 3 * 2) & !(PAGE - 1),
    }
}

impl MmStruct {
    /// An empty address space for `arch` (`mm_alloc` + `mm_init`), without page table.
    pub(crate) fn new(ka: KAlloc, arch: Arch) -> MmStruct {
        let (task_size, mmap_base) = user_layout(arch);
        let start_brk = elf_et_dyn_base(arch, task_size) + 0x5000;
        MmStruct {
            mm_mt: MapleTree::new(MtFlags::ALLOC_RANGE | MtFlags::USE_RCU, ka),
            ka,
            pgd: None,
            arch,
            task_size,
            mmap_base,
            start_brk,
            brk: start_brk,
            start_stack: task_size - PAGE,
            map_count: 0,
            total_vm: 0,
            data_vm: 0,
            exec_vm: 0,
            stack_vm: 0,
            hiwater_vm: 0,
            hiwater_rss: 0,
            rss_stat: [0; 4],
            task_policy: None,
        }
    }

    /// The kmalloc handle.
    pub(crate) fn kalloc(&self) -> KAlloc {
        self.ka
    }

    /// `get_mm_counter`.
    pub fn counter(&self, c: MmCounter) -> i64 {
        self.rss_stat[c as usize]
    }
    /// `add_mm_counter`.
    pub fn add_counter(&mut self, c: MmCounter, delta: i64) {
        self.rss_stat[c as usize] += delta;
        let rss = self.rss();
        if rss > self.hiwater_rss {
            self.hiwater_rss = rss;
        }
    }
    /// `get_mm_rss`: file + anon + shmem pages.
    pub fn rss(&self) -> u64 {
        (self.rss_stat[0] + self.rss_stat[1] + self.rss_stat[3]).max(0) as u64
    }

    fn load_ptr(&self, addr: u64) -> Option<NonNull<VmAreaStruct>> {
        self.mm_mt.load(addr as usize).and_then(|e| e.as_ptr())
    }

    /// `vma_lookup`: the VMA containing `addr`.
    pub fn vma_lookup(&self, addr: u64) -> Option<&VmAreaStruct> {
        // SAFETY: tree entries are live VMAs owned by this mm; `&self` keeps them (changes
        // need `&mut self`).
        self.load_ptr(addr).map(|p| unsafe { &*p.as_ptr() })
    }

    /// `find_vma`: the first VMA ending above `addr`.
    pub fn find_vma(&self, addr: u64) -> Option<&VmAreaStruct> {
        let mut idx = addr as usize;
        let e = self.mm_mt.find(&mut idx, usize::MAX)?;
        // SAFETY: a maple-tree entry of this mm is a live VMA it owns, and `&self` keeps it so
        // (freeing or changing a VMA needs `&mut self`), so the reference may live as long as the
        // borrow of `self`.
        e.as_ptr::<VmAreaStruct>().map(|p| unsafe { &*p.as_ptr() })
    }

    /// The VMA ending at or below `addr` with the highest end (`find_vma_prev`'s `prev` for
    /// an `addr` outside any VMA).
    pub fn find_vma_before(&self, addr: u64) -> Option<&VmAreaStruct> {
        if addr == 0 {
            return None;
        }
        let e = self.mm_mt.prev(addr as usize, 0)?;
        // SAFETY: the entry `prev` found is a live VMA owned by this mm, and `&self` keeps it so
        // (changes need `&mut self`) for as long as the returned reference.
        e.as_ptr::<VmAreaStruct>().map(|p| unsafe { &*p.as_ptr() })
    }

    /// `find_vma_intersection`: the first VMA intersecting `[start, end)`.
    pub fn find_vma_intersection(&self, start: u64, end: u64) -> Option<&VmAreaStruct> {
        self.find_vma(start).filter(|v| v.vm_start < end)
    }

    /// Every VMA, in address order.
    pub fn vmas(&self) -> VmaIter<'_> {
        VmaIter { mm: self, next: 0 }
    }

    /// The VMA starting at `start`, mutably.
    pub(crate) fn vma_mut(&mut self, start: u64) -> Option<&mut VmAreaStruct> {
        let p = self.load_ptr(start)?;
        // SAFETY: a live VMA of this mm; `&mut self` excludes every other access.
        let v = unsafe { &mut *p.as_ptr() };
        (v.vm_start == start).then_some(v)
    }

    /// The VMA containing `addr` as a raw pointer (for anon_vma chains).
    pub(crate) fn vma_ptr(&self, addr: u64) -> Option<NonNull<VmAreaStruct>> {
        self.load_ptr(addr)
    }

    /// Inserts a new VMA (the range must be free); returns a pointer to it.
    ///
    /// # Errors
    /// `ENOMEM`.
    pub(crate) fn insert_vma(
        &mut self,
        mut v: VmAreaStruct,
    ) -> Result<NonNull<VmAreaStruct>, Errno> {
        v.vm_mm = self as *const MmStruct as usize;
        let (s, e) = (v.vm_start, v.vm_end);
        v.shared = IMmapLink::NONE;
        let p = self.ka.new_box(v).ok_or(Errno::ENOMEM)?;
        let entry = XaEntry::from_ptr(p);
        if self
            .mm_mt
            .store_range(s as usize, (e - 1) as usize, entry, Gfp::GFP_KERNEL)
            .is_err()
        {
            // SAFETY: just allocated, never published.
            unsafe { self.ka.free_box(p) };
            return Err(Errno::ENOMEM);
        }
        // SAFETY: just stored and live; `&mut self` is the only access to it.
        if let Some(mut im) = unsafe { p.as_ref() }.i_mmap {
            // SAFETY: `p` is on no list (links reset above); the list named by `i_mmap`
            // outlives its VMAs (the object lives while a VMA maps it), and VMAs change only
            // under the task layer's lock, which the caller holds.
            unsafe { im.as_mut().link(p) };
        }
        self.map_count += 1;
        self.vm_stat_account(
            // SAFETY: just stored; `&mut self`.
            unsafe { p.as_ref() }.vm_flags,
            ((e - s) / PAGE) as i64,
        );
        Ok(p)
    }

    /// Removes the VMA starting at `start` from the tree and frees it, returning it (its
    /// anon_vma chain must be unlinked first, see [`super::anon_vma`]).
    pub(crate) fn remove_vma(&mut self, start: u64) -> Option<VmAreaStruct> {
        let p = self.load_ptr(start)?;
        // SAFETY: a live VMA of this mm.
        let (s, e, f) = unsafe { (p.as_ref().vm_start, p.as_ref().vm_end, p.as_ref().vm_flags) };
        if s != start {
            return None;
        }
        // Erasing a range never allocates more than the reserve kept for it.
        let _ = self
            .mm_mt
            .store_range(s as usize, (e - 1) as usize, None, Gfp::GFP_KERNEL);
        self.map_count -= 1;
        self.vm_stat_account(f, -(((e - s) / PAGE) as i64));
        // SAFETY: a live VMA of this mm, unpublished but not yet freed.
        if let Some(mut im) = unsafe { p.as_ref() }.i_mmap {
            // SAFETY: `insert_vma` linked it on the list it names, which is still live (as
            // there); the caller holds the task layer's lock.
            unsafe { im.as_mut().unlink(p) };
        }
        // SAFETY: unpublished now; allocated by `insert_vma`.
        Some(unsafe { self.ka.take_box(p) })
    }

    /// Changes the range of the VMA starting at `old_start` to `[start, end)` (the new
    /// range may only overlap the old one and free space).
    ///
    /// # Errors
    /// `ENOMEM` (nothing changed).
    pub(crate) fn set_vma_range(
        &mut self,
        old_start: u64,
        start: u64,
        end: u64,
    ) -> Result<(), Errno> {
        let p = self.load_ptr(old_start).ok_or(Errno::EINVAL)?;
        // SAFETY: a live VMA of this mm; `&mut self`.
        let (os, oe, f) = unsafe { (p.as_ref().vm_start, p.as_ref().vm_end, p.as_ref().vm_flags) };
        let entry = XaEntry::from_ptr(p);
        // Store the new range first (it overlaps the old one), then clear what is left.
        self.mm_mt
            .store_range(start as usize, (end - 1) as usize, entry, Gfp::GFP_KERNEL)
            .map_err(|_| Errno::ENOMEM)?;
        if os < start {
            let _ = self.mm_mt.store_range(
                os as usize,
                (start.min(oe) - 1) as usize,
                None,
                Gfp::GFP_KERNEL,
            );
        }
        if oe > end {
            let _ = self.mm_mt.store_range(
                end.max(os) as usize,
                (oe - 1) as usize,
                None,
                Gfp::GFP_KERNEL,
            );
        }
        // SAFETY: `p` is still a live VMA of this mm (the stores above changed only the tree's
        // ranges, never freed it) and `&mut self` excludes every other user of this mm's VMAs.
        let v = unsafe { &mut *p.as_ptr() };
        if v.is_anonymous() && !v.vm_flags.contains(VmFlags::VM_SHARED) {
            // The page offset follows the start (vma_adjust: `vm_pgoff` moves with it).
            v.vm_pgoff = (v.vm_pgoff as i64 + (start as i64 - os as i64) / PAGE as i64) as u64;
        } else {
            v.vm_pgoff = (v.vm_pgoff as i64 + (start as i64 - os as i64) / PAGE as i64) as u64;
        }
        v.vm_start = start;
        v.vm_end = end;
        self.vm_stat_account(f, ((end - start) as i64 - (oe - os) as i64) / PAGE as i64);
        Ok(())
    }

    /// `vm_stat_account`: total_vm and the data/exec/stack split.
    pub(crate) fn vm_stat_account(&mut self, f: VmFlags, pages: i64) {
        let add = |x: &mut u64| *x = (*x as i64 + pages).max(0) as u64;
        add(&mut self.total_vm);
        if self.total_vm > self.hiwater_vm {
            self.hiwater_vm = self.total_vm;
        }
        // is_exec_mapping / is_stack_mapping / is_data_mapping (mm/internal.h).
        if f.0 & (VmFlags::VM_EXEC.0 | VmFlags::VM_WRITE.0 | VmFlags::VM_STACK.0)
            == VmFlags::VM_EXEC.0
        {
            add(&mut self.exec_vm);
        } else if f.contains(VmFlags::VM_STACK) {
            add(&mut self.stack_vm);
        } else if f.0 & (VmFlags::VM_WRITE.0 | VmFlags::VM_SHARED.0 | VmFlags::VM_STACK.0)
            == VmFlags::VM_WRITE.0
        {
            add(&mut self.data_vm);
        }
    }

    /// Checks the tree (`validate_mm`): VMAs ordered, non-empty, page-aligned, each stored
    /// exactly over its range, `map_count` right.
    ///
    /// # Errors
    /// What is wrong.
    pub fn validate(&self) -> Result<(), &'static str> {
        self.mm_mt.validate()?;
        let mut n = 0;
        let mut last_end = 0;
        for v in self.vmas() {
            if v.vm_start >= v.vm_end || v.vm_start < last_end {
                return Err("VMAs overlap or are empty");
            }
            if offset_in_page(v.vm_start | v.vm_end) != 0 {
                return Err("VMA not page-aligned");
            }
            if self.vma_lookup(v.vm_end - 1).map(|x| x.vm_start) != Some(v.vm_start) {
                return Err("VMA not stored over its range");
            }
            last_end = v.vm_end;
            n += 1;
        }
        if n != self.map_count {
            return Err("map_count wrong");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_linuxs_with_randomization_off() {
        // arch/x86/mm/mmap.c mmap_base: TASK_SIZE - 128 MiB (the gap's minimum).
        assert_eq!(
            user_layout(Arch::X86_64),
            (0x7fff_ffff_f000, 0x7fff_f7ff_f000)
        );
        assert_eq!(user_layout(Arch::I386), (0xc000_0000, 0xb800_0000));
        assert_eq!(
            elf_et_dyn_base(Arch::X86_64, 0x7fff_ffff_f000),
            0x5555_5555_5000
        );
        assert_eq!(elf_et_dyn_base(Arch::I386, 0xc000_0000), 0x8000_0000);
    }

    #[test]
    fn flags_from_prot_and_map() {
        assert_eq!(VmFlags::from_prot(PROT_READ | PROT_WRITE), VmFlags(0x3));
        assert_eq!(VmFlags::from_prot(0x10 | PROT_EXEC), VmFlags::VM_EXEC);
        assert_eq!(
            VmFlags::from_map_flags(MAP_GROWSDOWN | MAP_LOCKED | MAP_POPULATE),
            VmFlags::VM_GROWSDOWN | VmFlags::VM_LOCKED
        );
        assert_eq!(page_align(1), Some(PAGE));
        assert_eq!(page_align(u64::MAX), None);
        // VM_STACK_FLAGS on x86_64: what a fresh [stack] shows in smaps (rd wr mr mw me gd ac).
        assert_eq!(VmFlags::VM_STACK_FLAGS.0, 0x100173);
    }
}
