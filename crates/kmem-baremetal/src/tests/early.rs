//! Tests that run before kmem boots: the C library symbols, SSE, the memory map, the boot page
//! tables and the command line parser.

// A failure carries its message inline (no heap needed); results are returned once per test,
// so the size does not matter.
#![allow(clippy::result_large_err)]

use crate::pvh::{BootInfo, Cmdline, E820_RAM};
use crate::selftest::{Test, TestResult};
use crate::{boot, check, check_eq, tests};

/// The group, over the boot information.
pub const TESTS: &[Test<BootInfo>] = tests![
    libc_memcpy_memset,
    libc_memmove_overlap,
    libc_memcmp_strlen,
    sse_float_math,
    e820_map_sane,
    identity_map_covers_ram,
    direct_map_aliases_identity,
    cmdline_parsing,
];

fn libc_memcpy_memset(_: &BootInfo) -> TestResult {
    let mut a = [0u8; 300];
    let mut b = [0u8; 300];
    for (i, x) in a.iter_mut().enumerate() {
        *x = i as u8;
    }
    // SAFETY: both arrays are 300 bytes and distinct.
    unsafe { crate::libc::memcpy(b.as_mut_ptr().add(3), a.as_ptr(), 290) };
    check_eq!(b[0..3], [0, 0, 0]);
    check!(b[3..293] == a[..290]);
    check_eq!(b[293..], [0u8; 7]);
    // SAFETY: 100 bytes inside `b`.
    unsafe { crate::libc::memset(b.as_mut_ptr().add(10), 0x1a5, 100) };
    check!(
        b[10..110].iter().all(|&x| x == 0xa5),
        "memset must use the low byte of c"
    );
    check_eq!(b[110], 107);
    Ok(())
}

fn libc_memmove_overlap(_: &BootInfo) -> TestResult {
    let mut a = [0u8; 64];
    for (i, x) in a.iter_mut().enumerate() {
        *x = i as u8;
    }
    // Forward overlap: dst above src.
    // SAFETY: [0, 40) and [8, 48) are inside `a`.
    unsafe { crate::libc::memmove(a.as_mut_ptr().add(8), a.as_ptr(), 40) };
    for (i, &x) in a[8..48].iter().enumerate() {
        check_eq!(x, i as u8);
    }
    // Backward overlap: dst below src.
    for (i, x) in a.iter_mut().enumerate() {
        *x = i as u8;
    }
    // SAFETY: [8, 48) and [0, 40) are inside `a`.
    unsafe { crate::libc::memmove(a.as_mut_ptr(), a.as_ptr().add(8), 40) };
    for (i, &x) in a[..40].iter().enumerate() {
        check_eq!(x, (i + 8) as u8);
    }
    // Zero length never touches memory.
    // SAFETY: a zero-length move is valid for any non-null pointers.
    unsafe { crate::libc::memmove(a.as_mut_ptr(), a.as_ptr().add(1), 0) };
    check_eq!(a[0], 8);
    Ok(())
}

fn libc_memcmp_strlen(_: &BootInfo) -> TestResult {
    let x = *b"kmem-baremetal\0";
    let mut y = x;
    // SAFETY: both are 15-byte arrays.
    unsafe {
        check_eq!(crate::libc::memcmp(x.as_ptr(), y.as_ptr(), 15), 0);
        y[4] = b'+';
        check!(
            crate::libc::memcmp(x.as_ptr(), y.as_ptr(), 15) > 0,
            "'-' > '+'"
        );
        check!(crate::libc::memcmp(y.as_ptr(), x.as_ptr(), 15) < 0);
        check_eq!(crate::libc::memcmp(x.as_ptr(), y.as_ptr(), 4), 0);
        check!(crate::libc::bcmp(x.as_ptr(), y.as_ptr(), 15) != 0);
        check_eq!(crate::libc::strlen(x.as_ptr()), 14);
    }
    // Slice comparison goes through bcmp/memcmp in `core`.
    check!(x[..] != y[..]);
    Ok(())
}

fn sse_float_math(_: &BootInfo) -> TestResult {
    let v = core::hint::black_box([1.5f64, 2.25, -0.75, 8.0]);
    let sum: f64 = v.iter().sum();
    check_eq!(sum, 11.0);
    let s = core::hint::black_box(3.0f32) * core::hint::black_box(0.5f32);
    check_eq!(s, 1.5);
    Ok(())
}

fn e820_map_sane(info: &BootInfo) -> TestResult {
    let map = info.e820();
    check!(!map.is_empty(), "empty memory map");
    check!(info.total_ram() >= 16 << 20, "less than 16 MiB of RAM");
    let (ks, ke) = boot::kernel_image();
    check!(
        map.iter()
            .any(|e| e.kind == E820_RAM && e.addr <= ks && ke <= e.end()),
        "the kernel image [{ks:#x}, {ke:#x}) is not inside usable RAM"
    );
    Ok(())
}

fn identity_map_covers_ram(info: &BootInfo) -> TestResult {
    check!(
        info.max_ram_end() <= boot::identity_map_end(),
        "RAM ends at {:#x}, beyond the identity map",
        info.max_ram_end()
    );
    // Touch the last page of every RAM range through the identity map.
    for e in info
        .e820()
        .iter()
        .filter(|e| e.kind == E820_RAM && e.size >= 4096)
    {
        let p = ((e.end() - 8) & !7) as *mut u64;
        // SAFETY: `p` is inside usable RAM that nothing else uses yet (kmem has not booted,
        // and the kernel image is elsewhere unless it is the image's own range, where the last
        // bytes of RAM are beyond __kernel_end); the old value is restored.
        unsafe {
            let old = p.read_volatile();
            p.write_volatile(0x5a5a_1234_8765_a5a5);
            let back = p.read_volatile();
            p.write_volatile(old);
            check_eq!(back, 0x5a5a_1234_8765_a5a5);
        }
    }
    Ok(())
}

fn direct_map_aliases_identity(info: &BootInfo) -> TestResult {
    let top = info.max_ram_end().min(boot::identity_map_end()) - 4096;
    // The first page after the kernel image: RAM that nothing uses before kmem boots.
    let low = boot::kernel_image().1.next_multiple_of(4096);
    for pa in [low, top] {
        let ident = pa as *mut u64;
        let direct = (boot::DIRECT_MAP_BASE + pa) as *mut u64;
        // SAFETY: `pa` is usable RAM that nothing uses yet (below the top of RAM, above the
        // kernel image), mapped at both addresses by the boot page tables; restored after.
        unsafe {
            let old = ident.read_volatile();
            direct.write_volatile(!pa);
            let seen = ident.read_volatile();
            ident.write_volatile(old);
            check_eq!(seen, !pa);
        }
    }
    Ok(())
}

fn cmdline_parsing(_: &BootInfo) -> TestResult {
    let c = Cmdline("quiet selftest=a,fail  loglevel=7 selftest=b");
    check!(c.has_flag("quiet"));
    check!(!c.has_flag("loglevel"));
    check!(c.has_value("selftest", "fail"));
    check!(c.has_value("selftest", "b"));
    check!(!c.has_value("selftest", "c"));
    check_eq!(c.values("loglevel").next(), Some("7"));
    Ok(())
}
