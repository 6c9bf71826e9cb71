//! Bringing up kmem on this machine: the PVH memory map becomes kmem's e820 table, the kernel
//! image (with the boot page tables and stack in its `.bss`) is described to kmem so memblock
//! reserves it, and [`kmem::Machine::boot`] does the rest as Linux's `setup_arch` →
//! `mm_core_init` does: memblock, the memmap (reserved in memblock), zones, and the buddy
//! allocator taking all remaining RAM.
//!
//! The booted machine lives in [`MACHINE`] for the rest of the kernel's life.

use kmem::arch::{Arch, E820Entry, E820Table, E820Type};
use kmem::machine::KernelImage;
use kmem::{BootError, BootParams, Machine, PhysAddr};

use crate::boot;
use crate::cell::BootCell;
use crate::platform::BareMetal;
use crate::println;
use crate::pvh::BootInfo;

/// The memory subsystem of this kernel.
pub type Kmem = Machine<BareMetal>;

/// CPUs kmem runs on: the boot CPU only (QEMU's other `-smp` CPUs are never started).
const NR_CPUS: usize = 1;

/// The booted machine (set once by [`boot_kmem`]).
pub static MACHINE: BootCell<Kmem> = BootCell::new();

/// Converts the PVH map into kmem's e820 table, cutting RAM that the boot page tables do not
/// map (it could not be reached through the direct map).
fn e820_table(info: &BootInfo) -> E820Table {
    let limit = boot::identity_map_end();
    let mut table = E820Table::new();
    for e in info.e820() {
        let kind = E820Type::from_raw(e.kind);
        let (addr, mut size) = (e.addr, e.size);
        if kind == E820Type::Ram && e.end() > limit {
            println!(
                "e820: RAM [{:#x}-{:#x}] beyond the direct map ignored",
                limit.max(addr),
                e.end() - 1
            );
            if addr >= limit {
                continue;
            }
            size = limit - addr;
        }
        if size == 0 {
            continue;
        }
        if !table.push(E820Entry::new(addr, size, kind)) {
            println!(
                "e820: table full, [{addr:#x}-{:#x}] dropped",
                addr + size - 1
            );
        }
    }
    table
}

/// With `kmemcheck=` on (any value but 0), the page tables that let kmemcheck hide any 4 KiB
/// page of the direct map: one per 2 MiB of the physical address space up to the end of RAM,
/// at the top of the highest RAM range above the kernel image that holds them (Linux 4.14
/// maps the direct map with 4 KiB pages under `CONFIG_KMEMCHECK`). Returns their physical
/// address and number; `None` without kmemcheck or without room.
fn kmemcheck_tables(info: &BootInfo) -> Option<(u64, usize)> {
    let cmdline = crate::pvh::Cmdline(info.cmdline());
    if !cmdline.values("kmemcheck").any(|v| v != "0") {
        return None;
    }
    let limit = boot::identity_map_end();
    let count = info.max_ram_end().min(limit).div_ceil(2 << 20);
    let bytes = count * 4096;
    let image_end = boot::image_layout().end();
    info.e820()
        .iter()
        .filter(|e| e.kind == crate::pvh::E820_RAM)
        .filter_map(|e| {
            let base = (e.end().min(limit) & !0xfff).checked_sub(bytes)?;
            (base >= e.addr.max(image_end)).then_some(base)
        })
        .max()
        .map(|base| (base, count as usize))
}

/// Boots kmem on `plat` with the memory map and command line of `info`.
///
/// # Errors
/// The [`BootError`] of [`Machine::boot`].
pub fn boot_kmem(info: &BootInfo, plat: BareMetal) -> Result<&'static Kmem, BootError> {
    let l = boot::image_layout();
    let kernel = KernelImage {
        start: PhysAddr::new(l.start),
        code: l.text,
        rodata: l.rodata,
        rwdata: l.data,
        init: 0,
        bss: l.bss,
    };
    // The page tables are inside the image's .bss; naming them keeps the reservation explicit
    // for the day they move out of the image (vmalloc allocates page tables from the buddy).
    let (pt_start, pt_end) = boot::boot_page_tables();
    let mut reserve = [(PhysAddr::new(pt_start), pt_end - pt_start); 2];
    let mut n = 1;
    if let Some((pa, count)) = kmemcheck_tables(info) {
        crate::kpte::add_tables(pa, count);
        reserve[1] = (PhysAddr::new(pa), count as u64 * 4096);
        n = 2;
        println!(
            "kmemcheck: {count} page tables at [mem {pa:#010x}-{:#010x}] for 4 KiB direct-map pages",
            pa + count as u64 * 4096 - 1
        );
    }
    let reserve = &reserve[..n];
    // The nodes of the firmware's SRAT/SLIT (crate::numa, read before kmem boots); none
    // without them: one node, as before.
    let mut cpu_to_node = [0; NR_CPUS];
    let numa = crate::numa::NUMA
        .get()
        .map(|n| n.topology(&mut cpu_to_node));
    let params = BootParams {
        arch: Arch::X86_64,
        e820: e820_table(info),
        nr_cpus: NR_CPUS,
        cmdline: info.cmdline(),
        kernel: Some(kernel),
        reserve,
        numa,
    };
    let machine = Machine::boot(plat, &params)?;
    Ok(MACHINE.set(machine))
}
