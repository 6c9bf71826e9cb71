//! The shell's page-migration functions (issue 16): pinning user pages the way a driver
//! doing DMA does (`pin_user_pages`, `unpin_user_pages`, mm/gup.c), and moving a task's
//! pages to other frames (`move_pages`, kmem's one-node form of move_pages(2)). CMA's
//! `cma_alloc` migrates borrowed pages on its own (the boot registers page migration as its
//! migration hook); a pinned page cannot move, so `cma_alloc` over it fails with `-EBUSY`.

use kmem::migrate::GUP_PIN_COUNTING_BIAS;
use kmem::PagePtr;

use super::{Args, Builtin, Ctx, Fail, Param::*};
use crate::shell::value::Value;

/// Argument `i` as a pid (an `int`).
fn pid(a: &Args, i: usize) -> Result<i32, Fail> {
    let v = a.u(i) as i64;
    i32::try_from(v).map_err(|_| Fail::Error(format!("{v} is not a pid")))
}

/// A count or `-errno`.
fn count_or_errno(r: Result<usize, kmem::errno::Errno>) -> Value {
    match r {
        Ok(n) => Value::Int(n as u64),
        Err(e) => Value::Errno(e.code()),
    }
}

/// The pages task `pid` maps at `nr` pages from `addr` (unmapped ones left out).
fn mapped_pages(c: &Ctx<'_>, pid: i32, addr: u64, nr: u64) -> Result<Vec<PagePtr>, Fail> {
    let mut v = Vec::new();
    for i in 0..nr {
        match c.k.m.follow_page(pid, addr + i * 4096) {
            Ok(Some(p)) => v.push(p),
            Ok(None) => {}
            Err(_) => return Err(Fail::Error("no such process (ESRCH)".into())),
        }
    }
    Ok(v)
}

/// Page migration and pinning.
pub static MIGRATE_BUILTINS: &[Builtin] = &[
    Builtin {
        name: "pin_user_pages",
        proto: "long pin_user_pages(pid_t pid, void *addr, unsigned long nr_pages, unsigned int gup_flags)",
        doc: "pins NR_PAGES pages of task pid from ADDR (faulting them in; FOLL_WRITE, FOLL_LONGTERM): each page's refcount grows by GUP_PIN_COUNTING_BIAS (1024) and migration leaves it; returns how many were pinned or -errno",
        params: &[Uint, Addr, Uint, Uint],
        run: |c, a| {
            let nr = a.usize(2)?;
            if nr > 1 << 20 {
                return Ok(Value::Errno(kmem::errno::Errno::EINVAL.code()));
            }
            let mut pages = vec![None; nr];
            let r = c.k.m.pin_user_pages(pid(a, 0)?, a.u(1), a.u(3) as u32, &mut pages);
            Ok(count_or_errno(r))
        },
    },
    Builtin {
        name: "unpin_user_pages",
        proto: "void unpin_user_pages(pid_t pid, void *addr, unsigned long nr_pages)",
        doc: "drops one pin of each page task pid maps at NR_PAGES pages from ADDR (kmem finds the pages through the task's page table)",
        params: &[Uint, Addr, Uint],
        run: |c, a| {
            let pages = mapped_pages(c, pid(a, 0)?, a.u(1), a.u(2).min(1 << 20))?;
            c.k.m.unpin_user_pages(&pages);
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "folio_maybe_dma_pinned",
        proto: "bool folio_maybe_dma_pinned(pid_t pid, void *addr)",
        doc: "whether the page task pid maps at ADDR is pinned (refcount >= GUP_PIN_COUNTING_BIAS)",
        params: &[Uint, Addr],
        run: |c, a| {
            let pages = mapped_pages(c, pid(a, 0)?, a.u(1), 1)?;
            Ok(Value::Int(u64::from(
                pages.first().is_some_and(|p| c.k.m.page_maybe_dma_pinned(*p)),
            )))
        },
    },
    Builtin {
        name: "move_pages",
        proto: "long move_pages(pid_t pid, void *addr, unsigned long nr_pages)",
        doc: "migrates every page task pid maps at NR_PAGES pages from ADDR to another frame (migrate_pages, MR_SYSCALL); returns how many stayed (pinned, unmovable) or -errno",
        params: &[Uint, Addr, Uint],
        run: |c, a| {
            let r = c.k.m.move_pages(pid(a, 0)?, a.u(1), a.u(2).min(1 << 20));
            Ok(count_or_errno(r))
        },
    },
    Builtin {
        name: "user_page_pfn",
        proto: "unsigned long user_page_pfn(pid_t pid, void *addr)",
        doc: "the PFN of the page task pid maps at ADDR (follow_page), or -EFAULT when none is",
        params: &[Uint, Addr],
        run: |c, a| {
            let pages = mapped_pages(c, pid(a, 0)?, a.u(1), 1)?;
            Ok(match pages.first() {
                Some(p) => Value::Int(c.k.m.page_to_pfn(*p).as_u64()),
                None => Value::Errno(kmem::errno::Errno::EFAULT.code()),
            })
        },
    },
];

const _: () = assert!(GUP_PIN_COUNTING_BIAS == 1024);
