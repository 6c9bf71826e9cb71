//! Real stack traces in reports (issue 17): `dump_stack`'s Call Trace, kmemleak's
//! `backtrace`, SLUB's alloc/free tracks and KFENCE's stacks come from the platform's walker
//! (the hosted platform's unwinder here), are symbolised (`name+0xoff/0xsize`), and are kept
//! once per distinct stack in the stack depot. Without a walker, reports name the Rust call
//! site as before.
mod common;

use std::ptr;

use kmem::arch::Arch;
use kmem::{BootParams, GfpFlags, Machine};
use kmem_hosted::{HostedConfig, HostedPlatform, StackWalk};

use common::M;

const K: GfpFlags = GfpFlags::GFP_KERNEL;

fn boot(cmdline: &str) -> M {
    common::boot_with(Arch::X86_64, 128 << 20, 2, cmdline, 7)
}

fn boot_walk(cmdline: &str, walk: StackWalk) -> M {
    let mut params = BootParams::simulated(Arch::X86_64, 128 << 20, 2).unwrap();
    params.cmdline = cmdline;
    let plat = HostedPlatform::new(HostedConfig::deterministic(
        params.e820.ram_end().next_multiple_of(4096),
        7,
    ))
    .unwrap();
    plat.set_stack_walk(walk);
    Machine::boot(plat, &params).unwrap()
}

/// The lines of `log` between `Call Trace:`'s ` <TASK>` and ` </TASK>`.
fn call_trace(log: &str) -> Vec<&str> {
    log.lines()
        .skip_while(|l| *l != " <TASK>")
        .skip(1)
        .take_while(|l| *l != " </TASK>")
        .collect()
}

#[test]
#[inline(never)]
fn warn_prints_a_symbolised_call_trace() {
    let m = boot("");
    m.platform().take_captured();
    m.warn(format_args!("test warning"));
    let log = m.platform().take_captured();
    assert!(log.contains("Call Trace:"), "{log}");
    let frames = call_trace(&log);
    // dump_stack_lvl's frames: one `%pS` a line, one space of indent, down to this test.
    assert!(frames.len() >= 2, "{log}");
    for f in &frames {
        assert!(f.starts_with(' ') && !f.starts_with("  "), "{log}");
        assert!(f.contains("+0x") || f.starts_with(" 0x"), "{log}");
    }
    assert!(
        frames
            .iter()
            .any(|f| f.contains("warn_prints_a_symbolised_call_trace")),
        "{log}"
    );
    // The walker's own frames are not shown.
    assert!(!log.contains("stack_trace_save"), "{log}");
}

#[inline(never)]
fn alloc_here(m: &M) -> *mut u8 {
    m.kmalloc(64, K).unwrap().as_ptr()
}

#[test]
fn kmemleak_stacks_are_saved_once_per_call_path() {
    let m = boot("kmemleak=on");
    let before = m.stack_depot().stats().0;
    let ps: Vec<*mut u8> = (0..1000).map(|_| alloc_here(&m)).collect();
    let after = m.stack_depot().stats().0;
    // 1000 objects from one call path: a handful of records (one per distinct stack, the
    // slab's refills and the metadata pool's growth included), not one per object.
    assert!(after - before <= 8, "{before} → {after} records");
    for p in ps {
        m.kfree(p);
    }
    let (_, bytes, dropped) = m.stack_depot().stats();
    assert!(bytes > 0 && bytes < 1 << 20);
    assert_eq!(dropped, 0);
}

#[test]
fn slub_tracks_print_the_alloc_and_free_stacks() {
    let m = boot("slub_debug=FZPU");
    let p = alloc_here(&m);
    m.kfree(p);
    m.platform().take_captured();
    // A double free: print_tracking shows both tracks, each with its stack.
    m.kfree(p);
    let log = m.platform().take_captured();
    let alloc = log.find("INFO: Allocated in ").expect(&log);
    let freed = log.find("INFO: Freed in ").expect(&log);
    assert!(alloc < freed, "{log}");
    let alloc_stack = &log[alloc..freed];
    assert!(
        alloc_stack.contains("\n ") && alloc_stack.contains("alloc_here+0x"),
        "{log}"
    );
    let free_stack: String = log[freed..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .collect();
    assert!(
        free_stack.contains("slub_tracks_print_the_alloc_and_free_stacks"),
        "{log}"
    );
    assert!(!log.contains("stack trace missing"), "{log}");
}

/// A real load, which faults on a KFENCE guard page (see tests/kfence.rs).
#[inline(never)]
fn read_once(p: *const u8) -> u8 {
    // SAFETY: `p` is one byte past a KFENCE object: its guard page, whose fault KFENCE's
    // handler reports and unprotects before the load is retried.
    std::hint::black_box(unsafe { ptr::read_volatile(p) })
}

#[test]
fn fault_report_names_the_faulting_code() {
    let m = boot("kfence.sample_interval=1");
    let mut p = ptr::null_mut();
    for _ in 0..10_000 {
        m.platform().advance_jiffies(1);
        let q = m.kmalloc(32, K).unwrap().as_ptr();
        if m.is_kfence_address(q) && !(q as usize).is_multiple_of(4096) {
            p = q;
            break;
        }
        m.kfree(q);
    }
    assert!(
        !p.is_null(),
        "no KFENCE object against the right guard page"
    );
    m.platform().take_captured();
    read_once(p.wrapping_add(32));
    let log = m.platform().take_captured();
    let title = log
        .lines()
        .find(|l| l.starts_with("BUG: KFENCE: out-of-bounds read in "))
        .expect(&log);
    // The faulting instruction, symbolised (%pS): `read_once`, or the `read_volatile` it
    // calls where the build does not inline it.
    assert!(title.contains("read_") && title.contains("+0x"), "{log}");
    // The access stack goes on below the signal frame, into this test; the handler's frames
    // (KFENCE's and the platform's) are skipped. (The test's name must not start with
    // `kfence_`: KFENCE skips such frames, as Linux's get_stack_skipnr does.)
    let access: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.starts_with("Out-of-bounds read at "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(
        access
            .iter()
            .any(|l| l.contains("stacks::fault_report_names_the_faulting_code")),
        "{log}"
    );
    assert!(!access.iter().any(|l| l.contains("kfence_")), "{log}");
    assert!(!access.iter().any(|l| l.contains("on_fault")), "{log}");
    m.kfree(p);
}

#[test]
fn without_a_walker_reports_name_the_call_site() {
    let m = boot_walk("kmemleak=on", StackWalk::Off);
    m.platform().take_captured();
    m.warn(format_args!("no walker"));
    let log = m.platform().take_captured();
    let frames = call_trace(&log);
    assert_eq!(frames.len(), 1, "{log}");
    assert!(frames[0].contains("tests/stacks.rs:"), "{log}");
    let p = alloc_here(&m);
    // No stack, so nothing reaches the depot.
    assert_eq!(m.stack_depot().stats().0, 0);
    m.kfree(p);
}
