//! The list of isolated pages handed to `migrate_pages` (Linux passes a `list_head` of
//! folios linked through `folio->lru`). This module owns the raw link manipulation.
//!
//! # Invariants
//! Every page on a [`MigrateList`] is isolated: it is off every LRU list (`PG_lru` clear),
//! not free, and holds the isolation's reference; its `lru` link belongs to the list. The
//! list is singly linked through `lru.next` (null at the tail), so the list value may move.

use core::ptr;

use kds::list::ListHead;

use crate::mm::mm_types::PagePtr;

/// A FIFO of isolated pages, linked through their `lru` words (see the module invariants).
/// Fill it with [`crate::task::TaskLayer::isolate_migratepage`]; give back what
/// `migrate_pages` left on it with `putback_movable_pages`.
#[derive(Default)]
pub struct MigrateList {
    head: Option<PagePtr>,
    tail: Option<PagePtr>,
    len: usize,
}

// SAFETY: the pages a list links are isolated, reached only by the list's owner.
unsafe impl Send for MigrateList {}

impl MigrateList {
    /// An empty list.
    pub const fn new() -> Self {
        Self {
            head: None,
            tail: None,
            len: 0,
        }
    }

    /// Pages on the list.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends an isolated page (`list_add_tail(&folio->lru, list)`).
    pub(crate) fn push(&mut self, page: PagePtr) {
        let l = page.lru();
        // SAFETY: `page` is isolated (caller's contract, module invariant): its `lru` link is
        // unused by the LRU, the pcp lists and the buddy allocator, and is ours now.
        unsafe {
            (*l).next = ptr::null_mut();
            (*l).prev = ptr::null_mut();
        }
        match self.tail {
            // SAFETY: the tail is on this list, so its link is ours.
            Some(t) => unsafe { (*t.lru()).next = l },
            None => self.head = Some(page),
        }
        self.tail = Some(page);
        self.len += 1;
    }

    /// Takes the first page off.
    pub(crate) fn pop(&mut self) -> Option<PagePtr> {
        let page = self.head?;
        // SAFETY: the head is on this list; its `next` is null or the `lru` of the next
        // page on it.
        let next: *mut ListHead = unsafe { (*page.lru()).next };
        self.head = if next.is_null() {
            self.tail = None;
            None
        } else {
            // SAFETY: `next` is the `lru` field of a page of the memmap (pushed above).
            Some(unsafe { PagePtr::from_lru(next) })
        };
        // SAFETY: the page leaves the list; its link is reset to the unlinked state.
        unsafe {
            (*page.lru()).next = ptr::null_mut();
            (*page.lru()).prev = ptr::null_mut();
        }
        self.len -= 1;
        Some(page)
    }

    /// Moves every page of `other` to the end of `self` (`list_splice_tail_init`).
    pub(crate) fn splice(&mut self, other: &mut MigrateList) {
        while let Some(p) = other.pop() {
            self.push(p);
        }
    }

    /// Whether `page` is on the list.
    pub fn contains(&self, page: PagePtr) -> bool {
        self.iter().any(|p| p == page)
    }

    /// The pages, first to last.
    pub fn iter(&self) -> impl Iterator<Item = PagePtr> + '_ {
        let mut c = self.head;
        core::iter::from_fn(move || {
            let page = c?;
            // SAFETY: `page` is on this list, borrowed by `&self` for the iterator's life, so it
            // stays linked; its `lru.next` is null or the `lru` of the next page on the list.
            let next = unsafe { (*page.lru()).next };
            c = if next.is_null() {
                None
            } else {
                // SAFETY: `next` is non-null here, so it is the `lru` field of the next page of
                // this list, a memmap entry pushed by `push`.
                Some(unsafe { PagePtr::from_lru(next) })
            };
            Some(page)
        })
    }
}
