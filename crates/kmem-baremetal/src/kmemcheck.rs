//! kmemcheck's real traps on this kernel: Linux 4.14's arch/x86/mm/kmemcheck/kmemcheck.c
//! (`kmemcheck_fault` → `kmemcheck_access` → `kmemcheck_show` from the page-fault handler,
//! `kmemcheck_trap` → `kmemcheck_hide` from the debug-exception handler) and opcode.c.
//!
//! With `kmemcheck=1`, kmem hides every page of a tracked slab (and every large kmalloc
//! block): [`crate::platform::BareMetal::protect_direct_page`] clears the present bit of its
//! 4 KiB entry in the live page tables ([`crate::kpte`]), and kmem's page flag `PG_HIDDEN` is
//! the marker that says the page is kmemcheck's (Linux kept `_PAGE_HIDDEN` in the PTE itself;
//! kmem keeps it in its per-frame flags, which the fault path asks through the hook). Then:
//!
//! 1. **#PF** on a non-present kernel page ([`page_fault`], called by [`crate::idt`] before
//!    KFENCE's hook): the instruction at RIP is decoded (yaxpeax-x86, the decoder the hosted
//!    platform uses; no allocation, so it may run here) for the size of its memory operand;
//!    the direction is the error code's write bit, as in Linux (a read-modify-write counts as
//!    a write). kmem gets (address, size, write) through [`KmemcheckHook::access`], checks or
//!    updates the shadow (a report for a read of uninitialised or freed bytes) and makes the
//!    page present (the entry's present bit, then `invlpg`). An access that crosses into the
//!    next page is split in two, as `kmemcheck_read`/`kmemcheck_write` split it, so both pages
//!    are shown at once. String moves (`movs`) take their two addresses from RSI and RDI and
//!    copy the shadow (`kmemcheck_copy`); string compares (`cmps`) read both. The pages shown
//!    are remembered for this CPU, and EFLAGS.TF is set in the interrupted context.
//! 2. The handler returns with `iretq`; the instruction runs once, with its pages present.
//!    An instruction that touches a second hidden page faults again first: that page is
//!    shown and remembered too, and TF stays as the first fault left it.
//! 3. **#DB** (single step) after the instruction ([`debug_trap`]): the remembered pages are
//!    hidden again ([`KmemcheckHook::hide`]: present bit cleared, `invlpg`), and TF is
//!    cleared unless the interrupted code had it set before the first fault (Linux's
//!    `data->flags`). A `rep` string instruction traps after each iteration, so each
//!    iteration is checked.
//!
//! An instruction the decoder does not know, or whose memory operand has no fixed size, is
//! reported once on the console and checked as an 8-byte access. A fault on a hidden page
//! inside the handler itself (kmem reading an object while checking) is Linux's "recursive
//! fault": the page is shown without a check and hidden with the others.
//!
//! One CPU, interrupts off for the kernel's whole life: the per-CPU state is one set of
//! atomics, touched only by the two handlers (which cannot interrupt each other: a #DB is
//! raised only after the single-stepped instruction, outside the #PF handler).

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kmem::platform::KmemcheckHook;
use yaxpeax_x86::amd64::InstDecoder;

use crate::cell::BootCell;
use crate::serial;

/// `X86_EFLAGS_TF`.
pub const EFLAGS_TF: u64 = 1 << 8;
/// Page-fault error code bits (arch/x86/include/asm/trap_pf.h): the page was present
/// (`X86_PF_PROT`), a write (`X86_PF_WRITE`), from user mode (`X86_PF_USER`), a reserved bit
/// set (`X86_PF_RSVD`).
const PF_PROT: u64 = 1;
const PF_WRITE: u64 = 2;
const PF_USER: u64 = 4;
const PF_RSVD: u64 = 8;

const PAGE: usize = 4096;

/// Pages one instruction may have shown: Linux keeps four (two operands, each across a page
/// boundary); more leave room for a recursive fault in the handler.
const MAX_ADDRS: usize = 8;

/// The hook kmem registered at boot (`Platform::set_kmemcheck_hook`).
static HOOK: BootCell<KmemcheckHook> = BootCell::new();

/// `struct kmemcheck_context` of the one CPU.
struct Context {
    /// Inside [`page_fault`] (Linux's `busy`).
    busy: AtomicBool,
    /// Pages shown for the instruction being single-stepped (page addresses).
    addrs: [AtomicUsize; MAX_ADDRS],
    /// How many of `addrs` are in use (Linux's `n_addrs`; non-zero is its `balance`).
    n: AtomicUsize,
    /// Whether TF was set in the interrupted context before the first fault.
    tf_before: AtomicBool,
    /// Whether a fault set TF for the instruction (not so for a whole `rep` instruction,
    /// which ends at a breakpoint).
    tf_set: AtomicBool,
}

static CTX: Context = Context {
    busy: AtomicBool::new(false),
    addrs: [const { AtomicUsize::new(0) }; MAX_ADDRS],
    n: AtomicUsize::new(0),
    tf_before: AtomicBool::new(false),
    tf_set: AtomicBool::new(false),
};

/// A `rep` string instruction runs to its end with its pages shown: the #DB comes from the
/// breakpoint on the next instruction (DR0), not from TF.
static BREAKPOINT: AtomicBool = AtomicBool::new(false);

/// Traps counted for the self-tests and the end-of-run line.
static FAULTS: AtomicUsize = AtomicUsize::new(0);
/// Instructions that did not decode to a sized memory access (each reported once, up to 8).
static UNKNOWN: AtomicUsize = AtomicUsize::new(0);

/// Registers kmem's hook (once, at boot).
pub fn set_hook(hook: KmemcheckHook) {
    HOOK.set(hook);
}

/// Whether kmemcheck's traps are on (kmem registered its hook).
pub fn active() -> bool {
    HOOK.get().is_some()
}

/// Page faults kmemcheck handled so far.
pub fn faults() -> usize {
    FAULTS.load(Ordering::Relaxed)
}

/// Instructions reported as not decodable so far.
pub fn unknown_instructions() -> usize {
    UNKNOWN.load(Ordering::Relaxed)
}

/// Remembers the page of `addr` as shown for this instruction.
fn save(addr: usize) {
    let page = addr & !(PAGE - 1);
    let n = CTX.n.load(Ordering::Relaxed);
    if CTX.addrs[..n]
        .iter()
        .any(|a| a.load(Ordering::Relaxed) == page)
    {
        return;
    }
    if n == MAX_ADDRS {
        // Cannot happen with the instructions rustc emits; the page then stays shown
        // (unchecked from now on) rather than the kernel stopping.
        let _ = writeln!(
            serial::emergency(),
            "kmemcheck: more than {MAX_ADDRS} pages for one instruction; {page:#x} stays shown"
        );
        return;
    }
    CTX.addrs[n].store(page, Ordering::Relaxed);
    CTX.n.store(n + 1, Ordering::Relaxed);
}

/// Shows the page of `addr` without a check if kmemcheck hid it, and remembers it.
fn show(hook: &KmemcheckHook, addr: usize) {
    // SAFETY: the hook's machine lives for the kernel's whole life (it is never dropped).
    if unsafe { (hook.show)(hook.ctx, addr) } {
        save(addr);
    }
}

/// `kmemcheck_read`/`kmemcheck_write`: an access of `size` bytes at `addr`, split at a page
/// boundary; each part is checked and its page shown if kmemcheck hid it.
fn access(hook: &KmemcheckHook, addr: usize, size: usize, write: bool, ip: usize) {
    let next_page = (addr & !(PAGE - 1)) + PAGE;
    let first = size.min(next_page - addr);
    for (a, n) in [(addr, first), (next_page, size - first)] {
        // SAFETY: `hook.access` is kmem's callback, given back the `ctx` it
        // registered: its machine, never dropped in this kernel, so `ctx` is valid.
        if n > 0 && unsafe { (hook.access)(hook.ctx, a, n, write, ip) } {
            save(a);
        }
    }
}

/// The bytes of the instruction at `ip` (up to 15; code of the kernel image, mapped).
fn code_at(ip: usize) -> [u8; 15] {
    let mut buf = [0u8; 15];
    for (i, b) in buf.iter_mut().enumerate() {
        // SAFETY: `ip` is the kernel-mode instruction that faulted: it is in the kernel image,
        // which is mapped with the rodata after its text, so the 15 bytes after it are
        // mapped too.
        *b = unsafe { core::ptr::read_volatile((ip + i) as *const u8) };
    }
    buf
}

/// A string instruction (Linux's `kmemcheck_opcode_get_primary` and the `movs`/`cmps` cases
/// of `kmemcheck_access`; `stos` too, for the `rep` path).
#[derive(Clone, Copy)]
struct StringOp {
    /// Primary opcode: `0xa4`/`0xa5` movs, `0xa6`/`0xa7` cmps, `0xaa`/`0xab` stos.
    op: u8,
    /// Element size in bytes.
    size: usize,
    /// A `rep` prefix (`0xf3`; `0xf2` for cmps).
    rep: bool,
    /// Instruction length (string instructions have no ModRM: prefixes and the opcode).
    len: usize,
}

fn string_op(code: &[u8]) -> Option<StringOp> {
    let (mut opsize16, mut rex_w, mut rep) = (false, false, false);
    for (i, &b) in code.iter().enumerate() {
        match b {
            0x66 => opsize16 = true,
            0xf2 | 0xf3 => rep = true,
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x67 | 0xf0 => {}
            // REX is the last prefix: the primary opcode follows.
            0x40..=0x4f => {
                rex_w = b & 8 != 0;
                let op = *code.get(i + 1)?;
                let size = string_size(op, opsize16, rex_w)?;
                return Some(StringOp {
                    op,
                    size,
                    rep,
                    len: i + 2,
                });
            }
            op => {
                let size = string_size(op, opsize16, rex_w)?;
                return Some(StringOp {
                    op,
                    size,
                    rep,
                    len: i + 1,
                });
            }
        }
    }
    None
}

fn string_size(op: u8, opsize16: bool, rex_w: bool) -> Option<usize> {
    match op {
        0xa4 | 0xa6 | 0xaa => Some(1),
        0xa5 | 0xa7 | 0xab if rex_w => Some(8),
        0xa5 | 0xa7 | 0xab if opsize16 => Some(2),
        0xa5 | 0xa7 | 0xab => Some(4),
        _ => None,
    }
}

/// `EFLAGS.DF`: string instructions step downwards.
const EFLAGS_DF: u64 = 1 << 10;

/// The bytes `[lo, hi)` a `rep` string instruction's operand at `at` covers over `count`
/// elements of `size` bytes, stepping down when `down`.
fn string_range(at: usize, count: usize, size: usize, down: bool) -> Option<(usize, usize)> {
    let span = count.checked_mul(size)?;
    if down {
        let lo = (at + size).checked_sub(span)?;
        Some((lo, at + size))
    } else {
        Some((at, at.checked_add(span)?))
    }
}

/// Most bytes one `rep` operand may cover for the whole-instruction path (the largest block
/// kmalloc hands out, `KMALLOC_MAX_SIZE` of 4 MiB); longer strings step each iteration.
const REP_MAX: usize = 4 << 20;

/// The operands of the `rep` instruction running with its pages shown (`[lo, hi)`; 0 and 0
/// when unused).
static REP_RANGES: [(AtomicUsize, AtomicUsize); 2] = [
    (AtomicUsize::new(0), AtomicUsize::new(0)),
    (AtomicUsize::new(0), AtomicUsize::new(0)),
];

/// Shows (`hide == false`) or hides every page of `[lo, hi)` that kmemcheck hid.
fn range_pages(hook: &KmemcheckHook, lo: usize, hi: usize, hide: bool) {
    let mut a = lo & !(PAGE - 1);
    while a < hi {
        // SAFETY: `hook.show`/`hook.hide` are kmem's callbacks, given back the `ctx` it
        // registered: its machine, never dropped in this kernel, so `ctx` is valid.
        unsafe {
            if hide {
                (hook.hide)(hook.ctx, a);
            } else {
                (hook.show)(hook.ctx, a);
            }
        }
        a += PAGE;
    }
}

/// A whole `rep stos`/`rep movs` at once: the destination's shadow is written (initialised,
/// or the source's copied in the direction of the move), every page of both operands shown,
/// and a breakpoint armed on the next instruction instead of TF, so the instruction runs
/// all its iterations with one fault and one #DB (TF would trap after each iteration, Intel
/// SDM vol. 3, 18.3.1.4). Linux's kmemcheck stepped each iteration. Returns `false`, doing
/// nothing, for an operand longer than [`REP_MAX`] (the caller then steps each iteration).
fn rep_string(
    hook: &KmemcheckHook,
    s: StringOp,
    regs: (u64, u64, u64),
    flags: u64,
    ip: usize,
) -> bool {
    let (rsi, rdi, rcx) = (regs.0 as usize, regs.1 as usize, regs.2 as usize);
    let down = flags & EFLAGS_DF != 0;
    let Some(dst) = string_range(rdi, rcx, s.size, down) else {
        return false;
    };
    let src = if s.op == 0xaa || s.op == 0xab {
        (0, 0)
    } else {
        match string_range(rsi, rcx, s.size, down) {
            Some(r) => r,
            None => return false,
        }
    };
    if dst.1 - dst.0 > REP_MAX || src.1 - src.0 > REP_MAX {
        return false;
    }
    if src.1 == 0 {
        // `stos`: every byte written. `access` checks nothing for a write; a part on a page
        // kmemcheck did not hide is left alone.
        let mut a = dst.0;
        while a < dst.1 {
            let end = ((a & !(PAGE - 1)) + PAGE).min(dst.1);
            // SAFETY: `hook.access` is kmem's callback, given back the `ctx` it
            // registered: its machine, never dropped in this kernel, so `ctx` is valid.
            unsafe { (hook.access)(hook.ctx, a, end - a, true, ip) };
            a = end;
        }
    } else {
        let n = dst.1 - dst.0;
        let mut done = 0;
        while done < n {
            let k = (n - done).min(8);
            let off = if down { n - done - k } else { done };
            // SAFETY: `hook.copy` is kmem's callback, given back the `ctx` it
            // registered: its machine, never dropped in this kernel, so `ctx` is valid.
            unsafe { (hook.copy)(hook.ctx, dst.0 + off, src.0 + off, k, ip) };
            done += k;
        }
    }
    for (r, (lo, hi)) in REP_RANGES.iter().zip([dst, src]) {
        range_pages(hook, lo, hi, false);
        r.0.store(lo, Ordering::Relaxed);
        r.1.store(hi, Ordering::Relaxed);
    }
    crate::arch::set_exec_breakpoint(Some((ip + s.len) as u64));
    BREAKPOINT.store(true, Ordering::Relaxed);
    true
}

/// The size of the memory operand of the instruction at the start of `code` (opcode.c's
/// `kmemcheck_opcode_decode`, by a full decoder); `None` when it does not decode or its
/// memory operand has no fixed size.
pub fn access_size_of(code: &[u8]) -> Option<usize> {
    let ins = InstDecoder::default().decode_slice(code).ok()?;
    ins.mem_size()
        .and_then(|s| s.bytes_size())
        .map(usize::from)
        .filter(|&n| n > 0)
}

/// The access size of the instruction at `ip`; an unknown instruction is reported (the first
/// few) and checked as an 8-byte access.
fn access_size(ip: usize, code: &[u8]) -> usize {
    if let Some(n) = access_size_of(code) {
        return n;
    }
    if UNKNOWN.fetch_add(1, Ordering::Relaxed) < 8 {
        let _ = writeln!(
            serial::emergency(),
            "kmemcheck: no sized memory operand decoded at RIP {ip:#x} ({:02x?}); checked as an 8-byte access",
            &code[..8]
        );
    }
    8
}

/// The page-fault path (Linux's `kmemcheck_fault`): returns `true` when the fault was on a
/// page kmemcheck hid — the access is checked, its pages shown and `rflags` gets TF — and
/// `false` when it is not kmemcheck's (KFENCE's guard page, or a kernel bug). `regs` are the
/// interrupted RSI, RDI and RCX (string instructions).
pub fn page_fault(
    addr: usize,
    error_code: u64,
    ip: usize,
    rflags: &mut u64,
    regs: (u64, u64, u64),
) -> bool {
    // A hidden page is not present; user mode never reaches kernel pages.
    if error_code & (PF_PROT | PF_USER | PF_RSVD) != 0 {
        return false;
    }
    let Some(hook) = HOOK.get() else {
        return false;
    };
    // Not kmemcheck's page: KFENCE's guard page, or a kernel bug (Linux's
    // `kmemcheck_pte_lookup` test). Otherwise the page is shown from here on.
    // SAFETY: `hook.show` is kmem's callback, given back the `ctx` it
    // registered: its machine, never dropped in this kernel, so `ctx` is valid.
    if !unsafe { (hook.show)(hook.ctx, addr) } {
        return false;
    }
    save(addr);
    if CTX.busy.swap(true, Ordering::Relaxed) {
        // Recursive fault: kmem touched a hidden page while checking. Shown without a check
        // and no TF (the handler's own instruction); hidden with the outer instruction's
        // pages.
        return true;
    }
    FAULTS.fetch_add(1, Ordering::Relaxed);
    let code = code_at(ip);
    let (rsi, rdi) = (regs.0 as usize, regs.1 as usize);
    let s = string_op(&code);
    let whole = s.is_some_and(|s| {
        s.rep
            && matches!(s.op, 0xa4 | 0xa5 | 0xaa | 0xab)
            && !BREAKPOINT.load(Ordering::Relaxed)
            && rep_string(hook, s, regs, *rflags, ip)
    });
    match s {
        _ if whole => {}
        Some(StringOp {
            op: 0xa4 | 0xa5,
            size,
            ..
        }) => {
            // SAFETY: `hook.copy` is kmem's callback, given back the `ctx` it
            // registered: its machine, never dropped in this kernel, so `ctx` is valid.
            unsafe { (hook.copy)(hook.ctx, rdi, rsi, size, ip) };
            for a in [rsi, rsi + size - 1, rdi, rdi + size - 1] {
                show(hook, a);
            }
        }
        Some(StringOp {
            op: 0xa6 | 0xa7,
            size,
            ..
        }) => {
            access(hook, rsi, size, false, ip);
            access(hook, rdi, size, false, ip);
        }
        Some(StringOp { size, .. }) => access(hook, addr, size, true, ip),
        None => {
            let size = access_size(ip, &code);
            access(hook, addr, size, error_code & PF_WRITE != 0, ip);
        }
    }
    CTX.busy.store(false, Ordering::Relaxed);
    if whole {
        return true;
    }
    if !CTX.tf_set.swap(true, Ordering::Relaxed) {
        CTX.tf_before
            .store(*rflags & EFLAGS_TF != 0, Ordering::Relaxed);
    }
    *rflags |= EFLAGS_TF;
    true
}

/// The debug-exception path (Linux's `kmemcheck_trap`): after the single-stepped instruction,
/// hides the pages shown for it and restores TF. `false` when no page is shown (the #DB is
/// not kmemcheck's).
pub fn debug_trap(rflags: &mut u64) -> bool {
    let n = CTX.n.load(Ordering::Relaxed);
    if n == 0 {
        return false;
    }
    let Some(hook) = HOOK.get() else {
        return false;
    };
    if BREAKPOINT.swap(false, Ordering::Relaxed) {
        crate::arch::set_exec_breakpoint(None);
        for r in &REP_RANGES {
            let (lo, hi) = (
                r.0.swap(0, Ordering::Relaxed),
                r.1.swap(0, Ordering::Relaxed),
            );
            range_pages(hook, lo, hi, true);
        }
    }
    for a in &CTX.addrs[..n] {
        // SAFETY: `hook.hide` is kmem's callback, given back the `ctx` it
        // registered: its machine, never dropped in this kernel, so `ctx` is valid.
        unsafe { (hook.hide)(hook.ctx, a.load(Ordering::Relaxed)) };
    }
    CTX.n.store(0, Ordering::Relaxed);
    if CTX.tf_set.swap(false, Ordering::Relaxed) && !CTX.tf_before.load(Ordering::Relaxed) {
        *rflags &= !EFLAGS_TF;
    }
    true
}
