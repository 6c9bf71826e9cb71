//! ZONE_MOVABLE at boot from the command line (issue 19): `--cmdline kernelcore=…`,
//! `movablecore=…`, `movable_node` with `--numa-hotplug`. The arithmetic is worked by hand
//! in crates/kmem/tests/movable_zone.rs.

use std::process::{Command, Output};

fn kmem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kmem"))
        .args(args)
        .output()
        .expect("run kmem")
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

#[test]
fn kernelcore_shows_in_the_boot_log_and_proc() {
    let o = kmem(&["--mem", "2G", "--cmdline", "kernelcore=1G", "boot"]);
    assert!(o.status.success());
    let log = text(&o.stdout);
    assert!(
        log.contains("] Movable zone start for each node\n")
            && log.contains("]   Node 0: 0x0000000040400000\n"),
        "{log}"
    );
    let o = kmem(&[
        "--mem",
        "2G",
        "--cmdline",
        "kernelcore=1G",
        "cat",
        "/proc/zoneinfo",
        "/proc/buddyinfo",
    ]);
    let out = text(&o.stdout);
    assert!(out.contains("Node 0, zone  Movable\n  pages free"), "{out}");
    assert!(out.contains("        spanned  261088\n        present  261088\n"));
    assert!(out.contains("Node 0, zone  Movable "));
    // Without the option the boot has no Movable start line.
    let o = kmem(&["--mem", "2G", "boot"]);
    assert!(!text(&o.stdout).contains("Node 0: 0x"));
}

#[test]
fn movablecore_on_two_nodes() {
    let o = kmem(&[
        "--mem",
        "8G",
        "--numa",
        "2",
        "--cmdline",
        "movablecore=1G",
        "boot",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let log = text(&o.stdout);
    assert!(log.contains("]   Node 0: 0x0000000120400000\n"), "{log}");
    assert!(log.contains("]   Node 1: 0x0000000222000000\n"), "{log}");
}

#[test]
fn movable_node_with_a_hotpluggable_node() {
    let args = [
        "--mem",
        "4G",
        "--numa-mem",
        "2G,2G",
        "--numa-hotplug",
        "1",
        "--cmdline",
        "movable_node",
    ];
    let o = kmem(&[&args[..], &["boot"]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("]   Node 1: 0x0000000082000000\n"));
    let o = kmem(
        &[
            &args[..],
            &["cat", "/sys/devices/system/node/node1/meminfo"],
        ]
        .concat(),
    );
    // The first three lines of node1/meminfo (the LRU lines follow): all of node 1 is free.
    assert!(
        text(&o.stdout).starts_with(
            "Node 1 MemTotal:        2064256 kB\nNode 1 MemFree:         2064256 kB\n\
             Node 1 MemUsed:               0 kB\n"
        ),
        "{}",
        text(&o.stdout)
    );
    // A node the machine does not have, or no NUMA at all: one error line, status 1.
    let o = kmem(&["--numa", "2", "--numa-hotplug", "2", "boot"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "kmem: --numa-hotplug: node 2, the machine has 2 nodes\n"
    );
    let o = kmem(&["--numa-hotplug", "1", "boot"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "kmem: --numa-hotplug needs --numa or --numa-mem\n"
    );
}

#[test]
fn bad_values_boot_without_movable() {
    for (cmdline, line) in [
        ("kernelcore", "Malformed early option 'kernelcore'"),
        (
            "kernelcore=mirror",
            "The system has no mirror memory, ignore kernelcore=mirror.",
        ),
    ] {
        let o = kmem(&["--cmdline", cmdline, "boot"]);
        assert!(o.status.success());
        let log = text(&o.stdout);
        assert!(log.contains(line), "{log}");
        assert!(!log.contains("Node 0: 0x"));
    }
}
