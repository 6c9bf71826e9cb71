//! kmemleak, the kernel memory leak detector (mm/kmemleak.c, Documentation/dev-tools/
//! kmemleak.rst of Linux 6.18): a tracing garbage collector that reports instead of freeing.
//!
//! # What is tracked
//! Every allocation of the allocators kmem has, hooked where Linux hooks them: `kmalloc`
//! (slab objects of the kmalloc caches with their cache's object size, large kmallocs with the
//! size asked), `kmem_cache_alloc` (the cache's object size; caches created with
//! [`SlabFlags::NOLEAKTRACE`] are not tracked: `kmemleak_alloc_recursive`), `vmalloc` (the
//! size asked) and, opt in, ranges by physical address ([`SlabLayer::kmemleak_alloc_phys`],
//! what memblock's users call in Linux; such objects are grey, `min_count` 0). Each object
//! records Linux's metadata (`struct kmemleak_object`, [`object::Obj`]): pointer, size,
//! `min_count`, `count`, flags (`OBJECT_ALLOCATED`, `REPORTED`, `NO_SCAN`, `FULL_SCAN`,
//! `PHYS`), creation jiffies, the task's comm and pid, the checksum and the trace (kmem keeps
//! the allocating Rust call site; kmem has no percpu allocator, so there are no percpu
//! objects). Freeing (`kfree`, `kmem_cache_free`, `vfree`, …) deletes the object first.
//!
//! # The scan ([`scan`])
//! Colours by `count` against `min_count`: white (`count < min_count`, a leak candidate), grey
//! (`min_count == 0`, a root, or enough references found), black (`min_count == -1`,
//! ignored). The roots are the grey objects — the machine's own state (kmem's `.data`/`.bss`:
//! registered at `kmemleak_init` like Linux's `_sdata`/`__bss_start`), physical ranges,
//! everything marked `kmemleak_not_leak` — and the caller's extra roots (the shell's
//! variables; Linux's task stacks). Each grey object's contents are read word by word at
//! pointer alignment; a value that points at a tracked object's start or inside it counts as a
//! reference; an object reaching `min_count` turns grey and is scanned in turn. Then white
//! objects whose contents changed since the last scan (CRC32, `update_checksum`) are painted
//! grey for this scan and the grey list is scanned again; what is still white, older than
//! `MSECS_MIN_AGE` (5 s) at the scan's start and not reported before is reported:
//! `kmemleak: N new suspected memory leaks (see /sys/kernel/debug/kmemleak)`. So a new leak
//! needs two scans: the first records its checksum (a change from 0), the second sees it
//! unchanged (an all-zero block, whose CRC32 is 0, is reported by the first, as in Linux).
//!
//! kmem specifics: a value above every tracked object is also tried as a *model* address
//! (the addresses people see: on the hosted platform memory written through the shell holds
//! them, while kmem's own pointers are real; on bare metal the two are equal). Objects may
//! have one scan area (`kmemleak_scan_area`; a second makes the object fully scanned, what
//! Linux does when it cannot allocate an area). Front ends can scan memory ranges as roots
//! ([`SlabLayer::kmemleak_scan_ranges`]: a program's data, bss and stacks in libkmem_malloc,
//! the image's `.data`/`.bss` on bare metal) and lower the minimum age
//! ([`SlabLayer::kmemleak_set_min_age`]). Objects allocated before `kmemleak_init` (the slab
//! bootstrap) are not tracked: Linux logs them in its static `mem_pool` early; kmem starts
//! after `kmem_cache_init`, before `vmalloc_init`, as `mm_core_init` calls `kmemleak_init`.
//! kmem's `vmap_area` objects are ignored (black): they hold only links, the page array and
//! the area's addresses (which Linux keeps out of the scan with a scan area), so a vmalloc
//! block's one expected reference is its user's (`min_count` 1; Linux counts its
//! `vm_struct`'s too, 2).
//!
//! # Metadata without recursion
//! Objects come from kmemleak's own pool (Linux's `mem_pool` + `SLAB_NOLEAKTRACE`
//! `object_cache`): whole pages from the page allocator, taken outside `kmemleak_lock`, never
//! tracked, never scanned, recycled on free (see [`object`]). If a page cannot be had,
//! kmemleak disables itself (`Cannot allocate a kmemleak_object structure`).
//!
//! # Control
//! The boot parameter `kmemleak=on|off` (kmem is built as with
//! `CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF`: without `kmemleak=on` nothing is tracked and nothing
//! is printed). `/sys/kernel/debug/kmemleak` ([`report`]): reading lists the reported objects
//! in Linux's format; writing takes `scan`, `clear`, `dump=ADDR`, `scan=SECS`, `scan=on|off`,
//! `stack=on|off`, `off`. The automatic scan (Linux's `kmemleak` thread: first scan 60 s after
//! boot, then every 600 s or `scan=SECS`) is a timer checked by [`SlabLayer::kmemleak_poll`],
//! which a front end calls between commands (the shell does before each line); there is no
//! thread. `stack=` is accepted and recorded: kmem has no task stacks of its own, the front
//! end's roots stand for them.
//!
//! # Cost when off
//! Each hook is one relaxed load of a boolean and a predicted branch
//! ([`Kmemleak::tracking`]).
//!
//! # Locking
//! `kmemleak_lock` (`Kmemleak::state`, class `kmemleak_lock`) protects the objects, the tree,
//! the list, the pool and the scan parameters; the scan holds it throughout (Linux's
//! `scan_mutex` + `kmemleak_lock` + the objects' locks in one), so a block cannot be freed
//! while it is scanned: the free hook waits. It is a leaf: taken in hooks under any lock
//! (`slab_mutex`, `vmap_area_lock`, CPU sections), nothing but `logbuf_lock` is taken under it;
//! pool pages are allocated with it released. Scanning reads memory other CPUs may be writing
//! (volatile word reads, as Linux reads with KCSAN off).

pub mod object;
pub mod report;
pub mod scan;

use core::panic::Location;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::addr::{Order, PhysAddr, VirtAddr, PAGE_SIZE};
use crate::gfp::GfpFlags;
use crate::locking::{Lock, KMEMLEAK_LOCK};
use crate::platform::{LogLevel, Platform};
use crate::slab::common::{CacheHandle, SlabFlags};
use crate::slab::SlabLayer;
use object::{LeakState, NewObj, PoolBlock, KMEMLEAK_BLACK, KMEMLEAK_GREY, OBJECT_PHYS};

/// `MSECS_MIN_AGE`: minimum object age for reporting.
pub const MSECS_MIN_AGE: u64 = 5000;
/// `SECS_FIRST_SCAN`: delay before the first automatic scan.
pub const SECS_FIRST_SCAN: u64 = 60;
/// `SECS_SCAN_WAIT`: delay between automatic scans.
pub const SECS_SCAN_WAIT: u64 = 600;

/// The scan parameters and status (under `kmemleak_lock` with the objects).
pub struct Control {
    /// `jiffies_last_scan`.
    pub last_scan: u64,
    /// `kmemleak_stack_scan`.
    pub stack_scan: bool,
    /// Automatic scanning on (the scan thread exists).
    pub auto_scan: bool,
    /// `jiffies_scan_wait`.
    pub scan_wait: u64,
    /// When the next automatic scan is due.
    pub next_scan: u64,
    /// `kmemleak_found_leaks`.
    pub found_leaks: bool,
    /// `kmemleak_verbose`: print leaks to the log as they are found.
    pub verbose: bool,
    /// `jiffies_min_age`: `MSECS_MIN_AGE` in jiffies.
    pub min_age: u64,
}

/// The locked part of kmemleak.
pub struct Inner {
    pub objs: LeakState,
    pub ctl: Control,
}

/// kmemleak's machine-wide state (in [`SlabLayer`]).
pub struct Kmemleak<R: lock_api::RawMutex> {
    /// `kmemleak=on` was given (the detector exists in this boot).
    configured: bool,
    /// `kmemleak=off` was given (Linux's `kmemleak_boot_config` → `kmemleak_disable`).
    boot_off: bool,
    /// `kmemleak_enabled`: allocations are tracked.
    enabled: AtomicBool,
    /// `kmemleak_free_enabled`: frees are tracked.
    free_enabled: AtomicBool,
    /// `kmemleak_error`: disabled (irreversible).
    error: AtomicBool,
    /// `kmemleak_lock`.
    pub(crate) state: Lock<R, Inner>,
}

impl<R: lock_api::RawMutex> Kmemleak<R> {
    /// The state for a command line: `kmemleak=on` turns the detector on (from
    /// `kmemleak_init`), anything else leaves it off.
    pub(crate) fn from_cmdline(cmdline: &str) -> Self {
        let (mut on, mut off) = (false, false);
        for w in cmdline.split_whitespace() {
            match w {
                "kmemleak=on" => (on, off) = (true, false),
                "kmemleak=off" => (on, off) = (false, true),
                _ => {}
            }
        }
        Kmemleak {
            configured: on,
            boot_off: off,
            enabled: AtomicBool::new(false),
            free_enabled: AtomicBool::new(false),
            error: AtomicBool::new(!on),
            state: Lock::new(
                &KMEMLEAK_LOCK,
                Inner {
                    objs: LeakState::new(),
                    ctl: Control {
                        last_scan: 0,
                        stack_scan: true,
                        auto_scan: false,
                        scan_wait: 0,
                        next_scan: u64::MAX,
                        found_leaks: false,
                        verbose: false,
                        min_age: 0,
                    },
                },
            ),
        }
    }

    /// Whether allocations are tracked: the hooks' one branch.
    #[inline(always)]
    pub fn tracking(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Whether frees are tracked.
    #[inline(always)]
    pub fn tracking_free(&self) -> bool {
        self.free_enabled.load(Ordering::Relaxed)
    }
}

/// Why a kmemleak call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KmemleakError {
    /// kmemleak is off (`EPERM` from the debugfs file).
    Disabled,
    /// Bad text (`EINVAL`).
    Invalid,
}

/// The numbers `kmemleak_stats` gives tests and the bench.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KmemleakStats {
    /// Tracked objects.
    pub objects: usize,
    /// Objects reported (`OBJECT_REPORTED`) and still unreferenced.
    pub reported: usize,
    /// Free metadata in the pool.
    pub pool_free: usize,
    /// Pages the pool took.
    pub pool_pages: usize,
}

impl<P: Platform> SlabLayer<P> {
    /// Whether kmemleak tracks allocations now (`kmemleak=on`, not turned off).
    pub fn kmemleak_enabled(&self) -> bool {
        self.leak.tracking()
    }

    /// `kmemleak_init` (called by `Machine::boot` after `kmem_cache_init`): starts tracking
    /// and registers the machine's state — kmem's data/bss — as grey objects (the roots),
    /// except kmemleak's own state inside it. `kmemleak=off` prints Linux's `disabled` line.
    pub(crate) fn kmemleak_init(&self, state: *const u8, size: usize) {
        if self.leak.boot_off {
            self.printk(
                LogLevel::Info,
                format_args!("kmemleak: Kernel memory leak detector disabled"),
            );
        }
        if !self.leak.configured {
            return;
        }
        self.leak.error.store(false, Ordering::Relaxed);
        self.leak.enabled.store(true, Ordering::Relaxed);
        self.leak.free_enabled.store(true, Ordering::Relaxed);
        self.slab().hooked.store(true, Ordering::Relaxed);
        {
            let hz = self.platform().hz();
            let mut g = self.leak.state.lock();
            g.ctl.scan_wait = SECS_SCAN_WAIT * hz;
            g.ctl.min_age = MSECS_MIN_AGE * hz / 1000;
        }
        let own = (&self.leak as *const Kmemleak<P::RawLock>).cast::<u8>() as usize;
        let own_end = own + core::mem::size_of::<Kmemleak<P::RawLock>>();
        let (s, e) = (state as usize, state as usize + size);
        let caller = Location::caller();
        if own > s && own_end <= e {
            self.create_object(s, own - s, KMEMLEAK_GREY, GfpFlags::GFP_ATOMIC, 0, caller);
            self.create_object(
                own_end,
                e - own_end,
                KMEMLEAK_GREY,
                GfpFlags::GFP_ATOMIC,
                0,
                caller,
            );
        } else {
            self.create_object(s, size, KMEMLEAK_GREY, GfpFlags::GFP_ATOMIC, 0, caller);
        }
    }

    /// `kmemleak_late_init`: the automatic scan timer and the `initialized` line (Linux's
    /// late initcall; kmem calls it at the end of boot).
    pub(crate) fn kmemleak_late_init(&self) {
        if !self.leak.configured {
            return;
        }
        if !self.leak.tracking() {
            return;
        }
        let pool = {
            let mut g = self.leak.state.lock();
            let now = self.platform().jiffies();
            g.ctl.auto_scan = true;
            g.ctl.next_scan = now + SECS_FIRST_SCAN * self.platform().hz();
            g.objs.pool_free
        };
        self.printk(
            LogLevel::Info,
            format_args!("kmemleak: Automatic memory scanning thread started"),
        );
        self.printk(
            LogLevel::Info,
            format_args!(
                "kmemleak: Kernel memory leak detector initialized (mem pool available: {pool})"
            ),
        );
    }

    /// Takes a pool page outside the lock (`mem_pool_alloc` falling back): `false` when the
    /// page allocator has none.
    fn kmemleak_grow_pool(&self, gfp: GfpFlags) -> bool {
        // gfp_nested_mask(): only the reclaim context of the caller, no retries, no reserves,
        // no warning.
        let gfp = GfpFlags::from_bits(
            gfp.bits() & (GfpFlags::GFP_KERNEL.bits() | GfpFlags::GFP_ATOMIC.bits()),
        ) | GfpFlags::__GFP_NORETRY
            | GfpFlags::__GFP_NOMEMALLOC
            | GfpFlags::__GFP_NOWARN;
        let Some(page) = self.alloc_pages(gfp, Order::new(0)) else {
            return false;
        };
        let Some(va) = self.page_address(page) else {
            self.__free_pages(page, Order::new(0));
            return false;
        };
        let Some(base) = core::ptr::NonNull::new(va.as_ptr::<u8>()) else {
            return false;
        };
        let mut g = self.leak.state.lock();
        // SAFETY: a page just allocated from the buddy allocator, lowmem (no __GFP_HIGHMEM),
        // page aligned; it is never freed, so it is the state's for as long as it lives.
        unsafe {
            g.objs.pool_add(PoolBlock {
                base,
                len: PAGE_SIZE,
            })
        };
        true
    }

    /// `__create_object`: tracks `[ptr, ptr + size)`.
    pub(crate) fn create_object(
        &self,
        ptr: usize,
        size: usize,
        min_count: i32,
        gfp: GfpFlags,
        flags: u32,
        caller: &'static Location<'static>,
    ) {
        let plat = self.platform();
        let n = NewObj {
            pointer: ptr,
            size,
            min_count,
            flags,
            jiffies: plat.jiffies(),
            pid: plat.current_pid(),
            comm: plat.current_comm(),
            trace: Some(caller),
            // set_track_prepare(): saved before the lock is taken.
            stack: self.stack_depot_save_current(),
        };
        loop {
            let mut g = self.leak.state.lock();
            if !self.leak.tracking() {
                return;
            }
            match g.objs.create(&n) {
                Ok(_) => return,
                Err(Some(parent)) => {
                    self.printk(
                        LogLevel::Warning,
                        format_args!(
                            "kmemleak: Cannot insert 0x{:x} into the object search tree (overlaps existing)",
                            self.to_model(ptr)
                        ),
                    );
                    self.dump_stack(LogLevel::Warning, caller);
                    self.dump_object_info(&g, parent);
                    self.kmemleak_disable_locked(&mut g);
                    return;
                }
                Err(None) => {}
            }
            drop(g);
            if !self.kmemleak_grow_pool(gfp) {
                self.printk(
                    LogLevel::Warning,
                    format_args!("kmemleak: Cannot allocate a kmemleak_object structure"),
                );
                self.kmemleak_disable();
                return;
            }
        }
    }

    /// `kmemleak_disable`: stops tracking for good; frees the metadata unless leaks were
    /// found (then `echo clear` does).
    pub fn kmemleak_disable(&self) {
        let mut g = self.leak.state.lock();
        self.kmemleak_disable_locked(&mut g);
    }

    fn kmemleak_disable_locked(&self, g: &mut Inner) {
        if self.leak.error.swap(true, Ordering::Relaxed) {
            return;
        }
        self.leak.enabled.store(false, Ordering::Relaxed);
        self.printk(
            LogLevel::Info,
            format_args!("kmemleak: Kernel memory leak detector disabled"),
        );
        // kmemleak_do_cleanup (Linux's cleanup work, run here at once): the scan thread
        // stops, frees are no longer tracked.
        g.ctl.auto_scan = false;
        g.ctl.next_scan = u64::MAX;
        self.leak.free_enabled.store(false, Ordering::Relaxed);
        if g.ctl.found_leaks {
            self.printk(
                LogLevel::Info,
                format_args!(
                    "kmemleak: Kmemleak disabled without freeing internal data. Reclaim the memory with \"echo clear > /sys/kernel/debug/kmemleak\"."
                ),
            );
        } else {
            delete_all(&mut g.objs);
        }
    }

    /// Finds the object at `ptr` (exactly its start) for the marking calls, warning as
    /// Linux's `paint_ptr` & co. do when there is none: `what` is the warning's text.
    #[track_caller]
    fn with_object(
        &self,
        ptr: usize,
        phys: bool,
        what: fmt_what::What,
        f: impl FnOnce(&mut object::Obj),
    ) {
        let mut g = self.leak.state.lock();
        match g.objs.lookup(ptr, false, phys) {
            Ok(Some(id)) => f(g.objs.get_mut(id)),
            Ok(None) => {
                drop(g);
                let (pre, post) = what.text();
                self.printk(
                    LogLevel::Warning,
                    format_args!("kmemleak: {pre} 0x{:08x}{post}", self.to_model(ptr)),
                );
                self.dump_stack(LogLevel::Warning, Location::caller());
            }
            Err(id) => {
                self.printk(
                    LogLevel::Warning,
                    format_args!(
                        "kmemleak: Found object by alias at 0x{:08x}",
                        self.to_model(ptr)
                    ),
                );
                self.dump_object_info(&g, id);
            }
        }
    }

    /// `kmemleak_alloc`: registers a new object of `size` bytes at `ptr` that needs
    /// `min_count` references (0: never a leak, a root; -1: ignored).
    ///
    /// # Safety
    /// `[ptr, ptr + size)` is readable memory until `kmemleak_free(ptr)` (or the end of the
    /// machine): scans read it.
    #[track_caller]
    pub unsafe fn kmemleak_alloc(
        &self,
        ptr: *const u8,
        size: usize,
        min_count: i32,
        gfp: GfpFlags,
    ) {
        if self.leak.tracking() && !ptr.is_null() {
            self.create_object(ptr as usize, size, min_count, gfp, 0, Location::caller());
        }
    }

    /// `kmemleak_alloc_recursive`: `kmemleak_alloc` unless the cache is `SLAB_NOLEAKTRACE`.
    ///
    /// # Safety
    /// As [`Self::kmemleak_alloc`].
    #[track_caller]
    pub unsafe fn kmemleak_alloc_recursive(
        &self,
        ptr: *const u8,
        size: usize,
        min_count: i32,
        flags: SlabFlags,
        gfp: GfpFlags,
    ) {
        if !flags.contains(SlabFlags::NOLEAKTRACE) {
            // SAFETY: forwarded caller guarantee.
            unsafe { self.kmemleak_alloc(ptr, size, min_count, gfp) };
        }
    }

    /// The allocation hook of the slab API: a tracked object for `p`, on behalf of `caller`.
    #[inline]
    pub(crate) fn kmemleak_hook_alloc(
        &self,
        p: *const u8,
        size: usize,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
    ) {
        if self.leak.tracking() && !crate::slab::common::zero_or_null_ptr(p as usize) {
            self.create_object(p as usize, size, 1, gfp, 0, caller);
        }
    }

    /// The hook of the cache API (`slab_post_alloc_hook` → `kmemleak_alloc_recursive` with
    /// the cache's object size and flags).
    #[inline(never)]
    pub(crate) fn kmemleak_cache_alloc(
        &self,
        c: CacheHandle,
        p: Option<core::ptr::NonNull<u8>>,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
    ) {
        let Some(p) = p else { return };
        let Some(l) = self.slab_layout(c) else { return };
        if !l.flags.contains(SlabFlags::NOLEAKTRACE) {
            self.create_object(p.as_ptr() as usize, l.object_size, 1, gfp, 0, caller);
        }
    }

    /// `kmemleak_vmalloc`: a vmalloc'ed block. Linux's `min_count` is 2 because the area's
    /// `vm_struct` holds the address too; kmem has no `vm_struct` (the `vmap_area` records
    /// the area, and its address fields are outside its scan area, as in Linux), so the
    /// caller's pointer is the one reference expected: `min_count` 1.
    pub(crate) fn kmemleak_vmalloc(
        &self,
        addr: VirtAddr,
        size: usize,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
    ) {
        if self.leak.tracking() {
            self.create_object(addr.as_usize(), size, 1, gfp, 0, caller);
        }
    }

    /// `kmemleak_scan_area`: only `[ptr, ptr + size)` of the object containing `ptr` is
    /// scanned (`usize::MAX`: to the object's end). kmem keeps one area per object: a second
    /// makes the object scanned in full (`OBJECT_FULL_SCAN`, what Linux does when it cannot
    /// allocate an area).
    #[track_caller]
    pub fn kmemleak_scan_area(&self, ptr: *const u8, size: usize, _gfp: GfpFlags) {
        if !self.leak.tracking() || ptr.is_null() || size == 0 {
            return;
        }
        let p = ptr as usize;
        let mut g = self.leak.state.lock();
        let Ok(Some(id)) = g.objs.lookup(p, true, false) else {
            drop(g);
            self.printk(
                LogLevel::Warning,
                format_args!(
                    "kmemleak: Adding scan area to unknown object at 0x{:08x}",
                    self.to_model(p)
                ),
            );
            self.dump_stack(LogLevel::Warning, Location::caller());
            return;
        };
        let o = g.objs.get_mut(id);
        let end = o.pointer + o.size;
        let size = if size == usize::MAX { end - p } else { size };
        if p.checked_add(size).is_none_or(|e| e > end) {
            self.printk(
                LogLevel::Warning,
                format_args!(
                    "kmemleak: Scan area larger than object 0x{:08x}",
                    self.to_model(p)
                ),
            );
            self.dump_object_info(&g, id);
            return;
        }
        if o.area_size != 0 {
            o.flags |= object::OBJECT_FULL_SCAN;
        } else {
            o.area_start = p;
            o.area_size = size;
        }
    }

    /// `kmemleak_free`: the object at `ptr` is freed (an unknown pointer is ignored, as in
    /// Linux without `DEBUG`).
    pub fn kmemleak_free(&self, ptr: *const u8) {
        if !self.leak.tracking_free() || ptr.is_null() {
            return;
        }
        let mut g = self.leak.state.lock();
        if let Ok(Some(id)) = g.objs.lookup(ptr as usize, false, false) {
            g.objs.remove(id);
        }
    }

    /// `kmemleak_free_recursive`: `kmemleak_free` unless the cache is `SLAB_NOLEAKTRACE`.
    pub fn kmemleak_free_recursive(&self, ptr: *const u8, flags: SlabFlags) {
        if !flags.contains(SlabFlags::NOLEAKTRACE) {
            self.kmemleak_free(ptr);
        }
    }

    /// `kmemleak_free_part`: `[ptr, ptr + size)` of an object is freed; what remains on either
    /// side stays tracked as one or two objects with the same `min_count`.
    #[track_caller]
    pub fn kmemleak_free_part(&self, ptr: *const u8, size: usize) {
        if self.leak.tracking() && !ptr.is_null() {
            self.delete_object_part(ptr as usize, size, false, Location::caller());
        }
    }

    /// `delete_object_part`.
    fn delete_object_part(
        &self,
        ptr: usize,
        size: usize,
        phys: bool,
        caller: &'static Location<'static>,
    ) {
        let (start, end, min_count) = {
            let mut g = self.leak.state.lock();
            let Ok(Some(id)) = g.objs.lookup(ptr, true, phys) else {
                return;
            };
            let o = g.objs.get(id);
            let r = (o.pointer, o.pointer + o.size, o.min_count);
            g.objs.remove(id);
            r
        };
        let flags = if phys { OBJECT_PHYS } else { 0 };
        if ptr > start {
            self.create_object(
                start,
                ptr - start,
                min_count,
                GfpFlags::GFP_KERNEL,
                flags,
                caller,
            );
        }
        if ptr + size < end {
            self.create_object(
                ptr + size,
                end - ptr - size,
                min_count,
                GfpFlags::GFP_KERNEL,
                flags,
                caller,
            );
        }
    }

    /// `kmemleak_not_leak`: the object is never reported, and always scanned (grey).
    #[track_caller]
    pub fn kmemleak_not_leak(&self, ptr: *const u8) {
        if self.leak.tracking() && !ptr.is_null() {
            self.with_object(ptr as usize, false, fmt_what::What::Grey, |o| {
                o.min_count = KMEMLEAK_GREY;
            });
        }
    }

    /// `kmemleak_transient_leak`: resets the checksum, so the next scan does not report it.
    #[track_caller]
    pub fn kmemleak_transient_leak(&self, ptr: *const u8) {
        if self.leak.tracking() && !ptr.is_null() {
            self.with_object(ptr as usize, false, fmt_what::What::Checksum, |o| {
                o.checksum = 0;
            });
        }
    }

    /// `kmemleak_ignore`: the object is neither scanned nor reported (black).
    #[track_caller]
    pub fn kmemleak_ignore(&self, ptr: *const u8) {
        if self.leak.tracking() && !ptr.is_null() {
            self.with_object(ptr as usize, false, fmt_what::What::Black, paint_black);
        }
    }

    /// `kmemleak_ignore` without the warning for an object kmemleak does not know (one
    /// allocated before `kmemleak_init`, which Linux would know from its early pool).
    pub(crate) fn kmemleak_ignore_tracked(&self, ptr: *const u8) {
        if !self.leak.tracking() {
            return;
        }
        let mut g = self.leak.state.lock();
        if let Ok(Some(id)) = g.objs.lookup(ptr as usize, false, false) {
            paint_black(g.objs.get_mut(id));
        }
    }

    /// `kmemleak_no_scan`: the object is not scanned (references to it still count).
    #[track_caller]
    pub fn kmemleak_no_scan(&self, ptr: *const u8) {
        if self.leak.tracking() && !ptr.is_null() {
            self.with_object(ptr as usize, false, fmt_what::What::NoScan, |o| {
                o.flags |= object::OBJECT_NO_SCAN;
            });
        }
    }

    /// `kmemleak_update_trace`: the object's trace becomes the caller's.
    #[track_caller]
    pub fn kmemleak_update_trace(&self, ptr: *const u8) {
        if !self.leak.tracking() || ptr.is_null() {
            return;
        }
        let caller = Location::caller();
        let stack = self.stack_depot_save_current();
        let mut g = self.leak.state.lock();
        if let Ok(Some(id)) = g.objs.lookup(ptr as usize, true, false) {
            let o = g.objs.get_mut(id);
            o.trace = Some(caller);
            o.stack = stack;
        }
    }

    /// `kmemleak_alloc_phys`: tracks a physical range (grey: scanned, never reported), as
    /// memblock allocations are in Linux; the opt-in for page allocations.
    #[track_caller]
    pub fn kmemleak_alloc_phys(&self, phys: PhysAddr, size: usize, gfp: GfpFlags) {
        if self.leak.tracking() {
            let pa = phys.as_u64() as usize;
            self.create_object(
                pa,
                size,
                KMEMLEAK_GREY,
                gfp,
                OBJECT_PHYS,
                Location::caller(),
            );
        }
    }

    /// `kmemleak_free_part_phys`.
    #[track_caller]
    pub fn kmemleak_free_part_phys(&self, phys: PhysAddr, size: usize) {
        if self.leak.tracking() {
            let pa = phys.as_u64() as usize;
            self.delete_object_part(pa, size, true, Location::caller());
        }
    }

    /// `kmemleak_ignore_phys`.
    #[track_caller]
    pub fn kmemleak_ignore_phys(&self, phys: PhysAddr) {
        if self.leak.tracking() {
            let pa = phys.as_u64() as usize;
            self.with_object(pa, true, fmt_what::What::Black, paint_black);
        }
    }

    /// Sets the minimum age of a reportable object (Linux's constant `MSECS_MIN_AGE`, 5 s):
    /// a front end that reports at a program's exit (libkmem_malloc) uses 0, where no pointer
    /// can still be in flight in a register of another task.
    pub fn kmemleak_set_min_age(&self, msecs: u64) {
        let hz = self.platform().hz();
        self.leak.state.lock().ctl.min_age = msecs * hz / 1000;
    }

    /// Counts for tests: tracked objects, reported ones, the pool.
    pub fn kmemleak_stats(&self) -> KmemleakStats {
        let g = self.leak.state.lock();
        let mut reported = 0;
        let mut it = g.objs.first();
        while let Some(id) = it {
            let o = g.objs.get(id);
            if o.flags & object::OBJECT_REPORTED != 0 && scan::unreferenced(o, &g.ctl) {
                reported += 1;
            }
            it = g.objs.next(id);
        }
        KmemleakStats {
            objects: g.objs.nr_objects,
            reported,
            pool_free: g.objs.pool_free,
            pool_pages: g.objs.pool_pages,
        }
    }

    /// Whether `ptr` is the start of a tracked object (for tests).
    pub fn kmemleak_tracks(&self, ptr: *const u8) -> bool {
        let g = self.leak.state.lock();
        matches!(g.objs.lookup(ptr as usize, false, false), Ok(Some(_)))
    }
}

/// `__paint_it(object, KMEMLEAK_BLACK)`.
fn paint_black(o: &mut object::Obj) {
    o.min_count = KMEMLEAK_BLACK;
    o.flags |= object::OBJECT_NO_SCAN;
}

/// `__kmemleak_do_cleanup`: forgets every object.
fn delete_all(objs: &mut LeakState) {
    while let Some(id) = objs.first() {
        objs.remove(id);
    }
}

/// The texts of Linux's warnings about marking an unknown object.
mod fmt_what {
    #[derive(Clone, Copy)]
    pub enum What {
        Grey,
        Black,
        NoScan,
        Checksum,
    }
    impl What {
        /// The text before and after the address (mm/kmemleak.c `paint_ptr`,
        /// `object_no_scan`, `reset_checksum`).
        pub fn text(self) -> (&'static str, &'static str) {
            match self {
                What::Grey => ("Trying to color unknown object at", " as Grey"),
                What::Black => ("Trying to color unknown object at", " as Black"),
                What::NoScan => ("Not scanning unknown object at", ""),
                What::Checksum => ("Not resetting the checksum of an unknown object at", ""),
            }
        }
    }
}

#[cfg(test)]
mod tests;
