//! Entering ring 3 and coming back: `enter_user` / `user_trap`.
//!
//! The model is a run loop, as a hypervisor's `VMRUN` or L4's IPC: the kernel calls
//! [`enter_user`] with the task's saved registers; it returns when the task traps (exception or
//! `int $0x80`), with the registers at the trap saved back and the vector as the result. The
//! trap is then handled by ordinary Rust code on the kernel stack (src/user/mod.rs), which
//! decides to resume the task (enter again), run another one, or end it. Nothing runs in ring 0
//! "on behalf" of a task between traps, so there is no per-task kernel stack to switch.
//!
//! `enter_user` (System V ABI, `rdi` = `*mut UserRegs`):
//! 1. pushes the callee-saved registers and saves RSP and the pointer in two words of `.bss`;
//! 2. builds an `iretq` frame (SS, RSP, RFLAGS, CS, RIP) from the registers, loads every general
//!    register from them and executes `iretq` to CPL 3.
//!
//! A trap from ring 3 switches to `TSS.rsp0` (src/gdt.rs); the stub pushes error code and vector
//! (src/idt.rs) and `isr_common` jumps to `user_trap`, which pushes the 15 general registers —
//! after which the stack holds exactly a [`UserRegs`] — copies it to the saved pointer, restores
//! the saved kernel RSP and callee-saved registers and returns the vector from `enter_user`.
//! `cld` comes first: user code may leave RFLAGS.DF set, and Rust assumes it clear. The kernel
//! data selector is reloaded into SS, DS and ES (the ring change left them null — harmless in
//! 64-bit mode, but exception reports would show `SS 0x0`).
//!
//! The FPU/SSE state is not switched: the user programs of this kernel use only the general
//! registers (src/user/progs.rs).

use core::arch::asm;

/// The user registers at a trap, in the order `user_trap` leaves them on the stack.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// The trap vector (filled by the stub).
    pub vector: u64,
    /// The CPU's error code, or 0.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Words in [`UserRegs`].
const REGS_WORDS: usize = core::mem::size_of::<UserRegs>() / 8;
const _: () = assert!(REGS_WORDS == 22);

core::arch::global_asm!(
    r#"
    .pushsection .bss.user_entry, "aw", @nobits
    .balign 8
user_kernel_rsp:
    .skip 8
user_regs_ptr:
    .skip 8
    .global user_trap_cr2
user_trap_cr2:
    .skip 8
    .popsection

    .pushsection .text.user_entry, "ax", @progbits
    .global enter_user
enter_user:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, user_kernel_rsp(%rip)
    mov %rdi, user_regs_ptr(%rip)
    pushq 168(%rdi)             /* ss */
    pushq 160(%rdi)             /* rsp */
    pushq 152(%rdi)             /* rflags */
    pushq 144(%rdi)             /* cs */
    pushq 136(%rdi)             /* rip */
    mov 0(%rdi), %r15
    mov 8(%rdi), %r14
    mov 16(%rdi), %r13
    mov 24(%rdi), %r12
    mov 32(%rdi), %r11
    mov 40(%rdi), %r10
    mov 48(%rdi), %r9
    mov 56(%rdi), %r8
    mov 64(%rdi), %rbp
    mov 80(%rdi), %rsi
    mov 88(%rdi), %rdx
    mov 96(%rdi), %rcx
    mov 104(%rdi), %rbx
    mov 112(%rdi), %rax
    mov 72(%rdi), %rdi
    iretq

    .global user_trap
user_trap:
    cld
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    /* CR2 before any access that may fault: the copy below writes the task's registers into
       kernel memory, which kmemcheck may have hidden (its #PF overwrites CR2). */
    mov %cr2, %rax
    mov %rax, user_trap_cr2(%rip)
    mov %rsp, %rsi
    mov user_regs_ptr(%rip), %rdi
    mov ${words}, %ecx
    rep movsq
    mov 120(%rsp), %rax         /* the vector */
    mov user_kernel_rsp(%rip), %rsp
    mov ${kernel_ds}, %ecx      /* iretq to ring 3 nulled DS/ES; the trap loaded a null SS */
    mov %ecx, %ss
    mov %ecx, %ds
    mov %ecx, %es
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret
    .popsection
    "#,
    words = const REGS_WORDS,
    kernel_ds = const crate::gdt::KERNEL_DS,
    options(att_syntax)
);

extern "C" {
    fn enter_user(regs: *mut UserRegs) -> u64;
    static user_trap_cr2: u64;
}

/// CR2 as it was when the last trap from user mode entered the kernel (the faulting address
/// of a user page fault), saved before the kernel touched any memory that may fault.
pub fn trap_cr2() -> u64 {
    // SAFETY: a quad of the trap path's .bss, written only by `user_trap` (one CPU, no
    // concurrent trap while Rust code runs).
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(user_trap_cr2)) }
}

/// Runs user code with `regs` until it traps; returns the vector and leaves the registers at
/// the trap in `regs`.
///
/// # Safety
/// `regs.cs`/`regs.ss` must be the user selectors ([`crate::gdt::USER_CS`]/`USER_DS`) and
/// `regs.rflags` must have IF and IOPL clear (the kernel runs with interrupts off and has no
/// interrupt handlers); CR3 must hold page tables that map the kernel as the boot tables do
/// (the trap path runs with them) and in which every user-accessible page belongs to the task.
pub unsafe fn run_user(regs: &mut UserRegs) -> u64 {
    // SAFETY: the caller guarantees a ring-3 frame and page tables under which the kernel keeps
    // running when the task traps; `enter_user` preserves the callee-saved registers and
    // returns normally, writing only `*regs` and its two private words.
    unsafe { enter_user(regs) }
}

/// Loads CR3 (switches address space; flushes every non-global TLB entry).
///
/// # Safety
/// `root` must be a PML4 that maps the kernel (image, direct map, vmalloc space, stacks) as the
/// current one does.
pub unsafe fn write_cr3(root: u64) {
    // SAFETY: by the caller's guarantee the kernel's own mappings are unchanged by the switch.
    unsafe { asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags)) }
}
