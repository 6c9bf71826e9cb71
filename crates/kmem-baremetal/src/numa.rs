//! NUMA from the firmware: the SRAT and SLIT (read by [`crate::acpi`]) become the nodes of
//! memory ranges, the node of each CPU and the distance table that kmem boots with.
//!
//! This follows Linux's x86 path: `x86_numa_init` → `numa_memblks_init(x86_acpi_numa_init)`:
//! - `acpi_numa_init` (drivers/acpi/numa/srat.c): the processor affinity entries first, then
//!   the memory affinity entries, each proximity domain (PXM) mapped to the next free node id
//!   in order of first appearance (`acpi_map_pxm_to_node`); each enabled memory range printed
//!   as `ACPI: SRAT: Node 0 PXM 0 [mem 0x00000000-0x0009ffff]` and added with
//!   `numa_add_memblk`; then the SLIT, used only when `slit_valid` (10 on the diagonal, more
//!   than 10 elsewhere).
//! - `numa_cleanup_meminfo` (mm/numa_memblks.c): blocks that touch no RAM are set aside, the
//!   others are trimmed to RAM's span, and blocks of one node whose gap holds no other node's
//!   memory are merged, printing `NUMA: Node 0 [mem …] + [mem …] -> [mem …]`.
//! - `numa_meminfo_cover_memory` (arch/x86/mm/numa.c): the nodes must cover all RAM but 1 MiB.
//!
//! Any failure is what Linux does with a bad SRAT: one line (`ACPI: SRAT: SRAT not used.`),
//! then the machine boots as one node (`No NUMA configuration found`,
//! `Faking a node at [mem …]`, from `dummy_numa_init`).
//!
//! kmem then does `numa_register_meminfo` itself (memblock_set_node for each block, the
//! distance table, NODE_DATA, the nodes' zones): [`NumaInfo::topology`] is its
//! `BootParams::numa`.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use kmem::NumaTopology;

use crate::acpi::{self, Acpi, AcpiError, IdentityMem, PhysMem, Rsdp, Sig, Slit, SratEntry};
use crate::boot;
use crate::cell::BootCell;
use crate::println;
use crate::pvh::{BootInfo, E820_RAM};

/// Silences the messages below (the self-tests parse tables of their own making).
static QUIET: AtomicBool = AtomicBool::new(false);

/// Prints a boot message unless [`set_quiet`] silenced them.
macro_rules! log {
    ($($arg:tt)*) => {
        if !QUIET.load(Ordering::Relaxed) {
            println!($($arg)*);
        }
    };
}

/// Silences (`true`) or restores the boot messages of this module; returns the old setting.
pub fn set_quiet(quiet: bool) -> bool {
    QUIET.swap(quiet, Ordering::Relaxed)
}

/// The firmware's NUMA description, when it has one Linux would use.
pub static NUMA: BootCell<NumaInfo> = BootCell::new();

/// Nodes this kernel can describe (kmem's `MAX_NUMA_NODES`; Linux's `MAX_NUMNODES`).
pub const MAX_NUMNODES: usize = kmem::MAX_NUMA_NODES;
/// Proximity domains mapped (Linux's `MAX_PXM_DOMAINS`, include/acpi/acpi_numa.h).
pub const MAX_PXM_DOMAINS: usize = 256;
/// NUMA memory blocks kept (Linux's `NR_NODE_MEMBLKS` is `MAX_NUMNODES * 2`; QEMU gives up to
/// three per node — the legacy hole, the PCI hole — plus the hotplug range).
pub const NR_NODE_MEMBLKS: usize = MAX_NUMNODES * 4;
/// CPUs whose node is kept.
pub const MAX_CPUS: usize = 64;
/// APIC IDs that can be mapped to a node (arch/x86/include/asm/apicdef.h `MAX_LOCAL_APIC`).
pub const MAX_LOCAL_APIC: u32 = 32768;
/// Distance of a node to itself (include/linux/numa.h `LOCAL_DISTANCE`).
pub const LOCAL_DISTANCE: u8 = kmem::numa::LOCAL_DISTANCE;
/// Default distance between two nodes (`REMOTE_DISTANCE`).
pub const REMOTE_DISTANCE: u8 = kmem::numa::REMOTE_DISTANCE;
/// RAM ranges considered (the e820 map's bound, `E820_MAX_ENTRIES_ZEROPAGE`).
pub const MAX_RAM_RANGES: usize = 128;
/// Uncovered RAM tolerated ("We seem to lose 3 pages somewhere. Allow 1M of slack.").
const COVER_SLACK: u64 = 1 << 20;

const NO_NODE: u8 = u8::MAX;

/// One NUMA memory block: physical `[start, end)` on node `nid` (`struct numa_memblk`) —
/// kmem's boot input type.
pub use kmem::NumaMemblk as Memblk;

const NO_BLK: Memblk = Memblk {
    nid: 0,
    start: 0,
    end: 0,
};

/// One enabled SRAT memory affinity entry, as printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SratMem {
    /// The node its PXM mapped to.
    pub nid: u32,
    /// The proximity domain.
    pub pxm: u32,
    /// First byte.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
    /// `ACPI_SRAT_MEM_*` flags.
    pub flags: u32,
}

/// Why the firmware's NUMA description is not used (the machine boots as one node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumaError {
    /// No RSDP or root table: no ACPI.
    NoAcpi(AcpiError),
    /// No (valid) SRAT: the firmware describes no NUMA.
    NoSrat,
    /// The SRAT was malformed or inconsistent ("SRAT not used").
    BadSrat,
    /// The SRAT listed no usable memory.
    NoMemory,
    /// `numa_cleanup_meminfo` found two nodes overlapping.
    Overlap,
    /// The nodes leave RAM uncovered.
    Uncovered,
    /// A node id below the highest one owns no memory (kmem needs memory on every node).
    MemorylessNode(u32),
}

impl fmt::Display for NumaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumaError::NoAcpi(e) => write!(f, "no ACPI tables ({e})"),
            NumaError::NoSrat => write!(f, "no SRAT"),
            NumaError::BadSrat => write!(f, "SRAT not used"),
            NumaError::NoMemory => write!(f, "SRAT lists no memory"),
            NumaError::Overlap => write!(f, "nodes overlap"),
            NumaError::Uncovered => write!(f, "nodes do not cover RAM"),
            NumaError::MemorylessNode(n) => write!(f, "node {n} has no memory"),
        }
    }
}

/// What the SRAT and SLIT say, after Linux's checks and clean-up.
#[derive(Clone)]
pub struct NumaInfo {
    srat_mem: [SratMem; NR_NODE_MEMBLKS],
    nr_srat_mem: usize,
    blks: [Memblk; NR_NODE_MEMBLKS],
    nr_blks: usize,
    pxm_to_node: [u8; MAX_PXM_DOMAINS],
    node_to_pxm: [u32; MAX_NUMNODES],
    /// Bit n: node n was named by an enabled SRAT entry (`numa_nodes_parsed`).
    nodes_parsed: u32,
    nr_nodes: usize,
    distance: [u8; MAX_NUMNODES * MAX_NUMNODES],
    slit_used: bool,
    apic_to_node: [(u32, u32); MAX_CPUS],
    nr_apic: usize,
}

impl fmt::Debug for NumaInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NumaInfo")
            .field("nr_nodes", &self.nr_nodes)
            .field("memblks", &self.memblks())
            .field("distances", &self.distances())
            .finish_non_exhaustive()
    }
}

impl NumaInfo {
    fn empty() -> Self {
        NumaInfo {
            srat_mem: [SratMem::default(); NR_NODE_MEMBLKS],
            nr_srat_mem: 0,
            blks: [NO_BLK; NR_NODE_MEMBLKS],
            nr_blks: 0,
            pxm_to_node: [NO_NODE; MAX_PXM_DOMAINS],
            node_to_pxm: [u32::MAX; MAX_NUMNODES],
            nodes_parsed: 0,
            nr_nodes: 0,
            distance: [0; MAX_NUMNODES * MAX_NUMNODES],
            slit_used: false,
            apic_to_node: [(0, 0); MAX_CPUS],
            nr_apic: 0,
        }
    }

    /// Nodes `0..nr_nodes`.
    pub fn nr_nodes(&self) -> usize {
        self.nr_nodes
    }

    /// The enabled SRAT memory affinity entries, in table order.
    pub fn srat_memory(&self) -> &[SratMem] {
        &self.srat_mem[..self.nr_srat_mem]
    }

    /// The NUMA memory blocks after clean-up (what `memblock_set_node` gets).
    pub fn memblks(&self) -> &[Memblk] {
        &self.blks[..self.nr_blks]
    }

    /// The distance table, `nr_nodes * nr_nodes` entries, row-major.
    pub fn distances(&self) -> &[u8] {
        &self.distance[..self.nr_nodes * self.nr_nodes]
    }

    /// The distance from node `a` to node `b` (`node_distance`).
    pub fn distance(&self, a: usize, b: usize) -> Option<u8> {
        if a >= self.nr_nodes || b >= self.nr_nodes {
            return None;
        }
        Some(self.distance[a * self.nr_nodes + b])
    }

    /// Whether the distances came from the SLIT (else Linux's defaults).
    pub fn slit_used(&self) -> bool {
        self.slit_used
    }

    /// The proximity domain of `node`.
    pub fn node_to_pxm(&self, node: usize) -> Option<u32> {
        self.node_to_pxm
            .get(node)
            .copied()
            .filter(|&p| p != u32::MAX)
    }

    /// The node of the CPU with local APIC ID `apic_id` (SRAT processor affinity).
    pub fn apicid_to_node(&self, apic_id: u32) -> Option<u32> {
        self.apic_to_node[..self.nr_apic]
            .iter()
            .find(|&&(a, _)| a == apic_id)
            .map(|&(_, n)| n)
    }

    /// `cpu_to_node` for CPUs `0..n`: on QEMU's PC machines CPU n has APIC ID n (no MADT is
    /// read); a CPU the SRAT does not name gets node 0 (`numa_init_array` would spread them).
    pub fn cpu_to_node(&self, out: &mut [u32]) {
        for (cpu, slot) in out.iter_mut().enumerate() {
            *slot = self.apicid_to_node(cpu as u32).unwrap_or(0);
        }
    }

    /// kmem's boot input: the nodes, their memory blocks, the distances and the node of each
    /// of the CPUs `0..cpu_to_node.len()` (filled in here).
    pub fn topology<'a>(&'a self, cpu_to_node: &'a mut [u32]) -> NumaTopology<'a> {
        self.cpu_to_node(cpu_to_node);
        NumaTopology {
            nr_nodes: self.nr_nodes,
            memblks: self.memblks(),
            distance: self.distances(),
            cpu_to_node,
            // The SRAT's hot-pluggable flags are not passed on yet: no memory is
            // hotpluggable, so `movable_node` leaves the boot zones as they are.
            hotpluggable: &[],
        }
    }

    /// The node of physical address `paddr` (`phys_to_target_node`).
    pub fn phys_to_nid(&self, paddr: u64) -> Option<u32> {
        self.memblks()
            .iter()
            .find(|b| b.start <= paddr && paddr < b.end)
            .map(|b| b.nid)
    }

    /// `acpi_map_pxm_to_node`: the node of `pxm`, assigning the next free one on first use.
    fn map_pxm(&mut self, pxm: u32) -> Option<u32> {
        let p = usize::try_from(pxm).ok().filter(|&p| p < MAX_PXM_DOMAINS)?;
        if self.pxm_to_node[p] != NO_NODE {
            return Some(u32::from(self.pxm_to_node[p]));
        }
        let node = (0..MAX_NUMNODES).find(|&n| self.node_to_pxm[n] == u32::MAX)?;
        self.pxm_to_node[p] = node as u8;
        self.node_to_pxm[node] = pxm;
        Some(node as u32)
    }

    fn pxm_node(&self, pxm: usize) -> Option<usize> {
        self.pxm_to_node
            .get(pxm)
            .filter(|&&n| n != NO_NODE)
            .map(|&n| usize::from(n))
    }
}

/// The usable RAM, as memblock.memory will hold it: `[start, end)` ranges.
#[derive(Clone, Copy)]
pub struct Ram<'a>(pub &'a [(u64, u64)]);

impl Ram<'_> {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.0.iter().any(|&(s, e)| s < end && start < e)
    }
    fn covered(&self, start: u64, end: u64) -> u64 {
        self.0
            .iter()
            .map(|&(s, e)| e.min(end).saturating_sub(s.max(start)))
            .sum()
    }
    fn total(&self) -> u64 {
        self.0.iter().map(|&(s, e)| e - s).sum()
    }
    fn low(&self) -> u64 {
        self.0.iter().map(|r| r.0).min().unwrap_or(0)
    }
    fn high(&self) -> u64 {
        self.0.iter().map(|r| r.1).max().unwrap_or(0)
    }
}

/// Linux's `bad_srat()`.
fn bad_srat() -> NumaError {
    log!("ACPI: SRAT: SRAT not used.");
    NumaError::BadSrat
}

/// Reads the SRAT's processor entries (pass 1 of `acpi_numa_init`).
fn parse_cpus(info: &mut NumaInfo, srat: &acpi::Table<'_>) -> Result<(), NumaError> {
    for e in acpi::srat_entries(srat).map_err(|e| report(e, bad_srat()))? {
        match e.map_err(|e| report(e, bad_srat()))? {
            SratEntry::BadLength { kind, .. }
                if kind == acpi::SRAT_TYPE_CPU_AFFINITY
                    || kind == acpi::SRAT_TYPE_X2APIC_CPU_AFFINITY =>
            {
                return Err(bad_srat());
            }
            SratEntry::Cpu {
                apic_id,
                pxm,
                enabled: true,
                x2apic,
            } => {
                let Some(node) = info.map_pxm(pxm) else {
                    log!("SRAT: Too many proximity domains {pxm:x}");
                    return Err(bad_srat());
                };
                if apic_id >= MAX_LOCAL_APIC {
                    let w = if x2apic { 4 } else { 2 };
                    log!(
                        "SRAT: PXM {pxm} -> APIC 0x{apic_id:0w$x} -> Node {node} skipped apicid that is too big"
                    );
                    continue;
                }
                if info.nr_apic < MAX_CPUS {
                    info.apic_to_node[info.nr_apic] = (apic_id, node);
                    info.nr_apic += 1;
                }
                info.nodes_parsed |= 1 << node;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Prints an ACPI error on one line and returns `then`.
fn report(e: AcpiError, then: NumaError) -> NumaError {
    log!("ACPI: {e}");
    then
}

/// `numa_add_memblk_to`.
fn add_memblk(blks: &mut [Memblk], n: &mut usize, b: Memblk) -> Result<(), ()> {
    if b.start == b.end {
        return Ok(());
    }
    if b.start > b.end || b.nid as usize >= MAX_NUMNODES {
        log!(
            "Warning: invalid memblk node {} [mem {:#010x}-{:#010x}]",
            b.nid,
            b.start,
            b.end.wrapping_sub(1)
        );
        return Ok(());
    }
    if *n >= blks.len() {
        log!("too many memblk ranges");
        return Err(());
    }
    blks[*n] = b;
    *n += 1;
    Ok(())
}

/// Reads the SRAT's memory entries (pass 2 of `acpi_numa_init`,
/// `acpi_numa_memory_affinity_init`).
fn parse_memory(info: &mut NumaInfo, srat: &acpi::Table<'_>) -> Result<(), NumaError> {
    for e in acpi::srat_entries(srat).map_err(|e| report(e, bad_srat()))? {
        match e.map_err(|e| report(e, bad_srat()))? {
            SratEntry::BadLength { kind, len } if kind == acpi::SRAT_TYPE_MEMORY_AFFINITY => {
                log!("ACPI: SRAT: Unexpected header length: {len}");
                return Err(bad_srat());
            }
            SratEntry::Memory {
                base,
                length,
                pxm,
                flags,
            } if flags & acpi::SRAT_MEM_ENABLED != 0 => {
                let Some(node) = info.map_pxm(pxm) else {
                    log!("ACPI: SRAT: Too many proximity domains.");
                    return Err(bad_srat());
                };
                // C computes base + length in u64 and wraps; a wrapped range is an invalid
                // block (start > end), which numa_add_memblk_to ignores with a warning.
                let end = base.checked_add(length).unwrap_or(0);
                let blk = Memblk {
                    nid: node,
                    start: base,
                    end,
                };
                if add_memblk(&mut info.blks, &mut info.nr_blks, blk).is_err() {
                    log!(
                        "ACPI: SRAT: Failed to add memblk to node {node} [mem {base:#010x}-{:#010x}]",
                        end.wrapping_sub(1)
                    );
                    return Err(bad_srat());
                }
                if end <= base {
                    continue;
                }
                info.nodes_parsed |= 1 << node;
                log!(
                    "ACPI: SRAT: Node {node} PXM {pxm} [mem {base:#010x}-{:#010x}]{}{}",
                    end - 1,
                    if flags & acpi::SRAT_MEM_HOT_PLUGGABLE != 0 {
                        " hotplug"
                    } else {
                        ""
                    },
                    if flags & acpi::SRAT_MEM_NON_VOLATILE != 0 {
                        " non-volatile"
                    } else {
                        ""
                    }
                );
                if info.nr_srat_mem < NR_NODE_MEMBLKS {
                    info.srat_mem[info.nr_srat_mem] = SratMem {
                        nid: node,
                        pxm,
                        start: base,
                        end,
                        flags,
                    };
                    info.nr_srat_mem += 1;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `numa_cleanup_meminfo`: trims the blocks to RAM, sets aside those without RAM and merges
/// a node's blocks when the gap between them holds no other node's memory.
fn cleanup_meminfo(info: &mut NumaInfo, ram: Ram<'_>) -> Result<(), NumaError> {
    let (low, high) = (ram.low(), ram.high());
    let mut i = 0;
    while i < info.nr_blks {
        let b = &mut info.blks[i];
        if !ram.overlaps(b.start, b.end) {
            remove_blk(info, i);
            continue;
        }
        b.start = b.start.max(low);
        b.end = b.end.min(high);
        if b.start >= b.end {
            remove_blk(info, i);
            continue;
        }
        i += 1;
    }
    let mut i = 0;
    while i < info.nr_blks {
        let mut j = i + 1;
        while j < info.nr_blks {
            let (bi, bj) = (info.blks[i], info.blks[j]);
            if bi.end > bj.start && bi.start < bj.end {
                if bi.nid != bj.nid {
                    log!(
                        "node {} [mem {:#010x}-{:#010x}] overlaps with node {} [mem {:#010x}-{:#010x}]",
                        bi.nid, bi.start, bi.end - 1, bj.nid, bj.start, bj.end - 1
                    );
                    return Err(NumaError::Overlap);
                }
                log!(
                    "Warning: node {} [mem {:#010x}-{:#010x}] overlaps with itself [mem {:#010x}-{:#010x}]",
                    bi.nid, bi.start, bi.end - 1, bj.start, bj.end - 1
                );
            }
            if bi.nid != bj.nid {
                j += 1;
                continue;
            }
            let (start, end) = (bi.start.min(bj.start), bi.end.max(bj.end));
            let blocked = info.blks[..info.nr_blks]
                .iter()
                .any(|bk| bk.nid != bi.nid && start < bk.end && end > bk.start);
            if blocked {
                j += 1;
                continue;
            }
            log!(
                "NUMA: Node {} [mem {:#010x}-{:#010x}] + [mem {:#010x}-{:#010x}] -> [mem {:#010x}-{:#010x}]",
                bi.nid, bi.start, bi.end - 1, bj.start, bj.end - 1, start, end - 1
            );
            info.blks[i].start = start;
            info.blks[i].end = end;
            remove_blk(info, j);
        }
        i += 1;
    }
    Ok(())
}

fn remove_blk(info: &mut NumaInfo, i: usize) {
    info.blks.copy_within(i + 1..info.nr_blks, i);
    info.nr_blks -= 1;
}

/// `numa_meminfo_cover_memory`: the nodes must cover all RAM but [`COVER_SLACK`].
fn check_coverage(info: &NumaInfo, ram: Ram<'_>) -> Result<(), NumaError> {
    let numaram: u64 = info
        .memblks()
        .iter()
        .map(|b| ram.covered(b.start, b.end))
        .sum();
    let e820ram = ram.total();
    if e820ram.saturating_sub(numaram) >= COVER_SLACK {
        log!(
            "NUMA: nodes only cover {}MB of your {}MB e820 RAM. Not used.",
            numaram >> 20,
            e820ram >> 20
        );
        return Err(NumaError::Uncovered);
    }
    Ok(())
}

/// `slit_valid`: 10 on the diagonal, more than 10 elsewhere.
fn slit_valid(slit: &Slit<'_>) -> bool {
    let n = slit.localities;
    (0..n).all(|i| {
        (0..n).all(|j| match slit.distance(i, j) {
            Some(v) if i == j => v == LOCAL_DISTANCE,
            Some(v) => v > LOCAL_DISTANCE,
            None => false,
        })
    })
}

/// Fills the distance table: Linux's defaults, then the SLIT's values for the PXMs that have
/// nodes (`numa_alloc_distance`, `acpi_numa_slit_init`, `numa_set_distance`).
fn set_distances(info: &mut NumaInfo, slit: Option<Slit<'_>>) {
    let n = info.nr_nodes;
    for a in 0..n {
        for b in 0..n {
            info.distance[a * n + b] = if a == b {
                LOCAL_DISTANCE
            } else {
                REMOTE_DISTANCE
            };
        }
    }
    let Some(slit) = slit else {
        return;
    };
    if !slit_valid(&slit) {
        log!("ACPI: SLIT table looks invalid. Not used.");
        return;
    }
    let mut warned = false;
    for i in 0..slit.localities {
        let Some(from) = info.pxm_node(i) else {
            continue;
        };
        for j in 0..slit.localities {
            let Some(to) = info.pxm_node(j) else {
                continue;
            };
            let Some(d) = slit.distance(i, j) else {
                continue;
            };
            if from >= n || to >= n {
                if !warned {
                    log!("Warning: node ids are out of bound, from={from} to={to} distance={d}");
                    warned = true;
                }
                continue;
            }
            info.distance[from * n + to] = d;
        }
    }
    info.slit_used = true;
}

/// Builds the NUMA description from the SRAT `srat` and the SLIT `slit` (if any) for a
/// machine whose RAM is `ram` — the checks and messages of Linux's `acpi_numa_init` and
/// `numa_memblks_init`.
///
/// # Errors
/// [`NumaError`] when Linux would not use the SRAT (after printing why).
pub fn from_tables(
    srat: &acpi::Table<'_>,
    slit: Option<&acpi::Table<'_>>,
    ram: Ram<'_>,
) -> Result<NumaInfo, NumaError> {
    let mut info = NumaInfo::empty();
    parse_cpus(&mut info, srat)?;
    parse_memory(&mut info, srat)?;
    let slit = match slit.map(Slit::parse) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            log!("ACPI: {e}");
            None
        }
        None => None,
    };
    if info.nr_srat_mem == 0 {
        return Err(NumaError::NoMemory);
    }
    cleanup_meminfo(&mut info, ram)?;
    check_coverage(&info, ram)?;
    let highest = info
        .memblks()
        .iter()
        .map(|b| b.nid)
        .chain((0..32).filter(|n| info.nodes_parsed & (1 << n) != 0))
        .max()
        .unwrap_or(0);
    info.nr_nodes = highest as usize + 1;
    if let Some(n) = (0..info.nr_nodes as u32).find(|&n| info.memblks().iter().all(|b| b.nid != n))
    {
        log!("NUMA: Node {n} has no memory: kmem needs memory on every node; NUMA not used");
        return Err(NumaError::MemorylessNode(n));
    }
    set_distances(&mut info, slit);
    Ok(info)
}

/// Finds the tables, prints their headers as Linux does at boot, and builds the NUMA
/// description (`Ok(None)`: the firmware describes no NUMA).
///
/// # Errors
/// No usable ACPI tables, or Linux would reject the SRAT; the caller boots one node.
pub fn from_firmware(
    mem: &dyn PhysMem,
    rsdp_paddr: u64,
    ram: Ram<'_>,
) -> Result<NumaInfo, NumaError> {
    let rsdp = if rsdp_paddr != 0 {
        Rsdp::parse(mem, rsdp_paddr)
    } else {
        Rsdp::scan_bios(mem).ok_or(AcpiError::NoRsdp)
    };
    let rsdp = rsdp.map_err(|e| report(e, NumaError::NoAcpi(e)))?;
    log!("{rsdp}");
    let acpi = Acpi::new(mem, rsdp).map_err(|e| report(e, NumaError::NoAcpi(e)))?;
    log!("{}", acpi.root);
    for t in acpi.tables() {
        match t {
            Ok(t) => log!("{t}"),
            Err(e) => log!("ACPI: {e}"),
        }
    }
    let mut skipped = None;
    let srat = acpi.find(Sig(*b"SRAT"), &mut skipped);
    let slit = acpi.find(Sig(*b"SLIT"), &mut skipped);
    let Some(srat) = srat else {
        return Err(NumaError::NoSrat);
    };
    from_tables(&srat, slit.as_ref(), ram)
}

/// Prints Linux's `dummy_numa_init` lines for a machine booting as one node whose RAM ends at
/// `ram_end`.
pub fn print_dummy(ram_end: u64) {
    log!("No NUMA configuration found");
    log!(
        "Faking a node at [mem {:#018x}-{:#018x}]",
        0,
        ram_end.saturating_sub(1)
    );
}

/// The usable RAM of the boot memory map as memblock will get it (clipped to the direct map),
/// into `buf`; returns the ranges filled.
pub fn ram_ranges<'a>(info: &BootInfo, buf: &'a mut [(u64, u64); MAX_RAM_RANGES]) -> Ram<'a> {
    let limit = boot::identity_map_end();
    let mut n = 0;
    for e in info.e820().iter().filter(|e| e.kind == E820_RAM) {
        let end = e.end().min(limit);
        if e.addr < end && n < buf.len() {
            buf[n] = (e.addr, end);
            n += 1;
        }
    }
    Ram(&buf[..n])
}

/// Reads the firmware's NUMA description at boot (Linux's `x86_numa_init`): on success it is
/// kept in [`NUMA`]; otherwise the machine is one node and Linux's `dummy_numa_init` lines are
/// printed.
pub fn init(info: &BootInfo) -> Option<&'static NumaInfo> {
    let mut buf = [(0, 0); MAX_RAM_RANGES];
    let ram = ram_ranges(info, &mut buf);
    // SAFETY: called from kernel_main before kmem boots: nothing has written the firmware's
    // tables or the BIOS area, and the boot identity map is live.
    let mem = unsafe { IdentityMem::new() };
    match from_firmware(&mem, info.rsdp_paddr, ram) {
        Ok(numa) => Some(NUMA.set(numa)),
        Err(_) => {
            print_dummy(ram.high());
            None
        }
    }
}
