//! `kmem top`: a live view of slab caches, free memory per zone and order, watermarks and
//! event rates, in slabtop's spirit. Sources: a simulated machine replaying a trace, a
//! process using libkmem_malloc.so (its published statistics), or the host's own /proc.

#![forbid(unsafe_code)]

pub mod data;
mod ui;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use data::{Sample, SortKey, Timed};
use kmem::platform::Platform;
use kmem::Machine;

use crate::kernel::BootOptions;

/// Where the numbers come from.
pub enum Source {
    /// The host's /proc (or another directory laid out like it, for tests).
    Host(PathBuf),
    /// A process using libkmem_malloc.so with `KMEM_MALLOC_TOP=1`.
    Pid(u32),
    /// A replay running on its own thread.
    Replay(ReplaySource),
}

/// A replay on a thread, sending samples.
pub struct ReplaySource {
    rx: mpsc::Receiver<Sample>,
    last: Option<Sample>,
    name: String,
}

/// Reads the /proc files of a simulated machine into a sample.
pub fn machine_sample<P: Platform>(m: &Machine<P>) -> Sample {
    let read = |p: &str| {
        let mut s = String::new();
        let _ = m.proc_read(p, &mut s);
        s
    };
    Sample {
        slabinfo: Ok(read("/proc/slabinfo")),
        buddyinfo: read("/proc/buddyinfo"),
        zoneinfo: read("/proc/zoneinfo"),
        ..Sample::default()
    }
}

/// The host's sample: /proc/slabinfo needs root on most systems; that is said, not fatal.
pub fn host_sample(dir: &Path) -> Result<Sample, String> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f));
    let buddyinfo =
        read("buddyinfo").map_err(|e| format!("{}: {e}", dir.join("buddyinfo").display()))?;
    let zoneinfo =
        read("zoneinfo").map_err(|e| format!("{}: {e}", dir.join("zoneinfo").display()))?;
    let slabinfo = read("slabinfo").map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!(
                "{}: permission denied (slab caches need root: sudo kmem top --host)",
                dir.join("slabinfo").display()
            )
        } else {
            format!("{}: {e}", dir.join("slabinfo").display())
        }
    });
    let vmstat = read("vmstat").unwrap_or_default();
    let mut c = [None, None, None, None];
    let mut add = |i: usize, v: u64| *c[i].get_or_insert(0) += v;
    for l in vmstat.lines() {
        let Some((k, v)) = l.split_once(' ') else {
            continue;
        };
        let v: u64 = v.trim().parse().unwrap_or(0);
        match k {
            _ if k.starts_with("pgalloc_") => add(0, v),
            "pgfree" => add(1, v),
            "pgfault" => add(2, v),
            "pswpin" | "pswpout" => add(3, v),
            _ => {}
        }
    }
    Ok(Sample {
        slabinfo,
        buddyinfo,
        zoneinfo,
        counters: c,
        ..Sample::default()
    })
}

/// Splits the text libkmem_malloc.so publishes (its statistics dump: `--- /proc/...`
/// sections per node; the first node is shown).
pub fn pid_sample(pid: u32) -> Result<Sample, String> {
    let path = format!("/dev/shm/kmem-malloc.{pid}");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{path}: no statistics: is process {pid} running with \
                 LD_PRELOAD=libkmem_malloc.so and KMEM_MALLOC_TOP=1?"
            )
        } else {
            format!("{path}: {e}")
        }
    })?;
    let mut s = Sample::default();
    let mut cur: Option<&str> = None;
    let (mut slab, mut buddy, mut zone) = (String::new(), String::new(), String::new());
    let mut node = 0;
    for l in text.lines() {
        if l.starts_with("=== node ") {
            node += 1;
            cur = None;
            continue;
        }
        if node > 1 {
            break;
        }
        if let Some(f) = l.strip_prefix("--- ") {
            cur = Some(match f {
                "/proc/slabinfo" => "slab",
                "/proc/buddyinfo" => "buddy",
                "/proc/zoneinfo" => "zone",
                _ => "",
            });
            continue;
        }
        let dst = match cur {
            Some("slab") => &mut slab,
            Some("buddy") => &mut buddy,
            Some("zone") => &mut zone,
            _ => continue,
        };
        dst.push_str(l);
        dst.push('\n');
    }
    s.slabinfo = Ok(slab);
    s.buddyinfo = buddy;
    s.zoneinfo = zone;
    // Objects in use, summed, as an activity counter: allocs/s is its growth.
    Ok(s)
}

impl ReplaySource {
    /// Starts replaying `trace` on a machine booted with `boot`, `speed` events per second
    /// (0: as fast as possible), sending a sample about every `interval`.
    ///
    /// # Errors
    /// A trace that cannot be read.
    pub fn start(
        boot: &BootOptions,
        trace_path: &Path,
        speed: f64,
        interval: Duration,
    ) -> Result<ReplaySource, String> {
        let (trace, _) = crate::replay::load(trace_path)?;
        let opts = crate::replay::options(boot, &[]);
        let (tx, rx) = mpsc::sync_channel::<Sample>(2);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let name = format!("replay of {}", trace_path.display());
        // The machine lives on the replay thread (a replay platform is driven by the thread
        // that created it).
        std::thread::spawn(move || {
            let mut r = match kmem_replay::Replayer::boot(&opts) {
                Ok(r) => {
                    let _ = ready_tx.send(Ok(()));
                    r
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let total = trace.events.len();
            let t0 = Instant::now();
            let mut last_send = Instant::now() - interval;
            let (mut allocs, mut frees, mut seen) = (0u64, 0u64, 0usize);
            let every = 256;
            let mut observe = |done: usize, rp: &kmem_replay::Replayer| {
                for e in &trace.events[seen..done] {
                    if e.kind.is_alloc() {
                        allocs += 1;
                    } else {
                        frees += 1;
                    }
                }
                seen = done;
                if speed > 0.0 {
                    let due = Duration::from_secs_f64(done as f64 / speed);
                    if let Some(wait) = due.checked_sub(t0.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                if last_send.elapsed() >= interval || done == total {
                    last_send = Instant::now();
                    let mut s = machine_sample(rp.machine());
                    s.counters = [Some(allocs), Some(frees), None, None];
                    s.progress = Some((done, total));
                    // A full channel means the view is behind: drop this sample. A closed one
                    // means the view quit: stop.
                    if let Err(mpsc::TrySendError::Disconnected(_)) = tx.try_send(s) {
                        return false;
                    }
                }
                true
            };
            r.replay_observed(&trace, &mut |_, _| {}, every, &mut observe);
            // Keep the final machine alive for the view: it may still show it.
            let _ = tx.send(machine_sample_end(&r, allocs, frees, total));
        });
        ready_rx
            .recv()
            .map_err(|_| "the replay thread ended".to_string())??;
        Ok(ReplaySource {
            rx,
            last: None,
            name,
        })
    }

    /// Runs the shell script `path` on a machine booted with `boot`, `speed` statements per
    /// second (0: as fast as possible), sending a sample about every `interval` and at the
    /// end. The script's output is not shown (the view has the screen); its errors are
    /// counted in a note.
    ///
    /// # Errors
    /// A script that cannot be read or a machine that cannot boot.
    pub fn script(
        boot: &BootOptions,
        path: &Path,
        speed: f64,
        interval: Duration,
    ) -> Result<ReplaySource, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (tx, rx) = mpsc::sync_channel::<Sample>(2);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let name = format!("shell script {}", path.display());
        let src = path.display().to_string();
        let boot = boot.clone();
        std::thread::spawn(move || {
            let k = match crate::kernel::Kernel::boot(&boot) {
                Ok(k) => {
                    let _ = ready_tx.send(Ok(()));
                    k
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let mut sh = crate::shell::Shell::new(k);
            let lines: Vec<&str> = text.lines().collect();
            let total = lines.len();
            let t0 = Instant::now();
            let mut last_send = Instant::now() - interval;
            let (mut out, mut err) = (std::io::sink(), Vec::new());
            let mut chunker = crate::shell::block::Chunker::default();
            for (i, l) in lines.iter().enumerate() {
                if sh.quit {
                    break;
                }
                sh.feed(&mut chunker, l, i + 1, &src, &mut out, &mut err);
                if speed > 0.0 {
                    let due = Duration::from_secs_f64((i + 1) as f64 / speed);
                    if let Some(wait) = due.checked_sub(t0.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                if last_send.elapsed() >= interval {
                    last_send = Instant::now();
                    let mut s = machine_sample(&sh.k.m);
                    s.progress = Some((i + 1, total));
                    s.progress_unit = "script lines";
                    if let Err(mpsc::TrySendError::Disconnected(_)) = tx.try_send(s) {
                        return;
                    }
                }
            }
            if let Some(c) = chunker.finish(&crate::shell::is_command) {
                let origin = crate::shell::Origin {
                    source: Some(&src),
                    line: c.first_line,
                    indent: 0,
                };
                sh.run_chunk(&c.text, &c.parsed, origin, &mut out, &mut err);
            }
            let mut s = machine_sample(&sh.k.m);
            s.progress = Some((total, total));
            s.progress_unit = "script lines";
            let _ = tx.send(s);
        });
        ready_rx
            .recv()
            .map_err(|_| "the script thread ended".to_string())??;
        Ok(ReplaySource {
            rx,
            last: None,
            name,
        })
    }

    /// The newest sample, waiting for the first; `None` when the replay is over and no new
    /// sample came.
    fn poll(&mut self, wait: bool) -> Option<Sample> {
        let mut got = None;
        if wait && self.last.is_none() {
            got = self.rx.recv().ok();
        }
        while let Ok(s) = self.rx.try_recv() {
            got = Some(s);
        }
        if let Some(s) = &got {
            self.last = Some(s.clone());
        }
        got
    }

    /// Waits until the replay ends and returns its last sample.
    fn finish(&mut self) -> Option<Sample> {
        while let Ok(s) = self.rx.recv() {
            self.last = Some(s);
        }
        self.last.clone()
    }
}

fn machine_sample_end(r: &kmem_replay::Replayer, allocs: u64, frees: u64, total: usize) -> Sample {
    let mut s = machine_sample(r.machine());
    s.counters = [Some(allocs), Some(frees), None, None];
    s.progress = Some((total, total));
    s
}

impl Source {
    /// What the title says.
    pub fn name(&self) -> String {
        match self {
            Source::Host(d) if d == Path::new("/proc") => "this machine's kernel (/proc)".into(),
            Source::Host(d) => format!("host files in {}", d.display()),
            Source::Pid(p) => format!("process {p} (libkmem_malloc.so)"),
            Source::Replay(r) => r.name.clone(),
        }
    }

    /// A new sample (`None`: nothing new).
    pub fn sample(&mut self) -> Result<Option<Sample>, String> {
        match self {
            Source::Host(d) => host_sample(d).map(Some),
            Source::Pid(p) => pid_sample(*p).map(Some),
            Source::Replay(r) => Ok(r.poll(true)),
        }
    }
}

/// `kmem top --once`: one frame as text. A replay runs to its end first; the host and a
/// process are sampled twice, `interval` apart, for the rates.
///
/// # Errors
/// The source's message.
pub fn once(mut src: Source, interval: Duration) -> Result<String, String> {
    let first = match &mut src {
        Source::Replay(_) => None,
        _ => src.sample()?.map(|s| Timed {
            s,
            t: Instant::now(),
        }),
    };
    let now = match &mut src {
        Source::Replay(r) => {
            let t0 = Instant::now();
            let s = r.finish().ok_or("the replay sent nothing")?;
            // Rates over the whole replay.
            let zero = Timed {
                s: Sample {
                    counters: [Some(0), Some(0), None, None],
                    ..Sample::default()
                },
                t: t0,
            };
            let now = Timed {
                s,
                t: Instant::now(),
            };
            let f = data::frame(&src.name(), &now, Some(&zero), SortKey::Size, "");
            return Ok(data::text(&f, 20));
        }
        _ => {
            std::thread::sleep(interval);
            Timed {
                s: src.sample()?.ok_or("no sample")?,
                t: Instant::now(),
            }
        }
    };
    let f = data::frame(&src.name(), &now, first.as_ref(), SortKey::Size, "");
    Ok(data::text(&f, 20))
}

/// The interactive view (until `q`).
///
/// # Errors
/// A terminal or source error.
pub fn interactive(src: Source, interval: Duration) -> Result<(), String> {
    ui::run(src, interval)
}
