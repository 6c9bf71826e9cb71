//! Compaction driven by the shell (issue 16): a process fragments memory until an order-9
//! allocation fails, `echo 1 > /proc/sys/vm/compact_memory` makes it succeed, the extfrag
//! files show the change and the process's data is intact.

use super::device_tests::shell_mem;
use super::{run_script, Shell};

fn script(sh: &mut Shell, src: &str) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    run_script(sh, &mut src.as_bytes(), "t", false, &mut out, &mut err).unwrap();
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// The DMA32 row's order-9 cell of an extfrag file in `out` after the line `marker`.
fn dma32_order9(out: &str, marker: &str) -> String {
    let rest = &out[out
        .find(marker)
        .unwrap_or_else(|| panic!("{marker}:\n{out}"))..];
    let row = rest
        .lines()
        .find(|l| l.starts_with("Node 0, zone    DMA32 "))
        .unwrap_or_else(|| panic!("no DMA32 row:\n{out}"));
    row.split_whitespace().nth(13).unwrap().to_string()
}

#[test]
fn compact_memory_makes_a_failed_order9_allocation_succeed() {
    let mut sh = shell_mem(64 << 20, "");
    let (out, err) = script(
        &mut sh,
        "p = spawn(\"frag\")\n\
         a = mmap(p, 0, 16384 << 12, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\n\
         n = 0\n\
         while (1) {\n\
         \x20 g = alloc_pages(__GFP_NOWARN, 9)\n\
         \x20 if (g == NULL) { break }\n\
         \x20 __free_pages(g, 9)\n\
         \x20 umemset(p, a + (n << 12), 0x5a, 256 << 12)\n\
         \x20 n += 256\n\
         }\n\
         for (i = 0; i < n; i += 2) { upoke64(p, a + (i << 12), i) }\n\
         for (i = 1; i < n; i += 2) { madvise(p, a + (i << 12), 4096, MADV_DONTNEED) }\n\
         drain_local_pages()\n\
         before = alloc_pages(__GFP_NOWARN, 9)\n\
         echo extfrag-before\n\
         cat /sys/kernel/debug/extfrag/extfrag_index\n\
         echo 1 > /proc/sys/vm/compact_memory\n\
         g = alloc_pages(__GFP_NOWARN, 9)\n\
         echo extfrag-after\n\
         cat /sys/kernel/debug/extfrag/extfrag_index\n\
         bad = 0\n\
         for (i = 0; i < n; i += 2) { if (upeek64(p, a + (i << 12)) != i) { bad++ } }\n\
         for (i = 1; i < n; i += 2) { if (upeek8(p, a + (i << 12)) != 0) { bad++ } }\n\
         echo bad: $bad pages: $n\n\
         __free_pages(g, 9)\n\
         kill(p, SIGKILL)\n",
    );
    assert!(err.is_empty(), "{err}");
    // The order-9 allocation fails before and succeeds after.
    assert!(out.contains("\nbefore = 0x0\n"), "{out}");
    let g = out.lines().rfind(|l| l.starts_with("g = ")).unwrap();
    assert!(g.starts_with("g = 0xffffea"), "{out}");
    assert!(out.contains("bad: 0 pages: "), "{out}");
    assert_ne!(dma32_order9(&out, "extfrag-before"), "-1.000", "{out}");
    assert_eq!(dma32_order9(&out, "extfrag-after"), "-1.000", "{out}");
    let vmstat = {
        let (o, _) = script(&mut sh, "cat /proc/vmstat\n");
        o
    };
    let isolated = vmstat
        .lines()
        .find_map(|l| l.strip_prefix("compact_isolated "))
        .unwrap();
    assert_ne!(isolated, "0", "{vmstat}");
}
