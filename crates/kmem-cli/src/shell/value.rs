//! Values of the shell language and how they print.

use std::fmt;

use kmem::GfpFlags;

/// What a pointer points at, for C's pointer arithmetic (`page + 1` is the next
/// `struct page`; `addr + 1` the next byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtrKind {
    /// `void *`: byte arithmetic.
    Void,
    /// `struct page *`: arithmetic in units of `sizeof(struct page)`.
    Page,
    /// `struct kmem_cache *`.
    Cache,
    /// `struct device *`.
    Device,
}

impl PtrKind {
    /// The C type, for messages.
    pub fn c_type(self) -> &'static str {
        match self {
            PtrKind::Void => "void *",
            PtrKind::Page => "struct page *",
            PtrKind::Cache => "struct kmem_cache *",
            PtrKind::Device => "struct device *",
        }
    }
    /// `sizeof(*p)` for arithmetic.
    pub fn stride(self) -> u64 {
        match self {
            PtrKind::Page => core::mem::size_of::<kmem::Page>() as u64,
            PtrKind::Void | PtrKind::Cache | PtrKind::Device => 1,
        }
    }
}

/// A value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// What a void function returns; prints nothing.
    Void,
    /// An integer (C's `long`): prints in decimal, signed.
    Int(u64),
    /// A pointer holding a model address: prints in hex with `0x`; NULL is `0x0`.
    Ptr(u64, PtrKind),
    /// GFP flags: print in Linux's text form (`GFP_KERNEL|__GFP_ZERO`).
    Gfp(GfpFlags),
    /// A string.
    Str(String),
}

impl Value {
    /// The C type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Void => "void",
            Value::Int(_) => "long",
            Value::Ptr(_, k) => k.c_type(),
            Value::Gfp(_) => "gfp_t",
            Value::Str(_) => "string",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Void => Ok(()),
            Value::Int(v) => write!(f, "{}", *v as i64),
            Value::Ptr(v, _) => write!(f, "{v:#x}"),
            Value::Gfp(g) => write!(f, "{g}"),
            Value::Str(s) => write!(f, "{s:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printing() {
        assert_eq!(Value::Int(128).to_string(), "128");
        assert_eq!(Value::Int(u64::MAX).to_string(), "-1");
        assert_eq!(Value::Ptr(0, PtrKind::Void).to_string(), "0x0");
        assert_eq!(Value::Ptr(0x10, PtrKind::Void).to_string(), "0x10");
        assert_eq!(
            Value::Ptr(0xffff_8880_0012_3000, PtrKind::Void).to_string(),
            "0xffff888000123000"
        );
        assert_eq!(
            Value::Gfp(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO).to_string(),
            "GFP_KERNEL|__GFP_ZERO"
        );
        assert_eq!(Value::Void.to_string(), "");
    }
}
