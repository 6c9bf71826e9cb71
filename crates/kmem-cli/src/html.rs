//! `kmem replay --report report.html`: a self-contained HTML report of a replay (inline SVG
//! plots made here; no script, font or style from the network). Plots over the trace's events:
//! free pages per zone with the min/low/high watermarks, slab memory of the largest caches,
//! the unusable free space index per order (mm/vmstat.c `unusable_free_index`), the kmalloc
//! size histogram against kmalloc's size classes, and the memory map at the peak of pages in
//! use.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;

use kmem_replay::{EventKind, Options, Replayer, Trace};

use crate::map::{self, xml_escape};
use crate::top::data::{parse_slabinfo, parse_zones, ZoneRow};

/// Points per plot (samples over the trace).
const SAMPLES: usize = 240;
/// Caches in the slab plot.
const TOP_CACHES: usize = 8;
/// kmalloc's size classes on x86_64 (mm/slab_common.c `kmalloc_info`, KMALLOC_MIN_SIZE 8).
const KMALLOC_CLASSES: [u32; 13] = [
    8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
];
/// Line colours.
const COLOURS: [&str; 11] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#000000",
];

/// A plot's line: label, points (event, value), dashed.
type Series = (String, Vec<(f64, f64)>, bool);

/// One sample of the machine.
struct Point {
    event: usize,
    zones: Vec<ZoneRow>,
    /// Cache name → KiB.
    slab: BTreeMap<String, u64>,
}

fn sample(event: usize, r: &Replayer) -> Point {
    let m = r.machine();
    let read = |p: &str| {
        let mut s = String::new();
        let _ = m.proc_read(p, &mut s);
        s
    };
    let zones = parse_zones(&read("/proc/buddyinfo"), &read("/proc/zoneinfo"));
    let slab = parse_slabinfo(&read("/proc/slabinfo"))
        .into_iter()
        .map(|c| (c.name, c.kib))
        .collect();
    Point { event, zones, slab }
}

/// Runs the replay and writes the report.
///
/// # Errors
/// A machine that cannot boot, or a file that cannot be written.
pub fn run(trace: &Trace, opts: &Options, path: &Path, tty: bool) -> Result<(), String> {
    let total = trace.events.len();
    let bar = (tty && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "replaying [{bar:40}] {percent:>3}% {pos}/{len} events ({eta} left)",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("#>-"),
        );
        b
    });
    let every = (total / SAMPLES).max(1);
    let mut points = Vec::new();
    let mut r = Replayer::boot(opts)?;
    points.push(sample(0, &r));
    let mut progress = |done: usize, _total: usize| {
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
    };
    r.replay_observed(trace, &mut progress, every, &mut |i, rp| {
        points.push(sample(i, rp));
        true
    });
    let (_, peak) = r.pages_in_use();
    let report = r.report(trace);
    drop(r);
    // The map at the peak: a second machine replays up to it.
    let mut r2 = Replayer::boot(opts)?;
    let mut peak_svg = String::new();
    r2.replay_observed(trace, &mut |_, _| {}, peak + 1, &mut |i, rp| {
        let mm = map::snapshot(
            rp.machine(),
            &format!("physical memory at the peak of pages in use (event {i})"),
        );
        peak_svg = mm.to_svg();
        false
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let mut summary = String::new();
    let _ = report.write_text(&mut summary);
    let html = page(trace, &points, &peak_svg, &summary, peak);
    std::fs::write(path, html).map_err(|e| format!("{}: {e}", path.display()))
}

fn page(trace: &Trace, points: &[Point], peak_svg: &str, summary: &str, peak: usize) -> String {
    let mut h = String::new();
    h.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>kmem replay report</title><style>\
         body{font-family:sans-serif;margin:2em;max-width:1100px}\
         h2{border-bottom:1px solid #ccc}pre{background:#f6f6f6;padding:1em;overflow:auto}\
         .map svg{max-width:100%;height:auto}</style></head><body>\n",
    );
    let _ = writeln!(
        h,
        "<h1>kmem replay report</h1><p>{} events; samples every {} events; peak of pages in use at event {peak}.</p>",
        trace.events.len(),
        points.get(1).map_or(0, |p| p.event)
    );
    h.push_str("<h2 id=\"free\">Free pages per zone, with watermarks</h2>\n");
    let zone_names: Vec<String> = points
        .last()
        .map(|p| p.zones.iter().map(|z| z.name.clone()).collect())
        .unwrap_or_default();
    for zn in &zone_names {
        let get = |f: fn(&ZoneRow) -> u64| -> Vec<(f64, f64)> {
            points
                .iter()
                .filter_map(|p| {
                    p.zones
                        .iter()
                        .find(|z| &z.name == zn)
                        .map(|z| (p.event as f64, f(z) as f64))
                })
                .collect()
        };
        let series = vec![
            (format!("{zn}: free"), get(|z| z.free), false),
            ("min".to_string(), get(|z| z.min), true),
            ("low".to_string(), get(|z| z.low), true),
            ("high".to_string(), get(|z| z.high), true),
        ];
        h.push_str(&line_plot(&format!("zone {zn}"), "pages", &series));
    }
    h.push_str("<h2 id=\"slab\">Slab memory of the largest caches</h2>\n");
    let last = points.last().map(|p| &p.slab);
    let mut top: Vec<(&String, &u64)> = last.map(|s| s.iter().collect()).unwrap_or_default();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let series: Vec<Series> = top
        .iter()
        .take(TOP_CACHES)
        .map(|(name, _)| {
            let v = points
                .iter()
                .map(|p| (p.event as f64, *p.slab.get(*name).unwrap_or(&0) as f64))
                .collect();
            ((*name).clone(), v, false)
        })
        .collect();
    h.push_str(&line_plot("slab memory", "KiB", &series));
    h.push_str("<h2 id=\"unusable\">Unusable free space index per order (all zones)</h2>\n");
    let series: Vec<Series> = (1..=10)
        .map(|o| {
            let v = points
                .iter()
                .map(|p| {
                    let mut blocks = vec![0usize; 11];
                    for z in &p.zones {
                        for (i, &n) in z.blocks.iter().enumerate().take(11) {
                            blocks[i] += n as usize;
                        }
                    }
                    let idx = kmem_replay::report::unusable_free_index(&blocks, o);
                    (p.event as f64, f64::from(idx) / 1000.0)
                })
                .collect();
            (format!("order {o}"), v, false)
        })
        .collect();
    h.push_str(&line_plot(
        "unusable free space index",
        "index (0..1)",
        &series,
    ));
    h.push_str("<h2 id=\"kmalloc\">kmalloc request sizes against the size classes</h2>\n");
    h.push_str(&kmalloc_histogram(trace));
    h.push_str("<h2 id=\"map\">Memory map at the peak</h2>\n<div class=\"map\">");
    h.push_str(peak_svg);
    h.push_str("</div>\n<h2 id=\"summary\">Summary</h2>\n<pre>");
    h.push_str(&xml_escape(summary));
    h.push_str("</pre>\n</body></html>\n");
    h
}

/// A line plot as inline SVG: `(label, points, dashed)` per series.
fn line_plot(title: &str, ylabel: &str, series: &[Series]) -> String {
    let (w, h, l, r, t, b) = (900.0, 300.0, 70.0, 170.0, 24.0, 36.0);
    let all = series.iter().flat_map(|s| s.1.iter());
    let xmax = all.clone().map(|p| p.0).fold(1.0, f64::max);
    let ymax = all.map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.05;
    let px = |x: f64| l + x / xmax * (w - l - r);
    let py = |y: f64| t + (1.0 - y / ymax) * (h - t - b);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="#fff"/><text x="{l}" y="15" font-size="13">{}</text>"##,
        xml_escape(title)
    );
    let _ = writeln!(
        s,
        r##"<line x1="{l}" y1="{}" x2="{}" y2="{}" stroke="#000"/><line x1="{l}" y1="{t}" x2="{l}" y2="{}" stroke="#000"/>"##,
        h - b,
        w - r,
        h - b,
        h - b
    );
    for i in 0..=4 {
        let yv = ymax * f64::from(i) / 4.0;
        let xv = xmax * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="middle">{:.0}</text>"##,
            l - 4.0,
            py(yv) + 4.0,
            short(yv),
            px(xv),
            h - b + 14.0,
            xv
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">event</text><text x="12" y="{}" transform="rotate(-90 12 {})" text-anchor="middle">{}</text>"#,
        (l + w - r) / 2.0,
        h - 4.0,
        h / 2.0,
        h / 2.0,
        xml_escape(ylabel)
    );
    for (i, (label, pts, dashed)) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let d: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let dash = if *dashed {
            r#" stroke-dasharray="5,3""#
        } else {
            ""
        };
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="1.5"{dash} points="{}"/><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{c}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            d.join(" "),
            w - r + 8.0,
            t + 10.0 + 16.0 * i as f64,
            w - r + 28.0,
            t + 10.0 + 16.0 * i as f64,
            w - r + 32.0,
            t + 14.0 + 16.0 * i as f64,
            xml_escape(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 || v == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// Histogram of kmalloc `bytes_req` in 8-byte bins up to 8 KiB (log-scaled x axis), with
/// the size classes as vertical lines: requests just above a class waste the most.
fn kmalloc_histogram(trace: &Trace) -> String {
    let mut bins: BTreeMap<u32, u64> = BTreeMap::new();
    let mut n = 0u64;
    for e in &trace.events {
        if e.kind == EventKind::Kmalloc && e.bytes_req > 0 && e.bytes_req <= 8192 {
            *bins.entry(e.bytes_req.div_ceil(8) * 8).or_default() += 1;
            n += 1;
        }
    }
    let (w, h, l, r, t, b) = (900.0, 300.0, 70.0, 20.0, 24.0, 36.0);
    let lx = |v: f64| l + (v.max(8.0).log2() - 3.0) / 10.0 * (w - l - r);
    let ymax = bins.values().copied().max().unwrap_or(1).max(1) as f64;
    let py = |y: f64| t + (1.0 - y / ymax) * (h - t - b);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="#fff"/><text x="{l}" y="15" font-size="13">{n} kmalloc requests up to 8 KiB, by requested size (8-byte bins); red: size classes</text>"##
    );
    for c in KMALLOC_CLASSES {
        let x = lx(f64::from(c));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{t}" x2="{x:.1}" y2="{}" stroke="#d62728" stroke-dasharray="3,2"/><text x="{x:.1}" y="{}" text-anchor="middle">{c}</text>"##,
            h - b,
            h - b + 14.0
        );
    }
    for (&sz, &k) in &bins {
        let x0 = lx(f64::from(sz - 8).max(8.0));
        let x1 = lx(f64::from(sz));
        let y = py(k as f64);
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.1}" y="{y:.1}" width="{:.2}" height="{:.1}" fill="#1f77b4"/>"##,
            (x1 - x0).max(0.8),
            h - b - y
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{l}" y1="{}" x2="{}" y2="{}" stroke="#000"/><text x="{}" y="{}" text-anchor="middle">requested bytes (log scale)</text><text x="{}" y="{}" text-anchor="end">{}</text></svg>"##,
        h - b,
        w - r,
        h - b,
        (l + w - r) / 2.0,
        h - 2.0,
        l - 4.0,
        t + 4.0,
        short(ymax)
    );
    s
}
