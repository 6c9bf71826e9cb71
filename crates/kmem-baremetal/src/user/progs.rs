//! The user test programs: position-independent x86_64 assembly, assembled into the kernel's
//! `.rodata` by the Rust compiler's assembler (`global_asm!`), each between a `_start` and an
//! `_end` label. They are never executed where they lie: loading a program copies its bytes
//! into a page of the task's text mapping (read + execute, user) at [`super::TEXT_BASE`], and
//! the task starts at its first byte.
//!
//! Why assembly rather than Rust functions: a compiled Rust function may call into the kernel's
//! text (`memcpy`, panics, …), which user mode cannot reach; these programs use only relative
//! jumps, RIP-relative data inside their own bytes, the stack and the general registers (no
//! x87/SSE: the kernel does not switch that state).
//!
//! ABI: the task starts with `rdi`, `rsi`, `rdx` = the three arguments the kernel test gives,
//! `rsp` = the top of the stack mapping. System calls are `int $0x80` with Linux's x86_64
//! numbers and registers (`rax` = number, `rdi`, `rsi`, `rdx`, `r10` = arguments, result in
//! `rax`; every other register is preserved): write 1, sched_yield 24, getpid 39, fork 57,
//! exit 60, wait4 61.

core::arch::global_asm!(
    r#"
    .pushsection .rodata.user_progs, "a", @progbits

/* exit(code) in %edi */
.macro SYS_EXIT
    mov $60, %eax
    int $0x80
    ud2
.endm

/* demand(base, pages): for every page, read the first word (must be 0: a fresh anonymous
 * page reads as zeroes), then write base-relative values; then read everything back.
 * exit 0 = all good, 2 = a page did not read as zero, 3 = a value did not read back. */
    .global user_prog_demand_start
user_prog_demand_start:
    mov %rdi, %r8
    mov %rsi, %r9
    xor %ecx, %ecx
1:  cmp %r9, %rcx
    jae 2f
    mov %rcx, %rax
    shl $12, %rax
    add %r8, %rax
    cmpq $0, (%rax)
    jne 8f
    cmpq $0, 4088(%rax)
    jne 8f
    mov %rax, %rdx
    xor $0x5a5a, %rdx
    mov %rdx, (%rax)
    mov %rdx, 4088(%rax)
    inc %rcx
    jmp 1b
2:  xor %ecx, %ecx
3:  cmp %r9, %rcx
    jae 4f
    mov %rcx, %rax
    shl $12, %rax
    add %r8, %rax
    mov %rax, %rdx
    xor $0x5a5a, %rdx
    cmp %rdx, (%rax)
    jne 9f
    cmp %rdx, 4088(%rax)
    jne 9f
    inc %rcx
    jmp 3b
4:  xor %edi, %edi
    SYS_EXIT
8:  mov $2, %edi
    SYS_EXIT
9:  mov $3, %edi
    SYS_EXIT
    .global user_prog_demand_end
user_prog_demand_end:

/* cow(base): write A at base, fork. The child checks it sees A, writes B (a COW fault), checks
 * B and exits 42. The parent waits for the child (wait4), checks the status word (42 << 8)
 * and that it still sees A, writes C (its page is no longer shared: reused, no copy) and
 * exits 0. Failures: parent 1 (saw the child's write) 3 (wait4) 4 (status), child 5. */
    .global user_prog_cow_start
user_prog_cow_start:
    mov %rdi, %r12
    movabs $0x1111111111111111, %rax
    mov %rax, (%r12)
    mov $57, %eax               /* fork */
    int $0x80
    test %rax, %rax
    jz 5f
    js 6f
    mov %rax, %r13              /* the child's pid */
    sub $16, %rsp
    movq $0, (%rsp)
    mov $61, %eax               /* wait4(pid, &status, 0, NULL) */
    mov %r13, %rdi
    mov %rsp, %rsi
    xor %edx, %edx
    xor %r10d, %r10d
    int $0x80
    cmp %r13, %rax
    jne 7f
    cmpl $(42 << 8), (%rsp)
    jne 8f
    movabs $0x1111111111111111, %rax
    cmp %rax, (%r12)
    jne 9f
    movabs $0x3333333333333333, %rax
    mov %rax, (%r12)
    cmp %rax, (%r12)
    jne 9f
    xor %edi, %edi
    SYS_EXIT
5:  movabs $0x1111111111111111, %rax
    cmp %rax, (%r12)
    jne 6f
    movabs $0x2222222222222222, %rax
    mov %rax, (%r12)
    cmp %rax, (%r12)
    jne 6f
    mov $42, %edi
    SYS_EXIT
6:  mov $5, %edi
    SYS_EXIT
7:  mov $3, %edi
    SYS_EXIT
8:  mov $4, %edi
    SYS_EXIT
9:  mov $1, %edi
    SYS_EXIT
    .global user_prog_cow_end
user_prog_cow_end:

/* load(addr): reads a word at addr, then exits 0 (reached only if the read did not fault). */
    .global user_prog_load_start
user_prog_load_start:
    mov (%rdi), %rax
    xor %edi, %edi
    SYS_EXIT
    .global user_prog_load_end
user_prog_load_end:

/* read_then_store(addr): reads a word at addr (must work), then stores to it; exits 0 only
 * if the store did not fault. */
    .global user_prog_store_start
user_prog_store_start:
    mov (%rdi), %rax
    movq $7, (%rdi)
    xor %edi, %edi
    SYS_EXIT
    .global user_prog_store_end
user_prog_store_end:

/* hello: write(1, msg, len) (must return len), getpid, exit(pid). Exit 1 if write failed. */
    .global user_prog_hello_start
user_prog_hello_start:
    mov $1, %eax
    mov $1, %edi
    lea 1f(%rip), %rsi
    mov $(2f - 1f), %edx
    int $0x80
    cmp $(2f - 1f), %rax
    jne 3f
    mov $39, %eax               /* getpid */
    int $0x80
    mov %eax, %edi
    SYS_EXIT
3:  mov $1, %edi
    SYS_EXIT
1:  .ascii "hello from ring 3\n"
2:
    .global user_prog_hello_end
user_prog_hello_end:

/* yield(n, tag): n times: write the one-byte tag (its low byte) to fd 1, sched_yield; exit 0. */
    .global user_prog_yield_start
user_prog_yield_start:
    mov %rdi, %r12
    push %rsi
1:  test %r12, %r12
    jz 2f
    mov $1, %eax
    mov $1, %edi
    mov %rsp, %rsi
    mov $1, %edx
    int $0x80
    mov $24, %eax
    int $0x80
    dec %r12
    jmp 1b
2:  xor %edi, %edi
    SYS_EXIT
    .global user_prog_yield_end
user_prog_yield_end:

/* cli: a privileged instruction in ring 3 (#GP). */
    .global user_prog_cli_start
user_prog_cli_start:
    cli
    xor %edi, %edi
    SYS_EXIT
    .global user_prog_cli_end
user_prog_cli_end:

/* single_step: set RFLAGS.TF; the instruction after popf completes, then #DB. */
    .global user_prog_step_start
user_prog_step_start:
    pushf
    orq $0x100, (%rsp)
    popf
    nop
    nop
    xor %edi, %edi
    SYS_EXIT
    .global user_prog_step_end
user_prog_step_end:

/* badfault(addr, len): write(1, addr, len) with a buffer the task cannot read: must return
 * -EFAULT (-14) without killing the task; exit 0 if it did, 1 otherwise. */
    .global user_prog_efault_start
user_prog_efault_start:
    mov %rsi, %rdx
    mov %rdi, %rsi
    mov $1, %edi
    mov $1, %eax
    int $0x80
    cmp $-14, %rax
    jne 1f
    xor %edi, %edi
    SYS_EXIT
1:  mov $1, %edi
    SYS_EXIT
    .global user_prog_efault_end
user_prog_efault_end:

/* forkexit: fork; the child exits 7 at once; the parent exits 0 without waiting (the child
 * is reaped by the kernel test). */
    .global user_prog_forkexit_start
user_prog_forkexit_start:
    mov $57, %eax
    int $0x80
    test %rax, %rax
    jz 1f
    xor %edi, %edi
    SYS_EXIT
1:  mov $7, %edi
    SYS_EXIT
    .global user_prog_forkexit_end
user_prog_forkexit_end:

/* swapfork(base, pages): writes every page, forks; child and parent both read every page back
 * (the child exits 3 on a mismatch, 0 otherwise); the parent waits for the child, exits 4 if
 * its status is not 0, 3 on its own mismatch, 0 when all is well. */
    .global user_prog_swapfork_start
user_prog_swapfork_start:
    mov %rdi, %r8
    mov %rsi, %r9
    xor %ecx, %ecx
1:  cmp %r9, %rcx
    jae 2f
    mov %rcx, %rax
    shl $12, %rax
    add %r8, %rax
    mov %rax, %rdx
    xor $0xa5a5, %rdx
    mov %rdx, (%rax)
    mov %rdx, 2048(%rax)
    inc %rcx
    jmp 1b
2:  mov $57, %eax
    int $0x80
    mov %rax, %r13              /* 0 in the child */
    xor %ecx, %ecx
3:  cmp %r9, %rcx
    jae 4f
    mov %rcx, %rax
    shl $12, %rax
    add %r8, %rax
    mov %rax, %rdx
    xor $0xa5a5, %rdx
    cmp %rdx, (%rax)
    jne 8f
    cmp %rdx, 2048(%rax)
    jne 8f
    inc %rcx
    jmp 3b
4:  test %r13, %r13
    jz 7f
    sub $16, %rsp
    movq $-1, (%rsp)
    mov $61, %eax
    mov %r13, %rdi
    mov %rsp, %rsi
    xor %edx, %edx
    xor %r10d, %r10d
    int $0x80
    cmpl $0, (%rsp)
    jne 9f
7:  xor %edi, %edi
    SYS_EXIT
8:  mov $3, %edi
    SYS_EXIT
9:  mov $4, %edi
    SYS_EXIT
    .global user_prog_swapfork_end
user_prog_swapfork_end:

/* forktree(depth, base): every process writes its pid at base (a COW write after each fork),
 * forks two children of depth - 1 unless depth is 0, reaps both with wait4(-1) (each must
 * exit 0), then checks that base still holds its own pid. Exit 0 = all good, 1 = saw another
 * process's write, 4 = a child failed or wait4 did. */
    .global user_prog_forktree_start
user_prog_forktree_start:
    mov %rdi, %r12
    mov %rsi, %r13
1:  mov $39, %eax               /* getpid */
    int $0x80
    mov %rax, %r14
    mov %r14, (%r13)
    test %r12, %r12
    jz 3f
    dec %r12
    mov $57, %eax               /* fork */
    int $0x80
    test %rax, %rax
    jz 1b                       /* the child: a node of depth - 1 */
    js 8f
    mov $57, %eax
    int $0x80
    test %rax, %rax
    jz 1b
    js 8f
    mov $2, %r15
    sub $16, %rsp
2:  movq $-1, (%rsp)
    mov $61, %eax               /* wait4(-1, &status, 0, NULL) */
    mov $-1, %rdi
    mov %rsp, %rsi
    xor %edx, %edx
    xor %r10d, %r10d
    int $0x80
    test %rax, %rax
    js 8f
    cmpl $0, (%rsp)
    jne 8f
    dec %r15
    jnz 2b
3:  cmp %r14, (%r13)
    jne 9f
    xor %edi, %edi
    SYS_EXIT
8:  mov $4, %edi
    SYS_EXIT
9:  mov $1, %edi
    SYS_EXIT
    .global user_prog_forktree_end
user_prog_forktree_end:

    .popsection
    "#,
    options(att_syntax)
);

macro_rules! programs {
    ($($name:ident => $start:ident, $end:ident;)*) => {
        extern "C" {
            $(static $start: u8; static $end: u8;)*
        }
        /// The programs, by name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[allow(non_camel_case_types)]
        pub enum Prog {
            $($name,)*
        }
        impl Prog {
            /// The program's machine code.
            pub fn code(self) -> &'static [u8] {
                let (start, end) = match self {
                    // Only the addresses of the symbols are taken; black_box keeps the
                    // compiler from assuming distinct symbols are unrelated.
                    $(Prog::$name => core::hint::black_box((
                        core::ptr::addr_of!($start),
                        core::ptr::addr_of!($end),
                    )),)*
                };
                let len = end as usize - start as usize;
                // SAFETY: both labels bound one program in .rodata, start before end.
                unsafe { core::slice::from_raw_parts(start, len) }
            }
            /// The name the task gets (`comm`).
            pub fn comm(self) -> &'static str {
                match self {
                    $(Prog::$name => stringify!($name),)*
                }
            }
        }
    };
}

programs! {
    demand => user_prog_demand_start, user_prog_demand_end;
    cow => user_prog_cow_start, user_prog_cow_end;
    load => user_prog_load_start, user_prog_load_end;
    store => user_prog_store_start, user_prog_store_end;
    hello => user_prog_hello_start, user_prog_hello_end;
    yielder => user_prog_yield_start, user_prog_yield_end;
    cli => user_prog_cli_start, user_prog_cli_end;
    step => user_prog_step_start, user_prog_step_end;
    efault => user_prog_efault_start, user_prog_efault_end;
    forkexit => user_prog_forkexit_start, user_prog_forkexit_end;
    swapfork => user_prog_swapfork_start, user_prog_swapfork_end;
    forktree => user_prog_forktree_start, user_prog_forktree_end;
}
