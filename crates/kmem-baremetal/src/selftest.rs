//! The in-kernel self-test framework.
//!
//! A test is a named function over a context (`fn(&C) -> TestResult`); a [`Runner`] runs
//! groups of them in order and prints one line per test:
//!
//! ```text
//! [selftest] PASS buddy_exhaust_every_order (1234 ms)
//! [selftest] FAIL deliberate_failure (0 ms): src/tests/deliberate.rs:30: deliberate failure …
//! ```
//!
//! then, at the end, the summary `selftest: N passed, M failed` alone on a line. The kernel
//! exits with the success status exactly when `M == 0` and at least one test ran.
//!
//! A test fails by returning `Err` (the `check!`/`check_eq!` macros) — or by crashing: the
//! panic handler and the exception handler call [`report_crash`], which reports the test that
//! was running as failed and prints the summary before the kernel exits with the failure
//! status. There is no unwinding, so a crash ends the run.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::serial;
use crate::spinlock::SpinLock;
use crate::{arch, println};

/// A failed check: a short message (truncated at [`Failure::CAPACITY`] bytes).
pub struct Failure {
    buf: [u8; Failure::CAPACITY],
    len: usize,
}

impl Failure {
    /// Bytes of message kept.
    pub const CAPACITY: usize = 240;

    /// Builds a failure from formatted text.
    pub fn new(args: fmt::Arguments<'_>) -> Self {
        let mut f = Failure {
            buf: [0; Self::CAPACITY],
            len: 0,
        };
        let _ = f.write_fmt(args);
        f
    }

    /// The message.
    pub fn message(&self) -> &str {
        // `write_str` only ever stores whole UTF-8 characters.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<invalid utf-8>")
    }
}

impl Write for Failure {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let mut tmp = [0; 4];
            let bytes = c.encode_utf8(&mut tmp).as_bytes();
            if self.len + bytes.len() > Self::CAPACITY {
                break;
            }
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
        Ok(())
    }
}

/// The outcome of a test.
pub type TestResult = Result<(), Failure>;

/// Fails the current test with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr) => {
        if !$cond {
            return Err($crate::selftest::Failure::new(format_args!(
                "{}:{}: check failed: {}", file!(), line!(), stringify!($cond)
            )));
        }
    };
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::selftest::Failure::new(format_args!(
                "{}:{}: {}", file!(), line!(), format_args!($($arg)+)
            )));
        }
    };
}

/// Fails the current test unless `left == right`, printing both.
#[macro_export]
macro_rules! check_eq {
    ($left:expr, $right:expr $(,)?) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err($crate::selftest::Failure::new(format_args!(
                "{}:{}: {} == {} failed: {:?} != {:?}",
                file!(),
                line!(),
                stringify!($left),
                stringify!($right),
                l,
                r
            )));
        }
    }};
}

/// Builds a `&[Test<_>]` from test functions, each named after its function.
#[macro_export]
macro_rules! tests {
    ($($f:ident),* $(,)?) => {
        &[$($crate::selftest::Test { name: stringify!($f), run: $f }),*]
    };
}

/// A named test over context `C`.
pub struct Test<C> {
    /// The name printed in the PASS/FAIL line.
    pub name: &'static str,
    /// The test.
    pub run: fn(&C) -> TestResult,
}

static PASSED: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);
static CURRENT: SpinLock<Option<&'static str>> = SpinLock::new(None);

/// Runs test groups and keeps the counts.
pub struct Runner {
    /// TSC ticks per millisecond, for the durations printed.
    tsc_khz: u64,
    start: u64,
}

impl Runner {
    /// Starts a run (counts start at zero); `tsc_khz` converts TSC ticks to milliseconds for
    /// the durations printed (emulated time under TCG: a guide, not a benchmark).
    pub fn new(tsc_khz: u64) -> Self {
        PASSED.store(0, Ordering::Relaxed);
        FAILED.store(0, Ordering::Relaxed);
        Runner {
            tsc_khz: tsc_khz.max(1),
            start: arch::rdtsc(),
        }
    }

    fn ms_since(&self, tsc: u64) -> u64 {
        (arch::rdtsc() - tsc) / self.tsc_khz
    }

    /// Runs `tests` over `ctx` in order.
    pub fn run<C>(&mut self, group: &str, tests: &[Test<C>], ctx: &C) {
        println!("[selftest] group {group}: {} tests", tests.len());
        for t in tests {
            *CURRENT.lock() = Some(t.name);
            let start = arch::rdtsc();
            let result = (t.run)(ctx);
            let ms = self.ms_since(start);
            *CURRENT.lock() = None;
            match result {
                Ok(()) => {
                    PASSED.fetch_add(1, Ordering::Relaxed);
                    println!("[selftest] PASS {} ({ms} ms)", t.name);
                }
                Err(f) => {
                    FAILED.fetch_add(1, Ordering::Relaxed);
                    println!("[selftest] FAIL {} ({ms} ms): {}", t.name, f.message());
                }
            }
        }
    }

    /// Records a failure that is not a test of its own (a boot step that went wrong).
    pub fn fail_step(&mut self, step: &str, why: fmt::Arguments<'_>) {
        FAILED.fetch_add(1, Ordering::Relaxed);
        println!("[selftest] FAIL {step}: {why}");
    }

    /// Prints the summary line; returns whether everything passed (and something ran).
    pub fn finish(self) -> bool {
        let (p, f) = (
            PASSED.load(Ordering::Relaxed),
            FAILED.load(Ordering::Relaxed),
        );
        println!(
            "[selftest] {} tests in {} ms",
            p + f,
            self.ms_since(self.start)
        );
        println!("selftest: {p} passed, {f} failed");
        f == 0 && p > 0
    }
}

/// Called by the panic and exception handlers: reports the running test as failed and prints
/// the summary. Takes no locks that the crashed code may hold.
pub fn report_crash() {
    let mut out = serial::emergency();
    let current = CURRENT.try_lock().and_then(|c| *c);
    let failed = FAILED.load(Ordering::Relaxed) + 1;
    let passed = PASSED.load(Ordering::Relaxed);
    let _ = match current {
        Some(name) => writeln!(out, "[selftest] FAIL {name}: crashed (see above)"),
        None => writeln!(
            out,
            "[selftest] FAIL kernel: crashed outside a test (see above)"
        ),
    };
    let _ = writeln!(out, "selftest: {passed} passed, {failed} failed");
}
