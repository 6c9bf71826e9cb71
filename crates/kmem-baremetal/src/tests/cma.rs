//! CMA on the real machine (run when the kernel is booted with `cma=`; CI adds `cma=16M` to
//! the 128 MiB `kmemleak=on` run): the area reserved at boot (mm/cma.c), `cma_alloc`/`cma_release` and
//! their counters (/sys/kernel/mm/cma, meminfo's CmaFree), and `dma_alloc_coherent` serving a
//! device from the area (kernel/dma/contiguous.c), its memory written through the direct map
//! of the real page tables.

// A failure carries its message inline; results are returned once per test.
#![allow(clippy::result_large_err)]

extern crate alloc;

use alloc::string::String;

use kmem::page_alloc::cma::{Cma, CMA_DEFAULT_NAME};
use kmem::{GfpFlags, PAGE_SIZE};

use super::{settle, KernelCtx};
use crate::mm::Kmem;
use crate::selftest::{Failure, Test, TestResult};
use crate::{check, check_eq, tests};

/// The group.
pub const TESTS: &[Test<KernelCtx>] = tests![
    cma_area_reserved_at_boot,
    cma_alloc_release_counters,
    cma_dma_alloc_coherent_from_the_area,
];

/// A /proc, /sys or debugfs file of the machine.
fn file(mm: &Kmem, path: &str) -> String {
    let mut s = String::new();
    let _ = mm.proc_read(path, &mut s);
    s
}

/// A number in a sysfs file of the default area.
fn sysfs(mm: &Kmem, name: &str) -> u64 {
    let path = alloc::format!("/sys/kernel/mm/cma/{CMA_DEFAULT_NAME}/{name}");
    file(mm, &path).trim().parse().unwrap_or(u64::MAX)
}

/// A meminfo field in kB.
fn meminfo_kb(mm: &Kmem, label: &str) -> u64 {
    let info = file(mm, "/proc/meminfo");
    info.lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(u64::MAX)
}

/// The `cma=` size in pages, from the command line (`cma=16M`).
fn cma_pages(ctx: &KernelCtx) -> Option<u64> {
    let v = crate::pvh::Cmdline(ctx.info.cmdline())
        .values("cma")
        .next()?;
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit())?);
    let shift = match unit {
        "M" => 20,
        "G" => 30,
        _ => return None,
    };
    Some((num.parse::<u64>().ok()? << shift) / PAGE_SIZE as u64)
}

fn fail(what: &str) -> Failure {
    Failure::new(format_args!("{what}"))
}

fn area(mm: &Kmem) -> Result<Cma, Failure> {
    mm.cma_find(CMA_DEFAULT_NAME)
        .ok_or_else(|| fail("no default CMA area"))
}

fn cma_area_reserved_at_boot(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let Some(pages) = cma_pages(ctx) else {
        return Ok(()); // a cma= form this test does not read (named areas)
    };
    let c = area(mm)?;
    let info = mm.cma_info(c).expect("the area exists");
    check_eq!(info.count as u64, pages);
    // Pageblock-aligned (cma_init_reserved_mem), and RAM of this machine.
    check_eq!(info.base_pfn.as_u64() % 512, 0);
    check_eq!(meminfo_kb(mm, "CmaTotal:"), pages * 4);
    check_eq!(sysfs(mm, "total_pages"), pages);
    let base = file(
        mm,
        &alloc::format!("/sys/kernel/debug/cma/{CMA_DEFAULT_NAME}/base_pfn"),
    );
    check_eq!(
        base.trim().parse::<u64>().ok(),
        Some(info.base_pfn.as_u64())
    );
    Ok(())
}

fn cma_alloc_release_counters(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let c = area(mm)?;
    let free0 = settle(mm);
    let (ok0, rel0) = (
        sysfs(mm, "alloc_pages_success"),
        sysfs(mm, "release_pages_success"),
    );
    let avail0 = sysfs(mm, "available_pages");
    let fail0 = sysfs(mm, "alloc_pages_fail");
    // 64 pages aligned to 16: contiguous, from the area, each page really writable.
    let count = 64usize;
    let page = mm
        .cma_alloc(c, count, 4, false)
        .ok_or_else(|| fail("cma_alloc(64) failed"))?;
    let info = mm.cma_info(c).expect("the area exists");
    let pfn = mm.page_to_pfn(page).as_u64();
    let base = info.base_pfn.as_u64();
    check!(
        (base..base + info.count as u64 - count as u64 + 1).contains(&pfn),
        "pfn {pfn:#x} outside the area at {base:#x}"
    );
    check_eq!(pfn % 16, 0);
    let va = mm
        .page_address(page)
        .ok_or_else(|| fail("CMA pages in the direct map"))?;
    // SAFETY: `count` pages just allocated to this test, mapped in the direct map.
    unsafe {
        let p = va.as_ptr::<u64>();
        for i in 0..count * PAGE_SIZE / 8 {
            p.add(i).write_volatile(i as u64 ^ 0x5a5a);
        }
        for i in 0..count * PAGE_SIZE / 8 {
            check_eq!(p.add(i).read_volatile(), i as u64 ^ 0x5a5a);
        }
    }
    check_eq!(sysfs(mm, "alloc_pages_success") - ok0, count as u64);
    check_eq!(avail0 - sysfs(mm, "available_pages"), count as u64);
    check_eq!(info.used as u64, count as u64);
    // A request larger than the area fails, counted, with Linux's line.
    check!(mm.cma_alloc(c, info.count + 1, 0, true).is_none());
    check_eq!(
        sysfs(mm, "alloc_pages_fail") - fail0,
        (info.count + 1) as u64
    );
    // A page of another range is refused by cma_release.
    check!(!mm.cma_release(c, page, info.count + 1));
    check!(mm.cma_release(c, page, count));
    check_eq!(sysfs(mm, "release_pages_success") - rel0, count as u64);
    check_eq!(sysfs(mm, "available_pages"), avail0);
    check_eq!(settle(mm), free0);
    Ok(())
}

fn cma_dma_alloc_coherent_from_the_area(ctx: &KernelCtx) -> TestResult {
    let mm = ctx.mm;
    let c = area(mm)?;
    let info = mm.cma_info(c).expect("the area exists");
    let (base, end) = (
        info.base_pfn.as_u64(),
        info.base_pfn.as_u64() + info.count as u64,
    );
    let dev = mm
        .device_create("camera0", "platform")
        .map_err(|e| Failure::new(format_args!("device_create: {e:?}")))?;
    let free0 = settle(mm);
    let ok0 = sysfs(mm, "alloc_pages_success");
    let rel0 = sysfs(mm, "release_pages_success");
    // More than a page, a sleeping caller, no cma_map: the default area (dma_alloc_contiguous).
    let size = 16 * PAGE_SIZE;
    let (va, dma) = mm
        .dma_alloc_coherent(dev, size, GfpFlags::GFP_KERNEL)
        .map_err(|e| Failure::new(format_args!("dma_alloc_coherent: {e:?}")))?;
    let pfn = dma.as_u64() >> 12;
    check!(
        dma.as_u64() + size as u64 <= 1 << 32,
        "below the 32-bit coherent mask"
    );
    if end << 12 <= 1 << 32 {
        check!(
            (base..end).contains(&pfn),
            "DMA buffer at pfn {pfn:#x}, area [{base:#x}, {end:#x})"
        );
        check_eq!(sysfs(mm, "alloc_pages_success") - ok0, 16);
    } else {
        // An area above 4 GiB (mm/cma.c puts it there when memory extends beyond): its
        // pages fail the coherent mask, are released, and DMA32 pages serve the device.
        check!(!(base..end).contains(&pfn));
        check_eq!(sysfs(mm, "release_pages_success") - rel0, 16);
    }
    check_eq!(mm.virt_to_phys(va), Some(dma));
    // SAFETY: the buffer is ours, `size` bytes in the direct map.
    unsafe {
        let p = va.as_ptr::<u8>();
        check!((0..size).all(|i| p.add(i).read_volatile() == 0), "zeroed");
        p.write_bytes(0xa5, size);
        check_eq!(p.add(size - 1).read_volatile(), 0xa5);
    }
    // One page: not from CMA (dma_alloc_contiguous leaves single pages to the allocator).
    let (va1, dma1) = mm
        .dma_alloc_coherent(dev, 100, GfpFlags::GFP_KERNEL)
        .map_err(|e| Failure::new(format_args!("dma_alloc_coherent(100): {e:?}")))?;
    check!(!(base..end).contains(&(dma1.as_u64() >> 12)));
    check!(mm.dma_free_coherent(dev, 100, va1).is_ok());
    check!(mm.dma_free_coherent(dev, size, va).is_ok());
    check_eq!(mm.cma_info(c).map(|i| i.used), Some(0));
    check_eq!(settle(mm), free0);
    check!(mm.device_unregister(dev).is_ok());
    Ok(())
}
