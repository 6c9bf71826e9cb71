//! The shell's syntax: splitting a line into statements, the lexer, the AST and the parser.
//!
//! A line holds statements separated by `;`; `#` starts a comment that runs to the end of the
//! line (outside string literals). A statement is one of:
//!
//! ```text
//! statement  := NAME '=' expr            assignment: prints `NAME = VALUE`
//!             | NAME OP'=' expr          compound assignment (OP one of + - * / % & | ^ << >>)
//!             | NAME '++' | NAME '--'    increment, decrement
//!             | expr                     expression: prints its value (nothing for void)
//!             | COMMAND words…           a command word first, not followed by '(' or '='
//! expr       := C's binary operators || && | ^ & == != < <= > >= << >> + - * / % with C's
//!               precedence (`&&` and `||` short-circuit)
//! unary      := ('-' | '~' | '!') unary | '(' type ')' unary | primary
//! type       := 'void' '*' | 'unsigned' 'long' | 'long'
//! primary    := INTEGER | STRING | NAME | NAME '(' [arg {',' arg}] ')' | '(' expr ')'
//! arg        := expr | BLOCK             BLOCK: `{ … }`, statements parsed by [`super::block`]
//! ```
//!
//! A block argument (`driver_register("camera", "platform", { return -ENODEV })`) is cut out
//! of the statement by [`super::block`], which parses its statements; the statement text
//! handed here keeps its braces with the inside blanked (so columns stay right), and the
//! lexer reads `{ … }` as one token standing for the next of those blocks.
//!
//! Integers are decimal, `0x` hexadecimal or `0` octal (as in C) and must fit in 64 bits.
//! Control flow (`if`, `while`, `for`, `{ }` blocks) is parsed around these statements by
//! [`super::block`]. Columns in errors are
//! 1-based character positions in the whole input line.
//!
//! A command word followed by a cast (`translate (void *)0x1000`) is still the command: only
//! `(` that opens a call (`translate(p)`) makes the word a name.
//!
//! Expressions nest at most [`MAX_DEPTH`] (64) levels (parentheses, unary operators, casts, calls
//! and chained binary operators all count): deeper input is a syntax error, not a stack
//! overflow of the parser or of the recursive evaluator.

use std::fmt;
use std::rc::Rc;

/// One unit of a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A statement of [`syntax`].
    Stmt(Stmt),
    /// `if (c) … else if (c) … else …`: the arms in order, and the `else` body.
    If {
        /// Conditions and their bodies.
        arms: Vec<(Expr, Vec<Item>)>,
        /// The final `else`.
        otherwise: Option<Vec<Item>>,
    },
    /// `while (cond) body`.
    While {
        /// The condition.
        cond: Expr,
        /// The body.
        body: Vec<Item>,
        /// The `while` keyword (where an interruption is reported).
        span: Span,
    },
    /// `for (init; cond; step) body`.
    For {
        /// Run once first.
        init: Option<Box<Stmt>>,
        /// Tested before each iteration; none is true.
        cond: Option<Expr>,
        /// Run after each iteration (and after `continue`).
        step: Option<Box<Stmt>>,
        /// The body.
        body: Vec<Item>,
        /// The `for` keyword.
        span: Span,
    },
    /// `{ … }`.
    Block(Vec<Item>),
    /// `break`.
    Break,
    /// `continue`.
    Continue,
    /// `return [expr]` (inside a block argument: a probe's result).
    Return {
        /// The value, if any.
        value: Option<Expr>,
        /// The `return` keyword.
        span: Span,
    },
    /// A syntax error in place of the item it spoiled (top level only: an error anywhere in
    /// a construct replaces the whole construct).
    Error(SyntaxError),
}

/// A position range in the input line, in characters (0-based, end exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    /// First character.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
}

impl Span {
    /// The range `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }
    fn to(self, other: Span) -> Span {
        Span::new(self.start, other.end)
    }
}

/// A syntax error with the place it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// What is wrong.
    pub msg: String,
    /// Where.
    pub span: Span,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

/// How deeply an expression may nest: 64, just above the 63 levels of nested parenthesized
/// expressions C requires compilers to accept (C11 5.2.4.1). The parser and the evaluator
/// recurse; an unoptimised build takes about 15 KiB of stack per level of parentheses, so 64
/// levels stay well inside a 2 MiB thread stack (where 150 did not).
pub const MAX_DEPTH: usize = 64;

fn err<T>(msg: impl Into<String>, span: Span) -> Result<T, SyntaxError> {
    Err(SyntaxError {
        msg: msg.into(),
        span,
    })
}

/// Binary operators, in C's meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `|`
    Or,
    /// `^`
    Xor,
    /// `&`
    And,
    /// `<<`
    Shl,
    /// `>>`
    Shr,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `||`: 0 or 1, short-circuit.
    LogOr,
    /// `&&`: 0 or 1, short-circuit.
    LogAnd,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "|",
            BinOp::Xor => "^",
            BinOp::And => "&",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::LogOr => "||",
            BinOp::LogAnd => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
        }
    }

    /// C's precedence, higher binds tighter: `||` 1 … `* / %` 10.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::LogOr => 1,
            BinOp::LogAnd => 2,
            BinOp::Or => 3,
            BinOp::Xor => 4,
            BinOp::And => 5,
            BinOp::Eq | BinOp::Ne => 6,
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 7,
            BinOp::Shl | BinOp::Shr => 8,
            BinOp::Add | BinOp::Sub => 9,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 10,
        }
    }

    /// The operator spelled `p`.
    fn from_symbol(p: &str) -> Option<BinOp> {
        Some(match p {
            "|" => BinOp::Or,
            "^" => BinOp::Xor,
            "&" => BinOp::And,
            "<<" => BinOp::Shl,
            ">>" => BinOp::Shr,
            "+" => BinOp::Add,
            "-" => BinOp::Sub,
            "*" => BinOp::Mul,
            "/" => BinOp::Div,
            "%" => BinOp::Rem,
            "||" => BinOp::LogOr,
            "&&" => BinOp::LogAnd,
            "==" => BinOp::Eq,
            "!=" => BinOp::Ne,
            "<" => BinOp::Lt,
            "<=" => BinOp::Le,
            ">" => BinOp::Gt,
            ">=" => BinOp::Ge,
            _ => return None,
        })
    }
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    /// `-`
    Neg,
    /// `~`
    Not,
    /// `!`: 1 if the operand is 0 (or NULL), else 0.
    LogNot,
}

/// The target of a cast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CastTo {
    /// `(void *)`: a plain pointer.
    VoidPtr,
    /// `(unsigned long)` or `(long)`: an integer.
    Long,
}

/// An expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// An integer literal.
    Int(u64, Span),
    /// A string literal.
    Str(String, Span),
    /// A name: a variable, `NULL` or a GFP flag.
    Name(String, Span),
    /// A function call.
    Call {
        /// The function's name.
        name: String,
        /// Span of the name.
        name_span: Span,
        /// Arguments.
        args: Vec<Expr>,
        /// The whole call.
        span: Span,
    },
    /// A unary operation.
    Unary(UnOp, Box<Expr>, Span),
    /// A binary operation.
    Binary(BinOp, Box<Expr>, Box<Expr>, Span),
    /// A cast.
    Cast(CastTo, Box<Expr>, Span),
    /// A block of statements written as a function's argument (`{ … }`): code run later,
    /// by the function (a probe, a devm action).
    Block(Rc<[Item]>, Span),
}

impl Expr {
    /// The source range of the expression.
    pub fn span(&self) -> Span {
        match self {
            Expr::Int(_, s) | Expr::Str(_, s) | Expr::Name(_, s) => *s,
            Expr::Call { span, .. } => *span,
            Expr::Unary(_, _, s) | Expr::Binary(_, _, _, s) | Expr::Cast(_, _, s) => *s,
            Expr::Block(_, s) => *s,
        }
    }
}

/// A command's argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    /// The text.
    pub text: String,
    /// Where.
    pub span: Span,
}

/// One statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    /// `NAME = expr`.
    Assign {
        /// The variable.
        name: String,
        /// Span of the name.
        name_span: Span,
        /// The value.
        value: Expr,
    },
    /// `NAME OP= expr`, `NAME++` (`+= 1`), `NAME--` (`-= 1`).
    Update {
        /// The variable.
        name: String,
        /// Span of the name.
        name_span: Span,
        /// The operator.
        op: BinOp,
        /// The right operand.
        value: Expr,
        /// The whole statement (for errors of the operation).
        span: Span,
    },
    /// An expression statement.
    Expr(Expr),
    /// A command with its words (`cat /proc/buddyinfo`, `dmesg -c`, `translate p + 4096`:
    /// the words are the raw text after the command, split at white space).
    Command {
        /// The command.
        name: String,
        /// Span of the command word.
        name_span: Span,
        /// The rest of the statement, raw (for commands that take an expression).
        rest: Word,
        /// The rest split at white space.
        words: Vec<Word>,
    },
}

/// A lexical token.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Int(u64),
    Str(String),
    Name(String),
    /// Punctuation and operators.
    Punct(&'static str),
    /// `{ … }`: the next block argument of the statement (its inside is blank here).
    Block,
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Int(v) => write!(f, "number {v}"),
            Tok::Str(_) => f.write_str("string"),
            Tok::Name(n) => write!(f, "'{n}'"),
            Tok::Punct(p) => write!(f, "'{p}'"),
            Tok::Block => f.write_str("a block { }"),
            Tok::End => f.write_str("end of statement"),
        }
    }
}

/// Two-character operators first: the lexer takes the longest match.
const PUNCT: &[&str] = &[
    "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "(", ")", ",", "=", "+", "-", "*", "/", "%",
    "|", "&", "^", "~", "!", "<", ">",
];

/// Splits `text` (starting at character `base` of the line) into tokens.
fn lex(text: &str, base: usize) -> Result<Vec<(Tok, Span)>, SyntaxError> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = base + i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() {
            let s = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[s..i].iter().collect();
            let span = Span::new(at, base + i);
            let digits = word.replace('_', "");
            let parsed = if let Some(h) = digits
                .strip_prefix("0x")
                .or_else(|| digits.strip_prefix("0X"))
            {
                if h.is_empty() {
                    return err("hexadecimal number has no digits", span);
                }
                u64::from_str_radix(h, 16)
            } else if digits.len() > 1 && digits.starts_with('0') {
                // C's octal constants (`0600`); `08` is an error as in C.
                if let Some(d) = digits.chars().find(|c| matches!(c, '8' | '9')) {
                    return err(format!("invalid digit \"{d}\" in octal constant"), span);
                }
                u64::from_str_radix(&digits[1..], 8)
            } else {
                digits.parse::<u64>()
            };
            match parsed {
                Ok(v) => toks.push((Tok::Int(v), span)),
                Err(e) => {
                    let why = if matches!(
                        e.kind(),
                        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
                    ) {
                        format!("number {word} does not fit in 64 bits")
                    } else {
                        format!("invalid number '{word}'")
                    };
                    return err(why, span);
                }
            }
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let s = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            toks.push((
                Tok::Name(chars[s..i].iter().collect()),
                Span::new(at, base + i),
            ));
            continue;
        }
        if c == '"' {
            let s = i;
            i += 1;
            let mut v = String::new();
            loop {
                match chars.get(i) {
                    None => return err("unterminated string", Span::new(at, base + i)),
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        let e = match chars.get(i + 1) {
                            Some('n') => '\n',
                            Some('t') => '\t',
                            Some('\\') => '\\',
                            Some('"') => '"',
                            Some('0') => '\0',
                            _ => {
                                return err(
                                    "unknown escape in string",
                                    Span::new(base + i, base + i + 2),
                                )
                            }
                        };
                        v.push(e);
                        i += 2;
                    }
                    Some(&ch) => {
                        v.push(ch);
                        i += 1;
                    }
                }
            }
            toks.push((Tok::Str(v), Span::new(base + s, base + i)));
            continue;
        }
        if c == '{' {
            // A block argument, blanked by the block parser: through its '}'.
            if let Some(n) = chars[i..].iter().position(|&c| c == '}') {
                toks.push((Tok::Block, Span::new(at, at + n + 1)));
                i += n + 1;
                continue;
            }
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        if let Some(p) = PUNCT.iter().find(|p| rest.starts_with(**p)) {
            let n = p.chars().count();
            toks.push((Tok::Punct(p), Span::new(at, at + n)));
            i += n;
            continue;
        }
        return err(format!("unexpected character '{c}'"), Span::new(at, at + 1));
    }
    let end = base + chars.len();
    toks.push((Tok::End, Span::new(end, end + 1)));
    Ok(toks)
}

/// Parses one statement text that starts at character `base` of its line. `is_command`
/// tells which leading words are commands.
///
/// # Errors
/// A [`SyntaxError`] at the first token that does not fit the grammar.
pub fn parse_statement(
    text: &str,
    base: usize,
    is_command: &dyn Fn(&str) -> bool,
) -> Result<Stmt, SyntaxError> {
    parse_statement_blocks(text, base, is_command, Vec::new())
}

/// [`parse_statement`] of a statement with block arguments: `blocks` are their statements,
/// in the order they are written (the text holds each as `{`, blanks, `}`).
///
/// # Errors
/// As [`parse_statement`]; a block where no function argument may be is an error.
pub fn parse_statement_blocks(
    text: &str,
    base: usize,
    is_command: &dyn Fn(&str) -> bool,
    blocks: Vec<Rc<[Item]>>,
) -> Result<Stmt, SyntaxError> {
    // Commands: the first word is a command and what follows is not `(` or `=`.
    let lead_ws = text.chars().take_while(|c| c.is_whitespace()).count();
    let body: String = text.chars().skip(lead_ws).collect();
    let word_len = body
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .count();
    if word_len > 0 {
        let word: String = body.chars().take(word_len).collect();
        let after: String = body.chars().skip(word_len).collect();
        let next = after.trim_start().chars().next();
        let call = next == Some('(') && !after_is_cast(&after);
        if is_command(&word) && !call && next != Some('=') {
            let name_span = Span::new(base + lead_ws, base + lead_ws + word_len);
            let rest_base = name_span.end;
            let mut words = Vec::new();
            let mut cur = String::new();
            let mut cur_start = 0;
            for (i, c) in after.chars().enumerate() {
                if c.is_whitespace() {
                    if !cur.is_empty() {
                        words.push(Word {
                            text: std::mem::take(&mut cur),
                            span: Span::new(rest_base + cur_start, rest_base + i),
                        });
                    }
                } else {
                    if cur.is_empty() {
                        cur_start = i;
                    }
                    cur.push(c);
                }
            }
            if !cur.is_empty() {
                let n = after.chars().count();
                words.push(Word {
                    text: cur,
                    span: Span::new(rest_base + cur_start, rest_base + n),
                });
            }
            return Ok(Stmt::Command {
                name: word,
                name_span,
                rest: Word {
                    text: after.clone(),
                    span: Span::new(rest_base, rest_base + after.chars().count()),
                },
                words,
            });
        }
    }
    let toks = lex(text, base)?;
    if let Some(stmt) = update_statement(&toks, &blocks)? {
        return Ok(stmt);
    }
    let mut p = Parser::new(toks);
    p.blocks = blocks;
    let stmt = if let (Tok::Name(n), Tok::Punct("=")) = (&p.toks[0].0, &p.toks[1].0) {
        let name = n.clone();
        let name_span = p.toks[0].1;
        p.pos = 2;
        Stmt::Assign {
            name,
            name_span,
            value: p.expr()?,
        }
    } else {
        Stmt::Expr(p.expr()?)
    };
    match p.peek() {
        Tok::End => Ok(stmt),
        t => {
            let msg = format!("unexpected {t} after the statement");
            err(msg, p.span())
        }
    }
}

/// `NAME OP= expr`, `NAME++` or `NAME--` (the operator and `=`, or the two signs, written
/// without a space between them), if the tokens are one of these.
fn update_statement(
    toks: &[(Tok, Span)],
    blocks: &[Rc<[Item]>],
) -> Result<Option<Stmt>, SyntaxError> {
    let get = |i: usize| toks.get(i).map_or(&Tok::End, |t| &t.0);
    let span = |i: usize| toks.get(i).map_or(Span::default(), |t| t.1);
    let Tok::Name(name) = get(0) else {
        return Ok(None);
    };
    let Tok::Punct(op_text) = get(1) else {
        return Ok(None);
    };
    let Some(op) = BinOp::from_symbol(op_text) else {
        return Ok(None);
    };
    let adjacent = span(1).end == span(2).start;
    let name_span = span(0);
    match get(2) {
        Tok::Punct("=") if adjacent && op.precedence() >= 3 => {
            let mut p = Parser::new(toks[3..].to_vec());
            p.blocks = blocks.to_vec();
            let value = p.expr()?;
            if let Tok::End = p.peek() {
                let span = name_span.to(value.span());
                Ok(Some(Stmt::Update {
                    name: name.clone(),
                    name_span,
                    op,
                    value,
                    span,
                }))
            } else {
                let msg = format!("unexpected {} after the statement", p.peek());
                err(msg, p.span())
            }
        }
        Tok::Punct(q) if adjacent && *q == *op_text && matches!(op, BinOp::Add | BinOp::Sub) => {
            if get(3) != &Tok::End {
                let msg = format!("unexpected {} after the statement", get(3));
                return err(msg, span(3));
            }
            let span = name_span.to(span(2));
            Ok(Some(Stmt::Update {
                name: name.clone(),
                name_span,
                op,
                value: Expr::Int(1, span),
                span,
            }))
        }
        _ => Ok(None),
    }
}

/// Parses a whole expression (for commands that take one, like `translate`).
///
/// # Errors
/// As [`parse_statement`].
pub fn parse_expr(text: &str, base: usize) -> Result<Expr, SyntaxError> {
    let toks = lex(text, base)?;
    let mut p = Parser::new(toks);
    let e = p.expr()?;
    match p.peek() {
        Tok::End => Ok(e),
        t => {
            let msg = format!("unexpected {t} after the expression");
            err(msg, p.span())
        }
    }
}

/// Whether `after` (the text after a command word) starts with a C cast: `(void *)`,
/// `(unsigned long)` or `(long)`.
fn after_is_cast(after: &str) -> bool {
    lex(after, 0).is_ok_and(|toks| {
        let t: Vec<&Tok> = toks.iter().map(|(t, _)| t).collect();
        t.first() == Some(&&Tok::Punct("(")) && cast_at(&t[1..]).is_some()
    })
}

/// The cast whose type starts `t` (the tokens after its `(`): the target and how many
/// tokens the type and its `)` take.
fn cast_at(t: &[&Tok]) -> Option<(CastTo, usize)> {
    let get = |i: usize| t.get(i).copied().unwrap_or(&Tok::End);
    match (get(0), get(1), get(2)) {
        (Tok::Name(a), Tok::Punct("*"), Tok::Punct(")")) if a == "void" => {
            Some((CastTo::VoidPtr, 3))
        }
        (Tok::Name(a), Tok::Name(b), Tok::Punct(")")) if a == "unsigned" && b == "long" => {
            Some((CastTo::Long, 3))
        }
        (Tok::Name(a), Tok::Punct(")"), _) if a == "long" => Some((CastTo::Long, 2)),
        _ => None,
    }
}

struct Parser {
    toks: Vec<(Tok, Span)>,
    pos: usize,
    /// Levels of the expression tree above the node being parsed (see [`MAX_DEPTH`]).
    depth: usize,
    /// The statement's block arguments, in order; `next_block` is the next one's index.
    blocks: Vec<Rc<[Item]>>,
    next_block: usize,
}

impl Parser {
    fn new(toks: Vec<(Tok, Span)>) -> Self {
        Self {
            toks,
            pos: 0,
            depth: 0,
            blocks: Vec::new(),
            next_block: 0,
        }
    }

    /// One level deeper; an error past [`MAX_DEPTH`].
    fn deeper(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(
                format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
                self.span(),
            );
        }
        Ok(())
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }
    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)].0
    }
    fn span(&self) -> Span {
        self.toks[self.pos].1
    }
    fn prev_span(&self) -> Span {
        self.toks[self.pos.saturating_sub(1)].1
    }
    fn bump(&mut self) -> (Tok, Span) {
        let t = self.toks[self.pos].clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }
    fn eat(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Tok::Punct(q) if *q == p) {
            self.bump();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, p: &str, what: &str) -> Result<Span, SyntaxError> {
        if self.eat(p) {
            Ok(self.prev_span())
        } else {
            let msg = format!("expected '{p}' {what}, found {}", self.peek());
            err(msg, self.span())
        }
    }

    fn expr(&mut self) -> Result<Expr, SyntaxError> {
        self.binary(1)
    }

    /// The binary operator at the cursor, if any.
    fn peek_binop(&self) -> Option<BinOp> {
        match self.peek() {
            Tok::Punct(p) => BinOp::from_symbol(p),
            _ => None,
        }
    }

    /// Operators of precedence `min` and above (precedence climbing: left-associative).
    fn binary(&mut self, min: u8) -> Result<Expr, SyntaxError> {
        let saved = self.depth;
        let mut lhs = self.unary()?;
        while let Some(op) = self.peek_binop().filter(|op| op.precedence() >= min) {
            self.bump();
            // Each operator of a chain puts the chain so far one level deeper
            // (`1+1+…+1` is a left-deep tree).
            self.deeper()?;
            let rhs = self.binary(op.precedence() + 1)?;
            let span = lhs.span().to(rhs.span());
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs), span);
        }
        self.depth = saved;
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        self.deeper()?;
        let e = self.unary_inner();
        self.depth -= 1;
        e
    }

    fn unary_inner(&mut self) -> Result<Expr, SyntaxError> {
        let start = self.span();
        if self.eat("-") {
            let e = self.unary()?;
            let span = start.to(e.span());
            return Ok(Expr::Unary(UnOp::Neg, Box::new(e), span));
        }
        if self.eat("~") {
            let e = self.unary()?;
            let span = start.to(e.span());
            return Ok(Expr::Unary(UnOp::Not, Box::new(e), span));
        }
        if self.eat("!") {
            let e = self.unary()?;
            let span = start.to(e.span());
            return Ok(Expr::Unary(UnOp::LogNot, Box::new(e), span));
        }
        // A cast: '(' type ')' unary.
        if matches!(self.peek(), Tok::Punct("(")) {
            let cast = cast_at(&[self.peek_at(1), self.peek_at(2), self.peek_at(3)]);
            if let Some((to, n)) = cast {
                for _ in 0..=n {
                    self.bump();
                }
                let e = self.unary()?;
                let span = start.to(e.span());
                return Ok(Expr::Cast(to, Box::new(e), span));
            }
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, SyntaxError> {
        let (tok, span) = self.bump();
        match tok {
            Tok::Int(v) => Ok(Expr::Int(v, span)),
            Tok::Str(s) => Ok(Expr::Str(s, span)),
            Tok::Name(name) => {
                if !self.eat("(") {
                    return Ok(Expr::Name(name, span));
                }
                let mut args = Vec::new();
                if !self.eat(")") {
                    loop {
                        args.push(self.arg()?);
                        if self.eat(",") {
                            continue;
                        }
                        self.expect(")", "after the arguments")?;
                        break;
                    }
                }
                let end = self.prev_span();
                Ok(Expr::Call {
                    name,
                    name_span: span,
                    args,
                    span: span.to(end),
                })
            }
            Tok::Punct("(") => {
                let e = self.expr()?;
                self.expect(")", "to close '('")?;
                Ok(e)
            }
            Tok::End => err("expected an expression, found end of statement", span),
            Tok::Block => err(
                "a block { } is only a function's argument (driver_register, devm_add_action)",
                span,
            ),
            t => err(format!("expected an expression, found {t}"), span),
        }
    }

    /// A call's argument: an expression, or a block.
    fn arg(&mut self) -> Result<Expr, SyntaxError> {
        if *self.peek() != Tok::Block {
            return self.expr();
        }
        let (_, span) = self.bump();
        let Some(b) = self.blocks.get(self.next_block) else {
            return err("a block { } cannot be written here", span);
        };
        let b = Rc::clone(b);
        self.next_block += 1;
        Ok(Expr::Block(b, span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_cmd(_: &str) -> bool {
        false
    }
    fn cmds(w: &str) -> bool {
        matches!(w, "cat" | "dmesg" | "translate")
    }

    fn show(e: &Expr) -> String {
        match e {
            Expr::Int(v, _) => v.to_string(),
            Expr::Str(s, _) => format!("{s:?}"),
            Expr::Name(n, _) => n.clone(),
            Expr::Call { name, args, .. } => format!(
                "{name}({})",
                args.iter().map(show).collect::<Vec<_>>().join(", ")
            ),
            Expr::Unary(op, e, _) => {
                let op = match op {
                    UnOp::Neg => "-",
                    UnOp::Not => "~",
                    UnOp::LogNot => "!",
                };
                format!("({op}{})", show(e))
            }
            Expr::Binary(op, l, r, _) => format!("({} {} {})", show(l), op.symbol(), show(r)),
            Expr::Cast(t, e, _) => format!("({t:?}){}", show(e)),
            Expr::Block(b, _) => format!("{{{} items}}", b.len()),
        }
    }

    fn expr(s: &str) -> String {
        match parse_statement(s, 0, &no_cmd).unwrap() {
            Stmt::Expr(e) => show(&e),
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn precedence_is_c() {
        assert_eq!(expr("1 + 2 * 3"), "(1 + (2 * 3))");
        assert_eq!(expr("a | b & c"), "(a | (b & c))");
        assert_eq!(expr("1 << 2 + 3"), "(1 << (2 + 3))");
        assert_eq!(expr("8 - 2 - 1"), "((8 - 2) - 1)");
        assert_eq!(expr("-x + ~y"), "((-x) + (~y))");
        assert_eq!(expr("(1 + 2) * 3"), "((1 + 2) * 3)");
        assert_eq!(expr("GFP_KERNEL|__GFP_ZERO"), "(GFP_KERNEL | __GFP_ZERO)");
    }

    #[test]
    fn comparison_and_logical_precedence_is_c() {
        assert_eq!(expr("a || b && c"), "(a || (b && c))");
        assert_eq!(expr("a && b || c"), "((a && b) || c)");
        assert_eq!(expr("a | b && c | d"), "((a | b) && (c | d))");
        assert_eq!(expr("a & b == c"), "(a & (b == c))");
        assert_eq!(expr("a == b < c"), "(a == (b < c))");
        assert_eq!(expr("a != b == c"), "((a != b) == c)");
        assert_eq!(expr("a << 1 < b >> 1"), "((a << 1) < (b >> 1))");
        assert_eq!(expr("a <= b + 1"), "(a <= (b + 1))");
        assert_eq!(expr("a >= b"), "(a >= b)");
        assert_eq!(expr("!a == b"), "((!a) == b)");
        assert_eq!(expr("!!a"), "(!(!a))");
        assert_eq!(expr("a < b < c"), "((a < b) < c)");
        assert_eq!(expr("-a > ~b"), "((-a) > (~b))");
        // `x == 1` is a comparison, not an assignment.
        assert_eq!(expr("x == 1"), "(x == 1)");
        // `--x` stays two minus signs (as it always parsed).
        assert_eq!(expr("--x"), "(-(-x))");
    }

    #[test]
    fn octal_constants_are_c() {
        assert_eq!(expr("0600"), "384");
        assert_eq!(expr("01000 | 0600"), "(512 | 384)");
        assert_eq!(expr("0"), "0");
        assert_eq!(expr("00"), "0");
        let e = parse_statement("x = 0800", 0, &no_cmd).unwrap_err();
        assert_eq!(
            (e.msg.as_str(), e.span.start),
            ("invalid digit \"8\" in octal constant", 4)
        );
        let e = parse_statement("x = 02000000000000000000000", 0, &no_cmd).unwrap_err();
        assert!(e.msg.contains("64 bits"), "{}", e.msg);
    }

    fn update(s: &str) -> (String, BinOp, String) {
        match parse_statement(s, 0, &no_cmd).unwrap() {
            Stmt::Update {
                name, op, value, ..
            } => (name, op, show(&value)),
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn compound_assignment_and_increments() {
        assert_eq!(update("i++"), ("i".into(), BinOp::Add, "1".into()));
        assert_eq!(update(" i-- "), ("i".into(), BinOp::Sub, "1".into()));
        assert_eq!(
            update("x += 4 * 2"),
            ("x".into(), BinOp::Add, "(4 * 2)".into())
        );
        assert_eq!(update("x -= 1"), ("x".into(), BinOp::Sub, "1".into()));
        assert_eq!(update("x *= 3"), ("x".into(), BinOp::Mul, "3".into()));
        assert_eq!(update("x /= 3"), ("x".into(), BinOp::Div, "3".into()));
        assert_eq!(update("x %= 3"), ("x".into(), BinOp::Rem, "3".into()));
        assert_eq!(update("x &= ~1"), ("x".into(), BinOp::And, "(~1)".into()));
        assert_eq!(update("x |= 1"), ("x".into(), BinOp::Or, "1".into()));
        assert_eq!(update("x ^= 1"), ("x".into(), BinOp::Xor, "1".into()));
        assert_eq!(update("x <<= 2"), ("x".into(), BinOp::Shl, "2".into()));
        assert_eq!(update("x >>= 2"), ("x".into(), BinOp::Shr, "2".into()));
        // Not updates: comparisons, spaced operators, logical operators.
        assert_eq!(expr("x <= 2"), "(x <= 2)");
        assert_eq!(expr("x - -1"), "(x - (-1))");
        for bad in [
            "x + = 1", "x ++ 1", "i + +", "x &&= 1", "x ||= 1", "x += ", "i++ 2",
        ] {
            assert!(parse_statement(bad, 0, &no_cmd).is_err(), "{bad}");
        }
        let e = parse_statement("i++ 2", 0, &no_cmd).unwrap_err();
        assert_eq!(e.span.start, 4);
    }

    #[test]
    fn calls_casts_literals() {
        assert_eq!(
            expr("alloc_pages(GFP_KERNEL, 5)"),
            "alloc_pages(GFP_KERNEL, 5)"
        );
        assert_eq!(expr("f()"), "f()");
        assert_eq!(expr("0xffffffffffffffff"), u64::MAX.to_string());
        assert_eq!(expr("(void *)0x10 + 1"), "((VoidPtr)16 + 1)");
        assert_eq!(expr("(unsigned long)p"), "(Long)p");
        assert_eq!(
            expr(r#"kmem_cache_create("my\"c", 64, 0, 0)"#),
            r#"kmem_cache_create("my\"c", 64, 0, 0)"#
        );
    }

    #[test]
    fn assignment() {
        match parse_statement(" p = alloc_pages(GFP_KERNEL, 5)", 0, &no_cmd).unwrap() {
            Stmt::Assign {
                name, name_span, ..
            } => {
                assert_eq!(name, "p");
                assert_eq!(name_span, Span::new(1, 2));
            }
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn commands_take_raw_words() {
        match parse_statement("cat /proc/buddyinfo  /proc/meminfo", 0, &cmds).unwrap() {
            Stmt::Command { name, words, .. } => {
                assert_eq!(name, "cat");
                let w: Vec<_> = words
                    .iter()
                    .map(|w| (w.text.as_str(), w.span.start))
                    .collect();
                assert_eq!(w, [("/proc/buddyinfo", 4), ("/proc/meminfo", 21)]);
            }
            s => panic!("{s:?}"),
        }
        // A command word used as a variable or a function is not a command.
        assert!(matches!(
            parse_statement("cat = 5", 0, &cmds).unwrap(),
            Stmt::Assign { .. }
        ));
        assert!(matches!(
            parse_statement("translate(p)", 0, &cmds).unwrap(),
            Stmt::Expr(_)
        ));
    }

    #[test]
    fn errors_have_columns() {
        let e = parse_statement("p = alloc_pages(GFP_KERNEL, 5", 0, &no_cmd).unwrap_err();
        assert_eq!(e.span.start, 29);
        assert!(e.msg.contains("expected ')'"), "{}", e.msg);
        let e = parse_statement("x = 1 +", 4, &no_cmd).unwrap_err();
        assert_eq!(e.span.start, 11);
        let e = parse_statement("x = 0x1ffffffffffffffff", 0, &no_cmd).unwrap_err();
        assert_eq!((e.span.start, e.msg.contains("64 bits")), (4, true));
        let e = parse_statement("x = 5 $", 0, &no_cmd).unwrap_err();
        assert_eq!(
            (e.span.start, e.msg.as_str()),
            (6, "unexpected character '$'")
        );
        let e = parse_statement("f(1) g", 0, &no_cmd).unwrap_err();
        assert_eq!(e.span.start, 5);
        let e = parse_statement("\"abc", 0, &no_cmd).unwrap_err();
        assert_eq!(e.msg, "unterminated string");
        let e = parse_statement("0x", 0, &no_cmd).unwrap_err();
        assert!(e.msg.contains("no digits"));
        let e = parse_statement("12ab", 0, &no_cmd).unwrap_err();
        assert!(e.msg.contains("invalid number"));
    }

    /// Deep input is a syntax error at [`MAX_DEPTH`], not a stack overflow; up to it, it
    /// parses (on a test thread's 2 MiB stack, unoptimised).
    #[test]
    fn nesting_is_limited() {
        let deep = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
        let too_deep = "expression nested too deeply (more than 64 levels)";
        for text in [
            deep(3000),
            format!("{}1", "~".repeat(30_000)),
            format!("{}1", "-".repeat(30_000)),
            format!("{}1", "(void *)".repeat(3000)),
            format!("{}1", "1+".repeat(30_000)),
            format!("{}1", "1<<".repeat(300)),
            format!("{}1{}", "f(".repeat(3000), ")".repeat(3000)),
        ] {
            let e = parse_statement(&text, 0, &no_cmd).unwrap_err();
            assert_eq!(e.msg, too_deep, "{}", &text[..20]);
            let e = parse_expr(&text, 0).unwrap_err();
            assert_eq!(e.msg, too_deep);
        }
        assert_eq!(expr(&deep(63)), "1");
        assert!(parse_statement(&format!("{}1", "~".repeat(63)), 0, &no_cmd).is_ok());
        assert!(parse_statement(&format!("{}1", "1+".repeat(60)), 0, &no_cmd).is_ok());
        assert!(parse_statement(&deep(64), 0, &no_cmd).is_err());
    }

    #[test]
    fn commands_take_casts() {
        for text in [
            "translate (void *)0x1000",
            "translate (unsigned long) p + 1",
            "translate ( long )p",
        ] {
            assert!(
                matches!(
                    parse_statement(text, 0, &cmds).unwrap(),
                    Stmt::Command { .. }
                ),
                "{text}"
            );
        }
        // `(` of anything else is a call.
        assert!(matches!(
            parse_statement("translate (p)", 0, &cmds).unwrap(),
            Stmt::Expr(_)
        ));
    }
}
