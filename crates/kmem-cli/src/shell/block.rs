//! Control flow around the statements of [`super::syntax`]: `{ }` blocks, `if`/`else if`/
//! `else`, `while`, `for`, `break` and `continue`, and how input lines group into *chunks*
//! (the text of one or more lines that parses as a whole).
//!
//! ```text
//! chunk    := { item | ';' }
//! item     := '{' { item | ';' } '}'
//!           | 'if' '(' expr ')' body { 'else' 'if' '(' expr ')' body } [ 'else' body ]
//!           | 'while' '(' expr ')' body
//!           | 'for' '(' [simple] ';' [expr] ';' [simple] ')' body
//!           | 'break' | 'continue'
//!           | 'return' [expr]              only inside a block argument
//!           | simple                       a statement of `syntax` (assignment, expression,
//!                                          command), ended by ';', a new line, '}' or '#'
//! body     := item | '{' … '}' | ';'
//! ```
//!
//! A `{` inside the parentheses of a call opens a *block argument*
//! (`driver_register("camera", "platform", { … })`): its items are parsed here, as a body of
//! their own (`break` needs a loop inside it, `return` is allowed in it), and handed to
//! [`syntax::parse_statement_blocks`] with the statement. A block argument may span lines;
//! the statement goes on after its `}` (`})` closes the call).
//!
//! Braces outside string literals and comments are always block delimiters (a command's
//! words cannot hold them). `else` must follow its `if`'s body on the same line (`} else {`,
//! the kernel's coding style): a line whose braces balance is run as soon as it is complete.
//! A chunk is complete when its braces balance and it does not end in a control header that
//! still needs its body (`if (x)` at the end of a line continues on the next).
//!
//! Blocks and bodies nest at most [`MAX_DEPTH`] levels, as expressions do. Positions
//! ([`Span`]) count characters in the whole chunk, new lines included.

use super::syntax::{self, Expr, Span, Stmt, SyntaxError, MAX_DEPTH};

pub use super::syntax::Item;

/// What parsing a chunk gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The items, in order (errors included as [`Item::Error`]).
    Items(Vec<Item>),
    /// The text ends inside a block or before a body: more lines are needed.
    NeedMore,
}

/// Parses a chunk. With `at_end` (no more input will come), text that would need more lines
/// is an error instead of [`Parsed::NeedMore`].
pub fn parse_chunk(text: &str, is_command: &dyn Fn(&str) -> bool, at_end: bool) -> Parsed {
    let mut p = Parser {
        c: text.chars().collect(),
        i: 0,
        is_command,
        first_err: None,
        depth: 0,
        loops: 0,
        funcs: 0,
        at_end,
    };
    let mut items = Vec::new();
    loop {
        p.skip_all();
        let Some(c) = p.peek() else { break };
        if c == '}' {
            // Nothing after a stray brace is run: the structure it was meant to close is
            // not what was written.
            items.push(Item::Error(SyntaxError {
                msg: "unexpected '}' (no block is open)".into(),
                span: Span {
                    start: p.i,
                    end: p.i + 1,
                },
            }));
            break;
        }
        p.first_err = None;
        p.depth = 0;
        p.loops = 0;
        p.funcs = 0;
        match p.item() {
            Ok(it) => items.push(match p.first_err.take() {
                Some(e) => Item::Error(e),
                None => it,
            }),
            Err(Hard::NeedMore) => return Parsed::NeedMore,
            Err(Hard::Error(e)) => {
                // The structure is broken: the rest of the chunk is not run.
                let first = match p.first_err.take() {
                    Some(f) if f.span.start <= e.span.start => f,
                    _ => e,
                };
                items.push(Item::Error(first));
                break;
            }
        }
    }
    Parsed::Items(items)
}

/// An error that ends the parse of the chunk.
enum Hard {
    Error(SyntaxError),
    NeedMore,
}

fn hard<T>(msg: impl Into<String>, start: usize, end: usize) -> Result<T, Hard> {
    Err(Hard::Error(SyntaxError {
        msg: msg.into(),
        span: Span { start, end },
    }))
}

struct Parser<'a> {
    c: Vec<char>,
    i: usize,
    is_command: &'a dyn Fn(&str) -> bool,
    /// The first error inside the current top-level item whose extent is still known.
    first_err: Option<SyntaxError>,
    /// Blocks and bodies around the cursor.
    depth: usize,
    /// Loops around the cursor (for `break` and `continue`).
    loops: usize,
    /// Block arguments around the cursor (for `return`).
    funcs: usize,
    at_end: bool,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    /// Records an error that spoils the current item but not the chunk's structure.
    fn soft(&mut self, e: SyntaxError) {
        if self.first_err.is_none() {
            self.first_err = Some(e);
        }
    }

    /// Skips white space, new lines, `;` and comments.
    fn skip_all(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() || c == ';' {
                self.i += 1;
            } else if c == '#' {
                self.skip_comment();
            } else {
                break;
            }
        }
    }

    /// Skips white space, new lines and comments (not `;`: an empty body).
    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.i += 1;
            } else if c == '#' {
                self.skip_comment();
            } else {
                break;
            }
        }
    }

    fn skip_comment(&mut self) {
        while self.peek().is_some_and(|c| c != '\n') {
            self.i += 1;
        }
    }

    /// Skips blanks on the line.
    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(|c| c.is_whitespace() && c != '\n') {
            self.i += 1;
        }
    }

    /// The identifier starting at the cursor (empty if none).
    fn word(&self) -> String {
        if !self.peek().is_some_and(|c| c.is_alphabetic() || c == '_') {
            return String::new();
        }
        self.c[self.i..]
            .iter()
            .take_while(|c| is_ident(**c))
            .collect()
    }

    /// Whether keyword `kw` is at the cursor (as a whole word).
    fn keyword(&self, kw: &str) -> bool {
        self.word() == kw
    }

    /// One level deeper (a block or a body).
    fn enter(&mut self) -> Result<(), Hard> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return hard(
                format!("blocks nested too deeply (more than {MAX_DEPTH} levels)"),
                self.i,
                self.i + 1,
            );
        }
        Ok(())
    }

    /// More input is needed here, or (at the end of input) the error `msg` at `span`.
    fn need_more<T>(&self, msg: &str, span: Span) -> Result<T, Hard> {
        if self.at_end {
            hard(msg, span.start, span.end)
        } else {
            Err(Hard::NeedMore)
        }
    }

    fn item(&mut self) -> Result<Item, Hard> {
        if self.peek() == Some('{') {
            self.enter()?;
            let items = self.block_rest()?;
            self.depth -= 1;
            return Ok(Item::Block(items));
        }
        let w = self.word();
        let span = Span {
            start: self.i,
            end: self.i + w.chars().count(),
        };
        match w.as_str() {
            "if" => self.if_item(span),
            "while" => {
                self.i = span.end;
                let cond = self.cond("while")?;
                self.loops += 1;
                let body = self.body(span)?;
                self.loops -= 1;
                Ok(Item::While { cond, body, span })
            }
            "for" => self.for_item(span),
            "return" => self.return_item(span),
            "else" => {
                self.soft(SyntaxError {
                    msg: "'else' without a previous 'if' (write it after the if's body on the \
                          same line: '} else {')"
                        .into(),
                    span,
                });
                self.i = span.end;
                self.skip_blanks();
                if self.keyword("if") {
                    let s = Span {
                        start: self.i,
                        end: self.i + 2,
                    };
                    return self.if_item(s);
                }
                self.body(span)?;
                Ok(Item::Block(Vec::new()))
            }
            "break" | "continue" => {
                self.i = span.end;
                self.skip_blanks();
                match self.peek() {
                    None | Some(';' | '\n' | '}' | '#') => {}
                    Some(_) => {
                        return hard(format!("expected ';' after '{w}'"), self.i, self.i + 1)
                    }
                }
                if self.peek() == Some(';') {
                    self.i += 1;
                }
                if self.loops == 0 {
                    let msg = if w == "break" {
                        "break statement not within loop"
                    } else {
                        "continue statement not within a loop"
                    };
                    self.soft(SyntaxError {
                        msg: msg.into(),
                        span,
                    });
                }
                Ok(if w == "break" {
                    Item::Break
                } else {
                    Item::Continue
                })
            }
            _ => self.simple(),
        }
    }

    /// The rest of a block after its `{` (at the cursor), through its `}`.
    fn block_rest(&mut self) -> Result<Vec<Item>, Hard> {
        let open = Span {
            start: self.i,
            end: self.i + 1,
        };
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.skip_all();
            match self.peek() {
                None => {
                    return self.need_more(
                        "expected '}' at end of input (this '{' is not closed)",
                        open,
                    )
                }
                Some('}') => {
                    self.i += 1;
                    return Ok(items);
                }
                Some(_) => items.push(self.item()?),
            }
        }
    }

    /// A body after a control header (`kw` is the keyword, for the error at the end).
    fn body(&mut self, kw: Span) -> Result<Vec<Item>, Hard> {
        self.skip_space();
        self.enter()?;
        let r = match self.peek() {
            None => self.need_more("expected a statement at end of input", kw),
            Some(';') => {
                self.i += 1;
                Ok(Vec::new())
            }
            Some('}') => hard("expected a statement before '}'", self.i, self.i + 1),
            Some('{') => self.block_rest(),
            Some(_) => Ok(vec![self.item()?]),
        };
        self.depth -= 1;
        r
    }

    /// `if (c) body { else if (c) body } [else body]`, the `if` at `kw`.
    fn if_item(&mut self, kw: Span) -> Result<Item, Hard> {
        self.i = kw.end;
        let cond = self.cond("if")?;
        let mut arms = vec![(cond, self.body(kw)?)];
        loop {
            let save = self.i;
            self.skip_blanks();
            if !self.keyword("else") {
                self.i = save;
                return Ok(Item::If {
                    arms,
                    otherwise: None,
                });
            }
            let else_span = Span {
                start: self.i,
                end: self.i + 4,
            };
            self.i += 4;
            self.skip_blanks();
            if self.keyword("if") {
                let s = Span {
                    start: self.i,
                    end: self.i + 2,
                };
                self.i += 2;
                let cond = self.cond("if")?;
                arms.push((cond, self.body(s)?));
                continue;
            }
            let otherwise = Some(self.body(else_span)?);
            return Ok(Item::If { arms, otherwise });
        }
    }

    /// `for (init; cond; step) body`.
    fn for_item(&mut self, kw: Span) -> Result<Item, Hard> {
        self.i = kw.end;
        let (base, text) = self.header("for")?;
        let mut parts = Vec::new();
        let (mut start, mut q) = (0, Quotes::default());
        let chars: Vec<char> = text.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            if q.code(c) && c == ';' {
                parts.push((base + start, chars[start..i].iter().collect::<String>()));
                start = i + 1;
            }
        }
        parts.push((base + start, chars[start..].iter().collect()));
        let (mut init, mut cond, mut step) = (None, None, None);
        if parts.len() == 3 {
            init = self.for_stmt(&parts[0]);
            let (b, t) = &parts[1];
            if !t.trim().is_empty() {
                cond = Some(self.expr(t, *b));
            }
            step = self.for_stmt(&parts[2]);
        } else {
            self.soft(SyntaxError {
                msg: format!(
                    "expected 'for (init; condition; step)': {} ';' in the header",
                    parts.len() - 1
                ),
                span: Span {
                    start: base,
                    end: base + chars.len().max(1),
                },
            });
        }
        self.loops += 1;
        let body = self.body(kw)?;
        self.loops -= 1;
        Ok(Item::For {
            init,
            cond,
            step,
            body,
            span: kw,
        })
    }

    /// The init or step statement of a `for` (an assignment or an expression; empty is
    /// none).
    fn for_stmt(&mut self, (base, text): &(usize, String)) -> Option<Box<Stmt>> {
        if text.trim().is_empty() {
            return None;
        }
        match syntax::parse_statement(text, *base, &|_| false) {
            Ok(s) => Some(Box::new(s)),
            Err(e) => {
                self.soft(e);
                None
            }
        }
    }

    /// An expression of a header; a placeholder after an error (the item is spoiled).
    fn expr(&mut self, text: &str, base: usize) -> Expr {
        syntax::parse_expr(text, base).unwrap_or_else(|e| {
            let span = e.span;
            self.soft(e);
            Expr::Int(0, span)
        })
    }

    /// `( expr )` after `kw`.
    fn cond(&mut self, kw: &str) -> Result<Expr, Hard> {
        let (base, text) = self.header(kw)?;
        Ok(self.expr(&text, base))
    }

    /// The text between `(` and its `)` after keyword `kw` (on one line), and where it
    /// starts.
    fn header(&mut self, kw: &str) -> Result<(usize, String), Hard> {
        self.skip_blanks();
        if self.peek() != Some('(') {
            return hard(format!("expected '(' after '{kw}'"), self.i, self.i + 1);
        }
        let open = self.i;
        self.i += 1;
        let base = self.i;
        let (mut depth, mut q) = (1usize, Quotes::default());
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            if q.code(c) {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            let text = self.c[base..self.i].iter().collect();
                            self.i += 1;
                            return Ok((base, text));
                        }
                    }
                    '{' | '}' => break,
                    _ => {}
                }
            }
            self.i += 1;
        }
        hard(
            format!("expected ')' to close the '(' of '{kw}' on its line"),
            open,
            open + 1,
        )
    }

    /// `return [expr]`, the keyword at `kw`.
    fn return_item(&mut self, kw: Span) -> Result<Item, Hard> {
        self.i = kw.end;
        let start = self.i;
        let mut q = Quotes::default();
        while let Some(c) = self.peek() {
            // A new line ends the statement, inside an unclosed string literal too.
            if c == '\n' || (q.code(c) && matches!(c, ';' | '{' | '}' | '#')) {
                break;
            }
            self.i += 1;
        }
        let text: String = self.c[start..self.i].iter().collect();
        match self.peek() {
            Some('{') => return hard("expected ';' or a new line before '{'", self.i, self.i + 1),
            Some(';') => self.i += 1,
            _ => {}
        }
        if self.funcs == 0 {
            self.soft(SyntaxError {
                msg: "'return' outside a block argument (it ends a probe or an action: \
                      driver_register(NAME, BUS, { … return 0 }))"
                    .into(),
                span: kw,
            });
        }
        let value = (!text.trim().is_empty()).then(|| self.expr(&text, start));
        Ok(Item::Return { value, span: kw })
    }

    /// A block argument of a call: its `{` at the cursor, through its `}`.
    fn block_arg(&mut self) -> Result<Vec<Item>, Hard> {
        self.enter()?;
        let loops = core::mem::replace(&mut self.loops, 0);
        self.funcs += 1;
        let r = self.block_rest();
        self.funcs -= 1;
        self.loops = loops;
        self.depth -= 1;
        r
    }

    /// A statement of [`syntax`], through its `;` if it has one. A `{` inside parentheses
    /// opens a block argument (see the module documentation).
    fn simple(&mut self) -> Result<Item, Hard> {
        let start = self.i;
        let mut q = Quotes::default();
        let mut parens = 0usize;
        // Block arguments: where each starts and ends, and its items.
        let mut blocks: Vec<(usize, usize, Vec<Item>)> = Vec::new();
        while let Some(c) = self.peek() {
            // A new line ends the statement, inside an unclosed string literal too.
            if c == '\n' {
                break;
            }
            if q.code(c) {
                match c {
                    '(' => parens += 1,
                    ')' => parens = parens.saturating_sub(1),
                    '{' if parens > 0 => {
                        let open = self.i;
                        let items = self.block_arg()?;
                        blocks.push((open, self.i, items));
                        continue;
                    }
                    ';' | '{' | '}' | '#' => break,
                    _ => {}
                }
            }
            self.i += 1;
        }
        let mut chars = self.c[start..self.i].to_vec();
        for (open, end, _) in &blocks {
            // Keep the braces, blank the inside (new lines included): columns stay right.
            for c in &mut chars[open + 1 - start..end - 1 - start] {
                *c = ' ';
            }
        }
        let text: String = chars.into_iter().collect();
        match self.peek() {
            Some('{') => return hard("expected ';' or a new line before '{'", self.i, self.i + 1),
            Some(';') => self.i += 1,
            _ => {}
        }
        let blocks = blocks.into_iter().map(|(_, _, b)| b.into()).collect();
        match syntax::parse_statement_blocks(&text, start, self.is_command, blocks) {
            Ok(s) => Ok(Item::Stmt(s)),
            Err(e) => {
                self.soft(e.clone());
                Ok(Item::Error(e))
            }
        }
    }
}

/// The longest chunk the shell collects (a block that does not close within it is an
/// error, and is not buffered further).
pub const MAX_CHUNK: usize = 1 << 20;

/// Groups input lines into chunks: lines are added until the braces balance and nothing
/// waits for a body.
#[derive(Default)]
pub struct Chunker {
    text: String,
    first_line: usize,
    lines: usize,
    /// `{` minus `}` so far, outside strings and comments.
    depth: i64,
}

/// A complete chunk.
pub struct Chunk {
    /// Its text (lines joined by `\n`).
    pub text: String,
    /// The 1-based line number of its first line.
    pub first_line: usize,
    /// What it parsed to.
    pub parsed: Parsed,
}

impl Chunker {
    /// Whether a chunk is being collected (for the continuation prompt).
    pub fn pending(&self) -> bool {
        self.lines > 0
    }

    /// Adds line number `n` (1-based); returns the chunk when it is complete.
    pub fn push(
        &mut self,
        line: &str,
        n: usize,
        is_command: &dyn Fn(&str) -> bool,
    ) -> Option<Chunk> {
        if self.lines == 0 {
            self.first_line = n;
            self.depth = 0;
        } else {
            self.text.push('\n');
        }
        self.lines += 1;
        self.text.push_str(line);
        self.depth += brace_balance(line);
        if self.text.len() > MAX_CHUNK {
            let first_line = self.first_line;
            self.reset();
            return Some(Chunk {
                text: String::new(),
                first_line,
                parsed: Parsed::Items(vec![Item::Error(SyntaxError {
                    msg: format!("a block longer than {MAX_CHUNK} bytes: skipped"),
                    span: Span::default(),
                })]),
            });
        }
        if self.depth > 0 {
            return None;
        }
        match parse_chunk(&self.text, is_command, false) {
            Parsed::NeedMore => None,
            parsed => Some(self.take(parsed)),
        }
    }

    /// The end of input: the pending chunk, if any, parsed as final.
    pub fn finish(&mut self, is_command: &dyn Fn(&str) -> bool) -> Option<Chunk> {
        if self.lines == 0 {
            return None;
        }
        let parsed = parse_chunk(&self.text, is_command, true);
        Some(self.take(parsed))
    }

    /// Drops the pending lines (Ctrl-C at a continuation prompt).
    pub fn reset(&mut self) {
        self.text.clear();
        self.lines = 0;
        self.depth = 0;
    }

    fn take(&mut self, parsed: Parsed) -> Chunk {
        let c = Chunk {
            text: std::mem::take(&mut self.text),
            first_line: self.first_line,
            parsed,
        };
        self.reset();
        c
    }
}

/// `{` minus `}` on a line, outside string literals and comments.
fn brace_balance(line: &str) -> i64 {
    let (mut n, mut q) = (0, Quotes::default());
    for c in line.chars() {
        if !q.code(c) {
            continue;
        }
        match c {
            '#' => break,
            '{' => n += 1,
            '}' => n -= 1,
            _ => {}
        }
    }
    n
}

/// The string-literal state of a left-to-right scan, so that the scanners above see only
/// the characters of code: a `"` opens a literal, `\` escapes the next character in it, and
/// an unescaped `"` closes it.
#[derive(Default)]
struct Quotes {
    in_str: bool,
    esc: bool,
}

impl Quotes {
    /// Takes the next character; returns whether it is code (outside every string literal;
    /// the quotes themselves belong to their literal).
    fn code(&mut self, c: char) -> bool {
        if self.in_str {
            if self.esc {
                self.esc = false;
            } else if c == '\\' {
                self.esc = true;
            } else if c == '"' {
                self.in_str = false;
            }
            false
        } else if c == '"' {
            self.in_str = true;
            false
        } else {
            true
        }
    }
}
