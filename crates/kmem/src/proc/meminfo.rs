//! /proc/meminfo (fs/proc/meminfo.c `meminfo_proc_show`): every line Linux 6.18 prints on
//! x86, in its order and format (`%-16s%8lu kB` through `show_val_kb`). kmem has no page
//! cache, swap, anonymous memory or hugetlb, so those lines read 0, which is true of it.

#![forbid(unsafe_code)]

use core::fmt::{self, Write};

use crate::arch::Arch;
use crate::mm::{pages_to_kb, NodeStat};
use crate::mmzone::ZoneType;
use crate::platform::Platform;
use crate::vmalloc::VmLayer;

fn kb(out: &mut dyn Write, label: &str, kb: usize) -> fmt::Result {
    writeln!(out, "{:<16}{:>8} kB", label, kb)
}

impl<P: Platform> VmLayer<P> {
    /// Writes `/proc/meminfo`.
    pub fn show_meminfo(&self, out: &mut dyn Write) -> fmt::Result {
        let total = self.totalram_pages();
        let free = self.nr_free_pages();
        let srecl = self.node_stat_hook(NodeStat::SlabReclaimable);
        let sunrecl = self.node_stat_hook(NodeStat::SlabUnreclaimable);
        let pt = self.node_stat_hook(NodeStat::PageTables);
        kb(out, "MemTotal:", pages_to_kb(total))?;
        kb(out, "MemFree:", pages_to_kb(free))?;
        kb(
            out,
            "MemAvailable:",
            pages_to_kb(self.mem_available_pages()),
        )?;
        // The LRU lists and the swap cache (crate::vmscan, crate::swap); kmem has no file
        // page cache, so Cached is the swap cache's share (fs/proc/meminfo.c: cached =
        // NR_FILE_PAGES - swapcache - bufferram, here the shmem pages).
        let ns = |w| self.node_stat_hook(w);
        let (ia, aa) = (ns(NodeStat::InactiveAnon), ns(NodeStat::ActiveAnon));
        let (ifl, af) = (ns(NodeStat::InactiveFile), ns(NodeStat::ActiveFile));
        kb(out, "Buffers:", 0)?;
        kb(out, "Cached:", pages_to_kb(ns(NodeStat::Shmem)))?;
        kb(out, "SwapCached:", pages_to_kb(ns(NodeStat::SwapCached)))?;
        kb(out, "Active:", pages_to_kb(aa + af))?;
        kb(out, "Inactive:", pages_to_kb(ia + ifl))?;
        kb(out, "Active(anon):", pages_to_kb(aa))?;
        kb(out, "Inactive(anon):", pages_to_kb(ia))?;
        kb(out, "Active(file):", pages_to_kb(af))?;
        kb(out, "Inactive(file):", pages_to_kb(ifl))?;
        kb(out, "Unevictable:", pages_to_kb(ns(NodeStat::Unevictable)))?;
        kb(out, "Mlocked:", 0)?;
        if self.arch() == Arch::I386 {
            let hz = self.zone(ZoneType::HighMem);
            let htotal = hz.managed_pages();
            let hfree = hz.stats.free_pages();
            kb(out, "HighTotal:", pages_to_kb(htotal))?;
            kb(out, "HighFree:", pages_to_kb(hfree))?;
            kb(out, "LowTotal:", pages_to_kb(total - htotal))?;
            kb(out, "LowFree:", pages_to_kb(free - hfree))?;
        }
        kb(
            out,
            "SwapTotal:",
            pages_to_kb(self.node_stat_hook(NodeStat::SwapTotal)),
        )?;
        kb(
            out,
            "SwapFree:",
            pages_to_kb(self.node_stat_hook(NodeStat::SwapFree)),
        )?;
        for l in ["Zswap:", "Zswapped:", "Dirty:", "Writeback:"] {
            kb(out, l, 0)?;
        }
        // NR_ANON_MAPPED, NR_FILE_MAPPED, NR_SHMEM (crate::rmap, crate::shmem).
        kb(
            out,
            "AnonPages:",
            pages_to_kb(self.node_stat_hook(NodeStat::AnonMapped)),
        )?;
        kb(
            out,
            "Mapped:",
            pages_to_kb(self.node_stat_hook(NodeStat::FileMapped)),
        )?;
        kb(
            out,
            "Shmem:",
            pages_to_kb(self.node_stat_hook(NodeStat::Shmem)),
        )?;
        kb(out, "KReclaimable:", pages_to_kb(srecl))?;
        kb(out, "Slab:", pages_to_kb(srecl + sunrecl))?;
        kb(out, "SReclaimable:", pages_to_kb(srecl))?;
        kb(out, "SUnreclaim:", pages_to_kb(sunrecl))?;
        kb(out, "KernelStack:", 0)?;
        kb(out, "PageTables:", pages_to_kb(pt))?;
        for l in [
            "SecPageTables:",
            "NFS_Unstable:",
            "Bounce:",
            "WritebackTmp:",
        ] {
            kb(out, l, 0)?;
        }
        // overcommit_ratio 50, no swap: CommitLimit = totalram / 2.
        kb(out, "CommitLimit:", pages_to_kb(total / 2))?;
        kb(out, "Committed_AS:", 0)?;
        let (vtotal, vused) = self.vmalloc_info_kb();
        kb(out, "VmallocTotal:", vtotal)?;
        kb(out, "VmallocUsed:", vused)?;
        kb(out, "VmallocChunk:", 0)?;
        kb(out, "Percpu:", self.percpu_kb())?;
        for l in [
            "AnonHugePages:",
            "ShmemHugePages:",
            "ShmemPmdMapped:",
            "FileHugePages:",
            "FilePmdMapped:",
        ] {
            kb(out, l, 0)?;
        }
        // CONFIG_CMA: shown once a `cma=` area exists (see page_alloc/cma.rs).
        if self.cma_enabled() {
            kb(out, "CmaTotal:", pages_to_kb(self.totalcma_pages()))?;
            let cfree = self.zones().map(|z| z.stats.free_cma_pages()).sum();
            kb(out, "CmaFree:", pages_to_kb(cfree))?;
        }
        kb(out, "Balloon:", 0)?;
        writeln!(out, "HugePages_Total:       0")?;
        writeln!(out, "HugePages_Free:        0")?;
        writeln!(out, "HugePages_Rsvd:        0")?;
        writeln!(out, "HugePages_Surp:        0")?;
        kb(
            out,
            "Hugepagesize:",
            if self.arch() == Arch::X86_64 {
                2048
            } else {
                4096
            },
        )?;
        kb(out, "Hugetlb:", 0)?;
        // arch_report_meminfo (arch/x86/mm/pat/set_memory.c): the direct map's pages by
        // size; `DirectMap1G` only with 1 GiB pages, which QEMU's default CPU lacks; i386
        // without PAE maps 4 MiB pages.
        let [small, huge] = self.direct_pages_count();
        kb(out, "DirectMap4k:", small * 4)?;
        match self.arch() {
            Arch::X86_64 => kb(out, "DirectMap2M:", huge * 2048)?,
            Arch::I386 => kb(out, "DirectMap4M:", huge * 4096)?,
        }
        Ok(())
    }

    /// VmallocTotal and VmallocUsed in kB (Documentation/arch/x86/x86_64/mm.rst: 32 TiB of
    /// vmalloc space on x86_64; 128 MiB less the guard on i386).
    fn vmalloc_info_kb(&self) -> (usize, usize) {
        let total = match (self.arch(), self.kernel_layout()) {
            (Arch::X86_64, _) => 34_359_738_367,
            // VMALLOC_TOTAL = VMALLOC_END - VMALLOC_START (pgtable_32_areas.h).
            (Arch::I386, Some(l)) => ((l.vmalloc_end - l.vmalloc_start) / 1024) as usize,
            (Arch::I386, None) => (120 << 20) / 1024,
        };
        (
            total,
            pages_to_kb(self.node_stat_hook(NodeStat::VmallocPages)),
        )
    }

    /// Memory used by per-CPU data in kB (`pcpu_nr_pages() << (PAGE_SHIFT - 10)`): the
    /// pages kmem allocated for per-CPU areas, every possible CPU's copy included.
    fn percpu_kb(&self) -> usize {
        pages_to_kb(self.percpu_pages())
    }
}
