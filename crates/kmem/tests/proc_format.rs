//! Golden-format tests: kmem's /proc files against real ones from a Linux 6.18 machine
//! (tests/fixtures/proc, copied from shared/reference/proc). Numbers differ; the shape of
//! every line — labels, column widths, separators, trailing spaces — must not.

mod common;
use common::*;

use kmem::arch::Arch;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/proc/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A line with every run of digits replaced by `9`s of a right-aligned field: numbers keep
/// their column, so two lines compare equal when only the values differ.
fn shape(line: &str) -> String {
    let mut out = String::new();
    for c in line.chars() {
        out.push(if c.is_ascii_digit() { '9' } else { c });
    }
    // Right-aligned numbers in fixed-width fields: "   12" and " 1234" both become runs of
    // spaces then 9s; normalise the split between padding and digits.
    let mut norm = String::new();
    let mut pending_spaces = 0;
    for c in out.chars() {
        match c {
            ' ' => pending_spaces += 1,
            '9' => {
                for _ in 0..pending_spaces {
                    norm.push('9');
                }
                pending_spaces = 0;
                norm.push('9');
            }
            _ => {
                for _ in 0..pending_spaces {
                    norm.push(' ');
                }
                pending_spaces = 0;
                norm.push(c);
            }
        }
    }
    for _ in 0..pending_spaces {
        norm.push(' ');
    }
    norm
}

/// A line with every number (and the spaces before it) replaced by ` #`: for variable-width
/// fields such as zoneinfo's `%-12s %lu`.
fn loose(line: &str) -> String {
    let mut out = String::new();
    let mut spaces = 0;
    let mut in_num = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !in_num {
                out.push_str(if spaces > 0 { " #" } else { "#" });
                in_num = true;
            }
            spaces = 0;
            continue;
        }
        in_num = false;
        if c == ' ' {
            spaces += 1;
            continue;
        }
        for _ in 0..spaces {
            out.push(' ');
        }
        spaces = 0;
        out.push(c);
    }
    out
}

#[test]
fn buddyinfo_lines_have_linux_shape() {
    let reference = fixture("buddyinfo");
    let ref_shape = shape(reference.lines().next().unwrap());
    let m = boot(Arch::X86_64, 5 << 30, 2);
    let ours = proc(&m, "/proc/buddyinfo");
    let zones: Vec<&str> = ours.lines().collect();
    assert_eq!(zones.len(), 3, "{ours}");
    for (ours, theirs) in zones.iter().zip(reference.lines()) {
        assert_eq!(shape(ours), shape(theirs));
        assert_eq!(ours.len(), theirs.len());
        assert!(ours.ends_with(' '), "Linux ends each row with a space");
    }
    assert_eq!(shape(zones[0]), ref_shape);
}

#[test]
fn pagetypeinfo_matches_linux_layout() {
    let reference = fixture("pagetypeinfo");
    let m = boot(Arch::X86_64, 5 << 30, 2);
    let ours = proc(&m, "/proc/pagetypeinfo");
    let a: Vec<String> = ours.lines().map(shape).collect();
    let b: Vec<String> = reference.lines().map(shape).collect();
    assert_eq!(a, b, "ours:\n{ours}");
}

#[test]
fn zoneinfo_has_linux_keys_in_order() {
    let reference = fixture("zoneinfo");
    let m = boot(Arch::X86_64, 5 << 30, 2);
    let ours = proc(&m, "/proc/zoneinfo");
    // Same lines in the same order, values aside, for every zone (the reference has the same
    // five zones: DMA, DMA32, Normal, Movable, Device).
    let a: Vec<String> = ours.lines().map(loose).collect();
    let b: Vec<String> = reference.lines().map(loose).collect();
    assert_eq!(a.len(), b.len(), "ours:\n{ours}");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "line {i}");
    }
}

#[test]
fn meminfo_lines_are_linux_lines() {
    let reference = fixture("meminfo");
    let m = boot(Arch::X86_64, 1 << 30, 2);
    let ours = proc(&m, "/proc/meminfo");
    let theirs: Vec<String> = reference.lines().map(shape).collect();
    let mut last = 0;
    for line in ours.lines() {
        let s = shape(line);
        let pos = theirs
            .iter()
            .position(|t| *t == s)
            .unwrap_or_else(|| panic!("not a Linux line: {line:?}"));
        assert!(pos >= last, "order differs at {line:?}");
        last = pos;
    }
    assert!(ours.starts_with("MemTotal:"));
}

#[test]
fn i386_meminfo_has_highmem_lines() {
    let m = boot(Arch::I386, 2 << 30, 2);
    let ours = proc(&m, "/proc/meminfo");
    for l in ["HighTotal:", "HighFree:", "LowTotal:", "LowFree:"] {
        assert!(ours.contains(l), "{ours}");
    }
    let z = proc(&m, "/proc/zoneinfo");
    assert!(z.contains("Node 0, zone  HighMem"));
    assert!(z.contains("protection: (0, "));
}

/// debugfs memblock/{memory,reserved} as mm/memblock.c memblock_debug_show prints them: the
/// node of each region (memory: node 0 of x86's faked node; reserved: the node of the memory
/// it lies in, `x` outside memory such as page 0) and the lowest flag's name (memblock
/// allocations are `memblock_reserve_kern`ed: RSV_KERN).
#[test]
fn memblock_debugfs_shows_node_and_flags() {
    let m = boot(Arch::X86_64, 128 << 20, 2);
    let mem = proc(&m, "/sys/kernel/debug/memblock/memory");
    assert!(mem.lines().count() >= 2, "{mem}");
    for l in mem.lines() {
        assert!(
            l.ends_with("    0 NONE"),
            "memory region without node 0: {l:?}"
        );
    }
    let res = proc(&m, "/sys/kernel/debug/memblock/reserved");
    let first = res.lines().next().unwrap();
    assert_eq!(
        first, "   0: 0x0000000000000000..0x0000000000000fff    x NONE",
        "page 0 lies outside memblock.memory: no node"
    );
    assert!(
        res.lines().any(|l| l.ends_with("    0 RSV_KERN")),
        "memblock allocations carry RSV_KERN and node 0:\n{res}"
    );
}
