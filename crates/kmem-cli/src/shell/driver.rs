//! Drivers and devm actions written in the shell: `driver_register(NAME, BUS, PROBE [,
//! REMOVE])` whose probe and remove are block arguments, `driver_unregister(NAME)`, and
//! `devm_add_action(dev, ACTION [, data])` / `devm_add_action_or_reset`.
//!
//! A block argument is run by the kernel, later: a probe runs when a matching device is
//! added or the driver is registered, inside `device_create` → `really_probe` →
//! [`DriverOps::probe`]; an action runs when its device's resources are released. In the
//! probe, `dev` names the device being probed; in an action, `data` is the value given to
//! `devm_add_action`. Both names are bound for the block's run and the variables of those
//! names are restored afterwards; every other variable is the shell's. `return EXPR` ends a
//! probe with its result (falling off the end is 0): 0 binds, a negative errno fails the
//! probe (its managed resources are released, newest first), `-EPROBE_DEFER` defers it.
//! An error in a block (a shell error, an oops, Ctrl-C, `exit`) is reported as any shell
//! error and fails the probe with `-EINVAL`; a remove's or an action's result is ignored.
//!
//! # Re-entrancy: the shell is lent while the kernel runs
//! A probe runs while the interpreter is in the middle of a statement (evaluating the call
//! that added the device), and the driver core holds a driver's ops as `&'static dyn
//! DriverOps` with no context argument. So every call that may run a block
//! ([`may_probe`], and the functions here) **lends the whole shell**: it moves the shell's
//! state out of `&mut self` into a thread-local slot (a placeholder sharing the same
//! `Rc<Kernel>` stays behind), makes the kernel call through its own clone of the
//! `Rc<Kernel>`, and moves the state back when the call returns. A probe or action takes the
//! shell out of the slot (checking that it is the shell of the machine calling it), runs its
//! block on it — possibly lending it again for a nested `device_create` —, and puts it back
//! before returning to the kernel. At every moment the state has exactly one owner, so
//! there is no aliasing `&mut Shell` and no `unsafe`. The kernel's own locks are never held
//! across a probe (`device_model_lock` is dropped, the device is only marked busy), and a
//! block always returns to the kernel — errors, Ctrl-C and `exit` included — so nothing is
//! left locked or busy.
//!
//! Output of blocks goes to the shell's `lent_out` buffer and is written out when the
//! lending call returns (after the kernel's messages printed before it, before those printed
//! after it: the order they happened in); errors go to `lent_err`, written after the
//! statement.
//!
//! Nesting (a probe that adds a device that is probed …) is bounded by [`MAX_BLOCK_DEPTH`]
//! and by the stack the statement has used so far ([`STACK_BUDGET`]): a deeper block is not
//! run, and the probe fails with `-EINVAL`.
//!
//! The driver core wants `&'static` ops: each shell driver gets a small leaked
//! [`ShellDriver`] (an id), recycled when the driver is unregistered, so the host memory
//! kept is bounded by the most drivers registered at once.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::rc::Rc;

use kmem::base::{DevLayer, DeviceHandle, DriverHandle, DriverOps};
use kmem::errno::Errno;
use kmem_hosted::HostedPlatform;

use super::block::Item;
use super::builtins::{self, Builtin};
use super::syntax::{Expr, Span};
use super::value::{PtrKind, Value};
use super::{
    fail,
    flow::{stack_pointer, Flow},
    report, Shell, ShellError, Src, Stop,
};
use crate::kernel::Kernel;

type P = HostedPlatform;

/// How deeply blocks may nest (a probe that creates a device whose probe creates one …).
pub const MAX_BLOCK_DEPTH: usize = 8;

/// How much stack the statement may use before a block runs (measured from the top-level
/// chunk, [`Shell::stack_base`]). The evaluator recurses as deep as an expression (64
/// levels, about 400 KiB of stack per probe level in an unoptimised build when every level
/// calls from that deep), and the shell may run on a 2 MiB thread (`kmem top --script`,
/// tests): a block starts only while at least half of that is left.
pub const STACK_BUDGET: usize = 1 << 20;

/// The name devm actions written in the shell have in the `devres.log` trace (Linux prints
/// the action function's name, `#action`).
pub const ACTION_NAME: &str = "shell_action";

thread_local! {
    /// The shell lent for the kernel call running on this thread (see the module
    /// documentation); a stack only so that a wrong machine's probe finds nothing.
    static LENT: RefCell<Vec<Shell>> = const { RefCell::new(Vec::new()) };
}

/// Whether `name` is one of the functions this module runs (they take blocks, or name the
/// shell's drivers).
pub fn runs_blocks(name: &str) -> bool {
    matches!(
        name,
        "driver_register" | "driver_unregister" | "devm_add_action" | "devm_add_action_or_reset"
    )
}

/// Whether builtin `b` may run a probe, a remove or a devm action (every function of the
/// driver-core table: they add, bind, unbind or delete devices, or release resources).
pub fn may_probe(b: &Builtin) -> bool {
    // By name: a promoted table may be copied between statics, so addresses do not tell.
    builtins::device::DEVICE_BUILTINS
        .iter()
        .any(|d| d.name == b.name)
}

/// A block and the chunk it was written in.
#[derive(Clone)]
struct Code {
    items: Rc<[Item]>,
    src: Option<Rc<Src>>,
}

/// The driver core's handle on a shell driver: which one it is.
pub struct ShellDriver {
    id: usize,
}

impl DriverOps<P> for ShellDriver {
    fn probe(&self, m: &DevLayer<P>, dev: DeviceHandle) -> Result<(), Errno> {
        with_lent(m, |sh| sh.run_probe(self.id, dev)).unwrap_or(Err(Errno::ENODEV))
    }

    fn remove(&self, m: &DevLayer<P>, dev: DeviceHandle) {
        let _ = with_lent(m, |sh| sh.run_remove(self.id, dev));
    }
}

/// A devm action written in the shell (`DevmAction`): `id` is its entry in the shell.
fn shell_action(m: &DevLayer<P>, id: usize) {
    let _ = with_lent(m, |sh| sh.run_action(id));
}

/// Runs `f` on the lent shell of machine `m`; `None` if no shell of `m` is lent (a block
/// cannot run outside the shell's own calls).
fn with_lent<T>(m: &DevLayer<P>, f: impl FnOnce(&mut Shell) -> T) -> Option<T> {
    let mut sh = LENT.with(|l| l.borrow_mut().pop())?;
    let own: &DevLayer<P> = &sh.k.m;
    if !core::ptr::eq(own, m) {
        LENT.with(|l| l.borrow_mut().push(sh));
        return None;
    }
    let r = f(&mut sh);
    LENT.with(|l| l.borrow_mut().push(sh));
    Some(r)
}

/// A driver registered from the shell.
struct Driver {
    name: String,
    ops: &'static ShellDriver,
    /// Set once `driver_register` returned.
    handle: Option<DriverHandle>,
    probe: Code,
    remove: Option<Code>,
}

/// A devm action added from the shell.
struct Action {
    code: Code,
    data: Value,
}

/// The shell's drivers and actions.
#[derive(Default)]
pub struct Drivers {
    /// By their ops' id.
    drivers: BTreeMap<usize, Driver>,
    /// Ops of unregistered drivers, for the next ones.
    free_ops: Vec<&'static ShellDriver>,
    next_ops: usize,
    actions: BTreeMap<usize, Action>,
    next_action: usize,
}

impl Drivers {
    fn take_ops(&mut self) -> &'static ShellDriver {
        self.free_ops.pop().unwrap_or_else(|| {
            self.next_ops += 1;
            // Leaked on purpose: the driver core keeps `&'static` ops. Recycled (free_ops),
            // so at most one per driver registered at once.
            Box::leak(Box::new(ShellDriver { id: self.next_ops }))
        })
    }
}

/// A kernel error number for `code` (positive), if the driver core knows it.
fn errno_of(code: u64) -> Option<Errno> {
    use Errno::*;
    [
        EPERM,
        ENOENT,
        ESRCH,
        EIO,
        ENXIO,
        EBADF,
        EAGAIN,
        ENOMEM,
        EACCES,
        EFAULT,
        EBUSY,
        EEXIST,
        ENODEV,
        EINVAL,
        EMFILE,
        EFBIG,
        ENOSPC,
        EOVERFLOW,
        EPROBE_DEFER,
    ]
    .into_iter()
    .find(|e| e.code() as u64 == code)
}

impl Shell {
    /// Makes kernel call `f` with the shell lent (see the module documentation), then
    /// writes what blocks printed meanwhile to `out`.
    pub(super) fn lend<T>(
        &mut self,
        out: &mut dyn Write,
        f: impl FnOnce(&Kernel, &mut dyn Write) -> T,
    ) -> T {
        let k = Rc::clone(&self.k);
        let me = std::mem::replace(self, Shell::on(Rc::clone(&k)));
        LENT.with(|l| l.borrow_mut().push(me));
        let mut own = Vec::new();
        let r = f(&k, &mut own);
        if let Some(me) = LENT.with(|l| l.borrow_mut().pop()) {
            *self = me;
        }
        let _ = out.write_all(&std::mem::take(&mut self.lent_out));
        let _ = out.write_all(&own);
        r
    }

    /// Runs `code` with `binds` set as variables; the value of its `return`, if it ended
    /// with one. `Err` when it did not complete (reported already).
    fn run_block(
        &mut self,
        code: &Code,
        binds: &[(&str, Value)],
        what: &str,
    ) -> Result<Option<(Value, Span)>, ()> {
        if self.quit {
            // `exit` in an earlier block of this call: nothing more runs.
            return Err(());
        }
        let used = self.stack_base.map_or(0, |b| b.abs_diff(stack_pointer()));
        let refused = if self.block_depth >= MAX_BLOCK_DEPTH {
            Some(format!(
                "{what}: blocks nested too deeply (more than {MAX_BLOCK_DEPTH} levels): not run"
            ))
        } else if used > STACK_BUDGET {
            Some(format!(
                "{what}: the calls around it use {} KiB of stack (more than {}): not run",
                used >> 10,
                STACK_BUDGET >> 10
            ))
        } else {
            None
        };
        if let Some(msg) = refused {
            self.block_error(code, ShellError { msg, span: None });
            return Err(());
        }
        self.block_depth += 1;
        let saved: Vec<(String, Option<Value>)> = binds
            .iter()
            .map(|(n, v)| (n.to_string(), self.vars.insert(n.to_string(), v.clone())))
            .collect();
        let saved_ret = self.ret.take();
        let saved_src = std::mem::replace(&mut self.src, code.src.clone());
        let mut out = std::mem::take(&mut self.lent_out);
        // What the kernel printed before the block ran comes first.
        self.flush_console(&mut out);
        let r = self.exec_body(&code.items, &mut out);
        self.flush_console(&mut out);
        self.lent_out = out;
        let ret = std::mem::replace(&mut self.ret, saved_ret);
        self.src = saved_src;
        for (n, v) in saved {
            match v {
                Some(v) => self.vars.insert(n, v),
                None => self.vars.remove(&n),
            };
        }
        self.block_depth -= 1;
        match r {
            Ok(_) if self.quit => Err(()),
            Ok(Flow::Return) => Ok(ret),
            Ok(_) => Ok(None),
            Err(Stop::Error(e)) => {
                self.block_error(code, e);
                Err(())
            }
            Err(Stop::Oops) => Err(()),
        }
    }

    /// Reports error `e` of a block, pointing into the chunk it was written in.
    fn block_error(&mut self, code: &Code, e: ShellError) {
        self.errors += 1;
        let mut err = std::mem::take(&mut self.lent_err);
        match &code.src {
            Some(src) => report(&mut err, &src.text, src.origin(), &e),
            None => {
                let _ = writeln!(err, "error: {}", e.msg);
            }
        }
        self.lent_err = err;
    }

    fn dev_value(&self, dev: DeviceHandle) -> Value {
        Value::Ptr(self.k.model(dev.as_usize()), PtrKind::Device)
    }

    /// The probe of driver `id` on `dev`.
    fn run_probe(&mut self, id: usize, dev: DeviceHandle) -> Result<(), Errno> {
        let Some(code) = self.drv.drivers.get(&id).map(|d| d.probe.clone()) else {
            return Err(Errno::ENODEV);
        };
        let v = self.dev_value(dev);
        let Ok(ret) = self.run_block(&code, &[("dev", v)], "probe") else {
            return Err(Errno::EINVAL);
        };
        let Some((v, span)) = ret else {
            return Ok(());
        };
        let n = match v.plain() {
            Value::Int(n) => n as i64,
            v => {
                let msg = format!(
                    "a probe returns an int (0 or -ERRNO), not {} {v}",
                    v.type_name()
                );
                self.block_error(
                    &code,
                    ShellError {
                        msg,
                        span: Some(span),
                    },
                );
                return Err(Errno::EINVAL);
            }
        };
        if n == 0 {
            return Ok(());
        }
        match errno_of(n.unsigned_abs()).filter(|_| n < 0) {
            Some(e) => Err(e),
            None => {
                let msg = format!(
                    "a probe returns 0 or a negative error number the driver core knows \
                     (-ENOMEM, -ENODEV, -EPROBE_DEFER …), not {n}: it fails with -EINVAL"
                );
                self.block_error(
                    &code,
                    ShellError {
                        msg,
                        span: Some(span),
                    },
                );
                Err(Errno::EINVAL)
            }
        }
    }

    /// The remove of driver `id` on `dev`.
    fn run_remove(&mut self, id: usize, dev: DeviceHandle) {
        let Some(Some(code)) = self.drv.drivers.get(&id).map(|d| d.remove.clone()) else {
            return;
        };
        let v = self.dev_value(dev);
        let _ = self.run_block(&code, &[("dev", v)], "remove");
    }

    /// Devm action `id`, released: it runs once and is forgotten.
    fn run_action(&mut self, id: usize) {
        let Some(a) = self.drv.actions.remove(&id) else {
            return;
        };
        let _ = self.run_block(&a.code, &[("data", a.data)], "action");
    }

    /// A block argument `e` (argument `i` of `name`).
    fn block_arg(&self, name: &str, i: usize, e: &Expr) -> Result<Code, Stop> {
        match e {
            Expr::Block(items, _) => Ok(Code {
                items: Rc::clone(items),
                src: self.src.clone(),
            }),
            e => fail(
                format!("{name}: argument {}: expected a block {{ … }}", i + 1),
                e.span(),
            ),
        }
    }

    /// A string argument.
    fn str_arg(
        &mut self,
        name: &str,
        i: usize,
        e: &Expr,
        out: &mut dyn Write,
    ) -> Result<String, Stop> {
        match self.eval(e, out)? {
            Value::Str(s) => Ok(s),
            v => fail(
                format!(
                    "{name}: argument {}: expected a string, got {} {v}",
                    i + 1,
                    v.type_name()
                ),
                e.span(),
            ),
        }
    }

    /// Calls `b` (one of [`runs_blocks`]) with `args` (their number checked).
    pub(super) fn call_with_blocks(
        &mut self,
        b: &Builtin,
        args: &[Expr],
        span: Span,
        out: &mut dyn Write,
    ) -> Result<Value, Stop> {
        let name = b.name;
        match name {
            "driver_register" => {
                let drv = self.str_arg(name, 0, &args[0], out)?;
                let bus = self.str_arg(name, 1, &args[1], out)?;
                let probe = self.block_arg(name, 2, &args[2])?;
                let remove = match args.get(3) {
                    Some(e) => Some(self.block_arg(name, 3, e)?),
                    None => None,
                };
                self.driver_register(&drv, &bus, probe, remove, span, out)
            }
            "driver_unregister" => {
                let drv = self.str_arg(name, 0, &args[0], out)?;
                self.driver_unregister(&drv, span, out)
            }
            _ => {
                let dev = self.eval(&args[0], out)?.plain();
                let code = self.block_arg(name, 1, &args[1])?;
                let data = match args.get(2) {
                    Some(e) => self.eval(e, out)?.plain(),
                    None => Value::Ptr(0, PtrKind::Void),
                };
                if let Err(m) = builtins::check_param(builtins::Param::Addr, &data) {
                    return fail(format!("{name}: argument 3: {m}"), args[2].span());
                }
                self.devm_add_action(name, &dev, code, data, args[0].span(), out)
            }
        }
    }

    fn driver_register(
        &mut self,
        drv: &str,
        bus: &str,
        probe: Code,
        remove: Option<Code>,
        span: Span,
        out: &mut dyn Write,
    ) -> Result<Value, Stop> {
        let ops = self.drv.take_ops();
        self.drv.drivers.insert(
            ops.id,
            Driver {
                name: drv.to_string(),
                ops,
                handle: None,
                probe,
                remove,
            },
        );
        let r = self.lend(out, |k, _| k.m.driver_register(drv, bus, ops));
        match r {
            Ok(h) => {
                if let Some(d) = self.drv.drivers.get_mut(&ops.id) {
                    d.handle = Some(h);
                }
                Ok(Value::Int(0))
            }
            Err(e) => {
                self.drv.drivers.remove(&ops.id);
                self.drv.free_ops.push(ops);
                fail(format!("driver_register: -{e:?} ({})", e.text()), span)
            }
        }
    }

    fn driver_unregister(
        &mut self,
        drv: &str,
        span: Span,
        out: &mut dyn Write,
    ) -> Result<Value, Stop> {
        let found = self
            .drv
            .drivers
            .values()
            .find(|d| d.name == drv)
            .map(|d| (d.ops, d.handle));
        let Some((ops, handle)) = found else {
            return fail(
                format!("driver_unregister: no driver '{drv}' was registered from the shell"),
                span,
            );
        };
        let Some(h) = handle else {
            return fail(
                format!("driver_unregister: -EBUSY (driver '{drv}' is being registered)"),
                span,
            );
        };
        match self.lend(out, |k, _| k.m.driver_unregister(h)) {
            Ok(()) => {
                self.drv.drivers.remove(&ops.id);
                self.drv.free_ops.push(ops);
                Ok(Value::Void)
            }
            Err(e) => fail(format!("driver_unregister: -{e:?} ({})", e.text()), span),
        }
    }

    fn devm_add_action(
        &mut self,
        name: &str,
        dev: &Value,
        code: Code,
        data: Value,
        dev_span: Span,
        out: &mut dyn Write,
    ) -> Result<Value, Stop> {
        let model = match dev {
            Value::Int(x) | Value::Ptr(x, _) => *x,
            v => {
                return fail(
                    format!(
                        "{name}: argument 1: expected a struct device *, got {} {v}",
                        v.type_name()
                    ),
                    dev_span,
                )
            }
        };
        let Some(h) = self.k.real(model).and_then(|r| self.k.m.device_handle(r)) else {
            return fail(
                format!("{name}: {model:#x} is not a registered struct device"),
                dev_span,
            );
        };
        self.drv.next_action += 1;
        let id = self.drv.next_action;
        self.drv.actions.insert(id, Action { code, data });
        let or_reset = name == "devm_add_action_or_reset";
        let r = self.lend(out, |k, _| {
            if or_reset {
                k.m.devm_add_action_or_reset(h, shell_action, id, ACTION_NAME)
            } else {
                k.m.devm_add_action(h, shell_action, id, ACTION_NAME)
            }
        });
        match r {
            Ok(()) => Ok(Value::Int(0)),
            Err(e) => {
                // Not added (an `_or_reset` action has run and is gone already).
                self.drv.actions.remove(&id);
                Ok(Value::Errno(e.code()))
            }
        }
    }
}
