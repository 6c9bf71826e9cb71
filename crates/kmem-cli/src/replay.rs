//! `kmem replay TRACE`: a real Linux kernel allocation trace through the simulated machine
//! (the engine is the `kmem-replay` crate; this is its command-line face: progress bar on a
//! terminal, text or JSON report).

#![forbid(unsafe_code)]

use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use crate::kernel::BootOptions;

/// Runs the replay and prints the report.
///
/// # Errors
/// A message for a trace that cannot be read or a machine that cannot boot.
pub fn run(
    boot: &BootOptions,
    trace_path: &Path,
    cat: &[String],
    json: bool,
) -> Result<ExitCode, String> {
    let tty = io::stderr().is_terminal();
    if tty {
        eprint!("reading {} …", trace_path.display());
    }
    let t0 = Instant::now();
    let trace = kmem_replay::parse_file(trace_path)
        .map_err(|e| format!("{}: {e}", trace_path.display()))?;
    let parse_secs = t0.elapsed().as_secs_f64();
    if tty {
        eprint!("\r\x1b[K");
    }
    let opts = kmem_replay::Options {
        arch: boot.arch,
        mem: boot.mem,
        cpus: boot.cpus,
        cmdline: boot.cmdline.clone(),
        seed: boot.seed,
        cat: cat
            .iter()
            .map(|p| {
                if p.starts_with('/') {
                    p.clone()
                } else {
                    format!("/proc/{p}")
                }
            })
            .collect(),
        ..kmem_replay::Options::default()
    };
    let mut last = usize::MAX;
    let mut progress = |done: usize, total: usize| {
        if !tty || total == 0 {
            return;
        }
        let pct = done * 100 / total;
        if pct == last {
            return;
        }
        last = pct;
        const WIDTH: usize = 40;
        let fill = pct * WIDTH / 100;
        eprint!(
            "\rreplaying [{}{}] {pct:>3}% {done}/{total} events",
            "#".repeat(fill),
            " ".repeat(WIDTH - fill)
        );
        if done == total {
            eprint!("\r\x1b[K");
        }
    };
    let mut report = kmem_replay::run(&trace, &opts, &mut progress)?;
    report.parse_secs = parse_secs;
    let mut s = String::new();
    if json {
        report.write_json(&mut s).map_err(|e| e.to_string())?;
    } else {
        report.write_text(&mut s).map_err(|e| e.to_string())?;
    }
    let mut out = io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(e.to_string()),
    }
    Ok(if report.bugs > 0 {
        ExitCode::from(crate::EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}
