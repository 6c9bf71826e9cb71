//! Memory policies (issue 19; mm/mempolicy.c): `set_mempolicy`, `mbind`, `get_mempolicy`
//! on a two-node machine — where anonymous faults place pages under bind, preferred,
//! interleave and weighted interleave, the `numa_interleave` counter, `MPOL_MF_STRICT` /
//! `MPOL_MF_MOVE`, VMA splitting and merging, and Linux's error codes.

mod common;
use common::*;
use kmem::errno::Errno;
use kmem::vma::mempolicy::*;
use kmem::{Order, PAGE_SIZE};

const MB: u64 = 1 << 20;
const PAGE: u64 = PAGE_SIZE as u64;

/// 256 MiB on two nodes of 128 MiB (node 0 holds ZONE_DMA and the kernel).
fn two_nodes() -> M {
    boot_two_nodes(256 * MB, "")
}

#[test]
fn task_bound_to_node_1_faults_there() {
    let m = two_nodes();
    let p = m.spawn("bound").unwrap();
    m.set_mempolicy(p, MPOL_BIND, 0b10).unwrap();
    let a = anon(&m, p, 64);
    touch(&m, p, a, 64);
    assert!(nids(&m, p, a, 64).iter().all(|&n| n == 1));
    let g = m.get_mempolicy(p, 0, 0).unwrap();
    assert_eq!((g.policy, g.nodes), (MPOL_BIND, NodeMask(0b10)));
    // A child inherits the task policy.
    let c = m.fork(p).unwrap();
    assert_eq!(m.get_mempolicy(c, 0, 0).unwrap().policy, MPOL_BIND);
    // Back to default: the local node (this thread's CPU's).
    m.set_mempolicy(p, MPOL_DEFAULT, 0).unwrap();
    let b = anon(&m, p, 8);
    touch(&m, p, b, 8);
    let local = m.numa_node_id();
    assert!(nids(&m, p, b, 8).iter().all(|&n| n == local));
}

#[test]
fn interleave_spreads_pages_evenly() {
    let m = two_nodes();
    let p = m.spawn("il").unwrap();
    let a = anon(&m, p, 101);
    let before = vmstat(&m, "numa_interleave");
    m.mbind(p, a, 101 * PAGE, MPOL_INTERLEAVE, 0b11, 0).unwrap();
    touch(&m, p, a, 101);
    let n = nids(&m, p, a, 101);
    let on1 = n.iter().filter(|&&x| x == 1).count();
    assert!((101 - on1).abs_diff(on1) <= 1, "{on1} of 101 on node 1");
    // By offset: neighbours alternate.
    assert!(n.windows(2).all(|w| w[0] != w[1]));
    assert_eq!(vmstat(&m, "numa_interleave") - before, 101);
    let g = m.get_mempolicy(p, a, MPOL_F_ADDR).unwrap();
    assert_eq!((g.policy, g.nodes), (MPOL_INTERLEAVE, NodeMask(0b11)));
    // MPOL_F_NODE | MPOL_F_ADDR: the node of the page there.
    let g = m
        .get_mempolicy(p, a + PAGE, MPOL_F_NODE | MPOL_F_ADDR)
        .unwrap();
    assert_eq!(g.policy as usize, n[1]);
}

#[test]
fn weighted_interleave_follows_the_weights() {
    let m = two_nodes();
    m.set_il_weight(1, 3).unwrap();
    assert_eq!(m.set_il_weight(0, 0), Err(Errno::EINVAL));
    assert_eq!(m.set_il_weight(2, 1), Err(Errno::EINVAL));
    let p = m.spawn("wil").unwrap();
    m.set_mempolicy(p, MPOL_WEIGHTED_INTERLEAVE, 0b11).unwrap();
    let a = anon(&m, p, 40);
    touch(&m, p, a, 40);
    let on1 = nids(&m, p, a, 40).iter().filter(|&&x| x == 1).count();
    assert_eq!(on1, 30);
}

#[test]
fn mbind_splits_and_merges_vmas() {
    let m = two_nodes();
    let p = m.spawn("split").unwrap();
    let a = anon(&m, p, 16);
    let vmas = |m: &M| m.with_task(p, |t| t.mm.map_count).unwrap();
    let n0 = vmas(&m);
    m.mbind(p, a + 4 * PAGE, 4 * PAGE, MPOL_BIND, 0b10, 0)
        .unwrap();
    assert_eq!(vmas(&m), n0 + 2);
    // The same policy on the neighbours merges the three back into one (before any fault
    // gives the parts anon_vmas of their own, as in Linux).
    m.mbind(p, a, 4 * PAGE, MPOL_BIND, 0b10, 0).unwrap();
    m.mbind(p, a + 8 * PAGE, 8 * PAGE, MPOL_BIND, 0b10, 0)
        .unwrap();
    assert_eq!(vmas(&m), n0);
    m.mbind(p, a, 4 * PAGE, MPOL_BIND, 0b01, 0).unwrap();
    m.mbind(p, a + 8 * PAGE, 8 * PAGE, MPOL_BIND, 0b01, 0)
        .unwrap();
    assert_eq!(vmas(&m), n0 + 2);
    touch(&m, p, a, 16);
    let n = nids(&m, p, a, 16);
    assert!(n[4..8].iter().all(|&x| x == 1));
    assert!(n[..4].iter().chain(&n[8..]).all(|&x| x == 0));
    // MPOL_DEFAULT removes it (and may cover holes).
    m.mbind(p, a, 64 * PAGE, MPOL_DEFAULT, 0, 0).unwrap();
    assert_eq!(
        m.get_mempolicy(p, a, MPOL_F_ADDR).unwrap().policy,
        MPOL_DEFAULT
    );
}

#[test]
fn preferred_falls_back_when_its_node_is_full() {
    let m = two_nodes();
    let held = fill_node(&m, 1);
    assert!(!held.is_empty());
    let p = m.spawn("pref").unwrap();
    m.set_mempolicy(p, MPOL_PREFERRED, 0b10).unwrap();
    let a = anon(&m, p, 16);
    touch(&m, p, a, 16);
    assert!(nids(&m, p, a, 16).iter().all(|&n| n == 0));
    for pg in held {
        m.__free_pages(pg, Order::ZERO);
    }
    // With room again, the preferred node.
    let b = anon(&m, p, 4);
    touch(&m, p, b, 4);
    assert!(nids(&m, p, b, 4).iter().all(|&n| n == 1));
}

#[test]
fn bind_fails_rather_than_spill() {
    let m = two_nodes();
    let held = fill_node(&m, 1);
    let p = m.spawn("nospill").unwrap();
    let a = anon(&m, p, 4);
    m.mbind(p, a, 4 * PAGE, MPOL_BIND, 0b10, 0).unwrap();
    let free0 = m.node_zones(0).map(|z| z.stats.free_pages()).sum::<usize>();
    assert!(m.upoke(p, a, 8, 1).is_err());
    // Nothing came from node 0.
    assert!(m.node_zones(0).map(|z| z.stats.free_pages()).sum::<usize>() + 8 >= free0);
    for pg in held {
        m.__free_pages(pg, Order::ZERO);
    }
}

#[test]
fn strict_and_move() {
    let m = two_nodes();
    let p = m.spawn("move").unwrap();
    let a = anon(&m, p, 8);
    touch(&m, p, a, 8);
    let local = m.numa_node_id();
    let other = 1 - local;
    assert!(nids(&m, p, a, 8).iter().all(|&n| n == local));
    // Pages on the local node break a strict bind to the other without MOVE: EIO, and the
    // policy is not set (queue_pages_range's -EIO skips mbind_range in do_mbind).
    assert_eq!(
        m.mbind(p, a, 8 * PAGE, MPOL_BIND, 1 << other, MPOL_MF_STRICT),
        Err(Errno::EIO)
    );
    assert_eq!(
        m.get_mempolicy(p, a, MPOL_F_ADDR).unwrap().policy,
        MPOL_DEFAULT
    );
    // Without STRICT the call succeeds, and the pages stay.
    m.mbind(p, a, 8 * PAGE, MPOL_BIND, 1 << other, 0).unwrap();
    assert!(nids(&m, p, a, 8).iter().all(|&n| n == local));
    // With MOVE they migrate, data intact.
    m.mbind(
        p,
        a,
        8 * PAGE,
        MPOL_BIND,
        1 << other,
        MPOL_MF_STRICT | MPOL_MF_MOVE,
    )
    .unwrap();
    assert!(nids(&m, p, a, 8).iter().all(|&n| n == other));
    for i in 0..8 {
        assert_eq!(m.upeek(p, a + i * PAGE, 8).unwrap(), i);
    }
}

#[test]
fn bad_arguments_are_linux_errnos() {
    let m = two_nodes();
    let p = m.spawn("bad").unwrap();
    let a = anon(&m, p, 4);
    let e = |r: Result<(), Errno>| r.unwrap_err();
    assert_eq!(e(m.set_mempolicy(p, MPOL_MAX, 1)), Errno::EINVAL);
    assert_eq!(e(m.set_mempolicy(p, MPOL_BIND, 0)), Errno::EINVAL);
    assert_eq!(e(m.set_mempolicy(p, MPOL_INTERLEAVE, 0b100)), Errno::EINVAL);
    assert_eq!(e(m.set_mempolicy(p, MPOL_DEFAULT, 1)), Errno::EINVAL);
    assert_eq!(e(m.set_mempolicy(p, MPOL_LOCAL, 1)), Errno::EINVAL);
    assert_eq!(e(m.set_mempolicy(p, MPOL_BIND, 1 << 20)), Errno::EINVAL);
    assert_eq!(
        e(m.set_mempolicy(
            p,
            MPOL_BIND | MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES,
            1
        )),
        Errno::EINVAL
    );
    assert_eq!(e(m.set_mempolicy(999, MPOL_BIND, 1)), Errno::ESRCH);
    // An offline node alongside an online one is dropped, as Linux's mask intersection does.
    m.set_mempolicy(p, MPOL_BIND, 0b110).unwrap();
    assert_eq!(m.get_mempolicy(p, 0, 0).unwrap().nodes, NodeMask(0b10));
    assert_eq!(e(m.mbind(p, a + 1, PAGE, MPOL_BIND, 1, 0)), Errno::EINVAL);
    assert_eq!(e(m.mbind(p, a, PAGE, MPOL_BIND, 1, 1 << 3)), Errno::EINVAL);
    assert_eq!(
        e(m.mbind(p, a, u64::MAX - PAGE, MPOL_BIND, 1, 0)),
        Errno::EINVAL
    );
    assert_eq!(e(m.mbind(p, a, 8 * PAGE, MPOL_BIND, 1, 0)), Errno::EFAULT);
    assert_eq!(m.mbind(p, a, 0, MPOL_BIND, 1, 0), Ok(()));
    // MPOL_DEFAULT may span holes, but not a range with no mapping at all
    // (queue_pages_range: "whole range in hole").
    assert_eq!(
        e(m.mbind(p, 0x1000, PAGE, MPOL_DEFAULT, 0, 0)),
        Errno::EFAULT
    );
    let g = |addr, f| m.get_mempolicy(p, addr, f).map(|_| ());
    assert_eq!(g(0, 1 << 5), Err(Errno::EINVAL));
    assert_eq!(g(a, 0), Err(Errno::EINVAL));
    assert_eq!(g(0, MPOL_F_MEMS_ALLOWED | MPOL_F_NODE), Err(Errno::EINVAL));
    assert_eq!(g(0x1000, MPOL_F_ADDR), Err(Errno::EFAULT));
    assert_eq!(g(0, MPOL_F_NODE), Err(Errno::EINVAL));
    assert_eq!(
        m.get_mempolicy(p, 0, MPOL_F_MEMS_ALLOWED).unwrap().nodes,
        NodeMask(0b11)
    );
}

#[test]
fn numa_maps_shows_policy_and_nodes() {
    let m = two_nodes();
    let p = m.spawn("nm").unwrap();
    let a = anon(&m, p, 10);
    m.mbind(p, a, 10 * PAGE, MPOL_INTERLEAVE, 0b11, 0).unwrap();
    touch(&m, p, a, 10);
    let b = anon(&m, p, 2);
    m.mbind(p, b, 2 * PAGE, MPOL_BIND | MPOL_F_STATIC_NODES, 0b10, 0)
        .unwrap();
    let nm = proc(&m, &format!("/proc/{p}/numa_maps"));
    let line = |addr: u64| {
        nm.lines()
            .find(|l| l.starts_with(&format!("{addr:08x} ")))
            .unwrap_or_else(|| panic!("{nm}"))
            .to_string()
    };
    assert_eq!(
        line(a),
        format!("{a:08x} interleave:0-1 anon=10 dirty=10 active=0 N0=5 N1=5 kernelpagesize_kB=4"),
        "{nm}"
    );
    // No pages: the policy alone.
    assert_eq!(line(b), format!("{b:08x} bind=static:1"));
    // The stack VMA, under the task's (default) policy.
    assert!(nm.lines().any(|l| l.ends_with(" default stack")), "{nm}");
    m.set_mempolicy(p, MPOL_PREFERRED, 0b10).unwrap();
    let nm = proc(&m, &format!("/proc/{p}/numa_maps"));
    assert!(nm.lines().any(|l| l.ends_with(" prefer:1 stack")), "{nm}");
}

#[test]
fn weighted_interleave_sysfs() {
    let m = two_nodes();
    let f = "/sys/kernel/mm/mempolicy/weighted_interleave/node1";
    assert_eq!(proc(&m, f), "1\n");
    m.proc_write(f, "4\n").unwrap();
    assert_eq!(proc(&m, f), "4\n");
    assert_eq!(m.il_weight(1), 4);
    assert!(m.proc_write(f, "0").is_err());
    assert!(m.proc_write(f, "256").is_err());
    assert_eq!(proc(&m, f), "4\n");
    assert_eq!(m.proc_mode(f), Some(0o644));
    assert_eq!(
        m.proc_mode("/sys/kernel/mm/mempolicy/weighted_interleave/node2"),
        None
    );
}
