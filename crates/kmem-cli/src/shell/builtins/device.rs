//! The shell's driver-core and devres functions (issue 16): devices on buses, binding, and
//! the `devm_*` allocators whose memory goes when the driver is unbound.
//!
//! A device is named by the model address of its `struct device` (a `struct device *`
//! value). Calls the kernel refuses with an error number (an unknown bus, a name taken, a
//! stale device) print `error: NAME: -ERRNO (text)` and abort the statement; allocation
//! failures return NULL, as the C calls do.

use kmem::base::DeviceHandle;
use kmem::errno::Errno;
use kmem::Order;

use super::{addr_val, Args, Builtin, Ctx, Fail, Param::*};
use crate::shell::value::{PtrKind, Value};

/// A refused call: `error: NAME: -ERRNO (text)` (shared with the CMA table).
pub(super) fn errno(name: &str, e: Errno) -> Fail {
    Fail::Error(format!("{name}: -{e:?} ({})", e.text()))
}

/// Argument `i` as a registered device.
pub(super) fn dev(c: &Ctx<'_>, a: &Args, i: usize) -> Result<DeviceHandle, Fail> {
    let model = a.u(i);
    c.k.real(model)
        .and_then(|r| c.k.m.device_handle(r))
        .ok_or_else(|| Fail::Error(format!("{model:#x} is not a registered struct device")))
}

fn dev_val(c: &Ctx<'_>, h: DeviceHandle) -> Value {
    Value::Ptr(c.k.model(h.as_usize()), PtrKind::Device)
}

fn ptr_val(c: &Ctx<'_>, p: Option<core::ptr::NonNull<u8>>) -> Value {
    match p {
        Some(p) => Value::Ptr(c.k.model(p.as_ptr() as usize), PtrKind::Void),
        None => Value::Ptr(0, PtrKind::Void),
    }
}

fn order(a: &Args, i: usize) -> Result<Order, Fail> {
    u32::try_from(a.u(i))
        .ok()
        .and_then(|o| Order::try_new(o).ok())
        .ok_or_else(|| Fail::Error(format!("order {} is out of range", a.u(i))))
}

/// The functions with block arguments are run by the shell itself (crate::shell::driver),
/// never through their table entry.
const SHELL_RUNS_IT: &str = "run by the shell (crate::shell::driver)";

/// The driver-core family.
pub static DEVICE_BUILTINS: &[Builtin] = &[
    Builtin {
        name: "bus_register",
        proto: "int bus_register(const char *name)",
        doc: "registers a bus (the `platform` bus exists from boot)",
        params: &[Str],
        run: |c, a| {
            c.k.m
                .bus_register(a.str(0))
                .map_err(|e| errno("bus_register", e))?;
            Ok(Value::Int(0))
        },
    },
    Builtin {
        name: "device_create",
        proto: "struct device *device_create(const char *name, const char *bus)",
        doc: "registers a device on a bus and probes it with a matching driver",
        params: &[Str, Str],
        run: |c, a| {
            let h =
                c.k.m
                    .device_create(a.str(0), a.str(1))
                    .map_err(|e| errno("device_create", e))?;
            Ok(dev_val(c, h))
        },
    },
    Builtin {
        name: "device_del",
        proto: "void device_del(struct device *dev)",
        doc: "unbinds (remove, then devres released newest first) and unregisters a device",
        params: &[Addr],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            c.k.m
                .device_unregister(h)
                .map_err(|e| errno("device_del", e))?;
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "device_unbind",
        proto: "void device_release_driver(struct device *dev)",
        doc: "unbinds the device's driver: its remove, then its managed resources",
        params: &[Addr],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            c.k.m
                .device_release_driver(h)
                .map_err(|e| errno("device_unbind", e))?;
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "device_attach",
        proto: "int device_attach(struct device *dev)",
        doc: "probes an unbound device with the first matching driver; 1 if bound",
        params: &[Addr],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            Ok(Value::Int(u64::from(c.k.m.device_attach(h))))
        },
    },
    Builtin {
        name: "driver_register",
        proto: "int driver_register(const char *name, const char *bus, PROBE { … } [, REMOVE { … }])",
        doc: "a driver whose probe (and remove) are blocks run with `dev` set; `return -ERRNO` fails the probe",
        params: &[Str, Str, Block, OptBlock],
        run: |_, _| Err(Fail::Error(SHELL_RUNS_IT.into())),
    },
    Builtin {
        name: "driver_unregister",
        proto: "void driver_unregister(const char *name)",
        doc: "unbinds every device of a driver registered in the shell (remove, devres) and removes it",
        params: &[Str],
        run: |_, _| Err(Fail::Error(SHELL_RUNS_IT.into())),
    },
    Builtin {
        name: "devm_add_action",
        proto: "int devm_add_action(struct device *dev, ACTION { … } [, void *data])",
        doc: "runs the block (with `data` set) when the device's resources are released",
        params: &[Addr, Block, OptAddr],
        run: |_, _| Err(Fail::Error(SHELL_RUNS_IT.into())),
    },
    Builtin {
        name: "devm_add_action_or_reset",
        proto: "int devm_add_action_or_reset(struct device *dev, ACTION { … } [, void *data])",
        doc: "devm_add_action, running the block at once if it cannot be added",
        params: &[Addr, Block, OptAddr],
        run: |_, _| Err(Fail::Error(SHELL_RUNS_IT.into())),
    },
    Builtin {
        name: "devm_kmalloc",
        proto: "void *devm_kmalloc(struct device *dev, size_t size, gfp_t gfp)",
        doc: "kmalloc memory freed when the device's driver is unbound",
        params: &[Addr, Uint, Gfp],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            Ok(ptr_val(c, c.k.m.devm_kmalloc(h, a.usize(1)?, a.gfp(2))))
        },
    },
    Builtin {
        name: "devm_kzalloc",
        proto: "void *devm_kzalloc(struct device *dev, size_t size, gfp_t gfp)",
        doc: "devm_kmalloc, zeroed",
        params: &[Addr, Uint, Gfp],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            Ok(ptr_val(c, c.k.m.devm_kzalloc(h, a.usize(1)?, a.gfp(2))))
        },
    },
    Builtin {
        name: "devm_kcalloc",
        proto: "void *devm_kcalloc(struct device *dev, size_t n, size_t size, gfp_t gfp)",
        doc: "a zeroed managed array; NULL if n * size overflows",
        params: &[Addr, Uint, Uint, Gfp],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            Ok(ptr_val(
                c,
                c.k.m.devm_kcalloc(h, a.usize(1)?, a.usize(2)?, a.gfp(3)),
            ))
        },
    },
    Builtin {
        name: "devm_krealloc",
        proto: "void *devm_krealloc(struct device *dev, void *ptr, size_t size, gfp_t gfp)",
        doc: "resizes managed memory, keeping it managed",
        params: &[Addr, Addr, Uint, Gfp],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            let p = c.k.arg_addr(a.u(1)).as_usize() as *mut u8;
            Ok(ptr_val(c, c.k.m.devm_krealloc(h, p, a.usize(2)?, a.gfp(3))))
        },
    },
    Builtin {
        name: "devm_kfree",
        proto: "void devm_kfree(struct device *dev, const void *p)",
        doc: "frees managed memory now (a WARN if the device does not manage it)",
        params: &[Addr, Addr],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            let p = c.k.arg_addr(a.u(1)).as_usize() as *const u8;
            c.k.m.devm_kfree(h, p);
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "devm_kstrdup",
        proto: "char *devm_kstrdup(struct device *dev, const char *s, gfp_t gfp)",
        doc: "a managed copy of a string",
        params: &[Addr, Str, Gfp],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            Ok(ptr_val(c, c.k.m.devm_kstrdup(h, a.str(1), a.gfp(2))))
        },
    },
    Builtin {
        name: "devm_get_free_pages",
        proto:
            "unsigned long devm_get_free_pages(struct device *dev, gfp_t gfp, unsigned int order)",
        doc: "2^order pages freed when the driver is unbound",
        params: &[Addr, Gfp, Uint],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            let o = order(a, 2)?;
            Ok(addr_val(c.k, c.k.m.devm_get_free_pages(h, a.gfp(1), o)))
        },
    },
    Builtin {
        name: "devm_free_pages",
        proto: "void devm_free_pages(struct device *dev, unsigned long addr)",
        doc: "frees managed pages now",
        params: &[Addr, Addr],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            c.k.m.devm_free_pages(h, c.k.arg_addr(a.u(1)));
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "devres_open_group",
        proto: "void *devres_open_group(struct device *dev, void *id, gfp_t gfp)",
        doc: "opens a group of managed resources; returns its id (0 for a new id)",
        params: &[Addr, Uint, Gfp],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            let id = core::num::NonZeroUsize::new(a.usize(1)?);
            Ok(match c.k.m.devres_open_group(h, id, a.gfp(2)) {
                Some(g) => Value::Int(g as u64),
                None => Value::Ptr(0, PtrKind::Void),
            })
        },
    },
    Builtin {
        name: "devres_close_group",
        proto: "void devres_close_group(struct device *dev, void *id)",
        doc: "closes a group (0: the newest open one)",
        params: &[Addr, Uint],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            let id = a.usize(1)?;
            c.k.m.devres_close_group(h, (id != 0).then_some(id));
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "devres_remove_group",
        proto: "void devres_remove_group(struct device *dev, void *id)",
        doc: "removes a group's markers, keeping its resources",
        params: &[Addr, Uint],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            let id = a.usize(1)?;
            c.k.m.devres_remove_group(h, (id != 0).then_some(id));
            Ok(Value::Void)
        },
    },
    Builtin {
        name: "devres_release_group",
        proto: "int devres_release_group(struct device *dev, void *id)",
        doc: "releases a group's resources newest first; returns how many",
        params: &[Addr, Uint],
        run: |c, a| {
            let h = dev(c, a, 0)?;
            let id = a.usize(1)?;
            let n =
                c.k.m
                    .devres_release_group(h, (id != 0).then_some(id))
                    .map_err(|e| errno("devres_release_group", e))?;
            Ok(Value::Int(n as u64))
        },
    },
];
