//! GFP ("get free pages") flags with Linux's bit values, composites and text form.
//!
//! Bit numbers follow the `___GFP_*_BIT` enum of include/linux/gfp_types.h (Linux 6.x: the old
//! `___GFP_ATOMIC` bit 9 is unused). The text form is the one the kmem trace events print
//! (`show_gfp_flags` in include/trace/events/mmflags.h): composites first, in the order
//! `GFP_TRANSHUGE, GFP_TRANSHUGE_LIGHT, GFP_HIGHUSER_MOVABLE, GFP_HIGHUSER, GFP_USER,
//! GFP_KERNEL_ACCOUNT, GFP_KERNEL, GFP_NOFS, GFP_ATOMIC, GFP_NOIO, GFP_NOWAIT, GFP_DMA,
//! GFP_DMA32, __GFP_RECLAIM`, then the single bits in bit order, joined by `|`.

#![forbid(unsafe_code)]

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign, Not};

/// A set of GFP flags (`gfp_t`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct GfpFlags(u32);

macro_rules! gfp_bits {
    ($( $(#[$m:meta])* $name:ident = $bit:expr, $text:literal; )*) => {
        impl GfpFlags {
            $( $(#[$m])* pub const $name: GfpFlags = GfpFlags(1 << $bit); )*
        }
        /// Single-bit flags in bit order, with their Linux names.
        const BIT_NAMES: &[(GfpFlags, &str)] = &[ $( (GfpFlags::$name, $text), )* ];
    };
}

gfp_bits! {
    /// `__GFP_DMA`: allocate from ZONE_DMA (below 16 MiB).
    __GFP_DMA = 0, "__GFP_DMA";
    /// `__GFP_HIGHMEM`: ZONE_HIGHMEM may be used (the page may have no kernel mapping).
    __GFP_HIGHMEM = 1, "__GFP_HIGHMEM";
    /// `__GFP_DMA32`: allocate below 4 GiB.
    __GFP_DMA32 = 2, "__GFP_DMA32";
    /// `__GFP_MOVABLE`: the page can be migrated; MIGRATE_MOVABLE pageblocks.
    __GFP_MOVABLE = 3, "__GFP_MOVABLE";
    /// `__GFP_RECLAIMABLE`: slab pages that a shrinker can free; MIGRATE_RECLAIMABLE.
    __GFP_RECLAIMABLE = 4, "__GFP_RECLAIMABLE";
    /// `__GFP_HIGH`: high priority; may dip into part of the min watermark reserve.
    __GFP_HIGH = 5, "__GFP_HIGH";
    /// `__GFP_IO`: may start physical I/O.
    __GFP_IO = 6, "__GFP_IO";
    /// `__GFP_FS`: may call into the filesystem layer.
    __GFP_FS = 7, "__GFP_FS";
    /// `__GFP_ZERO`: return zeroed memory.
    __GFP_ZERO = 8, "__GFP_ZERO";
    /// `__GFP_DIRECT_RECLAIM`: the caller may sleep and reclaim directly.
    __GFP_DIRECT_RECLAIM = 10, "__GFP_DIRECT_RECLAIM";
    /// `__GFP_KSWAPD_RECLAIM`: wake kswapd when the low watermark is reached.
    __GFP_KSWAPD_RECLAIM = 11, "__GFP_KSWAPD_RECLAIM";
    /// `__GFP_WRITE`: the caller intends to dirty the page.
    __GFP_WRITE = 12, "__GFP_WRITE";
    /// `__GFP_NOWARN`: no allocation-failure report.
    __GFP_NOWARN = 13, "__GFP_NOWARN";
    /// `__GFP_RETRY_MAYFAIL`: retry hard, but may fail.
    __GFP_RETRY_MAYFAIL = 14, "__GFP_RETRY_MAYFAIL";
    /// `__GFP_NOFAIL`: the caller cannot handle failure (kmem still returns `None` when memory
    /// is truly gone, and warns).
    __GFP_NOFAIL = 15, "__GFP_NOFAIL";
    /// `__GFP_NORETRY`: fail early rather than retry.
    __GFP_NORETRY = 16, "__GFP_NORETRY";
    /// `__GFP_MEMALLOC`: may use all reserves (memory-freeing paths only).
    __GFP_MEMALLOC = 17, "__GFP_MEMALLOC";
    /// `__GFP_COMP`: build a compound page (head + tails).
    __GFP_COMP = 18, "__GFP_COMP";
    /// `__GFP_NOMEMALLOC`: never use the emergency reserves.
    __GFP_NOMEMALLOC = 19, "__GFP_NOMEMALLOC";
    /// `__GFP_HARDWALL`: enforce the cpuset memory policy.
    __GFP_HARDWALL = 20, "__GFP_HARDWALL";
    /// `__GFP_THISNODE`: no fallback to other nodes.
    __GFP_THISNODE = 21, "__GFP_THISNODE";
    /// `__GFP_ACCOUNT`: charge to the memory cgroup.
    __GFP_ACCOUNT = 22, "__GFP_ACCOUNT";
    /// `__GFP_ZEROTAGS`: zero memory tags along with the memory.
    __GFP_ZEROTAGS = 23, "__GFP_ZEROTAGS";
    /// `__GFP_NOTRACK`: kmemcheck does not track the allocation (Linux 4.14's bit 21, taken
    /// by `__GFP_THISNODE` since; kmem gives it a bit above 6.x's flags).
    __GFP_NOTRACK = 28, "__GFP_NOTRACK";
}

#[allow(non_upper_case_globals)]
impl GfpFlags {
    /// No flags.
    pub const empty: GfpFlags = GfpFlags(0);
    /// `__GFP_RECLAIM`: direct and kswapd reclaim.
    pub const __GFP_RECLAIM: GfpFlags =
        GfpFlags(Self::__GFP_DIRECT_RECLAIM.0 | Self::__GFP_KSWAPD_RECLAIM.0);
    /// `GFP_ZONEMASK`: the zone modifier bits.
    pub const GFP_ZONEMASK: GfpFlags = GfpFlags(
        Self::__GFP_DMA.0 | Self::__GFP_HIGHMEM.0 | Self::__GFP_DMA32.0 | Self::__GFP_MOVABLE.0,
    );
    /// `GFP_MOVABLE_MASK`: the migratetype bits.
    pub const GFP_MOVABLE_MASK: GfpFlags =
        GfpFlags(Self::__GFP_RECLAIMABLE.0 | Self::__GFP_MOVABLE.0);
    /// `GFP_ATOMIC`: cannot sleep, may use reserves (`__GFP_HIGH|__GFP_KSWAPD_RECLAIM`).
    pub const GFP_ATOMIC: GfpFlags = GfpFlags(Self::__GFP_HIGH.0 | Self::__GFP_KSWAPD_RECLAIM.0);
    /// `GFP_KERNEL`: normal kernel allocation; may sleep, do I/O and call the filesystem.
    pub const GFP_KERNEL: GfpFlags =
        GfpFlags(Self::__GFP_RECLAIM.0 | Self::__GFP_IO.0 | Self::__GFP_FS.0);
    /// `GFP_KERNEL_ACCOUNT`: `GFP_KERNEL` charged to the memory cgroup.
    pub const GFP_KERNEL_ACCOUNT: GfpFlags = GfpFlags(Self::GFP_KERNEL.0 | Self::__GFP_ACCOUNT.0);
    /// `GFP_NOWAIT`: cannot sleep, no reserves, no warning (6.18: `__GFP_KSWAPD_RECLAIM|__GFP_NOWARN`).
    pub const GFP_NOWAIT: GfpFlags = GfpFlags(Self::__GFP_KSWAPD_RECLAIM.0 | Self::__GFP_NOWARN.0);
    /// `GFP_NOIO`: may sleep and reclaim, but no I/O.
    pub const GFP_NOIO: GfpFlags = GfpFlags(Self::__GFP_RECLAIM.0);
    /// `GFP_NOFS`: may sleep and do I/O, but not call the filesystem.
    pub const GFP_NOFS: GfpFlags = GfpFlags(Self::__GFP_RECLAIM.0 | Self::__GFP_IO.0);
    /// `GFP_USER`: for user-space mappings the kernel also touches.
    pub const GFP_USER: GfpFlags = GfpFlags(
        Self::__GFP_RECLAIM.0 | Self::__GFP_IO.0 | Self::__GFP_FS.0 | Self::__GFP_HARDWALL.0,
    );
    /// `GFP_DMA`: from ZONE_DMA.
    pub const GFP_DMA: GfpFlags = Self::__GFP_DMA;
    /// `GFP_DMA32`: from ZONE_DMA32.
    pub const GFP_DMA32: GfpFlags = Self::__GFP_DMA32;
    /// `GFP_HIGHUSER`: user pages that may live in HighMem.
    pub const GFP_HIGHUSER: GfpFlags = GfpFlags(Self::GFP_USER.0 | Self::__GFP_HIGHMEM.0);
    /// `GFP_HIGHUSER_MOVABLE`: movable user pages that may live in HighMem.
    pub const GFP_HIGHUSER_MOVABLE: GfpFlags =
        GfpFlags(Self::GFP_HIGHUSER.0 | Self::__GFP_MOVABLE.0);
    /// `GFP_TRANSHUGE_LIGHT`: THP allocation without direct reclaim.
    pub const GFP_TRANSHUGE_LIGHT: GfpFlags = GfpFlags(
        (Self::GFP_HIGHUSER_MOVABLE.0
            | Self::__GFP_COMP.0
            | Self::__GFP_NOMEMALLOC.0
            | Self::__GFP_NOWARN.0)
            & !Self::__GFP_RECLAIM.0,
    );
    /// `GFP_TRANSHUGE`: THP allocation with direct reclaim.
    pub const GFP_TRANSHUGE: GfpFlags =
        GfpFlags(Self::GFP_TRANSHUGE_LIGHT.0 | Self::__GFP_DIRECT_RECLAIM.0);
}

/// Composite names tried first when printing, in Linux's order.
const COMPOSITE_NAMES: &[(GfpFlags, &str)] = &[
    (GfpFlags::GFP_TRANSHUGE, "GFP_TRANSHUGE"),
    (GfpFlags::GFP_TRANSHUGE_LIGHT, "GFP_TRANSHUGE_LIGHT"),
    (GfpFlags::GFP_HIGHUSER_MOVABLE, "GFP_HIGHUSER_MOVABLE"),
    (GfpFlags::GFP_HIGHUSER, "GFP_HIGHUSER"),
    (GfpFlags::GFP_USER, "GFP_USER"),
    (GfpFlags::GFP_KERNEL_ACCOUNT, "GFP_KERNEL_ACCOUNT"),
    (GfpFlags::GFP_KERNEL, "GFP_KERNEL"),
    (GfpFlags::GFP_NOFS, "GFP_NOFS"),
    (GfpFlags::GFP_ATOMIC, "GFP_ATOMIC"),
    (GfpFlags::GFP_NOIO, "GFP_NOIO"),
    (GfpFlags::GFP_NOWAIT, "GFP_NOWAIT"),
    (GfpFlags::GFP_DMA, "GFP_DMA"),
    (GfpFlags::GFP_DMA32, "GFP_DMA32"),
    (GfpFlags::__GFP_RECLAIM, "__GFP_RECLAIM"),
];

/// Error from [`GfpFlags::parse`]: an unknown flag name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownGfpFlag<'a>(pub &'a str);

impl fmt::Display for UnknownGfpFlag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown GFP flag `{}`", self.0)
    }
}

impl GfpFlags {
    /// Creates flags from raw bits (as printed by `mode:0x…`).
    #[inline]
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }
    /// The raw bits.
    #[inline]
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// Whether every flag of `other` is set.
    #[inline]
    pub const fn contains(self, other: GfpFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether any flag of `other` is set.
    #[inline]
    pub const fn intersects(self, other: GfpFlags) -> bool {
        self.0 & other.0 != 0
    }
    /// Union.
    #[inline]
    pub const fn union(self, other: GfpFlags) -> Self {
        Self(self.0 | other.0)
    }
    /// Removes the flags of `other`.
    #[inline]
    pub const fn without(self, other: GfpFlags) -> Self {
        Self(self.0 & !other.0)
    }
    /// `gfpflags_allow_blocking`: whether the caller may sleep (direct reclaim).
    #[inline]
    pub const fn allows_blocking(self) -> bool {
        self.contains(Self::__GFP_DIRECT_RECLAIM)
    }

    /// Parses Linux's text form, e.g. `GFP_KERNEL|__GFP_ZERO`, also accepting a hex number
    /// (`0xcc0`) and spaces around `|`.
    ///
    /// # Errors
    /// The first name that is not a GFP flag.
    pub fn parse(s: &str) -> Result<GfpFlags, UnknownGfpFlag<'_>> {
        let mut out = 0u32;
        for part in s.split('|') {
            let p = part.trim();
            if let Some(hex) = p.strip_prefix("0x") {
                out |= u32::from_str_radix(hex, 16).map_err(|_| UnknownGfpFlag(p))?;
                continue;
            }
            if p == "0" {
                continue;
            }
            let found = COMPOSITE_NAMES
                .iter()
                .chain(BIT_NAMES.iter())
                .chain([(GfpFlags::__GFP_RECLAIM, "__GFP_RECLAIM")].iter())
                .find(|(_, n)| *n == p)
                .map(|(f, _)| f.0)
                .or(match p {
                    "GFP_NOWARN" => Some(Self::__GFP_NOWARN.0),
                    "__GFP_ATOMIC" => Some(Self::GFP_ATOMIC.0),
                    _ => None,
                });
            out |= found.ok_or(UnknownGfpFlag(p))?;
        }
        Ok(GfpFlags(out))
    }
}

impl fmt::Display for GfpFlags {
    /// Linux's text form; `0` prints as `0x0`, unknown bits as a trailing hex value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        let mut first = true;
        let mut emit = |f: &mut fmt::Formatter<'_>, s: &dyn fmt::Display| -> fmt::Result {
            if !first {
                f.write_str("|")?;
            }
            first = false;
            write!(f, "{s}")
        };
        for (flag, name) in COMPOSITE_NAMES.iter().chain(BIT_NAMES.iter()) {
            if flag.0 != 0 && rest & flag.0 == flag.0 {
                emit(f, name)?;
                rest &= !flag.0;
            }
        }
        if rest != 0 {
            emit(f, &format_args!("{rest:#x}"))?;
        }
        if first {
            f.write_str("0x0")?;
        }
        Ok(())
    }
}

impl fmt::Debug for GfpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}({})", self.0, self)
    }
}

impl BitOr for GfpFlags {
    type Output = GfpFlags;
    #[inline]
    fn bitor(self, rhs: GfpFlags) -> GfpFlags {
        GfpFlags(self.0 | rhs.0)
    }
}
impl BitOrAssign for GfpFlags {
    #[inline]
    fn bitor_assign(&mut self, rhs: GfpFlags) {
        self.0 |= rhs.0;
    }
}
impl BitAnd for GfpFlags {
    type Output = GfpFlags;
    #[inline]
    fn bitand(self, rhs: GfpFlags) -> GfpFlags {
        GfpFlags(self.0 & rhs.0)
    }
}
impl Not for GfpFlags {
    type Output = GfpFlags;
    #[inline]
    fn not(self) -> GfpFlags {
        GfpFlags(!self.0)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn linux_values() {
        assert_eq!(GfpFlags::GFP_KERNEL.bits(), 0xcc0);
        assert_eq!(GfpFlags::GFP_ATOMIC.bits(), 0x820);
        assert_eq!(GfpFlags::GFP_NOFS.bits(), 0xc40);
        assert_eq!(GfpFlags::GFP_USER.bits(), 0x100cc0);
        assert_eq!(GfpFlags::GFP_HIGHUSER_MOVABLE.bits(), 0x100cca);
        assert_eq!(GfpFlags::__GFP_COMP.bits(), 0x40000);
    }

    #[test]
    fn text_round_trip_as_in_traces() {
        for s in [
            "GFP_KERNEL",
            "GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP",
            "GFP_NOFS|__GFP_HIGHMEM|__GFP_MOVABLE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP|__GFP_HARDWALL",
            "__GFP_RECLAIMABLE|__GFP_IO|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP|__GFP_NOMEMALLOC",
            "GFP_NOFS|__GFP_MOVABLE|__GFP_ZERO|__GFP_NOFAIL|__GFP_HARDWALL|__GFP_ACCOUNT",
            "GFP_KERNEL_ACCOUNT|__GFP_ZERO|__GFP_COMP",
            "GFP_ATOMIC|__GFP_NOWARN|__GFP_NORETRY|__GFP_NOMEMALLOC",
            "GFP_NOWAIT|__GFP_ACCOUNT",
            "GFP_DMA",
        ] {
            let g = GfpFlags::parse(s).unwrap();
            assert_eq!(format!("{g}"), s);
        }
        assert!(GfpFlags::parse("GFP_BOGUS").is_err());
        assert_eq!(format!("{}", GfpFlags::empty), "0x0");
    }
}
