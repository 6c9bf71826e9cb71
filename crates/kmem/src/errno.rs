//! Error numbers for the calls kmem models as system calls on files (`/proc` reads and
//! writes), with the text `strerror` gives for each (include/uapi/asm-generic/errno-base.h,
//! errno.h).

#![forbid(unsafe_code)]

use core::fmt;

/// A Linux error number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Errno {
    /// `EPERM` (1).
    EPERM = 1,
    /// `ENOENT` (2).
    ENOENT = 2,
    /// `ESRCH` (3).
    ESRCH = 3,
    /// `EIO` (5).
    EIO = 5,
    /// `ENXIO` (6).
    ENXIO = 6,
    /// `E2BIG` (7).
    E2BIG = 7,
    /// `EBADF` (9).
    EBADF = 9,
    /// `EAGAIN` (11).
    EAGAIN = 11,
    /// `ENOMEM` (12).
    ENOMEM = 12,
    /// `EACCES` (13).
    EACCES = 13,
    /// `EFAULT` (14).
    EFAULT = 14,
    /// `EBUSY` (16).
    EBUSY = 16,
    /// `EEXIST` (17).
    EEXIST = 17,
    /// `ENODEV` (19).
    ENODEV = 19,
    /// `EINVAL` (22).
    EINVAL = 22,
    /// `EMFILE` (24).
    EMFILE = 24,
    /// `EFBIG` (27).
    EFBIG = 27,
    /// `ENOSPC` (28).
    ENOSPC = 28,
    /// `ERANGE` (34).
    ERANGE = 34,
    /// `EOVERFLOW` (75).
    EOVERFLOW = 75,
    /// `EPROBE_DEFER` (517, include/linux/errno.h): kernel-internal, a driver
    /// asks to be probed again later.
    #[allow(non_camel_case_types)]
    EPROBE_DEFER = 517,
}

impl Errno {
    /// The number.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// What `strerror` says (glibc's texts).
    pub const fn text(self) -> &'static str {
        match self {
            Errno::EPERM => "Operation not permitted",
            Errno::ENOENT => "No such file or directory",
            Errno::ESRCH => "No such process",
            Errno::EIO => "Input/output error",
            Errno::ENXIO => "No such device or address",
            Errno::E2BIG => "Argument list too long",
            Errno::EBADF => "Bad file descriptor",
            Errno::EAGAIN => "Resource temporarily unavailable",
            Errno::EFAULT => "Bad address",
            Errno::EMFILE => "Too many open files",
            Errno::EFBIG => "File too large",
            Errno::ENOSPC => "No space left on device",
            Errno::ERANGE => "Numerical result out of range",
            Errno::EOVERFLOW => "Value too large for defined data type",
            Errno::ENOMEM => "Cannot allocate memory",
            Errno::EACCES => "Permission denied",
            Errno::EBUSY => "Device or resource busy",
            Errno::EEXIST => "File exists",
            Errno::ENODEV => "No such device",
            Errno::EINVAL => "Invalid argument",
            // Never reaches user space in Linux; glibc has no text for it.
            Errno::EPROBE_DEFER => "Unknown error 517",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::Errno;

    #[test]
    fn numbers_and_texts_are_linuxs() {
        assert_eq!(Errno::EINVAL.code(), 22);
        assert_eq!(Errno::EACCES.text(), "Permission denied");
        assert_eq!(Errno::ENOENT.text(), "No such file or directory");
    }
}
