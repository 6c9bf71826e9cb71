//! kmemcheck, the kernel's checker of reads of uninitialised memory (Linux 4.14's
//! mm/kmemcheck.c, arch/x86/mm/kmemcheck/{kmemcheck.c,shadow.c,error.c} and
//! Documentation/dev-tools/kmemcheck.rst; removed from Linux in 4.15, replaced by KMSAN).
//!
//! # Shadow
//! Every byte of tracked memory has a shadow state ([`KmemcheckShadow`], Linux's
//! `enum kmemcheck_shadow`): unallocated, uninitialised, initialised or freed. Linux keeps one
//! shadow byte per byte in shadow pages hung off each tracked page (`page->shadow`); kmem
//! keeps two bits per byte (four states fit) in one array taken from memblock at boot,
//! indexed by physical address over the direct map (`lowmem_end / 4` bytes), and one flag
//! byte per page frame ([`PG_TRACKED`] …). The shadow array is never cleared: a page's shadow
//! is written whole when the page becomes tracked, and only tracked pages are ever checked.
//!
//! Tracked memory is what Linux 4.14's kmemcheck tracked through the slab allocators: the
//! slabs of every cache without `SLAB_NOTRACK` (SLUB and SLAB; kmemcheck needs one of them,
//! as its Kconfig's `depends on SLUB || SLAB`), and large kmalloc blocks (Linux tracked every
//! page allocation without `__GFP_NOTRACK`/`__GFP_HIGHMEM` through `kmemcheck_pagealloc_alloc`;
//! kmem tracks the page allocations the slab layer makes for kmalloc).
//!
//! The state machine (mm/kmemcheck.c):
//! - a new slab: all its bytes unallocated (`kmemcheck_mark_unallocated_pages`), or, for a
//!   cache with a constructor, initialised (Linux marks them uninitialised and lets the
//!   constructor's writes initialise them through the traps; kmem's own stores do not trap,
//!   so the constructed objects are marked as the constructor leaves them);
//! - an allocation (`kmemcheck_slab_alloc`): the object uninitialised, unless `__GFP_ZERO`,
//!   a constructor, or `__GFP_NOTRACK`/kmemcheck disabled (initialised);
//! - a free (`kmemcheck_slab_free`): freed, unless the cache has a constructor or is
//!   `SLAB_TYPESAFE_BY_RCU` (readers may still look, as in Linux);
//! - a write initialises the bytes written; a read is checked (`kmemcheck_read_strict` with
//!   `CONFIG_KMEMCHECK_PARTIAL_OK=y`, Linux's default: a read is fine when any of its bytes is
//!   initialised); a bad read is reported, and its bytes are then marked initialised so that
//!   they are not reported again ("Don't warn about it again");
//! - a copy (`kmemcheck_copy`, Linux's `rep movs` path and kmem's `krealloc`) copies the
//!   shadow with the bytes.
//!
//! Accesses reach kmemcheck as (address, size, write): [`SlabLayer::kmemcheck_access`], from
//! the shell's `peek`/`poke` (which consult the shadow directly) and from a platform that
//! makes tracked pages non-present and decodes the faulting instructions.
//!
//! # Reports
//! `WARNING: kmemcheck: Caught 32-bit read from uninitialized memory (ADDR)`, the 32 bytes
//! around the address (`CONFIG_KMEMCHECK_SHADOW_COPY_SHIFT` 5), their shadow letters
//! (`a`/`u`/`i`/`f`) and a `^` under the byte read, then the instruction and the call trace
//! (report.rs). A site — a real instruction's address ([`Site::Ip`]) — reports once (Linux
//! suppressed only adjacent reports from one `EIP`; a table of sites keeps a hot loop in a
//! real program from reporting again after another site has reported in between). An
//! explicit check by a kmem API's caller ([`Site::Caller`], the shell's `peek`) reports each
//! time it finds bad bytes; the bytes reported are initialised from then on, as in Linux.
//!
//! # Parameters
//! `kmemcheck=0|1|2` (Linux's `param_kmemcheck`, `kstrtoint` base 0): 1 reports, 2 reports
//! once and then turns itself off (one-shot), 0 — or no parameter — builds no shadow at all
//! (kmem's kernel is then as one built without `CONFIG_KMEMCHECK`). `/proc/sys/kernel/
//! kmemcheck` reads and writes the mode while it runs (`proc_dointvec`). Linux limited the
//! machine to one CPU under kmemcheck (a page un-hidden for one CPU's access is open to the
//! others); kmem does not: with real traps on several threads an access may slip through
//! unchecked while another thread's single step has the page open.
//!
//! `kmemcheck.unhide=0|1|2` (kmem's, for real traps; [`Unhide`]): a hidden page whose shadow
//! is settled — every byte initialised but the slab's tail (1, the default), or no byte
//! uninitialised (2) — is left present after the trap that found it so, and hidden again
//! when an allocation or free unsettles it (`kmc_settle`, `kmc_rehide`).
//!
//! # Locking
//! None: the shadow and the page flags are atomics (a shadow byte's four states are updated
//! with a compare-and-swap), the site table is claimed with compare-and-swap, and reports
//! take only the log lock. So kmemcheck may be entered from any context, including a
//! platform's fault handler interrupting kmem with its locks held.

mod report;

use core::panic::Location;
use core::sync::atomic::{
    AtomicI32, AtomicPtr, AtomicU16, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

use crate::addr::{PhysAddr, VirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::gfp::GfpFlags;
use crate::platform::{KmemcheckHook, LogLevel, Platform};
use crate::slab::common::SlabFlags;
use crate::slab::kfence::Site;
use crate::slab::SlabLayer;

/// `enum kmemcheck_shadow` (arch/x86/mm/kmemcheck/shadow.h), in Linux's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum KmemcheckShadow {
    /// Part of a tracked page that no object covers (or not yet handed out).
    Unallocated = 0,
    /// Allocated, never written.
    Uninitialized = 1,
    /// Written (or zeroed, or constructed).
    Initialized = 2,
    /// Freed.
    Freed = 3,
}

impl KmemcheckShadow {
    const fn from_bits(b: u8) -> Self {
        match b & 3 {
            0 => KmemcheckShadow::Unallocated,
            1 => KmemcheckShadow::Uninitialized,
            2 => KmemcheckShadow::Initialized,
            _ => KmemcheckShadow::Freed,
        }
    }

    /// error.c's `desc[]`.
    pub const fn desc(self) -> &'static str {
        match self {
            KmemcheckShadow::Unallocated => "unallocated",
            KmemcheckShadow::Uninitialized => "uninitialized",
            KmemcheckShadow::Initialized => "initialized",
            KmemcheckShadow::Freed => "freed",
        }
    }

    /// error.c's `short_desc[]`.
    pub const fn letter(self) -> char {
        match self {
            KmemcheckShadow::Unallocated => 'a',
            KmemcheckShadow::Uninitialized => 'u',
            KmemcheckShadow::Initialized => 'i',
            KmemcheckShadow::Freed => 'f',
        }
    }
}

/// Page flag: the page is tracked (its bytes' shadow is meaningful).
pub(crate) const PG_TRACKED: u8 = 1;
/// Page flag: a slab of a cache with a constructor (objects are never uninitialised/freed).
pub(crate) const PG_CTOR: u8 = 2;
/// Page flag: a slab of a `SLAB_TYPESAFE_BY_RCU` cache (frees are not marked).
pub(crate) const PG_RCU: u8 = 4;
/// Page flag: the platform holds the page non-present (`kmemcheck_hide_pages`).
pub(crate) const PG_HIDDEN: u8 = 8;

/// Sites remembered as having reported (open addressing; when full, every site reports).
const SITES: usize = 256;
/// Per-CPU "quiet" flags (a CPU id modulo their number picks one): set while kmem copies a
/// block for the caller ([`SlabLayer::kmemcheck_memcpy`]), whose reads are not the caller's.
const QUIET: usize = 64;

/// A machine's kmemcheck state, in the slab layer. The arrays are set up at boot by
/// [`SlabLayer::kmemcheck_alloc_shadow`] (null: kmemcheck is not built into this boot).
pub(crate) struct Kmemcheck {
    /// `kmemcheck_enabled`: 0 off, 1 on, 2 one-shot.
    enabled: AtomicI32,
    /// Two bits per byte of `[0, lowmem_end)`, four bytes per shadow byte.
    shadow: AtomicPtr<AtomicU8>,
    /// One flag byte per page frame below `lowmem_end`.
    flags: AtomicPtr<AtomicU8>,
    /// Page frames covered.
    npages: AtomicUsize,
    /// Sites that have reported ([`Site::Ip`] addresses; 0 is a free slot): [`SITES`]
    /// entries in memblock memory, after the page flags, then the [`QUIET`] flags.
    sites: AtomicPtr<AtomicUsize>,
    /// Reports printed.
    errors: AtomicU64,
    /// Whether the platform hides tracked pages (real traps).
    traps: core::sync::atomic::AtomicBool,
    /// Per page frame: the offset in the page from which its bytes are a slab's tail (no
    /// object ever covers them; [`PAGE_SIZE`] when none): u16s after the page flags.
    tail: AtomicPtr<AtomicU16>,
    /// `kmemcheck.unhide=`: which hidden pages are left present ([`Unhide`]).
    unhide: AtomicU8,
    /// Trap statistics ([`KmemcheckStats`]).
    faults: AtomicU64,
    unhidden: AtomicU64,
    rehidden: AtomicU64,
}

/// `kmemcheck.unhide=` (kmem's, not Linux's): when a page kmemcheck hid may stay present, so
/// that accesses to it no longer trap. A page left present goes back to hidden as soon as one
/// of its bytes leaves the initialised state (an allocation marks an object uninitialised, a
/// free marks it freed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Unhide {
    /// `0`: never (every access to a tracked page traps, as Linux's kmemcheck).
    Never = 0,
    /// `1` (the default): once every byte of the page is initialised (a slab's tail, which no
    /// object covers, excepted). Nothing kmemcheck could report is missed: a read of
    /// initialised bytes is never reported.
    Initialized = 1,
    /// `2`: once no byte of the page is uninitialised (freed and unallocated bytes allowed).
    /// Uninitialised reads are still all caught; reads of freed or unallocated bytes on a page
    /// left present are not (a use after free or an overread: KFENCE's and SLUB debugging's
    /// job).
    NoUninitialized = 2,
}

/// kmemcheck's trap counters (`KmemcheckStats`), for the hosted platform's real traps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KmemcheckStats {
    /// Faults on hidden pages handled (one single step each; with the hosted platform's
    /// system calls given hidden pages, whose pages are shown for the call).
    pub faults: u64,
    /// Times a hidden page was left present ([`Unhide`]).
    pub unhidden: u64,
    /// Times a page left present was hidden again.
    pub rehidden: u64,
    /// Reports printed.
    pub errors: u64,
}

impl Kmemcheck {
    /// kmemcheck not (yet) set up.
    pub(crate) const fn new() -> Self {
        Kmemcheck {
            enabled: AtomicI32::new(0),
            shadow: AtomicPtr::new(core::ptr::null_mut()),
            flags: AtomicPtr::new(core::ptr::null_mut()),
            npages: AtomicUsize::new(0),
            sites: AtomicPtr::new(core::ptr::null_mut()),
            errors: AtomicU64::new(0),
            traps: core::sync::atomic::AtomicBool::new(false),
            tail: AtomicPtr::new(core::ptr::null_mut()),
            unhide: AtomicU8::new(Unhide::Initialized as u8),
            faults: AtomicU64::new(0),
            unhidden: AtomicU64::new(0),
            rehidden: AtomicU64::new(0),
        }
    }

    /// Whether the shadow exists (kmemcheck was set up at boot).
    #[inline]
    pub(crate) fn built(&self) -> bool {
        !self.shadow.load(Ordering::Relaxed).is_null()
    }

    /// The flag byte of page frame `pfn`, if covered.
    #[inline]
    fn page_flags(&self, pfn: usize) -> Option<&AtomicU8> {
        let f = self.flags.load(Ordering::Acquire);
        if f.is_null() || pfn >= self.npages.load(Ordering::Relaxed) {
            return None;
        }
        // SAFETY: `flags` has `npages` entries in memblock memory kept for the machine's
        // life (set up before it was published with Release).
        Some(unsafe { &*f.add(pfn) })
    }

    /// The shadow byte holding physical byte `pa`'s two bits, if covered.
    #[inline]
    fn shadow_byte(&self, pa: usize) -> Option<&AtomicU8> {
        let s = self.shadow.load(Ordering::Acquire);
        if s.is_null() || pa >> PAGE_SHIFT >= self.npages.load(Ordering::Relaxed) {
            return None;
        }
        // SAFETY: the shadow covers `npages` frames, four bytes per shadow byte, in memblock
        // memory kept for the machine's life.
        Some(unsafe { &*s.add(pa >> 2) })
    }

    /// The shadow state of physical byte `pa` (initialised when not covered).
    #[inline]
    fn get(&self, pa: usize) -> KmemcheckShadow {
        match self.shadow_byte(pa) {
            Some(b) => KmemcheckShadow::from_bits(b.load(Ordering::Relaxed) >> ((pa & 3) * 2)),
            None => KmemcheckShadow::Initialized,
        }
    }

    /// Sets the shadow of `[pa, pa + len)` to `st` (`kmemcheck_shadow_set`).
    fn set(&self, pa: usize, len: usize, st: KmemcheckShadow) {
        let end = pa + len;
        let mut a = pa;
        let v = st as u8;
        while a < end {
            let Some(b) = self.shadow_byte(a) else { return };
            if a & 3 == 0 && end - a >= 4 {
                // Whole shadow bytes at once.
                b.store(v * 0x55, Ordering::Relaxed);
                a += 4;
                continue;
            }
            let sh = (a & 3) * 2;
            let _ = b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some((old & !(3 << sh)) | (v << sh))
            });
            a += 1;
        }
    }

    /// Remembers `ip` as a site that has reported; `false` when it already had.
    fn claim_site(&self, ip: usize) -> bool {
        let t = self.sites.load(Ordering::Acquire);
        if ip == 0 || t.is_null() {
            return true;
        }
        // SAFETY: `sites` has SITES entries in memblock memory kept for the machine's life.
        let sites = unsafe { core::slice::from_raw_parts(t, SITES) };
        let mut i = (ip.wrapping_mul(0x9e37_79b9_7f4a_7c15_u64 as usize) >> 8) % SITES;
        for _ in 0..SITES {
            match sites[i].compare_exchange(0, ip, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(cur) if cur == ip => return false,
                Err(_) => i = (i + 1) % SITES,
            }
        }
        true
    }
}

impl Kmemcheck {
    /// The tail offset of page frame `pfn` (see [`Kmemcheck::tail`]), if covered.
    #[inline]
    fn tail_of(&self, pfn: usize) -> Option<&AtomicU16> {
        let t = self.tail.load(Ordering::Acquire);
        if t.is_null() || pfn >= self.npages.load(Ordering::Relaxed) {
            return None;
        }
        // SAFETY: `tail` has `npages` entries in memblock memory kept for the machine's life.
        Some(unsafe { &*t.add(pfn) })
    }

    /// Whether page frame `pfn` may be left present under `mode`: every byte before its tail
    /// initialised ([`Unhide::Initialized`]) or none uninitialised
    /// ([`Unhide::NoUninitialized`]). 1024 shadow bytes at most, four bytes of the page each.
    fn page_settled(&self, pfn: usize, mode: Unhide) -> bool {
        let Some(tail) = self.tail_of(pfn) else {
            return false;
        };
        let len = usize::from(tail.load(Ordering::Relaxed)).min(PAGE_SIZE);
        let base = pfn << PAGE_SHIFT;
        let mut off = 0;
        while off < len {
            let Some(b) = self.shadow_byte(base + off) else {
                return false;
            };
            let v = b.load(Ordering::Relaxed);
            // The fields of this shadow byte that lie before the tail.
            let fields = (len - off).min(4);
            let mask: u8 = if fields == 4 {
                0xff
            } else {
                (1 << (2 * fields)) - 1
            };
            let ok = match mode {
                Unhide::Never => false,
                // Every field 0b10.
                Unhide::Initialized => v & mask == 0xaa & mask,
                // No field 0b01: a low bit set without its high bit.
                Unhide::NoUninitialized => v & !(v >> 1) & 0x55 & mask == 0,
            };
            if !ok {
                return false;
            }
            off += 4;
        }
        true
    }

    /// Sets every byte of page frame `pfn` that is not uninitialised to initialised.
    fn scrub_page(&self, pfn: usize) {
        let base = pfn << PAGE_SHIFT;
        for off in (0..PAGE_SIZE).step_by(4) {
            let Some(b) = self.shadow_byte(base + off) else {
                return;
            };
            let _ = b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                // Fields 0b01 are kept, the others become 0b10.
                let lo = v & !(v >> 1) & 0x55;
                let keep = lo | (lo << 1);
                Some((v & keep) | (0xaa & !keep))
            });
        }
    }

    /// The quiet flag of `cpu`.
    fn quiet(&self, cpu: usize) -> Option<&AtomicUsize> {
        let t = self.sites.load(Ordering::Acquire);
        // SAFETY: the table has SITES + QUIET entries in memblock memory kept for the
        // machine's life.
        (!t.is_null()).then(|| unsafe { &*t.add(SITES + cpu % QUIET) })
    }
}

/// `kstrtoint(s, 0, …)`.
fn kstrtoint(s: &str) -> Option<i32> {
    let (neg, v) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let n = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if v.len() > 1 && v.starts_with('0') {
        i64::from_str_radix(&v[1..], 8).ok()?
    } else {
        v.parse::<i64>().ok()?
    };
    i32::try_from(if neg { -n } else { n }).ok()
}

/// The value of `kmemcheck.unhide=` on a command line (the last good one; default
/// [`Unhide::Initialized`]).
pub(crate) fn unhide_param(cmdline: &str) -> Unhide {
    let mut r = Unhide::Initialized;
    for w in cmdline.split_whitespace() {
        match w.strip_prefix("kmemcheck.unhide=") {
            Some("0") => r = Unhide::Never,
            Some("1") => r = Unhide::Initialized,
            Some("2") => r = Unhide::NoUninitialized,
            _ => {}
        }
    }
    r
}

/// The value of `kmemcheck=` on a command line (the last good one), if any.
pub(crate) fn kmemcheck_param(cmdline: &str) -> Option<i32> {
    let mut r = None;
    for w in cmdline.split_whitespace() {
        if let Some(v) = w.strip_prefix("kmemcheck=") {
            r = kstrtoint(v).or(r);
        }
    }
    r
}

impl<P: Platform> SlabLayer<P> {
    /// Whether kmemcheck tracks memory in this boot (`kmemcheck=1` or `2` at boot), whatever
    /// its current mode.
    #[inline]
    pub fn kmemcheck_built(&self) -> bool {
        self.kmemcheck.built()
    }

    /// `kmemcheck_enabled`: 0 off, 1 on, 2 one-shot; `None` when kmemcheck is not built into
    /// this boot (`/proc/sys/kernel/kmemcheck` is absent then).
    pub fn kmemcheck_enabled(&self) -> Option<i32> {
        self.kmemcheck
            .built()
            .then(|| self.kmemcheck.enabled.load(Ordering::Relaxed))
    }

    /// Sets `kmemcheck_enabled` (a write of `/proc/sys/kernel/kmemcheck`). Returns `false`
    /// when kmemcheck is not built into this boot.
    pub fn set_kmemcheck_enabled(&self, v: i32) -> bool {
        if !self.kmemcheck.built() {
            return false;
        }
        self.kmemcheck.enabled.store(v, Ordering::Relaxed);
        true
    }

    /// The number of kmemcheck reports printed.
    pub fn kmemcheck_errors(&self) -> u64 {
        self.kmemcheck.errors.load(Ordering::Relaxed)
    }

    /// Tells kmemcheck that the platform makes tracked pages non-present and single-steps the
    /// accesses to them (real traps): from now on new tracked pages are hidden
    /// ([`Platform::protect_direct_page`]). Returns `false` when kmemcheck is not built.
    pub fn kmemcheck_use_traps(&self) -> bool {
        if !self.kmemcheck.built() {
            return false;
        }
        self.kmemcheck.traps.store(true, Ordering::Release);
        true
    }

    /// Boot: with `kmemcheck=` not 0 (and SLUB or SLAB), takes the shadow and the page flags
    /// from memblock. Called by `Machine::boot` before `memblock_free_all`, like KFENCE's pool.
    pub(crate) fn kmemcheck_alloc_shadow(&self, cmdline: &str) {
        let Some(v) = kmemcheck_param(cmdline).filter(|&v| v != 0) else {
            return;
        };
        if self.slab().kind == crate::slab::common::SlabAllocatorKind::Slob {
            self.printk(
                LogLevel::Info,
                format_args!("kmemcheck: not supported by SLOB; disabling"),
            );
            return;
        }
        let lowmem = self.lowmem_end();
        let npages = (lowmem.as_u64() as usize) >> PAGE_SHIFT;
        let shadow_len = (npages * PAGE_SIZE) / 4;
        let alloc = |size: usize| {
            self.with_memblock(|mb| {
                mb.phys_alloc_range(size as u64, PAGE_SIZE as u64, PhysAddr::new(0), lowmem)
            })
            .ok()
            .and_then(|pa| self.phys_to_virt(pa))
        };
        // Page flags (a byte each), then the pages' tail offsets (a u16 each), then the sites.
        let tail_at = npages.next_multiple_of(8);
        let sites_at = (tail_at + 2 * npages).next_multiple_of(8);
        let meta_len = sites_at + (SITES + QUIET) * core::mem::size_of::<AtomicUsize>();
        let (Some(shadow), Some(flags)) = (alloc(shadow_len), alloc(meta_len)) else {
            self.printk(
                LogLevel::Err,
                format_args!("kmemcheck: failed to allocate shadow; disabling"),
            );
            return;
        };
        let sites = flags.as_usize().wrapping_add(sites_at) as *mut AtomicUsize;
        let tail = flags.as_usize().wrapping_add(tail_at) as *mut AtomicU16;
        let flags = flags.as_ptr::<AtomicU8>();
        for pfn in 0..npages {
            // SAFETY: a fresh memblock allocation of `meta_len` bytes, used by nothing else,
            // not yet published; AtomicU8 has the layout of u8, AtomicU16 of u16 (the tail
            // array starts 8-aligned in the page-aligned block).
            unsafe {
                flags.add(pfn).write(AtomicU8::new(0));
                tail.add(pfn).write(AtomicU16::new(PAGE_SIZE as u16));
            }
        }
        for i in 0..SITES + QUIET {
            // SAFETY: `sites.add(i)` for i < SITES + QUIET lies inside the fresh memblock
            // allocation of `meta_len` bytes, used by nothing else and not yet published; the table
            // starts 8-aligned (a page-aligned block plus a multiple of 8), as AtomicUsize needs.
            unsafe { sites.add(i).write(AtomicUsize::new(0)) };
        }
        let k = &self.kmemcheck;
        k.npages.store(npages, Ordering::Relaxed);
        k.sites.store(sites, Ordering::Release);
        k.tail.store(tail, Ordering::Release);
        k.unhide
            .store(unhide_param(cmdline) as u8, Ordering::Relaxed);
        k.enabled.store(v, Ordering::Relaxed);
        k.flags.store(flags, Ordering::Release);
        k.shadow
            .store(shadow.as_ptr::<AtomicU8>(), Ordering::Release);
        self.slab().hooked.store(true, Ordering::Relaxed);
        // A platform that traps hides every tracked page from its first slab on, so that
        // the allocator's own writes (free pointers, constructors) initialise what they
        // write, as under Linux's kmemcheck.
        let traps = self.platform().set_kmemcheck_hook(KmemcheckHook {
            ctx: (self as *const Self).cast(),
            access: kmemcheck_fault_hook::<P>,
            show: kmemcheck_show_hook::<P>,
            copy: kmemcheck_copy_hook::<P>,
            hide: kmemcheck_hide_hook::<P>,
        });
        k.traps.store(traps, Ordering::Release);
    }

    /// `kmemcheck_init`: the boot line once the slab allocator runs.
    pub(crate) fn kmemcheck_init(&self) {
        if self.kmemcheck.built() {
            self.printk(LogLevel::Info, format_args!("kmemcheck: Initialized"));
        }
    }

    /// `kmemcheck_fault`: a real access of `size` bytes at `addr` by the instruction at `ip`
    /// faulted. If the page is one kmemcheck hid, checks or updates the shadow and shows the
    /// page for the single step (`kmemcheck_show`); returns whether it was kmemcheck's.
    pub fn kmemcheck_fault(&self, addr: usize, size: usize, write: bool, ip: usize) -> bool {
        let p = addr as *const u8;
        if self.kmc_flags(p) & PG_HIDDEN == 0 {
            return false;
        }
        self.kmemcheck.faults.fetch_add(1, Ordering::Relaxed);
        self.kmemcheck_access_at(p, size.max(1), write, Site::Ip(ip));
        self.platform()
            .protect_direct_page((addr & !(PAGE_SIZE - 1)) as *mut u8, false);
        self.kmc_settle(p);
        true
    }

    /// `kmemcheck_copy` of the fault path (arch/x86/mm/kmemcheck/kmemcheck.c, for `movs`): a
    /// string move of `size` bytes (at most 8) from `src` to `dst` by the instruction at `ip`.
    /// Tracked destination bytes take the source bytes' shadow (initialised where the source
    /// is not tracked) and count as initialised for the check; the move is reported as a read
    /// at `src` when none of its bytes is then initialised (uninitialised bytes leaving
    /// tracked memory). Shows no page.
    pub fn kmemcheck_fault_copy(&self, dst: usize, src: usize, size: usize, ip: usize) {
        if !self.kmemcheck.built() {
            return;
        }
        let size = size.clamp(1, 8);
        let mut st = [KmemcheckShadow::Initialized; 8];
        for (i, s) in st.iter_mut().enumerate().take(size) {
            if let Some(v) = self.kmemcheck_shadow_state(src.wrapping_add(i) as *const u8) {
                *s = v;
            }
        }
        for (i, s) in st.iter_mut().enumerate().take(size) {
            let d = dst.wrapping_add(i) as *const u8;
            if self.kmemcheck_is_tracked(d) {
                self.kmc_mark(d, 1, *s);
                *s = KmemcheckShadow::Initialized;
            }
        }
        if !st[..size].contains(&KmemcheckShadow::Initialized) {
            self.kmemcheck_access_at(src as *const u8, size, false, Site::Ip(ip));
        }
    }

    /// Keeps this CPU's reads of tracked memory from being checked until the guard drops:
    /// kmem's own reads of object bytes that are no use of them (kmemleak's scan, checksum
    /// and hex dump; Linux's kmemleak skipped uninitialised memory with
    /// `kmemcheck_is_obj_initialized` instead).
    pub(crate) fn kmemcheck_quiet(&self) -> KmemcheckQuiet<'_> {
        let q = self
            .kmemcheck
            .quiet(self.platform().raw_cpu_id())
            .filter(|_| self.kmemcheck.built());
        if let Some(q) = q {
            q.fetch_add(1, Ordering::Relaxed);
        }
        KmemcheckQuiet(q)
    }

    /// kmemcheck's trap counters.
    pub fn kmemcheck_stats(&self) -> KmemcheckStats {
        let k = &self.kmemcheck;
        KmemcheckStats {
            faults: k.faults.load(Ordering::Relaxed),
            unhidden: k.unhidden.load(Ordering::Relaxed),
            rehidden: k.rehidden.load(Ordering::Relaxed),
            errors: k.errors.load(Ordering::Relaxed),
        }
    }

    /// After a trap on the hidden page holding `p` (shown for the single step): leaves it
    /// present if its shadow is settled under `kmemcheck.unhide=` ([`Unhide`]), so that the
    /// single step's end does not hide it again.
    ///
    /// Against an allocation or free on another CPU ([`Self::kmc_rehide`]): that one writes
    /// the shadow first and then sets `PG_HIDDEN`; this one clears `PG_HIDDEN` and then reads
    /// the shadow again. Whichever comes second sees the other's write (all sequentially
    /// consistent), so a page with an unsettled shadow ends up hidden.
    fn kmc_settle(&self, p: *const u8) {
        let k = &self.kmemcheck;
        let mode = match k.unhide.load(Ordering::Relaxed) {
            1 => Unhide::Initialized,
            2 => Unhide::NoUninitialized,
            _ => return,
        };
        let Some(pfn) = self.kmc_pa(p).map(|pa| pa >> PAGE_SHIFT) else {
            return;
        };
        let Some(f) = k.page_flags(pfn) else { return };
        if f.load(Ordering::SeqCst) & PG_HIDDEN == 0 || !k.page_settled(pfn, mode) {
            return;
        }
        if f.fetch_and(!PG_HIDDEN, Ordering::SeqCst) & PG_HIDDEN == 0 {
            return;
        }
        if k.page_settled(pfn, mode) {
            k.unhidden.fetch_add(1, Ordering::Relaxed);
        } else {
            // An allocation or free came in between: hidden after all (the single step's
            // end hides the page, as it sees the flag).
            f.fetch_or(PG_HIDDEN, Ordering::SeqCst);
        }
    }

    /// The bytes `[p, p + n)` left the initialised state: every tracked page of theirs that
    /// was left present ([`Self::kmc_settle`]) is hidden again.
    fn kmc_rehide(&self, p: *const u8, n: usize) {
        let k = &self.kmemcheck;
        if n == 0 || !k.traps.load(Ordering::Relaxed) || k.unhide.load(Ordering::Relaxed) == 0 {
            return;
        }
        let first = p as usize & !(PAGE_SIZE - 1);
        let last = (p as usize + n - 1) & !(PAGE_SIZE - 1);
        for page in (first..=last).step_by(PAGE_SIZE) {
            let Some(pfn) = self.kmc_pa(page as *const u8).map(|pa| pa >> PAGE_SHIFT) else {
                continue;
            };
            let Some(f) = k.page_flags(pfn) else { continue };
            // Only a tracked page that is present: set PG_HIDDEN, then hide it.
            let prev = f.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                (v & PG_TRACKED != 0 && v & PG_HIDDEN == 0).then_some(v | PG_HIDDEN)
            });
            if prev.is_err() {
                continue;
            }
            if k.unhide.load(Ordering::Relaxed) == Unhide::NoUninitialized as u8 {
                // The page's freed and unallocated bytes were open to unchecked writes (SLUB's
                // free pointers, …) while it was present: their states are stale, and a read
                // of them would be reported wrongly. They count as initialised from now on.
                k.scrub_page(pfn);
            }
            if self.platform().protect_direct_page(page as *mut u8, true) {
                k.rehidden.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// `kmemcheck_show`: shows the page holding `addr` if kmemcheck hid it (for an access
    /// that kmemcheck does not check, the host kernel's in a system call); returns whether
    /// it did. [`Self::kmemcheck_hide`] hides it again.
    pub fn kmemcheck_show(&self, addr: usize) -> bool {
        if self.kmc_flags(addr as *const u8) & PG_HIDDEN == 0 {
            return false;
        }
        self.kmemcheck.faults.fetch_add(1, Ordering::Relaxed);
        let shown = self
            .platform()
            .protect_direct_page((addr & !(PAGE_SIZE - 1)) as *mut u8, false);
        self.kmc_settle(addr as *const u8);
        shown
    }

    /// `kmemcheck_hide`: after the single step, hides the page holding `addr` again if it is
    /// still a hidden tracked page (it may have left the slab layer meanwhile, on another
    /// CPU).
    pub fn kmemcheck_hide(&self, addr: usize) {
        if self.kmc_flags(addr as *const u8) & PG_HIDDEN != 0 {
            self.platform()
                .protect_direct_page((addr & !(PAGE_SIZE - 1)) as *mut u8, true);
        }
    }

    /// The physical address of a direct-map pointer.
    #[inline]
    fn kmc_pa(&self, p: *const u8) -> Option<usize> {
        self.virt_to_phys(VirtAddr::new(p as usize))
            .map(|pa| pa.as_u64() as usize)
    }

    /// The page flags of the page holding `p`.
    #[inline]
    fn kmc_flags(&self, p: *const u8) -> u8 {
        self.kmc_pa(p)
            .and_then(|pa| self.kmemcheck.page_flags(pa >> PAGE_SHIFT))
            .map_or(0, |f| f.load(Ordering::Relaxed))
    }

    /// Whether `p` is in memory kmemcheck tracks (`kmemcheck_page_is_tracked`).
    pub fn kmemcheck_is_tracked(&self, p: *const u8) -> bool {
        self.kmc_flags(p) & PG_TRACKED != 0
    }

    /// The shadow state of the byte at `p`, when it is tracked.
    pub fn kmemcheck_shadow_state(&self, p: *const u8) -> Option<KmemcheckShadow> {
        if !self.kmemcheck_is_tracked(p) {
            return None;
        }
        Some(self.kmemcheck.get(self.kmc_pa(p)?))
    }

    /// Sets the shadow of `[p, p + n)` (the tracked part of it).
    fn kmc_mark(&self, p: *const u8, n: usize, st: KmemcheckShadow) {
        if let Some(pa) = self.kmc_pa(p) {
            self.kmemcheck.set(pa, n, st);
            // Under `kmemcheck.unhide=2` freed bytes may stay on a present page.
            let unhide = self.kmemcheck.unhide.load(Ordering::Relaxed);
            if st == KmemcheckShadow::Uninitialized
                || (st != KmemcheckShadow::Initialized && unhide == Unhide::Initialized as u8)
            {
                self.kmc_rehide(p, n);
            }
        }
    }

    /// `kmemcheck_mark_initialized`: the bytes count as written.
    pub fn kmemcheck_mark_initialized(&self, p: *const u8, n: usize) {
        if self.kmemcheck.built() {
            self.kmc_mark(p, n, KmemcheckShadow::Initialized);
        }
    }

    /// `kmemcheck_mark_uninitialized`.
    pub fn kmemcheck_mark_uninitialized(&self, p: *const u8, n: usize) {
        if self.kmemcheck.built() {
            self.kmc_mark(p, n, KmemcheckShadow::Uninitialized);
        }
    }

    /// Makes `[base, base + bytes)` tracked pages (a new slab or large kmalloc block) with
    /// their shadow `st`, and hides them when the platform traps (`kmemcheck_alloc_shadow` +
    /// `kmemcheck_hide_pages`).
    /// Bytes from `used` on are the block's tail, which no object covers.
    fn kmc_track_pages(
        &self,
        base: *mut u8,
        bytes: usize,
        used: usize,
        st: KmemcheckShadow,
        extra: u8,
    ) {
        let Some(pa) = self.kmc_pa(base) else { return };
        self.kmemcheck.set(pa, bytes, st);
        let hide = self.kmemcheck.traps.load(Ordering::Acquire);
        for i in 0..bytes / PAGE_SIZE {
            let pfn = (pa >> PAGE_SHIFT) + i;
            let Some(f) = self.kmemcheck.page_flags(pfn) else {
                return;
            };
            if let Some(t) = self.kmemcheck.tail_of(pfn) {
                let tail = used.saturating_sub(i * PAGE_SIZE).min(PAGE_SIZE);
                t.store(tail as u16, Ordering::Relaxed);
            }
            let mut v = PG_TRACKED | extra;
            if hide
                && self
                    .platform()
                    .protect_direct_page(base.wrapping_add(i * PAGE_SIZE), true)
            {
                v |= PG_HIDDEN;
            }
            f.store(v, Ordering::Release);
        }
    }

    /// A new slab of `bytes` at `base` of a cache with `flags` (`allocate_slab`'s kmemcheck
    /// part): tracked unless `SLAB_NOTRACK`, unallocated, or initialised with a constructor.
    /// Its objects end `used` bytes into it (the rest is its tail).
    pub(crate) fn kmemcheck_new_slab(
        &self,
        base: *mut u8,
        bytes: usize,
        used: usize,
        flags: SlabFlags,
        ctor: bool,
    ) {
        if flags.contains(SlabFlags::NOTRACK) {
            return;
        }
        let mut extra = 0;
        if ctor {
            extra |= PG_CTOR;
        }
        if flags.contains(SlabFlags::TYPESAFE_BY_RCU) {
            extra |= PG_RCU;
        }
        let st = if ctor {
            KmemcheckShadow::Initialized
        } else {
            KmemcheckShadow::Unallocated
        };
        self.kmc_track_pages(base, bytes, used, st, extra);
    }

    /// Pages leaving the slab layer (`kmemcheck_free_shadow`): untracked, shown again.
    pub(crate) fn kmemcheck_untrack_pages(&self, base: *mut u8, bytes: usize) {
        let Some(pa) = self.kmc_pa(base) else { return };
        for i in 0..bytes / PAGE_SIZE {
            let Some(f) = self.kmemcheck.page_flags((pa >> PAGE_SHIFT) + i) else {
                return;
            };
            if f.swap(0, Ordering::AcqRel) & PG_HIDDEN != 0 {
                self.platform()
                    .protect_direct_page(base.wrapping_add(i * PAGE_SIZE), false);
            }
        }
    }

    /// A large kmalloc block of `bytes` at `base` (`kmemcheck_pagealloc_alloc`): tracked,
    /// uninitialised, or initialised with `__GFP_ZERO`; untracked with `__GFP_NOTRACK`.
    pub(crate) fn kmemcheck_large_alloc(&self, base: *mut u8, bytes: usize, gfp: GfpFlags) {
        if gfp.contains(GfpFlags::__GFP_NOTRACK) {
            return;
        }
        let st = if gfp.contains(GfpFlags::__GFP_ZERO) {
            KmemcheckShadow::Initialized
        } else {
            KmemcheckShadow::Uninitialized
        };
        self.kmc_track_pages(base, bytes, bytes, st, 0);
    }

    /// `kmemcheck_slab_alloc`: an object of `size` bytes at `p` was handed out.
    pub(crate) fn kmemcheck_slab_alloc(&self, p: *mut u8, size: usize, gfp: GfpFlags) {
        let f = self.kmc_flags(p);
        if f & PG_TRACKED == 0 || f & PG_CTOR != 0 {
            return;
        }
        let off = self.kmemcheck.enabled.load(Ordering::Relaxed) == 0;
        let st =
            if gfp.contains(GfpFlags::__GFP_ZERO) || off || gfp.contains(GfpFlags::__GFP_NOTRACK) {
                KmemcheckShadow::Initialized
            } else {
                KmemcheckShadow::Uninitialized
            };
        self.kmc_mark(p, size, st);
    }

    /// `kmemcheck_slab_free`: the object of `size` bytes at `p` is being freed.
    pub(crate) fn kmemcheck_slab_free(&self, p: *const u8, size: usize) {
        let f = self.kmc_flags(p);
        if f & PG_TRACKED == 0 || f & (PG_CTOR | PG_RCU) != 0 {
            return;
        }
        self.kmc_mark(p, size, KmemcheckShadow::Freed);
    }

    /// The allocation hook of a `kmem_cache` object (`slab_post_alloc_hook`'s kmemcheck
    /// part): the cache's object size.
    #[inline(never)]
    pub(crate) fn kmemcheck_cache_alloc_hook(
        &self,
        c: crate::slab::common::CacheHandle,
        p: Option<core::ptr::NonNull<u8>>,
        gfp: GfpFlags,
    ) {
        let Some(p) = p else { return };
        if !self.kmemcheck_is_tracked(p.as_ptr()) {
            return;
        }
        if let Some(l) = self.slab_layout(c) {
            self.kmemcheck_slab_alloc(p.as_ptr(), l.object_size, gfp);
        }
    }

    /// The allocation hook of a kmalloc block: its usable size (`ksize`, the kmalloc cache's
    /// object size).
    #[inline(never)]
    pub(crate) fn kmemcheck_kmalloc_hook(&self, p: Option<core::ptr::NonNull<u8>>, gfp: GfpFlags) {
        let Some(p) = p else { return };
        if !self.kmemcheck_is_tracked(p.as_ptr()) {
            return;
        }
        let n = self.ksize_keep(p.as_ptr());
        self.kmemcheck_slab_alloc(p.as_ptr(), n, gfp);
    }

    /// The free hook of a kmalloc block or `kmem_cache` object (`slab_free_hook`'s kmemcheck
    /// part); `c` names the cache when the caller did.
    #[inline(never)]
    pub(crate) fn kmemcheck_free_hook(
        &self,
        c: Option<crate::slab::common::CacheHandle>,
        p: *const u8,
    ) {
        if !self.kmemcheck_is_tracked(p) {
            return;
        }
        let n = match c {
            Some(c) => self.slab_layout(c).map_or(0, |l| l.object_size),
            None => self.ksize_keep(p),
        };
        self.kmemcheck_slab_free(p, n);
    }

    /// `kmemcheck_copy`: `n` bytes were copied from `src` to `dst`; the destination's shadow
    /// becomes the source's (initialised where the source is not tracked).
    pub fn kmemcheck_copy(&self, dst: *const u8, src: *const u8, n: usize) {
        if !self.kmemcheck.built() {
            return;
        }
        for i in 0..n {
            let d = dst.wrapping_add(i);
            if !self.kmemcheck_is_tracked(d) {
                continue;
            }
            let s = src.wrapping_add(i);
            let st = self
                .kmemcheck_shadow_state(s)
                .unwrap_or(KmemcheckShadow::Initialized);
            self.kmc_mark(d, 1, st);
        }
    }

    /// Copies `n` bytes from `src` to `dst` for a caller (`krealloc`, a C `realloc`) and the
    /// shadow with them: uninitialised bytes stay uninitialised in the copy and are not
    /// reported by the copy itself (Linux's `memcpy` is a `rep movs`, which kmemcheck
    /// handles with `kmemcheck_copy`; kmem's copy may use any loads, which are kept quiet on
    /// this CPU while it runs).
    ///
    /// # Safety
    /// `src` is valid for `n` bytes of reads, `dst` for `n` bytes of writes, and they do
    /// not overlap.
    pub unsafe fn kmemcheck_memcpy(&self, dst: *mut u8, src: *const u8, n: usize) {
        let q = self
            .kmemcheck
            .quiet(self.platform().raw_cpu_id())
            .filter(|_| self.kmemcheck.built());
        if let Some(q) = q {
            q.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's guarantee.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, n) };
        if let Some(q) = q {
            q.fetch_sub(1, Ordering::Relaxed);
            self.kmemcheck_copy(dst, src, n);
        }
    }

    /// An access of `size` bytes at `p` (`kmemcheck_access`): a write initialises the bytes;
    /// a read of bytes none of which is initialised is reported (once per [`Site::Ip`]
    /// site) and the bytes are initialised. Returns whether `p` is tracked memory.
    pub fn kmemcheck_access_at(&self, p: *const u8, size: usize, write: bool, site: Site) -> bool {
        if !self.kmemcheck.built() || size == 0 || !self.kmemcheck_is_tracked(p) {
            return false;
        }
        let Some(pa) = self.kmc_pa(p) else {
            return false;
        };
        let k = &self.kmemcheck;
        if write {
            k.set(pa, size, KmemcheckShadow::Initialized);
            return true;
        }
        let cpu = self.platform().raw_cpu_id();
        if k.quiet(cpu).is_some_and(|q| q.load(Ordering::Relaxed) != 0) {
            // kmem's own copy for the caller: the shadow follows the bytes afterwards.
            return true;
        }
        // kmemcheck_shadow_test with CONFIG_KMEMCHECK_PARTIAL_OK: any initialised byte makes
        // the read fine; otherwise the first byte's state is the error. Bytes of untracked
        // pages (a read across the end of a tracked page) count as initialised.
        let mut first = None;
        for i in 0..size {
            let a = p.wrapping_add(i);
            if !self.kmemcheck_is_tracked(a) {
                return true;
            }
            let st = k.get(pa + i);
            if st == KmemcheckShadow::Initialized {
                return true;
            }
            first.get_or_insert(st);
        }
        let st = first.unwrap_or(KmemcheckShadow::Initialized);
        let mode = k.enabled.load(Ordering::Relaxed);
        if mode != 0 {
            let fresh = match site {
                Site::Ip(ip) | Site::Fault(ip, _) => k.claim_site(ip),
                Site::Caller(_) => true,
            };
            if fresh {
                // A real fault's report carries the interrupted code's callers, as Linux's
                // `kmemcheck_error_save` kept `save_stack_trace_regs`: the stack is taken
                // here, inside the fault handler (only for a report, not every fault).
                let site = match site {
                    Site::Ip(ip) if ip != 0 => Site::Fault(ip, self.stack_trace_save()),
                    s => s,
                };
                self.kmemcheck_report(p, size, st, site);
            }
            if mode == 2 {
                k.enabled.store(0, Ordering::Relaxed);
            }
        }
        // "Don't warn about it again."
        k.set(pa, size, KmemcheckShadow::Initialized);
        true
    }

    /// [`Self::kmemcheck_access_at`] by the caller of this function (the shell's `peek`/`poke`
    /// and tests).
    #[track_caller]
    pub fn kmemcheck_access(&self, p: *const u8, size: usize, write: bool) -> bool {
        self.kmemcheck_access_at(p, size, write, Site::Caller(Location::caller()))
    }
}

/// A section of unchecked reads ([`SlabLayer::kmemcheck_quiet`]).
pub(crate) struct KmemcheckQuiet<'a>(Option<&'a AtomicUsize>);

impl Drop for KmemcheckQuiet<'_> {
    fn drop(&mut self) {
        if let Some(q) = self.0 {
            q.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The platform's kmemcheck access hook.
///
/// # Safety
/// `ctx` is the `SlabLayer<P>` that registered the hook, alive (the hook contract).
unsafe fn kmemcheck_fault_hook<P: Platform>(
    ctx: *const (),
    addr: usize,
    size: usize,
    write: bool,
    ip: usize,
) -> bool {
    // SAFETY: the hook contract: the machine that registered it is alive.
    let m = unsafe { &*ctx.cast::<SlabLayer<P>>() };
    m.kmemcheck_fault(addr, size, write, ip)
}

/// The platform's kmemcheck show hook.
///
/// # Safety
/// As [`kmemcheck_fault_hook`].
unsafe fn kmemcheck_show_hook<P: Platform>(ctx: *const (), addr: usize) -> bool {
    // SAFETY: the hook contract: the machine that registered it is alive.
    let m = unsafe { &*ctx.cast::<SlabLayer<P>>() };
    m.kmemcheck_show(addr)
}

/// The platform's kmemcheck copy hook (a faulting `movs`).
///
/// # Safety
/// As [`kmemcheck_fault_hook`].
unsafe fn kmemcheck_copy_hook<P: Platform>(
    ctx: *const (),
    dst: usize,
    src: usize,
    size: usize,
    ip: usize,
) {
    // SAFETY: the hook contract: the machine that registered it is alive.
    let m = unsafe { &*ctx.cast::<SlabLayer<P>>() };
    m.kmemcheck_fault_copy(dst, src, size, ip);
}

/// The platform's kmemcheck hide hook.
///
/// # Safety
/// As [`kmemcheck_fault_hook`].
unsafe fn kmemcheck_hide_hook<P: Platform>(ctx: *const (), addr: usize) {
    // SAFETY: the hook contract: the machine that registered it is alive.
    let m = unsafe { &*ctx.cast::<SlabLayer<P>>() };
    m.kmemcheck_hide(addr);
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn param_parses_like_kstrtoint() {
        assert_eq!(kmemcheck_param("kmemcheck=1"), Some(1));
        assert_eq!(kmemcheck_param("a kmemcheck=2 b"), Some(2));
        assert_eq!(kmemcheck_param("kmemcheck=0x2"), Some(2));
        assert_eq!(kmemcheck_param("kmemcheck=1 kmemcheck=x"), Some(1));
        assert_eq!(kmemcheck_param("kmemcheck=0"), Some(0));
        assert_eq!(kmemcheck_param("kfence.sample_interval=1"), None);
    }

    #[test]
    fn shadow_letters_follow_error_c() {
        let s: [char; 4] = [0, 1, 2, 3].map(|b| KmemcheckShadow::from_bits(b).letter());
        assert_eq!(s, ['a', 'u', 'i', 'f']);
        assert_eq!(KmemcheckShadow::Uninitialized.desc(), "uninitialized");
    }

    #[test]
    fn site_table_reports_once_per_site() {
        let k = Kmemcheck::new();
        let mut table: std::vec::Vec<AtomicUsize> =
            (0..SITES).map(|_| AtomicUsize::new(0)).collect();
        k.sites.store(table.as_mut_ptr(), Ordering::Release);
        assert!(k.claim_site(0x1234));
        assert!(!k.claim_site(0x1234));
        assert!(k.claim_site(0x1235));
        for ip in 1..=SITES + 10 {
            let _ = k.claim_site(ip * 4096);
        }
        // Full: every site reports.
        assert!(k.claim_site(usize::MAX));
    }
}
