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
    /// `ZONE_MOVABLE`: only movable allocations (empty unless `movablecore=` is given).
    Movable = 4,
    /// `ZONE_DEVICE`: device memory (always empty here).
    Device = 5,
}

/// Number of zone kinds kmem knows. Which of them a machine configures depends on its
/// architecture ([`crate::arch::Arch::zones`]), as Linux's `MAX_NR_ZONES` depends on config.
pub const NR_ZONE_KINDS: usize = 6;

impl ZoneType {
    /// All zone types, lowest first.
    pub const ALL: [ZoneType; NR_ZONE_KINDS] = [
        ZoneType::Dma,
        ZoneType::Dma32,
        ZoneType::Normal,
        ZoneType::HighMem,
        ZoneType::Movable,
        ZoneType::Device,
    ];

    /// The zone type with index `i` (`i < NR_ZONE_KINDS`; larger values map to Device).
    #[inline]
    pub const fn from_index(i: usize) -> ZoneType {
        match i {
            0 => ZoneType::Dma,
            1 => ZoneType::Dma32,
            2 => ZoneType::Normal,
            3 => ZoneType::HighMem,
            4 => ZoneType::Movable,
            _ => ZoneType::Device,
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
            ZoneType::Movable => "Movable",
            ZoneType::Device => "Device",
        }
    }
}
