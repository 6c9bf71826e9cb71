//! Issue 15's swap scenario on the hosted platform: on a 64 MiB machine with a 256 MiB swap
//! file, a task that fills a 128 MiB mapping reads every byte back, /proc/vmstat shows
//! pswpout and pswpin, /proc/swaps the use; without swap the same task is OOM-killed with
//! Linux's report, the machine goes on and the memory comes back.

mod common;
use common::*;
use kmem::arch::Arch;
use kmem::mm::VmEvent;
use kmem::uaccess::UaccessError;
use kmem::vma::*;
use kmem::PAGE_SIZE;
use kmem_hosted::FileSwap;

const MIB: u64 = 1 << 20;
const RW: u32 = PROT_READ | PROT_WRITE;
const PA: u32 = MAP_PRIVATE | MAP_ANONYMOUS;

/// The byte the task writes at offset `i` of its mapping.
fn pattern(i: u64) -> u8 {
    ((i / PAGE_SIZE as u64).wrapping_mul(131) ^ (i % 251)) as u8
}

/// Fills `len` bytes at `a` of task `p` with `pattern`, a page at a time.
fn fill(m: &M, p: i32, a: u64, len: u64) -> Result<(), UaccessError> {
    let mut buf = vec![0u8; PAGE_SIZE];
    for off in (0..len).step_by(PAGE_SIZE) {
        for (j, b) in buf.iter_mut().enumerate() {
            *b = pattern(off + j as u64);
        }
        m.uwrite(p, a + off, &buf)?;
    }
    Ok(())
}

#[test]
fn task_larger_than_memory_swaps_and_reads_back() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let free0 = baseline(&m);
    let (path, name) = swapon_file(&m, "swap-test", 256 * MIB);
    let swaps = proc(&m, "/proc/swaps");
    assert!(swaps.contains("file\t\t262140\t\t0\t\t-2"), "{swaps}");
    let p = m.spawn("filler").unwrap();
    let len = 128 * MIB;
    let a = m.mmap(p, 0, len, RW, PA, -1, 0).unwrap();
    fill(&m, p, a, len).unwrap();
    // Every byte back.
    let mut buf = vec![0u8; PAGE_SIZE];
    for off in (0..len).step_by(PAGE_SIZE) {
        m.uread(p, a + off, &mut buf).unwrap();
        for (j, b) in buf.iter().enumerate() {
            assert_eq!(*b, pattern(off + j as u64), "byte {:#x}", off + j as u64);
        }
    }
    assert!(vmstat(&m, "pswpout") > 0);
    assert!(vmstat(&m, "pswpin") > 0);
    assert!(m.vm_event(VmEvent::PgMajFault) > 0);
    let swaps = proc(&m, "/proc/swaps");
    let used: u64 = swaps
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert!(used > 0, "{swaps}");
    let info = proc(&m, "/proc/meminfo");
    assert_eq!(kb_field(&info, "SwapTotal:"), 262140);
    assert!(kb_field(&info, "SwapFree:") < 262140, "{info}");
    assert!(kb_field(&info, "Inactive(anon):") + kb_field(&info, "Active(anon):") > 0);
    assert!(
        kb_field(&info, "SwapCached:") > 0,
        "read faults leave pages in the swap cache"
    );
    let status = proc(&m, &format!("/proc/{p}/status"));
    assert!(status.contains("VmSwap:"), "{status}");
    // oom_score: 1000 + badness * 1000 / (RAM + swap); 128 MiB of 312 MiB is about 410.
    let q = m.spawn("small").unwrap();
    let score = |pid: i32| -> u64 {
        proc(&m, &format!("/proc/{pid}/oom_score"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!((1380..=1430).contains(&score(p)), "{}", score(p));
    assert_eq!(score(q), 1000);
    m.exit(q).unwrap();
    m.exit(p).unwrap();
    let swaps = proc(&m, "/proc/swaps");
    assert!(
        swaps.contains("file\t\t262140\t\t0\t\t-2"),
        "slots back: {swaps}"
    );
    m.swapoff(&name).unwrap();
    assert_eq!(proc(&m, "/proc/swaps").lines().count(), 1);
    m.synchronize_rcu();
    let free = settle(&m);
    assert!(
        free + 16 >= free0 && free <= free0,
        "memory back: {free} vs {free0}"
    );
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn without_swap_the_task_is_oom_killed_and_memory_comes_back() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let free0 = baseline(&m);
    let p = m.spawn("filler").unwrap();
    let len = 128 * MIB;
    let a = m.mmap(p, 0, len, RW, PA, -1, 0).unwrap();
    assert_eq!(fill(&m, p, a, len), Err(UaccessError::OutOfMemory));
    let log = m.platform().take_captured();
    assert!(
        log.contains("filler invoked oom-killer: gfp_mask=0x"),
        "{log}"
    );
    assert!(log.contains("Mem-Info:"), "{log}");
    assert!(log.contains("[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name"), "{log}");
    let kill = log
        .lines()
        .find(|l| l.contains("Out of memory: Killed process"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        kill.contains(&format!("Killed process {p} (filler) total-vm:")),
        "{kill}"
    );
    assert!(
        kill.contains("UID:0 pgtables:") && kill.ends_with("oom_score_adj:0"),
        "{kill}"
    );
    assert_eq!(vmstat(&m, "oom_kill"), 1);
    // The task is gone, the machine goes on, its memory came back.
    assert!(m.uread(p, a, &mut [0u8; 1]).is_err());
    let q = m.spawn("after").unwrap();
    let b = m.mmap(q, 0, MIB, RW, PA, -1, 0).unwrap();
    m.umemset(q, b, 7, MIB).unwrap();
    m.exit(q).unwrap();
    assert_eq!(settle(&m), free0);
}

#[test]
fn swapoff_brings_every_page_back_and_swap_free_stays_right() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let (path, name) = swapon_file(&m, "swapoff-test", 128 * MIB);
    let p = m.spawn("filler").unwrap();
    let len = 80 * MIB;
    let a = m.mmap(p, 0, len, RW, PA, -1, 0).unwrap();
    fill(&m, p, a, len).unwrap();
    // Half goes away; what is left fits in memory, partly still in swap.
    m.munmap(p, a + len / 2, len / 2).unwrap();
    let info = proc(&m, "/proc/meminfo");
    assert!(
        kb_field(&info, "SwapFree:") < kb_field(&info, "SwapTotal:"),
        "{info}"
    );
    // try_to_unuse swaps every page of the area back in.
    m.swapoff(&name).unwrap();
    let info = proc(&m, "/proc/meminfo");
    assert_eq!(kb_field(&info, "SwapTotal:"), 0, "{info}");
    assert_eq!(kb_field(&info, "SwapFree:"), 0, "{info}");
    assert_eq!(kb_field(&info, "SwapCached:"), 0, "{info}");
    let mut buf = vec![0u8; PAGE_SIZE];
    for off in (0..len / 2).step_by(PAGE_SIZE) {
        m.uread(p, a + off, &mut buf).unwrap();
        assert!(
            buf.iter()
                .enumerate()
                .all(|(j, b)| *b == pattern(off + j as u64)),
            "page {off:#x}"
        );
    }
    let status = proc(&m, &format!("/proc/{p}/status"));
    assert!(status.contains("VmSwap:\t       0 kB"), "{status}");
    // A new area starts with every slot free.
    m.swapon(&name, FileSwap::create(&path, 128 * MIB).unwrap(), None)
        .unwrap();
    let info = proc(&m, "/proc/meminfo");
    assert_eq!(
        kb_field(&info, "SwapFree:"),
        kb_field(&info, "SwapTotal:"),
        "{info}"
    );
    m.exit(p).unwrap();
    m.swapoff(&name).unwrap();
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
    std::fs::remove_file(&path).unwrap();
}

fn smaps_swap_kb(m: &M, pid: i32) -> u64 {
    kb_field(&proc(m, &format!("/proc/{pid}/smaps_rollup")), "Swap:")
}

/// More than `SWAP_MAP_MAX` (62) PTEs naming one slot: the count continues in a
/// continuation page (mm/swapfile.c `add_swap_count_continuation`), so 70 forks of a task
/// whose page is in swap all succeed, every child reads the page, and every slot and
/// continuation page is given back.
#[test]
fn seventy_forks_share_one_swapped_page() {
    let m = boot(Arch::X86_64, 64 * MIB, 1);
    let free0 = baseline(&m);
    let (path, name) = swapon_file(&m, "swapcont-test", 128 * MIB);
    let p = m.spawn("parent").unwrap();
    let a = m.mmap(p, 0, PAGE_SIZE as u64, RW, PA, -1, 0).unwrap();
    m.upoke(p, a, 8, 0xfeed).unwrap();
    // Another task fills memory until the parent's page is pushed out to swap.
    let q = m.spawn("press").unwrap();
    let len = 96 * MIB;
    let b = m.mmap(q, 0, len, RW, PA, -1, 0).unwrap();
    let mut off = 0;
    while smaps_swap_kb(&m, p) == 0 {
        assert!(off < len, "the parent's page never went to swap");
        m.umemset(q, b + off, 1, 256 * PAGE_SIZE as u64).unwrap();
        off += 256 * PAGE_SIZE as u64;
    }
    m.exit(q).unwrap();
    let kids: Vec<i32> = (0..70)
        .map(|i| m.fork(p).unwrap_or_else(|e| panic!("fork {i}: {e:?}")))
        .collect();
    for (i, &k) in kids.iter().enumerate() {
        assert_eq!(m.upeek(k, a, 8), Ok(0xfeed), "child {i}");
        if i % 2 == 0 {
            m.upoke(k, a, 8, i as u64).unwrap();
        }
    }
    for (i, &k) in kids.iter().enumerate() {
        let want = if i % 2 == 0 { i as u64 } else { 0xfeed };
        assert_eq!(m.upeek(k, a, 8), Ok(want), "child {i}");
        m.exit(k).unwrap();
    }
    assert_eq!(m.upeek(p, a, 8), Ok(0xfeed));
    m.exit(p).unwrap();
    assert!(
        proc(&m, "/proc/swaps").contains("file\t\t131068\t\t0\t\t-2"),
        "{}",
        proc(&m, "/proc/swaps")
    );
    m.swapoff(&name).unwrap();
    std::fs::remove_file(&path).unwrap();
    m.synchronize_rcu();
    assert_eq!(settle(&m), free0);
    assert_eq!(m.bug_count(), 0, "{}", m.platform().take_captured());
}
