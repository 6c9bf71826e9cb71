//! Address vocabulary: physical addresses, kernel virtual addresses, page frame numbers and
//! allocation orders, as newtypes.
//!
//! A [`VirtAddr`] is always a *real* pointer value in the running program (on the hosted
//! platform, a host pointer into the memfd mapping; on bare metal, the CPU's virtual address).
//! Addresses shown to people use the simulated machine's layout (e.g. `0xc0123000` on i386);
//! the one translation between the two lives in [`crate::arch::AddrTranslation`].

use core::fmt;

/// log2 of the page size (include/asm-generic/page.h, arch/x86/include/asm/page_types.h).
pub const PAGE_SHIFT: u32 = 12;
/// The page size, 4 KiB.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// Mask that clears the offset within a page.
pub const PAGE_MASK: u64 = !((PAGE_SIZE as u64) - 1);

/// Error of the `try_new` constructors: the value is not valid for the type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidValue(pub u64);

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid value {:#x}", self.0)
    }
}

macro_rules! addr_common {
    ($t:ident, $repr:ty) => {
        impl $t {
            /// Returns the raw value.
            #[inline]
            pub const fn as_u64(self) -> u64 {
                self.0 as u64
            }
            /// Whether the address is a multiple of `align` (a power of two).
            #[inline]
            pub const fn is_aligned(self, align: u64) -> bool {
                (self.0 as u64) & (align - 1) == 0
            }
            /// Rounds down to a multiple of `align` (a power of two).
            #[inline]
            pub const fn align_down(self, align: u64) -> Self {
                Self((self.0 as u64 & !(align - 1)) as $repr)
            }
            /// The offset within the page.
            #[inline]
            pub const fn page_offset(self) -> usize {
                (self.0 as u64 & !PAGE_MASK) as usize
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($t), "({:#x})"), self.0)
            }
        }
        impl fmt::LowerHex for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
        impl core::ops::Sub<$t> for $t {
            type Output = u64;
            #[inline]
            fn sub(self, rhs: $t) -> u64 {
                self.0 as u64 - rhs.0 as u64
            }
        }
    };
}

/// A physical address (`phys_addr_t`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct PhysAddr(u64);

/// The largest physical address kmem models: 52 bits, x86_64's architectural limit.
pub const MAX_PHYSADDR_BITS: u32 = 52;

/// `PHYS_ADDR_MAX` (include/linux/types.h: `~(phys_addr_t)0`): the largest physical address.
/// kmem's `phys_addr_t` is [`MAX_PHYSADDR_BITS`] wide, so this is `2^52 - 1`; memblock caps
/// every range at it (`memblock_cap_size`), so a region ends at most here.
pub const PHYS_ADDR_MAX: PhysAddr = PhysAddr((1 << MAX_PHYSADDR_BITS) - 1);

impl PhysAddr {
    /// Creates a physical address.
    ///
    /// # Panics
    /// If `addr` has bits set above bit 51 (see [`MAX_PHYSADDR_BITS`]).
    #[inline]
    pub const fn new(addr: u64) -> Self {
        match Self::try_new(addr) {
            Ok(a) => a,
            Err(_) => panic!("physical address wider than 52 bits"),
        }
    }
    /// Creates a physical address, or fails if it has bits above bit 51.
    #[inline]
    pub const fn try_new(addr: u64) -> Result<Self, InvalidValue> {
        if addr >> MAX_PHYSADDR_BITS == 0 {
            Ok(Self(addr))
        } else {
            Err(InvalidValue(addr))
        }
    }
    /// Creates a physical address without checking its width.
    ///
    /// # Safety
    /// `addr` must fit in [`MAX_PHYSADDR_BITS`] bits; code relies on that for PFN arithmetic.
    #[inline]
    pub const unsafe fn new_unchecked(addr: u64) -> Self {
        Self(addr)
    }
    /// The frame containing this address (`PHYS_PFN`).
    #[inline]
    pub const fn pfn(self) -> Pfn {
        Pfn(self.0 >> PAGE_SHIFT)
    }
    /// `self + rhs`, or `None` past [`PHYS_ADDR_MAX`].
    #[inline]
    pub const fn checked_add(self, rhs: u64) -> Option<Self> {
        match self.0.checked_add(rhs) {
            Some(v) if v >> MAX_PHYSADDR_BITS == 0 => Some(Self(v)),
            _ => None,
        }
    }
    /// `self + rhs`, stopping at [`PHYS_ADDR_MAX`].
    #[inline]
    pub const fn saturating_add(self, rhs: u64) -> Self {
        match self.checked_add(rhs) {
            Some(a) => a,
            None => PHYS_ADDR_MAX,
        }
    }
    /// Rounds up to a multiple of `align` (a power of two), or `None` past
    /// [`PHYS_ADDR_MAX`].
    #[inline]
    pub const fn checked_align_up(self, align: u64) -> Option<Self> {
        match self.checked_add(align - 1) {
            Some(a) => Some(Self(a.0 & !(align - 1))),
            None => None,
        }
    }
    /// Rounds up to a multiple of `align` (a power of two).
    ///
    /// # Panics
    /// If the result is past [`PHYS_ADDR_MAX`] ("physical address overflow"); see
    /// [`PhysAddr::checked_align_up`].
    #[inline]
    pub const fn align_up(self, align: u64) -> Self {
        match self.checked_align_up(align) {
            Some(a) => a,
            None => panic!("physical address overflow"),
        }
    }
}
addr_common!(PhysAddr, u64);

/// Adds a byte offset.
///
/// # Panics
/// If the sum is past [`PHYS_ADDR_MAX`] ("physical address overflow"), as integer addition
/// panics on overflow; see [`PhysAddr::checked_add`].
impl core::ops::Add<u64> for PhysAddr {
    type Output = PhysAddr;
    #[inline]
    fn add(self, rhs: u64) -> PhysAddr {
        match self.checked_add(rhs) {
            Some(a) => a,
            None => panic!("physical address overflow"),
        }
    }
}

/// A kernel virtual address: a real pointer value in this program.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct VirtAddr(usize);

impl VirtAddr {
    /// Creates a virtual address from a pointer-sized value.
    #[inline]
    pub const fn new(addr: usize) -> Self {
        Self(addr)
    }
    /// Creates a virtual address from a pointer.
    #[inline]
    pub fn from_ptr<T>(p: *const T) -> Self {
        Self(p as usize)
    }
    /// The address as a pointer.
    #[inline]
    pub const fn as_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }
    /// The address as `usize`.
    #[inline]
    pub const fn as_usize(self) -> usize {
        self.0
    }
    /// Whether this is the null address.
    #[inline]
    pub const fn is_null(self) -> bool {
        self.0 == 0
    }
}
addr_common!(VirtAddr, usize);

impl VirtAddr {
    /// Rounds up to a multiple of `align` (a power of two).
    #[inline]
    pub const fn align_up(self, align: u64) -> Self {
        Self(((self.0 as u64 + align - 1) & !(align - 1)) as usize)
    }
}

impl core::ops::Add<u64> for VirtAddr {
    type Output = VirtAddr;
    #[inline]
    fn add(self, rhs: u64) -> VirtAddr {
        VirtAddr((self.0 as u64 + rhs) as usize)
    }
}

/// A page frame number: physical address >> [`PAGE_SHIFT`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Pfn(u64);

impl Pfn {
    /// Creates a PFN.
    ///
    /// # Panics
    /// If the frame's address would not fit in 52 bits.
    #[inline]
    pub const fn new(pfn: u64) -> Self {
        match Self::try_new(pfn) {
            Ok(p) => p,
            Err(_) => panic!("PFN beyond the 52-bit physical address space"),
        }
    }
    /// Creates a PFN, or fails if the frame's address would not fit in 52 bits.
    #[inline]
    pub const fn try_new(pfn: u64) -> Result<Self, InvalidValue> {
        if pfn >> (MAX_PHYSADDR_BITS - PAGE_SHIFT) == 0 {
            Ok(Self(pfn))
        } else {
            Err(InvalidValue(pfn))
        }
    }
    /// The raw frame number.
    #[inline]
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    /// The raw frame number as an index.
    #[inline]
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }
    /// The physical address of the frame's first byte (`PFN_PHYS`).
    #[inline]
    pub const fn phys(self) -> PhysAddr {
        PhysAddr(self.0 << PAGE_SHIFT)
    }
    /// The buddy of the block of `order` starting here (`__find_buddy_pfn`: `pfn ^ (1 << order)`).
    #[inline]
    pub const fn buddy(self, order: Order) -> Pfn {
        Pfn(self.0 ^ (1 << order.0))
    }
    /// Whether the frame number is a multiple of `1 << order`.
    #[inline]
    pub const fn is_aligned_to(self, order: Order) -> bool {
        self.0 & ((1 << order.0) - 1) == 0
    }
}

impl fmt::Debug for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pfn({:#x})", self.0)
    }
}
impl fmt::LowerHex for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}
impl core::ops::Add<u64> for Pfn {
    type Output = Pfn;
    #[inline]
    fn add(self, rhs: u64) -> Pfn {
        Pfn(self.0 + rhs)
    }
}
impl core::ops::Sub<Pfn> for Pfn {
    type Output = u64;
    #[inline]
    fn sub(self, rhs: Pfn) -> u64 {
        self.0 - rhs.0
    }
}

/// `MAX_PAGE_ORDER` (include/linux/mmzone.h; 10 on x86 with 4 KiB pages).
pub const MAX_PAGE_ORDER: u32 = 10;
/// `NR_PAGE_ORDERS`: the number of free areas per zone.
pub const NR_PAGE_ORDERS: usize = MAX_PAGE_ORDER as usize + 1;

/// An allocation order: a block of `1 << order` pages. Valid orders are `0..=MAX_PAGE_ORDER`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
#[repr(transparent)]
pub struct Order(u32);

impl Order {
    /// Order 0: one page.
    pub const ZERO: Order = Order(0);
    /// The largest buddy order, [`MAX_PAGE_ORDER`].
    pub const MAX: Order = Order(MAX_PAGE_ORDER);

    /// Creates an order.
    ///
    /// # Panics
    /// If `order > MAX_PAGE_ORDER`.
    #[inline]
    pub const fn new(order: u32) -> Self {
        match Self::try_new(order) {
            Ok(o) => o,
            Err(_) => panic!("order above MAX_PAGE_ORDER"),
        }
    }
    /// Creates an order, or fails if it is above [`MAX_PAGE_ORDER`].
    #[inline]
    pub const fn try_new(order: u32) -> Result<Self, InvalidValue> {
        if order <= MAX_PAGE_ORDER {
            Ok(Self(order))
        } else {
            Err(InvalidValue(order as u64))
        }
    }
    /// Creates an order without checking it.
    ///
    /// # Safety
    /// `order` must be at most [`MAX_PAGE_ORDER`]; free-area indexing relies on it.
    #[inline]
    pub const unsafe fn new_unchecked(order: u32) -> Self {
        Self(order)
    }
    /// The smallest order whose block holds `size` bytes (`get_order`); `None` when above
    /// [`MAX_PAGE_ORDER`].
    #[inline]
    pub const fn for_size(size: usize) -> Option<Self> {
        let pages = if size == 0 {
            1
        } else {
            size.div_ceil(PAGE_SIZE)
        };
        let o = pages.next_power_of_two().trailing_zeros();
        if o <= MAX_PAGE_ORDER {
            Some(Self(o))
        } else {
            None
        }
    }
    /// The raw order.
    #[inline]
    pub const fn as_u32(self) -> u32 {
        self.0
    }
    /// The raw order as an index.
    #[inline]
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }
    /// Pages in a block of this order.
    #[inline]
    pub const fn pages(self) -> usize {
        1 << self.0
    }
    /// Bytes in a block of this order.
    #[inline]
    pub const fn bytes(self) -> usize {
        PAGE_SIZE << self.0
    }
    /// The next order up, if any.
    #[inline]
    pub const fn succ(self) -> Option<Self> {
        if self.0 < MAX_PAGE_ORDER {
            Some(Self(self.0 + 1))
        } else {
            None
        }
    }
    /// The next order down, if any.
    #[inline]
    pub const fn pred(self) -> Option<Self> {
        if self.0 > 0 {
            Some(Self(self.0 - 1))
        } else {
            None
        }
    }
    /// Iterates over all orders `0..=MAX_PAGE_ORDER`.
    pub fn all() -> impl DoubleEndedIterator<Item = Order> {
        (0..=MAX_PAGE_ORDER).map(Order)
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buddy_and_orders() {
        assert_eq!(Pfn::new(8).buddy(Order::new(3)), Pfn::new(0));
        assert_eq!(Pfn::new(0).buddy(Order::new(0)), Pfn::new(1));
        assert_eq!(Order::for_size(1), Some(Order::new(0)));
        assert_eq!(Order::for_size(4097), Some(Order::new(1)));
        assert_eq!(Order::for_size(4 << 20), Some(Order::new(10)));
        assert_eq!(Order::for_size((4 << 20) + 1), None);
        assert!(Order::try_new(11).is_err());
        assert_eq!(PhysAddr::new(0x1234).pfn(), Pfn::new(1));
        assert!(PhysAddr::try_new(1 << 52).is_err());
        assert_eq!(
            VirtAddr::new(0x1fff).align_down(4096),
            VirtAddr::new(0x1000)
        );
    }

    /// Arithmetic that would leave the 52-bit physical address space used to produce an
    /// invalid `PhysAddr` silently; it must panic and say so, like `PhysAddr::new`.
    #[test]
    #[should_panic(expected = "physical address overflow")]
    fn phys_add_past_the_limit_panics_with_a_message() {
        let _ = PhysAddr::new((1 << MAX_PHYSADDR_BITS) - 1) + 1;
    }

    #[test]
    fn phys_checked_arithmetic_near_the_limit() {
        let max = PHYS_ADDR_MAX;
        assert_eq!(max.as_u64(), (1 << 52) - 1);
        assert_eq!(max.checked_add(0), Some(max));
        assert_eq!(max.checked_add(1), None);
        assert_eq!(PhysAddr::new(0x1000).checked_add(u64::MAX), None);
        assert_eq!(PhysAddr::new(0x1000).saturating_add(u64::MAX), max);
        assert_eq!(max.checked_align_up(0x1000), None);
        assert_eq!(
            max.align_down(0x1000).checked_align_up(0x1000),
            Some(max.align_down(0x1000))
        );
        assert_eq!(
            PhysAddr::new(0x1001).align_up(0x1000),
            PhysAddr::new(0x2000)
        );
        assert_eq!(PhysAddr::new(0x1000) + 0x1000, PhysAddr::new(0x2000));
    }

    #[test]
    #[should_panic(expected = "physical address overflow")]
    fn phys_align_up_past_the_limit_panics_with_a_message() {
        let _ = PhysAddr::new((1 << MAX_PHYSADDR_BITS) - 1).align_up(0x1000);
    }
}
