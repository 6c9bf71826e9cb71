//! Sheaves and the per-node barn (mm/slub.c of Linux 6.18: `struct slab_sheaf`,
//! `struct node_barn`, `barn_get_empty_sheaf`, `barn_put_empty_sheaf`,
//! `barn_put_full_sheaf`, `barn_get_full_or_empty_sheaf`, `barn_replace_empty_sheaf`,
//! `barn_replace_full_sheaf`, `barn_shrink`).
//!
//! A sheaf is an array of object pointers with a header; the barn keeps a node's spare full
//! and empty sheaves on two stacks. This file holds only the data structures and the list
//! operations done under `barn->lock` (the caller holds the lock: the operations take
//! `&mut BarnLists`). It depends on nothing but `core`, so that the loom model of the barn
//! exchange (crates/kmem/tests/barn_loom.rs) compiles this very file with loom's mutex.

use core::ptr::{self, NonNull};

/// `MAX_FULL_SHEAVES` (mm/slub.c 6.18): full sheaves a barn keeps before a free flushes one.
pub const MAX_FULL_SHEAVES: u32 = 10;
/// `MAX_EMPTY_SHEAVES` (mm/slub.c 6.18): empty sheaves a barn keeps before they are freed.
pub const MAX_EMPTY_SHEAVES: u32 = 10;

/// `struct slab_sheaf`: the header of a sheaf; `capacity` object pointers follow it (the
/// header is 32 bytes as in Linux, so `calculate_sheaf_capacity` sizes a sheaf to exactly a
/// kmalloc bucket).
#[repr(C)]
pub struct SlabSheaf {
    /// Link in a barn list, or the RCU callback link of an `rcu_free` sheaf (Linux: the
    /// union of `barn_list` and `rcu_head`).
    pub next: *mut SlabSheaf,
    /// The second word of the RCU head (unused by the barn).
    pub rcu_aux: usize,
    /// The owning `struct kmem_cache` (`sheaf->cache`).
    pub cache: usize,
    /// Objects held (`sheaf->size`).
    pub size: u32,
    /// Slots (`sheaf->capacity`); a prefilled oversize sheaf has more than its cache's
    /// `sheaf_capacity`.
    pub capacity: u32,
}

/// Bytes of a sheaf header (`struct_size_t(struct slab_sheaf, objects, 0)`).
pub const SHEAF_HEADER: usize = core::mem::size_of::<SlabSheaf>();
const _: () = assert!(SHEAF_HEADER == 32);

/// Bytes of a sheaf with `capacity` slots.
pub const fn sheaf_bytes(capacity: u32) -> usize {
    SHEAF_HEADER + capacity as usize * core::mem::size_of::<usize>()
}

impl SlabSheaf {
    /// The first object slot (`sheaf->objects`).
    ///
    /// # Safety
    /// `this` points to a live sheaf allocation of `sheaf_bytes(capacity)` bytes.
    #[inline(always)]
    pub unsafe fn objects(this: *mut SlabSheaf) -> *mut *mut u8 {
        // SAFETY: the slots follow the 32-byte header inside the allocation (caller).
        unsafe { this.cast::<u8>().add(SHEAF_HEADER).cast::<*mut u8>() }
    }
}

/// Why `barn_replace_full_sheaf` refused (Linux returns `ERR_PTR(-E2BIG)` / `-ENOMEM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaceFull {
    /// The barn already holds `MAX_FULL_SHEAVES` full sheaves (`-E2BIG`).
    TooManyFull,
    /// The barn has no empty sheaf to give (`-ENOMEM`).
    NoEmpty,
}

/// `struct node_barn` without its lock: the two sheaf stacks and their counts, and the
/// node's `kfree_rcu` sheaf being filled (Linux keeps that one per CPU, `pcs->rcu_free`).
pub struct BarnLists {
    full: *mut SlabSheaf,
    empty: *mut SlabSheaf,
    nr_full: u32,
    nr_empty: u32,
    /// The sheaf collecting `kfree_rcu` objects, not yet handed to RCU, or null. Not on
    /// either list; [`Self::take_all`] leaves it (its objects wait for a grace period).
    rcu_free: *mut SlabSheaf,
}

// SAFETY: the lists only link sheaves owned by the barn; whoever holds the barn's lock owns
// them, whatever thread it runs on.
unsafe impl Send for BarnLists {}

impl Default for BarnLists {
    fn default() -> Self {
        Self::new()
    }
}

impl BarnLists {
    /// An empty barn (`barn_init`).
    pub const fn new() -> Self {
        BarnLists {
            full: ptr::null_mut(),
            empty: ptr::null_mut(),
            nr_full: 0,
            nr_empty: 0,
            rcu_free: ptr::null_mut(),
        }
    }
    /// The `kfree_rcu` sheaf being filled, or null.
    #[inline]
    pub fn rcu_free(&self) -> *mut SlabSheaf {
        self.rcu_free
    }
    /// Installs (or, with null, takes away) the `kfree_rcu` sheaf being filled; returns the
    /// previous one, which the caller owns from now on.
    ///
    /// # Safety
    /// A non-null `s` is a live sheaf owned by the caller, on no list; the barn takes it.
    pub unsafe fn set_rcu_free(&mut self, s: *mut SlabSheaf) -> *mut SlabSheaf {
        core::mem::replace(&mut self.rcu_free, s)
    }
    /// `barn->nr_full`.
    #[inline]
    pub fn nr_full(&self) -> u32 {
        self.nr_full
    }
    /// `barn->nr_empty`.
    #[inline]
    pub fn nr_empty(&self) -> u32 {
        self.nr_empty
    }

    fn pop(head: &mut *mut SlabSheaf, nr: &mut u32) -> Option<NonNull<SlabSheaf>> {
        let s = NonNull::new(*head)?;
        // SAFETY: sheaves on a barn list are owned by the barn (lists' invariant) and live.
        *head = unsafe { (*s.as_ptr()).next };
        // SAFETY: `s` was the head of a barn list, which the barn owns under its lock (the caller
        // holds it as `&mut self`); now unlinked, it belongs to the caller alone, so clearing its
        // `next` races with no one.
        unsafe { (*s.as_ptr()).next = ptr::null_mut() };
        *nr -= 1;
        Some(s)
    }

    /// # Safety
    /// `s` is a live sheaf owned by the caller, on no list; ownership passes to the barn.
    unsafe fn push(head: &mut *mut SlabSheaf, nr: &mut u32, s: NonNull<SlabSheaf>) {
        // SAFETY: the caller owns `s`.
        unsafe { (*s.as_ptr()).next = *head };
        *head = s.as_ptr();
        *nr += 1;
    }

    /// `barn_get_empty_sheaf`.
    pub fn get_empty(&mut self) -> Option<NonNull<SlabSheaf>> {
        Self::pop(&mut self.empty, &mut self.nr_empty)
    }
    /// `barn_get_full_or_empty_sheaf`: a full sheaf if there is one, else an empty one.
    pub fn get_full_or_empty(&mut self) -> Option<NonNull<SlabSheaf>> {
        Self::pop(&mut self.full, &mut self.nr_full)
            .or_else(|| Self::pop(&mut self.empty, &mut self.nr_empty))
    }
    /// `barn_put_empty_sheaf`.
    ///
    /// # Safety
    /// As for `push`: `s` is a live sheaf owned by the caller, on no list.
    pub unsafe fn put_empty(&mut self, s: NonNull<SlabSheaf>) {
        // SAFETY: forwarded.
        unsafe { Self::push(&mut self.empty, &mut self.nr_empty, s) }
    }
    /// `barn_put_full_sheaf`.
    ///
    /// # Safety
    /// As for [`Self::put_empty`].
    pub unsafe fn put_full(&mut self, s: NonNull<SlabSheaf>) {
        // SAFETY: forwarded.
        unsafe { Self::push(&mut self.full, &mut self.nr_full, s) }
    }
    /// `barn_replace_empty_sheaf`: trades an empty sheaf for a full one, if the barn has one
    /// (otherwise the empty sheaf stays the caller's).
    ///
    /// # Safety
    /// As for [`Self::put_empty`].
    pub unsafe fn replace_empty(
        &mut self,
        empty: NonNull<SlabSheaf>,
    ) -> Option<NonNull<SlabSheaf>> {
        let full = Self::pop(&mut self.full, &mut self.nr_full)?;
        // SAFETY: forwarded.
        unsafe { Self::push(&mut self.empty, &mut self.nr_empty, empty) };
        Some(full)
    }
    /// `barn_replace_full_sheaf`: trades a full sheaf for an empty one, unless the barn holds
    /// `MAX_FULL_SHEAVES` already or has no empty sheaf (the full sheaf then stays the
    /// caller's).
    ///
    /// # Safety
    /// As for [`Self::put_empty`].
    pub unsafe fn replace_full(
        &mut self,
        full: NonNull<SlabSheaf>,
    ) -> Result<NonNull<SlabSheaf>, ReplaceFull> {
        if self.nr_full >= MAX_FULL_SHEAVES {
            return Err(ReplaceFull::TooManyFull);
        }
        let empty = Self::pop(&mut self.empty, &mut self.nr_empty).ok_or(ReplaceFull::NoEmpty)?;
        // SAFETY: forwarded.
        unsafe { Self::push(&mut self.full, &mut self.nr_full, full) };
        Ok(empty)
    }
    /// `barn_shrink`'s list splice: takes every sheaf, full ones first in the returned pair.
    /// The chains are linked through `next`.
    pub fn take_all(&mut self) -> (*mut SlabSheaf, *mut SlabSheaf) {
        let r = (self.full, self.empty);
        *self = Self {
            rcu_free: self.rcu_free,
            ..Self::new()
        };
        r
    }
    /// Calls `f(sheaf, is_full)` for every sheaf in the barn (the caller holds the lock, so
    /// the sheaves stay the barn's during the walk).
    pub fn walk(&self, mut f: impl FnMut(*mut SlabSheaf, bool)) {
        for (head, full) in [(self.full, true), (self.empty, false)] {
            let mut sh = head;
            while !sh.is_null() {
                f(sh, full);
                // SAFETY: sheaves on a barn list are live and linked through `next`.
                sh = unsafe { (*sh).next };
            }
        }
    }
}
