//! The kernel's GDT and TSS: ring-3 code and data segments, the stack the CPU switches to when a
//! trap leaves user mode (`TSS.rsp0`), and an IST stack for the double fault.
//!
//! # Layout (selectors as in Linux where user space can see them)
//! | index | selector | descriptor                                                           |
//! |-------|----------|----------------------------------------------------------------------|
//! | 0     | —        | null                                                                 |
//! | 1     | `0x08`   | kernel code, 64-bit, DPL 0 (the boot GDT's; Linux's is `0x10`)       |
//! | 2     | `0x10`   | kernel data, DPL 0 (the boot GDT's)                                  |
//! | 3, 4  | —        | unused (Linux: kernel data `0x18`, 32-bit user code `0x23`)          |
//! | 5     | `0x2b`   | user data, DPL 3: Linux's `__USER_DS` (arch/x86/include/asm/segment.h) |
//! | 6     | `0x33`   | user code, 64-bit, DPL 3: Linux's `__USER_CS`                        |
//! | 7     | —        | unused                                                               |
//! | 8, 9  | `0x40`   | the 64-bit TSS (a 16-byte system descriptor), as Linux's `GDT_ENTRY_TSS` |
//!
//! The kernel code and data selectors stay those of the boot GDT (src/boot.rs), so loading this
//! GDT needs no far jump: the descriptors at `0x08`/`0x10` are the same.
//!
//! # The TSS
//! - `rsp0`: the top of [`TRAP_STACK_SIZE`] bytes of `.bss`. A trap from ring 3 (exception,
//!   `int $0x80`) switches to it and the entry code (src/user/entry.rs) copies the user's
//!   registers off it at once, then continues on the kernel stack that entered user mode. It is
//!   never in use when a trap from user mode arrives (one CPU, interrupts off), so one is enough.
//! - `ist[0]` (IST1): the double-fault stack, so a kernel stack overflow is reported instead of
//!   triple-faulting (Linux's `IST_INDEX_DF`).
//! - The I/O bitmap offset points past the TSS limit: no ports for ring 3 (IOPL is 0), so `in`/
//!   `out` in user mode raise #GP.

/// Selector of the kernel code segment.
pub const KERNEL_CS: u16 = 0x08;
/// Selector of the kernel data segment.
pub const KERNEL_DS: u16 = 0x10;
/// Selector of the user data segment (RPL 3), `__USER_DS`.
pub const USER_DS: u16 = 0x2b;
/// Selector of the 64-bit user code segment (RPL 3), `__USER_CS`.
pub const USER_CS: u16 = 0x33;
/// Selector of the TSS.
pub const TSS_SELECTOR: u16 = 0x40;
/// IST slot (1-based, as in the IDT gate) of the double-fault stack.
pub const IST_DOUBLE_FAULT: u8 = 1;

/// Bytes of the stack a trap from user mode lands on (only the entry code runs on it).
pub const TRAP_STACK_SIZE: usize = 8192;
/// Bytes of the double-fault stack (the report is formatted on it).
pub const DF_STACK_SIZE: usize = 16384;

/// Bytes of a 64-bit TSS (Intel SDM vol. 3, figure 8-11).
const TSS_BYTES: usize = 104;

core::arch::global_asm!(
    r#"
    .pushsection .data.gdt, "aw", @progbits
    .balign 16
    .global kernel_gdt
kernel_gdt:
    .quad 0                     /* null */
    .quad 0x00af9a000000ffff    /* 0x08 kernel code 64 */
    .quad 0x00cf92000000ffff    /* 0x10 kernel data */
    .quad 0                     /* 0x18 */
    .quad 0                     /* 0x20 */
    .quad 0x00cff2000000ffff    /* 0x28 user data, DPL 3 (selector 0x2b) */
    .quad 0x00affa000000ffff    /* 0x30 user code 64, DPL 3 (selector 0x33) */
    .quad 0                     /* 0x38 */
    .quad 0, 0                  /* 0x40 TSS, filled by gdt::init */
    .global kernel_gdt_end
kernel_gdt_end:
    .popsection

    .pushsection .bss.tss, "aw", @nobits
    .balign 16
    .global kernel_tss
kernel_tss:
    .skip {tss_bytes}
    .balign 16
    .global trap_stack_bottom
trap_stack_bottom:
    .skip {trap_stack}
    .global trap_stack_top
trap_stack_top:
    .balign 16
df_stack_bottom:
    .skip {df_stack}
    .global df_stack_top
df_stack_top:
    .popsection
    "#,
    tss_bytes = const TSS_BYTES,
    trap_stack = const TRAP_STACK_SIZE,
    df_stack = const DF_STACK_SIZE,
    options(att_syntax)
);

extern "C" {
    static mut kernel_gdt: [u64; 10];
    static kernel_gdt_end: u8;
    static mut kernel_tss: [u8; TSS_BYTES];
    static trap_stack_top: u8;
    static df_stack_top: u8;
}

/// The top of the stack `TSS.rsp0` names.
pub fn trap_stack_top_addr() -> u64 {
    // Only the address of the symbol is taken.
    core::ptr::addr_of!(trap_stack_top) as u64
}

/// Writes `v` at byte `off` of the TSS.
fn tss_write_u64(off: usize, v: u64) {
    debug_assert!(off + 8 <= TSS_BYTES);
    // SAFETY: `kernel_tss` is 104 bytes of .bss owned by this module; `off + 8` is inside it.
    // The TSS fields at 4 + 8k are only 4-byte aligned, hence the unaligned write. The CPU reads
    // the TSS only on a privilege change or an IST switch, neither of which can happen while
    // this kernel code runs (one CPU, interrupts off).
    unsafe {
        core::ptr::addr_of_mut!(kernel_tss)
            .cast::<u8>()
            .add(off)
            .cast::<u64>()
            .write_unaligned(v)
    }
}

/// Fills the TSS and its descriptor, loads the GDT and the task register.
///
/// Call once, early (before any ring-3 entry); idempotence is not needed.
pub fn init() {
    let rsp0 = trap_stack_top_addr();
    // Only the address of the symbol is taken.
    let ist1 = core::ptr::addr_of!(df_stack_top) as u64;
    tss_write_u64(4, rsp0); // rsp0
    tss_write_u64(36, ist1); // ist[0] = IST1
                             // The I/O map base (u16 at offset 102) beyond the limit: no I/O bitmap.
                             // SAFETY: offset 102..104 is inside the TSS (see tss_write_u64).
    unsafe {
        core::ptr::addr_of_mut!(kernel_tss)
            .cast::<u8>()
            .add(102)
            .cast::<u16>()
            .write_unaligned(TSS_BYTES as u16)
    }
    let base = core::ptr::addr_of!(kernel_tss) as u64;
    let limit = (TSS_BYTES - 1) as u64;
    // 64-bit TSS descriptor (SDM vol. 3, figure 8-4): type 9 (available 64-bit TSS), present.
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89u64 << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    let high = base >> 32;
    // SAFETY: the GDT is this module's .data; entries 8 and 9 are the TSS slot, not yet loaded.
    unsafe {
        let gdt = core::ptr::addr_of_mut!(kernel_gdt).cast::<u64>();
        gdt.add(8).write_volatile(low);
        gdt.add(9).write_volatile(high);
    }
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let start = core::ptr::addr_of!(kernel_gdt) as u64;
    // Only the address of the symbol is taken.
    let end = core::ptr::addr_of!(kernel_gdt_end) as u64;
    let ptr = Pointer {
        limit: (end - start - 1) as u16,
        base: start,
    };
    // SAFETY: the GDT lives in .data for the kernel's life and keeps the boot GDT's kernel code
    // (0x08) and data (0x10) descriptors at the same selectors, so the loaded CS/DS/SS stay
    // valid; LTR marks the TSS descriptor busy (a write to the GDT, which is writable .data).
    unsafe {
        core::arch::asm!(
            "lgdt [{ptr}]",
            "ltr {sel:x}",
            ptr = in(reg) &ptr,
            sel = in(reg) TSS_SELECTOR,
            options(nostack, preserves_flags)
        )
    }
}
