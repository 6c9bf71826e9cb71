//! Fault-tolerant memory access for the shell's `peek8`/`poke8`/`hexdump`.
//!
//! The access is done by the kernel on our behalf with `process_vm_readv` /
//! `process_vm_writev` on our own pid: an unmapped, PROT_NONE or (for writes) read-only address
//! makes the system call fail with `EFAULT` instead of raising SIGSEGV. No signal handler is
//! involved, so this is safe to use from any thread at any time.
//!
//! Accessing one's own memory this way needs no ptrace permission (the kernel allows access
//! within the same thread group), but a seccomp filter may forbid the system calls; then every
//! probe reports [`ProbeError::Unsupported`].

use core::fmt;

use crate::PAGE_SIZE;

/// Why a probe failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// The byte at `addr` is not accessible (unmapped, or not readable/writable as needed).
    Fault {
        /// The first address that could not be accessed.
        addr: usize,
    },
    /// The host refused the probing system calls (errno given).
    Unsupported(i32),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Fault { addr } => write!(f, "unable to access address {addr:#x}"),
            ProbeError::Unsupported(e) => write!(f, "memory probing unsupported (errno {e})"),
        }
    }
}

impl std::error::Error for ProbeError {}

/// Runs one `process_vm_{read,write}v` call; returns how many bytes were transferred.
fn transfer(local: *mut u8, remote: usize, len: usize, write: bool) -> Result<usize, i32> {
    let liov = libc::iovec {
        iov_base: local.cast(),
        iov_len: len,
    };
    let riov = libc::iovec {
        iov_base: remote as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    // SAFETY: `liov` describes a buffer of ours valid for `len` bytes (for writes into it on
    // read, for reads from it on write), supplied by the safe wrappers below; the remote side
    // is accessed by the kernel, which checks it and reports EFAULT instead of faulting.
    let n = unsafe {
        if write {
            libc::process_vm_writev(pid, &liov, 1, &riov, 1, 0)
        } else {
            libc::process_vm_readv(pid, &liov, 1, &riov, 1, 0)
        }
    };
    if n < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(n as usize)
    }
}

/// Transfers `len` bytes one page-bounded chunk at a time, so that a fault is reported at the
/// first byte of the first inaccessible page (access rights are per page).
fn probe(local: *mut u8, addr: usize, len: usize, write: bool) -> Result<(), ProbeError> {
    let mut done = 0;
    while done < len {
        let at = addr.wrapping_add(done);
        let chunk = (len - done).min(PAGE_SIZE - at % PAGE_SIZE);
        // `done < len`: still inside the caller's buffer.
        let l = local.wrapping_add(done);
        match transfer(l, at, chunk, write) {
            Ok(0) | Err(libc::EFAULT) => return Err(ProbeError::Fault { addr: at }),
            Ok(n) => done += n,
            Err(libc::EINTR) => {}
            Err(e) => return Err(ProbeError::Unsupported(e)),
        }
    }
    Ok(())
}

/// Reads the byte at `addr`, or reports that it cannot be read.
///
/// Never faults: the kernel copies the byte. Reading memory that another thread is writing
/// gives some value of that byte.
///
/// # Errors
/// [`ProbeError::Fault`] if the address is not readable; [`ProbeError::Unsupported`] if the
/// host forbids the system call.
pub fn probe_read(addr: *const u8) -> Result<u8, ProbeError> {
    let mut b = 0u8;
    probe(&mut b, addr as usize, 1, false)?;
    Ok(b)
}

/// Reads `buf.len()` bytes starting at `addr` into `buf`.
///
/// # Errors
/// [`ProbeError::Fault`] with the first unreadable address (the bytes before it are in
/// `buf`); [`ProbeError::Unsupported`] as for [`probe_read`].
pub fn probe_read_bytes(addr: *const u8, buf: &mut [u8]) -> Result<(), ProbeError> {
    probe(buf.as_mut_ptr(), addr as usize, buf.len(), false)
}

/// Writes `val` at `addr`, or reports that it cannot be written.
///
/// # Errors
/// [`ProbeError::Fault`] if the address is not writable (unmapped, PROT_NONE or read-only);
/// [`ProbeError::Unsupported`] as for [`probe_read`].
///
/// # Safety
/// The write happens if the page is writable: `addr` must not be memory that Rust code holds
/// a reference to or otherwise relies on (the caller takes responsibility, as for a raw
/// pointer write; only the fault is made harmless).
pub unsafe fn probe_write(addr: *mut u8, val: u8) -> Result<(), ProbeError> {
    let mut b = val;
    probe(&mut b, addr as usize, 1, true)
}

/// Writes `data` starting at `addr`.
///
/// # Errors
/// As [`probe_write`]; the bytes before the reported address were written.
///
/// # Safety
/// As [`probe_write`], for every byte of the range.
pub unsafe fn probe_write_bytes(addr: *mut u8, data: &[u8]) -> Result<(), ProbeError> {
    // The kernel only reads from the local buffer on a write.
    probe(data.as_ptr().cast_mut(), addr as usize, data.len(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_own_memory() {
        let mut x = [1u8, 2, 3, 4];
        assert_eq!(probe_read(&x[2]), Ok(3));
        // SAFETY: `x` is ours and no reference to it is live across the call.
        unsafe { probe_write(x.as_mut_ptr().add(1), 9).unwrap() };
        assert_eq!(x, [1, 9, 3, 4]);
        let mut buf = [0u8; 4];
        probe_read_bytes(x.as_ptr(), &mut buf).unwrap();
        assert_eq!(buf, [1, 9, 3, 4]);
    }

    #[test]
    fn null_page_faults() {
        assert_eq!(
            probe_read(core::ptr::null()),
            Err(ProbeError::Fault { addr: 0 })
        );
        // SAFETY: address 0 is never mapped; the write cannot happen.
        let r = unsafe { probe_write(core::ptr::null_mut(), 1) };
        assert_eq!(r, Err(ProbeError::Fault { addr: 0 }));
    }
}
