//! Kernel page tables and a TLB model (arch/x86/include/asm/pgtable_types.h,
//! pgtable_64_types.h, pgtable-2level_types.h, mm/pgtable-generic.c, arch/x86/mm/tlb.c).
//!
//! Two hardware formats:
//! - **x86_64, 4-level**: PGD → PUD → PMD → PTE, each table one 4 KiB page of 512 eight-byte
//!   entries indexed by 9 bits of the virtual address (bits 39, 30, 21, 12); a PMD entry with
//!   `_PAGE_PSE` maps a 2 MiB page directly.
//! - **i386, 2-level non-PAE**: PGD → PTE, 1024 four-byte entries indexed by 10 bits (bits 22
//!   and 12); the PUD and PMD levels are folded into the PGD, and a PGD entry with `_PAGE_PSE`
//!   maps a 4 MiB page. There is no NX bit without PAE (`__supported_pte_mask` drops it).
//!
//! 1 GiB PUD mappings (`_PAGE_PSE` in a PUD) are not modelled: kmem never makes them, and a
//! live table adopted with [`PageTable::from_root`] must not use them.
//!
//! Entries carry the hardware's flag bits ([`PteFlags`]). Tables are pages from the buddy
//! allocator (through [`PtMemory`]), typed `PGTY_table` and counted in `NR_PAGETABLE`, and are
//! addressed by physical address, read and written through the direct map, as on real
//! hardware. Virtual addresses here are the machine's own (model) addresses.
//!
//! Changing or removing a present entry leaves stale translations in the TLB: every such
//! operation returns a [`TlbFlush`], a `#[must_use]` value that is either flushed on a [`Tlb`]
//! (the model, with hit/miss counters and Linux's single/range/full flush policy) or handed on
//! (vmalloc's lazy purge collects them and flushes their union once). Installing an entry where
//! none was present owes nothing (x86 does not cache non-present entries).
//!
//! # Invariants
//! 1. Every present non-leaf entry points at a table page allocated through [`PtMemory`]
//!    and referenced from exactly one entry.
//! 2. A leaf is a PTE, or an entry with `_PAGE_PSE` at the huge level ([`PtFormat::huge_level`]);
//!    a huge leaf's physical address is aligned to its size.
//!
//! # Locking
//! A [`PageTable`] and a [`Tlb`] are plain data mutated through `&mut`; the kernel's tables
//! live under one lock in [`crate::vmalloc`] (`init_mm.page_table_lock`).

use core::fmt;

use crate::addr::{PhysAddr, PAGE_SIZE};
use crate::arch::Arch;

/// Hardware flag bits of a page-table entry (arch/x86/include/asm/pgtable_types.h).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct PteFlags(pub u64);

impl PteFlags {
    /// `_PAGE_PRESENT` (bit 0).
    pub const PRESENT: PteFlags = PteFlags(1 << 0);
    /// `_PAGE_RW` (bit 1): writable.
    pub const RW: PteFlags = PteFlags(1 << 1);
    /// `_PAGE_USER` (bit 2): user accessible.
    pub const USER: PteFlags = PteFlags(1 << 2);
    /// `_PAGE_PWT` (bit 3): write-through.
    pub const PWT: PteFlags = PteFlags(1 << 3);
    /// `_PAGE_PCD` (bit 4): cache disabled.
    pub const PCD: PteFlags = PteFlags(1 << 4);
    /// `_PAGE_ACCESSED` (bit 5).
    pub const ACCESSED: PteFlags = PteFlags(1 << 5);
    /// `_PAGE_DIRTY` (bit 6).
    pub const DIRTY: PteFlags = PteFlags(1 << 6);
    /// `_PAGE_PSE` (bit 7): a huge page at PMD (or i386 PGD) level.
    pub const PSE: PteFlags = PteFlags(1 << 7);
    /// `_PAGE_GLOBAL` (bit 8): survives CR3 switches.
    pub const GLOBAL: PteFlags = PteFlags(1 << 8);
    /// `_PAGE_NX` (bit 63): not executable (x86_64 and PAE only).
    pub const NX: PteFlags = PteFlags(1 << 63);

    /// `_PAGE_TABLE`: what a non-leaf entry of a user page table carries (`_KERNPG_TABLE`
    /// with `_PAGE_USER`).
    pub const PAGE_TABLE: PteFlags = PteFlags(0x67);
    /// `_KERNPG_TABLE`: what a non-leaf kernel entry carries.
    pub const KERNPG_TABLE: PteFlags = PteFlags(0x63);
    /// `PAGE_KERNEL`: present, writable, accessed, dirty, global, not executable.
    pub const PAGE_KERNEL: PteFlags = PteFlags(0x163 | (1 << 63));
    /// `PAGE_KERNEL_RO`.
    pub const PAGE_KERNEL_RO: PteFlags = PteFlags(0x121 | (1 << 63));
    /// `PAGE_KERNEL_EXEC`.
    pub const PAGE_KERNEL_EXEC: PteFlags = PteFlags(0x163);
    /// `PAGE_KERNEL_LARGE`: `PAGE_KERNEL` with `_PAGE_PSE`.
    pub const PAGE_KERNEL_LARGE: PteFlags = PteFlags(0x1e3 | (1 << 63));

    /// The flag bits of an entry (everything outside the address field).
    pub const fn of_entry(e: u64) -> PteFlags {
        PteFlags(e & (0xfff | (1 << 63)))
    }
    /// Whether all of `other`'s bits are set.
    pub const fn contains(self, other: PteFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// The union.
    pub const fn union(self, other: PteFlags) -> PteFlags {
        PteFlags(self.0 | other.0)
    }
    /// `self` without `other`'s bits.
    pub const fn without(self, other: PteFlags) -> PteFlags {
        PteFlags(self.0 & !other.0)
    }
}

impl core::ops::BitOr for PteFlags {
    type Output = PteFlags;
    fn bitor(self, rhs: PteFlags) -> PteFlags {
        self.union(rhs)
    }
}

impl fmt::Debug for PteFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PteFlags({:#x}: {})", self.0, self)
    }
}

impl fmt::Display for PteFlags {
    /// The flags in ptdump's style (arch/x86/mm/dump_pagetables.c): `RW USR PWT PCD PSE GLB NX`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: [(PteFlags, &str, &str); 9] = [
            (PteFlags::PRESENT, "P", "-"),
            (PteFlags::RW, "RW", "ro"),
            (PteFlags::USER, "USR", ""),
            (PteFlags::PWT, "PWT", ""),
            (PteFlags::PCD, "PCD", ""),
            (PteFlags::ACCESSED, "A", ""),
            (PteFlags::DIRTY, "D", ""),
            (PteFlags::PSE, "PSE", ""),
            (PteFlags::GLOBAL, "GLB", ""),
        ];
        let mut first = true;
        for (bit, on, off) in names {
            let s = if self.contains(bit) { on } else { off };
            if s.is_empty() {
                continue;
            }
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        f.write_str(if self.contains(PteFlags::NX) {
            " NX"
        } else {
            " x"
        })
    }
}

/// The size of a leaf mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// A 4 KiB page mapped by a PTE.
    Small,
    /// A huge page mapped at the huge level: 2 MiB on x86_64 (PMD), 4 MiB on i386 (PGD).
    Huge,
}

/// The entry format and geometry of one architecture's page tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtFormat {
    arch: Arch,
}

const X86_64_SHIFTS: [u32; 4] = [39, 30, 21, 12];
const X86_64_NAMES: [&str; 4] = ["PGD", "PUD", "PMD", "PTE"];
const I386_SHIFTS: [u32; 2] = [22, 12];
const I386_NAMES: [&str; 2] = ["PGD", "PTE"];

impl PtFormat {
    /// The format of `arch`.
    pub const fn new(arch: Arch) -> Self {
        Self { arch }
    }
    /// Number of levels: 4 (x86_64) or 2 (i386 non-PAE).
    pub const fn levels(self) -> usize {
        match self.arch {
            Arch::X86_64 => 4,
            Arch::I386 => 2,
        }
    }
    /// The virtual-address shift of a level's index (`PGDIR_SHIFT`, `PUD_SHIFT`, …).
    pub const fn shift(self, level: usize) -> u32 {
        match self.arch {
            Arch::X86_64 => X86_64_SHIFTS[level],
            Arch::I386 => I386_SHIFTS[level],
        }
    }
    /// The name of a level (`PGD`, `PUD`, `PMD`, `PTE`).
    pub const fn name(self, level: usize) -> &'static str {
        match self.arch {
            Arch::X86_64 => X86_64_NAMES[level],
            Arch::I386 => I386_NAMES[level],
        }
    }
    /// Entries per table (`PTRS_PER_PTE`): 512 or 1024.
    pub const fn entries(self) -> usize {
        match self.arch {
            Arch::X86_64 => 512,
            Arch::I386 => 1024,
        }
    }
    /// Bytes per entry: 8 or 4.
    pub const fn entry_bytes(self) -> usize {
        match self.arch {
            Arch::X86_64 => 8,
            Arch::I386 => 4,
        }
    }
    /// The level whose entries may map a huge page: the PMD (x86_64) or the PGD with the
    /// PMD folded into it (i386).
    pub const fn huge_level(self) -> usize {
        match self.arch {
            Arch::X86_64 => 2,
            Arch::I386 => 0,
        }
    }
    /// Bytes of a mapping of `size` (`PAGE_SIZE` or `PMD_SIZE`).
    pub const fn page_bytes(self, size: PageSize) -> u64 {
        match size {
            PageSize::Small => PAGE_SIZE as u64,
            PageSize::Huge => 1 << self.shift(self.huge_level()),
        }
    }
    /// The index of `va` in a table of `level`.
    pub const fn index(self, va: u64, level: usize) -> usize {
        ((va >> self.shift(level)) as usize) & (self.entries() - 1)
    }
    /// The mask of the physical-address field of an entry (`PTE_PFN_MASK`).
    pub const fn addr_mask(self) -> u64 {
        match self.arch {
            Arch::X86_64 => 0x000f_ffff_ffff_f000,
            Arch::I386 => 0xffff_f000,
        }
    }
    /// The flag bits the hardware supports (`__supported_pte_mask`: no NX on i386 non-PAE).
    pub const fn supported(self, f: PteFlags) -> PteFlags {
        match self.arch {
            Arch::X86_64 => f,
            Arch::I386 => f.without(PteFlags::NX),
        }
    }
    /// The physical address a leaf entry at `level` maps (a huge entry's PAT bit, bit 12, is
    /// not part of its address).
    pub const fn leaf_addr(self, e: u64, huge: bool) -> u64 {
        if huge {
            e & self.addr_mask() & !((1u64 << self.shift(self.huge_level())) - 1)
        } else {
            e & self.addr_mask()
        }
    }
}

/// Where table pages come from and how they are reached.
pub trait PtMemory {
    /// Allocates a zeroed table page (typed `PGTY_table`, counted in `NR_PAGETABLE`).
    fn alloc_table(&self) -> Option<PhysAddr>;
    /// Frees a table page from [`PtMemory::alloc_table`].
    fn free_table(&self, table: PhysAddr);
    /// The real address at which the table page `table` can be read and written.
    fn table_ptr(&self, table: PhysAddr) -> *mut u8;
}

/// Why a page-table operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtError {
    /// A table page could not be allocated (`-ENOMEM`).
    NoMemory,
    /// The address is already mapped (`-EBUSY` in vmap_pte_range's `WARN_ON(!pte_none)`).
    AlreadyMapped,
    /// Nothing is mapped at the address.
    NotMapped,
    /// A virtual or physical address is not aligned to the mapping size.
    Misaligned,
    /// A huge mapping covers the address where a table was needed, or a range covers only
    /// part of a huge mapping.
    HugeInTheWay,
}

impl fmt::Display for PtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PtError::NoMemory => "out of memory for a page table",
            PtError::AlreadyMapped => "address already mapped",
            PtError::NotMapped => "address not mapped",
            PtError::Misaligned => "misaligned address",
            PtError::HugeInTheWay => "a huge mapping is in the way",
        })
    }
}

/// A TLB flush owed after changing or removing present entries of `[start, end)`.
///
/// Dropping it without [`TlbFlush::flush`] (or deliberately [`TlbFlush::defer`]) leaves
/// stale translations behind; the compiler warns about an unused one.
#[must_use = "the TLB may still hold the old translations: flush them or defer explicitly"]
#[derive(Debug, PartialEq, Eq)]
pub struct TlbFlush {
    start: u64,
    end: u64,
}

impl TlbFlush {
    /// Nothing owed.
    pub const fn none() -> Self {
        Self { start: 0, end: 0 }
    }
    /// A flush of `[start, end)`.
    pub const fn range(start: u64, end: u64) -> Self {
        Self { start, end }
    }
    /// Whether nothing is owed.
    pub const fn is_empty(&self) -> bool {
        self.start >= self.end
    }
    /// The range owed.
    pub const fn bounds(&self) -> (u64, u64) {
        (self.start, self.end)
    }
    /// One flush covering both (the union's bounding range, as vmalloc's purge does).
    pub fn merge(self, other: TlbFlush) -> TlbFlush {
        let (a, b) = (self.defer(), other.defer());
        if a.0 >= a.1 {
            return TlbFlush::range(b.0, b.1);
        }
        if b.0 >= b.1 {
            return TlbFlush::range(a.0, a.1);
        }
        TlbFlush::range(a.0.min(b.0), a.1.max(b.1))
    }
    /// Flushes the range from `tlb` (one page: `flush_tlb_one_kernel`; more:
    /// `flush_tlb_kernel_range`). Returns the range for the platform's own flush.
    pub fn flush(self, tlb: &mut Tlb) -> (u64, u64) {
        let (s, e) = self.defer();
        if s < e {
            if e - s <= PAGE_SIZE as u64 {
                tlb.flush_one(s);
            } else {
                tlb.flush_range(s, e);
            }
        }
        (s, e)
    }
    /// Takes responsibility for the flush: returns the range, which the caller must flush
    /// later (vmalloc's lazy purge).
    pub fn defer(self) -> (u64, u64) {
        (self.start, self.end)
    }
}

/// One level of a [`Walk`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkStep {
    /// Level index (0 = PGD).
    pub level: usize,
    /// Index of the entry in its table.
    pub index: usize,
    /// Physical address of the table.
    pub table: PhysAddr,
    /// The entry's raw value.
    pub entry: u64,
}

/// A successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The physical address of the byte.
    pub phys: PhysAddr,
    /// The leaf's flags.
    pub flags: PteFlags,
    /// The leaf's size.
    pub size: PageSize,
}

/// A page walk (`translate`): each level's entry and the result.
#[derive(Clone, Copy, Debug)]
pub struct Walk {
    /// The virtual address walked.
    pub va: u64,
    /// The format.
    pub fmt: PtFormat,
    steps: [WalkStep; 4],
    n: usize,
    /// The translation, if the address is mapped.
    pub result: Option<Translation>,
}

impl Walk {
    /// The levels visited, PGD first.
    pub fn steps(&self) -> &[WalkStep] {
        &self.steps[..self.n]
    }
    /// Linux's one-line page-table dump of an oops (`dump_pagetable`, arch/x86/mm/fault.c):
    /// `PGD 1234067 P4D 1234067 PUD 1235067 PMD 1236067 PTE 0`.
    pub fn oops_line(&self) -> OopsLine<'_> {
        OopsLine(self)
    }
}

/// See [`Walk::oops_line`].
pub struct OopsLine<'a>(&'a Walk);

impl fmt::Display for OopsLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.0;
        for (i, s) in w.steps().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{} {:x}", w.fmt.name(s.level), s.entry)?;
            if s.level == 0 && w.fmt.levels() == 4 {
                // P4D is folded into the PGD with 4-level paging.
                write!(f, " P4D {:x}", s.entry)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Walk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = if self.fmt.levels() == 4 { 16 } else { 8 };
        let ed = self.fmt.entry_bytes() * 2;
        writeln!(f, "virtual address {:#0w$x}", self.va, w = digits + 2)?;
        for s in self.steps() {
            let present = s.entry & PteFlags::PRESENT.0 != 0;
            write!(
                f,
                "  {:<3}[{:>4}] table {:#010x}  entry {:0ed$x}",
                self.fmt.name(s.level),
                s.index,
                s.table.as_u64(),
                s.entry,
            )?;
            if present {
                writeln!(f, "  {}", PteFlags::of_entry(s.entry))?;
            } else {
                writeln!(f, "  (not present)")?;
            }
        }
        match self.result {
            Some(t) => {
                let kind = match t.size {
                    PageSize::Small => "4 KiB page",
                    PageSize::Huge if self.fmt.levels() == 4 => "2 MiB page",
                    PageSize::Huge => "4 MiB page",
                };
                write!(
                    f,
                    "  -> physical {:#x} (pfn {:#x}, {kind})",
                    t.phys.as_u64(),
                    t.phys.pfn().as_u64()
                )
            }
            None => write!(f, "  -> not mapped"),
        }
    }
}

/// Writes entry `idx` of `table`.
///
/// # Safety
/// `table` must be a live table page reachable through `mem`, `idx < fmt.entries()`, and the
/// caller the only writer of the hierarchy.
unsafe fn write_entry(fmt: PtFormat, mem: &impl PtMemory, table: PhysAddr, idx: usize, v: u64) {
    debug_assert!(idx < fmt.entries());
    let p = mem.table_ptr(table).wrapping_add(idx * fmt.entry_bytes());
    // SAFETY: by the caller's guarantee the entry lies inside a live table page and is
    // aligned to its size. Volatile: on bare metal the MMU reads these entries.
    unsafe {
        if fmt.entry_bytes() == 8 {
            core::ptr::write_volatile(p.cast::<u64>(), v)
        } else {
            core::ptr::write_volatile(p.cast::<u32>(), v as u32)
        }
    }
}

/// A page-table hierarchy rooted at one top-level table.
#[derive(Debug)]
pub struct PageTable {
    root: PhysAddr,
    fmt: PtFormat,
}

impl PageTable {
    /// Allocates an empty top-level table.
    ///
    /// # Errors
    /// [`PtError::NoMemory`].
    pub fn new(mem: &impl PtMemory, arch: Arch) -> Result<Self, PtError> {
        let root = mem.alloc_table().ok_or(PtError::NoMemory)?;
        Ok(Self {
            root,
            fmt: PtFormat::new(arch),
        })
    }

    /// Adopts a live top-level table (bare metal: the one in CR3).
    ///
    /// # Safety
    /// `root` must be a table page in `arch`'s format reachable through the [`PtMemory`] used
    /// with this value, whose lower-level tables are too; no one else may change the entries
    /// this value will manage.
    pub unsafe fn from_root(root: PhysAddr, arch: Arch) -> Self {
        Self {
            root,
            fmt: PtFormat::new(arch),
        }
    }

    /// The top-level table (what CR3 would hold).
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// The format.
    pub fn format(&self) -> PtFormat {
        self.fmt
    }

    fn entry_ptr(&self, mem: &impl PtMemory, table: PhysAddr, idx: usize) -> *mut u8 {
        debug_assert!(idx < self.fmt.entries());
        mem.table_ptr(table)
            .wrapping_add(idx * self.fmt.entry_bytes())
    }

    fn read(&self, mem: &impl PtMemory, table: PhysAddr, idx: usize) -> u64 {
        let p = self.entry_ptr(mem, table, idx);
        // SAFETY: `table` is a table page of this hierarchy (invariant 1), reachable at
        // `table_ptr`; `idx` is below the entry count, so the entry lies inside the page and is
        // aligned to its size. Tables are only changed under `&mut self`.
        unsafe {
            if self.fmt.entry_bytes() == 8 {
                core::ptr::read_volatile(p.cast::<u64>())
            } else {
                core::ptr::read_volatile(p.cast::<u32>()) as u64
            }
        }
    }

    fn write(&mut self, mem: &impl PtMemory, table: PhysAddr, idx: usize, v: u64) {
        // SAFETY: `table` is a table page of this hierarchy and `idx` below the entry count;
        // `&mut self` makes us the only writer.
        unsafe { write_entry(self.fmt, mem, table, idx, v) }
    }

    fn is_huge_entry(&self, level: usize, e: u64) -> bool {
        level == self.fmt.huge_level() && level + 1 < self.fmt.levels() && e & PteFlags::PSE.0 != 0
    }

    /// Walks `va` (`translate`): every level's entry and the physical address, if mapped.
    pub fn walk(&self, mem: &impl PtMemory, va: u64) -> Walk {
        let mut w = Walk {
            va,
            fmt: self.fmt,
            steps: [WalkStep::default(); 4],
            n: 0,
            result: None,
        };
        let mut table = self.root;
        for level in 0..self.fmt.levels() {
            let idx = self.fmt.index(va, level);
            let e = self.read(mem, table, idx);
            w.steps[level] = WalkStep {
                level,
                index: idx,
                table,
                entry: e,
            };
            w.n = level + 1;
            if e & PteFlags::PRESENT.0 == 0 {
                return w;
            }
            let leaf = level + 1 == self.fmt.levels();
            let huge = self.is_huge_entry(level, e);
            if leaf || huge {
                let size = if huge {
                    PageSize::Huge
                } else {
                    PageSize::Small
                };
                let off = va & (self.fmt.page_bytes(size) - 1);
                w.result = Some(Translation {
                    phys: PhysAddr::new(self.fmt.leaf_addr(e, huge) + off),
                    flags: PteFlags::of_entry(e),
                    size,
                });
                return w;
            }
            table = PhysAddr::new(e & self.fmt.addr_mask());
        }
        w
    }

    /// The translation of `va`, if mapped.
    pub fn lookup(&self, mem: &impl PtMemory, va: u64) -> Option<Translation> {
        self.walk(mem, va).result
    }

    /// Maps `va` to `pa` with a leaf of `size`, allocating intermediate tables as needed.
    ///
    /// # Errors
    /// [`PtError::Misaligned`], [`PtError::AlreadyMapped`], [`PtError::HugeInTheWay`], or
    /// [`PtError::NoMemory`] (tables allocated before the failure stay, empty, as in Linux).
    pub fn map(
        &mut self,
        mem: &impl PtMemory,
        va: u64,
        pa: PhysAddr,
        size: PageSize,
        flags: PteFlags,
    ) -> Result<(), PtError> {
        let bytes = self.fmt.page_bytes(size);
        if va & (bytes - 1) != 0 || pa.as_u64() & (bytes - 1) != 0 {
            return Err(PtError::Misaligned);
        }
        let leaf_level = match size {
            PageSize::Small => self.fmt.levels() - 1,
            PageSize::Huge => self.fmt.huge_level(),
        };
        let mut table = self.root;
        for level in 0..leaf_level {
            let idx = self.fmt.index(va, level);
            let e = self.read(mem, table, idx);
            if e & PteFlags::PRESENT.0 == 0 {
                let new = mem.alloc_table().ok_or(PtError::NoMemory)?;
                self.write(mem, table, idx, new.as_u64() | PteFlags::KERNPG_TABLE.0);
                table = new;
            } else if self.is_huge_entry(level, e) {
                return Err(PtError::HugeInTheWay);
            } else {
                table = PhysAddr::new(e & self.fmt.addr_mask());
            }
        }
        let idx = self.fmt.index(va, leaf_level);
        let mut e = self.read(mem, table, idx);
        if size == PageSize::Huge
            && e & PteFlags::PRESENT.0 != 0
            && !self.is_huge_entry(leaf_level, e)
        {
            // `pmd_free_pte_page`: an empty lower table may give way to a huge mapping.
            let lower = PhysAddr::new(e & self.fmt.addr_mask());
            if (0..self.fmt.entries()).all(|i| self.read(mem, lower, i) & PteFlags::PRESENT.0 == 0)
            {
                self.write(mem, table, idx, 0);
                mem.free_table(lower);
                e = 0;
            }
        }
        if e & PteFlags::PRESENT.0 != 0 {
            return Err(if leaf_level + 1 < self.fmt.levels() {
                PtError::HugeInTheWay
            } else {
                PtError::AlreadyMapped
            });
        }
        let mut f = self.fmt.supported(flags).without(PteFlags::PSE);
        if size == PageSize::Huge {
            f = f | PteFlags::PSE;
        }
        self.write(mem, table, idx, pa.as_u64() | f.0);
        Ok(())
    }

    /// Finds the leaf entry covering `va`: (table, index, level, entry).
    fn find_leaf(&self, mem: &impl PtMemory, va: u64) -> Option<(PhysAddr, usize, usize, u64)> {
        let mut table = self.root;
        for level in 0..self.fmt.levels() {
            let idx = self.fmt.index(va, level);
            let e = self.read(mem, table, idx);
            if e & PteFlags::PRESENT.0 == 0 {
                return None;
            }
            if level + 1 == self.fmt.levels() || self.is_huge_entry(level, e) {
                return Some((table, idx, level, e));
            }
            table = PhysAddr::new(e & self.fmt.addr_mask());
        }
        None
    }

    /// Removes the mapping covering `va`; returns what it mapped and the flush owed.
    ///
    /// # Errors
    /// [`PtError::NotMapped`].
    pub fn unmap(
        &mut self,
        mem: &impl PtMemory,
        va: u64,
    ) -> Result<(Translation, TlbFlush), PtError> {
        let (table, idx, level, e) = self.find_leaf(mem, va).ok_or(PtError::NotMapped)?;
        let huge = level + 1 < self.fmt.levels();
        let size = if huge {
            PageSize::Huge
        } else {
            PageSize::Small
        };
        let bytes = self.fmt.page_bytes(size);
        self.write(mem, table, idx, 0);
        let base = va & !(bytes - 1);
        Ok((
            Translation {
                phys: PhysAddr::new(self.fmt.leaf_addr(e, huge)),
                flags: PteFlags::of_entry(e),
                size,
            },
            TlbFlush::range(base, base + bytes),
        ))
    }

    /// Calls `f(va, table, idx, level, entry)` for each present leaf intersecting
    /// `[start, end)`, skipping absent subtrees a whole entry at a time.
    fn for_each_leaf(
        &self,
        mem: &impl PtMemory,
        start: u64,
        end: u64,
        mut f: impl FnMut(u64, PhysAddr, usize, usize, u64),
    ) {
        let mut va = start & !(PAGE_SIZE as u64 - 1);
        'outer: while va < end {
            let mut table = self.root;
            for level in 0..self.fmt.levels() {
                let idx = self.fmt.index(va, level);
                let e = self.read(mem, table, idx);
                let span = 1u64 << self.fmt.shift(level);
                let next = (va & !(span - 1)).wrapping_add(span);
                if e & PteFlags::PRESENT.0 == 0 {
                    if next <= va {
                        break 'outer;
                    }
                    va = next;
                    continue 'outer;
                }
                if level + 1 == self.fmt.levels() || self.is_huge_entry(level, e) {
                    f(va & !(span - 1), table, idx, level, e);
                    if next <= va {
                        break 'outer;
                    }
                    va = next;
                    continue 'outer;
                }
                table = PhysAddr::new(e & self.fmt.addr_mask());
            }
        }
    }

    fn check_no_partial_huge(&self, mem: &impl PtMemory, start: u64, end: u64) -> bool {
        let mut ok = true;
        let levels = self.fmt.levels();
        self.for_each_leaf(mem, start, end, |base, _, _, level, _| {
            if level + 1 < levels {
                let span = 1u64 << self.fmt.shift(level);
                if base < start || base + span > end {
                    ok = false;
                }
            }
        });
        ok
    }

    /// Removes every mapping in `[start, end)` (`vunmap_range_noflush`); absent pages are
    /// skipped. Returns the flush owed (empty if nothing was mapped).
    ///
    /// # Errors
    /// [`PtError::HugeInTheWay`] if the range covers only part of a huge mapping (nothing
    /// is changed then).
    pub fn unmap_range(
        &mut self,
        mem: &impl PtMemory,
        start: u64,
        end: u64,
    ) -> Result<TlbFlush, PtError> {
        self.rewrite_range(mem, start, end, |_| 0)
    }

    /// Sets the flags of every mapping in `[start, end)` to `flags` (`change_protection` /
    /// `set_memory_ro` and friends), keeping addresses and the huge bit.
    ///
    /// # Errors
    /// [`PtError::HugeInTheWay`] if the range covers only part of a huge mapping (nothing is
    /// changed then).
    pub fn change_protection(
        &mut self,
        mem: &impl PtMemory,
        start: u64,
        end: u64,
        flags: PteFlags,
    ) -> Result<TlbFlush, PtError> {
        let flags = self.fmt.supported(flags).without(PteFlags::PSE);
        self.rewrite_range(mem, start, end, |e| {
            (e & !(0xfff | PteFlags::NX.0)) | (e & PteFlags::PSE.0) | flags.0
        })
    }

    /// Replaces each present leaf `e` in the range by `f(e)`; returns the flush owed.
    fn rewrite_range(
        &mut self,
        mem: &impl PtMemory,
        start: u64,
        end: u64,
        f: impl Fn(u64) -> u64,
    ) -> Result<TlbFlush, PtError> {
        if !self.check_no_partial_huge(mem, start, end) {
            return Err(PtError::HugeInTheWay);
        }
        let fmt = self.fmt;
        let mut hits: (u64, u64) = (u64::MAX, 0);
        self.for_each_leaf(mem, start, end, |base, table, idx, level, e| {
            let span = 1u64 << fmt.shift(level);
            hits.0 = hits.0.min(base);
            hits.1 = hits.1.max(base + span);
            // SAFETY: `table`/`idx` name a present leaf of this hierarchy just read by the
            // walk; `&mut self` makes us the only writer, and the walk has finished with this
            // entry (it moves on to the next address).
            unsafe { write_entry(fmt, mem, table, idx, f(e)) };
        });
        Ok(if hits.0 < hits.1 {
            TlbFlush::range(hits.0, hits.1)
        } else {
            TlbFlush::none()
        })
    }

    /// The PTE for `va` as a raw word (present or not: a swap entry is a non-present,
    /// non-zero PTE); 0 when no PTE table covers `va` (`pte_offset_map` + `ptep_get`).
    /// Huge leaves are reported as 0 (user page tables have none).
    pub fn pte_get(&self, mem: &impl PtMemory, va: u64) -> u64 {
        let mut table = self.root;
        for level in 0..self.fmt.levels() {
            let e = self.read(mem, table, self.fmt.index(va, level));
            if level + 1 == self.fmt.levels() {
                return e;
            }
            if e & PteFlags::PRESENT.0 == 0 || self.is_huge_entry(level, e) {
                return 0;
            }
            table = PhysAddr::new(e & self.fmt.addr_mask());
        }
        0
    }

    /// Sets the PTE for `va` to the raw word `v` (`set_pte_at`), allocating the tables on
    /// the way (`pte_alloc`) with `_PAGE_TABLE` (user-reachable); returns the old word.
    /// Replacing a present entry owes a TLB flush of `va`, which the caller does.
    ///
    /// # Errors
    /// [`PtError::NoMemory`], [`PtError::HugeInTheWay`].
    pub fn pte_set(&mut self, mem: &impl PtMemory, va: u64, v: u64) -> Result<u64, PtError> {
        let mut table = self.root;
        let last = self.fmt.levels() - 1;
        for level in 0..last {
            let idx = self.fmt.index(va, level);
            let e = self.read(mem, table, idx);
            if e & PteFlags::PRESENT.0 == 0 {
                if v == 0 {
                    return Ok(0);
                }
                let new = mem.alloc_table().ok_or(PtError::NoMemory)?;
                self.write(mem, table, idx, new.as_u64() | PteFlags::PAGE_TABLE.0);
                table = new;
            } else if self.is_huge_entry(level, e) {
                return Err(PtError::HugeInTheWay);
            } else {
                table = PhysAddr::new(e & self.fmt.addr_mask());
            }
        }
        let idx = self.fmt.index(va, last);
        let old = self.read(mem, table, idx);
        self.write(mem, table, idx, v);
        Ok(old)
    }

    /// Calls `f(va, pte)` for every non-zero PTE in `[start, end)` (present or not) and
    /// stores what it returns (`walk_page_range` over PTEs); absent tables are skipped a
    /// whole entry at a time. Returns the range of present entries changed, as a flush owed.
    pub fn pte_update_range(
        &mut self,
        mem: &impl PtMemory,
        start: u64,
        end: u64,
        mut f: impl FnMut(u64, u64) -> u64,
    ) -> TlbFlush {
        let fmt = self.fmt;
        let last = fmt.levels() - 1;
        let mut hits: (u64, u64) = (u64::MAX, 0);
        let mut va = start & !(PAGE_SIZE as u64 - 1);
        'outer: while va < end {
            let mut table = self.root;
            for level in 0..last {
                let e = self.read(mem, table, fmt.index(va, level));
                let span = 1u64 << fmt.shift(level);
                if e & PteFlags::PRESENT.0 == 0 || self.is_huge_entry(level, e) {
                    let next = (va & !(span - 1)).wrapping_add(span);
                    if next <= va {
                        break 'outer;
                    }
                    va = next;
                    continue 'outer;
                }
                table = PhysAddr::new(e & fmt.addr_mask());
            }
            // Every PTE of this table inside the range.
            let table_span = 1u64 << fmt.shift(last - 1);
            let table_end = (va & !(table_span - 1)).wrapping_add(table_span);
            let stop = if table_end <= va {
                end
            } else {
                table_end.min(end)
            };
            while va < stop {
                let idx = fmt.index(va, last);
                let e = self.read(mem, table, idx);
                if e != 0 {
                    let n = f(va, e);
                    if n != e {
                        if e & PteFlags::PRESENT.0 != 0 {
                            hits.0 = hits.0.min(va);
                            hits.1 = hits.1.max(va + PAGE_SIZE as u64);
                        }
                        // SAFETY: `table`/`idx` name a PTE of this hierarchy; `&mut self`
                        // makes us the only writer.
                        unsafe { write_entry(fmt, mem, table, idx, n) };
                    }
                }
                va += PAGE_SIZE as u64;
            }
        }
        if hits.0 < hits.1 {
            TlbFlush::range(hits.0, hits.1)
        } else {
            TlbFlush::none()
        }
    }

    /// Frees the tables below the root that map addresses under `limit` (a user page
    /// table's own tables: `free_pgtables` over the user range), and the root; entries at
    /// and above `limit` (kernel mappings a user table may share) are left alone.
    pub fn destroy_below(self, mem: &impl PtMemory, limit: u64) {
        if self.fmt.levels() > 1 {
            let span = 1u64 << self.fmt.shift(0);
            for idx in 0..self.fmt.entries() {
                if (idx as u64).saturating_mul(span) >= limit {
                    break;
                }
                let e = self.read(mem, self.root, idx);
                if e & PteFlags::PRESENT.0 != 0 && !self.is_huge_entry(0, e) {
                    self.free_level(mem, PhysAddr::new(e & self.fmt.addr_mask()), 1);
                }
            }
        }
        mem.free_table(self.root);
    }

    /// `free_pgd_range`: frees the tables (and all below them) mapping part of `[addr, end)`
    /// and nothing outside `[floor, ceiling)` (the gap between the neighbouring mappings;
    /// `ceiling` 0: the top), clearing the entries naming them. The root stays.
    pub fn free_pgd_range(&mut self, mem: &impl PtMemory, addr: u64, end: u64, gap: (u64, u64)) {
        if self.fmt.levels() > 1 && addr < end {
            self.free_range_level(mem, self.root, 0, addr, end, gap);
        }
    }

    fn free_range_level(
        &self,
        mem: &impl PtMemory,
        t: PhysAddr,
        lvl: usize,
        addr: u64,
        end: u64,
        gap: (u64, u64),
    ) {
        let span = 1u64 << self.fmt.shift(lvl);
        let mut va = addr & !(span - 1);
        while va < end {
            let next = va.wrapping_add(span);
            let idx = self.fmt.index(va, lvl);
            let e = self.read(mem, t, idx);
            if e & PteFlags::PRESENT.0 != 0 && !self.is_huge_entry(lvl, e) {
                let child = PhysAddr::new(e & self.fmt.addr_mask());
                // The child maps [va, next): mm/memory.c's `addr < floor` and
                // `end - 1 > ceiling - 1` tests keep it.
                if va >= gap.0 && next.wrapping_sub(1) <= gap.1.wrapping_sub(1) {
                    self.free_level(mem, child, lvl + 1);
                    // SAFETY: an entry of this hierarchy, whose table was just freed; the
                    // caller's `&mut self` makes us the only writer.
                    unsafe { write_entry(self.fmt, mem, t, idx, 0) };
                } else if lvl + 2 < self.fmt.levels() {
                    let stop = if next == 0 { end } else { end.min(next) };
                    self.free_range_level(mem, child, lvl + 1, addr.max(va), stop, gap);
                }
            }
            if next == 0 {
                break;
            }
            va = next;
        }
    }

    /// How many table pages map addresses under `limit`, the root included.
    pub fn table_pages_below(&self, mem: &impl PtMemory, limit: u64) -> usize {
        let mut n = 1;
        if self.fmt.levels() > 1 {
            let span = 1u64 << self.fmt.shift(0);
            for idx in 0..self.fmt.entries() {
                if (idx as u64).saturating_mul(span) >= limit {
                    break;
                }
                let e = self.read(mem, self.root, idx);
                if e & PteFlags::PRESENT.0 != 0 && !self.is_huge_entry(0, e) {
                    n += self.count_level(mem, PhysAddr::new(e & self.fmt.addr_mask()), 1);
                }
            }
        }
        n
    }

    fn count_level(&self, mem: &impl PtMemory, table: PhysAddr, level: usize) -> usize {
        let mut n = 1;
        if level + 1 < self.fmt.levels() {
            for idx in 0..self.fmt.entries() {
                let e = self.read(mem, table, idx);
                if e & PteFlags::PRESENT.0 != 0 && !self.is_huge_entry(level, e) {
                    n += self.count_level(mem, PhysAddr::new(e & self.fmt.addr_mask()), level + 1);
                }
            }
        }
        n
    }

    /// Frees every table below the root and the root itself.
    pub fn destroy(self, mem: &impl PtMemory) {
        self.free_level(mem, self.root, 0);
    }

    fn free_level(&self, mem: &impl PtMemory, table: PhysAddr, level: usize) {
        if level + 1 < self.fmt.levels() {
            for idx in 0..self.fmt.entries() {
                let e = self.read(mem, table, idx);
                if e & PteFlags::PRESENT.0 != 0 && !self.is_huge_entry(level, e) {
                    self.free_level(mem, PhysAddr::new(e & self.fmt.addr_mask()), level + 1);
                }
            }
        }
        mem.free_table(table);
    }
}

/// Entries in the TLB model (a small fully associative TLB, round-robin replacement).
pub const TLB_ENTRIES: usize = 64;

/// `tlb_single_page_flush_ceiling` (arch/x86/mm/tlb.c): a range flush of more pages than
/// this flushes everything instead.
pub const TLB_SINGLE_PAGE_FLUSH_CEILING: u64 = 33;

#[derive(Clone, Copy, Debug, Default)]
struct TlbEntry {
    valid: bool,
    base: u64,
    bytes: u64,
    phys: u64,
    flags: PteFlags,
}

/// Counters of the TLB model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlbStats {
    /// Lookups answered from the TLB.
    pub hits: u64,
    /// Lookups that needed a page walk.
    pub misses: u64,
    /// Single-page flushes (`invlpg`).
    pub flush_one: u64,
    /// Range flushes done page by page.
    pub flush_range: u64,
    /// Full flushes (including ranges above the ceiling).
    pub flush_all: u64,
}

/// A TLB model: caches translations until flushed, so a missing flush shows as a stale hit.
#[derive(Clone, Debug)]
pub struct Tlb {
    e: [TlbEntry; TLB_ENTRIES],
    next: usize,
    stats: TlbStats,
}

impl Default for Tlb {
    fn default() -> Self {
        Self::new()
    }
}

impl Tlb {
    /// An empty TLB.
    pub const fn new() -> Self {
        const EMPTY: TlbEntry = TlbEntry {
            valid: false,
            base: 0,
            bytes: 0,
            phys: 0,
            flags: PteFlags(0),
        };
        Self {
            e: [EMPTY; TLB_ENTRIES],
            next: 0,
            stats: TlbStats {
                hits: 0,
                misses: 0,
                flush_one: 0,
                flush_range: 0,
                flush_all: 0,
            },
        }
    }
    /// Looks `va` up, counting a hit or a miss.
    pub fn lookup(&mut self, va: u64) -> Option<Translation> {
        for e in &self.e {
            if e.valid && va >= e.base && va - e.base < e.bytes {
                self.stats.hits += 1;
                return Some(Translation {
                    phys: PhysAddr::new(e.phys + (va - e.base)),
                    flags: e.flags,
                    size: if e.bytes == PAGE_SIZE as u64 {
                        PageSize::Small
                    } else {
                        PageSize::Huge
                    },
                });
            }
        }
        self.stats.misses += 1;
        None
    }
    /// Caches the translation of `va` found by a walk.
    pub fn fill(&mut self, fmt: PtFormat, va: u64, t: Translation) {
        let bytes = fmt.page_bytes(t.size);
        let base = va & !(bytes - 1);
        self.e[self.next] = TlbEntry {
            valid: true,
            base,
            bytes,
            phys: t.phys.as_u64() & !(bytes - 1),
            flags: t.flags,
        };
        self.next = (self.next + 1) % TLB_ENTRIES;
    }
    /// `invlpg`: drops the entry covering `va`.
    pub fn flush_one(&mut self, va: u64) {
        self.stats.flush_one += 1;
        for e in &mut self.e {
            if e.valid && va >= e.base && va - e.base < e.bytes {
                e.valid = false;
            }
        }
    }
    /// `flush_tlb_kernel_range`: page by page up to the ceiling, a full flush above it.
    pub fn flush_range(&mut self, start: u64, end: u64) {
        if end.saturating_sub(start) / PAGE_SIZE as u64 > TLB_SINGLE_PAGE_FLUSH_CEILING {
            self.flush_all();
            return;
        }
        self.stats.flush_range += 1;
        for e in &mut self.e {
            if e.valid && e.base < end && start < e.base + e.bytes {
                e.valid = false;
            }
        }
    }
    /// `flush_tlb_all`.
    pub fn flush_all(&mut self) {
        self.stats.flush_all += 1;
        for e in &mut self.e {
            e.valid = false;
        }
    }
    /// The counters.
    pub fn stats(&self) -> TlbStats {
        self.stats
    }
    /// Valid entries.
    pub fn occupancy(&self) -> usize {
        self.e.iter().filter(|e| e.valid).count()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::cell::RefCell;
    use std::vec::Vec;

    /// Table pages from a Vec of boxed pages; "physical address" = index × 4096 + 4096.
    struct VecMem {
        pages: RefCell<Vec<Option<std::boxed::Box<[u64; 512]>>>>,
    }
    impl VecMem {
        fn new() -> Self {
            Self {
                pages: RefCell::new(Vec::new()),
            }
        }
        fn live(&self) -> usize {
            self.pages.borrow().iter().filter(|p| p.is_some()).count()
        }
    }
    impl PtMemory for VecMem {
        fn alloc_table(&self) -> Option<PhysAddr> {
            let mut p = self.pages.borrow_mut();
            p.push(Some(std::boxed::Box::new([0; 512])));
            Some(PhysAddr::new((p.len() as u64) << 12))
        }
        fn free_table(&self, t: PhysAddr) {
            self.pages.borrow_mut()[(t.as_u64() >> 12) as usize - 1] = None;
        }
        fn table_ptr(&self, t: PhysAddr) -> *mut u8 {
            let mut p = self.pages.borrow_mut();
            p[(t.as_u64() >> 12) as usize - 1]
                .as_mut()
                .expect("freed table")
                .as_mut_ptr()
                .cast()
        }
    }

    const VA: u64 = 0xffff_c900_0000_0000;

    #[test]
    fn user_pte_set_get_update_and_destroy_below() {
        for arch in [Arch::X86_64, Arch::I386] {
            let mem = VecMem::new();
            let mut pt = PageTable::new(&mem, arch).unwrap();
            let ua = 0x1000_0000u64;
            assert_eq!(pt.pte_get(&mem, ua), 0, "no table yet");
            // Clearing where no table exists allocates nothing.
            assert_eq!(pt.pte_set(&mem, ua, 0), Ok(0));
            assert_eq!(mem.live(), 1);
            let pte = 0x5000 | PteFlags::PRESENT.0 | PteFlags::USER.0 | PteFlags::RW.0;
            assert_eq!(pt.pte_set(&mem, ua, pte), Ok(0));
            // Non-leaf entries of a user table are user-reachable (_PAGE_TABLE).
            let w = pt.walk(&mem, ua);
            assert!(w.steps()[..w.steps().len() - 1]
                .iter()
                .all(|s| s.entry & 0xfff == PteFlags::PAGE_TABLE.0));
            assert_eq!(pt.pte_get(&mem, ua), pte);
            // A non-present, non-zero entry (a swap entry) is kept and visited.
            assert_eq!(pt.pte_set(&mem, ua + 0x2000, 0xabc00), Ok(0));
            let mut seen = std::vec::Vec::new();
            let f = pt.pte_update_range(&mem, ua, ua + 0x4000, |va, e| {
                seen.push((va, e));
                e & !PteFlags::RW.0
            });
            assert_eq!(seen, [(ua, pte), (ua + 0x2000, 0xabc00)]);
            assert_eq!(
                f,
                TlbFlush::range(ua, ua + 0x1000),
                "only present entries owe a flush"
            );
            assert_eq!(pt.pte_get(&mem, ua), pte & !PteFlags::RW.0);
            let tables = pt.table_pages_below(&mem, 0xc000_0000);
            assert_eq!(tables, if arch == Arch::X86_64 { 4 } else { 2 });
            pt.destroy_below(&mem, 0xc000_0000);
            assert_eq!(mem.live(), 0, "every table freed");
        }
    }

    #[test]
    fn map_walk_unmap_x86_64() {
        let mem = VecMem::new();
        let mut pt = PageTable::new(&mem, Arch::X86_64).unwrap();
        pt.map(
            &mem,
            VA + 0x3000,
            PhysAddr::new(0x1234_5000),
            PageSize::Small,
            PteFlags::PAGE_KERNEL,
        )
        .unwrap();
        assert_eq!(mem.live(), 4);
        let w = pt.walk(&mem, VA + 0x3abc);
        assert_eq!(w.steps().len(), 4);
        assert_eq!(w.steps()[0].index, 402);
        let t = w.result.unwrap();
        assert_eq!(t.phys, PhysAddr::new(0x1234_5abc));
        assert!(t
            .flags
            .contains(PteFlags::NX | PteFlags::RW | PteFlags::GLOBAL));
        assert_eq!(
            pt.map(
                &mem,
                VA + 0x3000,
                PhysAddr::new(0x1000),
                PageSize::Small,
                PteFlags::PAGE_KERNEL
            ),
            Err(PtError::AlreadyMapped)
        );
        let (old, flush) = pt.unmap(&mem, VA + 0x3fff).unwrap();
        assert_eq!(old.phys, PhysAddr::new(0x1234_5000));
        assert_eq!(flush.defer(), (VA + 0x3000, VA + 0x4000));
        assert!(pt.lookup(&mem, VA + 0x3000).is_none());
        assert_eq!(pt.unmap(&mem, VA).unwrap_err(), PtError::NotMapped);
        let s = std::format!("{}", pt.walk(&mem, VA + 0x3000));
        assert!(s.contains("PTE") && s.contains("not mapped"), "{s}");
        pt.destroy(&mem);
        assert_eq!(mem.live(), 0);
    }

    #[test]
    fn huge_pmd_and_i386_pse() {
        let mem = VecMem::new();
        let mut pt = PageTable::new(&mem, Arch::X86_64).unwrap();
        assert_eq!(
            pt.map(
                &mem,
                VA + 4096,
                PhysAddr::new(0),
                PageSize::Huge,
                PteFlags::PAGE_KERNEL
            ),
            Err(PtError::Misaligned)
        );
        pt.map(
            &mem,
            VA,
            PhysAddr::new(0x4000_0000),
            PageSize::Huge,
            PteFlags::PAGE_KERNEL,
        )
        .unwrap();
        let w = pt.walk(&mem, VA + 0x12_3456);
        assert_eq!(w.steps().len(), 3);
        assert_eq!(w.result.unwrap().phys, PhysAddr::new(0x4012_3456));
        assert_eq!(w.result.unwrap().size, PageSize::Huge);
        // A 4 KiB mapping inside the huge page is refused; a partial unmap too.
        assert_eq!(
            pt.map(
                &mem,
                VA + 4096,
                PhysAddr::new(0),
                PageSize::Small,
                PteFlags::PAGE_KERNEL
            ),
            Err(PtError::HugeInTheWay)
        );
        assert_eq!(
            pt.unmap_range(&mem, VA, VA + 4096),
            Err(PtError::HugeInTheWay)
        );
        let f = pt.unmap_range(&mem, VA, VA + (2 << 20)).unwrap();
        assert_eq!(f.defer(), (VA, VA + (2 << 20)));
        pt.destroy(&mem);

        let mut pt = PageTable::new(&mem, Arch::I386).unwrap();
        pt.map(
            &mem,
            0xc040_0000,
            PhysAddr::new(0x40_0000),
            PageSize::Huge,
            PteFlags::PAGE_KERNEL_LARGE,
        )
        .unwrap();
        let w = pt.walk(&mem, 0xc041_2345);
        assert_eq!(w.steps().len(), 1);
        assert_eq!(w.steps()[0].index, 0x301);
        let t = w.result.unwrap();
        assert_eq!(t.phys, PhysAddr::new(0x41_2345));
        // No NX without PAE; the entry is 32 bits.
        assert!(!t.flags.contains(PteFlags::NX));
        assert!(w.steps()[0].entry <= u32::MAX as u64);
        pt.map(
            &mem,
            0xf880_0000,
            PhysAddr::new(0x7000),
            PageSize::Small,
            PteFlags::PAGE_KERNEL,
        )
        .unwrap();
        let w = pt.walk(&mem, 0xf880_0010);
        assert_eq!(w.steps().len(), 2);
        assert_eq!(w.result.unwrap().phys, PhysAddr::new(0x7010));
        let line = std::format!("{}", w.oops_line());
        assert!(
            line.starts_with("PGD ") && line.contains(" PTE 7"),
            "{line}"
        );
        pt.destroy(&mem);
        assert_eq!(mem.live(), 0);
    }

    #[test]
    fn huge_mapping_frees_an_empty_pte_table() {
        let mem = VecMem::new();
        let mut pt = PageTable::new(&mem, Arch::X86_64).unwrap();
        let small = |pt: &mut PageTable| {
            pt.map(
                &mem,
                VA + 4096,
                PhysAddr::new(0x9000),
                PageSize::Small,
                PteFlags::PAGE_KERNEL,
            )
        };
        small(&mut pt).unwrap();
        assert_eq!(mem.live(), 4);
        // A PTE table in use blocks the huge mapping…
        let huge = |pt: &mut PageTable| {
            pt.map(
                &mem,
                VA,
                PhysAddr::new(0x20_0000),
                PageSize::Huge,
                PteFlags::PAGE_KERNEL,
            )
        };
        assert_eq!(huge(&mut pt), Err(PtError::HugeInTheWay));
        // …an empty one is freed in its favour (pmd_free_pte_page).
        pt.unmap(&mem, VA + 4096).unwrap().1.defer();
        huge(&mut pt).unwrap();
        assert_eq!(mem.live(), 3);
        assert_eq!(
            pt.lookup(&mem, VA + 4096).unwrap().phys,
            PhysAddr::new(0x20_1000)
        );
        pt.destroy(&mem);
        assert_eq!(mem.live(), 0);
    }

    #[test]
    fn protection_and_range_unmap() {
        let mem = VecMem::new();
        let mut pt = PageTable::new(&mem, Arch::X86_64).unwrap();
        for i in 0..40u64 {
            pt.map(
                &mem,
                VA + i * 4096,
                PhysAddr::new(0x10_0000 + i * 4096),
                PageSize::Small,
                PteFlags::PAGE_KERNEL,
            )
            .unwrap();
        }
        let f = pt
            .change_protection(&mem, VA + 4096, VA + 30 * 4096, PteFlags::PAGE_KERNEL_RO)
            .unwrap();
        assert_eq!(f.defer(), (VA + 4096, VA + 30 * 4096));
        assert!(!pt
            .lookup(&mem, VA + 4096)
            .unwrap()
            .flags
            .contains(PteFlags::RW));
        assert!(pt.lookup(&mem, VA).unwrap().flags.contains(PteFlags::RW));
        assert_eq!(
            pt.lookup(&mem, VA + 5 * 4096).unwrap().phys,
            PhysAddr::new(0x10_5000)
        );
        let f = pt.unmap_range(&mem, VA, VA + (1 << 30)).unwrap();
        assert_eq!(f.defer(), (VA, VA + 40 * 4096));
        for i in 0..40u64 {
            assert!(pt.lookup(&mem, VA + i * 4096).is_none());
        }
        assert!(pt.unmap_range(&mem, VA, VA + 4096).unwrap().is_empty());
        pt.destroy(&mem);
    }

    #[test]
    fn tlb_model() {
        let fmt = PtFormat::new(Arch::X86_64);
        let mut tlb = Tlb::new();
        let t = Translation {
            phys: PhysAddr::new(0x5000),
            flags: PteFlags::PAGE_KERNEL,
            size: PageSize::Small,
        };
        assert!(tlb.lookup(VA).is_none());
        tlb.fill(fmt, VA, t);
        assert_eq!(tlb.lookup(VA + 8).unwrap().phys, PhysAddr::new(0x5008));
        // Without a flush the stale entry still answers.
        let owed = TlbFlush::range(VA, VA + 4096);
        assert!(tlb.lookup(VA).is_some());
        owed.flush(&mut tlb);
        assert!(tlb.lookup(VA).is_none());
        tlb.fill(fmt, VA, t);
        TlbFlush::range(VA, VA + 4096 * 100).flush(&mut tlb);
        let s = tlb.stats();
        assert_eq!((s.hits, s.misses), (2, 2));
        assert_eq!((s.flush_one, s.flush_all), (1, 1));
        let m = TlbFlush::range(10, 20).merge(TlbFlush::range(50, 60));
        assert_eq!(m.defer(), (10, 60));
        assert!(TlbFlush::none().merge(TlbFlush::none()).is_empty());
    }
}
