//! Model-based test of process memory (issue 15): random spawn/fork/exit/mmap/munmap/
//! mprotect/mremap/madvise/write/read on a few tasks, checked against a simple reference
//! (per task: which pages are mapped with which access, and every byte written). Every byte
//! a task wrote reads back, accesses the reference forbids kill the task with a segfault,
//! and after every task exits the free-page count is back at its value before the first
//! task (no page leaked, page tables included).

mod common;
use common::*;
use std::collections::BTreeMap;

use kmem::arch::Arch;
use kmem::memory::MADV_DONTNEED;
use kmem::uaccess::UaccessError;
use kmem::vma::*;
use proptest::prelude::*;

const ARENA: u64 = 0x1000_0000;
const PAGES: u64 = 16;

#[derive(Clone, Debug)]
enum Op {
    Spawn,
    Fork(usize),
    Exit(usize),
    Mmap(usize, u64, u64, u32),
    Munmap(usize, u64, u64),
    Mprotect(usize, u64, u64, u32),
    Mremap(usize, u64, u64, u64),
    DontNeed(usize, u64, u64),
    Write(usize, u64, u8),
    Read(usize, u64),
}

fn op() -> impl Strategy<Value = Op> {
    let t = 0usize..4;
    let pg = 0..PAGES;
    let n = 1u64..6;
    let prot = prop_oneof![
        4 => Just(PROT_READ | PROT_WRITE),
        1 => Just(PROT_READ),
        1 => Just(PROT_NONE)
    ];
    // A few byte slots per page, so that reads meet earlier writes; offset 0 of a page is
    // a wild access (see `RefTask::aim`).
    let off = prop_oneof![
        12 => (0..PAGES, 0..4usize).prop_map(|(p, s)| p * 4096 + [8, 16, 2056, 4088][s]),
        1 => (0..PAGES).prop_map(|p| p * 4096),
    ];
    prop_oneof![
        2 => Just(Op::Spawn),
        2 => t.clone().prop_map(Op::Fork),
        1 => t.clone().prop_map(Op::Exit),
        6 => (t.clone(), pg.clone(), n.clone(), prot.clone()).prop_map(|(a, b, c, d)| Op::Mmap(a, b, c, d)),
        2 => (t.clone(), pg.clone(), n.clone()).prop_map(|(a, b, c)| Op::Munmap(a, b, c)),
        2 => (t.clone(), pg.clone(), n.clone(), prot).prop_map(|(a, b, c, d)| Op::Mprotect(a, b, c, d)),
        1 => (t.clone(), pg.clone(), n.clone(), pg.clone()).prop_map(|(a, b, c, d)| Op::Mremap(a, b, c, d)),
        1 => (t.clone(), pg, n).prop_map(|(a, b, c)| Op::DontNeed(a, b, c)),
        8 => (t.clone(), off.clone(), any::<u8>()).prop_map(|(a, b, c)| Op::Write(a, b, c)),
        6 => (t, off).prop_map(|(a, b)| Op::Read(a, b)),
    ]
}

/// One task of the reference: page index → access, and bytes written (absent = 0).
#[derive(Clone, Default)]
struct RefTask {
    pages: BTreeMap<u64, u32>,
    bytes: BTreeMap<u64, u8>,
}

impl RefTask {
    /// Most accesses go to a page the task may use (so that tasks live long enough to
    /// fork and share): an offset in an unmapped or forbidden page is moved to one of the
    /// usable pages, unless its low six bits are 0 (a wild access, which kills the task).
    fn aim(&self, off: u64, need: u32) -> u64 {
        let ok = |p: &u64| self.pages.get(p).is_some_and(|x| x & need != 0);
        if ok(&(off / 4096)) || off.is_multiple_of(64) {
            return off;
        }
        let usable: Vec<u64> = self.pages.keys().copied().filter(|p| ok(p)).collect();
        if usable.is_empty() {
            return off;
        }
        usable[(off / 4096) as usize % usable.len()] * 4096 + off % 4096
    }

    fn unmap(&mut self, p: u64, n: u64) {
        for i in p..p + n {
            self.pages.remove(&i);
            let a = ARENA + i * 4096;
            let keys: Vec<u64> = self.bytes.range(a..a + 4096).map(|(k, _)| *k).collect();
            for k in keys {
                self.bytes.remove(&k);
            }
        }
    }
}

/// `Op::Mprotect` on task `pid` and its reference `r`.
fn mprotect_op(m: &M, pid: i32, r: &mut RefTask, p: u64, n: u64, prot: u32) {
    let n = n.min(PAGES - p);
    let all = (p..p + n).all(|k| r.pages.contains_key(&k));
    let res = m.mprotect(pid, ARENA + p * 4096, n * 4096, prot);
    if all {
        res.unwrap();
        for k in p..p + n {
            r.pages.insert(k, prot);
        }
    } else {
        assert_eq!(res, Err(kmem::errno::Errno::ENOMEM));
        // Linux changed the mapped pages before the first hole.
        for k in p..p + n {
            if !r.pages.contains_key(&k) {
                break;
            }
            r.pages.insert(k, prot);
        }
    }
}

/// `Op::Mremap` on task `pid` and its reference `r` (see the arm in `run`).
fn mremap_op(m: &M, pid: i32, r: &mut RefTask, p: u64, n: u64, to: u64) {
    let n = n.min(PAGES - p).min(PAGES - to);
    if to < p + n && p < to + n {
        return;
    }
    let Some(&prot) = r.pages.get(&p) else {
        return;
    };
    if !(p..p + n).all(|k| r.pages.get(&k) == Some(&prot)) {
        return;
    }
    // The source must lie inside one VMA: the model does not track VMA boundaries, so ask
    // the kernel.
    let one = m
        .with_task(pid, |t| {
            t.mm.vma_lookup(ARENA + p * 4096)
                .is_some_and(|v| v.vm_end >= ARENA + (p + n) * 4096)
        })
        .unwrap();
    if !one {
        return;
    }
    let res = m.mremap(
        pid,
        ARENA + p * 4096,
        n * 4096,
        n * 4096,
        MREMAP_MAYMOVE | MREMAP_FIXED,
        ARENA + to * 4096,
    );
    assert_eq!(res, Ok(ARENA + to * 4096));
    let moved: Vec<(u64, u8)> = r
        .bytes
        .range(ARENA + p * 4096..ARENA + (p + n) * 4096)
        .map(|(k, v)| (*k, *v))
        .collect();
    r.unmap(to, n);
    r.unmap(p, n);
    for k in to..to + n {
        r.pages.insert(k, prot);
    }
    for (k, v) in moved {
        r.bytes.insert(k - p * 4096 + to * 4096, v);
    }
}

fn run(arch: Arch, ops: &[Op]) {
    let m = boot(arch, 128 << 20, 2);
    let w = m.spawn("warmup").unwrap();
    m.exit(w).unwrap();
    let free0 = settle(&m);
    let mut tasks: Vec<(i32, RefTask)> = Vec::new();
    for o in ops {
        let pick = |i: usize, n: usize| if n == 0 { None } else { Some(i % n) };
        match *o {
            Op::Spawn => {
                if tasks.len() < 4 {
                    tasks.push((m.spawn("t").unwrap(), RefTask::default()));
                }
            }
            Op::Fork(i) => {
                if let Some(i) = pick(i, tasks.len()) {
                    if tasks.len() < 5 {
                        let c = m.fork(tasks[i].0).unwrap();
                        let r = tasks[i].1.clone();
                        tasks.push((c, r));
                    }
                }
            }
            Op::Exit(i) => {
                if let Some(i) = pick(i, tasks.len()) {
                    m.exit(tasks.remove(i).0).unwrap();
                }
            }
            Op::Mmap(i, p, n, prot) => {
                let Some(i) = pick(i, tasks.len()) else {
                    continue;
                };
                let n = n.min(PAGES - p);
                let (pid, r) = &mut tasks[i];
                let a = m
                    .mmap(
                        *pid,
                        ARENA + p * 4096,
                        n * 4096,
                        prot,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                        -1,
                        0,
                    )
                    .unwrap();
                assert_eq!(a, ARENA + p * 4096);
                r.unmap(p, n);
                for k in p..p + n {
                    r.pages.insert(k, prot);
                }
            }
            Op::Munmap(i, p, n) => {
                let Some(i) = pick(i, tasks.len()) else {
                    continue;
                };
                let n = n.min(PAGES - p);
                let (pid, r) = &mut tasks[i];
                m.munmap(*pid, ARENA + p * 4096, n * 4096).unwrap();
                r.unmap(p, n);
            }
            Op::Mprotect(i, p, n, prot) => {
                let Some(i) = pick(i, tasks.len()) else {
                    continue;
                };
                let (pid, r) = &mut tasks[i];
                mprotect_op(&m, *pid, r, p, n, prot);
            }
            Op::Mremap(i, p, n, to) => {
                // Move n pages at p to `to` (MREMAP_FIXED), when the source is one mapping
                // of uniform access and the ranges do not overlap.
                let Some(i) = pick(i, tasks.len()) else {
                    continue;
                };
                let (pid, r) = &mut tasks[i];
                mremap_op(&m, *pid, r, p, n, to);
            }
            Op::DontNeed(i, p, n) => {
                let Some(i) = pick(i, tasks.len()) else {
                    continue;
                };
                let n = n.min(PAGES - p);
                let (pid, r) = &mut tasks[i];
                if !(p..p + n).all(|k| r.pages.contains_key(&k)) {
                    continue;
                }
                m.madvise(*pid, ARENA + p * 4096, n * 4096, MADV_DONTNEED)
                    .unwrap();
                let a = ARENA + p * 4096;
                let keys: Vec<u64> = r.bytes.range(a..a + n * 4096).map(|(k, _)| *k).collect();
                for k in keys {
                    r.bytes.remove(&k);
                }
            }
            Op::Write(i, off, v) => {
                let Some(i) = pick(i, tasks.len()) else {
                    continue;
                };
                let (pid, r) = &mut tasks[i];
                let off = r.aim(off, PROT_WRITE);
                let a = ARENA + off;
                let ok = r
                    .pages
                    .get(&(off / 4096))
                    .is_some_and(|p| p & PROT_WRITE != 0);
                let res = m.upoke(*pid, a, 1, v as u64);
                if ok {
                    res.unwrap();
                    r.bytes.insert(a, v);
                } else {
                    assert_eq!(res, Err(UaccessError::Segfault(a)));
                    tasks.remove(i);
                }
            }
            Op::Read(i, off) => {
                let Some(i) = pick(i, tasks.len()) else {
                    continue;
                };
                let (pid, r) = &mut tasks[i];
                let off = r.aim(off, PROT_READ);
                let a = ARENA + off;
                let ok = r
                    .pages
                    .get(&(off / 4096))
                    .is_some_and(|p| p & PROT_READ != 0);
                let res = m.upeek(*pid, a, 1);
                if ok {
                    assert_eq!(
                        res,
                        Ok(*r.bytes.get(&a).unwrap_or(&0) as u64),
                        "read at {a:#x}"
                    );
                } else {
                    assert_eq!(res, Err(UaccessError::Segfault(a)));
                    tasks.remove(i);
                }
            }
        }
        for (pid, _) in &tasks {
            m.with_task(*pid, |t| t.mm.validate().unwrap()).unwrap();
        }
    }
    finish(&m, tasks, free0);
}

/// Every byte still reads back; after every task exits, no page is left.
fn finish(m: &M, tasks: Vec<(i32, RefTask)>, free0: usize) {
    for (pid, r) in &tasks {
        for (a, v) in &r.bytes {
            let p = (a - ARENA) / 4096;
            if r.pages.get(&p).is_some_and(|x| x & PROT_READ != 0) {
                assert_eq!(m.upeek(*pid, *a, 1), Ok(*v as u64));
            }
        }
    }
    for (pid, _) in tasks {
        m.exit(pid).unwrap();
    }
    assert_eq!(settle(m), free0, "pages leaked");
    let mut s = String::new();
    m.proc_read("/proc/meminfo", &mut s).unwrap();
    assert!(s.contains("AnonPages:             0 kB"), "{s}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn model_x86_64(ops in proptest::collection::vec(op(), 1..120)) {
        run(Arch::X86_64, &ops);
    }

    #[test]
    fn model_i386(ops in proptest::collection::vec(op(), 1..120)) {
        run(Arch::I386, &ops);
    }
}

#[test]
fn model_fork_then_both_write() {
    let rw = PROT_READ | PROT_WRITE;
    run(
        Arch::X86_64,
        &[
            Op::Spawn,
            Op::Mmap(0, 0, 2, rw),
            Op::Write(0, 5, 5),
            Op::Fork(0),
            Op::Write(1, 5, 7),
            Op::Read(0, 5),
            Op::Write(0, 4096, 9),
            Op::Read(1, 4096),
            Op::Exit(0),
            Op::Write(0, 5, 8),
            Op::Read(0, 5),
        ],
    );
}
