//! kmemcheck (Linux 4.14's mm/kmemcheck.c and arch/x86/mm/kmemcheck/): the shadow states
//! an allocation, a write, a free and a copy leave, the report's format
//! (arch/x86/mm/kmemcheck/error.c), `kmemcheck=0|1|2`, `SLAB_NOTRACK`/`__GFP_NOTRACK`,
//! `/proc/sys/kernel/kmemcheck`. Accesses are checked through `kmemcheck_access`, the
//! (address, size, write) entry a trapping platform and the shell's peek/poke use.

mod common;

use common::{assert_lockdep_quiet, boot_with, M};
use kmem::arch::Arch;
use kmem::slab::common::SlabFlags;
use kmem::slab::kfence::Site;
use kmem::slab::kmemcheck::KmemcheckShadow as S;
use kmem::{GfpFlags, PAGE_SIZE};

const K: GfpFlags = GfpFlags::GFP_KERNEL;

fn machine(cmdline: &str) -> M {
    let m = boot_with(Arch::X86_64, 128 << 20, 2, cmdline, 3);
    m.platform().take_captured();
    m
}

fn take(m: &M) -> String {
    m.platform().take_captured()
}

fn reports(log: &str) -> usize {
    log.matches("WARNING: kmemcheck: Caught").count()
}

fn proc_kmemcheck(m: &M) -> Option<String> {
    let mut s = String::new();
    m.proc_read("/proc/sys/kernel/kmemcheck", &mut s).ok()?;
    Some(s)
}

/// The report's first four lines, exactly as error.c prints them.
#[test]
fn fresh_kmalloc_read_reports_in_kmemchecks_format() {
    let m = machine("kmemcheck=1");
    let p = m.kmalloc(64, K).unwrap().as_ptr();
    // Initialise bytes 0..4 and 8..12; read 32 bits at 4 (uninitialised).
    assert!(m.kmemcheck_access(p, 4, true));
    assert!(m.kmemcheck_access(p.wrapping_add(8), 4, true));
    // SAFETY: the object has 64 bytes.
    unsafe {
        p.cast::<u32>().write(0x8000_0000u32.to_be());
        p.add(8).cast::<u32>().write(0x1122_3344u32.to_be());
    }
    take(&m);
    assert!(m.kmemcheck_access(p.wrapping_add(4), 4, false));
    let log = take(&m);
    let lines: Vec<&str> = log.lines().collect();
    let model = m.to_model(p as usize) + 4;
    assert_eq!(
        lines[0],
        format!("WARNING: kmemcheck: Caught 32-bit read from uninitialized memory ({model:016x})")
    );
    // kmalloc-64 objects are 64-aligned: the 32-byte chunk starts at the object.
    let hex = lines[1];
    assert_eq!(hex.len(), 64, "{log}");
    assert!(hex.starts_with("80000000"), "{log}");
    assert_eq!(&hex[16..24], "11223344", "{log}");
    assert_eq!(
        lines[2],
        " i i i i u u u u i i i i u u u u u u u u u u u u u u u u u u u u"
    );
    // `%*c` of width 2 + 2 * 4: the caret under the fifth letter.
    assert_eq!(lines[3], "         ^");
    assert_eq!(lines[2].find('u').unwrap(), lines[3].find('^').unwrap());
    assert!(lines[4].starts_with("RIP: "), "{log}");
    assert!(log.contains("Call Trace:"), "{log}");
    assert!(log.contains("kmemcheck.rs:"), "the caller's site: {log}");
    assert_eq!(m.kmemcheck_errors(), 1);
    assert_eq!(
        m.report_count(),
        1,
        "counted for report_count's readers too"
    );
    // "Don't warn about it again": the bytes reported are initialised now.
    assert_eq!(
        m.kmemcheck_shadow_state(p.wrapping_add(4)),
        Some(S::Initialized)
    );
    assert!(m.kmemcheck_access(p.wrapping_add(4), 4, false));
    assert_eq!(reports(&take(&m)), 0);
    m.kfree(p);
    assert_lockdep_quiet(&m);
}

/// The test cache's constructor.
fn ctor7(p: *mut u8) {
    // SAFETY: the slab allocator passes a fresh object of the cache (48 bytes).
    unsafe { p.write(7) }
}

#[test]
fn kzalloc_constructor_and_written_memory_do_not_report() {
    let m = machine("kmemcheck=1");
    let z = m.kzalloc(100, K).unwrap().as_ptr();
    assert!(m.kmemcheck_access(z, 8, false));
    let c = m
        .kmem_cache_create("kmc_ctor", 48, 8, SlabFlags::NONE, Some(ctor7))
        .unwrap();
    let o = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    assert!(m.kmemcheck_access(o, 4, false));
    let z2 = m.kmem_cache_zalloc(c, K).unwrap().as_ptr();
    assert!(m.kmemcheck_access(z2, 4, false));
    let p = m.kmalloc(32, K).unwrap().as_ptr();
    assert!(m.kmemcheck_access(p, 8, true));
    assert!(m.kmemcheck_access(p, 8, false));
    // CONFIG_KMEMCHECK_PARTIAL_OK: one initialised byte makes a wider read fine.
    assert!(m.kmemcheck_access(p.wrapping_add(16), 1, true));
    assert!(m.kmemcheck_access(p.wrapping_add(13), 4, false));
    assert_eq!(reports(&take(&m)), 0);
    assert_eq!(m.kmemcheck_errors(), 0);
    // Objects freed into a constructor cache stay initialised (mm/kmemcheck.c).
    m.kmem_cache_free(c, o);
    assert_eq!(m.kmemcheck_shadow_state(o), Some(S::Initialized));
    m.kmem_cache_free(c, z2);
    m.kfree(z);
    m.kfree(p);
    m.kmem_cache_destroy(c);
}

#[test]
fn frees_mark_freed_and_new_slabs_unallocated() {
    let m = machine("kmemcheck=1");
    let c = m
        .kmem_cache_create("kmc_plain", 64, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    let o = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    assert_eq!(m.kmemcheck_shadow_state(o), Some(S::Uninitialized));
    // Some other byte of the new slab belongs to no object handed out yet.
    let page = (o as usize) & !(PAGE_SIZE - 1);
    let other = (page..page + PAGE_SIZE)
        .map(|a| a as *const u8)
        .find(|&a| m.kmemcheck_shadow_state(a) == Some(S::Unallocated))
        .expect("an unallocated byte in the slab");
    take(&m);
    m.kmemcheck_access(other, 2, false);
    let log = take(&m);
    assert!(
        log.contains("WARNING: kmemcheck: Caught 16-bit read from unallocated memory ("),
        "{log}"
    );
    m.kmem_cache_free(c, o);
    assert_eq!(m.kmemcheck_shadow_state(o), Some(S::Freed));
    m.kmemcheck_access(o, 8, false);
    let log = take(&m);
    assert!(
        log.contains("WARNING: kmemcheck: Caught 64-bit read from freed memory ("),
        "{log}"
    );
    // Bulk paths too.
    let mut objs = [core::ptr::null_mut(); 4];
    assert_eq!(m.kmem_cache_alloc_bulk(c, K, &mut objs), 4);
    for &o in &objs {
        assert_eq!(m.kmemcheck_shadow_state(o), Some(S::Uninitialized));
    }
    m.kmem_cache_free_bulk(c, &objs);
    for &o in &objs {
        assert_eq!(m.kmemcheck_shadow_state(o), Some(S::Freed));
    }
    m.kmem_cache_destroy(c);
    // The destroyed cache's pages (it was not merged) are no longer tracked.
    assert!(!m.kmemcheck_is_tracked(o));
}

#[test]
fn notrack_cache_and_gfp_notrack() {
    let m = machine("kmemcheck=1");
    let c = m
        .kmem_cache_create("kmc_notrack", 64, 8, SlabFlags::NOTRACK, None)
        .unwrap();
    let o = m.kmem_cache_alloc(c, K).unwrap().as_ptr();
    assert!(!m.kmemcheck_is_tracked(o));
    assert!(!m.kmemcheck_access(o, 4, false));
    // A tracked cache hands out an initialised object for __GFP_NOTRACK.
    let p = m.kmalloc(64, K | GfpFlags::__GFP_NOTRACK).unwrap().as_ptr();
    assert!(m.kmemcheck_is_tracked(p));
    assert_eq!(m.kmemcheck_shadow_state(p), Some(S::Initialized));
    assert!(m.kmemcheck_access(p, 4, false));
    assert_eq!(reports(&take(&m)), 0);
    // A large kmalloc block: tracked while allocated, uninitialised or zeroed.
    let big = m.kmalloc(3 * PAGE_SIZE, K).unwrap().as_ptr();
    assert_eq!(
        m.kmemcheck_shadow_state(big.wrapping_add(PAGE_SIZE)),
        Some(S::Uninitialized)
    );
    let zbig = m.kzalloc(3 * PAGE_SIZE, K).unwrap().as_ptr();
    assert_eq!(m.kmemcheck_shadow_state(zbig), Some(S::Initialized));
    m.kfree(big);
    m.kfree(zbig);
    assert!(!m.kmemcheck_is_tracked(big));
    m.kmem_cache_free(c, o);
    m.kfree(p);
    m.kmem_cache_destroy(c);
}

#[test]
fn krealloc_copies_the_shadow() {
    let m = machine("kmemcheck=1");
    let p = m.kmalloc(16, K).unwrap().as_ptr();
    m.kmemcheck_access(p, 8, true);
    let n = m.krealloc(p, 200, K).unwrap().as_ptr();
    assert_ne!(n, p);
    assert_eq!(m.kmemcheck_shadow_state(n), Some(S::Initialized));
    assert_eq!(
        m.kmemcheck_shadow_state(n.wrapping_add(7)),
        Some(S::Initialized)
    );
    assert_eq!(
        m.kmemcheck_shadow_state(n.wrapping_add(8)),
        Some(S::Uninitialized)
    );
    assert_eq!(
        m.kmemcheck_shadow_state(n.wrapping_add(100)),
        Some(S::Uninitialized)
    );
    m.kfree(n);
}

#[test]
fn one_shot_and_the_sysctl() {
    let m = machine("kmemcheck=2");
    assert_eq!(proc_kmemcheck(&m).as_deref(), Some("2\n"));
    let a = m.kmalloc(32, K).unwrap().as_ptr();
    let b = m.kmalloc(32, K).unwrap().as_ptr();
    m.kmemcheck_access(a, 4, false);
    m.kmemcheck_access(b, 4, false);
    assert_eq!(reports(&take(&m)), 1);
    // One-shot: kmemcheck turned itself off.
    assert_eq!(proc_kmemcheck(&m).as_deref(), Some("0\n"));
    // Off: allocations are initialised (kmemcheck_slab_alloc with !kmemcheck_enabled).
    let c = m.kmalloc(32, K).unwrap().as_ptr();
    assert_eq!(m.kmemcheck_shadow_state(c), Some(S::Initialized));
    // On again through /proc.
    m.proc_write("/proc/sys/kernel/kmemcheck", "1\n").unwrap();
    assert_eq!(proc_kmemcheck(&m).as_deref(), Some("1\n"));
    let d = m.kmalloc(32, K).unwrap().as_ptr();
    m.kmemcheck_access(d, 4, false);
    assert_eq!(reports(&take(&m)), 1);
    assert!(m.proc_write("/proc/sys/kernel/kmemcheck", "on").is_err());
    assert_eq!(m.proc_mode("/proc/sys/kernel/kmemcheck"), Some(0o644));
    for p in [a, b, c, d] {
        m.kfree(p);
    }
}

#[test]
fn without_the_parameter_nothing_is_tracked() {
    for cmdline in ["", "kmemcheck=0", "kmemcheck=1 slab=slob"] {
        let m = machine(cmdline);
        assert!(!m.kmemcheck_built(), "{cmdline}");
        assert_eq!(proc_kmemcheck(&m), None, "{cmdline}");
        assert_eq!(m.proc_mode("/proc/sys/kernel/kmemcheck"), None);
        let p = m.kmalloc(32, K).unwrap().as_ptr();
        assert!(!m.kmemcheck_access(p, 4, false));
        assert_eq!(m.kmemcheck_shadow_state(p), None);
        m.kfree(p);
    }
    let m = boot_with(Arch::X86_64, 128 << 20, 2, "kmemcheck=1", 3);
    assert!(m
        .platform()
        .take_captured()
        .contains("kmemcheck: Initialized\n"));
}

#[test]
fn slab_allocator_is_tracked_too() {
    let m = machine("kmemcheck=1 slab=slab");
    let p = m.kmalloc(96, K).unwrap().as_ptr();
    assert_eq!(m.kmemcheck_shadow_state(p), Some(S::Uninitialized));
    m.kmemcheck_access(p, 4, false);
    assert_eq!(reports(&take(&m)), 1);
    m.kfree(p);
    assert_eq!(m.kmemcheck_shadow_state(p), Some(S::Freed));
}

/// A real instruction (a trapping platform's [`Site::Ip`]) reports once, however many
/// objects it reads.
#[test]
fn an_instruction_reports_once() {
    let m = machine("kmemcheck=1");
    let objs: Vec<*mut u8> = (0..5).map(|_| m.kmalloc(48, K).unwrap().as_ptr()).collect();
    for &o in &objs {
        m.kmemcheck_access_at(o, 4, false, Site::Ip(0x0040_1000));
    }
    let log = take(&m);
    assert_eq!(reports(&log), 1, "{log}");
    assert!(log.contains("RIP: 0x401000"), "{log}");
    m.kmemcheck_access_at(objs[0].wrapping_add(8), 8, false, Site::Ip(0x0040_1008));
    assert_eq!(reports(&take(&m)), 1);
    for o in objs {
        m.kfree(o);
    }
}

/// A machine whose platform hides tracked pages and traps every access to them.
fn trapping_machine(cmdline: &str) -> M {
    let mut params = kmem::BootParams::simulated(Arch::X86_64, 128 << 20, 2).unwrap();
    params.cmdline = cmdline;
    let plat = kmem_hosted::HostedPlatform::new(kmem_hosted::HostedConfig::deterministic(
        params.e820.ram_end().next_multiple_of(4096),
        5,
    ))
    .unwrap();
    plat.enable_kmemcheck_traps();
    let m = kmem::Machine::boot(plat, &params).unwrap();
    m.platform().take_captured();
    m
}

/// Real loads and stores through raw pointers: the page is hidden, the access faults, the
/// platform decodes the instruction for its size, kmem checks the shadow, and the instruction
/// is single-stepped. kmem's own accesses to its slabs (free pointers, constructors) go
/// through the same traps.
#[test]
fn real_traps_catch_an_uninitialised_load() {
    let m = trapping_machine("kmemcheck=1");
    let p = m.kmalloc(64, K).unwrap().as_ptr();
    assert!(m.kmemcheck_is_tracked(p));
    // SAFETY: the object has 64 bytes; every access below is inside it.
    unsafe {
        p.cast::<u64>().write_volatile(0x1122_3344_5566_7788);
        assert_eq!(p.cast::<u64>().read_volatile(), 0x1122_3344_5566_7788);
    }
    assert_eq!(m.kmemcheck_shadow_state(p), Some(S::Initialized));
    let log = take(&m);
    assert_eq!(reports(&log), 0, "{log}");
    // SAFETY: bytes 8..12 of the same live 64-byte kmalloc object `p`, 4-aligned (kmalloc objects
    // are 8-aligned); kmemcheck traps the read but the memory is mapped and ours.
    let _ = unsafe { p.add(8).cast::<u32>().read_volatile() };
    let log = take(&m);
    let model = m.to_model(p as usize) + 8;
    assert!(
        log.contains(&format!(
            "WARNING: kmemcheck: Caught 32-bit read from uninitialized memory ({model:016x})\n"
        )),
        "{log}"
    );
    assert!(log.contains("\n i i i i i i i i u u u u u u u u"), "{log}");
    assert!(log.contains("RIP: 0x"), "{log}");
    m.kfree(p);
    // SAFETY: a use after free on purpose: the slab page stays mapped (and hidden).
    let _ = unsafe { p.add(40).read_volatile() };
    let log = take(&m);
    assert!(log.contains("Caught 8-bit read from freed memory"), "{log}");
    // Plenty of allocator work through the traps.
    let mut v = Vec::new();
    for i in 0..500 {
        let q = m.kzalloc(16 + i % 300, K).unwrap().as_ptr();
        // SAFETY: at least 16 bytes.
        unsafe { q.cast::<u64>().write_volatile(i as u64) };
        v.push(q);
    }
    for q in v {
        m.kfree(q);
    }
    let log = take(&m);
    assert_eq!(reports(&log), 0, "{log}");
    assert_lockdep_quiet(&m);
}

/// The fault path of a string move (`movs`: Linux's `kmemcheck_copy`): tracked destination
/// bytes take the source's shadow without a report; uninitialised bytes leaving tracked memory
/// for untracked memory are reported as a read of the source.
#[test]
fn string_move_copies_the_shadow() {
    let m = machine("kmemcheck=1");
    let src = m.kmalloc(64, K).unwrap().as_ptr();
    let dst = m.kzalloc(64, K).unwrap().as_ptr();
    assert!(m.kmemcheck_access(src, 4, true));
    take(&m);
    m.kmemcheck_fault_copy(dst as usize, src as usize, 8, 0x1234);
    assert_eq!(m.kmemcheck_shadow_state(dst), Some(S::Initialized));
    assert_eq!(
        m.kmemcheck_shadow_state(dst.wrapping_add(4)),
        Some(S::Uninitialized)
    );
    assert_eq!(
        m.kmemcheck_shadow_state(dst.wrapping_add(8)),
        Some(S::Initialized)
    );
    assert_eq!(reports(&take(&m)), 0);
    let outside = [0u8; 8];
    m.kmemcheck_fault_copy(outside.as_ptr() as usize, src as usize + 8, 8, 0x5678);
    let log = take(&m);
    let model = m.to_model(src as usize) + 8;
    assert!(
        log.contains(&format!(
            "WARNING: kmemcheck: Caught 64-bit read from uninitialized memory ({model:016x})"
        )),
        "{log}"
    );
    assert_eq!(m.kmemcheck_errors(), 1);
    m.kfree(src);
    m.kfree(dst);
}

/// kmemleak's scan reads every tracked object whole, uninitialised bytes too: with real
/// traps those reads are no use of the bytes and report nothing (Linux's scan skipped
/// uninitialised words with `kmemcheck_is_obj_initialized`).
#[test]
fn kmemleak_scan_under_real_traps_reports_nothing() {
    let m = trapping_machine("kmemcheck=1 kmemleak=on");
    let mut kept = Vec::new();
    for i in 0..16 {
        // Never written: uninitialised to kmemcheck.
        kept.push(m.kmalloc(64 + 32 * i, K).unwrap().as_ptr());
    }
    take(&m);
    m.kmemleak_set_min_age(0);
    m.kmemleak_scan(&[]);
    m.kmemleak_scan(&[]);
    let mut s = String::new();
    m.proc_read("/sys/kernel/debug/kmemleak", &mut s).unwrap();
    let log = take(&m);
    assert_eq!(reports(&log), 0, "{log}");
    assert_eq!(m.kmemcheck_errors(), 0);
    for p in kept {
        m.kfree(p);
    }
}

/// Fills a fresh cache of 48-byte objects through real stores (400 objects: every page of its
/// first slabs, the 16-byte tail of a 4 KiB page after 85 objects included in no object), then
/// reads `objs[0]` again and frees it. Returns the stats after the fill, after the read and
/// after the free and read, and the log.
fn fill_read_free(cmdline: &str) -> [kmem::slab::kmemcheck::KmemcheckStats; 3] {
    let m = trapping_machine(cmdline);
    let c = m
        .kmem_cache_create("kmc_fill", 48, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    let objs: Vec<*mut u8> = (0..400)
        .map(|_| m.kmem_cache_alloc(c, K).unwrap().as_ptr())
        .collect();
    for &o in &objs {
        for w in 0..6 {
            // SAFETY: 48 bytes per object, six u64 words.
            unsafe { o.cast::<u64>().add(w).write_volatile(w as u64) };
        }
    }
    let filled = m.kmemcheck_stats();
    // SAFETY: a written object.
    let v = unsafe { objs[0].cast::<u64>().add(5).read_volatile() };
    assert_eq!(v, 5);
    let read = m.kmemcheck_stats();
    assert_eq!(reports(&take(&m)), 0);
    m.kmem_cache_free(c, objs[0]);
    // SAFETY: a use after free on purpose: the slab page stays mapped.
    let _ = unsafe { objs[0].add(16).read_volatile() };
    let log = take(&m);
    assert!(log.contains("Caught 8-bit read from freed memory"), "{log}");
    let freed = m.kmemcheck_stats();
    for &o in &objs[1..] {
        m.kmem_cache_free(c, o);
    }
    m.kmem_cache_destroy(c);
    assert_lockdep_quiet(&m);
    [filled, read, freed]
}

/// `kmemcheck.unhide=1` (the default): a page whose bytes are all written (the slab's tail
/// excepted) stops trapping; a free on it hides it again, and a read of the freed bytes is
/// caught. `kmemcheck.unhide=0`: every access traps, as in Linux.
#[test]
fn real_traps_leave_an_initialised_page_present() {
    let [filled, read, freed] = fill_read_free("kmemcheck=1");
    assert!(filled.unhidden >= 1, "{filled:?}");
    assert_eq!(
        read.faults, filled.faults,
        "a read of a present page trapped"
    );
    assert!(freed.rehidden > read.rehidden, "{freed:?}");
    assert!(freed.faults > read.faults, "{freed:?}");
    assert_eq!(freed.errors, 1);

    let [filled, read, _] = fill_read_free("kmemcheck=1 kmemcheck.unhide=0");
    assert_eq!(filled.unhidden, 0, "{filled:?}");
    assert_eq!(read.faults, filled.faults + 1, "{read:?}");
}

/// `kmemcheck.unhide=2`: a page with freed bytes may stay present too, and goes back to hidden
/// when an allocation makes bytes uninitialised; its freed bytes, written unchecked meanwhile
/// (SLUB's free pointers), count as initialised then, so kmem's own reads of them are not
/// reported.
#[test]
fn unhide_2_leaves_pages_with_freed_bytes_present() {
    let m = trapping_machine("kmemcheck=1 kmemcheck.unhide=2");
    let c = m
        .kmem_cache_create("kmc_churn", 48, 8, SlabFlags::NO_MERGE, None)
        .unwrap();
    for round in 0..20u64 {
        let objs: Vec<*mut u8> = (0..100)
            .map(|_| m.kmem_cache_alloc(c, K).unwrap().as_ptr())
            .collect();
        for &o in &objs {
            for w in 0..6 {
                // SAFETY: 48 bytes per object.
                unsafe { o.cast::<u64>().add(w).write_volatile(round) };
            }
        }
        for (i, &o) in objs.iter().enumerate() {
            if i % 2 == round as usize % 2 {
                m.kmem_cache_free(c, o);
            }
        }
    }
    let st = m.kmemcheck_stats();
    assert!(st.unhidden >= 1 && st.rehidden >= 1, "{st:?}");
    let log = take(&m);
    assert_eq!(reports(&log), 0, "{log}");
    assert_lockdep_quiet(&m);
}
