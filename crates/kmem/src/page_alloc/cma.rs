//! The Contiguous Memory Allocator (mm/cma.c, kernel/dma/contiguous.c, mm/cma_sysfs.c,
//! mm/cma_debug.c): areas reserved from memblock at boot, handed to the buddy allocator as
//! `MIGRATE_CMA` pageblocks (which only movable allocations may borrow), and taken back as
//! physically contiguous runs by [`PageAllocator::cma_alloc`], which isolates the range and
//! migrates borrowers out (`page_alloc/isolation.rs`).
//!
//! kmem models a kernel built with `CONFIG_CMA`, enabled by `cma=`: without an area every
//! file reads as the reference kernel's (which has no CMA area).
//!
//! Boot parameters:
//! - `cma=SIZE[@BASE[-LIMIT]]` (`early_cma`): the default area, named `reserved`.
//! - `cma=NAME=SIZE[@BASE],NAME=SIZE[@BASE],…` (kmem's named form): one area per entry.
//! - `cma_map=DEV=AREA;DEV=AREA;…`: binds devices to areas. A device uses the area of the
//!   first entry whose DEV matches its name as the driver core matches a driver name
//!   (`names_match` in `base/mod.rs`: `camera` matches `camera`, `camera0` and `camera.1`).
//!
//! # Locking
//! One lock, `cma_mutex` (rank 1 in docs/LOCKING.md), covers the area table, every bitmap
//! (Linux's `cma->lock`), the counters, `cma_map` and the migration hook. `cma_alloc` holds it
//! across `alloc_contig_range`, as Linux holds `cma_mutex`; the zone lock, CPU sections and
//! whatever the migration hook takes nest inside it.

use core::fmt::{self, Write};
use core::sync::atomic::Ordering;

use super::PageAllocator;
use crate::addr::{Pfn, PhysAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::memblock::Memblock;
use crate::mm::mm_types::PagePtr;
use crate::mmzone::{MigrateType, PAGEBLOCK_NR_PAGES};
use crate::platform::{LogLevel, Platform};

/// `MAX_CMA_AREAS` (`CONFIG_CMA_AREAS`, 8 without NUMA).
pub const MAX_CMA_AREAS: usize = 8;
/// Entries `cma_map=` may hold.
const MAX_CMA_MAP: usize = 8;
/// Bytes kept of a name (Linux's `CMA_MAX_NAME` is 64).
const NAME_LEN: usize = 32;
/// `CMA_MIN_ALIGNMENT_BYTES`: a pageblock.
pub const CMA_MIN_ALIGNMENT_BYTES: u64 = (PAGEBLOCK_NR_PAGES as u64) << PAGE_SHIFT;
/// The name of the default area (kernel/dma/contiguous.c).
pub const CMA_DEFAULT_NAME: &str = "reserved";

/// A CMA area (`struct cma *`), an index into the machine's area table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cma(u8);

impl Cma {
    /// The index in the area table.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A short name stored inline.
#[derive(Clone, Copy)]
struct Name {
    b: [u8; NAME_LEN],
    len: u8,
}

impl Name {
    const EMPTY: Name = Name {
        b: [0; NAME_LEN],
        len: 0,
    };
    fn new(s: &str) -> Name {
        let mut n = Name::EMPTY;
        let mut len = s.len().min(NAME_LEN);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        n.b[..len].copy_from_slice(&s.as_bytes()[..len]);
        n.len = len as u8;
        n
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.b[..self.len as usize]).unwrap_or("")
    }
}

/// The migration hook: moves every in-use page of `[start, end)` elsewhere (see
/// [`PageAllocator::register_migrate_hook`]).
#[derive(Clone, Copy)]
pub struct MigrateHook {
    /// Passed back to `func`.
    pub ctx: *const (),
    /// `migrate_range(ctx, start, end)`: called with `cma_mutex` held and the range isolated
    /// (its pageblocks are `MIGRATE_ISOLATE`, so pages freed there stay free); it may allocate
    /// and free pages. `Err` fails the allocation with that error.
    pub func: unsafe fn(ctx: *const (), start: Pfn, end: Pfn) -> Result<(), Errno>,
}

#[derive(Clone, Copy)]
struct CmaArea {
    name: Name,
    base_pfn: Pfn,
    count: usize,
    /// One bit per page (`order_per_bit` 0), in page-allocator memory once activated.
    bitmap: *mut u64,
    active: bool,
    alloc_success: usize,
    alloc_fail: usize,
    release_success: usize,
}

impl CmaArea {
    const EMPTY: CmaArea = CmaArea {
        name: Name::EMPTY,
        base_pfn: Pfn::new(0),
        count: 0,
        bitmap: core::ptr::null_mut(),
        active: false,
        alloc_success: 0,
        alloc_fail: 0,
        release_success: 0,
    };
    fn words(&self) -> usize {
        self.count.div_ceil(64)
    }
    fn bit(&self, i: usize) -> bool {
        // SAFETY: `bitmap` has `words()` words (allocated at activation, never freed) and
        // `i < count`; callers hold `cma_mutex`.
        unsafe { *self.bitmap.add(i / 64) & (1 << (i % 64)) != 0 }
    }
    fn set_bits(&mut self, start: usize, n: usize, v: bool) {
        for i in start..start + n {
            // SAFETY: as in `bit`; `start + n <= count` (callers' invariant).
            unsafe {
                let w = self.bitmap.add(i / 64);
                if v {
                    *w |= 1 << (i % 64);
                } else {
                    *w &= !(1 << (i % 64));
                }
            }
        }
    }
    fn used(&self) -> usize {
        if self.bitmap.is_null() {
            return 0;
        }
        (0..self.count).filter(|&i| self.bit(i)).count()
    }
    /// The longest run of clear bits (`cma_maxchunk_get`).
    fn maxchunk(&self) -> usize {
        if self.bitmap.is_null() {
            return 0;
        }
        let (mut best, mut run) = (0, 0);
        for i in 0..self.count {
            if self.bit(i) {
                run = 0;
            } else {
                run += 1;
                best = best.max(run);
            }
        }
        best
    }
    /// `bitmap_find_next_zero_area_off`.
    fn find_zero_area(&self, start: usize, nr: usize, mask: usize, offset: usize) -> usize {
        let mut idx = start;
        loop {
            // Align `idx + offset` up to `mask + 1`.
            idx = ((idx + offset + mask) & !mask) - offset;
            let end = idx + nr;
            if end > self.count {
                return usize::MAX;
            }
            match (idx..end).find(|&i| self.bit(i)) {
                None => return idx,
                Some(i) => idx = i + 1,
            }
        }
    }
}

/// The areas and `cma_map`, in memblock memory allocated when the command line asks for
/// CMA (so a machine without CMA keeps its layout).
struct CmaTable {
    areas: [CmaArea; MAX_CMA_AREAS],
    nr: usize,
    map: [(Name, u8); MAX_CMA_MAP],
    nr_map: usize,
}

/// The CMA state of a machine, under `cma_mutex`.
pub struct CmaState {
    table: *mut CmaTable,
    hook: Option<MigrateHook>,
}

// SAFETY: the table and bitmap pointers refer to memory owned by the machine, used only
// under `cma_mutex`; the hook's `ctx` is the registrant's (see `register_migrate_hook`'s
// contract).
unsafe impl Send for CmaState {}

impl CmaState {
    /// No areas.
    pub(crate) const fn new() -> Self {
        Self {
            table: core::ptr::null_mut(),
            hook: None,
        }
    }
    fn t(&self) -> Option<&CmaTable> {
        // SAFETY: `table` is null or points at the table written at boot, which lives as long
        // as the machine; we are under `cma_mutex` (`&self` comes from the guard).
        unsafe { self.table.as_ref() }
    }
    fn t_mut(&mut self) -> Option<&mut CmaTable> {
        // SAFETY: as in `t`; `&mut self` is the only access under the lock.
        unsafe { self.table.as_mut() }
    }
    fn nr(&self) -> usize {
        self.t().map_or(0, |t| t.nr)
    }
    fn areas(&self) -> &[CmaArea] {
        self.t().map_or(&[], |t| &t.areas[..t.nr])
    }
}

/// A snapshot of one area (for /sys and the shell).
#[derive(Clone, Copy)]
pub struct CmaInfo {
    name: Name,
    /// First frame.
    pub base_pfn: Pfn,
    /// Pages.
    pub count: usize,
    /// Pages allocated through `cma_alloc`.
    pub used: usize,
    /// The longest free run.
    pub maxchunk: usize,
    /// `alloc_pages_success`.
    pub alloc_success: usize,
    /// `alloc_pages_fail`.
    pub alloc_fail: usize,
    /// `release_pages_success`.
    pub release_success: usize,
}

impl CmaInfo {
    /// The area's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }
}

/// `memparse` (lib/cmdline.c): a number in C notation with an optional K/M/G/T/P/E suffix;
/// returns the value and the unparsed rest.
pub fn memparse(s: &str) -> (u64, &str) {
    let b = s.as_bytes();
    let (radix, mut i) = if b.len() > 2 && b[0] == b'0' && (b[1] | 0x20) == b'x' {
        (16, 2)
    } else if b.len() > 1 && b[0] == b'0' {
        (8, 1)
    } else {
        (10, 0)
    };
    let mut v: u64 = 0;
    while i < b.len() {
        let Some(d) = (b[i] as char).to_digit(radix) else {
            break;
        };
        v = v.wrapping_mul(u64::from(radix)).wrapping_add(u64::from(d));
        i += 1;
    }
    let shift = match b.get(i).map(|c| c | 0x20) {
        Some(b'e') => 60,
        Some(b'p') => 50,
        Some(b't') => 40,
        Some(b'g') => 30,
        Some(b'm') => 20,
        Some(b'k') => 10,
        _ => 0,
    };
    if shift > 0 {
        v <<= shift;
        i += 1;
    }
    (v, &s[i..])
}

/// One area asked for on the command line.
#[derive(Clone, Copy)]
struct Request<'a> {
    name: &'a str,
    size: u64,
    base: u64,
    limit: u64,
}

/// `early_cma` on one `NAME=`-less value: `SIZE[@BASE[-LIMIT]]`.
fn parse_size_base<'a>(name: &'a str, p: &str) -> Request<'a> {
    let (size, rest) = memparse(p);
    let mut r = Request {
        name,
        size,
        base: 0,
        limit: 0,
    };
    if let Some(rest) = rest.strip_prefix('@') {
        let (base, rest) = memparse(rest);
        r.base = base;
        r.limit = match rest.strip_prefix('-') {
            Some(l) => memparse(l).0,
            None => base.wrapping_add(size),
        };
    }
    r
}

impl<P: Platform> PageAllocator<P> {
    /// `totalcma_pages`.
    pub fn totalcma_pages(&self) -> usize {
        self.totalcma.load(Ordering::Relaxed)
    }

    /// Whether any CMA area was reserved (the files then show the CMA lines).
    pub fn cma_enabled(&self) -> bool {
        self.totalcma_pages() > 0
    }

    /// `dma_contiguous_reserve` and kmem's named areas: reserves the areas the command line
    /// asks for from memblock (`cma_declare_contiguous_nid`), before the zones are shown.
    pub(crate) fn cma_reserve_from_cmdline(&self, cmdline: &str, mb: &mut Memblock) {
        let mut last = None;
        let mut map = None;
        for w in cmdline.split_whitespace() {
            if let Some(v) = w.strip_prefix("cma=") {
                last = Some(v);
            } else if let Some(v) = w.strip_prefix("cma_map=") {
                map = Some(v);
            }
        }
        if last.is_none() {
            return;
        }
        let size = core::mem::size_of::<CmaTable>() as u64;
        let Ok(pa) = mb.phys_alloc(size, 64) else {
            return;
        };
        // SAFETY: a fresh memblock allocation of `size` bytes, 64-byte aligned, below the
        // direct-map end (memblock's default limit), used by nothing else.
        unsafe {
            let t = self.phys_to_real(pa).cast::<CmaTable>();
            t.write(CmaTable {
                areas: [CmaArea::EMPTY; MAX_CMA_AREAS],
                nr: 0,
                map: [(Name::EMPTY, 0); MAX_CMA_MAP],
                nr_map: 0,
            });
            // Lock order: cma_mutex (rank 1), boot; docs/LOCKING.md.
            self.cma.lock().table = t;
        }
        if let Some(v) = last {
            if v.contains('=') {
                for e in v.split(',') {
                    let Some((name, spec)) = e.split_once('=') else {
                        continue;
                    };
                    if !name.is_empty() {
                        self.cma_declare(parse_size_base(name, spec), mb);
                    }
                }
            } else {
                let r = parse_size_base(CMA_DEFAULT_NAME, v);
                if r.size != 0 {
                    self.printk(
                        LogLevel::Debug,
                        format_args!(
                            "cma: dma_contiguous_reserve: reserving {} MiB for global area",
                            r.size >> 20
                        ),
                    );
                    self.cma_declare(r, mb);
                }
            }
        }
        if let Some(m) = map {
            // Lock order: cma_mutex (rank 1), boot; docs/LOCKING.md.
            let mut st = self.cma.lock();
            let Some(t) = st.t_mut() else { return };
            for e in m.split(';') {
                let Some((dev, area)) = e.split_once('=') else {
                    continue;
                };
                let Some(i) = (0..t.nr).find(|&i| t.areas[i].name.as_str() == area) else {
                    continue;
                };
                if t.nr_map < MAX_CMA_MAP && !dev.is_empty() {
                    let n = t.nr_map;
                    t.map[n] = (Name::new(dev), i as u8);
                    t.nr_map += 1;
                }
            }
        }
    }

    /// `cma_declare_contiguous_nid` with node -1 and `order_per_bit` 0; prints Linux's
    /// `Reserved`/`Failed to reserve` line.
    fn cma_declare(&self, r: Request<'_>, mb: &mut Memblock) {
        let size_mib =
            r.size.wrapping_add(CMA_MIN_ALIGNMENT_BYTES - 1) & !(CMA_MIN_ALIGNMENT_BYTES - 1);
        match self.cma_declare_inner(r, mb) {
            Ok(base) => self.printk(
                LogLevel::Info,
                format_args!(
                    "cma: Reserved {} MiB at {:#018x} on node -1",
                    size_mib >> 20,
                    base.as_u64()
                ),
            ),
            Err(_) => self.printk(
                LogLevel::Err,
                format_args!("cma: Failed to reserve {} MiB on node -1", size_mib >> 20),
            ),
        }
    }

    fn cma_declare_inner(&self, r: Request<'_>, mb: &mut Memblock) -> Result<PhysAddr, Errno> {
        let align = CMA_MIN_ALIGNMENT_BYTES;
        // Lock order: cma_mutex (rank 1), boot; docs/LOCKING.md.
        if self.cma.lock().nr() == MAX_CMA_AREAS {
            self.printk(
                LogLevel::Err,
                format_args!("cma: Not enough slots for CMA reserved regions!"),
            );
            return Err(Errno::ENOMEM);
        }
        if r.size == 0 {
            return Err(Errno::EINVAL);
        }
        let mut fixed = r.base != 0 && r.base.wrapping_add(r.size) == r.limit;
        if fixed && r.base & (align - 1) != 0 {
            self.printk(
                LogLevel::Err,
                format_args!(
                    "cma: Region at {:#018x} must be aligned to {:#018x} bytes",
                    r.base, align
                ),
            );
            return Err(Errno::EINVAL);
        }
        let base = r.base.checked_add(align - 1).ok_or(Errno::EINVAL)? & !(align - 1);
        let size = r.size.checked_add(align - 1).ok_or(Errno::EINVAL)? & !(align - 1);
        let mut limit = r.limit & !(align - 1);
        if base == 0 {
            fixed = false;
        }
        // dma_contiguous_reserve's limit on x86: the end of the direct map.
        let dram_end = mb.end_of_dram().map_or(0, |p| p.as_u64());
        let memblock_end = dram_end.min(self.lowmem_end().as_u64());
        if limit == 0 || limit > memblock_end {
            limit = memblock_end;
        }
        if base.checked_add(size).is_none_or(|e| e > limit) {
            self.printk(
                LogLevel::Err,
                format_args!(
                    "cma: Size ({size:#018x}) of region at {base:#018x} exceeds limit ({limit:#018x})"
                ),
            );
            return Err(Errno::EINVAL);
        }
        let base = if fixed {
            if mb.is_region_reserved(PhysAddr::new(base), size)
                || mb.reserve(PhysAddr::new(base), size).is_err()
            {
                return Err(Errno::EBUSY);
            }
            PhysAddr::new(base)
        } else {
            // cma_alloc_mem: above 4 GiB bottom-up first when memory goes that far, then
            // anywhere in [base, limit).
            let g4 = 1u64 << 32;
            let mut got = None;
            if !mb.bottom_up() && memblock_end >= g4 + size {
                mb.set_bottom_up(true);
                got = mb
                    .alloc_range_nid(
                        size,
                        align,
                        PhysAddr::new(g4),
                        PhysAddr::new(limit),
                        -1,
                        true,
                    )
                    .ok();
                mb.set_bottom_up(false);
            }
            match got {
                Some(a) => a,
                None => mb
                    .alloc_range_nid(
                        size,
                        align,
                        PhysAddr::new(base),
                        PhysAddr::new(limit),
                        -1,
                        true,
                    )
                    .map_err(|_| Errno::ENOMEM)?,
            }
        };
        // cma_init_reserved_mem.
        // Lock order: cma_mutex (rank 1), boot; docs/LOCKING.md.
        let mut st = self.cma.lock();
        let t = st.t_mut().ok_or(Errno::ENOMEM)?;
        let n = t.nr;
        t.areas[n] = CmaArea {
            name: Name::new(r.name),
            base_pfn: base.pfn(),
            count: (size >> PAGE_SHIFT) as usize,
            ..CmaArea::EMPTY
        };
        t.nr += 1;
        self.totalcma
            .fetch_add((size >> PAGE_SHIFT) as usize, Ordering::Relaxed);
        Ok(base)
    }

    /// `cma_init_reserved_areas` (core_initcall): activates every area.
    pub(crate) fn cma_init_reserved_areas(&self) {
        // Lock order: cma_mutex (rank 1); the page allocator's locks under it; docs/LOCKING.md.
        let mut st = self.cma.lock();
        let Some(t) = st.t_mut() else { return };
        for i in 0..t.nr {
            let a = t.areas[i];
            if !self.cma_activate_area(&mut t.areas[i]) {
                self.printk(
                    LogLevel::Err,
                    format_args!("cma: CMA area {} could not be activated", a.name.as_str()),
                );
            }
        }
    }

    /// `cma_activate_area`: the bitmap, then every pageblock to the buddy allocator as
    /// `MIGRATE_CMA` (`init_cma_reserved_pageblock`).
    fn cma_activate_area(&self, a: &mut CmaArea) -> bool {
        let start = a.base_pfn;
        let end = start + a.count as u64;
        if end.as_u64() > self.max_pfn.as_u64() || a.count == 0 {
            a.count = 0;
            return false;
        }
        let (kind, nid) = (self.page(start).zone_type(), self.page(start).nid());
        if (start.as_u64()..end.as_u64()).any(|p| {
            let pg = self.page(Pfn::new(p));
            pg.zone_type() != kind || pg.nid() != nid
        }) {
            a.count = 0;
            return false;
        }
        let bytes = a.words() * 8;
        let order = crate::addr::Order::new(
            (bytes
                .div_ceil(PAGE_SIZE)
                .next_power_of_two()
                .trailing_zeros())
            .min(crate::addr::MAX_PAGE_ORDER),
        );
        let gfp = GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO;
        let Some(bm) = self.alloc_pages(gfp, order) else {
            a.count = 0;
            return false;
        };
        // SAFETY: the block was just allocated (zeroed) and is below phys_end.
        a.bitmap = unsafe { self.phys_to_real(self.page_to_pfn(bm).phys()) }.cast::<u64>();
        let zone = self.node_zone(nid, kind);
        let mut p = start.as_u64();
        while p < end.as_u64() {
            for i in 0..PAGEBLOCK_NR_PAGES as u64 {
                let pg = self.page(Pfn::new(p + i));
                pg.set_flags(pg.flags() & !crate::mm::mm_types::pg::RESERVED);
                pg.set_refcount(0);
            }
            // Lock order: &zone->lock (rank 5) under cma_mutex; docs/LOCKING.md.
            let mut free = zone.free.lock();
            zone.set_pageblock_migratetype(Pfn::new(p), MigrateType::Cma);
            self.free_one_page_locked(
                zone,
                &mut free,
                Pfn::new(p),
                crate::addr::Order::new(crate::mmzone::PAGEBLOCK_ORDER),
            );
            drop(free);
            zone.stats
                .nr_free_pages
                .fetch_add(PAGEBLOCK_NR_PAGES as isize, Ordering::Relaxed);
            zone.managed
                .fetch_add(PAGEBLOCK_NR_PAGES, Ordering::Relaxed);
            zone.stats
                .cma_pages
                .fetch_add(PAGEBLOCK_NR_PAGES, Ordering::Relaxed);
            self.totalram
                .fetch_add(PAGEBLOCK_NR_PAGES, Ordering::Relaxed);
            p += PAGEBLOCK_NR_PAGES as u64;
        }
        a.active = true;
        true
    }

    /// Keeps `NR_FREE_CMA_PAGES` (called by the free-list primitives for CMA lists).
    #[inline]
    pub(super) fn account_free_cma(&self, page: PagePtr, pages: isize) {
        self.page_zone(page)
            .stats
            .nr_free_cma
            .fetch_add(pages, Ordering::Relaxed);
    }

    /// `cma_find`-like lookup by name (`cma_get_name`).
    pub fn cma_find(&self, name: &str) -> Option<Cma> {
        // Lock order: cma_mutex (rank 1), reader; docs/LOCKING.md.
        let st = self.cma.lock();
        st.areas()
            .iter()
            .position(|a| a.name.as_str() == name)
            .map(|i| Cma(i as u8))
    }

    /// The area at `index` in the table, if there is one.
    pub fn cma_handle(&self, index: usize) -> Option<Cma> {
        (index < self.cma_area_count()).then_some(Cma(index as u8))
    }

    /// Number of areas (`cma_area_count`).
    pub fn cma_area_count(&self) -> usize {
        // Lock order: cma_mutex (rank 1), reader; docs/LOCKING.md.
        self.cma.lock().nr()
    }

    /// A snapshot of area `c`.
    pub fn cma_info(&self, c: Cma) -> Option<CmaInfo> {
        // Lock order: cma_mutex (rank 1), reader; docs/LOCKING.md.
        let st = self.cma.lock();
        let a = st.areas().get(c.index())?;
        Some(CmaInfo {
            name: a.name,
            base_pfn: a.base_pfn,
            count: a.count,
            used: a.used(),
            maxchunk: a.maxchunk(),
            alloc_success: a.alloc_success,
            alloc_fail: a.alloc_fail,
            release_success: a.release_success,
        })
    }

    /// The area `cma_map=` binds to a device named `dev`, with `matches(key, dev)` deciding
    /// whether a map key names the device (the driver core passes its `names_match`).
    pub fn cma_for_device(&self, dev: &str, matches: impl Fn(&str, &str) -> bool) -> Option<Cma> {
        // Lock order: cma_mutex (rank 1), reader; docs/LOCKING.md.
        let st = self.cma.lock();
        let t = st.t()?;
        t.map[..t.nr_map]
            .iter()
            .find(|(k, _)| matches(k.as_str(), dev))
            .map(|&(_, i)| Cma(i))
    }

    /// Registers the migration hook `cma_alloc` calls for in-use pages in its range (kmem's
    /// process-memory layer registers `migrate_pages` here); replaces an earlier one.
    ///
    /// # Safety
    /// `hook.func` must be sound to call with `hook.ctx` from any thread until the hook is
    /// unregistered or replaced.
    pub unsafe fn register_migrate_hook(&self, hook: MigrateHook) {
        // Lock order: cma_mutex (rank 1); docs/LOCKING.md.
        self.cma.lock().hook = Some(hook);
    }

    /// Removes the migration hook: in-use pages then make `cma_alloc` fail with `-EBUSY`.
    pub fn unregister_migrate_hook(&self) {
        // Lock order: cma_mutex (rank 1); docs/LOCKING.md.
        self.cma.lock().hook = None;
    }

    /// `cma_alloc`: `count` contiguous pages of area `c`, the first aligned to `1 << align`
    /// pages, each with one reference; `None` on failure (with Linux's `alloc failed` line
    /// unless `no_warn`). Ranges that are busy (`-EBUSY`) are retried at the next aligned
    /// offset.
    pub fn cma_alloc(&self, c: Cma, count: usize, align: u32, no_warn: bool) -> Option<PagePtr> {
        // Lock order: cma_mutex (rank 1), then the page allocator's locks; docs/LOCKING.md.
        let mut st = self.cma.lock();
        let hook = st.hook;
        let i = c.index();
        let t = st.t_mut()?;
        if i >= t.nr || !t.areas[i].active || t.areas[i].count == 0 || count == 0 {
            return None;
        }
        let a = &mut t.areas[i];
        let align = align.min(63);
        let mask = if align == 0 { 0 } else { (1usize << align) - 1 };
        let offset = (a.base_pfn.as_u64() & mask as u64) as usize;
        let mut ret = Err(Errno::ENOMEM);
        let mut start = 0;
        let mut page = None;
        if count <= a.count {
            loop {
                let no = a.find_zero_area(start, count, mask, offset);
                if no == usize::MAX {
                    break;
                }
                a.set_bits(no, count, true);
                let pfn = a.base_pfn + no as u64;
                ret = self.alloc_contig_range(pfn, pfn + count as u64, hook.as_ref());
                if ret.is_ok() {
                    page = Some(self.page(pfn));
                    break;
                }
                a.set_bits(no, count, false);
                if ret != Err(Errno::EBUSY) {
                    break;
                }
                start = no + mask + 1;
            }
        }
        if page.is_some() {
            a.alloc_success += count;
        } else {
            a.alloc_fail += count;
            if !no_warn {
                let e = ret.err().map_or(0, |e| -(e as i32));
                self.printk(
                    LogLevel::Err,
                    format_args!(
                        "cma: __cma_alloc: {}: alloc failed, req-size: {count} pages, ret: {e}",
                        a.name.as_str()
                    ),
                );
            }
        }
        page
    }

    /// `cma_release`: gives back `count` pages from [`PageAllocator::cma_alloc`]; `false`
    /// when they do not belong to area `c`.
    pub fn cma_release(&self, c: Cma, pages: PagePtr, count: usize) -> bool {
        // Lock order: cma_mutex (rank 1), then the page allocator's locks; docs/LOCKING.md.
        let mut st = self.cma.lock();
        let i = c.index();
        let Some(t) = st.t_mut() else { return false };
        if i >= t.nr || !self.mm.is_memmap_ptr(pages.as_ptr()) {
            return false;
        }
        let a = &mut t.areas[i];
        let pfn = self.page_to_pfn(pages);
        let base = a.base_pfn.as_u64();
        if pfn.as_u64() < base
            || pfn.as_u64() >= base + a.count as u64
            || pfn.as_u64() + count as u64 > base + a.count as u64
        {
            return false;
        }
        self.free_contig_range(pfn, count);
        a.set_bits((pfn.as_u64() - base) as usize, count, false);
        a.release_success += count;
        true
    }

    /// The CMA files: `/sys/kernel/mm/cma/<name>/…` (mm/cma_sysfs.c) and
    /// `/sys/kernel/debug/cma/<name>/…` (mm/cma_debug.c); `None` for other paths.
    pub fn cma_file_read(&self, path: &str, out: &mut dyn Write) -> Option<fmt::Result> {
        let (sysfs, rest) = if let Some(r) = path.strip_prefix("/sys/kernel/mm/cma/") {
            (true, r)
        } else {
            (false, path.strip_prefix("/sys/kernel/debug/cma/")?)
        };
        let (name, file) = rest.split_once('/')?;
        let info = self.cma_info(self.cma_find(name)?)?;
        let v = match (sysfs, file) {
            (true, "alloc_pages_success") => info.alloc_success,
            (true, "alloc_pages_fail") => info.alloc_fail,
            (true, "release_pages_success") => info.release_success,
            (true, "total_pages") => info.count,
            (true, "available_pages") => info.count - info.used,
            (false, "base_pfn") => info.base_pfn.as_usize(),
            (false, "count") => info.count,
            (false, "order_per_bit") => 0,
            (false, "used") => info.used,
            (false, "maxchunk") => info.maxchunk,
            (false, "bitmap") => return Some(self.cma_show_bitmap(name, out)),
            _ => return None,
        };
        Some(writeln!(out, "{v}"))
    }

    /// debugfs `bitmap`: the bitmap as u32 words, space-separated (`debugfs_create_u32_array`).
    fn cma_show_bitmap(&self, name: &str, out: &mut dyn Write) -> fmt::Result {
        // Lock order: cma_mutex (rank 1), reader; docs/LOCKING.md.
        let st = self.cma.lock();
        let Some(a) = st.areas().iter().find(|a| a.name.as_str() == name) else {
            return Ok(());
        };
        let n = a.count.div_ceil(32);
        for w in 0..n {
            let mut v = 0u32;
            for b in 0..32 {
                let i = w * 32 + b;
                if i < a.count && !a.bitmap.is_null() && a.bit(i) {
                    v |= 1 << b;
                }
            }
            let sep = if w + 1 == n { '\n' } else { ' ' };
            write!(out, "{v}{sep}")?;
        }
        Ok(())
    }

    /// The names of the CMA files for `ls`-like listings.
    pub fn cma_names(&self, mut f: impl FnMut(&str)) {
        // Lock order: cma_mutex (rank 1), reader; docs/LOCKING.md.
        let st = self.cma.lock();
        for a in st.areas() {
            f(a.name.as_str());
        }
    }
}
