//! Real programs with libkmem_malloc.so preloaded, their output compared with a plain run.
//!
//! Each test runs a program twice, with glibc's allocator and with
//! `LD_PRELOAD=libkmem_malloc.so`, and requires both runs to succeed with identical standard
//! output. A program that is not installed (python3, sqlite3, git, gcc) skips its test with a
//! note; `.ci/run` installs them.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::lib;

fn programs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

fn have(prog: &str) -> bool {
    let ok = Command::new(prog)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("note: {prog} is not installed; test skipped");
    }
    ok
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kmem-malloc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(mut cmd: Command, preload: bool) -> Output {
    if preload {
        cmd.env("LD_PRELOAD", lib());
    } else {
        cmd.env_remove("LD_PRELOAD");
    }
    cmd.output().unwrap()
}

/// Runs `make()` plainly and under kmem; both must succeed with the same output, and the kmem
/// run must show that the library served it: its statistics file (written by its exit
/// handler, so only if it was loaded and booted) with its counters and its caches in use.
fn compare(name: &str, make: impl Fn() -> Command) -> (Output, Output) {
    let (plain, kmem, _) = compare_stats(name, make);
    (plain, kmem)
}

/// [`compare`], also returning the library's statistics text.
fn compare_stats(name: &str, make: impl Fn() -> Command) -> (Output, Output, String) {
    let plain = run(make(), false);
    assert!(
        plain.status.success(),
        "{name} (glibc) failed: {}\n{}",
        plain.status,
        String::from_utf8_lossy(&plain.stderr)
    );
    // One file per call: tests run in parallel, and several name the same program (two
    // `python3 …` runs shared one file, so one test read the other's statistics or found
    // its file removed).
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let stats = std::env::temp_dir().join(format!(
        "kmem-malloc-stats-{}-{}-{}.txt",
        name.split_whitespace().next().unwrap_or(name),
        std::process::id(),
        CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&stats);
    let mut cmd = make();
    cmd.env("KMEM_MALLOC_STATS", &stats);
    let kmem = run(cmd, true);
    assert!(
        kmem.status.success(),
        "{name} (kmem) failed: {}\n{}",
        kmem.status,
        String::from_utf8_lossy(&kmem.stderr)
    );
    let text = std::fs::read_to_string(&stats).unwrap_or_else(|e| {
        panic!("{name}: no statistics from libkmem_malloc.so ({e}): preload ignored?")
    });
    let _ = std::fs::remove_file(&stats);
    assert_library_served(name, &text);
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&kmem.stdout),
        "{name}: outputs differ"
    );
    assert!(!plain.stdout.is_empty(), "{name}: no output");
    (plain, kmem, text)
}

/// The statistics show a booted node whose `malloc-N` caches hold objects (under SLOB,
/// which has no caches of its own for malloc, whose slab memory is in use).
fn assert_library_served(name: &str, stats: &str) {
    assert!(
        stats.starts_with("kmem-malloc statistics, pid "),
        "{name}: {stats}"
    );
    assert!(stats.contains("=== node 0: "), "{name}: {stats}");
    if stats.contains("slab=slob") {
        let slab_kb: u64 = stats
            .lines()
            .find(|l| l.starts_with("Slab:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        assert!(slab_kb > 0, "{name}: no SLOB memory in use:\n{stats}");
        return;
    }
    let in_use: u64 = stats
        .lines()
        .filter(|l| l.starts_with("malloc-"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    assert!(
        in_use > 0,
        "{name}: no object in the malloc-N caches:\n{stats}"
    );
}

fn gcc(src: &str, out: &Path, extra: &[&str]) {
    let st = Command::new("gcc")
        .args(["-O2", "-pthread", "-o"])
        .arg(out)
        .arg(programs().join(src))
        .args(extra)
        .status()
        .unwrap();
    assert!(st.success(), "gcc {src} failed");
}

#[test]
fn c_api_semantics() {
    if !have("gcc") {
        return;
    }
    let d = tmpdir("semantics");
    let exe = d.join("semantics");
    gcc("semantics.c", &exe, &[]);
    let (_, k) = compare("semantics", || Command::new(&exe));
    let out = String::from_utf8_lossy(&k.stdout);
    assert!(!out.contains("FAIL"), "{out}");
    assert!(out.lines().count() > 80);
}

#[test]
fn c_threads_across_frees_and_fork() {
    if !have("gcc") {
        return;
    }
    let d = tmpdir("threads");
    let exe = d.join("threads");
    gcc("threads.c", &exe, &["-DROUNDS=3", "-DPER_THREAD=6000"]);
    let (_, k) = compare("threads", || Command::new(&exe));
    let out = String::from_utf8_lossy(&k.stdout);
    assert!(out.contains("bad 0"), "{out}");
}

#[test]
fn c_threads_with_transparent_huge_pages() {
    if !have("gcc") {
        return;
    }
    let d = tmpdir("threads-thp");
    let exe = d.join("threads");
    gcc("threads.c", &exe, &["-DROUNDS=2", "-DPER_THREAD=4000"]);
    let (_, k) = compare("threads (KMEM_MALLOC_THP=1)", || {
        let mut c = Command::new(&exe);
        c.env("KMEM_MALLOC_THP", "1");
        c
    });
    assert!(String::from_utf8_lossy(&k.stdout).contains("bad 0"));
}

#[test]
fn python_allocation_heavy_script() {
    if !have("python3") {
        return;
    }
    let script = programs().join("alloc_heavy.py");
    compare("python3", || {
        let mut c = Command::new("python3");
        c.env("PYTHONMALLOC", "malloc")
            .env("PYTHONHASHSEED", "0")
            .arg(&script)
            .arg("30000");
        c
    });
}

#[test]
fn sqlite3_in_memory_workload() {
    if !have("sqlite3") {
        return;
    }
    let sql = std::fs::read(programs().join("workload.sql")).unwrap();
    let d = tmpdir("sqlite");
    let sql_path = d.join("w.sql");
    std::fs::write(&sql_path, sql).unwrap();
    compare("sqlite3", || {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("sqlite3 :memory: < '{}'", sql_path.display()));
        c
    });
}

#[test]
fn git_on_a_small_repository() {
    if !have("git") {
        return;
    }
    git_compare("git", |_| {});
}

/// Runs the git script plainly and under kmem (`tweak` adds environment to both runs).
fn git_compare(name: &str, tweak: impl Fn(&mut Command)) -> String {
    git_compare_output(name, tweak).1
}

/// [`git_compare`], also returning the kmem run's output.
fn git_compare_output(name: &str, tweak: impl Fn(&mut Command)) -> (Output, String) {
    let base = tmpdir(name);
    let script = r#"
set -e
rm -rf repo && mkdir repo && cd repo
git init -q -b main .
for i in $(seq 1 60); do
  mkdir -p "d$((i % 5))"
  seq 1 $((i * 40)) | sed "s/^/line $i: /" > "d$((i % 5))/f$i.txt"
done
git add -A
git commit -q -m "first"
for i in $(seq 1 60 | awk 'NR % 4 == 0'); do echo "change $i" >> "d$((i % 5))/f$i.txt"; done
git rm -q d1/f1.txt
git commit -q -am "second"
git log --stat --format='%H %s'
git diff HEAD~1 --stat
git diff HEAD~1 | sha1sum
git gc -q
git fsck --full 2>&1 | sed '/^kmemleak: /d'
git count-objects -v | grep -v size
git ls-tree -r HEAD | wc -l
"#;
    let (_, kmem, st) = compare_stats(name, || {
        let mut c = Command::new("sh");
        tweak(&mut c);
        c.current_dir(&base)
            .arg("-c")
            .arg(script)
            .env("GIT_AUTHOR_NAME", "kmem")
            .env("GIT_AUTHOR_EMAIL", "kmem@example.org")
            .env("GIT_COMMITTER_NAME", "kmem")
            .env("GIT_COMMITTER_EMAIL", "kmem@example.org")
            .env("GIT_AUTHOR_DATE", "2025-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2025-01-01T00:00:00Z")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &base);
        c
    });
    (kmem, st)
}

/// `KMEM_MALLOC_KMEMLEAK=1` on python3, sqlite3 and git: the same output as a plain run, and
/// every process (git runs helpers and children) reports at exit that nothing is
/// unreferenced. (The git script merges `git fsck`'s standard error into its output; the
/// `kmemleak:` lines of its processes are taken out there, an `unreferenced object` would
/// still make the outputs differ.)
#[test]
fn real_programs_with_kmemleak() {
    let check = |name: &str, o: &Output| {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("kmemleak: 0 new suspected memory leaks\n"),
            "{name}: no kmemleak report\n{err}"
        );
        for l in err.lines().filter(|l| l.starts_with("kmemleak: ")) {
            assert_eq!(
                l, "kmemleak: 0 new suspected memory leaks",
                "{name}:\n{err}"
            );
        }
        assert!(!err.contains("unreferenced object"), "{name}:\n{err}");
    };
    if have("python3") {
        let script = programs().join("alloc_heavy.py");
        let (_, kmem) = compare("python3 (KMEM_MALLOC_KMEMLEAK=1)", || {
            let mut c = Command::new("python3");
            c.env("PYTHONMALLOC", "malloc")
                .env("PYTHONHASHSEED", "0")
                .env("KMEM_MALLOC_KMEMLEAK", "1")
                .arg(&script)
                .arg("20000");
            c
        });
        check("python3", &kmem);
    }
    if have("sqlite3") {
        let d = tmpdir("sqlite-kmemleak");
        let sql_path = d.join("w.sql");
        std::fs::write(
            &sql_path,
            std::fs::read(programs().join("workload.sql")).unwrap(),
        )
        .unwrap();
        let (_, kmem) = compare("sqlite3 (KMEM_MALLOC_KMEMLEAK=1)", || {
            let mut c = Command::new("sh");
            c.env("KMEM_MALLOC_KMEMLEAK", "1")
                .arg("-c")
                .arg(format!("sqlite3 :memory: < '{}'", sql_path.display()));
            c
        });
        check("sqlite3", &kmem);
    }
    if have("git") {
        let (kmem, _) = git_compare_output("git-kmemleak", |c| {
            c.env("KMEM_MALLOC_KMEMLEAK", "1");
        });
        check("git", &kmem);
    }
}

/// KFENCE sampling every millisecond on python3, sqlite3 and git: the same output, no report
/// (a KFENCE report would abort the run), KFENCE running in the node.
#[test]
fn real_programs_with_kfence() {
    let check = |st: &str| {
        assert!(
            st.contains("reports: 0 BUG, 0 warnings, 0 slab errors"),
            "{st}"
        );
        assert!(
            st.contains("kfence: initialized - using 2097152 bytes"),
            "{st}"
        );
        // KFENCE served some of the program's allocations.
        let allocs: u64 = st
            .lines()
            .find_map(|l| l.strip_prefix("total allocations: "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(allocs > 0, "{st}");
    };
    if have("python3") {
        let script = programs().join("alloc_heavy.py");
        let (_, _, st) = compare_stats("python3 (KMEM_MALLOC_KFENCE=1)", || {
            let mut c = Command::new("python3");
            c.env("PYTHONMALLOC", "malloc")
                .env("PYTHONHASHSEED", "0")
                .env("KMEM_MALLOC_KFENCE", "1")
                .arg(&script)
                .arg("20000");
            c
        });
        check(&st);
    }
    if have("sqlite3") {
        let d = tmpdir("sqlite-kfence");
        let sql_path = d.join("w.sql");
        std::fs::write(
            &sql_path,
            std::fs::read(programs().join("workload.sql")).unwrap(),
        )
        .unwrap();
        let (_, _, st) = compare_stats("sqlite3 (KMEM_MALLOC_KFENCE=1)", || {
            let mut c = Command::new("sh");
            c.env("KMEM_MALLOC_KFENCE", "1")
                .arg("-c")
                .arg(format!("sqlite3 :memory: < '{}'", sql_path.display()));
            c
        });
        check(&st);
    }
    if have("git") {
        let st = git_compare("git-kfence", |c| {
            c.env("KMEM_MALLOC_KFENCE", "1");
        });
        check(&st);
    }
}

#[test]
fn slub_debug_and_statistics_at_exit() {
    if !have("gcc") {
        return;
    }
    let d = tmpdir("stats");
    let exe = d.join("threads");
    gcc("threads.c", &exe, &["-DROUNDS=1", "-DPER_THREAD=2000"]);
    let stats = d.join("stats.txt");
    let mut c = Command::new(&exe);
    c.env("KMEM_SLUB_DEBUG", "FZPU")
        .env("KMEM_MALLOC_STATS", &stats);
    let out = run(c, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("bad 0"));
    let text = std::fs::read_to_string(&stats).unwrap();
    assert!(text.contains("kmem-malloc statistics"), "{text}");
    assert!(text.contains("slabinfo - version: 2.1"), "{text}");
    assert!(text.contains("Node 0, zone"), "{text}");
    assert!(
        text.contains("reports: 0 BUG, 0 warnings, 0 slab errors"),
        "{text}"
    );
    // Red zones and tracking make the kmalloc-64 stride larger than 64 under FZPU.
    let line = text
        .lines()
        .find(|l| l.starts_with("kmalloc-64 "))
        .unwrap_or_else(|| panic!("no kmalloc-64 line:\n{text}"));
    let objsize: usize = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(objsize > 64, "{line}");
}

#[test]
fn slub_debug_reports_a_heap_overflow() {
    if !have("gcc") {
        return;
    }
    let d = tmpdir("overflow");
    let src = d.join("overflow.c");
    std::fs::write(
        &src,
        "#include <malloc.h>\n#include <stdlib.h>\n\
         int main(void) { char *p = malloc(100); size_t n = malloc_usable_size(p);\n\
         p[n - 1] = 1; /* fine */ p[n] = 1; /* one past the end */ free(p); return 0; }\n",
    )
    .unwrap();
    let exe = d.join("overflow");
    let st = Command::new("gcc")
        .args(["-O0", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    let stats = d.join("stats.txt");
    let mut c = Command::new(&exe);
    c.env("KMEM_SLUB_DEBUG", "FZPU")
        .env("KMEM_MALLOC_ABORT", "0")
        .env("KMEM_MALLOC_STATS", &stats);
    let out = run(c, true);
    assert!(out.status.success());
    let text = std::fs::read_to_string(&stats).unwrap();
    assert!(
        text.contains("Right Redzone overwritten") || text.contains("Redzone overwritten"),
        "{text}"
    );
    assert!(text.contains("reports: 1 BUG"), "{text}");
    // The report is on standard error too (not only in the statistics file).
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Redzone overwritten"), "{err}");
    // By default the program stops there, as glibc stops on heap corruption.
    let mut c = Command::new(&exe);
    c.env("KMEM_SLUB_DEBUG", "FZPU");
    let out = run(c, true);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{}", out.status);
}

/// Compiles a C program given as text.
fn cc(name: &str, src: &str) -> PathBuf {
    let d = tmpdir(name);
    let c = d.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let exe = d.join(name);
    let st = Command::new("gcc")
        .args(["-O0", "-o"])
        .arg(&exe)
        .arg(&c)
        .status()
        .unwrap();
    assert!(st.success(), "gcc {name} failed");
    exe
}

/// A C double free and a use after free, under `KMEM_SLUB_DEBUG`: reported on standard error
/// (they used to reach only the statistics file) and the program aborts, as under glibc;
/// `KMEM_MALLOC_ABORT=0` reports and goes on.
#[test]
fn double_free_and_use_after_free_abort_with_a_report() {
    if !have("gcc") {
        return;
    }
    let double = cc(
        "double_free",
        "#include <stdio.h>\n#include <stdlib.h>\n\
         int main(void) { char *p = malloc(64); free(p); free(p);\n\
         puts(\"after\"); return 0; }\n",
    );
    let uaf = cc(
        "use_after_free",
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\
         int main(void) { char *p = malloc(64); free(p); memset(p, 0x41, 8);\n\
         char *q = malloc(64); puts(q == p ? \"same\" : \"other\"); return 0; }\n",
    );
    for (exe, what) in [
        (&double, "Object already free"),
        (&uaf, "Poison overwritten"),
    ] {
        let mut c = Command::new(exe);
        c.env("KMEM_SLUB_DEBUG", "FZPU");
        let out = run(c, true);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{}: {err}",
            out.status
        );
        assert!(err.contains(what), "{err}");
        assert!(
            err.contains("libkmem_malloc: heap corruption reported (above); aborting"),
            "{err}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("after"));
        // No boot log on standard error: only the report.
        assert!(!err.contains("Memory:"), "{err}");
        let mut c = Command::new(exe);
        c.env("KMEM_SLUB_DEBUG", "FZPU")
            .env("KMEM_MALLOC_ABORT", "0");
        let out = run(c, true);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {err}", out.status);
        assert!(err.contains(what), "{err}");
    }
    // SLUB's naive double-free check needs no debugging: the same report and abort.
    let out = run(Command::new(&double), true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{}: {err}",
        out.status
    );
    assert!(err.contains("Object already free"), "{err}");
}

/// A first node that cannot boot (here: its 64 GiB of address space under a 1 GiB
/// `RLIMIT_AS`) used to make every malloc return NULL without a word.
#[test]
fn a_node_that_cannot_boot_says_why() {
    if !have("gcc") {
        return;
    }
    let exe = cc(
        "noboot",
        "#include <stdio.h>\n#include <stdlib.h>\n\
         int main(void) { void *a = malloc(10), *b = malloc(100);\n\
         printf(\"%d %d\\n\", a == NULL, b == NULL); return 0; }\n",
    );
    let mut c = Command::new(&exe);
    c.env("KMEM_MALLOC_RAM_MB", "65536");
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run(c, true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 1\n", "{err}");
    assert_eq!(
        err.matches("libkmem_malloc: cannot boot the first node (65536 MiB of RAM): ")
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains("every allocation fails with ENOMEM"), "{err}");
}

#[test]
fn resident_memory_falls_after_free() {
    if !have("gcc") {
        return;
    }
    let d = tmpdir("rss");
    let src = d.join("rss.c");
    std::fs::write(
        &src,
        r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static long rss_kb(void) {
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &res) != 2) return -1;
    fclose(f);
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}
int main(void) {
    enum { N = 3000, SZ = 100000 };
    static char *p[N];
    for (int i = 0; i < N; i++) { p[i] = malloc(SZ); memset(p[i], i, SZ); }
    long full = rss_kb();
    for (int i = 0; i < N; i++) free(p[i]);
    long after = rss_kb();
    printf("%ld %ld\n", full, after);
    return 0;
}
"#,
    )
    .unwrap();
    let exe = d.join("rss");
    let st = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    let stats = d.join("stats.txt");
    let mut c = Command::new(&exe);
    c.env("KMEM_MALLOC_STATS", &stats);
    let out = run(c, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 300 MB do not fit the 64 MiB machine: it grew by memory hotplug, one machine.
    let st = std::fs::read_to_string(&stats).unwrap();
    let added: usize = st
        .lines()
        .find_map(|l| l.strip_prefix("memory hotplug: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{st}"));
    assert!(added >= 2, "{st}");
    assert!(st.contains("nodes: 1 "), "{st}");
    assert!(st.contains("reports: 0 BUG, 0 warnings"), "{st}");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<i64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let (full, after) = (v[0], v[1]);
    // 300 MB were resident; free page reporting gives most of it back.
    assert!(full > 250_000, "{text}");
    assert!(
        after < full - 150_000,
        "resident KiB before/after free: {text}"
    );
}

/// The same program under `KMEM_MALLOC_SLAB=kind`: same output as glibc, and no report.
fn compare_on(kind: &str, name: &str, make: impl Fn() -> Command) {
    let (_, _, st) = compare_stats(&format!("{name} (KMEM_MALLOC_SLAB={kind})"), || {
        let mut c = make();
        c.env("KMEM_MALLOC_SLAB", kind);
        c
    });
    assert!(
        st.contains("reports: 0 BUG, 0 warnings, 0 slab errors"),
        "{st}"
    );
    assert!(st.contains(&format!("slab={kind}")), "{st}");
    if kind == "slob" {
        // SLOB has no /proc/slabinfo; its pages count as Slab in /proc/meminfo.
        assert!(st.contains("--- /proc/slabinfo\n(unavailable)"), "{st}");
    }
}

/// python3, sqlite3 and the C semantics program under another slab allocator.
fn real_programs_on(kind: &str) {
    if have("python3") {
        let script = programs().join("alloc_heavy.py");
        compare_on(kind, "python3", || {
            let mut c = Command::new("python3");
            c.env("PYTHONMALLOC", "malloc")
                .env("PYTHONHASHSEED", "0")
                .arg(&script)
                .arg("20000");
            c
        });
    }
    if have("sqlite3") {
        let d = tmpdir(&format!("sqlite-{kind}"));
        let sql_path = d.join("w.sql");
        std::fs::write(
            &sql_path,
            std::fs::read(programs().join("workload.sql")).unwrap(),
        )
        .unwrap();
        compare_on(kind, "sqlite3", || {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("sqlite3 :memory: < '{}'", sql_path.display()));
            c
        });
    }
    if have("gcc") {
        let d = tmpdir(&format!("semantics-{kind}"));
        let exe = d.join("semantics");
        gcc("semantics.c", &exe, &[]);
        compare_on(kind, "semantics", || Command::new(&exe));
    }
}

#[test]
fn python_and_sqlite_on_slob() {
    real_programs_on("slob");
}

/// Under SLAB: python3 crashed at startup until SLAB's cache merging raised the object size
/// of the cache it merges into (`__kmem_cache_alias`), which krealloc's copy length uses.
#[test]
fn python_and_sqlite_on_slab() {
    real_programs_on("slab");
}

/// `free_sized`, `free_aligned_sized` and `sdallocx` (issue 14) free every kind of block
/// without a report (a wrong cache would be a slab error, which aborts the run).
#[test]
fn c_sized_frees() {
    if !have("gcc") {
        return;
    }
    let d = tmpdir("sized");
    let exe = d.join("sized_free");
    let st = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(programs().join("sized_free.c"))
        .arg("-ldl")
        .status()
        .unwrap();
    assert!(st.success());
    let k = run(Command::new(&exe), true);
    let out = String::from_utf8_lossy(&k.stdout);
    assert!(
        k.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&k.stderr)
    );
    assert!(out.starts_with("ok "), "{out}");
    assert!(
        k.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&k.stderr)
    );
}

/// After a program frees a working set and stops calling the allocator, the reporting thread
/// gives the memory back to the host: the resident size falls far below the peak. The
/// program polls for 5 s (a generous bound, not a timing measurement: one pass takes
/// milliseconds).
#[test]
fn rss_falls_after_a_large_free() {
    if !have("gcc") {
        return;
    }
    let d = tmpdir("free-rss");
    let exe = d.join("free_rss");
    let st = Command::new("gcc")
        .args(["-O2", "-DMIB=384", "-DSECS=5", "-o"])
        .arg(&exe)
        .arg(programs().join("free_rss.c"))
        .status()
        .unwrap();
    assert!(st.success());
    for mode in ["shuffle", "big"] {
        let mut c = Command::new(&exe);
        c.arg(mode);
        let k = run(c, true);
        assert!(k.status.success());
        let out = String::from_utf8_lossy(&k.stdout).into_owned();
        let val = |key: &str| -> u64 {
            out.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {out}"))
        };
        let peak = val("peak ");
        let last = out
            .lines()
            .filter_map(|l| l.strip_prefix("t="))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .min()
            .unwrap();
        assert!(peak > 384 << 10, "{mode}: {out}");
        assert!(
            last < peak / 2,
            "{mode}: RSS did not fall after the frees:\n{out}"
        );
    }
}

/// A program that allocates and frees small blocks (65,536 frees run a reporting pass) but
/// never frees much at once stays single-threaded: the reporting thread starts only when
/// there is much to give back. Before, the first pass started it (`Threads: 2`).
#[test]
fn small_churn_starts_no_reporting_thread() {
    if !have("gcc") {
        return;
    }
    let exe = cc(
        "churn_threads",
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\
         int main(void) { static void *p[1000]; char l[256]; int t = -1;\n\
         for (int r = 0; r < 300; r++) { for (int i = 0; i < 1000; i++) p[i] = malloc(64 + i % 512);\n\
         for (int i = 0; i < 1000; i++) free(p[i]); }\n\
         FILE *f = fopen(\"/proc/self/status\", \"r\");\n\
         while (fgets(l, sizeof l, f)) if (sscanf(l, \"Threads: %d\", &t) == 1) break;\n\
         printf(\"threads %d\\n\", t); return 0; }\n",
    );
    let k = run(Command::new(&exe), true);
    assert!(k.status.success(), "{}", String::from_utf8_lossy(&k.stderr));
    assert_eq!(String::from_utf8_lossy(&k.stdout), "threads 1\n");
}

/// Issue 19: the heap grows past its boot machine by memory hotplug, on one machine, and
/// shrinks back: `grow_shrink.c` grows to 1 GiB in 256 MiB steps, checks its data and frees
/// it step by step; the statistics show one node, blocks added and removed, and the resident
/// size after the last step is far below the peak. The blocks go back on the free page
/// reporter's timer while the program runs; at the end it calls `malloc_trim(0)` (which
/// gives back what the timer cannot: the idle main thread's per-CPU slabs and sheaves pin
/// blocks until its next slow path) and waits on its standard input while the test polls
/// the statistics it publishes (`KMEM_MALLOC_TOP`, also written after each reporter pass)
/// until the blocks show as removed (a minute at most), then lets it exit — no guess of
/// how long a timer takes on a loaded machine.
#[test]
fn heap_grows_and_shrinks_on_one_machine() {
    use std::io::{BufRead, BufReader};
    if !have("gcc") {
        return;
    }
    let d = tmpdir("grow-shrink");
    let exe = d.join("grow_shrink");
    gcc("grow_shrink.c", &exe, &[]);
    let stats = d.join("stats.txt");
    // "N blocks of 128 MiB added, M removed".
    let hotplug = |st: &str| -> Option<(u64, u64)> {
        let w: Vec<u64> = st
            .lines()
            .find_map(|l| l.strip_prefix("memory hotplug: "))?
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        Some((*w.first()?, *w.get(2)?))
    };
    let mut child = Command::new(&exe)
        .args(["1024", "256", "300", "stdin"])
        .env("LD_PRELOAD", lib())
        .env("KMEM_MALLOC_STATS", &stats)
        .env("KMEM_MALLOC_TOP", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = String::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        out += &l;
        out.push('\n');
        if l == "wait" {
            break;
        }
    }
    let top = PathBuf::from(format!("/dev/shm/kmem-malloc.{}", child.id()));
    let t0 = std::time::Instant::now();
    let mut seen = String::new();
    while t0.elapsed() < std::time::Duration::from_secs(60) {
        seen = std::fs::read_to_string(&top).unwrap_or_default();
        if hotplug(&seen).is_some_and(|(added, removed)| added >= 8 && removed + 2 >= added) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(child.stdin.take());
    for l in lines {
        out += &l.unwrap();
        out.push('\n');
    }
    let k = child.wait().unwrap();
    assert!(k.success(), "{out}\nlast published:\n{seen}");
    let rss = |kind: &str| -> Vec<u64> {
        out.lines()
            .filter_map(|l| l.strip_prefix(kind))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .collect()
    };
    let peak = *rss("grow ").iter().max().unwrap();
    let last = *rss("final ").last().unwrap();
    assert!(peak > 1000 << 10, "{out}");
    assert!(last < peak / 8, "RSS did not follow the heap down:\n{out}");
    let st = std::fs::read_to_string(&stats).unwrap();
    assert!(st.contains("nodes: 1 "), "{st}");
    let (added, removed) = hotplug(&st).unwrap_or_else(|| panic!("{st}"));
    assert!(added >= 8, "{st}");
    assert!(removed + 2 >= added, "{out}\n{st}");
    assert!(st.contains("reports: 0 BUG, 0 warnings"), "{st}");
}

/// A large request on a small, fragmented machine grows it instead of compacting: 3,000
/// pairs of a 20,000-byte block (large kmalloc) and a 3,000-byte one (slab) fill a 32 MiB
/// machine, the large blocks are freed (free memory in 32 KiB pieces between slabs) and
/// 1 MiB blocks are asked for. Before, the allocation went into direct compaction of the
/// machine's zones first, which never returned (a hang in `isolate_migratepages`); now a
/// request that does not fit without reclaim grows the machine, and direct reclaim and
/// compaction are left for a machine that cannot grow. `/proc/vmstat` in the statistics
/// shows no compaction stall.
#[test]
fn a_fragmented_machine_grows_instead_of_compacting() {
    if !have("gcc") {
        return;
    }
    let exe = cc(
        "frag_grow",
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\
         int main(void) { enum { N = 3000 }; static void *big[N], *small[N], *m[64];\n\
         for (int i = 0; i < N; i++) { big[i] = malloc(20000); memset(big[i], 1, 20000);\n\
         small[i] = malloc(3000); memset(small[i], 2, 3000); }\n\
         for (int i = 0; i < N; i++) free(big[i]);\n\
         for (int i = 0; i < 64; i++) { m[i] = malloc(1 << 20); memset(m[i], 3, 1 << 20); }\n\
         for (int i = 0; i < 64; i++) free(m[i]);\n\
         for (int i = 0; i < N; i++) free(small[i]);\n\
         puts(\"done\"); return 0; }\n",
    );
    let stats = tmpdir("frag-grow").join("stats.txt");
    let mut child = Command::new(&exe)
        .env("LD_PRELOAD", lib())
        .env("KMEM_MALLOC_RAM_MB", "32")
        .env("KMEM_MALLOC_STATS", &stats)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The hang this tests for never returns: give up after a minute.
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the program did not finish within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("done"),
        "{}: {text}",
        out.status
    );
    let st = std::fs::read_to_string(&stats).unwrap();
    assert!(st.lines().any(|l| l == "compact_stall 0"), "{st}");
    assert!(!st.contains("memory hotplug: 0 blocks"), "{st}");
}

/// `KMEM_MALLOC_KFENCE=1`: a C program writing one byte past a 64-byte buffer gets a KFENCE
/// report (out-of-bounds write through the guard page, or memory corruption of the canary
/// bytes found on free, depending on the side KFENCE placed the object) on standard error and
/// aborts; with `KMEM_MALLOC_ABORT=0` it goes on.
#[test]
fn kfence_reports_a_write_past_a_buffer() {
    if !have("gcc") {
        return;
    }
    let exe = cc(
        "kfence_oob",
        "#include <stdio.h>\n#include <stdlib.h>\n#include <unistd.h>\n\
         int main(void) { for (int i = 0; i < 200; i++) { usleep(1500);\n\
         char *p = malloc(64); p[64] = 1; /* one past the end */ free(p); }\n\
         puts(\"done\"); return 0; }\n",
    );
    let mut c = Command::new(&exe);
    c.env("KMEM_MALLOC_KFENCE", "1");
    let out = run(c, true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{}: {err}",
        out.status
    );
    assert!(
        err.contains("BUG: KFENCE: out-of-bounds write in ")
            || err.contains("BUG: KFENCE: memory corruption in "),
        "{err}"
    );
    assert!(err.contains(", size=64, cache="), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("done"));
    let mut c = Command::new(&exe);
    c.env("KMEM_MALLOC_KFENCE", "1")
        .env("KMEM_MALLOC_ABORT", "0");
    let out = run(c, true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(err.contains("BUG: KFENCE: "), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("done"));
    // Without KFENCE the same program runs to the end silently (the byte lands in the next
    // object's first byte, which SLUB does not use for a free object).
    let out = run(Command::new(&exe), true);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("KFENCE"));
}

/// `KMEM_MALLOC_KMEMLEAK=1`: the block the program loses is reported at exit in kmemleak's
/// format, the blocks reachable from its data (a global list, a global buffer) are not; a
/// `SIGUSR2` makes a report too.
#[test]
fn kmemleak_reports_a_lost_block() {
    if !have("gcc") {
        return;
    }
    let d = tmpdir("leak");
    let exe = d.join("leak");
    gcc("leak.c", &exe, &[]);
    let mut cmd = Command::new(&exe);
    cmd.env("KMEM_MALLOC_KMEMLEAK", "1");
    let o = run(cmd, true);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(out, "done\n");
    assert!(
        err.contains("kmemleak: 1 new suspected memory leaks\n"),
        "{err}"
    );
    assert_eq!(err.matches("unreferenced object 0x").count(), 1, "{err}");
    assert!(err.contains("  comm \"leak\", pid "), "{err}");
    assert!(
        err.contains("    4c 4c 4c 4c 4c 4c 4c 4c 4c 4c 4c 4c 4c 4c 4c 4c  LLLLLLLLLLLLLLLL"),
        "{err}"
    );
    assert!(err.contains("  backtrace (crc "), "{err}");
    // Its stack, walked by the unwinder through malloc: the function that lost it, in the
    // program.
    assert!(err.contains("] lose+0x"), "{err}");
    // Without the variable: no report.
    let o = run(Command::new(&exe), true);
    assert!(o.stderr.is_empty());
    // SIGUSR2: a report at the next allocator call, then the one at exit.
    let mut cmd = Command::new(&exe);
    cmd.arg("signal").env("KMEM_MALLOC_KMEMLEAK", "1");
    let o = run(cmd, true);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        err.matches("new suspected memory leaks").count(),
        2,
        "{err}"
    );
}

/// `KMEM_MALLOC_KMEMCHECK=1`: a C program reading a field of a `malloc`ed struct it never
/// wrote gets kmemcheck's report on standard error (real traps: the heap page is hidden, the
/// load faults, is decoded and checked), the `calloc`ed and written bytes do not, and the
/// program runs to the end with the same output (its stdio buffer and its `open` of a path
/// built on the heap go through the system-call traps).
#[test]
fn kmemcheck_reports_an_uninitialised_heap_read() {
    if !have("gcc") {
        return;
    }
    let exe = cc(
        "kmemcheck_uninit",
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <fcntl.h>\n\
         #include <unistd.h>\n\
         struct s { int a; int b; char pad[24]; };\n\
         int main(void) {\n\
           struct s *p = malloc(sizeof *p);\n\
           p->a = 1;\n\
           volatile int x = p->b; /* never written */\n\
           char *q = calloc(1, 64);\n\
           int y = q[10];\n\
           char *path = malloc(64); strcpy(path, \"/proc/self/stat\");\n\
           int fd = open(path, O_RDONLY); char *buf = malloc(100);\n\
           ssize_t n = read(fd, buf, 100); close(fd);\n\
           printf(\"%d %d %d %c\\n\", p->a, y, n > 0, n > 0 ? buf[0] : '?');\n\
           (void)x; free(p); free(q); free(path); free(buf); return 0; }\n",
    );
    let plain = run(Command::new(&exe), false);
    let mut c = Command::new(&exe);
    c.env("KMEM_MALLOC_KMEMCHECK", "1");
    let out = run(c, true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&plain.stdout)
    );
    assert_eq!(
        err.matches("WARNING: kmemcheck: Caught 32-bit read from uninitialized memory (")
            .count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("\n i i i i u u u u u u u u u u u u u u u u u u u u u u u u u u u u\n"),
        "{err}"
    );
    assert!(err.contains("\n         ^\n"), "{err}");
    // Without kmemcheck: nothing.
    let out = run(Command::new(&exe), true);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("kmemcheck"));
}

/// The interpreter itself, not a wrapper script (pyenv's `python3` is a bash script, and
/// bash under kmemcheck's traps would take most of the run).
fn python_binary() -> Option<PathBuf> {
    let o = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    p.is_file().then_some(p)
}

/// The `kmemcheck:` line of the statistics: (reports, traps).
fn kmemcheck_counts(name: &str, st: &str) -> (u64, u64) {
    let line = st
        .lines()
        .find(|l| l.starts_with("kmemcheck: "))
        .unwrap_or_else(|| panic!("{name}: no kmemcheck line:\n{st}"));
    let num = |word: &str| -> u64 {
        let mut it = line.split([' ', ',']).filter(|w| !w.is_empty());
        let mut prev = "";
        for w in it.by_ref() {
            if w == word {
                return prev.parse().unwrap_or_else(|_| panic!("{line}"));
            }
            prev = w;
        }
        panic!("{name}: no {word} in {line}")
    };
    (num("reports"), num("traps"))
}

/// `KMEM_MALLOC_KMEMCHECK=1` on python3, sqlite3 and git, small workloads (every heap access
/// traps: about 25 µs each): the same output as a plain run, every heap page hidden and
/// trapping, and the reports counted against docs/KMEMCHECK.md's table ("kmemcheck on real
/// programs"): none on these runs. A report here is a new kind to explain there; each one is
/// on standard error with its instruction.
#[test]
fn real_programs_with_kmemcheck() {
    let check = |name: &str, o: &Output, st: &str, most: u64| {
        let err = String::from_utf8_lossy(&o.stderr);
        let (reports, traps) = kmemcheck_counts(name, st);
        eprintln!("{name}: {reports} kmemcheck reports, {traps} traps");
        assert!(traps > 1000, "{name}: the heap did not trap:\n{st}");
        assert_eq!(
            err.matches("WARNING: kmemcheck: Caught ").count() as u64,
            reports,
            "{name}:\n{err}"
        );
        assert!(reports <= most, "{name}: {reports} reports:\n{err}");
    };
    if let Some(py) = python_binary() {
        let script = programs().join("alloc_heavy.py");
        // -S: no site module (its imports of site-packages would multiply the run time).
        let (_, kmem, st) = compare_stats("python3 (KMEM_MALLOC_KMEMCHECK=1)", || {
            let mut c = Command::new(&py);
            c.env("PYTHONMALLOC", "malloc")
                .env("PYTHONHASHSEED", "0")
                .env("KMEM_MALLOC_KMEMCHECK", "1")
                .args(["-S", "-E"])
                .arg(&script)
                .arg("20");
            c
        });
        check("python3", &kmem, &st, 0);
    } else {
        eprintln!("note: python3 is not installed; test skipped");
    }
    if have("sqlite3") {
        let d = tmpdir("sqlite-kmemcheck");
        let sql = d.join("w.sql");
        std::fs::write(
            &sql,
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT);\n\
             WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < 50)\n\
             INSERT INTO t(a, b) SELECT (x * 7919) % 1009, printf('row-%04d', x) FROM seq;\n\
             CREATE INDEX t_b ON t(b);\n\
             SELECT count(*), sum(a), min(b), max(b) FROM t;\n\
             SELECT b FROM t WHERE b LIKE 'row-001%' ORDER BY a;\n",
        )
        .unwrap();
        let (_, kmem, st) = compare_stats("sqlite3 (KMEM_MALLOC_KMEMCHECK=1)", || {
            let mut c = Command::new("sqlite3");
            c.env("KMEM_MALLOC_KMEMCHECK", "1")
                .arg(":memory:")
                .stdin(std::fs::File::open(&sql).unwrap());
            c
        });
        check("sqlite3", &kmem, &st, 0);
    }
    if have("git") {
        // A repository made plainly; `git log --stat` (object reads, zlib, diffs) under kmem.
        let d = tmpdir("git-kmemcheck");
        let script = r#"
set -e
git init -q -b main repo && cd repo
for i in $(seq 1 12); do seq 1 $((i * 20)) > f$i.txt; done
git add -A && git commit -q -m first
echo x >> f3.txt && git rm -q f5.txt && git commit -q -am second
"#;
        let git_env = |c: &mut Command| {
            c.env("GIT_AUTHOR_NAME", "kmem")
                .env("GIT_AUTHOR_EMAIL", "kmem@example.org")
                .env("GIT_COMMITTER_NAME", "kmem")
                .env("GIT_COMMITTER_EMAIL", "kmem@example.org")
                .env("GIT_AUTHOR_DATE", "2025-01-01T00:00:00Z")
                .env("GIT_COMMITTER_DATE", "2025-01-01T00:00:00Z")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("HOME", &d);
        };
        let mut c = Command::new("sh");
        git_env(&mut c);
        c.current_dir(&d).arg("-c").arg(script);
        let o = run(c, false);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (_, kmem, st) = compare_stats("git (KMEM_MALLOC_KMEMCHECK=1)", || {
            let mut c = Command::new("git");
            git_env(&mut c);
            c.env("KMEM_MALLOC_KMEMCHECK", "1")
                .current_dir(d.join("repo"))
                .args(["log", "--stat", "--format=%H %s"]);
            c
        });
        check("git", &kmem, &st, 0);
    }
}

/// The heap's boot leaves the program's stack as it found it: `Machine::boot` builds the
/// machine's layers by value (about 150 KiB of frames), and the main thread's stack never
/// shrinks, so booting on it left every program with a 200 KiB resident stack; the boot now
/// runs on a stack mapped for it and unmapped after (`run_on_temporary_stack`). Before:
/// "stack 204" (kB of `[stack]` in /proc/self/smaps after the first `malloc`).
#[test]
fn boot_leaves_the_program_stack_small() {
    if !have("gcc") {
        return;
    }
    let exe = cc(
        "boot_stack",
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\
         int main(void) { char l[512]; int in = 0, kb = -1; free(malloc(100));\n\
         FILE *f = fopen(\"/proc/self/smaps\", \"r\");\n\
         while (fgets(l, sizeof l, f)) { if (strstr(l, \"[stack]\")) in = 1;\n\
         else if (in && sscanf(l, \"Rss: %d kB\", &kb) == 1) break; }\n\
         printf(\"stack %d\\n\", kb); return 0; }\n",
    );
    let k = run(Command::new(&exe), true);
    assert!(k.status.success(), "{}", String::from_utf8_lossy(&k.stderr));
    let out = String::from_utf8_lossy(&k.stdout);
    let kb: i64 = out
        .trim()
        .strip_prefix("stack ")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!((0..=64).contains(&kb), "{out}");
}
