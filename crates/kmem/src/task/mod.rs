//! Tasks (include/linux/sched.h `task_struct`, kernel/fork.c, kernel/exit.c,
//! kernel/signal.c): processes with a pid, a name and an address space, and the memory
//! system calls made on their behalf.
//!
//! kmem has no scheduler and runs no user code (except ring 3 on bare metal): a task is an
//! address space with an identity, driven from outside — the shell's `spawn`, `fork`,
//! `kill`, `mmap`, `upoke`… A task made by [`TaskLayer::spawn`] starts as a process does
//! after `execve` of a program kmem does not load: its only mapping is the initial stack
//! (`[stack]`, 132 KiB at the top of the space); the heap (`brk`) starts empty at
//! `ELF_ET_DYN_BASE + 0x5000` (where a small PIE's `.bss` would end, with randomization off).
//! Pids count up from 1 (`alloc_pid`, cyclic up to `pid_max` 32768, skipping pids in use).
//! Tasks that exit are reaped at once (no zombies: kmem has no `wait`).
//!
//! # Locking
//! `tasklist_lock` ([`TaskLayer`]'s table) is held around every operation on a task and its
//! memory: it stands for `tasklist_lock`, each mm's `mmap_lock` (write), its page table lock
//! and the anon_vma locks at once. Nothing of the layers below calls up into it; page
//! allocation happens under it (rank in docs/LOCKING.md).

use core::ptr::NonNull;

mod ipc;

use crate::errno::Errno;
use crate::locking::{Lock, LockGuard, TASKLIST_LOCK};
use crate::memory::MemoryLayer;
use crate::platform::{LogLevel, Platform};
use crate::vma::{MmStruct, VmBacking, MAP_ANONYMOUS, PAGE};

mod reclaim;

/// `TASK_COMM_LEN`.
pub const TASK_COMM_LEN: usize = 16;
/// `PID_MAX_DEFAULT`.
pub const PID_MAX: i32 = 32768;
/// `SIGKILL`.
pub const SIGKILL: i32 = 9;
/// `SIGSEGV`.
pub const SIGSEGV: i32 = 11;
/// `SIGTERM`.
pub const SIGTERM: i32 = 15;
/// `_NSIG`.
pub const NSIG: i32 = 64;

/// `struct task_struct`: the parts kmem has.
pub struct TaskStruct {
    /// `pid`.
    pub pid: i32,
    /// `ppid` (0 for a spawned task).
    pub ppid: i32,
    comm: [u8; TASK_COMM_LEN],
    comm_len: u8,
    /// `mm`.
    pub(crate) mm: NonNull<MmStruct>,
    /// `signal->oom_score_adj`.
    pub oom_score_adj: i16,
    /// The descriptor table: shmem inode number + 1 per descriptor, 0 for a free one
    /// (`FDSize` 64; 0, 1 and 2 are taken by the standard streams, as in any process).
    pub(crate) fds: [u64; NR_OPEN],
    next: Option<NonNull<TaskStruct>>,
}

/// Descriptors per task (`NR_OPEN_DEFAULT` on 64-bit: `FDSize: 64`).
pub const NR_OPEN: usize = 64;

impl TaskStruct {
    /// `comm`: the name, at most 15 bytes (`set_task_comm`).
    pub fn comm(&self) -> &str {
        core::str::from_utf8(&self.comm[..self.comm_len as usize]).unwrap_or("?")
    }
    /// The address space.
    pub fn mm(&self) -> &MmStruct {
        // SAFETY: a task's mm lives as long as the task; `&self` came through the table
        // lock.
        unsafe { self.mm.as_ref() }
    }
}

/// The task table (`init_task.tasks` list and the pid map).
pub struct TaskTable {
    head: Option<NonNull<TaskStruct>>,
    last_pid: i32,
    nr: usize,
}

// SAFETY: the table and every task it links are only touched under `tasklist_lock`.
unsafe impl Send for TaskTable {}

impl TaskTable {
    const fn new() -> Self {
        Self {
            head: None,
            last_pid: 0,
            nr: 0,
        }
    }

    /// The task with `pid`.
    pub fn find(&self, pid: i32) -> Option<&TaskStruct> {
        self.iter().find(|t| t.pid == pid)
    }

    fn find_ptr(&self, pid: i32) -> Option<NonNull<TaskStruct>> {
        let mut c = self.head;
        while let Some(p) = c {
            // SAFETY: linked tasks are live while the lock is held.
            let t = unsafe { p.as_ref() };
            if t.pid == pid {
                return Some(p);
            }
            c = t.next;
        }
        None
    }

    /// Every task, newest first.
    pub fn iter(&self) -> impl Iterator<Item = &TaskStruct> + '_ {
        let mut c = self.head;
        core::iter::from_fn(move || {
            let p = c?;
            // SAFETY: `p` is linked on the task list and `&self` borrows the list under
            // `tasklist_lock`; linked tasks are freed only after being unlinked under that lock, so
            // `p` stays live for the iterator's lifetime.
            let t = unsafe { &*p.as_ptr() };
            c = t.next;
            Some(t)
        })
    }

    /// Sets a task's `oom_score_adj`; `None` if there is no such task.
    pub fn set_oom_score_adj(&mut self, pid: i32, v: i16) -> Option<()> {
        let mut p = self.find_ptr(pid)?;
        // SAFETY: a live task; `&mut self` is the lock's.
        unsafe { p.as_mut().oom_score_adj = v };
        Some(())
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.nr
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.nr == 0
    }

    /// `alloc_pid`: the next free pid after the last one, wrapping at `pid_max` to 1
    /// (kmem has no init, so pid 1 is an ordinary task's).
    fn alloc_pid(&mut self) -> Option<i32> {
        if self.nr >= (PID_MAX - 1) as usize {
            return None;
        }
        let mut pid = self.last_pid;
        loop {
            pid = if pid + 1 >= PID_MAX { 1 } else { pid + 1 };
            if self.find_ptr(pid).is_none() {
                self.last_pid = pid;
                return Some(pid);
            }
        }
    }

    fn unlink(&mut self, pid: i32) -> Option<NonNull<TaskStruct>> {
        let mut prev: Option<NonNull<TaskStruct>> = None;
        let mut c = self.head;
        while let Some(p) = c {
            // SAFETY: `p` is linked on the task list, which `&mut self` holds under
            // `tasklist_lock`; linked tasks are freed only after `unlink` under that lock, so `p`
            // is live.
            let next = unsafe { p.as_ref().next };
            // SAFETY: `p` is the same linked task as the line above, live under `tasklist_lock`;
            // `pid` is never written after the task is linked.
            if unsafe { p.as_ref().pid } == pid {
                match prev {
                    // SAFETY: a live task of the list.
                    Some(mut q) => unsafe { q.as_mut().next = next },
                    None => self.head = next,
                }
                self.nr -= 1;
                return Some(p);
            }
            prev = c;
            c = next;
        }
        None
    }
}

/// The task layer: the memory layer plus the task table. Dereferences to the
/// [`MemoryLayer`] below it.
pub struct TaskLayer<P: Platform> {
    pub(crate) mem: MemoryLayer<P>,
    pub(crate) tasks: Lock<P::RawLock, TaskTable>,
    /// The CPU holding `tasklist_lock` plus one (0: nobody), so that reclaim entered from
    /// an allocation under it knows the rmap is already locked (see `reclaim`).
    pub(crate) tasklist_owner: core::sync::atomic::AtomicUsize,
}

/// `tasklist_lock` held ([`TaskLayer::tasklist`]): the table, and the owner record cleared
/// before the lock is released.
pub struct TasklistGuard<'a, P: Platform> {
    owner: &'a core::sync::atomic::AtomicUsize,
    g: LockGuard<'a, P::RawLock, TaskTable>,
}

impl<P: Platform> core::ops::Deref for TasklistGuard<'_, P> {
    type Target = TaskTable;
    fn deref(&self) -> &TaskTable {
        &self.g
    }
}

impl<P: Platform> core::ops::DerefMut for TasklistGuard<'_, P> {
    fn deref_mut(&mut self) -> &mut TaskTable {
        &mut self.g
    }
}

impl<P: Platform> Drop for TasklistGuard<'_, P> {
    fn drop(&mut self) {
        // Before `g` (fields drop after this): nobody may see us as the owner once the
        // lock is free.
        self.owner.store(0, core::sync::atomic::Ordering::Release);
    }
}

impl<P: Platform> core::ops::Deref for TaskLayer<P> {
    type Target = MemoryLayer<P>;
    #[inline]
    fn deref(&self) -> &MemoryLayer<P> {
        &self.mem
    }
}

/// A task's memory, borrowed under `tasklist_lock` (see [`TaskLayer::with_task`]).
pub struct TaskMm<'a, P: Platform> {
    /// The task's pid.
    pub pid: i32,
    /// Its parent's pid (0 for a spawned task).
    pub ppid: i32,
    /// Its `oom_score_adj`.
    pub oom_score_adj: i16,
    /// Its name.
    pub comm: &'a str,
    /// Its address space.
    pub mm: &'a mut MmStruct,
    /// The layer, for faults and page-table operations.
    pub layer: &'a MemoryLayer<P>,
}

impl<P: Platform> TaskLayer<P> {
    /// A layer on `mem` with no task.
    pub(crate) fn new(mem: MemoryLayer<P>) -> Self {
        Self {
            mem,
            tasks: Lock::new(&TASKLIST_LOCK, TaskTable::new()),
            tasklist_owner: core::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Attaches `tasklist_lock` to the lock validator, if there is one.
    ///
    /// # Safety
    /// Once, at boot, after `MemoryModel::lockdep_init` and before the lock is taken.
    pub(crate) unsafe fn task_lockdep_attach(&self) {
        let Some(ld) = self.lockdep() else { return };
        // SAFETY: the validator lives as long as the platform, so as this state.
        unsafe {
            self.tasks.attach(ld);
            self.mem.mem.shmem.table.attach(ld);
        }
    }

    /// Takes `tasklist_lock`.
    pub fn tasklist(&self) -> TasklistGuard<'_, P> {
        // Lock order: tasklist_lock (rank 0), outermost; docs/LOCKING.md.
        let g = self.tasks.lock();
        self.tasklist_owner.store(
            self.platform().raw_cpu_id() + 1,
            core::sync::atomic::Ordering::Release,
        );
        TasklistGuard {
            owner: &self.tasklist_owner,
            g,
        }
    }

    fn new_task(
        &self,
        t: &mut TaskTable,
        name: &str,
        ppid: i32,
        mm: NonNull<MmStruct>,
    ) -> Result<i32, Errno> {
        let pid = t.alloc_pid().ok_or(Errno::EAGAIN)?;
        let mut comm = [0u8; TASK_COMM_LEN];
        // set_task_comm: at most TASK_COMM_LEN - 1 bytes, cut at a character boundary.
        let mut n = name.len().min(TASK_COMM_LEN - 1);
        while !name.is_char_boundary(n) {
            n -= 1;
        }
        comm[..n].copy_from_slice(&name.as_bytes()[..n]);
        let task = TaskStruct {
            pid,
            ppid,
            comm,
            comm_len: n as u8,
            mm,
            oom_score_adj: 0,
            fds: [0; NR_OPEN],
            next: t.head,
        };
        let p = self.kalloc().new_box(task).ok_or(Errno::ENOMEM)?;
        t.head = Some(p);
        t.nr += 1;
        Ok(pid)
    }

    /// Creates a task named `name` with a fresh address space holding its stack; returns
    /// its pid.
    ///
    /// # Errors
    /// `ENOMEM`, `EAGAIN` (no free pid).
    pub fn spawn(&self, name: &str) -> Result<i32, Errno> {
        let mm = self.mem.mm_alloc()?;
        // SAFETY: fresh, ours alone.
        if let Err(e) = self.mem.setup_stack(unsafe { &mut *mm.as_ptr() }) {
            // SAFETY: fresh from mm_alloc, dropped here.
            unsafe { self.mem.mmput(mm) };
            return Err(e);
        }
        let mut t = self.tasklist();
        match self.new_task(&mut t, name, 0, mm) {
            Ok(pid) => Ok(pid),
            Err(e) => {
                // SAFETY: `mm` came from `mm_alloc` above, and `new_task` failed without linking it
                // to any task, so no one else holds it and it is not used after this.
                unsafe { self.mem.mmput(mm) };
                Err(e)
            }
        }
    }

    /// `fork`: a copy of task `pid` (same name, the address space shared copy-on-write);
    /// returns the child's pid.
    ///
    /// # Errors
    /// `ESRCH` (no such task), `ENOMEM`, `EAGAIN`.
    pub fn fork(&self, pid: i32) -> Result<i32, Errno> {
        let mut t = self.tasklist();
        let pp = t.find_ptr(pid).ok_or(Errno::ESRCH)?;
        let child = self.mem.mm_alloc()?;
        // SAFETY: the parent is live under the lock; the child's mm is fresh. They are
        // different objects.
        let (parent, name, pmm) = unsafe {
            let p = pp.as_ref();
            (p, p.comm(), &mut *p.mm.as_ptr())
        };
        let name: heapless_name::Name = heapless_name::Name::from(name);
        // SAFETY: `pmm` is the parent's mm and `child` the fresh one from `mm_alloc`: two different
        // objects, so the two `&mut` do not alias; the parent's mm stays live under the lock `t`
        // holds.
        if let Err(e) = self.mem.dup_mmap(pmm, unsafe { &mut *child.as_ptr() }) {
            // SAFETY: the child mm is ours, dropped here.
            unsafe { self.mem.mmput(child) };
            return Err(e);
        }
        let fds = parent.fds;
        match self.new_task(&mut t, name.as_str(), pid, child) {
            Ok(c) => {
                if let Some(mut cp) = t.find_ptr(c) {
                    // SAFETY: the new task, under the lock.
                    unsafe { cp.as_mut().fds = fds };
                    for f in fds.iter().filter(|f| **f != 0) {
                        self.mem.shmem_update(f - 1, 1, false);
                    }
                }
                Ok(c)
            }
            Err(e) => {
                // SAFETY: `child` came from `mm_alloc` above, and `new_task` failed without linking
                // it to any task, so it is ours alone and not used after this.
                unsafe { self.mem.mmput(child) };
                Err(e)
            }
        }
    }

    /// `do_exit` + release: task `pid` ends and its memory is freed.
    ///
    /// # Errors
    /// `ESRCH`.
    pub fn exit(&self, pid: i32) -> Result<(), Errno> {
        let mut t = self.tasklist();
        self.exit_locked(&mut t, pid)
    }

    pub(crate) fn exit_locked(&self, t: &mut TaskTable, pid: i32) -> Result<(), Errno> {
        let p = t.unlink(pid).ok_or(Errno::ESRCH)?;
        let ka = self.kalloc();
        // SAFETY: unlinked, so ours alone; allocated by `new_task`.
        let task = unsafe { ka.take_box(p) };
        // SAFETY: the task owned its mm, which nothing else names.
        unsafe { self.mem.mmput(task.mm) };
        for f in task.fds.iter().filter(|f| **f != 0) {
            self.mem.shmem_update(f - 1, -1, false);
        }
        self.shm_gc(t);
        Ok(())
    }

    /// Frees the shmem objects nothing names any more (no descriptor, no SysV id, no
    /// mapping in any task): Linux's `fput`/`shm_destroy` at the last reference.
    pub(crate) fn shm_gc(&self, t: &TaskTable) {
        self.mem.shmem_collect(|ino| {
            t.iter()
                .any(|task| task.mm().vmas().any(|v| v.backing == VmBacking::Shmem(ino)))
        });
    }

    /// Runs `f` on task `pid`'s memory, then frees shmem objects it stopped naming.
    fn with_task_gc<R>(&self, pid: i32, f: impl FnOnce(TaskMm<'_, P>) -> R) -> Result<R, Errno> {
        let r = self.with_task(pid, f)?;
        let t = self.tasklist();
        self.shm_gc(&t);
        Ok(r)
    }

    /// `kill(pid, sig)`: signal 0 checks that the task exists; any other valid signal
    /// takes its default action on a process that handles none, which for every signal
    /// kmem can deliver is to terminate it.
    ///
    /// # Errors
    /// `EINVAL` (bad signal), `ESRCH`.
    pub fn kill(&self, pid: i32, sig: i32) -> Result<(), Errno> {
        if !(0..=NSIG).contains(&sig) {
            return Err(Errno::EINVAL);
        }
        let mut t = self.tasklist();
        if t.find_ptr(pid).is_none() {
            return Err(Errno::ESRCH);
        }
        if sig == 0 {
            return Ok(());
        }
        self.exit_locked(&mut t, pid)
    }

    /// Runs `f` on task `pid`'s memory under `tasklist_lock`.
    ///
    /// # Errors
    /// `ESRCH`.
    pub fn with_task<R>(&self, pid: i32, f: impl FnOnce(TaskMm<'_, P>) -> R) -> Result<R, Errno> {
        let t = self.tasklist();
        let p = t.find_ptr(pid).ok_or(Errno::ESRCH)?;
        // SAFETY: the task and its mm are live while the lock is held, and the lock hands
        // out this one `&mut` to the mm for the call.
        let (task, mm) = unsafe { (p.as_ref(), &mut *p.as_ref().mm.as_ptr()) };
        Ok(f(TaskMm {
            pid,
            ppid: task.ppid,
            oom_score_adj: task.oom_score_adj,
            comm: task.comm(),
            mm,
            layer: &self.mem,
        }))
    }

    /// The pids of every task, ascending, into `out`; returns how many there are.
    pub fn pids(&self, out: &mut [i32]) -> usize {
        let t = self.tasklist();
        let mut n = 0;
        for task in t.iter() {
            if n < out.len() {
                out[n] = task.pid;
            }
            n += 1;
        }
        let k = n.min(out.len());
        out[..k].sort_unstable();
        n
    }

    /// `mmap(addr, len, prot, flags, fd, off)` in task `pid`. Anonymous mappings
    /// (`MAP_ANONYMOUS`) ignore `fd` (Linux does too; pass -1); file mappings need a shmem
    /// file descriptor of the task.
    ///
    /// # Errors
    /// As Linux: `EINVAL` (misaligned `off`, bad flags, zero length), `ENOMEM`, `EEXIST`,
    /// `EBADF` (a file mapping of a descriptor the task does not have), `ESRCH`.
    #[allow(clippy::too_many_arguments)]
    pub fn mmap(
        &self,
        pid: i32,
        addr: u64,
        len: u64,
        prot: u32,
        flags: u32,
        fd: i32,
        off: u64,
    ) -> Result<u64, Errno> {
        // x86 sys_mmap: the offset must be page-aligned.
        if off & (PAGE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        let backing = if flags & MAP_ANONYMOUS == 0 {
            let ino = self.fd_inode(pid, fd)?;
            VmBacking::Shmem(ino)
        } else {
            VmBacking::Anon
        };
        self.with_task_gc(pid, |t| {
            t.layer
                .mm_mmap(t.mm, addr, len, prot, flags, backing, off / PAGE)
        })?
    }

    /// `munmap`.
    ///
    /// # Errors
    /// `EINVAL`, `ENOMEM`, `ESRCH`.
    pub fn munmap(&self, pid: i32, addr: u64, len: u64) -> Result<(), Errno> {
        self.with_task_gc(pid, |t| t.mm.do_munmap(t.layer, addr, len))?
    }

    /// `mprotect`.
    ///
    /// # Errors
    /// `EINVAL`, `ENOMEM`, `EACCES`, `ESRCH`.
    pub fn mprotect(&self, pid: i32, addr: u64, len: u64, prot: u32) -> Result<(), Errno> {
        self.with_task(pid, |t| t.mm.mprotect(t.layer, addr, len, prot))?
    }

    /// `mremap`.
    ///
    /// # Errors
    /// `EINVAL`, `ENOMEM`, `EFAULT`, `ESRCH`.
    pub fn mremap(
        &self,
        pid: i32,
        old: u64,
        old_len: u64,
        new_len: u64,
        flags: u32,
        new_addr: u64,
    ) -> Result<u64, Errno> {
        self.with_task(pid, |t| {
            t.mm.mremap(t.layer, old, old_len, new_len, flags, new_addr)
        })?
    }

    /// `brk`: returns the new break (the old one if refused); `brk(0)` reads it.
    ///
    /// # Errors
    /// `ESRCH`.
    pub fn brk(&self, pid: i32, brk: u64) -> Result<u64, Errno> {
        self.with_task(pid, |t| t.mm.do_brk(t.layer, brk))
    }

    /// `madvise`.
    ///
    /// # Errors
    /// `EINVAL`, `ENOMEM`, `EACCES`, `EFAULT`, `ESRCH`.
    pub fn madvise(&self, pid: i32, addr: u64, len: u64, advice: u32) -> Result<(), Errno> {
        self.with_task(pid, |t| {
            // SAFETY: tasklist_lock is held by `with_task` for as long as `ops` lives.
            let ops = unsafe { crate::vmscan::RmapReclaim::new(&self.mem.km, &self.mem.mem.swap) };
            t.layer.madvise_with(t.mm, addr, len, advice, Some(&ops))
        })?
    }

    /// `pagefault_out_of_memory` until the OOM killer takes over: the faulting task is
    /// killed (as `oom_kill_allocating_task` does), with Linux's report.
    pub(crate) fn oom_kill_current(&self, t: &mut TaskTable, pid: i32) {
        if let Some(task) = t.find(pid) {
            let mm = task.mm();
            let kb = |p: i64| p.max(0) as u64 * (PAGE / 1024);
            self.printk(
                LogLevel::Err,
                format_args!(
                    "Out of memory (oom_kill_allocating_task): Killed process {} ({}) total-vm:{}kB, anon-rss:{}kB, file-rss:{}kB, shmem-rss:{}kB, UID:0 pgtables:{}kB oom_score_adj:{}",
                    pid,
                    task.comm(),
                    mm.total_vm * (PAGE / 1024),
                    kb(mm.rss_stat[1]),
                    kb(mm.rss_stat[0]),
                    kb(mm.rss_stat[3]),
                    self.mem.pgtables_bytes(mm) / 1024,
                    task.oom_score_adj
                ),
            );
            self.count_vm_events(crate::mm::VmEvent::OomKill, 1);
        }
        let _ = self.exit_locked(t, pid);
    }
}

/// Small fixed-size strings (no allocator in kmem).
pub(crate) mod heapless_name {
    /// A copy of a task name.
    pub struct Name {
        buf: [u8; super::TASK_COMM_LEN],
        len: usize,
    }

    impl From<&str> for Name {
        fn from(s: &str) -> Self {
            let mut buf = [0; super::TASK_COMM_LEN];
            let len = s.len().min(buf.len());
            buf[..len].copy_from_slice(&s.as_bytes()[..len]);
            Self { buf, len }
        }
    }

    impl Name {
        pub fn as_str(&self) -> &str {
            core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
        }
    }
}
