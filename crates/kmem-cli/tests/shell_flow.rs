//! The shell's control flow (`if`, `while`, `for`, blocks over several lines), comparisons
//! and `$NAME` expansion, through the real `kmem` binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn kmem(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kmem"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kmem");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// A loop allocates and frees pages of every order; buddyinfo comes back exactly (once the
/// per-CPU lists are drained), and the run is clean.
#[test]
fn a_loop_over_the_page_allocator_leaves_it_as_it_was() {
    let script = "\
cat /proc/buddyinfo
n = 0
for (order = 0; order <= 10; order++) {
    p = alloc_pages(GFP_KERNEL, order)
    if (p == NULL) {
        echo order $order failed
    } else {
        free_pages(p, order)
        n++
    }
}
n
i = 0
while (i < 1000 && n > 0) {
    a = __get_free_page(GFP_KERNEL)
    free_page(a)
    i += 1
}
i
drain_local_pages()
cat /proc/buddyinfo
";
    let o = kmem(&["--mem", "256M", "shell"], script);
    assert_eq!(text(&o.stderr), "");
    assert!(o.status.success());
    let s = text(&o.stdout);
    let lines: Vec<&str> = s.lines().collect();
    let rows = |from: usize| lines[from..from + 2].join("\n");
    assert!(lines[0].starts_with("Node 0, zone      DMA "), "{s}");
    assert_eq!(&lines[2..6], ["n = 0", "11", "i = 0", "1000"], "{s}");
    assert_eq!(rows(0), rows(6), "{s}");
}

/// Malformed control flow: each problem is one error naming its line, the rest of the
/// script runs, and the exit status is 1.
#[test]
fn malformed_blocks_are_errors_and_the_script_goes_on() {
    let script = "\
x = 1
} 
else { x = 2 }
if x { }
break
while (x < 3) {
    x = x +
}
y = 2
if (y == 2) {
";
    let o = kmem(&["shell"], script);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stdout), "x = 1\ny = 2\n");
    let e = text(&o.stderr);
    let firsts: Vec<&str> = e.lines().filter(|l| l.starts_with("<stdin>")).collect();
    assert_eq!(
        firsts,
        [
            "<stdin>:2:1: error: unexpected '}' (no block is open)",
            "<stdin>:3:1: error: 'else' without a previous 'if' (write it after the if's body on the same line: '} else {')",
            "<stdin>:4:4: error: expected '(' after 'if'",
            "<stdin>:5:1: error: break statement not within loop",
            "<stdin>:7:12: error: expected an expression, found end of statement",
            "<stdin>:10:13: error: expected '}' at end of input (this '{' is not closed)",
        ],
        "{e}"
    );
}

#[test]
fn dash_c_echo_and_dollar_names() {
    let o = kmem(
        &[
            "shell",
            "-c",
            "p = 42; for (i = 0; i < 3; i++) { if (i != 1) { echo $i of $p } }",
        ],
        "",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "p = 42\n0 of 42\n2 of 42\n");
    let o = kmem(
        &["shell", "--echo"],
        "f = \"buddyinfo\"\nif (1)\n{\n  cat /proc/$f\n}\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = text(&o.stdout);
    assert!(
        s.starts_with(
            "kmem> f = \"buddyinfo\"\nf = \"buddyinfo\"\nkmem> if (1)\n  ... {\n  ...   cat /proc/$f\n  ... }\nNode 0, zone      DMA "
        ),
        "{s}"
    );
}

/// `allocate until failure`: a loop that stops on NULL, on a small machine.
#[test]
fn allocate_until_failure() {
    let script = "\
n = 0
while (1) {
    p = alloc_pages(GFP_KERNEL | __GFP_NOWARN, 10)
    if (!p) { break }
    n++
}
n > 0 && n < 64
";
    let o = kmem(&["--mem", "64M", "shell"], script);
    assert_eq!(text(&o.stderr), "");
    assert_eq!(text(&o.stdout), "n = 0\n1\n");
    assert!(o.status.success());
}
