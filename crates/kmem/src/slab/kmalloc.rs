//! The kmalloc family (include/linux/slab.h, mm/slab_common.c, mm/util.c).
//!
//! Requests up to [`KMALLOC_MAX_CACHE_SIZE`] (8 KiB) are served by the kmalloc caches chosen by
//! size (`kmalloc_index`: 8, 16, 32, 64, 96, 128, 192, 256 … 8k) and by GFP flags
//! (`kmalloc_type`: `__GFP_DMA` → `dma-kmalloc-*`, `__GFP_RECLAIMABLE` → `kmalloc-rcl-*`,
//! `__GFP_ACCOUNT` → `kmalloc-cg-*`). Larger requests, up to [`KMALLOC_MAX_SIZE`] (4 MiB), are
//! compound pages from the page allocator marked `PGTY_large_kmalloc` and counted in the
//! node's unreclaimable slab pages, as Linux's `kmalloc_large` does; above that kmalloc fails
//! with a warning. `kmalloc(0)` returns [`ZERO_SIZE_PTR`]; `kfree` of NULL or `ZERO_SIZE_PTR`
//! does nothing. Power-of-two sizes are naturally aligned (the kmalloc caches are aligned to
//! their size's largest power-of-two divisor, debugging included); everything is at least
//! 8-byte aligned.
//!
//! Bad pointers given to `kfree`/`ksize` (not from kmalloc, not the start of an object) are
//! reported and ignored.
//!
//! The slab side of each call (the kmalloc caches, freeing an object, `ksize`) goes to the
//! allocator in use through the `SlabAllocator` interface ([`crate::slab`]'s `dispatch!`).

use core::panic::Location;
use core::ptr::{self, NonNull};

use crate::addr::{Order, PAGE_SIZE};
use crate::gfp::GfpFlags;
use crate::mm::mm_types::PageType;
use crate::mm::NodeStat;
use crate::platform::Platform;
use crate::slab::common::{
    get_order, zero_or_null_ptr, Owner, KMALLOC_MAX_CACHE_SIZE, KMALLOC_MAX_SIZE, ZERO_SIZE_PTR,
};
use crate::slab::SlabLayer;

#[inline]
fn zero_size_ptr() -> NonNull<u8> {
    // SAFETY: ZERO_SIZE_PTR is 16, not null.
    unsafe { NonNull::new_unchecked(ZERO_SIZE_PTR as *mut u8) }
}

/// kmalloc for kmem's own metadata (random sequences).
pub(crate) fn kmalloc_internal<P: Platform>(
    m: &SlabLayer<P>,
    size: usize,
    gfp: GfpFlags,
) -> Option<*mut u8> {
    let p = m.kmalloc(size, gfp).map(|p| p.as_ptr())?;
    // Referenced only from a cache's structure, which kmemleak does not track: neither a
    // leak nor holding pointers (black).
    m.kmemleak_ignore(p);
    Some(p)
}

/// kfree for kmem's own metadata.
pub(crate) fn kfree_internal<P: Platform>(m: &SlabLayer<P>, p: *mut u8) {
    m.kfree(p)
}

impl<P: Platform> SlabLayer<P> {
    /// `kmalloc`: allocates `size` bytes.
    ///
    /// Returns [`ZERO_SIZE_PTR`] for size 0, and `None` when memory is exhausted or `size`
    /// exceeds [`KMALLOC_MAX_SIZE`] (with a warning unless `__GFP_NOWARN`).
    ///
    /// # Examples
    /// ```
    /// # use kmem::{arch::Arch, BootParams, GfpFlags};
    /// # let m = kmem_hosted::boot(&BootParams::simulated(Arch::X86_64, 64 << 20, 2).unwrap(),
    /// #     kmem_hosted::HostedConfig::deterministic(0, 1)).unwrap();
    /// let p = m.kmalloc(100, GfpFlags::GFP_KERNEL).unwrap();
    /// assert_eq!(m.ksize(p.as_ptr()), 128);
    /// m.kfree(p.as_ptr());
    /// assert_eq!(m.kmalloc(0, GfpFlags::GFP_KERNEL).unwrap().as_ptr() as usize, 0x10);
    /// ```
    #[track_caller]
    #[inline(always)]
    pub fn kmalloc(&self, size: usize, gfp: GfpFlags) -> Option<NonNull<u8>> {
        if self.slab_hooked() {
            return self.kmalloc_hooked(size, gfp);
        }
        if size == 0 {
            return Some(zero_size_ptr());
        }
        slub_direct!(kmalloc(self, size, gfp, Location::caller(),))
    }

    /// [`Self::kmalloc`] with a debugging hook or an allocator other than SLUB.
    #[track_caller]
    #[inline(never)]
    fn kmalloc_hooked(&self, size: usize, gfp: GfpFlags) -> Option<NonNull<u8>> {
        if size == 0 {
            return Some(zero_size_ptr());
        }
        if self.kfence().is_some() {
            // By value: a closure borrowing `size` and `gfp` made them memory operands of the
            // whole fast path (spilled, reloaded, `gfp` no longer a constant for KmemAlloc).
            let req = move || Some((self.kmalloc_cache(size, gfp)?, size));
            if let Some(p) = self.kfence_alloc(req, gfp, Location::caller()) {
                if self.leak.tracking() {
                    self.kmemleak_kmalloc(Some(p), size, gfp, Location::caller());
                }
                return Some(p);
            }
        }
        let p = dispatch!(self, kmalloc(self, size, gfp, Location::caller()));
        if self.leak.tracking() {
            self.kmemleak_kmalloc(p, size, gfp, Location::caller());
        }
        if self.kmemcheck.built() {
            self.kmemcheck_kmalloc_hook(p, gfp);
        }
        p
    }

    /// kmemleak's hook for a kmalloc block: the object size of its kmalloc cache (Linux's
    /// `slab_post_alloc_hook` with `s->object_size`), the size asked for a large kmalloc.
    #[inline(never)]
    pub(super) fn kmemleak_kmalloc(
        &self,
        p: Option<NonNull<u8>>,
        size: usize,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
    ) {
        let Some(p) = p else { return };
        // The block's own size (`ksize`: the cache's object size), not a size class computed
        // from the request: an allocator may have served it from elsewhere (KFENCE's pool in
        // Linux, where `__link_object` uses `kfence_ksize`), and the scan must not read past it.
        let size = if size > KMALLOC_MAX_CACHE_SIZE {
            size
        } else {
            self.ksize_keep(p.as_ptr()).max(1)
        };
        self.kmemleak_hook_alloc(p.as_ptr(), size, gfp, caller);
    }

    /// `kmalloc_nolock`: allocates `size` bytes from any context — including a hook that
    /// interrupted this CPU inside the allocator ([`SlabLayer::with_nmi_hook`]) — without
    /// spinning or waiting (mm/slub.c, Linux 6.18). `gfp` may hold only `__GFP_ACCOUNT` and
    /// `__GFP_ZERO` (others are reported and ignored); `node` is ignored (one node). Returns
    /// [`ZERO_SIZE_PTR`] for size 0 and `None`, silently, above [`KMALLOC_MAX_CACHE_SIZE`],
    /// when memory is short, or when what it needs is held by the interrupted code. Free the
    /// object with [`Self::kfree_nolock`] or [`Self::kfree`]. SLUB only: `None` under SLAB
    /// and SLOB.
    #[track_caller]
    pub fn kmalloc_nolock(&self, size: usize, gfp: GfpFlags, node: i32) -> Option<NonNull<u8>> {
        let _ = node;
        if size == 0 {
            return Some(zero_size_ptr());
        }
        dispatch!(self, kmalloc_nolock(self, size, gfp, Location::caller()))
    }

    /// `kfree_nolock`: frees a kmalloc object from any context without spinning or waiting;
    /// what cannot be freed at once is deferred to the next safe point (mm/slub.c, Linux
    /// 6.18). A large-kmalloc block is refused with a warning, as in Linux.
    #[track_caller]
    pub fn kfree_nolock(&self, p: *const u8) {
        if zero_or_null_ptr(p as usize) {
            return;
        }
        dispatch!(self, kfree_nolock(self, p.cast_mut(), Location::caller()))
    }

    /// `kmalloc_large`: a request above [`KMALLOC_MAX_CACHE_SIZE`], from the page allocator.
    #[track_caller]
    pub fn kmalloc_large(&self, size: usize, gfp: GfpFlags) -> Option<NonNull<u8>> {
        let p = self.kmalloc_large_untracked(size, gfp);
        if self.leak.tracking() {
            self.kmemleak_kmalloc(p, size, gfp, Location::caller());
        }
        p
    }

    /// `kmalloc_large` for the slab allocators' own kmalloc paths (the public `kmalloc`
    /// tracks the block for kmemleak once, after them).
    #[track_caller]
    pub(crate) fn kmalloc_large_untracked(
        &self,
        size: usize,
        gfp: GfpFlags,
    ) -> Option<NonNull<u8>> {
        if size > KMALLOC_MAX_SIZE {
            if !gfp.contains(GfpFlags::__GFP_NOWARN) {
                self.warn(format_args!(
                    "kmalloc: size {size} exceeds KMALLOC_MAX_SIZE ({KMALLOC_MAX_SIZE})"
                ));
            }
            return None;
        }
        self.kmalloc_large_order_untracked(get_order(size), gfp)
    }

    /// Allocates a large-kmalloc block of `1 << order` pages (naturally aligned), freed with
    /// [`Machine::kfree`]. Used for over-aligned requests.
    #[track_caller]
    pub fn kmalloc_large_order(&self, order: u32, gfp: GfpFlags) -> Option<NonNull<u8>> {
        let p = self.kmalloc_large_order_untracked(order, gfp);
        if self.leak.tracking() {
            if let Some(p) = p {
                let size = PAGE_SIZE << order;
                self.kmemleak_hook_alloc(p.as_ptr(), size, gfp, Location::caller());
            }
        }
        p
    }

    /// `kmalloc_large_order` without the kmemleak hook (SLOB's page-sized objects, tracked by
    /// the cache API).
    #[track_caller]
    pub(crate) fn kmalloc_large_order_untracked(
        &self,
        order: u32,
        gfp: GfpFlags,
    ) -> Option<NonNull<u8>> {
        self.kmalloc_large_order_node(order, gfp, crate::page_alloc::NUMA_NO_NODE)
    }

    /// `__kmalloc_large_node_noprof`: a large-kmalloc block from `alloc_pages_node(node)`
    /// (`NUMA_NO_NODE`: `alloc_pages`), untracked.
    #[track_caller]
    pub(crate) fn kmalloc_large_order_node(
        &self,
        order: u32,
        gfp: GfpFlags,
        node: i32,
    ) -> Option<NonNull<u8>> {
        let order = Order::try_new(order).ok()?;
        let gfp =
            gfp.without(GfpFlags::__GFP_HIGHMEM | GfpFlags::__GFP_MOVABLE) | GfpFlags::__GFP_COMP;
        let page = if node == crate::page_alloc::NUMA_NO_NODE {
            self.alloc_pages(gfp, order)?
        } else {
            self.alloc_pages_node(node, gfp, order)?
        };
        page.set_page_type(PageType::LargeKmalloc);
        self.mod_page_node_stat(page, NodeStat::SlabUnreclaimable, order.pages() as isize);
        let va = self.page_address(page)?;
        if self.kmemcheck.built() {
            self.kmemcheck_large_alloc(va.as_ptr(), PAGE_SIZE << order.as_u32(), gfp);
        }
        NonNull::new(va.as_ptr::<u8>())
    }

    /// `kzalloc`: zeroed `kmalloc`.
    #[track_caller]
    #[inline]
    pub fn kzalloc(&self, size: usize, gfp: GfpFlags) -> Option<NonNull<u8>> {
        self.kmalloc(size, gfp | GfpFlags::__GFP_ZERO)
    }

    /// `kmalloc_array`: `n * size` bytes, `None` on overflow.
    #[track_caller]
    pub fn kmalloc_array(&self, n: usize, size: usize, gfp: GfpFlags) -> Option<NonNull<u8>> {
        let bytes = n.checked_mul(size)?;
        self.kmalloc(bytes, gfp)
    }

    /// `kcalloc`: zeroed `kmalloc_array`.
    #[track_caller]
    pub fn kcalloc(&self, n: usize, size: usize, gfp: GfpFlags) -> Option<NonNull<u8>> {
        self.kmalloc_array(n, size, gfp | GfpFlags::__GFP_ZERO)
    }

    /// `krealloc`: resizes a kmalloc block.
    ///
    /// NULL or `ZERO_SIZE_PTR` behaves as `kmalloc`; size 0 frees and returns
    /// `ZERO_SIZE_PTR`; the same pointer comes back while `ksize` is enough; otherwise the
    /// contents move to a new block. On failure `None` is returned and `p` is untouched.
    ///
    /// With `__GFP_ZERO` the bytes a kept block gains are zeroed (from the size last asked
    /// for when slub_debug tracks it, else the tail past `new_size`), as Linux 6.18's
    /// `__do_krealloc` does; a moved block gets the old contents up to the size last asked
    /// for (and zeroes after them, with `__GFP_ZERO`).
    ///
    /// `p` is checked to be a kmalloc block of this machine before it is read; machine
    /// memory is raw memory that Rust references do not cover.
    #[track_caller]
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn krealloc(&self, p: *mut u8, new_size: usize, gfp: GfpFlags) -> Option<NonNull<u8>> {
        if new_size == 0 {
            self.kfree(p);
            return Some(zero_size_ptr());
        }
        let (ks, orig) = if zero_or_null_ptr(p as usize) {
            (0, 0)
        } else if self.is_kfence_address(p) {
            // A KFENCE object's ksize is the size asked for (`kfence_ksize`), and it is
            // never resized in place beyond it.
            (self.ksize_keep(p), 0)
        } else {
            let ks = self.ksize_keep(p);
            (ks, dispatch!(self, krealloc_orig_size(self, p)).min(ks))
        };
        if ks >= new_size {
            // Zero the spare memory (mm/slub.c `__do_krealloc` when `want_init_on_alloc`):
            // from the old requested size up when growing within a tracked object, the tail
            // beyond the new size otherwise. The red zone is then rewritten over the slack.
            if gfp.contains(GfpFlags::__GFP_ZERO) {
                let (from, to) = if orig != 0 && orig < new_size {
                    (orig, new_size)
                } else {
                    (new_size, ks)
                };
                // SAFETY: `p` is a live kmalloc block of `ks` usable bytes, the caller's.
                unsafe { ptr::write_bytes(p.add(from), 0, to - from) };
            }
            if !self.is_kfence_address(p) {
                dispatch!(self, krealloc_in_place(self, p, new_size));
            }
            // SAFETY: `p` is non-null here (ks > 0).
            return Some(unsafe { NonNull::new_unchecked(p) });
        }
        let n = self.kmalloc(new_size, gfp)?;
        if ks > 0 {
            // Only what was asked for is copied (`orig_size ?: ks`): the slack of a tracked
            // object is its red zone, not data.
            let len = if orig != 0 { orig } else { ks };
            // SAFETY: the old block has at least `len` bytes, the new one more than `ks`;
            // distinct blocks.
            // (kmemcheck copies the shadow with the bytes: a `rep movs` in Linux.)
            unsafe { self.kmemcheck_memcpy(n.as_ptr(), p, len) };
            self.kfree(p);
        }
        Some(n)
    }

    /// `kfree`: frees a kmalloc block. NULL and `ZERO_SIZE_PTR` are no-ops; pointers kmem
    /// never returned are reported and ignored.
    #[track_caller]
    #[inline(always)]
    pub fn kfree(&self, p: *const u8) {
        if zero_or_null_ptr(p as usize) {
            return;
        }
        if self.slab_hooked() {
            return self.kfree_hooked(p);
        }
        let caller = Location::caller();
        match self.virt_to_slab(p) {
            // SAFETY: `virt_to_slab` returned a slab head page holding `p` and its `mapping`.
            Some((page, cache)) => unsafe {
                slub_direct!(kfree(self, page, cache, p.cast_mut(), caller,))
            },
            None => self.kfree_not_slab(p, caller),
        }
    }

    /// [`Self::kfree`] of a non-NULL pointer with a debugging hook or an allocator other
    /// than SLUB.
    #[track_caller]
    #[inline(never)]
    fn kfree_hooked(&self, p: *const u8) {
        if self.leak.tracking_free() {
            self.kmemleak_free(p);
        }
        if self.kmemcheck.built() {
            self.kmemcheck_free_hook(None, p);
        }
        let caller = Location::caller();
        if self.kfence_free(p, caller) {
            return;
        }
        // The slab lookup inline (`virt_to_slab`), everything else out of line: the
        // classification returns a three-way enum through memory, which cost the kmalloc+kfree
        // pair a call and an indirect jump once it stopped being inlined.
        match self.virt_to_slab(p) {
            // SAFETY: `virt_to_slab` returned a slab head page holding `p` and its `mapping`.
            Some((page, cache)) => unsafe {
                dispatch!(self, kfree(self, page, cache, p.cast_mut(), caller))
            },
            None => self.kfree_not_slab(p, caller),
        }
    }

    /// `kfree` of a pointer not in a slab page: a large kmalloc block, or a bad pointer.
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn kfree_not_slab(&self, p: *const u8, caller: &'static Location<'static>) {
        match self.owner_of(p) {
            // SAFETY: `owner_of` returned the slab head page holding `p` and its `mapping`.
            Owner::Slab(page, cache) => unsafe {
                dispatch!(self, kfree(self, page, cache, p.cast_mut(), caller))
            },
            Owner::Large(page) => self.free_large_kmalloc(page, p),
            Owner::Other(page) => {
                self.warn(format_args!(
                    "kfree: object pointer 0x{:016x} was not returned by kmalloc",
                    self.to_model(p as usize)
                ));
                self.dump_page(page, "Not a kmalloc allocation");
            }
            Owner::Unknown => self.bad_address("kfree", self.to_model(p as usize)),
        }
    }

    /// Frees a block from `kmalloc(size, gfp)` without looking at its `struct page` first: the
    /// cache follows from `size` and `gfp` (what a sized deallocation, like Rust's
    /// `GlobalAlloc::dealloc`, knows). Large sizes fall back to [`Machine::kfree`].
    ///
    /// # Safety
    /// `p` was returned by `kmalloc(n, gfp)` (or `krealloc`) of this machine for an `n` in the
    /// same kmalloc size class as `size` (same `kmalloc_index` when both are at most
    /// [`KMALLOC_MAX_CACHE_SIZE`]), with the same `kmalloc_type` of `gfp`, and is freed once.
    #[track_caller]
    #[inline]
    pub unsafe fn kfree_sized(&self, p: *mut u8, size: usize, gfp: GfpFlags) {
        if self.slab_hooked() || size == 0 || size > KMALLOC_MAX_CACHE_SIZE {
            // SAFETY: forwarded caller guarantee.
            return unsafe { self.kfree_sized_hooked(p, size, gfp) };
        }
        // SAFETY: forwarded caller guarantee; no hook and SLUB (KFENCE is not set up, so
        // `p` is not one of its objects).
        unsafe { slub_direct!(kfree_sized(self, p, size, gfp, Location::caller(),)) }
    }

    /// [`Self::kfree_sized`] with a debugging hook, another allocator, or a size that is
    /// not a kmalloc cache's.
    ///
    /// # Safety
    /// As [`Self::kfree_sized`].
    #[track_caller]
    #[inline(never)]
    unsafe fn kfree_sized_hooked(&self, p: *mut u8, size: usize, gfp: GfpFlags) {
        if size == 0 || size > KMALLOC_MAX_CACHE_SIZE || self.is_kfence_address(p) {
            self.kfree(p);
            return;
        }
        if self.leak.tracking_free() {
            self.kmemleak_free(p);
        }
        if self.kmemcheck.built() {
            self.kmemcheck_free_hook(None, p);
        }
        // SAFETY: forwarded caller guarantee.
        unsafe { dispatch!(self, kfree_sized(self, p, size, gfp, Location::caller())) }
    }

    #[track_caller]
    fn free_large_kmalloc(&self, page: crate::PagePtr, p: *const u8) {
        let base = self.page_address(page).map(|v| v.as_usize()).unwrap_or(0);
        if base != p as usize {
            self.warn(format_args!(
                "kfree: 0x{:016x} is inside a large kmalloc block, not its start",
                self.to_model(p as usize)
            ));
            return;
        }
        let order = page.compound_order();
        if self.kmemcheck.built() {
            self.kmemcheck_untrack_pages(p.cast_mut(), PAGE_SIZE << order.as_u32());
        }
        page.clear_page_type();
        self.mod_page_node_stat(page, NodeStat::SlabUnreclaimable, -(order.pages() as isize));
        self.__free_pages(page, order);
    }

    /// `ksize`: the usable size of a kmalloc block (0 for NULL, `ZERO_SIZE_PTR` and pointers
    /// kmem did not hand out, the latter with a warning). The caller may use all of it: as
    /// 6.18's `__ksize` (`skip_orig_size_check`), a slab object's requested size becomes its
    /// object size, so `slub_debug`'s kmalloc red zone no longer covers the slack.
    #[track_caller]
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn ksize(&self, p: *const u8) -> usize {
        self.ksize_of(p, true)
    }

    /// The bytes of the large kmalloc block at `p` (pages straight from the page allocator,
    /// `kmalloc_large`), or `None` for anything else: a slab object, or a pointer kmem did
    /// not hand out, about which nothing is said here (a `kfree` of it reports it). For a
    /// caller that accounts the large blocks it frees without [`Self::ksize`]'s slab lookup
    /// (`libkmem_malloc.so`'s `free` of a page-aligned block, which was `ksize` before:
    /// 0.45-0.5 % of python3's and sqlite3's samples).
    #[inline]
    pub fn kmalloc_large_size(&self, p: *const u8) -> Option<usize> {
        let head = self.virt_to_page_fast(p)?.compound_head();
        (head.raw_page_type() >> 24 == PageType::LargeKmalloc as u32)
            .then(|| PAGE_SIZE << head.compound_order().as_u32())
    }

    /// [`Self::ksize`] for kmem's own bookkeeping (krealloc, the allocation hooks), which
    /// leaves the requested size alone (`__do_krealloc` reads the slab's internals).
    #[track_caller]
    pub(crate) fn ksize_keep(&self, p: *const u8) -> usize {
        self.ksize_of(p, false)
    }

    #[track_caller]
    // `p` is only looked up: `owner_of` finds its page in the memmap (or refuses it), and the
    // allocators read their own slab metadata for a pointer inside one of their slab pages.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    fn ksize_of(&self, p: *const u8, skip_orig: bool) -> usize {
        if zero_or_null_ptr(p as usize) {
            return 0;
        }
        if let Some(n) = self.kfence_ksize(p) {
            return n;
        }
        match self.owner_of(p) {
            Owner::Slab(page, cache) => {
                // SAFETY: `owner_of` returned the slab head page holding `p` and its `mapping`.
                let n = unsafe { dispatch!(self, ksize(self, page, cache, p)) };
                if skip_orig && n != 0 {
                    // SAFETY: the same `owner_of` result: `page` is the slab head page holding
                    // `p` and `cache` its `mapping`.
                    unsafe { dispatch!(self, skip_orig_size_check(self, page, cache, p)) };
                }
                n
            }
            Owner::Large(page) => PAGE_SIZE << page.compound_order().as_u32(),
            _ => {
                self.warn(format_args!(
                    "ksize: 0x{:016x} is not a kmalloc allocation",
                    self.to_model(p as usize)
                ));
                0
            }
        }
    }

    /// `kmalloc_size_roundup` of the allocator in use.
    pub fn kmalloc_size_roundup(&self, size: usize) -> usize {
        dispatch!(self, kmalloc_size_roundup(size))
    }

    /// `kmemdup`: a kmalloc copy of `src`.
    #[track_caller]
    pub fn kmemdup(&self, src: &[u8], gfp: GfpFlags) -> Option<NonNull<u8>> {
        let p = self.kmalloc(src.len(), gfp)?;
        if !src.is_empty() {
            // SAFETY: `p` has at least `src.len()` bytes and is a new block.
            unsafe { ptr::copy_nonoverlapping(src.as_ptr(), p.as_ptr(), src.len()) };
        }
        Some(p)
    }

    /// `kstrdup`: a NUL-terminated kmalloc copy of `s`.
    #[track_caller]
    pub fn kstrdup(&self, s: &str, gfp: GfpFlags) -> Option<NonNull<u8>> {
        let p = self.kmalloc(s.len() + 1, gfp)?;
        // SAFETY: `p` has `len + 1` bytes.
        unsafe {
            ptr::copy_nonoverlapping(s.as_ptr(), p.as_ptr(), s.len());
            *p.as_ptr().add(s.len()) = 0;
        }
        Some(p)
    }

    /// `kfree_sensitive`: zeroes the whole block (`ksize` bytes) before freeing it.
    ///
    /// `p` is checked (through `ksize`) to be a kmalloc block of this machine.
    #[track_caller]
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn kfree_sensitive(&self, p: *mut u8) {
        if zero_or_null_ptr(p as usize) {
            return;
        }
        let ks = self.ksize(p);
        for i in 0..ks {
            // SAFETY: the block has `ks` usable bytes; volatile so the wipe is not elided
            // (memzero_explicit).
            unsafe { ptr::write_volatile(p.add(i), 0) };
        }
        self.kfree(p);
    }
}

/// kds's node allocator on a machine's `kmalloc`, with the caller's GFP flags, whose lock-free
/// readers are protected by the machine's RCU ([`kds::alloc::NodeAlloc::rcu`]): an XArray or
/// IDR built on it frees its nodes after grace periods instead of counting readers.
///
/// A layout is served by `kmalloc(layout.pad_to_align().size())`, which is aligned to at least
/// the layout's alignment (kmalloc aligns power-of-two sizes to the size, others to their
/// largest power-of-two divisor, which the padded size makes a multiple of the alignment).
pub struct KmallocNodeAlloc<'a, P: Platform>(pub &'a SlabLayer<P>);

impl<P: Platform> Clone for KmallocNodeAlloc<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P: Platform> Copy for KmallocNodeAlloc<'_, P> {}

// SAFETY: kmalloc returns blocks of at least the padded size, aligned as argued above, valid
// until kfreed; zero-sized layouts get a dangling aligned pointer never passed to kfree.
unsafe impl<P: Platform> kds::alloc::NodeAlloc for KmallocNodeAlloc<'_, P> {
    fn alloc(&self, layout: core::alloc::Layout, gfp: kds::alloc::Gfp) -> Option<NonNull<u8>> {
        if layout.size() == 0 {
            return NonNull::new(layout.align() as *mut u8);
        }
        // kds's Gfp has the bit values of Linux's gfp_t, like GfpFlags.
        let p = self.0.kmalloc(
            layout.pad_to_align().size(),
            GfpFlags::from_bits(gfp.bits()),
        )?;
        debug_assert!(p.as_ptr().align_offset(layout.align()) == 0);
        Some(p)
    }
    unsafe fn free(&self, ptr: NonNull<u8>, layout: core::alloc::Layout) {
        if layout.size() != 0 {
            self.0.kfree(ptr.as_ptr());
        }
    }
    fn rcu(&self) -> Option<&dyn kds::rcu::RcuDomain> {
        let mm: &crate::mm::MemoryModel<P> = self.0;
        Some(mm)
    }
}
