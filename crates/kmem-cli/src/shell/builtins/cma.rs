//! The shell's CMA and coherent-DMA functions (issue 16): `cma_find`, `cma_alloc`,
//! `cma_release` (mm/cma.c) and `dma_alloc_coherent`/`dma_free_coherent`
//! (kernel/dma/direct.c).
//!
//! A `struct cma *` is shown as the area's handle: its index in the area table plus one (0 is
//! NULL), as kmem keeps no `struct cma` in simulated memory. The area of a plain `cma=SIZE` is
//! named `reserved`, as in Linux.

use kmem::page_alloc::Cma;

use kmem::errno::Errno;

use super::device::{dev, errno};
use super::{addr_val, Args, Builtin, Ctx, Fail, Param::*};
use crate::shell::value::{PtrKind, Value};

/// Argument `i` as a CMA area handle.
fn cma(c: &Ctx<'_>, a: &Args, i: usize) -> Result<Cma, Fail> {
    let v = a.u(i);
    (1..=kmem::page_alloc::MAX_CMA_AREAS as u64)
        .contains(&v)
        .then(|| c.k.m.cma_handle((v - 1) as usize))
        .flatten()
        .ok_or_else(|| Fail::Error(format!("{v:#x} is not a CMA area (see cma_find)")))
}

/// The CMA and DMA family.
pub static CMA_BUILTINS: &[Builtin] = &[
    Builtin {
        name: "cma_find",
        proto: "struct cma *cma_find(const char *name)",
        doc: "the CMA area called NAME (`reserved` for cma=SIZE), or NULL",
        params: &[Str],
        run: |c, a| {
            Ok(match c.k.m.cma_find(a.str(0)) {
                Some(h) => Value::Int(h.index() as u64 + 1),
                None => Value::Ptr(0, PtrKind::Void),
            })
        },
    },
    Builtin {
        name: "cma_alloc",
        proto: "struct page *cma_alloc(struct cma *cma, unsigned long count, unsigned int align, bool no_warn)",
        doc: "COUNT contiguous pages of the area aligned to 2^ALIGN pages, or NULL",
        params: &[Addr, Uint, Uint, Uint],
        run: |c, a| {
            let h = cma(c, a, 0)?;
            let align = u32::try_from(a.u(2)).unwrap_or(u32::MAX);
            let p = c.k.m.cma_alloc(h, a.usize(1)?, align, a.u(3) != 0);
            Ok(match p {
                Some(p) => Value::Ptr(c.k.page_model(p), PtrKind::Page),
                None => Value::Ptr(0, PtrKind::Page),
            })
        },
    },
    Builtin {
        name: "cma_release",
        proto: "bool cma_release(struct cma *cma, const struct page *pages, unsigned long count)",
        doc: "gives back pages from cma_alloc; 0 when they are not the area's",
        params: &[Addr, Addr, Uint],
        run: |c, a| {
            let h = cma(c, a, 0)?;
            let Some(p) = c.k.page(a.u(1)) else {
                return Ok(Value::Int(0));
            };
            Ok(Value::Int(u64::from(c.k.m.cma_release(h, p, a.usize(2)?))))
        },
    },
    Builtin {
        name: "dma_alloc_coherent",
        proto: "void *dma_alloc_coherent(struct device *dev, size_t size, gfp_t gfp)",
        doc: "zeroed DMA memory: the device's cma_map area, the default area, or DMA32 pages",
        params: &[Addr, Uint, Gfp],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            match c.k.m.dma_alloc_coherent(h, a.usize(1)?, a.gfp(2)) {
                Ok((va, _)) => Ok(addr_val(c.k, Some(va))),
                Err(Errno::ENODEV) => Err(errno("dma_alloc_coherent", Errno::ENODEV)),
                Err(_) => Ok(addr_val(c.k, None)),
            }
        },
    },
    Builtin {
        name: "dma_free_coherent",
        proto: "void dma_free_coherent(struct device *dev, size_t size, void *vaddr)",
        doc: "frees memory from dma_alloc_coherent",
        params: &[Addr, Uint, Addr],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            c.k.m
                .dma_free_coherent(h, a.usize(1)?, c.k.arg_addr(a.u(2)))
                .map_err(|e| errno("dma_free_coherent", e))?;
            Ok(Value::Void)
        },
    },
];
