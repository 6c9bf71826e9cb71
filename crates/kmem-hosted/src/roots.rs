//! kmemleak's roots in a host process (the hosted stand-in for the kernel image's data/bss
//! and the task stacks): the process's private writable mappings, read from
//! `/proc/self/maps`, and the reporting thread's callee-saved registers. Used by
//! [`crate::KmemAlloc::kmemleak_report`] and by `libkmem_malloc.so`'s leak reports.
//!
//! Nothing here allocates: buffers are the caller's (or fresh mappings).

/// The callee-saved registers of the calling thread (x86_64: rbx, rbp, r12–r15): pointers a
/// caller up the stack may keep only there.
#[inline(never)]
pub fn callee_saved_registers() -> [usize; 6] {
    #[cfg(target_arch = "x86_64")]
    {
        let (a, b, c, d, e, f): (usize, usize, usize, usize, usize, usize);
        // SAFETY: only reads registers into outputs.
        unsafe {
            core::arch::asm!(
                "mov {0}, rbx", "mov {1}, rbp", "mov {2}, r12", "mov {3}, r13", "mov {4}, r14",
                "mov {5}, r15",
                out(reg) a, out(reg) b, out(reg) c, out(reg) d, out(reg) e, out(reg) f,
                options(nomem, nostack, preserves_flags)
            );
        }
        [a, b, c, d, e, f]
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        [0; 6]
    }
}

/// The calling thread's stack pointer.
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: only reads rsp.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let x = 0u8;
        sp = core::ptr::addr_of!(x) as usize;
    }
    sp
}

/// Reads `/proc/self/maps` into `buf`; the bytes read.
pub fn read_self_maps(buf: &mut [u8]) -> usize {
    // SAFETY: a NUL-terminated path; the fd is closed below.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return 0;
    }
    let mut len = 0;
    while len < buf.len() {
        // SAFETY: reads into the unused tail of `buf`.
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if n <= 0 {
            break;
        }
        len += n as usize;
    }
    // SAFETY: our fd.
    unsafe { libc::close(fd) };
    len
}

/// Parses a hex number at the start of `s`; returns it and the rest.
fn hex(s: &[u8]) -> Option<(usize, &[u8])> {
    let mut v = 0usize;
    let mut i = 0;
    while i < s.len() {
        let d = match s[i] {
            b'0'..=b'9' => s[i] - b'0',
            b'a'..=b'f' => s[i] - b'a' + 10,
            _ => break,
        };
        v = v.checked_mul(16)?.checked_add(usize::from(d))?;
        i += 1;
    }
    (i > 0).then_some((v, &s[i..]))
}

/// The root ranges of `maps` (the text of `/proc/self/maps`): private, readable and writable
/// mappings for which `exclude(start, end)` is false (the allocator's own memory); the
/// calling thread's stack from `sp` up only (below it are dead frames, whose stale pointers
/// would hide leaks). Fills `out`, returns how many.
pub fn root_ranges(
    maps: &[u8],
    sp: usize,
    exclude: &dyn Fn(usize, usize) -> bool,
    out: &mut [(usize, usize)],
) -> usize {
    let mut n = 0;
    for line in maps.split(|&b| b == b'\n') {
        let Some((start, rest)) = hex(line) else {
            continue;
        };
        let Some((end, rest)) = rest.strip_prefix(b"-").and_then(hex) else {
            continue;
        };
        let perms = rest.get(1..5).unwrap_or(b"----");
        if perms != b"rw-p" || exclude(start, end) || n == out.len() {
            continue;
        }
        let start = if (start..end).contains(&sp) {
            sp
        } else {
            start
        };
        out[n] = (start, end);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_private_writable_mappings() {
        let maps = b"00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon\n\
            00651000-00652000 rw-p 00051000 08:02 173521 /usr/bin/dbus-daemon\n\
            7f0000000000-7f0000100000 rw-s 00000000 00:01 1 /memfd:kmem (deleted)\n\
            7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]\n\
            7ffd00000000-7ffd00001000 rw-p 00000000 00:00 0\n";
        let mut out = [(0, 0); 8];
        let n = root_ranges(
            maps,
            0x7ffc_0000_8000,
            &|s, _| s == 0x7ffd00000000,
            &mut out,
        );
        assert_eq!(
            &out[..n],
            &[(0x651000, 0x652000), (0x7ffc_0000_8000, 0x7ffc00021000)]
        );
        let mut buf = [0u8; 1 << 16];
        assert!(read_self_maps(&mut buf) > 0);
        assert_ne!(callee_saved_registers(), [0; 6]);
        assert_ne!(stack_pointer(), 0);
    }
}
