//! Zones (include/linux/mmzone.h): ranges of physical memory with different addressing
//! properties, each with its own buddy free areas.

/// `enum zone_type`, in Linux's order. Which zones exist depends on the machine: x86_64 has
/// DMA, DMA32 and Normal; i386 has DMA, Normal and HighMem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ZoneType {
    /// `ZONE_DMA`: below 16 MiB, for ISA DMA.
    Dma = 0,
    /// `ZONE_DMA32`: below 4 GiB (x86_64 only).
    Dma32 = 1,
    /// `ZONE_NORMAL`: permanently mapped by the kernel.
    Normal = 2,
    /// `ZONE_HIGHMEM`: above the direct map (i386: above 896 MiB); mapped on demand.
    HighMem = 3,
}

/// `MAX_NR_ZONES` as modelled (DMA, DMA32, Normal, HighMem).
pub const MAX_NR_ZONES: usize = 4;

impl ZoneType {
    /// All zone types, lowest first.
    pub const ALL: [ZoneType; MAX_NR_ZONES] =
        [ZoneType::Dma, ZoneType::Dma32, ZoneType::Normal, ZoneType::HighMem];

    /// The zone type with index `i` (`i < MAX_NR_ZONES`; larger values map to HighMem).
    #[inline]
    pub const fn from_index(i: usize) -> ZoneType {
        match i {
            0 => ZoneType::Dma,
            1 => ZoneType::Dma32,
            2 => ZoneType::Normal,
            _ => ZoneType::HighMem,
        }
    }
    /// The zone's index.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
    /// The name Linux prints (`zone_names[]` in mm/page_alloc.c).
    pub const fn name(self) -> &'static str {
        match self {
            ZoneType::Dma => "DMA",
            ZoneType::Dma32 => "DMA32",
            ZoneType::Normal => "Normal",
            ZoneType::HighMem => "HighMem",
        }
    }
}
