//! Control flow, comparisons, `$NAME` expansion and multi-line input, on a small machine.

use std::sync::atomic::{AtomicBool, Ordering};

use super::tests::{out1, run, shell};
use super::*;
use kmem::arch::Arch;

/// Runs `src` as a script named `t` (lines grouped into chunks); returns (stdout, stderr).
fn script(sh: &mut Shell, src: &str) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    run_script(sh, &mut src.as_bytes(), "t", false, &mut out, &mut err).unwrap();
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn loops_and_branches_run_like_c() {
    let mut sh = shell(Arch::X86_64);
    let (o, e) = script(
        &mut sh,
        "s = 0\n\
         for (i = 0; i < 10; i++) {\n\
         \x20   if (i % 2) { continue }\n\
         \x20   s += i\n\
         }\n\
         s; i\n\
         n = 0; while (1) { n++; if (n >= 5) { break } }; n\n\
         if (0) { echo a } else if (n == 5) { echo b } else { echo c }\n\
         if (0) echo no; else echo yes\n\
         while (0) { echo never }\n\
         for (j = 3; j; j--) echo j is $j\n\
         for (;;) { k = 7; break }\n\
         k\n",
    );
    assert_eq!(e, "");
    assert_eq!(
        o,
        "s = 0\n20\n10\nn = 0\n5\nb\nyes\nj is 3\nj is 2\nj is 1\n7\n"
    );
    // Nested loops: break and continue act on the innermost.
    let (o, e) = script(
        &mut sh,
        "c = 0\n\
         for (a = 0; a < 4; a++) {\n\
         \x20 for (b = 0; b < 100; b++) {\n\
         \x20   if (b == a) { break }\n\
         \x20   if (b % 2 == 1) { continue }\n\
         \x20   c++\n\
         \x20 }\n\
         }\n\
         c\n",
    );
    assert_eq!(e, "");
    // a=0: none; a=1: b=0; a=2: b=0; a=3: b=0,2.
    assert_eq!(o, "c = 0\n4\n");
}

#[test]
fn comparisons_and_logic_give_0_or_1() {
    let mut sh = shell(Arch::X86_64);
    let cases = [
        ("3 == 3", 1),
        ("3 != 3", 0),
        ("-1 < 0", 1),
        ("0x8000000000000000 < 0", 1),
        ("(void *)-1 > (void *)0", 1),
        ("(void *)0x1000 == 0x1000", 1),
        ("NULL == 0", 1),
        ("GFP_KERNEL == GFP_KERNEL", 1),
        ("GFP_KERNEL != GFP_ATOMIC", 1),
        ("((GFP_KERNEL|__GFP_ZERO) & __GFP_ZERO) == __GFP_ZERO", 1),
        ("2 <= 2 && 3 >= 4", 0),
        ("5 && 7", 1),
        ("0 || 0", 0),
        ("!0 + !5", 1),
        ("!NULL", 1),
        ("!GFP_KERNEL", 0),
        ("1 < 2 == 1", 1),
        ("0600 == 384", 1),
    ];
    for (text, want) in cases {
        assert_eq!(out1(&mut sh, text), format!("{want}\n"), "{text}");
    }
    // C's precedence trap: `&` binds less than `==`.
    assert_eq!(
        out1(&mut sh, "__GFP_ZERO & __GFP_ZERO == __GFP_ZERO"),
        "0x0\n"
    );
    // Short-circuit: the right side is not evaluated (no error, no allocation).
    assert_eq!(out1(&mut sh, "0 && nosuch"), "0\n");
    assert_eq!(out1(&mut sh, "1 || 1 / 0"), "1\n");
    let before = out1(&mut sh, "cat /proc/vmallocinfo");
    assert_eq!(out1(&mut sh, "1 || vmalloc(8192)"), "1\n");
    assert_eq!(out1(&mut sh, "0 && vmalloc(8192)"), "0\n");
    assert_eq!(out1(&mut sh, "cat /proc/vmallocinfo"), before);
    // Errors, as C compilers word them.
    let errors = [
        ("1 && 1 / 0", "t:1:6: error: division by zero"),
        (
            "\"a\" == \"a\"",
            "t:1:1: error: invalid operands to binary == (have 'string' and 'string')",
        ),
        (
            "GFP_KERNEL < 1",
            "t:1:1: error: invalid operands to binary < (have 'gfp_t' and 'long')",
        ),
        (
            "!\"x\"",
            "t:1:1: error: used a string where a scalar is required (operand of !)",
        ),
        (
            "if (\"x\") { }",
            "t:1:5: error: used a string where a scalar is required (operand of 'if')",
        ),
        (
            "while (free_page(NULL)) { }",
            "t:1:8: error: void value not ignored as it ought to be",
        ),
        ("x && 1", "t:1:1: error: undefined variable 'x'"),
    ];
    for (text, want) in errors {
        let (o, e) = run(&mut sh, text);
        assert_eq!(o, "", "{text}");
        assert!(e.starts_with(want), "{text}: {e}");
    }
}

#[test]
fn compound_assignments_update_variables() {
    let mut sh = shell(Arch::X86_64);
    assert_eq!(
        out1(&mut sh, "x = 5; x += 3; x <<= 2; x--; x"),
        "x = 5\nx = 8\nx = 32\nx = 31\n31\n"
    );
    assert_eq!(
        out1(&mut sh, "x %= 4; x |= 8; x ^= 1; x &= ~2"),
        "x = 3\nx = 11\nx = 10\nx = 8\n"
    );
    // Pointer arithmetic as `p = p + n`.
    assert_eq!(
        out1(&mut sh, "a = (void *)0x1000; a += 16"),
        "a = 0x1000\na = 0x1010\n"
    );
    let (o, e) = run(&mut sh, "nosuch++");
    assert_eq!(o, "");
    assert!(
        e.starts_with("t:1:1: error: undefined variable 'nosuch'"),
        "{e}"
    );
    let (_, e) = run(&mut sh, "s = \"a\"; s += 1");
    assert!(
        e.contains("t:1:10: error: invalid operands to binary + (have 'string' and 'long')"),
        "{e}"
    );
    let (_, e) = run(&mut sh, "x /= 0");
    assert!(e.contains("division by zero"), "{e}");
    assert_eq!(out1(&mut sh, "x"), "8\n");
    let (_, e) = run(&mut sh, "NULL++");
    assert!(e.contains("cannot assign to 'NULL'"), "{e}");
}

#[test]
fn statements_in_blocks_print_nothing_but_commands_do() {
    let mut sh = shell(Arch::X86_64);
    let (o, e) = script(
        &mut sh,
        "if (1) { x = 1; x; 42; y = kmalloc(8, GFP_KERNEL); kfree(y); echo done $x }\n",
    );
    assert_eq!((o.as_str(), e.as_str()), ("done 1\n", ""));
    assert_eq!(sh.var("x"), Some(&Value::Int(1)));
    // The kernel's own messages still appear, in order.
    let (o, _) = script(
        &mut sh,
        "{ echo before; p = alloc_pages(GFP_KERNEL, 11); echo after }\n",
    );
    assert!(
        o.starts_with("before\n") && o.contains("WARNING") && o.ends_with("after\n"),
        "{o}"
    );
}

#[test]
fn dollar_names_expand_in_command_words() {
    let mut sh = shell(Arch::X86_64);
    out1(
        &mut sh,
        "p = 5; a = (void *)0x1000; g = GFP_KERNEL|__GFP_ZERO; f = \"buddyinfo\"",
    );
    assert_eq!(
        out1(&mut sh, "echo pid $p at $a with $g: $$ $ $1 x$p.y"),
        "pid 5 at 0x1000 with GFP_KERNEL|__GFP_ZERO: $$ $ $1 x5.y\n"
    );
    assert_eq!(
        out1(&mut sh, "cat /proc/$f"),
        out1(&mut sh, "cat /proc/buddyinfo")
    );
    let (o, e) = run(&mut sh, "echo a $nosuch b");
    assert_eq!(o, "");
    assert!(
        e.starts_with(
            "t:1:8: error: undefined variable 'nosuch'\n    echo a $nosuch b\n           ^^^^^^^\n"
        ),
        "{e}"
    );
    let (_, e) = run(&mut sh, "cat /proc/$zz");
    assert!(
        e.starts_with("t:1:11: error: undefined variable 'zz'"),
        "{e}"
    );
    // Expressions do not take `$`.
    let (_, e) = run(&mut sh, "x = $p");
    assert!(e.contains("unexpected character '$'"), "{e}");
}

#[test]
fn errors_in_a_construct_stop_it_once_and_the_script_goes_on() {
    let mut sh = shell(Arch::X86_64);
    let (o, e) = script(
        &mut sh,
        "for (i = 0; i < 1000; i++) {\n\
         \x20   x = nosuch\n\
         }\n\
         i\n\
         while (1) {\n\
         \x20 poke8(NULL, 1)\n\
         }\n\
         after = 1\n\
         if (1) {\n\
         \x20 y = (1 +\n\
         }\n\
         z = 2\n",
    );
    assert_eq!(
        e,
        "t:2:9: error: undefined variable 'nosuch'\n        x = nosuch\n            ^^^^^^\n\
         t:10:11: error: expected an expression, found end of statement\n      y = (1 +\n              ^\n"
    );
    assert!(
        o.starts_with("0\nBUG: kernel NULL pointer dereference"),
        "{o}"
    );
    assert_eq!(o.matches("BUG:").count(), 1, "{o}");
    assert!(o.ends_with("after = 1\nz = 2\n"), "{o}");
    assert_eq!(sh.errors, 2);
    assert_eq!(sh.k.m.bug_count(), 1);
}

#[test]
fn exit_inside_a_loop_leaves() {
    let mut sh = shell(Arch::X86_64);
    let (o, _) = script(
        &mut sh,
        "while (1) {\n  echo once\n  exit 3\n  echo never\n}\necho never\n",
    );
    assert_eq!(o, "once\n");
    assert!(sh.quit);
    assert_eq!(sh.status(), 3);
}

/// An endless loop stops when the interrupt flag is set (as SIGINT does interactively).
#[test]
fn interrupt_stops_an_endless_loop() {
    static FLAG: AtomicBool = AtomicBool::new(false);
    static DONE: AtomicBool = AtomicBool::new(false);
    let mut sh = shell(Arch::X86_64);
    sh.interrupt = Some(&FLAG);
    // Keep raising the flag until the loop is over (the shell clears it when it starts a
    // chunk, so raising it once could come too early).
    let t = std::thread::spawn(|| {
        while !DONE.load(Ordering::Relaxed) {
            FLAG.store(true, Ordering::Relaxed);
            std::thread::yield_now();
        }
    });
    let (o, e) = script(&mut sh, "n = 0\nwhile (1) { n++ }\nafter = 1\n");
    DONE.store(true, Ordering::Relaxed);
    t.join().unwrap();
    assert!(e.starts_with("t:2:1: error: interrupted\n"), "{e}");
    assert!(
        o.starts_with("n = 0\n") && o.ends_with("after = 1\n"),
        "{o}"
    );
}

/// The deepest blocks, with the deepest expression inside, run on a test thread's stack.
#[test]
fn deepest_blocks_evaluate() {
    let mut sh = shell(Arch::X86_64);
    let expr = format!("{}1{}", "(".repeat(61), ")".repeat(61));
    // Each loop runs once: the innermost statement makes every condition false.
    for open in [
        "{",
        "if (1) {",
        "while (x == 0) {",
        "for (k = 0; k < 1; k++) {",
    ] {
        out1(&mut sh, "x = 0");
        let n = syntax::MAX_DEPTH;
        let src = format!("{}x = {expr}{}\nx\n", open.repeat(n), "}".repeat(n));
        let (o, e) = script(&mut sh, &src);
        assert_eq!((o.as_str(), e.as_str()), ("1\n", ""), "{open}");
    }
}

#[test]
fn multi_line_errors_name_their_line() {
    let mut sh = shell(Arch::X86_64);
    let (_, e) = script(&mut sh, "x = 1\nif (x) {\n  y = 2\n  z = w\n}\n");
    assert_eq!(
        e,
        "t:4:7: error: undefined variable 'w'\n      z = w\n          ^\n"
    );
    // Interactively: the line is shown under the prompt's width.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let text = "if (1) {\n  q = nosuch\n}";
    let parsed = block::parse_chunk(text, &is_command, true);
    let origin = Origin {
        source: None,
        line: 1,
        indent: PROMPT.len(),
    };
    sh.run_chunk(text, &parsed, origin, &mut out, &mut err);
    assert_eq!(
        String::from_utf8(err).unwrap(),
        "error: undefined variable 'nosuch'\n        q = nosuch\n            ^^^^^^\n"
    );
    // A block left open at the end of the script.
    let (o, e) = script(&mut sh, "a = 1\nwhile (a) {\n  a = 0\n");
    assert_eq!(o, "a = 1\n");
    assert_eq!(
        e,
        "t:2:11: error: expected '}' at end of input (this '{' is not closed)\n    while (a) {\n              ^\n"
    );
    // Invalid lines inside a block keep the line numbers right.
    let mut src = b"if (1) {\n\xff\n  r = nosuch\n}\n".to_vec();
    src.extend_from_slice(b"s = 1\n");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    run_script(&mut sh, &mut &src[..], "t", false, &mut out, &mut err).unwrap();
    let err = String::from_utf8(err).unwrap();
    assert!(err.starts_with("t:2:1: error: invalid UTF-8"), "{err}");
    assert!(
        err.contains("t:3:7: error: undefined variable 'nosuch'"),
        "{err}"
    );
    assert_eq!(String::from_utf8(out).unwrap(), "s = 1\n");
}

#[test]
fn echo_mode_shows_continuation_prompts() {
    let mut sh = shell(Arch::X86_64);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let src = "for (i = 0; i < 2; i++) {\n  echo $i\n}\n";
    run_script(&mut sh, &mut src.as_bytes(), "t", true, &mut out, &mut err).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "kmem> for (i = 0; i < 2; i++) {\n  ...   echo $i\n  ... }\n0\n1\n"
    );
}
