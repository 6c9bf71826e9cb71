//! Memory hotplug from the shell (issue 19): `add_memory`, the memory blocks' sysfs files
//! written with `echo`, `remove_memory`.

use super::device_tests::run;
use super::Shell;
use crate::kernel::{BootOptions, Kernel};
use kmem::arch::Arch;

fn shell(maxmem: u64) -> Shell {
    let k = Kernel::boot(&BootOptions {
        arch: Arch::X86_64,
        mem: 1 << 30,
        cpus: 1,
        cmdline: String::new(),
        seed: 0,
        maxmem,
        numa: Default::default(),
    })
    .unwrap();
    Shell::new(k)
}

#[test]
fn add_online_offline_remove_from_the_shell() {
    let mut sh = shell(8 << 30);
    let (out, err) = run(
        &mut sh,
        "r = add_memory(0, 0x100000000, 0x40000000)\n\
         r\n\
         cat /sys/devices/system/memory/memory32/state\n\
         cat /sys/devices/system/memory/memory32/valid_zones\n\
         echo online_movable > /sys/devices/system/memory/memory32/state\n\
         cat /sys/devices/system/memory/memory32/valid_zones\n\
         echo offline > /sys/devices/system/memory/memory32/state\n\
         cat /sys/devices/system/memory/memory32/state\n\
         r = remove_memory(0x100000000, 0x40000000)\n\
         r\n\
         r = add_memory(0, 0x100000000, 0x1000)\n\
         r\n",
    );
    assert!(err.is_empty(), "{err}");
    assert_eq!(
        out,
        "r = 0\n0\noffline\nNormal Movable\n\
         Built 1 zonelists, mobility grouping on.  Total pages: 281276\n\
         Movable\n\
         Built 1 zonelists, mobility grouping on.  Total pages: 248604\n\
         offline\nr = 0\n0\nr = -EINVAL\n-EINVAL\n"
    );
}

#[test]
fn without_maxmem_nothing_can_be_added() {
    let mut sh = shell(0);
    let (out, err) = run(&mut sh, "r = add_memory(0, 0x100000000, 0x8000000)\nr\n");
    assert!(err.is_empty(), "{err}");
    assert_eq!(
        out,
        "Hotplug memory [0x100000000-0x107ffffff] exceeds maximum addressable range \
         [0x0-0x3ffdffff]\nr = -E2BIG\n-E2BIG\n"
    );
}

/// `add_memory` on node 1 of `kmem --numa 2 --maxmem 8G` (issue 19): the range, above all
/// boot memory, is backed by node 1's memfd, its blocks belong to node 1, onlined movable
/// they grow node 1's MemTotal and serve node 1's movable allocations; offline and remove
/// give it back. Node 2 is not online: `EINVAL`.
#[test]
fn add_memory_to_node_1_from_the_shell() {
    let k = Kernel::boot(&BootOptions {
        arch: Arch::X86_64,
        mem: 4 << 30,
        cpus: 2,
        cmdline: String::new(),
        seed: 0,
        maxmem: 8 << 30,
        numa: crate::kernel::NumaOptions {
            nodes: 2,
            ..Default::default()
        },
    })
    .unwrap();
    let mut sh = Shell::new(k);
    let node1 = |sh: &mut Shell| {
        let (out, _) = run(sh, "cat /sys/devices/system/node/node1/meminfo\n");
        let l = out.lines().find(|l| l.contains("MemTotal:")).unwrap();
        l.split_whitespace()
            .rev()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let before = node1(&mut sh);
    let (out, err) = run(
        &mut sh,
        "r = add_memory(2, 0x140000000, 0x8000000)\n\
         r = add_memory(1, 0x140000000, 0x8000000)\n\
         echo online_movable > /sys/devices/system/memory/memory40/state\n\
         cat /sys/devices/system/memory/memory40/valid_zones\n\
         p = alloc_pages_node(1, GFP_HIGHUSER_MOVABLE, 0)\n\
         page_to_nid(p)\n\
         __free_pages(p, 0)\n",
    );
    assert!(err.is_empty(), "{err}");
    assert!(
        out.contains("Cannot online node 2 due to NULL pgdat\nr = -EINVAL\nr = 0\n"),
        "{out}"
    );
    assert!(out.contains("Built 2 zonelists"), "{out}");
    assert!(out.contains("Movable\n"), "{out}");
    assert!(out.lines().any(|l| l == "1"), "{out}");
    assert_eq!(node1(&mut sh), before + (128 << 10));
    let (out, err) = run(
        &mut sh,
        "echo offline > /sys/devices/system/memory/memory40/state\n\
         r = remove_memory(0x140000000, 0x8000000)\n",
    );
    assert!(err.is_empty(), "{err}");
    assert!(out.ends_with("r = 0\n"), "{out}");
    assert_eq!(node1(&mut sh), before);
}
