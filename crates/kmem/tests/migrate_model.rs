//! Model-based test of page migration: random spawn/fork/exit/map (private anonymous,
//! shared anonymous, a memfd shared by every task that maps it)/write/read/migrate/pin
//! sequences on a few tasks, checked against a simple reference (per task: its regions and,
//! per backing object, every word written). Migration moves pages under the tasks' feet:
//! every value reads back, copy-on-write and sharing keep their meaning, pinned pages stay
//! where they are, and after every task exits the free-page count is back at its value
//! before the first task (no page leaked) and the LRU lists are empty.

mod common;
use common::*;

use kmem::arch::Arch;
use kmem::vma::*;
use kmem::PagePtr;
use proptest::prelude::*;

const PAGES: u64 = 8;
const PAGE: u64 = 4096;
const RW: u32 = PROT_READ | PROT_WRITE;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Private,
    SharedAnon,
    Memfd,
}

#[derive(Clone, Debug)]
enum Op {
    Spawn,
    Fork(usize),
    Exit(usize),
    Map(usize, Kind),
    Write(usize, usize, u64, u64),
    Read(usize, usize, u64),
    Migrate(usize, usize),
    Pin(usize, usize, u64),
    UnpinAll,
}

fn op() -> impl Strategy<Value = Op> {
    let t = 0usize..3;
    let r = 0usize..3;
    let kind = prop_oneof![
        3 => Just(Kind::Private),
        1 => Just(Kind::SharedAnon),
        1 => Just(Kind::Memfd)
    ];
    prop_oneof![
        2 => Just(Op::Spawn),
        2 => t.clone().prop_map(Op::Fork),
        1 => t.clone().prop_map(Op::Exit),
        3 => (t.clone(), kind).prop_map(|(a, k)| Op::Map(a, k)),
        8 => (t.clone(), r.clone(), 0..PAGES, any::<u64>()).prop_map(|(a, b, c, d)| Op::Write(a, b, c, d)),
        6 => (t.clone(), r.clone(), 0..PAGES).prop_map(|(a, b, c)| Op::Read(a, b, c)),
        4 => (t.clone(), r.clone()).prop_map(|(a, b)| Op::Migrate(a, b)),
        1 => (t, r, 0..PAGES).prop_map(|(a, b, c)| Op::Pin(a, b, c)),
        1 => Just(Op::UnpinAll),
    ]
}

/// A region of a task: its address and the object holding its words (a private region's
/// object is its own; shared ones are named by several tasks).
#[derive(Clone, Debug)]
struct Region {
    addr: u64,
    obj: usize,
    kind: Kind,
}

#[derive(Default)]
struct Model {
    /// Live tasks: pid and regions.
    tasks: Vec<(i32, Vec<Region>)>,
    /// Object → word at offset 8 of each page.
    objs: Vec<[u64; PAGES as usize]>,
    /// Pages pinned with `pin_user_pages`.
    pins: Vec<PagePtr>,
}

impl Model {
    fn new_obj(&mut self) -> usize {
        self.objs.push([0; PAGES as usize]);
        self.objs.len() - 1
    }
}

fn step(m: &M, md: &mut Model, op: &Op) {
    match *op {
        Op::Spawn => {
            if md.tasks.len() < 3 {
                let p = m.spawn("model").unwrap();
                md.tasks.push((p, Vec::new()));
            }
        }
        Op::Fork(t) => {
            let Some((p, regs)) = md.tasks.get(t).cloned() else {
                return;
            };
            if md.tasks.len() >= 4 {
                return;
            }
            let c = m.fork(p).unwrap();
            let regs = regs
                .into_iter()
                .map(|r| match r.kind {
                    Kind::Private => {
                        let copy = md.objs[r.obj];
                        let o = md.new_obj();
                        md.objs[o] = copy;
                        Region { obj: o, ..r }
                    }
                    _ => r,
                })
                .collect();
            md.tasks.push((c, regs));
        }
        Op::Exit(t) => {
            if t < md.tasks.len() {
                let (p, _) = md.tasks.remove(t);
                unpin_all(m, md);
                m.exit(p).unwrap();
            }
        }
        Op::Map(t, kind) => {
            let Some((p, regs)) = md.tasks.get_mut(t) else {
                return;
            };
            if regs.len() >= 3 {
                return;
            }
            let p = *p;
            let len = PAGES * PAGE;
            let addr = match kind {
                Kind::Private => m.mmap(p, 0, len, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                Kind::SharedAnon => m.mmap(p, 0, len, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0),
                Kind::Memfd => {
                    let fd = m.memfd_create(p, "model").unwrap();
                    m.ftruncate(p, fd, len).unwrap();
                    let a = m.mmap(p, 0, len, RW, MAP_SHARED, fd, 0);
                    m.close(p, fd).unwrap();
                    a
                }
            }
            .unwrap();
            let obj = md.new_obj();
            md.tasks[t].1.push(Region { addr, obj, kind });
        }
        Op::Write(t, r, pg, v) => {
            let Some((p, reg)) = region(md, t, r) else {
                return;
            };
            m.upoke(p, reg.addr + pg * PAGE + 8, 8, v).unwrap();
            md.objs[reg.obj][pg as usize] = v;
        }
        Op::Read(t, r, pg) => {
            let Some((p, reg)) = region(md, t, r) else {
                return;
            };
            let got = m.upeek(p, reg.addr + pg * PAGE + 8, 8).unwrap();
            assert_eq!(got, md.objs[reg.obj][pg as usize], "{op:?} {reg:?}");
        }
        Op::Migrate(t, r) => {
            let Some((p, reg)) = region(md, t, r) else {
                return;
            };
            let before: Vec<_> = (0..PAGES)
                .map(|i| m.follow_page(p, reg.addr + i * PAGE).unwrap())
                .collect();
            let stayed = m.move_pages(p, reg.addr, PAGES).unwrap();
            let mut pinned = 0;
            for (i, b) in before.iter().enumerate() {
                let now = m.follow_page(p, reg.addr + i as u64 * PAGE).unwrap();
                let Some(b) = b else { continue };
                if md.pins.contains(b) {
                    pinned += 1;
                    assert_eq!(now, Some(*b), "a pinned page stays");
                } else {
                    assert_ne!(now, Some(*b), "an unpinned page moves");
                }
            }
            assert_eq!(stayed, pinned);
        }
        Op::Pin(t, r, pg) => {
            let Some((p, reg)) = region(md, t, r) else {
                return;
            };
            if md.pins.len() >= 4 {
                return;
            }
            let mut out = [None];
            if m.pin_user_pages(p, reg.addr + pg * PAGE, 0, &mut out) == Ok(1) {
                md.pins.push(out[0].unwrap());
            }
        }
        Op::UnpinAll => unpin_all(m, md),
    }
}

fn unpin_all(m: &M, md: &mut Model) {
    m.unpin_user_pages(&md.pins);
    md.pins.clear();
}

fn region(md: &Model, t: usize, r: usize) -> Option<(i32, Region)> {
    let (p, regs) = md.tasks.get(t)?;
    Some((*p, regs.get(r)?.clone()))
}

fn run(arch: Arch, ops: &[Op]) {
    let m = boot(arch, 128 << 20, 2);
    let w = m.spawn("warmup").unwrap();
    m.exit(w).unwrap();
    let free0 = settle(&m);
    let mut md = Model::default();
    for op in ops {
        step(&m, &mut md, op);
    }
    // Every word of every live region reads back.
    for t in 0..md.tasks.len() {
        for r in 0..md.tasks[t].1.len() {
            for pg in 0..PAGES {
                step(&m, &mut md, &Op::Read(t, r, pg));
            }
        }
    }
    unpin_all(&m, &mut md);
    for (p, _) in md.tasks.drain(..) {
        m.exit(p).unwrap();
    }
    assert_eq!(settle(&m), free0, "no page leaked");
    let vm = proc(&m, "/proc/vmstat");
    for l in [
        "nr_inactive_anon 0",
        "nr_active_anon 0",
        "nr_shmem 0",
        "nr_anon_pages 0",
    ] {
        assert!(vm.lines().any(|x| x == l), "{l}: {vm}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn migration_keeps_every_value_x86_64(ops in proptest::collection::vec(op(), 1..60)) {
        run(Arch::X86_64, &ops);
    }
    #[test]
    fn migration_keeps_every_value_i386(ops in proptest::collection::vec(op(), 1..60)) {
        run(Arch::I386, &ops);
    }
}

#[test]
fn fork_write_migrate_read_sequence() {
    use Op::*;
    run(
        Arch::X86_64,
        &[
            Spawn,
            Map(0, Kind::Private),
            Map(0, Kind::SharedAnon),
            Map(0, Kind::Memfd),
            Write(0, 0, 1, 11),
            Write(0, 1, 2, 22),
            Write(0, 2, 3, 33),
            Fork(0),
            Migrate(0, 0),
            Migrate(1, 1),
            Migrate(1, 2),
            Write(1, 0, 1, 44),
            Write(1, 1, 2, 55),
            Pin(0, 2, 3),
            Migrate(1, 2),
            Read(0, 0, 1),
            Read(0, 1, 2),
            Read(0, 2, 3),
            UnpinAll,
            Migrate(0, 2),
            Exit(0),
            Read(0, 2, 3),
        ],
    );
}
