//! The shell's functions: one table entry each, mirroring the kernel API.
//!
//! An entry gives the C prototype (shown by `help`), the parameter kinds (checked and
//! converted by the evaluator before the call) and the function. Adding a kernel function to
//! the shell is adding one entry here.
//!
//! Conventions: addresses are model addresses in and out ([`Kernel`] translates); a function
//! returning `struct page *` returns a [`PtrKind::Page`] pointer; allocation failures return
//! NULL after the kernel's own warning; misuse the kernel detects (bad page state…) is
//! reported by the kernel and the call returns normally; a memory access that faults prints
//! the oops and aborts the statement ([`Fail::Oops`]).

use std::collections::BTreeMap;
use std::io::Write;

use kmem::slab::common::CacheHandle;

use kmem::{GfpFlags, Order, Pfn, PhysAddr, VirtAddr};

use super::value::{PtrKind, Value};
use crate::kernel::{Kernel, Oopsed};

/// A parameter's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// `gfp_t`: GFP flags, or an integer holding their bits.
    Gfp,
    /// An unsigned integer (`unsigned int order`, `size_t size`, a byte value…).
    Uint,
    /// An address: any pointer or integer.
    Addr,
    /// A string.
    Str,
    /// One or more addresses: this and every further argument (a variadic function).
    Many,
}

impl Param {
    fn describe(self) -> &'static str {
        match self {
            Param::Gfp => "GFP flags",
            Param::Uint => "an integer",
            Param::Addr => "a pointer or an address",
            Param::Str => "a string",
            Param::Many => "a pointer or an address",
        }
    }
}

/// Why a call did not produce a value.
#[derive(Debug, PartialEq, Eq)]
pub enum Fail {
    /// A usage error of the shell (wrong type, not a page…): printed as `error: …`.
    Error(String),
    /// The kernel printed an oops; the statement is abandoned.
    Oops,
}

impl From<Oopsed> for Fail {
    fn from(_: Oopsed) -> Self {
        Fail::Oops
    }
}

/// What a builtin works with during a call.
pub struct Ctx<'a> {
    /// The machine.
    pub k: &'a Kernel,
    /// Where output goes.
    pub out: &'a mut dyn Write,
    /// The caches `kmem_cache_create` returned, by model address.
    pub caches: &'a mut BTreeMap<u64, CacheHandle>,
}

impl Ctx<'_> {
    /// Writes `s`, after whatever the kernel printed before it.
    pub fn emit(&mut self, s: &str) {
        let console = self.k.take_console();
        let _ = self.out.write_all(console.as_bytes());
        let _ = self.out.write_all(s.as_bytes());
    }
}

/// Arguments, already checked against the parameter kinds.
pub struct Args(pub Vec<Value>);

impl Args {
    /// Argument `i` as an unsigned integer (addresses and GFP bits included).
    pub fn u(&self, i: usize) -> u64 {
        match &self.0[i] {
            Value::Int(v) | Value::Ptr(v, _) => *v,
            Value::Gfp(g) => u64::from(g.bits()),
            Value::Void | Value::Str(_) => 0,
        }
    }
    /// Argument `i` as GFP flags.
    pub fn gfp(&self, i: usize) -> GfpFlags {
        match &self.0[i] {
            Value::Gfp(g) => *g,
            _ => GfpFlags::from_bits(self.u(i) as u32),
        }
    }
    /// Argument `i` as a string.
    pub fn str(&self, i: usize) -> &str {
        match &self.0[i] {
            Value::Str(s) => s,
            _ => "",
        }
    }
    /// Argument `i` as a `usize`.
    pub fn usize(&self, i: usize) -> Result<usize, Fail> {
        usize::try_from(self.u(i)).map_err(|_| Fail::Error(format!("{} is too large", self.u(i))))
    }
}

/// Checks that `v` fits parameter kind `p`.
pub fn check_param(p: Param, v: &Value) -> Result<(), String> {
    let ok = match p {
        Param::Gfp => match v {
            Value::Gfp(_) => true,
            Value::Int(n) => *n <= u64::from(u32::MAX),
            _ => false,
        },
        Param::Uint => matches!(v, Value::Int(_)),
        Param::Addr | Param::Many => matches!(v, Value::Int(_) | Value::Ptr(..)),
        Param::Str => matches!(v, Value::Str(_)),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected {}, got {} {}",
            p.describe(),
            v.type_name(),
            v
        ))
    }
}

/// A function of the shell.
pub struct Builtin {
    /// The name.
    pub name: &'static str,
    /// The C prototype, for `help`.
    pub proto: &'static str,
    /// One line saying what it does.
    pub doc: &'static str,
    /// Parameter kinds.
    pub params: &'static [Param],
    /// The function.
    pub run: fn(&mut Ctx<'_>, &Args) -> Result<Value, Fail>,
}

use Param::*;

/// The tables of functions with their titles, in the order `help` lists them.
pub static TABLES: &[(&str, &[Builtin])] = &[
    ("Page allocator and memory model", PAGE_BUILTINS),
    ("Slab allocator", super::slab::SLAB_BUILTINS),
    (
        "vmalloc, vmap, kmap, kvmalloc",
        super::vmalloc::VMALLOC_BUILTINS,
    ),
    (
        "Memory access (faults are reported as oopses)",
        MEMORY_BUILTINS,
    ),
];

/// Every function the shell knows, in the order `help` lists them.
pub fn all() -> impl Iterator<Item = &'static Builtin> {
    TABLES.iter().flat_map(|t| t.1.iter())
}

/// The page allocator's and the memory model's functions, and memory access.
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
        run: |c, a| Ok(page_val(c.k, c.k.m.pfn_to_page(Pfn::new(a.u(0))))),
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

/// Memory access through fault probes.
pub static MEMORY_BUILTINS: &[Builtin] = &[
    Builtin {
        name: "peek8",
        proto: "u8 peek8(void *addr)",
        doc: "reads a byte",
        params: &[Addr],
        run: |c, a| peek(c, a, 1),
    },
    Builtin {
        name: "peek16",
        proto: "u16 peek16(void *addr)",
        doc: "reads a little-endian 16-bit value",
        params: &[Addr],
        run: |c, a| peek(c, a, 2),
    },
    Builtin {
        name: "peek32",
        proto: "u32 peek32(void *addr)",
        doc: "reads a little-endian 32-bit value",
        params: &[Addr],
        run: |c, a| peek(c, a, 4),
    },
    Builtin {
        name: "peek64",
        proto: "u64 peek64(void *addr)",
        doc: "reads a little-endian 64-bit value",
        params: &[Addr],
        run: |c, a| peek(c, a, 8),
    },
    Builtin {
        name: "poke8",
        proto: "void poke8(void *addr, u8 val)",
        doc: "writes a byte",
        params: &[Addr, Addr],
        run: |c, a| poke(c, a, 1),
    },
    Builtin {
        name: "poke16",
        proto: "void poke16(void *addr, u16 val)",
        doc: "writes a little-endian 16-bit value",
        params: &[Addr, Addr],
        run: |c, a| poke(c, a, 2),
    },
    Builtin {
        name: "poke32",
        proto: "void poke32(void *addr, u32 val)",
        doc: "writes a little-endian 32-bit value",
        params: &[Addr, Addr],
        run: |c, a| poke(c, a, 4),
    },
    Builtin {
        name: "poke64",
        proto: "void poke64(void *addr, u64 val)",
        doc: "writes a little-endian 64-bit value",
        params: &[Addr, Addr],
        run: |c, a| poke(c, a, 8),
    },
    Builtin {
        name: "memset",
        proto: "void memset(void *s, int c, size_t n)",
        doc: "fills n bytes with the byte c",
        params: &[Addr, Uint, Uint],
        run: |c, a| {
            let n = a.usize(2)?;
            if n > 1 << 30 {
                return Err(Fail::Error("at most 1 GiB at a time".into()));
            }
            let data = vec![a.u(1) as u8; n];
            c.k.write(a.u(0), &data)?;
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "hexdump",
        proto: "void hexdump(void *p, size_t len)",
        doc: "prints memory as print_hex_dump(DUMP_PREFIX_ADDRESS, 16, 1, ascii) does",
        params: &[Addr, Uint],
        run: hexdump,
    },
];

/// Looks a function up by name.
pub fn find(name: &str) -> Option<&'static Builtin> {
    all().find(|b| b.name == name)
}

fn null(kind: PtrKind) -> Value {
    Value::Ptr(0, kind)
}

fn page_val(k: &Kernel, p: Option<kmem::PagePtr>) -> Value {
    match p {
        Some(p) => Value::Ptr(k.page_model(p), PtrKind::Page),
        None => null(PtrKind::Page),
    }
}

/// A `void *` result: the model address, or NULL.
pub fn addr_val(k: &Kernel, a: Option<VirtAddr>) -> Value {
    match a {
        Some(a) => Value::Ptr(k.model(a.as_usize()), PtrKind::Void),
        None => null(PtrKind::Void),
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

/// A `struct page *` argument of a query: anything else is a usage error.
pub fn need_page(c: &mut Ctx<'_>, a: &Args, i: usize) -> Result<kmem::PagePtr, Fail> {
    c.k.page(a.u(i)).ok_or_else(|| {
        Fail::Error(format!(
            "{:#x} is not a struct page of this machine (use virt_to_page for an address)",
            a.u(i)
        ))
    })
}

fn peek(c: &mut Ctx<'_>, a: &Args, n: usize) -> Result<Value, Fail> {
    let mut b = [0u8; 8];
    c.k.read(a.u(0), &mut b[..n])?;
    Ok(Value::Int(u64::from_le_bytes(b)))
}

fn poke(c: &mut Ctx<'_>, a: &Args, n: usize) -> Result<Value, Fail> {
    let v = a.u(1);
    let bits = 8 * n as u32;
    let fits = n == 8 || v >> bits == 0 || ((v as i64) < 0 && (v as i64) >= -(1i64 << (bits - 1)));
    if !fits {
        return Err(Fail::Error(format!(
            "{} does not fit in {} bits",
            v as i64,
            8 * n
        )));
    }
    c.k.write(a.u(0), &v.to_le_bytes()[..n])?;
    Ok(Value::Void)
}

/// `print_hex_dump(KERN_DEBUG, "", DUMP_PREFIX_ADDRESS, 16, 1, p, len, true)` (lib/hexdump.c):
/// `address: xx xx … xx  ascii`, the ASCII column at 16 * 3 + 1.
fn hexdump(c: &mut Ctx<'_>, a: &Args) -> Result<Value, Fail> {
    let start = a.u(0);
    let len = a.usize(1)?;
    if len > 1 << 20 {
        return Err(Fail::Error("at most 1 MiB at a time".into()));
    }
    let w = c.k.m.arch().ptr_hex_digits();
    let mut off = 0;
    while off < len {
        let n = (len - off).min(16);
        let mut row = [0u8; 16];
        let at = start.wrapping_add(off as u64);
        c.k.read(at, &mut row[..n])?;
        let mut line = format!("{at:0w$x}: ");
        let mut hex = String::new();
        for (i, b) in row[..n].iter().enumerate() {
            if i > 0 {
                hex.push(' ');
            }
            hex.push_str(&format!("{b:02x}"));
        }
        line.push_str(&format!("{hex:<49}"));
        for b in &row[..n] {
            line.push(if b.is_ascii_graphic() || *b == b' ' {
                *b as char
            } else {
                '.'
            });
        }
        line.push('\n');
        c.emit(&line);
        off += n;
    }
    Ok(Value::Void)
}
