//! The memory-policy system calls (mm/mempolicy.c): `set_mempolicy`, `get_mempolicy` and
//! `mbind`, by pid, with Linux's checks and error codes.
//!
//! The policy type and its checks are [`crate::vma::mempolicy`] (VMAs carry a policy);
//! allocation under a policy is [`crate::memory::mempolicy`] (the fault path uses it). This
//! module sits above [`crate::migrate`], because `mbind(…, MPOL_MF_MOVE)` migrates the pages
//! that do not follow the new policy (`MR_MEMPOLICY_MBIND`).
//!
//! A kmem task is one thread owning its address space, so the task policy
//! (`current->mempolicy`) is kept in the [`MmStruct`](crate::vma::MmStruct) and inherited
//! on fork.
#![forbid(unsafe_code)]

use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::memory::{FaultFlags, VmFault};
use crate::migrate::{MigrateList, MigrateMode, MigrateReason};
use crate::mm::mm_types::PagePtr;
use crate::platform::Platform;
use crate::task::TaskLayer;
use crate::vma::mempolicy::*;
use crate::vma::PAGE;

/// What `get_mempolicy` returns: the mode (or a node id under `MPOL_F_NODE`) and the mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetMempolicy {
    /// `*policy`.
    pub policy: u32,
    /// `*nmask`.
    pub nodes: NodeMask,
}

impl<P: Platform> TaskLayer<P> {
    /// The nodes with memory (`node_states[N_MEMORY]`, which is cpuset's `mems_allowed`
    /// without cpusets).
    pub fn mems_allowed(&self) -> NodeMask {
        NodeMask((1u64 << self.nr_online_nodes()) - 1)
    }

    /// Checks the arguments and makes the policy (`sanitize_mpol_flags`, `get_nodes`,
    /// `mpol_new`, `mpol_set_nodemask`).
    fn new_policy(&self, mode: u32, nodemask: u64) -> Result<Option<MemPolicy>, Errno> {
        let (mode, flags) = sanitize_mpol_flags(mode)?;
        let nodes = get_nodes(nodemask)?;
        mpol_new(mode, flags, nodes, self.mems_allowed())
    }

    /// `set_mempolicy(mode | flags, nodemask)` for task `pid`: the policy of its
    /// allocations outside VMAs with their own (`mbind`) policy.
    ///
    /// # Errors
    /// `EINVAL` (bad mode or flags, a mask empty or of no online node where one is needed, or
    /// one where none may be), `ESRCH`.
    pub fn set_mempolicy(&self, pid: i32, mode: u32, nodemask: u64) -> Result<(), Errno> {
        let pol = self.new_policy(mode, nodemask)?;
        self.with_task(pid, |t| t.mm.task_policy = pol)
    }

    /// `get_mempolicy(&policy, &nmask, addr, flags)` for task `pid`.
    ///
    /// - no flag (`addr` must be 0): the task policy's mode and mask (`MPOL_DEFAULT`, empty);
    /// - `MPOL_F_ADDR`: the policy of the VMA at `addr` (`MPOL_DEFAULT` if it has none);
    /// - `MPOL_F_NODE | MPOL_F_ADDR`: the node of the page at `addr` (faulted in if absent);
    /// - `MPOL_F_NODE` alone: the next interleave node of an interleave task policy;
    /// - `MPOL_F_MEMS_ALLOWED`: the nodes a policy may use.
    ///
    /// # Errors
    /// `EINVAL` (unknown flags, `MPOL_F_MEMS_ALLOWED` with others, `addr` without
    /// `MPOL_F_ADDR`, `MPOL_F_NODE` alone without interleave), `EFAULT` (`addr` not mapped),
    /// `ESRCH`.
    pub fn get_mempolicy(&self, pid: i32, addr: u64, flags: u32) -> Result<GetMempolicy, Errno> {
        if flags & !(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED) != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & MPOL_F_MEMS_ALLOWED != 0 {
            if flags & (MPOL_F_NODE | MPOL_F_ADDR) != 0 {
                return Err(Errno::EINVAL);
            }
            return Ok(GetMempolicy {
                policy: MPOL_DEFAULT,
                nodes: self.mems_allowed(),
            });
        }
        if flags & MPOL_F_ADDR == 0 && addr != 0 {
            return Err(Errno::EINVAL);
        }
        self.with_task(pid, |mut t| {
            let (pol, ilx) = if flags & MPOL_F_ADDR != 0 {
                let v = t.mm.vma_lookup(addr).ok_or(Errno::EFAULT)?;
                (v.vm_policy, 0)
            } else {
                // `il_prev`: kmem's faults interleave by offset; other task allocations do
                // not follow the policy, so the next node is the mask's first.
                (t.mm.task_policy, 0)
            };
            let policy = if flags & MPOL_F_NODE == 0 {
                MemPolicy::reported_mode(pol.as_ref())
            } else if flags & MPOL_F_ADDR != 0 {
                lookup_node(&mut t, addr)? as u32
            } else {
                match pol {
                    Some(p) if p.mode == MPOL_INTERLEAVE || p.mode == MPOL_WEIGHTED_INTERLEAVE => {
                        p.interleave_nid(ilx, |_| 1).unwrap_or(0) as u32
                    }
                    _ => return Err(Errno::EINVAL),
                }
            };
            Ok(GetMempolicy {
                policy,
                nodes: MemPolicy::reported_nodes(pol.as_ref()),
            })
        })?
    }

    /// `mbind(start, len, mode | flags, nodemask, mbind_flags)` for task `pid`: the VMAs of
    /// `[start, start + len)` get the policy (`MPOL_DEFAULT`: they lose theirs; the range may
    /// then have holes). Pages already there on a node outside `nodemask` are moved with
    /// `MPOL_MF_MOVE` (`MPOL_MF_MOVE_ALL`: also pages others map), and with `MPOL_MF_STRICT`
    /// any that stay make the call fail with `EIO` — after the policy is set, as in Linux;
    /// `MPOL_MF_STRICT` without a move fails with `EIO` on the first such page, policy unset.
    ///
    /// # Errors
    /// `EINVAL` (bad flags, mode, mask, unaligned `start`, a range that wraps), `EFAULT` (a
    /// hole in the range), `ENOMEM` (a VMA split failed), `EIO` (strict and misplaced
    /// pages left), `ESRCH`.
    pub fn mbind(
        &self,
        pid: i32,
        start: u64,
        len: u64,
        mode: u32,
        nodemask: u64,
        flags: u32,
    ) -> Result<(), Errno> {
        // kernel_mbind + do_mbind's checks, in Linux's order.
        let (lmode, mode_flags) = sanitize_mpol_flags(mode)?;
        let user = get_nodes(nodemask)?;
        if flags & !MPOL_MF_VALID != 0 || start & (PAGE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        let mut flags = flags;
        if lmode == MPOL_DEFAULT {
            flags &= !MPOL_MF_STRICT;
        }
        let len = len.checked_add(PAGE - 1).ok_or(Errno::EINVAL)? & !(PAGE - 1);
        let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
        if end == start {
            return Ok(());
        }
        let pol = mpol_new(lmode, mode_flags, user, self.mems_allowed())?;
        let moving = flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) != 0;
        let mut list = MigrateList::new();
        // queue_pages_range, then mbind_range.
        let failed = self.with_task(pid, |t| -> Result<usize, Errno> {
            let mut failed = 0;
            if pol.is_some() && (moving || flags & MPOL_MF_STRICT != 0) {
                failed = self.queue_misplaced(&t, start, end, user, flags, &mut list)?;
                // queue_pages_range's -EIO (strict, no move): the policy is not set.
                if failed != 0 && !moving {
                    return Err(Errno::EIO);
                }
            }
            t.mm.mbind_range(start, end, pol, pol.is_none())?;
            Ok(failed)
        })??;
        let mut failed = failed;
        if !list.is_empty() {
            let mut get = |src: PagePtr| {
                let gfp = GfpFlags::GFP_HIGHUSER_MOVABLE
                    | GfpFlags::__GFP_RETRY_MAYFAIL
                    | GfpFlags::__GFP_NOWARN;
                self.alloc_pages_mpol(
                    gfp,
                    crate::addr::Order::ZERO,
                    pol.as_ref(),
                    src.index() as u64,
                )
            };
            let r = self.migrate_pages(
                &mut list,
                &mut get,
                None,
                MigrateMode::Sync,
                MigrateReason::MempolicyMbind,
            );
            failed += r.unwrap_or(list.len());
            self.putback_movable_pages(&mut list);
        }
        if failed != 0 && flags & MPOL_MF_STRICT != 0 {
            return Err(Errno::EIO);
        }
        Ok(())
    }

    /// `queue_pages_range` with `MPOL_MF_INVERT`: the pages mapped in `[start, end)` on a
    /// node outside `nodes` (the zero page aside) are isolated onto `list` when moving, and
    /// counted when they cannot be (or when only checking, under `MPOL_MF_STRICT`). A page
    /// others map too moves only with `MPOL_MF_MOVE_ALL`.
    ///
    /// # Errors
    /// `EFAULT`: a hole in the range.
    fn queue_misplaced(
        &self,
        t: &crate::task::TaskMm<'_, P>,
        start: u64,
        end: u64,
        nodes: NodeMask,
        flags: u32,
        list: &mut MigrateList,
    ) -> Result<usize, Errno> {
        let mut failed = 0;
        let Some(pt) = t.mm.pgd.as_ref() else {
            return Ok(0);
        };
        let mut a = start;
        while a < end {
            if t.mm.vma_lookup(a).is_none_or(|v| v.vm_start > a) {
                return Err(Errno::EFAULT);
            }
            let pte = pt.pte_get(t.layer.pt_mem(), a);
            a += PAGE;
            if t.layer.is_zero_pte(pt.format(), pte) {
                continue;
            }
            let Some(page) = t.layer.pte_page(pt.format(), pte) else {
                continue;
            };
            if nodes.contains(self.page_to_nid(page)) || list.contains(page) {
                continue;
            }
            let moving = flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) != 0;
            let shared_ok = flags & MPOL_MF_MOVE_ALL != 0 || page.mapcount() == 1;
            if !moving || !shared_ok || self.isolate_migratepage(page, list).is_err() {
                failed += 1;
            }
        }
        Ok(failed)
    }
}

/// `lookup_node`: the node of the page mapped at `addr`, faulting it in (a read, as
/// `get_user_pages` does: the zero page on a fresh anonymous page) first if there is none.
fn lookup_node<P: Platform>(t: &mut crate::task::TaskMm<'_, P>, addr: u64) -> Result<usize, Errno> {
    let page_at = |t: &crate::task::TaskMm<'_, P>| {
        let pt = t.mm.pgd.as_ref()?;
        let pte = pt.pte_get(t.layer.pt_mem(), addr & !(PAGE - 1));
        t.layer.pte_page(pt.format(), pte)
    };
    if page_at(t).is_none() {
        let f = FaultFlags {
            user: true,
            ..FaultFlags::default()
        };
        if t.layer.handle_mm_fault(t.mm, addr, f) != VmFault::Done {
            return Err(Errno::EFAULT);
        }
    }
    page_at(t)
        .map(|p| t.layer.page_to_nid(p))
        .ok_or(Errno::EFAULT)
}
