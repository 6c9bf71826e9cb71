//! Issue 15's "Done when", scripted in the shell and run through the real `kmem` binary: a
//! private mapping written and read back; `/proc/PID/maps` lines in Linux's format; after
//! `fork` a write in the child does not change the parent and vmstat's pgfault grows; after
//! `munmap` an access prints `segfault at` and the task is gone.

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

/// The value of `name` in the `n`-th (0-based) vmstat dump of `out`.
fn vmstat(out: &str, name: &str, n: usize) -> u64 {
    out.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .nth(n)
        .unwrap_or_else(|| panic!("no {name} #{n} in {out}"))
        .parse()
        .unwrap()
}

/// `/proc/PID/maps` lines: `start-end perms offset dev inode [path]`, as
/// fs/proc/task_mmu.c's show_map_vma prints them.
fn maps_line_ok(l: &str) -> bool {
    let f: Vec<&str> = l.split_whitespace().collect();
    let range_ok = f
        .first()
        .and_then(|r| r.split_once('-'))
        .is_some_and(|(s, e)| {
            s.len() >= 8
                && e.len() >= 8
                && s.chars().chain(e.chars()).all(|c| c.is_ascii_hexdigit())
                && u64::from_str_radix(s, 16).unwrap() < u64::from_str_radix(e, 16).unwrap()
        });
    range_ok
        && f.len() >= 5
        && f[1].len() == 4
        && f[1]
            .chars()
            .zip("rwxp".chars())
            .all(|(c, w)| c == w || c == '-' || (w == 'p' && c == 's'))
        && f[2].len() == 8
        && f[3] == "00:00"
        && f[4] == "0"
}

const SCENARIO: &str = "\
p = spawn(\"scenario\")
n = 64
a = mmap(p, 0, n * 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)
# Write every page, then read every page back.
for (i = 0; i < n; i++) {
    upoke64(p, a + i * 4096, i * 3 + 1)
    upoke8(p, a + i * 4096 + 4095, i)
}
bad = 0
for (i = 0; i < n; i++) {
    if (upeek64(p, a + i * 4096) != i * 3 + 1 || upeek8(p, a + i * 4096 + 4095) != i) {
        bad++
    }
}
bad
echo maps
cat /proc/$p/maps
echo before fork
cat /proc/vmstat
c = fork(p)
for (i = 0; i < n; i++) { upoke64(c, a + i * 4096, 7) }
changed = 0
for (i = 0; i < n; i++) {
    if (upeek64(p, a + i * 4096) != i * 3 + 1) { changed++ }
    if (upeek64(c, a + i * 4096) != 7) { changed++ }
}
changed
echo after fork
cat /proc/vmstat
munmap(p, a, n * 4096)
upeek8(p, a)
kill(p, 0)
upeek64(c, a)
kill(c, SIGKILL)
";

#[test]
fn process_scenario() {
    let o = kmem(&["--mem", "128M", "shell"], SCENARIO);
    let out = text(&o.stdout);
    assert_eq!(text(&o.stderr), "", "{out}");
    assert!(o.status.success(), "{out}");
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {out}"))
            .to_string()
    };
    assert_eq!(line("p = "), "p = 1");
    assert!(line("a = 0x7f").len() > 10, "{out}");
    // Written and read back: no page differs.
    let after_bad: Vec<&str> = out.lines().skip_while(|l| *l != "bad = 0").collect();
    assert_eq!(after_bad[1], "0", "{out}");
    // /proc/PID/maps: the mapping and the stack, in Linux's format.
    let maps: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "maps")
        .skip(1)
        .take_while(|l| *l != "before fork")
        .collect();
    assert_eq!(maps.len(), 2, "{out}");
    assert!(maps.iter().all(|l| maps_line_ok(l)), "{maps:?}");
    let a = line("a = 0x");
    let a = u64::from_str_radix(a.trim_start_matches("a = 0x"), 16).unwrap();
    assert_eq!(
        maps[0],
        format!("{a:x}-{:x} rw-p 00000000 00:00 0 ", a + 64 * 4096)
    );
    assert!(maps[1].ends_with("rw-p 00000000 00:00 0                          [stack]"));
    // fork: the child's writes do not reach the parent; every write faulted (COW).
    assert_eq!(line("c = "), "c = 2");
    let after_changed: Vec<&str> = out.lines().skip_while(|l| *l != "changed = 0").collect();
    assert_eq!(after_changed[1], "0", "{out}");
    let (f0, f1) = (vmstat(&out, "pgfault", 0), vmstat(&out, "pgfault", 1));
    assert!(f0 >= 64, "{out}");
    assert!(f1 >= f0 + 64, "pgfault {f0} -> {f1}");
    // munmap, then an access: the segfault line, and the task is gone.
    let seg = line("scenario[1]: segfault at ");
    assert!(
        seg.starts_with(&format!("scenario[1]: segfault at {a:x} ip "))
            && seg.ends_with(" error 4"),
        "{seg}"
    );
    let tail: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.contains("segfault at"))
        .collect();
    assert_eq!(
        tail[1],
        "Code: Unable to access opcode bytes at 0x555555554fd6."
    );
    assert_eq!(tail[2], "-ESRCH", "kill(p, 0) of a dead task: {out}");
    // The child is untouched by the parent's death.
    assert_eq!(tail[3], "7");
    assert_eq!(tail[4], "0");
    assert_eq!(tail.len(), 5, "{out}");
}

/// The same statements on i386 (2-level page tables, a 3 GiB user space).
#[test]
fn process_scenario_i386() {
    let o = kmem(&["--arch", "i386", "--mem", "128M", "shell"], SCENARIO);
    let out = text(&o.stdout);
    assert_eq!(text(&o.stderr), "", "{out}");
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("\nbad = 0\n0\n") && out.contains("\nchanged = 0\n0\n"),
        "{out}"
    );
    assert!(out.contains("scenario[1]: segfault at "), "{out}");
    let maps: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "maps")
        .skip(1)
        .take_while(|l| *l != "before fork")
        .collect();
    assert!(
        maps.iter().all(|l| maps_line_ok(l) && l.len() > 30),
        "{maps:?}"
    );
    assert!(
        vmstat(&out, "pgfault", 1) >= vmstat(&out, "pgfault", 0) + 64,
        "{out}"
    );
}

/// Allocate until failure: a task maps and touches 1 MiB chunks until mmap fails or the task
/// is killed; the shell goes on, and every page comes back when the task is gone.
#[test]
fn touching_memory_until_the_task_dies_gives_it_back() {
    let script = "\
cat /proc/meminfo
p = spawn(\"hog\")
chunks = 0
while (chunks < 1000) {
    a = mmap(p, 0, 1 << 20, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)
    if (a < 0) { break }
    for (off = 0; off < 1 << 20; off += 4096) { upoke8(p, a + off, 1) }
    chunks++
}
echo chunks $chunks
kill(p, SIGKILL)
chunks > 0
drain_local_pages()
cat /proc/meminfo
";
    // One CPU, so that draining the local per-CPU lists drains them all.
    let o = kmem(&["--mem", "64M", "--cpus", "1", "shell"], script);
    let out = text(&o.stdout);
    assert_eq!(text(&o.stderr), "", "{out}");
    let free = |n: usize| {
        out.lines()
            .filter_map(|l| l.strip_prefix("MemFree:"))
            .nth(n)
            .unwrap()
            .trim()
            .trim_end_matches(" kB")
            .parse::<u64>()
            .unwrap()
    };
    // The task died of the OOM path inside the loop (the statement and the loop were
    // abandoned) or mmap failed; either way the shell went on.
    assert!(
        out.contains("Out of memory") || out.contains("-ENOMEM"),
        "{out}"
    );
    assert!(out.contains("\n1\nMemTotal:"), "{out}");
    // Everything but the zero page (kept for the machine's life, as Linux's is part of the
    // kernel image) and a slab page or so comes back.
    let (before, after) = (free(0), free(1));
    assert!(after + 16 >= before, "MemFree {before} kB -> {after} kB");
}

/// Issue 15's swap "Done when" from the shell: on `--mem 64M` with a 256 MiB swap file, a
/// task fills a 128 MiB mapping and reads every page back; vmstat shows pswpout and pswpin,
/// /proc/swaps the use; swapoff takes the area away again.
#[test]
fn swap_session() {
    let dir = std::env::temp_dir().join(format!("kmem-shell-swap-{}", std::process::id()));
    let path = dir.to_str().unwrap();
    let script = format!(
        "\
swapon(\"{path}\", 256 << 20)
p = spawn(\"filler\")
n = 128 << 20
a = mmap(p, 0, n, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)
for (off = 0; off < n; off += 4096) {{ upoke64(p, a + off, off * 7 + 1) }}
bad = 0
for (off = 0; off < n; off += 4096) {{ if (upeek64(p, a + off) != off * 7 + 1) {{ bad++ }} }}
bad
cat /proc/swaps
cat /proc/vmstat
kill(p, SIGKILL)
swapoff(\"{path}\")
cat /proc/swaps
swapoff(\"{path}\")
"
    );
    let o = kmem(&["--mem", "64M", "shell"], &script);
    let _ = std::fs::remove_file(&dir);
    let out = text(&o.stdout);
    assert_eq!(text(&o.stderr), "", "{out}");
    assert!(o.status.success(), "{out}");
    assert!(out.starts_with("Adding 262140k swap on "), "{out}");
    assert!(out.contains("\nbad = 0\n0\n"), "{out}");
    let used: u64 = out
        .lines()
        .find(|l| l.starts_with(path))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap()
        .parse()
        .unwrap();
    assert!(used > 64 << 10, "Used {used} kB: {out}");
    assert!(
        vmstat(&out, "pswpout", 0) > 0 && vmstat(&out, "pswpin", 0) > 0,
        "{out}"
    );
    // swapoff: 0, the area is gone from /proc/swaps, a second swapoff is EINVAL.
    assert!(
        out.ends_with("0\nFilename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n-EINVAL\n"),
        "{out}"
    );
}

/// Two tasks see each other's writes through SysV shm and through a shared memfd mapping
/// (the memfd one inherited across fork); after every task and id is gone, Shmem is 0.
#[test]
fn shared_memory_between_tasks() {
    let script = "\
p = spawn(\"writer\")
q = spawn(\"reader\")
id = shmget(IPC_PRIVATE, 4 * 4096, IPC_CREAT|0600)
x = shmat(p, id, 0, 0)
y = shmat(q, id, 0, 0)
for (i = 0; i < 4; i++) { upoke32(p, x + i * 4096, 0x1000 + i) }
seen = 0
for (i = 0; i < 4; i++) { seen += upeek32(q, y + i * 4096) == 0x1000 + i }
seen
upoke8(q, y + 5, 0x77)
upeek8(p, x + 5)
fd = memfd_create(p, \"ring\")
ftruncate(p, fd, 2 * 4096)
m = mmap(p, 0, 2 * 4096, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)
c = fork(p)
upoke64(c, m + 4096, 0xfeedface)
upeek64(p, m + 4096) == 0xfeedface
upoke64(p, m, 42)
upeek64(c, m)
cat /proc/$p/maps
shmdt(p, x)
shmdt(q, y)
shmctl(id, IPC_RMID)
kill(p, SIGKILL)
kill(q, SIGKILL)
kill(c, SIGKILL)
cat /proc/meminfo
";
    let o = kmem(&["shell"], script);
    let out = text(&o.stdout);
    assert_eq!(text(&o.stderr), "", "{out}");
    assert!(o.status.success(), "{out}");
    assert!(out.contains("\nseen = 0\n4\n119\n"), "{out}");
    assert!(out.contains("\nc = 3\n1\n42\n"), "{out}");
    let maps: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" rw-s ") || l.contains(" rw-p "))
        .collect();
    assert!(
        maps.iter().any(|l| l.ends_with("/memfd:ring (deleted)")),
        "{maps:?}"
    );
    assert!(
        maps.iter().any(|l| l.ends_with("/SYSV00000000 (deleted)")),
        "{maps:?}"
    );
    assert!(out.contains("\nShmem:                 0 kB\n"), "{out}");
    assert!(out.contains("0\n0\n0\n0\n0\n0\nMemTotal:"), "{out}");
}
