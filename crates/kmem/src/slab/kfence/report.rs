//! KFENCE's reports and debugfs files (mm/kfence/report.c, the debugfs part of core.c), in
//! Linux 6.18's format.
//!
//! Addresses are printed as Linux prints them with `no_hash_pointers` (the machine's model
//! addresses, in full); the corruption dump shows `!` for a changed byte unless the machine
//! booted with `no_hash_pointers`, as in Linux. Stacks are the platform's walk
//! ([`crate::platform::Platform::stack_trace`], kept in the stack depot), symbolised; the
//! first line names the caller of the kmem function (`file:line:col`), or, for a real fault
//! caught by the platform's fault handler, the faulting instruction (`%pS`). On a platform
//! without a walker a stack is that one line.

use core::fmt::{self, Write};
use core::panic::Location;

use super::{
    canary_pattern, pool_read, Kfence, KfenceError, KfenceObjectState, Meta, Track, COUNTER_NAMES,
    KFENCE_NUM_OBJECTS,
};
use crate::addr::PAGE_SIZE;
use crate::debug::TAINT_BAD_PAGE;
use crate::mm::printk::LineBuf;
use crate::mm::stackdepot::StackTrace;
use crate::platform::{LogLevel, Platform};
use crate::slab::SlabLayer;

/// Where an access or a free happened: the `%pS` of a report's first line and its stack.
#[derive(Clone, Copy, Debug)]
pub enum Site {
    /// A kmem API's caller.
    Caller(&'static Location<'static>),
    /// The faulting instruction of a real fault (0: unknown).
    Ip(usize),
    /// The faulting instruction of a real fault and the stack captured in the fault handler
    /// (the interrupted code's frames follow the handler's and the signal frame's).
    Fault(usize, StackTrace),
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Site::Caller(l) => write!(f, "{}:{}:{}", l.file(), l.line(), l.column()),
            Site::Ip(ip) | Site::Fault(ip, _) => write!(f, "0x{ip:x}"),
        }
    }
}

/// A [`Site`] with its instruction address symbolised (`%pS`).
struct SiteSym<'a, P: Platform>(&'a SlabLayer<P>, Site);

impl<P: Platform> fmt::Display for SiteSym<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Site::Ip(ip) | Site::Fault(ip, _) if ip != 0 => write!(f, "{}", self.0.sym(ip)),
            s => write!(f, "{s}"),
        }
    }
}

/// `%lu.%06lus` of a nanosecond count.
struct Secs(u64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.0 / 1_000_000_000,
            (self.0 % 1_000_000_000) / 1000
        )
    }
}

/// `print_diff_canary`: up to 16 canary bytes from `addr`, not into the object nor past the
/// page, `.` for an intact byte, `!` (or the byte, with `no_hash_pointers`) for a changed one.
struct CanaryDiff {
    bytes: [(u8, bool); 16],
    len: usize,
    show: bool,
}

impl fmt::Display for CanaryDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for &(b, ok) in &self.bytes[..self.len] {
            if ok {
                f.write_str(" .")?;
            } else if self.show {
                write!(f, " 0x{b:02x}")?;
            } else {
                f.write_str(" !")?;
            }
        }
        f.write_str(" ]")
    }
}

impl<P: Platform> SlabLayer<P> {
    /// `0x` and an address the way kmem's reports show it (the model address, full width).
    fn kfence_addr(&self, real: usize) -> impl fmt::Display {
        struct A(u64, usize);
        impl fmt::Display for A {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "0x{:0w$x}", self.0, w = self.1)
            }
        }
        A(self.to_model(real), self.arch().ptr_hex_digits())
    }

    /// `get_stack_skipnr`: how many leading entries of `t` are KFENCE's internals (functions
    /// named `kfence_*` or `__kfence_*`, as Linux matches them).
    fn kfence_skipnr(&self, t: &StackTrace) -> usize {
        let mut skip = 0;
        let mut buf = LineBuf::new();
        for (i, &e) in t.entries().iter().enumerate() {
            buf.clear();
            let _ = write!(buf, "{}", self.sym(e));
            let s = buf.as_str();
            // The function's own name: before the offset, after the last path separator.
            let name = s.split('+').next().unwrap_or(s);
            let name = name.rsplit("::").next().unwrap_or(name);
            if (name.starts_with("kfence_") || name.starts_with("__kfence_")) && skip == i {
                skip = i + 1;
            } else {
                break;
            }
        }
        skip.min(t.entries().len())
    }

    /// `kfence_print_stack`.
    fn kfence_print_track(
        &self,
        meta: &Meta,
        t: &Track,
        alloc: bool,
        emit: &mut dyn FnMut(fmt::Arguments<'_>),
    ) {
        let what = if alloc {
            "allocated"
        } else if meta.state == KfenceObjectState::RcuFreeing {
            "rcu freeing"
        } else {
            "freed"
        };
        let ago = self.timestamp_ns().saturating_sub(t.ts_nsec);
        emit(format_args!(
            "{what} by task {} on cpu {} at {} ({} ago):",
            t.pid,
            t.cpu,
            Secs(t.ts_nsec),
            Secs(ago)
        ));
        let trace = self.stack_depot().fetch(t.stack);
        match t.site {
            // stack_trace_print(…, 0): one space, then %pS, after KFENCE's own frames.
            Some(_) if !trace.entries().is_empty() => {
                for &e in &trace.entries()[self.kfence_skipnr(&trace)..] {
                    emit(format_args!(" {}", self.sym(e)));
                }
            }
            Some(s) => emit(format_args!(" {}", Site::Caller(s))),
            None => emit(format_args!(
                " no {} stack",
                if alloc { "allocation" } else { "deallocation" }
            )),
        }
    }

    /// `kfence_print_object`: one line per `emit` call.
    fn kfence_print_object(&self, i: usize, m: &Meta, emit: &mut dyn FnMut(fmt::Arguments<'_>)) {
        if m.state == KfenceObjectState::Unused {
            emit(format_args!("kfence-#{i} unused"));
            return;
        }
        let name = m
            .cache
            .and_then(|c| self.kmem_cache_name(c))
            .unwrap_or("<destroyed>");
        emit(format_args!(
            "kfence-#{i}: {}-{}, size={}, cache={name}",
            self.kfence_addr(m.addr),
            self.kfence_addr(m.addr + m.size - 1),
            m.size
        ));
        emit(format_args!(""));
        self.kfence_print_track(m, &m.alloc, true, emit);
        if matches!(
            m.state,
            KfenceObjectState::Freed | KfenceObjectState::RcuFreeing
        ) {
            emit(format_args!(""));
            self.kfence_print_track(m, &m.free, false, emit);
        }
    }

    /// The canary dump of a corruption report at `addr`.
    fn kfence_canary_diff(&self, kf: &Kfence<P>, addr: usize, m: &Meta) -> CanaryDiff {
        let until = addr + 16;
        let page_end = (addr + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let end = if addr < m.addr {
            until.min(m.addr)
        } else {
            until.min(page_end)
        };
        let mut d = CanaryDiff {
            bytes: [(0, true); 16],
            len: 0,
            show: kf.no_hash_pointers,
        };
        for a in addr..end {
            // SAFETY: canary bytes of an object's data page, unprotected while it is freed
            // (corruption reports are made before the page is protected).
            let b = unsafe { pool_read(a) };
            d.bytes[d.len] = (b, b == canary_pattern(a));
            d.len += 1;
        }
        d
    }

    /// `kfence_report_error`: prints the report, counts a BUG and taints the kernel
    /// (`TAINT_BAD_PAGE`). `obj` is the object concerned (index and a copy of its metadata,
    /// taken under the lock the caller holds); `None` only for [`KfenceError::Invalid`].
    pub(super) fn kfence_report(
        &self,
        kf: &Kfence<P>,
        addr: usize,
        is_write: bool,
        site: Site,
        obj: Option<(usize, &Meta)>,
        ty: KfenceError,
    ) {
        let err = |a: fmt::Arguments<'_>| self.printk(LogLevel::Err, a);
        // %pS of the faulting instruction where there is one, the Rust caller otherwise.
        let site = SiteSym(self, site);
        let rw = if is_write { "write" } else { "read" };
        let a = self.kfence_addr(addr);
        let idx = obj.map_or(-1, |(i, _)| i as isize);
        err(format_args!(
            "=================================================================="
        ));
        match (ty, obj) {
            (KfenceError::Oob, Some((_, m))) => {
                let left = addr < m.addr;
                let dist = if left { m.addr - addr } else { addr - m.addr };
                let side = if left { "left" } else { "right" };
                err(format_args!("BUG: KFENCE: out-of-bounds {rw} in {site}"));
                err(format_args!(""));
                err(format_args!(
                    "Out-of-bounds {rw} at {a} ({dist}B {side} of kfence-#{idx}):"
                ));
            }
            (KfenceError::Uaf, _) => {
                err(format_args!("BUG: KFENCE: use-after-free {rw} in {site}"));
                err(format_args!(""));
                err(format_args!(
                    "Use-after-free {rw} at {a} (in kfence-#{idx}):"
                ));
            }
            (KfenceError::Corruption, Some((_, m))) => {
                let diff = self.kfence_canary_diff(kf, addr, m);
                err(format_args!("BUG: KFENCE: memory corruption in {site}"));
                err(format_args!(""));
                err(format_args!(
                    "Corrupted memory at {a} {diff} (in kfence-#{idx}):"
                ));
            }
            (KfenceError::InvalidFree, _) => {
                err(format_args!("BUG: KFENCE: invalid free in {site}"));
                err(format_args!(""));
                err(format_args!("Invalid free of {a} (in kfence-#{idx}):"));
            }
            _ => {
                err(format_args!("BUG: KFENCE: invalid {rw} in {site}"));
                err(format_args!(""));
                err(format_args!("Invalid {rw} at {a}:"));
            }
        }
        err(format_args!(" {site}"));
        // The rest of the stack (the access's or the free's): for a real fault, what follows
        // the faulting instruction in the stack the handler captured; else the current stack
        // after KFENCE's frames.
        let (stack, skip) = match site.1 {
            Site::Fault(ip, stack) => {
                let at = stack.entries().iter().position(|&e| e == ip);
                let skip = at.map_or_else(|| self.kfence_skipnr(&stack), |i| i + 1);
                (stack, skip)
            }
            _ => {
                let stack = self.stack_trace_save();
                (stack, self.kfence_skipnr(&stack))
            }
        };
        self.print_stack_trace(
            LogLevel::Err,
            &StackTrace::from_entries(&stack.entries()[skip..]),
            1,
        );
        if let Some((i, m)) = obj {
            err(format_args!(""));
            self.kfence_print_object(i, m, &mut |l| self.printk(LogLevel::Err, l));
        }
        err(format_args!(""));
        // dump_stack_print_info(KERN_ERR), as kmem's dump_stack prints it.
        let plat = self.platform();
        err(format_args!(
            "CPU: {} UID: 0 PID: {} Comm: {} {} 6.18.0-kmem",
            plat.raw_cpu_id(),
            plat.current_pid(),
            plat.current_comm(),
            self.taint_str()
        ));
        err(format_args!(
            "=================================================================="
        ));
        self.count_bug();
        self.add_taint(TAINT_BAD_PAGE);
    }

    /// `/sys/kernel/debug/kfence/stats` (`stats_show`).
    ///
    /// # Errors
    /// Those of `out`.
    pub fn show_kfence_stats(&self, out: &mut dyn Write) -> fmt::Result {
        let Some((enabled, counters)) = self.kfence_stats() else {
            return Ok(());
        };
        writeln!(out, "enabled: {}", u8::from(enabled))?;
        for (name, v) in counters {
            writeln!(out, "{name}: {v}")?;
        }
        debug_assert_eq!(counters.len(), COUNTER_NAMES.len());
        Ok(())
    }

    /// `/sys/kernel/debug/kfence/objects` (`show_object` for every object): each object as
    /// `kfence_print_object` prints it, then a line of dashes.
    ///
    /// # Errors
    /// Those of `out`.
    pub fn show_kfence_objects(&self, out: &mut dyn Write) -> fmt::Result {
        let Some(kf) = self.kfence() else {
            return Ok(());
        };
        let mut r = Ok(());
        for i in 0..KFENCE_NUM_OBJECTS {
            // Lock order: kfence_freelist_lock (module docs); copied out, printed unlocked.
            let m = kf.objs.lock().meta[i];
            self.kfence_print_object(i, &m, &mut |l| {
                if r.is_ok() {
                    r = writeln!(out, "{l}");
                }
            });
            r?;
            out.write_str("---------------------------------\n")?;
        }
        Ok(())
    }
}
