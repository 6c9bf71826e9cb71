//! `cargo run --release -p kmem-replay --example replay -- TRACE [/proc/file…]`: replays a trace
//! and prints the report (the `kmem replay` command without the CLI).

use std::io::Write;

/// One line on stderr; a closed stderr is not worth a panic.
fn complain(msg: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        complain(format_args!("usage: replay TRACE [/proc/FILE…]"));
        std::process::exit(2);
    };
    let t0 = std::time::Instant::now();
    let trace = match kmem_replay::parse_file(path.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            complain(format_args!("replay: {path}: {e}"));
            std::process::exit(1);
        }
    };
    let parse_secs = t0.elapsed().as_secs_f64();
    let opts = kmem_replay::Options {
        cat: args.collect(),
        ..kmem_replay::Options::default()
    };
    let mut r = kmem_replay::run(&trace, &opts, &mut |_, _| {}).unwrap_or_else(|e| {
        complain(format_args!("replay: {e}"));
        std::process::exit(1);
    });
    r.parse_secs = parse_secs;
    let mut s = String::new();
    r.write_text(&mut s).unwrap();
    // A reader that went away (`| head`) ends the output, not the process with a panic.
    let _ = std::io::stdout().lock().write_all(s.as_bytes());
}
