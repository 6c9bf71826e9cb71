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
    /// A failed system call's `-errno`: prints as Linux's `%pe` prints an error pointer
    /// (`-ENOMEM`); in arithmetic and comparisons it is the integer `-errno`.
    Errno(i32),
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
            Value::Errno(_) => "long",
        }
    }

    /// The value with an error number turned into its integer `-errno` (what operators and
    /// functions see).
    pub fn plain(self) -> Value {
        match self {
            Value::Errno(e) => Value::Int(i64::from(e).wrapping_neg() as u64),
            v => v,
        }
    }
}

/// Linux's error names by number (include/uapi/asm-generic/errno-base.h and errno.h).
pub const ERRNO_NAMES: &[(i32, &str)] = &[
    (1, "EPERM"),
    (2, "ENOENT"),
    (3, "ESRCH"),
    (4, "EINTR"),
    (5, "EIO"),
    (6, "ENXIO"),
    (7, "E2BIG"),
    (8, "ENOEXEC"),
    (9, "EBADF"),
    (10, "ECHILD"),
    (11, "EAGAIN"),
    (12, "ENOMEM"),
    (13, "EACCES"),
    (14, "EFAULT"),
    (15, "ENOTBLK"),
    (16, "EBUSY"),
    (17, "EEXIST"),
    (18, "EXDEV"),
    (19, "ENODEV"),
    (20, "ENOTDIR"),
    (21, "EISDIR"),
    (22, "EINVAL"),
    (23, "ENFILE"),
    (24, "EMFILE"),
    (25, "ENOTTY"),
    (26, "ETXTBSY"),
    (27, "EFBIG"),
    (28, "ENOSPC"),
    (29, "ESPIPE"),
    (30, "EROFS"),
    (31, "EMLINK"),
    (32, "EPIPE"),
    (33, "EDOM"),
    (34, "ERANGE"),
    (35, "EDEADLK"),
    (36, "ENAMETOOLONG"),
    (37, "ENOLCK"),
    (38, "ENOSYS"),
    (39, "ENOTEMPTY"),
    (40, "ELOOP"),
    (42, "ENOMSG"),
    (43, "EIDRM"),
    (61, "ENODATA"),
    (75, "EOVERFLOW"),
    (95, "EOPNOTSUPP"),
    // include/linux/errno.h: kernel-internal, a driver's probe asks to be retried later.
    (517, "EPROBE_DEFER"),
];

/// The name of error number `e`, if Linux has one the shell knows.
pub fn errno_name(e: i32) -> Option<&'static str> {
    ERRNO_NAMES.iter().find(|(n, _)| *n == e).map(|(_, s)| *s)
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Void => Ok(()),
            Value::Int(v) => write!(f, "{}", *v as i64),
            Value::Ptr(v, _) => write!(f, "{v:#x}"),
            Value::Gfp(g) => write!(f, "{g}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Errno(e) => match errno_name(*e) {
                Some(n) => write!(f, "-{n}"),
                None => write!(f, "{}", -i64::from(*e)),
            },
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
        assert_eq!(Value::Errno(12).to_string(), "-ENOMEM");
        assert_eq!(Value::Errno(22).to_string(), "-EINVAL");
        assert_eq!(Value::Errno(200).to_string(), "-200");
        assert_eq!(Value::Errno(12).plain(), Value::Int((-12i64) as u64));
    }

    #[test]
    fn errno_names_are_linuxs() {
        // The numbers kmem's own Errno has (errno-base.h) must have the same names.
        for e in [
            kmem::errno::Errno::EPERM,
            kmem::errno::Errno::ENOENT,
            kmem::errno::Errno::EIO,
            kmem::errno::Errno::ENOMEM,
            kmem::errno::Errno::EACCES,
            kmem::errno::Errno::EBUSY,
            kmem::errno::Errno::EINVAL,
        ] {
            assert_eq!(errno_name(e.code()), Some(format!("{e:?}").as_str()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (n, s) in ERRNO_NAMES {
            assert!(seen.insert(*n) && s.starts_with('E'), "{n} {s}");
        }
    }
}
