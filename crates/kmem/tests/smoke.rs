mod common;
use common::*;
use kmem::arch::Arch;
use kmem::{GfpFlags, Order};

#[test]
fn boot_and_show() {
    let m = boot(Arch::X86_64, 1 << 30, 2);
    let mut log = String::new();
    m.dmesg(&mut log, true).unwrap();
    println!("{log}");
    println!("{}", proc(&m, "/proc/buddyinfo"));
    println!("{}", proc(&m, "/proc/zoneinfo"));
    println!("{}", proc(&m, "/proc/pagetypeinfo"));
    println!("{}", proc(&m, "/proc/meminfo"));
    m.check_invariants().unwrap();
    let before = proc(&m, "/proc/buddyinfo");
    let p = m.alloc_pages(GfpFlags::GFP_KERNEL, Order::new(5)).unwrap();
    assert_ne!(before, proc(&m, "/proc/buddyinfo"));
    m.__free_pages(p, Order::new(5));
    assert_eq!(before, proc(&m, "/proc/buddyinfo"));
    m.check_invariants().unwrap();
}
