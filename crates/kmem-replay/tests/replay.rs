//! Replays of real and hand-made traces.
//!
//! `tests/data/linux-6.18-excerpt.trace.xz` is an excerpt of
//! `shared/traces/linux-6.18-git-tar-gcc.trace.xz` (a real Linux 6.18 x86_64 machine): its
//! 12-line header, lines 58013-64012 (the densest kmalloc traffic) and 1,500 later events of
//! `cc1`, 7,512 lines in all. The whole trace is replayed too when `shared/` is beside the
//! clone (or at /work/shared).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use kmem_replay::{parse_reader, EventKind, Options, Replayer};

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn small_opts() -> Options {
    Options {
        mem: 256 << 20,
        prefault: false,
        cat: vec!["/proc/slabinfo".into(), "/proc/buddyinfo".into()],
        ..Options::default()
    }
}

/// A reference model of the trace: which traced addresses are live at the end, counting
/// frees of addresses never allocated.
struct Model {
    live_objs: HashSet<u64>,
    live_pages: HashSet<u64>,
    unknown_obj_frees: u64,
    unknown_page_frees: u64,
}

fn model(trace: &kmem_replay::Trace) -> Model {
    let mut m = Model {
        live_objs: HashSet::new(),
        live_pages: HashSet::new(),
        unknown_obj_frees: 0,
        unknown_page_frees: 0,
    };
    for e in &trace.events {
        match e.kind {
            EventKind::Kmalloc | EventKind::KmemCacheAlloc => {
                if e.addr > 16 {
                    m.live_objs.insert(e.addr);
                }
            }
            EventKind::Kfree | EventKind::KmemCacheFree => {
                if e.addr > 16 && !m.live_objs.remove(&e.addr) {
                    m.unknown_obj_frees += 1;
                }
            }
            EventKind::MmPageAlloc => {
                m.live_pages.insert(e.addr);
            }
            EventKind::MmPageFree => {
                if !m.live_pages.remove(&e.addr) {
                    m.unknown_page_frees += 1;
                }
            }
        }
    }
    m
}

fn check_against_model(trace: &kmem_replay::Trace, r: &kmem_replay::ReplayReport) {
    let m = model(trace);
    let ev = |k: EventKind| r.events[k as usize];
    // Every event is accounted for exactly once.
    for k in EventKind::ALL {
        let e = ev(k);
        assert_eq!(
            e.seen,
            e.replayed + e.failed + e.unknown + e.skipped,
            "{}: {e:?}",
            k.name()
        );
        assert_eq!(e.failed, 0, "{} failures", k.name());
    }
    assert_eq!(
        ev(EventKind::Kfree).unknown + ev(EventKind::KmemCacheFree).unknown,
        m.unknown_obj_frees
    );
    assert_eq!(r.live_objects, m.live_objs.len());
    // Page blocks: the model counts the slab pages the replay leaves to kmem's SLUB as well.
    let skipped_live = ev(EventKind::MmPageAlloc).skipped - ev(EventKind::MmPageFree).skipped;
    assert_eq!(
        r.live_page_blocks as u64 + skipped_live,
        m.live_pages.len() as u64
    );
    assert_eq!(ev(EventKind::MmPageFree).unknown, m.unknown_page_frees);
    assert_eq!(r.bugs, 0, "{}", r.console);
    assert_eq!(r.warnings, 0, "{}", r.console);
}

#[test]
fn excerpt_of_a_real_trace() {
    let path = manifest().join("tests/data/linux-6.18-excerpt.trace.xz");
    let trace = kmem_replay::parse_file(&path).unwrap();
    assert_eq!(trace.lines, 7512);
    assert_eq!(trace.malformed, 0, "{:?}", trace.malformed_examples);
    assert_eq!(trace.events.len(), 7500);
    assert_eq!(trace.header_cpus, Some(2));
    let count = |k: EventKind| trace.events.iter().filter(|e| e.kind == k).count() as u64;
    assert_eq!(count(EventKind::Kmalloc), 1581);
    assert_eq!(count(EventKind::Kfree), 1783);
    assert_eq!(count(EventKind::KmemCacheAlloc), 1416);
    assert_eq!(count(EventKind::KmemCacheFree), 1015);
    assert_eq!(count(EventKind::MmPageAlloc), 1514);
    assert_eq!(count(EventKind::MmPageFree), 191);
    // Both CPUs appear.
    let cpus: HashSet<u16> = trace.events.iter().map(|e| e.cpu).collect();
    assert_eq!(cpus, HashSet::from([0, 1]));

    let mut rp = Replayer::boot(&small_opts()).unwrap();
    let mut calls = 0;
    rp.replay(&trace, &mut |done, total| {
        assert!(done <= total);
        calls += 1;
    });
    assert!(calls >= 2);
    let r = rp.report(&trace);
    check_against_model(&trace, &r);
    // kmem's size classes are Linux's.
    assert_eq!(r.kmalloc_compared, 1581);
    assert_eq!(r.kmalloc_agree, 1581, "{:?}", r.kmalloc_disagreements);
    assert_eq!(
        r.cache_size_agree, r.cache_size_compared,
        "{:?}",
        r.cache_size_disagreements
    );
    assert_eq!(r.migratetype_agree, r.migratetype_compared);
    assert!(r.peak_pages_in_use >= r.pages_in_use);
    assert!(r.slabs > 0);

    let mut text = String::new();
    r.write_text(&mut text).unwrap();
    assert!(
        text.contains("kmalloc size-class agreement: 100.00%"),
        "{text}"
    );
    assert!(text.contains(&format!("events replayed: {}", r.replayed())));
    assert!(text.contains("==> /proc/slabinfo <=="));
    assert!(text.contains("slabinfo - version: 2.1"));
    assert!(text.contains("==> /proc/buddyinfo <=="));
    assert!(text.contains("Node 0, zone   Normal") || text.contains("Node 0, zone    DMA32"));
    let mut json = String::new();
    r.write_json(&mut json).unwrap();
    assert!(json.starts_with('{') && json.trim_end().ends_with('}'));
    assert!(json.contains("\"kmalloc_size_class_agreement\":100.0000"));

    // Every cache named in the trace was found or created (merged ones as aliases).
    let allocated_from: HashSet<u32> = trace
        .events
        .iter()
        .filter(|e| e.kind == EventKind::KmemCacheAlloc)
        .map(|e| e.name)
        .collect();
    assert_eq!(r.caches_created as usize, allocated_from.len());
    assert_eq!(r.cache_create_failures, 0);
    let slabinfo = &r.proc_files[0].1;
    assert!(slabinfo.contains("kmalloc-64"));
}

#[test]
fn hand_made_trace_edge_cases() {
    // A large kmalloc (its pages appear as mm_page_alloc first, as in Linux's
    // ___kmalloc_large_node), kmalloc(0), a free of something allocated before the trace, an
    // address reused without a traced free, a malformed line, an unknown event, a slab page,
    // and a page alloc/free pair, on CPUs 0, 1 and 3.
    let text = "\
# tracer: nop
# entries-in-buffer/entries-written: 12/12   #P:4
 a-1 [000] ..... 1.0: mm_page_alloc: page=ffffea0000400000 pfn=0x10000 order=2 migratetype=0 gfp_flags=GFP_KERNEL|__GFP_COMP
 a-1 [000] ..... 1.0: kmalloc: call_site=f+0x1/0x2 ptr=ffff888010000000 bytes_req=16000 bytes_alloc=16384 gfp_flags=GFP_KERNEL node=-1 accounted=false
 a-1 [001] ..... 1.1: kmalloc: call_site=f+0x1/0x2 ptr=0000000000000010 bytes_req=0 bytes_alloc=0 gfp_flags=GFP_KERNEL node=-1 accounted=false
 a-1 [001] ..... 1.2: kfree: call_site=f+0x1/0x2 ptr=ffff888077777700
 a-1 [003] ..... 1.3: kmalloc: call_site=f+0x1/0x2 ptr=ffff888020000040 bytes_req=33 bytes_alloc=64 gfp_flags=GFP_KERNEL_ACCOUNT node=-1 accounted=true
 a-1 [003] ..... 1.4: kmalloc: call_site=f+0x1/0x2 ptr=ffff888020000040 bytes_req=100 bytes_alloc=128 gfp_flags=GFP_ATOMIC node=-1 accounted=false
 a-1 [000] ..... 1.5: mm_page_alloc: page=ffffea0000800000 pfn=0x20000 order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP
 a-1 [000] ..... 1.6: mm_page_pcpu_drain: page=ffffea0000800000 pfn=0x20000 order=0 migratetype=1
 this is not an event
 a-1 [001] ..... 1.7: mm_page_free: page=ffffea0000800000 pfn=0x20000 order=0
 a-1 [001] ..... 1.8: kfree: call_site=f+0x1/0x2 ptr=ffff888010000000
 a-1 [001] ..... 1.9: mm_page_free: page=ffffea0000400000 pfn=0x10000 order=2
 a-1 [001] ..... 2.0: kmem_cache_alloc: call_site=g+0x1/0x2 ptr=ffff888030000100 name=filp bytes_req=184 bytes_alloc=192 gfp_flags=GFP_KERNEL node=-1 accounted=true
 a-1 [000] ..... 2.1: kmem_cache_free: call_site=g+0x1/0x2 ptr=ffff888030000100 name=filp
";
    let trace = parse_reader(text.as_bytes()).unwrap();
    assert_eq!(trace.malformed, 1);
    assert_eq!(
        trace.other_events,
        vec![("mm_page_pcpu_drain".to_string(), 1)]
    );
    assert_eq!(trace.header_cpus, Some(4));
    let opts = Options {
        cpus: 4,
        ..small_opts()
    };
    let mut rp = Replayer::boot(&opts).unwrap();
    rp.replay(&trace, &mut |_, _| {});
    let r = rp.report(&trace);
    let ev = |k: EventKind| r.events[k as usize];
    assert_eq!(r.large_kmalloc, 1);
    assert_eq!(r.kmalloc_compared, 4);
    assert_eq!(r.kmalloc_agree, 4, "{:?}", r.kmalloc_disagreements);
    // The large kmalloc's pages are left to kmem's kmalloc, and their free too.
    assert_eq!(ev(EventKind::MmPageAlloc).skipped, 1);
    assert_eq!(ev(EventKind::MmPageFree).skipped, 1);
    assert_eq!(ev(EventKind::MmPageAlloc).replayed, 1);
    assert_eq!(ev(EventKind::MmPageFree).replayed, 1);
    assert_eq!(ev(EventKind::Kfree).unknown, 1);
    assert_eq!(ev(EventKind::Kfree).replayed, 1);
    assert_eq!(r.implicit_frees, 1);
    assert_eq!(r.live_objects, 1);
    assert_eq!(r.cache_size_agree, 1);
    assert_eq!(r.migratetype_agree, 1);
    check_against_model(&trace, &r);
    // Everything but the one object still live went back.
    let pages_before: isize = rp
        .machine()
        .zones()
        .map(|z| z.managed_pages() as isize)
        .sum();
    assert!(pages_before > 0);
}

#[test]
fn replay_on_i386() {
    let path = manifest().join("tests/data/linux-6.18-excerpt.trace.xz");
    let trace = kmem_replay::parse_file(&path).unwrap();
    let opts = Options {
        arch: kmem::arch::Arch::I386,
        ..small_opts()
    };
    let mut rp = Replayer::boot(&opts).unwrap();
    rp.replay(&trace, &mut |_, _| {});
    let r = rp.report(&trace);
    // Size classes do not depend on the architecture.
    assert_eq!(r.kmalloc_agree, r.kmalloc_compared);
    assert_eq!(r.bugs, 0, "{}", r.console);
}

/// The whole trace of `shared/traces`: beside the clone (`../shared`, a symlink in CI) or at
/// /work/shared. It is skipped only where no `shared/` exists at all (a plain checkout); where
/// `shared/` exists, or `KMEM_CI` is set (`.ci/run`), a missing trace fails the test.
#[test]
fn full_trace_when_present() {
    const TRACE: &str = "traces/linux-6.18-git-tar-gcc.trace.xz";
    let shared = [
        manifest().join("../../../shared"),
        PathBuf::from("/work/shared"),
    ];
    let Some(path) = shared.iter().map(|d| d.join(TRACE)).find(|p| p.exists()) else {
        let required = std::env::var_os("KMEM_CI").is_some() || shared.iter().any(|d| d.is_dir());
        assert!(
            !required,
            "{TRACE} not found in {shared:?}: the full-trace replay cannot run"
        );
        eprintln!("note: no shared/ beside the clone; full-trace replay skipped");
        return;
    };
    let trace = kmem_replay::parse_file(&path).unwrap();
    assert_eq!(trace.malformed, 0, "{:?}", trace.malformed_examples);
    assert_eq!(trace.events.len(), 339_912);
    let opts = Options {
        mem: 1 << 30,
        prefault: false,
        ..Options::default()
    };
    let mut rp = Replayer::boot(&opts).unwrap();
    rp.replay(&trace, &mut |_, _| {});
    let r = rp.report(&trace);
    check_against_model(&trace, &r);
    // Every kmalloc size class and every cache object size agrees with Linux 6.18's.
    assert_eq!(
        r.kmalloc_agree,
        r.kmalloc_compared,
        "agreement {:.2}%: {:?}",
        r.kmalloc_agreement(),
        r.kmalloc_disagreements
    );
    assert!(r.kmalloc_compared > 10_000, "{}", r.kmalloc_compared);
    assert_eq!(
        r.cache_size_agree, r.cache_size_compared,
        "{:?}",
        r.cache_size_disagreements
    );
    let by_kind: HashMap<&str, u64> = EventKind::ALL
        .iter()
        .map(|k| (k.name(), r.events[*k as usize].seen))
        .collect();
    assert_eq!(by_kind["kmalloc"], 10_535);
    assert_eq!(by_kind["mm_page_alloc"], 68_597);
}

/// Both traces (the excerpt and the full one, when present) on every slab allocator that
/// boots: the model's live set, no BUG, no warning, and the comparison line.
#[test]
fn traces_on_each_slab_allocator() {
    let mut paths = vec![manifest().join("tests/data/linux-6.18-excerpt.trace.xz")];
    let full = PathBuf::from("/work/shared/traces/linux-6.18-git-tar-gcc.trace.xz");
    if full.exists() {
        paths.push(full);
    }
    for path in &paths {
        let trace = kmem_replay::parse_file(path).unwrap();
        for slab in ["slub", "slab", "slob"] {
            let opts = Options {
                mem: 1 << 30,
                prefault: false,
                cmdline: format!("slab={slab}"),
                cat: vec!["/proc/slabinfo".into()],
                ..Options::default()
            };
            let mut rp = Replayer::boot(&opts).unwrap();
            rp.replay(&trace, &mut |_, _| {});
            let r = rp.report(&trace);
            check_against_model(&trace, &r);
            assert_eq!(r.bugs, 0, "{slab}: {}", r.console);
            assert_eq!(r.slab_allocator, slab);
            let (n, m, _) = r.slab_overhead();
            assert!(n > 0 && m > 0 && n >= m, "{slab}: {n} KiB for {m} KiB");
            let mut text = String::new();
            r.write_text(&mut text).unwrap();
            assert!(
                text.contains(&format!(
                    "slab allocator: {slab}, peak slab memory: {n} KiB for {m} KiB requested (overhead "
                )),
                "{text}"
            );
            assert!(text.contains("time per event: "));
            if slab == "slob" {
                // SLOB has no /proc/slabinfo.
                assert!(
                    text.contains("kmem: cat: /proc/slabinfo: No such file or directory"),
                    "{text}"
                );
            }
        }
    }
}
