//! The boot path: PVH entry (32-bit protected mode) → the kernel's own page tables → long mode →
//! [`crate::kernel_main`].
//!
//! # The PVH boot protocol
//! QEMU's `-kernel` loads an ELF image that carries a `XEN_ELFNOTE_PHYS32_ENTRY` note (type 18,
//! owner "Xen", xen/include/public/elfnote.h) and jumps to the physical address in that note with
//! (xen/include/public/arch-x86/hvm/start_info.h, "Start of day structure"):
//! - 32-bit protected mode, paging off, flat 4 GiB code and data segments, interrupts off;
//! - `%ebx` = physical address of `struct hvm_start_info` (parsed in [`crate::pvh`]).
//!
//! # What `pvh_start32` does, in order
//! 1. zeroes `.bss` (boot page tables, boot stack, Rust statics) — nothing is on the stack yet;
//! 2. checks CPUID for long mode (halts with a message on COM1 when missing);
//! 3. builds 4-level page tables in `.bss`: `PML4[0]` and `PML4[273]` (the slot of
//!    [`DIRECT_MAP_BASE`]) → one PDPT whose first [`IDENTITY_GIB`] entries point at page
//!    directories of 2 MiB pages: physical `[0, IDENTITY_GIB GiB)` appears both identity-mapped
//!    and at [`DIRECT_MAP_BASE`]; 2 MiB pages need no CPU feature beyond long mode (1 GiB pages
//!    would need `pdpe1gb`);
//! 4. CR4.PAE | CR4.OSFXSR | CR4.OSXMMEXCPT (SSE usable: the prebuilt `core` uses SSE),
//!    CR3, EFER.LME (and EFER.NXE when CPUID says NX exists), CR0.PG | CR0.MP with CR0.EM and
//!    CR0.TS clear;
//! 5. loads a 64-bit GDT and far-jumps to 64-bit code, which loads the data segments, sets the
//!    stack, `fninit`s the x87 state and calls `kernel_main(start_info_paddr)`.
//!
//! Interrupts stay disabled for the whole life of the kernel; only the CPU exceptions have
//! handlers ([`crate::idt`]), and they report and exit.
//!
//! # Invariants after boot
//! Virtual address = physical address, and `DIRECT_MAP_BASE` + physical address maps the same
//! byte, for every physical address below [`identity_map_end`];
//! the page tables live inside the kernel image (`__kernel_start..__kernel_end`), so reserving
//! the image in memblock reserves them too.

/// Gigabytes of physical address space identity-mapped by the boot page tables.
///
/// 64 GiB covers every `--mem` the test script is used with (QEMU places RAM above 4 GiB at
/// `4 GiB..4 GiB + (mem - lowmem)`); it costs 64 page directories (256 KiB of `.bss`).
pub const IDENTITY_GIB: u64 = 64;

/// Where the direct map of all physical memory starts: Linux's x86_64 `PAGE_OFFSET` with
/// 4-level paging (`__PAGE_OFFSET_BASE_L4`, arch/x86/include/asm/page_64_types.h).
///
/// The boot page tables map physical `[0, IDENTITY_GIB GiB)` twice: at 0 (where the kernel image
/// runs, linked with the small code model) and here (what kmem uses as the platform's direct
/// map, so addresses kmem prints are the addresses Linux would show). Using 0 as the direct map
/// base would make kmem form pointers by offsetting the null pointer.
pub const DIRECT_MAP_BASE: u64 = 0xffff_8880_0000_0000;

/// Size of the boot stack (the only stack: the kernel has a single thread).
pub const BOOT_STACK_SIZE: usize = 512 * 1024;

/// The end (exclusive) of the identity map built at boot.
pub const fn identity_map_end() -> u64 {
    IDENTITY_GIB << 30
}

core::arch::global_asm!(
    r#"
    /* ---- PVH entry note: XEN_ELFNOTE_PHYS32_ENTRY (xen/include/public/elfnote.h) ----
     * QEMU (hw/i386/x86.c, read_pvh_start_addr) reads the descriptor of a 64-bit ELF as a
     * 64-bit address, as Linux's arch/x86/platform/pvh/head.S emits it. */
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4                 /* n_namesz: "Xen\0" */
    .long 8                 /* n_descsz */
    .long 18                /* n_type: XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad pvh_start32
    .popsection

    /* ---- page tables, stack (zeroed by pvh_start32) ---- */
    .pushsection .bss.boot, "aw", @nobits
    .balign 4096
    .global boot_pml4
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
    .global boot_pd
boot_pd:
    .skip 4096 * {identity_gib}
    .balign 16
    .global boot_stack_bottom
boot_stack_bottom:
    .skip {stack_size}
    .global boot_stack_top
boot_stack_top:
    .popsection

    /* ---- 64-bit GDT: null, code (0x08), data (0x10) ---- */
    .pushsection .rodata.boot, "a"
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: present, ring 0, code, L=1 */
    .quad 0x00cf92000000ffff    /* 0x10: present, ring 0, data, writable */
boot_gdt_end:
    .balign 8
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt
no_long_mode_msg:
    .asciz "kmem-baremetal: this CPU has no long mode\n"
    .popsection

    .pushsection .text.boot, "ax", @progbits
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov %ebx, %esi                  /* %esi = struct hvm_start_info * (kept until kernel_main) */

    /* 1. zero .bss */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb
    mov $boot_stack_top, %esp

    /* 2. long mode? CPUID 0x80000001 EDX bit 29 (LM); keep EDX in %ebp for NX (bit 20) */
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb .Lno_long_mode
    mov $0x80000001, %eax
    cpuid
    mov %edx, %ebp
    bt $29, %edx
    jnc .Lno_long_mode

    /* 3. page tables: PML4[0] and PML4[direct_map_slot] -> the same PDPT */
    mov $boot_pdpt, %eax
    or $0x3, %eax                   /* present | writable */
    mov %eax, boot_pml4
    mov %eax, boot_pml4 + 8 * {direct_map_slot}
    /* PDPT[i] -> boot_pd + i * 4096, for i < identity_gib */
    mov $boot_pdpt, %edi
    mov $boot_pd, %eax
    or $0x3, %eax
    mov ${identity_gib}, %ecx
1:  mov %eax, (%edi)
    add $4096, %eax
    add $8, %edi
    loop 1b
    /* PD entry j maps physical j * 2 MiB: low word (j << 21) | PS | RW | P, high word j >> 11 */
    mov $boot_pd, %edi
    xor %ebx, %ebx
    mov $({identity_gib} * 512), %ecx
2:  mov %ebx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, (%edi)
    mov %ebx, %eax
    shr $11, %eax
    mov %eax, 4(%edi)
    add $8, %edi
    inc %ebx
    loop 2b

    /* 4. CR4.PAE | CR4.OSFXSR | CR4.OSXMMEXCPT */
    mov %cr4, %eax
    or $((1 << 5) | (1 << 9) | (1 << 10)), %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    /* EFER (MSR 0xc0000080): LME, and NXE when NX exists */
    mov $0xc0000080, %ecx
    rdmsr
    or $(1 << 8), %eax
    bt $20, %ebp
    jnc 3f
    or $(1 << 11), %eax
3:  wrmsr
    /* CR0: PG | MP | PE; clear EM and TS */
    mov %cr0, %eax
    and $~((1 << 2) | (1 << 3)), %eax
    or $((1 << 31) | (1 << 1) | 1), %eax
    mov %eax, %cr0

    /* 5. 64-bit GDT, far jump into long mode */
    lgdt boot_gdt_ptr
    ljmp $0x08, $.Lstart64

.Lno_long_mode:
    mov $no_long_mode_msg, %esi
4:  movb (%esi), %al
    test %al, %al
    jz 6f
    mov $0x3fd, %dx                 /* COM1 line status: wait for THR empty */
5:  inb %dx, %al
    test $0x20, %al
    jz 5b
    movb (%esi), %al
    mov $0x3f8, %dx
    outb %al, %dx
    inc %esi
    jmp 4b
6:  hlt
    jmp 6b

    .code64
.Lstart64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    mov $boot_stack_top, %rsp
    xor %ebp, %ebp
    fninit
    mov %esi, %edi                  /* kernel_main(start_info_paddr): zero-extended */
    call kernel_main
7:  hlt
    jmp 7b
    .popsection
    "#,
    identity_gib = const IDENTITY_GIB,
    direct_map_slot = const (DIRECT_MAP_BASE >> 39) & 511,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);

extern "C" {
    static __kernel_start: u8;
    static __text_start: u8;
    static __rodata_start: u8;
    static __data_start: u8;
    static __bss_start: u8;
    static __kernel_end: u8;
    static boot_pml4: u8;
    static boot_pd: u8;
    static boot_stack_bottom: u8;
}

/// The physical layout of the kernel image, from the symbols of linker.ld. Each section's size
/// runs to the start of the next one (alignment padding included), so the sizes add up to the
/// whole image.
#[derive(Clone, Copy, Debug)]
pub struct ImageLayout {
    /// `__kernel_start` (= `__text_start`).
    pub start: u64,
    /// `.text` bytes.
    pub text: u64,
    /// `.rodata` + the PVH note bytes.
    pub rodata: u64,
    /// `.data` bytes.
    pub data: u64,
    /// `.bss` bytes (boot page tables and boot stack included).
    pub bss: u64,
}

impl ImageLayout {
    /// The end (exclusive) of the image.
    pub fn end(&self) -> u64 {
        self.start + self.text + self.rodata + self.data + self.bss
    }
}

/// Returns the layout of the kernel image.
pub fn image_layout() -> ImageLayout {
    // Only the addresses of the linker-defined symbols are taken, never their contents. They
    // go through `black_box` because the compiler assumes distinct symbols have distinct
    // addresses (it would fold `__kernel_start == __text_start` to false).
    let [start, text, rodata, data, bss, end] = core::hint::black_box([
        core::ptr::addr_of!(__kernel_start),
        core::ptr::addr_of!(__text_start),
        core::ptr::addr_of!(__rodata_start),
        core::ptr::addr_of!(__data_start),
        core::ptr::addr_of!(__bss_start),
        core::ptr::addr_of!(__kernel_end),
    ])
    .map(|p| p as u64);
    assert_eq!(start, text, "linker.ld: .text must open the image");
    ImageLayout {
        start,
        text: rodata - text,
        rodata: data - rodata,
        data: bss - data,
        bss: end - bss,
    }
}

/// Returns the physical range `[start, end)` of the kernel image, `.bss` included (boot page
/// tables and stack are in it).
pub fn kernel_image() -> (u64, u64) {
    let l = image_layout();
    (l.start, l.end())
}

/// Returns the physical range `[start, end)` of the boot page tables (a part of the image).
pub fn boot_page_tables() -> (u64, u64) {
    // Only the addresses of the symbols defined in the assembly above are taken.
    (
        core::ptr::addr_of!(boot_pml4) as u64,
        core::ptr::addr_of!(boot_pd) as u64 + IDENTITY_GIB * 4096,
    )
}

/// The value [`paint_stack`] fills the unused stack with.
const STACK_PAINT: u64 = 0x57ac_57ac_57ac_57ac;

/// Bytes left unpainted below the current stack pointer: the red zone (128 bytes) and the
/// frames of `paint_stack` itself.
const PAINT_MARGIN: usize = 4096;

fn stack_bottom() -> *mut u64 {
    // Only the address of the symbol is taken.
    core::ptr::addr_of!(boot_stack_bottom)
        .cast::<u64>()
        .cast_mut()
}

/// The boot stack, `[bottom, top)`.
pub fn boot_stack() -> (usize, usize) {
    let bottom = stack_bottom() as usize;
    (bottom, bottom + BOOT_STACK_SIZE)
}

/// Fills the boot stack below the current frame with a pattern, so that
/// [`stack_high_water`] can later tell how deep the stack ever went.
pub fn paint_stack() {
    let here = core::hint::black_box(0u8);
    let sp = core::ptr::addr_of!(here) as usize;
    let bottom = stack_bottom();
    let words = (sp - PAINT_MARGIN - bottom as usize) / 8;
    for i in 0..words {
        // SAFETY: `[bottom, sp - PAINT_MARGIN)` is the unused part of the boot stack (it grows
        // down from boot_stack_top and nothing lives below the current frame but the red zone,
        // which the margin leaves alone).
        unsafe { bottom.add(i).write_volatile(STACK_PAINT) };
    }
}

/// Returns the most stack ever used, in bytes, as seen from the paint left by
/// [`paint_stack`] (the deepest overwritten word from the bottom).
pub fn stack_high_water() -> usize {
    let bottom = stack_bottom();
    let words = BOOT_STACK_SIZE / 8;
    // SAFETY: reads of the boot stack's own words below the top; the lowest words are the
    // painted ones, so this stops long before reaching live frames.
    let untouched = (0..words)
        .take_while(|&i| unsafe { bottom.add(i).read_volatile() } == STACK_PAINT)
        .count();
    BOOT_STACK_SIZE - untouched * 8
}
