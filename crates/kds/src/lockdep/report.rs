//! The reports of [`super::Lockdep`], in the words and layout of kernel/locking/lockdep.c
//! (`print_circular_bug`, `print_deadlock_bug`, `print_unlock_imbalance_bug`,
//! `lockdep_print_held_locks`, `/proc/lockdep`), cut into lines for the host.

use core::fmt::{self, Write};
use core::sync::atomic::Ordering::*;

use super::{
    EdgeSite, HeldLock, LockClass, Lockdep, LockdepHost, Path, Site, TaskStack, LEVEL_WARNING,
    MAX_LOCKDEP_KEYS,
};

impl Lockdep {
    pub(super) fn write_lock(&self, w: &mut dyn Write, h: &HeldLock) -> fmt::Result {
        // print_lock: "%px (name){usage}, at: %pS"
        writeln!(
            w,
            "{:0width$x} ({}){{....}}, at: {}",
            h.instance,
            self.key_name(h.key),
            h.site,
            width = 2 * core::mem::size_of::<usize>()
        )
    }

    pub(super) fn print_held_locks(
        &self,
        w: &mut dyn Write,
        host: &dyn LockdepHost,
        st: Option<&TaskStack>,
    ) -> fmt::Result {
        let depth = st.map_or(0, |s| s.depth);
        if depth == 0 {
            write!(w, "no locks held by ")?;
            host.task_name(w)?;
            return writeln!(w, ".");
        }
        write!(
            w,
            "{} lock{} held by ",
            depth,
            if depth > 1 { "s" } else { "" }
        )?;
        host.task_name(w)?;
        writeln!(w, ":")?;
        if let Some(st) = st {
            for (i, h) in st.held[..depth].iter().enumerate() {
                if let Some(h) = h {
                    write!(w, " #{i}: ")?;
                    self.write_lock(w, h)?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn print_header(&self, p: &mut Printer<'_>, host: &dyn LockdepHost, title: &str) {
        let _ = writeln!(p);
        let _ = writeln!(p, "{}", Rule('=', title.len()));
        let _ = writeln!(p, "{title}");
        let _ = host.kernel_ident(p);
        p.flush_partial();
        let _ = writeln!(p, "{}", Rule('-', title.len()));
    }

    pub(super) fn print_tail(
        &self,
        p: &mut Printer<'_>,
        host: &dyn LockdepHost,
        st: Option<&TaskStack>,
    ) {
        let _ = self.print_held_locks(p, host, st);
        let mut bt = Backtrace { p, started: false };
        let _ = host.dump_stack(&mut bt);
        p.finish();
    }

    /// print_circular_bug: `prev` held, `next` being acquired, `path` = next … prev.
    pub(super) fn print_circular(
        &self,
        host: &dyn LockdepHost,
        st: &TaskStack,
        prev: &HeldLock,
        next: &HeldLock,
        path: &Path,
        chain: &[Option<EdgeSite>; MAX_LOCKDEP_KEYS],
    ) {
        let mut p = Printer::new(host, LEVEL_WARNING);
        self.print_header(
            &mut p,
            host,
            "WARNING: possible circular locking dependency detected",
        );
        let _ = host.task_name(&mut p);
        let _ = writeln!(p, " is trying to acquire lock:");
        let _ = self.write_lock(&mut p, next);
        let _ = writeln!(p);
        let _ = writeln!(p, "but task is already holding lock:");
        let _ = self.write_lock(&mut p, prev);
        let _ = writeln!(p);
        let _ = writeln!(p, "which lock already depends on the new lock.");
        let _ = writeln!(p);
        let _ = writeln!(p);
        let _ = writeln!(p, "the existing dependency chain (in reverse order) is:");
        // Entry #i is path[i]; its trace is where path[i] was acquired under path[i - 1]
        // (for #0: the acquisition being checked, under `prev`).
        for i in (0..path.len).rev() {
            let key = path.keys[i];
            let _ = writeln!(p);
            let _ = writeln!(p, "-> #{} ({}){{....}}:", i, self.key_name(key));
            let (edge, holder) = if i == 0 {
                (
                    Some(EdgeSite {
                        acquired: next.site,
                        holding: prev.site,
                    }),
                    prev.key,
                )
            } else {
                (chain[i], path.keys[i - 1])
            };
            if let Some(e) = edge {
                let _ = writeln!(p, "       {}", e.acquired);
                let _ = writeln!(
                    p,
                    "       under ({}) taken at {}",
                    self.key_name(holder),
                    e.holding
                );
            }
        }
        let _ = writeln!(p);
        let _ = writeln!(p, "other info that might help us debug this:");
        let _ = writeln!(p);
        // print_circular_lock_scenario: source = the new lock, target = the held one,
        // parent = the lock before the target on the chain.
        let source = self.key_name(next.key);
        let target = self.key_name(prev.key);
        let parent = self.key_name(path.keys[path.len - 2]);
        if path.keys[path.len - 2] != next.key {
            let _ = writeln!(p, "Chain exists of:");
            let _ = writeln!(p, "  {source} --> {parent} --> {target}");
            let _ = writeln!(p);
        }
        let _ = writeln!(p, " Possible unsafe locking scenario:");
        let _ = writeln!(p);
        let _ = writeln!(p, "       CPU0                    CPU1");
        let _ = writeln!(p, "       ----                    ----");
        let _ = writeln!(p, "  lock({target});");
        let _ = writeln!(p, "                               lock({parent});");
        let _ = writeln!(p, "                               lock({target});");
        let _ = writeln!(p, "  lock({source});");
        let _ = writeln!(p);
        let _ = writeln!(p, " *** DEADLOCK ***");
        let _ = writeln!(p);
        self.print_tail(&mut p, host, Some(st));
    }

    /// print_deadlock_bug.
    pub(super) fn print_recursive(
        &self,
        host: &dyn LockdepHost,
        st: &TaskStack,
        prev: &HeldLock,
        next: &HeldLock,
    ) {
        let mut p = Printer::new(host, LEVEL_WARNING);
        self.print_header(&mut p, host, "WARNING: possible recursive locking detected");
        let _ = host.task_name(&mut p);
        let _ = writeln!(p, " is trying to acquire lock:");
        let _ = self.write_lock(&mut p, next);
        let _ = writeln!(p);
        let _ = writeln!(p, "but task is already holding lock:");
        let _ = self.write_lock(&mut p, prev);
        let _ = writeln!(p);
        let _ = writeln!(p, "other info that might help us debug this:");
        let _ = writeln!(p, " Possible unsafe locking scenario:");
        let _ = writeln!(p);
        let _ = writeln!(p, "       CPU0");
        let _ = writeln!(p, "       ----");
        let _ = writeln!(p, "  lock({});", self.key_name(prev.key));
        let _ = writeln!(p, "  lock({});", self.key_name(next.key));
        let _ = writeln!(p);
        let _ = writeln!(p, " *** DEADLOCK ***");
        let _ = writeln!(p);
        let _ = writeln!(p, " May be due to missing lock nesting notation");
        let _ = writeln!(p);
        self.print_tail(&mut p, host, Some(st));
    }

    /// print_unlock_imbalance_bug.
    pub(super) fn print_bad_unlock(
        &self,
        host: &dyn LockdepHost,
        st: Option<&TaskStack>,
        class: &'static LockClass,
        site: Site,
    ) {
        let mut p = Printer::new(host, LEVEL_WARNING);
        self.print_header(&mut p, host, "WARNING: bad unlock balance detected!");
        let _ = host.task_name(&mut p);
        let _ = writeln!(p, " is trying to release lock ({}) at:", class.name);
        let _ = writeln!(p, "{site}");
        let _ = writeln!(p, "but there are no more locks to release!");
        let _ = writeln!(p);
        let _ = writeln!(p, "other info that might help us debug this:");
        self.print_tail(&mut p, host, st);
    }

    pub(super) fn write_dependencies_locked(&self, w: &mut dyn Write) -> fmt::Result {
        writeln!(w, "all lock classes:")?;
        let n = self.st.nr_keys.load(Acquire);
        // SAFETY: the caller holds the graph lock.
        let sites = unsafe { &*self.st.sites.get() };
        for a in 0..n {
            let fd = self.reach(a as u8, |k| self.st.after[k].load(Relaxed), n);
            let bd = self.reach(
                a as u8,
                |k| {
                    (0..n)
                        .filter(|&j| self.st.after[j].load(Relaxed) & (1 << k) != 0)
                        .fold(0u32, |m, j| m | 1 << j)
                },
                n,
            );
            writeln!(w, "FD: {fd:4} BD: {bd:4} : {}", self.key_name(a as u8))?;
            let mut after = self.st.after[a].load(Relaxed);
            while after != 0 {
                let b = after.trailing_zeros() as usize;
                after &= after - 1;
                write!(w, " -> [{}]", self.key_name(b as u8))?;
                match sites.site[a][b] {
                    Some(e) => writeln!(w, " at {} (under {})", e.acquired, e.holding)?,
                    None => writeln!(w)?,
                }
            }
            writeln!(w)?;
        }
        Ok(())
    }

    /// Number of keys reachable from `from` (itself included, as Linux counts) along `succ`.
    pub(super) fn reach(&self, from: u8, succ: impl Fn(usize) -> u32, n: usize) -> u32 {
        let mut seen = 1u32 << from;
        let mut frontier = seen;
        while frontier != 0 {
            let k = frontier.trailing_zeros() as usize;
            frontier &= frontier - 1;
            let new = succ(k) & !seen;
            seen |= new;
            frontier |= new;
        }
        let mask = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
        (seen & mask).count_ones()
    }
}

/// Writes the `stack backtrace:` heading before the first text of the host's backtrace.
pub(super) struct Backtrace<'p, 'h> {
    p: &'p mut Printer<'h>,
    started: bool,
}

impl Write for Backtrace<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !self.started && !s.is_empty() {
            self.started = true;
            writeln!(self.p)?;
            writeln!(self.p, "stack backtrace:")?;
        }
        self.p.write_str(s)
    }
}

/// A key's name as reports print it: `name`, or `name/subclass`.
pub(super) struct KeyName {
    pub(super) class: &'static LockClass,
    pub(super) subclass: u8,
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.class.name)?;
        if self.subclass != 0 {
            write!(f, "/{}", self.subclass)?;
        }
        Ok(())
    }
}

/// A line of `n` times one character (the `=====` and `-----` of a report header).
pub(super) struct Rule(pub(super) char, pub(super) usize);

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for _ in 0..self.1 {
            f.write_char(self.0)?;
        }
        Ok(())
    }
}

/// Longest line handed to [`LockdepHost::print_line`]; longer ones are split.
pub(super) const LINE: usize = 256;

/// Cuts formatted text into lines for [`LockdepHost::print_line`], on the stack.
pub(super) struct Printer<'a> {
    host: &'a dyn LockdepHost,
    level: u8,
    buf: [u8; LINE],
    len: usize,
}

impl<'a> Printer<'a> {
    pub(super) fn new(host: &'a dyn LockdepHost, level: u8) -> Self {
        Printer {
            host,
            level,
            buf: [0; LINE],
            len: 0,
        }
    }

    fn emit(&mut self) {
        // Text is only ever cut at char boundaries, so the buffer is valid UTF-8.
        let s = core::str::from_utf8(&self.buf[..self.len]).unwrap_or("");
        self.host.print_line(self.level, s);
        self.len = 0;
    }

    /// Ends a line that may be empty-and-absent (the optional ident line).
    pub(super) fn flush_partial(&mut self) {
        if self.len > 0 {
            self.emit();
        }
    }

    /// Flushes an unterminated last line.
    pub(super) fn finish(&mut self) {
        self.flush_partial();
    }

    fn push(&mut self, mut t: &str) {
        while !t.is_empty() {
            let room = LINE - self.len;
            if t.len() <= room {
                self.buf[self.len..self.len + t.len()].copy_from_slice(t.as_bytes());
                self.len += t.len();
                return;
            }
            let mut cut = room;
            while !t.is_char_boundary(cut) {
                cut -= 1;
            }
            self.buf[self.len..self.len + cut].copy_from_slice(&t.as_bytes()[..cut]);
            self.len += cut;
            self.emit();
            t = &t[cut..];
        }
    }
}

impl Write for Printer<'_> {
    fn write_str(&mut self, mut s: &str) -> fmt::Result {
        while let Some(i) = s.find('\n') {
            self.push(&s[..i]);
            self.emit();
            s = &s[i + 1..];
        }
        self.push(s);
        Ok(())
    }
}
