//! Protecting single pages of the direct map (KFENCE's guard pages): Linux's
//! `kfence_protect_page` for x86 (arch/x86/include/asm/kfence.h), which clears or sets the
//! present bit of the page's PTE and flushes its TLB entry.
//!
//! The boot page tables map the direct map with 2 MiB pages ([`crate::boot`]); the first time a
//! page inside one is protected, the 2 MiB entry is split into a page table of 512 4 KiB
//! entries with the same flags (Linux splits the direct map's large pages for KFENCE's pool at
//! boot, `arch_kfence_init_pool`). The tables for that come from a static reserve in `.bss`
//! (part of the kernel image, which is identity mapped, so a table's virtual address is its
//! physical address): [`SPLIT_TABLES`] of them, enough for KFENCE's 2 MiB pool, which spans at
//! most two 2 MiB pages. The identity map shares the page directories with the direct map, so
//! the page disappears from both.

use crate::arch;
use crate::spinlock::SpinLock;

/// Page tables available for splitting 2 MiB pages.
const SPLIT_TABLES: usize = 4;

const PRESENT: u64 = 1;
const HUGE: u64 = 1 << 7;
/// Bits 12..52: the physical address in an entry.
const ADDR: u64 = 0x000f_ffff_ffff_f000;
/// The flags a 2 MiB entry passes on to its 4 KiB entries: P, RW, US, PWT, PCD, G and NX (PAT
/// sits at bit 12 in a 2 MiB entry and bit 7 in a 4 KiB one; the boot tables use neither).
const INHERITED: u64 = 0x1f | (1 << 8) | (1 << 63);

#[repr(C, align(4096))]
struct PageTable([u64; 512]);

struct Reserve {
    tables: [PageTable; SPLIT_TABLES],
    used: usize,
}

static RESERVE: SpinLock<Reserve> = SpinLock::new(Reserve {
    tables: [const { PageTable([0; 512]) }; SPLIT_TABLES],
    used: 0,
});

/// Makes the 4 KiB page at direct-map address `va` not present (`present == false`) or
/// present again. Returns `false` when `va` is not mapped by the live tables or a 2 MiB page
/// would need splitting and the reserve is used up (the page is then left as it was).
pub fn set_present(va: u64, present: bool) -> bool {
    let mut r = RESERVE.lock();
    let index = |level: u32| ((va >> (12 + 9 * level)) & 511) as usize;
    // SAFETY: the live tables (CR3's PML4 and what it points to) are below the identity-map end
    // (boot tables in the image's .bss, kmem's tables from memblock/buddy memory), so their
    // physical addresses are valid pointers; the lock serialises every change made here, and
    // nothing else changes the direct map's entries (kmem's own page-table code works in the
    // vmalloc and fixmap slots only).
    unsafe {
        let pml4 = (arch::read_cr3() & ADDR) as *mut u64;
        let e4 = *pml4.add(index(3));
        if e4 & PRESENT == 0 {
            return false;
        }
        let pdpt = (e4 & ADDR) as *mut u64;
        let e3 = *pdpt.add(index(2));
        if e3 & PRESENT == 0 || e3 & HUGE != 0 {
            return false;
        }
        let pde = ((e3 & ADDR) as *mut u64).add(index(1));
        if *pde & PRESENT == 0 {
            return false;
        }
        if *pde & HUGE != 0 {
            if r.used == SPLIT_TABLES {
                return false;
            }
            let i = r.used;
            r.used += 1;
            let base = *pde & 0x000f_ffff_ffe0_0000;
            let flags = *pde & INHERITED;
            let t = &mut r.tables[i];
            for (k, e) in t.0.iter_mut().enumerate() {
                *e = (base + (k as u64) * 4096) | flags;
            }
            let table = t as *const PageTable as u64;
            // Write the table before the entry points at it (the CPU walks it afterwards).
            core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
            *pde = table | (*pde & 0x7);
            arch::flush_tlb_all();
        }
        let pte = ((*pde & ADDR) as *mut u64).add(index(0));
        if present {
            *pte |= PRESENT;
        } else {
            *pte &= !PRESENT;
        }
    }
    arch::invlpg(va);
    // The identity alias shares the entry.
    arch::invlpg(va.wrapping_sub(crate::boot::DIRECT_MAP_BASE));
    true
}
