//! # kmem-baremetal — kmem in a real kernel
//!
//! A small x86_64 kernel, booted by QEMU through the PVH protocol, that uses kmem as a real
//! kernel would and runs a self-test suite on it. `scripts/qemu-test` builds and boots it.
//!
//! Boot flow: [`boot`] (32-bit PVH entry → page tables → long mode) → [`kernel_main`]: COM1
//! ([`serial`]), exception handlers ([`idt`]), the PVH start info and its e820 map ([`pvh`]),
//! the ACPI tables and the NUMA nodes of their SRAT and SLIT ([`acpi`], [`numa`]),
//! the early self-tests, then kmem ([`mm`]): memblock from the e820 map with the kernel image
//! (boot page tables and stack included) reserved, the memmap, zones and the buddy allocator,
//! SLUB and kmalloc — which is the kernel's `#[global_allocator]` ([`heap`]) — and vmalloc on
//! the CPU's own page tables ([`platform`]: CR3, `invlpg`). The self-tests over the booted
//! machine follow ([`selftest`], [`mod@tests`]) — the last group runs real ring-3 programs
//! ([`user`]: kmem tasks on their own page tables, entered with `iretq` through the GDT and
//! TSS of [`gdt`], trapping back through [`idt`]) — then `/proc/buddyinfo`, `/proc/zoneinfo`,
//! `/proc/slabinfo` and `/proc/meminfo` are printed and the kernel exits through QEMU's
//! `isa-debug-exit` with success exactly when every test passed.
//!
//! One CPU, interrupts off for the whole run (user mode included), no preemptive scheduler:
//! the platform's per-CPU sections still disable interrupts, and its spinlock reports
//! recursive locking instead of hanging.
//!
//! Kernel command line (`--append`): anything kmem parses (`slub_debug=FZPU`, `kmemleak=on`,
//! `kfence.sample_interval=1`, `kmemcheck=1` — whose traps are [`kmemcheck`]'s, …), and
//! `selftest=fail` adds a test that fails on purpose, so the harness can be shown to fail;
//! `selftest=panic` and `selftest=fault` add a test that panics or takes a page fault, and
//! `selftest=doublefault` one whose page fault cannot be delivered (reported from the IST
//! double-fault stack); all must also fail the run. Values combine: `selftest=fail,panic`.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod acpi;
mod arch;
mod boot;
mod cell;
mod gdt;
mod heap;
mod idt;
mod kmemcheck;
mod kpte;
mod libc;
mod mm;
mod numa;
mod platform;
mod pvh;
mod selftest;
mod serial;
mod spinlock;
mod tests;
mod user;

use core::fmt::Write;

use cell::BootCell;
use pvh::BootInfo;

/// The Rust entry, called by `boot.rs` in long mode with the physical address of
/// `struct hvm_start_info`.
#[no_mangle]
extern "C" fn kernel_main(start_info: u32) -> ! {
    boot::paint_stack();
    serial::init();
    gdt::init();
    idt::init();
    println!();
    println!("kmem-baremetal: x86_64 test kernel for kmem (PVH boot, one CPU, interrupts off)");

    // SAFETY: `start_info` is the %ebx value of the PVH entry, passed through untouched by
    // boot.rs; nothing has written to RAM outside the kernel image yet.
    let info = match unsafe { BootInfo::from_start_info(u64::from(start_info)) } {
        Ok(info) => info,
        Err(e) => {
            println!("kmem-baremetal: cannot boot: {e}");
            arch::qemu_exit(arch::EXIT_FAILURE)
        }
    };
    print_boot_info(&info);

    let info: &'static BootInfo = BOOT_INFO.set(info);
    // ACPI SRAT/SLIT → the nodes (Linux's x86_numa_init), before anything reuses low memory.
    numa::init(info);

    let phys_end = info.max_ram_end().min(boot::identity_map_end());
    // SAFETY: the boot page tables map [0, identity_map_end()) at DIRECT_MAP_BASE; this is the
    // only platform value, and kmem (booted on it below) is the only user of that memory.
    let plat = unsafe { platform::BareMetal::new(phys_end) };
    println!(
        "platform: TSC {} MHz, RDRAND {}",
        plat.tsc_khz() / 1000,
        if plat.has_rdrand() { "yes" } else { "no" }
    );

    let mut runner = selftest::Runner::new(plat.tsc_khz());
    tests::run_early(&mut runner, info, &plat);

    println!("kmem: booting the memory subsystem");
    match mm::boot_kmem(info, plat) {
        Ok(machine) => {
            let ctx = tests::KernelCtx { info, mm: machine };
            tests::run_kernel(&mut runner, &ctx);
            for path in [
                "/proc/buddyinfo",
                "/proc/zoneinfo",
                "/proc/slabinfo",
                "/proc/meminfo",
            ] {
                cat(machine, path);
            }
        }
        Err(e) => runner.fail_step("kmem_boot", format_args!("Machine::boot failed: {e}")),
    }

    let stack = boot::stack_high_water();
    println!(
        "kmem-baremetal: stack high-water mark {} KiB of {} KiB",
        stack.div_ceil(1024),
        boot::BOOT_STACK_SIZE / 1024
    );
    if stack > boot::BOOT_STACK_SIZE * 3 / 4 {
        runner.fail_step(
            "stack",
            format_args!("{stack} bytes used: over 3/4 of the boot stack"),
        );
    }
    let ok = runner.finish();
    println!(
        "kmem-baremetal: {}",
        if ok {
            "all self-tests passed"
        } else {
            "SELF-TESTS FAILED"
        }
    );
    arch::qemu_exit(if ok {
        arch::EXIT_SUCCESS
    } else {
        arch::EXIT_FAILURE
    })
}

/// The boot information, kept for the kernel's life.
static BOOT_INFO: BootCell<BootInfo> = BootCell::new();

/// Prints a /proc file of the machine on the console, between marker lines.
fn cat(machine: &mm::Kmem, path: &str) {
    println!("---- cat {path} ----");
    let mut console = serial::CONSOLE.lock();
    if let Err(e) = machine.proc_read(path, &mut *console) {
        drop(console);
        println!("cat: {path}: {e}");
    }
}

/// Prints the command line, the memory map (in Linux's "BIOS-e820" format) and the layout.
fn print_boot_info(info: &BootInfo) {
    println!("Command line: {}", info.cmdline());
    println!(
        "PVH start info v{} at {:#x}, {} e820 entries",
        info.version,
        info.start_info_paddr,
        info.e820().len()
    );
    println!("BIOS-provided physical RAM map:");
    for e in info.e820() {
        println!(
            "BIOS-e820: [mem {:#018x}-{:#018x}] {}",
            e.addr,
            e.end() - 1,
            e.type_name()
        );
    }
    if info.dropped_entries > 0 {
        println!(
            "BIOS-e820: {} entries beyond {} dropped",
            info.dropped_entries,
            pvh::MAX_E820
        );
    }
    let (ks, ke) = boot::kernel_image();
    let (ps, pe) = boot::boot_page_tables();
    println!(
        "kernel image: [mem {ks:#010x}-{:#010x}] ({} KiB)",
        ke - 1,
        (ke - ks) >> 10
    );
    println!(
        "boot page tables: [mem {ps:#010x}-{:#010x}], identity map of the first {} GiB",
        pe - 1,
        boot::IDENTITY_GIB
    );
    println!(
        "usable RAM: {} MiB, highest address {:#x}",
        info.total_ram() >> 20,
        info.max_ram_end()
    );
}

#[panic_handler]
fn panic(panic: &core::panic::PanicInfo<'_>) -> ! {
    let mut out = serial::emergency();
    let _ = writeln!(out, "\n*** KERNEL PANIC: {panic}");
    selftest::report_crash();
    arch::qemu_exit(arch::EXIT_FAILURE)
}
