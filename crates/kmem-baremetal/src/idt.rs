//! CPU exception handlers: report and exit.
//!
//! Interrupts are never enabled, so only the 32 architectural exception vectors get gates. Each
//! stub pushes a zero error code when the CPU does not push one, then the vector number, and
//! jumps to a common path that calls [`exception_handler`] with a pointer to that frame. The
//! handler prints the vector, error code, RIP, RSP and CR2 on COM1 (without locks: the fault
//! may have happened under the console lock) and exits QEMU with the failure status — a page
//! fault in a self-test is a failed run, not a hang or a silent triple fault.
//!
//! A fault while the stack is exhausted cannot be reported (there is no IST stack); QEMU then
//! resets, which `-no-reboot` turns into an exit that the test script reports as a failure.

use core::fmt::Write;

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
    mov %rsp, %rdi              /* &ExceptionFrame */
    and $-16, %rsp
    call exception_handler
    ud2
    .popsection

    .pushsection .rodata.isr, "a"
    .balign 8
    .global isr_stub_table
isr_stub_table:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad isr_stub_\v
    .endr
    .popsection
    "#,
    options(att_syntax)
);

extern "C" {
    static isr_stub_table: [u64; 32];
}

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

    fn interrupt_gate(handler: u64) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: 0x08, // the 64-bit code segment of boot.rs's GDT
            ist: 0,
            type_attr: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            zero: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 32]);

/// The IDT; written once by [`init`], then only read by the CPU.
static IDT: SpinLock<Idt> = SpinLock::new(Idt([Gate::MISSING; 32]));

/// Fills the IDT with the 32 exception stubs and loads it.
pub fn init() {
    let mut idt = IDT.lock();
    for (v, gate) in idt.0.iter_mut().enumerate() {
        // SAFETY: `isr_stub_table` is the 32-entry table defined in the assembly above.
        let handler = unsafe { isr_stub_table[v] };
        *gate = Gate::interrupt_gate(handler);
    }
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
        _ => "reserved",
    }
}

/// Reports a CPU exception and exits QEMU with the failure status.
#[no_mangle]
extern "C" fn exception_handler(frame: &ExceptionFrame) -> ! {
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
