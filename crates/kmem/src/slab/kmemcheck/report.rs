//! kmemcheck's report (arch/x86/mm/kmemcheck/error.c of Linux 4.14: `kmemcheck_error_save`
//! and `kmemcheck_error_recall`).
//!
//! ```text
//! WARNING: kmemcheck: Caught 32-bit read from uninitialized memory (ffff888003e4a2024)
//! 80000000000000000000000000000000000000000088ffff0000000000000000
//!  i i i i u u u u i i i i i i i i u u u u u u u u u u u u u u u u
//!          ^
//! RIP: …
//! CPU: 0 UID: 0 PID: 1 Comm: … 6.18.0-kmem
//! Call Trace:
//! ```
//!
//! The first lines are Linux's: the access's width in bits, the state of its first byte and
//! its address (`%p`, printed as kmem's reports print addresses: the model address in full);
//! the 32 bytes of the `SHADOW_COPY_SIZE`-aligned chunk around it in hex; their shadow
//! letters, each after a space; a `^` under the letter of the byte read (`%*c` with width
//! `2 + 2 * offset`). Linux then prints the registers (`__show_regs`) and the stack; kmem
//! prints the instruction (`RIP:`, the faulting address of a real trap, or the kmem API's
//! caller) and its usual `dump_stack` lines.

use core::fmt::Write;

use super::KmemcheckShadow;
use crate::addr::PAGE_SIZE;
use crate::platform::{LogLevel, Platform};
use crate::slab::kfence::Site;
use crate::slab::SlabLayer;

/// `SHADOW_COPY_SIZE`: `1 << CONFIG_KMEMCHECK_SHADOW_COPY_SHIFT` (default 5).
pub const SHADOW_COPY_SIZE: usize = 32;

/// A line of at most 2 × 32 + 1 characters.
struct Line {
    buf: [u8; 2 * SHADOW_COPY_SIZE + 2],
    len: usize,
}

impl Line {
    const fn new() -> Self {
        Line {
            buf: [0; 2 * SHADOW_COPY_SIZE + 2],
            len: 0,
        }
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let b = s.as_bytes();
        let end = self.len + b.len();
        if end > self.buf.len() {
            return Err(core::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(b);
        self.len = end;
        Ok(())
    }
}

impl<P: Platform> SlabLayer<P> {
    /// Prints the report of a `size`-byte read at `p` whose first byte is in state `st`,
    /// and counts it.
    pub(super) fn kmemcheck_report(
        &self,
        p: *const u8,
        size: usize,
        st: KmemcheckShadow,
        site: Site,
    ) {
        let k = &self.kmemcheck;
        let chunk = (p as usize) & !(SHADOW_COPY_SIZE - 1);
        let off = (p as usize) & (SHADOW_COPY_SIZE - 1);
        let mut shadow = [KmemcheckShadow::Initialized; SHADOW_COPY_SIZE];
        if let Some(pa) = self.kmc_pa(chunk as *const u8) {
            for (i, s) in shadow.iter_mut().enumerate() {
                *s = k.get(pa + i);
            }
        }
        // `kmemcheck_show_addr`: the chunk's page may be hidden from the CPU.
        let page = chunk & !(PAGE_SIZE - 1);
        let hidden = self.kmc_flags(chunk as *const u8) & super::PG_HIDDEN != 0;
        if hidden {
            self.platform().protect_direct_page(page as *mut u8, false);
        }
        let mut mem = [0u8; SHADOW_COPY_SIZE];
        for (i, b) in mem.iter_mut().enumerate() {
            // SAFETY: the chunk is 32-aligned inside a tracked page (one page of the direct
            // map, in the slab layer's hands), shown above if it was hidden; machine memory
            // no Rust reference covers, read as bytes.
            *b = unsafe { core::ptr::read_volatile((chunk + i) as *const u8) };
        }
        if hidden {
            self.platform().protect_direct_page(page as *mut u8, true);
        }
        let w = self.arch().ptr_hex_digits();
        let warn = |a: core::fmt::Arguments<'_>| self.printk(LogLevel::Warning, a);
        warn(format_args!(
            "WARNING: kmemcheck: Caught {}-bit read from {} memory ({:0w$x})",
            8 * size,
            st.desc(),
            self.to_model(p as usize)
        ));
        let mut hex = Line::new();
        for b in mem {
            let _ = write!(hex, "{b:02x}");
        }
        warn(format_args!("{}", hex.as_str()));
        let mut letters = Line::new();
        for s in shadow {
            let _ = write!(letters, " {}", s.letter());
        }
        warn(format_args!("{}", letters.as_str()));
        warn(format_args!("{:>w$}", '^', w = 2 + 2 * off));
        warn(format_args!("RIP: {site}"));
        match site {
            Site::Caller(l) => self.dump_stack(LogLevel::Warning, l),
            Site::Ip(ip) | Site::Fault(ip, _) => {
                let plat = self.platform();
                warn(format_args!(
                    "CPU: {} UID: 0 PID: {} Comm: {} {} 6.18.0-kmem",
                    plat.raw_cpu_id(),
                    plat.current_pid(),
                    plat.current_comm(),
                    self.taint_str()
                ));
                warn(format_args!("Call Trace:"));
                warn(format_args!(" <TASK>"));
                match site {
                    // A stack captured in the fault handler: the faulting instruction, then
                    // the interrupted code's callers.
                    Site::Fault(_, stack) if stack.entries().contains(&ip) => {
                        let at = stack.entries().iter().position(|&e| e == ip).unwrap_or(0);
                        self.print_stack_trace(
                            LogLevel::Warning,
                            &crate::mm::stackdepot::StackTrace::from_entries(
                                &stack.entries()[at..],
                            ),
                            2,
                        );
                    }
                    // The walk did not pass through the faulting instruction (a platform
                    // whose exception entry links no frame for it): the instruction, then
                    // the whole walk from the report's frames down through the fault
                    // handler into the interrupted code's callers (kmem's own frames
                    // included, innermost first; 0 ends a short walk).
                    Site::Fault(_, stack) => {
                        let mut all = [0usize; crate::mm::stackdepot::STACK_DEPTH];
                        all[0] = ip;
                        let n = stack.entries().len().min(all.len() - 1);
                        all[1..=n].copy_from_slice(&stack.entries()[..n]);
                        self.print_stack_trace(
                            LogLevel::Warning,
                            &crate::mm::stackdepot::StackTrace::from_entries(&all[..=n]),
                            2,
                        );
                    }
                    // The faulting instruction alone, symbolised where symbols exist.
                    _ => self.print_stack_trace(
                        LogLevel::Warning,
                        &crate::mm::stackdepot::StackTrace::from_entries(&[ip]),
                        2,
                    ),
                }
                warn(format_args!(" </TASK>"));
            }
        }
        k.errors.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        self.note_report();
    }
}
