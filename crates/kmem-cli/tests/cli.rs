//! The `kmem` binary, run as a user would run it.

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

/// The buddyinfo rows: (zone, counts).
fn buddyinfo_rows(s: &str) -> Vec<(String, Vec<u64>)> {
    s.lines()
        .filter(|l| l.starts_with("Node 0, zone "))
        .map(|l| {
            let mut w = l.split_whitespace().skip(3);
            let zone = w.next().unwrap().to_string();
            (zone, w.map(|n| n.parse().unwrap()).collect())
        })
        .collect()
}

#[test]
fn cat_buddyinfo_x86_64() {
    let o = kmem(&["--mem", "1G", "cat", "/proc/buddyinfo"], "");
    assert!(o.status.success());
    let s = text(&o.stdout);
    assert!(s.starts_with("Node 0, zone      DMA "), "{s}");
    assert!(s.contains("\nNode 0, zone    DMA32 "), "{s}");
    let rows = buddyinfo_rows(&s);
    let zones: Vec<_> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(zones, ["DMA", "DMA32"]);
    for (_, counts) in &rows {
        assert_eq!(counts.len(), 11);
    }
    assert!(rows[1].1[10] > 200, "{s}");
}

#[test]
fn cat_buddyinfo_i386_highmem() {
    let o = kmem(
        &["--arch", "i386", "--mem", "2G", "cat", "/proc/buddyinfo"],
        "",
    );
    assert!(o.status.success());
    let rows = buddyinfo_rows(&text(&o.stdout));
    let zones: Vec<_> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(zones, ["DMA", "Normal", "HighMem"]);
    assert!(rows.iter().all(|r| r.1.len() == 11));
}

#[test]
fn cat_unknown_file_fails() {
    let o = kmem(&["cat", "/proc/buddyinfo", "/proc/nosuch"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).starts_with("Node 0"));
    assert_eq!(
        text(&o.stderr),
        "kmem: cat: /proc/nosuch: No such file or directory\n"
    );
}

/// Issue 2, "Done when": an order-5 allocation changes buddyinfo, freeing restores it
/// exactly; a wrong-order free and a double free are reported as bad page state; the shell
/// continues; the exit status says something was reported.
#[test]
fn shell_order5_alloc_free_and_misuse() {
    let script = "\
cat /proc/buddyinfo
p = alloc_pages(GFP_KERNEL, 5)
cat /proc/buddyinfo
free_pages(p, 5)
cat /proc/buddyinfo
p = alloc_pages(GFP_KERNEL, 5)
free_pages(p, 3)
free_pages(p, 5)
free_pages(p, 5)
cat /proc/buddyinfo
x = 1 + 1
";
    let o = kmem(&["shell"], script);
    let s = text(&o.stdout);
    assert_eq!(text(&o.stderr), "");
    assert_eq!(o.status.code(), Some(1), "{s}");
    let rows = buddyinfo_rows(&s);
    assert_eq!(rows.len(), 8, "{s}");
    let (boot, alloc, freed, end) = (&rows[0..2], &rows[2..4], &rows[4..6], &rows[6..8]);
    assert_ne!(boot, alloc, "an order-5 allocation changes buddyinfo");
    assert_eq!(boot, freed, "freeing restores it exactly");
    assert_eq!(boot, end, "after the misuse too");
    assert_eq!(
        s.matches("BUG: Bad page state in process kmem").count(),
        2,
        "{s}"
    );
    assert!(s.contains("freeing order 3 of a block allocated with order 5"));
    assert!(s.contains("double free"));
    assert!(s.ends_with("x = 2\n"), "the shell continues: {s}");
    let p_lines: Vec<_> = s
        .lines()
        .filter(|l| l.starts_with("p = 0xffffea"))
        .collect();
    assert_eq!(p_lines.len(), 2, "{s}");
}

#[test]
fn clean_script_exits_zero() {
    let o = kmem(&["shell"], "a = __get_free_page(GFP_DMA)\nfree_page(a)\n");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = text(&o.stdout);
    assert!(s.starts_with("a = 0xffff888000"), "{s}");
    assert_eq!(s.lines().count(), 1);
}

#[test]
fn parse_errors_name_line_and_column_and_fail_the_run() {
    let o = kmem(
        &["shell"],
        "x = 1\ny = alloc_pages(GFP_KERNEL 5)\nz = 3 $ 4\nw = x + 1\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stdout), "x = 1\nw = 2\n");
    assert_eq!(
        text(&o.stderr),
        "<stdin>:2:28: error: expected ')' after the arguments, found number 5\n\
         \x20   y = alloc_pages(GFP_KERNEL 5)\n\
         \x20                              ^\n\
         <stdin>:3:7: error: unexpected character '$'\n\
         \x20   z = 3 $ 4\n\
         \x20         ^\n"
    );
}

#[test]
fn shell_reads_a_file() {
    let dir = std::env::temp_dir().join(format!("kmem-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("script.kmem");
    std::fs::write(&f, "# a script\nn = 3 * 4\nbad(\n").unwrap();
    let o = kmem(&["shell", f.to_str().unwrap()], "");
    assert_eq!(text(&o.stdout), "n = 12\n");
    let e = text(&o.stderr);
    assert!(
        e.starts_with(&format!(
            "{}:3:5: error: expected an expression",
            f.display()
        )),
        "{e}"
    );
    assert_eq!(o.status.code(), Some(1));
    let o = kmem(&["shell", dir.join("missing").to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("No such file"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Replaces long hex numbers (addresses) by `0xADDR` and the lines of a call trace, which
/// name source lines, so the golden text survives unrelated changes.
fn normalize(s: &str) -> String {
    let mut out = String::new();
    for line in s.lines() {
        if line.starts_with("  crates/") {
            out.push_str("  <caller>\n");
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("0x") {
            out.push_str(&rest[..i]);
            let digits = rest[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_hexdigit())
                .count();
            if digits >= 8 {
                out.push_str("0xADDR");
            } else {
                out.push_str(&rest[i..i + 2 + digits]);
            }
            rest = &rest[i + 2 + digits..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

#[test]
fn golden_transcript() {
    let script = "\
# arithmetic and flags
x = 6 * 7
x << 4
gfp = GFP_KERNEL|__GFP_ZERO
gfp & ~__GFP_ZERO
NULL
(void *)4096 + 16

# pages
p = alloc_pages(GFP_KERNEL, 2)
a = page_address(p)
page_address(p + 1) - a
virt_to_page(a + 8192) - p
memset(a, 0x41, 5); poke8(a + 2, 0x7a)
hexdump(a, 8)
peek8(a + 2)
__free_pages(p, 2)
";
    let o = kmem(&["shell", "--echo"], script);
    assert_eq!(text(&o.stderr), "");
    assert!(o.status.success());
    let expected = "\
kmem> # arithmetic and flags
kmem> x = 6 * 7
x = 42
kmem> x << 4
672
kmem> gfp = GFP_KERNEL|__GFP_ZERO
gfp = GFP_KERNEL|__GFP_ZERO
kmem> gfp & ~__GFP_ZERO
GFP_KERNEL
kmem> NULL
0x0
kmem> (void *)4096 + 16
0x1010
kmem> # pages
kmem> p = alloc_pages(GFP_KERNEL, 2)
p = 0xADDR
kmem> a = page_address(p)
a = 0xADDR
kmem> page_address(p + 1) - a
4096
kmem> virt_to_page(a + 8192) - p
2
kmem> memset(a, 0x41, 5); poke8(a + 2, 0x7a)
kmem> hexdump(a, 8)
ffff8880ADDR: 41 41 7a 41 41 00 00 00                          AAzAA...
kmem> peek8(a + 2)
122
kmem> __free_pages(p, 2)
";
    let got = normalize(&text(&o.stdout)).replace(
        &normalize(&text(&o.stdout))
            .lines()
            .find(|l| l.contains(": 41 41"))
            .map(|l| l[..l.find(':').unwrap()].to_string())
            .unwrap_or_default(),
        "ffff8880ADDR",
    );
    assert_eq!(got, expected);
}

#[test]
fn page_fault_in_the_shell_is_an_oops_and_the_shell_goes_on() {
    let o = kmem(&["shell"], "poke8(0xffffc90000000000, 1)\ny = 2\n");
    let s = normalize(&text(&o.stdout));
    assert!(
        s.starts_with(
            "BUG: unable to handle page fault for address: ffffc90000000000\n\
             #PF: supervisor write access in kernel mode\n\
             #PF: error_code(0x0002) - not-present page\n\
             Oops: 0002 [#1] SMP\n"
        ),
        "{s}"
    );
    assert!(s.ends_with("y = 2\n"), "{s}");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn boot_prints_the_log_with_timestamps() {
    let o = kmem(&["--cmdline", "quiet", "--slub-debug=FZ", "boot"], "");
    assert!(o.status.success());
    let s = text(&o.stdout);
    assert!(s.starts_with("[    0."), "{s}");
    assert!(s.contains("] Linux version"), "{s}");
    assert!(s.contains("] Command line: quiet slub_debug=FZ\n"), "{s}");
    assert!(
        s.contains("] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable"),
        "{s}"
    );
    assert!(s.contains("] Memory: "), "{s}");
}

#[test]
fn layout_i386() {
    let o = kmem(&["--arch", "i386", "--mem", "2G", "layout"], "");
    assert!(o.status.success());
    let s = text(&o.stdout);
    assert!(s.contains("      lowmem : 0xc0000000 - 0xf8000000"), "{s}");
    assert!(s.contains("     vmalloc : 0xf8800000 - "), "{s}");
    assert!(s.contains("PAGE_OFFSET = 0xc0000000"), "{s}");
    assert!(s.contains("     HighMem : 0x0038000000 - "), "{s}");
    let o = kmem(&["layout"], "");
    let s = text(&o.stdout);
    assert!(s.contains("  direct map : 0xffff888000000000 - "), "{s}");
    assert!(s.contains("     vmemmap : 0xffffea0000000000 - "), "{s}");
    assert!(s.contains("     vmalloc : 0xffffc90000000000 - "), "{s}");
    assert!(s.contains("     mem_map : 0xffffea0000000000 - "), "{s}");
}

#[test]
fn demo_runs_and_merges_back() {
    let o = kmem(&[], "");
    assert!(o.status.success());
    let s = text(&o.stdout);
    assert!(s.contains("was split in halves"), "{s}");
    assert!(s.contains("merged into"), "{s}");
    assert!(s.contains("Identical to the boot state"), "{s}");
    assert!(!s.contains('\x1b'), "no colours when not on a terminal");
}

#[test]
fn bad_options() {
    let o = kmem(&["--slab", "slab", "cat", "/proc/buddyinfo"], "");
    assert!(o.status.success());
    if !kmem::slab::SLAB_BUILT {
        assert_eq!(
            text(&o.stderr),
            "kmem: note: slab=slab: SLAB is not built in this kernel, using SLUB\n"
        );
    }
    let o = kmem(&["--slab", "slob", "cat", "/proc/slabinfo"], "");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("/proc/slabinfo: No such file or directory"),
        "{}",
        text(&o.stderr)
    );
    let o = kmem(&["--slab", "slub4", "boot"], "");
    assert_eq!(o.status.code(), Some(2));
    let o = kmem(&["--mem", "12X", "boot"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("invalid size suffix"));
    // Values the options accept as text but the machine cannot have are bad options too
    // (the README's status 2), said in one clap-style error line.
    let o = kmem(&["--mem", "8M", "boot"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("too little memory"),
        "{}",
        text(&o.stderr)
    );
    for bad in [
        &["--cpus", "5000", "boot"][..],
        &["--cpus", "1000", "boot"],
        &["--cpus", "0", "boot"],
        &["--mem", "0", "boot"],
        &["--mem", "0G", "shell", "-c", "1"],
    ] {
        let o = kmem(bad, "");
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).starts_with("error: "),
            "{}",
            text(&o.stderr)
        );
    }
    let o = kmem(&["--arch", "arm64", "boot"], "");
    assert_eq!(o.status.code(), Some(2));
}

/// Issue 3's examples, exactly.
#[test]
fn kmalloc_examples() {
    let o = kmem(
        &["shell"],
        "p = kmalloc(100, GFP_KERNEL)\nksize(p)\nz = kmalloc(0, GFP_KERNEL)\nkfree(p)\nkfree(z)\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = text(&o.stdout);
    let lines: Vec<_> = s.lines().collect();
    assert!(lines[0].starts_with("p = 0xffff888"), "{s}");
    assert_eq!(&lines[1..], ["128", "z = 0x10"]);
}

#[test]
fn slub_debug_reaches_the_kernel() {
    // With red zones on (F,Z), a write just past a kmalloc-128 object is caught at kfree.
    let o = kmem(
        &["--slub-debug=FZ", "shell"],
        "p = kmalloc(100, GFP_KERNEL)\npoke8(p + 128, 0x41)\nkfree(p)\nx = 1\n",
    );
    let s = text(&o.stdout);
    assert!(s.contains("BUG kmalloc-128"), "{s}");
    assert!(s.ends_with("x = 1\n"), "{s}");
    assert_eq!(o.status.code(), Some(1));
}

/// Zeroing half the direct map wipes the slab allocator's own structures; the next slab call
/// follows a wild pointer. The process reports a kernel panic instead of dying silently.
#[test]
fn corrupting_the_kernel_ends_in_a_panic_report() {
    let o = kmem(
        &["shell"],
        "p = kmalloc(64, GFP_KERNEL)\nmemset(p, 0, 1 << 29)\n\
         c = kmem_cache_create(\"ok\", 8, 8, 0)\nkmem_cache_alloc(c, GFP_KERNEL)\n\
         q = kmalloc(200, GFP_KERNEL)\n",
    );
    let s = text(&o.stdout);
    assert!(
        s.contains("Kernel panic - not syncing: Fatal exception (kmem: host fault at 0x"),
        "{s}"
    );
    assert_eq!(o.status.code(), Some(3));
}

/// Issue 7, "Done when": vmalloc, memset, translate, vmallocinfo, vfree, and a write to the
/// guard page reported as a page fault with the shell going on.
#[test]
fn vmalloc_done_when() {
    let o = kmem(
        &["shell"],
        "v = vmalloc(40000)\nmemset(v, 0x5a, 40000)\ntranslate v\ncat /proc/vmallocinfo\n\
         poke8(v + 40960, 1)\nvfree(v)\nx = 1\n",
    );
    let s = text(&o.stdout);
    assert!(s.starts_with("v = 0xffffc90000000000\n"), "{s}");
    assert!(s.contains("  PTE["), "{s}");
    assert!(s.contains(" pages=10 vmalloc N0=10\n"), "{s}");
    assert!(
        s.contains("BUG: unable to handle page fault for address: ffffc9000000a000\n"),
        "{s}"
    );
    assert!(s.ends_with("x = 1\n"), "{s}");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn highmem_kmap_i386_shell() {
    let o = kmem(
        &["--arch", "i386", "--mem", "2G", "shell"],
        "p = alloc_pages(GFP_HIGHUSER, 0)\na = kmap(p)\npoke8(a, 0x42)\npeek8(a)\nkunmap(p)\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = text(&o.stdout);
    assert!(s.ends_with("\n66\n"), "{s}");
}

#[test]
fn sysrq_show_memory_and_crash() {
    let o = kmem(&["shell"], "sysrq m\nsysrq c\nx = 1\n");
    let s = text(&o.stdout);
    assert!(s.starts_with("sysrq: Show Memory\nMem-Info:\n"), "{s}");
    assert!(
        s.ends_with("sysrq: Trigger a crash\nKernel panic - not syncing: sysrq triggered crash\n"),
        "{s}"
    );
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn shell_dash_c_runs_a_command_line() {
    let o = kmem(
        &[
            "shell",
            "-c",
            "p = kmalloc(100, GFP_KERNEL); ksize(p)\nkfree(p)",
        ],
        "ignored = 1\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = text(&o.stdout);
    assert!(s.ends_with("\n128\n"), "{s}");
    assert_eq!(s.lines().count(), 2);
    let o = kmem(&["shell", "-c", "1 +"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).starts_with("<command>:1:4: error: expected an expression"));
}

/// 3,000 nested parentheses, 30,000 `~` or a chain of 30,000 `+` used to overflow the parser's
/// stack, reported as a kernel panic (status 3). Now: a one-line syntax error, and the script
/// goes on.
#[test]
fn deep_nesting_is_a_syntax_error() {
    let script = format!(
        "{}1{}\n{}1\n{}1\nx = 1\n",
        "(".repeat(3000),
        ")".repeat(3000),
        "~".repeat(30_000),
        "1+".repeat(30_000)
    );
    let o = kmem(&["shell"], &script);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_eq!(out, "x = 1\n");
    let first: Vec<&str> = err.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(first.len(), 3, "{err}");
    for l in first {
        assert!(
            l.contains("error: expression nested too deeply (more than 64 levels)"),
            "{l}"
        );
    }
}

/// A byte that is not UTF-8 used to end the whole script ("stream did not contain valid
/// UTF-8"); now that line is an error and the rest runs.
#[test]
fn invalid_utf8_is_an_error_of_its_line() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kmem"))
        .args(["shell"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"x = 1\ny = \"\xff\xfe\"\nz = 2\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(text(&o.stdout), "x = 1\nz = 2\n");
    let err = text(&o.stderr);
    assert!(
        err.starts_with("<stdin>:2:6: error: invalid UTF-8 (byte 0xff): the line is skipped\n"),
        "{err}"
    );
    assert_eq!(o.status.code(), Some(1));
}

/// Control characters from the input are not echoed raw to the terminal in error reports.
#[test]
fn errors_do_not_echo_control_characters() {
    let o = kmem(&["cat", "/proc/\x1b]0;x\x07"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(!text(&o.stderr).contains('\x1b'), "{:?}", text(&o.stderr));
    let o = kmem(&["shell"], "x = 1 \x1b[2J\n");
    let err = text(&o.stderr);
    assert!(!err.contains('\x1b'), "{err:?}");
    assert!(
        err.starts_with("<stdin>:1:7: error: unexpected character '\u{fffd}'"),
        "{err}"
    );
}

#[test]
fn exit_status_is_honoured() {
    let status = |script: &str| kmem(&["shell", "-c", script], "").status.code();
    assert_eq!(status("exit 5"), Some(5));
    assert_eq!(status("exit 256 + 3"), Some(3));
    assert_eq!(status("exit 0"), Some(0));
    assert_eq!(status("1 +; exit 0"), Some(0));
    assert_eq!(status("1 +; exit"), Some(1));
    assert_eq!(status("exit; x = 1 +"), Some(0));
    let o = kmem(&["shell", "-c", "exit \"no\""], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("exit: expected a number"),
        "{}",
        text(&o.stderr)
    );
}

/// `translate` takes an expression, C casts included, as every other place does.
#[test]
fn translate_takes_a_cast() {
    let o = kmem(&["shell", "-c", "translate (void *)0xffff888000100000"], "");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let plain = kmem(&["shell", "-c", "translate 0xffff888000100000"], "");
    assert_eq!(text(&o.stdout), text(&plain.stdout));
    assert!(text(&o.stdout).contains("PTE") || text(&o.stdout).contains("PMD"));
    let o = kmem(
        &["shell", "-c", "translate (unsigned long)(void *)0x1000"],
        "",
    );
    assert!(!text(&o.stderr).contains("syntax"), "{}", text(&o.stderr));
}

/// An error written to a pipe whose reader has gone used to panic in `eprintln!` (status
/// 101). Now the message is lost, as with any Unix tool, and the status stays 1.
#[test]
fn errors_to_a_closed_pipe_do_not_panic() {
    for args in [
        &["cat", "/proc/nonexistent"][..],
        &["shell", "-c", "1 +"],
        &["--slab", "slob", "cat", "/proc/nonexistent"],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kmem"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end before kmem has booted and written anything.
        drop(child.stderr.take());
        let st = child.wait().unwrap();
        assert_eq!(st.code(), Some(1), "{args:?}");
    }
}

/// A machine larger than the host can back used to boot and be killed by the OOM killer
/// later; now it is refused up front.
#[test]
fn a_machine_larger_than_the_host_is_refused() {
    if kmem_hosted::host_memory_available().is_some_and(|a| a > 640 << 30) {
        eprintln!("note: this host could back a 32 TiB machine; test skipped");
        return;
    }
    // 32 TiB of RAM: its memmap alone is 512 GiB (640.1 GiB with the boot's own structures).
    for args in [
        &["--mem", "32T", "boot"][..],
        &["--mem", "32T", "shell", "-c", "1"],
    ] {
        let o = kmem(args, "");
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with("kmem: needs 640.1 GiB of host memory, "),
            "{err}"
        );
        assert!(err.contains(" GiB of host memory, "), "{err}");
        assert!(err.ends_with(" GiB available\n"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
