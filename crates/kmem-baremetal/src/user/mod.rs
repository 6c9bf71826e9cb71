//! Real user mode: ring-3 tasks on kmem-managed page tables.
//!
//! - [`entry`]: `iretq` into ring 3 and the trap path back (a run loop, no per-task kernel
//!   stacks);
//! - [`backend`]: the tasks' address spaces, which are kmem tasks' (kmem's VMAs, page tables,
//!   `handle_mm_fault`, `fork`, `exit_mmap`, reclaim and swap);
//! - [`swap`]: the RAM swap area given to kmem's `swapon`;
//! - [`progs`]: the user test programs (assembly, copied into the tasks' text pages);
//! - this module: tasks, a round-robin scheduler, trap handling and the system calls.
//!
//! # Traps
//! | vector | from ring 3 | handling |
//! |---|---|---|
//! | 14 #PF | CR2, error code | the backend's fault handler (kmem's `handle_mm_fault`); unresolvable: Linux's `segfault at` line (arch/x86/mm/fault.c `show_signal_msg`) and SIGSEGV |
//! | 13 #GP | error code | `traps: comm[pid] general protection fault ip:… sp:… error:…` (arch/x86/kernel/traps.c `show_signal`), SIGSEGV |
//! | 1 #DB | DR6 | SIGTRAP (single step: `TRAP_TRACE`) |
//! | 3 #BP, 0 #DE, 6 #UD, … | | `traps: … trap int3 …`, SIGTRAP / SIGFPE / SIGILL / SIGSEGV |
//! | 0x80 | `int $0x80` | system call |
//!
//! A signal here always has its default action for these signals: the task dies (no handlers,
//! no core dumps); its wait status is the signal number, as `WTERMSIG`.
//!
//! # System calls (`int $0x80`, x86_64 numbers and registers: arch/x86/entry/syscalls/syscall_64.tbl)
//! `write(fd 1|2, buf, len)` (the bytes go to the serial log, prefixed `comm[pid]: `, one line
//! at a time), `sched_yield`, `getpid`, `fork` (copy-on-write), `exit(code)`,
//! `wait4(pid|-1, &status, 0, NULL)` (blocks until a child exits; `-ECHILD` without one). Others
//! return `-ENOSYS`. A bad user pointer gives `-EFAULT` (the task is not killed): the copies
//! are kmem's `copy_from_user`/`copy_to_user`, whose faults go to `handle_mm_fault` and end
//! the copy when unresolvable.
//!
//! # Scheduling
//! Cooperative, round robin: a task runs until it traps into something that ends, blocks or
//! yields it (`sched_yield`, `wait4`, `fork` runs the parent on), as interrupts stay off in
//! ring 3 too (RFLAGS.IF clear, IOPL 0: the kernel has no timer). [`UserKernel::run`] gives up
//! after a budget of traps, so a looping program fails its test instead of hanging the run.

extern crate alloc;

pub mod backend;
pub mod entry;
pub mod progs;
pub mod swap;

use alloc::vec::Vec;
use core::fmt::Write;

use backend::{Backend, CoreBackend};
use entry::UserRegs;
use progs::Prog;

use crate::mm::Kmem;
use crate::{arch, gdt, println};

/// The lowest user address: the start of PML4 slot 1 (slot 0 is the kernel's identity map,
/// copied in while a task runs, see [`kernel_slots`]).
pub const USER_START: u64 = 1 << 39;

/// x86 page-fault error code bits (arch/x86/include/asm/trap_pf.h, `enum x86_pf_error_code`).
pub mod pf {
    /// The page was present (a protection fault).
    pub const PROT: u64 = 1 << 0;
    /// A write.
    pub const WRITE: u64 = 1 << 1;
    /// From user mode.
    pub const USER: u64 = 1 << 2;
    /// An instruction fetch.
    pub const INSTR: u64 = 1 << 4;
}

/// Protection of a mapping (`PROT_READ`, `PROT_WRITE`, `PROT_EXEC`:
/// include/uapi/asm-generic/mman-common.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prot(pub u32);

impl Prot {
    /// `PROT_READ`.
    pub const READ: Prot = Prot(1);
    /// `PROT_WRITE`.
    pub const WRITE: Prot = Prot(2);
    /// `PROT_EXEC`.
    pub const EXEC: Prot = Prot(4);
    /// Read and write.
    pub const RW: Prot = Prot(3);
}

/// Why a fault cannot be resolved: the `si_code` of the SIGSEGV
/// (include/uapi/asm-generic/siginfo.h), or the fault's `VM_FAULT_*` error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segv {
    /// `SEGV_MAPERR`: no mapping at the address.
    MapErr,
    /// `SEGV_ACCERR`: the mapping does not allow the access.
    AccErr,
    /// No memory for a page or a page table (`VM_FAULT_OOM`).
    Oom,
    /// The swap area could not give the page back (`VM_FAULT_SIGBUS`).
    Bus,
}

/// What a resolved fault did (from the vm events kmem's `handle_mm_fault` counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A shared page was copied for the writer (`cow_copy`).
    CowCopy,
    /// A shared page had only this mapper left and became writable in place (`cow_reuse`).
    CowReuse,
    /// The page was read back from swap (`pgmajfault`).
    SwapIn,
    /// Resolved otherwise (zero page, fresh page, spurious).
    Resolved,
}

/// Where program text is loaded (PML4 slot 1 — slot 0 is the kernel's identity map).
pub const TEXT_BASE: u64 = USER_START + 0x40_0000;
/// The top of the user stack (the last page below `TASK_SIZE_MAX`, 47-bit).
pub const STACK_TOP: u64 = 0x0000_7fff_ffff_f000;

/// Linux signal numbers (include/uapi/asm-generic/signal.h).
pub mod sig {
    /// Illegal instruction.
    pub const SIGILL: u32 = 4;
    /// Trace/breakpoint trap.
    pub const SIGTRAP: u32 = 5;
    /// Bus error.
    pub const SIGBUS: u32 = 7;
    /// Floating-point exception.
    pub const SIGFPE: u32 = 8;
    /// Kill.
    pub const SIGKILL: u32 = 9;
    /// Segmentation violation.
    pub const SIGSEGV: u32 = 11;
}

/// Linux errno values (include/uapi/asm-generic/errno-base.h, errno.h).
mod errno {
    pub const ECHILD: i64 = 10;
    pub const EBADF: i64 = 9;
    pub const ENOMEM: i64 = 12;
    pub const EFAULT: i64 = 14;
    pub const EINVAL: i64 = 22;
    pub const ENOSYS: i64 = 38;
}

/// System-call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
mod nr {
    pub const WRITE: u64 = 1;
    pub const SCHED_YIELD: u64 = 24;
    pub const GETPID: u64 = 39;
    pub const FORK: u64 = 57;
    pub const EXIT: u64 = 60;
    pub const WAIT4: u64 = 61;
}

/// How a task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `exit(code)`.
    Code(u8),
    /// Killed by a signal.
    Signal(u32),
}

impl Exit {
    /// The wait status (`WEXITSTATUS` in bits 8..16, or `WTERMSIG` in bits 0..7).
    pub fn wait_status(self) -> u32 {
        match self {
            Exit::Code(c) => u32::from(c) << 8,
            Exit::Signal(s) => s,
        }
    }
}

/// The last fatal fault of a task, for the tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultInfo {
    /// The vector.
    pub vector: u64,
    /// CR2 for a page fault.
    pub addr: u64,
    /// The error code.
    pub error_code: u64,
    /// RIP at the fault.
    pub rip: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Runnable,
    /// In `wait4(pid, status_ptr)`.
    Waiting {
        pid: i64,
        status: u64,
    },
    Zombie(Exit),
}

/// A user task.
pub struct Task<M> {
    /// Process id.
    pub pid: u32,
    /// Parent's pid (0: started by the kernel).
    pub ppid: u32,
    /// Name (`comm`).
    pub comm: &'static str,
    regs: UserRegs,
    mm: Option<M>,
    state: State,
    /// Everything the task wrote to fd 1/2.
    pub output: Vec<u8>,
    line: Vec<u8>,
    /// The fault that killed it, if one did.
    pub fault: Option<FaultInfo>,
    /// The kernel's report line about its death (`segfault at …`, `traps: …`), if any.
    pub report: Line,
}

/// Counters of the user-mode machinery.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Entries into ring 3.
    pub entries: u64,
    /// System calls.
    pub syscalls: u64,
    /// Page faults from ring 3, resolved or not.
    pub page_faults: u64,
    /// Write faults that copied a shared page.
    pub cow_copies: u64,
    /// Write faults that reused a page no longer shared.
    pub cow_reuses: u64,
    /// Faults that read the page back from swap.
    pub major_faults: u64,
    /// Tasks killed by a signal.
    pub kills: u64,
    /// Tasks killed because a fault found no memory.
    pub oom_kills: u64,
}

/// Why [`UserKernel::run`] stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunError {
    /// The trap budget ran out (a task loops).
    Budget,
    /// Every live task waits (cannot happen with a correct `wait4`).
    Deadlock,
}

/// The tasks, on address spaces from backend `B`.
pub struct UserKernel<'k, B: Backend<'k>> {
    k: &'k Kmem,
    /// The address spaces' backend.
    pub b: B,
    tasks: Vec<Task<B::Mm>>,
    kernel_cr3: u64,
    swap: Option<swap::SwapArea<'k>>,
    /// Counters.
    pub stats: Stats,
    /// Everything every task wrote, in order.
    pub console: Vec<u8>,
}

impl<'k, B: Backend<'k>> UserKernel<'k, B> {
    /// No tasks yet.
    pub fn new(k: &'k Kmem, b: B) -> Self {
        UserKernel {
            k,
            b,
            tasks: Vec::new(),
            kernel_cr3: arch::read_cr3(),
            swap: None,
            stats: Stats::default(),
            console: Vec::new(),
        }
    }

    /// Creates a task running `prog` with `args` in `rdi`, `rsi`, `rdx`, a text mapping at
    /// [`TEXT_BASE`], a stack below [`STACK_TOP`] and the extra anonymous `maps` (start, length,
    /// protection). Returns the pid.
    ///
    /// # Errors
    /// A message if memory ran out or a mapping is invalid.
    pub fn spawn(
        &mut self,
        prog: Prog,
        args: [u64; 3],
        maps: &[(u64, u64, Prot)],
    ) -> Result<u32, &'static str> {
        let (mut mm, pid) = self.b.create(prog.comm())?;
        let mut ok = self.b.load(&mut mm, TEXT_BASE, prog.code());
        for &(start, len, prot) in maps {
            ok = ok && self.b.map(&mut mm, start, len, prot);
        }
        if !ok {
            self.b.destroy(mm);
            return Err("invalid mapping or no memory for the program");
        }
        let regs = UserRegs {
            rdi: args[0],
            rsi: args[1],
            rdx: args[2],
            rip: TEXT_BASE,
            cs: u64::from(gdt::USER_CS),
            rflags: 0x2, // IF clear, IOPL 0 (bit 1 is reserved, always 1)
            rsp: STACK_TOP,
            ss: u64::from(gdt::USER_DS),
            ..UserRegs::default()
        };
        self.tasks.push(Task {
            pid,
            ppid: 0,
            comm: prog.comm(),
            regs,
            mm: Some(mm),
            state: State::Runnable,
            output: Vec::new(),
            line: Vec::new(),
            fault: None,
            report: Line::new(),
        });
        Ok(pid)
    }

    fn index(&self, pid: u32) -> Option<usize> {
        self.tasks.iter().position(|t| t.pid == pid)
    }

    /// The task `pid` (live or zombie).
    pub fn task(&self, pid: u32) -> Option<&Task<B::Mm>> {
        self.tasks.iter().find(|t| t.pid == pid)
    }

    /// How `pid` ended, if it has.
    pub fn exit_of(&self, pid: u32) -> Option<Exit> {
        match self.task(pid)?.state {
            State::Zombie(e) => Some(e),
            _ => None,
        }
    }

    /// The address space of a live task.
    pub fn mm_of(&self, pid: u32) -> Option<&B::Mm> {
        self.task(pid)?.mm.as_ref()
    }

    /// The resident pages of a live task.
    pub fn rss_of(&self, pid: u32) -> Option<u64> {
        self.mm_of(pid).map(|m| self.b.rss(m))
    }

    /// Live (not zombie) tasks.
    pub fn live(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| !matches!(t.state, State::Zombie(_)))
            .count()
    }

    /// Kills `pid` with `signal` (the kernel's `kill`): its memory is freed at once.
    pub fn kill(&mut self, pid: u32, signal: u32) -> bool {
        match self.index(pid) {
            Some(i) if !matches!(self.tasks[i].state, State::Zombie(_)) => {
                self.end_task(i, Exit::Signal(signal));
                true
            }
            _ => false,
        }
    }

    /// Removes every zombie; kills and removes live tasks (test teardown).
    pub fn reap_all(&mut self) {
        for i in 0..self.tasks.len() {
            if !matches!(self.tasks[i].state, State::Zombie(_)) {
                self.end_task(i, Exit::Signal(sig::SIGKILL));
            }
        }
        self.tasks.clear();
    }

    /// `do_exit`: frees the address space, flushes output, makes the task a zombie and wakes
    /// a parent waiting for it.
    fn end_task(&mut self, i: usize, how: Exit) {
        if let Some(mm) = self.tasks[i].mm.take() {
            self.b.destroy(mm);
        }
        if !self.tasks[i].line.is_empty() {
            self.flush_line(i);
        }
        if matches!(how, Exit::Signal(_)) {
            self.stats.kills += 1;
        }
        self.tasks[i].state = State::Zombie(how);
    }

    fn flush_line(&mut self, i: usize) {
        let t = &mut self.tasks[i];
        let text = core::str::from_utf8(&t.line).unwrap_or("<not UTF-8>");
        println!("{}[{}]: {}", t.comm, t.pid, text.trim_end_matches('\n'));
        t.line.clear();
    }

    /// Runs the tasks until none is runnable (all ended), at most `budget` traps.
    ///
    /// # Errors
    /// [`RunError`].
    pub fn run(&mut self, budget: u64) -> Result<(), RunError> {
        let mut traps = 0u64;
        let mut cur = 0usize;
        loop {
            self.complete_waits();
            let n = self.tasks.len();
            let Some(i) = (0..n)
                .map(|d| (cur + d) % n.max(1))
                .find(|&i| i < n && self.tasks[i].state == State::Runnable)
            else {
                return if self
                    .tasks
                    .iter()
                    .any(|t| matches!(t.state, State::Waiting { .. }))
                {
                    Err(RunError::Deadlock)
                } else {
                    Ok(())
                };
            };
            // Run the task until it stops being the one to run. Reaping removes tasks from
            // the vector, so the task is followed by pid, not index.
            let pid = self.tasks[i].pid;
            loop {
                if traps >= budget {
                    return Err(RunError::Budget);
                }
                traps += 1;
                let i = self.index(pid).expect("a running task is not reaped");
                if let Next::Other = self.enter(i) {
                    cur = self.index(pid).map_or(0, |i| i + 1);
                    break;
                }
            }
        }
    }

    /// Enters task `i` once and handles the trap that brings it back.
    fn enter(&mut self, i: usize) -> Next {
        let Some(mm) = self.tasks[i].mm.as_ref() else {
            return Next::Other;
        };
        let root = self.b.root(mm);
        kernel_slots(root, true);
        self.stats.entries += 1;
        // SAFETY: `root` is this task's PML4, whose kernel slots were just copied from the
        // kernel's table, so the kernel stays mapped; the registers carry the user selectors and
        // RFLAGS with IF and IOPL clear (spawn/fork build them so; user code cannot set IF or
        // IOPL with IOPL 0, and `iretq` from ring 3 ignores such changes).
        let vector = unsafe {
            entry::write_cr3(root);
            let v = entry::run_user(&mut self.tasks[i].regs);
            entry::write_cr3(self.kernel_cr3);
            v
        };
        // Between traps the task's table holds only its own entries (kmem's page-table code
        // never sees the kernel's, and never frees them).
        kernel_slots(root, false);
        let cr2 = entry::trap_cr2();
        match vector {
            14 => self.page_fault(i, cr2),
            0x80 => self.syscall(i),
            _ => {
                self.trap_signal(i, vector);
                Next::Other
            }
        }
    }

    fn page_fault(&mut self, i: usize, addr: u64) -> Next {
        self.stats.page_faults += 1;
        let err = self.tasks[i].regs.error_code;
        let t = &mut self.tasks[i];
        let mm = t.mm.as_mut().expect("running task has an mm");
        match self.b.fault(mm, addr, err) {
            Ok(kind) => {
                match kind {
                    FaultKind::CowCopy => self.stats.cow_copies += 1,
                    FaultKind::CowReuse => self.stats.cow_reuses += 1,
                    FaultKind::SwapIn => self.stats.major_faults += 1,
                    FaultKind::Resolved => {}
                }
                Next::Same
            }
            Err(Segv::Oom) => {
                // pagefault_out_of_memory: the faulting task is killed, as
                // oom_kill_allocating_task does (mm/oom_kill.c), with Linux's report.
                let o = self.b.oom_info(mm);
                let mut line = Line::new();
                let _ = write!(
                    line,
                    "Out of memory (oom_kill_allocating_task): Killed process {} ({}) total-vm:{}kB, anon-rss:{}kB, file-rss:{}kB, shmem-rss:{}kB, UID:0 pgtables:{}kB oom_score_adj:0",
                    t.pid, t.comm, o.total_vm_kb, o.anon_rss_kb, o.file_rss_kb, o.shmem_rss_kb, o.pgtables_kb
                );
                println!("{}", line.as_str());
                t.report = line;
                self.stats.oom_kills += 1;
                self.end_task(i, Exit::Signal(sig::SIGKILL));
                Next::Other
            }
            Err(Segv::Bus) => {
                println!("{}[{}]: swap-in failed at {addr:#x}: SIGBUS", t.comm, t.pid);
                self.end_task(i, Exit::Signal(sig::SIGBUS));
                Next::Other
            }
            Err(_) => {
                self.segfault(i, addr, err);
                Next::Other
            }
        }
    }

    /// Linux's `show_signal_msg` (arch/x86/mm/fault.c: the 6.x line, with `likely on CPU`;
    /// `print_vma_addr` adds nothing for anonymous text) and `show_opcodes`' `Code:` line,
    /// then the SIGSEGV.
    fn segfault(&mut self, i: usize, addr: u64, err: u64) {
        let code = self.code_line(i);
        let t = &mut self.tasks[i];
        let mut line = Line::new();
        let _ = write!(
            line,
            "{}[{}]: segfault at {addr:x} ip {:016x} sp {:016x} error {err:x} likely on CPU 0 (core 0, socket 0)",
            t.comm, t.pid, t.regs.rip, t.regs.rsp
        );
        println!("{}", line.as_str());
        println!("{}", code.as_str());
        t.report = line;
        t.fault = Some(FaultInfo {
            vector: 14,
            addr,
            error_code: err,
            rip: t.regs.rip,
        });
        self.end_task(i, Exit::Signal(sig::SIGSEGV));
    }

    /// `show_opcodes` (arch/x86/kernel/dumpstack.c): the 42 bytes before the faulting
    /// instruction, its first byte in `<>`, the 21 after — read without faulting anything in.
    fn code_line(&self, i: usize) -> Line {
        const PROLOGUE: u64 = 42;
        const EPILOGUE: u64 = 21;
        let t = &self.tasks[i];
        let start = t.regs.rip.wrapping_sub(PROLOGUE);
        let mut bytes = [0u8; (PROLOGUE + 1 + EPILOGUE) as usize];
        let readable = t.mm.as_ref().is_some_and(|mm| {
            bytes.iter_mut().enumerate().all(|(n, b)| {
                let a = start.wrapping_add(n as u64);
                self.b.translate(mm, a, false).is_some_and(|pa| {
                    // SAFETY: `pa` is a byte of a present user page of the task, in RAM
                    // reached through the direct map.
                    *b = unsafe { ((crate::boot::DIRECT_MAP_BASE + pa) as *const u8).read() };
                    true
                })
            })
        });
        let mut line = Line::new();
        if readable {
            let _ = write!(line, "Code:");
            for (n, b) in bytes.iter().enumerate() {
                if n as u64 == PROLOGUE {
                    let _ = write!(line, " <{b:02x}>");
                } else {
                    let _ = write!(line, " {b:02x}");
                }
            }
        } else {
            let _ = write!(line, "Code: Unable to access opcode bytes at 0x{start:x}.");
        }
        line
    }

    /// Exceptions other than #PF: the task dies of the signal Linux sends for it.
    fn trap_signal(&mut self, i: usize, vector: u64) {
        let (signal, desc) = match vector {
            0 => (sig::SIGFPE, "trap divide error"),
            1 => (sig::SIGTRAP, ""),
            3 => (sig::SIGTRAP, "trap int3"),
            6 => (sig::SIGILL, "trap invalid opcode"),
            13 => (sig::SIGSEGV, "general protection fault"),
            17 => (sig::SIGBUS, "trap alignment check"),
            _ => (sig::SIGSEGV, "trap"),
        };
        let t = &mut self.tasks[i];
        t.fault = Some(FaultInfo {
            vector,
            addr: 0,
            error_code: t.regs.error_code,
            rip: t.regs.rip,
        });
        if !desc.is_empty() {
            // arch/x86/kernel/traps.c show_signal, with pr_fmt "traps: ".
            let mut line = Line::new();
            let _ = write!(
                line,
                "traps: {}[{}] {desc} ip:{:x} sp:{:x} error:{:x}",
                t.comm, t.pid, t.regs.rip, t.regs.rsp, t.regs.error_code
            );
            println!("{}", line.as_str());
            t.report = line;
        }
        self.end_task(i, Exit::Signal(signal));
    }

    fn syscall(&mut self, i: usize) -> Next {
        self.stats.syscalls += 1;
        let r = self.tasks[i].regs;
        let me = self.tasks[i].pid;
        let (ret, next) = match r.rax {
            nr::WRITE => (self.sys_write(i, r.rdi, r.rsi, r.rdx), Next::Same),
            nr::SCHED_YIELD => (0, Next::Other),
            nr::GETPID => (i64::from(self.tasks[i].pid), Next::Same),
            nr::FORK => (self.sys_fork(i), Next::Same),
            nr::EXIT => {
                self.end_task(i, Exit::Code(r.rdi as u8));
                return Next::Other;
            }
            nr::WAIT4 => match self.sys_wait4(i, r.rdi as i64, r.rsi) {
                Some(ret) => (ret, Next::Same),
                None => return Next::Other, // blocked; completed by complete_waits
            },
            _ => (-errno::ENOSYS, Next::Same),
        };
        // wait4 may have reaped a child listed before the caller: find the caller again.
        let i = self.index(me).expect("the caller is not reaped");
        self.tasks[i].regs.rax = ret as u64;
        next
    }

    /// `copy_from_user` for task `i` (kmem's: faults resolved by `handle_mm_fault` in kernel
    /// mode, an unresolvable one ends the copy); `false` on a bad address (`-EFAULT`; the
    /// task is not killed).
    fn copy_from_user(&mut self, i: usize, addr: u64, buf: &mut [u8]) -> bool {
        let Some(mm) = self.tasks[i].mm.as_mut() else {
            return false;
        };
        self.b.copy_from_user(mm, addr, buf) == 0
    }

    /// `copy_to_user` for task `i` (demand and COW faults as a kernel-mode write); `false`
    /// on a bad address.
    fn copy_to_user(&mut self, i: usize, addr: u64, data: &[u8]) -> bool {
        let Some(mm) = self.tasks[i].mm.as_mut() else {
            return false;
        };
        self.b.copy_to_user(mm, addr, data) == 0
    }

    fn sys_write(&mut self, i: usize, fd: u64, buf: u64, len: u64) -> i64 {
        if fd != 1 && fd != 2 {
            return -errno::EBADF;
        }
        if len > 1 << 20 {
            return -errno::EINVAL;
        }
        let mut data = alloc::vec![0u8; len as usize];
        if !self.copy_from_user(i, buf, &mut data) {
            return -errno::EFAULT;
        }
        self.tasks[i].output.extend_from_slice(&data);
        self.console.extend_from_slice(&data);
        for &b in &data {
            self.tasks[i].line.push(b);
            if b == b'\n' {
                self.flush_line(i);
            }
        }
        len as i64
    }

    fn sys_fork(&mut self, i: usize) -> i64 {
        let comm = self.tasks[i].comm;
        let mm = self.tasks[i].mm.as_mut().expect("live task");
        let Some((child_mm, pid)) = self.b.fork(mm, comm) else {
            return -errno::ENOMEM;
        };
        let parent = &self.tasks[i];
        let mut regs = parent.regs;
        regs.rax = 0;
        let child = Task {
            pid,
            ppid: parent.pid,
            comm: parent.comm,
            regs,
            mm: Some(child_mm),
            state: State::Runnable,
            output: Vec::new(),
            line: Vec::new(),
            fault: None,
            report: Line::new(),
        };
        self.tasks.push(child);
        i64::from(pid)
    }

    /// `wait4`: `Some(result)` at once, or `None` when the caller blocks.
    fn sys_wait4(&mut self, i: usize, pid: i64, status: u64) -> Option<i64> {
        let me = self.tasks[i].pid;
        let matches = |t: &Task<B::Mm>| t.ppid == me && (pid == -1 || i64::from(t.pid) == pid);
        if !self.tasks.iter().any(matches) {
            return Some(-errno::ECHILD);
        }
        if let Some(ret) = self.reap_child(i, pid, status) {
            return Some(ret);
        }
        self.tasks[i].state = State::Waiting { pid, status };
        None
    }

    /// Reaps a zombie child of task `i` matching `pid` (writing its status), if there is one.
    fn reap_child(&mut self, i: usize, pid: i64, status: u64) -> Option<i64> {
        let me = self.tasks[i].pid;
        let z = self.tasks.iter().position(|t| {
            t.ppid == me
                && (pid == -1 || i64::from(t.pid) == pid)
                && matches!(t.state, State::Zombie(_))
        })?;
        let State::Zombie(how) = self.tasks[z].state else {
            return None;
        };
        let child = i64::from(self.tasks[z].pid);
        let ret = if status != 0 && !self.copy_to_user(i, status, &how.wait_status().to_le_bytes())
        {
            -errno::EFAULT
        } else {
            child
        };
        self.tasks.remove(z);
        Some(ret)
    }

    /// Completes the `wait4` of every waiting task whose child has exited.
    fn complete_waits(&mut self) {
        let mut i = 0;
        while i < self.tasks.len() {
            if let State::Waiting { pid, status } = self.tasks[i].state {
                // `reap_child` removes a task, which may shift the waiter's index.
                let me = self.tasks[i].pid;
                if let Some(ret) = self.reap_child(i, pid, status) {
                    let j = self.index(me).expect("the waiter is not reaped");
                    self.tasks[j].regs.rax = ret as u64;
                    self.tasks[j].state = State::Runnable;
                    i = 0;
                    continue;
                }
            }
            i += 1;
        }
    }
}

impl<'k, B: Backend<'k>> Drop for UserKernel<'k, B> {
    fn drop(&mut self) {
        self.reap_all();
        if let Some(Err(e)) = self.swap.take().map(swap::SwapArea::destroy) {
            println!("swapoff {}: {e}", swap::SWAP_NAME);
        }
    }
}

impl<'k> UserKernel<'k, CoreBackend<'k>> {
    /// `swapon` of a RAM swap area of `pages` pages (kmem's reclaim swaps the tasks' pages
    /// out to it below the low watermark).
    ///
    /// # Errors
    /// When the area cannot be allocated, kmem refuses it, or one is already on.
    pub fn swapon(&mut self, pages: usize) -> Result<(), &'static str> {
        if self.swap.is_some() {
            return Err("swap area already on");
        }
        self.swap = Some(swap::SwapArea::new(self.k, pages)?);
        Ok(())
    }

    /// The swap area, if on.
    pub fn swap(&self) -> Option<&swap::SwapArea<'k>> {
        self.swap.as_ref()
    }

    /// `swapoff`, after every task is gone.
    ///
    /// # Errors
    /// kmem's `swapoff` failed.
    pub fn swapoff(&mut self) -> Result<(), &'static str> {
        self.reap_all();
        self.swap.take().map_or(Ok(()), swap::SwapArea::destroy)
    }
}

/// What to run after a trap.
enum Next {
    /// Resume the same task.
    Same,
    /// Pick the next runnable task.
    Other,
}

/// Copies the kernel's PML4 slots (0: the identity map the kernel runs in; 256..512: the
/// direct map, vmalloc space) into the user table at `root` (`on`), or clears them (`!on`).
fn kernel_slots(root: u64, on: bool) {
    let kernel = arch::read_cr3() & 0x000f_ffff_ffff_f000;
    for i in core::iter::once(0).chain(256..512) {
        let src = (crate::boot::DIRECT_MAP_BASE + kernel + 8 * i) as *const u64;
        let dst = (crate::boot::DIRECT_MAP_BASE + root + 8 * i) as *mut u64;
        // SAFETY: both are PML4 pages (the kernel's in CR3, and a task's from kmem's page
        // allocator), read and written through the direct map; slots 0 and 256.. are never
        // user slots (user space is [USER_START, USER_END)), so no page-table code of the
        // task's owns them, and the task's table is only loaded between the copy and the
        // clear.
        unsafe { dst.write_volatile(if on { src.read_volatile() } else { 0 }) };
    }
}

/// A line of text in a fixed buffer: the kill reports are made when memory may be exhausted,
/// so they must not allocate. Longer text is cut at a character boundary.
#[derive(Clone, Copy)]
pub struct Line {
    buf: [u8; Line::CAPACITY],
    len: usize,
}

impl Line {
    /// Bytes kept.
    pub const CAPACITY: usize = 320;

    /// An empty line.
    pub const fn new() -> Line {
        Line {
            buf: [0; Line::CAPACITY],
            len: 0,
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // `write_str` only stores whole UTF-8 characters.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for c in s.chars() {
            let n = c.len_utf8();
            if self.len + n > Line::CAPACITY {
                break;
            }
            c.encode_utf8(&mut self.buf[self.len..self.len + n]);
            self.len += n;
        }
        Ok(())
    }
}

impl core::fmt::Debug for Line {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_str(), f)
    }
}
