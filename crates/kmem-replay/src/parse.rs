//! Parsing the text of `/sys/kernel/tracing/trace` with the `kmem` events enabled.
//!
//! One event per line, after a `#` header:
//!
//! ```text
//!  TASK-PID   [CPU] FLAGS  TIMESTAMP: EVENT: field=value field=value ...
//! ```
//!
//! The fields are those printed by the `TP_printk` formats of include/trace/events/kmem.h
//! (Linux 6.x):
//!
//! - `kmalloc`: `call_site ptr bytes_req bytes_alloc gfp_flags node accounted`
//! - `kmem_cache_alloc`: `call_site ptr name bytes_req bytes_alloc gfp_flags node accounted`
//! - `kfree`: `call_site ptr`; `kmem_cache_free`: `call_site ptr name`
//! - `mm_page_alloc`: `page pfn order migratetype gfp_flags`
//! - `mm_page_free`: `page pfn order`
//!
//! Other events (e.g. `mm_page_pcpu_drain`) are counted and ignored; lines that do not parse
//! are counted as malformed (the first few are kept for the report) and skipped.
//!
//! The parser works on bytes, allocates nothing per line (GFP strings and cache names are
//! interned), and the decompression of `.xz` input runs in its own thread, in parallel with
//! the parsing.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc;

use kmem::GfpFlags;

/// The kind of a trace event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventKind {
    /// `kmalloc`
    Kmalloc = 0,
    /// `kfree`
    Kfree = 1,
    /// `kmem_cache_alloc`
    KmemCacheAlloc = 2,
    /// `kmem_cache_free`
    KmemCacheFree = 3,
    /// `mm_page_alloc`
    MmPageAlloc = 4,
    /// `mm_page_free`
    MmPageFree = 5,
}

/// Number of [`EventKind`]s.
pub const NR_EVENT_KINDS: usize = 6;

impl EventKind {
    /// All kinds, in index order.
    pub const ALL: [EventKind; NR_EVENT_KINDS] = [
        EventKind::Kmalloc,
        EventKind::Kfree,
        EventKind::KmemCacheAlloc,
        EventKind::KmemCacheFree,
        EventKind::MmPageAlloc,
        EventKind::MmPageFree,
    ];

    /// The event's name in the trace.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Kmalloc => "kmalloc",
            EventKind::Kfree => "kfree",
            EventKind::KmemCacheAlloc => "kmem_cache_alloc",
            EventKind::KmemCacheFree => "kmem_cache_free",
            EventKind::MmPageAlloc => "mm_page_alloc",
            EventKind::MmPageFree => "mm_page_free",
        }
    }

    fn from_name(s: &[u8]) -> Option<EventKind> {
        Some(match s {
            b"kmalloc" => EventKind::Kmalloc,
            b"kfree" => EventKind::Kfree,
            b"kmem_cache_alloc" => EventKind::KmemCacheAlloc,
            b"kmem_cache_free" => EventKind::KmemCacheFree,
            b"mm_page_alloc" => EventKind::MmPageAlloc,
            b"mm_page_free" => EventKind::MmPageFree,
            _ => return None,
        })
    }

    /// Whether the event allocates.
    pub const fn is_alloc(self) -> bool {
        matches!(
            self,
            EventKind::Kmalloc | EventKind::KmemCacheAlloc | EventKind::MmPageAlloc
        )
    }
}

/// No cache name ([`Event::name`]).
pub const NO_NAME: u32 = u32::MAX;

/// One parsed event (32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The object's address (`ptr`), or the page frame number for page events.
    pub addr: u64,
    /// `bytes_req` (0 when absent).
    pub bytes_req: u32,
    /// `bytes_alloc` (0 when absent).
    pub bytes_alloc: u32,
    /// `gfp_flags` (empty when absent).
    pub gfp: GfpFlags,
    /// Index of the cache name in [`Trace::names`], or [`NO_NAME`].
    pub name: u32,
    /// The CPU that recorded the event.
    pub cpu: u16,
    /// The kind.
    pub kind: EventKind,
    /// `order` of page events.
    pub order: u8,
    /// `migratetype` of `mm_page_alloc` (-1 when absent).
    pub migratetype: i8,
    /// `accounted=true`.
    pub accounted: bool,
}

/// A whole parsed trace.
#[derive(Debug, Default)]
pub struct Trace {
    /// The events, in trace order.
    pub events: Vec<Event>,
    /// Interned cache names.
    pub names: Vec<String>,
    /// Lines read (header included).
    pub lines: u64,
    /// Lines that did not parse.
    pub malformed: u64,
    /// The first few malformed lines, with their line numbers.
    pub malformed_examples: Vec<(u64, String)>,
    /// Events of other kinds, by name.
    pub other_events: Vec<(String, u64)>,
    /// `#P:N` of the header: CPUs of the traced machine.
    pub header_cpus: Option<usize>,
    /// `entries-in-buffer/entries-written` of the header (a difference means lost events).
    pub header_entries: Option<(u64, u64)>,
}

impl Trace {
    /// Whether anything read was ftrace output: an event (replayed or not) or a header line
    /// of the trace file (`#P:N`, `entries-in-buffer/entries-written`). Random bytes, a gzip
    /// file or some other text are not.
    pub fn looks_like_a_trace(&self) -> bool {
        !self.events.is_empty()
            || !self.other_events.is_empty()
            || self.header_cpus.is_some()
            || self.header_entries.is_some()
    }
}

/// How many malformed lines to keep as examples.
const MALFORMED_EXAMPLES: usize = 5;

/// How much of a malformed line an example keeps.
const EXAMPLE_BYTES: usize = 200;

/// The longest line the parser reads whole. An ftrace event line is a few hundred bytes (its
/// fields are bounded by the event's `TP_printk`); a longer "line" (binary data without
/// newlines) is counted malformed and skipped without being buffered.
pub const MAX_LINE: usize = 64 << 10;

/// The `.xz` magic (the xz file format specification, section 2.1.1.1).
const XZ_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0];

/// A parse error of one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineError {
    /// No `[CPU]` field.
    NoCpu,
    /// No `TIMESTAMP: EVENT:` part.
    NoEvent,
    /// A required field is missing or not a number.
    BadField(&'static str),
    /// A GFP flag name kmem does not know.
    BadGfp,
}

/// The parser's interning state and counters.
pub struct Parser {
    trace: Trace,
    gfp_cache: HashMap<Vec<u8>, GfpFlags>,
    name_ids: HashMap<Vec<u8>, u32>,
    others: HashMap<Vec<u8>, u64>,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    /// A parser with nothing read.
    pub fn new() -> Self {
        Self {
            trace: Trace::default(),
            gfp_cache: HashMap::new(),
            name_ids: HashMap::new(),
            others: HashMap::new(),
        }
    }

    /// Parses one line (with or without its newline) and records the result.
    pub fn feed_line(&mut self, line: &[u8]) {
        self.trace.lines += 1;
        let line = trim_end(line);
        if line.is_empty() {
            return;
        }
        if line[0] == b'#' {
            self.header_line(line);
            return;
        }
        match self.parse_event(line) {
            Ok(Some(ev)) => self.trace.events.push(ev),
            Ok(None) => {}
            Err(e) => {
                self.trace.malformed += 1;
                if self.trace.malformed_examples.len() < MALFORMED_EXAMPLES {
                    let text = String::from_utf8_lossy(&line[..line.len().min(EXAMPLE_BYTES)]);
                    self.trace
                        .malformed_examples
                        .push((self.trace.lines, format!("{e:?}: {text}")));
                }
            }
        }
    }

    /// Ends parsing and returns the trace.
    pub fn finish(mut self) -> Trace {
        let mut others: Vec<(String, u64)> = self
            .others
            .drain()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect();
        others.sort();
        self.trace.other_events = others;
        self.trace
    }

    fn header_line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        if let Some(i) = text.find("#P:") {
            let digits: String = text[i + 3..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            self.trace.header_cpus = digits.parse().ok();
        }
        if let Some(i) = text.find("entries-in-buffer/entries-written:") {
            let rest = text[i + 34..].trim_start();
            let mut it = rest.split(|c: char| c == '/' || c.is_whitespace());
            if let (Some(a), Some(b)) = (it.next(), it.next()) {
                if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                    self.trace.header_entries = Some((a, b));
                }
            }
        }
    }

    /// Parses an event line; `Ok(None)` for events that are not replayed.
    fn parse_event(&mut self, line: &[u8]) -> Result<Option<Event>, LineError> {
        let (cpu, after) = find_cpu(line).ok_or(LineError::NoCpu)?;
        let rest = &line[after..];
        // FLAGS and TIMESTAMP, then ": EVENT: fields".
        let colon = find(rest, b": ").ok_or(LineError::NoEvent)?;
        let rest = &rest[colon + 2..];
        let (name, fields) = match find(rest, b": ") {
            Some(i) => (&rest[..i], &rest[i + 2..]),
            None => (trim_end_colon(rest), &[][..]),
        };
        let Some(kind) = EventKind::from_name(name) else {
            *self.others.entry(name.to_vec()).or_insert(0) += 1;
            return Ok(None);
        };
        let mut ev = Event {
            addr: 0,
            bytes_req: 0,
            bytes_alloc: 0,
            gfp: GfpFlags::empty,
            name: NO_NAME,
            cpu,
            kind,
            order: 0,
            migratetype: -1,
            accounted: false,
        };
        let mut have_addr = false;
        let mut have_order = false;
        let mut have_sizes = 0;
        let mut have_gfp = false;
        for tok in fields.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
            let Some(eq) = tok.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (k, v) = (&tok[..eq], &tok[eq + 1..]);
            match k {
                b"ptr" => {
                    ev.addr = parse_hex(v).ok_or(LineError::BadField("ptr"))?;
                    have_addr = true;
                }
                b"pfn" => {
                    ev.addr = parse_hex(v).ok_or(LineError::BadField("pfn"))?;
                    have_addr = true;
                }
                b"bytes_req" => {
                    ev.bytes_req = parse_dec(v).ok_or(LineError::BadField("bytes_req"))?;
                    have_sizes += 1;
                }
                b"bytes_alloc" => {
                    ev.bytes_alloc = parse_dec(v).ok_or(LineError::BadField("bytes_alloc"))?;
                    have_sizes += 1;
                }
                b"order" => {
                    let o = parse_dec(v).ok_or(LineError::BadField("order"))?;
                    ev.order = u8::try_from(o).map_err(|_| LineError::BadField("order"))?;
                    have_order = true;
                }
                b"migratetype" => {
                    let m = parse_dec(v).ok_or(LineError::BadField("migratetype"))?;
                    ev.migratetype = i8::try_from(m).unwrap_or(-1);
                }
                b"gfp_flags" => {
                    ev.gfp = self.gfp(v)?;
                    have_gfp = true;
                }
                b"name" => ev.name = self.name(v),
                b"accounted" => ev.accounted = v == b"true",
                _ => {}
            }
        }
        let ok = have_addr
            && match kind {
                EventKind::Kmalloc => have_sizes == 2 && have_gfp,
                EventKind::KmemCacheAlloc => have_sizes == 2 && have_gfp && ev.name != NO_NAME,
                EventKind::KmemCacheFree | EventKind::Kfree => true,
                EventKind::MmPageAlloc => have_order && have_gfp,
                EventKind::MmPageFree => have_order,
            };
        if !ok {
            return Err(LineError::BadField("missing field"));
        }
        Ok(Some(ev))
    }

    fn gfp(&mut self, v: &[u8]) -> Result<GfpFlags, LineError> {
        if let Some(&g) = self.gfp_cache.get(v) {
            return Ok(g);
        }
        let s = core::str::from_utf8(v).map_err(|_| LineError::BadGfp)?;
        // show_gfp_flags prints "none" for 0 on older kernels.
        let g = if s == "none" {
            GfpFlags::empty
        } else {
            GfpFlags::parse(s).map_err(|_| LineError::BadGfp)?
        };
        self.gfp_cache.insert(v.to_vec(), g);
        Ok(g)
    }

    fn name(&mut self, v: &[u8]) -> u32 {
        if let Some(&id) = self.name_ids.get(v) {
            return id;
        }
        let id = self.trace.names.len() as u32;
        self.trace
            .names
            .push(String::from_utf8_lossy(v).into_owned());
        self.name_ids.insert(v.to_vec(), id);
        id
    }
}

fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r' | b' '] = s {
        s = rest;
    }
    s
}

fn trim_end_colon(s: &[u8]) -> &[u8] {
    s.strip_suffix(b":").unwrap_or(s)
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// Finds `[NNN]` (the CPU field) and returns the CPU and the index after the `]`.
/// The task name before it may itself contain brackets, so the first bracketed all-digit
/// field wins.
fn find_cpu(line: &[u8]) -> Option<(u16, usize)> {
    let mut i = 0;
    while let Some(off) = line[i..].iter().position(|&b| b == b'[') {
        let start = i + off + 1;
        let mut j = start;
        let mut v: u32 = 0;
        while j < line.len() && line[j].is_ascii_digit() {
            v = v
                .saturating_mul(10)
                .saturating_add(u32::from(line[j] - b'0'));
            j += 1;
        }
        if j > start && j < line.len() && line[j] == b']' {
            return Some((u16::try_from(v).ok()?, j + 1));
        }
        i = start;
    }
    None
}

fn parse_hex(v: &[u8]) -> Option<u64> {
    let v = v
        .strip_prefix(b"0x")
        .or_else(|| v.strip_prefix(b"0X"))
        .unwrap_or(v);
    if v.is_empty() || v.len() > 16 {
        return None;
    }
    let mut out = 0u64;
    for &b in v {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        out = (out << 4) | u64::from(d);
    }
    Some(out)
}

fn parse_dec(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 10 {
        return None;
    }
    let mut out = 0u64;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        out = out * 10 + u64::from(b - b'0');
    }
    u32::try_from(out).ok()
}

/// Parses a whole trace from a reader of plain text.
///
/// # Errors
/// The reader's I/O error.
pub fn parse_reader(r: impl BufRead) -> io::Result<Trace> {
    let mut r = r;
    let mut p = Parser::new();
    let mut line = Vec::with_capacity(512);
    while let Some(whole) = read_line_bounded(&mut r, &mut line)? {
        if whole {
            p.feed_line(&line);
        } else {
            p.trace.lines += 1;
            p.trace.malformed += 1;
            if p.trace.malformed_examples.len() < MALFORMED_EXAMPLES {
                let text = String::from_utf8_lossy(&line[..line.len().min(EXAMPLE_BYTES)]);
                p.trace.malformed_examples.push((
                    p.trace.lines,
                    format!("line longer than {MAX_LINE} bytes: {text}…"),
                ));
            }
        }
    }
    Ok(p.finish())
}

/// Reads the next line (newline included) into `line`, keeping at most [`MAX_LINE`] bytes of
/// it: `None` at the end of input, `Some(false)` for a line that was longer (the rest of it is
/// read and dropped).
fn read_line_bounded(r: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<Option<bool>> {
    line.clear();
    let mut read_any = false;
    let mut whole = true;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(read_any.then_some(whole));
        }
        read_any = true;
        let (n, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        if n > room {
            whole = false;
        }
        line.extend_from_slice(&buf[..n.min(room)]);
        r.consume(n);
        if done {
            return Ok(Some(whole));
        }
    }
}

/// Size of the chunks the decompression thread hands to the parser.
const CHUNK: usize = 1 << 20;

/// A reader over chunks sent by the decompression thread.
struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(c)) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Parses a trace file, plain text or `.xz` (recognised by its magic, whatever the name).
/// `.xz` input is decompressed in a second thread while the first parses.
///
/// # Errors
/// Opening or reading the file, or a corrupt `.xz` stream.
pub fn parse_file(path: &Path) -> io::Result<Trace> {
    let mut f = File::open(path)?;
    let mut magic = [0u8; 6];
    let mut got = 0;
    while got < magic.len() {
        let n = f.read(&mut magic[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = magic[..got].to_vec();
    let src = io::Cursor::new(head).chain(f);
    if got == magic.len() && magic == XZ_MAGIC {
        let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
        let handle = std::thread::Builder::new()
            .name("xz".into())
            .spawn(move || {
                let mut dec = xz2::read::XzDecoder::new_multi_decoder(BufReader::new(src));
                loop {
                    let mut buf = vec![0u8; CHUNK];
                    let mut filled = 0;
                    while filled < CHUNK {
                        match dec.read(&mut buf[filled..]) {
                            Ok(0) => break,
                            Ok(n) => filled += n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => {
                                let _ = tx.send(Err(e));
                                return;
                            }
                        }
                    }
                    if filled == 0 {
                        return;
                    }
                    buf.truncate(filled);
                    if tx.send(Ok(buf)).is_err() {
                        return;
                    }
                }
            })?;
        let reader = ChunkReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        };
        let t = parse_reader(BufReader::with_capacity(CHUNK, reader));
        let _ = handle.join();
        t
    } else {
        parse_reader(BufReader::with_capacity(CHUNK, src))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> (Trace, Option<Event>) {
        let mut p = Parser::new();
        p.feed_line(line.as_bytes());
        let t = p.finish();
        let e = t.events.first().copied();
        (t, e)
    }

    #[test]
    fn kmem_cache_alloc_line() {
        let (t, e) = one("            bash-14078   [001] .....   330.244838: kmem_cache_alloc: call_site=alloc_empty_file+0x3c/0x110 ptr=ffff88810483ab40 name=filp bytes_req=184 bytes_alloc=192 gfp_flags=GFP_KERNEL node=-1 accounted=true\n");
        let e = e.unwrap();
        assert_eq!(e.kind, EventKind::KmemCacheAlloc);
        assert_eq!(e.cpu, 1);
        assert_eq!(e.addr, 0xffff88810483ab40);
        assert_eq!((e.bytes_req, e.bytes_alloc), (184, 192));
        assert_eq!(e.gfp, GfpFlags::GFP_KERNEL);
        assert!(e.accounted);
        assert_eq!(t.names[e.name as usize], "filp");
    }

    #[test]
    fn page_lines() {
        let (_, e) = one("cc1-14448  [001] ..... 337.000894: mm_page_alloc: page=ffffea000553a540 pfn=0x154e95 order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP");
        let e = e.unwrap();
        assert_eq!(e.kind, EventKind::MmPageAlloc);
        assert_eq!((e.addr, e.order, e.migratetype), (0x154e95, 0, 1));
        assert_eq!(
            e.gfp,
            GfpFlags::GFP_HIGHUSER_MOVABLE | GfpFlags::__GFP_ZERO | GfpFlags::__GFP_COMP
        );
        let (_, e) = one(
            "<idle>-0 [000] d.s.. 1.5: mm_page_free: page=ffffea000553a540 pfn=0x154e95 order=2",
        );
        let e = e.unwrap();
        assert_eq!(
            (e.kind, e.cpu, e.addr, e.order),
            (EventKind::MmPageFree, 0, 0x154e95, 2)
        );
    }

    #[test]
    fn task_names_with_spaces_and_brackets() {
        let (_, e) = one("kworker/u4:1 [x] [zz]-99 [003] ..... 1.0: kfree: call_site=f+0x1/0x2 ptr=ffff888100000010");
        let e = e.unwrap();
        assert_eq!(
            (e.kind, e.cpu, e.addr),
            (EventKind::Kfree, 3, 0xffff888100000010)
        );
    }

    #[test]
    fn header_others_and_malformed() {
        let text = "# tracer: nop\n#\n# entries-in-buffer/entries-written: 10/12   #P:2\n\
                    a-1 [000] ..... 1.0: mm_page_pcpu_drain: page=0 pfn=0x1 order=0 migratetype=0\n\
                    a-1 [000] ..... 1.0: kmalloc: ptr=zz bytes_req=1 bytes_alloc=8 gfp_flags=GFP_KERNEL\n\
                    a-1 [000] ..... 1.0: kmalloc: ptr=10 bytes_req=1 bytes_alloc=8 gfp_flags=GFP_BOGUS\n\
                    garbage\n\
                    a-1 [000] ..... 1.0: kfree: call_site=x ptr=10\n";
        let t = parse_reader(text.as_bytes()).unwrap();
        assert_eq!(t.header_cpus, Some(2));
        assert_eq!(t.header_entries, Some((10, 12)));
        assert_eq!(t.other_events, vec![("mm_page_pcpu_drain".to_string(), 1)]);
        assert_eq!(t.malformed, 3);
        assert_eq!(t.events.len(), 1);
        assert_eq!(t.lines, 8);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_hex(b"0x1f"), Some(31));
        assert_eq!(parse_hex(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_hex(b"1ffffffffffffffff"), None);
        assert_eq!(parse_dec(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_dec(b"4294967296"), None);
        assert_eq!(parse_dec(b"-1"), None);
    }
}
