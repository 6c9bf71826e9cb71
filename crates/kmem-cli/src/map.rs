//! `kmem map`: a picture of a machine's physical memory, one cell per page (or per pageblock
//! on machines over 1 GiB), coloured by owner, with each pageblock's migratetype as a band,
//! zone boundaries and a legend. SVG is written as text; PNG is rasterised here from the same
//! cell grid (no SVG renderer involved).

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt::Write as _;

use kmem::mmzone::{MigrateType, PAGEBLOCK_NR_PAGES};
use kmem::platform::Platform;
use kmem::proc::pageowner::PageOwner;
use kmem::{Machine, Pfn};

/// Cells per row: one pageblock of pages per row in page mode.
pub const COLS: usize = PAGEBLOCK_NR_PAGES;
/// Machines with more pages than this get one cell per pageblock.
const PAGE_MODE_MAX: usize = 1 << 18;
/// Slab caches with a colour of their own (the largest); the rest share "slab (other)".
const TOP_CACHES: usize = 8;

/// A legend entry: colour and label.
#[derive(Clone, Debug)]
pub struct Swatch {
    /// RGB colour.
    pub rgb: [u8; 3],
    /// What it stands for.
    pub label: String,
    /// Pages of this kind.
    pub pages: u64,
}

/// A zone's extent on the grid.
#[derive(Clone, Debug)]
pub struct ZoneMark {
    /// Zone name.
    pub name: &'static str,
    /// First cell.
    pub start_cell: usize,
}

/// The picture's data: a grid of cells with a palette.
pub struct MemMap {
    /// Pages per cell (1, or a pageblock).
    pub pages_per_cell: usize,
    /// Palette index of every cell.
    pub cells: Vec<u8>,
    /// Migratetype index of every cell's pageblock (`u8::MAX`: none).
    pub mt: Vec<u8>,
    /// The palette (indices into it are in `cells`).
    pub palette: Vec<Swatch>,
    /// Zones in order.
    pub zones: Vec<ZoneMark>,
    /// Title line.
    pub title: String,
}

const HOLE: [u8; 3] = [0x1c, 0x1c, 0x1c];
const FREE_PCP: [u8; 3] = [0xc7, 0xe9, 0xc0];
/// Free blocks by order 0..=10: pale yellow (fragmented) to deep green (large blocks).
const FREE_RGB: [[u8; 3]; 11] = [
    [0xff, 0xf7, 0xbc],
    [0xf7, 0xfc, 0xb9],
    [0xd9, 0xf0, 0xa3],
    [0xad, 0xdd, 0x8e],
    [0x78, 0xc6, 0x79],
    [0x5a, 0xb4, 0x60],
    [0x41, 0xab, 0x5d],
    [0x23, 0x84, 0x43],
    [0x00, 0x6d, 0x2c],
    [0x00, 0x5a, 0x32],
    [0x00, 0x44, 0x1b],
];
const CACHE_RGB: [[u8; 3]; TOP_CACHES] = [
    [0x1f, 0x77, 0xb4],
    [0x94, 0x67, 0xbd],
    [0x39, 0x3b, 0x79],
    [0x6b, 0xae, 0xd6],
    [0x84, 0x3c, 0x39],
    [0xbc, 0x80, 0xbd],
    [0x52, 0x54, 0xa3],
    [0x9e, 0xda, 0xe5],
];
/// Migratetype band colours (Unmovable, Movable, Reclaimable, HighAtomic, CMA, Isolate),
/// indexed by `MigrateType as usize`. The CMA band is listed in the legend only when the map
/// has CMA pageblocks (a machine booted with `cma=`).
pub const MT_RGB: [[u8; 3]; 6] = [
    [0xd6, 0x27, 0x28],
    [0x2c, 0xa0, 0x2c],
    [0xff, 0xbb, 0x78],
    [0x8c, 0x56, 0x4b],
    [0x17, 0xbe, 0xcf],
    [0x7f, 0x7f, 0x7f],
];

/// Palette indices of the fixed kinds (into [`MemMap::palette`]).
pub mod ix {
    pub const HOLE: u8 = 0;
    pub const RESERVED: u8 = 1;
    pub const MEMMAP: u8 = 2;
    pub const PCP: u8 = 3;
    pub const TABLE: u8 = 4;
    pub const VMALLOC: u8 = 5;
    pub const LARGE: u8 = 6;
    pub const ALLOC: u8 = 7;
    pub const SLAB_OTHER: u8 = 8;
    pub const FREE0: u8 = 9;
    pub const CACHE0: u8 = 20;
}

fn base_palette() -> Vec<Swatch> {
    let mut p: Vec<Swatch> = [
        (HOLE, "hole (no RAM)"),
        ([0x55, 0x55, 0x55], "reserved"),
        ([0x8c, 0x6d, 0x31], "memmap (struct page)"),
        (FREE_PCP, "free (per-CPU lists)"),
        ([0xff, 0x7f, 0x0e], "page tables"),
        ([0x17, 0xbe, 0xcf], "vmalloc"),
        ([0xe3, 0x77, 0xc2], "large kmalloc"),
        ([0xd6, 0x5f, 0x5f], "alloc_pages (other)"),
        ([0x7b, 0x9f, 0xc4], "slab (other caches)"),
    ]
    .into_iter()
    .map(|(rgb, l)| Swatch {
        rgb,
        label: l.to_string(),
        pages: 0,
    })
    .collect();
    for (o, rgb) in FREE_RGB.iter().enumerate() {
        p.push(Swatch {
            rgb: *rgb,
            label: format!("free, order {o}"),
            pages: 0,
        });
    }
    p
}

/// Takes the picture's data from a live machine.
pub fn snapshot<P: Platform>(m: &Machine<P>, title: &str) -> MemMap {
    let max = m.max_pfn().as_u64() as usize;
    let mut owners = vec![PageOwner::Hole; max];
    m.page_owners(Pfn::new(0), &mut owners);
    let mut names: HashMap<usize, String> = HashMap::new();
    m.for_each_cache_addr(&mut |a, n| {
        names.entry(a).or_insert_with(|| n.to_string());
    });
    // The largest caches by pages get their own colour.
    let mut per_cache: HashMap<usize, u64> = HashMap::new();
    for o in &owners {
        if let PageOwner::Slab(a) = o {
            *per_cache.entry(*a).or_default() += 1;
        }
    }
    let mut top: Vec<(usize, u64)> = per_cache.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(TOP_CACHES);
    let mut palette = base_palette();
    let mut cache_ix: HashMap<usize, u8> = HashMap::new();
    for (i, (a, _)) in top.iter().enumerate() {
        while palette.len() < usize::from(ix::CACHE0) + i {
            palette.push(Swatch {
                rgb: [0; 3],
                label: String::new(),
                pages: 0,
            });
        }
        palette.push(Swatch {
            rgb: CACHE_RGB[i],
            label: format!("slab: {}", names.get(a).map_or("?", String::as_str)),
            pages: 0,
        });
        cache_ix.insert(*a, ix::CACHE0 + i as u8);
    }
    let page_ix: Vec<u8> = owners
        .iter()
        .map(|o| match o {
            PageOwner::Hole => ix::HOLE,
            PageOwner::Reserved => ix::RESERVED,
            PageOwner::Memmap => ix::MEMMAP,
            PageOwner::Free(o) => ix::FREE0 + (*o).min(10),
            PageOwner::FreePcp => ix::PCP,
            PageOwner::Slab(a) => cache_ix.get(a).copied().unwrap_or(ix::SLAB_OTHER),
            PageOwner::LargeKmalloc => ix::LARGE,
            PageOwner::PageTable => ix::TABLE,
            PageOwner::Vmalloc => ix::VMALLOC,
            PageOwner::Allocated => ix::ALLOC,
        })
        .collect();
    for &c in &page_ix {
        palette[usize::from(c)].pages += 1;
    }
    let pages_per_cell = if max > PAGE_MODE_MAX {
        PAGEBLOCK_NR_PAGES
    } else {
        1
    };
    let cells = if pages_per_cell == 1 {
        page_ix
    } else {
        page_ix
            .chunks(pages_per_cell)
            .map(|ch| dominant(ch, palette.len()))
            .collect()
    };
    let mut mt = vec![u8::MAX; cells.len()];
    let mut zones = Vec::new();
    for z in m.zones() {
        if z.geo.spanned == 0 {
            continue;
        }
        let (s, e) = (z.geo.start_pfn.as_u64(), z.geo.end_pfn().as_u64());
        zones.push(ZoneMark {
            name: z.kind.name(),
            start_cell: s as usize / pages_per_cell,
        });
        let mut pfn = s;
        while pfn < e.min(max as u64) {
            let t = z.pageblock_migratetype(Pfn::new(pfn)) as u8;
            let c0 = pfn as usize / pages_per_cell;
            let next = ((pfn / PAGEBLOCK_NR_PAGES as u64) + 1) * PAGEBLOCK_NR_PAGES as u64;
            let c1 = (next.min(e) as usize).div_ceil(pages_per_cell);
            for c in mt.iter_mut().take(c1.min(cells.len())).skip(c0) {
                *c = t;
            }
            pfn = next;
        }
    }
    MemMap {
        pages_per_cell,
        cells,
        mt,
        palette,
        zones,
        title: title.to_string(),
    }
}

/// The most frequent palette index in `ch`.
fn dominant(ch: &[u8], n: usize) -> u8 {
    let mut count = vec![0u32; n];
    for &c in ch {
        count[usize::from(c)] += 1;
    }
    let mut best = 0;
    for (i, &k) in count.iter().enumerate() {
        if k > count[best] {
            best = i;
        }
    }
    best as u8
}

/// Geometry shared by the SVG and PNG renderers.
pub struct Layout {
    /// Pixels per cell side.
    pub cell: usize,
    /// Left margin (migratetype band and row labels).
    pub left: usize,
    /// Top margin (title).
    pub top: usize,
    /// Grid columns.
    pub cols: usize,
    /// Grid rows.
    pub rows: usize,
    /// Whole image.
    pub width: usize,
    /// Whole image.
    pub height: usize,
}

impl MemMap {
    /// The migratetype bands the legend lists: CMA only when the map shows a CMA pageblock.
    fn mt_bands(&self) -> impl Iterator<Item = (usize, &'static [u8; 3])> + '_ {
        let cma = MigrateType::Cma as usize;
        let has_cma = self.mt.iter().any(|&t| usize::from(t) == cma);
        MT_RGB
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i != cma || has_cma)
    }

    /// The picture's geometry.
    pub fn layout(&self) -> Layout {
        let cols = if self.pages_per_cell == 1 { COLS } else { 64 };
        let rows = self.cells.len().div_ceil(cols);
        let cell = if self.pages_per_cell == 1 {
            if rows > 1024 {
                1
            } else {
                2
            }
        } else {
            12
        };
        let left = 90;
        let top = 34;
        let legend_items = self.legend().len() + self.mt_bands().count();
        let legend_h = 24 + legend_items.div_ceil(3) * 18;
        let width = (left + cols * cell + 20).max(3 * 240 + 20);
        let height = top + rows * cell + 10 + legend_h;
        Layout {
            cell,
            left,
            top,
            cols,
            rows,
            width,
            height,
        }
    }

    /// Legend entries with pages (palette index, swatch).
    pub fn legend(&self) -> Vec<(usize, &Swatch)> {
        self.palette
            .iter()
            .enumerate()
            .filter(|(_, s)| s.pages > 0 && !s.label.is_empty())
            .collect()
    }

    /// The palette index of the cell holding `pfn`.
    #[cfg(test)]
    pub fn cell_of_pfn(&self, pfn: u64) -> Option<u8> {
        self.cells.get(pfn as usize / self.pages_per_cell).copied()
    }

    /// The SVG document.
    pub fn to_svg(&self) -> String {
        let l = self.layout();
        let mut s = String::with_capacity(self.cells.len() * 8);
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="monospace" font-size="12" shape-rendering="crispEdges">"#,
            w = l.width,
            h = l.height
        );
        let _ = writeln!(
            s,
            r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="8" y="20" font-size="14">{}</text>"##,
            xml_escape(&self.title)
        );
        self.svg_cells(&mut s, &l);
        self.svg_zones(&mut s, &l);
        self.svg_legend(&mut s, &l);
        s.push_str("</svg>\n");
        s
    }

    fn svg_cells(&self, s: &mut String, l: &Layout) {
        let cs = l.cell;
        // Rows as runs of one colour, so a free order-9 block is one rectangle.
        for r in 0..l.rows {
            let row = &self.cells[r * l.cols..((r + 1) * l.cols).min(self.cells.len())];
            let y = l.top + r * cs;
            let mut c = 0;
            while c < row.len() {
                let v = row[c];
                let mut e = c + 1;
                while e < row.len() && row[e] == v {
                    e += 1;
                }
                let [red, g, b] = self.palette[usize::from(v)].rgb;
                let _ = writeln!(
                    s,
                    r##"<rect x="{}" y="{y}" width="{}" height="{cs}" fill="#{red:02x}{g:02x}{b:02x}"/>"##,
                    l.left + c * cs,
                    (e - c) * cs
                );
                c = e;
            }
            // The migratetype band: the row's pageblock (page mode) or its first cell's.
            if let Some(&t) = self.mt.get(r * l.cols) {
                if let Some([red, g, b]) = MT_RGB.get(usize::from(t)) {
                    let _ = writeln!(
                        s,
                        r##"<rect x="{}" y="{y}" width="6" height="{cs}" fill="#{red:02x}{g:02x}{b:02x}"/>"##,
                        l.left - 8
                    );
                }
            }
        }
    }

    fn svg_zones(&self, s: &mut String, l: &Layout) {
        for z in &self.zones {
            let y = l.top + (z.start_cell / l.cols) * l.cell;
            let _ = writeln!(
                s,
                r##"<line x1="0" y1="{y}" x2="{}" y2="{y}" stroke="#000000" stroke-width="1"/><text x="4" y="{}">{}</text>"##,
                l.left + l.cols * l.cell,
                y + 13,
                z.name
            );
        }
    }

    fn svg_legend(&self, s: &mut String, l: &Layout) {
        let y0 = l.top + l.rows * l.cell + 10;
        let _ = writeln!(
            s,
            r#"<text x="8" y="{}">{} page(s) per cell, {} cells per row; band at left: pageblock migratetype</text>"#,
            y0 + 12,
            self.pages_per_cell,
            l.cols
        );
        let mut items: Vec<([u8; 3], String)> = self
            .legend()
            .into_iter()
            .map(|(_, sw)| (sw.rgb, format!("{} ({} pages)", sw.label, sw.pages)))
            .collect();
        for (i, rgb) in self.mt_bands() {
            items.push((*rgb, format!("band: {}", MigrateType::from_index(i).name())));
        }
        for (i, (rgb, label)) in items.iter().enumerate() {
            let x = 8 + (i % 3) * 240;
            let y = y0 + 24 + (i / 3) * 18;
            let [r, g, b] = *rgb;
            let _ = writeln!(
                s,
                r##"<rect x="{x}" y="{y}" width="12" height="12" fill="#{r:02x}{g:02x}{b:02x}" stroke="#000000" stroke-width="0.5"/><text x="{}" y="{}" font-size="11">{}</text>"##,
                x + 16,
                y + 10,
                xml_escape(label)
            );
        }
    }

    /// The RGB raster of the picture: cells, band, zone lines, legend, and the labels in an
    /// 8×8 bitmap font (font8x8's public-domain glyphs, 7 pixels apart).
    pub fn raster(&self) -> (usize, usize, Vec<u8>) {
        let l = self.layout();
        let mut c = Canvas {
            w: l.width,
            h: l.height,
            px: vec![0xffu8; l.width * l.height * 3],
        };
        c.text(8, 10, &self.title, 200);
        for (i, &v) in self.cells.iter().enumerate() {
            let (r, col) = (i / l.cols, i % l.cols);
            c.fill(
                l.left + col * l.cell,
                l.top + r * l.cell,
                l.cell,
                l.cell,
                self.palette[usize::from(v)].rgb,
            );
        }
        for r in 0..l.rows {
            if let Some(rgb) = self
                .mt
                .get(r * l.cols)
                .and_then(|&t| MT_RGB.get(usize::from(t)))
            {
                c.fill(l.left - 8, l.top + r * l.cell, 6, l.cell, *rgb);
            }
        }
        for z in &self.zones {
            let y = l.top + (z.start_cell / l.cols) * l.cell;
            c.fill(0, y, l.left + l.cols * l.cell, 1, [0, 0, 0]);
            c.text(4, y + 3, z.name, 10);
        }
        let y0 = l.top + l.rows * l.cell + 10;
        c.text(
            8,
            y0 + 4,
            &format!(
                "{} page(s) per cell, {} cells per row; band at left: pageblock migratetype",
                self.pages_per_cell, l.cols
            ),
            200,
        );
        let mut items: Vec<([u8; 3], String)> = self
            .legend()
            .into_iter()
            .map(|(_, sw)| (sw.rgb, format!("{} ({})", sw.label, sw.pages)))
            .collect();
        for (i, rgb) in self.mt_bands() {
            items.push((*rgb, format!("band: {}", MigrateType::from_index(i).name())));
        }
        for (i, (rgb, label)) in items.iter().enumerate() {
            let x = 8 + (i % 3) * 240;
            let y = y0 + 24 + (i / 3) * 18;
            c.fill(x, y, 12, 12, [0, 0, 0]);
            c.fill(x + 1, y + 1, 10, 10, *rgb);
            c.text(x + 16, y + 2, label, 31);
        }
        (c.w, c.h, c.px)
    }

    /// The PNG file.
    ///
    /// # Errors
    /// The encoder's message.
    pub fn to_png(&self) -> Result<Vec<u8>, String> {
        let (w, h, px) = self.raster();
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_compression(png::Compression::Fast);
            let mut wr = enc.write_header().map_err(|e| e.to_string())?;
            wr.write_image_data(&px).map_err(|e| e.to_string())?;
        }
        Ok(out)
    }

    /// Writes SVG or PNG by the file name's extension.
    ///
    /// # Errors
    /// A one-line message.
    pub fn write_file(&self, path: &std::path::Path) -> Result<(), String> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let bytes = match ext.as_str() {
            "svg" => self.to_svg().into_bytes(),
            "png" => self.to_png()?,
            _ => {
                return Err(format!(
                    "{}: unknown picture format (the name must end in .svg or .png)",
                    path.display()
                ))
            }
        };
        std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// An RGB pixel buffer.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn fill(&mut self, x0: usize, y0: usize, ww: usize, hh: usize, rgb: [u8; 3]) {
        for y in y0..(y0 + hh).min(self.h) {
            let row = &mut self.px[y * self.w * 3..(y + 1) * self.w * 3];
            for x in x0..(x0 + ww).min(self.w) {
                row[x * 3..x * 3 + 3].copy_from_slice(&rgb);
            }
        }
    }

    /// Black text, at most `max` characters (ASCII; others as `?`).
    fn text(&mut self, x: usize, y: usize, s: &str, max: usize) {
        for (i, ch) in s.chars().take(max).enumerate() {
            let g = font8x8::legacy::BASIC_LEGACY[if ch.is_ascii() {
                ch as usize
            } else {
                '?' as usize
            }];
            for (dy, bits) in g.iter().enumerate() {
                for dx in 0..8 {
                    if bits & (1 << dx) != 0 {
                        self.fill(x + i * 7 + dx, y + dy, 1, 1, [0, 0, 0]);
                    }
                }
            }
        }
    }
}

/// Escapes text for XML.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
