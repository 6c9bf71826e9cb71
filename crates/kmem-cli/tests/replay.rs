//! `kmem replay`: the command-line face of the trace replayer (crates/kmem-replay).

use std::path::PathBuf;
use std::process::Command;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kmem-replay/tests/data/linux-6.18-excerpt.trace.xz")
}

fn kmem(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kmem"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn replay_prints_the_report_and_proc_files() {
    let f = fixture();
    let (ok, out, err) = kmem(&[
        "--mem",
        "256M",
        "replay",
        f.to_str().unwrap(),
        "--cat",
        "/proc/slabinfo",
        "--cat",
        "buddyinfo",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("events replayed: "), "{out}");
    assert!(
        out.contains("kmalloc size-class agreement: 100.00%"),
        "{out}"
    );
    assert!(out.contains("==> /proc/slabinfo <=="), "{out}");
    assert!(out.contains("==> /proc/buddyinfo <=="), "{out}");
    assert!(out.contains("unusable index order 3"), "{out}");
    // No progress bar when stderr is not a terminal.
    assert!(!err.contains("replaying ["), "{err}");
}

#[test]
fn replay_json_and_errors() {
    let f = fixture();
    let (ok, out, err) = kmem(&["--mem", "256M", "replay", "--json", f.to_str().unwrap()]);
    assert!(ok, "{err}");
    let line = out.trim();
    assert!(line.starts_with('{') && line.ends_with('}'), "{out}");
    assert!(
        line.contains("\"kmalloc_size_class_agreement\":100.0000"),
        "{out}"
    );
    assert!(line.contains("\"events_replayed\":"), "{out}");
    let (ok, _, err) = kmem(&["replay", "/nonexistent/trace.xz"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/trace.xz"), "{err}");
}

fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("kmem-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Random bytes or a gzip file used to "replay" with 0 events and status 0.
#[test]
fn replay_of_something_that_is_not_a_trace_fails() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let f = tmp("random", &random);
    let (ok, out, err) = kmem(&["replay", f.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(out, "");
    assert!(err.contains(": not a trace: none of its "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let mut gz = vec![0x1f, 0x8b, 8, 0];
    gz.extend_from_slice(&random[..4000]);
    let f = tmp("gz", &gz);
    let (ok, _, err) = kmem(&["replay", f.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("gzip-compressed"), "{err}");
    // An empty file is not a trace either; a header alone is (a trace with no events).
    let f = tmp("empty", b"");
    assert!(!kmem(&["replay", f.to_str().unwrap()]).0);
    let f = tmp(
        "header",
        b"# tracer: nop\n#\n# entries-in-buffer/entries-written: 0/0   #P:2\n",
    );
    let (ok, out, err) = kmem(&["--mem", "64M", "replay", f.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("events replayed: 0"), "{out}");
}

/// The report used to copy terminal escape sequences of malformed lines to the terminal.
#[test]
fn replay_report_escapes_control_characters() {
    let f = tmp(
        "esc",
        b"# entries-in-buffer/entries-written: 1/1   #P:1\nx\x1b[31mRED\x07\n\
          bash-1 [000] ..... 1.0: evil\x1b]0;title\x07: a=b\n",
    );
    let (ok, out, err) = kmem(&["--mem", "64M", "replay", f.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
    assert!(out.contains("x\\x1b[31mRED\\x07"), "{out}");
}

/// Replaying a trace with no events used to fault in all of `--mem` first.
#[test]
fn replay_without_events_does_not_prefault_ram() {
    let f = tmp(
        "noevents",
        b"# entries-in-buffer/entries-written: 0/0   #P:2\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_kmem"))
        .args(["--mem", "2G", "replay", f.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for; the pointers are valid.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid);
    // Reaped by wait4 already (this only tells std so).
    let _ = child.wait();
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    // Peak resident set in KiB: the memmap (32 MiB) and the kernel, not 2 GiB of RAM.
    assert!(ru.ru_maxrss < 512 << 10, "peak RSS {} KiB", ru.ru_maxrss);
}
