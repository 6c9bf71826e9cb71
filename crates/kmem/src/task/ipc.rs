//! The shared-memory system calls of a task: `memfd_create`, `ftruncate`, `close`, and
//! SysV `shmget`/`shmat`/`shmdt`/`shmctl` (mm/memfd.c, fs/open.c, ipc/shm.c), over the
//! shmem objects of [`crate::memory::shmem`].

use crate::errno::Errno;
use crate::memory::shmem::{
    ShmKind, IPC_CREAT, IPC_EXCL, IPC_PRIVATE, IPC_RMID, SHMLBA, SHMMAX, SHM_RDONLY, SHM_REMAP,
    SHM_RND,
};
use crate::platform::Platform;
use crate::vma::{
    page_align, PteOps, VmBacking, MAP_FIXED, MAP_SHARED, PAGE, PROT_READ, PROT_WRITE,
};

use super::{TaskLayer, NR_OPEN};

/// `MFD_NAME_MAX_LEN` (`NAME_MAX - strlen("memfd:")`).
pub const MFD_NAME_MAX_LEN: usize = 249;

impl<P: Platform> TaskLayer<P> {
    /// The shmem object behind descriptor `fd` of task `pid`.
    ///
    /// # Errors
    /// `EBADF`, `ESRCH`.
    pub fn fd_inode(&self, pid: i32, fd: i32) -> Result<u64, Errno> {
        let t = self.tasklist();
        let task = t.find(pid).ok_or(Errno::ESRCH)?;
        let f = usize::try_from(fd)
            .ok()
            .filter(|&f| f < NR_OPEN)
            .ok_or(Errno::EBADF)?;
        match task.fds[f] {
            0 => Err(Errno::EBADF),
            ino => Ok(ino - 1),
        }
    }

    /// `memfd_create(name, 0)`: a new empty shmem file; returns the lowest free descriptor.
    ///
    /// # Errors
    /// `EINVAL` (name too long), `EMFILE`, `ENOMEM`, `ESRCH`.
    pub fn memfd_create(&self, pid: i32, name: &str) -> Result<i32, Errno> {
        if name.len() > MFD_NAME_MAX_LEN {
            return Err(Errno::EINVAL);
        }
        let mut t = self.tasklist();
        let mut p = t.find_ptr(pid).ok_or(Errno::ESRCH)?;
        // SAFETY: a live task under the lock.
        let task = unsafe { p.as_mut() };
        let fd = (3..NR_OPEN)
            .find(|&f| task.fds[f] == 0)
            .ok_or(Errno::EMFILE)?;
        let ino = self.mem.shmem_create(ShmKind::Memfd, name, 0)?;
        self.mem.shmem_update(ino, 1, false);
        task.fds[fd] = ino + 1;
        let _ = &mut t;
        Ok(fd as i32)
    }

    /// `ftruncate(fd, len)`: sets the size of a memfd; pages beyond a smaller size are
    /// unmapped from every task and dropped (`shmem_setattr` → `unmap_mapping_range`).
    ///
    /// # Errors
    /// `EBADF`, `EINVAL` (negative or huge length), `ESRCH`.
    pub fn ftruncate(&self, pid: i32, fd: i32, len: u64) -> Result<(), Errno> {
        if len > i64::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        let ino = self.fd_inode(pid, fd)?;
        let t = self.tasklist();
        let keep = len.div_ceil(PAGE);
        for task in t.iter() {
            let mmp = task.mm;
            // SAFETY: every task's mm is live under the lock; one `&mut` at a time.
            let mm = unsafe { &mut *mmp.as_ptr() };
            let mut addr = 0;
            while let Some(v) = mm.find_vma(addr) {
                addr = v.vm_end;
                if v.backing != VmBacking::Shmem(ino) || v.vm_pgoff + v.pages() <= keep {
                    continue;
                }
                let from = if v.vm_pgoff >= keep {
                    v.vm_start
                } else {
                    v.vm_start + (keep - v.vm_pgoff) * PAGE
                };
                let (s, e) = (from, v.vm_end);
                if let Some(vp) = mm.vma_ptr(s) {
                    // SAFETY: a live VMA of `mm`; `zap` does not change the tree.
                    let vr = unsafe { &*vp.as_ptr() };
                    self.mem.zap(mm, vr, s, e);
                }
            }
        }
        self.mem.shmem_setsize(ino, len)
    }

    /// `close(fd)`.
    ///
    /// # Errors
    /// `EBADF`, `ESRCH`.
    pub fn close(&self, pid: i32, fd: i32) -> Result<(), Errno> {
        let ino = self.fd_inode(pid, fd)?;
        let t = self.tasklist();
        let mut p = t.find_ptr(pid).ok_or(Errno::ESRCH)?;
        // SAFETY: a live task under the lock.
        unsafe { p.as_mut().fds[fd as usize] = 0 };
        self.mem.shmem_update(ino, -1, false);
        self.shm_gc(&t);
        Ok(())
    }

    /// `shmget(key, size, flags)`: the segment with `key` (`IPC_PRIVATE`: always a new
    /// one), created with `IPC_CREAT`; returns its shmid.
    ///
    /// # Errors
    /// `EINVAL` (size 0 or above `SHMMAX`, or larger than an existing segment), `EEXIST`
    /// (`IPC_CREAT | IPC_EXCL` on an existing key), `ENOENT` (no segment, no `IPC_CREAT`),
    /// `ENOMEM`.
    pub fn shmget(&self, key: i32, size: u64, flags: i32) -> Result<i32, Errno> {
        let _t = self.tasklist();
        if key != IPC_PRIVATE {
            if let Some(seg) = self.mem.shmem_find_sysv(Some(key), 0) {
                if flags & IPC_CREAT != 0 && flags & IPC_EXCL != 0 {
                    return Err(Errno::EEXIST);
                }
                if size > seg.size {
                    return Err(Errno::EINVAL);
                }
                if let ShmKind::SysV { id, .. } = seg.kind {
                    return Ok(id);
                }
            }
            if flags & IPC_CREAT == 0 {
                return Err(Errno::ENOENT);
            }
        }
        if size == 0 || size > SHMMAX {
            return Err(Errno::EINVAL);
        }
        let ino = self
            .mem
            .shmem_create(ShmKind::SysV { key, id: 0 }, "SYSV", size)?;
        match self.mem.shmem_info(ino).map(|i| i.kind) {
            Some(ShmKind::SysV { id, .. }) => Ok(id),
            _ => Err(Errno::ENOMEM),
        }
    }

    /// `shmat(shmid, addr, flags)`: maps the segment shared into task `pid`; returns the
    /// address.
    ///
    /// # Errors
    /// `EINVAL` (no such segment, a misaligned address without `SHM_RND`, a range in use
    /// without `SHM_REMAP`), `ENOMEM`, `ESRCH`.
    pub fn shmat(&self, pid: i32, shmid: i32, addr: u64, flags: i32) -> Result<u64, Errno> {
        let seg = self.mem.shmem_find_sysv(None, shmid).ok_or(Errno::EINVAL)?;
        let mut addr = addr;
        let mut mflags = MAP_SHARED;
        if addr != 0 {
            if addr & (SHMLBA - 1) != 0 {
                if flags & SHM_RND == 0 {
                    return Err(Errno::EINVAL);
                }
                addr &= !(SHMLBA - 1);
            }
            mflags |= MAP_FIXED;
        } else if flags & SHM_REMAP != 0 {
            return Err(Errno::EINVAL);
        }
        let prot = if flags & SHM_RDONLY != 0 {
            PROT_READ
        } else {
            PROT_READ | PROT_WRITE
        };
        let size = page_align(seg.size).ok_or(Errno::EINVAL)?;
        self.with_task(pid, |t| {
            if addr != 0 && flags & SHM_REMAP == 0 {
                // ipc/shm.c `do_shmat`: a segment that would wrap is -EINVAL.
                let end = addr.checked_add(size).ok_or(Errno::EINVAL)?;
                if t.mm.find_vma_intersection(addr, end).is_some() {
                    return Err(Errno::EINVAL);
                }
            }
            t.layer
                .mm_mmap(t.mm, addr, size, prot, mflags, VmBacking::Shmem(seg.ino), 0)
        })?
    }

    /// `shmdt(addr)`: unmaps the segment attached at `addr`.
    ///
    /// # Errors
    /// `EINVAL` (no segment attached there), `ESRCH`.
    pub fn shmdt(&self, pid: i32, addr: u64) -> Result<(), Errno> {
        if addr & (PAGE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        let r = self.with_task(pid, |t| {
            let v = t.mm.vma_lookup(addr).ok_or(Errno::EINVAL)?;
            let VmBacking::Shmem(ino) = v.backing else {
                return Err(Errno::EINVAL);
            };
            let info = t.layer.shmem_info(ino).ok_or(Errno::EINVAL)?;
            if !matches!(info.kind, ShmKind::SysV { .. }) || v.vm_start != addr || v.vm_pgoff != 0 {
                return Err(Errno::EINVAL);
            }
            let end = addr + page_align(info.size).unwrap_or(0);
            // Every VMA of this segment in [addr, end) goes.
            let mut a = addr;
            while let Some(v) = t.mm.find_vma_intersection(a, end) {
                let (s, e, b) = (v.vm_start, v.vm_end, v.backing);
                a = e;
                if b == VmBacking::Shmem(ino) {
                    t.mm.do_munmap(t.layer, s, e - s)?;
                }
            }
            Ok(())
        })?;
        let t = self.tasklist();
        self.shm_gc(&t);
        r
    }

    /// `shmctl(shmid, IPC_RMID)`: the id goes; the segment is freed when the last task
    /// detaches. Other commands are not modelled (`EINVAL`).
    ///
    /// # Errors
    /// `EINVAL`.
    pub fn shmctl(&self, shmid: i32, cmd: i32) -> Result<(), Errno> {
        let seg = self.mem.shmem_find_sysv(None, shmid).ok_or(Errno::EINVAL)?;
        if cmd != IPC_RMID {
            return Err(Errno::EINVAL);
        }
        let t = self.tasklist();
        self.mem.shmem_update(seg.ino, 0, true);
        self.shm_gc(&t);
        Ok(())
    }
}
