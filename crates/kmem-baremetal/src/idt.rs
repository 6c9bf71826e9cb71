//! CPU exception handlers and the system-call gate: kmemcheck's page faults and single-step
//! traps ([`crate::kmemcheck`]) and KFENCE's kernel page faults are handled and return; user
//! traps go to the task; everything else is reported and exits.
//!
//! Interrupts are never enabled, so only the 32 architectural exception vectors and the
//! system-call vector `0x80` get gates. Each stub pushes a zero error code when the CPU does not
//! push one, then the vector number, and jumps to a common path that looks at the saved CS:
//! - **from ring 3** (CS RPL 3): the trap belongs to the user task that was running; the path
//!   goes on in `user_trap` (src/user/entry.rs), which saves the user's registers and returns to
//!   the kernel code that entered user mode, where the trap is handled in Rust
//!   ([`crate::user`]: page faults to the task's address space, #GP/#DB/… as signals, `int $0x80`
//!   as a system call);
//! - **from ring 0**: the path saves the caller-saved registers and the SSE state and calls
//!   `exception_dispatch` with a pointer to the frame (and to the saved registers). A page
//!   fault on a page kmemcheck hid, and the #DB after the instruction single-stepped over it,
//!   go to [`crate::kmemcheck`] first. A page fault on a page KFENCE protected
//!   goes to the hook kmem registered ([`set_page_fault_hook`], Linux's
//!   `kfence_handle_page_fault` from `page_fault_oops`): KFENCE reports it and unprotects the
//!   page, the common path restores the registers and returns with `iretq`, and the faulting
//!   instruction runs again. (The kernel is built with `-C no-redzone`, see .cargo/config.toml:
//!   the CPU pushes the exception frame just below the interrupted code's stack pointer.) Any
//!   other exception is a kernel bug: [`exception_handler`] prints the vector, error code, RIP,
//!   RSP and CR2 on COM1 (without locks: the fault may have happened under the console lock)
//!   and exits QEMU with the failure status — a page fault in a self-test is a failed run, not
//!   a hang or a silent triple fault.
//!
//! Gates are 64-bit interrupt gates (IF cleared on entry) of DPL 0, except `#BP` (3) and the
//! system call (`0x80`), which have DPL 3 so that `int3` and `int $0x80` work from user mode, as
//! in Linux (arch/x86/kernel/idt.c: `SYSG(X86_TRAP_BP, …)`, `SYSG(IA32_SYSCALL_VECTOR, …)`); any
//! other `int $N` from user mode raises #GP. The double fault (8) runs on its own IST stack
//! ([`crate::gdt`]), so a kernel stack overflow is still reported.

use core::fmt::Write;

use kmem::platform::PageFaultHook;

use crate::arch;
use crate::serial;
use crate::spinlock::SpinLock;

core::arch::global_asm!(
    r#"
    .pushsection .text.isr, "ax", @progbits
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
isr_stub_\v:
    /* vectors 8, 10-14, 17, 21, 29, 30 push an error code (Intel SDM vol. 3, 6.13) */
    .if (\v == 8) || ((\v >= 10) && (\v <= 14)) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30)
    .else
    push $0
    .endif
    push $\v
    jmp isr_common
    .endr

isr_common:
    testb $3, 24(%rsp)          /* CS of the interrupted code: RPL 3 = from user mode */
    jnz user_trap
    /* the registers a C call may change, and %rbx to hold the unaligned stack pointer */
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    push %rbx
    lea 80(%rsp), %rdi          /* &ExceptionFrame (vector, error code, the CPU's frame) */
    mov %rsp, %rsi              /* &SavedRegs (the ten registers pushed above) */
    mov %rsp, %rbx
    and $-16, %rsp
    sub $512, %rsp
    fxsave (%rsp)               /* the SSE state: Rust code uses SSE registers */
    call exception_dispatch     /* returns only for a fault that was handled */
    fxrstor (%rsp)
    mov %rbx, %rsp
    pop %rbx
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    add $16, %rsp               /* vector and error code */
    iretq
isr_stub_syscall:
    push $0
    push ${syscall_vector}
    jmp isr_common
    .popsection

    .pushsection .rodata.isr, "a"
    .balign 8
    .global isr_stub_table
isr_stub_table:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad isr_stub_\v
    .endr
    .global isr_stub_syscall_addr
isr_stub_syscall_addr:
    .quad isr_stub_syscall
    .popsection
    "#,
    syscall_vector = const SYSCALL_VECTOR,
    options(att_syntax)
);

extern "C" {
    static isr_stub_table: [u64; 32];
    static isr_stub_syscall_addr: u64;
}

/// The system-call vector (`IA32_SYSCALL_VECTOR`, arch/x86/include/asm/irq_vectors.h).
pub const SYSCALL_VECTOR: usize = 0x80;

/// What a stub leaves on the stack.
#[repr(C)]
pub struct ExceptionFrame {
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// The registers `isr_common` pushes before calling [`exception_dispatch`], lowest address
/// first (kmemcheck reads RSI, RDI and RCX of a faulting string instruction).
#[repr(C)]
#[allow(dead_code)] // the layout of what the stub pushed: only RSI, RDI and RCX are read
pub struct SavedRegs {
    rbx: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rax: u64,
}

/// One 16-byte interrupt gate.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    zero: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        zero: 0,
    };

    fn interrupt_gate(handler: u64, dpl: u8, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: crate::gdt::KERNEL_CS,
            ist,
            type_attr: 0x8e | (dpl << 5), // present, DPL, 64-bit interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            zero: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

/// The IDT; written once by [`init`], then only read by the CPU.
static IDT: SpinLock<Idt> = SpinLock::new(Idt([Gate::MISSING; 256]));

/// Fills the IDT with the 32 exception stubs and the system-call gate and loads it (after
/// [`crate::gdt::init`]: the double-fault gate names an IST stack of the TSS).
pub fn init() {
    let mut idt = IDT.lock();
    for (v, gate) in idt.0.iter_mut().take(32).enumerate() {
        // SAFETY: `isr_stub_table` is the 32-entry table defined in the assembly above.
        let handler = unsafe { isr_stub_table[v] };
        let dpl = if v == 3 { 3 } else { 0 };
        let ist = if v == 8 {
            crate::gdt::IST_DOUBLE_FAULT
        } else {
            0
        };
        *gate = Gate::interrupt_gate(handler, dpl, ist);
    }
    // SAFETY: a quad defined in the assembly above.
    let syscall = unsafe { isr_stub_syscall_addr };
    idt.0[SYSCALL_VECTOR] = Gate::interrupt_gate(syscall, 3, 0);
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let ptr = Pointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: &*idt as *const Idt as u64,
    };
    // SAFETY: the IDT lives in a static (it outlives the load) and is fully initialised; LIDT
    // only reads the 10-byte pointer.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags))
    }
}

/// Exception names (Intel SDM vol. 3, table 6-1).
fn name(vector: u64) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 error",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD exception",
        0x80 => "int $0x80 system call",
        _ => "reserved",
    }
}

/// The page-fault hook kmem registered (KFENCE), if any.
static PF_HOOK: SpinLock<Option<PageFaultHook>> = SpinLock::new(None);

/// Registers the hook asked about every page fault (`Platform::set_page_fault_hook`).
pub fn set_page_fault_hook(hook: PageFaultHook) {
    *PF_HOOK.lock() = Some(hook);
}

/// Every exception: a page fault kmemcheck or the hook handles returns (the instruction is
/// retried), as does kmemcheck's single-step trap; the rest is reported by
/// [`exception_handler`].
#[no_mangle]
extern "C" fn exception_dispatch(frame: &mut ExceptionFrame, regs: &SavedRegs) {
    // Linux 4.14's order (arch/x86/mm/fault.c): kmemcheck_fault before the rest of the
    // kernel-address fault handling; kmemcheck_trap first in do_debug.
    if frame.vector == 1 && crate::kmemcheck::debug_trap(&mut frame.rflags) {
        return;
    }
    if frame.vector == 14
        && crate::kmemcheck::page_fault(
            arch::read_cr2() as usize,
            frame.error_code,
            frame.rip as usize,
            &mut frame.rflags,
            (regs.rsi, regs.rdi, regs.rcx),
        )
    {
        return;
    }
    if frame.vector == 14 {
        // Copied out: the lock is not held while the hook runs (it may fault again).
        let hook = *PF_HOOK.lock();
        if let Some(h) = hook {
            // X86_PF_WRITE is bit 1 of the error code.
            let is_write = frame.error_code & 2 != 0;
            // SAFETY: the hook was registered by the machine, which lives for the kernel's
            // whole life (it is never dropped).
            let handled = unsafe {
                (h.func)(
                    h.ctx,
                    arch::read_cr2() as usize,
                    is_write,
                    frame.rip as usize,
                )
            };
            if handled {
                return;
            }
        }
    }
    exception_handler(frame)
}

/// Reports a CPU exception and exits QEMU with the failure status.
fn exception_handler(frame: &ExceptionFrame) -> ! {
    let mut out = serial::emergency();
    let _ = writeln!(
        out,
        "\n*** CPU EXCEPTION {} (vector {}) error code {:#x}\n    RIP {:#018x} CS {:#x} RFLAGS {:#x} RSP {:#018x} SS {:#x} CR2 {:#018x}",
        name(frame.vector),
        frame.vector,
        frame.error_code,
        frame.rip,
        frame.cs,
        frame.rflags,
        frame.rsp,
        frame.ss,
        arch::read_cr2()
    );
    crate::selftest::report_crash();
    arch::qemu_exit(arch::EXIT_FAILURE)
}
