//! The x86_64 instructions the kernel uses, each behind a small function.
//!
//! This is the only module besides [`crate::boot`], [`crate::idt`] and [`crate::libc`] that
//! contains inline assembly. Port I/O is `unsafe` (a write to the wrong port can do anything);
//! the read-only instructions (CPUID, RDTSC, RDRAND, reading RFLAGS/CR2) are safe.

use core::arch::asm;

/// Writes a byte to an I/O port.
///
/// # Safety
/// The caller must own the device behind `port` and the write must be valid for it.
#[inline]
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller guarantees the port write is valid; `out` touches no memory.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

/// Writes a 32-bit value to an I/O port.
///
/// # Safety
/// As [`outb`].
#[inline]
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller guarantees the port write is valid; `out` touches no memory.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    }
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// The caller must own the device behind `port` (a read can have side effects).
#[inline]
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the caller guarantees the port read is valid; `in` touches no memory.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    }
    value
}

/// Executes CPUID for `leaf` (sub-leaf 0).
#[inline]
pub fn cpuid(leaf: u32) -> core::arch::x86_64::CpuidResult {
    core::arch::x86_64::__cpuid_count(leaf, 0)
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is available on every x86_64 CPU (CR4.TSD is clear: we run in ring 0).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Returns whether the CPU implements RDRAND (CPUID.1:ECX bit 30).
pub fn has_rdrand() -> bool {
    cpuid(1).ecx & (1 << 30) != 0
}

/// Returns 64 bits from RDRAND, retrying a few times as Intel recommends; `None` when the
/// hardware keeps failing.
///
/// The caller must have checked [`has_rdrand`]; without it this function returns `None`.
pub fn rdrand64() -> Option<u64> {
    if !has_rdrand() {
        return None;
    }
    for _ in 0..10 {
        let value: u64;
        let ok: u8;
        // SAFETY: RDRAND exists (checked above); it only writes the output register and CF.
        unsafe {
            asm!("rdrand {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok, options(nomem, nostack))
        }
        if ok != 0 {
            return Some(value);
        }
    }
    None
}

/// Disables interrupts and returns whether they were enabled (`local_irq_save`).
#[inline]
pub fn irq_save() -> bool {
    let flags: u64;
    // SAFETY: reads RFLAGS through the stack and clears IF; no memory of ours is touched. Ring 0
    // may execute CLI.
    unsafe { asm!("pushfq", "pop {f}", "cli", f = out(reg) flags, options(nomem)) }
    flags & (1 << 9) != 0
}

/// Re-enables interrupts if `was_enabled` (`local_irq_restore`).
#[inline]
pub fn irq_restore(was_enabled: bool) {
    if was_enabled {
        // SAFETY: STI only sets IF; this kernel never enables interrupts itself, so this runs
        // only if the boot environment had them on.
        unsafe { asm!("sti", options(nomem, nostack)) }
    }
}

/// Reads RFLAGS.
#[inline]
pub fn rflags() -> u64 {
    let value: u64;
    // SAFETY: PUSHFQ/POP only move RFLAGS through the stack slot they use.
    unsafe { asm!("pushfq", "pop {}", out(reg) value, options(nomem, preserves_flags)) }
    value
}

/// Arms debug register 0 as an instruction breakpoint at `addr` (DR0 = `addr`; DR7: L0 set,
/// R/W0 = 00 execution, LEN0 = 00), or disarms it (`None`: DR7 cleared). DR6 is cleared
/// either way.
#[inline]
pub fn set_exec_breakpoint(addr: Option<u64>) {
    // SAFETY: ring 0 may write the debug registers; this kernel uses no other breakpoint, and
    // a breakpoint only raises #DB, which crate::idt handles.
    unsafe {
        asm!("mov dr6, {}", in(reg) 0u64, options(nomem, nostack, preserves_flags));
        match addr {
            Some(a) => {
                asm!("mov dr0, {}", in(reg) a, options(nomem, nostack, preserves_flags));
                asm!("mov dr7, {}", in(reg) 1u64, options(nomem, nostack, preserves_flags));
            }
            None => asm!("mov dr7, {}", in(reg) 0u64, options(nomem, nostack, preserves_flags)),
        }
    }
}

/// Reads CR2 (the faulting address of the last page fault).
#[inline]
pub fn read_cr2() -> u64 {
    let value: u64;
    // SAFETY: reading CR2 in ring 0 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) }
    value
}

/// Reads CR3: the physical address of the top-level page table (bits 12..52) and flags.
#[inline]
pub fn read_cr3() -> u64 {
    let value: u64;
    // SAFETY: reading CR3 in ring 0 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) value, options(nomem, nostack, preserves_flags)) }
    value
}

/// Invalidates the TLB entry of the page containing `addr` (`invlpg`).
#[inline]
pub fn invlpg(addr: u64) {
    // SAFETY: INVLPG only drops a cached translation; it never changes memory contents. The
    // asm is not `nomem`: it must stay ordered after the page-table writes it follows.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) }
}

/// Flushes every non-global TLB entry by reloading CR3 with its own value (the kernel never
/// sets CR4.PGE, so that is every entry).
#[inline]
pub fn flush_tlb_all() {
    // SAFETY: writing CR3 with the value it holds keeps the same address space and only drops
    // cached translations. Not `nomem`: ordered after the page-table writes it follows.
    unsafe {
        asm!("mov {tmp}, cr3", "mov cr3, {tmp}", tmp = out(reg) _, options(nostack, preserves_flags))
    }
}

/// Halts the CPU forever (interrupts are off, so HLT does not return).
pub fn halt() -> ! {
    loop {
        // SAFETY: HLT in ring 0 with interrupts disabled stops the CPU; no memory is touched.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// QEMU's `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`): writing `v`
/// makes QEMU exit with status `(v << 1) | 1`.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// The value written for success: QEMU exits with 33.
pub const EXIT_SUCCESS: u32 = 0x10;
/// The value written for failure: QEMU exits with 35.
pub const EXIT_FAILURE: u32 = 0x11;

/// Powers the machine off through `isa-debug-exit` with `code` ([`EXIT_SUCCESS`] or
/// [`EXIT_FAILURE`]); halts if the device is missing.
pub fn qemu_exit(code: u32) -> ! {
    // SAFETY: port 0xf4 is the isa-debug-exit device the test script always attaches; on a
    // machine without it the write is ignored and we halt.
    unsafe { outl(DEBUG_EXIT_PORT, code) }
    halt()
}

/// A frame-pointer walk (the kernel is built with `-C force-frame-pointers=yes`): fills `out`
/// with return addresses, innermost first, from the record above `frame` (an address in the
/// asking function's frame) on. Every record must lie in `stack` (`[bottom, top)`) at or above
/// the current stack pointer, 8-aligned and above the previous one, so a corrupt chain ends
/// the walk instead of faulting or looping; on another stack (the double-fault IST stack) the
/// walk gives nothing.
#[inline(never)]
pub fn frame_pointer_walk(out: &mut [usize], frame: usize, stack: (usize, usize)) -> usize {
    let (mut fp, sp): (usize, usize);
    // SAFETY: reads two registers; no memory access.
    unsafe {
        asm!("mov {}, rbp", "mov {}, rsp", out(reg) fp, out(reg) sp,
            options(nomem, nostack, preserves_flags));
    }
    let (bottom, top) = stack;
    if sp < bottom || sp >= top {
        return 0;
    }
    let mut n = 0;
    while n < out.len() {
        if fp < sp || !fp.is_multiple_of(8) || fp > top - 16 {
            break;
        }
        // SAFETY: `[fp, fp + 16)` is inside the live part of the boot stack (checked), which
        // is mapped and readable.
        let (next, ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        if ret < 4096 {
            break;
        }
        if fp > frame {
            out[n] = ret;
            n += 1;
        }
        if next <= fp {
            break;
        }
        fp = next;
    }
    n
}
