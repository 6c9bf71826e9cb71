//! The CMA and coherent-DMA functions driven by the shell (issue 16).

use super::device_tests::{run, shell_mem};
use super::Shell;

fn shell(cmdline: &str) -> Shell {
    shell_mem(256 << 20, cmdline)
}

#[test]
fn cma_alloc_and_release_from_the_shell() {
    let mut sh = shell("cma=16M");
    let (out, err) = run(
        &mut sh,
        "c = cma_find(\"reserved\")\n\
         pg = cma_alloc(c, 4096, 0, 0)\n\
         cat /sys/kernel/mm/cma/reserved/alloc_pages_success\n\
         cat /sys/kernel/debug/cma/reserved/used\n\
         cma_release(c, pg, 4096)\n\
         cat /sys/kernel/mm/cma/reserved/available_pages\n\
         cat /sys/kernel/mm/cma/reserved/release_pages_success\n",
    );
    assert!(err.is_empty(), "{err}");
    let nums: Vec<&str> = out.lines().filter(|l| l.trim() == "4096").collect();
    assert_eq!(nums.len(), 4, "{out}");
    let (_, err) = run(&mut sh, "cma_alloc(99, 1, 0, 0)\n");
    assert!(err.contains("is not a CMA area"), "{err}");
}

#[test]
fn dma_alloc_coherent_from_the_device_area() {
    let mut sh = shell("cma=v=20M,c=20M cma_map=video=v;camera=c");
    let (out, err) = run(
        &mut sh,
        "d = device_create(\"camera0\", \"platform\")\n\
         v = dma_alloc_coherent(d, 16384, GFP_KERNEL)\n\
         cat /sys/kernel/mm/cma/c/alloc_pages_success\n\
         cat /sys/kernel/mm/cma/v/alloc_pages_success\n\
         dma_free_coherent(d, 16384, v)\n\
         cat /sys/kernel/mm/cma/c/release_pages_success\n",
    );
    assert!(err.is_empty(), "{err}");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(lines.contains(&"4"), "{out}");
    assert!(lines.contains(&"0"), "{out}");
    assert_eq!(lines.iter().filter(|l| **l == "4").count(), 2, "{out}");
}

/// Issue 16's first "Done when" as a script: `cma=16M` on 256 MiB, a process fills memory
/// (some of its pages land in the CMA pageblocks), `cma_alloc` of 4096 pages migrates them
/// out, the process's data is intact, and `cma_release` restores the counters.
#[test]
fn cma_alloc_migrates_a_process_from_the_shell() {
    let mut sh = shell("cma=16M");
    let (out, err) = run(
        &mut sh,
        "cat /sys/kernel/mm/cma/reserved/available_pages\n\
         c = cma_find(\"reserved\")\n\
         t = cma_alloc(c, 1, 0, 0); b = page_to_pfn(t); cma_release(c, t, 1)\n\
         p = spawn(\"filler\")\n\
         a = mmap(p, 0, 192 << 20, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\n\
         umemset(p, a, 0x5a, 192 << 20)\n\
         n = 0; for (i = 0; i < 49152; i++) { f = user_page_pfn(p, a + i * 4096); if (f >= b && f < b + 4096) n++ }\n\
         echo borrowed $n\n\
         pg = cma_alloc(c, 4096, 0, 0)\n\
         page_to_pfn(pg) == b\n\
         m = 0; for (i = 0; i < 49152; i++) { f = user_page_pfn(p, a + i * 4096); if (f >= b && f < b + 4096) m++ }\n\
         echo left $m\n\
         bad = 0; for (i = 0; i < 49152; i += 7) { if (upeek8(p, a + i * 4096 + i % 4096) != 0x5a) bad++ }\n\
         echo bad $bad\n\
         cat /sys/kernel/mm/cma/reserved/alloc_pages_success\n\
         cma_release(c, pg, 4096)\n\
         cat /sys/kernel/mm/cma/reserved/available_pages\n\
         kill(p, SIGKILL)\n",
    );
    assert!(err.is_empty(), "{err}");
    assert!(!out.contains("borrowed 0\n"), "{out}");
    assert!(out.contains("left 0\n"), "{out}");
    assert!(out.contains("bad 0\n"), "{out}");
    // available_pages before and after; alloc_pages_success counts the probe's page too.
    assert_eq!(
        out.lines().filter(|l| l.trim() == "4096").count(),
        2,
        "{out}"
    );
    assert!(out.lines().any(|l| l.trim() == "4097"), "{out}");
    assert_eq!(sh.k.reports(), 0);
}

/// A pinned page cannot move: `move_pages` leaves it (`-EAGAIN` inside, counted in
/// pgmigrate_fail), and moves it once unpinned.
#[test]
fn pinned_pages_stay_until_unpinned() {
    let mut sh = shell("");
    let (out, err) = run(
        &mut sh,
        "p = spawn(\"dma\")\n\
         a = mmap(p, 0, 4 << 12, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\n\
         umemset(p, a, 0x77, 4 << 12)\n\
         pin_user_pages(p, a, 2, FOLL_WRITE|FOLL_LONGTERM)\n\
         folio_maybe_dma_pinned(p, a)\n\
         f0 = user_page_pfn(p, a); f2 = user_page_pfn(p, a + 8192)\n\
         move_pages(p, a, 4)\n\
         user_page_pfn(p, a) == f0\n\
         user_page_pfn(p, a + 8192) == f2\n\
         unpin_user_pages(p, a, 2)\n\
         folio_maybe_dma_pinned(p, a)\n\
         move_pages(p, a, 4)\n\
         user_page_pfn(p, a) == f0\n\
         upeek8(p, a + 4095) == 0x77\n\
         pin_user_pages(p, 0x1000, 1, 0)\n\
         kill(p, SIGKILL)\n",
    );
    assert!(err.is_empty(), "{err}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| !l.contains(" = "))
        .map(str::trim)
        .collect();
    assert_eq!(
        lines,
        ["2", "1", "2", "1", "0", "0", "0", "0", "1", "-EFAULT", "0"],
        "{out}"
    );
    assert_eq!(sh.k.reports(), 0);
}
