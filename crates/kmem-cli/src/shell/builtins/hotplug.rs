//! The shell's memory hotplug functions (issue 19): `add_memory`, `remove_memory`
//! (mm/memory_hotplug.c). Blocks are onlined and offlined by writing their sysfs files:
//! `echo online_movable > /sys/devices/system/memory/memory32/state`. Adding memory needs a
//! machine with room to grow (`--maxmem`).

use kmem::errno::Errno;

use super::{Builtin, Param::*};
use crate::shell::value::Value;

/// `0` or `-errno`.
fn zero_or_errno(r: Result<(), Errno>) -> Value {
    match r {
        Ok(()) => Value::Int(0),
        Err(e) => Value::Errno(e.code()),
    }
}

/// The hotplug family.
pub static HOTPLUG_BUILTINS: &[Builtin] = &[
    Builtin {
        name: "add_memory",
        proto: "int add_memory(int nid, u64 start, u64 size)",
        doc: "adds [start, start+size) as offline memory blocks (128M-aligned); 0 or -errno",
        params: &[Uint, Uint, Uint],
        run: |c, a| {
            let nid = i32::try_from(a.u(0) as i64).unwrap_or(-1);
            Ok(zero_or_errno(c.k.m.add_memory(nid, a.u(1), a.u(2))))
        },
    },
    Builtin {
        name: "remove_memory",
        proto: "int remove_memory(u64 start, u64 size)",
        doc: "removes offline hot-added blocks of [start, start+size); 0 or -errno",
        params: &[Uint, Uint],
        run: |c, a| Ok(zero_or_errno(c.k.m.remove_memory(a.u(0), a.u(1)))),
    },
];
