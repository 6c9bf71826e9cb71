//! VMA flags and the constants of the memory system calls, with Linux's values
//! (include/linux/mm.h, include/uapi/asm-generic/mman-common.h, mman.h,
//! include/uapi/linux/mman.h, arch/x86/include/asm/page_types.h).

use core::fmt;

/// `vm_flags_t`: a VMA's flags (include/linux/mm.h).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VmFlags(pub u64);

impl VmFlags {
    /// No flags (`VM_NONE`).
    pub const VM_NONE: VmFlags = VmFlags(0);
    /// `VM_READ`.
    pub const VM_READ: VmFlags = VmFlags(0x1);
    /// `VM_WRITE`.
    pub const VM_WRITE: VmFlags = VmFlags(0x2);
    /// `VM_EXEC`.
    pub const VM_EXEC: VmFlags = VmFlags(0x4);
    /// `VM_SHARED`.
    pub const VM_SHARED: VmFlags = VmFlags(0x8);
    /// `VM_MAYREAD`: `mprotect` may add `VM_READ`.
    pub const VM_MAYREAD: VmFlags = VmFlags(0x10);
    /// `VM_MAYWRITE`.
    pub const VM_MAYWRITE: VmFlags = VmFlags(0x20);
    /// `VM_MAYEXEC`.
    pub const VM_MAYEXEC: VmFlags = VmFlags(0x40);
    /// `VM_MAYSHARE`.
    pub const VM_MAYSHARE: VmFlags = VmFlags(0x80);
    /// `VM_GROWSDOWN`: a stack.
    pub const VM_GROWSDOWN: VmFlags = VmFlags(0x100);
    /// `VM_PFNMAP`.
    pub const VM_PFNMAP: VmFlags = VmFlags(0x400);
    /// `VM_LOCKED`.
    pub const VM_LOCKED: VmFlags = VmFlags(0x2000);
    /// `VM_IO`.
    pub const VM_IO: VmFlags = VmFlags(0x4000);
    /// `VM_SEQ_READ` (`MADV_SEQUENTIAL`).
    pub const VM_SEQ_READ: VmFlags = VmFlags(0x8000);
    /// `VM_RAND_READ` (`MADV_RANDOM`).
    pub const VM_RAND_READ: VmFlags = VmFlags(0x10000);
    /// `VM_DONTCOPY` (`MADV_DONTFORK`).
    pub const VM_DONTCOPY: VmFlags = VmFlags(0x20000);
    /// `VM_DONTEXPAND`.
    pub const VM_DONTEXPAND: VmFlags = VmFlags(0x40000);
    /// `VM_LOCKONFAULT`.
    pub const VM_LOCKONFAULT: VmFlags = VmFlags(0x80000);
    /// `VM_ACCOUNT`: charged to the commit count.
    pub const VM_ACCOUNT: VmFlags = VmFlags(0x100000);
    /// `VM_NORESERVE`.
    pub const VM_NORESERVE: VmFlags = VmFlags(0x200000);
    /// `VM_HUGETLB`.
    pub const VM_HUGETLB: VmFlags = VmFlags(0x400000);
    /// `VM_WIPEONFORK` (`MADV_WIPEONFORK`).
    pub const VM_WIPEONFORK: VmFlags = VmFlags(0x2000000);
    /// `VM_DONTDUMP`.
    pub const VM_DONTDUMP: VmFlags = VmFlags(0x4000000);
    /// `VM_SOFTDIRTY`: set on new VMAs (CONFIG_MEM_SOFT_DIRTY, as x86_64 defconfig).
    pub const VM_SOFTDIRTY: VmFlags = VmFlags(0x8000000);
    /// `VM_HUGEPAGE` (`MADV_HUGEPAGE`).
    pub const VM_HUGEPAGE: VmFlags = VmFlags(0x20000000);
    /// `VM_NOHUGEPAGE`.
    pub const VM_NOHUGEPAGE: VmFlags = VmFlags(0x40000000);

    /// `VM_ACCESS_FLAGS`.
    pub const VM_ACCESS_FLAGS: VmFlags = VmFlags(0x7);
    /// `VM_STACK` on x86 (`VM_GROWSDOWN`).
    pub const VM_STACK: VmFlags = Self::VM_GROWSDOWN;
    /// `VM_DATA_DEFAULT_FLAGS` (`VM_DATA_FLAGS_TSK_EXEC` without `READ_IMPLIES_EXEC`):
    /// what `brk` and the stack get.
    pub const VM_DATA_DEFAULT_FLAGS: VmFlags = VmFlags(0x1 | 0x2 | 0x10 | 0x20 | 0x40);
    /// `VM_STACK_FLAGS`: `VM_STACK | VM_STACK_DEFAULT_FLAGS | VM_ACCOUNT`.
    pub const VM_STACK_FLAGS: VmFlags = VmFlags(0x100 | 0x1 | 0x2 | 0x10 | 0x20 | 0x40 | 0x100000);
    /// `VM_SPECIAL`: never merged, never moved by `mremap`.
    pub const VM_SPECIAL: VmFlags = VmFlags(0x4000 | 0x40000 | 0x400 | 0x10000000);
    /// Flags that do not prevent a merge (`VM_IGNORE_MERGE`: `VM_SOFTDIRTY`).
    pub const VM_IGNORE_MERGE: VmFlags = Self::VM_SOFTDIRTY;

    /// Whether all of `other`'s bits are set.
    pub const fn contains(self, other: VmFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether any of `other`'s bits is set.
    pub const fn intersects(self, other: VmFlags) -> bool {
        self.0 & other.0 != 0
    }
    /// The union.
    pub const fn union(self, other: VmFlags) -> VmFlags {
        VmFlags(self.0 | other.0)
    }
    /// `self` without `other`'s bits.
    pub const fn without(self, other: VmFlags) -> VmFlags {
        VmFlags(self.0 & !other.0)
    }

    /// `calc_vm_prot_bits`: the access flags for `PROT_*` bits.
    pub const fn from_prot(prot: u32) -> VmFlags {
        VmFlags((prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) as u64)
    }
    /// `calc_vm_flag_bits`: the flags `MAP_*` bits give (`MAP_GROWSDOWN`, `MAP_LOCKED`).
    pub const fn from_map_flags(flags: u32) -> VmFlags {
        let mut f = 0;
        if flags & MAP_GROWSDOWN != 0 {
            f |= Self::VM_GROWSDOWN.0;
        }
        if flags & MAP_LOCKED != 0 {
            f |= Self::VM_LOCKED.0;
        }
        VmFlags(f)
    }
}

impl core::ops::BitOr for VmFlags {
    type Output = VmFlags;
    fn bitor(self, rhs: VmFlags) -> VmFlags {
        self.union(rhs)
    }
}

impl fmt::Debug for VmFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VmFlags({:#x})", self.0)
    }
}

/// The two-letter mnemonics of smaps' `VmFlags:` line (fs/proc/task_mmu.c `show_smap_vma_flags`).
pub const VM_FLAG_MNEMONICS: &[(VmFlags, &str)] = &[
    (VmFlags::VM_READ, "rd"),
    (VmFlags::VM_WRITE, "wr"),
    (VmFlags::VM_EXEC, "ex"),
    (VmFlags::VM_SHARED, "sh"),
    (VmFlags::VM_MAYREAD, "mr"),
    (VmFlags::VM_MAYWRITE, "mw"),
    (VmFlags::VM_MAYEXEC, "me"),
    (VmFlags::VM_MAYSHARE, "ms"),
    (VmFlags::VM_GROWSDOWN, "gd"),
    (VmFlags::VM_PFNMAP, "pf"),
    (VmFlags::VM_LOCKED, "lo"),
    (VmFlags::VM_IO, "io"),
    (VmFlags::VM_SEQ_READ, "sr"),
    (VmFlags::VM_RAND_READ, "rr"),
    (VmFlags::VM_DONTCOPY, "dc"),
    (VmFlags::VM_DONTEXPAND, "de"),
    (VmFlags::VM_LOCKONFAULT, "lf"),
    (VmFlags::VM_ACCOUNT, "ac"),
    (VmFlags::VM_NORESERVE, "nr"),
    (VmFlags::VM_HUGETLB, "ht"),
    (VmFlags::VM_WIPEONFORK, "wf"),
    (VmFlags::VM_DONTDUMP, "dd"),
    (VmFlags::VM_SOFTDIRTY, "sd"),
    (VmFlags::VM_HUGEPAGE, "hg"),
    (VmFlags::VM_NOHUGEPAGE, "nh"),
];

/// `PROT_NONE`.
pub const PROT_NONE: u32 = 0x0;
/// `PROT_READ`.
pub const PROT_READ: u32 = 0x1;
/// `PROT_WRITE`.
pub const PROT_WRITE: u32 = 0x2;
/// `PROT_EXEC`.
pub const PROT_EXEC: u32 = 0x4;
/// `PROT_GROWSDOWN`: `mprotect` extends to the start of a growsdown VMA.
pub const PROT_GROWSDOWN: u32 = 0x0100_0000;
/// `PROT_GROWSUP`.
pub const PROT_GROWSUP: u32 = 0x0200_0000;

/// `MAP_SHARED`.
pub const MAP_SHARED: u32 = 0x01;
/// `MAP_PRIVATE`.
pub const MAP_PRIVATE: u32 = 0x02;
/// `MAP_SHARED_VALIDATE`.
pub const MAP_SHARED_VALIDATE: u32 = 0x03;
/// `MAP_TYPE`: the mask of the mapping type.
pub const MAP_TYPE: u32 = 0x0f;
/// `MAP_FIXED`.
pub const MAP_FIXED: u32 = 0x10;
/// `MAP_ANONYMOUS`.
pub const MAP_ANONYMOUS: u32 = 0x20;
/// `MAP_GROWSDOWN`.
pub const MAP_GROWSDOWN: u32 = 0x0100;
/// `MAP_DENYWRITE` (ignored).
pub const MAP_DENYWRITE: u32 = 0x0800;
/// `MAP_EXECUTABLE` (ignored).
pub const MAP_EXECUTABLE: u32 = 0x1000;
/// `MAP_LOCKED`.
pub const MAP_LOCKED: u32 = 0x2000;
/// `MAP_NORESERVE`.
pub const MAP_NORESERVE: u32 = 0x4000;
/// `MAP_POPULATE`.
pub const MAP_POPULATE: u32 = 0x8000;
/// `MAP_NONBLOCK`.
pub const MAP_NONBLOCK: u32 = 0x10000;
/// `MAP_STACK`.
pub const MAP_STACK: u32 = 0x20000;
/// `MAP_HUGETLB`.
pub const MAP_HUGETLB: u32 = 0x40000;
/// `MAP_FIXED_NOREPLACE`.
pub const MAP_FIXED_NOREPLACE: u32 = 0x100000;
/// `LEGACY_MAP_MASK` (include/linux/mman.h): the flags `MAP_SHARED_VALIDATE` accepts,
/// with `MAP_FIXED_NOREPLACE` (`MAP_SHARED_VALIDATE` rejects any other flag with
/// `EOPNOTSUPP`; kmem reports `EINVAL`).
pub const LEGACY_MAP_MASK: u32 = MAP_SHARED
    | MAP_PRIVATE
    | MAP_FIXED
    | MAP_ANONYMOUS
    | MAP_DENYWRITE
    | MAP_EXECUTABLE
    | MAP_GROWSDOWN
    | MAP_LOCKED
    | MAP_NORESERVE
    | MAP_POPULATE
    | MAP_NONBLOCK
    | MAP_STACK
    | MAP_HUGETLB;

/// `MREMAP_MAYMOVE`.
pub const MREMAP_MAYMOVE: u32 = 1;
/// `MREMAP_FIXED`.
pub const MREMAP_FIXED: u32 = 2;
/// `MREMAP_DONTUNMAP`.
pub const MREMAP_DONTUNMAP: u32 = 4;

/// `PAGE_SIZE` as a user address quantity.
pub const PAGE: u64 = crate::addr::PAGE_SIZE as u64;

/// `PAGE_ALIGN`, `None` on overflow.
pub const fn page_align(x: u64) -> Option<u64> {
    match x.checked_add(PAGE - 1) {
        Some(v) => Some(v & !(PAGE - 1)),
        None => None,
    }
}

/// `offset_in_page`.
pub const fn offset_in_page(x: u64) -> u64 {
    x & (PAGE - 1)
}

/// `stack_guard_gap` (mm/mmap.c): 256 pages below a growsdown VMA stay free.
pub const STACK_GUARD_GAP: u64 = 256 * PAGE;
/// `_STK_LIM` (include/uapi/linux/resource.h): the default `RLIMIT_STACK`, 8 MiB.
pub const STK_LIM: u64 = 8 << 20;
/// `SIZE_128M` (arch/x86/mm/mmap.c): the least gap kept below the stack for it to grow.
pub const MMAP_GAP_MIN: u64 = 128 << 20;
/// `mmap_min_addr` default (`CONFIG_DEFAULT_MMAP_MIN_ADDR` 65536 on x86): no mapping below.
pub const MMAP_MIN_ADDR: u64 = 65536;
/// Bytes of the initial stack VMA: one page for the arguments plus `stack_expand` (128 KiB,
/// fs/exec.c `setup_arg_pages`), as `[stack]` shows in a fresh process.
pub const INITIAL_STACK: u64 = 33 * PAGE;
