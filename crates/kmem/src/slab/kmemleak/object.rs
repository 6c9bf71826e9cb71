//! kmemleak's object metadata (`struct kmemleak_object`, mm/kmemleak.c): the objects, the
//! search tree by address, the object list in allocation order and the memory pool they come
//! from. This is the unsafe core of kmemleak; the policy (colours, scanning, reports) is in
//! the sibling modules and uses only the safe methods of [`LeakState`].
//!
//! # Invariants
//! 1. Every object reachable from `LeakState::tree` is on `LeakState::list` and the other way
//!    round ("linked"); a linked object is a valid, initialised [`Obj`] inside a pool page.
//! 2. Linked objects do not overlap (`[pointer, pointer + size)` ranges are disjoint within
//!    one tree; physical objects, [`OBJECT_PHYS`], have their own tree, as in Linux).
//! 3. Objects on the free list (`pool`) are unlinked; their memory is only the `next` link.
//! 4. An [`ObjId`] names a linked object; the state hands them out (lookup, iteration) and the
//!    caller uses them under the same lock hold and before the object is removed.
//!
//! The pool grows by whole pages from the page allocator, taken *outside* `kmemleak_lock`
//! (like Linux's `mem_pool_alloc`, which allocates from `object_cache` before taking it), and
//! freed metadata goes back to the pool, never to the page allocator: kmemleak's memory is
//! never tracked and never scanned (Linux's `object_cache` is `SLAB_NOLEAKTRACE`).

use core::panic::Location;

use crate::mm::stackdepot::DepotHandle;
use core::ptr::{self, NonNull};

use kds::rbtree::{rb_erase, rb_insert_color, rb_link_node, RbNode, RbRoot};

/// `OBJECT_ALLOCATED`: the memory block is allocated.
pub const OBJECT_ALLOCATED: u32 = 1 << 0;
/// `OBJECT_REPORTED`: reported once as an unreferenced object.
pub const OBJECT_REPORTED: u32 = 1 << 1;
/// `OBJECT_NO_SCAN`: do not scan the block (references *to* it are still searched).
pub const OBJECT_NO_SCAN: u32 = 1 << 2;
/// `OBJECT_FULL_SCAN`: scan the whole block (Linux: a scan area could not be allocated).
pub const OBJECT_FULL_SCAN: u32 = 1 << 3;
/// `OBJECT_PHYS`: the object was registered by physical address (`kmemleak_alloc_phys`).
pub const OBJECT_PHYS: u32 = 1 << 4;

/// `KMEMLEAK_GREY`: a `min_count` that makes an object always grey (a root, never reported).
pub const KMEMLEAK_GREY: i32 = 0;
/// `KMEMLEAK_BLACK`: a `min_count` that makes an object ignored (never scanned or reported).
pub const KMEMLEAK_BLACK: i32 = -1;

/// `TASK_COMM_LEN`.
pub const TASK_COMM_LEN: usize = 16;

/// `struct kmemleak_object`.
#[repr(C)]
pub struct Obj {
    /// `rb_node`, first so that a node pointer is the object pointer.
    rb: RbNode,
    /// `object_list` (allocation order), previous and next.
    prev: *mut Obj,
    next: *mut Obj,
    /// `gray_list` link (a queue; null-terminated), valid during a scan.
    pub(super) gray_next: *mut Obj,
    /// `OBJECT_*` flags.
    pub flags: u32,
    /// References needed before the object is no leak (`KMEMLEAK_GREY`, `KMEMLEAK_BLACK`, or
    /// a positive count).
    pub min_count: i32,
    /// References found by the current scan.
    pub count: i32,
    /// CRC32 of the contents at the last scan that saw it white.
    pub checksum: u32,
    /// Start of the block (a real address, or a physical address with [`OBJECT_PHYS`]).
    pub pointer: usize,
    /// Size of the block in bytes.
    pub size: usize,
    /// `excess_ref`: where surplus references go (vmalloc's `vm_struct` alias).
    pub excess_ref: usize,
    /// Creation time (jiffies).
    pub jiffies: u64,
    /// The allocating task.
    pub pid: u32,
    /// `comm` of the allocating task (NUL padded).
    pub comm: [u8; TASK_COMM_LEN],
    /// The allocation's Rust call site (shown when there is no stack trace).
    pub trace: Option<&'static Location<'static>>,
    /// `trace_handle`: the allocation's stack trace in the stack depot.
    pub stack: DepotHandle,
    /// The scan area (`area_list`; kmem keeps one): start and size, size 0 for none.
    pub area_start: usize,
    pub area_size: usize,
}

impl Obj {
    /// The task name as text.
    pub fn comm_str(&self) -> &str {
        let n = self
            .comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(TASK_COMM_LEN);
        core::str::from_utf8(&self.comm[..n]).unwrap_or("?")
    }
}

/// The fields a new object starts with (`__alloc_object` + `__link_object`).
pub struct NewObj<'a> {
    pub pointer: usize,
    pub size: usize,
    pub min_count: i32,
    pub flags: u32,
    pub jiffies: u64,
    pub pid: u32,
    pub comm: &'a str,
    pub trace: Option<&'static Location<'static>>,
    pub stack: DepotHandle,
}

/// A linked object (invariant 4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ObjId(NonNull<Obj>);

/// A block of free metadata for the pool, from the page allocator.
pub struct PoolBlock {
    pub base: NonNull<u8>,
    pub len: usize,
}

/// kmemleak's state under `kmemleak_lock`.
pub struct LeakState {
    tree: RbRoot,
    phys_tree: RbRoot,
    head: *mut Obj,
    tail: *mut Obj,
    /// The pool's free list (linked through `next`).
    pool: *mut Obj,
    /// Free objects in the pool.
    pub pool_free: usize,
    /// Pages given to the pool.
    pub pool_pages: usize,
    /// Linked objects.
    pub nr_objects: usize,
    /// `min_addr`, `max_addr`: the range any virtual object lies in.
    pub min_addr: usize,
    pub max_addr: usize,
    /// The scan's grey queue.
    gray_head: *mut Obj,
    gray_tail: *mut Obj,
}

// SAFETY: the raw pointers are to pool memory owned by the state; the state is only used
// under its lock (`Kmemleak::state`).
unsafe impl Send for LeakState {}

impl Default for LeakState {
    fn default() -> Self {
        Self::new()
    }
}

impl LeakState {
    /// An empty state.
    pub const fn new() -> Self {
        LeakState {
            tree: RbRoot::new(),
            phys_tree: RbRoot::new(),
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
            pool: ptr::null_mut(),
            pool_free: 0,
            pool_pages: 0,
            nr_objects: 0,
            min_addr: usize::MAX,
            max_addr: 0,
            gray_head: ptr::null_mut(),
            gray_tail: ptr::null_mut(),
        }
    }

    /// Adds a block of memory to the pool, carved into objects.
    ///
    /// # Safety
    /// `b` is `b.len` bytes of writable memory, aligned for [`Obj`], that nothing else uses
    /// for as long as the state lives.
    pub unsafe fn pool_add(&mut self, b: PoolBlock) {
        let sz = core::mem::size_of::<Obj>();
        let n = b.len / sz;
        for i in 0..n {
            // SAFETY: inside the block (caller's guarantee), aligned: the base is aligned
            // and `sz` is a multiple of the alignment.
            let o = unsafe { b.base.as_ptr().add(i * sz) }.cast::<Obj>();
            // SAFETY: `o` is inside the caller's pool block and aligned for `Obj` (checked above);
            // nothing else uses the fresh block, and a free object's only used field is `next`
            // (invariant 3), so writing just that field initialises all that is read.
            unsafe { ptr::addr_of_mut!((*o).next).write(self.pool) };
            self.pool = o;
        }
        self.pool_free += n;
        self.pool_pages += 1;
    }

    /// Takes an object from the pool, or `None` when it is empty.
    fn pool_pop(&mut self) -> Option<*mut Obj> {
        let o = self.pool;
        if o.is_null() {
            return None;
        }
        // SAFETY: a pool object (invariant 3); its `next` was written by pool_add/pool_push.
        self.pool = unsafe { ptr::addr_of!((*o).next).read() };
        self.pool_free -= 1;
        Some(o)
    }

    fn pool_push(&mut self, o: *mut Obj) {
        // SAFETY: `o` is an unlinked object of the pool memory (callers), now free.
        unsafe { ptr::addr_of_mut!((*o).next).write(self.pool) };
        self.pool = o;
        self.pool_free += 1;
    }

    fn root(&mut self, flags: u32) -> *mut RbRoot {
        if flags & OBJECT_PHYS != 0 {
            &mut self.phys_tree
        } else {
            &mut self.tree
        }
    }

    /// `__link_object`: creates and links an object. Returns `Err(None)` when the pool is
    /// empty, `Err(Some(id))` naming the object the block overlaps (nothing is linked).
    pub fn create(&mut self, n: &NewObj<'_>) -> Result<ObjId, Option<ObjId>> {
        // Find the slot first, so that an overlap costs no pool object.
        let root = self.root(n.flags);
        let end = n.pointer.saturating_add(n.size.max(1));
        // SAFETY: the tree holds linked objects (invariant 1), `root` is ours.
        let (parent, link) = unsafe {
            let mut link: *mut *mut RbNode = ptr::addr_of_mut!((*root).rb_node);
            let mut parent: *mut RbNode = ptr::null_mut();
            while !(*link).is_null() {
                parent = *link;
                let p = parent.cast::<Obj>();
                let (ps, pe) = ((*p).pointer, (*p).pointer + (*p).size.max(1));
                if end <= ps {
                    link = ptr::addr_of_mut!((*parent).rb_left);
                } else if pe <= n.pointer {
                    link = ptr::addr_of_mut!((*parent).rb_right);
                } else {
                    return Err(Some(ObjId(NonNull::new_unchecked(p))));
                }
            }
            (parent, link)
        };
        let o = self.pool_pop().ok_or(None)?;
        let mut comm = [0u8; TASK_COMM_LEN];
        let c = n.comm.as_bytes();
        let l = c.len().min(TASK_COMM_LEN - 1);
        comm[..l].copy_from_slice(&c[..l]);
        // SAFETY: `o` is a free pool object (invariant 3), ours to initialise; then it is
        // linked at the slot found above (the tree did not change since: `&mut self`).
        unsafe {
            o.write(Obj {
                rb: RbNode::new(),
                prev: self.tail,
                next: ptr::null_mut(),
                gray_next: ptr::null_mut(),
                flags: OBJECT_ALLOCATED | n.flags,
                min_count: n.min_count,
                count: 0,
                checksum: 0,
                pointer: n.pointer,
                size: n.size,
                excess_ref: 0,
                jiffies: n.jiffies,
                pid: n.pid,
                comm,
                trace: n.trace,
                stack: n.stack,
                area_start: 0,
                area_size: 0,
            });
            rb_link_node(o.cast(), parent, link);
            rb_insert_color(o.cast(), root);
            if self.tail.is_null() {
                self.head = o;
            } else {
                (*self.tail).next = o;
            }
        }
        self.tail = o;
        self.nr_objects += 1;
        if n.flags & OBJECT_PHYS == 0 {
            self.min_addr = self.min_addr.min(n.pointer);
            self.max_addr = self.max_addr.max(end);
        }
        // SAFETY: non-null (from the pool).
        Ok(ObjId(unsafe { NonNull::new_unchecked(o) }))
    }

    /// `__lookup_object`: the object containing `ptr` (with `alias`) or starting at it.
    /// Returns `Err(id)` when `ptr` is inside an object but not its start and `alias` is
    /// false ("Found object by alias").
    pub fn lookup(&self, ptr: usize, alias: bool, phys: bool) -> Result<Option<ObjId>, ObjId> {
        let mut rb = if phys {
            self.phys_tree.rb_node
        } else {
            self.tree.rb_node
        };
        while !rb.is_null() {
            let o = rb.cast::<Obj>();
            // SAFETY: tree nodes are linked objects (invariant 1).
            let (s, sz) = unsafe { ((*o).pointer, (*o).size.max(1)) };
            if ptr < s {
                // SAFETY: `rb` is the node of `o`, a linked object (invariant 1) on the tree we
                // hold under kmemleak_lock (`&self`), so its child link is initialised and stable.
                rb = unsafe { (*rb).rb_left };
            } else if s + sz <= ptr {
                // SAFETY: `rb` is the node of `o`, a linked object (invariant 1) on the tree we
                // hold under kmemleak_lock (`&self`), so its right-child link is initialised and
                // stable.
                rb = unsafe { (*rb).rb_right };
            } else {
                // SAFETY: non-null.
                let id = ObjId(unsafe { NonNull::new_unchecked(o) });
                return if s == ptr || alias {
                    Ok(Some(id))
                } else {
                    Err(id)
                };
            }
        }
        Ok(None)
    }

    /// Unlinks an object and returns its memory to the pool.
    pub fn remove(&mut self, id: ObjId) {
        let o = id.0.as_ptr();
        // SAFETY: `id` is linked (invariant 4); unlinking it from both structures keeps
        // invariant 1, then it goes to the pool (invariant 3).
        unsafe {
            let root = self.root((*o).flags);
            rb_erase(o.cast(), root);
            let (p, n) = ((*o).prev, (*o).next);
            if p.is_null() {
                self.head = n;
            } else {
                (*p).next = n;
            }
            if n.is_null() {
                self.tail = p;
            } else {
                (*n).prev = p;
            }
        }
        self.nr_objects -= 1;
        self.pool_push(o);
    }

    /// The object behind `id`.
    pub fn get(&self, id: ObjId) -> &Obj {
        // SAFETY: `id` is linked (invariant 4), so valid; `&self` keeps the state (and so
        // the object) from changing.
        unsafe { id.0.as_ref() }
    }

    /// The object behind `id`, mutably.
    pub fn get_mut(&mut self, id: ObjId) -> &mut Obj {
        // SAFETY: as `get`; `&mut self` makes the access exclusive.
        unsafe { &mut *id.0.as_ptr() }
    }

    /// The first object in allocation order.
    pub fn first(&self) -> Option<ObjId> {
        NonNull::new(self.head).map(ObjId)
    }

    /// The object allocated after `id`.
    pub fn next(&self, id: ObjId) -> Option<ObjId> {
        NonNull::new(self.get(id).next).map(ObjId)
    }

    /// Appends `id` to the grey queue.
    pub fn gray_push(&mut self, id: ObjId) {
        let o = id.0.as_ptr();
        self.get_mut(id).gray_next = ptr::null_mut();
        if self.gray_tail.is_null() {
            self.gray_head = o;
        } else {
            // SAFETY: the queue holds linked objects (only `gray_push` adds, and objects are
            // not removed during a scan: the scan holds the lock).
            unsafe { (*self.gray_tail).gray_next = o };
        }
        self.gray_tail = o;
    }

    /// Takes the first object of the grey queue.
    pub fn gray_pop(&mut self) -> Option<ObjId> {
        let o = NonNull::new(self.gray_head)?;
        // SAFETY: `o` is the head of the grey queue, which holds only linked objects (only
        // `gray_push` adds, and objects are not removed during a scan: the scan holds the lock,
        // here `&mut self`), so its `gray_next` is initialised and ours to read.
        self.gray_head = unsafe { (*o.as_ptr()).gray_next };
        if self.gray_head.is_null() {
            self.gray_tail = ptr::null_mut();
        }
        Some(ObjId(o))
    }
}
