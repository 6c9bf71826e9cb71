//! `kmem`: boot a simulated machine running kmem, drive it from a shell, read its /proc files.
//!
//! ```text
//! kmem [--arch x86_64|i386] [--mem SIZE] [--cpus N] [--cmdline '…'] [--slub-debug[=F,Z,P,U,T]]
//!      [boot | cat PATH… | layout | shell [FILE] | demo | replay TRACE]
//! ```
//!
//! Without a subcommand it runs the demo. See `crates/kmem-cli/README.md` for the shell
//! language and the exit statuses.

mod complete;
mod crash;
mod demo;
mod html;
mod interrupt;
mod kernel;
mod layout;
mod map;
mod replay;
mod shell;
mod top;

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kmem::arch::Arch;
use kmem::BootParams;

use kernel::{BootOptions, Kernel};

/// Exit status for a failed run (a shell error, or a BUG/WARNING in non-interactive mode).
const EXIT_FAILURE: u8 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "kmem",
    version,
    about = "The Linux kernel memory subsystem, rebuilt in Rust, on a simulated machine",
    long_about = "Boots a simulated machine running kmem (memblock, the buddy allocator, …) \
                  and lets you drive it: print its boot log and /proc files, or call the \
                  kernel API from a C-like shell. With no command, runs a short demo."
)]
struct Cli {
    /// Architecture of the simulated machine: x86_64 or i386.
    #[arg(long, global = true, default_value = "x86_64", value_parser = parse_arch)]
    arch: Arch,
    /// RAM size, with a K, M, G or T suffix.
    #[arg(long, global = true, default_value = "1G", value_parser = kernel::parse_size)]
    mem: u64,
    /// The most RAM the machine may grow to by memory hotplug (the shell's `add_memory`), as
    /// QEMU's `-m SIZE,maxmem=MAX`; with a K, M, G or T suffix. Default: no growth.
    #[arg(long, global = true, value_parser = kernel::parse_size)]
    maxmem: Option<u64>,
    /// NUMA nodes: RAM split equally between N nodes (as `numa=fake=N`), CPUs round-robin.
    #[arg(long, global = true, value_parser = clap::value_parser!(u8).range(1..=8))]
    numa: Option<u8>,
    /// NUMA nodes by their RAM, e.g. `1G,3G` (sizes with K, M, G or T; the last node takes
    /// the rest of RAM).
    #[arg(long = "numa-mem", global = true, value_parser = kernel::parse_size_list)]
    numa_mem: Option<kernel::SizeList>,
    /// NUMA distances, row by row (`10,20,20,10`); default: 10 local, 20 remote.
    #[arg(long = "numa-distance", global = true, value_parser = kernel::parse_distances)]
    numa_distance: Option<kernel::Distances>,
    /// NUMA nodes whose memory the firmware marks hot-pluggable (as ACPI SRAT's flag), e.g.
    /// `1`; with `--cmdline movable_node` their memory is ZONE_MOVABLE at boot.
    #[arg(long = "numa-hotplug", global = true, value_delimiter = ',')]
    numa_hotplug: Vec<u32>,
    /// Online CPUs.
    #[arg(long, global = true, default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=kmem_hosted::NR_CPUS as i64))]
    cpus: u16,
    /// The slab allocator, passed on as the kernel's `slab=` option: SLUB, SLOB, or SLAB (until
    /// SLAB is built the kernel says so and uses SLUB).
    #[arg(long, global = true, value_enum, default_value_t = SlabKind::Slub)]
    slab: SlabKind,
    /// SLUB debugging, as the kernel's slub_debug= option (e.g. F,Z,P,U,T or FZ,kmalloc-64).
    #[arg(long = "slub-debug", global = true, require_equals = true, num_args = 0..=1,
          default_missing_value = "", value_name = "FLAGS")]
    slub_debug: Option<String>,
    /// Extra kernel command line (quiet, loglevel=N, …).
    #[arg(long, global = true, default_value = "")]
    cmdline: String,
    /// Seed of the machine's random numbers (sessions repeat exactly for a given seed).
    #[arg(long, global = true, default_value_t = 0)]
    seed: u64,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Boots and prints the boot log (as dmesg shows it).
    Boot,
    /// Boots quietly and prints the named files (/proc/buddyinfo, /proc/zoneinfo, …).
    Cat {
        /// Files to print; the /proc/ prefix may be left out.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Prints the machine's memory layout (virtual and physical).
    Layout,
    /// Runs shell statements from FILE or standard input (interactive on a terminal).
    Shell {
        /// A script; standard input when absent or `-`.
        #[arg(conflicts_with = "command")]
        file: Option<PathBuf>,
        /// Run these statements instead (like `sh -c`; `;` or newlines separate them).
        #[arg(short = 'c', long, value_name = "STATEMENTS")]
        command: Option<String>,
        /// Print each input line after a `kmem> ` prompt, so the output reads as a transcript.
        #[arg(short = 'x', long)]
        echo: bool,
    },
    /// The guided demo (the default).
    Demo,
    /// Replays a real Linux kernel allocation trace (ftrace kmem events; text or .xz) and
    /// reports how kmem followed it.
    Replay {
        /// The trace: the text of /sys/kernel/tracing/trace, plain or xz-compressed.
        trace: PathBuf,
        /// /proc files to print after the replay (repeatable), e.g. /proc/slabinfo.
        #[arg(long = "cat", value_name = "PATH")]
        cat: Vec<String>,
        /// Print the report as JSON.
        #[arg(long, conflicts_with = "report")]
        json: bool,
        /// Write a self-contained HTML report with plots to FILE instead of the text report.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
    },
    /// Draws the machine's physical memory, one cell per page (per pageblock above 1 GiB),
    /// coloured by owner, to SVG and/or PNG files (by their extension).
    Map {
        /// Output files: NAME.svg, NAME.png.
        #[arg(required = true)]
        outputs: Vec<PathBuf>,
        /// Replay this trace first (see `kmem replay`).
        #[arg(long, value_name = "TRACE", conflicts_with = "script")]
        replay: Option<PathBuf>,
        /// Stop the replay before event N (0-based), to draw that moment.
        #[arg(long, value_name = "EVENT", requires = "replay")]
        at: Option<usize>,
        /// Run this shell script first.
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
    },
    /// A live view of slab caches, free memory per zone and order, watermarks and event
    /// rates (keys: s/c/o/a/u/S/n sort, / filter, p pause, q quit).
    Top {
        /// Watch a simulated machine replaying this trace.
        #[arg(long, value_name = "TRACE", group = "src")]
        replay: Option<PathBuf>,
        /// Watch a simulated machine running this shell script (its output is not shown).
        #[arg(long, value_name = "FILE", group = "src")]
        script: Option<PathBuf>,
        /// Replay at this many events (script lines) per second (default: as fast as possible).
        #[arg(long, value_name = "PER_SEC", default_value_t = 0.0)]
        speed: f64,
        /// Watch a process using libkmem_malloc.so started with KMEM_MALLOC_TOP=1.
        #[arg(long, value_name = "PID", group = "src")]
        pid: Option<u32>,
        /// Watch this machine's own kernel (its /proc).
        #[arg(long, group = "src")]
        host: bool,
        /// Print one frame as text and exit.
        #[arg(long)]
        once: bool,
        /// Seconds between samples (rates are per second).
        #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
        interval: f64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SlabKind {
    Slub,
    Slab,
    Slob,
}

fn parse_arch(s: &str) -> Result<Arch, String> {
    Arch::parse(s).ok_or_else(|| format!("unknown architecture '{s}' (x86_64 or i386)"))
}

impl Cli {
    fn boot_options(&self) -> Result<BootOptions, String> {
        let mut cmdline = self.cmdline.trim().to_string();
        if self.slab != SlabKind::Slub {
            if !cmdline.is_empty() {
                cmdline.push(' ');
            }
            cmdline.push_str(if self.slab == SlabKind::Slab {
                "slab=slab"
            } else {
                "slab=slob"
            });
        }
        if let Some(d) = &self.slub_debug {
            if !cmdline.is_empty() {
                cmdline.push(' ');
            }
            if d.is_empty() {
                cmdline.push_str("slub_debug");
            } else {
                cmdline.push_str("slub_debug=");
                cmdline.push_str(d);
            }
        }
        Ok(BootOptions {
            arch: self.arch,
            mem: self.mem,
            cpus: usize::from(self.cpus),
            cmdline,
            seed: self.seed,
            maxmem: self.maxmem.unwrap_or(0),
            numa: kernel::NumaOptions {
                nodes: usize::from(self.numa.unwrap_or(0)),
                mem: self.numa_mem.clone().map(|l| l.0).unwrap_or_default(),
                distance: self.numa_distance.clone().map(|d| d.0).unwrap_or_default(),
                hotplug: self.numa_hotplug.clone(),
            },
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A machine the options cannot describe (too little RAM) is a bad option: status 2, as
    // clap gives for the others.
    if let Err(e) = BootParams::simulated(cli.arch, cli.mem, usize::from(cli.cpus)) {
        use clap::CommandFactory;
        Cli::command()
            .error(
                clap::error::ErrorKind::ValueValidation,
                format!("--mem: {e} ({} KiB of RAM; at least 16M)", cli.mem >> 10),
            )
            .exit();
    }
    crash::install();
    match run(&cli) {
        Ok(code) => code,
        Err(msg) => {
            let _ = io::stdout().flush();
            err_line(&format!("kmem: {msg}"));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Writes `s` to standard error. A closed or broken standard error (`kmem … 2>&- `, a pipe
/// whose reader left) loses the message, as in Unix tools, instead of panicking as
/// `eprint!` does.
fn err_text(s: &str) {
    let mut e = io::stderr().lock();
    let _ = e.write_all(s.as_bytes()).and_then(|()| e.flush());
}

/// [`err_text`] with a newline, for a message: control characters in it (from a file name
/// or a path typed by the user) are shown as `�`, not sent to the terminal.
fn err_line(s: &str) {
    err_text(&format!("{}\n", shell::printable(s)));
}

fn boot(cli: &Cli) -> Result<Kernel, String> {
    let k = Kernel::boot(&cli.boot_options()?)?;
    if cli.slab != SlabKind::Slub {
        // The kernel's notice that it uses SLUB instead is in the (quiet) boot log.
        let mut log = String::new();
        let _ = k.m.dmesg(&mut log, false);
        for l in log.lines().filter(|l| l.starts_with("slab=")) {
            err_line(&format!("kmem: note: {l}"));
        }
    }
    Ok(k)
}

fn run(cli: &Cli) -> Result<ExitCode, String> {
    let stdout = io::stdout();
    match &cli.cmd {
        None | Some(Cmd::Demo) => {
            let k = boot(cli)?;
            let mut out = stdout.lock();
            match demo::run(&k, &mut out, io::stdout().is_terminal()) {
                // `kmem | head` closes the pipe early: not an error.
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e.to_string()),
                _ => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Cmd::Boot) => {
            let k = boot(cli)?;
            let mut s = String::new();
            k.m.dmesg(&mut s, true).map_err(|e| e.to_string())?;
            write_out(&s)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Cmd::Cat { paths }) => {
            let k = boot(cli)?;
            let mut failed = false;
            for p in paths {
                let mut s = String::new();
                match k.m.proc_read(p, &mut s) {
                    Ok(()) => write_out(&s)?,
                    Err(e) => {
                        let _ = io::stdout().flush();
                        err_line(&format!("kmem: cat: {p}: {e}"));
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                ExitCode::from(EXIT_FAILURE)
            } else {
                ExitCode::SUCCESS
            })
        }
        Some(Cmd::Replay {
            trace,
            cat,
            json,
            report,
        }) => match report {
            Some(path) => {
                let (trace, _) = replay::load(trace)?;
                let opts = replay::options(&cli.boot_options()?, cat);
                html::run(&trace, &opts, path, io::stderr().is_terminal())?;
                Ok(ExitCode::SUCCESS)
            }
            None => replay::run(&cli.boot_options()?, trace, cat, *json),
        },
        Some(Cmd::Map {
            outputs,
            replay,
            at,
            script,
        }) => map_cmd(cli, outputs, replay.as_deref(), *at, script.as_deref()),
        Some(Cmd::Top {
            replay,
            script,
            speed,
            pid,
            host,
            once,
            interval,
        }) => top_cmd(
            cli,
            (replay.as_deref(), script.as_deref()),
            *speed,
            *pid,
            (*host, *once),
            *interval,
        ),
        Some(Cmd::Layout) => {
            let k = boot(cli)?;
            write_out(&layout::render(&k))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Cmd::Shell {
            file,
            command,
            echo,
        }) => {
            let k = boot(cli)?;
            let mut sh = shell::Shell::new(k);
            let file = file.as_ref().filter(|f| f.as_os_str() != "-");
            let mut out = stdout.lock();
            let mut err = io::stderr().lock();
            match file {
                _ if command.is_some() => {
                    let text = command.as_deref().unwrap_or_default();
                    shell::run_script(
                        &mut sh,
                        &mut text.as_bytes(),
                        "<command>",
                        *echo,
                        &mut out,
                        &mut err,
                    )
                    .map_err(|e| format!("<command>: {e}"))?;
                }
                Some(path) => {
                    let f = std::fs::File::open(path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    let src = path.display().to_string();
                    shell::run_script(
                        &mut sh,
                        &mut io::BufReader::new(f),
                        &src,
                        *echo,
                        &mut out,
                        &mut err,
                    )
                    .map_err(|e| format!("{src}: {e}"))?;
                }
                None if io::stdin().is_terminal() => {
                    drop(out);
                    drop(err);
                    interactive(&mut sh, cli)?;
                    return Ok(ExitCode::from(sh.exit_status.unwrap_or(0)));
                }
                None => {
                    let stdin = io::stdin();
                    let mut input = stdin.lock();
                    shell::run_script(
                        &mut sh,
                        &mut input as &mut dyn BufRead,
                        "<stdin>",
                        *echo,
                        &mut out,
                        &mut err,
                    )
                    .map_err(|e| format!("<stdin>: {e}"))?;
                }
            }
            Ok(ExitCode::from(sh.status()))
        }
    }
}

/// `kmem map`.
fn map_cmd(
    cli: &Cli,
    outputs: &[PathBuf],
    trace: Option<&std::path::Path>,
    at: Option<usize>,
    script: Option<&std::path::Path>,
) -> Result<ExitCode, String> {
    let title = format!("kmem map: {} MiB {} machine", cli.mem >> 20, cli.arch);
    let mm = if let Some(t) = trace {
        let (trace, _) = replay::load(t)?;
        let opts = replay::options(&cli.boot_options()?, &[]);
        let mut r = kmem_replay::Replayer::boot(&opts)?;
        let stop = at.unwrap_or(usize::MAX).min(trace.events.len());
        let title = format!("{title}, {} after {stop} events", t.display());
        let mut mm = None;
        r.replay_observed(&trace, &mut |_, _| {}, stop.max(1), &mut |i, rp| {
            if i >= stop && mm.is_none() {
                mm = Some(map::snapshot(rp.machine(), &title));
            }
            false
        });
        mm.unwrap_or_else(|| map::snapshot(r.machine(), &title))
    } else {
        let k = boot(cli)?;
        let mut sh = shell::Shell::new(k);
        let title = if let Some(path) = script {
            let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let src = path.display().to_string();
            let mut out = io::stdout().lock();
            let mut err = io::stderr().lock();
            shell::run_script(
                &mut sh,
                &mut io::BufReader::new(f),
                &src,
                false,
                &mut out,
                &mut err,
            )
            .map_err(|e| format!("{src}: {e}"))?;
            format!("{title}, after {src}")
        } else {
            format!("{title}, after boot")
        };
        map::snapshot(&sh.k.m, &title)
    };
    for o in outputs {
        mm.write_file(o)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `kmem top`.
fn top_cmd(
    cli: &Cli,
    (trace, script): (Option<&std::path::Path>, Option<&std::path::Path>),
    speed: f64,
    pid: Option<u32>,
    (host, once): (bool, bool),
    interval: f64,
) -> Result<ExitCode, String> {
    if !(interval > 0.0 && interval.is_finite()) {
        return Err(format!(
            "top: --interval {interval}: must be a positive number of seconds"
        ));
    }
    let interval = std::time::Duration::from_secs_f64(interval);
    let src = if let Some(f) = script {
        let tick = if once {
            interval
        } else {
            std::time::Duration::from_millis(100)
        };
        top::Source::Replay(top::ReplaySource::script(
            &cli.boot_options()?,
            f,
            speed,
            tick,
        )?)
    } else if let Some(t) = trace {
        let tick = if once {
            interval
        } else {
            std::time::Duration::from_millis(100)
        };
        top::Source::Replay(top::ReplaySource::start(
            &cli.boot_options()?,
            t,
            speed,
            tick,
        )?)
    } else if let Some(p) = pid {
        top::Source::Pid(p)
    } else if host {
        top::Source::Host(
            std::env::var_os("KMEM_TOP_PROC").map_or_else(|| PathBuf::from("/proc"), PathBuf::from),
        )
    } else {
        return Err(
            "top: which machine? --replay TRACE, --script FILE, --pid PID or --host".into(),
        );
    };
    if once {
        write_out(&top::once(src, interval)?)?;
    } else {
        if !io::stdout().is_terminal() {
            return Err("top: standard output is not a terminal (use --once for text)".into());
        }
        let sample_every = if matches!(src, top::Source::Replay(_)) {
            std::time::Duration::from_millis(100)
        } else {
            interval
        };
        top::interactive(src, sample_every)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_out(s: &str) -> Result<(), String> {
    let mut out = io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        // `kmem cat … | head` closes the pipe early: not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// The interactive shell: a prompt, line editing and history (`~/.kmem_history`).
fn interactive(sh: &mut shell::Shell, cli: &Cli) -> Result<(), String> {
    use rustyline::error::ReadlineError;
    let mut rl =
        rustyline::Editor::<complete::ShellHelper, rustyline::history::DefaultHistory>::new()
            .map_err(|e| e.to_string())?;
    rl.set_helper(Some(complete::ShellHelper { vars: Vec::new() }));
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kmem_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    let _ = writeln!(
        io::stdout(),
        "kmem shell: {} with {} MiB of RAM and {} CPUs. `help` lists the functions, Ctrl-D leaves.",
        cli.arch,
        cli.mem >> 20,
        cli.cpus
    );
    // Ctrl-C while a statement runs stops the running loop (a second one ends kmem); at
    // the prompt it drops the line, or the block being typed.
    sh.interrupt = Some(interrupt::install());
    let mut chunker = shell::block::Chunker::default();
    let mut n = 0;
    while !sh.quit {
        let prompt = if chunker.pending() {
            shell::CONTINUE
        } else {
            shell::PROMPT
        };
        match rl.readline(prompt) {
            Ok(line) => {
                n += 1;
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                }
                let Some(c) = chunker.push(&line, n, &shell::is_command) else {
                    continue;
                };
                let mut out = io::stdout().lock();
                let mut err = io::stderr().lock();
                sh.run_chunk(
                    &c.text,
                    &c.parsed,
                    shell::Origin {
                        source: None,
                        line: c.first_line,
                        indent: shell::PROMPT.len(),
                    },
                    &mut out,
                    &mut err,
                );
                if let Some(h) = rl.helper_mut() {
                    h.vars = sh.var_names();
                }
            }
            Err(ReadlineError::Interrupted) => chunker.reset(),
            Err(ReadlineError::Eof) => {
                if let Some(c) = chunker.finish(&shell::is_command) {
                    let mut out = io::stdout().lock();
                    let mut err = io::stderr().lock();
                    let origin = shell::Origin {
                        source: None,
                        line: c.first_line,
                        indent: shell::PROMPT.len(),
                    };
                    sh.run_chunk(&c.text, &c.parsed, origin, &mut out, &mut err);
                }
                break;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(())
}
