//! Tests that fail on purpose, requested on the command line (`selftest=fail`, `panic`,
//! `fault`), to show that a failing test fails the run.

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
