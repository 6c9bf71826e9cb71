//! Swap entries (`swp_entry_t`) and their encoding in non-present x86 page-table entries.
//!
//! The generic entry (include/linux/swapops.h) keeps the swap type (the area's index in
//! `swap_info[]`) in the top [`MAX_SWAPFILES_SHIFT`] bits of an XArray value (63 bits on
//! 64-bit) and the page offset in the area below it:
//!
//! ```text
//!  62        58 57                                   0
//! +-----------+--------------------------------------+
//! |   type    |               offset                 |   swp_entry_t (generic)
//! +-----------+--------------------------------------+
//! ```
//!
//! A PTE that holds a swap entry is non-present; its layout is the architecture's:
//!
//! - **x86_64** (arch/x86/include/asm/pgtable_64.h): the type in bits 59..63, the offset
//!   *inverted* in bits 9..58 (so that a stale entry's "physical address" bits are high, an
//!   L1TF mitigation), bits 0 (P), 5 (A), 6 (D), 7 (PSE) and 8 (PROTNONE) zero, bit 3
//!   `_PAGE_SWP_EXCLUSIVE`, bit 1 `_PAGE_SWP_SOFT_DIRTY`, bit 2 `_PAGE_SWP_UFFD_WP`.
//! - **i386 2-level** (arch/x86/include/asm/pgtable-2level.h): the type in bits 1..5, the
//!   offset in bits 9..31, bit 7 `_PAGE_SWP_EXCLUSIVE`.

#![forbid(unsafe_code)]

use crate::arch::Arch;

/// `MAX_SWAPFILES_SHIFT` (include/linux/swap.h): bits for the type.
pub const MAX_SWAPFILES_SHIFT: u32 = 5;

/// `MAX_SWAPFILES` (include/linux/swap.h): `(1 << MAX_SWAPFILES_SHIFT)` less the types taken
/// by migration entries (`SWP_MIGRATION_NUM` 3), hwpoison (1) and PTE markers (1), with no
/// device-private entries (x86_64 defconfig): 27 areas.
pub const MAX_SWAPFILES: usize = (1 << MAX_SWAPFILES_SHIFT) - 3 - 1 - 1;

/// `BITS_PER_XA_VALUE` on 64-bit.
const BITS_PER_XA_VALUE: u32 = 63;
/// `SWP_TYPE_SHIFT`.
const SWP_TYPE_SHIFT: u32 = BITS_PER_XA_VALUE - MAX_SWAPFILES_SHIFT;
/// `SWP_OFFSET_MASK`.
const SWP_OFFSET_MASK: u64 = (1 << SWP_TYPE_SHIFT) - 1;

/// x86_64: `SWP_TYPE_BITS`.
const X64_SWP_TYPE_BITS: u32 = 5;
/// x86_64: `SWP_OFFSET_FIRST_BIT` (`_PAGE_BIT_PROTNONE + 1`).
const X64_SWP_OFFSET_FIRST_BIT: u32 = 9;
/// x86_64: `SWP_OFFSET_SHIFT`.
const X64_SWP_OFFSET_SHIFT: u32 = X64_SWP_OFFSET_FIRST_BIT + X64_SWP_TYPE_BITS;
/// x86_64: `_PAGE_SWP_EXCLUSIVE` (`_PAGE_PWT`, bit 3).
pub const X64_PAGE_SWP_EXCLUSIVE: u64 = 1 << 3;
/// i386 2-level: `_SWP_TYPE_SHIFT` (`_PAGE_BIT_PRESENT + 1`).
const I386_SWP_TYPE_SHIFT: u32 = 1;
/// i386 2-level: `SWP_OFFSET_SHIFT` (`_PAGE_BIT_PROTNONE + 1`).
const I386_SWP_OFFSET_SHIFT: u32 = 9;
/// i386 2-level: `_PAGE_SWP_EXCLUSIVE` (`_PAGE_PSE`, bit 7).
pub const I386_PAGE_SWP_EXCLUSIVE: u64 = 1 << 7;
/// The swap-only software bits of a swap PTE (soft dirty, uffd-wp, exclusive on x86_64;
/// exclusive on i386), cleared before decoding (`pte_swp_clear_flags`).
const fn swp_flag_bits(arch: Arch) -> u64 {
    match arch {
        Arch::X86_64 => (1 << 1) | (1 << 2) | X64_PAGE_SWP_EXCLUSIVE,
        Arch::I386 => I386_PAGE_SWP_EXCLUSIVE,
    }
}

/// A swap entry (`swp_entry_t`): an area (type) and a page offset in it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SwpEntry(u64);

impl core::fmt::Debug for SwpEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SwpEntry({}:{:#x})", self.swp_type(), self.offset())
    }
}

impl SwpEntry {
    /// `swp_entry(type, offset)`.
    pub const fn new(ty: usize, offset: u64) -> SwpEntry {
        SwpEntry(((ty as u64) << SWP_TYPE_SHIFT) | (offset & SWP_OFFSET_MASK))
    }
    /// The raw value (`entry.val`).
    pub const fn val(self) -> u64 {
        self.0
    }
    /// The entry with raw value `val`.
    pub const fn from_val(val: u64) -> SwpEntry {
        SwpEntry(val)
    }
    /// `swp_type`: the area index.
    pub const fn swp_type(self) -> usize {
        (self.0 >> SWP_TYPE_SHIFT) as usize
    }
    /// `swp_offset`: the page offset in the area.
    pub const fn offset(self) -> u64 {
        self.0 & SWP_OFFSET_MASK
    }

    /// `swp_entry_to_pte`: the non-present PTE value holding this entry on `arch`
    /// (`__swp_entry` then `__swp_entry_to_pte`), with `_PAGE_SWP_EXCLUSIVE` when
    /// `exclusive` (the anon page was exclusive to this mapping, `PG_anon_exclusive`).
    pub const fn to_pte(self, arch: Arch, exclusive: bool) -> u64 {
        let (ty, off) = (self.swp_type() as u64, self.offset());
        match arch {
            Arch::X86_64 => {
                let v = ((!off) << X64_SWP_OFFSET_SHIFT >> X64_SWP_TYPE_BITS)
                    | (ty << (64 - X64_SWP_TYPE_BITS));
                if exclusive {
                    v | X64_PAGE_SWP_EXCLUSIVE
                } else {
                    v
                }
            }
            Arch::I386 => {
                let v =
                    ((ty << I386_SWP_TYPE_SHIFT) | (off << I386_SWP_OFFSET_SHIFT)) & 0xffff_ffff;
                if exclusive {
                    v | I386_PAGE_SWP_EXCLUSIVE
                } else {
                    v
                }
            }
        }
    }

    /// `pte_to_swp_entry`: the entry held by the non-present, non-none PTE value `pte` on
    /// `arch` (the swap-only flag bits are ignored, as `pte_swp_clear_flags` does).
    pub const fn from_pte(arch: Arch, pte: u64) -> SwpEntry {
        let v = pte & !swp_flag_bits(arch);
        match arch {
            Arch::X86_64 => {
                let ty = v >> (64 - X64_SWP_TYPE_BITS);
                let off = (!v) << X64_SWP_TYPE_BITS >> X64_SWP_OFFSET_SHIFT;
                SwpEntry::new(ty as usize, off)
            }
            Arch::I386 => {
                let v = v & 0xffff_ffff;
                let ty = (v >> I386_SWP_TYPE_SHIFT) & ((1 << 5) - 1);
                SwpEntry::new(ty as usize, v >> I386_SWP_OFFSET_SHIFT)
            }
        }
    }
}

/// Whether the PTE value `pte` holds a swap entry: not present and not none
/// (`is_swap_pte`). PROT_NONE PTEs (`_PAGE_PROTNONE`, bit 8, without present) are present
/// to the kernel and are not swap PTEs.
pub const fn is_swap_pte(arch: Arch, pte: u64) -> bool {
    let v = match arch {
        Arch::X86_64 => pte,
        Arch::I386 => pte & 0xffff_ffff,
    };
    v != 0 && v & 1 == 0 && v & (1 << 8) == 0
}

/// Whether the swap PTE value `pte` carries `_PAGE_SWP_EXCLUSIVE`.
pub const fn pte_swp_exclusive(arch: Arch, pte: u64) -> bool {
    match arch {
        Arch::X86_64 => pte & X64_PAGE_SWP_EXCLUSIVE != 0,
        Arch::I386 => pte & I386_PAGE_SWP_EXCLUSIVE != 0,
    }
}

/// The number of pages a swap area may have on `arch` (`max_swapfile_size`): offsets must
/// fit the PTE's offset field, 50 bits on x86_64 — less the all-ones offset, which type 0
/// would encode as the none PTE (kmem does not model the L1TF limit below it) — and 23 on
/// i386 2-level.
pub const fn max_swapfile_pages(arch: Arch) -> u64 {
    match arch {
        Arch::X86_64 => (1 << (64 - X64_SWP_OFFSET_SHIFT)) - 1,
        Arch::I386 => 1 << (32 - I386_SWP_OFFSET_SHIFT),
    }
}

/// `SWP_HWPOISON` (include/linux/swap.h): the first type above the swap areas.
pub const SWP_HWPOISON: usize = MAX_SWAPFILES;
/// `SWP_MIGRATION_READ`: a migration entry for a PTE that was read-only.
pub const SWP_MIGRATION_READ: usize = MAX_SWAPFILES + 1;
/// `SWP_MIGRATION_READ_EXCLUSIVE`: read-only, but the anonymous page was exclusive to this
/// mapping (`PageAnonExclusive`).
pub const SWP_MIGRATION_READ_EXCLUSIVE: usize = MAX_SWAPFILES + 2;
/// `SWP_MIGRATION_WRITE`: a migration entry for a PTE that was writable.
pub const SWP_MIGRATION_WRITE: usize = MAX_SWAPFILES + 3;

/// `SWP_PFN_BITS` (include/linux/swapops.h: `MAX_PHYSMEM_BITS - PAGE_SHIFT`): 46 − 12 on
/// x86_64 with 4-level paging, 32 − 12 on i386 2-level. A migration entry's offset is the
/// PFN, with the old PTE's young and dirty bits just above it (`SWP_MIG_YOUNG_BIT`,
/// `SWP_MIG_DIRTY_BIT`); both architectures have room for them in the PTE's offset field
/// (`migration_entry_supports_ad`).
pub const fn swp_pfn_bits(arch: Arch) -> u32 {
    match arch {
        Arch::X86_64 => 46 - 12,
        Arch::I386 => 32 - 12,
    }
}

/// What a migration entry remembers of the PTE it replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrationEntry {
    /// The PFN of the page being migrated.
    pub pfn: u64,
    /// The PTE was writable (`SWP_MIGRATION_WRITE`).
    pub writable: bool,
    /// Read-only but exclusive (`SWP_MIGRATION_READ_EXCLUSIVE`).
    pub exclusive: bool,
    /// The PTE was young (`SWP_MIG_YOUNG`).
    pub young: bool,
    /// The PTE was dirty (`SWP_MIG_DIRTY`).
    pub dirty: bool,
}

impl MigrationEntry {
    /// `make_{readable,readable_exclusive,writable}_migration_entry` +
    /// `make_migration_entry_{young,dirty}`: the swap entry for `self` on `arch`.
    pub const fn to_swp_entry(self, arch: Arch) -> SwpEntry {
        let ty = if self.writable {
            SWP_MIGRATION_WRITE
        } else if self.exclusive {
            SWP_MIGRATION_READ_EXCLUSIVE
        } else {
            SWP_MIGRATION_READ
        };
        let bits = swp_pfn_bits(arch);
        let mut off = self.pfn & ((1 << bits) - 1);
        if self.young {
            off |= 1 << bits;
        }
        if self.dirty {
            off |= 1 << (bits + 1);
        }
        SwpEntry::new(ty, off)
    }
    /// The non-present PTE holding the entry (`swp_entry_to_pte`).
    pub const fn to_pte(self, arch: Arch) -> u64 {
        self.to_swp_entry(arch).to_pte(arch, false)
    }
    /// `is_migration_entry` + `swp_offset_pfn` and the A/D bits: the migration entry a PTE
    /// value holds, if it holds one.
    pub const fn from_pte(arch: Arch, pte: u64) -> Option<MigrationEntry> {
        if !is_swap_pte(arch, pte) {
            return None;
        }
        let e = SwpEntry::from_pte(arch, pte);
        let ty = e.swp_type();
        if ty != SWP_MIGRATION_READ
            && ty != SWP_MIGRATION_READ_EXCLUSIVE
            && ty != SWP_MIGRATION_WRITE
        {
            return None;
        }
        let bits = swp_pfn_bits(arch);
        let off = e.offset();
        Some(MigrationEntry {
            pfn: off & ((1 << bits) - 1),
            writable: ty == SWP_MIGRATION_WRITE,
            exclusive: ty == SWP_MIGRATION_READ_EXCLUSIVE,
            young: off & (1 << bits) != 0,
            dirty: off & (1 << (bits + 1)) != 0,
        })
    }
}

/// `is_migration_entry` on a PTE value.
pub const fn is_migration_pte(arch: Arch, pte: u64) -> bool {
    MigrationEntry::from_pte(arch, pte).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_entries_use_swapops_types_and_keep_pfn_and_ad_bits() {
        assert_eq!(
            (
                SWP_MIGRATION_READ,
                SWP_MIGRATION_READ_EXCLUSIVE,
                SWP_MIGRATION_WRITE
            ),
            (28, 29, 30)
        );
        for arch in [Arch::X86_64, Arch::I386] {
            let max_pfn = (1u64 << swp_pfn_bits(arch)) - 1;
            // swapops.h: A/D bits fit when the offset field holds SWP_MIG_TOTAL_BITS.
            assert!(max_swapfile_pages(arch) >= 1u64 << (swp_pfn_bits(arch) + 2));
            for pfn in [0, 1, 0x12345, max_pfn] {
                for bits in 0..16u32 {
                    let m = MigrationEntry {
                        pfn,
                        writable: bits & 1 != 0,
                        exclusive: bits & 1 == 0 && bits & 2 != 0,
                        young: bits & 4 != 0,
                        dirty: bits & 8 != 0,
                    };
                    let pte = m.to_pte(arch);
                    assert!(is_swap_pte(arch, pte), "{arch:?} {m:?}");
                    assert_eq!(MigrationEntry::from_pte(arch, pte), Some(m));
                    assert!(is_migration_pte(arch, pte));
                }
            }
            // An ordinary swap entry is no migration entry.
            let pte = SwpEntry::new(3, 77).to_pte(arch, true);
            assert_eq!(MigrationEntry::from_pte(arch, pte), None);
        }
    }

    #[test]
    fn generic_entry_packs_type_above_offset() {
        let e = SwpEntry::new(3, 0x1234);
        assert_eq!(e.val(), (3 << 58) | 0x1234);
        assert_eq!(e.swp_type(), 3);
        assert_eq!(e.offset(), 0x1234);
    }

    #[test]
    fn x86_64_pte_layout_matches_pgtable_64() {
        // type 0, offset 1: ~1 shifted into bits 9..58, type bits 59..63 zero.
        let pte = SwpEntry::new(0, 1).to_pte(Arch::X86_64, false);
        assert_eq!(
            pte & 0x1ff,
            0,
            "P, A, D, PSE, PROTNONE and the soft bits clear"
        );
        assert_eq!(pte >> 59, 0);
        assert_eq!((pte >> 9) & 1, 0, "offset bit 0 is stored inverted");
        assert_eq!((pte >> 10) & 1, 1);
        let pte = SwpEntry::new(5, 0).to_pte(Arch::X86_64, true);
        assert_eq!(pte >> 59, 5);
        assert_eq!(pte & X64_PAGE_SWP_EXCLUSIVE, X64_PAGE_SWP_EXCLUSIVE);
        assert_eq!(pte & 0x1ff, X64_PAGE_SWP_EXCLUSIVE);
        assert!(is_swap_pte(Arch::X86_64, pte));
        assert!(pte_swp_exclusive(Arch::X86_64, pte));
    }

    #[test]
    fn i386_pte_layout_matches_pgtable_2level() {
        let pte = SwpEntry::new(2, 0x345).to_pte(Arch::I386, false);
        assert_eq!(pte, (2 << 1) | (0x345 << 9));
        assert!(is_swap_pte(Arch::I386, pte));
        assert!(!pte_swp_exclusive(Arch::I386, pte));
    }

    #[test]
    fn round_trips_on_both_architectures() {
        for arch in [Arch::X86_64, Arch::I386] {
            let max = max_swapfile_pages(arch);
            for ty in [0, 1, 7, MAX_SWAPFILES - 1] {
                for off in [0, 1, 2, 0xff, 65535, max - 1] {
                    let e = SwpEntry::new(ty, off);
                    for excl in [false, true] {
                        let pte = e.to_pte(arch, excl);
                        assert!(is_swap_pte(arch, pte) || (ty == 0 && off == 0 && !excl));
                        assert_eq!(SwpEntry::from_pte(arch, pte), e, "{arch:?} {e:?}");
                        assert_eq!(pte_swp_exclusive(arch, pte), excl);
                    }
                }
            }
        }
    }

    #[test]
    fn present_and_none_ptes_are_not_swap_ptes() {
        assert!(!is_swap_pte(Arch::X86_64, 0));
        assert!(!is_swap_pte(Arch::X86_64, 0x1000 | 0x67));
        assert!(!is_swap_pte(Arch::X86_64, 0x1000 | (1 << 8)), "PROT_NONE");
        assert!(!is_swap_pte(Arch::I386, 0));
    }
}
