//! The page allocator's and the memory model's functions.

use kmem::{Order, Pfn, PhysAddr, VirtAddr};

use super::{addr_val, need_page, null, Args, Builtin, Ctx, Fail, Param::*};
use crate::kernel::Kernel;
use crate::shell::value::{PtrKind, Value};

/// The page allocator's and the memory model's functions.
pub static PAGE_BUILTINS: &[Builtin] = &[
    // ---------------------------------------------------------------- page allocator
    Builtin {
        name: "alloc_pages",
        proto: "struct page *alloc_pages(gfp_t gfp, unsigned int order)",
        doc: "allocates 2^order contiguous pages; NULL on failure",
        params: &[Gfp, Uint],
        run: |c, a| {
            let Some(order) = c.k.m.check_order(order_arg(a, 1), a.gfp(0)) else {
                return Ok(null(PtrKind::Page));
            };
            Ok(page_val(c.k, c.k.m.alloc_pages(a.gfp(0), order)))
        },
    },
    Builtin {
        name: "alloc_pages_node",
        proto: "struct page *alloc_pages_node(int nid, gfp_t gfp, unsigned int order)",
        doc: "allocates 2^order pages, preferably on node nid (-1: this CPU's node; \
              __GFP_THISNODE: only there)",
        params: &[Uint, Gfp, Uint],
        run: |c, a| {
            let Some(order) = c.k.m.check_order(order_arg(a, 2), a.gfp(1)) else {
                return Ok(null(PtrKind::Page));
            };
            // The shell's integers are 64-bit: -1 arrives as its two's complement.
            let nid = i32::try_from(a.u(0) as i64).unwrap_or(i32::MAX);
            Ok(page_val(c.k, c.k.m.alloc_pages_node(nid, a.gfp(1), order)))
        },
    },
    Builtin {
        name: "page_to_nid",
        proto: "int page_to_nid(struct page *page)",
        doc: "the NUMA node of a page",
        params: &[Addr],
        run: |c, a| {
            let page = need_page(c, a, 0)?;
            Ok(Value::Int(c.k.m.page_to_nid(page) as u64))
        },
    },
    Builtin {
        name: "numa_node_id",
        proto: "int numa_node_id(void)",
        doc: "the NUMA node of the current CPU",
        params: &[],
        run: |c, _| Ok(Value::Int(c.k.m.numa_node_id() as u64)),
    },
    Builtin {
        name: "alloc_page",
        proto: "struct page *alloc_page(gfp_t gfp)",
        doc: "allocates one page",
        params: &[Gfp],
        run: |c, a| Ok(page_val(c.k, c.k.m.alloc_page(a.gfp(0)))),
    },
    Builtin {
        name: "__free_pages",
        proto: "void __free_pages(struct page *page, unsigned int order)",
        doc: "frees a block from alloc_pages (order must match)",
        params: &[Addr, Uint],
        run: |c, a| {
            if let (Some(page), Some(order)) =
                (page_arg(c, a, 0, "__free_pages")?, free_order(c, a, 1))
            {
                c.k.m.__free_pages(page, order);
            }
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "__free_page",
        proto: "void __free_page(struct page *page)",
        doc: "frees one page from alloc_page",
        params: &[Addr],
        run: |c, a| {
            if let Some(page) = page_arg(c, a, 0, "__free_page")? {
                c.k.m.__free_page(page);
            }
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "__get_free_pages",
        proto: "unsigned long __get_free_pages(gfp_t gfp, unsigned int order)",
        doc: "allocates 2^order pages and returns their address",
        params: &[Gfp, Uint],
        run: |c, a| {
            let Some(order) = c.k.m.check_order(order_arg(a, 1), a.gfp(0)) else {
                return Ok(null(PtrKind::Void));
            };
            Ok(addr_val(c.k, c.k.m.__get_free_pages(a.gfp(0), order)))
        },
    },
    Builtin {
        name: "__get_free_page",
        proto: "unsigned long __get_free_page(gfp_t gfp)",
        doc: "allocates one page and returns its address",
        params: &[Gfp],
        run: |c, a| Ok(addr_val(c.k, c.k.m.__get_free_page(a.gfp(0)))),
    },
    Builtin {
        name: "get_zeroed_page",
        proto: "unsigned long get_zeroed_page(gfp_t gfp)",
        doc: "allocates one zeroed page and returns its address",
        params: &[Gfp],
        run: |c, a| Ok(addr_val(c.k, c.k.m.get_zeroed_page(a.gfp(0)))),
    },
    Builtin {
        name: "free_pages",
        proto: "void free_pages(unsigned long addr, unsigned int order)",
        doc: "frees pages by address (a struct page pointer is accepted too); NULL is a no-op",
        params: &[Addr, Uint],
        run: |c, a| {
            let Some(order) = free_order(c, a, 1) else {
                return Ok(Value::Void);
            };
            // The shell's convenience: a struct page pointer from alloc_pages is freed as
            // __free_pages would.
            match c.k.page(a.u(0)) {
                Some(page) => c.k.m.__free_pages(page, order),
                None => c.k.m.free_pages(c.k.arg_addr(a.u(0)), order),
            }
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "free_page",
        proto: "void free_page(unsigned long addr)",
        doc: "frees one page by address",
        params: &[Addr],
        run: |c, a| {
            match c.k.page(a.u(0)) {
                Some(page) => c.k.m.__free_page(page),
                None => c.k.m.free_page(c.k.arg_addr(a.u(0))),
            }
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "alloc_pages_exact",
        proto: "void *alloc_pages_exact(size_t size, gfp_t gfp)",
        doc: "allocates size bytes of whole pages, giving back the unused tail",
        params: &[Uint, Gfp],
        run: |c, a| {
            Ok(addr_val(
                c.k,
                c.k.m.alloc_pages_exact(a.usize(0)?, a.gfp(1)),
            ))
        },
    },
    Builtin {
        name: "free_pages_exact",
        proto: "void free_pages_exact(void *virt, size_t size)",
        doc: "frees what alloc_pages_exact returned",
        params: &[Addr, Uint],
        run: |c, a| {
            c.k.m.free_pages_exact(c.k.arg_addr(a.u(0)), a.usize(1)?);
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "split_page",
        proto: "void split_page(struct page *page, unsigned int order)",
        doc: "turns a non-compound block into 2^order single pages",
        params: &[Addr, Uint],
        run: |c, a| {
            let page = need_page(c, a, 0)?;
            if let Some(order) = free_order(c, a, 1) {
                c.k.m.split_page(page, order);
            }
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "drain_local_pages",
        proto: "void drain_local_pages(void)",
        doc: "returns this CPU's per-CPU page lists to the buddy free lists",
        params: &[],
        run: |c, _| {
            c.k.m.drain_local_pages();
            Ok(Value::Void)
        },
    },
    // ---------------------------------------------------------------- memory model
    Builtin {
        name: "page_address",
        proto: "void *page_address(struct page *page)",
        doc: "the direct-map address of a page; NULL for a HighMem page",
        params: &[Addr],
        run: |c, a| {
            let page = need_page(c, a, 0)?;
            Ok(addr_val(c.k, c.k.m.page_address(page)))
        },
    },
    Builtin {
        name: "virt_to_page",
        proto: "struct page *virt_to_page(void *addr)",
        doc: "the struct page of a direct-map address; NULL outside the direct map",
        params: &[Addr],
        run: |c, a| {
            let page =
                c.k.real(a.u(0))
                    .and_then(|r| c.k.m.virt_to_page(VirtAddr::new(r)));
            Ok(page_val(c.k, page))
        },
    },
    Builtin {
        name: "page_to_pfn",
        proto: "unsigned long page_to_pfn(struct page *page)",
        doc: "the page frame number of a page",
        params: &[Addr],
        run: |c, a| {
            let page = need_page(c, a, 0)?;
            Ok(Value::Int(c.k.m.page_to_pfn(page).as_u64()))
        },
    },
    Builtin {
        name: "pfn_to_page",
        proto: "struct page *pfn_to_page(unsigned long pfn)",
        doc: "the struct page of a page frame number; NULL beyond max_pfn",
        params: &[Uint],
        // A number too wide for a PFN (`Pfn::new` would panic) has no page either.
        run: |c, a| {
            let page = Pfn::try_new(a.u(0))
                .ok()
                .and_then(|pfn| c.k.m.pfn_to_page(pfn));
            Ok(page_val(c.k, page))
        },
    },
    Builtin {
        name: "virt_to_phys",
        proto: "phys_addr_t virt_to_phys(void *addr)",
        doc: "the physical address of a direct-map address (__pa)",
        params: &[Addr],
        run: |c, a| {
            let pa =
                c.k.real(a.u(0))
                    .and_then(|r| c.k.m.virt_to_phys(VirtAddr::new(r)));
            match pa {
                Some(pa) => Ok(Value::Ptr(pa.as_u64(), PtrKind::Void)),
                None => Err(Fail::Error(format!(
                    "{:#x} is not in the direct map",
                    a.u(0)
                ))),
            }
        },
    },
    Builtin {
        name: "phys_to_virt",
        proto: "void *phys_to_virt(phys_addr_t addr)",
        doc: "the direct-map address of a physical address (__va); NULL for HighMem",
        params: &[Addr],
        run: |c, a| {
            let va = PhysAddr::try_new(a.u(0))
                .ok()
                .and_then(|pa| c.k.m.phys_to_virt(pa));
            Ok(addr_val(c.k, va))
        },
    },
    Builtin {
        name: "page_ref_count",
        proto: "int page_ref_count(struct page *page)",
        doc: "the page's reference count",
        params: &[Addr],
        run: |c, a| {
            let page = need_page(c, a, 0)?;
            let r = c.k.m.page_ref(page).map_or(0, |r| r.refcount());
            Ok(Value::Int(i64::from(r) as u64))
        },
    },
];

fn page_val(k: &Kernel, p: Option<kmem::PagePtr>) -> Value {
    match p {
        Some(p) => Value::Ptr(k.page_model(p), PtrKind::Page),
        None => null(PtrKind::Page),
    }
}

/// An order argument as the API's `unsigned int` (larger values become `u32::MAX`, which
/// every check rejects).
fn order_arg(a: &Args, i: usize) -> u32 {
    u32::try_from(a.u(i)).unwrap_or(u32::MAX)
}

/// An order for a free function: above MAX_PAGE_ORDER it is reported as a WARNING (as
/// `VM_BUG_ON`/`WARN_ON` would catch it in Linux) and the free is not done.
fn free_order(c: &mut Ctx<'_>, a: &Args, i: usize) -> Option<Order> {
    let raw = order_arg(a, i);
    match Order::try_new(raw) {
        Ok(o) => Some(o),
        Err(_) => {
            c.k.m.warn(format_args!(
                "order {raw} > MAX_PAGE_ORDER ({})",
                kmem::addr::MAX_PAGE_ORDER
            ));
            None
        }
    }
}

/// A `struct page *` argument of a free function: NULL oopses as in Linux; an address that
/// is no `struct page` is reported by the kernel's `bad_address` and the free is skipped.
fn page_arg(
    c: &mut Ctx<'_>,
    a: &Args,
    i: usize,
    what: &str,
) -> Result<Option<kmem::PagePtr>, Fail> {
    let v = a.u(i);
    if v == 0 {
        c.k.oops(0, false, false);
        return Err(Fail::Oops);
    }
    match c.k.page(v) {
        Some(p) => Ok(Some(p)),
        None => {
            c.k.m.bad_address(what, v);
            Ok(None)
        }
    }
}
