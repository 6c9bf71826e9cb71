//! Memory hotplug (mm/memory_hotplug.c, mm/sparse.c `sparse_add_section`, drivers/base/memory.c):
//! adding a physical range as new sections, onlining a memory block into ZONE_NORMAL or
//! ZONE_MOVABLE, offlining it, removing it.
//!
//! A memory block is one 128 MiB section (`memory_block_size_bytes()` on a QEMU machine;
//! arch/x86/mm/init_64.c `probe_memory_block_size` picks `MIN_MEMORY_BLOCK_SIZE` unless the end
//! of boot memory is aligned to more), named `memoryN` after its section number.
//!
//! - [`VmLayer::add_memory`]: the platform's physical memory grows to cover the range; each
//!   section gets 2 MiB of memmap from the buddy allocator (`vmemmap_alloc_block`: an order-9
//!   block), mapped at its place in the vmemmap (kernel page table PMD and the platform's
//!   window), a usage block (`kzalloc`) and `SECTION_MARKED_PRESENT | SECTION_HAS_MEM_MAP`.
//!   The block is offline: its pages are reserved, `pfn_to_online_page` gives `None` —
//!   unless `auto_online_blocks` (sysfs, or `memhp_default_state=` at boot) says how to
//!   online it, which `add_memory` then does once `mem_hotplug_lock` is dropped.
//! - [`VmLayer::online_memory_block`]: `online_pages` — the zone's span grows to cover the
//!   block (`move_pfn_range_to_zone`), the pages go to the buddy allocator in `MAX_ORDER`
//!   blocks, managed/present/totalram grow, the section is marked online, the watermarks are
//!   recomputed (`init_per_zone_wmark_min`), and a zone that was empty prints `Built 1
//!   zonelists…` (`build_all_zonelists`).
//! - [`TaskLayer::offline_memory_block`]: `offline_pages` — the block's pageblocks isolated,
//!   the page lists drained, in-use movable pages migrated out (`migrate_range`), then every
//!   page must sit in a free block inside the range (else `-EBUSY` and Linux's `memory
//!   offlining [mem …] failed due to …` line) and the blocks leave the free lists, the
//!   counters go back. [`VmLayer::offline_memory_block`] is the same without migration.
//! - [`VmLayer::remove_memory`]: `try_remove_memory` — offline, hot-added sections only (a
//!   boot section's memmap came from memblock); the memmap is unmapped and freed.
//! - `MHP_MEMMAP_ON_MEMORY` ([`VmLayer::add_memory_flags`], Linux's
//!   `memory_hotplug.memmap_on_memory`): the section's memmap is its own first pageblock (2 MiB
//!   of `struct page`s for 128 MiB, `mhp_supports_memmap_on_memory`'s pageblock alignment
//!   holds), so adding needs no memory from the page allocator — the way to grow a machine that
//!   has run out — and a section never pins another one with its memmap. Those 512 "vmemmap
//!   pages" stay reserved and MIGRATE_UNMOVABLE (`mhp_init_memmap_on_memory`); they count in
//!   the zone's present pages but not in managed or totalram (`adjust_present_page_count`),
//!   and offlining checks only the rest of the block.
//!
//! Nodes: `add_memory(nid, …)` takes any online node (`__try_online_node`; kmem creates no
//! node at run time, an offline one is refused with `EINVAL`). The platform backs the range
//! with that node's memory (`Platform::grow_phys_end_node`), the hot-added memmap carries
//! the node (`set_page_links`), so a block's node is its pages' ([`MemoryBlock::nid`]) and
//! online, offline and `zone_for_pfn_range` act on that node's zones: its ZONE_NORMAL or
//! ZONE_MOVABLE grows, `nodeN/meminfo`'s MemTotal with it, and the zonelist walk finds it
//! (`alloc_pages_node(nid, …)`). A growable platform gives every node's Normal and Movable
//! zones their per-CPU lists at boot.
//!
//! ZONE_MOVABLE also exists from boot with `kernelcore=`/`movablecore=`/`movable_node`
//! (mm_init/movable.rs); with `movable_node`, `online` puts a block no zone claims into
//! ZONE_MOVABLE.
//!
//! Not modelled yet: shrinking a zone's
//! span on offline (`shrink_zone_span`), recomputing the per-CPU list sizes
//! (`zone_pcp_update`), /proc/iomem resources for hot-added RAM, the `memoryN/nodeN` and
//! `nodeN/memoryM` sysfs links, onlining a memoryless or new node.
//!
//! # Locking
//! Every operation runs under `mem_hotplug_lock` (outermost); under it the zone locks, the
//! page-table lock and the slab and page allocators' own locks, as in Linux.

use core::sync::atomic::Ordering;

use crate::addr::{Order, Pfn, PhysAddr, MAX_PAGE_ORDER, PAGE_SHIFT};
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::mm::mm_types::pg;
use crate::mmzone::{MigrateType, ZoneType, PAGEBLOCK_NR_PAGES};
use crate::platform::{LogLevel, Platform};
use crate::sparse::{
    pfn_to_section_nr, section_nr_to_pfn, PAGEBLOCKS_PER_SECTION, PAGES_PER_SECTION,
    SECTION_HAS_MEM_MAP, SECTION_IS_EARLY, SECTION_IS_ONLINE, SECTION_MARKED_PRESENT,
    SECTION_MEMMAP_BYTES, SECTION_MEMMAP_ON_MEMORY, SECTION_USAGE_BYTES,
};
use crate::task::TaskLayer;
use crate::vmalloc::VmLayer;

/// `memory_block_size_bytes()`: one section.
pub const MEMORY_BLOCK_SIZE: u64 = PAGES_PER_SECTION << PAGE_SHIFT;

/// `mhp_t`: how [`VmLayer::add_memory_flags`] adds memory (include/linux/memory_hotplug.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MhpFlags(u32);

impl MhpFlags {
    /// `MHP_NONE`.
    pub const NONE: Self = Self(0);
    /// `MHP_MEMMAP_ON_MEMORY`: the memmap lives at the start of the added memory.
    pub const MEMMAP_ON_MEMORY: Self = Self(1 << 1);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// Pages of a section's own memmap with `MHP_MEMMAP_ON_MEMORY`: one pageblock.
pub const NR_VMEMMAP_PAGES: u64 = (SECTION_MEMMAP_BYTES >> PAGE_SHIFT) as u64;

/// How to online a block (`enum mmop`: the words written to `memoryN/state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnlineType {
    /// `online`: the default zone for the range.
    Online,
    /// `online_kernel`: ZONE_NORMAL.
    OnlineKernel,
    /// `online_movable`: ZONE_MOVABLE.
    OnlineMovable,
}

impl OnlineType {
    /// The word for it (drivers/base/memory.c `online_type_to_str`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::OnlineKernel => "online_kernel",
            Self::OnlineMovable => "online_movable",
        }
    }

    /// Parses `online`, `online_kernel`, `online_movable` (drivers/base/memory.c
    /// `mhp_online_type_from_str`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "online" => Some(Self::Online),
            "online_kernel" => Some(Self::OnlineKernel),
            "online_movable" => Some(Self::OnlineMovable),
            _ => None,
        }
    }
}

/// What `memoryN` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBlock {
    /// Block (= section) number.
    pub nr: usize,
    /// The node its memory belongs to (`memoryN/nodeN`).
    pub nid: usize,
    /// `state`: online or offline.
    pub online: bool,
    /// Added at boot (`SECTION_IS_EARLY`).
    pub early: bool,
    /// The zone of an online block whose pages are all in one zone.
    pub zone: Option<ZoneType>,
    /// Pages at its start holding its own memmap (`MHP_MEMMAP_ON_MEMORY`), else 0.
    pub nr_vmemmap_pages: u64,
}

impl<P: Platform> VmLayer<P> {
    /// How `add_memory` onlines the blocks it adds (`mhp_get_default_online_type`): `None`
    /// leaves them offline (the default, `CONFIG_MHP_DEFAULT_ONLINE_TYPE_OFFLINE`).
    pub fn auto_online_blocks(&self) -> Option<OnlineType> {
        match self.memhp_default_online.load(Ordering::Relaxed) {
            1 => Some(OnlineType::Online),
            2 => Some(OnlineType::OnlineKernel),
            3 => Some(OnlineType::OnlineMovable),
            _ => None,
        }
    }

    /// Sets how `add_memory` onlines new blocks (`mhp_set_default_online_type`; writing
    /// /sys/devices/system/memory/auto_online_blocks).
    pub fn set_auto_online_blocks(&self, t: Option<OnlineType>) {
        let v = match t {
            None => 0,
            Some(OnlineType::Online) => 1,
            Some(OnlineType::OnlineKernel) => 2,
            Some(OnlineType::OnlineMovable) => 3,
        };
        self.memhp_default_online.store(v, Ordering::Relaxed);
    }

    /// `memhp_default_state=` on the command line (mm/memory_hotplug.c
    /// `setup_memhp_default_state`): `offline`, `online`, `online_kernel` or `online_movable`
    /// sets [`Self::auto_online_blocks`]; any other word is ignored.
    pub fn memhp_default_state_from_cmdline(&self, cmdline: &str) {
        for v in cmdline
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("memhp_default_state="))
        {
            match v {
                "offline" => self.set_auto_online_blocks(None),
                _ => {
                    if let Some(t) = OnlineType::parse(v) {
                        self.set_auto_online_blocks(Some(t));
                    }
                }
            }
        }
    }

    /// The memory block `nr`, if its section is present.
    pub fn memory_block(&self, nr: usize) -> Option<MemoryBlock> {
        let flags = self.sections().section(nr)?.flags();
        if flags & SECTION_MARKED_PRESENT == 0 || flags & SECTION_HAS_MEM_MAP == 0 {
            return None;
        }
        let online = flags & SECTION_IS_ONLINE != 0;
        let early = flags & SECTION_IS_EARLY != 0;
        let nid = self.block_nid(nr);
        let zone = match (online, early) {
            (false, _) => None,
            (true, true) => self.early_block_zone(nr, nid),
            (true, false) => self.block_zone(nr),
        };
        Some(MemoryBlock {
            nr,
            nid,
            online,
            early,
            zone,
            nr_vmemmap_pages: if flags & SECTION_MEMMAP_ON_MEMORY != 0 {
                NR_VMEMMAP_PAGES
            } else {
                0
            },
        })
    }

    /// Every present memory block, lowest first.
    pub fn memory_blocks(&self) -> impl Iterator<Item = MemoryBlock> + '_ {
        let end = pfn_to_section_nr(Pfn::new(
            self.pfn_limit()
                .as_u64()
                .next_multiple_of(PAGES_PER_SECTION),
        ));
        (0..end).filter_map(|nr| self.memory_block(nr))
    }

    /// The node of present block `nr`: its first page's (every page of a block is on one
    /// node: `add_memory` gives a range one node, boot node ranges are section-aligned).
    fn block_nid(&self, nr: usize) -> usize {
        self.pfn_to_page(section_nr_to_pfn(nr))
            .map_or(0, |p| p.nid())
    }

    /// The zone of boot block `nr` on node `nid` (`memory_block->zone` of early memory,
    /// drivers/base/memory.c `early_node_zone_for_memory_block`): the one populated zone of
    /// the node whose span meets the block, `None` when several do. From the zones' spans,
    /// not the memmap: a walk of the block's `struct page`s costs a read of all 2 MiB of them
    /// each time a block is looked at (the hosted heap's growth and shrink look at every
    /// block), and reads the `struct page`s of a section's hole, which are never needed.
    fn early_block_zone(&self, nr: usize, nid: usize) -> Option<ZoneType> {
        let s = section_nr_to_pfn(nr).as_u64();
        let e = s + PAGES_PER_SECTION;
        let mut meets = self
            .arch
            .zones()
            .iter()
            .copied()
            .filter(|&z| self.zone_intersects(nid, z, s, e));
        match (meets.next(), meets.next()) {
            (Some(z), None) => Some(z),
            _ => None,
        }
    }

    /// The zone of online hot-added block `nr` (`valid_zones`; Linux records it when the
    /// block is onlined, `memory_block->zone`): `online_memory_block` moves the whole block,
    /// its memmap pages included, to one zone, so its first page's zone is the block's.
    fn block_zone(&self, nr: usize) -> Option<ZoneType> {
        Some(self.pfn_to_page(section_nr_to_pfn(nr))?.zone_type())
    }

    /// Whether node `nid`'s `zone`'s span meets `[s, e)` while it has memory
    /// (`zone_intersects`).
    fn zone_intersects(&self, nid: usize, zone: ZoneType, s: u64, e: u64) -> bool {
        let z = self.node_zone(nid, zone);
        if !z.is_populated() {
            return false;
        }
        let g = z.span();
        g.start_pfn.as_u64() < e && g.end_pfn().as_u64() > s
    }

    /// `zone_for_pfn_range` (mm/memory_hotplug.c): the zone block `nr` goes to for `t` —
    /// `online_kernel` ZONE_NORMAL, `online_movable` ZONE_MOVABLE, `online` the zone the range
    /// already meets if it meets exactly one of them, else ZONE_MOVABLE with `movable_node`
    /// and ZONE_NORMAL without (`default_zone_for_pfn`). `None` on a FLATMEM machine.
    pub fn zone_for_block(&self, nr: usize, t: OnlineType) -> Option<ZoneType> {
        self.arch().section_size_bits()?;
        let s = section_nr_to_pfn(nr).as_u64();
        let e = s + PAGES_PER_SECTION;
        let nid = self.block_nid(nr);
        Some(match t {
            OnlineType::OnlineKernel => ZoneType::Normal,
            OnlineType::OnlineMovable => ZoneType::Movable,
            OnlineType::Online => {
                let in_kernel = self.zone_intersects(nid, ZoneType::Normal, s, e);
                let in_movable = self.zone_intersects(nid, ZoneType::Movable, s, e);
                if in_kernel != in_movable {
                    if in_movable {
                        ZoneType::Movable
                    } else {
                        ZoneType::Normal
                    }
                } else if self.movable_node {
                    ZoneType::Movable
                } else {
                    ZoneType::Normal
                }
            }
        })
    }

    /// `add_memory(nid, start, size, MHP_NONE)`: see the module documentation.
    ///
    /// # Errors
    /// As [`VmLayer::add_memory_flags`].
    pub fn add_memory(&self, nid: i32, start: u64, size: u64) -> Result<(), Errno> {
        self.add_memory_flags(nid, start, size, MhpFlags::NONE)
    }

    /// `add_memory(nid, start, size, mhp_flags)`: see the module documentation. With
    /// [`MhpFlags::MEMMAP_ON_MEMORY`] each section's memmap is its own first pageblock and
    /// its usage block is allocated with `__GFP_HIGH` (the caller is typically out of
    /// memory: that is why it adds some). With [`Self::auto_online_blocks`] set, the new
    /// blocks are then onlined that way, after `mem_hotplug_lock` is dropped
    /// (`add_memory_resource`'s `walk_memory_blocks(…, online_memory_block)`); a block that
    /// fails to online stays offline.
    ///
    /// # Errors
    /// `EINVAL` for a node that is not online (`Cannot online node N due to NULL pgdat` for
    /// a node number below `MAX_NUMNODES`), a range not aligned to the block size, or a machine
    /// without SPARSEMEM; `E2BIG` when the platform cannot back the range (Linux's
    /// `exceeds maximum addressable range` warning is printed); `EEXIST` when a
    /// section of it is present; `ENOMEM` when its memmap cannot be allocated (what was
    /// added is undone).
    pub fn add_memory_flags(
        &self,
        nid: i32,
        start: u64,
        size: u64,
        flags: MhpFlags,
    ) -> Result<(), Errno> {
        if size == 0
            || !start.is_multiple_of(MEMORY_BLOCK_SIZE)
            || !size.is_multiple_of(MEMORY_BLOCK_SIZE)
            || !self.vmemmap_mapped
        {
            return Err(Errno::EINVAL);
        }
        let end = start.checked_add(size).ok_or(Errno::EINVAL)?;
        let nid = self.hotplug_node(nid)?;
        let max = self.platform().max_phys_end().as_u64();
        if end > max {
            // mm/memory_hotplug.c `mhp_range_allowed`.
            self.printk(
                LogLevel::Warning,
                format_args!(
                    "Hotplug memory [{start:#x}-{:#x}] exceeds maximum addressable range [{:#x}-{:#x}]",
                    end - 1,
                    0,
                    max.saturating_sub(1)
                ),
            );
            return Err(Errno::E2BIG);
        }
        // Lock order: mem_hotplug_lock (outermost); docs/LOCKING.md.
        let _g = self.mem_hotplug.lock();
        let (first, last) = (
            pfn_to_section_nr(PhysAddr::new(start).pfn()),
            pfn_to_section_nr(PhysAddr::new(end).pfn()),
        );
        if (first..last).any(|nr| self.memory_block(nr).is_some()) {
            // kernel/resource.c via register_memory_resource.
            self.printk(
                LogLevel::Err,
                format_args!(
                    "System RAM resource [mem {start:#010x}-{:#010x}] cannot be added",
                    end - 1
                ),
            );
            return Err(Errno::EEXIST);
        }
        if !self.platform().grow_phys_end_node(PhysAddr::new(end), nid) {
            return Err(Errno::ENOMEM);
        }
        // arch_add_memory: the range joins the direct map (x86_64 has no HighMem).
        self.extend_direct_map(PhysAddr::new(end));
        for nr in first..last {
            if let Err(e) = self.sparse_add_section(nr, nid, flags) {
                for done in first..nr {
                    self.sparse_remove_section(done);
                }
                return Err(e);
            }
        }
        self.raise_pfn_limit(PhysAddr::new(end).pfn());
        drop(_g);
        if let Some(t) = self.auto_online_blocks() {
            for nr in first..last {
                // Linux ignores online_memory_block's result here too.
                let _ = self.online_memory_block(nr, t);
            }
        }
        Ok(())
    }

    /// The node `add_memory(nid, …)` adds to (`__try_online_node`): an online node. kmem
    /// creates no node at run time (Linux allocates the pgdat of a node that has none,
    /// `hotadd_init_pgdat`): an offline node gets `Cannot online node N due to NULL pgdat`
    /// (the message of Linux's `__try_online_node` before 6.x made it infallible) and
    /// `EINVAL`, as does a node number that is no node's (`NUMA_NO_NODE`, past
    /// `MAX_NUMNODES`).
    fn hotplug_node(&self, nid: i32) -> Result<usize, Errno> {
        let n = usize::try_from(nid).map_err(|_| Errno::EINVAL)?;
        if self.node_online(n) {
            return Ok(n);
        }
        if n < crate::numa::MAX_NUMA_NODES {
            self.printk(
                LogLevel::Err,
                format_args!("Cannot online node {n} due to NULL pgdat"),
            );
        }
        Err(Errno::EINVAL)
    }

    /// `sparse_add_section`: root page, usage block, memmap for section `nr` of node `nid`
    /// (from the page allocator, or the section's own first pageblock with
    /// `MHP_MEMMAP_ON_MEMORY`).
    fn sparse_add_section(&self, nr: usize, nid: usize, flags: MhpFlags) -> Result<(), Errno> {
        let on_memory = flags.contains(MhpFlags::MEMMAP_ON_MEMORY);
        let gfp = if on_memory {
            GfpFlags::GFP_KERNEL | GfpFlags::__GFP_HIGH
        } else {
            GfpFlags::GFP_KERNEL
        };
        let t = self.sections();
        if t.needs_root(nr) {
            let page = self
                .alloc_pages(gfp | GfpFlags::__GFP_ZERO, Order::ZERO)
                .ok_or(Errno::ENOMEM)?;
            let root = self.page_address(page).ok_or(Errno::ENOMEM)?;
            // SAFETY: a zeroed page (SECTIONS_PER_ROOT zeroed sections) from the buddy
            // allocator, never freed: a root lives as long as the machine.
            if !unsafe { t.install_root(nr, root.as_usize() as *mut crate::sparse::MemSection) } {
                self.__free_pages(page, Order::ZERO);
            }
        }
        let sec = t.section(nr).ok_or(Errno::EINVAL)?;
        let usage = self
            .kmalloc(SECTION_USAGE_BYTES, gfp)
            .ok_or(Errno::ENOMEM)?;
        let order = Order::new((SECTION_MEMMAP_BYTES >> PAGE_SHIFT).trailing_zeros());
        let mm = if on_memory {
            None
        } else {
            let Some(mm) = self.alloc_pages(gfp, order) else {
                self.kfree(usage.as_ptr());
                return Err(Errno::ENOMEM);
            };
            Some(mm)
        };
        // With MHP_MEMMAP_ON_MEMORY the memmap is the section's first 2 MiB (the platform
        // backs them: `grow_phys_end` covered the range).
        let pa = mm.map_or(section_nr_to_pfn(nr).phys(), |mm| {
            self.page_to_pfn(mm).phys()
        });
        if !self.map_vmemmap_section(nr, pa) {
            if let Some(mm) = mm {
                self.__free_pages(mm, order);
            }
            self.kfree(usage.as_ptr());
            return Err(Errno::ENOMEM);
        }
        // SAFETY: `usage` has SECTION_USAGE_BYTES bytes; every pageblock starts
        // MIGRATE_MOVABLE (memmap_init_range).
        unsafe {
            core::ptr::write_bytes(
                usage.as_ptr(),
                MigrateType::Movable as u8,
                SECTION_USAGE_BYTES,
            )
        };
        sec.set_usage(usage.as_ptr());
        // Only the mem_section table points at it, in memory kmemleak does not scan (Linux
        // scans the memblock-allocated section roots): not a leak.
        self.kmemleak_not_leak(usage.as_ptr());
        if on_memory {
            sec.set(SECTION_MEMMAP_ON_MEMORY);
        }
        sec.set(SECTION_MARKED_PRESENT | SECTION_HAS_MEM_MAP);
        let s = section_nr_to_pfn(nr);
        let e = Pfn::new(s.as_u64() + PAGES_PER_SECTION);
        self.raise_pfn_limit(e);
        // SAFETY: the section's memmap was just mapped and its pages are offline: nobody
        // uses them (mem_hotplug_lock held).
        unsafe { self.init_memmap_range(s, e, ZoneType::Normal, nid) };
        // The slab free's fast `struct page` lookup, for a section the direct map covers
        // (`add_memory` extended it first on a machine without HighMem).
        if e.phys().as_u64() <= self.direct_map_end() {
            self.set_memmap_hot(nr, true);
        }
        Ok(())
    }

    /// `sparse_remove_section` of an offline hot-added section.
    fn sparse_remove_section(&self, nr: usize) {
        let Some(sec) = self.sections().section(nr) else {
            return;
        };
        let on_memory = sec.flags() & SECTION_MEMMAP_ON_MEMORY != 0;
        // Before the memmap goes: fast lookups see no `struct page` here from now on.
        self.set_memmap_hot(nr, false);
        sec.clear(
            SECTION_MARKED_PRESENT
                | SECTION_HAS_MEM_MAP
                | SECTION_IS_ONLINE
                | SECTION_MEMMAP_ON_MEMORY,
        );
        let usage = sec.usage();
        sec.set_usage(core::ptr::null_mut());
        // A memmap on the section's own memory goes with it.
        if let Some(pa) = self.unmap_vmemmap_section(nr).filter(|_| !on_memory) {
            if let Some(p) = self.pfn_to_page(pa.pfn()) {
                let order = Order::new((SECTION_MEMMAP_BYTES >> PAGE_SHIFT).trailing_zeros());
                self.__free_pages(p, order);
            }
        }
        if !usage.is_null() {
            self.kfree(usage);
        }
    }

    /// `vm_total_pages` (`nr_free_zone_pages(gfp_zone(GFP_HIGHUSER_MOVABLE))`): managed pages
    /// above the high watermark, over every zone.
    fn vm_total_pages(&self) -> usize {
        self.zones()
            .map(|z| {
                z.managed_pages()
                    .saturating_sub(z.wmark(crate::mmzone::WMARK_HIGH))
            })
            .sum()
    }

    /// The `Built N zonelists` line `build_all_zonelists` prints when a zone gains or loses
    /// all its memory.
    fn print_zonelists(&self) {
        self.printk(
            LogLevel::Info,
            format_args!(
                "Built {} zonelists, mobility grouping on.  Total pages: {}",
                self.nr_online_nodes(),
                self.vm_total_pages()
            ),
        );
    }

    /// `online_pages` of memory block `nr` (`echo online… > memoryN/state`).
    ///
    /// # Errors
    /// `EINVAL` for an absent block or a FLATMEM machine; an online block is left as it is
    /// (success).
    pub fn online_memory_block(&self, nr: usize, t: OnlineType) -> Result<(), Errno> {
        // Lock order: mem_hotplug_lock (outermost); docs/LOCKING.md.
        let _g = self.mem_hotplug.lock();
        let b = self.memory_block(nr).ok_or(Errno::EINVAL)?;
        if b.online {
            return Ok(());
        }
        let kind = self.zone_for_block(nr, t).ok_or(Errno::EINVAL)?;
        let zone = self.node_zone(b.nid, kind);
        let was_populated = zone.is_populated();
        let (s, e) = (
            section_nr_to_pfn(nr).as_u64(),
            section_nr_to_pfn(nr + 1).as_u64(),
        );
        let v = b.nr_vmemmap_pages;
        // move_pfn_range_to_zone: the pages join the zone and its span grows over them.
        // SAFETY: the block is offline (checked under mem_hotplug_lock): nobody uses its pages.
        unsafe { self.init_memmap_range(Pfn::new(s), Pfn::new(e), kind, b.nid) };
        let (hs, he) = (
            zone.hot_start.load(Ordering::Acquire),
            zone.hot_end.load(Ordering::Acquire),
        );
        let (ns, ne) = if he > hs {
            (hs.min(s), he.max(e))
        } else {
            (s, e)
        };
        zone.hot_start.store(ns, Ordering::Release);
        zone.hot_end.store(ne, Ordering::Release);
        zone.hot_present
            .fetch_add(PAGES_PER_SECTION as i64, Ordering::Relaxed);
        // memmap_init_range: every pageblock starts MIGRATE_MOVABLE (an offlined block's
        // stayed isolated).
        for pb in (s..e).step_by(PAGEBLOCK_NR_PAGES) {
            zone.set_pageblock_migratetype(Pfn::new(pb), MigrateType::Movable);
        }
        // mhp_init_memmap_on_memory: the memmap's own pageblock is unmovable and stays
        // reserved.
        for pb in (s..s + v).step_by(PAGEBLOCK_NR_PAGES) {
            zone.set_pageblock_migratetype(Pfn::new(pb), MigrateType::Unmovable);
        }
        // online_pages_range: the largest aligned blocks (MAX_ORDER past a memmap pageblock)
        // to the buddy allocator (`generic_online_page`).
        let mut pfn = s + v;
        while pfn < e {
            let mut o = MAX_PAGE_ORDER;
            while o > 0 && (pfn & ((1u64 << o) - 1) != 0 || pfn + (1u64 << o) > e) {
                o -= 1;
            }
            let order = Order::new(o);
            for i in 0..order.pages() as u64 {
                let p = self.page(Pfn::new(pfn + i));
                p.set_flags(p.flags() & !pg::RESERVED);
                p.set_refcount(0);
            }
            // Lock order: &zone->lock (rank 5) under mem_hotplug_lock; docs/LOCKING.md.
            let mut free = zone.free.lock();
            self.free_one_page_locked(zone, &mut free, Pfn::new(pfn), order);
            drop(free);
            zone.stats
                .nr_free_pages
                .fetch_add(order.pages() as isize, Ordering::Relaxed);
            zone.managed.fetch_add(order.pages(), Ordering::Relaxed);
            pfn += order.pages() as u64;
        }
        self.totalram
            .fetch_add((PAGES_PER_SECTION - v) as usize, Ordering::Relaxed);
        if let Some(sec) = self.sections().section(nr) {
            sec.set(SECTION_IS_ONLINE);
        }
        self.setup_per_zone_wmarks_and_reserves();
        if !was_populated {
            self.print_zonelists();
        }
        Ok(())
    }

    /// Whether every online page of memory block `nr` sits in a free block of the buddy
    /// allocator inside the block (pages on the CPUs' lists do not count: drain them first,
    /// `drain_all_pages`), so that offlining it needs no migration — a cheap test before
    /// [`VmLayer::offline_memory_block`], which also logs its failures (a growing allocator
    /// asks it of its empty blocks). `false` for an absent or offline block.
    pub fn memory_block_is_free(&self, nr: usize) -> bool {
        let Some(b) = self.memory_block(nr) else {
            return false;
        };
        let Some(kind) = b.zone.filter(|_| b.online) else {
            return false;
        };
        let zone = self.node_zone(b.nid, kind);
        let (s, e) = (
            section_nr_to_pfn(nr).as_u64() + b.nr_vmemmap_pages,
            section_nr_to_pfn(nr + 1).as_u64(),
        );
        // Lock order: &zone->lock (rank 5), taken alone; docs/LOCKING.md.
        let _free = zone.free.lock();
        let mut p = s;
        while p < e {
            match self.free_block_containing(zone, Pfn::new(p)) {
                Some((head, o)) if head.as_u64() >= s && head.as_u64() + o.pages() as u64 <= e => {
                    p = head.as_u64() + o.pages() as u64;
                }
                _ => return false,
            }
        }
        true
    }

    /// `offline_pages` of memory block `nr` without migration: only a block whose pages are
    /// all free goes offline. [`TaskLayer::offline_memory_block`] (what a `Machine` and the
    /// sysfs files call) migrates in-use movable pages first.
    ///
    /// # Errors
    /// As [`TaskLayer::offline_memory_block`].
    pub fn offline_memory_block(&self, nr: usize) -> Result<(), Errno> {
        // Lock order: mem_hotplug_lock (outermost); docs/LOCKING.md.
        let _g = self.mem_hotplug.lock();
        self.offline_block_locked(nr, &mut |_, _| Ok(()))
    }

    /// `offline_pages` under `mem_hotplug_lock`: the block's pageblocks are isolated, the page
    /// lists drained, `migrate(start, end)` moves what it can out, and if every page of the
    /// block is then free the free blocks leave the free lists and the counters go back;
    /// otherwise the pageblocks get their types back and the call fails.
    pub(crate) fn offline_block_locked(
        &self,
        nr: usize,
        migrate: &mut dyn FnMut(Pfn, Pfn) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let b = self.memory_block(nr).ok_or(Errno::EINVAL)?;
        if !b.online {
            return Ok(());
        }
        let (s, e) = (
            section_nr_to_pfn(nr).as_u64(),
            section_nr_to_pfn(nr + 1).as_u64(),
        );
        let failed = |reason: &str, err: Errno| {
            self.printk(
                LogLevel::Debug,
                format_args!(
                    "memory offlining [mem {:#010x}-{:#010x}] failed due to {reason}",
                    s << PAGE_SHIFT,
                    (e << PAGE_SHIFT) - 1
                ),
            );
            Err(err)
        };
        let Some(kind) = b.zone else {
            return failed("multizone range", Errno::EINVAL);
        };
        // Only the pages past the block's own memmap were online.
        let v = b.nr_vmemmap_pages;
        let zone = self.node_zone(b.nid, kind);
        // start_isolate_page_range: nothing is allocated from the block any more.
        let mut saved = [MigrateType::Movable; PAGEBLOCKS_PER_SECTION];
        // Lock order: &zone->lock (rank 5) under mem_hotplug_lock; docs/LOCKING.md.
        self.isolate_pageblocks(zone, &mut zone.free.lock(), (s, e), &mut saved);
        // zone_pcp_disable: pages parked on the CPUs' lists go back to the buddy allocator.
        self.drain_all_pages();
        let migrated = migrate(Pfn::new(s), Pfn::new(e));
        self.drain_all_pages();
        // Lock order: &zone->lock (rank 5) under mem_hotplug_lock; docs/LOCKING.md.
        let mut free = zone.free.lock();
        let mut p = s + v;
        let mut all_free = migrated.is_ok();
        while all_free && p < e {
            match self.free_block_containing(zone, Pfn::new(p)) {
                Some((head, o))
                    if head.as_u64() >= s + v && head.as_u64() + o.pages() as u64 <= e =>
                {
                    p = head.as_u64() + o.pages() as u64;
                }
                _ => all_free = false,
            }
        }
        if !all_free {
            self.unisolate_pageblocks(zone, &mut free, (s, e), &saved);
            drop(free);
            return failed("unmovable page", Errno::EBUSY);
        }
        // __offline_isolated_pages: every free block leaves its list.
        let mut p = s + v;
        while p < e {
            let (head, o) = self
                .free_block_containing(zone, Pfn::new(p))
                .expect("checked above under the same lock");
            let mt = zone.pageblock_migratetype(head);
            self.del_from_free_list(&mut free, self.page(head), o, mt);
            p = head.as_u64() + o.pages() as u64;
        }
        drop(free);
        self.offline_accounting(nr, b.nid, kind, v as usize);
        Ok(())
    }

    /// The counters and flags of a block whose pages (but its first `v`, its own memmap)
    /// just left the buddy allocator.
    fn offline_accounting(&self, nr: usize, nid: usize, kind: ZoneType, v: usize) {
        let zone = self.node_zone(nid, kind);
        let (s, e) = (section_nr_to_pfn(nr), section_nr_to_pfn(nr + 1));
        let n = PAGES_PER_SECTION as usize;
        zone.stats
            .nr_free_pages
            .fetch_sub((n - v) as isize, Ordering::Relaxed);
        zone.managed.fetch_sub(n - v, Ordering::Relaxed);
        zone.hot_present.fetch_sub(n as i64, Ordering::Relaxed);
        self.totalram.fetch_sub(n - v, Ordering::Relaxed);
        // SAFETY: the block's pages were all free and have left the free lists under the
        // zone lock; nobody else holds them (mem_hotplug_lock held).
        unsafe { self.init_memmap_range(s, e, kind, nid) };
        if let Some(sec) = self.sections().section(nr) {
            sec.clear(SECTION_IS_ONLINE);
        }
        if !zone.is_populated() {
            zone.hot_start.store(0, Ordering::Release);
            zone.hot_end.store(0, Ordering::Release);
        }
        self.setup_per_zone_wmarks_and_reserves();
        if !zone.is_populated() {
            self.print_zonelists();
        }
    }

    /// `remove_memory(start, size)`: removes offline hot-added blocks.
    ///
    /// # Errors
    /// `EINVAL` for a misaligned range, an absent block or a boot block; `EBUSY` when a block
    /// is online (Linux's `memory [...] is onlined` warning).
    pub fn remove_memory(&self, start: u64, size: u64) -> Result<(), Errno> {
        if size == 0
            || !start.is_multiple_of(MEMORY_BLOCK_SIZE)
            || !size.is_multiple_of(MEMORY_BLOCK_SIZE)
        {
            return Err(Errno::EINVAL);
        }
        let end = start.checked_add(size).ok_or(Errno::EINVAL)?;
        // Lock order: mem_hotplug_lock (outermost); docs/LOCKING.md.
        let _g = self.mem_hotplug.lock();
        let (first, last) = (
            pfn_to_section_nr(PhysAddr::new(start).pfn()),
            pfn_to_section_nr(PhysAddr::new(end).pfn()),
        );
        for nr in first..last {
            let b = self.memory_block(nr).ok_or(Errno::EINVAL)?;
            if b.online {
                // mm/memory_hotplug.c check_memblock_offlined_cb.
                let s = section_nr_to_pfn(nr).phys().as_u64();
                self.printk(
                    LogLevel::Warning,
                    format_args!(
                        "removing memory fails, because memory [{s:#010x}-{:#010x}] is onlined",
                        s + MEMORY_BLOCK_SIZE - 1
                    ),
                );
                return Err(Errno::EBUSY);
            }
            if b.early {
                return Err(Errno::EINVAL);
            }
        }
        for nr in first..last {
            self.sparse_remove_section(nr);
        }
        Ok(())
    }
}

impl<P: Platform> TaskLayer<P> {
    /// `offline_pages` of memory block `nr` (`echo offline > memoryN/state`): the block's
    /// pageblocks are isolated, its in-use movable pages migrated elsewhere
    /// (`do_migrate_range`: anonymous, shmem and swap-cache pages, movable-ops pages; the
    /// data moves, the mappings follow), and once every page is free the block leaves the
    /// buddy allocator: managed, present and totalram pages go down, the section is
    /// offline, the watermarks are recomputed.
    ///
    /// # Errors
    /// `EINVAL` for an absent block or one whose pages span several zones; `EBUSY` when a
    /// page stays in use (unmovable, pinned, or no target memory), with Linux's `memory
    /// offlining [mem …] failed due to …` line at debug level (`pr_debug`); the pageblocks
    /// get their types back. An offline block is left as it is (success).
    pub fn offline_memory_block(&self, nr: usize) -> Result<(), Errno> {
        let vm = &self.mem.km.vm;
        // Lock order: mem_hotplug_lock (outermost), tasklist_lock under it in
        // migrate_range; docs/LOCKING.md.
        let _g = vm.mem_hotplug.lock();
        vm.offline_block_locked(nr, &mut |s, e| self.migrate_range(s, e))
    }
}
