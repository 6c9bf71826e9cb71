//! vmalloc, vmap, kvmalloc, page tables and kmap on hosted machines. Includes scenarios of
//! lib/test_vmalloc.c, written anew.

mod common;

use common::{boot, proc, M};
use kmem::arch::Arch;

use kmem::VirtAddr;

fn x86() -> M {
    boot(Arch::X86_64, 256 << 20, 2)
}

fn fill(v: VirtAddr, len: usize, b: u8) {
    // SAFETY: the tests only fill memory they just allocated with at least `len` bytes.
    unsafe { core::ptr::write_bytes(v.as_ptr::<u8>(), b, len) };
}

fn read(v: VirtAddr, off: usize) -> u8 {
    // SAFETY: the tests only read inside their allocations.
    unsafe { v.as_ptr::<u8>().add(off).read_volatile() }
}

#[test]
fn vmalloc_40000_done_when() {
    let m = x86();
    let v = m.vmalloc(40000).unwrap();
    fill(v, 40000, 0x5a);
    assert_eq!(read(v, 39999), 0x5a);
    assert!(m.is_vmalloc_addr(v));
    let model = m.kva_to_model(v);
    assert_eq!(model, 0xffff_c900_0000_0000, "lowest address first");
    let t = m.translate(model + 4096 * 3 + 5).unwrap();
    let r = t.walk.result.unwrap();
    assert_eq!(t.walk.steps().len(), 4);
    assert_eq!(t.area, "vmalloc");
    // The walk's physical page holds what was written through the vmalloc pointer.
    // SAFETY: the page is allocated and mapped.
    let b = unsafe { m.phys_to_real(r.phys).read() };
    assert_eq!(b, 0x5a);
    assert_eq!(m.vmalloc_to_pfn(v + 3 * 4096).unwrap(), r.phys.pfn());
    let info = proc(&m, "/proc/vmallocinfo");
    let line = info
        .lines()
        .find(|l| l.contains("pages=10 vmalloc"))
        .unwrap();
    assert!(
        line.starts_with("0xffffc90000000000-0xffffc9000000b000   45056 "),
        "{line}"
    );
    assert!(line.ends_with(" pages=10 vmalloc N0=10"), "{line}");
    // The guard page is not mapped, in the tables and in the process.
    assert!(m.translate(model + 40960).unwrap().walk.result.is_none());
    assert!(kmem_hosted::probe_read((v + 40960).as_ptr()).is_err());
    assert!(kmem_hosted::probe_read((v + 40959).as_ptr()).is_ok());
    m.vfree(v);
    m.check_vmalloc().unwrap();
    let info = proc(&m, "/proc/vmallocinfo");
    assert!(info.contains("   45056 unpurged vm_area"), "{info}");
    assert!(kmem_hosted::probe_read(v.as_ptr()).is_err());
    assert!(m.purge_vmap_area_lazy());
    assert_eq!(proc(&m, "/proc/vmallocinfo"), "");
    assert_eq!(m.bug_count() + m.warn_count(), 0);
}
