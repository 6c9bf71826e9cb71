//! NUMA from the shell (issue 19): `alloc_pages_node`, `kmalloc_node`, `page_to_nid`, `numa_node_id`, the
//! per-node /proc and /sys files of `kmem --numa 2`.

use super::device_tests::run;
use super::Shell;
use crate::kernel::{BootOptions, Kernel, NumaOptions};
use kmem::arch::Arch;

fn shell(numa: NumaOptions) -> Shell {
    let k = Kernel::boot(&BootOptions {
        arch: Arch::X86_64,
        mem: 4 << 30,
        cpus: 2,
        cmdline: String::new(),
        seed: 0,
        maxmem: 0,
        numa,
    })
    .unwrap();
    Shell::new(k)
}

#[test]
fn alloc_pages_node_from_the_shell() {
    let mut sh = shell(NumaOptions {
        nodes: 2,
        ..NumaOptions::default()
    });
    let (out, err) = run(
        &mut sh,
        "p = alloc_pages_node(1, GFP_KERNEL | __GFP_THISNODE, 0)\n\
         page_to_nid(p)\n\
         q = alloc_pages_node(0, GFP_KERNEL, 3)\n\
         page_to_nid(q)\n\
         __free_pages(p, 0)\n\
         __free_pages(q, 3)\n\
         r = alloc_pages_node(2, GFP_KERNEL | __GFP_NOWARN, 0)\n\
         r\n\
         cat /sys/devices/system/node/node1/distance\n",
    );
    assert_eq!(err, "");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"1"), "{out}");
    assert!(lines.contains(&"0"), "{out}");
    assert!(out.contains("20 10\n"), "{out}");
    // Node 2 is not online: NULL.
    assert!(out.contains("r = 0x0\n"), "{out}");
}

#[test]
fn kmalloc_node_from_the_shell() {
    let mut sh = shell(NumaOptions {
        nodes: 2,
        ..NumaOptions::default()
    });
    let (out, err) = run(
        &mut sh,
        "p = kmalloc_node(100, GFP_KERNEL, 1)\n\
         page_to_nid(virt_to_page(p))\n\
         q = kzalloc_node(70000, GFP_KERNEL, 1)\n\
         page_to_nid(virt_to_page(q))\n\
         kfree(p)\n\
         kfree(q)\n\
         s = kmem_cache_create(\"numa_sh\", 64, 8, 0)\n\
         o = kmem_cache_alloc_node(s, GFP_KERNEL, 1)\n\
         page_to_nid(virt_to_page(o))\n\
         kmem_cache_free(s, o)\n\
         kmem_cache_destroy(s)\n\
         r = kmalloc_node(64, GFP_KERNEL | __GFP_NOWARN, 3)\n\
         r\n",
    );
    assert_eq!(err, "");
    let ones = out.lines().filter(|l| *l == "1").count();
    assert_eq!(ones, 3, "{out}");
    assert!(out.contains("r = 0x0\n"), "{out}");
}

#[test]
fn numa_mem_and_distance_options() {
    let mut sh = shell(NumaOptions {
        nodes: 0,
        mem: vec![1 << 30, 3 << 30],
        distance: vec![10, 31, 31, 10],
        ..NumaOptions::default()
    });
    let (out, _) = run(
        &mut sh,
        "cat /sys/devices/system/node/node0/distance\n\
         cat /sys/devices/system/node/node0/meminfo\n",
    );
    assert!(out.contains("10 31\n"), "{out}");
    // Node 0 has the first GiB, its end rounded up to 32 MiB past the hole below 1 MiB.
    let total: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("Node 0 MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    assert!(total > 1000 * 1024 && total <= 1056 * 1024, "{out}");
    // A bad distance matrix does not boot.
    let bad = Kernel::boot(&BootOptions {
        arch: Arch::X86_64,
        mem: 1 << 30,
        cpus: 1,
        cmdline: String::new(),
        seed: 0,
        maxmem: 0,
        numa: NumaOptions {
            nodes: 2,
            mem: vec![],
            distance: vec![10, 20, 20],
            ..NumaOptions::default()
        },
    });
    assert!(bad.is_err());
    // Nodes asking for more RAM than the machine has do not boot either.
    let too_big = Kernel::boot(&BootOptions {
        arch: Arch::X86_64,
        mem: 1 << 30,
        cpus: 1,
        cmdline: String::new(),
        seed: 0,
        maxmem: 0,
        numa: NumaOptions {
            nodes: 0,
            mem: vec![2 << 30, 512 << 20],
            ..NumaOptions::default()
        },
    });
    assert!(too_big.err().unwrap().contains("--numa-mem"));
}

#[test]
fn mempolicy_from_the_shell() {
    let mut sh = shell(NumaOptions {
        nodes: 2,
        ..NumaOptions::default()
    });
    let (out, err) = run(
        &mut sh,
        "p = spawn(\"pol\")\n\
         set_mempolicy(p, MPOL_BIND, 0x2)\n\
         a = mmap(p, 0, 8 << 12, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\n\
         for (i = 0; i < 8; i++) upoke64(p, a + (i << 12), i)\n\
         n1 = 0; for (i = 0; i < 8; i++) { if (get_mempolicy(p, a + (i << 12), MPOL_F_NODE|MPOL_F_ADDR) == 1) n1++ }; n1\n\
         b = mmap(p, 0, 10 << 12, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\n\
         mbind(p, b, 10 << 12, MPOL_INTERLEAVE, 0x3, 0)\n\
         for (i = 0; i < 10; i++) upoke64(p, b + (i << 12), i)\n\
         m1 = 0; for (i = 0; i < 10; i++) { if (get_mempolicy(p, b + (i << 12), MPOL_F_NODE|MPOL_F_ADDR) == 1) m1++ }; m1\n\
         get_mempolicy(p, b, MPOL_F_ADDR) == MPOL_INTERLEAVE\n\
         get_mempolicy_nodemask(p, 0, 0)\n\
         set_mempolicy(p, MPOL_BIND, 0)\n\
         set_mempolicy(p, 99, 1)\n\
         mbind(p, b + 1, 4096, MPOL_BIND, 1, 0)\n\
         mbind(p, 0x1000, 4096, MPOL_BIND, 1, 0)\n",
    );
    assert_eq!(err, "");
    assert!(out.contains("n1 = 0\n8\n"), "{out}");
    assert!(out.contains("m1 = 0\n5\n1\n2\n"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"-EINVAL"), "{out}");
    assert!(lines.contains(&"-EFAULT"), "{out}");
    assert_eq!(
        lines.iter().filter(|l| **l == "-EINVAL").count(),
        3,
        "{out}"
    );
}

/// `kmem --numa 2 --mem 4G`: each node's memory is its own memfd (`kmem-phys-nodeN`), as long
/// as the addresses the node spans (node 1's includes the PCI hole), together all of
/// physical memory; a page the shell allocates on node N is in node N's file.
#[test]
fn each_node_has_its_own_memfd() {
    use kmem::platform::Platform;
    let sh = shell(NumaOptions {
        nodes: 2,
        ..NumaOptions::default()
    });
    let plat = sh.k.m.platform();
    let (fd0, size0) = plat.node_memfd(0).unwrap();
    let (fd1, size1) = plat.node_memfd(1).unwrap();
    assert!(plat.node_memfd(2).is_none());
    assert_eq!(size0 + size1, plat.phys_end().as_u64());
    for (fd, nid) in [(fd0, 0), (fd1, 1)] {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        assert!(
            link.to_string_lossy()
                .starts_with(&format!("/memfd:kmem-phys-node{nid} ")),
            "{link:?}"
        );
    }
    // Node 1 starts where node 0's file ends, at offset 0 of its own.
    let (fd, off, _) = plat.memfd_at(kmem::PhysAddr::new(size0)).unwrap();
    assert_eq!((fd, off), (fd1, 0));
    for nid in [0, 1] {
        let page =
            sh.k.m
                .alloc_pages_node(nid, kmem::GfpFlags::GFP_KERNEL, kmem::Order::new(0))
                .unwrap();
        let phys = sh.k.m.page_to_pfn(page).as_u64() << 12;
        let (fd, _, _) = plat.memfd_at(kmem::PhysAddr::new(phys)).unwrap();
        assert_eq!(fd, if nid == 0 { fd0 } else { fd1 }, "node {nid}");
        sh.k.m.__free_pages(page, kmem::Order::new(0));
    }
}
