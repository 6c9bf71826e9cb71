//! The platform may sit under `#[global_allocator]`: building it, entering CPU sections,
//! printing to a file-descriptor console, probing, reserving windows, booting a machine and
//! using its page allocator must not call the global allocator.
//!
//! This binary installs a counting allocator that counts, per thread, the allocations a thread
//! makes while it has counting switched on.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use kmem::arch::Arch;
use kmem::platform::{LogLevel, Platform};
use kmem::{BootParams, GfpFlags, Order, PhysAddr};
use kmem_hosted::{Clock, Console, HostedConfig, HostedPlatform};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: forwards to the system allocator; counting has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Runs `f` and returns its result with the number of allocations this thread made in it.
fn count<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, ALLOCS.with(Cell::get) - before)
}

fn config(console: Console) -> HostedConfig {
    HostedConfig {
        phys_size: 64 << 20,
        max_phys_size: 128 << 20,
        console,
        clock: Clock::Monotonic,
        seed: None,
    }
}

#[test]
fn the_counter_sees_allocations() {
    let (v, n) = count(|| std::hint::black_box(vec![1u8; 10]));
    assert_eq!(n, 1);
    drop(v);
    // The capture console is documented to allocate.
    let p = HostedPlatform::new(config(Console::Capture)).unwrap();
    let ((), n) = count(|| p.console_write(LogLevel::Err, "BUG: x\n"));
    assert!(n >= 1);
}

#[test]
fn platform_paths_do_not_allocate() {
    // Construction, with every non-capturing console.
    for console in [Console::Null, Console::Stderr, Console::Fd(2)] {
        let (p, n) = count(|| HostedPlatform::new(config(console)).unwrap());
        assert_eq!(n, 0, "HostedPlatform::new({console:?}) allocated");
        let (_, n) = count(|| drop(p));
        assert_eq!(n, 0, "dropping the platform allocated");
    }
    let p = HostedPlatform::new(config(Console::Null)).unwrap();
    // A fresh thread's first section (slot claim, registration, exit-handler arming), nested
    // sections, and everything else on the platform's hot paths.
    std::thread::scope(|s| {
        s.spawn(|| {
            let ((), n) = count(|| {
                let c = p.cpu_get();
                let d = p.cpu_get();
                p.cpu_put(d);
                p.cpu_put(c);
                p.console_write(LogLevel::Err, "BUG: test line\n");
                let _ = (
                    p.jiffies(),
                    p.random_u64(),
                    p.current_pid(),
                    p.current_comm(),
                );
                let _ = kmem_hosted::probe_read(std::ptr::null());
                let _ = kmem_hosted::probe_read(&0u8);
                let w = p.reserve_window(1 << 20).unwrap();
                w.map_phys_at(0, PhysAddr::new(0), 4096, true).unwrap();
                w.unmap_at(0, 4096).unwrap();
                drop(w);
                p.grow_phys(PhysAddr::new(96 << 20)).unwrap();
                // SAFETY: nothing uses that memory.
                unsafe { p.punch_hole(PhysAddr::new(1 << 20), 1 << 20).unwrap() };
                let _ = p.resident_bytes().unwrap();
            });
            assert_eq!(n, 0, "a platform hot path allocated");
        })
        .join()
        .unwrap();
    });
}

#[test]
fn booting_and_page_allocation_do_not_allocate() {
    let params = BootParams::simulated(Arch::X86_64, 64 << 20, 2).unwrap();
    let (m, n) = count(|| {
        let plat = HostedPlatform::new(HostedConfig {
            phys_size: params.e820.ram_end().next_multiple_of(4096),
            ..config(Console::Null)
        })
        .unwrap();
        kmem::Machine::boot(plat, &params).unwrap()
    });
    assert_eq!(n, 0, "booting allocated");
    let ((), n) = count(|| {
        for order in 0..4 {
            let p = m
                .alloc_pages(GfpFlags::GFP_KERNEL, Order::new(order))
                .unwrap();
            m.__free_pages(p, Order::new(order));
        }
    });
    assert_eq!(n, 0, "the page allocator allocated");
}

/// A fixed buffer for symbol names (a `String` would allocate).
struct Buf([u8; 512], usize);

impl core::fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.0.len() - self.1);
        self.0[self.1..self.1 + n].copy_from_slice(&s.as_bytes()[..n]);
        self.1 += n;
        Ok(())
    }
}

#[test]
fn stack_walks_and_symbols_do_not_allocate() {
    use kmem_hosted::StackWalk;
    let p = HostedPlatform::new(config(Console::Null)).unwrap();
    for walk in [StackWalk::Unwind, StackWalk::FramePointers] {
        p.set_stack_walk(walk);
        let mut out = [0usize; 16];
        let here = 0u8;
        let frame = std::hint::black_box(&here as *const u8 as usize);
        // The first walk too (the unwinder's one-time set-up).
        let (n, allocs) = count(|| p.stack_trace(&mut out, frame));
        assert_eq!(allocs, 0, "{walk:?}");
        let mut named = 0;
        let ((), allocs) = count(|| {
            for &e in &out[..n] {
                let mut b = Buf([0; 512], 0);
                if p.symbolize(e, &mut b) {
                    named += 1;
                }
            }
        });
        assert_eq!(allocs, 0, "{walk:?}");
        if walk == StackWalk::Unwind {
            // This test's frame and its callers, named from the executable's .symtab.
            assert!(n >= 2 && named >= 1, "{walk:?}: {n} frames, {named} named");
        }
    }
}
