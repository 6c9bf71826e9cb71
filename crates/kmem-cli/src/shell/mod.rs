//! `kmem shell`: a small C-like language over the kernel API of one booted machine.
//!
//! The language is specified in `crates/kmem-cli/README.md` (section "The shell"); the
//! grammar is in [`syntax`], the functions in [`builtins`] (one table entry each), the values
//! in [`value`]. This module evaluates statements and runs input line by line.
//!
//! Output discipline: every statement's output goes to one writer in the order it happened:
//! what the kernel printed during the statement (its console is captured, see
//! [`crate::kernel`]), then the statement's own output and result line. Errors of the shell
//! itself (syntax, types, unknown names) go to the error writer as
//! `SOURCE:LINE:COLUMN: error: MESSAGE` followed by the line and a caret.

#![forbid(unsafe_code)]

pub mod block;
pub mod builtins;
pub mod driver;
mod flow;
pub mod syntax;
pub mod value;

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::rc::Rc;
use std::sync::atomic::AtomicBool;

use kmem::GfpFlags;

use crate::kernel::Kernel;
use builtins::{Args, Ctx, Fail};
use syntax::{BinOp, CastTo, Expr, Span, Stmt, UnOp, Word};
use value::{PtrKind, Value};

/// A command's input: the words after it, and the raw rest of the statement (for commands
/// that evaluate it as an expression).
pub struct CmdArgs<'a> {
    /// Where the command word is.
    pub name_span: Span,
    /// The rest of the statement, raw.
    pub rest: &'a Word,
    /// The rest split at white space.
    pub words: &'a [Word],
}

/// A command of the shell: a word that takes the rest of the statement as its input.
pub struct Command {
    /// The command word.
    pub name: &'static str,
    /// Usage, for `help`.
    pub usage: &'static str,
    /// One line saying what it does.
    pub doc: &'static str,
    /// The command.
    run: fn(&mut Shell, &CmdArgs<'_>, &mut dyn Write) -> Result<(), Stop>,
}

/// The shell's commands, in the order `help` lists them. Adding one is adding an entry.
pub static COMMANDS: &[Command] = &[
    Command {
        name: "cat",
        usage: "cat PATH...",
        doc: "prints /proc files (buddyinfo, pagetypeinfo, zoneinfo, meminfo, slabinfo, iomem…)",
        run: cmd_cat,
    },
    Command {
        name: "dmesg",
        usage: "dmesg [-t] [-c|-C]",
        doc: "prints the kernel log (-t: no timestamps, -c: then clear, -C: only clear)",
        run: cmd_dmesg,
    },
    Command {
        name: "echo",
        usage: "echo TEXT [> FILE]",
        doc: "prints TEXT as written, or writes it to a /proc file (echo \"kmalloc-64 120 60 8\" > /proc/slabinfo)",
        run: cmd_echo,
    },
    Command {
        name: "translate",
        usage: "translate ADDR",
        doc: "walks the kernel page tables for an address (each level's entry) and the TLB",
        run: cmd_translate,
    },
    Command {
        name: "map",
        usage: "map \"FILE.svg\"",
        doc: "draws physical memory by owner (free by order, slab by cache, …) to FILE.svg or FILE.png",
        run: cmd_map,
    },
    Command {
        name: "sysrq",
        usage: "sysrq KEY",
        doc: "the magic SysRq key: m shows memory (show_mem), c crashes the kernel (panic)",
        run: cmd_sysrq,
    },
    Command {
        name: "help",
        usage: "help [NAME]",
        doc: "lists the functions and commands, or describes one",
        run: cmd_help,
    },
    Command {
        name: "vars",
        usage: "vars",
        doc: "lists the variables",
        run: |sh, _, out| {
            for (n, v) in &sh.vars {
                let _ = writeln!(out, "{n} = {v}");
            }
            Ok(())
        },
    },
    Command {
        name: "exit",
        usage: "exit [STATUS]",
        doc: "leaves the shell, with STATUS (0-255) as the process's exit status if given",
        run: cmd_exit,
    },
    Command {
        name: "quit",
        usage: "quit",
        doc: "leaves the shell",
        run: |sh, _, _| {
            sh.quit = true;
            Ok(())
        },
    },
];

fn cmd_map(sh: &mut Shell, a: &CmdArgs<'_>, _out: &mut dyn Write) -> Result<(), Stop> {
    let arg = a.rest.text.trim();
    let name = arg
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(arg);
    if name.is_empty() {
        return fail("map: which file? (e.g. map \"memory.svg\")", a.name_span);
    }
    let mm = crate::map::snapshot(&sh.k.m, &format!("kmem map: {name}"));
    match mm.write_file(std::path::Path::new(name)) {
        Ok(()) => Ok(()),
        Err(e) => fail(format!("map: {e}"), a.rest.span),
    }
}

fn cmd_cat(sh: &mut Shell, a: &CmdArgs<'_>, out: &mut dyn Write) -> Result<(), Stop> {
    if a.words.is_empty() {
        return fail("cat: which file? (e.g. cat /proc/buddyinfo)", a.name_span);
    }
    let mut first_err = None;
    for w in a.words {
        let mut s = String::new();
        match sh.k.m.proc_read(&w.text, &mut s) {
            Ok(()) => {
                sh.flush_console(out);
                let _ = out.write_all(s.as_bytes());
            }
            Err(e) => {
                first_err.get_or_insert(ShellError {
                    msg: format!("cat: {}: {e}", w.text),
                    span: Some(w.span),
                });
            }
        }
    }
    match first_err {
        Some(e) => Err(Stop::Error(e)),
        None => Ok(()),
    }
}

fn cmd_dmesg(sh: &mut Shell, a: &CmdArgs<'_>, out: &mut dyn Write) -> Result<(), Stop> {
    let (mut ts, mut clear, mut print) = (true, false, true);
    for w in a.words {
        match w.text.as_str() {
            "-t" | "--notime" => ts = false,
            "-c" | "--read-clear" => clear = true,
            "-C" | "--clear" => {
                clear = true;
                print = false;
            }
            o => return fail(format!("dmesg: unknown option '{o}'"), w.span),
        }
    }
    sh.flush_console(out);
    if print {
        let mut s = String::new();
        let _ = sh.k.m.dmesg(&mut s, ts);
        let _ = out.write_all(s.as_bytes());
    }
    if clear {
        sh.k.m.dmesg_clear();
    }
    Ok(())
}

fn cmd_translate(sh: &mut Shell, a: &CmdArgs<'_>, out: &mut dyn Write) -> Result<(), Stop> {
    if a.words.is_empty() {
        return fail(
            "translate: which address? (e.g. translate v + 4096)",
            a.name_span,
        );
    }
    let e = syntax::parse_expr(&a.rest.text, a.rest.span.start).map_err(|e| {
        Stop::Error(ShellError {
            msg: e.msg,
            span: Some(e.span),
        })
    })?;
    let v = sh.eval(&e, out)?;
    let addr = match v {
        Value::Int(x) | Value::Ptr(x, _) => x,
        v => {
            return fail(
                format!("translate: expected an address, got {} {v}", v.type_name()),
                e.span(),
            )
        }
    };
    let mut ctx = Ctx {
        k: &sh.k,
        out,
        caches: &mut sh.caches,
    };
    match builtins::vmalloc::translate(&mut ctx, addr) {
        Ok(()) => Ok(()),
        Err(Fail::Oops) => Err(Stop::Oops),
        Err(Fail::Error(m)) => fail(format!("translate: {m}"), a.name_span),
    }
}

/// Splits `TEXT > FILE` at the first `>` outside double quotes.
fn split_redirect(s: &str) -> Option<(&str, &str)> {
    let mut in_str = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_str = !in_str,
            '>' if !in_str => return Some((&s[..i], &s[i + 1..])),
            _ => {}
        }
    }
    None
}

/// `echo TEXT`, or `echo TEXT > FILE`: a write of TEXT to a /proc file. Errors read as a
/// shell prints them: `FILE: No such file or directory` / `FILE: Permission denied` when the
/// file cannot be opened for writing, `echo: write error: Invalid argument` when the file
/// refuses the text.
fn cmd_echo(sh: &mut Shell, a: &CmdArgs<'_>, out: &mut dyn Write) -> Result<(), Stop> {
    let raw = a.rest.text.trim();
    let Some((text, path)) = split_redirect(raw) else {
        let _ = writeln!(out, "{raw}");
        return Ok(());
    };
    let text = text.trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    let path = path.trim();
    if path.is_empty() || path.contains(char::is_whitespace) {
        return fail(
            "echo: expected one file after '>' (e.g. echo m > /proc/sysrq-trigger)",
            a.rest.span,
        );
    }
    if path == "/proc/sysrq-trigger" {
        let key = text.chars().next().map(String::from).unwrap_or_default();
        let w = [Word {
            text: key,
            span: a.rest.span,
        }];
        let args = CmdArgs {
            name_span: a.name_span,
            rest: a.rest,
            words: &w,
        };
        return cmd_sysrq(sh, &args, out);
    }
    let r = if path == "/sys/kernel/debug/kmemleak" {
        // A scan sees the shell's variables as the writing task's stack.
        let roots = sh.kmemleak_roots();
        sh.k.m.kmemleak_write_roots(text, &roots)
    } else {
        sh.k.m.proc_write(path, text)
    };
    sh.flush_console(out);
    match r {
        Ok(()) => Ok(()),
        Err(
            e @ (kmem::proc::ProcError::NotFound
            | kmem::proc::ProcError::Errno(kmem::errno::Errno::EACCES)),
        ) => fail(format!("{path}: {e}"), a.rest.span),
        Err(e) => fail(format!("echo: write error: {e}"), a.rest.span),
    }
}

/// `echo KEY > /proc/sysrq-trigger` (drivers/tty/sysrq.c): `m` is `sysrq_handle_showmem`,
/// `c` is `sysrq_handle_crash` (a panic: the process ends with the crash status).
fn cmd_sysrq(sh: &mut Shell, a: &CmdArgs<'_>, out: &mut dyn Write) -> Result<(), Stop> {
    use kmem::platform::LogLevel;
    let m = &sh.k.m;
    match a.words.first().map(|w| w.text.as_str()) {
        Some("m") => {
            m.printk(LogLevel::Info, format_args!("sysrq: Show Memory"));
            m.show_mem();
        }
        Some("c") => {
            m.printk(LogLevel::Emerg, format_args!("sysrq: Trigger a crash"));
            m.printk(
                LogLevel::Emerg,
                format_args!("Kernel panic - not syncing: sysrq triggered crash"),
            );
            sh.flush_console(out);
            let _ = out.flush();
            std::process::exit(crate::crash::EXIT_KERNEL_CRASH);
        }
        Some("h") | None => {
            m.printk(
                LogLevel::Info,
                format_args!("sysrq: HELP : crash(c) show-memory-usage(m)"),
            );
        }
        Some(k) => {
            return fail(
                format!("sysrq: unknown key '{k}' (m: show memory, c: crash)"),
                a.words[0].span,
            )
        }
    }
    Ok(())
}

/// `exit [STATUS]`: as sh's `exit N`, the status is taken modulo 256.
fn cmd_exit(sh: &mut Shell, a: &CmdArgs<'_>, out: &mut dyn Write) -> Result<(), Stop> {
    if !a.words.is_empty() {
        let e = syntax::parse_expr(&a.rest.text, a.rest.span.start).map_err(|e| {
            Stop::Error(ShellError {
                msg: e.msg,
                span: Some(e.span),
            })
        })?;
        match sh.eval(&e, out)? {
            Value::Int(n) => sh.exit_status = Some((n & 0xff) as u8),
            v => {
                return fail(
                    format!("exit: expected a number, got {} {v}", v.type_name()),
                    e.span(),
                )
            }
        }
    }
    sh.quit = true;
    Ok(())
}

fn cmd_help(_: &mut Shell, a: &CmdArgs<'_>, out: &mut dyn Write) -> Result<(), Stop> {
    let mut s = String::new();
    match a.words.first() {
        None => help_all(&mut s),
        Some(w) => {
            if !help_one(&mut s, &w.text) {
                return fail(format!("help: no function or command '{}'", w.text), w.span);
            }
        }
    }
    let _ = out.write_all(s.as_bytes());
    Ok(())
}

/// Whether `w` is one of the shell's commands.
pub fn is_command(w: &str) -> bool {
    COMMANDS.iter().any(|c| c.name == w)
}

/// An error of the shell (not of the kernel): message and place.
#[derive(Debug, PartialEq, Eq)]
pub struct ShellError {
    /// What is wrong.
    pub msg: String,
    /// Where, if known.
    pub span: Option<Span>,
}

/// Why a statement stopped early.
pub enum Stop {
    Error(ShellError),
    Oops,
}

impl From<ShellError> for Stop {
    fn from(e: ShellError) -> Self {
        Stop::Error(e)
    }
}

fn fail<T>(msg: impl Into<String>, span: Span) -> Result<T, Stop> {
    Err(Stop::Error(ShellError {
        msg: msg.into(),
        span: Some(span),
    }))
}

/// Where a line came from, for error messages.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// File name (`<stdin>` for standard input); `None` in interactive mode.
    pub source: Option<&'a str>,
    /// 1-based line number.
    pub line: usize,
    /// Characters printed before the line on the terminal (the prompt), for the caret.
    pub indent: usize,
}

/// The text of the chunk being run and where it came from: where errors inside a block
/// argument point when the block runs later (a probe).
pub struct Src {
    text: String,
    source: Option<String>,
    line: usize,
    indent: usize,
}

impl Src {
    fn origin(&self) -> Origin<'_> {
        Origin {
            source: self.source.as_deref(),
            line: self.line,
            indent: self.indent,
        }
    }
}

/// A shell session: the machine and the variables.
pub struct Shell {
    /// The machine (shared with the probes that run while the shell is lent, see [`driver`]).
    pub k: Rc<Kernel>,
    vars: BTreeMap<String, Value>,
    caches: BTreeMap<u64, kmem::slab::common::CacheHandle>,
    /// Shell errors so far (syntax, types, unknown names, unknown files).
    pub errors: usize,
    /// Set by `exit`/`quit`.
    pub quit: bool,
    /// The status `exit N` asked for.
    pub exit_status: Option<u8>,
    /// Set (by a SIGINT handler) to stop the running loop: each loop iteration tests and
    /// clears it. `None` outside the interactive shell.
    pub interrupt: Option<&'static AtomicBool>,
    /// The value of the `return` that ended the running block, and where it was.
    ret: Option<(Value, Span)>,
    /// Block arguments running (a probe inside a probe …), at most [`driver::MAX_BLOCK_DEPTH`].
    block_depth: usize,
    /// The chunk being run (or the block argument's, while one runs).
    src: Option<Rc<Src>>,
    /// What blocks printed, and their errors, while the shell was lent for a call: written
    /// out when the call returns (output) and after the statement (errors).
    lent_out: Vec<u8>,
    lent_err: Vec<u8>,
    /// The drivers and devm actions written in the shell.
    drv: driver::Drivers,
    /// Where the stack was when the running top-level chunk started (see
    /// [`driver::STACK_BUDGET`]).
    stack_base: Option<usize>,
}

impl Shell {
    /// A session on a booted machine.
    pub fn new(k: Kernel) -> Self {
        Self::on(Rc::new(k))
    }

    /// A session on a machine that may be shared.
    fn on(k: Rc<Kernel>) -> Self {
        Self {
            k,
            vars: BTreeMap::new(),
            caches: BTreeMap::new(),
            errors: 0,
            quit: false,
            exit_status: None,
            interrupt: None,
            ret: None,
            block_depth: 0,
            src: None,
            lent_out: Vec::new(),
            lent_err: Vec::new(),
            drv: driver::Drivers::default(),
            stack_base: None,
        }
    }

    /// Whether the session so far should make a non-interactive run fail: a shell error, or
    /// a BUG or WARNING reported by the kernel.
    pub fn failed(&self) -> bool {
        self.errors > 0 || self.k.reports() > 0
    }

    /// The process's exit status for a non-interactive run: what `exit N` asked for, else 1
    /// if [`failed`](Self::failed), else 0.
    pub fn status(&self) -> u8 {
        self.exit_status.unwrap_or(u8::from(self.failed()))
    }

    /// The variables' names, sorted.
    pub fn var_names(&self) -> Vec<String> {
        self.vars.keys().cloned().collect()
    }

    /// A variable's value.
    #[cfg(test)]
    pub fn var(&self, name: &str) -> Option<&Value> {
        self.vars.get(name)
    }

    /// Runs input text: one line, or several lines that form complete statements (a block
    /// that is not closed at the end of `text` is an error).
    #[cfg(test)]
    pub fn run_line(
        &mut self,
        text: &str,
        origin: Origin<'_>,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) {
        // kmemleak's automatic scan (its thread in Linux) is a timer checked here.
        let roots = self.kmemleak_roots();
        self.k.m.kmemleak_poll(&roots);
        let parsed = block::parse_chunk(text, &is_command, true);
        self.run_chunk(text, &parsed, origin, out, err);
    }

    /// The shell's variables as kmemleak sees them: the task's stack, values that may be
    /// pointers (every pointer and integer, translated to the host address it names).
    fn kmemleak_roots(&self) -> Vec<usize> {
        self.vars
            .values()
            .filter_map(|v| match v {
                Value::Ptr(x, _) | Value::Int(x) => self.k.real(*x),
                _ => None,
            })
            .collect()
    }

    /// Runs a statement; `quiet` (inside braces and control headers): without printing an
    /// assignment or a value.
    fn exec(&mut self, stmt: &Stmt, out: &mut dyn Write, quiet: bool) -> Result<(), Stop> {
        match stmt {
            Stmt::Assign {
                name,
                name_span,
                value,
            } => {
                check_assignable(name, *name_span)?;
                let v = self.eval(value, out)?;
                if v == Value::Void {
                    return fail("void value not ignored as it ought to be", value.span());
                }
                self.set_var(name, v, out, quiet);
            }
            Stmt::Update {
                name,
                name_span,
                op,
                value,
                span,
            } => {
                check_assignable(name, *name_span)?;
                let Some(old) = self.vars.get(name).cloned() else {
                    return fail(format!("undefined variable '{name}'"), *name_span);
                };
                let rhs = self.eval(value, out)?;
                let v = binary(*op, old, rhs).map_err(|m| stop_at(m, *span))?;
                self.set_var(name, v, out, quiet);
            }
            Stmt::Expr(e) => {
                let v = self.eval(e, out)?;
                self.flush_console(out);
                if v != Value::Void && !quiet {
                    let _ = writeln!(out, "{v}");
                }
            }
            Stmt::Command {
                name,
                name_span,
                rest,
                words,
            } => self.command(name, *name_span, rest, words, out)?,
        }
        Ok(())
    }

    fn set_var(&mut self, name: &str, v: Value, out: &mut dyn Write, quiet: bool) {
        self.flush_console(out);
        if !quiet {
            let _ = writeln!(out, "{name} = {v}");
        }
        self.vars.insert(name.to_string(), v);
    }

    /// `text` with each `$NAME` replaced by the variable's value as it prints (a string
    /// without its quotes); `$` before anything else stays. `base` is where `text` starts.
    fn expand(&self, text: &str, base: usize) -> Result<String, Stop> {
        if !text.contains('$') {
            return Ok(text.to_string());
        }
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let starts_name = chars
                .get(i + 1)
                .is_some_and(|n| n.is_alphabetic() || *n == '_');
            if c != '$' || !starts_name {
                out.push(c);
                i += 1;
                continue;
            }
            let n = chars[i + 1..]
                .iter()
                .take_while(|c| c.is_alphanumeric() || **c == '_')
                .count();
            let name: String = chars[i + 1..i + 1 + n].iter().collect();
            match self.vars.get(&name) {
                Some(Value::Str(s)) => out.push_str(s),
                Some(v) => out.push_str(&v.to_string()),
                None => {
                    return fail(
                        format!("undefined variable '{name}'"),
                        Span::new(base + i, base + i + 1 + n),
                    )
                }
            }
            i += 1 + n;
        }
        Ok(out)
    }

    fn flush_console(&self, out: &mut dyn Write) {
        let c = self.k.take_console();
        let _ = out.write_all(c.as_bytes());
    }

    fn command(
        &mut self,
        name: &str,
        name_span: Span,
        rest: &Word,
        words: &[Word],
        out: &mut dyn Write,
    ) -> Result<(), Stop> {
        let Some(c) = COMMANDS.iter().find(|c| c.name == name) else {
            return fail(format!("unknown command '{name}'"), name_span);
        };
        let rest = Word {
            text: self.expand(&rest.text, rest.span.start)?,
            span: rest.span,
        };
        let words = words
            .iter()
            .map(|w| {
                Ok(Word {
                    text: self.expand(&w.text, w.span.start)?,
                    span: w.span,
                })
            })
            .collect::<Result<Vec<_>, Stop>>()?;
        (c.run)(
            self,
            &CmdArgs {
                name_span,
                rest: &rest,
                words: &words,
            },
            out,
        )
    }

    /// Evaluates an expression. It recurses as deep as the tree, which the parser bounds
    /// ([`syntax::MAX_DEPTH`]); trees come only from the parser.
    fn eval(&mut self, e: &Expr, out: &mut dyn Write) -> Result<Value, Stop> {
        match e {
            Expr::Int(v, _) => Ok(Value::Int(*v)),
            Expr::Str(s, _) => Ok(Value::Str(s.clone())),
            Expr::Name(n, span) => self.lookup(n, *span),
            Expr::Call {
                name,
                name_span,
                args,
                span,
            } => {
                let Some(b) = builtins::find(name) else {
                    return fail(format!("unknown function '{name}' (try help)"), *name_span);
                };
                let variadic = b.params.last() == Some(&builtins::Param::Many);
                let required = b.params.iter().filter(|p| !p.optional()).count();
                let arity_ok = if variadic {
                    args.len() >= b.params.len()
                } else {
                    (required..=b.params.len()).contains(&args.len())
                };
                if !arity_ok {
                    let n = b.params.len();
                    let count = if variadic {
                        format!("at least {n}")
                    } else if required < n {
                        format!("{required} to {n}")
                    } else {
                        n.to_string()
                    };
                    return fail(
                        format!(
                            "{name} takes {count} argument{}, got {}: {}",
                            if n == 1 { "" } else { "s" },
                            args.len(),
                            b.proto
                        ),
                        *span,
                    );
                }
                if driver::runs_blocks(name) {
                    return self.call_with_blocks(b, args, *span, out);
                }
                let mut vals = Vec::with_capacity(args.len());
                let kinds = b
                    .params
                    .iter()
                    .chain(core::iter::repeat(&builtins::Param::Many));
                for (i, (a, p)) in args.iter().zip(kinds).enumerate() {
                    let v = self.eval(a, out)?.plain();
                    if let Err(m) = builtins::check_param(*p, &v) {
                        return fail(format!("{name}: argument {}: {m}", i + 1), a.span());
                    }
                    vals.push(v);
                }
                let args = Args(vals);
                let r = if driver::may_probe(b) {
                    // A probe, remove or devm action written in the shell may run inside.
                    self.lend(out, |k, out| {
                        let mut no_caches = BTreeMap::new();
                        let mut ctx = Ctx {
                            k,
                            out,
                            caches: &mut no_caches,
                        };
                        (b.run)(&mut ctx, &args)
                    })
                } else {
                    let mut ctx = Ctx {
                        k: &self.k,
                        out,
                        caches: &mut self.caches,
                    };
                    (b.run)(&mut ctx, &args)
                };
                match r {
                    Ok(v) => Ok(v),
                    Err(Fail::Oops) => Err(Stop::Oops),
                    Err(Fail::Error(m)) => fail(format!("{name}: {m}"), *span),
                }
            }
            Expr::Unary(UnOp::LogNot, inner, span) => {
                let v = self.eval(inner, out)?.plain();
                match truth(&v, "!") {
                    Ok(t) => Ok(Value::Int(u64::from(!t))),
                    Err(m) => fail(m, *span),
                }
            }
            Expr::Binary(op @ (BinOp::LogAnd | BinOp::LogOr), l, r, span) => {
                // C's short-circuit: the right operand only when the left does not decide.
                let a = self.eval(l, out)?;
                let a = truth(&a, op.symbol()).map_err(|m| stop_at(m, l.span()))?;
                if a == (*op == BinOp::LogOr) {
                    return Ok(Value::Int(u64::from(a)));
                }
                let b = self.eval(r, out)?;
                let b = truth(&b, op.symbol()).map_err(|m| stop_at(m, *span))?;
                Ok(Value::Int(u64::from(b)))
            }
            Expr::Unary(op, inner, span) => {
                let v = self.eval(inner, out)?.plain();
                match (op, v) {
                    (UnOp::Neg, Value::Int(x)) => Ok(Value::Int(x.wrapping_neg())),
                    (UnOp::Not, Value::Int(x)) => Ok(Value::Int(!x)),
                    (UnOp::Not, Value::Gfp(g)) => Ok(Value::Gfp(!g)),
                    (UnOp::Not, Value::Ptr(x, _)) => Ok(Value::Ptr(!x, PtrKind::Void)),
                    (op, v) => fail(
                        format!(
                            "wrong type argument to unary {} ('{}')",
                            match op {
                                UnOp::Neg => "minus",
                                UnOp::Not => "complement",
                                UnOp::LogNot => "exclamation mark",
                            },
                            v.type_name()
                        ),
                        *span,
                    ),
                }
            }
            Expr::Binary(op, l, r, span) => {
                let a = self.eval(l, out)?;
                let b = self.eval(r, out)?;
                binary(*op, a, b).map_err(|m| {
                    Stop::Error(ShellError {
                        msg: m,
                        span: Some(*span),
                    })
                })
            }
            Expr::Block(_, span) => fail(
                "a block { } is only an argument of driver_register or devm_add_action",
                *span,
            ),
            Expr::Cast(to, inner, span) => {
                let v = self.eval(inner, out)?.plain();
                match (to, v) {
                    (CastTo::VoidPtr, Value::Int(x) | Value::Ptr(x, _)) => {
                        Ok(Value::Ptr(x, PtrKind::Void))
                    }
                    (CastTo::Long, Value::Int(x) | Value::Ptr(x, _)) => Ok(Value::Int(x)),
                    (CastTo::Long, Value::Gfp(g)) => Ok(Value::Int(u64::from(g.bits()))),
                    (_, v) => fail(format!("cannot cast {} here", v.type_name()), *span),
                }
            }
        }
    }

    fn lookup(&self, n: &str, span: Span) -> Result<Value, Stop> {
        if n == "NULL" {
            return Ok(Value::Ptr(0, PtrKind::Void));
        }
        if is_gfp_name(n) {
            return match GfpFlags::parse(n) {
                Ok(g) => Ok(Value::Gfp(g)),
                Err(_) => fail(format!("unknown GFP flag '{n}'"), span),
            };
        }
        if let Some(v) = builtins::consts::lookup(n) {
            return Ok(Value::Int(v));
        }
        if let Some(v) = self.vars.get(n) {
            return Ok(v.clone());
        }
        if n.starts_with("SLAB_") {
            return match kmem::slab::common::SlabFlags::parse(n) {
                Ok(f) => Ok(Value::Int(u64::from(f.0))),
                Err(_) => fail(format!("unknown slab flag '{n}'"), span),
            };
        }
        if builtins::find(n).is_some() {
            return fail(format!("'{n}' is a function: call it with ( )"), span);
        }
        fail(format!("undefined variable '{n}'"), span)
    }
}

/// Refuses assignments to names that are not variables.
fn check_assignable(name: &str, span: Span) -> Result<(), Stop> {
    if name == "NULL"
        || is_gfp_name(name)
        || name.starts_with("SLAB_")
        || builtins::consts::lookup(name).is_some()
    {
        return fail(format!("cannot assign to '{name}'"), span);
    }
    Ok(())
}

/// A shell error at `span`.
fn stop_at(msg: impl Into<String>, span: Span) -> Stop {
    Stop::Error(ShellError {
        msg: msg.into(),
        span: Some(span),
    })
}

/// A value as a condition (C's scalar test: nonzero is true); `op` names the operator or
/// statement for the error.
pub fn truth(v: &Value, op: &str) -> Result<bool, String> {
    match v {
        Value::Int(x) | Value::Ptr(x, _) => Ok(*x != 0),
        Value::Errno(e) => Ok(*e != 0),
        Value::Gfp(g) => Ok(g.bits() != 0),
        Value::Void => Err("void value not ignored as it ought to be".into()),
        Value::Str(_) => Err(format!(
            "used a string where a scalar is required (operand of {op})"
        )),
    }
}

/// `== != < <= > >=`: 1 or 0. Integers compare as C's `long` (signed); pointers, and a
/// pointer with an integer, as addresses (unsigned); GFP flags by their bits (`==`, `!=`).
fn compare(op: BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    use core::cmp::Ordering;
    let ord = match (a, b) {
        (Value::Int(x), Value::Int(y)) => (*x as i64).cmp(&(*y as i64)),
        (Value::Ptr(x, _) | Value::Int(x), Value::Ptr(y, _) | Value::Int(y)) => x.cmp(y),
        (Value::Gfp(_) | Value::Int(_), Value::Gfp(_) | Value::Int(_))
            if matches!(op, BinOp::Eq | BinOp::Ne) =>
        {
            let bits = |v: &Value| match v {
                Value::Gfp(g) => u64::from(g.bits()),
                Value::Int(n) => *n,
                _ => 0,
            };
            bits(a).cmp(&bits(b))
        }
        _ => {
            return Err(format!(
                "invalid operands to binary {} (have '{}' and '{}')",
                op.symbol(),
                a.type_name(),
                b.type_name()
            ))
        }
    };
    let r = match op {
        BinOp::Eq => ord == Ordering::Equal,
        BinOp::Ne => ord != Ordering::Equal,
        BinOp::Lt => ord == Ordering::Less,
        BinOp::Le => ord != Ordering::Greater,
        BinOp::Gt => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    };
    Ok(Value::Int(u64::from(r)))
}

fn is_gfp_name(n: &str) -> bool {
    n.starts_with("GFP_") || n.starts_with("__GFP_")
}

/// C's binary operators on shell values (see the README for the rules).
fn binary(op: BinOp, a: Value, b: Value) -> Result<Value, String> {
    use BinOp::*;
    let (a, b) = (a.plain(), b.plain());
    let bad = |a: &Value, b: &Value| {
        Err(format!(
            "invalid operands to binary {} (have '{}' and '{}')",
            op.symbol(),
            a.type_name(),
            b.type_name()
        ))
    };
    if a == Value::Void || b == Value::Void {
        return Err("void value not ignored as it ought to be".into());
    }
    match op {
        Eq | Ne | Lt | Le | Gt | Ge => return compare(op, &a, &b),
        LogAnd | LogOr => {
            let (x, y) = (truth(&a, op.symbol())?, truth(&b, op.symbol())?);
            let r = if op == LogAnd { x && y } else { x || y };
            return Ok(Value::Int(u64::from(r)));
        }
        _ => {}
    }
    match (&a, &b) {
        (Value::Int(x), Value::Int(y)) => {
            let (x, y) = (*x, *y);
            let v = match op {
                Or => x | y,
                Xor => x ^ y,
                And => x & y,
                Shl => x.checked_shl(y as u32).filter(|_| y < 64).unwrap_or(0),
                Shr => x.checked_shr(y as u32).filter(|_| y < 64).unwrap_or(0),
                Add => x.wrapping_add(y),
                Sub => x.wrapping_sub(y),
                Mul => x.wrapping_mul(y),
                Div | Rem if y == 0 => return Err("division by zero".into()),
                Div => ((x as i64).wrapping_div(y as i64)) as u64,
                Rem => ((x as i64).wrapping_rem(y as i64)) as u64,
                // Handled above.
                Eq | Ne | Lt | Le | Gt | Ge | LogAnd | LogOr => return bad(&a, &b),
            };
            Ok(Value::Int(v))
        }
        (Value::Ptr(p, k), Value::Int(n)) if matches!(op, Add | Sub) => {
            let d = n.wrapping_mul(k.stride());
            let v = if op == Add {
                p.wrapping_add(d)
            } else {
                p.wrapping_sub(d)
            };
            Ok(Value::Ptr(v, *k))
        }
        (Value::Int(n), Value::Ptr(p, k)) if op == Add => {
            Ok(Value::Ptr(p.wrapping_add(n.wrapping_mul(k.stride())), *k))
        }
        (Value::Ptr(p, k1), Value::Ptr(q, k2)) if op == Sub => {
            if k1 != k2 {
                return bad(&a, &b);
            }
            Ok(Value::Int(
                ((p.wrapping_sub(*q) as i64) / k1.stride() as i64) as u64,
            ))
        }
        (Value::Ptr(x, _) | Value::Int(x), Value::Ptr(y, _) | Value::Int(y))
            if matches!(op, Or | And | Xor) =>
        {
            let v = match op {
                Or => x | y,
                And => x & y,
                _ => x ^ y,
            };
            Ok(Value::Ptr(v, PtrKind::Void))
        }
        (Value::Gfp(_) | Value::Int(_), Value::Gfp(_) | Value::Int(_))
            if matches!(op, Or | And | Xor) =>
        {
            let bits = |v: &Value| match v {
                Value::Gfp(g) => Ok(g.bits()),
                Value::Int(n) => u32::try_from(*n)
                    .map_err(|_| format!("{n} is not a set of GFP flags (more than 32 bits)")),
                _ => Ok(0),
            };
            let (x, y) = (bits(&a)?, bits(&b)?);
            let v = match op {
                Or => x | y,
                And => x & y,
                _ => x ^ y,
            };
            Ok(Value::Gfp(GfpFlags::from_bits(v)))
        }
        _ => bad(&a, &b),
    }
}

/// Reports error `e` of `text` (one line, or a chunk of lines starting at `origin.line`):
/// `SOURCE:LINE:COLUMN: error: MESSAGE`, the line and a caret under the place.
fn report(err: &mut dyn Write, text: &str, origin: Origin<'_>, e: &ShellError) {
    // The line of the chunk the error is on, and the column in it.
    let (line_no, line, span) = match e.span {
        Some(s) => {
            let before: Vec<char> = text.chars().take(s.start).collect();
            let nl = before.iter().filter(|c| **c == '\n').count();
            let line_start = before.iter().rposition(|c| *c == '\n').map_or(0, |i| i + 1);
            let line = text.split('\n').nth(nl).unwrap_or("");
            let col = s.start - line_start;
            let end = s.end.saturating_sub(line_start);
            (origin.line + nl, line, Some(Span::new(col, end)))
        }
        None => (origin.line, text, None),
    };
    let col = span.map(|s| s.start + 1);
    // Messages quote input (names, words, numbers): no raw control characters out, and no
    // word so long that the one-line error becomes a screenful.
    let msg = elide_long_words(&printable(&e.msg));
    let _ = match (origin.source, col) {
        (Some(src), Some(c)) => writeln!(err, "{src}:{line_no}:{c}: error: {msg}"),
        (Some(src), None) => writeln!(err, "{src}:{line_no}: error: {msg}"),
        (None, _) => writeln!(err, "error: {msg}"),
    };
    if let Some(s) = span {
        let width = s.end.saturating_sub(s.start).max(1);
        let shown = printable(line.trim_end());
        let caret = "^".repeat(width.min(shown.chars().count().saturating_sub(s.start).max(1)));
        if origin.source.is_some() {
            let _ = writeln!(err, "    {shown}");
            let _ = writeln!(err, "    {}{caret}", " ".repeat(s.start));
        } else if text.contains('\n') {
            // Interactively, a chunk of several lines: show the line under its prompt.
            let pad = " ".repeat(origin.indent);
            let _ = writeln!(err, "{pad}{shown}");
            let _ = writeln!(err, "{pad}{}{caret}", " ".repeat(s.start));
        } else {
            let _ = writeln!(err, "{}{caret}", " ".repeat(origin.indent + s.start));
        }
    }
    let _ = err.flush();
}

fn help_all(s: &mut String) {
    use std::fmt::Write as _;
    const W: usize = 60;
    let entry = |s: &mut String, what: &str, doc: &str| {
        if what.len() < W {
            let _ = writeln!(s, "  {what:<W$}{doc}");
        } else {
            let _ = writeln!(s, "  {what}\n  {:W$}{doc}", "");
        }
    };
    for (title, table) in builtins::TABLES {
        let _ = writeln!(s, "{title}:");
        for b in *table {
            entry(s, b.proto, b.doc);
        }
    }
    let _ = writeln!(s, "Commands:");
    for c in COMMANDS {
        entry(s, c.usage, c.doc);
    }
    let _ = writeln!(
        s,
        "Values: integers (42, 0x2a, 0600), NULL, \"strings\", GFP flags (GFP_KERNEL|__GFP_ZERO),\n\
         slab flags (SLAB_HWCACHE_ALIGN), variables (p = alloc_pages(GFP_KERNEL, 3); p += 1; i++),\n\
         C operators || && | ^ & == != < <= > >= << >> + - * / % ~ !, casts (void *) and\n\
         (unsigned long). Pointers are addresses in the machine's own layout. Control flow:\n\
         if (c) {{ }} else if (c) {{ }} else {{ }}, while (c) {{ }}, for (i = 0; i < n; i++) {{ }},\n\
         break, continue; blocks may span lines, and statements inside them print nothing.\n\
         Block arguments are code run later by the kernel: driver_register(\"drv\", \"platform\",\n\
         {{ p = devm_kmalloc(dev, 64, GFP_KERNEL); if (!p) return -ENOMEM; return 0 }}) is a probe\n\
         (dev: the device; return -ERRNO fails it), devm_add_action(dev, {{ … }}) a release.\n\
         Command words expand $NAME (cat /proc/$p/maps). `# comment`; `;` separates\n\
         statements. help NAME for one."
    );
}

fn help_one(s: &mut String, name: &str) -> bool {
    use std::fmt::Write as _;
    if let Some(b) = builtins::find(name) {
        let _ = writeln!(s, "{}\n    {}", b.proto, b.doc);
        return true;
    }
    if let Some(c) = COMMANDS.iter().find(|c| c.name == name) {
        let _ = writeln!(s, "{}\n    {}", c.usage, c.doc);
        return true;
    }
    false
}

/// Runs statements from `input` (a file or a pipe); `echo` prints each line after a `kmem> `
/// prompt first, so the output reads as a transcript.
///
/// # Errors
/// Reading `input` failed.
pub fn run_script(
    sh: &mut Shell,
    input: &mut dyn BufRead,
    source: &str,
    echo: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<()> {
    let mut raw = Vec::new();
    let mut n = 0;
    let mut chunker = block::Chunker::default();
    while !sh.quit {
        let Some(whole) = read_line_bounded(input, &mut raw)? else {
            break;
        };
        n += 1;
        let origin = Origin {
            source: Some(source),
            line: n,
            indent: 0,
        };
        if !whole {
            sh.errors += 1;
            let _ = out.flush();
            let e = ShellError {
                msg: format!("line longer than {MAX_LINE} bytes: skipped"),
                span: None,
            };
            report(err, "", origin, &e);
            // Inside a block, the line counts as an empty one.
            if chunker.pending() {
                sh.feed(&mut chunker, "", n, source, out, err);
            }
            continue;
        }
        let text = match std::str::from_utf8(&raw) {
            Ok(t) => t.trim_end_matches(['\n', '\r']),
            Err(e) => {
                // One bad line is an error of that line; the script goes on.
                let good = String::from_utf8_lossy(&raw[..e.valid_up_to()]);
                let col = good.chars().count();
                sh.errors += 1;
                let _ = out.flush();
                let shown = String::from_utf8_lossy(&raw);
                report(
                    err,
                    shown.trim_end_matches(['\n', '\r']),
                    origin,
                    &ShellError {
                        msg: format!(
                            "invalid UTF-8 (byte {:#04x}): the line is skipped",
                            raw[e.valid_up_to()]
                        ),
                        span: Some(syntax::Span {
                            start: col,
                            end: col + 1,
                        }),
                    },
                );
                if chunker.pending() {
                    sh.feed(&mut chunker, "", n, source, out, err);
                }
                continue;
            }
        };
        if echo && !text.trim().is_empty() {
            let prompt = if chunker.pending() { CONTINUE } else { PROMPT };
            let _ = writeln!(out, "{prompt}{}", printable(text));
        }
        sh.feed(&mut chunker, text, n, source, out, err);
    }
    if let Some(c) = chunker.finish(&is_command) {
        let origin = Origin {
            source: Some(source),
            line: c.first_line,
            indent: 0,
        };
        sh.run_chunk(&c.text, &c.parsed, origin, out, err);
    }
    match out.flush() {
        // The reader of the output has gone (`kmem shell script | head`): not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// The shell's prompt.
pub const PROMPT: &str = "kmem> ";
/// The prompt of a continuation line (inside a block), as wide as [`PROMPT`].
pub const CONTINUE: &str = "  ... ";

impl Shell {
    /// Adds line `n` of `source` to `chunker`, and runs the chunk if it is complete.
    pub fn feed(
        &mut self,
        chunker: &mut block::Chunker,
        line: &str,
        n: usize,
        source: &str,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) {
        if let Some(c) = chunker.push(line, n, &is_command) {
            let origin = Origin {
                source: Some(source),
                line: c.first_line,
                indent: 0,
            };
            self.run_chunk(&c.text, &c.parsed, origin, out, err);
        }
    }
}

/// `s` with every word (run of non-blanks) longer than 64 characters cut to its first 60
/// and `…` (and its closing quote, if it had one).
fn elide_long_words(s: &str) -> String {
    const LONG: usize = 64;
    let mut out = String::with_capacity(s.len().min(1024));
    for (i, w) in s.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if w.chars().count() <= LONG {
            out.push_str(w);
        } else {
            out.extend(w.chars().take(LONG - 4));
            out.push('…');
            if w.ends_with('\'') {
                out.push('\'');
            }
        }
    }
    out
}

/// The longest script line the shell reads (a longer one is an error, and is not buffered).
pub const MAX_LINE: usize = 64 << 10;

/// Reads the next line (newline included) into `line`, keeping at most [`MAX_LINE`] bytes of
/// it: `None` at the end of input, `Some(false)` for a line that was longer (the rest of it is
/// read and dropped).
fn read_line_bounded(r: &mut dyn BufRead, line: &mut Vec<u8>) -> io::Result<Option<bool>> {
    line.clear();
    let mut read_any = false;
    let mut whole = true;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(read_any.then_some(whole));
        }
        read_any = true;
        let (len, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        if len > room {
            whole = false;
        }
        line.extend_from_slice(&buf[..len.min(room)]);
        r.consume(len);
        if done {
            return Ok(Some(whole));
        }
    }
}

/// `s` fit to echo on a terminal: a tab becomes a space and every other control character
/// (ESC of a terminal escape sequence, CR, C1 controls…) U+FFFD, one character for one so
/// that a caret under the text still points at the right column.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod block_tests;
#[cfg(test)]
mod cma_tests;
#[cfg(test)]
mod compaction_tests;
#[cfg(test)]
mod device_tests;
#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod hotplug_tests;
#[cfg(test)]
mod map_tests;
#[cfg(test)]
mod probe_tests;
#[cfg(test)]
mod process_tests;
#[cfg(test)]
mod tests;
