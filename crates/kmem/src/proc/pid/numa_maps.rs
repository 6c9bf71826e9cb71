//! `/proc/PID/numa_maps` (fs/proc/task_mmu.c `show_numa_map`, mm/mempolicy.c `mpol_to_str`):
//! one line per VMA — its start, its policy (the VMA's, else the task's), `file=`, `heap` or
//! `stack`, then, if it maps pages, `anon=`, `dirty=`, `mapped=`, `mapmax=`, `swapcache=`,
//! `active=`, `writeback=`, `N<node>=` and `kernelpagesize_kB=`.
#![forbid(unsafe_code)]

use core::fmt::{self, Write};

use super::{shmem_name, vma_name, NameBuf};
use crate::mm::mm_types::pg;
use crate::numa::MAX_NUMA_NODES;
use crate::platform::Platform;
use crate::task::TaskMm;
use crate::vma::mempolicy::*;
use crate::vma::{VmAreaStruct, VmBacking, PAGE};

/// `struct numa_maps`.
#[derive(Default)]
struct NumaMaps {
    pages: u64,
    anon: u64,
    active: u64,
    writeback: u64,
    mapcount_max: u64,
    dirty: u64,
    swapcache: u64,
    node: [u64; MAX_NUMA_NODES],
}

/// `mpol_to_str`: `default`, `prefer:1`, `bind=static:0-1`, `interleave:0-1`, `local`,
/// `prefer (many):0-1`, `weighted interleave:0-1`.
fn mpol_to_str(out: &mut dyn Write, pol: Option<&MemPolicy>) -> fmt::Result {
    let Some(p) = pol else {
        return out.write_str("default");
    };
    // policy_modes[]
    let name = match p.mode {
        MPOL_PREFERRED => "prefer",
        MPOL_BIND => "bind",
        MPOL_INTERLEAVE => "interleave",
        MPOL_WEIGHTED_INTERLEAVE => "weighted interleave",
        MPOL_LOCAL => "local",
        MPOL_PREFERRED_MANY => "prefer (many)",
        _ => "default",
    };
    out.write_str(name)?;
    if p.flags & MPOL_MODE_FLAGS != 0 {
        out.write_str("=")?;
        if p.flags & MPOL_F_STATIC_NODES != 0 {
            out.write_str("static")?;
        } else if p.flags & MPOL_F_RELATIVE_NODES != 0 {
            out.write_str("relative")?;
        }
        if p.flags & MPOL_F_NUMA_BALANCING != 0 {
            if p.flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) != 0 {
                out.write_str("|")?;
            }
            out.write_str("balancing")?;
        }
    }
    if p.nodes.weight() != 0 {
        write!(out, ":{}", p.nodes)?;
    }
    Ok(())
}

/// `gather_pte_stats` over `v`: every present page but the zero page.
fn gather<P: Platform>(t: &TaskMm<'_, P>, v: &VmAreaStruct, md: &mut NumaMaps) {
    let Some(pt) = t.mm.pgd.as_ref() else {
        return;
    };
    let l = t.layer;
    let mut a = v.vm_start;
    while a < v.vm_end {
        let pte = pt.pte_get(l.pt_mem(), a);
        a += PAGE;
        if l.is_zero_pte(pt.format(), pte) {
            continue;
        }
        let Some(page) = l.pte_page(pt.format(), pte) else {
            continue;
        };
        let f = page.flags();
        md.pages += 1;
        if pte & crate::pgtable::PteFlags::DIRTY.0 != 0 || f & pg::DIRTY != 0 {
            md.dirty += 1;
        }
        if f & pg::SWAPCACHE != 0 {
            md.swapcache += 1;
        }
        if f & (pg::ACTIVE | pg::UNEVICTABLE) != 0 {
            md.active += 1;
        }
        if f & pg::WRITEBACK != 0 {
            md.writeback += 1;
        }
        if l.page_is_anon(page) {
            md.anon += 1;
        }
        md.mapcount_max = md.mapcount_max.max(page.mapcount().max(0) as u64);
        if let Some(n) = md.node.get_mut(l.page_to_nid(page)) {
            *n += 1;
        }
    }
}

/// `show_numa_map` for every VMA of the task.
pub(super) fn show_numa_maps<P: Platform>(t: TaskMm<'_, P>, out: &mut dyn Write) -> fmt::Result {
    for v in t.mm.vmas() {
        write!(out, "{:08x} ", v.vm_start)?;
        mpol_to_str(out, v.vm_policy.or(t.mm.task_policy).as_ref())?;
        if let VmBacking::Shmem(ino) = v.backing {
            let mut n = NameBuf::new();
            shmem_name(t.layer, ino, &mut n);
            write!(out, " file={}", n.as_str())?;
        } else {
            match vma_name(t.mm, v) {
                Some("[heap]") => out.write_str(" heap")?,
                Some("[stack]") => out.write_str(" stack")?,
                _ => {}
            }
        }
        let mut md = NumaMaps::default();
        gather(&t, v, &mut md);
        if md.pages != 0 {
            if md.anon != 0 {
                write!(out, " anon={}", md.anon)?;
            }
            if md.dirty != 0 {
                write!(out, " dirty={}", md.dirty)?;
            }
            if md.pages != md.anon && md.pages != md.dirty {
                write!(out, " mapped={}", md.pages)?;
            }
            if md.mapcount_max > 1 {
                write!(out, " mapmax={}", md.mapcount_max)?;
            }
            if md.swapcache != 0 {
                write!(out, " swapcache={}", md.swapcache)?;
            }
            if md.active < md.pages {
                write!(out, " active={}", md.active)?;
            }
            if md.writeback != 0 {
                write!(out, " writeback={}", md.writeback)?;
            }
            for (nid, n) in md.node.iter().enumerate() {
                if *n != 0 {
                    write!(out, " N{nid}={n}")?;
                }
            }
            write!(out, " kernelpagesize_kB={}", PAGE / 1024)?;
        }
        out.write_str("\n")?;
    }
    Ok(())
}
