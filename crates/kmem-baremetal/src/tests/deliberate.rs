//! Tests that fail on purpose, requested on the command line (`selftest=fail`, `panic`,
//! `fault`, `doublefault`), to show that a failing test fails the run.

// A failure carries its message inline (no heap needed); results are returned once per test,
// so the size does not matter.
#![allow(clippy::result_large_err)]

use crate::check;
use crate::pvh::BootInfo;
use crate::selftest::{Test, TestResult};
use crate::tests;

/// `selftest=fail`.
pub const FAIL: &[Test<BootInfo>] = tests![deliberate_failure];
/// `selftest=panic`.
pub const PANIC: &[Test<BootInfo>] = tests![deliberate_panic];
/// `selftest=fault`.
pub const FAULT: &[Test<BootInfo>] = tests![deliberate_page_fault];
/// `selftest=doublefault`.
pub const DOUBLE_FAULT: &[Test<BootInfo>] = tests![deliberate_double_fault];

/// `selftest=fail`: proves that a failing test fails the run.
fn deliberate_failure(_: &BootInfo) -> TestResult {
    let answer = core::hint::black_box(41);
    check!(
        answer == 42,
        "deliberate failure requested by selftest=fail (got {answer}, want 42)"
    );
    Ok(())
}

/// `selftest=panic`: proves that a panic in a test is reported and fails the run.
fn deliberate_panic(_: &BootInfo) -> TestResult {
    if core::hint::black_box(true) {
        panic!("deliberate panic requested by selftest=panic");
    }
    Ok(())
}

/// `selftest=fault`: proves that a CPU exception in a test is reported and fails the run.
fn deliberate_page_fault(_: &BootInfo) -> TestResult {
    // 1 TiB: beyond the identity map (PML4 entry 2 is not present).
    let p = core::hint::black_box(1u64 << 40) as *const u64;
    // SAFETY: not safe at all — the point is the page fault, which never returns here.
    let v = unsafe { p.read_volatile() };
    check!(v == 0, "read unmapped memory without a fault");
    Ok(())
}

/// `selftest=doublefault`: a page fault whose delivery itself faults (the stack pointer is
/// unmapped, so the CPU cannot push the #PF frame) is a double fault; its gate switches to the
/// IST1 stack of the TSS (src/gdt.rs), so it is reported as `#DF double fault` and fails the
/// run. Without the IST stack the CPU would triple-fault and QEMU would reset instead.
fn deliberate_double_fault(_: &BootInfo) -> TestResult {
    if core::hint::black_box(true) {
        // SAFETY: not safe at all — RSP at 1 TiB (unmapped, see deliberate_page_fault): the
        // push faults, the #PF cannot be delivered on that stack, and the #DF handler never
        // returns.
        unsafe {
            core::arch::asm!(
                "mov rsp, {bad}",
                "push rax",
                bad = in(reg) 1u64 << 40,
                options(noreturn)
            )
        }
    }
    Ok(())
}
