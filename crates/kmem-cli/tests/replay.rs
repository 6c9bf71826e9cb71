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
