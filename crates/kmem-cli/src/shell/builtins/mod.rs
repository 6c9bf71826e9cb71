//! The shell's functions: one table entry each, mirroring the kernel API.
//!
//! An entry gives the C prototype (shown by `help`), the parameter kinds (checked and
//! converted by the evaluator before the call) and the function. Adding a kernel function to
//! the shell is adding one entry to the table of its subsystem: [`page`] (page allocator and
//! memory model), [`slab`], [`vmalloc`] and [`memory`] (peek, poke, hexdump). This module
//! holds what they share (parameter kinds, arguments, the call context, result helpers) and
//! the list of tables; the tables use it, it does not use them except to list them.
//!
//! Conventions: addresses are model addresses in and out ([`Kernel`] translates); a function
//! returning `struct page *` returns a [`PtrKind::Page`] pointer; allocation failures return
//! NULL after the kernel's own warning; misuse the kernel detects (bad page state…) is
//! reported by the kernel and the call returns normally; a memory access that faults prints
//! the oops and aborts the statement ([`Fail::Oops`]).

use std::collections::BTreeMap;
use std::io::Write;

use kmem::slab::common::CacheHandle;

use kmem::{GfpFlags, VirtAddr};

use super::value::{PtrKind, Value};
use crate::kernel::{Kernel, Oopsed};

pub mod cma;
pub mod consts;
pub mod device;
pub mod hotplug;
pub mod memory;
pub mod mempolicy;
pub mod migrate;
pub mod page;
pub mod process;
pub mod slab;
pub mod vmalloc;

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
    /// An address that may be left out (last parameters only).
    OptAddr,
    /// A block of statements (`{ … }`), run later by the function: only the functions the
    /// shell runs itself take one ([`crate::shell::driver`]).
    Block,
    /// A block that may be left out (last parameters only).
    OptBlock,
}

impl Param {
    fn describe(self) -> &'static str {
        match self {
            Param::Gfp => "GFP flags",
            Param::Uint => "an integer",
            Param::Addr => "a pointer or an address",
            Param::Str => "a string",
            Param::Many | Param::OptAddr => "a pointer or an address",
            Param::Block | Param::OptBlock => "a block { … }",
        }
    }

    /// Whether the parameter may be left out.
    pub fn optional(self) -> bool {
        matches!(self, Param::OptAddr | Param::OptBlock)
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
            Value::Errno(e) => i64::from(*e).wrapping_neg() as u64,
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
        Param::Addr | Param::Many | Param::OptAddr => matches!(v, Value::Int(_) | Value::Ptr(..)),
        Param::Str => matches!(v, Value::Str(_)),
        // A block is not a value: the evaluator hands blocks over unevaluated.
        Param::Block | Param::OptBlock => false,
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

/// The tables of functions with their titles, in the order `help` lists them.
pub static TABLES: &[(&str, &[Builtin])] = &[
    ("Page allocator and memory model", page::PAGE_BUILTINS),
    ("Slab allocator", slab::SLAB_BUILTINS),
    ("kmemleak", slab::KMEMLEAK_BUILTINS),
    ("vmalloc, vmap, kmap, kvmalloc", vmalloc::VMALLOC_BUILTINS),
    (
        "Memory access (faults are reported as oopses)",
        memory::MEMORY_BUILTINS,
    ),
    (
        "Processes and their memory (pids; failed calls return -errno)",
        process::PROCESS_BUILTINS,
    ),
    ("Driver core and managed resources", device::DEVICE_BUILTINS),
    ("CMA and coherent DMA", cma::CMA_BUILTINS),
    ("Page migration and pinning", migrate::MIGRATE_BUILTINS),
    ("Memory hotplug", hotplug::HOTPLUG_BUILTINS),
    ("NUMA memory policies", mempolicy::MEMPOLICY_BUILTINS),
];

/// Every function the shell knows, in the order `help` lists them.
pub fn all() -> impl Iterator<Item = &'static Builtin> {
    TABLES.iter().flat_map(|t| t.1.iter())
}

/// Looks a function up by name.
pub fn find(name: &str) -> Option<&'static Builtin> {
    all().find(|b| b.name == name)
}

/// A NULL pointer of `kind`.
fn null(kind: PtrKind) -> Value {
    Value::Ptr(0, kind)
}

/// A `void *` result: the model address, or NULL.
pub fn addr_val(k: &Kernel, a: Option<VirtAddr>) -> Value {
    match a {
        Some(a) => Value::Ptr(k.model(a.as_usize()), PtrKind::Void),
        None => null(PtrKind::Void),
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
