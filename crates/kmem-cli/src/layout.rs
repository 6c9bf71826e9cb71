//! `kmem layout`: the machine's memory layout.
//!
//! The virtual layout is `kmem::layout::KernelLayout`'s rendering, in the form of the
//! "virtual kernel memory layout" i386 Linux printed at boot (arch/x86/mm/init_32.c
//! `mem_init`: `name : 0xstart - 0xend   (size)`); then what this machine uses of it (the
//! `struct page` array, `high_memory`) and its physical zones.

#![forbid(unsafe_code)]

use std::fmt::Write;

use kmem::arch::Arch;
use kmem::layout::KernelLayout;
use kmem::mmzone::ZoneType;
use kmem::{Pfn, PAGE_SIZE};

use crate::kernel::Kernel;

fn size(bytes: u64) -> String {
    if bytes >= 10 << 20 {
        format!("{:>4} MB", bytes >> 20)
    } else {
        format!("{:>4} kB", bytes >> 10)
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
            "{name:>12} : {a:#0w2$x} - {b:#0w2$x}   ({})  {note}",
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
    // The machine's layout (kmem::layout, as Linux documents it), or the architecture's when
    // the kernel page tables are not set up.
    let po = arch.page_offset();
    let low = m.lowmem_end().as_u64();
    let kl = m
        .kernel_layout()
        .unwrap_or_else(|| KernelLayout::new(arch, low, u64::MAX));
    let _ = write!(s, "{kl}");
    let memmap_bytes = m.max_pfn().as_u64() * core::mem::size_of::<kmem::Page>() as u64;
    let memmap = m
        .pfn_to_page(Pfn::new(0))
        .map(|p| k.page_model(p))
        .unwrap_or(0);
    let _ = writeln!(s, "this machine:");
    line(
        &mut s,
        "mem_map",
        memmap,
        memmap + memmap_bytes,
        &format!(
            "struct page[{}], {} bytes each{}",
            m.max_pfn().as_u64(),
            core::mem::size_of::<kmem::Page>(),
            if arch == Arch::I386 {
                ", inside lowmem"
            } else {
                ", in vmemmap"
            }
        ),
    );
    let _ = writeln!(
        s,
        "  PAGE_OFFSET = {po:#0w2$x}, high_memory = {:#0w2$x}, PAGE_SIZE = {PAGE_SIZE}",
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
            let _ = writeln!(s, "{:>12} : empty", z.name());
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
            "{:>12} : {a:#012x} - {b:#012x}   ({})  {} pages present, {note}",
            z.name(),
            size(b - a),
            g.present
        );
    }
    s
}
