//! Reference-counted, lock-protected lists with safe concurrent iteration, as in
//! `<linux/klist.h>` and lib/klist.c.
//!
//! A [`Klist`] is a list head, a spinlock and two optional callbacks: `get` runs when a node is
//! added, `put` when the node has finally left the list. Each [`KlistNode`] carries a reference
//! count: the list holds one, and an iterator standing on a node holds another. Deleting a node
//! ([`klist_del`]) marks it *dead* and drops the list's reference; the node leaves the list
//! (and `put` runs) only when the last reference goes, so an iterator standing on it can still
//! step from it to its successor. Iterators skip dead nodes. [`klist_remove`] additionally waits
//! until the node has really left.
//!
//! # Locking
//! 1. `Klist::lock` protects the links of the list and of all its nodes, and the dead bit.
//! 2. Reference counts are atomics, changed under the lock except for the unlocked increment in
//!    [`klist_iter_init_node`], which only happens on a node the caller already holds.
//! 3. `get` is called without the lock (before linking) and `put` after the lock is released.
//!
//! # Node states
//! unattached (`n_klist` null) → attached, live (after `klist_add_*`) → attached, dead
//! (after [`klist_del`] while referenced) → unattached (last reference dropped: unlinked,
//! `put` called). A node must stay valid from its addition until `put` has been called for it
//! (or [`klist_remove`] returned), and the klist must outlive its nodes' membership.
//!
//! # Safe and raw use
//! The Linux-named adders ([`klist_add_tail`], ...) are `unsafe` because the caller vouches
//! for the node's lifetime; [`Klist::add_tail`]/[`Klist::add_head`] are safe for `'static`
//! nodes on a pinned klist. Deletion ([`klist_del`], [`KlistNode::del`], [`klist_remove`]) and
//! iteration ([`Klist::iter`], an RAII [`KlistIter`]) are safe: a double delete is refused,
//! and dropping a klist detaches the nodes still on it.

use core::cell::UnsafeCell;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr;

use crate::list::{list_add, list_add_tail, list_del, ListHead};
use crate::spinlock::SpinLock;
use crate::sync::{spin_loop, AtomicUsize, Ordering};

/// The low bit of `n_klist`: the node has been deleted but is still referenced
/// (`KNODE_DEAD` in lib/klist.c).
const KNODE_DEAD: usize = 1;

/// A `get`/`put` callback, called with the node concerned.
pub type KlistCallback = fn(&KlistNode);

/// `struct klist`: a lock-protected list with get/put callbacks.
pub struct Klist {
    lock: SpinLock<()>,
    k_list: UnsafeCell<ListHead>,
    get: Option<KlistCallback>,
    put: Option<KlistCallback>,
    _pin: PhantomPinned,
}

// SAFETY: all access to `k_list` and the nodes' links happens under `lock`.
unsafe impl Sync for Klist {}
// SAFETY: the klist holds plain data, an UnsafeCell touched only under its lock and plain fn
// pointers (`fn` items are Send), so moving it to another thread is sound.
unsafe impl Send for Klist {}

/// `struct klist_node`: the link embedded in an object on a [`Klist`].
pub struct KlistNode {
    /// The owning klist's address, with [`KNODE_DEAD`] in bit 0; 0 when unattached.
    n_klist: AtomicUsize,
    n_node: UnsafeCell<ListHead>,
    n_ref: AtomicUsize,
}

// SAFETY: `n_node` is only touched under the owning klist's lock; the rest are atomics.
unsafe impl Sync for KlistNode {}
// SAFETY: a node holds atomics and an UnsafeCell touched only under its owning klist's lock;
// nothing in it is tied to the creating thread.
unsafe impl Send for KlistNode {}

impl KlistNode {
    /// Returns an unattached node.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            n_klist: AtomicUsize::new(0),
            n_node: UnsafeCell::new(ListHead::new()),
            n_ref: AtomicUsize::new(0),
        }
    }

    /// Returns an unattached node.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            n_klist: AtomicUsize::new(0),
            n_node: UnsafeCell::new(ListHead::new()),
            n_ref: AtomicUsize::new(0),
        }
    }

    /// `klist_node_attached(n)`: whether the node is on a list (dead or alive).
    pub fn is_attached(&self) -> bool {
        self.n_klist.load(Ordering::Acquire) != 0
    }

    fn klist(&self) -> *const Klist {
        (self.n_klist.load(Ordering::Acquire) & !KNODE_DEAD) as *const Klist
    }

    fn is_dead(&self) -> bool {
        self.n_klist.load(Ordering::Relaxed) & KNODE_DEAD != 0
    }

    /// Deletes the node from its list ([`klist_del`]); returns `false` (and does nothing) if it
    /// is not attached or was already deleted, the misuse Linux would only warn about.
    pub fn del(&self) -> bool {
        let k = self.klist();
        if k.is_null() {
            return false;
        }
        // SAFETY: an attached node's klist outlives its membership (module contract).
        let k = unsafe { &*k };
        if !k.put_node(self, true) {
            return false;
        }
        true
    }
}

impl Default for KlistNode {
    fn default() -> Self {
        Self::new()
    }
}

/// # Safety
/// `l` must be the `n_node` field of a live `KlistNode` (the result points at that node; any other
/// pointer gives a pointer outside any object).
#[inline(always)]
unsafe fn to_klist_node(l: *mut ListHead) -> *const KlistNode {
    crate::container_of!(l, KlistNode, n_node)
}

impl Klist {
    /// `klist_init(k, get, put)` as a constructor; the list is usable once at its final address.
    #[cfg(not(loom))]
    pub const fn new(get: Option<KlistCallback>, put: Option<KlistCallback>) -> Self {
        Self {
            lock: SpinLock::new(()),
            k_list: UnsafeCell::new(ListHead::new()),
            get,
            put,
            _pin: PhantomPinned,
        }
    }

    /// `klist_init(k, get, put)` as a constructor.
    #[cfg(loom)]
    pub fn new(get: Option<KlistCallback>, put: Option<KlistCallback>) -> Self {
        Self {
            lock: SpinLock::new(()),
            k_list: UnsafeCell::new(ListHead::new()),
            get,
            put,
            _pin: PhantomPinned,
        }
    }

    /// The head, initialised on first use. Must be called with the lock held.
    ///
    /// A klist without nodes keeps null head pointers (never pointers to itself), so an
    /// empty klist may be moved freely; the head is initialised when a node is added and
    /// reset to null when the last node leaves.
    fn head(&self) -> *mut ListHead {
        let h = self.k_list.get();
        // SAFETY: the caller holds the lock; the klist does not move while used (contract of
        // the `unsafe` adders, which are the only way to put nodes on it).
        unsafe {
            if (*h).next.is_null() {
                ListHead::init(h);
            }
        }
        h
    }

    /// Prepares `n` for membership and calls `get` (`klist_node_init`).
    fn node_init(&self, n: &KlistNode) {
        n.n_ref.store(1, Ordering::Relaxed);
        n.n_klist
            .store(self as *const Klist as usize, Ordering::Release);
        if let Some(get) = self.get {
            get(n);
        }
    }

    /// Drops a reference to `n`, first marking it dead if `kill`; unlinks it and calls `put`
    /// when the count reaches zero (`klist_put`). Returns `false` if `kill` was asked for a
    /// node that is already dead.
    fn put_node(&self, n: &KlistNode, kill: bool) -> bool {
        let released;
        {
            // Lock order: &k->k_lock, a leaf (get/put run outside it); docs/LOCKING.md.
            let _g = self.lock.lock();
            if kill {
                if n.is_dead() || !n.is_attached() {
                    return false;
                }
                n.n_klist.fetch_or(KNODE_DEAD, Ordering::Relaxed);
            }
            released = self.dec_and_del(n);
        }
        if released {
            if let Some(put) = self.put {
                put(n);
            }
        }
        true
    }

    /// Drops one reference under the lock; on the last one unlinks the node and marks it
    /// unattached (`klist_dec_and_del` + `klist_release`).
    fn dec_and_del(&self, n: &KlistNode) -> bool {
        if n.n_ref.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: lock held; the node is on this list.
            unsafe {
                list_del(n.n_node.get());
                let h = self.k_list.get();
                if (*h).next == h {
                    // Empty again: back to null so the klist may move (see `head`).
                    (*h).next = ptr::null_mut();
                    (*h).prev = ptr::null_mut();
                }
            }
            n.n_klist.store(0, Ordering::Release);
            true
        } else {
            false
        }
    }

    /// `klist_add_head(n, k)` for a node that lives forever: safe, since the klist is pinned
    /// (it cannot move or be dropped while borrowed) and a `'static` node outlives any use.
    /// Returns `false` (and does nothing) if the node is already attached.
    pub fn add_head(self: Pin<&Self>, n: &'static KlistNode) -> bool {
        if n.is_attached() {
            return false;
        }
        // SAFETY: `n` is unattached and valid forever; the klist is pinned, and its `Drop`
        // detaches whatever is still on it.
        unsafe { klist_add_head(n, &self) };
        true
    }

    /// `klist_add_tail(n, k)` for a node that lives forever; as [`Klist::add_head`].
    pub fn add_tail(self: Pin<&Self>, n: &'static KlistNode) -> bool {
        if n.is_attached() {
            return false;
        }
        // SAFETY: `n` is unattached (checked above) and valid forever (`'static`); the klist is
        // pinned, so it cannot move while it has nodes, and its `Drop` detaches whatever is still
        // on it: `klist_add_tail`'s contract.
        unsafe { klist_add_tail(n, &self) };
        true
    }

    /// Returns an iterator over the live nodes (`klist_iter_init`); it is ended when dropped
    /// (`klist_iter_exit`).
    pub fn iter(&self) -> KlistIter<'_> {
        KlistIter {
            klist: self,
            cur: ptr::null(),
        }
    }
}

impl Drop for Klist {
    /// Detaches every node still on the list (without calling `put`: Linux has no klist
    /// destructor, and such nodes simply become unattached). No iterator can exist, since
    /// iterators borrow the klist.
    fn drop(&mut self) {
        let h = self.k_list.get();
        // SAFETY: `&mut self`: no other user; every node on the list is valid (the adders'
        // contract: valid until `put`, which has not run for nodes still listed).
        unsafe {
            if (*h).next.is_null() {
                return;
            }
            let mut l = (*h).next;
            while l != h {
                let next = (*l).next;
                let n = &*to_klist_node(l);
                n.n_ref.store(0, Ordering::Relaxed);
                n.n_klist.store(0, Ordering::Release);
                l = next;
            }
        }
    }
}

/// `klist_add_head(n, k)`: adds `n` at the front of `k` (calling `get`).
///
/// # Safety
/// `n` must be unattached; `k` must not move while it has nodes; `n` must stay valid until
/// `put` has been called for it (or [`klist_remove`] has returned).
pub unsafe fn klist_add_head(n: &KlistNode, k: &Klist) {
    k.node_init(n);
    // Lock order: &k->k_lock, a leaf (get/put run outside it); docs/LOCKING.md.
    let _g = k.lock.lock();
    // SAFETY: lock held; `n` unattached and pinned (caller contract).
    unsafe { list_add(n.n_node.get(), k.head()) };
}

/// `klist_add_tail(n, k)`: adds `n` at the back of `k` (calling `get`).
///
/// # Safety
/// As [`klist_add_head`].
pub unsafe fn klist_add_tail(n: &KlistNode, k: &Klist) {
    k.node_init(n);
    // Lock order: &k->k_lock, a leaf (get/put run outside it); docs/LOCKING.md.
    let _g = k.lock.lock();
    // SAFETY: `k.lock` is held, `n` is unattached and stays valid until `put` (this function's
    // contract), and `k` does not move while it has nodes, so linking `n` before the head touches
    // only live links.
    unsafe { list_add_tail(n.n_node.get(), k.head()) };
}

/// `klist_add_behind(n, pos)`: adds `n` right after `pos` on `pos`'s list.
///
/// # Safety
/// As [`klist_add_head`]; `pos` must be attached.
pub unsafe fn klist_add_behind(n: &KlistNode, pos: &KlistNode) {
    // SAFETY: `pos` is attached, so its klist is alive (module contract).
    let k = unsafe { &*pos.klist() };
    k.node_init(n);
    // Lock order: &k->k_lock, a leaf (get/put run outside it); docs/LOCKING.md.
    let _g = k.lock.lock();
    // SAFETY: lock held; `pos` is on the list.
    unsafe { list_add(n.n_node.get(), pos.n_node.get()) };
}

/// `klist_add_before(n, pos)`: adds `n` right before `pos` on `pos`'s list.
///
/// # Safety
/// As [`klist_add_behind`].
pub unsafe fn klist_add_before(n: &KlistNode, pos: &KlistNode) {
    // SAFETY: `pos` is attached (this function's contract), so the klist it points at has a node
    // and is alive and unmoved (module contract).
    let k = unsafe { &*pos.klist() };
    k.node_init(n);
    // Lock order: &k->k_lock, a leaf (get/put run outside it); docs/LOCKING.md.
    let _g = k.lock.lock();
    // SAFETY: `k.lock` is held and `pos` is on the list (attached, contract), so adding `n` before
    // it touches only live links; `n` is unattached and stays valid until `put`.
    unsafe { list_add_tail(n.n_node.get(), pos.n_node.get()) };
}

/// `klist_del(n)`: deletes `n`; it leaves the list (and `put` runs) once no iterator stands on
/// it. Deleting an unattached or already deleted node does nothing.
pub fn klist_del(n: &KlistNode) {
    n.del();
}

/// `klist_remove(n)`: deletes `n` and waits until it has left the list (every iterator that
/// stood on it has moved on).
pub fn klist_remove(n: &KlistNode) {
    n.del();
    while n.is_attached() {
        spin_loop();
        #[cfg(loom)]
        loom::thread::yield_now();
    }
}

/// `klist_node_attached(n)`.
pub fn klist_node_attached(n: &KlistNode) -> bool {
    n.is_attached()
}

/// `struct klist_iter`: a position on a klist holding a reference to its current node.
pub struct KlistIter<'k> {
    klist: &'k Klist,
    cur: *const KlistNode,
}

// SAFETY: the iterator only touches nodes under the klist's lock or through their atomics.
unsafe impl Send for KlistIter<'_> {}

/// `klist_iter_init(k)`: an iterator before the first node.
pub fn klist_iter_init(k: &Klist) -> KlistIter<'_> {
    k.iter()
}

/// `klist_iter_init_node(k, n)`: an iterator standing on `n` (if `n` is still live), so the
/// first [`KlistIter::next`] yields its successor.
///
/// # Safety
/// `n`, if given, must be a node of `k` on which the caller holds a reference (e.g. the node
/// another iterator currently stands on).
pub unsafe fn klist_iter_init_node<'k>(k: &'k Klist, n: Option<&KlistNode>) -> KlistIter<'k> {
    let mut it = k.iter();
    if let Some(n) = n {
        // `kref_get_unless_zero`.
        let mut r = n.n_ref.load(Ordering::Relaxed);
        while r != 0 {
            match n
                .n_ref
                .compare_exchange_weak(r, r + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    it.cur = n;
                    break;
                }
                Err(x) => r = x,
            }
        }
    }
    it
}

impl<'k> KlistIter<'k> {
    fn step(&mut self, forward: bool) -> Option<&KlistNode> {
        let k = self.klist;
        let last = self.cur;
        let mut put_last = false;
        {
            // Lock order: &k->k_lock, a leaf (get/put run outside it); docs/LOCKING.md.
            let _g = k.lock.lock();
            let head = k.k_list.get();
            // SAFETY: lock held; `last` (if any) is referenced by us, so still linked; every
            // node reached through the links under the lock is valid.
            unsafe {
                let mut next = if last.is_null() {
                    if (*head).next.is_null() {
                        // Never used or emptied: no nodes.
                        head
                    } else if forward {
                        (*head).next
                    } else {
                        (*head).prev
                    }
                } else {
                    let l = (*last).n_node.get();
                    let nx = if forward { (*l).next } else { (*l).prev };
                    put_last = k.dec_and_del(&*last);
                    nx
                };
                self.cur = ptr::null();
                while next != head {
                    let n = &*to_klist_node(next);
                    if !n.is_dead() {
                        n.n_ref.fetch_add(1, Ordering::Relaxed);
                        self.cur = n;
                        break;
                    }
                    next = if forward { (*next).next } else { (*next).prev };
                }
            }
        }
        if put_last {
            if let Some(put) = k.put {
                // SAFETY: `last` was valid until now: its `put` is the owner's notification.
                put(unsafe { &*last });
            }
        }
        // SAFETY: we hold a reference on `cur`, so it stays attached and valid.
        (!self.cur.is_null()).then(|| unsafe { &*self.cur })
    }

    /// `klist_next(i)`: moves to the next live node and returns it (valid until the iterator
    /// moves again or ends); `None` at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<&KlistNode> {
        self.step(true)
    }

    /// `klist_prev(i)`: moves to the previous live node.
    pub fn prev(&mut self) -> Option<&KlistNode> {
        self.step(false)
    }

    /// `klist_iter_exit(i)`: drops the reference on the current node (as `Drop` does).
    pub fn exit(&mut self) {
        let cur = core::mem::replace(&mut self.cur, ptr::null());
        if !cur.is_null() {
            // SAFETY: we held a reference on `cur`, so it is still valid.
            self.klist.put_node(unsafe { &*cur }, false);
        }
    }
}

impl Drop for KlistIter<'_> {
    fn drop(&mut self) {
        self.exit();
    }
}

/// `klist_next(i)`.
pub fn klist_next<'i>(i: &'i mut KlistIter<'_>) -> Option<&'i KlistNode> {
    i.next()
}

/// `klist_prev(i)`.
pub fn klist_prev<'i>(i: &'i mut KlistIter<'_>) -> Option<&'i KlistNode> {
    i.prev()
}

/// `klist_iter_exit(i)`.
pub fn klist_iter_exit(mut i: KlistIter<'_>) {
    i.exit();
}
