//! `kmem layout`: the machine's memory layout, as far as kmem models it today.
//!
//! Linux printed a "virtual kernel memory layout" at boot on i386 (arch/x86/mm/init_32.c,
//! `mem_init`) in the form `name : 0xstart - 0xend   (size)`; this command uses the same form
//! for both architectures. Areas that kmem does not model yet (vmalloc, pkmap, fixmap) are
//! listed as such rather than invented.

use std::fmt::Write;

use kmem::arch::Arch;
use kmem::mmzone::ZoneType;
use kmem::{Pfn, PAGE_SIZE};

use crate::kernel::Kernel;

fn size(bytes: u64) -> String {
    if bytes >= 10 << 20 {
        format!("{:>5} MB", bytes >> 20)
    } else {
        format!("{:>5} kB", bytes >> 10)
    }
}

/// Renders the layout.
pub fn render(k: &Kernel) -> String {
    let m = &k.m;
    let arch = m.arch();
    let w = arch.ptr_hex_digits();
    let mut s = String::new();
    let line = |s: &mut String, name: &str, a: u64, b: u64, note: &str| {
        let _ = writeln!(
            s,
            "    {name:<11}: {a:#0w2$x} - {b:#0w2$x}   ({})  {note}",
            size(b - a),
            w2 = w + 2
        );
    };
    let _ = writeln!(
        s,
        "{} machine: {} MiB RAM, max_pfn {:#x}, {} CPUs",
        arch,
        m.e820().ram_total() >> 20,
        m.max_pfn().as_u64(),
        m.nr_cpus()
    );
    let _ = writeln!(s, "virtual kernel memory layout:");
    let po = arch.page_offset();
    let low = m.lowmem_end().as_u64();
    let memmap_bytes = m.max_pfn().as_u64() * core::mem::size_of::<kmem::Page>() as u64;
    let memmap = m
        .pfn_to_page(Pfn::new(0))
        .map(|p| k.page_model(p))
        .unwrap_or(0);
    match arch {
        Arch::X86_64 => {
            line(
                &mut s,
                "direct map",
                po,
                po + low,
                "PAGE_OFFSET: all RAM (page_offset_base)",
            );
            line(
                &mut s,
                "vmemmap",
                memmap,
                memmap + memmap_bytes,
                "struct page array (vmemmap_base)",
            );
        }
        Arch::I386 => {
            line(
                &mut s,
                "lowmem",
                po,
                po + low,
                "PAGE_OFFSET: direct map up to high_memory",
            );
            line(
                &mut s,
                "mem_map",
                memmap,
                memmap + memmap_bytes,
                "struct page array, inside lowmem",
            );
        }
    }
    let _ = writeln!(
        s,
        "    (not modelled yet: vmalloc/ioremap space{}, the kernel text mapping)",
        if arch == Arch::I386 {
            ", pkmap, fixmap"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "    struct page: {} bytes; PAGE_SIZE {}; high_memory = {:#0w2$x}",
        core::mem::size_of::<kmem::Page>(),
        PAGE_SIZE,
        po + low,
        w2 = w + 2
    );
    let _ = writeln!(s, "physical memory zones:");
    for &z in arch.zones() {
        if matches!(z, ZoneType::Movable | ZoneType::Device) {
            continue;
        }
        let zone = m.zone(z);
        let g = zone.geo;
        if g.spanned == 0 {
            let _ = writeln!(s, "    {:<11}: empty", z.name());
            continue;
        }
        let (a, b) = (g.start_pfn.phys().as_u64(), g.end_pfn().phys().as_u64());
        let note = if z == ZoneType::HighMem {
            "not in the direct map (kmap needed)"
        } else {
            "in the direct map"
        };
        let _ = writeln!(
            s,
            "    {:<11}: {a:#012x} - {b:#012x}   ({})  {} pages present, {note}",
            z.name(),
            size(b - a),
            g.present
        );
    }
    s
}
