//! `kmem top`, `kmem map` and `kmem replay --report`, run as a user runs them. The interactive
//! view runs under tmux and the report is rendered by headless Chromium; either test skips
//! with a note where its program is not installed (`.ci/run` installs both).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kmem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kmem"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run kmem")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn excerpt() -> PathBuf {
    manifest().join("../kmem-replay/tests/data/linux-6.18-excerpt.trace.xz")
}

/// The shared full trace, if there (see kmem-replay's tests for the rules: required in CI).
fn full_trace() -> Option<PathBuf> {
    const TRACE: &str = "traces/linux-6.18-git-tar-gcc.trace.xz";
    let shared = [
        manifest().join("../../../shared"),
        PathBuf::from("/work/shared"),
    ];
    let found = shared.iter().map(|d| d.join(TRACE)).find(|p| p.exists());
    if found.is_none() {
        let required = std::env::var_os("KMEM_CI").is_some() || shared.iter().any(|d| d.is_dir());
        assert!(!required, "{TRACE} not found in {shared:?}");
        eprintln!("note: no shared/ beside the clone; the full trace is skipped");
    }
    found
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kmem-view-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn have(prog: &str) -> bool {
    let ok = Command::new(prog)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("note: {prog} is not installed; test skipped");
    }
    ok
}

/// A frame's zone rows: (zone, free, min, low, high).
fn zone_rows(s: &str) -> Vec<(String, Vec<u64>)> {
    s.lines()
        .skip_while(|l| !l.starts_with("NODE"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[1].to_string(),
                f[2..7].iter().map(|x| x.parse().unwrap()).collect(),
            )
        })
        .collect()
}

#[test]
fn top_once_replay() {
    let t = excerpt();
    let s = ok(&kmem(&["top", "--once", "--replay", t.to_str().unwrap()]));
    assert!(s.starts_with("kmem top — replay of "), "{s}");
    assert!(s.contains("note: ran 7500 of 7500 events"), "{s}");
    let z = zone_rows(&s);
    assert_eq!(
        z.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["DMA", "DMA32"]
    );
    for (name, v) in &z {
        // free, min ≤ low ≤ high
        assert!(v[1] <= v[2] && v[2] <= v[3], "{name}: {v:?}");
    }
    assert!(s.contains("(sorted by CACHE SIZE)"), "{s}");
    assert!(
        s.contains(" kmalloc-64\n") || s.contains(" kmalloc-64 "),
        "{s}"
    );
    assert!(!s.contains("allocs/s -"), "replay has alloc rates: {s}");
}

#[test]
fn top_once_host() {
    if !Path::new("/proc/buddyinfo").exists() {
        eprintln!("note: no /proc/buddyinfo on this host; test skipped");
        return;
    }
    let s = ok(&kmem(&["top", "--once", "--host", "--interval", "0.2"]));
    assert!(
        s.starts_with("kmem top — this machine's kernel (/proc)"),
        "{s}"
    );
    let z = zone_rows(&s);
    assert!(!z.is_empty(), "no zones: {s}");
    // The host's /proc/buddyinfo zones, in its order.
    let bi = std::fs::read_to_string("/proc/buddyinfo").unwrap();
    let want: Vec<&str> = bi
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(z.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), want);
    // Caches, or the reason there are none (slabinfo is root's).
    match std::fs::read_to_string("/proc/slabinfo") {
        Ok(_) => assert!(
            s.contains("(sorted by CACHE SIZE)\n") && s.lines().count() > z.len() + 8,
            "{s}"
        ),
        Err(_) => assert!(s.contains("note: /proc/slabinfo:"), "{s}"),
    }
}

/// A /proc without slabinfo (as when it cannot be read): the frame says so and still shows
/// the zones.
#[test]
fn top_once_host_without_slabinfo() {
    let d = tmpdir("proc");
    std::fs::write(
        d.join("buddyinfo"),
        "Node 0, zone      DMA      1      1      0      1      1      1      1      0      1      1      3 \n",
    )
    .unwrap();
    std::fs::write(
        d.join("zoneinfo"),
        "Node 0, zone      DMA\n  pages free     3840\n        min      33\n        low      41\n        high     49\n        managed  3840\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kmem"))
        .args(["top", "--once", "--host", "--interval", "0.05"])
        .env("KMEM_TOP_PROC", &d)
        .output()
        .unwrap();
    let s = ok(&o);
    assert!(
        s.contains(&format!(
            "note: {}: No such file",
            d.join("slabinfo").display()
        )),
        "{s}"
    );
    assert_eq!(
        zone_rows(&s),
        [("DMA".to_string(), vec![3840, 33, 41, 49, 3840])]
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// The library's published statistics, read from a running process.
#[test]
fn top_once_pid() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_kmem"));
    let lib = exe.parent().unwrap().join("libkmem_malloc.so");
    if !lib.exists() {
        eprintln!(
            "note: {} not built (cargo build -p kmem-malloc); test skipped",
            lib.display()
        );
        return;
    }
    if !have("python3") {
        return;
    }
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import time\nt=time.time()\nwhile time.time()-t<60:\n    x=[bytes(200) for _ in range(20000)]\n    del x\n    time.sleep(0.01)\n",
        ])
        .env("LD_PRELOAD", &lib)
        .env("KMEM_MALLOC_TOP", "1")
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let shm = PathBuf::from(format!("/dev/shm/kmem-malloc.{pid}"));
    let t0 = Instant::now();
    while !shm.exists() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = kmem(&["top", "--once", "--pid", &pid, "--interval", "0.3"]);
    let _ = child.kill();
    let _ = child.wait();
    // Killed, the process could not remove its file (only a normal exit does).
    let _ = std::fs::remove_file(&shm);
    let s = ok(&o);
    assert!(
        s.starts_with(&format!("kmem top — process {pid} (libkmem_malloc.so)")),
        "{s}"
    );
    let z = zone_rows(&s);
    assert!(!z.is_empty(), "{s}");
    // Watermarks from the published zoneinfo: 0 < min < low < high.
    for (name, v) in &z {
        assert!(0 < v[1] && v[1] < v[2] && v[2] < v[3], "{name}: {v:?}\n{s}");
    }
    assert!(s.contains(" kmalloc-"), "{s}");
    // A pid without statistics: a clear message, status 1.
    let o = kmem(&["top", "--once", "--pid", "999999999"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("KMEM_MALLOC_TOP=1"), "{e}");
}

fn tmux(sock: &str, args: &[&str]) -> Output {
    Command::new("tmux")
        .arg("-L")
        .arg(sock)
        .args(args)
        .output()
        .unwrap()
}

/// Waits for the pane to show `want`; returns the pane's text.
fn wait_pane(sock: &str, want: &str) -> String {
    let t0 = Instant::now();
    loop {
        let o = tmux(sock, &["capture-pane", "-p", "-t", "top"]);
        let s = String::from_utf8_lossy(&o.stdout).to_string();
        if s.contains(want) {
            return s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "pane never showed {want:?}:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The live view in a real terminal: the sort key changes, a resize redraws at the new
/// size, `q` quits.
#[test]
fn top_interactive_under_tmux() {
    if !have("tmux") {
        return;
    }
    let sock = format!("kmem-test-{}", std::process::id());
    let cmd = format!(
        "{} top --replay {} --speed 1000",
        env!("CARGO_BIN_EXE_kmem"),
        excerpt().display()
    );
    let o = tmux(
        &sock,
        &[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "120",
            "-y",
            "40",
            &cmd,
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = wait_pane(&sock, "sorted by CACHE SIZE");
    assert!(s.contains("kmem top — replay of"), "{s}");
    tmux(&sock, &["send-keys", "-t", "top", "n"]);
    wait_pane(&sock, "sorted by NAME");
    tmux(&sock, &["send-keys", "-t", "top", "s"]);
    wait_pane(&sock, "sorted by CACHE SIZE");
    // Resize: the help line moves to the new last row.
    tmux(
        &sock,
        &["resize-window", "-t", "top", "-x", "90", "-y", "25"],
    );
    let t0 = Instant::now();
    loop {
        let o = tmux(&sock, &["capture-pane", "-p", "-t", "top"]);
        let s = String::from_utf8_lossy(&o.stdout).to_string();
        let lines: Vec<&str> = s.lines().collect();
        if lines.len() == 25 && lines[24].starts_with("q quit") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no redraw at 90x25:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    tmux(&sock, &["send-keys", "-t", "top", "q"]);
    let t0 = Instant::now();
    while tmux(&sock, &["has-session", "-t", "top"]).status.success() {
        assert!(t0.elapsed() < Duration::from_secs(20), "q did not quit");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = tmux(&sock, &["kill-server"]);
}

#[test]
fn map_svg_and_png() {
    let d = tmpdir("map");
    let (svg, png_path) = (d.join("m.svg"), d.join("m.png"));
    ok(&kmem(&[
        "--mem",
        "128M",
        "map",
        svg.to_str().unwrap(),
        png_path.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(text.trim_end().ends_with("</svg>"));
    for z in ["DMA", "DMA32"] {
        assert!(text.contains(&format!(">{z}</text>")), "zone label {z}");
    }
    assert!(text.contains("free, order 10 ("), "legend");
    if have("python3") {
        let o = Command::new("python3")
            .args([
                "-c",
                "import sys,xml.etree.ElementTree as E; E.parse(sys.argv[1])",
            ])
            .arg(&svg)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "not XML: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let dec = png::Decoder::new(std::fs::File::open(&png_path).unwrap());
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    assert!(info.width > 500 && info.height > 200);
    // A bad name: a one-line error, status 1.
    let o = kmem(&["map", d.join("m.gif").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown picture format"));
    // At a point of a replay.
    let at = d.join("at.svg");
    ok(&kmem(&[
        "map",
        "--replay",
        excerpt().to_str().unwrap(),
        "--at",
        "3000",
        at.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&at).unwrap();
    assert!(text.contains("after 3000 events"), "title");
    assert!(text.contains("slab: "), "slab caches in the legend");
    let _ = std::fs::remove_dir_all(&d);
}

/// The report of a trace: every plot is there, and Chromium renders it (a screenshot).
fn report_of(trace: &Path, name: &str) {
    let d = tmpdir(name);
    let html = d.join("report.html");
    ok(&kmem(&[
        "replay",
        trace.to_str().unwrap(),
        "--report",
        html.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&html).unwrap();
    for id in ["free", "slab", "unusable", "kmalloc", "map", "summary"] {
        assert!(text.contains(&format!("<h2 id=\"{id}\">")), "section {id}");
    }
    assert!(text.matches("<svg ").count() >= 6, "plots");
    assert!(
        text.contains(">min</text>") && text.contains(">high</text>"),
        "watermarks"
    );
    assert!(text.contains(">order 9</text>"), "unusable index per order");
    assert!(
        !text.contains("http://") || !text.contains("<script src"),
        "self-contained"
    );
    assert!(!text.contains("<link "), "self-contained");
    if !have("chromium") {
        return;
    }
    let shot = d.join("shot.png");
    let o = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1200,3000",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", d.join("chromium").display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "chromium failed: {err}");
    // Console errors of the page (a broken SVG, a script error) are logged as CONSOLE lines.
    assert!(!err.contains("CONSOLE"), "page errors: {err}");
    let dec = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 3000));
    // Not blank: the plots put many colours on the page.
    let px = info.color_type.samples();
    let distinct: std::collections::HashSet<&[u8]> = buf.chunks(px).collect();
    assert!(distinct.len() > 20, "{} colours", distinct.len());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn report_excerpt() {
    report_of(&excerpt(), "report-excerpt");
}

#[test]
fn report_full_trace() {
    if let Some(t) = full_trace() {
        report_of(&t, "report-full");
    }
}

/// A shell script as the source: its allocations show in the frame.
#[test]
fn top_once_script() {
    let d = tmpdir("script");
    let (empty, four) = (d.join("empty.kmem"), d.join("four.kmem"));
    std::fs::write(&empty, "# nothing\n").unwrap();
    std::fs::write(&four, "a = alloc_pages(GFP_KERNEL, 9)\nb = alloc_pages(GFP_KERNEL, 9)\nc = alloc_pages(GFP_KERNEL, 9)\nd = alloc_pages(GFP_KERNEL, 9)\n").unwrap();
    let free = |f: &Path| {
        let s = ok(&kmem(&["top", "--once", "--script", f.to_str().unwrap()]));
        assert!(s.starts_with("kmem top — shell script "), "{s}");
        zone_rows(&s)
            .into_iter()
            .find(|r| r.0 == "DMA32")
            .map(|r| r.1[0])
            .unwrap()
    };
    let (before, after) = (free(&empty), free(&four));
    assert!(after + 2048 <= before, "{before} -> {after}");
    let s = ok(&kmem(&[
        "top",
        "--once",
        "--script",
        four.to_str().unwrap(),
    ]));
    assert!(s.contains("note: ran 4 of 4 script lines"), "{s}");
    let _ = std::fs::remove_dir_all(&d);
}
