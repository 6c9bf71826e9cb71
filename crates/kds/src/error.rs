//! Typed errors carrying Linux errno names.
//!
//! The kernel returns `-ENOMEM`, `-EBUSY`, ... as negative integers; the Rust APIs of `kds`
//! return [`Error`] whose variants carry the same names, and [`Error::to_errno`] gives the
//! negative value a C caller would see (numbers from include/uapi/asm-generic/errno-base.h).

use core::fmt;

/// An error with a Linux errno name.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// `ENOENT` (2): no such entry (e.g. `idr_replace` of an unallocated id).
    ENOENT,
    /// `EAGAIN` (11): try again (the old `idr_get_new` without a preallocated node).
    EAGAIN,
    /// `ENOMEM` (12): a node allocation failed.
    ENOMEM,
    /// `EBUSY` (16): the index is occupied (`xa_insert`) or an allocating array is full.
    EBUSY,
    /// `EEXIST` (17): the key already exists.
    EEXIST,
    /// `EINVAL` (22): an invalid argument (an internal XArray entry, a bad range).
    EINVAL,
    /// `ENOSPC` (28): no free id in the requested range (IDR/IDA).
    ENOSPC,
}

impl Error {
    /// Returns the negative errno value Linux would return (`-ENOMEM` is `-12`).
    pub const fn to_errno(self) -> i32 {
        -(match self {
            Error::ENOENT => 2,
            Error::EAGAIN => 11,
            Error::ENOMEM => 12,
            Error::EBUSY => 16,
            Error::EEXIST => 17,
            Error::EINVAL => 22,
            Error::ENOSPC => 28,
        })
    }

    /// Returns the errno name, e.g. `"ENOMEM"`.
    pub const fn name(self) -> &'static str {
        match self {
            Error::ENOENT => "ENOENT",
            Error::EAGAIN => "EAGAIN",
            Error::ENOMEM => "ENOMEM",
            Error::EBUSY => "EBUSY",
            Error::EEXIST => "EEXIST",
            Error::EINVAL => "EINVAL",
            Error::ENOSPC => "ENOSPC",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.to_errno())
    }
}

/// The result type of fallible `kds` operations.
pub type Result<T, E = Error> = core::result::Result<T, E>;
