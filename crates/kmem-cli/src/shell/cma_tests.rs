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
