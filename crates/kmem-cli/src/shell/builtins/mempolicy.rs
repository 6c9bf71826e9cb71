//! The shell's memory-policy functions (issue 19; mm/mempolicy.c): `set_mempolicy`,
//! `mbind`, `get_mempolicy` by pid, with the `MPOL_*` constants as shell names
//! (`set_mempolicy(p, MPOL_BIND, 0x2)` binds task p to node 1: the node mask is a bit
//! mask, bit n for node n), and the weighted-interleave weights.

use kmem::errno::Errno;

use super::{Args, Builtin, Fail, Param::*};
use crate::shell::value::Value;

/// Argument `i` as a pid (an `int`).
fn pid(a: &Args, i: usize) -> Result<i32, Fail> {
    let v = a.u(i) as i64;
    i32::try_from(v).map_err(|_| Fail::Error(format!("{v} is not a pid")))
}

/// Argument `i` as C's `int` flags (the low 32 bits).
fn bits32(a: &Args, i: usize) -> u32 {
    a.u(i) as u32
}

/// `0` or `-errno`.
fn zero_or_errno(r: Result<(), Errno>) -> Value {
    match r {
        Ok(()) => Value::Int(0),
        Err(e) => Value::Errno(e.code()),
    }
}

/// Memory policies.
pub static MEMPOLICY_BUILTINS: &[Builtin] = &[
    Builtin {
        name: "set_mempolicy",
        proto: "long set_mempolicy(pid_t pid, int mode, unsigned long nodemask)",
        doc: "task pid's policy (MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE, | MPOL_F_STATIC_NODES / MPOL_F_RELATIVE_NODES) over NODEMASK (bit n: node n); 0 or -errno",
        params: &[Uint, Uint, Uint],
        run: |c, a| {
            let r = c.k.m.set_mempolicy(pid(a, 0)?, bits32(a, 1), a.u(2));
            Ok(zero_or_errno(r))
        },
    },
    Builtin {
        name: "mbind",
        proto: "long mbind(pid_t pid, void *addr, unsigned long len, int mode, unsigned long nodemask, unsigned int flags)",
        doc: "the policy of task pid's VMAs in [addr, addr + len) (flags MPOL_MF_STRICT, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL: pages elsewhere migrate; strict: -EIO if any stay); 0 or -errno",
        params: &[Uint, Addr, Uint, Uint, Uint, Uint],
        run: |c, a| {
            let r = c.k.m.mbind(
                pid(a, 0)?,
                a.u(1),
                a.u(2),
                bits32(a, 3),
                a.u(4),
                bits32(a, 5),
            );
            Ok(zero_or_errno(r))
        },
    },
    Builtin {
        name: "get_mempolicy",
        proto: "long get_mempolicy(pid_t pid, void *addr, unsigned long flags)",
        doc: "task pid's policy mode (flags 0), the policy of the VMA at addr (MPOL_F_ADDR), the node of the page there (MPOL_F_NODE|MPOL_F_ADDR); -errno on failure",
        params: &[Uint, Addr, Uint],
        run: |c, a| {
            let r = c.k.m.get_mempolicy(pid(a, 0)?, a.u(1), bits32(a, 2));
            Ok(match r {
                Ok(g) => Value::Int(u64::from(g.policy)),
                Err(e) => Value::Errno(e.code()),
            })
        },
    },
    Builtin {
        name: "get_mempolicy_nodemask",
        proto: "unsigned long get_mempolicy_nodemask(pid_t pid, void *addr, unsigned long flags)",
        doc: "the node mask get_mempolicy returns with the same arguments (MPOL_F_MEMS_ALLOWED: the nodes with memory); -errno on failure",
        params: &[Uint, Addr, Uint],
        run: |c, a| {
            let r = c.k.m.get_mempolicy(pid(a, 0)?, a.u(1), bits32(a, 2));
            Ok(match r {
                Ok(g) => Value::Int(g.nodes.0),
                Err(e) => Value::Errno(e.code()),
            })
        },
    },
    Builtin {
        name: "set_interleave_weight",
        proto: "int set_interleave_weight(int nid, u8 weight)",
        doc: "MPOL_WEIGHTED_INTERLEAVE's weight of node nid (/sys/kernel/mm/mempolicy/weighted_interleave/nodeN, 1-255, default 1); 0 or -errno",
        params: &[Uint, Uint],
        run: |c, a| {
            let w = u8::try_from(a.u(1)).unwrap_or(0);
            let nid = usize::try_from(a.u(0)).unwrap_or(usize::MAX);
            Ok(zero_or_errno(c.k.m.set_il_weight(nid, w)))
        },
    },
];
