//! The replay report, as text for people and JSON for machines.

use std::fmt::{self, Write};

use crate::parse::{EventKind, NR_EVENT_KINDS};

/// Counts of one event kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventStats {
    /// Events of this kind in the trace.
    pub seen: u64,
    /// Events replayed through kmem.
    pub replayed: u64,
    /// Allocations kmem could not satisfy.
    pub failed: u64,
    /// Frees of objects or pages the trace never allocated (allocated before it began).
    pub unknown: u64,
    /// Events deliberately not replayed (slab pages of the traced kernel, see
    /// [`crate::engine`]).
    pub skipped: u64,
}

/// Free blocks of one zone after the replay, and Linux's unusable free space index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ZoneFrag {
    /// Zone name.
    pub zone: String,
    /// Free blocks per order (the /proc/buddyinfo row).
    pub free_blocks: Vec<usize>,
    /// Free pages.
    pub free_pages: usize,
    /// Unusable free space index for order 3, in thousandths (0..=1000).
    pub unusable_order3: u32,
    /// Unusable free space index for order 9 (pageblock order), in thousandths.
    pub unusable_order9: u32,
}

impl ZoneFrag {
    /// Computes the figures from the free block counts.
    pub fn new(zone: &str, free_blocks: Vec<usize>) -> ZoneFrag {
        let free_pages = free_blocks.iter().enumerate().map(|(o, &n)| n << o).sum();
        ZoneFrag {
            zone: zone.to_string(),
            unusable_order3: unusable_free_index(&free_blocks, 3),
            unusable_order9: unusable_free_index(&free_blocks, 9),
            free_blocks,
            free_pages,
        }
    }
}

/// `unusable_free_index` of mm/vmstat.c: the share (in thousandths) of free pages that are in
/// blocks too small for an allocation of `order`; 1000 when nothing is free.
pub fn unusable_free_index(free_blocks: &[usize], order: usize) -> u32 {
    let free_pages: u64 = free_blocks
        .iter()
        .enumerate()
        .map(|(o, &n)| (n as u64) << o)
        .sum();
    if free_pages == 0 {
        return 1000;
    }
    // free_blocks_suitable: blocks of at least `order`, counted in units of `order`.
    let suitable: u64 = free_blocks
        .iter()
        .enumerate()
        .skip(order)
        .map(|(o, &n)| (n as u64) << (o - order))
        .sum();
    ((free_pages - (suitable << order)) * 1000 / free_pages) as u32
}

/// Everything the replay found.
#[derive(Clone, Debug, Default)]
pub struct ReplayReport {
    /// Per event kind, indexed by `EventKind as usize`.
    pub events: [EventStats; NR_EVENT_KINDS],
    /// Lines of the trace.
    pub lines: u64,
    /// Lines that did not parse.
    pub malformed: u64,
    /// The first few of them.
    pub malformed_examples: Vec<(u64, String)>,
    /// Events of other kinds, by name.
    pub other_events: Vec<(String, u64)>,
    /// `#P:` of the trace header.
    pub header_cpus: Option<usize>,
    /// `entries-in-buffer/entries-written` of the header.
    pub header_entries: Option<(u64, u64)>,
    /// Architecture replayed on.
    pub arch: String,
    /// RAM of the machine.
    pub mem: u64,
    /// CPUs of the machine.
    pub cpus: usize,
    /// kmalloc events whose `bytes_alloc` was compared with kmem's `ksize`.
    pub kmalloc_compared: u64,
    /// … and agreed.
    pub kmalloc_agree: u64,
    /// The first disagreements: (bytes_req, traced bytes_alloc, kmem's ksize, gfp bits).
    pub kmalloc_disagreements: Vec<(u32, u32, u64, u32)>,
    /// kmalloc events above `KMALLOC_MAX_CACHE_SIZE` (served by the page allocator).
    pub large_kmalloc: u64,
    /// kmem_cache_alloc events whose `bytes_alloc` was compared with kmem's object stride.
    pub cache_size_compared: u64,
    /// … and agreed.
    pub cache_size_agree: u64,
    /// Caches whose kmem object stride differs from the traced `bytes_alloc`: (traced name,
    /// bytes_req, traced bytes_alloc, kmem's stride, kmem's cache name).
    pub cache_size_disagreements: Vec<(String, u32, u32, usize, String)>,
    /// mm_page_alloc events whose migratetype was compared with kmem's `gfp_migratetype`.
    pub migratetype_compared: u64,
    /// … and agreed.
    pub migratetype_agree: u64,
    /// mm_page_alloc events that were the traced kernel's slab pages (not replayed).
    pub slab_page_allocs_in_trace: u64,
    /// Allocations at a traced address still live (free not traced): the old one was freed.
    pub implicit_frees: u64,
    /// Caches seen in the trace (created or found).
    pub caches_created: u64,
    /// Caches kmem could not create.
    pub cache_create_failures: u64,
    /// kmem_cache_free events naming another cache than the object's.
    pub cache_name_mismatches: u64,
    /// mm_page_free events whose order differs from the allocation's.
    pub page_order_mismatches: u64,
    /// The slab allocator replayed on (`slab`, `slub`, `slob`).
    pub slab_allocator: String,
    /// Peak of slab memory in pages (/proc/meminfo's `Slab`: slab pages, SLOB pages, large
    /// kmalloc blocks), checked after every allocation.
    pub peak_slab_pages: usize,
    /// Bytes requested by the live objects at that peak.
    pub requested_at_slab_peak: u64,
    /// Peak of pages allocated from the page allocator (slab pages included).
    pub peak_pages_in_use: isize,
    /// Event index at the peak.
    pub peak_at_event: usize,
    /// Pages in use at the end.
    pub pages_in_use: isize,
    /// `totalram_pages`.
    pub totalram_pages: usize,
    /// Objects still allocated at the end (never freed within the trace).
    pub live_objects: usize,
    /// Page blocks still allocated at the end.
    pub live_page_blocks: usize,
    /// Caches on kmem's list at the end.
    pub kmem_caches: usize,
    /// Slabs at the end.
    pub slabs: usize,
    /// Pages in those slabs.
    pub slab_pages: usize,
    /// Free blocks per zone at the end.
    pub zones: Vec<ZoneFrag>,
    /// Requested /proc files: (path, contents).
    pub proc_files: Vec<(String, String)>,
    /// `BUG:` reports during the replay.
    pub bugs: usize,
    /// Warnings during the replay.
    pub warnings: usize,
    /// What the kernel printed during the replay.
    pub console: String,
    /// Seconds reading and parsing the trace (set by the caller).
    pub parse_secs: f64,
    /// Seconds classifying page events.
    pub classify_secs: f64,
    /// Seconds replaying events.
    pub replay_secs: f64,
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        100.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

fn mib(pages: isize) -> f64 {
    pages as f64 * kmem::PAGE_SIZE as f64 / (1024.0 * 1024.0)
}

fn idx(v: u32) -> String {
    format!("{}.{:03}", v / 1000, v % 1000)
}

impl ReplayReport {
    /// Events replayed through kmem, all kinds.
    pub fn replayed(&self) -> u64 {
        self.events.iter().map(|e| e.replayed).sum()
    }

    /// Events in the trace, all kinds.
    pub fn seen(&self) -> u64 {
        self.events.iter().map(|e| e.seen).sum()
    }

    /// The share (percent) of kmalloc events where kmem's `ksize` equals the traced
    /// `bytes_alloc`.
    pub fn kmalloc_agreement(&self) -> f64 {
        pct(self.kmalloc_agree, self.kmalloc_compared)
    }

    /// The slab memory at its peak in KiB, the KiB requested then, and the overhead in
    /// percent of the requested bytes.
    pub fn slab_overhead(&self) -> (u64, u64, f64) {
        let n = (self.peak_slab_pages * kmem::PAGE_SIZE) as u64;
        let m = self.requested_at_slab_peak;
        let p = if m == 0 {
            0.0
        } else {
            (n as f64 - m as f64) * 100.0 / m as f64
        };
        (n / 1024, m / 1024, p)
    }

    /// Nanoseconds of replay per event.
    pub fn ns_per_event(&self) -> f64 {
        let n = self.seen();
        if n == 0 {
            0.0
        } else {
            self.replay_secs * 1e9 / n as f64
        }
    }

    /// Events replayed per second of replay.
    pub fn events_per_sec(&self) -> f64 {
        if self.replay_secs > 0.0 {
            self.seen() as f64 / self.replay_secs
        } else {
            0.0
        }
    }

    /// Writes the report for people. Control characters other than newline and tab (which
    /// can only come from the trace: malformed lines, event and cache names) are written as
    /// `\xNN` / `\u{NN}` escapes, so a trace cannot send escape sequences to a terminal.
    ///
    /// # Errors
    /// The writer's error.
    pub fn write_text(&self, out: &mut dyn Write) -> fmt::Result {
        self.write_text_raw(&mut EscapeControls(out))
    }

    fn write_text_raw(&self, out: &mut dyn Write) -> fmt::Result {
        writeln!(
            out,
            "replayed on: {} with {} MiB of RAM and {} CPUs (trace recorded on {} CPUs)",
            self.arch,
            self.mem >> 20,
            self.cpus,
            self.header_cpus.map_or("?".to_string(), |c| c.to_string())
        )?;
        writeln!(out, "trace lines: {}", self.lines)?;
        if let Some((a, b)) = self.header_entries {
            if a != b {
                writeln!(
                    out,
                    "warning: the trace lost {} events (ring buffer overrun)",
                    b - a
                )?;
            }
        }
        writeln!(out, "events replayed: {}", self.replayed())?;
        writeln!(
            out,
            "{:<18} {:>9} {:>9} {:>7} {:>9} {:>9}",
            "event", "in trace", "replayed", "failed", "unknown", "skipped"
        )?;
        for k in EventKind::ALL {
            let e = &self.events[k as usize];
            writeln!(
                out,
                "{:<18} {:>9} {:>9} {:>7} {:>9} {:>9}",
                k.name(),
                e.seen,
                e.replayed,
                e.failed,
                e.unknown,
                e.skipped
            )?;
        }
        writeln!(
            out,
            "  unknown: frees of objects/pages allocated before the trace began"
        )?;
        writeln!(
            out,
            "  skipped: {} mm_page_alloc of the traced kernel's slab pages (kmem's SLUB takes its own), and their frees",
            self.slab_page_allocs_in_trace
        )?;
        if self.implicit_frees > 0 {
            writeln!(
                out,
                "implicit frees (address allocated again, its free not traced): {}",
                self.implicit_frees
            )?;
        }
        if self.malformed > 0 {
            writeln!(out, "malformed lines: {}", self.malformed)?;
            for (n, l) in &self.malformed_examples {
                writeln!(out, "  line {n}: {l}")?;
            }
        }
        for (name, n) in &self.other_events {
            writeln!(out, "other events (not replayed): {name}: {n}")?;
        }
        writeln!(
            out,
            "kmalloc size-class agreement: {:.2}% ({} of {} kmalloc events: kmem's ksize == traced bytes_alloc)",
            self.kmalloc_agreement(),
            self.kmalloc_agree,
            self.kmalloc_compared
        )?;
        for (req, traced, ks, gfp) in &self.kmalloc_disagreements {
            writeln!(
                out,
                "  disagreement: bytes_req={req} traced bytes_alloc={traced} kmem ksize={ks} gfp={:?}",
                kmem::GfpFlags::from_bits(*gfp)
            )?;
        }
        if self.large_kmalloc > 0 {
            writeln!(
                out,
                "large kmalloc (page allocator): {}",
                self.large_kmalloc
            )?;
        }
        writeln!(
            out,
            "kmem_cache object size agreement: {:.2}% ({} of {})",
            pct(self.cache_size_agree, self.cache_size_compared),
            self.cache_size_agree,
            self.cache_size_compared
        )?;
        for (name, req, traced, stride, kname) in &self.cache_size_disagreements {
            writeln!(
                out,
                "  {name}: object size {req}, traced bytes_alloc {traced}, kmem stride {stride} (cache {kname})"
            )?;
        }
        writeln!(
            out,
            "page migratetype agreement: {:.2}% ({} of {})",
            pct(self.migratetype_agree, self.migratetype_compared),
            self.migratetype_agree,
            self.migratetype_compared
        )?;
        writeln!(
            out,
            "caches: {} named in the trace, {} on kmem's list (merged aliases share one), {} creation failures",
            self.caches_created, self.kmem_caches, self.cache_create_failures
        )?;
        if self.cache_name_mismatches > 0 || self.page_order_mismatches > 0 {
            writeln!(
                out,
                "mismatches: {} kmem_cache_free naming another cache, {} mm_page_free of another order",
                self.cache_name_mismatches, self.page_order_mismatches
            )?;
        }
        writeln!(
            out,
            "peak memory: {} pages ({:.1} MiB) in use, at event {}",
            self.peak_pages_in_use,
            mib(self.peak_pages_in_use),
            self.peak_at_event
        )?;
        writeln!(
            out,
            "in use at the end: {} pages ({:.1} MiB); {} slabs ({} pages); never freed: {} objects, {} page blocks",
            self.pages_in_use,
            mib(self.pages_in_use),
            self.slabs,
            self.slab_pages,
            self.live_objects,
            self.live_page_blocks
        )?;
        writeln!(
            out,
            "external fragmentation (free blocks by order; unusable free space index):"
        )?;
        for z in &self.zones {
            write!(out, "  {:<8}", z.zone)?;
            for n in &z.free_blocks {
                write!(out, " {n:>6}")?;
            }
            writeln!(
                out,
                "  free {} pages; unusable index order 3: {}, order 9: {}",
                z.free_pages,
                idx(z.unusable_order3),
                idx(z.unusable_order9)
            )?;
        }
        writeln!(
            out,
            "reports: {} BUG, {} warnings",
            self.bugs, self.warnings
        )?;
        if !self.console.is_empty() {
            writeln!(out, "kernel messages (first lines):")?;
            for l in self.console.lines().take(20) {
                writeln!(out, "  {l}")?;
            }
        }
        let (n, m, p) = self.slab_overhead();
        writeln!(
            out,
            "slab allocator: {}, peak slab memory: {n} KiB for {m} KiB requested (overhead {p:.1}%)",
            self.slab_allocator
        )?;
        writeln!(out, "time per event: {:.0} ns", self.ns_per_event())?;
        writeln!(
            out,
            "time: parse {:.3} s, classify {:.3} s, replay {:.3} s ({:.2} M events/s)",
            self.parse_secs,
            self.classify_secs,
            self.replay_secs,
            self.events_per_sec() / 1e6
        )?;
        for (path, text) in &self.proc_files {
            writeln!(out)?;
            writeln!(out, "==> {path} <==")?;
            out.write_str(text)?;
        }
        Ok(())
    }

    /// Writes the report as one JSON object.
    ///
    /// # Errors
    /// The writer's error.
    pub fn write_json(&self, out: &mut dyn Write) -> fmt::Result {
        out.write_str("{")?;
        write!(
            out,
            "\"arch\":{},\"mem\":{},\"cpus\":{}",
            json_str(&self.arch),
            self.mem,
            self.cpus
        )?;
        write!(
            out,
            ",\"lines\":{},\"malformed\":{}",
            self.lines, self.malformed
        )?;
        write!(out, ",\"events_replayed\":{}", self.replayed())?;
        out.write_str(",\"events\":{")?;
        for (i, k) in EventKind::ALL.iter().enumerate() {
            let e = &self.events[*k as usize];
            if i > 0 {
                out.write_str(",")?;
            }
            write!(
                out,
                "\"{}\":{{\"seen\":{},\"replayed\":{},\"failed\":{},\"unknown\":{},\"skipped\":{}}}",
                k.name(),
                e.seen,
                e.replayed,
                e.failed,
                e.unknown,
                e.skipped
            )?;
        }
        out.write_str("}")?;
        out.write_str(",\"other_events\":{")?;
        for (i, (n, c)) in self.other_events.iter().enumerate() {
            if i > 0 {
                out.write_str(",")?;
            }
            write!(out, "{}:{c}", json_str(n))?;
        }
        out.write_str("}")?;
        write!(
            out,
            ",\"kmalloc_size_class_agreement\":{:.4},\"kmalloc_compared\":{},\"kmalloc_agree\":{}",
            self.kmalloc_agreement(),
            self.kmalloc_compared,
            self.kmalloc_agree
        )?;
        write!(
            out,
            ",\"cache_size_compared\":{},\"cache_size_agree\":{},\"migratetype_compared\":{},\"migratetype_agree\":{}",
            self.cache_size_compared, self.cache_size_agree, self.migratetype_compared, self.migratetype_agree
        )?;
        write!(
            out,
            ",\"slab_page_allocs_in_trace\":{},\"implicit_frees\":{},\"large_kmalloc\":{},\"caches_created\":{},\"kmem_caches\":{}",
            self.slab_page_allocs_in_trace, self.implicit_frees, self.large_kmalloc, self.caches_created, self.kmem_caches
        )?;
        write!(
            out,
            ",\"peak_pages_in_use\":{},\"peak_at_event\":{},\"pages_in_use\":{},\"slabs\":{},\"slab_pages\":{},\"live_objects\":{},\"live_page_blocks\":{}",
            self.peak_pages_in_use, self.peak_at_event, self.pages_in_use, self.slabs, self.slab_pages, self.live_objects, self.live_page_blocks
        )?;
        out.write_str(",\"zones\":[")?;
        for (i, z) in self.zones.iter().enumerate() {
            if i > 0 {
                out.write_str(",")?;
            }
            write!(out, "{{\"zone\":{},\"free_blocks\":[", json_str(&z.zone))?;
            for (j, n) in z.free_blocks.iter().enumerate() {
                if j > 0 {
                    out.write_str(",")?;
                }
                write!(out, "{n}")?;
            }
            write!(
                out,
                "],\"free_pages\":{},\"unusable_index_order3\":{:.3},\"unusable_index_order9\":{:.3}}}",
                z.free_pages,
                f64::from(z.unusable_order3) / 1000.0,
                f64::from(z.unusable_order9) / 1000.0
            )?;
        }
        out.write_str("]")?;
        let (n, m, p) = self.slab_overhead();
        write!(
            out,
            ",\"slab_allocator\":{},\"peak_slab_kib\":{n},\"requested_kib\":{m},\"slab_overhead_pct\":{p:.2},\"ns_per_event\":{:.1}",
            json_str(&self.slab_allocator),
            self.ns_per_event()
        )?;
        write!(
            out,
            ",\"bugs\":{},\"warnings\":{}",
            self.bugs, self.warnings
        )?;
        write!(
            out,
            ",\"parse_secs\":{:.4},\"classify_secs\":{:.4},\"replay_secs\":{:.4},\"events_per_sec\":{:.0}",
            self.parse_secs,
            self.classify_secs,
            self.replay_secs,
            self.events_per_sec()
        )?;
        out.write_str(",\"proc\":{")?;
        for (i, (p, t)) in self.proc_files.iter().enumerate() {
            if i > 0 {
                out.write_str(",")?;
            }
            write!(out, "{}:{}", json_str(p), json_str(t))?;
        }
        out.write_str("}}\n")
    }
}

/// A writer that passes text on with control characters escaped (newline and tab kept).
struct EscapeControls<'a>(&'a mut dyn Write);

impl Write for EscapeControls<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find(|c: char| c.is_control() && c != '\n' && c != '\t') {
            self.0.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            if (c as u32) < 0x80 {
                write!(self.0, "\\x{:02x}", c as u32)?;
            } else {
                write!(self.0, "\\u{{{:x}}}", c as u32)?;
            }
            rest = &rest[i + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_index_as_linux() {
        // Nothing free: 1000 (mm/vmstat.c returns 1000 when free_pages is 0).
        assert_eq!(unusable_free_index(&[0; 11], 3), 1000);
        // Only order-0 pages: all unusable for order 3.
        assert_eq!(unusable_free_index(&[8, 0, 0, 0], 3), 1000);
        // One order-3 block and 8 single pages: half unusable.
        assert_eq!(unusable_free_index(&[8, 0, 0, 1], 3), 500);
        // Everything in large blocks: 0.
        let mut v = [0usize; 11];
        v[10] = 4;
        assert_eq!(unusable_free_index(&v, 9), 0);
        assert_eq!(idx(500), "0.500");
        assert_eq!(idx(1000), "1.000");
    }

    #[test]
    fn json_strings() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(json_str("\u{1b}[2J\u{9b}"), "\"\\u001b[2J\\u009b\"");
    }

    #[test]
    fn text_escapes_control_characters() {
        let mut s = String::new();
        EscapeControls(&mut s)
            .write_str("a\u{1b}]0;x\u{7}\tb\r\n\u{9b}c")
            .unwrap();
        assert_eq!(s, "a\\x1b]0;x\\x07\tb\\x0d\n\\u{9b}c");
    }
}
