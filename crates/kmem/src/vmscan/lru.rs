//! The LRU lists of a node (`struct lruvec`, include/linux/mmzone.h and mm_inline.h): pages
//! linked through `struct page`'s `lru` word, newest at the head, reclaim taking from the
//! tail. This module owns the raw list manipulation; the policy is in `shrink`.

use kds::list::{self, ListHead};

use crate::mm::mm_types::{pg, PagePtr};
use crate::mm::{NodeStat, NodeStats};

/// `enum lru_list`, in Linux's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum LruList {
    /// `LRU_INACTIVE_ANON`
    InactiveAnon = 0,
    /// `LRU_ACTIVE_ANON`
    ActiveAnon = 1,
    /// `LRU_INACTIVE_FILE`
    InactiveFile = 2,
    /// `LRU_ACTIVE_FILE`
    ActiveFile = 3,
    /// `LRU_UNEVICTABLE`
    Unevictable = 4,
}

/// `NR_LRU_LISTS`.
pub const NR_LRU_LISTS: usize = 5;

impl LruList {
    /// Every list, in index order.
    pub const ALL: [LruList; NR_LRU_LISTS] = [
        LruList::InactiveAnon,
        LruList::ActiveAnon,
        LruList::InactiveFile,
        LruList::ActiveFile,
        LruList::Unevictable,
    ];
    /// `folio_lru_list`: the list a page belongs on by its flags.
    pub fn of_page(page: PagePtr) -> LruList {
        let f = page.flags();
        if f & pg::UNEVICTABLE != 0 {
            return LruList::Unevictable;
        }
        let file = f & pg::SWAPBACKED == 0;
        let active = f & pg::ACTIVE != 0;
        match (file, active) {
            (false, false) => LruList::InactiveAnon,
            (false, true) => LruList::ActiveAnon,
            (true, false) => LruList::InactiveFile,
            (true, true) => LruList::ActiveFile,
        }
    }
    /// `is_active_lru`.
    pub fn is_active(self) -> bool {
        matches!(self, LruList::ActiveAnon | LruList::ActiveFile)
    }
    /// `is_file_lru`.
    pub fn is_file(self) -> bool {
        matches!(self, LruList::InactiveFile | LruList::ActiveFile)
    }
    /// The node counter of the list (`NR_LRU_BASE + lru`).
    pub fn node_stat(self) -> NodeStat {
        [
            NodeStat::InactiveAnon,
            NodeStat::ActiveAnon,
            NodeStat::InactiveFile,
            NodeStat::ActiveFile,
            NodeStat::Unevictable,
        ][self as usize]
    }
    /// The list's name in `/proc/zoneinfo`-style counters (`nr_inactive_anon`, …).
    pub fn stat_name(self) -> &'static str {
        [
            "nr_inactive_anon",
            "nr_active_anon",
            "nr_inactive_file",
            "nr_active_file",
            "nr_unevictable",
        ][self as usize]
    }
}

/// `struct lruvec`: the lists and their sizes.
///
/// # Invariants
/// After [`Lruvec::init`], each head is an initialised list at a fixed address; a page is on
/// list `l` iff it has `PG_lru` and `LruList::of_page` is `l`, and `nr[l]` counts them.
pub struct Lruvec {
    heads: [ListHead; NR_LRU_LISTS],
    nr: [usize; NR_LRU_LISTS],
}

impl Default for Lruvec {
    fn default() -> Self {
        Self::new()
    }
}

impl Lruvec {
    /// Empty, not yet initialised lists.
    pub const fn new() -> Self {
        Self {
            heads: [const { ListHead::new() }; NR_LRU_LISTS],
            nr: [0; NR_LRU_LISTS],
        }
    }
    /// `lruvec_init`: links the heads to themselves.
    ///
    /// # Safety
    /// `self` must not move afterwards while pages are on its lists.
    pub unsafe fn init(&mut self) {
        for h in &mut self.heads {
            // SAFETY: the head is at its final address (caller's contract).
            unsafe { ListHead::init(h) };
        }
    }
    /// Pages on list `l`.
    pub fn len(&self, l: LruList) -> usize {
        self.nr[l as usize]
    }
    /// Whether every list is empty.
    pub fn is_empty(&self) -> bool {
        self.nr.iter().all(|&n| n == 0)
    }
    /// `lruvec_add_folio`: puts `page` (not on any list, `PG_lru` clear) at the head of its
    /// list and sets `PG_lru`; the list's counter goes up in the machine's `ns` (the node's
    /// count is the list's length, [`Self::len`]).
    pub(crate) fn add(&mut self, page: PagePtr, ns: &NodeStats) {
        let l = LruList::of_page(page);
        ns.add_page(page, l.node_stat(), 1);
        // SAFETY: the head is initialised (invariant); the page's link is unused because it
        // is on no list (caller's contract: `PG_lru` clear, and only LRU code links user
        // pages while they are allocated).
        unsafe { list::list_add(page.lru(), &mut self.heads[l as usize]) };
        self.nr[l as usize] += 1;
        page.set_flag_bits(pg::LRU);
    }
    /// `lruvec_del_folio`: takes `page` (on list `LruList::of_page(page)`) off and clears
    /// `PG_lru`, counting down as [`Self::add`] counts up.
    pub(crate) fn del(&mut self, page: PagePtr, ns: &NodeStats) {
        let l = LruList::of_page(page);
        ns.add_page(page, l.node_stat(), -1);
        // SAFETY: the page is linked on this list (caller's contract: PG_lru set, flags
        // unchanged since it was added), so its neighbours are valid.
        unsafe { list::list_del_init(page.lru()) };
        self.nr[l as usize] -= 1;
        page.clear_flag_bits(pg::LRU);
    }
    /// Pages on list `l` whose flags have every bit of `flags` (e.g. `PG_swapcache`: the
    /// node's share of `NR_SWAPCACHE` among the pages on its lists); walks the list.
    pub fn count_flags(&self, l: LruList, flags: u64) -> usize {
        let h: *const ListHead = &self.heads[l as usize];
        let mut n = 0;
        let mut p = h.cast_mut();
        for _ in 0..self.nr[l as usize] {
            // SAFETY: the list is initialised (invariant) and not changed while `self` is
            // borrowed (the caller holds `lru_lock`); `nr` pages are linked on it, so each
            // `next` followed here is the link of a page on it.
            p = unsafe { (*p).next };
            // SAFETY: `p` is the `lru` link of a page on the list (above).
            let page = unsafe { PagePtr::from_lru(p) };
            if page.flags() & flags == flags {
                n += 1;
            }
        }
        n
    }
    /// The page at the tail of list `l` (the oldest), if any.
    pub(crate) fn tail(&self, l: LruList) -> Option<PagePtr> {
        if self.nr[l as usize] == 0 {
            return None;
        }
        let h = &self.heads[l as usize];
        // SAFETY: the list is non-empty, so `prev` is the `lru` link of a page on it.
        Some(unsafe { PagePtr::from_lru(h.prev) })
    }
}
