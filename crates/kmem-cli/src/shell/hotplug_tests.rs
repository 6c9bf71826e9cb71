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
