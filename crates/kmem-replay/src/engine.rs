//! The replay engine: a parsed [`Trace`] through a booted machine.
//!
//! # How events map to kmem
//! - `kmalloc` → [`Machine::kmalloc`] with the traced `bytes_req` and GFP flags; the traced
//!   `bytes_alloc` is compared with kmem's [`Machine::ksize`] (size-class agreement).
//! - `kmem_cache_alloc` → [`Machine::kmem_cache_alloc`] on the cache of that name. Caches are
//!   created on first sight with `kmem_cache_create(name, bytes_req, …)` (`SLAB_ACCOUNT` when
//!   the allocation was accounted without `__GFP_ACCOUNT`, `SLAB_HWCACHE_ALIGN` when that is
//!   what makes kmem's object stride equal the traced `bytes_alloc`), so kmem's merging rules
//!   decide which of them become aliases; names kmem already has (`kmalloc-64`, …) are used
//!   as they are.
//! - `kfree` / `kmem_cache_free` → [`Machine::kfree`] / [`Machine::kmem_cache_free`] of the
//!   object the traced pointer maps to (the cache is the one the object came from).
//! - `mm_page_alloc` / `mm_page_free` → [`Machine::alloc_pages`] / [`Machine::__free_pages`]
//!   with the traced order and GFP flags; kmem's migratetype for the flags is compared with
//!   the traced one.
//!
//! # What is not replayed, and why
//! Pages the traced kernel's slab allocator took for its slabs (and for large kmalloc) appear
//! as `mm_page_alloc` events too. kmem's SLUB takes its own slab pages when the object events
//! are replayed, so replaying those page events as well would count slab memory twice. A
//! first pass finds them: a page block is a slab page when a traced slab object lies inside
//! it while it is allocated (the object's address minus the direct-map base, `PAGE_OFFSET`,
//! gives its pfn). Those allocations and their frees are counted as "slab pages (left to
//! kmem's SLUB)".
//!
//! Frees of objects and pages allocated before the trace began have nothing to free: they are
//! counted as *unknown frees*. Allocations never freed stay allocated and are counted at the
//! end. An allocation at a traced address that is still live (its free was not traced, e.g.
//! a bulk free) frees the old object first and is counted as an *implicit free*.
//!
//! # CPUs
//! Events run serially in trace order on one thread; before each event the platform's current
//! CPU is set to the traced CPU (modulo the machine's CPUs), see [`crate::platform`].

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use kmem::arch::Arch;
use kmem::mmzone::MigrateType;
use kmem::platform::Platform;
use kmem::{BootParams, CacheHandle, GfpFlags, Machine, Order, PagePtr, SlabFlags, PAGE_SIZE};
use kmem_hosted::{Clock, Console, HostedConfig, HostedPlatform};

use crate::parse::{Event, EventKind, Trace, NO_NAME, NR_EVENT_KINDS};
use crate::platform::ReplayPlatform;
use crate::report::{EventStats, ReplayReport, ZoneFrag};

/// x86_64's `PAGE_OFFSET` without KASLR of the memory regions (`__PAGE_OFFSET_BASE_L4`,
/// arch/x86/include/asm/page_64_types.h).
pub const X86_64_PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;
/// i386's `PAGE_OFFSET` with the default 3G/1G split (`CONFIG_PAGE_OFFSET`).
pub const I386_PAGE_OFFSET: u64 = 0xc000_0000;
/// `KMALLOC_MAX_CACHE_SIZE` of x86 with 4 KiB pages (include/linux/slab.h): larger kmallocs
/// go to the page allocator.
const KMALLOC_MAX_CACHE_SIZE: u32 = 8192;

/// What to boot and what to print.
#[derive(Clone, Debug)]
pub struct Options {
    /// Architecture of the simulated machine.
    pub arch: Arch,
    /// Bytes of RAM.
    pub mem: u64,
    /// Online CPUs; traced CPU `c` replays on CPU `c % cpus`.
    pub cpus: usize,
    /// Kernel command line (e.g. `slub_debug=FZ`).
    pub cmdline: String,
    /// Seed of the machine's random numbers.
    pub seed: u64,
    /// /proc files to include in the report, read after the replay.
    pub cat: Vec<String>,
    /// The traced kernel's direct-map base; `None` for the architecture's default.
    pub page_offset: Option<u64>,
    /// Populate the machine's whole RAM before the replay (host memory for all of it, but the
    /// replay is then not slowed by the host's first-touch page faults). [`run`] does it only
    /// for a trace with events; RAM is otherwise faulted in as the replay touches it.
    pub prefault: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            arch: Arch::X86_64,
            mem: 1 << 30,
            cpus: 2,
            cmdline: String::new(),
            seed: 0,
            cat: Vec::new(),
            page_offset: None,
            prefault: true,
        }
    }
}

/// A small multiplicative hasher for pointer and pfn keys (std's SipHash is several times
/// slower on the replay's hot path, and the keys are not attacker-chosen).
#[derive(Default, Clone, Copy)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        // Fibonacci hashing; the high bits carry the entropy, so fold them down.
        let h = (v ^ (v >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 32);
    }
}

type AddrMap<V> = HashMap<u64, V, BuildHasherDefault<AddrHasher>>;

/// Marker in [`Obj::cache`] for kmalloc objects.
const KMALLOC_OBJ: u32 = u32::MAX;

/// A live object: kmem's pointer and where it came from.
#[derive(Clone, Copy)]
struct Obj {
    p: usize,
    /// Index into `Replayer::caches`, or [`KMALLOC_OBJ`].
    cache: u32,
    /// Bytes the traced caller asked for (`bytes_req`).
    req: u32,
}

/// A cache seen in the trace.
struct Cache {
    handle: CacheHandle,
    name: String,
}

/// The constructor of caches recreated with one (only its presence matters: it keeps SLUB's
/// free pointer out of the object and the cache unmergeable, as the traced cache's was).
fn no_op_ctor(_obj: *mut u8) {}

/// Classification of page events by the first pass.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum PageClass {
    Plain = 0,
    /// A slab page or a large kmalloc block of the traced kernel.
    Slab = 1,
}

/// Finds the page events that belong to the traced kernel's slab allocator (see the module
/// documentation). Returns one class per event (only page events are meaningful).
fn classify(trace: &Trace, page_offset: u64) -> Vec<PageClass> {
    let mut class = vec![PageClass::Plain; trace.events.len()];
    // Live traced page blocks: start pfn → (event index, order).
    let mut live: BTreeMap<u64, (usize, u8)> = BTreeMap::new();
    for (i, e) in trace.events.iter().enumerate() {
        match e.kind {
            EventKind::MmPageAlloc => {
                live.insert(e.addr, (i, e.order));
            }
            EventKind::MmPageFree => {
                if let Some((a, _)) = live.remove(&e.addr) {
                    class[i] = class[a];
                }
            }
            EventKind::Kmalloc | EventKind::KmemCacheAlloc => {
                let Some(off) = e.addr.checked_sub(page_offset) else {
                    continue;
                };
                let pfn = off >> kmem::PAGE_SHIFT;
                if let Some((&start, &(a, order))) = live.range(..=pfn).next_back() {
                    if pfn < start + (1u64 << order) {
                        class[a] = PageClass::Slab;
                    }
                }
            }
            _ => {}
        }
    }
    class
}

/// A booted machine ready to replay traces.
pub struct Replayer {
    m: Machine<ReplayPlatform>,
    opts: Options,
    objs: AddrMap<Obj>,
    pages: AddrMap<(PagePtr, Order)>,
    /// Cache per trace name id.
    cache_of_name: Vec<Option<u32>>,
    caches: Vec<Cache>,
    stats: ReplayReport,
    /// Bytes requested by the live objects (`bytes_req` of kmalloc and kmem_cache_alloc).
    requested: u64,
}

impl Replayer {
    /// Boots the machine described by `opts`.
    ///
    /// # Errors
    /// A message saying why the machine could not be set up.
    pub fn boot(opts: &Options) -> Result<Replayer, String> {
        let params = BootParams {
            cmdline: &opts.cmdline,
            ..BootParams::simulated(opts.arch, opts.mem, opts.cpus).map_err(|e| e.to_string())?
        };
        let page = PAGE_SIZE as u64;
        let phys_size = params.e820.ram_end().div_ceil(page) * page;
        let prefaulted = if opts.prefault { phys_size } else { 0 };
        kmem_hosted::check_host_memory(
            kmem_hosted::boot_host_memory(phys_size).saturating_add(prefaulted),
        )?;
        let hosted = HostedPlatform::new(HostedConfig {
            phys_size,
            max_phys_size: 0,
            console: Console::Capture,
            clock: Clock::Manual,
            seed: Some(opts.seed),
        })
        .map_err(|e| format!("cannot create the hosted platform: {e}"))?;
        if opts.prefault {
            // RAM a real machine has is there: fault the memfd in now, so that the replay times
            // kmem rather than the host's first-touch page faults.
            let len = usize::try_from(phys_size).map_err(|e| e.to_string())?;
            hosted.prefault(hosted.direct_map_base(), len);
        }
        let m = Machine::boot(ReplayPlatform::new(hosted), &params).map_err(|e| e.to_string())?;
        m.platform().hosted().take_captured();
        Ok(Replayer {
            m,
            opts: opts.clone(),
            objs: AddrMap::default(),
            pages: AddrMap::default(),
            cache_of_name: Vec::new(),
            caches: Vec::new(),
            stats: ReplayReport::default(),
            requested: 0,
        })
    }

    /// The machine.
    pub fn machine(&self) -> &Machine<ReplayPlatform> {
        &self.m
    }

    fn page_offset(&self) -> u64 {
        self.opts.page_offset.unwrap_or(match self.opts.arch {
            Arch::X86_64 => X86_64_PAGE_OFFSET,
            Arch::I386 => I386_PAGE_OFFSET,
        })
    }

    /// Replays every event of `trace`, calling `progress(done, total)` now and then.
    pub fn replay(&mut self, trace: &Trace, progress: &mut dyn FnMut(usize, usize)) {
        self.replay_observed(trace, progress, 0, &mut |_, _| true);
    }

    /// [`Replayer::replay`], calling `observe(events_done, self)` every `every` events (never
    /// when `every` is 0) and once at the end; the replay stops early when `observe` returns
    /// `false` (a live view or a map at one point of the trace).
    pub fn replay_observed(
        &mut self,
        trace: &Trace,
        progress: &mut dyn FnMut(usize, usize),
        every: usize,
        observe: &mut dyn FnMut(usize, &Replayer) -> bool,
    ) {
        let t0 = Instant::now();
        let class = classify(trace, self.page_offset());
        self.stats.classify_secs += t0.elapsed().as_secs_f64();
        self.cache_of_name.resize(trace.names.len(), None);
        let ncpu = self.opts.cpus.max(1);
        let total = trace.events.len();
        let t1 = Instant::now();
        let mut cur_cpu = usize::MAX;
        for (i, e) in trace.events.iter().enumerate() {
            if i & 0xffff == 0 {
                progress(i, total);
            }
            if every != 0 && i % every == 0 && i != 0 && !observe(i, self) {
                self.stats.replay_secs += t1.elapsed().as_secs_f64();
                return;
            }
            let cpu = usize::from(e.cpu) % ncpu;
            if cpu != cur_cpu {
                self.m.platform().set_cpu(cpu);
                cur_cpu = cpu;
            }
            self.stats.events[e.kind as usize].seen += 1;
            match e.kind {
                EventKind::Kmalloc => self.kmalloc(e),
                EventKind::KmemCacheAlloc => self.cache_alloc(e, trace),
                EventKind::Kfree | EventKind::KmemCacheFree => self.free(e, trace),
                EventKind::MmPageAlloc => self.page_alloc(e, class[i]),
                EventKind::MmPageFree => self.page_free(e, class[i]),
            }
            if e.kind.is_alloc() {
                let slab = self.slab_pages_now();
                if slab > self.stats.peak_slab_pages {
                    self.stats.peak_slab_pages = slab;
                    self.stats.requested_at_slab_peak = self.requested;
                }
                let used = self.pages_taken();
                if used > self.stats.peak_pages_in_use {
                    self.stats.peak_pages_in_use = used;
                    self.stats.peak_at_event = i;
                }
            }
        }
        progress(total, total);
        self.stats.replay_secs += t1.elapsed().as_secs_f64();
        observe(total, self);
    }

    /// Pages in use now (managed minus free, over all zones) and the event of the peak so far.
    pub fn pages_in_use(&self) -> (isize, usize) {
        (self.pages_taken(), self.stats.peak_at_event)
    }

    /// Pages taken from the buddy free lists: managed pages minus free pages, over all zones
    /// (slab pages, page allocations and pages on the per-CPU lists).
    fn pages_taken(&self) -> isize {
        self.m
            .zones()
            .map(|z| z.managed_pages() as isize - z.stats.free_pages() as isize)
            .sum()
    }

    /// Slab memory now: the pages /proc/meminfo counts as `Slab` (slab pages of every
    /// allocator, SLOB's pages and large kmalloc blocks).
    fn slab_pages_now(&self) -> usize {
        self.m.node_stat_hook(kmem::mm::NodeStat::SlabReclaimable)
            + self.m.node_stat_hook(kmem::mm::NodeStat::SlabUnreclaimable)
    }

    fn count(&mut self, k: EventKind) -> &mut EventStats {
        &mut self.stats.events[k as usize]
    }

    /// Frees the object at a traced address that is being allocated again.
    fn implicit_free(&mut self, addr: u64) {
        if let Some(old) = self.objs.remove(&addr) {
            self.free_obj(old);
            self.stats.implicit_frees += 1;
        }
    }

    fn free_obj(&mut self, o: Obj) {
        self.requested -= u64::from(o.req);
        if o.cache == KMALLOC_OBJ {
            self.m.kfree(o.p as *const u8);
        } else {
            let c = self.caches[o.cache as usize].handle;
            self.m.kmem_cache_free(c, o.p as *mut u8);
        }
    }

    fn kmalloc(&mut self, e: &Event) {
        let p = self.m.kmalloc(e.bytes_req as usize, e.gfp);
        let Some(p) = p else {
            self.count(EventKind::Kmalloc).failed += 1;
            return;
        };
        let p = p.as_ptr();
        let ks = self.m.ksize(p);
        self.stats.kmalloc_compared += 1;
        if ks == e.bytes_alloc as usize {
            self.stats.kmalloc_agree += 1;
        } else if self.stats.kmalloc_disagreements.len() < 10 {
            self.stats.kmalloc_disagreements.push((
                e.bytes_req,
                e.bytes_alloc,
                ks as u64,
                e.gfp.bits(),
            ));
        }
        if e.bytes_alloc > KMALLOC_MAX_CACHE_SIZE {
            self.stats.large_kmalloc += 1;
        }
        self.count(EventKind::Kmalloc).replayed += 1;
        if kmem::slab::common::zero_or_null_ptr(p as usize) {
            return;
        }
        if e.addr <= kmem::ZERO_SIZE_PTR as u64 {
            // The traced kmalloc failed (NULL) or was of size 0 while ours was not: the
            // caller never saw an object, so neither does the replay.
            self.m.kfree(p);
            return;
        }
        self.implicit_free(e.addr);
        self.requested += u64::from(e.bytes_req);
        self.objs.insert(
            e.addr,
            Obj {
                p: p as usize,
                cache: KMALLOC_OBJ,
                req: e.bytes_req,
            },
        );
    }

    /// The cache for a traced name, created on first sight.
    fn cache_for(&mut self, e: &Event, trace: &Trace) -> Option<u32> {
        let id = e.name as usize;
        if let Some(c) = self.cache_of_name[id] {
            return Some(c);
        }
        let name = &trace.names[id];
        let handle = match self.m.find_cache(name) {
            Some(h) => h,
            None => self.create_cache(name, e)?,
        };
        let stride = self.m.slab_info(handle).map_or(0, |i| i.objsize);
        if stride != e.bytes_alloc as usize {
            self.stats.cache_size_disagreements.push((
                name.clone(),
                e.bytes_req,
                e.bytes_alloc,
                stride,
                self.m.kmem_cache_name(handle).unwrap_or("?").to_string(),
            ));
        }
        let idx = self.caches.len() as u32;
        self.caches.push(Cache {
            handle,
            name: name.clone(),
        });
        self.cache_of_name[id] = Some(idx);
        self.stats.caches_created += 1;
        Some(idx)
    }

    fn create_cache(&mut self, name: &str, e: &Event) -> Option<CacheHandle> {
        let mut flags = SlabFlags::NONE;
        if e.accounted && !e.gfp.contains(GfpFlags::__GFP_ACCOUNT) {
            flags = flags.union(SlabFlags::ACCOUNT);
        }
        let size = (e.bytes_req as usize).max(1);
        let mut first = None;
        // The traced stride tells how the cache was made: a constructor (or
        // SLAB_TYPESAFE_BY_RCU) moves SLUB's free pointer out of the object, adding a word
        // (mm/slub.c calculate_sizes); SLAB_HWCACHE_ALIGN rounds to the cache line.
        let hw = flags.union(SlabFlags::HWCACHE_ALIGN);
        let ctor: Option<fn(*mut u8)> = Some(no_op_ctor);
        for (f, c) in [(flags, None), (hw, None), (flags, ctor), (hw, ctor)] {
            let Ok(h) = self.m.kmem_cache_create(name, size, 0, f, c) else {
                continue;
            };
            let stride = self.m.slab_info(h).map_or(0, |i| i.objsize);
            if stride == e.bytes_alloc as usize {
                if let Some(f) = first {
                    self.m.kmem_cache_destroy(f);
                }
                return Some(h);
            }
            match first {
                None => first = Some(h),
                Some(_) => self.m.kmem_cache_destroy(h),
            }
        }
        if first.is_none() {
            self.stats.cache_create_failures += 1;
        }
        first
    }

    fn cache_alloc(&mut self, e: &Event, trace: &Trace) {
        if e.name == NO_NAME {
            self.count(EventKind::KmemCacheAlloc).skipped += 1;
            return;
        }
        let Some(ci) = self.cache_for(e, trace) else {
            self.count(EventKind::KmemCacheAlloc).failed += 1;
            return;
        };
        let h = self.caches[ci as usize].handle;
        let Some(p) = self.m.kmem_cache_alloc(h, e.gfp) else {
            self.count(EventKind::KmemCacheAlloc).failed += 1;
            return;
        };
        self.count(EventKind::KmemCacheAlloc).replayed += 1;
        let stride = self.m.slab_info(h).map_or(0, |i| i.objsize);
        self.stats.cache_size_compared += 1;
        if stride == e.bytes_alloc as usize {
            self.stats.cache_size_agree += 1;
        }
        if e.addr == 0 {
            self.m.kmem_cache_free(h, p.as_ptr());
            return;
        }
        self.implicit_free(e.addr);
        self.requested += u64::from(e.bytes_req);
        self.objs.insert(
            e.addr,
            Obj {
                p: p.as_ptr() as usize,
                cache: ci,
                req: e.bytes_req,
            },
        );
    }

    fn free(&mut self, e: &Event, trace: &Trace) {
        if e.addr <= kmem::ZERO_SIZE_PTR as u64 {
            // kfree(NULL) / kfree(ZERO_SIZE_PTR): a no-op in Linux too.
            self.count(e.kind).replayed += 1;
            return;
        }
        let Some(o) = self.objs.remove(&e.addr) else {
            self.count(e.kind).unknown += 1;
            return;
        };
        if e.kind == EventKind::KmemCacheFree && e.name != NO_NAME && o.cache != KMALLOC_OBJ {
            let traced = &trace.names[e.name as usize];
            if *traced != self.caches[o.cache as usize].name {
                self.stats.cache_name_mismatches += 1;
            }
        }
        self.free_obj(o);
        self.count(e.kind).replayed += 1;
    }

    fn page_alloc(&mut self, e: &Event, class: PageClass) {
        if class == PageClass::Slab {
            self.count(EventKind::MmPageAlloc).skipped += 1;
            self.stats.slab_page_allocs_in_trace += 1;
            return;
        }
        let Ok(order) = Order::try_new(u32::from(e.order)) else {
            self.count(EventKind::MmPageAlloc).failed += 1;
            return;
        };
        if e.migratetype >= 0 {
            self.stats.migratetype_compared += 1;
            if MigrateType::from_gfp(e.gfp) as i8 == e.migratetype {
                self.stats.migratetype_agree += 1;
            }
        }
        let Some(page) = self.m.alloc_pages(e.gfp, order) else {
            self.count(EventKind::MmPageAlloc).failed += 1;
            return;
        };
        self.count(EventKind::MmPageAlloc).replayed += 1;
        if let Some((old, o)) = self.pages.insert(e.addr, (page, order)) {
            self.m.__free_pages(old, o);
            self.stats.implicit_frees += 1;
        }
    }

    fn page_free(&mut self, e: &Event, class: PageClass) {
        if class == PageClass::Slab {
            self.count(EventKind::MmPageFree).skipped += 1;
            return;
        }
        let Some((page, order)) = self.pages.remove(&e.addr) else {
            self.count(EventKind::MmPageFree).unknown += 1;
            return;
        };
        if order.as_u32() != u32::from(e.order) {
            self.stats.page_order_mismatches += 1;
        }
        self.m.__free_pages(page, order);
        self.count(EventKind::MmPageFree).replayed += 1;
    }

    /// Finishes: fills in the end-of-run figures and the requested /proc files.
    pub fn report(&mut self, trace: &Trace) -> ReplayReport {
        let mut r = self.stats.clone();
        r.lines = trace.lines;
        r.malformed = trace.malformed;
        r.malformed_examples = trace.malformed_examples.clone();
        r.other_events = trace.other_events.clone();
        r.header_cpus = trace.header_cpus;
        r.header_entries = trace.header_entries;
        r.cpus = self.opts.cpus;
        r.arch = self.opts.arch.to_string();
        r.mem = self.opts.mem;
        r.live_objects = self.objs.len();
        r.slab_allocator = self.m.slab_allocator().option().to_string();
        r.live_page_blocks = self.pages.len();
        r.pages_in_use = self.pages_taken();
        r.totalram_pages = self.m.totalram_pages();
        let mut slabs = 0usize;
        let mut slab_pages = 0usize;
        let mut handles = Vec::new();
        self.m.for_each_cache(&mut |h, _| handles.push(h));
        let caches = handles.len();
        for h in handles {
            if let Some(i) = self.m.slab_info(h) {
                slabs += i.num_slabs;
                slab_pages += i.num_slabs * i.pagesperslab as usize;
            }
        }
        r.kmem_caches = caches;
        r.slabs = slabs;
        r.slab_pages = slab_pages;
        for z in self.m.zones() {
            if !z.is_populated() {
                continue;
            }
            let counts = self.m.free_area_counts(z.kind);
            r.zones.push(ZoneFrag::new(z.kind.name(), counts.to_vec()));
        }
        for path in &self.opts.cat {
            let mut s = String::new();
            let text = match self.m.proc_read(path, &mut s) {
                Ok(()) => s,
                Err(e) => format!("kmem: cat: {path}: {e}\n"),
            };
            r.proc_files.push((path.clone(), text));
        }
        r.bugs = self.m.bug_count();
        r.warnings = self.m.warn_count();
        r.console = self.m.platform().hosted().take_captured();
        r
    }
}

/// Boots a machine, replays `trace` and returns the report.
///
/// # Errors
/// A message saying why the machine could not be set up.
pub fn run(
    trace: &Trace,
    opts: &Options,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ReplayReport, String> {
    let lazy;
    let opts = if opts.prefault && trace.events.is_empty() {
        // Nothing to time: no reason to take host memory for all of RAM.
        lazy = Options {
            prefault: false,
            ..opts.clone()
        };
        &lazy
    } else {
        opts
    };
    let mut r = Replayer::boot(opts)?;
    r.replay(trace, progress);
    Ok(r.report(trace))
}

/// Checks at compile time that the kind table and the report agree.
const _: () = assert!(NR_EVENT_KINDS == 6);
