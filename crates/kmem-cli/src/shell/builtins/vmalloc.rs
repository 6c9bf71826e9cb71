//! The shell's vmalloc, vmap, kmap and kvmalloc functions (issue 7).
//!
//! vmalloc addresses are model addresses in the machine's vmalloc area
//! (`0xffffc90000000000…` on x86_64, above `high_memory` + 8 MiB on i386); on the hosted
//! platform they are real mappings, so `memset`, `peek` and `hexdump` work on them and the
//! guard page after each area faults.

use kmem::pgtable::PteFlags;
use kmem::vmalloc::VM_MAP;

use super::{addr_val, need_page, Builtin, Fail, Param::*};
use crate::shell::value::{PtrKind, Value};

/// The vmalloc family.
pub static VMALLOC_BUILTINS: &[Builtin] = &[
    Builtin {
        name: "vmalloc",
        proto: "void *vmalloc(unsigned long size)",
        doc: "allocates virtually contiguous memory from scattered pages",
        params: &[Uint],
        run: |c, a| Ok(addr_val(c.k, c.k.m.vmalloc(a.usize(0)?))),
    },
    Builtin {
        name: "vzalloc",
        proto: "void *vzalloc(unsigned long size)",
        doc: "vmalloc, zeroed",
        params: &[Uint],
        run: |c, a| Ok(addr_val(c.k, c.k.m.vzalloc(a.usize(0)?))),
    },
    Builtin {
        name: "vmalloc_user",
        proto: "void *vmalloc_user(unsigned long size)",
        doc: "zeroed vmalloc memory that may be mapped to user space",
        params: &[Uint],
        run: |c, a| Ok(addr_val(c.k, c.k.m.vmalloc_user(a.usize(0)?))),
    },
    Builtin {
        name: "vmalloc_32",
        proto: "void *vmalloc_32(unsigned long size)",
        doc: "vmalloc from pages below 4 GiB",
        params: &[Uint],
        run: |c, a| Ok(addr_val(c.k, c.k.m.vmalloc_32(a.usize(0)?))),
    },
    Builtin {
        name: "__vmalloc",
        proto: "void *__vmalloc(unsigned long size, gfp_t gfp)",
        doc: "vmalloc with explicit GFP flags",
        params: &[Uint, Gfp],
        run: |c, a| Ok(addr_val(c.k, c.k.m.__vmalloc(a.usize(0)?, a.gfp(1)))),
    },
    Builtin {
        name: "vfree",
        proto: "void vfree(const void *addr)",
        doc: "frees vmalloc memory (lazily unmapped); NULL is a no-op",
        params: &[Addr],
        run: |c, a| {
            c.k.m.vfree(c.k.arg_addr(a.u(0)));
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "vmap",
        proto: "void *vmap(struct page *page, ...)",
        doc: "maps the given pages (one or more) virtually contiguously, VM_MAP, PAGE_KERNEL",
        params: &[Many],
        run: |c, a| {
            let mut pages = Vec::with_capacity(a.0.len());
            for i in 0..a.0.len() {
                pages.push(need_page(c, a, i)?);
            }
            Ok(addr_val(
                c.k,
                c.k.m.vmap(&pages, VM_MAP, PteFlags::PAGE_KERNEL),
            ))
        },
    },
    Builtin {
        name: "vunmap",
        proto: "void vunmap(const void *addr)",
        doc: "removes a vmap mapping (the pages stay allocated)",
        params: &[Addr],
        run: |c, a| {
            c.k.m.vunmap(c.k.arg_addr(a.u(0)));
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "vmalloc_to_page",
        proto: "struct page *vmalloc_to_page(const void *addr)",
        doc: "the page behind a vmalloc address; NULL if unmapped",
        params: &[Addr],
        run: |c, a| {
            let p = c.k.m.vmalloc_to_page(c.k.arg_addr(a.u(0)));
            Ok(match p {
                Some(p) => Value::Ptr(c.k.page_model(p), PtrKind::Page),
                None => Value::Ptr(0, PtrKind::Page),
            })
        },
    },
    Builtin {
        name: "vmalloc_to_pfn",
        proto: "unsigned long vmalloc_to_pfn(const void *addr)",
        doc: "the page frame behind a vmalloc address; 0 if unmapped",
        params: &[Addr],
        run: |c, a| {
            let p = c.k.m.vmalloc_to_pfn(c.k.arg_addr(a.u(0)));
            Ok(Value::Int(p.map_or(0, |p| p.as_u64())))
        },
    },
    Builtin {
        name: "is_vmalloc_addr",
        proto: "bool is_vmalloc_addr(const void *addr)",
        doc: "1 if the address is in the vmalloc area",
        params: &[Addr],
        run: |c, a| {
            let v = c.k.m.is_vmalloc_addr(c.k.arg_addr(a.u(0)));
            Ok(Value::Int(u64::from(v)))
        },
    },
    Builtin {
        name: "kvmalloc",
        proto: "void *kvmalloc(size_t size, gfp_t gfp)",
        doc: "kmalloc, falling back to vmalloc for large or fragmented requests",
        params: &[Uint, Gfp],
        run: |c, a| Ok(addr_val(c.k, c.k.m.kvmalloc(a.usize(0)?, a.gfp(1)))),
    },
    Builtin {
        name: "kvzalloc",
        proto: "void *kvzalloc(size_t size, gfp_t gfp)",
        doc: "kvmalloc, zeroed",
        params: &[Uint, Gfp],
        run: |c, a| Ok(addr_val(c.k, c.k.m.kvzalloc(a.usize(0)?, a.gfp(1)))),
    },
    Builtin {
        name: "kvfree",
        proto: "void kvfree(const void *addr)",
        doc: "frees kvmalloc memory (kfree or vfree, as the address says)",
        params: &[Addr],
        run: |c, a| {
            c.k.m.kvfree(c.k.arg_addr(a.u(0)));
            Ok(Value::Void)
        },
    },
    // ---------------------------------------------------------------- RCU
    Builtin {
        name: "kfree_rcu",
        proto: "void kfree_rcu(const void *p)",
        doc: "kfree after an RCU grace period, batched (kfree_rcu_mightsleep: no rcu_head)",
        params: &[Addr],
        run: |c, a| {
            c.k.m
                .kfree_rcu_mightsleep(c.k.arg_addr(a.u(0)).as_ptr::<u8>());
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "kvfree_rcu",
        proto: "void kvfree_rcu(const void *p)",
        doc: "kvfree after an RCU grace period, batched (kvfree_rcu_mightsleep: no rcu_head)",
        params: &[Addr],
        run: |c, a| {
            c.k.m.kvfree_rcu_mightsleep(c.k.arg_addr(a.u(0)));
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "synchronize_rcu",
        proto: "void synchronize_rcu(void)",
        doc: "waits for an RCU grace period, then runs ready callbacks",
        params: &[],
        run: |c, _| {
            c.k.m.synchronize_rcu();
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "rcu_barrier",
        proto: "void rcu_barrier(void)",
        doc: "waits until every queued RCU callback has run",
        params: &[],
        run: |c, _| {
            c.k.m.rcu_barrier();
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "kvfree_rcu_barrier",
        proto: "void kvfree_rcu_barrier(void)",
        doc: "waits until everything given to kfree_rcu/kvfree_rcu has been freed",
        params: &[],
        run: |c, _| {
            c.k.m.kvfree_rcu_barrier();
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "kmap",
        proto: "void *kmap(struct page *page)",
        doc: "a kernel address for any page: lowmem directly, HighMem through the pkmap area",
        params: &[Addr],
        run: |c, a| {
            let p = need_page(c, a, 0)?;
            Ok(addr_val(c.k, c.k.m.kmap(p)))
        },
    },
    Builtin {
        name: "kunmap",
        proto: "void kunmap(struct page *page)",
        doc: "drops a kmap mapping",
        params: &[Addr],
        run: |c, a| {
            let p = need_page(c, a, 0)?;
            c.k.m.kunmap(p);
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "kmap_local_page",
        proto: "void *kmap_local_page(struct page *page)",
        doc: "a CPU-local temporary mapping (strictly nested)",
        params: &[Addr],
        run: |c, a| {
            let p = need_page(c, a, 0)?;
            Ok(addr_val(c.k, c.k.m.kmap_local_page(p)))
        },
    },
    Builtin {
        name: "kunmap_local",
        proto: "void kunmap_local(const void *addr)",
        doc: "drops the innermost kmap_local mapping",
        params: &[Addr],
        run: |c, a| {
            c.k.m.kunmap_local(c.k.arg_addr(a.u(0)));
            Ok(Value::Void)
        },
    },
];

/// `translate ADDR`: the page-table walk for a model address.
pub fn translate(c: &mut super::Ctx<'_>, addr: u64) -> Result<(), Fail> {
    match c.k.m.translate(addr) {
        Some(r) => {
            c.emit(&format!("{r}\n"));
            Ok(())
        }
        None => Err(Fail::Error(
            "the kernel page tables are not set up on this machine".into(),
        )),
    }
}
