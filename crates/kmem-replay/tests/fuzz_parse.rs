//! Fuzzing the trace parser by proptest: real ftrace lines cut, spliced, with bytes flipped,
//! and random bytes (invalid UTF-8 included). The parser never panics, counts every line, and
//! either parses a line or counts it malformed — and the unmutated lines still parse.
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use kmem_replay::parse_reader;

/// Lines of the real 6.18 trace (tests/data), one per event kind the parser knows.
const LINES: &[&str] = &[
    "           xargs-14101   [000] .....   330.340903: kmalloc: call_site=load_elf_phdrs+0x49/0xc0 ptr=ffff88815bf1f400 bytes_req=504 bytes_alloc=512 gfp_flags=GFP_KERNEL node=-1 accounted=false",
    "           xargs-14101   [000] .....   330.340951: kfree: call_site=vm_area_free+0x1c/0x90 ptr=0000000000000000",
    "           xargs-14101   [000] ...1.   330.340909: mm_page_alloc: page=ffffea0005ddfe80 pfn=0x1777fa order=0 migratetype=0 gfp_flags=GFP_NOWAIT",
    "           xargs-14101   [000] .....   330.340968: kmem_cache_alloc: call_site=mas_preallocate+0x3ef/0x430 ptr=ffff88811007df00 name=maple_node bytes_req=256 bytes_alloc=256 gfp_flags=GFP_KERNEL node=-1 accounted=false",
];

fn mutate(line: &str, cut: usize, splice: &str, at: usize, flips: &[(usize, u8)]) -> Vec<u8> {
    let mut b = line.as_bytes().to_vec();
    b.truncate(cut.min(b.len()).max(b.len() / 2));
    let at = at.min(b.len());
    b.splice(at..at, splice.bytes());
    for &(i, x) in flips {
        if !b.is_empty() {
            let i = i % b.len();
            b[i] ^= x;
        }
    }
    b
}

#[test]
fn mutated_and_random_traces_never_panic_the_parser() {
    let line = prop_oneof![
        (
            proptest::sample::select(LINES.to_vec()),
            0usize..300,
            proptest::sample::select(vec!["", "=", " ", "0x", "ptr=", "gfp_flags=|", ":"]),
            0usize..300,
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        )
            .prop_map(|(l, cut, s, at, flips)| mutate(l, cut, s, at, &flips)),
        proptest::collection::vec(any::<u8>(), 0..200),
    ];
    let trace = proptest::collection::vec(line, 1..20);
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    runner
        .run(&trace, |lines| {
            let mut text = Vec::new();
            for l in &lines {
                text.extend(l.iter().filter(|&&c| c != b'\n'));
                text.push(b'\n');
            }
            // The real lines first, unmutated: they must still parse among the noise.
            for l in LINES {
                text.extend_from_slice(l.as_bytes());
                text.push(b'\n');
            }
            let t = parse_reader(&text[..]).unwrap();
            prop_assert_eq!(t.lines, (lines.len() + LINES.len()) as u64);
            prop_assert!(t.events.len() >= LINES.len());
            prop_assert!(t.malformed <= lines.len() as u64);
            prop_assert!(t.malformed_examples.len() <= t.malformed as usize);
            Ok(())
        })
        .unwrap();
}
