//! `swap_out`: a table of processes keyed by pid (`<linux/hashtable.h>`), from which the
//! memory manager picks a victim under memory pressure and swaps it out.
//!
//! Each process has a resident set size and an "age" (ticks since it last ran). The victim
//! is the process with the largest `rss * age` (big and idle), like the old Linux
//! `swap_out()` scan that walked processes looking for the best one to steal pages from. The
//! victim's pages move to swap; it leaves the resident table and enters a swapped list, and
//! is found again by pid when it faults back in.
//!
//! Run with `cargo run -p kds --example hashtable_demo`.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

use core::cell::Cell;
use core::pin::pin;
use kds::hashtable::{HLink, HashTable};
use kds::list::{Link, List};

struct Process {
    pid: u32,
    comm: &'static str,
    rss_pages: Cell<u64>,
    age: Cell<u64>,
    swapped_pages: Cell<u64>,
    pid_hash: HLink,
    swap_list: Link,
}

kds::define_hash_adapter!(PidHash = Process { pid_hash } key u32 => |p| p.pid);
kds::define_list_adapter!(SwapList = Process { swap_list });

/// Picks the process with the largest `rss * age`; ties go to the lowest pid.
fn select_victim<'a, const N: usize>(table: &HashTable<'a, PidHash, N>) -> Option<&'a Process> {
    table
        .iter()
        .map(|(_bucket, p)| p)
        .max_by_key(|p| (p.rss_pages.get() * p.age.get(), core::cmp::Reverse(p.pid)))
}

fn main() {
    let procs = [
        ("systemd", 1, 900, 2),
        ("sshd", 412, 300, 40),
        ("postgres", 733, 52_000, 3),
        ("firefox", 1201, 180_000, 1),
        ("backup.sh", 1888, 24_000, 90),
        ("cron", 512, 150, 60),
        ("idle-vm", 2049, 96_000, 30),
    ]
    .map(|(comm, pid, rss, age)| Process {
        pid,
        comm,
        rss_pages: Cell::new(rss),
        age: Cell::new(age),
        swapped_pages: Cell::new(0),
        pid_hash: HLink::new(),
        swap_list: Link::new(),
    });

    // DEFINE_HASHTABLE(resident, 4): 16 buckets.
    let mut resident = pin!(HashTable::<PidHash, 16>::new());
    let mut swapped = List::<SwapList>::new();
    for p in &procs {
        resident.as_mut().add(p).expect("fresh process");
    }
    println!("resident processes by bucket (hash_32(pid, 4)):");
    for (bkt, p) in resident.iter() {
        println!(
            "  bucket {bkt:2}: pid {:5} {:10} rss {:7} pages, idle {:3} ticks",
            p.pid,
            p.comm,
            p.rss_pages.get(),
            p.age.get()
        );
    }

    // Memory pressure: free at least 100_000 pages.
    let target = 100_000u64;
    let mut freed = 0u64;
    println!("\nmemory pressure: need {target} pages");
    while freed < target {
        let Some(victim) = select_victim(&resident) else {
            println!("nothing left to swap out!");
            break;
        };
        let pages = victim.rss_pages.replace(0);
        victim.swapped_pages.set(pages);
        freed += pages;
        assert!(resident.as_mut().remove(victim));
        swapped.push_back(victim).expect("not on the swap list yet");
        println!(
            "  swap_out: pid {:5} {:10} score {:9} -> {pages:6} pages to swap (freed {freed})",
            victim.pid,
            victim.comm,
            pages * victim.age.get()
        );
    }

    // A swapped process faults: look it up by pid, bring it back.
    let faulting = 1888;
    println!("\npid {faulting} touches memory:");
    match resident.find(faulting) {
        Some(p) => println!("  {} is resident", p.comm),
        None => {
            let p = swapped
                .iter()
                .find(|p| p.pid == faulting)
                .expect("swapped process");
            swapped.remove(p).expect("on the swap list");
            p.rss_pages.set(p.swapped_pages.replace(0));
            p.age.set(0);
            resident.as_mut().add(p).expect("unhashed after swap-out");
            println!(
                "  swap_in: pid {} {} back with {} pages",
                p.pid,
                p.comm,
                p.rss_pages.get()
            );
        }
    }
    let names: Vec<&str> = swapped.iter().map(|p| p.comm).collect();
    println!("still swapped: {names:?}");
    println!("resident: {} processes", resident.iter().count());
}
