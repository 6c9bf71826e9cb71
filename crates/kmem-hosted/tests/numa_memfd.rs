//! One memfd per NUMA node (issue 19): `HostedPlatform::set_numa_memblks` gives each node
//! its own file (`kmem-phys-nodeN`), as long as the addresses the node spans; a page of node
//! N is in node N's file; hot-added memory goes to the named node's file.

use std::os::fd::RawFd;

use kmem::arch::Arch;
use kmem::platform::Platform;
use kmem::{BootParams, GfpFlags, Machine, NumaMemblk, NumaTopology, Order, PhysAddr};
use kmem_hosted::{HostedConfig, HostedPlatform};

const MB: u64 = 1 << 20;
const GB: u64 = 1 << 30;

fn blk(nid: u32, start: u64, end: u64) -> NumaMemblk {
    NumaMemblk { nid, start, end }
}

/// The name of the file behind descriptor `fd` (`/memfd:NAME (deleted)`).
fn fd_name(fd: RawFd) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn file_size(fd: RawFd) -> u64 {
    // SAFETY: `stat` is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `fd` is open for the platform's life; `st` is a valid out-pointer.
    assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
    st.st_size as u64
}

fn pread_u64(fd: RawFd, off: u64) -> u64 {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into `v`, a valid buffer of that size.
    let n = unsafe { libc::pread(fd, (&mut v as *mut u64).cast(), 8, off as libc::off_t) };
    assert_eq!(n, 8);
    v
}

/// How many descriptors of this process name `name`.
fn open_memfds(name: &str) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with(&format!("/memfd:{name} ")))
        .count()
}

/// QEMU's `pc` map at 5 GiB (RAM below 3 GiB and 4–6 GiB) split as `--numa 2` does: node
/// 1's file spans the PCI hole too; writes through the direct map land in the node's file.
#[test]
fn two_nodes_have_two_memfds_of_their_spans() {
    let p = HostedPlatform::new(HostedConfig::deterministic(6 * GB, 1)).unwrap();
    let half = 2 * GB + 512 * MB;
    let blks = [
        blk(0, 0, half),
        blk(1, half, 3 * GB),
        blk(1, 4 * GB, 6 * GB),
    ];
    p.set_numa_memblks(&blks).unwrap();
    let (fd0, size0) = p.node_memfd(0).unwrap();
    let (fd1, size1) = p.node_memfd(1).unwrap();
    assert!(p.node_memfd(2).is_none());
    assert_eq!((size0, size1), (half, 6 * GB - half));
    assert_eq!((file_size(fd0), file_size(fd1)), (size0, size1));
    assert!(fd_name(fd0).starts_with("/memfd:kmem-phys-node0"));
    assert!(fd_name(fd1).starts_with("/memfd:kmem-phys-node1"));
    let base = p.direct_map_base();
    for (phys, fd, off) in [
        (0x1000, fd0, 0x1000),
        (half - 8, fd0, half - 8),
        (half, fd1, 0),
        (5 * GB, fd1, 5 * GB - half),
    ] {
        // SAFETY: `phys` is below the platform's 6 GiB of physical memory.
        unsafe { base.add(phys as usize).cast::<u64>().write(phys ^ 0x5a5a) };
        assert_eq!(pread_u64(fd, off), phys ^ 0x5a5a, "phys {phys:#x}");
        let (fd_at, off_at, _) = p.memfd_at(PhysAddr::new(phys)).unwrap();
        assert_eq!((fd_at, off_at), (fd, off));
    }
    // Written memory cannot be split again.
    assert!(p.set_numa_memblks(&blks).is_err());
    // The platform's host memory is both files'.
    assert_eq!(p.resident_bytes().unwrap(), 4 * 4096);
    // SAFETY: nothing refers to the page; its bytes become zero.
    unsafe { p.punch_hole(PhysAddr::new(5 * GB), 4096).unwrap() };
    assert_eq!(pread_u64(fd1, 5 * GB - half), 0);
}

/// A booted two-node machine: its pages of node 1 are in node 1's file; growth goes to node
/// 0's file, or to the node `grow_phys_node` names.
#[test]
fn booted_two_node_machine_places_node_pages_in_their_file() {
    let blks = [blk(0, 0, 128 * MB), blk(1, 128 * MB, 256 * MB)];
    let mut params = BootParams::simulated(Arch::X86_64, 256 * MB, 2).unwrap();
    params.numa = Some(NumaTopology {
        nr_nodes: 2,
        memblks: &blks,
        distance: &[],
        cpu_to_node: &[],
        hotpluggable: &[],
    });
    let mut cfg = HostedConfig::deterministic(params.e820.ram_end().next_multiple_of(4096), 42);
    cfg.max_phys_size = GB;
    let plat = HostedPlatform::new(cfg).unwrap();
    plat.set_numa_memblks(&blks).unwrap();
    let m = Machine::boot(plat, &params).unwrap();
    // Tests run in parallel: at least this machine's file is open.
    assert!(open_memfds("kmem-phys-node1") >= 1);
    let (fd1, size1) = m.platform().node_memfd(1).unwrap();
    assert!(fd_name(fd1).starts_with("/memfd:kmem-phys-node1"));
    assert_eq!(size1, m.platform().phys_end().as_u64() - 128 * MB);
    for nid in [0, 1] {
        let page = m
            .alloc_pages_node(nid, GfpFlags::GFP_KERNEL, Order::new(0))
            .unwrap();
        assert_eq!(m.page_to_nid(page), nid as usize);
        let phys = m.page_to_pfn(page).as_u64() * 4096;
        let va = m.page_address(page).unwrap().as_usize() as *mut u64;
        // SAFETY: the page was just allocated to us; `va` is its direct-map address.
        unsafe { va.write(0xfeed_0000 + nid as u64) };
        let (fd, off, _) = m.platform().memfd_at(PhysAddr::new(phys)).unwrap();
        assert_eq!(pread_u64(fd, off), 0xfeed_0000 + nid as u64);
        assert_eq!(fd == fd1, nid == 1, "node {nid}: phys {phys:#x}");
        m.__free_pages(page, Order::new(0));
    }
    // Hot-added memory: node 0's file by default, node 1's when named.
    let (fd0, size0) = m.platform().node_memfd(0).unwrap();
    let end = m.platform().phys_end().as_u64();
    assert!(m.platform().grow_phys_end(PhysAddr::new(end + 128 * MB)));
    assert_eq!(file_size(fd0), size0 + 128 * MB);
    m.platform()
        .grow_phys_node(PhysAddr::new(end + 256 * MB), 1)
        .unwrap();
    assert_eq!(file_size(fd1), size1 + 128 * MB);
    let (fd, off, _) = m
        .platform()
        .memfd_at(PhysAddr::new(end + 128 * MB))
        .unwrap();
    assert_eq!((fd, off), (fd1, size1));
    m.check_invariants().unwrap();
}

/// Bad layouts are refused and leave one memfd backing everything.
#[test]
fn bad_node_layouts_are_refused() {
    let p = HostedPlatform::new(HostedConfig::deterministic(64 * MB, 1)).unwrap();
    assert!(p
        .set_numa_memblks(&[blk(0, 0, 32 * MB), blk(200, 32 * MB, 64 * MB)])
        .is_err());
    assert!(p.node_memfd(1).is_none());
    let (fd0, size0) = p.node_memfd(0).unwrap();
    assert_eq!((file_size(fd0), size0), (64 * MB, 64 * MB));
    assert!(p.grow_phys_node(PhysAddr::new(128 * MB), 99).is_err());
}
