//! The shell's slab functions (issue 3): kmalloc and the kmem_cache API.
//!
//! A `struct kmem_cache *` is shown as the model address of the cache's structure. The shell
//! remembers the handles `kmem_cache_create` returned (so that a destroyed cache is still
//! recognised, and the kernel reports its use), and otherwise finds a cache by address among
//! the live ones (`kmalloc-64` and the other kmalloc caches included, see `kmem_cache_find`).

use kmem::slab::common::{CacheHandle, SlabFlags};

use super::{addr_val, Args, Builtin, Ctx, Fail, Param::*};
use crate::shell::value::{PtrKind, Value};

/// The slab functions.
pub static SLAB_BUILTINS: &[Builtin] = &[
    Builtin {
        name: "kmalloc",
        proto: "void *kmalloc(size_t size, gfp_t gfp)",
        doc: "allocates size bytes; kmalloc(0) is ZERO_SIZE_PTR (0x10)",
        params: &[Uint, Gfp],
        run: |c, a| Ok(ptr_val(c, c.k.m.kmalloc(a.usize(0)?, a.gfp(1)))),
    },
    Builtin {
        name: "kmalloc_node",
        proto: "void *kmalloc_node(size_t size, gfp_t gfp, int node)",
        doc: "allocates size bytes on NUMA node node (-1: any node; __GFP_THISNODE: only there)",
        params: &[Uint, Gfp, Uint],
        run: |c, a| {
            let node = node_arg(a, 2);
            Ok(ptr_val(c, c.k.m.kmalloc_node(a.usize(0)?, a.gfp(1), node)))
        },
    },
    Builtin {
        name: "kzalloc_node",
        proto: "void *kzalloc_node(size_t size, gfp_t gfp, int node)",
        doc: "allocates size zeroed bytes on NUMA node node",
        params: &[Uint, Gfp, Uint],
        run: |c, a| {
            let node = node_arg(a, 2);
            Ok(ptr_val(c, c.k.m.kzalloc_node(a.usize(0)?, a.gfp(1), node)))
        },
    },
    Builtin {
        name: "is_kfence_address",
        proto: "bool is_kfence_address(const void *addr)",
        doc: "1 if the address is in the KFENCE pool (boot with kfence.sample_interval=MS)",
        params: &[Addr],
        run: |c, a| {
            let v = c.k.m.is_kfence_address(c.k.arg_addr(a.u(0)).as_ptr::<u8>());
            Ok(Value::Int(u64::from(v)))
        },
    },
    Builtin {
        name: "kzalloc",
        proto: "void *kzalloc(size_t size, gfp_t gfp)",
        doc: "allocates size zeroed bytes",
        params: &[Uint, Gfp],
        run: |c, a| Ok(ptr_val(c, c.k.m.kzalloc(a.usize(0)?, a.gfp(1)))),
    },
    Builtin {
        name: "kcalloc",
        proto: "void *kcalloc(size_t n, size_t size, gfp_t gfp)",
        doc: "allocates a zeroed array; NULL if n * size overflows",
        params: &[Uint, Uint, Gfp],
        run: |c, a| Ok(ptr_val(c, c.k.m.kcalloc(a.usize(0)?, a.usize(1)?, a.gfp(2)))),
    },
    Builtin {
        name: "krealloc",
        proto: "void *krealloc(const void *p, size_t new_size, gfp_t gfp)",
        doc: "resizes a kmalloc block (in place while ksize allows)",
        params: &[Addr, Uint, Gfp],
        run: |c, a| {
            let p = c.k.arg_addr(a.u(0)).as_ptr::<u8>();
            Ok(ptr_val(c, c.k.m.krealloc(p, a.usize(1)?, a.gfp(2))))
        },
    },
    Builtin {
        name: "kfree",
        proto: "void kfree(const void *p)",
        doc: "frees a kmalloc block; NULL and ZERO_SIZE_PTR are no-ops",
        params: &[Addr],
        run: |c, a| {
            c.k.m.kfree(c.k.arg_addr(a.u(0)).as_ptr::<u8>());
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "ksize",
        proto: "size_t ksize(const void *p)",
        doc: "the usable size of a kmalloc block",
        params: &[Addr],
        run: |c, a| {
            let n = c.k.m.ksize(c.k.arg_addr(a.u(0)).as_ptr::<u8>());
            Ok(Value::Int(n as u64))
        },
    },
    Builtin {
        name: "kmem_cache_create",
        proto: "struct kmem_cache *kmem_cache_create(const char *name, unsigned int size, unsigned int align, slab_flags_t flags)",
        doc: "creates a cache (or returns a compatible one it merges with); NULL on failure",
        params: &[Str, Uint, Uint, Addr],
        run: |c, a| {
            let flags = SlabFlags(u32::try_from(a.u(3)).map_err(|_| {
                Fail::Error(format!("{:#x} is not a set of slab flags", a.u(3)))
            })?);
            match c
                .k
                .m
                .kmem_cache_create(a.str(0), a.usize(1)?, a.usize(2)?, flags, None)
            {
                Ok(h) => {
                    let model = c.k.model(h.as_ptr() as usize);
                    c.caches.insert(model, h);
                    Ok(Value::Ptr(model, PtrKind::Cache))
                }
                Err(_) => Ok(Value::Ptr(0, PtrKind::Cache)),
            }
        },
    },
    Builtin {
        name: "kmem_cache_find",
        proto: "struct kmem_cache *kmem_cache_find(const char *name)",
        doc: "the cache with this name (e.g. \"kmalloc-64\"), or NULL (a shell helper)",
        params: &[Str],
        run: |c, a| {
            Ok(match c.k.m.find_cache(a.str(0)) {
                Some(h) => Value::Ptr(c.k.model(h.as_ptr() as usize), PtrKind::Cache),
                None => Value::Ptr(0, PtrKind::Cache),
            })
        },
    },
    Builtin {
        name: "kmem_cache_alloc",
        proto: "void *kmem_cache_alloc(struct kmem_cache *s, gfp_t gfp)",
        doc: "allocates an object",
        params: &[Addr, Gfp],
        run: |c, a| {
            let h = cache_arg(c, a, 0)?;
            Ok(ptr_val(c, c.k.m.kmem_cache_alloc(h, a.gfp(1))))
        },
    },
    Builtin {
        name: "kmem_cache_alloc_node",
        proto: "void *kmem_cache_alloc_node(struct kmem_cache *s, gfp_t gfp, int node)",
        doc: "allocates an object on NUMA node node (-1: any node)",
        params: &[Addr, Gfp, Uint],
        run: |c, a| {
            let h = cache_arg(c, a, 0)?;
            let node = node_arg(a, 2);
            Ok(ptr_val(c, c.k.m.kmem_cache_alloc_node(h, a.gfp(1), node)))
        },
    },
    Builtin {
        name: "kmem_cache_zalloc",
        proto: "void *kmem_cache_zalloc(struct kmem_cache *s, gfp_t gfp)",
        doc: "allocates a zeroed object",
        params: &[Addr, Gfp],
        run: |c, a| {
            let h = cache_arg(c, a, 0)?;
            Ok(ptr_val(c, c.k.m.kmem_cache_zalloc(h, a.gfp(1))))
        },
    },
    Builtin {
        name: "kmem_cache_free",
        proto: "void kmem_cache_free(struct kmem_cache *s, void *p)",
        doc: "frees an object of s",
        params: &[Addr, Addr],
        run: |c, a| {
            let h = cache_arg(c, a, 0)?;
            c.k.m.kmem_cache_free(h, c.k.arg_addr(a.u(1)).as_ptr::<u8>());
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "kmem_cache_shrink",
        proto: "int kmem_cache_shrink(struct kmem_cache *s)",
        doc: "gives empty slabs back to the page allocator; 1 if slabs remain",
        params: &[Addr],
        run: |c, a| {
            let h = cache_arg(c, a, 0)?;
            Ok(Value::Int(u64::from(c.k.m.kmem_cache_shrink(h))))
        },
    },
    Builtin {
        name: "kmem_cache_destroy",
        proto: "void kmem_cache_destroy(struct kmem_cache *s)",
        doc: "destroys a cache (reports objects still allocated); NULL is a no-op",
        params: &[Addr],
        run: |c, a| {
            if a.u(0) == 0 {
                return Ok(Value::Void);
            }
            let h = cache_arg(c, a, 0)?;
            c.k.m.kmem_cache_destroy(h);
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "validate",
        proto: "int validate(struct kmem_cache *s)",
        doc: "checks every slab of s (validate_slab_cache); the number of errors reported",
        params: &[Addr],
        run: |c, a| {
            let h = cache_arg(c, a, 0)?;
            Ok(Value::Int(c.k.m.validate(h) as u64))
        },
    },
];

/// kmemleak's annotations (include/linux/kmemleak.h) and `msleep`, for its minimum object
/// age. Scans and reports go through `echo … > /sys/kernel/debug/kmemleak` and `cat`.
pub static KMEMLEAK_BUILTINS: &[Builtin] = &[
    Builtin {
        name: "kmemleak_not_leak",
        proto: "void kmemleak_not_leak(const void *ptr)",
        doc: "marks an object as no leak: never reported, always scanned (grey)",
        params: &[Addr],
        run: |c, a| {
            c.k.m.kmemleak_not_leak(c.k.arg_addr(a.u(0)).as_ptr::<u8>());
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "kmemleak_ignore",
        proto: "void kmemleak_ignore(const void *ptr)",
        doc: "ignores an object: neither scanned nor reported (black)",
        params: &[Addr],
        run: |c, a| {
            c.k.m.kmemleak_ignore(c.k.arg_addr(a.u(0)).as_ptr::<u8>());
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "kmemleak_no_scan",
        proto: "void kmemleak_no_scan(const void *ptr)",
        doc: "does not scan an object (references to it still count)",
        params: &[Addr],
        run: |c, a| {
            c.k.m.kmemleak_no_scan(c.k.arg_addr(a.u(0)).as_ptr::<u8>());
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "kmemleak_transient_leak",
        proto: "void kmemleak_transient_leak(const void *ptr)",
        doc: "resets an object's checksum: the next scan does not report it",
        params: &[Addr],
        run: |c, a| {
            c.k.m
                .kmemleak_transient_leak(c.k.arg_addr(a.u(0)).as_ptr::<u8>());
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "msleep",
        proto: "void msleep(unsigned int msecs)",
        doc: "sleeps msecs milliseconds of real time (jiffies follow the clock)",
        params: &[Uint],
        run: |_, a| {
            std::thread::sleep(std::time::Duration::from_millis(a.u(0)));
            Ok(Value::Void)
        },
    },
];

fn ptr_val(c: &Ctx<'_>, p: Option<core::ptr::NonNull<u8>>) -> Value {
    addr_val(c.k, p.map(|p| kmem::VirtAddr::new(p.as_ptr() as usize)))
}

/// A `struct kmem_cache *` argument: NULL oopses as in Linux; a handle the shell got from
/// `kmem_cache_create` is used as is (a destroyed cache is then reported by the kernel);
/// otherwise a live cache at that address.
fn cache_arg(c: &mut Ctx<'_>, a: &Args, i: usize) -> Result<CacheHandle, Fail> {
    let model = a.u(i);
    if model == 0 {
        c.k.oops(0, false, false);
        return Err(Fail::Oops);
    }
    if let Some(h) = c.caches.get(&model) {
        return Ok(*h);
    }
    let mut found = None;
    let k = c.k;
    k.m.for_each_cache(&mut |h, _| {
        if k.model(h.as_ptr() as usize) == model {
            found = Some(h);
        }
    });
    found.ok_or_else(|| Fail::Error(format!("{model:#x} is not a struct kmem_cache")))
}

/// A node argument: the shell's integers are 64-bit, so -1 (`NUMA_NO_NODE`) arrives as its
/// two's complement; anything out of `int`'s range is an offline node.
fn node_arg(a: &Args, i: usize) -> i32 {
    i32::try_from(a.u(i) as i64).unwrap_or(i32::MAX)
}
