//! What `kmem top` shows, parsed from the text of /proc files (the host's, a simulated
//! machine's, or the ones a process using libkmem_malloc.so publishes): the formats are
//! Linux's (mm/slab_common.c `slab_show`, mm/vmstat.c `frag_show` and `zoneinfo_show`).

#![forbid(unsafe_code)]

use std::time::Instant;

/// The raw text of one sample.
#[derive(Clone, Debug)]
pub struct Sample {
    /// `/proc/slabinfo`, or why it could not be read.
    pub slabinfo: Result<String, String>,
    /// `/proc/buddyinfo`.
    pub buddyinfo: String,
    /// `/proc/zoneinfo`.
    pub zoneinfo: String,
    /// Event counters: allocs, frees, faults, swaps (`None`: not known for this source).
    pub counters: [Option<u64>; 4],
    /// Events replayed so far / of the trace, for a replay (or lines of a script).
    pub progress: Option<(usize, usize)>,
    /// What `progress` counts.
    pub progress_unit: &'static str,
}

impl Default for Sample {
    fn default() -> Self {
        Sample {
            slabinfo: Ok(String::new()),
            buddyinfo: String::new(),
            zoneinfo: String::new(),
            counters: [None; 4],
            progress: None,
            progress_unit: "events",
        }
    }
}

/// Names of [`Sample::counters`].
pub const COUNTER_NAMES: [&str; 4] = ["allocs/s", "frees/s", "faults/s", "swaps/s"];

/// One /proc/slabinfo line.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheRow {
    /// Cache name.
    pub name: String,
    /// Objects in use.
    pub active: u64,
    /// Objects.
    pub objs: u64,
    /// Object size in bytes.
    pub objsize: u64,
    /// Slabs.
    pub slabs: u64,
    /// Memory of the slabs in KiB.
    pub kib: u64,
}

impl CacheRow {
    /// Objects in use, percent.
    pub fn use_pct(&self) -> u64 {
        (self.active * 100).checked_div(self.objs).unwrap_or(0)
    }
}

/// One zone: buddyinfo and zoneinfo together.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ZoneRow {
    /// `Node N, zone NAME`.
    pub node: u32,
    /// Zone name.
    pub name: String,
    /// Free blocks per order.
    pub blocks: Vec<u64>,
    /// Free pages.
    pub free: u64,
    /// Watermarks.
    pub min: u64,
    /// Watermarks.
    pub low: u64,
    /// Watermarks.
    pub high: u64,
    /// Managed pages.
    pub managed: u64,
}

/// Parses /proc/slabinfo (version 2.1).
pub fn parse_slabinfo(s: &str) -> Vec<CacheRow> {
    let mut v = Vec::new();
    for line in s.lines() {
        if line.starts_with("slabinfo") || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        // name active objs objsize perslab pagesperslab : tunables a b c : slabdata act num sh
        if f.len() < 16 {
            continue;
        }
        let n = |i: usize| f[i].parse::<u64>().unwrap_or(0);
        let slabs = n(14);
        v.push(CacheRow {
            name: f[0].to_string(),
            active: n(1),
            objs: n(2),
            objsize: n(3),
            slabs,
            kib: slabs * n(5) * 4,
        });
    }
    v
}

/// Parses /proc/buddyinfo and /proc/zoneinfo into zones.
pub fn parse_zones(buddyinfo: &str, zoneinfo: &str) -> Vec<ZoneRow> {
    let mut zones: Vec<ZoneRow> = Vec::new();
    for line in buddyinfo.lines() {
        let Some((head, rest)) = line.split_once("zone") else {
            continue;
        };
        let node = head
            .trim_start_matches("Node")
            .trim()
            .trim_end_matches(',')
            .parse()
            .unwrap_or(0);
        let mut it = rest.split_whitespace();
        let name = it.next().unwrap_or("").to_string();
        let blocks = it.filter_map(|x| x.parse().ok()).collect();
        zones.push(ZoneRow {
            node,
            name,
            blocks,
            ..ZoneRow::default()
        });
    }
    let mut cur: Option<usize> = None;
    for line in zoneinfo.lines() {
        if let Some(rest) = line.strip_prefix("Node ") {
            let (node, name) = rest.split_once(", zone").unwrap_or(("", ""));
            let node: u32 = node.trim().parse().unwrap_or(0);
            let name = name.trim();
            cur = zones.iter().position(|z| z.node == node && z.name == name);
            if cur.is_none() {
                zones.push(ZoneRow {
                    node,
                    name: name.to_string(),
                    ..ZoneRow::default()
                });
                cur = Some(zones.len() - 1);
            }
            continue;
        }
        let Some(z) = cur.map(|i| &mut zones[i]) else {
            continue;
        };
        let f: Vec<&str> = line.split_whitespace().collect();
        let val = |i: usize| f.get(i).and_then(|x| x.parse().ok()).unwrap_or(0);
        match f.as_slice() {
            ["pages", "free", ..] => z.free = val(2),
            ["min", _] => z.min = val(1),
            ["low", _] => z.low = val(1),
            ["high", _] => z.high = val(1),
            ["managed", _] => z.managed = val(1),
            ["pagesets"] => cur = None,
            _ => {}
        }
    }
    // Zones with no memory (zoneinfo lists them with zero pages; buddyinfo leaves them out).
    zones.retain(|z| z.managed > 0 || !z.blocks.is_empty());
    zones
}

/// How caches are sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Slab memory (the default, as slabtop's `c`).
    Size,
    /// Objects.
    Objs,
    /// Objects in use.
    Active,
    /// Use percentage.
    Use,
    /// Object size.
    ObjSize,
    /// Name.
    Name,
}

impl SortKey {
    /// All keys in the order `s` cycles through them.
    pub const ALL: [SortKey; 6] = [
        SortKey::Size,
        SortKey::Objs,
        SortKey::Active,
        SortKey::Use,
        SortKey::ObjSize,
        SortKey::Name,
    ];
    /// The column title.
    pub fn name(self) -> &'static str {
        match self {
            SortKey::Size => "CACHE SIZE",
            SortKey::Objs => "OBJS",
            SortKey::Active => "ACTIVE",
            SortKey::Use => "USE",
            SortKey::ObjSize => "OBJ SIZE",
            SortKey::Name => "NAME",
        }
    }
    /// The next key.
    pub fn next(self) -> SortKey {
        let i = Self::ALL.iter().position(|k| *k == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }
    /// The key a slabtop-like letter picks.
    pub fn from_key(c: char) -> Option<SortKey> {
        Some(match c {
            'c' => SortKey::Size,
            'o' => SortKey::Objs,
            'a' => SortKey::Active,
            'u' => SortKey::Use,
            'S' => SortKey::ObjSize,
            'n' => SortKey::Name,
            _ => return None,
        })
    }
}

/// What one screen shows.
#[derive(Clone, Debug)]
pub struct Frame {
    /// What is watched.
    pub source: String,
    /// Lines to show above the tables (errors, progress).
    pub notes: Vec<String>,
    /// Caches, sorted and filtered.
    pub caches: Vec<CacheRow>,
    /// Zones.
    pub zones: Vec<ZoneRow>,
    /// Rates per second, by [`COUNTER_NAMES`].
    pub rates: [Option<f64>; 4],
    /// Sort key.
    pub sort: SortKey,
    /// Filter (substring of the cache name).
    pub filter: String,
    /// Whether updates are paused.
    pub paused: bool,
}

/// A sample with the time it was taken.
pub struct Timed {
    /// The sample.
    pub s: Sample,
    /// When.
    pub t: Instant,
}

/// Builds a frame from the latest sample and an older one (for rates).
pub fn frame(source: &str, now: &Timed, old: Option<&Timed>, sort: SortKey, filter: &str) -> Frame {
    let mut notes = Vec::new();
    let mut caches = match &now.s.slabinfo {
        Ok(t) => parse_slabinfo(t),
        Err(e) => {
            notes.push(e.clone());
            Vec::new()
        }
    };
    caches.retain(|c| filter.is_empty() || c.name.contains(filter));
    sort_caches(&mut caches, sort);
    if let Some((d, t)) = now.s.progress {
        notes.push(format!("ran {d} of {t} {}", now.s.progress_unit));
    }
    let mut rates = [None; 4];
    if let Some(o) = old {
        let dt = now.t.duration_since(o.t).as_secs_f64();
        for (i, r) in rates.iter_mut().enumerate() {
            if let (Some(a), Some(b)) = (now.s.counters[i], o.s.counters[i]) {
                if dt > 0.0 {
                    *r = Some(a.saturating_sub(b) as f64 / dt);
                }
            }
        }
    }
    Frame {
        source: source.to_string(),
        notes,
        caches,
        zones: parse_zones(&now.s.buddyinfo, &now.s.zoneinfo),
        rates,
        sort,
        filter: filter.to_string(),
        paused: false,
    }
}

/// Sorts caches by `key` (largest first; names A to Z).
pub fn sort_caches(c: &mut [CacheRow], key: SortKey) {
    match key {
        SortKey::Size => c.sort_by(|a, b| b.kib.cmp(&a.kib).then(a.name.cmp(&b.name))),
        SortKey::Objs => c.sort_by(|a, b| b.objs.cmp(&a.objs).then(a.name.cmp(&b.name))),
        SortKey::Active => c.sort_by(|a, b| b.active.cmp(&a.active).then(a.name.cmp(&b.name))),
        SortKey::Use => c.sort_by(|a, b| b.use_pct().cmp(&a.use_pct()).then(a.name.cmp(&b.name))),
        SortKey::ObjSize => c.sort_by(|a, b| b.objsize.cmp(&a.objsize).then(a.name.cmp(&b.name))),
        SortKey::Name => c.sort_by(|a, b| a.name.cmp(&b.name)),
    }
}

/// The frame as text (`--once`).
pub fn text(f: &Frame, max_caches: usize) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "kmem top — {}", f.source);
    for n in &f.notes {
        let _ = writeln!(s, "note: {n}");
    }
    let rates: Vec<String> = COUNTER_NAMES
        .iter()
        .zip(f.rates)
        .map(|(n, r)| match r {
            Some(v) => format!("{n} {v:.0}"),
            None => format!("{n} -"),
        })
        .collect();
    let _ = writeln!(s, "rates: {}", rates.join("  "));
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<7} {:<8} {:>9} {:>8} {:>8} {:>8} {:>9}  free blocks per order 0..10",
        "NODE", "ZONE", "FREE", "MIN", "LOW", "HIGH", "MANAGED"
    );
    for z in &f.zones {
        let b: Vec<String> = z.blocks.iter().map(u64::to_string).collect();
        let _ = writeln!(
            s,
            "{:<7} {:<8} {:>9} {:>8} {:>8} {:>8} {:>9}  {}",
            z.node,
            z.name,
            z.free,
            z.min,
            z.low,
            z.high,
            z.managed,
            b.join(" ")
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:>8} {:>8} {:>4} {:>9} {:>7} {:>10}  NAME   (sorted by {})",
        "OBJS",
        "ACTIVE",
        "USE",
        "OBJ SIZE",
        "SLABS",
        "CACHE SIZE",
        f.sort.name()
    );
    for c in f.caches.iter().take(max_caches) {
        let _ = writeln!(
            s,
            "{:>8} {:>8} {:>3}% {:>8.2}K {:>7} {:>9}K  {}",
            c.objs,
            c.active,
            c.use_pct(),
            c.objsize as f64 / 1024.0,
            c.slabs,
            c.kib,
            c.name
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_linux_formats() {
        let slab = "slabinfo - version: 2.1\n# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n\
kmalloc-64          1200   1280     64   64    1 : tunables    0    0    0 : slabdata     20     20      0\n\
dentry               100    210    192   21    1 : tunables    0    0    0 : slabdata     10     10      0\n";
        let c = parse_slabinfo(slab);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].kib, 80);
        assert_eq!(c[1].use_pct(), 47);
        let buddy = "Node 0, zone      DMA      1      0      1      0      2      1      1      0      1      1      3 \n";
        let zi = "Node 0, zone      DMA\n  per-node stats\n      nr_inactive_anon 0\n  pages free     3840\n        boost    0\n        min      33\n        low      41\n        high     49\n        spanned  4095\n        present  3998\n        managed  3840\n  pagesets\n    cpu: 0\n              count: 0\n              high:  0\n";
        let z = parse_zones(buddy, zi);
        assert_eq!(z.len(), 1);
        assert_eq!(
            (z[0].free, z[0].min, z[0].low, z[0].high, z[0].managed),
            (3840, 33, 41, 49, 3840)
        );
        assert_eq!(z[0].blocks.len(), 11);
        assert_eq!(z[0].blocks[10], 3);
    }

    #[test]
    fn sort_keys_cycle() {
        let mut k = SortKey::Size;
        for _ in 0..SortKey::ALL.len() {
            k = k.next();
        }
        assert_eq!(k, SortKey::Size);
        assert_eq!(SortKey::from_key('n'), Some(SortKey::Name));
    }
}
