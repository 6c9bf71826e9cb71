//! Tests of the block parser and the chunker (no machine needed).

use super::block::{parse_chunk, Chunker, Item, Parsed, MAX_CHUNK};
use super::syntax::{Stmt, MAX_DEPTH};

fn cmds(w: &str) -> bool {
    matches!(w, "cat" | "echo")
}

fn items(text: &str) -> Vec<Item> {
    match parse_chunk(text, &cmds, true) {
        Parsed::Items(i) => i,
        Parsed::NeedMore => panic!("need more for {text:?}"),
    }
}

/// A compact picture of the items: `S` a statement, `C` a command, `E(msg)` an error.
fn shape(items: &[Item]) -> String {
    items.iter().map(shape1).collect::<Vec<_>>().join(" ")
}

fn shape1(i: &Item) -> String {
    let body = |b: &[Item]| format!("{{{}}}", shape(b));
    match i {
        Item::Stmt(Stmt::Command { name, .. }) => format!("C:{name}"),
        Item::Stmt(_) => "S".into(),
        Item::If { arms, otherwise } => {
            let mut s = arms
                .iter()
                .map(|(_, b)| format!("if{}", body(b)))
                .collect::<Vec<_>>()
                .join(" else ");
            if let Some(o) = otherwise {
                s += &format!(" else{}", body(o));
            }
            s
        }
        Item::While { body: b, .. } => format!("while{}", body(b)),
        Item::For {
            init,
            cond,
            step,
            body: b,
            ..
        } => format!(
            "for({}{}{}){}",
            u8::from(init.is_some()),
            u8::from(cond.is_some()),
            u8::from(step.is_some()),
            body(b)
        ),
        Item::Block(b) => body(b),
        Item::Break => "break".into(),
        Item::Continue => "continue".into(),
        Item::Error(e) => format!("E({})@{}", e.msg, e.span.start),
        Item::Return { value, .. } => format!("return{}", if value.is_some() { " E" } else { "" }),
    }
}

#[test]
fn control_structures_parse() {
    assert_eq!(shape(&items("x = 1; y = 2")), "S S");
    assert_eq!(shape(&items("if (x) { y = 1 }")), "if{S}");
    assert_eq!(shape(&items("if (x) y = 1; else y = 2")), "if{S} else{S}");
    assert_eq!(
        shape(&items(
            "if (a) { } else if (b) { x } else if (c) x; else { x; y }"
        )),
        "if{} else if{S} else if{S} else{S S}"
    );
    assert_eq!(
        shape(&items(
            "while (i < 3) { i++; if (i == 2) { break } else { continue } }"
        )),
        "while{S if{break} else{continue}}"
    );
    assert_eq!(shape(&items("for (;;) ;")), "for(000){}");
    assert_eq!(
        shape(&items("for (i = 0; i < 4; i++) cat /proc/x")),
        "for(111){C:cat}"
    );
    assert_eq!(shape(&items("{ x; { y } } z")), "{S {S}} S");
    assert_eq!(
        shape(&items("while (1)\n{\n  echo a # } not a brace\n  break\n}")),
        "while{C:echo break}"
    );
    // Strings may hold braces, semicolons and '#'.
    assert_eq!(shape(&items("if (x) { s = \"};{#\" }")), "if{S}");
    // A for header's ';' inside a string does not split it.
    assert_eq!(shape(&items("for (s = \";\"; 0; ) {}")), "for(110){}");
    // Keywords are whole words.
    assert_eq!(shape(&items("iffy = 1; format = 2; breaks = 3")), "S S S");
    // A command inside a block ends at '}'.
    assert_eq!(shape(&items("if (1) { echo hi }")), "if{C:echo}");
}

#[test]
fn incomplete_text_needs_more_lines() {
    for text in [
        "if (x) {",
        "if (x)",
        "if (x) # comment",
        "while (1) {\n  x = 1",
        "for (;;) {\n  if (y) {\n  }",
        "if (x) { } else",
        "if (x) { } else if (y)",
        "{",
        "x = 1; while (x)",
    ] {
        assert_eq!(
            parse_chunk(text, &cmds, false),
            Parsed::NeedMore,
            "{text:?}"
        );
        // At the end of input the same text is an error.
        let its = items(text);
        assert!(
            matches!(its.last(), Some(Item::Error(_))),
            "{text:?}: {}",
            shape(&its)
        );
    }
    assert_eq!(
        shape(&items("x = 1\n{ y")),
        "S E(expected '}' at end of input (this '{' is not closed))@6"
    );
    assert_eq!(
        shape(&items("while (1)")),
        "E(expected a statement at end of input)@0"
    );
}

#[test]
fn malformed_structures_are_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "else { x }",
            "E('else' without a previous 'if' (write it after the if's body on the same line: '} else {'))@0",
        ),
        ("break", "E(break statement not within loop)@0"),
        (
            "if (1) { continue }",
            "E(continue statement not within a loop)@9",
        ),
        ("if x { }", "E(expected '(' after 'if')@3"),
        ("while { }", "E(expected '(' after 'while')@6"),
        ("if (x { }", "E(expected ')' to close the '(' of 'if' on its line)@3"),
        ("if (x\n) { }", "E(expected ')' to close the '(' of 'if' on its line)@3"),
        (
            "for (i = 0; i < 3) { }",
            "E(expected 'for (init; condition; step)': 1 ';' in the header)@5",
        ),
        ("x = 1 { }", "E(expected ';' or a new line before '{')@6"),
        ("if (1) }", "E(expected a statement before '}')@7"),
        ("break 2", "E(expected ';' after 'break')@6"),
        ("}", "E(unexpected '}' (no block is open))@0"),
        ("x = 1; } y = 2", "S E(unexpected '}' (no block is open))@7"),
        // A syntax error inside a construct spoils the whole construct, reported at its
        // first error; the next top-level statement still parses.
        (
            "while (1) { x = ; y = ) }; z = 1",
            "E(expected an expression, found end of statement)@16 S",
        ),
        ("if (1 +) { }", "E(expected an expression, found end of statement)@7"),
        (
            "for (i = ; ; ) { }",
            "E(expected an expression, found end of statement)@9",
        ),
        ("for (cat x; ; ) { }", "E(unexpected 'x' after the statement)@9"),
    ];
    for (text, want) in cases {
        assert_eq!(shape(&items(text)), *want, "{text:?}");
    }
}

#[test]
fn nesting_is_limited() {
    let blocks = |n: usize| format!("{}x = 1{}", "{".repeat(n), "}".repeat(n));
    assert_eq!(shape(&items(&blocks(3))), "{{{S}}}");
    assert!(!shape(&items(&blocks(MAX_DEPTH))).contains('E'));
    let too_deep = format!("blocks nested too deeply (more than {MAX_DEPTH} levels)");
    assert!(shape(&items(&blocks(MAX_DEPTH + 1))).contains(&too_deep));
    // Deep input of every shape is an error, not a stack overflow.
    for n in [MAX_DEPTH + 1, 10_000] {
        for text in [
            format!("{}x = 1", "if (1) ".repeat(n)),
            format!("{}x = 1", "while (0) ".repeat(n)),
            format!("{}x = 1", "for (;;) ".repeat(n)),
            format!("{}x = 1", "else ".repeat(n)),
            blocks(n),
        ] {
            let s = shape(&items(&text));
            // (A chain of `else` is reported at its first word, an earlier error.)
            let want = if text.starts_with("else") {
                "E('else' without"
            } else {
                "nested too deeply"
            };
            assert!(s.contains(want), "{}: {s}", &text[..30]);
        }
    }
    // `else if` chains are not nesting.
    let chain = format!("if (0) {{}}{} else {{ x }}", " else if (0) {}".repeat(1000));
    let its = items(&chain);
    assert!(matches!(&its[..], [Item::If { arms, otherwise: Some(_) }] if arms.len() == 1001));
}

#[test]
fn chunker_groups_lines_until_braces_balance() {
    let mut c = Chunker::default();
    let mut done = Vec::new();
    let script = [
        "x = 1",           // 1: alone
        "while (x < 3) {", // 2..4
        "  x++ # {",
        "}",
        "if (x)", // 5..6: a header waits for its body
        "  y = \"{\"",
        "z = 3; { w = 4", // 7..8
        "}",
        "", // 9: a blank line is a chunk of nothing
    ];
    for (i, l) in script.iter().enumerate() {
        assert_eq!(
            c.pending(),
            !matches!(i, 0 | 1 | 4 | 6 | 8),
            "line {}",
            i + 1
        );
        if let Some(ch) = c.push(l, i + 1, &cmds) {
            done.push((ch.first_line, ch.text.lines().count(), ch.parsed));
        }
    }
    assert!(c.finish(&cmds).is_none());
    let got: Vec<(usize, usize, String)> = done
        .into_iter()
        .map(|(f, n, p)| match p {
            Parsed::Items(i) => (f, n, shape(&i)),
            Parsed::NeedMore => (f, n, "more".into()),
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, 1, "S".to_string()),
            (2, 3, "while{S}".to_string()),
            (5, 2, "if{S}".to_string()),
            (7, 2, "S {S}".to_string()),
            (9, 0, String::new()),
        ]
    );
    // The end of input inside a block: the chunk, parsed as final, is an error.
    c.push("if (1) {", 20, &cmds);
    c.push("  x = 1", 21, &cmds);
    let ch = c.finish(&cmds).unwrap();
    assert_eq!(ch.first_line, 20);
    let Parsed::Items(i) = ch.parsed else {
        panic!()
    };
    assert_eq!(
        shape(&i),
        "E(expected '}' at end of input (this '{' is not closed))@7"
    );
    // Ctrl-C at a continuation prompt drops the lines.
    c.push("{", 30, &cmds);
    assert!(c.pending());
    c.reset();
    assert!(!c.pending());
    assert!(c.push("x = 2", 31, &cmds).is_some());
}

#[test]
fn chunker_is_bounded() {
    let mut c = Chunker::default();
    assert!(c.push("while (1) {", 1, &cmds).is_none());
    let line = "x = 1".repeat(1000);
    let mut n = 1;
    let ch = loop {
        n += 1;
        if let Some(ch) = c.push(&line, n, &cmds) {
            break ch;
        }
        assert!(n < 10_000);
    };
    assert!(n * line.len() > MAX_CHUNK && (n - 2) * line.len() <= MAX_CHUNK);
    let Parsed::Items(i) = ch.parsed else {
        panic!()
    };
    assert_eq!(
        shape(&i),
        format!("E(a block longer than {MAX_CHUNK} bytes: skipped)@0")
    );
    assert!(!c.pending());
}

/// The block arguments of the statement `text`: the shape of each.
fn block_args(text: &str) -> Vec<String> {
    use super::syntax::Expr;
    fn walk(e: &Expr, out: &mut Vec<String>) {
        match e {
            Expr::Block(b, _) => out.push(format!("{{{}}}", shape(b))),
            Expr::Call { args, .. } => args.iter().for_each(|a| walk(a, out)),
            Expr::Unary(_, e, _) | Expr::Cast(_, e, _) => walk(e, out),
            Expr::Binary(_, l, r, _) => {
                walk(l, out);
                walk(r, out);
            }
            _ => {}
        }
    }
    let its = items(text);
    let mut out = Vec::new();
    match its.as_slice() {
        [Item::Stmt(Stmt::Expr(e) | Stmt::Assign { value: e, .. })] => walk(e, &mut out),
        other => panic!("{text:?}: {}", shape(other)),
    }
    out
}

#[test]
fn block_arguments_parse_as_bodies_of_their_own() {
    assert_eq!(
        block_args("driver_register(\"c\", \"platform\", { x = 1; return 0 })"),
        ["{S return E}"]
    );
    assert_eq!(
        block_args("r = f(d, { return }, { while (1) { return -1 } })"),
        ["{return}", "{while{return E}}"]
    );
    // Nested: a block argument inside a block argument.
    assert_eq!(
        block_args("f(\"a\", {\n  devm_add_action(dev, { echo off })\n  return 0\n})"),
        ["{S return E}"]
    );
    // Columns stay those of the chunk: an error after a multi-line block points at it.
    let its = items("f({\n  x = 1\n}, 1 +)");
    match its.as_slice() {
        [Item::Error(e)] => assert_eq!(e.span.start, "f({\n  x = 1\n}, 1 +".len(), "{e:?}"),
        other => panic!("{}", shape(other)),
    }
}

#[test]
fn return_and_loop_words_inside_block_arguments() {
    let err = |text: &str| match items(text).as_slice() {
        [Item::Error(e)] => e.msg.clone(),
        other => panic!("{text:?}: {}", shape(other)),
    };
    assert!(err("return 0").contains("'return' outside a block argument"));
    assert!(err("if (x) { return }").contains("'return' outside a block argument"));
    // A block argument is a function of its own: a loop around the call does not count.
    assert!(err("while (1) { f({ break }) }").contains("break statement not within loop"));
    assert!(err("x = { return 0 }").contains("expected ';' or a new line before '{'"));
    assert!(err("f({ return 0 } + 1)").contains("expected ')' after the arguments, found '+'"));
    assert!(err("f({ return 0 {)").contains("expected ';' or a new line before '{'"));
}

#[test]
fn the_chunker_reads_on_until_a_block_argument_closes() {
    let mut c = Chunker::default();
    let lines = [
        "driver_register(\"camera\", \"platform\", {",
        "    buf = devm_kmalloc(dev, 64, GFP_KERNEL)",
        "    if (!buf) return -ENOMEM",
        "}, {",
        "    echo remove",
        "})",
    ];
    for (i, l) in lines.iter().enumerate() {
        let r = c.push(l, i + 1, &cmds);
        if i + 1 < lines.len() {
            assert!(r.is_none(), "complete after line {}", i + 1);
            assert!(c.pending());
        } else {
            let chunk = r.expect("complete at '})'");
            assert_eq!(chunk.first_line, 1);
            match chunk.parsed {
                Parsed::Items(its) => assert_eq!(shape(&its), "S"),
                Parsed::NeedMore => panic!("need more"),
            }
        }
    }
}
