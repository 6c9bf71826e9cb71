//! Looking at the vmalloc space: `/proc/vmallocinfo` (`vmalloc_info_show`), its statistics
//! and consistency check, the kernel virtual layout, and `translate` (a page walk with the TLB
//! model's answer).

use core::fmt::{self, Write};
use core::panic::Location;
use core::sync::atomic::Ordering;

use kds::rbtree::{rb_first, rb_next};

use crate::addr::PhysAddr;
use crate::pgtable::Walk;
use crate::platform::Platform;

use super::area::{check_max, find_containing};
use super::{
    va_size, VmLayer, VmallocStats, VmapArea, VM_ALLOC, VM_DMA_COHERENT, VM_IOREMAP, VM_MAP,
    VM_MAP_RAM_AREA, VM_SPARSE, VM_UNINITIALIZED, VM_USERMAP,
};

/// Outcome of consulting the TLB model in [`Machine::translate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbOutcome {
    /// The TLB had the translation and it matches the page tables.
    Hit,
    /// The TLB missed; the walk's translation was cached.
    Miss,
    /// The TLB answered with a translation the page tables no longer have: a flush is owed.
    Stale(PhysAddr),
}

/// The result of [`Machine::translate`]: the page walk and what the TLB said.
#[derive(Clone, Copy, Debug)]
pub struct TranslateReport {
    /// The walk.
    pub walk: Walk,
    /// The TLB model's answer.
    pub tlb: TlbOutcome,
    /// What the address is (`vmalloc`, `direct map`, `pkmap`, `fixmap`, …).
    pub area: &'static str,
}

impl fmt::Display for TranslateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} ({})", self.walk, self.area)?;
        match self.tlb {
            TlbOutcome::Hit => write!(f, "  TLB: hit"),
            TlbOutcome::Miss if self.walk.result.is_some() => write!(f, "  TLB: miss (filled)"),
            TlbOutcome::Miss => write!(f, "  TLB: miss"),
            TlbOutcome::Stale(p) => write!(
                f,
                "  TLB: STALE entry -> physical {:#x} (a TLB flush is owed)",
                p.as_u64()
            ),
        }
    }
}

/// Writes `0x` and a pointer with `%pK`'s width (16 or 8 hex digits).
struct Ptr(u64, usize);
impl fmt::Display for Ptr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:0w$x}", self.0, w = self.1)
    }
}

/// The caller as `%pS` would name it: Rust has no symbol, so the source location.
struct CallerName(Option<&'static Location<'static>>);
impl fmt::Display for CallerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(l) => {
                // The file's last two path components: `shell/vmalloc.rs:21`.
                let path = l.file();
                let cut = path.rmatch_indices('/').nth(1).map_or(0, |(i, _)| i + 1);
                write!(f, "{}:{}", &path[cut..], l.line())
            }
            None => f.write_str("0x0"),
        }
    }
}

impl<P: Platform> VmLayer<P> {
    /// `translate`: walks the kernel page table for model address `addr`, reporting each
    /// level's entry, and consults the TLB model (filling it on a miss).
    pub fn translate(&self, addr: u64) -> Option<TranslateReport> {
        let l = self.kernel_layout()?;
        // Lock order: init_mm.page_table_lock (rank 5), leaf; docs/LOCKING.md.
        let mut g = self.vm().pgt.lock();
        let g = &mut *g;
        let walk = g.pt.as_ref()?.walk(self.pt_mem(), addr);
        let tlb = match (g.tlb.lookup(addr), walk.result) {
            (Some(t), Some(w)) if t.phys == w.phys => TlbOutcome::Hit,
            (Some(t), _) => TlbOutcome::Stale(t.phys),
            (None, Some(w)) => {
                g.tlb.fill(walk.fmt, addr, w);
                TlbOutcome::Miss
            }
            (None, None) => TlbOutcome::Miss,
        };
        let area = if addr >= l.page_offset && addr < l.high_memory {
            "direct map"
        } else if l.is_vmalloc_addr(addr) {
            "vmalloc"
        } else if l
            .pkmap_base
            .is_some_and(|b| addr >= b && addr < b + ((crate::layout::LAST_PKMAP as u64) << 12))
        {
            "pkmap"
        } else if addr >= l.fixaddr_start && addr < l.fixaddr_top {
            "fixmap"
        } else {
            "unmapped kernel space"
        };
        Some(TranslateReport { walk, tlb, area })
    }

    /// Statistics of the vmalloc space.
    pub fn vmalloc_stats(&self) -> VmallocStats {
        // Lock order: vmap_area_lock (rank 2); docs/LOCKING.md.
        let a = self.vm().areas.lock();
        let largest = if a.free_root.rb_node.is_null() {
            0
        } else {
            // SAFETY: the root is a valid free-tree node under the lock.
            unsafe { (*kds::container_of!(a.free_root.rb_node, VmapArea, rb)).subtree_max_size }
        };
        VmallocStats {
            busy_areas: a.nr_busy,
            free_areas: a.nr_free,
            lazy_areas: a.nr_lazy_areas,
            lazy_pages: self.vm().lazy_nr.load(Ordering::Relaxed),
            purges: self.vm().purges.load(Ordering::Relaxed),
            object_pages: a.obj_pages,
            stashed_objects: a.obj_stash,
            largest_free: largest,
        }
    }

    /// Checks the vmalloc invariants: the free tree is sorted, its areas neither overlap
    /// nor touch, its augmented values are right, and no busy area overlaps a free one.
    ///
    /// # Errors
    /// A description of the first violation.
    pub fn check_vmalloc(&self) -> Result<(), &'static str> {
        // Lock order: vmap_area_lock (rank 2); docs/LOCKING.md.
        let a = self.vm().areas.lock();
        // SAFETY: both trees hold valid objects under the lock.
        unsafe {
            if !a.free_root.rb_node.is_null() {
                check_max(a.free_root.rb_node)?;
            }
            let mut prev_end: Option<u64> = None;
            let mut n = rb_first(&a.free_root);
            let mut count = 0;
            while !n.is_null() {
                let va = &*kds::container_of!(n, VmapArea, rb);
                if va.va_start >= va.va_end {
                    return Err("empty free area");
                }
                if let Some(e) = prev_end {
                    if va.va_start <= e {
                        return Err("free areas overlap or touch (not merged)");
                    }
                }
                prev_end = Some(va.va_end);
                count += 1;
                n = rb_next(n);
            }
            if count != a.nr_free {
                return Err("free area count mismatch");
            }
            let mut n = rb_first(&a.busy_root);
            let mut prev_end = 0;
            while !n.is_null() {
                let va = &*kds::container_of!(n, VmapArea, rb);
                if va.va_start < prev_end {
                    return Err("busy areas overlap");
                }
                prev_end = va.va_end;
                if find_containing(&a.free_root, va.va_start).is_some()
                    || find_containing(&a.free_root, va.va_end - 1).is_some()
                {
                    return Err("busy area overlaps a free area");
                }
                n = rb_next(n);
            }
        }
        Ok(())
    }

    /// /proc/vmallocinfo (mm/vmalloc.c `vmalloc_info_show`): one line per busy area in
    /// address order, then the lazily freed ones.
    pub fn show_vmallocinfo(&self, out: &mut dyn Write) -> fmt::Result {
        if self.kernel_layout().is_none() {
            return Ok(());
        }
        let w = self.arch().ptr_hex_digits();
        // Lock order: vmap_area_lock (rank 2), the caller's writer under it (V4); docs/LOCKING.md.
        let a = self.vm().areas.lock();
        // SAFETY: the busy tree and purge list hold valid objects under the lock.
        unsafe {
            let mut n = rb_first(&a.busy_root);
            while !n.is_null() {
                let v = &*kds::container_of!(n, VmapArea, rb);
                n = rb_next(n);
                if v.flags & VM_UNINITIALIZED != 0 {
                    continue;
                }
                if v.flags & VM_MAP_RAM_AREA != 0 {
                    writeln!(
                        out,
                        "{}-{} {:7} vm_map_ram",
                        Ptr(v.va_start, w),
                        Ptr(v.va_end, w),
                        va_size(v)
                    )?;
                    continue;
                }
                write!(
                    out,
                    "{}-{} {:7}",
                    Ptr(v.va_start, w),
                    Ptr(v.va_end, w),
                    va_size(v)
                )?;
                if v.caller.is_some() {
                    write!(out, " {}", CallerName(v.caller))?;
                }
                if v.nr_pages != 0 {
                    write!(out, " pages={}", v.nr_pages)?;
                }
                if v.phys_addr != 0 {
                    write!(out, " phys={:#018x}", v.phys_addr)?;
                }
                for (bit, name) in [
                    (VM_IOREMAP, " ioremap"),
                    (VM_SPARSE, " sparse"),
                    (VM_ALLOC, " vmalloc"),
                    (VM_MAP, " vmap"),
                    (VM_USERMAP, " user"),
                    (VM_DMA_COHERENT, " dma-coherent"),
                ] {
                    if v.flags & bit != 0 {
                        out.write_str(name)?;
                    }
                }
                if v.nr_pages != 0 {
                    write!(out, " N0={}", v.nr_pages)?;
                }
                out.write_str("\n")?;
            }
            let mut p = a.purge_head;
            while !p.is_null() {
                let v = &*p;
                writeln!(
                    out,
                    "{}-{} {:7} unpurged vm_area",
                    Ptr(v.va_start, w),
                    Ptr(v.va_end, w),
                    va_size(v)
                )?;
                p = v.next;
            }
        }
        Ok(())
    }

    /// Writes the kernel virtual layout (`kmem layout`).
    pub fn show_layout(&self, out: &mut dyn Write) -> fmt::Result {
        match self.kernel_layout() {
            Some(l) => write!(out, "{l}"),
            None => writeln!(out, "(kernel page tables not initialised)"),
        }
    }
}
