//! `map "FILE"`: the picture's cells match the machine (tests of [`crate::map`] driven by
//! the shell).

use super::{Origin, Shell};
use crate::kernel::{BootOptions, Kernel};
use crate::map::{ix, snapshot, COLS};
use kmem::arch::Arch;

fn shell() -> Shell {
    let k = Kernel::boot(&BootOptions {
        arch: Arch::X86_64,
        mem: 64 << 20,
        cpus: 1,
        cmdline: String::new(),
        seed: 0,
        maxmem: 0,
        numa: Default::default(),
    })
    .unwrap();
    Shell::new(k)
}

fn run(sh: &mut Shell, src: &str) -> String {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for (i, l) in src.lines().enumerate() {
        sh.run_line(
            l,
            Origin {
                source: Some("t"),
                line: i + 1,
                indent: 0,
            },
            &mut out,
            &mut err,
        );
    }
    assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
    String::from_utf8(out).unwrap()
}

fn hex(rgb: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2])
}

/// A scripted order-9 allocation is one run of 512 "alloc_pages" cells where its pfn is,
/// in the snapshot, the SVG (one rectangle) and the PNG (every pixel of the run).
#[test]
fn order9_block_is_one_run_at_its_place() {
    let mut sh = shell();
    let dir = std::env::temp_dir().join(format!("kmem-map-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("o9.svg");
    let png_path = dir.join("o9.png");
    let out = run(
        &mut sh,
        &format!(
            "p = alloc_pages(GFP_KERNEL, 9)\npage_to_pfn(p)\nmap \"{}\"\nmap \"{}\"",
            svg.display(),
            png_path.display()
        ),
    );
    let pfn: u64 = out.lines().nth(1).unwrap().trim().parse().unwrap();
    assert_eq!(pfn % 512, 0, "an order-9 block is aligned");
    let mm = snapshot(&sh.k.m, "t");
    assert_eq!(mm.pages_per_cell, 1);
    for i in 0..512 {
        assert_eq!(mm.cell_of_pfn(pfn + i), Some(ix::ALLOC), "pfn {}", pfn + i);
    }
    // Neighbours are free memory here (a fresh 64 MiB machine), not the block's colour.
    assert_ne!(mm.cell_of_pfn(pfn + 512), Some(ix::ALLOC));
    let l = mm.layout();
    let colour = hex(mm.palette[usize::from(ix::ALLOC)].rgb);
    let want = format!(
        r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{colour}"/>"#,
        l.left,
        l.top + (pfn as usize / COLS) * l.cell,
        COLS * l.cell,
        l.cell
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg ") && text.trim_end().ends_with("</svg>"));
    assert!(text.contains(&want), "no {want} in the SVG");
    // The PNG: decode and look at every cell of the run.
    let dec = png::Decoder::new(std::fs::File::open(&png_path).unwrap());
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(
        (info.width as usize, info.height as usize),
        (l.width, l.height)
    );
    let rgb = mm.palette[usize::from(ix::ALLOC)].rgb;
    let y = l.top + (pfn as usize / COLS) * l.cell;
    for c in 0..COLS {
        let x = l.left + c * l.cell;
        let o = (y * l.width + x) * 3;
        assert_eq!(buf[o..o + 3], rgb, "cell {c}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_extension_is_an_error() {
    let mut sh = shell();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    sh.run_line(
        "map \"x.gif\"",
        Origin {
            source: Some("t"),
            line: 1,
            indent: 0,
        },
        &mut out,
        &mut err,
    );
    let e = String::from_utf8(err).unwrap();
    assert!(e.contains("unknown picture format"), "{e}");
}
