//! [`kmem::platform::Platform`] for this kernel: identity-mapped RAM, one CPU, interrupts off.
//!
//! - **Memory**: the boot page tables map all physical memory at
//!   [`crate::boot::DIRECT_MAP_BASE`] (Linux's `PAGE_OFFSET`), which is the direct map kmem
//!   uses; `phys_end` is the end of RAM (capped at the end of what the boot tables map).
//! - **CPUs**: one possible CPU. `cpu_get`/`cpu_put` are `get_cpu()`/`put_cpu()`: they disable
//!   interrupts (saving IF on the outermost call, restoring it on the matching put), so a
//!   per-CPU section cannot be interrupted. Interrupts are off for the kernel's whole life
//!   anyway; the guard keeps the code right when a later issue turns the timer on.
//! - **Locks**: [`RawSpinlock`], which reports recursive locking instead of hanging.
//! - **Clock**: jiffies at `HZ` = 1000 from the TSC, calibrated against PIT channel 2 at boot
//!   (the method of arch/x86/kernel/tsc.c, `pit_calibrate_tsc`).
//! - **Randomness**: RDRAND when CPUID has it, else a xorshift64* generator seeded from the TSC.
//! - **Console**: COM1.
//! - **Kernel page tables**: kmem's vmalloc, vmap and kmap extend the live table in CR3 (the
//!   boot tables of [`crate::boot`]: the identity map in PML4 slot 0, the direct map in slot
//!   273; vmalloc space is in slot 402), so a vmalloc address is a real address for the CPU.
//!   `flush_tlb_kernel_range` is `invlpg` page by page up to Linux's
//!   `tlb_single_page_flush_ceiling` (33 pages, arch/x86/mm/tlb.c), a CR3 reload above it.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use kmem::platform::{CpuDeadHook, KmemcheckHook, LogLevel, PageFaultHook, Platform};
use kmem::PhysAddr;

use crate::arch;
use crate::spinlock::{RawSpinlock, SpinLock};

/// The bare-metal platform. Create it once, at boot.
pub struct BareMetal {
    phys_end: u64,
    tsc_at_boot: u64,
    tsc_per_jiffy: u64,
    rdrand: bool,
    rng: AtomicU64,
    /// Nesting depth of `cpu_get` sections.
    cpu_nesting: AtomicUsize,
    /// IF as it was when the outermost `cpu_get` disabled interrupts.
    irqs_were_on: AtomicBool,
    dead_hook: SpinLock<Option<CpuDeadHook>>,
}

/// Bytes of [`Platform::debug_area`]: kmem's stack depot.
const DEBUG_AREA_BYTES: usize = kmem::mm::stackdepot::DEPOT_AREA_BYTES;

/// The debug area, in `.bss` (so it is part of the kernel image memblock reserves, off the
/// allocators' books).
#[repr(C, align(4096))]
struct DebugArea {
    bytes: core::cell::UnsafeCell<[u8; DEBUG_AREA_BYTES]>,
    taken: AtomicBool,
}

// SAFETY: the bytes are handed out once (`taken`), to kmem, which owns them from then on.
unsafe impl Sync for DebugArea {}

static DEBUG_AREA: DebugArea = DebugArea {
    bytes: core::cell::UnsafeCell::new([0; DEBUG_AREA_BYTES]),
    taken: AtomicBool::new(false),
};

/// `tlb_single_page_flush_ceiling` (arch/x86/mm/tlb.c): above this many pages one full flush
/// is cheaper than `invlpg` per page.
const TLB_SINGLE_PAGE_FLUSH_CEILING: u64 = 33;

/// `CLOCK_TICK_RATE`: the PIT's input clock in Hz (arch/x86/include/asm/timex.h).
const PIT_TICK_RATE: u64 = 1_193_182;

impl BareMetal {
    /// Creates the platform for RAM ending at `phys_end` (calibrates the TSC: ~10 ms).
    ///
    /// # Safety
    /// `[0, phys_end)` must be mapped at [`crate::boot::DIRECT_MAP_BASE`]: RAM (plus holes that kmem never touches because
    /// memblock does not hand them out) that nothing else uses once kmem boots on it, and only
    /// one `BareMetal` may exist.
    pub unsafe fn new(phys_end: u64) -> Self {
        let tsc_hz = calibrate_tsc_hz();
        let seed = arch::rdtsc() | 1;
        BareMetal {
            phys_end,
            tsc_at_boot: arch::rdtsc(),
            tsc_per_jiffy: (tsc_hz / 1000).max(1),
            rdrand: arch::has_rdrand(),
            rng: AtomicU64::new(seed),
            cpu_nesting: AtomicUsize::new(0),
            irqs_were_on: AtomicBool::new(false),
            dead_hook: SpinLock::new(None),
        }
    }

    /// TSC frequency found at boot, in kHz (TSC ticks per jiffy, as `HZ` is 1000).
    pub fn tsc_khz(&self) -> u64 {
        self.tsc_per_jiffy
    }

    /// Whether random numbers come from RDRAND.
    pub fn has_rdrand(&self) -> bool {
        self.rdrand
    }
}

/// Measures the TSC frequency against 10 ms of PIT channel 2 (mode 0, gate on, speaker off).
/// Returns 1 GHz if the PIT never counts down.
fn calibrate_tsc_hz() -> u64 {
    const MS: u64 = 10;
    let latch = (PIT_TICK_RATE * MS / 1000) as u16;
    // SAFETY: ports 0x61 (PIT gate/speaker), 0x43 (PIT mode) and 0x42 (channel 2) belong to
    // this kernel; channel 2 drives only the PC speaker, which stays disabled.
    unsafe {
        arch::outb(0x61, (arch::inb(0x61) & !0x02) | 0x01);
        arch::outb(0x43, 0xb0); // channel 2, lobyte/hibyte, mode 0, binary
        arch::outb(0x42, latch as u8);
        arch::outb(0x42, (latch >> 8) as u8);
    }
    let start = arch::rdtsc();
    let mut polls: u64 = 0;
    // SAFETY: reading port 0x61 has no side effects; bit 5 is channel 2's output.
    while unsafe { arch::inb(0x61) } & 0x20 == 0 {
        polls += 1;
        if polls > 50_000_000 {
            return 1_000_000_000;
        }
    }
    (arch::rdtsc() - start) * (1000 / MS)
}

// SAFETY: `new`'s contract makes `[0, phys_end)` usable identity-mapped memory for kmem alone;
// there is one CPU (index 0), and `cpu_get` disables interrupts, so nothing else runs inside a
// per-CPU section; with one CPU that never goes offline the dead hook is never called.
unsafe impl Platform for BareMetal {
    type RawLock = RawSpinlock;

    fn direct_map_base(&self) -> *mut u8 {
        crate::boot::DIRECT_MAP_BASE as *mut u8
    }

    fn phys_end(&self) -> PhysAddr {
        PhysAddr::new(self.phys_end)
    }

    fn possible_cpus(&self) -> usize {
        1
    }

    fn cpu_get(&self) -> usize {
        let was_on = arch::irq_save();
        if self.cpu_nesting.fetch_add(1, Ordering::Relaxed) == 0 {
            self.irqs_were_on.store(was_on, Ordering::Relaxed);
        }
        0
    }

    fn cpu_put(&self, cpu: usize) {
        debug_assert_eq!(cpu, 0);
        let depth = self.cpu_nesting.fetch_sub(1, Ordering::Relaxed);
        assert!(depth > 0, "cpu_put without cpu_get");
        if depth == 1 {
            arch::irq_restore(self.irqs_were_on.load(Ordering::Relaxed));
        }
    }

    fn set_cpu_dead_hook(&self, hook: CpuDeadHook) {
        *self.dead_hook.lock() = Some(hook);
    }

    fn jiffies(&self) -> u64 {
        (arch::rdtsc() - self.tsc_at_boot) / self.tsc_per_jiffy
    }

    fn console_write(&self, _level: LogLevel, s: &str) {
        crate::print!("{s}");
    }

    fn protect_direct_page(&self, va: *mut u8, protect: bool) -> bool {
        let va = va as u64;
        let end = crate::boot::DIRECT_MAP_BASE + self.phys_end;
        (crate::boot::DIRECT_MAP_BASE..end).contains(&va)
            && crate::kpte::set_present(va & !0xfff, !protect)
    }

    fn set_page_fault_hook(&self, hook: PageFaultHook) {
        crate::idt::set_page_fault_hook(hook);
    }

    fn set_kmemcheck_hook(&self, hook: KmemcheckHook) -> bool {
        // The #PF/#DB handlers of crate::kmemcheck trap and single-step accesses to the
        // pages kmem hides with `protect_direct_page`.
        crate::kmemcheck::set_hook(hook);
        true
    }

    fn raw_cpu_id(&self) -> usize {
        0
    }

    fn stack_trace(&self, out: &mut [usize], frame: usize) -> usize {
        arch::frame_pointer_walk(out, frame, crate::boot::boot_stack())
    }

    fn debug_area(&self, size: usize, align: usize) -> Option<core::ptr::NonNull<u8>> {
        // The stack depot's area, in .bss. kmem asks first for the lock validator's memory
        // too (debug assertions are on in this kernel's release build): refused, so the
        // validator stays off as before, and the depot gets the area on the second request.
        if size > DEBUG_AREA_BYTES || align > 4096 || DEBUG_AREA.taken.swap(true, Ordering::AcqRel)
        {
            return None;
        }
        core::ptr::NonNull::new(DEBUG_AREA.bytes.get().cast::<u8>())
    }

    fn kernel_pgd(&self) -> Option<PhysAddr> {
        // CR3 bits 12..52 hold the PML4's physical address (the low bits are PCD/PWT flags).
        Some(PhysAddr::new(arch::read_cr3() & 0x000f_ffff_ffff_f000))
    }

    fn flush_tlb_kernel_range(&self, start: u64, end: u64) {
        let (start, end) = (start & !0xfff, end.max(start));
        let pages = (end - start).div_ceil(4096);
        if pages > TLB_SINGLE_PAGE_FLUSH_CEILING {
            arch::flush_tlb_all();
        } else {
            for i in 0..pages {
                arch::invlpg(start + i * 4096);
            }
        }
    }

    fn random_u64(&self) -> u64 {
        if self.rdrand {
            if let Some(v) = arch::rdrand64() {
                return v;
            }
        }
        // xorshift64* (Vigna): one CPU, interrupts off, so load/store is not racy.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
