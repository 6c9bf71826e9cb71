//! `struct page`: one descriptor per page frame, in the memmap.
//!
//! The memmap is one array of [`Page`] covering every frame from PFN 0 to the highest present
//! PFN (FLATMEM), allocated from memblock at boot. A `Page` is 64 bytes, as on x86_64 Linux
//! (checked at compile time). Its words are reused by whoever owns the frame, like Linux's
//! unions:
//!
//! ```text
//! offset  field           free (buddy)      pcp list        compound tail   slab (struct slab)
//!  0      flags           PG_* | zone       PG_* | zone     PG_* | zone     PG_* | zone
//!  8      lru (2 words)   free_area link    pcp link        -               slab_list link
//! 24      compound_head   0                 0               head | 1        0
//! 32      mapping         0                 0               -               slab_cache
//! 40      index           0                 migratetype     -               freelist
//! 48      private         buddy order       order           -               counters
//! 56      page_type       PGTY_buddy<<24    -1 (none)       -1              PGTY_slab<<24
//! 60      _refcount       0                 0               0               1 (head)
//! ```
//!
//! # Invariants
//! - A frame on a free list has [`PageType::Buddy`], refcount 0, and its order in `private`;
//!   only the first frame of a free block carries them.
//! - A compound page's head has `PG_head` and its order in the flags' order field; each tail's
//!   `compound_head` is `head | 1`.
//! - Fields are read and written through raw pointers by the owner of the frame (the zone
//!   lock for free frames, the per-CPU section for pcp frames, the allocator that handed it
//!   out otherwise); only `_refcount` is atomic.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicI32, Ordering};

use kds::list::ListHead;

use crate::addr::Order;
use crate::mmzone::ZoneType;

/// Page flag bits (a subset of include/linux/page-flags.h `enum pageflags`, same order).
pub mod pg {
    /// `PG_locked`
    pub const LOCKED: u64 = 1 << 0;
    /// `PG_writeback`
    pub const WRITEBACK: u64 = 1 << 1;
    /// `PG_referenced`
    pub const REFERENCED: u64 = 1 << 2;
    /// `PG_uptodate`
    pub const UPTODATE: u64 = 1 << 3;
    /// `PG_dirty`
    pub const DIRTY: u64 = 1 << 4;
    /// `PG_lru`
    pub const LRU: u64 = 1 << 5;
    /// `PG_head`: first page of a compound page.
    pub const HEAD: u64 = 1 << 6;
    /// `PG_reserved`: never given to the page allocator (firmware, kernel image, memmap).
    pub const RESERVED: u64 = 1 << 13;
    /// `PG_private`
    pub const PRIVATE: u64 = 1 << 14;
    /// Names for dumps, in bit order.
    pub const NAMES: &[(u64, &str)] = &[
        (LOCKED, "locked"),
        (WRITEBACK, "writeback"),
        (REFERENCED, "referenced"),
        (UPTODATE, "uptodate"),
        (DIRTY, "dirty"),
        (LRU, "lru"),
        (HEAD, "head"),
        (RESERVED, "reserved"),
        (PRIVATE, "private"),
    ];
    /// Bits 48..56: the order of a compound page (in the head), like folio order.
    pub const ORDER_SHIFT: u32 = 48;
    /// Mask of the compound order field.
    pub const ORDER_MASK: u64 = 0xff << ORDER_SHIFT;
    /// Bits 60..63: the zone index (`ZONES_PGSHIFT`).
    pub const ZONE_SHIFT: u32 = 60;
    /// Mask of the zone field.
    pub const ZONE_MASK: u64 = 0x7 << ZONE_SHIFT;
    /// Flags that must be clear when a page is freed (`PAGE_FLAGS_CHECK_AT_FREE`, subset).
    pub const CHECK_AT_FREE: u64 = LOCKED | WRITEBACK | LRU | PRIVATE | DIRTY;
}

/// Page types stored in the top byte of `page_type` (include/linux/page-flags.h, `PGTY_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageType {
    /// `PGTY_buddy`: on a buddy free list.
    Buddy = 0xf0,
    /// `PGTY_table`: a page-table page.
    Table = 0xf2,
    /// `PGTY_guard`: a debug guard page.
    Guard = 0xf3,
    /// `PGTY_slab`: owned by the slab allocator.
    Slab = 0xf5,
    /// `PGTY_large_kmalloc`: a kmalloc allocation served by the page allocator.
    LargeKmalloc = 0xf8,
}

impl PageType {
    /// The type's name in `page_type:` dump lines.
    pub fn name(self) -> &'static str {
        match self {
            PageType::Buddy => "buddy",
            PageType::Table => "table",
            PageType::Guard => "guard",
            PageType::Slab => "slab",
            PageType::LargeKmalloc => "large_kmalloc",
        }
    }
    fn from_raw(raw: u32) -> Option<PageType> {
        Some(match (raw >> 24) as u8 {
            0xf0 => PageType::Buddy,
            0xf2 => PageType::Table,
            0xf3 => PageType::Guard,
            0xf5 => PageType::Slab,
            0xf8 => PageType::LargeKmalloc,
            _ => return None,
        })
    }
}

/// `page_type` value of a page with no type (the `_mapcount` of -1).
pub const PAGE_TYPE_NONE: u32 = u32::MAX;

/// `struct page`. See the module documentation for the layout.
#[repr(C)]
pub struct Page {
    pub(crate) flags: u64,
    pub(crate) lru: ListHead,
    pub(crate) compound_head: usize,
    pub(crate) mapping: usize,
    pub(crate) index: usize,
    pub(crate) private: usize,
    pub(crate) page_type: u32,
    pub(crate) refcount: AtomicI32,
}

const _: () = assert!(
    core::mem::size_of::<Page>() == 64,
    "struct page must be 64 bytes"
);
const _: () = assert!(core::mem::align_of::<Page>() <= 64);

/// A pointer to a `struct page` in a machine's memmap, as Linux's `struct page *`.
///
/// It is `Copy` and carries no ownership; the functions that take one document what they
/// require. Obtain one from [`crate::Machine::pfn_to_page`] or an allocation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct PagePtr(NonNull<Page>);

// SAFETY: a PagePtr is an address into the memmap; every access through it is guarded by the
// allocator's locks as described in the module documentation.
unsafe impl Send for PagePtr {}
// SAFETY: as above.
unsafe impl Sync for PagePtr {}

impl core::fmt::Debug for PagePtr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PagePtr({:p})", self.0)
    }
}

impl PagePtr {
    /// Wraps a raw `struct page` pointer.
    ///
    /// # Safety
    /// `p` must point into a live machine's memmap.
    #[inline]
    pub const unsafe fn from_raw(p: NonNull<Page>) -> Self {
        Self(p)
    }
    /// The raw pointer.
    #[inline]
    pub const fn as_ptr(self) -> *mut Page {
        self.0.as_ptr()
    }
    /// The `struct page` `n` entries further in the memmap (`page + n`, `nth_page`).
    #[inline]
    #[allow(clippy::should_implement_trait)] // Linux's `page + n`; not an Add of two pages.
    pub fn add(self, n: usize) -> PagePtr {
        // SAFETY: the memmap is one array; callers stay within a block they own, which lies
        // inside it, so the result is in bounds and non-null.
        PagePtr(unsafe { NonNull::new_unchecked(self.0.as_ptr().add(n)) })
    }

    // ---- field accessors; callers own the page as the module documentation says ----

    #[inline]
    pub(crate) fn flags(self) -> u64 {
        // SAFETY: the pointer is into the live memmap (type invariant); `flags` is plain data
        // read by the page's owner.
        unsafe { (*self.as_ptr()).flags }
    }
    #[inline]
    pub(crate) fn set_flags(self, v: u64) {
        // SAFETY: as in `flags`; writes are made by the page's owner only.
        unsafe { (*self.as_ptr()).flags = v }
    }
    #[inline]
    pub(crate) fn private(self) -> usize {
        // SAFETY: as in `flags`.
        unsafe { (*self.as_ptr()).private }
    }
    #[inline]
    pub(crate) fn set_private(self, v: usize) {
        // SAFETY: as in `set_flags`.
        unsafe { (*self.as_ptr()).private = v }
    }
    #[inline]
    pub(crate) fn raw_page_type(self) -> u32 {
        // SAFETY: as in `flags`.
        unsafe { (*self.as_ptr()).page_type }
    }
    #[inline]
    pub(crate) fn set_raw_page_type(self, v: u32) {
        // SAFETY: as in `set_flags`.
        unsafe { (*self.as_ptr()).page_type = v }
    }
    /// `mapping` word (the slab cache for slab pages).
    #[inline]
    pub fn mapping(self) -> usize {
        // SAFETY: as in `flags`.
        unsafe { (*self.as_ptr()).mapping }
    }
    /// Sets the `mapping` word. Only the page's owner may call it.
    #[inline]
    pub fn set_mapping(self, v: usize) {
        // SAFETY: as in `set_flags`.
        unsafe { (*self.as_ptr()).mapping = v }
    }
    /// `index` word (the freelist for slab pages).
    #[inline]
    pub fn index(self) -> usize {
        // SAFETY: as in `flags`.
        unsafe { (*self.as_ptr()).index }
    }
    /// Sets the `index` word. Only the page's owner may call it.
    #[inline]
    pub fn set_index(self, v: usize) {
        // SAFETY: as in `set_flags`.
        unsafe { (*self.as_ptr()).index = v }
    }
    #[inline]
    pub(crate) fn compound_head_raw(self) -> usize {
        // SAFETY: as in `flags`.
        unsafe { (*self.as_ptr()).compound_head }
    }
    #[inline]
    pub(crate) fn set_compound_head_raw(self, v: usize) {
        // SAFETY: as in `set_flags`.
        unsafe { (*self.as_ptr()).compound_head = v }
    }
    /// The list link (`page->lru`).
    #[inline]
    pub fn lru(self) -> *mut ListHead {
        // SAFETY: field projection of a valid pointer; no reference is created.
        unsafe { core::ptr::addr_of_mut!((*self.as_ptr()).lru) }
    }
    /// Recovers the page from its `lru` link (`list_entry(p, struct page, lru)`).
    ///
    /// # Safety
    /// `l` must be the `lru` field of a `struct page` in a live memmap.
    #[inline]
    pub unsafe fn from_lru(l: *mut ListHead) -> PagePtr {
        let p = kds::container_of!(l, Page, lru);
        // SAFETY: the caller guarantees `l` is inside a Page, so `p` is non-null and valid.
        unsafe { PagePtr::from_raw(NonNull::new_unchecked(p)) }
    }

    /// `page_ref_count`.
    #[inline]
    pub fn refcount(self) -> i32 {
        // SAFETY: the memmap is live (type invariant); the field is atomic.
        unsafe { (*self.as_ptr()).refcount.load(Ordering::Relaxed) }
    }
    /// `set_page_count`. Only the page's sole owner may call it.
    #[inline]
    pub fn set_refcount(self, v: i32) {
        // SAFETY: as in `refcount`.
        unsafe { (*self.as_ptr()).refcount.store(v, Ordering::Relaxed) }
    }
    /// `get_page`: takes a reference.
    #[inline]
    pub fn get(self) {
        // SAFETY: as in `refcount`.
        unsafe { (*self.as_ptr()).refcount.fetch_add(1, Ordering::Relaxed) };
    }
    /// `put_page_testzero`: drops a reference; returns whether it was the last.
    #[inline]
    pub fn put_testzero(self) -> bool {
        // SAFETY: as in `refcount`.
        unsafe { (*self.as_ptr()).refcount.fetch_sub(1, Ordering::AcqRel) == 1 }
    }

    /// The page's type, if it has one (`PageBuddy`, `PageSlab`…).
    #[inline]
    pub fn page_type(self) -> Option<PageType> {
        PageType::from_raw(self.raw_page_type())
    }
    /// Sets the page's type (`__SetPageBuddy` and friends).
    #[inline]
    pub fn set_page_type(self, t: PageType) {
        self.set_raw_page_type((t as u32) << 24);
    }
    /// Clears the page's type (`__ClearPageBuddy` and friends).
    #[inline]
    pub fn clear_page_type(self) {
        self.set_raw_page_type(PAGE_TYPE_NONE);
    }
    /// `PageBuddy`.
    #[inline]
    pub fn is_buddy(self) -> bool {
        self.raw_page_type() >> 24 == PageType::Buddy as u32
    }
    /// `PageReserved`.
    #[inline]
    pub fn is_reserved(self) -> bool {
        self.flags() & pg::RESERVED != 0
    }
    /// `PageHead`.
    #[inline]
    pub fn is_head(self) -> bool {
        self.flags() & pg::HEAD != 0
    }
    /// `PageTail`.
    #[inline]
    pub fn is_tail(self) -> bool {
        self.compound_head_raw() & 1 != 0
    }
    /// `compound_head`: the head page of a compound page, or the page itself.
    #[inline]
    pub fn compound_head(self) -> PagePtr {
        let h = self.compound_head_raw();
        if h & 1 != 0 {
            // SAFETY: tails store their head's (non-null, in-memmap) address with bit 0 set.
            unsafe { PagePtr::from_raw(NonNull::new_unchecked((h - 1) as *mut Page)) }
        } else {
            self
        }
    }
    /// The order of a compound page (`compound_order`), 0 for a non-head page.
    #[inline]
    pub fn compound_order(self) -> Order {
        if self.is_head() {
            let o = ((self.flags() & pg::ORDER_MASK) >> pg::ORDER_SHIFT) as u32;
            Order::try_new(o).unwrap_or(Order::ZERO)
        } else {
            Order::ZERO
        }
    }
    /// The zone the page belongs to (`page_zonenum`).
    #[inline]
    pub fn zone_type(self) -> ZoneType {
        ZoneType::from_index(((self.flags() & pg::ZONE_MASK) >> pg::ZONE_SHIFT) as usize)
    }
    /// Sets or clears a flag bit (`SetPageX` / `ClearPageX`); only the owner may call it.
    #[inline]
    pub fn set_flag(self, bit: u64, on: bool) {
        let f = self.flags();
        self.set_flags(if on { f | bit } else { f & !bit });
    }
    /// Whether a flag bit is set (`PageX`).
    #[inline]
    pub fn test_flag(self, bit: u64) -> bool {
        self.flags() & bit != 0
    }
}
