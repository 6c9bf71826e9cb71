//! Tests of the lock validator (`kds::lockdep`): inversions across tasks, cycles of three,
//! recursion, bad unlock balance, table overflow, and the report text checked line by line
//! against the shape of Linux's (kernel/locking/lockdep.c: print_circular_bug,
//! print_deadlock_bug, print_unlock_imbalance_bug, print_lockdep_off).
//!
//! "Tasks" are ids the test host hands out: most tests switch the current id between
//! sequential steps (the validator does not care whether two tasks ever ran at the same
//! time); `real_threads_*` uses one id per OS thread.
#![cfg(any(debug_assertions, feature = "lockdep"))]

extern crate std;

use std::boxed::Box;
use std::cell::Cell;
use std::fmt::Write as _;
use std::string::String;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex as StdMutex;
use std::vec::Vec;

use kds::lockdep::{
    LockClass, Lockdep, LockdepHost, Mutex, Report, LEVEL_DEBUG, LEVEL_WARNING, MAX_LOCKDEP_KEYS,
    MAX_LOCKDEP_TASKS, MAX_LOCK_DEPTH,
};

// ------------------------------------------------------------------------------ fixtures

/// A test-and-set raw lock (the tests never block for long).
struct RawSpin(AtomicBool);

// SAFETY: `lock`/`try_lock` only succeed by swapping `false` to `true` with Acquire, `unlock`
// stores `false` with Release: one holder at a time, and its writes happen-before the next.
unsafe impl lock_api::RawMutex for RawSpin {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = RawSpin(AtomicBool::new(false));
    type GuardMarker = lock_api::GuardSend;
    fn lock(&self) {
        while !self.try_lock() {
            std::hint::spin_loop();
        }
    }
    fn try_lock(&self) -> bool {
        !self.0.swap(true, Ordering::Acquire)
    }
    unsafe fn unlock(&self) {
        self.0.store(false, Ordering::Release);
    }
}

type M<T> = Mutex<RawSpin, T>;

std::thread_local! {
    static THREAD_TASK: Cell<u64> = const { Cell::new(0) };
}
static NEXT_THREAD_TASK: AtomicU64 = AtomicU64::new(1000);

/// Fixtures that live for the rest of the test process (validators and locks must outlive
/// every use, hosts are `'static` for `Lockdep::new`). They are kept in a registry rather than
/// leaked, so a leak checker (scripts/sanitize runs this file under Valgrind) reports only
/// real leaks.
static KEPT: StdMutex<Vec<usize>> = StdMutex::new(Vec::new());

fn kept<T: Sync + 'static>(b: Box<T>) -> &'static T {
    let r: &'static T = Box::leak(b);
    KEPT.lock().unwrap().push(r as *const T as usize);
    r
}

/// The test host: a settable current task (or one per thread), and the printed lines.
struct Host {
    task: AtomicU64,
    per_thread: bool,
    lines: StdMutex<Vec<(u8, String)>>,
    reported: StdMutex<Vec<Report>>,
    backtrace: bool,
}

impl Host {
    fn make(task: u64, per_thread: bool, backtrace: bool) -> &'static Host {
        kept(Box::new(Host {
            task: AtomicU64::new(task),
            per_thread,
            lines: StdMutex::new(Vec::new()),
            reported: StdMutex::new(Vec::new()),
            backtrace,
        }))
    }
    fn new() -> &'static Host {
        Host::make(1, false, false)
    }
    fn per_thread() -> &'static Host {
        Host::make(0, true, false)
    }
    fn with_backtrace() -> &'static Host {
        Host::make(1, false, true)
    }
    fn set_task(&self, t: u64) {
        self.task.store(t, Ordering::Relaxed);
    }
    fn text(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }
    fn levels(&self) -> Vec<u8> {
        self.lines.lock().unwrap().iter().map(|(l, _)| *l).collect()
    }
}

impl LockdepHost for Host {
    fn task_id(&self) -> u64 {
        if self.per_thread {
            THREAD_TASK.with(|t| {
                if t.get() == 0 {
                    t.set(NEXT_THREAD_TASK.fetch_add(1, Ordering::Relaxed));
                }
                t.get()
            })
        } else {
            self.task.load(Ordering::Relaxed)
        }
    }
    fn task_name(&self, w: &mut dyn core::fmt::Write) -> core::fmt::Result {
        write!(w, "kworker/{}", self.task_id())
    }
    fn print_line(&self, level: u8, line: &str) {
        self.lines.lock().unwrap().push((level, line.into()));
    }
    fn kernel_ident(&self, w: &mut dyn core::fmt::Write) -> core::fmt::Result {
        w.write_str("6.8.0-kmem #1 Not tainted")
    }
    fn dump_stack(&self, w: &mut dyn core::fmt::Write) -> core::fmt::Result {
        if self.backtrace {
            w.write_str("CPU: 0 PID: 1 Comm: kworker/1\nCall Trace:\n <TASK>\n")?;
        }
        Ok(())
    }
    fn reported(&self, kind: Report) {
        self.reported.lock().unwrap().push(kind);
    }
}

fn validator(host: &'static Host) -> Box<Lockdep> {
    Box::new(Lockdep::new(host))
}

fn attach<T>(ld: &Lockdep, locks: &[&M<T>]) {
    for l in locks {
        // SAFETY: every test keeps its validator (boxed, never moved) alive until after its
        // mutexes are last used, and the host is leaked ('static).
        unsafe { l.attach(ld) };
    }
}

/// `file:line:` of a line of this file, the start of a site printed for it.
fn site(line: u32) -> String {
    std::format!("{}:{}:", file!(), line)
}

/// Compares report lines with a template: `{addr}` stands for a 16-digit hex instance
/// address, `{site:N}` for a site on line N of this file (any column); the rest is literal.
#[track_caller]
fn assert_lines(got: &[String], want: &[String]) {
    let mut ok = got.len() == want.len();
    for (g, w) in got.iter().zip(want) {
        if !line_matches(g, w) {
            ok = false;
        }
    }
    if !ok {
        let mut msg = String::new();
        for i in 0..got.len().max(want.len()) {
            let g = got.get(i).map_or("<none>", |s| s.as_str());
            let w = want.get(i).map_or("<none>", |s| s.as_str());
            let mark = if line_matches(g, w) { "  " } else { "!!" };
            writeln!(msg, "{mark} got  |{g}|\n   want |{w}|").unwrap();
        }
        panic!("report differs:\n{msg}");
    }
}

fn line_matches(got: &str, want: &str) -> bool {
    let mut g = got;
    let mut w = want;
    loop {
        if let Some(rest) = w.strip_prefix("{addr}") {
            let width = 2 * core::mem::size_of::<usize>();
            if g.len() < width || !g[..width].bytes().all(|b| b.is_ascii_hexdigit()) {
                return false;
            }
            g = &g[width..];
            w = rest;
        } else if let Some(rest) = w.strip_prefix("{site:") {
            let end = rest.find('}').unwrap();
            let line: u32 = rest[..end].parse().unwrap();
            let Some(after) = g.strip_prefix(site(line).as_str()) else {
                return false;
            };
            let col_len = after.bytes().take_while(|b| b.is_ascii_digit()).count();
            if col_len == 0 {
                return false;
            }
            g = &after[col_len..];
            w = &rest[end + 1..];
        } else {
            let Some(c) = w.chars().next() else {
                return g.is_empty();
            };
            if !g.starts_with(c) {
                return false;
            }
            g = &g[c.len_utf8()..];
            w = &w[c.len_utf8()..];
        }
    }
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| String::from(*s)).collect()
}

macro_rules! fmt_lines {
    ($($e:expr),* $(,)?) => { std::vec![$(std::format!($e)),*] };
}

// ------------------------------------------------------------------------------ classes

static LOCK_A: LockClass = LockClass::new("lock-A");
static LOCK_B: LockClass = LockClass::new("lock-B");
static LOCK_C: LockClass = LockClass::new("lock-C");
static CPU_SECTION: LockClass = LockClass::new_reentrant("cpu section");
static MANY: [LockClass; MAX_LOCKDEP_KEYS + 1] =
    [const { LockClass::new("many") }; MAX_LOCKDEP_KEYS + 1];

// ------------------------------------------------------------------------------ inversions

#[test]
fn ab_ba_inversion_across_two_tasks_is_reported_with_both_chains() {
    let host = Host::new();
    let ld = validator(host);
    let a = M::new(&LOCK_A, 0u32);
    let b = M::new(&LOCK_B, 0u32);
    attach(&ld, &[&a, &b]);

    host.set_task(1);
    let (ga, la1) = (a.lock(), line!());
    let (gb, lb1) = (b.lock(), line!());
    drop(gb);
    drop(ga);
    assert!(host.text().is_empty(), "a first order is no problem");
    assert!(ld.depends(&LOCK_A, &LOCK_B));

    host.set_task(2);
    let (gb, lb2) = (b.lock(), line!());
    let (ga, la2) = (a.lock(), line!());
    drop(ga);
    drop(gb);

    let want = fmt_lines![
        "",
        "======================================================",
        "WARNING: possible circular locking dependency detected",
        "6.8.0-kmem #1 Not tainted",
        "------------------------------------------------------",
        "kworker/2 is trying to acquire lock:",
        "{{addr}} (lock-A){{....}}, at: {{site:{la2}}}",
        "",
        "but task is already holding lock:",
        "{{addr}} (lock-B){{....}}, at: {{site:{lb2}}}",
        "",
        "which lock already depends on the new lock.",
        "",
        "",
        "the existing dependency chain (in reverse order) is:",
        "",
        "-> #1 (lock-B){{....}}:",
        "       {{site:{lb1}}}",
        "       under (lock-A) taken at {{site:{la1}}}",
        "",
        "-> #0 (lock-A){{....}}:",
        "       {{site:{la2}}}",
        "       under (lock-B) taken at {{site:{lb2}}}",
        "",
        "other info that might help us debug this:",
        "",
        " Possible unsafe locking scenario:",
        "",
        "       CPU0                    CPU1",
        "       ----                    ----",
        "  lock(lock-B);",
        "                               lock(lock-A);",
        "                               lock(lock-B);",
        "  lock(lock-A);",
        "",
        " *** DEADLOCK ***",
        "",
        "1 lock held by kworker/2:",
        " #0: {{addr}} (lock-B){{....}}, at: {{site:{lb2}}}",
    ];
    assert_lines(&host.text(), &want);
    assert!(host.levels().iter().all(|&l| l == LEVEL_WARNING));
    // The instance addresses are the mutexes'.
    let t = host.text();
    let a_addr = std::format!("{:016x}", &a as *const M<u32> as usize);
    let b_addr = std::format!("{:016x}", &b as *const M<u32> as usize);
    assert!(t[6].starts_with(&a_addr), "{}", t[6]);
    assert!(t[9].starts_with(&b_addr), "{}", t[9]);

    assert!(ld.is_off());
    assert_eq!(ld.report_count(), 1);
    assert_eq!(ld.reason(), Some(Report::CircularDependency));
    assert_eq!(*host.reported.lock().unwrap(), [Report::CircularDependency]);
    // The new, inverted dependency was not recorded.
    assert!(!ld.depends(&LOCK_B, &LOCK_A));
}

#[test]
fn a_consistent_order_reports_nothing() {
    let host = Host::new();
    let ld = validator(host);
    let a = M::new(&LOCK_A, 0u32);
    let b = M::new(&LOCK_B, 0u32);
    let c = M::new(&LOCK_C, 0u32);
    let b2 = M::new(&LOCK_B, 0u32);
    attach(&ld, &[&a, &b, &c, &b2]);
    for task in 1..=10 {
        host.set_task(task);
        let _ga = a.lock();
        {
            let _gb = if task % 2 == 0 { b.lock() } else { b2.lock() };
            *c.lock() += 1;
        }
        // Skipping a level is consistent too: A -> C follows from A -> B -> C.
        *c.lock() += 1;
        assert_eq!(ld.held_count(), 1);
    }
    // Locks taken alone and released in any order.
    host.set_task(11);
    let gc = c.lock();
    drop(gc);
    let ga = a.lock();
    let gb = b.lock();
    drop(ga);
    drop(gb);
    assert_eq!(ld.held_count(), 0);

    assert!(host.text().is_empty(), "{:#?}", host.text());
    assert!(!ld.is_off());
    assert_eq!(ld.report_count(), 0);
    assert_eq!(ld.reason(), None);
    assert!(ld.depends(&LOCK_A, &LOCK_B));
    assert!(ld.depends(&LOCK_B, &LOCK_C));
    assert!(ld.depends(&LOCK_A, &LOCK_C));
    assert!(!ld.depends(&LOCK_C, &LOCK_A));
    assert!(!ld.depends(&LOCK_B, &LOCK_A));
}

#[test]
fn a_three_lock_cycle_is_found_and_printed_as_a_chain() {
    let host = Host::new();
    let ld = validator(host);
    let a = M::new(&LOCK_A, ());
    let b = M::new(&LOCK_B, ());
    let c = M::new(&LOCK_C, ());
    attach(&ld, &[&a, &b, &c]);

    host.set_task(1);
    let (ga, la) = (a.lock(), line!());
    let (gb, lb) = (b.lock(), line!());
    drop((gb, ga));
    host.set_task(2);
    let (gb, lb2) = (b.lock(), line!());
    let (gc, lc) = (c.lock(), line!());
    drop((gc, gb));
    assert!(host.text().is_empty());
    host.set_task(3);
    let (gc, lc3) = (c.lock(), line!());
    let (ga, la3) = (a.lock(), line!());
    drop((ga, gc));

    let want = fmt_lines![
        "",
        "======================================================",
        "WARNING: possible circular locking dependency detected",
        "6.8.0-kmem #1 Not tainted",
        "------------------------------------------------------",
        "kworker/3 is trying to acquire lock:",
        "{{addr}} (lock-A){{....}}, at: {{site:{la3}}}",
        "",
        "but task is already holding lock:",
        "{{addr}} (lock-C){{....}}, at: {{site:{lc3}}}",
        "",
        "which lock already depends on the new lock.",
        "",
        "",
        "the existing dependency chain (in reverse order) is:",
        "",
        "-> #2 (lock-C){{....}}:",
        "       {{site:{lc}}}",
        "       under (lock-B) taken at {{site:{lb2}}}",
        "",
        "-> #1 (lock-B){{....}}:",
        "       {{site:{lb}}}",
        "       under (lock-A) taken at {{site:{la}}}",
        "",
        "-> #0 (lock-A){{....}}:",
        "       {{site:{la3}}}",
        "       under (lock-C) taken at {{site:{lc3}}}",
        "",
        "other info that might help us debug this:",
        "",
        "Chain exists of:",
        "  lock-A --> lock-B --> lock-C",
        "",
        " Possible unsafe locking scenario:",
        "",
        "       CPU0                    CPU1",
        "       ----                    ----",
        "  lock(lock-C);",
        "                               lock(lock-B);",
        "                               lock(lock-C);",
        "  lock(lock-A);",
        "",
        " *** DEADLOCK ***",
        "",
        "1 lock held by kworker/3:",
        " #0: {{addr}} (lock-C){{....}}, at: {{site:{lc3}}}",
    ];
    assert_lines(&host.text(), &want);
    assert_eq!(ld.reason(), Some(Report::CircularDependency));
}

#[test]
fn each_problem_is_reported_once_then_the_validator_is_off() {
    let host = Host::new();
    let ld = validator(host);
    let a = M::new(&LOCK_A, ());
    let b = M::new(&LOCK_B, ());
    attach(&ld, &[&a, &b]);
    for task in 1..=3 {
        host.set_task(task);
        let _ga = a.lock();
        let _gb = b.lock();
    }
    for task in 4..=6 {
        host.set_task(task);
        let _gb = b.lock();
        let _ga = a.lock();
    }
    let n = host.text().len();
    assert!(n > 0);
    assert_eq!(
        host.text()
            .iter()
            .filter(|l| l.starts_with("WARNING:"))
            .count(),
        1
    );
    // Off: a recursion now goes unreported, and locks still work.
    host.set_task(7);
    let a2 = M::new(&LOCK_A, ());
    attach(&ld, &[&a2]);
    let _g1 = a.lock();
    let _g2 = a2.lock();
    assert_eq!(host.text().len(), n);
    assert_eq!(ld.report_count(), 1);
    assert_eq!(ld.held_count(), 0, "nothing is tracked once off");
}

// ------------------------------------------------------------------------------ recursion

#[test]
fn recursive_locking_of_one_class_is_reported() {
    let host = Host::with_backtrace();
    let ld = validator(host);
    let a1 = M::new(&LOCK_A, ());
    let a2 = M::new(&LOCK_A, ());
    let b = M::new(&LOCK_B, ());
    attach(&ld, &[&a1, &a2, &b]);
    host.set_task(5);
    let (g1, l1) = (a1.lock(), line!());
    let gb = b.lock();
    let lb = line!() - 1;
    let (g2, l2) = (a2.lock(), line!());
    drop((g2, gb, g1));

    let want = fmt_lines![
        "",
        "============================================",
        "WARNING: possible recursive locking detected",
        "6.8.0-kmem #1 Not tainted",
        "--------------------------------------------",
        "kworker/5 is trying to acquire lock:",
        "{{addr}} (lock-A){{....}}, at: {{site:{l2}}}",
        "",
        "but task is already holding lock:",
        "{{addr}} (lock-A){{....}}, at: {{site:{l1}}}",
        "",
        "other info that might help us debug this:",
        " Possible unsafe locking scenario:",
        "",
        "       CPU0",
        "       ----",
        "  lock(lock-A);",
        "  lock(lock-A);",
        "",
        " *** DEADLOCK ***",
        "",
        " May be due to missing lock nesting notation",
        "",
        "2 locks held by kworker/5:",
        " #0: {{addr}} (lock-A){{....}}, at: {{site:{l1}}}",
        " #1: {{addr}} (lock-B){{....}}, at: {{site:{lb}}}",
        "",
        "stack backtrace:",
        "CPU: 0 PID: 1 Comm: kworker/1",
        "Call Trace:",
        " <TASK>",
    ];
    assert_lines(&host.text(), &want);
    assert_eq!(ld.reason(), Some(Report::RecursiveLocking));
    assert_eq!(ld.report_count(), 1);
}

#[test]
fn nested_subclasses_and_reentrant_classes_are_not_recursion() {
    let host = Host::new();
    let ld = validator(host);
    let n0 = M::new(&LOCK_A, ());
    let n1 = M::new(&LOCK_A, ());
    let b = M::new(&LOCK_B, ());
    attach(&ld, &[&n0, &n1, &b]);
    // Two locks of one class, the second as subclass 1 (spin_lock_nested).
    let g0 = n0.lock();
    let g1 = n1.lock_nested(1);
    assert_eq!(ld.held_count(), 2);
    drop((g1, g0));

    // A CPU section nests; a lock inside the inner section records no dependency towards
    // the section (the section is already held) and the order section -> lock stands.
    let cpu = 0x1000 as *const ();
    assert!(ld.acquire(&CPU_SECTION, 0, cpu, false));
    let gb = b.lock();
    assert!(ld.acquire(&CPU_SECTION, 0, cpu, false));
    ld.release(&CPU_SECTION, cpu);
    drop(gb);
    ld.release(&CPU_SECTION, cpu);
    assert_eq!(ld.held_count(), 0);

    assert!(host.text().is_empty(), "{:#?}", host.text());
    assert!(!ld.is_off());

    // The dependency names the subclass.
    let mut s = String::new();
    ld.write_dependencies(&mut s).unwrap();
    assert!(s.contains(" -> [lock-A/1] at "), "{s}");
    assert!(s.contains(" -> [lock-B] at "), "{s}");
    assert!(ld.depends(&CPU_SECTION, &LOCK_B));
    assert!(!ld.depends(&LOCK_B, &CPU_SECTION));
}

#[test]
fn a_section_guard_annotates_a_cpu_section() {
    let host = Host::new();
    let ld = validator(host);
    let b = M::new(&LOCK_B, ());
    attach(&ld, &[&b]);
    let cpu = 0x40 as *const ();
    {
        let _s = ld.enter(&CPU_SECTION, cpu);
        let _g = b.lock();
        let _nested = ld.enter(&CPU_SECTION, cpu); // get_cpu() inside get_cpu()
        assert_eq!(ld.held_count(), 3);
    }
    assert_eq!(ld.held_count(), 0);
    assert!(ld.depends(&CPU_SECTION, &LOCK_B));
    assert!(host.text().is_empty());
    // Entering the section with the lock held, outermost: the inversion is reported.
    let _g = b.lock();
    let _s = ld.enter(&CPU_SECTION, cpu);
    assert_eq!(ld.reason(), Some(Report::CircularDependency));
    let t = host.text();
    assert!(t.iter().any(|l| l == "  lock(cpu section);"), "{t:#?}");
    assert!(t
        .iter()
        .any(|l| l == "                               lock(lock-B);"));
}

#[test]
fn the_same_subclass_twice_is_recursion() {
    let host = Host::new();
    let ld = validator(host);
    let n0 = M::new(&LOCK_A, ());
    let n1 = M::new(&LOCK_A, ());
    attach(&ld, &[&n0, &n1]);
    let _g0 = n0.lock_nested(1);
    let _g1 = n1.lock_nested(1);
    let t = host.text();
    assert_eq!(t[2], "WARNING: possible recursive locking detected");
    assert!(t[6].contains("(lock-A/1)"), "{}", t[6]);
    assert_eq!(ld.reason(), Some(Report::RecursiveLocking));
}

// ------------------------------------------------------------------------------ unlock

#[test]
fn releasing_a_lock_not_held_is_a_bad_unlock_balance() {
    let host = Host::new();
    let ld = validator(host);
    let b = M::new(&LOCK_B, ());
    attach(&ld, &[&b]);
    host.set_task(9);
    let (gb, lb) = (b.lock(), line!());
    let instance = 0x2000 as *const ();
    let lr = line!() + 1;
    ld.release(&LOCK_A, instance);
    drop(gb);

    let want = fmt_lines![
        "",
        "=====================================",
        "WARNING: bad unlock balance detected!",
        "6.8.0-kmem #1 Not tainted",
        "-------------------------------------",
        "kworker/9 is trying to release lock (lock-A) at:",
        "{{site:{lr}}}",
        "but there are no more locks to release!",
        "",
        "other info that might help us debug this:",
        "1 lock held by kworker/9:",
        " #0: {{addr}} (lock-B){{....}}, at: {{site:{lb}}}",
    ];
    assert_lines(&host.text(), &want);
    assert_eq!(ld.reason(), Some(Report::BadUnlockBalance));
    assert_eq!(*host.reported.lock().unwrap(), [Report::BadUnlockBalance]);
}

#[test]
fn force_unlock_of_a_lock_taken_before_attaching_is_a_bad_unlock_balance() {
    let host = Host::new();
    let ld = validator(host);
    let a = M::new(&LOCK_A, 7u32);
    core::mem::forget(a.lock()); // not attached yet: untracked
    attach(&ld, &[&a]);
    host.set_task(4);
    let l = line!() + 2;
    // SAFETY: locked above by this thread, guard forgotten.
    unsafe { a.force_unlock() };
    let t = host.text();
    assert_eq!(t[2], "WARNING: bad unlock balance detected!");
    assert_eq!(t[5], "kworker/4 is trying to release lock (lock-A) at:");
    assert!(
        line_matches(&t[6], &std::format!("{{site:{l}}}")),
        "{}",
        t[6]
    );
    assert_eq!(t[t.len() - 1], "no locks held by kworker/4.");
    assert!(!a.is_locked());
    assert_eq!(*a.lock(), 7);
}

#[test]
fn force_unlock_of_a_tracked_lock_is_balanced() {
    let host = Host::new();
    let ld = validator(host);
    let a = M::new(&LOCK_A, ());
    attach(&ld, &[&a]);
    core::mem::forget(a.lock());
    assert_eq!(a.is_held(), Some(true));
    // SAFETY: locked above by this thread, guard forgotten.
    unsafe { a.force_unlock() };
    assert_eq!(a.is_held(), Some(false));
    assert!(host.text().is_empty());
    assert!(!ld.is_off());
}

// ------------------------------------------------------------------------------ trylock

#[test]
fn a_trylock_adds_no_dependency_to_itself_but_passes_its_holder_on() {
    let host = Host::new();
    let ld = validator(host);
    let a = M::new(&LOCK_A, ());
    let b = M::new(&LOCK_B, ());
    let c = M::new(&LOCK_C, ());
    attach(&ld, &[&a, &b, &c]);
    let ga = a.lock();
    let gb = b.try_lock().expect("free");
    let gc = c.lock();
    drop((gc, gb, ga));
    assert!(!ld.depends(&LOCK_A, &LOCK_B), "a trylock cannot deadlock");
    assert!(ld.depends(&LOCK_B, &LOCK_C));
    assert!(ld.depends(&LOCK_A, &LOCK_C), "the lock under the trylock");
    // So B then A is fine, but C then A is not.
    {
        let _gb = b.lock();
        let _ga = a.lock();
    }
    assert!(host.text().is_empty());
    let _gc = c.lock();
    let _ga = a.lock();
    assert_eq!(ld.reason(), Some(Report::CircularDependency));
}

// ------------------------------------------------------------------------------ overflow

#[test]
fn too_deep_a_stack_turns_the_validator_off_without_panicking() {
    let host = Host::new();
    let ld = validator(host);
    let locks: Vec<M<()>> = MANY[..MAX_LOCK_DEPTH + 1]
        .iter()
        .map(|c| M::new(c, ()))
        .collect();
    for l in &locks {
        attach(&ld, &[l]);
    }
    let mut guards = Vec::new();
    for l in &locks {
        guards.push(l.lock());
    }
    assert!(ld.is_off());
    assert_eq!(ld.reason(), Some(Report::Overflow));
    assert_eq!(ld.report_count(), 0, "an overflow is not a locking bug");
    let t = host.text();
    assert_eq!(t[0], "BUG: MAX_LOCK_DEPTH too low!");
    assert_eq!(t[1], "turning off the locking correctness validator.");
    assert_eq!(
        t[2],
        std::format!("depth: {MAX_LOCK_DEPTH}  max: {MAX_LOCK_DEPTH}!")
    );
    assert_eq!(
        t[3],
        std::format!("{MAX_LOCK_DEPTH} locks held by kworker/1:")
    );
    assert_eq!(t.len(), 4 + MAX_LOCK_DEPTH);
    assert!(host.levels().iter().all(|&l| l == LEVEL_DEBUG));
    drop(guards); // releases while off: nothing printed
    assert_eq!(host.text().len(), 4 + MAX_LOCK_DEPTH);
}

#[test]
fn too_many_tasks_turns_the_validator_off_without_panicking() {
    let host = Host::new();
    let ld = validator(host);
    let locks: Vec<M<()>> = (0..=MAX_LOCKDEP_TASKS)
        .map(|_| M::new(&LOCK_A, ()))
        .collect();
    for l in &locks {
        attach(&ld, &[l]);
    }
    let mut guards = Vec::new();
    for (task, l) in locks.iter().enumerate() {
        host.set_task(task as u64 + 1);
        guards.push(l.lock()); // each task holds one lock: one stack each
        if task < MAX_LOCKDEP_TASKS {
            assert!(!ld.is_off(), "task {task}");
        }
    }
    assert_eq!(ld.reason(), Some(Report::Overflow));
    assert_eq!(
        host.text(),
        lines(&[
            "BUG: MAX_LOCKDEP_TASKS too low!",
            "turning off the locking correctness validator."
        ])
    );
    drop(guards);
}

#[test]
fn a_task_that_holds_nothing_gives_its_stack_back() {
    let host = Host::new();
    let ld = validator(host);
    let a = M::new(&LOCK_A, ());
    attach(&ld, &[&a]);
    for task in 1..=(4 * MAX_LOCKDEP_TASKS as u64) {
        host.set_task(task);
        drop(a.lock());
    }
    assert!(!ld.is_off());
    assert!(host.text().is_empty());
}

#[test]
fn too_many_classes_turns_the_validator_off_without_panicking() {
    let host = Host::new();
    let ld = validator(host);
    for (i, c) in MANY.iter().enumerate() {
        let l = M::new(c, ());
        attach(&ld, &[&l]);
        drop(l.lock());
        assert_eq!(ld.is_off(), i >= MAX_LOCKDEP_KEYS, "class {i}");
    }
    assert_eq!(
        host.text(),
        lines(&[
            "BUG: MAX_LOCKDEP_KEYS too low!",
            "turning off the locking correctness validator."
        ])
    );
}

#[test]
fn an_invalid_subclass_turns_the_validator_off() {
    let host = Host::new();
    let ld = validator(host);
    let a = M::new(&LOCK_A, ());
    attach(&ld, &[&a]);
    drop(a.lock_nested(kds::lockdep::MAX_LOCKDEP_SUBCLASSES));
    assert_eq!(ld.reason(), Some(Report::Overflow));
    assert_eq!(host.text()[0], "BUG: looking up invalid subclass");
}

// ------------------------------------------------------------------------------ plumbing

#[test]
fn an_unattached_mutex_is_a_plain_lock() {
    let a = M::new(&LOCK_A, 1u32);
    let b = M::new(&LOCK_A, 2u32);
    // The same class twice would be recursion, but nobody is watching.
    let ga = a.lock();
    let gb = b.lock();
    assert_eq!(*ga + *gb, 3);
    assert!(a.lockdep().is_none());
    assert_eq!(a.is_held(), None);
    assert!(a.try_lock().is_none());
    drop((ga, gb));
    assert_eq!(a.into_inner(), 1);
}

#[test]
fn attach_is_write_once() {
    let h1 = Host::new();
    let h2 = Host::new();
    let l1 = validator(h1);
    let l2 = validator(h2);
    let a = M::new(&LOCK_A, ());
    attach(&l1, &[&a]);
    attach(&l2, &[&a]);
    assert!(core::ptr::eq(a.lockdep().unwrap(), &*l1));
    let _g = a.lock();
    assert_eq!(l1.held_count(), 1);
    assert_eq!(l2.held_count(), 0);
}

#[test]
fn one_class_in_two_validators_is_two_independent_graphs() {
    // Machines are independent: one class static used by two validators (the class caches
    // its key index as a hint, which must not leak between them).
    let (h1, h2) = (Host::new(), Host::new());
    let (l1, l2) = (validator(h1), validator(h2));
    let (a1, b1) = (M::new(&LOCK_A, ()), M::new(&LOCK_B, ()));
    let (a2, b2, c2) = (
        M::new(&LOCK_A, ()),
        M::new(&LOCK_B, ()),
        M::new(&LOCK_C, ()),
    );
    attach(&l1, &[&a1, &b1]);
    attach(&l2, &[&a2, &b2, &c2]);
    drop(c2.lock()); // different key numbering in l2
    {
        let _a = a1.lock();
        let _b = b1.lock();
    }
    {
        let _b = b2.lock();
        let _a = a2.lock();
    }
    assert!(l1.depends(&LOCK_A, &LOCK_B) && !l1.depends(&LOCK_B, &LOCK_A));
    assert!(l2.depends(&LOCK_B, &LOCK_A) && !l2.depends(&LOCK_A, &LOCK_B));
    assert!(h1.text().is_empty() && h2.text().is_empty());
}

#[test]
fn dependencies_are_listed_like_proc_lockdep() {
    let host = Host::new();
    let ld = validator(host);
    let a = M::new(&LOCK_A, ());
    let b = M::new(&LOCK_B, ());
    let c = M::new(&LOCK_C, ());
    attach(&ld, &[&a, &b, &c]);
    let ga = a.lock();
    let (gb, lb) = (b.lock(), line!());
    let gc = c.lock();
    drop((gc, gb, ga));
    let mut s = String::new();
    ld.write_dependencies(&mut s).unwrap();
    let got: Vec<String> = s.lines().map(String::from).collect();
    let la = lb - 1;
    let lc = lb + 1;
    let want = fmt_lines![
        "all lock classes:",
        "FD:    3 BD:    1 : lock-A",
        " -> [lock-B] at {{site:{lb}}} (under {{site:{la}}})",
        "",
        "FD:    2 BD:    2 : lock-B",
        " -> [lock-C] at {{site:{lc}}} (under {{site:{lb}}})",
        "",
        "FD:    1 BD:    3 : lock-C",
        "",
    ];
    assert_lines(&got, &want);
}

#[test]
fn long_report_lines_are_split_at_char_boundaries() {
    static LONG: LockClass = LockClass::new(
        "a-very-long-lock-class-name-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-\
         äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-\
         äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü-äöü",
    );
    let host = Host::new();
    let ld = validator(host);
    let a = M::new(&LONG, ());
    attach(&ld, &[&a]);
    ld.release(&LONG, &a as *const M<()> as *const ());
    let t = host.text();
    assert!(t.iter().all(|l| l.len() <= 256));
    // Joined back, the split line is whole.
    let joined: String = t[5..7].concat();
    assert_eq!(
        joined,
        std::format!("kworker/1 is trying to release lock ({}) at:", LONG.name())
    );
}

// ------------------------------------------------------------------------------ threads

#[test]
fn real_threads_a_consistent_order_then_an_inversion() {
    let host = Host::per_thread();
    let ld: &'static Lockdep = kept(validator(host));
    let a: &'static M<u64> = kept(Box::new(M::new(&LOCK_A, 0)));
    let b: &'static M<u64> = kept(Box::new(M::new(&LOCK_B, 0)));
    attach(ld, &[a, b]);

    let hammered = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..2000 {
                    let mut ga = a.lock();
                    let mut gb = b.lock();
                    *ga += 1;
                    *gb += 1;
                }
                hammered.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    assert_eq!(hammered.load(Ordering::Relaxed), 4);
    assert_eq!((*a.lock(), *b.lock()), (8000, 8000));
    assert!(host.text().is_empty(), "{:#?}", host.text());
    assert!(!ld.is_off());

    // Another thread takes them the other way round: reported before it blocks.
    let tid = std::thread::spawn(|| {
        let _gb = b.lock();
        let _ga = a.lock();
        THREAD_TASK.with(|t| t.get())
    })
    .join()
    .unwrap();
    let t = host.text();
    assert_eq!(
        t[2],
        "WARNING: possible circular locking dependency detected"
    );
    assert_eq!(
        t[5],
        std::format!("kworker/{tid} is trying to acquire lock:")
    );
    assert!(t[6].contains("(lock-A)"));
    assert!(t[9].contains("(lock-B)"));
    assert_eq!(ld.report_count(), 1);
}

// ------------------------------------------------------------------------------ release builds

#[test]
fn the_wrapper_costs_a_class_and_a_pointer_in_debug_builds() {
    use core::mem::size_of;
    assert!(Lockdep::enabled());
    assert_eq!(
        size_of::<M<u64>>(),
        size_of::<lock_api::Mutex<RawSpin, u64>>() + 2 * size_of::<usize>()
    );
}
