//! Reports in Linux's formats: `dump_page` (mm/debug.c), `bad_page` (mm/page_alloc.c),
//! `WARN()` (kernel/panic.c `__warn`); `warn_alloc` and `show_mem`, which need the zones, are in
//! [`crate::page_alloc`].
//!
//! The one layer above the memory model: every allocator reports through it, and it knows
//! nothing of them (it sees pages, the log and the report counters only).
//!
//! Every report is counted in the machine's [`crate::mm::Taint`] so a caller (the shell,
//! a test) can tell that something was reported; none of them stops the machine.

use core::fmt;
use core::panic::Location;
use core::sync::atomic::Ordering;

use crate::mm::mm_types::{pg, PagePtr};
use crate::mm::stackdepot::StackTrace;
use crate::mm::MemoryModel;
use crate::platform::{LogLevel, Platform};

/// `TAINT_BAD_PAGE`.
pub const TAINT_BAD_PAGE: u32 = 1 << 5;
/// `TAINT_WARN`.
pub const TAINT_WARN: u32 = 1 << 9;
/// `TAINT_BAD_PAGE`-like flag for slab corruption reports (`TAINT_BAD_PAGE` in Linux too).
pub const TAINT_SLAB: u32 = TAINT_BAD_PAGE;

impl<P: Platform> MemoryModel<P> {
    /// The taint part of a report's header (`Not tainted`, `Tainted: G    B`, …).
    pub(crate) fn taint_str(&self) -> &'static str {
        let t = self.taint_flags.load(Ordering::Relaxed);
        match (t & TAINT_BAD_PAGE != 0, t & TAINT_WARN != 0) {
            (false, false) => "Not tainted",
            (true, false) => "Tainted: G    B",
            (false, true) => "Tainted: G        W",
            (true, true) => "Tainted: G    B   W",
        }
    }

    /// Adds taint flags.
    pub fn add_taint(&self, flags: u32) {
        self.taint_flags.fetch_or(flags, Ordering::Relaxed);
    }

    /// Prints the `CPU: … Comm: …` line and the call trace (`dump_stack_lvl`): the current
    /// stack through the platform's walker, one symbolised frame a line; on a platform
    /// without a walker, one line naming the Rust caller.
    pub fn dump_stack(&self, level: LogLevel, caller: &Location<'_>) {
        let cpu = self.platform().raw_cpu_id();
        self.printk(
            level,
            format_args!(
                "CPU: {} UID: 0 PID: {} Comm: {} {} 6.18.0-kmem",
                cpu,
                self.platform().current_pid(),
                self.platform().current_comm(),
                self.taint_str()
            ),
        );
        let trace = self.stack_trace_save();
        self.printk(level, format_args!("Call Trace:"));
        self.printk(level, format_args!(" <TASK>"));
        if trace.entries().is_empty() {
            self.printk(
                level,
                format_args!("  {}:{}:{}", caller.file(), caller.line(), caller.column()),
            );
        }
        self.print_stack_trace(level, &trace, 1);
        self.printk(level, format_args!(" </TASK>"));
    }

    /// `stack_trace_print`: one `%pS` line per entry, indented by `spaces`.
    pub fn print_stack_trace(&self, level: LogLevel, trace: &StackTrace, spaces: usize) {
        for &e in trace.entries() {
            self.printk(level, format_args!("{:w$}{}", "", self.sym(e), w = spaces));
        }
    }

    /// `dump_page`: prints the `struct page` of `page` and why.
    pub fn dump_page(&self, page: PagePtr, reason: &str) {
        if !self.check_page_ptr(page, "dump_page") {
            return;
        }
        let pfn = self.page_to_pfn(page);
        let mapcount = if page.page_type().is_some() {
            0
        } else {
            page.raw_page_type().wrapping_add(1) as i32
        };
        self.printk(
            LogLevel::Warning,
            format_args!(
                "page: refcount:{} mapcount:{} mapping:{:0w$x} index:{:#x} pfn:{:#x}",
                page.refcount(),
                mapcount,
                self.to_model(page.mapping()),
                page.index(),
                pfn.as_u64(),
                w = self.arch().ptr_hex_digits()
            ),
        );
        if page.is_head() {
            self.printk(
                LogLevel::Warning,
                format_args!("head: order:{} pincount:0", page.compound_order()),
            );
        }
        self.printk(
            LogLevel::Warning,
            format_args!(
                "flags: {:#x}({})",
                page.flags(),
                FlagNames(self, page.flags())
            ),
        );
        if let Some(t) = page.page_type() {
            self.printk(
                LogLevel::Warning,
                format_args!("page_type: {:x}({})", page.raw_page_type() >> 24, t.name()),
            );
        }
        // SAFETY: `page` points at 64 initialised bytes of the memmap.
        let raw: [u8; 64] = unsafe { core::ptr::read(page.as_ptr().cast::<[u8; 64]>()) };
        let words = self.arch().ptr_hex_digits() / 2;
        for line in raw.chunks(32) {
            let mut buf = crate::mm::printk::LineBuf::new();
            let _ = fmt::Write::write_str(&mut buf, "raw:");
            for w in line.chunks(words) {
                let mut v = 0u64;
                for (i, b) in w.iter().enumerate() {
                    v |= (*b as u64) << (8 * i);
                }
                // Pointers (list links, compound heads…) are shown in the machine's layout.
                if words == 8 && v != 0 {
                    v = self.to_model(v as usize);
                }
                let _ = fmt::Write::write_fmt(&mut buf, format_args!(" {:0w$x}", v, w = words * 2));
            }
            self.printk(LogLevel::Warning, format_args!("{}", buf.as_str()));
        }
        self.printk(
            LogLevel::Warning,
            format_args!("page dumped because: {reason}"),
        );
    }

    /// `bad_page`: reports a page in a state it must not be in. The page is left as it is.
    #[track_caller]
    pub fn bad_page(&self, page: PagePtr, reason: &str) {
        if !self.check_page_ptr(page, "bad_page") {
            return;
        }
        let caller = Location::caller();
        self.count_bug();
        self.printk(
            LogLevel::Alert,
            format_args!(
                "BUG: Bad page state in process {}  pfn:{:05x}",
                self.platform().current_comm(),
                self.page_to_pfn(page).as_u64()
            ),
        );
        self.dump_page(page, reason);
        self.printk(LogLevel::Alert, format_args!("Modules linked in:"));
        self.add_taint(TAINT_BAD_PAGE);
        self.dump_stack(LogLevel::Alert, caller);
    }

    /// Reports an address that is not memory kmem manages, where a page was expected.
    #[track_caller]
    pub fn bad_address(&self, what: &str, addr: u64) {
        let caller = Location::caller();
        self.count_bug();
        self.printk(
            LogLevel::Alert,
            format_args!(
                "BUG: Bad page state in process {}  pfn:invalid",
                self.platform().current_comm()
            ),
        );
        self.printk(
            LogLevel::Alert,
            format_args!(
            "{what}: address {addr:#0w$x} has no struct page (outside the direct map or memmap)",
            w = self.arch().ptr_hex_digits() + 2
        ),
        );
        self.add_taint(TAINT_BAD_PAGE);
        self.dump_stack(LogLevel::Alert, caller);
    }

    /// `WARN()`: prints a warning with the `cut here` frame and goes on.
    #[track_caller]
    pub fn warn(&self, args: fmt::Arguments<'_>) {
        self.warn_at(Location::caller(), args);
    }

    /// `WARN()` naming its caller explicitly: for reports made on behalf of the caller of an
    /// API (SLUB's wrong-cache and stale-handle warnings).
    pub(crate) fn warn_at(&self, caller: &Location<'_>, args: fmt::Arguments<'_>) {
        self.taint.warnings.fetch_add(1, Ordering::Relaxed);
        self.printk(
            LogLevel::Warning,
            format_args!("------------[ cut here ]------------"),
        );
        self.printk(
            LogLevel::Warning,
            format_args!(
                "WARNING: CPU: {} PID: {} at {}:{} {}",
                self.platform().raw_cpu_id(),
                self.platform().current_pid(),
                caller.file(),
                caller.line(),
                args
            ),
        );
        self.printk(LogLevel::Warning, format_args!("Modules linked in:"));
        self.add_taint(TAINT_WARN);
        self.dump_stack(LogLevel::Warning, caller);
        self.printk(
            LogLevel::Warning,
            format_args!("---[ end trace 0000000000000000 ]---"),
        );
    }
}

/// `%pGp`: flag names, then `node=0|zone=N`.
struct FlagNames<'a, P: Platform>(&'a MemoryModel<P>, u64);

impl<P: Platform> fmt::Display for FlagNames<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, name) in pg::NAMES {
            if self.1 & bit != 0 {
                write!(f, "{name}|")?;
            }
        }
        let kind = crate::mmzone::ZoneType::from_index(
            ((self.1 & pg::ZONE_MASK) >> pg::ZONE_SHIFT) as usize,
        );
        let idx = self
            .0
            .arch()
            .zones()
            .iter()
            .position(|z| *z == kind)
            .unwrap_or(0);
        let nid = (self.1 & pg::NODE_MASK) >> pg::NODE_SHIFT;
        write!(f, "node={nid}|zone={idx}")
    }
}

/// The lock validator reports through the machine: task = the platform's current task,
/// lines = printk (console only while the log lock is taken), each report a counted warning
/// that taints (`W`), as Linux's `debug_locks_off` + `print_circular_bug` do.
impl<P: Platform> kds::lockdep::LockdepHost for MemoryModel<P> {
    fn task_id(&self) -> u64 {
        u64::from(self.plat.current_pid())
    }
    fn task_name(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        write!(
            w,
            "{}/{}",
            self.plat.current_comm(),
            self.plat.current_pid()
        )
    }
    fn print_line(&self, level: u8, line: &str) {
        let level = if level == kds::lockdep::LEVEL_DEBUG {
            LogLevel::Debug
        } else {
            LogLevel::Warning
        };
        self.printk_nowait(level, format_args!("{line}"));
    }
    fn kernel_ident(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        write!(w, "6.18.0-kmem #1 {}", self.taint_str())
    }
    fn reported(&self, _kind: kds::lockdep::Report) {
        self.taint.warnings.fetch_add(1, Ordering::Relaxed);
        self.add_taint(TAINT_WARN);
    }
}
