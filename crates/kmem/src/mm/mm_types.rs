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

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};

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
    /// `PG_active`: on an active LRU list (mm/vmscan.c).
    pub const ACTIVE: u64 = 1 << 8;
    /// `PG_workingset`
    pub const WORKINGSET: u64 = 1 << 9;
    /// `PG_swapcache` (`PG_owner_priv_1`): in the swap cache, its `swp_entry_t` in `private`.
    pub const SWAPCACHE: u64 = 1 << 10;
    /// `PG_reserved`: never given to the page allocator (firmware, kernel image, memmap).
    pub const RESERVED: u64 = 1 << 13;
    /// `PG_private`
    pub const PRIVATE: u64 = 1 << 14;
    /// `PG_reclaim` (`PG_readahead` in 6.18): to be reclaimed as soon as writeback ends.
    pub const RECLAIM: u64 = 1 << 16;
    /// `PG_swapbacked`: backed by RAM or swap (anonymous and shmem pages).
    pub const SWAPBACKED: u64 = 1 << 17;
    /// `PG_unevictable`: on the unevictable LRU list.
    pub const UNEVICTABLE: u64 = 1 << 18;
    /// Names for dumps, in bit order.
    pub const NAMES: &[(u64, &str)] = &[
        (LOCKED, "locked"),
        (WRITEBACK, "writeback"),
        (REFERENCED, "referenced"),
        (UPTODATE, "uptodate"),
        (DIRTY, "dirty"),
        (LRU, "lru"),
        (HEAD, "head"),
        (ACTIVE, "active"),
        (WORKINGSET, "workingset"),
        (SWAPCACHE, "swapcache"),
        (RESERVED, "reserved"),
        (PRIVATE, "private"),
        (RECLAIM, "reclaim"),
        (SWAPBACKED, "swapbacked"),
        (UNEVICTABLE, "unevictable"),
    ];
    /// Bits 48..56: the order of a compound page (in the head), like folio order.
    pub const ORDER_SHIFT: u32 = 48;
    /// Mask of the compound order field.
    pub const ORDER_MASK: u64 = 0xff << ORDER_SHIFT;
    /// Bits 56..59: the node id (`NODES_PGSHIFT`); 0 on a one-node machine.
    pub const NODE_SHIFT: u32 = 56;
    /// Mask of the node field.
    pub const NODE_MASK: u64 = 0x7 << NODE_SHIFT;
    /// Bits 60..63: the zone index (`ZONES_PGSHIFT`).
    pub const ZONE_SHIFT: u32 = 60;
    /// Mask of the zone field.
    pub const ZONE_MASK: u64 = 0x7 << ZONE_SHIFT;
    /// Flags that must be clear when a page is freed (`PAGE_FLAGS_CHECK_AT_FREE`, subset).
    pub const CHECK_AT_FREE: u64 = LOCKED | WRITEBACK | LRU | PRIVATE | DIRTY;
    /// Flags cleared when a page is freed, so that a new allocation starts without them
    /// (`PAGE_FLAGS_CHECK_AT_PREP`'s reclaim and swap bits, cleared by
    /// `free_pages_prepare`).
    pub const CLEAR_AT_FREE: u64 = REFERENCED
        | UPTODATE
        | ACTIVE
        | WORKINGSET
        | SWAPCACHE
        | RECLAIM
        | SWAPBACKED
        | UNEVICTABLE;
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
    pub(crate) flags: AtomicU64,
    pub(crate) lru: ListHead,
    pub(crate) compound_head: AtomicUsize,
    pub(crate) mapping: AtomicUsize,
    pub(crate) index: AtomicUsize,
    pub(crate) private: AtomicUsize,
    pub(crate) page_type: AtomicU32,
    pub(crate) refcount: AtomicI32,
}

impl Page {
    /// A reserved page of zone `zone` on node `nid` with one reference and no type
    /// (`memmap_init`'s starting state; `set_page_links`).
    pub(crate) const fn reserved_on(zone: ZoneType, nid: usize) -> Page {
        Page {
            flags: AtomicU64::new(
                pg::RESERVED
                    | ((zone as u64) << pg::ZONE_SHIFT)
                    | (((nid as u64) << pg::NODE_SHIFT) & pg::NODE_MASK),
            ),
            lru: ListHead::new(),
            compound_head: AtomicUsize::new(0),
            mapping: AtomicUsize::new(0),
            index: AtomicUsize::new(0),
            private: AtomicUsize::new(0),
            page_type: AtomicU32::new(PAGE_TYPE_NONE),
            refcount: AtomicI32::new(1),
        }
    }
}

const _: () = assert!(
    core::mem::size_of::<Page>() == 64,
    "struct page must be 64 bytes"
);
const _: () = assert!(core::mem::align_of::<Page>() <= 64);

/// A pointer to a `struct page` in a machine's memmap, as Linux's `struct page *`.
///
/// It is `Copy` and carries no ownership: outside kmem it is an opaque token (an address),
/// with no safe way to read or write the `struct page` behind it or to step to another
/// entry. Every public function that takes one checks that it is an entry of its own
/// machine's memmap first (a foreign or stale one is reported, nothing is touched). To look
/// at a page, borrow it from its machine: [`crate::mm::MemoryModel::page_ref`] gives a
/// read-only [`PageRef`] tied to the machine's lifetime.
///
/// Safe code can neither write a `struct page` nor step to another one:
///
/// ```compile_fail
/// fn corrupt(p: kmem::PagePtr) {
///     p.set_refcount(0); // not public
/// }
/// ```
///
/// ```compile_fail
/// fn step(p: kmem::PagePtr) -> kmem::PagePtr {
///     p.add(1) // not public: `pfn_to_page(page_to_pfn(p) + 1)` is checked
/// }
/// ```
///
/// and a view of a page cannot outlive its machine:
///
/// ```compile_fail
/// use kmem::{mm::mm_types::PageRef, platform::Platform, Machine, PagePtr};
/// fn outlive<P: Platform>(m: Machine<P>, p: PagePtr) -> Option<PageRef<'static>> {
///     m.page_ref(p)
/// }
/// ```
///
/// # Invariants
/// Inside kmem a `PagePtr` is only made for an entry of a live machine's memmap (by
/// `pfn_to_page`, from a free-list or slab link, or by stepping inside a block the caller
/// owns), and its accessors are only used while that machine lives.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct PagePtr(NonNull<Page>);

// SAFETY: a PagePtr is an address into the memmap; every access through it is guarded by the
// allocator's locks as described in the module documentation.
unsafe impl Send for PagePtr {}
// SAFETY: `&PagePtr` only exposes the address (Copy); reaching the `struct page` behind it takes
// the allocator's locks (module documentation), so sharing the token is sound.
unsafe impl Sync for PagePtr {}

/// A read-only view of one `struct page` of a live machine, borrowed from it
/// ([`crate::mm::MemoryModel::page_ref`]). Every word of a `struct page` but the list link is
/// an atomic, so reading while another CPU allocates or frees the page is no data race (the
/// values may be stale, as with `dump_page` in Linux).
#[derive(Clone, Copy)]
pub struct PageRef<'m> {
    page: PagePtr,
    _machine: PhantomData<&'m Page>,
}

impl<'m> PageRef<'m> {
    /// Wraps `page`, which the caller checked is an entry of the memmap borrowed for `'m`.
    pub(crate) fn new(page: PagePtr) -> Self {
        Self {
            page,
            _machine: PhantomData,
        }
    }
    /// The page as a token (for the machine's functions that take one).
    pub fn ptr(self) -> PagePtr {
        self.page
    }
    /// The `flags` word (`PG_*` bits and the zone).
    pub fn flags(self) -> u64 {
        self.page.flags()
    }
    /// Whether flag `bit` (a [`pg`] constant) is set.
    pub fn test_flag(self, bit: u64) -> bool {
        self.page.test_flag(bit)
    }
    /// `page_ref_count`.
    pub fn refcount(self) -> i32 {
        self.page.refcount()
    }
    /// The page's type, if it has one (`PageBuddy`, `PageSlab`, …).
    pub fn page_type(self) -> Option<PageType> {
        self.page.page_type()
    }
    /// `PageBuddy`: the first page of a free block.
    pub fn is_buddy(self) -> bool {
        self.page.is_buddy()
    }
    /// `PageReserved`.
    pub fn is_reserved(self) -> bool {
        self.page.is_reserved()
    }
    /// `PageHead`.
    pub fn is_head(self) -> bool {
        self.page.is_head()
    }
    /// `PageTail`.
    pub fn is_tail(self) -> bool {
        self.page.is_tail()
    }
    /// `compound_order` (0 for a page that is not a compound head).
    pub fn compound_order(self) -> Order {
        self.page.compound_order()
    }
    /// `page_zonenum`.
    pub fn zone_type(self) -> ZoneType {
        self.page.zone_type()
    }
    /// `page_to_nid`.
    pub fn nid(self) -> usize {
        self.page.nid()
    }
    /// `compound_head`: the head of the compound page this page belongs to (itself if none).
    pub fn compound_head(self) -> PagePtr {
        self.page.compound_head()
    }
    /// The `mapping` word (the slab cache of a slab page).
    pub fn mapping(self) -> usize {
        self.page.mapping()
    }
    /// The `index` word (a slab's freelist).
    pub fn index(self) -> usize {
        self.page.index()
    }
    /// The `private` word (a free block's order).
    pub fn private(self) -> usize {
        self.page.private()
    }
}

impl core::fmt::Debug for PagePtr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PagePtr({:p})", self.0)
    }
}

impl PagePtr {
    /// Wraps a raw `struct page` pointer.
    ///
    /// # Safety
    /// `p` must point at an entry of a live machine's memmap, unless the result is only
    /// handed to kmem's public functions, which check that it is an entry of their own
    /// machine's memmap before touching it (and report it as a bad address otherwise).
    /// Inside kmem, only memmap entries are wrapped.
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
    pub(crate) fn add(self, n: usize) -> PagePtr {
        // SAFETY: the memmap is one array; callers stay within a block they own, which lies
        // inside it, so the result is in bounds and non-null.
        PagePtr(unsafe { NonNull::new_unchecked(self.0.as_ptr().add(n)) })
    }

    // ---- field accessors; callers own the page as the module documentation says ----

    #[inline]
    pub(crate) fn flags(self) -> u64 {
        // SAFETY: the pointer is into the live memmap (type invariant: a PagePtr is only made
        // for an entry of a machine's memmap, and kmem uses it only while that machine lives);
        // the word is atomic, so a concurrent access is no data race.
        unsafe { (*self.as_ptr()).flags.load(Ordering::Relaxed) }
    }
    #[inline]
    pub(crate) fn set_flags(self, v: u64) {
        // SAFETY: `self` is an entry of a live memmap (type invariant), so `flags` is valid;
        // it is atomic, and only the page's owner stores to it.
        unsafe { (*self.as_ptr()).flags.store(v, Ordering::Relaxed) }
    }
    #[inline]
    pub(crate) fn private(self) -> usize {
        // SAFETY: `self` is an entry of a live memmap (type invariant), so `private` is valid;
        // it is atomic, so this load races with no writer.
        unsafe { (*self.as_ptr()).private.load(Ordering::Relaxed) }
    }
    #[inline]
    pub(crate) fn set_private(self, v: usize) {
        // SAFETY: `self` is an entry of a live memmap (type invariant), so `private` is valid;
        // it is atomic, and only the page's owner stores to it.
        unsafe { (*self.as_ptr()).private.store(v, Ordering::Relaxed) }
    }
    #[inline]
    pub(crate) fn raw_page_type(self) -> u32 {
        // SAFETY: `self` is an entry of a live memmap (type invariant), so `page_type` is valid;
        // it is atomic, so this load races with no writer.
        unsafe { (*self.as_ptr()).page_type.load(Ordering::Relaxed) }
    }
    #[inline]
    pub(crate) fn set_raw_page_type(self, v: u32) {
        // SAFETY: `self` is an entry of a live memmap (type invariant), so `page_type` is valid;
        // it is atomic, and only the page's owner stores to it.
        unsafe { (*self.as_ptr()).page_type.store(v, Ordering::Relaxed) }
    }
    /// `mapping` word (the slab cache for slab pages).
    #[inline]
    pub(crate) fn mapping(self) -> usize {
        // SAFETY: `self` is an entry of a live memmap (type invariant), so `mapping` is valid;
        // it is atomic, so this load races with no writer.
        unsafe { (*self.as_ptr()).mapping.load(Ordering::Relaxed) }
    }
    /// Sets the `mapping` word. Only the page's owner may call it.
    #[inline]
    pub(crate) fn set_mapping(self, v: usize) {
        // SAFETY: `self` is an entry of a live memmap (type invariant), so `mapping` is valid;
        // it is atomic, and only the page's owner stores to it.
        unsafe { (*self.as_ptr()).mapping.store(v, Ordering::Relaxed) }
    }
    /// `index` word (the freelist for slab pages).
    #[inline]
    pub(crate) fn index(self) -> usize {
        // SAFETY: `self` is an entry of a live memmap (type invariant), so `index` is valid;
        // it is atomic, so this load races with no writer.
        unsafe { (*self.as_ptr()).index.load(Ordering::Relaxed) }
    }
    /// Sets the `index` word. Only the page's owner may call it.
    #[inline]
    pub(crate) fn set_index(self, v: usize) {
        // SAFETY: `self` is an entry of a live memmap (type invariant), so `index` is valid;
        // it is atomic, and only the page's owner stores to it.
        unsafe { (*self.as_ptr()).index.store(v, Ordering::Relaxed) }
    }
    #[inline]
    pub(crate) fn compound_head_raw(self) -> usize {
        // SAFETY: `self` is an entry of a live memmap (type invariant), so `compound_head` is valid;
        // it is atomic, so this load races with no writer.
        unsafe { (*self.as_ptr()).compound_head.load(Ordering::Relaxed) }
    }
    #[inline]
    pub(crate) fn set_compound_head_raw(self, v: usize) {
        // SAFETY: `self` is an entry of a live memmap (type invariant), so `compound_head` is valid;
        // it is atomic, and only the page's owner stores to it.
        unsafe { (*self.as_ptr()).compound_head.store(v, Ordering::Relaxed) }
    }
    /// The list link (`page->lru`).
    #[inline]
    pub(crate) fn lru(self) -> *mut ListHead {
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
    pub(crate) fn refcount(self) -> i32 {
        // SAFETY: the memmap is live (type invariant); the field is atomic.
        unsafe { (*self.as_ptr()).refcount.load(Ordering::Relaxed) }
    }
    /// `set_page_count`. Only the page's sole owner may call it.
    #[inline]
    pub(crate) fn set_refcount(self, v: i32) {
        // SAFETY: `self` is an entry of a live memmap (type invariant), so `refcount` is valid;
        // it is atomic, and only the page's owner stores to it.
        unsafe { (*self.as_ptr()).refcount.store(v, Ordering::Relaxed) }
    }
    /// `put_page_testzero`: drops a reference; returns whether it was the last.
    #[inline]
    pub(crate) fn put_testzero(self) -> bool {
        // SAFETY: `self` is an entry of a live memmap (type invariant), so `refcount` is valid;
        // the atomic decrement is the caller's own reference being dropped.
        unsafe { (*self.as_ptr()).refcount.fetch_sub(1, Ordering::AcqRel) == 1 }
    }

    /// The page's type, if it has one (`PageBuddy`, `PageSlab`…).
    #[inline]
    pub(crate) fn page_type(self) -> Option<PageType> {
        PageType::from_raw(self.raw_page_type())
    }
    /// Sets the page's type (`__SetPageBuddy` and friends).
    #[inline]
    pub(crate) fn set_page_type(self, t: PageType) {
        self.set_raw_page_type((t as u32) << 24);
    }
    /// Clears the page's type (`__ClearPageBuddy` and friends).
    #[inline]
    pub(crate) fn clear_page_type(self) {
        self.set_raw_page_type(PAGE_TYPE_NONE);
    }
    /// `page_ref_inc` (`get_page`): one more reference.
    #[inline]
    pub(crate) fn ref_inc(self) {
        // SAFETY: the memmap is live (type invariant); the field is atomic.
        unsafe { (*self.as_ptr()).refcount.fetch_add(1, Ordering::AcqRel) };
    }
    /// `page_mapcount`: how many page tables map the page (`_mapcount + 1`, kept in the
    /// `page_type` word as Linux does; 0 for a page with a type).
    #[inline]
    pub(crate) fn mapcount(self) -> i32 {
        if self.page_type().is_some() {
            return 0;
        }
        (self.raw_page_type() as i32).wrapping_add(1)
    }
    /// Sets `_mapcount` to `n - 1`. Only for user pages, under the owner's locks.
    #[inline]
    pub(crate) fn set_mapcount(self, n: i32) {
        self.set_raw_page_type(n.wrapping_sub(1) as u32);
    }
    /// `PageBuddy`.
    #[inline]
    pub(crate) fn is_buddy(self) -> bool {
        self.raw_page_type() >> 24 == PageType::Buddy as u32
    }
    /// `PageReserved`.
    #[inline]
    pub(crate) fn is_reserved(self) -> bool {
        self.flags() & pg::RESERVED != 0
    }
    /// `PageHead`.
    #[inline]
    pub(crate) fn is_head(self) -> bool {
        self.flags() & pg::HEAD != 0
    }
    /// `PageTail`.
    #[inline]
    pub(crate) fn is_tail(self) -> bool {
        self.compound_head_raw() & 1 != 0
    }
    /// `compound_head`: the head page of a compound page, or the page itself.
    #[inline]
    pub(crate) fn compound_head(self) -> PagePtr {
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
    pub(crate) fn compound_order(self) -> Order {
        if self.is_head() {
            let o = ((self.flags() & pg::ORDER_MASK) >> pg::ORDER_SHIFT) as u32;
            Order::try_new(o).unwrap_or(Order::ZERO)
        } else {
            Order::ZERO
        }
    }
    /// The zone the page belongs to (`page_zonenum`).
    #[inline]
    pub(crate) fn zone_type(self) -> ZoneType {
        ZoneType::from_index(((self.flags() & pg::ZONE_MASK) >> pg::ZONE_SHIFT) as usize)
    }
    /// The node the page belongs to (`page_to_nid`).
    #[inline]
    pub(crate) fn nid(self) -> usize {
        ((self.flags() & pg::NODE_MASK) >> pg::NODE_SHIFT) as usize
    }
    /// Whether a flag bit is set (`PageX`).
    #[inline]
    pub(crate) fn test_flag(self, bit: u64) -> bool {
        self.flags() & bit != 0
    }
}

/// Reference and flag operations for the reclaim and swap code (`get_page`,
/// `folio_try_get`, `folio_set_*`/`folio_clear_*`/`folio_test_clear_*`): atomic
/// read-modify-writes, usable while other CPUs look at the page.
impl PagePtr {
    /// `get_page`: takes a reference on a page the caller already holds one on (or that a
    /// lock the caller holds keeps alive).
    #[inline]
    pub(crate) fn get(self) {
        // SAFETY: the memmap is live (type invariant); the field is atomic.
        unsafe { (*self.as_ptr()).refcount.fetch_add(1, Ordering::AcqRel) };
    }
    /// `get_page_unless_zero`: takes a reference unless the page is free; returns whether it
    /// did.
    #[inline]
    pub(crate) fn try_get(self) -> bool {
        // SAFETY: `self` is an entry of a live memmap (type invariant), so a shared reference to
        // its atomic `refcount` is valid and every access through it is atomic.
        let rc = unsafe { &(*self.as_ptr()).refcount };
        let mut v = rc.load(Ordering::Relaxed);
        while v > 0 {
            match rc.compare_exchange_weak(v, v + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }
    /// `SetPageX` for `bits` (atomic).
    #[inline]
    pub(crate) fn set_flag_bits(self, bits: u64) {
        // SAFETY: `self` is an entry of a live memmap (type invariant); `flags` is atomic and the
        // `fetch_or` changes only `bits`, so it races with no other flag update.
        unsafe { (*self.as_ptr()).flags.fetch_or(bits, Ordering::AcqRel) };
    }
    /// `ClearPageX` for `bits` (atomic).
    #[inline]
    pub(crate) fn clear_flag_bits(self, bits: u64) {
        // SAFETY: `self` is an entry of a live memmap (type invariant); `flags` is atomic and the
        // `fetch_and` clears only `bits`, so it races with no other flag update.
        unsafe { (*self.as_ptr()).flags.fetch_and(!bits, Ordering::AcqRel) };
    }
    /// `TestClearPageX`: clears `bit` and returns whether it was set.
    #[inline]
    pub(crate) fn test_clear_flag(self, bit: u64) -> bool {
        // SAFETY: `self` is an entry of a live memmap (type invariant); `flags` is atomic and the
        // `fetch_and` clears only `bit`, returning its old value atomically.
        unsafe { (*self.as_ptr()).flags.fetch_and(!bit, Ordering::AcqRel) & bit != 0 }
    }
}
