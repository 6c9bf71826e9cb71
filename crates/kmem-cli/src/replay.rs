//! `kmem replay TRACE`: a real Linux kernel allocation trace through the simulated machine
//! (the engine is the `kmem-replay` crate; this is its command-line face: progress bar on a
//! terminal, text or JSON report).

#![forbid(unsafe_code)]

use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use crate::kernel::BootOptions;

/// What a file that is not a trace may be instead: compressed in a format kmem does not read.
fn compressed_hint(path: &Path) -> &'static str {
    use std::io::Read as _;
    let mut magic = [0u8; 4];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .unwrap_or(0);
    match &magic[..n.min(4)] {
        [0x1f, 0x8b, ..] => " (it is gzip-compressed: kmem reads plain text or .xz)",
        [b'B', b'Z', b'h', ..] => " (it is bzip2-compressed: kmem reads plain text or .xz)",
        [0x28, 0xb5, 0x2f, 0xfd] => " (it is zstd-compressed: kmem reads plain text or .xz)",
        _ => "",
    }
}

/// Reads and checks a trace (a "reading …" note on a terminal).
///
/// # Errors
/// A message for a file that cannot be read or is not a trace.
pub fn load(trace_path: &Path) -> Result<(kmem_replay::Trace, f64), String> {
    let tty = io::stderr().is_terminal();
    if tty {
        crate::err_text(&format!("reading {} …", trace_path.display()));
    }
    let t0 = Instant::now();
    let trace = kmem_replay::parse_file(trace_path)
        .map_err(|e| format!("{}: {e}", trace_path.display()))?;
    let parse_secs = t0.elapsed().as_secs_f64();
    if tty {
        crate::err_text("\r\x1b[K");
    }
    if !trace.looks_like_a_trace() {
        return Err(format!(
            "{}: not a trace: none of its {} lines is an ftrace event or header{}",
            trace_path.display(),
            trace.lines,
            compressed_hint(trace_path)
        ));
    }
    Ok((trace, parse_secs))
}

/// The replay options of the machine the global options describe.
pub fn options(boot: &BootOptions, cat: &[String]) -> kmem_replay::Options {
    kmem_replay::Options {
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
    }
}

/// Runs the replay and prints the report.
///
/// # Errors
/// A message for a trace that cannot be read, a file in which nothing is a trace (random
/// bytes, a gzip file: exit status 1), or a machine that cannot boot.
pub fn run(
    boot: &BootOptions,
    trace_path: &Path,
    cat: &[String],
    json: bool,
) -> Result<ExitCode, String> {
    let tty = io::stderr().is_terminal();
    let (trace, parse_secs) = load(trace_path)?;
    let opts = options(boot, cat);
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
        crate::err_text(&format!(
            "\rreplaying [{}{}] {pct:>3}% {done}/{total} events",
            "#".repeat(fill),
            " ".repeat(WIDTH - fill)
        ));
        if done == total {
            crate::err_text("\r\x1b[K");
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
