//! Running parsed chunks: the items of [`super::block`] with C's control flow.
//!
//! At the top level each item runs on its own: an error is reported and the next item runs.
//! Inside a construct the first error (or oops) abandons the whole top-level construct, so a
//! loop whose body fails stops at once instead of failing on every iteration. Statements
//! inside braces and control headers print nothing themselves (assignments and values are
//! silent, as in a C program); commands and the kernel still print.
//!
//! Loops run until their condition fails, `break`, `exit`, or an interruption (Ctrl-C in the
//! interactive shell, see [`Shell::interrupt`]): they have no iteration limit.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use super::block::{Item, Parsed};
use super::syntax::{Expr, Span, Stmt};
use super::{report, stop_at, truth, Origin, Shell, ShellError, Src, Stop};
use std::rc::Rc;

/// How a body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flow {
    Next,
    Break,
    Continue,
    /// `return`: the value is in [`Shell::ret`](super::Shell).
    Return,
}

impl Shell {
    /// Runs a parsed chunk whose text is `text` (its first line at `origin`).
    pub fn run_chunk(
        &mut self,
        text: &str,
        parsed: &Parsed,
        origin: Origin<'_>,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) {
        let Parsed::Items(items) = parsed else {
            return;
        };
        if let Some(flag) = self.interrupt {
            flag.store(false, Ordering::Relaxed);
        }
        self.stack_base = Some(stack_pointer());
        self.src = Some(Rc::new(Src {
            text: text.to_string(),
            source: origin.source.map(str::to_string),
            line: origin.line,
            indent: origin.indent,
        }));
        for item in items {
            if self.quit {
                break;
            }
            let res = match item {
                Item::Error(e) => Err(stop_at(e.msg.clone(), e.span)),
                it => self.exec_item(it, false, out).map(|_| ()),
            };
            self.flush_console(out);
            if !self.lent_err.is_empty() {
                // Errors of blocks that ran during the item (probes, actions).
                let _ = out.flush();
                let _ = err.write_all(&std::mem::take(&mut self.lent_err));
                let _ = err.flush();
            }
            match res {
                Ok(()) | Err(Stop::Oops) => {}
                Err(Stop::Error(e)) => {
                    self.errors += 1;
                    let _ = out.flush();
                    report(err, text, origin, &e);
                }
            }
        }
        let _ = out.flush();
    }

    fn exec_item(&mut self, item: &Item, nested: bool, out: &mut dyn Write) -> Result<Flow, Stop> {
        match item {
            Item::Stmt(s) => {
                self.exec(s, out, nested)?;
                self.flush_console(out);
                Ok(Flow::Next)
            }
            Item::Block(items) => self.exec_body(items, out),
            Item::If { arms, otherwise } => {
                for (cond, body) in arms {
                    if self.cond(cond, "if", out)? {
                        return self.exec_body(body, out);
                    }
                }
                match otherwise {
                    Some(body) => self.exec_body(body, out),
                    None => Ok(Flow::Next),
                }
            }
            Item::While { cond, body, span } => {
                while !self.quit {
                    self.check_interrupt(*span)?;
                    if !self.cond(cond, "while", out)? {
                        break;
                    }
                    match self.exec_body(body, out)? {
                        Flow::Break => break,
                        Flow::Return => return Ok(Flow::Return),
                        Flow::Next | Flow::Continue => {}
                    }
                }
                Ok(Flow::Next)
            }
            Item::For {
                init,
                cond,
                step,
                body,
                span,
            } => {
                if let Some(s) = init {
                    self.exec_quiet(s, out)?;
                }
                while !self.quit {
                    self.check_interrupt(*span)?;
                    if let Some(c) = cond {
                        if !self.cond(c, "for", out)? {
                            break;
                        }
                    }
                    match self.exec_body(body, out)? {
                        Flow::Break => break,
                        Flow::Return => return Ok(Flow::Return),
                        Flow::Next | Flow::Continue => {}
                    }
                    if self.quit {
                        break;
                    }
                    if let Some(s) = step {
                        self.exec_quiet(s, out)?;
                    }
                }
                Ok(Flow::Next)
            }
            Item::Break => Ok(Flow::Break),
            Item::Continue => Ok(Flow::Continue),
            Item::Return { value, .. } => {
                self.ret = match value {
                    Some(e) => Some((self.eval(e, out)?, e.span())),
                    None => None,
                };
                Ok(Flow::Return)
            }
            Item::Error(e) => Err(stop_at(e.msg.clone(), e.span)),
        }
    }

    /// Runs the items of a body; `break`, `continue` and `return` end it early.
    pub(super) fn exec_body(&mut self, items: &[Item], out: &mut dyn Write) -> Result<Flow, Stop> {
        for it in items {
            let f = self.exec_item(it, true, out)?;
            if f != Flow::Next {
                return Ok(f);
            }
            if self.quit {
                break;
            }
        }
        Ok(Flow::Next)
    }

    fn exec_quiet(&mut self, s: &Stmt, out: &mut dyn Write) -> Result<(), Stop> {
        self.exec(s, out, true)?;
        self.flush_console(out);
        Ok(())
    }

    /// A condition's truth (`what` names the statement for errors).
    fn cond(&mut self, e: &Expr, what: &str, out: &mut dyn Write) -> Result<bool, Stop> {
        let v = self.eval(e, out)?;
        truth(&v, &format!("'{what}'")).map_err(|m| stop_at(m, e.span()))
    }

    /// An error if the user asked to interrupt (Ctrl-C). Inside a block argument (a probe)
    /// the request stays set, so that the loops around the call that ran the block stop too.
    fn check_interrupt(&self, span: Span) -> Result<(), Stop> {
        let asked = |flag: &AtomicBool| {
            if self.block_depth > 0 {
                flag.load(Ordering::Relaxed)
            } else {
                flag.swap(false, Ordering::Relaxed)
            }
        };
        match self.interrupt {
            Some(flag) if asked(flag) => Err(Stop::Error(ShellError {
                msg: "interrupted".into(),
                span: Some(span),
            })),
            _ => Ok(()),
        }
    }
}

/// Where the stack is now (the address of a local; compared, never dereferenced).
#[inline(never)]
pub(super) fn stack_pointer() -> usize {
    let here = 0u8;
    std::hint::black_box(&here) as *const u8 as usize
}
