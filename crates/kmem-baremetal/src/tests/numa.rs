//! Tests of the ACPI table parser and the NUMA description built from QEMU's SRAT and SLIT:
//! tables of the tests' own making (valid ones, and every kind of malformed one, which must
//! be a one-line error, never a panic or a hang), and — with `selftest.numa=NODES,MIB,DIST`
//! (added by `scripts/qemu-test --numa`) — the real tables against what QEMU was told.

// A failure carries its message inline; results are returned once per test.
#![allow(clippy::result_large_err)]

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;

use kmem::addr::{Order, PAGE_SIZE};
use kmem::GfpFlags;

use super::KernelCtx;
use crate::acpi::{self, Acpi, AcpiError, IdentityMem, PhysMem, Rsdp, Sig, Slit, SratEntry, Table};
use crate::numa::{self, Memblk, NumaError, NumaInfo, Ram};
use crate::pvh::{BootInfo, Cmdline, E820_RAM};
use crate::selftest::{Test, TestResult};
use crate::{check, check_eq, tests};

/// The group.
pub const TESTS: &[Test<KernelCtx>] = tests![
    acpi_rsdp_and_root_tables,
    acpi_table_header_lines,
    acpi_malformed_tables_are_errors,
    srat_entries_parsed,
    srat_malformed_is_not_used,
    numa_cleanup_merges_like_linux,
    numa_slit_distances,
    numa_srat_parsed,
    numa_nodes_booted,
    alloc_pages_node_places_pages,
];

/// The group that runs before kmem boots (the firmware's memory untouched).
pub const EARLY: &[Test<BootInfo>] = tests![acpi_rsdp_found_by_bios_scan];

/// The BIOS-area scan finds the RSDP the boot loader pointed at (QEMU's PVH loader finds it
/// the same way and passes it in `hvm_start_info.rsdp_paddr`).
fn acpi_rsdp_found_by_bios_scan(info: &BootInfo) -> TestResult {
    // SAFETY: this group runs before kmem boots: nothing has written the BIOS area or the
    // firmware's tables, and the boot identity map is live.
    let mem = unsafe { IdentityMem::new() };
    let Some(r) = Rsdp::scan_bios(&mem) else {
        check!(false, "no RSDP in the EBDA or 0xe0000-0xfffff");
        return Ok(());
    };
    check!(
        (0xe0000..0x100000).contains(&r.paddr) || r.paddr < 0xa0000,
        "RSDP at {:#x}",
        r.paddr
    );
    if info.rsdp_paddr != 0 {
        check_eq!(r.paddr, info.rsdp_paddr);
    }
    check!(Acpi::new(&mem, r).is_ok());
    Ok(())
}

/// Fake physical memory: `buf` at physical address `base`.
struct FakeMem<'a> {
    base: u64,
    buf: &'a [u8],
}

impl PhysMem for FakeMem<'_> {
    fn bytes(&self, paddr: u64, len: usize) -> Option<&[u8]> {
        let off = usize::try_from(paddr.checked_sub(self.base)?).ok()?;
        self.buf.get(off..off.checked_add(len)?)
    }
}

const BASE: u64 = 0x10_0000;
const RSDP_AT: usize = 0;
const RSDT_AT: usize = 0x40;
const XSDT_AT: usize = 0x80;
const SRAT_AT: usize = 0x100;
const SLIT_AT: usize = 0x800;

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Sets the checksum byte at `field` so that `t` sums to zero.
fn fix_checksum(t: &mut [u8], field: usize) {
    t[field] = 0;
    t[field] = 0u8.wrapping_sub(acpi::checksum(t));
}

/// Writes a table header at the start of `t` (length = `t.len()`) and its checksum.
fn table(t: &mut [u8], sig: &[u8; 4], revision: u8) {
    t[..4].copy_from_slice(sig);
    put32(t, 4, t.len() as u32);
    t[8] = revision;
    t[10..16].copy_from_slice(b"KMEMTS");
    t[16..24].copy_from_slice(b"SELFTEST");
    put32(t, 24, 7);
    t[28..32].copy_from_slice(b"KMEM");
    put32(t, 32, 0x2026);
    fix_checksum(t, 9);
}

fn cpu_entry(apic_id: u8, pxm: u8, enabled: bool) -> Vec<u8> {
    let mut e = vec![0u8; acpi::SRAT_CPU_AFFINITY_LEN];
    e[0] = acpi::SRAT_TYPE_CPU_AFFINITY;
    e[1] = e.len() as u8;
    e[2] = pxm;
    e[3] = apic_id;
    put32(&mut e, 4, u32::from(enabled));
    e
}

fn mem_entry(pxm: u32, base: u64, length: u64, flags: u32) -> Vec<u8> {
    let mut e = vec![0u8; acpi::SRAT_MEM_AFFINITY_LEN];
    e[0] = acpi::SRAT_TYPE_MEMORY_AFFINITY;
    e[1] = e.len() as u8;
    put32(&mut e, 2, pxm);
    put64(&mut e, 8, base);
    put64(&mut e, 16, length);
    put32(&mut e, 28, flags);
    e
}

const ON: u32 = acpi::SRAT_MEM_ENABLED;

/// An SRAT of `entries` (revision 3, as QEMU's is 1: the PXM width tests set their own).
fn srat(entries: &[Vec<u8>], revision: u8) -> Vec<u8> {
    let mut t = vec![0u8; acpi::SRAT_ENTRIES];
    t[acpi::HEADER_LEN] = 1;
    for e in entries {
        t.extend_from_slice(e);
    }
    table(&mut t, b"SRAT", revision);
    t
}

fn slit(n: usize, d: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; acpi::SLIT_ENTRIES];
    put64(&mut t, acpi::HEADER_LEN, n as u64);
    t.extend_from_slice(d);
    table(&mut t, b"SLIT", 1);
    t
}

/// A fake BIOS image: RSDP (v2) → RSDT and XSDT → `srat` and `slit`.
fn firmware(srat: &[u8], slit: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; 0x1000];
    m[SRAT_AT..SRAT_AT + srat.len()].copy_from_slice(srat);
    m[SLIT_AT..SLIT_AT + slit.len()].copy_from_slice(slit);
    let tables = [BASE + SRAT_AT as u64, BASE + SLIT_AT as u64];
    let rsdt = &mut m[RSDT_AT..RSDT_AT + acpi::HEADER_LEN + 8];
    put32(rsdt, acpi::HEADER_LEN, tables[0] as u32);
    put32(rsdt, acpi::HEADER_LEN + 4, tables[1] as u32);
    table(rsdt, b"RSDT", 1);
    let xsdt = &mut m[XSDT_AT..XSDT_AT + acpi::HEADER_LEN + 16];
    put64(xsdt, acpi::HEADER_LEN, tables[0]);
    put64(xsdt, acpi::HEADER_LEN + 8, tables[1]);
    table(xsdt, b"XSDT", 1);
    let r = &mut m[RSDP_AT..RSDP_AT + acpi::RSDP_V2_LEN];
    r[..8].copy_from_slice(acpi::RSDP_SIG);
    r[9..15].copy_from_slice(b"KMEMTS");
    r[15] = 2;
    put32(r, 16, (BASE + RSDT_AT as u64) as u32);
    put32(r, 20, acpi::RSDP_V2_LEN as u32);
    put64(r, 24, BASE + XSDT_AT as u64);
    fix_checksum(&mut r[..acpi::RSDP_V1_LEN], 8);
    fix_checksum(r, 32);
    m
}

/// Runs `f` with this module's boot messages silenced (the tables are the tests' own).
fn quiet<T>(f: impl FnOnce() -> T) -> T {
    let old = numa::set_quiet(true);
    let r = f();
    numa::set_quiet(old);
    r
}

/// Two nodes of 128 MiB laid out as QEMU lays them out, and the SLIT `d`.
fn two_nodes(d: u8) -> (Vec<u8>, Vec<u8>) {
    let s = srat(
        &[
            cpu_entry(0, 0, true),
            cpu_entry(1, 1, true),
            mem_entry(0, 0, 0xa0000, ON),
            mem_entry(0, 0x10_0000, 0x7f0_0000, ON),
            mem_entry(1, 0x800_0000, 0x800_0000, ON),
        ],
        1,
    );
    (s, slit(2, &[10, d, d, 10]))
}

const RAM_256M: [(u64, u64); 2] = [(0, 0x9fc00), (0x10_0000, 0xffe_0000)];

fn parse(srat: &[u8], slit: Option<&[u8]>, ram: &[(u64, u64)]) -> Result<NumaInfo, NumaError> {
    let mem_s = FakeMem {
        base: BASE,
        buf: srat,
    };
    let t = Table::load(&mem_s, BASE, Some(Sig(*b"SRAT"))).map_err(NumaError::NoAcpi)?;
    let l = slit.map(|buf| FakeMem { base: BASE, buf });
    let lt = match &l {
        Some(m) => Some(Table::load(m, BASE, Some(Sig(*b"SLIT"))).map_err(NumaError::NoAcpi)?),
        None => None,
    };
    quiet(|| numa::from_tables(&t, lt.as_ref(), Ram(ram)))
}

fn acpi_rsdp_and_root_tables(_: &KernelCtx) -> TestResult {
    let (s, l) = two_nodes(21);
    let mut fw = firmware(&s, &l);
    let mem = FakeMem {
        base: BASE,
        buf: &fw,
    };
    let rsdp = Rsdp::parse(&mem, BASE).map_err(fail)?;
    check_eq!(rsdp.revision, 2);
    check_eq!(rsdp.xsdt, BASE + XSDT_AT as u64);
    let a = Acpi::new(&mem, rsdp).map_err(fail)?;
    check_eq!(a.root.sig, Sig(*b"XSDT"));
    check_eq!(
        a.entries().collect::<Vec<_>>(),
        [BASE + SRAT_AT as u64, BASE + SLIT_AT as u64]
    );
    check!(a.tables().all(|t| t.is_ok()));
    let mut skipped = None;
    check_eq!(
        a.find(Sig(*b"SLIT"), &mut skipped).map(|t| t.paddr),
        Some(BASE + SLIT_AT as u64)
    );
    check!(a.find(Sig(*b"HPET"), &mut skipped).is_none());
    check!(skipped.is_none());
    // The whole chain, as at boot.
    let n = quiet(|| numa::from_firmware(&mem, BASE, Ram(&RAM_256M))).map_err(fail)?;
    check_eq!(n.nr_nodes(), 2);
    // ACPI 1.0 (revision 0): the RSDT, whatever the XSDT field holds.
    fw[RSDP_AT + 15] = 0;
    fix_checksum(&mut fw[..acpi::RSDP_V1_LEN], 8);
    let mem = FakeMem {
        base: BASE,
        buf: &fw,
    };
    let rsdp = Rsdp::parse(&mem, BASE).map_err(fail)?;
    check_eq!(rsdp.xsdt, 0);
    let a = Acpi::new(&mem, rsdp).map_err(fail)?;
    check_eq!(a.root.sig, Sig(*b"RSDT"));
    check_eq!(a.entries().count(), 2);
    // Found by scanning the BIOS area when the loader gives no address: not in this fake
    // memory (it starts at 1 MiB), so none.
    check!(Rsdp::scan_bios(&mem).is_none());
    Ok(())
}

fn fail(e: impl core::fmt::Display) -> crate::selftest::Failure {
    crate::selftest::Failure::new(format_args!("unexpected error: {e}"))
}

fn acpi_table_header_lines(_: &KernelCtx) -> TestResult {
    let (s, l) = two_nodes(21);
    let fw = firmware(&s, &l);
    let mem = FakeMem {
        base: BASE,
        buf: &fw,
    };
    let rsdp = Rsdp::parse(&mem, BASE).map_err(fail)?;
    let mut out = String::new();
    let _ = write!(out, "{rsdp}");
    // ACPICA's acpi_tb_print_table_header formats.
    check_eq!(out, "ACPI: RSDP 0x0000000000100000 000024 (v02 KMEMTS)");
    let t = Table::load(&mem, BASE + SRAT_AT as u64, None).map_err(fail)?;
    out.clear();
    let _ = write!(out, "{t}");
    check_eq!(
        out,
        "ACPI: SRAT 0x0000000000100100 0000C8 (v01 KMEMTS SELFTEST 00000007 KMEM 00002026)"
    );
    Ok(())
}

fn acpi_malformed_tables_are_errors(_: &KernelCtx) -> TestResult {
    let (s, l) = two_nodes(21);
    let good = firmware(&s, &l);
    let load = |fw: &[u8], at: usize, sig: &[u8; 4]| {
        let mem = FakeMem {
            base: BASE,
            buf: fw,
        };
        Table::load(&mem, BASE + at as u64, Some(Sig(*sig))).map(|t| t.len())
    };
    // A flipped byte: ACPICA's "Incorrect checksum" with the value that would fix it.
    let mut fw = good.clone();
    let was = fw[SRAT_AT + 9];
    fw[SRAT_AT + 9] = was.wrapping_add(3);
    check_eq!(
        load(&fw, SRAT_AT, b"SRAT"),
        Err(AcpiError::BadChecksum {
            sig: Sig(*b"SRAT"),
            found: was.wrapping_add(3),
            expected: was
        })
    );
    // The RSDP's checksums (v1 and the extended one).
    let mut fw = good.clone();
    fw[RSDP_AT + 16] ^= 1;
    let mem = FakeMem {
        base: BASE,
        buf: &fw,
    };
    check!(matches!(
        Rsdp::parse(&mem, BASE),
        Err(AcpiError::BadChecksum { .. })
    ));
    let mut fw = good.clone();
    fw[RSDP_AT + 33] ^= 1;
    let mem = FakeMem {
        base: BASE,
        buf: &fw,
    };
    check!(matches!(
        Rsdp::parse(&mem, BASE),
        Err(AcpiError::BadChecksum { .. })
    ));
    check!(matches!(
        Rsdp::parse(&mem, BASE + 0x10),
        Err(AcpiError::BadSignature { .. })
    ));
    // Lengths: shorter than a header, absurd, beyond readable memory.
    for (len, want) in [
        (10u32, "BadLength"),
        (u32::MAX, "BadLength"),
        (0x10_0000, "Unreadable"),
    ] {
        let mut fw = good.clone();
        put32(&mut fw[SRAT_AT..], 4, len);
        let got = load(&fw, SRAT_AT, b"SRAT");
        let ok = match got {
            Err(AcpiError::BadLength { .. }) => want == "BadLength",
            Err(AcpiError::Unreadable { .. }) => want == "Unreadable",
            _ => false,
        };
        check!(ok, "length {len:#x}: {got:?}, want {want}");
    }
    // A pointer to a table of another kind.
    check!(matches!(
        load(&good, SLIT_AT, b"SRAT"),
        Err(AcpiError::BadSignature { .. })
    ));
    // A SLIT whose locality count overflows (n * n) or does not fit.
    for n in [u64::MAX, 1 << 32, 3] {
        let mut t = slit(2, &[10, 20, 20, 10]);
        put64(&mut t, acpi::HEADER_LEN, n);
        fix_checksum(&mut t, 9);
        let mem = FakeMem {
            base: BASE,
            buf: &t,
        };
        let t = Table::load(&mem, BASE, None).map_err(fail)?;
        check_eq!(
            Slit::parse(&t).map(|s| s.localities),
            Err(AcpiError::SlitTruncated { localities: n })
        );
    }
    Ok(())
}

fn srat_entries_parsed(_: &KernelCtx) -> TestResult {
    let mut x2 = vec![0u8; acpi::SRAT_X2APIC_AFFINITY_LEN];
    x2[0] = acpi::SRAT_TYPE_X2APIC_CPU_AFFINITY;
    x2[1] = x2.len() as u8;
    put32(&mut x2, 4, 0x0102_0304);
    put32(&mut x2, 8, 0x1_0000);
    put32(&mut x2, 12, 1);
    let mut gicc = vec![0u8; 18];
    gicc[0] = 3;
    gicc[1] = 18;
    let mut cpu_hi = cpu_entry(7, 0x44, true);
    cpu_hi[9] = 0x33;
    let entries = [
        cpu_hi,
        mem_entry(
            0x5566_7788,
            0x1000,
            0x2000,
            ON | acpi::SRAT_MEM_HOT_PLUGGABLE,
        ),
        x2,
        gicc,
    ];
    for revision in [1u8, 3] {
        let t = srat(&entries, revision);
        let mem = FakeMem {
            base: BASE,
            buf: &t,
        };
        let t = Table::load(&mem, BASE, None).map_err(fail)?;
        let got: Vec<_> = acpi::srat_entries(&t).map_err(fail)?.collect();
        // Revision ≤ 1: one byte of PXM in both; from 2 on, all of it
        // (acpi_numa_processor_affinity_init, acpi_numa_memory_affinity_init).
        let (cpu_pxm, mem_pxm) = if revision >= 2 {
            (0x3344, 0x5566_7788)
        } else {
            (0x44, 0x88)
        };
        check_eq!(
            got,
            [
                Ok(SratEntry::Cpu {
                    apic_id: 7,
                    pxm: cpu_pxm,
                    enabled: true,
                    x2apic: false
                }),
                Ok(SratEntry::Memory {
                    base: 0x1000,
                    length: 0x2000,
                    pxm: mem_pxm,
                    flags: ON | acpi::SRAT_MEM_HOT_PLUGGABLE
                }),
                Ok(SratEntry::Cpu {
                    apic_id: 0x1_0000,
                    pxm: 0x0102_0304,
                    enabled: true,
                    x2apic: true
                }),
                Ok(SratEntry::Other { kind: 3 }),
            ]
        );
    }
    // A zero-length entry ends the walk with one error (no endless loop); so does one that
    // runs past the table.
    for (len, want) in [
        (
            0u8,
            AcpiError::ZeroLengthEntry {
                sig: Sig(*b"SRAT"),
                kind: 1,
            },
        ),
        (
            60,
            AcpiError::EntryOverrun {
                sig: Sig(*b"SRAT"),
                kind: 1,
                offset: acpi::SRAT_ENTRIES + 16,
            },
        ),
    ] {
        let mut e = mem_entry(0, 0, 0x1000, ON);
        e[1] = len;
        let t = srat(&[cpu_entry(0, 0, true), e], 1);
        let mem = FakeMem {
            base: BASE,
            buf: &t,
        };
        let t = Table::load(&mem, BASE, None).map_err(fail)?;
        let got: Vec<_> = acpi::srat_entries(&t).map_err(fail)?.collect();
        check_eq!(got.len(), 2);
        check_eq!(got[1], Err(want));
    }
    Ok(())
}

fn srat_malformed_is_not_used(_: &KernelCtx) -> TestResult {
    let ram = RAM_256M;
    let (_, l) = two_nodes(20);
    let base = [
        cpu_entry(0, 0, true),
        mem_entry(0, 0, 0x800_0000, ON),
        mem_entry(1, 0x800_0000, 0x800_0000, ON),
    ];
    let with = |extra: Vec<u8>| {
        let mut v = base.to_vec();
        v.push(extra);
        srat(&v, 1)
    };
    let mut zero = mem_entry(0, 0, 0x1000, ON);
    zero[1] = 0;
    let mut short_cpu = cpu_entry(0, 0, true);
    short_cpu[1] = 12;
    short_cpu.truncate(12);
    let mut short_mem = mem_entry(0, 0, 0x1000, ON);
    short_mem[1] = 32;
    short_mem.truncate(32);
    let cases: [(&str, Vec<u8>, NumaError); 6] = [
        ("zero-length entry", with(zero), NumaError::BadSrat),
        ("short CPU entry", with(short_cpu), NumaError::BadSrat),
        ("short memory entry", with(short_mem), NumaError::BadSrat),
        (
            "PXM beyond MAX_PXM_DOMAINS",
            srat(&[mem_entry(300, 0, 0x1000_0000, ON)], 2),
            NumaError::BadSrat,
        ),
        (
            "nodes overlap",
            with(mem_entry(1, 0x400_0000, 0x100_0000, ON)),
            NumaError::Overlap,
        ),
        (
            "half the RAM uncovered",
            srat(&[mem_entry(0, 0, 0x800_0000, ON)], 1),
            NumaError::Uncovered,
        ),
    ];
    for (what, t, want) in cases {
        check_eq!(
            (what, parse(&t, Some(&l), &ram).map(|n| n.nr_nodes())),
            (what, Err(want))
        );
    }
    // More PXMs than nodes.
    let many: Vec<_> = (0..9u32)
        .map(|p| mem_entry(p, u64::from(p) << 24, 1 << 24, ON))
        .collect();
    check_eq!(
        parse(&srat(&many, 1), None, &[(0, 9 << 24)]).map(|n| n.nr_nodes()),
        Err(NumaError::BadSrat)
    );
    // A node with CPUs and no memory: kmem needs memory on every node.
    let cpu_only = srat(
        &[
            cpu_entry(1, 1, true),
            cpu_entry(0, 0, true),
            mem_entry(0, 0, 0x1000_0000, ON),
        ],
        1,
    );
    check_eq!(
        parse(&cpu_only, None, &ram).map(|n| n.nr_nodes()),
        Err(NumaError::MemorylessNode(0))
    );
    // No memory entry at all; a disabled one does not count.
    let none = srat(&[cpu_entry(0, 0, true), mem_entry(0, 0, 0x1000_0000, 0)], 1);
    check_eq!(
        parse(&none, None, &ram).map(|n| n.nr_nodes()),
        Err(NumaError::NoMemory)
    );
    // A range that wraps past 2^64 is ignored with a warning, the rest is used.
    let wrap = with(mem_entry(1, u64::MAX - 0xfff, 0x10_0000, ON));
    check_eq!(parse(&wrap, None, &ram).map(|n| n.nr_nodes()), Ok(2));
    Ok(())
}

fn numa_cleanup_merges_like_linux(_: &KernelCtx) -> TestResult {
    let (s, l) = two_nodes(21);
    let n = parse(&s, Some(&l), &RAM_256M).map_err(fail)?;
    check_eq!(n.nr_nodes(), 2);
    check_eq!(n.srat_memory().len(), 3);
    // Node 0's two SRAT ranges merged across the legacy hole; node 1 trimmed to RAM's end.
    check_eq!(
        n.memblks(),
        [
            Memblk {
                nid: 0,
                start: 0,
                end: 0x800_0000
            },
            Memblk {
                nid: 1,
                start: 0x800_0000,
                end: 0xffe_0000
            },
        ]
    );
    check_eq!(n.phys_to_nid(0x7ff_ffff), Some(0));
    check_eq!(n.phys_to_nid(0x800_0000), Some(1));
    check_eq!(n.apicid_to_node(1), Some(1));
    let mut cpus = [9; 3];
    n.cpu_to_node(&mut cpus);
    check_eq!(cpus, [0, 1, 0]);
    // PXMs become nodes in order of first appearance (CPUs first), not by value; a hotplug
    // range without RAM is set aside; node 0 split by node 1 stays two blocks.
    let t = srat(
        &[
            cpu_entry(0, 7, true),
            cpu_entry(1, 3, true),
            cpu_entry(2, 9, false),
            mem_entry(7, 0, 1 << 30, ON),
            mem_entry(3, 1 << 30, 1 << 30, ON),
            mem_entry(7, 4 << 30, 1 << 30, ON),
            mem_entry(3, 8 << 30, 4 << 30, ON | acpi::SRAT_MEM_HOT_PLUGGABLE),
        ],
        1,
    );
    let ram = [(0x1000, 2 << 30), (4 << 30, 5 << 30)];
    let n = parse(&t, None, &ram).map_err(fail)?;
    check_eq!(n.nr_nodes(), 2);
    check_eq!((n.node_to_pxm(0), n.node_to_pxm(1)), (Some(7), Some(3)));
    check_eq!(
        n.memblks(),
        [
            Memblk {
                nid: 0,
                start: 0x1000,
                end: 1 << 30
            },
            Memblk {
                nid: 1,
                start: 1 << 30,
                end: 2 << 30
            },
            Memblk {
                nid: 0,
                start: 4 << 30,
                end: 5 << 30
            },
        ]
    );
    check_eq!(n.apicid_to_node(2), None);
    Ok(())
}

fn numa_slit_distances(_: &KernelCtx) -> TestResult {
    let (s, l) = two_nodes(21);
    let n = parse(&s, Some(&l), &RAM_256M).map_err(fail)?;
    check!(n.slit_used());
    check_eq!(n.distances(), [10, 21, 21, 10]);
    // No SLIT, or one slit_valid rejects: Linux's defaults 10/20.
    let n = parse(&s, None, &RAM_256M).map_err(fail)?;
    check!(!n.slit_used());
    check_eq!(n.distances(), [10, 20, 20, 10]);
    for bad in [[10, 21, 21, 11], [10, 10, 10, 10], [10, 0, 30, 10]] {
        let n = parse(&s, Some(&slit(2, &bad)), &RAM_256M).map_err(fail)?;
        check!(!n.slit_used(), "SLIT {bad:?} must not be used");
        check_eq!(n.distances(), [10, 20, 20, 10]);
    }
    // A SLIT with a locality no node has (PXM 2): its row and column are ignored.
    let l3 = slit(3, &[10, 31, 41, 32, 10, 42, 43, 44, 10]);
    let n = parse(&s, Some(&l3), &RAM_256M).map_err(fail)?;
    check_eq!(n.distances(), [10, 31, 32, 10]);
    check_eq!(n.distance(0, 2), None);
    Ok(())
}

/// The expectation `selftest.numa=NODES,MIB_PER_NODE,DISTANCE` of the command line.
fn expectation(cmdline: &str) -> Option<(usize, u64, u8)> {
    let v = Cmdline(cmdline).values("selftest.numa").next()?;
    let mut it = v.split(',');
    let nodes = it.next()?.parse().ok()?;
    let mib = it.next()?.parse().ok()?;
    let dist = it.next()?.parse().ok()?;
    Some((nodes, mib, dist))
}

fn numa_srat_parsed(ctx: &KernelCtx) -> TestResult {
    let cmdline = ctx.info.cmdline();
    let Some((nodes, mib, dist)) = expectation(cmdline) else {
        // No -numa: QEMU builds no SRAT, and the kernel boots one node.
        check!(
            numa::NUMA.get().is_none(),
            "a NUMA description without -numa"
        );
        return Ok(());
    };
    let Some(n) = numa::NUMA.get() else {
        check!(false, "{cmdline}: no NUMA description was read");
        return Ok(());
    };
    check_eq!(n.nr_nodes(), nodes);
    for node in 0..nodes {
        check_eq!(n.node_to_pxm(node), Some(node as u32));
        check_eq!(n.apicid_to_node(node as u32), Some(node as u32));
        // Each node's SRAT ranges add up to its memory-backend (node 0 less the legacy hole
        // [0xa0000, 0x100000) that QEMU leaves out).
        let total: u64 = n
            .srat_memory()
            .iter()
            .filter(|m| m.nid == node as u32 && m.flags & acpi::SRAT_MEM_HOT_PLUGGABLE == 0)
            .map(|m| m.end - m.start)
            .sum();
        let hole = if node == 0 { 0x6_0000 } else { 0 };
        check_eq!((node, total), (node, (mib << 20) - hole));
        for other in 0..nodes {
            let want = if node == other { 10 } else { dist };
            check_eq!(n.distance(node, other), Some(want));
        }
    }
    // QEMU builds a SLIT only from -numa dist, which one node does not get.
    check_eq!(n.slit_used(), nodes > 1);
    // Nodes in address order, and every byte of usable RAM on exactly one node.
    let b = n.memblks();
    check!(b
        .windows(2)
        .all(|w| w[0].end <= w[1].start && w[0].nid <= w[1].nid));
    for e in ctx.info.e820().iter().filter(|e| e.kind == E820_RAM) {
        let end = e.end().min(crate::boot::identity_map_end());
        let covered: u64 = b
            .iter()
            .map(|m| m.end.min(end).saturating_sub(m.start.max(e.addr)))
            .sum();
        check_eq!((e.addr, covered), (e.addr, end - e.addr));
    }
    Ok(())
}

/// kmem booted the nodes the firmware described: node count, distances, the CPU's node, and
/// each node's zones inside its own memory.
fn numa_nodes_booted(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let Some(n) = numa::NUMA.get() else {
        check_eq!(mm.nr_online_nodes(), 1);
        check_eq!(mm.numa_node_id(), 0);
        return Ok(());
    };
    let nodes = n.nr_nodes();
    check_eq!(mm.nr_online_nodes(), nodes);
    for a in 0..nodes {
        for b in 0..nodes {
            check_eq!(
                (a, b, Some(mm.node_distance(a, b))),
                (a, b, n.distance(a, b))
            );
        }
    }
    let cpu0 = n.apicid_to_node(0).unwrap_or(0) as usize;
    check_eq!(mm.cpu_to_node(0), cpu0);
    check_eq!(mm.numa_node_id(), cpu0);
    for nid in 0..nodes {
        let mut present = 0;
        for z in mm.node_zones(nid).filter(|z| z.is_populated()) {
            present += z.geo.present;
            let first = z.geo.start_pfn.as_u64() * PAGE_SIZE as u64;
            let last = z.geo.end_pfn().as_u64() * PAGE_SIZE as u64 - 1;
            // A zone spans only its node's memory (holes between a node's blocks included).
            check_eq!(
                (nid, n.phys_to_nid(first), n.phys_to_nid(last)),
                (nid, Some(nid as u32), Some(nid as u32))
            );
        }
        check!(present > 0, "node {nid} has no present pages");
        check_eq!((nid, mm.node_span(nid).present), (nid, present));
    }
    Ok(())
}

/// `alloc_pages_node(nid, …)` places pages on every node: with `__GFP_THISNODE` only there
/// (`page_to_nid` and the SRAT agree, the memory is usable), without it preferably there.
fn alloc_pages_node_places_pages(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let nodes = mm.nr_online_nodes();
    let numa = numa::NUMA.get();
    let free0 = super::settle(mm);
    let mut on_node = [0usize; numa::MAX_NUMNODES];
    for nid in 0..nodes {
        for (gfp, order) in [
            (GfpFlags::GFP_KERNEL | GfpFlags::__GFP_THISNODE, 0),
            (GfpFlags::GFP_KERNEL | GfpFlags::__GFP_THISNODE, 3),
            (GfpFlags::GFP_HIGHUSER_MOVABLE | GfpFlags::__GFP_THISNODE, 0),
            (GfpFlags::GFP_KERNEL, 2),
        ] {
            // 64 allocations each, held together, so that they cannot all be one page reused.
            let mut held = [None; 64];
            for slot in held.iter_mut() {
                let Some(page) = mm.alloc_pages_node(nid as i32, gfp, Order::new(order)) else {
                    check!(false, "alloc_pages_node({nid}, {gfp}, {order}) failed");
                    return Ok(());
                };
                *slot = Some(page);
                let got = mm.page_to_nid(page);
                check_eq!((nid, order, got), (nid, order, nid));
                let phys = mm.page_to_pfn(page).as_u64() * PAGE_SIZE as u64;
                if let Some(n) = numa {
                    check_eq!((nid, n.phys_to_nid(phys)), (nid, Some(nid as u32)));
                }
                let va = mm.page_address(page).expect("x86_64: every page is mapped");
                let bytes = PAGE_SIZE << order;
                // SAFETY: the `1 << order` pages are ours until freed below, mapped at `va`.
                let mem = unsafe { core::slice::from_raw_parts_mut(va.as_ptr::<u8>(), bytes) };
                mem.fill(nid as u8 ^ 0x5a);
                check!(mem.iter().all(|&b| b == nid as u8 ^ 0x5a));
                on_node[got] += 1;
            }
            for page in held.iter().flatten() {
                mm.__free_pages(*page, Order::new(order));
            }
        }
    }
    check!(on_node[..nodes].iter().all(|&c| c == 4 * 64), "{on_node:?}");
    // An offline node: no pages, a warning (Linux's warn_if_node_offline) unless NOWARN.
    let off = nodes as i32;
    check!(mm
        .alloc_pages_node(
            off,
            GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN,
            Order::new(0)
        )
        .is_none());
    check_eq!(super::settle(mm), free0);
    Ok(())
}
