//! User memory accesses as the CPU makes them (arch/x86/mm/fault.c): `upeek`/`upoke`/
//! `umemset` read and write a task's memory through its page table, and a missing or
//! insufficient translation raises a page fault that `handle_mm_fault` resolves, after
//! which the access is retried, as on hardware.
//!
//! A fault the kernel cannot resolve ends the task:
//! - `VM_FAULT_SIGSEGV` (no mapping, or one that forbids the access): `show_signal_msg`'s
//!   line at `KERN_INFO`,
//!   `NAME[PID]: segfault at ADDR ip IP sp SP error CODE` (the address `%lx`, ip and sp as
//!   `%px`: zero-padded to the word's width), then `show_opcodes`' line
//!   `Code: Unable to access opcode bytes at 0xIP-42.`, and the task dies of SIGSEGV;
//! - `VM_FAULT_OOM`: `pagefault_out_of_memory` (here: the faulting task is killed with
//!   the OOM report; the OOM killer may pick another victim instead).
//!
//! kmem runs no user instructions on the hosted platform, so the registers in the report
//! are the ones a process of kmem's layout would have at its entry point: `ip` is
//! `ELF_ET_DYN_BASE` (where the program kmem does not load would start) and `sp` is
//! `mm->start_stack`. The error code is the hardware's: `X86_PF_USER` (4), plus
//! `X86_PF_WRITE` (2) for a write, plus `X86_PF_PROT` (1) when the page was present (a
//! protection fault rather than a missing page).
//!
//! The accessed and dirty bits of the PTE are set on each access, as the MMU sets them.
//!
//! # System calls: `copy_from_user`, `copy_to_user`
//! A system call reaches user memory from kernel mode. Its page faults are resolved by
//! `handle_mm_fault` as well, but one that cannot be resolved is not a signal: the exception
//! table's fixup ends the copy (arch/x86/mm/fault.c `kernelmode_fixup_or_oops`, for
//! SIGSEGV, SIGBUS and `VM_FAULT_OOM` alike), and the copy returns the number of bytes it
//! did not copy, which the system call turns into `-EFAULT` (include/linux/uaccess.h). No
//! report is printed and the task lives on. A range that is not entirely below `TASK_SIZE`
//! (`access_ok`) is refused before anything is touched; `copy_from_user` zeroes the part of
//! the destination it could not fill (lib/usercopy.c `_copy_from_user`).
//!
//! # Locking
//! `tasklist_lock` for the whole access (the task and its memory cannot go meanwhile).

use crate::errno::Errno;
use crate::memory::{FaultFlags, MemoryLayer, VmFault};
use crate::pgtable::PteFlags;
use crate::platform::{LogLevel, Platform};
use crate::rmap::pte_phys;
use crate::task::TaskLayer;
use crate::vma::{MmStruct, PAGE};

/// `X86_PF_PROT`.
pub const X86_PF_PROT: u64 = 1;
/// `X86_PF_WRITE`.
pub const X86_PF_WRITE: u64 = 2;
/// `X86_PF_USER`.
pub const X86_PF_USER: u64 = 4;

/// `PROLOGUE_SIZE` of `show_opcodes` (arch/x86/kernel/dumpstack.c).
const OPCODE_PROLOGUE: u64 = 42;

/// Why a user access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UaccessError {
    /// No such task.
    NoTask,
    /// The task got SIGSEGV at this address and is gone.
    Segfault(u64),
    /// The task was killed by the OOM path and is gone.
    OutOfMemory,
    /// SIGBUS (a swap entry with no swap layer, a page beyond a shmem object).
    Bus(u64),
}

impl UaccessError {
    /// The error number a system call would report for it.
    pub fn errno(self) -> Errno {
        match self {
            UaccessError::NoTask => Errno::ESRCH,
            UaccessError::Segfault(_) | UaccessError::Bus(_) => Errno::EFAULT,
            UaccessError::OutOfMemory => Errno::ENOMEM,
        }
    }
}

impl core::fmt::Display for UaccessError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UaccessError::NoTask => f.write_str("No such process"),
            UaccessError::Segfault(a) => write!(f, "segmentation fault at {a:#x}"),
            UaccessError::OutOfMemory => f.write_str("killed: out of memory"),
            UaccessError::Bus(a) => write!(f, "bus error at {a:#x}"),
        }
    }
}

/// One page of a user access, resolved: the real address of the byte at `addr`.
fn translate<P: Platform>(
    l: &MemoryLayer<P>,
    mm: &mut MmStruct,
    addr: u64,
    write: bool,
) -> Result<*mut u8, u64> {
    let Some(pt) = mm.pgd.as_mut() else {
        return Err(0);
    };
    let mem = l.pt_mem();
    let pte = pt.pte_get(mem, addr);
    let present = pte & PteFlags::PRESENT.0 != 0;
    let ok = present && pte & PteFlags::USER.0 != 0 && (!write || pte & PteFlags::RW.0 != 0);
    if !ok {
        let mut code = X86_PF_USER;
        if write {
            code |= X86_PF_WRITE;
        }
        if present {
            code |= X86_PF_PROT;
        }
        return Err(code);
    }
    let mut n = pte | PteFlags::ACCESSED.0;
    if write {
        n |= PteFlags::DIRTY.0;
    }
    if n != pte {
        let _ = pt.pte_set(mem, addr, n);
    }
    let pa = pte_phys(pt.format(), pte).as_u64() + (addr & (PAGE - 1));
    // SAFETY: a user page of this task (present in its table), RAM of this machine.
    Ok(unsafe { l.phys_to_real(crate::addr::PhysAddr::new(pa)) })
}

/// Who makes a user access.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The task, in user mode: an unresolved fault is a signal that ends it.
    User,
    /// The kernel, for a system call (`copy_from_user`): an unresolved fault ends the copy.
    Kernel,
}

impl<P: Platform> TaskLayer<P> {
    /// Accesses `len` bytes at `addr` in task `pid`, calling `f(real_ptr, offset, n)` for
    /// each piece inside one page, faulting pages in as the CPU would.
    ///
    /// # Errors
    /// See [`UaccessError`]; the bytes before the fault were accessed. In [`Mode::User`] the
    /// task is killed; in [`Mode::Kernel`] a fault that cannot be resolved gives
    /// `Segfault(addr)` and nothing else happens.
    fn uaccess(
        &self,
        pid: i32,
        addr: u64,
        len: u64,
        write: bool,
        mode: Mode,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> Result<(), UaccessError> {
        let mut t = self.tasklist();
        let Some(task) = t.find(pid) else {
            return Err(UaccessError::NoTask);
        };
        let mmp = task.mm;
        // SAFETY: the task's mm is live under the lock, which hands out this one `&mut`.
        let mm = unsafe { &mut *mmp.as_ptr() };
        let mut done = 0u64;
        while done < len {
            let Some(va) = addr.checked_add(done) else {
                drop(t);
                return Err(UaccessError::Segfault(u64::MAX));
            };
            let n = (PAGE - (va & (PAGE - 1))).min(len - done);
            let mut tries = 0;
            let p = loop {
                match translate(&self.mem, mm, va, write) {
                    Ok(p) => break p,
                    Err(code) => {
                        tries += 1;
                        let fl = FaultFlags {
                            write,
                            exec: false,
                            user: true,
                        };
                        let r = if va >= mm.task_size {
                            VmFault::SegvMapErr
                        } else if tries > 3 {
                            VmFault::Sigbus
                        } else {
                            self.mem.handle_mm_fault(mm, va, fl)
                        };
                        if mode == Mode::Kernel && r != VmFault::Done {
                            // kernelmode_fixup_or_oops: the exception table ends the copy.
                            return Err(UaccessError::Segfault(va));
                        }
                        match r {
                            VmFault::Done => continue,
                            VmFault::SegvMapErr | VmFault::SegvAccErr => {
                                self.segfault(&mut t, pid, mm, va, code);
                                return Err(UaccessError::Segfault(va));
                            }
                            VmFault::Oom => {
                                // pagefault_out_of_memory → out_of_memory: the task with
                                // the highest oom_badness dies; if it was another one, the
                                // fault is retried with the memory it gave back.
                                match self.out_of_memory(&mut t, pid) {
                                    Some(v) if v != pid => {
                                        tries = 0;
                                        continue;
                                    }
                                    Some(_) => {}
                                    None => self.oom_kill_current(&mut t, pid),
                                }
                                return Err(UaccessError::OutOfMemory);
                            }
                            VmFault::Sigbus => {
                                self.printk(
                                    LogLevel::Info,
                                    format_args!(
                                        "{}[{pid}]: bus error at {va:x}",
                                        task_comm(&t, pid).as_str()
                                    ),
                                );
                                let _ = self.exit_locked(&mut t, pid);
                                return Err(UaccessError::Bus(va));
                            }
                        }
                    }
                }
            };
            f(p, done as usize, n as usize);
            done += n;
        }
        Ok(())
    }

    /// `show_signal_msg` + `force_sig_fault(SIGSEGV)`: the report, and the task dies.
    fn segfault(
        &self,
        t: &mut crate::task::TaskTable,
        pid: i32,
        mm: &MmStruct,
        addr: u64,
        code: u64,
    ) {
        let ip = crate::vma::elf_et_dyn_base(mm.arch, mm.task_size);
        let sp = mm.start_stack;
        let w = if mm.arch == crate::arch::Arch::X86_64 {
            16
        } else {
            8
        };
        let name = task_comm(t, pid);
        let comm = name.as_str();
        // task_pid_nr(tsk) > 1 ? KERN_INFO : KERN_EMERG
        let lvl = if pid > 1 {
            LogLevel::Info
        } else {
            LogLevel::Emerg
        };
        self.printk(
            lvl,
            format_args!(
                "{comm}[{pid}]: segfault at {addr:x} ip {ip:0w$x} sp {sp:0w$x} error {code:x}"
            ),
        );
        self.printk(
            lvl,
            format_args!(
                "Code: Unable to access opcode bytes at 0x{:x}.",
                ip - OPCODE_PROLOGUE
            ),
        );
        let _ = self.exit_locked(t, pid);
    }

    /// Reads `buf.len()` bytes at `addr` of task `pid`.
    ///
    /// # Errors
    /// See [`UaccessError`].
    pub fn uread(&self, pid: i32, addr: u64, buf: &mut [u8]) -> Result<(), UaccessError> {
        self.uaccess(
            pid,
            addr,
            buf.len() as u64,
            false,
            Mode::User,
            |p, off, n| {
                // SAFETY: `p` points at `n` bytes of a user page held under the lock; `buf`
                // has room for them at `off`.
                unsafe { core::ptr::copy_nonoverlapping(p, buf[off..].as_mut_ptr(), n) };
            },
        )
    }

    /// Writes `buf` at `addr` of task `pid`.
    ///
    /// # Errors
    /// See [`UaccessError`].
    pub fn uwrite(&self, pid: i32, addr: u64, buf: &[u8]) -> Result<(), UaccessError> {
        self.uaccess(
            pid,
            addr,
            buf.len() as u64,
            true,
            Mode::User,
            |p, off, n| {
                // SAFETY: `p` points at `n` bytes of a user page that `uaccess` faulted in writable
                // and holds under the lock, and `buf[off..]` has at least `n` bytes (`uaccess`
                // splits `buf.len()` into these chunks); a user page is never inside `buf`, so the
                // two do not overlap.
                unsafe { core::ptr::copy_nonoverlapping(buf[off..].as_ptr(), p, n) };
            },
        )
    }

    /// `upeek8/16/32/64`: reads a `size`-byte little-endian value (size 1, 2, 4 or 8).
    ///
    /// # Errors
    /// See [`UaccessError`]; `size` must be 1, 2, 4 or 8 (else `NoTask`-free `Bus(addr)`).
    pub fn upeek(&self, pid: i32, addr: u64, size: usize) -> Result<u64, UaccessError> {
        if !matches!(size, 1 | 2 | 4 | 8) {
            return Err(UaccessError::Bus(addr));
        }
        let mut b = [0u8; 8];
        self.uread(pid, addr, &mut b[..size])?;
        Ok(u64::from_le_bytes(b))
    }

    /// `upoke8/16/32/64`: writes the low `size` bytes of `v`, little-endian.
    ///
    /// # Errors
    /// As [`Self::upeek`].
    pub fn upoke(&self, pid: i32, addr: u64, size: usize, v: u64) -> Result<(), UaccessError> {
        if !matches!(size, 1 | 2 | 4 | 8) {
            return Err(UaccessError::Bus(addr));
        }
        self.uwrite(pid, addr, &v.to_le_bytes()[..size])
    }

    /// `umemset`: fills `len` bytes at `addr` with `byte`.
    ///
    /// # Errors
    /// See [`UaccessError`].
    pub fn umemset(&self, pid: i32, addr: u64, byte: u8, len: u64) -> Result<(), UaccessError> {
        self.uaccess(pid, addr, len, true, Mode::User, |p, _, n| {
            // SAFETY: `p` points at `n` bytes of a user page that `uaccess` faulted in writable and
            // holds under the lock for this call; no Rust reference into that page exists.
            unsafe { core::ptr::write_bytes(p, byte, n) };
        })
    }
}

impl<P: Platform> TaskLayer<P> {
    /// `copy_from_user`: copies `to.len()` bytes at user address `from` of task `pid` into
    /// `to`, faulting pages in; returns the number of bytes not copied (0: all), whose tail
    /// of `to` is zeroed. A system call returns `-EFAULT` when it is not 0. The task is never
    /// killed.
    ///
    /// # Errors
    /// `ESRCH`: no task `pid`.
    pub fn copy_from_user(&self, pid: i32, to: &mut [u8], from: u64) -> Result<usize, Errno> {
        let len = to.len();
        let left = self.user_copy(pid, from, len, false, |p, off, n| {
            // SAFETY: `p` points at `n` bytes of a user page held under the lock; `to` has
            // room for them at `off` (`uaccess` splits `to.len()` into these pieces), and a
            // user page is never inside `to`.
            unsafe { core::ptr::copy_nonoverlapping(p, to[off..].as_mut_ptr(), n) };
        })?;
        // lib/usercopy.c `_copy_from_user`: the part not copied is zeroed.
        to[len - left..].fill(0);
        Ok(left)
    }

    /// `copy_to_user`: copies `from` to user address `to` of task `pid`, faulting pages in
    /// (a COW copy where the page is shared); returns the number of bytes not copied (0:
    /// all). The task is never killed.
    ///
    /// # Errors
    /// `ESRCH`: no task `pid`.
    pub fn copy_to_user(&self, pid: i32, to: u64, from: &[u8]) -> Result<usize, Errno> {
        self.user_copy(pid, to, from.len(), true, |p, off, n| {
            // SAFETY: `p` points at `n` writable bytes of a user page held under the lock
            // (COW already broken); `from` has them at `off`, and a user page is never inside
            // `from`.
            unsafe { core::ptr::copy_nonoverlapping(from[off..].as_ptr(), p, n) };
        })
    }

    /// The common part of `copy_from_user` and `copy_to_user`: `access_ok`, then the access
    /// of `len` bytes at `addr` in kernel mode, `f(user_ptr, offset, n)` for each piece.
    /// Returns the number of bytes not reached (0: all).
    ///
    /// # Errors
    /// `ESRCH`: no task `pid`.
    fn user_copy(
        &self,
        pid: i32,
        addr: u64,
        len: usize,
        write: bool,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> Result<usize, Errno> {
        if !self.access_ok(pid, addr, len)? {
            return Ok(len);
        }
        let mut done = 0usize;
        let r = self.uaccess(pid, addr, len as u64, write, Mode::Kernel, |p, off, n| {
            f(p, off, n);
            done = off + n;
        });
        match r {
            Ok(()) => Ok(0),
            Err(UaccessError::NoTask) => Err(Errno::ESRCH),
            Err(_) => Ok(len - done),
        }
    }

    /// `access_ok`: the range lies below the task's `TASK_SIZE`.
    fn access_ok(&self, pid: i32, addr: u64, len: usize) -> Result<bool, Errno> {
        let size = self.with_task(pid, |t| t.mm.task_size)?;
        Ok(addr.checked_add(len as u64).is_some_and(|end| end <= size))
    }
}

fn task_comm(t: &crate::task::TaskTable, pid: i32) -> crate::task::heapless_name::Name {
    crate::task::heapless_name::Name::from(t.find(pid).map_or("?", |x| x.comm()))
}
